//! The HTTP/2 server machine against a scripted client in a [`Pair`]: no reactor, a virtual
//! clock. Rule-by-rule cases are in `tests/h2_conformance.rs`; here the behaviours an
//! application sees: answers, streaming, flow control both ways, trailers, shutdown,
//! idleness, memory bounds, and faulty links.

use std::time::Duration;

use super::*;
use crate::http::proto::h2::script::{Received, ScriptedClient, request_fields};
use crate::http::proto::server::ServerConfig;
use crate::kit::sim::{Pair, RawPeer, SimConfig};

struct H2 {
    pair: Pair<RawPeer, H2ServerConn>,
    client: ScriptedClient,
    reader: ScriptedClient,
}

impl H2 {
    fn with(config: ServerConfig) -> Self {
        let client = ScriptedClient::new();
        let mut pair = Pair::new(RawPeer::new(), H2ServerConn::new(&config));
        pair.client.send(client.preface());
        let mut h2 = Self {
            pair,
            client,
            reader: ScriptedClient::new(),
        };
        h2.read();
        // As a client does once the server's SETTINGS came (else SETTINGS_TIMEOUT).
        h2.send(h2.client.settings_ack());
        h2.read();
        h2
    }

    fn new() -> Self {
        Self::with(ServerConfig::default())
    }

    fn send(&mut self, bytes: Vec<u8>) {
        self.pair.client.send(bytes);
    }

    fn events(&mut self) -> Vec<ServerEvent> {
        self.pair.drive();
        std::iter::from_fn(|| self.pair.server.poll_event()).collect()
    }

    /// What the server sent since the last read, settings and window updates left out.
    fn read(&mut self) -> Vec<Received> {
        self.pair.drive();
        let bytes = self.pair.client.take_received();
        self.reader
            .read(&bytes)
            .into_iter()
            .filter(|r| {
                !matches!(
                    r,
                    Received::Frame(Frame::Settings { .. } | Frame::WindowUpdate { .. })
                )
            })
            .collect()
    }

    /// Everything the server sent since the last read.
    fn read_all(&mut self) -> Vec<Received> {
        self.pair.drive();
        let bytes = self.pair.client.take_received();
        self.reader.read(&bytes)
    }
}

fn id(stream: u32) -> RequestId {
    RequestId(u64::from(stream))
}

fn data_of(received: &[Received], stream: u32) -> (Vec<u8>, bool) {
    let mut body = Vec::new();
    let mut ended = false;
    for r in received {
        match r {
            Received::Frame(Frame::Data {
                stream: s,
                data,
                end_stream,
                ..
            }) if *s == stream => {
                body.extend_from_slice(data);
                ended |= *end_stream;
            }
            Received::Headers {
                stream: s,
                end_stream,
                ..
            } if *s == stream => ended |= *end_stream,
            _ => {}
        }
    }
    (body, ended)
}

