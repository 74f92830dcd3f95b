//! From an image's config to the process a container runs: arguments (Entrypoint + Cmd, with
//! the overrides a `run` gives), environment, working directory and user, with user and group
//! names resolved through the image's own /etc/passwd and /etc/group, as Docker does.

use std::io::Read;
use std::path::Path;

pub use oci_spec::image::{Config, ImageConfiguration};

/// What can go wrong making the process.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    /// Neither the image nor the caller gives a command.
    #[error("no command specified")]
    NoCommand,
    /// A user or group name that the image's files do not know.
    #[error("unable to find {what} {name:?}: no matching entries in {file}")]
    Unknown {
        /// "user" or "group".
        what: &'static str,
        /// The name.
        name: String,
        /// The file searched.
        file: &'static str,
    },
    /// A user spec that is not `user[:group]`.
    #[error("invalid user {0:?}")]
    InvalidUser(String),
}

/// Parse the image config `bytes` (the blob `digest`) as oci-spec's [`ImageConfiguration`],
/// for reading. Docker's fields that it does not model (Healthcheck, OnBuild, Shell, …) are
/// not in it: code that writes a config back edits it as JSON (`config_edit`) instead.
pub fn parse(digest: &str, bytes: &[u8]) -> crate::Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|e| crate::Error::BadConfig {
        digest: digest.to_string(),
        why: e.to_string(),
    })
}

