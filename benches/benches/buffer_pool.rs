//! Receive buffer pool micro-benchmarks: taking a buffer and giving it back, one at a time
//! and 64 at a time, for the poll backend's free list and the io_uring provided-buffer ring.
//!
//! Why it matters: every receive completion takes a pool buffer and every `data_received`
//! returns it when its [`RecvBuf`] drops, so this bookkeeping runs once per read on every
//! connection. The ring's kernel side is simulated (`ringwork_platform::bench::RingPool`
//! takes published entries at its own head, as the kernel does); giving back is the
//! production code, including the release store that publishes the tail. Pools have the
//! driver's default shape (1024 buffers of 16 KiB).
//!
//! Run: `cargo bench -p ringwork-benches --bench buffer_pool -- --warm-up-time 1
//! --measurement-time 2`. Throughput is buffers (take + give back) per second.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ringwork_platform::RecvBuf;
use ringwork_platform::bench::ListPool;
#[cfg(target_os = "linux")]
use ringwork_platform::bench::RingPool;

/// `DriverConfig::default()`'s buffer size and count.
const BUF_SIZE: u32 = 16 * 1024;
const BUF_COUNT: u16 = 1024;
/// Buffers held at once in the batch benches (a turn's worth of receives).
const BATCH: usize = 64;
/// Bytes each simulated receive reports (an HTTP request).
const RECV_LEN: usize = 100;

/// Takes one buffer and gives it back, then `BATCH` buffers and gives them back, with
/// `take` as the pool's take function.
fn bench_pool(c: &mut Criterion, name: &str, take: impl Fn() -> Option<RecvBuf>) {
    {
        let held: Vec<RecvBuf> = (0..BATCH).map(|_| take().expect("free buffer")).collect();
        assert!(held.iter().all(|b| b.len() == RECV_LEN));
    }

    let mut group = c.benchmark_group("buffer_pool/take_give_back_1");
    group.throughput(Throughput::Elements(1));
    group.bench_function(name, |b| {
        b.iter(|| drop(black_box(take().expect("free buffer"))))
    });
    group.finish();

    let mut group = c.benchmark_group(format!("buffer_pool/take_{BATCH}_give_back_{BATCH}"));
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut held = Vec::with_capacity(BATCH);
    group.bench_function(name, |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                held.push(take().expect("free buffer"));
            }
            black_box(&held);
            held.clear();
        })
    });
    group.finish();
}

fn list(c: &mut Criterion) {
    let pool = ListPool::new(BUF_SIZE, BUF_COUNT).expect("allocate pool");
    bench_pool(c, "poll_free_list", || pool.take(RECV_LEN));
    assert_eq!(pool.available(), u32::from(BUF_COUNT));
}

#[cfg(target_os = "linux")]
fn ring(c: &mut Criterion) {
    let pool = RingPool::new(BUF_SIZE, BUF_COUNT).expect("allocate ring");
    bench_pool(c, "uring_buf_ring", || pool.take(RECV_LEN as u32));
    assert_eq!(pool.available(), u32::from(BUF_COUNT));
}

#[cfg(not(target_os = "linux"))]
fn ring(_: &mut Criterion) {}

criterion_group!(benches, list, ring);
criterion_main!(benches);
