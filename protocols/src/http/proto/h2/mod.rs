//! HTTP/2 (RFC 9113) as sans-IO parts: frames, HPACK, and the server and client connection
//! machines.
//!
//! Owns: the frame codec ([`frame`]), header compression ([`hpack`]), the server connection
//! machine ([`server::H2ServerConn`]) that the HTTP server runs for connections that
//! negotiated `h2` (ALPN) or opened with the HTTP/2 preface (h2c with prior knowledge),
//! and the client connection machine ([`client::H2ClientConn`]: requests multiplexed
//! within the server's stream limit; run by `http::client::h2::H2Connection`).
//! Does not: touch sockets or clocks (the glue in `http::server` and `http::client` drives
//! them).

pub mod client;
pub mod frame;
pub mod hpack;
pub mod script;
pub mod server;

pub use self::client::{ClientEvent, H2ClientConn, H2ClientError, RequestParts};
pub use self::server::{H2Config, H2ServerConn};
