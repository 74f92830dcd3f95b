//! `--version` in runc's format. dockerd runs `<runtime> --version` for `docker info` and parses
//! the lines `<name> version <v>` and `commit: <c>` (moby's parseRuntimeVersion); it logs an
//! error when neither is there.

/// The text `--version` prints:
///
/// ```text
/// berth-runc version 0.1.0
/// commit: <git describe of the build, or "unknown">
/// spec: 1.2.1
/// libseccomp: 2.5.4
/// ```
pub fn text() -> String {
    let commit = option_env!("BERTH_GIT_COMMIT")
        .filter(|c| !c.is_empty())
        .unwrap_or("unknown");
    let mut out = format!(
        "berth-runc version {}\ncommit: {commit}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        berth_runtime::spec::OCI_VERSION,
    );
    if let Some(v) = berth_seccomp::libseccomp_version() {
        out.push_str(&format!("libseccomp: {v}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    /// moby's parseRuntimeVersion (daemon/info_unix.go, Docker 20.10), transcribed: every line
    /// containing "version" gives the name (before it) and the version (after it); `commit:`
    /// gives the commit; neither is an error.
    fn moby_parse(v: &str) -> Result<(String, String, String), String> {
        let (mut runtime, mut version, mut commit) = (String::new(), String::new(), String::new());
        for line in v.trim().split('\n') {
            if line.contains("version") {
                let s: Vec<&str> = line.split("version").collect();
                runtime = s[0].trim().to_string();
                version = s[s.len() - 1].trim().to_string();
                continue;
            }
            if let Some(c) = line.strip_prefix("commit:") {
                commit = c.trim().to_string();
            }
        }
        if version.is_empty() && commit.is_empty() {
            return Err(format!("unknown output format: {v}"));
        }
        Ok((runtime, version, commit))
    }

    #[test]
    fn dockerd_parses_it() {
        let text = super::text();
        let (name, version, commit) = moby_parse(&text).unwrap();
        assert_eq!(name, "berth-runc");
        assert_eq!(version, env!("CARGO_PKG_VERSION"));
        assert!(!commit.is_empty());
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[2].starts_with("spec: 1."), "{text}");
        assert!(lines[3].starts_with("libseccomp: 2."), "{text}");
    }
}
