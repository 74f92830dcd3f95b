//! `exec`: processes joining a running container.

mod common;

use std::io::Read;
use std::os::fd::AsRawFd;

use common::*;
use serde_json::json;

#[test]
fn exec_inline_args_env_cwd_user_and_exit_code() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("exec", &["sleep", "1000"], |c| {
        c["hostname"] = json!("execbox");
    });
    assert_eq!(ctx.berth.ok(&["exec", &id, "hostname"]), "execbox\n");
    // Same pid namespace as the init: the init is pid 1.
    assert_eq!(
        ctx.berth.ok(&["exec", &id, "cat", "/proc/1/comm"]),
        "sleep\n"
    );
    let out = ctx.berth.ok(&[
        "exec",
        "--env",
        "A=1",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        &id,
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u):$(id -g)",
    ]);
    assert_eq!(out, "1 /tmp 1000:1000\n");
    let out = ctx.berth.run(&["exec", &id, "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    // A missing program: a clear error.
    let err = ctx.berth.fails(&["exec", &id, "no-such-program"]);
    assert!(
        err.contains("no-such-program") && err.contains("not found"),
        "{err}"
    );
    ctx.cleanup(&id, &b);
}

#[test]
fn exec_detached_with_pid_file_and_process_json() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("execd", &["sleep", "1000"], |_| {});
    let pidfile = b.dir.join("exec.pid");
    ctx.berth.ok(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "999",
    ]);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\0999\0");
    let pids: Vec<i32> =
        serde_json::from_str(&ctx.berth.ok(&["ps", "--format", "json", &id])).unwrap();
    assert!(pids.contains(&pid), "{pids:?}");

    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo from-json $X; grep NoNewPrivs /proc/self/status"],
        "env": ["PATH=/bin:/usr/bin", "X=y"],
        "cwd": "/",
        "noNewPrivileges": true
    });
    let pj = b.dir.join("process.json");
    std::fs::write(&pj, process.to_string()).unwrap();
    let out = ctx
        .berth
        .ok(&["exec", "--process", pj.to_str().unwrap(), &id]);
    assert_eq!(out.lines().next().unwrap(), "from-json y");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    ctx.cleanup(&id, &b);
}

#[test]
fn exec_with_terminal_and_caps() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("exectty", &["sleep", "1000"], |_| {});
    let sock_path = b.dir.join("exec-console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        recv_fd(conn.as_raw_fd())
    });
    let mut child = ctx
        .berth
        .cmd(&[
            "exec",
            "-t",
            "--console-socket",
            sock_path.to_str().unwrap(),
            &id,
            "sh",
            "-c",
            "tty; echo end",
        ])
        .spawn()
        .unwrap();
    let master = receiver.join().unwrap();
    let mut f = std::fs::File::from(master);
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    while !String::from_utf8_lossy(&out).contains("end") {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    assert!(child.wait().unwrap().success());
    assert!(
        String::from_utf8_lossy(&out).contains("/dev/pts/"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );

    let out = ctx.berth.ok(&[
        "exec",
        "--cap",
        "CAP_NET_ADMIN",
        &id,
        "grep",
        "CapEff",
        "/proc/self/status",
    ]);
    let eff = u64::from_str_radix(out.split_whitespace().nth(1).unwrap(), 16).unwrap();
    assert!(eff & (1 << 12) != 0, "CAP_NET_ADMIN added: {out}");
    ctx.cleanup(&id, &b);
}

#[test]
fn exec_into_stopped_container_fails() {
    let ctx = Ctx::new();
    let (id, b) = ctx.start("execstopped", &["true"], |_| {});
    ctx.berth.wait_status(&id, "stopped");
    let err = ctx.berth.fails(&["exec", &id, "true"]);
    assert!(err.contains("stopped"), "{err}");
    ctx.berth.ok(&["delete", &id]);
    assert_no_leaks(&ctx.root.path, &id, &b);
}
