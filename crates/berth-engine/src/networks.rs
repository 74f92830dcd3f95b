//! Networks: the records (`bridge`, `host`, `none` and user-defined bridge networks, in the
//! engine's database), the API's `network` operations, and a container's network plumbing at
//! start and exit (its namespace, veths, addresses, published ports, names in the embedded
//! DNS), done through `berth-net`.
//!
//! # Rules
//! - Addresses are handed out from a network's [`Space`], kept in memory and rebuilt at daemon
//!   start from the records of running containers (whose endpoints record their addresses):
//!   allocations survive restarts without a write of their own, and go when the container
//!   stops.
//! - Everything a container's network is made of on the host is named after it or recorded
//!   in its record before the daemon answers: at daemon start, namespaces under
//!   `<exec-root>/netns`, berth's veths and published ports that belong to no running
//!   container are removed ([`Engine::net_reconcile`]).
//! - A published host port is held by a socket bound in the daemon (as dockerd ≥ 28 does), so
//!   no other program on the host can take it while the container runs; the traffic itself
//!   is DNATed by the kernel (no proxy process).
//! - One lock ([`NetState`]) covers the records, address spaces and host ports; host work
//!   (netlink, nftables) happens outside it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use berth_net::ipam::{self, Space, Space6};
use berth_net::{PortMap, Proto};
use bollard_stubs::models::{EndpointSettings, NetworkCreateRequest};
use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::Event;
use crate::model::{Container, Endpoint};
use crate::{Action, Engine, Error, Result, Subject};

/// The default bridge network's name, and its device's unless daemon.json says otherwise.
pub const DEFAULT_BRIDGE: &str = "bridge";
/// The default bridge's device.
pub const DEFAULT_BRIDGE_DEVICE: &str = "berth0";
/// Prefix of the bridges of user-defined networks (`bn-` + 12 digits of the ID).
const BRIDGE_PREFIX: &str = "bn-";
/// Prefix of the host's ends of containers' veth pairs.
pub const VETH_PREFIX: &str = "bv";
/// The embedded DNS server's address inside a container.
pub const DNS_ADDR: &str = "127.0.0.11";
/// Docker's driver option names.
const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
const OPT_MTU: &str = "com.docker.network.driver.mtu";
const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
const OPT_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
const OPT_HOST_IPV4: &str = "com.docker.network.bridge.host_binding_ipv4";
const OPT_DEFAULT: &str = "com.docker.network.bridge.default_bridge";

/// A network's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// 64 hex digits.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The tenant that owns it (built-in networks: everyone's).
    pub owner: String,
    /// `bridge`, `host` or `null`.
    pub driver: String,
    /// RFC 3339.
    pub created: String,
    /// No route out, nothing in from outside its bridge.
    pub internal: bool,
    /// `--attachable` (recorded; every network here is attachable).
    pub attachable: bool,
    /// Its subnet (bridge networks).
    pub subnet: Option<Ipv4Net>,
    /// Its gateway, the bridge's address.
    pub gateway: Option<Ipv4Addr>,
    /// Where containers' addresses come from.
    pub ip_range: Option<Ipv4Net>,
    /// Whether the subnet was asked for (inspect shows IPAM.Config as given).
    pub ipam_given: bool,
    /// IPAM driver options.
    #[serde(default)]
    pub ipam_options: BTreeMap<String, String>,
    /// Driver options as given.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The bridge device.
    pub bridge: String,
    /// Its MTU.
    pub mtu: u32,
    /// Containers on it may talk to each other.
    pub icc: bool,
    /// Outbound traffic is masqueraded.
    pub masquerade: bool,
    /// Host address published ports bind to when `-p` names none.
    pub host_ip: Option<IpAddr>,
    /// The predefined networks (`bridge`, `host`, `none`): never removed.
    pub builtin: bool,
    /// Its IPv6 subnet (`--ipv6`).
    #[serde(default)]
    pub subnet6: Option<Ipv6Net>,
    /// The bridge's IPv6 address, the containers' IPv6 gateway.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// IPAM's auxiliary addresses (kept out of the containers' allocations).
    #[serde(default)]
    pub aux: BTreeMap<String, Ipv4Addr>,
}

impl NetworkRecord {
    fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }
    /// User-defined (has the embedded DNS, container names resolve).
    pub fn user_defined(&self) -> bool {
        !self.builtin
    }
}

/// The networks' state in memory.
#[derive(Default)]
pub(crate) struct NetState {
    inner: Mutex<NetInner>,
}

#[derive(Default)]
struct NetInner {
    /// Records by ID.
    nets: HashMap<String, NetworkRecord>,
    /// Address spaces by network ID.
    spaces: HashMap<String, Space>,
    /// IPv6 address spaces by network ID.
    spaces6: HashMap<String, Space6>,
    /// Host ports published: (proto, host IP, port) → container ID and the socket holding it.
    ports: HashMap<(Proto, IpAddr, u16), (String, Option<HeldPort>)>,
    /// Whether the records were loaded.
    loaded: bool,
}

/// A socket bound to a published host port (never listening): it keeps the port from other
/// programs on the host.
struct HeldPort(#[allow(dead_code)] socket2::Socket);

fn lock(s: &NetState) -> MutexGuard<'_, NetInner> {
    s.inner.lock().unwrap_or_else(|p| p.into_inner())
}

/// A container's entry on a network: its ID, its names (lower-case), its address.
type DnsEntry = (String, Vec<String>, IpAddr);
/// A container asking: its user-defined networks, its upstream servers, and its links on
/// those networks (alias → the linked container's name: the alias resolves to it).
#[derive(Default)]
struct Asker {
    nets: Vec<String>,
    upstreams: Vec<SocketAddr>,
    links: Vec<(String, String)>,
}

/// The names the embedded DNS answers (shared with the DNS server; cheap to read).
#[derive(Default)]
pub struct DnsNames {
    /// Network ID → (container ID, its names (lower-case), address).
    by_net: RwLock<HashMap<String, Vec<DnsEntry>>>,
    /// Container ID → its user-defined networks and its upstream servers.
    askers: RwLock<HashMap<String, Asker>>,
}

impl berth_dns::Names for DnsNames {
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        let askers = self.askers.read().unwrap_or_else(|p| p.into_inner());
        let a = askers.get(asker)?;
        let nets = &a.nets;
        // A link's alias is the linked container's name, for this container only.
        let name = a
            .links
            .iter()
            .find(|(alias, _)| alias == name)
            .map(|(_, target)| target.as_str())
            .unwrap_or(name);
        let by_net = self.by_net.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut known = false;
        for n in nets {
            for (_, names, ip) in by_net.get(n).into_iter().flatten() {
                if names.iter().any(|x| x == name) {
                    known = true;
                    if !out.contains(ip) {
                        out.push(*ip);
                    }
                }
            }
        }
        known.then_some(out)
    }

    fn reverse(&self, asker: &str, addr: IpAddr) -> Option<String> {
        let askers = self.askers.read().unwrap_or_else(|p| p.into_inner());
        let nets = &askers.get(asker)?.nets;
        let by_net = self.by_net.read().unwrap_or_else(|p| p.into_inner());
        for n in nets {
            for (_, names, ip) in by_net.get(n).into_iter().flatten() {
                if *ip == addr {
                    return names.first().cloned();
                }
            }
        }
        None
    }

    fn upstreams(&self, asker: &str) -> Vec<SocketAddr> {
        self.askers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(asker)
            .map(|a| a.upstreams.clone())
            .unwrap_or_default()
    }
}

impl DnsNames {
    fn register(&self, net: &str, container: &str, names: Vec<String>, ips: Vec<IpAddr>) {
        let mut by_net = self.by_net.write().unwrap_or_else(|p| p.into_inner());
        let v = by_net.entry(net.to_string()).or_default();
        v.retain(|(c, _, _)| c != container);
        for ip in ips {
            v.push((container.to_string(), names.clone(), ip));
        }
    }
    fn unregister(&self, net: &str, container: &str) {
        let mut by_net = self.by_net.write().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = by_net.get_mut(net) {
            v.retain(|(c, _, _)| c != container);
        }
    }
    fn set_asker(&self, container: &str, asker: Asker) {
        let mut a = self.askers.write().unwrap_or_else(|p| p.into_inner());
        if asker.nets.is_empty() {
            a.remove(container);
        } else {
            a.insert(container.to_string(), asker);
        }
    }
}

/// The network a container's NetworkMode names (None: no network of berth's: host, none,
/// container:…).
pub(crate) fn mode_network(mode: Option<&str>) -> Option<&str> {
    match mode.unwrap_or("default") {
        "" | "default" | "bridge" => Some(DEFAULT_BRIDGE),
        "host" | "none" => None,
        m if m.starts_with("container:") => None,
        m => Some(m),
    }
}

fn new_endpoint_id() -> String {
    crate::names::new_id()
}

/// Random veth name: `bv` + 11 hex digits (IFNAMSIZ allows 15 characters).
fn new_veth_name() -> String {
    let id = crate::names::new_id();
    format!("{VETH_PREFIX}{}", &id[..11])
}

fn mac_string(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let bad = || Error::Invalid(format!("invalid MAC address: {s}"));
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (i, p) in parts.iter().enumerate() {
        if p.len() != 2 {
            return Err(bad());
        }
        mac[i] = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(Error::Invalid(format!(
            "invalid MAC address: {s}: a multicast address cannot be a container's"
        )));
    }
    Ok(mac)
}

fn ipam_error(e: ipam::Error) -> Error {
    match e {
        ipam::Error::Overlap | ipam::Error::InUse => Error::Forbidden(e.to_string()),
        ipam::Error::NoPool | ipam::Error::Exhausted(_) => Error::Forbidden(e.to_string()),
        ipam::Error::Invalid(_) => Error::Invalid(e.to_string()),
    }
}

fn net_error(what: impl std::fmt::Display, e: berth_net::Error) -> Error {
    Error::Internal(format!("{what}: {e}"))
}

/// Docker's name filter.
fn name_matches(name: &str, pat: &str) -> bool {
    let start = pat.starts_with('^');
    let end = pat.ends_with('$') && pat.len() > usize::from(start);
    let core = pat.trim_start_matches('^').trim_end_matches('$');
    match (start, end) {
        (true, true) => name == core,
        (true, false) => name.starts_with(core),
        (false, true) => name.ends_with(core),
        (false, false) => name.contains(core),
    }
}

fn labels_match(labels: &BTreeMap<String, String>, filter: &str) -> bool {
    match filter.split_once('=') {
        Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
        None => labels.contains_key(filter),
    }
}

/// Docker's `until` filter: an RFC 3339 time, a Unix time, or a duration before now.
fn until_filter(v: &str) -> Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    if let Ok(n) = v.parse::<f64>() {
        return Ok(n as i64);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Ok(now - d.as_secs() as i64);
    }
    rfc3339_seconds(v).ok_or_else(|| Error::Invalid(format!("invalid filter 'until={v}'")))
}

fn rfc3339_seconds(v: &str) -> Option<i64> {
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
}

