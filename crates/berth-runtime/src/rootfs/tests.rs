//! The rootfs set-up against the recording [`Sys`]: which mounts, nodes and links a spec
//! produces, in which order, with which flags. No root needed: the rootfs is a temporary
//! directory, the directories and files the set-up creates inside it are real, every mount
//! and device node is only recorded.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sys::stat::SFlag;
use nix::sys::statvfs::FsFlags;
use oci_spec::runtime::Spec;
use serde_json::json;

use super::*;
use crate::cgmount::{CgroupMounts, Hierarchy};
use crate::sys::FileKind;
use crate::sys::recording::{Call, RecordingSys, stat};

struct Fixture {
    _tmp: tempfile::TempDir,
    bundle: PathBuf,
    rootfs: PathBuf,
    /// A directory and a file outside the rootfs, as bind sources.
    src_dir: PathBuf,
    src_file: PathBuf,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = tmp.path().join("bundle");
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let src_dir = tmp.path().join("data");
    std::fs::create_dir(&src_dir).unwrap();
    let src_file = tmp.path().join("hosts");
    std::fs::write(&src_file, "127.0.0.1 localhost\n").unwrap();
    Fixture {
        bundle: bundle.canonicalize().unwrap(),
        rootfs: rootfs.canonicalize().unwrap(),
        src_dir: src_dir.canonicalize().unwrap(),
        src_file: src_file.canonicalize().unwrap(),
        _tmp: tmp,
    }
}

/// runc's default mounts, a cgroup mount, and binds with flags, propagation and `rw`.
fn typical_spec(f: &Fixture) -> Spec {
    serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/work", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs", "readonly": true},
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
            {"destination": "/data", "type": "bind", "source": f.src_dir,
             "options": ["rbind", "ro", "nosuid", "rprivate"]},
            {"destination": "/etc/hosts", "type": "bind", "source": f.src_file,
             "options": ["bind", "rw"]},
            {"destination": "/plain", "source": f.src_dir, "options": ["bind"]},
            {"destination": "/recursive", "type": "bind", "source": f.src_dir,
             "options": ["rbind", "rro", "rnosuid"]}
        ],
        "linux": {
            "namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "cgroup"}],
            "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
                         "fileMode": 384, "uid": 1000, "gid": 1001}],
            "maskedPaths": ["/proc/kcore", "/proc/acpi", "/proc/missing"],
            "readonlyPaths": ["/proc/sys", "/proc/absent"]
        }
    }))
    .unwrap()
}

fn v2_cgroups() -> CgroupMounts {
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

fn plan<'a>(
    f: &'a Fixture,
    spec: &'a Spec,
    cgroups: Option<&'a CgroupMounts>,
    in_userns: bool,
) -> RootfsPlan<'a> {
    RootfsPlan {
        spec,
        rootfs: &f.rootfs,
        bundle: &f.bundle,
        in_userns,
        cgroups,
        cgroupns: true,
        no_pivot: false,
    }
}

