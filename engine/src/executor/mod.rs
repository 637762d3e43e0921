//! Futures on the reactor's thread: [`Deferred`], the bridge from callbacks to futures.
//!
//! Tests: `tests.rs`.

mod deferred;

pub use self::deferred::{Canceled, Deferred, Resolver};

#[cfg(test)]
mod tests;
