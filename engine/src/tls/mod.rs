//! TLS on any stream connection, with rustls: a layer of the connection, below the protocol.
//!
//! rustls is sans-IO, so TLS here is what Twisted's `TLSMemoryBIOProtocol` is: ciphertext
//! from the socket goes into rustls, and the protocol sees only plaintext — through the same
//! [`Protocol`](crate::Protocol) callbacks and [`Context`](crate::Context) as a plain
//! connection, so a protocol runs over TLS without a change. The layer lives in the
//! connection, not in a wrapper protocol, so *every* write reaches rustls — also writes made
//! through [`Context::other`](crate::Context::other) by a proxy's other side — and no
//! plaintext can leak past it.
//!
//! Owns: the configuration types ([`TlsAcceptor`], [`TlsConnector`] and their builders),
//! what a protocol learns ([`TlsInfo`]), why TLS ended a connection ([`TlsError`]), the
//! per-core ticketer (`ticketer.rs`), the verifier of a client that skips verification
//! (`danger.rs`) and the session glue (`session.rs`).
//!
//! Life of a TLS connection:
//! - from [`Reactor::listen_tls`](crate::Reactor::listen_tls) or
//!   [`Context::connect`](crate::Context::connect) with
//!   [`ConnectOptions::tls`](crate::ConnectOptions::tls): the handshake runs first and
//!   `connection_made` comes after it, so [`Context::tls`](crate::Context::tls) already
//!   tells the negotiated ALPN protocol, SNI name and peer certificates;
//! - by STARTTLS ([`Context::start_tls_server`](crate::Context::start_tls_server),
//!   [`Context::start_tls_client`](crate::Context::start_tls_client)): bytes written before
//!   the call go out in the clear, everything after it through TLS, and
//!   [`Protocol::handshake_completed`](crate::Protocol::handshake_completed) says when the
//!   upgrade is done;
//! - a handshake that fails (bad certificate, no common ALPN protocol, garbage instead of a
//!   ClientHello), stalls past its timeout, or is cut short ends the connection with
//!   [`LostReason::Tls`](crate::LostReason::Tls) — after rustls's alert is sent — without
//!   `connection_made`;
//! - [`Context::close`](crate::Context::close) and
//!   [`Context::shutdown_write`](crate::Context::shutdown_write) send `close_notify` after the
//!   last byte; the peer's `close_notify` becomes `eof_received`. A TCP end without
//!   `close_notify` is also `eof_received` (many peers do it), with
//!   [`TlsInfo::close_notify_received`] false so a protocol that must detect truncation can.
//!
//! Copies: received ciphertext is copied once into rustls's record buffer (records can span
//! reads), decrypted in place, and handed to `data_received` as a view of rustls's buffer —
//! no copy of the plaintext. Writes are collected during the turn (as on plain connections:
//! small ones in the connection's buffer, large [`Context::write_bytes`](crate::Context::write_bytes)
//! pieces as they are) and encrypted at the end of the turn, so the responses of one turn
//! share TLS records: rustls copies the plaintext once into each record, encrypts it in
//! place, and the records are copied once into the buffer handed to the driver (sized
//! up front). rustls's unbuffered API would not save that copy in rustls 0.23 (it encrypts
//! into its own record buffer too, then copies into the caller's): see `docs/tls.md`.
//! Records are sized by [`RecordSizing`] (small first records after idle, then 16 KiB).

mod config;
mod danger;
pub(crate) mod records;
pub(crate) mod session;
mod ticketer;

use std::fmt;

pub use rustls;
pub use rustls::HandshakeKind;
pub use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

pub use self::config::{
    ClientAuth, DEFAULT_HANDSHAKE_TIMEOUT, Roots, TlsAcceptor, TlsAcceptorBuilder, TlsConfigError,
    TlsConnector, TlsConnectorBuilder, crypto_provider, crypto_provider_name, load_certificates,
    load_private_key,
};
pub use self::records::RecordSizing;

