//! Fuzz target for the whole HTTP/2 server connection (`H2ServerConn`): a script of client
//! frames (raw bytes, well-formed frames of any type, requests, bodies, resets, window
//! updates, settings, pings), time passing, writability changes, shutdowns, half-closes,
//! and an application that answers in any order, whole or streamed, releasing or
//! discarding bodies.
//!
//! Asserts: no panic; bounded input (one frame and one header block past the limits);
//! what is written reads as a sequence of valid frames whose header blocks decode; nothing
//! is written after the connection asked to close; released body bytes never exceed what
//! was delivered (the glue's bookkeeping).
//!
//! Input: a script of operations, each an op byte and its arguments.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::Headers;
use ringwork_protocols::http::proto::h2::H2ServerConn;
use ringwork_protocols::http::proto::h2::script::{Received, ScriptedClient, request_fields};
use ringwork_protocols::http::proto::server::{RequestId, Response, ServerConfig, ServerEvent};
use ringwork_protocols::kit::{Close, Machine};

struct Harness {
    conn: H2ServerConn,
    client: ScriptedClient,
    reader: ScriptedClient,
    now: Instant,
    /// Requests not answered: streamed answers in progress are `true`.
    pending: BTreeMap<u64, bool>,
    /// Body bytes delivered and not released, per request.
    unreleased: BTreeMap<u64, usize>,
    closed: bool,
    next_stream: u32,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                ServerEvent::Request { id, .. } => {
                    self.pending.insert(id.0, false);
                }
                ServerEvent::Body { id, data } => {
                    *self.unreleased.entry(id.0).or_default() += data.len();
                }
                ServerEvent::BodyEnd { .. } | ServerEvent::BodyError { .. } => {}
                ServerEvent::Sent { id: Some(id), .. } => {
                    self.pending.remove(&id.0);
                }
                _ => {}
            }
        }
        while let Some(bytes) = self.conn.poll_transmit(self.now) {
            assert!(!self.closed, "bytes after the close");
            for item in self.reader.read(&bytes) {
                assert!(!matches!(item, Received::Garbage(_)), "{item:?}");
            }
        }
        if let Some(close) = self.conn.poll_close() {
            assert!(matches!(
                close,
                Close::Graceful | Close::Abort | Close::Write
            ));
            self.closed = true;
        }
        // One frame of input and one header block at most past the limits.
        assert!(self.conn.held_input() <= 16_384 + 9 + 64 * 1024 + 255);
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.conn.handle_input(bytes, self.now);
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut config = ServerConfig::default();
    config.http2.max_concurrent_streams = 4;
    config.http2.stream_window = 1000;
    config.limits.max_body = 5000;
    let mut h = Harness {
        conn: H2ServerConn::new(&config),
        client: ScriptedClient::new(),
        reader: ScriptedClient::new(),
        now: Instant::now(),
        pending: BTreeMap::new(),
        unreleased: BTreeMap::new(),
        closed: false,
        next_stream: 1,
    };
    h.conn.handle_connected(h.now);
    h.drain();
    let mut script = data.iter().copied();
    let mut next = move || script.next();
    if next().is_some_and(|b| b & 0x80 == 0) {
        let preface = h.client.preface();
        h.feed(&preface);
    }
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        let stream = u32::from(arg % 16) * 2 + 1;
        match op % 16 {
            0 => {
                // Raw bytes.
                let bytes: Vec<u8> = (0..arg).map_while(|_| next()).collect();
                h.feed(&bytes);
            }
            1 => {
                // A frame of any type, flags and stream with a payload.
                let kind = next().unwrap_or(0) % 11;
                let flags = next().unwrap_or(0);
                let len = next().unwrap_or(0);
                let payload: Vec<u8> = (0..len).map_while(|_| next()).collect();
                let frame = h.client.frame(kind, flags, u32::from(arg % 8), &payload);
                h.feed(&frame);
            }
            2 => {
                // A request on the next stream (or a given one).
                let id = if arg & 1 == 0 { h.next_stream } else { stream };
                h.next_stream = h.next_stream.max(id) + 2;
                let method = ["GET", "POST", "HEAD", "PUT"][usize::from(arg >> 1) % 4];
                let mut fields = request_fields(method, "/x");
                if arg & 0x40 != 0 {
                    fields.push(("content-length", "10"));
                }
                let frame = h.client.headers(id, &fields, arg & 0x20 != 0);
                h.feed(&frame);
            }
            3 => {
                let len = usize::from(next().unwrap_or(0)) * 8;
                let frame = h.client.data(stream, &vec![b'd'; len], arg & 0x80 != 0);
                h.feed(&frame);
            }
            4 => {
                let frame = h.client.rst_stream(
                    stream,
                    ringwork_protocols::http::proto::h2::frame::ErrorCode(u32::from(arg)),
                );
                h.feed(&frame);
            }
            5 => {
                let increment = u32::from(next().unwrap_or(0)) << (arg % 24);
                let frame = h
                    .client
                    .window_update(if arg & 0x80 != 0 { 0 } else { stream }, increment);
                h.feed(&frame);
            }
            6 => {
                let value = u32::from(next().unwrap_or(0)) << (arg % 24);
                let frame = h.client.settings(&[(u16::from(arg % 7), value)]);
                h.feed(&frame);
            }
            7 => {
                h.now += Duration::from_millis(u64::from(arg) * 500);
                h.conn.handle_timeout(h.now);
                h.drain();
            }
            8 => {
                h.conn.handle_writable(arg & 1 == 0, h.now);
                h.drain();
            }
            9 => {
                h.conn.handle_shutdown(h.now);
                h.drain();
            }
            10 => {
                h.conn.handle_eof(h.now);
                h.drain();
            }
            11 => {
                // Answer a pending request whole.
                if let Some((&id, _)) = h
                    .pending
                    .iter()
                    .nth(usize::from(arg) % h.pending.len().max(1))
                {
                    let body = vec![b'r'; usize::from(next().unwrap_or(0)) * 64];
                    let _ = h.conn.send_response(RequestId(id), Response::text(body));
                    h.pending.remove(&id);
                }
                h.drain();
            }
            12 => {
                // Stream an answer: head, a piece, or the end.
                if let Some((&id, &streaming)) = h
                    .pending
                    .iter()
                    .nth(usize::from(arg) % h.pending.len().max(1))
                {
                    if !streaming {
                        let mut response = Response::new(200);
                        if arg & 0x80 != 0 {
                            response = response.header("content-length", "100");
                        }
                        let _ = h.conn.send_head(RequestId(id), response);
                        h.pending.insert(id, true);
                    } else if arg & 0x40 != 0 {
                        let mut trailers = Headers::new();
                        trailers.append("grpc-status", "0");
                        let _ = h
                            .conn
                            .finish(RequestId(id), (arg & 0x20 == 0).then_some(trailers));
                        h.pending.remove(&id);
                    } else {
                        let len = usize::from(next().unwrap_or(0)) * 100;
                        let _ = h
                            .conn
                            .send_body(RequestId(id), Bytes::from(vec![b's'; len]));
                    }
                }
                h.drain();
            }
            13 => {
                // Release delivered body bytes.
                if let Some((&id, n)) = h.unreleased.iter_mut().next() {
                    let take = (*n).min(usize::from(arg) * 16);
                    *n -= take;
                    h.conn.release_body(RequestId(id), take);
                    if *n == 0 {
                        h.unreleased.remove(&id);
                    }
                }
                h.drain();
            }
            14 => {
                if let Some((&id, _)) = h.unreleased.iter().next() {
                    h.conn.discard_body(RequestId(id));
                }
                let frame = h.client.ping([arg; 8]);
                h.feed(&frame);
            }
            _ => {
                // A CONTINUATION (maybe out of place).
                let frame = h.client.frame(9, arg & 4, stream, &[0x82]);
                h.feed(&frame);
            }
        }
    }
    h.conn.handle_lost(h.now);
    assert!(h.conn.poll_transmit(h.now).is_none());
});
