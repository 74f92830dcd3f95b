//! Config and HostConfig through the docker CLI: what a container sees of them (env, workdir,
//! user, hostname, hosts, limits in its cgroup, capabilities, read-only root, no new
//! privileges, privileged, ulimits, sysctls, shm size, labels), and Docker's defaults.

use berth_testkit::daemon::{TestDaemon, with_busybox as daemon};
use berth_testkit::{is_root, unique};

/// `docker run --rm ARGS… IMAGE sh -c SCRIPT`'s output.
fn run(d: &TestDaemon, img: &str, args: &[&str], script: &str) -> String {
    let mut a = vec!["run", "--rm"];
    a.extend_from_slice(args);
    a.extend_from_slice(&[img, "sh", "-c", script]);
    d.ok(&a)
}

#[test]
fn process_settings() {
    let Some((d, _reg, img)) = daemon(&unique("proc")) else {
        return;
    };
    let out = run(
        &d,
        &img,
        &[
            "-e",
            "A=1",
            "--env",
            "B=two words",
            "-w",
            "/tmp",
            "-u",
            "1000:1000",
        ],
        "echo $A $B; pwd; id -u; id -g",
    );
    assert_eq!(out, "1 two words\n/tmp\n1000\n1000\n");
    let out = run(&d, &img, &["-u", "nobody"], "id -un");
    assert_eq!(out.trim(), "nobody");
    let out = run(
        &d,
        &img,
        &["--hostname", "web", "--add-host", "db:10.1.2.3"],
        "hostname; grep db /etc/hosts",
    );
    assert_eq!(out, "web\n10.1.2.3\tdb\n");
    let out = run(&d, &img, &["--entrypoint", "echo"], "ignored");
    assert_eq!(out.trim(), "sh -c ignored");
    // PID 1 is the command; the container's own PID namespace.
    let out = run(&d, &img, &[], "echo $$");
    assert_eq!(out.trim(), "1");
    d.assert_clean();
}

#[test]
fn limits_reach_the_cgroup() {
    let Some((d, _reg, img)) = daemon(&unique("limits")) else {
        return;
    };
    let name = unique("lim");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &name,
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        &img,
        "sleep",
        "1000",
    ]);
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", &name])
        .trim()
        .to_string();
    // The cgroup files, whichever layout (v1 here; v2 in the qemu suites).
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cg = |ctrl: &str, file: &str| -> String {
        let base = if v2 {
            "/sys/fs/cgroup".to_string()
        } else {
            format!("/sys/fs/cgroup/{ctrl}")
        };
        std::fs::read_to_string(format!("{base}{}/{id}/{file}", d.cgroup.path)).unwrap_or_default()
    };
    if v2 {
        assert_eq!(cg("", "memory.max").trim(), "67108864");
        assert_eq!(cg("", "cpu.max").trim(), "50000 100000");
        assert_eq!(cg("", "pids.max").trim(), "20");
    } else {
        assert_eq!(cg("memory", "memory.limit_in_bytes").trim(), "67108864");
        assert_eq!(cg("cpu", "cpu.cfs_quota_us").trim(), "50000");
        assert_eq!(cg("pids", "pids.max").trim(), "20");
    }
    let hc = d.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
        &name,
    ]);
    assert_eq!(hc.trim(), "67108864 500000000 20");
    // Too many processes: the pids limit holds.
    let out = d.docker(&[
        "exec",
        &name,
        "sh",
        "-c",
        "for i in $(seq 40); do sleep 10 & done; wait",
    ]);
    assert!(
        !out.status.success() || String::from_utf8_lossy(&out.stderr).contains("fork"),
        "{out:?}"
    );
    d.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

