//! `berth run` and `berth create`: Docker's flags turned into the create request's Config and
//! HostConfig, the image pulled when it is missing (`--pull`), and for `run` the attached
//! session (attach, wait, start), its exit code as docker's.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use super::attach::{self, Outcome, Session};
use super::client::{Client, Request, api_status};
use super::images_api;

/// The resource flags of `run`/`create` and `update` (Docker's), and the HostConfig keys they
/// set: one definition for the container's creation and its live update.
#[derive(Args, Debug, Clone, Default)]
pub struct ResourceArgs {
    /// Memory limit.
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 for unlimited swap.
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Number of CPUs.
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight).
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota.
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1).
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable.
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Tune container pids limit (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
}

impl ResourceArgs {
    /// Put the limits given into `m` (a HostConfig, or an update's body).
    pub fn apply(&self, m: &mut Map<String, Value>) -> Result<()> {
        if let Some(v) = &self.memory {
            m.insert("Memory".into(), json!(size("--memory", v)?));
        }
        if let Some(v) = &self.memory_swap {
            let v = if v.trim() == "-1" {
                -1
            } else {
                size("--memory-swap", v)?
            };
            m.insert("MemorySwap".into(), json!(v));
        }
        if let Some(v) = &self.memory_reservation {
            m.insert(
                "MemoryReservation".into(),
                json!(size("--memory-reservation", v)?),
            );
        }
        if let Some(c) = &self.cpus {
            m.insert("NanoCpus".into(), json!(nano_cpus(c)?));
        }
        for (k, v) in [
            ("CpuShares", self.cpu_shares),
            ("CpuQuota", self.cpu_quota),
            ("CpuPeriod", self.cpu_period),
            ("PidsLimit", self.pids_limit),
        ] {
            if let Some(v) = v {
                m.insert(k.into(), json!(v));
            }
        }
        if let Some(w) = self.blkio_weight {
            m.insert("BlkioWeight".into(), json!(w));
        }
        if let Some(c) = &self.cpuset_cpus {
            m.insert("CpusetCpus".into(), json!(c));
        }
        if let Some(c) = &self.cpuset_mems {
            m.insert("CpusetMems".into(), json!(c));
        }
        Ok(())
    }
}

/// Flags `run` and `create` share.
#[derive(Args, Debug, Clone, Default)]
pub struct ContainerOpts {
    /// Attach to STDIN, STDOUT or STDERR.
    #[arg(short = 'a', long = "attach", value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Keep STDIN open even if not attached.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container.
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_file: Vec<String>,
    /// Working directory inside the container.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>]).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Container host name.
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name.
    #[arg(long)]
    pub domainname: Option<String>,
    /// Add a custom host-to-IP mapping (host:ip).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Bind mount a volume ([SRC:]DST[:OPTS]).
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container (type=…,source=…,target=…).
    #[arg(long)]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTS]).
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s).
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Set meta data on a container.
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Restart policy to apply when a container exits (no, always, on-failure[:N],
    /// unless-stopped).
    #[arg(long)]
    pub restart: Option<String>,
    /// Memory, CPU, pids and block IO limits.
    #[command(flatten)]
    pub resources: ResourceArgs,
    /// Disable OOM Killer.
    #[arg(long = "oom-kill-disable")]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000).
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Ulimit options (name=soft[:hard]).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add Linux capabilities.
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities.
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container.
    #[arg(long)]
    pub privileged: bool,
    /// Security Options.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem as read only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Run an init inside the container that forwards signals and reaps processes.
    #[arg(long)]
    pub init: bool,
    /// Signal to stop the container.
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container.
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Size of /dev/shm.
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Sysctl options (key=value).
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMS]).
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list.
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Add additional groups to join.
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Connect a container to a network (bridge, host, none, container:NAME, or a network's
    /// name).
    #[arg(long = "network", alias = "net")]
    pub network: Option<String>,
    /// Publish a container's port(s) to the host ([IP:][HOST:]CONTAINER[/PROTO], ranges).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports.
    #[arg(long)]
    pub expose: Vec<String>,
    /// Add network-scoped alias for the container.
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g. 172.30.100.104).
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g. 2001:db8::33).
    #[arg(long)]
    pub ip6: Option<String>,
    /// Container MAC address (e.g. 92:d0:c6:0a:29:33).
    #[arg(long = "mac-address")]
    pub mac_address: Option<String>,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add link to another container (NAME[:ALIAS]).
    #[arg(long)]
    pub link: Vec<String>,
    /// PID namespace to use.
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use.
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use.
    #[arg(long)]
    pub uts: Option<String>,
    /// User namespace to use.
    #[arg(long)]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private).
    #[arg(long)]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container.
    #[arg(long = "cgroup-parent")]
    pub cgroup_parent: Option<String>,
    /// Runtime to use for this container.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Logging driver for the container.
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options.
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Command to run to check health.
    #[arg(long = "health-cmd")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h).
    #[arg(long = "health-interval")]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h).
    #[arg(long = "health-timeout")]
    pub health_timeout: Option<String>,
    /// Consecutive failures needed to report unhealthy.
    #[arg(long = "health-retries")]
    pub health_retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries
    /// countdown (ms|s|m|h).
    #[arg(long = "health-start-period")]
    pub health_start_period: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h).
    #[arg(long = "health-start-interval")]
    pub health_start_interval: Option<String>,
    /// Disable any container-specified HEALTHCHECK.
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
    /// Pull image before creating ("always", "missing", "never").
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set platform if server is multi-platform capable.
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress the pull output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the container ID to the file.
    #[arg(long)]
    pub cidfile: Option<String>,
    /// Print usage.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