fn mount(
    source: Option<&str>,
    target: &str,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Call {
    Call::Mount {
        source: source.map(str::to_string),
        target: target.to_string(),
        fstype: fstype.map(str::to_string),
        flags,
        data: data.map(str::to_string),
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sys_for(f: &Fixture) -> RecordingSys {
    let mut sys = RecordingSys::new(&f.rootfs);
    // The links made depend on the kernel having /proc/kcore: answer for it.
    sys.fake_stat("/proc/kcore", stat(FileKind::File, 0o400));
    sys
}

#[test]
fn typical_spec_mounts_in_order_with_their_flags() {
    let f = fixture();
    let spec = typical_spec(&f);
    let cg = v2_cgroups();
    let sys = sys_for(&f);
    prepare(&plan(&f, &spec, Some(&cg), false), &sys).unwrap();

    use MsFlags as M;
    let expected = vec![
        // Propagation of /: slave, recursively, so nothing goes back to the host.
        mount(None, "/", None, M::MS_SLAVE | M::MS_REC, None),
        // The rootfs made a mount point for pivot_root.
        mount(Some("$ROOT"), "$ROOT", None, M::MS_BIND | M::MS_REC, None),
        mount(Some("proc"), "$ROOT/proc", Some("proc"), M::empty(), None),
        mount(
            Some("tmpfs"),
            "$ROOT/dev",
            Some("tmpfs"),
            M::MS_NOSUID | M::MS_STRICTATIME,
            Some("mode=755,size=65536k"),
        ),
        mount(
            Some("devpts"),
            "$ROOT/dev/pts",
            Some("devpts"),
            M::MS_NOSUID | M::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
        ),
        mount(
            Some("shm"),
            "$ROOT/dev/shm",
            Some("tmpfs"),
            M::MS_NOSUID | M::MS_NOEXEC | M::MS_NODEV,
            Some("mode=1777,size=65536k"),
        ),
        mount(
            Some("mqueue"),
            "$ROOT/dev/mqueue",
            Some("mqueue"),
            M::MS_NOSUID | M::MS_NOEXEC | M::MS_NODEV,
            None,
        ),
        // sysfs read-only in one mount call.
        mount(
            Some("sysfs"),
            "$ROOT/sys",
            Some("sysfs"),
            M::MS_NOSUID | M::MS_NOEXEC | M::MS_NODEV | M::MS_RDONLY,
            None,
        ),
        // With a cgroup namespace on pure v2: cgroup2 itself, read-only, with the mount's
        // generic flags.
        mount(
            Some("cgroup2"),
            "$ROOT/sys/fs/cgroup",
            Some("cgroup2"),
            M::MS_NOSUID | M::MS_NOEXEC | M::MS_NODEV | M::MS_RELATIME | M::MS_RDONLY,
            None,
        ),
        // A bind ignores other flags: bind (recursive for rbind), then remount with ro and
        // nosuid, then the propagation.
        mount(
            Some(s(&f.src_dir)),
            "$ROOT/data",
            None,
            M::MS_BIND | M::MS_REC,
            None,
        ),
        mount(
            None,
            "$ROOT/data",
            None,
            M::MS_BIND | M::MS_REMOUNT | M::MS_RDONLY | M::MS_NOSUID,
            None,
        ),
        mount(None, "$ROOT/data", None, M::MS_PRIVATE | M::MS_REC, None),
        // A file bound onto a file the set-up created; "rw" clears a flag, so it is remounted.
        mount(
            Some(s(&f.src_file)),
            "$ROOT/etc/hosts",
            None,
            M::MS_BIND,
            None,
        ),
        mount(
            None,
            "$ROOT/etc/hosts",
            None,
            M::MS_BIND | M::MS_REMOUNT,
            None,
        ),
        // A plain bind: one call.
        mount(Some(s(&f.src_dir)), "$ROOT/plain", None, M::MS_BIND, None),
        mount(
            Some(s(&f.src_dir)),
            "$ROOT/recursive",
            None,
            M::MS_BIND | M::MS_REC,
            None,
        ),
    ];
    assert_eq!(sys.mounts(), expected);
    // Recursive attributes go through mount_setattr, on the bind's mount.
    use crate::mountopts::attr;
    assert!(sys.calls().contains(&Call::MountSetattr {
        target: "$ROOT/recursive".into(),
        set: attr::RDONLY | attr::NOSUID,
        clear: 0,
    }));
    // The destinations exist in the rootfs: directories, and a file for the file bind.
    assert!(f.rootfs.join("sys/fs/cgroup").is_dir());
    assert!(f.rootfs.join("etc/hosts").is_file());
    // The working directory is created.
    assert!(f.rootfs.join("work").is_dir());
}

#[test]
fn default_devices_spec_devices_and_dev_links() {
    let f = fixture();
    let spec = typical_spec(&f);
    let cg = v2_cgroups();
    // An image with a devpts multiplexer in place gets /dev/ptmx pointing at it.
    std::fs::create_dir_all(f.rootfs.join("dev/pts")).unwrap();
    std::fs::write(f.rootfs.join("dev/pts/ptmx"), "").unwrap();
    // A stale node shipped by the image is replaced.
    std::fs::write(f.rootfs.join("dev/null"), "stale").unwrap();
    let sys = sys_for(&f);
    prepare(&plan(&f, &spec, Some(&cg), false), &sys).unwrap();

    let calls: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| {
            matches!(
                c,
                Call::Mknod { .. } | Call::Chmod { .. } | Call::Chown { .. } | Call::Symlink { .. }
            )
        })
        .collect();
    let mut expected = Vec::new();
    let node = |name: &str, major, minor, mode, uid, gid| {
        let path = format!("$ROOT/dev/{name}");
        vec![
            Call::Mknod {
                path: path.clone(),
                kind: SFlag::S_IFCHR,
                mode,
                major,
                minor,
            },
            Call::Chmod {
                path: path.clone(),
                mode,
            },
            Call::Chown { path, uid, gid },
        ]
    };
    for (name, major, minor) in [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ] {
        expected.extend(node(name, major, minor, 0o666, Some(0), Some(0)));
    }
    expected.extend(node("fuse", 10, 229, 0o600, Some(1000), Some(1001)));
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("core", "/proc/kcore"),
        ("ptmx", "pts/ptmx"),
    ] {
        expected.push(Call::Symlink {
            link: format!("$ROOT/dev/{link}"),
            target: target.into(),
        });
    }
    assert_eq!(calls, expected);
    assert!(
        !f.rootfs.join("dev/null").exists(),
        "the stale node is removed"
    );
}

#[test]
fn without_kcore_there_is_no_dev_core_and_a_bound_dev_gets_no_nodes() {
    let f = fixture();
    let mut sys = RecordingSys::new(&f.rootfs);
    sys.fake_stat("/proc/kcore", None);
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    }))
    .unwrap();
    prepare(&plan(&f, &spec, None, false), &sys).unwrap();
    let links: Vec<String> = sys
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Symlink { link, .. } => Some(link),
            _ => None,
        })
        .collect();
    assert_eq!(
        links,
        [
            "$ROOT/dev/fd",
            "$ROOT/dev/stdin",
            "$ROOT/dev/stdout",
            "$ROOT/dev/stderr"
        ]
    );

    // /dev bound from the host: the container uses its nodes; none are made.
    let sys = RecordingSys::new(&f.rootfs);
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/dev", "type": "bind", "source": f.src_dir, "options": ["rbind"]}],
    }))
    .unwrap();
    prepare(&plan(&f, &spec, None, false), &sys).unwrap();
    assert!(
        !sys.calls()
            .iter()
            .any(|c| matches!(c, Call::Mknod { .. } | Call::Symlink { .. }))
    );
}

