//! `create` and `start`: the parent's side of making a container.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::runtime::{
    LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxNamespaceType,
    LinuxResources, Spec,
};

use crate::cgmount::CgroupMounts;
use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::init::InitCtx;
use crate::launch::{self, Launch};
use crate::spec::{self, Bundle, Namespaces};
use crate::state::{self, OciState, Phase, Saved, StateDir, Status};
use crate::sync::Msg;
use crate::{hooks, process};

/// Where the pty master of a container with a terminal goes.
#[derive(Debug, Clone)]
pub enum ConsoleSocket {
    /// A unix socket path to connect to (`--console-socket`).
    Path(PathBuf),
    /// An already connected socket (the runtime's own, for `run` in the foreground).
    Fd(Arc<OwnedFd>),
}

/// Options of `create` (and `run`).
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// Write the init's pid here.
    pub pid_file: Option<PathBuf>,
    /// Where to send the terminal.
    pub console_socket: Option<ConsoleSocket>,
    /// MS_MOVE + chroot instead of pivot_root.
    pub no_pivot: bool,
    /// Do not create a new session keyring.
    pub no_new_keyring: bool,
    /// Pass fds 3..3+n to the container.
    pub preserve_fds: u32,
}

/// The devices every container may use whatever its rules say (they are created in /dev).
fn default_device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |typ, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(typ)
            .access(access.to_string());
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().expect("static rule")
    };
    use LinuxDeviceType::{B, C};
    vec![
        rule(C, None, None, "m"),
        rule(B, None, None, "m"),
        rule(C, Some(1), Some(3), "rwm"),
        rule(C, Some(1), Some(5), "rwm"),
        rule(C, Some(1), Some(7), "rwm"),
        rule(C, Some(1), Some(8), "rwm"),
        rule(C, Some(1), Some(9), "rwm"),
        rule(C, Some(5), Some(0), "rwm"),
        rule(C, Some(5), Some(1), "rwm"),
        rule(C, Some(5), Some(2), "rwm"),
        rule(C, Some(136), None, "rwm"),
        rule(C, Some(10), Some(200), "rwm"),
    ]
}

/// The resources applied at create: the spec's, with device rules starting from deny-all and
/// ending with the default devices.
fn create_resources(spec: &Spec) -> LinuxResources {
    let mut r = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm".to_string())
        .build()
        .expect("static rule");
    let mut rules = vec![deny_all];
    rules.extend(r.devices().clone().unwrap_or_default());
    rules.extend(default_device_rules());
    r.set_devices(Some(rules));
    r
}

/// The cgroup path: the spec's, or `berth-<id>` beneath the runtime's own cgroup.
fn cgroups_path(spec: &Spec, id: &str) -> String {
    spec.linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_ref())
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| format!("berth-{id}"))
}

/// The state handed to hooks.
pub fn oci_state(saved: &Saved, status: Status) -> OciState {
    OciState {
        oci_version: spec::OCI_VERSION.to_string(),
        id: saved.id.clone(),
        pid: if status == Status::Stopped {
            0
        } else {
            saved.pid.unwrap_or(0)
        },
        status,
        bundle: saved.bundle.clone(),
        rootfs: saved.rootfs.clone(),
        created: saved.created.clone(),
        owner: saved.owner.clone(),
        annotations: saved.annotations.clone(),
    }
}

/// Hook state: runc's state object, with the pid even for poststop.
pub fn hook_state(saved: &Saved, status: Status) -> String {
    let mut s = oci_state(saved, status);
    s.pid = saved.pid.unwrap_or(0);
    serde_json::to_string(&s).unwrap_or_default()
}

