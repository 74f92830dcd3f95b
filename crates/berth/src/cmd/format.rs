//! `--format`: a small evaluator of the Go-template-like formats the docker CLI takes. Field
//! paths (`{{.ID}}`, `{{.State.Status}}`, `{{.}}`), pipelines (`{{.Names | upper}}`), the
//! functions docker's templates have (`json`, `join`, `split`, `upper`, `lower`, `title`,
//! `truncate`, `pad`, `index`, `len`, `print`, `println`, `printf` with `%s`/`%d`/`%v`/`%q`),
//! `.Label "key"` on list rows, `{{- -}}` trimming, `\t` and `\n` as docker replaces them, the
//! `table` prefix (a header row, columns aligned as Docker's tables) and `json` alone for
//! `{{json .}}`. Not Go's whole language: `if`, `range`, `with` and variables are refused with
//! a clear message.

use anyhow::{Result, bail};
use serde_json::{Map, Value};

/// A parsed format.
#[derive(Debug, Clone)]
pub struct Template {
    /// `table …`: a header row, then rows aligned in columns.
    pub table: bool,
    nodes: Vec<Node>,
}

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Action(Vec<Cmd>),
}

#[derive(Debug, Clone)]
struct Cmd(Vec<Arg>);

#[derive(Debug, Clone)]
enum Arg {
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    Str(String),
    Num(i64),
    Func(String),
}

const KEYWORDS: &[&str] = &[
    "if", "range", "with", "else", "end", "define", "template", "block", "break", "continue",
];

impl Template {
    /// Parse `format`; `default_table` is what `table` alone (and no format) means.
    pub fn parse(format: &str, default_table: &str) -> Result<Template> {
        let f = match format.trim() {
            "" | "table" => default_table,
            "json" => "{{json .}}",
            _ => format,
        };
        let (table, body) = match f.trim_start().strip_prefix("table") {
            Some(rest) if rest.is_empty() || rest.starts_with([' ', '\t', '{']) => {
                (true, rest.trim_matches(' '))
            }
            _ => (false, f),
        };
        let body = body.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Template {
            table,
            nodes: parse_nodes(&body)?,
        })
    }

    /// Evaluate against `data`.
    pub fn eval(&self, data: &Value) -> Result<String> {
        let mut out = String::new();
        for n in &self.nodes {
            match n {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => {
                    let v = eval_pipeline(p, data)?;
                    out.push_str(&go_fmt(v.as_ref()));
                }
            }
        }
        Ok(out)
    }

    /// Print `rows`: a table (the header row is the template evaluated on `headers`, a map of
    /// field name to title) or one line per row.
    pub fn print(&self, rows: &[Value], headers: &Value) -> Result<()> {
        let mut lines = Vec::with_capacity(rows.len() + 1);
        if self.table {
            lines.push(self.eval(headers)?);
        }
        for r in rows {
            lines.push(self.eval(r)?);
        }
        if self.table {
            let table: Vec<Vec<String>> = lines
                .iter()
                .flat_map(|l| l.split('\n'))
                .map(|l| l.split('\t').map(str::to_string).collect())
                .collect();
            super::print_table(&table);
        } else {
            use std::io::Write;
            let mut o = std::io::stdout().lock();
            for l in lines {
                writeln!(o, "{l}")?;
            }
        }
        Ok(())
    }
}

fn parse_nodes(s: &str) -> Result<Vec<Node>> {
    let mut nodes = Vec::new();
    let mut rest = s;
    let mut trim_next = false;
    while let Some(start) = rest.find("{{") {
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start();
        }
        let after = &rest[start + 2..];
        let (trim_prev, after) = match after.strip_prefix("- ") {
            Some(a) => (true, a),
            None => (false, after),
        };
        if trim_prev {
            text = text.trim_end();
        }
        if !text.is_empty() {
            nodes.push(Node::Text(text.to_string()));
        }
        let Some(end) = find_close(after) else {
            bail!("template: unclosed action: {{{{{after}");
        };
        let mut inner = &after[..end];
        trim_next = false;
        if let Some(i) = inner.strip_suffix(" -") {
            inner = i;
            trim_next = true;
        }
        nodes.push(Node::Action(parse_pipeline(inner)?));
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        nodes.push(Node::Text(text.to_string()));
    }
    Ok(nodes)
}

/// The `}}` closing an action, outside strings.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match quote {
            Some(q) => {
                if b[i] == b'\\' && q == b'"' {
                    i += 1;
                } else if b[i] == q {
                    quote = None;
                }
            }
            None => {
                if b[i] == b'"' || b[i] == b'`' {
                    quote = Some(b[i]);
                } else if b[i] == b'}' && b.get(i + 1) == Some(&b'}') {
                    return Some(i);
                }
            }
        }
        i += 1;
    }
    None
}

