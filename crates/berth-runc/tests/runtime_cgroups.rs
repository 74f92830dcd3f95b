//! Cgroups through the runtime: limits at create, update, pause/resume, stats and OOM events,
//! the container's view of /sys/fs/cgroup, the device cgroup. Works on v1, hybrid and v2 (the
//! same tests run inside the pure-v2 VM).

mod common;

use std::io::BufRead;

use common::*;
use serde_json::json;

fn is_v2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
}

/// The container's memory limit as its own /sys/fs/cgroup shows it.
fn memory_limit_cmd() -> &'static str {
    if is_v2() {
        "cat /sys/fs/cgroup/memory.max"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    }
}

#[test]
fn resources_at_create_are_visible_inside() {
    let ctx = Ctx::new();
    let cmd = format!(
        "{}; cat /sys/fs/cgroup/{}",
        memory_limit_cmd(),
        if is_v2() { "pids.max" } else { "pids/pids.max" }
    );
    let out = ctx.output("res", &["sh", "-c", &cmd], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 64 * 1024 * 1024});
        c["linux"]["resources"]["pids"] = json!({"limit": 50});
        c["linux"]["resources"]["cpu"] = json!({"shares": 512, "quota": 50000, "period": 100000});
    });
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], (64 * 1024 * 1024).to_string());
    assert_eq!(lines[1], "50");
}

#[test]
fn pids_limit_is_enforced() {
    let ctx = Ctx::new();
    let out = ctx.output(
        "pidslimit",
        &["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do sleep 5 & done 2>&1 | grep -c -i 'resource\\|fork' ; true"],
        |c| {
            c["linux"]["resources"]["pids"] = json!({"limit": 5});
        },
    );
    let failures: u32 = out
        .trim()
        .lines()
        .last()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0);
    assert!(failures > 0, "some forks must fail under pids.max=5: {out}");
}

#[test]
fn device_cgroup_denies_other_devices() {
    let ctx = Ctx::new();
    // /dev/mydisk is a block device node (8:0) the cgroup does not allow.
    let out = ctx.output(
        "devices",
        &["sh", "-c", "head -c1 /dev/mydisk >/dev/null 2>&1; echo disk=$?; head -c1 /dev/zero | wc -c"],
        |c| {
            c["linux"]["devices"] = json!([{"path": "/dev/mydisk", "type": "b", "major": 8, "minor": 0, "fileMode": 0o600}]);
        },
    );
    assert!(
        out.contains("disk=1"),
        "reading a denied device fails: {out}"
    );
    assert!(
        out.contains("\n1\n") || out.ends_with("1\n"),
        "allowed devices work: {out}"
    );
}

#[test]
fn update_pause_resume_stats() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("update", &["sleep", "1000"], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 100 * 1024 * 1024});
    });
    // update with flags
    ctx.berth
        .ok(&["update", "--memory", "80m", "--pids-limit", "30", &id]);
    let inside = ctx.berth.ok(&["exec", &id, "sh", "-c", memory_limit_cmd()]);
    assert_eq!(inside.trim(), (80 * 1024 * 1024).to_string());
    // update with a resources file on stdin
    let mut child = ctx
        .berth
        .cmd(&["update", "--resources", "-", &id])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"memory": {"limit": 70000000}, "pids": {"limit": 20}}"#)
        .unwrap();
    assert!(child.wait().unwrap().success());
    let inside = ctx.berth.ok(&["exec", &id, "sh", "-c", memory_limit_cmd()]);
    let limit: u64 = inside.trim().parse().unwrap();
    assert!((69_000_000..=70_000_000).contains(&limit), "{limit}");

    // stats
    let ev: serde_json::Value =
        serde_json::from_str(&ctx.berth.ok(&["events", "--stats", &id])).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["id"], id.as_str());
    assert!(ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0);
    assert_eq!(ev["data"]["pids"]["current"], 1);

    // pause / resume
    ctx.berth.ok(&["pause", &id]);
    assert_eq!(ctx.berth.status(&id), "paused");
    let pid = ctx.berth.state(&id)["pid"].as_i64().unwrap();
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let state_char = st
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        state_char == "D" || state_char == "S",
        "frozen task state {state_char}"
    );
    let err = ctx.berth.fails(&["exec", &id, "true"]);
    assert!(err.contains("paused"), "{err}");
    let err = ctx.berth.fails(&["pause", &id]);
    assert!(err.contains("paused"), "{err}");
    ctx.berth.ok(&["resume", &id]);
    assert_eq!(ctx.berth.status(&id), "running");
    let err = ctx.berth.fails(&["resume", &id]);
    assert!(err.contains("not paused"), "{err}");
    // A paused container dies on delete --force.
    ctx.berth.ok(&["pause", &id]);
    ctx.cleanup(&id, &b);
}

#[test]
fn events_stream_reports_oom() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start(
        "oom",
        &["sh", "-c", "sleep 1; tail /dev/zero; sleep 1000"],
        |c| {
            c["linux"]["resources"]["memory"] =
                json!({"limit": 16 * 1024 * 1024, "swap": 16 * 1024 * 1024});
        },
    );
    let mut ev = ctx
        .berth
        .cmd(&["events", "--interval", "1s", &id])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reader = std::io::BufReader::new(ev.stdout.take().unwrap());
    let mut saw_oom = false;
    let mut saw_stats = false;
    for line in reader.lines() {
        let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        match v["type"].as_str() {
            Some("oom") => saw_oom = true,
            Some("stats") => saw_stats = true,
            _ => {}
        }
        if saw_oom && saw_stats {
            break;
        }
    }
    ev.kill().unwrap();
    ev.wait().unwrap();
    assert!(saw_oom && saw_stats);
    ctx.cleanup(&id, &b);
}

/// `--systemd-cgroup` is refused with a message that fits the host: systemd absent (this
/// machine, the VMs), or present but the driver not implemented yet. Either way nothing is
/// created and nothing is left.
#[test]
fn systemd_cgroup_is_a_clear_error() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("systemd", &["true"]);
    let out = std::process::Command::new(runc_bin())
        .arg("--systemd-cgroup")
        .arg("--root")
        .arg(&ctx.root.path)
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &id])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let expected = if berth_cgroups::systemd_available() {
        "the systemd cgroup driver is not implemented yet"
    } else {
        "systemd is not running on this host"
    };
    assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(!ctx.root.path.join(&id).exists());
    assert_no_leaks(&ctx.root.path, &id, &b);
}
