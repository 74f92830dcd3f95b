//! The host's side of container networking: bridges with their addresses and firewall rules,
//! a network namespace per container with a veth pair into each of its networks, published
//! ports, and putting the host back in order after a crash. Links, addresses and routes go
//! through netlink in-process (`berth-netlink`); rules through berth's own nftables table
//! (`berth-nft`).
//!
//! Everything here is blocking (netlink round trips, one `nft` process per batch): the engine
//! calls it from blocking threads.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};

use berth_netlink::{Handle, Netns, VethOptions};
use berth_nft::{Firewall, NetworkRules, PortMap};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The name of berth's nftables table (family `inet`).
pub const TABLE: &str = "berth";

const FORWARD4: &str = "net/ipv4/ip_forward";
const FORWARD6: &str = "net/ipv6/conf/all/forwarding";

/// What went wrong on the host.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A netlink operation.
    #[error(transparent)]
    Netlink(#[from] berth_netlink::Error),
    /// An nftables batch.
    #[error(transparent)]
    Nft(#[from] berth_nft::Error),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// A result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A bridge network as the host sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeSpec {
    /// The bridge device.
    pub name: String,
    /// Its subnet.
    pub subnet: Ipv4Net,
    /// The bridge's own address (the containers' gateway).
    pub gateway: Ipv4Addr,
    /// MTU of the bridge and its veths.
    pub mtu: u32,
    /// No traffic in or out of the bridge.
    pub internal: bool,
    /// Masquerade what leaves the subnet.
    pub masquerade: bool,
    /// Containers on the bridge may talk to each other.
    pub icc: bool,
    /// Its IPv6 subnet and the bridge's IPv6 address (`--ipv6`).
    pub v6: Option<(Ipv6Net, Ipv6Addr)>,
}

/// One container interface on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    /// The bridge.
    pub bridge: String,
    /// The host's end of the veth pair.
    pub host_veth: String,
    /// The interface's name in the container (`eth0`).
    pub ifname: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The gateway.
    pub gateway: Option<Ipv4Addr>,
    /// Whether the default route goes through this interface.
    pub default_route: bool,
    /// Its MAC address.
    pub mac: [u8; 6],
    /// Its MTU.
    pub mtu: u32,
    /// Its IPv6 address and prefix length, and the IPv6 gateway (`--ipv6` networks).
    pub v6: Option<(Ipv6Addr, u8, Option<Ipv6Addr>)>,
}

/// A container's network namespace (bind-mounted under the exec root).
pub struct Sandbox {
    ns: Netns,
}

impl Sandbox {
    /// Its path.
    pub fn path(&self) -> &Path {
        self.ns.path()
    }
}

/// A change of the published ports, for the worker that applies them in order.
enum PortJob {
    Add(Vec<PortMap>, mpsc::Sender<Result<()>>),
    Remove(Vec<PortMap>, Option<mpsc::Sender<Result<()>>>),
}

/// The host: a netlink handle in the daemon's namespace and berth's firewall table.
pub struct Host {
    fw: Arc<Firewall>,
    /// Published-port changes go through one worker thread, in order (see `port_worker`):
    /// a container's removal need not be waited for, and an addition of the same host port
    /// after it still comes after it.
    ports: Mutex<mpsc::Sender<PortJob>>,
    nl: Mutex<Handle>,
    forwarding: AtomicBool,
    forwarding6: AtomicBool,
    /// Where the sysctls berth changed are remembered (their values before), so that they go
    /// back when berth's last network goes, also after a daemon restart.
    state: PathBuf,
}

impl Host {
    /// Open netlink and make sure berth's table exists (its base chains and maps); `state`
    /// is a directory of the daemon's (the exec root's `net/`) for what berth changed.
    pub fn new(table: &str, state: &Path) -> Result<Host> {
        let fw = Arc::new(Firewall::new(table));
        fw.ensure()?;
        let (tx, rx) = mpsc::channel();
        let wfw = fw.clone();
        std::thread::Builder::new()
            .name("berth-ports".into())
            .spawn(move || port_worker(&wfw, rx))
            .map_err(|e| Error::Other(format!("starting the port worker: {e}")))?;
        Ok(Host {
            fw,
            ports: Mutex::new(tx),
            nl: Mutex::new(Handle::new()?),
            forwarding: AtomicBool::new(false),
            forwarding6: AtomicBool::new(false),
            state: state.to_path_buf(),
        })
    }

