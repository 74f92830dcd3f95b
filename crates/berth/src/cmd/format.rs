//! `--format`: a small evaluator of the Go-template-like formats the docker CLI takes. Field
//! paths (`{{.ID}}`, `{{.State.Status}}`, `{{.}}`), pipelines (`{{.Names | upper}}`), the
//! functions docker's templates have (`json`, `join`, `split`, `upper`, `lower`, `title`,
//! `truncate`, `pad`, `index`, `len`, `print`, `println`, `printf` with `%s`/`%d`/`%v`/`%q`),
//! `.Label "key"` on list rows, `{{- -}}` trimming, `\t` and `\n` as docker replaces them, the
//! `table` prefix (a header row, columns aligned as Docker's tables) and `json` alone for
//! `{{json .}}`; and of Go's language `if`/`else if`/`else`, `range` (lists in order, maps in
//! key order, `$k, $v :=`), `with`, variables (`$`, `$x := …`), parentheses and `eq`, `ne`,
//! `lt`, `le`, `gt`, `ge`, `and`, `or`, `not`. Not `define`/`template`/`block`.

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
    /// `{{pipeline}}`, or `{{$x := pipeline}}` (prints nothing).
    Action(Option<String>, Vec<Cmd>),
    /// `{{if p}}…{{else}}…{{end}}` (`{{else if q}}` nests another).
    If(Vec<Cmd>, Vec<Node>, Vec<Node>),
    /// `{{range [$k, $v :=] p}}…{{else}}…{{end}}`.
    Range(Vec<String>, Vec<Cmd>, Vec<Node>, Vec<Node>),
    /// `{{with p}}…{{else}}…{{end}}`.
    With(Vec<Cmd>, Vec<Node>, Vec<Node>),
}

