//! Query handling as a pure function over bytes: request in, answer (or "ask upstream") out.
//!
//! No I/O and no shared state beyond the snapshot it is given, so it is unit-tested and fuzzed
//! directly; the listeners in `server.rs` only move bytes.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::snapshot::{name_key, ClientScope, Lookup, Snapshot};

/// Answers for our names are live: a disconnect must not be outlived by a client's cache, and
/// asking again costs microseconds. Docker uses 600 s, which keeps removed containers alive.
pub const TTL: u32 = 0;
/// Largest UDP answer we send whatever the client advertises (and what we advertise).
pub const MAX_UDP_PAYLOAD: u16 = 4096;
/// Without EDNS0 a UDP answer is limited to 512 bytes (RFC 1035).
const CLASSIC_UDP_PAYLOAD: u16 = 512;

/// How the request arrived: it decides how large an answer may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with a request that was not dropped.
#[derive(Debug)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Not a name served here, and the client may use upstream resolvers: forward the request
    /// bytes unchanged, then build the answer with [`Forward::finish`] or [`Forward::servfail`].
    Forward(Forward),
}

/// A request on its way upstream: what is needed to check and shape the upstream's answer.
#[derive(Debug)]
pub struct Forward {
    request: Message,
    limit: usize,
}

/// Handle one request from a client whose scope is `scope` (None: the namespace has no
/// network with name resolution any more, e.g. a listener about to close). Returns None when
/// the packet deserves no answer: unparsable, or not a query at all (a response, which could
/// otherwise be used to make two servers talk to each other forever).
pub fn handle(
    snapshot: &Snapshot,
    scope: Option<&ClientScope>,
    request: &[u8],
    transport: Transport,
) -> Option<Reply> {
    let raw = request;
    let request = Message::from_vec(raw).ok()?;
    if request.message_type != MessageType::Query {
        return None;
    }
    let limit = answer_limit(&request, transport);
    let forward = scope.is_some_and(ClientScope::forward);
    let reply = |code| {
        let response = response_to(&request, forward);
        Some(Reply::Answer(error(response, code, limit)))
    };
    if request.op_code != OpCode::Query {
        return reply(ResponseCode::Refused);
    }
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return reply(ResponseCode::BADVERS);
    }
    let [query] = request.queries.as_slice() else {
        return reply(ResponseCode::FormErr);
    };
    let Some(scope) = scope else {
        return reply(ResponseCode::Refused);
    };
    if query.query_class != DNSClass::IN {
        return reply(ResponseCode::Refused);
    }
    let answers = match query.query_type {
        RecordType::PTR => reverse_answers(snapshot, scope, query),
        _ => forward_answers(snapshot, scope, query),
    };
    let records = match answers {
        Outcome::Addresses(addrs) => {
            if let Some(answer) = encode_addresses(raw, &request, &addrs, forward, limit) {
                return Some(Reply::Answer(answer));
            }
            address_records(query, addrs)
        }
        Outcome::Answers(records) => records,
        Outcome::NoSuchName => {
            let mut response = response_to(&request, forward);
            response.metadata.authoritative = true;
            return Some(Reply::Answer(error(
                response,
                ResponseCode::NXDomain,
                limit,
            )));
        }
        Outcome::NotLocal if forward => return Some(Reply::Forward(Forward { request, limit })),
        // Not ours and the client may not go outside (internal networks): a server that does
        // not recurse for a client refuses, as BIND does outside `allow-recursion`.
        Outcome::NotLocal => return reply(ResponseCode::Refused),
    };
    let mut response = response_to(&request, forward);
    response.metadata.authoritative = true;
    response.answers = records;
    Some(Reply::Answer(encode(&response, limit)))
}

enum Outcome {
    /// A/AAAA/ANY data of a name served here, already in answer order.
    Addresses(Vec<IpAddr>),
    Answers(Vec<Record>),
    NoSuchName,
    NotLocal,
}

