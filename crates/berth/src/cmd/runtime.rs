//! `berth runtime …` / `berth-runc …`: runc's command line over `berth_runtime::Runtime`.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::{ConsoleSocket, CreateOptions, ExecOptions, RunOptions, Runtime};
use clap::{Args, Parser, Subcommand};
use oci_spec::runtime::{LinuxResources, Process};

use crate::log::Logger;

/// The OCI runtime (runc-compatible command line).
#[derive(Parser, Debug)]
#[command(
    name = "berth-runc",
    version = concat!(env!("CARGO_PKG_VERSION"), "\nspec: ", "1.2.1"),
    about = "berth's OCI runtime, with runc's command line"
)]
struct RuntimeCli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Debug)]
struct Global {
    /// Root directory for container state.
    #[arg(long, global = true, default_value = "/run/berth")]
    root: PathBuf,
    /// Log file (default: stderr).
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    log_format: String,
    /// Debug logging.
    #[arg(long, global = true)]
    debug: bool,
    /// Use systemd to manage cgroups.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Rootless mode: true, false or auto (before the command, as runc takes it).
    #[arg(long)]
    rootless: Option<String>,
    /// Path to criu (accepted for compatibility; checkpointing is not supported yet).
    #[arg(long, global = true, hide = true)]
    criu: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container (the init waits for `start`).
    Create(CreateArgs),
    /// Start a created container.
    Start { id: String },
    /// Create and start a container, and wait for it unless --detach.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Do not wait for the container.
        #[arg(short, long)]
        detach: bool,
        /// Keep the container's state after it exits.
        #[arg(long)]
        keep: bool,
    },
    /// Print the state of a container.
    State { id: String },
    /// Send a signal to the container's init (or every process with --all).
    Kill {
        /// Send to every process in the container.
        #[arg(short, long)]
        all: bool,
        id: String,
        /// Signal name or number.
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Delete a container.
    Delete {
        /// Kill the container first if it runs.
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// List containers.
    List {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        /// Only ids.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List the processes in a container.
    Ps {
        /// table or json.
        #[arg(short, long, default_value = "table")]
        format: String,
        id: String,
        /// Options for ps(1).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Run a process in a running container.
    Exec(ExecArgs),
    /// Freeze a container.
    Pause { id: String },
    /// Thaw a container.
    Resume { id: String },
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Stream events (OOM, stats) of a container.
    Events {
        /// Print statistics once and exit.
        #[arg(long)]
        stats: bool,
        /// Interval between statistics.
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Write a default config.json.
    Spec {
        /// The bundle directory.
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// A configuration for an unprivileged user.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
    },
    /// Print what this runtime supports (runtime-spec features.md).
    Features,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The bundle directory.
    #[arg(short, long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the init's pid here.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Use MS_MOVE + chroot instead of pivot_root.
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Do not create a session keyring.
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    /// Pass this many extra fds (3, 4, …) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(Args, Debug)]
struct ExecArgs {
    /// Unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Working directory.
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Extra environment (KEY=value).
    #[arg(short, long)]
    env: Vec<String>,
    /// Allocate a terminal.
    #[arg(short, long)]
    tty: bool,
    /// uid[:gid].
    #[arg(short, long)]
    user: Option<String>,
    /// Additional gids.
    #[arg(short = 'g', long = "additional-gids")]
    additional_gids: Vec<u32>,
    /// The process as a process.json file.
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Do not wait for the process.
    #[arg(short, long)]
    detach: bool,
    /// Write the process's pid here.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// SELinux label.
    #[arg(long = "process-label")]
    process_label: Option<String>,
    /// AppArmor profile.
    #[arg(long)]
    apparmor: Option<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    no_new_privs: bool,
    /// Add a capability.
    #[arg(short, long)]
    cap: Vec<String>,
    /// Pass this many extra fds (3, 4, …).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    ignore_paused: bool,
    id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
struct UpdateArgs {
    /// A LinuxResources JSON file ("-" for stdin).
    #[arg(short, long)]
    resources: Option<PathBuf>,
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    #[arg(long = "cpu-period")]
    cpu_period: Option<u64>,
    #[arg(long = "cpu-quota")]
    cpu_quota: Option<i64>,
    #[arg(long = "cpu-share")]
    cpu_share: Option<u64>,
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems")]
    cpuset_mems: Option<String>,
    #[arg(long = "kernel-memory")]
    kernel_memory: Option<String>,
    #[arg(long = "kernel-memory-tcp")]
    kernel_memory_tcp: Option<String>,
    #[arg(long)]
    memory: Option<String>,
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    #[arg(long = "memory-swap")]
    memory_swap: Option<String>,
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    id: String,
}

/// Entry point: parse and run; errors are logged and exit 1.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let cli = match RuntimeCli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.global.log_format == "json";
    let mut log = Logger::new(cli.global.log.as_deref(), json, cli.global.debug);
    if cli.global.log_format != "json" && cli.global.log_format != "text" {
        log.error(&format!(
            "invalid --log-format {:?}: text or json",
            cli.global.log_format
        ));
        return ExitCode::from(1);
    }
    log.debug(&format!("command: {:?}", cli.command));
    match dispatch(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&crate::log::one_line(&e));
            ExitCode::from(1)
        }
    }
}

fn dispatch(cli: RuntimeCli) -> Result<u8> {
    if let Some(r) = &cli.global.rootless
        && !matches!(r.as_str(), "true" | "false" | "auto")
    {
        bail!("invalid --rootless value {r:?}: true, false or auto");
    }
    let rt = Runtime::new(&cli.global.root).with_systemd_cgroup(cli.global.systemd_cgroup);
    match cli.command {
        Cmd::Create(a) => {
            let id = a.id.clone();
            rt.create(&id, &create_options(a))?;
        }
        Cmd::Start { id } => rt.start(&id)?,
        Cmd::Run {
            create,
            detach,
            keep,
        } => {
            let id = create.id.clone();
            let code = rt.run(&id, create_options(create), RunOptions { detach, keep })?;
            return Ok(code.clamp(0, 255) as u8);
        }
        Cmd::State { id } => {
            let st = rt.state(&id)?;
            println!("{}", serde_json::to_string_pretty(&st)?);
        }
        Cmd::Kill { all, id, signal } => rt.kill(&id, parse_signal(&signal)?, all)?,
        Cmd::Delete { force, id } => rt.delete(&id, force)?,
        Cmd::List { format, quiet } => list(&rt, &format, quiet)?,
        Cmd::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &id, &format, &ps_args)?,
        Cmd::Exec(a) => return exec(&rt, a),
        Cmd::Pause { id } => rt.pause(&id)?,
        Cmd::Resume { id } => rt.resume(&id)?,
        Cmd::Update(a) => update(&rt, a)?,
        Cmd::Events {
            stats,
            interval,
            id,
        } => events(&rt, &id, stats, &interval)?,
        Cmd::Spec { bundle, rootless } => spec(&bundle, rootless)?,
        Cmd::Features => {
            println!(
                "{}",
                serde_json::to_string_pretty(&berth_runtime::features::features())?
            );
        }
    }
    Ok(0)
}

fn create_options(a: CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle,
        pid_file: a.pid_file,
        console_socket: a.console_socket.map(ConsoleSocket::Path),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds,
    }
}

/// A signal by number, name, or name without SIG; RTMIN+n and RTMAX-n too.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=libc::SIGRTMAX()).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name.strip_prefix("RTMIN") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| anyhow!("unknown signal {s:?}"))?
        };
        let n = libc::SIGRTMIN() + off;
        if n <= libc::SIGRTMAX() && off >= 0 {
            return Ok(n);
        }
        bail!("unknown signal {s:?}");
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().map_err(|_| anyhow!("unknown signal {s:?}"))?
        };
        let n = libc::SIGRTMAX() + off;
        if n >= libc::SIGRTMIN() && off <= 0 {
            return Ok(n);
        }
        bail!("unknown signal {s:?}");
    }
    let full = format!("SIG{name}");
    full.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow!("unknown signal {s:?}"))
}