/// `berth create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: ContainerOpts,
    /// IMAGE [COMMAND] [ARG...]
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "IMAGE [COMMAND] [ARG...]"
    )]
    pub args: Vec<String>,
}

/// `berth run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Proxy received signals to the process.
    #[arg(long = "sig-proxy", default_value = "true", action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub create: CreateArgs,
}

/// A Go duration (`1m30s`, `500ms`, `2h`) in nanoseconds.
pub fn go_duration(s: &str) -> Result<i64> {
    let bad = || anyhow!("invalid duration {s:?}: want e.g. 30s, 1m30s, 500ms");
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        if num.is_empty() {
            return Err(bad());
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_end);
        let mult = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * mult;
        rest = next;
    }
    if !total.is_finite() || total > i64::MAX as f64 {
        return Err(bad());
    }
    Ok(total as i64)
}

/// `--cpus 1.5` in nano CPUs, exactly.
pub fn nano_cpus(s: &str) -> Result<i64> {
    let bad = || anyhow!("invalid argument {s:?} for \"--cpus\" flag: not a number of CPUs");
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if (whole.is_empty() && frac.is_empty()) || frac.len() > 9 {
        return Err(bad());
    }
    let w: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    if w < 0 || !frac.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    w.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(f))
        .ok_or_else(bad)
}

/// A size flag (`512m`) in bytes.
pub fn size(flag: &str, s: &str) -> Result<i64> {
    berth_spec::units::ram_in_bytes(s).map_err(|e| anyhow!("invalid argument for {flag}: {e}"))
}

fn key_values(flag: &str, items: &[String]) -> Result<Map<String, Value>> {
    let mut m = Map::new();
    for kv in items {
        let (k, v) = kv.split_once('=').unwrap_or((kv.as_str(), ""));
        if k.is_empty() {
            bail!("invalid argument {kv:?} for {flag}: want key=value");
        }
        m.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(m)
}

/// `-e`/`--env-file` as docker reads them: `KEY` alone takes the value of this environment
/// (and is left out when unset).
fn environment(o: &ContainerOpts) -> Result<Vec<String>> {
    let mut env = Vec::new();
    let mut add = |item: &str| {
        if item.contains('=') {
            env.push(item.to_string());
        } else if let Ok(v) = std::env::var(item) {
            env.push(format!("{item}={v}"));
        }
    };
    for f in &o.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?;
        for line in text.lines() {
            let l = line.trim_start();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if l.starts_with('=') {
                bail!("invalid environment variable in {f}: {l}");
            }
            add(l);
        }
    }
    for e in &o.env {
        if e.starts_with('=') {
            bail!("invalid environment variable: {e}");
        }
        add(e);
    }
    Ok(env)
}

/// `--restart no|always|unless-stopped|on-failure[:N]` as the API's RestartPolicy.
pub fn restart_policy_value(s: &str) -> Result<Value> {
    let (name, count) = s.split_once(':').unwrap_or((s, ""));
    match name {
        "no" | "always" | "unless-stopped" if count.is_empty() => {
            Ok(json!({"Name": name, "MaximumRetryCount": 0}))
        }
        "on-failure" => {
            let n: i64 = if count.is_empty() {
                0
            } else {
                count
                    .parse()
                    .map_err(|_| anyhow!("invalid restart policy {s:?}: bad retry count"))?
            };
            Ok(json!({"Name": name, "MaximumRetryCount": n}))
        }
        "" => Ok(json!({"Name": "", "MaximumRetryCount": 0})),
        _ => bail!(
            "invalid restart policy {s:?}: want no, always, unless-stopped or on-failure[:max-retries]"
        ),
    }
}

fn bool_opt(v: Option<&str>) -> Result<bool> {
    match v {
        None | Some("") | Some("1") | Some("true") => Ok(true),
        Some("0") | Some("false") => Ok(false),
        Some(o) => bail!("invalid boolean value {o:?}"),
    }
}

