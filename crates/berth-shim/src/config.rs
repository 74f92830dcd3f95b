//! The files the daemon and the shim share: `shim.json` (what to run), `exec-<id>.json` (a
//! process to exec), the exit record (`exit_file`) and `exec-<id>.exit`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::json::{self, Value};

/// The configuration file the daemon writes into the state directory before it runs the shim.
pub const CONFIG_FILE: &str = "shim.json";
/// The control socket, made by the shim (mode 0600).
pub const SOCKET_FILE: &str = "shim.sock";
/// The shim's pid, written by the shim once it is the monitor (not the process the daemon
/// started, which exits after `created`).
pub const PID_FILE: &str = "shim.pid";

/// What the shim runs: `STATE_DIR/shim.json`. Every path is absolute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The container id (the runtime's id).
    pub id: String,
    /// The bundle: config.json and the mounted rootfs.
    pub bundle: PathBuf,
    /// The runtime's state root (its `--root`), shared by containers.
    pub runtime_root: PathBuf,
    /// Give the container a terminal (the shim holds the pty master).
    pub tty: bool,
    /// Keep the container's stdin open for attach (`docker run -i`): a pipe the shim writes
    /// into, else /dev/null. With `tty`, whether attach input reaches the terminal.
    pub stdin: bool,
    /// Close the container's stdin when the first attached client that sent stdin closes
    /// (`StdinOnce`). Without a terminal only: a pty cannot be half-closed.
    pub stdin_once: bool,
    /// The json-file log, or none.
    pub log: Option<LogSettings>,
    /// Where the shim records the exit durably ([`ExitRecord`]), e.g.
    /// /var/lib/berth/containers/ID/exit.json. Its directory must exist. A record left there
    /// by an earlier run is removed when the shim starts.
    pub exit_file: PathBuf,
    /// Another OCI runtime binary (runc's command line) to use instead of the runtime library.
    pub runtime: Option<PathBuf>,
}

/// The json-file log driver's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSettings {
    /// The log file.
    pub path: PathBuf,
    /// Rotate when the file reaches this size (0: never).
    pub max_size: u64,
    /// Files kept, the current one included (at least 1).
    pub max_files: u32,
}

fn field<'a>(v: &'a Value, k: &str) -> Result<&'a Value> {
    v.get(k)
        .ok_or_else(|| Error::Config(format!("{CONFIG_FILE}: {k} is missing")))
}

fn string(v: &Value, k: &str) -> Result<String> {
    match field(v, k)? {
        Value::String(s) => Ok(s.clone()),
        _ => Err(Error::Config(format!("{CONFIG_FILE}: {k} is not a string"))),
    }
}

fn path(v: &Value, k: &str) -> Result<PathBuf> {
    let p = PathBuf::from(string(v, k)?);
    if !p.is_absolute() {
        return Err(Error::Config(format!(
            "{CONFIG_FILE}: {k} is not an absolute path"
        )));
    }
    Ok(p)
}

fn boolean(v: &Value, k: &str) -> Result<bool> {
    match field(v, k)? {
        Value::Bool(b) => Ok(*b),
        _ => Err(Error::Config(format!(
            "{CONFIG_FILE}: {k} is not a boolean"
        ))),
    }
}

fn number<T: std::str::FromStr>(v: &Value, k: &str) -> Result<T> {
    match field(v, k)? {
        Value::Number(n) => n
            .parse()
            .map_err(|_| Error::Config(format!("{CONFIG_FILE}: {k} is not a valid integer: {n}"))),
        _ => Err(Error::Config(format!("{CONFIG_FILE}: {k} is not a number"))),
    }
}

fn optional<T>(v: &Value, k: &str, f: impl FnOnce(&Value) -> Result<T>) -> Result<Option<T>> {
    match v.get(k) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => f(x).map(Some),
    }
}

