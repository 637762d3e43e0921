//! The client machine against the server machine in a [`Pair`] (no reactor, a virtual
//! clock), and against raw server bytes ([`RawPeer`]).

use std::time::Duration;

use super::*;
use crate::http::proto::server::{RequestId, Response, ServerConfig, ServerConn, ServerEvent};
use crate::kit::sim::{Pair, RawPeer, Side, SimConfig};

fn get(path: &str) -> OutgoingRequest {
    OutgoingRequest {
        method: Method::Get,
        head: Bytes::from(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")),
        body: Bytes::new(),
        wants_close: false,
        streamed: None,
    }
}

fn post(path: &str, body: &str) -> OutgoingRequest {
    OutgoingRequest {
        method: Method::Post,
        head: Bytes::from(format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )),
        body: Bytes::from(body.to_owned()),
        wants_close: false,
        streamed: None,
    }
}

fn pair() -> Pair<ClientConn, ServerConn> {
    Pair::new(
        ClientConn::new(ClientConnConfig::default()),
        ServerConn::new(ServerConfig::default()),
    )
}

/// A response as the client machine reported it.
#[derive(Debug, Default, PartialEq)]
struct Got {
    status: u16,
    body: Vec<u8>,
    end: Option<bool>,
    failed: Option<ExchangeError>,
}

fn collect(events: impl IntoIterator<Item = ClientEvent>) -> Got {
    let mut got = Got::default();
    for event in events {
        match event {
            ClientEvent::Head(head) => got.status = head.status,
            ClientEvent::Data(data) => got.body.extend_from_slice(&data),
            ClientEvent::End { reusable, .. } => got.end = Some(reusable),
            ClientEvent::Failed { error, .. } => got.failed = Some(error),
        }
    }
    got
}

/// Echoes each request's path and body, at once.
fn echo(
    server: &mut ServerConn,
    event: ServerEvent,
    bodies: &mut Vec<(RequestId, Vec<u8>, String)>,
) {
    match event {
        ServerEvent::Request {
            id, head, has_body, ..
        } => {
            let path = String::from_utf8_lossy(head.path()).into_owned();
            if has_body {
                bodies.push((id, Vec::new(), path));
            } else {
                server
                    .send_response(id, Response::text(path))
                    .expect("answer");
            }
        }
        ServerEvent::Body { id, data } => {
            server.release_body(id, data.len());
            if let Some(entry) = bodies.iter_mut().find(|(i, ..)| *i == id) {
                entry.1.extend_from_slice(&data);
            }
        }
        ServerEvent::BodyEnd { id, .. } => {
            if let Some(at) = bodies.iter().position(|(i, ..)| *i == id) {
                let (id, body, path) = bodies.remove(at);
                let mut text = path.into_bytes();
                text.push(b':');
                text.extend_from_slice(&body);
                server
                    .send_response(id, Response::text(text))
                    .expect("answer");
            }
        }
        _ => {}
    }
}

/// Sends `request` and runs the pair for up to 5 s of simulated time.
fn exchange(pair: &mut Pair<ClientConn, ServerConn>, request: OutgoingRequest) -> Got {
    exchange_within(pair, request, Duration::from_secs(5))
}

fn exchange_within(
    pair: &mut Pair<ClientConn, ServerConn>,
    request: OutgoingRequest,
    limit: Duration,
) -> Got {
    pair.client.send_request(request).expect("idle");
    let mut events = Vec::new();
    let mut bodies = Vec::new();
    pair.run(
        limit,
        |_, e, _| events.push(e),
        |server, e, _| echo(server, e, &mut bodies),
    );
    collect(events)
}

#[test]
fn requests_reuse_one_keep_alive_connection() {
    let mut pair = pair();
    for n in 0..3 {
        let got = exchange(&mut pair, get(&format!("/{n}")));
        assert_eq!(got.status, 200);
        assert_eq!(got.body, format!("/{n}").as_bytes());
        assert_eq!(got.end, Some(true), "reusable");
        assert!(pair.client.is_idle());
    }
}

