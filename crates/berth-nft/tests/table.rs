//! The table against the kernel, each test in a private network namespace: idempotence,
//! removal without a trace, reading back, errors, foreign tables untouched, timings.

mod common;

use std::net::IpAddr;
use std::time::Instant;

use berth_nft::{Error, Firewall, NetworkRules, PortMap, Proto};
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

/// `nft list table inet berth` without the handles nft may print.
fn listing() -> String {
    nft_list("inet berth").expect("table inet berth exists")
}

#[test]
fn child_processes_inherit_the_threads_netns() {
    let host_links = sh(&["ip", "-o", "link"]);
    let (inside, ns_id) = in_new_netns(|| {
        sh(&["ip", "link", "add", "berthprobe0", "type", "bridge"]);
        (
            sh(&["ip", "-o", "link"]),
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        )
    });
    assert!(inside.contains("berthprobe0"), "{inside}");
    assert!(!host_links.contains("berthprobe0"));
    assert!(!sh(&["ip", "-o", "link"]).contains("berthprobe0"));
    assert_ne!(
        ns_id,
        std::fs::read_link("/proc/thread-self/ns/net").unwrap()
    );
}

#[test]
fn ensure_is_idempotent_and_keeps_what_is_there() {
    in_new_netns(|| {
        let fw = Firewall::new("berth");
        assert!(!fw.exists().unwrap());
        assert!(fw.networks().unwrap().is_empty());
        assert!(fw.ports().unwrap().is_empty());
        fw.ensure().unwrap();
        assert!(fw.exists().unwrap());
        let first = listing();
        fw.ensure().unwrap();
        assert_eq!(listing(), first, "a second ensure changes nothing");

        fw.add_network(&net("br0", &["10.88.0.0/16"])).unwrap();
        let p = port(Proto::Tcp, None, 8080, "10.88.0.2", 80);
        fw.add_ports(std::slice::from_ref(&p)).unwrap();
        let full = listing();
        fw.ensure().unwrap();
        assert_eq!(listing(), full, "ensure keeps networks and ports");
        // A base chain emptied by hand is rewritten; nothing else moves.
        nft_script("flush chain inet berth forward\nflush chain inet berth published\n");
        assert_ne!(listing(), full);
        fw.ensure().unwrap();
        assert_eq!(listing(), full, "ensure restores the base chains");
        assert_eq!(fw.networks().unwrap(), ["br0"]);
        assert_eq!(fw.ports().unwrap(), [p]);
    });
}

#[test]
fn networks_are_added_idempotently_updated_and_removed_without_a_trace() {
    in_new_netns(|| {
        let before = make_foreign_tables();
        let fw = Firewall::new("berth");
        let a = net("br-a", &["10.1.0.0/24", "fd00:1::/64"]);
        let b = net("br_b@x", &["10.2.0.0/24"]);
        fw.add_network(&a).unwrap();
        let once = listing();
        fw.add_network(&a).unwrap();
        assert_eq!(listing(), once, "adding a network twice is adding it once");
        fw.add_network(&b).unwrap();
        assert_eq!(fw.networks().unwrap(), ["br-a", "br_b@x"]);

        // Updating in place: internal, icc off.
        let mut a2 = a.clone();
        a2.internal = true;
        a2.icc = false;
        fw.add_network(&a2).unwrap();
        let l = listing();
        assert!(l.contains("iifname \"br-a\" oifname \"br-a\" drop"), "{l}");
        assert!(!l.contains("iifname \"br-a\" oifname != \"br-a\""), "{l}");
        assert_eq!(fw.networks().unwrap(), ["br-a", "br_b@x"]);

        fw.remove_network("br-a").unwrap();
        let l = listing();
        assert!(!l.contains("br-a"), "a trace of br-a is left:\n{l}");
        assert!(l.contains("br_b@x"));
        fw.remove_network("br-a").unwrap();
        fw.remove_network("never-was").unwrap();
        assert_eq!(fw.networks().unwrap(), ["br_b@x"]);

        // A network only partly there (a crash in between is impossible, a hand edit is not).
        nft_script("delete element inet berth forward_nets { \"br_b@x\" }\n");
        assert_eq!(fw.networks().unwrap(), ["br_b@x"]);
        fw.remove_network("br_b@x").unwrap();
        let l = listing();
        assert!(!l.contains("br_b") && !l.contains("br_5fb"), "{l}");
        assert!(fw.networks().unwrap().is_empty());
        // Back to what ensure makes.
        fw.ensure().unwrap();
        assert_eq!(listing(), l);

        fw.delete_table().unwrap();
        assert!(!fw.exists().unwrap());
        fw.remove_network("br-a").unwrap();
        fw.delete_table().unwrap();
        assert_eq!(foreign_listing(), before, "the foreign tables changed");
    });
}

