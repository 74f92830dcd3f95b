//! Real traffic through berth's table, each test in a private network namespace playing the
//! host, with bridges, veths into "container" namespaces, an "outside" host on a veth, and small
//! TCP/UDP servers that answer with their name and the address they saw.
//!
//! The host's addresses: 192.0.2.1/24 and 2001:db8:ff::1/64 towards the outside host
//! (192.0.2.2, 2001:db8:ff::2), which has no route to any container subnet: it can only answer
//! masqueraded traffic.

mod common;

use std::net::IpAddr;

use berth_nft::{Firewall, NetworkRules, PortMap, Proto};
use common::*;

fn port(proto: Proto, host_ip: Option<&str>, host_port: u16, cip: &str, cport: u16) -> PortMap {
    PortMap {
        proto,
        host_ip: host_ip.map(|h| h.parse::<IpAddr>().unwrap()),
        host_port,
        container_ip: cip.parse().unwrap(),
        container_port: cport,
    }
}

fn net(bridge: &str, subnets: &[&str]) -> NetworkRules {
    NetworkRules::new(bridge, subnets.iter().map(|s| s.parse().unwrap()).collect())
}

#[track_caller]
fn reaches(what: &str, got: Option<String>, want: &str) {
    eprintln!("{what}: {got:?}");
    assert_eq!(got.as_deref(), Some(want), "{what}");
}

#[track_caller]
fn blocked(what: &str, got: Option<String>) {
    eprintln!("{what}: {got:?} (blocked)");
    assert_eq!(got, None, "{what} should be blocked");
}

fn host_setup(br_netfilter: bool) {
    sysctl("net.ipv4.ip_forward", "1");
    sysctl("net.ipv6.conf.all.forwarding", "1");
    let v = if br_netfilter { "1" } else { "0" };
    sysctl("net.bridge.bridge-nf-call-iptables", v);
    sysctl("net.bridge.bridge-nf-call-ip6tables", v);
}

