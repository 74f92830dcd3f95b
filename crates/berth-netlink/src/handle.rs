//! Links, addresses and routes of one network namespace, through a [`Handle`].

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{DefaultNla, NLM_F_CREATE, NLM_F_ECHO, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressHeaderFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkInfo,
    LinkMessage, LinkProtoInfoBridge,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::attr::{attrs, ip_value, string_value, u32_value};
use crate::nl::Socket;
use crate::{Error, Netns, Result, format_mac};

// Message types of replies.
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

// Link attributes (`IFLA_*`) and link info attributes (`IFLA_INFO_*`).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_MASTER: u16 = 10;
const IFLA_LINKINFO: u16 = 18;
const IFLA_INFO_KIND: u16 = 1;
/// The bridge port attribute for hairpin mode, in a nested `IFLA_PROTINFO`.
const IFLA_BRPORT_MODE: u16 = 4;

// Address attributes.
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;

// Route attributes and flags.
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_TABLE: u16 = 15;
const RTM_F_CLONED: u32 = 0x200;

/// The interface index of `lo` in every network namespace.
pub(crate) const LOOPBACK_INDEX: u32 = 1;
/// `IFNAMSIZ` minus the terminating NUL.
const MAX_NAME_LEN: usize = 15;

/// A network interface, as listed by [`Handle::links`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The interface index.
    pub index: u32,
    /// The name.
    pub name: String,
    /// The kind of a virtual link (`"bridge"`, `"veth"`, `"dummy"`, ...); `None` for
    /// physical devices and `lo`.
    pub kind: Option<String>,
    /// The index of the master device (the bridge of a bridge port).
    pub master: Option<u32>,
    /// The MTU.
    pub mtu: u32,
    /// The MAC address, for Ethernet-like links.
    pub mac: Option<[u8; 6]>,
    /// Whether it is administratively up (`IFF_UP`).
    pub up: bool,
}

/// A route of the main table, as listed by [`Handle::routes`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The destination network; `0.0.0.0` or `::` with `prefix_len` 0 for a default route.
    pub dst: IpAddr,
    /// The destination's prefix length.
    pub prefix_len: u8,
    /// The next hop, if the destination is not directly connected.
    pub gateway: Option<IpAddr>,
    /// The outgoing interface (absent for multipath and unreachable/blackhole routes).
    pub oif: Option<u32>,
}

impl Route {
    /// Whether this is a default route (prefix length 0).
    pub fn is_default(&self) -> bool {
        self.prefix_len == 0
    }
}

/// Options of [`Handle::add_veth`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VethOptions {
    /// The MTU of both ends (the kernel's default, 1500, if `None`).
    pub mtu: Option<u32>,
    /// The MAC address of the peer (random if `None`); see [`crate::mac_from_ipv4`].
    pub peer_mac: Option<[u8; 6]>,
    /// The bridge (interface index) to attach the host end to.
    pub master: Option<u32>,
    /// Whether to bring the host end up. The peer is left down, to be configured in its
    /// namespace.
    pub up: bool,
}

/// A `NETLINK_ROUTE` socket bound to the network namespace of the thread that made it, and its
/// sequence counter: the links, addresses and routes of that namespace.
///
/// Every method is one synchronous request answered by the kernel's ACK (a few microseconds),
/// or a dump. A handle keeps acting in its namespace whichever thread uses it later; it is
/// `Send`, and methods take `&mut self`, so one handle serves one thread at a time.
pub struct Handle {
    socket: Socket,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl Handle {
    /// A handle on the network namespace of the calling thread.
    pub fn new() -> Result<Handle> {
        let socket =
            Socket::new().map_err(|f| f.context("opening a NETLINK_ROUTE socket".to_string()))?;
        Ok(Handle { socket })
    }

    /// A handle on the network namespace `ns`, made on a short-lived thread that entered it
    /// (the calling thread does not move).
    pub fn new_in(ns: &Netns) -> Result<Handle> {
        ns.run(Handle::new)?
    }

    /// The interface index of the link called `name`, or `None` if there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        Ok(self.link(name)?.map(|link| link.index))
    }

