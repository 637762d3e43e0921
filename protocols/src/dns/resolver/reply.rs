//! What a server's reply means for one question: validation ([`read_reply`]) and the
//! [`Outcome`] kept in the cache.
//!
//! Owns: the checks a reply must pass before anything of it is used (id, QR, opcode, the
//! question echoed case-insensitively, a well-formed message), the reading of the answer
//! section as a CNAME chain from the question's name (bounded, loops stopped) ending in the
//! records of the asked type, and the negative TTL of RFC 2308 (the authority's SOA, if it
//! is an ancestor of the last name: min(its TTL, its MINIMUM)).
//! Contract: never panics on any bytes; only records on the chain are kept (anything else
//! in a reply, in any section, is ignored: no cache poisoning through extra records).
//! Spec: RFC 1035 §7.3 (matching replies), RFC 2181 §5.2 and §8 (RRset TTLs, TTLs with the
//! top bit set are 0), RFC 2308 (negative caching), RFC 6604 (RCODE of a chain).

use super::super::proto::message::{CLASS_IN, HEADER_LEN, opcode, rcode};
use super::super::proto::name::{NameBuf, read_name};
use super::super::proto::{Header, Message, Name, RData, RType, Record};

/// Most CNAME links followed for one lookup, across every reply.
pub const MAX_CHAIN: usize = 8;

/// What servers said about one (name, type): kept in the cache, then read by lookups.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Outcome {
    /// Records of the type, at the end of a (maybe empty) CNAME chain.
    Records {
        /// The CNAME records from the name asked, in order.
        chain: Vec<Record>,
        /// The records of the type at the chain's end.
        records: Vec<Record>,
    },
    /// A CNAME chain whose end the reply says nothing more about: ask for it next.
    Alias {
        /// The CNAME records from the name asked, in order (at least one).
        chain: Vec<Record>,
        /// The chain's end.
        target: Name,
    },
    /// The chain's end does not exist.
    NxDomain {
        /// The CNAME records from the name asked (empty: the name itself does not exist).
        chain: Vec<Record>,
    },
    /// The chain's end exists without records of the type.
    NoData {
        /// The CNAME records from the name asked.
        chain: Vec<Record>,
    },
}

impl Outcome {
    /// Every record it holds (chain first).
    pub(crate) fn records(&self) -> impl Iterator<Item = &Record> {
        let (chain, records): (&[Record], &[Record]) = match self {
            Outcome::Records { chain, records } => (chain, records),
            Outcome::Alias { chain, .. }
            | Outcome::NxDomain { chain }
            | Outcome::NoData { chain } => (chain, &[]),
        };
        chain.iter().chain(records)
    }

    /// Every record it holds, to change (TTLs counted down).
    pub(crate) fn records_mut(&mut self) -> impl Iterator<Item = &mut Record> {
        let (chain, records): (&mut [Record], &mut [Record]) = match self {
            Outcome::Records { chain, records } => (chain, records),
            Outcome::Alias { chain, .. }
            | Outcome::NxDomain { chain }
            | Outcome::NoData { chain } => (chain, &mut []),
        };
        chain.iter_mut().chain(records.iter_mut())
    }
}

/// What a reply says, once it passed the checks.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Reply {
    /// TC is set on a UDP reply: ask again over TCP.
    Truncated,
    /// An error RCODE (SERVFAIL, REFUSED, NOTIMP, FORMERR, ...): ask another server.
    Failure(u16),
    /// An answer (NOERROR or NXDOMAIN), and how long it may be cached (0: not at all).
    Answer(Outcome, u32),
}

/// Whether a message is a reply to the question asked, and what it says.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Verdict {
    /// Not a reply to this question (another id, not a response, another question):
    /// ignored, the exchange goes on.
    NotOurs,
    /// It matches the question but cannot be read.
    Malformed,
    /// A reply.
    Reply(Reply),
}

