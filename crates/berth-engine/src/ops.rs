//! Operations on a container's processes and files: stats, top, update (live), archive
//! (`docker cp`), export, changes (`docker diff`), commit.
//!
//! Every method here blocks (cgroup files, `ps`, the root filesystem, the image store): the
//! API calls them from blocking threads.

pub(crate) mod archive;
mod stats;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use bollard_stubs::models::{
    ContainerConfig, ContainerUpdateBody, HealthConfig, RestartPolicyNameEnum,
};

use crate::containers::root_id;
use crate::model::{Container, Status};
use crate::{Action, Engine, Error, Handle, Result, Subject};

pub use archive::PathStat;
pub use stats::StatsSample;

/// `docker top`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Top {
    /// The ps columns.
    #[serde(rename = "Titles")]
    pub titles: Vec<String>,
    /// One row per process of the container.
    #[serde(rename = "Processes")]
    pub processes: Vec<Vec<String>>,
}

/// `docker diff`: what happened to a path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangeItem {
    /// The path in the container.
    #[serde(rename = "Path")]
    pub path: String,
    /// 0 modified, 1 added, 2 deleted.
    #[serde(rename = "Kind")]
    pub kind: u8,
}

/// `POST /commit`.
#[derive(Debug, Clone, Default)]
pub struct CommitRequest {
    /// The container (name or ID).
    pub container: String,
    /// Repository of the new image's tag.
    pub repo: Option<String>,
    /// Its tag (default `latest` when a repository is given).
    pub tag: Option<String>,
    /// The commit message.
    pub comment: Option<String>,
    /// The author.
    pub author: Option<String>,
    /// Freeze the container while committing (Docker's default).
    pub pause: bool,
    /// Dockerfile instructions to apply to the image's config.
    pub changes: Vec<String>,
    /// A config whose fields replace the container's (the request body).
    pub config: Option<ContainerConfig>,
}

/// `PUT archive`'s parameters.
#[derive(Debug, Clone, Default)]
pub struct ExtractRequest {
    /// The directory to extract into.
    pub path: String,
    /// Refuse to replace a directory by a non-directory and the other way round.
    pub no_overwrite_dir_non_dir: bool,
    /// Own the files by the container's user (`docker cp -a`).
    pub copy_uid_gid: bool,
}

/// Paths of Docker's init layer: made for the container by the engine (mount points of its
/// files and pseudo file systems), never shown by `docker diff` or in a commit.
const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/pts",
    "/dev/shm",
    "/dev/mqueue",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

/// Validate `ps_args` as dockerd does: no `-o key=PID…` other than `pid=`.
fn validate_ps_args(ps_args: &str) -> Result<()> {
    // dockerd: `\s+([^\s]*)=\s*(PID[^\s]*)`.
    let words: Vec<&str> = ps_args.split_ascii_whitespace().collect();
    for (i, w) in words.iter().enumerate() {
        if i == 0 && !ps_args.starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let (k, v) = match w.split_once('=') {
            Some((k, v)) if !v.is_empty() => (k, v.to_string()),
            Some((k, _)) => match words.get(i + 1) {
                Some(next) => (k, next.to_string()),
                None => continue,
            },
            None => continue,
        };
        if v.starts_with("PID") && k != "pid" {
            return Err(Error::Invalid(format!(
                "specifying \"{k}={v}\" is not allowed"
            )));
        }
    }
    Ok(())
}

