use std::net::SocketAddr;

use super::*;

/// What a whole run of the handshake produced.
#[derive(Debug, Eq, PartialEq)]
struct Outcome {
    sent: Vec<u8>,
    events: Vec<Event>,
    error: Option<Socks5Error>,
    /// Bytes left unconsumed (the client's payload).
    rest: Vec<u8>,
}

/// Feeds `pieces` one after another, as a caller does: unconsumed bytes are kept and
/// offered again with the next piece.
fn run(auth: &Auth, pieces: &[&[u8]]) -> Outcome {
    let mut hs = Handshake::new(auth.clone());
    let mut buf = Vec::new();
    let mut out = Outcome {
        sent: Vec::new(),
        events: Vec::new(),
        error: None,
        rest: Vec::new(),
    };
    for piece in pieces {
        buf.extend_from_slice(piece);
        let result = hs.handle_input(&buf);
        while let Some(bytes) = hs.poll_transmit() {
            out.sent.extend(bytes);
        }
        while let Some(event) = hs.poll_event() {
            out.events.push(event);
        }
        match result {
            Ok(n) => {
                assert!(n <= buf.len());
                buf.drain(..n);
                assert!(buf.len() <= MAX_MESSAGE || hs.is_done(), "held too much");
            }
            Err(e) => {
                out.error = Some(e);
                return out;
            }
        }
    }
    out.rest = buf;
    out
}