fn forward_answers(snapshot: &Snapshot, scope: &ClientScope, query: &Query) -> Outcome {
    let Some(key) = name_key(query.name.iter()) else {
        return Outcome::NotLocal;
    };
    match snapshot.lookup(scope, &key) {
        Lookup::Found(mut addrs) => {
            let want = |ip: &IpAddr| match query.query_type {
                RecordType::A => ip.is_ipv4(),
                RecordType::AAAA => ip.is_ipv6(),
                RecordType::ANY => true,
                // The name exists but has no such data: NOERROR with no answers.
                _ => false,
            };
            addrs.retain(want);
            // Round-robin: every answer lists the replicas in a fresh order.
            fastrand::shuffle(&mut addrs);
            Outcome::Addresses(addrs)
        }
        Lookup::NoSuchName => Outcome::NoSuchName,
        Lookup::NotLocal => Outcome::NotLocal,
    }
}

fn address_records(query: &Query, addrs: Vec<IpAddr>) -> Vec<Record> {
    addrs
        .into_iter()
        .map(|ip| {
            let data = match ip {
                IpAddr::V4(v4) => RData::A(A(v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
            };
            Record::from_rdata(query.name.clone(), TTL, data)
        })
        .collect()
}

/// The hot path, written directly: the answer to an A/AAAA/ANY question for a name served
/// here, as the general path would encode it (the unit tests compare both), but without
/// building hickory messages — that costs more than the two syscalls around it. The question
/// is copied as the client sent it and every record names it by a pointer to offset 12.
/// None when the question is not a plain uncompressed name or the answer does not fit: the
/// general path handles those.
fn encode_addresses(
    raw: &[u8],
    request: &Message,
    addrs: &[IpAddr],
    recursion_available: bool,
    limit: usize,
) -> Option<Vec<u8>> {
    const HEADER: usize = 12;
    const OPT_RR: usize = 11;
    let mut end = HEADER;
    loop {
        let len = usize::from(*raw.get(end)?);
        end += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        end += len;
    }
    let question = raw.get(HEADER..end + 4)?;
    let edns = request.edns.is_some();
    let records: usize = addrs
        .iter()
        .map(|a| if a.is_ipv4() { 16 } else { 28 })
        .sum();
    let size = HEADER + question.len() + records + if edns { OPT_RR } else { 0 };
    if size > limit {
        return None;
    }
    let count = u16::try_from(addrs.len()).ok()?;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&request.id.to_be_bytes());
    // QR, opcode QUERY, AA, RD echoed | RA, CD echoed, NOERROR.
    out.push(0x80 | 0x04 | u8::from(request.recursion_desired));
    out.push(
        if recursion_available { 0x80 } else { 0 }
            | if request.checking_disabled { 0x10 } else { 0 },
    );
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u16::from(edns).to_be_bytes());
    out.extend_from_slice(question);
    for ip in addrs {
        out.extend_from_slice(&[0xc0, 0x0c]);
        let (rtype, v4, v6);
        let rdata: &[u8] = match ip {
            IpAddr::V4(a) => {
                (rtype, v4) = (u16::from(RecordType::A), a.octets());
                &v4
            }
            IpAddr::V6(a) => {
                (rtype, v6) = (u16::from(RecordType::AAAA), a.octets());
                &v6
            }
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&u16::from(DNSClass::IN).to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        out.extend_from_slice(&u16::try_from(rdata.len()).ok()?.to_be_bytes());
        out.extend_from_slice(rdata);
    }
    if edns {
        // OPT: root name, type 41, class = our UDP payload, extended rcode/version/flags 0.
        out.push(0);
        out.extend_from_slice(&u16::from(RecordType::OPT).to_be_bytes());
        out.extend_from_slice(&MAX_UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0; 6]);
    }
    Some(out)
}

fn reverse_answers(snapshot: &Snapshot, scope: &ClientScope, query: &Query) -> Outcome {
    let Some(ip) = arpa_address(&query.name) else {
        return forward_answers(snapshot, scope, query);
    };
    let (names, ours) = snapshot.reverse(scope, ip);
    if names.is_empty() {
        // Addresses of the client's own subnets are answered here, never asked upstream.
        return if ours {
            Outcome::NoSuchName
        } else {
            Outcome::NotLocal
        };
    }
    let records = names
        .into_iter()
        .filter_map(|n| Name::from_ascii(n).ok())
        .map(|n| Record::from_rdata(query.name.clone(), TTL, RData::PTR(PTR(n))))
        .collect();
    Outcome::Answers(records)
}

