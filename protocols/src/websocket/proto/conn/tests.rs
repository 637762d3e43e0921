//! [`WsConn`] under [`Pair`]: a client and a server machine, on a perfect link and on
//! faulty links drawn from seeds (each run replays from its seed), with and without
//! permessage-deflate.

use std::time::Duration;

use super::*;
use crate::kit::sim::{Pair, RawPeer, Side, SimConfig};
use crate::websocket::proto::DeflateConfig;

fn config(deflate: bool) -> WsConfig {
    WsConfig {
        deflate: deflate.then(DeflateConfig::default),
        mask_seed: [9; 32],
        ..WsConfig::default()
    }
}

fn request() -> WsRequest {
    WsRequest {
        host: "localhost".into(),
        path: "/echo".into(),
        ..WsRequest::default()
    }
}

fn pair(deflate: bool) -> Pair<WsConn, WsConn> {
    Pair::new(
        WsConn::client(config(deflate), &request()),
        WsConn::accept(config(deflate)),
    )
}

fn events(conn: &mut WsConn) -> Vec<WsEvent> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn closed(events: &[WsEvent]) -> Option<&CloseInfo> {
    events.iter().find_map(|e| match e {
        WsEvent::Closed(info) => Some(info),
        _ => None,
    })
}

#[test]
fn open_echo_and_close_cleanly() {
    for deflate in [false, true] {
        let mut pair = pair(deflate);
        pair.drive();
        let server_events = events(&mut pair.server);
        let client_events = events(&mut pair.client);
        assert!(matches!(server_events[..], [WsEvent::Open(_)]));
        let [WsEvent::Open(negotiated)] = &client_events[..] else {
            panic!("{client_events:?}")
        };
        assert_eq!(negotiated.deflate.is_some(), deflate);
        pair.client.send(Message::text("hello")).unwrap();
        pair.client
            .send_fragmented(Message::binary(vec![7u8; 1000]), 100)
            .unwrap();
        pair.drive();
        for event in events(&mut pair.server) {
            if let WsEvent::Message(message) = event {
                pair.server.send(message).unwrap();
            }
        }
        pair.drive();
        let got: Vec<_> = events(&mut pair.client)
            .into_iter()
            .filter_map(|e| match e {
                WsEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [Message::text("hello"), Message::binary(vec![7u8; 1000])]
        );
        pair.client.close(CloseCode::NORMAL, "bye").unwrap();
        assert_eq!(
            pair.client.send(Message::text("late")),
            Err(SendError::Closing)
        );
        pair.drive();
        let server_events = events(&mut pair.server);
        assert_eq!(
            server_events[0],
            WsEvent::Closing {
                code: CloseCode::NORMAL,
                reason: "bye".into()
            }
        );
        let info = closed(&server_events).expect("server closed");
        assert!(info.clean);
        assert_eq!(info.code, CloseCode::NORMAL);
        let client_events = events(&mut pair.client);
        let info = closed(&client_events).expect("client closed");
        assert!(info.clean, "{info:?}");
        assert_eq!(info.code, CloseCode::NORMAL);
        pair.drive();
        assert!(pair.is_done(Side::Server), "the server closes TCP first");
        assert!(pair.is_done(Side::Client));
    }
}

#[test]
fn pings_get_pongs_and_keepalive_fails_a_silent_peer() {
    let mut pair = pair(false);
    pair.drive();
    events(&mut pair.server);
    events(&mut pair.client);
    pair.client.ping(Bytes::from_static(b"abc")).unwrap();
    pair.drive();
    assert_eq!(
        events(&mut pair.server),
        [WsEvent::Ping(Bytes::from_static(b"abc"))]
    );
    assert_eq!(
        events(&mut pair.client),
        [WsEvent::Pong(Bytes::from_static(b"abc"))]
    );
    assert_eq!(
        pair.client.ping(Bytes::from(vec![0u8; 126])),
        Err(SendError::InvalidControl)
    );

    // Keepalive: a server whose peer answers nothing fails with 1011.
    let keepalive = WsConfig {
        ping_interval: Some(Duration::from_secs(10)),
        ping_timeout: Duration::from_secs(5),
        ..config(false)
    };
    let mut raw = Pair::new(
        RawPeer::new(),
        WsConn::server(keepalive, Negotiated::default()),
    );
    raw.advance(Duration::from_secs(10));
    let wire = raw.client.take_received();
    assert_eq!(&wire[..2], &[0x89, 8], "a ping with an 8-byte counter");
    raw.advance(Duration::from_secs(5));
    let info = closed(&events(&mut raw.server)).cloned().expect("failed");
    assert_eq!(info.code, CloseCode::INTERNAL);
    assert_eq!(info.error, Some(WsError::PingTimeout));
    assert_eq!(&raw.client.take_received()[..4], &[0x88, 2, 0x03, 0xf3]);
}

#[test]
fn close_times_out_when_the_peer_never_answers() {
    let mut raw = Pair::new(
        RawPeer::new(),
        WsConn::server(config(false), Negotiated::default()),
    );
    raw.drive();
    raw.server.close(CloseCode::GOING_AWAY, "").unwrap();
    raw.drive();
    assert_eq!(raw.client.take_received(), [0x88, 2, 0x03, 0xe9]);
    raw.advance(Duration::from_secs(5));
    let info = closed(&events(&mut raw.server)).cloned().expect("closed");
    assert_eq!(info.error, Some(WsError::CloseTimeout));
    assert!(raw.is_lost(Side::Server), "aborted");
}

#[test]
fn backpressure_pauses_reading_and_reports_drained() {
    let mut server = WsConn::server(config(false), Negotiated::default());
    let now = Instant::now();
    server.handle_connected(now);
    assert!(server.can_send() && server.wants_input());
    server.handle_writable(false, now);
    assert!(
        !server.can_send() && server.wants_input(),
        "the application decides"
    );
    server.pause_reading();
    assert!(!server.wants_input());
    server.handle_writable(true, now);
    server.resume_reading();
    let got = events(&mut server);
    assert_eq!(got.last(), Some(&WsEvent::Drained));
    // A full machine buffer also stops reading.
    server
        .send(Message::binary(vec![0u8; server.config().send_buffer]))
        .unwrap();
    assert!(!server.can_send() && !server.wants_input());
    while server.poll_transmit(now).is_some() {}
    assert!(server.can_send() && server.wants_input());
}

#[test]
fn shared_frames_reach_plain_and_deflate_clients() {
    let mut deflater = Deflater::new(6, 15, true);
    let message = Message::text("broadcast ".repeat(20));
    let plain = encode_shared(&message, None);
    let packed = encode_shared(&message, Some(&mut deflater));
    assert!(packed.bytes().len() < plain.bytes().len());
    for deflate in [false, true] {
        let mut pair = pair(deflate);
        pair.drive();
        events(&mut pair.client);
        // Interleave with the connection's own compressed messages.
        pair.server.send(Message::text("own ".repeat(20))).unwrap();
        let frame = if deflate { &packed } else { &plain };
        pair.server.send_shared(frame).unwrap();
        pair.server.send(Message::text("own ".repeat(20))).unwrap();
        pair.drive();
        let got: Vec<_> = events(&mut pair.client)
            .into_iter()
            .filter_map(|e| match e {
                WsEvent::Message(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(
            got,
            [
                Message::text("own ".repeat(20)),
                message.clone(),
                Message::text("own ".repeat(20))
            ]
        );
        if !deflate {
            assert_eq!(pair.server.send_shared(&packed), Err(SendError::NotAllowed));
        }
    }
    let mut client = WsConn::client(config(false), &request());
    assert_eq!(client.send_shared(&plain), Err(SendError::NotOpen));
}

/// What a faulty run sends: sizes drawn from the seed, smaller on links with tiny segments.
fn messages(seed: u64, small: bool) -> Vec<(Message, usize)> {
    let mut rng = crate::kit::sim::SimRng::new(seed);
    let sizes = [
        0usize, 1, 2, 125, 126, 127, 1000, 4096, 65_535, 65_536, 70_000,
    ];
    let count = 1 + rng.below(12) as usize;
    (0..count)
        .map(|i| {
            let mut len = sizes[rng.below(sizes.len() as u64) as usize];
            if small {
                len = len.min(300);
            }
            let message = if rng.below(2) == 0 {
                // Multi-byte characters, so fragments split them.
                let text: String = "é€😀a".chars().cycle().take(len / 3).collect();
                Message::text(text)
            } else {
                Message::binary(
                    (0..len)
                        .map(|b| (b as u8).wrapping_mul(i as u8 + 7))
                        .collect::<Vec<u8>>(),
                )
            };
            let fragment = [usize::MAX, 1, 7, 1000][rng.below(4) as usize];
            (message, fragment)
        })
        .collect()
}

#[test]
fn faulty_links_echo_every_message_in_order() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..300).collect(),
    };
    for seed in seeds {
        let sim = SimConfig::faulty(seed);
        let small = sim.max_segment < 100;
        let deflate = seed % 2 == 1;
        // Clock jumps of minutes must not end the run: the timeouts are long here.
        let patient = WsConfig {
            handshake_timeout: Duration::from_secs(86_400),
            close_timeout: Duration::from_secs(86_400),
            ..config(deflate)
        };
        let mut pair = Pair::with_config(
            WsConn::client(patient.clone(), &request()),
            WsConn::accept(patient),
            sim,
        )
        .traced();
        let sent = messages(seed, small);
        let mut queue: VecDeque<_> = sent.iter().cloned().collect();
        let mut got = Vec::new();
        let mut client_closed = None;
        let mut server_closed = None;
        let expected = sent.len();
        pair.run(
            Duration::from_secs(3600),
            |client, event, _| match event {
                WsEvent::Open(_) => {
                    while let Some((message, fragment)) = queue.pop_front() {
                        client.send_fragmented(message, fragment).unwrap();
                    }
                }
                WsEvent::Message(message) => {
                    got.push(message);
                    if got.len() == expected {
                        client.close(CloseCode::NORMAL, "done").unwrap();
                    }
                }
                WsEvent::Closed(info) => client_closed = Some(info),
                _ => {}
            },
            |server, event, _| match event {
                WsEvent::Message(message) => {
                    server.send(message).unwrap();
                    if !server.can_send() {
                        server.pause_reading();
                    }
                }
                WsEvent::Drained => server.resume_reading(),
                WsEvent::Closed(info) => server_closed = Some(info),
                _ => {}
            },
        );
        let tail = pair
            .trace()
            .iter()
            .rev()
            .take(3000)
            .rev()
            .cloned()
            .collect::<Vec<_>>();
        let sent: Vec<Message> = sent.into_iter().map(|(m, _)| m).collect();
        let summary = |ms: &[Message]| {
            ms.iter()
                .map(|m| (m.is_text(), m.len()))
                .collect::<Vec<_>>()
        };
        assert!(
            got == sent,
            "seed {seed}: echoes differ: {:?} vs {:?}\n{}",
            summary(&got),
            summary(&sent),
            tail.join("\n")
        );
        let client_closed = client_closed
            .unwrap_or_else(|| panic!("seed {seed}: client not closed\n{}", tail.join("\n")));
        let server_closed = server_closed
            .unwrap_or_else(|| panic!("seed {seed}: server not closed\n{}", tail.join("\n")));
        assert!(
            client_closed.clean && server_closed.clean,
            "seed {seed}: {client_closed:?} {server_closed:?}\n{}",
            tail.join("\n")
        );
        assert_eq!(server_closed.code, CloseCode::NORMAL, "seed {seed}");
        assert!(pair.is_done(Side::Server), "seed {seed}: server still open");
    }
}

#[test]
fn broken_links_always_end_in_one_closed_event() {
    for seed in 0..200 {
        let sim = SimConfig::faulty(seed).with_breakage();
        let mut pair = Pair::with_config(
            WsConn::client(config(seed % 2 == 0), &request()),
            WsConn::accept(config(seed % 2 == 0)),
            sim,
        );
        let (mut client_closes, mut server_closes) = (0usize, 0usize);
        let sent = messages(seed, true);
        pair.run(
            Duration::from_secs(3600),
            |client, event, _| match event {
                WsEvent::Open(_) => {
                    for (message, fragment) in sent.iter().cloned() {
                        let _ = client.send_fragmented(message, fragment);
                    }
                    let _ = client.close(CloseCode::NORMAL, "");
                }
                WsEvent::Closed(_) => client_closes += 1,
                _ => {}
            },
            |server, event, _| match event {
                WsEvent::Message(message) => {
                    let _ = server.send(message);
                }
                WsEvent::Closed(_) => server_closes += 1,
                _ => {}
            },
        );
        assert_eq!((client_closes, server_closes), (1, 1), "seed {seed}");
        assert!(
            pair.client.poll_timeout().is_none(),
            "seed {seed}: client timer left"
        );
        assert!(
            pair.server.poll_timeout().is_none(),
            "seed {seed}: server timer left"
        );
    }
}
