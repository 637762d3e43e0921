//! Fuzz target for HPACK (`h2::hpack`): the decoder on arbitrary blocks (several in a row,
//! sharing the dynamic table), and the encoder on arbitrary fields.
//!
//! Asserts: no panic; the fields handed on stay within the list bound; what the encoder
//! writes decodes (with a fresh decoder, as the peer's) to the same fields, names
//! lowercased.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::h2::hpack::{
    FIELD_OVERHEAD, HpackDecoder, encode_field, encode_status,
};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let limit = 64 + usize::from(mode) * 16;
        let mut decoder = HpackDecoder::new(if mode & 2 == 0 { 4096 } else { 256 });
        for block in data.split(|&b| b == 0xfe) {
            let mut handed = 0;
            let result = decoder.decode(block, limit, |name, value| {
                handed += name.len() + value.len() + FIELD_OVERHEAD;
            });
            match result {
                Ok(decoded) => {
                    assert!(handed <= limit);
                    assert_eq!(decoded.oversized, decoded.list_size > limit);
                }
                Err(_) => return,
            }
        }
        return;
    }
    // Fields: name and value split at 0x00, fields at 0xff.
    let mut fields = Vec::new();
    for field in data.split(|&b| b == 0xff) {
        let mut parts = field.splitn(2, |&b| b == 0);
        let name = parts.next().unwrap_or_default();
        let value = parts.next().unwrap_or_default();
        fields.push((name, value));
    }
    let mut buf = BytesMut::new();
    encode_status(&mut buf, u16::from(mode) * 4);
    for (name, value) in &fields {
        encode_field(&mut buf, name, value);
    }
    let mut decoded = Vec::new();
    HpackDecoder::new(4096)
        .decode(&buf, usize::MAX, |name, value| {
            decoded.push((name.to_vec(), value.to_vec()))
        })
        .expect("our encoding decodes");
    assert_eq!(decoded.len(), fields.len() + 1);
    for ((name, value), (got_name, got_value)) in fields.iter().zip(&decoded[1..]) {
        assert_eq!(&name.to_ascii_lowercase(), got_name);
        assert_eq!(value, got_value);
    }
});