#[test]
fn a_get_is_answered_with_status_fields_and_body() {
    let mut h2 = H2::new();
    h2.send(h2.client.get(1, "/hello?x=1"));
    let events = h2.events();
    let ServerEvent::Request {
        id: request,
        head,
        has_body,
        ..
    } = &events[0]
    else {
        panic!("{events:?}");
    };
    assert_eq!(*request, id(1));
    assert!(!has_body);
    assert_eq!(head.method, Method::Get);
    assert_eq!(head.path(), b"/hello");
    assert_eq!(head.query(), Some(&b"x=1"[..]));
    assert_eq!(head.version, crate::http::proto::Version::Http2);
    // :authority becomes Host for handlers written for HTTP/1.1.
    assert_eq!(head.headers.get("host"), Some(&b"test"[..]));
    h2.pair.server.set_date(*b"Mon, 07 Dec 2026 06:00:00 GMT");
    h2.pair
        .server
        .send_response(id(1), Response::text("Hello").header("Connection", "close"))
        .unwrap();
    let received = h2.read();
    assert_eq!(received[0].field(":status"), Some("200"));
    assert_eq!(received[0].field("content-length"), Some("5"));
    assert_eq!(
        received[0].field("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        received[0].field("date"),
        Some("Mon, 07 Dec 2026 06:00:00 GMT")
    );
    // Connection-specific fields are not sent (RFC 9113 §8.2.2).
    assert_eq!(received[0].field("connection"), None);
    assert_eq!(data_of(&received, 1), (b"Hello".to_vec(), true));
    assert_eq!(h2.pair.server.open_streams(), 0);
    let sent = h2.events();
    assert!(matches!(
        sent[0],
        ServerEvent::Sent {
            status: 200,
            id: Some(RequestId(1)),
            ..
        }
    ));
}

#[test]
fn streams_are_answered_in_any_order() {
    let mut h2 = H2::new();
    for stream in [1, 3, 5] {
        h2.send(h2.client.get(stream, "/"));
    }
    assert_eq!(h2.events().len(), 3);
    for (stream, body) in [(5, "five"), (1, "one"), (3, "three")] {
        h2.pair
            .server
            .send_response(id(stream), Response::text(body))
            .unwrap();
    }
    let received = h2.read();
    let order: Vec<u32> = received
        .iter()
        .filter_map(|r| match r {
            Received::Headers { stream, .. } => Some(*stream),
            _ => None,
        })
        .collect();
    assert_eq!(order, [5, 1, 3]);
    assert_eq!(data_of(&received, 3), (b"three".to_vec(), true));
    // Answered twice: refused.
    assert_eq!(
        h2.pair.server.send_response(id(1), Response::text("again")),
        Err(SendError::NotPending)
    );
}

#[test]
fn request_bodies_arrive_and_released_bytes_reopen_the_windows() {
    let mut config = ServerConfig::default();
    config.http2.stream_window = 1000;
    let mut h2 = H2::with(config);
    h2.send(h2.client.headers(1, &request_fields("POST", "/up"), false));
    h2.send(h2.client.data(1, &[b'a'; 600], false));
    let events = h2.events();
    assert!(matches!(
        events[0],
        ServerEvent::Request { has_body: true, .. }
    ));
    assert!(matches!(&events[1], ServerEvent::Body { data, .. } if data.len() == 600));
    // Not released: no WINDOW_UPDATE for the stream.
    let before = h2.read_all();
    assert!(
        !before
            .iter()
            .any(|r| matches!(r, Received::Frame(Frame::WindowUpdate { stream: 1, .. })))
    );
    h2.pair.server.release_body(id(1), 600);
    let after = h2.read_all();
    assert!(after.contains(&Received::Frame(Frame::WindowUpdate {
        stream: 1,
        increment: 600
    })));
    h2.send(h2.client.data(1, &[b'b'; 900], false));
    h2.send(h2.client.headers(1, &[("x-checksum", "abc")], true));
    let events = h2.events();
    assert!(matches!(&events[0], ServerEvent::Body { data, .. } if data.len() == 900));
    let ServerEvent::BodyEnd {
        trailers: Some(trailers),
        ..
    } = &events[1]
    else {
        panic!("{events:?}");
    };
    assert_eq!(trailers.get("x-checksum"), Some(&b"abc"[..]));
}

#[test]
fn a_streamed_answer_waits_for_the_peers_window() {
    let mut h2 = H2::new();
    // The client allows 10 bytes per stream.
    h2.send(h2.client.settings(&[(setting::INITIAL_WINDOW_SIZE, 10)]));
    h2.send(h2.client.window_update(0, 1 << 20));
    h2.send(h2.client.get(1, "/"));
    h2.events();
    h2.pair.server.send_head(id(1), Response::new(200)).unwrap();
    h2.pair
        .server
        .send_body(id(1), Bytes::from(vec![b'x'; 100_000]))
        .unwrap();
    let received = h2.read();
    assert_eq!(data_of(&received, 1), (vec![b'x'; 10], false));
    // More than the slack is queued: its writer waits.
    let mut waiting = Vec::new();
    h2.pair.server.waiting_streams(&mut waiting);
    assert_eq!(waiting, [id(1)]);
    h2.send(h2.client.window_update(1, 90_000));
    let received = h2.read();
    assert_eq!(data_of(&received, 1).0.len(), 90_000);
    // Frames are cut to the peer's SETTINGS_MAX_FRAME_SIZE.
    assert!(received.iter().all(|r| match r {
        Received::Frame(Frame::Data { data, .. }) => data.len() <= 16_384,
        _ => true,
    }));
    h2.send(h2.client.window_update(1, 100_000));
    h2.pair.server.finish(id(1), Some(Headers::new())).unwrap();
    let received = h2.read();
    assert_eq!(data_of(&received, 1), (vec![b'x'; 9_990], true));
}

#[test]
fn streamed_answers_end_with_trailers_and_declared_lengths_are_held_to() {
    let mut h2 = H2::new();
    h2.send(h2.client.get(1, "/"));
    h2.send(h2.client.get(3, "/"));
    h2.events();
    h2.pair
        .server
        .send_head(
            id(1),
            Response::new(200).header("content-type", "application/grpc"),
        )
        .unwrap();
    h2.pair
        .server
        .send_body(id(1), Bytes::from_static(b"msg"))
        .unwrap();
    let mut trailers = Headers::new();
    trailers.append("grpc-status", "0");
    h2.pair.server.finish(id(1), Some(trailers)).unwrap();
    let received = h2.read();
    assert_eq!(data_of(&received, 1), (b"msg".to_vec(), true));
    let last = received.last().unwrap();
    assert_eq!(last.field("grpc-status"), Some("0"));
    // Content-Length 10, 3 bytes, then finish: the stream is reset, not ended short.
    h2.pair
        .server
        .send_head(id(3), Response::new(200).header("Content-Length", "10"))
        .unwrap();
    h2.pair
        .server
        .send_body(id(3), Bytes::from_static(b"abc"))
        .unwrap();
    assert_eq!(
        h2.pair.server.finish(id(3), Some(Headers::new())),
        Err(SendError::Truncated)
    );
    let received = h2.read();
    assert!(received.contains(&Received::Frame(Frame::RstStream {
        stream: 3,
        code: ErrorCode::INTERNAL_ERROR
    })));
}

#[test]
fn a_whole_answer_larger_than_the_output_limit_goes_out_without_more_input() {
    let mut h2 = H2::new();
    // A transport that never says it is full: only the machine's own limit paces it.
    h2.pair = Pair::with_config(
        RawPeer::new(),
        H2ServerConn::new(&ServerConfig::default()),
        SimConfig {
            window: 64 << 20,
            ..SimConfig::ideal()
        },
    );
    h2.send(h2.client.preface());
    h2.read();
    // Windows so large that the client never needs to send a WINDOW_UPDATE.
    h2.send(
        h2.client
            .settings(&[(setting::INITIAL_WINDOW_SIZE, frame::MAX_WINDOW)]),
    );
    h2.send(
        h2.client
            .window_update(0, frame::MAX_WINDOW - DEFAULT_WINDOW),
    );
    h2.send(h2.client.get(1, "/big"));
    h2.events();
    let big = vec![b'b'; 4 * 1024 * 1024];
    h2.pair
        .server
        .send_response(id(1), Response::new(200).with_body(big.clone()))
        .unwrap();
    let received = h2.read();
    assert!(data_of(&received, 1) == (big, true));
}

#[test]
fn head_requests_get_no_body() {
    let mut h2 = H2::new();
    h2.send(h2.client.headers(1, &request_fields("HEAD", "/"), true));
    h2.events();
    h2.pair
        .server
        .send_response(id(1), Response::text("body"))
        .unwrap();
    let received = h2.read();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].field("content-length"), Some("4"));
    assert_eq!(data_of(&received, 1), (Vec::new(), true));
    // A HEAD answer that declares the length of the body it would have had keeps it.
    h2.send(h2.client.headers(3, &request_fields("HEAD", "/"), true));
    h2.events();
    h2.pair
        .server
        .send_response(id(3), Response::new(200).header("Content-Length", "42"))
        .unwrap();
    let received = h2.read();
    assert_eq!(received[0].field("content-length"), Some("42"));
}

