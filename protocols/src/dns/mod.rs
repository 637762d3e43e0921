//! DNS: sans-IO codec, zone files and the authoritative answer ([`proto`]), the stub
//! resolver ([`resolver`]: a sans-IO machine and, with feature `engine`, the per-core
//! `Resolver`), and (feature `engine`) the authoritative server on the engine over UDP and
//! TCP.

pub mod proto;
pub mod resolver;
#[cfg(feature = "engine")]
pub mod server;
