//! The `Date` field value, formatted once per second per server.
//!
//! RFC 9110 §6.6.1: an origin server with a clock MUST send Date in 2xx, 3xx and 4xx
//! responses (and MAY in others); it is the time the response was generated, to the second.

use std::cell::Cell;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::http::date::format_http_date;

/// A per-core cache of the formatted current time.
pub(crate) struct DateCache {
    /// When the cached value stops being the current second.
    valid_until: Cell<Option<Instant>>,
    value: Cell<[u8; 29]>,
}

impl DateCache {
    pub(crate) fn new() -> Self {
        Self {
            valid_until: Cell::new(None),
            value: Cell::new([b' '; 29]),
        }
    }

    /// The time as an IMF-fixdate at `now` (the reactor's turn time, or the clock), formatted
    /// again only when the second changed.
    pub(crate) fn at(&self, now: Instant) -> [u8; 29] {
        if self.valid_until.get().is_none_or(|until| now >= until) {
            let wall = SystemTime::now();
            let into_second = wall
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let left = Duration::from_nanos(1_000_000_000 - u64::from(into_second));
            self.valid_until.set(Some(now + left));
            self.value.set(format_http_date(wall));
        }
        self.value.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::date::parse_http_date;

    #[test]
    fn is_the_current_second() {
        let cache = DateCache::new();
        let before = SystemTime::now() - Duration::from_secs(1);
        let value = cache.at(Instant::now());
        let after = SystemTime::now() + Duration::from_secs(1);
        let parsed = parse_http_date(&value).expect("an IMF-fixdate");
        assert!(
            before <= parsed && parsed <= after,
            "{:?}",
            String::from_utf8_lossy(&value)
        );
        let now = Instant::now();
        assert_eq!(cache.at(now), cache.at(now));
    }
}
