//! Specs and defaults that every part of berth shares, so that no crate depends on another
//! only for a template:
//!
//! - [`OCI_VERSION`], the runtime-spec version berth implements and writes;
//! - [`runc_spec`], the `config.json` that `berth-runc spec` writes (runc's shape);
//! - [`docker`], the defaults Docker gives every container: its capability set, masked and
//!   read-only paths, mounts, device rules, namespaces, and [`docker::container_spec`] built
//!   from them (what a bundle made from an image starts from, and the engine's containers);
//! - [`seccomp`], Docker's default seccomp profile: [`seccomp::default_profile`] gives the
//!   `linux.seccomp` of a container holding a set of capabilities on this host.
//!
//! Nothing here changes the system: these are values (only [`docker::masked_paths`] looks at
//! which CPUs the host has, and [`seccomp::default_profile`] at the kernel's version).

pub mod docker;
mod runc;
pub mod seccomp;

pub use runc::runc_spec;

/// The runtime-spec version berth implements (and writes into the configs it makes).
pub const OCI_VERSION: &str = "1.2.1";

/// The `PATH` a container gets when its image sets none (Docker's).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
