//! The nft scripts, rendered without running anything (so they can be read and tested without a
//! kernel). Each function returns the text that [`Firewall`](crate::Firewall) pipes to
//! `nft -f -` as one atomic batch.
//!
//! Every script is a list of one-line commands (`add ...`, `flush ...`, `delete ...`), one
//! object or element per line, so that nft's error location (`/dev/stdin:LINE:COL`) names the
//! port or network it refused.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{Error, Result};
use crate::model::{NetworkRules, PortMap, check_ifname, check_table_name, encode_ifname};

/// The NAT base chain at prerouting (priority `dstnat`, -100): published ports for packets
/// arriving from outside.
pub const CHAIN_PREROUTING: &str = "prerouting";
/// The NAT base chain at output (priority -100): published ports for packets the host sends.
pub const CHAIN_OUTPUT: &str = "output";
/// The NAT base chain at postrouting (priority `srcnat`, 100): masquerading.
pub const CHAIN_POSTROUTING: &str = "postrouting";
/// The filter base chain at input: refuses packets from a bridge to 127.0.0.0/8.
pub const CHAIN_INPUT: &str = "input";
/// The filter base chain at forward: isolation between bridges, internal networks, icc.
pub const CHAIN_FORWARD: &str = "forward";
/// The regular chain with the DNAT rules, one per port map.
pub const CHAIN_PUBLISHED: &str = "published";
/// The set of every berth bridge (type `ifname`).
pub const SET_BRIDGES: &str = "bridges";
/// The verdict map from a bridge name to `jump fwd-<bridge>` (looked up by `iifname` and by
/// `oifname` in [`CHAIN_FORWARD`]).
pub const MAP_FORWARD: &str = "forward_nets";
/// The verdict map from a bridge name to `jump nat-<bridge>` (looked up by `iifname` and by
/// `oifname` in [`CHAIN_POSTROUTING`]).
pub const MAP_NAT: &str = "nat_nets";
/// Ports published on every local IPv4 address: `proto . port : addr . port`.
pub const MAP_PORTS4: &str = "ports4";
/// Ports published on one local IPv4 address: `addr . proto . port : addr . port`.
pub const MAP_PORTS4_ADDR: &str = "ports4_addr";
/// Ports published on every local IPv6 address.
pub const MAP_PORTS6: &str = "ports6";
/// Ports published on one local IPv6 address.
pub const MAP_PORTS6_ADDR: &str = "ports6_addr";
/// The prefix of a network's filter chain (`fwd-br0`).
pub const PREFIX_FORWARD: &str = "fwd-";
/// The prefix of a network's NAT chain (`nat-br0`).
pub const PREFIX_NAT: &str = "nat-";

/// The four port maps: name, IPv6?, keyed by a host address?
pub(crate) const PORT_MAPS: [(&str, bool, bool); 4] = [
    (MAP_PORTS4, false, false),
    (MAP_PORTS4_ADDR, false, true),
    (MAP_PORTS6, true, false),
    (MAP_PORTS6_ADDR, true, true),
];

/// A script under construction, remembering which port or network each line is about.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    text: String,
    lines: usize,
    subjects: Vec<(usize, String)>,
}

impl Batch {
    fn line(&mut self, s: &str) {
        self.text.push_str(s);
        self.text.push('\n');
        self.lines += 1;
    }

    fn line_about(&mut self, s: &str, subject: String) {
        self.line(s);
        self.subjects.push((self.lines, subject));
    }

    /// Appends `other`'s lines (and what they are about).
    pub(crate) fn append(&mut self, other: Batch) {
        let base = self.lines;
        self.text.push_str(&other.text);
        self.lines += other.lines;
        self.subjects
            .extend(other.subjects.into_iter().map(|(l, s)| (l + base, s)));
    }

    /// The script.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether the script has no command.
    pub(crate) fn is_empty(&self) -> bool {
        self.lines == 0
    }

