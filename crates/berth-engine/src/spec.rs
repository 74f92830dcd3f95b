//! A container's runtime spec: Docker's defaults (`berth-spec`), the image's process
//! (`berth-image`), then the request's Config and HostConfig over them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::HostConfig;
use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    LinuxCpu, LinuxDeviceCgroup, LinuxMemory, LinuxNamespaceType, LinuxPids, LinuxResources, Mount,
    PosixRlimit, PosixRlimitType, Spec,
};

use crate::model::Container;
use crate::{Error, Result};

/// What the spec needs besides the container's record.
pub struct SpecInput<'a> {
    /// The image's config.
    pub image: &'a ImageConfiguration,
    /// The mounted root filesystem.
    pub rootfs: &'a Path,
    /// The container's data directory (hostname, hosts, resolv.conf).
    pub data_dir: &'a Path,
    /// cgroupsPath.
    pub cgroups_path: String,
    /// daemon.json's default ulimits.
    pub default_ulimits: &'a [(String, i64, i64)],
    /// Mounts of volumes, binds and tmpfs, made by the engine.
    pub mounts: Vec<Mount>,
    /// The init binary, mounted as /sbin/docker-init for `--init`.
    pub init: Option<PathBuf>,
    /// The network namespace to join (the container's own, made by the engine, or another
    /// container's for `container:NAME`); None: a new one (loopback only) unless host.
    pub netns: Option<PathBuf>,
    /// Environment variables of legacy links (`--link`).
    pub link_env: Vec<String>,
}

fn bind(src: &Path, dst: &str, ro: bool) -> Mount {
    let mut m = Mount::default();
    let mut opts = vec!["rbind".to_string(), "rprivate".to_string()];
    if ro {
        opts.push("ro".into());
    }
    m.set_destination(PathBuf::from(dst))
        .set_typ(Some("bind".into()))
        .set_source(Some(src.to_path_buf()))
        .set_options(Some(opts));
    m
}

/// Every capability this process's bounding set holds (a privileged container gets them; on
/// a host whose root lacks some, e.g. CAP_SYS_RESOURCE, it must still start).
fn host_capabilities() -> Vec<String> {
    let mut out = Vec::new();
    for cap in caps::all() {
        if caps::has_cap(None, caps::CapSet::Bounding, cap).unwrap_or(false) {
            out.push(cap.to_string());
        }
    }
    out
}