fn parse_pipeline(s: &str) -> Result<Vec<Cmd>> {
    let mut cmds = vec![Cmd(Vec::new())];
    let c: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch.is_whitespace() {
            i += 1;
        } else if ch == '|' {
            cmds.push(Cmd(Vec::new()));
            i += 1;
        } else if ch == '"' {
            let mut out = String::new();
            i += 1;
            loop {
                match c.get(i) {
                    None => bail!("template: unterminated string in {{{{{s}}}}}"),
                    Some('"') => break,
                    Some('\\') => {
                        i += 1;
                        out.push(match c.get(i) {
                            Some('n') => '\n',
                            Some('t') => '\t',
                            Some(&o) => o,
                            None => bail!("template: unterminated string in {{{{{s}}}}}"),
                        });
                    }
                    Some(&o) => out.push(o),
                }
                i += 1;
            }
            i += 1;
            push_arg(&mut cmds, Arg::Str(out));
        } else if ch == '`' {
            let start = i + 1;
            let Some(len) = c[start..].iter().position(|&x| x == '`') else {
                bail!("template: unterminated raw string in {{{{{s}}}}}");
            };
            push_arg(&mut cmds, Arg::Str(c[start..start + len].iter().collect()));
            i = start + len + 1;
        } else {
            let start = i;
            while i < c.len() && !c[i].is_whitespace() && c[i] != '|' {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            push_arg(&mut cmds, word_arg(&word)?);
        }
    }
    if cmds.iter().any(|c| c.0.is_empty()) {
        bail!("template: empty command in {{{{{s}}}}}");
    }
    Ok(cmds)
}

fn push_arg(cmds: &mut [Cmd], a: Arg) {
    if let Some(last) = cmds.last_mut() {
        last.0.push(a);
    }
}

fn word_arg(w: &str) -> Result<Arg> {
    if w == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(path) = w.strip_prefix('.') {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        if parts.iter().any(|p| p.is_empty()) {
            bail!("template: bad field path {w:?}");
        }
        return Ok(Arg::Field(parts));
    }
    if let Ok(n) = w.parse::<i64>() {
        return Ok(Arg::Num(n));
    }
    if w.starts_with('$') || w.contains(":=") || w.starts_with('(') {
        bail!(
            "template: {w:?}: variables and parentheses are not supported by berth's --format (field paths, json, join, index, … are)"
        );
    }
    if KEYWORDS.contains(&w) {
        bail!(
            "template: `{w}` is not supported by berth's --format (field paths, pipelines and docker's functions are)"
        );
    }
    if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Ok(Arg::Func(w.to_string()));
    }
    bail!("template: unexpected {w:?}")
}

fn lookup(data: &Value, path: &[String]) -> Option<Value> {
    let mut cur = data;
    for p in path {
        match cur {
            Value::Object(m) => cur = m.get(p)?,
            _ => return None,
        }
    }
    Some(cur.clone())
}

fn eval_pipeline(p: &[Cmd], data: &Value) -> Result<Option<Value>> {
    let mut piped: Option<Option<Value>> = None;
    for cmd in p {
        piped = Some(eval_cmd(cmd, data, piped)?);
    }
    Ok(piped.flatten())
}

fn operand(a: &Arg, data: &Value) -> Result<Option<Value>> {
    Ok(match a {
        Arg::Field(path) => lookup(data, path),
        Arg::Str(s) => Some(Value::String(s.clone())),
        Arg::Num(n) => Some(Value::from(*n)),
        Arg::Func(f) => call(f, Vec::new())?,
    })
}

fn eval_cmd(cmd: &Cmd, data: &Value, piped: Option<Option<Value>>) -> Result<Option<Value>> {
    let (first, rest) = cmd.0.split_first().expect("parsed commands are not empty");
    match first {
        Arg::Func(f) => {
            let mut args = rest
                .iter()
                .map(|a| operand(a, data))
                .collect::<Result<Vec<_>>>()?;
            if let Some(p) = piped {
                args.push(p);
            }
            call(f, args)
        }
        Arg::Field(path) if !rest.is_empty() || piped.is_some() => {
            // A method with arguments: `.Label "key"` on list rows (their `Labels` map).
            if path.last().map(String::as_str) == Some("Label") {
                let key = match rest
                    .first()
                    .map(|a| operand(a, data))
                    .transpose()?
                    .flatten()
                {
                    Some(Value::String(k)) => k,
                    _ => bail!("template: .Label wants a key: {{{{.Label \"key\"}}}}"),
                };
                let parent = &path[..path.len() - 1];
                let labels = lookup(data, parent)
                    .and_then(|v| v.get("__labels").or_else(|| v.get("Labels")).cloned());
                return Ok(match labels {
                    Some(Value::Object(m)) => {
                        Some(m.get(&key).cloned().unwrap_or(Value::String(String::new())))
                    }
                    // A header row: the column's title.
                    _ => Some(Value::String("LABEL".into())),
                });
            }
            bail!("template: .{} is not a method", path.join("."))
        }
        a => operand(a, data),
    }
}