/// Checks `msg` against the question (`id`, `name`, `qtype`, class IN) and reads it.
/// `over_tcp`: TC is not honoured (there is no larger transport).
#[must_use]
pub fn read_reply(msg: &[u8], id: u16, name: &Name, qtype: RType, over_tcp: bool) -> Verdict {
    let Ok(header) = Header::parse(msg) else {
        return Verdict::NotOurs;
    };
    if header.id != id || !header.has(Header::QR) || header.opcode() != opcode::QUERY {
        return Verdict::NotOurs;
    }
    let error_rcode = !matches!(header.rcode(), rcode::NOERROR | rcode::NXDOMAIN);
    match header.qdcount {
        // Some servers leave the question out of an error reply (FORMERR, NOTIMP, ...).
        0 if error_rcode => return Verdict::Reply(Reply::Failure(header.rcode())),
        1 => {
            let mut asked = NameBuf::new();
            let Ok(at) = read_name(msg, HEADER_LEN, &mut asked) else {
                return Verdict::NotOurs;
            };
            let Some(fixed) = msg.get(at..at + 4) else {
                return Verdict::NotOurs;
            };
            let rtype = RType(u16::from_be_bytes([fixed[0], fixed[1]]));
            let class = u16::from_be_bytes([fixed[2], fixed[3]]);
            // RFC 4343: names compare case-insensitively.
            if rtype != qtype
                || class != CLASS_IN
                || !asked.wire().eq_ignore_ascii_case(name.wire())
            {
                return Verdict::NotOurs;
            }
        }
        _ => return Verdict::NotOurs,
    }
    if header.has(Header::TC) && !over_tcp {
        return Verdict::Reply(Reply::Truncated);
    }
    let Ok(message) = Message::parse(msg) else {
        return Verdict::Malformed;
    };
    let code = message.rcode();
    if code != rcode::NOERROR && code != rcode::NXDOMAIN {
        return Verdict::Reply(Reply::Failure(code));
    }
    match interpret(&message, name, qtype) {
        Some((outcome, ttl)) => Verdict::Reply(Reply::Answer(outcome, ttl)),
        None => Verdict::Malformed,
    }
}

/// The chain and records of an answer (NOERROR or NXDOMAIN); `None` for a chain that
/// loops or is longer than [`MAX_CHAIN`].
fn interpret(message: &Message, name: &Name, qtype: RType) -> Option<(Outcome, u32)> {
    let mut chain: Vec<Record> = Vec::new();
    let mut current = name.clone();
    let in_class = |r: &&Record| r.class == CLASS_IN;
    let records = loop {
        let at_current = |r: &&Record| in_class(r) && r.name.eq_ignore_case(&current);
        let records: Vec<Record> = message
            .answers
            .iter()
            .filter(at_current)
            .filter(|r| r.rtype() == qtype || (qtype == RType::ANY && r.rtype() != RType::CNAME))
            .cloned()
            .map(sane_ttl)
            .collect();
        if !records.is_empty() {
            break records;
        }
        let Some(cname) = message
            .answers
            .iter()
            .filter(at_current)
            .find(|r| r.rtype() == RType::CNAME)
        else {
            break Vec::new();
        };
        let RData::Cname(target) = &cname.data else {
            break Vec::new();
        };
        if chain.len() == MAX_CHAIN
            || target.eq_ignore_case(name)
            || chain.iter().any(|c| c.name.eq_ignore_case(target))
        {
            return None;
        }
        chain.push(sane_ttl(cname.clone()));
        current = target.clone();
    };
    // The chain's records count too: the answer is stale as soon as one link is.
    let chain_ttl = chain.iter().map(|r| r.ttl).min();
    if !records.is_empty() {
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
        let ttl = ttl.min(chain_ttl.unwrap_or(u32::MAX));
        return Some((Outcome::Records { chain, records }, ttl));
    }
    // RFC 2308 §5: a negative answer is cached for min(SOA TTL, SOA MINIMUM) of an SOA
    // that is the last name's (or an ancestor's); without one it is not cached.
    let soa_ttl = message
        .authority
        .iter()
        .filter(in_class)
        .filter(|r| current.is_subdomain_of(&r.name))
        .find_map(|r| match &r.data {
            RData::Soa(soa) => Some(sane(r.ttl).min(sane(soa.minimum))),
            _ => None,
        });
    let negative_ttl = soa_ttl.map_or(0, |ttl| chain_ttl.map_or(ttl, |c| c.min(ttl)));
    if message.rcode() == rcode::NXDOMAIN {
        return Some((Outcome::NxDomain { chain }, negative_ttl));
    }
    if chain.is_empty() || soa_ttl.is_some() {
        return Some((Outcome::NoData { chain }, negative_ttl));
    }
    // A chain that leaves what the server knows (an authoritative server's zone): the
    // resolver asks for its end.
    let ttl = chain_ttl.unwrap_or(0);
    Some((
        Outcome::Alias {
            chain,
            target: current,
        },
        ttl,
    ))
}

/// RFC 2181 §8: a TTL with the top bit set is 0.
fn sane(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 { 0 } else { ttl }
}

fn sane_ttl(mut record: Record) -> Record {
    record.ttl = sane(record.ttl);
    record
}
