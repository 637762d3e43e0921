use std::time::Instant;

use bytes::Bytes;

use super::*;
use crate::ssh::sftp::codec::{encode_init, encode_request, packet_type};

fn init() -> Vec<u8> {
    let mut wire = Vec::new();
    encode_init(3, &mut wire);
    wire
}

fn request(id: u32, request: &Request) -> Vec<u8> {
    let mut wire = Vec::new();
    encode_request(id, request, &mut wire);
    wire
}

fn stat(path: &str) -> Request {
    Request::Stat {
        path: Bytes::copy_from_slice(path.as_bytes()),
    }
}

fn events(server: &mut SftpServer) -> Vec<SftpEvent> {
    std::iter::from_fn(|| server.poll_event()).collect()
}

fn sent(server: &mut SftpServer) -> Vec<u8> {
    let now = Instant::now();
    std::iter::from_fn(|| server.poll_transmit(now))
        .flat_map(|b| b.to_vec())
        .collect()
}

/// (type, id) of each packet in `wire` (the id of VERSION is its version).
fn packets(mut wire: &[u8]) -> Vec<(u8, u32)> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let len = u32::from_be_bytes(wire[..4].try_into().unwrap()) as usize;
        let id = u32::from_be_bytes(wire[5..9].try_into().unwrap());
        out.push((wire[4], id));
        wire = &wire[4 + len..];
    }
    out
}

/// The status code of a STATUS packet starting `wire`.
fn status_code(wire: &[u8]) -> u32 {
    assert_eq!(wire[4], packet_type::STATUS);
    u32::from_be_bytes(wire[9..13].try_into().unwrap())
}

#[test]
fn init_is_answered_with_version_3_and_the_extensions() {
    let mut server = SftpServer::new(SftpConfig::default());
    server.handle_input(&init(), Instant::now());
    let out = sent(&mut server);
    assert_eq!(packets(&out), [(packet_type::VERSION, 3)]);
    for (name, _) in EXTENSIONS {
        let needle = name.as_bytes();
        assert!(out.windows(needle.len()).any(|w| w == needle), "{name}");
    }
    assert!(server.wants_input());
    assert_eq!(server.poll_close(), None);
}

#[test]
fn requests_come_out_in_order_and_replies_carry_their_ids() {
    let mut server = SftpServer::new(SftpConfig::default());
    let mut wire = init();
    wire.extend(request(10, &stat("/a")));
    wire.extend(request(11, &stat("/b")));
    server.handle_input(&wire, Instant::now());
    let _ = sent(&mut server);
    assert_eq!(
        events(&mut server),
        [
            SftpEvent::Request {
                id: 10,
                request: stat("/a")
            },
            SftpEvent::Request {
                id: 11,
                request: stat("/b")
            },
        ]
    );
    assert_eq!(server.pending(), 2);
    server.reply(11, &Response::ok());
    server.reply(10, &Response::status(StatusCode::NoSuchFile, "no"));
    let out = sent(&mut server);
    assert_eq!(
        packets(&out),
        [(packet_type::STATUS, 11), (packet_type::STATUS, 10)]
    );
    assert_eq!(server.pending(), 0);
}

#[test]
fn split_at_every_offset_gives_the_same_events() {
    let mut wire = init();
    let reqs = [
        stat("/x"),
        Request::Write {
            handle: Bytes::from_static(b"12345678"),
            offset: 3,
            data: Bytes::from(vec![7; 100]),
        },
        Request::Limits,
    ];
    for (id, r) in reqs.iter().enumerate() {
        wire.extend(request(id as u32, r));
    }
    let whole = {
        let mut server = SftpServer::new(SftpConfig::default());
        server.handle_input(&wire, Instant::now());
        events(&mut server)
    };
    assert_eq!(whole.len(), 3);
    for cut in 0..=wire.len() {
        let mut server = SftpServer::new(SftpConfig::default());
        server.handle_input(&wire[..cut], Instant::now());
        let mut got = events(&mut server);
        server.handle_input(&wire[cut..], Instant::now());
        got.extend(events(&mut server));
        assert_eq!(got, whole, "cut at {cut}");
    }
}

