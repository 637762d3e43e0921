//! The server connection machine against raw client bytes ([`RawPeer`]) in a [`Pair`]: no
//! reactor, a virtual clock. The same behaviours run over real sockets in
//! `tests/http_server.rs`; here each is checked at the byte and event level, and under
//! faulty links.

use std::time::Duration;

use super::*;
use crate::kit::sim::{Pair, RawPeer, Side, SimConfig};

const GET: &str = "GET / HTTP/1.1\r\nHost: t\r\n\r\n";

fn pair_with(config: ServerConfig) -> Pair<RawPeer, ServerConn> {
    Pair::new(RawPeer::new(), ServerConn::new(config))
}

fn pair() -> Pair<RawPeer, ServerConn> {
    pair_with(ServerConfig::default())
}

fn events(pair: &mut Pair<RawPeer, ServerConn>) -> Vec<ServerEvent> {
    pair.drive();
    std::iter::from_fn(|| pair.server.poll_event()).collect()
}

/// The ids of the requests among `events`.
fn requests(events: &[ServerEvent]) -> Vec<RequestId> {
    events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Request { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Responses as (status, body) read off `bytes` with the crate's response parser.
fn responses(bytes: &[u8]) -> Vec<(u16, Vec<u8>, Headers)> {
    use crate::http::proto::{BodyDecoder, parse_response};
    let limits = H1Limits::default();
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let parsed = match parse_response(&bytes[at..], &limits, &Method::Get) {
            Ok(Status::Complete(parsed)) => parsed,
            other => panic!(
                "bad response at {at}: {other:?} in {:?}",
                String::from_utf8_lossy(bytes)
            ),
        };
        at += parsed.consumed;
        if parsed.head.status == 100 {
            out.push((100, Vec::new(), parsed.head.headers));
            continue;
        }
        let mut decoder = BodyDecoder::new(parsed.body, &limits);
        let mut body = Vec::new();
        loop {
            let step = decoder.decode(&bytes[at..]).expect("body");
            body.extend_from_slice(step.data);
            at += step.consumed;
            if step.finished || step.consumed == 0 {
                break;
            }
        }
        out.push((parsed.head.status, body, parsed.head.headers));
    }
    out
}

fn statuses(pair: &mut Pair<RawPeer, ServerConn>) -> Vec<u16> {
    pair.drive();
    responses(&pair.client.take_received())
        .into_iter()
        .map(|(status, ..)| status)
        .collect()
}

#[test]
fn keep_alive_serves_requests_one_after_another() {
    let mut pair = pair();
    for n in 0..3 {
        pair.client.send(GET);
        let ids = requests(&events(&mut pair));
        assert_eq!(ids, [RequestId(n)]);
        pair.server
            .send_response(ids[0], Response::text(format!("r{n}")))
            .expect("answer");
        pair.drive();
        let got = responses(&pair.client.take_received());
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, format!("r{n}").as_bytes());
        assert!(
            got[0].2.get("connection").is_none(),
            "keep-alive is the default"
        );
    }
    assert!(!pair.is_done(Side::Server));
}

#[test]
fn pipelined_answers_leave_in_request_order() {
    let mut pair = pair();
    pair.client.send(GET.repeat(4));
    let ids = requests(&events(&mut pair));
    assert_eq!(ids.len(), 4);
    for id in ids.iter().rev() {
        pair.server
            .send_response(*id, Response::text(format!("{}", id.0)))
            .expect("answer");
    }
    pair.drive();
    let bodies: Vec<Vec<u8>> = responses(&pair.client.take_received())
        .into_iter()
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!(bodies, [b"0", b"1", b"2", b"3"]);
}

#[test]
fn a_pipelined_burst_leaves_as_one_transmit() {
    let mut server = ServerConn::new(ServerConfig::default());
    let now = Instant::now();
    server.handle_connected(now);
    server.handle_input(GET.repeat(16).as_bytes(), now);
    let ids: Vec<RequestId> = std::iter::from_fn(|| server.poll_event())
        .filter_map(|e| match e {
            ServerEvent::Request { id, .. } => Some(id),
            _ => None,
        })
        .collect();
    for id in ids {
        server
            .send_response(id, Response::text("hi"))
            .expect("answer");
    }
    let first = server.poll_transmit(now).expect("bytes");
    assert!(
        server.poll_transmit(now).is_none(),
        "one buffer for sixteen answers"
    );
    assert_eq!(responses(&first).len(), 16);
}

