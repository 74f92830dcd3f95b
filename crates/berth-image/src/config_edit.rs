//! Image configs that berth writes back (commit, import) are edited here, as JSON objects,
//! so that every field berth does not model survives the edit: Docker's `Healthcheck`,
//! `OnBuild`, `Shell`, `ArgsEscaped`, `Domainname`… in `config`, and `container_config`,
//! `docker_version`, `container`… at the top, none of which oci-spec's [`ImageConfiguration`]
//! has (a typed round trip would drop them). Reading a config (what a container runs) uses
//! oci-spec's types ([`crate::config`]); a config written here is checked to read that way.

use berth_registry::Platform;
use oci_spec::image::{History, ImageConfiguration};
use serde_json::{Map, Value, json};

use crate::{Error, Result};

/// An image config being edited (the whole JSON object).
#[derive(Debug, Clone)]
pub(crate) struct ConfigEdit {
    top: Map<String, Value>,
}

impl ConfigEdit {
    /// A new config for `platform`, made at `created` (RFC 3339), with no layers.
    pub(crate) fn new(platform: &Platform, created: &str) -> ConfigEdit {
        let mut top = Map::new();
        top.insert("architecture".into(), json!(platform.architecture()));
        top.insert("os".into(), json!(platform.os()));
        if let Some(v) = platform.variant() {
            top.insert("variant".into(), json!(v));
        }
        top.insert("created".into(), json!(created));
        top.insert("config".into(), json!({}));
        top.insert("rootfs".into(), json!({"type": "layers", "diff_ids": []}));
        ConfigEdit { top }
    }

    /// The config blob `bytes` (the blob `digest`), which must be a JSON object.
    pub(crate) fn parse(digest: &str, bytes: &[u8]) -> Result<ConfigEdit> {
        let bad = |why: String| Error::BadConfig {
            digest: digest.to_string(),
            why,
        };
        match serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))? {
            Value::Object(top) => Ok(ConfigEdit { top }),
            _ => Err(bad("not a JSON object".into())),
        }
    }

    /// The container defaults (`config`), made an object if missing or not one.
    fn container(&mut self) -> &mut Map<String, Value> {
        object(&mut self.top, "config")
    }

    /// Apply one Dockerfile instruction to the container defaults, as `docker commit
    /// --change` and `docker import --change` do (see [`apply_change`]).
    pub(crate) fn apply_change(&mut self, change: &str) -> Result<()> {
        apply_change(self.container(), change)
    }

    /// When the image was made (RFC 3339).
    pub(crate) fn set_created(&mut self, when: &str) {
        self.top.insert("created".into(), json!(when));
    }

    /// Its author (`docker commit --author`); `None` removes the base image's.
    pub(crate) fn set_author(&mut self, author: Option<&str>) {
        set_or_remove(&mut self.top, "author", author);
    }

    /// Its comment (`docker commit --message`); `None` removes the base image's.
    pub(crate) fn set_comment(&mut self, comment: Option<&str>) {
        set_or_remove(&mut self.top, "comment", comment);
    }

    /// The diff IDs of its layers, bottom first (`rootfs.diff_ids`).
    pub(crate) fn set_diff_ids(&mut self, ids: &[String]) {
        let rootfs = object(&mut self.top, "rootfs");
        rootfs.entry("type").or_insert_with(|| json!("layers"));
        rootfs.insert("diff_ids".into(), json!(ids));
    }

    /// Add a step to its history.
    pub(crate) fn push_history(&mut self, step: &History) -> Result<()> {
        let step = serde_json::to_value(step).map_err(|e| Error::Invalid(e.to_string()))?;
        let history = self.top.entry("history").or_insert_with(|| json!([]));
        if !history.is_array() {
            *history = json!([]);
        }
        if let Some(h) = history.as_array_mut() {
            h.push(step);
        }
        Ok(())
    }

    /// The config's bytes, checked to read as an image config.
    pub(crate) fn to_bytes(&self) -> Result<Vec<u8>> {
        let bytes = serde_json::to_vec(&self.top).map_err(|e| Error::Invalid(e.to_string()))?;
        serde_json::from_slice::<ImageConfiguration>(&bytes).map_err(|e| {
            Error::Invalid(format!("the image config made does not read back: {e}"))
        })?;
        Ok(bytes)
    }
}

/// `map[key]` as an object, made one if it is missing or something else.
fn object<'m>(map: &'m mut Map<String, Value>, key: &str) -> &'m mut Map<String, Value> {
    let v = map.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    match v {
        Value::Object(o) => o,
        _ => unreachable!("made an object just above"),
    }
}

fn set_or_remove(map: &mut Map<String, Value>, key: &str, value: Option<&str>) {
    match value {
        Some(v) => map.insert(key.into(), json!(v)),
        None => map.remove(key),
    };
}

