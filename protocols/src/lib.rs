//! ringwork-protocols: sans-IO protocol state machines and their engine adapters.
//!
//! Each protocol is a folder holding a `proto` module (parsing and encoding over `&[u8]`,
//! no sockets, no clock, no threads) and, behind the default `engine` feature, thin adapters
//! that run it on the [`ringwork`](https://docs.rs/ringwork) engine.
//!
//! Protocols:
//! - [`basic`]: stream framing (Twisted's `protocols.basic`): lines, netstrings and
//!   length-prefixed frames.
//!
//! This crate does not do network IO itself: the adapters hand bytes to the engine.
#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]

pub mod basic;