/// `--mount type=…,source=…,target=…,…` in the API's Mount shape.
fn mount(spec: &str) -> Result<Value> {
    let mut m = Map::new();
    let mut kind = "volume".to_string();
    let (mut bind, mut vol, mut tmpfs) = (Map::new(), Map::new(), Map::new());
    let (mut vol_labels, mut vol_opts) = (Map::new(), Map::new());
    for field in spec.split(',') {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let val = || v.ok_or_else(|| anyhow!("invalid field {field:?}: must be a key=value pair"));
        match k.as_str() {
            "type" => kind = val()?.to_string(),
            "source" | "src" => {
                m.insert("Source".into(), json!(val()?));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(val()?));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(bool_opt(v)?));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(val()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(val()?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(bool_opt(v)?));
            }
            "bind-recursive" => {
                let r = val()?;
                if r == "disabled" {
                    bind.insert("NonRecursive".into(), json!(true));
                }
            }
            "bind-create-src" => {
                bind.insert("CreateMountpoint".into(), json!(bool_opt(v)?));
            }
            "volume-nocopy" | "volume-no-copy" => {
                vol.insert("NoCopy".into(), json!(bool_opt(v)?));
            }
            "volume-subpath" => {
                vol.insert("Subpath".into(), json!(val()?));
            }
            "volume-driver" => {
                vol.insert("DriverConfig".into(), json!({"Name": val()?}));
            }
            "volume-label" => {
                let (a, b) = val()?.split_once('=').unwrap_or((val()?, ""));
                vol_labels.insert(a.into(), json!(b));
            }
            "volume-opt" => {
                let (a, b) = val()?.split_once('=').unwrap_or((val()?, ""));
                vol_opts.insert(a.into(), json!(b));
            }
            "tmpfs-size" => {
                tmpfs.insert("SizeBytes".into(), json!(size("tmpfs-size", val()?)?));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(val()?, 8)
                    .map_err(|_| anyhow!("invalid tmpfs-mode {:?}: want octal", val()))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => bail!("unexpected key {k:?} in {spec:?}"),
        }
    }
    if !["bind", "volume", "tmpfs", "image", "npipe", "cluster"].contains(&kind.as_str()) {
        bail!("invalid mount type {kind:?}");
    }
    if !m.contains_key("Target") {
        bail!("invalid mount {spec:?}: target is required");
    }
    m.insert("Type".into(), json!(kind));
    if !bind.is_empty() {
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !vol_labels.is_empty() {
        vol.insert("Labels".into(), Value::Object(vol_labels));
    }
    if !vol_opts.is_empty() {
        let dc = vol
            .entry("DriverConfig")
            .or_insert_with(|| json!({"Name": "local"}));
        dc["Options"] = Value::Object(vol_opts);
    }
    if !vol.is_empty() {
        m.insert("VolumeOptions".into(), Value::Object(vol));
    }
    if !tmpfs.is_empty() {
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    Ok(Value::Object(m))
}

fn device(spec: &str) -> Result<Value> {
    let parts: Vec<&str> = spec.split(':').collect();
    let is_perms = |p: &str| !p.is_empty() && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let (host, ctr, perms) = match parts.as_slice() {
        [h] => (*h, *h, "rwm"),
        [h, p] if is_perms(p) => (*h, *h, *p),
        [h, c] => (*h, *c, "rwm"),
        [h, c, p] if is_perms(p) => (*h, *c, *p),
        _ => bail!("invalid device specification: {spec}"),
    };
    Ok(json!({"PathOnHost": host, "PathInContainer": ctr, "CgroupPermissions": perms}))
}

fn ulimit(spec: &str) -> Result<Value> {
    let bad = || anyhow!("invalid ulimit argument: {spec}");
    let (name, vals) = spec.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = vals.split_once(':').unwrap_or((vals, vals));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// `-v`: binds and named volumes go to HostConfig.Binds, a path alone is an anonymous
/// volume (Config.Volumes). A relative host path is made absolute.
fn volumes(specs: &[String]) -> Result<(Vec<String>, Map<String, Value>)> {
    let mut binds = Vec::new();
    let mut anon = Map::new();
    for v in specs {
        let parts: Vec<&str> = v.split(':').collect();
        match parts.as_slice() {
            [dst] => {
                if !dst.starts_with('/') {
                    bail!("invalid volume specification: {v:?}: the path must be absolute");
                }
                anon.insert(dst.to_string(), json!({}));
            }
            [src, rest @ ..] if rest.len() <= 2 => {
                let src = if src.starts_with('.') {
                    std::env::current_dir()
                        .context("the current directory")?
                        .join(src)
                        .to_string_lossy()
                        .into_owned()
                } else {
                    src.to_string()
                };
                binds.push(
                    std::iter::once(src.as_str())
                        .chain(rest.iter().copied())
                        .collect::<Vec<_>>()
                        .join(":"),
                );
            }
            _ => bail!("invalid volume specification: {v:?}"),
        }
    }
    Ok((binds, anon))
}

/// `--security-opt seccomp=FILE`: the profile is sent inline, as the docker CLI does.
fn security_opts(opts: &[String]) -> Result<Vec<String>> {
    opts.iter()
        .map(|o| match o.split_once(['=', ':']) {
            Some(("seccomp", p)) if p != "unconfined" && p != "builtin" => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("opening seccomp profile ({p}) failed"))?;
                let v: Value = serde_json::from_str(&text)
                    .with_context(|| format!("the seccomp profile {p} is not JSON"))?;
                Ok(format!("seccomp={v}"))
            }
            _ => Ok(o.clone()),
        })
        .collect()
}

/// The image, the command, and the create request's body.
pub struct Spec {
    /// The image as given.
    pub image: String,
    /// The body of POST /containers/create.
    pub body: Value,
    /// Which streams are attached (stdin, stdout, stderr).
    pub attach: (bool, bool, bool),
}

/// Build the create request from the flags.
pub fn spec(o: &ContainerOpts, args: &[String], detach: bool) -> Result<Spec> {
    let (image, cmd) = args
        .split_first()
        .ok_or_else(|| anyhow!("\"run\" requires at least 1 argument: IMAGE"))?;
    if image.is_empty() {
        bail!("invalid reference format: the image name is empty");
    }
    let mut attach = (false, false, false);
    if detach {
        if !o.attach.is_empty() {
            bail!("Conflicting options: -a and -d");
        }
    } else if o.attach.is_empty() {
        attach = (o.interactive, true, true);
    } else {
        for a in &o.attach {
            match a.to_ascii_lowercase().as_str() {
                "stdin" => attach.0 = true,
                "stdout" => attach.1 = true,
                "stderr" => attach.2 = true,
                _ => bail!(
                    "invalid argument {a:?} for \"-a, --attach\" flag: valid streams are STDIN, STDOUT and STDERR"
                ),
            }
        }
    }
    if o.rm
        && o.restart
            .as_deref()
            .is_some_and(|r| r != "no" && !r.is_empty())
    {
        bail!("Conflicting options: --restart and --rm");
    }
    if o.no_healthcheck
        && (o.health_cmd.is_some()
            || o.health_interval.is_some()
            || o.health_timeout.is_some()
            || o.health_retries.is_some()
            || o.health_start_period.is_some())
    {
        bail!("--no-healthcheck conflicts with --health-* options");
    }
    let mut config = Map::new();
    let mut hc = Map::new();
    let set = |m: &mut Map<String, Value>, k: &str, v: Value| {
        m.insert(k.to_string(), v);
    };
    set(&mut config, "Image", json!(image));
    if !cmd.is_empty() {
        set(&mut config, "Cmd", json!(cmd));
    }
    if let Some(e) = &o.entrypoint {
        set(&mut config, "Entrypoint", json!([e]));
    }
    set(&mut config, "Tty", json!(o.tty));
    set(&mut config, "OpenStdin", json!(o.interactive));
    set(&mut config, "StdinOnce", json!(o.interactive && attach.0));
    set(&mut config, "AttachStdin", json!(attach.0));
    set(&mut config, "AttachStdout", json!(attach.1));
    set(&mut config, "AttachStderr", json!(attach.2));
    let env = environment(o)?;
    if !env.is_empty() {
        set(&mut config, "Env", json!(env));
    }
    if let Some(w) = &o.workdir {
        set(&mut config, "WorkingDir", json!(w));
    }
    if let Some(u) = &o.user {
        set(&mut config, "User", json!(u));
    }
    if let Some(h) = &o.hostname {
        set(&mut config, "Hostname", json!(h));
    }
    if let Some(d) = &o.domainname {
        set(&mut config, "Domainname", json!(d));
    }
    if !o.label.is_empty() {
        set(
            &mut config,
            "Labels",
            Value::Object(key_values("--label", &o.label)?),
        );
    }
    if let Some(s) = &o.stop_signal {
        set(&mut config, "StopSignal", json!(s));
    }
    if let Some(t) = o.stop_timeout {
        set(&mut config, "StopTimeout", json!(t));
    }
    if o.no_healthcheck {
        set(&mut config, "Healthcheck", json!({"Test": ["NONE"]}));
    } else {
        let mut h = Map::new();
        if let Some(c) = &o.health_cmd {
            h.insert("Test".into(), json!(["CMD-SHELL", c]));
        }
        for (flag, key, v) in [
            ("--health-interval", "Interval", &o.health_interval),
            ("--health-timeout", "Timeout", &o.health_timeout),
            (
                "--health-start-period",
                "StartPeriod",
                &o.health_start_period,
            ),
            (
                "--health-start-interval",
                "StartInterval",
                &o.health_start_interval,
            ),
        ] {
            if let Some(v) = v {
                let ns = go_duration(v).context(flag)?;
                if ns < 0 {
                    bail!("{flag} cannot be negative");
                }
                h.insert(key.into(), json!(ns));
            }
        }
        if let Some(r) = o.health_retries {
            if r < 0 {
                bail!("--health-retries cannot be negative");
            }
            h.insert("Retries".into(), json!(r));
        }
        if !h.is_empty() {
            set(&mut config, "Healthcheck", Value::Object(h));
        }
    }
    let (binds, anon) = volumes(&o.volume)?;
    if !anon.is_empty() {
        set(&mut config, "Volumes", Value::Object(anon));
    }
    if !binds.is_empty() {
        set(&mut hc, "Binds", json!(binds));
    }
    if !o.mount.is_empty() {
        let mounts = o
            .mount
            .iter()
            .map(|m| mount(m))
            .collect::<Result<Vec<_>>>()?;
        set(&mut hc, "Mounts", json!(mounts));
    }
    if !o.tmpfs.is_empty() {
        let mut t = Map::new();
        for s in &o.tmpfs {
            let (p, opts) = s.split_once(':').unwrap_or((s.as_str(), ""));
            t.insert(p.to_string(), json!(opts));
        }
        set(&mut hc, "Tmpfs", Value::Object(t));
    }
    if !o.volumes_from.is_empty() {
        set(&mut hc, "VolumesFrom", json!(o.volumes_from));
    }
    set(&mut hc, "AutoRemove", json!(o.rm));
    if let Some(r) = &o.restart {
        set(&mut hc, "RestartPolicy", restart_policy_value(r)?);
    }
    o.resources.apply(&mut hc)?;
    if o.oom_kill_disable {
        set(&mut hc, "OomKillDisable", json!(true));
    }
    if let Some(v) = o.oom_score_adj {
        set(&mut hc, "OomScoreAdj", json!(v));
    }
    if !o.ulimit.is_empty() {
        let u = o
            .ulimit
            .iter()
            .map(|u| ulimit(u))
            .collect::<Result<Vec<_>>>()?;
        set(&mut hc, "Ulimits", json!(u));
    }
    if !o.cap_add.is_empty() {
        set(&mut hc, "CapAdd", json!(o.cap_add));
    }
    if !o.cap_drop.is_empty() {
        set(&mut hc, "CapDrop", json!(o.cap_drop));
    }
    if o.privileged {
        set(&mut hc, "Privileged", json!(true));
    }
    if !o.security_opt.is_empty() {
        set(
            &mut hc,
            "SecurityOpt",
            json!(security_opts(&o.security_opt)?),
        );
    }
    if o.read_only {
        set(&mut hc, "ReadonlyRootfs", json!(true));
    }
    if o.init {
        set(&mut hc, "Init", json!(true));
    }
    if let Some(s) = &o.shm_size {
        set(&mut hc, "ShmSize", json!(size("--shm-size", s)?));
    }
    if !o.sysctl.is_empty() {
        set(
            &mut hc,
            "Sysctls",
            Value::Object(key_values("--sysctl", &o.sysctl)?),
        );
    }
    if !o.device.is_empty() {
        let d = o
            .device
            .iter()
            .map(|d| device(d))
            .collect::<Result<Vec<_>>>()?;
        set(&mut hc, "Devices", json!(d));
    }
    if !o.device_cgroup_rule.is_empty() {
        set(&mut hc, "DeviceCgroupRules", json!(o.device_cgroup_rule));
    }
    if !o.group_add.is_empty() {
        set(&mut hc, "GroupAdd", json!(o.group_add));
    }
    if !o.add_host.is_empty() {
        let hosts: Vec<String> = o
            .add_host
            .iter()
            .map(|h| match h.split_once('=') {
                Some((n, ip)) if !h.contains(':') || ip.contains(':') => format!("{n}:{ip}"),
                _ => h.clone(),
            })
            .collect();
        set(&mut hc, "ExtraHosts", json!(hosts));
    }
    for (k, v) in [
        ("NetworkMode", &o.network),
        ("PidMode", &o.pid),
        ("IpcMode", &o.ipc),
        ("UTSMode", &o.uts),
        ("UsernsMode", &o.userns),
        ("CgroupnsMode", &o.cgroupns),
        ("CgroupParent", &o.cgroup_parent),
        ("Runtime", &o.runtime),
    ] {
        if let Some(v) = v {
            set(&mut hc, k, json!(v));
        }
    }
    if o.log_driver.is_some() || !o.log_opt.is_empty() {
        set(
            &mut hc,
            "LogConfig",
            json!({
                "Type": o.log_driver.clone().unwrap_or_default(),
                "Config": key_values("--log-opt", &o.log_opt)?,
            }),
        );
    }
    if o.tty {
        if let Some((h, w)) = attach::terminal_size() {
            set(&mut hc, "ConsoleSize", json!([h, w]));
        }
    }
    // Ports: -p also exposes, as the docker CLI does.
    let (bindings, exposed) = port_flags(&o.publish, &o.expose)?;
    if !exposed.is_empty() {
        let mut e = config
            .get("ExposedPorts")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for p in exposed {
            e.insert(p, json!({}));
        }
        set(&mut config, "ExposedPorts", Value::Object(e));
    }
    if !bindings.is_empty() {
        set(&mut hc, "PortBindings", Value::Object(bindings));
    }
    if o.publish_all {
        set(&mut hc, "PublishAllPorts", json!(true));
    }
    for (k, v) in [
        ("Dns", &o.dns),
        ("DnsSearch", &o.dns_search),
        ("DnsOptions", &o.dns_option),
        ("Links", &o.link),
    ] {
        if !v.is_empty() {
            set(&mut hc, k, json!(v));
        }
    }
    let mut body = config;
    body.insert("HostConfig".into(), Value::Object(hc));
    if !o.network_alias.is_empty() || o.ip.is_some() || o.ip6.is_some() || o.mac_address.is_some() {
        let net = o.network.clone().unwrap_or_else(|| "default".into());
        let mut ep = json!({});
        if !o.network_alias.is_empty() {
            ep["Aliases"] = json!(o.network_alias);
        }
        if o.ip.is_some() || o.ip6.is_some() {
            ep["IPAMConfig"] = json!({
                "IPv4Address": o.ip.clone().unwrap_or_default(),
                "IPv6Address": o.ip6.clone().unwrap_or_default(),
            });
        }
        if let Some(m) = &o.mac_address {
            ep["MacAddress"] = json!(m);
        }
        body.insert(
            "NetworkingConfig".into(),
            json!({"EndpointsConfig": {net: ep}}),
        );
    }
    Ok(Spec {
        image: image.clone(),
        body: Value::Object(body),
        attach,
    })
}

/// Create the container (pulling its image first as `--pull` says); its ID.
pub fn create_container(c: &Client, o: &ContainerOpts, s: &Spec) -> Result<String> {
    match o.pull.as_str() {
        "always" => images_api::pull_for_run(c, &s.image, o.platform.as_deref(), o.quiet)?,
        "missing" | "never" => {}
        other => bail!(
            "invalid pull option: {other:?}: must be one of \"always\", \"missing\" or \"never\""
        ),
    }
    let req = || {
        Request::post("/containers/create")
            .q_opt("name", o.name.as_ref())
            .q_opt("platform", o.platform.as_ref())
            .json(&s.body)
    };
    let v = match c.json(req()) {
        Ok(v) => v,
        Err(e)
            if o.pull == "missing"
                && api_status(&e) == Some(404)
                && e.to_string().to_ascii_lowercase().contains("no such image") =>
        {
            let shown = berth_registry::Reference::parse(&s.image)
                .map(|r| r.familiar())
                .unwrap_or_else(|_| s.image.clone());
            eprintln!("Unable to find image '{shown}' locally");
            images_api::pull_for_run(c, &s.image, o.platform.as_deref(), o.quiet)?;
            c.json(req())?
        }
        Err(e) => return Err(e),
    };
    let id = v["Id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon's answer has no container ID"))?
        .to_string();
    for w in v["Warnings"].as_array().into_iter().flatten() {
        if let Some(w) = w.as_str().filter(|w| !w.is_empty()) {
            eprintln!("WARNING: {w}");
        }
    }
    if let Some(f) = &o.cidfile {
        if Path::new(f).exists() {
            bail!(
                "container ID file found, make sure the other container isn't running or delete {f}"
            );
        }
        std::fs::write(f, &id).with_context(|| format!("writing the container ID to {f}"))?;
    }
    Ok(id)
}