/// Apply one Dockerfile instruction to an image's container defaults (`config`), as
/// `docker commit --change` / `docker import --change`: CMD, ENTRYPOINT, ENV, EXPOSE,
/// HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
pub(crate) fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<()> {
    let bad = |why: &str| Error::InvalidChange {
        change: change.to_string(),
        why: why.to_string(),
    };
    let trimmed = change.trim();
    let (instr, rest) = trimmed
        .split_once(char::is_whitespace)
        .map(|(i, r)| (i, r.trim()))
        .unwrap_or((trimmed, ""));
    if rest.is_empty() {
        return Err(bad("the instruction has no argument"));
    }
    let json_array = |s: &str| -> Option<Vec<String>> {
        s.starts_with('[')
            .then(|| serde_json::from_str::<Vec<String>>(s).ok())
            .flatten()
    };
    match instr.to_ascii_uppercase().as_str() {
        "CMD" | "ENTRYPOINT" => {
            let argv = json_array(rest)
                .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.to_string()]);
            let key = if instr.eq_ignore_ascii_case("CMD") {
                "Cmd"
            } else {
                "Entrypoint"
            };
            config.insert(key.into(), json!(argv));
        }
        "ENV" => {
            let pairs = key_values(rest).ok_or_else(|| bad("expected KEY=VALUE … or KEY VALUE"))?;
            let env = config
                .entry("Env")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| bad("Env is not a list"))?;
            for (k, v) in pairs {
                let prefix = format!("{k}=");
                env.retain(|e| !e.as_str().is_some_and(|e| e.starts_with(&prefix)));
                env.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let pairs = key_values(rest).ok_or_else(|| bad("expected KEY=VALUE …"))?;
            let labels = config
                .entry("Labels")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| bad("Labels is not a map"))?;
            for (k, v) in pairs {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            let ports = config
                .entry("ExposedPorts")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| bad("ExposedPorts is not a map"))?;
            for p in rest.split_whitespace() {
                let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                let proto = proto.to_ascii_lowercase();
                if port.parse::<u16>().is_err() || !matches!(proto.as_str(), "tcp" | "udp" | "sctp")
                {
                    return Err(bad("ports are PORT or PORT/tcp|udp|sctp"));
                }
                ports.insert(format!("{port}/{proto}"), json!({}));
            }
        }
        "VOLUME" => {
            let paths = json_array(rest)
                .unwrap_or_else(|| rest.split_whitespace().map(str::to_string).collect());
            let volumes = config
                .entry("Volumes")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .ok_or_else(|| bad("Volumes is not a map"))?;
            for p in paths {
                volumes.insert(p, json!({}));
            }
        }
        "ONBUILD" => {
            config
                .entry("OnBuild")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| bad("OnBuild is not a list"))?
                .push(json!(rest));
        }
        "HEALTHCHECK" => {
            let health = healthcheck(rest).map_err(|why| bad(&why))?;
            config.insert("Healthcheck".into(), health);
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "WORKDIR" => {
            config.insert("WorkingDir".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(rest));
        }
        _ => {
            return Err(bad(
                "not an instruction a commit or an import can apply (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)",
            ));
        }
    }
    Ok(())
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
/// [--start-interval=D] [--retries=N] CMD command`, as Docker's config stores it: `Test`
/// (`["NONE"]`, `["CMD", args…]` for the JSON form, `["CMD-SHELL", "command"]`), durations in
/// nanoseconds and `Retries`, the ones not given left out.
fn healthcheck(rest: &str) -> Result<Value, String> {
    if rest.eq_ignore_ascii_case("NONE") {
        return Ok(json!({"Test": ["NONE"]}));
    }
    let mut out = Map::new();
    let mut rest = rest.trim_start();
    while let Some(flag) = rest.strip_prefix("--") {
        let (arg, after) = flag.split_once(char::is_whitespace).unwrap_or((flag, ""));
        let (name, value) = arg
            .split_once('=')
            .ok_or_else(|| format!("--{arg}: expected --NAME=VALUE"))?;
        let key = match name {
            "interval" => "Interval",
            "timeout" => "Timeout",
            "start-period" => "StartPeriod",
            "start-interval" => "StartInterval",
            "retries" => "Retries",
            _ => return Err(format!("unknown HEALTHCHECK option --{name}")),
        };
        let parsed = if key == "Retries" {
            value
                .parse::<u32>()
                .map_err(|_| format!("--retries={value}: not a number"))?
                .into()
        } else {
            let ns =
                go_duration(value).ok_or_else(|| format!("--{name}={value}: not a duration"))?;
            if ns != 0 && ns < 1_000_000 {
                return Err(format!("--{name}={value}: less than 1ms"));
            }
            ns
        };
        if parsed != 0 {
            out.insert(key.into(), json!(parsed));
        }
        rest = after.trim_start();
    }
    let (word, command) = rest
        .split_once(char::is_whitespace)
        .map(|(w, c)| (w, c.trim()))
        .unwrap_or((rest, ""));
    if !word.eq_ignore_ascii_case("CMD") || command.is_empty() {
        return Err("expected NONE or [OPTIONS] CMD command".into());
    }
    let test: Vec<String> = match serde_json::from_str::<Vec<String>>(command) {
        Ok(argv) if command.starts_with('[') => {
            std::iter::once("CMD".to_string()).chain(argv).collect()
        }
        _ => vec!["CMD-SHELL".into(), command.to_string()],
    };
    out.insert("Test".into(), json!(test));
    Ok(Value::Object(out))
}

