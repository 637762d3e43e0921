//! DNS messages: the [`Header`], reading a query ([`parse_query`]) or a whole message
//! ([`Message::parse`]), and writing one with name compression and truncation
//! ([`MessageWriter`]).
//!
//! Owns: the 12-byte header and its flags, the question, resource records, the EDNS OPT
//! pseudo-record (RFC 6891), compression when writing, and TC when a message would not fit.
//! Contract: reading never panics and never reads past the buffer; every count in the header
//! is checked against what follows. [`parse_query`] reads what a server needs without
//! allocating (one question, the OPT record) and keeps the question's bytes as sent so the
//! answer can echo them. Writing stops at the first record that does not fit the limit and
//! sets TC (RFC 2181 §9): the answer is then cut at a record boundary.
//! Spec: RFC 1035 §4, RFC 6891 (EDNS0), RFC 2181 §9 (TC).

use super::error::DnsError;
use super::name::{Name, NameBuf, lowercase_wire, read_name};
use super::rdata::{RData, RType};

/// The header's size.
pub const HEADER_LEN: usize = 12;
/// The largest UDP message without EDNS (RFC 1035 §4.2.1).
pub const CLASSIC_UDP: usize = 512;
/// Class IN.
pub const CLASS_IN: u16 = 1;
/// Class CH (chaos).
pub const CLASS_CH: u16 = 3;
/// Class ANY (queries only).
pub const CLASS_ANY: u16 = 255;

/// Response codes (4 bits; EDNS extends them to 12, RFC 6891 §6.1.3).
#[allow(missing_docs)]
pub mod rcode {
    pub const NOERROR: u16 = 0;
    pub const FORMERR: u16 = 1;
    pub const SERVFAIL: u16 = 2;
    pub const NXDOMAIN: u16 = 3;
    pub const NOTIMP: u16 = 4;
    pub const REFUSED: u16 = 5;
    pub const BADVERS: u16 = 16;
}

/// Operation codes.
#[allow(missing_docs)]
pub mod opcode {
    pub const QUERY: u8 = 0;
    pub const NOTIFY: u8 = 4;
    pub const UPDATE: u8 = 5;
}

/// The header of a message (RFC 1035 §4.1.1).
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Header {
    /// The query id.
    pub id: u16,
    /// QR, OPCODE, AA, TC, RD, RA, Z, AD, CD and RCODE, as on the wire.
    pub flags: u16,
    /// Question count.
    pub qdcount: u16,
    /// Answer count.
    pub ancount: u16,
    /// Authority count.
    pub nscount: u16,
    /// Additional count.
    pub arcount: u16,
}

#[allow(missing_docs)]
impl Header {
    pub const QR: u16 = 0x8000;
    pub const AA: u16 = 0x0400;
    pub const TC: u16 = 0x0200;
    pub const RD: u16 = 0x0100;
    pub const RA: u16 = 0x0080;
    pub const AD: u16 = 0x0020;
    pub const CD: u16 = 0x0010;

    /// Reads the header at the start of `msg`.
    ///
    /// # Errors
    /// [`DnsError::Truncated`] for fewer than 12 bytes.
    pub fn parse(msg: &[u8]) -> Result<Header, DnsError> {
        let h = msg.get(..HEADER_LEN).ok_or(DnsError::Truncated("header"))?;
        let word = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        Ok(Header {
            id: word(0),
            flags: word(2),
            qdcount: word(4),
            ancount: word(6),
            nscount: word(8),
            arcount: word(10),
        })
    }

    /// Writes it into the first 12 bytes of `out` (which must be that long).
    pub fn write(&self, out: &mut [u8]) {
        for (i, word) in [
            self.id,
            self.flags,
            self.qdcount,
            self.ancount,
            self.nscount,
            self.arcount,
        ]
        .iter()
        .enumerate()
        {
            out[i * 2..i * 2 + 2].copy_from_slice(&word.to_be_bytes());
        }
    }

    /// The operation code.
    #[must_use]
    pub fn opcode(&self) -> u8 {
        ((self.flags >> 11) & 0xF) as u8
    }

    /// The (4-bit) response code.
    #[must_use]
    pub fn rcode(&self) -> u16 {
        self.flags & 0xF
    }

    /// Whether `flag` is set.
    #[must_use]
    pub fn has(&self, flag: u16) -> bool {
        self.flags & flag != 0
    }
}

