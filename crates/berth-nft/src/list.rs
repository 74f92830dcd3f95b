//! Reading berth's table back from `nft -j list table inet <name>` (for reconcile).

use std::collections::BTreeSet;
use std::net::IpAddr;

use serde_json::Value;

use crate::model::{PortMap, Proto, decode_ifname};
use crate::script::{
    MAP_FORWARD, MAP_NAT, PORT_MAPS, PREFIX_FORWARD, PREFIX_NAT, SET_BRIDGES, network_chains,
};

/// What berth's table holds: the networks and the published ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableState {
    /// The bridges with rules, sorted: a network counts if any of its parts is there (an
    /// element of the `bridges` set or of a verdict map, or one of its chains).
    pub networks: Vec<String>,
    /// The published ports, in map order (IPv4 on every address, IPv4 on one address, IPv6,
    /// IPv6 on one address), unspecified host addresses as `None`.
    pub ports: Vec<PortMap>,
    bridges: BTreeSet<String>,
    forward: BTreeSet<String>,
    nat: BTreeSet<String>,
    chains: BTreeSet<String>,
}

/// Which parts of a network are in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NetworkParts {
    pub in_set: bool,
    pub in_forward: bool,
    pub in_nat: bool,
    pub fwd_chain: bool,
    pub nat_chain: bool,
}

impl NetworkParts {
    pub(crate) fn any(&self) -> bool {
        self.in_set || self.in_forward || self.in_nat || self.fwd_chain || self.nat_chain
    }
}

impl TableState {
    /// Which parts of the network on `bridge` are present.
    pub(crate) fn parts(&self, bridge: &str) -> NetworkParts {
        let (fwd, nat) = network_chains(bridge);
        NetworkParts {
            in_set: self.bridges.contains(bridge),
            in_forward: self.forward.contains(bridge),
            in_nat: self.nat.contains(bridge),
            fwd_chain: self.chains.contains(&fwd),
            nat_chain: self.chains.contains(&nat),
        }
    }

    /// The names of every chain in the table.
    pub fn chains(&self) -> impl Iterator<Item = &str> {
        self.chains.iter().map(String::as_str)
    }
}

