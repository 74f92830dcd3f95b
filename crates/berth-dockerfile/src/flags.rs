//! Instruction flags (`--from=…`, `--mount=…`): extracting them from the instruction line as
//! BuildKit's `extractBuilderFlags` does, checking them as its `BFlags.Parse` does, and
//! reading `--mount` values.

use crate::util::{go_quote, parse_go_bool, parse_go_u32, ram_in_bytes, suggest};
use crate::{Mount, MountKind};

/// Splits the leading `--flag` words off `line`: gives the rest of the line and the flag
/// words (quotes removed, escapes applied). A bare `--` word ends the flags.
pub(crate) fn extract(line: &str, escape: char) -> (String, Vec<String>) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let chars: Vec<(usize, char)> = line.char_indices().collect();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut k = 0usize;
    loop {
        let at_end = k >= chars.len();
        let (pos, mut ch) = if at_end { (line.len(), '\0') } else { chars[k] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                k += 1;
                continue;
            }
            if ch != '-' || k + 1 >= chars.len() || chars[k + 1].1 != '-' {
                return (line[pos..].to_string(), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (line[pos..].to_string(), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                k += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                k += 1;
                continue;
            }
            if ch == escape {
                if k + 1 >= chars.len() {
                    k += 1;
                    continue;
                }
                k += 1;
                ch = chars[k].1;
            }
            word.push(ch);
            k += 1;
            continue;
        }
        // In quotes.
        if ch == quote {
            phase = Phase::Word;
            k += 1;
            continue;
        }
        if ch == escape {
            if k + 1 >= chars.len() {
                phase = Phase::Word;
                k += 1;
                continue;
            }
            k += 1;
            ch = chars[k].1;
        }
        word.push(ch);
        k += 1;
    }
    (String::new(), words)
}

/// The kind of value a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlagType {
    Bool,
    Str,
    Strings,
}

