//! berth's default profile (`berth_spec::seccomp`, Docker's) compiled by berth-seccomp and
//! enforced by the kernel. A child (this test binary again, running the ignored `probe`
//! test) loads a profile and makes system calls; the parent checks each result. The same
//! probes under an allow-all filter show that the refusals come from the profile, not from the
//! host.

use std::collections::BTreeMap;
use std::process::Command;

use berth_spec::docker::DEFAULT_CAPABILITIES;
use berth_spec::seccomp::{Host, default_profile, profile_for};
use oci_spec::runtime::LinuxSeccomp;

const EPERM: i32 = libc::EPERM;

/// One probe's outcome: the call's return value and errno (0 when it succeeded).
type Results = BTreeMap<String, (i64, i32)>;

/// Run the probes in a child that loads `profile` first.
fn probe_with(profile: &LinuxSeccomp) -> Results {
    probe_cached(profile, None)
}

/// The same, the child compiling through `compile_cached` with `cache` when given.
fn probe_cached(profile: &LinuxSeccomp, cache: Option<&std::path::Path>) -> Results {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    if let Some(c) = cache {
        cmd.env("BERTH_PROBE_CACHE", c);
    }
    let o = cmd
        .args([
            "--exact",
            "probe",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            "BERTH_PROBE_PROFILE",
            serde_json::to_string(profile).unwrap(),
        )
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let results: Results = out
        .lines()
        .filter_map(|l| {
            // libtest may print "test probe ... " on the line of the first probe.
            let (_, probe) = l.split_once("PROBE ")?;
            let mut f = probe.split(' ');
            let name = f.next()?.to_string();
            let ret = f.next()?.parse().ok()?;
            let errno = f.next()?.parse().ok()?;
            Some((name, (ret, errno)))
        })
        .collect();
    assert!(
        o.status.success() && out.contains("PROBES DONE"),
        "the child failed: {:?}\n{out}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    results
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn report(name: &str, ret: i64) {
    let e = if ret < 0 { errno() } else { 0 };
    println!("PROBE {name} {ret} {e}");
}

/// Wait for a child made by fork or clone and say whether it exited with 0.
fn reaped_ok(pid: libc::pid_t) -> bool {
    let mut status = 0;
    // SAFETY: waitpid on our own child, with a valid pointer for the status.
    let r = unsafe { libc::waitpid(pid, &mut status, 0) };
    r == pid && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

/// The child side: load the profile from the environment, then make each call.
#[test]
#[ignore = "runs only as the child of the other tests"]
fn probe() {
    let Ok(profile) = std::env::var("BERTH_PROBE_PROFILE") else {
        return;
    };
    let profile: LinuxSeccomp = serde_json::from_str(&profile).unwrap();
    let filter = match std::env::var_os("BERTH_PROBE_CACHE") {
        Some(dir) => berth_seccomp::compile_cached(&profile, std::path::Path::new(&dir)).unwrap(),
        None => berth_seccomp::compile(&profile).unwrap(),
    };
    // SAFETY: prctl with integer arguments.
    let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    assert_eq!(r, 0);
    filter.load().unwrap();

    let missing = c"/berth-seccomp-probe-no-such-dir";
    // SAFETY: system calls with valid pointers to C strings and buffers that outlive each
    // call, or null where a call takes none; the children of fork and clone only _exit.
    unsafe {
        report("getpid", libc::getpid().into());
        let fd = libc::openat(
            libc::AT_FDCWD,
            c"/proc/self/status".as_ptr(),
            libc::O_RDONLY,
        );
        report("openat", fd.into());
        if fd >= 0 {
            libc::close(fd);
        }
        report("unshare_newns", libc::unshare(libc::CLONE_NEWNS).into());
        report(
            "mount",
            libc::mount(
                c"none".as_ptr(),
                missing.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
            .into(),
        );
        report("umount2", libc::umount2(missing.as_ptr(), 0).into());
        report("setns", libc::setns(-1, 0).into());
        // KEYCTL_GET_KEYRING_ID (0) of the thread keyring (-1), not creating it.
        report("keyctl", libc::syscall(libc::SYS_keyctl, 0, -1, 0));
        // clone3 with no arguments: EINVAL from the kernel, ENOSYS from the profile.
        report("clone3", libc::syscall(libc::SYS_clone3, 0, 0));
        report(
            "socket_vsock",
            libc::socket(libc::AF_VSOCK, libc::SOCK_STREAM, 0).into(),
        );
        report(
            "socket_alg",
            libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0).into(),
        );
        let unix = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        report("socket_unix", unix.into());
        if unix >= 0 {
            libc::close(unix);
        }
        report("personality_query", libc::personality(0xffff_ffff).into());
        report(
            "personality_no_randomize",
            libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong).into(),
        );
        // reboot with a bad magic number: EINVAL from the kernel, nothing happens.
        report("reboot", libc::syscall(libc::SYS_reboot, 0, 0, 0, 0));

        // clone with a namespace flag: refused by the profile. (Flags are clone's first
        // argument except on s390.) Under the allow-all filter the child exits at once.
        let flags = (libc::CLONE_NEWUTS | libc::SIGCHLD) as libc::c_long;
        let pid = if cfg!(target_arch = "s390x") {
            libc::syscall(libc::SYS_clone, 0, flags, 0, 0, 0)
        } else {
            libc::syscall(libc::SYS_clone, flags, 0, 0, 0, 0)
        };
        if pid == 0 {
            libc::_exit(0);
        }
        report("clone_newuts", pid);
        if pid > 0 {
            reaped_ok(pid as libc::pid_t);
        }

        // fork (glibc: clone with SIGCHLD only).
        let pid = libc::fork();
        if pid == 0 {
            libc::_exit(0);
        }
        let ok = pid > 0 && reaped_ok(pid);
        report("fork", if ok { 0 } else { -1 });

        // Reading our own memory through process_vm_readv (allowed since Linux 4.8).
        let src = *b"berth";
        let mut dst = [0u8; 5];
        let local = libc::iovec {
            iov_base: dst.as_mut_ptr().cast(),
            iov_len: dst.len(),
        };
        let remote = libc::iovec {
            iov_base: src.as_ptr() as *mut libc::c_void,
            iov_len: src.len(),
        };
        let n = libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0);
        report("process_vm_readv", if dst == src { n as i64 } else { -1 });
    }
    // A thread: glibc tries clone3, gets ENOSYS, and falls back to clone.
    let t = std::thread::spawn(|| 7).join();
    report("thread", if matches!(t, Ok(7)) { 0 } else { -1 });
    println!("PROBES DONE");
}

fn expect(r: &Results, name: &str, ok: bool, err: i32) {
    let got = r.get(name).copied();
    let pass = match got {
        Some((ret, e)) if ok => ret >= 0 && e == 0,
        Some((ret, e)) => ret == -1 && e == err,
        None => false,
    };
    assert!(
        pass,
        "{name}: got {got:?}, expected {}",
        if ok {
            "success".to_string()
        } else {
            format!("errno {err}")
        }
    );
}

#[test]
fn the_kernel_enforces_the_default_profile() {
    let r = probe_with(&default_profile(DEFAULT_CAPABILITIES));
    for name in [
        "getpid",
        "openat",
        "socket_unix",
        "personality_query",
        "fork",
        "thread",
        "process_vm_readv",
    ] {
        expect(&r, name, true, 0);
    }
    for name in [
        "unshare_newns",
        "mount",
        "umount2",
        "setns",
        "keyctl",
        "socket_vsock",
        "socket_alg",
        "personality_no_randomize",
        "reboot",
        "clone_newuts",
    ] {
        expect(&r, name, false, EPERM);
    }
    expect(&r, "clone3", false, libc::ENOSYS);
}

/// The cached program is the same filter: a first container compiles and stores it, a second
/// loads it from the cache without libseccomp; both see exactly what the compiled one sees.
/// A damaged cache entry is a miss (compiled again), never a weaker filter.
#[test]
fn the_cached_program_is_the_same_filter() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("seccomp");
    let profile = default_profile(DEFAULT_CAPABILITIES);
    let compiled = outcomes(probe_with(&profile));
    let first = outcomes(probe_cached(&profile, Some(&cache)));
    let entries: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    let second = outcomes(probe_cached(&profile, Some(&cache)));
    assert_eq!(first, compiled);
    assert_eq!(second, compiled);
    // Cut the entry short: the next load compiles again and still enforces the profile.
    let bytes = std::fs::read(&entries[0]).unwrap();
    std::fs::write(&entries[0], &bytes[..bytes.len() - 8]).unwrap();
    assert_eq!(outcomes(probe_cached(&profile, Some(&cache))), compiled);
    assert_eq!(
        std::fs::read(&entries[0]).unwrap(),
        bytes,
        "rewritten whole"
    );
    // Another profile gets an entry of its own.
    let mut caps = DEFAULT_CAPABILITIES.to_vec();
    caps.push("CAP_SYS_ADMIN");
    let admin = default_profile(&caps);
    assert_eq!(
        outcomes(probe_cached(&admin, Some(&cache))),
        outcomes(probe_with(&admin))
    );
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 2);
}

