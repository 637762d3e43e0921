//! HTTP/1.1: sans-IO parsers and encoders ([`proto`]) and, with the `engine` feature, the
//! server and client that run them on the engine.

#[cfg(feature = "engine")]
pub mod client;
pub mod proto;