    /// The link called `name`, or `None` if there is none.
    pub fn link(&mut self, name: &str) -> Result<Option<Link>> {
        let op = || format!("looking up link {name}");
        check_name(name).map_err(|reason| Error::invalid(op(), reason))?;
        let mut message = LinkMessage::default();
        message.attributes = vec![
            LinkAttribute::IfName(name.to_string()),
            LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]),
        ];
        let mut found = Ok(None);
        let result = self
            .socket
            .request(RouteNetlinkMessage::GetLink(message), 0, &mut |reply| {
                if reply.message_type == RTM_NEWLINK {
                    found = parse_link(reply.payload).map(Some);
                }
            });
        match result {
            Ok(()) => found.map_err(|detail| Error::Protocol { op: op(), detail }),
            Err(f) => match f.context(op()) {
                Error::NotFound { .. } => Ok(None),
                e => Err(e),
            },
        }
    }

    /// All links of the namespace.
    pub fn links(&mut self) -> Result<Vec<Link>> {
        let mut message = LinkMessage::default();
        message.attributes = vec![LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])];
        self.socket
            .dump(RouteNetlinkMessage::GetLink(message), &mut |reply| {
                if reply.message_type != RTM_NEWLINK {
                    return Ok(None);
                }
                parse_link(reply.payload).map(Some)
            })
            .map_err(|f| f.context("listing links".to_string()))
    }

    /// Creates a bridge called `name`, down, with an optional MTU, and returns its index.
    /// An existing link of that name is [`Error::Exists`].
    pub fn add_bridge(&mut self, name: &str, mtu: Option<u32>) -> Result<u32> {
        let op = || format!("creating bridge {name}");
        check_name(name).map_err(|reason| Error::invalid(op(), reason))?;
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        message
            .attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Bridge,
            )]));
        self.create_link(message, name, &op)
    }

    /// Creates a veth pair in one request: `name` in this namespace and `peer` directly
    /// inside the namespace `peer_netns` (`IFLA_NET_NS_FD` in the peer's attributes), so the
    /// peer may be called `eth0` even though this namespace has an `eth0`, and no rename or
    /// move is needed. The MTU (both ends), the peer's MAC, the host end's master and its
    /// `up` state are set in the same request (see [`VethOptions`]). Returns the host end's
    /// index.
    ///
    /// An existing `name` here, or `peer` there, is [`Error::Exists`]; if the request fails,
    /// neither end is left behind.
    pub fn add_veth(
        &mut self,
        name: &str,
        peer: &str,
        peer_netns: BorrowedFd<'_>,
        opts: &VethOptions,
    ) -> Result<u32> {
        let op = || format!("creating veth pair {name} (peer {peer})");
        check_name(name)
            .and_then(|()| check_name(peer))
            .map_err(|reason| Error::invalid(op(), reason))?;

        let mut peer_message = LinkMessage::default();
        peer_message
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        if let Some(mtu) = opts.mtu {
            peer_message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = opts.peer_mac {
            peer_message
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        peer_message
            .attributes
            .push(LinkAttribute::NetNsFd(peer_netns.as_raw_fd()));

        let mut message = LinkMessage::default();
        if opts.up {
            message.header.flags = LinkFlags::Up;
            message.header.change_mask = LinkFlags::Up;
        }
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = opts.mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(master) = opts.master {
            message.attributes.push(LinkAttribute::Controller(master));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_message))),
        ]));
        self.create_link(message, name, &op)
    }

    /// Brings a link up.
    pub fn set_up(&mut self, index: u32) -> Result<()> {
        self.set_flags(index, LinkFlags::Up, || format!("bringing link {index} up"))
    }

    /// Brings a link down.
    pub fn set_down(&mut self, index: u32) -> Result<()> {
        self.set_flags(index, LinkFlags::empty(), || {
            format!("bringing link {index} down")
        })
    }

    /// Sets the MTU of a link.
    pub fn set_mtu(&mut self, index: u32, mtu: u32) -> Result<()> {
        self.set_link(index, LinkAttribute::Mtu(mtu), || {
            format!("setting the MTU of link {index} to {mtu}")
        })
    }

    /// Sets the MAC address of a link.
    pub fn set_mac(&mut self, index: u32, mac: [u8; 6]) -> Result<()> {
        self.set_link(index, LinkAttribute::Address(mac.to_vec()), || {
            format!(
                "setting the MAC address of link {index} to {}",
                format_mac(mac)
            )
        })
    }

    /// Attaches a link to a master device (a bridge); `master` 0 detaches it.
    pub fn set_master(&mut self, index: u32, master: u32) -> Result<()> {
        self.set_link(index, LinkAttribute::Controller(master), || {
            format!("setting the master of link {index} to link {master}")
        })
    }

    /// Sets the hairpin mode (`IFLA_BRPORT_MODE`) of a bridge port: whether the bridge may
    /// send a frame back out of the port it came in by. A link that is not a bridge port is
    /// refused (`EOPNOTSUPP`).
    pub fn set_hairpin(&mut self, index: u32, on: bool) -> Result<()> {
        let mut message = LinkMessage::default();
        message.header.interface_family = AddressFamily::Bridge;
        message.header.index = index;
        message.attributes = vec![LinkAttribute::ProtoInfoBridge(vec![
            LinkProtoInfoBridge::Other(DefaultNla::new(IFLA_BRPORT_MODE, vec![u8::from(on)])),
        ])];
        self.socket
            .request(RouteNetlinkMessage::SetLink(message), 0, &mut |_| {})
            .map_err(|f| {
                let state = if on { "on" } else { "off" };
                f.context(format!(
                    "turning hairpin mode {state} for bridge port {index}"
                ))
            })
    }

    /// Deletes a link (for a veth, both ends). A missing link is [`Error::NotFound`].
    ///
    /// Unlike creation, this is slow: the kernel's device unregistration waits for RCU grace
    /// periods, 20 to 40 ms for a veth pair here. Removing a container's namespace instead
    /// ([`Netns::remove`] and closing its descriptors) destroys the peer, and with it the host
    /// end, asynchronously, without making the caller wait.
    pub fn delete_link(&mut self, index: u32) -> Result<()> {
        let message = link_message(index);
        self.socket
            .request(RouteNetlinkMessage::DelLink(message), 0, &mut |_| {})
            .map_err(|f| f.context(format!("deleting link {index}")))
    }

    /// Deletes the link called `name` (in one request); `Ok(false)` if there is none.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool> {
        let op = || format!("deleting link {name}");
        check_name(name).map_err(|reason| Error::invalid(op(), reason))?;
        let mut message = LinkMessage::default();
        message.attributes = vec![LinkAttribute::IfName(name.to_string())];
        match self
            .socket
            .request(RouteNetlinkMessage::DelLink(message), 0, &mut |_| {})
            .map_err(|f| f.context(op()))
        {
            Ok(()) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Adds an address to a link; an address already there is not an error. IPv4 addresses
    /// get their broadcast address (for prefixes up to /30); IPv6 addresses skip duplicate
    /// address detection (`IFA_F_NODAD`), so they are usable at once.
    pub fn add_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let op = || format!("adding address {addr}/{prefix_len} to link {index}");
        let message =
            address_message(index, addr, prefix_len).map_err(|r| Error::invalid(op(), r))?;
        match self
            .socket
            .request(
                RouteNetlinkMessage::NewAddress(message),
                NLM_F_CREATE | NLM_F_EXCL,
                &mut |_| {},
            )
            .map_err(|f| f.context(op()))
        {
            Err(Error::Exists { .. }) => Ok(()),
            result => result,
        }
    }

    /// Removes an address from a link. A missing address is [`Error::NotFound`].
    pub fn del_address(&mut self, index: u32, addr: IpAddr, prefix_len: u8) -> Result<()> {
        let op = || format!("removing address {addr}/{prefix_len} from link {index}");
        let message =
            address_message(index, addr, prefix_len).map_err(|r| Error::invalid(op(), r))?;
        self.socket
            .request(RouteNetlinkMessage::DelAddress(message), 0, &mut |_| {})
            .map_err(|f| f.context(op()))
    }

    /// All addresses of the namespace, IPv4 and IPv6: `(interface index, address, prefix
    /// length)`. For point-to-point IPv4 addresses, the local one.
    pub fn addresses(&mut self) -> Result<Vec<(u32, IpAddr, u8)>> {
        let message = AddressMessage::default();
        self.socket
            .dump(RouteNetlinkMessage::GetAddress(message), &mut |reply| {
                if reply.message_type != RTM_NEWADDR {
                    return Ok(None);
                }
                parse_address(reply.payload).map(Some)
            })
            .map_err(|f| f.context("listing addresses".to_string()))
    }

    /// Adds a route to the main table, via the interface `oif`; a route already there is not
    /// an error.
    ///
    /// `dst` `None` is the default route: IPv4, unless `gateway` is IPv6; for an IPv6 default
    /// route without a gateway, pass `Some((Ipv6Addr::UNSPECIFIED.into(), 0))`. Without a
    /// gateway the destination is directly connected (scope link).
    pub fn add_route(
        &mut self,
        dst: Option<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
        oif: u32,
    ) -> Result<()> {
        let op = || format!("adding route {}", describe_route(dst, gateway, oif));
        let message = route_message(dst, gateway, oif).map_err(|r| Error::invalid(op(), r))?;
        match self
            .socket
            .request(
                RouteNetlinkMessage::NewRoute(message),
                NLM_F_CREATE | NLM_F_EXCL,
                &mut |_| {},
            )
            .map_err(|f| f.context(op()))
        {
            Err(Error::Exists { .. }) => Ok(()),
            result => result,
        }
    }

    /// Deletes a route of the main table (arguments as for [`Handle::add_route`]). A missing
    /// route is [`Error::NotFound`].
    pub fn del_route(
        &mut self,
        dst: Option<(IpAddr, u8)>,
        gateway: Option<IpAddr>,
        oif: u32,
    ) -> Result<()> {
        let op = || format!("deleting route {}", describe_route(dst, gateway, oif));
        let mut message = route_message(dst, gateway, oif).map_err(|r| Error::invalid(op(), r))?;
        // Match any scope, as `ip route del` does.
        message.header.scope = RouteScope::NoWhere;
        self.socket
            .request(RouteNetlinkMessage::DelRoute(message), 0, &mut |_| {})
            .map_err(|f| f.context(op()))
    }

    /// The routes of the main table, IPv4 or IPv6 (`family_v6`), cached clones left out.
    pub fn routes(&mut self, family_v6: bool) -> Result<Vec<Route>> {
        let mut message = RouteMessage::default();
        message.header.address_family = if family_v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        self.socket
            .dump(RouteNetlinkMessage::GetRoute(message), &mut |reply| {
                if reply.message_type != RTM_NEWROUTE {
                    return Ok(None);
                }
                parse_route(reply.payload, family_v6)
            })
            .map_err(|f| {
                let family = if family_v6 { "IPv6" } else { "IPv4" };
                f.context(format!("listing {family} routes"))
            })
    }

    /// Sends an `RTM_NEWLINK` that creates `name` and returns its index: the kernel echoes
    /// the new link (`NLM_F_ECHO`, since Linux 6.3); on older kernels it is looked up.
    fn create_link(
        &mut self,
        message: LinkMessage,
        name: &str,
        op: &dyn Fn() -> String,
    ) -> Result<u32> {
        let mut index = None;
        self.socket
            .request(
                RouteNetlinkMessage::NewLink(message),
                NLM_F_CREATE | NLM_F_EXCL | NLM_F_ECHO,
                &mut |reply| {
                    if reply.message_type != RTM_NEWLINK {
                        return;
                    }
                    if let Ok(link) = parse_link(reply.payload) {
                        if link.name == name {
                            index = Some(link.index);
                        }
                    }
                },
            )
            .map_err(|f| f.context(op()))?;
        match index {
            Some(index) => Ok(index),
            None => self.link_index(name)?.ok_or_else(|| Error::Protocol {
                op: op(),
                detail: format!("{name} is missing right after being created"),
            }),
        }
    }

    fn set_flags(&mut self, index: u32, flags: LinkFlags, op: impl Fn() -> String) -> Result<()> {
        let mut message = link_message(index);
        message.header.flags = flags;
        message.header.change_mask = LinkFlags::Up;
        self.socket
            .request(RouteNetlinkMessage::SetLink(message), 0, &mut |_| {})
            .map_err(|f| f.context(op()))
    }

    fn set_link(
        &mut self,
        index: u32,
        attribute: LinkAttribute,
        op: impl Fn() -> String,
    ) -> Result<()> {
        let mut message = link_message(index);
        message.attributes.push(attribute);
        self.socket
            .request(RouteNetlinkMessage::SetLink(message), 0, &mut |_| {})
            .map_err(|f| f.context(op()))
    }
}

