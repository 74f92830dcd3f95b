//! Reading queries and writing answers: everything that does not wait.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::op::{Edns, Header, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use rand::seq::SliceRandom;

use crate::{Config, Names, TTL};

/// The size of a DNS header.
const HEADER_LEN: usize = 12;
/// The largest DNS message (the TCP length prefix is 16 bits).
pub(crate) const MAX_MESSAGE: usize = u16::MAX as usize;
/// The largest answer over UDP to a client without EDNS (RFC 1035 §4.2.1).
const MIN_UDP: usize = 512;
/// The UDP payload size this server advertises in its OPT records (the 2020 DNS flag
/// day's value; what it can receive is larger).
const EDNS_PAYLOAD: u16 = 1232;

const RCODE_SERVFAIL: u8 = 2;
const RCODE_REFUSED: u8 = 5;

/// How a query arrived, which decides how large its answer may be and how it is forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A datagram: answers are limited to 512 bytes, or to the client's EDNS size.
    Udp,
    /// A TCP stream (RFC 7766, each message after a 2-byte length): up to 65535 bytes.
    Tcp,
}

/// What to do with a packet from a container, as [`Server::respond`](crate::Server::respond)
/// decides.
#[derive(Debug)]
pub enum Outcome {
    /// Send this answer back.
    Reply(Vec<u8>),
    /// The query is not answered here: forward it upstream
    /// ([`Server::forward`](crate::Server::forward)).
    Forward(Forward),
    /// Send nothing: not a query (a response, a packet shorter than a header).
    Drop,
}

/// A well-formed query that is to be forwarded upstream.
#[derive(Debug)]
pub struct Forward {
    /// The query as the client sent it.
    packet: Vec<u8>,
    /// The query, parsed.
    request: Message,
    /// Where the (first) question ends in `packet`; it starts after the header.
    question_end: usize,
    /// How the query arrived.
    transport: Transport,
}

impl Forward {
    /// The query as the client sent it.
    pub fn query(&self) -> &[u8] {
        &self.packet
    }

    /// How the query arrived, hence how it is forwarded.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The query to send upstream: the client's, under another ID.
    pub(crate) fn upstream_query(&self, id: u16) -> Vec<u8> {
        let mut query = self.packet.clone();
        query[..2].copy_from_slice(&id.to_be_bytes());
        query
    }

    /// Whether `answer` answers [`upstream_query`](Self::upstream_query)`(id)`: same ID, a
    /// response, and the same question (the name in any case), or no question at all
    /// with an error code (as servers answer queries they cannot parse).
    pub(crate) fn is_answer(&self, answer: &[u8], id: u16) -> bool {
        if answer.len() < HEADER_LEN
            || answer[..2] != id.to_be_bytes()
            || answer[2] & 0x80 == 0
            || answer[2] & 0x78 != self.packet[2] & 0x78
        {
            return false;
        }
        let qdcount = u16::from_be_bytes([answer[4], answer[5]]);
        if qdcount == 0 {
            return answer[3] & 0x0f != 0;
        }
        let question = &self.packet[HEADER_LEN..self.question_end];
        let Some(theirs) = answer.get(HEADER_LEN..self.question_end) else {
            return false;
        };
        let (name, rest) = question.split_at(question.len() - 4);
        let (their_name, their_rest) = theirs.split_at(theirs.len() - 4);
        name.eq_ignore_ascii_case(their_name) && rest == their_rest
    }

    /// The response code of an upstream's answer if it means "try the next one"
    /// (`SERVFAIL`, `REFUSED`), as moby's `forwardExtDNS`.
    pub(crate) fn failure(answer: &[u8]) -> Option<u8> {
        let rcode = answer.get(3)? & 0x0f;
        matches!(rcode, RCODE_SERVFAIL | RCODE_REFUSED).then_some(rcode)
    }

    /// The answer to send to the client for an upstream's `answer`: the client's ID
    /// restored; over UDP, replaced by an empty truncated answer if larger than the client
    /// can take (some upstreams ignore the size the query allows).
    pub(crate) fn relay(&self, mut answer: Vec<u8>) -> Vec<u8> {
        if self.transport == Transport::Udp
            && answer.len() > client_limit(&self.request, self.transport)
        {
            let rcode = ResponseCode::from(0, answer[3] & 0x0f);
            return self.reply_with(rcode, true);
        }
        answer[..2].copy_from_slice(&self.packet[..2]);
        answer
    }

    /// An answer of our own without records (`SERVFAIL` when no upstream answered,
    /// `REFUSED` when there was no forwarding slot).
    pub(crate) fn reply(&self, rcode: ResponseCode) -> Vec<u8> {
        self.reply_with(rcode, false)
    }

