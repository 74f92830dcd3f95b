//! Forking a process into a container's namespaces.
//!
//! ```text
//! runtime (parent) ──fork──▶ stage 1 ──fork──▶ final process (the init, or an exec'd process)
//! ```
//! The parent puts stage 1 into the cgroup, then lets it go. Stage 1 joins namespaces given by
//! path (while it still has the host's privileges), creates a user namespace and waits for the
//! parent to write its id maps, creates the remaining namespaces, and forks: the pid and time
//! namespaces only apply to children. It reports the final process's pid and exits; the parent
//! reaps it. The final process runs `final_stage`, which never returns on success.
//!
//! The parent must be single-threaded: the children keep running Rust code after fork.
//!
//! File descriptors: a child inherits a copy of every fd of the parent, and of every Rust value
//! that owns one. A child never returns into (or unwinds through) the frames above [`spawn`]
//! (it ends with `_exit` or `execve`, and a panic there ends it too), so those owners are never
//! dropped in the child: the child is the only one that can close its copies. The fds it must
//! not keep are listed in [`Launch::close_in_child`] as borrows, which guarantees they are open
//! (their owners outlive the launch), and [`close_inherited`] closes each copy once; the
//! owners in the parent are untouched.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

use nix::sched::CloneFlags;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid};
use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, LinuxTimeOffset};

use crate::error::{Context, Error, Result};
use crate::spec::{ns_flag, ns_name};
use crate::sync::{self, Channel, Msg};

/// How to build the final process's namespaces.
#[derive(Default)]
pub struct Launch<'a> {
    /// Namespaces to join, by path (opened before any is joined).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Namespaces to create.
    pub new: Vec<LinuxNamespaceType>,
    /// Id maps for a new user namespace.
    pub uid_maps: &'a [LinuxIdMapping],
    /// Gid maps for a new user namespace.
    pub gid_maps: &'a [LinuxIdMapping],
    /// Offsets for a new time namespace.
    pub time_offsets: Option<&'a HashMap<String, LinuxTimeOffset>>,
    /// The cgroup stage 1 joins before it creates namespaces.
    pub cgroup: Option<&'a berth_cgroups::Cgroup>,
    /// Fds the children must not keep (the state directory's lock, the parent's ends of pipes
    /// and sockets): owned in the parent, borrowed here; stage 1 closes its copies.
    pub close_in_child: Vec<BorrowedFd<'a>>,
}

/// Close, in a process forked by [`spawn`], its inherited copy of `fd`, whose Rust owner lives
/// in the parent's frames.
///
/// # Safety
///
/// Only in a child of [`spawn`] (which never returns into or unwinds through the frames that
/// own `fd`, so the owner's copy in this process is never dropped), once per fd, and only when
/// nothing in the child uses `fd` afterwards.
pub unsafe fn close_inherited(fd: BorrowedFd<'_>) {
    // SAFETY: by the contract above, this process's copy of the fd has no other owner that
    // will close or use it: the new OwnedFd is its only owner, and dropping it closes it once.
    drop(unsafe { OwnedFd::from_raw_fd(fd.as_raw_fd()) });
}

/// Run a forked child's work to its end: it never returns, and a panic (test builds unwind)
/// ends the process instead of unwinding into the parent's frames.
fn child_main(ch: &Channel, work: impl FnOnce() -> Result<Infallible>) -> ! {
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    match r {
        Ok(Ok(never)) => match never {},
        Ok(Err(e)) => child_fail(ch, &e),
        Err(_) => {
            // SAFETY: _exit ends the forked child without running the parent's destructors.
            unsafe { libc::_exit(1) }
        }
    }
}

/// Refuse to fork from a multi-threaded process: the children could deadlock on locks that
/// other threads held at fork time.
pub fn ensure_single_threaded() -> Result<()> {
    let status =
        std::fs::read_to_string("/proc/self/status").ctx(|| "reading /proc/self/status".into())?;
    let threads = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse::<u32>().ok())
        .unwrap_or(1);
    if threads > 1 {
        return Err(Error::Unsupported(format!(
            "the runtime must be called from a single-threaded process (this one has {threads} threads)"
        )));
    }
    Ok(())
}

/// Report an error from a child to the parent and exit.
pub fn child_fail(ch: &Channel, e: &Error) -> ! {
    let _ = ch.send(&Msg::Error(e.to_string()));
    // SAFETY: _exit ends the forked child without running the parent's atexit handlers or
    // destructors, which belong to the parent.
    unsafe { libc::_exit(1) }
}

/// Fork the final process. Returns its pid and the parent's end of the channel, on which the
/// final process goes on talking.
pub fn spawn<F>(l: &Launch, final_stage: F) -> Result<(i32, Channel)>
where
    F: FnOnce(&Channel) -> Result<Infallible>,
{
    let (parent_ch, child_ch) = sync::pair()?;
    // SAFETY: the runtime is single-threaded (checked by the callers), so the child can keep
    // running ordinary Rust code after fork.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            // The parent's end is owned by this frame: dropping it closes the child's copy.
            drop(parent_ch);
            for fd in &l.close_in_child {
                // SAFETY: this is the child of the fork above; it ends in `child_main`, never
                // returning to the fds' owners, and each listed fd is closed once here.
                unsafe { close_inherited(*fd) };
            }
            child_main(&child_ch, || stage1(l, &child_ch, final_stage))
        }
        ForkResult::Parent { child } => {
            drop(child_ch);
            match parent_side(l, &parent_ch, child) {
                Ok(pid) => Ok((pid, parent_ch)),
                Err(e) => {
                    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                    let _ = waitpid(child, None);
                    Err(e)
                }
            }
        }
    }
}

