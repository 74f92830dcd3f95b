//! Talking to a container's shim (`berth-shim`, one per running container, not the daemon's
//! child): launching it from a blocking thread, and its control socket (one text line per
//! command; `attach` and `exec` connections become streams).

use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::{Error, Result};

pub use berth_shim::{ExecConfig, LogSettings as ShimLog, ShimConfig};

/// How a container ended, as the shim records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Exit status, or 128 + signal.
    pub exit_code: i64,
    /// When, nanoseconds since the epoch.
    pub finished_at_nanos: i64,
    /// Killed for lack of memory.
    pub oom_killed: bool,
}

impl Exit {
    /// Parse the `wait` answer, `exit <code> <nanos> <oom>` (the shim protocol's parser).
    pub fn parse_line(line: &str) -> Option<Exit> {
        let e = berth_shim::ExitStatus::parse(line.trim_end())?;
        Some(Exit {
            exit_code: e.code as i64,
            finished_at_nanos: e.finished_at_nanos as i64,
            oom_killed: e.oom_killed,
        })
    }

    /// Read the exit record the shim wrote, if there is one.
    pub fn read(path: &Path) -> Option<Exit> {
        let r = berth_shim::ExitRecord::load(path).ok()??;
        Some(Exit {
            exit_code: r.exit_code as i64,
            finished_at_nanos: r.finished_at_nanos as i64,
            oom_killed: r.oom_killed,
        })
    }
}

/// Launch the shim for the container whose state directory is `state_dir` (`shim.json`
/// written): returns the container's pid once it is created. Blocking: call it from a
/// blocking thread.
pub fn launch(shim_bin: &Path, state_dir: &Path) -> Result<i64> {
    berth_shim::launch(shim_bin, state_dir)
        .map(|p| p as i64)
        .map_err(|e| Error::Internal(e.to_string()))
}

/// The control socket of the shim in `state_dir`.
pub fn socket(state_dir: &Path) -> PathBuf {
    state_dir.join("shim.sock")
}

/// Connect to the shim's socket; a path too long for a socket address (a long exec root) is
/// reached through the directory's file descriptor.
pub async fn connect(state_dir: &Path) -> Result<UnixStream> {
    let err = |e| Error::internal("connecting to the container's shim", e);
    let path = socket(state_dir);
    if path.as_os_str().len() < 100 {
        return UnixStream::connect(&path).await.map_err(err);
    }
    let dir = std::fs::File::open(state_dir).map_err(err)?;
    let via = format!(
        "/proc/self/fd/{}/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dir),
        berth_shim::config::SOCKET_FILE
    );
    let s = UnixStream::connect(via).await.map_err(err);
    drop(dir);
    s
}

/// Connect and send `cmd`; returns the answer's rest after `ok` and the connection, which
/// becomes a stream for `attach` and `exec`.
pub async fn command(state_dir: &Path, cmd: &str) -> Result<(String, UnixStream)> {
    let mut s = connect(state_dir).await?;
    s.write_all(format!("{cmd}\n").as_bytes())
        .await
        .map_err(|e| Error::internal("talking to the container's shim", e))?;
    // Read the answer one byte at a time: what follows it belongs to the stream.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        use tokio::io::AsyncReadExt;
        let n = s
            .read(&mut b)
            .await
            .map_err(|e| Error::internal("talking to the container's shim", e))?;
        if n == 0 {
            return Err(Error::Internal(
                "the container's shim closed the connection".into(),
            ));
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
        if line.len() > 64 * 1024 {
            return Err(Error::Internal(
                "the container's shim answered nonsense".into(),
            ));
        }
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    if cmd == "pid" {
        return Ok((line, s));
    }
    if let Some(rest) = line.strip_prefix("ok") {
        Ok((rest.trim().to_string(), s))
    } else if let Some(msg) = line.strip_prefix("error ") {
        Err(Error::Internal(msg.to_string()))
    } else {
        Err(Error::Internal(format!(
            "the container's shim answered {line:?}"
        )))
    }
}

/// Send a command whose answer is all there is.
pub async fn call(state_dir: &Path, cmd: &str) -> Result<String> {
    command(state_dir, cmd).await.map(|(rest, _)| rest)
}

/// Wait for the container to exit: `Some(exit)`, or `None` if the shim went away without
/// saying (it died).
pub async fn wait(state_dir: &Path) -> Result<Option<Exit>> {
    let mut s = connect(state_dir).await?;
    s.write_all(b"wait\n")
        .await
        .map_err(|e| Error::internal("talking to the container's shim", e))?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    match r.read_line(&mut line).await {
        Ok(0) | Err(_) => Ok(None),
        Ok(_) => Ok(Exit::parse_line(&line)),
    }
}
