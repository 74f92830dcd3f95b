//! Operations on an existing container: state, kill, delete, pause, resume, ps, update, stats.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxResources, Spec};

use crate::create::{hook_state, oci_state};
use crate::error::{Error, Result};
use crate::hooks;
use crate::state::{self, OciState, Phase, Saved, StateDir, Status};

/// A container loaded from its state directory.
pub struct Container {
    /// Its directory.
    pub dir: StateDir,
    /// What was saved.
    pub saved: Saved,
}

impl Container {
    /// Load a container by id.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        crate::spec::validate_id(id)?;
        let dir = StateDir::open(root, id)?;
        let saved = dir.load(id)?;
        Ok(Container { dir, saved })
    }

    /// The container's status now.
    pub fn status(&self) -> Status {
        match self.saved.phase {
            Phase::Creating => {
                if self.dir.locked_by_other() {
                    Status::Creating
                } else {
                    // The creator died half-way: this container will never run.
                    Status::Stopped
                }
            }
            Phase::Created | Phase::Started => {
                let Some(pid) = self.saved.pid else {
                    return Status::Stopped;
                };
                if !state::process_alive(pid, self.saved.pid_start) {
                    return Status::Stopped;
                }
                // A frozen container is paused whether or not it was started (as runc: a
                // created container can be paused, and is created again once resumed).
                if let Some(Ok(true)) = self.cgroup().map(|c| c.is_frozen()) {
                    return Status::Paused;
                }
                if self.saved.phase == Phase::Created {
                    Status::Created
                } else {
                    Status::Running
                }
            }
        }
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<berth_cgroups::Cgroup> {
        self.saved
            .cgroup
            .clone()
            .and_then(|p| berth_cgroups::Cgroup::from_paths(p).ok())
    }

    /// The configuration the container was created with.
    pub fn spec(&self) -> Result<Spec> {
        let p = self.dir.file(state::CONFIG_FILE);
        let data =
            std::fs::read(&p).map_err(|e| Error::io(format!("reading {}", p.display()), e))?;
        serde_json::from_slice(&data).map_err(|e| Error::CorruptState {
            id: self.saved.id.clone(),
            reason: format!("config.json: {e}"),
        })
    }

    /// The state as `state` prints it.
    pub fn oci_state(&self) -> OciState {
        oci_state(&self.saved, self.status())
    }

    fn wrong(&self, status: Status, op: &str) -> Error {
        Error::WrongState {
            id: self.saved.id.clone(),
            status: status.to_string(),
            op: op.into(),
        }
    }

    /// Send a signal to the init, or with `all` to every process in the container.
    ///
    /// As runc: `all` signals whatever is left in the cgroup even when the container has stopped
    /// (containerd's shim sends `kill --all ID 9` after every exit and expects success); without
    /// `all` a stopped container is an error that says "container not running", which is what
    /// containerd's shim recognises as "already finished".
    pub fn kill(&self, sig: i32, all: bool) -> Result<()> {
        let status = self.status();
        if status == Status::Creating || (status == Status::Stopped && !all) {
            return Err(self.wrong(status, "cannot signal a container not running"));
        }
        if all {
            let cg = self.cgroup().ok_or_else(|| {
                Error::Unsupported("kill --all needs the container's cgroup".into())
            })?;
            if status == Status::Stopped && !cg.exists() {
                return Ok(());
            }
            cg.kill_all(sig)?;
        } else {
            let pid = self.saved.pid.unwrap_or(0);
            if pid <= 0 {
                return Err(self.wrong(status, "the container has no process"));
            }
            // libc::kill, not nix's: real-time signals have no nix `Signal`.
            // SAFETY: kill takes two integers; pid is positive, so one process is signalled.
            if unsafe { libc::kill(pid, sig) } != 0 {
                return Err(Error::io(
                    format!("sending signal {sig} to {pid}"),
                    std::io::Error::last_os_error(),
                ));
            }
        }
        // A frozen process only dies once thawed.
        if sig == libc::SIGKILL
            && status == Status::Paused
            && let Some(cg) = self.cgroup()
        {
            cg.thaw()?;
        }
        Ok(())
    }

    /// Delete the container. Running (or paused) containers need `force`, which kills them.
    pub fn delete(self, force: bool) -> Result<()> {
        let status = self.status();
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_and_wait()?,
            Status::Creating | Status::Running | Status::Paused => {
                if !force {
                    return Err(self.wrong(
                        status,
                        "cannot delete a container that is not stopped (use --force)",
                    ));
                }
                self.kill_and_wait()?;
            }
        }
        if let Some(cg) = self.cgroup() {
            // Processes may remain without the init (a container sharing the host pid
            // namespace): they go with the container.
            if cg.pids().map(|p| !p.is_empty()).unwrap_or(false) {
                let _ = cg.thaw();
                let _ = cg.kill_all(libc::SIGKILL);
                wait_cgroup_empty(&cg);
            }
            cg.destroy()?;
        }
        let ran = self.saved.phase != Phase::Creating;
        let spec = if ran { self.spec().ok() } else { None };
        self.dir.remove()?;
        if let Some(spec) = spec {
            hooks::run_all_warn(
                "poststop",
                spec.hooks().as_ref().and_then(|h| h.poststop().as_ref()),
                &hook_state(&self.saved, Status::Stopped),
            );
        }
        Ok(())
    }

    fn kill_and_wait(&self) -> Result<()> {
        if let Some(cg) = self.cgroup() {
            let _ = cg.kill_all(libc::SIGKILL);
            let _ = cg.thaw();
        }
        if let Some(pid) = self.saved.pid
            && state::process_alive(pid, self.saved.pid_start)
        {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut nap = Duration::from_micros(100);
            while state::process_alive(pid, self.saved.pid_start) {
                if Instant::now() > deadline {
                    return Err(Error::Child(format!(
                        "process {pid} did not die after SIGKILL"
                    )));
                }
                std::thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(10));
            }
        }
        if let Some(cg) = self.cgroup() {
            wait_cgroup_empty(&cg);
        }
        Ok(())
    }

    /// Freeze every process.
    pub fn pause(&self) -> Result<()> {
        let status = self.status();
        if !matches!(status, Status::Running | Status::Created) {
            return Err(self.wrong(status, "cannot pause a container that is not running"));
        }
        self.need_cgroup("pause")?.freeze()?;
        Ok(())
    }

    /// Thaw every process.
    pub fn resume(&self) -> Result<()> {
        let status = self.status();
        if status != Status::Paused {
            return Err(self.wrong(status, "cannot resume a container that is not paused"));
        }
        self.need_cgroup("resume")?.thaw()?;
        Ok(())
    }

    /// The pids of every process in the container.
    pub fn pids(&self) -> Result<Vec<i32>> {
        let status = self.status();
        if status == Status::Stopped {
            return Ok(Vec::new());
        }
        Ok(self.need_cgroup("ps")?.pids()?)
    }

    /// Change resource limits of a running container.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let status = self.status();
        if matches!(status, Status::Stopped | Status::Creating) {
            return Err(self.wrong(status, "cannot update a container that is not running"));
        }
        self.need_cgroup("update")?.update(r)?;
        Ok(())
    }

    /// Resource usage.
    pub fn stats(&self) -> Result<berth_cgroups::Stats> {
        let status = self.status();
        if matches!(status, Status::Stopped | Status::Creating) {
            return Err(self.wrong(status, "no statistics for a container that is not running"));
        }
        Ok(self.need_cgroup("stats")?.stats()?)
    }

    fn need_cgroup(&self, what: &str) -> Result<berth_cgroups::Cgroup> {
        self.cgroup()
            .ok_or_else(|| Error::Unsupported(format!("{what} needs the container's cgroup")))
    }
}

/// Wait (briefly) until no process is left in the cgroup.
pub fn wait_cgroup_empty(cg: &berth_cgroups::Cgroup) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut nap = Duration::from_micros(100);
    while cg.pids().map(|p| !p.is_empty()).unwrap_or(false) && Instant::now() < deadline {
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(10));
    }
}

/// Every container under `root`, with its state.
pub fn list(root: &Path) -> Result<Vec<OciState>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("reading {}", root.display()), e)),
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        if let Ok(c) = Container::load(root, &name) {
            out.push(c.oci_state());
        }
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

/// Remove a container whose state is unreadable (a create killed before it saved anything).
pub fn force_remove_broken(root: &Path, id: &str) -> Result<()> {
    crate::spec::validate_id(id)?;
    let dir = StateDir::open(root, id)?;
    if dir.locked_by_other() {
        return Err(Error::WrongState {
            id: id.into(),
            status: "creating".into(),
            op: "a create is still in progress".into(),
        });
    }
    dir.remove()
}
