//! containerd (Debian's) runs a container through its runc shim with `ctr run --runc-binary`
//! pointing at berth. The test starts its own containerd on its own socket and directories.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use berth_testkit::{busybox_rootfs, link_tree, unique};

struct Containerd {
    dir: tempfile::TempDir,
    daemon: Child,
    ns: String,
}

impl Containerd {
    fn start() -> Containerd {
        assert!(
            berth_testkit::is_root(),
            "the client tests must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-containerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            root = d.join("root").display(),
            state = d.join("state").display(),
            sock = d.join("containerd.sock").display(),
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd (apt-get install containerd)");
        let c = Containerd {
            dir,
            daemon,
            ns: unique("ctrd").replace('-', "_"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !c.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not come up: {}",
                c.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.sock())
            .args(["-n", &self.ns])
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the daemon we started.
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let _ = self.daemon.wait();
        // The runc shim keeps its runtime state under /run/containerd/runc/<namespace>.
        let _ = std::fs::remove_dir(Path::new("/run/containerd/runc").join(&self.ns));
    }
}

#[test]
fn ctr_run_with_berth_as_runc_binary() {
    let c = Containerd::start();
    let rootfs = c.dir.path().join("rootfs");
    link_tree(&busybox_rootfs(), &rootfs);
    let runtime = c.dir.path().join("berth-runc");
    std::os::unix::fs::symlink(common::runc_bin(), &runtime).unwrap();
    let name = unique("ctr");
    let cgroup = format!("berth-test-{name}");
    let o = c.ctr(&[
        "run",
        "--rm",
        "--runc-binary",
        runtime.to_str().unwrap(),
        "--cgroup",
        &cgroup,
        "--rootfs",
        rootfs.to_str().unwrap(),
        &name,
        "sh",
        "-c",
        "echo hello from containerd; cat /proc/self/cgroup; exit 5",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(5),
        "{out}\n{}\n{}",
        String::from_utf8_lossy(&o.stderr),
        c.log()
    );
    assert!(out.contains("hello from containerd"), "{out}");
    assert!(
        out.contains(&cgroup),
        "the container ran in its cgroup: {out}"
    );

    // The shim asked berth for its state and deleted it: nothing is left.
    let list = c.ctr(&["containers", "list", "-q"]);
    assert!(String::from_utf8_lossy(&list.stdout).trim().is_empty());
    assert!(
        berth_testkit::cgroup_leftovers(&name).is_empty(),
        "{:?}",
        berth_testkit::cgroup_leftovers(&name)
    );
    assert!(berth_testkit::processes_in_cgroup(&name).is_empty());
    let state: &Path = &c.dir.path().join("state");
    assert!(state.exists());
}
