//! The container's init process, from fork to execve.
//!
//! Runs in the final process forked by [`crate::launch`], inside all the container's
//! namespaces. Order matters and follows runc: rootfs mounts → prestart/createRuntime hooks
//! (run by the parent) → createContainer hooks → pivot_root → terminal → hostname,
//! sysctls → masked and read-only paths, LSM labels, rlimits and friends → seccomp (here when it needs
//! privileges) → user and capabilities → cwd → seccomp (here with no_new_privs) → report
//! ready → wait for `start` → startContainer hooks → execve.
//!
//! Everything up to "ready" ([`set_up`]) makes its system calls through [`Sys`]; the unit tests
//! (`init/tests.rs`) run it against the recording double, without root.

use std::convert::Infallible;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::cgmount::CgroupMounts;
use crate::error::{Context, Error, Result};
use crate::process::{self, CapSets};
use crate::rootfs::{self, RootfsPlan};
use crate::spec::{Bundle, Namespaces};
use crate::sync::{Channel, Msg};
use crate::sys::{LinuxSys, Sys};
use crate::{console, hooks, launch};

/// Everything the init needs, prepared by the parent before fork.
pub struct InitCtx<'a> {
    /// Container id.
    pub id: &'a str,
    /// The bundle.
    pub bundle: &'a Bundle,
    /// The namespaces.
    pub ns: &'a Namespaces,
    /// Use MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Do not create a session keyring.
    pub no_new_keyring: bool,
    /// Extra fds (3, 4, …) passed to the process.
    pub preserve_fds: u32,
    /// exec.fifo, open read-write: the init reads the start signal from it.
    pub exec_fifo: &'a OwnedFd,
    /// start.fifo, open read-write: errors after start go here; exec closes it.
    pub start_fifo: &'a OwnedFd,
    /// The connected console socket, when the process has a terminal. It stays owned by the
    /// parent; the init closes its inherited copy once the terminal is sent.
    pub console_socket: Option<BorrowedFd<'a>>,
    /// The compiled seccomp filter.
    pub seccomp: Option<berth_seccomp::Filter>,
    /// The container's cgroups, for `cgroup` mounts.
    pub cgroups: Option<&'a CgroupMounts>,
}

/// Run the init. Only returns on failure before the container was reported ready.
pub fn run(mut ctx: InitCtx, ch: &Channel) -> Result<Infallible> {
    let seccomp = ctx.seccomp.take();
    let (exe, state_json) = set_up(&ctx, seccomp, ch, &LinuxSys)?;
    let spec = &ctx.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("process is required".into()))?;
    let hooks = spec.hooks().as_ref();

    ch.send(&Msg::Ready)?;
    // Wait for `start`: one byte on exec.fifo.
    let mut b = [0u8; 1];
    loop {
        match nix::unistd::read(ctx.exec_fifo, &mut b) {
            Ok(1) => break,
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => fail_after_start(ctx.start_fifo, &Error::sys("waiting for start", e)),
        }
    }
    // startContainer hooks: in the container, after start, before the program.
    let started_state = state_with_status(&state_json, "created");
    if let Err(e) = hooks::run_all(
        "startContainer",
        hooks.and_then(|h| h.start_container().as_ref()),
        &started_state,
    ) {
        fail_after_start(ctx.start_fifo, &e);
    }
    let e = exec(&exe, process);
    fail_after_start(ctx.start_fifo, &e)
}

