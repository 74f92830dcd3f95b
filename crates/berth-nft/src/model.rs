//! What the engine asks for: a network's rules and a published port, and the checks that make
//! them safe to write into an nft script.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The firewall rules of one bridge network.
///
/// Everything berth writes for a network is keyed by its bridge's interface name, so the bridge
/// name is the network's identity in the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRules {
    /// The Linux bridge the network's containers are attached to (at most 15 bytes, no `/`,
    /// `:`, `"`, `\`, `*`, whitespace or control characters).
    pub bridge: String,
    /// The network's subnets, IPv4 and IPv6. Host bits are ignored (`10.0.0.1/24` is
    /// `10.0.0.0/24`).
    pub subnets: Vec<IpNet>,
    /// An internal network (`docker network create --internal`): nothing is forwarded from its
    /// bridge to any other interface, nor from any other interface into it; no masquerading.
    pub internal: bool,
    /// Masquerade traffic from the subnets leaving through any interface but the bridge
    /// (`com.docker.network.bridge.enable_ip_masquerade`). Ignored for an internal network.
    pub masquerade: bool,
    /// Inter-container communication (`com.docker.network.bridge.enable_icc`): when false,
    /// forwarding from the bridge to the same bridge is dropped. Bridged traffic between two
    /// ports of one bridge reaches the `forward` hook only through `br_netfilter`
    /// (`net.bridge.bridge-nf-call-iptables=1`), as with Docker.
    pub icc: bool,
}

impl NetworkRules {
    /// A network with Docker's defaults for `bridge`: not internal, masquerading on, icc on.
    pub fn new(bridge: &str, subnets: Vec<IpNet>) -> NetworkRules {
        NetworkRules {
            bridge: bridge.to_string(),
            subnets,
            internal: false,
            masquerade: true,
            icc: true,
        }
    }
}

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Proto {
    /// The name nft (and Docker) use: `tcp`, `udp` or `sctp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (6, 17, 132).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// The protocol with IP protocol number `n`, if it is one of the three.
    pub fn from_number(n: u64) -> Option<Proto> {
        match n {
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            132 => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Proto`] from anything but `tcp`, `udp` or `sctp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?} (expected tcp, udp or sctp)")]
pub struct UnknownProto(pub String);

impl FromStr for Proto {
    type Err = UnknownProto;

    fn from_str(s: &str) -> Result<Proto, UnknownProto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(UnknownProto(s.to_string())),
        }
    }
}

/// One published port: `host_ip:host_port/proto` → `container_ip:container_port`.
///
/// The address family is the container address's: an IPv4 container address is published on
/// the host's IPv4 addresses, an IPv6 one on its IPv6 addresses (as Docker publishes
/// `0.0.0.0` and `::` separately). A `host_ip` must be of the same family.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMap {
    /// The transport protocol.
    pub proto: Proto,
    /// Only this local address (e.g. `127.0.0.1`), or `None` for every local address of the
    /// family. An unspecified address (`0.0.0.0`, `::`) means `None`.
    pub host_ip: Option<IpAddr>,
    /// The port on the host (1–65535).
    pub host_port: u16,
    /// The container's address on its network.
    pub container_ip: IpAddr,
    /// The port in the container (1–65535).
    pub container_port: u16,
}

impl PortMap {
    /// The same mapping with an unspecified `host_ip` (`0.0.0.0`, `::`) written as `None`, the
    /// way [`Firewall::ports`](crate::Firewall::ports) reports it.
    pub fn normalized(&self) -> PortMap {
        let mut p = self.clone();
        if p.host_ip.is_some_and(|ip| ip.is_unspecified()) {
            p.host_ip = None;
        }
        p
    }

    /// What identifies the mapping in the table: family, host address, protocol, host port.
    /// Two mappings with the same key cannot both be present.
    pub(crate) fn key(&self) -> (bool, Option<IpAddr>, Proto, u16) {
        let n = self.normalized();
        (n.container_ip.is_ipv6(), n.host_ip, n.proto, n.host_port)
    }

    /// A mapping the table can hold, or why not.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.host_port == 0 {
            return Err("host port 0 (choose a port before publishing)".into());
        }
        if self.container_port == 0 {
            return Err("container port 0".into());
        }
        if self.container_ip.is_unspecified() || self.container_ip.is_multicast() {
            return Err(format!(
                "container address {} is not a unicast address",
                self.container_ip
            ));
        }
        if let Some(h) = self.host_ip
            && !h.is_unspecified()
            && h.is_ipv6() != self.container_ip.is_ipv6()
        {
            return Err(format!(
                "host address {h} and container address {} are of different families",
                self.container_ip
            ));
        }
        Ok(())
    }
}

impl fmt::Display for PortMap {
    /// `127.0.0.1:8080/tcp -> 10.88.0.2:80`, `8080/tcp -> 10.88.0.2:80`,
    /// `[::1]:8080/tcp -> [fd00::2]:80`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.normalized().host_ip {
            Some(IpAddr::V4(a)) => write!(f, "{a}:")?,
            Some(IpAddr::V6(a)) => write!(f, "[{a}]:")?,
            None => {}
        }
        write!(f, "{}/{} -> ", self.host_port, self.proto)?;
        match self.container_ip {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.container_port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.container_port),
        }
    }
}