/// The EDNS OPT record of a message (RFC 6891 §6).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Edns {
    /// The sender's UDP payload size (values below 512 mean 512).
    pub udp_size: u16,
    /// The upper 8 bits of the extended RCODE.
    pub ext_rcode: u8,
    /// The EDNS version.
    pub version: u8,
    /// The DO bit (DNSSEC OK).
    pub dnssec_ok: bool,
}

/// A query as a server reads it: one question, maybe an OPT record.
#[derive(Clone, Debug)]
pub struct Query {
    /// The header.
    pub header: Header,
    /// The question's name, lowercased for lookups.
    pub qname: NameBuf,
    /// The question's type.
    pub qtype: RType,
    /// The question's class.
    pub qclass: u16,
    /// Where the question's bytes are in the message (to echo them as sent).
    pub question: std::ops::Range<usize>,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
}

impl Default for Query {
    /// An empty query (no name, type 0), to parse into ([`parse_query_into`]).
    fn default() -> Self {
        Self {
            header: Header::default(),
            qname: NameBuf::new(),
            qtype: RType(0),
            qclass: 0,
            question: 0..0,
            edns: None,
        }
    }
}

/// Why a query was refused before it could be answered: what to answer with.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct QueryError {
    /// The response code (FORMERR, NOTIMP).
    pub rcode: u16,
    /// The id to answer with, when the header could be read (else: no answer).
    pub id: Option<u16>,
    /// The flags of the query, to echo RD and the opcode.
    pub flags: u16,
    /// Why.
    pub reason: &'static str,
}

/// Reads a query the way a server needs it.
///
/// # Errors
/// A [`QueryError`] naming the answer: FORMERR for a malformed query (or one that is a
/// response, or has no or several questions, or records in the answer or authority
/// sections), NOTIMP for an opcode other than QUERY; with `id: None` when even the header
/// is missing (drop it).
pub fn parse_query(msg: &[u8]) -> Result<Query, QueryError> {
    let mut query = Query::default();
    parse_query_into(msg, &mut query)?;
    Ok(query)
}

/// [`parse_query`] into `query`, reused from query to query: a [`Query`] is some 300 bytes
/// (its name buffer), and a server reading one per datagram would otherwise make and move
/// one each time. After an error, `query` holds parts of the message (read it again before
/// use).
///
/// # Errors
/// As [`parse_query`].
pub fn parse_query_into(msg: &[u8], query: &mut Query) -> Result<(), QueryError> {
    let header = Header::parse(msg).map_err(|_| QueryError {
        rcode: rcode::FORMERR,
        id: None,
        flags: 0,
        reason: "shorter than a header",
    })?;
    let fail = |rcode: u16, reason: &'static str| QueryError {
        rcode,
        id: Some(header.id),
        flags: header.flags,
        reason,
    };
    if header.has(Header::QR) {
        // A response sent to a server: never answer it (reflection loops).
        return Err(QueryError {
            id: None,
            ..fail(rcode::FORMERR, "a response, not a query")
        });
    }
    if header.opcode() != opcode::QUERY {
        return Err(fail(rcode::NOTIMP, "opcode not implemented"));
    }
    if header.qdcount != 1 {
        return Err(fail(rcode::FORMERR, "not exactly one question"));
    }
    if header.ancount != 0 || header.nscount != 0 {
        return Err(fail(
            rcode::FORMERR,
            "records in a query's answer or authority",
        ));
    }
    let qname = &mut query.qname;
    let after_name =
        read_name(msg, HEADER_LEN, qname).map_err(|_| fail(rcode::FORMERR, "bad question name"))?;
    // Nothing precedes the first name a pointer could usefully reach: a compressed
    // question is malformed (and could not be echoed as sent).
    if after_name - HEADER_LEN != qname.wire().len() {
        return Err(fail(rcode::FORMERR, "compressed question name"));
    }
    let fixed = msg
        .get(after_name..after_name + 4)
        .ok_or_else(|| fail(rcode::FORMERR, "question truncated"))?;
    let qtype = RType(u16::from_be_bytes([fixed[0], fixed[1]]));
    let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
    let question = HEADER_LEN..after_name + 4;
    qname.make_lowercase();
    let mut edns = None;
    let mut at = question.end;
    for _ in 0..header.arcount {
        let record =
            RecordRef::read(msg, at).map_err(|_| fail(rcode::FORMERR, "bad additional record"))?;
        if record.rtype == RType::OPT {
            // RFC 6891 §6.1.1: one OPT, owned by the root.
            if edns.is_some() || record.name_len != 1 || msg[at] != 0 {
                return Err(fail(rcode::FORMERR, "bad or second OPT record"));
            }
            edns = Some(Edns {
                udp_size: record.class,
                ext_rcode: (record.ttl >> 24) as u8,
                version: (record.ttl >> 16) as u8,
                dnssec_ok: record.ttl & 0x8000 != 0,
            });
        }
        at = record.end;
    }
    if at != msg.len() {
        return Err(fail(rcode::FORMERR, "bytes after the last record"));
    }
    query.header = header;
    query.qtype = qtype;
    query.qclass = qclass;
    query.question = question;
    query.edns = edns;
    Ok(())
}

