//! Docker's default seccomp profile, as berth's own table.
//!
//! A container may make the system calls an ordinary program needs and nothing that reaches
//! past its namespaces (mounting, new namespaces, kernel modules, keyrings, rebooting, the
//! clock, swap, …) unless it holds the capability that would let it anyway: then the calls
//! that capability governs are allowed too. Everything else fails with `EPERM`, except
//! `clone3`, which fails with `ENOSYS` (see [`ENOSYS`]).
//!
//! [`default_profile`] gives the same `linux.seccomp` that Docker gives a container
//! (moby's `profiles/seccomp`, v0.2.3): default action `SCMP_ACT_ERRNO` with errno 1
//! (`EPERM`), the host's architectures, and the rules of the [`GROUPS`] table whose
//! conditions hold. The conditions are Docker's:
//!
//! - *includes* (all must hold): the container has **every** listed capability, the host is
//!   **one of** the listed architectures, the kernel is at least the given version;
//! - *excludes* (any one drops the group): the container has **any** listed capability, the
//!   host is one of the listed architectures, the kernel is at least the given version.
//!
//! Capabilities are those the container is given (Docker looks at the bounding set; its
//! containers have the same bounding, effective and permitted sets), the architecture is the
//! one berth was compiled for, and the kernel is the running one ([`Host::current`]).
//!
//! Some names are newer than the libseccomp of a host (e.g. `mseal` or `listmount` for
//! libseccomp 2.5.4), and many exist only on some architectures (`chown32`, `socketcall`):
//! `berth-seccomp` skips names libseccomp does not know, as runc does, and libseccomp applies
//! each known name on the architectures that have it.
//!
//! Two things that may surprise: `ptrace` and `process_vm_readv`/`writev` are allowed on
//! Linux 4.8 and later (since 4.8 a tracer cannot use them to get around a filter), as in
//! Docker; and the refusal of `AF_ALG`/`AF_VSOCK` sockets covers the `socket` call only, not
//! 32-bit x86 programs' `socketcall`, which the base list allows (Docker's limitation too).

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompArgBuilder,
    LinuxSeccompOperator, LinuxSyscall,
};

/// `EPERM`: what a system call outside the profile returns.
pub const DEFAULT_ERRNO: u32 = 1;

/// `ENOSYS`: what `clone3` returns to a container without CAP_SYS_ADMIN, so that the C
/// library falls back to `clone`, whose flags the filter can see (`clone3` passes them in
/// memory, out of a filter's reach).
pub const ENOSYS: u32 = 38;

/// The namespace flags of `clone`: `CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
/// CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET`. Without CAP_SYS_ADMIN,
/// `clone` is allowed only when none of them is set.
pub const CLONE_NAMESPACE_FLAGS: u64 =
    0x0002_0000 | 0x0200_0000 | 0x0400_0000 | 0x0800_0000 | 0x1000_0000 | 0x2000_0000 | 0x4000_0000;

/// `AF_ALG` (the kernel's crypto sockets) and `AF_VSOCK` (sockets to the hypervisor and other
/// virtual machines): the only address families `socket` refuses.
const AF_ALG: u64 = 38;
const AF_VSOCK: u64 = 40;

/// What the rules are evaluated against besides the container's capabilities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// The architecture, by Docker's name for it (libseccomp's native names: `amd64`, `x86`,
    /// `arm64`, `arm`, `s390x`, `ppc64le`, `riscv64`, …; see [`host_arch`]).
    pub arch: &'static str,
    /// The kernel version (major, minor), or `None` when unknown, which counts as new enough
    /// for every rule (berth needs openat2, i.e. Linux 5.6, and the only kernel condition in
    /// Docker's profile is 4.8).
    pub kernel: Option<(u32, u32)>,
}

impl Host {
    /// This host: the architecture berth was compiled for and the running kernel (read from
    /// `/proc/sys/kernel/osrelease`).
    pub fn current() -> Host {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .and_then(|r| parse_kernel_release(&r));
        Host {
            arch: host_arch(),
            kernel,
        }
    }
}

/// Docker's name for the architecture berth was compiled for (Go's `GOARCH` turned into
/// libseccomp's native name, as moby does), e.g. `amd64` for x86_64.
pub fn host_arch() -> &'static str {
    let little = cfg!(target_endian = "little");
    let narrow = cfg!(target_pointer_width = "32");
    match std::env::consts::ARCH {
        "x86_64" if narrow => "x32",
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "loongarch64" => "loong64",
        "mips" if little => "mipsel",
        "mips64" if narrow && little => "mipsel64n32",
        "mips64" if narrow => "mips64n32",
        "mips64" if little => "mipsel64",
        "powerpc" => "ppc",
        "powerpc64" if little => "ppc64le",
        "powerpc64" => "ppc64",
        // x86, arm, mips, riscv64, s390x: the same names.
        other => other,
    }
}

