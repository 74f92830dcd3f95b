//! Image references and the OCI distribution client (the client is still to come; see
//! issue #3).

pub mod reference;

pub use reference::{Reference, ReferenceError};
