//! [`OpenFileCache`]: files kept open between requests, in the spirit of nginx's
//! `open_file_cache` — the decision part (what is fresh, what to check, what to evict).
//!
//! Owns: the entries of one core (a value per key: for `StaticFiles` the open file and the
//! headers derived from its metadata), their identity ([`FileIdentity`]: device, inode,
//! size, modification time) and the time each was last checked; the bound
//! ([`OpenFileCacheConfig::entries`], least recently used evicted) and the validity window
//! ([`OpenFileCacheConfig::valid`]).
//! Contract: [`OpenFileCache::get`] says whether an entry may be used as it is (checked
//! within the window: no system call at all), must be checked first (the caller stats the
//! path again and reports with [`OpenFileCache::revalidated`], which keeps the entry when
//! its identity is unchanged and drops it otherwise), or is absent. Values are handed out
//! by clone (an `Rc` of the file): a value evicted or replaced while a response still sends
//! from it stays alive until that response drops it; the last holder closes the file.
//! Does not: read the clock (the caller passes `now`), open or stat anything, share
//! anything between cores (one cache per core, nothing `Send`), or keep negative entries
//! (a missing file is looked up each time).

use std::num::NonZeroUsize;
use std::time::{Duration, Instant, SystemTime};

use lru::LruCache;

/// How many files a core keeps open and how long an entry is used unchecked
/// (`ringwork serve web --open-file-cache ENTRIES[:VALID]`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct OpenFileCacheConfig {
    /// Files kept open per core (`0`: no cache, every request opens its file).
    pub entries: usize,
    /// How long an entry is trusted without a `stat` of its path: a file changed on disk
    /// may be served as it was for up to this long (`0`: checked on every request).
    pub valid: Duration,
}

impl OpenFileCacheConfig {
    /// The default: 256 files per core, checked after 1 s. A few hundred descriptors per
    /// core stay well inside the usual 1024 soft `RLIMIT_NOFILE` next to the connections
    /// of a small server; a second bounds how long an edited file is served stale (nginx's
    /// cache is off unless configured, with `valid=60s` when on) while a popular file is
    /// still checked only once a second per core.
    pub const DEFAULT: Self = Self {
        entries: 256,
        valid: Duration::from_secs(1),
    };

    /// No cache: every request looks its file up and opens it.
    pub const OFF: Self = Self {
        entries: 0,
        valid: Duration::ZERO,
    };

    /// Whether files are kept open at all.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.entries > 0
    }

    /// Parses `off`, `ENTRIES` or `ENTRIES:VALID`, where `VALID` is a count of seconds or
    /// a number with the unit `ms` or `s` (`1024:500ms`, `64:0`); `ENTRIES` alone keeps
    /// the default validity.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value == "off" {
            return Ok(Self::OFF);
        }
        let (entries, valid) = match value.split_once(':') {
            Some((entries, valid)) => (entries, Some(valid)),
            None => (value, None),
        };
        let entries = entries
            .parse::<usize>()
            .map_err(|e| format!("{value:?}: the entry count {entries:?} is not a number: {e}"))?;
        let valid = match valid {
            None => Self::DEFAULT.valid,
            Some(valid) => parse_duration(valid)
                .ok_or_else(|| format!("{value:?}: {valid:?} is not a time (5, 5s, 500ms)"))?,
        };
        Ok(Self { entries, valid })
    }
}

impl Default for OpenFileCacheConfig {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// `5`, `5s` or `500ms`.
fn parse_duration(value: &str) -> Option<Duration> {
    if let Some(ms) = value.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    let secs = value.strip_suffix('s').unwrap_or(value);
    secs.parse().ok().map(Duration::from_secs)
}

/// What says that a path still names the same file with the same contents: a file
/// replaced (by rename), truncated, grown or rewritten changes at least one of these.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct FileIdentity {
    /// Device of the filesystem.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub len: u64,
    /// Last modification time.
    pub modified: SystemTime,
}