    fn nl(&self) -> MutexGuard<'_, Handle> {
        self.nl.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make a bridge network's device, address and rules, or complete what exists
    /// (idempotent: also how the daemon restores its networks at start).
    pub fn ensure_bridge(&self, b: &BridgeSpec) -> Result<()> {
        let made;
        let index = {
            let mut nl = self.nl();
            let index = match nl.link_index(&b.name)? {
                Some(i) => {
                    made = false;
                    i
                }
                None => match nl.add_bridge(&b.name, Some(b.mtu)) {
                    Ok(i) => {
                        made = true;
                        i
                    }
                    Err(e) if e.is_exists() => {
                        made = false;
                        nl.link_index(&b.name)?.ok_or_else(|| {
                            Error::Other(format!("bridge {} vanished while made", b.name))
                        })?
                    }
                    Err(e) => return Err(e.into()),
                },
            };
            let r = (|| -> Result<()> {
                nl.add_address(index, IpAddr::V4(b.gateway), b.subnet.prefix_len())?;
                if let Some((net6, gw6)) = b.v6 {
                    berth_netlink::set_sysctl(
                        &format!("net/ipv6/conf/{}/disable_ipv6", b.name),
                        "0",
                    )?;
                    nl.add_address(index, IpAddr::V6(gw6), net6.prefix_len())?;
                }
                nl.set_up(index)?;
                Ok(())
            })();
            if let Err(e) = r {
                if made {
                    let _ = nl.delete_link(index);
                }
                return Err(e);
            }
            index
        };
        let _ = index;
        let r = (|| -> Result<()> {
            // Published ports on 127.0.0.1 reach containers through the bridge.
            berth_netlink::set_sysctl(&format!("net/ipv4/conf/{}/route_localnet", b.name), "1")?;
            if !b.internal {
                self.enable_forwarding()?;
                if b.v6.is_some() {
                    self.enable_forwarding6()?;
                }
            }
            let mut subnets = vec![IpNet::V4(b.subnet)];
            if let Some((net6, _)) = b.v6 {
                subnets.push(IpNet::V6(net6));
            }
            self.fw.add_network(&NetworkRules {
                bridge: b.name.clone(),
                subnets,
                internal: b.internal,
                masquerade: b.masquerade,
                icc: b.icc,
            })?;
            Ok(())
        })();
        if let Err(e) = r {
            if made {
                let _ = self.remove_bridge(&b.name);
            }
            return Err(e);
        }
        Ok(())
    }

