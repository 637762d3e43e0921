//! [`ClientError`]: why a request through the HTTP/1.1 client failed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ringwork::tls::{TlsConfigError, TlsError};

use crate::http::proto::H1Error;
use crate::http::server::BodyError;

/// Why a request failed. The Display text is lowercase and unstable.
///
/// Kinds, as the style guide keeps them apart: the peer misbehaved
/// ([`ClientError::Protocol`], [`ClientError::BodyTooLarge`], [`ClientError::Closed`],
/// [`ClientError::ResponseTimeout`], [`ClientError::BodyTimeout`], [`ClientError::Tls`]),
/// the network failed ([`ClientError::Connect`], [`ClientError::ConnectTimeout`]), or the
/// caller passed something unusable ([`ClientError::BadUrl`],
/// [`ClientError::InvalidRequest`], [`ClientError::TlsConfig`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// Opening the connection failed (refused, unreachable, no socket).
    #[error("connect to {addr} failed: {source}")]
    Connect {
        /// The server's address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Connecting to a host name made no connection: it has no address, every address
    /// failed, or the connect timeout passed (the error names the host and each address
    /// tried).
    #[error("{0}")]
    ConnectHost(Box<ringwork::HostConnectError>),
    /// The connection was not established within the connect timeout.
    #[error("connect to {addr} timed out after {timeout:?}")]
    ConnectTimeout {
        /// The server's address.
        addr: SocketAddr,
        /// The timeout that passed.
        timeout: Duration,
    },
    /// TLS with the server failed: the handshake (certificate not trusted, expired or for
    /// another name; a client certificate the server wanted; no common version or suite),
    /// its timeout, or a TLS error after it. `error` names the failure, e.g.
    /// `tls handshake failed: invalid peer certificate: UnknownIssuer`.
    #[error("tls to {addr}: {error}")]
    Tls {
        /// The server's address.
        addr: SocketAddr,
        /// What TLS reported.
        #[source]
        error: TlsError,
    },
    /// An HTTP/1.1 request over TLS whose server picked `h2` by ALPN (the connector offered
    /// it): give HTTP/1.1 requests a connector that offers only `http/1.1`, or send them
    /// with [`HttpProtocol::Auto`](super::HttpProtocol::Auto).
    #[error("tls to {addr}: the server picked h2 for an HTTP/1.1 request")]
    Http1NotNegotiated {
        /// The server's address.
        addr: SocketAddr,
    },
    /// An HTTP/2 connection over TLS whose server did not pick `h2` by ALPN.
    #[error("tls to {addr}: the server did not negotiate h2")]
    Http2NotNegotiated {
        /// The server's address.
        addr: SocketAddr,
    },
    /// The server reset the request's HTTP/2 stream (RST_STREAM, or REFUSED_STREAM for a
    /// stream its GOAWAY left unprocessed), with this RFC 9113 error code.
    #[error("http/2 stream reset by the server (error code {code:#x})")]
    Http2Reset {
        /// The error code (RFC 9113 §7).
        code: u32,
    },
    /// No TLS connector to use: the default one (system roots) could not be built.
    #[error("tls setup: {0}")]
    TlsConfig(#[source] Arc<TlsConfigError>),
    /// The response head did not arrive within the response timeout.
    #[error("no response head within {timeout:?}")]
    ResponseTimeout {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The body stalled: no bytes for longer than the body timeout.
    #[error("response body stalled for {timeout:?}")]
    BodyTimeout {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// The connection ended (or was reset) before the response was complete.
    #[error("connection closed before the response was complete")]
    Closed,
    /// The server's response broke HTTP/1.1 framing or syntax.
    #[error("invalid response: {0}")]
    Protocol(#[source] H1Error),
    /// The response body is larger than `H1Limits::max_body`.
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// [`ClientRequest::from_url`](super::ClientRequest::from_url) could not use the URL.
    #[error("unusable URL: {reason}")]
    BadUrl {
        /// What is wrong.
        reason: &'static str,
    },
    /// The request cannot be written: a target or header field with bytes that would
    /// split the message (the caller's bug).
    #[error("invalid request: {0}")]
    InvalidRequest(#[source] H1Error),
    /// A streamed request body failed (its source broke off, was malformed, or did not
    /// match its declared length): the upstream connection was aborted.
    #[error("request body failed: {0}")]
    RequestBody(#[source] BodyError),
    /// A streamed request body did not match its declared Content-Length (the source's
    /// bug): the upstream connection was aborted.
    #[error("request body of {sent} bytes does not match its declared length {declared}")]
    RequestBodyLength {
        /// The declared length.
        declared: u64,
        /// Bytes the source yielded (at least), when the mismatch was seen.
        sent: u64,
    },
}

impl ClientError {
    /// The TLS failure, if TLS ended the exchange.
    #[must_use]
    pub fn tls_error(&self) -> Option<&TlsError> {
        match self {
            Self::Tls { error, .. } => Some(error),
            _ => None,
        }
    }
}