    fn reply_with(&self, rcode: ResponseCode, truncated: bool) -> Vec<u8> {
        let limit = client_limit(&self.request, self.transport);
        build_reply(&self.request, Vec::new(), rcode, truncated, limit)
    }
}

/// Decides what to do with a packet from the container `asker`; see the crate's
/// documentation for the rules.
pub(crate) fn respond(
    names: &dyn Names,
    config: &Config,
    asker: &str,
    packet: &[u8],
    transport: Transport,
) -> Outcome {
    if packet.len() < HEADER_LEN || packet.len() > MAX_MESSAGE {
        return Outcome::Drop;
    }
    let Ok(Header { metadata, counts }) = Header::read(&mut BinDecoder::new(packet)) else {
        return Outcome::Drop;
    };
    if metadata.message_type == MessageType::Response {
        // Never answer answers: two resolvers would bounce them forever.
        return Outcome::Drop;
    }
    if metadata.op_code != OpCode::Query {
        return Outcome::Reply(header_only(&metadata, ResponseCode::NotImp));
    }
    // As miekg/dns's DefaultMsgAcceptFunc, which also keeps the parser from being asked
    // for thousands of records.
    if counts.queries != 1 || counts.answers > 1 || counts.authorities > 1 || counts.additionals > 2
    {
        return Outcome::Reply(header_only(&metadata, ResponseCode::FormErr));
    }
    let request = match Message::from_vec(packet) {
        Ok(request) => request,
        Err(error) => {
            tracing::debug!(asker, %error, "malformed DNS query");
            return Outcome::Reply(header_only(&metadata, ResponseCode::FormErr));
        }
    };
    let (Some(query), Some(question_end)) = (request.queries.first(), question_end(packet)) else {
        return Outcome::Reply(header_only(&metadata, ResponseCode::FormErr));
    };
    let limit = client_limit(&request, transport);
    if request
        .edns
        .as_ref()
        .is_some_and(|edns| edns.version() != 0)
    {
        return Outcome::Reply(build_reply(
            &request,
            Vec::new(),
            ResponseCode::BADVERS,
            false,
            limit,
        ));
    }

    if query.query_class() == DNSClass::IN {
        let qname = query.name();
        let answer = |answers| {
            Outcome::Reply(build_reply(
                &request,
                answers,
                ResponseCode::NoError,
                false,
                limit,
            ))
        };
        let lookup = || lookup_name(qname).and_then(|name| names.lookup(asker, &name));
        match query.query_type() {
            qtype @ (RecordType::A | RecordType::AAAA) => {
                if let Some(mut addrs) = lookup() {
                    addrs.retain(|addr| addr.is_ipv4() == (qtype == RecordType::A));
                    addrs.shuffle(&mut rand::rng());
                    let records = addrs
                        .into_iter()
                        .map(|addr| {
                            let data = match addr {
                                IpAddr::V4(v4) => RData::A(A(v4)),
                                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
                            };
                            Record::from_rdata(qname.clone(), TTL, data)
                        })
                        .collect();
                    return answer(records);
                }
                if qname.iter().count() <= 1 && names.ndots_set(asker) {
                    return answer(Vec::new());
                }
            }
            RecordType::PTR => {
                if let Some(host) = arpa_addr(qname).and_then(|addr| names.reverse(asker, addr)) {
                    return match Name::from_ascii(&host) {
                        Ok(mut target) => {
                            target.set_fqdn(true);
                            answer(vec![Record::from_rdata(
                                qname.clone(),
                                TTL,
                                RData::PTR(PTR(target)),
                            )])
                        }
                        Err(error) => {
                            tracing::warn!(asker, host, %error, "the name for a PTR answer is not a domain name");
                            Outcome::Reply(build_reply(
                                &request,
                                Vec::new(),
                                ResponseCode::ServFail,
                                false,
                                limit,
                            ))
                        }
                    };
                }
            }
            RecordType::MX => {
                if lookup().is_some() {
                    return answer(Vec::new());
                }
            }
            _ => {
                if config.nodata_for_local_names && lookup().is_some() {
                    return answer(Vec::new());
                }
            }
        }
    }

    Outcome::Forward(Forward {
        packet: packet.to_vec(),
        request,
        question_end,
        transport,
    })
}