    /// IPv4 forwarding, turned on once (the kernel's switch for routing between the bridges
    /// and the world; only ever set, as dockerd does, since other software may rely on it).
    fn enable_forwarding(&self) -> Result<()> {
        if self.forwarding.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.set_remembered(FORWARD4, "1")?;
        self.forwarding.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Set a sysctl, remembering its value before (once) if berth changes it.
    fn set_remembered(&self, sysctl: &str, value: &str) -> Result<()> {
        let old = berth_netlink::sysctl(sysctl)?;
        if old.trim() == value {
            return Ok(());
        }
        let file = self.state.join(sysctl.replace('/', "."));
        if !file.exists() {
            std::fs::create_dir_all(&self.state)
                .and_then(|()| std::fs::write(&file, old.trim()))
                .map_err(|e| Error::Other(format!("remembering {sysctl}: {e}")))?;
        }
        berth_netlink::set_sysctl(sysctl, value)?;
        Ok(())
    }

    /// berth's last bridge network went: its table goes, and the sysctls it changed get
    /// their values back.
    pub fn clear(&self) -> Result<()> {
        self.fw.delete_table()?;
        for sysctl in [FORWARD4, FORWARD6] {
            let file = self.state.join(sysctl.replace('/', "."));
            if let Ok(old) = std::fs::read_to_string(&file) {
                berth_netlink::set_sysctl(sysctl, old.trim())?;
                let _ = std::fs::remove_file(&file);
            }
        }
        self.forwarding.store(false, Ordering::Relaxed);
        self.forwarding6.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// IPv6 forwarding, likewise, once a network with IPv6 and a way out exists.
    fn enable_forwarding6(&self) -> Result<()> {
        if self.forwarding6.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.set_remembered(FORWARD6, "1")?;
        self.forwarding6.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Remove a bridge network's rules and device (absent is fine).
    pub fn remove_bridge(&self, name: &str) -> Result<()> {
        if name.is_empty() {
            return Ok(());
        }
        self.fw.remove_network(name)?;
        self.nl().delete_link_by_name(name)?;
        Ok(())
    }

    /// Remove bridges named `prefix…` (berth's) and rules of bridges that `keep` does not
    /// name: what a network create or remove cut short by a crash left.
    pub fn remove_stale_bridges(&self, prefix: &str, keep: &HashSet<String>) -> Result<()> {
        let links = self.nl().links()?;
        for l in links {
            if l.kind.as_deref() == Some("bridge")
                && l.name.starts_with(prefix)
                && !keep.contains(&l.name)
            {
                self.remove_bridge(&l.name)?;
            }
        }
        for b in self.fw.networks()? {
            if !keep.contains(&b) {
                self.fw.remove_network(&b)?;
            }
        }
        Ok(())
    }

    /// A new network namespace for a container, bind-mounted on `path`, loopback up.
    pub fn sandbox_create(&self, path: &Path) -> Result<Sandbox> {
        Ok(Sandbox {
            ns: Netns::create(path)?,
        })
    }

    /// A container's namespace made before.
    pub fn sandbox_open(&self, path: &Path) -> Result<Sandbox> {
        Ok(Sandbox {
            ns: Netns::open(path)?,
        })
    }

    /// Remove a container's namespace (its bind mount and file; absent is fine). The kernel
    /// destroys it, and the container ends of its veths with it, once no process is in it.
    pub fn sandbox_remove(path: &Path) -> Result<()> {
        Ok(Netns::remove(path)?)
    }

    /// Plug a container into a bridge: a veth pair whose peer is made inside its namespace
    /// under its final name, with address, MTU, MAC and (for the first network with a way
    /// out) the default route. On error nothing is left.
    pub fn attach(&self, sb: &Sandbox, a: &Attach) -> Result<()> {
        {
            let mut nl = self.nl();
            let master = nl
                .link_index(&a.bridge)?
                .ok_or_else(|| Error::Other(format!("bridge {} does not exist", a.bridge)))?;
            let index = nl.add_veth(
                &a.host_veth,
                &a.ifname,
                sb.ns.fd(),
                &VethOptions {
                    mtu: Some(a.mtu),
                    peer_mac: Some(a.mac),
                    master: Some(master),
                    up: true,
                },
            )?;
            // A container reaching its own published port through the host's address: with
            // br_netfilter the DNATed packet goes back out the port it came in on.
            if let Err(e) = nl.set_hairpin(index, true) {
                let _ = nl.delete_link(index);
                return Err(e.into());
            }
        }
        let inside = sb.ns.run(|| -> Result<()> {
            let mut h = Handle::new()?;
            let i = h
                .link_index(&a.ifname)?
                .ok_or_else(|| Error::Other(format!("{} is missing in the namespace", a.ifname)))?;
            h.add_address(i, IpAddr::V4(a.ip), a.prefix)?;
            if let Some((ip6, prefix6, _)) = a.v6 {
                berth_netlink::set_sysctl(
                    &format!("net/ipv6/conf/{}/disable_ipv6", a.ifname),
                    "0",
                )?;
                h.add_address(i, IpAddr::V6(ip6), prefix6)?;
            }
            h.set_up(i)?;
            if let (true, Some(gw)) = (a.default_route, a.gateway) {
                h.add_route(None, Some(IpAddr::V4(gw)), i)?;
            }
            if let (true, Some((_, _, Some(gw6)))) = (a.default_route, a.v6) {
                h.add_route(
                    Some((IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)),
                    Some(IpAddr::V6(gw6)),
                    i,
                )?;
            }
            Ok(())
        });
        let inside = match inside {
            Ok(r) => r,
            Err(e) => Err(e.into()),
        };
        if let Err(e) = inside {
            let _ = self.nl().delete_link_by_name(&a.host_veth);
            return Err(e);
        }
        Ok(())
    }

    /// Make sure the host's end of a container's veth is a port of `bridge` (after the bridge
    /// was deleted by hand and made again, say), with hairpin on; a missing veth is no error.
    pub fn replug(&self, host_veth: &str, bridge: &str) -> Result<()> {
        let mut nl = self.nl();
        let (Some(link), Some(master)) = (nl.link(host_veth)?, nl.link_index(bridge)?) else {
            return Ok(());
        };
        if link.master != Some(master) {
            nl.set_master(link.index, master)?;
            nl.set_hairpin(link.index, true)?;
            nl.set_up(link.index)?;
        }
        Ok(())
    }

    /// Unplug: delete the host's end of a veth pair (its peer goes with it).
    pub fn detach(&self, host_veth: &str) -> Result<()> {
        self.nl().delete_link_by_name(host_veth)?;
        Ok(())
    }

    fn port_job(&self, job: PortJob) -> Result<()> {
        self.ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .send(job)
            .map_err(|_| Error::Other("the port worker is gone".into()))
    }

    /// DNAT published ports to containers (after every change queued before).
    pub fn publish(&self, ports: &[PortMap]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel();
        self.port_job(PortJob::Add(ports.to_vec(), tx))?;
        rx.recv()
            .map_err(|_| Error::Other("the port worker is gone".into()))?
    }

    /// Take published ports back (absent ones are fine), waiting until they are gone.
    pub fn unpublish(&self, ports: &[PortMap]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let (tx, rx) = mpsc::channel();
        self.port_job(PortJob::Remove(ports.to_vec(), Some(tx)))?;
        rx.recv()
            .map_err(|_| Error::Other("the port worker is gone".into()))?
    }

    /// Take published ports back without waiting: the removal is applied within 200 ms,
    /// together with others, and before any later publication of the same host port (a
    /// failure is logged by the worker; a crash meanwhile is put right by the next start's
    /// reconcile). The addresses behind them are not handed out again that soon (addresses
    /// are allocated one after another).
    pub fn unpublish_later(&self, ports: &[PortMap]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        self.port_job(PortJob::Remove(ports.to_vec(), None))
    }

    /// After a crash: delete veths named `veth_prefix…` not in `keep_veth`, and make the
    /// published ports exactly `keep_ports`.
    pub fn reconcile(
        &self,
        veth_prefix: &str,
        keep_veth: &HashSet<String>,
        keep_ports: &[PortMap],
    ) -> Result<()> {
        let links = self.nl().links()?;
        for l in links {
            if l.kind.as_deref() == Some("veth")
                && l.name.starts_with(veth_prefix)
                && !keep_veth.contains(&l.name)
            {
                let _ = self.nl().delete_link(l.index);
            }
        }
        let present = self.fw.ports()?;
        let stale: Vec<PortMap> = present
            .iter()
            .filter(|p| !keep_ports.contains(p))
            .cloned()
            .collect();
        let missing: Vec<PortMap> = keep_ports
            .iter()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        self.unpublish(&stale)?;
        self.publish(&missing)?;
        Ok(())
    }

    /// The embedded DNS server's sockets, bound inside a container's namespace at
    /// `addr`:53 (UDP and TCP).
    pub fn dns_sockets(netns: &Path, addr: &str) -> Result<(UdpSocket, TcpListener)> {
        let ns = Netns::open(netns)?;
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| Error::Other(format!("invalid DNS address {addr}")))?;
        let r = ns.run(|| -> std::io::Result<(UdpSocket, TcpListener)> {
            let udp = UdpSocket::bind((ip, 53))?;
            let tcp = TcpListener::bind((ip, 53))?;
            Ok((udp, tcp))
        })?;
        r.map_err(|e| Error::Other(format!("binding {addr}:53: {e}")))
    }
}

/// How long removals that nobody waits for are kept to be applied together.
const LAZY_REMOVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// The host address a mapping holds, and its port.
fn port_key(p: &PortMap) -> (berth_nft::Proto, Option<IpAddr>, u16) {
    (p.proto, p.host_ip, p.host_port)
}

/// The port worker: applies the changes in the order they come. Removals nobody waits for
/// (a container's teardown) are gathered for up to [`LAZY_REMOVAL`] and applied as one
/// batch: each removal batch costs the kernel 10-20 ms (an RCU grace period, whatever the
/// number of elements), during which other batches wait. An addition of a host port that a
/// gathered removal still holds applies the removals first.
fn port_worker(fw: &Firewall, rx: mpsc::Receiver<PortJob>) {
    let mut lazy: Vec<PortMap> = Vec::new();
    let mut since: Option<std::time::Instant> = None;
    let flush = |lazy: &mut Vec<PortMap>, since: &mut Option<std::time::Instant>| -> Result<()> {
        *since = None;
        if lazy.is_empty() {
            return Ok(());
        }
        let ports = std::mem::take(lazy);
        fw.remove_ports(&ports).map_err(|e| {
            tracing::warn!("unpublishing {} ports: {e}", ports.len());
            Error::from(e)
        })
    };
    loop {
        let job = match since {
            Some(t) => {
                let left = LAZY_REMOVAL.saturating_sub(t.elapsed());
                match rx.recv_timeout(left) {
                    Ok(j) => j,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let _ = flush(&mut lazy, &mut since);
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        let _ = flush(&mut lazy, &mut since);
                        return;
                    }
                }
            }
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return, // the host is gone
            },
        };
        match job {
            PortJob::Add(ports, reply) => {
                let keys: Vec<_> = ports.iter().map(port_key).collect();
                if lazy.iter().any(|p| keys.contains(&port_key(p))) {
                    let _ = flush(&mut lazy, &mut since);
                }
                let _ = reply.send(fw.add_ports(&ports).map_err(Error::from));
            }
            PortJob::Remove(ports, None) => {
                lazy.extend(ports);
                since.get_or_insert_with(std::time::Instant::now);
            }
            PortJob::Remove(ports, Some(reply)) => {
                lazy.extend(ports);
                let _ = reply.send(flush(&mut lazy, &mut since));
            }
        }
    }
}
