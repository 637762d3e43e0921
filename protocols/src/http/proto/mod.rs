//! HTTP/1.1 as sans-IO state machines: request and response heads, bodies, encoding.
//!
//! Owns: everything about HTTP/1.1 bytes — parsing heads ([`parse_request`],
//! [`parse_response`]), framing bodies ([`BodyDecoder`]), writing heads and chunks
//! (`encode`), and mapping every peer error to its status ([`H1Error::status`]).
//! Does not: touch sockets, clocks or threads. The server and client adapters (feature
//! `engine`) drive these on connections; tests and fuzz targets drive them on byte slices.
//!
//! Request smuggling defences (each quotes the RFC 9112 rule it enforces, in `scan.rs`
//! and `request.rs`): Content-Length with Transfer-Encoding, differing or malformed
//! Content-Length, a Transfer-Encoding that does not end in a single `chunked`, bare CR,
//! bare LF or NUL in a head, obs-fold, whitespace before a colon, malformed chunk sizes
//! and extensions. Each is a 400 (or 501 for an unknown coding) and a close.

pub mod body;
pub mod client;
pub mod encode;
pub mod error;
pub mod h2;
pub mod head;
pub mod request;
pub mod response;
pub(crate) mod scan;
pub mod server;

pub use self::body::{BodyDecoder, Decoded};
pub use self::error::H1Error;
pub use self::head::{
    BodyKind, H1Limits, Headers, Method, RequestHead, ResponseHead, Status, Version, reason_phrase,
};
pub use self::request::{ParsedRequest, parse_request, parse_request_with};
pub use self::response::{ParsedResponse, ResponseFraming, parse_response, parse_response_framing};
