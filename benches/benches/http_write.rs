//! HTTP/1.1 write-path micro-benchmarks (issue 16): responses framed by the server machine
//! (`ServerConn`) and queued for sending, per request, as `ringwork serve hello` answers a
//! pipelined ×16 batch of wrk's `GET /`.
//!
//! - `respond_hello_x16`: the write path alone — 16 parsed requests are waiting (parsed
//!   outside the timed part), and each iteration frames the 16 answers (`send_response`: the
//!   status line, fields, `Date`, `Content-Length`, body) and takes the bytes to send
//!   (`poll_transmit`, dropped as a completed send drops them).
//! - `respond_4KiB_x16`: the same with a 4 KiB body (the body is a shared `Bytes`: queued,
//!   not copied into the head buffer).
//! - `stream_chunked_x16`: a head and two 1 KiB pieces per request with `send_head`,
//!   `send_body` and `finish` with an empty trailer section (chunked framing).
//! - `serve_hello_x16`: the whole machine round (parse, events, answers, transmit) for the
//!   16 requests, to set the write path against the parse side.
//!
//! Run: `cargo bench -p ringwork-benches --bench http_write -- --warm-up-time 1
//! --measurement-time 3`. Throughput is responses per second (ns per response = time / 16).
//! The engine's side of the write path (write buffer, flush, send) is in `write_coalescing`.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwork_protocols::http::proto::Headers;
use ringwork_protocols::http::proto::server::{
    RequestId, Response, ServerConfig, ServerConn, ServerEvent,
};
use ringwork_protocols::kit::Machine;

/// Requests per pipelined batch (wrk's pipeline.lua ×16).
const DEPTH: usize = 16;

/// The body `ringwork serve hello` answers with.
const HELLO_BODY: &[u8] = b"Hello, World!";

/// One batch of wrk's pipelined `GET /`.
fn batch() -> Vec<u8> {
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n".repeat(DEPTH)
}

/// A connection with its `Date` set, as the engine adapter sets it once a second.
fn connection(now: Instant) -> ServerConn {
    let mut conn = ServerConn::new(ServerConfig::default());
    conn.handle_connected(now);
    let mut date = [0u8; 29];
    date.copy_from_slice(b"Mon, 07 Dec 2026 09:00:00 GMT");
    conn.set_date(date);
    conn
}

/// Feeds one batch and returns the ids of its requests (all waiting for an answer).
fn parse(conn: &mut ServerConn, input: &[u8], now: Instant, ids: &mut Vec<RequestId>) {
    conn.handle_input(input, now);
    ids.clear();
    while let Some(event) = conn.poll_event() {
        if let ServerEvent::Request { id, .. } = event {
            ids.push(id);
        }
    }
    assert_eq!(ids.len(), DEPTH, "every request of the batch parsed");
}

/// Takes every queued transmit; returns the bytes (a completed send drops them).
fn transmit(conn: &mut ServerConn, now: Instant) -> usize {
    let mut sent = 0;
    while let Some(bytes) = conn.poll_transmit(now) {
        sent += bytes.len();
    }
    sent
}

/// Times only `answer` (the write path) over `iters` batches; parsing runs untimed.
fn time_answers(
    iters: u64,
    mut answer: impl FnMut(&mut ServerConn, &[RequestId], Instant) -> usize,
) -> Duration {
    let input = batch();
    let now = Instant::now();
    let mut conn = connection(now);
    let mut ids = Vec::with_capacity(DEPTH);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        parse(&mut conn, &input, now, &mut ids);
        let start = Instant::now();
        black_box(answer(&mut conn, &ids, now));
        total += start.elapsed();
    }
    total
}

fn hello() -> Response {
    Response::new(200)
        .header(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/plain"),
        )
        .with_body(Bytes::from_static(HELLO_BODY))
}

fn write_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("http_write");
    group.throughput(Throughput::Elements(DEPTH as u64));

    // A check outside the timings: the answers are whole, well-framed responses.
    {
        let now = Instant::now();
        let mut conn = connection(now);
        let mut ids = Vec::new();
        parse(&mut conn, &batch(), now, &mut ids);
        for &id in &ids {
            conn.send_response(id, hello()).expect("answer");
        }
        let mut out = Vec::new();
        while let Some(bytes) = conn.poll_transmit(now) {
            out.extend_from_slice(&bytes);
        }
        let text = String::from_utf8(out).expect("ASCII answers");
        assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), DEPTH);
        assert_eq!(text.matches("Content-Length: 13\r\n").count(), DEPTH);
        assert!(text.contains("Date: Mon, 07 Dec 2026 09:00:00 GMT\r\n"));
    }

    group.bench_function("respond_hello_x16", |b| {
        b.iter_custom(|iters| {
            time_answers(iters, |conn, ids, now| {
                for &id in ids {
                    conn.send_response(id, hello()).expect("answer");
                }
                transmit(conn, now)
            })
        });
    });

    let big = Bytes::from(vec![b'x'; 4096]);
    group.bench_function("respond_4KiB_x16", |b| {
        b.iter_custom(|iters| {
            time_answers(iters, |conn, ids, now| {
                for &id in ids {
                    let response = Response::new(200)
                        .header(
                            Bytes::from_static(b"Content-Type"),
                            Bytes::from_static(b"application/octet-stream"),
                        )
                        .with_body(big.clone());
                    conn.send_response(id, response).expect("answer");
                }
                transmit(conn, now)
            })
        });
    });

    let piece = Bytes::from(vec![b'y'; 1024]);
    group.bench_function("stream_chunked_x16", |b| {
        b.iter_custom(|iters| {
            time_answers(iters, |conn, ids, now| {
                for &id in ids {
                    let head = Response::new(200).header(
                        Bytes::from_static(b"Content-Type"),
                        Bytes::from_static(b"text/plain"),
                    );
                    conn.send_head(id, head).expect("head");
                    conn.send_body(id, piece.clone()).expect("piece");
                    conn.send_body(id, piece.clone()).expect("piece");
                    // The end of a chunked body: an empty trailer section (`None` = given up).
                    conn.finish(id, Some(Headers::new())).expect("finish");
                }
                transmit(conn, now)
            })
        });
    });

    let input = batch();
    group.bench_function("serve_hello_x16", |b| {
        let now = Instant::now();
        let mut conn = connection(now);
        let mut ids = Vec::with_capacity(DEPTH);
        b.iter(|| {
            parse(&mut conn, black_box(&input), now, &mut ids);
            for &id in &ids {
                conn.send_response(id, hello()).expect("answer");
            }
            black_box(transmit(&mut conn, now))
        });
    });

    group.finish();
}

criterion_group!(benches, write_path);
criterion_main!(benches);
