//! Typed errors of the cgroups crate.

use std::path::{Path, PathBuf};

/// What can go wrong managing a cgroup.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file operation on a cgroup file or directory failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("writing", "creating", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a value into a cgroup file failed.
    #[error("setting {path} to {value:?}: {source}")]
    Write {
        /// The cgroup file.
        path: PathBuf,
        /// The value written.
        value: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// No cgroup file system is mounted.
    #[error("no cgroup hierarchy is mounted under /sys/fs/cgroup")]
    NoCgroups,
    /// A cgroups path that cannot be used.
    #[error("invalid cgroups path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A resource that this host's cgroups cannot enforce.
    #[error("{0}")]
    Unsupported(String),
    /// A resource value that makes no sense.
    #[error("invalid resource {key}: {reason}")]
    Invalid {
        /// The resource.
        key: String,
        /// Why it is invalid.
        reason: String,
    },
    /// Loading or attaching the eBPF device filter failed.
    #[error("eBPF device filter: {op}: {source}")]
    Bpf {
        /// The bpf(2) command.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Processes did not freeze in time.
    #[error("cgroup {0} did not freeze in time")]
    FreezeTimeout(PathBuf),
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Invalid {
        key: key.into(),
        reason: reason.into(),
    }
}