#[test]
fn a_client_reset_ends_the_body_and_drops_the_answer() {
    let mut h2 = H2::new();
    h2.send(h2.client.headers(1, &request_fields("POST", "/"), false));
    h2.send(h2.client.rst_stream(1, ErrorCode::CANCEL));
    let events = h2.events();
    assert!(matches!(
        events[1],
        ServerEvent::BodyError {
            error: H1Error::UnexpectedEof,
            ..
        }
    ));
    assert_eq!(
        h2.pair.server.send_response(id(1), Response::text("late")),
        Err(SendError::NotPending)
    );
    assert!(h2.read().is_empty());
}

#[test]
fn graceful_shutdown_finishes_open_streams_then_closes() {
    let mut h2 = H2::new();
    h2.send(h2.client.get(1, "/"));
    h2.events();
    h2.pair.server.handle_shutdown(h2.pair.now());
    let received = h2.read();
    assert_eq!(
        received[0],
        Received::Frame(Frame::GoAway {
            last_stream: 1,
            code: ErrorCode::NO_ERROR,
            debug: Bytes::new()
        })
    );
    // New streams after the GOAWAY are refused, their DATA (sent before the client saw
    // the GOAWAY) does not end the connection; the open one is answered.
    h2.send(h2.client.get(3, "/"));
    h2.send(h2.client.headers(5, &request_fields("POST", "/"), false));
    h2.send(h2.client.data(5, b"late", true));
    assert!(h2.events().is_empty());
    assert!(!h2.pair.server.is_closing());
    let refused = h2.read();
    assert!(refused.contains(&Received::Frame(Frame::RstStream {
        stream: 5,
        code: ErrorCode::REFUSED_STREAM
    })));
    assert!(
        !refused
            .iter()
            .any(|r| matches!(r, Received::Frame(Frame::GoAway { .. }))),
        "{refused:?}"
    );
    h2.pair
        .server
        .send_response(id(1), Response::text("bye"))
        .unwrap();
    let received = h2.read();
    assert_eq!(data_of(&received, 1), (b"bye".to_vec(), true));
    assert!(h2.pair.server.is_closing());
    assert!(h2.pair.client.saw_eof());
}

