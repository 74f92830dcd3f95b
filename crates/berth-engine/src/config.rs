//! The daemon's configuration: `/etc/berth/daemon.json`, with Docker's keys where they exist.
//! An unknown key is an error at start (as dockerd refuses one), never silently ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Where the configuration is read from unless `--config-file` says otherwise.
pub const DEFAULT_CONFIG_FILE: &str = "/etc/berth/daemon.json";
/// The default data root (the image store lives there already).
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";
/// The default exec root: sockets, shims' state, the runtime's state (a tmpfs).
pub const DEFAULT_EXEC_ROOT: &str = "/run/berth";
/// Logs rotate by default (unlike Docker's unbounded default): this size per file…
pub const DEFAULT_LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// … and this many files.
pub const DEFAULT_LOG_MAX_FILE: u32 = 3;

/// A default ulimit, in daemon.json's shape (`{"nofile": {"Name": "nofile", "Hard": 64000, "Soft": 64000}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    /// The limit's name (`nofile`, `nproc`, …).
    #[serde(rename = "Name")]
    pub name: String,
    /// Hard limit.
    #[serde(rename = "Hard")]
    pub hard: i64,
    /// Soft limit.
    #[serde(rename = "Soft")]
    pub soft: i64,
}

/// Another OCI runtime, in daemon.json's `runtimes` shape (`{"runc": {"path": "/usr/bin/runc"}}`;
/// dockerd's `--add-runtime NAME=PATH`): containers created with `--runtime NAME` run with it,
/// driven through runc's command line by their shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RuntimeEntry {
    /// The runtime binary: an absolute path, or a name looked up in PATH.
    pub path: PathBuf,
    /// Extra arguments (dockerd's); not supported: refused at start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtime_args: Vec<String>,
}

/// The runtime containers get without `--runtime`: berth's own (in the shim, no binary).
pub const BERTH_RUNTIME: &str = "berth";

/// daemon.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DaemonConfig {
    /// The data root (images, containers' data, volumes, the engine's database).
    pub data_root: Option<PathBuf>,
    /// The exec root (sockets and state that do not outlive a reboot).
    pub exec_root: Option<PathBuf>,
    /// Addresses to serve the API on (`unix:///run/berth/berth.sock`, `tcp://127.0.0.1:2375`).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Mirrors of Docker Hub, tried first for docker.io images.
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    /// Registries spoken to over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// The default log driver: `json-file` (default) or `none`.
    pub log_driver: Option<String>,
    /// Options of the log driver (`max-size`, `max-file`).
    #[serde(default)]
    pub log_opts: BTreeMap<String, String>,
    /// Ulimits every container gets unless it asks for others.
    #[serde(default)]
    pub default_ulimits: BTreeMap<String, Ulimit>,
    /// The cgroup containers go beneath (default: beneath the daemon's own).
    pub cgroup_parent: Option<String>,
    /// Keep containers running while the daemon is down (default on).
    pub live_restore: Option<bool>,
    /// Debug logging.
    pub debug: Option<bool>,
    /// Serve TCP with TLS.
    pub tls: Option<bool>,
    /// Serve TCP with TLS and verify clients' certificates against `tlscacert`.
    pub tlsverify: Option<bool>,
    /// The CA that signs clients' certificates.
    pub tlscacert: Option<PathBuf>,
    /// The server's certificate.
    pub tlscert: Option<PathBuf>,
    /// The server's key.
    pub tlskey: Option<PathBuf>,
    /// The group that owns unix sockets (default `berth`, if it exists).
    pub group: Option<String>,
    /// The init binary of `--init` (a static executable; default: `berth-init` beside
    /// `berth`).
    pub init_path: Option<PathBuf>,
    /// Other OCI runtimes by name (`runc` is known without being listed: the `runc` in PATH).
    #[serde(default)]
    pub runtimes: BTreeMap<String, RuntimeEntry>,
    /// The runtime of containers created without `--runtime` (default `berth`).
    pub default_runtime: Option<String>,
    /// The default bridge network: `none` disables it (containers without `--network` then
    /// have loopback only); any other value is refused (the device is `berth0`).
    pub bridge: Option<String>,
    /// The default bridge's address and prefix (`172.17.0.1/16`); default: the first free
    /// subnet of the address pools.
    pub bip: Option<String>,
    /// Where the default bridge's containers get addresses (a part of its subnet).
    pub fixed_cidr: Option<String>,
    /// Pools user-defined networks' subnets are carved from (`[{"base": "10.10.0.0/16",
    /// "size": 24}]`).
    #[serde(default)]
    pub default_address_pools: Vec<AddressPoolConfig>,
    /// The default bridge's MTU (and user-defined networks' default).
    pub mtu: Option<u32>,
    /// Containers on the default bridge may talk to each other (default true).
    pub icc: Option<bool>,
    /// Masquerade traffic leaving the default bridge (default true).
    pub ip_masq: Option<bool>,
    /// Let berth turn on IPv4 forwarding (default true).
    pub ip_forward: Option<bool>,
    /// The host address ports are published on when `-p` names none (default 0.0.0.0).
    pub ip: Option<std::net::IpAddr>,
    /// DNS servers for containers (instead of the host's).
    #[serde(default)]
    pub dns: Vec<String>,
    /// DNS search domains for containers.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// DNS options for containers.
    #[serde(default)]
    pub dns_opts: Vec<String>,
    /// IPv6 on the default bridge.
    pub ipv6: Option<bool>,
    /// The default bridge's IPv6 subnet (default: a random unique local /64).
    #[serde(rename = "fixed-cidr-v6")]
    pub fixed_cidr_v6: Option<String>,
    /// dockerd's switch for IPv6 rules; berth always makes them (accepted, `false` refused).
    pub ip6tables: Option<bool>,
    /// dockerd's switch for its iptables rules; berth's rules are its nftables table's
    /// (accepted, `false` refused).
    pub iptables: Option<bool>,
    /// Docker's userland proxy: berth never runs one (the kernel forwards published ports);
    /// `false` is accepted, `true` is refused.
    pub userland_proxy: Option<bool>,
}

