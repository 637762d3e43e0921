//! Fuzz target for the destination policy's text handling: `Host::parse` and `Rule::parse`
//! never panic; a canonical address is a fixed point (`canonical_ip` twice changes nothing,
//! its text parses back to itself); `check_name` on a numeric name agrees with `check` on
//! the address it denotes; a rule that parses displays its trimmed text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::destination::{
    Action, DestinationPolicy, Host, Rule, canonical_ip, classify,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = DestinationPolicy::default();
    match Host::parse(text) {
        Host::Addr(ip) => {
            assert_eq!(canonical_ip(ip), ip, "{text:?}");
            assert_eq!(Host::parse(&ip.to_string()), Host::Addr(ip), "{text:?}");
            let by_name = policy
                .check_name(text, 80)
                .expect("a numeric name is decided");
            assert_eq!(by_name, policy.check(None, ip, 80), "{text:?}");
            assert_eq!(by_name.allowed, classify(ip).is_none(), "{text:?}");
        }
        Host::Name(name) => {
            assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{text:?}");
        }
    }
    if let Ok(rule) = Rule::parse(Action::Deny, text) {
        assert_eq!(rule.to_string(), format!("deny {}", text.trim()));
        let policy = DestinationPolicy::new(vec![rule]);
        let _ = policy.check_name(text, 1);
    }
});