#[test]
fn in_a_user_namespace_nodes_are_bound_and_locked_flags_are_kept() {
    let f = fixture();
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
            {"destination": "/data", "type": "bind", "source": f.src_dir, "options": ["bind", "ro"]}
        ],
    }))
    .unwrap();
    let mut sys = sys_for(&f);
    // The host mounted the bind source nodev,noexec: a user namespace cannot clear those.
    sys.fake_mount_flags("$ROOT/data", FsFlags::ST_NODEV | FsFlags::ST_NOEXEC);
    sys.fake_mount_flags("$ROOT/sys", FsFlags::ST_NOSUID | FsFlags::ST_RDONLY);
    // A user namespace without its own network namespace may not mount sysfs.
    sys.fail(
        |c| matches!(c, Call::Mount { fstype: Some(t), .. } if t == "sysfs"),
        Errno::EPERM,
    );
    prepare(&plan(&f, &spec, None, true), &sys).unwrap();

    use MsFlags as M;
    let mounts = sys.mounts();
    assert_eq!(
        mounts[2..6],
        [
            mount(
                Some("sysfs"),
                "$ROOT/sys",
                Some("sysfs"),
                M::MS_NOSUID | M::MS_RDONLY,
                None
            ),
            // Refused: the host's /sys is bound instead, and given the flags.
            mount(
                Some("/sys"),
                "$ROOT/sys",
                None,
                M::MS_BIND | M::MS_REC,
                None
            ),
            mount(
                None,
                "$ROOT/sys",
                None,
                M::MS_BIND | M::MS_REMOUNT | M::MS_NOSUID | M::MS_RDONLY,
                None
            ),
            mount(Some(s(&f.src_dir)), "$ROOT/data", None, M::MS_BIND, None),
        ]
    );
    assert_eq!(
        mounts[6],
        mount(
            None,
            "$ROOT/data",
            None,
            M::MS_BIND | M::MS_REMOUNT | M::MS_RDONLY | M::MS_NODEV | M::MS_NOEXEC,
            None
        )
    );
    // No mknod in a user namespace: each default device is the host's node, bound onto an
    // empty file.
    assert!(!sys.calls().iter().any(|c| matches!(c, Call::Mknod { .. })));
    let binds: Vec<&Call> = mounts[7..].iter().collect();
    assert_eq!(binds.len(), 6);
    assert_eq!(
        *binds[0],
        mount(Some("/dev/null"), "$ROOT/dev/null", None, M::MS_BIND, None)
    );
    assert_eq!(
        *binds[5],
        mount(Some("/dev/tty"), "$ROOT/dev/tty", None, M::MS_BIND, None)
    );
    assert!(f.rootfs.join("dev/null").is_file());
}

