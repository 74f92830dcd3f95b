//! Test fixtures: private network namespaces, veths, bridges, tiny servers and clients.
//!
//! Each test runs its body on a thread of its own that unshared its network namespace
//! ([`in_new_netns`]): the `nft` and `ip` processes it starts inherit that namespace, so tests
//! run in parallel, never see the host's firewall, and leave nothing behind (the namespace
//! goes away with the thread and its children). "Containers" and the "outside" host are
//! namespaces held by a `sleep` process ([`Ns`]), killed on drop.

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sched::{CloneFlags, setns, unshare};

/// How long a client waits for a connection or an answer before calling it unreachable.
pub const WAIT: Duration = Duration::from_millis(1500);

/// Runs `f` on a new thread in a new network namespace (loopback up) and returns its result;
/// a panic in `f` is the caller's panic.
pub fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let nft = Command::new("nft").arg("--version").output();
    assert!(
        nft.is_ok_and(|o| o.status.success()),
        "nft is not installed: these tests need the Debian package nftables"
    );
    let h = std::thread::spawn(move || {
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): tests run as root");
        sh(&["ip", "link", "set", "lo", "up"]);
        f()
    });
    match h.join() {
        Ok(v) => v,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Runs a command; its stdout. Panics with its stderr if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `nft` with a script on stdin; panics if it fails.
pub fn nft_script(script: &str) {
    let mut c = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running nft");
    c.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "nft -f -: {}\n{script}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `nft list table <spec>`, or None if it does not exist.
pub fn nft_list(spec: &str) -> Option<String> {
    let mut args = vec!["list", "table"];
    args.extend(spec.split(' '));
    let out = Command::new("nft")
        .args(&args)
        .output()
        .expect("running nft");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Sets a sysctl in the calling thread's network namespace.
pub fn sysctl(key: &str, value: &str) {
    sh(&["sysctl", "-qw", &format!("{key}={value}")]);
}

/// The tables iptables-nft would make for dockerd (a filter and a nat table with rules).
pub const FOREIGN_TABLES: &str = "\
table ip filter {
\tchain DOCKER-USER {
\t\treturn
\t}
\tchain FORWARD {
\t\ttype filter hook forward priority filter; policy accept;
\t\tjump DOCKER-USER
\t\toifname \"docker0\" ct state established,related accept
\t\tiifname \"docker0\" oifname != \"docker0\" accept
\t}
}
table ip nat {
\tchain POSTROUTING {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 172.17.0.0/16 oifname != \"docker0\" masquerade
\t}
\tchain PREROUTING {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tfib daddr type local tcp dport 9999 dnat to 172.17.0.2:80
\t}
}
";

/// Creates [`FOREIGN_TABLES`]; returns their listing, to compare later with
/// [`foreign_listing`].
pub fn make_foreign_tables() -> String {
    nft_script(FOREIGN_TABLES);
    foreign_listing()
}

/// The listing of the foreign tables now.
pub fn foreign_listing() -> String {
    format!(
        "{}{}",
        nft_list("ip filter").expect("table ip filter is gone"),
        nft_list("ip nat").expect("table ip nat is gone")
    )
}

/// A network namespace held by a `sleep` process (killed on drop): a container or another host.
pub struct Ns {
    child: Child,
    pub pid: u32,
}

impl Ns {
    /// A new namespace, loopback up.
    pub fn new() -> Ns {
        let mut child = Command::new("unshare")
            .args([
                "--net",
                "sh",
                "-c",
                "ip link set lo up && echo ready && exec sleep 600",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("unshare --net");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the namespace holder did not start");
        let pid = child.id();
        Ns { child, pid }
    }

    /// `/proc/<pid>/ns/net`.
    pub fn path(&self) -> String {
        format!("/proc/{}/ns/net", self.pid)
    }

    /// Runs a command in the namespace (through nsenter); its stdout.
    pub fn sh(&self, args: &[&str]) -> String {
        let net = format!("--net={}", self.path());
        let mut all = vec!["nsenter", net.as_str(), "--"];
        all.extend_from_slice(args);
        sh(&all)
    }

    /// Runs `f` on a thread in the namespace.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        let h = std::thread::spawn(move || {
            enter(&path);
            f()
        });
        match h.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn enter(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    setns(&f, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
}

/// A bridge in the calling thread's namespace with these addresses (`10.200.1.1/24`).
pub fn bridge(name: &str, addrs: &[&str]) {
    sh(&["ip", "link", "add", name, "type", "bridge"]);
    for a in addrs {
        add_addr(None, name, a);
    }
    sh(&["ip", "link", "set", name, "up"]);
}

fn add_addr(ns: Option<&Ns>, dev: &str, a: &str) {
    let mut args = vec!["ip", "addr", "add", a, "dev", dev];
    if a.contains(':') {
        args.push("nodad");
    }
    match ns {
        Some(ns) => ns.sh(&args),
        None => sh(&args),
    };
}

/// A "container": a namespace with `eth0` on `bridge` (host side `vh-<name>`, hairpin mode on
/// as the engine sets it), these addresses, and default routes via the gateways.
pub fn container(name: &str, bridge: &str, addrs: &[&str], gateways: &[&str]) -> Ns {
    let ns = Ns::new();
    let host_side = format!("vh-{name}");
    let pid = ns.pid.to_string();
    sh(&[
        "ip", "link", "add", &host_side, "type", "veth", "peer", "name", "eth0", "netns", &pid,
    ]);
    sh(&["ip", "link", "set", &host_side, "master", bridge, "up"]);
    sh(&[
        "ip",
        "link",
        "set",
        &host_side,
        "type",
        "bridge_slave",
        "hairpin",
        "on",
    ]);
    for a in addrs {
        add_addr(Some(&ns), "eth0", a);
    }
    ns.sh(&["ip", "link", "set", "eth0", "up"]);
    for g in gateways {
        ns.sh(&["ip", "route", "add", "default", "via", g]);
    }
    ns
}

/// Another host on a link `vx-h` (this side) – `vx-x` (its side) with these address pairs.
pub fn outside(here: &[&str], there: &[&str]) -> Ns {
    let ns = Ns::new();
    let pid = ns.pid.to_string();
    sh(&[
        "ip", "link", "add", "vx-h", "type", "veth", "peer", "name", "vx-x", "netns", &pid,
    ]);
    for a in here {
        add_addr(None, "vx-h", a);
    }
    sh(&["ip", "link", "set", "vx-h", "up"]);
    for a in there {
        add_addr(Some(&ns), "vx-x", a);
    }
    ns.sh(&["ip", "link", "set", "vx-x", "up"]);
    ns
}

/// A TCP server (answers `<name> <peer address>\n` and closes) and a UDP one (answers each
/// datagram the same way), on `[::]:port` of the namespace it was started in, until dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// Serves in `ns`, or in the calling thread's namespace.
    pub fn start(ns: Option<&Ns>, name: &str, port: u16) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let path = ns.map(Ns::path);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let mut threads = Vec::new();
        for udp in [false, true] {
            let (stop, path, name, ready) = (
                stop.clone(),
                path.clone(),
                name.to_string(),
                ready_tx.clone(),
            );
            threads.push(std::thread::spawn(move || {
                if let Some(p) = &path {
                    enter(p);
                }
                if udp {
                    serve_udp(&stop, &name, port, ready)
                } else {
                    serve_tcp(&stop, &name, port, ready)
                }
            }));
        }
        for _ in 0..2 {
            ready_rx
                .recv()
                .expect("a server thread died before listening");
        }
        Server { stop, threads }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn serve_tcp(stop: &AtomicBool, name: &str, port: u16, ready: std::sync::mpsc::Sender<()>) {
    let l = TcpListener::bind(("::", port)).expect("binding the TCP server");
    l.set_nonblocking(true).unwrap();
    ready.send(()).unwrap();
    while !stop.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((mut s, peer)) => {
                let _ = s.set_nonblocking(false);
                let _ = writeln!(s, "{name} {}", peer.ip().to_canonical());
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn serve_udp(stop: &AtomicBool, name: &str, port: u16, ready: std::sync::mpsc::Sender<()>) {
    let s = UdpSocket::bind(("::", port)).expect("binding the UDP server");
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    ready.send(()).unwrap();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((_, peer)) = s.recv_from(&mut buf) {
            let _ = s.send_to(
                format!("{name} {}\n", peer.ip().to_canonical()).as_bytes(),
                peer,
            );
        }
    }
}

/// Connects to `addr` over TCP (from `ns`, or the calling thread's namespace): the server's
/// answer (`<name> <peer>`), or None if unreachable.
pub fn tcp(ns: Option<&Ns>, addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let f = move || {
        let mut s = TcpStream::connect_timeout(&addr, WAIT).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out.trim().to_string()).filter(|s| !s.is_empty())
    };
    match ns {
        Some(ns) => ns.run(f),
        None => f(),
    }
}

/// Sends a UDP datagram to `addr` (from `ns` or here): the answer, or None.
pub fn udp(ns: Option<&Ns>, addr: &str) -> Option<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let f = move || {
        let bind: SocketAddr = match addr.ip() {
            IpAddr::V4(_) => "0.0.0.0:0".parse().unwrap(),
            IpAddr::V6(_) => "[::]:0".parse().unwrap(),
        };
        let s = UdpSocket::bind(bind).ok()?;
        s.set_read_timeout(Some(WAIT)).ok()?;
        s.send_to(b"hello", addr).ok()?;
        let mut buf = [0u8; 128];
        let (n, _) = s.recv_from(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    };
    match ns {
        Some(ns) => ns.run(f),
        None => f(),
    }
}