#[test]
fn an_idle_connection_says_goaway_and_closes() {
    let config = ServerConfig {
        keep_alive_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let mut h2 = H2::with(config);
    h2.send(h2.client.get(1, "/"));
    h2.events();
    // Busy: no deadline while a stream is open.
    h2.pair.advance(Duration::from_secs(10));
    assert!(!h2.pair.server.is_closing());
    h2.pair
        .server
        .send_response(id(1), Response::text("x"))
        .unwrap();
    h2.read();
    h2.pair.advance(Duration::from_secs(6));
    let received = h2.read();
    assert!(matches!(
        received[0],
        Received::Frame(Frame::GoAway {
            code: ErrorCode::NO_ERROR,
            last_stream: 1,
            ..
        })
    ));
    assert!(h2.pair.client.saw_eof());
}

#[test]
fn a_peer_that_does_not_read_stops_the_reading() {
    let mut config = ServerConfig::default();
    config.http2.max_buffered_output = 64 * 1024;
    let client = ScriptedClient::new();
    let link = SimConfig {
        window: 16 * 1024,
        ..SimConfig::ideal()
    };
    let mut pair = Pair::with_config(RawPeer::new(), H2ServerConn::new(&config), link);
    pair.client.paused = true;
    pair.client.send(client.preface());
    pair.client.send(client.get(1, "/"));
    pair.drive();
    let _ = std::iter::from_fn(|| pair.server.poll_event()).count();
    pair.server
        .send_response(id(1), Response::text(vec![b'x'; 60_000]))
        .unwrap();
    pair.drive();
    // The transport is full: the server stops reading, so pings pile up no answers.
    assert!(!pair.server.wants_input());
    for _ in 0..900 {
        pair.client.send(client.ping([1; 8]));
    }
    pair.drive();
    assert!(!pair.server.is_closing());
    assert!(
        pair.server.held_output() <= 60_000,
        "{}",
        pair.server.held_output()
    );
    assert_eq!(pair.server.held_input(), 0);
    // The client reads again: everything moves.
    pair.client.paused = false;
    pair.drive();
    let received = ScriptedClient::new().read(&pair.client.take_received());
    let acks = received
        .iter()
        .filter(|r| matches!(r, Received::Frame(Frame::Ping { ack: true, .. })))
        .count();
    assert_eq!(acks, 900);
}

#[test]
fn large_request_heads_span_continuations_and_bodies_over_max_body_get_413() {
    let mut config = ServerConfig::default();
    config.limits.max_body = 10;
    let mut h2 = H2::with(config);
    let big = "v".repeat(20_000);
    let mut fields = request_fields("POST", "/");
    fields.push(("x-big", &big));
    let block = h2.client.block(&fields);
    h2.send(
        h2.client
            .frame(frame::kind::HEADERS, 0, 1, &block[..16_000]),
    );
    h2.send(h2.client.frame(
        frame::kind::CONTINUATION,
        frame::flag::END_HEADERS,
        1,
        &block[16_000..],
    ));
    let events = h2.events();
    let ServerEvent::Request { head, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert_eq!(head.headers.get("x-big").map(<[u8]>::len), Some(20_000));
    h2.send(h2.client.data(1, &[0; 11], false));
    let received = h2.read();
    assert_eq!(received[0].field(":status"), Some("413"));
}

#[test]
fn faulty_links_deliver_every_answer() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..200).collect(),
    };
    for seed in seeds {
        // The link stalls for seconds at a time: no deadline may cut it short.
        let mut config = ServerConfig {
            keep_alive_timeout: Duration::from_secs(100_000),
            body_read_timeout: Duration::from_secs(100_000),
            ..ServerConfig::default()
        };
        config.http2.stream_window = 100;
        config.http2.settings_timeout = None;
        let client = ScriptedClient::new();
        let mut pair = Pair::with_config(
            RawPeer::new(),
            H2ServerConn::new(&config),
            SimConfig::faulty(seed),
        );
        pair.client.send(client.preface());
        // Small windows both ways: the client allows 1,000 bytes per stream and opens them
        // as it reads below.
        pair.client
            .send(client.settings(&[(setting::INITIAL_WINDOW_SIZE, 1000)]));
        for i in 0..10u32 {
            let stream = 1 + 2 * i;
            if i % 2 == 0 {
                pair.client.send(client.get(stream, "/"));
            } else {
                pair.client
                    .send(client.headers(stream, &request_fields("POST", "/"), false));
                pair.client.send(client.data(stream, &[b'u'; 100], true));
            }
        }
        let mut reader = ScriptedClient::new();
        let mut bodies: HashMap<u32, (usize, bool)> = HashMap::new();
        let mut updates = Vec::new();
        for _ in 0..2000 {
            let events: Vec<ServerEvent> =
                std::iter::from_fn(|| pair.server.poll_event()).collect();
            for event in events {
                match event {
                    ServerEvent::Request { id, .. } => pair
                        .server
                        .send_response(id, Response::text(vec![b'd'; 3000]))
                        .unwrap(),
                    ServerEvent::Body { id, data } => pair.server.release_body(id, data.len()),
                    _ => {}
                }
            }
            for r in reader.read(&pair.client.take_received()) {
                if let Received::Frame(Frame::Data {
                    stream,
                    data,
                    end_stream,
                    ..
                }) = r
                {
                    let entry = bodies.entry(stream).or_default();
                    entry.0 += data.len();
                    entry.1 |= end_stream;
                    if !data.is_empty() {
                        updates.push(client.window_update(stream, data.len() as u32));
                        updates.push(client.window_update(0, data.len() as u32));
                    }
                }
            }
            for update in updates.drain(..) {
                pair.client.send(update);
            }
            if bodies.len() == 10 && bodies.values().all(|&(n, end)| n == 3000 && end) {
                break;
            }
            if !pair.step() {
                pair.advance(Duration::from_millis(10));
            }
        }
        assert_eq!(bodies.len(), 10, "seed {seed}: {bodies:?}");
        assert!(
            bodies.values().all(|&(n, end)| n == 3000 && end),
            "seed {seed}: {bodies:?}"
        );
    }
}