/// What a `run` overrides.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// Replaces the image's Cmd.
    pub cmd: Option<Vec<String>>,
    /// Replaces the image's Entrypoint (and drops its Cmd).
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=value`, replacing the image's value of KEY.
    pub env: Vec<String>,
    /// Replaces the image's User.
    pub user: Option<String>,
    /// Replaces the image's WorkingDir.
    pub workdir: Option<String>,
    /// The container's host name (runtime specs and bundles; `berth` when not given).
    pub hostname: Option<String>,
}

/// The process to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessPlan {
    /// argv.
    pub args: Vec<String>,
    /// Environment.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
    /// Supplementary groups (from /etc/group memberships).
    pub additional_gids: Vec<u32>,
}

/// Read a file inside the image's root filesystem without following any symlink out of it.
fn read_in_root(rootfs: &Path, rel: &str) -> Option<String> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let fd = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .ok()?;
    let mut s = String::new();
    std::fs::File::from(fd)
        .take(4 << 20)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

/// Entries of a passwd/group file: name, id, (passwd: primary gid | group: members).
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
}

/// Resolve `user[:group]` against the image's files.
fn resolve_user(spec: &str, rootfs: &Path) -> Result<(u32, u32, Vec<u32>), ConfigError> {
    if spec.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    if user.is_empty() || group == Some("") {
        return Err(ConfigError::InvalidUser(spec.to_string()));
    }
    let passwd = read_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    let groups = read_in_root(rootfs, "/etc/group").unwrap_or_default();
    let pw =
        entries(&passwd).find(|f| f[0] == user || (f[2] == user && user.parse::<u32>().is_ok()));
    let (uid, mut gid, name) = match (user.parse::<u32>(), &pw) {
        (_, Some(f)) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            Some(f[0]),
        ),
        (Ok(uid), None) => (uid, 0, None),
        (Err(_), None) => {
            return Err(ConfigError::Unknown {
                what: "user",
                name: user.to_string(),
                file: "passwd file",
            });
        }
    };
    if let Some(g) = group {
        gid = match (g.parse::<u32>(), entries(&groups).find(|f| f[0] == g)) {
            (_, Some(f)) => f[2].parse().unwrap_or(0),
            (Ok(n), None) => n,
            (Err(_), None) => {
                return Err(ConfigError::Unknown {
                    what: "group",
                    name: g.to_string(),
                    file: "group file",
                });
            }
        };
    }
    // Supplementary groups: those that list the user as a member (not when a group is forced).
    let mut extra = Vec::new();
    if group.is_none()
        && let Some(name) = name
    {
        for f in entries(&groups) {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && !extra.contains(&g)
            {
                extra.push(g);
            }
        }
    }
    Ok((uid, gid, extra))
}

/// Merge `KEY=value` lists: later keys replace earlier ones, order of first appearance kept.
fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in base.iter().chain(over) {
        let key = e.split('=').next().unwrap_or(e);
        match out.iter_mut().find(|x| x.split('=').next() == Some(key)) {
            Some(slot) => *slot = e.clone(),
            None => out.push(e.clone()),
        }
    }
    out
}

/// A user as `docker run -u`/`exec -u` gives it (`name`, `uid`, `name:group`, `uid:gid`),
/// resolved in the root filesystem's /etc/passwd and /etc/group: (uid, gid, supplementary
/// gids).
pub fn resolve(spec: &str, rootfs: &Path) -> Result<(u32, u32, Vec<u32>), ConfigError> {
    resolve_user(spec, rootfs)
}

/// The process a container of this image runs.
pub fn process(
    cfg: &ImageConfiguration,
    rootfs: &Path,
    o: &Overrides,
) -> Result<ProcessPlan, ConfigError> {
    let c = cfg.config().clone().unwrap_or_default();
    let (entrypoint, cmd) = match &o.entrypoint {
        Some(ep) => (ep.clone(), o.cmd.clone().unwrap_or_default()),
        None => (
            c.entrypoint().clone().unwrap_or_default(),
            o.cmd.clone().or(c.cmd().clone()).unwrap_or_default(),
        ),
    };
    let args: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(ConfigError::NoCommand);
    }
    let mut env = merge_env(c.env().as_deref().unwrap_or_default(), &o.env);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", berth_spec::DEFAULT_PATH));
    }
    let user = o.user.clone().or(c.user().clone()).unwrap_or_default();
    let (uid, gid, additional_gids) = resolve_user(&user, rootfs)?;
    let cwd = o
        .workdir
        .clone()
        .filter(|w| !w.is_empty())
        .or(c.working_dir().clone())
        .unwrap_or_default();
    Ok(ProcessPlan {
        args,
        env,
        cwd: if cwd.is_empty() { "/".into() } else { cwd },
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("etc")).unwrap();
        std::fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            d.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\napp:x:1000:\naudio:x:29:app,www\nvideo:x:44:app\n",
        )
        .unwrap();
        d
    }

    /// A config of the fields given, with the ones oci-spec requires.
    fn cfg(v: serde_json::Value) -> ImageConfiguration {
        let mut full = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
        });
        if let (Some(full), serde_json::Value::Object(given)) = (full.as_object_mut(), v) {
            full.extend(given);
        }
        serde_json::from_value(full).unwrap()
    }

    #[test]
    fn entrypoint_cmd_and_overrides() {
        let r = rootfs();
        let c = cfg(
            serde_json::json!({"config": {"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["A=1", "PATH=/bin"], "WorkingDir": "/srv"}}),
        );
        let p = process(&c, r.path(), &Overrides::default()).unwrap();
        assert_eq!(p.args, ["/bin/app", "--serve"]);
        assert_eq!(p.env, ["A=1", "PATH=/bin"]);
        assert_eq!((p.cwd.as_str(), p.uid, p.gid), ("/srv", 0, 0));
        let o = Overrides {
            cmd: Some(vec!["--once".into()]),
            env: vec!["A=2".into(), "B=3".into()],
            ..Default::default()
        };
        let p = process(&c, r.path(), &o).unwrap();
        assert_eq!(p.args, ["/bin/app", "--once"]);
        assert_eq!(p.env, ["A=2", "PATH=/bin", "B=3"]);
        let o = Overrides {
            entrypoint: Some(vec!["sh".into()]),
            ..Default::default()
        };
        assert_eq!(
            process(&c, r.path(), &o).unwrap().args,
            ["sh"],
            "a new entrypoint drops the image's Cmd"
        );
        let bare = cfg(serde_json::json!({"config": {"Cmd": ["sh"]}}));
        let p = process(&bare, r.path(), &Overrides::default()).unwrap();
        assert_eq!(p.env[0], format!("PATH={}", berth_spec::DEFAULT_PATH));
        assert_eq!(p.cwd, "/");
        assert_eq!(
            process(&cfg(serde_json::json!({})), r.path(), &Overrides::default()),
            Err(ConfigError::NoCommand)
        );
    }

    #[test]
    fn users_and_groups_resolve_through_the_image() {
        let r = rootfs();
        let run = |u: &str| {
            let c = cfg(serde_json::json!({"config": {"Cmd": ["x"], "User": u}}));
            process(&c, r.path(), &Overrides::default()).map(|p| (p.uid, p.gid, p.additional_gids))
        };
        assert_eq!(run("app").unwrap(), (1000, 1000, vec![29, 44]));
        assert_eq!(run("www").unwrap(), (33, 33, vec![29]));
        assert_eq!(run("1000").unwrap(), (1000, 1000, vec![29, 44]));
        assert_eq!(run("4242").unwrap(), (4242, 0, vec![]));
        assert_eq!(run("app:video").unwrap(), (1000, 44, vec![]));
        assert_eq!(run("app:7").unwrap(), (1000, 7, vec![]));
        assert_eq!(run("5:6").unwrap(), (5, 6, vec![]));
        assert!(matches!(
            run("nobody"),
            Err(ConfigError::Unknown { what: "user", .. })
        ));
        assert!(matches!(
            run("app:nogroup"),
            Err(ConfigError::Unknown { what: "group", .. })
        ));
        assert!(matches!(run("app:"), Err(ConfigError::InvalidUser(_))));
    }

    #[test]
    fn passwd_is_read_inside_the_rootfs_only() {
        let r = tempfile::tempdir().unwrap();
        std::fs::create_dir(r.path().join("etc")).unwrap();
        // A planted link to the host's file resolves inside the rootfs, where there is none.
        std::os::unix::fs::symlink("/etc/passwd", r.path().join("etc/passwd.lnk")).unwrap();
        std::fs::rename(r.path().join("etc/passwd.lnk"), r.path().join("etc/passwd")).unwrap();
        let c = cfg(serde_json::json!({"config": {"Cmd": ["x"], "User": "root"}}));
        assert!(matches!(
            process(&c, r.path(), &Overrides::default()),
            Err(ConfigError::Unknown { .. })
        ));
    }
}
