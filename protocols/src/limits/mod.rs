//! Per-client limits: a token bucket of requests per client IP (HTTP answers 429 past it)
//! and a cap on connections per client IP (any stream service).
//!
//! Owns: [`TokenBucket`] (rate and burst, time as an argument), [`RequestRateLimiter`] (a
//! bucket per client IP in a table bounded by entries, least recently seen evicted first),
//! [`SharedRateLimiter`] (the same table shared by every core, in shards) and
//! [`ConnectionCounts`] (live connections per client IP).
//! Contract: sans-IO: every call takes `now`; nothing here reads a clock, so a test drives
//! it with made-up instants (or the engine's `ManualClock`). Memory is bounded whatever the
//! peers do: the request table holds at most `capacity` entries (a flood of spoofed or
//! distinct addresses evicts the least recently seen, which only gives that client a fresh
//! burst), and the connection table holds one entry per client IP with a live connection
//! (entries leave at their last close), so at most the number of open connections.
//! Addresses are compared canonically (`::ffff:192.0.2.1` is `192.0.2.1`).
//! Sharing: a client's budget is the process's, whichever core its connections land on
//! (SO_REUSEPORT spreads them): [`SharedRateLimiter`] holds the buckets in
//! [`RATE_SHARDS`] tables, each behind its own mutex, a client IP always in the same one —
//! nginx's `limit_req` zone does the same with a shared-memory table and a lock. The lock
//! is taken once per request only when a rate limit is configured, and held for one bucket
//! update. The connection cap is process-wide too (the engine adapter).
//! Does not: answer anyone (the HTTP server answers 429, the connection cap closes).

#[cfg(feature = "engine")]
mod adapter;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;

#[cfg(feature = "engine")]
pub use self::adapter::{ConnectionCap, ConnectionCapFactory};
use crate::destination::canonical_ip;

/// A token bucket: `burst` tokens at most, refilled at `rate` tokens per second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

/// The settings of a request rate limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Tokens (requests) added per second.
    pub rate: f64,
    /// The most tokens a bucket holds (the requests a client may send at once after a
    /// pause); at least 1.
    pub burst: u32,
}

impl RateLimit {
    /// Checks the settings.
    ///
    /// # Errors
    /// A rate that is not a positive finite number, or a zero burst.
    pub fn new(rate: f64, burst: u32) -> Result<Self, String> {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(format!(
                "a rate limit is a positive number of requests per second, not {rate}"
            ));
        }
        if burst == 0 {
            return Err("a burst is at least 1 request".into());
        }
        Ok(Self { rate, burst })
    }
}

impl TokenBucket {
    /// A full bucket at `now`.
    #[must_use]
    pub fn full(limit: &RateLimit, now: Instant) -> Self {
        Self {
            tokens: f64::from(limit.burst),
            updated: now,
        }
    }

    /// Takes one token at `now`: `Ok(())`, or `Err(wait)`, how long until one is there.
    pub fn take(&mut self, limit: &RateLimit, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * limit.rate).min(f64::from(limit.burst));
        self.updated = now.max(self.updated);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / limit.rate))
        }
    }
}

/// A token bucket per client IP, in a table of at most `capacity` clients.
#[derive(Debug)]
pub struct RequestRateLimiter {
    limit: RateLimit,
    buckets: LruCache<IpAddr, TokenBucket>,
    evicted: u64,
}

/// Clients a rate limiter tracks by default: about 1.5 MiB.
pub const DEFAULT_RATE_TABLE: usize = 16 * 1024;

impl RequestRateLimiter {
    /// A limiter of `limit` per client, tracking at most `capacity` clients (at least 1).
    #[must_use]
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        Self {
            limit,
            buckets: LruCache::new(NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN)),
            evicted: 0,
        }
    }

    /// Whether `client` may make a request at `now`: `Ok(())`, or `Err(wait)` until it may.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let client = canonical_ip(client);
        if let Some(bucket) = self.buckets.get_mut(&client) {
            return bucket.take(&self.limit, now);
        }
        let mut bucket = TokenBucket::full(&self.limit, now);
        let verdict = bucket.take(&self.limit, now);
        if self
            .buckets
            .push(client, bucket)
            .is_some_and(|(ip, _)| ip != client)
        {
            self.evicted += 1;
        }
        verdict
    }

    /// Clients tracked now (at most the capacity).
    #[must_use]
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no client is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Clients evicted to make room so far.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The limit each client gets.
    #[must_use]
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Changes the limit (a reload); the buckets keep their tokens, capped at the new
    /// burst at their next request.
    pub fn set_limit(&mut self, limit: RateLimit) {
        self.limit = limit;
    }
}

/// The shards of a [`SharedRateLimiter`]: enough that cores rarely wait on one another.
pub const RATE_SHARDS: usize = 16;

