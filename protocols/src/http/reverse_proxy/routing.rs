//! The routing table (sans-IO): Host (exact or `*.suffix` wildcard) and longest path
//! prefix to an upstream pool; round-robin upstream pools with a back-off for failing
//! servers.
//!
//! Owns: [`HostPattern`], [`Route`], [`RouteTable::lookup`], [`UpstreamPool`].
//! Contract: a lookup prefers the most specific host match (exact, then the longest
//! wildcard suffix, then routes without a host), and among those the longest path prefix;
//! ties go to the route listed first. Time arrives as an argument (`now`).
//! Does not: resolve names or open connections.

use std::time::{Duration, Instant};

use super::balance::{Balance, HashRing};
use super::config::ServerAddr;
use super::health::HealthState;
use crate::limits::SharedBucket;

/// Which `Host` values a route accepts.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum HostPattern {
    /// Any host (no `host` in the route).
    Any,
    /// Exactly this host name (lowercase, no port).
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (at least one more label), stored
    /// as the suffix with its leading dot.
    Wildcard(String),
}

impl HostPattern {
    /// Parses `example.com` or `*.example.com` (case-insensitive, no port).
    ///
    /// # Errors
    /// What is wrong, for a pattern that is empty, has a port, or a `*` elsewhere.
    pub fn parse(pattern: &str) -> Result<Self, &'static str> {
        let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
        let name = pattern.strip_prefix("*.").unwrap_or(&pattern);
        if name.is_empty() {
            return Err("empty host name");
        }
        if name.contains('*') {
            return Err("a wildcard is only allowed as the first label (*.example.com)");
        }
        if name.contains(':') && !name.starts_with('[') {
            return Err("a host pattern has no port");
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
        {
            return Err("invalid character in host name");
        }
        Ok(if pattern.starts_with("*.") {
            HostPattern::Wildcard(pattern[1..].to_owned())
        } else {
            HostPattern::Exact(pattern)
        })
    }

    /// How specifically this pattern matches `host` (normalized), if it does: higher wins.
    fn rank(&self, host: Option<&str>) -> Option<(u8, usize)> {
        match (self, host) {
            (HostPattern::Any, _) => Some((0, 0)),
            (HostPattern::Exact(name), Some(host)) if name == host => Some((2, name.len())),
            (HostPattern::Wildcard(suffix), Some(host))
                if host.len() > suffix.len() && host.ends_with(suffix.as_str()) =>
            {
                Some((1, suffix.len()))
            }
            _ => None,
        }
    }
}

/// `Host` as routing compares it: lowercase, without port or trailing dot (`[::1]` stays
/// bracketed). `None` for an empty or non-UTF-8 value.
#[must_use]
pub fn normalize_host(raw: &[u8]) -> Option<String> {
    let host = std::str::from_utf8(raw).ok()?.trim();
    let name = if host.starts_with('[') {
        &host[..=host.find(']')?]
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

/// One route: requests whose host matches `host` and whose path starts with `prefix` go
/// to the upstream pool `upstream`.
#[derive(Clone, Debug)]
pub struct Route {
    /// Which hosts.
    pub host: HostPattern,
    /// Path prefix (`/` matches every origin-form path).
    pub prefix: String,
    /// Index of the upstream pool.
    pub upstream: usize,
    /// Replace `Host` with this value (the default keeps the client's).
    pub host_rewrite: Option<String>,
    /// Strip `prefix` from the path before forwarding (`/api/x` → `/x`).
    pub strip_prefix: bool,
    /// The route's own token bucket (`rate_limit`, `rate_burst`): requests per second for
    /// the whole route, all cores together, 429 past it; `None`: unlimited.
    pub rate_limit: Option<crate::limits::RateLimit>,
}

/// Routes, looked up per request. Clones (every core's copy) share the routes' token
/// buckets; a new table (a reload) starts with full ones.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Per route (same index): its bucket, used when it has a `rate_limit`.
    buckets: Vec<SharedBucket>,
}

impl RouteTable {
    /// A table of `routes` (order breaks ties).
    #[must_use]
    pub fn new(routes: Vec<Route>) -> Self {
        let buckets = routes.iter().map(|_| SharedBucket::default()).collect();
        Self { routes, buckets }
    }

    /// Takes a token of route `index`'s rate limit at `now`: `Ok(())` when the route has no
    /// limit or a token is there, else `Err(wait)` until one is.
    pub fn take_token(&self, index: usize, now: Instant) -> Result<(), Duration> {
        match (self.routes.get(index), self.buckets.get(index)) {
            (
                Some(Route {
                    rate_limit: Some(limit),
                    ..
                }),
                Some(bucket),
            ) => bucket.take(limit, now),
            _ => Ok(()),
        }
    }

    /// The routes, in configuration order.
    #[must_use]
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request to `host` (a raw `Host` value) and `path`; `None` when no
    /// route matches.
    #[must_use]
    pub fn lookup(&self, host: Option<&[u8]>, path: &[u8]) -> Option<&Route> {
        self.lookup_index(host, path).map(|(_, route)| route)
    }

    /// As [`RouteTable::lookup`], with the route's index in [`RouteTable::routes`].
    #[must_use]
    pub fn lookup_index(&self, host: Option<&[u8]>, path: &[u8]) -> Option<(usize, &Route)> {
        let host = host.and_then(normalize_host);
        // (host rank, host length, prefix length): higher wins.
        type Score = (u8, usize, usize);
        let mut best: Option<(Score, (usize, &Route))> = None;
        for (index, route) in self.routes.iter().enumerate() {
            let Some((rank, len)) = route.host.rank(host.as_deref()) else {
                continue;
            };
            if !path.starts_with(route.prefix.as_bytes()) {
                continue;
            }
            let score = (rank, len, route.prefix.len());
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, (index, route)));
            }
        }
        best.map(|(_, found)| found)
    }
}

