//! The init's set-up, from setsid to "ready", against the recording [`Sys`]. The test plays
//! the parent on the other end of the setup channel.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::sys::resource::Resource;
use oci_spec::runtime::Spec;
use serde_json::json;

use super::*;
use crate::cgmount::{CgroupMounts, Hierarchy};
use crate::sync;
use crate::sys::FileKind;
use crate::sys::recording::{Call, RecordingSys, stat};

struct Fixture {
    _tmp: tempfile::TempDir,
    bundle: Bundle,
    null: OwnedFd,
}

fn fixture(spec: serde_json::Value) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap().join("bundle");
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    // What the container's /proc shows once it is the root: a file to mask.
    std::fs::create_dir_all(rootfs.join("proc")).unwrap();
    std::fs::write(rootfs.join("proc/kcore"), "").unwrap();
    // The program, found on the process's PATH once the rootfs is the root.
    std::fs::write(rootfs.join("bin/app"), "#!/bin/sh\n").unwrap();
    std::fs::set_permissions(
        rootfs.join("bin/app"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let spec: Spec = serde_json::from_value(spec).unwrap();
    Fixture {
        _tmp: tmp,
        bundle: Bundle { dir, spec, rootfs },
        null: std::fs::File::open("/dev/null").unwrap().into(),
    }
}

fn spec(namespaces: &[&str]) -> serde_json::Value {
    let ns: Vec<_> = namespaces.iter().map(|t| json!({"type": t})).collect();
    json!({
        "ociVersion": "1.0.2",
        "hostname": "c1",
        "domainname": "example.org",
        "process": {
            "args": ["app", "--flag"],
            "env": ["PATH=/bin", "HOME=/"],
            "cwd": "/work",
            "user": {"uid": 1000, "gid": 1001, "additionalGids": [10, 20], "umask": 23},
            "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024}],
            "oomScoreAdj": 100,
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": ["CAP_CHOWN", "CAP_KILL"],
                "effective": ["CAP_KILL"],
                "permitted": ["CAP_KILL"]
            }
        },
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro"]}
        ],
        "linux": {
            "namespaces": ns,
            "sysctl": {"net.ipv4.ip_forward": "1"},
            "personality": {"domain": "LINUX32"},
            "maskedPaths": ["/proc/kcore"],
            "readonlyPaths": ["/proc/sys"]
        }
    })
}

fn cgroups() -> CgroupMounts {
    CgroupMounts {
        unified_only: true,
        hierarchies: vec![Hierarchy {
            name: String::new(),
            v2: true,
            options: String::new(),
            dir: PathBuf::from("/sys/fs/cgroup/c1"),
        }],
    }
}

