//! One module per command group.

pub mod events;
pub mod exec;
pub mod list;
pub mod signal;
pub mod spec;
pub mod update;
pub mod version;