/// One upstream pool: servers chosen by its [`Balance`] (round-robin by default), a failing
/// one skipped for `backoff`. Per core: its counts of requests in flight are this core's.
#[derive(Clone, Debug)]
pub struct UpstreamPool {
    /// The pool's name (from the configuration).
    pub name: String,
    servers: Vec<UpstreamServer>,
    next: usize,
    backoff: Duration,
    balance: Balance,
    /// The ring of a consistent-hash pool.
    ring: Option<HashRing>,
    /// The shared health-check state and this pool's index in it.
    health: Option<(std::sync::Arc<HealthState>, usize)>,
}

#[derive(Clone, Debug)]
struct UpstreamServer {
    addr: ServerAddr,
    down_until: Option<Instant>,
    /// Requests picked for it and not released.
    in_flight: u32,
    /// The health generation last seen: a newer one (it came back up) ends a back-off.
    generation: u64,
}

impl UpstreamPool {
    /// A pool of `servers` (not empty) with `backoff` for failed ones.
    #[must_use]
    pub fn new<S: Into<ServerAddr> + Clone>(
        name: impl Into<String>,
        servers: &[S],
        backoff: Duration,
    ) -> Self {
        Self {
            name: name.into(),
            servers: servers
                .iter()
                .map(|addr| UpstreamServer {
                    addr: addr.clone().into(),
                    down_until: None,
                    in_flight: 0,
                    generation: 0,
                })
                .collect(),
            next: 0,
            backoff,
            balance: Balance::RoundRobin,
            ring: None,
            health: None,
        }
    }

    /// This pool skipping the servers that `state` (pool `index` of it) says are down.
    #[must_use]
    pub fn with_health(mut self, state: std::sync::Arc<HealthState>, index: usize) -> Self {
        self.set_health(state, index);
        self
    }

    /// As [`UpstreamPool::with_health`], in place.
    pub fn set_health(&mut self, state: std::sync::Arc<HealthState>, index: usize) {
        self.health = Some((state, index));
    }

    /// This pool choosing by `balance`.
    #[must_use]
    pub fn with_balance(mut self, balance: Balance) -> Self {
        self.ring = matches!(balance, Balance::ConsistentHash(_)).then(|| {
            let names: Vec<String> = self.servers.iter().map(|s| s.addr.to_string()).collect();
            HashRing::new(&names)
        });
        self.balance = balance;
        self
    }

    /// How it chooses.
    #[must_use]
    pub fn balance(&self) -> &Balance {
        &self.balance
    }

    /// Number of servers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.servers.len()
    }

    /// Whether the pool has no server.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// [`UpstreamPool::pick_for`] without a hash key.
    pub fn pick(&mut self, now: Instant) -> Option<ServerAddr> {
        self.pick_for(now, None)
    }

    /// The server for the next request, among those not backing off at `now`: by the
    /// pool's balance — the next in turn; the one with the fewest requests in flight (ties
    /// in turn); or the first on the hash ring from `key` (without a key: in turn). When
    /// all are backing off, the one whose back-off ends first (better a likely failure
    /// than none). Counts the request in flight until [`UpstreamPool::release`].
    pub fn pick_for(&mut self, now: Instant, key: Option<u64>) -> Option<ServerAddr> {
        let n = self.servers.len();
        if let Some((state, pool)) = &self.health {
            for (at, server) in self.servers.iter_mut().enumerate() {
                let generation = state.generation(*pool, at);
                if generation != server.generation {
                    // It came back up: the checks say so, whatever failed before.
                    server.generation = generation;
                    server.down_until = None;
                }
            }
        }
        let servers = &self.servers;
        let health = self.health.as_ref();
        let up = |at: usize| {
            health.is_none_or(|(state, pool)| state.is_up(*pool, at))
                && servers[at].down_until.is_none_or(|until| until <= now)
        };
        let in_turn = (0..n).map(|i| (self.next + i) % n);
        let chosen = match (&self.balance, key, &self.ring) {
            (Balance::ConsistentHash(_), Some(key), Some(ring)) => {
                ring.walk(key).find(|&at| up(at))
            }
            (Balance::LeastConnections, ..) => in_turn
                .filter(|&at| up(at))
                .min_by_key(|&at| servers[at].in_flight),
            _ => in_turn.clone().find(|&at| up(at)),
        };
        let at = match chosen {
            Some(at) => {
                self.servers[at].down_until = None;
                if key.is_none() || self.ring.is_none() {
                    self.next = (at + 1) % n;
                }
                at
            }
            None => (0..n).min_by_key(|&at| self.servers[at].down_until)?,
        };
        let server = &mut self.servers[at];
        server.in_flight = server.in_flight.saturating_add(1);
        Some(server.addr.clone())
    }

    /// A request picked for `addr` is over (answered or failed).
    pub fn release(&mut self, addr: &ServerAddr) {
        if let Some(server) = self
            .servers
            .iter_mut()
            .find(|s| s.addr == *addr && s.in_flight > 0)
        {
            server.in_flight -= 1;
        }
    }

    /// `addr` failed (refused, unreachable, timed out): skip it until `now + backoff`.
    pub fn mark_failed(&mut self, addr: &ServerAddr, now: Instant) {
        for server in self.servers.iter_mut().filter(|s| s.addr == *addr) {
            server.down_until = Some(now + self.backoff);
        }
    }

    /// `addr` answered: it is up.
    pub fn mark_ok(&mut self, addr: &ServerAddr) {
        for server in self.servers.iter_mut().filter(|s| s.addr == *addr) {
            server.down_until = None;
        }
    }
}
