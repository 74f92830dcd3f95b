//! The runtime operations, each in a forked child so that the monitor's own pages never touch
//! the runtime's code (and the runtime's single-thread rule holds: the shim has one thread).
//!
//! The runtime library is the default; `runtime` in shim.json names another OCI runtime binary
//! with runc's command line, run the way containerd and dockerd run runc. Either way the
//! container's init and exec'd processes end up children of the shim, a child subreaper.
//!
//! A child reports on a SOCK_SEQPACKET pair: one message, `ok …` or `error <msg>`, with the
//! parent's ends of an exec's stdio attached.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use berth_shim::config::exec_config_path;
use berth_shim::{ExecConfig, ShimConfig};
use nix::fcntl::OFlag;
use nix::sys::socket::{AddressFamily, MsgFlags, SockFlag, SockType, socketpair};
use nix::unistd::Pid;

use crate::sys;

/// How the container is made.
pub enum Console<'a> {
    /// No terminal.
    None,
    /// The runtime library sends the pty master over this connected socket.
    Fd(BorrowedFd<'a>),
    /// A runtime binary connects to this listening socket.
    Path(&'a Path),
}

/// A child's report channel: the parent's end, and the child's pid.
pub struct Job {
    pub pid: Pid,
    pub chan: OwnedFd,
}

/// Fork a child that runs `f` and reports its result on a channel (`ok <text>` with fds, or
/// `error <msg>`). The child keeps only its stdio, the channel and `keep`.
pub fn spawn(
    keep: &[BorrowedFd<'_>],
    f: impl FnOnce() -> Result<(String, Vec<OwnedFd>), String>,
) -> nix::Result<Job> {
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    let mut keep_raw: Vec<i32> = keep.iter().map(|f| f.as_raw_fd()).collect();
    keep_raw.push(theirs.as_raw_fd());
    let pid = sys::fork_child(|| {
        sys::close_fds_except(&keep_raw);
        let (msg, fds) = match f() {
            Ok((text, fds)) => (
                format!("ok{}{text}", if text.is_empty() { "" } else { " " }),
                fds,
            ),
            Err(e) => (format!("error {}", one_line(&e)), Vec::new()),
        };
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        match sys::send_fds(theirs.as_fd(), msg.as_bytes(), &raw) {
            Ok(()) => 0,
            Err(_) => 1,
        }
    })?;
    drop(theirs);
    Ok(Job { pid, chan: ours })
}

/// Read a job's report (blocking unless the channel is non-blocking).
pub fn read_report(chan: BorrowedFd<'_>, flags: MsgFlags) -> nix::Result<(String, Vec<OwnedFd>)> {
    let mut buf = [0u8; 4096];
    let (n, fds) = sys::recv_fds(chan, &mut buf, flags)?;
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), fds))
}

/// `msg` on one line.
pub fn one_line(msg: &str) -> String {
    msg.replace(['\n', '\r'], " ")
}

/// What `create` learnt: the init's pid, and where its memory cgroup counts OOM kills (with
/// the count at create).
pub struct Created {
    pub pid: i32,
    pub oom: Option<(PathBuf, u64)>,
}

