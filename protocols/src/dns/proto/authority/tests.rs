//! Answers from the example zone: positive, CNAME chains, negative, wildcard, referral,
//! additional data, EDNS and truncation.

use std::net::Ipv4Addr;

use super::*;
use crate::dns::proto::message::tests::query;
use crate::dns::proto::message::{Message, opcode};
use crate::dns::proto::zone::tests::EXAMPLE;

fn catalog() -> Catalog {
    let mut catalog = Catalog::new();
    catalog
        .add(Zone::parse(EXAMPLE, "example.zone", None).unwrap())
        .unwrap();
    catalog
}

fn ask(
    catalog: &Catalog,
    name: &str,
    qtype: RType,
    edns: Option<u16>,
    transport: Transport,
) -> (Vec<u8>, Message) {
    let bytes = catalog
        .answer(&query(0x4242, name, qtype, edns), transport)
        .expect("an answer");
    let message = Message::parse(&bytes).expect("a well-formed response");
    assert_eq!(message.header.id, 0x4242);
    assert!(message.header.has(Header::QR));
    assert!(message.header.has(Header::RD), "RD echoed");
    (bytes, message)
}

fn udp(name: &str, qtype: RType) -> Message {
    ask(&catalog(), name, qtype, None, Transport::Udp).1
}

fn a(text: &str) -> RData {
    RData::A(text.parse::<Ipv4Addr>().unwrap())
}

#[test]
fn a_positive_answer_is_authoritative() {
    let m = udp("web.example.com.", RType::A);
    assert!(m.header.has(Header::AA));
    assert_eq!(m.rcode(), rcode::NOERROR);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].data, a("192.0.2.20"));
    assert_eq!(m.answers[0].ttl, 3600);
}

#[test]
fn the_question_is_echoed_as_asked() {
    let (bytes, m) = ask(
        &catalog(),
        "WEB.Example.COM.",
        RType::A,
        None,
        Transport::Udp,
    );
    assert_eq!(m.questions[0].name.to_string(), "WEB.Example.COM.");
    assert_eq!(&bytes[13..16], b"WEB");
    assert_eq!(
        m.answers[0].name.to_string(),
        "WEB.Example.COM.",
        "the answer points at the question"
    );
}

#[test]
fn cname_chains_are_followed_inside_the_zone() {
    let m = udp("www.example.com.", RType::A);
    let data: Vec<_> = m.answers.iter().map(|r| r.data.clone()).collect();
    assert_eq!(
        data,
        vec![
            RData::Cname(Name::parse("web.example.com.", None).unwrap()),
            a("192.0.2.20")
        ]
    );
    // A loop stops; a CNAME out of the zone is left to the resolver.
    assert_eq!(udp("loop1.example.com.", RType::A).answers.len(), 2);
    let out = udp("out.example.com.", RType::A);
    assert_eq!(out.answers.len(), 1);
    assert_eq!(out.rcode(), rcode::NOERROR);
    // Asking for the CNAME itself.
    assert_eq!(udp("www.example.com.", RType::CNAME).answers.len(), 1);
}

#[test]
fn negative_answers_carry_the_soa_with_the_negative_ttl() {
    let nx = udp("nothing.example.com.", RType::A);
    assert_eq!(nx.rcode(), rcode::NXDOMAIN);
    assert!(nx.header.has(Header::AA));
    assert!(nx.answers.is_empty());
    assert_eq!(nx.authority.len(), 1);
    assert_eq!(nx.authority[0].rtype(), RType::SOA);
    assert_eq!(nx.authority[0].ttl, 300, "min(SOA TTL, minimum)");
    let nodata = udp("mail.example.com.", RType::TXT);
    assert_eq!(nodata.rcode(), rcode::NOERROR);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authority[0].rtype(), RType::SOA);
    // An empty non-terminal exists: NODATA, not NXDOMAIN.
    assert_eq!(udp("ent.example.com.", RType::A).rcode(), rcode::NOERROR);
}

#[test]
fn wildcards_answer_for_names_that_do_not_exist() {
    let m = udp("anything.wild.example.com.", RType::A);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.answers[0].name.to_string(), "anything.wild.example.com.");
    assert_eq!(m.answers[0].data, a("192.0.2.99"));
    assert_eq!(
        udp("anything.wild.example.com.", RType::MX).rcode(),
        rcode::NOERROR
    );
}

#[test]
fn below_a_delegation_the_answer_is_a_referral_with_glue() {
    let m = udp("host.sub.example.com.", RType::A);
    assert!(!m.header.has(Header::AA), "a referral is not authoritative");
    assert!(m.answers.is_empty());
    assert_eq!(m.authority[0].rtype(), RType::NS);
    assert_eq!(m.additional[0].data, a("192.0.2.53"), "glue");
}

#[test]
fn targets_get_their_addresses_in_additional() {
    let m = udp("example.com.", RType::MX);
    assert_eq!(m.answers.len(), 1);
    let types: Vec<_> = m.additional.iter().map(Record::rtype).collect();
    assert_eq!(types, vec![RType::A, RType::AAAA]);
}