/// Docker's bridge semantics, with and without `br_netfilter` handing bridged traffic to the
/// IP hooks.
fn docker_semantics(br_netfilter: bool) {
    in_new_netns(move || {
        host_setup(br_netfilter);
        let foreign = make_foreign_tables();
        let x = outside(
            &["192.0.2.1/24", "2001:db8:ff::1/64"],
            &["192.0.2.2/24", "2001:db8:ff::2/64"],
        );
        let _xs = Server::start(Some(&x), "outside", 9000);

        bridge("br1", &["10.200.1.1/24", "fd00:200:1::1/64"]);
        bridge("br2", &["10.200.2.1/24"]);
        bridge("br3", &["10.200.3.1/24"]);
        // For ports published on 127.0.0.1 (the engine's part).
        sysctl("net.ipv4.conf.br1.route_localnet", "1");
        let c1 = container(
            "c1",
            "br1",
            &["10.200.1.2/24", "fd00:200:1::2/64"],
            &["10.200.1.1", "fd00:200:1::1"],
        );
        let c2 = container("c2", "br1", &["10.200.1.3/24"], &["10.200.1.1"]);
        let c3 = container("c3", "br2", &["10.200.2.2/24"], &["10.200.2.1"]);
        let c4 = container("c4", "br3", &["10.200.3.2/24"], &["10.200.3.1"]);
        let _s1 = Server::start(Some(&c1), "c1", 80);
        let _s2 = Server::start(Some(&c2), "c2", 80);
        let _s3 = Server::start(Some(&c3), "c3", 80);
        let _s4 = Server::start(Some(&c4), "c4", 80);

        // Before berth: containers cannot get out (no NAT, the outside has no route back).
        blocked(
            "c1 -> outside, no rules yet",
            tcp(Some(&c1), "192.0.2.2:9000"),
        );

        let fw = Firewall::new("berth");
        fw.ensure().unwrap();
        fw.add_network(&net("br1", &["10.200.1.0/24", "fd00:200:1::/64"]))
            .unwrap();
        fw.add_network(&net("br2", &["10.200.2.0/24"])).unwrap();
        let mut internal = net("br3", &["10.200.3.0/24"]);
        internal.internal = true;
        fw.add_network(&internal).unwrap();
        let ports = vec![
            port(Proto::Tcp, None, 8080, "10.200.1.2", 80),
            port(Proto::Tcp, Some("127.0.0.1"), 8081, "10.200.1.3", 80),
            port(Proto::Udp, None, 8053, "10.200.1.2", 80),
            port(Proto::Tcp, None, 8080, "fd00:200:1::2", 80),
            port(
                Proto::Tcp,
                Some("2001:db8:ff::1"),
                8082,
                "fd00:200:1::2",
                80,
            ),
        ];
        fw.add_ports(&ports).unwrap();
        eprintln!("{}", nft_list("inet berth").unwrap());

        // Published ports from outside, on every address or only one.
        reaches(
            "outside -> host:8080",
            tcp(Some(&x), "192.0.2.1:8080"),
            "c1 192.0.2.2",
        );
        reaches(
            "outside -> host:8053/udp",
            udp(Some(&x), "192.0.2.1:8053"),
            "c1 192.0.2.2",
        );
        blocked(
            "outside -> host:8081 (127.0.0.1 only)",
            tcp(Some(&x), "192.0.2.1:8081"),
        );
        reaches(
            "outside -> [host]:8080 v6",
            tcp(Some(&x), "[2001:db8:ff::1]:8080"),
            "c1 2001:db8:ff::2",
        );
        reaches(
            "outside -> [host]:8082 v6 one address",
            tcp(Some(&x), "[2001:db8:ff::1]:8082"),
            "c1 2001:db8:ff::2",
        );

        // From the host itself, to its own address and to loopback.
        reaches(
            "host -> host:8080",
            tcp(None, "192.0.2.1:8080"),
            "c1 192.0.2.1",
        );
        reaches(
            "host -> 127.0.0.1:8080",
            tcp(None, "127.0.0.1:8080"),
            "c1 10.200.1.1",
        );
        reaches(
            "host -> 127.0.0.1:8081",
            tcp(None, "127.0.0.1:8081"),
            "c2 10.200.1.1",
        );
        reaches(
            "host -> 127.0.0.1:8053/udp",
            udp(None, "127.0.0.1:8053"),
            "c1 10.200.1.1",
        );
        reaches(
            "host -> [host]:8080 v6",
            tcp(None, "[2001:db8:ff::1]:8080"),
            "c1 2001:db8:ff::1",
        );

        // Outbound NAT.
        reaches(
            "c1 -> outside",
            tcp(Some(&c1), "192.0.2.2:9000"),
            "outside 192.0.2.1",
        );
        reaches(
            "c1 -> outside v6",
            tcp(Some(&c1), "[2001:db8:ff::2]:9000"),
            "outside 2001:db8:ff::1",
        );
        reaches(
            "c3 -> outside",
            tcp(Some(&c3), "192.0.2.2:9000"),
            "outside 192.0.2.1",
        );
        reaches(
            "c1 -> outside udp",
            udp(Some(&c1), "192.0.2.2:9000"),
            "outside 192.0.2.1",
        );

        // Hairpin: a container to its own and to a neighbour's published port.
        reaches(
            "c1 -> host:8080 (its own)",
            tcp(Some(&c1), "192.0.2.1:8080"),
            "c1 10.200.1.1",
        );
        reaches(
            "c2 -> host:8080 (same network)",
            tcp(Some(&c2), "192.0.2.1:8080"),
            "c1 10.200.1.1",
        );
        reaches(
            "c2 -> c1 (same network)",
            tcp(Some(&c2), "10.200.1.2:80"),
            "c1 10.200.1.3",
        );

        // Isolation between networks, except published ports.
        blocked("c3 -> c1 (other network)", tcp(Some(&c3), "10.200.1.2:80"));
        blocked("c1 -> c3 (other network)", tcp(Some(&c1), "10.200.2.2:80"));
        reaches(
            "c3 -> host:8080 (published)",
            tcp(Some(&c3), "192.0.2.1:8080"),
            "c1 10.200.1.1",
        );

        // The internal network: nothing out, nothing in; the host still reaches it.
        blocked("c4 -> outside (internal)", tcp(Some(&c4), "192.0.2.2:9000"));
        blocked("c4 -> c1 (internal)", tcp(Some(&c4), "10.200.1.2:80"));
        blocked("c1 -> c4 (internal)", tcp(Some(&c1), "10.200.3.2:80"));
        blocked(
            "c4 -> host:8080 (internal, published elsewhere)",
            tcp(Some(&c4), "192.0.2.1:8080"),
        );
        reaches("host -> c4", tcp(None, "10.200.3.2:80"), "c4 10.200.3.1");

        // route_localnet=1 on br1 must not open the host's loopback to its containers: c1
        // routes 127.0.0.1 through its gateway and sends a datagram to a host service bound
        // to 127.0.0.1.
        let host_local = Server::start(None, "hostlocal", 9999);
        c1.sh(&["sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1"]);
        c1.sh(&["sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1"]);
        c1.sh(&[
            "ip",
            "route",
            "del",
            "local",
            "127.0.0.0/8",
            "dev",
            "lo",
            "table",
            "local",
        ]);
        c1.sh(&[
            "ip",
            "route",
            "del",
            "local",
            "127.0.0.1",
            "dev",
            "lo",
            "table",
            "local",
        ]);
        c1.sh(&[
            "ip",
            "route",
            "add",
            "127.0.0.1/32",
            "via",
            "10.200.1.1",
            "dev",
            "eth0",
            "onlink",
        ]);
        blocked(
            "c1 -> host's 127.0.0.1:9999 via its gateway",
            udp(Some(&c1), "127.0.0.1:9999"),
        );
        reaches(
            "c1 -> host's 10.200.1.1:9999 (control)",
            udp(Some(&c1), "10.200.1.1:9999"),
            "hostlocal 10.200.1.2",
        );

        // Unpublishing: the ports are gone, the maps stay, empty.
        fw.remove_ports(&ports).unwrap();
        let l = nft_list("inet berth").unwrap();
        assert!(
            !l.contains("elements = { tcp") && !l.contains("8080"),
            "{l}"
        );
        blocked(
            "outside -> host:8080, unpublished",
            tcp(Some(&x), "192.0.2.1:8080"),
        );
        blocked(
            "host -> 127.0.0.1:8081, unpublished",
            tcp(None, "127.0.0.1:8081"),
        );

        // Removing a network: no trace of it, and its containers lose outbound NAT.
        fw.remove_network("br2").unwrap();
        let l = nft_list("inet berth").unwrap();
        assert!(!l.contains("br2"), "{l}");
        assert_eq!(fw.networks().unwrap(), ["br1", "br3"]);
        blocked(
            "c3 -> outside, network removed",
            tcp(Some(&c3), "192.0.2.2:9000"),
        );
        reaches(
            "c1 -> outside, still",
            tcp(Some(&c1), "192.0.2.2:9000"),
            "outside 192.0.2.1",
        );

        fw.remove_network("br1").unwrap();
        fw.remove_network("br3").unwrap();
        let l = nft_list("inet berth").unwrap();
        for b in ["br1", "br3", "fwd-", "nat-"] {
            assert!(!l.contains(b), "{b} left in\n{l}");
        }
        fw.delete_table().unwrap();
        assert!(nft_list("inet berth").is_none());
        let tables = sh(&["nft", "list", "tables"]);
        assert_eq!(tables, "table ip filter\ntable ip nat\n");
        assert_eq!(foreign_listing(), foreign, "the foreign tables changed");

        // Without berth's input rule the loopback hole is real (the control for the check above).
        reaches(
            "c1 -> host's 127.0.0.1:9999, no berth table",
            udp(Some(&c1), "127.0.0.1:9999"),
            "hostlocal 10.200.1.2",
        );
        drop(host_local);
    });
}

