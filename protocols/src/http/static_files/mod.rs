//! Static-file serving helpers (filesystem, no sockets, no engine).
//!
//! Owns: mapping a request path to a file under a root ([`StaticRoot`], `path.rs`),
//! `Content-Type` by extension (`mime.rs`), `Range` evaluation (`range.rs`), validators and
//! conditional-request precedence (`conditional.rs`), HTML directory listings
//! (`listing.rs`), and which open files to keep between requests (`open_cache.rs`).
//! Contract: every function is a decision over its arguments plus, in `path.rs` and
//! `listing.rs`, filesystem metadata reads; the caller turns the decisions into a response.
//! Does not: send bytes, open sockets, read the clock, or know about the engine: the engine
//! adapter does the IO and caches the `Date` header (see [`crate::http::date`]).
//! Spec: RFC 9110 §8.8 (validators), §13 (conditional requests), §14 (ranges).

pub mod conditional;
pub mod listing;
pub mod mime;
pub mod open_cache;
pub mod path;
pub mod range;

#[cfg(test)]
mod test_support;

pub use self::conditional::{Precondition, Preconditions, etag_for, etag_from};
pub use self::listing::{DirEntryInfo, read_listing, render_listing};
pub use self::mime::content_type;
pub use self::open_cache::{CacheLookup, FileIdentity, OpenFileCache, OpenFileCacheConfig};
pub use self::path::{
    BadPathReason, PathError, Resolved, StaticRoot, fs_error, relative_path, resolve,
};
pub use self::range::{RangeOutcome, content_range, parse_range, unsatisfied_range};

/// `s` without leading and trailing optional whitespace (SP / HTAB, RFC 9110 §5.6.3).
fn trim_ows(s: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = s.iter().position(|b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end]
}
