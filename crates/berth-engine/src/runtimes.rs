//! The runtime operations the engine makes on a running container (state, kill, pause,
//! resume, update, stats) for the runtime the container was created with: berth's own
//! (the runtime library, in this process) or another OCI runtime (`runtimes` in daemon.json,
//! `--add-runtime`), driven through runc's command line as dockerd drives it, with the same
//! root its shim gave it. Blocking: call from blocking threads only (the CLI ones fork).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_runtime::{OciState, Runtime, Status};
use oci_spec::runtime::LinuxResources;

/// A container's runtime.
pub(crate) enum Rt {
    /// berth's runtime library.
    Own(Runtime),
    /// Another runtime's binary and the root its state is under.
    Cli { bin: PathBuf, root: PathBuf },
}

impl Rt {
    /// The runtime of a container run with `bin` (`None`: berth's own) under `root`.
    pub(crate) fn new(bin: Option<PathBuf>, root: &Path) -> Rt {
        match bin {
            None => Rt::Own(Runtime::new(root)),
            Some(bin) => Rt::Cli {
                bin,
                root: root.to_path_buf(),
            },
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, String> {
        let Rt::Cli { bin, root } = self else {
            unreachable!("only a runtime binary is run")
        };
        let mut cmd = Command::new(bin);
        cmd.arg("--root")
            .arg(root)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        if let (Some(data), Some(mut w)) = (stdin, child.stdin.take()) {
            let _ = w.write_all(data);
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let line = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(format!(
                "{} {}: {}",
                bin.display(),
                args.first().copied().unwrap_or_default(),
                line.trim()
            ));
        }
        Ok(out.stdout)
    }

    /// The container's OCI state.
    pub(crate) fn state(&self, id: &str) -> Result<OciState, String> {
        match self {
            Rt::Own(rt) => rt.state(id).map_err(|e| e.to_string()),
            Rt::Cli { .. } => {
                let out = self.run(&["state", id], None)?;
                serde_json::from_slice(&out).map_err(|e| format!("reading the state: {e}"))
            }
        }
    }

    /// Whether the container runs (or is paused) with init `pid`.
    pub(crate) fn runs(&self, id: &str, pid: i32) -> bool {
        self.state(id)
            .is_ok_and(|s| s.pid == pid && matches!(s.status, Status::Running | Status::Paused))
    }

    /// Send `signal` to the init (every process with `all`).
    pub(crate) fn kill(&self, id: &str, signal: i32, all: bool) -> Result<(), String> {
        match self {
            Rt::Own(rt) => rt.kill(id, signal, all).map_err(|e| e.to_string()),
            Rt::Cli { .. } => {
                let sig = signal.to_string();
                let mut args = vec!["kill"];
                if all {
                    args.push("--all");
                }
                args.extend([id, sig.as_str()]);
                self.run(&args, None).map(drop)
            }
        }
    }

    /// The container's processes (host pids).
    pub(crate) fn pids(&self, id: &str) -> Result<Vec<i32>, String> {
        match self {
            Rt::Own(rt) => rt.pids(id).map_err(|e| e.to_string()),
            Rt::Cli { .. } => {
                let out = self.run(&["ps", "--format", "json", id], None)?;
                serde_json::from_slice(&out).map_err(|e| format!("reading the processes: {e}"))
            }
        }
    }

    /// Remove the container's runtime state (`force`: even if it still runs).
    pub(crate) fn delete(&self, id: &str, force: bool) -> Result<(), String> {
        match self {
            Rt::Own(rt) => rt.delete(id, force).map_err(|e| e.to_string()),
            Rt::Cli { .. } => {
                let args: &[&str] = if force {
                    &["delete", "--force", id]
                } else {
                    &["delete", id]
                };
                self.run(args, None).map(drop)
            }
        }
    }

    /// Freeze the container.
    pub(crate) fn pause(&self, id: &str) -> Result<(), String> {
        match self {
            Rt::Own(rt) => rt.pause(id).map_err(|e| e.to_string()),
            Rt::Cli { .. } => self.run(&["pause", id], None).map(drop),
        }
    }

    /// Thaw the container.
    pub(crate) fn resume(&self, id: &str) -> Result<(), String> {
        match self {
            Rt::Own(rt) => rt.resume(id).map_err(|e| e.to_string()),
            Rt::Cli { .. } => self.run(&["resume", id], None).map(drop),
        }
    }

    /// Change the resources of the running container.
    pub(crate) fn update(&self, id: &str, r: &LinuxResources) -> Result<(), String> {
        match self {
            Rt::Own(rt) => rt.update(id, r).map_err(|e| e.to_string()),
            Rt::Cli { .. } => {
                let json = serde_json::to_vec(r).map_err(|e| e.to_string())?;
                self.run(&["update", "--resources", "-", id], Some(&json))
                    .map(drop)
            }
        }
    }

    /// The container's statistics (runc's `events --stats` shape).
    pub(crate) fn stats(&self, id: &str) -> Result<berth_cgroups::Stats, String> {
        match self {
            Rt::Own(rt) => rt.stats(id).map_err(|e| e.to_string()),
            Rt::Cli { .. } => {
                let out = self.run(&["events", "--stats", id], None)?;
                #[derive(serde::Deserialize)]
                struct Event {
                    data: berth_cgroups::Stats,
                }
                serde_json::from_slice::<Event>(&out)
                    .map(|e| e.data)
                    .map_err(|e| format!("reading the statistics: {e}"))
            }
        }
    }
}