/// Normalize a capability name as Docker does (`net_admin` → `CAP_NET_ADMIN`).
pub fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up == "ALL" || up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The capabilities of a container: the default set (or the host's all, privileged), with
/// `cap_add` and `cap_drop` applied as Docker applies them.
pub fn container_caps(hc: &HostConfig) -> Result<Vec<String>> {
    let host = host_capabilities();
    if hc.privileged.unwrap_or(false) {
        return Ok(host);
    }
    let known: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    let add: Vec<String> = hc.cap_add.iter().flatten().map(|c| cap_name(c)).collect();
    let drop: Vec<String> = hc.cap_drop.iter().flatten().map(|c| cap_name(c)).collect();
    for c in add.iter().chain(&drop) {
        if c != "ALL" && !known.contains(c) {
            return Err(Error::Invalid(format!("unknown capability: \"{c}\"")));
        }
    }
    let mut set: Vec<String> = if drop.iter().any(|c| c == "ALL") {
        Vec::new()
    } else {
        berth_spec::docker::DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .collect()
    };
    if add.iter().any(|c| c == "ALL") {
        set = host.clone();
    } else {
        for c in add {
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    Ok(set)
}

fn rlimit_type(name: &str) -> Option<PosixRlimitType> {
    serde_json::from_value(serde_json::Value::String(format!(
        "RLIMIT_{}",
        name.to_ascii_uppercase()
    )))
    .ok()
}

/// The spec of container `c`.
pub fn build(c: &Container, input: SpecInput<'_>) -> Result<Spec> {
    let cfg = &c.config;
    let hc = &c.host_config;
    let overrides = berth_image::config::Overrides {
        cmd: cfg.cmd.clone(),
        entrypoint: cfg.entrypoint.clone(),
        env: cfg.env.clone().unwrap_or_default(),
        user: cfg.user.clone().filter(|u| !u.is_empty()),
        workdir: cfg.working_dir.clone(),
        hostname: cfg.hostname.clone(),
    };
    let mut spec = berth_image::bundle::runtime_spec(input.image, input.rootfs, &overrides)
        .map_err(|e| Error::Invalid(e.to_string()))?;
    spec.set_annotations(None);
    let privileged = hc.privileged.unwrap_or(false);
    let caps = container_caps(hc)?;
    let tty = cfg.tty.unwrap_or(false);
    let mut no_new_privs = false;
    let mut seccomp = if privileged {
        None
    } else {
        Some(berth_spec::seccomp::default_profile(&caps))
    };
    for opt in hc.security_opt.iter().flatten() {
        let (k, v) = opt.split_once(['=', ':']).unwrap_or((opt.as_str(), "true"));
        match k {
            "no-new-privileges" => {
                no_new_privs = v != "false";
            }
            "seccomp" if v == "unconfined" => seccomp = None,
            "seccomp" => {
                // The CLI sends the profile's content, not its path.
                let profile: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(v)
                    .map_err(|e| Error::Invalid(format!("decoding seccomp profile: {e}")))?;
                seccomp = Some(profile);
            }
            "label" | "apparmor" => {
                if v != "disable" && v != "unconfined" {
                    return Err(Error::Invalid(format!(
                        "security-opt {opt:?}: this host has no {} (no SELinux or AppArmor)",
                        if k == "label" { "SELinux" } else { "AppArmor" }
                    )));
                }
            }
            "systempaths" if v == "unconfined" => {}
            _ => {
                return Err(Error::Invalid(format!("Invalid --security-opt: {opt:?}")));
            }
        }
    }
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(tty));
        // The client's terminal size at create (HostConfig.ConsoleSize: [height, width]), so
        // the first program sees it before the client's resize arrives.
        if let Some([h, w]) = hc
            .console_size
            .as_deref()
            .and_then(|v| <[usize; 2]>::try_from(v).ok())
        {
            if tty && h > 0 && w > 0 {
                if let Ok(b) = serde_json::from_value::<oci_spec::runtime::Box>(
                    serde_json::json!({"height": h, "width": w}),
                ) {
                    p.set_console_size(Some(b));
                }
            }
        }
        p.set_capabilities(berth_spec::docker::capabilities(&caps));
        p.set_no_new_privileges(Some(no_new_privs));
        if let Some(adj) = hc.oom_score_adj.filter(|a| *a != 0) {
            p.set_oom_score_adj(Some(adj as i32));
        }
        if let Some(env) = p.env_mut() {
            if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
                env.push("TERM=xterm".into());
            }
            let hostname = format!("HOSTNAME={}", hostname(c));
            if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
                env.insert(1.min(env.len()), hostname);
            }
            // Links' variables come before the container's own (which win).
            for (i, l) in input.link_env.iter().enumerate() {
                let key = l.split('=').next().unwrap_or_default();
                if !env.iter().any(|e| e.split('=').next() == Some(key)) {
                    env.insert((i + 1).min(env.len()), l.clone());
                }
            }
        }
        // Supplementary groups (`--group-add`): numbers, or names from the image's /etc/group.
        if let Some(groups) = hc.group_add.as_ref().filter(|g| !g.is_empty()) {
            let mut user = p.user().clone();
            let mut gids = user.additional_gids().clone().unwrap_or_default();
            for g in groups {
                let gid = match g.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => group_id(input.rootfs, g).ok_or_else(|| {
                        Error::Invalid(format!(
                            "Unable to find group {g}: no matching entries in group file"
                        ))
                    })?,
                };
                if !gids.contains(&gid) {
                    gids.push(gid);
                }
            }
            user.set_additional_gids(Some(gids));
            p.set_user(user);
        }
        let mut rlimits: Vec<PosixRlimit> = Vec::new();
        let mut push = |name: &str, soft: i64, hard: i64| -> Result<()> {
            let typ = rlimit_type(name)
                .ok_or_else(|| Error::Invalid(format!("invalid ulimit type: {name}")))?;
            rlimits.retain(|r| r.typ() != typ);
            let r = oci_spec::runtime::PosixRlimitBuilder::default()
                .typ(typ)
                .soft(soft as u64)
                .hard(hard as u64)
                .build()
                .map_err(|e| Error::Invalid(format!("ulimit {name}: {e}")))?;
            rlimits.push(r);
            Ok(())
        };
        for (name, soft, hard) in input.default_ulimits {
            push(name, *soft, *hard)?;
        }
        for u in hc.ulimits.iter().flatten() {
            push(
                u.name.as_deref().unwrap_or_default(),
                u.soft.unwrap_or(0),
                u.hard.unwrap_or(0),
            )?;
        }
        if !rlimits.is_empty() {
            p.set_rlimits(Some(rlimits));
        }
    }
    spec.set_hostname(Some(hostname(c)));
    if let Some(d) = cfg.domainname.as_ref().filter(|d| !d.is_empty()) {
        spec.set_domainname(Some(d.clone()));
    }
    if let Some(root) = spec.root_mut() {
        root.set_readonly(Some(hc.readonly_rootfs.unwrap_or(false)));
    }

    // Mounts: Docker's defaults with /dev/shm sized, then the container's files, then
    // volumes, binds and tmpfs (a later mount at the same place replaces an earlier one).
    let shm = hc
        .shm_size
        .filter(|s| *s > 0)
        .map(|s| s as u64)
        .unwrap_or(berth_spec::docker::DEFAULT_SHM_SIZE);
    let mut mounts = berth_spec::docker::default_mounts(shm);
    let net_host = hc.network_mode.as_deref() == Some("host");
    for (file, dst) in [
        ("hostname", "/etc/hostname"),
        ("hosts", "/etc/hosts"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        mounts.push(bind(&input.data_dir.join(file), dst, false));
    }
    for m in input.mounts {
        mounts.retain(|x| x.destination() != m.destination());
        mounts.push(m);
    }
    if hc.init == Some(true) {
        let init = input.init.as_ref().ok_or_else(|| {
            Error::Internal("--init: the berth-init binary is not installed".into())
        })?;
        mounts.push(bind(init, "/sbin/docker-init", true));
        if let Some(p) = spec.process_mut() {
            let mut args = vec!["/sbin/docker-init".to_string(), "--".to_string()];
            args.extend(p.args().clone().unwrap_or_default());
            p.set_args(Some(args));
        }
    }
    if privileged {
        // /sys read-write, as Docker gives a privileged container.
        for m in mounts.iter_mut() {
            if m.destination() == Path::new("/sys") {
                let opts: Vec<String> = m
                    .options()
                    .clone()
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| o != "ro")
                    .collect();
                m.set_options(Some(opts));
            }
        }
    }
    crate::volumes::sort_mounts(&mut mounts);
    spec.set_mounts(Some(mounts));

    let linux = spec
        .linux_mut()
        .as_mut()
        .ok_or_else(|| Error::internal("spec", "no linux section"))?;
    linux.set_seccomp(seccomp);
    if privileged
        || hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o == "systempaths=unconfined")
    {
        linux.set_masked_paths(None).set_readonly_paths(None);
    }
    // Namespaces: host → the host's network; a namespace the engine made (bridge and
    // user-defined networks, container:NAME) is joined; none → a new one, loopback only.
    // pid/ipc/uts host likewise.
    let mut drop_ns: Vec<LinuxNamespaceType> = Vec::new();
    if hc.network_mode.as_deref() == Some("host") {
        drop_ns.push(LinuxNamespaceType::Network);
    } else if let Some(p) = &input.netns {
        if let Some(ns) = linux.namespaces_mut() {
            for n in ns.iter_mut() {
                if n.typ() == LinuxNamespaceType::Network {
                    n.set_path(Some(p.clone()));
                }
            }
        }
    }
    if hc.pid_mode.as_deref() == Some("host") {
        drop_ns.push(LinuxNamespaceType::Pid);
    }
    if hc.ipc_mode.as_deref() == Some("host") {
        drop_ns.push(LinuxNamespaceType::Ipc);
    }
    if hc.uts_mode.as_deref() == Some("host") {
        drop_ns.push(LinuxNamespaceType::Uts);
    }
    if let Some(ns) = linux.namespaces_mut() {
        ns.retain(|n| !drop_ns.contains(&n.typ()));
    }
    if net_host && hc.uts_mode.as_deref() != Some("host") {
        // Docker gives a host-network container the host's name.
        if let Ok(h) = nix::unistd::gethostname() {
            spec.set_hostname(Some(h.to_string_lossy().into_owned()));
        }
    }
    let linux = spec.linux_mut().as_mut().expect("checked above");
    if let Some(sysctls) = hc.sysctls.as_ref().filter(|s| !s.is_empty()) {
        let map: HashMap<String, String> = sysctls.clone().into_iter().collect();
        linux.set_sysctl(Some(map));
    }
    linux.set_cgroups_path(Some(PathBuf::from(input.cgroups_path)));
    linux.set_resources(Some(resources(hc, privileged)?));
    if privileged {
        linux.set_devices(Some(host_devices()));
    } else if let Some(devs) = hc.devices.as_ref().filter(|d| !d.is_empty()) {
        let mut list = Vec::new();
        for d in devs {
            list.push(device_from_host(
                d.path_on_host.as_deref().unwrap_or_default(),
                d.path_in_container.as_deref(),
            )?);
        }
        linux.set_devices(Some(list));
    }
    Ok(spec)
}