/// Parses the JSON of `nft -j list table inet <table>`. Objects of other tables, unknown
/// objects and unknown keys are ignored; an element of a port map that is not a port mapping
/// is an error (the table is berth's own: such an element means it was changed by hand or by
/// another version).
pub fn parse_table(json: &str, table: &str) -> Result<TableState, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("no \"nftables\" array")?;
    let mut st = TableState::default();
    let mut port_lists: [Vec<PortMap>; 4] = Default::default();
    for item in items {
        let Some(obj) = item.as_object() else {
            continue;
        };
        for (kind, body) in obj {
            let ours = body.get("family").and_then(Value::as_str) == Some("inet")
                && body.get("table").and_then(Value::as_str) == Some(table);
            if !ours {
                continue;
            }
            let Some(name) = body.get("name").and_then(Value::as_str) else {
                continue;
            };
            let elems = body.get("elem").and_then(Value::as_array);
            match kind.as_str() {
                "chain" => {
                    st.chains.insert(name.to_string());
                }
                "set" | "map" => {
                    let elems = elems.map(Vec::as_slice).unwrap_or_default();
                    if name == SET_BRIDGES {
                        for e in elems {
                            st.bridges.insert(ifname(e)?);
                        }
                    } else if name == MAP_FORWARD || name == MAP_NAT {
                        let dst = if name == MAP_FORWARD {
                            &mut st.forward
                        } else {
                            &mut st.nat
                        };
                        for e in elems {
                            let (k, _) = pair(e)?;
                            dst.insert(ifname(k)?);
                        }
                    } else if let Some(i) = PORT_MAPS.iter().position(|(m, ..)| *m == name) {
                        let (_, _, by_addr) = PORT_MAPS[i];
                        for e in elems {
                            port_lists[i].push(
                                port(e, by_addr)
                                    .map_err(|r| format!("map {name}: element {e}: {r}"))?,
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    st.ports = port_lists.into_iter().flatten().collect();
    let mut nets: BTreeSet<String> = st.bridges.clone();
    nets.extend(st.forward.iter().cloned());
    nets.extend(st.nat.iter().cloned());
    for c in &st.chains {
        for prefix in [PREFIX_FORWARD, PREFIX_NAT] {
            if let Some(b) = c.strip_prefix(prefix).and_then(decode_ifname) {
                nets.insert(b);
            }
        }
    }
    st.networks = nets.into_iter().collect();
    Ok(st)
}

/// An element's value: `X`, or `{"elem": {"val": X, ...}}` when it has options.
fn val(e: &Value) -> &Value {
    e.get("elem").and_then(|x| x.get("val")).unwrap_or(e)
}

fn ifname(e: &Value) -> Result<String, String> {
    val(e)
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("interface element {e} is not a string"))
}

/// A map element: `[key, data]` (the key possibly `{"elem": ...}`).
fn pair(e: &Value) -> Result<(&Value, &Value), String> {
    match e.as_array().map(Vec::as_slice) {
        Some([k, d]) => Ok((k, d)),
        _ => Err(format!("map element {e} is not a [key, data] pair")),
    }
}

fn concat(v: &Value) -> Result<&[Value], String> {
    val(v)
        .get("concat")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .ok_or_else(|| format!("{v} is not a concatenation"))
}

fn ip(v: &Value) -> Result<IpAddr, String> {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("{v} is not an address"))
}

fn proto(v: &Value) -> Result<Proto, String> {
    let p = match v {
        Value::String(s) => s
            .parse()
            .ok()
            .or_else(|| s.parse().ok().and_then(Proto::from_number)),
        Value::Number(n) => n.as_u64().and_then(Proto::from_number),
        _ => None,
    };
    p.ok_or_else(|| format!("{v} is not tcp, udp or sctp"))
}

fn port_number(v: &Value) -> Result<u16, String> {
    let n = match v {
        Value::Number(n) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    n.ok_or_else(|| format!("{v} is not a port"))
}

fn port(e: &Value, by_addr: bool) -> Result<PortMap, String> {
    let (k, d) = pair(e)?;
    let (host_ip, proto_v, port_v) = match (concat(k)?, by_addr) {
        ([a, p, n], true) => (Some(ip(a)?), p, n),
        ([p, n], false) => (None, p, n),
        _ => return Err(format!("unexpected key {k}")),
    };
    let [caddr, cport] = concat(d)? else {
        return Err(format!("unexpected data {d}"));
    };
    Ok(PortMap {
        proto: proto(proto_v)?,
        host_ip,
        host_port: port_number(port_v)?,
        container_ip: ip(caddr)?,
        container_port: port_number(cport)?,
    }
    .normalized())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Trimmed from `nft -j list table inet berth` (nft 1.0.6) with one network and ports.
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
      {"table": {"family": "inet", "name": "berth", "handle": 1}},
      {"map": {"family": "inet", "name": "ports4", "table": "berth", "type": ["inet_proto", "inet_service"], "handle": 6, "map": "ipv4_addr . inet_service",
        "elem": [[{"concat": ["tcp", 8080]}, {"concat": ["10.200.1.2", 80]}]]}},
      {"map": {"family": "inet", "name": "ports4_addr", "table": "berth", "type": ["ipv4_addr", "inet_proto", "inet_service"], "handle": 7, "map": "ipv4_addr . inet_service",
        "elem": [[{"concat": ["127.0.0.1", "udp", 53]}, {"concat": ["10.200.1.2", 5353]}]]}},
      {"map": {"family": "inet", "name": "ports6", "table": "berth", "type": ["inet_proto", "inet_service"], "handle": 8, "map": "ipv6_addr . inet_service",
        "elem": [[{"elem": {"val": {"concat": ["sctp", 8080]}, "comment": "x"}}, {"concat": ["fd00:1::2", 80]}]]}},
      {"map": {"family": "inet", "name": "ports6_addr", "table": "berth", "type": ["ipv6_addr", "inet_proto", "inet_service"], "handle": 9, "map": "ipv6_addr . inet_service"}},
      {"set": {"family": "inet", "name": "bridges", "table": "berth", "type": "ifname", "handle": 10, "elem": ["br.0-x"]}},
      {"map": {"family": "inet", "name": "forward_nets", "table": "berth", "type": "ifname", "handle": 11, "map": "verdict",
        "elem": [["br.0-x", {"jump": {"target": "fwd-br.0-x"}}]]}},
      {"map": {"family": "inet", "name": "nat_nets", "table": "berth", "type": "ifname", "handle": 12, "map": "verdict"}},
      {"chain": {"family": "inet", "table": "berth", "name": "forward", "handle": 4, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}},
      {"chain": {"family": "inet", "table": "berth", "name": "fwd-br.0-x", "handle": 14}},
      {"chain": {"family": "inet", "table": "berth", "name": "nat-stray_5f1", "handle": 15}},
      {"chain": {"family": "inet", "table": "other", "name": "nat-other", "handle": 15}},
      {"rule": {"family": "inet", "table": "berth", "chain": "forward", "handle": 20, "expr": [{"accept": null}]}}
    ]}"#;

    #[test]
    fn parses_networks_and_ports() {
        let st = parse_table(LISTING, "berth").unwrap();
        assert_eq!(st.networks, ["br.0-x", "stray_1"]);
        let got: Vec<String> = st.ports.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "8080/tcp -> 10.200.1.2:80",
                "127.0.0.1:53/udp -> 10.200.1.2:5353",
                "8080/sctp -> [fd00:1::2]:80",
            ]
        );
        let p = st.parts("br.0-x");
        assert!(p.in_set && p.in_forward && !p.in_nat && p.fwd_chain && !p.nat_chain);
        let p = st.parts("stray_1");
        assert!(p.nat_chain && !p.in_set && p.any());
        assert!(!st.parts("absent").any());
        assert!(st.chains().any(|c| c == "forward"));
    }

    #[test]
    fn never_panics_on_odd_output() {
        for bad in [
            "",
            "null",
            "[]",
            "{\"nftables\": 3}",
            "{\"nftables\": [1, \"x\", {\"map\": 3}]}",
            r#"{"nftables": [{"map": {"family": "inet", "table": "berth", "name": "ports4", "elem": [[{"concat": ["tcp"]}, 1]]}}]}"#,
            r#"{"nftables": [{"map": {"family": "inet", "table": "berth", "name": "ports4", "elem": [[{"concat": ["gre", 1]}, {"concat": ["1.2.3.4", 1]}]]}}]}"#,
            r#"{"nftables": [{"map": {"family": "inet", "table": "berth", "name": "ports4", "elem": [[{"concat": ["tcp", 70000]}, {"concat": ["1.2.3.4", 1]}]]}}]}"#,
            r#"{"nftables": [{"map": {"family": "inet", "table": "berth", "name": "ports4", "elem": [[{"concat": ["tcp", 1]}, {"concat": ["x", 1]}]]}}]}"#,
            r#"{"nftables": [{"set": {"family": "inet", "table": "berth", "name": "bridges", "elem": [1]}}]}"#,
            r#"{"nftables": [{"map": {"family": "inet", "table": "berth", "name": "nat_nets", "elem": [1]}}]}"#,
        ] {
            let _ = parse_table(bad, "berth");
        }
        assert!(
            parse_table("{\"nftables\": []}", "berth")
                .unwrap()
                .networks
                .is_empty()
        );
        // Numbers and numeric strings are read too.
        let st = parse_table(
            r#"{"nftables": [{"map": {"family": "inet", "table": "berth", "name": "ports4", "elem": [[{"concat": [17, "53"]}, {"concat": ["1.2.3.4", 5353]}]]}}]}"#,
            "berth",
        )
        .unwrap();
        assert_eq!(st.ports[0].to_string(), "53/udp -> 1.2.3.4:5353");
    }
}