impl Engine {
    fn net_lock(&self) -> MutexGuard<'_, NetInner> {
        lock(&self.net_state)
    }

    /// Load the network records, making the predefined ones (and the default bridge's
    /// device) if missing, and set up every bridge network's device and rules. Blocking.
    pub(crate) fn net_open(&self) -> Result<()> {
        let mut recs: HashMap<String, NetworkRecord> = HashMap::new();
        for (id, json) in self.db.networks()? {
            match serde_json::from_slice::<NetworkRecord>(&json) {
                Ok(r) => {
                    recs.insert(id, r);
                }
                Err(e) => tracing::error!("network record {id} unreadable: {e}"),
            }
        }
        let want_bridge = self.cfg.bridge.as_deref() != Some("none");
        for (name, driver) in [("host", "host"), ("none", "null")] {
            if !recs.values().any(|r| r.builtin && r.name == name) {
                let r = NetworkRecord {
                    id: crate::names::new_id(),
                    name: name.into(),
                    owner: String::new(),
                    driver: driver.into(),
                    created: crate::containers::now_rfc3339(),
                    internal: false,
                    attachable: false,
                    subnet: None,
                    gateway: None,
                    ip_range: None,
                    ipam_given: false,
                    ipam_options: BTreeMap::new(),
                    options: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    bridge: String::new(),
                    mtu: 0,
                    icc: true,
                    masquerade: true,
                    host_ip: None,
                    builtin: true,
                    subnet6: None,
                    gateway6: None,
                    aux: BTreeMap::new(),
                };
                self.put_network(&r)?;
                recs.insert(r.id.clone(), r);
            }
        }
        // The default bridge follows daemon.json each start (bip, mtu, icc, ip-masq, ip).
        let old = recs
            .values()
            .find(|r| r.builtin && r.name == DEFAULT_BRIDGE)
            .cloned();
        if let Some(o) = &old {
            recs.remove(&o.id);
        }
        if want_bridge {
            let r = self.default_bridge_record(old.as_ref(), &recs)?;
            if old.as_ref() != Some(&r) {
                self.put_network(&r)?;
            }
            recs.insert(r.id.clone(), r);
        } else if let Some(o) = old {
            self.db.delete_network(&o.id)?;
            let host = self.net_host()?;
            if let Err(e) = host.remove_bridge(&o.bridge) {
                tracing::warn!("removing the default bridge {}: {e}", o.bridge);
            }
            if !recs.values().any(|r| r.is_bridge()) {
                if let Err(e) = host.clear() {
                    tracing::warn!("clearing berth's networking from the host: {e}");
                }
            }
        }
        // Without bridge networks the host is left alone (no table, no sysctl); a host
        // that cannot be set up (no nft) is reported, and containers on bridges fail to
        // start with that error, while the daemon serves everything else.
        if recs.values().any(|r| r.is_bridge()) {
            match self.net_host() {
                Ok(host) => {
                    for r in recs.values().filter(|r| r.is_bridge()) {
                        if let Err(e) = host.ensure_bridge(&bridge_spec(r)) {
                            tracing::error!("setting up network {} ({}): {e}", r.name, r.bridge);
                        }
                    }
                }
                Err(e) => tracing::error!("{e}"),
            }
        }
        let mut g = self.net_lock();
        for r in recs.values() {
            if let (Some(subnet), true) = (r.subnet, r.is_bridge()) {
                match Space::new(subnet, r.gateway, r.ip_range) {
                    Ok(mut s) => {
                        for ip in r.aux.values() {
                            let _ = s.reserve(*ip);
                        }
                        g.spaces.insert(r.id.clone(), s);
                    }
                    Err(e) => tracing::error!("network {}: {e}", r.name),
                }
            }
        }
        for r in recs.values() {
            if let Some(s6) = r.subnet6 {
                match Space6::new(s6, r.gateway6) {
                    Ok(s) => {
                        g.spaces6.insert(r.id.clone(), s);
                    }
                    Err(e) => tracing::error!("network {}: {e}", r.name),
                }
            }
        }
        g.nets = recs;
        g.loaded = true;
        Ok(())
    }

    fn default_bridge_record(
        &self,
        old: Option<&NetworkRecord>,
        others: &HashMap<String, NetworkRecord>,
    ) -> Result<NetworkRecord> {
        let cfg = &self.cfg;
        let device = DEFAULT_BRIDGE_DEVICE.to_string();
        let (subnet, gateway) = match &cfg.bip {
            Some(bip) => {
                let n: Ipv4Net = bip.parse().map_err(|_| {
                    Error::Invalid(format!("invalid bip {bip:?}: an IPv4 address with a prefix length, e.g. 172.17.0.1/16"))
                })?;
                (n.trunc(), Some(n.addr()))
            }
            None => match old.and_then(|o| o.subnet) {
                // Keep the subnet it had (containers may still have addresses in it).
                Some(s) if old.map(|o| o.bridge.as_str()) == Some(device.as_str()) => {
                    (s, old.and_then(|o| o.gateway))
                }
                _ => {
                    let taken: Vec<Ipv4Net> = others.values().filter_map(|r| r.subnet).collect();
                    let routes = self.host_routes(Some(&device));
                    (
                        ipam::choose_subnet(&self.address_pools()?, &taken, &routes)
                            .map_err(ipam_error)?,
                        None,
                    )
                }
            },
        };
        let space = Space::new(subnet, gateway, None).map_err(ipam_error)?;
        let fixed = match &cfg.fixed_cidr {
            Some(f) => Some(
                f.parse::<Ipv4Net>()
                    .map_err(|_| Error::Invalid(format!("invalid fixed-cidr {f:?}")))?,
            ),
            None => None,
        };
        let (subnet6, gateway6) = if cfg.ipv6 == Some(true) {
            let net6: Ipv6Net = match &cfg.fixed_cidr_v6 {
                Some(f) => f
                    .parse()
                    .map_err(|_| Error::Invalid(format!("invalid fixed-cidr-v6 {f:?}")))?,
                None => match old.and_then(|o| o.subnet6) {
                    Some(s) => s,
                    None => {
                        let taken: Vec<Ipv6Net> =
                            others.values().filter_map(|r| r.subnet6).collect();
                        ipam::random_ula(&taken, rand::random::<u64>)
                    }
                },
            };
            let sp = Space6::new(net6, None).map_err(ipam_error)?;
            (Some(sp.subnet), Some(sp.gateway))
        } else {
            (None, None)
        };
        let mtu = cfg.mtu.unwrap_or(1500);
        let icc = cfg.icc.unwrap_or(true);
        let masq = cfg.ip_masq.unwrap_or(true);
        let host_ip = cfg.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let options: BTreeMap<String, String> = [
            (OPT_DEFAULT, "true".to_string()),
            (OPT_ICC, icc.to_string()),
            (OPT_MASQ, masq.to_string()),
            (OPT_HOST_IPV4, host_ip.to_string()),
            (OPT_BRIDGE_NAME, device.clone()),
            (OPT_MTU, mtu.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Ok(NetworkRecord {
            id: old
                .map(|o| o.id.clone())
                .unwrap_or_else(crate::names::new_id),
            name: DEFAULT_BRIDGE.into(),
            owner: String::new(),
            driver: "bridge".into(),
            created: old
                .map(|o| o.created.clone())
                .unwrap_or_else(crate::containers::now_rfc3339),
            internal: false,
            attachable: false,
            subnet: Some(space.subnet),
            gateway: Some(space.gateway),
            ip_range: fixed,
            ipam_given: true,
            ipam_options: BTreeMap::new(),
            options,
            labels: BTreeMap::new(),
            bridge: device,
            mtu,
            icc,
            masquerade: masq,
            host_ip: Some(host_ip),
            builtin: true,
            subnet6,
            gateway6,
            aux: BTreeMap::new(),
        })
    }

    fn address_pools(&self) -> Result<Vec<ipam::AddressPool>> {
        if self.cfg.default_address_pools.is_empty() {
            return Ok(ipam::default_pools());
        }
        self.cfg
            .default_address_pools
            .iter()
            .map(|p| {
                let base: Ipv4Net = p.base.parse().map_err(|_| {
                    Error::Invalid(format!("default-address-pools: invalid base {:?}", p.base))
                })?;
                if p.size < base.prefix_len() || p.size > 30 {
                    return Err(Error::Invalid(format!(
                        "default-address-pools: size {} does not fit base {}",
                        p.size, p.base
                    )));
                }
                Ok(ipam::AddressPool { base, size: p.size })
            })
            .collect()
    }

    /// The host's IPv4 routes, except those of the device `skip` (a bridge of our own being
    /// re-made) and of berth's own bridges.
    fn host_routes(&self, skip: Option<&str>) -> Vec<Ipv4Net> {
        let text = std::fs::read_to_string("/proc/net/route").unwrap_or_default();
        let ours: HashSet<String> = {
            let g = self.net_lock();
            g.nets.values().map(|r| r.bridge.clone()).collect()
        };
        let filtered: String = text
            .lines()
            .enumerate()
            .filter(|(i, l)| {
                *i == 0 || {
                    let dev = l.split_whitespace().next().unwrap_or_default();
                    Some(dev) != skip && !ours.contains(dev)
                }
            })
            .map(|(_, l)| format!("{l}\n"))
            .collect();
        ipam::parse_routes(&filtered)
    }

    pub(crate) fn net_host(&self) -> Result<&berth_net::Host> {
        if let Some(h) = self.net_host.get() {
            return Ok(h);
        }
        let h = berth_net::Host::new(berth_net::TABLE, &self.paths.exec_root.join("net"))
            .map_err(|e| net_error("setting up berth's firewall table", e))?;
        let _ = self.net_host.set(h);
        self.net_host
            .get()
            .ok_or_else(|| Error::Internal("the network host is not set up".into()))
    }

    fn put_network(&self, r: &NetworkRecord) -> Result<()> {
        let json = serde_json::to_vec(r).map_err(|e| Error::internal("encoding", e))?;
        self.db.put_network(&r.id, &json)
    }

    fn network_event(&self, r: &NetworkRecord, action: &str, extra: &[(&str, String)]) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".into(), r.name.clone());
        attrs.insert("type".into(), r.driver.clone());
        for (k, v) in extra {
            attrs.insert(k.to_string(), v.clone());
        }
        self.events
            .emit(&r.owner, Event::new("network", action, &r.id, attrs));
    }

    /// The network `name_or_id` names (exact ID, exact name, unique ID prefix), if visible.
    pub fn network_lookup(&self, who: &Subject, name_or_id: &str) -> Result<NetworkRecord> {
        let g = self.net_lock();
        let visible = |r: &&NetworkRecord| r.builtin || self.policy.visible(who, &r.owner);
        let nf = || Error::NotFound(format!("network {name_or_id} not found"));
        if name_or_id.is_empty() {
            return Err(nf());
        }
        if let Some(r) = g.nets.get(name_or_id).filter(visible) {
            return Ok(r.clone());
        }
        if let Some(r) = g
            .nets
            .values()
            .filter(visible)
            .find(|r| r.name == name_or_id)
        {
            return Ok(r.clone());
        }
        let m: Vec<&NetworkRecord> = g
            .nets
            .values()
            .filter(visible)
            .filter(|r| r.id.starts_with(name_or_id))
            .collect();
        match m.len() {
            1 => Ok(m[0].clone()),
            0 => Err(nf()),
            _ => Err(Error::Invalid(format!(
                "network {name_or_id} is ambiguous ({} matches found based on ID prefix)",
                m.len()
            ))),
        }
    }

    /// `POST /networks/create` (blocking).
    pub fn network_create(&self, who: &Subject, req: NetworkCreateRequest) -> Result<Value> {
        self.authorize(who, Action::Write, None)?;
        let name = req.name.trim().to_string();
        if name.is_empty() {
            return Err(Error::Invalid("network name cannot be empty".into()));
        }
        // dockerd takes any name (spaces too); control characters and `/` (a name that
        // could not be used in a URL) are refused.
        if name.chars().any(|c| c.is_control() || c == '/') || name.len() > 255 {
            return Err(Error::Invalid(format!(
                "invalid network name {name:?}: no control characters or '/', at most 255 bytes"
            )));
        }
        let driver = req.driver.clone().filter(|d| !d.is_empty());
        let driver = driver.as_deref().unwrap_or("bridge");
        match driver {
            "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{driver}\" network is allowed"
                )));
            }
            d => {
                return Err(Error::NotFound(format!(
                    "could not find plugin {d} in v1 plugin registry: plugin not found"
                )));
            }
        }
        if req
            .scope
            .as_deref()
            .is_some_and(|s| !s.is_empty() && s != "local")
        {
            return Err(Error::Invalid(format!(
                "scope {:?} is not supported: only local networks exist here",
                req.scope.as_deref().unwrap_or_default()
            )));
        }
        if req.ingress == Some(true) {
            return Err(Error::Unavailable(
                "This node is not a swarm manager. Ingress networks need a swarm.".into(),
            ));
        }
        if req.config_only == Some(true) || req.config_from.is_some() {
            return Err(Error::NotImplemented(
                "config-only networks are not supported".into(),
            ));
        }
        if req.enable_ipv4 == Some(false) {
            return Err(Error::Invalid(
                "IPv4 cannot be disabled on a bridge network here".into(),
            ));
        }
        let ipam = req.ipam.clone().unwrap_or_default();
        if let Some(d) = ipam
            .driver
            .as_deref()
            .filter(|d| !d.is_empty() && *d != "default")
        {
            return Err(Error::NotFound(format!(
                "could not find plugin {d} in v1 plugin registry: plugin not found"
            )));
        }
        let configs = ipam.config.clone().unwrap_or_default();
        let v4: Vec<_> = configs
            .iter()
            .filter(|c| c.subnet.as_deref().is_none_or(|s| !s.contains(':')))
            .collect();
        let v6: Vec<_> = configs
            .iter()
            .filter(|c| c.subnet.as_deref().is_some_and(|s| s.contains(':')))
            .collect();
        if v6.len() > 1 {
            return Err(Error::NotImplemented(
                "one IPv6 subnet per network is supported".into(),
            ));
        }
        // An IPv6 subnet given means IPv6 on (as dockerd ≥ 27 reads it).
        let want_v6 = req.enable_ipv6 == Some(true) || !v6.is_empty();
        if v4.len() > 1 {
            return Err(Error::NotImplemented(
                "one IPv4 subnet per network is supported".into(),
            ));
        }
        let options: BTreeMap<String, String> = req
            .options
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let opt_bool = |k: &str, default: bool| -> Result<bool> {
            match options.get(k).map(|s| s.as_str()) {
                None => Ok(default),
                Some("true" | "1") => Ok(true),
                Some("false" | "0") => Ok(false),
                Some(v) => Err(Error::Invalid(format!(
                    "invalid value {v:?} for option {k}"
                ))),
            }
        };
        let icc = opt_bool(OPT_ICC, true)?;
        let masquerade = opt_bool(OPT_MASQ, true)?;
        let mtu = match options.get(OPT_MTU) {
            Some(m) => m
                .parse::<u32>()
                .ok()
                .filter(|m| (68..=65535).contains(m))
                .ok_or_else(|| Error::Invalid(format!("invalid MTU {m:?}: 68 to 65535")))?,
            None => self.cfg.mtu.unwrap_or(1500),
        };
        let host_ip = match options.get(OPT_HOST_IPV4) {
            Some(v) => Some(
                v.parse::<IpAddr>()
                    .map_err(|_| Error::Invalid(format!("invalid host binding address {v:?}")))?,
            ),
            None => None,
        };
        let id = crate::names::new_id();
        let bridge = match options.get(OPT_BRIDGE_NAME) {
            Some(b) => {
                if b.is_empty()
                    || b.len() > 15
                    || b.contains(['/', ' ', ':'])
                    || b == "."
                    || b == ".."
                {
                    return Err(Error::Invalid(format!("invalid bridge name {b:?}")));
                }
                b.clone()
            }
            None => format!("{BRIDGE_PREFIX}{}", &id[..12]),
        };
        let parse4 = |what: &str, s: &str| -> Result<Ipv4Net> {
            s.parse::<Ipv4Net>()
                .or_else(|_| {
                    s.parse::<Ipv4Addr>()
                        .map(|a| Ipv4Net::new(a, 32).unwrap_or_default())
                })
                .map_err(|_| Error::Invalid(format!("invalid {what} {s:?}: not an IPv4 CIDR")))
        };
        let g = self.net_lock();
        if g.nets.values().any(|r| r.name == name) {
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        if g.nets
            .values()
            .any(|r| r.bridge == bridge && !bridge.is_empty())
        {
            return Err(Error::Conflict(format!(
                "bridge name {bridge} is used by another network"
            )));
        }
        let taken: Vec<Ipv4Net> = g.nets.values().filter_map(|r| r.subnet).collect();
        let taken6: Vec<Ipv6Net> = g.nets.values().filter_map(|r| r.subnet6).collect();
        drop(g);
        let space6 = if want_v6 {
            let (net6, gw6) = match v6.first() {
                Some(c) => {
                    let sub = c.subnet.as_deref().unwrap_or_default();
                    let net6: Ipv6Net = sub.parse().map_err(|_| {
                        Error::Invalid(format!("invalid subnet {sub:?}: not an IPv6 CIDR"))
                    })?;
                    if taken6
                        .iter()
                        .any(|t| t.contains(&net6.network()) || net6.contains(&t.network()))
                    {
                        return Err(ipam_error(ipam::Error::Overlap));
                    }
                    let gw = match c.gateway.as_deref().filter(|s| !s.is_empty()) {
                        Some(g) => Some(g.parse::<Ipv6Addr>().map_err(|_| {
                            Error::Invalid(format!("invalid gateway {g:?}: not an IPv6 address"))
                        })?),
                        None => None,
                    };
                    (net6, gw)
                }
                None => (ipam::random_ula(&taken6, rand::random::<u64>), None),
            };
            Some(Space6::new(net6, gw6).map_err(ipam_error)?)
        } else {
            None
        };
        let (subnet, gateway, range, given) = match v4.first() {
            Some(c) if c.subnet.as_deref().is_some_and(|s| !s.is_empty()) => {
                let subnet = parse4("subnet", c.subnet.as_deref().unwrap_or_default())?;
                ipam::check_subnet(&subnet, &taken).map_err(ipam_error)?;
                let gw = match c.gateway.as_deref().filter(|s| !s.is_empty()) {
                    Some(s) => Some(s.parse::<Ipv4Addr>().map_err(|_| {
                        Error::Invalid(format!("invalid gateway {s:?}: not an IPv4 address"))
                    })?),
                    None => None,
                };
                let range = match c.ip_range.as_deref().filter(|s| !s.is_empty()) {
                    Some(s) => Some(parse4("ip-range", s)?),
                    None => None,
                };
                (subnet, gw, range, true)
            }
            Some(c) if c.gateway.is_some() || c.ip_range.is_some() => {
                return Err(Error::Invalid(
                    "a gateway or ip-range needs a subnet (--subnet)".into(),
                ));
            }
            _ => {
                let routes = self.host_routes(None);
                let s = ipam::choose_subnet(&self.address_pools()?, &taken, &routes)
                    .map_err(ipam_error)?;
                (s, None, None, false)
            }
        };
        let mut space = Space::new(subnet, gateway, range).map_err(ipam_error)?;
        let mut aux = BTreeMap::new();
        for (k, v) in v4
            .first()
            .and_then(|c| c.auxiliary_addresses.clone())
            .unwrap_or_default()
        {
            let ip: Ipv4Addr = v
                .parse()
                .map_err(|_| Error::Invalid(format!("invalid auxiliary address {k}={v}")))?;
            space.reserve(ip).map_err(ipam_error)?;
            aux.insert(k, ip);
        }
        let rec = NetworkRecord {
            id: id.clone(),
            name: name.clone(),
            owner: who.tenant.clone(),
            driver: "bridge".into(),
            created: crate::containers::now_rfc3339(),
            internal: req.internal.unwrap_or(false),
            attachable: req.attachable.unwrap_or(false),
            subnet: Some(space.subnet),
            gateway: Some(space.gateway),
            ip_range: range,
            ipam_given: given,
            ipam_options: ipam
                .options
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            options,
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            bridge,
            mtu,
            icc,
            masquerade,
            host_ip,
            builtin: false,
            subnet6: space6.as_ref().map(|s| s.subnet),
            gateway6: space6.as_ref().map(|s| s.gateway),
            aux,
        };
        // Made on the host first, then recorded: a crash in between leaves a bridge that
        // the next start's reconcile removes (its name is ours, no record names it).
        let host = self.net_host()?;
        host.ensure_bridge(&bridge_spec(&rec))
            .map_err(|e| net_error(format!("creating network {name}"), e))?;
        let mut g = self.net_lock();
        if g.nets.values().any(|r| r.name == name) {
            drop(g);
            let _ = host.remove_bridge(&rec.bridge);
            return Err(Error::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        if let Err(e) = self.put_network(&rec) {
            drop(g);
            let _ = host.remove_bridge(&rec.bridge);
            return Err(e);
        }
        g.spaces.insert(id.clone(), space);
        if let Some(s6) = space6 {
            g.spaces6.insert(id.clone(), s6);
        }
        g.nets.insert(id.clone(), rec.clone());
        drop(g);
        self.network_event(&rec, "create", &[]);
        Ok(json!({"Id": id, "Warning": ""}))
    }

    /// The containers attached to a network (ID → record), visible to `who` or all.
    fn network_users(&self, net_id: &str) -> Vec<Container> {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        map.values()
            .map(|h| h.get())
            .filter(|c| c.networks.values().any(|e| e.network_id == net_id))
            .collect()
    }

    /// A network as inspect shows it.
    pub fn network_json(&self, r: &NetworkRecord, with_containers: bool) -> Value {
        let mut containers = serde_json::Map::new();
        if with_containers {
            for c in self.network_users(&r.id) {
                let Some(ep) = c.networks.values().find(|e| e.network_id == r.id) else {
                    continue;
                };
                if ep.endpoint_id.is_empty() {
                    continue; // attached, not running
                }
                containers.insert(
                    c.id.clone(),
                    json!({
                        "Name": c.name,
                        "EndpointID": ep.endpoint_id,
                        "MacAddress": ep.mac,
                        "IPv4Address": ep.ip.map(|ip| format!("{ip}/{}", ep.prefix)).unwrap_or_default(),
                        "IPv6Address": ep.ip6.map(|ip| format!("{ip}/{}", ep.prefix6)).unwrap_or_default(),
                    }),
                );
            }
        }
        let config = if r.is_bridge() {
            let mut c = serde_json::Map::new();
            if let Some(s) = r.subnet {
                c.insert("Subnet".into(), json!(s.to_string()));
            }
            if let Some(rg) = r.ip_range {
                c.insert("IPRange".into(), json!(rg.to_string()));
            }
            if let Some(gw) = r.gateway {
                c.insert("Gateway".into(), json!(gw.to_string()));
            }
            if !r.aux.is_empty() {
                c.insert("AuxiliaryAddresses".into(), json!(r.aux));
            }
            let mut v = vec![Value::Object(c)];
            if let Some(s6) = r.subnet6 {
                v.push(json!({"Subnet": s6.to_string(), "Gateway": r.gateway6.map(|g| g.to_string()).unwrap_or_default()}));
            }
            Value::Array(v)
        } else {
            json!([])
        };
        json!({
            "Name": r.name,
            "Id": r.id,
            "Created": r.created,
            "Scope": "local",
            "Driver": r.driver,
            "EnableIPv4": r.is_bridge(),
            "EnableIPv6": r.subnet6.is_some(),
            "IPAM": {
                "Driver": "default",
                "Options": if r.ipam_options.is_empty() { Value::Null } else { json!(r.ipam_options) },
                "Config": config,
            },
            "Internal": r.internal,
            "Attachable": r.attachable,
            "Ingress": false,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": false,
            "Containers": containers,
            "Options": r.options,
            "Labels": r.labels,
        })
    }

    /// `GET /networks` (blocking).
    pub fn network_list(
        &self,
        who: &Subject,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Value> {
        self.authorize(who, Action::Read, None)?;
        for k in filters.keys() {
            if !matches!(
                k.as_str(),
                "dangling" | "driver" | "id" | "label" | "name" | "scope" | "type"
            ) {
                return Err(Error::Invalid(format!("invalid filter '{k}'")));
            }
        }
        let mut recs: Vec<NetworkRecord> = {
            let g = self.net_lock();
            g.nets
                .values()
                .filter(|r| r.builtin || self.policy.visible(who, &r.owner))
                .cloned()
                .collect()
        };
        recs.sort_by(|a, b| a.name.cmp(&b.name));
        let mut out = Vec::new();
        for r in recs {
            if !self.network_matches(&r, filters)? {
                continue;
            }
            out.push(self.network_json(&r, false));
        }
        Ok(Value::Array(out))
    }

    fn network_matches(&self, r: &NetworkRecord, f: &HashMap<String, Vec<String>>) -> Result<bool> {
        let any = |k: &str, pred: &dyn Fn(&str) -> bool| -> bool {
            f.get(k)
                .filter(|v| !v.is_empty())
                .is_none_or(|v| v.iter().any(|x| pred(x)))
        };
        if !any("driver", &|d| r.driver == d) {
            return Ok(false);
        }
        if !any("id", &|p| r.id.starts_with(p)) {
            return Ok(false);
        }
        if !any("name", &|p| name_matches(&r.name, p)) {
            return Ok(false);
        }
        if !any("scope", &|s| s == "local") {
            return Ok(false);
        }
        for t in f.get("type").into_iter().flatten() {
            match t.as_str() {
                "custom" if r.builtin => return Ok(false),
                "builtin" if !r.builtin => return Ok(false),
                "custom" | "builtin" => {}
                _ => return Err(Error::Invalid(format!("invalid filter: 'type'='{t}'"))),
            }
        }
        if let Some(v) = f.get("label") {
            if !v.iter().all(|l| labels_match(&r.labels, l)) {
                return Ok(false);
            }
        }
        if let Some(d) = f.get("dangling").and_then(|v| v.last()) {
            let d = match d.to_ascii_lowercase().as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => return Err(Error::Invalid(format!("invalid filter 'dangling={d}'"))),
            };
            let dangling = !r.builtin && self.network_users(&r.id).is_empty();
            if dangling != d {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// `GET /networks/{id}` (blocking).
    pub fn network_inspect(&self, who: &Subject, name: &str) -> Result<Value> {
        let r = self.network_lookup(who, name)?;
        Ok(self.network_json(&r, true))
    }

    /// `DELETE /networks/{id}` (blocking).
    pub fn network_remove(&self, who: &Subject, name: &str) -> Result<()> {
        let r = self.network_lookup(who, name)?;
        if r.builtin {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                r.name
            )));
        }
        self.authorize(who, Action::Write, Some(&r.owner))?;
        let users = self.network_users(&r.id);
        if !users.is_empty() {
            let list: Vec<String> = users
                .iter()
                .map(|c| format!("name:{:?} id:{:?}", c.name, &c.id[..12]))
                .collect();
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} has active endpoints ({})",
                r.name,
                list.join(", ")
            )));
        }
        self.remove_network_record(&r)
    }

    fn remove_network_record(&self, r: &NetworkRecord) -> Result<()> {
        {
            let mut g = self.net_lock();
            // Checked again under the lock: a container attached meanwhile keeps it.
            self.db.delete_network(&r.id)?;
            g.nets.remove(&r.id);
            g.spaces.remove(&r.id);
            g.spaces6.remove(&r.id);
        }
        let host = self.net_host()?;
        if let Err(e) = host.remove_bridge(&r.bridge) {
            tracing::warn!("removing the bridge of network {}: {e}", r.name);
        }
        // The last bridge network gone (no default bridge): nothing of berth's is left.
        if !self.net_lock().nets.values().any(|n| n.is_bridge()) {
            if let Err(e) = host.clear() {
                tracing::warn!("clearing berth's networking from the host: {e}");
            }
        }
        self.network_event(r, "destroy", &[]);
        Ok(())
    }

    /// `POST /networks/prune` (blocking): user-defined networks no container uses.
    pub fn network_prune(
        &self,
        who: &Subject,
        filters: &HashMap<String, Vec<String>>,
    ) -> Result<Value> {
        self.authorize(who, Action::Write, None)?;
        for k in filters.keys() {
            if !matches!(k.as_str(), "until" | "label" | "label!") {
                return Err(Error::Invalid(format!("invalid filter '{k}'")));
            }
        }
        let until = match filters.get("until").and_then(|v| v.last()) {
            Some(u) => Some(until_filter(u)?),
            None => None,
        };
        let recs: Vec<NetworkRecord> = {
            let g = self.net_lock();
            g.nets
                .values()
                .filter(|r| !r.builtin && self.policy.visible(who, &r.owner))
                .cloned()
                .collect()
        };
        let mut deleted = Vec::new();
        for r in recs {
            if let Some(u) = until {
                if rfc3339_seconds(&r.created).unwrap_or(0) >= u {
                    continue;
                }
            }
            if let Some(v) = filters.get("label") {
                if !v.iter().all(|l| labels_match(&r.labels, l)) {
                    continue;
                }
            }
            if let Some(v) = filters.get("label!") {
                if v.iter().any(|l| labels_match(&r.labels, l)) {
                    continue;
                }
            }
            if !self.network_users(&r.id).is_empty() {
                continue;
            }
            if self.remove_network_record(&r).is_ok() {
                deleted.push(r.name.clone());
            }
        }
        deleted.sort();
        Ok(
            json!({"NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }}),
        )
    }

    /// The endpoints a container gets at create from its NetworkMode and the request's
    /// EndpointsConfig (checked: the networks exist, the addresses are valid).
    pub(crate) fn create_endpoints(
        &self,
        who: &Subject,
        mode: Option<&str>,
        configs: &HashMap<String, EndpointSettings>,
    ) -> Result<BTreeMap<String, Endpoint>> {
        let mut out = BTreeMap::new();
        let primary = mode_network(mode);
        if primary.is_none() {
            let m = mode.unwrap_or_default();
            // The docker CLI names the network it was not given `default`.
            if let Some(other) = configs
                .keys()
                .find(|k| k.as_str() != m && k.as_str() != "default")
            {
                if !(m == "none" && other == "none") {
                    return Err(Error::Invalid(format!(
                        "container cannot be connected to network {other} with network mode {m}"
                    )));
                }
            }
            return Ok(out);
        }
        let primary = primary.unwrap_or(DEFAULT_BRIDGE);
        let mut names: Vec<&str> = vec![primary];
        for k in configs.keys() {
            if mode_network(Some(k)) != Some(primary) && k != primary {
                names.push(k);
            }
        }
        for n in names {
            let r = match self.network_lookup(who, n) {
                Ok(r) => r,
                Err(Error::NotFound(_)) if n == DEFAULT_BRIDGE => {
                    return Err(Error::NotFound(
                        "network bridge not found: the default bridge is disabled (daemon.json \"bridge\": \"none\")".into(),
                    ));
                }
                Err(e) => return Err(e),
            };
            if r.driver != "bridge" {
                return Err(Error::Invalid(format!(
                    "container cannot be connected to network {} with other networks",
                    r.name
                )));
            }
            let req = configs
                .get(n)
                .or_else(|| configs.get(&r.id))
                .or_else(|| {
                    if n == primary {
                        mode.and_then(|m| configs.get(m))
                            .or_else(|| configs.get("default"))
                    } else {
                        None
                    }
                })
                .cloned()
                .unwrap_or_default();
            self.check_endpoint_request(&r, &req)?;
            out.insert(
                r.name.clone(),
                Endpoint {
                    network_id: r.id.clone(),
                    requested: req,
                    ..Default::default()
                },
            );
        }
        Ok(out)
    }

    fn check_endpoint_request(&self, r: &NetworkRecord, req: &EndpointSettings) -> Result<()> {
        if let Some(ipc) = &req.ipam_config {
            if let Some(ip) = ipc.ipv4_address.as_deref().filter(|s| !s.is_empty()) {
                let ip: Ipv4Addr = ip
                    .parse()
                    .map_err(|_| Error::Invalid(format!("invalid IPv4 address: {ip}")))?;
                if r.builtin {
                    return Err(Error::Invalid(
                        "user specified IP address is supported on user defined networks only"
                            .into(),
                    ));
                }
                if !r.ipam_given {
                    return Err(Error::Invalid(
                        "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
                    ));
                }
                if let Some(s) = r.subnet {
                    if !s.contains(&ip) {
                        return Err(Error::Invalid(format!(
                            "no configured subnet or ip-range contain the IP address {ip}"
                        )));
                    }
                }
            }
            if let Some(ip6) = ipc.ipv6_address.as_deref().filter(|s| !s.is_empty()) {
                let ip6: Ipv6Addr = ip6
                    .parse()
                    .map_err(|_| Error::Invalid(format!("invalid IPv6 address: {ip6}")))?;
                match r.subnet6 {
                    None => {
                        return Err(Error::Invalid(format!(
                            "network {} has no IPv6: an IPv6 address cannot be given",
                            r.name
                        )));
                    }
                    Some(s6) if !s6.contains(&ip6) => {
                        return Err(Error::Invalid(format!(
                            "no configured subnet or ip-range contain the IP address {ip6}"
                        )));
                    }
                    _ => {}
                }
            }
        }
        if let Some(m) = req.mac_address.as_deref().filter(|s| !s.is_empty()) {
            parse_mac(m)?;
        }
        if r.builtin && req.aliases.as_ref().is_some_and(|a| !a.is_empty()) {
            return Err(Error::Invalid(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The path of a container's network namespace.
    pub(crate) fn sandbox_path(&self, id: &str) -> PathBuf {
        self.paths
            .exec_root
            .join("netns")
            .join(&id[..12.min(id.len())])
    }

    /// Set up a starting container's network (blocking): its namespace, an interface per
    /// network, its published ports, its names. The record gains the addresses. On error
    /// nothing is left.
    pub(crate) fn net_setup(&self, c: &mut Container) -> Result<()> {
        if c.networks.is_empty() || mode_network(c.host_config.network_mode.as_deref()).is_none() {
            return Ok(());
        }
        let host = self.net_host()?;
        crate::private_dir(&self.paths.exec_root.join("netns"))?;
        let path = self.sandbox_path(&c.id);
        let _ = berth_net::Host::sandbox_remove(&path);
        c.sandbox = Some(path.to_string_lossy().into_owned());
        let primary = mode_network(c.host_config.network_mode.as_deref()).unwrap_or(DEFAULT_BRIDGE);
        let mut order: Vec<String> = c.networks.keys().cloned().collect();
        order.sort_by_key(|n| {
            (
                n != primary && !(primary == DEFAULT_BRIDGE && n == DEFAULT_BRIDGE),
                n.clone(),
            )
        });
        let result = (|| -> Result<()> {
            // The addresses first (in memory): the ports are published (an nft process,
            // ~3 ms) while the namespace and its interfaces are made (~1.5 ms).
            let mut attaches = Vec::new();
            let mut gw_done = false;
            for (i, name) in order.iter().enumerate() {
                attaches.push(self.allocate_endpoint(c, name, &format!("eth{i}"), &mut gw_done)?);
            }
            let snapshot: &Container = c;
            let (published, plumbed) = std::thread::scope(|s| {
                let publisher = s.spawn(|| self.publish_ports(snapshot));
                let plumbed = (|| -> Result<()> {
                    let sb = host
                        .sandbox_create(&path)
                        .map_err(|e| net_error("creating the network namespace", e))?;
                    for a in &attaches {
                        host.attach(&sb, a).map_err(|e| {
                            net_error(format!("attaching to bridge {}", a.bridge), e)
                        })?;
                    }
                    Ok(())
                })();
                let published = publisher
                    .join()
                    .unwrap_or_else(|_| Err(Error::Internal("publishing ports failed".into())));
                (published, plumbed)
            });
            c.ports = published?;
            trim_after(c.ports.len());
            plumbed
        })();
        if let Err(e) = result {
            self.net_teardown(c);
            return Err(e);
        }
        self.register_names(c);
        Ok(())
    }

    /// Connect a running container's namespace to one more network.
    fn attach_endpoint(
        &self,
        host: &berth_net::Host,
        sb: &berth_net::Sandbox,
        c: &mut Container,
        name: &str,
        ifname: &str,
        gw_done: &mut bool,
    ) -> Result<()> {
        let attach = self.allocate_endpoint(c, name, ifname, gw_done)?;
        host.attach(sb, &attach)
            .map_err(|e| net_error(format!("attaching to network {name}"), e))
    }

    /// An endpoint's addresses, MAC and veth name, recorded in `c` (so a failure later is
    /// undone from the record): what `Host::attach` makes of it.
    fn allocate_endpoint(
        &self,
        c: &mut Container,
        name: &str,
        ifname: &str,
        gw_done: &mut bool,
    ) -> Result<berth_net::Attach> {
        let ep = c
            .networks
            .get(name)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("network {name} not found")))?;
        let (rec, ip) = {
            let mut g = self.net_lock();
            let rec = g
                .nets
                .get(&ep.network_id)
                .cloned()
                .ok_or_else(|| Error::NotFound(format!("network {name} not found")))?;
            let space = g
                .spaces
                .get_mut(&rec.id)
                .ok_or_else(|| Error::Internal(format!("network {name} has no address space")))?;
            let asked = ep
                .requested
                .ipam_config
                .as_ref()
                .and_then(|i| i.ipv4_address.as_deref())
                .filter(|s| !s.is_empty())
                .map(|s| s.parse::<Ipv4Addr>())
                .transpose()
                .map_err(|_| Error::Invalid("invalid IPv4 address".into()))?;
            let ip = match asked {
                Some(ip) => {
                    space.reserve(ip).map_err(|e| match e {
                        ipam::Error::InUse => Error::Forbidden(format!(
                            "Address already in use: {ip} on network {name}"
                        )),
                        e => ipam_error(e),
                    })?;
                    ip
                }
                None => space.allocate().map_err(ipam_error)?,
            };
            (rec, ip)
        };
        // Recorded at once: whatever fails from here on is undone from the record.
        if let Some(e) = c.networks.get_mut(name) {
            e.ip = Some(ip);
        }
        let ip6 = match rec.subnet6 {
            None => None,
            Some(s6) => {
                let asked = ep
                    .requested
                    .ipam_config
                    .as_ref()
                    .and_then(|i| i.ipv6_address.as_deref())
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse::<Ipv6Addr>())
                    .transpose()
                    .map_err(|_| Error::Invalid("invalid IPv6 address".into()))?;
                let mut g = self.net_lock();
                let space = g.spaces6.get_mut(&rec.id).ok_or_else(|| {
                    Error::Internal(format!("network {name} has no IPv6 address space"))
                })?;
                let ip6 = match asked {
                    Some(a) => {
                        space.reserve(a).map_err(|e| match e {
                            ipam::Error::InUse => Error::Forbidden(format!(
                                "Address already in use: {a} on network {name}"
                            )),
                            e => ipam_error(e),
                        })?;
                        a
                    }
                    None => space.allocate().map_err(ipam_error)?,
                };
                drop(g);
                if let Some(e) = c.networks.get_mut(name) {
                    e.ip6 = Some(ip6);
                    e.prefix6 = s6.prefix_len();
                    e.gateway6 = rec.gateway6;
                }
                Some((ip6, s6.prefix_len(), rec.gateway6))
            }
        };
        let mac = match ep
            .requested
            .mac_address
            .as_deref()
            .filter(|s| !s.is_empty())
        {
            Some(m) => parse_mac(m)?,
            None => berth_net::mac_from_ipv4(ip),
        };
        let veth = new_veth_name();
        let prefix = rec.subnet.map(|s| s.prefix_len()).unwrap_or(16);
        let default_route = !rec.internal && !*gw_done;
        let attach = berth_net::Attach {
            bridge: rec.bridge.clone(),
            host_veth: veth.clone(),
            ifname: ifname.to_string(),
            ip,
            prefix,
            gateway: rec.gateway,
            default_route,
            mac,
            mtu: rec.mtu,
            v6: ip6,
        };
        // Recorded before it is made: a failure below is undone from the record.
        if let Some(e) = c.networks.get_mut(name) {
            e.endpoint_id = new_endpoint_id();
            e.ip = Some(ip);
            e.prefix = prefix;
            e.gateway = rec.gateway;
            e.mac = mac_string(mac);
            e.veth = veth;
            e.ifname = ifname.to_string();
        }
        if default_route {
            *gw_done = true;
        }
        Ok(attach)
    }

    /// The names a container answers to on a network (container name, short ID, aliases).
    fn dns_names(c: &Container, ep: &Endpoint) -> Vec<String> {
        let mut v = vec![c.name.to_ascii_lowercase(), c.id[..12].to_string()];
        for a in ep.requested.aliases.iter().flatten() {
            let a = a.to_ascii_lowercase();
            if !v.contains(&a) {
                v.push(a);
            }
        }
        v
    }

    /// The DNSNames inspect shows.
    pub(crate) fn dns_names_json(c: &Container, ep: &Endpoint, builtin: bool) -> Value {
        if builtin {
            return Value::Null;
        }
        json!(Self::dns_names(c, ep))
    }

    fn register_names(&self, c: &Container) {
        let g = self.net_lock();
        let mut user_nets = Vec::new();
        for ep in c.networks.values() {
            let Some(r) = g.nets.get(&ep.network_id) else {
                continue;
            };
            if !r.user_defined() {
                continue;
            }
            let mut ips: Vec<IpAddr> = ep.ip.map(IpAddr::V4).into_iter().collect();
            ips.extend(ep.ip6.map(IpAddr::V6));
            if !ips.is_empty() {
                self.dns_names
                    .register(&r.id, &c.id, Self::dns_names(c, ep), ips);
            }
            user_nets.push(r.id.clone());
        }
        drop(g);
        let upstreams = self.upstreams(c);
        // Links on user-defined networks are names for this container only (dockerd's
        // legacy links there): the container's own and each endpoint's.
        let mut links = Vec::new();
        let user_mode = c.host_config.network_mode.as_deref() != Some(DEFAULT_BRIDGE);
        let host_links = c.host_config.links.iter().flatten().filter(|_| user_mode);
        for l in host_links.chain(
            c.networks
                .values()
                .flat_map(|e| e.requested.links.iter().flatten()),
        ) {
            if let Ok((target, alias)) = parse_link(l) {
                links.push((alias.to_ascii_lowercase(), target.to_ascii_lowercase()));
            }
        }
        self.dns_names.set_asker(
            &c.id,
            Asker {
                nets: user_nets,
                upstreams,
                links,
            },
        );
    }

    /// Where the embedded DNS forwards for a container: its --dns, daemon.json's dns, else
    /// the host's resolvers.
    fn upstreams(&self, c: &Container) -> Vec<SocketAddr> {
        let given: Vec<String> = c
            .host_config
            .dns
            .clone()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| self.cfg.dns.clone());
        let list: Vec<IpAddr> = if given.is_empty() {
            let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
            text.lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|a| a.trim().parse().ok())
                .collect()
        } else {
            given.iter().filter_map(|a| a.parse().ok()).collect()
        };
        list.into_iter().map(|a| SocketAddr::new(a, 53)).collect()
    }

    /// Does a container use the embedded DNS (a user-defined network)?
    pub(crate) fn uses_embedded_dns(&self, c: &Container) -> bool {
        let g = self.net_lock();
        c.networks
            .values()
            .any(|e| g.nets.get(&e.network_id).is_some_and(|r| r.user_defined()))
    }

    /// Start serving the embedded DNS in a running container's namespace (blocking; no-op
    /// without a user-defined network).
    pub(crate) fn dns_start(&self, c: &Container) {
        if !self.uses_embedded_dns(c) {
            return;
        }
        let Some(path) = &c.sandbox else {
            return;
        };
        let res = berth_net::Host::dns_sockets(std::path::Path::new(path), DNS_ADDR)
            .map_err(|e| net_error("binding the embedded DNS", e))
            .and_then(|(udp, tcp)| {
                let _g = self.rt.enter();
                self.dns_server
                    .serve(c.id.clone(), udp, Some(tcp))
                    .map_err(|e| Error::internal("serving the embedded DNS", e))
            });
        match res {
            Ok(s) => {
                self.dns_serving
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(c.id.clone(), s);
            }
            Err(e) => tracing::warn!("container {}: {e}", &c.id[..12]),
        }
    }

    /// Publish a container's ports (PortBindings, and -P's EXPOSEd ports) on its primary
    /// endpoint's address: host ports held, DNAT rules added. Blocking.
    fn publish_ports(&self, c: &Container) -> Result<Vec<PortMap>> {
        let Some(ep) = self.primary_endpoint(c) else {
            return Ok(Vec::new());
        };
        let rec = {
            let g = self.net_lock();
            g.nets.get(&ep.network_id).cloned()
        };
        let Some(rec) = rec else {
            return Ok(Vec::new());
        };
        if rec.internal {
            return Ok(Vec::new()); // Docker publishes nothing from an internal network
        }
        let Some(ip) = ep.ip else {
            return Ok(Vec::new());
        };
        let wanted = self.port_requests(c)?;
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let default_ip = rec.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let mut maps: Vec<PortMap> = Vec::new();
        let mut held: Vec<((Proto, IpAddr, u16), HeldPort)> = Vec::new();
        let undo = |held: Vec<((Proto, IpAddr, u16), HeldPort)>| {
            let mut g = self.net_lock();
            for (k, _) in held {
                g.ports.remove(&k);
            }
        };
        for w in wanted {
            let host_ip = w.host_ip.unwrap_or(default_ip);
            // The container's address of the host address's family: an IPv6 host address
            // reaches the container's IPv6 address (none: nothing to publish there, as
            // dockerd without its userland proxy).
            let cip = match (host_ip, ep.ip6) {
                (IpAddr::V4(_), _) => IpAddr::V4(ip),
                (IpAddr::V6(_), Some(ip6)) => IpAddr::V6(ip6),
                (IpAddr::V6(_), None) => continue,
            };
            let r = self.bind_host_port(
                &c.id,
                w.proto,
                host_ip,
                w.host_port_lo,
                w.host_port_hi,
                w.container_port,
                cip,
            );
            let port = match r {
                Ok((port, sock)) => {
                    held.push(((w.proto, host_ip, port), sock));
                    maps.push(PortMap {
                        proto: w.proto,
                        host_ip: (!host_ip.is_unspecified()).then_some(host_ip),
                        host_port: port,
                        container_ip: cip,
                        container_port: w.container_port,
                    });
                    port
                }
                Err(e) => {
                    undo(held);
                    return Err(e);
                }
            };
            // Every address (no host IP given) on a network with IPv6: [::] too, on the
            // same port, to the container's IPv6 address.
            if let (None, Some(ip6)) = (w.host_ip, ep.ip6) {
                let any6 = IpAddr::V6(Ipv6Addr::UNSPECIFIED);
                match self.bind_host_port(
                    &c.id,
                    w.proto,
                    any6,
                    port,
                    port,
                    w.container_port,
                    IpAddr::V6(ip6),
                ) {
                    Ok((p6, sock)) => {
                        held.push(((w.proto, any6, p6), sock));
                        maps.push(PortMap {
                            proto: w.proto,
                            host_ip: None,
                            host_port: p6,
                            container_ip: IpAddr::V6(ip6),
                            container_port: w.container_port,
                        });
                    }
                    Err(e) => {
                        undo(held);
                        return Err(e);
                    }
                }
            }
        }
        if let Err(e) = self.net_host()?.publish(&maps) {
            undo(held);
            return Err(net_error("publishing ports", e));
        }
        {
            let mut g = self.net_lock();
            for (k, s) in held {
                if let Some(e) = g.ports.get_mut(&k) {
                    e.1 = Some(s);
                }
            }
        }
        Ok(maps)
    }

    /// Claim a host port (a fixed one, or the first free one of a range, or a random one
    /// when lo is 0) for a container; the socket that holds it.
    #[allow(clippy::too_many_arguments)]
    fn bind_host_port(
        &self,
        id: &str,
        proto: Proto,
        host_ip: IpAddr,
        lo: u16,
        hi: u16,
        cport: u16,
        cip: IpAddr,
    ) -> Result<(u16, HeldPort)> {
        let (lo, hi, random) = if lo == 0 {
            (49153u16, 60999u16, true)
        } else {
            (lo, hi.max(lo), false)
        };
        let span = u32::from(hi - lo) + 1;
        let start = if random {
            rand::random::<u32>() % span
        } else {
            0
        };
        let mut last_err = None;
        for i in 0..span {
            let port = lo + ((start + i) % span) as u16;
            let key = (proto, host_ip, port);
            {
                let mut g = self.net_lock();
                let clash = g.ports.keys().any(|(p, ip, pt)| {
                    *p == proto
                        && *pt == port
                        && ip.is_ipv4() == host_ip.is_ipv4()
                        && (*ip == host_ip || ip.is_unspecified() || host_ip.is_unspecified())
                });
                if clash {
                    last_err = Some(Error::Internal(format!(
                        "Bind for {}:{port} failed: port is already allocated",
                        fmt_ip(host_ip)
                    )));
                    continue;
                }
                g.ports.insert(key, (id.to_string(), None));
            }
            match hold_port(proto, host_ip, port) {
                Ok(s) => return Ok((port, s)),
                Err(e) => {
                    self.net_lock().ports.remove(&key);
                    last_err = Some(Error::Internal(format!(
                        "driver failed programming external connectivity on endpoint {}: failed to bind host port for {}:{port}:{cip}:{cport}/{proto}: {}",
                        &id[..12],
                        fmt_ip(host_ip),
                        io_text(&e)
                    )));
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Internal("no free host port".into())))
    }

    fn primary_endpoint(&self, c: &Container) -> Option<Endpoint> {
        let primary = mode_network(c.host_config.network_mode.as_deref())?;
        c.networks
            .get(primary)
            .or_else(|| c.networks.values().find(|e| e.ifname == "eth0"))
            .cloned()
    }

    /// The ports a container asks to publish: PortBindings, and with PublishAllPorts every
    /// exposed port (random host ports).
    fn port_requests(&self, c: &Container) -> Result<Vec<PortRequest>> {
        let mut out = Vec::new();
        let bindings = c.host_config.port_bindings.clone().unwrap_or_default();
        let mut keys: Vec<&String> = bindings.keys().collect();
        keys.sort();
        for k in keys {
            let (cport, proto) = parse_port_key(k)?;
            let list = bindings.get(k).cloned().flatten().unwrap_or_default();
            let list = if list.is_empty() {
                vec![Default::default()]
            } else {
                list
            };
            for b in list {
                let host_ip = match b.host_ip.as_deref().filter(|s| !s.is_empty()) {
                    Some(s) => {
                        Some(s.trim_matches(['[', ']']).parse::<IpAddr>().map_err(|_| {
                            Error::Invalid(format!("invalid host IP {s:?} for port {k}"))
                        })?)
                    }
                    None => None,
                };
                let (lo, hi) = match b.host_port.as_deref().filter(|s| !s.is_empty()) {
                    Some(s) => parse_port_range(s)?,
                    None => (0, 0),
                };
                out.push(PortRequest {
                    proto,
                    host_ip,
                    host_port_lo: lo,
                    host_port_hi: hi,
                    container_port: cport,
                });
            }
        }
        if c.host_config.publish_all_ports == Some(true) {
            let mut exposed: Vec<&String> = c.config.exposed_ports.iter().flatten().collect();
            exposed.sort();
            for k in exposed {
                let (cport, proto) = parse_port_key(k)?;
                if out
                    .iter()
                    .any(|r| r.container_port == cport && r.proto == proto)
                {
                    continue;
                }
                out.push(PortRequest {
                    proto,
                    host_ip: None,
                    host_port_lo: 0,
                    host_port_hi: 0,
                    container_port: cport,
                });
            }
        }
        Ok(out)
    }

    /// Undo a container's network (blocking, idempotent): ports, names, interfaces, the
    /// namespace, the addresses. The record keeps its attachments, without addresses.
    pub(crate) fn net_teardown(&self, c: &mut Container) {
        let t0 = std::time::Instant::now();
        let ports = c.ports.len();
        let had = c.sandbox.is_some();
        self.net_teardown_inner(c);
        if had {
            tracing::debug!(
                container = &c.id[..12],
                ports,
                "network torn down in {} µs",
                t0.elapsed().as_micros()
            );
        }
    }

    fn net_teardown_inner(&self, c: &mut Container) {
        if let Some(s) = self
            .dns_serving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&c.id)
        {
            drop(s);
        }
        {
            let g = self.net_lock();
            for ep in c.networks.values() {
                if let Some(r) = g.nets.get(&ep.network_id) {
                    self.dns_names.unregister(&r.id, &c.id);
                }
            }
        }
        self.dns_names.set_asker(&c.id, Asker::default());
        let host = self.net_host().ok();
        if !c.ports.is_empty() {
            if let Some(h) = host {
                // Not waited for (see Host::unpublish_later); the host ports are free at once.
                if let Err(e) = h.unpublish_later(&c.ports) {
                    tracing::warn!("unpublishing the ports of {}: {e}", &c.id[..12]);
                }
            }
            let mut g = self.net_lock();
            g.ports.retain(|_, (id, _)| *id != c.id);
            let n = c.ports.len();
            c.ports.clear();
            drop(g);
            trim_after(n);
        } else {
            self.net_lock().ports.retain(|_, (id, _)| *id != c.id);
        }
        // Removing the namespace takes the container's ends of its veths, and with them
        // the host's, in the kernel's own time (deleting a veth waits 20-40 ms for the
        // kernel to let go of it); only when other containers still run in the namespace
        // (`container:NAME`) are the interfaces deleted one by one.
        let shared = c.sandbox.is_some() && self.namespace_shared(&c.id);
        for ep in c.networks.values_mut() {
            if !ep.veth.is_empty() && (shared || c.sandbox.is_none()) {
                if let Some(h) = host {
                    if let Err(e) = h.detach(&ep.veth) {
                        tracing::warn!("removing {}: {e}", ep.veth);
                    }
                }
            }
            if let Some(ip) = ep.ip {
                let mut g = self.net_lock();
                if let Some(s) = g.spaces.get_mut(&ep.network_id) {
                    s.release(ip);
                }
            }
            if let Some(ip6) = ep.ip6 {
                let mut g = self.net_lock();
                if let Some(s) = g.spaces6.get_mut(&ep.network_id) {
                    s.release(ip6);
                }
            }
            ep.endpoint_id.clear();
            ep.ip = None;
            ep.ip6 = None;
            ep.gateway6 = None;
            ep.gateway = None;
            ep.mac.clear();
            ep.veth.clear();
            ep.ifname.clear();
        }
        if let Some(p) = c.sandbox.take() {
            if let Err(e) = berth_net::Host::sandbox_remove(std::path::Path::new(&p)) {
                tracing::warn!("removing the network namespace {p}: {e}");
            }
        }
    }

    /// Whether a running container joined `id`'s network namespace (`container:ID`).
    fn namespace_shared(&self, id: &str) -> bool {
        let want = format!("container:{id}");
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        map.values().any(|h| {
            h.running() && h.get().host_config.network_mode.as_deref() == Some(want.as_str())
        })
    }

    /// At daemon start, after the containers were recovered (blocking): the address spaces
    /// get the addresses of running containers, their names go back into the DNS (and its
    /// sockets into their namespaces), their ports are held again; whatever no running
    /// container accounts for (namespaces, veths, published ports) is removed.
    pub(crate) fn net_reconcile(&self) -> Result<()> {
        let running: Vec<Container> = {
            let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
            map.values()
                .filter(|h| h.running())
                .map(|h| h.get())
                .collect()
        };
        let mut keep_ns = HashSet::new();
        let mut keep_veth = HashSet::new();
        let mut keep_ports = Vec::new();
        {
            let mut g = self.net_lock();
            for c in &running {
                for ep in c.networks.values() {
                    if let (Some(ip), Some(s)) = (ep.ip, g.spaces.get_mut(&ep.network_id)) {
                        let _ = s.reserve(ip);
                        s.last = Some(ip).max(s.last);
                    }
                    if let (Some(ip), Some(s)) = (ep.ip6, g.spaces6.get_mut(&ep.network_id)) {
                        let _ = s.reserve(ip);
                        s.last = Some(ip).max(s.last);
                    }
                    if !ep.veth.is_empty() {
                        keep_veth.insert(ep.veth.clone());
                    }
                }
                if let Some(p) = &c.sandbox {
                    keep_ns.insert(PathBuf::from(p));
                }
                for p in &c.ports {
                    let ip = host_ip_of(p);
                    let held = hold_port(p.proto, ip, p.host_port).ok();
                    g.ports
                        .insert((p.proto, ip, p.host_port), (c.id.clone(), held));
                    keep_ports.push(p.clone());
                }
            }
        }
        if let Ok(rd) = std::fs::read_dir(self.paths.exec_root.join("netns")) {
            for e in rd.flatten() {
                if !keep_ns.contains(&e.path()) {
                    tracing::info!(
                        "removing the stale network namespace {}",
                        e.path().display()
                    );
                    let _ = berth_net::Host::sandbox_remove(&e.path());
                }
            }
        }
        let any_bridge = self.net_lock().nets.values().any(|r| r.is_bridge());
        if !any_bridge && keep_veth.is_empty() {
            return Ok(());
        }
        let host = match self.net_host() {
            Ok(h) => h,
            Err(e) => {
                tracing::error!("{e}");
                return Ok(());
            }
        };
        match host.reconcile(VETH_PREFIX, &keep_veth, &keep_ports) {
            Ok(()) => {}
            Err(e) => tracing::warn!("reconciling the host's network: {e}"),
        }
        // Running containers' veths back on their bridges (a bridge made again above).
        for c in &running {
            for ep in c.networks.values() {
                let bridge = self
                    .net_lock()
                    .nets
                    .get(&ep.network_id)
                    .map(|r| r.bridge.clone());
                if let (false, Some(b)) = (ep.veth.is_empty(), bridge) {
                    if let Err(e) = host.replug(&ep.veth, &b) {
                        tracing::warn!("putting {} back on {b}: {e}", ep.veth);
                    }
                }
            }
        }
        // Bridges of ours that no network names (a create or remove cut short).
        let bridges: HashSet<String> = {
            let g = self.net_lock();
            g.nets.values().map(|r| r.bridge.clone()).collect()
        };
        if let Err(e) = host.remove_stale_bridges(BRIDGE_PREFIX, &bridges) {
            tracing::warn!("removing stale bridges: {e}");
        }
        for c in &running {
            self.register_names(c);
            self.dns_start(c);
        }
        Ok(())
    }

    /// `POST /networks/{id}/connect`.
    pub async fn network_connect(
        self: &Arc<Self>,
        who: &Subject,
        net: &str,
        container: &str,
        cfg: Option<EndpointSettings>,
    ) -> Result<()> {
        let r = self.network_lookup(who, net)?;
        let h = self.lookup(who, container)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let _op = h.op.lock().await;
        let c = h.get();
        if r.driver != "bridge" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        if mode_network(c.host_config.network_mode.as_deref()).is_none() {
            return Err(Error::Invalid(format!(
                "container sharing network namespace with another container or host cannot be connected to any other network ({})",
                c.host_config.network_mode.as_deref().unwrap_or_default()
            )));
        }
        if c.networks.contains_key(&r.name) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, r.name
            )));
        }
        let req = cfg.unwrap_or_default();
        self.check_endpoint_request(&r, &req)?;
        let me = self.clone();
        let name = r.name.clone();
        let hh = h.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut c = hh.get();
            c.networks.insert(
                name.clone(),
                Endpoint {
                    network_id: r.id.clone(),
                    requested: req,
                    ..Default::default()
                },
            );
            if c.state.status.is_running() {
                if let Some(p) = c.sandbox.clone() {
                    let host = me.net_host()?;
                    let sb = host
                        .sandbox_open(std::path::Path::new(&p))
                        .map_err(|e| net_error("opening the network namespace", e))?;
                    let used: HashSet<String> =
                        c.networks.values().map(|e| e.ifname.clone()).collect();
                    let ifname = (0..)
                        .map(|i| format!("eth{i}"))
                        .find(|n| !used.contains(n))
                        .unwrap_or_default();
                    let mut gw_done = c.networks.values().any(|e| {
                        e.ip.is_some()
                            && me
                                .net_lock()
                                .nets
                                .get(&e.network_id)
                                .is_some_and(|n| !n.internal)
                    });
                    if let Err(e) =
                        me.attach_endpoint(host, &sb, &mut c, &name, &ifname, &mut gw_done)
                    {
                        // Undo this endpoint only.
                        if let Some(ep) = c.networks.get(&name) {
                            if !ep.veth.is_empty() {
                                let _ = host.detach(&ep.veth);
                            }
                            if let Some(ip) = ep.ip {
                                if let Some(s) = me.net_lock().spaces.get_mut(&r.id) {
                                    s.release(ip);
                                }
                            }
                        }
                        return Err(e);
                    }
                    me.register_names(&c);
                    if !me
                        .dns_serving
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .contains_key(&c.id)
                    {
                        me.dns_start(&c);
                    }
                }
            }
            let cid = c.id.clone();
            me.update(&hh, |rec| *rec = c);
            me.network_event(&r, "connect", &[("container", cid)]);
            Ok(())
        })
        .await
        .map_err(|e| Error::internal("connecting", e))?
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn network_disconnect(
        self: &Arc<Self>,
        who: &Subject,
        net: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        let r = match self.network_lookup(who, net) {
            Ok(r) => r,
            Err(e) => return Err(e),
        };
        let h = match self.lookup(who, container) {
            Ok(h) => h,
            Err(e) if force => {
                let _ = e;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        if r.driver != "bridge" {
            return Err(Error::Forbidden(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let _op = h.op.lock().await;
        let c = h.get();
        if !c.networks.contains_key(&r.name) {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {}",
                &c.id[..12],
                r.name
            )));
        }
        let me = self.clone();
        let hh = h.clone();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut c = hh.get();
            if let Some(ep) = c.networks.remove(&r.name) {
                me.dns_names.unregister(&r.id, &c.id);
                if !ep.veth.is_empty() {
                    if let Ok(host) = me.net_host() {
                        if let Err(e) = host.detach(&ep.veth) {
                            tracing::warn!("removing {}: {e}", ep.veth);
                        }
                    }
                }
                if let Some(ip) = ep.ip {
                    if let Some(s) = me.net_lock().spaces.get_mut(&r.id) {
                        s.release(ip);
                    }
                }
                // Published ports on that endpoint's address go with it.
                if let Some(ip) = ep.ip {
                    let gone: Vec<PortMap> = c
                        .ports
                        .iter()
                        .filter(|p| p.container_ip == IpAddr::V4(ip))
                        .cloned()
                        .collect();
                    if !gone.is_empty() {
                        if let Ok(host) = me.net_host() {
                            let _ = host.unpublish(&gone);
                        }
                        c.ports.retain(|p| !gone.contains(p));
                        let mut g = me.net_lock();
                        g.ports.retain(|(pr, hip, port), (id, _)| {
                            !(*id == c.id
                                && gone.iter().any(|p| {
                                    p.proto == *pr && p.host_port == *port && host_ip_of(p) == *hip
                                }))
                        });
                    }
                }
            }
            if c.state.status.is_running() {
                me.register_names(&c);
            }
            let cid = c.id.clone();
            me.update(&hh, |rec| *rec = c);
            me.network_event(&r, "disconnect", &[("container", cid)]);
            Ok(())
        })
        .await
        .map_err(|e| Error::internal("disconnecting", e))?
    }

    /// NetworkSettings as inspect shows them.
    pub(crate) fn network_settings_json(&self, c: &Container) -> Value {
        let g = self.net_lock();
        let mut networks = serde_json::Map::new();
        let mode = c
            .host_config
            .network_mode
            .clone()
            .unwrap_or_else(|| "bridge".into());
        if mode_network(Some(&mode)).is_none() {
            let key = if mode.starts_with("container:") {
                None
            } else {
                Some(mode.as_str())
            };
            if let Some(k) = key {
                let id = g
                    .nets
                    .values()
                    .find(|r| r.builtin && r.name == k)
                    .map(|r| r.id.clone())
                    .unwrap_or_default();
                networks.insert(
                    k.to_string(),
                    json!({
                        "IPAMConfig": null, "Links": null, "Aliases": null, "MacAddress": "",
                        "DriverOpts": null, "GwPriority": 0, "NetworkID": id,
                        "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
                        "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
                        "DNSNames": null,
                    }),
                );
            }
        }
        let mut top = json!({
            "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        });
        for (name, ep) in &c.networks {
            let builtin = g.nets.get(&ep.network_id).is_none_or(|r| r.builtin);
            let v = json!({
                "IPAMConfig": ep.requested.ipam_config,
                "Links": ep.requested.links,
                "Aliases": ep.requested.aliases,
                // Before it runs, the address asked for (as dockerd shows it).
                "MacAddress": if ep.mac.is_empty() {
                    ep.requested.mac_address.clone().unwrap_or_default()
                } else {
                    ep.mac.clone()
                },
                "DriverOpts": ep.requested.driver_opts,
                "GwPriority": ep.requested.gw_priority.unwrap_or(0),
                "NetworkID": ep.network_id,
                "EndpointID": ep.endpoint_id,
                "Gateway": ep.gateway.map(|g| g.to_string()).unwrap_or_default(),
                "IPAddress": ep.ip.map(|g| g.to_string()).unwrap_or_default(),
                "IPPrefixLen": if ep.ip.is_some() { ep.prefix } else { 0 },
                "IPv6Gateway": ep.gateway6.map(|g| g.to_string()).unwrap_or_default(),
                "GlobalIPv6Address": ep.ip6.map(|g| g.to_string()).unwrap_or_default(),
                "GlobalIPv6PrefixLen": if ep.ip6.is_some() { ep.prefix6 } else { 0 },
                "DNSNames": if ep.ip.is_some() { Self::dns_names_json(c, ep, builtin) } else { Value::Null },
            });
            if name == DEFAULT_BRIDGE && ep.ip.is_some() {
                for k in [
                    "EndpointID",
                    "Gateway",
                    "IPAddress",
                    "IPPrefixLen",
                    "MacAddress",
                ] {
                    top[k] = v[k].clone();
                }
            }
            networks.insert(name.clone(), v);
        }
        let mut ports = serde_json::Map::new();
        let running = c.state.status.is_running();
        if running && c.sandbox.is_some() {
            let mut keys: Vec<String> = c.config.exposed_ports.iter().flatten().cloned().collect();
            for k in c.host_config.port_bindings.iter().flatten().map(|(k, _)| k) {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
            for k in keys {
                let Ok((cport, proto)) = parse_port_key(&k) else {
                    continue;
                };
                let b: Vec<Value> = c
                    .ports
                    .iter()
                    .filter(|p| p.container_port == cport && p.proto == proto)
                    .flat_map(|p| {
                        // IPv4 only: without IPv6 on the network there is no proxy to carry
                        // [::]:PORT to the container (as dockerd without its userland proxy).
                        let any = if p.container_ip.is_ipv6() { "::" } else { "0.0.0.0" };
                        vec![json!({
                            "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| any.into()),
                            "HostPort": p.host_port.to_string(),
                        })]
                    })
                    .collect();
                let key = if k.contains('/') {
                    k.clone()
                } else {
                    format!("{k}/tcp")
                };
                ports.insert(key, if b.is_empty() { Value::Null } else { json!(b) });
            }
        }
        let mut out = json!({
            "Bridge": "",
            "SandboxID": c.sandbox.as_ref().map(|_| c.id.clone()).unwrap_or_default(),
            "SandboxKey": c.sandbox.clone().unwrap_or_default(),
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports,
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "Networks": networks,
        });
        if let (Some(o), Some(t)) = (out.as_object_mut(), top.as_object()) {
            for (k, v) in t {
                o.insert(k.clone(), v.clone());
            }
        }
        out
    }

    /// The ports as `docker ps` shows them (`Ports` of the list).
    pub(crate) fn ports_list_json(c: &Container) -> Value {
        let mut out = Vec::new();
        if c.state.status.is_running() {
            for p in &c.ports {
                let any = if p.container_ip.is_ipv6() {
                    "::"
                } else {
                    "0.0.0.0"
                };
                out.push(json!({
                    "IP": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| any.into()),
                    "PrivatePort": p.container_port,
                    "PublicPort": p.host_port,
                    "Type": p.proto.to_string(),
                }));
            }
        }
        for k in c.config.exposed_ports.iter().flatten() {
            if let Ok((cport, proto)) = parse_port_key(k) {
                if !c.state.status.is_running()
                    || !c
                        .ports
                        .iter()
                        .any(|p| p.container_port == cport && p.proto == proto)
                {
                    out.push(json!({"PrivatePort": cport, "Type": proto.to_string()}));
                }
            }
        }
        Value::Array(out)
    }
}

/// A port to publish, as asked.
#[derive(Debug, Clone)]
struct PortRequest {
    proto: Proto,
    host_ip: Option<IpAddr>,
    host_port_lo: u16,
    host_port_hi: u16,
    container_port: u16,
}

/// `80/tcp` (a bare `80` is tcp).
pub(crate) fn parse_port_key(k: &str) -> Result<(u16, Proto)> {
    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
    let proto: Proto = proto
        .parse()
        .map_err(|_| Error::Invalid(format!("invalid proto: {proto}")))?;
    let port: u16 = p
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| Error::Invalid(format!("invalid containerPort: {p}")))?;
    Ok((port, proto))
}

fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let bad = || Error::Invalid(format!("invalid hostPort: {s}"));
    match s.split_once('-') {
        Some((a, b)) => {
            let a: u16 = a.parse().map_err(|_| bad())?;
            let b: u16 = b.parse().map_err(|_| bad())?;
            if a == 0 || b < a {
                return Err(bad());
            }
            Ok((a, b))
        }
        None => {
            let a: u16 = s.parse().map_err(|_| bad())?;
            Ok((a, a))
        }
    }
}

/// After publishing or unpublishing many ports, give the allocator's free memory back to the
/// kernel (the nft script, the record's JSON and the like are freed, but glibc keeps the
/// pages of each thread's arena; with 1,000 ports that is megabytes of RSS for nothing).
pub(crate) fn trim_after(ports: usize) {
    if ports >= 64 {
        // SAFETY: malloc_trim only releases free memory of the allocator; no pointer held
        // anywhere is affected.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// The host address a published port is bound to (every address: 0.0.0.0 or ::, after the
/// container's address's family).
fn host_ip_of(p: &PortMap) -> IpAddr {
    p.host_ip.unwrap_or(if p.container_ip.is_ipv6() {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    })
}

fn fmt_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v) => format!("[{v}]"),
        v => v.to_string(),
    }
}

fn io_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".into(),
        std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        _ => e.to_string(),
    }
}