/// An RFC 8441 extended CONNECT for WebSocket on `stream`.
fn extended_connect(h2: &H2, stream: u32, protocol_field: bool) -> Vec<u8> {
    let mut fields = vec![(":method", "CONNECT")];
    if protocol_field {
        fields.push((":protocol", "websocket"));
    }
    fields.extend([
        (":scheme", "http"),
        (":path", "/chat"),
        (":authority", "test"),
        ("sec-websocket-version", "13"),
    ]);
    h2.client.headers(stream, &fields, false)
}

#[test]
fn extended_connect_is_advertised_and_its_stream_carries_data_both_ways() {
    let mut h2 = H2::new();
    // RFC 8441 §3: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 in the server's SETTINGS.
    let settings = {
        let mut pair = Pair::new(RawPeer::new(), H2ServerConn::new(&ServerConfig::default()));
        pair.client.send(ScriptedClient::new().preface());
        pair.drive();
        ScriptedClient::new().read(&pair.client.take_received())
    };
    let advertised = settings.iter().any(|r| match r {
        Received::Frame(Frame::Settings {
            ack: false,
            entries,
        }) => frame::settings_entries(entries).any(|e| e == (setting::ENABLE_CONNECT_PROTOCOL, 1)),
        _ => false,
    });
    assert!(advertised, "{settings:?}");
    h2.send(extended_connect(&h2, 1, true));
    let events = h2.events();
    let ServerEvent::Request { head, has_body, .. } = &events[0] else {
        panic!("{events:?}");
    };
    assert!(has_body);
    assert_eq!(head.method, Method::Connect);
    assert_eq!(head.protocol.as_deref(), Some(&b"websocket"[..]));
    assert_eq!(head.path(), b"/chat");
    h2.pair.server.send_head(id(1), Response::new(200)).unwrap();
    let received = h2.read();
    assert_eq!(received[0].field(":status"), Some("200"));
    // A 2xx to CONNECT has no Content-Length (RFC 9110 §9.3.6).
    assert_eq!(received[0].field("content-length"), None);
    h2.send(h2.client.data(1, b"ping", false));
    let events = h2.events();
    assert!(
        matches!(&events[..], [ServerEvent::Body { data, .. }] if &data[..] == b"ping"),
        "{events:?}"
    );
    h2.pair
        .server
        .send_body(id(1), Bytes::from_static(b"pong"))
        .unwrap();
    assert_eq!(data_of(&h2.read(), 1), (b"pong".to_vec(), false));
    assert!(h2.pair.server.stream_writable(id(1)));
    // A reset from the application is CANCEL (RFC 9113 §7).
    h2.pair.server.cancel_stream(id(1));
    let received = h2.read();
    assert!(
        received.contains(&Received::Frame(Frame::RstStream {
            stream: 1,
            code: ErrorCode::CANCEL
        })),
        "{received:?}"
    );
    assert!(!h2.pair.server.has_stream(id(1)));
}

