//! The `dns` workload: queries over UDP from a list (dnsperf's `name type` lines), each
//! answer matched by its query id, counted by response code.
//!
//! Owns: [`QueryList`] (the queries, encoded once), [`DnsSession`] (one flow's ids and
//! outstanding queries).
//! Contract: a session sends the list's queries in turn (each flow starts at its own place
//! in the list, so flows do not all ask the same name at once), with a fresh id per query
//! (a per-flow counter: no two outstanding queries share one). A datagram is an answer when
//! it is a response (QR) to an outstanding id and echoes that query's question; it completes
//! it and is counted under its response code ([`Progress::class`]); SERVFAIL, REFUSED,
//! FORMERR, NOTIMP and other errors count as unsuccessful, NOERROR and NXDOMAIN do not.
//! An answer with TC set counts as `TRUNCATED` (a real client would retry over TCP).
//! Anything else (a stray, a late answer to an expired query) is ignored.
//! Does not: retry over TCP, validate the answer's records, or resolve (the target is
//! one server).

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use ringwork_protocols::dns::proto::message::{Edns, Header, MessageWriter};
use ringwork_protocols::dns::proto::name::Name;
use ringwork_protocols::dns::proto::rdata::RType;

use crate::session::{Progress, ResponseError, Session};

/// The header bytes before the question.
const HEADER_LEN: usize = 12;

/// Why a query list was refused.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct QueryListError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// The queries a run cycles through, each encoded once (id 0, patched per send).
#[derive(Clone, Debug)]
pub struct QueryList {
    /// Wire forms.
    queries: Vec<Box<[u8]>>,
}

impl QueryList {
    /// Parses dnsperf's format: one `name type` per line (`www.example.com A`; the type
    /// defaults to A), blank lines and `#`/`;` comments skipped. With `edns`, each query
    /// carries an OPT record advertising that UDP payload size.
    ///
    /// # Errors
    /// A line whose name or type is not valid, or no query at all.
    pub fn parse(text: &str, edns: Option<u16>) -> Result<QueryList, QueryListError> {
        let mut queries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let err = |reason: String| QueryListError {
                line: index + 1,
                reason,
            };
            let mut fields = line.split_whitespace();
            let name = fields.next().unwrap_or_default();
            let rtype = fields.next().unwrap_or("A");
            if let Some(extra) = fields.next() {
                return Err(err(format!("unexpected {extra:?} after the type")));
            }
            let name = Name::parse(name, Some(&Name::root()))
                .map_err(|e| err(format!("name {name:?}: {e}")))?;
            let rtype = RType::from_name(&rtype.to_ascii_uppercase())
                .ok_or_else(|| err(format!("unknown record type {rtype:?}")))?;
            queries.push(encode(&name, rtype, edns));
        }
        if queries.is_empty() {
            return Err(QueryListError {
                line: 0,
                reason: "no queries".into(),
            });
        }
        Ok(QueryList { queries })
    }

    /// How many queries the list holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queries.len()
    }

    /// Whether the list is empty (never, once parsed).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.queries.is_empty()
    }
}

/// One query with RD set (a stub's query; an authoritative server ignores it).
fn encode(name: &Name, rtype: RType, edns: Option<u16>) -> Box<[u8]> {
    let header = Header {
        flags: Header::RD,
        ..Header::default()
    };
    let mut writer = MessageWriter::new(Vec::new(), header, usize::from(u16::MAX));
    writer.question_raw(name.wire(), rtype, 1);
    if let Some(udp_size) = edns {
        writer.opt(Edns {
            udp_size,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
        });
    }
    writer.finish().into_boxed_slice()
}

/// One flow's queries: which comes next, the ids and questions outstanding.
#[derive(Clone, Debug)]
pub struct DnsSession {
    list: Arc<QueryList>,
    next: usize,
    id: u16,
    /// (id, index in the list), oldest first.
    outstanding: VecDeque<(u16, usize)>,
}

impl DnsSession {
    /// A session starting at query `start` (modulo the list's length).
    #[must_use]
    pub fn new(list: Arc<QueryList>, start: usize) -> Self {
        let next = start % list.len();
        DnsSession {
            list,
            next,
            id: (start as u16).wrapping_mul(7919),
            outstanding: VecDeque::new(),
        }
    }
}

impl Session for DnsSession {
    fn write_request(&mut self, out: &mut BytesMut) {
        let query = &self.list.queries[self.next];
        self.id = self.id.wrapping_add(1);
        out.put_u16(self.id);
        out.put_slice(&query[2..]);
        self.outstanding.push_back((self.id, self.next));
        self.next = (self.next + 1) % self.list.len();
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        let ignored = Progress {
            consumed: data.len(),
            ..Progress::default()
        };
        let Ok(header) = Header::parse(data) else {
            return Err(ResponseError::Malformed {
                reason: format!("a {}-byte datagram is no DNS message", data.len()),
            });
        };
        if !header.has(Header::QR) {
            return Ok(ignored);
        }
        let Some(pos) = self.outstanding.iter().position(|&(id, _)| id == header.id) else {
            return Ok(ignored);
        };
        // The question echoed as asked (names compared without case: servers may change
        // it); a mismatch is not this query's answer.
        let query = &self.list.queries[self.outstanding[pos].1];
        let question = &query[HEADER_LEN..question_end(query)];
        let echoed = data.get(HEADER_LEN..HEADER_LEN + question.len());
        if header.qdcount != 1 || !echoed.is_some_and(|e| e.eq_ignore_ascii_case(question)) {
            return Ok(ignored);
        }
        self.outstanding.remove(pos);
        let class = if header.has(Header::TC) {
            "TRUNCATED"
        } else {
            rcode_name(header.rcode())
        };
        let failed = !matches!(class, "NOERROR" | "NXDOMAIN");
        Ok(Progress {
            consumed: data.len(),
            completed: 1,
            unsuccessful: u32::from(failed),
            class: Some(class),
            ..Progress::default()
        })
    }

