//! Validators and conditional-request evaluation for static files.
//!
//! Owns: [`etag_for`] (a strong ETag from file metadata), [`Preconditions`] (the raw
//! conditional header values) with [`Preconditions::evaluate`] (RFC 9110 §13.2.2 order) and
//! [`Preconditions::if_range_allows`] (§13.1.5).
//! Contract: header values arrive raw (as received, OWS-trimmed or not); dates compare at
//! one-second granularity, since HTTP-dates have no finer one; an unparseable date is
//! ignored, as §13.1.3/§13.1.4 require; an unparseable entity-tag list matches nothing past
//! the first malformed member.
//! Does not: read the clock or the file, or set response headers.
//! Spec: RFC 9110 §8.8.3 (ETag comparison), §13.1 (preconditions), §13.2.2 (precedence).
//! Tests: `conditional/tests.rs`.

use std::fs::Metadata;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http::date::parse_http_date;
use crate::http::static_files::trim_ows;

/// A strong ETag for a file: `"<mtime secs hex>-<mtime nanos hex>-<len hex>"`, quoted.
///
/// The tag changes whenever the modification time or the length does; a file rewritten
/// within the filesystem's timestamp granularity with the same length keeps its tag (as with
/// nginx's and Apache's defaults). A modification time that cannot be read, or lies before
/// 1970, counts as the epoch.
#[must_use]
pub fn etag_for(metadata: &Metadata) -> String {
    etag_from(metadata.len(), metadata.modified().ok())
}

/// [`etag_for`] from a file's length and modification time (`None`: unreadable), for
/// metadata that did not come as a [`Metadata`] (`statx` through io_uring).
#[must_use]
pub fn etag_from(len: u64, modified: Option<std::time::SystemTime>) -> String {
    let mtime = modified
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    format!(
        "\"{:x}-{:x}-{:x}\"",
        mtime.as_secs(),
        mtime.subsec_nanos(),
        len
    )
}

/// The outcome of evaluating the preconditions of a request.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum Precondition {
    /// Go on with the request (a `Range` header may still apply, see
    /// [`Preconditions::if_range_allows`]).
    Proceed,
    /// Answer `304 Not Modified` (GET and HEAD only).
    NotModified,
    /// Answer `412 Precondition Failed`.
    Failed,
}

/// The conditional header fields of a request, as raw values; `None` when absent.
///
/// A field sent on several lines should be passed joined with `,` (RFC 9110 §5.3), which
/// suits the entity-tag lists; a repeated date field is invalid and so ignored.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Preconditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a [u8]>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a [u8]>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a [u8]>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a [u8]>,
    /// `If-Range`.
    pub if_range: Option<&'a [u8]>,
}

impl Preconditions<'_> {
    /// Evaluates the preconditions against the selected representation's `etag` (as made by
    /// [`etag_for`]) and `last_modified`, in the order of RFC 9110 §13.2.2:
    ///
    /// 1. `If-Match` present: unless a listed tag strongly matches `etag` (or it is `*`),
    ///    [`Precondition::Failed`].
    /// 2. Else `If-Unmodified-Since` present and a valid date: if `last_modified` is later,
    ///    [`Precondition::Failed`].
    /// 3. `If-None-Match` present: if a listed tag weakly matches `etag` (or it is `*`),
    ///    [`Precondition::NotModified`] for GET/HEAD, else [`Precondition::Failed`].
    /// 4. Else, for GET/HEAD, `If-Modified-Since` present and a valid date: if
    ///    `last_modified` is not later, [`Precondition::NotModified`].
    /// 5. Otherwise [`Precondition::Proceed`] (step 5, `If-Range`, is
    ///    [`Preconditions::if_range_allows`]).
    ///
    /// The representation is taken to exist (a static file that was found), so `*` always
    /// matches.
    #[must_use]
    pub fn evaluate(
        &self,
        method_is_get_or_head: bool,
        etag: &str,
        last_modified: SystemTime,
    ) -> Precondition {
        let modified = unix_secs(last_modified);
        // Step 1 / 2.
        if let Some(list) = self.if_match {
            if !list_matches(list, etag.as_bytes(), Compare::Strong) {
                return Precondition::Failed;
            }
        } else if let Some(since) = self
            .if_unmodified_since
            .map(trim_ows)
            .and_then(parse_http_date)
            && modified > unix_secs(since)
        {
            return Precondition::Failed;
        }
        // Step 3 / 4.
        if let Some(list) = self.if_none_match {
            if list_matches(list, etag.as_bytes(), Compare::Weak) {
                return if method_is_get_or_head {
                    Precondition::NotModified
                } else {
                    Precondition::Failed
                };
            }
        } else if method_is_get_or_head
            && let Some(since) = self
                .if_modified_since
                .map(trim_ows)
                .and_then(parse_http_date)
            && modified <= unix_secs(since)
        {
            return Precondition::NotModified;
        }
        Precondition::Proceed
    }

    /// Whether a `Range` header may be honoured, per `If-Range` (RFC 9110 §13.1.5).
    ///
    /// True when `If-Range` is absent; when it is an entity-tag that strongly matches
    /// `etag`; or when it is an HTTP-date exactly equal to `last_modified` (to the second).
    /// Weak tags, other tags, other dates and malformed values give false: send the whole
    /// representation.
    #[must_use]
    pub fn if_range_allows(&self, etag: &str, last_modified: SystemTime) -> bool {
        let Some(value) = self.if_range else {
            return true;
        };
        let value = trim_ows(value);
        if value.starts_with(b"\"") || value.starts_with(b"W/") {
            // Exactly one entity-tag, nothing after it.
            return match parse_etag(value) {
                Some((tag, [])) => parse_etag(etag.as_bytes())
                    .is_some_and(|(ours, _)| Compare::Strong.matches(tag, ours)),
                _ => false,
            };
        }
        parse_http_date(value).is_some_and(|d| unix_secs(d) == unix_secs(last_modified))
    }
}