/// A [`RequestRateLimiter`] for the whole process: a clone per core, one budget per client
/// IP whichever core serves it. The table is split in [`RATE_SHARDS`] shards (by a hash of
/// the address), each a bounded LRU table behind its own mutex.
#[derive(Clone, Debug)]
pub struct SharedRateLimiter {
    shards: Arc<[Mutex<RequestRateLimiter>]>,
}

impl SharedRateLimiter {
    /// A limiter of `limit` per client, tracking at most about `capacity` clients in all
    /// (each shard holds its part, at least 1).
    #[must_use]
    pub fn new(limit: RateLimit, capacity: usize) -> Self {
        let per_shard = capacity.div_ceil(RATE_SHARDS).max(1);
        Self {
            shards: (0..RATE_SHARDS)
                .map(|_| Mutex::new(RequestRateLimiter::new(limit, per_shard)))
                .collect(),
        }
    }

    /// Whether `client` may make a request at `now`: `Ok(())`, or `Err(wait)` until it may.
    /// Instants of different cores' clocks are comparable (one monotonic clock); a bucket
    /// never goes back in time.
    pub fn check(&self, client: IpAddr, now: Instant) -> Result<(), Duration> {
        let client = canonical_ip(client);
        self.shard(client).check(client, now)
    }

    /// Changes every client's limit (a reload), keeping the buckets.
    pub fn set_limit(&self, limit: RateLimit) {
        for shard in self.shards.iter() {
            lock(shard).set_limit(limit);
        }
    }

    /// The limit each client gets.
    #[must_use]
    pub fn limit(&self) -> RateLimit {
        lock(&self.shards[0]).limit()
    }

    /// Clients tracked now, in all shards.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }

    /// Whether no client is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clients evicted to make room so far, in all shards.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.shards.iter().map(|s| lock(s).evicted()).sum()
    }

    fn shard(&self, client: IpAddr) -> std::sync::MutexGuard<'_, RequestRateLimiter> {
        // A fixed-key hash: which shard a client is in matters to no one outside, and a
        // flood aimed at one shard only evicts (gives fresh bursts to) clients of it.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(client);
        lock(&self.shards[(hash % RATE_SHARDS as u64) as usize])
    }
}

/// A shard's lock: a panic while holding it (none is reachable: the update is arithmetic)
/// would leave a consistent bucket table, so a poisoned lock is used as is.
fn lock(shard: &Mutex<RequestRateLimiter>) -> std::sync::MutexGuard<'_, RequestRateLimiter> {
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One token bucket shared by every core (a route's `rate_limit`): filled at its first
/// request; clones share it.
#[derive(Clone, Debug, Default)]
pub struct SharedBucket {
    bucket: Arc<Mutex<Option<TokenBucket>>>,
}

impl SharedBucket {
    /// Takes one token at `now` under `limit`: `Ok(())`, or `Err(wait)` until one is there.
    pub fn take(&self, limit: &RateLimit, now: Instant) -> Result<(), Duration> {
        let mut slot = self.bucket.lock().unwrap_or_else(PoisonError::into_inner);
        slot.get_or_insert_with(|| TokenBucket::full(limit, now))
            .take(limit, now)
    }
}

/// Live connections per client IP, capped at `max` each.
#[derive(Debug)]
pub struct ConnectionCounts {
    max: u32,
    counts: HashMap<IpAddr, u32>,
}

impl ConnectionCounts {
    /// At most `max` connections per client IP (at least 1).
    #[must_use]
    pub fn new(max: u32) -> Self {
        Self {
            max: max.max(1),
            counts: HashMap::new(),
        }
    }

    /// Counts a new connection of `client`; `false` (nothing counted) at its cap.
    pub fn open(&mut self, client: IpAddr) -> bool {
        let count = self.counts.entry(canonical_ip(client)).or_insert(0);
        if *count >= self.max {
            return false;
        }
        *count += 1;
        true
    }

    /// Counts a connection of `client` closed (one [`ConnectionCounts::open`] that returned
    /// `true`); the entry leaves at the last one.
    pub fn close(&mut self, client: IpAddr) {
        let client = canonical_ip(client);
        if let Some(count) = self.counts.get_mut(&client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.counts.remove(&client);
            }
        }
    }

    /// Clients with a live connection.
    #[must_use]
    pub fn clients(&self) -> usize {
        self.counts.len()
    }

    /// Changes the cap (a reload): clients over the new one keep their connections, and
    /// new ones are refused until they are under it.
    pub fn set_max(&mut self, max: u32) {
        self.max = max.max(1);
    }

    /// The cap per client.
    #[must_use]
    pub fn max(&self) -> u32 {
        self.max
    }

    /// Live connections of `client`.
    #[must_use]
    pub fn count(&self, client: IpAddr) -> u32 {
        self.counts.get(&canonical_ip(client)).copied().unwrap_or(0)
    }
}
