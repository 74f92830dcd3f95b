//! The request layer: one `NETLINK_ROUTE` socket, a request and the kernel's ACK (or error)
//! for it, or a multi-part dump.
//!
//! Requests are built with `netlink-packet-route`'s types and serialized once. Replies are
//! split into messages here, by hand and defensively: a message that is not for the current
//! sequence number (left over from an earlier request that failed half-way) is skipped, a
//! malformed one is an error, nothing panics.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
    NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{Socket as RawSocket, SocketAddr, protocols::NETLINK_ROUTE};
use nix::errno::Errno;

use crate::Error;
use crate::attr::{attrs, string_value};

/// `sizeof(struct nlmsghdr)`.
const HEADER_LEN: usize = 16;
/// `NLMSGERR_ATTR_MSG`: the extended ACK's human-readable message.
const NLMSGERR_ATTR_MSG: u16 = 1;
/// The receive buffer. The kernel fills dump datagrams up to 32 KiB (more only for single
/// messages that are larger, and then the buffer grows).
const RECV_BUFFER: usize = 64 * 1024;
/// How many times a dump is restarted when the kernel says it was interrupted by a change
/// (`NLM_F_DUMP_INTR`).
const DUMP_ATTEMPTS: usize = 5;

/// Why a request failed, before the operation's name is attached.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The kernel (or a socket call) answered an error number.
    Errno(Errno, Option<String>),
    /// A reply could not be understood.
    Malformed(String),
}

impl Failure {
    /// The public error, naming the operation `op`.
    pub(crate) fn context(self, op: String) -> Error {
        match self {
            Failure::Errno(errno, message) => Error::from_errno(op, errno, message),
            Failure::Malformed(detail) => Error::Protocol { op, detail },
        }
    }

    fn io(err: &io::Error) -> Failure {
        Failure::Errno(err.raw_os_error().map_or(Errno::EIO, Errno::from_raw), None)
    }
}

/// One message of a reply: its type and payload (after the `nlmsghdr`).
pub(crate) struct Reply<'a> {
    pub(crate) message_type: u16,
    pub(crate) payload: &'a [u8],
}

/// How a reply ended.
enum End {
    /// The ACK of a request, or the `NLMSG_DONE` of a complete dump.
    Complete,
    /// A dump that must be restarted (interrupted by a change).
    Restart,
}

/// A `NETLINK_ROUTE` socket, connected to the kernel, and its sequence counter.
pub(crate) struct Socket {
    socket: RawSocket,
    seq: u32,
    buf: Vec<u8>,
}

impl Socket {
    /// A socket in the network namespace of the calling thread.
    pub(crate) fn new() -> Result<Socket, Failure> {
        let socket = RawSocket::new(NETLINK_ROUTE).map_err(|e| Failure::io(&e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| Failure::io(&e))?;
        // Best effort, both: the kernel's words on errors (since 4.12), and ACKs that do not
        // copy the request back (since 4.3).
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Socket {
            socket,
            seq: 0,
            buf: Vec::with_capacity(RECV_BUFFER),
        })
    }

    /// Sends `message` with `NLM_F_REQUEST | NLM_F_ACK | flags` and waits for its ACK.
    /// `each` sees the messages of ours that come before the ACK (with `NLM_F_ECHO`: the
    /// object as created).
    pub(crate) fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        each: &mut dyn FnMut(Reply<'_>),
    ) -> Result<(), Failure> {
        let mut request = serialize(message, NLM_F_REQUEST | NLM_F_ACK | flags);
        let seq = self.send(&mut request)?;
        match self.receive(seq, false, &mut |reply| {
            each(reply);
            Ok(())
        })? {
            End::Complete => Ok(()),
            End::Restart => Err(Failure::Malformed(
                "a dump flag in the reply to a plain request".into(),
            )),
        }
    }

