//! The address manager: which subnet a network gets, and which address a container gets in it.
//!
//! Subnets come from address pools (Docker's defaults, or daemon.json's
//! `default-address-pools`), the first one that overlaps neither another network nor a route
//! of the host (so a network never hides a LAN or VPN the host reaches). Within a network,
//! addresses are handed out one after another from the range (as libnetwork does: a released
//! address is not reused at once, so a name cached by a peer does not point at a newcomer),
//! never the network's own address, its broadcast address or the gateway. A [`Space`] is plain
//! data (serde): the engine keeps it in its database, so allocations survive daemon restarts.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// The address manager's refusals, worded as dockerd words them where it has words.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A subnet, range or address that is not valid for a network.
    #[error("invalid network configuration: {0}")]
    Invalid(String),
    /// A requested subnet overlaps a network that exists.
    #[error("Pool overlaps with other one on this address space")]
    Overlap,
    /// Every default pool is used up or collides with the host's routes.
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    NoPool,
    /// The network's range has no free address left.
    #[error("no available IPv4 addresses on this network's address pools: {0}")]
    Exhausted(Ipv4Net),
    /// A requested address is taken.
    #[error("Address already in use")]
    InUse,
}

/// A pool subnets are carved from: `base` cut into subnets of prefix length `size`
/// (daemon.json's `default-address-pools` entries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressPool {
    /// The pool.
    pub base: Ipv4Net,
    /// The prefix length of each network's subnet.
    pub size: u8,
}

/// Docker's default pools: 172.17.0.0/16 … 172.31.0.0/16 as /16s, then 192.168.0.0/16 as /20s.
pub fn default_pools() -> Vec<AddressPool> {
    let mut pools: Vec<AddressPool> = (17..=31)
        .map(|b| AddressPool {
            base: Ipv4Net::new(Ipv4Addr::new(172, b, 0, 0), 16).expect("a /16 is valid"),
            size: 16,
        })
        .collect();
    pools.push(AddressPool {
        base: Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16).expect("a /16 is valid"),
        size: 20,
    });
    pools
}

/// The destinations of the host's IPv4 routes, from the text of /proc/net/route (the default
/// route left out: every subnet is beneath it).
pub fn parse_routes(text: &str) -> Vec<Ipv4Net> {
    // The kernel prints each address's four bytes read as a native u32, in hex: the bytes
    // are that number's native representation again.
    let addr = |s: &str| {
        u32::from_str_radix(s, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_ne_bytes()))
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let dest = addr(f.get(1)?)?;
            let mask = addr(f.get(7)?)?;
            if mask.is_unspecified() {
                return None;
            }
            Ipv4Net::with_netmask(dest, mask).ok().map(|n| n.trunc())
        })
        .collect()
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first subnet of `pools` that overlaps neither a network in `taken` nor a route in
/// `routes`.
pub fn choose_subnet(
    pools: &[AddressPool],
    taken: &[Ipv4Net],
    routes: &[Ipv4Net],
) -> Result<Ipv4Net, Error> {
    for p in pools {
        let Ok(subnets) = p.base.subnets(p.size) else {
            continue; // a size shorter than the base's prefix: nothing to carve
        };
        for s in subnets {
            if !taken.iter().chain(routes).any(|t| overlaps(&s, t)) {
                return Ok(s);
            }
        }
    }
    Err(Error::NoPool)
}

/// A subnet asked for by name (`--subnet`): whole (no host bits), room for a gateway and a
/// container, and clear of every network in `taken`.
pub fn check_subnet(subnet: &Ipv4Net, taken: &[Ipv4Net]) -> Result<(), Error> {
    if subnet.trunc() != *subnet {
        return Err(Error::Invalid(format!(
            "subnet {subnet} has host bits set (did you mean {}?)",
            subnet.trunc()
        )));
    }
    if subnet.prefix_len() > 30 {
        return Err(Error::Invalid(format!(
            "subnet {subnet} is too small for a gateway and a container"
        )));
    }
    if taken.iter().any(|t| overlaps(subnet, t)) {
        return Err(Error::Overlap);
    }
    Ok(())
}