/// dockerd's parsePSOutput: the titles, and the rows whose PID is the container's (and
/// the thread rows after them, `-` in the PID column).
fn parse_ps(output: &str, pids: &[i32]) -> Result<Top> {
    let mut lines = output.split('\n');
    let titles: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split_ascii_whitespace()
        .map(str::to_string)
        .collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| Error::Internal("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    let mut in_container = false;
    for line in lines {
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(pid) = fields.get(pid_col) else {
            continue;
        };
        let keep = if *pid == "-" {
            in_container
        } else {
            let p: i32 = pid
                .parse()
                .map_err(|e| Error::Internal(format!("Unexpected pid '{pid}': {e}")))?;
            in_container = pids.contains(&p);
            in_container
        };
        if keep {
            // Fields past the last title belong to it (a command's arguments).
            let n = titles.len().max(1);
            let mut row: Vec<String> = fields.iter().take(n - 1).map(|s| s.to_string()).collect();
            row.push(fields.get(n - 1..).unwrap_or_default().join(" "));
            processes.push(row);
        }
    }
    Ok(Top { titles, processes })
}

/// Quote a value for a Dockerfile instruction's `KEY="VALUE"`.
fn quoted(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        if c == '"' || c == '\\' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

/// A Go duration in nanoseconds, as `HEALTHCHECK` options take it.
fn ns(v: i64) -> String {
    format!("{v}ns")
}

fn healthcheck_instruction(h: &HealthConfig) -> Option<String> {
    let test = h.test.as_ref()?;
    let first = test.first()?;
    if first == "NONE" {
        return Some("HEALTHCHECK NONE".into());
    }
    let mut s = String::from("HEALTHCHECK");
    for (flag, v) in [
        ("interval", h.interval),
        ("timeout", h.timeout),
        ("start-period", h.start_period),
        ("start-interval", h.start_interval),
    ] {
        if let Some(v) = v.filter(|v| *v >= 1_000_000) {
            s.push_str(&format!(" --{flag}={}", ns(v)));
        }
    }
    if let Some(r) = h.retries.filter(|r| *r > 0) {
        s.push_str(&format!(" --retries={r}"));
    }
    match first.as_str() {
        "CMD" => s.push_str(&format!(" CMD {}", json_list(&test[1..]))),
        "CMD-SHELL" => s.push_str(&format!(" CMD {}", test.get(1)?)),
        _ => return None,
    }
    Some(s)
}

/// A container config as the Dockerfile instructions that set it on an image config: how a
/// commit records the container's Cmd, Env, … (Docker's commit merges the container's
/// config into the image's). With `all`, empty Cmd and Entrypoint are written too.
fn config_instructions(c: &ContainerConfig, all: bool) -> Vec<String> {
    let mut out = Vec::new();
    match &c.entrypoint {
        Some(e) => out.push(format!("ENTRYPOINT {}", json_list(e))),
        None if all => out.push("ENTRYPOINT []".into()),
        None => {}
    }
    match &c.cmd {
        Some(v) => out.push(format!("CMD {}", json_list(v))),
        None if all => out.push("CMD []".into()),
        None => {}
    }
    for e in c.env.iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            if !k.is_empty() && !k.contains(char::is_whitespace) {
                out.push(format!("ENV {k}={}", quoted(v)));
            }
        }
    }
    for (k, v) in c.labels.iter().flatten() {
        if !k.is_empty() && !k.contains(char::is_whitespace) && !k.contains('=') {
            out.push(format!("LABEL {k}={}", quoted(v)));
        }
    }
    if let Some(u) = c.user.as_ref().filter(|u| !u.is_empty()) {
        out.push(format!("USER {u}"));
    }
    if let Some(w) = c.working_dir.as_ref().filter(|w| !w.is_empty()) {
        out.push(format!("WORKDIR {w}"));
    }
    let ports: Vec<&String> = c.exposed_ports.iter().flatten().collect();
    if !ports.is_empty() {
        out.push(format!(
            "EXPOSE {}",
            ports
                .iter()
                .map(|p| p.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    let vols: Vec<String> = c.volumes.iter().flatten().cloned().collect();
    if !vols.is_empty() {
        out.push(format!("VOLUME {}", json_list(&vols)));
    }
    if let Some(s) = c.stop_signal.as_ref().filter(|s| !s.is_empty()) {
        out.push(format!("STOPSIGNAL {s}"));
    }
    if let Some(h) = c.healthcheck.as_ref().and_then(healthcheck_instruction) {
        out.push(h);
    }
    out
}

fn instruction_is(change: &str, name: &str) -> bool {
    change
        .split_whitespace()
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case(name))
}

/// Unpauses a container frozen for a commit when dropped.
struct Thaw<'a> {
    rt: &'a crate::runtimes::Rt,
    id: &'a str,
}

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.rt.resume(self.id) {
            tracing::warn!("unpausing {} after its commit: {e}", self.id);
        }
    }
}

