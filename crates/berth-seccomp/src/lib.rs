//! The OCI runtime spec's `linux.seccomp`, compiled into a kernel filter with libseccomp.
//!
//! [`compile`] validates and builds the filter in the runtime (before it forks), so a bad
//! profile fails early with a clear error; [`Filter::load`] installs it in the container's
//! process just before `execve`; [`send_to_listener`] hands a notify fd to a seccomp agent.
//!
//! [`compile_cached`] keeps the kernel program of each profile in a cache directory: building
//! Docker's default profile with libseccomp (≈300 rules, then the BPF generated at load) costs
//! several milliseconds per container, the largest part of a container's start after the
//! kernel's own work, and every container of an engine uses one of a few profiles. A cached
//! program is loaded with seccomp(2) directly; libseccomp is not even initialised.

#![warn(missing_docs)]

use std::io::IoSlice;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    ContainerProcessState, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use serde_json::{Value, json};

/// Errors of compiling, loading or handing over a filter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The profile asks for something invalid.
    #[error("invalid seccomp profile: {0}")]
    Invalid(String),
    /// libseccomp refused an operation.
    #[error("{what}: {source}")]
    Library {
        /// What was being done.
        what: String,
        /// libseccomp's error.
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Talking to the seccomp agent failed.
    #[error("seccomp agent at {path}: {source}")]
    Listener {
        /// The listener socket.
        path: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

fn lib(what: impl Into<String>) -> impl FnOnce(libseccomp::error::SeccompError) -> Error {
    let what = what.into();
    move |source| Error::Library { what, source }
}

/// A compiled filter, ready to load.
#[derive(Debug)]
pub struct Filter {
    kind: Kind,
    notify: bool,
}

#[derive(Debug)]
enum Kind {
    /// libseccomp's context (a profile with notify rules: libseccomp sets up the listener).
    Context(ScmpFilterContext),
    /// The kernel program and seccomp(2)'s flags.
    Program { bpf: Vec<u8>, flags: libc::c_ulong },
}

/// The errno a rule returns when the profile gives none.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

fn action(
    a: LinuxSeccompAction,
    errno_ret: Option<u32>,
    default_errno: u32,
) -> Result<ScmpAction, Error> {
    let errno_ok = matches!(
        a,
        LinuxSeccompAction::ScmpActErrno | LinuxSeccompAction::ScmpActTrace
    );
    if errno_ret.is_some() && !errno_ok {
        return Err(Error::Invalid(format!(
            "errnoRet is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {a}"
        )));
    }
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => {
            let e = errno_ret.unwrap_or(default_errno);
            if e > u32::from(u16::MAX) {
                return Err(Error::Invalid(format!("errnoRet {e} is too large")));
            }
            ScmpAction::Errno(e as i32)
        }
        LinuxSeccompAction::ScmpActTrace => {
            let e = errno_ret.unwrap_or(default_errno);
            let v = u16::try_from(e)
                .map_err(|_| Error::Invalid(format!("trace value {e} is too large")))?;
            ScmpAction::Trace(v)
        }
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, Error> {
    if arg.index() > 5 {
        return Err(Error::Invalid(format!(
            "argument index {} is out of range (0..5)",
            arg.index()
        )));
    }
    let op = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => ScmpCompareOp::NotEqual,
        LinuxSeccompOperator::ScmpCmpLt => ScmpCompareOp::Less,
        LinuxSeccompOperator::ScmpCmpLe => ScmpCompareOp::LessOrEqual,
        LinuxSeccompOperator::ScmpCmpEq => ScmpCompareOp::Equal,
        LinuxSeccompOperator::ScmpCmpGe => ScmpCompareOp::GreaterEqual,
        LinuxSeccompOperator::ScmpCmpGt => ScmpCompareOp::Greater,
        LinuxSeccompOperator::ScmpCmpMaskedEq => ScmpCompareOp::MaskedEqual(arg.value()),
    };
    let datum = match arg.op() {
        LinuxSeccompOperator::ScmpCmpMaskedEq => arg.value_two().unwrap_or(0),
        _ => arg.value(),
    };
    Ok(ScmpArgCompare::new(arg.index() as u32, op, datum))
}

/// The libseccomp name of a spec architecture, e.g. "SCMP_ARCH_X86_64".
fn arch_name<T: serde::Serialize>(a: &T) -> String {
    serde_json::to_value(a)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Validate and compile a profile.
pub fn compile(s: &LinuxSeccomp) -> Result<Filter, Error> {
    let (ctx, notify) = build(s)?;
    Ok(Filter {
        kind: Kind::Context(ctx),
        notify,
    })
}

fn build(s: &LinuxSeccomp) -> Result<(ScmpFilterContext, bool), Error> {
    let default_errno = s.default_errno_ret().unwrap_or(DEFAULT_ERRNO);
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(Error::Invalid(
            "SCMP_ACT_NOTIFY cannot be the default action".into(),
        ));
    }
    if s.default_errno_ret().is_some()
        && s.default_action() != LinuxSeccompAction::ScmpActErrno
        && s.default_action() != LinuxSeccompAction::ScmpActTrace
    {
        return Err(Error::Invalid(format!(
            "defaultErrnoRet is only valid with an errno or trace default action, not {}",
            s.default_action()
        )));
    }
    let default = action(s.default_action(), s.default_errno_ret(), DEFAULT_ERRNO)?;
    let mut ctx = ScmpFilterContext::new(default).map_err(lib("creating the filter"))?;
    // The runtime sets no_new_privs itself when the spec asks for it.
    ctx.set_ctl_nnp(false)
        .map_err(lib("clearing the filter's no_new_privs"))?;
    for a in s.architectures().iter().flatten() {
        let name = arch_name(a);
        let arch: ScmpArch = name
            .parse()
            .map_err(|_| Error::Invalid(format!("unknown architecture {name}")))?;
        ctx.add_arch(arch)
            .map_err(lib(format!("adding architecture {name}")))?;
    }
    for f in s.flags().iter().flatten() {
        match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => ctx.set_ctl_waitkill(true),
        }
        .map_err(lib(format!("setting flag {f}")))?;
    }
    let mut notify = false;
    for rule in s.syscalls().iter().flatten() {
        let act = action(rule.action(), rule.errno_ret(), default_errno)?;
        if rule.action() == LinuxSeccompAction::ScmpActNotify {
            notify = true;
        }
        let args: Vec<ScmpArgCompare> = rule
            .args()
            .iter()
            .flatten()
            .map(compare)
            .collect::<Result<_, _>>()?;
        if act == default {
            continue; // libseccomp refuses rules that repeat the default action
        }
        // libseccomp takes one comparison per argument in a rule: several on the same
        // argument become one rule each (an OR), as runc does.
        let mut indexes: Vec<usize> = rule.args().iter().flatten().map(|a| a.index()).collect();
        indexes.sort_unstable();
        let repeated = indexes.windows(2).any(|w| w[0] == w[1]);
        for name in rule.names() {
            let Ok(sc) = ScmpSyscall::from_name(name) else {
                continue; // not a syscall on this architecture: skipped, as runc does
            };
            let r = if args.is_empty() {
                ctx.add_rule(act, sc).map(|_| ())
            } else if repeated {
                args.iter().try_for_each(|a| {
                    ctx.add_rule_conditional(act, sc, std::slice::from_ref(a))
                        .map(|_| ())
                })
            } else {
                ctx.add_rule_conditional(act, sc, &args).map(|_| ())
            };
            r.map_err(lib(format!("adding a rule for {name}")))?;
        }
    }
    if notify && s.listener_path().is_none() {
        return Err(Error::Invalid(
            "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath".into(),
        ));
    }
    Ok((ctx, notify))
}

impl Filter {
    /// Whether a rule uses SCMP_ACT_NOTIFY (the load returns a listener fd).
    pub fn uses_notify(&self) -> bool {
        self.notify
    }

    /// Load into the calling process: needs no_new_privs or CAP_SYS_ADMIN. Returns the notify
    /// listener fd when a rule uses SCMP_ACT_NOTIFY.
    pub fn load(self) -> Result<Option<OwnedFd>, Error> {
        let ctx = match self.kind {
            Kind::Program { bpf, flags } => return cache::load(&bpf, flags).map(|()| None),
            Kind::Context(ctx) => ctx,
        };
        ctx.load().map_err(lib("loading the seccomp filter"))?;
        if !self.notify {
            return Ok(None);
        }
        let fd = ctx.get_notify_fd().map_err(lib("getting the notify fd"))?;
        // SAFETY: libseccomp returns an fd it opened for us; duplicating it gives us one we
        // own (libseccomp keeps its own copy, released with the context).
        let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
        if dup < 0 {
            return Err(Error::Invalid(format!(
                "duplicating the notify fd: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `dup` is a new fd nobody else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(dup) }))
    }
}

/// Validate and compile a profile, keeping its kernel program in `cache_dir` (made 0700 if
/// missing; root's own, as the runtime's state is). A profile with notify rules is compiled
/// as [`compile`] does (its listener is libseccomp's). The program is looked up by the whole
/// profile, the libseccomp version and the running kernel (its release and boot), compared in
/// full, never by a hash alone; a cache that cannot be read or written only costs the compile.
pub fn compile_cached(s: &LinuxSeccomp, cache_dir: &Path) -> Result<Filter, Error> {
    let flags = cache::flags(s);
    let key = cache::key(s);
    if let Some(bpf) = key.as_deref().and_then(|k| cache::lookup(cache_dir, k)) {
        return Ok(Filter {
            kind: Kind::Program { bpf, flags },
            notify: false,
        });
    }
    let (ctx, notify) = build(s)?;
    if notify {
        return Ok(Filter {
            kind: Kind::Context(ctx),
            notify,
        });
    }
    let bpf = cache::export(&ctx)?;
    if let Some(k) = key.as_deref() {
        cache::store(cache_dir, k, &bpf);
    }
    Ok(Filter {
        kind: Kind::Program { bpf, flags },
        notify: false,
    })
}

mod cache;

/// Hand a notify fd to the seccomp agent at `path`: one message carrying the container process
/// state (runtime-spec runtime.md) as JSON and the fd (SCM_RIGHTS).
pub fn send_to_listener(
    path: &Path,
    fd: BorrowedFd<'_>,
    state: &ContainerProcessState,
) -> Result<(), Error> {
    let err = |source| Error::Listener {
        path: path.display().to_string(),
        source,
    };
    let sock = UnixStream::connect(path).map_err(err)?;
    let body = serde_json::to_vec(state).map_err(|e| err(std::io::Error::other(e)))?;
    let fds = [fd.as_raw_fd()];
    let iov = [IoSlice::new(&body)];
    nix::sys::socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &iov,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(|e| err(std::io::Error::from_raw_os_error(e as i32)))?;
    Ok(())
}

/// The version of the libseccomp linked in, `major.minor.micro` (what `runc --version` prints).
pub fn libseccomp_version() -> Option<String> {
    libseccomp::ScmpVersion::current()
        .ok()
        .map(|v| format!("{}.{}.{}", v.major, v.minor, v.micro))
}

/// The `seccomp` object of `features` (runtime-spec features.md).
pub fn features() -> Value {
    json!({
        "enabled": true,
        "actions": [
            "SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE",
            "SCMP_ACT_TRAP"
        ],
        "operators": [
            "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
            "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"
        ],
        "archs": [
            "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64",
            "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32",
            "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64",
            "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"
        ],
        "knownFlags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG",
            "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
        ],
        "supportedFlags": [
            "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(v: Value) -> LinuxSeccomp {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn valid_profile_compiles() {
        let f = compile(&profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [
                {"names": ["read", "write", "not_a_syscall"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}, {"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
                {"names": ["getcwd"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5}
            ]
        })))
        .unwrap();
        assert!(!f.uses_notify());
    }

    #[test]
    fn invalid_profiles_are_refused() {
        let bad = [
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_KILL", "errnoRet": 3}]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 3}),
        ];
        for b in bad {
            assert!(compile(&profile(b.clone())).is_err(), "{b}");
        }
        // Unknown names are refused when the configuration is parsed.
        assert!(
            serde_json::from_value::<LinuxSeccomp>(json!({"defaultAction": "SCMP_ACT_BANANA"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<LinuxSeccomp>(
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]})
            )
            .is_err()
        );
    }
}
