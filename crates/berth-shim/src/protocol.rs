//! The control socket's protocol.
//!
//! Every connection to `STATE_DIR/shim.sock` starts with one command line (ASCII, ended by
//! `\n`, at most [`MAX_LINE`] bytes). The shim answers with one line:
//!
//! | command | answer | then |
//! |---|---|---|
//! | `ping` | `ok` | closed |
//! | `pid` | `<container pid>` | closed |
//! | `start` | `ok` or `error <msg>` | closed |
//! | `attach <stdin 0\|1> <stdout 0\|1> <stderr 0\|1>` | `ok` | the stream (below) |
//! | `resize <rows> <cols>` | `ok` | closed |
//! | `wait` | `exit <code> <unix_nanos> <oom 0\|1>` once the container has exited | closed |
//! | `exec <exec-id>` | `ok <pid>` | the exec's stream, unless detached |
//! | `resize-exec <exec-id> <rows> <cols>` | `ok` | closed |
//! | `kill <signal number>` | `ok` (signals the init; the shim is its parent, so the pid cannot have been reused) | closed |
//!
//! Any command may be answered `error <msg>` (one line), after which the connection is closed;
//! the shim goes on serving others.
//!
//! **Streams.** After `ok`, output the shim reads from the process goes to the client: raw
//! bytes with a terminal; without one, Docker's multiplexed frames (an 8-byte header: the
//! stream, 1 stdout or 2 stderr, three zero bytes, the payload's length as a big-endian u32;
//! then the payload), ready to be copied to an HTTP client. Bytes the client sends go to the
//! process's stdin, if it asked for stdin (for exec: if the exec was made with `stdin`) and
//! stdin is open. When the client shuts down its write half, the container's stdin is closed
//! if the container was made with `stdin_once` (an exec's always).
//!
//! **Slow clients.** Output a client has not taken yet is queued for it. While a client that
//! is taking its output has more than [`CLIENT_BUFFER`] queued, the shim stops reading the
//! process's output (the process blocks on a full pipe, as it would writing to a slow
//! terminal), so a client that reads gets everything. A client with more than
//! [`CLIENT_BUFFER`] queued that has taken nothing for [`CLIENT_STALL`] is disconnected (its
//! stream just ends, perhaps in the middle of a frame) and the output flows again: a client
//! that does not read holds the process up for [`CLIENT_STALL`] at most, once. When the
//! process has exited and its output is drained, the shim closes the stream (for an exec,
//! after writing `exec-<id>.exit`).
//!
//! **Wait.** The `exit` line comes once the exit is recorded in `exit_file` and the runtime's
//! state of the container is deleted (the id can be used again). At that moment the shim also
//! stops listening and removes `shim.sock` and `shim.pid` (a restart may launch the next shim
//! into the same state directory at once); it then closes its streams and exits. So: no socket
//! (or a refused connection) means the shim is gone, and `exit_file`, if it exists, says how the
//! container ended; EOF on a `wait` connection without the exit line means the shim died
//! without recording the exit, and the container's processes are no longer supervised.

use std::fmt;

use crate::config::valid_exec_id;

/// The longest command line the shim reads (the newline included).
pub const MAX_LINE: usize = 512;

/// Output queued for a client beyond which the process's output waits for it (see the
/// module's documentation).
pub const CLIENT_BUFFER: usize = 1 << 20;

/// A client with more than [`CLIENT_BUFFER`] queued that has taken nothing for this long is
/// disconnected.
pub const CLIENT_STALL: std::time::Duration = std::time::Duration::from_millis(500);

/// Docker's stream numbers in a multiplexed frame.
pub const STREAM_STDOUT: u8 = 1;
/// Docker's stream number of stderr.
pub const STREAM_STDERR: u8 = 2;

/// A command, the first line of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Is the shim alive.
    Ping,
    /// The container's pid.
    Pid,
    /// Start the created container.
    Start,
    /// Attach to the container's stdio.
    Attach {
        /// Send the client's bytes to the container's stdin.
        stdin: bool,
        /// Receive stdout.
        stdout: bool,
        /// Receive stderr.
        stderr: bool,
    },
    /// Set the terminal's size.
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
    /// Learn of the exit.
    Wait,
    /// Start the process `STATE_DIR/exec-<id>.json` describes.
    Exec {
        /// The exec id.
        id: String,
    },
    /// Send a signal to the container's init.
    Kill {
        /// The signal number.
        signal: i32,
    },
    /// Set an exec's terminal size.
    ResizeExec {
        /// The exec id.
        id: String,
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

fn flag(s: &str) -> Result<bool, String> {
    match s {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err(format!("expected 0 or 1, got {s:?}")),
    }
}

fn dim(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .map_err(|_| format!("invalid terminal size {s:?}"))
}

fn exec_id(s: &str) -> Result<String, String> {
    if valid_exec_id(s) {
        Ok(s.to_string())
    } else {
        Err(format!("invalid exec id {s:?}"))
    }
}

impl Request {
    /// Parse a command line (without its newline). The message of an error is sent back as
    /// `error <msg>`.
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut w = line.split(' ');
        let cmd = w.next().unwrap_or_default();
        let args: Vec<&str> = w.collect();
        let want = |n: usize| -> Result<(), String> {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("{cmd} takes {n} arguments"))
            }
        };
        Ok(match cmd {
            "ping" => {
                want(0)?;
                Request::Ping
            }
            "pid" => {
                want(0)?;
                Request::Pid
            }
            "start" => {
                want(0)?;
                Request::Start
            }
            "wait" => {
                want(0)?;
                Request::Wait
            }
            "attach" => {
                want(3)?;
                Request::Attach {
                    stdin: flag(args[0])?,
                    stdout: flag(args[1])?,
                    stderr: flag(args[2])?,
                }
            }
            "resize" => {
                want(2)?;
                Request::Resize {
                    rows: dim(args[0])?,
                    cols: dim(args[1])?,
                }
            }
            "exec" => {
                want(1)?;
                Request::Exec {
                    id: exec_id(args[0])?,
                }
            }
            "kill" => {
                want(1)?;
                Request::Kill {
                    signal: args[0]
                        .parse()
                        .ok()
                        .filter(|s| (1..=64).contains(s))
                        .ok_or_else(|| format!("invalid signal {:?}", args[0]))?,
                }
            }
            "resize-exec" => {
                want(3)?;
                Request::ResizeExec {
                    id: exec_id(args[0])?,
                    rows: dim(args[1])?,
                    cols: dim(args[2])?,
                }
            }
            _ => {
                let shown: String = cmd.chars().take(32).collect();
                return Err(format!("unknown command {shown:?}"));
            }
        })
    }
}

