//! ringwork-protocols: sans-IO protocol state machines and their engine adapters.
//!
//! Each protocol is a folder holding a `proto` module (parsing and encoding over `&[u8]`,
//! no sockets, no clock, no threads) and, behind the default `engine` feature, thin adapters
//! that run it on the [`ringwork`](https://docs.rs/ringwork) engine.
//!
//! Status: empty until the protocol issues land; the crate layout and the sans-IO check
//! (`cargo check -p ringwork-protocols --no-default-features`) are in place.
#![forbid(unsafe_code)]