/// The address of a full-length `in-addr.arpa.`/`ip6.arpa.` name.
fn arpa_address(name: &Name) -> Option<IpAddr> {
    let mut fqdn = name.clone();
    fqdn.set_fqdn(true);
    let net = fqdn.parse_arpa_name().ok()?;
    let full = if net.addr().is_ipv4() { 32 } else { 128 };
    (net.prefix_len() == full).then(|| net.addr())
}

/// The skeleton of a response: id, opcode, question and flags echoed, EDNS0 answered with ours.
fn response_to(request: &Message, recursion_available: bool) -> Message {
    let mut response = Message::response(request.id, request.op_code);
    response.metadata.recursion_desired = request.recursion_desired;
    response.metadata.checking_disabled = request.checking_disabled;
    response.metadata.recursion_available = recursion_available;
    response.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(MAX_UDP_PAYLOAD);
        response.set_edns(edns);
    }
    response
}

fn answer_limit(request: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => {
            let asked = request
                .edns
                .as_ref()
                .map_or(CLASSIC_UDP_PAYLOAD, Edns::max_payload);
            usize::from(asked.clamp(CLASSIC_UDP_PAYLOAD, MAX_UDP_PAYLOAD))
        }
    }
}

fn error(mut response: Message, code: ResponseCode, limit: usize) -> Vec<u8> {
    response.metadata.response_code = code;
    encode(&response, limit)
}

/// Encode, and if the answer does not fit the transport, send the question alone with TC set
/// so the client asks again over TCP (what BIND and Docker's resolver do as well).
fn encode(response: &Message, limit: usize) -> Vec<u8> {
    match response.to_vec() {
        Ok(bytes) if bytes.len() <= limit => bytes,
        _ => {
            let mut short = response.truncate();
            short.metadata.truncation = true;
            // A question alone always fits 512 bytes (a name is at most 255) and encodes.
            short.to_vec().unwrap_or_default()
        }
    }
}

impl Forward {
    /// The upstream's answer as the client gets it, or None if it does not answer this
    /// request (wrong id or question: a stray or spoofed packet; keep waiting).
    pub fn finish(&self, upstream: &[u8]) -> Option<Vec<u8>> {
        let mut answer = Message::from_vec(upstream).ok()?;
        if answer.message_type != MessageType::Response
            || answer.id != self.request.id
            || !same_questions(&answer.queries, &self.request.queries)
        {
            return None;
        }
        if upstream.len() <= self.limit {
            return Some(upstream.to_vec());
        }
        // Too big for the client's UDP: keep the upstream's header, signal truncation.
        answer.metadata.truncation = true;
        Some(encode(&answer.truncate(), self.limit))
    }

    /// The answer when no upstream answered.
    pub fn servfail(&self) -> Vec<u8> {
        error(
            response_to(&self.request, true),
            ResponseCode::ServFail,
            self.limit,
        )
    }

    /// The request's id (callers matching upstream answers use it).
    pub fn id(&self) -> u16 {
        self.request.id
    }
}

fn same_questions(a: &[Query], b: &[Query]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.query_type == y.query_type
                && x.query_class == y.query_class
                && x.name.eq_ignore_root(&y.name)
        })
}

#[cfg(test)]
mod tests {
    use super::super::snapshot::tests::{ep, net, sample};
    use super::*;

