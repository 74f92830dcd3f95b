//! A daemon (dockerd, containerd) started for one test, isolated from the host and from other
//! tests: a network namespace and a mount namespace of its own (`unshare --net --mount
//! --propagation private`), a tmpfs on /run (so /run/docker, /run/containerd and the runc
//! state of its shims are its own), and directories of the test bound over fixed paths such as
//! /etc/docker. Its socket lives in the test's directory, reachable from the test (a unix socket
//! on a file system is not tied to a network namespace).
//!
//! Stopping it (or dropping it) sends SIGTERM and waits, then kills every process still in its
//! mount namespace: the daemon's children (containerd, shims) share it, and nothing else does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A daemon in namespaces of its own.
pub struct Isolated {
    child: Option<Child>,
    pid: i32,
    mnt_ns: Option<PathBuf>,
    log: PathBuf,
}

/// The mount namespace of a process (`mnt:[4026531841]`), if it still exists.
fn mnt_ns(pid: i32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// Every process whose mount namespace is `ns`.
pub fn processes_in_mnt_ns(ns: &Path) -> Vec<i32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| mnt_ns(pid).as_deref() == Some(ns))
        .collect()
}

impl Isolated {
    /// Start `argv` inside new network and mount namespaces, after bringing up loopback,
    /// mounting a tmpfs on /run and bind-mounting each `(source, target)` of `binds` (targets
    /// are created when missing). Output goes to `log`.
    pub fn start(argv: &[&str], binds: &[(&Path, &Path)], log: &Path) -> Isolated {
        let mut script = String::from(
            "set -e\nip link set lo up\nmount -t tmpfs -o mode=0755 berth-test-run /run\n",
        );
        for (i, _) in binds.iter().enumerate() {
            // Positional parameters carry the paths; the script never interpolates them.
            script.push_str(&format!(
                "src=$1; dst=$2; shift 2; mkdir -p \"$dst\"; mount --bind \"$src\" \"$dst\" # {i}\n"
            ));
        }
        script.push_str("exec \"$@\"\n");
        let out = std::fs::File::create(log).expect("creating the daemon's log");
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", &script, "sh"]);
        for (src, dst) in binds {
            cmd.arg(src).arg(dst);
        }
        let child = cmd
            .args(argv)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("starting unshare");
        let pid = child.id() as i32;
        // unshare and sh exec in place: the pid is the daemon's. Its namespace, once it has one
        // of its own (before that it is the test's, which must never be swept).
        let ours = mnt_ns(std::process::id() as i32);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ns = None;
        while Instant::now() < deadline {
            match mnt_ns(pid) {
                Some(n) if Some(&n) != ours.as_ref() => {
                    ns = Some(n);
                    break;
                }
                None => break,
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        Isolated {
            child: Some(child),
            pid,
            mnt_ns: ns,
            log: log.to_path_buf(),
        }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Its mount namespace.
    pub fn mnt_ns(&self) -> Option<&Path> {
        self.mnt_ns.as_deref()
    }

    /// What it has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGTERM, then wait up to `grace` for it to exit (SIGKILL after that). Returns whether it
    /// exited on its own. The processes it leaves in its namespace are not touched: see
    /// [`Isolated::leftovers`].
    pub fn stop(&mut self, grace: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        crate::signal(self.pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// The processes still in the daemon's mount namespace (its children, once it is gone).
    pub fn leftovers(&self) -> Vec<i32> {
        self.mnt_ns
            .as_deref()
            .map(processes_in_mnt_ns)
            .unwrap_or_default()
    }

    /// Kill every process left in the daemon's mount namespace; wait until they are gone.
    pub fn kill_leftovers(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.leftovers();
            if left.is_empty() || Instant::now() > deadline {
                return;
            }
            for pid in left {
                crate::signal(pid, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(20));
        self.kill_leftovers();
    }
}