/// One network's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space {
    /// The network's subnet.
    pub subnet: Ipv4Net,
    /// The gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// Where containers' addresses come from (`--ip-range`; the subnet by default).
    pub range: Ipv4Net,
    /// Addresses given out.
    pub used: BTreeSet<Ipv4Addr>,
    /// The last address given out by [`Space::allocate`] (the next search starts after it).
    pub last: Option<Ipv4Addr>,
}

impl Space {
    /// The space of `subnet`, with its gateway (default: the first host address) and range
    /// (default: the subnet), both checked to lie within the subnet.
    pub fn new(
        subnet: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        range: Option<Ipv4Net>,
    ) -> Result<Space, Error> {
        if subnet.prefix_len() > 30 {
            return Err(Error::Invalid(format!(
                "subnet {subnet} is too small for a gateway and a container"
            )));
        }
        let subnet = subnet.trunc();
        let host = |ip: &Ipv4Addr| {
            subnet.contains(ip) && *ip != subnet.network() && *ip != subnet.broadcast()
        };
        let gateway = gateway.unwrap_or_else(|| u32_ip(u32::from(subnet.network()) + 1));
        if !host(&gateway) {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not a host address of subnet {subnet}"
            )));
        }
        let range = range.map(|r| r.trunc()).unwrap_or(subnet);
        if !subnet.contains(&range) {
            return Err(Error::Invalid(format!(
                "ip-range {range} is not within subnet {subnet}"
            )));
        }
        Ok(Space {
            subnet,
            gateway,
            range,
            used: BTreeSet::new(),
            last: None,
        })
    }

    /// Whether `ip` may be a container's: a host address of the subnet, not the gateway.
    fn assignable(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(&ip)
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != self.gateway
    }

    /// The next free address of the range after the last one given out (wrapping round).
    pub fn allocate(&mut self) -> Result<Ipv4Addr, Error> {
        let first = u32::from(self.range.network());
        let last = u32::from(self.range.broadcast());
        let len = u64::from(last - first) + 1;
        let start = match self.last {
            Some(l) if self.range.contains(&l) => u64::from(u32::from(l) - first) + 1,
            _ => 0,
        };
        for i in 0..len {
            let ip = u32_ip(first + ((start + i) % len) as u32);
            if self.assignable(ip) && !self.used.contains(&ip) {
                self.used.insert(ip);
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(Error::Exhausted(self.range))
    }

    /// Give out `ip` itself (`--ip`): it must be a free host address of the subnet.
    pub fn reserve(&mut self, ip: Ipv4Addr) -> Result<(), Error> {
        if !self.assignable(ip) {
            return Err(Error::Invalid(format!(
                "address {ip} is not an assignable address of subnet {}",
                self.subnet
            )));
        }
        if !self.used.insert(ip) {
            return Err(Error::InUse);
        }
        Ok(())
    }

    /// Take `ip` back (unknown addresses are ignored: a release is idempotent).
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.used.remove(&ip);
    }
}

/// One network's IPv6 addresses: the gateway is the subnet's first address after the
/// network's own (`::1`), containers get the following ones in turn (a /64 is never used up:
/// the search wraps after the last one handed out).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Space6 {
    /// The subnet (at most a /120, room for a gateway and containers).
    pub subnet: Ipv6Net,
    /// The gateway.
    pub gateway: Ipv6Addr,
    /// Addresses given out.
    pub used: BTreeSet<Ipv6Addr>,
    /// The last address handed out.
    pub last: Option<Ipv6Addr>,
}

