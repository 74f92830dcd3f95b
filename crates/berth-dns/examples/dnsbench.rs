//! A small DNS load generator, and the two ends to point it at.
//!
//! ```text
//! dnsbench query ADDR [-n QUERIES] [-k IN_FLIGHT] [--name NAME] [--type A|AAAA|PTR|MX|TXT] [--timeout MS]
//!     N queries over UDP, K in flight (K sockets, each waiting for its answer before the
//!     next query), against ADDR; prints queries/second and latency percentiles.
//! dnsbench serve ADDR [--upstream ADDR]... [--seconds S]
//!     The embedded server on ADDR (UDP and TCP), as a container's resolver: `bench` and
//!     `bench.net` are local (10.0.0.2 and fd00::2), everything else goes to the upstreams.
//! dnsbench upstream ADDR [--seconds S]
//!     A stand-in upstream on ADDR (UDP and TCP) answering every query with one A record,
//!     192.0.2.1, to measure the forwarding path without a network.
//! ```
//!
//! For example, the local path and the forwarding path:
//!
//! ```text
//! dnsbench upstream 127.0.0.1:5301 &
//! dnsbench serve 127.0.0.1:5300 --upstream 127.0.0.1:5301 &
//! dnsbench query 127.0.0.1:5300 -n 100000 -k 64 --name bench
//! dnsbench query 127.0.0.1:5300 -n 100000 -k 64 --name example.com
//! dnsbench query 127.0.0.1:5301 -n 100000 -k 64 --name example.com
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use berth_dns::{Names, Server};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

const USAGE: &str = "usage:
  dnsbench query ADDR [-n QUERIES] [-k IN_FLIGHT] [--name NAME] [--type A|AAAA|PTR|MX|TXT] [--timeout MS]
  dnsbench serve ADDR [--upstream ADDR]... [--seconds S]
  dnsbench upstream ADDR [--seconds S]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("dnsbench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("query") => runtime.block_on(query(&args[1..])),
        Some("serve") => runtime.block_on(serve(&args[1..])),
        Some("upstream") => runtime.block_on(upstream(&args[1..])),
        _ => Err(USAGE.to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("dnsbench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The positional address and the options of a subcommand.
struct Args {
    addr: SocketAddr,
    options: Vec<(String, String)>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut addr = None;
        let mut options = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            if arg.starts_with('-') {
                let value = iter
                    .next()
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))?;
                options.push((arg.clone(), value.clone()));
            } else if addr.is_none() {
                addr = Some(arg.parse().map_err(|e| format!("{arg}: {e}"))?);
            } else {
                return Err(format!("unexpected {arg}\n{USAGE}"));
            }
        }
        Ok(Args {
            addr: addr.ok_or_else(|| USAGE.to_owned())?,
            options,
        })
    }

    fn get<T: FromStr>(&self, names: &[&str], default: T) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        match self
            .options
            .iter()
            .rev()
            .find(|(name, _)| names.contains(&name.as_str()))
        {
            Some((name, value)) => value.parse().map_err(|e| format!("{name} {value}: {e}")),
            None => Ok(default),
        }
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.options
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn check(&self, known: &[&str]) -> Result<(), String> {
        match self
            .options
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            Some((name, _)) => Err(format!("unknown option {name}\n{USAGE}")),
            None => Ok(()),
        }
    }
}

// ---- query ----------------------------------------------------------------------------