#[test]
fn docker_semantics_with_br_netfilter() {
    docker_semantics(true);
}

#[test]
fn docker_semantics_without_br_netfilter() {
    docker_semantics(false);
}

/// icc off: containers of one network cannot talk to each other (bridged traffic reaches the
/// forward hook through br_netfilter), and turning it on again is adding the network again.
#[test]
fn icc_off_and_back_on() {
    in_new_netns(|| {
        host_setup(true);
        bridge("br4", &["10.200.4.1/24"]);
        let c5 = container("c5", "br4", &["10.200.4.2/24"], &["10.200.4.1"]);
        let c6 = container("c6", "br4", &["10.200.4.3/24"], &["10.200.4.1"]);
        let _s6 = Server::start(Some(&c6), "c6", 80);
        let fw = Firewall::new("berth");
        let mut n = net("br4", &["10.200.4.0/24"]);
        n.icc = false;
        fw.add_network(&n).unwrap();
        blocked("c5 -> c6, icc off", tcp(Some(&c5), "10.200.4.3:80"));
        reaches(
            "host -> c6, icc off",
            tcp(None, "10.200.4.3:80"),
            "c6 10.200.4.1",
        );
        n.icc = true;
        fw.add_network(&n).unwrap();
        reaches(
            "c5 -> c6, icc on",
            tcp(Some(&c5), "10.200.4.3:80"),
            "c6 10.200.4.2",
        );
        fw.delete_table().unwrap();
    });
}
