//! Process attributes of the runtime spec, applied to the calling process.
//!
//! Shared by the container's init and by processes started with `exec`. These functions run in
//! the forked child just before `execve`, so they only do system calls and small allocations.

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, IOPriorityClass, LinuxCapabilities, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Process, Scheduler,
};

use crate::error::{Context, Error, Result};

/// The resource number of an rlimit type.
pub fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Set the rlimits. Raising a hard limit needs CAP_SYS_RESOURCE; without it the error says
/// what the host allows.
pub fn set_rlimits(rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let res = rlimit_resource(r.typ());
        let lim = libc::rlimit {
            rlim_cur: r.soft(),
            rlim_max: r.hard(),
        };
        // SAFETY: setrlimit reads the valid rlimit struct on our stack.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            let err = std::io::Error::last_os_error();
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes into the valid struct on our stack.
            unsafe { libc::getrlimit(res, &mut cur) };
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", r.typ()));
            return Err(
                if err.raw_os_error() == Some(libc::EPERM) && r.hard() > cur.rlim_max {
                    Error::Unsupported(format!(
                        "{name} hard limit {} is above the host's hard limit {} and raising it needs CAP_SYS_RESOURCE, which the runtime does not have",
                        r.hard(),
                        cur.rlim_max
                    ))
                } else {
                    Error::io(
                        format!("setting {name} to soft={} hard={}", r.soft(), r.hard()),
                        err,
                    )
                },
            );
        }
    }
    Ok(())
}

/// Write /proc/self/oom_score_adj.
pub fn set_oom_score_adj(adj: i32) -> Result<()> {
    std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| {
        if e.raw_os_error() == Some(libc::EACCES) {
            Error::Unsupported(format!(
                "oomScoreAdj {adj}: lowering the OOM score needs CAP_SYS_RESOURCE, which the runtime does not have"
            ))
        } else {
            Error::io(format!("setting oom_score_adj to {adj}"), e)
        }
    })
}

