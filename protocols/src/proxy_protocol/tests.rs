use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};

use super::*;

const FFFF6: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

fn v4(a: [u8; 4], port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::from(a), port)
}

fn v6(s: &str, port: u16) -> SocketAddrV6 {
    SocketAddrV6::new(s.parse::<Ipv6Addr>().unwrap(), port, 0, 0)
}

/// Parses `input` whole and at every split point: every proper prefix must be "need
/// more" (or the same error, for invalid input), and the whole the same result.
fn parse_split(input: &[u8]) -> Result<Status<Parsed<ProxyHeader>>, ProxyError> {
    let whole = parse(input);
    for cut in 0..input.len() {
        match (parse(&input[..cut]), &whole) {
            (Ok(Status::Partial), _) => {}
            // An early error may name a different defect than the full parse, but it must
            // only happen for input that is invalid as a whole.
            (Err(_), Err(_)) => {}
            (other, _) => panic!("prefix {cut} of {input:?}: {other:?}, whole {whole:?}"),
        }
    }
    whole
}

fn ok(input: &[u8]) -> (ProxyHeader, usize) {
    let parsed = parse_split(input)
        .unwrap_or_else(|e| panic!("{input:?}: {e}"))
        .complete()
        .unwrap_or_else(|| panic!("{input:?}: incomplete"));
    (parsed.value, parsed.consumed)
}

// --- v1, examples from proxy-protocol.txt §2.1 ---

#[test]
fn v1_spec_examples() {
    let worst4 = b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n";
    assert_eq!(worst4.len(), 56);
    let (h, n) = ok(worst4);
    assert_eq!(n, 56);
    assert_eq!(
        h.addresses,
        Addresses::Inet {
            source: v4([255; 4], 65535),
            destination: v4([255; 4], 65535)
        }
    );
    assert_eq!(
        (h.version, h.command, h.transport),
        (Version::V1, Command::Proxy, Transport::Stream)
    );

    let worst6 = format!("PROXY TCP6 {FFFF6} {FFFF6} 65535 65535\r\n");
    assert_eq!(worst6.len(), 104);
    let (h, n) = ok(worst6.as_bytes());
    assert_eq!(n, 104);
    assert_eq!(
        h.addresses,
        Addresses::Inet6 {
            source: v6(FFFF6, 65535),
            destination: v6(FFFF6, 65535)
        }
    );

    let (h, n) = ok(b"PROXY UNKNOWN\r\n");
    assert_eq!(
        (n, h.addresses, h.transport),
        (15, Addresses::Unspec, Transport::Unspec)
    );

    let worst = format!("PROXY UNKNOWN {FFFF6} {FFFF6} 65535 65535\r\n");
    assert_eq!(worst.len(), V1_MAX_LEN);
    let (h, n) = ok(worst.as_bytes());
    assert_eq!((n, h.addresses), (107, Addresses::Unspec));

    // Followed by the proxied bytes: only the header is consumed.
    let with_data = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET / HTTP/1.1\r\nHost: 192.168.0.11\r\n\r\n";
    let Ok(Status::Complete(Parsed {
        value: h,
        consumed: n,
    })) = parse(with_data)
    else {
        panic!("a whole header");
    };
    assert_eq!(&with_data[n..n + 5], b"GET /");
    assert_eq!(
        h.addresses,
        Addresses::Inet {
            source: v4([192, 168, 0, 1], 56324),
            destination: v4([192, 168, 0, 11], 443)
        }
    );
}

