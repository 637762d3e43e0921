//! ringwork: the runtime users embed.
//!
//! This crate will hold the per-core reactors, the Twisted-style `Protocol` / `Factory` /
//! `Transport` API, listeners, clients, timers and the TLS adapter (see `DESIGN.md`). It
//! performs no system calls itself: all I/O goes through [`ringwork_platform`], re-exported
//! here as [`platform`] so that users name one crate.
//!
//! Status: the platform drivers exist; the reactor API is being built (issue 3).
#![deny(unsafe_code)]

pub use ringwork_platform as platform;

// Used by the reactor, which is written in parallel.
#[allow(dead_code)]
pub(crate) mod timer;