    /// What line `n` (1-based) is about, if it is about one port or network.
    pub(crate) fn subject_of_line(&self, n: usize) -> Option<&str> {
        self.subjects
            .iter()
            .find(|(l, _)| *l == n)
            .map(|(_, s)| s.as_str())
    }
}

/// The operation of setting up `table`.
pub(crate) fn op_ensure(table: &str) -> String {
    format!("setting up nftables table inet {table}")
}

fn op_ports(verb: &str, ports: &[PortMap]) -> String {
    match ports {
        [p] => format!("{verb} port {p}"),
        _ => {
            let mut s = format!("{verb} {} ports", ports.len());
            for (i, p) in ports.iter().take(3).enumerate() {
                s.push_str(if i == 0 { " (" } else { ", " });
                let _ = write!(s, "{p}");
            }
            if ports.len() > 3 {
                s.push_str(", ...");
            }
            if !ports.is_empty() {
                s.push(')');
            }
            s
        }
    }
}

/// The operation of publishing `ports`.
pub(crate) fn op_add_ports(ports: &[PortMap]) -> String {
    op_ports("publishing", ports)
}

/// The operation of unpublishing `ports`.
pub(crate) fn op_remove_ports(ports: &[PortMap]) -> String {
    op_ports("unpublishing", ports)
}

fn table_ok(table: &str, op: &str) -> Result<()> {
    check_table_name(table).map_err(|reason| Error::Invalid {
        op: op.to_string(),
        reason,
    })
}

fn bridge_ok(bridge: &str, op: &str) -> Result<()> {
    check_ifname(bridge).map_err(|reason| Error::Invalid {
        op: op.to_string(),
        reason,
    })
}

/// The chain names of the network on `bridge`: (`fwd-…`, `nat-…`).
pub(crate) fn network_chains(bridge: &str) -> (String, String) {
    let e = encode_ifname(bridge);
    (format!("{PREFIX_FORWARD}{e}"), format!("{PREFIX_NAT}{e}"))
}