#[test]
fn security_settings() {
    let Some((d, _reg, img)) = daemon(&unique("sec")) else {
        return;
    };
    // Docker's default capabilities: chown yes, net_admin no.
    let caps = |args: &[&str]| {
        run(&d, &img, args, "grep CapEff /proc/self/status")
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let default = u64::from_str_radix(&caps(&[]), 16).unwrap();
    assert_eq!(default, 0x00000000a80425fb, "Docker's default set");
    let dropped = u64::from_str_radix(&caps(&["--cap-drop", "chown"]), 16).unwrap();
    assert_eq!(dropped, default & !1);
    let added = u64::from_str_radix(&caps(&["--cap-add", "NET_ADMIN"]), 16).unwrap();
    assert_eq!(added, default | (1 << 12));
    // Read-only root.
    let out = d.docker(&["run", "--rm", "--read-only", &img, "touch", "/x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only file system"),
        "{out:?}"
    );
    // no-new-privileges.
    let out = run(
        &d,
        &img,
        &["--security-opt", "no-new-privileges"],
        "grep NoNewPrivs /proc/self/status",
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    // Seccomp on by default (Docker's profile), off with unconfined.
    assert!(run(&d, &img, &[], "grep Seccomp: /proc/self/status").contains("Seccomp:\t2"));
    assert!(
        run(
            &d,
            &img,
            &["--security-opt", "seccomp=unconfined"],
            "grep Seccomp: /proc/self/status"
        )
        .contains("Seccomp:\t0")
    );
    // Masked paths.
    assert_eq!(
        run(&d, &img, &[], "cat /proc/kcore 2>/dev/null | wc -c").trim(),
        "0"
    );
    // Privileged: every capability of the host (this host lacks CAP_SYS_RESOURCE: it still
    // starts), host devices, no seccomp.
    let out = run(
        &d,
        &img,
        &["--privileged"],
        "grep Seccomp: /proc/self/status; ls /dev | wc -l",
    );
    assert!(out.contains("Seccomp:\t0"), "{out}");
    let devs: usize = out.lines().last().unwrap().trim().parse().unwrap();
    assert!(devs > 15, "{out}");
    // An unknown security option is refused as Docker refuses it.
    let err = d.fails(&[
        "run",
        "--rm",
        "--security-opt",
        "apparmor=foo",
        &img,
        "true",
    ]);
    assert!(err.contains("AppArmor"), "{err}");
    d.assert_clean();
}

#[test]
fn ulimits_sysctls_shm_labels() {
    let Some((d, _reg, img)) = daemon(&unique("misc")) else {
        return;
    };
    let out = run(
        &d,
        &img,
        &["--ulimit", "nofile=512:1024"],
        "ulimit -n; ulimit -Hn",
    );
    assert_eq!(out, "512\n1024\n");
    let out = run(
        &d,
        &img,
        &["--sysctl", "net.ipv4.ip_forward=1"],
        "cat /proc/sys/net/ipv4/ip_forward",
    );
    assert_eq!(out.trim(), "1");
    let out = run(&d, &img, &["--shm-size", "16m"], "df -k /dev/shm | tail -1");
    assert!(out.split_whitespace().nth(1) == Some("16384"), "{out}");
    let name = unique("lab");
    d.ok(&[
        "create", "--name", &name, "-l", "a=1", "--label", "b=two", &img, "true",
    ]);
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        "label=b=two",
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(ps.trim(), name);
    let ps = d.ok(&[
        "ps",
        "-a",
        "--filter",
        "label=a=2",
        "--format",
        "{{.Names}}",
    ]);
    assert!(ps.trim().is_empty(), "{ps}");
    d.ok(&["rm", &name]);
    d.assert_clean();
}

/// The static berth-init of the release build (scripts/build-release.sh, which the test
/// script runs first): the init runs inside images without a C library.
fn static_init() -> std::path::PathBuf {
    release_binary("berth-init")
}

/// A binary of the release build, as installed (static).
fn release_binary(name: &str) -> std::path::PathBuf {
    let triple = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .unwrap();
    let triple = String::from_utf8_lossy(&triple.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .unwrap();
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(triple)
        .join("release")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: run scripts/build-release.sh",
        p.display()
    );
    p
}

#[test]
fn init_reaps_and_forwards_signals() {
    if !is_root() {
        return;
    }
    let d = TestDaemon::start(
        &unique("init"),
        serde_json::json!({"init-path": static_init()}),
    );
    let reg = d.registry();
    let img = d.pull_busybox(&reg, &unique("bb"));
    let out = run(
        &d,
        &img,
        &["--init"],
        "cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$",
    );
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap().trim(),
        "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo; echo $$"
    );
    assert_ne!(lines.next().unwrap().trim(), "1");
    // Exit code passed through; a zombie left by an exiting parent is reaped by the init.
    let out = d.docker(&[
        "run",
        "--rm",
        "--init",
        &img,
        "sh",
        "-c",
        "(sleep 0.2 &) ; sleep 0.5; exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7));
    // docker stop's SIGTERM reaches a command that would ignore it as PID 1.
    let name = unique("i");
    d.ok(&[
        "run", "-d", "--init", "--name", &name, &img, "sleep", "1000",
    ]);
    let t = std::time::Instant::now();
    d.ok(&["stop", "-t", "20", &name]);
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "SIGTERM was not forwarded"
    );
    let code = d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]);
    assert_eq!(code.trim(), "143");
    d.ok(&["rm", &name]);
    d.assert_clean();
}

