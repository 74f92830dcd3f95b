//! The per-container monitor ("shim") of berth's engine: the protocol the daemon speaks to it,
//! the files they share, and the daemon's side ([`ShimClient`], [`launch`]).
//!
//! The binary `berth-shim STATE_DIR` (this crate's `src/bin/berth-shim`) is the monitor: it
//! creates the container through the runtime (in forked children), holds its stdio, writes its
//! log, serves attach/exec/wait on `STATE_DIR/shim.sock`, reaps it and records its exit. It is
//! not the daemon's child, so containers outlive the daemon. See [`protocol`] for the socket,
//! [`config`] for the files, and ARCHITECTURE.md ("The shim") for the whole picture.

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod error;
pub mod json;
pub mod protocol;

pub use client::{ShimClient, Waiter, launch};
pub use config::{ExecConfig, ExecExit, ExitRecord, LogSettings, ShimConfig};
pub use error::{Error, Result};
pub use protocol::{ExitStatus, Request};