impl ShimConfig {
    /// Parse `shim.json` (the format serde writes for this type; unknown keys are refused, as
    /// the daemon and the shim are the same version).
    pub fn parse(text: &str) -> Result<ShimConfig> {
        let v = json::parse(text).map_err(|e| Error::Config(format!("{CONFIG_FILE}: {e}")))?;
        let Value::Object(members) = &v else {
            return Err(Error::Config(format!("{CONFIG_FILE}: not an object")));
        };
        const KNOWN: [&str; 9] = [
            "id",
            "bundle",
            "runtime_root",
            "tty",
            "stdin",
            "stdin_once",
            "log",
            "exit_file",
            "runtime",
        ];
        if let Some((k, _)) = members.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            return Err(Error::Config(format!("{CONFIG_FILE}: unknown key {k}")));
        }
        let id = string(&v, "id")?;
        if id.is_empty() || id.contains(['/', '\0', '\n']) || id == "." || id == ".." {
            return Err(Error::Config(format!(
                "{CONFIG_FILE}: invalid container id {id:?}"
            )));
        }
        Ok(ShimConfig {
            id,
            bundle: path(&v, "bundle")?,
            runtime_root: path(&v, "runtime_root")?,
            tty: boolean(&v, "tty")?,
            stdin: boolean(&v, "stdin")?,
            stdin_once: boolean(&v, "stdin_once")?,
            log: optional(&v, "log", |l| {
                let s = LogSettings {
                    path: path(l, "path")?,
                    max_size: number(l, "max_size")?,
                    max_files: number(l, "max_files")?,
                };
                if s.max_files == 0 {
                    return Err(Error::Config(format!(
                        "{CONFIG_FILE}: log.max_files must be at least 1"
                    )));
                }
                Ok(s)
            })?,
            exit_file: path(&v, "exit_file")?,
            runtime: optional(&v, "runtime", |_| path(&v, "runtime"))?,
        })
    }

    /// Read `STATE_DIR/shim.json`.
    pub fn load(state_dir: &Path) -> Result<ShimConfig> {
        let p = state_dir.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::Io {
            what: format!("reading {}", p.display()),
            source: e,
        })?;
        Self::parse(&text)
    }

    /// The JSON text (the same serde writes, without serde).
    pub fn to_json(&self) -> String {
        let mut o = String::with_capacity(512);
        let p = |o: &mut String, k: &str, v: &Path| {
            let _ = write!(o, "\"{k}\":");
            json::write_str(o, &v.to_string_lossy());
            o.push(',');
        };
        o.push_str("{\"id\":");
        json::write_str(&mut o, &self.id);
        o.push(',');
        p(&mut o, "bundle", &self.bundle);
        p(&mut o, "runtime_root", &self.runtime_root);
        let _ = write!(
            o,
            "\"tty\":{},\"stdin\":{},\"stdin_once\":{},\"log\":",
            self.tty, self.stdin, self.stdin_once
        );
        match &self.log {
            None => o.push_str("null,"),
            Some(l) => {
                o.push('{');
                p(&mut o, "path", &l.path);
                let _ = write!(
                    o,
                    "\"max_size\":{},\"max_files\":{}}},",
                    l.max_size, l.max_files
                );
            }
        }
        p(&mut o, "exit_file", &self.exit_file);
        o.push_str("\"runtime\":");
        match &self.runtime {
            None => o.push_str("null"),
            Some(r) => json::write_str(&mut o, &r.to_string_lossy()),
        }
        o.push('}');
        o
    }

    /// Write `STATE_DIR/shim.json` (mode 0600).
    pub fn write(&self, state_dir: &Path) -> Result<()> {
        write_file(
            &state_dir.join(CONFIG_FILE),
            self.to_json().as_bytes(),
            false,
        )
    }
}

/// A process to exec: `STATE_DIR/exec-<exec-id>.json`, written by the daemon before it sends
/// `exec <exec-id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecConfig {
    /// The OCI process (`process.terminal` asks for a pty, `consoleSize` sets its size).
    pub process: oci_spec::runtime::Process,
    /// Forward the attach stream's input to the process (`docker exec -i`); its stdin is
    /// closed when the client closes its write half. Else /dev/null.
    pub stdin: bool,
    /// No attach stream: the shim answers `ok <pid>` and closes the connection; the output is
    /// read and dropped, the exit still recorded.
    pub detach: bool,
}

/// Whether `id` may name an exec (it becomes part of file names): 1 to 128 of
/// `[A-Za-z0-9_-]`.
pub fn valid_exec_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `STATE_DIR/exec-<id>.json`.
pub fn exec_config_path(state_dir: &Path, exec_id: &str) -> PathBuf {
    state_dir.join(format!("exec-{exec_id}.json"))
}