/// ioprio_set(2) for the calling process.
pub fn set_io_priority(class: IOPriorityClass, priority: i64) -> Result<()> {
    let class_num: i64 = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&priority) {
        return Err(Error::InvalidConfig(format!(
            "ioPriority.priority {priority} is outside 0..7"
        )));
    }
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    let value = (class_num << 13) | priority;
    // SAFETY: ioprio_set takes three integers; no memory is passed.
    let r = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if r != 0 {
        return Err(Error::io(
            "setting the I/O priority",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// sched_setattr(2) for the calling process.
pub fn set_scheduler(s: &Scheduler) -> Result<()> {
    #[repr(C)]
    struct SchedAttr {
        size: u32,
        sched_policy: u32,
        sched_flags: u64,
        sched_nice: i32,
        sched_priority: u32,
        sched_runtime: u64,
        sched_deadline: u64,
        sched_period: u64,
        sched_util_min: u32,
        sched_util_max: u32,
    }
    let policy = match s.policy() {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    };
    let mut flags = 0u64;
    for f in s.flags().iter().flatten() {
        flags |= match f {
            LinuxSchedulerFlag::SchedResetOnFork => 0x01,
            LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
            LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
            LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
            LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
            LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
            LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
        };
    }
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: policy,
        sched_flags: flags,
        sched_nice: s.nice().unwrap_or(0),
        sched_priority: s.priority().unwrap_or(0) as u32,
        sched_runtime: s.runtime().unwrap_or(0),
        sched_deadline: s.deadline().unwrap_or(0),
        sched_period: s.period().unwrap_or(0),
        sched_util_min: 0,
        sched_util_max: 0,
    };
    // SAFETY: sched_setattr reads `attr.size` bytes from a valid, initialised struct.
    let r = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if r != 0 {
        return Err(Error::io(
            format!("setting the scheduler policy {:?}", s.policy()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// personality(2).
pub fn set_personality(p: &LinuxPersonality) -> Result<()> {
    let domain: libc::c_ulong = match p.domain() {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    if let Some(flags) = p.flags()
        && !flags.is_empty()
    {
        return Err(Error::Unsupported(format!(
            "personality flags {flags:?}: no flags are supported"
        )));
    }
    // SAFETY: personality takes an integer; no memory is passed.
    if unsafe { libc::personality(domain) } == -1 {
        return Err(Error::io(
            "setting the personality",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// prctl(PR_SET_NO_NEW_PRIVS).
pub fn set_no_new_privs() -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(Error::io(
            "setting no_new_privs",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// The five capability sets as bit masks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

/// The bit of a spec capability, or None when the running kernel does not know it.
fn cap_bit(c: &oci_spec::runtime::Capability, last_cap: u8) -> Option<u64> {
    let name = format!("CAP_{c}");
    let cap: caps::Capability = name.parse().ok()?;
    (cap.index() <= last_cap).then(|| cap.bitmask())
}

/// The highest capability number the kernel knows.
pub fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

impl CapSets {
    /// From the spec's capabilities (missing sets are empty). Capabilities the kernel does not
    /// know are left out, as runc does.
    pub fn from_spec(c: Option<&LinuxCapabilities>) -> CapSets {
        let last = last_cap();
        let mask = |s: Option<&Capabilities>| -> u64 {
            s.into_iter()
                .flatten()
                .filter_map(|c| cap_bit(c, last))
                .fold(0, |a, b| a | b)
        };
        match c {
            None => CapSets::default(),
            Some(c) => CapSets {
                bounding: mask(c.bounding().as_ref()),
                effective: mask(c.effective().as_ref()),
                permitted: mask(c.permitted().as_ref()),
                inheritable: mask(c.inheritable().as_ref()),
                ambient: mask(c.ambient().as_ref()),
            },
        }
    }

    /// Names of the capabilities in `mask`.
    pub fn names(mask: u64) -> Vec<String> {
        let mut v: Vec<String> = caps::all()
            .into_iter()
            .filter(|c| mask & c.bitmask() != 0)
            .map(|c| c.to_string())
            .collect();
        v.sort();
        v
    }
}

/// The calling process's permitted and bounding sets (from /proc/self/status).
pub fn own_caps() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0)
    };
    (field("CapPrm:"), field("CapBnd:"))
}

/// Refuse capabilities the runtime itself does not hold: they cannot be granted.
pub fn check_caps_available(sets: &CapSets) -> Result<()> {
    let (permitted, _) = own_caps();
    let wanted = sets.effective | sets.permitted | sets.inheritable | sets.ambient;
    let missing = wanted & !permitted;
    if missing != 0 {
        return Err(Error::Unsupported(format!(
            "capabilities {} are not available to the runtime on this host (not in its bounding set)",
            CapSets::names(missing).join(", ")
        )));
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
const CAP_V3: u32 = 0x2008_0522;

/// capset(2) of effective, permitted and inheritable in one call.
fn capset(eff: u64, perm: u64, inh: u64) -> std::io::Result<()> {
    let mut hdr = CapHeader {
        version: CAP_V3,
        pid: 0,
    };
    let data = [
        CapData {
            effective: eff as u32,
            permitted: perm as u32,
            inheritable: inh as u32,
        },
        CapData {
            effective: (eff >> 32) as u32,
            permitted: (perm >> 32) as u32,
            inheritable: (inh >> 32) as u32,
        },
    ];
    // SAFETY: capset reads the header and two data structs (the v3 layout) that are valid
    // for the duration of the call.
    let r = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Drop every capability not in `keep` from the bounding set.
pub fn drop_bounding(keep: u64) -> Result<()> {
    let last = last_cap();
    for i in 0..=last {
        if keep & (1u64 << i) != 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(i), 0, 0, 0) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EINVAL) {
                continue; // the kernel does not know this capability
            }
            return Err(Error::io(
                format!("dropping capability {i} from the bounding set"),
                e,
            ));
        }
    }
    Ok(())
}

/// Become `uid`/`gid` with `groups`, keeping capabilities across the switch, then set the
/// capability sets. `set_groups` is false where setgroups(2) is denied (a user namespace whose
/// setgroups file says "deny").
pub fn set_identity_and_caps(
    uid: u32,
    gid: u32,
    groups: &[u32],
    set_groups: bool,
    caps: &CapSets,
) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) } != 0 {
        return Err(Error::io(
            "setting keepcaps",
            std::io::Error::last_os_error(),
        ));
    }
    drop_bounding(caps.bounding)?;
    if set_groups {
        let gids: Vec<libc::gid_t> = groups.to_vec();
        // SAFETY: setgroups reads `gids.len()` gids from a valid slice.
        if unsafe { libc::setgroups(gids.len(), gids.as_ptr()) } != 0 {
            return Err(Error::io(
                format!("setting supplementary groups {groups:?}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    nix::unistd::setresgid(gid.into(), gid.into(), gid.into())
        .ctx(|| format!("setting gid {gid}"))?;
    nix::unistd::setresuid(uid.into(), uid.into(), uid.into())
        .ctx(|| format!("setting uid {uid}"))?;
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
    capset(caps.effective, caps.permitted, caps.inheritable).map_err(|e| {
        Error::io(
            format!(
                "setting capabilities (effective {:?}, permitted {:?})",
                CapSets::names(caps.effective),
                CapSets::names(caps.permitted)
            ),
            e,
        )
    })?;
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    for i in 0..64u64 {
        if caps.ambient & (1 << i) == 0 {
            continue;
        }
        // An ambient capability must also be permitted and inheritable; like runc, a spec
        // that lists one without the other (runc's own default spec does) is not an error:
        // the capability is simply not ambient.
        // SAFETY: prctl with integer arguments only.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                i as libc::c_ulong,
                0,
                0,
            )
        };
    }
    Ok(())
}

/// Find `prog` in `PATH` (taken from the process's environment) the way execvp does, in the
/// calling process's root. Names containing '/' are used as given.
pub fn find_executable(prog: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let not_found = || {
        Error::Child(format!(
            "exec: {prog:?}: executable file not found in $PATH"
        ))
    };
    let check = |p: &Path| -> Result<()> {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => Err(Error::Child(format!(
                "exec: {}: is a directory",
                p.display()
            ))),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => Err(Error::Child(format!(
                "exec: {}: permission denied",
                p.display()
            ))),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Child(format!("exec: {}: {e}", p.display()))),
        }
    };
    if prog.contains('/') {
        let p = if Path::new(prog).is_absolute() {
            PathBuf::from(prog)
        } else {
            cwd.join(prog)
        };
        check(&p)?;
        return Ok(PathBuf::from(prog));
    }
    let path = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(prog);
        if let Ok(m) = std::fs::metadata(&cand) {
            use std::os::unix::fs::PermissionsExt as _;
            if m.is_file() && m.permissions().mode() & 0o111 != 0 {
                return Ok(cand);
            }
        }
    }
    Err(not_found())
}

/// Mark every fd from `first` up close-on-exec.
pub fn cloexec_from(first: u32) -> Result<()> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range with integer arguments; marking fds close-on-exec does not
    // invalidate any fd this process still uses before execve.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            libc::c_uint::MAX,
            CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::ENOSYS) {
        return Err(Error::io("marking fds close-on-exec", err));
    }
    // Kernels before 5.11: one fcntl per open fd.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .ctx(|| "listing /proc/self/fd".into())?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|&fd: &i32| fd >= first as i32)
        .collect();
    for fd in fds {
        // SAFETY: fcntl on an fd number; an fd that closed meanwhile (the directory's own)
        // just fails with EBADF, which is ignored.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

/// Apply the LSM labels: an AppArmor profile or an SELinux label for the next execve. Where
/// the LSM is not enabled this is a clear error, never a silent skip.
pub fn set_lsm_labels(p: &Process) -> Result<()> {
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        if !apparmor_enabled() {
            return Err(Error::Unsupported(format!(
                "AppArmor profile {profile:?} requested but AppArmor is not enabled on this host"
            )));
        }
        let attr = if Path::new("/proc/self/attr/apparmor/exec").exists() {
            "/proc/self/attr/apparmor/exec"
        } else {
            "/proc/self/attr/exec"
        };
        std::fs::write(attr, format!("exec {profile}"))
            .ctx(|| format!("applying AppArmor profile {profile:?}"))?;
    }
    if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        if !selinux_enabled() {
            return Err(Error::Unsupported(format!(
                "SELinux label {label:?} requested but SELinux is not enabled on this host"
            )));
        }
        std::fs::write("/proc/self/attr/exec", label)
            .ctx(|| format!("applying SELinux label {label:?}"))?;
    }
    Ok(())
}

/// Whether AppArmor is enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

/// Whether SELinux is enabled.
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Build a NUL-terminated C string, refusing interior NULs.
pub fn cstring(s: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| Error::InvalidConfig(format!("{:?} contains a NUL byte", s.as_ref())))
}