async fn query(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check(&["-n", "-k", "--name", "--type", "--timeout"])?;
    let total: usize = args.get(&["-n"], 10_000)?;
    let in_flight: usize = args.get(&["-k"], 16)?.max(1);
    let name: String = args.get(&["--name"], "bench".to_owned())?;
    let qtype: String = args.get(&["--type"], "A".to_owned())?;
    let qtype =
        RecordType::from_str(&qtype.to_uppercase()).map_err(|e| format!("--type {qtype}: {e}"))?;
    let timeout = Duration::from_millis(args.get(&["--timeout"], 2000)?);
    let mut qname = Name::from_ascii(&name).map_err(|e| format!("--name {name}: {e}"))?;
    qname.set_fqdn(true);

    let tickets = Arc::new(AtomicUsize::new(total));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..in_flight.min(total.max(1)) {
        let (tickets, qname, addr) = (tickets.clone(), qname.clone(), args.addr);
        workers.push(tokio::spawn(async move {
            worker(addr, qname, qtype, timeout, &tickets).await
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut rcodes = BTreeMap::new();
    let mut timeouts = 0;
    for worker in workers {
        let result = worker.await.map_err(|e| e.to_string())??;
        latencies.extend(result.latencies);
        for (rcode, count) in result.rcodes {
            *rcodes.entry(rcode).or_insert(0) += count;
        }
        timeouts += result.timeouts;
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let percentile = |p: f64| -> String {
        if latencies.is_empty() {
            return "-".into();
        }
        let at = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        format!("{:.1} µs", latencies[at].as_secs_f64() * 1e6)
    };
    println!(
        "{} queries for {} {} to {} with {} in flight in {:.3} s",
        total,
        name,
        qtype,
        args.addr,
        in_flight,
        elapsed.as_secs_f64()
    );
    println!(
        "answered {} ({:.0} queries/s), timed out {}; rcodes {:?}",
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        timeouts,
        rcodes
    );
    println!(
        "latency p50 {}  p90 {}  p99 {}  max {}",
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(1.0)
    );
    Ok(())
}

struct WorkerResult {
    latencies: Vec<Duration>,
    rcodes: BTreeMap<String, usize>,
    timeouts: usize,
}

async fn worker(
    addr: SocketAddr,
    qname: Name,
    qtype: RecordType,
    timeout: Duration,
    tickets: &AtomicUsize,
) -> Result<WorkerResult, String> {
    let local: SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .map_err(|_| "address")?;
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(addr).await.map_err(|e| e.to_string())?;
    let mut result = WorkerResult {
        latencies: Vec::new(),
        rcodes: BTreeMap::new(),
        timeouts: 0,
    };
    let mut buf = vec![0; 65535];
    while tickets
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut msg = Message::query();
        msg.metadata.recursion_desired = true;
        msg.add_query(Query::query(qname.clone(), qtype));
        let id = msg.id;
        let bytes = msg.to_vec().map_err(|e| e.to_string())?;
        let sent = Instant::now();
        if let Err(error) = socket.send(&bytes).await {
            return Err(format!("sending to {addr}: {error}"));
        }
        let answered = tokio::time::timeout(timeout, async {
            loop {
                let len = socket.recv(&mut buf).await?;
                // Late answers to earlier, timed-out queries are skipped.
                if len >= 12 && buf[..2] == id.to_be_bytes() {
                    return Ok::<_, std::io::Error>(len);
                }
            }
        })
        .await;
        match answered {
            Ok(Ok(len)) => {
                result.latencies.push(sent.elapsed());
                let rcode = match Message::from_vec(&buf[..len]) {
                    Ok(answer) => answer.response_code.to_string(),
                    Err(_) => "malformed".to_owned(),
                };
                *result.rcodes.entry(rcode).or_insert(0) += 1;
            }
            Ok(Err(error)) => return Err(format!("receiving from {addr}: {error}")),
            Err(_) => result.timeouts += 1,
        }
    }
    Ok(result)
}

// ---- serve ----------------------------------------------------------------------------

struct BenchNames {
    upstreams: Vec<SocketAddr>,
}

impl Names for BenchNames {
    fn lookup(&self, _asker: &str, name: &str) -> Option<Vec<IpAddr>> {
        match name {
            "bench" | "bench.net" => {
                Some(vec![IpAddr::from([10, 0, 0, 2]), "fd00::2".parse().ok()?])
            }
            _ => None,
        }
    }

    fn reverse(&self, _asker: &str, addr: IpAddr) -> Option<String> {
        (addr == IpAddr::from([10, 0, 0, 2])).then(|| "bench.net".to_owned())
    }

    fn upstreams(&self, _asker: &str) -> Vec<SocketAddr> {
        self.upstreams.clone()
    }
}

async fn serve(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check(&["--upstream", "--seconds"])?;
    let upstreams = args
        .all("--upstream")
        .into_iter()
        .map(|s| s.parse().map_err(|e| format!("--upstream {s}: {e}")))
        .collect::<Result<Vec<SocketAddr>, String>>()?;
    let seconds: u64 = args.get(&["--seconds"], u64::MAX)?;
    let udp = std::net::UdpSocket::bind(args.addr).map_err(|e| format!("{}: {e}", args.addr))?;
    let tcp = std::net::TcpListener::bind(args.addr).map_err(|e| format!("{}: {e}", args.addr))?;
    let server = Server::new(Arc::new(BenchNames { upstreams }));
    let serving = server
        .serve("bench".to_owned(), udp, Some(tcp))
        .map_err(|e| e.to_string())?;
    eprintln!("dnsbench: serving on {}", serving.udp_addr());
    tokio::time::sleep(Duration::from_secs(seconds.min(100 * 365 * 86400))).await;
    serving.shutdown().await;
    Ok(())
}

// ---- upstream -------------------------------------------------------------------------

fn upstream_answer(query: &[u8]) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let mut answer = Message::response(query.id, query.op_code);
    answer.metadata.recursion_desired = query.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.queries = query.queries.clone();
    let name = query.queries.first()?.name().clone();
    answer.answers.push(Record::from_rdata(
        name,
        60,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
    ));
    answer.to_vec().ok()
}

async fn upstream(args: &[String]) -> Result<(), String> {
    let args = Args::parse(args)?;
    args.check(&["--seconds"])?;
    let seconds: u64 = args.get(&["--seconds"], u64::MAX)?;
    let udp = Arc::new(
        UdpSocket::bind(args.addr)
            .await
            .map_err(|e| format!("{}: {e}", args.addr))?,
    );
    let tcp = TcpListener::bind(args.addr)
        .await
        .map_err(|e| format!("{}: {e}", args.addr))?;
    eprintln!("dnsbench: upstream on {}", args.addr);
    // One receiving task per core, sharing the socket.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 0..cores {
        let udp = udp.clone();
        tokio::spawn(async move {
            let mut buf = vec![0; 65535];
            loop {
                let Ok((len, peer)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if let Some(answer) = upstream_answer(&buf[..len]) {
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        });
    }
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = tcp.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                while let Ok(len) = stream.read_u16().await {
                    let mut buf = vec![0; usize::from(len)];
                    if stream.read_exact(&mut buf).await.is_err() {
                        return;
                    }
                    let Some(answer) = upstream_answer(&buf) else {
                        continue;
                    };
                    let mut frame = (answer.len() as u16).to_be_bytes().to_vec();
                    frame.extend_from_slice(&answer);
                    if stream.write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    tokio::time::sleep(Duration::from_secs(seconds.min(100 * 365 * 86400))).await;
    Ok(())
}
