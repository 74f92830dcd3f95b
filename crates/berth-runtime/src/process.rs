//! Process attributes of the runtime spec, applied to the calling process.
//!
//! Shared by the container's init and by processes started with `exec`. These functions run in
//! the forked child just before `execve`, so they only do system calls and small allocations.
//! Every system call goes through [`Sys`] (the unit tests in `process/tests.rs` record them).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::sys::resource::Resource;
use oci_spec::runtime::{
    Capabilities, IOPriorityClass, LinuxCapabilities, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimit, PosixRlimitType, Process, Scheduler,
};

use crate::error::{Context, Error, Result};
use crate::sys::{FileKind, SchedAttr, Sys};

/// The resource of an rlimit type.
pub fn rlimit_resource(t: PosixRlimitType) -> Resource {
    match t {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// Set the rlimits. Raising a hard limit needs CAP_SYS_RESOURCE; without it the error says
/// what the host allows.
pub fn set_rlimits(sys: &dyn Sys, rlimits: &[PosixRlimit]) -> Result<()> {
    for r in rlimits {
        let res = rlimit_resource(r.typ());
        if let Err(errno) = sys.setrlimit(res, r.soft(), r.hard()) {
            let err = std::io::Error::from(errno);
            let (_, cur_max) = sys.getrlimit(res).unwrap_or((0, 0));
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| format!("{:?}", r.typ()));
            return Err(
                if err.raw_os_error() == Some(libc::EPERM) && r.hard() > cur_max {
                    Error::Unsupported(format!(
                        "{name} hard limit {} is above the host's hard limit {} and raising it needs CAP_SYS_RESOURCE, which the runtime does not have",
                        r.hard(),
                        cur_max
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
pub fn set_oom_score_adj(sys: &dyn Sys, adj: i32) -> Result<()> {
    let path = Path::new("/proc/self/oom_score_adj");
    sys.write_file(path, adj.to_string().as_bytes()).map_err(|e| {
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
pub fn set_io_priority(sys: &dyn Sys, class: IOPriorityClass, priority: i64) -> Result<()> {
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
    let value = (class_num << 13) | priority;
    sys.ioprio_set(value)
        .ctx(|| "setting the I/O priority".into())
}

/// sched_setattr(2) for the calling process.
pub fn set_scheduler(sys: &dyn Sys, s: &Scheduler) -> Result<()> {
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
    sys.sched_setattr(&attr)
        .ctx(|| format!("setting the scheduler policy {:?}", s.policy()))
}

/// personality(2).
pub fn set_personality(sys: &dyn Sys, p: &LinuxPersonality) -> Result<()> {
    let domain: u32 = match p.domain() {
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
    sys.personality(domain)
        .ctx(|| "setting the personality".into())
}

/// prctl(PR_SET_NO_NEW_PRIVS).
pub fn set_no_new_privs(sys: &dyn Sys) -> Result<()> {
    sys.set_no_new_privs().ctx(|| "setting no_new_privs".into())
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
        Self::from_spec_up_to(c, last_cap())
    }

    /// From the spec's capabilities, leaving out those above `last` (the highest the kernel
    /// knows).
    pub fn from_spec_up_to(c: Option<&LinuxCapabilities>, last: u8) -> CapSets {
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

/// Drop every capability not in `keep` from the bounding set.
pub fn drop_bounding(sys: &dyn Sys, keep: u64) -> Result<()> {
    let last = sys.last_cap().min(63);
    for i in 0..=last {
        if keep & (1u64 << i) != 0 {
            continue;
        }
        match sys.drop_bounding_cap(i) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL) => {} // the kernel does not know this capability
            Err(e) => {
                return Err(Error::sys(
                    format!("dropping capability {i} from the bounding set"),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// Become `uid`/`gid` with `groups`, keeping capabilities across the switch, then set the
/// capability sets. `set_groups` is false where setgroups(2) is denied (a user namespace whose
/// setgroups file says "deny").
pub fn set_identity_and_caps(
    sys: &dyn Sys,
    uid: u32,
    gid: u32,
    groups: &[u32],
    set_groups: bool,
    caps: &CapSets,
) -> Result<()> {
    sys.set_keepcaps(true).ctx(|| "setting keepcaps".into())?;
    drop_bounding(sys, caps.bounding)?;
    if set_groups {
        sys.setgroups(groups)
            .ctx(|| format!("setting supplementary groups {groups:?}"))?;
    }
    sys.setresgid(gid).ctx(|| format!("setting gid {gid}"))?;
    sys.setresuid(uid).ctx(|| format!("setting uid {uid}"))?;
    let _ = sys.set_keepcaps(false);
    sys.capset(caps.effective, caps.permitted, caps.inheritable)
        .ctx(|| {
            format!(
                "setting capabilities (effective {:?}, permitted {:?})",
                CapSets::names(caps.effective),
                CapSets::names(caps.permitted)
            )
        })?;
    let _ = sys.clear_ambient_caps();
    for i in 0..64u8 {
        if caps.ambient & (1 << i) == 0 {
            continue;
        }
        // An ambient capability must also be permitted and inheritable; like runc, a spec
        // that lists one without the other (runc's own default spec does) is not an error:
        // the capability is simply not ambient.
        let _ = sys.raise_ambient_cap(i);
    }
    Ok(())
}

/// Find `prog` in `PATH` (taken from the process's environment) the way execvp does, in the
/// calling process's root. Names containing '/' are used as given.
pub fn find_executable(sys: &dyn Sys, prog: &str, env: &[String], cwd: &Path) -> Result<PathBuf> {
    let not_found = || {
        Error::Child(format!(
            "exec: {prog:?}: executable file not found in $PATH"
        ))
    };
    let check = |p: &Path| -> Result<()> {
        match sys.stat(p, true) {
            Ok(m) if m.is_dir() => Err(Error::Child(format!(
                "exec: {}: is a directory",
                p.display()
            ))),
            Ok(m) if m.mode & 0o111 == 0 => Err(Error::Child(format!(
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
        if let Ok(m) = sys.stat(&cand, true)
            && m.kind == FileKind::File
            && m.mode & 0o111 != 0
        {
            return Ok(cand);
        }
    }
    Err(not_found())
}

/// Mark every fd from `first` up close-on-exec.
pub fn cloexec_from(sys: &dyn Sys, first: u32) -> Result<()> {
    sys.cloexec_from(first)
        .ctx(|| "marking fds close-on-exec".into())
}

/// Apply the LSM labels: an AppArmor profile or an SELinux label for the next execve. Where
/// the LSM is not enabled this is a clear error, never a silent skip.
pub fn set_lsm_labels(sys: &dyn Sys, p: &Process) -> Result<()> {
    if let Some(profile) = p.apparmor_profile().as_deref().filter(|s| !s.is_empty()) {
        if !apparmor_enabled(sys) {
            return Err(Error::Unsupported(format!(
                "AppArmor profile {profile:?} requested but AppArmor is not enabled on this host"
            )));
        }
        let modern = Path::new("/proc/self/attr/apparmor/exec");
        let attr = if sys.stat(modern, true).is_ok() {
            modern
        } else {
            Path::new("/proc/self/attr/exec")
        };
        sys.write_file(attr, format!("exec {profile}").as_bytes())
            .ctx(|| format!("applying AppArmor profile {profile:?}"))?;
    }
    if let Some(label) = p.selinux_label().as_deref().filter(|s| !s.is_empty()) {
        if !selinux_enabled(sys) {
            return Err(Error::Unsupported(format!(
                "SELinux label {label:?} requested but SELinux is not enabled on this host"
            )));
        }
        sys.write_file(Path::new("/proc/self/attr/exec"), label.as_bytes())
            .ctx(|| format!("applying SELinux label {label:?}"))?;
    }
    Ok(())
}

/// Whether AppArmor is enabled.
pub fn apparmor_enabled(sys: &dyn Sys) -> bool {
    sys.read_file(Path::new("/sys/module/apparmor/parameters/enabled"))
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

/// Whether SELinux is enabled.
pub fn selinux_enabled(sys: &dyn Sys) -> bool {
    sys.stat(Path::new("/sys/fs/selinux/enforce"), true).is_ok()
}

/// Build a NUL-terminated C string, refusing interior NULs.
pub fn cstring(s: impl AsRef<OsStr>) -> Result<CString> {
    CString::new(s.as_ref().as_bytes())
        .map_err(|_| Error::InvalidConfig(format!("{:?} contains a NUL byte", s.as_ref())))
}

#[cfg(test)]
mod tests;