#[test]
fn odd_bridge_names_round_trip() {
    in_new_netns(|| {
        let fw = Firewall::new("berth");
        let names = [
            "a@b+c=d%e#f",
            "a$b;c{d}",
            "x_y.z-1",
            "a'b,c!?~^",
            "br[0]()<>|&",
        ];
        for n in names {
            fw.add_network(&net(n, &["10.9.0.0/24"])).unwrap();
        }
        let mut want: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        want.sort();
        assert_eq!(fw.networks().unwrap(), want);
        for n in names {
            fw.remove_network(n).unwrap();
        }
        assert!(fw.networks().unwrap().is_empty());
        let l = listing();
        assert!(
            !l.contains("fwd-") && !l.contains("nat-") && !l.contains("10.9."),
            "{l}"
        );
    });
}

#[test]
fn ports_are_published_read_back_and_removed() {
    in_new_netns(|| {
        let before = make_foreign_tables();
        let fw = Firewall::new("berth");
        // Removing from no table at all.
        fw.remove_ports(&[port(Proto::Tcp, None, 1, "10.0.0.1", 1)])
            .unwrap();
        assert!(!fw.exists().unwrap());

        let ports = vec![
            port(Proto::Tcp, None, 8080, "10.88.0.2", 80),
            port(Proto::Udp, Some("0.0.0.0"), 5353, "10.88.0.2", 53),
            port(Proto::Sctp, None, 9000, "10.88.0.3", 9000),
            port(Proto::Tcp, Some("127.0.0.1"), 8080, "10.88.0.3", 80),
            port(Proto::Tcp, None, 8080, "fd00::2", 80),
            port(Proto::Udp, Some("2001:db8::1"), 53, "fd00::3", 53),
            port(Proto::Udp, Some("::"), 54, "fd00::3", 53),
        ];
        fw.add_ports(&ports).unwrap();
        fw.add_ports(&ports).unwrap();
        let mut want: Vec<PortMap> = ports.iter().map(PortMap::normalized).collect();
        let mut got = fw.ports().unwrap();
        let key = |p: &PortMap| p.to_string();
        want.sort_by_key(key);
        got.sort_by_key(key);
        assert_eq!(got, want);

        // Another target for a published host port: refused, nothing applied, port named.
        let fresh = port(Proto::Tcp, None, 7000, "10.88.0.2", 70);
        let clash = port(Proto::Tcp, None, 8080, "10.88.0.9", 80);
        let e = fw.add_ports(&[fresh.clone(), clash.clone()]).unwrap_err();
        assert!(e.is_conflict(), "{e}");
        assert_eq!(e.op(), "publishing port 8080/tcp -> 10.88.0.9:80", "{e}");
        assert!(e.stderr().unwrap().contains("File exists"), "{e}");
        eprintln!("a conflicting port: {e}");
        assert!(!fw.ports().unwrap().contains(&fresh), "the batch is atomic");

        // Removing the other target is removing nothing; the published one stays.
        fw.remove_ports(std::slice::from_ref(&clash)).unwrap();
        assert!(fw.ports().unwrap().contains(&ports[0]));
        // Removing a mix of present, absent and other-target ports.
        fw.remove_ports(&[
            ports[0].clone(),
            fresh.clone(),
            clash.clone(),
            ports[4].clone(),
        ])
        .unwrap();
        let left = fw.ports().unwrap();
        assert_eq!(left.len(), ports.len() - 2, "{left:?}");
        assert!(!left.contains(&ports[0]) && !left.contains(&ports[4]));

        // The last ones: empty maps remain.
        fw.remove_ports(&ports).unwrap();
        fw.remove_ports(&ports).unwrap();
        assert!(fw.ports().unwrap().is_empty());
        let l = listing();
        assert!(!l.contains("elements"), "{l}");
        for m in ["ports4", "ports4_addr", "ports6", "ports6_addr"] {
            assert!(l.contains(&format!("map {m} {{")), "{l}");
        }
        fw.delete_table().unwrap();
        assert!(nft_list("inet berth").is_none());
        assert_eq!(foreign_listing(), before, "the foreign tables changed");
    });
}

