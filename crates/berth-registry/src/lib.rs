//! Image references and the OCI distribution client.

pub mod client;
pub mod reference;

pub use client::{Client, Credentials, Descriptor, Manifest, Options, Platform, Resolved};
pub use reference::{Reference, ReferenceError};
