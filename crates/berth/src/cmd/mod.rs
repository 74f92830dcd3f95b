//! One module per command group.

pub mod image;
pub mod progress;
pub mod runtime;
