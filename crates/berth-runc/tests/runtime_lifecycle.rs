//! The runtime's lifecycle through its command line: create, start, state, kill, delete, run,
//! list, ps, and the errors for bad input. Real containers, as root.

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

#[test]
fn create_start_kill_delete() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("life", &["sleep", "1000"]);
    let pidfile = b.dir.join("pid");
    ctx.berth.ok(&[
        "create",
        "--bundle",
        b.dir.to_str().unwrap(),
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
    ]);
    let st = ctx.berth.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["bundle"], b.dir.to_str().unwrap());
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0);
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    // The init waits for start: it has not exec'd sleep yet.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sleep");

    ctx.berth.ok(&["start", &id]);
    assert_eq!(ctx.berth.status(&id), "running");
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_eq!(comm.trim(), "sleep");

    // Start twice: a clear error.
    let err = ctx.berth.fails(&["start", &id]);
    assert!(err.contains("not created"), "{err}");
    // Delete while running without --force: refused.
    let err = ctx.berth.fails(&["delete", &id]);
    assert!(err.contains("running"), "{err}");

    ctx.berth.ok(&["kill", &id, "KILL"]);
    ctx.berth.wait_status(&id, "stopped");
    assert_eq!(ctx.berth.state(&id)["pid"], 0);
    let err = ctx.berth.fails(&["kill", &id, "TERM"]);
    assert!(err.contains("not running"), "{err}");
    ctx.berth.ok(&["delete", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);
    let err = ctx.berth.fails(&["state", &id]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn run_returns_exit_code_and_output() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("exit", &["sh", "-c", "echo out; echo err >&2; exit 7"]);
    let (code, out, err) = ctx.run(&id, &b);
    assert_eq!(code, 7);
    assert_eq!(out, "out\n");
    assert!(err.contains("err"), "{err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn run_reports_death_by_signal() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("sig", &["sh", "-c", "kill -9 $$"]);
    // Without a pid namespace of its own: a namespace's init cannot SIGKILL itself.
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    b.write();
    let (code, _, _) = ctx.run(&id, &b);
    assert_eq!(code, 128 + 9);
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn run_detached_then_force_delete() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("detach", &["sleep", "1000"]);
    ctx.berth
        .ok(&["run", "-d", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert_eq!(ctx.berth.status(&id), "running");
    ctx.cleanup(&id, &b);
}

#[test]
fn delete_created_container_without_force() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("delcreated", &["true"]);
    ctx.berth
        .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    ctx.berth.ok(&["delete", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn start_of_program_that_does_not_exist_fails_at_create() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("noprog", &["/no/such/program"]);
    let err = ctx
        .berth
        .fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(err.contains("/no/such/program"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn kill_by_name_and_number_and_all() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start(
        "kill",
        &["sh", "-c", "trap 'exit 42' USR1; sleep 1000 & wait"],
        |_| {},
    );
    ctx.berth.ok(&["kill", &id, "USR1"]);
    ctx.berth.wait_status(&id, "stopped");
    ctx.cleanup(&id, &b);

    let (id, b) = ctx.start(
        "killall",
        &["sh", "-c", "sleep 1000 & sleep 1000 & wait"],
        |_| {},
    );
    std::thread::sleep(Duration::from_millis(100));
    let pids: Vec<i64> =
        serde_json::from_str(&ctx.berth.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 3, "{pids:?}");
    ctx.berth.ok(&["kill", "--all", &id, "9"]);
    ctx.berth.wait_status(&id, "stopped");
    ctx.cleanup(&id, &b);

    let err = ctx.berth.fails(&["kill", "nonexistent-id", "KILL"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn list_table_and_json() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("list", &["sleep", "1000"], |_| {});
    let table = ctx.berth.ok(&["list"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id) && row.contains("running"), "{row}");
    let list: serde_json::Value =
        serde_json::from_str(&ctx.berth.ok(&["list", "--format", "json"])).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["status"], "running");
    assert_eq!(ctx.berth.ok(&["list", "-q"]).trim(), id);
    // ps in table form keeps ps(1)'s header.
    let ps = ctx.berth.ok(&["ps", &id]);
    assert!(ps.lines().next().unwrap().contains("PID"), "{ps}");
    assert!(ps.contains("sleep 1000"), "{ps}");
    ctx.cleanup(&id, &b);
}

#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    let ctx = Ctx::new();
    let check = |id: &str, b: &Bundle, needle: &str| {
        let out = ctx
            .berth
            .run(&["create", "--bundle", b.dir.to_str().unwrap(), id]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "expected {needle:?} in {err:?}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err:?}");
        assert!(!err.contains("panicked"), "{err}");
        assert_no_leaks(&ctx.root.path, id, b);
    };
    // Malformed config.json.
    let (id, b) = ctx.bundle("bad-json", &["true"]);
    std::fs::write(b.dir.join("config.json"), "{ not json").unwrap();
    check(&id, &b, "malformed config");
    // Missing config.json.
    let (id, b) = ctx.bundle("no-config", &["true"]);
    std::fs::remove_file(b.dir.join("config.json")).unwrap();
    check(&id, &b, "config.json");
    // Unsupported ociVersion.
    let (id, mut b) = ctx.bundle("version", &["true"]);
    b.config["ociVersion"] = json!("2.0.0");
    b.write();
    check(&id, &b, "unsupported ociVersion");
    // Missing rootfs.
    let (id, b) = ctx.bundle("no-rootfs", &["true"]);
    std::fs::remove_dir_all(b.rootfs()).unwrap();
    check(&id, &b, "root.path");
    // Invalid id mappings.
    let (id, mut b) = ctx.bundle("maps", &["true"]);
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 0}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 10}]);
    b.write();
    check(&id, &b, "size must be positive");
    // Unknown capability.
    let (id, mut b) = ctx.bundle("cap", &["true"]);
    b.config["process"]["capabilities"]["bounding"] = json!(["CAP_NOT_A_CAP"]);
    b.write();
    check(&id, &b, "malformed config");
    // An id with path characters.
    let (_, b) = ctx.bundle("badid", &["true"]);
    let err = ctx
        .berth
        .fails(&["create", "--bundle", b.dir.to_str().unwrap(), "../escape"]);
    assert!(err.contains("invalid container id"), "{err}");
    assert!(!ctx.root.path.parent().unwrap().join("escape").exists());
    // A duplicate id.
    let (id, b) = ctx.bundle("dup", &["sleep", "100"]);
    ctx.berth
        .ok(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    let err = ctx
        .berth
        .fails(&["create", "--bundle", b.dir.to_str().unwrap(), &id]);
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(ctx.berth.status(&id), "created");
    ctx.berth.ok(&["delete", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn create_killed_midway_is_removed_by_force_delete() {
    let ctx = Ctx::new();
    let (id, mut b) = ctx.bundle("killed", &["true"]);
    // A createRuntime hook that hangs: the create is in progress while it sleeps.
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "97"]}]});
    b.write();
    let mut child = ctx
        .berth
        .cmd(&["create", "--bundle", b.dir.to_str().unwrap(), &id])
        .spawn()
        .unwrap();
    ctx.berth.wait_status(&id, "creating");
    child.kill().unwrap();
    child.wait().unwrap();
    // The hook's sleep outlives the runtime; it is not the container's business.
    let _ = std::process::Command::new("pkill")
        .args(["-f", "^sleep 97$"])
        .status();
    assert_eq!(ctx.berth.status(&id), "stopped");
    ctx.berth.ok(&["delete", "--force", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn json_log_gets_the_error() {
    let ctx = Ctx::new();
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = std::process::Command::new(runc_bin())
        .arg("--root")
        .arg(&ctx.root.path)
        .arg("--log")
        .arg(log.path())
        .args(["--log-format", "json", "state", "missing-container"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(log.path()).unwrap();
    let entry: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(entry["level"], "error");
    assert!(entry["msg"].as_str().unwrap().contains("does not exist"));
    assert!(entry["time"].is_string());
}

#[test]
fn version_is_runcs_format() {
    for flag in ["--version", "-v"] {
        let out = std::process::Command::new(runc_bin())
            .arg(flag)
            .output()
            .unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            concat!("berth-runc version ", env!("CARGO_PKG_VERSION")),
            "{text}"
        );
        assert!(lines[1].starts_with("commit: "), "{text}");
        assert!(lines[2].starts_with("spec: 1.2"), "{text}");
        assert!(lines[3].starts_with("libseccomp: "), "{text}");
    }
}

#[test]
fn any_name_speaks_runc() {
    // Clients install it under other names (containerd's BinaryName, podman's --runtime).
    let ctx = Ctx::new();
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("runc");
    std::os::unix::fs::symlink(runc_bin(), &link).unwrap();
    let (id, b) = ctx.bundle("link", &["sh", "-c", "exit 3"]);
    let out = std::process::Command::new(&link)
        .arg("--root")
        .arg(&ctx.root.path)
        .args(["run", "--bundle", b.dir.to_str().unwrap(), &id])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn spec_and_features() {
    let ctx = Ctx::new();
    let dir = tempfile::tempdir().unwrap();
    ctx.berth
        .ok(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["terminal"], true);
    // A second spec refuses to overwrite.
    ctx.berth
        .fails(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    let dir2 = tempfile::tempdir().unwrap();
    ctx.berth.ok(&[
        "spec",
        "--rootless",
        "--bundle",
        dir2.path().to_str().unwrap(),
    ]);
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir2.path().join("config.json")).unwrap()).unwrap();
    assert!(spec["linux"]["uidMappings"].is_array());
    let f: serde_json::Value = serde_json::from_str(&ctx.berth.ok(&["features"])).unwrap();
    assert_eq!(f["ociVersionMin"], "1.0.0");
    assert!(
        f["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!("time"))
    );
    assert!(
        f["linux"]["seccomp"]["actions"]
            .as_array()
            .unwrap()
            .contains(&json!("SCMP_ACT_NOTIFY"))
    );
}

#[test]
fn preserve_fds_and_no_pivot() {
    let ctx = Ctx::new();
    let (id, b) = ctx.bundle("fds", &["sh", "-c", "echo through-fd3 >&3"]);
    let out_file = b.dir.join("fd3.txt");
    let f = std::fs::File::create(&out_file).unwrap();
    let mut cmd = ctx.berth.cmd(&[
        "run",
        "--preserve-fds",
        "1",
        "--no-pivot",
        "--bundle",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let raw = f.as_raw_fd();
    // SAFETY: dup2 in the child between fork and exec, on fds that exist.
    unsafe {
        cmd.pre_exec(move || {
            // dup2 onto itself keeps close-on-exec: clear it by hand then.
            let r = if raw == 3 {
                libc::fcntl(3, libc::F_SETFD, 0)
            } else {
                libc::dup2(raw, 3)
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "through-fd3\n");
    assert_no_leaks(&ctx.root.path, &id, &b);
}

#[test]
fn session_keyring_is_new_unless_no_new_keyring() {
    let ctx = Ctx::new();
    // /proc/keys lists the keyrings the process may see; it is masked by default.
    let show = |extra: &[&str], prefix: &str| -> String {
        let (id, mut b) = ctx.bundle(prefix, &["cat", "/proc/keys"]);
        b.config["linux"]["maskedPaths"] = json!([]);
        b.write();
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        args.extend(["--bundle", b.dir.to_str().unwrap(), &id]);
        let out = ctx.berth.ok(&args);
        assert_no_leaks(&ctx.root.path, &id, &b);
        out.lines()
            .filter(|l| l.contains("keyring"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + &format!("id={id}")
    };
    let with_new = show(&[], "keyring");
    let id = with_new.rsplit("id=").next().unwrap().to_string();
    assert!(with_new.contains(&format!("_ses.{id}")), "{with_new}");
    let inherited = show(&["--no-new-keyring"], "nokeyring");
    let id2 = inherited.rsplit("id=").next().unwrap().to_string();
    assert!(!inherited.contains(&format!("_ses.{id2}")), "{inherited}");
}
