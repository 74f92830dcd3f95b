//! Fixtures every berth test suite shares: a busybox root filesystem built once per run,
//! OCI bundles made from it, unique names, and assertions that a test left nothing behind.
//!
//! Tests run as root (they start real containers). Each test gets its own runtime root,
//! container ids, cgroup path (beneath the test process's own cgroup) and bundle directory,
//! so tests can run in parallel.

pub mod bench;
pub mod daemon;
pub mod debian;
pub mod images;
pub mod isolated;
pub mod tar;

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Where fixtures are cached: `$BERTH_FIXTURES`, or `<target>/berth-fixtures` next to the
/// running test binary.
pub fn fixtures_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERTH_FIXTURES") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current exe");
    // target/<profile>/deps/<test-binary>
    let target = exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "target" || n.to_string_lossy().starts_with("target-"))
        })
        .map(Path::to_path_buf)
        .unwrap_or_else(|| std::env::temp_dir().join("berth-target"));
    target.join("berth-fixtures")
}

/// Run `f` once across every test process: the first caller builds under an flock, the rest
/// wait and reuse the result (marked complete by a `.done` file).
pub fn build_once(dir: &Path, f: impl FnOnce(&Path)) {
    let done = dir.with_extension("done");
    if done.exists() {
        return;
    }
    let parent = dir.parent().expect("fixture dir has a parent");
    fs::create_dir_all(parent).expect("creating the fixtures dir");
    let lock_path = dir.with_extension("lock");
    let lock = fs::File::create(&lock_path).expect("creating the fixture lock");
    // Held until `lock` is closed, at the end of this function.
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .unwrap_or_else(|e| panic!("locking {}: {e}", lock_path.display()));
    if !done.exists() {
        let _ = fs::remove_dir_all(dir);
        f(dir);
        fs::write(&done, b"").expect("marking the fixture done");
    }
}

/// The host's static busybox.
pub fn busybox_binary() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox is not installed (apt-get install busybox-static)");
}

/// A busybox root filesystem: /bin/busybox, a link per applet, /etc/passwd and /etc/group,
/// empty /dev, /proc, /sys, /tmp. Built once per run.
pub fn busybox_rootfs() -> PathBuf {
    let dir = fixtures_dir().join("busybox-rootfs");
    build_once(&dir, |dir| make_busybox_rootfs(dir, &busybox_binary()));
    dir
}

/// Write a busybox root filesystem into `dir` from the busybox binary `busybox`.
pub fn make_busybox_rootfs(dir: &Path, busybox: &Path) {
    for d in [
        "bin", "sbin", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "tmp", "root", "home",
        "var", "run", "mnt",
    ] {
        fs::create_dir_all(dir.join(d)).expect("mkdir");
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    fs::copy(busybox, dir.join("bin/busybox")).expect("copying busybox");
    let list = Command::new(busybox)
        .arg("--list-full")
        .output()
        .expect("busybox --list-full");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "bin/busybox" {
            continue;
        }
        let link = dir.join(applet);
        if let Some(p) = link.parent() {
            fs::create_dir_all(p).expect("mkdir applet dir");
        }
        let _ = symlink("/bin/busybox", &link);
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home:/bin/sh\n",
    )
    .expect("passwd");
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\nuser:x:1000:\n",
    )
    .expect("group");
    fs::write(dir.join("etc/hostname"), "busybox\n").expect("hostname");
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, e.g. `t-lifecycle-4711-3`.
pub fn unique(prefix: &str) -> String {
    format!(
        "t-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Copy a tree, hard-linking regular files (fast, and the sources are never modified).
pub fn link_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).expect("mkdir");
    let meta = fs::metadata(src).expect("stat");
    fs::set_permissions(dst, meta.permissions()).expect("chmod");
    for e in fs::read_dir(src).expect("readdir") {
        let e = e.expect("entry");
        let ft = e.file_type().expect("file type");
        let to = dst.join(e.file_name());
        if ft.is_dir() {
            link_tree(&e.path(), &to);
        } else if ft.is_symlink() {
            symlink(fs::read_link(e.path()).expect("readlink"), &to).expect("symlink");
        } else if fs::hard_link(e.path(), &to).is_err() {
            fs::copy(e.path(), &to).expect("copy");
        }
    }
}

/// An OCI bundle in a temporary directory with its own busybox rootfs.
pub struct Bundle {
    /// Bundle directory (holds config.json and rootfs/).
    pub dir: PathBuf,
    /// The configuration, written by [`Bundle::write`].
    pub config: Value,
    /// The unique name used for the cgroup path.
    pub name: String,
    _tmp: tempfile::TempDir,
}

impl Bundle {
    /// A bundle running `args`, with the default configuration of `berth runtime spec`, no
    /// terminal, and a cgroup at `berth-test-<name>` beneath the test's own cgroup.
    pub fn new(name: &str, args: &[&str]) -> Bundle {
        let tmp = tempfile::Builder::new()
            .prefix("berth-bundle-")
            .tempdir()
            .expect("tempdir");
        let dir = tmp.path().to_path_buf();
        link_tree(&busybox_rootfs(), &dir.join("rootfs"));
        let mut config = default_config();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        config["linux"]["cgroupsPath"] = json!(format!("berth-test-{name}"));
        let b = Bundle {
            dir,
            config,
            name: name.to_string(),
            _tmp: tmp,
        };
        b.write();
        b
    }

