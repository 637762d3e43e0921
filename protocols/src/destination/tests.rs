use std::net::{IpAddr, Ipv4Addr};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

fn policy(rules: &[(Action, &str)]) -> DestinationPolicy {
    DestinationPolicy::new(
        rules
            .iter()
            .map(|&(action, text)| Rule::parse(action, text).expect("a valid rule"))
            .collect(),
    )
}

use Action::{Allow, Deny};

#[test]
fn numeric_names_denote_their_address() {
    let cases: &[(&str, &str)] = &[
        ("127.0.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F.0x0.0.01", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("127.000.000.001", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0x", "0.0.0.0"),
        ("0.0", "0.0.0.0"),
        ("10.1", "10.0.0.1"),
        ("169.254.43518", "169.254.169.254"),
        ("4294967295", "255.255.255.255"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("[::]", "::"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::ffff:7f00:1", "127.0.0.1"),
        ("0:0:0:0:0:ffff:7f00:1", "127.0.0.1"),
        ("::ffff:0.0.0.0", "0.0.0.0"),
        ("::127.0.0.1", "127.0.0.1"),
        ("[::a00:1]", "10.0.0.1"),
        ("2001:db8::1", "2001:db8::1"),
    ];
    for &(text, want) in cases {
        assert_eq!(Host::parse(text), Host::Addr(ip(want)), "{text:?}");
    }
}

#[test]
fn other_hosts_are_names() {
    let cases: &[(&str, &str)] = &[
        ("LocalHost.", "localhost"),
        ("Example.COM", "example.com"),
        ("1.2.3.4.5", "1.2.3.4.5"),
        ("08.0.0.1", "08.0.0.1"),
        ("0x1g", "0x1g"),
        ("4294967296", "4294967296"),
        ("256.1.1.1", "256.1.1.1"),
        ("1.16777216", "1.16777216"),
        ("1.2.65536", "1.2.65536"),
        ("+1", "+1"),
        ("-1", "-1"),
        (" 1", " 1"),
        ("127.0.0.1 x", "127.0.0.1 x"),
        ("127..1", "127..1"),
        ("", ""),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("[127.0.0.1]", "[127.0.0.1]"),
    ];
    for &(text, want) in cases {
        assert_eq!(Host::parse(text), Host::Name(want.into()), "{text:?}");
    }
}

#[test]
fn the_default_denies_every_special_address_in_every_form() {
    let denied: &[(&str, AddressClass)] = &[
        ("127.0.0.1", AddressClass::Loopback),
        ("127.255.255.254", AddressClass::Loopback),
        ("::1", AddressClass::Loopback),
        ("::ffff:127.0.0.1", AddressClass::Loopback),
        ("::127.0.0.1", AddressClass::Loopback),
        ("64:ff9b::7f00:1", AddressClass::Loopback),
        ("2002:7f00:1::", AddressClass::Loopback),
        ("0.0.0.0", AddressClass::Unspecified),
        ("0.1.2.3", AddressClass::Unspecified),
        ("::", AddressClass::Unspecified),
        ("::ffff:0.0.0.0", AddressClass::Unspecified),
        ("10.1.2.3", AddressClass::Private),
        ("172.16.0.1", AddressClass::Private),
        ("172.31.255.255", AddressClass::Private),
        ("192.168.1.1", AddressClass::Private),
        ("::ffff:10.0.0.1", AddressClass::Private),
        ("::ffff:192.168.0.1", AddressClass::Private),
        ("fc00::1", AddressClass::Private),
        ("fd12:3456::1", AddressClass::Private),
        ("fec0::1", AddressClass::Private),
        ("64:ff9b:1::1", AddressClass::Private),
        ("100.64.0.1", AddressClass::Cgnat),
        ("100.127.255.255", AddressClass::Cgnat),
        ("::ffff:100.64.0.1", AddressClass::Cgnat),
        ("169.254.169.254", AddressClass::LinkLocal),
        ("::ffff:169.254.169.254", AddressClass::LinkLocal),
        ("fe80::1", AddressClass::LinkLocal),
        ("224.0.0.1", AddressClass::Multicast),
        ("239.255.255.250", AddressClass::Multicast),
        ("ff02::1", AddressClass::Multicast),
        ("::ffff:224.0.0.1", AddressClass::Multicast),
        ("255.255.255.255", AddressClass::Broadcast),
        ("::ffff:255.255.255.255", AddressClass::Broadcast),
        ("240.0.0.1", AddressClass::Reserved),
        ("192.0.0.8", AddressClass::Reserved),
        ("198.18.0.1", AddressClass::Reserved),
        ("100::1", AddressClass::Reserved),
    ];
    let policy = DestinationPolicy::default();
    for &(text, class) in denied {
        let verdict = policy.check(None, ip(text), 80);
        assert!(!verdict.allowed, "{text} allowed");
        assert_eq!(verdict.why, Why::Class(class), "{text}");
        assert_eq!(classify(ip(text)), Some(class), "{text}");
    }
    let allowed = [
        "8.8.8.8",
        "1.1.1.1",
        "172.32.0.1",
        "172.15.255.255",
        "100.128.0.1",
        "100.63.255.255",
        "192.0.1.1",
        "198.20.0.1",
        "223.255.255.255",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
        "2606:4700::1111",
    ];
    for text in allowed {
        let verdict = policy.check(None, ip(text), 80);
        assert!(verdict.allowed, "{text}: {verdict}");
        assert_eq!(verdict.why, Why::Default);
    }
}

#[test]
fn numeric_names_are_checked_as_their_address_before_any_lookup() {
    let policy = DestinationPolicy::default();
    for name in [
        "0",
        "2130706433",
        "0x7f.1",
        "127.1",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "::1",
        "0x7f000001",
        "127.0.0.1.",
        "169.254.43518",
    ] {
        let verdict = policy
            .check_name(name, 80)
            .unwrap_or_else(|| panic!("{name:?} needs a lookup"));
        assert!(!verdict.allowed, "{name:?} allowed");
    }
    // An ordinary name depends on what it resolves to ...
    assert_eq!(policy.check_name("localhost", 80), None);
    assert_eq!(policy.check_name("example.com", 80), None);
    // ... and each resolved address is checked with it: a name resolving to 127.0.0.1 is
    // loopback.
    let verdict = policy.check(Some("example.com"), ip("127.0.0.1"), 80);
    assert_eq!(verdict.why, Why::Class(AddressClass::Loopback));
    assert!(
        policy
            .check(Some("example.com"), ip("93.184.215.14"), 80)
            .allowed
    );
}

#[test]
fn an_allow_rule_opens_one_service_in_every_form() {
    let policy = policy(&[(Allow, "127.0.0.1:8080")]);
    for (host, port, allowed) in [
        ("127.0.0.1", 8080, true),
        ("::ffff:127.0.0.1", 8080, true),
        ("::127.0.0.1", 8080, true),
        ("127.0.0.1", 22, false),
        ("127.0.0.2", 8080, false),
        ("::1", 8080, false),
    ] {
        let verdict = policy.check(None, ip(host), port);
        assert_eq!(verdict.allowed, allowed, "{host}:{port}: {verdict}");
    }
    for (name, port, allowed) in [
        ("2130706433", 8080, true),
        ("127.1", 8080, true),
        ("0x7f.1", 8080, true),
        ("[::ffff:127.0.0.1]", 8080, true),
        ("2130706433", 22, false),
        ("0", 8080, false),
    ] {
        let verdict = policy.check_name(name, port).expect("numeric");
        assert_eq!(verdict.allowed, allowed, "{name}:{port}: {verdict}");
    }
}

#[test]
fn the_first_matching_rule_decides() {
    type Case<'a> = (&'a [(Action, &'a str)], Option<&'a str>, &'a str, u16, bool);
    let cases: &[Case<'_>] = &[
        (
            &[(Deny, "10.0.0.5"), (Allow, "10.0.0.0/8")],
            None,
            "10.0.0.5",
            1,
            false,
        ),
        (
            &[(Deny, "10.0.0.5"), (Allow, "10.0.0.0/8")],
            None,
            "10.0.0.6",
            1,
            true,
        ),
        (
            &[(Allow, "10.0.0.0/8"), (Deny, "10.0.0.5")],
            None,
            "10.0.0.5",
            1,
            true,
        ),
        (&[(Deny, "*:25")], None, "8.8.8.8", 25, false),
        (&[(Deny, "*:25")], None, "8.8.8.8", 80, true),
        (&[(Deny, "*")], None, "8.8.8.8", 80, false),
        (&[(Allow, "loopback")], None, "127.0.0.1", 1, true),
        (&[(Allow, "loopback")], None, "::1", 1, true),
        (&[(Allow, "loopback")], None, "::ffff:127.0.0.1", 1, true),
        (&[(Allow, "loopback")], None, "10.0.0.1", 1, false),
        (&[(Allow, "private:443")], None, "10.0.0.1", 443, true),
        (&[(Allow, "private:443")], None, "fd00::1", 443, true),
        (&[(Allow, "private:443")], None, "10.0.0.1", 80, false),
        (
            &[(Deny, "cgnat"), (Allow, "*")],
            None,
            "100.64.1.1",
            1,
            false,
        ),
        (
            &[(Allow, "127.0.0.1:8000-8999")],
            None,
            "127.0.0.1",
            8500,
            true,
        ),
        (
            &[(Allow, "127.0.0.1:8000-8999")],
            None,
            "127.0.0.1",
            9000,
            false,
        ),
        (
            &[(Allow, "::ffff:127.0.0.0/104")],
            None,
            "127.9.9.9",
            1,
            true,
        ),
        (
            &[(Allow, "[::ffff:127.0.0.1]:80")],
            None,
            "127.0.0.1",
            80,
            true,
        ),
        (&[(Allow, "[::1]:22")], None, "::1", 22, true),
        (&[(Allow, "fc00::/7")], None, "fdff::1", 1, true),
        (&[(Allow, "0.0.0.0/0")], None, "192.168.0.1", 1, true),
        (&[(Allow, "0.0.0.0/0")], None, "fc00::1", 1, false),
        (
            &[(Allow, "*.internal")],
            Some("db.internal"),
            "10.0.0.1",
            5432,
            true,
        ),
        (
            &[(Allow, "*.internal")],
            Some("a.b.internal"),
            "127.0.0.1",
            1,
            true,
        ),
        (
            &[(Allow, "*.internal")],
            Some("internal"),
            "10.0.0.1",
            1,
            false,
        ),
        (
            &[(Allow, "*.internal")],
            Some("xinternal"),
            "10.0.0.1",
            1,
            false,
        ),
        (&[(Allow, "*.internal")], None, "10.0.0.1", 1, false),
        (
            &[(Allow, "db.example.com:5432")],
            Some("db.example.com"),
            "10.1.1.1",
            5432,
            true,
        ),
        (
            &[(Allow, "DB.Example.com.")],
            Some("db.example.com"),
            "10.1.1.1",
            1,
            true,
        ),
        (
            &[(Allow, "db.example.com:5432")],
            Some("db.example.com"),
            "10.1.1.1",
            22,
            false,
        ),
        (
            &[(Allow, "*.internal"), (Deny, "*")],
            Some("example.com"),
            "8.8.8.8",
            80,
            false,
        ),
        (
            &[(Allow, "*.internal"), (Deny, "*")],
            Some("x.internal"),
            "8.8.8.8",
            80,
            true,
        ),
        (
            &[(Deny, "evil.example")],
            Some("evil.example"),
            "8.8.8.8",
            80,
            false,
        ),
    ];
    for &(rules, name, host, port, allowed) in cases {
        let policy = policy(rules);
        let verdict = policy.check(name, ip(host), port);
        assert_eq!(
            verdict.allowed, allowed,
            "{rules:?} {name:?} {host}:{port}: {verdict}"
        );
    }
}

#[test]
fn check_name_decides_only_what_does_not_depend_on_the_address() {
    let p = policy(&[(Allow, "*.internal"), (Deny, "*.example")]);
    assert!(p.check_name("db.internal", 1).expect("decided").allowed);
    assert!(!p.check_name("x.example", 1).expect("decided").allowed);
    assert_eq!(p.check_name("other.org", 1), None);
    // An address rule first: the name's addresses matter.
    let p = policy(&[(Allow, "10.0.0.0/8"), (Allow, "*.internal")]);
    assert_eq!(p.check_name("db.internal", 1), None);
    // A port outside an address rule's range skips it.
    let p = policy(&[(Allow, "10.0.0.0/8:443"), (Deny, "*")]);
    assert!(!p.check_name("x.org", 80).expect("decided").allowed);
    assert_eq!(p.check_name("x.org", 443), None);
    // The name rule also holds for every address the name resolves to.
    let p = policy(&[(Deny, "*.example")]);
    assert!(!p.check(Some("x.example"), ip("8.8.8.8"), 1).allowed);
}

#[test]
fn allow_all_allows_everything() {
    let policy = DestinationPolicy::dangerous_allow_all();
    assert!(policy.check(None, ip("127.0.0.1"), 22).allowed);
    assert!(policy.check_name("localhost", 22).expect("decided").allowed);
    assert!(
        policy
            .check_name("2130706433", 22)
            .expect("decided")
            .allowed
    );
}

#[test]
fn bad_rules_say_why() {
    let cases: &[(&str, RuleError)] = &[
        ("", RuleError::Empty),
        ("  ", RuleError::Empty),
        (
            "127.0.0.1:99999",
            RuleError::BadPort {
                text: "99999".into(),
            },
        ),
        ("example.com:", RuleError::BadPort { text: "".into() }),
        ("*:+5", RuleError::BadPort { text: "+5".into() }),
        (
            "127.0.0.1:90-80",
            RuleError::BackwardsPorts {
                first: 90,
                last: 80,
            },
        ),
        (
            "10.0.0.0/33",
            RuleError::BadPrefix {
                text: "10.0.0.0/33".into(),
                max: 32,
            },
        ),
        (
            "10.0.0.0/+8",
            RuleError::BadPrefix {
                text: "10.0.0.0/+8".into(),
                max: 32,
            },
        ),
        (
            "fc00::/129",
            RuleError::BadPrefix {
                text: "fc00::/129".into(),
                max: 128,
            },
        ),
        (
            "10.0.0.1/8",
            RuleError::HostBits {
                text: "10.0.0.1/8".into(),
                network: "10.0.0.0/8".into(),
            },
        ),
        (
            "127.1",
            RuleError::LegacyAddress {
                text: "127.1".into(),
                canonical: Ipv4Addr::new(127, 0, 0, 1),
            },
        ),
        (
            "2130706433:80",
            RuleError::LegacyAddress {
                text: "2130706433".into(),
                canonical: Ipv4Addr::new(127, 0, 0, 1),
            },
        ),
        (
            "0x7f.0.0.1/32",
            RuleError::LegacyAddress {
                text: "0x7f.0.0.1".into(),
                canonical: Ipv4Addr::new(127, 0, 0, 1),
            },
        ),
    ];
    for (text, want) in cases {
        assert_eq!(Rule::allow(text).as_ref(), Err(want), "{text:?}");
    }
    for text in [
        "exa mple.com",
        "foo.*",
        "*.",
        "a..b",
        "[::1",
        "[::1]x",
        "1.2.3.4.5",
        "gggg::1",
        "host/8",
        "[1.2.3.4]:80",
    ] {
        assert!(
            matches!(Rule::deny(text), Err(RuleError::BadHost { .. })),
            "{text:?}: {:?}",
            Rule::deny(text)
        );
    }
    let message = Rule::allow("10.0.0.1/8").unwrap_err().to_string();
    assert_eq!(
        message,
        "\"10.0.0.1/8\" has host bits set; did you mean 10.0.0.0/8?"
    );
    let message = Rule::allow("127.1").unwrap_err().to_string();
    assert!(message.contains("write it as 127.0.0.1"), "{message}");
}

#[test]
fn rules_and_verdicts_display_for_logs() {
    let p = policy(&[(Allow, " 127.0.0.1/32:8080 ")]);
    assert_eq!(p.rules()[0].to_string(), "allow 127.0.0.1/32:8080");
    let verdict = p.check(None, ip("127.0.0.1"), 8080);
    assert_eq!(
        verdict.to_string(),
        "allowed by rule \"allow 127.0.0.1/32:8080\""
    );
    let verdict = p.check(None, ip("::ffff:10.0.0.1"), 80);
    assert_eq!(
        verdict.to_string(),
        "denied: private address (default policy)"
    );
    // Peer-supplied names are escaped.
    assert_eq!(
        Host::parse("evil\n\u{1b}[31m.example").to_string(),
        "evil\\n\\u{1b}[31m.example"
    );
}

/// The fuzz target's properties (`fuzz/fuzz_targets/destination.rs`) over 50,000 seeded
/// strings from an alphabet of numeric-address characters.
#[test]
fn generated_hosts_keep_the_invariants() {
    const ALPHABET: &[u8] = b"0123456789abcdefxX.:[]/%* -f";
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let policy = DestinationPolicy::default();
    for _ in 0..50_000 {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let mut bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let len = (bits % 24) as usize;
        let text: String = (0..len)
            .map(|_| {
                bits = bits.rotate_left(5) ^ state;
                char::from(ALPHABET[(bits % ALPHABET.len() as u64) as usize])
            })
            .collect();
        if let Host::Addr(ip) = Host::parse(&text) {
            assert_eq!(canonical_ip(ip), ip, "{text:?}");
            assert_eq!(Host::parse(&ip.to_string()), Host::Addr(ip), "{text:?}");
            let by_name = policy.check_name(&text, 80).expect("decided");
            assert_eq!(by_name, policy.check(None, ip, 80), "{text:?}");
        }
        if let Ok(rule) = Rule::deny(&text) {
            assert_eq!(rule.to_string(), format!("deny {}", text.trim()));
        }
    }
}
