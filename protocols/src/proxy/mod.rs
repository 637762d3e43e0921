//! TCP proxying on the engine: the [`Relay`] that joins two connections, the [`TcpProxy`]
//! port forward built on it, and the [`LookupPool`] that resolves names off the reactor
//! (used by the SOCKS5 server, [`crate::socks5`]).
//!
//! Owns: `relay.rs` (backpressure, half-close, idle timeout, failover while connecting),
//! `tcp.rs` (round-robin upstreams with health), `resolve.rs` (a bounded pool of lookup
//! threads).
//! Contract: everything but the lookup pool is per core (`Rc`, no locks); a pair's two
//! connections live on the same core. Memory per pair is bounded by the engine's write
//! watermarks ([`ringwork::ReactorConfig`]) plus [`RelayConfig::max_held`].
//! Does not: splice or otherwise avoid the one copy per relayed byte (see
//! `docs/proxy.md`); parse what it relays. Engine only (feature `engine`).
//! Tests: `tests.rs` (relay over `ringwork::testing`), `tests/tcp_proxy.rs` (sockets, both
//! backends).

mod relay;
mod resolve;
mod tcp;

pub use relay::{BULK_READ, Dial, Relay, RelayConfig, RelaySnapshot, RelayStats, SplicePolicy};
pub use resolve::{Lookup, LookupError, LookupPool};
pub use tcp::{TcpProxy, TcpProxyConfig, UpstreamHealth};

#[cfg(test)]
mod tests;
