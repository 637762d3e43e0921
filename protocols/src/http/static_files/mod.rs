//! Static-file serving helpers (filesystem, no sockets, no engine).
//!
//! Owns: mapping a request path to a file under a root ([`StaticRoot`], `path.rs`),
//! `Content-Type` by extension (`mime.rs`), `Range` evaluation (`range.rs`), validators and
//! conditional-request precedence (`conditional.rs`), and HTML directory listings
//! (`listing.rs`).
//! Contract: every function is a decision over its arguments plus, in `path.rs` and
//! `listing.rs`, filesystem metadata reads; the caller turns the decisions into a response.
//! Does not: send bytes, open sockets, read the clock, or know about the engine: the engine
//! adapter does the IO and caches the `Date` header (see [`crate::http::date`]).
//! Spec: RFC 9110 §8.8 (validators), §13 (conditional requests), §14 (ranges).

pub mod mime;
pub mod path;
pub mod range;

#[cfg(test)]
mod test_support;

pub use self::mime::content_type;
pub use self::path::{BadPathReason, PathError, Resolved, StaticRoot, resolve};
pub use self::range::{RangeOutcome, content_range, parse_range, unsatisfied_range};