/// The largest answer the client of `request` takes.
fn client_limit(request: &Message, transport: Transport) -> usize {
    match (transport, &request.edns) {
        (Transport::Tcp, _) => MAX_MESSAGE,
        (Transport::Udp, None) => MIN_UDP,
        (Transport::Udp, Some(edns)) => usize::from(edns.max_payload()).max(MIN_UDP),
    }
}

/// An answer to `request` with `answers`, at most `limit` bytes: records that do not fit
/// are left out and TC set. The question is echoed as asked, and an OPT record if the
/// request had one.
pub(crate) fn build_reply(
    request: &Message,
    answers: Vec<Record>,
    rcode: ResponseCode,
    truncated: bool,
    limit: usize,
) -> Vec<u8> {
    let mut msg = Message::response(request.metadata.id, request.metadata.op_code);
    msg.metadata = Metadata::response_from_request(&request.metadata);
    msg.metadata.recursion_available = true;
    msg.metadata.response_code = rcode;
    msg.metadata.truncation = truncated;
    msg.queries = request.queries.clone();
    if let Some(theirs) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        // RFC 3225 §3: the DO bit is copied into the response.
        edns.set_dnssec_ok(theirs.flags().dnssec_ok);
        msg.edns = Some(edns);
    }
    msg.answers = answers;
    let fallback = || header_only(&request.metadata, ResponseCode::ServFail);

    match encode(&msg) {
        Some(bytes) if bytes.len() <= limit => return bytes,
        Some(_) => {}
        None => return fallback(),
    }
    // Too large: keep as many answers as fit (a binary search; the sizes grow with the
    // count), and say so.
    let all = std::mem::take(&mut msg.answers);
    msg.metadata.truncation = true;
    let (mut fits, mut too_many) = (0, all.len());
    while too_many - fits > 1 {
        let mid = fits + (too_many - fits) / 2;
        msg.answers = all[..mid].to_vec();
        match encode(&msg) {
            Some(bytes) if bytes.len() <= limit => fits = mid,
            Some(_) => too_many = mid,
            None => return fallback(),
        }
    }
    msg.answers = all[..fits].to_vec();
    match encode(&msg) {
        Some(bytes) if bytes.len() <= limit => bytes,
        _ => fallback(),
    }
}

fn encode(msg: &Message) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut buf);
    match msg.emit(&mut encoder) {
        Ok(()) => Some(buf),
        Err(error) => {
            tracing::warn!(%error, "cannot encode a DNS answer");
            None
        }
    }
}

/// An answer of just a header, for queries that are not parsed (as miekg/dns's, which
/// leaves out the question and any OPT record).
fn header_only(request: &Metadata, rcode: ResponseCode) -> Vec<u8> {
    let [id_hi, id_lo] = request.id.to_be_bytes();
    let opcode = u8::from(request.op_code) & 0x0f;
    let flags = 0x80 | (opcode << 3) | u8::from(request.recursion_desired);
    let rcode = 0x80 | (rcode.low() & 0x0f);
    vec![id_hi, id_lo, flags, rcode, 0, 0, 0, 0, 0, 0, 0, 0]
}

/// Where the first question of `packet` ends (after its type and class), or `None` if
/// it runs past the end.
fn question_end(packet: &[u8]) -> Option<usize> {
    let mut at = HEADER_LEN;
    loop {
        let len = *packet.get(at)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                at += 1;
                break;
            }
            0x00 => at += 1 + usize::from(len),
            0xc0 => {
                at += 2;
                break;
            }
            _ => return None,
        }
    }
    let end = at + 4;
    (end <= packet.len()).then_some(end)
}

/// The name to look up for `name`: its labels lower-cased and joined by dots, or `None`
/// for the root and for names with labels that cannot be container names (dots,
/// spaces, control characters or other non-printable bytes in a label).
pub(crate) fn lookup_name(name: &Name) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    for label in name.iter() {
        if label.is_empty() || !label.iter().all(|&b| b.is_ascii_graphic() && b != b'.') {
            return None;
        }
        if !out.is_empty() {
            out.push('.');
        }
        out.extend(label.iter().map(|&b| char::from(b.to_ascii_lowercase())));
    }
    (!out.is_empty()).then_some(out)
}

