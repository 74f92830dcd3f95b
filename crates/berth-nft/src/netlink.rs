//! Published ports added in-process: the `NFT_MSG_NEWSETELEM` messages `nft add element`
//! would send, in one nfnetlink batch, without starting `nft`.
//!
//! Why by hand: publishing is on a container's start path, and an `nft` process costs ~4 ms
//! there (more than the rest of the container's network). Only this one message kind is
//! written here — elements of the port maps, whose layout is fixed by this crate's own table
//! (`script`) — and no crate writes nf_tables messages (rustables is GPL-3; the `nftables`
//! crate drives the `nft` binary). Everything else (the table, chains, networks, removals)
//! stays `nft` text. On any error the caller falls back to `nft`, which also makes a missing
//! table and words the errors.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::model::{PortMap, Proto};
use crate::script::{MAP_PORTS4, MAP_PORTS4_ADDR, MAP_PORTS6, MAP_PORTS6_ADDR};

const NETLINK_NETFILTER: i32 = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFPROTO_INET: u8 = 1;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLA_F_NESTED: u16 = 0x8000;
// enum nft_set_elem_list_attributes
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
// enum nft_list_attributes, nft_set_elem_attributes, nft_data_attributes
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
/// Elements per message: an attribute's length is 16 bits.
const CHUNK: usize = 400;