/// Bind (not listen) a socket on a host port, so no other program takes it.
fn hold_port(proto: Proto, ip: IpAddr, port: u16) -> std::io::Result<HeldPort> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let addr = SocketAddr::new(ip, port);
    let domain = if ip.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let (ty, pr) = match proto {
        Proto::Tcp => (Type::STREAM, Protocol::TCP),
        Proto::Udp => (Type::DGRAM, Protocol::UDP),
        Proto::Sctp => (Type::STREAM, Protocol::from(libc::IPPROTO_SCTP)),
    };
    let s = match Socket::new(domain, ty, Some(pr)) {
        Ok(s) => s,
        // No SCTP in this kernel: nothing to hold the port with, the rule still works.
        Err(_) if proto == Proto::Sctp => {
            let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
            return Ok(HeldPort(s));
        }
        Err(e) => return Err(e),
    };
    s.set_cloexec(true)?;
    if proto == Proto::Tcp {
        s.set_reuse_address(true)?;
    }
    if ip.is_ipv6() {
        // [::]:PORT holds the IPv6 port only; 0.0.0.0:PORT is held by its own socket.
        s.set_only_v6(true)?;
    }
    s.bind(&SockAddr::from(addr))?;
    Ok(HeldPort(s))
}

/// The bridge as berth-net sets it up.
fn bridge_spec(r: &NetworkRecord) -> berth_net::BridgeSpec {
    berth_net::BridgeSpec {
        name: r.bridge.clone(),
        subnet: r.subnet.unwrap_or_default(),
        gateway: r.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED),
        mtu: r.mtu,
        internal: r.internal,
        masquerade: r.masquerade,
        icc: r.icc,
        v6: r.subnet6.zip(r.gateway6),
    }
}