/// The fixed fields of a record whose data is not read.
struct RecordRef {
    name_len: usize,
    rtype: RType,
    class: u16,
    ttl: u32,
    data: usize,
    end: usize,
}

impl RecordRef {
    fn read(msg: &[u8], at: usize) -> Result<RecordRef, DnsError> {
        let mut name = NameBuf::new();
        let after = read_name(msg, at, &mut name)?;
        let f = msg
            .get(after..after + 10)
            .ok_or(DnsError::Truncated("record fields"))?;
        let rdlen = usize::from(u16::from_be_bytes([f[8], f[9]]));
        let data = after + 10;
        let end = data + rdlen;
        if end > msg.len() {
            return Err(DnsError::Truncated("record data"));
        }
        Ok(RecordRef {
            name_len: after - at,
            rtype: RType(u16::from_be_bytes([f[0], f[1]])),
            class: u16::from_be_bytes([f[2], f[3]]),
            ttl: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            data,
            end,
        })
    }
}

/// A resource record.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Record {
    /// The owner.
    pub name: Name,
    /// The class (IN).
    pub class: u16,
    /// Seconds it may be cached.
    pub ttl: u32,
    /// The data (its type is the record's).
    pub data: RData,
}

impl Record {
    /// The record's type.
    #[must_use]
    pub fn rtype(&self) -> RType {
        self.data.rtype()
    }
}

/// A question.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Question {
    /// The name asked for.
    pub name: Name,
    /// The type asked for.
    pub qtype: RType,
    /// The class asked for.
    pub qclass: u16,
}

/// A whole message, read (what a resolver does with an answer).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Message {
    /// The header.
    pub header: Header,
    /// The questions.
    pub questions: Vec<Question>,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section.
    pub authority: Vec<Record>,
    /// The additional section (the OPT record is in `edns`, not here).
    pub additional: Vec<Record>,
    /// The OPT record, if any.
    pub edns: Option<Edns>,
}

impl Message {
    /// Reads a whole message.
    ///
    /// # Errors
    /// Any [`DnsError`] of a malformed message: counts past the end, bad names, record data
    /// that does not fit its type, bytes after the last record.
    pub fn parse(msg: &[u8]) -> Result<Message, DnsError> {
        let header = Header::parse(msg)?;
        let mut at = HEADER_LEN;
        let mut name = NameBuf::new();
        let mut questions = Vec::with_capacity(usize::from(header.qdcount).min(4));
        for _ in 0..header.qdcount {
            at = read_name(msg, at, &mut name)?;
            let f = msg.get(at..at + 4).ok_or(DnsError::Truncated("question"))?;
            questions.push(Question {
                name: name.to_name(),
                qtype: RType(u16::from_be_bytes([f[0], f[1]])),
                qclass: u16::from_be_bytes([f[2], f[3]]),
            });
            at += 4;
        }
        let mut sections: [Vec<Record>; 3] = Default::default();
        let mut edns = None;
        for (section, count) in [header.ancount, header.nscount, header.arcount]
            .into_iter()
            .enumerate()
        {
            for _ in 0..count {
                let r = RecordRef::read(msg, at)?;
                if r.rtype == RType::OPT && section == 2 {
                    if edns.is_some() {
                        return Err(DnsError::Unsupported("two OPT records"));
                    }
                    edns = Some(Edns {
                        udp_size: r.class,
                        ext_rcode: (r.ttl >> 24) as u8,
                        version: (r.ttl >> 16) as u8,
                        dnssec_ok: r.ttl & 0x8000 != 0,
                    });
                } else {
                    read_name(msg, at, &mut name)?;
                    let data = RData::read(r.rtype, msg, r.data, r.end - r.data)?;
                    sections[section].push(Record {
                        name: name.to_name(),
                        class: r.class,
                        ttl: r.ttl,
                        data,
                    });
                }
                at = r.end;
            }
        }
        if at != msg.len() {
            return Err(DnsError::Unsupported("bytes after the last record"));
        }
        let [answers, authority, additional] = sections;
        Ok(Message {
            header,
            questions,
            answers,
            authority,
            additional,
            edns,
        })
    }