#[test]
fn v1_cgroup_hierarchies_are_bound_under_a_tmpfs() {
    let f = fixture();
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                    "options": ["nosuid", "noexec", "nodev", "ro"]}],
    }))
    .unwrap();
    let h = |name: &str, v2: bool, options: &str, dir: &str| Hierarchy {
        name: name.into(),
        v2,
        options: options.into(),
        dir: PathBuf::from(dir),
    };
    let cg = CgroupMounts {
        unified_only: false,
        hierarchies: vec![
            h(
                "cpu,cpuacct",
                false,
                "cpu,cpuacct",
                "/sys/fs/cgroup/cpu,cpuacct/c1",
            ),
            h("memory", false, "memory", "/sys/fs/cgroup/memory/c1"),
            h("unified", true, "", "/sys/fs/cgroup/unified/c1"),
        ],
    };
    let sys = sys_for(&f);
    // Without a cgroup namespace every hierarchy is a bind of the container's directory.
    let mut p = plan(&f, &spec, Some(&cg), false);
    p.cgroupns = false;
    prepare(&p, &sys).unwrap();

    use MsFlags as M;
    let g = M::MS_NOSUID | M::MS_NOEXEC | M::MS_NODEV;
    let bind = |dir: &str, at: &str| {
        vec![
            mount(Some(dir), at, None, M::MS_BIND | M::MS_REC, None),
            mount(
                None,
                at,
                None,
                M::MS_BIND | M::MS_REMOUNT | g | M::MS_RDONLY,
                None,
            ),
        ]
    };
    let mut expected = vec![mount(
        Some("tmpfs"),
        "$ROOT/sys/fs/cgroup",
        Some("tmpfs"),
        g,
        Some("mode=755"),
    )];
    expected.extend(bind(
        "/sys/fs/cgroup/cpu,cpuacct/c1",
        "$ROOT/sys/fs/cgroup/cpu,cpuacct",
    ));
    expected.extend(bind(
        "/sys/fs/cgroup/memory/c1",
        "$ROOT/sys/fs/cgroup/memory",
    ));
    expected.extend(bind(
        "/sys/fs/cgroup/unified/c1",
        "$ROOT/sys/fs/cgroup/unified",
    ));
    // Then the tmpfs itself becomes read-only.
    expected.push(mount(
        None,
        "$ROOT/sys/fs/cgroup",
        None,
        M::MS_REMOUNT | M::MS_RDONLY | g,
        Some("mode=755"),
    ));
    assert_eq!(sys.mounts()[2..], expected[..]);
    // Co-mounted controllers are reachable under each name.
    let links: Vec<Call> = sys
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Symlink { link, .. } if link.contains("cgroup")))
        .collect();
    assert_eq!(
        links,
        [
            Call::Symlink {
                link: "$ROOT/sys/fs/cgroup/cpu".into(),
                target: "cpu,cpuacct".into()
            },
            Call::Symlink {
                link: "$ROOT/sys/fs/cgroup/cpuacct".into(),
                target: "cpu,cpuacct".into()
            },
        ]
    );

    // With a cgroup namespace a v1 hierarchy is mounted anew; where that is refused, bound.
    let sys = sys_for(&f);
    sys.fail(
        |c| matches!(c, Call::Mount { fstype: Some(t), target, .. } if t == "cgroup" && target.ends_with("/memory")),
        Errno::EPERM,
    );
    prepare(&plan(&f, &spec, Some(&cg), false), &sys).unwrap();
    let m = sys.mounts();
    assert_eq!(
        m[3],
        mount(
            Some("cgroup"),
            "$ROOT/sys/fs/cgroup/cpu,cpuacct",
            Some("cgroup"),
            g | M::MS_RDONLY,
            Some("cpu,cpuacct")
        )
    );
    assert_eq!(
        m[4],
        mount(
            Some("cgroup"),
            "$ROOT/sys/fs/cgroup/memory",
            Some("cgroup"),
            g | M::MS_RDONLY,
            Some("memory")
        )
    );
    assert_eq!(
        m[5..7],
        bind("/sys/fs/cgroup/memory/c1", "$ROOT/sys/fs/cgroup/memory")[..]
    );
    assert_eq!(
        m[7],
        mount(
            Some("cgroup2"),
            "$ROOT/sys/fs/cgroup/unified",
            Some("cgroup2"),
            g | M::MS_RDONLY,
            None
        )
    );
}

