//! Timer wheel micro-benchmarks: inserting 10,000 timers at spread deadlines, inserting and
//! cancelling them, firing them all, and a server-like mix (a timeout armed per request,
//! cancelled by its response, 1% firing).
//!
//! Why it matters: the reactor's wheel holds every `call_later`, idle and request timeout of
//! a core, so a busy server inserts and cancels one or more timers per request; most never
//! fire. The wheel is crate-private (`ringwork::bench::TimerWheel` wraps it, feature
//! `bench-internals`); its tick is the reactor's default, 1 ms.
//!
//! Run: `cargo bench -p ringwork-benches --bench timer_wheel -- --warm-up-time 1
//! --measurement-time 2`. Throughput is timers (or requests, for the mix) per second.

// `criterion_group!` generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ringwork::bench::{TimerKey, TimerWheel};

/// Timers per batch.
const N: usize = 10_000;
/// `ReactorConfig::default().timer_tick`.
const TICK: Duration = Duration::from_millis(1);
/// Deadlines spread over this span (pseudo-randomly, with sub-tick offsets).
const SPAN_MS: u64 = 60_000;

/// `N` deadlines spread over `SPAN_MS` after `start`, in no particular order.
fn deadlines(start: Instant) -> Vec<Instant> {
    (0..N as u64)
        .map(|i| {
            let ms = i.wrapping_mul(7_919) % SPAN_MS;
            start + Duration::from_millis(ms) + Duration::from_micros(i * 37 % 1_000)
        })
        .collect()
}

/// A wheel whose entry storage already holds `N` timers' worth (as on a warm reactor).
fn warm_wheel(start: Instant, deadlines: &[Instant]) -> TimerWheel<u64> {
    let mut wheel = TimerWheel::new(start, TICK);
    let keys: Vec<TimerKey> = deadlines.iter().map(|&d| wheel.insert(d, 0)).collect();
    for key in keys {
        wheel.cancel(key);
    }
    wheel
}

fn batches(c: &mut Criterion) {
    let start = Instant::now();
    let deadlines = deadlines(start);
    let mut group = c.benchmark_group("timer_wheel_10k");
    group.throughput(Throughput::Elements(N as u64));

    group.bench_function("insert", |b| {
        b.iter_batched_ref(
            || warm_wheel(start, &deadlines),
            |wheel| {
                for (i, &d) in deadlines.iter().enumerate() {
                    black_box(wheel.insert(d, i as u64));
                }
            },
            BatchSize::PerIteration,
        )
    });

    let mut wheel = warm_wheel(start, &deadlines);
    let mut keys = Vec::with_capacity(N);
    group.bench_function("insert_cancel", |b| {
        b.iter(|| {
            keys.extend(
                deadlines
                    .iter()
                    .enumerate()
                    .map(|(i, &d)| wheel.insert(d, i as u64)),
            );
            for key in keys.drain(..) {
                black_box(wheel.cancel(key));
            }
        })
    });
    assert!(wheel.is_empty());

    // Every timer fires: one `expire` after the last deadline, and a reactor's view of the
    // same, one `expire` per 10 ms turn (6,000 turns) as time passes.
    let full = |start| {
        let mut wheel = warm_wheel(start, &deadlines);
        for (i, &d) in deadlines.iter().enumerate() {
            wheel.insert(d, i as u64);
        }
        (wheel, Vec::with_capacity(N))
    };
    let end = start + Duration::from_millis(SPAN_MS);
    group.bench_function("expire_all_at_once", |b| {
        b.iter_batched_ref(
            || full(start),
            |(wheel, out)| {
                wheel.expire(end, out);
                assert_eq!(out.len(), N);
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("expire_every_10ms", |b| {
        b.iter_batched_ref(
            || full(start),
            |(wheel, out)| {
                let mut now = start;
                while now < end {
                    now += Duration::from_millis(10);
                    wheel.expire(now, out);
                }
                assert_eq!(out.len(), N);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Requests per reactor turn in the server mix.
const PER_TURN: usize = 16;
/// Requests in flight: a response cancels the timeout of the request this many earlier.
const IN_FLIGHT: usize = 256;
/// One request in this many gets no response: its timeout fires.
const FIRE_ONE_IN: u64 = 100;
/// Time between requests (100k requests per second).
const GAP: Duration = Duration::from_micros(10);
/// Request timeout.
const TIMEOUT: Duration = Duration::from_millis(50);

/// A server's pattern, one iteration per turn of `PER_TURN` requests: each request arms
/// a timeout; the response to the request `IN_FLIGHT` earlier cancels its timeout (unless
/// it is one of the 1% that never get one); then the turn ends with `expire(now)`.
fn server_mix(c: &mut Criterion) {
    let start = Instant::now();
    let mut wheel = TimerWheel::new(start, TICK);
    let mut pending: std::collections::VecDeque<(u64, TimerKey)> =
        std::collections::VecDeque::with_capacity(IN_FLIGHT + PER_TURN);
    let mut fired = Vec::new();
    let (mut request, mut total_fired) = (0u64, 0u64);
    let mut now = start;
    let mut turn = || {
        for _ in 0..PER_TURN {
            now += GAP;
            pending.push_back((request, wheel.insert(now + TIMEOUT, request)));
            request += 1;
            if pending.len() > IN_FLIGHT {
                let (id, key) = pending.pop_front().expect("more than IN_FLIGHT pending");
                if id % FIRE_ONE_IN != 0 {
                    black_box(wheel.cancel(key));
                }
            }
        }
        wheel.expire(now, &mut fired);
        total_fired += fired.len() as u64;
        fired.clear();
        (request, total_fired)
    };
    // Reach the steady state (the first timeouts fire after `TIMEOUT`), and check it.
    for _ in 0..20_000 / PER_TURN {
        turn();
    }
    let (requests, fired_so_far) = turn();
    let share = fired_so_far as f64 / requests as f64;
    assert!((0.005..0.011).contains(&share), "fired share {share}");

    let mut group = c.benchmark_group("timer_wheel_server_mix");
    group.throughput(Throughput::Elements(PER_TURN as u64));
    group.bench_function("insert_cancel_1pct_fire", |b| b.iter(&mut turn));
    group.finish();
}

criterion_group!(benches, batches, server_mix);
criterion_main!(benches);
