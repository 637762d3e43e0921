//! Helpers for tests that must run on every backend.
//!
//! [`test_all_backends!`](crate::test_all_backends) turns one test body into one `#[test]`
//! per backend. A backend that cannot run here (io_uring disabled, not Linux) makes its test
//! print `skipped: uring (<reason>)` to stderr; with `RINGWORK_REQUIRE_URING=1` in the
//! environment (as CI sets it) the skip is a failure instead, so a CI machine that lost
//! io_uring cannot pass silently.

use std::io;

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

/// Driver configurations with the optional io_uring data paths (zero-copy sends, fixed
/// files, receive bundles) all on, at thresholds low enough that tests reach them, and all
/// off; the poll backend ignores them. Data-path tests run each, so every feature and its
/// fallback pass the same test.
#[must_use]
pub fn data_path_configs() -> [(&'static str, DriverConfig); 2] {
    // A small fixed file table, so that tests with many sockets also meet a full one.
    let on = DriverConfig {
        send_zc_min: Some(4096),
        fixed_files: 16,
        recv_bundle: true,
        ..DriverConfig::default()
    };
    let off = DriverConfig {
        send_zc_min: None,
        fixed_files: 0,
        recv_bundle: false,
        ..DriverConfig::default()
    };
    [("data paths on", on), ("data paths off", off)]
}

/// Runs a blocking std socket or pipe operation (`read`, `write`, `recv_from`, ...) again
/// while a signal interrupts it (`ErrorKind::Interrupted`, EINTR): what tests that read or
/// write blocking sockets must use instead of a bare call. std's `read_exact`,
/// `read_to_end` and `write_all` retry by themselves; a single `read` or `write` does not,
/// and a socket with a timeout (`set_read_timeout`) is never restarted by the kernel even
/// for a signal handler installed with `SA_RESTART`.
///
/// # Errors
/// The operation's error, unless it is `Interrupted`.
///
/// # Examples
/// ```
/// use std::io::Read;
/// use ringwork_platform::testing::retry_interrupted;
///
/// let mut input: &[u8] = b"hello";
/// let mut buf = [0; 8];
/// let n = retry_interrupted(|| input.read(&mut buf)).unwrap();
/// assert_eq!(&buf[..n], b"hello");
/// ```
pub fn retry_interrupted<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Makes the TCP connection of `stream` vanish: its socket is closed without a FIN or a
/// reset (TCP_REPAIR mode first, Linux), as a peer that crashed or was unplugged. The other
/// end learns of it only by sending: a keepalive probe or data then meets a reset.
///
/// # Errors
/// `PermissionDenied` without CAP_NET_ADMIN; `Unsupported` off Linux.
pub fn vanish(stream: std::net::TcpStream) -> io::Result<()> {
    crate::sys::sockopt::close_silently(stream)
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

#[cfg(test)]
mod tests {
    use std::io::{self, Read};

    use super::retry_interrupted;

    /// Interrupted twice, then reads `data`.
    struct Flaky {
        interruptions: usize,
        data: &'static [u8],
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.interruptions > 0 {
                self.interruptions -= 1;
                return Err(io::ErrorKind::Interrupted.into());
            }
            self.data.read(buf)
        }
    }

    #[test]
    fn an_interrupted_read_is_retried_and_other_errors_are_not() {
        let mut flaky = Flaky {
            interruptions: 2,
            data: b"abc",
        };
        let mut buf = [0; 8];
        assert_eq!(retry_interrupted(|| flaky.read(&mut buf)).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        let mut calls = 0;
        let error = retry_interrupted(|| -> io::Result<()> {
            calls += 1;
            Err(io::ErrorKind::TimedOut.into())
        });
        assert_eq!(error.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert_eq!(calls, 1);
    }
}
