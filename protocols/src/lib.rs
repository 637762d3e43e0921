//! ringwork-protocols: sans-IO protocol state machines and their engine adapters. The
//! `ringwork` command-line program built on them is its own crate, `ringwork-cli`
//! (`protocols/cli/`), so that this one pulls no command-line parser or log subscriber.
//!
//! Each protocol is a folder holding a `proto` module (parsing and encoding over `&[u8]`,
//! no sockets, no clock, no threads) and, behind the default `engine` feature, thin adapters
//! that run it on the [`ringwork`](https://docs.rs/ringwork) engine.
//!
//! - [`endpoint`]: Twisted-style endpoint strings (`tcp:8080:interface=127.0.0.1`,
//!   `unix:/path`, `udp:9000`), sans-IO.
//! - [`basic`]: stream framing (Twisted's `protocols.basic`): lines, netstrings and
//!   length-prefixed frames as sans-IO decoders, with engine adapters; and (feature `engine`)
//!   the echo and discard services over TCP, Unix sockets and UDP.
//! - [`http`]: HTTP/1.1 — sans-IO parsers and encoders with request-smuggling defences,
//!   and (feature `engine`) the server, ready-made handlers (hello, static files) and the
//!   client.
//! - [`cred`]: credentials (Twisted's cred): the `Checker` interface, the Argon2id
//!   password file, SASL PLAIN decoding and the per-peer failed-attempt delay.
//! - [`mail`]: mail (issue 21): the SMTP server machine and Maildir delivery.
//! - [`socks5`]: SOCKS5 (RFC 1928, RFC 1929) — the sans-IO handshake and (feature `engine`)
//!   the server.
//! - `proxy` (feature `engine`): the relay between two connections (backpressure,
//!   half-close, idle timeout), the TCP port forward `TcpProxy` and the name-lookup pool.
//! - [`destination`]: which destinations a proxy may reach on a client's behalf (allow and
//!   deny rules; loopback, private and other special addresses denied by default), with
//!   the canonical forms of client-supplied hosts, sans-IO.
//! - [`dns`]: DNS — the sans-IO codec, zone files, the authoritative answer and the stub
//!   resolver's machine; and (feature `engine`) the authoritative server and the per-core
//!   resolver (`dns::resolver::Resolver`).
//! - [`irc`]: IRC — the sans-IO codec (tags, CTCP), the server's connection machine and
//!   per-core network shard, the client machine; and (feature `engine`) the server with
//!   channels across cores and the client library with reconnection (docs/irc.md).
//! - [`proxy_protocol`]: the HAProxy PROXY protocol (v1 text, v2 binary with TLVs), sans-IO
//!   parser and encoders for headers sent by load balancers.
//!
//! Features: `engine` (default) for the adapters; `toml-config` for
//! `ProxyConfig::load`/`from_toml` (serde, toml); `self-signed` for the self-signed
//! certificate of a `tls:` endpoint without one (rcgen). The last two are off by default.
//!
//! This crate does not open sockets itself: the engine does, for the adapters.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod basic;
pub mod cred;
pub mod destination;
pub mod dns;
pub mod endpoint;
pub mod http;
pub mod irc;
pub mod kit;
pub mod limits;
pub mod mail;
#[cfg(feature = "engine")]
pub mod proxy;
pub mod proxy_protocol;
pub mod socks5;
pub mod ssh;
pub mod websocket;

pub use crate::endpoint::{Endpoint, EndpointError};
