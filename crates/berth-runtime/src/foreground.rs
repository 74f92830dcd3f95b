//! Waiting for a container's process in the foreground (`run`, `exec` without `-d`):
//! reap it, forward signals to it, and relay its terminal.
//!
//! The runtime makes itself a child subreaper before forking, so the process (a grandchild)
//! is re-parented to it and its exit status comes back here.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::console;
use crate::error::{Context, Result};

/// Become a child subreaper: orphaned descendants are re-parented to us.
pub fn become_subreaper() -> Result<()> {
    nix::sys::prctl::set_child_subreaper(true).ctx(|| "becoming a child subreaper".into())
}

const FORWARDED: [Signal; 9] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGCONT,
    Signal::SIGTSTP,
    Signal::SIGALRM,
];

/// Wait for `pid` to exit, forwarding signals and relaying `master` (the process's terminal)
/// to our stdin/stdout. Returns the exit code (128+n when killed by signal n).
pub fn wait(pid: i32, master: Option<OwnedFd>) -> Result<i32> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    mask.add(Signal::SIGWINCH);
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .ctx(|| "blocking signals".into())?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .ctx(|| "signalfd".into())?;
    let target = Pid::from_raw(pid);

    // Put our terminal in raw mode while relaying, restored on the way out.
    let stdin = std::io::stdin();
    let saved_tio = if master.is_some() {
        termios::tcgetattr(stdin.as_fd()).ok()
    } else {
        None
    };
    if let (Some(tio), Some(m)) = (&saved_tio, &master) {
        let mut raw = tio.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, &raw);
        if let Some((rows, cols)) = console::get_size(std::io::stdin().as_fd()) {
            let _ = console::set_size(m.as_fd(), rows, cols);
        }
    }
    let result = wait_loop(target, &sfd, master.as_ref());
    if let Some(tio) = &saved_tio {
        let _ = termios::tcsetattr(stdin.as_fd(), termios::SetArg::TCSANOW, tio);
    }
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&mask), None);
    result
}

fn reap(target: Pid) -> Option<i32> {
    let mut code = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p == target => code = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p == target => code = Some(128 + s as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    code
}

fn wait_loop(target: Pid, sfd: &SignalFd, master: Option<&OwnedFd>) -> Result<i32> {
    let mut stdin_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    let mut exit: Option<i32> = reap(target);
    loop {
        if let Some(code) = exit {
            // Drain what the terminal still holds, then finish.
            if let Some(m) = master {
                drain(m, &mut buf);
            }
            return Ok(code);
        }
        let stdin_fd = std::io::stdin();
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin_fd.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(crate::error::Error::sys("poll", e)),
        }
        let ready: Vec<PollFlags> = fds
            .iter()
            .map(|f| f.revents().unwrap_or(PollFlags::empty()))
            .collect();
        drop(fds);
        if !ready[0].is_empty() {
            while let Ok(Some(info)) = sfd.read_signal() {
                let sig = info.ssi_signo as i32;
                if sig == libc::SIGCHLD {
                    if let Some(c) = reap(target) {
                        exit = Some(c);
                    }
                } else if sig == libc::SIGWINCH {
                    if let (Some(m), Some((r, c))) =
                        (master, console::get_size(std::io::stdin().as_fd()))
                    {
                        let _ = console::set_size(m.as_fd(), r, c);
                    }
                } else if let Ok(s) = Signal::try_from(sig) {
                    let _ = nix::sys::signal::kill(target, s);
                }
            }
        }
        if let Some(m) = master {
            if ready.len() > 1 && !ready[1].is_empty() {
                match nix::unistd::read(m, &mut buf) {
                    Ok(0) | Err(_) => {
                        // The terminal is gone (EIO once every slave fd is closed).
                        if exit.is_none() {
                            exit = wait_blocking(target);
                        }
                    }
                    Ok(n) => write_all(std::io::stdout().as_fd(), &buf[..n]),
                }
            }
            if stdin_open && ready.len() > 2 && !ready[2].is_empty() {
                match nix::unistd::read(std::io::stdin().as_fd(), &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => write_all(m.as_fd(), &buf[..n]),
                }
            }
        }
    }
}

fn wait_blocking(target: Pid) -> Option<i32> {
    loop {
        match waitpid(target, None) {
            Ok(WaitStatus::Exited(_, c)) => return Some(c),
            Ok(WaitStatus::Signaled(_, s, _)) => return Some(128 + s as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return Some(255),
        }
    }
}

fn drain(m: &OwnedFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(
        m,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while let Ok(n) = nix::unistd::read(m, buf) {
        if n == 0 {
            break;
        }
        write_all(std::io::stdout().as_fd(), &buf[..n]);
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
    }
}
