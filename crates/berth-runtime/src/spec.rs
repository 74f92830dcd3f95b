//! Loading a bundle's config.json and checking it before anything is created.
//!
//! Everything that can be refused without touching the system is refused here, so that a bad
//! configuration fails with a clear message and leaves nothing behind.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxIdMapping, LinuxNamespaceType, Spec};

use crate::error::{Error, Result};

/// The ociVersion major versions this runtime understands.
pub const SUPPORTED_OCI_MAJOR: u64 = 1;
/// The newest runtime-spec version this runtime implements.
pub use berth_spec::OCI_VERSION;

/// A loaded and validated bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory, absolute.
    pub dir: PathBuf,
    /// The parsed configuration.
    pub spec: Spec,
    /// The root filesystem, absolute.
    pub rootfs: PathBuf,
}

/// Read `<dir>/config.json` and validate it.
pub fn load_bundle(dir: &Path) -> Result<Bundle> {
    let dir =
        std::path::absolute(dir).map_err(|e| Error::io(format!("bundle {}", dir.display()), e))?;
    let path = dir.join("config.json");
    let data = std::fs::read(&path).map_err(|e| Error::Config {
        path: path.clone(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            "no such file (is this an OCI bundle?)".into()
        } else {
            e.to_string()
        },
    })?;
    let spec = parse_spec(&data).map_err(|reason| Error::Config {
        path: path.clone(),
        reason,
    })?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("root is required".into()))?;
    let given = if root.path().is_absolute() {
        root.path().clone()
    } else {
        dir.join(root.path())
    };
    // A rootfs path through symlinks (or that is one) is followed once, here, and the real
    // directory is what gets mounted and recorded: everything after this works on a path
    // without symlinks (the rootfs is opened O_NOFOLLOW).
    let rootfs = std::fs::canonicalize(&given).unwrap_or_else(|_| given.clone());
    match std::fs::metadata(&rootfs) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::InvalidConfig(format!(
                "root.path {} is not a directory",
                given.display()
            )));
        }
        Err(e) => {
            return Err(Error::InvalidConfig(format!(
                "root.path {}: {e}",
                given.display()
            )));
        }
    }
    validate(&spec)?;
    Ok(Bundle { dir, spec, rootfs })
}

/// Parse a config.json document. Errors are returned as one line of text.
pub fn parse_spec(data: &[u8]) -> std::result::Result<Spec, String> {
    let spec: Spec = serde_json::from_slice(data).map_err(|e| format!("malformed config: {e}"))?;
    check_version(spec.version())?;
    Ok(spec)
}

fn check_version(v: &str) -> std::result::Result<(), String> {
    if v.is_empty() {
        return Err("ociVersion is required".into());
    }
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    let nums: Option<Vec<u64>> = parts.iter().map(|p| p.parse().ok()).collect();
    match nums.as_deref() {
        Some([major, _, _]) if *major == SUPPORTED_OCI_MAJOR => Ok(()),
        Some([_, _, _]) => Err(format!(
            "unsupported ociVersion {v:?}: berth implements runtime-spec 1.x (up to {OCI_VERSION})"
        )),
        _ => Err(format!("ociVersion {v:?} is not a semantic version")),
    }
}

/// Check a container id: letters, digits, `_`, `+`, `-`, `.`; not `.` or `..`.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_string()))
    }
}

/// Which namespaces a container has: the types it creates and the ones it joins by path.
#[derive(Debug, Clone, Default)]
pub struct Namespaces {
    /// Namespaces created new.
    pub new: Vec<LinuxNamespaceType>,
    /// Namespaces joined by path, in the order given.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Namespaces {
    /// Read them from the spec.
    pub fn from_spec(spec: &Spec) -> Self {
        let mut ns = Namespaces::default();
        if let Some(list) = spec.linux().as_ref().and_then(|l| l.namespaces().as_ref()) {
            for n in list {
                match n.path() {
                    Some(p) if !p.as_os_str().is_empty() => ns.join.push((n.typ(), p.clone())),
                    _ => ns.new.push(n.typ()),
                }
            }
        }
        ns
    }

    /// Whether the container has its own (new or joined) namespace of this type.
    pub fn has(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(&t) || self.join.iter().any(|(jt, _)| *jt == t)
    }

    /// Whether the container creates a new namespace of this type.
    pub fn creates(&self, t: LinuxNamespaceType) -> bool {
        self.new.contains(&t)
    }
}