#[test]
fn the_installed_static_binaries_run_containers() {
    if !is_root() {
        return;
    }
    // The static daemon (as installed) with its static shim and init beside it: static glibc
    // cannot load NSS modules, so nothing may look users or groups up through NSS.
    let d = TestDaemon::start_bin(
        &unique("static"),
        serde_json::json!({}),
        &[],
        release_binary("berth"),
    );
    let reg = d.registry();
    let img = d.pull_busybox(&reg, &unique("bb"));
    assert_eq!(
        d.ok(&["run", "--rm", "--init", &img, "echo", "static"]),
        "static\n"
    );
    d.assert_clean();
}

/// Other OCI runtimes, as dockerd's `runtimes` and `--add-runtime`: a container created with
/// `--runtime NAME` is run by that binary through runc's command line (here a wrapper that
/// records its arguments and runs Debian's runc), `runc` is known without being configured,
/// an unknown name is Docker's 400, and `docker info` lists them.
#[test]
fn other_runtimes_run_containers() {
    if !is_root() {
        return;
    }
    if std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: no runc (apt-get install runc)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls");
    let wrapper = dir.path().join("logged-runc");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho \"$*\" >> {}\nexec runc \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let name = unique("rt");
    let d = TestDaemon::start_with(
        &name,
        serde_json::json!({"runtimes": {"logged": {"path": wrapper}}}),
        &["--add-runtime", &format!("flagged={}", wrapper.display())],
    );
    let reg = d.registry();
    let img = d.pull_busybox(&reg, &unique("bb"));
    for rt in ["logged", "flagged"] {
        let out = d.ok(&["run", "--rm", "--runtime", rt, &img, "echo", "from", rt]);
        assert_eq!(out, format!("from {rt}\n"));
    }
    let calls = std::fs::read_to_string(&log).unwrap();
    assert!(
        calls.lines().any(|l| l.contains(" create "))
            && calls.lines().any(|l| l.contains(" start ")),
        "{calls}"
    );
    // Detached, stopped by the daemon through the same runtime.
    let c = unique("rtd");
    d.ok(&[
        "run",
        "-d",
        "--name",
        &c,
        "--runtime",
        "logged",
        &img,
        "sleep",
        "1000",
    ]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Runtime}} {{.State.Running}}",
            &c
        ])
        .trim(),
        "logged true"
    );
    // Every operation on it goes through that runtime.
    assert_eq!(d.ok(&["exec", &c, "echo", "in"]), "in\n");
    d.ok(&["pause", &c]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", &c]).trim(),
        "paused"
    );
    d.ok(&["unpause", &c]);
    let top = d.ok(&["top", &c]);
    assert!(top.contains("sleep 1000"), "{top}");
    d.ok(&["update", "--memory", "64m", "--memory-swap", "-1", &c]);
    let stats = d.ok(&["stats", "--no-stream", "--format", "{{.MemUsage}}", &c]);
    assert!(stats.contains("/ 64MiB"), "{stats}");
    d.ok(&["stop", "-t", "1", &c]);
    d.ok(&["rm", &c]);
    let calls = std::fs::read_to_string(&log).unwrap();
    for op in ["exec", "pause", "resume", "ps", "update", "events", "kill"] {
        assert!(
            calls.lines().any(|l| l.contains(&format!(" {op} "))),
            "{op}: {calls}"
        );
    }
    // runc, known without being configured.
    assert_eq!(
        d.ok(&["run", "--rm", "--runtime", "runc", &img, "echo", "runc"]),
        "runc\n"
    );
    let err = d.fails(&["run", "--rm", "--runtime", "nope", &img, "true"]);
    assert!(
        err.contains("unknown or invalid runtime name: nope"),
        "{err}"
    );
    let info = d.ok(&["info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}}"]);
    for n in ["berth", "runc", "logged", "flagged"] {
        assert!(info.contains(&format!("\"{n}\"")), "{info}");
    }
    assert!(info.trim_end().ends_with(" berth"), "{info}");
    d.assert_clean();
}