    fn query(name: &str, rtype: RecordType, edns: Option<u16>) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
        if let Some(size) = edns {
            let mut e = Edns::new();
            e.set_max_payload(size);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    fn answer(s: &Snapshot, ns: &str, req: &[u8], t: Transport) -> Message {
        match handle(s, s.client(ns), req, t) {
            Some(Reply::Answer(bytes)) => Message::from_vec(&bytes).unwrap(),
            other => panic!("expected an answer, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers.iter().map(|r| r.data.to_string()).collect()
    }

    #[test]
    fn a_aaaa_and_case_preserving_question() {
        let s = sample();
        let m = answer(
            &s,
            "ns-web",
            &query("WEB.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(m.id, 0x1234);
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.authoritative && m.recursion_desired && m.recursion_available);
        assert_eq!(addrs(&m), ["10.1.0.2"]);
        assert_eq!(m.answers[0].name.to_ascii(), "WEB.");
        assert_eq!(m.queries[0].name.to_ascii(), "WEB.");
        let m = answer(
            &s,
            "ns-web",
            &query("web.front.", RecordType::AAAA, None),
            Transport::Udp,
        );
        assert_eq!(addrs(&m), ["fd00::2"]);
        // Name exists, no MX: NOERROR and empty.
        let m = answer(
            &s,
            "ns-web",
            &query("web.", RecordType::MX, None),
            Transport::Udp,
        );
        assert_eq!(m.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty());
    }

    #[test]
    fn fast_path_encodes_like_hickory() {
        let s = sample();
        for (name, rtype, edns) in [
            ("WeB.", RecordType::A, None),
            ("web.front.", RecordType::AAAA, Some(1232)),
            ("web.", RecordType::ANY, Some(4096)),
            ("www.", RecordType::A, None),
        ] {
            let req = query(name, rtype, edns);
            let request = Message::from_vec(&req).unwrap();
            let addrs = match forward_answers(&s, s.client("ns-web").unwrap(), &request.queries[0])
            {
                Outcome::Addresses(mut a) => {
                    a.sort();
                    a
                }
                _ => panic!("expected addresses"),
            };
            let fast = encode_addresses(&req, &request, &addrs, true, 4096).unwrap();
            let mut general = response_to(&request, true);
            general.metadata.authoritative = true;
            general.answers = address_records(&request.queries[0], addrs);
            let general = encode(&general, 4096);
            assert_eq!(
                Message::from_vec(&fast).unwrap(),
                Message::from_vec(&general).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn replicas_all_returned_in_varying_order() {
        let s = sample();
        let req = query("api.", RecordType::A, None);
        let mut orders = std::collections::BTreeSet::new();
        for _ in 0..50 {
            let m = answer(&s, "ns-web", &req, Transport::Udp);
            let mut got = addrs(&m);
            orders.insert(got.clone());
            got.sort();
            assert_eq!(got, ["10.1.0.3", "10.1.0.4", "10.1.0.5"]);
        }
        assert!(orders.len() > 1, "order never changed");
    }

    #[test]
    fn nxdomain_refused_and_forward() {
        let s = sample();
        let m = answer(
            &s,
            "ns-web",
            &query("db.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        assert!(matches!(
            handle(
                &s,
                s.client("ns-web"),
                &query("example.com.", RecordType::A, None),
                Transport::Udp
            ),
            Some(Reply::Forward(_))
        ));
        // Internal-only client: never forwarded, refused; RA clear.
        let m = answer(
            &s,
            "ns-db",
            &query("example.com.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(m.response_code, ResponseCode::Refused);
        assert!(!m.recursion_available);
        // A namespace without scope (only the default bridge) is refused.
        let m = answer(
            &s,
            "ns-lone",
            &query("lone.", RecordType::A, None),
            Transport::Udp,
        );
        assert_eq!(m.response_code, ResponseCode::Refused);
    }

    #[test]
    fn ptr_for_endpoint_addresses() {
        let s = sample();
        let m = answer(
            &s,
            "ns-web",
            &query("3.0.1.10.in-addr.arpa.", RecordType::PTR, None),
            Transport::Udp,
        );
        assert_eq!(addrs(&m), ["api1.front."]);
        let m = answer(
            &s,
            "ns-web",
            &query("99.0.1.10.in-addr.arpa.", RecordType::PTR, None),
            Transport::Udp,
        );
        assert_eq!(m.response_code, ResponseCode::NXDomain);
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        let m = answer(
            &s,
            "ns-web",
            &query(v6, RecordType::PTR, None),
            Transport::Udp,
        );
        assert_eq!(addrs(&m), ["web.front."]);
        assert!(matches!(
            handle(
                &s,
                s.client("ns-web"),
                &query("8.8.8.8.in-addr.arpa.", RecordType::PTR, None),
                Transport::Udp
            ),
            Some(Reply::Forward(_))
        ));
    }

    fn big() -> Snapshot {
        let eps: Vec<_> = (0..60)
            .map(|i| {
                let ns = format!("ns{i}");
                let ip = format!("10.9.0.{}", i + 2);
                ep("n9", &ns, &format!("r{i}"), &["many"], &[ip.as_str()])
            })
            .collect();
        Snapshot::build(&[net("n9", "big", false, "10.9.0.0/24")], &eps)
    }

    #[test]
    fn truncation_and_edns_payload() {
        let s = big();
        let m = answer(
            &s,
            "ns0",
            &query("many.", RecordType::A, None),
            Transport::Udp,
        );
        assert!(m.truncation && m.answers.is_empty());
        let m = answer(
            &s,
            "ns0",
            &query("many.", RecordType::A, None),
            Transport::Tcp,
        );
        assert!(!m.truncation);
        assert_eq!(m.answers.len(), 60);
        // 60 A records (~16 bytes each, names compressed) fit a 4096-byte EDNS0 payload.
        let m = answer(
            &s,
            "ns0",
            &query("many.", RecordType::A, Some(4096)),
            Transport::Udp,
        );
        assert!(!m.truncation);
        assert_eq!(m.answers.len(), 60);
        assert_eq!(m.edns.as_ref().unwrap().max_payload(), MAX_UDP_PAYLOAD);
        // An advertised payload below 512 counts as 512.
        let m = answer(
            &s,
            "ns0",
            &query("many.", RecordType::A, Some(100)),
            Transport::Udp,
        );
        assert!(m.truncation);
    }

    #[test]
    fn malformed_responses_and_other_opcodes() {
        let s = sample();
        let scope = s.client("ns-web");
        assert!(handle(&s, scope, b"", Transport::Udp).is_none());
        assert!(handle(&s, scope, b"\x12\x34\x01", Transport::Udp).is_none());
        let mut req = query("web.", RecordType::A, None);
        req.truncate(req.len() - 2);
        assert!(handle(&s, scope, &req, Transport::Udp).is_none());
        // A response is never answered.
        let mut resp = query("web.", RecordType::A, None);
        resp[2] |= 0x80;
        assert!(handle(&s, scope, &resp, Transport::Udp).is_none());
        // NOTIFY (opcode 4): REFUSED.
        let mut notify = query("web.", RecordType::A, None);
        notify[2] = (notify[2] & 0x87) | (4 << 3);
        let m = answer(&s, "ns-web", &notify, Transport::Udp);
        assert_eq!(m.response_code, ResponseCode::Refused);
        // No question: FORMERR.
        let empty = Message::new(7, MessageType::Query, OpCode::Query)
            .to_vec()
            .unwrap();
        let m = answer(&s, "ns-web", &empty, Transport::Udp);
        assert_eq!(m.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn edns_version_other_than_zero_is_badvers() {
        let s = sample();
        let mut m = Message::new(9, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("web.").unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.set_version(1);
        m.set_edns(e);
        let a = answer(&s, "ns-web", &m.to_vec().unwrap(), Transport::Udp);
        // 16 is BADVERS (hickory decodes it as BADSIG, which shares the number).
        assert_eq!(u16::from(a.response_code), 16);
    }

    #[test]
    fn forwarded_answers_are_checked_and_fitted() {
        let s = sample();
        let req = query("example.com.", RecordType::A, None);
        let Some(Reply::Forward(fwd)) = handle(&s, s.client("ns-web"), &req, Transport::Udp) else {
            panic!("expected forward");
        };
        let mut up = Message::response(0x1234, OpCode::Query);
        up.add_query(Query::query(
            Name::from_ascii("EXAMPLE.com.").unwrap(),
            RecordType::A,
        ));
        for i in 0..40u8 {
            up.add_answer(Record::from_rdata(
                Name::from_ascii("example.com.").unwrap(),
                60,
                RData::A(A([192, 0, 2, i].into())),
            ));
        }
        let bytes = up.to_vec().unwrap();
        assert!(bytes.len() > 512);
        let got = Message::from_vec(&fwd.finish(&bytes).unwrap()).unwrap();
        assert!(got.truncation && got.answers.is_empty());
        up.answers.truncate(2);
        let got = Message::from_vec(&fwd.finish(&up.to_vec().unwrap()).unwrap()).unwrap();
        assert_eq!(got.answers.len(), 2);
        assert_eq!(got.answers[0].data.record_type(), RecordType::A);
        up.metadata.id = 1;
        assert!(fwd.finish(&up.to_vec().unwrap()).is_none(), "wrong id");
        let fail = Message::from_vec(&fwd.servfail()).unwrap();
        assert_eq!(fail.response_code, ResponseCode::ServFail);
        assert_eq!(fail.id, 0x1234);
    }
}