#[test]
fn an_oversized_length_closes_without_buffering_the_body() {
    let mut server = SftpServer::new(SftpConfig::default());
    server.handle_input(&init(), Instant::now());
    let _ = sent(&mut server);
    let huge = (DEFAULT_MAX_PACKET_LEN as u32 + 1).to_be_bytes();
    server.handle_input(&huge, Instant::now());
    assert!(matches!(
        events(&mut server).as_slice(),
        [SftpEvent::ProtocolError(_)]
    ));
    assert!(!server.wants_input());
    assert_eq!(server.poll_close(), Some(Close::Graceful));
    // Nothing after the close, and later input is ignored.
    server.handle_input(&[0; 100], Instant::now());
    server.reply(1, &Response::ok());
    assert!(sent(&mut server).is_empty());
    assert_eq!(server.poll_close(), None);
}

#[test]
fn a_request_before_init_closes() {
    let mut server = SftpServer::new(SftpConfig::default());
    server.handle_input(&request(1, &stat("/")), Instant::now());
    assert!(matches!(
        events(&mut server).as_slice(),
        [SftpEvent::ProtocolError(_)]
    ));
    assert!(sent(&mut server).is_empty());
    assert_eq!(server.poll_close(), Some(Close::Graceful));
}

#[test]
fn a_second_init_closes() {
    let mut server = SftpServer::new(SftpConfig::default());
    let mut wire = init();
    wire.extend(init());
    server.handle_input(&wire, Instant::now());
    assert_eq!(packets(&sent(&mut server)), [(packet_type::VERSION, 3)]);
    assert_eq!(server.poll_close(), Some(Close::Graceful));
}

#[test]
fn bad_and_unknown_packets_are_answered_and_the_session_goes_on() {
    let mut server = SftpServer::new(SftpConfig::default());
    let mut wire = init();
    // A READ whose handle string runs past its packet.
    wire.extend([0, 0, 0, 9, packet_type::READ, 0, 0, 0, 5, 0, 0, 0, 200]);
    // An unknown type.
    wire.extend([0, 0, 0, 5, 77, 0, 0, 0, 6]);
    wire.extend(request(7, &stat("/")));
    server.handle_input(&wire, Instant::now());
    let out = sent(&mut server);
    let version_len = 4 + u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
    let replies = &out[version_len..];
    assert_eq!(
        packets(replies),
        [(packet_type::STATUS, 5), (packet_type::STATUS, 6)]
    );
    assert_eq!(status_code(replies), StatusCode::BadMessage as u32);
    let second = &replies[4 + u32::from_be_bytes(replies[..4].try_into().unwrap()) as usize..];
    assert_eq!(status_code(second), StatusCode::OpUnsupported as u32);
    assert_eq!(
        events(&mut server),
        [SftpEvent::Request {
            id: 7,
            request: stat("/")
        }]
    );
}

#[test]
fn reading_pauses_at_max_pending_and_resumes_on_replies() {
    let config = SftpConfig {
        max_pending: 2,
        ..SftpConfig::default()
    };
    let mut server = SftpServer::new(config);
    let mut wire = init();
    for id in 0..5 {
        wire.extend(request(id, &stat("/")));
    }
    server.handle_input(&wire, Instant::now());
    assert_eq!(events(&mut server).len(), 2);
    assert!(!server.wants_input());
    server.reply(0, &Response::ok());
    // One slot freed: one held request comes out.
    assert_eq!(events(&mut server).len(), 1);
    assert!(!server.wants_input());
    server.reply(1, &Response::ok());
    server.reply(2, &Response::ok());
    assert_eq!(events(&mut server).len(), 2);
    server.reply(3, &Response::ok());
    server.reply(4, &Response::ok());
    assert!(server.wants_input());
}

#[test]
fn input_far_past_the_pause_closes() {
    let config = SftpConfig {
        max_pending: 1,
        max_packet_len: 1024,
    };
    let mut server = SftpServer::new(config);
    let mut wire = init();
    for id in 0..1000 {
        wire.extend(request(id, &stat("/")));
    }
    server.handle_input(&wire, Instant::now());
    let got = events(&mut server);
    assert!(matches!(got.last(), Some(SftpEvent::ProtocolError(_))));
    // The close follows the VERSION already encoded.
    assert_eq!(server.poll_close(), None);
    assert_eq!(packets(&sent(&mut server)), [(packet_type::VERSION, 3)]);
    assert_eq!(server.poll_close(), Some(Close::Graceful));
}

#[test]
fn eof_closes_after_the_replies() {
    let mut server = SftpServer::new(SftpConfig::default());
    server.handle_input(&init(), Instant::now());
    server.handle_eof(Instant::now());
    // The VERSION is still to be sent: no close before it.
    assert_eq!(server.poll_close(), None);
    assert!(!sent(&mut server).is_empty());
    assert_eq!(server.poll_close(), Some(Close::Graceful));
    assert_eq!(server.poll_close(), None);
}