/// The flags an instruction accepts, and after [`Flags::parse`] the values given.
pub(crate) struct Flags {
    defs: Vec<(&'static str, FlagType, Vec<String>, bool)>,
}

impl Flags {
    pub(crate) fn new(defs: &[(&'static str, FlagType)]) -> Self {
        Flags {
            defs: defs
                .iter()
                .map(|(n, t)| (*n, *t, Vec::new(), false))
                .collect(),
        }
    }

    /// Checks `args` (the flag words) against the definitions, as `BFlags.Parse` does.
    pub(crate) fn parse(mut self, args: &[String]) -> Result<Self, String> {
        for a in args {
            if a == "--" {
                return Ok(self);
            }
            let Some(stripped) = a.strip_prefix("--") else {
                return Err(format!("arg should start with -- : {a}"));
            };
            let (name, value, has_value) = match stripped.split_once('=') {
                Some((n, v)) => (n, v, true),
                None => (stripped, "", false),
            };
            let flag_name = format!("--{name}");
            let names: Vec<&str> = self.defs.iter().map(|d| d.0).collect();
            let Some(def) = self.defs.iter_mut().find(|d| d.0 == name) else {
                return Err(suggest(
                    format!("unknown flag: {flag_name}"),
                    name,
                    &names,
                    true,
                ));
            };
            if def.3 && def.1 != FlagType::Strings {
                return Err(format!("duplicate flag specified: {flag_name}"));
            }
            def.3 = true;
            match def.1 {
                FlagType::Bool => {
                    if has_value && value.is_empty() {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    }
                    let v = match value.to_lowercase().as_str() {
                        "true" | "" => "true",
                        "false" => "false",
                        _ => {
                            return Err(format!(
                                "expecting boolean value for flag {flag_name}, not: {value}"
                            ));
                        }
                    };
                    def.2 = vec![v.to_string()];
                }
                FlagType::Str => {
                    if !has_value {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    }
                    def.2 = vec![value.to_string()];
                }
                FlagType::Strings => {
                    if !has_value {
                        return Err(format!("missing a value on flag: {flag_name}"));
                    }
                    def.2.push(value.to_string());
                }
            }
        }
        Ok(self)
    }

    fn get(&self, name: &str) -> Option<&(&'static str, FlagType, Vec<String>, bool)> {
        self.defs.iter().find(|d| d.0 == name)
    }

    /// A string flag's value, if the flag was given.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .filter(|d| d.3)
            .and_then(|d| d.2.last().cloned())
    }

    /// A bool flag's value (false when not given).
    pub(crate) fn bool(&self, name: &str) -> bool {
        self.bool_opt(name).unwrap_or(false)
    }

    /// A bool flag's value, if the flag was given.
    pub(crate) fn bool_opt(&self, name: &str) -> Option<bool> {
        self.string(name).map(|v| v == "true")
    }

    /// A repeatable flag's values, in order.
    pub(crate) fn strings(&self, name: &str) -> Vec<String> {
        self.get(name).map(|d| d.2.clone()).unwrap_or_default()
    }
}

/// Splits one CSV record (Go `encoding/csv` rules: `"…"` quoting with `""` for a quote).
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    if s.is_empty() {
        return Ok(out);
    }
    let mut rest = s;
    loop {
        if let Some(q) = rest.strip_prefix('"') {
            let mut field = String::new();
            let mut it = q.char_indices().peekable();
            let mut end = None;
            while let Some((i, c)) = it.next() {
                if c == '"' {
                    if matches!(it.peek(), Some((_, '"'))) {
                        it.next();
                        field.push('"');
                    } else {
                        end = Some(i + 1);
                        break;
                    }
                } else {
                    field.push(c);
                }
            }
            let Some(end) = end else {
                return Err("extraneous or missing \" in quoted-field".into());
            };
            out.push(field);
            let after = &q[end..];
            if after.is_empty() {
                return Ok(out);
            }
            match after.strip_prefix(',') {
                Some(r) => rest = r,
                None => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            let (field, next) = match rest.split_once(',') {
                Some((f, r)) => (f, Some(r)),
                None => (rest, None),
            };
            if field.contains('"') {
                return Err("bare \" in non-quoted-field".into());
            }
            out.push(field.to_string());
            match next {
                Some(r) => rest = r,
                None => return Ok(out),
            }
        }
    }
}

const MOUNT_TYPES: [&str; 5] = ["bind", "cache", "tmpfs", "secret", "ssh"];
const SHARING_MODES: [&str; 3] = ["shared", "private", "locked"];
const MOUNT_KEYS: [&str; 19] = [
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];

/// Reads a `--mount` value. With `deferred`, fields whose value holds a `$` are kept raw when
/// they are strings and skipped otherwise, and the checks that depend on them are left for
/// after expansion (BuildKit interprets mounts only after expanding them).
pub(crate) fn parse_mount(spec: &str, deferred: bool) -> Result<Mount, String> {
    let fields = csv_fields(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = Mount {
        kind: MountKind::Bind,
        spec: spec.to_string(),
        ..Mount::default()
    };
    let mut ro_auto = true;
    let mut skipped = false;
    let bad_value = |key: &str, value: &str| format!("invalid value for {key}: {value}");
    for field in &fields {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(value) = value else {
            match key.as_str() {
                "readonly" | "ro" => {
                    m.readonly = true;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    m.readonly = false;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.kind, MountKind::Secret | MountKind::Ssh) {
                        m.required = true;
                    } else {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind.as_str()
                        ));
                    }
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let has_var = deferred && value.contains('$');
        if has_var
            && key == "from"
            && let Some(idx) = value.find('$')
            && idx != value.len() - 1
        {
            return Err(format!(
                "'{key}' doesn't support variable expansion, define alias stage instead"
            ));
        }
        let typed = !matches!(
            key.as_str(),
            "from" | "source" | "src" | "target" | "dst" | "destination" | "id" | "env"
        );
        if has_var && typed && MOUNT_KEYS.contains(&key.as_str()) {
            skipped = true;
            continue;
        }
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountKind::Bind,
                    "cache" => MountKind::Cache,
                    "tmpfs" => MountKind::Tmpfs,
                    "secret" => MountKind::Secret,
                    "ssh" => MountKind::Ssh,
                    _ => {
                        return Err(suggest(
                            format!("unsupported mount type {}", go_quote(value)),
                            value,
                            &MOUNT_TYPES,
                            true,
                        ));
                    }
                };
            }
            "from" => m.from = Some(value.to_string()),
            "source" | "src" => m.source = Some(value.to_string()),
            "target" | "dst" | "destination" => m.target = Some(value.to_string()),
            "readonly" | "ro" => {
                m.readonly = parse_go_bool(value).ok_or_else(|| bad_value(&key, value))?;
                ro_auto = false;
            }
            "readwrite" | "rw" => {
                let rw = parse_go_bool(value).ok_or_else(|| bad_value(&key, value))?;
                m.readonly = !rw;
                ro_auto = false;
            }
            "required" => {
                if matches!(m.kind, MountKind::Secret | MountKind::Ssh) {
                    m.required = parse_go_bool(value).ok_or_else(|| bad_value(&key, value))?;
                } else {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
            }
            "size" => {
                if m.kind == MountKind::Tmpfs {
                    m.size = Some(ram_in_bytes(value).ok_or_else(|| bad_value(&key, value))?);
                } else {
                    return Err(format!(
                        "unexpected key '{key}' for mount type '{}'",
                        m.kind.as_str()
                    ));
                }
            }
            "id" => m.id = Some(value.to_string()),
            "sharing" => {
                let v = value.to_lowercase();
                if !SHARING_MODES.contains(&v.as_str()) {
                    return Err(suggest(
                        format!("unsupported sharing value {}", go_quote(value)),
                        value,
                        &SHARING_MODES,
                        true,
                    ));
                }
                m.sharing = Some(v);
            }
            "mode" => {
                m.mode = Some(
                    parse_go_u32(value, 8)
                        .ok_or_else(|| format!("invalid value {value} for mode"))?,
                );
            }
            "uid" => {
                m.uid = Some(
                    parse_go_u32(value, 10)
                        .ok_or_else(|| format!("invalid value {value} for uid"))?,
                );
            }
            "gid" => {
                m.gid = Some(
                    parse_go_u32(value, 10)
                        .ok_or_else(|| format!("invalid value {value} for gid"))?,
                );
            }
            "env" => m.env = Some(value.to_string()),
            _ => {
                return Err(suggest(
                    format!("unexpected key '{key}' in '{field}'"),
                    &key,
                    &MOUNT_KEYS,
                    true,
                ));
            }
        }
    }

