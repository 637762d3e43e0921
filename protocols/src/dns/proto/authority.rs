//! The authoritative answer to a query ([`Catalog::answer`]): sans-IO, one function from a
//! query's bytes to the response's.
//!
//! Owns: choosing the zone (the longest origin that contains the name; REFUSED outside every
//! zone), the answer, NODATA and NXDOMAIN (with the SOA in the authority section, its TTL
//! capped by the SOA minimum: RFC 2308 §3), CNAME chains inside the zone (at most 8 links,
//! loops stopped), wildcards (RFC 4592), referrals below a delegation (NS and glue, not
//! authoritative), additional A/AAAA for NS, MX and SRV targets, EDNS (our payload size, BADVERS
//! for versions other than 0), and the size limit (512 bytes without EDNS over UDP, the
//! client's size with it, 65,535 over TCP): what does not fit is cut at a record boundary
//! with TC set.
//! Contract: never panics on any bytes; a query that cannot be answered at all (too short
//! for a header, or a response) gets no answer (`None`).
//! Spec: RFC 1034 §4.3.2 (the algorithm), RFC 1035, RFC 2308, RFC 4592, RFC 6891, RFC 6604
//! (the RCODE of a CNAME chain is the last name's).

use std::collections::{HashMap, HashSet};

use super::message::{
    CLASS_ANY, CLASS_IN, CLASSIC_UDP, Edns, Header, MessageWriter, Query, Record, Section,
    parse_query, parse_query_into, rcode,
};
use super::name::{Name, lowercase_wire};
use super::rdata::{RData, RType};
use super::zone::{Node, Zone};

/// The EDNS payload size this server announces (the DNS Flag Day 2020 value).
pub const OUR_UDP_SIZE: u16 = 1232;
/// The largest response over UDP with EDNS, whatever the client offers.
pub const MAX_UDP: usize = 4096;
/// The largest response over TCP.
pub const MAX_TCP: usize = 65_535;
/// Most CNAME links followed inside a zone.
const MAX_CHAIN: usize = 8;

/// How the query arrived (it sets the size limit).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Transport {
    /// UDP: 512 bytes, or the client's EDNS size.
    Udp,
    /// TCP: 65,535 bytes.
    Tcp,
}

/// The zones a server answers for.
#[derive(Debug, Default)]
pub struct Catalog {
    zones: Vec<Zone>,
}

