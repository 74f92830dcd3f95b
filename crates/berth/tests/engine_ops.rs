//! Container operations through the real docker CLI (and the API with curl) against `berth
//! daemon`: stats, top, update (live, in the cgroup files), cp both ways (running and stopped,
//! ownership, hostile symlinks and tars), export, diff, commit, and their errors.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_testkit::daemon::{TestDaemon, wait_for, with_busybox as daemon};
use berth_testkit::tar::{EntryType, Layer};
use berth_testkit::unique;

/// `curl` on the daemon's socket: (status, body).
fn api(d: &TestDaemon, method: &str, path: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-X", method, "--unix-socket"])
        .arg(d.socket())
        .args(["-o", "-", "-w", "\n%{http_code}"])
        .args(extra)
        .arg(format!("http://localhost{path}"))
        .output()
        .expect("curl");
    let mut body = out.stdout;
    let nl = body.iter().rposition(|b| *b == b'\n').unwrap_or(0);
    let code = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (code, body)
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(b)))
}

fn run_d(d: &TestDaemon, args: &[&str]) -> String {
    let mut a = vec!["run", "-d"];
    a.extend_from_slice(args);
    d.ok(&a).trim().to_string()
}

/// The actions of a container's events so far, one a line.
fn container_events(d: &TestDaemon, name: &str) -> String {
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 2;
    d.ok(&[
        "events",
        "--since",
        "2000-01-01T00:00:00Z",
        "--until",
        &until.to_string(),
        "--filter",
        &format!("container={name}"),
        "--format",
        "{{.Action}}",
    ])
}

fn percent(s: &str) -> f64 {
    s.trim().trim_end_matches('%').parse().unwrap_or(-1.0)
}

#[test]
fn stats_show_cpu_memory_limit_and_pids() {
    let Some((d, _reg, img)) = daemon(&unique("stats")) else {
        return;
    };
    let busy = unique("busy");
    run_d(
        &d,
        &[
            "--name",
            &busy,
            "--memory",
            "64m",
            &img,
            "sh",
            "-c",
            "while :; do :; done",
        ],
    );
    let idle = unique("idle");
    run_d(&d, &["--name", &idle, &img, "sleep", "1000"]);

    // The CLI's own figures: CPU % of a busy loop, the limit, the processes.
    let out = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.MemPerc}}|{{.PIDs}}",
        &busy,
        &idle,
    ]);
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{out}");
    let busy_row = rows.iter().find(|r| r[0] == busy).expect(&out);
    assert!(percent(busy_row[1]) > 20.0, "a busy loop: {out}");
    assert!(busy_row[2].ends_with("/ 64MiB"), "{out}");
    assert!(percent(busy_row[3]) > 0.0, "{out}");
    assert_eq!(busy_row[4], "1", "{out}");
    let idle_row = rows.iter().find(|r| r[0] == idle).expect(&out);
    assert!(percent(idle_row[1]) < 20.0, "{out}");
    // No limit: the host's memory.
    assert!(idle_row[2].contains("GiB"), "{out}");

    // The API's JSON has what the CLI computes from.
    let (code, body) = api(
        &d,
        "GET",
        &format!("/containers/{busy}/stats?stream=false"),
        &[],
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["name"], format!("/{busy}"));
    assert_eq!(v["id"].as_str().unwrap().len(), 64);
    for p in [
        "/cpu_stats/cpu_usage/total_usage",
        "/cpu_stats/cpu_usage/usage_in_kernelmode",
        "/cpu_stats/cpu_usage/usage_in_usermode",
        "/cpu_stats/system_cpu_usage",
        "/cpu_stats/online_cpus",
        "/cpu_stats/throttling_data/periods",
        "/precpu_stats/cpu_usage/total_usage",
        "/precpu_stats/system_cpu_usage",
        "/memory_stats/usage",
        "/memory_stats/limit",
        "/memory_stats/stats",
        "/pids_stats/current",
        "/blkio_stats",
    ] {
        assert!(v.pointer(p).is_some(), "{p} missing: {v}");
    }
    assert_eq!(v["memory_stats"]["limit"], 64 * 1024 * 1024);
    assert!(
        v["cpu_stats"]["cpu_usage"]["total_usage"].as_u64()
            > v["precpu_stats"]["cpu_usage"]["total_usage"].as_u64()
    );
    assert_ne!(v["preread"], "0001-01-01T00:00:00Z");
    // One-shot: at once, no previous reading.
    let (code, body) = api(
        &d,
        "GET",
        &format!("/containers/{busy}/stats?stream=false&one-shot=true"),
        &[],
    );
    assert_eq!(code, 200);
    assert_eq!(json(&body)["preread"], "0001-01-01T00:00:00Z");

    // A stream: one reading a second; it ends when the container stops.
    let short = unique("short");
    run_d(&d, &["--name", &short, &img, "sleep", "3"]);
    let t = Instant::now();
    let (code, body) = api(&d, "GET", &format!("/containers/{short}/stats"), &[]);
    assert_eq!(code, 200);
    let lines: Vec<serde_json::Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(json)
        .collect();
    assert!(lines.len() >= 2, "{} readings", lines.len());
    assert!(t.elapsed() < Duration::from_secs(20));
    assert!(
        lines[1]["precpu_stats"]["system_cpu_usage"]
            .as_u64()
            .unwrap()
            > 0
    );

    // A stopped container: one reading of zeros.
    let (code, body) = api(
        &d,
        "GET",
        &format!("/containers/{short}/stats?stream=false"),
        &[],
    );
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(v["read"], "0001-01-01T00:00:00Z");
    assert_eq!(v["memory_stats"], serde_json::json!({}));
    let out = d.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.CPUPerc}} {{.PIDs}}",
        &short,
    ]);
    assert_eq!(out.trim(), "0.00% 0");

    let err = d.fails(&["stats", "--no-stream", "nosuchcontainer"]);
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
    d.ok(&["rm", "-f", &busy, &idle, &short]);
    d.assert_clean();
}

