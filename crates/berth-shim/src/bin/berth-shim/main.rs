//! `berth-shim STATE_DIR`: the monitor of one container.
//!
//! The process the daemon runs reads `STATE_DIR/shim.json`, starts a new session and forks the
//! monitor, then waits on a pipe and prints one line: `created <pid>` (exit 0) once the
//! container is created and the control socket listens, or `error <message>` (exit 1). The
//! monitor is then nobody's child but init's (or a subreaper's): it outlives the daemon. See
//! the library's `protocol` module for the socket, and ARCHITECTURE.md ("The shim").

mod log;
mod monitor;
mod oom;
mod runtime;
mod sys;

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use berth_shim::ShimConfig;
use berth_shim::config::{PID_FILE, SOCKET_FILE, write_file};
use nix::fcntl::OFlag;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, socketpair};
use nix::unistd::ForkResult;

use crate::monitor::{InitIo, Monitor};
use crate::runtime::Console;

fn main() {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: berth-shim STATE_DIR");
        std::process::exit(2);
    };
    if dir == "--version" {
        println!("berth-shim version {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    // Nothing the daemon left open (its sockets, its database) may live on in the monitor.
    sys::close_inherited_fds();
    let state_dir = match std::path::absolute(&dir) {
        Ok(d) => d,
        Err(e) => report_and_exit(&format!("{}: {e}", Path::new(&dir).display())),
    };
    let cfg = match ShimConfig::load(&state_dir) {
        Ok(c) => c,
        Err(e) => report_and_exit(&e.to_string()),
    };
    // A session of our own: the monitor (a child, not the session leader) can never acquire a
    // controlling terminal, and no signal for the daemon's group or terminal reaches it.
    let _ = nix::unistd::setsid();
    let (r, w) = match nix::unistd::pipe2(OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => report_and_exit(&format!("pipe: {e}")),
    };
    // SAFETY: the process is single-threaded (nothing has started a thread), so both sides
    // may go on running ordinary Rust code.
    match unsafe { nix::unistd::fork() } {
        Err(e) => report_and_exit(&format!("fork: {e}")),
        Ok(ForkResult::Parent { .. }) => {
            drop(w);
            relay(r)
        }
        Ok(ForkResult::Child) => {
            drop(r);
            let code = shim(cfg, state_dir, w);
            std::process::exit(code)
        }
    }
}

fn report_and_exit(msg: &str) -> ! {
    println!("error {}", runtime::one_line(msg));
    std::process::exit(1)
}

/// The first process: print the monitor's one line and leave.
fn relay(r: OwnedFd) -> ! {
    let mut text = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match nix::unistd::read(&r, &mut buf) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&text);
    let line = text.lines().next().unwrap_or_default();
    if line.starts_with("created ") {
        println!("{line}");
        std::process::exit(0)
    }
    if line.starts_with("error ") {
        println!("{line}");
        std::process::exit(1)
    }
    report_and_exit("the shim exited before the container was created")
}

/// The monitor: set up, create the container, report, serve.
fn shim(cfg: ShimConfig, state_dir: PathBuf, report: OwnedFd) -> i32 {
    let fail = |report: &OwnedFd, msg: &str| -> i32 {
        let line = format!("error {}\n", runtime::one_line(msg));
        let _ = sys::write_all(report.as_fd(), line.as_bytes());
        let _ = std::fs::remove_file(state_dir.join(SOCKET_FILE));
        let _ = std::fs::remove_file(state_dir.join(PID_FILE));
        1
    };
    // One shim per container: a socket that answers belongs to a live one, whose files are
    // left alone.
    if let Err(e) = nix::unistd::chdir(&state_dir) {
        let line = format!("error {}: {e}\n", state_dir.display());
        let _ = sys::write_all(report.as_fd(), line.as_bytes());
        return 1;
    }
    if std::os::unix::net::UnixStream::connect(SOCKET_FILE).is_ok() {
        let line = format!(
            "error a shim is already running for {}\n",
            state_dir.display()
        );
        let _ = sys::write_all(report.as_fd(), line.as_bytes());
        return 1;
    }
    match setup(&cfg, &state_dir) {
        Ok((mon, pid)) => {
            let line = format!("created {pid}\n");
            if sys::write_all(report.as_fd(), line.as_bytes()).is_err() {
                // The daemon is gone already; the container is created and will be found.
            }
            drop(report);
            mon.run()
        }
        Err(e) => fail(&report, &e),
    }
}

