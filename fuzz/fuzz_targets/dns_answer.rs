//! Fuzz target for the authoritative answer: any bytes as a query to a catalog with a zone
//! that has every feature (CNAME chains and loops, wildcards, a delegation, big record sets).
//! Asserts: no panic; an answer reads as a message, echoes the id, is a response, and fits
//! the transport's limit (512 bytes over UDP without EDNS, the client's size with it).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::dns::proto::message::{Header, Message, parse_query};
use ringwork_protocols::dns::proto::{Catalog, Transport, Zone};

const ZONE: &str = r#"$ORIGIN example.com.
$TTL 1h
@ IN SOA ns1 hostmaster 1 2h 15m 1w 300
  IN NS ns1
  IN MX 10 mail
ns1 IN A 192.0.2.1
mail IN A 192.0.2.10
mail IN AAAA 2001:db8::10
www IN CNAME web
web IN A 192.0.2.20
loop1 IN CNAME loop2
loop2 IN CNAME loop1
*.wild IN A 192.0.2.99
*.wild IN TXT "wildcard"
sub IN NS ns.sub
ns.sub IN A 192.0.2.53
a.b.c.ent IN A 192.0.2.7
"#;

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let mut text = ZONE.to_owned();
        for i in 0..80 {
            text.push_str(&format!("big IN A 198.51.100.{i}\n"));
        }
        let mut catalog = Catalog::new();
        catalog
            .add(Zone::parse(&text, "fuzz.zone", None).expect("the zone"))
            .expect("one zone");
        catalog
    })
}

fuzz_target!(|data: &[u8]| {
    for transport in [Transport::Udp, Transport::Tcp] {
        let Some(answer) = catalog().answer(data, transport) else {
            continue;
        };
        let header = Header::parse(&answer).expect("an answer has a header");
        assert!(header.has(Header::QR));
        assert_eq!(header.id, Header::parse(data).expect("answered").id);
        let limit = match (transport, parse_query(data).ok().and_then(|q| q.edns)) {
            (Transport::Tcp, _) => 65_535,
            (Transport::Udp, Some(edns)) => usize::from(edns.udp_size).clamp(512, 4096),
            (Transport::Udp, None) => 512,
        };
        // A question over the limit is echoed anyway (nothing else is added).
        let question = parse_query(data).map_or(0, |q| q.question.len());
        assert!(
            answer.len() <= limit.max(12 + question + 11),
            "{} > {limit}",
            answer.len()
        );
        Message::parse(&answer).expect("an answer reads as a message");
    }
});