fn push_ensure(b: &mut Batch, t: &str) {
    let tbl = format!("inet {t}");
    b.line(&format!("add table {tbl}"));
    b.line(&format!(
        "add chain {tbl} {CHAIN_PREROUTING} {{ type nat hook prerouting priority dstnat; policy accept; }}"
    ));
    // nft 1.0.6 accepts the name `dstnat` only at prerouting: -100 is the same number.
    b.line(&format!(
        "add chain {tbl} {CHAIN_OUTPUT} {{ type nat hook output priority -100; policy accept; }}"
    ));
    b.line(&format!(
        "add chain {tbl} {CHAIN_POSTROUTING} {{ type nat hook postrouting priority srcnat; policy accept; }}"
    ));
    b.line(&format!(
        "add chain {tbl} {CHAIN_INPUT} {{ type filter hook input priority filter; policy accept; }}"
    ));
    b.line(&format!(
        "add chain {tbl} {CHAIN_FORWARD} {{ type filter hook forward priority filter; policy accept; }}"
    ));
    b.line(&format!("add chain {tbl} {CHAIN_PUBLISHED}"));
    b.line(&format!("add set {tbl} {SET_BRIDGES} {{ type ifname; }}"));
    b.line(&format!(
        "add map {tbl} {MAP_FORWARD} {{ type ifname : verdict; }}"
    ));
    b.line(&format!(
        "add map {tbl} {MAP_NAT} {{ type ifname : verdict; }}"
    ));
    for (map, v6, by_addr) in PORT_MAPS {
        let addr = if v6 { "ipv6_addr" } else { "ipv4_addr" };
        let key = if by_addr {
            format!("{addr} . inet_proto . inet_service")
        } else {
            "inet_proto . inet_service".to_string()
        };
        b.line(&format!(
            "add map {tbl} {map} {{ type {key} : {addr} . inet_service; }}"
        ));
    }
    // The base chains' rules refer to maps, never to elements: rewriting them (flush, then
    // add, in the same atomic batch) leaves every network and port in place and makes this
    // idempotent.
    for c in [
        CHAIN_PREROUTING,
        CHAIN_OUTPUT,
        CHAIN_POSTROUTING,
        CHAIN_INPUT,
        CHAIN_FORWARD,
        CHAIN_PUBLISHED,
    ] {
        b.line(&format!("flush chain {tbl} {c}"));
    }
    let rule = |b: &mut Batch, chain: &str, r: &str| b.line(&format!("add rule {tbl} {chain} {r}"));
    // Published ports: for packets to a local address, arriving or sent by the host.
    rule(
        b,
        CHAIN_PREROUTING,
        &format!("fib daddr type local jump {CHAIN_PUBLISHED}"),
    );
    rule(
        b,
        CHAIN_OUTPUT,
        &format!("fib daddr type local jump {CHAIN_PUBLISHED}"),
    );
    // One address first, then every address. A failed map lookup ends the rule, not the chain.
    rule(
        b,
        CHAIN_PUBLISHED,
        &format!("dnat ip to ip daddr . meta l4proto . th dport map @{MAP_PORTS4_ADDR}"),
    );
    rule(
        b,
        CHAIN_PUBLISHED,
        &format!("meta nfproto ipv4 dnat ip to meta l4proto . th dport map @{MAP_PORTS4}"),
    );
    rule(
        b,
        CHAIN_PUBLISHED,
        &format!("dnat ip6 to ip6 daddr . meta l4proto . th dport map @{MAP_PORTS6_ADDR}"),
    );
    rule(
        b,
        CHAIN_PUBLISHED,
        &format!("meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @{MAP_PORTS6}"),
    );
    // Masquerading, per network: out of the network (by iifname), and into it after DNAT
    // (hairpin, loopback sources) (by oifname).
    rule(b, CHAIN_POSTROUTING, &format!("iifname vmap @{MAP_NAT}"));
    rule(b, CHAIN_POSTROUTING, &format!("oifname vmap @{MAP_NAT}"));
    // route_localnet=1 on a bridge (for published ports on 127.0.0.1) would let a container
    // reach the host's loopback services through its gateway: only replies may come in.
    rule(
        b,
        CHAIN_INPUT,
        &format!(
            "iifname @{SET_BRIDGES} ip daddr 127.0.0.0/8 ct state != {{ established, related }} drop"
        ),
    );
    // Forwarding: replies first; then each network's own verdicts (icc, internal); then
    // published ports; then nothing else from one berth bridge to another.
    rule(b, CHAIN_FORWARD, "ct state established,related accept");
    rule(b, CHAIN_FORWARD, &format!("iifname vmap @{MAP_FORWARD}"));
    rule(b, CHAIN_FORWARD, &format!("oifname vmap @{MAP_FORWARD}"));
    rule(b, CHAIN_FORWARD, "ct status dnat accept");
    rule(
        b,
        CHAIN_FORWARD,
        &format!("iifname @{SET_BRIDGES} oifname @{SET_BRIDGES} drop"),
    );
}

/// The script that creates `table` with its base chains and maps, or brings an existing one
/// back to this layout: the base chains' rules are rewritten; networks and ports are kept.
pub fn ensure(table: &str) -> Result<String> {
    Ok(ensure_batch(table)?.text)
}

pub(crate) fn ensure_batch(table: &str) -> Result<Batch> {
    table_ok(table, &op_ensure(table))?;
    let mut b = Batch::default();
    push_ensure(&mut b, table);
    Ok(b)
}

fn subnet_list(nets: &[&IpNet]) -> String {
    let items: Vec<String> = nets.iter().map(|n| n.to_string()).collect();
    format!("{{ {} }}", items.join(", "))
}

/// The script that adds (or updates) the network `n` in `table`: its two chains (flushed and
/// rewritten, so adding twice is adding once) and its elements in the set and verdict maps.
/// The table must exist; when nft refuses the script because it does not,
/// [`Firewall::add_network`](crate::Firewall::add_network) runs [`ensure`]'s script followed
/// by this one, as one batch.
pub fn add_network(table: &str, n: &NetworkRules) -> Result<String> {
    Ok(add_network_batch(table, n)?.text)
}

