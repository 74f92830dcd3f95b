//! Docker (Debian's dockerd 20.10, with its own containerd) runs every container on berth-runc
//! (`--add-runtime berth=… --default-runtime berth`): run, exec, logs, limits, pause, update,
//! stop, rm, `docker info`, and a single-node Swarm service scaled and updated.
//!
//! Each test starts its own dockerd in a network and mount namespace of its own (testkit's
//! `Isolated`), with its own data root, exec root, pid file, socket, /etc/docker and a cgroup
//! parent beneath the test's cgroup, and checks at the end that nothing is left: processes,
//! cgroups, berth-runc state.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::isolated::Isolated;
use berth_testkit::{CgroupParent, busybox_rootfs, images::tar_dir, unique};

// Dropped in this order: the daemon, then its cgroups, then its directories.
struct Dockerd {
    daemon: Isolated,
    cgroup: CgroupParent,
    dir: tempfile::TempDir,
}

impl Dockerd {
    fn start(name: &str) -> Dockerd {
        assert!(
            berth_testkit::is_root(),
            "the client tests must run as root"
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["data", "exec", "etc", "cli"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let cgroup = CgroupParent::new(&unique(name));
        let runc = common::runc_bin();
        let p = |s: &str| d.join(s).to_str().unwrap().to_string();
        let host = format!("unix://{}", p("docker.sock"));
        let runtime = format!("berth={}", runc.display());
        let daemon = Isolated::start(
            &[
                "dockerd",
                "--data-root",
                &p("data"),
                "--exec-root",
                &p("exec"),
                "--pidfile",
                &p("docker.pid"),
                "-H",
                &host,
                "--add-runtime",
                &runtime,
                "--default-runtime",
                "berth",
                "--cgroup-parent",
                &cgroup.path,
                // Its own network namespace already; no iptables rules, no docker0.
                "--iptables=false",
                "--bridge=none",
                "--userland-proxy=false",
            ],
            &[(&d.join("etc"), Path::new("/etc/docker"))],
            &d.join("dockerd.log"),
        );
        let mut dockerd = Dockerd {
            dir,
            cgroup,
            daemon,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !dockerd.run(&["version"]).status.success() {
            assert!(
                dockerd.daemon.running() && Instant::now() < deadline,
                "dockerd did not come up: {}",
                dockerd.daemon.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        dockerd
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.arg("-H")
            .arg(format!(
                "unix://{}",
                self.dir.path().join("docker.sock").display()
            ))
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// Run the docker CLI, with a deadline (a hang fails the test with dockerd's log).
    fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running docker");
        let deadline = Instant::now() + Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker {args:?} hung; dockerd's log:\n{}",
                    self.daemon.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.wait_with_output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\ndockerd's log (end):\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.daemon.log(), 40)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The busybox fixture as image `tag` (`docker import` of its tar).
    fn import_busybox(&self, tag: &str) {
        let mut child = self
            .cmd(&["import", "-", tag])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&tar_dir(&busybox_rootfs()))
            .unwrap();
        assert!(child.wait_with_output().unwrap().status.success());
    }

    /// The container's cgroup directory for `controller` (host side), beneath the parent.
    fn cgroup_file(&self, id: &str, controller: &str, file: &str) -> String {
        let rel = format!("{}/{id}", self.cgroup.path.trim_start_matches('/'));
        let v1 = Path::new("/sys/fs/cgroup").join(controller).join(&rel);
        let dir = if v1.is_dir() {
            v1
        } else {
            Path::new("/sys/fs/cgroup").join(&rel)
        };
        std::fs::read_to_string(dir.join(file))
            .unwrap_or_else(|e| panic!("{}/{file}: {e}", dir.display()))
            .trim()
            .to_string()
    }

    /// berth-runc's state directories under dockerd's runtime roots (one per live container).
    fn runtime_states(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let exec = self.dir.path().join("exec");
        for root in std::fs::read_dir(&exec).into_iter().flatten().flatten() {
            if !root.file_name().to_string_lossy().starts_with("runtime-") {
                continue;
            }
            for ns in std::fs::read_dir(root.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                for c in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                    // The runtime's seccomp program cache is not a container.
                    if c.file_name() != "@seccomp" {
                        out.push(c.path());
                    }
                }
            }
        }
        out
    }

    /// Stop dockerd and check that it, its containerd, its shims and every container are gone,
    /// with their cgroups and berth-runc's state.
    fn shutdown(mut self) {
        assert!(
            self.daemon.stop(Duration::from_secs(60)),
            "dockerd did not stop on SIGTERM: {}",
            tail(&self.daemon.log(), 40)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.daemon.leftovers().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = self.daemon.leftovers();
        assert!(left.is_empty(), "processes left by dockerd: {left:?}");
        let procs = self.cgroup.processes();
        assert!(procs.is_empty(), "container processes left: {procs:?}");
        let cgroups = self.cgroup.children();
        assert!(cgroups.is_empty(), "container cgroups left: {cgroups:?}");
        let states = self.runtime_states();
        assert!(states.is_empty(), "berth-runc state left: {states:?}");
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn inspect(d: &Dockerd, what: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, what]).trim().to_string()
}

#[test]
fn docker_runs_containers_on_berth_runc() {
    let d = Dockerd::start("dockerd");
    let img = "berth-test/busybox:1";
    d.import_busybox(img);

    // docker run: output and exit code.
    let o = d.run(&[
        "run",
        "--rm",
        img,
        "sh",
        "-c",
        "echo hello from docker; exit 3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello from docker\n");

    // run -d with limits, then exec, logs, the limits in the cgroup, pause, update, stop, rm.
    let name = unique("ctr");
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--memory",
            "64m",
            "--cpus",
            "0.5",
            "--pids-limit",
            "30",
            img,
            "sh",
            "-c",
            "echo started; exec sleep 1000",
        ])
        .trim()
        .to_string();
    assert_eq!(inspect(&d, &name, "{{.HostConfig.Runtime}}"), "berth");
    // It is berth-runc's container: its state directory, in berth's format.
    let states = d.runtime_states();
    let state = states
        .iter()
        .find(|s| s.ends_with(&id))
        .unwrap_or_else(|| panic!("no runtime state for {id}: {states:?}"));
    let saved = std::fs::read_to_string(state.join("state.json")).unwrap();
    assert!(saved.contains("\"phase\""), "{saved}");

    assert_eq!(
        d.ok(&["exec", &name, "sh", "-c", "echo exec ok"]),
        "exec ok\n"
    );
    let o = d.run(&["exec", &name, "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.ok(&["logs", &name]).contains("started") {
        assert!(Instant::now() < deadline, "no log line");
        std::thread::sleep(Duration::from_millis(50));
    }

    let v2 = !Path::new("/sys/fs/cgroup/memory").is_dir();
    if v2 {
        assert_eq!(d.cgroup_file(&id, "memory", "memory.max"), "67108864");
        assert_eq!(d.cgroup_file(&id, "pids", "pids.max"), "30");
        assert_eq!(d.cgroup_file(&id, "cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(
            d.cgroup_file(&id, "memory", "memory.limit_in_bytes"),
            "67108864"
        );
        assert_eq!(d.cgroup_file(&id, "pids", "pids.max"), "30");
        assert_eq!(d.cgroup_file(&id, "cpu", "cpu.cfs_quota_us"), "50000");
    }

    d.ok(&["pause", &name]);
    assert_eq!(inspect(&d, &name, "{{.State.Status}}"), "paused");
    if !v2 {
        assert_eq!(d.cgroup_file(&id, "freezer", "freezer.state"), "FROZEN");
    }
    d.ok(&["unpause", &name]);
    assert_eq!(inspect(&d, &name, "{{.State.Status}}"), "running");

    // update: dockerd sends every resource, zeros for the ones not given.
    d.ok(&["update", "--memory", "32m", "--memory-swap", "64m", &name]);
    let mem = if v2 {
        d.cgroup_file(&id, "memory", "memory.max")
    } else {
        d.cgroup_file(&id, "memory", "memory.limit_in_bytes")
    };
    assert_eq!(mem, "33554432");
    assert_eq!(
        d.ok(&[
            "exec",
            &name,
            "sh",
            "-c",
            "echo x > /dev/null && echo devices ok"
        ]),
        "devices ok\n"
    );

    d.ok(&["stop", "-t", "1", &name]);
    assert_eq!(inspect(&d, &name, "{{.State.Status}}"), "exited");
    d.ok(&["rm", &name]);

    // docker info runs `berth-runc --version` and parses it.
    let commit = d.ok(&["info", "--format", "{{.RuncCommit.ID}}"]);
    assert_ne!(commit.trim(), "N/A");
    assert_eq!(
        d.ok(&["info", "--format", "{{.DefaultRuntime}}"]).trim(),
        "berth"
    );
    let log = d.daemon.log();
    for bad in ["failed to parse", "failed to retrieve"] {
        assert!(!log.contains(bad), "dockerd logged {bad:?}:\n{log}");
    }
    d.shutdown();
}

/// Service tasks named `service`, as (container id, state) pairs.
fn tasks(d: &Dockerd, service: &str) -> Vec<String> {
    d.ok(&[
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ])
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn swarm_service_runs_on_berth_runc() {
    let d = Dockerd::start("swarm");
    let img = "berth-test/busybox:1";
    d.import_busybox(img);
    d.ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
    let svc = unique("svc");
    // DNS round robin: a virtual IP would need IP_VS, which this kernel lacks.
    d.ok(&[
        "service",
        "create",
        "--quiet",
        "--name",
        &svc,
        "--replicas",
        "1",
        "--endpoint-mode",
        "dnsrr",
        "--stop-grace-period",
        "1s",
        img,
        "sleep",
        "1000",
    ]);
    assert_eq!(tasks(&d, &svc).len(), 1);
    d.ok(&["service", "scale", &format!("{svc}=3")]);
    d.ok(&[
        "service",
        "update",
        "--quiet",
        "--env-add",
        "BERTH_TEST=updated",
        "--update-parallelism",
        "3",
        "--update-monitor",
        "1s",
        &svc,
    ]);
    let running = tasks(&d, &svc);
    assert_eq!(running.len(), 3, "{running:?}");
    for t in &running {
        assert_eq!(inspect(&d, t, "{{.HostConfig.Runtime}}"), "berth");
        assert_eq!(inspect(&d, t, "{{.State.Status}}"), "running");
        let env = d.ok(&["exec", t, "sh", "-c", "echo $BERTH_TEST"]);
        assert_eq!(env, "updated\n");
    }
    let states = d.runtime_states();
    for t in &running {
        assert!(
            states.iter().any(|s| s.ends_with(t)),
            "{t} is not berth-runc's: {states:?}"
        );
    }
    d.ok(&["service", "rm", &svc]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !d.ok(&["ps", "-aq"]).trim().is_empty() {
        assert!(Instant::now() < deadline, "the service's containers remain");
        std::thread::sleep(Duration::from_millis(200));
    }
    d.ok(&["swarm", "leave", "--force"]);
    d.shutdown();
}