/// "6.18.44-generic" → (6, 18): only the version and the major revision count, as Docker.
fn parse_kernel_release(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// The seccomp architectures of a filter for a host (Docker's `archMap`): the native one and
/// those whose programs the kernel also runs. `None` for hosts Docker lists nothing for
/// (32-bit ones): the filter then covers the native architecture only.
fn architectures(arch: &str) -> Option<Vec<Arch>> {
    use Arch::*;
    let list = match arch {
        "amd64" => vec![ScmpArchX86_64, ScmpArchX86, ScmpArchX32],
        "arm64" => vec![ScmpArchAarch64, ScmpArchArm],
        "mips64" => vec![ScmpArchMips64, ScmpArchMips, ScmpArchMips64n32],
        "mips64n32" => vec![ScmpArchMips64n32, ScmpArchMips, ScmpArchMips64],
        "mipsel64" => vec![ScmpArchMipsel64, ScmpArchMipsel, ScmpArchMipsel64n32],
        "mipsel64n32" => vec![ScmpArchMipsel64n32, ScmpArchMipsel, ScmpArchMipsel64],
        "s390x" => vec![ScmpArchS390x, ScmpArchS390],
        "riscv64" => vec![ScmpArchRiscv64],
        // (moby's own map misses this one by a name mismatch; native-only is the same.)
        "loong64" => vec![ScmpArchLoongarch64],
        _ => return None,
    };
    Some(list)
}

/// When a group applies (see the module docs). Empty lists and `None` say nothing.
#[derive(Clone, Copy, Debug)]
pub struct Condition {
    /// Capabilities (`CAP_…`).
    pub caps: &'static [&'static str],
    /// Architectures, by Docker's names (see [`Host::arch`]).
    pub arches: &'static [&'static str],
    /// A kernel version (major, minor).
    pub min_kernel: Option<(u32, u32)>,
}

const NONE: Condition = Condition {
    caps: &[],
    arches: &[],
    min_kernel: None,
};

/// What a rule does to a matching call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Let it through.
    Allow,
    /// Fail it with this errno.
    Errno(u32),
}

/// A test on one argument of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgTest {
    /// The argument equals the value.
    Eq(u64),
    /// The argument is below the value.
    Lt(u64),
    /// The argument is above the value.
    Gt(u64),
    /// `argument & mask == 0`: none of the mask's bits is set.
    NoBits(u64),
}

/// A group of system calls with one action, optional argument tests (all must hold) and the
/// condition under which the group is part of a container's profile.
#[derive(Clone, Copy, Debug)]
pub struct Group {
    /// The system calls.
    pub names: &'static [&'static str],
    /// What happens to them.
    pub action: Action,
    /// Argument tests as (argument index, test).
    pub args: &'static [(usize, ArgTest)],
    /// Included only if all of this holds.
    pub includes: Condition,
    /// Left out if any of this holds.
    pub excludes: Condition,
}

const fn allow(names: &'static [&'static str]) -> Group {
    Group {
        names,
        action: Action::Allow,
        args: &[],
        includes: NONE,
        excludes: NONE,
    }
}

/// `names` allowed only to a container holding the capability.
const fn with_cap(names: &'static [&'static str], caps: &'static [&'static str]) -> Group {
    Group {
        includes: Condition {
            caps,
            arches: &[],
            min_kernel: None,
        },
        ..allow(names)
    }
}

/// `names` allowed only on these architectures.
const fn on_arches(names: &'static [&'static str], arches: &'static [&'static str]) -> Group {
    Group {
        includes: Condition {
            caps: &[],
            arches,
            min_kernel: None,
        },
        ..allow(names)
    }
}

/// `name` allowed when its argument passes one test.
const fn allow_if(names: &'static [&'static str], args: &'static [(usize, ArgTest)]) -> Group {
    Group {
        args,
        ..allow(names)
    }
}

