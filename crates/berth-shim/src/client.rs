//! The daemon's side: start a shim ([`launch`]) and talk to it ([`ShimClient`]).
//!
//! Everything here blocks (std's `UnixStream`): call it from blocking threads. A stream
//! returned by [`ShimClient::attach`] or [`ShimClient::exec`] can be handed to an async
//! runtime as a raw fd (set it non-blocking first).

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::config::SOCKET_FILE;
use crate::error::{Error, Result, io};
use crate::protocol::{ExitStatus, MAX_LINE, Request};

/// Start the shim for the container whose state directory (holding `shim.json`) is
/// `state_dir`: runs `shim_binary STATE_DIR` and waits for it to report. Returns the
/// container's pid once the container is created and the shim's socket listens.
///
/// The shim daemonizes: the process run here exits as soon as it has reported, and the monitor
/// lives on, not a child of the caller (the caller must not be a child subreaper, or the
/// monitor would be re-parented to it).
pub fn launch(shim_binary: &Path, state_dir: &Path) -> Result<i32> {
    let out = Command::new(shim_binary)
        .arg(state_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| io(format!("running {}", shim_binary.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    if let Some(pid) = line.strip_prefix("created ") {
        if out.status.success() {
            return pid
                .trim()
                .parse()
                .map_err(|_| Error::Protocol(line.to_string()));
        }
    }
    if let Some(msg) = line.strip_prefix("error ") {
        return Err(Error::Launch(msg.to_string()));
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(Error::Launch(format!(
        "the shim failed ({}){}{}",
        out.status,
        if err.trim().is_empty() { "" } else { ": " },
        err.trim()
    )))
}

/// A client of one shim (cheap: each call opens its own connection).
#[derive(Debug, Clone)]
pub struct ShimClient {
    state_dir: PathBuf,
    timeout: Option<Duration>,
}

/// A `wait` connection: [`Waiter::wait`] blocks until the container exits.
#[derive(Debug)]
pub struct Waiter {
    stream: UnixStream,
}

impl Waiter {
    /// Block until the exit line, or [`Error::ShimDied`] when the connection ends without it.
    pub fn wait(mut self) -> Result<ExitStatus> {
        match read_line(&mut self.stream) {
            Ok(line) => {
                if let Some(msg) = line.strip_prefix("error ") {
                    return Err(Error::Refused(msg.to_string()));
                }
                ExitStatus::parse(&line).ok_or(Error::Protocol(line))
            }
            Err(Error::Closed) => Err(Error::ShimDied),
            // The shim died before it read the command.
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::ConnectionReset =>
            {
                Err(Error::ShimDied)
            }
            Err(e) => Err(e),
        }
    }

    /// The connection (to poll it, e.g. from an async runtime: readable means the line or EOF
    /// is there).
    pub fn into_stream(self) -> UnixStream {
        self.stream
    }
}

/// Read one line, byte by byte (the stream that may follow is not consumed).
fn read_line(s: &mut UnixStream) -> Result<String> {
    let mut line = Vec::with_capacity(32);
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(0) => return Err(Error::Closed),
            Ok(_) if b[0] == b'\n' => break,
            Ok(_) => {
                line.push(b[0]);
                if line.len() > 4096 {
                    return Err(Error::Protocol(String::from_utf8_lossy(&line).into_owned()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io("reading the shim's answer", e)),
        }
    }
    Ok(String::from_utf8_lossy(&line).into_owned())
}

impl ShimClient {
    /// A client for the shim of `state_dir`. One-shot commands time out after 60 s.
    pub fn new(state_dir: impl Into<PathBuf>) -> ShimClient {
        ShimClient {
            state_dir: state_dir.into(),
            timeout: Some(Duration::from_secs(60)),
        }
    }

    /// The time a one-shot command may take (`None`: no limit); `wait`, attach and exec
    /// streams have none.
    pub fn with_timeout(mut self, t: Option<Duration>) -> ShimClient {
        self.timeout = t;
        self
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Connect to the socket (a path too long for a socket address is reached through the
    /// directory's file descriptor).
    pub fn connect(&self) -> Result<UnixStream> {
        let path = self.state_dir.join(SOCKET_FILE);
        let what = || format!("connecting to {}", path.display());
        if path.as_os_str().len() < 100 {
            return UnixStream::connect(&path).map_err(|e| io(what(), e));
        }
        let dir = std::fs::File::open(&self.state_dir).map_err(|e| io(what(), e))?;
        let via = format!("/proc/self/fd/{}/{SOCKET_FILE}", dir.as_raw_fd());
        UnixStream::connect(via).map_err(|e| io(what(), e))
    }

    fn send(&self, req: &Request) -> Result<UnixStream> {
        let mut s = self.connect()?;
        let line = format!("{req}\n");
        debug_assert!(line.len() <= MAX_LINE);
        s.write_all(line.as_bytes())
            .map_err(|e| io("sending a command to the shim", e))?;
        Ok(s)
    }

    /// Send a one-shot command and return the answer; `error <msg>` is [`Error::Refused`].
    fn call(&self, req: &Request) -> Result<String> {
        let mut s = self.send(req)?;
        s.set_read_timeout(self.timeout)
            .map_err(|e| io("setting a timeout", e))?;
        let line = read_line(&mut s)?;
        match line.strip_prefix("error ") {
            Some(msg) => Err(Error::Refused(msg.to_string())),
            None => Ok(line),
        }
    }

    fn expect_ok(&self, req: &Request) -> Result<()> {
        let line = self.call(req)?;
        if line == "ok" {
            Ok(())
        } else {
            Err(Error::Protocol(line))
        }
    }

    /// Is the shim alive.
    pub fn ping(&self) -> Result<()> {
        self.expect_ok(&Request::Ping)
    }

    /// The container's pid.
    pub fn pid(&self) -> Result<i32> {
        let line = self.call(&Request::Pid)?;
        line.parse().map_err(|_| Error::Protocol(line))
    }

    /// Start the created container (its program runs when this returns).
    pub fn start(&self) -> Result<()> {
        self.expect_ok(&Request::Start)
    }

    /// Set the container's terminal size.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<()> {
        self.expect_ok(&Request::Resize { rows, cols })
    }

    /// Send signal `signal` to the container's init (through its parent, the shim, so the
    /// pid cannot name another process).
    pub fn kill(&self, signal: i32) -> Result<()> {
        self.expect_ok(&Request::Kill { signal })
    }

    /// Set an exec's terminal size.
    pub fn resize_exec(&self, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        self.expect_ok(&Request::ResizeExec {
            id: exec_id.to_string(),
            rows,
            cols,
        })
    }

    /// Attach to the container's stdio: the returned stream carries its output (raw with a
    /// terminal, else multiplexed frames) and takes its input (with `stdin`); shut down its
    /// write half to end the input.
    pub fn attach(&self, stdin: bool, stdout: bool, stderr: bool) -> Result<UnixStream> {
        let mut s = self.send(&Request::Attach {
            stdin,
            stdout,
            stderr,
        })?;
        let line = read_line(&mut s)?;
        match line.as_str() {
            "ok" => Ok(s),
            l => match l.strip_prefix("error ") {
                Some(m) => Err(Error::Refused(m.to_string())),
                None => Err(Error::Protocol(line)),
            },
        }
    }

    /// Open a `wait` connection (open it before `start` not to miss a quick exit; the answer
    /// comes anyway if the container has exited already and the shim still runs).
    pub fn wait(&self) -> Result<Waiter> {
        Ok(Waiter {
            stream: self.send(&Request::Wait)?,
        })
    }

    /// Exec the process of `STATE_DIR/exec-<exec_id>.json` (write it first with
    /// [`ExecConfig::write`](crate::ExecConfig::write)). Returns its pid and its stream, as
    /// [`ShimClient::attach`]'s (a detached exec's stream ends at once).
    pub fn exec(&self, exec_id: &str) -> Result<(i32, UnixStream)> {
        let mut s = self.send(&Request::Exec {
            id: exec_id.to_string(),
        })?;
        let line = read_line(&mut s)?;
        if let Some(m) = line.strip_prefix("error ") {
            return Err(Error::Refused(m.to_string()));
        }
        let pid = line
            .strip_prefix("ok ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::Protocol(line.clone()))?;
        Ok((pid, s))
    }
}
