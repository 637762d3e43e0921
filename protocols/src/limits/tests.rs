use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::*;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

/// A client sending as fast as it can (a request every 100 µs for 10 s) gets the
/// burst plus `rate` per second, within 10 % (in fact within one request).
#[test]
fn the_rate_holds_under_a_steady_flood() {
    for (rate, burst) in [(100.0, 10), (7.5, 1), (1000.0, 50), (0.5, 3)] {
        let limit = RateLimit::new(rate, burst).expect("valid");
        let mut limiter = RequestRateLimiter::new(limit, 16);
        let start = Instant::now();
        let client = ip("192.0.2.1");
        let mut allowed = 0u32;
        let seconds = 10u32;
        for tick in 0..seconds * 10_000 {
            let now = start + Duration::from_micros(100 * u64::from(tick));
            if limiter.check(client, now).is_ok() {
                allowed += 1;
            }
        }
        let expected = f64::from(burst) + rate * f64::from(seconds);
        let got = f64::from(allowed);
        assert!(
            (got - expected).abs() <= (expected * 0.1).max(1.0),
            "rate {rate} burst {burst}: {allowed} allowed, expected {expected}"
        );
        assert!((got - expected).abs() <= 1.0, "{got} vs {expected}");
    }
}

/// After the burst, the wait until the next token is what Retry-After says; then one
/// request passes.
#[test]
fn a_refusal_says_how_long_to_wait() {
    let limit = RateLimit::new(2.0, 3).expect("valid");
    let mut limiter = RequestRateLimiter::new(limit, 16);
    let t0 = Instant::now();
    let client = ip("2001:db8::1");
    for _ in 0..3 {
        assert!(limiter.check(client, t0).is_ok());
    }
    let wait = limiter.check(client, t0).expect_err("the burst is spent");
    assert_eq!(wait, Duration::from_millis(500));
    assert!(
        limiter
            .check(client, t0 + Duration::from_millis(499))
            .is_err()
    );
    // A second refills two tokens.
    assert!(
        limiter
            .check(client, t0 + Duration::from_millis(1000))
            .is_ok()
    );
    assert!(
        limiter
            .check(client, t0 + Duration::from_millis(1000))
            .is_ok()
    );
    assert!(
        limiter
            .check(client, t0 + Duration::from_millis(1000))
            .is_err()
    );
    // Another client has its own bucket; the mapped form of an address is the same client.
    assert!(limiter.check(ip("192.0.2.7"), t0).is_ok());
    let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 7).to_ipv6_mapped());
    for _ in 0..2 {
        assert!(limiter.check(mapped, t0).is_ok());
    }
    assert!(limiter.check(ip("192.0.2.7"), t0).is_err());
}

/// A flood of a million distinct (spoofed) addresses: the table never holds more than its
/// capacity, evicting the least recently seen.
#[test]
fn a_spoofed_flood_cannot_grow_the_table() {
    let limit = RateLimit::new(10.0, 5).expect("valid");
    let mut limiter = RequestRateLimiter::new(limit, 1000);
    let t0 = Instant::now();
    for n in 0..1_000_000u128 {
        let client = IpAddr::V6(Ipv6Addr::from(
            0x2001_0db8_0000_0000_0000_0000_0000_0000 | n,
        ));
        assert!(
            limiter.check(client, t0).is_ok(),
            "a new client has its burst"
        );
        assert!(limiter.len() <= 1000);
    }
    assert_eq!(limiter.len(), 1000);
    assert_eq!(limiter.evicted(), 999_000);
    // A client seen often stays (least recently seen goes first).
    let regular = ip("198.51.100.1");
    let mut limiter = RequestRateLimiter::new(limit, 2);
    assert!(limiter.check(regular, t0).is_ok());
    for n in 0..100u32 {
        let _ = limiter.check(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | n)), t0);
        let _ = limiter.check(regular, t0);
    }
    assert!(
        limiter.check(regular, t0).is_err(),
        "the regular's bucket was kept, and spent"
    );
}

#[test]
fn bad_settings_are_refused() {
    assert!(RateLimit::new(0.0, 1).is_err());
    assert!(RateLimit::new(-1.0, 1).is_err());
    assert!(RateLimit::new(f64::NAN, 1).is_err());
    assert!(RateLimit::new(f64::INFINITY, 1).is_err());
    assert!(RateLimit::new(1.0, 0).is_err());
}