/// Refuses names the kernel would refuse (`dev_valid_name`), with a clearer message.
fn check_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!(
            "invalid interface name {name:?}: it must have 1 to {MAX_NAME_LEN} bytes"
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':', '\0'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "invalid interface name {name:?}: no '/', ':', whitespace, \".\" or \"..\""
        ));
    }
    Ok(())
}

fn link_message(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header = LinkHeader {
        index,
        ..LinkHeader::default()
    };
    message
}

fn address_message(
    index: u32,
    addr: IpAddr,
    prefix_len: u8,
) -> std::result::Result<AddressMessage, String> {
    check_prefix(addr, prefix_len)?;
    let mut message = AddressMessage::default();
    message.header.index = index;
    message.header.prefix_len = prefix_len;
    match addr {
        IpAddr::V4(v4) => {
            message.header.family = AddressFamily::Inet;
            message.attributes.push(AddressAttribute::Local(addr));
            message.attributes.push(AddressAttribute::Address(addr));
            if prefix_len < 31 {
                let host_mask = u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0);
                let broadcast = Ipv4Addr::from(u32::from(v4) | host_mask);
                message
                    .attributes
                    .push(AddressAttribute::Broadcast(broadcast));
            }
        }
        IpAddr::V6(_) => {
            message.header.family = AddressFamily::Inet6;
            message.header.flags = AddressHeaderFlags::Nodad;
            message.attributes.push(AddressAttribute::Address(addr));
        }
    }
    Ok(message)
}