/// Runs `input` whole, then cut at every offset (two pieces) and one byte at a time, and
/// checks all give the same outcome; returns it.
fn run_all_splits(auth: &Auth, input: &[u8]) -> Outcome {
    let whole = run(auth, &[input]);
    for cut in 0..=input.len() {
        let split = run(auth, &[&input[..cut], &input[cut..]]);
        assert_eq!(split, whole, "split at {cut}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run(auth, &bytes), whole, "byte by byte");
    whole
}

fn users() -> Auth {
    Auth::UserPass(vec![(b"alice".to_vec(), b"secret".to_vec())])
}

fn auth_msg(user: &[u8], pass: &[u8]) -> Vec<u8> {
    let mut m = vec![AUTH_VERSION, user.len() as u8];
    m.extend_from_slice(user);
    m.push(pass.len() as u8);
    m.extend_from_slice(pass);
    m
}

const GREET_NO_AUTH: &[u8] = &[5, 1, 0];
const CONNECT_V4: &[u8] = &[5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn connect_ipv4_no_auth_with_payload() {
    let input = cat(&[GREET_NO_AUTH, CONNECT_V4, b"GET / HTTP/1.1\r\n"]);
    let out = run_all_splits(&Auth::None, &input);
    assert_eq!(out.sent, [5, 0]);
    assert_eq!(
        out.events,
        [Event::Connect(Target::Addr(
            "127.0.0.1:8080".parse().unwrap()
        ))]
    );
    assert_eq!(out.error, None);
    assert_eq!(out.rest, b"GET / HTTP/1.1\r\n");
}

#[test]
fn connect_ipv6_and_domain() {
    let mut v6 = vec![5, 1, 0, 4];
    v6.extend_from_slice(&"::1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    v6.extend_from_slice(&443u16.to_be_bytes());
    let out = run_all_splits(&Auth::None, &cat(&[&[5, 2, 2, 0], &v6]));
    assert_eq!(
        out.events,
        [Event::Connect(Target::Addr("[::1]:443".parse().unwrap()))]
    );

    let mut dom = vec![5, 1, 0, 3, 9];
    dom.extend_from_slice(b"localhost");
    dom.extend_from_slice(&80u16.to_be_bytes());
    let out = run_all_splits(&Auth::None, &cat(&[GREET_NO_AUTH, &dom]));
    assert_eq!(
        out.events,
        [Event::Connect(Target::Domain("localhost".into(), 80))]
    );
    assert!(out.rest.is_empty());
}

#[test]
fn username_password() {
    let input = cat(&[&[5, 2, 0, 2], &auth_msg(b"alice", b"secret"), CONNECT_V4]);
    let out = run_all_splits(&users(), &input);
    assert_eq!(out.sent, [5, 2, 1, 0]);
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.error, None);
}

#[test]
fn wrong_password_is_refused() {
    for (user, pass) in [
        (&b"alice"[..], &b"wrong"[..]),
        (b"alice", b"secre"),
        (b"bob", b"secret"),
        (b"", b""),
    ] {
        let input = cat(&[&[5, 1, 2], &auth_msg(user, pass), CONNECT_V4]);
        let out = run_all_splits(&users(), &input);
        // Method 0x02 chosen, then status 0x01 (failure); no request is read.
        assert_eq!(out.sent, [5, 2, 1, 1]);
        assert_eq!(out.error, Some(Socks5Error::AuthFailed));
        assert!(out.events.is_empty());
    }
}

#[test]
fn no_acceptable_method() {
    // Users configured, client offers only no-auth.
    let out = run_all_splits(&users(), GREET_NO_AUTH);
    assert_eq!(out.sent, [5, 0xFF]);
    assert_eq!(out.error, Some(Socks5Error::NoAcceptableMethod));
    // No methods at all.
    let out = run_all_splits(&Auth::None, &[5, 0]);
    assert_eq!(out.sent, [5, 0xFF]);
    assert_eq!(out.error, Some(Socks5Error::NoAcceptableMethod));
}

#[test]
fn bad_versions() {
    // SOCKS4 greeting.
    let out = run_all_splits(&Auth::None, &[4, 1, 0, 80, 127, 0, 0, 1, 0]);
    assert_eq!(out.error, Some(Socks5Error::BadVersion { version: 4 }));
    assert!(out.sent.is_empty());
    // Bad version in the request.
    let out = run_all_splits(&Auth::None, &cat(&[GREET_NO_AUTH, &[4, 1, 0, 1]]));
    assert_eq!(out.error, Some(Socks5Error::BadVersion { version: 4 }));
    assert_eq!(out.sent, [5, 0]);
    // Bad subnegotiation version.
    let out = run_all_splits(&users(), &[5, 1, 2, 5, 1, b'a', 1, b'b']);
    assert_eq!(out.error, Some(Socks5Error::BadVersion { version: 5 }));
}

/// `parse_request` alone: every proper prefix is `Partial`, the whole request is its
/// target, command and length, and bytes after it are never counted.
#[test]
fn parse_request_reports_partial_then_the_length() {
    let mut domain = vec![5, 2, 0, 3, 9];
    domain.extend_from_slice(b"localhost");
    domain.extend_from_slice(&80u16.to_be_bytes());
    let cases: [(&[u8], Target, u8); 2] = [
        (
            CONNECT_V4,
            Target::Addr("127.0.0.1:8080".parse().unwrap()),
            CMD_CONNECT,
        ),
        (&domain, Target::Domain("localhost".into(), 80), CMD_BIND),
    ];
    for (request, target, command) in cases {
        for cut in 0..request.len() {
            assert_eq!(
                parse_request(&request[..cut]),
                Ok(Status::Partial),
                "cut {cut}"
            );
        }
        let with_payload = cat(&[request, b"payload"]);
        assert_eq!(
            parse_request(&with_payload),
            Ok(Status::Complete(Parsed {
                value: (target, command),
                consumed: request.len(),
            }))
        );
    }
    assert_eq!(
        parse_request(&[5, 1, 0, 2]),
        Err(Socks5Error::AddressTypeNotSupported { atyp: 2 })
    );
}

#[test]
fn unsupported_commands_get_0x07() {
    for command in [CMD_BIND, CMD_UDP_ASSOCIATE, 0x09] {
        let request = [5, command, 0, 1, 10, 0, 0, 1, 0, 53];
        let out = run_all_splits(&Auth::None, &cat(&[GREET_NO_AUTH, &request]));
        assert_eq!(
            out.error,
            Some(Socks5Error::CommandNotSupported { command })
        );
        assert_eq!(
            out.sent,
            cat(&[&[5, 0], &encode_reply(Reply::CommandNotSupported, None)])
        );
        assert_eq!(out.sent[3], 0x07);
    }
}

#[test]
fn unsupported_address_type_gets_0x08() {
    let out = run_all_splits(&Auth::None, &cat(&[GREET_NO_AUTH, &[5, 1, 0, 2, 1, 2]]));
    assert_eq!(
        out.error,
        Some(Socks5Error::AddressTypeNotSupported { atyp: 2 })
    );
    assert_eq!(out.sent[2..4], [5, 0x08]);
}

#[test]
fn bad_domains() {
    let out = run_all_splits(&Auth::None, &cat(&[GREET_NO_AUTH, &[5, 1, 0, 3, 0, 0, 80]]));
    assert_eq!(out.error, Some(Socks5Error::BadDomain));
    let out = run_all_splits(
        &Auth::None,
        &cat(&[GREET_NO_AUTH, &[5, 1, 0, 3, 2, 0xff, 0xfe, 0, 80]]),
    );
    assert_eq!(out.error, Some(Socks5Error::BadDomain));
    assert_eq!(out.sent[2..4], [5, 0x01]);
}

#[test]
fn input_after_an_error_is_refused() {
    let mut hs = Handshake::new(Auth::None);
    assert!(hs.handle_input(&[4]).is_err());
    assert_eq!(hs.handle_input(&[5, 1, 0]), Err(Socks5Error::Finished));
}

#[test]
fn longest_messages_parse() {
    let name = vec![b'a'; 255];
    let auth = Auth::UserPass(vec![(name.clone(), name.clone())]);
    let methods: Vec<u8> = (0..=254).collect();
    let mut input = vec![5, 255];
    input.extend_from_slice(&methods);
    input.extend(auth_msg(&name, &name));
    input.extend_from_slice(&[5, 1, 0, 3, 255]);
    input.extend_from_slice(&name);
    input.extend_from_slice(&[0, 80]);
    let out = run(&auth, &[&input]);
    assert_eq!(out.error, None);
    assert_eq!(
        out.events,
        [Event::Connect(Target::Domain(
            String::from_utf8(name).unwrap(),
            80
        ))]
    );
}

#[test]
fn reply_encoding() {
    let v4: SocketAddr = "10.1.2.3:4660".parse().unwrap();
    assert_eq!(
        encode_reply(Reply::Succeeded, Some(v4)),
        [5, 0, 0, 1, 10, 1, 2, 3, 0x12, 0x34]
    );
    let v6: SocketAddr = "[::1]:1".parse().unwrap();
    let r = encode_reply(Reply::ConnectionRefused, Some(v6));
    assert_eq!(r.len(), 22);
    assert_eq!(r[..4], [5, 5, 0, 4]);
    assert_eq!(
        encode_reply(Reply::TtlExpired, None),
        [5, 6, 0, 1, 0, 0, 0, 0, 0, 0]
    );
    use std::io::ErrorKind as K;
    let codes: Vec<u8> = [
        K::ConnectionRefused,
        K::NetworkUnreachable,
        K::HostUnreachable,
        K::TimedOut,
        K::PermissionDenied,
        K::Other,
    ]
    .into_iter()
    .map(|k| Reply::from_io_error(k) as u8)
    .collect();
    assert_eq!(codes, [5, 3, 4, 6, 2, 1]);
}
