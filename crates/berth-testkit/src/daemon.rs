//! A `berth daemon` for one test: its own data root, exec root and socket in a temporary
//! directory, containers' cgroups beneath a cgroup parent of the test's, and a mount and a
//! network namespace of its own held by an anchor process, so that a daemon killed and
//! started again (the same namespaces) finds its mounts, shims, bridges and rules, tests
//! with networks run in parallel without seeing each other (each daemon has its own
//! `berth0`, its own nftables table, its own 127.0.0.1), and everything the test made dies
//! with the namespaces at the end. A test reaches the daemon's network with
//! [`TestDaemon::net_cmd`] (a command run in it) and [`TestDaemon::in_net`] (a closure on a
//! thread in it); [`TestDaemon::registry`] starts a test registry there.
//!
//! Dropping it stops the daemon, kills every process left in its mount namespace (shims) and
//! beneath its cgroup parent (containers), and removes the directory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::CgroupParent;
use crate::isolated::processes_in_mnt_ns;

/// A test daemon.
pub struct TestDaemon {
    /// The cgroup parent of its containers (dropped first, after `drop` ended the shims:
    /// it kills the containers' processes, then the directory can go).
    pub cgroup: CgroupParent,
    /// The test's directory (data root `data/`, exec root `run/`, socket `berth.sock`).
    pub dir: tempfile::TempDir,
    anchor: Child,
    daemon: Option<Child>,
    ns: PathBuf,
    bin: PathBuf,
    extra: Vec<String>,
}

fn mnt_ns(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok()
}

/// The berth binary of this build (target/<profile>/berth).
pub fn berth_binary() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join("berth")
}

impl TestDaemon {
    /// Start a daemon named `name` (unique per test), with `config` as daemon.json (a JSON
    /// object; data-root, exec-root and cgroup-parent are set here).
    pub fn start(name: &str, config: serde_json::Value) -> TestDaemon {
        Self::start_with(name, config, &[])
    }

    /// As [`TestDaemon::start`], with more arguments for `berth daemon` (e.g. another `-H`).
    pub fn start_with(name: &str, config: serde_json::Value, extra: &[&str]) -> TestDaemon {
        Self::start_bin(name, config, extra, berth_binary())
    }

    /// As [`TestDaemon::start_with`], running the `berth` binary `bin` (e.g. the static
    /// release build, as installed).
    pub fn start_bin(
        name: &str,
        config: serde_json::Value,
        extra: &[&str],
        bin: PathBuf,
    ) -> TestDaemon {
        // Short: a shim's socket is `<dir>/run/containers/<64 hex>/shim.sock`, and a unix
        // socket's path has at most 107 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bd-")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let _ = std::fs::write(dir.path().join("test-name"), name);
        let cgroup = CgroupParent::new(&format!("daemon-{name}"));
        let anchor = Command::new("unshare")
            .args([
                "--mount",
                "--net",
                "--propagation",
                "private",
                "--",
                "sleep",
                "infinity",
            ])
            .stdin(Stdio::null())
            .spawn()
            .expect("starting the namespace anchor");
        let ours = mnt_ns(std::process::id());
        let deadline = Instant::now() + Duration::from_secs(10);
        let ns = loop {
            match mnt_ns(anchor.id()) {
                Some(n) if Some(&n) != ours.as_ref() => break n,
                _ if Instant::now() > deadline => panic!("the anchor has no mount namespace"),
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        let mut cfg = config;
        let obj = cfg.as_object_mut().expect("daemon.json is an object");
        obj.insert(
            "data-root".into(),
            dir.path().join("data").to_string_lossy().into(),
        );
        obj.insert(
            "exec-root".into(),
            dir.path().join("run").to_string_lossy().into(),
        );
        obj.insert("cgroup-parent".into(), cgroup.path.clone().into());
        // BERTH_TEST_BRIDGE=none: no default bridge (the qemu suites, whose kernel has no
        // bridge or nf_tables modules).
        if std::env::var("BERTH_TEST_BRIDGE").as_deref() == Ok("none")
            && !obj.contains_key("bridge")
        {
            obj.insert("bridge".into(), "none".into());
        }
        std::fs::write(
            dir.path().join("daemon.json"),
            serde_json::to_vec_pretty(&cfg).unwrap(),
        )
        .expect("writing daemon.json");
        let mut d = TestDaemon {
            dir,
            anchor,
            daemon: None,
            ns,
            cgroup,
            bin,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        let up = d.net_cmd("ip").args(["link", "set", "lo", "up"]).status();
        assert!(
            up.is_ok_and(|s| s.success()),
            "bringing lo up in the daemon's network namespace (iproute2)"
        );
        d.launch();
        d
    }

    /// The daemon's network namespace (`/proc/<anchor>/ns/net`).
    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.anchor.id()))
    }