/// The calls every container may make, by what they are for. They become one rule.
#[rustfmt::skip]
pub const BASE: &[&[&str]] = &[
    // Paths, files and directories.
    &[
        "access", "chdir", "chmod", "chown", "chown32", "creat", "faccessat", "faccessat2",
        "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
        "futimesat", "getcwd", "getdents", "getdents64", "lchown", "lchown32", "link", "linkat",
        "mkdir", "mkdirat", "mknod", "mknodat", "name_to_handle_at", "open", "openat",
        "openat2", "readlink", "readlinkat", "rename", "renameat", "renameat2", "rmdir",
        "symlink", "symlinkat", "truncate", "truncate64", "ftruncate", "ftruncate64", "umask",
        "unlink", "unlinkat", "utime", "utimes", "utimensat", "utimensat_time64",
    ],
    // File status and file system statistics.
    &[
        "stat", "stat64", "lstat", "lstat64", "fstat", "fstat64", "fstatat64", "newfstatat",
        "statx", "statfs", "statfs64", "fstatfs", "fstatfs64",
    ],
    // Extended attributes.
    &[
        "getxattr", "lgetxattr", "fgetxattr", "getxattrat", "setxattr", "lsetxattr",
        "fsetxattr", "setxattrat", "listxattr", "llistxattr", "flistxattr", "listxattrat",
        "removexattr", "lremovexattr", "fremovexattr", "removexattrat",
    ],
    // File descriptors and reading and writing them.
    &[
        "close", "close_range", "dup", "dup2", "dup3", "fcntl", "fcntl64", "flock", "ioctl",
        "pipe", "pipe2", "read", "readv", "pread64", "preadv", "preadv2", "write", "writev",
        "pwrite64", "pwritev", "pwritev2", "lseek", "_llseek", "sendfile", "sendfile64",
        "splice", "tee", "vmsplice", "copy_file_range", "fadvise64", "fadvise64_64",
        "fallocate", "readahead", "cachestat", "sync", "syncfs", "fsync", "fdatasync",
        "sync_file_range",
    ],
    // Waiting for events, and the descriptors that deliver them.
    &[
        "poll", "ppoll", "ppoll_time64", "select", "_newselect", "pselect6", "pselect6_time64",
        "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_wait",
        "epoll_wait_old", "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "inotify_init",
        "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "fanotify_mark", "signalfd",
        "signalfd4", "timerfd_create", "timerfd_gettime", "timerfd_gettime64",
        "timerfd_settime", "timerfd_settime64",
    ],
    // Asynchronous I/O (not io_uring) and I/O priorities.
    &[
        "io_setup", "io_destroy", "io_submit", "io_cancel", "io_getevents", "io_pgetevents",
        "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    ],
    // Memory.
    &[
        "brk", "mmap", "mmap2", "munmap", "mremap", "mprotect", "madvise", "mincore", "mlock",
        "mlock2", "mlockall", "munlock", "munlockall", "msync", "remap_file_pages",
        "membarrier", "memfd_create", "memfd_secret", "pkey_alloc", "pkey_free",
        "pkey_mprotect", "map_shadow_stack", "mseal", "process_mrelease",
    ],
    // Processes and threads (clone and clone3 are rules of their own).
    &[
        "execve", "execveat", "exit", "exit_group", "fork", "vfork", "wait4", "waitid",
        "waitpid", "getpid", "getppid", "gettid", "getpgid", "getpgrp", "setpgid", "getsid",
        "setsid", "set_tid_address", "set_robust_list", "get_robust_list", "rseq",
        "restart_syscall", "futex", "futex_time64", "futex_waitv", "futex_wait", "futex_wake",
        "futex_requeue", "get_thread_area", "set_thread_area", "prctl", "seccomp", "pidfd_open",
        "pidfd_send_signal", "capget", "capset", "landlock_create_ruleset", "landlock_add_rule",
        "landlock_restrict_self", "uretprobe", "riscv_hwprobe", "getcpu",
    ],
    // Scheduling, priorities, resource limits and usage.
    &[
        "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getattr",
        "sched_setattr", "sched_getparam", "sched_setparam", "sched_getscheduler",
        "sched_setscheduler", "sched_get_priority_max", "sched_get_priority_min",
        "sched_rr_get_interval", "sched_rr_get_interval_time64", "getpriority", "setpriority",
        "getrlimit", "setrlimit", "ugetrlimit", "prlimit64", "getrusage", "times",
    ],
    // User and group IDs.
    &[
        "getuid", "getuid32", "geteuid", "geteuid32", "getgid", "getgid32", "getegid",
        "getegid32", "getresuid", "getresuid32", "getresgid", "getresgid32", "getgroups",
        "getgroups32", "setuid", "setuid32", "setgid", "setgid32", "setreuid", "setreuid32",
        "setregid", "setregid32", "setresuid", "setresuid32", "setresgid", "setresgid32",
        "setfsuid", "setfsuid32", "setfsgid", "setfsgid32", "setgroups", "setgroups32",
    ],
    // Signals.
    &[
        "kill", "tkill", "tgkill", "pause", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
        "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
        "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask",
        "sigreturn",
    ],
    // Clocks, sleeping and timers (adjtimex and clock_adjtime only read without
    // CAP_SYS_TIME).
    &[
        "alarm", "getitimer", "setitimer", "clock_getres", "clock_getres_time64",
        "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
        "nanosleep", "gettimeofday", "time", "timer_create", "timer_delete", "timer_getoverrun",
        "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "adjtimex",
        "clock_adjtime", "clock_adjtime64",
    ],
    // Sockets (socket itself is a rule of its own).
    &[
        "accept", "accept4", "bind", "connect", "listen", "getpeername", "getsockname",
        "getsockopt", "setsockopt", "recv", "recvfrom", "recvmsg", "recvmmsg",
        "recvmmsg_time64", "send", "sendto", "sendmsg", "sendmmsg", "shutdown", "socketpair",
        "socketcall",
    ],
    // System V and POSIX IPC (the container has its own IPC namespace).
    &[
        "ipc", "msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop",
        "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt", "shmget", "mq_open",
        "mq_unlink", "mq_getsetattr", "mq_notify", "mq_timedreceive", "mq_timedreceive_time64",
        "mq_timedsend", "mq_timedsend_time64",
    ],
    // About the system and its mounts (reading only).
    &["uname", "sysinfo", "getrandom", "listmount", "statmount"],
];

/// The conditional and argument-checked rules, in Docker's order, after [`BASE`].
pub const GROUPS: &[Group] = &[
    // Tracing another process could bypass its filter before Linux 4.8; since then the
    // filter runs again after the tracer changes a call.
    Group {
        includes: Condition {
            min_kernel: Some((4, 8)),
            ..NONE
        },
        ..allow(&["process_vm_readv", "process_vm_writev", "ptrace"])
    },
    // socket: every address family but AF_ALG and AF_VSOCK (one rule per range: any passes).
    allow_if(&["socket"], &[(0, ArgTest::Lt(AF_ALG))]),
    allow_if(&["socket"], &[(0, ArgTest::Eq(AF_ALG + 1))]),
    allow_if(&["socket"], &[(0, ArgTest::Gt(AF_VSOCK))]),
    // personality: Linux (PER_LINUX), 32-bit Linux (PER_LINUX32), each with UNAME26, and
    // 0xffffffff, which only asks for the current one.
    allow_if(&["personality"], &[(0, ArgTest::Eq(0x0))]),
    allow_if(&["personality"], &[(0, ArgTest::Eq(0x8))]),
    allow_if(&["personality"], &[(0, ArgTest::Eq(0x2_0000))]),
    allow_if(&["personality"], &[(0, ArgTest::Eq(0x2_0008))]),
    allow_if(&["personality"], &[(0, ArgTest::Eq(0xffff_ffff))]),
    // Architecture-specific calls.
    on_arches(&["sync_file_range2", "swapcontext"], &["ppc64le"]),
    on_arches(
        &[
            "arm_fadvise64_64",
            "arm_sync_file_range",
            "sync_file_range2",
            "breakpoint",
            "cacheflush",
            "set_tls",
        ],
        &["arm", "arm64"],
    ),
    on_arches(&["arch_prctl"], &["amd64", "x32"]),
    on_arches(&["modify_ldt"], &["amd64", "x32", "x86"]),
    on_arches(
        &[
            "s390_pci_mmio_read",
            "s390_pci_mmio_write",
            "s390_runtime_instr",
        ],
        &["s390", "s390x"],
    ),
    on_arches(&["riscv_flush_icache"], &["riscv64"]),
    // What each capability governs.
    with_cap(&["open_by_handle_at"], &["CAP_DAC_READ_SEARCH"]),
    with_cap(
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "lsm_get_self_attr",
            "lsm_list_modules",
            "lsm_set_self_attr",
            "mount",
            "mount_setattr",
            "move_mount",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
        &["CAP_SYS_ADMIN"],
    ),
    // Without CAP_SYS_ADMIN, clone may not make namespaces: the flags are the first
    // argument, except on s390 where they are the second.
    Group {
        args: &[(0, ArgTest::NoBits(CLONE_NAMESPACE_FLAGS))],
        excludes: Condition {
            caps: &["CAP_SYS_ADMIN"],
            arches: &["s390", "s390x"],
            min_kernel: None,
        },
        ..allow(&["clone"])
    },
    Group {
        args: &[(1, ArgTest::NoBits(CLONE_NAMESPACE_FLAGS))],
        includes: Condition {
            arches: &["s390", "s390x"],
            ..NONE
        },
        excludes: Condition {
            caps: &["CAP_SYS_ADMIN"],
            ..NONE
        },
        ..allow(&["clone"])
    },
    // ... and clone3 says it does not exist.
    Group {
        action: Action::Errno(ENOSYS),
        excludes: Condition {
            caps: &["CAP_SYS_ADMIN"],
            ..NONE
        },
        ..allow(&["clone3"])
    },
    with_cap(&["reboot"], &["CAP_SYS_BOOT"]),
    with_cap(&["chroot"], &["CAP_SYS_CHROOT"]),
    with_cap(
        &["delete_module", "init_module", "finit_module"],
        &["CAP_SYS_MODULE"],
    ),
    with_cap(&["acct"], &["CAP_SYS_PACCT"]),
    with_cap(
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
        &["CAP_SYS_PTRACE"],
    ),
    with_cap(&["iopl", "ioperm"], &["CAP_SYS_RAWIO"]),
    with_cap(
        &["settimeofday", "stime", "clock_settime", "clock_settime64"],
        &["CAP_SYS_TIME"],
    ),
    with_cap(&["vhangup"], &["CAP_SYS_TTY_CONFIG"]),
    with_cap(
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        &["CAP_SYS_NICE"],
    ),
    with_cap(&["syslog"], &["CAP_SYSLOG"]),
    with_cap(&["bpf"], &["CAP_BPF"]),
    with_cap(&["perf_event_open"], &["CAP_PERFMON"]),
];

/// The kernel is at least `min` (an unknown kernel counts as new enough).
fn kernel_at_least(host: &Host, min: (u32, u32)) -> bool {
    host.kernel.is_none_or(|k| k >= min)
}

impl Group {
    /// Whether the group is part of the profile of a container holding `caps` on `host`.
    pub fn applies(&self, host: &Host, caps: &[&str]) -> bool {
        let has = |c: &&str| caps.contains(c);
        let on_host = self.includes.arches.is_empty() || self.includes.arches.contains(&host.arch);
        let included = on_host
            && self.includes.caps.iter().all(has)
            && self
                .includes
                .min_kernel
                .is_none_or(|min| kernel_at_least(host, min));
        let excluded = self.excludes.arches.contains(&host.arch)
            || self.excludes.caps.iter().any(has)
            || self
                .excludes
                .min_kernel
                .is_some_and(|min| kernel_at_least(host, min));
        included && !excluded
    }

    fn to_oci(self) -> LinuxSyscall {
        let mut rule = LinuxSyscall::default();
        rule.set_names(self.names.iter().map(|n| n.to_string()).collect());
        match self.action {
            Action::Allow => rule.set_action(LinuxSeccompAction::ScmpActAllow),
            Action::Errno(e) => rule
                .set_action(LinuxSeccompAction::ScmpActErrno)
                .set_errno_ret(Some(e)),
        };
        if !self.args.is_empty() {
            rule.set_args(Some(self.args.iter().map(|&(i, t)| arg(i, t)).collect()));
        }
        rule
    }
}

fn arg(index: usize, test: ArgTest) -> LinuxSeccompArg {
    let (op, value) = match test {
        ArgTest::Eq(v) => (LinuxSeccompOperator::ScmpCmpEq, v),
        ArgTest::Lt(v) => (LinuxSeccompOperator::ScmpCmpLt, v),
        ArgTest::Gt(v) => (LinuxSeccompOperator::ScmpCmpGt, v),
        // MASKED_EQ: `value` is the mask, `valueTwo` what the masked argument must equal
        // (left out: 0, as Docker writes it).
        ArgTest::NoBits(mask) => (LinuxSeccompOperator::ScmpCmpMaskedEq, mask),
    };
    LinuxSeccompArgBuilder::default()
        .index(index)
        .op(op)
        .value(value)
        .build()
        .expect("every field of a seccomp argument has a default")
}

/// Docker's default profile for a container holding `caps` (`CAP_…` names, the container's
/// capability set), on this host ([`Host::current`]).
pub fn default_profile(caps: &[impl AsRef<str>]) -> LinuxSeccomp {
    profile_for(&Host::current(), caps)
}

/// Docker's default profile for a container holding `caps` on `host`.
pub fn profile_for(host: &Host, caps: &[impl AsRef<str>]) -> LinuxSeccomp {
    let caps: Vec<&str> = caps.iter().map(AsRef::as_ref).collect();
    // The base list is one rule, as in Docker's profile.
    let mut base = allow(&[]).to_oci();
    base.set_names(
        BASE.iter()
            .flat_map(|g| g.iter())
            .map(|n| n.to_string())
            .collect(),
    );
    let mut rules = vec![base];
    rules.extend(
        GROUPS
            .iter()
            .filter(|g| g.applies(host, &caps))
            .map(|g| g.to_oci()),
    );
    let mut profile = LinuxSeccomp::default();
    profile
        .set_default_action(LinuxSeccompAction::ScmpActErrno)
        .set_default_errno_ret(Some(DEFAULT_ERRNO))
        .set_architectures(architectures(host.arch))
        .set_syscalls(Some(rules));
    profile
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::docker::DEFAULT_CAPABILITIES;

    const AMD64: Host = Host {
        arch: "amd64",
        kernel: Some((6, 1)),
    };

    fn with(extra: &[&'static str]) -> Vec<&'static str> {
        let mut caps = DEFAULT_CAPABILITIES.to_vec();
        caps.extend_from_slice(extra);
        caps
    }

    fn rules<'a>(p: &'a LinuxSeccomp, name: &str) -> Vec<&'a LinuxSyscall> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.names().iter().any(|n| n == name))
            .collect()
    }

    /// Allowed whatever its arguments.
    fn allowed(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p, name)
            .iter()
            .any(|r| r.action() == LinuxSeccompAction::ScmpActAllow && r.args().is_none())
    }

    /// No rule mentions it: the default action (EPERM) answers.
    fn refused(p: &LinuxSeccomp, name: &str) -> bool {
        rules(p, name).is_empty()
    }

    /// The distinct names some rule allows (with or without argument tests).
    fn allow_list(p: &LinuxSeccomp) -> std::collections::BTreeSet<&str> {
        p.syscalls()
            .iter()
            .flatten()
            .filter(|r| r.action() == LinuxSeccompAction::ScmpActAllow)
            .flat_map(|r| r.names().iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn default_action_and_architectures_are_dockers() {
        let p = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(p.default_errno_ret(), Some(1));
        assert_eq!(
            p.architectures().as_deref(),
            Some(&[Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32][..])
        );
        let arm = profile_for(
            &Host {
                arch: "arm64",
                ..AMD64
            },
            DEFAULT_CAPABILITIES,
        );
        assert_eq!(
            arm.architectures().as_deref(),
            Some(&[Arch::ScmpArchAarch64, Arch::ScmpArchArm][..])
        );
        let x86 = profile_for(
            &Host {
                arch: "x86",
                ..AMD64
            },
            DEFAULT_CAPABILITIES,
        );
        assert!(x86.architectures().is_none());
        assert!(p.flags().is_none() && p.listener_path().is_none());
    }

    #[test]
    fn default_capabilities_allow_ordinary_calls_only() {
        let p = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        for name in [
            "read",
            "write",
            "openat",
            "execve",
            "getpid",
            "futex",
            "mmap",
            "wait4",
            "kill",
            "accept4",
            "setuid",
            "statx",
            "rt_sigreturn",
            "exit_group",
            // amd64 only.
            "arch_prctl",
            "modify_ldt",
            // CAP_SYS_CHROOT is in the default set.
            "chroot",
            // Since Linux 4.8.
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
        ] {
            assert!(allowed(&p, name), "{name} should be allowed");
        }
        for name in [
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "reboot",
            "swapon",
            "swapoff",
            "userfaultfd",
            "perf_event_open",
            "open_by_handle_at",
            "fsopen",
            "move_mount",
            "open_tree",
            "sethostname",
            "syslog",
            "acct",
            "iopl",
            "ioperm",
            "settimeofday",
            "clock_settime",
            "kcmp",
            "pidfd_getfd",
            "vhangup",
            "mbind",
            "set_mempolicy",
            "io_uring_setup",
            "io_uring_enter",
            "lookup_dcookie",
            "quotactl",
            "nfsservctl",
            "pivot_root",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "personality",
            "clone",
            "clone3",
            "socket",
            // Other architectures' calls.
            "set_tls",
            "cacheflush",
            "s390_runtime_instr",
            "riscv_flush_icache",
            "swapcontext",
        ] {
            assert!(!allowed(&p, name), "{name} should not be allowed outright");
        }
        for name in [
            "mount",
            "unshare",
            "setns",
            "keyctl",
            "bpf",
            "reboot",
            "kexec_load",
        ] {
            assert!(refused(&p, name), "{name} should be left to EPERM");
        }
    }

    #[test]
    fn clone_is_allowed_without_namespace_flags_and_clone3_is_enosys() {
        let p = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        let clone = rules(&p, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].action(), LinuxSeccompAction::ScmpActAllow);
        let args = clone[0].args().clone().unwrap();
        assert_eq!(args.len(), 1);
        assert_eq!(args[0].index(), 0);
        assert_eq!(args[0].op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(args[0].value(), 0x7e02_0000);
        assert_eq!(args[0].value_two().unwrap_or(0), 0);
        let clone3 = rules(&p, "clone3");
        assert_eq!(clone3.len(), 1);
        assert_eq!(clone3[0].action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(clone3[0].errno_ret(), Some(38));
        // On s390 the flags are clone's second argument.
        let s390 = profile_for(
            &Host {
                arch: "s390x",
                ..AMD64
            },
            DEFAULT_CAPABILITIES,
        );
        let clone = rules(&s390, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0].args().as_ref().unwrap()[0].index(), 1);
    }

    #[test]
    fn cap_sys_admin_allows_mounts_namespaces_and_any_clone() {
        let p = profile_for(&AMD64, &with(&["CAP_SYS_ADMIN"]));
        for name in [
            "mount",
            "umount2",
            "unshare",
            "setns",
            "clone",
            "clone3",
            "bpf",
            "perf_event_open",
            "fsopen",
            "sethostname",
            "syslog",
            "quotactl",
        ] {
            assert!(allowed(&p, name), "{name} should be allowed");
        }
        // clone and clone3 are allowed outright: no masked clone, no ENOSYS.
        assert_eq!(rules(&p, "clone").len(), 1);
        assert_eq!(rules(&p, "clone3").len(), 1);
        // Still not: what CAP_SYS_ADMIN does not govern.
        for name in ["keyctl", "kexec_load", "init_module", "reboot", "swapon"] {
            assert!(refused(&p, name), "{name}");
        }
        let s390 = profile_for(
            &Host {
                arch: "s390x",
                ..AMD64
            },
            &["CAP_SYS_ADMIN"],
        );
        assert_eq!(rules(&s390, "clone").len(), 1);
        assert!(allowed(&s390, "clone"));
    }

    #[test]
    fn each_capability_allows_what_it_governs() {
        let default = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        let base = allow_list(&default);
        let cases: &[(&str, &[&str])] = &[
            ("CAP_DAC_READ_SEARCH", &["open_by_handle_at"]),
            ("CAP_SYS_BOOT", &["reboot"]),
            (
                "CAP_SYS_MODULE",
                &["delete_module", "finit_module", "init_module"],
            ),
            ("CAP_SYS_PACCT", &["acct"]),
            (
                "CAP_SYS_PTRACE",
                &["kcmp", "pidfd_getfd", "process_madvise"],
            ),
            ("CAP_SYS_RAWIO", &["ioperm", "iopl"]),
            (
                "CAP_SYS_TIME",
                &["clock_settime", "clock_settime64", "settimeofday", "stime"],
            ),
            ("CAP_SYS_TTY_CONFIG", &["vhangup"]),
            (
                "CAP_SYS_NICE",
                &[
                    "get_mempolicy",
                    "mbind",
                    "set_mempolicy",
                    "set_mempolicy_home_node",
                ],
            ),
            ("CAP_SYSLOG", &["syslog"]),
            ("CAP_BPF", &["bpf"]),
            ("CAP_PERFMON", &["perf_event_open"]),
            // Docker has no rule for these: they add nothing.
            ("CAP_SYS_RESOURCE", &[]),
            ("CAP_NET_ADMIN", &[]),
        ];
        for (cap, names) in cases {
            let p = profile_for(&AMD64, &with(&[cap]));
            let list = allow_list(&p);
            let added: Vec<&str> = list.difference(&base).copied().collect();
            assert_eq!(&added, names, "{cap}");
        }
        // Without CAP_SYS_CHROOT, no chroot.
        let fewer: Vec<&str> = DEFAULT_CAPABILITIES
            .iter()
            .copied()
            .filter(|c| *c != "CAP_SYS_CHROOT")
            .collect();
        let p = profile_for(&AMD64, &fewer);
        assert!(refused(&p, "chroot"));
    }

    #[test]
    fn argument_rules() {
        let p = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        let mut personas: Vec<u64> = rules(&p, "personality")
            .iter()
            .map(|r| {
                let a = r.args().as_ref().unwrap();
                assert_eq!(a.len(), 1);
                assert_eq!(
                    (a[0].index(), a[0].op()),
                    (0, LinuxSeccompOperator::ScmpCmpEq)
                );
                a[0].value()
            })
            .collect();
        personas.sort();
        assert_eq!(personas, [0, 8, 0x20000, 0x20008, 0xffff_ffff]);
        let socket: Vec<(LinuxSeccompOperator, u64)> = rules(&p, "socket")
            .iter()
            .map(|r| {
                let a = r.args().as_ref().unwrap();
                assert_eq!((a.len(), a[0].index()), (1, 0));
                (a[0].op(), a[0].value())
            })
            .collect();
        // AF_ALG (38) and AF_VSOCK (40) are the families no rule lets through.
        assert_eq!(
            socket,
            [
                (LinuxSeccompOperator::ScmpCmpLt, 38),
                (LinuxSeccompOperator::ScmpCmpEq, 39),
                (LinuxSeccompOperator::ScmpCmpGt, 40)
            ]
        );
    }

    #[test]
    fn architecture_conditions() {
        let on = |arch| profile_for(&Host { arch, ..AMD64 }, DEFAULT_CAPABILITIES);
        let arm64 = on("arm64");
        assert!(allowed(&arm64, "set_tls") && allowed(&arm64, "cacheflush"));
        assert!(!allowed(&arm64, "arch_prctl") && !allowed(&arm64, "modify_ldt"));
        let x86 = on("x86");
        assert!(allowed(&x86, "modify_ldt") && !allowed(&x86, "arch_prctl"));
        let ppc = on("ppc64le");
        assert!(allowed(&ppc, "swapcontext") && allowed(&ppc, "sync_file_range2"));
        let s390 = on("s390x");
        assert!(allowed(&s390, "s390_runtime_instr") && !allowed(&s390, "set_tls"));
        assert!(allowed(&on("riscv64"), "riscv_flush_icache"));
        // Every architecture a condition names is one Docker knows.
        let known = [
            "amd64", "x86", "x32", "arm", "arm64", "ppc64le", "s390", "s390x", "riscv64",
        ];
        for g in GROUPS {
            for a in g.includes.arches.iter().chain(g.excludes.arches) {
                assert!(known.contains(a), "{a}");
            }
        }
    }

    #[test]
    fn min_kernel_conditions() {
        let old = Host {
            kernel: Some((4, 4)),
            ..AMD64
        };
        let p = profile_for(&old, DEFAULT_CAPABILITIES);
        assert!(refused(&p, "ptrace") && refused(&p, "process_vm_readv"));
        for kernel in [Some((4, 8)), Some((5, 0)), None] {
            let p = profile_for(&Host { kernel, ..AMD64 }, DEFAULT_CAPABILITIES);
            assert!(allowed(&p, "ptrace"), "{kernel:?}");
        }
        // A minimum in `excludes` drops the group from that version on.
        let g = Group {
            excludes: Condition {
                min_kernel: Some((5, 10)),
                ..NONE
            },
            ..allow(&["x"])
        };
        assert!(g.applies(&old, &[]));
        assert!(!g.applies(&AMD64, &[]));
    }

    #[test]
    fn kernel_releases_parse_as_docker_reads_them() {
        assert_eq!(parse_kernel_release("6.18.44-fc-v1272\n"), Some((6, 18)));
        assert_eq!(parse_kernel_release("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_kernel_release("5.10.0-rc5"), Some((5, 10)));
        assert_eq!(parse_kernel_release("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel_release("banana"), None);
        assert_eq!(parse_kernel_release("6"), None);
        assert!(Host::current().kernel.is_some());
    }

    #[test]
    fn host_arch_is_dockers_name() {
        let expected = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        assert_eq!(host_arch(), expected);
        assert_eq!(Host::current().arch, expected);
    }

    #[test]
    fn json_round_trips() {
        let p = default_profile(&with(&["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]));
        let text = serde_json::to_string(&p).unwrap();
        let back: LinuxSeccomp = serde_json::from_str(&text).unwrap();
        assert_eq!(back, p);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        let p = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["architectures"][0], "SCMP_ARCH_X86_64");
        let clone3 = v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["names"][0] == "clone3")
            .unwrap();
        assert_eq!(
            clone3,
            &serde_json::json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
        );
        let back: LinuxSeccomp = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn base_list_has_no_duplicates() {
        let mut all: Vec<&str> = BASE.iter().flat_map(|g| g.iter().copied()).collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
        // Docker's unconditional list: 361 names.
        assert_eq!(n, 361);
    }

    /// The allow list for amd64 with Docker's default capabilities and a 6.x kernel, counted
    /// by hand from moby's `profiles/seccomp/default.json` (profiles/seccomp v0.2.3, as
    /// vendored by moby): the unconditional rule has 361 names; the minKernel 4.8 rule adds
    /// 3 (process_vm_readv, process_vm_writev, ptrace); then one name each for socket
    /// (3 rules), personality (5 rules), arch_prctl and modify_ldt (amd64 rules), chroot
    /// (CAP_SYS_CHROOT, in the default set) and clone (the rule without namespace flags):
    /// 361 + 3 + 6 = 370 distinct names. clone3 has a rule too, but it answers ENOSYS.
    #[test]
    fn allow_list_is_as_long_as_dockers() {
        let p = profile_for(&AMD64, DEFAULT_CAPABILITIES);
        let list = allow_list(&p);
        assert_eq!(list.len(), 370);
        // 15 rules: the base, 3 minKernel names in one, 3 socket, 5 personality, arch_prctl,
        // modify_ldt, clone, clone3, chroot.
        assert_eq!(p.syscalls().as_ref().unwrap().len(), 15);
    }
}