    if skipped {
        // The type or other typed fields are not known yet: leave the checks for later.
        if ro_auto {
            m.readonly = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
        }
        return Ok(m);
    }

    let file_info_allowed = matches!(
        m.kind,
        MountKind::Secret | MountKind::Ssh | MountKind::Cache
    );
    if !file_info_allowed {
        let t = go_quote(m.kind.as_str());
        if m.mode.is_some() {
            return Err(format!("mode not allowed for {t} type mounts"));
        }
        if m.uid.is_some() {
            return Err(format!("uid not allowed for {t} type mounts"));
        }
        if m.gid.is_some() {
            return Err(format!("gid not allowed for {t} type mounts"));
        }
    }
    if ro_auto {
        m.readonly = !matches!(m.kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if m.kind == MountKind::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        let empty = |o: &Option<String>| o.as_deref().is_none_or(str::is_empty);
        if empty(&m.source) && empty(&m.target) && empty(&m.id) {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if !empty(&m.source) && !empty(&m.id) {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountKind::Cache {
        return Err(format!(
            "invalid cache sharing set for {} mount",
            m.kind.as_str()
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_flags() {
        let (rest, f) = extract("--from=build --chown=\"a b\" src dst", '\\');
        assert_eq!(rest, "src dst");
        assert_eq!(f, ["--from=build", "--chown=a b"]);
        let (rest, f) = extract("--link -- --weird dst", '\\');
        assert_eq!(rest.trim(), "--weird dst");
        assert_eq!(f, ["--link"]);
        let (rest, f) = extract("--a=1 --b", '\\');
        assert_eq!(rest, "");
        assert_eq!(f, ["--a=1", "--b"]);
        let (rest, f) = extract("-x y", '\\');
        assert_eq!(rest, "-x y");
        assert!(f.is_empty());
        let (rest, f) = extract("--m=a\\ b`c x", '`');
        assert_eq!(f, ["--m=a\\"]);
        assert_eq!(rest, "b`c x");
        let (_, f) = extract("--m=a` b`c x", '`');
        assert_eq!(f, ["--m=a bc"]);
        let (_, f) = extract("--e=\"\" x", '\\');
        assert_eq!(f, ["--e="]);
    }

    #[test]
    fn flag_checks() {
        let defs = [
            ("from", FlagType::Str),
            ("link", FlagType::Bool),
            ("exclude", FlagType::Strings),
        ];
        let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let f = Flags::new(&defs)
            .parse(&args(&["--from=a", "--link", "--exclude=x", "--exclude=y"]))
            .unwrap();
        assert_eq!(f.string("from").as_deref(), Some("a"));
        assert!(f.bool("link"));
        assert_eq!(f.strings("exclude"), ["x", "y"]);
        let err = |v: &[&str]| Flags::new(&defs).parse(&args(v)).err().unwrap();
        assert_eq!(err(&["--bogus"]), "unknown flag: --bogus");
        assert_eq!(
            err(&["--frm=a"]),
            "unknown flag: --frm (did you mean from?)"
        );
        assert_eq!(
            err(&["--from=a", "--from=b"]),
            "duplicate flag specified: --from"
        );
        assert_eq!(err(&["--from"]), "missing a value on flag: --from");
        assert_eq!(err(&["--link="]), "missing a value on flag: --link");
        assert_eq!(
            err(&["--link=maybe"]),
            "expecting boolean value for flag --link, not: maybe"
        );
        let f = Flags::new(&defs).parse(&args(&["--link=FALSE"])).unwrap();
        assert_eq!(f.bool_opt("link"), Some(false));
    }

    #[test]
    fn mounts() {
        let m = parse_mount(
            "type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755,uid=1000",
            false,
        )
        .unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing.as_deref(), Some("locked"));
        assert_eq!(m.mode, Some(0o755));
        assert_eq!(m.uid, Some(1000));
        assert!(!m.readonly);
        let m = parse_mount("target=/src", false).unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.readonly);
        let m = parse_mount("type=bind,source=.,target=/src,rw", false).unwrap();
        assert!(!m.readonly);
        let m = parse_mount("type=secret,id=tok,required,env=TOKEN", false).unwrap();
        assert!(m.required && m.readonly);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = parse_mount("type=tmpfs,target=/t,size=64m", false).unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = parse_mount("\"type=bind,x\",target=/a", false);
        assert!(m.is_err());
        let m = parse_mount("type=ssh", false).unwrap();
        assert_eq!(m.kind, MountKind::Ssh);

        let e = |s: &str| parse_mount(s, false).unwrap_err();
        assert_eq!(e("type=foo"), "unsupported mount type \"foo\"");
        assert_eq!(
            e("type=cahce"),
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert_eq!(
            e("type=cache,sharing=nope"),
            "unsupported sharing value \"nope\""
        );
        assert_eq!(
            e("target=/a,mode=0755"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            e("type=bind,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            e("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            e("type=secret,id=a,src=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            e("type=secret,id=a,from=x"),
            "secret mount should not have a from"
        );
        assert_eq!(
            e("type=bind,sharing=shared"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            e("type=cache,size=1m"),
            "unexpected key 'size' for mount type 'cache'"
        );
        assert_eq!(e("foo"), "invalid field 'foo' must be a key=value pair");
        assert_eq!(
            e("targt=/x"),
            "unexpected key 'targt' in 'targt=/x' (did you mean target?)"
        );
        assert_eq!(e("type=cache,uid=-1"), "invalid value -1 for uid");
        assert_eq!(e("type=cache,mode=9"), "invalid value 9 for mode");
        assert_eq!(e("ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            e("a\"b"),
            "failed to parse csv mounts: bare \" in non-quoted-field"
        );

        let m = parse_mount("type=cache,target=$HOME/.cache,uid=$UID", true).unwrap();
        assert_eq!(m.target.as_deref(), Some("$HOME/.cache"));
        assert_eq!(m.uid, None);
        assert_eq!(
            parse_mount("from=$STAGE,target=/x", true).unwrap_err(),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
    }
}
