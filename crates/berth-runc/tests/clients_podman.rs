//! podman (Debian's) drives berth as its OCI runtime: run, exec, stop, kill, pause/unpause, rm.
//! Each test has its own podman storage and run directories and a cgroup parent beneath the
//! test's own cgroup; no image is needed (`--rootfs` with the busybox fixture).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use berth_testkit::{CgroupParent, busybox_rootfs, link_tree, unique};

struct Podman {
    dir: tempfile::TempDir,
    rootfs: PathBuf,
    cgroup: CgroupParent,
}

impl Podman {
    fn new(name: &str) -> Podman {
        assert!(
            berth_testkit::is_root(),
            "the client tests must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-podman-")
            .tempdir()
            .unwrap();
        let rootfs = dir.path().join("rootfs");
        link_tree(&busybox_rootfs(), &rootfs);
        let runtime = dir.path().join("berth-runc");
        std::os::unix::fs::symlink(common::runc_bin(), &runtime).unwrap();
        Podman {
            cgroup: CgroupParent::new(&unique(name)),
            dir,
            rootfs,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let d = self.dir.path();
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(d.join("storage"))
            .arg("--runroot")
            .arg(d.join("run"))
            .arg("--runtime")
            .arg(d.join("berth-runc"))
            .args([
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "file",
                "--storage-driver",
                "vfs",
            ])
            .arg("--tmpdir")
            .arg(d.join("tmp"))
            .args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("running podman")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "podman {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Options every container gets: no network (no CNI here), our cgroup parent, and a file
    /// limit the host allows (podman asks for 1048576, more than this host's hard limit).
    fn run_args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut v = vec![
            "--network",
            "none",
            "--cgroup-parent",
            &self.cgroup.path,
            "--ulimit",
            "nofile=1024:4096",
            "--ulimit",
            "nproc=1000:1000",
        ];
        v.extend_from_slice(extra);
        v.push("--rootfs");
        v.push(self.rootfs.to_str().unwrap());
        v
    }

    fn status(&self, name: &str) -> String {
        self.ok(&[
            "inspect",
            name,
            "--format",
            "{{.State.Status}} {{.State.ExitCode}}",
        ])
        .trim()
        .to_string()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let dir = self.dir.path().to_string_lossy().into_owned();
        for l in mounts.lines().filter(|l| l.contains(&dir)) {
            if let Some(m) = l.split(' ').nth(4) {
                let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

fn no_leaks(p: &Podman) {
    let o = p.ok(&["ps", "-aq"]);
    assert!(o.trim().is_empty(), "containers left: {o}");
    let procs =
        berth_testkit::processes_in_cgroup(p.cgroup.path.rsplit("berth-test-").next().unwrap());
    assert!(procs.is_empty(), "processes left behind: {procs:?}");
}

#[test]
fn podman_run_foreground_with_exit_code() {
    let p = Podman::new("pod-run");
    let mut args = vec!["run", "--rm"];
    args.extend(p.run_args(&[]));
    args.extend([
        "sh",
        "-c",
        "echo hello from podman; hostname; cat /proc/self/cgroup; exit 7",
    ]);
    let o = p.run(&args);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(7),
        "{out} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("hello from podman"), "{out}");
    assert!(
        out.contains("berth-test-"),
        "the container's cgroup is beneath our parent: {out}"
    );
    no_leaks(&p);
}

#[test]
fn podman_exec_pause_kill_stop_rm() {
    let p = Podman::new("pod-life");
    let mut args = vec!["run", "-d", "--name", "c1"];
    args.extend(p.run_args(&[]));
    args.extend(["sleep", "1000"]);
    p.ok(&args);
    assert_eq!(p.status("c1"), "running 0");

    // exec: inline, with env and workdir, and with a terminal
    let out = p.ok(&[
        "exec",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "c1",
        "sh",
        "-c",
        "echo $FOO $(pwd); cat /proc/1/cmdline",
    ]);
    assert!(out.starts_with("bar /tmp\nsleep"), "{out:?}");
    let out = p.ok(&["exec", "-t", "c1", "tty"]);
    assert!(out.trim().starts_with("/dev/pts/"), "{out:?}");
    let o = p.run(&["exec", "c1", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));

    // pause / unpause
    p.ok(&["pause", "c1"]);
    assert_eq!(p.status("c1"), "paused 0");
    p.ok(&["unpause", "c1"]);
    assert_eq!(p.status("c1"), "running 0");

    // kill
    p.ok(&["kill", "-s", "KILL", "c1"]);
    p.ok(&["wait", "c1"]);
    assert_eq!(p.status("c1"), "exited 137");

    // start again, then stop (sleep as PID 1 ignores SIGTERM: podman falls back to SIGKILL)
    p.ok(&["start", "c1"]);
    assert_eq!(p.status("c1"), "running 0");
    p.ok(&["stop", "-t", "1", "c1"]);
    assert_eq!(p.status("c1"), "exited 137");

    p.ok(&["rm", "c1"]);
    no_leaks(&p);
}
