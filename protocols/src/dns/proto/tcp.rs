//! DNS over TCP, server side, as a kit machine ([`TcpServerConn`]).
//!
//! Owns: the two-byte length framing (RFC 1035 §4.2.2), answering pipelined queries in
//! order (RFC 7766 §6.2.1.1: a server may answer out of order; this one answers each as it
//! is read, which is in order), the idle timeout, backpressure (no query is read while the
//! transport is full), and the close after the client's end of stream.
//! Contract: the [`Machine`] contract; no events (answers come from the [`Catalog`]). A
//! zero-length message, or one whose answer is refused entirely, closes the connection.
//! Spec: RFC 1035 §4.2.2, RFC 7766.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};

use super::authority::{Catalog, Transport};
use crate::kit::{Close, Machine, Output};

/// Settings of DNS-over-TCP connections.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TcpConfig {
    /// A connection with no query for this long is closed (RFC 7766 §6.2.3 suggests
    /// seconds, not minutes).
    pub idle_timeout: Duration,
}

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// One DNS-over-TCP server connection.
#[derive(Debug)]
pub struct TcpServerConn {
    catalog: Arc<Catalog>,
    config: TcpConfig,
    input: BytesMut,
    out: Output,
    scratch: Vec<u8>,
    idle_deadline: Option<Instant>,
    writable: bool,
    eof: bool,
    close: Option<Close>,
    close_polled: bool,
}

impl TcpServerConn {
    /// A connection answering from `catalog`.
    #[must_use]
    pub fn new(catalog: Arc<Catalog>, config: TcpConfig) -> Self {
        Self {
            catalog,
            config,
            input: BytesMut::new(),
            out: Output::new(),
            scratch: Vec::new(),
            idle_deadline: None,
            writable: true,
            eof: false,
            close: None,
            close_polled: false,
        }
    }

    /// Answers every complete query held, while the transport takes more.
    fn answer_held(&mut self, now: Instant) {
        while self.writable && self.close.is_none() && self.input.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([self.input[0], self.input[1]]));
            if len == 0 {
                self.close = Some(Close::Graceful);
                break;
            }
            if self.input.len() < 2 + len {
                break;
            }
            self.input.advance(2);
            let query = self.input.split_to(len);
            if self
                .catalog
                .answer_into(&query, Transport::Tcp, &mut self.scratch)
            {
                let len = u16::try_from(self.scratch.len()).unwrap_or(u16::MAX);
                self.out.write(&len.to_be_bytes());
                self.out.write(&self.scratch[..usize::from(len)]);
            } else {
                // Not a query at all (a response, or no header): nothing sane to say.
                self.close = Some(Close::Graceful);
            }
            self.idle_deadline = Some(now + self.config.idle_timeout);
        }
        if self.eof && self.close.is_none() && (self.input.len() < 2 || !self.complete_held()) {
            self.close = Some(Close::Graceful);
        }
    }

    fn complete_held(&self) -> bool {
        self.input.len() >= 2
            && self.input.len()
                >= 2 + usize::from(u16::from_be_bytes([self.input[0], self.input[1]]))
    }
}

impl Machine for TcpServerConn {
    type Event = ();

    fn handle_connected(&mut self, now: Instant) {
        self.idle_deadline = Some(now + self.config.idle_timeout);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.close.is_some() {
            return;
        }
        self.input.extend_from_slice(data);
        self.answer_held(now);
    }

    fn handle_eof(&mut self, now: Instant) {
        self.eof = true;
        self.answer_held(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.idle_deadline.is_some_and(|at| at <= now) {
            self.idle_deadline = None;
            self.close.get_or_insert(Close::Graceful);
        }
    }

    fn handle_writable(&mut self, writable: bool, now: Instant) {
        self.writable = writable;
        if writable {
            self.answer_held(now);
        }
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<()> {
        None
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
        if self.close.is_some() {
            None
        } else {
            self.idle_deadline
        }
    }

    fn wants_input(&self) -> bool {
        // One query and a bit held at most while the transport is full.
        self.close.is_none() && (self.writable || self.input.len() < 2 + 65_535)
    }
}
