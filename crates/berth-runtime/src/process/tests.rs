//! Process attributes against the recording [`Sys`]: the calls, their arguments and order.

use nix::errno::Errno;
use nix::sys::resource::Resource;
use oci_spec::runtime::{LinuxCapabilities, PosixRlimit};
use serde_json::json;

use super::*;
use crate::sys::recording::{Call, RecordingSys, stat};

fn rlimit(typ: &str, soft: u64, hard: u64) -> PosixRlimit {
    serde_json::from_value(json!({"type": typ, "soft": soft, "hard": hard})).unwrap()
}

fn no_root() -> RecordingSys {
    RecordingSys::new(Path::new("/nonexistent-rootfs"))
}

#[test]
fn rlimits_are_set_in_order() {
    let sys = no_root();
    set_rlimits(
        &sys,
        &[
            rlimit("RLIMIT_NOFILE", 1024, 4096),
            rlimit("RLIMIT_CORE", 0, 0),
            rlimit("RLIMIT_NPROC", 100, u64::MAX),
        ],
    )
    .unwrap();
    assert_eq!(
        sys.calls(),
        [
            Call::Setrlimit {
                resource: Resource::RLIMIT_NOFILE,
                soft: 1024,
                hard: 4096
            },
            Call::Setrlimit {
                resource: Resource::RLIMIT_CORE,
                soft: 0,
                hard: 0
            },
            Call::Setrlimit {
                resource: Resource::RLIMIT_NPROC,
                soft: 100,
                hard: u64::MAX
            },
        ]
    );
}

#[test]
fn raising_a_hard_rlimit_without_the_capability_is_explained() {
    let mut sys = no_root();
    sys.fake_rlimit(Resource::RLIMIT_NOFILE, 1024, 4096);
    sys.fail(
        |c| matches!(c, Call::Setrlimit { resource, .. } if *resource == Resource::RLIMIT_NOFILE),
        Errno::EPERM,
    );
    let e = set_rlimits(&sys, &[rlimit("RLIMIT_NOFILE", 1024, 8192)]).unwrap_err();
    assert!(
        matches!(&e, Error::Unsupported(m) if m.starts_with("RLIMIT_NOFILE hard limit 8192 is above the host's hard limit 4096")),
        "{e}"
    );
    // Within the host's hard limit, EPERM is reported as it is.
    let e = set_rlimits(&sys, &[rlimit("RLIMIT_NOFILE", 1024, 2048)]).unwrap_err();
    assert!(
        matches!(&e, Error::Io { context, source } if context == "setting RLIMIT_NOFILE to soft=1024 hard=2048" && source.raw_os_error() == Some(libc::EPERM)),
        "{e}"
    );
}

fn caps(json: serde_json::Value) -> LinuxCapabilities {
    serde_json::from_value(json).unwrap()
}

#[test]
fn capability_sets_from_the_spec() {
    let c = caps(json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_BPF"],
        "effective": ["CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": [],
        "ambient": ["CAP_KILL"]
    }));
    let bpf = 1u64 << 39;
    let s = CapSets::from_spec_up_to(Some(&c), 40);
    assert_eq!(
        s,
        CapSets {
            bounding: 1 | (1 << 5) | bpf,
            effective: 1 << 5,
            permitted: 1 | (1 << 5),
            inheritable: 0,
            ambient: 1 << 5,
        }
    );
    // A capability the kernel does not know is left out, as runc does.
    assert_eq!(
        CapSets::from_spec_up_to(Some(&c), 38).bounding,
        1 | (1 << 5)
    );
    assert_eq!(CapSets::from_spec_up_to(None, 40), CapSets::default());
}

#[test]
fn identity_and_capabilities_switch_in_order() {
    let mut sys = no_root();
    sys.set_last_cap(6);
    let sets = CapSets {
        bounding: 1 | (1 << 5),
        effective: 1 << 5,
        permitted: 1 | (1 << 5),
        inheritable: 1 << 5,
        ambient: 1 << 5,
    };
    set_identity_and_caps(&sys, 1000, 100, &[10, 20], true, &sets).unwrap();
    assert_eq!(
        sys.calls(),
        [
            // Keep the permitted set across the uid change…
            Call::KeepCaps(true),
            // …drop the bounding set to what the spec keeps (0 and 5 of 0..=6)…
            Call::DropBounding(1),
            Call::DropBounding(2),
            Call::DropBounding(3),
            Call::DropBounding(4),
            Call::DropBounding(6),
            // …groups, then gid, then uid (after setresuid, setgroups would be refused)…
            Call::Setgroups(vec![10, 20]),
            Call::Setresgid(100),
            Call::Setresuid(1000),
            Call::KeepCaps(false),
            // …then the sets, then the ambient set.
            Call::Capset {
                effective: 1 << 5,
                permitted: 1 | (1 << 5),
                inheritable: 1 << 5
            },
            Call::ClearAmbient,
            Call::RaiseAmbient(5),
        ]
    );

    // Where setgroups is denied (a user namespace), the groups are left alone.
    let sys = no_root();
    set_identity_and_caps(&sys, 0, 0, &[10], false, &CapSets::default()).unwrap();
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Setgroups(_))));
    assert!(sys.calls().contains(&Call::Setresuid(0)));
}