/// One of daemon.json's `default-address-pools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddressPoolConfig {
    /// The pool (`10.10.0.0/16`).
    pub base: String,
    /// The prefix length of each network's subnet.
    pub size: u8,
}

impl DaemonConfig {
    /// Read a daemon.json; a missing file is the defaults only if `required` is false.
    pub fn load(path: &Path, required: bool) -> Result<DaemonConfig> {
        match std::fs::read(path) {
            Ok(bytes) => {
                Self::parse(&bytes).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(DaemonConfig::default())
            }
            Err(e) => Err(Error::Invalid(format!("reading {}: {e}", path.display()))),
        }
    }

    /// Parse daemon.json's text; unknown keys are refused.
    pub fn parse(bytes: &[u8]) -> std::result::Result<DaemonConfig, String> {
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(DaemonConfig::default());
        }
        let cfg: DaemonConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if let Some(d) = &cfg.log_driver {
            if d != "json-file" && d != "none" {
                return Err(format!(
                    "log-driver {d:?} is not supported (json-file and none are)"
                ));
            }
        }
        cfg.log_limits()?;
        cfg.check_runtimes()?;
        cfg.check_network()?;
        Ok(cfg)
    }

    /// The network keys are usable.
    pub fn check_network(&self) -> std::result::Result<(), String> {
        if let Some(b) = &self.bridge {
            if b != "none" && b != crate::networks::DEFAULT_BRIDGE_DEVICE {
                return Err(format!(
                    "bridge {b:?}: only \"none\" (no default bridge) or \"{}\" is supported",
                    crate::networks::DEFAULT_BRIDGE_DEVICE
                ));
            }
        }
        if let Some(b) = &self.bip {
            b.parse::<ipnet::Ipv4Net>()
                .map_err(|_| format!("invalid bip {b:?}: an IPv4 address with a prefix length"))?;
        }
        if let Some(f) = &self.fixed_cidr {
            f.parse::<ipnet::Ipv4Net>()
                .map_err(|_| format!("invalid fixed-cidr {f:?}"))?;
        }
        for p in &self.default_address_pools {
            let base: ipnet::Ipv4Net = p
                .base
                .parse()
                .map_err(|_| format!("default-address-pools: invalid base {:?}", p.base))?;
            if p.size < base.prefix_len() || p.size > 30 {
                return Err(format!(
                    "default-address-pools: size {} does not fit base {}",
                    p.size, p.base
                ));
            }
        }
        if let Some(m) = self.mtu {
            if !(68..=65535).contains(&m) {
                return Err(format!("invalid mtu {m}: 68 to 65535"));
            }
        }
        for d in &self.dns {
            d.parse::<std::net::IpAddr>()
                .map_err(|_| format!("invalid dns server {d:?}"))?;
        }
        if let Some(f) = &self.fixed_cidr_v6 {
            let n: ipnet::Ipv6Net = f
                .parse()
                .map_err(|_| format!("invalid fixed-cidr-v6 {f:?}"))?;
            if n.prefix_len() > 120 {
                return Err(format!("fixed-cidr-v6 {f}: at most a /120"));
            }
        }
        if self.iptables == Some(false) || self.ip6tables == Some(false) {
            return Err("iptables/ip6tables false: berth publishes ports and isolates networks with its own nftables table, which cannot be turned off".into());
        }
        if self.userland_proxy == Some(true) {
            return Err("userland-proxy: berth publishes ports in the kernel and has no userland proxy; set it to false or leave it out".into());
        }
        Ok(())
    }

    /// The runtimes' names and entries are usable (also after `--add-runtime`).
    pub fn check_runtimes(&self) -> std::result::Result<(), String> {
        for (name, r) in &self.runtimes {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            {
                return Err(format!("runtime name {name:?} is not valid"));
            }
            if name == BERTH_RUNTIME {
                return Err(format!("runtime name {name:?} is reserved"));
            }
            if r.path.as_os_str().is_empty() {
                return Err(format!("runtime {name:?} has no path"));
            }
            if !r.runtime_args.is_empty() {
                return Err(format!(
                    "runtime {name:?}: runtimeArgs are not supported by berth"
                ));
            }
        }
        if let Some(d) = &self.default_runtime {
            if d != BERTH_RUNTIME && d != "runc" && !self.runtimes.contains_key(d) {
                return Err(format!("default-runtime {d:?} is not a configured runtime"));
            }
        }
        Ok(())
    }

    /// The runtime of containers created without `--runtime`.
    pub fn default_runtime(&self) -> &str {
        self.default_runtime.as_deref().unwrap_or(BERTH_RUNTIME)
    }

    /// The binary of runtime `name`: `None` for berth's own; an error for a name that is not
    /// configured or whose binary cannot be found.
    pub fn runtime_binary(&self, name: &str) -> std::result::Result<Option<PathBuf>, String> {
        if name == BERTH_RUNTIME {
            return Ok(None);
        }
        let path = match self.runtimes.get(name) {
            Some(r) => r.path.clone(),
            None if name == "runc" => PathBuf::from("runc"),
            None => return Err(format!("unknown or invalid runtime name: {name}")),
        };
        if path.is_absolute() {
            return Ok(Some(path));
        }
        let found = std::env::var_os("PATH")
            .into_iter()
            .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .map(|d| d.join(&path))
            .find(|p| {
                use std::os::unix::fs::PermissionsExt;
                p.metadata()
                    .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                    .unwrap_or(false)
            });
        found.map(Some).ok_or_else(|| {
            format!(
                "unknown or invalid runtime name: {name} ({} is not in PATH)",
                path.display()
            )
        })
    }

    /// Every runtime's name and binary as `docker info` lists them.
    pub fn runtime_list(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        out.insert(BERTH_RUNTIME.to_string(), "berth-shim".to_string());
        out.insert("runc".to_string(), "runc".to_string());
        for (n, r) in &self.runtimes {
            out.insert(n.clone(), r.path.display().to_string());
        }
        out
    }

    /// The data root.
    pub fn data_root(&self) -> PathBuf {
        self.data_root
            .clone()
            .unwrap_or_else(|| DEFAULT_DATA_ROOT.into())
    }

    /// The exec root.
    pub fn exec_root(&self) -> PathBuf {
        self.exec_root
            .clone()
            .unwrap_or_else(|| DEFAULT_EXEC_ROOT.into())
    }

    /// Whether containers keep running while the daemon is down (default on).
    pub fn live_restore(&self) -> bool {
        self.live_restore.unwrap_or(true)
    }

    /// The default log driver.
    pub fn log_driver(&self) -> &str {
        self.log_driver.as_deref().unwrap_or("json-file")
    }

    /// The default rotation: (max size in bytes, max files).
    pub fn log_limits(&self) -> std::result::Result<(u64, u32), String> {
        log_limits(&self.log_opts, (DEFAULT_LOG_MAX_SIZE, DEFAULT_LOG_MAX_FILE))
    }
}