/// Whether `name` can be a Linux interface name that berth writes into scripts, or why not.
///
/// Linux allows up to 15 bytes other than `/`, `:`, whitespace and NUL, and not `.` or `..`.
/// berth also refuses `"` and `\` (nft's quoted strings have no escapes), `*` (a wildcard in
/// nft's interface matches) and control or non-ASCII bytes.
pub(crate) fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("empty interface name".into());
    }
    if name.len() > 15 {
        return Err(format!("interface name {name:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not an interface name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !c.is_ascii_graphic() || matches!(c, '/' | ':' | '"' | '\\' | '*'))
    {
        return Err(format!("interface name {name:?} contains {c:?}"));
    }
    Ok(())
}

/// The part of a chain name that stands for interface `name`: letters, digits, `.` and `-` as
/// they are, any other byte as `_` and two hex digits (so `_` is `_5f`). nft 1.0.6 takes only
/// unquoted chain names (`[A-Za-z0-9_./-]`), and this keeps the mapping reversible.
pub(crate) fn encode_ifname(name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            s.push(b as char);
        } else {
            s.push_str(&format!("_{b:02x}"));
        }
    }
    s
}

/// The interface name that [`encode_ifname`] turned into `s`, if `s` is such an encoding.
pub(crate) fn decode_ifname(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'_' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if b.is_ascii_alphanumeric() || b == b'.' || b == b'-' {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    let name = String::from_utf8(out).ok()?;
    check_ifname(&name).ok()?;
    Some(name)
}

/// Whether `name` can be berth's table name: an nft identifier (`[A-Za-z][A-Za-z0-9_.-]*`, at
/// most 64 bytes).
pub(crate) fn check_table_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "table name {name:?} is not an nft identifier ([A-Za-z][A-Za-z0-9_.-]*, at most 64 bytes)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proto_round_trips() {
        for p in [Proto::Tcp, Proto::Udp, Proto::Sctp] {
            assert_eq!(p.to_string().parse::<Proto>(), Ok(p));
            assert_eq!(Proto::from_number(p.number().into()), Some(p));
        }
        assert_eq!("TCP".parse::<Proto>(), Ok(Proto::Tcp));
        assert!("icmp".parse::<Proto>().is_err());
        assert_eq!(serde_json::to_string(&Proto::Sctp).unwrap(), "\"sctp\"");
    }

    #[test]
    fn ifname_encoding_is_reversible_and_nft_safe() {
        for name in [
            "br0",
            "br-1a2b3c4d5e6f",
            "docker_gwbridge",
            "a@b+c=d%e#f",
            "x.y-z",
            "_",
        ] {
            check_ifname(name).unwrap();
            let enc = encode_ifname(name);
            assert!(
                enc.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')),
                "{enc}"
            );
            assert_eq!(decode_ifname(&enc).as_deref(), Some(name));
        }
        assert_eq!(encode_ifname("docker_gw"), "docker_5fgw");
        assert_eq!(decode_ifname("bad_zz"), None);
        assert_eq!(decode_ifname("bad_4"), None);
        assert_eq!(decode_ifname("a b"), None);
    }

    #[test]
    fn bad_ifnames_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\"b",
            "a\\b",
            "br*",
            "a\nb",
            "é",
            "0123456789abcdef",
        ] {
            assert!(check_ifname(name).is_err(), "{name:?}");
        }
    }

    #[test]
    fn table_names() {
        check_table_name("berth").unwrap();
        check_table_name("berth_test-1.x").unwrap();
        for bad in ["", "1abc", "a b", "a\"", "_x", &"a".repeat(65)] {
            assert!(check_table_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn port_checks() {
        let p = PortMap {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_port: 80,
        };
        p.check().unwrap();
        assert!(
            PortMap {
                host_port: 0,
                ..p.clone()
            }
            .check()
            .is_err()
        );
        assert!(
            PortMap {
                container_port: 0,
                ..p.clone()
            }
            .check()
            .is_err()
        );
        assert!(
            PortMap {
                host_ip: Some("::1".parse().unwrap()),
                ..p.clone()
            }
            .check()
            .is_err()
        );
        PortMap {
            host_ip: Some("::".parse().unwrap()),
            ..p.clone()
        }
        .check()
        .unwrap();
        let any = PortMap {
            host_ip: Some("0.0.0.0".parse().unwrap()),
            ..p.clone()
        };
        assert_eq!(any.normalized(), p);
        assert_eq!(any.key(), p.key());
        assert_eq!(p.to_string(), "8080/tcp -> 10.0.0.2:80");
        let v6 = PortMap {
            host_ip: Some("fd00::1".parse().unwrap()),
            container_ip: "fd00::2".parse().unwrap(),
            ..p.clone()
        };
        assert_eq!(v6.to_string(), "[fd00::1]:8080/tcp -> [fd00::2]:80");
    }

    #[test]
    fn port_map_serde() {
        let p = PortMap {
            proto: Proto::Udp,
            host_ip: Some("127.0.0.1".parse().unwrap()),
            host_port: 53,
            container_ip: "10.0.0.2".parse().unwrap(),
            container_port: 5353,
        };
        let j = serde_json::to_string(&p).unwrap();
        assert_eq!(
            j,
            r#"{"proto":"udp","host_ip":"127.0.0.1","host_port":53,"container_ip":"10.0.0.2","container_port":5353}"#
        );
        assert_eq!(serde_json::from_str::<PortMap>(&j).unwrap(), p);
    }
}