/// `berth create`: the container's ID.
pub fn create(c: &Client, a: &CreateArgs) -> Result<ExitCode> {
    let s = spec(&a.opts, &a.args, true)?;
    let id = create_container(c, &a.opts, &s)?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// The exit status docker gives a container that could not start: 127 when its command
/// was not found, 126 when it could not be run, else 125.
pub fn start_failure_code(msg: &str) -> u8 {
    let m = msg.to_ascii_lowercase();
    if m.contains("executable file not found")
        || m.contains("no such file or directory")
        || m.contains("system cannot find the file")
    {
        127
    } else if m.contains("permission denied") {
        126
    } else {
        125
    }
}

/// A container's exit code as this process's.
pub fn exit_code(code: i64) -> ExitCode {
    ExitCode::from((code & 0xff) as u8)
}

/// Open the wait for `id` before it starts (the daemon subscribes before it answers); its
/// result is read once the output ends.
pub fn wait_request(c: &Client, id: &str, removed: bool) -> Result<super::client::Response> {
    c.call(
        Request::post(format!("/containers/{id}/wait"))
            .q("condition", if removed { "removed" } else { "next-exit" }),
    )
}

/// The status code of a wait's answer (125 with its error printed when it has one).
pub fn wait_result(r: super::client::Response) -> Result<i64> {
    let v = r
        .json_stream()
        .next()
        .transpose()?
        .ok_or_else(|| anyhow!("the daemon ended the wait without a status"))?;
    if let Some(m) = v["Error"]["Message"].as_str().filter(|m| !m.is_empty()) {
        eprintln!("berth: {m}");
        return Ok(125);
    }
    Ok(v["StatusCode"].as_i64().unwrap_or(125))
}

/// `berth run`.
pub fn run(c: &Client, a: &RunArgs) -> Result<ExitCode> {
    let o = &a.create.opts;
    let s = spec(o, &a.create.args, a.detach)?;
    let (att_in, att_out, att_err) = s.attach;
    if o.tty && att_in && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    let detach_keys =
        attach::parse_detach_keys(a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"))?;
    let id = create_container(c, o, &s)?;
    if a.detach {
        if let Err(e) = c.ok(Request::post(format!("/containers/{id}/start"))) {
            return start_failed(c, &id, o.rm, &e);
        }
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let hijacked = if att_in || att_out || att_err {
        Some(
            c.hijack(
                Request::post(format!("/containers/{id}/attach"))
                    .q("stream", 1)
                    .q("stdin", u8::from(att_in))
                    .q("stdout", u8::from(att_out))
                    .q("stderr", u8::from(att_err))
                    // The daemon watches a terminal's input for them too: the same keys.
                    .q(
                        "detachKeys",
                        a.detach_keys.as_deref().unwrap_or("ctrl-p,ctrl-q"),
                    ),
            )?,
        )
    } else {
        None
    };
    let wait = wait_request(c, &id, o.rm)?;
    let start = || c.ok(Request::post(format!("/containers/{id}/start")));
    let outcome = match hijacked {
        Some(h) => {
            let sess = Session {
                client: c,
                tty: o.tty,
                stdin: att_in,
                detach_keys: Some(detach_keys),
                sig_proxy: (a.sig_proxy && !o.tty).then(|| id.clone()),
                resize_path: o.tty.then(|| format!("/containers/{id}/resize")),
            };
            match attach::session(h, &sess, start) {
                Ok(o) => o,
                Err(e) if super::client::api_status(&e).is_some() => {
                    return start_failed(c, &id, o.rm, &e);
                }
                Err(e) => return Err(e),
            }
        }
        None => {
            if let Err(e) = start() {
                return start_failed(c, &id, o.rm, &e);
            }
            Outcome::Ended
        }
    };
    if outcome == Outcome::Detached {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(exit_code(wait_result(wait)?))
}

/// A start that failed: docker's message and exit status; with `--rm` the container goes.
fn start_failed(c: &Client, id: &str, rm: bool, e: &anyhow::Error) -> Result<ExitCode> {
    if rm {
        let _ = c.send(Request::delete(format!("/containers/{id}")).q("force", 1));
    }
    let msg = super::one_line(e);
    eprintln!("berth: {msg}");
    Ok(ExitCode::from(start_failure_code(&msg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_cpus() {
        assert_eq!(go_duration("30s").unwrap(), 30_000_000_000);
        assert_eq!(go_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(go_duration("500ms").unwrap(), 500_000_000);
        assert_eq!(go_duration("1.5h").unwrap(), 5_400_000_000_000);
        assert!(go_duration("10").is_err());
        assert!(go_duration("x").is_err());
        assert_eq!(nano_cpus("1.5").unwrap(), 1_500_000_000);
        assert_eq!(nano_cpus("0.001").unwrap(), 1_000_000);
        assert_eq!(nano_cpus("2").unwrap(), 2_000_000_000);
        assert!(nano_cpus("-1").is_err());
        assert!(nano_cpus("nan").is_err());
        assert!(nano_cpus("1e9").is_err());
    }

    fn opts() -> ContainerOpts {
        ContainerOpts {
            pull: "missing".into(),
            ..Default::default()
        }
    }

    #[test]
    fn flags_become_the_create_request() {
        let mut o = opts();
        o.interactive = true;
        o.rm = true;
        o.env = vec!["A=1".into()];
        o.resources.memory = Some("512m".into());
        o.resources.memory_swap = Some("-1".into());
        o.resources.cpus = Some("0.5".into());
        o.restart = Some("no".into());
        o.volume = vec!["/data".into(), "/h:/c:ro".into(), "vol:/v".into()];
        o.mount = vec!["type=tmpfs,target=/t,tmpfs-size=1m".into()];
        o.tmpfs = vec!["/run:size=1m".into()];
        o.ulimit = vec!["nofile=10:20".into()];
        o.device = vec!["/dev/fuse:rw".into()];
        o.health_cmd = Some("true".into());
        o.health_interval = Some("1s".into());
        o.label = vec!["a=b".into(), "c".into()];
        let s = spec(
            &o,
            &["img".into(), "sh".into(), "-c".into(), "x".into()],
            false,
        )
        .unwrap();
        let b = &s.body;
        assert_eq!(s.attach, (true, true, true));
        assert_eq!(b["Image"], "img");
        assert_eq!(b["Cmd"], json!(["sh", "-c", "x"]));
        assert_eq!(b["OpenStdin"], true);
        assert_eq!(b["StdinOnce"], true);
        assert_eq!(b["Env"], json!(["A=1"]));
        assert_eq!(b["Volumes"], json!({"/data": {}}));
        assert_eq!(b["Labels"], json!({"a": "b", "c": ""}));
        assert_eq!(b["Healthcheck"]["Test"], json!(["CMD-SHELL", "true"]));
        assert_eq!(b["Healthcheck"]["Interval"], 1_000_000_000);
        let hc = &b["HostConfig"];
        assert_eq!(hc["AutoRemove"], true);
        assert_eq!(hc["Memory"], 512 << 20);
        assert_eq!(hc["MemorySwap"], -1);
        assert_eq!(hc["NanoCpus"], 500_000_000);
        assert_eq!(hc["Binds"], json!(["/h:/c:ro", "vol:/v"]));
        assert_eq!(hc["Mounts"][0]["Type"], "tmpfs");
        assert_eq!(hc["Mounts"][0]["TmpfsOptions"]["SizeBytes"], 1 << 20);
        assert_eq!(hc["Tmpfs"], json!({"/run": "size=1m"}));
        assert_eq!(
            hc["Ulimits"],
            json!([{"Name": "nofile", "Soft": 10, "Hard": 20}])
        );
        assert_eq!(hc["Devices"][0]["CgroupPermissions"], "rw");
        assert_eq!(hc["RestartPolicy"]["Name"], "no");
    }

    #[test]
    fn bad_flags_are_refused() {
        let img = ["img".to_string()];
        let mut o = opts();
        o.restart = Some("always".into());
        o.rm = true;
        assert!(spec(&o, &img, false).is_err());
        let mut o = opts();
        o.attach = vec!["stdout".into()];
        assert!(spec(&o, &img, true).is_err());
        let mut o = opts();
        o.resources.memory = Some("lots".into());
        assert!(spec(&o, &img, false).is_err());
        let mut o = opts();
        o.no_healthcheck = true;
        o.health_cmd = Some("x".into());
        assert!(spec(&o, &img, false).is_err());
        let mut o = opts();
        o.mount = vec!["type=bind,source=/x".into()];
        assert!(spec(&o, &img, false).is_err());
    }

    #[test]
    fn start_failures_map_like_docker() {
        assert_eq!(
            start_failure_code("exec: \"nope\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_code("open /x: permission denied"), 126);
        assert_eq!(start_failure_code("something else"), 125);
    }
}

/// `-p` and `--expose` as the docker CLI reads them (nat.ParsePortSpecs): the PortBindings
/// map (`"80/tcp": [{"HostIp": "", "HostPort": "8080"}]`) and every exposed port key.
pub fn port_flags(
    publish: &[String],
    expose: &[String],
) -> Result<(serde_json::Map<String, Value>, Vec<String>)> {
    let mut bindings = serde_json::Map::new();
    let mut exposed: Vec<String> = Vec::new();
    let range = |s: &str, what: &str| -> Result<(u16, u16)> {
        let bad = || anyhow!("invalid {what}: {s}");
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let a: u16 = a.parse().map_err(|_| bad())?;
        let b: u16 = b.parse().map_err(|_| bad())?;
        if b < a {
            return Err(bad());
        }
        Ok((a, b))
    };
    for e in expose {
        let (p, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (a, b) = range(p, "range format for --expose")?;
        for port in a..=b {
            let k = format!("{port}/{proto}");
            if !exposed.contains(&k) {
                exposed.push(k);
            }
        }
    }
    for spec in publish {
        let (rest, proto) = match spec.rsplit_once('/') {
            Some((r, p)) => (r, p),
            None => (spec.as_str(), "tcp"),
        };
        if !matches!(proto, "tcp" | "udp" | "sctp") {
            bail!("invalid proto: {proto}");
        }
        // [IP:][HOST:]CONTAINER; an IPv6 address is in brackets.
        let (ip, hostport, cport) = {
            let (ip, tail) = if let Some(r) = rest.strip_prefix('[') {
                let (ip, t) = r
                    .split_once("]:")
                    .ok_or_else(|| anyhow!("invalid IP address in {spec}"))?;
                (ip.to_string(), t.to_string())
            } else {
                let parts: Vec<&str> = rest.split(':').collect();
                match parts.len() {
                    1 | 2 => (String::new(), rest.to_string()),
                    3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
                    _ => bail!("invalid port format: {spec}"),
                }
            };
            match tail.split_once(':') {
                Some((h, c)) => (ip, h.to_string(), c.to_string()),
                None => (ip, String::new(), tail),
            }
        };
        if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
            bail!("invalid IP address: {ip}");
        }
        if cport.is_empty() {
            bail!("no port specified: {spec}<empty>");
        }
        let (ca, cb) = range(&cport, "containerPort")?;
        if ca == 0 {
            bail!("invalid containerPort: {cport}");
        }
        let host = if hostport.is_empty() {
            None
        } else {
            Some(range(&hostport, "hostPort")?)
        };
        let n = u32::from(cb - ca) + 1;
        if let Some((ha, hb)) = host {
            let hn = u32::from(hb - ha) + 1;
            if n > 1 && hn != n {
                bail!(
                    "invalid ranges specified for container and host Ports: {cport} and {hostport}"
                );
            }
        }
        for i in 0..n {
            let port = ca + i as u16;
            let k = format!("{port}/{proto}");
            let hp = match host {
                None => String::new(),
                Some((ha, hb)) if n == 1 && hb > ha => format!("{ha}-{hb}"),
                Some((ha, _)) => (ha + i as u16).to_string(),
            };
            let entry = bindings
                .entry(k.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Some(a) = entry.as_array_mut() {
                a.push(json!({"HostIp": ip, "HostPort": hp}));
            }
            if !exposed.contains(&k) {
                exposed.push(k);
            }
        }
    }
    Ok((bindings, exposed))
}

#[cfg(test)]
mod port_tests {
    use super::port_flags;

    fn one(spec: &str) -> serde_json::Value {
        let (b, _) = port_flags(&[spec.to_string()], &[]).unwrap();
        serde_json::Value::Object(b)
    }

    #[test]
    fn publish_specs_as_the_docker_cli() {
        assert_eq!(
            one("80"),
            serde_json::json!({"80/tcp": [{"HostIp": "", "HostPort": ""}]})
        );
        assert_eq!(
            one("8080:80"),
            serde_json::json!({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]})
        );
        assert_eq!(
            one("127.0.0.1:8080:80/udp"),
            serde_json::json!({"80/udp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]})
        );
        assert_eq!(
            one("127.0.0.1::80"),
            serde_json::json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]})
        );
        assert_eq!(
            one("[::1]:8080:80"),
            serde_json::json!({"80/tcp": [{"HostIp": "::1", "HostPort": "8080"}]})
        );
        let r = one("8000-8001:9000-9001");
        assert_eq!(r["9000/tcp"][0]["HostPort"], "8000");
        assert_eq!(r["9001/tcp"][0]["HostPort"], "8001");
        assert_eq!(one("8000-8010:80")["80/tcp"][0]["HostPort"], "8000-8010");
        for bad in [
            "8080:80/icmp",
            "1.2.3:80:80",
            "a:b:c:d",
            "8000-8002:80-81",
            "80:",
            "99999",
        ] {
            assert!(port_flags(&[bad.to_string()], &[]).is_err(), "{bad}");
        }
        let (_, exposed) =
            port_flags(&["8080:80".into()], &["53/udp".into(), "7000-7001".into()]).unwrap();
        assert_eq!(exposed, vec!["53/udp", "7000/tcp", "7001/tcp", "80/tcp"]);
    }
}
