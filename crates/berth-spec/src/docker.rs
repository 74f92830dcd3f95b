//! The defaults Docker gives every container, and [`container_spec`], the runtime spec they
//! make. A container has namespaces of its own, holds [`DEFAULT_CAPABILITIES`] only, cannot read the kernel's secrets through /proc and
//! /sys ([`masked_paths`]), cannot reconfigure the kernel through them
//! ([`READONLY_PATHS`]), may use only the basic character devices ([`device_rules`]).

use oci_spec::runtime::{LinuxCapabilities, LinuxDeviceCgroup, LinuxDeviceType, Mount, Spec};
use serde_json::json;

/// The capabilities a container gets unless told otherwise (Docker's default set).
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths hidden from a container (an empty read-only file or directory is mounted over them):
/// what would tell it about, or let it reach, the host's kernel and hardware.
pub const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",
    "/sys/firmware",
];

/// Paths a container sees read-only: the kernel's knobs under /proc.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// [`MASKED_PATHS`] plus each CPU's `thermal_throttle` directory that exists on this host
/// (they expose counters that leak what other tenants run, as Docker masks them too).
pub fn masked_paths() -> Vec<String> {
    let mut out: Vec<String> = MASKED_PATHS.iter().map(|p| p.to_string()).collect();
    let cpus = std::fs::read_dir("/sys/devices/system/cpu")
        .into_iter()
        .flatten();
    let mut found: Vec<String> = cpus
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("cpu")?;
            (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(name)
        })
        .map(|cpu| format!("/sys/devices/system/cpu/{cpu}/thermal_throttle"))
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    found.sort();
    out.extend(found);
    out
}

/// The file systems every container gets: /proc, a /dev tmpfs with devpts, mqueue and shm
/// (`shm_size` bytes; Docker's default is 64 MiB), read-only /sys and its cgroup tree.
pub fn default_mounts(shm_size: u64) -> Vec<Mount> {
    let v = json!([
        {"destination": "/proc", "type": "proc", "source": "proc",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm_size}")]},
    ]);
    serde_json::from_value(v).unwrap_or_default()
}

/// Docker's default /dev/shm size: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// The device cgroup rules: everything denied, then the devices a program may expect
/// (null, zero, full, random, urandom, tty, console, ptmx). The runtime creates the nodes
/// themselves (the OCI default devices).
pub fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let allow = |major: i64, minor: i64| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true)
            .set_typ(Some(LinuxDeviceType::C))
            .set_major(Some(major))
            .set_minor(Some(minor))
            .set_access(Some("rwm".into()));
        r
    };
    let mut deny_all = LinuxDeviceCgroup::default();
    deny_all.set_allow(false).set_access(Some("rwm".into()));
    // 10:229 is /dev/fuse: not allowed unless asked for.
    let mut deny_fuse = allow(10, 229);
    deny_fuse.set_allow(false);
    vec![
        deny_all,
        allow(1, 5), // zero
        allow(1, 3), // null
        allow(1, 9), // urandom
        allow(1, 8), // random
        allow(5, 0), // tty
        allow(5, 1), // console
        deny_fuse,
    ]
}

/// The capability sets of a container holding `caps` (bounding, effective and permitted;
/// no ambient or inheritable capabilities, as Docker).
pub fn capabilities<S: AsRef<str>>(caps: &[S]) -> Option<LinuxCapabilities> {
    let names: Vec<&str> = caps.iter().map(|c| c.as_ref()).collect();
    serde_json::from_value(json!({
        "bounding": names, "effective": names, "permitted": names,
    }))
    .ok()
}

/// The runtime spec of a container with Docker's defaults, its root filesystem at `rootfs`
/// (writable): the process is `sh` as root in `/` with the default `PATH`, to be replaced by
/// whoever fills in the container (the image's config, the request). Namespaces: pid,
/// network, ipc, uts, mount and cgroup, all new. No seccomp profile is set here.
pub fn container_spec(rootfs: &str) -> Spec {
    let v = json!({
        "ociVersion": crate::OCI_VERSION,
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [format!("PATH={}", crate::DEFAULT_PATH)],
            "cwd": "/",
        },
        "root": {"path": rootfs, "readonly": false},
        "hostname": "berth",
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ],
            "maskedPaths": masked_paths(),
            "readonlyPaths": READONLY_PATHS,
        }
    });
    let mut spec: Spec = serde_json::from_value(v).unwrap_or_default();
    spec.set_mounts(Some(default_mounts(DEFAULT_SHM_SIZE)));
    if let Some(p) = spec.process_mut() {
        p.set_capabilities(capabilities(DEFAULT_CAPABILITIES));
    }
    if let Some(linux) = spec.linux_mut() {
        let mut res = oci_spec::runtime::LinuxResources::default();
        res.set_devices(Some(device_rules()));
        linux.set_resources(Some(res));
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_container_spec_has_dockers_defaults() {
        let spec = container_spec("/r");
        assert_eq!(spec.version(), crate::OCI_VERSION);
        assert_eq!(spec.root().as_ref().unwrap().path().to_str(), Some("/r"));
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.ambient().is_none());
        let linux = spec.linux().as_ref().unwrap();
        let masked = linux.masked_paths().as_ref().unwrap();
        assert!(masked.iter().any(|p| p == "/proc/kcore"));
        assert!(masked.iter().any(|p| p == "/sys/firmware"));
        assert_eq!(linux.readonly_paths().as_ref().unwrap().len(), 5);
        let rules = linux
            .resources()
            .as_ref()
            .unwrap()
            .devices()
            .as_ref()
            .unwrap();
        assert!(!rules[0].allow() && rules[0].major().is_none());
        assert!(
            rules
                .iter()
                .any(|r| r.allow() && r.major() == Some(1) && r.minor() == Some(3))
        );
        let mounts = spec.mounts().as_ref().unwrap();
        let shm = mounts
            .iter()
            .find(|m| m.destination().to_str() == Some("/dev/shm"))
            .unwrap();
        assert!(
            shm.options()
                .as_ref()
                .unwrap()
                .contains(&"size=67108864".to_string())
        );
        assert_eq!(mounts.len(), 7);
    }

    #[test]
    fn capability_sets_have_no_ambient() {
        let c = capabilities(&["CAP_KILL"]).unwrap();
        assert_eq!(c.effective().as_ref().unwrap().len(), 1);
        assert!(c.inheritable().is_none() && c.ambient().is_none());
        assert!(capabilities(&["CAP_NOT_A_CAP"]).is_none());
    }
}
