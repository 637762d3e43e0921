//! Error types of the platform layer.
//!
//! Display texts are lowercase without a trailing period and are not a stable interface.

use std::io;

use crate::id::{OpKind, SocketId};

/// An operation failed; carries what was attempted, on which socket, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("{op} on {}: {source}", .socket.map_or_else(|| "driver".to_string(), |s| s.to_string()))]
pub struct OpError {
    /// The operation that failed.
    pub op: OpKind,
    /// The socket it ran on, if any.
    pub socket: Option<SocketId>,
    /// The error the OS reported.
    #[source]
    pub source: io::Error,
}

impl OpError {
    pub(crate) fn new(op: OpKind, socket: Option<SocketId>, source: io::Error) -> Self {
        Self { op, socket, source }
    }

    /// Whether the OS ran out of a resource (descriptors, buffers, memory): EMFILE, ENFILE,
    /// ENOBUFS, ENOMEM (WSAEMFILE, WSAENOBUFS on Windows). Retrying at once fails again;
    /// back off instead.
    #[must_use]
    pub fn is_resource_exhaustion(&self) -> bool {
        if self.source.kind() == std::io::ErrorKind::OutOfMemory {
            return true;
        }
        let Some(code) = self.source.raw_os_error() else {
            return false;
        };
        #[cfg(unix)]
        let codes = [libc::EMFILE, libc::ENFILE, libc::ENOBUFS, libc::ENOMEM];
        #[cfg(windows)]
        let codes = [10024, 10055]; // WSAEMFILE, WSAENOBUFS
        #[cfg(not(any(unix, windows)))]
        let codes: [i32; 0] = [];
        codes.contains(&code)
    }

    /// The OS error kind, for matching (`ConnectionReset`, `ConnectionRefused`, ...).
    #[must_use]
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }
}

/// Why a driver could not be created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The io_uring backend was requested but cannot work here.
    #[error("io_uring backend unavailable: {reason}")]
    UringUnavailable {
        /// What was found (disabled by sysctl, blocked by seccomp, kernel too old, ...).
        reason: UringUnavailable,
    },
    /// `RINGWORK_BACKEND` holds a value other than `auto`, `uring` or `poll`.
    #[error("RINGWORK_BACKEND={value:?} is not one of auto, uring, poll")]
    BadBackendVariable {
        /// The value found in the environment.
        value: String,
    },
    /// The configuration is inconsistent.
    #[error("invalid driver configuration: {what}")]
    InvalidConfig {
        /// What is wrong.
        what: String,
    },
    /// A system call needed by the backend failed.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why io_uring cannot be used on this machine; the text of the fallback log line.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum UringUnavailable {
    /// The target is not Linux.
    #[error("not Linux")]
    NotLinux,
    /// `kernel.io_uring_disabled` is set.
    #[error("disabled by sysctl kernel.io_uring_disabled={value}")]
    DisabledBySysctl {
        /// The sysctl's value (1: only for a privileged group, 2: for everyone).
        value: u8,
    },
    /// `io_uring_setup` returned EPERM with the sysctl clear: a seccomp filter (as in
    /// Docker's default profile) or an LSM denies it.
    #[error(
        "io_uring_setup denied with EPERM (seccomp filter, e.g. Docker's default profile, or an LSM)"
    )]
    DeniedBySeccomp,
    /// `io_uring_setup` does not exist (ENOSYS): kernel older than 5.1 or built without it.
    #[error("io_uring_setup not implemented by this kernel (ENOSYS)")]
    NotImplemented,
    /// The kernel is older than the version that has the features the backend needs.
    #[error("kernel {found} is older than {needed} (needed for {feature})")]
    KernelTooOld {
        /// The running kernel's release string.
        found: String,
        /// The minimum version.
        needed: &'static str,
        /// The feature that needs it.
        feature: &'static str,
    },
    /// The opcode probe reports an opcode the backend needs as unsupported.
    #[error("kernel lacks io_uring opcode {opcode}")]
    MissingOpcode {
        /// The opcode's name.
        opcode: &'static str,
    },
    /// Setting up the ring or registering its buffers failed for another reason.
    #[error("{step} failed: {error}")]
    SetupFailed {
        /// The step (ring setup, buffer ring registration, ...).
        step: &'static str,
        /// The OS error text.
        error: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn resource_exhaustion_is_recognised() {
        let err = |code| OpError::new(OpKind::Accept, None, io::Error::from_raw_os_error(code));
        assert!(err(libc::EMFILE).is_resource_exhaustion());
        assert!(err(libc::ENFILE).is_resource_exhaustion());
        assert!(!err(libc::ECONNABORTED).is_resource_exhaustion());
    }
}
