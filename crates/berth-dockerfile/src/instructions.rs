//! Per-instruction parsing, in two steps as in BuildKit: [`Node::from_line`] splits a logical
//! line into keyword, flags and arguments (BuildKit's parser `line_parsers.go`), and
//! [`build`] checks the arguments and flags and makes the typed [`Instruction`]
//! (BuildKit's `instructions/parse.go`).

use crate::flags::{self, FlagType, Flags};
use crate::json::{self, JsonArray};
use crate::lexer;
use crate::util::{go_quote, parse_go_duration, suggest};
use crate::{Arg, CopyArgs, Error, Healthcheck, Heredoc, Instruction, Kind, ShellOrExec, Stage};

/// All instruction keywords, for "did you mean" suggestions.
const INSTRUCTIONS: [&str; 18] = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A logical line split into its parts (BuildKit's parser node).
#[derive(Debug, Clone, Default)]
pub(crate) struct Node {
    /// 1-based first line.
    pub line: usize,
    /// The keyword as written.
    pub cmd: String,
    /// The `--flag` words.
    pub flags: Vec<String>,
    /// The argument words, per the instruction's argument syntax.
    pub args: Vec<String>,
    /// `ENV`/`LABEL` pairs.
    pub pairs: Vec<(String, String)>,
    /// The arguments were a JSON array.
    pub json: bool,
    /// The logical line as joined.
    pub original: String,
    /// `ONBUILD`'s trigger.
    pub sub: Option<Box<Node>>,
    /// Heredocs read after the line.
    pub heredocs: Vec<Heredoc>,
}

/// Whitespace as BuildKit's `reWhitespace` (`[\t\v\f\r ]`) sees it.
fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

fn split_ws(s: &str) -> Vec<String> {
    s.split(is_ws)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// BuildKit's `parseWords`: words split on whitespace, quotes and escapes kept in the words.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut buf = String::new();
    let mut k = 0usize;
    loop {
        let at_end = k >= chars.len();
        let mut ch = if at_end { '\0' } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !buf.is_empty() {
                words.push(buf);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !buf.is_empty() {
                    words.push(std::mem::take(&mut buf));
                }
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if k + 1 >= chars.len() {
                    k += 1;
                    continue;
                }
                buf.push(ch);
                k += 1;
                ch = chars[k];
            }
            buf.push(ch);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
        }
        if ch == escape && quote != '\'' {
            if k + 1 >= chars.len() {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            buf.push(ch);
            ch = chars[k];
        }
        buf.push(ch);
        k += 1;
    }
    words
}

impl Node {
    /// Splits a logical line (BuildKit's `newNodeFromLine`).
    pub(crate) fn from_line(line: &str, escape: char) -> Result<Node, String> {
        Node::from_line_at(line, escape, 0)
    }

    /// `from_line` for an `ONBUILD` trigger `depth` levels down; a trigger's own trigger is
    /// not split further (it is refused later anyway), which bounds the recursion.
    fn from_line_at(line: &str, escape: char, depth: usize) -> Result<Node, String> {
        let trimmed = line.trim();
        let (cmd, rest) = match trimmed.find(is_ws) {
            Some(i) => (&trimmed[..i], Some(trimmed[i..].trim_start_matches(is_ws))),
            None => (trimmed, None),
        };
        let (args_text, flag_words) = match rest {
            Some(r) => flags::extract(r, escape),
            None => (String::new(), Vec::new()),
        };
        let rest = args_text.trim();
        let mut node = Node {
            cmd: cmd.to_string(),
            flags: flag_words,
            original: line.to_string(),
            ..Node::default()
        };
        match cmd.to_lowercase().as_str() {
            "add" | "copy" | "volume" => match json::parse_array(rest) {
                JsonArray::Strings(v) => {
                    node.args = v;
                    node.json = true;
                }
                JsonArray::NotStrings => return Err(not_strings()),
                JsonArray::NotJson => node.args = split_ws(rest),
            },
            "cmd" | "entrypoint" | "run" | "shell" => node.maybe_json(rest)?,
            "arg" => node.args = parse_words(rest, escape),
            "env" => node.pairs = parse_name_val(rest, "ENV", escape)?,
            "label" => node.pairs = parse_name_val(rest, "LABEL", escape)?,
            "expose" | "from" => node.args = split_ws(rest),
            "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
                node.args = vec![rest.to_string()];
            }
            "healthcheck" => {
                let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
                if sep > 0 {
                    node.args.push(rest[..sep].to_string());
                    let cmdtext = rest[sep..].trim_start();
                    let mut sub = Node::default();
                    sub.maybe_json(cmdtext)?;
                    node.args.extend(sub.args);
                    node.json = sub.json;
                }
            }
            "onbuild" if !rest.is_empty() && depth < 2 => {
                let sub = Node::from_line_at(rest, escape, depth + 1)?;
                node.args.push(sub.cmd.clone());
                node.args.extend(sub.args.iter().cloned());
                node.sub = Some(Box::new(sub));
            }
            _ => {}
        }
        Ok(node)
    }

    /// BuildKit's `parseMaybeJSON`.
    fn maybe_json(&mut self, rest: &str) -> Result<(), String> {
        if rest.is_empty() {
            return Ok(());
        }
        match json::parse_array(rest) {
            JsonArray::Strings(v) => {
                self.args = v;
                self.json = true;
            }
            JsonArray::NotStrings => return Err(not_strings()),
            JsonArray::NotJson => self.args = vec![rest.to_string()],
        }
        Ok(())
    }

    /// Whether heredocs are looked for after this line: `RUN`, `COPY`, `ADD` (also as an
    /// `ONBUILD` trigger) in their non-JSON forms.
    pub(crate) fn can_contain_heredoc(&self) -> bool {
        let n = match (&self.sub, self.cmd.eq_ignore_ascii_case("onbuild")) {
            (Some(sub), true) => sub,
            _ => self,
        };
        matches!(n.cmd.to_lowercase().as_str(), "add" | "copy" | "run") && !n.json
    }
}

