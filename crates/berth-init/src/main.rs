//! `berth-init`: PID 1 of a container started with `--init` (mounted as /sbin/docker-init,
//! as Docker mounts its tini): `berth-init -- CMD ARGS…` runs the command as its child,
//! forwards the signals it gets to it, reaps every zombie re-parented to it, and exits with
//! the command's status (128 + the signal if a signal ended it).
//!
//! Written by hand: it is a few dozen lines on nix, and a container's PID 1 must be tiny.

use std::ffi::CString;
use std::process::ExitCode;

use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, execvp, fork};

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--") {
        args.remove(0);
    }
    if args.is_empty() {
        eprintln!("usage: berth-init [--] COMMAND [ARG...]");
        return ExitCode::from(2);
    }
    let argv: Vec<CString> = match args.iter().map(|a| CString::new(a.as_bytes())).collect() {
        Ok(v) => v,
        Err(_) => {
            eprintln!("berth-init: an argument holds a NUL byte");
            return ExitCode::from(2);
        }
    };
    // Every signal is taken with sigwait; the child gets the default mask back.
    let all = SigSet::all();
    let mut old = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), Some(&mut old)) {
        eprintln!("berth-init: blocking signals: {e}");
        return ExitCode::from(1);
    }
    // SAFETY: this process is single-threaded (nothing was spawned), so the child may run any
    // code between fork and exec.
    let child = match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // Its own process group, in the foreground of the terminal if there is one (while
            // SIGTTOU is still blocked), then the signal mask it was started with.
            let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
            let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpid());
            let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
            let e = execvp(&argv[0], &argv).unwrap_err();
            eprintln!("berth-init: exec {}: {e}", args[0]);
            std::process::exit(if e == nix::errno::Errno::ENOENT {
                127
            } else {
                126
            });
        }
        Ok(ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("berth-init: fork: {e}");
            return ExitCode::from(1);
        }
    };
    loop {
        let sig = match all.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != Signal::SIGCHLD {
            // Forwarded to the command (its group: what a shell started goes too).
            if kill(Pid::from_raw(-child.as_raw()), sig).is_err() {
                let _ = kill(child, sig);
            }
            continue;
        }
        // Reap everything that ended; the command's end ends the container.
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => {
                    return ExitCode::from(code as u8);
                }
                Ok(WaitStatus::Signaled(pid, s, _)) if pid == child => {
                    return ExitCode::from(128u8.wrapping_add(s as u8));
                }
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}