#[test]
fn unknown_bounding_caps_are_skipped_and_other_failures_reported() {
    let mut sys = no_root();
    sys.set_last_cap(3);
    // EINVAL: the kernel does not know the capability; go on.
    sys.fail(|c| *c == Call::DropBounding(1), Errno::EINVAL);
    drop_bounding(&sys, 0).unwrap();
    assert_eq!(
        sys.calls(),
        [
            Call::DropBounding(0),
            Call::DropBounding(1),
            Call::DropBounding(2),
            Call::DropBounding(3)
        ]
    );
    let mut sys = no_root();
    sys.set_last_cap(3);
    sys.fail(|c| *c == Call::DropBounding(2), Errno::EPERM);
    let e = drop_bounding(&sys, 0).unwrap_err();
    assert!(
        matches!(&e, Error::Io { context, .. } if context == "dropping capability 2 from the bounding set"),
        "{e}"
    );

    // A failing setresuid stops the switch before the capability sets change.
    let sys = no_root();
    sys.fail(|c| matches!(c, Call::Setresuid(_)), Errno::EPERM);
    let e = set_identity_and_caps(&sys, 5, 5, &[], true, &CapSets::default()).unwrap_err();
    assert!(
        matches!(&e, Error::Io { context, .. } if context == "setting uid 5"),
        "{e}"
    );
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Capset { .. })));
}

#[test]
fn no_new_privs_personality_scheduler_and_io_priority() {
    let sys = no_root();
    set_no_new_privs(&sys).unwrap();
    let p: LinuxPersonality = serde_json::from_value(json!({"domain": "LINUX32"})).unwrap();
    set_personality(&sys, &p).unwrap();
    let s: Scheduler = serde_json::from_value(json!({
        "policy": "SCHED_BATCH", "nice": 5, "flags": ["SCHED_RESET_ON_FORK"]
    }))
    .unwrap();
    set_scheduler(&sys, &s).unwrap();
    set_io_priority(&sys, IOPriorityClass::IoprioClassBe, 4).unwrap();
    assert_eq!(
        sys.calls(),
        [
            Call::NoNewPrivs,
            Call::Personality(0x0008),
            Call::SchedSetattr(SchedAttr {
                size: std::mem::size_of::<SchedAttr>() as u32,
                sched_policy: 3,
                sched_flags: 0x01,
                sched_nice: 5,
                ..Default::default()
            }),
            Call::IoprioSet((2 << 13) | 4),
        ]
    );
    // The kernel's struct sched_attr (SCHED_ATTR_SIZE_VER1) is 56 bytes.
    assert_eq!(std::mem::size_of::<SchedAttr>(), 56);

    let p: LinuxPersonality =
        serde_json::from_value(json!({"domain": "LINUX", "flags": ["ADDR_NO_RANDOMIZE"]})).unwrap();
    assert!(matches!(
        set_personality(&sys, &p),
        Err(Error::Unsupported(_))
    ));
    assert!(matches!(
        set_io_priority(&sys, IOPriorityClass::IoprioClassBe, 8),
        Err(Error::InvalidConfig(_))
    ));
    assert_eq!(sys.calls().len(), 4, "refused values make no call");
}

#[test]
fn oom_score_adj_and_lsm_labels() {
    let sys = no_root();
    set_oom_score_adj(&sys, -500).unwrap();
    assert_eq!(
        sys.calls(),
        [Call::WriteFile {
            path: "/proc/self/oom_score_adj".into(),
            data: "-500".into()
        }]
    );
    sys.fail(|c| matches!(c, Call::WriteFile { .. }), Errno::EACCES);
    assert!(matches!(
        set_oom_score_adj(&sys, -999),
        Err(Error::Unsupported(_))
    ));

    let p: Process = serde_json::from_value(json!({
        "cwd": "/", "args": ["/bin/true"], "user": {"uid": 0, "gid": 0},
        "apparmorProfile": "berth-default"
    }))
    .unwrap();
    // AppArmor off: a clear error, never a silent skip.
    let mut sys = no_root();
    sys.fake_file("/sys/module/apparmor/parameters/enabled", "N\n");
    assert!(matches!(
        set_lsm_labels(&sys, &p),
        Err(Error::Unsupported(m)) if m.contains("berth-default")
    ));
    assert!(sys.calls().is_empty());
    // AppArmor on, with the per-LSM attribute directory.
    sys.fake_file("/sys/module/apparmor/parameters/enabled", "Y\n");
    sys.fake_stat("/proc/self/attr/apparmor/exec", stat(FileKind::File, 0o666));
    set_lsm_labels(&sys, &p).unwrap();
    assert_eq!(
        sys.calls(),
        [Call::WriteFile {
            path: "/proc/self/attr/apparmor/exec".into(),
            data: "exec berth-default".into()
        }]
    );
}

#[test]
fn executables_are_found_on_the_process_path() {
    let mut sys = no_root();
    sys.fake_stat("/bin/app", None);
    sys.fake_stat("/usr/bin/app", stat(FileKind::File, 0o755));
    sys.fake_stat("/usr/bin/dir", stat(FileKind::Dir, 0o755));
    sys.fake_stat("/usr/bin/data", stat(FileKind::File, 0o644));
    sys.fake_stat("/work/./run.sh", stat(FileKind::File, 0o700));
    let env = vec!["PATH=/bin:/usr/bin".to_string()];
    let cwd = Path::new("/work");
    assert_eq!(
        find_executable(&sys, "app", &env, cwd).unwrap(),
        Path::new("/usr/bin/app")
    );
    assert!(matches!(
        find_executable(&sys, "data", &env, cwd),
        Err(Error::Child(m)) if m.contains("not found in $PATH")
    ));
    assert_eq!(
        find_executable(&sys, "./run.sh", &env, cwd).unwrap(),
        Path::new("./run.sh")
    );
    assert!(matches!(
        find_executable(&sys, "/usr/bin/dir", &env, cwd),
        Err(Error::Child(m)) if m.contains("is a directory")
    ));
    assert!(matches!(
        find_executable(&sys, "/usr/bin/data", &env, cwd),
        Err(Error::Child(m)) if m.contains("permission denied")
    ));
}
