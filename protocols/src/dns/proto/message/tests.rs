//! Messages: queries read as a server needs them, whole messages, and written ones read back.

use std::net::Ipv4Addr;

use super::*;
use crate::dns::proto::rdata::Soa;

/// A query for `name`/`qtype`, with an OPT record when `edns` is given.
pub(crate) fn query(id: u16, name: &str, qtype: RType, edns: Option<u16>) -> Vec<u8> {
    let header = Header {
        id,
        flags: Header::RD,
        ..Header::default()
    };
    let mut writer = MessageWriter::new(Vec::new(), header, 65_535);
    let name = Name::parse(name, None).expect("a name");
    writer.question_raw(name.wire(), qtype, CLASS_IN);
    if let Some(size) = edns {
        writer.opt(Edns {
            udp_size: size,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
        });
    }
    writer.finish()
}

#[test]
fn a_query_is_read_with_its_question_as_sent() {
    let msg = query(7, "WWW.Example.COM.", RType::AAAA, Some(1232));
    let q = parse_query(&msg).expect("a query");
    assert_eq!(q.header.id, 7);
    assert_eq!(q.qtype, RType::AAAA);
    assert_eq!(q.qname.to_name().to_string(), "www.example.com.");
    assert_eq!(
        &msg[q.question.clone()][1..4],
        b"WWW",
        "case kept in the raw question"
    );
    assert_eq!(q.edns.map(|e| e.udp_size), Some(1232));
}

#[test]
fn a_reused_query_reads_each_message_whole() {
    let mut q = Query::default();
    let long = query(1, "a-longer-name.example.", RType::AAAA, Some(1232));
    parse_query_into(&long, &mut q).expect("a query");
    // An error leaves parts behind; the next query read replaces every field.
    let mut bad = long.clone();
    bad.push(0);
    assert!(parse_query_into(&bad, &mut q).is_err());
    let short = query(2, "B.example.", RType::A, None);
    parse_query_into(&short, &mut q).expect("a query");
    let fresh = parse_query(&short).expect("a query");
    assert_eq!(q.header, fresh.header);
    assert_eq!(q.qname.wire(), fresh.qname.wire());
    assert_eq!(q.qname.to_name().to_string(), "b.example.");
    assert_eq!(
        (q.qtype, q.qclass, q.question.clone(), q.edns),
        (fresh.qtype, fresh.qclass, fresh.question, None)
    );
}

#[test]
fn malformed_queries_name_their_answer() {
    let good = query(9, "a.example.", RType::A, None);
    // Short header: no answer at all.
    assert_eq!(parse_query(&good[..5]).unwrap_err().id, None);
    // A response: never answered.
    let mut response = good.clone();
    response[2] |= 0x80;
    assert_eq!(parse_query(&response).unwrap_err().id, None);
    // Two questions, a truncated question, trailing bytes: FORMERR with the id.
    let mut two = good.clone();
    two[5] = 2;
    assert_eq!(parse_query(&two).unwrap_err().rcode, rcode::FORMERR);
    assert_eq!(
        parse_query(&good[..good.len() - 1]).unwrap_err().rcode,
        rcode::FORMERR
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(parse_query(&trailing).unwrap_err().rcode, rcode::FORMERR);
    // An UPDATE: NOTIMP.
    let mut update = good.clone();
    update[2] |= opcode::UPDATE << 3;
    let error = parse_query(&update).unwrap_err();
    assert_eq!((error.rcode, error.id), (rcode::NOTIMP, Some(9)));
}

#[test]
fn written_records_compress_and_read_back() {
    let origin = Name::parse("example.com.", None).unwrap();
    let www = Name::parse("www.example.com.", None).unwrap();
    let header = Header {
        id: 1,
        flags: Header::QR | Header::AA,
        ..Header::default()
    };
    let mut writer = MessageWriter::new(Vec::new(), header, 65_535);
    writer.question_raw(www.wire(), RType::A, CLASS_IN);
    let records = [
        Record {
            name: www.clone(),
            class: CLASS_IN,
            ttl: 300,
            data: RData::A(Ipv4Addr::new(192, 0, 2, 1)),
        },
        Record {
            name: origin.clone(),
            class: CLASS_IN,
            ttl: 3600,
            data: RData::Soa(Soa {
                mname: Name::parse("ns1.example.com.", None).unwrap(),
                rname: Name::parse("admin.example.com.", None).unwrap(),
                serial: 1,
                refresh: 2,
                retry: 3,
                expire: 4,
                minimum: 5,
            }),
        },
        Record {
            name: www.clone(),
            class: CLASS_IN,
            ttl: 60,
            data: RData::Srv {
                priority: 1,
                weight: 2,
                port: 443,
                target: Name::parse("host.example.com.", None).unwrap(),
            },
        },
        Record {
            name: origin.clone(),
            class: CLASS_IN,
            ttl: 60,
            data: RData::Txt(vec![b"v=spf1".to_vec(), b"x y".to_vec()]),
        },
    ];
    assert!(writer.record(Section::Answer, &records[0]));
    assert!(writer.record(Section::Authority, &records[1]));
    assert!(writer.record(Section::Additional, &records[2]));
    assert!(writer.record(Section::Additional, &records[3]));
    let bytes = writer.finish();
    // www.example.com. in the answer is one pointer to the question.
    let message = Message::parse(&bytes).expect("reads back");
    assert_eq!(message.answers, vec![records[0].clone()]);
    assert_eq!(message.authority, vec![records[1].clone()]);
    assert_eq!(
        message.additional,
        vec![records[2].clone(), records[3].clone()]
    );
    // The answer's owner is a pointer to the question's name (offset 12); the SRV target is
    // not compressed (RFC 2782), the SOA's names are.
    let answer_at = 12 + www.wire().len() + 4;
    assert_eq!(&bytes[answer_at..answer_at + 2], &[0xC0, 12]);
    assert_eq!(bytes.len(), 154, "every name but the SRV target compressed");
}

#[test]
fn a_record_past_the_limit_sets_tc_and_is_left_out() {
    let name = Name::parse("a.example.", None).unwrap();
    let mut writer = MessageWriter::new(Vec::new(), Header::default(), 60);
    writer.question_raw(name.wire(), RType::TXT, CLASS_IN);
    let big = Record {
        name: name.clone(),
        class: CLASS_IN,
        ttl: 1,
        data: RData::Txt(vec![vec![b'x'; 40]]),
    };
    assert!(!writer.record(Section::Answer, &big));
    assert!(writer.is_truncated());
    let bytes = writer.finish();
    let message = Message::parse(&bytes).unwrap();
    assert!(message.header.has(Header::TC));
    assert!(message.answers.is_empty());
    assert!(bytes.len() <= 60);
}

#[test]
fn record_data_that_does_not_fit_its_type_is_refused() {
    // An A record with 3 bytes of data.
    let mut msg = query(1, "a.example.", RType::A, None);
    msg[2] |= 0x80;
    msg[7] = 1; // ancount
    msg.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 3, 1, 2, 3]);
    assert!(matches!(Message::parse(&msg), Err(DnsError::BadRdata(_))));
}
