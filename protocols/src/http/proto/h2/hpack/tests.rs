use bytes::BytesMut;

use super::*;

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The Appendix C cases: (section, block, fields).
fn rfc_cases() -> Vec<(String, Vec<u8>, Fields)> {
    let text = include_str!("../../../../../tests/data/hpack_rfc7541.txt");
    let mut cases = Vec::new();
    for part in text
        .split("\n\n")
        .skip(1)
        .filter(|part| !part.trim().is_empty())
    {
        let mut lines = part.lines();
        let section = lines.next().unwrap().trim_start_matches("# ").to_owned();
        let block = hex(lines.next().unwrap());
        let fields = lines
            .map(|line| {
                // Pseudo-header names start with ':'; split at the ": " after the name.
                let at = line[1..].find(": ").unwrap() + 1;
                (
                    line.as_bytes()[..at].to_vec(),
                    line.as_bytes()[at + 2..].to_vec(),
                )
            })
            .collect();
        cases.push((section, block, fields));
    }
    cases
}

fn decode_all(decoder: &mut HpackDecoder, block: &[u8], limit: usize) -> (Fields, Decoded) {
    let mut fields = Vec::new();
    let decoded = decoder
        .decode(block, limit, |name, value| {
            fields.push((name.to_vec(), value.to_vec()));
        })
        .unwrap();
    (fields, decoded)
}

#[test]
fn rfc7541_appendix_c_examples_decode() {
    let cases = rfc_cases();
    assert_eq!(cases.len(), 12);
    let mut decoder = HpackDecoder::new(4096);
    for (section, block, fields) in cases {
        // C.3 and C.4 share a table of 4096; C.5 and C.6 start anew with 256.
        if section.ends_with("C.4.1") || section.ends_with("C.3.1") {
            decoder = HpackDecoder::new(4096);
        }
        if section.ends_with("C.5.1") || section.ends_with("C.6.1") {
            decoder = HpackDecoder::new(256);
        }
        let (got, decoded) = decode_all(&mut decoder, &block, usize::MAX);
        assert_eq!(got, fields, "{section}");
        let size: usize = fields.iter().map(|(n, v)| n.len() + v.len() + 32).sum();
        assert_eq!(decoded.list_size, size, "{section}");
        assert!(!decoded.oversized);
    }
}

#[test]
fn list_size_bound_stops_handing_fields_on_but_keeps_the_table_in_step() {
    let cases = rfc_cases();
    let mut decoder = HpackDecoder::new(4096);
    // C.3.1 over a bound of two fields: the rest is decoded (its :authority is indexed).
    let (got, decoded) = decode_all(&mut decoder, &cases[0].1, 90);
    assert_eq!(got.len(), 2);
    assert!(decoded.oversized);
    // C.3.2 refers to the entry C.3.1 added.
    let (got, _) = decode_all(&mut decoder, &cases[1].1, usize::MAX);
    assert_eq!(got, cases[1].2);
}

#[test]
fn bad_blocks_are_errors_not_panics() {
    for block in [
        &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff][..], // index overflow
        &[0x80],                                         // index 0 (RFC 7541 §6.1)
        &[0xbf, 0x00],                                   // index 63: past both tables
        &[0x40, 0x05, b'a'],                             // string past the block
        &[0x3f, 0xe1, 0x1f],                             // size update above 4096
        &[0x40, 0x81, 0xff],                             // Huffman EOS padding
        &[0x20],                                         // size update at the end
    ] {
        let mut decoder = HpackDecoder::new(4096);
        assert!(
            decoder.decode(block, usize::MAX, |_, _| {}).is_err(),
            "{block:x?}"
        );
    }
}

#[test]
fn integers_encode_as_the_rfc_examples() {
    // RFC 7541 C.1.1, C.1.2, C.1.3.
    for (value, prefix, expected) in [
        (10, 5, &[0x0a][..]),
        (1337, 5, &[0x1f, 0x9a, 0x0a]),
        (42, 8, &[0x2a]),
    ] {
        let mut buf = BytesMut::new();
        if prefix == 8 {
            buf.put_u8(value as u8);
        } else {
            encode_integer(&mut buf, 0, prefix, value);
        }
        assert_eq!(&buf[..], expected);
    }
}

#[test]
fn encoded_fields_decode_to_the_same_fields_lowercased() {
    let fields: &[(&[u8], &[u8])] = &[
        (b":method", b"GET"),
        (b":method", b"PATCH"),
        (b":path", b"/"),
        (b":path", b"/a/b?c=d"),
        (b":scheme", b"https"),
        (b":authority", b"example.com"),
        (b"Content-Type", b"text/plain; charset=utf-8"),
        (b"X-Custom", b"Value With Case"),
        (b"accept-encoding", b"gzip, deflate"),
        (b"empty", b""),
        (b"long", &[b'x'; 300]),
    ];
    let mut buf = BytesMut::new();
    encode_status(&mut buf, 200);
    encode_status(&mut buf, 302);
    encode_status(&mut buf, 999);
    for (name, value) in fields {
        encode_field(&mut buf, name, value);
    }
    let mut decoder = HpackDecoder::new(4096);
    let (got, _) = decode_all(&mut decoder, &buf, usize::MAX);
    let mut expected: Fields = vec![
        (b":status".to_vec(), b"200".to_vec()),
        (b":status".to_vec(), b"302".to_vec()),
        (b":status".to_vec(), b"999".to_vec()),
    ];
    expected.extend(
        fields
            .iter()
            .map(|(n, v)| (n.to_ascii_lowercase(), v.to_vec())),
    );
    assert_eq!(got, expected);
    // Indexed representations where the static table has the whole field.
    let mut one = BytesMut::new();
    encode_field(&mut one, b":method", b"GET");
    assert_eq!(&one[..], &[0x82]);
    let mut one = BytesMut::new();
    encode_status(&mut one, 404);
    assert_eq!(&one[..], &[0x8d]);
}
