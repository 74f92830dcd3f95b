//! Errors: each names the operation (`publishing port 8080/tcp -> 10.88.0.2:80`) and, when nft
//! refused, carries nft's standard error.

use std::path::PathBuf;

/// The result of a firewall operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A firewall operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request cannot be written as rules (a bad interface or table name, a port of the
    /// wrong family, two different targets for one host port); nothing was run.
    #[error("{op}: {reason}")]
    Invalid {
        /// The operation, e.g. `adding network br0`.
        op: String,
        /// What is wrong with the request.
        reason: String,
    },
    /// nft could not be started (not installed, or `nsenter` missing for a namespace).
    #[error("{op}: running {program}: {source}")]
    Spawn {
        /// The operation.
        op: String,
        /// The program that could not be run.
        program: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// nft ran and refused (the batch was not applied: a batch is atomic).
    #[error("{op}: nft failed ({status}): {stderr}")]
    Nft {
        /// The operation; for a batch of ports, the port on the line nft complained about when
        /// its message names one.
        op: String,
        /// nft's exit status, as text (`exit status: 1`).
        status: String,
        /// nft's standard error, trimmed.
        stderr: String,
    },
    /// nft's output could not be understood.
    #[error("{op}: unexpected output from nft: {reason}")]
    Parse {
        /// The operation.
        op: String,
        /// What was unexpected.
        reason: String,
    },
}

impl Error {
    /// The operation that failed, e.g. `publishing port 8080/tcp -> 10.88.0.2:80`.
    pub fn op(&self) -> &str {
        match self {
            Error::Invalid { op, .. }
            | Error::Spawn { op, .. }
            | Error::Nft { op, .. }
            | Error::Parse { op, .. } => op,
        }
    }

    /// nft's standard error, when nft refused.
    pub fn stderr(&self) -> Option<&str> {
        match self {
            Error::Nft { stderr, .. } => Some(stderr),
            _ => None,
        }
    }

    /// Whether nft refused because something named does not exist (`No such file or
    /// directory`, ENOENT), such as the table.
    pub fn is_not_found(&self) -> bool {
        self.stderr()
            .is_some_and(|e| e.contains("No such file or directory"))
    }

    /// Whether nft refused because an element exists with other data (`File exists`, EEXIST):
    /// for a port, the host port is published to another target.
    pub fn is_conflict(&self) -> bool {
        self.stderr().is_some_and(|e| e.contains("File exists"))
    }
}