fn string_of(v: &Option<Value>) -> String {
    go_fmt(v.as_ref())
}

fn call(f: &str, args: Vec<Option<Value>>) -> Result<Option<Value>> {
    let want = |n: usize| -> Result<()> {
        if args.len() != n {
            bail!(
                "template: {f} wants {n} argument{}, got {}",
                if n == 1 { "" } else { "s" },
                args.len()
            );
        }
        Ok(())
    };
    let s = |v: String| Ok(Some(Value::String(v)));
    match f {
        "json" => {
            want(1)?;
            // Rows keep what only methods use under `__` keys: not part of their JSON.
            let v = match &args[0] {
                Some(Value::Object(m)) => Value::Object(
                    m.iter()
                        .filter(|(k, _)| !k.starts_with("__"))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                ),
                Some(v) => v.clone(),
                None => Value::Null,
            };
            s(json_go(&v))
        }
        "upper" => {
            want(1)?;
            s(string_of(&args[0]).to_uppercase())
        }
        "lower" => {
            want(1)?;
            s(string_of(&args[0]).to_lowercase())
        }
        "title" => {
            want(1)?;
            let t = string_of(&args[0]);
            let mut out = String::with_capacity(t.len());
            let mut start = true;
            for c in t.chars() {
                if start {
                    out.extend(c.to_uppercase());
                } else {
                    out.push(c);
                }
                start = c.is_whitespace();
            }
            s(out)
        }
        "join" => {
            want(2)?;
            let sep = string_of(&args[1]);
            match &args[0] {
                Some(Value::Array(a)) => s(a
                    .iter()
                    .map(|v| go_fmt(Some(v)))
                    .collect::<Vec<_>>()
                    .join(&sep)),
                other => s(string_of(other)),
            }
        }
        "split" => {
            want(2)?;
            let (t, sep) = (string_of(&args[0]), string_of(&args[1]));
            Ok(Some(Value::Array(
                t.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect(),
            )))
        }
        "truncate" => {
            want(2)?;
            let n = args[1].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
            s(string_of(&args[0]).chars().take(n).collect())
        }
        "pad" => {
            want(3)?;
            let l = args[1].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
            let r = args[2].as_ref().and_then(Value::as_u64).unwrap_or(0) as usize;
            s(format!(
                "{}{}{}",
                " ".repeat(l),
                string_of(&args[0]),
                " ".repeat(r)
            ))
        }
        "len" => {
            want(1)?;
            let n = match &args[0] {
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                Some(Value::String(t)) => t.len(),
                Some(Value::Null) | None => 0,
                Some(v) => bail!("template: len of {}", go_fmt(Some(v))),
            };
            Ok(Some(Value::from(n)))
        }
        "index" => {
            if args.is_empty() {
                bail!("template: index wants a value");
            }
            let mut cur = args[0].clone();
            for k in &args[1..] {
                cur = match (cur, k) {
                    (Some(Value::Object(m)), Some(Value::String(k))) => {
                        Some(m.get(k).cloned().unwrap_or(Value::String(String::new())))
                    }
                    (Some(Value::Array(a)), Some(Value::Number(n))) => {
                        let i = n.as_u64().unwrap_or(u64::MAX) as usize;
                        match a.get(i) {
                            Some(v) => Some(v.clone()),
                            None => bail!("template: index out of range: {i}"),
                        }
                    }
                    (Some(Value::Null) | None, _) => None,
                    (v, k) => bail!(
                        "template: cannot index {} with {}",
                        string_of(&v),
                        string_of(k)
                    ),
                };
            }
            Ok(cur)
        }
        "print" => s(args.iter().map(string_of).collect::<Vec<_>>().concat()),
        "println" => s(args.iter().map(string_of).collect::<Vec<_>>().join(" ") + "\n"),
        "printf" => {
            let Some((fmt, rest)) = args.split_first() else {
                bail!("template: printf wants a format");
            };
            s(printf(&string_of(fmt), rest))
        }
        _ => bail!(
            "template: function {f:?} not defined (berth's --format has json, join, split, upper, lower, title, truncate, pad, index, len, print, println, printf)"
        ),
    }
}