impl Space6 {
    /// The space of `subnet` with its gateway (default: the first host address).
    pub fn new(subnet: Ipv6Net, gateway: Option<Ipv6Addr>) -> Result<Space6, Error> {
        if subnet.prefix_len() > 120 {
            return Err(Error::Invalid(format!(
                "subnet {subnet} is too small (at most a /120)"
            )));
        }
        if subnet.trunc() != subnet {
            return Err(Error::Invalid(format!(
                "subnet {subnet} has host bits set (did you mean {}?)",
                subnet.trunc()
            )));
        }
        let first = u128::from(subnet.network()) + 1;
        let gateway = gateway.unwrap_or_else(|| Ipv6Addr::from(first));
        if !subnet.contains(&gateway) || gateway == subnet.network() {
            return Err(Error::Invalid(format!(
                "gateway {gateway} is not a host address of subnet {subnet}"
            )));
        }
        Ok(Space6 {
            subnet,
            gateway,
            used: BTreeSet::new(),
            last: None,
        })
    }

    fn assignable(&self, ip: Ipv6Addr) -> bool {
        self.subnet.contains(&ip) && ip != self.subnet.network() && ip != self.gateway
    }

    /// The next free address after the last one handed out.
    pub fn allocate(&mut self) -> Result<Ipv6Addr, Error> {
        let first = u128::from(self.subnet.network());
        let size: u128 = 1u128 << (128 - u32::from(self.subnet.prefix_len())).min(127);
        let start = match self.last {
            Some(l) if self.subnet.contains(&l) => u128::from(l) - first + 1,
            _ => 1,
        };
        // Look at most this many addresses (a /64 is never full in practice).
        let tries = size.min(1 << 20);
        for i in 0..tries {
            let ip = Ipv6Addr::from(first + (start + i) % size);
            if self.assignable(ip) && !self.used.contains(&ip) {
                self.used.insert(ip);
                self.last = Some(ip);
                return Ok(ip);
            }
        }
        Err(Error::Invalid(format!(
            "no available IPv6 addresses on this network's address pools: {}",
            self.subnet
        )))
    }

    /// Give out `ip` itself (`--ip6`).
    pub fn reserve(&mut self, ip: Ipv6Addr) -> Result<(), Error> {
        if !self.assignable(ip) {
            return Err(Error::Invalid(format!(
                "address {ip} is not an assignable address of subnet {}",
                self.subnet
            )));
        }
        if !self.used.insert(ip) {
            return Err(Error::InUse);
        }
        Ok(())
    }

    /// Take `ip` back.
    pub fn release(&mut self, ip: Ipv6Addr) {
        self.used.remove(&ip);
    }
}

/// A unique local /64 for a network asked to have IPv6 without a subnet: `fdXX:XXXX:XXXX::/64`
/// (RFC 4193, a random global ID), clear of `taken`.
pub fn random_ula(taken: &[Ipv6Net], random: impl Fn() -> u64) -> Ipv6Net {
    loop {
        let id = random() & 0xff_ffff_ffff; // 40 bits
        let hi: u128 = (0xfd_u128 << 120) | (u128::from(id) << 80);
        let net = Ipv6Net::new(Ipv6Addr::from(hi), 64).expect("a /64 is valid");
        if !taken
            .iter()
            .any(|t| t.contains(&net.network()) || net.contains(&t.network()))
        {
            return net;
        }
    }
}