fn not_strings() -> String {
    "when using JSON array syntax, arrays must be comprised of strings only".into()
}

/// BuildKit's `parseNameVal` for `ENV` and `LABEL`.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts: Vec<&str> = rest.splitn(2, is_ws).collect();
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        let value = parts[1].trim_start_matches(is_ws);
        return Ok(vec![(parts[0].to_string(), value.to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(w)
            )),
        })
        .collect()
}

/// What a node becomes.
pub(crate) enum Built {
    /// A `FROM`: a new stage.
    From(Stage),
    /// Any other instruction.
    Instr(Instruction),
}

fn at_least_one(cmd: &str) -> String {
    format!("{cmd} requires at least one argument")
}

fn exactly_one(cmd: &str) -> String {
    format!("{cmd} requires exactly one argument")
}

fn no_dest(cmd: &str) -> String {
    format!(
        "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
    )
}

/// Checks a node's arguments and flags and makes the instruction or stage.
pub(crate) fn build(node: &Node, escape: char) -> Result<Built, Error> {
    build_inner(node, escape).map_err(|m| Error::parse(node.line, m))
}

fn no_flags(node: &Node) -> Result<(), String> {
    Flags::new(&[]).parse(&node.flags).map(|_| ())
}

fn shell_or_exec(node: &Node) -> ShellOrExec {
    if node.json {
        ShellOrExec::Exec(node.args.clone())
    } else {
        ShellOrExec::Shell(node.args.join(" "))
    }
}