/// The container's hostname: its Config.Hostname, else the first 12 digits of its ID.
pub fn hostname(c: &Container) -> String {
    c.config
        .hostname
        .clone()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| c.id[..12].to_string())
}

fn group_id(rootfs: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(rootfs.join("etc/group")).ok()?;
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next()? == name).then(|| f.nth(1)?.parse().ok())?
    })
}

/// The resources of HostConfig (also what `update` applies live).
pub fn resources(hc: &HostConfig, privileged: bool) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let mut mem = LinuxMemory::default();
    let mut any_mem = false;
    if let Some(m) = hc.memory.filter(|m| *m > 0) {
        if m < 6 * 1024 * 1024 {
            return Err(Error::Invalid("Minimum memory limit allowed is 6MB".into()));
        }
        mem.set_limit(Some(m));
        any_mem = true;
    }
    if let Some(s) = hc.memory_swap.filter(|s| *s != 0) {
        if s > 0 && hc.memory.unwrap_or(0) > 0 && s < hc.memory.unwrap_or(0) {
            return Err(Error::Invalid(
                "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
            ));
        }
        if hc.memory.unwrap_or(0) <= 0 && s > 0 {
            return Err(Error::Invalid(
                "You should always set the Memory limit when using Memoryswap limit, see usage"
                    .into(),
            ));
        }
        mem.set_swap(Some(s));
        any_mem = true;
    } else if let Some(m) = hc.memory.filter(|m| *m > 0) {
        // Docker's default: swap as much as memory.
        mem.set_swap(Some(m * 2));
    }
    if let Some(m) = hc.memory_reservation.filter(|m| *m > 0) {
        mem.set_reservation(Some(m));
        any_mem = true;
    }
    if hc.oom_kill_disable == Some(true) {
        mem.set_disable_oom_killer(Some(true));
        any_mem = true;
    }
    if let Some(s) = hc.memory_swappiness.filter(|s| *s >= 0) {
        mem.set_swappiness(Some(s as u64));
        any_mem = true;
    }
    if any_mem {
        r.set_memory(Some(mem));
    }
    let mut cpu = LinuxCpu::default();
    let mut any_cpu = false;
    if let Some(s) = hc.cpu_shares.filter(|s| *s > 0) {
        cpu.set_shares(Some(s as u64));
        any_cpu = true;
    }
    if let Some(n) = hc.nano_cpus.filter(|n| *n > 0) {
        if hc.cpu_quota.unwrap_or(0) > 0 || hc.cpu_period.unwrap_or(0) > 0 {
            return Err(Error::Invalid(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
            ));
        }
        let ncpu = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        if n > ncpu * 1_000_000_000 {
            return Err(Error::Invalid(format!(
                "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
            )));
        }
        cpu.set_period(Some(100_000));
        cpu.set_quota(Some(n / 10_000));
        any_cpu = true;
    }
    if let Some(q) = hc.cpu_quota.filter(|q| *q != 0) {
        cpu.set_quota(Some(q));
        any_cpu = true;
    }
    if let Some(p) = hc.cpu_period.filter(|p| *p > 0) {
        cpu.set_period(Some(p as u64));
        any_cpu = true;
    }
    if let Some(c) = hc.cpuset_cpus.as_ref().filter(|c| !c.is_empty()) {
        cpu.set_cpus(Some(c.clone()));
        any_cpu = true;
    }
    if let Some(m) = hc.cpuset_mems.as_ref().filter(|c| !c.is_empty()) {
        cpu.set_mems(Some(m.clone()));
        any_cpu = true;
    }
    if any_cpu {
        r.set_cpu(Some(cpu));
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p != 0) {
        let mut pids = LinuxPids::default();
        pids.set_limit(if p < 0 { -1 } else { p });
        r.set_pids(Some(pids));
    }
    if let Some(w) = hc.blkio_weight.filter(|w| *w > 0) {
        if !(10..=1000).contains(&w) {
            return Err(Error::Invalid(
                "Range of blkio weight is from 10 to 1000".into(),
            ));
        }
        let mut b = oci_spec::runtime::LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    let mut devices: Vec<LinuxDeviceCgroup> = if privileged {
        let mut all = LinuxDeviceCgroup::default();
        all.set_allow(true).set_access(Some("rwm".into()));
        vec![all]
    } else {
        berth_spec::docker::device_rules()
    };
    if !privileged {
        for d in hc.devices.iter().flatten() {
            let dev = device_from_host(d.path_on_host.as_deref().unwrap_or_default(), None)?;
            let mut rule = LinuxDeviceCgroup::default();
            rule.set_allow(true)
                .set_typ(Some(dev.typ()))
                .set_major(Some(dev.major()))
                .set_minor(Some(dev.minor()))
                .set_access(Some(
                    d.cgroup_permissions.clone().unwrap_or_else(|| "rwm".into()),
                ));
            devices.push(rule);
        }
        for rule in hc.device_cgroup_rules.iter().flatten() {
            devices.push(parse_device_rule(rule)?);
        }
    }
    r.set_devices(Some(devices));
    Ok(r)
}