fn u32_ip(v: u32) -> Ipv4Addr {
    Ipv4Addr::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn dockers_default_pools() {
        let p = default_pools();
        assert_eq!(p.len(), 16);
        assert_eq!((p[0].base, p[0].size), (net("172.17.0.0/16"), 16));
        assert_eq!((p[14].base, p[14].size), (net("172.31.0.0/16"), 16));
        assert_eq!((p[15].base, p[15].size), (net("192.168.0.0/16"), 20));
    }

    #[test]
    fn routes_of_proc_net_route() {
        // A host with a default route, a /24 LAN on eth0 and docker0's 172.17.0.0/16.
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
";
        assert_eq!(
            parse_routes(text),
            vec![net("192.168.1.0/24"), net("172.17.0.0/16")]
        );
        assert!(parse_routes("").is_empty());
        assert!(parse_routes("header\ngarbage line\n").is_empty());
    }

    #[test]
    fn a_subnet_clear_of_networks_and_routes() {
        let pools = default_pools();
        assert_eq!(choose_subnet(&pools, &[], &[]), Ok(net("172.17.0.0/16")));
        // Taken by a network, or hidden behind a route (a VPN's 172.16.0.0/12 covers them all).
        assert_eq!(
            choose_subnet(&pools, &[net("172.17.0.0/16")], &[net("172.18.5.0/24")]),
            Ok(net("172.19.0.0/16"))
        );
        assert_eq!(
            choose_subnet(&pools, &[], &[net("172.16.0.0/12")]),
            Ok(net("192.168.0.0/20"))
        );
        assert_eq!(
            choose_subnet(
                &pools,
                &[net("192.168.0.0/20")],
                &[net("172.16.0.0/12"), net("192.168.16.1/32")]
            ),
            Ok(net("192.168.32.0/20"))
        );
        assert_eq!(
            choose_subnet(&pools, &[], &[net("172.16.0.0/12"), net("192.168.0.0/16")]),
            Err(Error::NoPool)
        );
        // A pool whose size is shorter than its base's prefix carves nothing.
        let odd = [AddressPool {
            base: net("10.10.0.0/24"),
            size: 16,
        }];
        assert_eq!(choose_subnet(&odd, &[], &[]), Err(Error::NoPool));
    }

    #[test]
    fn requested_subnets_are_checked() {
        assert_eq!(check_subnet(&net("10.5.0.0/16"), &[]), Ok(()));
        assert!(matches!(
            check_subnet(&net("10.5.0.1/16"), &[]),
            Err(Error::Invalid(m)) if m.contains("10.5.0.0/16")
        ));
        assert!(check_subnet(&net("10.5.0.0/31"), &[]).is_err());
        assert_eq!(
            check_subnet(&net("10.5.1.0/24"), &[net("10.5.0.0/16")]),
            Err(Error::Overlap)
        );
        assert_eq!(
            check_subnet(&net("10.0.0.0/8"), &[net("10.5.0.0/16")]),
            Err(Error::Overlap)
        );
    }

    #[test]
    fn addresses_one_after_another_never_the_reserved_ones() {
        let mut s = Space::new(net("10.9.0.0/29"), None, None).unwrap();
        assert_eq!(s.gateway, ip("10.9.0.1"));
        // .0 is the network, .1 the gateway, .7 the broadcast: .2 to .6.
        let got: Vec<Ipv4Addr> = (0..5).map(|_| s.allocate().unwrap()).collect();
        assert_eq!(
            got,
            ["10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"].map(ip)
        );
        assert_eq!(s.allocate(), Err(Error::Exhausted(net("10.9.0.0/29"))));
        // A released address is not given out again at once: the search goes on after the
        // last one, round to the start.
        s.release(ip("10.9.0.3"));
        s.release(ip("10.9.0.5"));
        assert_eq!(s.allocate(), Ok(ip("10.9.0.3")));
        assert_eq!(s.allocate(), Ok(ip("10.9.0.5")));
        s.release(ip("10.9.0.2"));
        s.release(ip("10.9.0.6"));
        assert_eq!(s.allocate(), Ok(ip("10.9.0.6")));
        assert_eq!(s.allocate(), Ok(ip("10.9.0.2")));
        // Releasing twice, or an address never given, changes nothing.
        s.release(ip("10.9.0.2"));
        s.release(ip("10.9.0.2"));
        s.release(ip("1.2.3.4"));
        assert_eq!(s.used.len(), 4);
    }

    #[test]
    fn gateway_range_and_requested_addresses() {
        let s = Space::new(net("10.9.0.0/24"), Some(ip("10.9.0.254")), None).unwrap();
        assert_eq!(s.gateway, ip("10.9.0.254"));
        for bad in ["10.9.0.0", "10.9.0.255", "10.8.0.1"] {
            assert!(
                Space::new(net("10.9.0.0/24"), Some(ip(bad)), None).is_err(),
                "{bad}"
            );
        }
        assert!(Space::new(net("10.9.0.0/24"), None, Some(net("10.9.1.0/28"))).is_err());
        assert!(Space::new(net("10.9.0.0/31"), None, None).is_err());
        // Host bits in the subnet are dropped.
        assert_eq!(
            Space::new(net("10.9.0.7/24"), None, None).unwrap().subnet,
            net("10.9.0.0/24")
        );

        // The range: addresses come from it only.
        let mut s = Space::new(net("10.9.0.0/24"), None, Some(net("10.9.0.128/30"))).unwrap();
        let got: Vec<Ipv4Addr> = (0..4).map(|_| s.allocate().unwrap()).collect();
        assert_eq!(
            got,
            ["10.9.0.128", "10.9.0.129", "10.9.0.130", "10.9.0.131"].map(ip)
        );
        assert!(s.allocate().is_err());

        // --ip: any host address of the subnet, once.
        let mut s = Space::new(net("10.9.0.0/24"), None, None).unwrap();
        assert_eq!(s.reserve(ip("10.9.0.2")), Ok(()));
        assert_eq!(s.reserve(ip("10.9.0.2")), Err(Error::InUse));
        for bad in ["10.9.0.1", "10.9.0.0", "10.9.0.255", "10.10.0.2"] {
            assert!(
                matches!(s.reserve(ip(bad)), Err(Error::Invalid(_))),
                "{bad}"
            );
        }
        // An address reserved ahead is skipped by the allocation.
        assert_eq!(s.allocate(), Ok(ip("10.9.0.3")));
    }

    #[test]
    fn a_space_round_trips_through_json() {
        let mut s = Space::new(net("172.18.0.0/16"), None, None).unwrap();
        s.allocate().unwrap();
        s.reserve(ip("172.18.3.4")).unwrap();
        let text = serde_json::to_string(&s).unwrap();
        let back: Space = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        let mut back = back;
        assert_eq!(back.allocate(), Ok(ip("172.18.0.3")));
    }

    #[test]
    fn ipv6_addresses() {
        let subnet: Ipv6Net = "fd00:1::/64".parse().unwrap();
        let mut s = Space6::new(subnet, None).unwrap();
        assert_eq!(s.gateway, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            s.allocate().unwrap(),
            "fd00:1::2".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            s.allocate().unwrap(),
            "fd00:1::3".parse::<Ipv6Addr>().unwrap()
        );
        s.reserve("fd00:1::10".parse().unwrap()).unwrap();
        assert_eq!(s.reserve("fd00:1::10".parse().unwrap()), Err(Error::InUse));
        assert!(s.reserve("fd00:2::10".parse().unwrap()).is_err());
        assert!(s.reserve("fd00:1::1".parse().unwrap()).is_err());
        s.release("fd00:1::2".parse().unwrap());
        assert_eq!(
            s.allocate().unwrap(),
            "fd00:1::4".parse::<Ipv6Addr>().unwrap()
        );
        assert!(Space6::new("fd00:1::1/64".parse().unwrap(), None).is_err());
        assert!(Space6::new("fd00:1::/126".parse().unwrap(), None).is_err());
        // A tiny one wraps and fills up.
        let mut t = Space6::new("fd00:3::/120".parse().unwrap(), None).unwrap();
        for _ in 0..254 {
            t.allocate().unwrap();
        }
        assert!(t.allocate().is_err());
        let n = random_ula(&[], || 0x12_3456_789a);
        assert_eq!(n.to_string(), "fd12:3456:789a::/64");
        assert_eq!(n.prefix_len(), 64);
    }
}