/// A legacy link (`--link NAME[:ALIAS]`, recorded by dockerd as `/NAME:/ME/ALIAS`):
/// (target, alias).
pub(crate) fn parse_link(l: &str) -> Result<(String, String)> {
    let (t, a) = l.split_once(':').unwrap_or((l, l));
    let t = t.trim_start_matches('/').to_string();
    let a = a.rsplit('/').next().unwrap_or(a).to_string();
    if t.is_empty() || a.is_empty() {
        return Err(Error::Invalid(format!("invalid link: {l:?}")));
    }
    Ok((t, a))
}

impl Engine {
    /// `DELETE /containers/{parent}/{alias}?link=1`: remove a legacy link (blocking).
    pub fn remove_link(&self, who: &Subject, parent: &str, alias: &str) -> Result<()> {
        let h = self.lookup(who, parent)?;
        let c = h.get();
        self.authorize(who, Action::Write, Some(&c.owner))?;
        let links = c.host_config.links.clone().unwrap_or_default();
        let keep: Vec<String> = links
            .iter()
            .filter(|l| parse_link(l).map(|(_, a)| a != alias).unwrap_or(true))
            .cloned()
            .collect();
        if keep.len() == links.len() {
            return Err(Error::NotFound(format!(
                "Could not find link /{}/{alias}",
                c.name
            )));
        }
        self.update(&h, |r| {
            r.host_config.links = (!keep.is_empty()).then(|| keep.clone());
        });
        Ok(())
    }

