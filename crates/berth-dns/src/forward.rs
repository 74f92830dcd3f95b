//! Forwarding queries to upstream resolvers, from the daemon's network namespace.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use crate::wire::{Forward, MAX_MESSAGE, Transport};
use crate::{Error, MAX_UPSTREAMS};

/// Forwards `fwd` to `upstreams` in order, each given `timeout`, and returns the answer
/// for the client: the first upstream's answer that is not `SERVFAIL` or `REFUSED`, else
/// `SERVFAIL` of our own.
pub(crate) async fn forward(
    asker: &str,
    fwd: &Forward,
    upstreams: &[SocketAddr],
    timeout: Duration,
) -> Vec<u8> {
    for &addr in upstreams.iter().take(MAX_UPSTREAMS) {
        // A fresh ID (and, over UDP, a fresh socket, so a fresh source port) per attempt:
        // answers to one attempt are not taken for another's.
        let id = rand::random::<u16>();
        let query = fwd.upstream_query(id);
        let attempt = match fwd.transport() {
            Transport::Udp => {
                tokio::time::timeout(timeout, exchange_udp(addr, fwd, &query, id)).await
            }
            Transport::Tcp => {
                tokio::time::timeout(timeout, exchange_tcp(addr, fwd, &query, id)).await
            }
        };
        match attempt.unwrap_or(Err(Error::Timeout(addr))) {
            Ok(answer) => return fwd.relay(answer),
            Err(error) => {
                tracing::debug!(asker, %error, "forwarding a DNS query failed; trying the next upstream")
            }
        }
    }
    tracing::debug!(asker, "no upstream answered a DNS query");
    fwd.reply(ResponseCode::ServFail)
}

fn io(addr: SocketAddr) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Io { addr, source }
}

/// Checks an upstream's answer; `SERVFAIL` and `REFUSED` are failures.
fn check(addr: SocketAddr, answer: Vec<u8>) -> Result<Vec<u8>, Error> {
    match Forward::failure(&answer) {
        Some(rcode) => Err(Error::Failure { addr, rcode }),
        None => Ok(answer),
    }
}

async fn exchange_udp(
    addr: SocketAddr,
    fwd: &Forward,
    query: &[u8],
    id: u16,
) -> Result<Vec<u8>, Error> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(io(addr))?;
    // Connected: the kernel drops datagrams from anyone else, and reports ICMP errors.
    socket.connect(addr).await.map_err(io(addr))?;
    socket.send(query).await.map_err(io(addr))?;
    // As large as a DNS message can be: some upstreams send more than the query allows,
    // and a cut datagram would be relayed corrupt. Not zeroed: only what arrives is
    // written (and read).
    let mut buf = Vec::with_capacity(MAX_MESSAGE);
    loop {
        buf.clear();
        socket.recv_buf(&mut buf).await.map_err(io(addr))?;
        if fwd.is_answer(&buf, id) {
            return check(addr, buf);
        }
        // Late answers to someone else, or forgeries: wait for ours.
    }
}

async fn exchange_tcp(
    addr: SocketAddr,
    fwd: &Forward,
    query: &[u8],
    id: u16,
) -> Result<Vec<u8>, Error> {
    let mut stream = TcpStream::connect(addr).await.map_err(io(addr))?;
    let _ = stream.set_nodelay(true);
    let len = u16::try_from(query.len()).map_err(|_| Error::Mismatch(addr))?;
    let mut frame = Vec::with_capacity(2 + query.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(query);
    stream.write_all(&frame).await.map_err(io(addr))?;
    let len = stream.read_u16().await.map_err(io(addr))?;
    let mut answer = vec![0; usize::from(len)];
    stream.read_exact(&mut answer).await.map_err(io(addr))?;
    if !fwd.is_answer(&answer, id) {
        return Err(Error::Mismatch(addr));
    }
    check(addr, answer)
}
