//! Master files: the syntax, the checks, and every supported type.

use super::*;

pub(crate) const EXAMPLE: &str = r#"
$ORIGIN example.com.
$TTL 1h
@   IN SOA ns1 hostmaster (
        2026120701 ; serial
        2h 15m 1w
        300 )       ; negative TTL
    IN NS  ns1
    IN NS  ns2.example.net.
    IN MX  10 mail
    IN TXT "v=spf1 -all" "second string"
    IN CAA 0 issue "letsencrypt.org"
ns1 IN A 192.0.2.1
mail 600 IN A 192.0.2.10
     IN AAAA 2001:db8::10
www IN CNAME web
web IN A 192.0.2.20
_http._tcp IN SRV 10 5 80 web
loop1 IN CNAME loop2
loop2 IN CNAME loop1
out IN CNAME elsewhere.org.
*.wild IN A 192.0.2.99
deep.below.ent IN A 192.0.2.30
sub IN NS ns.sub
ns.sub IN A 192.0.2.53
2.0.192 IN PTR ns1
opaque IN TYPE65280 \# 3 0a0b0c
"#;

fn zone() -> Zone {
    Zone::parse(EXAMPLE, "example.zone", None).expect("the example zone")
}

fn key(text: &str) -> Box<[u8]> {
    Name::parse(text, None).unwrap().key()
}

#[test]
fn the_example_loads_every_type() {
    let zone = zone();
    assert_eq!(zone.origin().to_string(), "example.com.");
    let (ttl, soa) = zone.soa();
    assert_eq!(
        (
            ttl,
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        (3600, 2026120701, 7200, 900, 604_800, 300)
    );
    let apex = zone.node(&key("example.com.")).unwrap();
    assert_eq!(apex.rrset(RType::NS).unwrap().data.len(), 2);
    let txt = apex.rrset(RType::TXT).unwrap();
    assert_eq!(
        txt.data,
        vec![RData::Txt(vec![
            b"v=spf1 -all".to_vec(),
            b"second string".to_vec()
        ])]
    );
    let mail = zone.node(&key("mail.example.com.")).unwrap();
    assert_eq!(mail.rrset(RType::A).unwrap().ttl, 600);
    assert_eq!(
        mail.rrset(RType::AAAA).unwrap().ttl,
        3600,
        "no TTL given: $TTL's"
    );
    assert!(
        zone.node(&key("_http._tcp.example.com."))
            .unwrap()
            .rrset(RType::SRV)
            .is_some()
    );
    assert!(
        zone.node(&key("opaque.example.com."))
            .unwrap()
            .rrset(RType(65280))
            .is_some()
    );
    assert!(zone.is_empty_non_terminal(&key("below.ent.example.com.")));
    assert!(zone.is_empty_non_terminal(&key("ent.example.com.")));
    assert!(!zone.is_empty_non_terminal(&key("nothing.example.com.")));
}

#[test]
fn errors_name_the_line() {
    let cases = [
        ("$ORIGIN a.\n@ 1 IN A 1.2.3.4\n", "no SOA"),
        (
            "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nx 1 IN A 1.2.3.999\n",
            "t.zone:3:",
        ),
        (
            "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nother.b. 1 IN A 1.2.3.4\n",
            "outside",
        ),
        (
            "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nx 1 IN CNAME y\nx 1 IN A 1.2.3.4\n",
            "CNAME and other",
        ),
        (
            "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nx 1 IN A ( 1.2.3.4\n",
            "without ')'",
        ),
        (
            "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\n$INCLUDE other\n",
            "not supported",
        ),
        (
            "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nx 1 IN FOO y\n",
            "unknown type",
        ),
        ("@ 1 IN SOA n r 1 2 3 4 5\n", "origin"),
        ("$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nx IN A 1.2.3.4\n", ""),
    ];
    for (text, expected) in cases {
        match Zone::parse(text, "t.zone", None) {
            Err(error) => assert!(
                error.to_string().contains(expected),
                "{expected:?}: {error}"
            ),
            Ok(_) if expected.is_empty() => {}
            Ok(_) => panic!("{expected:?}: loaded"),
        }
    }
}

#[test]
fn ttls_take_units() {
    assert_eq!(parse_ttl("3600"), Some(3600));
    assert_eq!(parse_ttl("1h30m"), Some(5400));
    assert_eq!(parse_ttl("1w"), Some(604_800));
    assert_eq!(parse_ttl("1x"), None);
    assert_eq!(parse_ttl("99999999999"), None);
}

#[test]
fn quoted_strings_keep_escapes_and_spaces() {
    let text = "$ORIGIN a.\n@ 1 IN SOA n r 1 2 3 4 5\nt 1 IN TXT \"a \\\"quoted\\\" \\059 semi;colon\" bare\n";
    let zone = Zone::parse(text, "t.zone", None).unwrap();
    let txt = zone.node(&key("t.a.")).unwrap().rrset(RType::TXT).unwrap();
    assert_eq!(
        txt.data,
        vec![RData::Txt(vec![
            b"a \"quoted\" ; semi;colon".to_vec(),
            b"bare".to_vec()
        ])]
    );
}
