//! DNS over TCP as kit machines: the server side ([`TcpServerConn`]) and one client
//! exchange of the resolver ([`TcpClientConn`]).
//!
//! Owns (server): the two-byte length framing (RFC 1035 §4.2.2), answering pipelined queries in
//! order (RFC 7766 §6.2.1.1: a server may answer out of order; this one answers each as it
//! is read, which is in order), the idle timeout, backpressure (no query is read while the
//! transport is full), and the close after the client's end of stream.
//! Contract: the [`Machine`] contract; no events (answers come from the [`Catalog`]). A
//! zero-length message, or one whose answer is refused entirely, closes the connection.
//! Owns (client): sending one framed query once connected, reading one framed reply
//! (never more than 2 + 65,535 bytes held), then closing; no timer of its own.
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

/// What a [`TcpClientConn`] reports.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum TcpClientEvent {
    /// The reply (its length prefix taken off).
    Reply(Bytes),
    /// The connection ended before a whole reply.
    Failed(&'static str),
}

/// One DNS-over-TCP exchange, client side, as a kit machine: the query is sent with its
/// length prefix once connected; the first whole message back is the reply, after which
/// the connection closes.
///
/// It has no timer: the resolver times its exchanges and drops the connection when one
/// runs out.
#[derive(Debug)]
pub struct TcpClientConn {
    query: Option<Bytes>,
    input: BytesMut,
    out: Output,
    events: std::collections::VecDeque<TcpClientEvent>,
    done: bool,
    close_polled: bool,
}

impl TcpClientConn {
    /// An exchange that sends `message` (at most 65,535 bytes).
    #[must_use]
    pub fn new(message: Bytes) -> Self {
        Self {
            query: Some(message),
            input: BytesMut::new(),
            out: Output::new(),
            events: std::collections::VecDeque::new(),
            done: false,
            close_polled: false,
        }
    }

    /// Whether the reply came (or the exchange failed): nothing more will happen.
    #[must_use]
    pub fn is_done(&self) -> bool {
        self.done
    }

    fn fail(&mut self, reason: &'static str) {
        if !self.done {
            self.done = true;
            self.events.push_back(TcpClientEvent::Failed(reason));
        }
    }
}

impl Machine for TcpClientConn {
    type Event = TcpClientEvent;

    fn handle_connected(&mut self, _now: Instant) {
        if let Some(query) = self.query.take() {
            let Ok(len) = u16::try_from(query.len()) else {
                self.fail("query longer than 65,535 bytes");
                return;
            };
            self.out.write(&len.to_be_bytes());
            self.out.write_bytes(query);
        }
    }

    fn handle_input(&mut self, data: &[u8], _now: Instant) {
        if self.done {
            return;
        }
        // At most one message is wanted: never more than 2 + 65,535 bytes held.
        let want = if self.input.len() >= 2 {
            2 + usize::from(u16::from_be_bytes([self.input[0], self.input[1]]))
        } else {
            2 + usize::from(u16::MAX)
        };
        let take = data.len().min(want.saturating_sub(self.input.len()));
        self.input.extend_from_slice(&data[..take]);
        if self.input.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([self.input[0], self.input[1]]));
            if self.input.len() >= 2 + len {
                self.input.advance(2);
                let reply = self.input.split_to(len).freeze();
                self.done = true;
                self.events.push_back(TcpClientEvent::Reply(reply));
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.fail("closed before the reply");
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_lost(&mut self, _now: Instant) {
        self.fail("connection lost before the reply");
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<TcpClientEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled || !self.done || !self.out.is_empty() {
            return None;
        }
        self.close_polled = true;
        Some(Close::Graceful)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_input(&self) -> bool {
        !self.done
    }
}

#[cfg(test)]
mod client_tests {
    use super::*;

    fn drain(conn: &mut TcpClientConn, now: Instant) -> Vec<u8> {
        let mut sent = Vec::new();
        while let Some(bytes) = conn.poll_transmit(now) {
            sent.extend_from_slice(&bytes);
        }
        sent
    }

    #[test]
    fn the_query_goes_framed_and_the_reply_is_read_at_every_split() {
        let now = Instant::now();
        let reply = b"\x12\x34 a reply of some bytes";
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(reply);
        framed.extend_from_slice(b"trailing junk");
        for cut in 0..=framed.len() {
            let mut conn = TcpClientConn::new(Bytes::from_static(b"query"));
            conn.handle_connected(now);
            assert_eq!(drain(&mut conn, now), b"\x00\x05query");
            conn.handle_input(&framed[..cut], now);
            conn.handle_input(&framed[cut..], now);
            assert_eq!(
                conn.poll_event(),
                Some(TcpClientEvent::Reply(Bytes::from_static(reply)))
            );
            assert_eq!(conn.poll_event(), None);
            assert_eq!(conn.poll_close(), Some(Close::Graceful));
            assert!(!conn.wants_input());
        }
    }

    #[test]
    fn an_early_end_is_a_failure_once() {
        let now = Instant::now();
        let mut conn = TcpClientConn::new(Bytes::from_static(b"q"));
        conn.handle_connected(now);
        assert_eq!(drain(&mut conn, now), b"\x00\x01q");
        conn.handle_input(&[0, 9, 1, 2], now);
        conn.handle_eof(now);
        conn.handle_lost(now);
        assert_eq!(
            conn.poll_event(),
            Some(TcpClientEvent::Failed("closed before the reply"))
        );
        assert_eq!(conn.poll_event(), None);
        assert_eq!(conn.poll_close(), Some(Close::Graceful));
    }
}
