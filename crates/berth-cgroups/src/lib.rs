//! cgroups for berth's runtime: v1, hybrid and v2 hosts behind one interface.
//!
//! A [`Cgroup`] is a container's set of cgroup directories: one per v1 hierarchy and one in the
//! unified (v2) hierarchy when the host has it. Each controller is served by exactly one of them
//! (the v1 hierarchy that holds it, else the unified one), so a hybrid host, where a cgroup2 mount
//! holds the controllers no v1 hierarchy took, needs no special case. Resources are applied
//! controller by controller through [`v1`] or [`v2`] translations of the OCI resources.
//!
//! Paths: an absolute cgroupsPath is taken from each hierarchy's root; a relative one is placed
//! beneath the runtime's own cgroup (on v2: beneath its parent, because a v2 cgroup that holds
//! processes cannot hand controllers to children), as runc does.

mod devices;
mod error;
#[cfg(test)]
mod fake;
mod fsutil;
mod layout;
mod stats;
mod unset;
mod v1;
mod v2;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

pub use error::{Error, Result};
pub use layout::{CgroupMount, Layout, UnifiedMount, V1Mount, cgroup_mounts, parse_proc_cgroup};
pub use stats::*;

/// Where a container's cgroup lives in every hierarchy. Saved in the container's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CgroupPaths {
    /// v1 controller → the container's directory in that controller's hierarchy.
    #[serde(default)]
    pub v1: BTreeMap<String, PathBuf>,
    /// The container's directory in the unified hierarchy, if the host has one.
    #[serde(default)]
    pub unified: Option<PathBuf>,
    /// Controllers served by the unified hierarchy (all of them on a pure v2 host).
    #[serde(default)]
    pub v2_controllers: Vec<String>,
    /// True on a pure v2 host.
    #[serde(default)]
    pub pure_v2: bool,
}

impl CgroupPaths {
    /// Every directory, each once.
    pub fn dirs(&self) -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = Vec::new();
        for d in self.v1.values().chain(self.unified.iter()) {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The directory serving `controller`, and whether it is a v2 one.
    pub(crate) fn controller(&self, controller: &str) -> Option<(&Path, bool)> {
        if let Some(d) = self.v1.get(controller) {
            return Some((d, false));
        }
        if self.v2_controllers.iter().any(|c| c == controller) {
            return self.unified.as_deref().map(|d| (d, true));
        }
        None
    }

    /// A directory whose cgroup.procs lists the container's processes.
    fn procs_dir(&self) -> Option<&Path> {
        for c in ["freezer", "pids", "memory", "cpu", "devices"] {
            if let Some(d) = self.v1.get(c) {
                return Some(d);
            }
        }
        self.unified
            .as_deref()
            .or_else(|| self.v1.values().next().map(|p| p.as_path()))
    }
}

/// A container's cgroup.
#[derive(Debug, Clone)]
pub struct Cgroup {
    paths: CgroupPaths,
}

/// Whether systemd manages this host's cgroups (so a systemd cgroup driver could work).
pub fn systemd_available() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn check_path(path: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(Error::InvalidPath {
            path: path.to_string(),
            reason: reason.to_string(),
        })
    };
    if path.trim_matches('/').is_empty() {
        return bad("it names the root of the hierarchy");
    }
    if Path::new(path)
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return bad("it may not contain '..'");
    }
    if path.contains('\0') || path.contains(':') {
        return bad("it contains ':' or a NUL byte (systemd slice syntax needs --systemd-cgroup)");
    }
    Ok(())
}

impl Cgroup {
    /// The cgroup at `path` on a host with this `layout`.
    pub fn new(layout: &Layout, path: &str) -> Result<Cgroup> {
        check_path(path)?;
        let p = Path::new(path);
        let mut paths = CgroupPaths {
            pure_v2: layout.is_pure_v2(),
            ..Default::default()
        };
        for m in &layout.v1 {
            let dir = if p.is_absolute() {
                layout::join_under(&m.point, p)
            } else {
                layout::join_under(&layout::host_dir(&m.point, &m.root, &m.own), p)
            };
            for c in &m.controllers {
                paths.v1.insert(c.clone(), dir.clone());
            }
        }
        if let Some(u) = &layout.unified {
            let dir = if p.is_absolute() {
                layout::join_under(&u.point, p)
            } else {
                let own = layout::host_dir(&u.point, &u.root, &u.own);
                let base = if own == u.point {
                    own
                } else {
                    own.parent().map(Path::to_path_buf).unwrap_or(own)
                };
                layout::join_under(&base, p)
            };
            paths.unified = Some(dir);
            paths.v2_controllers = u
                .controllers
                .iter()
                .filter(|c| !paths.v1.contains_key(*c))
                .cloned()
                .collect();
        }
        Ok(Cgroup { paths })
    }

