//! One HTTP/1.1 client connection as a sans-IO machine ([`ClientConn`]).
//!
//! Owns: one exchange at a time on a keep-alive connection: the request's bytes (head, a
//! whole body, or a streamed body framed sized or chunked, its length checked), the
//! response (head with [`parse_response`], interim 1xx skipped, body with [`BodyDecoder`]),
//! whether the connection may carry another request, and the deadlines (response head,
//! body stall, idle in the pool).
//! Contract: the [`Machine`] contract. [`ClientConn::send_request`] starts an exchange on an
//! idle connection; its response arrives as [`ClientEvent::Head`], [`ClientEvent::Data`]
//! pieces and [`ClientEvent::End`] (with whether the connection can be reused), or one
//! [`ClientEvent::Failed`]. A connection is reusable only when the body ended exactly at the
//! end of the input, both sides allow keep-alive and the upload (if any) finished; bytes on
//! an idle connection, or anything after a failure, end it. The application may hold the
//! body back ([`ClientConn::set_paused`]): reading stops and the body deadline with it.
//! Does not: pick connections, retry, resolve names or encode request heads (the engine
//! client does; heads come from `http::client::encode_head`).
//! Spec: RFC 9112 §6.3 (message length), §9.3 (persistence), §9.6 (closing); RFC 9110
//! §15.2 (1xx). Tests: `tests.rs` (Pair with the server machine).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::http::proto::{
    BodyDecoder, BodyKind, H1Error, H1Limits, Headers, Method, ResponseHead, Status, encode,
    parse_response,
};
use crate::kit::{Close, Machine, Output};

/// Settings of one client connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConnConfig {
    /// Response parsing limits.
    pub limits: H1Limits,
    /// How long the response head may take once the request is sent.
    pub response_timeout: Duration,
    /// How long the body may stall between two reads (not counted while paused).
    pub body_timeout: Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: Duration,
}

impl Default for ClientConnConfig {
    fn default() -> Self {
        Self {
            limits: H1Limits::default(),
            response_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

/// A request to send: its encoded head and how its body follows.
#[derive(Clone, Debug)]
pub struct OutgoingRequest {
    /// The method (the response's framing depends on it).
    pub method: Method,
    /// The encoded head.
    pub head: Bytes,
    /// A whole body (empty for none, or when it streams).
    pub body: Bytes,
    /// The request asked for `Connection: close`.
    pub wants_close: bool,
    /// A body that streams after the head ([`ClientConn::send_body`]): `Some(Some(n))` with
    /// a Content-Length of `n`, `Some(None)` chunked.
    pub streamed: Option<Option<u64>>,
}

/// What a [`ClientConn`] tells its application.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The final response head (interim 1xx responses are skipped).
    Head(ResponseHead),
    /// A piece of the body.
    Data(Bytes),
    /// The response ended.
    End {
        /// Trailer fields of a chunked body.
        trailers: Option<Headers>,
        /// Whether the connection can carry another request (else it is closing).
        reusable: bool,
    },
    /// The exchange failed; the connection is closing.
    Failed {
        /// Why.
        error: ExchangeError,
        /// Whether any byte of the response had arrived (a request that failed before is
        /// safe to send again when idempotent).
        received: bool,
    },
}

/// Why an exchange failed. The Display text is lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The response broke HTTP/1.1 framing or syntax.
    #[error("invalid response: {0}")]
    Protocol(H1Error),
    /// The body is larger than the limit.
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: u64,
    },
    /// No response head within the response timeout.
    #[error("no response head within {timeout:?}")]
    ResponseTimeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The body stalled longer than the body timeout.
    #[error("response body stalled for {timeout:?}")]
    BodyTimeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The connection ended before the response was complete.
    #[error("connection closed before the response was complete")]
    Closed,
    /// A streamed request body did not match its declared length.
    #[error("request body of {sent} bytes does not match its declared length {declared}")]
    RequestBodyLength {
        /// The declared length.
        declared: u64,
        /// Bytes given (at least) when the mismatch was seen.
        sent: u64,
    },
}