    fn expired(&mut self, requests: u32) {
        for _ in 0..requests {
            self.outstanding.pop_front();
        }
    }
}

/// Where the question of an encoded query ends (after its name, type and class).
fn question_end(query: &[u8]) -> usize {
    let mut at = HEADER_LEN;
    while query[at] != 0 {
        at += usize::from(query[at]) + 1;
    }
    at + 1 + 4
}

/// The mnemonic of a response code (RFC 1035, 2136 and 6895's registry).
fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => "RCODE-OTHER",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> Arc<QueryList> {
        let text = "# comment\nwww.example.com A\n\nexample.com mx\nnothing.example.com\n";
        Arc::new(QueryList::parse(text, None).unwrap())
    }

    /// The answer a server would give to `query`: QR set, `rcode`, the question echoed
    /// (upper-cased, as 0x20 randomisation might), one bogus answer byte after it.
    fn answer(query: &[u8], rcode: u16, extra_flags: u16) -> Vec<u8> {
        let mut a = query[..question_end(query)].to_vec();
        a[HEADER_LEN..].make_ascii_uppercase();
        let flags = u16::from_be_bytes([a[2], a[3]]) | Header::QR | rcode | extra_flags;
        a[2..4].copy_from_slice(&flags.to_be_bytes());
        a.push(0);
        a
    }

    #[test]
    fn parses_dnsperf_lines() {
        let list = list();
        assert_eq!(list.len(), 3);
        let mx = &list.queries[1];
        assert_eq!(&mx[question_end(mx) - 4..question_end(mx)], &[0, 15, 0, 1]);
        let bad = QueryList::parse("ok.example A\nbad..name A\n", None).unwrap_err();
        assert_eq!(bad.line, 2);
        let bad = QueryList::parse("x.example BOGUS\n", None).unwrap_err();
        assert!(bad.reason.contains("BOGUS"), "{bad}");
        assert!(QueryList::parse("x.example A extra\n", None).is_err());
        assert!(QueryList::parse("# nothing\n", None).is_err());
    }

    #[test]
    fn edns_adds_an_opt_record() {
        let list = QueryList::parse("example.com A\n", Some(1232)).unwrap();
        let q = &list.queries[0];
        assert_eq!(u16::from_be_bytes([q[10], q[11]]), 1, "ARCOUNT");
        let opt = &q[question_end(q)..];
        assert_eq!(&opt[..5], &[0, 0, 41, 0x04, 0xD0], "root, OPT, 1232");
    }

    #[test]
    fn answers_are_matched_by_id_and_question_and_counted_by_rcode() {
        let mut s = DnsSession::new(list(), 0);
        let mut out = BytesMut::new();
        s.write_request(&mut out);
        let first = out.split().to_vec();
        s.write_request(&mut out);
        let second = out.split().to_vec();
        assert_ne!(first[..2], second[..2], "ids differ");

        // A query (QR clear) and a stray id are ignored.
        assert_eq!(s.on_bytes(&first).unwrap().completed, 0);
        let mut stray = answer(&first, 0, 0);
        stray[0] ^= 0xFF;
        assert_eq!(s.on_bytes(&stray).unwrap().completed, 0);
        // The right id with another question is not the answer.
        let mut wrong = answer(&second, 0, 0);
        wrong[..2].copy_from_slice(&first[..2]);
        assert_eq!(s.on_bytes(&wrong).unwrap().completed, 0);

        // Out of order: the second answer first (NXDOMAIN), then the first (SERVFAIL).
        let p = s.on_bytes(&answer(&second, 3, 0)).unwrap();
        assert_eq!(
            (p.completed, p.unsuccessful, p.class),
            (1, 0, Some("NXDOMAIN"))
        );
        let p = s.on_bytes(&answer(&first, 2, 0)).unwrap();
        assert_eq!(
            (p.completed, p.unsuccessful, p.class),
            (1, 1, Some("SERVFAIL"))
        );
        // Answered already: a duplicate is ignored.
        assert_eq!(s.on_bytes(&answer(&first, 0, 0)).unwrap().completed, 0);

        s.write_request(&mut out);
        let third = out.split().to_vec();
        let p = s.on_bytes(&answer(&third, 0, Header::TC)).unwrap();
        assert_eq!(
            (p.completed, p.unsuccessful, p.class),
            (1, 1, Some("TRUNCATED"))
        );
        assert!(s.on_bytes(b"short").is_err(), "not a DNS message");
    }

    #[test]
    fn expired_queries_are_forgotten_and_flows_start_apart() {
        let mut s = DnsSession::new(list(), 4);
        let mut out = BytesMut::new();
        s.write_request(&mut out);
        let q = out.split().to_vec();
        assert_eq!(&q[2..], &list().queries[1][2..], "start 4 of 3 is query 1");
        s.expired(1);
        assert_eq!(s.on_bytes(&answer(&q, 0, 0)).unwrap().completed, 0);
    }
}