/// Run `set_up` as the init would, answering the parent's part; returns what it returned
/// and the messages the parent got.
fn set_up_with(f: &Fixture, sys: &RecordingSys) -> (Result<(CString, String)>, Vec<Msg>) {
    let ns = Namespaces::from_spec(&f.bundle.spec);
    let cg = cgroups();
    let ctx = InitCtx {
        id: "c1",
        bundle: &f.bundle,
        ns: &ns,
        no_pivot: false,
        no_new_keyring: false,
        preserve_fds: 0,
        exec_fifo: &f.null,
        start_fifo: &f.null,
        console_socket: None,
        seccomp: None,
        cgroups: Some(&cg),
    };
    let (parent, child) = sync::pair().unwrap();
    // The parent's answer to "run the hooks", queued before the init asks.
    parent
        .send(&Msg::HooksDone(r#"{"id":"c1","status":"creating"}"#.into()))
        .unwrap();
    let r = set_up(&ctx, None, &child, sys);
    drop(child);
    let mut got = Vec::new();
    // Until end-of-file (or a reset, when the init left a message unread).
    while let Ok(Some((m, _))) = parent.recv() {
        got.push(m);
    }
    (r, got)
}

fn position(calls: &[Call], pred: impl Fn(&Call) -> bool) -> usize {
    calls.iter().position(pred).expect("the call was made")
}

#[test]
fn the_init_sets_up_in_runc_order() {
    let f = fixture(spec(&["mount", "pid", "uts", "cgroup"]));
    let sys = RecordingSys::new(&f.bundle.rootfs);
    let (r, msgs) = set_up_with(&f, &sys);
    let (exe, state) = r.unwrap();
    assert_eq!(exe.to_str().unwrap(), "/bin/app");
    assert_eq!(state, r#"{"id":"c1","status":"creating"}"#);
    assert_eq!(msgs, [Msg::RunHooks]);

    let calls = sys.calls();
    // Everything but the rootfs's mounts and nodes, and the bounding-set drops, in order.
    let rest: Vec<Call> = calls
        .iter()
        .filter(|c| {
            !matches!(
                c,
                Call::Mount { .. }
                    | Call::Mknod { .. }
                    | Call::Chmod { .. }
                    | Call::Chown { .. }
                    | Call::Symlink { .. }
                    | Call::DropBounding(_)
            )
        })
        .cloned()
        .collect();
    assert_eq!(
        rest,
        [
            Call::Setsid,
            Call::Umask(0),
            Call::JoinSessionKeyring("_ses.c1".into()),
            Call::Fchdir("$ROOT".into()),
            Call::PivotRoot {
                new_root: ".".into(),
                put_old: ".".into()
            },
            Call::Fchdir("/".into()),
            Call::Umount2 {
                target: ".".into(),
                flags: nix::mount::MntFlags::MNT_DETACH
            },
            Call::Chdir("/".into()),
            Call::Sethostname("c1".into()),
            Call::Setdomainname("example.org".into()),
            Call::WriteFile {
                path: "/proc/sys/net/ipv4/ip_forward".into(),
                data: "1".into()
            },
            Call::Personality(0x0008),
            Call::Setrlimit {
                resource: Resource::RLIMIT_NOFILE,
                soft: 1024,
                hard: 1024
            },
            Call::WriteFile {
                path: "/proc/self/oom_score_adj".into(),
                data: "100".into()
            },
            Call::NoNewPrivs,
            Call::CloexecFrom(3),
            Call::KeepCaps(true),
            Call::Setgroups(vec![10, 20]),
            Call::Setresgid(1001),
            Call::Setresuid(1000),
            Call::KeepCaps(false),
            Call::Capset {
                effective: 1 << 5,
                permitted: 1 << 5,
                inheritable: 0
            },
            Call::ClearAmbient,
            Call::Chdir("/work".into()),
            Call::Umask(0o027),
        ]
    );
    // Every capability but CHOWN (0) and KILL (5) leaves the bounding set.
    let dropped: Vec<u8> = calls
        .iter()
        .filter_map(|c| match c {
            Call::DropBounding(n) => Some(*n),
            _ => None,
        })
        .collect();
    let want: Vec<u8> = (0..=40).filter(|n| *n != 0 && *n != 5).collect();
    assert_eq!(dropped, want);

    // The mounts come before the root changes, the names and sysctls before /proc/sys becomes
    // read-only, and the read-only root last among the mounts.
    let pivot = position(&calls, |c| matches!(c, Call::PivotRoot { .. }));
    let proc = position(
        &calls,
        |c| matches!(c, Call::Mount { target, .. } if target == "$ROOT/proc"),
    );
    let sysctl = position(
        &calls,
        |c| matches!(c, Call::WriteFile { path, .. } if path.starts_with("/proc/sys/")),
    );
    let ro_sys = position(
        &calls,
        |c| matches!(c, Call::Mount { target, flags, .. } if target == "/proc/sys" && flags.contains(nix::mount::MsFlags::MS_RDONLY)),
    );
    let masked = position(
        &calls,
        |c| matches!(c, Call::Mount { target, .. } if target == "/proc/kcore"),
    );
    let ro_root = position(
        &calls,
        |c| matches!(c, Call::Mount { target, flags, .. } if target == "/" && flags.contains(nix::mount::MsFlags::MS_RDONLY)),
    );
    let hostname = position(&calls, |c| matches!(c, Call::Sethostname(_)));
    let personality = position(&calls, |c| matches!(c, Call::Personality(_)));
    assert!(proc < pivot && pivot < hostname && hostname < sysctl);
    assert!(sysctl < ro_sys && ro_sys < masked && masked < ro_root && ro_root < personality);
    // The working directory was created inside the rootfs.
    assert!(f.bundle.rootfs.join("work").is_dir());
}

#[test]
fn without_a_mount_namespace_the_init_only_chroots() {
    let mut s = spec(&["pid"]);
    s["linux"]["maskedPaths"] = json!([]);
    s["linux"]["readonlyPaths"] = json!([]);
    s["root"]["readonly"] = json!(false);
    let f = fixture(s);
    let sys = RecordingSys::new(&f.bundle.rootfs);
    let (r, _) = set_up_with(&f, &sys);
    r.unwrap();
    let calls = sys.calls();
    assert!(!calls.iter().any(|c| matches!(
        c,
        Call::Mount { .. } | Call::PivotRoot { .. } | Call::Mknod { .. } | Call::Symlink { .. }
    )));
    let chroot = position(&calls, |c| *c == Call::Chroot("$ROOT".into()));
    assert_eq!(calls[chroot + 1], Call::Chdir("/".into()));
    assert!(chroot < position(&calls, |c| matches!(c, Call::Sethostname(_))));
}

#[test]
fn in_a_user_namespace_denied_setgroups_is_respected() {
    let f = fixture(spec(&["user", "mount", "pid", "uts", "cgroup"]));
    let mut sys = RecordingSys::new(&f.bundle.rootfs);
    sys.fake_file("/proc/self/setgroups", "deny\n");
    let (r, _) = set_up_with(&f, &sys);
    r.unwrap();
    let calls = sys.calls();
    assert!(!calls.iter().any(|c| matches!(c, Call::Setgroups(_))));
    assert!(calls.contains(&Call::Setresuid(1000)));
    // No device nodes: the host's are bound.
    assert!(!calls.iter().any(|c| matches!(c, Call::Mknod { .. })));
    assert!(calls.iter().any(|c| matches!(
        c,
        Call::Mount { source: Some(s), target, .. } if s == "/dev/null" && target == "$ROOT/dev/null"
    )));
}

#[test]
fn set_up_failures_are_reported_and_stop_the_set_up() {
    // A kernel without keyrings is fine.
    let f = fixture(spec(&["mount", "uts"]));
    let sys = RecordingSys::new(&f.bundle.rootfs);
    sys.fail(|c| matches!(c, Call::JoinSessionKeyring(_)), Errno::ENOSYS);
    set_up_with(&f, &sys).0.unwrap();

    // Another keyring error is not.
    let sys = RecordingSys::new(&f.bundle.rootfs);
    sys.fail(|c| matches!(c, Call::JoinSessionKeyring(_)), Errno::EINVAL);
    let e = set_up_with(&f, &sys).0.unwrap_err();
    assert!(
        matches!(&e, Error::Io { context, .. } if context == "joining a new session keyring"),
        "{e}"
    );
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Mount { .. })));

    // A refused hostname names it; nothing after it happens.
    let sys = RecordingSys::new(&f.bundle.rootfs);
    sys.fail(|c| matches!(c, Call::Sethostname(_)), Errno::EPERM);
    let (r, msgs) = set_up_with(&f, &sys);
    let e = r.unwrap_err();
    assert_eq!(
        e.to_string(),
        "setting hostname \"c1\": Operation not permitted (os error 1)"
    );
    assert_eq!(msgs, [Msg::RunHooks]);
    assert!(matches!(sys.calls().last(), Some(Call::Sethostname(_))));

    // A program that is not there is reported before the identity changes.
    let mut s = spec(&["mount"]);
    s["process"]["args"] = json!(["missing"]);
    let f = fixture(s);
    let mut sys = RecordingSys::new(&f.bundle.rootfs);
    sys.fake_stat("/bin/missing", None);
    let e = set_up_with(&f, &sys).0.unwrap_err();
    assert!(matches!(&e, Error::Child(m) if m.contains("\"missing\": executable file not found")));
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Setresuid(_))));
    // …and so is a program that is not executable.
    let mut sys = RecordingSys::new(&f.bundle.rootfs);
    sys.fake_stat("/bin/missing", stat(FileKind::File, 0o644));
    assert!(set_up_with(&f, &sys).0.is_err());
}
