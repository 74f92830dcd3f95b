//! `Server::respond` on hostile bytes: random packets and mutated queries, without
//! sockets. Never a panic; answers are answers to the packet and fit the transport.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use berth_dns::{Names, Outcome, Server, Transport};
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

struct Everything;

impl Names for Everything {
    fn lookup(&self, _asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        // Every name is local, with many addresses: the most work per query.
        let count = name.len() % 64;
        Some(
            (0..count)
                .map(|i| IpAddr::from([10, 0, 0, i as u8]))
                .chain([IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1])])
                .collect(),
        )
    }

    fn reverse(&self, _asker: &str, addr: IpAddr) -> Option<String> {
        Some(format!(
            "host-{}.net",
            addr.to_string().replace([':', '.'], "-")
        ))
    }

    fn upstreams(&self, _asker: &str) -> Vec<SocketAddr> {
        Vec::new()
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (name, qtype) in [
        ("web.", RecordType::A),
        (
            "a-rather-long-name.of.some.container.example.",
            RecordType::AAAA,
        ),
        ("2.0.0.10.in-addr.arpa.", RecordType::PTR),
        ("web.", RecordType::MX),
        ("example.com.", RecordType::TXT),
    ] {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        seeds.push(msg.to_vec().unwrap());
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        msg.edns = Some(edns);
        seeds.push(msg.to_vec().unwrap());
    }
    seeds
}

fn check(server: &Server, packet: &[u8], transport: Transport) {
    match server.respond("c1", packet, transport) {
        Outcome::Drop => {}
        Outcome::Forward(forward) => assert_eq!(forward.query(), packet),
        Outcome::Reply(answer) => {
            assert!(answer.len() >= 12, "at least a header");
            assert_eq!(answer[..2], packet[..2], "the query's ID");
            assert_eq!(answer[2] & 0x80, 0x80, "a response");
            assert!(answer.len() <= 65535);
            if transport == Transport::Udp {
                let limit = Message::from_vec(packet)
                    .ok()
                    .and_then(|msg| msg.edns.map(|edns| usize::from(edns.max_payload())))
                    .unwrap_or(512)
                    .max(512);
                assert!(answer.len() <= limit, "{} > {limit}", answer.len());
            }
        }
    }
}

#[test]
fn random_packets() {
    let server = Server::new(Arc::new(Everything));
    let mut rng = StdRng::seed_from_u64(1);
    for round in 0..20_000 {
        let len = if round % 100 == 0 {
            rng.random_range(0..65536)
        } else {
            rng.random_range(0..600)
        };
        let mut packet = vec![0; len];
        rng.fill(&mut packet[..]);
        if len >= 12 && round % 2 == 0 {
            // Mostly plausible headers: a query, one question, few records.
            packet[2] &= 0x07;
            packet[4..6].copy_from_slice(&1u16.to_be_bytes());
            packet[6] = 0;
            packet[8] = 0;
            packet[10] = 0;
            packet[7] &= 1;
            packet[9] &= 1;
            packet[11] &= 3;
        }
        let transport = if round % 3 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        check(&server, &packet, transport);
    }
}

#[test]
fn mutated_queries() {
    let server = Server::new(Arc::new(Everything));
    let mut rng = StdRng::seed_from_u64(2);
    let seeds = seeds();
    for round in 0..50_000 {
        let mut packet = seeds[round % seeds.len()].clone();
        for _ in 0..rng.random_range(1..6) {
            match rng.random_range(0..5) {
                0 => {
                    let at = rng.random_range(0..packet.len());
                    packet[at] ^= 1 << rng.random_range(0..8);
                }
                1 => {
                    let at = rng.random_range(0..packet.len());
                    packet[at] = rng.random();
                }
                2 => {
                    let at = rng.random_range(0..=packet.len());
                    packet.truncate(at);
                }
                3 => {
                    let at = rng.random_range(0..=packet.len());
                    packet.insert(at, if rng.random() { 0xc0 } else { rng.random() });
                }
                _ => {
                    let extra = rng.random_range(0..64);
                    packet.extend((0..extra).map(|_| rng.random::<u8>()));
                }
            }
            if packet.is_empty() {
                break;
            }
        }
        let transport = if round % 2 == 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        check(&server, &packet, transport);
    }
}
