//! What runc's callers rely on, each case a defect found by driving berth-runc from dockerd and
//! containerd: zeros that mean "unset", pause of a created container, `kill --all` after exit,
//! `update` leaving device rules alone, `delete --force` of a missing container, a rootfs
//! reached through symlinks, and the reason a create dies of its memory limit.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

fn is_v2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" /sys/fs/cgroup ") && l.contains(" - cgroup2 "))
}

/// Run a command with a deadline: a hang is a failure, not a stuck suite.
fn run_within(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `update --resources -` with `json` on stdin.
fn update_stdin(ctx: &Ctx, id: &str, json: &serde_json::Value) -> std::process::Output {
    let mut child = ctx
        .berth
        .cmd(&["update", "--resources", "-", id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.to_string().as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn pause_of_a_created_container_is_paused_and_resumable() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle(
        "pause-created",
        &["sh", "-c", "echo started > /tmp/out; sleep 1000"],
    );
    ctx.berth
        .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    ctx.berth.ok(&["pause", &id]);
    assert_eq!(ctx.berth.status(&id), "paused");
    // runc: "cannot start a container in the paused state" (never a hang).
    let out = run_within(ctx.berth.cmd(&["start", &id]), Duration::from_secs(10));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("paused"), "{err}");
    assert_eq!(ctx.berth.status(&id), "paused");
    // Resumed, it is a created container again, and starts.
    ctx.berth.ok(&["resume", &id]);
    assert_eq!(ctx.berth.status(&id), "created");
    let out = run_within(ctx.berth.cmd(&["start", &id]), Duration::from_secs(10));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(ctx.berth.status(&id), "running");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(b.rootfs().join("tmp/out")).unwrap_or_default() != "started\n" {
        assert!(Instant::now() < deadline, "the started container never ran");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A paused created container goes with delete --force too.
    ctx.cleanup(&id, &b);
    let (id, b) = ctx.bundle("pause-created2", &["true"]);
    ctx.berth
        .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    ctx.berth.ok(&["pause", &id]);
    ctx.cleanup(&id, &b);
}

/// What dockerd 20.10 sends for `docker run` without limits: zeros that mean "not set".
#[test]
fn dockerd_zero_resources_mean_unset() {
    let ctx = Ctx::new();
    let out = ctx.output("zeros", &["echo", "ran"], |c| {
        c["linux"]["resources"] = json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"disableOOMKiller": false},
            "cpu": {"shares": 0},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0}
        });
    });
    assert_eq!(out, "ran\n");
}

/// `runc update --resources -` as containerd's CRI plugin and Docker send it: every field it
/// does not change is a zero, and the device list is the spec's own (often just deny-all).
#[test]
fn update_with_zeros_and_devices_changes_only_the_limits() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("upd-dev", &["sleep", "1000"], |c| {
        c["linux"]["resources"]["memory"] = json!({"limit": 100 * 1024 * 1024});
        c["linux"]["resources"]["pids"] = json!({"limit": 40});
    });
    let out = update_stdin(
        &ctx,
        &id,
        &json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 64 * 1024 * 1024, "reservation": 0, "swap": 0,
                       "kernel": 0, "kernelTCP": 0, "swappiness": u64::MAX},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "realtimeRuntime": 0,
                    "realtimePeriod": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0}
        }),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mem = if is_v2() {
        "cat /sys/fs/cgroup/memory.max"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"
    };
    let pids = if is_v2() {
        "cat /sys/fs/cgroup/pids.max"
    } else {
        "cat /sys/fs/cgroup/pids/pids.max"
    };
    assert_eq!(
        ctx.berth.ok(&["exec", &id, "sh", "-c", mem]).trim(),
        (64 * 1024 * 1024).to_string()
    );
    // pids.limit 0 left the limit alone.
    assert_eq!(ctx.berth.ok(&["exec", &id, "sh", "-c", pids]).trim(), "40");
    // The default devices still work: /dev/null, and /dev/ptmx (what `exec -t` opens).
    let out = ctx.berth.ok(&[
        "exec",
        &id,
        "sh",
        "-c",
        "echo x > /dev/null && head -c 1 /dev/zero | wc -c && exec 3<>/dev/ptmx && echo ptmx",
    ]);
    assert_eq!(out, "1\nptmx\n");
    ctx.cleanup(&id, &b);
}

#[test]
fn kill_all_after_exit_succeeds_and_plain_kill_says_not_running() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("killall", &["true"], |_| {});
    ctx.berth.wait_status(&id, "stopped");
    // containerd's shim, after every exit.
    ctx.berth.ok(&["kill", "--all", &id, "9"]);
    ctx.berth.ok(&["kill", "-a", &id, "KILL"]);
    // Without --all: runc's error, which containerd reads as "already finished".
    let err = ctx.berth.fails(&["kill", &id, "9"]);
    assert!(err.contains("container not running"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    ctx.berth.ok(&["delete", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);
    // A container that does not exist is still an error.
    let err = ctx.berth.fails(&["kill", "--all", &id, "9"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn delete_force_of_a_missing_container_succeeds() {
    let ctx = Ctx::new();
    let id = unique("missing");
    let out = ctx.berth.run(&["delete", "--force", &id]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let out = ctx.berth.run(&["delete", &id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}

#[test]
fn rootfs_through_symlinks_is_followed() {
    let ctx = Ctx::new();
    // rootfs is a relative symlink to the real directory.
    let (id, mut b) = ctx.bundle("rootfs-link", &["cat", "/etc/hostname"]);
    std::fs::rename(b.rootfs(), b.dir.join("real-root")).unwrap();
    std::os::unix::fs::symlink("real-root", b.rootfs()).unwrap();
    b.config["root"]["readonly"] = json!(true);
    b.write();
    let (code, out, err) = ctx.run(&id, &b);
    assert_eq!((code, out.as_str()), (0, "busybox\n"), "{err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
    // An absolute root.path through a symlinked directory.
    let (id2, mut b2) = ctx.bundle("rootfs-link2", &["cat", "/etc/hostname"]);
    let link = b2.dir.join("via");
    std::os::unix::fs::symlink(&b2.dir, &link).unwrap();
    b2.config["root"]["path"] = json!(link.join("rootfs"));
    b2.write();
    let (code, out, err) = ctx.run(&id2, &b2);
    assert_eq!((code, out.as_str()), (0, "busybox\n"), "{err}");
    assert_no_leaks(&ctx.root.path, &id2, &b2);
}

#[test]
fn memory_limit_too_low_says_oom_killed() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("oom-create", &["true"]);
    b.config["linux"]["resources"]["memory"] = json!({"limit": 1});
    b.write();
    let (code, _, err) = ctx.run(&id, &b);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.contains("container init was OOM-killed: memory limit 1 byte is too low"),
        "{err}"
    );
    assert_no_leaks(&ctx.root.path, &id, &b);
}