/// What a lookup found for one name.
enum Found<'a> {
    /// The records of the asked type (several types for ANY).
    Answer(Vec<(Name, &'a super::zone::RrSet)>),
    /// A CNAME to follow.
    Alias(&'a Node, Name),
    /// The name exists, without that type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// Below a delegation: the NS set of the cut.
    Referral(&'a Node),
}

impl Catalog {
    /// An empty catalog.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a zone.
    ///
    /// # Errors
    /// A zone with the same origin is already there.
    pub fn add(&mut self, zone: Zone) -> Result<(), String> {
        if self
            .zones
            .iter()
            .any(|z| z.origin().eq_ignore_case(zone.origin()))
        {
            return Err(format!("zone {} is loaded twice", zone.origin()));
        }
        self.zones.push(zone);
        // Longest origins first: the most specific zone wins.
        self.zones
            .sort_by_key(|z| std::cmp::Reverse(z.origin().wire().len()));
        Ok(())
    }

    /// The zones.
    #[must_use]
    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The response to the query in `msg`, written into `out` (cleared; its capacity is
    /// reused); `false` when the query gets no answer at all.
    pub fn answer_into(&self, msg: &[u8], transport: Transport, out: &mut Vec<u8>) -> bool {
        match parse_query(msg) {
            Ok(query) => {
                let bytes = self.respond(msg, &query, transport, std::mem::take(out));
                *out = bytes;
                true
            }
            Err(error) => {
                let Some(id) = error.id else {
                    return false;
                };
                // Echo the id, opcode and RD; no question (it could not be read).
                let header = Header {
                    id,
                    flags: Header::QR | (error.flags & (0x7800 | Header::RD)) | error.rcode,
                    ..Header::default()
                };
                *out = MessageWriter::new(std::mem::take(out), header, CLASSIC_UDP).finish();
                true
            }
        }
    }

    /// [`Catalog::answer_into`] into a new buffer.
    #[must_use]
    pub fn answer(&self, msg: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.answer_into(msg, transport, &mut out).then_some(out)
    }

    fn zone_of(&self, key: &[u8]) -> Option<&Zone> {
        self.zones.iter().find(|zone| {
            let origin = zone.origin().key();
            key.len() >= origin.len()
                && key.ends_with(&origin)
                && on_label_boundary(key, key.len() - origin.len())
        })
    }

    fn respond(&self, msg: &[u8], query: &Query, transport: Transport, out: Vec<u8>) -> Vec<u8> {
        let limit = size_limit(query, transport);
        let mut header = Header {
            id: query.header.id,
            flags: Header::QR | (query.header.flags & (Header::RD | Header::CD)),
            ..Header::default()
        };
        let question = &msg[query.question.clone()];
        let name_wire = &question[..question.len() - 4];
        // RFC 6891 §6.1.3: a version we do not speak gets BADVERS (and our version 0).
        if let Some(edns) = query.edns
            && edns.version != 0
        {
            let mut writer = MessageWriter::new(out, header, limit);
            writer.question_raw(name_wire, query.qtype, query.qclass);
            writer.opt(Edns {
                udp_size: OUR_UDP_SIZE,
                ext_rcode: (rcode::BADVERS >> 4) as u8,
                version: 0,
                dnssec_ok: false,
            });
            writer.header_mut().flags |= rcode::BADVERS & 0xF;
            return writer.finish();
        }
        let refused = query.qclass != CLASS_IN && query.qclass != CLASS_ANY
            || matches!(query.qtype, RType::AXFR | RType(251) | RType::OPT);
        let zone = if refused {
            None
        } else {
            self.zone_of(query.qname.wire())
        };
        let Some(zone) = zone else {
            header.flags |= rcode::REFUSED;
            let mut writer = MessageWriter::new(out, header, limit);
            writer.question_raw(name_wire, query.qtype, query.qclass);
            finish_edns(&mut writer, query);
            return writer.finish();
        };
        let mut writer = MessageWriter::new(out, header, limit);
        writer.question_raw(name_wire, query.qtype, query.qclass);
        if query.edns.is_some() {
            writer.reserve(11);
        }
        let asked = Name::from_wire(name_wire).unwrap_or_else(|_| Name::root());
        self.resolve(zone, &asked, query.qtype, &mut writer);
        finish_edns(&mut writer, query);
        writer.finish()
    }

    /// Fills the answer for `qname`/`qtype` in `zone`, following CNAMEs inside it.
    fn resolve(&self, zone: &Zone, qname: &Name, qtype: RType, writer: &mut MessageWriter) {
        let mut name = qname.clone();
        let mut seen: HashSet<Box<[u8]>> = HashSet::new();
        let mut additional: Vec<Name> = Vec::new();
        let mut aa = true;
        let mut code = rcode::NOERROR;
        for _ in 0..=MAX_CHAIN {
            let key = name.key();
            if !seen.insert(key.clone()) {
                break;
            }
            match lookup(zone, &name, &key, qtype) {
                Found::Answer(sets) => {
                    for (owner, set) in sets {
                        for data in &set.data {
                            collect_targets(data, &mut additional);
                            writer.record(Section::Answer, &record(&owner, set.ttl, data));
                        }
                    }
                    break;
                }
                Found::Alias(node, target) => {
                    if let Some(set) = node.rrset(RType::CNAME) {
                        for data in &set.data {
                            writer.record(Section::Answer, &record(&name, set.ttl, data));
                        }
                    }
                    if !target.is_subdomain_of(zone.origin()) {
                        // Outside this zone: the resolver follows it.
                        break;
                    }
                    name = target;
                    continue;
                }
                Found::NoData => {
                    negative(zone, writer);
                    break;
                }
                Found::NxDomain => {
                    negative(zone, writer);
                    code = rcode::NXDOMAIN;
                    break;
                }
                Found::Referral(cut) => {
                    aa = false;
                    if let Some(set) = cut.rrset(RType::NS) {
                        for data in &set.data {
                            collect_targets(data, &mut additional);
                            writer.record(Section::Authority, &record(&cut.name, set.ttl, data));
                        }
                    }
                    break;
                }
            }
        }
        for target in additional {
            if !target.is_subdomain_of(zone.origin()) {
                continue;
            }
            if let Some(node) = zone.node(&target.key()) {
                for rtype in [RType::A, RType::AAAA] {
                    if let Some(set) = node.rrset(rtype) {
                        for data in &set.data {
                            writer.record(Section::Additional, &record(&node.name, set.ttl, data));
                        }
                    }
                }
            }
        }
        let header = writer.header_mut();
        if aa {
            header.flags |= Header::AA;
        }
        header.flags |= code;
    }
}

/// The largest response to `query` over `transport`.
fn size_limit(query: &Query, transport: Transport) -> usize {
    match (transport, query.edns) {
        (Transport::Tcp, _) => MAX_TCP,
        (Transport::Udp, Some(edns)) => usize::from(edns.udp_size).clamp(CLASSIC_UDP, MAX_UDP),
        (Transport::Udp, None) => CLASSIC_UDP,
    }
}

/// A per-core cache of finished answers, keyed by everything an answer depends on (the
/// name, type and class asked for, the size limit, whether the query had EDNS): a hit is
/// the cached bytes with the query's id, RD and CD bits, and question name (its case)
/// copied in. Zones do not change while they are served, so entries never go stale.
///
/// Bounded by bytes: when an insert would pass the bound, the cache is emptied first (a
/// flood of distinct names costs what it would without a cache, and memory stays bounded).
#[derive(Debug)]
pub struct AnswerCache {
    /// aHash, seeded at random: the keys come from the network (see Cargo.toml).
    entries: HashMap<Box<[u8]>, Box<[u8]>, ahash::RandomState>,
    /// The query being answered, parsed in place (see [`parse_query_into`]).
    query: Query,
    bytes: usize,
    max_bytes: usize,
    hits: u64,
    misses: u64,
}

impl AnswerCache {
    /// A cache of at most about `max_bytes` of keys and answers.
    #[must_use]
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: HashMap::with_hasher(ahash::RandomState::new()),
            query: Query::default(),
            bytes: 0,
            max_bytes,
            hits: 0,
            misses: 0,
        }
    }

    /// Answers found here and answers made.
    #[must_use]
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// [`Catalog::answer_into`], from the cache when the same question was answered before.
    pub fn answer_into(
        &mut self,
        catalog: &Catalog,
        msg: &[u8],
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> bool {
        if parse_query_into(msg, &mut self.query).is_err() {
            return catalog.answer_into(msg, transport, out);
        }
        let query = &self.query;
        if query.edns.is_some_and(|e| e.version != 0) {
            return catalog.answer_into(msg, transport, out);
        }
        let limit = size_limit(query, transport);
        let mut key = [0u8; 9 + 255];
        key[0..2].copy_from_slice(&query.qtype.0.to_be_bytes());
        key[2..4].copy_from_slice(&query.qclass.to_be_bytes());
        key[4..8].copy_from_slice(&(limit as u32).to_be_bytes());
        key[8] = u8::from(query.edns.is_some());
        let name = query.qname.wire();
        key[9..9 + name.len()].copy_from_slice(name);
        let key = &key[..9 + name.len()];
        let name_at = 12..12 + name.len();
        let echo = |out: &mut Vec<u8>| {
            out[0..2].copy_from_slice(&query.header.id.to_be_bytes());
            let flags = query.header.flags & (Header::RD | Header::CD);
            out[2] |= (flags >> 8) as u8;
            out[3] |= flags as u8;
            out[name_at.clone()].copy_from_slice(&msg[name_at.clone()]);
        };
        if let Some(answer) = self.entries.get(key) {
            self.hits += 1;
            out.clear();
            out.extend_from_slice(answer);
            echo(out);
            return true;
        }
        self.misses += 1;
        *out = catalog.respond(msg, query, transport, std::mem::take(out));
        // The template: no id, no RD or CD, the question name as the key has it.
        let mut template: Box<[u8]> = out.as_slice().into();
        if template.len() >= name_at.end {
            template[0..2].fill(0);
            template[2] &= !((Header::RD >> 8) as u8);
            template[3] &= !(Header::CD as u8);
            template[name_at].copy_from_slice(name);
            let size = key.len() + template.len();
            if self.bytes + size > self.max_bytes {
                self.entries.clear();
                self.bytes = 0;
            }
            if size <= self.max_bytes {
                self.bytes += size;
                self.entries.insert(key.into(), template);
            }
        }
        true
    }
}

/// Writes the OPT record when the query had one.
fn finish_edns(writer: &mut MessageWriter, query: &Query) {
    if query.edns.is_some() {
        writer.opt(Edns {
            udp_size: OUR_UDP_SIZE,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
        });
    }
}

fn on_label_boundary(key: &[u8], at: usize) -> bool {
    let mut pos = 0;
    while pos < at {
        pos += 1 + usize::from(key[pos]);
    }
    pos == at
}

fn record(owner: &Name, ttl: u32, data: &RData) -> Record {
    Record {
        name: owner.clone(),
        class: CLASS_IN,
        ttl,
        data: data.clone(),
    }
}

/// The SOA of a negative answer, its TTL capped by the SOA minimum (RFC 2308 §3).
fn negative(zone: &Zone, writer: &mut MessageWriter) {
    let (ttl, soa) = zone.soa();
    writer.record(
        Section::Authority,
        &Record {
            name: zone.origin().clone(),
            class: CLASS_IN,
            ttl: ttl.min(soa.minimum),
            data: RData::Soa(soa.clone()),
        },
    );
}

/// Names whose addresses belong in the additional section.
fn collect_targets(data: &RData, out: &mut Vec<Name>) {
    let target = match data {
        RData::Ns(n) | RData::Mx { exchange: n, .. } | RData::Srv { target: n, .. } => n,
        _ => return,
    };
    if !out.iter().any(|o| o.eq_ignore_case(target)) {
        out.push(target.clone());
    }
}

/// RFC 1034 §4.3.2 step 3 for one name in one zone.
fn lookup<'a>(zone: &'a Zone, name: &Name, key: &[u8], qtype: RType) -> Found<'a> {
    // A delegation between the apex and the name (the name itself included, unless it asks
    // for the cut's own DS/NS-side data as a parent: we are not the child).
    let origin_len = zone.origin().wire().len();
    let mut at = 0;
    while key.len() - at > origin_len {
        if let Some(node) = zone.node(&key[at..])
            && node.rrset(RType::NS).is_some()
        {
            return Found::Referral(node);
        }
        at += 1 + usize::from(key[at]);
    }
    match zone.node(key) {
        Some(node) => answer_at(node, &node.name, qtype),
        None if zone.is_empty_non_terminal(key) => Found::NoData,
        None => wildcard(zone, name, key, qtype),
    }
}

/// What a node holds for `qtype`, with `owner` as the records' owner (the name asked for,
/// for a wildcard).
fn answer_at<'a>(node: &'a Node, owner: &Name, qtype: RType) -> Found<'a> {
    if qtype == RType::ANY {
        return Found::Answer(node.rrsets.iter().map(|s| (owner.clone(), s)).collect());
    }
    if let Some(set) = node.rrset(qtype) {
        return Found::Answer(vec![(owner.clone(), set)]);
    }
    if let Some(set) = node.rrset(RType::CNAME)
        && let Some(RData::Cname(target)) = set.data.first()
    {
        return Found::Alias(node, target.clone());
    }
    Found::NoData
}

/// RFC 4592: the closest encloser's `*` child answers for names that do not exist.
fn wildcard<'a>(zone: &'a Zone, name: &Name, key: &[u8], qtype: RType) -> Found<'a> {
    let origin_len = zone.origin().wire().len();
    let mut at = 1 + usize::from(key[0]);
    loop {
        let encloser = &key[at..];
        if zone.node(encloser).is_some()
            || zone.is_empty_non_terminal(encloser)
            || encloser.len() == origin_len
        {
            let mut star = Vec::with_capacity(encloser.len() + 2);
            star.extend_from_slice(&[1, b'*']);
            star.extend_from_slice(encloser);
            lowercase_wire(&mut star);
            return match zone.node(&star) {
                Some(node) => match answer_at(node, name, qtype) {
                    // The synthesized CNAME's owner is the name asked for.
                    Found::Alias(node, target) => Found::Alias(node, target),
                    other => other,
                },
                None => Found::NxDomain,
            };
        }
        if encloser.len() <= origin_len {
            return Found::NxDomain;
        }
        at += 1 + usize::from(key[at]);
    }
}

#[cfg(test)]
mod tests;