/// The init up to "ready": session, rootfs, hooks run by the parent, createContainer hooks,
/// root change, terminal, names, sysctls, masked and read-only paths, personality and
/// [`prepare_process`]. Returns the program's path and the state the parent sent for hooks.
pub fn set_up(
    ctx: &InitCtx,
    seccomp: Option<berth_seccomp::Filter>,
    ch: &Channel,
    sys: &dyn Sys,
) -> Result<(CString, String)> {
    let spec = &ctx.bundle.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("process is required".into()))?;
    sys.setsid().ctx(|| "setsid".into())?;
    sys.umask(nix::sys::stat::Mode::empty());
    if !ctx.no_new_keyring {
        join_session_keyring(sys, ctx.id)?;
    }
    let in_userns = ctx.ns.creates(LinuxNamespaceType::User);
    let plan = RootfsPlan {
        spec,
        rootfs: &ctx.bundle.rootfs,
        bundle: &ctx.bundle.dir,
        in_userns,
        cgroups: ctx.cgroups,
        cgroupns: ctx.ns.has(LinuxNamespaceType::Cgroup),
        no_pivot: ctx.no_pivot,
    };
    // Without a mount namespace of its own the container shares the runtime's mounts: none
    // are made for it (they would land in the host's namespace); it is chrooted instead.
    let own_mounts = ctx.ns.has(LinuxNamespaceType::Mount);
    if own_mounts {
        rootfs::prepare(&plan, sys)?;
    }

    // prestart and createRuntime hooks run in the runtime's namespaces, in the parent.
    ch.send(&Msg::RunHooks)?;
    let state_json = match ch.expect("the hooks ran")?.0 {
        Msg::HooksDone(s) => s,
        other => return Err(Error::Child(format!("unexpected message {other:?}"))),
    };
    let hooks = spec.hooks().as_ref();
    hooks::run_all(
        "createContainer",
        hooks.and_then(|h| h.create_container().as_ref()),
        &state_json,
    )?;

    if own_mounts {
        rootfs::pivot(&plan, sys)?;
    } else {
        // Shared mounts: no mount is made for the container, but it still sees its rootfs.
        sys.chroot(&ctx.bundle.rootfs)
            .ctx(|| "chroot into the rootfs".into())?;
        sys.chdir(Path::new("/")).ctx(|| "chdir /".into())?;
    }

    if process.terminal() == Some(true) {
        let sock = ctx.console_socket.ok_or_else(|| {
            Error::InvalidArgument("process.terminal is set but no console socket was given".into())
        })?;
        setup_terminal(sys, process, sock)?;
    }
    // Hostname, domainname and sysctls go in before /proc/sys becomes read-only.
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        sys.sethostname(h)
            .ctx(|| format!("setting hostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|h| !h.is_empty()) {
        sys.setdomainname(d)
            .ctx(|| format!("setting domainname {d:?}"))?;
    }
    let linux = spec.linux().as_ref();
    if let Some(sysctl) = linux.and_then(|l| l.sysctl().as_ref()) {
        rootfs::write_sysctls(sys, sysctl)?;
    }
    if own_mounts {
        rootfs::finalize(&plan, sys)?;
    }
    if let Some(p) = linux.and_then(|l| l.personality().as_ref()) {
        process::set_personality(sys, p)?;
    }

    let exe = prepare_process(sys, process, seccomp, ch, in_userns, ctx.preserve_fds)?;
    Ok((exe, state_json))
}

/// Everything between the rootfs and execve that init and exec share: LSM labels, rlimits,
/// scheduling, no_new_privs, seccomp, user and capabilities, cwd, umask, the program's path.
/// The seccomp notify fd, if any, is handed to the parent over `ch`.
pub fn prepare_process(
    sys: &dyn Sys,
    process: &Process,
    seccomp: Option<berth_seccomp::Filter>,
    ch: &Channel,
    in_userns: bool,
    preserve_fds: u32,
) -> Result<CString> {
    process::set_lsm_labels(sys, process)?;
    if let Some(rl) = process.rlimits() {
        process::set_rlimits(sys, rl)?;
    }
    if let Some(adj) = process.oom_score_adj() {
        process::set_oom_score_adj(sys, adj)?;
    }
    if let Some(io) = process.io_priority() {
        process::set_io_priority(sys, io.class(), io.priority())?;
    }
    if let Some(s) = process.scheduler() {
        process::set_scheduler(sys, s)?;
    }
    let nnp = process.no_new_privileges() == Some(true);
    if nnp {
        process::set_no_new_privs(sys)?;
    }
    // The program is looked up now, while any error can still be reported cleanly.
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let args = process.args().as_deref().unwrap_or_default();
    let exe = process::find_executable(sys, &args[0], &env, process.cwd())?;

    // Before any seccomp filter: a profile need not allow close_range.
    process::cloexec_from(sys, 3 + preserve_fds)?;
    let mut seccomp = seccomp;
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: do it before dropping it.
    if !nnp && let Some(f) = seccomp.take() {
        load_seccomp(f, ch)?;
    }
    let user = process.user();
    let caps = CapSets::from_spec_up_to(process.capabilities().as_ref(), sys.last_cap());
    let groups: &[u32] = user.additional_gids().as_deref().unwrap_or_default();
    let set_groups = !in_userns || setgroups_allowed(sys);
    process::set_identity_and_caps(sys, user.uid(), user.gid(), groups, set_groups, &caps)?;
    sys.chdir(process.cwd()).ctx(|| {
        format!(
            "changing to the working directory {}",
            process.cwd().display()
        )
    })?;
    sys.umask(nix::sys::stat::Mode::from_bits_truncate(
        user.umask().unwrap_or(0o022) as libc::mode_t,
    ));
    // With no_new_privs, load as late as possible so the filter sees few runtime syscalls.
    if let Some(f) = seccomp.take() {
        load_seccomp(f, ch)?;
    }
    process::cstring(exe.as_os_str())
}

