//! Image references and the OCI distribution client.
//!
//! The image types (descriptors, manifests, indexes, platforms, media types) are oci-spec's
//! ([`oci_spec::image`]); [`media`] names Docker's media types and [`PlatformExt`] adds what
//! berth does with platforms.

pub mod client;
pub mod credentials;
pub mod media;
pub mod platform;
pub mod push;
pub mod reference;

pub use client::{Client, Credentials, DEFAULT_CHUNK_SIZE, Options, Resolved, descriptor_digest};
pub use credentials::{CredentialsError, CredentialsFile};
pub use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType, Platform};
pub use platform::PlatformExt;
pub use push::{BlobPushed, PushEvent, PushImage, Pushed};
pub use reference::{Reference, ReferenceError};
