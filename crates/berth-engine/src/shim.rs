//! Talking to a container's shim (`berth-shim`, one per running container, not the daemon's
//! child): launching it from a blocking thread, and its control socket (one text line per
//! command; `attach` and `exec` connections become streams).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use crate::{Error, Result};

/// The log settings of a shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimLog {
    /// The json-file log.
    pub path: PathBuf,
    /// Rotate above this size (0: never).
    pub max_size: u64,
    /// Keep this many files.
    pub max_files: u32,
}

/// `shim.json` in the container's state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The container's ID.
    pub id: String,
    /// The bundle (config.json).
    pub bundle: PathBuf,
    /// The runtime's state root.
    pub runtime_root: PathBuf,
    /// Allocate a terminal.
    pub tty: bool,
    /// Keep stdin open.
    pub stdin: bool,
    /// Close stdin when the attached client that has it leaves.
    pub stdin_once: bool,
    /// The log, if the driver is json-file.
    pub log: Option<ShimLog>,
    /// Where the exit status is recorded durably.
    pub exit_file: PathBuf,
    /// Another OCI runtime's binary to use instead of the runtime library.
    pub runtime: Option<PathBuf>,
}

/// How a container ended, as the shim records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exit {
    /// Exit status, or 128 + signal.
    pub exit_code: i64,
    /// When, nanoseconds since the epoch.
    pub finished_at_nanos: i64,
    /// Killed for lack of memory.
    pub oom_killed: bool,
}

impl Exit {
    /// Parse `exit <code> <nanos> <oom>`.
    pub fn parse_line(line: &str) -> Option<Exit> {
        let mut f = line.split_whitespace();
        if f.next()? != "exit" {
            return None;
        }
        Some(Exit {
            exit_code: f.next()?.parse().ok()?,
            finished_at_nanos: f.next()?.parse().ok()?,
            oom_killed: f.next().map(|o| o == "1").unwrap_or(false),
        })
    }

    /// Read an exit file (JSON), if there is one.
    pub fn read(path: &Path) -> Option<Exit> {
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// Launch the shim for the container whose state directory is `state_dir` (`shim.json`
/// written): returns the container's pid once it is created. Blocking: call it from a
/// blocking thread (it forks).
pub fn launch(shim_bin: &Path, state_dir: &Path) -> Result<i64> {
    let out = Command::new(shim_bin)
        .arg(state_dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .output()
        .map_err(|e| Error::internal(format!("running {}", shim_bin.display()), e))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or_default();
    if let Some(pid) = line.strip_prefix("created ") {
        return pid
            .trim()
            .parse()
            .map_err(|_| Error::internal("shim", format!("bad answer {line:?}")));
    }
    let msg = line
        .strip_prefix("error ")
        .map(str::to_string)
        .unwrap_or_else(|| {
            let err = String::from_utf8_lossy(&out.stderr);
            format!(
                "the shim failed ({}): {}",
                out.status,
                err.lines().last().unwrap_or("no message")
            )
        });
    Err(Error::Internal(msg))
}

/// The control socket of the shim in `state_dir`.
pub fn socket(state_dir: &Path) -> PathBuf {
    state_dir.join("shim.sock")
}

/// Connect and send `cmd`; returns the answer's rest after `ok` and the connection, which
/// becomes a stream for `attach` and `exec`.
pub async fn command(state_dir: &Path, cmd: &str) -> Result<(String, UnixStream)> {
    let mut s = UnixStream::connect(socket(state_dir))
        .await
        .map_err(|e| Error::internal("connecting to the container's shim", e))?;
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
    let mut s = UnixStream::connect(socket(state_dir))
        .await
        .map_err(|e| Error::internal("connecting to the container's shim", e))?;
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