/// A process that outgrows the memory limit is killed by the kernel: the container exits 137,
/// inspect says OOMKilled, and the events have `oom` before `die` (cgroup v1's OOM counter, or
/// v2's memory.events in the qemu suites).
#[test]
fn an_oom_kill_is_reported() {
    let Some((d, _reg, img)) = daemon(&unique("oom")) else {
        return;
    };
    let name = unique("oom");
    // dd's 64 MiB buffer, touched as it reads, cannot fit in 16 MiB (swap is limited with it).
    let out = d.docker(&[
        "run",
        "--name",
        &name,
        "--memory",
        "16m",
        "--memory-swap",
        "16m",
        &img,
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let st = d.ok(&[
        "inspect",
        "-f",
        "{{.State.OOMKilled}} {{.State.ExitCode}} {{.State.Status}}",
        &name,
    ]);
    assert_eq!(st.trim(), "true 137 exited");
    let events = container_events(&d, &name);
    let actions: Vec<&str> = events.lines().collect();
    let oom = actions.iter().position(|a| *a == "oom");
    let die = actions.iter().position(|a| *a == "die");
    assert!(
        oom.is_some() && die.is_some() && oom < die,
        "events: {actions:?}"
    );
    // A container that exits by itself within its limit is not marked.
    let ok = unique("fits");
    d.ok(&["run", "--name", &ok, "--memory", "16m", &img, "true"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.OOMKilled}}", &ok]).trim(),
        "false"
    );
    d.ok(&["rm", &name, &ok]);
    d.assert_clean();
}

#[test]
fn top_lists_the_containers_processes() {
    let Some((d, _reg, img)) = daemon(&unique("top")) else {
        return;
    };
    let name = unique("top");
    run_d(
        &d,
        &[
            "--name",
            &name,
            &img,
            "sh",
            "-c",
            "sleep 4242 & sleep 4343; wait",
        ],
    );
    wait_for("both sleeps", || {
        let out = d.ok(&["top", &name]);
        out.contains("sleep 4242") && out.contains("sleep 4343")
    });
    let out = d.ok(&["top", &name]);
    assert!(out.starts_with("UID"), "{out}");
    assert_eq!(out.lines().count(), 4, "header, sh and two sleeps: {out}");
    // ps arguments, and the JSON shape.
    let (code, body) = api(
        &d,
        "GET",
        &format!("/containers/{name}/top?ps_args=-o%20pid,args"),
        &[],
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let v = json(&body);
    assert_eq!(v["Titles"], serde_json::json!(["PID", "COMMAND"]));
    let procs = v["Processes"].as_array().unwrap();
    assert_eq!(procs.len(), 3, "{v}");
    assert!(procs.iter().any(|p| p[1] == "sleep 4242"), "{v}");
    // An event.
    let events = container_events(&d, &name);
    assert!(events.lines().any(|l| l == "top"), "{events}");
    d.ok(&["stop", "-t", "1", &name]);
    let err = d.fails(&["top", &name]);
    assert!(err.contains("is not running"), "{err}");
    let err = d.fails(&["top", "nosuchcontainer"]);
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
    d.ok(&["rm", &name]);
    d.assert_clean();
}

/// A container's cgroup file on this v1/hybrid host (or v2).
fn cgroup_file(d: &TestDaemon, id: &str, v1: (&str, &str), v2: &str) -> String {
    let parent = d.cgroup.path.trim_start_matches('/');
    let p1 = Path::new("/sys/fs/cgroup")
        .join(v1.0)
        .join(parent)
        .join(id)
        .join(v1.1);
    let p = if p1.exists() {
        p1
    } else {
        Path::new("/sys/fs/cgroup").join(parent).join(id).join(v2)
    };
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

#[test]
fn update_applies_limits_live_and_records_them() {
    let Some((d, _reg, img)) = daemon(&unique("update")) else {
        return;
    };
    let name = unique("upd");
    let id = run_d(
        &d,
        &["--name", &name, "--memory", "64m", &img, "sleep", "1000"],
    );
    let mem =
        |d: &TestDaemon| cgroup_file(d, &id, ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(mem(&d), (64u64 << 20).to_string());
    // Docker records twice the memory as memory+swap; where the kernel accounts no swap (no
    // swap files in the cgroup: the qemu suites' kernel), unlimited, with Docker's warning.
    let swap = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
        || Path::new("/sys/fs/cgroup")
            .join(d.cgroup.path.trim_start_matches('/'))
            .join(&id)
            .join("memory.swap.max")
            .exists();
    let recorded = if swap { "134217728" } else { "-1" };
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.MemorySwap}}", &name])
            .trim(),
        recorded
    );
    if !swap {
        let nsw = unique("nsw");
        let out = d.docker(&["create", "--memory", "64m", "--name", &nsw, &img, "true"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && err.contains("does not support swap limit capabilities"),
            "{err}"
        );
        d.ok(&["rm", &nsw]);
    }
    // Within the swap limit Docker recorded (twice the memory): no --memory-swap needed.
    d.ok(&[
        "update",
        "--memory",
        "100m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        &name,
    ]);
    assert_eq!(mem(&d), (100u64 << 20).to_string());
    let quota = cgroup_file(&d, &id, ("cpu", "cpu.cfs_quota_us"), "cpu.max");
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    assert_eq!(cgroup_file(&d, &id, ("pids", "pids.max"), "pids.max"), "50");
    let hc = d.ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}}",
        &name,
    ]);
    assert_eq!(hc.trim(), format!("104857600 {recorded} 500000000 50"));
    if swap {
        // Past the recorded swap limit, dockerd's words.
        let err = d.fails(&["update", "--memory", "512m", &name]);
        assert!(
            err.contains("Memory limit should be smaller than already set memoryswap limit"),
            "{err}"
        );
    }
    d.ok(&["update", "--memory", "512m", "--memory-swap", "1g", &name]);
    assert_eq!(mem(&d), (512u64 << 20).to_string());
    // What create refuses, update refuses.
    let err = d.fails(&["update", "--memory", "1m", "--memory-swap", "2m", &name]);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    // Restart policy, recorded.
    d.ok(&["update", "--restart", "on-failure:3", &name]);
    let rp = d.ok(&[
        "inspect",
        "--format",
        "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
        &name,
    ]);
    assert_eq!(rp.trim(), "on-failure:3");
    let events = container_events(&d, &name);
    assert!(events.lines().any(|l| l == "update"), "{events}");

    // A stopped container: recorded, applied at its next start.
    d.ok(&["stop", "-t", "1", &name]);
    d.ok(&["update", "--pids-limit", "33", &name]);
    d.ok(&["start", &name]);
    assert_eq!(cgroup_file(&d, &id, ("pids", "pids.max"), "pids.max"), "33");
    assert_eq!(mem(&d), (512u64 << 20).to_string());
    d.ok(&["rm", "-f", &name]);

    // --rm and a restart policy: refused as Docker refuses it.
    let rm = unique("rm");
    run_d(&d, &["--rm", "--name", &rm, &img, "sleep", "1000"]);
    let err = d.fails(&["update", "--restart", "always", &rm]);
    assert!(
        err.contains("Restart policy cannot be updated because AutoRemove is enabled"),
        "{err}"
    );
    d.ok(&["rm", "-f", &rm]);
    let err = d.fails(&["update", "--memory", "64m", "nosuchcontainer"]);
    assert!(err.contains("No such container: nosuchcontainer"), "{err}");
    d.assert_clean();
}