#[test]
fn connections_per_client_are_capped_and_entries_leave() {
    let mut counts = ConnectionCounts::new(2);
    let a = ip("192.0.2.1");
    let a_mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
    assert!(counts.open(a));
    assert!(counts.open(a_mapped));
    assert!(!counts.open(a), "the third is refused");
    assert!(counts.open(ip("192.0.2.2")), "another client is not");
    assert_eq!(counts.count(a), 2);
    counts.close(a);
    assert!(counts.open(a), "room again after a close");
    counts.close(a);
    counts.close(a_mapped);
    counts.close(ip("192.0.2.2"));
    assert_eq!(counts.clients(), 0, "entries leave at their last close");
    counts.close(a);
    assert_eq!(counts.clients(), 0, "a close too many changes nothing");
}

/// Two cores (threads) serving one client share its budget: together they let through the
/// burst plus the rate, not twice that (per-core buckets did).
#[test]
fn a_shared_limiter_gives_one_budget_across_threads() {
    let limit = RateLimit::new(100.0, 10).expect("valid");
    let limiter = SharedRateLimiter::new(limit, 1024);
    let start = Instant::now();
    let client = ip("192.0.2.7");
    let allowed: u32 = std::thread::scope(|scope| {
        let cores: Vec<_> = (0..2u64)
            .map(|core| {
                let limiter = limiter.clone();
                scope.spawn(move || {
                    // Each core sees a request every 100 µs for 2 s, interleaved with the
                    // other's (core 1 is 50 µs behind).
                    (0..20_000u64)
                        .filter(|tick| {
                            let now = start + Duration::from_micros(100 * tick + 50 * core);
                            limiter.check(client, now).is_ok()
                        })
                        .count() as u32
                })
            })
            .collect();
        cores.into_iter().map(|c| c.join().expect("core")).sum()
    });
    // 10 + 100/s × 2 s = 210, with slack for the two threads' clocks arriving out of order
    // (a bucket never goes back in time, so that only ever refuses more).
    assert!(
        (190..=211).contains(&allowed),
        "{allowed} allowed, expected about 210"
    );
    assert_eq!(limiter.len(), 1);
}

/// Each client is in exactly one shard; the table stays bounded under a flood of distinct
/// addresses, and a reload's new limit applies to existing buckets.
#[test]
fn a_shared_limiter_is_bounded_and_reloadable() {
    let limiter = SharedRateLimiter::new(RateLimit::new(1.0, 1).expect("valid"), 64);
    let now = Instant::now();
    for i in 0..10_000u32 {
        let _ = limiter.check(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), now);
    }
    assert!(limiter.len() <= 64 + RATE_SHARDS, "{}", limiter.len());
    assert!(limiter.evicted() >= 10_000 - 80, "{}", limiter.evicted());
    let client = ip("198.51.100.1");
    assert!(limiter.check(client, now).is_ok());
    assert!(limiter.check(client, now).is_err(), "burst 1");
    limiter.set_limit(RateLimit::new(1000.0, 5).expect("valid"));
    assert_eq!(limiter.limit().burst, 5);
    // 10 ms at 1000/s refills the bucket to the new burst.
    let later = now + Duration::from_millis(10);
    let passed = (0..10)
        .filter(|_| limiter.check(client, later).is_ok())
        .count();
    assert_eq!(passed, 5);
}

/// A route's bucket is one for every clone (every core's copy of the route table).
#[test]
fn a_shared_bucket_is_shared_by_its_clones() {
    let limit = RateLimit::new(1.0, 3).expect("valid");
    let bucket = SharedBucket::default();
    let other = bucket.clone();
    let now = Instant::now();
    assert!(bucket.take(&limit, now).is_ok());
    assert!(other.take(&limit, now).is_ok());
    assert!(bucket.take(&limit, now).is_ok());
    assert!(other.take(&limit, now).is_err(), "the burst of 3 is shared");
}

/// A reload's new connection cap refuses new connections over it and keeps the open ones.
#[test]
fn a_connection_cap_can_change() {
    let mut counts = ConnectionCounts::new(3);
    let client = ip("192.0.2.9");
    assert!((0..3).all(|_| counts.open(client)));
    counts.set_max(1);
    assert_eq!(counts.max(), 1);
    assert_eq!(counts.count(client), 3, "open connections are kept");
    assert!(!counts.open(client));
    counts.close(client);
    counts.close(client);
    assert!(!counts.open(client), "still at the new cap");
    counts.close(client);
    assert!(counts.open(client));
}
