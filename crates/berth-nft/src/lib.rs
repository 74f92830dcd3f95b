//! berth's firewall: NAT, isolation between networks and published ports, all in one nftables
//! table of berth's own (`table inet berth` by default).
//!
//! # One table, berth's own
//!
//! Everything berth needs lives in its table, and berth never touches anything else: no
//! `flush ruleset`, no rule in another table. dockerd, podman or anything written with
//! iptables-nft (`table ip filter`, `table ip nat`, ...) keep their tables and keep working.
//! Every nftables table sees every packet at its hooks, so berth's table adds its NAT and its
//! drops beside theirs; note that an `accept` in one table does not override a `drop` in
//! another (a `FORWARD` policy of `DROP` set by dockerd still drops berth's traffic unless the
//! other software allows it).
//!
//! The kernel does all the forwarding: a published port is a DNAT map element, there is no
//! proxy process.
//!
//! # Why text piped to `nft -f -`, not netlink written by hand
//!
//! nf_tables' netlink protocol is a low-level one: a rule is a program of expressions for a
//! register machine (payload loads at offsets, comparisons in network byte order, lookups whose
//! key layout depends on how concatenations are padded into registers, implicit dependencies
//! such as `meta nfproto ipv4` before an IPv4 header load in an `inet` table). `nft` is the
//! compiler from the documented language (`man nft`) to that bytecode, and the language has been
//! stable for years where the bytecode details are the kernel's business. Writing the netlink
//! messages ourselves would mean re-implementing that compiler (and its JSON/netlink round-trip
//! for reading back) for every expression used; linking libnftables would bring C and FFI into
//! a pure-Rust build for no gain. Piping a script to `nft -f -` keeps the rules readable in the
//! source, in tests and in `nft list table inet berth` alike, and each script is one
//! transaction: nft sends the whole file as one netlink batch, which the kernel commits
//! entirely or not at all. The cost is one process per batch (a few milliseconds), which is
//! why operations are batches (1000 published ports are one process) and why reading back uses
//! one `nft -j list table` (JSON schema 1).
//!
//! # Layout
//!
//! Adding or removing a network or a port never needs a rule handle: per-network rules live in
//! chains of their own (`fwd-<bridge>`, `nat-<bridge>`), reached through verdict maps keyed by
//! interface name; published ports are elements of maps. Adding a network adds its chains and
//! map elements; removing it deletes the elements, then the chains. 1000 published ports are
//! 1000 elements added in one batch, not 1000 rules, and the DNAT is one map lookup whatever
//! their number. The table for one network `br0` (10.88.0.0/16) with two ports:
//!
//! ```text
//! table inet berth {
//!     set bridges { type ifname; elements = { "br0" } }
//!     map forward_nets { type ifname : verdict; elements = { "br0" : jump fwd-br0 } }
//!     map nat_nets { type ifname : verdict; elements = { "br0" : jump nat-br0 } }
//!     map ports4 { type inet_proto . inet_service : ipv4_addr . inet_service
//!                  elements = { tcp . 8080 : 10.88.0.2 . 80 } }
//!     map ports4_addr { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service
//!                  elements = { 127.0.0.1 . udp . 5353 : 10.88.0.2 . 53 } }
//!     map ports6 { ... }  map ports6_addr { ... }
//!
//!     chain prerouting { type nat hook prerouting priority dstnat; policy accept;
//!         fib daddr type local jump published }
//!     chain output { type nat hook output priority -100; policy accept;
//!         fib daddr type local jump published }
//!     chain published {
//!         dnat ip to ip daddr . meta l4proto . th dport map @ports4_addr
//!         meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports4
//!         dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6_addr
//!         meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports6 }
//!     chain postrouting { type nat hook postrouting priority srcnat; policy accept;
//!         iifname vmap @nat_nets
//!         oifname vmap @nat_nets }
//!     chain input { type filter hook input priority filter; policy accept;
//!         iifname @bridges ip daddr 127.0.0.0/8 ct state != { established, related } drop }
//!     chain forward { type filter hook forward priority filter; policy accept;
//!         ct state established,related accept
//!         iifname vmap @forward_nets
//!         oifname vmap @forward_nets
//!         ct status dnat accept
//!         iifname @bridges oifname @bridges drop }
//!
//!     chain fwd-br0 {
//!         iifname "br0" oifname "br0" accept          # icc (drop when icc is off)
//!     }                                               # internal: + iifname "br0" drop,
//!                                                     #            oifname "br0" drop
//!     chain nat-br0 {
//!         iifname "br0" oifname != "br0" ip saddr 10.88.0.0/16 masquerade
//!         oifname "br0" ct status dnat ip saddr 127.0.0.0/8 masquerade
//!         oifname "br0" ct status dnat ip saddr 10.88.0.0/16 masquerade }
//! }
//! ```
//!
//! What each part does, in Docker's terms:
//!
//! * **Outbound NAT**: packets from a non-internal, masquerading network's subnets that leave
//!   through any interface but its bridge are masqueraded (`nat-<bridge>`, first rules).
//! * **Published ports**: packets to a local address (`fib daddr type local`), arriving
//!   (prerouting) or sent by the host itself (output), are DNATed by map lookup: first the
//!   ports published on that one address, then those on every address. So
//!   `curl 127.0.0.1:8080` and `curl <host-ip>:8080` work on the host. For `127.0.0.1` the
//!   engine sets `net.ipv4.conf.<bridge>.route_localnet=1`; the loopback source is then
//!   masqueraded on the way into the bridge, and the `input` chain refuses new connections
//!   from a bridge to 127.0.0.0/8, which route_localnet would otherwise let containers open to
//!   the host's loopback services.
//! * **Hairpin**: DNATed traffic from a bridge's own subnet going back out of the same bridge
//!   is masqueraded, so a container reaching its own or a neighbour's published port through
//!   the host's address gets answers from the host's address. (When `br_netfilter` is active,
//!   a container reaching *its own* port also needs `hairpin_mode` on its bridge port, as with
//!   Docker: the engine sets it.)
//! * **Isolation**: forwarding between two different berth bridges is dropped, except DNATed
//!   traffic (`ct status dnat`, published ports) and replies (`ct state
//!   established,related`). An internal network gets nothing forwarded out of its bridge and
//!   nothing into it. With icc off, forwarding from a bridge to itself is dropped (this only
//!   sees bridged traffic through `br_netfilter`, as with Docker).
//! * Everything else is accepted: the forward policy is `accept`, berth decides nothing for
//!   traffic that is not its own.
//!
//! # What the engine does besides
//!
//! berth-nft writes firewall state only. The engine sets `net.ipv4.ip_forward=1` (and
//! `net.ipv6.conf.all.forwarding=1` for IPv6), `route_localnet=1` on bridges whose ports may be
//! published on 127.0.0.1, `hairpin_mode` on bridge ports (needed, with `br_netfilter`, for a
//! container reaching its own published port), and relies on `br_netfilter` with
//! `bridge-nf-call-iptables=1` for icc off. The test suite checks all of this with real
//! traffic, with and without `br_netfilter`.
//!
//! # Idempotence and cost
//!
//! Adding what exists and removing what is absent both succeed, so the daemon can reconcile
//! after a crash ([`Firewall::networks`], [`Firewall::ports`], [`Firewall::state`]). nft 1.0.6
//! has no `destroy` command (delete-if-present came with nft 1.0.8), so removals first *add*
//! what they delete in the same batch: adding an existing object or an identical element
//! changes nothing, and the delete then always finds it. A port present with another target
//! makes that add fail; then [`Firewall::remove_ports`] lists the table and deletes only the
//! exact mappings present (and a missing table is nothing to remove).
//!
//! Additions send only the network's chains and elements, or the ports' elements; only if nft
//! answers that the table (or a map) is missing is the batch sent again after
//! [`Firewall::ensure`]'s commands. Redeclaring the table costs several times more than adding
//! an element (about 20 ms against 4 ms for one port here), so the usual case pays for one
//! short nft process. Deleting elements costs one kernel commit of some 15–30 ms per batch,
//! whatever the number of elements.
//!
//! # Running elsewhere
//!
//! nft runs in the network namespace of the calling thread (child processes inherit it), or in
//! the namespace given to [`Firewall::in_netns`] through `nsenter --net=PATH`.