/// The address of a whole reverse name (`4.3.2.1.in-addr.arpa`, 32 nibbles of
/// `ip6.arpa`), or `None` (partial names, other names).
pub(crate) fn arpa_addr(name: &Name) -> Option<IpAddr> {
    let labels: Vec<&[u8]> = name.iter().collect();
    let (address, suffix) = labels.split_last_chunk::<2>()?;
    if !suffix[1].eq_ignore_ascii_case(b"arpa") {
        return None;
    }
    if suffix[0].eq_ignore_ascii_case(b"in-addr") {
        let [d, c, b, a] = address else { return None };
        let octet = |label: &[u8]| -> Option<u8> {
            if label.is_empty() || label.len() > 3 || !label.iter().all(u8::is_ascii_digit) {
                return None;
            }
            std::str::from_utf8(label).ok()?.parse().ok()
        };
        Some(IpAddr::V4(Ipv4Addr::new(
            octet(a)?,
            octet(b)?,
            octet(c)?,
            octet(d)?,
        )))
    } else if suffix[0].eq_ignore_ascii_case(b"ip6") {
        if address.len() != 32 {
            return None;
        }
        let mut bits: u128 = 0;
        // The least significant nibble comes first.
        for label in address.iter().rev() {
            let [digit] = label else { return None };
            let nibble = char::from(*digit).to_digit(16)?;
            bits = (bits << 4) | u128::from(nibble);
        }
        Some(IpAddr::V6(Ipv6Addr::from(bits)))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn lookup_names() {
        assert_eq!(lookup_name(&name("Web.Net1.")).as_deref(), Some("web.net1"));
        assert_eq!(lookup_name(&name("web")).as_deref(), Some("web"));
        assert_eq!(lookup_name(&name(".")), None);
        let labels = |labels: &[&[u8]]| Name::from_labels(labels.iter().copied()).unwrap();
        assert_eq!(lookup_name(&labels(&[b"a.b", b"c"])), None);
        assert_eq!(lookup_name(&labels(&[b"a b"])), None);
        assert_eq!(lookup_name(&labels(&[b"a\0b"])), None);
        assert_eq!(lookup_name(&labels(&[b"\xc3\xa9t\xc3\xa9"])), None);
        assert_eq!(
            lookup_name(&labels(&[b"Web_1", b"x-Y"])).as_deref(),
            Some("web_1.x-y")
        );
    }

    #[test]
    fn arpa_names() {
        assert_eq!(
            arpa_addr(&name("4.3.2.10.in-addr.arpa.")),
            Some("10.2.3.4".parse().unwrap())
        );
        assert_eq!(
            arpa_addr(&name("4.3.2.10.IN-ADDR.ARPA")),
            Some("10.2.3.4".parse().unwrap())
        );
        assert_eq!(arpa_addr(&name("3.2.10.in-addr.arpa.")), None);
        assert_eq!(arpa_addr(&name("5.4.3.2.10.in-addr.arpa.")), None);
        assert_eq!(arpa_addr(&name("256.3.2.10.in-addr.arpa.")), None);
        let plus = Name::from_labels([&b"+4"[..], b"3", b"2", b"10", b"in-addr", b"arpa"]).unwrap();
        assert_eq!(arpa_addr(&plus), None);
        assert_eq!(arpa_addr(&name("in-addr.arpa.")), None);
        assert_eq!(arpa_addr(&name("arpa.")), None);
        let v6: Ipv6Addr = "fd00::1:2".parse().unwrap();
        let nibbles: String = format!("{:032x}", u128::from(v6))
            .chars()
            .rev()
            .map(|c| format!("{c}."))
            .collect();
        assert_eq!(
            arpa_addr(&name(&format!("{nibbles}ip6.arpa."))),
            Some(IpAddr::V6(v6))
        );
        assert_eq!(
            arpa_addr(&name(&format!("{}ip6.arpa.", &nibbles[2..]))),
            None
        );
        assert_eq!(
            arpa_addr(&name(&format!("g.{}ip6.arpa.", &nibbles[2..]))),
            None
        );
    }

    #[test]
    fn question_ends() {
        let mut packet = vec![0; 12];
        packet.extend_from_slice(b"\x03web\x00\x00\x01\x00\x01");
        assert_eq!(question_end(&packet), Some(packet.len()));
        packet.pop();
        assert_eq!(question_end(&packet), None);
        let mut pointer = vec![0; 12];
        pointer.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
        assert_eq!(question_end(&pointer), Some(pointer.len()));
        let mut reserved = vec![0; 12];
        reserved.extend_from_slice(b"\x80\x00\x00\x01\x00\x01");
        assert_eq!(question_end(&reserved), None);
    }

    #[test]
    fn header_only_answers() {
        let mut metadata = Metadata::new(0xabcd, MessageType::Query, OpCode::Status);
        metadata.recursion_desired = true;
        assert_eq!(
            header_only(&metadata, ResponseCode::NotImp),
            [
                0xab,
                0xcd,
                0x80 | (2 << 3) | 1,
                0x80 | 4,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0
            ]
        );
    }
}