/// What the flat parse finds before the tree is built.
#[derive(Debug, Clone)]
enum Item {
    Node(Node),
    /// `if`, `range`, `with`, `else`, `else if`, `end` and what follows the keyword.
    Control(&'static str, String),
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
    /// `$` or `$name`, then a field path.
    Var(String, Vec<String>),
    /// `( pipeline )`, then a field path.
    Sub(Vec<Cmd>, Vec<String>),
    Bool(bool),
}

const KEYWORDS: &[&str] = &["define", "template", "block", "break", "continue"];

/// Variables in scope: `$` (the data) first, then those the template declared.
type Vars = Vec<(String, Value)>;

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
        let mut vars: Vars = vec![(String::new(), data.clone())];
        eval_nodes(&self.nodes, data, &mut vars, &mut out)?;
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

fn eval_nodes(nodes: &[Node], dot: &Value, vars: &mut Vars, out: &mut String) -> Result<()> {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Action(None, p) => {
                let v = eval_pipeline(p, dot, vars)?;
                out.push_str(&go_fmt(v.as_ref()));
            }
            Node::Action(Some(name), p) => {
                let v = eval_pipeline(p, dot, vars)?.unwrap_or(Value::Null);
                vars.push((name.clone(), v));
            }
            Node::If(c, then, els) => {
                let v = eval_pipeline(c, dot, vars)?;
                let depth = vars.len();
                eval_nodes(if truthy(&v) { then } else { els }, dot, vars, out)?;
                vars.truncate(depth);
            }
            Node::With(c, body, els) => {
                let v = eval_pipeline(c, dot, vars)?;
                let depth = vars.len();
                if truthy(&v) {
                    eval_nodes(body, &v.unwrap_or(Value::Null), vars, out)?;
                } else {
                    eval_nodes(els, dot, vars, out)?;
                }
                vars.truncate(depth);
            }
            Node::Range(names, p, body, els) => {
                let v = eval_pipeline(p, dot, vars)?;
                let items: Vec<(Value, Value)> = match v {
                    Some(Value::Array(a)) => a
                        .into_iter()
                        .enumerate()
                        .map(|(i, x)| (Value::from(i as i64), x))
                        .collect(),
                    Some(Value::Object(m)) => {
                        // Go ranges over a map in key order.
                        let mut kv: Vec<(String, Value)> = m.into_iter().collect();
                        kv.sort_by(|a, b| a.0.cmp(&b.0));
                        kv.into_iter().map(|(k, x)| (Value::String(k), x)).collect()
                    }
                    Some(Value::Number(n)) => (0..n.as_i64().unwrap_or(0))
                        .map(|i| (Value::from(i), Value::from(i)))
                        .collect(),
                    None | Some(Value::Null) => Vec::new(),
                    Some(other) => bail!(
                        "template: range can't iterate over {}",
                        go_fmt(Some(&other))
                    ),
                };
                if items.is_empty() {
                    let depth = vars.len();
                    eval_nodes(els, dot, vars, out)?;
                    vars.truncate(depth);
                }
                for (k, x) in items {
                    let depth = vars.len();
                    match names.as_slice() {
                        [] => {}
                        [v] => vars.push((v.clone(), x.clone())),
                        [kn, vn, ..] => {
                            vars.push((kn.clone(), k));
                            vars.push((vn.clone(), x.clone()));
                        }
                    }
                    eval_nodes(body, &x, vars, out)?;
                    vars.truncate(depth);
                }
            }
        }
    }
    Ok(())
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truthy(v: &Option<Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// What ended a run of nodes: `else`, `else if` (with its condition) or `end`.
type Stop = (&'static str, String);

/// The tree of the flat items: nodes until an `else` or `end` (returned), or the end.
fn build_tree(
    items: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<(Vec<Node>, Option<Stop>)> {
    let mut nodes = Vec::new();
    while let Some(it) = items.next() {
        match it {
            Item::Node(n) => nodes.push(n),
            Item::Control(k @ ("end" | "else" | "else if"), rest) => {
                return Ok((nodes, Some((k, rest))));
            }
            Item::Control(kw, rest) => nodes.push(control(kw, &rest, items)?),
        }
    }
    Ok((nodes, None))
}

/// An `if`/`range`/`with` and its branches, up to its `end`.
fn control(
    kw: &'static str,
    rest: &str,
    items: &mut std::iter::Peekable<std::vec::IntoIter<Item>>,
) -> Result<Node> {
    let (names, pipe) = if kw == "range" {
        match rest.split_once(":=") {
            Some((vars, p)) => (
                vars.split(',')
                    .map(|v| v.trim().trim_start_matches('$').to_string())
                    .collect::<Vec<_>>(),
                p,
            ),
            None => (Vec::new(), rest),
        }
    } else {
        (Vec::new(), rest)
    };
    let cond = parse_pipeline(pipe.trim())?;
    let (body, stop) = build_tree(items)?;
    let els = match stop {
        Some(("end", _)) => Vec::new(),
        Some(("else", _)) => {
            let (els, stop) = build_tree(items)?;
            if !matches!(stop, Some(("end", _))) {
                bail!("template: {kw} without its end");
            }
            els
        }
        Some(("else if", r)) => vec![control("if", &r, items)?],
        _ => bail!("template: {kw} without its end"),
    };
    Ok(match kw {
        "if" => Node::If(cond, body, els),
        "with" => Node::With(cond, body, els),
        _ => Node::Range(names, cond, body, els),
    })
}

/// `{{inner}}` as an item: a control keyword, a declaration, or a pipeline.
fn item(inner: &str) -> Result<Item> {
    let t = inner.trim();
    let word = t.split_whitespace().next().unwrap_or_default();
    let rest = t[word.len()..].trim().to_string();
    Ok(match word {
        "if" => Item::Control("if", rest),
        "range" => Item::Control("range", rest),
        "with" => Item::Control("with", rest),
        "end" => Item::Control("end", rest),
        "else" => match rest.strip_prefix("if ") {
            Some(r) => Item::Control("else if", r.to_string()),
            None => Item::Control("else", rest),
        },
        w if w.starts_with('$') && t.contains(":=") => {
            let (name, p) = t.split_once(":=").expect("checked");
            Item::Node(Node::Action(
                Some(name.trim().trim_start_matches('$').to_string()),
                parse_pipeline(p.trim())?,
            ))
        }
        _ => Item::Node(Node::Action(None, parse_pipeline(t)?)),
    })
}

fn parse_nodes(s: &str) -> Result<Vec<Node>> {
    let mut items = parse_items(s)?.into_iter().peekable();
    let (nodes, stop) = build_tree(&mut items)?;
    if let Some((k, _)) = stop {
        bail!("template: unexpected {{{{{k}}}}}");
    }
    Ok(nodes)
}

fn parse_items(s: &str) -> Result<Vec<Item>> {
    let mut nodes: Vec<Item> = Vec::new();
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
            nodes.push(Item::Node(Node::Text(text.to_string())));
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
        nodes.push(item(inner)?);
        rest = &after[end + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    if !text.is_empty() {
        nodes.push(Item::Node(Node::Text(text.to_string())));
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
        } else if ch == '(' {
            // A sub-pipeline, up to its `)` (outside strings), then maybe a field path.
            let mut depth = 0;
            let mut j = i;
            let mut quote: Option<char> = None;
            while j < c.len() {
                match (quote, c[j]) {
                    (Some('"'), '\\') => j += 1,
                    (Some(q), x) if x == q => quote = None,
                    (Some(_), _) => {}
                    (None, '"' | '`') => quote = Some(c[j]),
                    (None, '(') => depth += 1,
                    (None, ')') => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            if j >= c.len() {
                bail!("template: unclosed ( in {{{{{s}}}}}");
            }
            let inner: String = c[i + 1..j].iter().collect();
            let sub = parse_pipeline(&inner)?;
            i = j + 1;
            let start = i;
            while i < c.len() && !c[i].is_whitespace() && !matches!(c[i], '|' | '(' | ')') {
                i += 1;
            }
            let tail: String = c[start..i].iter().collect();
            let path = field_path(&tail)?;
            push_arg(&mut cmds, Arg::Sub(sub, path));
        } else {
            let start = i;
            while i < c.len() && !c[i].is_whitespace() && !matches!(c[i], '|' | '(' | ')') {
                i += 1;
            }
            if i == start {
                bail!("template: unexpected {:?} in {{{{{s}}}}}", c[i]);
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

/// `.A.B` after a variable or a parenthesis (`""`: none).
fn field_path(tail: &str) -> Result<Vec<String>> {
    if tail.is_empty() {
        return Ok(Vec::new());
    }
    let Some(path) = tail.strip_prefix('.') else {
        bail!("template: unexpected {tail:?}");
    };
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("template: bad field path {tail:?}");
    }
    Ok(parts)
}

fn word_arg(w: &str) -> Result<Arg> {
    if w == "." {
        return Ok(Arg::Field(Vec::new()));
    }
    if let Some(v) = w.strip_prefix('$') {
        let (name, tail) = match v.find('.') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, ""),
        };
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            bail!("template: bad variable {w:?}");
        }
        return Ok(Arg::Var(name.to_string(), field_path(tail)?));
    }
    if w == "true" || w == "false" {
        return Ok(Arg::Bool(w == "true"));
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
    if KEYWORDS.contains(&w) {
        bail!("template: `{w}` is not supported by berth's --format");
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

fn eval_pipeline(p: &[Cmd], data: &Value, vars: &Vars) -> Result<Option<Value>> {
    let mut piped: Option<Option<Value>> = None;
    for cmd in p {
        piped = Some(eval_cmd(cmd, data, vars, piped)?);
    }
    Ok(piped.flatten())
}

fn operand(a: &Arg, data: &Value, vars: &Vars) -> Result<Option<Value>> {
    Ok(match a {
        Arg::Field(path) => lookup(data, path),
        Arg::Str(s) => Some(Value::String(s.clone())),
        Arg::Num(n) => Some(Value::from(*n)),
        Arg::Bool(b) => Some(Value::Bool(*b)),
        Arg::Func(f) => call(f, Vec::new())?,
        Arg::Var(name, path) => {
            let Some((_, v)) = vars.iter().rev().find(|(n, _)| n == name) else {
                bail!("template: undefined variable \"${name}\"");
            };
            lookup(v, path)
        }
        Arg::Sub(p, path) => match eval_pipeline(p, data, vars)? {
            Some(v) => lookup(&v, path),
            None => None,
        },
    })
}

fn eval_cmd(
    cmd: &Cmd,
    data: &Value,
    vars: &Vars,
    piped: Option<Option<Value>>,
) -> Result<Option<Value>> {
    let (first, rest) = cmd.0.split_first().expect("parsed commands are not empty");
    match first {
        Arg::Func(f) => {
            let mut args = rest
                .iter()
                .map(|a| operand(a, data, vars))
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
                    .map(|a| operand(a, data, vars))
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
        a => operand(a, data, vars),
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
    let cmp = |a: &Option<Value>, b: &Option<Value>| -> Option<std::cmp::Ordering> {
        match (a, b) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => {
                x.as_f64()?.partial_cmp(&y.as_f64()?)
            }
            (Some(Value::String(x)), Some(Value::String(y))) => Some(x.cmp(y)),
            (Some(Value::Bool(x)), Some(Value::Bool(y))) => Some(x.cmp(y)),
            (None | Some(Value::Null), None | Some(Value::Null)) => Some(std::cmp::Ordering::Equal),
            _ => None,
        }
    };
    let b = |v: bool| Ok(Some(Value::Bool(v)));
    match f {
        "eq" => {
            if args.len() < 2 {
                bail!("template: eq wants at least 2 arguments");
            }
            b(args[1..].iter().any(|x| {
                cmp(&args[0], x) == Some(std::cmp::Ordering::Equal)
                    || (args[0].is_some() && args[0] == *x)
            }))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(2)?;
            let o = cmp(&args[0], &args[1]);
            if o.is_none() && f != "ne" {
                bail!("template: {f}: incompatible types for comparison");
            }
            use std::cmp::Ordering::*;
            b(match f {
                "ne" => o != Some(Equal) && args[0] != args[1],
                "lt" => o == Some(Less),
                "le" => o != Some(Greater),
                "gt" => o == Some(Greater),
                _ => o != Some(Less),
            })
        }
        "not" => {
            want(1)?;
            b(!truthy(&args[0]))
        }
        "and" => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .flatten()),
        "or" => Ok(args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .flatten()),
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
            "{{range .X}}",
            "{{if .X}}y",
            "{{end}}",
            "{{$nope}}",
            "{{nope .X}}",
            "{{define \"x\"}}{{end}}",
            "{{(.X}}",
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
    fn go_control_flow() {
        let v = json!({
            "Name": "web",
            "NetworkSettings": {"Networks": {
                "b": {"IPAddress": "10.0.0.2"}, "a": {"IPAddress": "172.17.0.2"}}},
            "Mounts": [{"Source": "/s1", "Destination": "/d1"}, {"Source": "/s2", "Destination": "/d2"}],
            "Count": 2, "Empty": [], "Flag": false
        });
        assert_eq!(
            ev(
                "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                &v
            ),
            "172.17.0.2 10.0.0.2 "
        );
        assert_eq!(
            ev(
                "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}={{$v.IPAddress}};{{end}}",
                &v
            ),
            "a=172.17.0.2;b=10.0.0.2;"
        );
        assert_eq!(
            ev(
                "{{range .Mounts}}{{.Source}}:{{.Destination}} {{$.Name}} {{end}}",
                &v
            ),
            "/s1:/d1 web /s2:/d2 web "
        );
        assert_eq!(ev("{{range .Empty}}x{{else}}none{{end}}", &v), "none");
        assert_eq!(
            ev(
                "{{if .Flag}}y{{else if eq .Count 2}}two{{else}}n{{end}}",
                &v
            ),
            "two"
        );
        assert_eq!(ev("{{if and .Name (gt .Count 1)}}ok{{end}}", &v), "ok");
        assert_eq!(ev("{{if not .Flag}}off{{end}}", &v), "off");
        assert_eq!(
            ev("{{with .NetworkSettings}}{{len .Networks}}{{end}}", &v),
            "2"
        );
        assert_eq!(ev("{{with .Nope}}x{{else}}no{{end}}", &v), "no");
        assert_eq!(ev("{{$n := .Name}}{{upper $n}}", &v), "WEB");
        assert_eq!(ev("{{(index .Mounts 1).Source}}", &v), "/s2");
        assert_eq!(ev("{{eq .Name \"web\" \"db\"}}", &v), "true");
        assert_eq!(ev("{{ne .Count 3}}", &v), "true");
    }

    #[test]
    fn quoting_like_go() {
        assert_eq!(go_quote("sh -c \"x\"\n"), "\"sh -c \\\"x\\\"\\n\"");
    }
}
