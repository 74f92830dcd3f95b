//! Small system helpers: forking a child that never returns, passing fds, non-blocking I/O.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};
use nix::sys::wait::WaitStatus;
use nix::unistd::{ForkResult, Pid};

/// Fork a child that runs `f` and exits with its code (no destructor or exit handler of the
/// shim runs in it). The child starts with the signal mask and dispositions a program expects
/// (the shim blocks and ignores some), so that what it forks or executes inherits neither.
pub fn fork_child(f: impl FnOnce() -> i32) -> nix::Result<Pid> {
    // SAFETY: the shim is single-threaded, so the child may run ordinary Rust code (allocate,
    // lock) after fork; it ends in `_exit` and never returns into the parent's frames.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            let _ = nix::sys::signal::sigprocmask(
                SigmaskHow::SIG_SETMASK,
                Some(&SigSet::empty()),
                None,
            );
            for s in [Signal::SIGPIPE, Signal::SIGHUP, Signal::SIGTERM] {
                // SAFETY: restoring the default disposition installs no handler.
                let _ = unsafe { nix::sys::signal::signal(s, SigHandler::SigDfl) };
            }
            let code = f();
            // SAFETY: leaves the child without running the parent's destructors or atexit
            // handlers, which own state of the shim's monitor, not of this child.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Close every fd from 3 up except those in `keep` (in a child, before it runs the runtime).
pub fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|&&fd| fd > 2)
        .map(|&fd| fd as u32)
        .collect();
    keep.sort_unstable();
    let mut from = 3u32;
    for k in keep {
        if k > from {
            close_range(from, k - 1);
        }
        from = k + 1;
    }
    close_range(from, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range only closes descriptors; the callers own every fd in the range (a
    // fresh child whose needed fds are excluded, or the shim at start before it opens any).
    unsafe { libc::syscall(libc::SYS_close_range, first, last, 0u32) };
}

/// Close inherited fds >= 3 (the process just started: nothing of ours is open yet).
pub fn close_inherited_fds() {
    close_range(3, u32::MAX);
}

/// Make `fd` non-blocking.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let fl = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
    fcntl(fd, FcntlArg::F_SETFL(fl | OFlag::O_NONBLOCK)).map(drop)
}

/// Send `data` and `fds` in one message.
pub fn send_fds(sock: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> nix::Result<()> {
    let iov = [IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    socket::sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None)?;
    Ok(())
}

/// Receive one message: its length (0 at end of stream) and the fds that came with it.
pub fn recv_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> nix::Result<(usize, Vec<OwnedFd>)> {
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        flags | MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(list) = c {
            for fd in list {
                // SAFETY: SCM_RIGHTS just installed these descriptors in this process; nothing
                // else owns them.
                fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((msg.bytes, fds))
}

/// The exit code of a wait status: the status, or 128 + signal. `None` for other events.
pub fn exit_code(ws: WaitStatus) -> Option<(Pid, i32)> {
    match ws {
        WaitStatus::Exited(p, c) => Some((p, c)),
        WaitStatus::Signaled(p, s, _) => Some((p, 128 + s as i32)),
        _ => None,
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Write all of `data` to a blocking fd.
pub fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Open /dev/null read-write.
pub fn dev_null() -> nix::Result<OwnedFd> {
    nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
}

/// Put `fds` on 0, 1, 2 (in a child).
pub fn set_stdio(
    stdin: BorrowedFd<'_>,
    stdout: BorrowedFd<'_>,
    stderr: BorrowedFd<'_>,
) -> nix::Result<()> {
    nix::unistd::dup2_stdin(stdin)?;
    nix::unistd::dup2_stdout(stdout)?;
    nix::unistd::dup2_stderr(stderr)
}
