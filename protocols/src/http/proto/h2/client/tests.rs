//! The HTTP/2 client machine against the server machine in a [`Pair`]: multiplexing within
//! the server's limit, bodies and windows both ways, trailers, resets, GOAWAY, and faulty
//! links.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::http::proto::h2::H2ServerConn;
use crate::http::proto::server::{RequestId, Response, ServerConfig, ServerEvent};
use crate::kit::sim::{Pair, SimConfig};

fn get<'a>(path: &'a [u8], headers: &'a Headers) -> RequestParts<'a> {
    RequestParts {
        method: &Method::Get,
        scheme: "http",
        authority: b"test",
        path,
        headers,
    }
}

/// What the client got per stream: status, body, trailers, reset code.
#[derive(Debug, Default)]
struct Got {
    status: u16,
    body: Vec<u8>,
    trailers: Option<Headers>,
    ended: bool,
    reset: Option<ErrorCode>,
}

fn on_client(
    got: &mut BTreeMap<u32, Got>,
) -> impl FnMut(&mut H2ClientConn, ClientEvent, Instant) + '_ {
    move |client, event, _| match event {
        ClientEvent::Response { id, head, .. } => got.entry(id).or_default().status = head.status,
        ClientEvent::Body { id, data } => {
            client.release_body(id, data.len());
            got.entry(id).or_default().body.extend_from_slice(&data);
        }
        ClientEvent::End { id, trailers } => {
            let entry = got.entry(id).or_default();
            entry.ended = true;
            entry.trailers = trailers;
        }
        ClientEvent::Reset { id, code } => got.entry(id).or_default().reset = Some(code),
        ClientEvent::TimedOut { id } | ClientEvent::BodyTimedOut { id } => {
            got.entry(id).or_default().reset = Some(ErrorCode::CANCEL);
        }
    }
}

/// A server application: echoes the path and any body back, with a trailer.
fn echo_server() -> impl FnMut(&mut H2ServerConn, ServerEvent, Instant) {
    let mut bodies: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    let mut paths: BTreeMap<u64, Bytes> = BTreeMap::new();
    move |server, event, _| match event {
        ServerEvent::Request {
            id, head, has_body, ..
        } => {
            if has_body {
                paths.insert(id.0, head.target);
            } else {
                let _ = server.send_response(id, Response::text(head.target));
            }
        }
        ServerEvent::Body { id, data } => {
            server.release_body(id, data.len());
            bodies.entry(id.0).or_default().extend_from_slice(&data);
        }
        ServerEvent::BodyEnd { id, .. } => {
            let body = bodies.remove(&id.0).unwrap_or_default();
            let _ = server.send_head(id, Response::new(200));
            let _ = server.send_body(id, Bytes::from(body));
            let mut trailers = Headers::new();
            trailers.append("x-path", paths.remove(&id.0).unwrap_or_default());
            let _ = server.finish(id, Some(trailers));
        }
        _ => {}
    }
}

#[test]
fn requests_multiplex_and_answers_come_back_per_stream() {
    let mut pair = Pair::new(
        H2ClientConn::new(H2Config::default()),
        H2ServerConn::new(&ServerConfig::default()),
    );
    let headers = Headers::new();
    let mut ids = Vec::new();
    for i in 0..20 {
        let path = format!("/r{i}");
        ids.push(
            pair.client
                .send_request(get(path.as_bytes(), &headers), true)
                .unwrap(),
        );
    }
    assert_eq!(ids[..3], [1, 3, 5]);
    let mut got = BTreeMap::new();
    pair.run(Duration::from_secs(10), on_client(&mut got), echo_server());
    for (i, id) in ids.iter().enumerate() {
        let entry = &got[id];
        assert_eq!(entry.status, 200);
        assert_eq!(entry.body, format!("/r{i}").as_bytes());
        assert!(entry.ended);
    }
    assert_eq!(pair.client.open_streams(), 0);
}

#[test]
fn the_servers_stream_limit_is_honoured() {
    let mut config = ServerConfig::default();
    config.http2.max_concurrent_streams = 3;
    let mut pair = Pair::new(
        H2ClientConn::new(H2Config::default()),
        H2ServerConn::new(&config),
    );
    pair.drive();
    let headers = Headers::new();
    for _ in 0..3 {
        pair.client.send_request(get(b"/", &headers), true).unwrap();
    }
    assert_eq!(
        pair.client.send_request(get(b"/", &headers), true),
        Err(H2ClientError::Busy)
    );
    assert!(!pair.client.can_open());
    let mut got = BTreeMap::new();
    pair.run(Duration::from_secs(10), on_client(&mut got), echo_server());
    assert_eq!(got.len(), 3);
    assert!(pair.client.can_open());
}