#[test]
fn a_whole_body_goes_with_the_request() {
    let mut pair = pair();
    let got = exchange(&mut pair, post("/p", "payload"));
    assert_eq!(got.body, b"/p:payload");
}

#[test]
fn a_streamed_chunked_upload_is_framed_and_ended() {
    let mut pair = pair();
    let mut request = post("/up", "");
    request.head =
        Bytes::from_static(b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
    request.streamed = Some(None);
    pair.client.send_request(request).expect("idle");
    assert!(pair.client.upload_ready());
    for piece in ["ab", "cde", "f"] {
        pair.client.send_body(Bytes::from(piece)).expect("piece");
    }
    pair.client.finish_body().expect("end");
    let mut events = Vec::new();
    let mut bodies = Vec::new();
    pair.run(
        Duration::from_secs(5),
        |_, e, _| events.push(e),
        |server, e, _| echo(server, e, &mut bodies),
    );
    let got = collect(events);
    assert_eq!(got.body, b"/up:abcdef");
    assert_eq!(got.end, Some(true));
}

#[test]
fn a_sized_upload_must_match_its_length() {
    let mut client = ClientConn::new(ClientConnConfig::default());
    let mut request = post("/up", "");
    request.streamed = Some(Some(3));
    client.send_request(request).expect("idle");
    assert_eq!(
        client.send_body(Bytes::from_static(b"abcd")),
        Err(ExchangeError::RequestBodyLength {
            declared: 3,
            sent: 4
        })
    );
    assert_eq!(client.poll_close(), Some(Close::Abort));

    let mut short = ClientConn::new(ClientConnConfig::default());
    let mut request = post("/up", "");
    request.streamed = Some(Some(3));
    short.send_request(request).expect("idle");
    short.send_body(Bytes::from_static(b"ab")).expect("piece");
    assert!(short.finish_body().is_err());
}

#[test]
fn connection_close_from_the_server_is_not_reusable() {
    let mut pair = Pair::new(
        ClientConn::new(ClientConnConfig::default()),
        ServerConn::new(ServerConfig {
            keep_alive: false,
            ..ServerConfig::default()
        }),
    );
    let got = exchange(&mut pair, get("/x"));
    assert_eq!(got.end, Some(false));
    assert!(pair.is_done(Side::Client));
}

#[test]
fn interim_responses_are_skipped() {
    let mut pair = Pair::new(ClientConn::new(ClientConnConfig::default()), RawPeer::new());
    pair.client.send_request(get("/")).expect("idle");
    pair.server.send(
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    );
    pair.drive();
    let got = collect(std::iter::from_fn(|| pair.client.poll_event()));
    assert_eq!(
        (got.status, got.body.as_slice(), got.end),
        (200, &b"ok"[..], Some(true))
    );
}

#[test]
fn response_timeout_fails_the_exchange_before_any_byte() {
    let config = ClientConnConfig {
        response_timeout: Duration::from_secs(2),
        ..ClientConnConfig::default()
    };
    let mut pair = Pair::new(ClientConn::new(config), RawPeer::new());
    pair.client.send_request(get("/slow")).expect("idle");
    pair.advance(Duration::from_secs(2));
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(matches!(
        events.as_slice(),
        [ClientEvent::Failed {
            error: ExchangeError::ResponseTimeout { .. },
            received: false
        }]
    ));
    assert!(pair.server.saw_reset());
}

#[test]
fn body_stall_times_out_unless_the_application_paused_it() {
    let config = ClientConnConfig {
        body_timeout: Duration::from_secs(2),
        ..ClientConnConfig::default()
    };
    let mut pair = Pair::new(ClientConn::new(config.clone()), RawPeer::new());
    pair.client.send_request(get("/")).expect("idle");
    pair.server
        .send("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
    pair.drive();
    pair.client.set_paused(true);
    pair.advance(Duration::from_secs(60));
    assert!(
        !pair.is_done(Side::Client),
        "a paused body is not a stalled one"
    );
    pair.client.set_paused(false);
    pair.advance(Duration::from_secs(2));
    let got = collect(std::iter::from_fn(|| pair.client.poll_event()));
    assert!(
        matches!(got.failed, Some(ExchangeError::BodyTimeout { .. })),
        "{got:?}"
    );
}

#[test]
fn bytes_on_an_idle_connection_end_it() {
    let mut pair = Pair::new(ClientConn::new(ClientConnConfig::default()), RawPeer::new());
    pair.server
        .send("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n");
    pair.drive();
    assert!(pair.client.is_closing());
    assert!(pair.server.saw_reset());
}

#[test]
fn bytes_after_the_response_make_it_not_reusable() {
    let mut pair = Pair::new(ClientConn::new(ClientConnConfig::default()), RawPeer::new());
    pair.client.send_request(get("/")).expect("idle");
    pair.server
        .send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA");
    pair.drive();
    let got = collect(std::iter::from_fn(|| pair.client.poll_event()));
    assert_eq!(got.end, Some(false));
}

#[test]
fn a_close_delimited_body_ends_at_the_close() {
    let mut pair = Pair::new(ClientConn::new(ClientConnConfig::default()), RawPeer::new());
    pair.client.send_request(get("/")).expect("idle");
    // The server reads the request before it answers and closes (closing on unread bytes
    // would reset the connection).
    pair.drive();
    pair.server.send("HTTP/1.0 200 OK\r\n\r\nall of it");
    pair.server.close();
    pair.drive();
    let got = collect(std::iter::from_fn(|| pair.client.poll_event()));
    assert_eq!(
        (got.body.as_slice(), got.end),
        (&b"all of it"[..], Some(false))
    );
}

#[test]
fn an_announced_body_over_the_limit_fails_before_reading_it() {
    let config = ClientConnConfig {
        limits: H1Limits {
            max_body: 10,
            ..H1Limits::default()
        },
        ..ClientConnConfig::default()
    };
    let mut pair = Pair::new(ClientConn::new(config), RawPeer::new());
    pair.client.send_request(get("/")).expect("idle");
    pair.server
        .send("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n");
    pair.drive();
    let got = collect(std::iter::from_fn(|| pair.client.poll_event()));
    assert_eq!(got.failed, Some(ExchangeError::BodyTooLarge { limit: 10 }));
}

#[test]
fn the_server_closing_an_idle_connection_fails_a_racing_request_as_unreceived() {
    let mut config = SimConfig::ideal();
    config.max_delay = Duration::from_millis(20);
    config.seed = 3;
    let mut pair = Pair::with_config(
        ClientConn::new(ClientConnConfig::default()),
        RawPeer::new(),
        config,
    );
    pair.client.send_request(get("/a")).expect("idle");
    pair.advance(Duration::from_millis(100));
    pair.server
        .send("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na");
    pair.advance(Duration::from_millis(100));
    let first = collect(std::iter::from_fn(|| pair.client.poll_event()));
    assert_eq!(first.end, Some(true));
    // The server closes the idle connection just as the client sends its next request:
    // its FIN (or, once the request reaches the closed socket, a reset) ends the exchange
    // before any byte of a response.
    pair.server.close();
    pair.client
        .send_request(get("/b"))
        .expect("still idle here");
    pair.advance(Duration::from_millis(100));
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        matches!(
            events.as_slice(),
            [ClientEvent::Failed {
                error: ExchangeError::Closed,
                received: false
            }]
        ),
        "{events:?}"
    );
}

#[test]
fn idle_connection_closes_after_its_idle_timeout() {
    let config = ClientConnConfig {
        idle_timeout: Duration::from_secs(30),
        ..ClientConnConfig::default()
    };
    let mut pair = Pair::new(
        ClientConn::new(config),
        ServerConn::new(ServerConfig::default()),
    );
    // The exchange ends within its first 5 simulated seconds; the idle time starts then.
    assert_eq!(exchange(&mut pair, get("/a")).end, Some(true));
    pair.advance(Duration::from_secs(20));
    assert!(pair.client.is_idle());
    pair.advance(Duration::from_secs(20));
    assert!(pair.is_done(Side::Client));
}

#[test]
fn shutdown_closes_an_idle_connection_and_lets_a_busy_one_finish() {
    let mut pair = pair();
    pair.client.send_request(get("/a")).expect("idle");
    let now = pair.now();
    pair.client.handle_shutdown(now);
    let mut events = Vec::new();
    let mut bodies = Vec::new();
    pair.run(
        Duration::from_secs(5),
        |_, e, _| events.push(e),
        |server, e, _| echo(server, e, &mut bodies),
    );
    let got = collect(events);
    assert_eq!(
        (got.status, got.end),
        (200, Some(false)),
        "finished, not kept"
    );
    assert!(pair.is_done(Side::Client));
}

/// Sequential requests, with and without bodies, through faulty links (splits, delays,
/// stalls, a small window, clock jumps shorter than every timeout): every response arrives
/// whole and the connection is reused throughout.
#[test]
fn faulty_links_carry_every_exchange_on_one_connection() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..200).collect(),
    };
    for seed in seeds {
        let long = Duration::from_secs(3600);
        let client = ClientConnConfig {
            response_timeout: long,
            body_timeout: long,
            idle_timeout: long,
            ..ClientConnConfig::default()
        };
        let server = ServerConfig {
            header_read_timeout: long,
            body_read_timeout: long,
            keep_alive_timeout: long,
            body_buffer: 8,
            ..ServerConfig::default()
        };
        let mut pair = Pair::with_config(
            ClientConn::new(client),
            ServerConn::new(server),
            SimConfig::faulty(seed),
        )
        .traced();
        for n in 0..8 {
            let request = if n % 2 == 0 {
                get(&format!("/{n}"))
            } else {
                post(&format!("/{n}"), &"x".repeat(n * 7))
            };
            let expected = if n % 2 == 0 {
                format!("/{n}")
            } else {
                format!("/{n}:{}", "x".repeat(n * 7))
            };
            // Stalls and clock jumps take simulated minutes; the timeouts are an hour.
            let got = exchange_within(&mut pair, request, Duration::from_secs(1800));
            let trace = pair.trace().join("\n");
            assert_eq!(
                got.body,
                expected.as_bytes(),
                "seed {seed}, request {n}\n{trace}"
            );
            assert_eq!(
                got.end,
                Some(true),
                "seed {seed}, request {n}: {got:?}\n{trace}"
            );
        }
    }
}

#[test]
fn nothing_of_an_upload_is_sent_after_the_response_closed_the_connection() {
    // Found by fuzz/http_client_conn: a close-delimited response ended by the server's close
    // while a chunked upload was still open; finishing the upload then wrote its last chunk
    // after the close.
    let mut client = ClientConn::new(ClientConnConfig::default());
    let now = Instant::now();
    client.handle_connected(now);
    let mut request = post("/up", "");
    request.streamed = Some(None);
    client.send_request(request).expect("idle");
    while client.poll_transmit(now).is_some() {}
    client.handle_input(b"HTTP/1.1 200 OK\r\n\r\nbody until close", now);
    client.handle_eof(now);
    assert_eq!(client.poll_close(), Some(Close::Graceful));
    client
        .send_body(Bytes::from_static(b"late"))
        .expect("ignored");
    client.finish_body().expect("ignored");
    assert!(client.poll_transmit(now).is_none(), "bytes after the close");
}
