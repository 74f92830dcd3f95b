//! `exec`: start another process in a running container.

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process};

use crate::container::Container;
use crate::create::{send_seccomp, write_pid_file};
use crate::error::{Context, Error, Result};
use crate::launch::{self, Launch};
use crate::spec::{self, Namespaces, ns_name};
use crate::state::Status;
use crate::sync::{Channel, Msg};
use crate::sys::LinuxSys;
use crate::{console, foreground, init, process};

/// Options of `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// The process to start.
    pub process: Process,
    /// Return once it runs instead of waiting for it.
    pub detach: bool,
    /// Write its pid here.
    pub pid_file: Option<PathBuf>,
    /// Where to send its terminal (when process.terminal). Without one, a foreground exec
    /// relays the terminal itself.
    pub console_socket: Option<PathBuf>,
    /// Pass fds 3..3+n to the process.
    pub preserve_fds: u32,
    /// Allow exec into a paused container.
    pub ignore_paused: bool,
}

/// What exec did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecOutcome {
    /// The process's pid.
    pub pid: i32,
    /// Its exit code, when exec waited for it.
    pub exit_code: Option<i32>,
}

const NS_TYPES: [LinuxNamespaceType; 8] = [
    LinuxNamespaceType::User,
    LinuxNamespaceType::Mount,
    LinuxNamespaceType::Pid,
    LinuxNamespaceType::Network,
    LinuxNamespaceType::Ipc,
    LinuxNamespaceType::Uts,
    LinuxNamespaceType::Cgroup,
    LinuxNamespaceType::Time,
];

/// The namespaces of `pid` that differ from ours.
fn namespaces_of(pid: i32) -> Vec<(LinuxNamespaceType, PathBuf)> {
    let mut out = Vec::new();
    for t in NS_TYPES {
        let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", ns_name(t)));
        let ours = if t == LinuxNamespaceType::Time {
            PathBuf::from("/proc/self/ns/time_for_children")
        } else {
            PathBuf::from(format!("/proc/self/ns/{}", ns_name(t)))
        };
        match (std::fs::metadata(&theirs), std::fs::metadata(&ours)) {
            (Ok(a), Ok(b)) if a.ino() == b.ino() && a.dev() == b.dev() => {}
            (Ok(_), _) => out.push((t, theirs)),
            _ => {}
        }
    }
    out
}

