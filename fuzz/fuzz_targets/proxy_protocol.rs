//! Fuzz target for the PROXY protocol parser: no panic, `consumed <= input.len()`, every
//! proper prefix of a header is "need more", bytes after the header do not change it, and
//! parse(encode(h)) == h.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::proxy_protocol::{
    Addresses, Command, Parsed, Status, Transport, Version, encode_v1, encode_v2, parse,
};

fuzz_target!(|data: &[u8]| {
    let Ok(result) = parse(data) else {
        return;
    };
    let Status::Complete(Parsed {
        value: header,
        consumed,
    }) = result
    else {
        // "Need more" only for short inputs: a v1 line is at most 107 bytes, a v2 header
        // at most 16 + 65535.
        assert!(data.len() < 16 + 65535);
        return;
    };
    assert!(consumed > 0 && consumed <= data.len());
    let used = &data[..consumed];
    assert_eq!(
        parse(used),
        Ok(Status::Complete(Parsed {
            value: header.clone(),
            consumed,
        }))
    );
    for cut in 0..consumed.min(300) {
        assert_eq!(parse(&used[..cut]), Ok(Status::Partial), "prefix {cut}");
    }
    if header.version == Version::V1 {
        assert!(consumed <= 107);
        assert!(header.tlvs.is_empty());
    }

    // Re-encode in both versions where representable and parse back.
    let v2 = encode_v2(&header, &header.tlvs).expect("a parsed header re-encodes");
    let Parsed {
        value: back,
        consumed: n,
    } = parse(&v2).expect("valid").complete().expect("complete");
    assert_eq!(n, v2.len());
    let mut expected = header.clone();
    expected.version = Version::V2;
    if expected.command == Command::Local || expected.addresses == Addresses::Unspec {
        expected.transport = Transport::Unspec;
    }
    if expected.command == Command::Local {
        expected.addresses = Addresses::Unspec;
    }
    assert_eq!(back.version, Version::V2);
    assert_eq!(
        (back.command, &back.addresses),
        (expected.command, &expected.addresses)
    );
    assert_eq!(back.transport, expected.transport);
    assert_eq!(back.tlvs.len(), expected.tlvs.len());

    if let Ok(v1) = encode_v1(&header) {
        let Parsed {
            value: back,
            consumed: n,
        } = parse(&v1).expect("valid").complete().expect("complete");
        assert_eq!(n, v1.len());
        if header.command == Command::Proxy {
            assert_eq!(back.addresses, header.addresses);
        }
    }
});
