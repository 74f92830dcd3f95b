//! berth's OCI runtime: an OCI bundle (config.json + rootfs) becomes an isolated process.
//!
//! [`Runtime`] is the library's face: one method per runtime operation (create, start, state,
//! kill, delete, exec, pause, resume, update, stats, list). The `berth runtime` command line
//! and the engine call it. Container state lives in one directory per container under the
//! runtime's root (see [`state`]).
//!
//! Creating and exec'ing fork the calling process and keep running Rust code in the children,
//! so those calls must come from a single-threaded process (they check).

#![warn(missing_docs)]

pub mod cgmount;
pub mod console;
pub mod container;
pub mod create;
pub mod error;
pub mod exec;
pub mod features;
pub mod foreground;
pub mod hooks;
pub mod init;
mod inroot;
pub mod launch;
pub mod mountopts;
pub mod process;
pub mod rootfs;
pub mod run;
pub mod spec;
pub mod state;
pub mod sync;
pub mod sys;
/// The default config `berth-runc spec` writes; it lives in `berth-spec` (kept here for the
/// runtime's command line until it calls `berth_spec` itself).
pub mod template {
    pub use berth_spec::runc_spec as default_spec;
}

use std::path::{Path, PathBuf};

pub use create::{ConsoleSocket, CreateOptions};
pub use error::{Error, Result};
pub use exec::{ExecOptions, ExecOutcome};
pub use run::RunOptions;
pub use state::{OciState, Status};

use container::Container;

/// The runtime, rooted at a state directory.
#[derive(Debug, Clone)]
pub struct Runtime {
    root: PathBuf,
    systemd_cgroup: bool,
}

impl Runtime {
    /// A runtime keeping its state under `root` (runc's `--root`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Runtime {
            root: root.into(),
            systemd_cgroup: false,
        }
    }

    /// Ask for the systemd cgroup driver (refused: not available yet).
    pub fn with_systemd_cgroup(mut self, on: bool) -> Self {
        self.systemd_cgroup = on;
        self
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create a container from a bundle; returns the init's pid.
    pub fn create(&self, id: &str, opts: &CreateOptions) -> Result<i32> {
        create::create(&self.root, id, self.systemd_cgroup, opts)
    }

    /// Start a created container.
    pub fn start(&self, id: &str) -> Result<()> {
        create::start(&self.root, id)
    }

    /// Create and start; in the foreground wait and return the exit code.
    pub fn run(&self, id: &str, opts: CreateOptions, run: RunOptions) -> Result<i32> {
        run::run(&self.root, id, self.systemd_cgroup, opts, run)
    }

    /// The container's state.
    pub fn state(&self, id: &str) -> Result<OciState> {
        Ok(Container::load(&self.root, id)?.oci_state())
    }

    /// Send a signal to the init, or to every process with `all`.
    pub fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        Container::load(&self.root, id)?.kill(signal, all)
    }

    /// Delete a container (`force` kills it first if it runs). With `force`, a container that
    /// does not exist is not an error (runc's `delete --force` exits 0 for it too).
    pub fn delete(&self, id: &str, force: bool) -> Result<()> {
        match Container::load(&self.root, id) {
            Ok(c) => c.delete(force),
            Err(Error::CorruptState { .. }) if force => {
                container::force_remove_broken(&self.root, id)
            }
            Err(Error::NotFound(_)) if force => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every container.
    pub fn list(&self) -> Result<Vec<OciState>> {
        container::list(&self.root)
    }

    /// The pids in the container.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>> {
        Container::load(&self.root, id)?.pids()
    }

    /// Freeze the container.
    pub fn pause(&self, id: &str) -> Result<()> {
        Container::load(&self.root, id)?.pause()
    }

    /// Thaw the container.
    pub fn resume(&self, id: &str) -> Result<()> {
        Container::load(&self.root, id)?.resume()
    }

    /// Change resource limits.
    pub fn update(&self, id: &str, r: &oci_spec::runtime::LinuxResources) -> Result<()> {
        Container::load(&self.root, id)?.update(r)
    }

    /// Resource usage.
    pub fn stats(&self, id: &str) -> Result<berth_cgroups::Stats> {
        Container::load(&self.root, id)?.stats()
    }

    /// OOM event source of a container, for `events`.
    pub fn oom_events(&self, id: &str) -> Result<berth_cgroups::OomEvents> {
        let c = Container::load(&self.root, id)?;
        let cg = c
            .cgroup()
            .ok_or_else(|| Error::Unsupported("events need the container's cgroup".into()))?;
        Ok(cg.oom_events()?)
    }

    /// Start a process in a running container.
    pub fn exec(&self, id: &str, opts: ExecOptions) -> Result<ExecOutcome> {
        exec::exec(&self.root, id, opts)
    }

    /// The configuration a container was created with.
    pub fn spec(&self, id: &str) -> Result<oci_spec::runtime::Spec> {
        Container::load(&self.root, id)?.spec()
    }
}