impl ExchangeError {
    /// A response decoding error, with the body limit and a cut-off split out.
    fn from_response(error: H1Error) -> Self {
        match error {
            H1Error::BodyTooLarge { limit } => Self::BodyTooLarge { limit },
            H1Error::UnexpectedEof => Self::Closed,
            other => Self::Protocol(other),
        }
    }
}

/// Why [`ClientConn::send_request`] refused a request.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BusyError {
    /// An exchange is in flight (no pipelining).
    #[error("an exchange is in flight")]
    Busy,
    /// The connection is closing or gone.
    #[error("the connection is closed")]
    Closed,
}

/// Where the connection is.
#[derive(Debug)]
enum Reading {
    /// No exchange.
    Idle,
    /// Waiting for the response head (bytes so far).
    Head {
        method: Method,
        wants_close: bool,
        buf: BytesMut,
    },
    /// Reading the body.
    Body {
        decoder: BodyDecoder,
        keep_alive: bool,
    },
    /// Nothing more: the connection is closing.
    Done,
}

/// Where a streamed request body is.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Upload {
    /// No body streams (or it ended).
    None,
    /// A sized body: bytes declared and given.
    Sized { declared: u64, sent: u64 },
    /// A chunked body.
    Chunked,
}

/// One HTTP/1.1 client connection (see the module docs).
#[derive(Debug)]
pub struct ClientConn {
    config: ClientConnConfig,
    reading: Reading,
    upload: Upload,
    events: VecDeque<ClientEvent>,
    out: Output,
    connected: bool,
    /// Any byte of the current response arrived.
    received: bool,
    paused: bool,
    writable: bool,
    draining: bool,
    lost: bool,
    response_deadline: Option<Instant>,
    body_deadline: Option<Instant>,
    idle_deadline: Option<Instant>,
    /// Request bytes were given since the last poll: the response deadline restarts then.
    restart_response: bool,
    /// The connection became idle since the last poll: its idle deadline starts then.
    start_idle: bool,
    close: Option<Close>,
    close_polled: bool,
}

impl ClientConn {
    /// A connection (connecting, or connected once [`Machine::handle_connected`] is called).
    #[must_use]
    pub fn new(config: ClientConnConfig) -> Self {
        Self {
            config,
            reading: Reading::Idle,
            upload: Upload::None,
            events: VecDeque::new(),
            out: Output::new(),
            connected: false,
            received: false,
            paused: false,
            writable: true,
            draining: false,
            lost: false,
            response_deadline: None,
            body_deadline: None,
            idle_deadline: None,
            restart_response: false,
            start_idle: false,
            close: None,
            close_polled: false,
        }
    }

