//! The library's errors.

/// What went wrong talking to a shim or reading its files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configuration or record file is malformed.
    #[error("{0}")]
    Config(String),
    /// The shim answered `error <msg>`.
    #[error("{0}")]
    Refused(String),
    /// The connection ended before the answer.
    #[error("the shim closed the connection without answering")]
    Closed,
    /// A `wait` connection ended without the exit line: the shim is gone.
    #[error("the shim exited without reporting the container's exit")]
    ShimDied,
    /// An answer the protocol does not have.
    #[error("unexpected answer from the shim: {0:?}")]
    Protocol(String),
    /// `berth-shim` could not create the container (its `error` line, or how it failed).
    #[error("{0}")]
    Launch(String),
}

/// The library's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
    Error::Io {
        what: what.into(),
        source,
    }
}