/// The name of a namespace type as the spec and /proc/<pid>/ns spell it.
pub fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The clone(2) flag of a namespace type.
pub fn ns_flag(t: LinuxNamespaceType) -> nix::sched::CloneFlags {
    use nix::sched::CloneFlags as F;
    match t {
        LinuxNamespaceType::Mount => F::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => F::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => F::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => F::CLONE_NEWIPC,
        LinuxNamespaceType::User => F::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => F::CLONE_NEWPID,
        LinuxNamespaceType::Network => F::CLONE_NEWNET,
        // CLONE_NEWTIME has the value 0x80 (it shares it with CSIGNAL's range).
        LinuxNamespaceType::Time => F::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// Validate everything in a spec that can be checked without side effects.
pub fn validate(spec: &Spec) -> Result<()> {
    let invalid = |m: String| Err(Error::InvalidConfig(m));
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidConfig("process is required".into()))?;
    validate_process(process)?;

    let linux = spec.linux().as_ref();
    let ns = Namespaces::from_spec(spec);

    // Namespaces: each type at most once; joined paths exist.
    let mut seen = HashSet::new();
    if let Some(list) = linux.and_then(|l| l.namespaces().as_ref()) {
        for n in list {
            if !seen.insert(ns_name(n.typ())) {
                return invalid(format!("namespace {:?} is listed twice", ns_name(n.typ())));
            }
            if let Some(p) = n.path()
                && !p.as_os_str().is_empty()
            {
                if !p.is_absolute() {
                    return invalid(format!(
                        "namespace {} path {} is not absolute",
                        ns_name(n.typ()),
                        p.display()
                    ));
                }
                if let Err(e) = std::fs::metadata(p) {
                    return invalid(format!(
                        "namespace {} path {}: {e}",
                        ns_name(n.typ()),
                        p.display()
                    ));
                }
            }
        }
    }

    // User namespaces and id mappings.
    let uid_maps = linux.and_then(|l| l.uid_mappings().as_ref());
    let gid_maps = linux.and_then(|l| l.gid_mappings().as_ref());
    let has_maps =
        uid_maps.is_some_and(|m| !m.is_empty()) || gid_maps.is_some_and(|m| !m.is_empty());
    if ns.creates(LinuxNamespaceType::User) {
        if uid_maps.is_none_or(|m| m.is_empty()) || gid_maps.is_none_or(|m| m.is_empty()) {
            return invalid(
                "a new user namespace needs both linux.uidMappings and linux.gidMappings".into(),
            );
        }
        validate_mappings(
            "uidMappings",
            uid_maps.map(Vec::as_slice).unwrap_or_default(),
        )?;
        validate_mappings(
            "gidMappings",
            gid_maps.map(Vec::as_slice).unwrap_or_default(),
        )?;
    } else if has_maps {
        return invalid(
            "linux.uidMappings/gidMappings are set but the container does not create a user namespace"
                .into(),
        );
    }

    // Hostname and domainname need a UTS namespace of the container's own.
    if (spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_ref().is_some_and(|h| !h.is_empty()))
        && !ns.has(LinuxNamespaceType::Uts)
    {
        return invalid("hostname/domainname need a UTS namespace (add {\"type\": \"uts\"} to linux.namespaces)".into());
    }

    if let Some(linux) = linux {
        if let Some(sysctl) = linux.sysctl() {
            for key in sysctl.keys() {
                validate_sysctl(key, &ns)?;
            }
        }
        if let Some(p) = linux.rootfs_propagation()
            && !p.is_empty()
            && crate::mountopts::propagation_flag(p).is_none()
        {
            return invalid(format!("rootfsPropagation {p:?} is not a propagation type"));
        }
        if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty())
            && !ns.creates(LinuxNamespaceType::Time)
        {
            return invalid("linux.timeOffsets need a new time namespace".into());
        }
        if let Some(offsets) = linux.time_offsets() {
            for clock in offsets.keys() {
                if clock != "monotonic" && clock != "boottime" {
                    return invalid(format!(
                        "linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
                    ));
                }
            }
        }
        if let Some(devices) = linux.devices() {
            for d in devices {
                if !d.path().is_absolute() {
                    return invalid(format!(
                        "device path {} is not absolute",
                        d.path().display()
                    ));
                }
            }
        }
        if let Some(cg) = linux.cgroups_path()
            && cg
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return invalid(format!("cgroupsPath {} may not contain '..'", cg.display()));
        }
    }

    if let Some(mounts) = spec.mounts() {
        for m in mounts {
            if m.destination().as_os_str().is_empty() {
                return invalid("a mount has an empty destination".into());
            }
            if m.destination()
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return invalid(format!(
                    "mount destination {} may not contain '..'",
                    m.destination().display()
                ));
            }
        }
    }
    Ok(())
}

/// Validate a process (the container's or one given to exec).
pub fn validate_process(process: &oci_spec::runtime::Process) -> Result<()> {
    let invalid = |m: String| Err(Error::InvalidConfig(m));
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => return invalid("process.args must name a program".into()),
    }
    if !process.cwd().is_absolute() {
        return invalid(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd().display().to_string()
        ));
    }
    if let Some(env) = process.env() {
        for e in env {
            if !e.contains('=') {
                return invalid(format!("process.env entry {e:?} is not KEY=value"));
            }
        }
    }
    if let Some(rl) = process.rlimits() {
        let mut seen = Vec::new();
        for r in rl {
            if r.soft() > r.hard() {
                return invalid(format!(
                    "rlimit {:?}: soft limit {} is above hard limit {}",
                    r.typ(),
                    r.soft(),
                    r.hard()
                ));
            }
            if seen.contains(&r.typ()) {
                return invalid(format!("rlimit {:?} is set twice", r.typ()));
            }
            seen.push(r.typ());
        }
    }
    if let Some(adj) = process.oom_score_adj()
        && !(-1000..=1000).contains(&adj)
    {
        return invalid(format!("process.oomScoreAdj {adj} is outside -1000..1000"));
    }
    Ok(())
}