    /// Whether the connection can take a request now.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        matches!(self.reading, Reading::Idle) && !self.is_closing()
    }

    /// Whether it is closing or gone.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.close.is_some() || self.lost
    }

    /// Whether any byte of the current response arrived.
    #[must_use]
    pub fn received(&self) -> bool {
        self.received
    }

    /// Starts an exchange: writes the request (sent once connected).
    ///
    /// # Errors
    /// [`BusyError`] when an exchange is in flight or the connection is closing.
    pub fn send_request(&mut self, request: OutgoingRequest) -> Result<(), BusyError> {
        if self.is_closing() {
            return Err(BusyError::Closed);
        }
        if !matches!(self.reading, Reading::Idle) {
            return Err(BusyError::Busy);
        }
        self.out.write_bytes(request.head);
        self.out.write_bytes(request.body);
        self.upload = match request.streamed {
            None => Upload::None,
            Some(Some(declared)) => Upload::Sized { declared, sent: 0 },
            Some(None) => Upload::Chunked,
        };
        self.reading = Reading::Head {
            method: request.method,
            wants_close: request.wants_close,
            buf: BytesMut::new(),
        };
        self.received = false;
        self.paused = false;
        self.idle_deadline = None;
        self.start_idle = false;
        self.restart_response = true;
        Ok(())
    }

    /// Whether a streamed request body may take another piece now (its transport is
    /// writable).
    #[must_use]
    pub fn upload_ready(&self) -> bool {
        self.upload != Upload::None && self.writable && !self.is_closing()
    }

    /// Whether a streamed request body is still being sent.
    #[must_use]
    pub fn is_uploading(&self) -> bool {
        self.upload != Upload::None
    }

    /// Sends a piece of the streamed request body.
    ///
    /// # Errors
    /// [`ExchangeError::RequestBodyLength`] past the declared length: the connection is
    /// aborted (and the exchange is reported failed).
    pub fn send_body(&mut self, piece: Bytes) -> Result<(), ExchangeError> {
        if piece.is_empty() || self.is_closing() {
            return Ok(());
        }
        match &mut self.upload {
            Upload::None => return Ok(()),
            Upload::Sized { declared, sent } => {
                *sent += piece.len() as u64;
                // RFC 9112 §6.2: the body must be exactly Content-Length bytes.
                if *sent > *declared {
                    let error = ExchangeError::RequestBodyLength {
                        declared: *declared,
                        sent: *sent,
                    };
                    self.fail(error.clone(), Close::Abort);
                    return Err(error);
                }
                self.out.write_bytes(piece);
                if *sent == *declared {
                    self.upload = Upload::None;
                }
            }
            Upload::Chunked => {
                let buffer = self.out.buffer();
                let before = buffer.len();
                encode::write_chunk_size(buffer, piece.len());
                let size_len = buffer.len() - before;
                self.out.wrote(size_len);
                self.out.write_bytes(piece);
                self.out.write(b"\r\n");
            }
        }
        self.restart_response = true;
        Ok(())
    }

    /// Ends the streamed request body.
    ///
    /// # Errors
    /// [`ExchangeError::RequestBodyLength`] when a sized body ended short: the connection is
    /// aborted.
    pub fn finish_body(&mut self) -> Result<(), ExchangeError> {
        if self.is_closing() {
            return Ok(());
        }
        match self.upload {
            Upload::None => Ok(()),
            Upload::Chunked => {
                self.out.write(encode::LAST_CHUNK);
                self.upload = Upload::None;
                self.restart_response = true;
                Ok(())
            }
            Upload::Sized { declared, sent } => {
                let error = ExchangeError::RequestBodyLength { declared, sent };
                self.fail(error.clone(), Close::Abort);
                Err(error)
            }
        }
    }

    /// Holds the response body back (`true`: stop reading; the body deadline does not run)
    /// or lets it come again.
    pub fn set_paused(&mut self, paused: bool) {
        if self.paused != paused {
            self.paused = paused;
            if matches!(self.reading, Reading::Body { .. }) {
                self.body_deadline = None;
                // Restarted at the next poll when resumed.
                self.restart_response |= !paused;
            }
        }
    }

    /// Closes the connection (gracefully when idle; an exchange in flight fails).
    pub fn close(&mut self) {
        if matches!(self.reading, Reading::Idle | Reading::Done) {
            self.reading = Reading::Done;
            self.close_now(Close::Graceful);
        } else {
            self.fail(ExchangeError::Closed, Close::Graceful);
        }
    }

    /// Resets the connection; an exchange in flight fails as [`ExchangeError::Closed`].
    pub fn abort(&mut self) {
        self.fail(ExchangeError::Closed, Close::Abort);
    }

    fn close_now(&mut self, close: Close) {
        if close == Close::Abort {
            self.out.clear();
        }
        // Nothing is sent after a close: an upload still under way ends here.
        self.upload = Upload::None;
        match self.close {
            None => self.close = Some(close),
            // An abort overrides a graceful close not yet applied.
            Some(Close::Graceful | Close::Write) if close == Close::Abort && !self.close_polled => {
                self.close = Some(close);
            }
            Some(_) => {}
        }
        self.response_deadline = None;
        self.body_deadline = None;
        self.idle_deadline = None;
    }

    /// Fails the exchange in flight (if any) and closes.
    fn fail(&mut self, error: ExchangeError, close: Close) {
        if matches!(self.reading, Reading::Head { .. } | Reading::Body { .. }) {
            self.events.push_back(ClientEvent::Failed {
                error,
                received: self.received,
            });
        }
        self.reading = Reading::Done;
        self.upload = Upload::None;
        self.close_now(close);
    }

    /// Feeds response bytes.
    fn take_input(&mut self, mut data: &[u8], now: Instant) {
        loop {
            match &mut self.reading {
                Reading::Idle => {
                    // RFC 9112 §9.3: bytes on an idle connection (often a 408 before the
                    // server closes it) cannot belong to a request: the connection is done.
                    self.reading = Reading::Done;
                    self.close_now(Close::Abort);
                    return;
                }
                Reading::Done => return,
                Reading::Head { method, buf, .. } => {
                    self.received = true;
                    let parsed = if buf.is_empty() {
                        parse_response(data, &self.config.limits, method)
                    } else {
                        buf.extend_from_slice(data);
                        data = &[];
                        parse_response(buf, &self.config.limits, method)
                    };
                    let parsed = match parsed {
                        Ok(Status::Complete(parsed)) => parsed,
                        Ok(Status::Partial) => {
                            if !data.is_empty() {
                                buf.extend_from_slice(data);
                            }
                            return;
                        }
                        Err(error) => {
                            self.fail(ExchangeError::Protocol(error), Close::Abort);
                            return;
                        }
                    };
                    // What follows the head: the rest of `data`, or of the buffer.
                    let rest: Bytes = if buf.is_empty() {
                        let rest = Bytes::copy_from_slice(&data[parsed.consumed..]);
                        data = &[];
                        rest
                    } else {
                        buf.split_off(parsed.consumed).freeze()
                    };
                    // RFC 9110 §15.2: a client MUST be able to parse one or more 1xx
                    // responses received prior to a final response. 101 (Switching
                    // Protocols) is final: this client never asks for an upgrade, so it ends
                    // the exchange and the connection.
                    if parsed.head.status < 200 && parsed.head.status != 101 {
                        buf.clear();
                        buf.extend_from_slice(&rest);
                        if buf.is_empty() {
                            return;
                        }
                        continue;
                    }
                    // The decoder counts a sized body as it arrives; refuse one announced
                    // too large before any of it is read.
                    if matches!(parsed.body, BodyKind::Length(n) if n > self.config.limits.max_body)
                    {
                        let limit = self.config.limits.max_body;
                        self.fail(ExchangeError::BodyTooLarge { limit }, Close::Abort);
                        return;
                    }
                    let keep_alive = parsed.keep_alive && parsed.head.status != 101;
                    let keep_alive = keep_alive
                        && !matches!(
                            &self.reading,
                            Reading::Head {
                                wants_close: true,
                                ..
                            }
                        );
                    self.response_deadline = None;
                    self.body_deadline = Some(now + self.config.body_timeout);
                    self.events.push_back(ClientEvent::Head(parsed.head));
                    self.reading = Reading::Body {
                        decoder: BodyDecoder::new(parsed.body, &self.config.limits),
                        keep_alive,
                    };
                    self.take_body(&rest, now);
                    if !data.is_empty() {
                        self.take_body(data, now);
                    }
                    return;
                }
                Reading::Body { .. } => {
                    self.take_body(data, now);
                    return;
                }
            }
        }
    }

    /// Feeds body bytes.
    fn take_body(&mut self, mut input: &[u8], now: Instant) {
        loop {
            let Reading::Body {
                decoder,
                keep_alive,
            } = &mut self.reading
            else {
                if !input.is_empty() && matches!(self.reading, Reading::Idle) {
                    // Bytes after the response were not asked for: the connection is not
                    // in a known state any more.
                    self.reading = Reading::Done;
                    self.close_now(Close::Abort);
                }
                return;
            };
            if input.is_empty() && !decoder.is_finished() {
                return;
            }
            let step = match decoder.decode(input) {
                Ok(step) => step,
                Err(error) => {
                    self.fail(ExchangeError::from_response(error), Close::Abort);
                    return;
                }
            };
            let keep_alive = *keep_alive;
            if !step.data.is_empty() {
                self.events
                    .push_back(ClientEvent::Data(Bytes::copy_from_slice(step.data)));
                self.body_deadline = (!self.paused).then(|| now + self.config.body_timeout);
            }
            input = &input[step.consumed..];
            if step.finished {
                let trailers = decoder.take_trailers();
                // Bytes after the response were not asked for.
                let reusable =
                    keep_alive && input.is_empty() && self.upload == Upload::None && !self.draining;
                self.events
                    .push_back(ClientEvent::End { trailers, reusable });
                self.body_deadline = None;
                self.paused = false;
                if reusable {
                    self.reading = Reading::Idle;
                    self.start_idle = true;
                } else {
                    self.reading = Reading::Done;
                    self.upload = Upload::None;
                    self.close_now(Close::Graceful);
                }
                return;
            }
            if input.is_empty() || (step.consumed == 0 && step.data.is_empty()) {
                return;
            }
        }
    }
}

