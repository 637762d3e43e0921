//! HTTP/1.1 parser micro-benchmarks: request heads (wrk's minimal request and a typical
//! browser GET), a response head, and a 64 KiB chunked body in 4 KiB chunks.
//!
//! Run: `cargo bench -p ringwork-benches --bench http_parse -- --warm-up-time 1
//! --measurement-time 3`. Each head is reported twice: as heads per second
//! (`Throughput::Elements(1)`) and as bytes per second.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwork_protocols::http::proto::{
    BodyDecoder, BodyKind, H1Limits, Headers, Method, Status, encode, parse_request, parse_response,
};

/// The request wrk sends by default.
const WRK_GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n";

/// A Firefox navigation request: 12 fields, a ~200-byte cookie.
fn browser_get() -> Vec<u8> {
    let cookie: String = (0..10)
        .map(|i| format!("session_{i}=0123456789abcdef"))
        .collect::<Vec<_>>()
        .join("; ");
    format!(
        "GET /articles/2026/11/ringwork-http.html?ref=home&lang=en HTTP/1.1\r\n\
         Host: www.example.com\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
         Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
         Accept-Language: en-US,en;q=0.5\r\n\
         Accept-Encoding: gzip, deflate, br, zstd\r\n\
         Connection: keep-alive\r\n\
         Cookie: {cookie}\r\n\
         Upgrade-Insecure-Requests: 1\r\n\
         Sec-Fetch-Dest: document\r\n\
         Sec-Fetch-Mode: navigate\r\n\
         Sec-Fetch-Site: none\r\n\
         Sec-Fetch-User: ?1\r\n\r\n"
    )
    .into_bytes()
}

/// A typical nginx response head.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
    Server: nginx/1.24.0\r\n\
    Date: Sat, 21 Nov 2026 16:00:00 GMT\r\n\
    Content-Type: text/html; charset=utf-8\r\n\
    Content-Length: 615\r\n\
    Last-Modified: Tue, 11 Apr 2023 01:45:34 GMT\r\n\
    Connection: keep-alive\r\n\
    ETag: \"6434bbbe-267\"\r\n\
    Accept-Ranges: bytes\r\n\r\n";

/// 64 KiB of data as 16 chunks of 4 KiB, then the last chunk.
fn chunked_body() -> (Vec<u8>, usize) {
    let data = vec![b'x'; 4096];
    let mut out = BytesMut::new();
    for _ in 0..16 {
        encode::write_chunk_size(&mut out, data.len());
        out.extend_from_slice(&data);
        out.extend_from_slice(b"\r\n");
    }
    encode::write_last_chunk(&mut out, &Headers::new()).expect("no trailers");
    (out.to_vec(), 16 * data.len())
}

fn request_heads(c: &mut Criterion) {
    let limits = H1Limits::default();
    let browser = browser_get();
    for (name, input) in [("wrk_get", WRK_GET), ("browser_get", &browser[..])] {
        let parse = |input: &[u8]| match parse_request(black_box(input), &limits) {
            Ok(Status::Complete(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(parse(input).consumed, input.len());
        for (unit, throughput) in [
            ("requests", Throughput::Elements(1)),
            ("bytes", Throughput::Bytes(input.len() as u64)),
        ] {
            let mut group = c.benchmark_group(format!("parse_request/{unit}"));
            group.throughput(throughput);
            group.bench_function(name, |b| b.iter(|| parse(input)));
            group.finish();
        }
    }
}

fn response_head(c: &mut Criterion) {
    let limits = H1Limits::default();
    let parse = |input: &[u8]| match parse_response(black_box(input), &limits, &Method::Get) {
        Ok(Status::Complete(r)) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(parse(RESPONSE).body, BodyKind::Length(615));
    for (unit, throughput) in [
        ("responses", Throughput::Elements(1)),
        ("bytes", Throughput::Bytes(RESPONSE.len() as u64)),
    ] {
        let mut group = c.benchmark_group(format!("parse_response/{unit}"));
        group.throughput(throughput);
        group.bench_function("nginx_200", |b| b.iter(|| parse(RESPONSE)));
        group.finish();
    }
}

fn chunked(c: &mut Criterion) {
    let limits = H1Limits::default();
    let (input, body_len) = chunked_body();
    let decode = |input: &[u8]| {
        let mut decoder = BodyDecoder::new(BodyKind::Chunked, &limits);
        let (mut at, mut total) = (0, 0);
        loop {
            let step = decoder.decode(&input[at..]).expect("valid chunked body");
            at += step.consumed;
            total += black_box(step.data).len();
            if step.finished {
                return total;
            }
        }
    };
    assert_eq!(decode(&input), body_len);
    for (unit, throughput) in [
        ("bodies", Throughput::Elements(1)),
        ("bytes", Throughput::Bytes(body_len as u64)),
    ] {
        let mut group = c.benchmark_group(format!("chunked_decode/{unit}"));
        group.throughput(throughput);
        group.bench_function("64KiB_in_4KiB_chunks", |b| {
            b.iter(|| decode(black_box(&input)))
        });
        group.finish();
    }
    // The decoder hands out slices of its input (no copy), so the above measures framing
    // alone; a consumer that copies the data out is closer to a real one.
    let mut sink = Vec::with_capacity(body_len);
    let mut group = c.benchmark_group("chunked_decode/bytes");
    group.throughput(Throughput::Bytes(body_len as u64));
    group.bench_function("64KiB_in_4KiB_chunks_copied", |b| {
        b.iter(|| {
            sink.clear();
            let mut decoder = BodyDecoder::new(BodyKind::Chunked, &limits);
            let mut at = 0;
            loop {
                let step = decoder.decode(&input[at..]).expect("valid chunked body");
                at += step.consumed;
                sink.extend_from_slice(step.data);
                if step.finished {
                    break black_box(sink.len());
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, request_heads, response_head, chunked);
criterion_main!(benches);