/// `STATE_DIR/exec-<id>.exit`, written by the shim when the process has exited and its output
/// is drained, before its attach stream is closed.
pub fn exec_exit_path(state_dir: &Path, exec_id: &str) -> PathBuf {
    state_dir.join(format!("exec-{exec_id}.exit"))
}

impl ExecConfig {
    /// Write `STATE_DIR/exec-<id>.json` (mode 0600).
    pub fn write(&self, state_dir: &Path, exec_id: &str) -> Result<()> {
        if !valid_exec_id(exec_id) {
            return Err(Error::Config(format!("invalid exec id {exec_id:?}")));
        }
        let text = serde_json::to_vec(self).map_err(|e| Error::Config(e.to_string()))?;
        write_file(&exec_config_path(state_dir, exec_id), &text, false)
    }
}

/// How a process ended: the exit status, or 128+signal; the time; whether the cgroup's OOM
/// killer fired while the container ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitRecord {
    /// Exit status, or 128 + the signal that killed it.
    pub exit_code: i32,
    /// When the shim reaped it, nanoseconds since the Unix epoch.
    pub finished_at_nanos: u64,
    /// The container's cgroup counted an OOM kill while it ran.
    pub oom_killed: bool,
}

impl ExitRecord {
    /// The JSON text of the exit file (the same serde writes).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"exit_code\":{},\"finished_at_nanos\":{},\"oom_killed\":{}}}\n",
            self.exit_code, self.finished_at_nanos, self.oom_killed
        )
    }

    /// Parse the exit file.
    pub fn parse(text: &str) -> Result<ExitRecord> {
        let bad = |e: String| Error::Config(format!("exit record: {e}"));
        let v = json::parse(text).map_err(|e| bad(e.to_string()))?;
        let num = |k: &str| match v.get(k) {
            Some(Value::Number(n)) => Ok(n.as_str()),
            _ => Err(bad(format!("{k} is missing"))),
        };
        Ok(ExitRecord {
            exit_code: num("exit_code")?
                .parse()
                .map_err(|_| bad("exit_code".into()))?,
            finished_at_nanos: num("finished_at_nanos")?
                .parse()
                .map_err(|_| bad("finished_at_nanos".into()))?,
            oom_killed: matches!(v.get("oom_killed"), Some(Value::Bool(true))),
        })
    }

    /// Read an exit file (`Ok(None)` when there is none).
    pub fn load(path: &Path) -> Result<Option<ExitRecord>> {
        match std::fs::read_to_string(path) {
            Ok(t) => Self::parse(&t).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                what: format!("reading {}", path.display()),
                source: e,
            }),
        }
    }

    /// Write the exit file durably: a temporary file, fsync, rename, fsync of the directory.
    pub fn write(&self, path: &Path) -> Result<()> {
        write_file(path, self.to_json().as_bytes(), true)
    }
}

/// An exec'd process's exit: `exec-<id>.exit` holds `<code> <unix_nanos>\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecExit {
    /// Exit status, or 128 + signal.
    pub exit_code: i32,
    /// When it was reaped, nanoseconds since the Unix epoch.
    pub finished_at_nanos: u64,
}

impl ExecExit {
    /// The file's text.
    pub fn to_line(&self) -> String {
        format!("{} {}\n", self.exit_code, self.finished_at_nanos)
    }

    /// Parse the file's text.
    pub fn parse(text: &str) -> Result<ExecExit> {
        let mut it = text.split_ascii_whitespace();
        let (Some(c), Some(t), None) = (it.next(), it.next(), it.next()) else {
            return Err(Error::Config(format!("exec exit record: {text:?}")));
        };
        Ok(ExecExit {
            exit_code: c
                .parse()
                .map_err(|_| Error::Config(format!("exec exit record: {text:?}")))?,
            finished_at_nanos: t
                .parse()
                .map_err(|_| Error::Config(format!("exec exit record: {text:?}")))?,
        })
    }

    /// Read `exec-<id>.exit` (`Ok(None)` while the process runs).
    pub fn load(state_dir: &Path, exec_id: &str) -> Result<Option<ExecExit>> {
        let p = exec_exit_path(state_dir, exec_id);
        match std::fs::read_to_string(&p) {
            Ok(t) => Self::parse(&t).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::Io {
                what: format!("reading {}", p.display()),
                source: e,
            }),
        }
    }
}

