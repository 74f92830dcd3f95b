//! Persistent container state under the runtime's root directory.
//!
//! Layout, one directory per container:
//! ```text
//! <root>/<id>/state.json    what the runtime knows (written atomically: tmp + rename)
//! <root>/<id>/config.json   the configuration the container was created with
//! <root>/<id>/exec.fifo     exists from create until start: the start signal
//! <root>/<id>/start.fifo    start's view of the init's progress until it execs
//! ```
//! `create` holds an exclusive `flock` on the directory while it works, so a container whose
//! creator died half-way is recognised (its lock is free) and `delete --force` removes it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

/// File holding [`Saved`].
pub const STATE_FILE: &str = "state.json";
/// The configuration the container was created with.
pub const CONFIG_FILE: &str = "config.json";
/// FIFO the init blocks on until `start`.
pub const EXEC_FIFO: &str = "exec.fifo";
/// FIFO `start` reads the init's exec result from.
pub const START_FIFO: &str = "start.fifo";

/// How far creation got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// `create` is (or was, if it died) in progress.
    Creating,
    /// `create` finished; the init waits for `start`.
    Created,
    /// `start` has released the init.
    Started,
}

/// The status of a container as the runtime-spec and runc report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Being created.
    Creating,
    /// Created, not started.
    Created,
    /// The user process runs.
    Running,
    /// Frozen.
    Paused,
    /// The process has exited (or never came to be).
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        })
    }
}

/// What the runtime persists about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem.
    pub rootfs: PathBuf,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Owner name ("" for root, as runc).
    #[serde(default)]
    pub owner: String,
    /// The spec's annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
    /// How far creation got.
    pub phase: Phase,
    /// The init's pid in the runtime's pid namespace.
    #[serde(default)]
    pub pid: Option<i32>,
    /// The init's start time (field 22 of /proc/<pid>/stat), to detect pid reuse.
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// The container's cgroup.
    #[serde(default)]
    pub cgroup: Option<berth_cgroups::CgroupPaths>,
}

/// The container state of runtime-spec `state` (and runc's extra fields).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OciState {
    /// runtime-spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    /// Container id.
    pub id: String,
    /// Process id of the init, 0 when stopped.
    pub pid: i32,
    /// Status.
    pub status: Status,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem.
    pub rootfs: PathBuf,
    /// Creation time.
    pub created: String,
    /// Owner.
    pub owner: String,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<HashMap<String, String>>,
}

/// A process's state letter and start time from /proc/<pid>/stat.
pub fn proc_stat(pid: i32) -> Option<(char, u64)> {
    let data = std::fs::read(format!("/proc/{pid}/stat")).ok()?;
    // The comm field may contain spaces and ')' — fields resume after the last ')'.
    let end = data.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(&data[end + 1..]).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?.chars().next()?;
    // After the state come fields 4.. ; start time is field 22, i.e. the 19th after state.
    let start = fields.nth(18)?.parse().ok()?;
    Some((state, start))
}

/// Whether `pid` is a live (not zombie) process started at `start` (when known).
pub fn process_alive(pid: i32, start: Option<u64>) -> bool {
    match proc_stat(pid) {
        Some((st, t)) => st != 'Z' && st != 'X' && start.is_none_or(|s| s == t),
        None => false,
    }
}

/// Where the runtime keeps compiled seccomp programs (`berth_seccomp::compile_cached`):
/// beneath its root, under a name no container ID can have (`@` is not allowed in one).
pub fn seccomp_cache(root: &Path) -> PathBuf {
    root.join("@seccomp")
}

/// The directory holding one container's state.
#[derive(Debug)]
pub struct StateDir {
    /// `<root>/<id>`.
    pub path: PathBuf,
    /// The open directory; holds the lock.
    lock: File,
}

impl StateDir {
    /// Create the directory for a new container and lock it. Fails if the id is taken.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .ctx(|| format!("creating state root {}", root.display()))?;
        let path = root.join(id);
        match std::fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.to_string()));
            }
            Err(e) => return Err(Error::io(format!("creating {}", path.display()), e)),
        }
        let lock = open_dir(&path)?;
        flock(&lock, FlockOperation::NonBlockingLockExclusive)
            .ctx(|| format!("locking {}", path.display()))?;
        Ok(StateDir { path, lock })
    }

    /// Open the directory of an existing container without locking it.
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        let path = root.join(id);
        let lock = match open_dir(&path) {
            Ok(f) => f,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()));
            }
            Err(e) => return Err(e),
        };
        Ok(StateDir { path, lock })
    }

    /// Take the directory's lock exclusively, failing at once if someone holds it.
    pub fn try_lock(&self) -> Result<bool> {
        match flock(&self.lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
            Err(e) => Err(Error::io(format!("locking {}", self.path.display()), e)),
        }
    }

    /// Whether another process holds the lock (a `create` in progress).
    pub fn locked_by_other(&self) -> bool {
        match flock(&self.lock, FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = flock(&self.lock, FlockOperation::Unlock);
                false
            }
            Err(_) => true,
        }
    }

    /// The lock's fd, borrowed, so a forked child can close its copy.
    pub fn lock_fd(&self) -> BorrowedFd<'_> {
        self.lock.as_fd()
    }

    /// Load state.json.
    pub fn load(&self, id: &str) -> Result<Saved> {
        let p = self.path.join(STATE_FILE);
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::CorruptState {
                    id: id.into(),
                    reason: "state.json is missing (a create was interrupted; `delete --force` removes it)".into(),
                });
            }
            Err(e) => return Err(Error::io(format!("reading {}", p.display()), e)),
        };
        serde_json::from_slice(&data).map_err(|e| Error::CorruptState {
            id: id.into(),
            reason: e.to_string(),
        })
    }

    /// Write state.json atomically.
    pub fn save(&self, s: &Saved) -> Result<()> {
        let data = serde_json::to_vec(s).map_err(|e| Error::Child(e.to_string()))?;
        write_atomic(&self.path.join(STATE_FILE), &data, 0o600)
    }

    /// Path of a file in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Remove the directory and everything in it.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(format!("removing {}", self.path.display()), e)),
        }
    }
}

fn open_dir(path: &Path) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(path)
        .ctx(|| format!("opening {}", path.display()))
}

fn flock(f: &File, op: FlockOperation) -> std::io::Result<()> {
    rustix::fs::flock(f, op).map_err(std::io::Error::from)
}

/// Write a file atomically: a temporary file in the same directory, then rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}

/// Current time in RFC 3339 with nanoseconds, as runc prints `created`.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_of_self() {
        let (st, start) = proc_stat(std::process::id() as i32).unwrap();
        assert!(st == 'R' || st == 'S');
        assert!(start > 0);
        assert!(process_alive(std::process::id() as i32, Some(start)));
        assert!(!process_alive(std::process::id() as i32, Some(start + 1)));
        assert!(!process_alive(i32::MAX, None));
    }

    #[test]
    fn create_twice_is_exists() {
        let root = tempfile::tempdir().unwrap();
        let d = StateDir::create(root.path(), "a").unwrap();
        assert!(matches!(
            StateDir::create(root.path(), "a"),
            Err(Error::Exists(_))
        ));
        let other = StateDir::open(root.path(), "a").unwrap();
        assert!(other.locked_by_other());
        drop(d);
        assert!(!other.locked_by_other());
        assert!(matches!(
            StateDir::open(root.path(), "b"),
            Err(Error::NotFound(_))
        ));
    }
}
