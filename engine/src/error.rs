//! Engine errors. Display texts are lowercase, without a trailing period, and unstable.

use std::io;

use ringwork_platform::{OpError, SetupError};

/// Why an engine operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The driver could not be created.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// A socket operation failed.
    #[error(transparent)]
    Op(#[from] OpError),
    /// The configuration is inconsistent.
    #[error("invalid engine configuration: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// Another OS operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A splice could not start ([`Context::splice_into`](crate::Context::splice_into)).
    #[error("cannot splice: {why}")]
    Splice {
        /// Why not.
        why: String,
    },
    /// A file range could not be queued ([`Context::send_file`](crate::Context::send_file)):
    /// send its bytes another way.
    #[error("cannot send the file: {why}")]
    SendFile {
        /// Why not.
        why: String,
    },
    /// TLS could not start.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// A core's thread panicked outside protocol callbacks (a bug in the engine or in a
    /// per-core init function).
    #[error("core {core} panicked: {message}")]
    CorePanicked {
        /// The core's index.
        core: usize,
        /// The panic message.
        message: String,
    },
}
