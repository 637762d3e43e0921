//! Helpers for tests that must run on every backend.
//!
//! [`test_all_backends!`](crate::test_all_backends) turns one test body into one `#[test]`
//! per backend. A backend that cannot run here (io_uring disabled, not Linux) makes its test
//! print `skipped: uring (<reason>)` to stderr; with `RINGWORK_REQUIRE_URING=1` in the
//! environment (as CI sets it) the skip is a failure instead, so a CI machine that lost
//! io_uring cannot pass silently.

use crate::config::{BackendChoice, DriverConfig};
use crate::driver::Driver;
use crate::error::SetupError;

/// Environment variable that turns a skipped io_uring test into a failure.
pub const REQUIRE_URING_ENV: &str = "RINGWORK_REQUIRE_URING";

/// A driver on `backend` with `config`, or `None` (after saying so on stderr) when that
/// backend cannot run on this machine.
///
/// # Panics
/// When the driver cannot be created for any other reason, or when io_uring is unavailable
/// and [`REQUIRE_URING_ENV`] is set: both are test failures.
#[must_use]
pub fn driver(backend: BackendChoice, config: DriverConfig) -> Option<Driver> {
    match Driver::with_config(DriverConfig { backend, ..config }) {
        Ok(driver) => Some(driver),
        Err(SetupError::UringUnavailable { reason }) => {
            let require = std::env::var_os(REQUIRE_URING_ENV).is_some_and(|v| v != "0");
            assert!(
                !require,
                "io_uring required by {REQUIRE_URING_ENV} but unavailable: {reason}"
            );
            eprintln!("skipped: uring ({reason})");
            None
        }
        Err(error) => panic!("cannot create a {backend:?} driver: {error}"),
    }
}

/// Expands each `fn name(backend: BackendChoice) { body }` into a module `name` holding one
/// `#[test]` per backend (`name::uring`, `name::poll`), each calling the body with its
/// backend. Inside the body, get a driver with [`testing::driver`](crate::testing::driver)
/// and return early when it gives `None` (skipped).
///
/// ```ignore
/// ringwork_platform::test_all_backends! {
///     fn echo_works(backend: BackendChoice) {
///         let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
///         // ...
///     }
/// }
/// ```
#[macro_export]
macro_rules! test_all_backends {
    ($(
        $(#[$meta:meta])*
        fn $name:ident($backend:ident : $ty:ty) $body:block
    )*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($backend: $ty) $body

            #[test]
            fn uring() {
                body($crate::BackendChoice::Uring)
            }

            #[test]
            fn poll() {
                body($crate::BackendChoice::Poll)
            }
        }
    )*};
}
