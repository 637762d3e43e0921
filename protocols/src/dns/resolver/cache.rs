//! The per-core answer cache of the resolver ([`Cache`]): positive and negative entries,
//! bounded by bytes, evicted least recently used first.
//!
//! Owns: entries keyed by (lowercase name, type) — and by name alone for NXDOMAIN (RFC
//! 2308 §5: a name that does not exist has no type) — each with its expiry; the TTLs of
//! what it returns counted down to what is left; a cap on TTLs (positive and negative);
//! the byte bound (an estimate of each entry's size: its records' wire size plus a fixed
//! overhead).
//! Contract: no sharing, no locks (one per core); time comes in as `now`.
//! Does not: decide what is cacheable (see `reply.rs`: only records on the chain of a
//! validated reply get here).

use std::time::{Duration, Instant};

use lru::LruCache;

use super::super::proto::{Name, RData, RType, Record};
use super::reply::Outcome;

/// Bounds of the cache.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct CacheLimits {
    /// Bytes of entries kept at most (estimated); 0 turns the cache off.
    pub max_bytes: usize,
    /// The longest a positive entry is kept, whatever its TTL says.
    pub max_ttl: Duration,
    /// The longest a negative entry (NXDOMAIN, NODATA) is kept (RFC 2308 §5 suggests
    /// 1-3 hours at most).
    pub max_negative_ttl: Duration,
}

impl Default for CacheLimits {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_ttl: Duration::from_secs(86_400),
            max_negative_ttl: Duration::from_secs(3_600),
        }
    }
}

/// What an entry is keyed by: a type of a name, or (NXDOMAIN) the name alone.
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
struct Key {
    /// Lowercase wire form.
    name: Box<[u8]>,
    /// `None`: the name does not exist.
    rtype: Option<RType>,
}

#[derive(Debug)]
struct Entry {
    outcome: Outcome,
    stored: Instant,
    expires: Instant,
    bytes: usize,
}

/// Fixed cost counted per entry (key, map slot, bookkeeping), on top of its records.
const ENTRY_OVERHEAD: usize = 96;

/// The resolver's cache (see the module docs).
#[derive(Debug)]
pub struct Cache {
    entries: LruCache<Key, Entry>,
    bytes: usize,
    limits: CacheLimits,
    hits: u64,
    misses: u64,
}

impl Cache {
    /// An empty cache.
    #[must_use]
    pub fn new(limits: CacheLimits) -> Self {
        Self {
            entries: LruCache::unbounded(),
            bytes: 0,
            limits,
            hits: 0,
            misses: 0,
        }
    }

    /// What is known about `name`'s records of `rtype` at `now`, TTLs counted down.
    pub fn get(&mut self, name: &Name, rtype: RType, now: Instant) -> Option<Outcome> {
        let key = name.key();
        let typed = Key {
            name: key.clone(),
            rtype: Some(rtype),
        };
        let found = self.take_live(&typed, now).or_else(|| {
            self.take_live(
                &Key {
                    name: key,
                    rtype: None,
                },
                now,
            )
        });
        if found.is_some() {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        found
    }

    /// Keeps `outcome` for `name`/`rtype` for `ttl` seconds (capped by the limits; 0:
    /// not kept, and an older entry goes).
    pub fn insert(&mut self, name: &Name, rtype: RType, outcome: &Outcome, ttl: u32, now: Instant) {
        let negative = matches!(outcome, Outcome::NxDomain { .. } | Outcome::NoData { .. });
        let cap = if negative {
            self.limits.max_negative_ttl
        } else {
            self.limits.max_ttl
        };
        let lifetime = Duration::from_secs(u64::from(ttl)).min(cap);
        let key = Key {
            name: name.key(),
            // RFC 2308 §5: NXDOMAIN of the name itself holds for every type.
            rtype: match outcome {
                Outcome::NxDomain { chain } if chain.is_empty() => None,
                _ => Some(rtype),
            },
        };
        self.remove(&key);
        let bytes =
            ENTRY_OVERHEAD + key.name.len() + outcome.records().map(record_size).sum::<usize>();
        if lifetime.is_zero() || bytes > self.limits.max_bytes {
            return;
        }
        self.bytes += bytes;
        self.entries.put(
            key,
            Entry {
                outcome: outcome.clone(),
                stored: now,
                expires: now + lifetime,
                bytes,
            },
        );
        while self.bytes > self.limits.max_bytes {
            let Some((_, old)) = self.entries.pop_lru() else {
                break;
            };
            self.bytes -= old.bytes;
        }
    }

    /// Entries kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes kept (estimated).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Lookups answered from the cache, and not.
    #[must_use]
    pub fn hits_and_misses(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }

    /// The live entry at `key`, TTLs counted down; an expired one is dropped.
    fn take_live(&mut self, key: &Key, now: Instant) -> Option<Outcome> {
        let entry = self.entries.get(key)?;
        if entry.expires <= now {
            self.remove(key);
            return None;
        }
        let elapsed = u32::try_from(now.saturating_duration_since(entry.stored).as_secs())
            .unwrap_or(u32::MAX);
        let left = u32::try_from(entry.expires.saturating_duration_since(now).as_secs())
            .unwrap_or(u32::MAX);
        let mut outcome = entry.outcome.clone();
        for record in outcome.records_mut() {
            // Never more than the entry has left (the cap may have cut it).
            record.ttl = record.ttl.saturating_sub(elapsed).min(left);
        }
        Some(outcome)
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.entries.pop(key) {
            self.bytes -= old.bytes;
        }
    }
}

/// A record's wire size (uncompressed), as the cache counts it.
fn record_size(record: &Record) -> usize {
    let data = match &record.data {
        RData::A(_) => 4,
        RData::Aaaa(_) => 16,
        RData::Ns(n) | RData::Cname(n) | RData::Ptr(n) => n.wire().len(),
        RData::Mx { exchange, .. } => 2 + exchange.wire().len(),
        RData::Soa(soa) => soa.mname.wire().len() + soa.rname.wire().len() + 20,
        RData::Txt(strings) => strings.iter().map(|s| 1 + s.len()).sum(),
        RData::Srv { target, .. } => 6 + target.wire().len(),
        RData::Caa { tag, value, .. } => 2 + tag.len() + value.len(),
        RData::Other(_, bytes) => bytes.len(),
    };
    record.name.wire().len() + 10 + data + std::mem::size_of::<Record>()
}
