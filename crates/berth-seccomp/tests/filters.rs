//! Real filters loaded into real processes. Each case re-runs this test binary as a child
//! (the ignored `child` test) that loads the profile and makes the syscalls; the parent checks
//! what happened to it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Output};

use serde_json::{Value, json};

/// Run `case` in a child under `profile`, compiled by `compile`; without notify rules, also
/// through `compile_cached`, cold (compiled, then stored) and warm (loaded from the cache),
/// each of which must end exactly as the compiled filter did.
fn spawn_child(case: &str, profile: Value, extra_env: &[(&str, &str)]) -> Output {
    let compiled = run_child(case, &profile, extra_env, None);
    if !profile.to_string().contains("SCMP_ACT_NOTIFY") {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        for round in ["cold", "warm"] {
            let o = run_child(case, &profile, extra_env, Some(&cache));
            assert_eq!(
                (results(&o), o.status.code(), o.status.signal()),
                (
                    results(&compiled),
                    compiled.status.code(),
                    compiled.status.signal()
                ),
                "{case} with the {round} cache: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    }
    compiled
}

fn results(o: &Output) -> Vec<String> {
    stdout(o)
        .lines()
        .filter_map(|l| l.split_once("RESULT ").map(|(_, r)| r.to_string()))
        .collect()
}

fn run_child(
    case: &str,
    profile: &Value,
    extra_env: &[(&str, &str)],
    cache: Option<&std::path::Path>,
) -> Output {
    let mut c = Command::new(std::env::current_exe().unwrap());
    if let Some(dir) = cache {
        c.env("SECCOMP_CACHE", dir);
    }
    c.args([
        "--exact",
        "child",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("SECCOMP_CASE", case)
    .env("SECCOMP_PROFILE", profile.to_string());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The child side: load the profile, then do what the case says and print the result.
#[test]
#[ignore = "runs only as the child of the other tests"]
fn child() {
    let Ok(case) = std::env::var("SECCOMP_CASE") else {
        return;
    };
    let profile: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_str(&std::env::var("SECCOMP_PROFILE").unwrap()).unwrap();
    let filter = match std::env::var_os("SECCOMP_CACHE") {
        Some(dir) => berth_seccomp::compile_cached(&profile, std::path::Path::new(&dir)).unwrap(),
        None => berth_seccomp::compile(&profile).unwrap(),
    };
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    let notify = filter.load().unwrap();
    if let Some(fd) = &notify {
        let path = std::env::var("SECCOMP_LISTENER").unwrap();
        let state: oci_spec::runtime::ContainerProcessState = serde_json::from_value(json!({
            "ociVersion": "1.2.1", "fds": ["seccompFd"], "pid": std::process::id(),
            "metadata": "meta", "state": {"ociVersion": "1.2.1", "id": "c1", "status": "creating", "pid": std::process::id(), "bundle": "/b"}
        }))
        .unwrap();
        use std::os::fd::AsFd;
        berth_seccomp::send_to_listener(std::path::Path::new(&path), fd.as_fd(), &state).unwrap();
    }
    let dir = std::ffi::CString::new("/tmp/berth-seccomp-test-dir-never-made").unwrap();
    match case.as_str() {
        "mkdir" | "notify" => {
            // SAFETY: mkdir with a valid C string.
            let r = unsafe { libc::mkdir(dir.as_ptr(), 0o755) };
            // errno means something only after a failure.
            let e = if r == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            };
            println!("RESULT mkdir={r} errno={e}");
            if r == 0 {
                // The same case runs again (with the cache): leave the name free.
                // SAFETY: rmdir with a valid C string.
                unsafe { libc::rmdir(dir.as_ptr()) };
            }
        }
        "getcwd" => {
            // In a thread of its own: SCMP_ACT_KILL ends only the calling thread.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let mut buf = [0u8; 256];
                // SAFETY: getcwd writes at most buf.len() bytes into buf.
                unsafe { libc::getcwd(buf.as_mut_ptr().cast(), buf.len()) };
                let _ = tx.send(());
            });
            match rx.recv_timeout(std::time::Duration::from_secs(5)) {
                Ok(()) => println!("RESULT survived"),
                Err(_) => println!("RESULT thread-killed"),
            }
            std::process::exit(0);
        }
        "kill-args" => {
            // SAFETY: kill with signal 0 only checks; SIGURG's default action is to ignore.
            let a = unsafe { libc::kill(libc::getpid(), 0) };
            // SAFETY: as above.
            let b = unsafe { libc::kill(libc::getpid(), libc::SIGURG) };
            let e = if a == 0 && b == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            };
            println!("RESULT kill0={a} killurg={b} errno={e}");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn errno_with_errno_ret() {
    let o = spawn_child(
        "mkdir",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 77}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains("RESULT mkdir=-1 errno=77"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn errno_default_is_eperm() {
    let o = spawn_child(
        "mkdir",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains(&format!("RESULT mkdir=-1 errno={}", libc::EPERM)),
        "{}",
        stdout(&o)
    );
}

#[test]
fn kill_process_and_trap_deliver_sigsys() {
    for action in ["SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_KILL"] {
        let o = spawn_child(
            "getcwd",
            json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["getcwd"], "action": action}]
            }),
            &[],
        );
        assert!(
            !stdout(&o).contains("RESULT survived"),
            "{action}: {}",
            stdout(&o)
        );
        if action == "SCMP_ACT_KILL" {
            // KILL (= KILL_THREAD) ends only the calling thread.
            assert!(
                stdout(&o).contains("RESULT thread-killed"),
                "{}",
                stdout(&o)
            );
        } else {
            assert_eq!(
                o.status.signal(),
                Some(libc::SIGSYS),
                "{action}: {:?}",
                o.status
            );
        }
    }
}

#[test]
fn argument_filters() {
    let o = spawn_child(
        "kill-args",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 33,
                          "args": [{"index": 1, "value": libc::SIGURG, "op": "SCMP_CMP_EQ"}]}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains("RESULT kill0=0 killurg=-1 errno=33"),
        "{}",
        stdout(&o)
    );
    // MASKED_EQ: (sig & 0x10) == 0x10 matches SIGURG (23 = 0x17).
    let o = spawn_child(
        "kill-args",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 34,
                          "args": [{"index": 1, "value": 0x10, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"}]}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains("RESULT kill0=0 killurg=-1 errno=34"),
        "{}",
        stdout(&o)
    );
    // Two conditions on the same argument: either matches (one rule each).
    let o = spawn_child(
        "kill-args",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 35,
                          "args": [{"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 1, "value": libc::SIGURG, "op": "SCMP_CMP_EQ"}]}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains("RESULT kill0=-1 killurg=-1 errno=35"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn allow_list_with_errno_default() {
    // Everything but mkdir is allowed through the list; mkdir hits the default.
    let mut allowed: Vec<&str> = vec![];
    for n in [
        "read",
        "write",
        "openat",
        "close",
        "fstat",
        "newfstatat",
        "statx",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "rt_sigaction",
        "rt_sigprocmask",
        "rt_sigreturn",
        "sigaltstack",
        "exit",
        "exit_group",
        "futex",
        "sched_getaffinity",
        "getrandom",
        "clone",
        "clone3",
        "set_robust_list",
        "rseq",
        "madvise",
        "poll",
        "ioctl",
        "lseek",
        "getpid",
        "gettid",
        "prctl",
        "seccomp",
        "fcntl",
        "readlink",
        "getcwd",
        "sched_yield",
        "nanosleep",
        "clock_nanosleep",
        "writev",
        "pread64",
        "uname",
        "tgkill",
        "kill",
    ] {
        allowed.push(n);
    }
    let o = spawn_child(
        "mkdir",
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "syscalls": [{"names": allowed, "action": "SCMP_ACT_ALLOW"}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains("RESULT mkdir=-1 errno=38"),
        "{} {}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn log_action_allows() {
    let o = spawn_child(
        "mkdir",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_LOG"}]
        }),
        &[],
    );
    // Logged, then allowed: mkdir really runs (and fails only because /tmp/... may exist).
    let out = stdout(&o);
    assert!(
        out.contains("RESULT mkdir=0") || out.contains("errno=17"),
        "{out}"
    );
    let _ = std::fs::remove_dir("/tmp/berth-seccomp-test-dir-never-made");
}

fn recv_with_fd(sock: RawFd) -> (Vec<u8>, OwnedFd) {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = vec![0u8; 65536];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(sock, &mut iov, Some(&mut space), MsgFlags::empty()).unwrap();
    let n = msg.bytes;
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(f) = c {
            // SAFETY: SCM_RIGHTS installed this fd for us.
            fd = Some(unsafe { OwnedFd::from_raw_fd(f[0]) });
        }
    }
    buf.truncate(n);
    (buf, fd.expect("an fd"))
}

#[test]
fn notify_reaches_the_agent() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": sock,
        "listenerMetadata": "meta",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
    });
    let agent = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (body, fd) = recv_with_fd(conn.as_raw_fd());
        let state: Value = serde_json::from_slice(&body).unwrap();
        let req = libseccomp::ScmpNotifReq::receive(fd.as_raw_fd()).unwrap();
        let resp = libseccomp::ScmpNotifResp::new_error(
            req.id,
            -55,
            libseccomp::ScmpNotifRespFlags::empty(),
        );
        resp.respond(fd.as_raw_fd()).unwrap();
        state
    });
    let o = spawn_child(
        "notify",
        profile,
        &[("SECCOMP_LISTENER", sock.to_str().unwrap())],
    );
    let state = agent.join().unwrap();
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "meta");
    assert_eq!(state["state"]["id"], "c1");
    assert!(
        stdout(&o).contains("RESULT mkdir=-1 errno=55"),
        "{} {}",
        stdout(&o),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn trace_without_a_tracer_is_enosys_and_flags_load() {
    // SCMP_ACT_TRACE with no ptrace tracer attached: the kernel fails the call with ENOSYS.
    let o = spawn_child(
        "mkdir",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_TRACE", "errnoRet": 5}]
        }),
        &[],
    );
    assert!(
        stdout(&o).contains(&format!("RESULT mkdir=-1 errno={}", libc::ENOSYS)),
        "{}",
        stdout(&o)
    );
}
