//! Framing-codec micro-benchmarks: the line, netstring and length-prefixed decoders each
//! decoding a 64 KiB buffer of small (~32-byte) frames fed in one `handle_input`.
//!
//! Run: `cargo bench -p ringwork-benches --bench framing -- --warm-up-time 1
//! --measurement-time 3`. Throughput is input bytes per second.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwork_protocols::basic::{
    Delimiter, LengthPrefixedDecoder, LengthPrefixedLimits, LineDecoder, LineEvent, LineLimits,
    NetstringDecoder, Prefix, encode_frame, encode_line, encode_netstring,
};

const BUFFER: usize = 64 * 1024;

/// Small payloads of 16 to 47 bytes.
fn payloads() -> impl Iterator<Item = Vec<u8>> {
    (0usize..).map(|i| {
        let len = 16 + i * 7 % 32;
        (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
    })
}

/// Encodes payloads with `encode` until the buffer is 64 KiB; returns it and the count.
fn fill(mut encode: impl FnMut(&[u8], &mut BytesMut)) -> (Vec<u8>, usize) {
    let mut out = BytesMut::new();
    let mut frames = 0;
    for p in payloads() {
        let before = out.len();
        encode(&p, &mut out);
        if out.len() > BUFFER {
            out.truncate(before);
            break;
        }
        frames += 1;
    }
    (out.to_vec(), frames)
}

fn framing(c: &mut Criterion) {
    let mut group = c.benchmark_group("framing_64KiB");

    let (lines, n) = fill(|p, out| encode_line(p, Delimiter::CrLf, out));
    let decode_lines = |input: &[u8]| {
        let mut d = LineDecoder::with_config(Delimiter::CrLf, LineLimits::new(1024));
        d.handle_input(input);
        let mut count = 0;
        while let Some(LineEvent::Line(l)) = d.poll_event().expect("valid lines") {
            black_box(l);
            count += 1;
        }
        count
    };
    assert_eq!(decode_lines(&lines), n);
    group.throughput(Throughput::Bytes(lines.len() as u64));
    group.bench_function("line_crlf", |b| b.iter(|| decode_lines(black_box(&lines))));

    let (netstrings, n) = fill(encode_netstring);
    let decode_netstrings = |input: &[u8]| {
        let mut d = NetstringDecoder::new();
        d.handle_input(input);
        let mut count = 0;
        while let Some(f) = d.poll_event().expect("valid netstrings") {
            black_box(f);
            count += 1;
        }
        count
    };
    assert_eq!(decode_netstrings(&netstrings), n);
    group.throughput(Throughput::Bytes(netstrings.len() as u64));
    group.bench_function("netstring", |b| {
        b.iter(|| decode_netstrings(black_box(&netstrings)))
    });

    let (frames, n) = fill(|p, out| encode_frame(p, Prefix::U16, out).expect("fits a u16"));
    let decode_frames = |input: &[u8]| {
        let mut d = LengthPrefixedDecoder::new(Prefix::U16, LengthPrefixedLimits::new(1024));
        d.handle_input(input);
        let mut count = 0;
        while let Some(f) = d.poll_event().expect("valid frames") {
            black_box(f);
            count += 1;
        }
        count
    };
    assert_eq!(decode_frames(&frames), n);
    group.throughput(Throughput::Bytes(frames.len() as u64));
    group.bench_function("length_prefixed_u16", |b| {
        b.iter(|| decode_frames(black_box(&frames)))
    });

    group.finish();
}

criterion_group!(benches, framing);
criterion_main!(benches);