    /// The response code, extended by the OPT record's upper bits.
    #[must_use]
    pub fn rcode(&self) -> u16 {
        let high = self.edns.map_or(0, |e| u16::from(e.ext_rcode)) << 4;
        high | self.header.rcode()
    }
}

/// Which section a record goes to.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Section {
    /// Answer.
    Answer,
    /// Authority.
    Authority,
    /// Additional.
    Additional,
}

/// Writes a message: header, question, records, OPT; names compressed; cut at a record
/// boundary with TC set when the next record does not fit `limit`.
#[derive(Debug)]
pub struct MessageWriter {
    out: Vec<u8>,
    header: Header,
    limit: usize,
    /// Bytes kept free for the OPT record written last.
    reserve: usize,
    /// Name suffixes written so far (lowercase wire form) and their offsets.
    names: Vec<(Box<[u8]>, u16)>,
    truncated: bool,
}

impl MessageWriter {
    /// A message of at most `limit` bytes with `header` (its counts are kept by the
    /// writer), into `out` (cleared; its capacity is reused).
    #[must_use]
    pub fn new(mut out: Vec<u8>, header: Header, limit: usize) -> Self {
        out.clear();
        out.extend_from_slice(&[0; HEADER_LEN]);
        Self {
            out,
            header: Header {
                qdcount: 0,
                ancount: 0,
                nscount: 0,
                arcount: 0,
                ..header
            },
            limit: limit.max(HEADER_LEN),
            reserve: 0,
            names: Vec::new(),
            truncated: false,
        }
    }

    /// Keeps `bytes` free for an OPT record to be written last.
    pub fn reserve(&mut self, bytes: usize) {
        self.reserve = bytes;
    }

    /// Writes the question with its name's bytes exactly as given (a query echoes its
    /// question as sent; `name` must be uncompressed wire form).
    pub fn question_raw(&mut self, name_wire: &[u8], qtype: RType, qclass: u16) {
        let at = self.out.len();
        self.out.extend_from_slice(name_wire);
        self.out.extend_from_slice(&qtype.0.to_be_bytes());
        self.out.extend_from_slice(&qclass.to_be_bytes());
        let mut key = name_wire.to_vec();
        lowercase_wire(&mut key);
        if let Some(&0) = key.last() {
            self.remember(&key, key.len() - 1, at);
        }
        self.header.qdcount += 1;
    }

    /// Writes a record; `false` (and TC set, nothing written) when it does not fit.
    pub fn record(&mut self, section: Section, record: &Record) -> bool {
        if self.truncated {
            return false;
        }
        let start = self.out.len();
        let names_before = self.names.len();
        self.name(&record.name);
        self.out.extend_from_slice(&record.rtype().0.to_be_bytes());
        self.out.extend_from_slice(&record.class.to_be_bytes());
        self.out.extend_from_slice(&record.ttl.to_be_bytes());
        let len_at = self.out.len();
        self.out.extend_from_slice(&[0, 0]);
        self.rdata(&record.data);
        let rdlen = self.out.len() - len_at - 2;
        if self.out.len() + self.reserve > self.limit || rdlen > usize::from(u16::MAX) {
            self.out.truncate(start);
            self.names.truncate(names_before);
            self.truncated = true;
            self.header.flags |= Header::TC;
            return false;
        }
        self.out[len_at..len_at + 2].copy_from_slice(&(rdlen as u16).to_be_bytes());
        match section {
            Section::Answer => self.header.ancount += 1,
            Section::Authority => self.header.nscount += 1,
            Section::Additional => self.header.arcount += 1,
        }
        true
    }