fn setup(cfg: &ShimConfig, state_dir: &Path) -> Result<(Monitor, i32), String> {
    let null = sys::dev_null().map_err(|e| format!("/dev/null: {e}"))?;
    sys::set_stdio(null.as_fd(), null.as_fd(), null.as_fd()).map_err(|e| format!("stdio: {e}"))?;
    // Orphans of the container (its init first) become our children.
    nix::sys::prctl::set_child_subreaper(true)
        .map_err(|e| format!("PR_SET_CHILD_SUBREAPER: {e}"))?;
    // SAFETY: SIG_IGN installs no handler; writes to a closed socket then fail with EPIPE.
    unsafe { nix::sys::signal::signal(Signal::SIGPIPE, SigHandler::SigIgn) }
        .map_err(|e| format!("SIGPIPE: {e}"))?;
    // SIGCHLD is read from a signalfd; the others are read and dropped the same way: a SIGTERM
    // for the shim must not end the container's monitor.
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
    ] {
        mask.add(s);
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)
        .map_err(|e| format!("sigprocmask: {e}"))?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(|e| format!("signalfd: {e}"))?;
    // (The cwd is the state directory already.) stderr is /dev/null: a panic (a bug) is left in the state directory for whoever finds
    // the shim gone.
    std::panic::set_hook(Box::new(|info| {
        let _ = std::fs::write("shim.panic", format!("{info}\n"));
    }));
    // An exit record is this run's: one left by an earlier run of the container goes.
    match std::fs::remove_file(&cfg.exit_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("removing {}: {e}", cfg.exit_file.display()));
        }
        _ => {}
    }
    write_file(
        &state_dir.join(PID_FILE),
        format!("{}\n", std::process::id()).as_bytes(),
        false,
    )
    .map_err(|e| e.to_string())?;
    // Bound relative to the state directory (our cwd): its absolute path may be longer than a
    // socket address holds (clients then connect through the directory's fd).
    let listener = runtime::listen(Path::new(SOCKET_FILE))
        .map_err(|e| format!("listening on {}: {e}", SOCKET_FILE))?;
    sys::set_nonblocking(listener.as_fd()).map_err(|e| e.to_string())?;
    let log = cfg.log.as_ref().map(log::Log::open).transpose()?;

    let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
    let (io, pid) = if cfg.tty {
        let console_path = Path::new("console.sock");
        let (created, master) = if cfg.runtime.is_none() {
            let (ours, theirs) = socketpair(
                AddressFamily::Unix,
                SockType::Stream,
                None,
                SockFlag::SOCK_CLOEXEC,
            )
            .map_err(|e| format!("socketpair: {e}"))?;
            let c = runtime::create(
                cfg,
                state_dir,
                [null.as_fd(), null.as_fd(), null.as_fd()],
                Console::Fd(theirs.as_fd()),
            )?;
            drop(theirs);
            let mut buf = [0u8; 256];
            match sys::recv_fds(ours.as_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok((_, mut fds)) if !fds.is_empty() => (c, fds.swap_remove(0)),
                r => {
                    runtime::delete_now(cfg, state_dir);
                    return Err(match r {
                        Err(e) => format!("receiving the terminal: {e}"),
                        Ok(_) => "the container did not send its terminal".into(),
                    });
                }
            }
        } else {
            let l = runtime::listen(console_path).map_err(|e| format!("console socket: {e}"))?;
            let c = runtime::create(
                cfg,
                state_dir,
                [null.as_fd(), null.as_fd(), null.as_fd()],
                Console::Path(console_path),
            );
            let c = c?;
            let m = runtime::accept_master(l.as_fd());
            let _ = std::fs::remove_file(console_path);
            match m {
                Ok(m) => (c, m),
                Err(e) => {
                    runtime::delete_now(cfg, state_dir);
                    return Err(e);
                }
            }
        };
        let input = if cfg.stdin {
            Some(nix::unistd::dup(&master).map_err(|e| format!("dup: {e}"))?)
        } else {
            None
        };
        let pid = created.pid;
        (
            InitIo {
                pid,
                tty: true,
                out: master,
                err: None,
                input,
                oom: created.oom,
            },
            pid,
        )
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w) = if cfg.stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (
                nix::unistd::dup(&null).map_err(|e| format!("dup: {e}"))?,
                None,
            )
        };
        let created = runtime::create(
            cfg,
            state_dir,
            [in_r.as_fd(), out_w.as_fd(), err_w.as_fd()],
            Console::None,
        )?;
        // Only the container holds its ends now: its exit closes them.
        drop((in_r, out_w, err_w));
        let pid = created.pid;
        (
            InitIo {
                pid,
                tty: false,
                out: out_r,
                err: Some(err_r),
                input: in_w,
                oom: created.oom,
            },
            pid,
        )
    };
    for fd in [Some(&io.out), io.err.as_ref(), io.input.as_ref()]
        .into_iter()
        .flatten()
    {
        sys::set_nonblocking(fd.as_fd()).map_err(|e| e.to_string())?;
    }
    drop(null);
    Ok((
        Monitor::new(
            cfg.clone(),
            state_dir.to_path_buf(),
            listener,
            sigfd,
            io,
            log,
        ),
        pid,
    ))
}
