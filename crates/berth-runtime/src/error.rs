//! The runtime's error type.
//!
//! Every failure the runtime can report is one variant here, with enough context to print a
//! one-line message that tells the user what to fix. The command-line layer prints
//! `Display` and exits non-zero; nothing in the runtime panics on bad input.

use std::path::PathBuf;

/// Result alias for the runtime.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json is missing, unreadable or not valid JSON for the spec.
    #[error("{path}: {reason}")]
    Config {
        /// The config.json path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The configuration is well-formed but asks for something invalid.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// The configuration asks for something this host or runtime cannot do.
    #[error("unsupported: {0}")]
    Unsupported(String),

    /// A container id that is empty or contains characters other than `[A-Za-z0-9_+.-]`.
    #[error(
        "invalid container id {0:?}: an id may only contain letters, digits, '_', '+', '-' and '.'"
    )]
    InvalidId(String),

    /// `create` with an id that is already in use.
    #[error("container with id {0:?} already exists")]
    Exists(String),

    /// No container with this id.
    #[error("container {0:?} does not exist")]
    NotFound(String),

    /// The operation is not allowed in the container's current state.
    #[error("container {id:?} is {status}: {op}")]
    WrongState {
        /// The container id.
        id: String,
        /// Its current status.
        status: String,
        /// What was refused, e.g. "cannot start a container that is not created".
        op: String,
    },

    /// A bad argument on the command line or in a process.json.
    #[error("{0}")]
    InvalidArgument(String),

    /// A system call or file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the runtime was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A mount of the configuration (`mounts`) could not be made.
    #[error("mount {}: {context}: {source}", destination.display())]
    Mount {
        /// The mount's destination in the container.
        destination: PathBuf,
        /// The step that failed.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The container's init or exec'd process reported a failure while being set up.
    #[error("{0}")]
    Child(String),

    /// The kernel's OOM killer killed the container's process while it was being created.
    #[error("{}", oom_message(*.limit))]
    OomKilled {
        /// The memory limit in force, in bytes, when known.
        limit: Option<u64>,
    },

    /// A hook failed.
    #[error("{kind} hook {path}: {reason}")]
    Hook {
        /// The hook kind, e.g. "createRuntime".
        kind: &'static str,
        /// The hook's path.
        path: PathBuf,
        /// What happened.
        reason: String,
    },

    /// The cgroup manager failed.
    #[error("cgroup: {0}")]
    Cgroup(#[from] berth_cgroups::Error),

    /// The seccomp filter could not be built or loaded.
    #[error("seccomp: {0}")]
    Seccomp(#[from] berth_seccomp::Error),

    /// Persisted state is unreadable.
    #[error("state of container {id:?} is corrupt: {reason}")]
    CorruptState {
        /// The container id.
        id: String,
        /// What is wrong.
        reason: String,
    },
}

fn oom_message(limit: Option<u64>) -> String {
    match limit {
        Some(1) => "container init was OOM-killed: memory limit 1 byte is too low".into(),
        Some(l) => format!("container init was OOM-killed: memory limit {l} bytes is too low"),
        None => "container init was OOM-killed: its memory limit is too low".into(),
    }
}

impl Error {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// An errno from a nix call, with context.
    pub fn sys(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::Io {
            context: context.into(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        }
    }
}

/// Attach context to `io::Result` and `nix::Result` values.
pub trait Context<T> {
    /// Wrap the error with a description of what was being done.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(context(), e))
    }
}

impl<T> Context<T> for std::result::Result<T, pathrs::error::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| {
            let io = match e.kind() {
                pathrs::error::ErrorKind::OsError(Some(errno)) => {
                    std::io::Error::from_raw_os_error(errno)
                }
                _ => std::io::Error::other(e.to_string()),
            };
            Error::io(context(), io)
        })
    }
}