fn build_inner(node: &Node, escape: char) -> Result<Built, String> {
    let lower = node.cmd.to_lowercase();
    let original = node.original.trim().to_string();
    let args = &node.args;
    let kind = match lower.as_str() {
        "from" => return build_from(node, original).map(Built::From),
        "env" | "label" => {
            let name = if lower == "env" { "ENV" } else { "LABEL" };
            no_flags(node)?;
            if node.pairs.is_empty() {
                return Err(at_least_one(name));
            }
            if node.pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(format!("{name} names can not be blank"));
            }
            if lower == "env" {
                Kind::Env(node.pairs.clone())
            } else {
                Kind::Label(node.pairs.clone())
            }
        }
        "maintainer" => {
            if args.len() != 1 {
                return Err(exactly_one("MAINTAINER"));
            }
            no_flags(node)?;
            Kind::Maintainer(args[0].clone())
        }
        "add" | "copy" => build_copy(node, lower == "add")?,
        "onbuild" => build_onbuild(node, escape)?,
        "workdir" => {
            if args.len() != 1 {
                return Err(exactly_one("WORKDIR"));
            }
            no_flags(node)?;
            Kind::Workdir(args[0].clone())
        }
        "run" => build_run(node)?,
        "cmd" => {
            no_flags(node)?;
            Kind::Cmd(shell_or_exec(node))
        }
        "entrypoint" => {
            no_flags(node)?;
            Kind::Entrypoint(shell_or_exec(node))
        }
        "healthcheck" => Kind::Healthcheck(build_healthcheck(node)?),
        "expose" => {
            if args.is_empty() {
                return Err(at_least_one("EXPOSE"));
            }
            no_flags(node)?;
            Kind::Expose(args.clone())
        }
        "user" => {
            if args.len() != 1 {
                return Err(exactly_one("USER"));
            }
            no_flags(node)?;
            Kind::User(args[0].clone())
        }
        "volume" => {
            if args.is_empty() {
                return Err(at_least_one("VOLUME"));
            }
            no_flags(node)?;
            let mut vols = Vec::new();
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                vols.push(v.to_string());
            }
            Kind::Volume(vols)
        }
        "stopsignal" => {
            // BuildKit does not look at STOPSIGNAL's flags at all.
            if args.len() != 1 {
                return Err(exactly_one("STOPSIGNAL"));
            }
            Kind::Stopsignal(args[0].clone())
        }
        "arg" => {
            if args.is_empty() {
                return Err(at_least_one("ARG"));
            }
            let mut out = Vec::new();
            for a in args {
                match a.split_once('=') {
                    Some(("", _)) => return Err("ARG names can not be blank".into()),
                    Some((k, v)) => out.push(Arg {
                        name: k.to_string(),
                        default: Some(v.to_string()),
                    }),
                    None => out.push(Arg {
                        name: a.clone(),
                        default: None,
                    }),
                }
            }
            Kind::Arg(out)
        }
        "shell" => {
            no_flags(node)?;
            if args.is_empty() {
                return Err(at_least_one("SHELL"));
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            Kind::Shell(args.clone())
        }
        _ => {
            return Err(suggest(
                format!("unknown instruction: {}", node.cmd),
                &node.cmd,
                &INSTRUCTIONS,
                false,
            ));
        }
    };
    Ok(Built::Instr(Instruction {
        line: node.line,
        original,
        kind,
    }))
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn build_from(node: &Node, original: String) -> Result<Stage, String> {
    let args = &node.args;
    let name = if args.len() == 3 && args[1].eq_ignore_ascii_case("as") {
        let name = args[2].to_lowercase();
        if !is_valid_stage_name(&name) {
            return Err(format!(
                "invalid name for build stage: {}, name can't start with a number or contain symbols",
                go_quote(&args[2])
            ));
        }
        Some(name)
    } else if args.len() != 1 {
        return Err("FROM requires either one or three arguments".into());
    } else {
        None
    };
    let f = Flags::new(&[("platform", FlagType::Str)]).parse(&node.flags)?;
    Ok(Stage {
        index: 0,
        name,
        base: args[0].clone(),
        platform: f.string("platform").filter(|p| !p.is_empty()),
        line: node.line,
        original,
        instructions: Vec::new(),
    })
}