/// Run a process in container `id`.
pub fn exec(root: &Path, id: &str, opts: ExecOptions) -> Result<ExecOutcome> {
    launch::ensure_single_threaded()?;
    let c = Container::load(root, id)?;
    let status = c.status();
    match status {
        Status::Running | Status::Created => {}
        Status::Paused if opts.ignore_paused => {}
        _ => {
            return Err(Error::WrongState {
                id: id.into(),
                status: status.to_string(),
                op: "cannot exec in a container that is not running".into(),
            });
        }
    }
    let spec = c.spec()?;
    let process = opts.process;
    spec::validate_process(&process)?;
    let terminal = process.terminal() == Some(true);
    if terminal && opts.console_socket.is_none() && opts.detach {
        return Err(Error::InvalidArgument(
            "a detached exec with a terminal needs --console-socket".into(),
        ));
    }
    let ns = Namespaces::from_spec(&spec);
    let in_userns = ns.creates(LinuxNamespaceType::User);
    if !in_userns {
        process::check_caps_available(&process::CapSets::from_spec(
            process.capabilities().as_ref(),
        ))?;
    }
    let seccomp_spec = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let seccomp = seccomp_spec
        .map(|s| berth_seccomp::compile_cached(s, &crate::state::seccomp_cache(root)))
        .transpose()?;
    let listener = seccomp_spec.and_then(|s| s.listener_path().clone());
    let init_pid = c.saved.pid.unwrap_or(0);
    let cgroup = c.cgroup();

    // Terminal: the caller's socket, or our own pair whose other end we relay.
    let (console_sock, own_console): (Option<OwnedFd>, Option<OwnedFd>) = if terminal {
        match &opts.console_socket {
            Some(p) => (Some(console::connect(p)?.into()), None),
            None => {
                let (a, b) = std::os::unix::net::UnixStream::pair().ctx(|| "socketpair".into())?;
                (Some(b.into()), Some(a.into()))
            }
        }
    } else {
        (None, None)
    };
    // Closed by a successful execve: end-of-file without data means it ran.
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ctx(|| "pipe".into())?;

    if !opts.detach {
        foreground::become_subreaper()?;
    }
    let mut close_in_child = vec![c.dir.lock_fd(), status_r.as_fd()];
    // Our end of the console pair stays with us.
    close_in_child.extend(own_console.as_ref().map(|s| s.as_fd()));
    let launch = Launch {
        join: namespaces_of(init_pid),
        cgroup: cgroup.as_ref(),
        close_in_child,
        ..Default::default()
    };
    let preserve = opts.preserve_fds;
    let sock_fd = console_sock.as_ref().map(|s| s.as_fd());
    let proc_ref = &process;
    let status_w_ref = &status_w;
    let (pid, ch) = launch::spawn(&launch, move |ch: &Channel| -> Result<Infallible> {
        if terminal {
            nix::unistd::setsid().ctx(|| "setsid".into())?;
            let pty = console::open_pty()?;
            if let Some(sz) = proc_ref.console_size() {
                console::set_size(pty.master.as_fd(), sz.height() as u16, sz.width() as u16)?;
            }
            let sock = sock_fd.ok_or_else(|| Error::InvalidArgument("no console socket".into()))?;
            console::send_master(sock.as_raw_fd(), &pty.master, &pty.slave_path)?;
            drop(pty.master);
            // SAFETY: this runs in a child of `launch::spawn`; the socket's owner is in the
            // parent's frames, never dropped here, and the socket is not used again.
            unsafe { launch::close_inherited(sock) };
            console::make_controlling(&pty.slave)?;
        }
        let exe = init::prepare_process(&LinuxSys, proc_ref, seccomp, ch, in_userns, preserve)?;
        ch.send(&Msg::Ready)?;
        let e = init::exec(&exe, proc_ref);
        let _ = nix::unistd::write(status_w_ref, e.to_string().as_bytes());
        // SAFETY: the exec failed; leave without running the runtime's destructors.
        unsafe { libc::_exit(127) }
    })?;
    drop(status_w);
    drop(console_sock);

    let setup = (|| -> Result<()> {
        loop {
            let (msg, fds) = ch.expect("it was ready")?;
            match msg {
                Msg::SeccompFd => {
                    let fd = fds
                        .first()
                        .ok_or_else(|| Error::Child("the seccomp fd is missing".into()))?;
                    let mut saved = c.saved.clone();
                    saved.pid = Some(pid);
                    send_seccomp(listener.as_deref(), fd, &saved, &spec)?;
                    ch.send(&Msg::SeccompDone)?;
                }
                Msg::Ready => return Ok(()),
                other => return Err(Error::Child(format!("unexpected message {other:?}"))),
            }
        }
    })();
    drop(ch);
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = nix::unistd::read(&status_r, &mut buf) {
        if n == 0 {
            break;
        }
        msg.extend_from_slice(&buf[..n]);
    }
    if let Err(e) = setup {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        reap_quietly(pid);
        return Err(e);
    }
    if !msg.is_empty() {
        reap_quietly(pid);
        return Err(Error::Child(String::from_utf8_lossy(&msg).into_owned()));
    }
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    if opts.detach {
        return Ok(ExecOutcome {
            pid,
            exit_code: None,
        });
    }
    let master = match own_console {
        Some(sock) => Some(console::recv_master(sock.as_raw_fd())?),
        None => None,
    };
    let code = foreground::wait(pid, master)?;
    Ok(ExecOutcome {
        pid,
        exit_code: Some(code),
    })
}

fn reap_quietly(pid: i32) {
    let _ = nix::sys::wait::waitpid(
        nix::unistd::Pid::from_raw(pid),
        Some(nix::sys::wait::WaitPidFlag::WNOHANG),
    );
}