/// A device cgroup rule as `--device-cgroup-rule` takes it: `c 1:3 rwm`, `b *:* r`.
pub fn parse_device_rule(s: &str) -> Result<LinuxDeviceCgroup> {
    let bad = || Error::Invalid(format!("invalid device cgroup rule: {s:?}"));
    let mut parts = s.split_whitespace();
    let typ = match parts.next().ok_or_else(bad)? {
        "a" => oci_spec::runtime::LinuxDeviceType::A,
        "b" => oci_spec::runtime::LinuxDeviceType::B,
        "c" => oci_spec::runtime::LinuxDeviceType::C,
        _ => return Err(bad()),
    };
    let (maj, min) = parts
        .next()
        .and_then(|p| p.split_once(':'))
        .ok_or_else(bad)?;
    let num = |x: &str| -> Result<Option<i64>> {
        if x == "*" {
            Ok(None)
        } else {
            x.parse().map(Some).map_err(|_| bad())
        }
    };
    let access = parts.next().ok_or_else(bad)?;
    if access.is_empty() || !access.chars().all(|c| "rwm".contains(c)) || parts.next().is_some() {
        return Err(bad());
    }
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(true)
        .set_typ(Some(typ))
        .set_major(num(maj)?)
        .set_minor(num(min)?)
        .set_access(Some(access.into()));
    Ok(r)
}