/// Create the container (blocking). The child puts `stdio` on 0, 1, 2 before calling the
/// runtime: without a terminal the init inherits them.
pub fn create(
    cfg: &ShimConfig,
    state_dir: &Path,
    stdio: [BorrowedFd<'_>; 3],
    console: Console<'_>,
) -> Result<Created, String> {
    let console_fd = match &console {
        Console::Fd(fd) => Some(*fd),
        _ => None,
    };
    let mut keep: Vec<BorrowedFd> = stdio.to_vec();
    keep.extend(console_fd);
    let job = spawn(&keep, || {
        sys::set_stdio(stdio[0], stdio[1], stdio[2]).map_err(|e| format!("stdio: {e}"))?;
        let pid = match &cfg.runtime {
            None => {
                let console_socket = match console_fd {
                    Some(fd) => Some(berth_runtime::ConsoleSocket::Fd(Arc::new(
                        fd.try_clone_to_owned().map_err(|e| e.to_string())?,
                    ))),
                    None => None,
                };
                berth_runtime::Runtime::new(&cfg.runtime_root)
                    .create(
                        &cfg.id,
                        &berth_runtime::CreateOptions {
                            bundle: cfg.bundle.clone(),
                            console_socket,
                            ..Default::default()
                        },
                    )
                    .map_err(|e| e.to_string())?
            }
            Some(bin) => {
                let mut c = runtime_cmd(bin, cfg, state_dir);
                c.arg("create").arg("--bundle").arg(&cfg.bundle);
                if let Console::Path(p) = &console {
                    c.arg("--console-socket").arg(p);
                }
                let pid_file = state_dir.join("init.pid");
                c.arg("--pid-file").arg(&pid_file).arg(&cfg.id);
                run_binary(c, bin, "create", state_dir)?;
                read_pid(&pid_file)?
            }
        };
        Ok((
            match oom_counter(pid) {
                Some((path, n)) => format!("{pid} {n} {}", path.display()),
                None => pid.to_string(),
            },
            Vec::new(),
        ))
    })
    .map_err(|e| format!("fork: {e}"))?;
    let report = read_report(job.chan.as_fd(), MsgFlags::empty());
    let _ = nix::sys::wait::waitpid(job.pid, None);
    let (text, _) = report.map_err(|e| format!("reading the runtime's report: {e}"))?;
    parse_created(&text)
}

fn parse_created(text: &str) -> Result<Created, String> {
    if text.is_empty() {
        return Err("the runtime process died during create".into());
    }
    if let Some(e) = text.strip_prefix("error ") {
        return Err(e.to_string());
    }
    let rest = text
        .strip_prefix("ok ")
        .ok_or_else(|| format!("unexpected report {text:?}"))?;
    let mut f = rest.splitn(3, ' ');
    let pid = f
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("unexpected report {text:?}"))?;
    let oom = match (f.next().and_then(|n| n.parse().ok()), f.next()) {
        (Some(n), Some(p)) => Some((PathBuf::from(p), n)),
        _ => None,
    };
    Ok(Created { pid, oom })
}

/// Start the created container (a job: its report is `ok` or `error <msg>`).
pub fn start(cfg: &ShimConfig, state_dir: &Path) -> nix::Result<Job> {
    spawn(&[], || {
        match &cfg.runtime {
            None => berth_runtime::Runtime::new(&cfg.runtime_root)
                .start(&cfg.id)
                .map_err(|e| e.to_string())?,
            Some(bin) => {
                let mut c = runtime_cmd(bin, cfg, state_dir);
                c.arg("start").arg(&cfg.id);
                run_binary(c, bin, "start", state_dir)?;
            }
        }
        Ok((String::new(), Vec::new()))
    })
}

/// Delete the container's runtime state, killing whatever is left in its cgroup.
pub fn delete(cfg: &ShimConfig, state_dir: &Path) -> nix::Result<Job> {
    spawn(&[], || {
        match &cfg.runtime {
            None => berth_runtime::Runtime::new(&cfg.runtime_root)
                .delete(&cfg.id, true)
                .map_err(|e| e.to_string())?,
            Some(bin) => {
                let mut c = runtime_cmd(bin, cfg, state_dir);
                c.arg("delete").arg("--force").arg(&cfg.id);
                run_binary(c, bin, "delete", state_dir)?;
            }
        }
        Ok((String::new(), Vec::new()))
    })
}

/// Delete the container and wait (when setting up failed after it was created).
pub fn delete_now(cfg: &ShimConfig, state_dir: &Path) {
    if let Ok(job) = delete(cfg, state_dir) {
        let _ = read_report(job.chan.as_fd(), MsgFlags::empty());
        let _ = nix::sys::wait::waitpid(job.pid, None);
    }
}