#[test]
fn bodies_flow_both_ways_past_the_windows_with_trailers() {
    let mut server_config = ServerConfig::default();
    server_config.http2.stream_window = 16 * 1024;
    server_config.http2.connection_window = 65_535;
    let client_config = H2Config {
        stream_window: 20_000,
        connection_window: 65_535,
        ..H2Config::default()
    };
    let mut pair = Pair::new(
        H2ClientConn::new(client_config),
        H2ServerConn::new(&server_config),
    );
    let headers = Headers::new();
    let body: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let mut ids = Vec::new();
    for path in [&b"/a"[..], b"/b"] {
        let parts = RequestParts {
            method: &Method::Post,
            ..get(path, &headers)
        };
        let id = pair.client.send_request(parts, false).unwrap();
        pair.client
            .send_body(id, Bytes::from(body.clone()))
            .unwrap();
        pair.client.finish(id, None).unwrap();
        ids.push(id);
    }
    let mut got = BTreeMap::new();
    pair.run(Duration::from_secs(10), on_client(&mut got), echo_server());
    for (id, path) in ids.iter().zip(["/a", "/b"]) {
        let entry = &got[id];
        assert!(entry.body == body, "{} bytes back", entry.body.len());
        assert_eq!(
            entry.trailers.as_ref().and_then(|t| t.get("x-path")),
            Some(path.as_bytes())
        );
    }
}

#[test]
fn a_server_reset_and_a_graceful_goaway_reach_the_streams() {
    let mut pair = Pair::new(
        H2ClientConn::new(H2Config::default()),
        H2ServerConn::new(&ServerConfig::default()),
    );
    let headers = Headers::new();
    let first = pair
        .client
        .send_request(get(b"/1", &headers), true)
        .unwrap();
    let second = pair
        .client
        .send_request(get(b"/2", &headers), true)
        .unwrap();
    pair.drive();
    let requests: Vec<ServerEvent> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert_eq!(requests.len(), 2);
    // A streamed answer the server gives up: the client sees the stream reset.
    pair.server
        .send_head(RequestId(u64::from(first)), Response::new(200))
        .unwrap();
    let _ = pair.server.finish(RequestId(u64::from(first)), None);
    // Shutdown: GOAWAY names stream 3 as the last; the client opens nothing new.
    pair.server.handle_shutdown(pair.now());
    pair.drive();
    let mut got = BTreeMap::new();
    let mut handler = on_client(&mut got);
    let now = pair.now();
    while let Some(event) = pair.client.poll_event() {
        handler(&mut pair.client, event, now);
    }
    drop(handler);
    assert_eq!(got[&first].reset, Some(ErrorCode::INTERNAL_ERROR));
    assert!(!pair.client.is_open());
    assert_eq!(
        pair.client.send_request(get(b"/3", &headers), true),
        Err(H2ClientError::Closed)
    );
    pair.server
        .send_response(RequestId(u64::from(second)), Response::text("last"))
        .unwrap();
    let mut got = BTreeMap::new();
    pair.run(Duration::from_secs(10), on_client(&mut got), |_, _, _| {});
    assert_eq!(got[&second].body, b"last");
    assert!(pair.is_finished() || pair.server.is_closing());
}

#[test]
fn faulty_links_deliver_every_answer() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..200).collect(),
    };
    for seed in seeds {
        // The link stalls for seconds at a time: no deadline may cut it short.
        let mut server_config = ServerConfig {
            keep_alive_timeout: Duration::from_secs(1_000_000),
            body_read_timeout: Duration::from_secs(1_000_000),
            ..ServerConfig::default()
        };
        server_config.http2.settings_timeout = None;
        server_config.http2.stream_window = 1000;
        server_config.http2.max_concurrent_streams = 4;
        let client_config = H2Config {
            stream_window: 700,
            ..H2Config::default()
        };
        let mut pair = Pair::with_config(
            H2ClientConn::new(client_config),
            H2ServerConn::new(&server_config),
            SimConfig::faulty(seed),
        );
        let headers = Headers::new();
        let body: Vec<u8> = vec![b'q'; 2500];
        let mut ids = Vec::new();
        let mut waiting: VecDeque<usize> = (0..12).collect();
        let mut got = BTreeMap::new();
        // One application for the whole run: it collects bodies across `run` calls.
        let mut echo = echo_server();
        for _ in 0..100 {
            while let Some(&i) = waiting.front() {
                if !pair.client.can_open() {
                    break;
                }
                let path = format!("/{i}");
                let post = i % 2 == 1;
                let parts = RequestParts {
                    method: if post { &Method::Post } else { &Method::Get },
                    ..get(path.as_bytes(), &headers)
                };
                let id = pair.client.send_request(parts, !post).unwrap();
                if post {
                    pair.client
                        .send_body(id, Bytes::from(body.clone()))
                        .unwrap();
                    pair.client.finish(id, None).unwrap();
                }
                ids.push((id, i));
                waiting.pop_front();
            }
            pair.run(Duration::from_secs(30), on_client(&mut got), &mut echo);
            // Streams opened past the server's limit before its SETTINGS arrived are
            // refused, unprocessed: sent again, as clients do.
            ids.retain(|&(id, i)| {
                let refused = got
                    .get(&id)
                    .is_some_and(|g: &Got| g.reset == Some(ErrorCode::REFUSED_STREAM));
                if refused {
                    got.remove(&id);
                    waiting.push_back(i);
                }
                !refused
            });
            if waiting.is_empty() && got.values().filter(|g| g.ended).count() == 12 {
                break;
            }
        }
        assert_eq!(ids.len(), 12, "seed {seed}");
        for (id, i) in ids {
            let entry = got
                .get(&id)
                .unwrap_or_else(|| panic!("seed {seed}: no answer on {id}"));
            assert!(
                entry.ended && entry.reset.is_none(),
                "seed {seed}: {id} {entry:?}"
            );
            if i % 2 == 1 {
                assert_eq!(entry.body.len(), 2500, "seed {seed}: stream {id}");
            } else {
                assert_eq!(entry.body, format!("/{i}").as_bytes(), "seed {seed}");
            }
        }
    }
}