fn validate_mappings(name: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let invalid = |m: String| Err(Error::InvalidConfig(m));
    if maps.len() > 340 {
        return invalid(format!("linux.{name}: at most 340 ranges are allowed"));
    }
    for (i, m) in maps.iter().enumerate() {
        if m.size() == 0 {
            return invalid(format!("linux.{name}[{i}]: size must be positive"));
        }
        let c_end = u64::from(m.container_id()) + u64::from(m.size());
        let h_end = u64::from(m.host_id()) + u64::from(m.size());
        if c_end > u64::from(u32::MAX) || h_end > u64::from(u32::MAX) {
            return invalid(format!("linux.{name}[{i}]: range overflows 32-bit ids"));
        }
        for (j, o) in maps.iter().enumerate().take(i) {
            let overlap = |a: u32, b: u32| {
                let (a, b) = (u64::from(a), u64::from(b));
                a < b + u64::from(o.size()) && b < a + u64::from(m.size())
            };
            if overlap(m.container_id(), o.container_id()) {
                return invalid(format!(
                    "linux.{name}[{i}] and [{j}]: container id ranges overlap"
                ));
            }
            if overlap(m.host_id(), o.host_id()) {
                return invalid(format!(
                    "linux.{name}[{i}] and [{j}]: host id ranges overlap"
                ));
            }
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when the container has the namespace.
fn validate_sysctl(key: &str, ns: &Namespaces) -> Result<()> {
    let need = |t: LinuxNamespaceType, what: &str| {
        if ns.has(t) {
            Ok(())
        } else {
            Err(Error::InvalidConfig(format!(
                "sysctl {key:?} needs the container to have its own {what} namespace"
            )))
        }
    };
    const IPC: &[&str] = &[
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if key.contains("..") || key.starts_with('/') || key.starts_with('.') {
        return Err(Error::InvalidConfig(format!(
            "sysctl {key:?} is not a sysctl name"
        )));
    }
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        return need(LinuxNamespaceType::Ipc, "IPC");
    }
    if key.starts_with("net.") {
        return need(LinuxNamespaceType::Network, "network");
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        return need(LinuxNamespaceType::Uts, "UTS");
    }
    Err(Error::InvalidConfig(format!(
        "sysctl {key:?} is not namespaced: it would change the host"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_templates_validate() {
        for rootless in [false, true] {
            let v = berth_spec::runc_spec(rootless, 1000, 1000);
            let spec = parse_spec(&serde_json::to_vec(&v).unwrap()).unwrap();
            validate(&spec).unwrap();
        }
        let docker = berth_spec::docker::container_spec("rootfs");
        validate(&parse_spec(&serde_json::to_vec(&docker).unwrap()).unwrap()).unwrap();
    }

    #[test]
    fn versions() {
        assert!(check_version("1.0.0").is_ok());
        assert!(check_version("1.0.2-dev").is_ok());
        assert!(check_version("1.2.0").is_ok());
        assert!(check_version("2.0.0").is_err());
        assert!(check_version("").is_err());
        assert!(check_version("banana").is_err());
    }

    #[test]
    fn ids() {
        assert!(validate_id("abc-1.2_x+y").is_ok());
        for bad in ["", ".", "..", "a/b", "a b", "../x", "a\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mappings() {
        let m = |c: u32, h: u32, s: u32| {
            oci_spec::runtime::LinuxIdMappingBuilder::default()
                .container_id(c)
                .host_id(h)
                .size(s)
                .build()
                .unwrap()
        };
        assert!(validate_mappings("u", &[m(0, 1000, 10), m(10, 2000, 5)]).is_ok());
        assert!(validate_mappings("u", &[m(0, 1000, 0)]).is_err());
        assert!(validate_mappings("u", &[m(0, 1000, 10), m(5, 3000, 5)]).is_err());
        assert!(validate_mappings("u", &[m(0, 1000, 10), m(20, 1005, 5)]).is_err());
        assert!(validate_mappings("u", &[m(u32::MAX - 1, 0, 10)]).is_err());
    }

    #[test]
    fn exec_cpu_affinity_is_validated() {
        let p = |v: &str| {
            serde_json::from_value::<oci_spec::runtime::Process>(serde_json::json!({
                "cwd": "/", "args": ["x"], "user": {"uid": 0, "gid": 0},
                "execCPUAffinity": {"initial": v}
            }))
        };
        assert!(p("0-1,3").is_ok());
        assert!(p("zero").is_err());
    }
}
