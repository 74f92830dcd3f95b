//! The embedded DNS server of user-defined networks, as Docker's (moby's
//! `daemon/libnetwork/resolver.go`).
//!
//! Every container on a user-defined network gets `nameserver 127.0.0.11` in its
//! `resolv.conf`. The engine binds a UDP socket and a TCP listener to `127.0.0.11:53`
//! *inside the container's network namespace* and hands them to [`Server::serve`], which
//! serves them from the daemon's tokio runtime. The names of the containers (their names,
//! network aliases and short IDs) resolve to their addresses on the networks of the
//! container that asks, as the engine's [`Names`] says; everything else is forwarded to
//! upstream resolvers from the daemon's own network namespace (every socket this crate
//! creates is in the namespace of the thread that creates it, the daemon's).
//!
//! # Behaviour
//!
//! What is answered here, per question type (as moby's `serveDNS`):
//!
//! | question | answered here when | answer |
//! | --- | --- | --- |
//! | `A`, `AAAA` | [`Names::lookup`] knows the name | the addresses of that family, TTL 600, in a random order; none of that family: `NOERROR` with no answers (not forwarded) |
//! | `PTR` | the name is a whole `in-addr.arpa`/`ip6.arpa` address and [`Names::reverse`] knows it | the name, made fully qualified, TTL 600 |
//! | `MX` | [`Names::lookup`] knows the name | `NOERROR` with no answers, so that mail clients fall back to the address ("implicit MX", RFC 5321 §5.1) |
//! | `A`, `AAAA`, single label | [`Names::ndots_set`] and the name is not known | `NOERROR` with no answers, so that the client goes on with its search domains |
//! | anything else | never | forwarded, even for the names of containers (moby forwards them too; [`Config::nodata_for_local_names`] answers `NOERROR` instead) |
//!
//! Only class `IN` is answered here; questions of other classes (`CH version.bind`…) are
//! forwarded. Names are case-insensitive: they are lower-cased for the look-up and
//! answered with the question as it was asked. Answers are not authoritative (AA clear) and
//! say that recursion is available (RA set), as moby's.
//!
//! Forwarding (moby's `forwardExtDNS`): the query is relayed as it is, with a fresh random
//! ID towards the upstream and the client's ID restored in the answer, over the transport
//! the client used (UDP over UDP, TCP over TCP), to the first three of
//! [`Names::upstreams`] in order (less the address being served, as moby's
//! `filterExtServers`), each given [`Config::upstream_timeout`]. Each attempt uses a new
//! socket (a new random source port, as moby dials each time) and a new random ID; an
//! answer must match the ID and the question. An upstream
//! that does not answer, cannot be reached, or answers `SERVFAIL` or `REFUSED` is skipped
//! for the next one; when none is left the answer is `SERVFAIL` (also when there are no
//! upstreams at all, as moby's). Truncated answers are relayed as they are, so that the
//! client retries over TCP; an answer over UDP larger than the client can take (512
//! bytes, or its EDNS size) is replaced by an empty one with TC set. Forwards in flight
//! are bounded per container ([`Config::max_forwards`]); a query that cannot get a slot
//! within the upstream timeout is answered `REFUSED`, as moby's (moby's limit is 1024).
//!
//! Hostile input (every packet from a container is): packets shorter than a header and
//! responses are dropped; opcodes other than `QUERY` get `NOTIMP`; a header with other
//! than one question, more than one answer or authority record, or more than two
//! additional records, or a message that does not parse, gets `FORMERR` (moby's DNS
//! library, miekg/dns, does the same); an EDNS version other than 0 gets `BADVERS`. A
//! query with an OPT record gets an OPT record in its answer. Answers over UDP are
//! truncated (TC set, as many records as fit) to 512 bytes, or to the client's EDNS size.
//!
//! The wire format is read and written with `hickory-proto`.
#![warn(missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

mod forward;
mod serve;
mod wire;

pub use serve::{Server, Serving};
pub use wire::{Forward, Outcome, Transport};

/// The TTL of the records answered from [`Names`], in seconds (moby's `respTTL`).
pub const TTL: u32 = 600;

/// The most upstream servers a query is forwarded to, in order (moby's `maxExtDNS`, and
/// `resolv.conf`'s `MAXNS`).
pub const MAX_UPSTREAMS: usize = 3;