#[test]
fn protocol_pseudo_field_is_malformed_when_the_setting_is_off_or_without_connect() {
    let mut config = ServerConfig::default();
    config.http2.enable_connect_protocol = false;
    let mut h2 = H2::with(config);
    // RFC 8441 §4/§3: :protocol from a client that was not sent the setting is malformed:
    // a stream error PROTOCOL_ERROR.
    h2.send(extended_connect(&h2, 1, true));
    assert!(h2.events().is_empty());
    let reset = Received::Frame(Frame::RstStream {
        stream: 1,
        code: ErrorCode::PROTOCOL_ERROR,
    });
    assert!(h2.read().contains(&reset));
    // On: :protocol without CONNECT, or an extended CONNECT without :path, is malformed.
    let mut h2 = H2::new();
    let get = h2.client.headers(
        1,
        &[
            (":method", "GET"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", "/"),
            (":authority", "test"),
        ],
        false,
    );
    h2.send(get);
    let no_path = h2.client.headers(
        3,
        &[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":authority", "test"),
        ],
        false,
    );
    h2.send(no_path);
    assert!(h2.events().is_empty());
    let received = h2.read();
    for stream in [1, 3] {
        let reset = Received::Frame(Frame::RstStream {
            stream,
            code: ErrorCode::PROTOCOL_ERROR,
        });
        assert!(received.contains(&reset), "{received:?}");
    }
    // A plain CONNECT (RFC 9113 §8.5) is still a request.
    h2.send(h2.client.headers(
        5,
        &[(":method", "CONNECT"), (":authority", "test:443")],
        false,
    ));
    assert_eq!(h2.events().len(), 1);
}