#[test]
fn unanswered_pipelining_stops_reading_at_max_pipelined() {
    let config = ServerConfig {
        max_pipelined: 2,
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    pair.client.send(GET.repeat(5));
    let ids = requests(&events(&mut pair));
    assert_eq!(ids.len(), 2);
    assert!(!pair.server.wants_input());
    pair.server
        .send_response(ids[0], Response::text("a"))
        .expect("answer");
    let more = requests(&events(&mut pair));
    assert_eq!(
        more,
        [RequestId(2)],
        "one answer makes room for one request"
    );
}

#[test]
fn half_close_after_pipelined_requests_answers_them_all() {
    let config = ServerConfig {
        max_pipelined: 2,
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    pair.client.send(GET.repeat(5));
    pair.client.shutdown_write();
    let mut answered = 0;
    let finished = pair.run(
        Duration::from_secs(1),
        |_, (), _| {},
        |server, event, _| {
            if let ServerEvent::Request { id, .. } = event {
                server
                    .send_response(id, Response::text("ok"))
                    .expect("answer");
                answered += 1;
            }
        },
    );
    assert!(finished);
    assert_eq!(
        answered, 5,
        "requests held back by max_pipelined are still answered"
    );
    assert_eq!(responses(pair.client.received()).len(), 5);
    assert!(pair.client.saw_eof(), "closed after the last answer");
}

#[test]
fn bad_request_gets_its_status_and_a_close() {
    let mut pair = pair();
    pair.client.send(
        "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    let events = events(&mut pair);
    assert!(
        requests(&events).is_empty(),
        "never reaches the application"
    );
    let got = responses(pair.client.received());
    assert_eq!(got[0].0, 400);
    assert_eq!(got[0].2.get("connection"), Some(&b"close"[..]));
    assert!(pair.client.saw_eof());
}

#[test]
fn connection_close_request_closes_after_its_answer() {
    let mut pair = pair();
    pair.client.send(
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    let ids = requests(&events(&mut pair));
    assert_eq!(ids.len(), 1, "nothing is read after a close request");
    pair.server
        .send_response(ids[0], Response::text("bye"))
        .expect("answer");
    pair.drive();
    let got = responses(pair.client.received());
    assert_eq!(got[0].2.get("connection"), Some(&b"close"[..]));
    assert!(pair.client.saw_eof());
}

#[test]
fn whole_body_arrives_as_pieces_then_end() {
    let mut pair = pair();
    pair.client
        .send("POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-T: 1\r\n\r\n");
    let events = events(&mut pair);
    let mut body = Vec::new();
    let mut trailers = None;
    for event in &events {
        match event {
            ServerEvent::Request { has_body, .. } => assert!(has_body),
            ServerEvent::Body { data, .. } => body.extend_from_slice(data),
            ServerEvent::BodyEnd { trailers: t, .. } => trailers = t.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(body, b"abcde");
    assert_eq!(trailers.expect("trailers").get("x-t"), Some(&b"1"[..]));
}

#[test]
fn unreleased_body_stops_reading_until_released() {
    let config = ServerConfig {
        body_buffer: 10,
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    pair.client
        .send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n");
    pair.drive();
    let mut got = 0;
    for _ in 0..4 {
        pair.client.send([b'x'; 10]);
        pair.drive();
        // The server reads at most one read past the buffer before it stops.
        for event in std::iter::from_fn(|| pair.server.poll_event()) {
            if let ServerEvent::Body { data, .. } = event {
                got += data.len();
            }
        }
    }
    assert!(got <= 20, "read {got} bytes without a release");
    assert!(!pair.server.wants_input());
    pair.server.release_body(RequestId(0), got);
    let rest: usize = events(&mut pair)
        .iter()
        .map(|e| match e {
            ServerEvent::Body { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    assert_eq!(got + rest, 40);
}

#[test]
fn expect_continue_sends_100_only_when_the_body_is_wanted() {
    let mut pair = pair();
    pair.client
        .send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n");
    let events = events(&mut pair);
    let ServerEvent::Request {
        id,
        expect_continue: true,
        ..
    } = events[0]
    else {
        panic!("{events:?}")
    };
    assert!(
        pair.client.received().is_empty(),
        "no 100 before the body is wanted"
    );
    pair.server.continue_body(id);
    pair.drive();
    assert_eq!(
        pair.client.take_received(),
        b"HTTP/1.1 100 Continue\r\n\r\n"
    );
    pair.client.send("abc");
    pair.drive();
    pair.server
        .send_response(id, Response::text("got it"))
        .expect("answer");
    assert_eq!(statuses(&mut pair), [200]);
    assert!(
        !pair.is_done(Side::Server),
        "keep-alive after a body that was read"
    );
}

#[test]
fn an_answer_before_the_body_was_wanted_skips_100_and_closes() {
    let mut pair = pair();
    pair.client.send(
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\nExpect: 100-continue\r\n\r\n",
    );
    let events = events(&mut pair);
    let id = requests(&events)[0];
    pair.server
        .send_response(id, Response::error(405))
        .expect("answer");
    pair.drive();
    let got = responses(pair.client.received());
    assert_eq!(got.len(), 1, "the final answer, and no 100 Continue");
    assert_eq!(got[0].0, 405);
    assert_eq!(got[0].2.get("connection"), Some(&b"close"[..]));
    assert!(pair.client.saw_eof());
}

#[test]
fn head_timeout_answers_408_and_silent_connections_just_close() {
    let config = ServerConfig {
        header_read_timeout: Duration::from_secs(5),
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config.clone());
    pair.client.send("GET / HTT");
    pair.advance(Duration::from_secs(5));
    assert_eq!(statuses(&mut pair), [408]);
    assert!(pair.client.saw_eof());

    let mut silent = pair_with(config);
    silent.advance(Duration::from_secs(5));
    assert!(silent.client.received().is_empty());
    assert!(
        silent.client.saw_eof(),
        "a connection that never spoke closes quietly"
    );
}

#[test]
fn body_stall_answers_408_and_ends_the_body() {
    let config = ServerConfig {
        body_read_timeout: Duration::from_secs(2),
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    pair.client
        .send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
    pair.drive();
    let _ = std::iter::from_fn(|| pair.server.poll_event()).count();
    pair.advance(Duration::from_secs(2));
    let events: Vec<_> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert!(
        events.iter().any(|e| matches!(
            e,
            ServerEvent::BodyError {
                error: H1Error::BodyTimeout,
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(statuses(&mut pair), [408]);
}

#[test]
fn a_slow_consumer_is_not_a_body_stall() {
    let config = ServerConfig {
        body_read_timeout: Duration::from_secs(2),
        body_buffer: 4,
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    pair.client
        .send("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 20\r\n\r\n0123456789");
    let delivered: usize = events(&mut pair)
        .iter()
        .map(|e| match e {
            ServerEvent::Body { data, .. } => data.len(),
            _ => 0,
        })
        .sum();
    pair.advance(Duration::from_secs(60));
    assert!(
        pair.client.received().is_empty(),
        "no 408 while the application holds the body"
    );
    pair.server.release_body(RequestId(0), delivered);
    pair.client.send("0123456789");
    let rest = events(&mut pair);
    assert!(
        rest.iter()
            .any(|e| matches!(e, ServerEvent::BodyEnd { .. })),
        "{rest:?}"
    );
}

#[test]
fn idle_keep_alive_connection_closes_after_its_timeout() {
    let config = ServerConfig {
        keep_alive_timeout: Duration::from_secs(3),
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    pair.advance(Duration::from_secs(10));
    assert!(
        !pair.client.saw_eof(),
        "no idle timeout while a request is unanswered"
    );
    pair.server
        .send_response(id, Response::text("x"))
        .expect("answer");
    pair.advance(Duration::from_millis(2999));
    assert!(!pair.client.saw_eof());
    pair.advance(Duration::from_millis(1));
    assert!(pair.client.saw_eof());
}

#[test]
fn graceful_shutdown_closes_idle_and_marks_pending_answers_close() {
    let mut pair = pair();
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    let now = pair.now();
    pair.server.handle_shutdown(now);
    pair.server
        .send_response(id, Response::text("last"))
        .expect("answer");
    pair.drive();
    let got = responses(pair.client.received());
    assert_eq!(got[0].2.get("connection"), Some(&b"close"[..]));
    assert!(pair.client.saw_eof());

    // A keep-alive connection idle after its request closes after drain_idle_timeout.
    let config = ServerConfig::default();
    let mut idle = pair_with(config.clone());
    idle.client.send(GET);
    let id = requests(&events(&mut idle))[0];
    idle.server
        .send_response(id, Response::text("first"))
        .expect("answer");
    idle.drive();
    assert!(!idle.client.saw_eof(), "kept alive");
    let now = idle.now();
    idle.server.handle_shutdown(now);
    idle.drive();
    idle.advance(config.drain_idle_timeout - Duration::from_millis(1));
    assert!(
        !idle.client.saw_eof(),
        "open for a request crossing the close"
    );
    idle.advance(Duration::from_millis(1));
    assert!(
        idle.client.saw_eof(),
        "an idle connection closes after the drain wait"
    );

    // With zero, at once (nginx's way).
    let mut idle = pair_with(ServerConfig {
        drain_idle_timeout: Duration::ZERO,
        ..ServerConfig::default()
    });
    idle.client.send(GET);
    let id = requests(&events(&mut idle))[0];
    idle.server
        .send_response(id, Response::text("first"))
        .expect("answer");
    idle.drive();
    let now = idle.now();
    idle.server.handle_shutdown(now);
    idle.drive();
    assert!(idle.client.saw_eof(), "closed at once");
}

#[test]
fn graceful_shutdown_answers_a_request_crossing_the_close_of_an_idle_connection() {
    let mut pair = pair_with(ServerConfig::default());
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    pair.server
        .send_response(id, Response::text("first"))
        .expect("answer");
    pair.drive();
    let now = pair.now();
    pair.server.handle_shutdown(now);
    pair.drive();
    // The client sent its next request as the shutdown began.
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    pair.server
        .send_response(id, Response::text("second"))
        .expect("answer");
    pair.drive();
    let got = responses(pair.client.received());
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].2.get("connection"), Some(&b"close"[..]));
    assert!(pair.client.saw_eof());
}

#[test]
fn graceful_shutdown_answers_the_first_request_of_a_new_connection() {
    // Accepted just before (or, after a takeover, during) the shutdown: its client is
    // about to send its request, which gets an answer, not a reset.
    let mut fresh = pair_with(ServerConfig::default());
    let now = fresh.now();
    fresh.server.handle_shutdown(now);
    fresh.drive();
    assert!(!fresh.client.saw_eof(), "waits for its first request");
    fresh.client.send(GET);
    let id = requests(&events(&mut fresh))[0];
    fresh
        .server
        .send_response(id, Response::text("only"))
        .expect("answer");
    fresh.drive();
    let got = responses(fresh.client.received());
    assert_eq!(got[0].2.get("connection"), Some(&b"close"[..]));
    assert!(fresh.client.saw_eof());

    // One that never sends closes at the head timeout.
    let config = ServerConfig::default();
    let mut silent = pair_with(config.clone());
    let now = silent.now();
    silent.server.handle_shutdown(now);
    silent.drive();
    silent.advance(config.header_read_timeout);
    assert!(silent.client.saw_eof(), "closed at the head timeout");
}

#[test]
fn streamed_answer_frames_chunks_and_trailers() {
    let mut pair = pair();
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    pair.server.send_head(id, Response::new(200)).expect("head");
    assert!(pair.server.is_ready(id));
    pair.server
        .send_body(id, Bytes::from_static(b"abc"))
        .expect("body");
    pair.server
        .send_body(id, Bytes::from_static(b"de"))
        .expect("body");
    let mut trailers = Headers::new();
    trailers.append("x-sum", "5");
    pair.server.finish(id, Some(trailers)).expect("finish");
    pair.drive();
    let got = responses(pair.client.received());
    assert_eq!(got[0].1, b"abcde");
    assert!(!pair.is_done(Side::Server));
}

#[test]
fn sized_stream_past_its_length_is_cut_and_closes() {
    let mut pair = pair();
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    pair.server
        .send_head(id, Response::new(200).header("Content-Length", "3"))
        .expect("head");
    assert_eq!(
        pair.server.send_body(id, Bytes::from_static(b"abcdef")),
        Err(SendError::PastLength { dropped: 3 })
    );
    pair.server
        .finish(id, Some(Headers::new()))
        .expect("complete");
    pair.drive();
    assert_eq!(responses(pair.client.received())[0].1, b"abc");
    assert!(pair.client.saw_eof());
}

#[test]
fn body_bytes_sent_elsewhere_count_toward_the_length() {
    let mut pair = pair();
    pair.client.send(GET.repeat(2));
    let ids = requests(&events(&mut pair));
    let sized = |n: &str| Response::new(200).header("Content-Length", n.to_owned());
    pair.server.send_head(ids[1], sized("4")).expect("head");
    // Not the answer going out: the first one is still unanswered.
    assert!(!pair.server.can_send_body_elsewhere(ids[1], 4));
    pair.server.send_head(ids[0], sized("10")).expect("head");
    // The head waits in the machine's output: it must go first.
    assert!(!pair.server.can_send_body_elsewhere(ids[0], 4));
    while pair.server.poll_transmit(pair.now()).is_some() {}
    assert!(pair.server.can_send_body_elsewhere(ids[0], 10));
    assert!(
        !pair.server.can_send_body_elsewhere(ids[0], 11),
        "past the length"
    );
    pair.server.sent_body_elsewhere(ids[0], 6);
    assert!(!pair.server.can_send_body_elsewhere(ids[0], 5));
    pair.server
        .send_body(ids[0], Bytes::from_static(b"wxyz"))
        .expect("the rest in memory");
    pair.server
        .finish(ids[0], Some(Headers::new()))
        .expect("complete: 6 + 4 bytes");
    while pair.server.poll_transmit(pair.now()).is_some() {}
    assert!(
        pair.server.can_send_body_elsewhere(ids[1], 4),
        "the next answer is going out"
    );
    // A chunked answer never: its framing is in the bytes.
    let mut chunked = self::pair();
    chunked.client.send(GET);
    let id = requests(&events(&mut chunked))[0];
    chunked
        .server
        .send_head(id, Response::new(200))
        .expect("head");
    while chunked.server.poll_transmit(chunked.now()).is_some() {}
    assert!(!chunked.server.can_send_body_elsewhere(id, 1));
}

#[test]
fn abandoned_stream_closes_the_connection() {
    let mut pair = pair();
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    pair.server.send_head(id, Response::new(200)).expect("head");
    pair.server
        .send_body(id, Bytes::from_static(b"part"))
        .expect("body");
    assert_eq!(pair.server.finish(id, None), Err(SendError::Truncated));
    pair.drive();
    assert!(pair.client.saw_eof(), "the client sees a truncated body");
}

#[test]
fn a_later_stream_is_not_ready_until_it_is_the_oldest() {
    let mut pair = pair();
    pair.client.send(GET.repeat(2));
    let ids = requests(&events(&mut pair));
    pair.server
        .send_head(ids[1], Response::new(200))
        .expect("head");
    assert!(!pair.server.is_ready(ids[1]));
    pair.server
        .send_response(ids[0], Response::text("first"))
        .expect("answer");
    assert!(pair.server.is_ready(ids[1]));
}

#[test]
fn an_unsendable_response_becomes_500_and_a_close() {
    let mut pair = pair();
    pair.client.send(GET);
    let id = requests(&events(&mut pair))[0];
    let bad = Response::new(200).header("X-Bad", "a\r\nb");
    assert!(matches!(
        pair.server.send_response(id, bad),
        Err(SendError::Invalid(_))
    ));
    assert_eq!(statuses(&mut pair), [500]);
    assert!(pair.client.saw_eof());
    assert_eq!(
        pair.server.send_response(id, Response::text("late")),
        Err(SendError::NotPending)
    );
}

#[test]
fn large_bodies_are_shared_not_copied() {
    let mut server = ServerConn::new(ServerConfig::default());
    let now = Instant::now();
    server.handle_connected(now);
    server.handle_input(GET.as_bytes(), now);
    let Some(ServerEvent::Request { id, .. }) = server.poll_event() else {
        panic!("no request")
    };
    let body = Bytes::from(vec![b'z'; 100_000]);
    server
        .send_response(id, Response::new(200).with_body(body.clone()))
        .expect("answer");
    let pieces: Vec<Bytes> = std::iter::from_fn(|| server.poll_transmit(now)).collect();
    assert!(
        pieces.iter().any(|p| p.as_ptr() == body.as_ptr()),
        "the body went out as given"
    );
}

#[test]
fn nothing_is_written_after_a_close() {
    let mut pair = pair();
    pair.client
        .send("GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let id = requests(&events(&mut pair))[0];
    pair.server
        .send_response(id, Response::text("one"))
        .expect("answer");
    pair.drive();
    let before = pair.client.received().len();
    assert!(pair.server.send_head(id, Response::new(200)).is_err());
    assert!(pair.server.send_body(id, Bytes::from_static(b"x")).is_err());
    pair.drive();
    assert_eq!(pair.client.received().len(), before);
}

/// Every request through faulty links: split anywhere, delayed, stalled, with clock jumps
/// shorter than the timeouts. The application answers out of order; the client must get
/// every answer, in order.
#[test]
fn faulty_links_deliver_every_answer_in_order() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..200).collect(),
    };
    for seed in seeds {
        let config = ServerConfig {
            header_read_timeout: Duration::from_secs(3600),
            body_read_timeout: Duration::from_secs(3600),
            keep_alive_timeout: Duration::from_secs(3600),
            max_pipelined: 3,
            body_buffer: 16,
            ..ServerConfig::default()
        };
        let mut pair = Pair::with_config(
            RawPeer::new(),
            ServerConn::new(config),
            SimConfig::faulty(seed),
        )
        .traced();
        let mut sent = String::new();
        for i in 0..12 {
            if i % 3 == 0 {
                sent.push_str(&format!(
                    "POST /{i} HTTP/1.1\r\nHost: t\r\nContent-Length: 40\r\n\r\n{}",
                    "b".repeat(40)
                ));
            } else if i % 3 == 1 {
                sent.push_str(&format!("POST /{i} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"));
            } else {
                sent.push_str(&format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n"));
            }
        }
        pair.client.send(&sent);
        pair.client.shutdown_write();
        let mut held: Vec<RequestId> = Vec::new();
        let mut bodies = 0usize;
        let finished = pair.run(
            Duration::from_secs(3000),
            |_, (), _| {},
            |server, event, _| match event {
                ServerEvent::Request { id, head, .. } => {
                    let text = String::from_utf8_lossy(head.path()).into_owned();
                    held.push(id);
                    let _ = text;
                    if id.0 % 2 == 1 {
                        for id in held.drain(..).rev() {
                            server
                                .send_response(id, Response::text(format!("{}", id.0)))
                                .expect("answer");
                        }
                    }
                }
                ServerEvent::Body { id, data } => {
                    bodies += data.len();
                    server.release_body(id, data.len());
                }
                ServerEvent::BodyEnd { .. } | ServerEvent::Sent { .. } => {}
                ServerEvent::BodyError { id, error } => panic!("seed {seed}: {id:?} {error}"),
                ServerEvent::Upgraded { .. } => panic!("seed {seed}: no upgrade was asked for"),
            },
        );
        // Answer what is still held (the last request may have an even id).
        for id in held.drain(..).rev() {
            let _ = pair
                .server
                .send_response(id, Response::text(format!("{}", id.0)));
        }
        pair.run(Duration::from_secs(3000), |_, (), _| {}, |_, _, _| {});
        let trace = pair.trace().join("\n");
        assert!(
            finished || pair.client.saw_eof(),
            "seed {seed}: did not finish\n{trace}"
        );
        let got: Vec<Vec<u8>> = responses(pair.client.received())
            .into_iter()
            .map(|(_, body, _)| body)
            .collect();
        let expected: Vec<Vec<u8>> = (0..12).map(|i: u32| i.to_string().into_bytes()).collect();
        assert_eq!(got, expected, "seed {seed}\n{trace}");
        assert_eq!(bodies, 4 * 40 + 4 * 5, "seed {seed}");
        assert!(
            pair.client.saw_eof(),
            "seed {seed}: closed after the half-close"
        );
    }
}

#[test]
fn flow_control_holds_chunks_of_one_read_back() {
    let config = ServerConfig {
        body_buffer: 10,
        ..ServerConfig::default()
    };
    let mut pair = pair_with(config);
    let chunks = "5\r\nhello\r\n".repeat(10);
    pair.client.send(format!(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\n\r\n"
    ));
    let delivered = |events: &[ServerEvent]| -> usize {
        events
            .iter()
            .map(|e| match e {
                ServerEvent::Body { data, .. } => data.len(),
                _ => 0,
            })
            .sum()
    };
    let first = delivered(&events(&mut pair));
    assert_eq!(first, 15, "stops at the first piece past the buffer");
    let (mut total, mut batch) = (first, first);
    loop {
        pair.server.release_body(RequestId(0), batch);
        let more = events(&mut pair);
        batch = delivered(&more);
        assert!(batch <= 15, "{batch} bytes without a release");
        total += batch;
        if more
            .iter()
            .any(|e| matches!(e, ServerEvent::BodyEnd { .. }))
        {
            break;
        }
        assert!(batch > 0, "stuck after {total} bytes");
    }
    assert_eq!(total, 50);
}

const UPGRADE: &str = "GET /ws HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Upgrade\r\n\
Upgrade: websocket\r\n\r\n";

#[test]
fn an_upgrade_request_holds_what_follows_until_101_hands_it_over() {
    let mut pair = pair();
    // A pipelined request first: the 101 waits for its answer, in order.
    pair.client
        .send([GET.as_bytes(), UPGRADE.as_bytes(), b"\x81\x05hello"].concat());
    let got = events(&mut pair);
    assert_eq!(requests(&got), [RequestId(0), RequestId(1)]);
    assert!(
        !pair.server.wants_input(),
        "nothing read past an upgrade request"
    );
    pair.server
        .send_response(
            RequestId(1),
            Response::new(101).header("Upgrade", "websocket"),
        )
        .unwrap();
    assert!(
        events(&mut pair)
            .iter()
            .all(|e| !matches!(e, ServerEvent::Upgraded { .. })),
        "not before the earlier answer"
    );
    pair.server
        .send_response(RequestId(0), Response::text("first"))
        .unwrap();
    let got = events(&mut pair);
    let rest = got.iter().find_map(|e| match e {
        ServerEvent::Upgraded { id, rest, eof } => {
            assert_eq!((*id, *eof), (RequestId(1), false));
            Some(rest.clone())
        }
        _ => None,
    });
    assert_eq!(rest.as_deref(), Some(&b"\x81\x05hello"[..]));
    let wire = String::from_utf8(pair.client.take_received()).unwrap();
    let switch = &wire[wire.find("HTTP/1.1 101").expect("a 101")..];
    assert!(switch.contains("\r\nUpgrade: websocket\r\n"), "{switch}");
    assert!(switch.contains("\r\nConnection: Upgrade\r\n"), "{switch}");
    assert!(
        switch.ends_with("\r\n\r\n"),
        "nothing after the 101: {switch}"
    );
    assert!(!pair.server.wants_input());
    assert!(
        pair.server.poll_timeout().is_none(),
        "no HTTP deadline after the switch"
    );
    pair.advance(Duration::from_secs(3600));
    assert!(
        !pair.is_done(Side::Server),
        "the connection now belongs to the new protocol"
    );
}

#[test]
fn a_refused_upgrade_goes_on_as_http() {
    let mut pair = pair();
    pair.client.send(format!("{UPGRADE}{GET}"));
    assert_eq!(requests(&events(&mut pair)), [RequestId(0)]);
    pair.server
        .send_response(RequestId(0), Response::error(400))
        .unwrap();
    let got = events(&mut pair);
    assert_eq!(
        requests(&got),
        [RequestId(1)],
        "the held request is read now"
    );
    pair.server
        .send_response(RequestId(1), Response::text("ok"))
        .unwrap();
    pair.drive();
    let statuses: Vec<u16> = responses(&pair.client.take_received())
        .into_iter()
        .map(|(status, ..)| status)
        .collect();
    assert_eq!(statuses, [400, 200]);
}

/// A refusal streamed (head, body pieces, finish) also lets the held request through: a
/// reverse proxy relays an upstream's answer this way.
#[test]
fn a_refused_upgrade_answered_streaming_goes_on_as_http() {
    let mut pair = pair();
    pair.client.send(format!("{UPGRADE}{GET}"));
    assert_eq!(requests(&events(&mut pair)), [RequestId(0)]);
    pair.server
        .send_head(
            RequestId(0),
            Response::new(403).header("Content-Length", "2"),
        )
        .unwrap();
    pair.server
        .send_body(RequestId(0), Bytes::from_static(b"no"))
        .unwrap();
    pair.server
        .finish(RequestId(0), Some(Headers::default()))
        .unwrap();
    let got = events(&mut pair);
    assert_eq!(
        requests(&got),
        [RequestId(1)],
        "the held request is read now"
    );
    pair.server
        .send_response(RequestId(1), Response::text("ok"))
        .unwrap();
    pair.drive();
    let statuses: Vec<u16> = responses(&pair.client.take_received())
        .into_iter()
        .map(|(status, ..)| status)
        .collect();
    assert_eq!(statuses, [403, 200]);
}

#[test]
fn a_101_to_a_request_that_did_not_ask_is_a_500() {
    let mut pair = pair();
    pair.client.send(GET);
    events(&mut pair);
    let result = pair.server.send_response(RequestId(0), Response::new(101));
    assert!(matches!(result, Err(SendError::Invalid(_))), "{result:?}");
    pair.drive();
    let got = responses(&pair.client.take_received());
    assert_eq!(got[0].0, 500);
    assert!(pair.is_done(Side::Server));
}

/// The Date value is framed without a field check: one that could split the head is not
/// taken (the last good one stays).
#[test]
fn a_date_with_control_bytes_is_ignored() {
    let mut pair = pair();
    pair.server.set_date(*b"Mon, 07 Dec 2026 09:00:00 GMT");
    pair.server.set_date(*b"Mon, 07 Dec 2026\r\nX-Evil: 1\r\n");
    pair.client.send(GET.as_bytes());
    for event in events(&mut pair) {
        if let ServerEvent::Request { id, .. } = event {
            pair.server
                .send_response(id, Response::text("hi"))
                .expect("answer");
        }
    }
    pair.drive();
    let received = pair.client.take_received();
    let text = String::from_utf8_lossy(&received);
    assert!(
        text.contains("Date: Mon, 07 Dec 2026 09:00:00 GMT\r\n"),
        "{text}"
    );
    assert!(!text.contains("X-Evil"), "{text}");
}

/// `ServerEvent::Sent` comes once per answer by default, and not at all when the driver
/// has nobody to tell (`report_sent` off: the answers are the same).
#[test]
fn sent_events_only_when_reported() {
    for report in [true, false] {
        let mut pair = pair_with(ServerConfig {
            report_sent: report,
            ..ServerConfig::default()
        });
        pair.client.send(GET.repeat(2));
        let ids = requests(&events(&mut pair));
        for id in &ids {
            pair.server
                .send_response(*id, Response::text("x"))
                .expect("answer");
        }
        let sent = events(&mut pair)
            .iter()
            .filter(|e| matches!(e, ServerEvent::Sent { .. }))
            .count();
        assert_eq!(sent, if report { 2 } else { 0 });
        let got = responses(&pair.client.take_received());
        assert_eq!(got.len(), 2);
    }
}

/// The bytes a fresh connection sends for `request` answered with `response` (a fixed
/// `Date`), and the answer's result.
fn answer_bytes(request: &str, response: Response) -> (Vec<u8>, Result<(), SendError>) {
    let mut server = ServerConn::new(ServerConfig::default());
    let now = Instant::now();
    server.handle_connected(now);
    server.set_date(*b"Mon, 07 Dec 2026 09:00:00 GMT");
    server.handle_input(request.as_bytes(), now);
    let Some(ServerEvent::Request { id, .. }) = server.poll_event() else {
        panic!("no request in {request:?}")
    };
    let result = server.send_response(id, response);
    let sent = std::iter::from_fn(|| server.poll_transmit(now)).fold(Vec::new(), |mut all, b| {
        all.extend_from_slice(&b);
        all
    });
    (sent, result)
}

/// A prepared response (fields checked and encoded once) goes out byte for byte as the same
/// response unprepared, whatever the request and fields: managed fields dropped, a declared
/// length kept for HEAD, `Connection: close` honoured; a field changed after preparing is
/// sent, and an unsendable field still gets the 500.
#[test]
fn a_prepared_response_frames_as_the_unprepared_one() {
    let requests = [
        GET,
        "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ];
    let responses = [
        Response::new(200)
            .header("Content-Type", "text/plain")
            .with_body("Hello, World!"),
        Response::text("x").header("Connection", "close"),
        Response::new(200)
            .header("Content-Length", "1000")
            .header("Transfer-Encoding", "chunked")
            .header("Date", "yesterday")
            .header("X-A", "1"),
        Response::new(204).header("Keep-Alive", "timeout=5"),
        Response::new(304).header("ETag", "\"v1\""),
        Response::error(404),
    ];
    for request in requests {
        for response in &responses {
            let plain = answer_bytes(request, response.clone());
            assert_eq!(response.clone().prepared().headers(), response.headers());
            let prepared = answer_bytes(request, response.clone().prepared());
            assert_eq!(
                String::from_utf8_lossy(&prepared.0),
                String::from_utf8_lossy(&plain.0),
                "{request:?}"
            );
            assert_eq!(prepared.1, plain.1);
            assert!(plain.1.is_ok());
        }
    }
    // What a prepared response encoded once (its status line, its body's Content-Length)
    // is not used once the status or the body changed after preparing.
    let changed_later = [
        (
            Response::text("x").prepared().with_status(404),
            Response::text("x").with_status(404),
        ),
        (
            Response::text("x").prepared().with_body("longer"),
            Response::text("longer"),
        ),
        (
            Response::text("x").prepared().with_body("y"),
            Response::text("y"),
        ),
        (
            Response::text("x").prepared().with_status(204),
            Response::text("x").with_status(204),
        ),
        (Response::new(1000).prepared(), Response::new(1000)),
    ];
    for (prepared, plain) in changed_later {
        for request in requests {
            let (want, want_result) = answer_bytes(request, plain.clone());
            let (sent, result) = answer_bytes(request, prepared.clone());
            assert_eq!(
                String::from_utf8_lossy(&sent),
                String::from_utf8_lossy(&want),
                "{request:?}"
            );
            assert_eq!(result, want_result);
        }
    }
    let changed = Response::text("x").prepared().header("X-Later", "1");
    let (sent, _) = answer_bytes(GET, changed);
    assert!(String::from_utf8_lossy(&sent).contains("X-Later: 1\r\n"));
    let mut cleared = Response::text("x").header("X-Gone", "1").prepared();
    cleared.headers_mut().remove("x-gone");
    let (sent, _) = answer_bytes(GET, cleared);
    assert!(!String::from_utf8_lossy(&sent).contains("X-Gone"));
    for bad in [
        Response::new(200).header("X-Bad", "a\r\nb"),
        Response::new(200).header("Content-Length", "many"),
    ] {
        let (sent, result) = answer_bytes(GET, bad.prepared());
        assert!(matches!(result, Err(SendError::Invalid(_))), "{result:?}");
        assert!(String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 500 "));
    }
}
