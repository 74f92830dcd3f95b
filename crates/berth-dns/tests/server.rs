//! The server on real sockets (127.0.0.1, random ports), with a fake upstream.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_dns::{Config, Names, Server, Serving};
use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const TIMEOUT: Duration = Duration::from_millis(300);

// ---- the engine's side ----------------------------------------------------------------

#[derive(Default)]
struct TestNames {
    /// (asker, name) → addresses.
    names: HashMap<(String, String), Vec<IpAddr>>,
    /// (asker, address) → name.
    reverse: HashMap<(String, IpAddr), String>,
    upstreams: Mutex<Vec<SocketAddr>>,
    ndots: bool,
}

impl TestNames {
    fn new() -> TestNames {
        let mut names = TestNames::default();
        let ip = |s: &str| -> IpAddr { s.parse().unwrap() };
        for asker in ["c1", "c3"] {
            let mut add = |name: &str, addrs: Vec<IpAddr>| {
                names
                    .names
                    .insert((asker.to_owned(), name.to_owned()), addrs);
            };
            add("web", vec![ip("10.0.0.2"), ip("fd00::2")]);
            add(
                "db",
                vec![
                    ip("10.0.0.3"),
                    ip("10.0.0.4"),
                    ip("10.0.0.5"),
                    ip("10.0.0.6"),
                ],
            );
            add("v4only", vec![ip("10.0.0.7")]);
            add("noaddr", vec![]);
            add(
                "many",
                (0..100)
                    .map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, 0, i)))
                    .collect(),
            );
            names
                .reverse
                .insert((asker.to_owned(), ip("10.0.0.2")), "web.net1".to_owned());
            names
                .reverse
                .insert((asker.to_owned(), ip("fd00::2")), "web.net1.".to_owned());
            names
                .reverse
                .insert((asker.to_owned(), ip("10.0.0.66")), "bad name".to_owned());
        }
        names
    }

    fn with_upstreams(self, upstreams: &[SocketAddr]) -> TestNames {
        *self.upstreams.lock().unwrap() = upstreams.to_vec();
        self
    }
}

impl Names for TestNames {
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        assert_eq!(
            name,
            name.to_lowercase(),
            "names are looked up in lower case"
        );
        assert!(
            !name.ends_with('.'),
            "names are looked up without the trailing dot"
        );
        self.names
            .get(&(asker.to_owned(), name.to_owned()))
            .cloned()
    }

    fn reverse(&self, asker: &str, addr: IpAddr) -> Option<String> {
        self.reverse.get(&(asker.to_owned(), addr)).cloned()
    }

    fn upstreams(&self, _asker: &str) -> Vec<SocketAddr> {
        self.upstreams.lock().unwrap().clone()
    }

    fn ndots_set(&self, _asker: &str) -> bool {
        self.ndots
    }
}

fn test_config() -> Config {
    Config {
        upstream_timeout: TIMEOUT,
        ..Config::default()
    }
}

struct Running {
    serving: Option<Serving>,
    udp: SocketAddr,
    tcp: SocketAddr,
}

fn start(names: TestNames, config: Config, asker: &str) -> Running {
    let server = Server::with_config(Arc::new(names), config);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (udp_addr, tcp_addr) = (udp.local_addr().unwrap(), tcp.local_addr().unwrap());
    let serving = server.serve(asker.to_owned(), udp, Some(tcp)).unwrap();
    assert_eq!(serving.udp_addr(), udp_addr);
    Running {
        serving: Some(serving),
        udp: udp_addr,
        tcp: tcp_addr,
    }
}

// ---- a fake upstream ------------------------------------------------------------------

#[derive(Clone, Copy)]
enum Mode {
    /// Answers every query with one A record, UPSTREAM_ANSWER.
    Answer,
    /// Never answers.
    Silent,
    /// Answers every query with this error.
    Fail(ResponseCode),
    /// Answers with 100 A records, whatever size the query allows (as some do).
    Big,
}