#[test]
fn errors_name_the_operation_and_carry_nfts_stderr() {
    in_new_netns(|| {
        // A table name nft takes for a keyword: refused by nft, named by us.
        let fw = Firewall::new("fwd");
        let e = fw.ensure().unwrap_err();
        assert!(matches!(e, Error::Nft { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("setting up nftables table inet fwd: nft failed"),
            "{e}"
        );
        assert!(e.stderr().unwrap().contains("syntax error"), "{e}");

        let fw = Firewall::new("berth");
        let e = fw
            .add_network(&net("bad name", &["10.0.0.0/8"]))
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        let e = fw
            .add_ports(&[port(Proto::Tcp, Some("::1"), 80, "10.0.0.2", 80)])
            .unwrap_err();
        assert_eq!(e.op(), "publishing port [::1]:80/tcp -> 10.0.0.2:80");
        assert!(!fw.exists().unwrap(), "nothing ran");
    });
}

#[test]
fn in_netns_runs_nft_in_that_namespace() {
    in_new_netns(|| {
        let other = Ns::new();
        let fw = Firewall::new("berth").in_netns(other.path());
        fw.ensure().unwrap();
        fw.add_network(&net("br0", &["10.0.0.0/24"])).unwrap();
        assert!(fw.exists().unwrap());
        assert_eq!(fw.networks().unwrap(), ["br0"]);
        assert!(
            other
                .sh(&["nft", "list", "tables"])
                .contains("table inet berth")
        );
        assert!(
            !Firewall::new("berth").exists().unwrap(),
            "not in this namespace"
        );
        fw.delete_table().unwrap();
        assert!(!fw.exists().unwrap());
    });
}

#[test]
fn timings_of_batches() {
    in_new_netns(|| {
        let fw = Firewall::new("berth");
        fw.ensure().unwrap();
        fw.add_network(&net("br0", &["10.88.0.0/16"])).unwrap();
        let ports: Vec<PortMap> = (0..1000u16)
            .map(|i| {
                let ip = format!("10.88.{}.{}", 1 + i / 200, 2 + i % 200);
                port(Proto::Tcp, None, 20000 + i, &ip, 80)
            })
            .collect();

        let t = Instant::now();
        fw.add_ports(&ports).unwrap();
        let add = t.elapsed();
        let t = Instant::now();
        let got = fw.ports().unwrap();
        let list = t.elapsed();
        assert_eq!(got.len(), 1000);
        let one = port(Proto::Udp, None, 53, "10.88.0.2", 53);
        let t = Instant::now();
        fw.add_ports(std::slice::from_ref(&one)).unwrap();
        let add_one = t.elapsed();
        let t = Instant::now();
        fw.remove_ports(std::slice::from_ref(&one)).unwrap();
        let remove_one = t.elapsed();
        let t = Instant::now();
        fw.remove_ports(&ports).unwrap();
        let remove = t.elapsed();
        assert!(fw.ports().unwrap().is_empty());
        let t = Instant::now();
        fw.add_network(&net("br1", &["10.89.0.0/16"])).unwrap();
        let add_net = t.elapsed();
        let t = Instant::now();
        fw.remove_network("br1").unwrap();
        let remove_net = t.elapsed();
        eprintln!(
            "timings: add 1000 ports in one batch {add:?}, list them {list:?}, remove 1000 in one \
             batch {remove:?}; add one port {add_one:?}, remove one {remove_one:?}; add a \
             network {add_net:?}, remove it {remove_net:?}"
        );
    });
}