fn route_message(
    dst: Option<(IpAddr, u8)>,
    gateway: Option<IpAddr>,
    oif: u32,
) -> std::result::Result<RouteMessage, String> {
    let v6 = match (dst, gateway) {
        (Some((d, _)), Some(g)) if d.is_ipv6() != g.is_ipv6() => {
            return Err("the destination and the gateway are of different families".into());
        }
        (Some((d, _)), _) => d.is_ipv6(),
        (None, Some(g)) => g.is_ipv6(),
        (None, None) => false,
    };
    let mut message = RouteMessage::default();
    message.header.address_family = if v6 {
        AddressFamily::Inet6
    } else {
        AddressFamily::Inet
    };
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::Boot;
    message.header.kind = RouteType::Unicast;
    // As `ip route add`: IPv6 routes are always scope universe, IPv4 routes without a
    // gateway are scope link.
    message.header.scope = if gateway.is_none() && !v6 {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    if let Some((dst, prefix_len)) = dst {
        check_prefix(dst, prefix_len)?;
        message.header.destination_prefix_length = prefix_len;
        if prefix_len > 0 || !dst.is_unspecified() {
            message
                .attributes
                .push(RouteAttribute::Destination(RouteAddress::from(dst)));
        }
    }
    if let Some(gateway) = gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    }
    message.attributes.push(RouteAttribute::Oif(oif));
    Ok(message)
}

