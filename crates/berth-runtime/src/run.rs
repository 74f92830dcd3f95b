//! `run`: create, start, wait in the foreground, delete.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;

use crate::container::Container;
use crate::create::{self, ConsoleSocket, CreateOptions};
use crate::error::{Context, Error, Result};
use crate::{console, foreground, spec};

/// Options of `run` beyond those of create.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Return after start instead of waiting.
    pub detach: bool,
    /// Keep the container's state after it exits (no delete).
    pub keep: bool,
}

/// Run a container. In the foreground, returns the process's exit code.
pub fn run(
    root: &Path,
    id: &str,
    systemd_cgroup: bool,
    mut opts: CreateOptions,
    run: RunOptions,
) -> Result<i32> {
    spec::validate_id(id)?;
    // A terminal without a console socket: relay it ourselves.
    let mut own_console = None;
    if opts.console_socket.is_none() {
        let bundle_cfg = opts.bundle.join("config.json");
        let terminal = std::fs::read(&bundle_cfg)
            .ok()
            .and_then(|d| spec::parse_spec(&d).ok())
            .and_then(|s| s.process().as_ref().and_then(|p| p.terminal()))
            == Some(true);
        if terminal {
            if run.detach {
                return Err(Error::InvalidArgument(
                    "a detached container with a terminal needs --console-socket".into(),
                ));
            }
            let (ours, theirs) =
                std::os::unix::net::UnixStream::pair().ctx(|| "socketpair".into())?;
            opts.console_socket = Some(ConsoleSocket::Fd(Arc::new(OwnedFd::from(theirs))));
            own_console = Some(ours);
        }
    }
    if !run.detach {
        foreground::become_subreaper()?;
    }
    let pid = create::create(root, id, systemd_cgroup, &opts)?;
    // Close our copy of the container's end, so a dead init reads as end-of-file below.
    opts.console_socket = None;
    let master = match own_console {
        Some(ours) => match console::recv_master(ours.as_raw_fd()) {
            Ok(m) => Some(m),
            Err(e) => {
                let _ = Container::load(root, id).and_then(|c| c.delete(true));
                return Err(e);
            }
        },
        None => None,
    };
    if let Err(e) = create::start(root, id) {
        let _ = Container::load(root, id).and_then(|c| c.delete(true));
        return Err(e);
    }
    if run.detach {
        return Ok(0);
    }
    let code = foreground::wait(pid, master);
    if !run.keep {
        Container::load(root, id)?.delete(true)?;
    }
    code
}
