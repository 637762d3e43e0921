//! The SFTP server's connection machine (sans-IO, kit style).
//!
//! Owns: [`SftpServer`]: packet framing over the input, the `INIT`/`VERSION` exchange, one
//! [`SftpEvent::Request`] per request for the application, [`SftpServer::reply`] to encode
//! each answer, and the bounds: a packet over [`SftpConfig::max_packet_len`] closes the
//! session (nothing is buffered past the limit), at most [`SftpConfig::max_pending`]
//! unanswered requests before reading pauses.
//! Contract: requests come out in input order; replies may be given in any order (each
//! carries its id, as the protocol allows). A malformed packet with a readable id gets
//! `SSH_FX_BAD_MESSAGE`; an unknown type gets `SSH_FX_OP_UNSUPPORTED`; a request before
//! `INIT`, a second `INIT`, or a packet without an id closes the session.
//! Does not: touch files (the application runs requests, e.g. with `fs::RootFs`), or keep
//! timers (an SFTP session ends with its channel).
//! Spec: draft-ietf-secsh-filexfer-02. Tests: `tests.rs`; fuzz target `fuzz/sftp_server`.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

use super::codec::{
    self, CodecError, Packet, Request, Response, StatusCode, decode_packet, encode_response,
};
use crate::kit::{Close, Machine};

/// The largest packet taken by default (length field excluded): 256 KiB, as OpenSSH's
/// `sftp-server` (`SFTP_MAX_MSG_LENGTH`).
pub const DEFAULT_MAX_PACKET_LEN: usize = 256 * 1024;

/// The most data one `READ` answers with, and the most one `WRITE` should carry: a packet
/// limit less room for the headers, as OpenSSH's `SFTP_MAX_READ_LENGTH`.
pub const DEFAULT_MAX_READ_LEN: usize = DEFAULT_MAX_PACKET_LEN - 1024;

/// The extensions this server offers in its `VERSION` (name, version), all implemented by
/// `fs::RootFs`.
pub const EXTENSIONS: &[(&str, &str)] = &[
    ("posix-rename@openssh.com", "1"),
    ("hardlink@openssh.com", "1"),
    ("fsync@openssh.com", "1"),
    ("limits@openssh.com", "1"),
    ("statvfs@openssh.com", "2"),
    ("copy-data", "1"),
    ("expand-path@openssh.com", "1"),
];

/// Bounds of an SFTP session.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SftpConfig {
    /// The longest packet taken (length field excluded); a longer length field closes the
    /// session. Default [`DEFAULT_MAX_PACKET_LEN`].
    pub max_packet_len: usize,
    /// Unanswered requests before reading pauses. Default 64 (OpenSSH's client keeps at
    /// most 64 reads or writes in flight).
    pub max_pending: usize,
}

impl Default for SftpConfig {
    fn default() -> Self {
        Self {
            max_packet_len: DEFAULT_MAX_PACKET_LEN,
            max_pending: 64,
        }
    }
}

/// What the SFTP machine tells its application.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum SftpEvent {
    /// Run `request` and answer with [`SftpServer::reply`]`(id, ..)`.
    Request {
        /// The request id.
        id: u32,
        /// The request.
        request: Request,
    },
    /// The session ends because of the peer's bytes (logged, not sent).
    ProtocolError(String),
}

/// The server side of one SFTP session.
///
/// Call order, as every kit machine: `handle_input` / `handle_eof`, then until empty
/// `poll_event` (answering each request with [`SftpServer::reply`], now or later),
/// `poll_transmit`, `poll_close`; then `wants_input`.
#[derive(Debug)]
pub struct SftpServer {
    config: SftpConfig,
    input: Vec<u8>,
    initialized: bool,
    events: VecDeque<SftpEvent>,
    pending: usize,
    out: Vec<u8>,
    close: Option<Close>,
    close_polled: bool,
}

