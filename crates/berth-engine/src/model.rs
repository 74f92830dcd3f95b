//! The engine's records: what the database keeps of a container (the request as the client
//! sent it, in Docker's types, plus the engine's state of it).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use bollard_stubs::models::{ContainerConfig, EndpointSettings, HostConfig};
use serde::{Deserialize, Serialize};

/// A container's status, as Docker names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made, never started (or being made: see [`Container::complete`]).
    #[default]
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// Waiting to be started again by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// Its process ended.
    Exited,
    /// Could not be stopped or removed.
    Dead,
}

impl Status {
    /// Docker's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Does a process run (running or paused)?
    pub fn is_running(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// A healthcheck's result, as inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HealthLog {
    /// RFC 3339.
    pub start: String,
    /// RFC 3339.
    pub end: String,
    /// The check's exit code.
    pub exit_code: i64,
    /// Its output (truncated).
    pub output: String,
}

/// Health as inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Health {
    /// `starting`, `healthy`, `unhealthy`.
    pub status: String,
    /// Consecutive failures.
    pub failing_streak: i64,
    /// The last checks (at most 5).
    pub log: Vec<HealthLog>,
}

/// The state of a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct State {
    /// Its status.
    pub status: Status,
    /// The init's pid while it runs (host's view), else 0.
    pub pid: i64,
    /// The last exit code.
    pub exit_code: i64,
    /// The last error starting or running it.
    pub error: String,
    /// When it was last started, RFC 3339 (`0001-01-01T00:00:00Z` if never).
    pub started_at: String,
    /// When it last exited.
    pub finished_at: String,
    /// Was its process killed for lack of memory (last run)?
    pub oom_killed: bool,
    /// Restarts by its restart policy.
    pub restart_count: i64,
    /// Stopped by a user (`unless-stopped`, `always` after a daemon restart).
    pub stopped_by_user: bool,
    /// Health, when it has a healthcheck.
    pub health: Option<Health>,
}

/// Docker's zero time.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// A mount of a container as inspect shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `bind`, `volume`, `tmpfs`.
    pub kind: String,
    /// The volume's name.
    pub name: Option<String>,
    /// Host path (bind, volume).
    pub source: String,
    /// Path in the container.
    pub destination: String,
    /// Mode string as given (`ro`, `z`, …).
    pub mode: String,
    /// Read-write?
    pub rw: bool,
    /// Bind propagation.
    pub propagation: String,
    /// Options of the mount (tmpfs size, …).
    pub options: Vec<String>,
}

/// A container record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Its name, without Docker's leading `/`.
    pub name: String,
    /// The tenant that owns it.
    pub owner: String,
    /// When it was made, RFC 3339 with nanoseconds.
    pub created: String,
    /// The image as the client named it.
    pub image_name: String,
    /// The image's ID (`sha256:…`).
    pub image_id: String,
    /// The configuration, as the client sent it, with the image's defaults filled in.
    pub config: ContainerConfig,
    /// The host configuration as the client sent it.
    pub host_config: HostConfig,
    /// The process: path and arguments.
    pub path: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its mounts.
    pub mounts: Vec<MountPoint>,
    /// Its state.
    pub state: State,
    /// Made completely: false while being created (a crash leaves it false, and the daemon
    /// removes it at start).
    pub complete: bool,
    /// The log file (json-file), if it logs.
    pub log_path: Option<String>,
    /// Which runtime runs it (`berth` or a configured one).
    pub runtime: String,
    /// The networks it is attached to, by network name (NetworkSettings.Networks).
    #[serde(default)]
    pub networks: BTreeMap<String, Endpoint>,
    /// While it runs with a network of its own: the network namespace (a bind mount under
    /// the exec root) and the ports published for it (host ports as bound).
    #[serde(default)]
    pub sandbox: Option<String>,
    /// The published ports while it runs.
    #[serde(default)]
    pub ports: Vec<berth_net::PortMap>,
}

/// A container's attachment to a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Endpoint {
    /// The network's ID.
    pub network_id: String,
    /// What was asked (create's EndpointsConfig, connect's EndpointConfig): IPAMConfig,
    /// Aliases, Links, MacAddress, DriverOpts.
    pub requested: EndpointSettings,
    /// While it runs: the endpoint's ID.
    #[serde(default)]
    pub endpoint_id: String,
    /// Its address.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The subnet's prefix length.
    #[serde(default)]
    pub prefix: u8,
    /// The network's gateway.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Its MAC address (`02:42:…`).
    #[serde(default)]
    pub mac: String,
    /// The host's end of its veth pair.
    #[serde(default)]
    pub veth: String,
    /// Its interface in the container (`eth0`, …).
    #[serde(default)]
    pub ifname: String,
    /// Its IPv6 address (networks with IPv6).
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// The IPv6 subnet's prefix length.
    #[serde(default)]
    pub prefix6: u8,
    /// The network's IPv6 gateway.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}