impl fmt::Display for Request {
    /// The command line, without its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = |v: bool| u8::from(v);
        match self {
            Request::Ping => f.write_str("ping"),
            Request::Pid => f.write_str("pid"),
            Request::Start => f.write_str("start"),
            Request::Wait => f.write_str("wait"),
            Request::Attach {
                stdin,
                stdout,
                stderr,
            } => write!(f, "attach {} {} {}", b(*stdin), b(*stdout), b(*stderr)),
            Request::Resize { rows, cols } => write!(f, "resize {rows} {cols}"),
            Request::Exec { id } => write!(f, "exec {id}"),
            Request::Kill { signal } => write!(f, "kill {signal}"),
            Request::ResizeExec { id, rows, cols } => {
                write!(f, "resize-exec {id} {rows} {cols}")
            }
        }
    }
}

/// How the container ended, as the `wait` line tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit status, or 128 + signal.
    pub code: i32,
    /// When the shim reaped the init, nanoseconds since the Unix epoch.
    pub finished_at_nanos: u64,
    /// The cgroup's OOM killer fired while the container ran.
    pub oom_killed: bool,
}

impl ExitStatus {
    /// The `wait` answer, without its newline.
    pub fn to_line(&self) -> String {
        format!(
            "exit {} {} {}",
            self.code,
            self.finished_at_nanos,
            u8::from(self.oom_killed)
        )
    }

    /// Parse the `wait` answer.
    pub fn parse(line: &str) -> Option<ExitStatus> {
        let mut w = line.split(' ');
        if w.next()? != "exit" {
            return None;
        }
        let code = w.next()?.parse().ok()?;
        let finished_at_nanos = w.next()?.parse().ok()?;
        let oom_killed = flag(w.next()?).ok()?;
        if w.next().is_some() {
            return None;
        }
        Some(ExitStatus {
            code,
            finished_at_nanos,
            oom_killed,
        })
    }
}

impl From<crate::config::ExitRecord> for ExitStatus {
    fn from(r: crate::config::ExitRecord) -> Self {
        ExitStatus {
            code: r.exit_code,
            finished_at_nanos: r.finished_at_nanos,
            oom_killed: r.oom_killed,
        }
    }
}

/// The header of a multiplexed frame of `len` bytes on `stream`.
pub fn frame_header(stream: u8, len: u32) -> [u8; 8] {
    let l = len.to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// Read one multiplexed frame: `Ok(None)` at a clean end of stream.
pub fn read_frame(r: &mut impl std::io::Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; 8];
    let mut got = 0;
    while got < 8 {
        match r.read(&mut h[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "a frame header cut short",
                ));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((h[0], data)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for r in [
            Request::Ping,
            Request::Pid,
            Request::Start,
            Request::Wait,
            Request::Attach {
                stdin: true,
                stdout: false,
                stderr: true,
            },
            Request::Resize { rows: 24, cols: 80 },
            Request::Exec { id: "e1".into() },
            Request::Kill { signal: 9 },
            Request::ResizeExec {
                id: "e-2".into(),
                rows: 1,
                cols: 65535,
            },
        ] {
            assert_eq!(Request::parse(&r.to_string()), Ok(r));
        }
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "pingx",
            "ping 1",
            "attach 1 1",
            "attach 1 1 2",
            "resize 24",
            "resize -1 80",
            "resize 70000 80",
            "exec ../x",
            "exec",
            "resize-exec a 1",
            "Start",
            "kill 0",
            "kill 65",
            "kill TERM",
            "start ",
        ] {
            assert!(Request::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn exit_line() {
        let e = ExitStatus {
            code: 137,
            finished_at_nanos: 17,
            oom_killed: true,
        };
        assert_eq!(ExitStatus::parse(&e.to_line()), Some(e));
        assert_eq!(ExitStatus::parse("exit 1 2"), None);
        assert_eq!(ExitStatus::parse("ok"), None);
    }

    #[test]
    fn frames() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&frame_header(STREAM_STDERR, 3));
        buf.extend_from_slice(b"abc");
        buf.extend_from_slice(&frame_header(STREAM_STDOUT, 0x0102_0304 & 0xff));
        buf.extend_from_slice(&[7u8; 4]);
        assert_eq!(&buf[..8], &[2, 0, 0, 0, 0, 0, 0, 3]);
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some((2, b"abc".to_vec())));
        assert_eq!(read_frame(&mut r).unwrap(), Some((1, vec![7u8; 4])));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let mut cut = &buf[..5];
        assert!(read_frame(&mut cut).is_err());
    }
}