#[test]
fn a_failing_mount_is_a_mount_error_naming_the_destination() {
    let f = fixture();
    let spec = typical_spec(&f);
    let cg = v2_cgroups();
    let sys = sys_for(&f);
    sys.fail(
        |c| matches!(c, Call::Mount { target, .. } if target == "$ROOT/dev/shm"),
        Errno::EACCES,
    );
    let e = prepare(&plan(&f, &spec, Some(&cg), false), &sys).unwrap_err();
    match &e {
        Error::Mount {
            destination,
            context,
            source,
        } => {
            assert_eq!(destination, Path::new("/dev/shm"));
            assert!(context.starts_with("mounting tmpfs shm"), "{context}");
            assert_eq!(source.raw_os_error(), Some(libc::EACCES));
        }
        other => panic!("expected a mount error, got {other:?}"),
    }
    assert!(
        e.to_string()
            .starts_with("mount /dev/shm: mounting tmpfs shm")
    );
    // Nothing after the failed mount was attempted.
    let last = sys.mounts().pop().unwrap();
    assert!(matches!(last, Call::Mount { target, .. } if target == "$ROOT/dev/shm"));

    // A bind's remount failing names the bind's destination too.
    let sys = sys_for(&f);
    sys.fail(
        |c| matches!(c, Call::Mount { flags, target, .. } if target == "$ROOT/data" && flags.contains(MsFlags::MS_REMOUNT)),
        Errno::EPERM,
    );
    match prepare(&plan(&f, &spec, Some(&cg), false), &sys).unwrap_err() {
        Error::Mount {
            destination,
            context,
            ..
        } => {
            assert_eq!(destination, Path::new("/data"));
            assert_eq!(context, "applying the bind mount's flags");
        }
        other => panic!("expected a mount error, got {other:?}"),
    }

    // A missing bind source is a mount error (ENOENT), before any mount of it.
    let spec: Spec = serde_json::from_value(json!({
        "ociVersion": "1.0.2",
        "process": {"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "root": {"path": "rootfs"},
        "mounts": [{"destination": "/x", "type": "bind", "source": "no-such-dir", "options": ["bind"]}],
    }))
    .unwrap();
    let sys = sys_for(&f);
    match prepare(&plan(&f, &spec, None, false), &sys).unwrap_err() {
        Error::Mount {
            destination,
            source,
            ..
        } => {
            assert_eq!(destination, Path::new("/x"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        }
        other => panic!("expected a mount error, got {other:?}"),
    }
    assert_eq!(sys.mounts().len(), 2);
}

#[test]
fn pivot_root_sequence() {
    let f = fixture();
    let spec = typical_spec(&f);
    let sys = sys_for(&f);
    pivot(&plan(&f, &spec, None, false), &sys).unwrap();
    assert_eq!(
        sys.calls(),
        [
            Call::Fchdir("$ROOT".into()),
            Call::PivotRoot {
                new_root: ".".into(),
                put_old: ".".into()
            },
            // The old root, stacked under the new one: made a slave, then detached.
            Call::Fchdir("/".into()),
            mount(None, ".", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None),
            Call::Umount2 {
                target: ".".into(),
                flags: MntFlags::MNT_DETACH
            },
            Call::Chdir("/".into()),
        ]
    );

    let sys = sys_for(&f);
    let mut p = plan(&f, &spec, None, false);
    p.no_pivot = true;
    pivot(&p, &sys).unwrap();
    assert_eq!(
        sys.calls(),
        [
            Call::Chdir("$ROOT".into()),
            mount(Some("$ROOT"), "/", None, MsFlags::MS_MOVE, None),
            Call::Chroot(".".into()),
            Call::Chdir("/".into()),
        ]
    );

    let sys = sys_for(&f);
    sys.fail(|c| matches!(c, Call::PivotRoot { .. }), Errno::EINVAL);
    let e = pivot(&plan(&f, &spec, None, false), &sys).unwrap_err();
    assert!(
        matches!(&e, Error::Io { context, source } if context == "pivot_root" && source.raw_os_error() == Some(libc::EINVAL)),
        "{e:?}"
    );
}

#[test]
fn masked_and_read_only_paths_and_a_read_only_root() {
    let f = fixture();
    let spec = typical_spec(&f);
    // What the container's /proc holds, as seen after pivot_root.
    std::fs::create_dir_all(f.rootfs.join("proc/acpi")).unwrap();
    std::fs::create_dir_all(f.rootfs.join("proc/sys")).unwrap();
    std::fs::write(f.rootfs.join("proc/kcore"), "").unwrap();
    let mut sys = RecordingSys::new(&f.rootfs);
    sys.fake_mount_flags("/proc/sys", FsFlags::ST_NOSUID | FsFlags::ST_NOEXEC);
    sys.fake_mount_flags("/", FsFlags::ST_NODEV);
    // A read-only path that is not there is skipped, as runc does.
    sys.fail(
        |c| matches!(c, Call::Mount { target, .. } if target == "/proc/absent"),
        Errno::ENOENT,
    );
    let p = plan(&f, &spec, None, false);
    pivot(&p, &sys).unwrap();
    let before = sys.mounts().len();
    finalize(&p, &sys).unwrap();

    use MsFlags as M;
    assert_eq!(
        sys.mounts()[before..],
        [
            // Read-only paths: bind onto itself, then remount read-only keeping the mount's
            // locked flags.
            mount(
                Some("/proc/sys"),
                "/proc/sys",
                None,
                M::MS_BIND | M::MS_REC,
                None
            ),
            mount(
                Some("/proc/sys"),
                "/proc/sys",
                None,
                M::MS_BIND | M::MS_REMOUNT | M::MS_RDONLY | M::MS_REC | M::MS_NOSUID | M::MS_NOEXEC,
                None
            ),
            mount(
                Some("/proc/absent"),
                "/proc/absent",
                None,
                M::MS_BIND | M::MS_REC,
                None
            ),
            // Masked paths: /dev/null over a file, an empty read-only tmpfs over a directory,
            // nothing for a path that does not exist.
            mount(Some("/dev/null"), "/proc/kcore", None, M::MS_BIND, None),
            mount(
                Some("tmpfs"),
                "/proc/acpi",
                Some("tmpfs"),
                M::MS_RDONLY,
                None
            ),
            // root.readonly.
            mount(
                None,
                "/",
                None,
                M::MS_BIND | M::MS_REMOUNT | M::MS_RDONLY | M::MS_NODEV,
                None
            ),
        ]
    );
}

#[test]
fn rootfs_propagation() {
    let f = fixture();
    let mut spec = typical_spec(&f);
    let mut linux = spec.linux().clone().unwrap();
    linux.set_rootfs_propagation(Some("rshared".into()));
    spec.set_linux(Some(linux));
    let sys = sys_for(&f);
    let cg = v2_cgroups();
    let p = plan(&f, &spec, Some(&cg), false);
    prepare(&p, &sys).unwrap();
    // Shared cannot be set before pivot_root: / starts as a slave…
    assert_eq!(
        sys.mounts()[0],
        mount(None, "/", None, MsFlags::MS_SLAVE | MsFlags::MS_REC, None)
    );
    let sys = sys_for(&f);
    finalize(&p, &sys).unwrap();
    // …and becomes shared once it is the root.
    assert_eq!(
        sys.mounts()[0],
        mount(None, "/", None, MsFlags::MS_SHARED | MsFlags::MS_REC, None)
    );

    let mut linux = spec.linux().clone().unwrap();
    linux.set_rootfs_propagation(Some("private".into()));
    spec.set_linux(Some(linux));
    let sys = sys_for(&f);
    prepare(&plan(&f, &spec, None, false), &sys).unwrap_or_else(|e| {
        // The cgroup mount needs cgroups; only the first mount matters here.
        assert!(matches!(e, Error::Unsupported(_)));
    });
    assert_eq!(
        sys.mounts()[0],
        mount(None, "/", None, MsFlags::MS_PRIVATE, None)
    );
}

#[test]
fn sysctls_are_written_under_proc_sys() {
    let f = fixture();
    let sys = RecordingSys::new(&f.rootfs);
    let mut map = std::collections::HashMap::new();
    map.insert("net.ipv4.ip_forward".to_string(), "1".to_string());
    map.insert("kernel.msgmax".to_string(), "65536".to_string());
    write_sysctls(&sys, &map).unwrap();
    let mut calls = sys.calls();
    calls.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(
        calls,
        [
            Call::WriteFile {
                path: "/proc/sys/kernel/msgmax".into(),
                data: "65536".into()
            },
            Call::WriteFile {
                path: "/proc/sys/net/ipv4/ip_forward".into(),
                data: "1".into()
            },
        ]
    );
}
