//! The kit's worked example (docs/kit.md): a line protocol as two machines.
//!
//! Owns: [`LineServer`] and [`LineClient`], a request/reply protocol over lines. The client
//! sends lines; the server hands each to its application as a [`ServerEvent::Line`] with an
//! id and sends the application's [`LineServer::reply`]s back *in request order*, even when
//! they are given out of order. `QUIT` ends the session (`BYE`, then close); a line longer
//! than the limit gets `ERROR line too long` and a close; a connection idle for
//! [`LineConfig::idle_timeout`] gets `TIMEOUT` and a close; a graceful shutdown answers what
//! is pending, then `BYE`.
//! Contract: the [`Machine`] contract; nothing else.
//! Does not: do anything useful beyond showing every part of a machine: input framing (the
//! [`LineDecoder`] of `basic`), ordered replies, a deadline, backpressure (reading stops
//! with [`LineConfig::max_pending`] lines unanswered or the transport full), closing, and
//! shutdown.
//! Tests: `example/tests.rs` (Pair on a perfect and on faulty links);
//! `tests/kit_adapter.rs` (the machine on real connections through the engine adapter).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Close, Machine, Output};
use crate::basic::proto::line::{Delimiter, LineDecoder, LineEvent, LineLimits};

/// Settings of a [`LineServer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LineConfig {
    /// The longest line, in bytes.
    pub max_line: usize,
    /// A connection with nothing pending and no input for this long is closed.
    pub idle_timeout: Duration,
    /// Unanswered lines before the server stops reading.
    pub max_pending: usize,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            max_line: 1024,
            idle_timeout: Duration::from_secs(60),
            max_pending: 16,
        }
    }
}

/// What a [`LineServer`] tells its application.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ServerEvent {
    /// A line to answer with [`LineServer::reply`].
    Line {
        /// Its id (ids grow by one per line).
        id: u64,
        /// The line, without its end.
        line: Bytes,
    },
}

/// The server side: lines in, ordered replies out.
#[derive(Debug)]
pub struct LineServer {
    config: LineConfig,
    decoder: LineDecoder,
    /// Replies by id, from the oldest unanswered line on.
    pending: VecDeque<(u64, Option<Bytes>)>,
    next_id: u64,
    events: VecDeque<ServerEvent>,
    out: Output,
    idle_deadline: Option<Instant>,
    writable: bool,
    /// No more lines are taken (QUIT, an error, a shutdown, the peer's end).
    done_reading: bool,
    /// Say `BYE` once the pending replies are out.
    bye: bool,
    close: Option<Close>,
    close_polled: bool,
    /// A reply freed room for held-back lines: take them at the next poll.
    room: bool,
}

impl LineServer {
    /// A server connection with `config`.
    #[must_use]
    pub fn new(config: LineConfig) -> Self {
        let decoder = LineDecoder::with_config(Delimiter::Lf, LineLimits::new(config.max_line));
        Self {
            config,
            decoder,
            pending: VecDeque::new(),
            next_id: 0,
            events: VecDeque::new(),
            out: Output::new(),
            idle_deadline: None,
            writable: true,
            done_reading: false,
            bye: false,
            close: None,
            close_polled: false,
            room: false,
        }
    }

    /// Answers line `id`; it is sent once every earlier line is answered. An unknown or
    /// already-answered id is ignored.
    pub fn reply(&mut self, id: u64, reply: impl Into<Bytes>) {
        let Some(front) = self.pending.front().map(|(id, _)| *id) else {
            return;
        };
        let Some(slot) = id
            .checked_sub(front)
            .and_then(|at| self.pending.get_mut(at as usize))
        else {
            return;
        };
        if slot.1.is_none() {
            slot.1 = Some(reply.into());
            self.flush();
            // Lines held back by `max_pending` are taken at the next poll (which knows the
            // time, for the idle deadline).
            self.room = true;
        }
    }

    /// Sends the replies that are next in order; closes when finished.
    fn flush(&mut self) {
        while let Some((_, Some(_))) = self.pending.front() {
            if let Some((_, Some(reply))) = self.pending.pop_front() {
                self.out.write(&reply);
                self.out.write(b"\n");
            }
        }
        if self.pending.is_empty() && self.bye && self.close.is_none() {
            self.out.write(b"BYE\n");
            self.close = Some(Close::Graceful);
        }
    }