    /// The legacy link names of a container (`/PARENT/ALIAS`, as `docker ps` lists them).
    pub(crate) fn link_names(&self, c: &Container) -> Vec<String> {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for h in map.values() {
            // The record in place: no copy of every container for each one listed.
            let p = h.rec.lock().unwrap_or_else(|p| p.into_inner());
            for l in p.host_config.links.iter().flatten() {
                if let Ok((target, alias)) = parse_link(l) {
                    if target == c.name || target == c.id {
                        out.push(format!("/{}/{alias}", p.name));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// A running container by ID or name (internal: no tenant check).
    fn running_container(&self, key: &str) -> Option<Container> {
        let map = self.containers.read().unwrap_or_else(|p| p.into_inner());
        let id = if map.contains_key(key) {
            Some(key.to_string())
        } else {
            self.names
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(key.trim_start_matches('/'))
                .cloned()
        }?;
        map.get(&id).map(|h| h.get())
    }

    /// The network namespace a starting container joins (blocking).
    pub(crate) fn netns_for(&self, c: &Container) -> Result<Option<PathBuf>> {
        let mode = c.host_config.network_mode.as_deref().unwrap_or("bridge");
        if let Some(other) = mode.strip_prefix("container:") {
            let t = self
                .running_container(other)
                .filter(|t| t.state.status.is_running())
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "cannot join network of a non running container: {other}"
                    ))
                })?;
            if t.id == c.id {
                return Err(Error::Invalid("cannot join own network namespace".into()));
            }
            return Ok(Some(match &t.sandbox {
                Some(p) => PathBuf::from(p),
                None => PathBuf::from(format!("/proc/{}/ns/net", t.state.pid)),
            }));
        }
        Ok(c.sandbox.as_ref().map(PathBuf::from))
    }

    /// Set up a starting container's network and write its hosts file (blocking).
    pub(crate) fn net_start(&self, c: &mut Container) -> Result<()> {
        let data = self.paths.container_data(&c.id);
        let mode = c.host_config.network_mode.clone().unwrap_or_default();
        if let Some(other) = mode.strip_prefix("container:") {
            // Its network, name files and all, are the other container's.
            let t = self
                .running_container(other)
                .filter(|t| t.state.status.is_running())
                .ok_or_else(|| {
                    Error::Conflict(format!(
                        "cannot join network of a non running container: {other}"
                    ))
                })?;
            let tdata = self.paths.container_data(&t.id);
            for f in ["hosts", "resolv.conf", "hostname"] {
                if let Ok(b) = std::fs::read(tdata.join(f)) {
                    crate::containers::write_private(&data.join(f), &b)?;
                }
            }
            return Ok(());
        }
        let links = self.links_of(c)?;
        let t0 = std::time::Instant::now();
        self.net_setup(c)?;
        let hosts = self.hosts_file(c, &links);
        if let Err(e) = crate::containers::write_private(&data.join("hosts"), hosts.as_bytes()) {
            self.net_teardown(c);
            return Err(e);
        }
        self.dns_start(c);
        if c.sandbox.is_some() {
            tracing::debug!(
                container = &c.id[..12],
                ports = c.ports.len(),
                "network set up in {} µs",
                t0.elapsed().as_micros()
            );
        }
        Ok(())
    }

    /// Undo a container's network and record that (blocking).
    pub(crate) fn net_release(&self, h: &crate::Handle) {
        let mut c = h.get();
        let live = c.sandbox.is_some()
            || !c.ports.is_empty()
            || c.networks
                .values()
                .any(|e| e.ip.is_some() || !e.veth.is_empty());
        if !live {
            return;
        }
        self.net_teardown(&mut c);
        self.update(h, |r| {
            r.networks = c.networks.clone();
            r.sandbox = None;
            r.ports.clear();
        });
    }

    /// A container's links, resolved: (alias, target). The targets must run.
    fn links_of(&self, c: &Container) -> Result<Vec<(String, Container)>> {
        let mut out = Vec::new();
        // On a user-defined network a link is only a name (the embedded DNS's).
        if c.host_config.network_mode.as_deref() != Some(DEFAULT_BRIDGE) {
            return Ok(out);
        }
        for l in c.host_config.links.iter().flatten() {
            let (t, alias) = parse_link(l)?;
            let target = self
                .running_container(&t)
                .filter(|x| x.state.status.is_running())
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "Cannot link to a non running container: /{t} AS /{}/{alias}",
                        c.name
                    ))
                })?;
            out.push((alias, target));
        }
        Ok(out)
    }

    /// The environment of legacy links, as Docker sets it (`DB_PORT_5432_TCP_ADDR`, …).
    pub(crate) fn link_env(&self, c: &Container) -> Vec<String> {
        let Ok(links) = self.links_of(c) else {
            return Vec::new();
        };
        let mut env = Vec::new();
        for (alias, t) in links {
            let p = alias.to_ascii_uppercase().replace('-', "_");
            let Some(ip) = t.networks.get(DEFAULT_BRIDGE).and_then(|e| e.ip) else {
                continue;
            };
            env.push(format!("{p}_NAME=/{}/{alias}", c.name));
            let mut ports: Vec<(u16, Proto)> = t
                .config
                .exposed_ports
                .iter()
                .flatten()
                .filter_map(|k| parse_port_key(k).ok())
                .collect();
            ports.sort_by_key(|(p, pr)| (*p, pr.to_string()));
            if let Some((port, proto)) = ports.first() {
                env.push(format!("{p}_PORT={proto}://{ip}:{port}"));
            }
            for (port, proto) in &ports {
                let u = proto.to_string().to_ascii_uppercase();
                env.push(format!("{p}_PORT_{port}_{u}={proto}://{ip}:{port}"));
                env.push(format!("{p}_PORT_{port}_{u}_ADDR={ip}"));
                env.push(format!("{p}_PORT_{port}_{u}_PORT={port}"));
                env.push(format!("{p}_PORT_{port}_{u}_PROTO={proto}"));
            }
            for e in t.config.env.iter().flatten() {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                if matches!(k, "HOME" | "HOSTNAME" | "PATH") {
                    continue;
                }
                env.push(format!("{p}_ENV_{k}={v}"));
            }
        }
        env
    }

    /// /etc/hosts as Docker writes it: localhost, `--add-host` entries, links, then the
    /// container's own address(es) with its hostname.
    pub(crate) fn hosts_file(&self, c: &Container, links: &[(String, Container)]) -> String {
        let mut s = String::new();
        if c.host_config.network_mode.as_deref() == Some("host") {
            s = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        } else {
            s.push_str("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
            s.push_str("fe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n");
        }
        let host_gateway = {
            let g = self.net_lock();
            g.nets
                .values()
                .find(|r| r.builtin && r.name == DEFAULT_BRIDGE)
                .and_then(|r| r.gateway)
                .map(|g| g.to_string())
                .unwrap_or_else(|| "127.0.0.1".into())
        };
        for h in c.host_config.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = h.split_once([':', '=']) {
                let ip = if ip == "host-gateway" {
                    host_gateway.as_str()
                } else {
                    ip
                };
                s.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        for (alias, t) in links {
            if let Some(ip) = t.networks.get(DEFAULT_BRIDGE).and_then(|e| e.ip) {
                s.push_str(&format!("{ip}\t{alias} {} {}\n", &t.id[..12], t.name));
            }
        }
        let hostname = crate::spec::hostname(c);
        let names = match c.config.domainname.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => format!("{hostname}.{d} {hostname}"),
            None => hostname,
        };
        let mut ips: Vec<Ipv4Addr> = Vec::new();
        if let Some(ep) = self.primary_endpoint(c) {
            ips.extend(ep.ip);
        }
        for ep in c.networks.values() {
            if let Some(ip) = ep.ip {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
        }
        for ip in ips {
            s.push_str(&format!("{ip}\t{names}\n"));
        }
        for ep in c.networks.values() {
            if let Some(ip6) = ep.ip6 {
                s.push_str(&format!("{ip6}\t{names}\n"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_keys_and_ranges() {
        assert_eq!(parse_port_key("80/tcp").unwrap(), (80, Proto::Tcp));
        assert_eq!(parse_port_key("53/udp").unwrap(), (53, Proto::Udp));
        assert_eq!(parse_port_key("8080").unwrap(), (8080, Proto::Tcp));
        assert!(parse_port_key("0/tcp").is_err());
        assert!(parse_port_key("80/icmp").is_err());
        assert!(parse_port_key("x/tcp").is_err());
        assert_eq!(parse_port_range("8000-8010").unwrap(), (8000, 8010));
        assert_eq!(parse_port_range("9").unwrap(), (9, 9));
        assert!(parse_port_range("10-9").is_err());
        assert!(parse_port_range("70000").is_err());
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [2, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("01:00:5e:00:00:01").is_err());
        assert!(parse_mac("02:42:ac:11:00").is_err());
        assert!(parse_mac("zz:42:ac:11:00:02").is_err());
        assert_eq!(mac_string([2, 0x42, 0xac, 0x11, 0, 2]), "02:42:ac:11:00:02");
    }

    #[test]
    fn modes() {
        assert_eq!(mode_network(None), Some("bridge"));
        assert_eq!(mode_network(Some("default")), Some("bridge"));
        assert_eq!(mode_network(Some("host")), None);
        assert_eq!(mode_network(Some("container:abc")), None);
        assert_eq!(mode_network(Some("mynet")), Some("mynet"));
    }
}