fn printf(fmt: &str, args: &[Option<Value>]) -> String {
    let mut out = String::new();
    let mut it = args.iter();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('q') => out.push_str(&go_quote(&it.next().map(string_of).unwrap_or_default())),
            Some(_) => out.push_str(&it.next().map(string_of).unwrap_or_default()),
            None => out.push('%'),
        }
    }
    out
}

/// A value as Go's templates print it: strings as they are, `<no value>` for a missing key,
/// `<nil>` for null, `[a b]` and `map[k:v]`.
pub fn go_fmt(v: Option<&Value>) -> String {
    match v {
        None => "<no value>".into(),
        Some(Value::Null) => "<nil>".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Array(a)) => format!(
            "[{}]",
            a.iter()
                .map(|v| go_fmt(Some(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Some(Value::Object(m)) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_fmt(Some(v))))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

/// JSON as Go's encoding/json writes it: compact, `<`, `>` and `&` escaped.
pub fn json_go(v: &Value) -> String {
    serde_json::to_string(v)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// Go's strconv.Quote.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A header map for a table: field name → title.
pub fn headers(pairs: &[(&str, &str)]) -> Value {
    let mut m = Map::new();
    for (k, v) in pairs {
        m.insert((*k).to_string(), Value::String((*v).to_string()));
    }
    Value::Object(m)
}

/// Print `values` with `--format` (one evaluation per value), or as Docker's inspect does:
/// a JSON array indented by four spaces.
pub fn print_inspect(values: &[Value], format: Option<&str>) -> Result<()> {
    match format.filter(|f| !f.is_empty()) {
        Some(f) => {
            let t = Template::parse(f, "{{json .}}")?;
            for v in values {
                println!("{}", t.eval(v)?);
            }
        }
        None => println!("{}", pretty(&Value::Array(values.to_vec()))),
    }
    Ok(())
}

/// JSON indented by four spaces (Docker's inspect output).
pub fn pretty(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return v.to_string();
    }
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(f: &str, v: &Value) -> String {
        Template::parse(f, "").unwrap().eval(v).unwrap()
    }

    #[test]
    fn fields_and_functions() {
        let v = json!({"ID": "abc", "State": {"Status": "running", "ExitCode": 0, "Pid": 12},
            "Args": ["a", "b"], "Config": {"Labels": {"k": "v<>"}}, "Null": null});
        assert_eq!(ev("{{.ID}} {{.State.Status}}", &v), "abc running");
        assert_eq!(ev("{{.State.ExitCode}}", &v), "0");
        assert_eq!(ev("{{.Nope}}", &v), "<no value>");
        assert_eq!(ev("{{.Null}}", &v), "<nil>");
        assert_eq!(ev("{{.Args}}", &v), "[a b]");
        assert_eq!(ev("{{join .Args \",\"}}", &v), "a,b");
        assert_eq!(ev("{{index .Config.Labels \"k\"}}", &v), "v<>");
        assert_eq!(
            ev("{{json .Config.Labels}}", &v),
            "{\"k\":\"v\\u003c\\u003e\"}"
        );
        assert_eq!(ev("{{.ID | upper}}", &v), "ABC");
        assert_eq!(ev("{{upper .ID}}\\t{{len .Args}}", &v), "ABC\t2");
        assert_eq!(ev("{{.Config}}", &v), "map[Labels:map[k:v<>]]");
        assert_eq!(ev("a {{- .ID -}} b", &v), "aabcb");
        assert_eq!(ev("{{printf \"%s-%d\" .ID .State.Pid}}", &v), "abc-12");
        assert_eq!(ev("json", &v).chars().next(), Some('{'));
    }

    #[test]
    fn label_method_and_tables() {
        let row = json!({"Names": "x", "Labels": {"a": "1"}});
        assert_eq!(ev("{{.Label \"a\"}}/{{.Label \"b\"}}", &row), "1/");
        let t = Template::parse("table {{.Names}}\t{{.Label \"a\"}}", "").unwrap();
        assert!(t.table);
        let h = headers(&[("Names", "NAMES")]);
        assert_eq!(t.eval(&h).unwrap(), "NAMES\tLABEL");
    }

    #[test]
    fn unsupported_is_clear() {
        for f in [
            "{{range .X}}{{end}}",
            "{{if .X}}y{{end}}",
            "{{$x := 1}}",
            "{{nope .X}}",
        ] {
            let err = Template::parse(f, "")
                .and_then(|t| t.eval(&json!({})))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("template:"), "{f}: {err}");
        }
        assert!(Template::parse("{{.ID", "").is_err());
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(go_quote("sh -c \"x\"\n"), "\"sh -c \\\"x\\\"\\n\"");
    }
}