pub(crate) fn add_network_batch(table: &str, n: &NetworkRules) -> Result<Batch> {
    let op = format!("adding network {}", n.bridge);
    table_ok(table, &op)?;
    bridge_ok(&n.bridge, &op)?;
    let mut b = Batch::default();
    let tbl = format!("inet {table}");
    let br = &n.bridge;
    let (fwd, nat) = network_chains(br);
    let subnets: BTreeSet<IpNet> = n.subnets.iter().map(|s| s.trunc()).collect();
    let v4: Vec<&IpNet> = subnets
        .iter()
        .filter(|s| matches!(s, IpNet::V4(_)))
        .collect();
    let v6: Vec<&IpNet> = subnets
        .iter()
        .filter(|s| matches!(s, IpNet::V6(_)))
        .collect();

    for c in [&fwd, &nat] {
        b.line(&format!("add chain {tbl} {c}"));
        b.line(&format!("flush chain {tbl} {c}"));
    }
    let rule = |b: &mut Batch, chain: &str, r: String| {
        b.line_about(&format!("add rule {tbl} {chain} {r}"), op.clone())
    };
    // Filter: reached for packets from the bridge (iifname) and to it (oifname).
    let icc = if n.icc { "accept" } else { "drop" };
    rule(
        &mut b,
        &fwd,
        format!("iifname \"{br}\" oifname \"{br}\" {icc}"),
    );
    if n.internal {
        rule(&mut b, &fwd, format!("iifname \"{br}\" drop"));
        rule(&mut b, &fwd, format!("oifname \"{br}\" drop"));
    }
    // NAT: out of the network to anywhere else.
    if n.masquerade && !n.internal {
        if !v4.is_empty() {
            rule(
                &mut b,
                &nat,
                format!(
                    "iifname \"{br}\" oifname != \"{br}\" ip saddr {} masquerade",
                    subnet_list(&v4)
                ),
            );
        }
        if !v6.is_empty() {
            rule(
                &mut b,
                &nat,
                format!(
                    "iifname \"{br}\" oifname != \"{br}\" ip6 saddr {} masquerade",
                    subnet_list(&v6)
                ),
            );
        }
    }
    // NAT: into the network after DNAT, from the host's loopback (a port published on
    // 127.0.0.1 with route_localnet=1), or from the network itself (hairpin): the container
    // must answer through the host, which undoes the DNAT.
    rule(
        &mut b,
        &nat,
        format!("oifname \"{br}\" ct status dnat ip saddr 127.0.0.0/8 masquerade"),
    );
    if !v4.is_empty() {
        rule(
            &mut b,
            &nat,
            format!(
                "oifname \"{br}\" ct status dnat ip saddr {} masquerade",
                subnet_list(&v4)
            ),
        );
    }
    if !v6.is_empty() {
        rule(
            &mut b,
            &nat,
            format!(
                "oifname \"{br}\" ct status dnat ip6 saddr {} masquerade",
                subnet_list(&v6)
            ),
        );
    }
    b.line_about(
        &format!("add element {tbl} {SET_BRIDGES} {{ \"{br}\" }}"),
        op.clone(),
    );
    b.line_about(
        &format!("add element {tbl} {MAP_FORWARD} {{ \"{br}\" : jump {fwd} }}"),
        op.clone(),
    );
    b.line_about(
        &format!("add element {tbl} {MAP_NAT} {{ \"{br}\" : jump {nat} }}"),
        op.clone(),
    );
    Ok(b)
}

/// The script that removes every trace of the network on `bridge` from `table`: its elements
/// in the set and maps, then its chains. It first adds each of them (adding what exists
/// changes nothing), so the batch succeeds whether or not the network is there; the table and
/// its maps must exist.
pub fn remove_network(table: &str, bridge: &str) -> Result<String> {
    Ok(remove_network_batch(table, bridge)?.text)
}

