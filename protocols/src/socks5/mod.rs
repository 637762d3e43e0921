//! SOCKS5 (RFC 1928) with username/password authentication (RFC 1929): the sans-IO
//! handshake in [`proto`] and, behind the `engine` feature, the [`Socks5Server`] that
//! connects where the client asks and relays with [`crate::proxy::Relay`].
//!
//! Owns: [`proto`] (greeting, subnegotiation, request, reply encoding) and `server.rs`.
//! Contract: only CONNECT is served (BIND and UDP ASSOCIATE get REP 0x07); domain names are
//! resolved through the core's name resolver (`ringwork::names`, by default getaddrinfo
//! on the runtime's thread pool), never on the reactor; every
//! destination passes the [`DestinationPolicy`](crate::destination::DestinationPolicy) of
//! `Socks5Config::policy` (by default no loopback, private or other special address, in
//! any spelling: `2130706433`, `::ffff:127.0.0.1`, a name resolving to 127.0.0.1), else
//! REP 0x02.
//! Does not: GSSAPI (method 0x01), BIND, UDP ASSOCIATE.
//! Spec: RFC 1928, RFC 1929. Tests: `proto/tests.rs`; `tests/socks5.rs` (curl, both
//! backends).

pub mod proto;

#[cfg(feature = "engine")]
mod server;

pub use proto::{Auth, Event, Handshake, Reply, Socks5Error, Target, encode_reply};
#[cfg(feature = "engine")]
pub use server::{Socks5Config, Socks5Server};
