//! DNS: sans-IO codec, zone files and the authoritative answer ([`proto`]), and (feature
//! `engine`) the authoritative server on the engine over UDP and TCP.

pub mod proto;
#[cfg(feature = "engine")]
pub mod server;