/// Exec the process of `exec-<id>.json`. The report is `ok <pid> <terminal> <stdin> <detach>`
/// (flags 0/1) with the parent's ends of its stdio: the pty master, or stdout, stderr and
/// (with stdin) stdin's write end.
pub fn exec(cfg: &ShimConfig, state_dir: &Path, exec_id: &str) -> nix::Result<Job> {
    spawn(&[], || {
        let path = exec_config_path(state_dir, exec_id);
        let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        let ec: ExecConfig =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let terminal = ec.process.terminal() == Some(true);
        let want_stdin = ec.stdin && !ec.detach;
        let mut ours: Vec<OwnedFd> = Vec::new();
        let mut listener = None;
        // Relative to the state directory, our cwd (an absolute path may be too long).
        let sock_path = PathBuf::from(format!("exec-{}.console", std::process::id()));
        if terminal {
            listener = Some(listen(&sock_path).map_err(|e| format!("console socket: {e}"))?);
        } else {
            let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"));
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let (in_r, in_w) = if want_stdin {
                let (r, w) = pipe()?;
                (r, Some(w))
            } else {
                (sys::dev_null().map_err(|e| e.to_string())?, None)
            };
            sys::set_stdio(in_r.as_fd(), out_w.as_fd(), err_w.as_fd())
                .map_err(|e| format!("stdio: {e}"))?;
            ours.push(out_r);
            ours.push(err_r);
            ours.extend(in_w);
        }
        let result = (|| -> Result<i32, String> {
            match &cfg.runtime {
                None => Ok(berth_runtime::Runtime::new(&cfg.runtime_root)
                    .exec(
                        &cfg.id,
                        berth_runtime::ExecOptions {
                            process: ec.process.clone(),
                            detach: true,
                            pid_file: None,
                            console_socket: terminal.then(|| sock_path.clone()),
                            preserve_fds: 0,
                            ignore_paused: false,
                        },
                    )
                    .map_err(|e| e.to_string())?
                    .pid),
                Some(bin) => {
                    let pfile = state_dir.join(format!("exec-{exec_id}.process.json"));
                    let pid_file = state_dir.join(format!("exec-{exec_id}.pid"));
                    let body = serde_json::to_vec(&ec.process).map_err(|e| e.to_string())?;
                    std::fs::write(&pfile, body).map_err(|e| e.to_string())?;
                    let mut c = runtime_cmd(bin, cfg, state_dir);
                    c.arg("exec").arg("--detach").arg("--process").arg(&pfile);
                    if terminal {
                        c.arg("--console-socket").arg(&sock_path);
                    }
                    c.arg("--pid-file").arg(&pid_file).arg(&cfg.id);
                    let r =
                        run_binary(c, bin, "exec", state_dir).and_then(|()| read_pid(&pid_file));
                    let _ = std::fs::remove_file(&pfile);
                    let _ = std::fs::remove_file(&pid_file);
                    r
                }
            }
        })();
        let pid = match result {
            Ok(pid) => pid,
            Err(e) => {
                let _ = std::fs::remove_file(&sock_path);
                return Err(e);
            }
        };
        if let Some(l) = listener {
            let master = accept_master(l.as_fd());
            let _ = std::fs::remove_file(&sock_path);
            ours.push(master?);
        }
        let b = |v: bool| u8::from(v);
        Ok((
            format!("{pid} {} {} {}", b(terminal), b(want_stdin), b(ec.detach)),
            ours,
        ))
    })
}

/// A listening unix socket at `path` (mode 0600 by the umask set around bind).
pub fn listen(path: &Path) -> nix::Result<OwnedFd> {
    use nix::sys::socket::{Backlog, UnixAddr, bind, listen, socket};
    let _ = std::fs::remove_file(path);
    let fd = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let addr = UnixAddr::new(path)?;
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let r = bind(fd.as_raw_fd(), &addr);
    nix::sys::stat::umask(old);
    r?;
    listen(&fd, Backlog::new(64).unwrap_or(Backlog::MAXCONN))?;
    Ok(fd)
}