impl Engine {
    fn op_target(
        &self,
        who: &Subject,
        name: &str,
        what: Action,
    ) -> Result<(Arc<Handle>, Container)> {
        let h = self.lookup(who, name)?;
        let c = h.get();
        self.authorize(who, what, Some(&c.owner))?;
        Ok((h, c))
    }

    /// One reading of a container's statistics (`docker stats`); zeros when it does not run.
    pub fn stats_sample(&self, who: &Subject, name: &str) -> Result<StatsSample> {
        let (_, c) = self.op_target(who, name, Action::Read)?;
        let reading = if c.state.status.is_running() {
            let own_netns = !matches!(
                c.host_config.network_mode.as_deref(),
                Some("none") | Some("host")
            ) && !c
                .host_config
                .network_mode
                .as_deref()
                .is_some_and(|m| m.starts_with("container:"));
            match self.rt(&c.id).stats(&c.id) {
                Ok(s) => Some(stats::read(s, own_netns.then_some(c.state.pid))),
                Err(e) => {
                    tracing::debug!("stats of {}: {e}", c.id);
                    None
                }
            }
        } else {
            None
        };
        Ok(StatsSample {
            id: c.id,
            name: c.name,
            reading,
        })
    }

    /// `docker top`: `ps` (with `ps_args`, default `-ef`) of the container's processes.
    pub fn top(&self, who: &Subject, name: &str, ps_args: &str) -> Result<Top> {
        let (_, c) = self.op_target(who, name, Action::Read)?;
        if c.state.status == Status::Restarting {
            return Err(Error::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            )));
        }
        if !c.state.status.is_running() {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        }
        validate_ps_args(ps_args)?;
        let pids = self
            .rt(&c.id)
            .pids(&c.id)
            .map_err(|e| Error::internal("listing the container's processes", e))?;
        let args: Vec<String> = if ps_args.is_empty() {
            vec!["-ef".into()]
        } else {
            ps_args.split(' ').map(str::to_string).collect()
        };
        let pid_arg = format!(
            "-q{}",
            pids.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let run = |extra: Option<&str>| {
            std::process::Command::new("ps")
                .args(&args)
                .args(extra)
                .env("LC_ALL", "C")
                .stdin(std::process::Stdio::null())
                .output()
        };
        // Some ps options (f) cannot be used with q: then all of them, filtered below.
        let out = match run(Some(&pid_arg)) {
            Ok(o) if o.status.success() => o,
            _ => run(None).map_err(|e| Error::internal("running ps", e))?,
        };
        if !out.status.success() {
            return Err(Error::Internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        let top = parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)?;
        self.container_event(&c, "top", &[]);
        Ok(top)
    }

    /// `docker update`: merge the request into the container's resources as dockerd does,
    /// validate them as create does, apply them live to a running container (no device
    /// rules: runc's update does not touch them), record them. Returns warnings.
    pub fn update_container(
        &self,
        who: &Subject,
        name: &str,
        u: &ContainerUpdateBody,
    ) -> Result<Vec<String>> {
        let (h, _) = self.op_target(who, name, Action::Write)?;
        // One lifecycle operation at a time: a start reads the resources recorded here.
        let _op = h.op.blocking_lock();
        let c = h.get();
        let cannot =
            |msg: String| Error::Conflict(format!("Cannot update container {}: {msg}", c.id));
        if matches!(c.state.status, Status::Removing | Status::Dead) {
            return Err(cannot(
                "container is marked for removal and cannot be \"update\"".into(),
            ));
        }
        let mut hc = c.host_config.clone();
        let cur = |v: Option<i64>| v.unwrap_or(0);
        let new = |v: Option<i64>| v.unwrap_or(0);
        // dockerd stores MemorySwap as twice Memory when a limit came without one (records of
        // containers created before it was recorded so).
        if cur(hc.memory) > 0 && cur(hc.memory_swap) == 0 {
            hc.memory_swap = Some(cur(hc.memory) * 2);
        }
        if new(u.nano_cpus) > 0 && cur(hc.cpu_period) > 0 {
            return Err(cannot(
                "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set".into(),
            ));
        }
        if new(u.nano_cpus) > 0 && cur(hc.cpu_quota) > 0 {
            return Err(cannot(
                "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set".into(),
            ));
        }
        if new(u.cpu_period) > 0 && cur(hc.nano_cpus) > 0 {
            return Err(cannot(
                "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set".into(),
            ));
        }
        if new(u.cpu_quota) > 0 && cur(hc.nano_cpus) > 0 {
            return Err(cannot(
                "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                    .into(),
            ));
        }
        if u.blkio_weight.unwrap_or(0) != 0 {
            hc.blkio_weight = u.blkio_weight;
        }
        for (dst, src) in [
            (&mut hc.cpu_shares, u.cpu_shares),
            (&mut hc.nano_cpus, u.nano_cpus),
            (&mut hc.cpu_period, u.cpu_period),
            (&mut hc.cpu_quota, u.cpu_quota),
            (&mut hc.memory_reservation, u.memory_reservation),
            (&mut hc.cpu_realtime_period, u.cpu_realtime_period),
            (&mut hc.cpu_realtime_runtime, u.cpu_realtime_runtime),
        ] {
            if new(src) != 0 {
                *dst = src;
            }
        }
        if let Some(s) = u.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
            hc.cpuset_cpus = Some(s.clone());
        }
        if let Some(s) = u.cpuset_mems.as_ref().filter(|s| !s.is_empty()) {
            hc.cpuset_mems = Some(s.clone());
        }
        if new(u.memory) != 0 {
            // An unlimited swap (-1) bounds nothing.
            if cur(hc.memory_swap) > 0
                && new(u.memory) > cur(hc.memory_swap)
                && new(u.memory_swap) == 0
            {
                return Err(cannot("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into()));
            }
            hc.memory = u.memory;
        }
        if new(u.memory_swap) != 0 {
            hc.memory_swap = u.memory_swap;
        }
        let mut warnings = Vec::new();
        self.adapt_swap(&mut hc, &mut warnings);
        if u.pids_limit.is_some() {
            hc.pids_limit = u.pids_limit;
        }
        if let Some(rp) = u.restart_policy.as_ref() {
            let name = rp.name.unwrap_or(RestartPolicyNameEnum::EMPTY);
            if name != RestartPolicyNameEnum::EMPTY {
                if hc.auto_remove.unwrap_or(false) && name != RestartPolicyNameEnum::NO {
                    return Err(cannot(
                        "Restart policy cannot be updated because AutoRemove is enabled for the container".into(),
                    ));
                }
                let retries = rp.maximum_retry_count.unwrap_or(0);
                if retries < 0 {
                    return Err(Error::Invalid(
                        "invalid value for the restart policy's maximum retry count: must be positive".into(),
                    ));
                }
                if retries > 0 && name != RestartPolicyNameEnum::ON_FAILURE {
                    return Err(Error::Invalid(
                        "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
                    ));
                }
                hc.restart_policy = Some(rp.clone());
            }
        }
        // Validated as create validates them.
        let mut r = crate::spec::resources(&hc, hc.privileged.unwrap_or(false))?;
        r.set_devices(None);
        if c.state.status.is_running() {
            // The API's "0 or -1: unlimited" is "not set" to the runtime: say it.
            if let Some(p) = u.pids_limit.filter(|p| *p <= 0) {
                let mut pids = oci_spec::runtime::LinuxPids::default();
                pids.set_limit(if p == 0 { -1 } else { p });
                r.set_pids(Some(pids));
            }
            self.rt(&c.id)
                .update(&c.id, &r)
                .map_err(|e| Error::Internal(format!("Cannot update container {}: {e}", c.id)))?;
        }
        let c = self.update(&h, |c| c.host_config = hc);
        self.container_event(&c, "update", &[]);
        Ok(warnings)
    }

    /// The container's files as the host reaches them (see `archive`).
    fn container_fs(&self, c: &Container) -> Result<archive::ContainerFs> {
        if c.state.status.is_running() && c.state.pid > 0 {
            let rt = self.rt(&c.id);
            let pid = c.state.pid as i32;
            let id = c.id.clone();
            return archive::ContainerFs::running(pid, move || rt.runs(&id, pid));
        }
        let root = self.images.open_root(&root_id(&c.id))?;
        if root.check().is_err() {
            root.remount()?;
        }
        let mounts = c
            .mounts
            .iter()
            .filter(|m| matches!(m.kind.as_str(), "bind" | "volume") && !m.source.is_empty())
            .map(|m| (m.destination.clone(), PathBuf::from(&m.source)))
            .collect();
        archive::ContainerFs::stopped(&root.merged(), mounts)
    }

    fn file_not_found(name: &str, path: &str) -> Error {
        Error::NotFound(format!(
            "Could not find the file {path} in container {name}"
        ))
    }

    fn stat_in(
        &self,
        fs: &archive::ContainerFs,
        name: &str,
        path: &str,
    ) -> Result<(PathStat, std::os::fd::OwnedFd, rustix::fs::Stat)> {
        let abs = archive::abs_path(path);
        fs.stat(&abs).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Self::file_not_found(name, path),
            Some(libc::ELOOP) | Some(libc::EXDEV) => Error::Invalid(format!(
                "cannot resolve {path} in container {name}: too many symlinks, or a link the container may not follow"
            )),
            _ => Error::internal(format!("stat {path} in container {name}"), e),
        })
    }

    /// `HEAD archive`: the stat of a path in the container.
    pub fn stat_path(&self, who: &Subject, name: &str, path: &str) -> Result<PathStat> {
        let (_, c) = self.op_target(who, name, Action::Read)?;
        let fs = self.container_fs(&c)?;
        Ok(self.stat_in(&fs, name, path)?.0)
    }

    /// `GET archive`: the stat of a path and a writer of its tar (entries named after the
    /// path's base name, a directory's contents beneath it), for the caller to run.
    #[allow(clippy::type_complexity)]
    pub fn archive_path(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
        path: &str,
    ) -> Result<(
        PathStat,
        Box<dyn FnOnce(&mut dyn Write) -> Result<()> + Send>,
    )> {
        let (_, c) = self.op_target(who, name, Action::Read)?;
        let fs = self.container_fs(&c)?;
        let (stat, fd, st) = self.stat_in(&fs, name, path)?;
        let rebase = stat.name.clone();
        let me = self.clone();
        let write = move |out: &mut dyn Write| -> Result<()> {
            archive::write_tar(fd, &st, &rebase, out)
                .map_err(|e| Error::internal("writing the archive", e))?;
            me.container_event(&c, "archive-path", &[]);
            Ok(())
        };
        Ok((stat, Box::new(write)))
    }

    /// `PUT archive`: extract the tar read from `body` into a directory of the container.
    pub fn extract_to_dir(
        &self,
        who: &Subject,
        name: &str,
        req: &ExtractRequest,
        body: &mut dyn std::io::Read,
    ) -> Result<()> {
        let (_, c) = self.op_target(who, name, Action::Write)?;
        let fs = self.container_fs(&c)?;
        let abs = archive::abs_path(&req.path);
        let dest = fs.open(&abs, true).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOENT) => Self::file_not_found(name, &req.path),
            Some(libc::ENOTDIR) => Error::Invalid("extraction point is not a directory".into()),
            _ => Error::internal(format!("resolving {} in container {name}", req.path), e),
        })?;
        if fs.in_pseudo_fs(&abs, &dest) || archive::pseudo_fs(&dest) {
            return Err(Error::Invalid(format!(
                "cannot copy into {}: a kernel file system, not the container's files",
                req.path
            )));
        }
        let st = rustix::fs::fstat(&dest).map_err(|e| Error::internal("stat", e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::Directory {
            return Err(Error::Invalid("extraction point is not a directory".into()));
        }
        if c.host_config.readonly_rootfs.unwrap_or(false) {
            let target = fs
                .resolve_in_scope(&archive::clean_abs(&abs))
                .unwrap_or_else(|_| archive::clean_abs(&abs));
            let in_mount = c.mounts.iter().any(|m| {
                let d = archive::clean_abs(&m.destination);
                m.rw && (target == d
                    || target.starts_with(&format!("{}/", d.trim_end_matches('/'))))
            });
            if !in_mount {
                return Err(Error::Invalid(
                    "container rootfs is marked read-only".into(),
                ));
            }
        }
        let owner = match c.config.user.as_deref().filter(|u| !u.is_empty()) {
            Some(u) if req.copy_uid_gid => Some(archive::lookup_user(&fs, u)?),
            _ => None,
        };
        let mut spool = tempfile::tempfile_in(&self.paths.data_root)
            .map_err(|e| Error::internal("spooling the archive", e))?;
        std::io::copy(body, &mut spool)
            .map_err(|e| Error::Invalid(format!("reading the archive: {e}")))?;
        archive::extract(
            &spool,
            &dest,
            &archive::clean_abs(&abs),
            &archive::ExtractOptions {
                no_overwrite_dir_non_dir: req.no_overwrite_dir_non_dir,
                owner,
            },
        )?;
        self.container_event(&c, "extract-to-dir", &[]);
        Ok(())
    }

    /// The container's root filesystem, mounted.
    fn rootfs(&self, c: &Container) -> Result<berth_image::rootfs::Rootfs> {
        let root = self.images.open_root(&root_id(&c.id))?;
        if root.check().is_err() {
            root.remount()?;
        }
        Ok(root)
    }

    /// `docker export`: checks (the container exists, its root is mounted), then a writer of
    /// a tar of its whole root filesystem, for the caller to run.
    #[allow(clippy::type_complexity)]
    pub fn export(
        self: &Arc<Self>,
        who: &Subject,
        name: &str,
    ) -> Result<Box<dyn FnOnce(&mut dyn Write) -> Result<()> + Send>> {
        let (_, c) = self.op_target(who, name, Action::Read)?;
        if matches!(c.state.status, Status::Removing | Status::Dead) {
            return Err(Error::Conflict(format!(
                "You cannot export container {} which is being removed",
                c.id
            )));
        }
        let root = self.rootfs(&c)?;
        let me = self.clone();
        Ok(Box::new(move |out: &mut dyn Write| -> Result<()> {
            berth_image::commit::export(&root, out).map_err(|e| Error::Internal(e.to_string()))?;
            me.container_event(&c, "export", &[]);
            Ok(())
        }))
    }

    /// `docker diff`: what the container changed in its root filesystem, without the paths
    /// the engine made for it.
    pub fn changes(&self, who: &Subject, name: &str) -> Result<Vec<ChangeItem>> {
        let (_, c) = self.op_target(who, name, Action::Read)?;
        let root = self.rootfs(&c)?;
        let changes =
            berth_image::commit::diff(&root).map_err(|e| Error::Internal(e.to_string()))?;
        let items: Vec<ChangeItem> = changes
            .into_iter()
            .map(|ch| ChangeItem {
                path: ch.path.to_string_lossy().into_owned(),
                kind: match ch.kind {
                    berth_image::commit::ChangeKind::Changed => 0,
                    berth_image::commit::ChangeKind::Added => 1,
                    berth_image::commit::ChangeKind::Deleted => 2,
                },
            })
            .collect();
        Ok(hide_init_paths(items))
    }

    /// `docker commit`: an image of the container's image plus its changes, its config the
    /// container's (Cmd, Env, …) with the request's config and changes over it. Returns the
    /// image ID.
    pub fn commit(&self, who: &Subject, req: &CommitRequest) -> Result<String> {
        let (h, c) = self.op_target(who, &req.container, Action::Write)?;
        self.authorize(who, Action::Create, None)?;
        if c.state.status == Status::Removing {
            return Err(Error::Conflict(format!(
                "You cannot commit container {} which is being removed",
                c.id
            )));
        }
        if c.state.status == Status::Dead {
            return Err(Error::Conflict(format!(
                "You cannot commit container {} which is dead",
                c.id
            )));
        }
        let tag = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => {
                let tag = req
                    .tag
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .unwrap_or("latest");
                let r = format!("{repo}:{tag}");
                berth_registry::Reference::parse(&r)
                    .map_err(|_| Error::Invalid("invalid reference format".into()))?;
                Some(r)
            }
            None => None,
        };
        let root = self.rootfs(&c)?;
        let mut changes = config_instructions(&c.config, true);
        if let Some(body) = &req.config {
            changes.extend(config_instructions(body, false));
        }
        changes.extend(req.changes.iter().filter(|c| !c.trim().is_empty()).cloned());
        // Dockerfile semantics: an ENTRYPOINT without a CMD of its own clears the CMD.
        let body_cmd = req.config.as_ref().is_some_and(|b| b.cmd.is_some());
        if req.changes.iter().any(|x| instruction_is(x, "ENTRYPOINT"))
            && !req.changes.iter().any(|x| instruction_is(x, "CMD"))
            && !body_cmd
        {
            changes.push("CMD []".into());
        }
        let created_by = c
            .config
            .cmd
            .as_ref()
            .filter(|v| !v.is_empty())
            .map(|v| v.join(" "));
        let opts = berth_image::commit::CommitOptions {
            tag: tag.clone(),
            author: req.author.clone().filter(|a| !a.is_empty()),
            message: req.comment.clone().filter(|m| !m.is_empty()),
            created_by,
            changes,
        };
        let rt = self.rt(&c.id);
        let thaw = if req.pause && h.get().state.status == Status::Running {
            rt.pause(&c.id)
                .map_err(|e| Error::internal("pausing the container for its commit", e))?;
            Some(Thaw { rt: &rt, id: &c.id })
        } else {
            None
        };
        let rec = self
            .images
            .commit(&root, root.image(), &opts)
            .map_err(|e| match e {
                berth_image::rootfs::RootfsError::Store(
                    e @ berth_image::Error::InvalidChange { .. },
                ) => Error::Invalid(e.to_string()),
                berth_image::rootfs::RootfsError::Store(e) => Error::from(e),
                berth_image::rootfs::RootfsError::Config(e) => Error::Invalid(e.to_string()),
                e => Error::from(berth_image::Error::from(e)),
            })?;
        drop(thaw);
        if let Some(t) = &tag {
            self.image_event(&c.owner, "tag", &rec.id, t);
        }
        self.container_event(
            &c,
            "commit",
            &[
                ("comment", req.comment.clone().unwrap_or_default()),
                ("imageID", rec.id.clone()),
                ("imageRef", tag.unwrap_or_default()),
            ],
        );
        Ok(rec.id)
    }
}