    /// Writes the OPT record (into the space reserved for it).
    pub fn opt(&mut self, edns: Edns) {
        self.out.push(0);
        self.out.extend_from_slice(&RType::OPT.0.to_be_bytes());
        self.out.extend_from_slice(&edns.udp_size.to_be_bytes());
        let ttl = (u32::from(edns.ext_rcode) << 24)
            | (u32::from(edns.version) << 16)
            | if edns.dnssec_ok { 0x8000 } else { 0 };
        self.out.extend_from_slice(&ttl.to_be_bytes());
        self.out.extend_from_slice(&[0, 0]);
        self.header.arcount += 1;
        self.reserve = 0;
    }

    /// Whether a record was refused for lack of space (TC is set).
    #[must_use]
    pub fn is_truncated(&self) -> bool {
        self.truncated
    }

    /// The header as written so far.
    pub fn header_mut(&mut self) -> &mut Header {
        &mut self.header
    }

    /// The finished message.
    #[must_use]
    pub fn finish(mut self) -> Vec<u8> {
        let header = self.header;
        header.write(&mut self.out[..HEADER_LEN]);
        self.out
    }

    /// Writes `name`, compressed against names written before.
    fn name(&mut self, name: &Name) {
        let wire = name.wire();
        let mut key = wire.to_vec();
        lowercase_wire(&mut key);
        let start = self.out.len();
        let mut at = 0;
        while key[at] != 0 {
            if let Some(offset) = self.find(&key[at..]) {
                self.out.extend_from_slice(&wire[..at]);
                self.out.extend_from_slice(&(0xC000 | offset).to_be_bytes());
                self.remember(&key, at, start);
                return;
            }
            at += 1 + usize::from(key[at]);
        }
        self.out.extend_from_slice(wire);
        self.remember(&key, at, start);
    }

    /// Writes `name` uncompressed (SRV targets, RFC 2782); later names may point into it.
    fn name_plain(&mut self, name: &Name) {
        let mut key = name.wire().to_vec();
        lowercase_wire(&mut key);
        let start = self.out.len();
        self.out.extend_from_slice(name.wire());
        self.remember(&key, key.len() - 1, start);
    }

    fn find(&self, suffix: &[u8]) -> Option<u16> {
        self.names
            .iter()
            .find(|(key, _)| &key[..] == suffix)
            .map(|(_, offset)| *offset)
    }

    /// Records the suffixes of `key` (lowercase wire form) that start before `until`, for a
    /// name whose first byte was written at `start` (pointers reach only the first 16 KiB).
    fn remember(&mut self, key: &[u8], until: usize, start: usize) {
        let mut at = 0;
        while at < until && key[at] != 0 {
            let offset = start + at;
            if offset >= 0x4000 {
                return;
            }
            if self.find(&key[at..]).is_none() {
                self.names.push((key[at..].into(), offset as u16));
            }
            at += 1 + usize::from(key[at]);
        }
    }

    fn rdata(&mut self, data: &RData) {
        match data {
            RData::A(a) => self.out.extend_from_slice(&a.octets()),
            RData::Aaaa(a) => self.out.extend_from_slice(&a.octets()),
            RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => self.name(n),
            RData::Mx {
                preference,
                exchange,
            } => {
                self.out.extend_from_slice(&preference.to_be_bytes());
                self.name(exchange);
            }
            RData::Soa(soa) => {
                self.name(&soa.mname);
                self.name(&soa.rname);
                for n in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
                    self.out.extend_from_slice(&n.to_be_bytes());
                }
            }
            RData::Txt(strings) => {
                for s in strings {
                    let s = &s[..s.len().min(255)];
                    self.out.push(s.len() as u8);
                    self.out.extend_from_slice(s);
                }
            }
            RData::Srv {
                priority,
                weight,
                port,
                target,
            } => {
                for n in [priority, weight, port] {
                    self.out.extend_from_slice(&n.to_be_bytes());
                }
                self.name_plain(target);
            }
            RData::Caa { flags, tag, value } => {
                self.out.push(*flags);
                self.out.push(tag.len().min(255) as u8);
                self.out.extend_from_slice(&tag[..tag.len().min(255)]);
                self.out.extend_from_slice(value);
            }
            RData::Other(_, bytes) => self.out.extend_from_slice(bytes),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