struct Upstream {
    addr: SocketAddr,
    /// The IDs of the queries received, and over which transport.
    seen: Arc<Mutex<Vec<(u16, &'static str)>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn upstream_answer(query: &[u8], mode: Mode) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let mut answer = Message::response(query.id, query.op_code);
    answer.metadata.recursion_desired = query.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.queries = query.queries.clone();
    let name = query.queries.first()?.name().clone();
    match mode {
        Mode::Answer => {
            answer
                .answers
                .push(Record::from_rdata(name, 60, RData::A(A(UPSTREAM_ANSWER))))
        }
        Mode::Big => {
            for i in 0..100 {
                answer.answers.push(Record::from_rdata(
                    name.clone(),
                    60,
                    RData::A(A(Ipv4Addr::new(192, 0, 2, i))),
                ));
            }
        }
        Mode::Fail(rcode) => answer.metadata.response_code = rcode,
        Mode::Silent => return None,
    }
    answer.to_vec().ok()
}

async fn upstream(mode: Mode) -> Upstream {
    // UDP and TCP on the same port, as a resolver.
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let udp_task = tokio::spawn({
        let seen = seen.clone();
        async move {
            let mut buf = vec![0; 65535];
            loop {
                let Ok((len, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if len >= 2 {
                    seen.lock()
                        .unwrap()
                        .push((u16::from_be_bytes([buf[0], buf[1]]), "udp"));
                }
                if let Some(answer) = upstream_answer(&buf[..len], mode) {
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        }
    });
    let tcp_task = tokio::spawn({
        let seen = seen.clone();
        async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    continue;
                };
                let seen = seen.clone();
                tokio::spawn(async move {
                    while let Ok(len) = stream.read_u16().await {
                        let mut buf = vec![0; usize::from(len)];
                        if stream.read_exact(&mut buf).await.is_err() {
                            return;
                        }
                        seen.lock()
                            .unwrap()
                            .push((u16::from_be_bytes([buf[0], buf[1]]), "tcp"));
                        if let Some(answer) = upstream_answer(&buf, mode) {
                            let mut frame = (answer.len() as u16).to_be_bytes().to_vec();
                            frame.extend_from_slice(&answer);
                            let _ = stream.write_all(&frame).await;
                        }
                    }
                });
            }
        }
    });
    Upstream {
        addr,
        seen,
        tasks: vec![udp_task, tcp_task],
    }
}

// ---- the client's side ----------------------------------------------------------------

fn query(name: &str, qtype: RecordType) -> Message {
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    msg
}

fn query_with_id(name: &str, qtype: RecordType, id: u16) -> Message {
    let mut msg = query(name, qtype);
    msg.metadata.id = id;
    msg
}

/// Sends raw bytes over UDP and waits up to `wait` for an answer.
async fn raw_udp(server: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server).await.unwrap();
    socket.send(packet).await.ok()?;
    let mut buf = vec![0; 65535];
    match tokio::time::timeout(wait, socket.recv(&mut buf)).await {
        Ok(Ok(len)) => Some(buf[..len].to_vec()),
        _ => None,
    }
}

async fn ask_udp(server: SocketAddr, msg: &Message) -> Message {
    let bytes = raw_udp(server, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .expect("an answer over UDP");
    let answer = Message::from_vec(&bytes).expect("a well-formed answer");
    assert_eq!(answer.id, msg.id, "the answer has the query's ID");
    answer
}

async fn write_frame(stream: &mut TcpStream, bytes: &[u8]) {
    let mut frame = (bytes.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(bytes);
    stream.write_all(&frame).await.unwrap();
}

async fn read_frame(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    tokio::time::timeout(wait, async {
        let len = stream.read_u16().await.ok()?;
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten()
}

async fn ask_tcp(server: SocketAddr, msg: &Message) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    write_frame(&mut stream, &msg.to_vec().unwrap()).await;
    let bytes = read_frame(&mut stream, Duration::from_secs(5))
        .await
        .expect("an answer over TCP");
    let answer = Message::from_vec(&bytes).unwrap();
    assert_eq!(answer.id, msg.id);
    answer
}

fn addrs(answer: &Message) -> Vec<IpAddr> {
    answer
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

// ---- local names ----------------------------------------------------------------------

#[tokio::test]
async fn a_and_aaaa_of_local_names() {
    let up = upstream(Mode::Answer).await;
    let server = start(
        TestNames::new().with_upstreams(&[up.addr]),
        test_config(),
        "c1",
    );

    let answer = ask_udp(server.udp, &query("web.", RecordType::A)).await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(answer.recursion_available);
    assert!(answer.recursion_desired);
    assert!(!answer.truncation);
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
    assert_eq!(answer.answers[0].ttl, 600);
    assert_eq!(answer.answers[0].dns_class, DNSClass::IN);
    assert_eq!(answer.queries, query("web.", RecordType::A).queries);

    let answer = ask_udp(server.udp, &query("web", RecordType::AAAA)).await;
    assert_eq!(addrs(&answer), ips(&["fd00::2"]));
    assert_eq!(answer.answers[0].record_type(), RecordType::AAAA);

    // Known names without addresses of the family: NOERROR, nothing, not forwarded.
    for (name, qtype) in [
        ("v4only.", RecordType::AAAA),
        ("noaddr.", RecordType::A),
        ("noaddr.", RecordType::AAAA),
    ] {
        let answer = ask_udp(server.udp, &query(name, qtype)).await;
        assert_eq!(
            answer.response_code,
            ResponseCode::NoError,
            "{name} {qtype}"
        );
        assert!(answer.answers.is_empty(), "{name} {qtype}");
    }
    assert!(
        up.seen.lock().unwrap().is_empty(),
        "local names are not forwarded"
    );
}

#[tokio::test]
async fn names_are_case_insensitive_and_answered_as_asked() {
    let server = start(TestNames::new(), test_config(), "c1");
    let answer = ask_udp(server.udp, &query("WeB.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
    let asked = Name::from_ascii("WeB.").unwrap();
    assert!(
        answer.queries[0].name().eq_case(&asked),
        "the question as asked"
    );
    assert!(
        answer.answers[0].name.eq_case(&asked),
        "the record's name as asked"
    );
}

#[tokio::test]
async fn a_shared_alias_has_every_address_in_random_order() {
    let server = start(TestNames::new(), test_config(), "c1");
    let mut orders = std::collections::HashSet::new();
    for _ in 0..30 {
        let answer = ask_udp(server.udp, &query("db.", RecordType::A)).await;
        let mut got = addrs(&answer);
        orders.insert(got.clone());
        got.sort();
        assert_eq!(got, ips(&["10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]));
    }
    // 24 orders: the chance of one only in 30 answers is 24^-29.
    assert!(orders.len() > 1, "the order is shuffled");
}

#[tokio::test]
async fn ptr_of_local_addresses() {
    let up = upstream(Mode::Answer).await;
    let server = start(
        TestNames::new().with_upstreams(&[up.addr]),
        test_config(),
        "c1",
    );

    let answer = ask_udp(
        server.udp,
        &query("2.0.0.10.in-addr.arpa.", RecordType::PTR),
    )
    .await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(answer.answers[0].ttl, 600);
    assert_eq!(
        answer.answers[0].data,
        RData::PTR(hickory_proto::rr::rdata::PTR(
            Name::from_ascii("web.net1.").unwrap()
        ))
    );

    let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.IP6.ARPA.";
    let answer = ask_udp(server.udp, &query(v6, RecordType::PTR)).await;
    assert_eq!(answer.answers.len(), 1);
    assert_eq!(
        answer.answers[0].data,
        RData::PTR(hickory_proto::rr::rdata::PTR(
            Name::from_ascii("web.net1.").unwrap()
        ))
    );
    assert!(
        answer.answers[0]
            .name
            .eq_case(&Name::from_ascii(v6).unwrap())
    );
    assert!(up.seen.lock().unwrap().is_empty());

    // Unknown addresses and partial reverse names are forwarded.
    for name in ["9.0.0.10.in-addr.arpa.", "0.10.in-addr.arpa."] {
        let answer = ask_udp(server.udp, &query(name, RecordType::PTR)).await;
        assert_eq!(answer.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&answer), ips(&["192.0.2.1"]), "{name} forwarded");
    }
    assert_eq!(up.seen.lock().unwrap().len(), 2);

    // A name the engine gives that is not a domain name.
    let answer = ask_udp(
        server.udp,
        &query("66.0.0.10.in-addr.arpa.", RecordType::PTR),
    )
    .await;
    assert_eq!(answer.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn names_are_those_of_the_askers_networks() {
    let up = upstream(Mode::Answer).await;
    let names = TestNames::new().with_upstreams(&[up.addr]);
    let server = start(names, test_config(), "c2");
    // c2 is not on web's network: forwarded, answered by the upstream.
    let answer = ask_udp(server.udp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
    let answer = ask_udp(
        server.udp,
        &query("2.0.0.10.in-addr.arpa.", RecordType::PTR),
    )
    .await;
    assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
    assert_eq!(up.seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn other_types_of_local_names() {
    let up = upstream(Mode::Fail(ResponseCode::NXDomain)).await;
    let server = start(
        TestNames::new().with_upstreams(&[up.addr]),
        test_config(),
        "c1",
    );
    // MX: NOERROR without answers (moby's implicit MX), not forwarded.
    let answer = ask_udp(server.udp, &query("web.", RecordType::MX)).await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert!(up.seen.lock().unwrap().is_empty());
    // TXT, SRV: forwarded, as moby.
    for qtype in [RecordType::TXT, RecordType::SRV] {
        let answer = ask_udp(server.udp, &query("web.", qtype)).await;
        assert_eq!(answer.response_code, ResponseCode::NXDomain, "{qtype}");
    }
    assert_eq!(up.seen.lock().unwrap().len(), 2);
    // Another class: forwarded.
    let mut chaos = query("web.", RecordType::A);
    chaos.queries[0].set_query_class(DNSClass::CH);
    let answer = ask_udp(server.udp, &chaos).await;
    assert_eq!(answer.response_code, ResponseCode::NXDomain);
    assert_eq!(up.seen.lock().unwrap().len(), 3);

    // Unless told to answer NODATA.
    let config = Config {
        nodata_for_local_names: true,
        ..test_config()
    };
    let server = start(TestNames::new().with_upstreams(&[up.addr]), config, "c1");
    let answer = ask_udp(server.udp, &query("web.", RecordType::TXT)).await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    let answer = ask_udp(server.udp, &query("example.com.", RecordType::TXT)).await;
    assert_eq!(answer.response_code, ResponseCode::NXDomain);
    assert_eq!(up.seen.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn ndots_keeps_single_labels_home() {
    let up = upstream(Mode::Answer).await;
    let mut names = TestNames::new().with_upstreams(&[up.addr]);
    names.ndots = true;
    let server = start(names, test_config(), "c1");
    let answer = ask_udp(server.udp, &query("unknown.", RecordType::A)).await;
    assert_eq!(answer.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert!(up.seen.lock().unwrap().is_empty());
    let answer = ask_udp(server.udp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
    let answer = ask_udp(server.udp, &query("example.com.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
}

// ---- forwarding -----------------------------------------------------------------------

#[tokio::test]
async fn forwarded_with_fresh_ids_and_the_clients_restored() {
    let up = upstream(Mode::Answer).await;
    let server = start(
        TestNames::new().with_upstreams(&[up.addr]),
        test_config(),
        "c1",
    );
    for _ in 0..8 {
        let answer = ask_udp(
            server.udp,
            &query_with_id("example.com.", RecordType::A, 0x1234),
        )
        .await;
        assert_eq!(answer.id, 0x1234);
        assert_eq!(answer.response_code, ResponseCode::NoError);
        assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
    }
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 8);
    assert!(seen.iter().all(|(_, transport)| *transport == "udp"));
    // Random IDs upstream: eight times the client's would be a 2^-128 coincidence.
    assert!(seen.iter().any(|(id, _)| *id != 0x1234));
}

#[tokio::test]
async fn a_silent_upstream_times_out_and_the_next_answers() {
    let silent = upstream(Mode::Silent).await;
    let good = upstream(Mode::Answer).await;
    let server = start(
        TestNames::new().with_upstreams(&[silent.addr, good.addr]),
        test_config(),
        "c1",
    );
    let started = Instant::now();
    let answer = ask_udp(server.udp, &query("example.com.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
    assert!(
        started.elapsed() >= TIMEOUT,
        "the first upstream was waited for"
    );
    assert_eq!(silent.seen.lock().unwrap().len(), 1);
    assert_eq!(good.seen.lock().unwrap().len(), 1);

    // Over TCP too.
    let answer = ask_tcp(server.tcp, &query("example.com.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
    assert_eq!(good.seen.lock().unwrap().last().unwrap().1, "tcp");
}

#[tokio::test]
async fn servfail_and_refused_upstreams_are_skipped() {
    let servfail = upstream(Mode::Fail(ResponseCode::ServFail)).await;
    let refused = upstream(Mode::Fail(ResponseCode::Refused)).await;
    let nxdomain = upstream(Mode::Fail(ResponseCode::NXDomain)).await;
    let server = start(
        TestNames::new().with_upstreams(&[servfail.addr, refused.addr, nxdomain.addr]),
        test_config(),
        "c1",
    );
    let answer = ask_udp(server.udp, &query("nowhere.example.", RecordType::A)).await;
    assert_eq!(
        answer.response_code,
        ResponseCode::NXDomain,
        "NXDOMAIN is an answer"
    );
    assert_eq!(servfail.seen.lock().unwrap().len(), 1);
    assert_eq!(refused.seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn no_upstream_answering_is_servfail() {
    let silent = upstream(Mode::Silent).await;
    let servfail = upstream(Mode::Fail(ResponseCode::ServFail)).await;
    // A closed port: ICMP port unreachable, failing at once.
    let closed = {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let fourth = upstream(Mode::Answer).await;
    let names = TestNames::new().with_upstreams(&[closed, silent.addr, servfail.addr, fourth.addr]);
    let server = start(names, test_config(), "c1");
    let answer = ask_udp(server.udp, &query("example.com.", RecordType::A)).await;
    assert_eq!(answer.response_code, ResponseCode::ServFail);
    assert_eq!(answer.queries, query("example.com.", RecordType::A).queries);
    assert!(
        fourth.seen.lock().unwrap().is_empty(),
        "at most three upstreams"
    );

    // No upstreams at all.
    let server = start(TestNames::new(), test_config(), "c1");
    let answer = ask_udp(server.udp, &query("example.com.", RecordType::A)).await;
    assert_eq!(answer.response_code, ResponseCode::ServFail);
    let answer = ask_tcp(server.tcp, &query("example.com.", RecordType::A)).await;
    assert_eq!(answer.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn the_served_address_is_never_an_upstream() {
    let good = upstream(Mode::Answer).await;
    let names = Arc::new(TestNames::new());
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = udp.local_addr().unwrap();
    *names.upstreams.lock().unwrap() = vec![addr, good.addr];
    let server = Server::with_config(names, test_config());
    let _serving = server.serve("c1".into(), udp, None).unwrap();
    let started = Instant::now();
    let answer = ask_udp(addr, &query("example.com.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["192.0.2.1"]));
    assert!(started.elapsed() < TIMEOUT, "not forwarded to itself first");
}

#[tokio::test]
async fn oversized_upstream_answers_are_truncated_for_udp_clients() {
    let big = upstream(Mode::Big).await;
    let server = start(
        TestNames::new().with_upstreams(&[big.addr]),
        test_config(),
        "c1",
    );
    let msg = query("big.example.", RecordType::A);
    let bytes = raw_udp(server.udp, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(bytes.len() <= 512);
    let answer = Message::from_vec(&bytes).unwrap();
    assert!(answer.truncation, "TC so that the client retries over TCP");
    assert_eq!(answer.id, msg.id);
    // With EDNS large enough, relayed whole.
    let mut msg = query("big.example.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    msg.edns = Some(edns);
    let answer = ask_udp(server.udp, &msg).await;
    assert!(!answer.truncation);
    assert_eq!(answer.answers.len(), 100);
    // Over TCP, relayed whole.
    let answer = ask_tcp(server.tcp, &query("big.example.", RecordType::A)).await;
    assert!(!answer.truncation);
    assert_eq!(answer.answers.len(), 100);
}

#[tokio::test]
async fn forwards_in_flight_are_bounded() {
    let silent = upstream(Mode::Silent).await;
    let config = Config {
        max_forwards: 2,
        max_waiting: 1,
        ..test_config()
    };
    let server = start(
        TestNames::new().with_upstreams(&[silent.addr]),
        config,
        "c1",
    );
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.udp).await.unwrap();
    for id in 0..10 {
        socket
            .send(
                &query_with_id("example.com.", RecordType::A, id)
                    .to_vec()
                    .unwrap(),
            )
            .await
            .unwrap();
    }
    let mut rcodes = HashMap::new();
    let mut buf = vec![0; 65535];
    for _ in 0..10 {
        let len = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        let answer = Message::from_vec(&buf[..len]).unwrap();
        *rcodes.entry(answer.response_code).or_insert(0) += 1;
    }
    // Two forwarded (SERVFAIL after the timeout), one waiting for a slot (which it gets,
    // or REFUSED after waiting as long), the rest REFUSED at once.
    assert!(
        rcodes.get(&ResponseCode::Refused).copied().unwrap_or(0) >= 7,
        "{rcodes:?}"
    );
    assert!(
        rcodes.get(&ResponseCode::ServFail).copied().unwrap_or(0) >= 2,
        "{rcodes:?}"
    );
    // And it serves on.
    let answer = ask_udp(server.udp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
}

// ---- TCP ------------------------------------------------------------------------------

#[tokio::test]
async fn tcp_queries_local_and_forwarded_pipelined() {
    let up = upstream(Mode::Answer).await;
    let server = start(
        TestNames::new().with_upstreams(&[up.addr]),
        test_config(),
        "c1",
    );
    let answer = ask_tcp(server.tcp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));

    // Several queries on one connection, written at once (as glibc's A and AAAA).
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    let queries = [
        query_with_id("example.com.", RecordType::A, 1),
        query_with_id("web.", RecordType::AAAA, 2),
        query_with_id("example.org.", RecordType::A, 3),
    ];
    let mut frames = Vec::new();
    for q in &queries {
        let bytes = q.to_vec().unwrap();
        frames.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        frames.extend_from_slice(&bytes);
    }
    stream.write_all(&frames).await.unwrap();
    let mut answers = HashMap::new();
    for _ in 0..3 {
        let bytes = read_frame(&mut stream, Duration::from_secs(5))
            .await
            .unwrap();
        let answer = Message::from_vec(&bytes).unwrap();
        answers.insert(answer.id, addrs(&answer));
    }
    assert_eq!(answers[&1], ips(&["192.0.2.1"]));
    assert_eq!(answers[&2], ips(&["fd00::2"]));
    assert_eq!(answers[&3], ips(&["192.0.2.1"]));
    let seen = up.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter().all(|(_, transport)| *transport == "tcp"),
        "TCP forwarded over TCP"
    );

    // The client closing its side still gets its answers.
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    write_frame(
        &mut stream,
        &query_with_id("example.net.", RecordType::A, 9)
            .to_vec()
            .unwrap(),
    )
    .await;
    stream.shutdown().await.unwrap();
    let bytes = read_frame(&mut stream, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(Message::from_vec(&bytes).unwrap().id, 9);
}

// ---- sizes and EDNS ---------------------------------------------------------------------

#[tokio::test]
async fn answers_are_truncated_to_what_the_client_takes() {
    let server = start(TestNames::new(), test_config(), "c1");
    // No EDNS: 512 bytes, as many records as fit, TC.
    let msg = query("many.", RecordType::A);
    let bytes = raw_udp(server.udp, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let answer = Message::from_vec(&bytes).unwrap();
    assert!(answer.truncation);
    assert!(!answer.answers.is_empty() && answer.answers.len() < 100);
    assert!(
        bytes.len() > 512 - 16,
        "as many as fit: {} bytes",
        bytes.len()
    );

    // EDNS with room: everything, and an OPT record back.
    let mut msg = query("many.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    msg.edns = Some(edns);
    let answer = ask_udp(server.udp, &msg).await;
    assert!(!answer.truncation);
    assert_eq!(answer.answers.len(), 100);
    let edns = answer.edns.as_ref().expect("an OPT record in the answer");
    assert_eq!(edns.version(), 0);

    // EDNS with less room than 512: 512 anyway (RFC 6891), the OPT record kept.
    let mut msg = query("many.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(600);
    msg.edns = Some(edns);
    let bytes = raw_udp(server.udp, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(bytes.len() <= 600);
    let answer = Message::from_vec(&bytes).unwrap();
    assert!(answer.truncation);
    assert!(answer.edns.is_some(), "the OPT record survives truncation");

    // TCP: everything.
    let answer = ask_tcp(server.tcp, &query("many.", RecordType::A)).await;
    assert!(!answer.truncation);
    assert_eq!(answer.answers.len(), 100);
    assert!(
        answer.edns.is_none(),
        "no OPT record for a query without one"
    );
}

#[tokio::test]
async fn edns_versions_other_than_zero_are_badvers() {
    let server = start(TestNames::new(), test_config(), "c1");
    let mut msg = query("web.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_version(1);
    msg.edns = Some(edns);
    let answer = ask_udp(server.udp, &msg).await;
    // 16, BADVERS (which hickory reads as BADSIG, the same number).
    assert_eq!(u16::from(answer.response_code), 16);
    assert_eq!(answer.edns.as_ref().unwrap().version(), 0);
    assert!(answer.answers.is_empty());
}

// ---- hostile input --------------------------------------------------------------------

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut bytes = id.to_be_bytes().to_vec();
    bytes.extend_from_slice(&flags.to_be_bytes());
    for count in counts {
        bytes.extend_from_slice(&count.to_be_bytes());
    }
    bytes
}

fn rcode(bytes: &[u8]) -> u8 {
    bytes[3] & 0x0f
}

#[tokio::test]
async fn malformed_queries_get_formerr_or_nothing() {
    let server = start(TestNames::new(), test_config(), "c1");
    let short = Duration::from_millis(300);
    let long = Duration::from_secs(5);

    // Header only, claiming a question.
    let answer = raw_udp(server.udp, &header(0x0101, 0x0100, [1, 0, 0, 0]), long)
        .await
        .unwrap();
    assert_eq!(answer[..2], [0x01, 0x01]);
    assert_eq!(answer[2] & 0x80, 0x80, "a response");
    assert_eq!(rcode(&answer), 1, "FORMERR");

    // A compression loop: the question's name points at itself.
    let mut looped = header(0x0202, 0x0100, [1, 0, 0, 0]);
    looped.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    let answer = raw_udp(server.udp, &looped, long).await.unwrap();
    assert_eq!(
        (answer[..2].to_vec(), rcode(&answer)),
        (vec![0x02, 0x02], 1)
    );
    // Two pointers at each other, and a pointer forward.
    let mut pingpong = header(0x0303, 0x0100, [1, 0, 0, 0]);
    pingpong.extend_from_slice(&[0x01, b'a', 0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(
        rcode(&raw_udp(server.udp, &pingpong, long).await.unwrap()),
        1
    );
    let mut forward = header(0x0404, 0x0100, [1, 0, 0, 0]);
    forward.extend_from_slice(&[0xc0, 0x20, 0, 1, 0, 1]);
    assert_eq!(
        rcode(&raw_udp(server.udp, &forward, long).await.unwrap()),
        1
    );

    // Questions but two; answers by thousands.
    let mut two = query("web.", RecordType::A).to_vec().unwrap();
    two[5] = 2;
    assert_eq!(rcode(&raw_udp(server.udp, &two, long).await.unwrap()), 1);
    let mut many = query("web.", RecordType::A).to_vec().unwrap();
    many[6..8].copy_from_slice(&60000u16.to_be_bytes());
    assert_eq!(rcode(&raw_udp(server.udp, &many, long).await.unwrap()), 1);
    // A label running past the end.
    let mut cut = header(0x0505, 0x0100, [1, 0, 0, 0]);
    cut.extend_from_slice(&[0x3f, b'a', b'b']);
    assert_eq!(rcode(&raw_udp(server.udp, &cut, long).await.unwrap()), 1);

    // Other opcodes: NOTIMP, the opcode echoed.
    let mut status = query("web.", RecordType::A).to_vec().unwrap();
    status[2] = (2 << 3) | 1;
    let answer = raw_udp(server.udp, &status, long).await.unwrap();
    assert_eq!(rcode(&answer), 4, "NOTIMP");
    assert_eq!((answer[2] >> 3) & 0x0f, 2);
    let mut update = query("web.", RecordType::A).to_vec().unwrap();
    update[2] = 5 << 3;
    assert_eq!(rcode(&raw_udp(server.udp, &update, long).await.unwrap()), 4);

    // Nothing for responses, or for less than a header.
    let mut response = query("web.", RecordType::A).to_vec().unwrap();
    response[2] |= 0x80;
    assert_eq!(raw_udp(server.udp, &response, short).await, None);
    assert_eq!(raw_udp(server.udp, &[0x12, 0x34, 0x01], short).await, None);
    assert_eq!(raw_udp(server.udp, &[], short).await, None);

    // Random bytes, then a query: it is answered.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.udp).await.unwrap();
    for _ in 0..2000 {
        let len = rng.random_range(0..700);
        let mut junk = vec![0; len];
        rng.fill(&mut junk[..]);
        if len > 2 {
            junk[0] = 0xff; // IDs unlike the query's below
        }
        socket.send(&junk).await.unwrap();
    }
    socket
        .send(
            &query_with_id("web.", RecordType::A, 0x4242)
                .to_vec()
                .unwrap(),
        )
        .await
        .unwrap();
    let mut buf = vec![0; 65535];
    loop {
        let len = tokio::time::timeout(long, socket.recv(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(len <= 512);
        if buf[..2] == [0x42, 0x42] {
            assert_eq!(
                addrs(&Message::from_vec(&buf[..len]).unwrap()),
                ips(&["10.0.0.2"])
            );
            break;
        }
    }
}

#[tokio::test]
async fn malformed_tcp_messages() {
    let server = start(TestNames::new(), test_config(), "c1");
    let long = Duration::from_secs(5);

    // A 64 KiB message: a header, then garbage. FORMERR, and the connection serves on.
    let mut stream = TcpStream::connect(server.tcp).await.unwrap();
    let mut huge = header(0x0606, 0x0100, [1, 0, 0, 0]);
    huge.resize(65535, 0xc0);
    write_frame(&mut stream, &huge).await;
    let answer = read_frame(&mut stream, long).await.unwrap();
    assert_eq!(
        (answer[..2].to_vec(), rcode(&answer)),
        (vec![0x06, 0x06], 1)
    );
    write_frame(
        &mut stream,
        &query_with_id("web.", RecordType::A, 7).to_vec().unwrap(),
    )
    .await;
    let answer = Message::from_vec(&read_frame(&mut stream, long).await.unwrap()).unwrap();
    assert_eq!((answer.id, addrs(&answer)), (7, ips(&["10.0.0.2"])));

    // Random 64 KiB, a frame of less than a header, an empty frame: nothing, serving on.
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut junk = vec![0; 65535];
    rng.fill(&mut junk[..]);
    junk[2] |= 0x80; // a "response": dropped
    write_frame(&mut stream, &junk).await;
    write_frame(&mut stream, &[1, 2, 3]).await;
    write_frame(&mut stream, &[]).await;
    write_frame(
        &mut stream,
        &query_with_id("web.", RecordType::A, 8).to_vec().unwrap(),
    )
    .await;
    let answer = Message::from_vec(&read_frame(&mut stream, long).await.unwrap()).unwrap();
    assert_eq!(answer.id, 8);

    // A frame cut short, then the connection closed: the server is not stuck.
    let mut cut = TcpStream::connect(server.tcp).await.unwrap();
    cut.write_all(&[0x01, 0x00, 1, 2, 3]).await.unwrap();
    drop(cut);
    let answer = ask_tcp(server.tcp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
}

#[tokio::test]
async fn tcp_connections_are_bounded_and_idle_ones_closed() {
    let config = Config {
        max_tcp_connections: 2,
        tcp_idle_timeout: Duration::from_secs(1),
        ..test_config()
    };
    let server = start(TestNames::new(), config, "c1");
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.tcp).await.unwrap();
        // Served, then left open.
        write_frame(&mut stream, &query("web.", RecordType::A).to_vec().unwrap()).await;
        assert!(
            read_frame(&mut stream, Duration::from_secs(5))
                .await
                .is_some()
        );
        idle.push(stream);
    }
    // A third while two are open: closed at once.
    let mut third = TcpStream::connect(server.tcp).await.unwrap();
    let _ = third.write_all(&[0, 12]).await;
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut byte))
        .await
        .unwrap();
    assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    // The idle ones are closed after the timeout, and new connections served.
    for stream in &mut idle {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte))
            .await
            .unwrap();
        assert!(matches!(read, Ok(0) | Err(_)), "closed: {read:?}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let answer = ask_tcp(server.tcp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
}

// ---- stopping -------------------------------------------------------------------------

#[tokio::test]
async fn dropping_serving_stops_answering() {
    let mut server = start(TestNames::new(), test_config(), "c1");
    let answer = ask_udp(server.udp, &query("web.", RecordType::A)).await;
    assert_eq!(addrs(&answer), ips(&["10.0.0.2"]));
    drop(server.serving.take());
    // The tasks are aborted at once, and end as soon as the runtime gets to them.
    let mut tries = 0;
    while TcpStream::connect(server.tcp).await.is_ok() {
        tries += 1;
        assert!(tries < 100, "the listener is closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let msg = query("web.", RecordType::A).to_vec().unwrap();
    assert_eq!(
        raw_udp(server.udp, &msg, Duration::from_millis(300)).await,
        None
    );
}

#[tokio::test]
async fn shutdown_closes_the_sockets() {
    let silent = upstream(Mode::Silent).await;
    let mut server = start(
        TestNames::new().with_upstreams(&[silent.addr]),
        test_config(),
        "c1",
    );
    // A forward in flight holds the socket until shut down.
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(
            &query("example.com.", RecordType::A).to_vec().unwrap(),
            server.udp,
        )
        .await
        .unwrap();
    let mut tcp = TcpStream::connect(server.tcp).await.unwrap();
    write_frame(
        &mut tcp,
        &query("example.com.", RecordType::A).to_vec().unwrap(),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.serving.take().unwrap().shutdown().await;
    // The addresses can be bound again at once.
    std::net::UdpSocket::bind(server.udp).expect("the UDP socket is closed");
    std::net::TcpListener::bind(server.tcp).expect("the TCP listener is closed");
}

#[test]
fn serve_needs_a_runtime() {
    let server = Server::new(Arc::new(TestNames::new()));
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let error = server.serve("c1".into(), udp, None).unwrap_err();
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}