/// A server name for [`ConnectOptions::tls`](crate::ConnectOptions::tls) and
/// [`Context::start_tls_client`](crate::Context::start_tls_client): a DNS name or an IP
/// address.
///
/// # Errors
/// The name is neither.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsConfigError> {
    ServerName::try_from(name.to_owned()).map_err(|_| TlsConfigError::ServerName {
        name: name.to_owned(),
    })
}

/// What a protocol learns about its connection's TLS session (from
/// [`Context::tls`](crate::Context::tls)), fixed when the handshake completes.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TlsInfo {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: &'static str,
    /// The cipher suite, as IANA names it (`TLS13_AES_128_GCM_SHA256`).
    pub cipher_suite: String,
    /// The protocol chosen by ALPN, if any.
    pub alpn: Option<Vec<u8>>,
    /// The server name: what the client asked for by SNI (server side), or the name this
    /// client verified (client side).
    pub server_name: Option<String>,
    /// Full handshake, full with a HelloRetryRequest, or resumed.
    pub handshake_kind: HandshakeKind,
    /// The peer's certificate chain (leaf first): the server's on a client, the client's on
    /// a server that asked for one (empty if it sent none).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// Whether the peer ended its side with `close_notify` (false until it does, and after
    /// a bare TCP end).
    pub close_notify_received: bool,
}

impl TlsInfo {
    /// Whether the session was resumed (no full handshake).
    #[must_use]
    pub fn resumed(&self) -> bool {
        self.handshake_kind == HandshakeKind::Resumed
    }
}

/// Why TLS ended a connection ([`LostReason::Tls`](crate::LostReason::Tls)), or why a
/// STARTTLS upgrade could not begin.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The handshake failed: the peer's alert, or this side's verdict (certificate not
    /// trusted, expired or for another name; required client certificate missing; no
    /// common protocol version, cipher suite or ALPN protocol; not TLS at all).
    #[error("tls handshake failed: {0}")]
    Handshake(rustls::Error),
    /// A TLS error after the handshake (a corrupt or forged record, an alert).
    #[error("tls error: {0}")]
    Protocol(rustls::Error),
    /// The handshake did not finish within the configured timeout.
    #[error("tls handshake timed out")]
    HandshakeTimeout,
    /// The peer closed the connection before the handshake finished.
    #[error("peer closed the connection during the tls handshake")]
    ClosedDuringHandshake,
    /// STARTTLS on a connection that already runs TLS.
    #[error("connection already uses tls")]
    AlreadyTls,
    /// STARTTLS on a connection that is not open (connecting, closing, half-closed or gone),
    /// has not started (its listener preamble is still being read), or is spliced, either
    /// way (see [`Context::splice_into`](crate::Context::splice_into)): spliced bytes
    /// bypass rustls.
    #[error("connection is not open")]
    NotOpen,
    /// rustls could not start a session (configuration problem).
    #[error("tls session setup: {0}")]
    Setup(rustls::Error),
}

impl TlsError {
    /// Whether the failure happened during the handshake (including timeouts and peers that
    /// left).
    #[must_use]
    pub fn is_handshake(&self) -> bool {
        matches!(
            self,
            TlsError::Handshake(_) | TlsError::HandshakeTimeout | TlsError::ClosedDuringHandshake
        )
    }
}

/// A short name for a TLS version.
fn version_name(version: Option<rustls::ProtocolVersion>) -> &'static str {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "unknown",
    }
}

impl fmt::Display for TlsInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.version, self.cipher_suite)?;
        if let Some(alpn) = &self.alpn {
            write!(f, " alpn={}", String::from_utf8_lossy(alpn))?;
        }
        if let Some(name) = &self.server_name {
            write!(f, " sni={name}")?;
        }
        write!(f, " {:?}", self.handshake_kind)
    }
}