#![warn(missing_docs)]

mod error;
mod list;
mod model;
mod netlink;
pub mod script;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use error::{Error, Result};
pub use list::{TableState, parse_table};
pub use model::{NetworkRules, PortMap, Proto, UnknownProto};

use script::Batch;

/// The default name of berth's table (in family `inet`).
pub const DEFAULT_TABLE: &str = "berth";

/// berth's nftables table, and the way to run `nft` on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Firewall {
    table: String,
    nft: PathBuf,
    netns: Option<PathBuf>,
}

impl Default for Firewall {
    fn default() -> Firewall {
        Firewall::new(DEFAULT_TABLE)
    }
}

impl Firewall {
    /// The table `inet <table>`, with `nft` found in `PATH`, run in the calling thread's
    /// network namespace. The name is checked when used: an nft identifier
    /// (`[A-Za-z][A-Za-z0-9_.-]*`).
    pub fn new(table: &str) -> Firewall {
        Firewall {
            table: table.to_string(),
            nft: PathBuf::from("nft"),
            netns: None,
        }
    }

    /// Runs this `nft` program instead of the one in `PATH`.
    pub fn with_nft(mut self, nft: impl Into<PathBuf>) -> Firewall {
        self.nft = nft.into();
        self
    }

    /// Runs nft in the network namespace at `path` (e.g. `/proc/<pid>/ns/net` or a
    /// bind-mounted namespace), through `nsenter --net=<path>`.
    pub fn in_netns(mut self, path: impl Into<PathBuf>) -> Firewall {
        self.netns = Some(path.into());
        self
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the table exists.
    pub fn exists(&self) -> Result<bool> {
        let op = format!("looking for nftables table inet {}", self.table);
        let out = self.run(&op, None, &["-j", "list", "tables", "inet"])?;
        let v: serde_json::Value = serde_json::from_str(&out).map_err(|e| Error::Parse {
            op: op.clone(),
            reason: format!("not JSON: {e}"),
        })?;
        let items = v
            .get("nftables")
            .and_then(|x| x.as_array())
            .ok_or_else(|| Error::Parse {
                op: op.clone(),
                reason: "no \"nftables\" array".into(),
            })?;
        Ok(items.iter().any(|i| {
            i.get("table").is_some_and(|t| {
                t.get("family").and_then(|f| f.as_str()) == Some("inet")
                    && t.get("name").and_then(|n| n.as_str()) == Some(self.table.as_str())
            })
        }))
    }

    /// Creates the table with its base chains and maps, or brings an existing one back to this
    /// layout (the base chains' rules are rewritten). Networks and ports present are kept.
    /// [`Firewall::add_network`] and [`Firewall::add_ports`] do this too, in their batch.
    pub fn ensure(&self) -> Result<()> {
        let b = script::ensure_batch(&self.table)?;
        self.apply(&script::op_ensure(&self.table), &b)
    }

    /// Adds the rules of network `n`, or replaces them if the network is there: one atomic
    /// batch. If the table is missing, it is created first (by a second batch that holds
    /// [`Firewall::ensure`]'s commands too).
    pub fn add_network(&self, n: &NetworkRules) -> Result<()> {
        let b = script::add_network_batch(&self.table, n)?;
        self.apply_ensuring(&format!("adding network {}", n.bridge), b)
    }

    /// Removes every trace of the network on `bridge`. A network (or table) that is not there
    /// is not an error; neither is one only partly there.
    pub fn remove_network(&self, bridge: &str) -> Result<()> {
        let op = format!("removing network {bridge}");
        let b = script::remove_network_batch(&self.table, bridge)?;
        match self.apply(&op, &b) {
            Err(Error::Nft { .. }) => {}
            other => return other,
        }
        // The table, a map or one chain of two is missing: delete what is there.
        let Some(st) = self.state_opt(&op)? else {
            return Ok(());
        };
        let p = st.parts(bridge);
        if !p.any() {
            return Ok(());
        }
        let mut b = Batch::default();
        script::push_remove_network_present(
            &mut b,
            &self.table,
            bridge,
            p.in_set,
            p.in_forward,
            p.in_nat,
            p.fwd_chain,
            p.nat_chain,
        );
        self.apply(&op, &b)
    }

    /// Publishes `ports` in one atomic batch (if the table is missing, it is created first, as
    /// by [`Firewall::add_network`]). A port already published to the same target is no
    /// change; one whose host address, protocol and port are published to another target is
    /// an error ([`Error::is_conflict`]) naming that port, and then nothing of the batch is
    /// applied. An empty list does nothing.
    pub fn add_ports(&self, ports: &[PortMap]) -> Result<()> {
        let b = script::add_ports_batch(&self.table, ports)?;
        if b.is_empty() {
            return Ok(());
        }
        // In-process first (no `nft` process on a container's start path); anything it
        // cannot do — a missing table, a conflict to word — goes the `nft` way.
        if self.netns.is_none() && netlink::add_ports(&self.table, ports).is_ok() {
            return Ok(());
        }
        self.apply_ensuring(&script::op_add_ports(ports), b)
    }

    /// Unpublishes `ports` in one atomic batch. Ports that are not published (or are published
    /// to another target: only the exact mapping is removed) and a missing table are not
    /// errors.
    pub fn remove_ports(&self, ports: &[PortMap]) -> Result<()> {
        let op = script::op_remove_ports(ports);
        let b = script::remove_ports_batch(&self.table, ports)?;
        if b.is_empty() {
            return Ok(());
        }
        match self.apply(&op, &b) {
            Err(Error::Nft { .. }) => {}
            other => return other,
        }
        // A host port published to another target (or no table): remove what is exactly there.
        let Some(st) = self.state_opt(&op)? else {
            return Ok(());
        };
        let mut present: Vec<PortMap> = Vec::new();
        for p in ports.iter().map(PortMap::normalized) {
            if st.ports.contains(&p) && !present.contains(&p) {
                present.push(p);
            }
        }
        if present.is_empty() {
            return Ok(());
        }
        let b = script::remove_present_ports_batch(&self.table, &present);
        self.apply(&op, &b)
    }

    /// The networks and ports in the table (empty if there is no table), from one
    /// `nft -j list table`.
    pub fn state(&self) -> Result<TableState> {
        let op = format!("listing nftables table inet {}", self.table);
        Ok(self.state_opt(&op)?.unwrap_or_default())
    }

    /// The bridges that have rules in the table, sorted (for reconcile).
    pub fn networks(&self) -> Result<Vec<String>> {
        Ok(self.state()?.networks)
    }

    /// The ports published in the table (for reconcile), with unspecified host addresses as
    /// `None`.
    pub fn ports(&self) -> Result<Vec<PortMap>> {
        Ok(self.state()?.ports)
    }

    /// Deletes the table and everything in it. A missing table is not an error.
    pub fn delete_table(&self) -> Result<()> {
        let op = format!("deleting nftables table inet {}", self.table);
        let text = script::delete_table(&self.table)?;
        self.run(&op, Some((&text, None)), &["-f", "-"]).map(drop)
    }

    fn state_opt(&self, op: &str) -> Result<Option<TableState>> {
        let out = match self.run(op, None, &["-j", "list", "table", "inet", &self.table]) {
            Ok(out) => out,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        list::parse_table(&out, &self.table)
            .map(Some)
            .map_err(|reason| Error::Parse {
                op: op.to_string(),
                reason,
            })
    }

    /// Applies `b`; if nft refuses it because something is missing (the table, a map), applies
    /// [`Firewall::ensure`]'s commands followed by `b` as one batch. Element-only batches are
    /// several times cheaper than ones that also (re)declare the table: the usual case pays
    /// for one process and no more.
    fn apply_ensuring(&self, op: &str, b: Batch) -> Result<()> {
        match self.apply(op, &b) {
            Err(e) if e.is_not_found() => {
                let mut full = script::ensure_batch(&self.table)?;
                full.append(b);
                self.apply(op, &full)
            }
            other => other,
        }
    }

    fn apply(&self, op: &str, b: &Batch) -> Result<()> {
        self.run(op, Some((b.text(), Some(b))), &["-f", "-"])
            .map(drop)
    }

    /// Runs nft with `args`, feeding it `script`; its standard output.
    fn run(
        &self,
        op: &str,
        script: Option<(&str, Option<&Batch>)>,
        args: &[&str],
    ) -> Result<String> {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net={}", ns.display()))
                    .arg("--")
                    .arg(&self.nft);
                c
            }
            None => Command::new(&self.nft),
        };
        cmd.args(args)
            .env("LC_ALL", "C")
            .stdin(if script.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let program: &Path = if self.netns.is_some() {
            Path::new("nsenter")
        } else {
            &self.nft
        };
        let spawn_err = |source| Error::Spawn {
            op: op.to_string(),
            program: program.to_path_buf(),
            source,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        // Written from another thread: nft may write (errors) before it has read everything.
        let writer = match (script, child.stdin.take()) {
            (Some((text, _)), Some(mut stdin)) => {
                let text = text.to_string();
                Some(std::thread::spawn(move || stdin.write_all(text.as_bytes())))
            }
            _ => None,
        };
        let out = child.wait_with_output().map_err(spawn_err)?;
        // A write error (nft exited early) shows in its status and stderr.
        let _ = writer.map(std::thread::JoinHandle::join);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !out.status.success() {
            let batch = script.and_then(|(_, b)| b);
            let op = batch
                .and_then(|b| failed_line(&stderr).and_then(|n| b.subject_of_line(n)))
                .unwrap_or(op)
                .to_string();
            return Err(Error::Nft {
                op,
                status: out.status.to_string(),
                stderr,
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// The script line nft's first located error is about (`/dev/stdin:LINE:COL-COL: Error: ...`).
fn failed_line(stderr: &str) -> Option<usize> {
    stderr.lines().find_map(|l| {
        let rest = l
            .strip_prefix("/dev/stdin:")
            .or_else(|| l.strip_prefix("-:"))?;
        rest.split(':').next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_line_is_read_from_nfts_location() {
        let e = "/dev/stdin:25:33-39: Error: Could not process rule: File exists\n\
                 add element inet berth ports4 { tcp . 2 : 10.0.0.9 . 80 }\n";
        assert_eq!(failed_line(e), Some(25));
        assert_eq!(failed_line("Error: No such file or directory"), None);
        assert_eq!(failed_line("/dev/stdin:x:1"), None);
    }

    #[test]
    fn a_missing_nft_is_a_spawn_error() {
        let fw = Firewall::new("berth").with_nft("/nonexistent/nft");
        let e = fw.ensure().unwrap_err();
        assert!(matches!(e, Error::Spawn { .. }), "{e}");
        assert!(
            e.to_string()
                .starts_with("setting up nftables table inet berth: running /nonexistent/nft: "),
            "{e}"
        );
        let e = fw.exists().unwrap_err();
        assert!(matches!(e, Error::Spawn { .. }), "{e}");
    }

    #[test]
    fn invalid_requests_run_nothing() {
        let fw = Firewall::new("berth").with_nft("/nonexistent/nft");
        let e = fw.remove_network("a/b").unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        let e = Firewall::new("no good")
            .with_nft("/nonexistent/nft")
            .delete_table()
            .unwrap_err();
        assert!(matches!(e, Error::Invalid { .. }), "{e}");
        // Nothing to do, nothing run.
        fw.add_ports(&[]).unwrap();
        fw.remove_ports(&[]).unwrap();
    }
}