    /// The daemon's mount namespace (`/proc/<anchor>/ns/mnt`).
    pub fn mntns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/mnt", self.anchor.id()))
    }

    /// `prog` to run in the daemon's network namespace (the host its containers see).
    pub fn net_cmd(&self, prog: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.netns().display()))
            .arg("--")
            .arg(prog);
        c
    }

    /// Run `f` on a thread inside the daemon's network namespace (sockets it makes stay
    /// there).
    pub fn in_net<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        crate::in_netns(&self.netns(), f)
    }

    /// A test registry inside the daemon's network namespace (127.0.0.1 there).
    pub fn registry(&self) -> crate::images::Registry {
        crate::images::Registry::start_in(Some(self.netns()))
    }

    /// The API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    /// `DOCKER_HOST` for it.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// The data root.
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Start the daemon (again) in the namespace and wait until it answers.
    pub fn launch(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log");
        let child = Command::new("nsenter")
            .arg("-t")
            .arg(self.anchor.id().to_string())
            .arg("-m")
            .arg("-n")
            .arg("--")
            .arg(&self.bin)
            .arg("daemon")
            .arg("--config-file")
            .arg(self.dir.path().join("daemon.json"))
            .arg("-H")
            .arg(self.host())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("starting berth daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.daemon.as_mut() {
                if let Ok(Some(st)) = c.try_wait() {
                    panic!("berth daemon exited ({st}):\n{}", self.log());
                }
            }
            if std::os::unix::net::UnixStream::connect(self.socket()).is_ok() {
                let out = self.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
                if out.status.success() {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!("berth daemon did not answer:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the daemon, replace daemon.json's other keys with `config` (the data and exec
    /// roots and the cgroup parent stay), and start it again.
    pub fn reconfigure(&mut self, config: serde_json::Value) {
        self.stop();
        let path = self.dir.path().join("daemon.json");
        let old: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("daemon.json")).expect("json");
        let mut cfg = config;
        let obj = cfg.as_object_mut().expect("daemon.json is an object");
        for k in ["data-root", "exec-root", "cgroup-parent"] {
            obj.insert(k.into(), old[k].clone());
        }
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).expect("daemon.json");
        self.launch();
    }

    /// SIGKILL the daemon (containers and shims go on).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM the daemon and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("pid");
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The pid of the daemon.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().map(|c| c.id())
    }

    /// A `docker` command for this daemon (the real CLI).
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_CONTEXT")
            .env_remove("DOCKER_TLS_VERIFY")
            .args(args);
        c
    }

    /// Run `docker ARGS`.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("running docker")
    }

    /// Run `docker ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}): {}\n{}\n--- daemon log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `docker ARGS`, which must fail; its stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            !out.status.success(),
            "docker {args:?} succeeded: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Mounts beneath the data root in the daemon's namespace.
    pub fn mounts(&self) -> Vec<String> {
        let root = self.data_root();
        let root = root.to_string_lossy();
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.anchor.id()))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(root.as_ref()))
            .collect()
    }

    /// Processes in the daemon's mount namespace other than the anchor and the daemon
    /// (shims).
    pub fn shims(&self) -> Vec<i32> {
        let daemon = self.pid().map(|p| p as i32);
        processes_in_mnt_ns(&self.ns)
            .into_iter()
            .filter(|p| *p != self.anchor.id() as i32 && Some(*p) != daemon)
            .collect()
    }

    /// Assert that nothing of containers is left: no mounts under the data root, no shims,
    /// no processes or cgroups beneath the cgroup parent, no container directories.
    pub fn assert_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mounts = self.mounts();
            let shims = self.shims();
            let procs = self.cgroup.processes();
            let cgroups = self.cgroup.children();
            let dirs: Vec<PathBuf> = ["data/containers", "run/containers"]
                .iter()
                .flat_map(|d| {
                    std::fs::read_dir(self.dir.path().join(d))
                        .into_iter()
                        .flatten()
                        .flatten()
                })
                .map(|e| e.path())
                .collect();
            if mounts.is_empty()
                && shims.is_empty()
                && procs.is_empty()
                && cgroups.is_empty()
                && dirs.is_empty()
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "left behind: mounts {mounts:?}, shims {shims:?}, processes {procs:?}, cgroups {cgroups:?}, dirs {dirs:?}"
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Load the busybox image (the test fixture) into the daemon as `name` through the API:
    /// pushed to `reg` and pulled by the daemon.
    pub fn pull_busybox(&self, reg: &crate::images::Registry, repo: &str) -> String {
        crate::images::push_busybox(reg, &format!("{repo}:latest"));
        let r = format!("{}/{repo}:latest", reg.addr);
        self.ok(&["pull", "-q", &r]);
        r
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        self.stop();
        // Shims and anything else in the namespace.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<i32> = processes_in_mnt_ns(&self.ns)
                .into_iter()
                .filter(|p| *p != self.anchor.id() as i32)
                .collect();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for p in left {
                crate::signal(p, rustix::process::Signal::KILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.anchor.kill();
        let _ = self.anchor.wait();
        // The cgroup parent (dropped after this) kills the containers' processes.
    }
}

/// Where the test's own docker CLI config lives (no credentials of the host).
pub fn docker_config(dir: &Path) -> PathBuf {
    dir.join("docker-config")
}

/// A test daemon (see [`TestDaemon::start`]) with the busybox fixture pulled from a fresh
/// local registry: the daemon, the registry (keep it alive) and the image's name. None when
/// not root (the suites need root). The shim must be built beside `berth`.
pub fn with_busybox(name: &str) -> Option<(TestDaemon, crate::images::Registry, String)> {
    if !crate::is_root() {
        eprintln!("skipped: needs root");
        return None;
    }
    let shim = berth_binary().with_file_name("berth-shim");
    assert!(
        shim.exists(),
        "{} is not built: cargo build -p berth-shim",
        shim.display()
    );
    let d = TestDaemon::start(name, serde_json::json!({}));
    let reg = d.registry();
    let image = d.pull_busybox(&reg, &crate::unique("bb"));
    Some((d, reg, image))
}

/// Wait (up to 20 s) until `f` holds, else panic naming `what`.
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