pub(crate) fn remove_network_batch(table: &str, bridge: &str) -> Result<Batch> {
    let op = format!("removing network {bridge}");
    table_ok(table, &op)?;
    bridge_ok(bridge, &op)?;
    let mut b = Batch::default();
    let tbl = format!("inet {table}");
    let (fwd, nat) = network_chains(bridge);
    b.line(&format!("add chain {tbl} {fwd}"));
    b.line(&format!("add chain {tbl} {nat}"));
    b.line(&format!(
        "add element {tbl} {SET_BRIDGES} {{ \"{bridge}\" }}"
    ));
    b.line(&format!(
        "add element {tbl} {MAP_FORWARD} {{ \"{bridge}\" : jump {fwd} }}"
    ));
    b.line(&format!(
        "add element {tbl} {MAP_NAT} {{ \"{bridge}\" : jump {nat} }}"
    ));
    push_remove_network_present(&mut b, table, bridge, true, true, true, true, true);
    Ok(b)
}

/// Deletes the parts of a network that are present (no adding first): for the fallback after
/// listing the table.
#[allow(clippy::too_many_arguments)]
pub(crate) fn push_remove_network_present(
    b: &mut Batch,
    table: &str,
    bridge: &str,
    in_set: bool,
    in_forward: bool,
    in_nat: bool,
    fwd_chain: bool,
    nat_chain: bool,
) {
    let tbl = format!("inet {table}");
    let (fwd, nat) = network_chains(bridge);
    if in_set {
        b.line(&format!(
            "delete element {tbl} {SET_BRIDGES} {{ \"{bridge}\" }}"
        ));
    }
    if in_forward {
        b.line(&format!(
            "delete element {tbl} {MAP_FORWARD} {{ \"{bridge}\" }}"
        ));
    }
    if in_nat {
        b.line(&format!(
            "delete element {tbl} {MAP_NAT} {{ \"{bridge}\" }}"
        ));
    }
    // A chain can go once no map element jumps to it (the elements above, same batch).
    if fwd_chain {
        b.line(&format!("delete chain {tbl} {fwd}"));
    }
    if nat_chain {
        b.line(&format!("delete chain {tbl} {nat}"));
    }
}

/// The map that holds `p` and its element's key and data, as nft text.
pub(crate) fn port_element(p: &PortMap) -> (&'static str, String, String) {
    let p = p.normalized();
    let v6 = p.container_ip.is_ipv6();
    let map = match (v6, p.host_ip.is_some()) {
        (false, false) => MAP_PORTS4,
        (false, true) => MAP_PORTS4_ADDR,
        (true, false) => MAP_PORTS6,
        (true, true) => MAP_PORTS6_ADDR,
    };
    let key = match p.host_ip {
        Some(ip) => format!("{} . {} . {}", addr(ip), p.proto, p.host_port),
        None => format!("{} . {}", p.proto, p.host_port),
    };
    let data = format!("{} . {}", addr(p.container_ip), p.container_port);
    (map, key, data)
}

fn addr(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        // nft reads IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as Rust prints them.
        IpAddr::V6(a) => a.to_string(),
    }
}

/// Checks `ports` and removes exact duplicates (after [`PortMap::normalized`]), keeping the
/// first occurrence's order.
fn checked_ports(ports: &[PortMap], op: &str, refuse_clashes: bool) -> Result<Vec<PortMap>> {
    let mut out: Vec<PortMap> = Vec::with_capacity(ports.len());
    let mut seen = std::collections::HashMap::new();
    for p in ports {
        p.check().map_err(|reason| Error::Invalid {
            op: op_add_or_remove_one(op, p),
            reason,
        })?;
        let n = p.normalized();
        match seen.get(&n.key()) {
            None => {
                seen.insert(n.key(), out.len());
                out.push(n);
            }
            Some(&i) if out[i] == n => {}
            Some(&i) if refuse_clashes => {
                return Err(Error::Invalid {
                    op: op.to_string(),
                    reason: format!("host port published twice: {} and {}", out[i], n),
                });
            }
            Some(_) => out.push(n),
        }
    }
    Ok(out)
}