    /// A cgroup from saved paths.
    pub fn from_paths(paths: CgroupPaths) -> Result<Cgroup> {
        if paths.dirs().is_empty() {
            return Err(Error::NoCgroups);
        }
        Ok(Cgroup { paths })
    }

    /// Where the cgroup lives.
    pub fn paths(&self) -> &CgroupPaths {
        &self.paths
    }

    /// Create every directory (idempotent).
    pub fn create(&self) -> Result<()> {
        for (c, d) in &self.paths.v1 {
            let created = fsutil::mkdir_all(d)?;
            if c == "cpuset" {
                v1::init_cpuset(&created)?;
            }
            if c == "memory" && fsutil::exists(d, "memory.use_hierarchy") {
                // Best effort: hierarchical accounting is the default on every kernel since 5.x.
                let _ = fsutil::write(d, "memory.use_hierarchy", "1");
            }
        }
        if let Some(u) = &self.paths.unified {
            v2::create(u, &self.paths.v2_controllers)?;
        }
        Ok(())
    }

    /// Move process `pid` into the cgroup, in every hierarchy.
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for d in self.paths.dirs() {
            fsutil::write(&d, "cgroup.procs", pid.to_string())?;
        }
        Ok(())
    }

    /// Apply resource limits at creation. Zeros that mean "not set" (as runc reads them) are
    /// skipped.
    pub fn apply(&self, r: &LinuxResources) -> Result<()> {
        let r = unset::effective(r);
        v1::apply(&self.paths, &r)?;
        v2::apply(&self.paths, &r)
    }

    /// Change resource limits of a running container. Device rules are left as they were made
    /// at creation, as `runc update` leaves them: clients send their spec's rules back (often
    /// only containerd's leading deny-all), and applying them would take away the container's
    /// default devices (/dev/null, /dev/ptmx, …).
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let mut r = r.clone();
        r.set_devices(None);
        self.apply(&r)
    }

    /// Every process in the cgroup (and cgroups beneath it).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let mut out = Vec::new();
        if let Some(d) = self.paths.procs_dir() {
            fsutil::procs_tree(d, &mut out)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn freezer(&self) -> Option<(&Path, bool)> {
        self.paths.controller("freezer").or_else(|| {
            // cgroup v2 freezing needs no controller: every non-root cgroup has cgroup.freeze.
            self.paths
                .unified
                .as_deref()
                .filter(|d| fsutil::exists(d, "cgroup.freeze"))
                .map(|d| (d, true))
        })
    }

    /// Freeze every process; returns when they are frozen.
    pub fn freeze(&self) -> Result<()> {
        let (dir, v2) = self
            .freezer()
            .ok_or_else(|| Error::Unsupported("no freezer cgroup is available".into()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut nap = Duration::from_micros(100);
        loop {
            if v2 {
                fsutil::write(dir, "cgroup.freeze", "1")?;
            } else {
                fsutil::write(dir, "freezer.state", "FROZEN")?;
            }
            if self.is_frozen()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.thaw();
                return Err(Error::FreezeTimeout(dir.to_path_buf()));
            }
            std::thread::sleep(nap);
            nap = (nap * 2).min(Duration::from_millis(10));
        }
    }

    /// Thaw every process.
    pub fn thaw(&self) -> Result<()> {
        match self.freezer() {
            Some((dir, true)) => fsutil::write(dir, "cgroup.freeze", "0"),
            Some((dir, false)) => fsutil::write(dir, "freezer.state", "THAWED"),
            None => Ok(()),
        }
    }

    /// Whether the cgroup is frozen.
    pub fn is_frozen(&self) -> Result<bool> {
        match self.freezer() {
            Some((dir, true)) => {
                Ok(fsutil::read_kv(dir, "cgroup.events").get("frozen") == Some(&1))
            }
            Some((dir, false)) => Ok(match fsutil::read(dir, "freezer.state") {
                Ok(s) => s.trim() == "FROZEN",
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    false
                }
                Err(e) => return Err(e),
            }),
            None => Ok(false),
        }
    }

    /// Send `sig` to every process. With SIGKILL on v2 this is cgroup.kill, atomic; otherwise
    /// the cgroup is frozen while the signal goes out so no process forks away from it.
    pub fn kill_all(&self, sig: i32) -> Result<()> {
        if sig == libc::SIGKILL
            && let Some(u) = &self.paths.unified
            && self.paths.pure_v2
            && fsutil::exists(u, "cgroup.kill")
        {
            return fsutil::write(u, "cgroup.kill", "1");
        }
        let was_frozen = self.is_frozen().unwrap_or(false);
        let froze = !was_frozen && self.freezer().is_some() && self.freeze().is_ok();
        for pid in self.pids()? {
            // SAFETY: kill(2) has no memory-safety requirements.
            unsafe { libc::kill(pid, sig) };
        }
        if froze || (was_frozen && sig == libc::SIGKILL) {
            self.thaw()?;
        }
        Ok(())
    }

    /// Resource usage, in the shape of runc's `events --stats`.
    pub fn stats(&self) -> Result<Stats> {
        Ok(stats::collect(&self.paths))
    }

    /// A pollable source of OOM-kill notifications.
    pub fn oom_events(&self) -> Result<OomEvents> {
        let (dir, v2) = self
            .paths
            .controller("memory")
            .ok_or_else(|| Error::Unsupported("no memory cgroup is available".into()))?;
        if v2 {
            let ino = nix::sys::inotify::Inotify::init(
                nix::sys::inotify::InitFlags::IN_CLOEXEC
                    | nix::sys::inotify::InitFlags::IN_NONBLOCK,
            )
            .map_err(|e| error::io("inotify_init on", dir, e.into()))?;
            ino.add_watch(
                &dir.join("memory.events"),
                nix::sys::inotify::AddWatchFlags::IN_MODIFY,
            )
            .map_err(|e| error::io("watching", &dir.join("memory.events"), e.into()))?;
            let seen = oom_kills_v2(dir);
            return Ok(OomEvents {
                fd: OwnedFd::from(ino),
                v2_dir: Some(dir.to_path_buf()),
                seen,
            });
        }
        // v1: an eventfd registered on memory.oom_control through cgroup.event_control.
        use nix::sys::eventfd::{EfdFlags, EventFd};
        let efd = EventFd::from_flags(EfdFlags::EFD_CLOEXEC)
            .map(OwnedFd::from)
            .map_err(|e| error::io("eventfd for", dir, e.into()))?;
        let ctl = std::fs::File::open(dir.join("memory.oom_control"))
            .map_err(|e| error::io("opening", &dir.join("memory.oom_control"), e))?;
        fsutil::write(
            dir,
            "cgroup.event_control",
            format!("{} {}", efd.as_raw_fd(), ctl.as_raw_fd()),
        )?;
        Ok(OomEvents {
            fd: efd,
            v2_dir: None,
            seen: 0,
        })
    }

    /// Whether any of the cgroup's directories exists.
    pub fn exists(&self) -> bool {
        self.paths.dirs().iter().any(|d| d.is_dir())
    }

    /// How many processes the kernel's OOM killer has killed in the cgroup (None without a
    /// memory controller, or on v1 kernels before 4.13, which do not count them).
    pub fn oom_kills(&self) -> Option<u64> {
        let (dir, v2) = self.paths.controller("memory")?;
        if v2 {
            return fsutil::read_kv(dir, "memory.events")
                .get("oom_kill")
                .copied();
        }
        fsutil::read_kv(dir, "memory.oom_control")
            .get("oom_kill")
            .copied()
    }

    /// The memory limit the kernel enforces, in bytes (None when unlimited or unknown). The
    /// kernel keeps whole pages of a requested limit.
    pub fn memory_limit(&self) -> Option<u64> {
        let (dir, v2) = self.paths.controller("memory")?;
        let file = if v2 {
            "memory.max"
        } else {
            "memory.limit_in_bytes"
        };
        // v1 shows "unlimited" as the largest page-aligned i64; v2 says "max".
        fsutil::read(dir, file)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|&v| v < (i64::MAX as u64) & !0xfff)
    }

    /// Remove every directory of the cgroup. Processes must be gone.
    pub fn destroy(&self) -> Result<()> {
        let mut first = None;
        for d in self.paths.dirs() {
            if let Err(e) = fsutil::rmdir_tree(&d) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

fn oom_kills_v2(dir: &Path) -> u64 {
    fsutil::read_kv(dir, "memory.events")
        .get("oom_kill")
        .copied()
        .unwrap_or(0)
}

/// OOM notifications of one cgroup: poll the fd, then call [`OomEvents::read`].
#[derive(Debug)]
pub struct OomEvents {
    fd: OwnedFd,
    v2_dir: Option<PathBuf>,
    seen: u64,
}

impl AsFd for OomEvents {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl OomEvents {
    /// How many OOM kills happened since the last call (0 when the wake-up was for something
    /// else). Does not block when the fd is not readable on v2; blocks on v1.
    pub fn read(&mut self) -> Result<u64> {
        if let Some(dir) = &self.v2_dir {
            let mut buf = [0u8; 4096];
            // Drain the inotify queue; the counter in memory.events is what counts.
            while nix::unistd::read(&self.fd, &mut buf).is_ok_and(|n| n > 0) {}
            let now = oom_kills_v2(dir);
            let n = now.saturating_sub(self.seen);
            self.seen = now;
            return Ok(n);
        }
        let mut buf = [0u8; 8];
        let n = nix::unistd::read(&self.fd, &mut buf)
            .map_err(|e| error::io("reading", Path::new("oom eventfd"), e.into()))?;
        if n != 8 {
            return Ok(0);
        }
        Ok(u64::from_ne_bytes(buf))
    }
}

#[cfg(test)]
mod tests;
