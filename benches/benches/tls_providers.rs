//! TLS record encryption by crypto provider: ring (what the engine uses) against aws-lc-rs
//! (rustls's other provider), sealing one full TLS 1.3 record (16 KiB of plaintext and
//! the content-type byte) with AES-128-GCM, AES-256-GCM and ChaCha20-Poly1305 — the work
//! rustls's record layer hands its provider per record (both providers' rustls glue calls
//! `seal_in_place_separate_tag` on the record buffer, with the record header as AAD).
//!
//! Needs feature `aws-lc` (builds the aws-lc C library with cc; no cmake on x86_64 Linux):
//! `cargo bench -p ringwork-benches --features aws-lc --bench tls_providers --
//! --warm-up-time 1 --measurement-time 3`. Throughput is plaintext bytes per second.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// A full TLS 1.3 record's inner plaintext: 16 KiB and the content type.
const RECORD: usize = 16_384 + 1;

/// Benchmarks sealing records with `$provider::aead::$alg` (ring and aws-lc-rs share the
/// `aead` API).
macro_rules! seal_records {
    ($group:expr, $provider:ident, $alg:ident, $key_len:expr) => {{
        use $provider::aead;
        let key = aead::UnboundKey::new(&aead::$alg, &[7u8; 32][..$key_len])
            .expect("a key of the algorithm's length");
        let key = aead::LessSafeKey::new(key);
        let mut record = vec![0x5a_u8; RECORD];
        let mut seq = 0u64;
        $group.bench_function(
            BenchmarkId::new(stringify!($alg), stringify!($provider)),
            |b| {
                b.iter(|| {
                    seq += 1;
                    let mut nonce = [0u8; 12];
                    nonce[4..].copy_from_slice(&seq.to_be_bytes());
                    let header = [23u8, 3, 3, 0x40, 0x11];
                    let tag = key
                        .seal_in_place_separate_tag(
                            aead::Nonce::assume_unique_for_key(nonce),
                            aead::Aad::from(header),
                            &mut record,
                        )
                        .expect("sealing cannot fail below the record limit");
                    black_box(tag);
                });
            },
        );
    }};
}

fn providers(c: &mut Criterion) {
    let mut group = c.benchmark_group("seal_16k_record");
    group.throughput(Throughput::Bytes(RECORD as u64));
    seal_records!(group, ring, AES_128_GCM, 16);
    seal_records!(group, aws_lc_rs, AES_128_GCM, 16);
    seal_records!(group, ring, AES_256_GCM, 32);
    seal_records!(group, aws_lc_rs, AES_256_GCM, 32);
    seal_records!(group, ring, CHACHA20_POLY1305, 32);
    seal_records!(group, aws_lc_rs, CHACHA20_POLY1305, 32);
    group.finish();
}

criterion_group!(benches, providers);
criterion_main!(benches);