fn op_add_or_remove_one(op: &str, p: &PortMap) -> String {
    let verb = op.split(' ').next().unwrap_or("publishing");
    format!("{verb} port {p}")
}

/// The script that publishes `ports` in `table`: one `add element` line per port (exact
/// duplicates dropped). Publishing a port that is present with the same target changes
/// nothing; one present with another target makes nft refuse the whole batch (`File exists`).
/// The table must exist; when nft refuses the script because it does not,
/// [`Firewall::add_ports`](crate::Firewall::add_ports) runs [`ensure`]'s script followed by
/// this one, as one batch.
pub fn add_ports(table: &str, ports: &[PortMap]) -> Result<String> {
    Ok(add_ports_batch(table, ports)?.text)
}

pub(crate) fn add_ports_batch(table: &str, ports: &[PortMap]) -> Result<Batch> {
    let op = op_add_ports(ports);
    table_ok(table, &op)?;
    let ports = checked_ports(ports, &op, true)?;
    let mut b = Batch::default();
    for p in &ports {
        let (map, key, data) = port_element(p);
        b.line_about(
            &format!("add element inet {table} {map} {{ {key} : {data} }}"),
            op_add_ports(std::slice::from_ref(p)),
        );
    }
    Ok(b)
}

/// The script that unpublishes `ports` from `table`: each port is added, then deleted, so the
/// batch succeeds whether or not it was present (the table and its maps must exist). nft
/// refuses it if a port's host address and port are published to another target (adding
/// clashes): [`Firewall::remove_ports`](crate::Firewall::remove_ports) then removes only the
/// exact mappings present.
pub fn remove_ports(table: &str, ports: &[PortMap]) -> Result<String> {
    Ok(remove_ports_batch(table, ports)?.text)
}

pub(crate) fn remove_ports_batch(table: &str, ports: &[PortMap]) -> Result<Batch> {
    let op = op_remove_ports(ports);
    table_ok(table, &op)?;
    let ports = checked_ports(ports, &op, false)?;
    let mut b = Batch::default();
    for p in &ports {
        let (map, key, data) = port_element(p);
        let subject = op_remove_ports(std::slice::from_ref(p));
        b.line_about(
            &format!("add element inet {table} {map} {{ {key} : {data} }}"),
            subject.clone(),
        );
        b.line_about(
            &format!("delete element inet {table} {map} {{ {key} }}"),
            subject,
        );
    }
    Ok(b)
}

/// Deletes ports known to be present (no adding first): the fallback after listing.
pub(crate) fn remove_present_ports_batch(table: &str, ports: &[PortMap]) -> Batch {
    let mut b = Batch::default();
    for p in ports {
        let (map, key, _) = port_element(p);
        b.line_about(
            &format!("delete element inet {table} {map} {{ {key} }}"),
            op_remove_ports(std::slice::from_ref(p)),
        );
    }
    b
}