    /// Dumps (`NLM_F_DUMP`): `parse` turns each message into an item, or `None` to leave it
    /// out. An interrupted dump is restarted, so the list is consistent.
    pub(crate) fn dump<T>(
        &mut self,
        message: RouteNetlinkMessage,
        parse: &mut dyn FnMut(Reply<'_>) -> Result<Option<T>, String>,
    ) -> Result<Vec<T>, Failure> {
        let mut request = serialize(message, NLM_F_REQUEST | NLM_F_DUMP);
        for _ in 0..DUMP_ATTEMPTS {
            let mut items = Vec::new();
            let seq = self.send(&mut request)?;
            let end = self.receive(seq, true, &mut |reply| {
                if let Some(item) = parse(reply).map_err(Failure::Malformed)? {
                    items.push(item);
                }
                Ok(())
            })?;
            if let End::Complete = end {
                return Ok(items);
            }
        }
        Err(Failure::Errno(
            Errno::EAGAIN,
            Some(format!(
                "the dump was interrupted by changes {DUMP_ATTEMPTS} times in a row"
            )),
        ))
    }

    /// Shrinks the receive buffer, to test how larger datagrams are received.
    #[cfg(test)]
    pub(crate) fn set_buffer_capacity(&mut self, capacity: usize) {
        self.buf = Vec::with_capacity(capacity);
    }

    /// Stamps the next sequence number on `request` and sends it.
    fn send(&mut self, request: &mut [u8]) -> Result<u32, Failure> {
        self.seq = self.seq.wrapping_add(1);
        request[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        loop {
            match self.socket.send(request, 0) {
                Ok(n) if n == request.len() => return Ok(self.seq),
                Ok(n) => {
                    return Err(Failure::Malformed(format!(
                        "sent {n} of {} bytes",
                        request.len()
                    )));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::io(&e)),
            }
        }
    }

    /// Receives one datagram into the buffer and returns its length. With `peek`, its size
    /// is looked at first and the buffer grown to fit (one more system call, for dumps,
    /// whose datagrams the kernel sizes); without, a datagram that does not fit is an error
    /// (ACKs and single objects are far smaller than the buffer).
    fn recv_datagram(&mut self, peek: bool) -> Result<usize, Failure> {
        loop {
            if peek {
                self.buf.clear();
                match self
                    .socket
                    .recv(&mut self.buf, libc::MSG_PEEK | libc::MSG_TRUNC)
                {
                    Ok(len) if len > self.buf.capacity() => {
                        self.buf = Vec::with_capacity(len.next_multiple_of(4096));
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::io(&e)),
                }
            }
            self.buf.clear();
            match self.socket.recv(&mut self.buf, libc::MSG_TRUNC) {
                Ok(len) if len > self.buf.len() => {
                    return Err(Failure::Malformed(format!(
                        "a {len}-byte datagram did not fit the {}-byte receive buffer",
                        self.buf.len()
                    )));
                }
                Ok(len) => return Ok(len),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failure::io(&e)),
            }
        }
    }

    /// Reads datagrams until the end of the reply to `seq`.
    fn receive(
        &mut self,
        seq: u32,
        dump: bool,
        each: &mut dyn FnMut(Reply<'_>) -> Result<(), Failure>,
    ) -> Result<End, Failure> {
        let mut interrupted = false;
        // A dump that went wrong half-way is still read to its end: the kernel runs one dump
        // at a time per socket, and refuses the next one (EBUSY) while this one is unread.
        let mut failed = None;
        loop {
            let len = self.recv_datagram(dump)?;
            let mut rest = &self.buf[..len];
            while !rest.is_empty() {
                let header = parse_header(rest)?;
                let message = &rest[..header.len];
                rest = rest
                    .get(header.len.next_multiple_of(4)..)
                    .unwrap_or_default();
                if header.seq != seq {
                    continue;
                }
                let payload = &message[HEADER_LEN..];
                match header.message_type {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        let code = error_code(payload)?;
                        if code == 0 && !dump {
                            return Ok(End::Complete);
                        }
                        if code == 0 {
                            return Err(Failure::Malformed("an ACK ended a dump".into()));
                        }
                        let errno = Errno::from_raw(code.saturating_neg());
                        return Err(Failure::Errno(errno, ext_ack_message(&header, payload)));
                    }
                    NLMSG_DONE if dump => {
                        // NLMSG_DONE carries the dump's status: 0, or a negative errno.
                        let code = error_code(payload).unwrap_or(0);
                        if code < 0 {
                            let errno = Errno::from_raw(code.saturating_neg());
                            return Err(Failure::Errno(errno, None));
                        }
                        interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                        if let Some(failure) = failed {
                            return Err(failure);
                        }
                        return Ok(if interrupted {
                            End::Restart
                        } else {
                            End::Complete
                        });
                    }
                    NLMSG_OVERRUN => {
                        return Err(Failure::Malformed("NLMSG_OVERRUN".into()));
                    }
                    message_type => {
                        interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                        if failed.is_none() {
                            let result = each(Reply {
                                message_type,
                                payload,
                            });
                            if let Err(failure) = result {
                                if !dump {
                                    return Err(failure);
                                }
                                failed = Some(failure);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Serializes a request (its sequence number is stamped at sending).
fn serialize(message: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    let mut message = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.serialize(&mut buf);
    buf
}

/// The fields of a `struct nlmsghdr` used here.
struct Header {
    len: usize,
    message_type: u16,
    flags: u16,
    seq: u32,
}

fn parse_header(buf: &[u8]) -> Result<Header, Failure> {
    let field = |range: std::ops::Range<usize>| {
        buf.get(range)
            .ok_or_else(|| Failure::Malformed(format!("truncated message ({} bytes)", buf.len())))
    };
    let len = u32::from_ne_bytes(field(0..4)?.try_into().unwrap_or_default());
    let message_type = u16::from_ne_bytes(field(4..6)?.try_into().unwrap_or_default());
    let flags = u16::from_ne_bytes(field(6..8)?.try_into().unwrap_or_default());
    let seq = u32::from_ne_bytes(field(8..12)?.try_into().unwrap_or_default());
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len < HEADER_LEN || len > buf.len() {
        return Err(Failure::Malformed(format!(
            "message length {len} with {} bytes left",
            buf.len()
        )));
    }
    Ok(Header {
        len,
        message_type,
        flags,
        seq,
    })
}

/// The `int error` that starts `NLMSG_ERROR` and `NLMSG_DONE` payloads.
fn error_code(payload: &[u8]) -> Result<i32, Failure> {
    payload
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or_else(|| Failure::Malformed("truncated NLMSG_ERROR".into()))
}

/// The kernel's message in an extended ACK: after the error code and the request's header
/// (and the request's payload, unless the ACK is capped) come attributes.
fn ext_ack_message(header: &Header, payload: &[u8]) -> Option<String> {
    if header.flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let request = payload.get(4..)?;
    let request_len = if header.flags & NLM_F_CAPPED != 0 {
        HEADER_LEN
    } else {
        let len = request.get(0..4)?.try_into().ok().map(u32::from_ne_bytes)?;
        usize::try_from(len).ok()?.next_multiple_of(4)
    };
    attrs(request.get(request_len..)?)
        .map_while(Result::ok)
        .find(|&(kind, _)| kind == NLMSGERR_ATTR_MSG)
        .map(|(_, value)| string_value(value))
        .filter(|message| !message.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(message_type: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        let len = u32::try_from(HEADER_LEN + payload.len()).unwrap();
        v.extend_from_slice(&len.to_ne_bytes());
        v.extend_from_slice(&message_type.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn headers_are_checked() {
        assert!(parse_header(&[1, 2, 3]).is_err());
        let mut m = message(NLMSG_DONE, 0, 1, &[0; 4]);
        assert_eq!(parse_header(&m).unwrap().len, 20);
        m[0] = 100;
        assert!(parse_header(&m).is_err());
        m[0] = 4;
        assert!(parse_header(&m).is_err());
    }

    #[test]
    fn extended_ack_message() {
        // A capped error: code, the request's header, then NLMSGERR_ATTR_MSG.
        let mut payload = (-22i32).to_ne_bytes().to_vec();
        payload.extend(message(16, 5, 7, &[]));
        let text = b"Unknown device type\0";
        payload.extend_from_slice(&u16::try_from(text.len() + 4).unwrap().to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        let m = message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, &payload);
        let header = parse_header(&m).unwrap();
        assert_eq!(
            ext_ack_message(&header, &m[HEADER_LEN..]).as_deref(),
            Some("Unknown device type")
        );
        assert_eq!(error_code(&m[HEADER_LEN..]).unwrap(), -22);
        // Garbage after the code: no message, no panic.
        let m = message(
            NLMSG_ERROR,
            NLM_F_ACK_TLVS,
            7,
            &[0xea, 0xff, 0xff, 0xff, 200],
        );
        let header = parse_header(&m).unwrap();
        assert_eq!(ext_ack_message(&header, &m[HEADER_LEN..]), None);
    }
}