#[test]
fn v1_malformed() {
    let cases: &[(&[u8], ProxyError)] = &[
        (b"GET / HTTP/1.1\r\n", ProxyError::NotProxy),
        (b"PROXX TCP4", ProxyError::NotProxy),
        (b"proxy TCP4", ProxyError::NotProxy),
        (
            b"PROXY  TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
            ProxyError::V1Syntax { what: "protocol" },
        ),
        (
            b"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
            ProxyError::V1Syntax { what: "protocol" },
        ),
        (
            b"PROXY UNKNOWNX\r\n",
            ProxyError::V1Syntax { what: "protocol" },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n",
            ProxyError::V1Port,
        ),
        (b"PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n", ProxyError::V1Port),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 +1 2\r\n",
            ProxyError::V1Syntax {
                what: "character in address or port",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n",
            ProxyError::V1Syntax {
                what: "character in address or port",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 999999\r\n",
            ProxyError::V1Port,
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 \r\n",
            ProxyError::V1Syntax {
                what: "empty field",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
            ProxyError::V1Syntax {
                what: "destination port",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 3\r\n",
            ProxyError::V1Syntax {
                what: "trailing field",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
            ProxyError::V1Syntax {
                what: "empty field",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.04 1.2.3.4 1 2\r\n",
            ProxyError::V1Address,
        ),
        (
            b"PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n",
            ProxyError::V1Address,
        ),
        (
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            ProxyError::V1Syntax {
                what: "character in address or port",
            },
        ),
        (b"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n", ProxyError::V1Address),
        (
            b"PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
            ProxyError::V1Syntax {
                what: "character in address or port",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
            ProxyError::V1Syntax { what: "bare LF" },
        ),
        (
            b"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
            ProxyError::V1Syntax {
                what: "CR not followed by LF",
            },
        ),
        (
            b"PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n",
            ProxyError::V1Syntax {
                what: "non-printable byte",
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(
            parse_split(input).as_ref(),
            Err(expected),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn v1_too_long() {
    // 108 bytes with the CRLF: one over.
    let long = format!("PROXY UNKNOWN {FFFF6} {FFFF6} 65535 655350\r\n");
    assert_eq!(long.len(), 108);
    assert_eq!(
        parse(long.as_bytes()),
        Err(ProxyError::V1TooLong { limit: 107 })
    );
    // No CRLF at all: the error comes at byte 107, without waiting for more.
    let endless = format!("PROXY UNKNOWN {}", "a".repeat(200));
    assert_eq!(parse(&endless.as_bytes()[..106]), Ok(Status::Partial));
    assert_eq!(
        parse(&endless.as_bytes()[..107]),
        Err(ProxyError::V1TooLong { limit: 107 })
    );
    // CR as the 107th byte: the LF would be the 108th.
    let cr_last = format!("PROXY UNKNOWN {}\r", "a".repeat(92));
    assert_eq!(cr_last.len(), 107);
    assert_eq!(
        parse(cr_last.as_bytes()),
        Err(ProxyError::V1TooLong { limit: 107 })
    );
}

#[test]
fn early_rejection() {
    assert_eq!(parse(b""), Ok(Status::Partial));
    assert_eq!(parse(b"G"), Err(ProxyError::NotProxy));
    assert_eq!(parse(b"\x16\x03\x01"), Err(ProxyError::NotProxy)); // a TLS ClientHello
    assert_eq!(parse(b"PRO"), Ok(Status::Partial));
    assert_eq!(parse(b"PROXY T"), Ok(Status::Partial));
    assert_eq!(
        parse(b"PROXY X"),
        Err(ProxyError::V1Syntax { what: "protocol" })
    );
    // Address characters and the field count are judged before the line ends.
    let chars = ProxyError::V1Syntax {
        what: "character in address or port",
    };
    assert_eq!(parse(b"PROXY TCP4 1.2"), Ok(Status::Partial));
    assert_eq!(parse(b"PROXY TCP4 1.2.x"), Err(chars.clone()));
    assert_eq!(parse(b"PROXY TCP6 ::1 ::g"), Err(chars));
    assert_eq!(
        parse(b"PROXY TCP6 ::1 ::1 1 2 "),
        Err(ProxyError::V1Syntax {
            what: "trailing field"
        })
    );
    assert_eq!(parse(b"\r\n\r\n\0\r"), Ok(Status::Partial));
    assert_eq!(parse(b"\r\n\r\n\0\n"), Err(ProxyError::NotProxy));
    assert_eq!(parse(b"\r\nGET"), Err(ProxyError::NotProxy));
    // The version and family are judged as soon as their byte arrives.
    let mut v = V2_SIGNATURE.to_vec();
    v.push(0x31);
    assert_eq!(parse(&v), Err(ProxyError::V2Version { version: 3 }));
    v[12] = 0x22;
    assert_eq!(parse(&v), Err(ProxyError::V2Command { command: 2 }));
    v[12] = 0x21;
    v.push(0x13);
    assert_eq!(parse(&v), Err(ProxyError::V2Family { byte: 0x13 }));
}

#[test]
fn v1_round_trip() {
    let headers = [
        ProxyHeader::new(
            Version::V1,
            Addresses::Inet {
                source: v4([10, 0, 0, 1], 0),
                destination: v4([127, 0, 0, 1], 80),
            },
        ),
        ProxyHeader::new(
            Version::V1,
            Addresses::Inet6 {
                source: v6("2001:db8::1", 1234),
                destination: v6("::ffff:1.2.3.4", 443),
            },
        ),
        ProxyHeader::new(Version::V1, Addresses::Unspec),
    ];
    for h in headers {
        let bytes = encode(&h).unwrap();
        assert_eq!(ok(&bytes), (h, bytes.len()));
    }
    let unix = ProxyHeader::new(
        Version::V1,
        Addresses::Unix {
            source: vec![],
            destination: b"/run/x".to_vec(),
        },
    );
    assert_eq!(
        encode_v1(&unix),
        Err(ProxyError::Unrepresentable {
            version: Version::V1
        })
    );
}

// --- v2, byte vectors built from the tables of proxy-protocol.txt §2.2 ---

/// A v2 header: signature, `ver_cmd`, `fam`, big-endian length of `rest`, `rest`.
fn v2(ver_cmd: u8, fam: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = V2_SIGNATURE.to_vec();
    v.push(ver_cmd);
    v.push(fam);
    v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    v.extend_from_slice(rest);
    v
}

const INET_BLOCK: [u8; 12] = [
    192, 168, 0, 1, // src_addr
    192, 168, 0, 11, // dst_addr
    0xdc, 0x04, // src_port 56324
    0x01, 0xbb, // dst_port 443
];

#[test]
fn v2_tcp4() {
    let bytes = v2(0x21, 0x11, &INET_BLOCK);
    assert_eq!(bytes.len(), 28);
    let (h, n) = ok(&bytes);
    assert_eq!(n, 28);
    assert_eq!(
        (h.version, h.command, h.transport),
        (Version::V2, Command::Proxy, Transport::Stream)
    );
    assert_eq!(
        h.addresses,
        Addresses::Inet {
            source: v4([192, 168, 0, 1], 56324),
            destination: v4([192, 168, 0, 11], 443)
        }
    );
    assert!(h.tlvs.is_empty());
    assert_eq!(encode(&h).unwrap(), bytes);
}

#[test]
fn v2_udp6_unix_unspec_local() {
    let mut block = Vec::new();
    block.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
    block.extend_from_slice(&"2001:db8::2".parse::<Ipv6Addr>().unwrap().octets());
    block.extend_from_slice(&[0, 53, 0x30, 0x39]);
    let (h, _) = ok(&v2(0x21, 0x22, &block));
    assert_eq!(h.transport, Transport::Datagram);
    assert_eq!(
        h.addresses,
        Addresses::Inet6 {
            source: v6("2001:db8::1", 53),
            destination: v6("2001:db8::2", 12345)
        }
    );

    let mut unix = vec![0u8; 216];
    unix[..5].copy_from_slice(b"/tmp/");
    unix[108..116].copy_from_slice(b"/run/lb\0");
    let (h, _) = ok(&v2(0x21, 0x31, &unix));
    assert_eq!(
        h.addresses,
        Addresses::Unix {
            source: b"/tmp/".to_vec(),
            destination: b"/run/lb".to_vec()
        }
    );
    assert_eq!(encode(&h).unwrap(), v2(0x21, 0x31, &unix));

    let (h, n) = ok(&v2(0x21, 0x00, &[]));
    assert_eq!(
        (h.addresses, h.transport, n),
        (Addresses::Unspec, Transport::Unspec, 16)
    );

    // LOCAL (a health check): the address block is skipped and discarded.
    let (h, n) = ok(&v2(0x20, 0x11, &INET_BLOCK));
    assert_eq!(
        (h.command, h.addresses, n),
        (Command::Local, Addresses::Unspec, 28)
    );
    // ... and with LOCAL even an undefined family is not an error.
    let (h, _) = ok(&v2(0x20, 0xff, &[1, 2, 3]));
    assert_eq!((h.command, h.tlvs.len()), (Command::Local, 0));
}

/// TLV bytes: type, 16-bit length, value.
fn tlv(kind: u8, value: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&(value.len() as u16).to_be_bytes());
    v.extend_from_slice(value);
    v
}

#[test]
fn v2_tlvs() {
    let mut ssl_value = vec![0x07, 0, 0, 0, 0]; // client: SSL|CERT_CONN|CERT_SESS, verify 0
    ssl_value.extend(tlv(tlv_type::SSL_VERSION, b"TLSv1.3"));
    ssl_value.extend(tlv(tlv_type::SSL_CN, b"client.example"));
    let mut rest = INET_BLOCK.to_vec();
    rest.extend(tlv(tlv_type::ALPN, b"h2"));
    rest.extend(tlv(tlv_type::AUTHORITY, b"example.com"));
    rest.extend(tlv(tlv_type::UNIQUE_ID, &[0xab; 128]));
    rest.extend(tlv(tlv_type::SSL, &ssl_value));
    rest.extend(tlv(tlv_type::NETNS, b"blue"));
    rest.extend(tlv(tlv_type::NOOP, &[0; 3]));
    rest.extend(tlv(0xe0, b"custom"));
    let bytes = v2(0x21, 0x11, &rest);
    let (h, n) = ok(&bytes);
    assert_eq!(n, bytes.len());
    assert_eq!(
        h.tlvs,
        vec![
            Tlv::Alpn(b"h2".to_vec()),
            Tlv::Authority(b"example.com".to_vec()),
            Tlv::UniqueId(vec![0xab; 128]),
            Tlv::Ssl(SslTlv {
                client: 7,
                verify: 0,
                sub_tlvs: vec![
                    Tlv::Other {
                        kind: tlv_type::SSL_VERSION,
                        value: b"TLSv1.3".to_vec()
                    },
                    Tlv::Other {
                        kind: tlv_type::SSL_CN,
                        value: b"client.example".to_vec()
                    },
                ],
            }),
            Tlv::Netns(b"blue".to_vec()),
            Tlv::Noop(vec![0; 3]),
            Tlv::Other {
                kind: 0xe0,
                value: b"custom".to_vec()
            },
        ]
    );
    let Some(Tlv::Ssl(ssl)) = h.tlv(tlv_type::SSL) else {
        panic!("no ssl tlv")
    };
    assert_eq!(ssl.sub(tlv_type::SSL_VERSION), Some(&b"TLSv1.3"[..]));
    assert_eq!(encode(&h).unwrap(), bytes);
}

#[test]
fn crc32c_check_value() {
    // RFC 3720 §B.4 and the usual "123456789" check value.
    assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
    assert_eq!(crc32c(&[&[0u8; 32]]), 0x8A91_36AA);
    assert_eq!(crc32c(&[b"1234", b"56789"]), 0xE306_9283);
}

#[test]
fn v2_crc32c() {
    // Build by hand: the checksum covers the whole header with the CRC value zeroed.
    let mut rest = INET_BLOCK.to_vec();
    rest.extend(tlv(tlv_type::AUTHORITY, b"a.example"));
    rest.extend(tlv(tlv_type::CRC32C, &[0; 4]));
    let mut bytes = v2(0x21, 0x11, &rest);
    let at = bytes.len() - 4;
    let crc = crc32c(&[&bytes]);
    bytes[at..].copy_from_slice(&crc.to_be_bytes());
    let (h, _) = ok(&bytes);
    assert_eq!(h.tlv(tlv_type::CRC32C), Some(&Tlv::Crc32c(crc)));
    // The encoder computes the same checksum.
    assert_eq!(encode(&h).unwrap(), bytes);

    let mut bad = bytes.clone();
    bad[20] ^= 1; // a flipped address bit
    assert!(matches!(parse(&bad), Err(ProxyError::Crc32cMismatch { sent, .. }) if sent == crc));
    let mut dup = rest.clone();
    dup.extend(tlv(tlv_type::CRC32C, &[0; 4]));
    assert_eq!(
        parse(&v2(0x21, 0x11, &dup)),
        Err(ProxyError::TlvInvalid {
            kind: tlv_type::CRC32C
        })
    );
}

#[test]
fn v2_malformed() {
    let mut short_tlv = INET_BLOCK.to_vec();
    short_tlv.extend_from_slice(&[tlv_type::ALPN, 0, 5, b'h', b'2']);
    let mut two_bytes = INET_BLOCK.to_vec();
    two_bytes.extend_from_slice(&[tlv_type::ALPN, 0]);
    let mut ssl_short = INET_BLOCK.to_vec();
    ssl_short.extend(tlv(tlv_type::SSL, &[1, 0, 0]));
    let mut ssl_sub = INET_BLOCK.to_vec();
    ssl_sub.extend(tlv(
        tlv_type::SSL,
        &[1, 0, 0, 0, 0, tlv_type::SSL_CN, 0, 9, b'x'],
    ));
    let mut crc_len = INET_BLOCK.to_vec();
    crc_len.extend(tlv(tlv_type::CRC32C, &[0; 3]));
    let mut uid = INET_BLOCK.to_vec();
    uid.extend(tlv(tlv_type::UNIQUE_ID, &[0; 129]));
    let cases: Vec<(Vec<u8>, ProxyError)> = vec![
        (
            v2(0x11, 0x11, &INET_BLOCK),
            ProxyError::V2Version { version: 1 },
        ),
        (
            v2(0x2f, 0x11, &INET_BLOCK),
            ProxyError::V2Command { command: 15 },
        ),
        (
            v2(0x21, 0x10, &INET_BLOCK),
            ProxyError::V2Family { byte: 0x10 },
        ),
        (
            v2(0x21, 0x13, &INET_BLOCK),
            ProxyError::V2Family { byte: 0x13 },
        ),
        (
            v2(0x21, 0x41, &INET_BLOCK),
            ProxyError::V2Family { byte: 0x41 },
        ),
        (v2(0x21, 0x01, &[]), ProxyError::V2Family { byte: 0x01 }),
        // Length shorter than the family's address block.
        (
            v2(0x21, 0x11, &INET_BLOCK[..11]),
            ProxyError::V2Length {
                length: 11,
                needed: 12,
            },
        ),
        (
            v2(0x21, 0x21, &INET_BLOCK),
            ProxyError::V2Length {
                length: 12,
                needed: 36,
            },
        ),
        (
            v2(0x21, 0x31, &[0; 215]),
            ProxyError::V2Length {
                length: 215,
                needed: 216,
            },
        ),
        (
            v2(0x21, 0x11, &short_tlv),
            ProxyError::TlvTruncated { offset: 28 },
        ),
        (
            v2(0x21, 0x11, &two_bytes),
            ProxyError::TlvTruncated { offset: 28 },
        ),
        (
            v2(0x21, 0x11, &ssl_short),
            ProxyError::TlvInvalid {
                kind: tlv_type::SSL,
            },
        ),
        (
            v2(0x21, 0x11, &ssl_sub),
            ProxyError::TlvTruncated { offset: 36 },
        ),
        (
            v2(0x21, 0x11, &crc_len),
            ProxyError::TlvInvalid {
                kind: tlv_type::CRC32C,
            },
        ),
        (
            v2(0x21, 0x11, &uid),
            ProxyError::TlvInvalid {
                kind: tlv_type::UNIQUE_ID,
            },
        ),
    ];
    for (input, expected) in cases {
        assert_eq!(parse_split(&input), Err(expected), "{input:?}");
    }
    // A length larger than the bytes present is "need more", never a panic.
    let mut huge = v2(0x21, 0x11, &INET_BLOCK);
    huge[14..16].copy_from_slice(&[0xff, 0xff]);
    assert_eq!(parse(&huge), Ok(Status::Partial));
}

#[test]
fn v2_round_trips_and_encode_errors() {
    let base = ProxyHeader::new(
        Version::V2,
        Addresses::Inet6 {
            source: v6("::1", 1),
            destination: v6("fe80::2", 65535),
        },
    );
    let tlvs = vec![
        Tlv::Alpn(b"http/1.1".to_vec()),
        Tlv::UniqueId(b"id-1".to_vec()),
        Tlv::Crc32c(0),
    ];
    let bytes = encode_v2(&base, &tlvs).unwrap();
    let (h, n) = ok(&bytes);
    assert_eq!(n, bytes.len());
    assert_eq!((h.command, &h.addresses), (Command::Proxy, &base.addresses));
    assert_eq!(h.tlvs.len(), 3);
    assert_eq!(encode(&h).unwrap(), bytes);

    let mut dgram = ProxyHeader::new(
        Version::V2,
        Addresses::Inet {
            source: v4([1, 2, 3, 4], 5),
            destination: v4([5, 6, 7, 8], 9),
        },
    );
    dgram.transport = Transport::Datagram;
    assert_eq!(ok(&encode(&dgram).unwrap()).0, dgram);
    assert_eq!(
        encode_v1(&dgram),
        Err(ProxyError::Unrepresentable {
            version: Version::V1
        })
    );

    let mut local = base.clone();
    local.command = Command::Local;
    assert_eq!(encode(&local).unwrap(), v2(0x20, 0x00, &[]));
    assert_eq!(encode_v1(&local).unwrap(), b"PROXY UNKNOWN\r\n");

    let mut unspec_transport = base.clone();
    unspec_transport.transport = Transport::Unspec;
    assert_eq!(
        encode(&unspec_transport),
        Err(ProxyError::Unrepresentable {
            version: Version::V2
        })
    );
    let long_path = ProxyHeader::new(
        Version::V2,
        Addresses::Unix {
            source: vec![b'a'; 109],
            destination: vec![],
        },
    );
    assert_eq!(encode(&long_path), Err(ProxyError::EncodeTooLong));
    assert_eq!(
        encode_v2(&base, &[Tlv::Noop(vec![0; 70_000])]),
        Err(ProxyError::EncodeTooLong)
    );
    assert_eq!(
        encode_v2(
            &base,
            &[Tlv::Noop(vec![0; 40_000]), Tlv::Noop(vec![0; 40_000])]
        ),
        Err(ProxyError::EncodeTooLong)
    );
    assert_eq!(
        encode_v2(&base, &[Tlv::UniqueId(vec![0; 129])]),
        Err(ProxyError::TlvInvalid {
            kind: tlv_type::UNIQUE_ID
        })
    );
    // v1 encodings of v2 headers drop the TLVs.
    let mut with_tlvs = dgram.clone();
    with_tlvs.transport = Transport::Stream;
    with_tlvs.tlvs = tlvs;
    assert!(
        encode_v1(&with_tlvs)
            .unwrap()
            .starts_with(b"PROXY TCP4 1.2.3.4 5.6.7.8 5 9\r\n")
    );
}