fn parent_side(l: &Launch, ch: &Channel, child: Pid) -> Result<i32> {
    if let Some(cg) = l.cgroup {
        cg.add_process(child.as_raw())?;
    }
    ch.send(&Msg::Go)?;
    let pid = loop {
        match ch.expect("reporting its pid")?.0 {
            Msg::MapIds => {
                write_id_maps(child.as_raw(), l.uid_maps, l.gid_maps)?;
                ch.send(&Msg::IdsMapped)?;
            }
            Msg::Pid(p) => break p,
            other => {
                return Err(Error::Child(format!(
                    "unexpected message {other:?} from stage 1"
                )));
            }
        }
    };
    let _ = waitpid(child, None);
    Ok(pid)
}

fn write_id_maps(pid: i32, uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<()> {
    let fmt = |maps: &[LinuxIdMapping]| {
        maps.iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect::<String>()
    };
    std::fs::write(format!("/proc/{pid}/uid_map"), fmt(uids)).ctx(|| "writing uid_map".into())?;
    std::fs::write(format!("/proc/{pid}/gid_map"), fmt(gids)).ctx(|| "writing gid_map".into())?;
    Ok(())
}

fn stage1<F>(l: &Launch, ch: &Channel, final_stage: F) -> Result<Infallible>
where
    F: FnOnce(&Channel) -> Result<Infallible>,
{
    match ch.recv()? {
        Some((Msg::Go, _)) => {}
        _ => return Err(Error::Child("the runtime went away before setup".into())),
    }
    // Open every namespace first: joining the mount namespace changes what paths mean.
    let mut joins: Vec<(LinuxNamespaceType, OwnedFd)> = Vec::new();
    for (t, path) in &l.join {
        let fd = nix::fcntl::open(
            path,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| format!("opening {} namespace {}", ns_name(*t), path.display()))?;
        joins.push((*t, fd));
    }
    // Join the user namespace last: until then we have the host's privileges, which joining
    // namespaces owned by other user namespaces needs.
    joins.sort_by_key(|(t, _)| *t == LinuxNamespaceType::User);
    for (t, fd) in &joins {
        nix::sched::setns(fd, ns_flag(*t))
            .ctx(|| format!("joining the {} namespace", ns_name(*t)))?;
    }
    drop(joins);

    if l.new.contains(&LinuxNamespaceType::User) {
        nix::sched::unshare(CloneFlags::CLONE_NEWUSER)
            .ctx(|| "creating the user namespace".into())?;
        ch.send(&Msg::MapIds)?;
        match ch.recv()? {
            Some((Msg::IdsMapped, _)) => {}
            _ => {
                return Err(Error::Child(
                    "the runtime went away while mapping ids".into(),
                ));
            }
        }
        // Become root of the new namespace when it has one (needed for the mounts to follow);
        // a namespace without uid 0 keeps full capabilities anyway.
        let _ = nix::unistd::setresgid(0.into(), 0.into(), 0.into());
        let _ = nix::unistd::setresuid(0.into(), 0.into(), 0.into());
    }

    let mut flags = CloneFlags::empty();
    for t in &l.new {
        if *t != LinuxNamespaceType::User {
            flags |= ns_flag(*t);
        }
    }
    if !flags.is_empty() {
        nix::sched::unshare(flags).ctx(|| format!("creating namespaces {flags:?}"))?;
    }
    if let Some(offsets) = l.time_offsets
        && !offsets.is_empty()
    {
        let mut s = String::new();
        for (clock, off) in offsets {
            s.push_str(&format!(
                "{clock} {} {}\n",
                off.secs().unwrap_or(0),
                off.nanosecs().unwrap_or(0)
            ));
        }
        std::fs::write("/proc/self/timens_offsets", s)
            .ctx(|| "writing the time namespace offsets".into())?;
    }

    // The final process waits until its pid is reported, so that message comes first.
    let (gate_r, gate_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;
    // SAFETY: still single-threaded; see `spawn`.
    match unsafe { nix::unistd::fork() }.ctx(|| "fork".into())? {
        ForkResult::Child => {
            drop(gate_w);
            let mut b = [0u8; 1];
            let _ = nix::unistd::read(&gate_r, &mut b);
            drop(gate_r);
            child_main(ch, || final_stage(ch))
        }
        ForkResult::Parent { child } => {
            ch.send(&Msg::Pid(child.as_raw()))?;
            let _ = nix::unistd::write(&gate_w, b"1");
            // SAFETY: stage 1 is done; exit without running the parent's destructors.
            unsafe { libc::_exit(0) }
        }
    }
}