    /// Write config.json.
    pub fn write(&self) {
        fs::write(
            self.dir.join("config.json"),
            serde_json::to_vec_pretty(&self.config).expect("json"),
        )
        .expect("writing config.json");
    }

    /// The rootfs path.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
}

/// The configuration `berth runtime spec` writes, as JSON.
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.2.1",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A runtime root directory of its own, removed (after checking it is empty) on drop.
pub struct RuntimeRoot {
    /// The directory.
    pub path: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Default for RuntimeRoot {
    fn default() -> Self {
        Self::new()
    }
}

impl RuntimeRoot {
    /// A fresh root.
    pub fn new() -> RuntimeRoot {
        let tmp = tempfile::Builder::new()
            .prefix("berth-root-")
            .tempdir()
            .expect("tempdir");
        RuntimeRoot {
            path: tmp.path().to_path_buf(),
            _tmp: tmp,
        }
    }
}

/// Runs the runtime's command line: `berth-runc --root ROOT ...`, or `berth runtime --root ROOT
/// ...` when the binary given is `berth`.
pub struct Berth {
    /// The berth-runc (or berth) binary.
    pub bin: PathBuf,
    /// The runtime root.
    pub root: PathBuf,
}

impl Berth {
    /// A runner for binary `bin` (berth-runc, or berth) with state under `root`.
    pub fn new(bin: impl Into<PathBuf>, root: &RuntimeRoot) -> Berth {
        Berth {
            bin: bin.into(),
            root: root.path.clone(),
        }
    }

    /// A `Command` for `berth-runc --root ROOT <args>` (`berth runtime --root ROOT <args>`).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        if self.bin.file_name().is_some_and(|n| n == "berth") {
            c.arg("runtime");
        }
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Run and return the output (whatever the exit status). Output goes through files, not
    /// pipes: a detached container inherits berth's stdout and stderr and would hold a pipe
    /// open long after berth exits.
    pub fn run(&self, args: &[&str]) -> Output {
        let mut out = tempfile::tempfile().expect("temporary file");
        let mut err = tempfile::tempfile().expect("temporary file");
        let status = self
            .cmd(args)
            .stdin(std::process::Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(err.try_clone().expect("dup"))
            .status()
            .expect("running berth");
        let read = |f: &mut fs::File| {
            use std::io::{Read, Seek};
            let mut v = Vec::new();
            f.seek(std::io::SeekFrom::Start(0)).expect("seek");
            f.read_to_end(&mut v).expect("read");
            v
        };
        Output {
            status,
            stdout: read(&mut out),
            stderr: read(&mut err),
        }
    }

    /// Run and insist on success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "runtime {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run and insist on failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "runtime {args:?} should have failed:\nstdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// `state ID` as JSON.
    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).expect("state JSON")
    }

    /// The status from `state ID`.
    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Wait until `state ID` reports `status` (or panic after 10 s).
    pub fn wait_status(&self, id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // Until the runtime has written its state the container does not exist yet.
            let out = self.run(&["state", id]);
            let s = if out.status.success() {
                let v: Value = serde_json::from_slice(&out.stdout).expect("state JSON");
                v["status"].as_str().unwrap_or_default().to_string()
            } else {
                String::from("(none)")
            };
            if s == status {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{id}: still {s}, expected {status}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Everything a container could leave behind, checked after it is deleted: its state
/// directory, cgroup directories named after it, mounts of its bundle, and processes whose
/// root is inside its bundle.
pub fn assert_no_leaks(root: &Path, id: &str, bundle: &Bundle) {
    assert!(
        !root.join(id).exists(),
        "state directory {} left behind",
        root.join(id).display()
    );
    let cg = cgroup_leftovers(&bundle.name);
    assert!(cg.is_empty(), "cgroups left behind: {cg:?}");
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let needle = bundle.dir.to_string_lossy().into_owned();
    let leaked: Vec<&str> = mounts.lines().filter(|l| l.contains(&needle)).collect();
    assert!(leaked.is_empty(), "mounts left behind: {leaked:?}");
    let procs = processes_in_cgroup(&bundle.name);
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
}

/// Cgroup directories under any hierarchy whose path contains `berth-test-<name>`.
pub fn cgroup_leftovers(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let needle = format!("berth-test-{name}");
    fn walk(dir: &Path, needle: &str, depth: u32, out: &mut Vec<PathBuf>) {
        if depth > 8 {
            return;
        }
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let p = e.path();
                if p.to_string_lossy().contains(needle) {
                    out.push(p.clone());
                }
                walk(&p, needle, depth + 1, out);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), &needle, 0, &mut out);
    out
}

/// Pids of live (not zombie) processes in a cgroup whose path contains `berth-test-<name>`.
pub fn processes_in_cgroup(name: &str) -> Vec<i32> {
    let needle = format!("berth-test-{name}");
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        // A zombie has left its cgroup already; the host's init reaps it when it gets to it.
        let zombie = fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit(')')
                .next()
                .and_then(|r| r.split_whitespace().next())
                == Some("Z")
        });
        if !zombie
            && let Ok(c) = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            && c.contains(&needle)
        {
            out.push(pid);
        }
    }
    out
}

