//! Fixtures of the shim's suites: a container under a real `berth-shim`, each with its own
//! state directory, data directory, bundle, runtime root and cgroup.

#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use berth_shim::protocol::read_frame;
use berth_shim::{ExitRecord, LogSettings, ShimClient, ShimConfig};
use berth_testkit::{Bundle, RuntimeRoot, unique};

pub fn shim_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth-shim"))
}

/// Skip (return true) unless root.
pub fn skip() -> bool {
    if !berth_testkit::is_root() {
        eprintln!("skipped: needs root");
        return true;
    }
    false
}

pub struct Ctr {
    pub id: String,
    pub bundle: Bundle,
    pub root: RuntimeRoot,
    pub state: tempfile::TempDir,
    pub data: tempfile::TempDir,
    pub cfg: ShimConfig,
}

impl Ctr {
    /// A container running `args`, not launched yet.
    pub fn new(name: &str, args: &[&str]) -> Ctr {
        let id = unique(name);
        let bundle = Bundle::new(&id, args);
        let root = RuntimeRoot::new();
        let state = tempfile::Builder::new()
            .prefix("berth-shim-state-")
            .tempdir()
            .expect("tempdir");
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let data = tempfile::Builder::new()
            .prefix("berth-shim-data-")
            .tempdir()
            .expect("tempdir");
        let cfg = ShimConfig {
            id: id.clone(),
            bundle: bundle.dir.clone(),
            runtime_root: root.path.clone(),
            tty: false,
            stdin: false,
            stdin_once: false,
            log: None,
            exit_file: data.path().join("exit.json"),
            runtime: None,
        };
        Ctr {
            id,
            bundle,
            root,
            state,
            data,
            cfg,
        }
    }

    pub fn with_log(mut self) -> Ctr {
        self.cfg.log = Some(LogSettings {
            path: self.data.path().join("container.log"),
            max_size: 0,
            max_files: 1,
        });
        self
    }

    pub fn with_tty(mut self) -> Ctr {
        self.cfg.tty = true;
        self.bundle.config["process"]["terminal"] = serde_json::json!(true);
        self.bundle.write();
        self
    }

    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    pub fn client(&self) -> ShimClient {
        ShimClient::new(self.state.path()).with_timeout(Some(Duration::from_secs(30)))
    }

    /// Write shim.json and launch; returns the container's pid.
    pub fn launch(&self) -> i32 {
        self.cfg
            .write(self.state.path())
            .expect("writing shim.json");
        berth_shim::launch(&shim_bin(), self.state.path()).expect("launching the shim")
    }

    pub fn shim_pid(&self) -> i32 {
        std::fs::read_to_string(self.state.path().join("shim.pid"))
            .expect("shim.pid")
            .trim()
            .parse()
            .expect("pid")
    }

    pub fn exit_record(&self) -> Option<ExitRecord> {
        ExitRecord::load(&self.cfg.exit_file).expect("exit record")
    }

    /// Wait for the shim to be gone, then check that nothing is left: the runtime's state,
    /// the cgroup, mounts, processes, the shim's socket and pid file.
    pub fn assert_clean(&self, shim_pid: i32) {
        wait_gone(shim_pid);
        assert!(
            !self.state.path().join("shim.sock").exists(),
            "shim.sock left"
        );
        assert!(
            !self.state.path().join("shim.pid").exists(),
            "shim.pid left"
        );
        berth_testkit::assert_no_leaks(&self.root.path, &self.id, &self.bundle);
    }
}

/// Wait (10 s at most) until process `pid` is gone.
pub fn wait_gone(pid: i32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "process {pid} is still there");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                != Some("Z")
        }
        Err(_) => false,
    }
}

/// Read multiplexed frames until the end of the stream: (stdout, stderr).
pub fn read_frames(s: &mut UnixStream) -> (Vec<u8>, Vec<u8>) {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some((stream, data)) = read_frame(s).expect("reading frames") {
        match stream {
            1 => out.extend_from_slice(&data),
            2 => err.extend_from_slice(&data),
            other => panic!("frame of stream {other}"),
        }
    }
    (out, err)
}

/// Read raw bytes until the end of the stream.
pub fn read_all(s: &mut UnixStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut v = Vec::new();
    s.read_to_end(&mut v).expect("reading the stream");
    v
}

/// Wait until `f` holds (10 s at most).
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