#[test]
fn a_request_without_a_response_head_in_time_times_out_and_is_reset() {
    let mut client = H2ClientConn::new(H2Config::default());
    client.set_response_timeout(Some(Duration::from_secs(5)));
    let mut pair = Pair::new(client, H2ServerConn::new(&ServerConfig::default()));
    let headers = Headers::new();
    let slow = pair
        .client
        .send_request(get(b"/slow", &headers), true)
        .unwrap();
    let fast = pair
        .client
        .send_request(get(b"/fast", &headers), true)
        .unwrap();
    pair.drive();
    // The server answers only the second.
    let requests: Vec<ServerEvent> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert_eq!(requests.len(), 2);
    pair.server
        .send_response(RequestId(u64::from(fast)), Response::text("fast"))
        .unwrap();
    pair.drive();
    let mut got = BTreeMap::new();
    let mut handler = on_client(&mut got);
    let now = pair.now();
    while let Some(event) = pair.client.poll_event() {
        handler(&mut pair.client, event, now);
    }
    drop(handler);
    assert!(got[&fast].ended);
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now() + Duration::from_secs(5))
    );
    pair.advance(Duration::from_secs(6));
    let events: Vec<ClientEvent> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        matches!(events[..], [ClientEvent::TimedOut { id }] if id == slow),
        "{events:?}"
    );
    // The server saw the stream reset: answering it now is refused.
    assert!(
        pair.server
            .send_response(RequestId(u64::from(slow)), Response::text("late"))
            .is_err()
    );
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn a_stalled_body_times_out_only_while_the_application_holds_none_of_it() {
    let mut client = H2ClientConn::new(H2Config::default());
    client.set_body_timeout(Some(Duration::from_secs(5)));
    let mut pair = Pair::new(client, H2ServerConn::new(&ServerConfig::default()));
    let headers = Headers::new();
    let id = pair
        .client
        .send_request(get(b"/slow-body", &headers), true)
        .unwrap();
    pair.drive();
    let request = RequestId(u64::from(id));
    while pair.server.poll_event().is_some() {}
    pair.server.send_head(request, Response::new(200)).unwrap();
    pair.server
        .send_body(request, Bytes::from_static(b"piece"))
        .unwrap();
    pair.drive();
    let events: Vec<ClientEvent> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        matches!(
            &events[..],
            [ClientEvent::Response { .. }, ClientEvent::Body { .. }]
        ),
        "{events:?}"
    );
    // The application holds the piece (a paused sink): no deadline, however long.
    assert_eq!(pair.client.poll_timeout(), None);
    pair.advance(Duration::from_secs(60));
    assert!(pair.client.poll_event().is_none());
    // Released: the server is the one awaited again, and 5 s of nothing resets the stream.
    pair.client.release_body(id, 5);
    pair.drive();
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now() + Duration::from_secs(5))
    );
    pair.advance(Duration::from_secs(4));
    assert!(pair.client.poll_event().is_none());
    pair.advance(Duration::from_secs(2));
    let events: Vec<ClientEvent> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        matches!(events[..], [ClientEvent::BodyTimedOut { id: timed }] if timed == id),
        "{events:?}"
    );
    // The server saw the reset: its writer is refused.
    assert!(
        pair.server
            .send_body(request, Bytes::from_static(b"late"))
            .is_err()
    );
}

#[test]
fn an_idle_connection_says_goaway_and_closes() {
    let mut client = H2ClientConn::new(H2Config::default());
    client.set_idle_timeout(Some(Duration::from_secs(30)));
    let mut pair = Pair::new(client, H2ServerConn::new(&ServerConfig::default()));
    let headers = Headers::new();
    let id = pair.client.send_request(get(b"/", &headers), true).unwrap();
    pair.drive();
    while pair.server.poll_event().is_some() {}
    // In flight: no idle deadline.
    assert_eq!(pair.client.poll_timeout(), None);
    pair.server
        .send_response(RequestId(u64::from(id)), Response::text("ok"))
        .unwrap();
    pair.drive();
    while pair.client.poll_event().is_some() {}
    assert_eq!(
        pair.client.poll_timeout(),
        Some(pair.now() + Duration::from_secs(30))
    );
    assert!(pair.client.is_open());
    pair.advance(Duration::from_secs(31));
    // GOAWAY(NO_ERROR) went out, and the connection closed once it had.
    assert!(!pair.client.is_open());
    assert!(
        pair.server.is_closing() || pair.is_finished(),
        "{:?}",
        pair.server
    );
}
