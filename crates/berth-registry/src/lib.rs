//! Image references and the OCI distribution client.

pub mod client;
pub mod credentials;
pub mod push;
pub mod reference;

pub use client::{
    Client, Credentials, DEFAULT_CHUNK_SIZE, Descriptor, Manifest, Options, Platform, Resolved,
};
pub use credentials::{CredentialsError, CredentialsFile};
pub use push::{BlobPushed, PushEvent, PushImage, Pushed};
pub use reference::{Reference, ReferenceError};