impl SftpServer {
    /// A session waiting for the client's `SSH_FXP_INIT`.
    #[must_use]
    pub fn new(config: SftpConfig) -> Self {
        Self {
            config,
            input: Vec::new(),
            initialized: false,
            events: VecDeque::new(),
            pending: 0,
            out: Vec::new(),
            close: None,
            close_polled: false,
        }
    }

    /// Answers request `id`. Replies after the session closed are dropped.
    pub fn reply(&mut self, id: u32, response: &Response) {
        self.pending = self.pending.saturating_sub(1);
        if self.close_polled {
            return;
        }
        encode_response(id, response, &mut self.out);
        // Requests held back while too many were pending can go now.
        self.parse();
    }

    /// Unanswered requests.
    #[must_use]
    pub fn pending(&self) -> usize {
        self.pending
    }

    fn fail(&mut self, why: String) {
        if self.close.is_none() {
            self.events.push_back(SftpEvent::ProtocolError(why));
            self.close = Some(Close::Graceful);
        }
    }

    /// Decodes whole packets while there is room for more pending requests.
    fn parse(&mut self) {
        let mut at = 0;
        while self.close.is_none() && self.pending < self.config.max_pending {
            match decode_packet(&self.input[at..], self.config.max_packet_len) {
                Ok(None) => break,
                Ok(Some((packet, consumed))) => {
                    at += consumed;
                    self.take_packet(packet);
                }
                Err(CodecError::Malformed {
                    id: Some(id),
                    consumed,
                    what,
                    ..
                }) if self.initialized => {
                    at += consumed;
                    encode_response(
                        id,
                        &Response::status(StatusCode::BadMessage, what),
                        &mut self.out,
                    );
                }
                Err(error) => {
                    self.fail(error.to_string());
                    break;
                }
            }
        }
        if self.close.is_some() {
            // Nothing more is read: drop what is left (`at` may exceed it no longer).
            self.input.clear();
        } else {
            self.input.drain(..at);
        }
    }

    fn take_packet(&mut self, packet: Packet) {
        match packet {
            Packet::Init { version } if !self.initialized => {
                // The server answers with its own version; a client of a later version
                // falls back to 3, as OpenSSH's does.
                let _ = version;
                self.initialized = true;
                codec::encode_version(EXTENSIONS, &mut self.out);
            }
            Packet::Init { .. } => self.fail("a second SSH_FXP_INIT".into()),
            _ if !self.initialized => self.fail("a request before SSH_FXP_INIT".into()),
            Packet::Request { id, request } => {
                self.pending += 1;
                self.events.push_back(SftpEvent::Request { id, request });
            }
            Packet::Unsupported {
                id: Some(id),
                packet_type,
            } => encode_response(
                id,
                &Response::status(
                    StatusCode::OpUnsupported,
                    format!("unsupported packet type {packet_type}"),
                ),
                &mut self.out,
            ),
            Packet::Unsupported {
                id: None,
                packet_type,
            } => self.fail(format!("packet of type {packet_type} without an id")),
        }
    }
}

impl Machine for SftpServer {
    type Event = SftpEvent;

    fn handle_input(&mut self, data: &[u8], _now: Instant) {
        if self.close.is_some() {
            return;
        }
        // Input is always taken, but never more than one packet's worth past what is
        // parsed: a length field over the limit is refused before its body arrives.
        self.input.extend_from_slice(data);
        self.parse();
        // Past the pause, a driver reads at most once more: a few packets' worth.
        let bound = self.config.max_packet_len.saturating_mul(4) + 8;
        if self.input.len() > bound {
            self.fail("the peer sent far past the pending-request limit".into());
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        if self.close.is_none() {
            self.close = Some(Close::Graceful);
        }
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
        if self.out.is_empty() || self.close_polled {
            return None;
        }
        Some(Bytes::from(std::mem::take(&mut self.out)))
    }

    fn poll_event(&mut self) -> Option<SftpEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled || !self.out.is_empty() {
            return None;
        }
        let close = self.close?;
        self.close_polled = true;
        Some(close)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_input(&self) -> bool {
        self.close.is_none() && self.pending < self.config.max_pending
    }
}

#[cfg(test)]
mod tests;