fn setgroups_allowed(sys: &dyn Sys) -> bool {
    sys.read_file(Path::new("/proc/self/setgroups"))
        .map(|s| s.trim() == "allow")
        .unwrap_or(true)
}

fn load_seccomp(f: berth_seccomp::Filter, ch: &Channel) -> Result<()> {
    if let Some(fd) = f.load()? {
        ch.send_with_fds(&Msg::SeccompFd, &[fd.as_raw_fd()])?;
        match ch.expect("the seccomp agent got its fd")?.0 {
            Msg::SeccompDone => {}
            other => return Err(Error::Child(format!("unexpected message {other:?}"))),
        }
    }
    Ok(())
}

fn setup_terminal(sys: &dyn Sys, process: &Process, sock: BorrowedFd<'_>) -> Result<()> {
    let pty = console::open_pty()?;
    if let Some(sz) = process.console_size() {
        console::set_size(pty.master.as_fd(), sz.height() as u16, sz.width() as u16)?;
    }
    console::send_master(sock.as_raw_fd(), &pty.master, &pty.slave_path)?;
    drop(pty.master);
    // SAFETY: this is the init, a child of `launch::spawn`; the socket's owner is in the
    // parent's frames, which this process never returns to, and nothing here closes it again.
    unsafe { launch::close_inherited(sock) };
    console::make_controlling(&pty.slave)?;
    rootfs::mount_console(sys, &pty.slave_path)?;
    Ok(())
}

/// execve the program with exactly the process's environment.
pub fn exec(exe: &CString, process: &Process) -> Error {
    let args: Vec<CString> = match process
        .args()
        .iter()
        .flatten()
        .map(process::cstring)
        .collect::<Result<_>>()
    {
        Ok(a) => a,
        Err(e) => return e,
    };
    let env: Vec<CString> = match process
        .env()
        .iter()
        .flatten()
        .map(process::cstring)
        .collect::<Result<_>>()
    {
        Ok(a) => a,
        Err(e) => return e,
    };
    let e = match nix::unistd::execve(exe, &args, &env) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    Error::Child(format!(
        "exec {:?}: {}",
        exe.to_string_lossy(),
        std::io::Error::from_raw_os_error(e as i32)
    ))
}

/// After start, errors go to start.fifo, where `start` reads them.
fn fail_after_start(start_fifo: &OwnedFd, e: &Error) -> ! {
    let mut f = std::fs::File::from(start_fifo.try_clone().unwrap_or_else(|_| {
        // SAFETY: _exit ends the process without running destructors.
        unsafe { libc::_exit(127) }
    }));
    let _ = f.write_all(e.to_string().as_bytes());
    // SAFETY: _exit ends the container's init without running the runtime's destructors.
    unsafe { libc::_exit(127) }
}

/// The state JSON with another status (startContainer hooks see "created").
pub fn state_with_status(state_json: &str, status: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(state_json) {
        Ok(mut v) => {
            v["status"] = serde_json::Value::String(status.into());
            v.to_string()
        }
        Err(_) => state_json.to_string(),
    }
}

fn join_session_keyring(sys: &dyn Sys, id: &str) -> Result<()> {
    use nix::errno::Errno;
    let name = CString::new(format!("_ses.{id}")).map_err(|_| Error::InvalidId(id.into()))?;
    match sys.join_session_keyring(&name) {
        // Kernels without keyrings, or a user namespace that may not create one: go on.
        Ok(()) | Err(Errno::ENOSYS | Errno::EACCES | Errno::EPERM | Errno::EDQUOT) => Ok(()),
        Err(e) => Err(Error::sys("joining a new session keyring", e)),
    }
}

#[cfg(test)]
mod tests;