/// Create a container; returns the init's pid.
pub fn create(root: &Path, id: &str, systemd_cgroup: bool, opts: &CreateOptions) -> Result<i32> {
    spec::validate_id(id)?;
    launch::ensure_single_threaded()?;
    if systemd_cgroup {
        return Err(if berth_cgroups::systemd_available() {
            Error::Unsupported("the systemd cgroup driver is not implemented yet; use cgroupfs (drop --systemd-cgroup)".into())
        } else {
            Error::Unsupported("--systemd-cgroup: systemd is not running on this host, so systemd cgroups are not available".into())
        });
    }
    let bundle = spec::load_bundle(&opts.bundle)?;
    let spec = &bundle.spec;
    let ns = Namespaces::from_spec(spec);
    if !ns.has(LinuxNamespaceType::Mount) {
        // Without a mount namespace the container shares the runtime's mounts: its mounts are
        // not made (they would land in the host's namespace), the init chroots into the
        // rootfs, and nothing that would change the host's mounts is accepted.
        let l = spec.linux().as_ref();
        let nonempty = |v: Option<&Vec<String>>| v.is_some_and(|v| !v.is_empty());
        if nonempty(l.and_then(|l| l.masked_paths().as_ref()))
            || nonempty(l.and_then(|l| l.readonly_paths().as_ref()))
            || spec.root().as_ref().and_then(|r| r.readonly()) == Some(true)
        {
            return Err(Error::InvalidConfig(
                "maskedPaths, readonlyPaths and a read-only root need a mount namespace of the container's own (add {\"type\": \"mount\"} to linux.namespaces)".into(),
            ));
        }
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("process is required".into()))?;
    if process.terminal() == Some(true) && opts.console_socket.is_none() {
        return Err(Error::InvalidArgument(
            "process.terminal is true: a --console-socket is needed to receive the terminal (or run in the foreground)".into(),
        ));
    }
    if !ns.creates(LinuxNamespaceType::User) {
        process::check_caps_available(&process::CapSets::from_spec(
            process.capabilities().as_ref(),
        ))?;
    }
    let seccomp_spec = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
    let seccomp = seccomp_spec
        .map(|s| berth_seccomp::compile_cached(s, &crate::state::seccomp_cache(root)))
        .transpose()?;
    let listener = seccomp_spec.and_then(|s| s.listener_path().clone());
    if seccomp.as_ref().is_some_and(|f| f.uses_notify()) && listener.is_none() {
        return Err(Error::InvalidConfig(
            "seccomp uses SCMP_ACT_NOTIFY but linux.seccomp.listenerPath is not set".into(),
        ));
    }
    let layout = berth_cgroups::Layout::detect()?;
    let cgroup = berth_cgroups::Cgroup::new(&layout, &cgroups_path(spec, id))?;

    // OOM kills the cgroup has seen already (a cgroupsPath may name an existing cgroup), so
    // that one during this create can be told apart.
    let ooms_before = cgroup.oom_kills().unwrap_or(0);

    let dir = StateDir::create(root, id)?;
    let mut saved = Saved {
        id: id.to_string(),
        bundle: bundle.dir.clone(),
        rootfs: bundle.rootfs.clone(),
        created: state::now_rfc3339(),
        owner: String::new(),
        annotations: spec.annotations().clone(),
        phase: Phase::Creating,
        pid: None,
        pid_start: None,
        cgroup: Some(cgroup.paths().clone()),
    };
    let mut init_pid: Option<i32> = None;
    let result = create_in(
        &dir,
        &bundle,
        &ns,
        opts,
        seccomp,
        listener.as_deref(),
        &cgroup,
        &mut saved,
        &mut init_pid,
    );
    if let Err(e) = result {
        // A process that dies of its memory limit only shows as a closed channel (or some
        // other symptom): the cgroup's OOM counter says why.
        let e = match cgroup.oom_kills() {
            Some(n) if n > ooms_before => Error::OomKilled {
                // The limit as the configuration asked for it (the kernel rounds it to pages).
                limit: spec
                    .linux()
                    .as_ref()
                    .and_then(|l| l.resources().as_ref())
                    .and_then(|r| r.memory().as_ref())
                    .and_then(|m| m.limit())
                    .and_then(|l| u64::try_from(l).ok())
                    .filter(|&l| l > 0)
                    .or_else(|| cgroup.memory_limit()),
            },
            _ => e,
        };
        // Leave nothing behind: the init, its cgroup, the state directory.
        if let Some(pid) = init_pid {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = cgroup.kill_all(libc::SIGKILL);
        crate::container::wait_cgroup_empty(&cgroup);
        let _ = cgroup.destroy();
        let _ = dir.remove();
        return Err(e);
    }
    Ok(init_pid.unwrap_or(0))
}

#[allow(clippy::too_many_arguments)]
fn create_in(
    dir: &StateDir,
    bundle: &Bundle,
    ns: &Namespaces,
    opts: &CreateOptions,
    seccomp: Option<berth_seccomp::Filter>,
    listener: Option<&Path>,
    cgroup: &berth_cgroups::Cgroup,
    saved: &mut Saved,
    init_pid: &mut Option<i32>,
) -> Result<()> {
    let spec = &bundle.spec;
    let config = serde_json::to_vec(spec).map_err(|e| Error::InvalidConfig(e.to_string()))?;
    state::write_atomic(&dir.file(state::CONFIG_FILE), &config, 0o600)?;
    dir.save(saved)?;
    for f in [state::EXEC_FIFO, state::START_FIFO] {
        nix::unistd::mkfifo(
            &dir.file(f),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .ctx(|| format!("creating {f}"))?;
    }
    let open_rw = |name: &str| -> Result<OwnedFd> {
        nix::fcntl::open(
            &dir.file(name),
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .ctx(|| format!("opening {name}"))
    };
    let exec_fifo = open_rw(state::EXEC_FIFO)?;
    let start_fifo = open_rw(state::START_FIFO)?;

    cgroup.create()?;
    cgroup.apply(&create_resources(spec))?;

    let needs_cg_mounts = spec
        .mounts()
        .iter()
        .flatten()
        .any(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")));
    let cg_mounts = if needs_cg_mounts {
        Some(CgroupMounts::compute(&cgroup.paths().dirs())?)
    } else {
        None
    };

    let connected: Option<OwnedFd> = match &opts.console_socket {
        Some(ConsoleSocket::Path(p)) => Some(crate::console::connect(p)?.into()),
        _ => None,
    };
    let console = match &opts.console_socket {
        Some(ConsoleSocket::Path(_)) => connected.as_ref().map(|c| c.as_fd()),
        Some(ConsoleSocket::Fd(fd)) => Some(fd.as_fd()),
        None => None,
    };
    let linux = spec.linux().as_ref();
    let launch = Launch {
        join: ns.join.clone(),
        new: ns.new.clone(),
        uid_maps: linux
            .and_then(|l| l.uid_mappings().as_deref())
            .unwrap_or_default(),
        gid_maps: linux
            .and_then(|l| l.gid_mappings().as_deref())
            .unwrap_or_default(),
        time_offsets: linux.and_then(|l| l.time_offsets().as_ref()),
        cgroup: Some(cgroup),
        close_in_child: vec![dir.lock_fd()],
    };
    let ctx = InitCtx {
        id: &saved.id,
        bundle,
        ns,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        exec_fifo: &exec_fifo,
        start_fifo: &start_fifo,
        console_socket: console,
        seccomp,
        cgroups: cg_mounts.as_ref(),
    };
    let (pid, ch) = launch::spawn(&launch, move |ch| crate::init::run(ctx, ch))?;
    *init_pid = Some(pid);
    drop(connected);
    drop(exec_fifo);
    drop(start_fifo);
    saved.pid = Some(pid);
    saved.pid_start = state::proc_stat(pid).map(|(_, t)| t);
    dir.save(saved)?;

    let hooks = spec.hooks().as_ref();
    loop {
        let (msg, fds) = ch.expect("it was ready")?;
        match msg {
            Msg::RunHooks => {
                let st = hook_state(saved, Status::Creating);
                // prestart (deprecated) belongs to the old model, where it ran once the
                // container was created; its callers (and runtime-tools, and crun) expect
                // "created" on its stdin. createRuntime is part of creating.
                let prestart_st = hook_state(saved, Status::Created);
                hooks::run_all(
                    "prestart",
                    hooks.and_then(|h| h.prestart().as_ref()),
                    &prestart_st,
                )?;
                hooks::run_all(
                    "createRuntime",
                    hooks.and_then(|h| h.create_runtime().as_ref()),
                    &st,
                )?;
                ch.send(&Msg::HooksDone(st))?;
            }
            Msg::SeccompFd => {
                let fd = fds
                    .first()
                    .ok_or_else(|| Error::Child("the seccomp fd is missing".into()))?;
                send_seccomp(listener, fd, saved, spec)?;
                ch.send(&Msg::SeccompDone)?;
            }
            Msg::Ready => break,
            other => {
                return Err(Error::Child(format!(
                    "unexpected message {other:?} from the init"
                )));
            }
        }
    }
    saved.phase = Phase::Created;
    dir.save(saved)?;
    if let Some(pf) = &opts.pid_file {
        write_pid_file(pf, pid)?;
    }
    Ok(())
}

/// Hand a seccomp notify fd to the agent at listenerPath.
pub fn send_seccomp(
    listener: Option<&Path>,
    fd: &OwnedFd,
    saved: &Saved,
    spec: &Spec,
) -> Result<()> {
    let listener =
        listener.ok_or_else(|| Error::InvalidConfig("seccomp listenerPath is not set".into()))?;
    let metadata = spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .and_then(|s| s.listener_metadata().clone());
    let st = oci_state(saved, Status::Creating);
    let state: oci_spec::runtime::State =
        serde_json::from_value(serde_json::to_value(&st).unwrap_or_default())
            .map_err(|e| Error::Child(e.to_string()))?;
    let ps = oci_spec::runtime::ContainerProcessStateBuilder::default()
        .version(spec::OCI_VERSION.to_string())
        .fds(vec!["seccompFd".to_string()])
        .pid(saved.pid.unwrap_or(0))
        .metadata(metadata.unwrap_or_default())
        .state(state)
        .build()
        .map_err(|e| Error::Child(e.to_string()))?;
    use std::os::fd::AsFd;
    berth_seccomp::send_to_listener(listener, fd.as_fd(), &ps)?;
    Ok(())
}

/// Write a pid file atomically, as runc does.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = std::path::absolute(path).ctx(|| format!("pid file {}", path.display()))?;
    state::write_atomic(&path, pid.to_string().as_bytes(), 0o644)
}

/// Release a created container's init: it execs the program.
pub fn start(root: &Path, id: &str) -> Result<()> {
    let c = Container::load(root, id)?;
    let status = c.status();
    if status != Status::Created {
        return Err(Error::WrongState {
            id: id.into(),
            status: status.to_string(),
            op: "cannot start a container that is not created".into(),
        });
    }
    // Open start.fifo first so its end-of-file means "the init has exec'd".
    let start_fifo = nix::fcntl::open(
        &c.dir.file(state::START_FIFO),
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .ctx(|| "opening start.fifo".into())?;
    let exec_fifo = match nix::fcntl::open(
        &c.dir.file(state::EXEC_FIFO),
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(f) => f,
        Err(nix::errno::Errno::ENXIO) => {
            return Err(Error::WrongState {
                id: id.into(),
                status: "stopped".into(),
                op: "the init process is gone".into(),
            });
        }
        Err(e) => return Err(Error::sys("opening exec.fifo", e)),
    };
    nix::unistd::write(&exec_fifo, b"0").ctx(|| "signalling the init".into())?;
    drop(exec_fifo);
    // Blocking reads from now on: the init writes an error, or execs (closing its end).
    nix::fcntl::fcntl(
        &start_fifo,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
    )
    .ctx(|| "start.fifo".into())?;
    let mut msg = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match nix::unistd::read(&start_fifo, &mut buf) {
            Ok(0) => break,
            Ok(n) => msg.extend_from_slice(&buf[..n]),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(Error::sys("reading start.fifo", e)),
        }
    }
    let _ = std::fs::remove_file(c.dir.file(state::EXEC_FIFO));
    let _ = std::fs::remove_file(c.dir.file(state::START_FIFO));
    let mut saved = c.saved.clone();
    saved.phase = Phase::Started;
    c.dir.save(&saved)?;
    if !msg.is_empty() {
        return Err(Error::Child(String::from_utf8_lossy(&msg).into_owned()));
    }
    let spec = c.spec()?;
    hooks::run_all_warn(
        "poststart",
        spec.hooks().as_ref().and_then(|h| h.poststart().as_ref()),
        &hook_state(&saved, Status::Running),
    );
    Ok(())
}
