//! TCP proxying on the engine: the [`Relay`] that joins two connections and the
//! [`TcpProxy`] port forward built on it; the engine's [`LookupPool`] (names resolved off
//! the reactor, used by the SOCKS5 server, [`crate::socks5`]) is re-exported here.
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
};
pub use ringwork::resolve::{Lookup, LookupError, LookupPool};
pub use tcp::{TcpProxy, TcpProxyConfig, UpstreamHealth};

#[cfg(test)]
mod tests;
