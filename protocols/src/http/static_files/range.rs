//! `Range: bytes=...` evaluation for a representation of known length.
//!
//! Owns: [`parse_range`] and the `Content-Range` values [`content_range`] and
//! [`unsatisfied_range`].
//! Contract: only the `bytes` unit is understood. A header that does not parse is ignored
//! (the whole representation is served), as RFC 9110 §14.2 allows. Several ranges are served
//! only when their satisfiable members coalesce into one contiguous range: this module never
//! asks for `multipart/byteranges`, since a server MAY ignore a Range header field (§14.2).
//! At most [`MAX_RANGES`] ranges are looked at; a longer list is ignored, so a hostile header
//! costs at most one linear scan.
//! Does not: decide whether Range applies (only to GET, and only if `If-Range` allows, see
//! `conditional.rs`), or read the file.
//! Spec: RFC 9110 §14.1–§14.4. Tests: `range/tests.rs`.

use crate::http::static_files::trim_ows;

/// The most ranges [`parse_range`] considers; a header with more is ignored.
pub const MAX_RANGES: usize = 100;

/// What to send in answer to a `Range` header.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum RangeOutcome {
    /// Ignore the header: send `200` with the whole representation.
    Full,
    /// Send `206` with bytes `start..=end_inclusive` and
    /// [`content_range`]`(start, end_inclusive, len)`.
    Partial {
        /// First byte offset.
        start: u64,
        /// Last byte offset, inclusive; `< len`.
        end_inclusive: u64,
    },
    /// Send `416` with `Content-Range: ` [`unsatisfied_range`]`(len)`.
    Unsatisfiable,
}

/// Evaluates a `Range` header value against a representation of `len` bytes.
///
/// Accepts `bytes=` (unit case-insensitive) followed by a comma-separated list of
/// `first-last`, `first-` and `-suffix` specs, with optional whitespace around the commas.
/// `last` past the end is clamped. Ranges that start at or past `len`, and `-0`, are
/// unsatisfiable and dropped; if none is left the answer is
/// [`RangeOutcome::Unsatisfiable`] (so any byte range of an empty representation is). The
/// remaining ranges are served only if they merge into one contiguous range, else
/// [`RangeOutcome::Full`]. Malformed input, another unit, `last < first`, or more than
/// [`MAX_RANGES`] ranges also give [`RangeOutcome::Full`].
///
/// # Examples
/// ```
/// use ringwork_protocols::http::static_files::{parse_range, RangeOutcome};
///
/// assert_eq!(
///     parse_range(b"bytes=0-99", 1000),
///     RangeOutcome::Partial { start: 0, end_inclusive: 99 }
/// );
/// assert_eq!(
///     parse_range(b"bytes=-100", 1000),
///     RangeOutcome::Partial { start: 900, end_inclusive: 999 }
/// );
/// assert_eq!(parse_range(b"bytes=1000-", 1000), RangeOutcome::Unsatisfiable);
/// assert_eq!(parse_range(b"lines=1-2", 1000), RangeOutcome::Full);
/// ```
#[must_use]
pub fn parse_range(header: &[u8], len: u64) -> RangeOutcome {
    match satisfiable_ranges(header, len) {
        None => RangeOutcome::Full,
        Some(mut ranges) => {
            ranges.sort_unstable();
            let mut iter = ranges.into_iter();
            let Some((start, mut end)) = iter.next() else {
                return RangeOutcome::Unsatisfiable;
            };
            for (s, e) in iter {
                // Overlapping or adjacent ranges merge; a gap means two parts.
                if s > end.saturating_add(1) {
                    return RangeOutcome::Full;
                }
                end = end.max(e);
            }
            RangeOutcome::Partial {
                start,
                end_inclusive: end,
            }
        }
    }
}

/// The satisfiable ranges as inclusive `(start, end)` pairs within `0..len`, or `None` when
/// the header is to be ignored.
fn satisfiable_ranges(header: &[u8], len: u64) -> Option<Vec<(u64, u64)>> {
    let eq = header.iter().position(|&b| b == b'=')?;
    let (unit, set) = (&header[..eq], &header[eq + 1..]);
    if !unit.eq_ignore_ascii_case(b"bytes") {
        return None;
    }
    let mut out = Vec::new();
    let mut specs = 0;
    // RFC 9110 §5.6.1.2: recipients accept empty list elements and OWS around commas.
    for spec in set.split(|&b| b == b',').map(trim_ows) {
        if spec.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return None;
        }
        if let Some(range) = parse_spec(spec, len)? {
            out.push(range);
        }
    }
    // `range-set = 1#range-spec`: at least one.
    (specs > 0).then_some(out)
}

/// One range-spec: `Some(Some(range))` if satisfiable, `Some(None)` if valid but not
/// satisfiable, `None` if malformed.
fn parse_spec(spec: &[u8], len: u64) -> Option<Option<(u64, u64)>> {
    let dash = spec.iter().position(|&b| b == b'-')?;
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    if first.is_empty() {
        // suffix-range = "-" suffix-length
        let suffix = number(last)?;
        if suffix == 0 || len == 0 {
            return Some(None);
        }
        return Some(Some((len - suffix.min(len), len - 1)));
    }
    let first = number(first)?;
    let last = if last.is_empty() {
        None
    } else {
        Some(number(last)?)
    };
    // RFC 9110 §14.1.1: an int-range with last < first is invalid.
    if last.is_some_and(|l| l < first) {
        return None;
    }
    if first >= len {
        return Some(None);
    }
    let end = last.map_or(len - 1, |l| l.min(len - 1));
    Some(Some((first, end)))
}

/// `1*DIGIT`; values past `u64::MAX` saturate (they are past any real length).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u64, |n, &b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// The `Content-Range` value of a `206` answer: `bytes 0-99/1000`.
#[must_use]
pub fn content_range(start: u64, end_inclusive: u64, len: u64) -> String {
    format!("bytes {start}-{end_inclusive}/{len}")
}

/// The `Content-Range` value of a `416` answer: `bytes */1000`.
#[must_use]
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

#[cfg(test)]
mod tests;