fn build_copy(node: &Node, add: bool) -> Result<Kind, String> {
    let name = if add { "ADD" } else { "COPY" };
    if node.args.len() < 2 {
        return Err(no_dest(name));
    }
    let f = if add {
        Flags::new(&[
            ("chown", FlagType::Str),
            ("chmod", FlagType::Str),
            ("link", FlagType::Bool),
            ("keep-git-dir", FlagType::Bool),
            ("checksum", FlagType::Str),
            ("unpack", FlagType::Bool),
            ("exclude", FlagType::Strings),
        ])
    } else {
        Flags::new(&[
            ("chown", FlagType::Str),
            ("from", FlagType::Str),
            ("chmod", FlagType::Str),
            ("link", FlagType::Bool),
            ("exclude", FlagType::Strings),
            ("parents", FlagType::Bool),
        ])
    }
    .parse(&node.flags)?;

    let (srcs, dest) = node.args.split_at(node.args.len() - 1);
    let dest = dest[0].clone();
    if lexer::parse_heredoc_word(&dest).ok().flatten().is_some() {
        return Err(format!("{name} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut heredocs = Vec::new();
    for src in srcs {
        match lexer::parse_heredoc_word(src).ok().flatten() {
            Some(h) => {
                let content = node
                    .heredocs
                    .iter()
                    .find(|d| d.name == h.name)
                    .map(|d| d.content.clone())
                    .unwrap_or_default();
                heredocs.push(Heredoc {
                    name: h.name,
                    content,
                    expand: h.expand,
                    strip_tabs: h.strip_tabs,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let args = CopyArgs {
        sources,
        dest,
        from: nonempty(f.string("from")),
        chown: nonempty(f.string("chown")),
        chmod: nonempty(f.string("chmod")),
        link: f.bool("link"),
        parents: f.bool("parents"),
        checksum: nonempty(f.string("checksum")),
        keep_git_dir: f.bool("keep-git-dir"),
        unpack: f.bool_opt("unpack"),
        exclude: f.strings("exclude"),
        heredocs,
        json: node.json,
    };
    Ok(if add {
        Kind::Add(args)
    } else {
        Kind::Copy(args)
    })
}

fn build_run(node: &Node) -> Result<Kind, String> {
    let f = Flags::new(&[
        ("mount", FlagType::Strings),
        ("network", FlagType::Str),
        ("security", FlagType::Str),
    ])
    .parse(&node.flags)?;
    let mut mounts = Vec::new();
    for spec in f.strings("mount") {
        mounts.push(flags::parse_mount(&spec, spec.contains('$'))?);
    }
    let network = f.string("network");
    if let Some(n) = &network
        && !matches!(n.as_str(), "default" | "none" | "host")
    {
        return Err(format!("invalid network mode {}", go_quote(n)));
    }
    let security = f.string("security");
    if let Some(s) = &security
        && !matches!(s.as_str(), "sandbox" | "insecure")
    {
        return Err(format!("security {} is not valid", go_quote(s)));
    }
    Ok(Kind::Run {
        cmd: shell_or_exec(node),
        heredocs: node.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

fn build_healthcheck(node: &Node) -> Result<Healthcheck, String> {
    let Some(typ) = node.args.first() else {
        return Err(at_least_one("HEALTHCHECK"));
    };
    let typ = typ.to_uppercase();
    let rest = &node.args[1..];
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(Healthcheck::None);
    }
    let f = Flags::new(&[
        ("interval", FlagType::Str),
        ("timeout", FlagType::Str),
        ("start-period", FlagType::Str),
        ("start-interval", FlagType::Str),
        ("retries", FlagType::Str),
    ])
    .parse(&node.flags)?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    let cmd: Vec<String> = if node.json {
        rest.to_vec()
    } else if rest.is_empty() {
        Vec::new()
    } else {
        vec![rest.join(" ")]
    };
    if cmd.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let mut test = vec![if node.json { "CMD" } else { "CMD-SHELL" }.to_string()];
    test.extend(cmd);
    let interval = |name: &str| -> Result<Option<std::time::Duration>, String> {
        let Some(v) = f.string(name).filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let too_small = || format!("Interval {} cannot be less than 1ms", go_quote(name));
        match parse_go_duration(&v) {
            Ok(d) if d.is_zero() => Ok(None),
            Ok(d) if d < std::time::Duration::from_millis(1) => Err(too_small()),
            Ok(d) => Ok(Some(d)),
            Err(None) => Err(too_small()),
            Err(Some(msg)) => Err(msg),
        }
    };
    let interval_v = interval("interval")?;
    let timeout = interval("timeout")?;
    let start_period = interval("start-period")?;
    let start_interval = interval("start-interval")?;
    let retries = match f.string("retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let n: i64 = parse_go_int32(&v)?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            // Non-negative and within i32, so it fits.
            Some(u32::try_from(n).unwrap_or(u32::MAX))
        }
    };
    Ok(Healthcheck::Check {
        test,
        interval: interval_v,
        timeout,
        start_period,
        start_interval,
        retries,
    })
}

/// Go's `strconv.ParseInt(v, 10, 32)` with its messages.
fn parse_go_int32(v: &str) -> Result<i64, String> {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "strconv.ParseInt: parsing {}: invalid syntax",
            go_quote(v)
        ));
    }
    match v.parse::<i64>() {
        Ok(n) if (i64::from(i32::MIN)..=i64::from(i32::MAX)).contains(&n) => Ok(n),
        _ => Err(format!(
            "strconv.ParseInt: parsing {}: value out of range",
            go_quote(v)
        )),
    }
}

fn build_onbuild(node: &Node, escape: char) -> Result<Kind, String> {
    let Some(first) = node.args.first() else {
        return Err(at_least_one("ONBUILD"));
    };
    no_flags(node)?;
    let trigger = first.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into());
        }
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    let Some(sub) = &node.sub else {
        return Err(at_least_one("ONBUILD"));
    };
    let mut sub = (**sub).clone();
    sub.line = node.line;
    sub.heredocs = node.heredocs.clone();
    // The expression without the ONBUILD keyword, as BuildKit stores it.
    let t = node.original.trim_start();
    sub.original = match t.get(..7) {
        Some(k) if k.eq_ignore_ascii_case("onbuild") => t[7..].trim_start().to_string(),
        _ => t.to_string(),
    };
    match build_inner(&sub, escape)? {
        Built::Instr(ins) => Ok(Kind::Onbuild(Box::new(ins))),
        Built::From(_) => Err(format!("{trigger} isn't allowed as an ONBUILD trigger")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            parse_words("a=\"b c\" d='e f' g\\ h", '\\'),
            ["a=\"b c\"", "d='e f'", "g\\ h"]
        );
        assert_eq!(parse_words("x=\"a\\\"b\"", '\\'), ["x=\"a\\\"b\""]);
        assert_eq!(parse_words("x=''", '\\'), ["x=''"]);
        assert_eq!(parse_words("  ", '\\'), Vec::<String>::new());
        assert_eq!(parse_words("end\\", '\\'), ["end"]);
    }

    #[test]
    fn name_val_forms() {
        assert_eq!(
            parse_name_val("a b c", "ENV", '\\').unwrap(),
            [("a".to_string(), "b c".to_string())]
        );
        assert_eq!(
            parse_name_val("a=1 b=\"x y\"", "ENV", '\\').unwrap(),
            [
                ("a".to_string(), "1".to_string()),
                ("b".to_string(), "\"x y\"".to_string())
            ]
        );
        assert_eq!(
            parse_name_val("a", "ENV", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
        assert_eq!(
            parse_name_val("a=1 b", "LABEL", '\\').unwrap_err(),
            "Syntax error - can't find = in \"b\". Must be of the form: name=value"
        );
    }

    #[test]
    fn node_split() {
        let n = Node::from_line("copy --from=x  a b   c ", '\\').unwrap();
        assert_eq!(n.cmd, "copy");
        assert_eq!(n.flags, ["--from=x"]);
        assert_eq!(n.args, ["a", "b", "c"]);
        let n = Node::from_line("RUN [\"a\", \"b\"]", '\\').unwrap();
        assert!(n.json);
        assert!(!n.can_contain_heredoc());
        let n = Node::from_line("ONBUILD RUN <<EOF", '\\').unwrap();
        assert!(n.can_contain_heredoc());
        assert_eq!(n.args, ["RUN", "<<EOF"]);
        assert!(Node::from_line("CMD [1]", '\\').is_err());
        let n = Node::from_line("HEALTHCHECK --interval=5s CMD [\"a\"]", '\\').unwrap();
        assert_eq!(n.args, ["CMD", "a"]);
        assert!(n.json);
    }

    #[test]
    fn int32() {
        assert_eq!(parse_go_int32("3"), Ok(3));
        assert_eq!(parse_go_int32("-3"), Ok(-3));
        assert!(parse_go_int32("x").unwrap_err().contains("invalid syntax"));
        assert!(
            parse_go_int32("99999999999")
                .unwrap_err()
                .contains("out of range")
        );
    }
}