fn describe_route(dst: Option<(IpAddr, u8)>, gateway: Option<IpAddr>, oif: u32) -> String {
    let mut text = match dst {
        Some((dst, prefix_len)) => format!("{dst}/{prefix_len}"),
        None => "default".to_string(),
    };
    if let Some(gateway) = gateway {
        text.push_str(&format!(" via {gateway}"));
    }
    text.push_str(&format!(" dev {oif}"));
    text
}

fn check_prefix(addr: IpAddr, prefix_len: u8) -> std::result::Result<(), String> {
    let max = if addr.is_ipv4() { 32 } else { 128 };
    if prefix_len > max {
        return Err(format!("prefix length {prefix_len} is more than {max}"));
    }
    Ok(())
}

fn parse_link(payload: &[u8]) -> std::result::Result<Link, String> {
    let header = LinkHeader::parse(payload).map_err(|e| format!("link message: {e}"))?;
    let mut link = Link {
        index: header.index,
        name: String::new(),
        kind: None,
        master: None,
        mtu: 0,
        mac: None,
        up: header.flags.contains(LinkFlags::Up),
    };
    for attr in attrs(payload.get(16..).unwrap_or_default()) {
        let (kind, value) = attr.map_err(|e| format!("link {}: {e}", header.index))?;
        match kind {
            IFLA_IFNAME => link.name = string_value(value),
            IFLA_MTU => link.mtu = u32_value(kind, value)?,
            IFLA_MASTER => link.master = Some(u32_value(kind, value)?).filter(|&m| m != 0),
            IFLA_ADDRESS => link.mac = value.try_into().ok(),
            IFLA_LINKINFO => {
                for info in attrs(value) {
                    let (info_kind, info_value) =
                        info.map_err(|e| format!("link {} info: {e}", header.index))?;
                    if info_kind == IFLA_INFO_KIND {
                        link.kind = Some(string_value(info_value));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(link)
}

fn parse_address(payload: &[u8]) -> std::result::Result<(u32, IpAddr, u8), String> {
    // struct ifaddrmsg { u8 family, prefixlen, flags, scope; u32 index }
    let header = payload
        .get(..8)
        .ok_or_else(|| format!("address message of {} bytes", payload.len()))?;
    let prefix_len = header[1];
    let index = u32_value(0, &header[4..8])?;
    let (mut local, mut address) = (None, None);
    for attr in attrs(&payload[8..]) {
        let (kind, value) = attr.map_err(|e| format!("address on link {index}: {e}"))?;
        match kind {
            IFA_LOCAL => local = Some(ip_value(kind, value)?),
            IFA_ADDRESS => address = Some(ip_value(kind, value)?),
            _ => {}
        }
    }
    let addr = local
        .or(address)
        .ok_or_else(|| format!("address on link {index} without IFA_ADDRESS"))?;
    Ok((index, addr, prefix_len))
}

fn parse_route(payload: &[u8], family_v6: bool) -> std::result::Result<Option<Route>, String> {
    // struct rtmsg { u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags }
    let header = payload
        .get(..12)
        .ok_or_else(|| format!("route message of {} bytes", payload.len()))?;
    let family = header[0];
    let prefix_len = header[1];
    let mut table = u32::from(header[4]);
    let flags = u32_value(0, &header[8..12])?;
    let expected = if family_v6 {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    if i32::from(family) != expected || flags & RTM_F_CLONED != 0 {
        return Ok(None);
    }
    let mut route = Route {
        dst: if family_v6 {
            IpAddr::from([0u8; 16])
        } else {
            IpAddr::from([0u8; 4])
        },
        prefix_len,
        gateway: None,
        oif: None,
    };
    for attr in attrs(&payload[12..]) {
        let (kind, value) = attr.map_err(|e| format!("route: {e}"))?;
        match kind {
            RTA_DST => route.dst = ip_value(kind, value)?,
            RTA_GATEWAY => route.gateway = Some(ip_value(kind, value)?),
            RTA_OIF => route.oif = Some(u32_value(kind, value)?),
            RTA_TABLE => table = u32_value(kind, value)?,
            _ => {}
        }
    }
    Ok((table == u32::from(RouteHeader::RT_TABLE_MAIN)).then_some(route))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("eth0").is_ok());
        assert!(check_name("br-0123456789ab").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("0123456789abcdef").is_err());
        assert!(check_name("a/b").is_err());
        assert!(check_name("a b").is_err());
        assert!(check_name("..").is_err());
    }

    #[test]
    fn broadcast_addresses() {
        let message = address_message(3, "10.1.2.3".parse().unwrap(), 24).unwrap();
        assert!(
            message
                .attributes
                .contains(&AddressAttribute::Broadcast("10.1.2.255".parse().unwrap()))
        );
        let message = address_message(3, "10.1.2.3".parse().unwrap(), 0).unwrap();
        assert!(message.attributes.contains(&AddressAttribute::Broadcast(
            "255.255.255.255".parse().unwrap()
        )));
        let message = address_message(3, "10.1.2.3".parse().unwrap(), 31).unwrap();
        assert!(
            !message
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Broadcast(_)))
        );
        assert!(address_message(3, "10.1.2.3".parse().unwrap(), 33).is_err());
        assert!(address_message(3, "::1".parse().unwrap(), 129).is_err());
    }

    #[test]
    fn route_families() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let v6: IpAddr = "fd00::1".parse().unwrap();
        assert!(route_message(Some((v4, 8)), Some(v6), 1).is_err());
        let m = route_message(None, Some(v6), 1).unwrap();
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        let m = route_message(None, None, 1).unwrap();
        assert_eq!(m.header.address_family, AddressFamily::Inet);
        assert_eq!(m.header.scope, RouteScope::Link);
        assert_eq!(
            describe_route(None, Some(v4), 3),
            "default via 10.0.0.1 dev 3"
        );
    }

    /// The hairpin mode of a bridge port as the kernel reports it: `IFLA_LINKINFO` /
    /// `IFLA_INFO_SLAVE_DATA` / `IFLA_BRPORT_MODE`.
    fn hairpin(h: &mut Handle, index: u32) -> Option<bool> {
        const IFLA_INFO_SLAVE_DATA: u16 = 5;
        let mut message = link_message(index);
        message.attributes = vec![LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats])];
        let mut mode = None;
        h.socket
            .request(RouteNetlinkMessage::GetLink(message), 0, &mut |reply| {
                let attributes = attrs(reply.payload.get(16..).unwrap_or_default());
                for (kind, value) in attributes.map_while(|a| a.ok()) {
                    if kind != IFLA_LINKINFO {
                        continue;
                    }
                    for (kind, value) in attrs(value).map_while(|a| a.ok()) {
                        if kind != IFLA_INFO_SLAVE_DATA {
                            continue;
                        }
                        for (kind, value) in attrs(value).map_while(|a| a.ok()) {
                            if kind == IFLA_BRPORT_MODE {
                                mode = value.first().map(|&v| v != 0);
                            }
                        }
                    }
                }
            })
            .unwrap();
        mode
    }

    #[test]
    fn hairpin_mode_reaches_the_bridge_port() {
        // As root, in a fresh network namespace of this test's thread.
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut h = Handle::new().unwrap();
        let br = h.add_bridge("br-hp", None).unwrap();
        let here = Netns::current().unwrap();
        let opts = VethOptions {
            master: Some(br),
            ..VethOptions::default()
        };
        let port = h.add_veth("hp0", "hp1", here.fd(), &opts).unwrap();
        assert_eq!(h.link_index("hp0").unwrap(), Some(port));
        assert_eq!(hairpin(&mut h, port), Some(false));
        h.set_hairpin(port, true).unwrap();
        assert_eq!(hairpin(&mut h, port), Some(true));
        h.set_hairpin(port, false).unwrap();
        assert_eq!(hairpin(&mut h, port), Some(false));
        // Not a port (any more).
        h.set_master(port, 0).unwrap();
        assert_eq!(hairpin(&mut h, port), None);
        let err = h.set_hairpin(port, true).unwrap_err();
        assert_eq!(err.errno(), Some(nix::errno::Errno::EOPNOTSUPP), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("turning hairpin mode on for bridge port {port}: "))
        );
    }

    #[test]
    fn a_dump_that_fails_half_way_does_not_block_the_next() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut h = Handle::new().unwrap();
        // Enough links for a dump of several datagrams.
        for i in 0..60 {
            h.add_bridge(&format!("br-d{i}"), None).unwrap();
        }
        let mut seen = 0;
        let failure = h
            .socket
            .dump(
                RouteNetlinkMessage::GetLink(LinkMessage::default()),
                &mut |_| -> std::result::Result<Option<()>, String> {
                    seen += 1;
                    Err("refused".into())
                },
            )
            .unwrap_err();
        assert!(matches!(failure, crate::nl::Failure::Malformed(_)));
        assert_eq!(seen, 1);
        assert_eq!(h.links().unwrap().len(), 61);
        assert_eq!(h.addresses().unwrap().len(), 0);
    }

    #[test]
    fn datagrams_larger_than_the_buffer() {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut h = Handle::new().unwrap();
        for i in 0..20 {
            h.add_bridge(&format!("br-g{i}"), None).unwrap();
        }
        // A dump grows the buffer to fit.
        h.socket.set_buffer_capacity(64);
        assert_eq!(h.links().unwrap().len(), 21);
        // A plain request whose reply does not fit fails cleanly, and the handle still works.
        h.socket.set_buffer_capacity(64);
        let err = h.link("br-g3").unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        h.socket.set_buffer_capacity(64 * 1024);
        assert!(h.link("br-g3").unwrap().is_some());
        h.add_bridge("br-after", None).unwrap();
    }

    #[test]
    fn malformed_replies_are_errors() {
        assert!(parse_link(&[0; 3]).is_err());
        assert!(parse_address(&[0; 7]).is_err());
        assert!(parse_route(&[0; 11], false).is_err());
        let mut link = vec![0u8; 16];
        link.extend_from_slice(&[200, 0, 3, 0]);
        assert!(parse_link(&link).is_err());
    }
}
