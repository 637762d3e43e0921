//! Write-buffer coalescing micro-benchmarks: 16 HTTP responses of 115 bytes written in one
//! loop turn (one flush) against the same writes each in its own turn (16 flushes), one
//! 1,840-byte write, and `write_bytes` (no copy) of 16 shared `Bytes`.
//!
//! Why it matters: the engine copies `Context::write` data into the connection's write
//! buffer and flushes it once per turn, so a pipelined batch of requests costs one send;
//! `write_bytes` skips the copy but queues one send per buffer. These benches show what a
//! write and a flush cost, and so what coalescing saves.
//!
//! Setup: `ringwork::testing::StringTransport` (feature `testing`) runs the engine's own
//! write path, turn end and flush over an in-memory kernel. That kernel queues each sent
//! `Bytes` and the peer side copies it out (one copy per byte in every variant), and each
//! turn also pays the transport's dispatch and settle loop, so the figures are the engine's
//! cost plus a small fixed cost per turn, without system calls. After each iteration the
//! peer's bytes are taken (one `Vec` hand-over, same in every variant).
//!
//! Run: `cargo bench -p ringwork-benches --bench write_coalescing -- --warm-up-time 1
//! --measurement-time 2`. Throughput is writes (responses) per second; ns per write =
//! time / 16.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwork::testing::StringTransport;
use ringwork::{Context, Protocol};

/// Writes per iteration (a pipelined batch, as wrk's pipeline.lua sends).
const WRITES: usize = 16;

/// A 115-byte HTTP/1.1 response: "Hello, World!" with the usual head.
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
    Date: Sat, 21 Nov 2026 16:00:00 GMT\r\n\
    Content-Type: text/plain\r\n\
    Content-Length: 13\r\n\r\n\
    Hello, World!";

/// A protocol that ignores input: the benches write through `with_context`.
struct Silent;

impl Protocol for Silent {
    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// One iteration's work: drives the transport so that it writes `WRITES` responses.
type Step<'a> = Box<dyn FnMut(&mut StringTransport) + 'a>;

/// Runs `step` (which drives `t`) and checks that it delivered `WRITES` responses.
fn check(t: &mut StringTransport, step: &mut impl FnMut(&mut StringTransport)) {
    step(t);
    let written = t.take_written();
    assert_eq!(written.len(), WRITES * RESPONSE.len());
    assert_eq!(&written[..RESPONSE.len()], RESPONSE);
}

fn coalescing(c: &mut Criterion) {
    assert_eq!(RESPONSE.len(), 115);
    let joined: Vec<u8> = RESPONSE.repeat(WRITES);
    // One allocation shared by every `write_bytes` (cloning bumps a reference count).
    let shared = Bytes::copy_from_slice(RESPONSE);

    let mut group = c.benchmark_group("write_16x115B");
    group.throughput(Throughput::Elements(WRITES as u64));
    let variants: [(&str, Step<'_>); 5] = [
        (
            "write_one_turn",
            Box::new(|t| {
                t.with_context(|ctx| {
                    for _ in 0..WRITES {
                        ctx.write(black_box(RESPONSE));
                    }
                })
            }),
        ),
        (
            "write_turn_each",
            Box::new(|t| {
                for _ in 0..WRITES {
                    t.with_context(|ctx| ctx.write(black_box(RESPONSE)));
                }
            }),
        ),
        (
            "write_1840B_once",
            Box::new(|t| t.with_context(|ctx| ctx.write(black_box(&joined)))),
        ),
        (
            "write_bytes_one_turn",
            Box::new(|t| {
                t.with_context(|ctx| {
                    for _ in 0..WRITES {
                        ctx.write_bytes(shared.clone());
                    }
                })
            }),
        ),
        (
            "write_bytes_turn_each",
            Box::new(|t| {
                for _ in 0..WRITES {
                    t.with_context(|ctx| ctx.write_bytes(shared.clone()));
                }
            }),
        ),
    ];
    for (name, mut step) in variants {
        let mut t = StringTransport::new(Silent);
        check(&mut t, &mut step);
        group.bench_function(name, |b| {
            b.iter(|| {
                step(&mut t);
                black_box(t.take_written())
            })
        });
        assert!(t.is_open());
    }
    group.finish();
}

criterion_group!(benches, coalescing);
criterion_main!(benches);
