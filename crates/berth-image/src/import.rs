//! `docker import`: a root file system tarball becomes a one-layer image.

use std::io::Read;

use berth_registry::Platform;
use serde_json::{Map, Value, json};

use crate::archive::{LAYER_TAR, make_manifest};
use crate::{Error, ImageRecord, ImageStore, Result, util};

/// Apply one Dockerfile-style change (`docker import --change`) to an image's `config`: CMD,
/// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR.
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
                "not an instruction import can apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)",
            ));
        }
    }
    Ok(())
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

impl ImageStore {
    /// `docker import`: the root file system tarball `input` (plain, gzip or zstd) becomes a
    /// one-layer image for this host's platform, its config made from `changes` (Dockerfile
    /// instructions, see `docker import --change`), tagged `reference` if given. The layer is
    /// stored uncompressed (its digest is its diff ID).
    pub fn import(
        &self,
        input: impl Read,
        reference: Option<&str>,
        changes: &[String],
    ) -> Result<ImageRecord> {
        let tag = reference.map(crate::manage::tag_name).transpose()?;
        let mut config = Map::new();
        for c in changes {
            apply_change(&mut config, c)?;
        }
        let _lock = self.lock_shared()?;
        let tar = util::decompressed(input).map_err(Error::ArchiveRead)?;
        let (layer, size) = self.spool_unknown(tar)?;
        if size == 0 {
            return Err(Error::BadArchive(
                "the root file system tarball is empty".into(),
            ));
        }
        let now = util::now_rfc3339();
        let host = Platform::host();
        let mut image = json!({
            "architecture": host.architecture,
            "os": host.os,
            "created": now,
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.to_string()]},
            "history": [{"created": now, "created_by": "import"}],
        });
        if let Some(v) = host.variant {
            image["variant"] = json!(v);
        }
        let config_bytes = serde_json::to_vec(&image).map_err(|e| Error::Invalid(e.to_string()))?;
        let config_digest = self.blobs.put_bytes(&config_bytes)?;
        let (manifest_bytes, manifest) = make_manifest(
            &config_digest,
            config_bytes.len() as u64,
            &[(LAYER_TAR, layer, size)],
        )?;
        let manifest_digest = self.blobs.put_bytes(&manifest_bytes)?;
        let rec = self.add_image(&manifest_digest, &manifest, None)?;
        if let Some(tag) = tag {
            self.set_tags(&[(rec.id.clone(), tag)])?;
        }
        self.get(&rec.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_like_docker_import() {
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
        let mut c = Map::new();
        assert!(matches!(
            apply_change(&mut c, "RUN rm -rf /"),
            Err(Error::InvalidChange { .. })
        ));
        assert!(apply_change(&mut c, "CMD").is_err());
        assert!(apply_change(&mut c, "EXPOSE http").is_err());
        assert!(apply_change(&mut c, "ENV A=\"unclosed").is_err());
    }
}
