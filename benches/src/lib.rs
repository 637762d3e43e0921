//! ringwork-benches: benchmarks only; nothing depends on this crate.
//!
//! - `examples/driver_echo.rs`: the bare echo server on the platform driver alone (no engine),
//!   the ceiling later layers are measured against.
//! - criterion micro-benchmarks and the side-by-side peer comparison arrive with issue 7.
#![forbid(unsafe_code)]
