//! TCP proxying on the engine: the [`Relay`] that joins two connections and the
//! [`TcpProxy`] port forward built on it. Upstreams are [`Target`]s: addresses, or client
//! endpoints whose names are resolved at each connect through the core's name resolver
//! (`ringwork::names`) and raced with Happy Eyeballs. The engine's [`LookupPool`] (the
//! getaddrinfo thread pool) is re-exported for callers that still want it.
//!
//! Owns: `relay.rs` (backpressure, half-close, idle timeout, failover while connecting,
//! splicing bulk directions), `tcp.rs` (round-robin upstreams with health).
//! Contract: everything is per core (`Rc`, no locks); a pair's two connections live on
//! the same core. Memory per pair is bounded by the engine's write watermarks
//! ([`ringwork::ReactorConfig`]) plus [`RelayConfig::max_held`], or by the splice pipe.
//! Does not: parse what it relays; own threads. Engine only (feature `engine`).
//! Tests: `tests.rs` (relay over `ringwork::testing`), `tests/tcp_proxy.rs` (sockets, both
//! backends).

mod relay;
mod tcp;

pub use relay::{
    BULK_READ, Dial, Relay, RelayConfig, RelaySnapshot, RelayStats, RelayUpstream, SplicePolicy,
    Target,
};
pub use ringwork::resolve::{Lookup, LookupError, LookupPool};
pub use tcp::{TcpProxy, TcpProxyConfig, UpstreamHealth};

#[cfg(test)]
mod tests;