/// The script that deletes `table` with everything in it, whether or not it exists (it is
/// added first).
pub fn delete_table(table: &str) -> Result<String> {
    table_ok(table, &format!("deleting nftables table inet {table}"))?;
    Ok(format!(
        "add table inet {table}\ndelete table inet {table}\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Proto;

    fn port(host_ip: Option<&str>, host_port: u16, cip: &str, cport: u16) -> PortMap {
        PortMap {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|h| h.parse().unwrap()),
            host_port,
            container_ip: cip.parse().unwrap(),
            container_port: cport,
        }
    }

    #[test]
    fn ensure_declares_everything_and_rewrites_base_rules() {
        let s = ensure("berth").unwrap();
        assert!(s.starts_with("add table inet berth\n"));
        for name in [
            "prerouting { type nat hook prerouting priority dstnat;",
            "output { type nat hook output priority -100;",
            "postrouting { type nat hook postrouting priority srcnat;",
            "input { type filter hook input priority filter; policy accept;",
            "forward { type filter hook forward priority filter; policy accept;",
            "add set inet berth bridges { type ifname; }",
            "add map inet berth forward_nets { type ifname : verdict; }",
            "add map inet berth ports4 { type inet_proto . inet_service : ipv4_addr . inet_service; }",
            "add map inet berth ports6_addr { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }",
            "flush chain inet berth forward\n",
            "add rule inet berth prerouting fib daddr type local jump published\n",
            "add rule inet berth output fib daddr type local jump published\n",
            "add rule inet berth forward ct status dnat accept\n",
            "add rule inet berth forward iifname @bridges oifname @bridges drop\n",
        ] {
            assert!(s.contains(name), "missing {name:?} in\n{s}");
        }
        // Never anything global.
        assert!(!s.contains("ruleset"));
        assert!(ensure("bad name").is_err());
    }

    #[test]
    fn network_script() {
        let mut n = NetworkRules::new(
            "br-x_1",
            vec![
                "10.1.0.5/24".parse().unwrap(),
                "fd00:1::/64".parse().unwrap(),
            ],
        );
        let s = add_network("berth", &n).unwrap();
        let own: Vec<&str> = s.lines().collect();
        assert_eq!(
            own,
            [
                "add chain inet berth fwd-br-x_5f1",
                "flush chain inet berth fwd-br-x_5f1",
                "add chain inet berth nat-br-x_5f1",
                "flush chain inet berth nat-br-x_5f1",
                "add rule inet berth fwd-br-x_5f1 iifname \"br-x_1\" oifname \"br-x_1\" accept",
                "add rule inet berth nat-br-x_5f1 iifname \"br-x_1\" oifname != \"br-x_1\" ip saddr { 10.1.0.0/24 } masquerade",
                "add rule inet berth nat-br-x_5f1 iifname \"br-x_1\" oifname != \"br-x_1\" ip6 saddr { fd00:1::/64 } masquerade",
                "add rule inet berth nat-br-x_5f1 oifname \"br-x_1\" ct status dnat ip saddr 127.0.0.0/8 masquerade",
                "add rule inet berth nat-br-x_5f1 oifname \"br-x_1\" ct status dnat ip saddr { 10.1.0.0/24 } masquerade",
                "add rule inet berth nat-br-x_5f1 oifname \"br-x_1\" ct status dnat ip6 saddr { fd00:1::/64 } masquerade",
                "add element inet berth bridges { \"br-x_1\" }",
                "add element inet berth forward_nets { \"br-x_1\" : jump fwd-br-x_5f1 }",
                "add element inet berth nat_nets { \"br-x_1\" : jump nat-br-x_5f1 }",
            ]
        );

        n.internal = true;
        n.icc = false;
        let s = add_network("berth", &n).unwrap();
        assert!(s.contains("fwd-br-x_5f1 iifname \"br-x_1\" oifname \"br-x_1\" drop\n"));
        assert!(s.contains("fwd-br-x_5f1 iifname \"br-x_1\" drop\n"));
        assert!(s.contains("fwd-br-x_5f1 oifname \"br-x_1\" drop\n"));
        assert!(
            !s.contains("oifname != "),
            "an internal network masquerades nothing"
        );

        n.bridge = "bad\"name".into();
        let e = add_network("berth", &n).unwrap_err();
        assert!(
            e.to_string().starts_with("adding network bad\"name: "),
            "{e}"
        );
    }

    #[test]
    fn removing_a_network_adds_then_deletes() {
        let s = remove_network("berth", "br0").unwrap();
        assert_eq!(
            s,
            "add chain inet berth fwd-br0\n\
             add chain inet berth nat-br0\n\
             add element inet berth bridges { \"br0\" }\n\
             add element inet berth forward_nets { \"br0\" : jump fwd-br0 }\n\
             add element inet berth nat_nets { \"br0\" : jump nat-br0 }\n\
             delete element inet berth bridges { \"br0\" }\n\
             delete element inet berth forward_nets { \"br0\" }\n\
             delete element inet berth nat_nets { \"br0\" }\n\
             delete chain inet berth fwd-br0\n\
             delete chain inet berth nat-br0\n"
        );
    }

    #[test]
    fn port_elements() {
        let cases = [
            (
                port(None, 8080, "10.0.0.2", 80),
                "ports4",
                "tcp . 8080",
                "10.0.0.2 . 80",
            ),
            (
                port(Some("0.0.0.0"), 8080, "10.0.0.2", 80),
                "ports4",
                "tcp . 8080",
                "10.0.0.2 . 80",
            ),
            (
                port(Some("127.0.0.1"), 8080, "10.0.0.2", 80),
                "ports4_addr",
                "127.0.0.1 . tcp . 8080",
                "10.0.0.2 . 80",
            ),
            (
                port(None, 53, "fd00::2", 5353),
                "ports6",
                "tcp . 53",
                "fd00::2 . 5353",
            ),
            (
                port(Some("2001:db8::1"), 53, "fd00::2", 5353),
                "ports6_addr",
                "2001:db8::1 . tcp . 53",
                "fd00::2 . 5353",
            ),
        ];
        for (p, map, key, data) in cases {
            assert_eq!(
                port_element(&p),
                (map, key.to_string(), data.to_string()),
                "{p}"
            );
        }
    }

    #[test]
    fn ports_scripts() {
        let a = port(None, 8080, "10.0.0.2", 80);
        let b = PortMap {
            proto: Proto::Udp,
            ..port(Some("127.0.0.1"), 53, "10.0.0.2", 5353)
        };
        let s = add_ports("berth", &[a.clone(), b.clone(), a.clone()]).unwrap();
        let elems: Vec<&str> = s.lines().filter(|l| l.contains("element")).collect();
        assert_eq!(
            elems,
            [
                "add element inet berth ports4 { tcp . 8080 : 10.0.0.2 . 80 }",
                "add element inet berth ports4_addr { 127.0.0.1 . udp . 53 : 10.0.0.2 . 5353 }",
            ]
        );
        assert_eq!(s.lines().count(), 2, "{s}");
        assert_eq!(add_ports("berth", &[]).unwrap(), "");

        let s = remove_ports("berth", std::slice::from_ref(&a)).unwrap();
        assert_eq!(
            s,
            "add element inet berth ports4 { tcp . 8080 : 10.0.0.2 . 80 }\n\
             delete element inet berth ports4 { tcp . 8080 }\n"
        );

        // One host port, two targets: refused before anything runs.
        let clash = port(None, 8080, "10.0.0.3", 80);
        let e = add_ports("berth", &[a.clone(), clash]).unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        assert!(e.to_string().contains("published twice"), "{e}");
        // Bad ports are named.
        let e = add_ports("berth", &[port(None, 0, "10.0.0.2", 80)]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("publishing port 0/tcp -> 10.0.0.2:80: "),
            "{e}"
        );
    }

    #[test]
    fn lines_name_their_port() {
        let ports: Vec<PortMap> = (0..3)
            .map(|i| port(None, 8000 + i, "10.0.0.2", 80))
            .collect();
        let mut b = ensure_batch("berth").unwrap();
        let before = b.text().lines().count();
        b.append(add_ports_batch("berth", &ports).unwrap());
        let n = b.text().lines().count();
        assert_eq!(n, before + 3);
        assert_eq!(
            b.subject_of_line(n),
            Some("publishing port 8002/tcp -> 10.0.0.2:80")
        );
        assert_eq!(
            b.subject_of_line(before + 1),
            Some("publishing port 8000/tcp -> 10.0.0.2:80")
        );
        assert_eq!(b.subject_of_line(1), None);
        assert_eq!(
            op_add_ports(&ports),
            "publishing 3 ports (8000/tcp -> 10.0.0.2:80, 8001/tcp -> 10.0.0.2:80, 8002/tcp -> 10.0.0.2:80)"
        );
    }

    #[test]
    fn delete_table_is_add_then_delete() {
        assert_eq!(
            delete_table("berth").unwrap(),
            "add table inet berth\ndelete table inet berth\n"
        );
    }
}