/// A netlink message under construction (attributes appended, nests closed by offset).
struct Msg(Vec<u8>);

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, res_id: u16) -> Msg {
        let mut b = Vec::with_capacity(256);
        b.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `finish`
        b.extend_from_slice(&kind.to_ne_bytes());
        b.extend_from_slice(&flags.to_ne_bytes());
        b.extend_from_slice(&seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        // struct nfgenmsg
        b.push(NFPROTO_INET);
        b.push(0); // NFNETLINK_V0
        b.extend_from_slice(&res_id.to_be_bytes());
        Msg(b)
    }

    fn pad(&mut self) {
        while self.0.len() % 4 != 0 {
            self.0.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.pad();
    }

    fn begin(&mut self, kind: u16) -> usize {
        let at = self.0.len();
        self.0.extend_from_slice(&0u16.to_ne_bytes());
        self.0
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) -> io::Result<()> {
        let len = u16::try_from(self.0.len() - at)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "attribute too long"))?;
        self.0[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        Ok(())
    }

    fn finish(mut self) -> Vec<u8> {
        self.pad();
        let len = self.0.len() as u32;
        self.0[0..4].copy_from_slice(&len.to_ne_bytes());
        self.0
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// nftables' register layout: each field of a concatenation padded to 4 bytes.
fn reg(out: &mut Vec<u8>, field: &[u8]) {
    out.extend_from_slice(field);
    while out.len() % 4 != 0 {
        out.push(0);
    }
}

fn ip_bytes(ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn proto_number(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
        Proto::Sctp => 132,
    }
}

/// (map, key, data) of a published port as the kernel stores them.
fn element(p: &PortMap) -> (&'static str, Vec<u8>, Vec<u8>) {
    let p = p.normalized();
    let v6 = p.container_ip.is_ipv6();
    let map = match (v6, p.host_ip.is_some()) {
        (false, false) => MAP_PORTS4,
        (false, true) => MAP_PORTS4_ADDR,
        (true, false) => MAP_PORTS6,
        (true, true) => MAP_PORTS6_ADDR,
    };
    let mut key = Vec::new();
    if let Some(ip) = p.host_ip {
        reg(&mut key, &ip_bytes(ip));
    }
    reg(&mut key, &[proto_number(p.proto)]);
    reg(&mut key, &p.host_port.to_be_bytes());
    let mut data = Vec::new();
    reg(&mut data, &ip_bytes(p.container_ip));
    reg(&mut data, &p.container_port.to_be_bytes());
    (map, key, data)
}

/// An element's key and data, as registers.
type KeyData = (Vec<u8>, Vec<u8>);

/// The batch adding `ports` to the maps of `table`, and how many messages want an answer.
fn batch(table: &str, ports: &[PortMap], seq0: u32) -> io::Result<(Vec<u8>, Vec<u32>)> {
    let mut by_map: Vec<(&'static str, Vec<KeyData>)> = Vec::new();
    for p in ports {
        let (map, key, data) = element(p);
        match by_map.iter_mut().find(|(m, _)| *m == map) {
            Some((_, v)) => v.push((key, data)),
            None => by_map.push((map, vec![(key, data)])),
        }
    }
    let mut out = Msg::new(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq0,
        NFNL_SUBSYS_NFTABLES,
    )
    .finish();
    let mut seq = seq0;
    let mut acked = Vec::new();
    for (map, elems) in &by_map {
        for chunk in elems.chunks(CHUNK) {
            seq += 1;
            let mut m = Msg::new(
                (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM,
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK,
                seq,
                0,
            );
            m.attr(NFTA_SET_ELEM_LIST_TABLE, &cstr(table));
            m.attr(NFTA_SET_ELEM_LIST_SET, &cstr(map));
            let list = m.begin(NFTA_SET_ELEM_LIST_ELEMENTS);
            for (key, data) in chunk {
                let el = m.begin(NFTA_LIST_ELEM);
                let k = m.begin(NFTA_SET_ELEM_KEY);
                m.attr(NFTA_DATA_VALUE, key);
                m.end(k)?;
                let d = m.begin(NFTA_SET_ELEM_DATA);
                m.attr(NFTA_DATA_VALUE, data);
                m.end(d)?;
                m.end(el)?;
            }
            m.end(list)?;
            out.extend_from_slice(&m.finish());
            acked.push(seq);
        }
    }
    seq += 1;
    out.extend_from_slice(
        &Msg::new(NFNL_MSG_BATCH_END, NLM_F_REQUEST, seq, NFNL_SUBSYS_NFTABLES).finish(),
    );
    Ok((out, acked))
}

/// Add `ports` to the port maps of `table` in the calling thread's network namespace: one
/// atomic batch; an element already there with the same target is no error.
pub(crate) fn add_ports(table: &str, ports: &[PortMap]) -> io::Result<()> {
    if ports.is_empty() {
        return Ok(());
    }
    // SAFETY: socket(2) with constant arguments; the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a descriptor just returned by socket(2), owned by nobody else.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let seq0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(1);
    let (bytes, mut waiting) = batch(table, ports, seq0)?;
    // SAFETY: sockaddr_nl is plain data; zeroed is a valid value (the kernel: pid 0).
    let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    kernel.nl_family = libc::AF_NETLINK as u16;
    // SAFETY: `bytes` is a live buffer of that length; `kernel` a valid sockaddr_nl.
    let sent = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (&kernel as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 16384];
    while !waiting.is_empty() {
        // SAFETY: `buf` is a live, writable buffer of that length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
            if len < 16 || len > rest.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad netlink reply",
                ));
            }
            if kind == NLMSG_ERROR && len >= 20 {
                let code = i32::from_ne_bytes([rest[16], rest[17], rest[18], rest[19]]);
                waiting.retain(|s| *s != seq);
                if code != 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
            }
            let step = (len + 3) & !3;
            rest = &rest[step.min(rest.len())..];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pm(host_ip: Option<&str>, port: u16, cip: &str, cport: u16) -> PortMap {
        PortMap {
            proto: Proto::Tcp,
            host_ip: host_ip.map(|s| s.parse().unwrap()),
            host_port: port,
            container_ip: cip.parse().unwrap(),
            container_port: cport,
        }
    }

    #[test]
    fn elements_in_the_kernels_register_layout() {
        let (map, key, data) = element(&pm(None, 8080, "10.0.0.2", 80));
        assert_eq!(map, MAP_PORTS4);
        assert_eq!(key, vec![6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(data, vec![10, 0, 0, 2, 0, 80, 0, 0]);
        let (map, key, _) = element(&pm(Some("127.0.0.1"), 53, "10.0.0.2", 53));
        assert_eq!(map, MAP_PORTS4_ADDR);
        assert_eq!(key, vec![127, 0, 0, 1, 6, 0, 0, 0, 0, 53, 0, 0]);
        let (map, key, data) = element(&pm(None, 1, "fd00::2", 2));
        assert_eq!(map, MAP_PORTS6);
        assert_eq!(key.len(), 8);
        assert_eq!(data.len(), 20);
    }

    #[test]
    fn batches_are_framed_and_chunked() {
        let ports: Vec<PortMap> = (1..=1000).map(|p| pm(None, p, "10.0.0.2", 80)).collect();
        let (bytes, acked) = batch("berth", &ports, 7).unwrap();
        assert_eq!(acked, vec![8, 9, 10]); // 1000 elements in three messages
        // Walk the messages: begin, three NEWSETELEM, end; every length consistent.
        let mut rest = &bytes[..];
        let mut kinds = Vec::new();
        while !rest.is_empty() {
            let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
            kinds.push(u16::from_ne_bytes(rest[4..6].try_into().unwrap()));
            assert_eq!(len % 4, 0);
            rest = &rest[len..];
        }
        let new = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
        assert_eq!(
            kinds,
            vec![NFNL_MSG_BATCH_BEGIN, new, new, new, NFNL_MSG_BATCH_END]
        );
    }

    /// The kernel takes the messages: what is added reads back through `nft -j` as the
    /// same mappings (root; a network namespace of this thread's own).
    #[test]
    fn the_kernel_takes_them() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let fw = crate::Firewall::new("berthnl");
            fw.ensure().unwrap();
            let ports = vec![
                pm(None, 8080, "10.0.0.2", 80),
                pm(Some("127.0.0.1"), 5353, "10.0.0.3", 53),
                pm(None, 8443, "fd00::2", 443),
                pm(Some("fd99::1"), 9000, "fd00::3", 9),
            ];
            add_ports("berthnl", &ports).expect("netlink add");
            // Again, the same: no error; to another target: refused.
            add_ports("berthnl", &ports[..1]).expect("the same again");
            assert!(add_ports("berthnl", &[pm(None, 8080, "10.0.0.9", 80)]).is_err());
            let mut got = fw.ports().unwrap();
            got.sort_by_key(|p| p.host_port);
            let mut want = ports.clone();
            want.sort_by_key(|p| p.host_port);
            assert_eq!(got, want);
            // No table: an error (the caller then goes the nft way).
            assert!(add_ports("nosuchtable", &ports[..1]).is_err());
        })
        .join()
        .unwrap();
    }
}