fn list(rt: &Runtime, format: &str, quiet: bool) -> Result<()> {
    let all = rt.list()?;
    if quiet {
        for s in &all {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => println!("{}", serde_json::to_string(&all)?),
        "table" => {
            let mut rows = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for s in &all {
                rows.push([
                    s.id.clone(),
                    s.pid.to_string(),
                    s.status.to_string(),
                    s.bundle.display().to_string(),
                    s.created.clone(),
                    if s.owner.is_empty() {
                        "root".into()
                    } else {
                        s.owner.clone()
                    },
                ]);
            }
            print_table(&rows);
        }
        other => bail!("invalid format {other:?}: table or json"),
    }
    Ok(())
}

fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut widths = [0usize; N];
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}", w = widths[i] + 3));
            }
        }
        out.push('\n');
    }
    let _ = std::io::stdout().write_all(out.as_bytes());
}

fn ps(rt: &Runtime, id: &str, format: &str, ps_args: &[String]) -> Result<()> {
    let pids = rt.pids(id)?;
    match format {
        "json" => println!("{}", serde_json::to_string(&pids)?),
        "table" => {
            let args: Vec<String> = if ps_args.is_empty() {
                vec!["-ef".into()]
            } else {
                ps_args.to_vec()
            };
            let out = std::process::Command::new("ps")
                .args(&args)
                .output()
                .context("running ps")?;
            if !out.status.success() {
                bail!(
                    "ps {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let mut lines = text.lines();
            let header = lines.next().unwrap_or_default();
            let col = header
                .split_whitespace()
                .position(|h| h == "PID")
                .ok_or_else(|| anyhow!("ps output has no PID column"))?;
            println!("{header}");
            for l in lines {
                if let Some(p) = l
                    .split_whitespace()
                    .nth(col)
                    .and_then(|p| p.parse::<i32>().ok())
                    && pids.contains(&p)
                {
                    println!("{l}");
                }
            }
        }
        other => bail!("invalid format {other:?}: table or json"),
    }
    Ok(())
}

fn exec(rt: &Runtime, a: ExecArgs) -> Result<u8> {
    let process: Process = match &a.process {
        Some(p) => {
            let data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_slice(&data).with_context(|| format!("parsing {}", p.display()))?
        }
        None => {
            if a.command.is_empty() {
                bail!("exec needs a command (or --process)");
            }
            let spec = rt.spec(&a.id)?;
            let mut p = spec
                .process()
                .clone()
                .ok_or_else(|| anyhow!("the container has no process"))?;
            p.set_args(Some(a.command.clone()));
            let mut env = p.env().clone().unwrap_or_default();
            env.extend(a.env.iter().cloned());
            p.set_env(Some(env));
            if let Some(cwd) = &a.cwd {
                p.set_cwd(cwd.clone());
            }
            p.set_terminal(Some(a.tty));
            p.set_console_size(None);
            if let Some(u) = &a.user {
                let mut user = p.user().clone();
                let (uid, gid) = match u.split_once(':') {
                    Some((u, g)) => (u, Some(g)),
                    None => (u.as_str(), None),
                };
                user.set_uid(
                    uid.parse()
                        .with_context(|| format!("--user {u:?}: a numeric uid[:gid]"))?,
                );
                if let Some(g) = gid {
                    user.set_gid(
                        g.parse()
                            .with_context(|| format!("--user {u:?}: a numeric uid[:gid]"))?,
                    );
                }
                p.set_user(user);
            }
            if !a.additional_gids.is_empty() {
                let mut user = p.user().clone();
                user.set_additional_gids(Some(a.additional_gids.clone()));
                p.set_user(user);
            }
            if a.no_new_privs {
                p.set_no_new_privileges(Some(true));
            }
            if let Some(ap) = &a.apparmor {
                p.set_apparmor_profile(Some(ap.clone()));
            }
            if let Some(l) = &a.process_label {
                p.set_selinux_label(Some(l.clone()));
            }
            if !a.cap.is_empty() {
                let mut caps = p.capabilities().clone().unwrap_or_default();
                for c in &a.cap {
                    let cap: oci_spec::runtime::Capability =
                        serde_json::from_value(serde_json::Value::String(c.clone()))
                            .map_err(|_| anyhow!("unknown capability {c:?}"))?;
                    let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                        let mut s = s.clone().unwrap_or_default();
                        s.insert(cap);
                        Some(s)
                    };
                    caps.set_bounding(add(caps.bounding()));
                    caps.set_effective(add(caps.effective()));
                    caps.set_permitted(add(caps.permitted()));
                    if caps.inheritable().is_some() {
                        caps.set_ambient(add(caps.ambient()));
                    }
                }
                p.set_capabilities(Some(caps));
            }
            p
        }
    };
    let out = rt.exec(
        &a.id,
        ExecOptions {
            process,
            detach: a.detach,
            pid_file: a.pid_file,
            console_socket: a.console_socket,
            preserve_fds: a.preserve_fds,
            ignore_paused: a.ignore_paused,
        },
    )?;
    Ok(out.exit_code.unwrap_or(0).clamp(0, 255) as u8)
}

/// Bytes from "512m", "1g", "1024", "-1".
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num.parse().map_err(|_| anyhow!("invalid size {s:?}"))?;
    if n < 0.0 {
        bail!("invalid size {s:?}");
    }
    Ok((n * mult as f64) as i64)
}