/// The results with pids and fd numbers reduced to "succeeded": what a filter decides.
fn outcomes(r: Results) -> BTreeMap<String, (bool, i32)> {
    r.into_iter()
        .map(|(name, (ret, errno))| (name, (ret >= 0, errno)))
        .collect()
}

/// The same probes under a filter that allows everything: none is refused with EPERM and
/// clone3 is the kernel's EINVAL, so the results above are the profile's doing.
#[test]
fn without_the_profile_the_same_calls_are_not_refused() {
    let allow_all: LinuxSeccomp =
        serde_json::from_value(serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
    let r = probe_with(&allow_all);
    for (name, (ret, e)) in &r {
        assert!(
            !(*ret == -1 && *e == EPERM),
            "{name} is refused even without the profile: is the test running as root?"
        );
    }
    for name in ["unshare_newns", "personality_no_randomize", "clone_newuts"] {
        expect(&r, name, true, 0);
    }
    expect(&r, "mount", false, libc::ENOENT);
    expect(&r, "setns", false, libc::EBADF);
    expect(&r, "clone3", false, libc::EINVAL);
    expect(&r, "reboot", false, libc::EINVAL);
}

/// With CAP_SYS_ADMIN the namespace calls are the profile's to allow: clone with a namespace
/// flag, unshare and clone3 are no longer refused by it.
#[test]
fn cap_sys_admin_lets_namespace_calls_through() {
    let mut caps = DEFAULT_CAPABILITIES.to_vec();
    caps.push("CAP_SYS_ADMIN");
    let r = probe_with(&default_profile(&caps));
    for name in ["unshare_newns", "clone_newuts", "thread"] {
        expect(&r, name, true, 0);
    }
    expect(&r, "mount", false, libc::ENOENT);
    expect(&r, "clone3", false, libc::EINVAL);
    // Still refused: what CAP_SYS_ADMIN does not govern.
    expect(&r, "keyctl", false, EPERM);
    expect(&r, "reboot", false, EPERM);
    expect(&r, "socket_vsock", false, EPERM);
}

const ALL_CAPS: &[&str] = &[
    "CAP_AUDIT_CONTROL",
    "CAP_AUDIT_READ",
    "CAP_AUDIT_WRITE",
    "CAP_BLOCK_SUSPEND",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_KILL",
    "CAP_LEASE",
    "CAP_LINUX_IMMUTABLE",
    "CAP_MAC_ADMIN",
    "CAP_MAC_OVERRIDE",
    "CAP_MKNOD",
    "CAP_NET_ADMIN",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_RAW",
    "CAP_PERFMON",
    "CAP_SETFCAP",
    "CAP_SETGID",
    "CAP_SETPCAP",
    "CAP_SETUID",
    "CAP_SYSLOG",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_CHROOT",
    "CAP_SYS_MODULE",
    "CAP_SYS_NICE",
    "CAP_SYS_PACCT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_WAKE_ALARM",
];

/// Every profile berth can make compiles: this host's with no, the default and every
/// capability, and those of the other architectures Docker knows that share the host's byte
/// order (the filter then covers their system call tables too). Names this libseccomp does not know are skipped.
#[test]
fn every_variant_of_the_profile_compiles() {
    let none: &[&str] = &[];
    // libseccomp mixes only architectures of the host's byte order in one filter.
    let arches: &[&str] = if cfg!(target_endian = "little") {
        &[
            "amd64", "x86", "arm64", "arm", "ppc64le", "riscv64", "mipsel64",
        ]
    } else {
        &["s390x", "ppc64", "mips64"]
    };
    for caps in [none, DEFAULT_CAPABILITIES, ALL_CAPS] {
        berth_seccomp::compile(&default_profile(caps)).unwrap();
        for &arch in arches {
            let host = Host {
                arch,
                kernel: Some((6, 1)),
            };
            let p = profile_for(&host, caps);
            if let Err(e) = berth_seccomp::compile(&p) {
                panic!("{arch} with {} caps: {e}", caps.len());
            }
        }
    }
    let p = default_profile(ALL_CAPS);
    let unknown: Vec<&String> = p
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names())
        .filter(|n| libseccomp::ScmpSyscall::from_name(n).is_err())
        .collect();
    eprintln!("names this libseccomp does not know (skipped): {unknown:?}");
    // The ones every program needs are known.
    for n in [
        "read", "write", "execve", "clone", "clone3", "socket", "openat",
    ] {
        assert!(libseccomp::ScmpSyscall::from_name(n).is_ok(), "{n}");
    }
}