#[test]
fn a_stalled_request_body_ends_its_stream_alone() {
    let config = ServerConfig {
        body_read_timeout: Duration::from_secs(5),
        keep_alive_timeout: Duration::from_secs(3600),
        ..ServerConfig::default()
    };
    let mut h2 = H2::with(config);
    // Stream 1 sends part of its body and stalls; stream 3 sends its whole body later;
    // stream 5 fills its window and waits for the application (which holds the bytes).
    h2.send(
        h2.client
            .headers(1, &request_fields("POST", "/stall"), false),
    );
    h2.send(h2.client.data(1, b"part", false));
    h2.send(
        h2.client
            .headers(3, &request_fields("POST", "/slow"), false),
    );
    h2.send(
        h2.client
            .headers(5, &request_fields("POST", "/held"), false),
    );
    let window = ServerConfig::default().http2.stream_window as usize;
    for _ in 0..window / 16_384 {
        h2.send(h2.client.data(5, &[b'h'; 16_384], false));
    }
    // A CONNECT tunnel that stays quiet is not a stalled body.
    h2.send(extended_connect(&h2, 7, true));
    h2.events();
    h2.pair.advance(Duration::from_secs(4));
    h2.send(h2.client.data(3, b"more", false));
    h2.events();
    h2.pair.advance(Duration::from_secs(2));
    let received = h2.read();
    // Stream 1: 408, then RST_STREAM(NO_ERROR): the client may stop sending (§8.1).
    let head = received
        .iter()
        .find(|r| matches!(r, Received::Headers { stream: 1, .. }))
        .unwrap_or_else(|| panic!("{received:?}"));
    assert_eq!(head.field(":status"), Some("408"));
    assert!(received.contains(&Received::Frame(Frame::RstStream {
        stream: 1,
        code: ErrorCode::NO_ERROR
    })));
    // The others are untouched: stream 3 progressed 2 s ago, stream 5 is held up by the
    // application (its window is shut), stream 7 is a tunnel.
    for stream in [3, 5, 7] {
        assert!(
            !received.iter().any(|r| match r {
                Received::Headers { stream: s, .. } => *s == stream,
                Received::Frame(Frame::RstStream { stream: s, .. }) => *s == stream,
                _ => false,
            }),
            "stream {stream}: {received:?}"
        );
    }
    // Stream 3 stalls in turn (its deadline started at its last DATA), after an answer
    // began: a reset, CANCEL.
    h2.pair.server.send_head(id(3), Response::new(200)).unwrap();
    h2.pair.advance(Duration::from_secs(4));
    let received = h2.read();
    assert!(
        received.contains(&Received::Frame(Frame::RstStream {
            stream: 3,
            code: ErrorCode::CANCEL
        })),
        "{received:?}"
    );
    assert!(!h2.pair.server.is_closing());
    assert!(h2.pair.server.has_stream(id(5)) && h2.pair.server.has_stream(id(7)));
}

#[test]
fn settings_never_acknowledged_end_the_connection_with_settings_timeout() {
    // A client that acknowledges (H2::with does) is never timed out.
    let mut h2 = H2::new();
    h2.pair.advance(Duration::from_secs(30));
    assert!(!h2.pair.server.is_closing());
    // One that does not: GOAWAY SETTINGS_TIMEOUT after 10 s (RFC 9113 §6.5.3).
    let client = ScriptedClient::new();
    let mut pair = Pair::new(RawPeer::new(), H2ServerConn::new(&ServerConfig::default()));
    pair.client.send(client.preface());
    pair.drive();
    pair.advance(Duration::from_secs(9));
    assert!(!pair.server.is_closing());
    pair.advance(Duration::from_secs(2));
    let received = ScriptedClient::new().read(&pair.client.take_received());
    assert!(
        received.iter().any(|r| matches!(
            r,
            Received::Frame(Frame::GoAway {
                code: ErrorCode::SETTINGS_TIMEOUT,
                ..
            })
        )),
        "{received:?}"
    );
}