fn update(rt: &Runtime, a: UpdateArgs) -> Result<()> {
    use oci_spec::runtime::{LinuxMemory, LinuxPids};
    let mut r: LinuxResources = match &a.resources {
        Some(p) => {
            let mut data = Vec::new();
            if p.as_os_str() == "-" {
                std::io::stdin().read_to_end(&mut data)?;
            } else {
                data = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            }
            serde_json::from_slice(&data).context("parsing the resources")?
        }
        None => LinuxResources::default(),
    };
    let mut mem = r.memory().unwrap_or_default();
    let mut mem_set = r.memory().is_some();
    for (v, f) in [
        (
            &a.memory,
            LinuxMemory::set_limit as fn(&mut LinuxMemory, Option<i64>) -> &mut LinuxMemory,
        ),
        (&a.memory_reservation, LinuxMemory::set_reservation),
        (&a.memory_swap, LinuxMemory::set_swap),
        (&a.kernel_memory, LinuxMemory::set_kernel),
        (&a.kernel_memory_tcp, LinuxMemory::set_kernel_tcp),
    ] {
        if let Some(v) = v {
            f(&mut mem, Some(parse_bytes(v)?));
            mem_set = true;
        }
    }
    if mem_set {
        r.set_memory(Some(mem));
    }
    let mut cpu = r.cpu().clone().unwrap_or_default();
    let mut cpu_set = r.cpu().is_some();
    if let Some(v) = a.cpu_share {
        cpu.set_shares(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_quota {
        cpu.set_quota(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_period {
        cpu.set_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_period {
        cpu.set_realtime_period(Some(v));
        cpu_set = true;
    }
    if let Some(v) = a.cpu_rt_runtime {
        cpu.set_realtime_runtime(Some(v));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_cpus {
        cpu.set_cpus(Some(v.clone()));
        cpu_set = true;
    }
    if let Some(v) = &a.cpuset_mems {
        cpu.set_mems(Some(v.clone()));
        cpu_set = true;
    }
    if cpu_set {
        r.set_cpu(Some(cpu));
    }
    if let Some(v) = a.pids_limit {
        let mut p = LinuxPids::default();
        p.set_limit(v);
        r.set_pids(Some(p));
    }
    if let Some(w) = a.blkio_weight {
        let mut b = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    rt.update(&a.id, &r)?;
    Ok(())
}

fn parse_duration(s: &str) -> Result<Duration> {
    humantime::parse_duration(s).map_err(|e| anyhow!("invalid interval {s:?}: {e}"))
}

fn events(rt: &Runtime, id: &str, stats_once: bool, interval: &str) -> Result<()> {
    use std::os::fd::AsFd;
    let emit = |v: serde_json::Value| -> Result<()> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{v}")?;
        out.flush()?;
        Ok(())
    };
    let stats_event = |rt: &Runtime| -> Result<serde_json::Value> {
        Ok(serde_json::json!({"type": "stats", "id": id, "data": rt.stats(id)?}))
    };
    if stats_once {
        return emit(stats_event(rt)?);
    }
    let interval = parse_duration(interval)?;
    if interval.is_zero() {
        bail!("the interval must be positive");
    }
    let mut oom = rt.oom_events(id)?;
    let mut next = std::time::Instant::now() + interval;
    loop {
        let st = rt.state(id)?;
        if st.status == berth_runtime::Status::Stopped {
            return Ok(());
        }
        let now = std::time::Instant::now();
        let wait = next.saturating_duration_since(now);
        let mut fds = [nix::poll::PollFd::new(
            oom.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        let ready = nix::poll::poll(
            &mut fds,
            nix::poll::PollTimeout::try_from(ms).unwrap_or(nix::poll::PollTimeout::MAX),
        );
        if matches!(ready, Ok(n) if n > 0) {
            let n = oom.read()?;
            for _ in 0..n {
                emit(serde_json::json!({"type": "oom", "id": id}))?;
            }
            continue;
        }
        if std::time::Instant::now() >= next {
            match stats_event(rt) {
                Ok(v) => emit(v)?,
                Err(_)
                    if rt
                        .state(id)
                        .map(|s| s.status == berth_runtime::Status::Stopped)
                        .unwrap_or(true) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            next += interval;
        }
    }
}

fn spec(bundle: &std::path::Path, rootless: bool) -> Result<()> {
    let path = bundle.join("config.json");
    if path.exists() {
        bail!("{} already exists; remove it first", path.display());
    }
    let v = berth_runtime::template::default_spec(
        rootless,
        nix::unistd::getuid().as_raw(),
        nix::unistd::getgid().as_raw(),
    );
    std::fs::write(&path, serde_json::to_string_pretty(&v)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_is_consistent() {
        use clap::CommandFactory;
        RuntimeCli::command().debug_assert();
    }

    #[test]
    fn signals() {
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("SIGUSR1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse_signal("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
        assert!(parse_signal("999").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert!(parse_bytes("x").is_err());
    }
}