/// `ls -ln`-like owner and content of a file in a container (through `docker cp` out).
fn tar_listing(d: &TestDaemon, src: &str) -> String {
    let mut cp = d
        .docker_cmd(&["cp", src, "-"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let tar = Command::new("tar")
        .args(["-tvn", "--numeric-owner", "-f", "-"])
        .stdin(cp.stdout.take().unwrap())
        .output()
        .unwrap();
    cp.wait().unwrap();
    String::from_utf8_lossy(&tar.stdout).into_owned()
}

fn host_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "alpha\n").unwrap();
    std::fs::write(dir.join("sub/b.txt"), "beta\n").unwrap();
    for p in ["", "a.txt", "sub", "sub/b.txt"] {
        std::os::unix::fs::chown(dir.join(p), Some(1234), Some(5678)).unwrap();
    }
}

fn cp_round_trip(d: &TestDaemon, name: &str, tmp: &Path, running: bool) {
    let src = tmp.join(format!("src-{running}"));
    host_tree(&src);
    // In: a directory and a file, owners kept with -a.
    d.ok(&[
        "cp",
        "-a",
        src.to_str().unwrap(),
        &format!("{name}:/tmp/tree"),
    ]);
    d.ok(&[
        "cp",
        "-a",
        src.join("a.txt").to_str().unwrap(),
        &format!("{name}:/tmp/"),
    ]);
    d.ok(&[
        "cp",
        src.join("a.txt").to_str().unwrap(),
        &format!("{name}:/tmp/renamed.txt"),
    ]);
    let list = tar_listing(d, &format!("{name}:/tmp/tree"));
    assert!(
        list.contains("1234/5678") && list.contains("tree/sub/b.txt"),
        "{list}"
    );
    let list = tar_listing(d, &format!("{name}:/tmp/a.txt"));
    assert!(
        list.contains("1234/5678") && list.contains("a.txt"),
        "{list}"
    );
    if running {
        let out = d.ok(&[
            "exec",
            name,
            "sh",
            "-c",
            "cat /tmp/tree/sub/b.txt /tmp/a.txt /tmp/renamed.txt; stat -c %u:%g /tmp/tree/a.txt",
        ]);
        assert_eq!(out, "beta\nalpha\nalpha\n1234:5678\n");
    }
    // Out: a file and a directory.
    let dst = tmp.join(format!("dst-{running}"));
    std::fs::create_dir_all(&dst).unwrap();
    d.ok(&["cp", &format!("{name}:/etc/passwd"), dst.to_str().unwrap()]);
    assert!(
        std::fs::read_to_string(dst.join("passwd"))
            .unwrap()
            .starts_with("root:")
    );
    d.ok(&[
        "cp",
        &format!("{name}:/tmp/tree"),
        dst.join("tree2").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(dst.join("tree2/sub/b.txt")).unwrap(),
        "beta\n"
    );
    // Contents only (`/.`).
    d.ok(&[
        "cp",
        &format!("{name}:/tmp/tree/."),
        dst.join("flat").to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(dst.join("flat/a.txt")).unwrap(),
        "alpha\n"
    );
    // Missing paths: Docker's message.
    let err = d.fails(&["cp", &format!("{name}:/nope"), dst.to_str().unwrap()]);
    assert!(
        err.contains(&format!(
            "Could not find the file /nope in container {name}"
        )),
        "{err}"
    );
    let err = d.fails(&[
        "cp",
        src.join("a.txt").to_str().unwrap(),
        &format!("{name}:/nodir/x/"),
    ]);
    assert!(!err.is_empty());
}

#[test]
fn cp_both_ways_running_and_stopped() {
    let Some((d, _reg, img)) = daemon(&unique("cp")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let running = unique("cpr");
    run_d(&d, &["--name", &running, &img, "sleep", "1000"]);
    cp_round_trip(&d, &running, tmp.path(), true);
    let stopped = unique("cps");
    d.ok(&[
        "create",
        "--name",
        &stopped,
        &img,
        "cat",
        "/tmp/tree/sub/b.txt",
    ]);
    cp_round_trip(&d, &stopped, tmp.path(), false);
    // What was copied into the stopped container is there when it runs.
    let out = d.ok(&["start", "-a", &stopped]);
    assert_eq!(out, "beta\n");
    // Through the API: HEAD's stat header.
    let (code, _) = api(
        &d,
        "HEAD",
        &format!("/containers/{running}/archive?path=/etc/passwd"),
        &["-I"],
    );
    assert_eq!(code, 200);
    // The kernel's file systems the container mounted are not its files: their mount points
    // are empty directories, as in Docker's view of a root.
    let err = d.fails(&[
        "cp",
        &format!("{running}:/proc/1/status"),
        tmp.path().to_str().unwrap(),
    ]);
    assert!(
        err.contains("Could not find the file /proc/1/status"),
        "{err}"
    );
    let list = tar_listing(&d, &format!("{running}:/sys"));
    assert_eq!(list.lines().count(), 1, "{list}");
    let file = tmp.path().join("src-true/a.txt");
    for dest in ["/proc/", "/sys/fs/"] {
        let err = d.fails(&["cp", file.to_str().unwrap(), &format!("{running}:{dest}")]);
        assert!(!err.is_empty());
    }
    // -a with a container user: the files are that user's (from the container's passwd).
    let user = unique("user");
    run_d(
        &d,
        &["--name", &user, "--user", "nobody", &img, "sleep", "1000"],
    );
    let file = tmp.path().join("src-true/a.txt");
    d.ok(&["cp", "-a", file.to_str().unwrap(), &format!("{user}:/tmp/")]);
    let owner = d.ok(&["exec", &user, "stat", "-c", "%u:%g", "/tmp/a.txt"]);
    assert_eq!(owner.trim(), "65534:65534");
    // A read-only root takes nothing.
    let ro = unique("ro");
    run_d(&d, &["--name", &ro, "--read-only", &img, "sleep", "1000"]);
    let err = d.fails(&["cp", file.to_str().unwrap(), &format!("{ro}:/tmp/")]);
    assert!(
        err.contains("container rootfs is marked read-only"),
        "{err}"
    );
    d.ok(&["rm", "-f", &user, &ro]);
    let err = d.fails(&[
        "cp",
        "nosuchcontainer:/etc/passwd",
        tmp.path().to_str().unwrap(),
    ]);
    assert!(err.contains("No such container"), "{err}");
    d.ok(&["rm", "-f", &running, &stopped]);
    d.assert_clean();
}

/// A symlink the container planted, pointing at the host's /etc/shadow (or out of its root
/// with `..`), yields the container's file or an error: never the host's.
#[test]
fn cp_out_through_a_planted_symlink_never_reads_the_host() {
    let Some((d, _reg, img)) = daemon(&unique("cpesc")) else {
        return;
    };
    let host_shadow = std::fs::read("/etc/shadow").unwrap_or_default();
    let tmp = tempfile::tempdir().unwrap();
    let name = unique("evil");
    let plant = "echo CONTAINER-SHADOW > /etc/shadow; \
                 ln -s /etc/shadow /tmp/abs; \
                 ln -s ../../../../../../../../etc/shadow /tmp/rel; \
                 ln -s / /tmp/root; ln -s ../../../../.. /tmp/up; \
                 mkdir -p /tmp/dir && ln -s /etc /tmp/dir/etc";
    run_d(
        &d,
        &[
            "--name",
            &name,
            &img,
            "sh",
            "-c",
            &format!("{plant}; sleep 1000"),
        ],
    );
    wait_for("the links", || {
        d.docker(&["exec", &name, "test", "-L", "/tmp/dir/etc"])
            .status
            .success()
    });
    for state in ["running", "stopped"] {
        if state == "stopped" {
            d.ok(&["stop", "-t", "1", &name]);
        }
        let (mut n, mut copied) = (0, 0);
        for src in [
            "/tmp/abs/",
            "/tmp/rel/",
            "/tmp/root/etc/shadow",
            "/tmp/up/etc/shadow",
            "/tmp/up/../../etc/shadow",
            "/tmp/dir/etc/shadow",
        ] {
            n += 1;
            let dst = tmp.path().join(format!("{state}-{n}"));
            let out = d.docker(&["cp", &format!("{name}:{src}"), dst.to_str().unwrap()]);
            if out.status.success() {
                let got = std::fs::read(&dst).unwrap();
                assert_eq!(got, b"CONTAINER-SHADOW\n", "{state} {src}");
                assert_ne!(got, host_shadow);
                copied += 1;
            }
        }
        assert!(copied >= 4, "{state}: only {copied} copies worked");
        // -L follows the link inside the container.
        let dst = tmp.path().join(format!("{state}-follow"));
        d.ok(&[
            "cp",
            "-L",
            &format!("{name}:/tmp/abs"),
            dst.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read(&dst).unwrap(), b"CONTAINER-SHADOW\n");
        // Without -L the link is copied as a link (to the container's path).
        let list = tar_listing(&d, &format!("{name}:/tmp/abs"));
        assert!(list.contains("abs -> /etc/shadow"), "{list}");
        // The whole /tmp: links stay links, nothing of the host comes along.
        // (The CLI refuses to unpack a link pointing out of its destination, as with
        // dockerd, so the tar is read raw.)
        let list = tar_listing(&d, &format!("{name}:/tmp"));
        for want in [
            "tmp/root -> /",
            "tmp/rel -> ../../../../../../../../etc/shadow",
            "tmp/dir/etc -> /etc",
        ] {
            assert!(list.contains(want), "{want}: {list}");
        }
        assert!(!list.contains("tmp/dir/etc/"), "{list}");
        // The stat the CLI reads for -L names the target inside the container.
        let (code, body) = api(
            &d,
            "HEAD",
            &format!("/containers/{name}/archive?path=/tmp/rel"),
            &["-I"],
        );
        assert_eq!(code, 200);
        let headers = String::from_utf8_lossy(&body).into_owned();
        let stat = headers
            .lines()
            .find_map(|l| {
                l.strip_prefix("X-Docker-Container-Path-Stat: ")
                    .or(l.strip_prefix("x-docker-container-path-stat: "))
            })
            .unwrap_or_else(|| panic!("{headers}"));
        let stat = base64_decode(stat.trim());
        let v = json(&stat);
        assert_eq!(v["linkTarget"], "/etc/shadow", "{v}");
        assert_eq!(v["name"], "rel");
        assert_eq!(v["mode"].as_u64().unwrap() & (1 << 27), 1 << 27);
    }
    d.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

fn base64_decode(s: &str) -> Vec<u8> {
    let out = Command::new("base64")
        .arg("-d")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(s.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    out.stdout
}

/// A tar with `..` or through a symlink must not write outside the destination.
#[test]
fn cp_in_of_a_hostile_tar_writes_nothing_outside() {
    let Some((d, _reg, img)) = daemon(&unique("cpin")) else {
        return;
    };
    let name = unique("victim");
    run_d(
        &d,
        &[
            "--name",
            &name,
            &img,
            "sh",
            "-c",
            "ln -s / /tmp/hostroot; sleep 1000",
        ],
    );
    wait_for("the link", || {
        d.docker(&["exec", &name, "test", "-L", "/tmp/hostroot"])
            .status
            .success()
    });
    let marker = format!("berth-escape-{}", unique("m"));
    let host_target = PathBuf::from("/tmp").join(&marker);
    let tars = [
        Layer::new()
            .raw(
                format!("../../../../../../tmp/{marker}").as_bytes(),
                EntryType::Regular,
                b"",
                b"pwned\n",
            )
            .tar(),
        Layer::new()
            .link(EntryType::Symlink, "esc", "/")
            .file(&format!("esc/tmp/{marker}"), 0o644, b"pwned\n")
            .tar(),
        Layer::new()
            .link(EntryType::Symlink, "esc2", "../../../../../../../../tmp")
            .file(&format!("esc2/{marker}"), 0o644, b"pwned\n")
            .tar(),
        Layer::new()
            .raw(
                format!("/tmp/{marker}").as_bytes(),
                EntryType::Regular,
                b"",
                b"pwned\n",
            )
            .tar(),
        // Through the container's own link (to its root): refused, not followed.
        Layer::new()
            .file(&format!("hostroot/tmp/{marker}"), 0o644, b"pwned\n")
            .tar(),
    ];
    for dest in ["/tmp", "/tmp/hostroot/tmp"] {
        for (i, tar) in tars.iter().enumerate() {
            let mut child = d
                .docker_cmd(&["cp", "-", &format!("{name}:{dest}")])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(tar).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(!out.status.success(), "tar {i} into {dest} was accepted");
            assert!(
                !host_target.exists(),
                "tar {i} wrote {}",
                host_target.display()
            );
        }
    }
    // Nothing landed in the container's /tmp either, outside of what was asked.
    let ls = d.ok(&[
        "exec",
        &name,
        "find",
        "/tmp",
        "-name",
        &format!("{marker}*"),
    ]);
    assert_eq!(ls.trim(), "", "{ls}");
    // The data root holds no stray file either.
    let found = Command::new("find")
        .arg(d.data_root())
        .args(["-name", &marker])
        .output()
        .unwrap();
    assert!(
        found.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
    // A sane tar through the same path works.
    let tar = Layer::new().file(&marker, 0o644, b"fine\n").tar();
    let mut child = d
        .docker_cmd(&["cp", "-", &format!("{name}:/tmp/hostroot/tmp")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        d.ok(&["exec", &name, "cat", &format!("/tmp/{marker}")]),
        "fine\n"
    );
    assert!(!host_target.exists());
    // A directory is not replaced by a file.
    let tar = Layer::new().file("tmp", 0o644, b"x\n").tar();
    let mut child = d
        .docker_cmd(&["cp", "-", &format!("{name}:/")])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&tar).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot overwrite directory"),
        "{out:?}"
    );
    d.ok(&["rm", "-f", &name]);
    d.assert_clean();
}

#[test]
fn export_diff_and_commit() {
    let Some((d, _reg, img)) = daemon(&unique("commit")) else {
        return;
    };
    let name = unique("chg");
    d.ok(&[
        "run",
        "--name",
        &name,
        "-e",
        "GREETING=hello world",
        &img,
        "sh",
        "-c",
        "echo committed > /hello; touch /tmp/new; rm /etc/group; echo x >> /etc/passwd",
    ]);
    // diff: Docker's letters, none of the engine's own mount points.
    let diff = d.ok(&["diff", &name]);
    eprintln!("docker diff:\n{diff}");
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "A /hello",
        "C /tmp",
        "A /tmp/new",
        "C /etc",
        "D /etc/group",
        "C /etc/passwd",
    ] {
        assert!(lines.contains(&want), "{want} missing: {diff}");
    }
    for hidden in [
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
        "/proc",
        "/sys",
        "/dev",
    ] {
        assert!(
            !lines.iter().any(|l| l.ends_with(&format!(" {hidden}"))),
            "{hidden}: {diff}"
        );
    }
    let (code, body) = api(&d, "GET", &format!("/containers/{name}/changes"), &[]);
    assert_eq!(code, 200);
    let v = json(&body);
    assert!(
        v.as_array()
            .unwrap()
            .contains(&serde_json::json!({"Path": "/etc/group", "Kind": 2})),
        "{v}"
    );

    // export: the whole root filesystem.
    let tmp = tempfile::tempdir().unwrap();
    let tarfile = tmp.path().join("export.tar");
    d.ok(&["export", "-o", tarfile.to_str().unwrap(), &name]);
    let list = Command::new("tar")
        .arg("-tf")
        .arg(&tarfile)
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    for want in ["bin/busybox", "bin/sh", "etc/passwd", "hello", "tmp/new"] {
        assert!(
            list.lines().any(|l| l.trim_start_matches("./") == want),
            "{want}: {list}"
        );
    }
    assert!(
        !list
            .lines()
            .any(|l| l.trim_start_matches("./") == "etc/group")
    );

    // commit: the change, the container's config, the request's changes.
    let repo = unique("committed");
    let id = d.ok(&[
        "commit",
        "-m",
        "a message",
        "-a",
        "someone",
        &name,
        &format!("{repo}:v1"),
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let cmd = d.ok(&[
        "inspect",
        "--format",
        "{{json .Config.Cmd}}|{{.Comment}}|{{.Author}}",
        &format!("{repo}:v1"),
    ]);
    assert_eq!(
        cmd.trim(),
        r#"["sh","-c","echo committed > /hello; touch /tmp/new; rm /etc/group; echo x >> /etc/passwd"]|a message|someone"#
    );
    let out = d.ok(&[
        "run",
        "--rm",
        &format!("{repo}:v1"),
        "sh",
        "-c",
        "cat /hello; echo $GREETING; test -e /etc/group || echo gone",
    ]);
    assert_eq!(out, "committed\nhello world\ngone\n");
    d.ok(&[
        "commit",
        "--change",
        "CMD [\"cat\", \"/hello\"]",
        "--change",
        "ENV EXTRA=1",
        &name,
        &format!("{repo}:v2"),
    ]);
    assert_eq!(d.ok(&["run", "--rm", &format!("{repo}:v2")]), "committed\n");
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            &format!("{repo}:v2"),
            "sh",
            "-c",
            "echo $EXTRA"
        ]),
        "1\n"
    );
    // A running container is paused for its commit and goes on running.
    let live = unique("live");
    run_d(
        &d,
        &[
            "--name",
            &live,
            &img,
            "sh",
            "-c",
            "echo live > /live; sleep 1000",
        ],
    );
    wait_for("the file", || {
        d.docker(&["exec", &live, "test", "-e", "/live"])
            .status
            .success()
    });
    // A running container's diff: only what it did (its mount points are not changes).
    assert_eq!(d.ok(&["diff", &live]), "A /live\n");
    d.ok(&["commit", &live, &format!("{repo}:live")]);
    assert_eq!(
        d.ok(&["inspect", "--format", "{{.State.Status}}", &live])
            .trim(),
        "running"
    );
    assert_eq!(
        d.ok(&["run", "--rm", &format!("{repo}:live"), "cat", "/live"]),
        "live\n"
    );
    let events = container_events(&d, &name);
    for want in ["export", "commit"] {
        assert!(events.lines().any(|l| l == want), "{want}: {events}");
    }
    // Errors.
    for args in [
        vec!["diff", "nosuchcontainer"],
        vec!["export", "nosuchcontainer"],
        vec!["commit", "nosuchcontainer"],
    ] {
        let err = d.fails(&args);
        assert!(
            err.contains("No such container: nosuchcontainer"),
            "{args:?}: {err}"
        );
    }
    let err = d.fails(&["commit", "--change", "RUN true", &name]);
    assert!(err.contains("RUN"), "{err}");
    d.ok(&["rm", "-f", &name, &live]);
    d.assert_clean();
}

/// `docker cp` through a container's volumes and bind mounts, running (its own view) and
/// stopped (the mounts' sources).
#[test]
fn cp_through_volumes_and_binds() {
    let Some((d, _reg, img)) = daemon(&unique("cpvol")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bind = tmp.path().join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    std::fs::write(bind.join("from-host"), "bound\n").unwrap();
    let vol = unique("vol");
    let name = unique("mounts");
    run_d(
        &d,
        &[
            "--name",
            &name,
            "-v",
            &format!("{vol}:/data"),
            "-v",
            &format!("{}:/bind", bind.display()),
            &img,
            "sleep",
            "1000",
        ],
    );
    let mounts = d.ok(&["inspect", "--format", "{{len .Mounts}}", &name]);
    if mounts.trim() != "2" {
        eprintln!("skipped: this engine has no volumes or bind mounts yet");
        d.ok(&["rm", "-f", &name]);
        let _ = d.docker(&["volume", "rm", &vol]);
        d.assert_clean();
        return;
    }
    let file = tmp.path().join("file");
    std::fs::write(&file, "copied\n").unwrap();
    for state in ["running", "stopped"] {
        if state == "stopped" {
            d.ok(&["stop", "-t", "1", &name]);
        }
        let target = format!("in-{state}");
        d.ok(&[
            "cp",
            file.to_str().unwrap(),
            &format!("{name}:/data/{target}"),
        ]);
        d.ok(&[
            "cp",
            file.to_str().unwrap(),
            &format!("{name}:/bind/{target}"),
        ]);
        assert_eq!(
            std::fs::read_to_string(bind.join(&target)).unwrap(),
            "copied\n"
        );
        let out = tmp.path().join(format!("out-{state}"));
        d.ok(&[
            "cp",
            &format!("{name}:/bind/from-host"),
            out.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "bound\n");
        let out = tmp.path().join(format!("vol-{state}"));
        d.ok(&[
            "cp",
            &format!("{name}:/data/{target}"),
            out.to_str().unwrap(),
        ]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "copied\n");
    }
    // What was copied into the volume while stopped is in the container's view.
    d.ok(&["start", &name]);
    let out = d.ok(&["exec", &name, "cat", "/data/in-stopped", "/data/in-running"]);
    assert_eq!(out, "copied\ncopied\n");
    d.ok(&["rm", "-f", "-v", &name]);
    let _ = d.docker(&["volume", "rm", &vol]);
    d.assert_clean();
}
