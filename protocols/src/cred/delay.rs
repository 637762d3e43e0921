//! The per-peer delay after failed authentication attempts: a bounded table, sans-IO.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Bounds of [`FailureDelays`].
#[derive(Debug, Clone)]
pub struct FailureDelaysConfig {
    /// The delay after the first failure; it doubles with each further one.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// A peer's failures are forgotten this long after its last one.
    pub forget_after: Duration,
    /// Peers tracked at most; the one whose last failure is oldest is dropped for a new one.
    pub max_peers: usize,
}

impl Default for FailureDelaysConfig {
    fn default() -> Self {
        FailureDelaysConfig {
            base: Duration::from_millis(500),
            max: Duration::from_secs(16),
            forget_after: Duration::from_secs(600),
            max_peers: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failed attempts per peer address, and the delay before the next answer to that peer.
/// A server keeps one per core; memory is bounded by `max_peers`.
#[derive(Debug)]
pub struct FailureDelays {
    config: FailureDelaysConfig,
    peers: HashMap<IpAddr, Record>,
}

impl FailureDelays {
    /// An empty table.
    #[must_use]
    pub fn new(config: FailureDelaysConfig) -> FailureDelays {
        FailureDelays {
            config,
            peers: HashMap::new(),
        }
    }

    /// How long to wait before answering `peer`'s next attempt (zero without recent
    /// failures).
    #[must_use]
    pub fn delay(&self, peer: IpAddr, now: Instant) -> Duration {
        match self.peers.get(&peer) {
            Some(r) if now.saturating_duration_since(r.last) < self.config.forget_after => {
                let shift = r.failures.saturating_sub(1).min(20);
                self.config
                    .base
                    .saturating_mul(1 << shift)
                    .min(self.config.max)
            }
            _ => Duration::ZERO,
        }
    }

    /// Records a failed attempt by `peer`.
    pub fn record_failure(&mut self, peer: IpAddr, now: Instant) {
        let forget = self.config.forget_after;
        if !self.peers.contains_key(&peer) && self.peers.len() >= self.config.max_peers.max(1) {
            self.peers
                .retain(|_, r| now.saturating_duration_since(r.last) < forget);
            let oldest = self
                .peers
                .iter()
                .min_by_key(|(_, r)| r.last)
                .map(|(k, _)| *k);
            if let Some(oldest) =
                oldest.filter(|_| self.peers.len() >= self.config.max_peers.max(1))
            {
                self.peers.remove(&oldest);
            }
        }
        let record = self.peers.entry(peer).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(record.last) >= forget {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
    }

    /// Forgets `peer`'s failures (it authenticated).
    pub fn record_success(&mut self, peer: IpAddr) {
        self.peers.remove(&peer);
    }

    /// Peers tracked now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}
