//! WebSocket (RFC 6455) as a sans-IO machine, with permessage-deflate (RFC 7692).
//!
//! Owns: the connection machine [`WsConn`] (client or server role), its settings
//! ([`WsConfig`]), messages ([`Message`]), events ([`WsEvent`]), close codes
//! ([`CloseCode`]) and the peer errors that fail a connection ([`WsError`], mapped to close
//! codes in one place: [`WsError::close_code`]); the frame codec ([`frame`]), the opening
//! handshake ([`handshake`]) and permessage-deflate ([`deflate`]).
//! Contract: the kit's [`Machine`](crate::kit::Machine) contract. A machine starts in one
//! of three ways: [`WsConn::server`] after an HTTP server answered the upgrade (the HTTP
//! layer owns the handshake), [`WsConn::accept`] to answer the handshake itself, or
//! [`WsConn::client`] to send one. Memory is bounded by [`WsConfig::max_message`] (one
//! message being assembled, compressed or not), one read, and the output the application
//! queues while [`WsConn::can_send`] says to wait.
//! Does not: touch sockets, clocks or randomness of its own (the client's masking keys come
//! from a generator seeded by [`WsConfig::mask_seed`]).
//! Spec: RFC 6455, RFC 7692. Tests: `conn/tests.rs` (Pair and raw-byte tests, faulty
//! links), `protocols/tests/ws_conformance.rs` (cases by RFC section); fuzz targets
//! `fuzz/ws_frames` and `fuzz/ws_inflate`.

mod conn;
pub mod deflate;
pub mod frame;
pub mod handshake;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

pub use self::conn::{SendError, SharedFrame, WsConn, WsEvent, encode_shared};
pub use self::deflate::{DeflateConfig, DeflateParams, InflateError};
pub use self::frame::{FrameHead, HeadError, OpCode};
pub use self::handshake::{Accepted, HandshakeError, Negotiated, WsRequest};
use crate::http::proto::H1Limits;

/// Settings of a WebSocket connection, with safe defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WsConfig {
    /// Largest frame payload accepted (1009 past it). Default 16 MiB.
    pub max_frame: usize,
    /// Largest message accepted, after inflation (1009 past it). Default 16 MiB.
    pub max_message: usize,
    /// Subprotocols, in order of preference: a server picks the first the client offered.
    pub protocols: Vec<String>,
    /// permessage-deflate: offered (client) or accepted (server) when set. Default off.
    pub deflate: Option<DeflateConfig>,
    /// How long to wait for the peer's close frame (or, after the close handshake, for the
    /// end of the TCP stream) before dropping the connection. Default 5 s.
    pub close_timeout: Duration,
    /// How long the opening handshake may take ([`WsConn::client`], [`WsConn::accept`]).
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Send a ping after this long without input (keepalive); `None`: never. Default none.
    pub ping_interval: Option<Duration>,
    /// Fail the connection (1011) when a keepalive ping gets no pong within this. Default 20 s.
    pub ping_timeout: Duration,
    /// Output queued in the machine (not yet taken by the transport) before
    /// [`WsConn::can_send`] says to wait and reading pauses. Default 256 KiB.
    pub send_buffer: usize,
    /// Seed of the client's masking keys and handshake nonce: give it 32 bytes from a
    /// strong source for every connection (RFC 6455 §5.3, §10.3). The engine client does.
    pub mask_seed: [u8; 32],
    /// Limits of the handshake's HTTP head.
    pub limits: H1Limits,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_frame: 16 << 20,
            max_message: 16 << 20,
            protocols: Vec::new(),
            deflate: None,
            close_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            ping_interval: None,
            ping_timeout: Duration::from_secs(20),
            send_buffer: 256 * 1024,
            mask_seed: [0; 32],
            limits: H1Limits::default(),
        }
    }
}

/// A close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: going away (a server shutting down, a page navigated away).
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type this endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present (never sent).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed abnormally, without a close frame (never sent).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: data inconsistent with its type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY: Self = Self(1008);
    /// 1009: message too big.
    pub const TOO_BIG: Self = Self(1009);
    /// 1010: a client's required extension was not negotiated.
    pub const EXTENSION: Self = Self(1010);
    /// 1011: internal error (also: a keepalive ping went unanswered).
    pub const INTERNAL: Self = Self(1011);
    /// 1012: service restart.
    pub const RESTART: Self = Self(1012);
    /// 1013: try again later (a slow subscriber dropped, an overloaded server).
    pub const TRY_AGAIN_LATER: Self = Self(1013);

    /// Whether a close frame may carry this code (RFC 6455 §7.4.1-§7.4.2: 1000-1003,
    /// 1007-1014 as registered, 3000-4999; never 1004-1006 or 1015).
    #[must_use]
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A whole message.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum Message {
    /// A text message; its bytes are valid UTF-8 (checked on receipt, and by
    /// [`Message::text`]).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// A text message.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Self {
        Message::Text(Bytes::from(text.into()))
    }

    /// A binary message.
    #[must_use]
    pub fn binary(data: impl Into<Bytes>) -> Self {
        Message::Binary(data.into())
    }

    /// The payload.
    #[must_use]
    pub fn as_bytes(&self) -> &Bytes {
        match self {
            Message::Text(bytes) | Message::Binary(bytes) => bytes,
        }
    }

    /// The payload, taken.
    #[must_use]
    pub fn into_bytes(self) -> Bytes {
        match self {
            Message::Text(bytes) | Message::Binary(bytes) => bytes,
        }
    }

    /// The text of a text message (`None` for binary, or for a `Text` built from invalid
    /// UTF-8 by hand).
    #[must_use]
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(bytes) => std::str::from_utf8(bytes).ok(),
            Message::Binary(_) => None,
        }
    }

    /// Whether it is text.
    #[must_use]
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// Payload length.
    #[must_use]
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the payload is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}