/// Accept the runtime's connection on a console socket and receive the pty master (the
/// runtime has connected and sent it before it returned, so this does not wait; a bound
/// guards against a runtime that did not).
pub fn accept_master(listener: BorrowedFd<'_>) -> Result<OwnedFd, String> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut p = [PollFd::new(listener, PollFlags::POLLIN)];
    match poll(&mut p, PollTimeout::from(5000u16)) {
        Ok(1) => {}
        _ => return Err("the runtime did not connect to the console socket".into()),
    }
    let conn = nix::sys::socket::accept4(listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC)
        .map_err(|e| format!("accepting the console connection: {e}"))?;
    // SAFETY: accept4 just returned this descriptor; nothing else owns it.
    let conn = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(conn) };
    let mut buf = [0u8; 256];
    let (_, mut fds) = sys::recv_fds(conn.as_fd(), &mut buf, MsgFlags::empty())
        .map_err(|e| format!("receiving the terminal: {e}"))?;
    if fds.is_empty() {
        return Err("the container did not send a terminal".into());
    }
    Ok(fds.swap_remove(0))
}

fn runtime_cmd(bin: &Path, cfg: &ShimConfig, state_dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--root")
        .arg(&cfg.runtime_root)
        .arg("--log")
        .arg(state_dir.join("runtime.log"))
        .arg("--log-format")
        .arg("json");
    c
}

/// Run a runtime binary; a failure is the last error its JSON log holds (as containerd reads
/// runc's), else how it exited.
fn run_binary(mut c: Command, bin: &Path, op: &str, state_dir: &Path) -> Result<(), String> {
    let log = state_dir.join("runtime.log");
    let _ = std::fs::remove_file(&log);
    let status = c
        .status()
        .map_err(|e| format!("running {}: {e}", bin.display()))?;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if status.success() {
        return Ok(());
    }
    let msg = text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["level"] == "error" || v["level"] == "fatal")
        .and_then(|v| v["msg"].as_str().map(str::to_string));
    Err(match msg {
        Some(m) => format!("{} {op}: {m}", bin.display()),
        None => format!("{} {op} failed ({status})", bin.display()),
    })
}

fn read_pid(path: &Path) -> Result<i32, String> {
    let t = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let _ = std::fs::remove_file(path);
    t.trim()
        .parse()
        .map_err(|_| format!("{}: not a pid: {t:?}", path.display()))
}

/// The file that counts OOM kills in `pid`'s memory cgroup, and its count now.
fn oom_counter(pid: i32) -> Option<(PathBuf, u64)> {
    let layout = berth_cgroups::Layout::detect().ok()?;
    let own = berth_cgroups::parse_proc_cgroup(
        &std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?,
    );
    let under = |point: &Path, root: &Path, p: &Path| {
        let rel = p.strip_prefix(root).unwrap_or(p);
        let mut out = point.to_path_buf();
        for c in rel.components() {
            if let std::path::Component::Normal(n) = c {
                out.push(n);
            }
        }
        out
    };
    let file = if let Some(m) = layout
        .v1
        .iter()
        .find(|m| m.controllers.iter().any(|c| c == "memory"))
    {
        let (_, p) = own
            .iter()
            .find(|(c, _)| c.split(',').any(|c| c == "memory"))?;
        under(&m.point, &m.root, p).join("memory.oom_control")
    } else {
        let u = layout.unified.as_ref()?;
        if !u.controllers.iter().any(|c| c == "memory") {
            return None;
        }
        let (_, p) = own.iter().find(|(c, _)| c.is_empty())?;
        under(&u.point, &u.root, p).join("memory.events")
    };
    let n = crate::oom::read_kills(&file)?;
    Some((file, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_reports() {
        let c = parse_created("ok 42 3 /sys/fs/cgroup/memory/a b/memory.oom_control").unwrap();
        assert_eq!(c.pid, 42);
        assert_eq!(
            c.oom,
            Some((
                PathBuf::from("/sys/fs/cgroup/memory/a b/memory.oom_control"),
                3
            ))
        );
        assert!(parse_created("ok 42").unwrap().oom.is_none());
        assert_eq!(parse_created("error boom").err().unwrap(), "boom");
        assert!(parse_created("").is_err());
    }
}