/// A Go duration (`30s`, `1m30s`, `1.5h`, `500ms`, `0`) in nanoseconds.
fn go_duration(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    (total.is_finite() && total < u64::MAX as f64).then_some(total as u64)
}

/// `K=V K2="V 2"` or the legacy `K some value`.
fn key_values(s: &str) -> Option<Vec<(String, String)>> {
    let first = s.split_whitespace().next()?;
    if !first.contains('=') {
        let (k, v) = s.split_once(char::is_whitespace)?;
        return Some(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            key.push(c);
        }
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        let mut value = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.peek().copied() {
                        value.push(n);
                    }
                }
                (_, c) => value.push(c),
            }
            chars.next();
        }
        if quote.is_some() {
            return None;
        }
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker() {
        let mut c = Map::new();
        for ch in [
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/init --flag",
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "EXPOSE 80 53/udp",
            "LABEL org.x=y",
            "VOLUME /data /logs",
            "USER nobody:nogroup",
            "WORKDIR /srv",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN true",
            "HEALTHCHECK --interval=1m30s --timeout=5s --retries=3 CMD wget -q localhost",
        ] {
            apply_change(&mut c, ch).unwrap();
        }
        let c = Value::Object(c);
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(
            c["Entrypoint"],
            json!(["/bin/sh", "-c", "/bin/init --flag"])
        );
        assert_eq!(c["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Labels"], json!({"org.x": "y"}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
        assert_eq!(c["User"], "nobody:nogroup");
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["OnBuild"], json!(["RUN true"]));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 90_000_000_000u64,
                   "Timeout": 5_000_000_000u64, "Retries": 3})
        );
        let mut c = Map::new();
        apply_change(&mut c, r#"HEALTHCHECK CMD ["/bin/check", "-v"]"#).unwrap();
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD", "/bin/check", "-v"]})
        );
        apply_change(&mut c, "healthcheck none").unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
        for bad in [
            "RUN rm -rf /",
            "CMD",
            "EXPOSE http",
            "ENV A=\"unclosed",
            "HEALTHCHECK --interval=soon CMD true",
            "HEALTHCHECK --interval=10us CMD true",
            "HEALTHCHECK --colour=red CMD true",
            "HEALTHCHECK wget localhost",
        ] {
            assert!(
                matches!(apply_change(&mut c, bad), Err(Error::InvalidChange { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("0"), Some(0));
        assert_eq!(go_duration("30s"), Some(30_000_000_000));
        assert_eq!(go_duration("1.5h"), Some(5_400_000_000_000));
        assert_eq!(go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(go_duration("250ms"), Some(250_000_000));
        for bad in ["", "5", "s", "1d", "1..5s"] {
            assert_eq!(go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn unmodelled_fields_survive_an_edit() {
        let base = json!({
            "architecture": "amd64", "os": "linux", "docker_version": "20.10.24",
            "container": "3f2a", "container_config": {"Hostname": "3f2a", "Cmd": ["sh"]},
            "config": {"Cmd": ["sh"], "Healthcheck": {"Test": ["CMD", "true"]},
                       "OnBuild": ["RUN a"], "Shell": ["/bin/bash", "-c"], "ArgsEscaped": true,
                       "Domainname": "example.org"},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [{"created_by": "base"}],
        });
        let mut e = ConfigEdit::parse("sha256:x", &serde_json::to_vec(&base).unwrap()).unwrap();
        e.apply_change("ENV A=1").unwrap();
        e.set_diff_ids(&["sha256:aa".into()]);
        e.set_author(Some("me"));
        e.push_history(&History::default()).unwrap();
        let out: Value = serde_json::from_slice(&e.to_bytes().unwrap()).unwrap();
        for key in ["docker_version", "container", "container_config"] {
            assert_eq!(out[key], base[key], "{key}");
        }
        for key in [
            "Healthcheck",
            "OnBuild",
            "Shell",
            "ArgsEscaped",
            "Domainname",
            "Cmd",
        ] {
            assert_eq!(out["config"][key], base["config"][key], "{key}");
        }
        assert_eq!(out["config"]["Env"], json!(["A=1"]));
        assert_eq!(out["rootfs"]["diff_ids"], json!(["sha256:aa"]));
        assert_eq!(out["author"], "me");
        assert_eq!(out["history"].as_array().unwrap().len(), 2);
        assert!(ConfigEdit::parse("sha256:x", b"[1]").is_err());
    }
}