impl Machine for ClientConn {
    type Event = ClientEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.connected = true;
        if matches!(self.reading, Reading::Head { .. }) {
            self.response_deadline = Some(now + self.config.response_timeout);
            self.restart_response = false;
        } else if matches!(self.reading, Reading::Idle) {
            self.idle_deadline = Some(now + self.config.idle_timeout);
        }
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.is_closing() {
            return;
        }
        self.take_input(data, now);
    }

    fn handle_eof(&mut self, _now: Instant) {
        if self.is_closing() {
            return;
        }
        match &mut self.reading {
            Reading::Body { decoder, .. } => match decoder.finish_at_eof() {
                // A close-delimited body ends here.
                Ok(()) => {
                    self.events.push_back(ClientEvent::End {
                        trailers: None,
                        reusable: false,
                    });
                    self.reading = Reading::Done;
                    self.close_now(Close::Graceful);
                }
                Err(error) => self.fail(ExchangeError::from_response(error), Close::Graceful),
            },
            Reading::Head { .. } => self.fail(ExchangeError::Closed, Close::Graceful),
            Reading::Idle | Reading::Done => {
                self.reading = Reading::Done;
                self.close_now(Close::Graceful);
            }
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due = |deadline: Option<Instant>| deadline.is_some_and(|at| at <= now);
        if due(self.response_deadline) {
            let timeout = self.config.response_timeout;
            self.fail(ExchangeError::ResponseTimeout { timeout }, Close::Abort);
        } else if due(self.body_deadline) {
            let timeout = self.config.body_timeout;
            self.fail(ExchangeError::BodyTimeout { timeout }, Close::Abort);
        } else if due(self.idle_deadline) && matches!(self.reading, Reading::Idle) {
            self.reading = Reading::Done;
            self.close_now(Close::Graceful);
        }
    }

    fn handle_writable(&mut self, writable: bool, _now: Instant) {
        self.writable = writable;
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        // Nothing is kept idle during a shutdown; an exchange in flight finishes first.
        self.draining = true;
        if matches!(self.reading, Reading::Idle) {
            self.reading = Reading::Done;
            self.close_now(Close::Graceful);
        }
    }

    fn handle_lost(&mut self, _now: Instant) {
        if !self.lost {
            self.fail(ExchangeError::Closed, Close::Abort);
            self.lost = true;
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.connected && !self.is_closing() {
            if std::mem::take(&mut self.restart_response) {
                match self.reading {
                    Reading::Head { .. } => {
                        self.response_deadline = Some(now + self.config.response_timeout);
                    }
                    Reading::Body { .. } if !self.paused => {
                        self.body_deadline = Some(now + self.config.body_timeout);
                    }
                    _ => {}
                }
            }
            if std::mem::take(&mut self.start_idle) && matches!(self.reading, Reading::Idle) {
                self.idle_deadline = Some(now + self.config.idle_timeout);
            }
        }
        if self.lost {
            return None;
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled {
            return None;
        }
        let close = self.close?;
        if close != Close::Abort && !self.out.is_empty() {
            return None;
        }
        self.close_polled = true;
        Some(close)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closing() {
            return None;
        }
        [
            self.response_deadline,
            self.body_deadline,
            self.idle_deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn wants_input(&self) -> bool {
        !self.is_closing() && !self.paused
    }
}

#[cfg(test)]
mod tests;