/// Send `sig` to process `pid` (gone already is fine).
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Whether this process runs as root (the integration suites need it).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Run `f` on a thread that entered the network namespace `netns` (a `/proc/PID/ns/net` or
/// a bind-mounted namespace file); sockets made there stay in it.
pub fn in_netns<T: Send>(netns: &Path, f: impl FnOnce() -> T + Send) -> T {
    let ns =
        std::fs::File::open(netns).unwrap_or_else(|e| panic!("opening {}: {e}", netns.display()));
    std::thread::scope(|s| {
        s.spawn(move || {
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&ns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .expect("setns into the network namespace");
            f()
        })
        .join()
        .expect("the thread in the network namespace panicked")
    })
}

/// A cgroup parent for clients (podman, containerd) that take an absolute cgroup path: it lies
/// beneath this test process's own cgroup (v1: the memory hierarchy's, the only one not at the
/// root on our hosts; v2: the parent of our own, which may hand controllers down). Dropping it
/// removes every directory it caused, in every hierarchy, deepest first.
pub struct CgroupParent {
    /// The absolute cgroup path to hand to the client.
    pub path: String,
    before: Vec<PathBuf>,
}

impl CgroupParent {
    /// A parent named `berth-test-<name>`.
    pub fn new(name: &str) -> CgroupParent {
        let own = fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
        let base = own
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
            .or_else(|| {
                own.lines().find_map(|l| l.strip_prefix("0::")).map(|p| {
                    Path::new(p)
                        .parent()
                        .unwrap_or(Path::new("/"))
                        .to_string_lossy()
                        .into_owned()
                })
            })
            .unwrap_or_else(|| "/".into());
        let path = Path::new(&base)
            .join(format!("berth-test-{name}"))
            .to_string_lossy()
            .into_owned();
        CgroupParent {
            before: Self::existing(&path),
            path,
        }
    }

    fn hierarchies() -> Vec<PathBuf> {
        let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        mounts
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() > 2 && (f[2] == "cgroup" || f[2] == "cgroup2"))
                    .then(|| PathBuf::from(f[1]))
            })
            .collect()
    }

    /// Every ancestor of `path` (and itself) that exists in some hierarchy.
    fn existing(path: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in Self::hierarchies() {
            let mut p = Some(Path::new(path));
            while let Some(d) = p {
                let full = h.join(d.strip_prefix("/").unwrap_or(d));
                if full.exists() {
                    out.push(full);
                }
                p = d.parent();
            }
        }
        out
    }
}

impl CgroupParent {
    /// Live processes in this parent's cgroups (or beneath them).
    pub fn processes(&self) -> Vec<i32> {
        let needle = format!("{}/", self.path.trim_end_matches('/'));
        let Ok(rd) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|c| {
                    c.lines()
                        .filter_map(|l| l.splitn(3, ':').nth(2))
                        .any(|p| p == self.path || p.starts_with(&needle))
                })
            })
            .collect()
    }

    /// Cgroup directories beneath the parent (the clients' containers and pods), any hierarchy.
    pub fn children(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for h in Self::hierarchies() {
            let top = h.join(self.path.trim_start_matches('/'));
            if let Ok(rd) = fs::read_dir(&top) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        out.push(e.path());
                    }
                }
            }
        }
        out
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        // Whatever a failed test left running beneath the parent goes first (the name is this
        // test's own), so the directories can be removed.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = self.processes();
            if left.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in left {
                signal(pid, rustix::process::Signal::KILL);
            }
            // A frozen process dies only once thawed.
            for d in self.children() {
                let _ = fs::write(d.join("freezer.state"), "THAWED");
                let _ = fs::write(d.join("cgroup.freeze"), "0");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for h in Self::hierarchies() {
            let top = h.join(self.path.trim_start_matches('/'));
            // Everything beneath the parent, deepest first.
            let mut dirs = Vec::new();
            fn walk(d: &Path, out: &mut Vec<PathBuf>) {
                if let Ok(rd) = fs::read_dir(d) {
                    for e in rd.flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            walk(&e.path(), out);
                        }
                    }
                }
                out.push(d.to_path_buf());
            }
            walk(&top, &mut dirs);
            // Then the ancestors this parent caused to exist.
            let mut p = top.parent();
            while let Some(d) = p {
                if d == h || self.before.iter().any(|b| b == d) {
                    break;
                }
                dirs.push(d.to_path_buf());
                p = d.parent();
            }
            for d in dirs {
                let _ = fs::remove_dir(&d);
            }
        }
    }
}