#[test]
fn names_outside_every_zone_are_refused() {
    let m = udp("example.org.", RType::A);
    assert_eq!(m.rcode(), rcode::REFUSED);
    assert!(!m.header.has(Header::AA));
    assert_eq!(udp("com.", RType::A).rcode(), rcode::REFUSED);
    assert_eq!(udp("example.com.", RType::AXFR).rcode(), rcode::REFUSED);
}

#[test]
fn edns_is_answered_and_a_version_other_than_0_is_badvers() {
    let (_, m) = ask(
        &catalog(),
        "web.example.com.",
        RType::A,
        Some(4096),
        Transport::Udp,
    );
    assert_eq!(m.edns.map(|e| e.udp_size), Some(OUR_UDP_SIZE));
    let mut q = query(5, "web.example.com.", RType::A, Some(4096));
    // OPT TTL field: version at its second byte.
    let len = q.len();
    q[len - 5] = 1;
    let bytes = catalog().answer(&q, Transport::Udp).unwrap();
    let m = Message::parse(&bytes).unwrap();
    assert_eq!(m.rcode(), rcode::BADVERS);
}

#[test]
fn responses_over_the_size_limit_are_truncated() {
    let mut zone_text = String::from(EXAMPLE);
    for i in 0..40 {
        zone_text.push_str(&format!("big IN A 198.51.100.{i}\n"));
    }
    let mut catalog = Catalog::new();
    catalog
        .add(Zone::parse(&zone_text, "big.zone", None).unwrap())
        .unwrap();
    let (bytes, m) = ask(&catalog, "big.example.com.", RType::A, None, Transport::Udp);
    assert!(m.header.has(Header::TC));
    assert!(bytes.len() <= 512);
    let (_, m) = ask(
        &catalog,
        "big.example.com.",
        RType::A,
        Some(4096),
        Transport::Udp,
    );
    assert!(!m.header.has(Header::TC));
    assert_eq!(m.answers.len(), 40);
    let (_, m) = ask(&catalog, "big.example.com.", RType::A, None, Transport::Tcp);
    assert_eq!(m.answers.len(), 40);
}

#[test]
fn bad_queries_get_formerr_or_notimp_and_responses_get_nothing() {
    let catalog = catalog();
    let mut bad = query(77, "web.example.com.", RType::A, None);
    bad.push(1);
    let m = Message::parse(&catalog.answer(&bad, Transport::Udp).unwrap()).unwrap();
    assert_eq!((m.header.id, m.rcode()), (77, rcode::FORMERR));
    let mut update = query(78, "web.example.com.", RType::A, None);
    update[2] |= opcode::UPDATE << 3;
    let m = Message::parse(&catalog.answer(&update, Transport::Udp).unwrap()).unwrap();
    assert_eq!(m.rcode(), rcode::NOTIMP);
    let mut response = query(79, "web.example.com.", RType::A, None);
    response[2] |= 0x80;
    assert!(catalog.answer(&response, Transport::Udp).is_none());
    assert!(catalog.answer(&[1, 2, 3], Transport::Udp).is_none());
}

#[test]
fn any_returns_every_type_at_the_name() {
    let m = udp("example.com.", RType::ANY);
    let mut types: Vec<_> = m.answers.iter().map(Record::rtype).collect();
    types.dedup();
    assert!(types.len() >= 5, "{types:?}");
}

#[test]
fn cached_answers_equal_fresh_ones_whatever_the_id_case_and_flags() {
    let catalog = catalog();
    let mut cache = AnswerCache::new(1 << 20);
    let names = [
        ("web.example.com.", RType::A),
        ("WWW.Example.COM.", RType::A),
        ("www.example.com.", RType::A),
        ("nothing.example.com.", RType::A),
        ("example.com.", RType::MX),
        ("example.org.", RType::A),
        ("x.WILD.example.com.", RType::A),
        ("host.sub.example.com.", RType::A),
    ];
    for round in 0..3u16 {
        for (i, (name, qtype)) in names.iter().enumerate() {
            for edns in [None, Some(1232), Some(4096)] {
                let mut q = query(round * 100 + i as u16, name, *qtype, edns);
                if round == 1 {
                    q[2] &= !((Header::RD >> 8) as u8);
                }
                if round == 2 {
                    q[3] |= Header::CD as u8;
                }
                for transport in [Transport::Udp, Transport::Tcp] {
                    let fresh = catalog.answer(&q, transport).unwrap();
                    let mut cached = Vec::new();
                    assert!(cache.answer_into(&catalog, &q, transport, &mut cached));
                    assert_eq!(
                        cached, fresh,
                        "{name} {qtype:?} {edns:?} {transport:?} round {round}"
                    );
                }
            }
        }
    }
    let (hits, misses) = cache.stats();
    assert!(hits > misses, "{hits} hits, {misses} misses");
}

#[test]
fn the_cache_stays_within_its_bytes() {
    let catalog = catalog();
    let mut cache = AnswerCache::new(2_000);
    for i in 0..500 {
        let q = query(1, &format!("n{i}.example.com."), RType::A, None);
        let mut out = Vec::new();
        assert!(cache.answer_into(&catalog, &q, Transport::Udp, &mut out));
        assert!(cache.bytes <= 2_000);
    }
}