/// What [`OpenFileCache::get`] found.
#[derive(Debug)]
pub enum CacheLookup<V> {
    /// Checked within the validity window: use it as it is.
    Fresh(V),
    /// Older than the window: stat the path, then [`OpenFileCache::revalidated`].
    Stale(FileIdentity),
    /// Not cached.
    Miss,
}

struct Entry<V> {
    value: V,
    identity: FileIdentity,
    checked: Instant,
}

/// The open files of one core, by key (see the module docs).
pub struct OpenFileCache<K: std::hash::Hash + Eq, V: Clone> {
    entries: Option<LruCache<K, Entry<V>>>,
    valid: Duration,
}

impl<K: std::hash::Hash + Eq, V: Clone> OpenFileCache<K, V> {
    /// An empty cache (no entries at all when `config` is off).
    #[must_use]
    pub fn new(config: OpenFileCacheConfig) -> Self {
        Self {
            entries: NonZeroUsize::new(config.entries).map(LruCache::new),
            valid: config.valid,
        }
    }

    /// Whether it keeps anything.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The entry of `key` at `now` (a fresh one becomes the most recently used).
    pub fn get<Q>(&mut self, key: &Q, now: Instant) -> CacheLookup<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let Some(entries) = &mut self.entries else {
            return CacheLookup::Miss;
        };
        match entries.get(key) {
            None => CacheLookup::Miss,
            Some(entry) if now.saturating_duration_since(entry.checked) < self.valid => {
                CacheLookup::Fresh(entry.value.clone())
            }
            Some(entry) => CacheLookup::Stale(entry.identity),
        }
    }

    /// The path of `key` was stat'ed at `now` and names `identity` (`None`: nothing, or
    /// not a file any more): the entry's value when it is unchanged (now checked at
    /// `now`); else the entry is dropped (its file closes with its last user) and `None`.
    pub fn revalidated<Q>(
        &mut self,
        key: &Q,
        identity: Option<FileIdentity>,
        now: Instant,
    ) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        let entries = self.entries.as_mut()?;
        match entries.get_mut(key) {
            Some(entry) if Some(entry.identity) == identity => {
                entry.checked = now;
                Some(entry.value.clone())
            }
            Some(_) => {
                entries.pop(key);
                None
            }
            None => None,
        }
    }

    /// Keeps `value` for `key`, checked at `now`, replacing any entry of `key`; the least
    /// recently used entry goes when the cache is full. Nothing when the cache is off.
    pub fn insert(&mut self, key: K, identity: FileIdentity, value: V, now: Instant) {
        if let Some(entries) = &mut self.entries {
            entries.put(
                key,
                Entry {
                    value,
                    identity,
                    checked: now,
                },
            );
        }
    }

    /// Drops the entry of `key`, if any.
    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        if let Some(entries) = &mut self.entries {
            entries.pop(key);
        }
    }

    /// Entries kept.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, LruCache::len)
    }

    /// Whether it keeps no entry.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: std::hash::Hash + Eq, V: Clone> std::fmt::Debug for OpenFileCache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenFileCache")
            .field("len", &self.len())
            .field("valid", &self.valid)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;

    fn identity(ino: u64, len: u64) -> FileIdentity {
        FileIdentity {
            dev: 1,
            ino,
            len,
            modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1000),
        }
    }

    fn cache(entries: usize, valid: Duration) -> OpenFileCache<String, Rc<u32>> {
        OpenFileCache::new(OpenFileCacheConfig { entries, valid })
    }

    #[test]
    fn fresh_within_the_window_then_stale() {
        let t0 = Instant::now();
        let mut cache = cache(4, Duration::from_secs(1));
        assert!(matches!(cache.get("a", t0), CacheLookup::Miss));
        cache.insert("a".into(), identity(7, 10), Rc::new(1), t0);
        let fresh = t0 + Duration::from_millis(999);
        assert!(matches!(cache.get("a", fresh), CacheLookup::Fresh(v) if *v == 1));
        let late = t0 + Duration::from_secs(1);
        assert!(matches!(cache.get("a", late), CacheLookup::Stale(id) if id == identity(7, 10)));
        // Unchanged: kept, and fresh again from the check.
        assert_eq!(
            cache
                .revalidated("a", Some(identity(7, 10)), late)
                .as_deref(),
            Some(&1)
        );
        let later = late + Duration::from_millis(500);
        assert!(matches!(cache.get("a", later), CacheLookup::Fresh(_)));
    }

    #[test]
    fn a_replaced_or_deleted_file_drops_its_entry() {
        let t0 = Instant::now();
        let mut cache = cache(4, Duration::ZERO);
        cache.insert("a".into(), identity(7, 10), Rc::new(1), t0);
        cache.insert("b".into(), identity(8, 10), Rc::new(2), t0);
        // Validity 0: stale at once, every use is checked.
        assert!(matches!(cache.get("a", t0), CacheLookup::Stale(_)));
        // Renamed over: another inode.
        assert_eq!(cache.revalidated("a", Some(identity(9, 10)), t0), None);
        assert!(matches!(cache.get("a", t0), CacheLookup::Miss));
        // Rewritten in place: another size.
        let held = match cache.get("b", t0) {
            CacheLookup::Stale(_) => cache.revalidated("b", Some(identity(8, 10)), t0).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(cache.revalidated("b", Some(identity(8, 11)), t0), None);
        // Deleted.
        cache.insert("c".into(), identity(10, 1), Rc::new(3), t0);
        assert_eq!(cache.revalidated("c", None, t0), None);
        assert!(cache.is_empty());
        // A response still holding the dropped value keeps it alive.
        assert_eq!(*held, 2);
    }

    #[test]
    fn bounded_with_the_least_recently_used_evicted() {
        let t0 = Instant::now();
        let mut cache = cache(2, Duration::from_secs(60));
        let values: Vec<Rc<u32>> = (0..3).map(Rc::new).collect();
        cache.insert("a".into(), identity(1, 1), Rc::clone(&values[0]), t0);
        cache.insert("b".into(), identity(2, 1), Rc::clone(&values[1]), t0);
        assert!(matches!(cache.get("a", t0), CacheLookup::Fresh(_))); // b is now the oldest
        cache.insert("c".into(), identity(3, 1), Rc::clone(&values[2]), t0);
        assert_eq!(cache.len(), 2);
        assert!(matches!(cache.get("b", t0), CacheLookup::Miss));
        // The evicted value was dropped by the cache (only `values` holds it).
        assert_eq!(Rc::strong_count(&values[1]), 1);
        assert_eq!(Rc::strong_count(&values[0]), 2);
        // Replacing a key drops the old value.
        cache.insert("a".into(), identity(4, 1), Rc::new(9), t0);
        assert_eq!(Rc::strong_count(&values[0]), 1);
    }

    #[test]
    fn off_keeps_nothing() {
        let t0 = Instant::now();
        let mut cache = cache(0, Duration::from_secs(60));
        assert!(!cache.enabled());
        cache.insert("a".into(), identity(1, 1), Rc::new(1), t0);
        assert!(matches!(cache.get("a", t0), CacheLookup::Miss));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn parses_the_option() {
        let parse = OpenFileCacheConfig::parse;
        assert_eq!(parse("off"), Ok(OpenFileCacheConfig::OFF));
        assert_eq!(
            parse("1024"),
            Ok(OpenFileCacheConfig {
                entries: 1024,
                valid: OpenFileCacheConfig::DEFAULT.valid
            })
        );
        let config = |entries, valid| OpenFileCacheConfig { entries, valid };
        assert_eq!(parse("64:0"), Ok(config(64, Duration::ZERO)));
        assert_eq!(parse("64:30s"), Ok(config(64, Duration::from_secs(30))));
        assert_eq!(parse("64:30"), Ok(config(64, Duration::from_secs(30))));
        assert_eq!(
            parse("64:250ms"),
            Ok(config(64, Duration::from_millis(250)))
        );
        assert!(parse("many").is_err());
        assert!(parse("64:soon").is_err());
        assert!(parse("64:-1").is_err());
    }
}