/// `max-size` and `max-file` of log options over `defaults`; other keys are refused.
pub fn log_limits(
    opts: &BTreeMap<String, String>,
    defaults: (u64, u32),
) -> std::result::Result<(u64, u32), String> {
    let (mut size, mut files) = defaults;
    for (k, v) in opts {
        match k.as_str() {
            "max-size" => {
                size = if v == "-1" {
                    0
                } else {
                    berth_spec::units::ram_in_bytes(v)
                        .ok()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| format!("log-opt max-size={v}: not a size"))?
                }
            }
            "max-file" => {
                files = v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    format!("log-opt max-file={v}: must be a number of at least 1")
                })?
            }
            "mode" | "max-buffer-size" | "labels" | "env" | "tag" | "compress" => {}
            _ => return Err(format!("unknown log opt '{k}' for json-file log driver")),
        }
    }
    Ok((size, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_keys_and_unknown_ones() {
        let c = DaemonConfig::parse(
            br#"{"data-root":"/x","registry-mirrors":["http://127.0.0.1:5000"],"log-opts":{"max-size":"1m","max-file":"2"},"live-restore":false,
            "default-ulimits":{"nofile":{"Name":"nofile","Hard":100,"Soft":50}}}"#,
        )
        .unwrap();
        assert_eq!(c.data_root(), PathBuf::from("/x"));
        assert!(!c.live_restore());
        assert_eq!(c.log_limits().unwrap(), (1024 * 1024, 2));
        let e = DaemonConfig::parse(br#"{"data-rot":"/x"}"#).unwrap_err();
        assert!(e.contains("unknown field `data-rot`"), "{e}");
        assert!(DaemonConfig::parse(br#"{"log-opts":{"max-file":"0"}}"#).is_err());
        assert!(DaemonConfig::parse(br#"{"log-driver":"syslog"}"#).is_err());
        assert_eq!(DaemonConfig::parse(b"  ").unwrap(), DaemonConfig::default());
    }

    #[test]
    fn runtimes_as_dockerd_configures_them() {
        let c = DaemonConfig::parse(
            br#"{"runtimes":{"alt":{"path":"/usr/bin/true"},"byname":{"path":"sh"}},"default-runtime":"alt"}"#,
        )
        .unwrap();
        assert_eq!(c.default_runtime(), "alt");
        assert_eq!(c.runtime_binary("berth").unwrap(), None);
        assert_eq!(
            c.runtime_binary("alt").unwrap(),
            Some(PathBuf::from("/usr/bin/true"))
        );
        // A bare name is found in PATH.
        let sh = c.runtime_binary("byname").unwrap().unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        let e = c.runtime_binary("nope").unwrap_err();
        assert_eq!(e, "unknown or invalid runtime name: nope");
        assert_eq!(
            c.runtime_list().keys().collect::<Vec<_>>(),
            ["alt", "berth", "byname", "runc"]
        );
        for (bad, why) in [
            (r#"{"runtimes":{"berth":{"path":"/x"}}}"#, "reserved"),
            (r#"{"runtimes":{"a/b":{"path":"/x"}}}"#, "not valid"),
            (r#"{"runtimes":{"a":{"path":""}}}"#, "no path"),
            (
                r#"{"runtimes":{"a":{"path":"/x","runtimeArgs":["--debug"]}}}"#,
                "not supported",
            ),
            (
                r#"{"runtimes":{"a":{"path":"/x","shim":1}}}"#,
                "unknown field",
            ),
            (r#"{"default-runtime":"nope"}"#, "not a configured runtime"),
        ] {
            let e = DaemonConfig::parse(bad.as_bytes()).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