    /// Stops taking lines; says `BYE` and closes once the replies are out.
    fn finish(&mut self) {
        self.done_reading = true;
        self.bye = true;
        self.idle_deadline = None;
        self.flush();
    }

    /// Ends at once with `message` (after the replies already in order).
    fn fail(&mut self, message: &[u8]) {
        self.done_reading = true;
        self.pending.clear();
        self.out.write(message);
        self.close = Some(Close::Graceful);
    }

    /// Hands the buffered lines to the application while there is room for them.
    fn take_lines(&mut self, now: Instant) {
        while !self.done_reading && self.writable && self.pending.len() < self.config.max_pending {
            match self.decoder.poll_event() {
                Ok(Some(LineEvent::Line(line))) => {
                    if &line[..] == b"QUIT" {
                        self.finish();
                        return;
                    }
                    let id = self.next_id;
                    self.next_id += 1;
                    self.pending.push_back((id, None));
                    self.events.push_back(ServerEvent::Line { id, line });
                }
                // This protocol never switches the decoder to raw mode.
                Ok(Some(LineEvent::Raw(_))) | Ok(None) => break,
                Err(_) => {
                    self.fail(b"ERROR line too long\n");
                    return;
                }
            }
        }
        self.idle_deadline = Some(now + self.config.idle_timeout);
    }
}

impl Machine for LineServer {
    type Event = ServerEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.idle_deadline = Some(now + self.config.idle_timeout);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.done_reading {
            return;
        }
        self.decoder.handle_input(data);
        self.take_lines(now);
    }

    fn handle_eof(&mut self, _now: Instant) {
        if !self.done_reading {
            self.finish();
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.idle_deadline.is_some_and(|at| at <= now) {
            self.idle_deadline = None;
            if self.pending.is_empty() && !self.done_reading {
                self.fail(b"TIMEOUT\n");
            }
        }
    }

    fn handle_writable(&mut self, writable: bool, now: Instant) {
        self.writable = writable;
        if writable {
            // Lines held while the transport was full.
            self.take_lines(now);
        }
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        if !self.done_reading {
            self.finish();
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if std::mem::take(&mut self.room) {
            self.take_lines(now);
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled {
            return None;
        }
        self.close_polled = self.close.is_some();
        self.close
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Only an idle connection times out.
        self.idle_deadline.filter(|_| self.pending.is_empty())
    }

    fn wants_input(&self) -> bool {
        !self.done_reading && self.writable && self.pending.len() < self.config.max_pending
    }
}

/// What a [`LineClient`] tells its application.
#[derive(Clone, Debug, Eq, PartialEq)]
pub enum ClientEvent {
    /// A line from the server.
    Line(Bytes),
    /// The server ended the stream.
    Closed,
    /// The connection broke.
    Lost,
}

/// The client side: sends lines, reports what comes back.
#[derive(Debug)]
pub struct LineClient {
    decoder: LineDecoder,
    out: Output,
    events: VecDeque<ClientEvent>,
    quit: bool,
    close: Option<Close>,
}

impl LineClient {
    /// A client connection accepting server lines up to `max_line` bytes.
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        Self {
            decoder: LineDecoder::with_config(Delimiter::Lf, LineLimits::new(max_line)),
            out: Output::new(),
            events: VecDeque::new(),
            quit: false,
            close: None,
        }
    }

    /// Sends `line` (which must not contain a line end).
    pub fn send(&mut self, line: &[u8]) {
        if !self.quit {
            self.out.write(line);
            self.out.write(b"\n");
        }
    }

    /// Sends `QUIT`; nothing is sent after it.
    pub fn quit(&mut self) {
        self.send(b"QUIT");
        self.quit = true;
    }
}

impl Machine for LineClient {
    type Event = ClientEvent;

    fn handle_input(&mut self, data: &[u8], _now: Instant) {
        self.decoder.handle_input(data);
        loop {
            match self.decoder.poll_event() {
                Ok(Some(LineEvent::Line(line) | LineEvent::Raw(line))) => {
                    self.events.push_back(ClientEvent::Line(line));
                }
                Ok(None) => break,
                Err(_) => {
                    self.close = Some(Close::Abort);
                    break;
                }
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.events.push_back(ClientEvent::Closed);
        self.close = Some(Close::Graceful);
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_lost(&mut self, _now: Instant) {
        self.events.push_back(ClientEvent::Lost);
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        self.close.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_input(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests;