/// Replace `path` with `data` (mode 0600): a temporary file beside it, renamed into place; with
/// `durable`, the file and then the directory are synced.
pub fn write_file(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |what: &str, e| Error::Io {
        what: format!("{what} {}", path.display()),
        source: e,
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("writing", e))?;
    f.write_all(data).map_err(|e| io("writing", e))?;
    if durable {
        f.sync_all().map_err(|e| io("syncing", e))?;
    }
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("renaming into", e)
    })?;
    if durable {
        let dir = path.parent().unwrap_or(Path::new("/"));
        let d = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map_err(|e| io("opening the directory of", e))?;
        d.sync_all()
            .map_err(|e| io("syncing the directory of", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShimConfig {
        ShimConfig {
            id: "abc".into(),
            bundle: "/b/\"x\"\n".into(),
            runtime_root: "/run/berth/runtime".into(),
            tty: true,
            stdin: false,
            stdin_once: true,
            log: Some(LogSettings {
                path: "/var/lib/berth/c/abc/abc-json.log".into(),
                max_size: 10 << 20,
                max_files: 3,
            }),
            exit_file: "/var/lib/berth/c/abc/exit.json".into(),
            runtime: Some("/usr/bin/runc".into()),
        }
    }

    #[test]
    fn config_serde_and_hand_agree() {
        for c in [
            sample(),
            ShimConfig {
                log: None,
                runtime: None,
                ..sample()
            },
        ] {
            let by_serde = serde_json::to_string(&c).unwrap();
            assert_eq!(ShimConfig::parse(&by_serde).unwrap(), c);
            let by_hand = c.to_json();
            assert_eq!(serde_json::from_str::<ShimConfig>(&by_hand).unwrap(), c);
            assert_eq!(ShimConfig::parse(&by_hand).unwrap(), c);
            let pretty = serde_json::to_string_pretty(&c).unwrap();
            assert_eq!(ShimConfig::parse(&pretty).unwrap(), c);
        }
    }

    #[test]
    fn config_refusals() {
        let good = serde_json::to_value(sample()).unwrap();
        let cases: Vec<(&str, serde_json::Value)> = vec![
            ("id", serde_json::json!("a/b")),
            ("id", serde_json::json!("")),
            ("id", serde_json::json!(7)),
            ("bundle", serde_json::json!("relative")),
            ("tty", serde_json::json!("yes")),
            (
                "log",
                serde_json::json!({"path": "/l", "max_size": -1, "max_files": 1}),
            ),
            (
                "log",
                serde_json::json!({"path": "/l", "max_size": 1, "max_files": 0}),
            ),
            ("surprise", serde_json::json!(1)),
        ];
        for (k, v) in cases {
            let mut c = good.clone();
            c[k] = v;
            let e = ShimConfig::parse(&c.to_string()).unwrap_err().to_string();
            assert!(e.contains("shim.json"), "{k}: {e}");
        }
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove("exit_file");
        assert!(ShimConfig::parse(&c.to_string()).is_err());
    }

    #[test]
    fn exit_records() {
        let r = ExitRecord {
            exit_code: 137,
            finished_at_nanos: 1_765_000_000_123_456_789,
            oom_killed: true,
        };
        assert_eq!(ExitRecord::parse(&r.to_json()).unwrap(), r);
        assert_eq!(serde_json::from_str::<ExitRecord>(&r.to_json()).unwrap(), r);
        assert_eq!(
            ExitRecord::parse(&serde_json::to_string(&r).unwrap()).unwrap(),
            r
        );
        let e = ExecExit {
            exit_code: 3,
            finished_at_nanos: 42,
        };
        assert_eq!(ExecExit::parse(&e.to_line()).unwrap(), e);
        assert!(ExecExit::parse("3").is_err());
    }

    #[test]
    fn exec_ids() {
        assert!(valid_exec_id("a-B_9"));
        for bad in ["", "../x", "a/b", "a b", ".", &"x".repeat(129)] {
            assert!(!valid_exec_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn durable_write() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("exit.json");
        let r = ExitRecord {
            exit_code: 0,
            finished_at_nanos: 1,
            oom_killed: false,
        };
        r.write(&p).unwrap();
        assert_eq!(ExitRecord::load(&p).unwrap(), Some(r));
        assert!(!d.path().join("exit.json.tmp").exists());
        assert_eq!(ExitRecord::load(&d.path().join("none")).unwrap(), None);
    }
}
