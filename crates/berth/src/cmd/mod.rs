//! One module per command group.

pub mod image;
pub mod runtime;