/// What the engine knows of its containers and networks.
///
/// It is called for every query, from the daemon's runtime, so it must be cheap and must
/// not block (the engine keeps maps behind a `RwLock`).
pub trait Names: Send + Sync + 'static {
    /// The addresses of `name` for the container `asker`, or `None` if `name` is not a
    /// name on the asker's networks (then the query is forwarded).
    ///
    /// `name` is lower-case, without a trailing dot, and made of printable ASCII labels
    /// joined by dots (names with other bytes are never looked up). Both families may be
    /// returned: the server picks those asked for. `Some(vec![])`, or addresses of the
    /// other family only, is a known name without addresses of the family asked for:
    /// `NOERROR` with no answers, not forwarded.
    fn lookup(&self, asker: &str, name: &str) -> Option<Vec<IpAddr>>;

    /// The name of `addr` on the asker's networks (for `PTR` queries), or `None` (then the
    /// query is forwarded). The name may or may not end with a dot.
    fn reverse(&self, asker: &str, addr: IpAddr) -> Option<String>;

    /// Where to forward the asker's other queries, in order of preference (only the first
    /// [`MAX_UPSTREAMS`] are used): the container's `--dns` servers, else the host's from
    /// its `resolv.conf`. They are reached from the daemon's network namespace, so the
    /// host's loopback resolvers (`127.0.0.53`) work.
    ///
    /// Empty: queries that are not answered from [`Names`] get `SERVFAIL`, as moby's
    /// (moby answers `REFUSED` only when its limit of concurrent forwards is reached).
    fn upstreams(&self, asker: &str) -> Vec<SocketAddr>;

    /// Whether the asker's `resolv.conf` has an `ndots` option the user set (moby's
    /// `NdotsSet`). If so, `A` and `AAAA` questions for single-label names that are not
    /// known get `NOERROR` with no answers instead of being forwarded, so that the client
    /// goes on with its search domains. The default is `false`.
    fn ndots_set(&self, asker: &str) -> bool {
        let _ = asker;
        false
    }
}

/// Tunables of a [`Server`]. The defaults are for production; tests make them shorter.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long to wait for one upstream (connecting, sending and receiving) before trying
    /// the next one. Also how long a query waits for a forwarding slot before it is
    /// answered `REFUSED`. Default 2 s, so that two upstreams fit in glibc's 5 s timeout
    /// (moby waits 4 s).
    pub upstream_timeout: Duration,
    /// The most forwards in flight for one container (one [`Serving`]). Default 100.
    pub max_forwards: usize,
    /// The most UDP queries of one container waiting for a forwarding slot; more are
    /// answered `REFUSED` at once, so that a container flooding queries cannot make the
    /// daemon hold an unbounded number of them. Default 1000.
    pub max_waiting: usize,
    /// The most TCP connections of one container served at once; more are closed at once.
    /// Default 64.
    pub max_tcp_connections: usize,
    /// The most queries of one TCP connection handled at once (pipelining); the connection
    /// is not read further until one is answered. Default 16.
    pub max_tcp_pipeline: usize,
    /// How long a TCP connection may be idle (no query arriving, or an answer not being
    /// taken) before it is closed. Default 10 s.
    pub tcp_idle_timeout: Duration,
    /// Answer questions of types this server does not answer itself (`TXT`, `SRV`…) for
    /// names [`Names::lookup`] knows with `NOERROR` and no answers instead of forwarding
    /// them. Default `false`: forward them, as moby does.
    pub nodata_for_local_names: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            upstream_timeout: Duration::from_secs(2),
            max_forwards: 100,
            max_waiting: 1000,
            max_tcp_connections: 64,
            max_tcp_pipeline: 16,
            tcp_idle_timeout: Duration::from_secs(10),
            nodata_for_local_names: false,
        }
    }
}

/// Why forwarding a query to one upstream failed (the next one is then tried).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The upstream did not answer in time.
    #[error("upstream {0} did not answer in time")]
    Timeout(SocketAddr),
    /// Connecting to, writing to or reading from the upstream failed.
    #[error("upstream {addr}: {source}")]
    Io {
        /// The upstream.
        addr: SocketAddr,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The upstream's answer was not an answer to the query.
    #[error("upstream {0} sent an answer that does not match the query")]
    Mismatch(SocketAddr),
    /// The upstream answered `SERVFAIL` or `REFUSED`.
    #[error("upstream {addr} answered with rcode {rcode}")]
    Failure {
        /// The upstream.
        addr: SocketAddr,
        /// The response code it answered with.
        rcode: u8,
    },
}