fn device_from_host(
    path: &str,
    in_container: Option<&str>,
) -> Result<oci_spec::runtime::LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let md = std::fs::metadata(path).map_err(|e| {
        Error::Invalid(format!(
            "error gathering device information while adding custom device {path:?}: {e}"
        ))
    })?;
    let ft = md.file_type();
    let typ = if ft.is_char_device() {
        oci_spec::runtime::LinuxDeviceType::C
    } else if ft.is_block_device() {
        oci_spec::runtime::LinuxDeviceType::B
    } else {
        return Err(Error::Invalid(format!("{path:?} is not a device")));
    };
    let rdev = md.rdev();
    let mut d = oci_spec::runtime::LinuxDevice::default();
    d.set_path(PathBuf::from(
        in_container.filter(|p| !p.is_empty()).unwrap_or(path),
    ))
    .set_typ(typ)
    .set_major(nix::sys::stat::major(rdev) as i64)
    .set_minor(nix::sys::stat::minor(rdev) as i64)
    .set_file_mode(Some(md.mode() & 0o777))
    .set_uid(Some(md.uid()))
    .set_gid(Some(md.gid()));
    Ok(d)
}

/// Every device node of the host's /dev (a privileged container gets them all).
fn host_devices() -> Vec<oci_spec::runtime::LinuxDevice> {
    fn walk(dir: &Path, out: &mut Vec<oci_spec::runtime::LinuxDevice>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                // Not /dev/pts, /dev/shm, /dev/mqueue: the container has its own.
                if !matches!(e.file_name().to_str(), Some("pts" | "shm" | "mqueue")) {
                    walk(&p, out);
                }
            } else if let Some(s) = p.to_str() {
                if matches!(s, "/dev/console" | "/dev/ptmx" | "/dev/tty") {
                    continue;
                }
                if let Ok(d) = device_from_host(s, None) {
                    out.push(d);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/dev"), &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_as_docker_applies_them() {
        let hc = HostConfig {
            cap_drop: Some(vec!["net_raw".into(), "CAP_CHOWN".into()]),
            cap_add: Some(vec!["sys_admin".into()]),
            ..Default::default()
        };
        let caps = container_caps(&hc).unwrap();
        assert!(!caps.contains(&"CAP_NET_RAW".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        let hc = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["kill".into()]),
            ..Default::default()
        };
        assert_eq!(container_caps(&hc).unwrap(), vec!["CAP_KILL".to_string()]);
        let hc = HostConfig {
            cap_add: Some(vec!["bogus".into()]),
            ..Default::default()
        };
        assert!(container_caps(&hc).is_err());
    }

    #[test]
    fn device_rules_parse() {
        assert!(parse_device_rule("c 1:3 rwm").is_ok());
        assert!(parse_device_rule("b *:* r").is_ok());
        assert!(parse_device_rule("x 1:3 rwm").is_err());
        assert!(parse_device_rule("c 1:3 rwx").is_err());
        assert!(parse_device_rule("c 13 rw").is_err());
    }

    #[test]
    fn resources_validate() {
        let hc = HostConfig {
            memory: Some(1),
            ..Default::default()
        };
        assert!(resources(&hc, false).is_err());
        let hc = HostConfig {
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = resources(&hc, false).unwrap();
        assert_eq!(r.cpu().as_ref().unwrap().quota(), Some(50_000));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
    }
}