/// Why a connection failed or ended abnormally.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// A frame head no frame may have (reserved opcode, fragmented or long control frame).
    #[error("{0}")]
    Head(#[from] HeadError),
    /// RFC 6455 §5.1: a client frame without a mask.
    #[error("unmasked frame from a client")]
    Unmasked,
    /// RFC 6455 §5.1: a server frame with a mask.
    #[error("masked frame from a server")]
    Masked,
    /// RFC 6455 §5.2: a reserved bit no extension negotiated.
    #[error("reserved bit set without an extension that defines it")]
    ReservedBits,
    /// RFC 6455 §5.4: a continuation frame without a message in progress.
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// RFC 6455 §5.4: a new data frame while a fragmented message is in progress.
    #[error("new message before the previous one ended")]
    ExpectedContinuation,
    /// RFC 6455 §5.5.1: a close payload of one byte.
    #[error("close frame with a one-byte payload")]
    BadClosePayload,
    /// RFC 6455 §7.4: a close code no endpoint may send.
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// RFC 6455 §8.1: a text message (or close reason) that is not UTF-8.
    #[error("invalid UTF-8 in a text message or close reason")]
    InvalidUtf8,
    /// A frame larger than [`WsConfig::max_frame`].
    #[error("frame of {len} bytes over the {limit}-byte limit")]
    FrameTooBig {
        /// Its length.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// A message larger than [`WsConfig::max_message`].
    #[error("message over the {limit}-byte limit")]
    MessageTooBig {
        /// The limit.
        limit: usize,
    },
    /// A compressed message that does not inflate.
    #[error("invalid compressed message")]
    Corrupt,
    /// The opening handshake failed.
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    /// A keepalive ping got no pong in time.
    #[error("keepalive ping timed out")]
    PingTimeout,
    /// The peer did not answer a close frame in time.
    #[error("close handshake timed out")]
    CloseTimeout,
    /// The stream ended without a close frame.
    #[error("connection closed without a close frame")]
    Eof,
    /// The transport failed.
    #[error("connection lost")]
    Lost,
}

impl WsError {
    /// The close code this error is answered with (RFC 6455 §7.4.1); [`CloseCode::ABNORMAL`]
    /// for errors that end the connection without a close frame.
    #[must_use]
    pub fn close_code(&self) -> CloseCode {
        match self {
            WsError::Head(_)
            | WsError::Unmasked
            | WsError::Masked
            | WsError::ReservedBits
            | WsError::UnexpectedContinuation
            | WsError::ExpectedContinuation
            | WsError::BadClosePayload
            | WsError::InvalidCloseCode(_) => CloseCode::PROTOCOL_ERROR,
            WsError::InvalidUtf8 | WsError::Corrupt => CloseCode::INVALID_PAYLOAD,
            WsError::FrameTooBig { .. } | WsError::MessageTooBig { .. } => CloseCode::TOO_BIG,
            WsError::PingTimeout => CloseCode::INTERNAL,
            WsError::Handshake(_) | WsError::CloseTimeout | WsError::Eof | WsError::Lost => {
                CloseCode::ABNORMAL
            }
        }
    }

    /// Whether a close frame is sent for it (the connection is still usable for one).
    #[must_use]
    pub fn sends_close(&self) -> bool {
        self.close_code() != CloseCode::ABNORMAL
    }
}

/// How a connection ended ([`WsEvent::Closed`]).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct CloseInfo {
    /// The peer's close code ([`CloseCode::NO_STATUS`] for a close frame without one), or
    /// the code this side failed the connection with, or [`CloseCode::ABNORMAL`].
    pub code: CloseCode,
    /// The peer's close reason (or the error's text when this side failed it).
    pub reason: String,
    /// Whether the close handshake completed (both close frames exchanged).
    pub clean: bool,
    /// What failed, when the connection was failed or lost.
    pub error: Option<WsError>,
}