/// Whole seconds since the epoch, negative before it (HTTP-date granularity).
fn unix_secs(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::from(d.as_secs()),
        // Round towards minus infinity: 0.5 s before the epoch is second -1.
        Err(e) => {
            let d = e.duration();
            -i128::from(d.as_secs()) - i128::from(d.subsec_nanos() > 0)
        }
    }
}

/// RFC 9110 §8.8.3.2 comparison functions.
#[derive(Clone, Copy, Debug)]
enum Compare {
    /// Both tags strong and their opaque parts equal.
    Strong,
    /// Opaque parts equal, weakness ignored.
    Weak,
}

impl Compare {
    fn matches(self, a: EntityTag<'_>, b: EntityTag<'_>) -> bool {
        let strength_ok = match self {
            Compare::Strong => !a.weak && !b.weak,
            Compare::Weak => true,
        };
        strength_ok && a.opaque == b.opaque
    }
}

/// A parsed `entity-tag`: `[W/] DQUOTE *etagc DQUOTE`.
#[derive(Clone, Copy, Debug)]
struct EntityTag<'a> {
    weak: bool,
    /// Between the quotes.
    opaque: &'a [u8],
}

/// Parses one entity-tag at the start of `s`; returns it and the rest of `s`.
fn parse_etag(s: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, s) = match s.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let s = s.strip_prefix(b"\"")?;
    let end = s.iter().position(|&b| b == b'"')?;
    let opaque = &s[..end];
    // etagc = %x21 / %x23-7E / obs-text
    if !opaque
        .iter()
        .all(|&b| b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80)
    {
        return None;
    }
    Some((EntityTag { weak, opaque }, &s[end + 1..]))
}

/// Whether an `If-Match` / `If-None-Match` value (`*` or `#entity-tag`) matches `ours`.
fn list_matches(list: &[u8], ours: &[u8], compare: Compare) -> bool {
    let list = trim_ows(list);
    if list == b"*" {
        return true;
    }
    let Some((ours, _)) = parse_etag(ours) else {
        return false;
    };
    let mut rest = list;
    loop {
        // Skip OWS and empty list elements (RFC 9110 §5.6.1.2).
        rest = skip(rest, |b| b == b',' || b == b' ' || b == b'\t');
        if rest.is_empty() {
            return false;
        }
        let Some((tag, after)) = parse_etag(rest) else {
            return false;
        };
        if compare.matches(tag, ours) {
            return true;
        }
        // The next member must follow a comma.
        let after = skip(after, |b| b == b' ' || b == b'\t');
        if !after.is_empty() && !after.starts_with(b",") {
            return false;
        }
        rest = after;
    }
}

fn skip(s: &[u8], pred: impl Fn(u8) -> bool) -> &[u8] {
    let n = s.iter().take_while(|&&b| pred(b)).count();
    &s[n..]
}

#[cfg(test)]
mod tests;