/// `docker diff` without Docker's init layer: those paths, and a directory changed only
/// because one of them was made in it.
fn hide_init_paths(items: Vec<ChangeItem>) -> Vec<ChangeItem> {
    let init = |p: &str| INIT_PATHS.contains(&p);
    let kept: Vec<ChangeItem> = items.into_iter().filter(|i| !init(&i.path)).collect();
    let below = |dir: &str, p: &str| {
        p.len() > dir.len() && p.starts_with(dir) && p.as_bytes()[dir.len()] == b'/'
    };
    kept.iter()
        .filter(|i| {
            if i.kind != 0 {
                return true;
            }
            let made_for_init = INIT_PATHS.iter().any(|ip| below(&i.path, ip));
            !made_for_init || kept.iter().any(|o| below(&i.path, &o.path))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_output_is_filtered_to_the_container() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 /sbin/init\nroot 4242 4200 0 10:01 ? 00:00:00 sleep 1000 extra\nroot 4243 4242 0 10:01 ? 00:00:00 sh -c x\n";
        let t = parse_ps(out, &[4242, 4243]).unwrap();
        assert_eq!(t.titles.len(), 8);
        assert_eq!(t.processes.len(), 2);
        assert_eq!(t.processes[0][1], "4242");
        assert_eq!(t.processes[0][7], "sleep 1000 extra");
        assert!(parse_ps("UID CMD\nroot x\n", &[1]).is_err());
        // Thread rows (`-` for PID) follow their process.
        let out = "USER PID TID CMD\nroot 7 - sleep\n- - 7 -\nroot 8 - other\n- - 8 -\n";
        let t = parse_ps(out, &[7]).unwrap();
        assert_eq!(t.processes.len(), 2);
    }

    #[test]
    fn ps_args_as_dockerd_checks_them() {
        assert!(validate_ps_args("aux").is_ok());
        assert!(validate_ps_args("-o pid,comm").is_ok());
        assert!(validate_ps_args("-o pid=PID").is_ok());
        assert!(validate_ps_args("-o ppid=PID").is_err());
        assert!(validate_ps_args("-o user= PIDX").is_err());
    }

    #[test]
    fn diff_hides_the_init_layer() {
        let item = |p: &str, k: u8| ChangeItem {
            path: p.into(),
            kind: k,
        };
        let out = hide_init_paths(vec![
            item("/etc", 0),
            item("/etc/hostname", 1),
            item("/etc/resolv.conf", 1),
            item("/tmp", 0),
            item("/tmp/x", 1),
        ]);
        assert_eq!(out, vec![item("/tmp", 0), item("/tmp/x", 1)]);
        let out = hide_init_paths(vec![
            item("/etc", 0),
            item("/etc/hosts", 1),
            item("/etc/passwd", 0),
        ]);
        assert_eq!(out, vec![item("/etc", 0), item("/etc/passwd", 0)]);
    }

    #[test]
    fn container_config_as_instructions() {
        let c = ContainerConfig {
            cmd: Some(vec!["sh".into(), "-c".into(), "echo \"hi\"".into()]),
            env: Some(vec!["PATH=/bin".into(), "A=two words \\ \"q\"".into()]),
            labels: Some([("k".to_string(), "v w".to_string())].into_iter().collect()),
            working_dir: Some("/srv".into()),
            ..Default::default()
        };
        let ins = config_instructions(&c, true);
        assert_eq!(ins[0], "ENTRYPOINT []");
        assert_eq!(ins[1], r#"CMD ["sh","-c","echo \"hi\""]"#);
        assert!(ins.contains(&r#"ENV A="two words \\ \"q\"""#.to_string()));
        assert!(ins.contains(&r#"LABEL k="v w""#.to_string()));
        assert!(ins.contains(&"WORKDIR /srv".to_string()));
        let h = HealthConfig {
            test: Some(vec!["CMD".into(), "true".into()]),
            interval: Some(2_000_000_000),
            retries: Some(3),
            ..Default::default()
        };
        assert_eq!(
            healthcheck_instruction(&h).unwrap(),
            r#"HEALTHCHECK --interval=2000000000ns --retries=3 CMD ["true"]"#
        );
    }
}
