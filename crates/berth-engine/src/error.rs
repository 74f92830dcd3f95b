//! The engine's errors, each of a kind the API maps to Docker's status code.

/// An engine error: its kind decides the HTTP status (Docker's errdefs), its text is the
/// message clients print.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 404: no such container, image, volume, exec instance.
    #[error("{0}")]
    NotFound(String),
    /// 409: a name in use, a running container removed without force, an image in use.
    #[error("{0}")]
    Conflict(String),
    /// 400: bad parameters.
    #[error("{0}")]
    Invalid(String),
    /// 304: nothing to do (starting a running container, stopping a stopped one).
    #[error("{0}")]
    NotModified(String),
    /// 403: refused by policy.
    #[error("{0}")]
    Forbidden(String),
    /// 503: a feature of a kind this engine does not run (swarm).
    #[error("{0}")]
    Unavailable(String),
    /// 501: not implemented.
    #[error("{0}")]
    NotImplemented(String),
    /// 500: everything else.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// The HTTP status Docker answers an error of this kind with.
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::Conflict(_) => 409,
            Error::Invalid(_) => 400,
            Error::NotModified(_) => 304,
            Error::Forbidden(_) => 403,
            Error::Unavailable(_) => 503,
            Error::NotImplemented(_) => 501,
            Error::Internal(_) => 500,
        }
    }

    /// An internal error from anything displayable, with what was being done.
    pub fn internal(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
        Error::Internal(format!("{what}: {e}"))
    }
}

impl From<berth_image::Error> for Error {
    fn from(e: berth_image::Error) -> Error {
        use berth_image::Error as E;
        let msg = e.to_string();
        match e {
            E::NoSuchImage(_) => Error::NotFound(msg),
            E::ReferenceInUse { .. } | E::ImageInUse { .. } | E::Conflict { .. } => {
                Error::Conflict(msg)
            }
            E::AmbiguousId { .. } | E::Reference(_) | E::Invalid(_) => Error::Invalid(msg),
            _ => Error::Internal(msg),
        }
    }
}

impl From<berth_image::rootfs::RootfsError> for Error {
    fn from(e: berth_image::rootfs::RootfsError) -> Error {
        Error::Internal(e.to_string())
    }
}

impl From<redb::Error> for Error {
    fn from(e: redb::Error) -> Error {
        Error::internal("engine database", e)
    }
}

macro_rules! redb_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::internal("engine database", e)
            }
        }
    )*};
}
redb_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The engine's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
