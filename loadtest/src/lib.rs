//! ringwork-load: an HTTP/1.1, TCP, UDP and DNS load generator built on the ringwork engine.
//!
//! Layer: a user of the engine's public API (`Runtime`, `Protocol`, `DatagramProtocol`) and
//! of the sans-IO HTTP parser; nothing depends on it. A protocol joins by implementing
//! [`Session`] (sans-IO: write a request, recognise responses); the driver in `stream.rs`
//! owns sockets, the send schedule, pipelining, timeouts and histograms.
//! Latency at a constant rate is measured from each request's *intended* send time
//! (coordinated omission corrected, as wrk2). See `docs/loadtest.md`.
//! TLS (`https://`, `tcp --tls`) is the engine's connection layer, configured in `tls.rs`.
//! DNS (`dns.rs`) is a datagram session: queries from a list, answers counted by code.
//! Does not: HTTP/2; it never panics on peer bytes and holds at most
//! 1 MiB of an incomplete response per connection.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod cli;
pub mod dns;
pub mod http;
pub mod report;
pub mod run;
pub mod session;
mod stream;
pub mod tcp;
pub mod tls;
pub mod udp;
pub mod ws;
pub mod ws_fanout;

pub use crate::report::{ErrorKind, Errors, Latency, Report};
pub use crate::run::{RunError, RunOptions, run_stream, run_udp};
pub use crate::session::{Progress, ResponseError, Session};
