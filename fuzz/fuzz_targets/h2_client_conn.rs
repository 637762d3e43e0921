//! Fuzz target for the whole HTTP/2 client connection (`H2ClientConn`) against a hostile
//! server: a script of server frames (responses with any status and fields, DATA, trailers,
//! RST_STREAM, GOAWAY, PING, SETTINGS, WINDOW_UPDATE, CONTINUATION, raw bytes), time,
//! writability, EOF, and an application that sends requests and bodies, releases or
//! cancels.
//!
//! Asserts: no panic; what the client writes is the preface then valid frames; no stream is
//! reported twice as ended; streams in flight stay within what the application opened;
//! nothing is written after the close.
#![no_main]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::h2::frame::{ErrorCode, PREFACE};
use ringwork_protocols::http::proto::h2::script::{Received, ScriptedClient};
use ringwork_protocols::http::proto::h2::{ClientEvent, H2ClientConn, H2Config, RequestParts};
use ringwork_protocols::http::proto::{Headers, Method};
use ringwork_protocols::kit::{Close, Machine};

struct Harness {
    conn: H2ClientConn,
    /// Builds the server's frames (its encoder never indexes: fine for any decoder).
    server: ScriptedClient,
    /// Reads the client's frames.
    reader: ScriptedClient,
    preface_left: usize,
    now: Instant,
    open: BTreeSet<u32>,
    ended: BTreeSet<u32>,
    closed: bool,
}

impl Harness {
    fn drain(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            let (id, done) = match event {
                ClientEvent::Response { id, end_stream, .. } => (id, end_stream),
                ClientEvent::Body { id, data } => {
                    self.conn.release_body(id, data.len());
                    (id, false)
                }
                ClientEvent::End { id, .. }
                | ClientEvent::Reset { id, .. }
                | ClientEvent::TimedOut { id } => (id, true),
                _ => continue,
            };
            assert!(
                self.open.contains(&id) || self.ended.contains(&id),
                "event for unknown stream {id}"
            );
            if done {
                // A Response with end_stream is followed by its End: count the End only.
                if self.open.remove(&id) {
                    self.ended.insert(id);
                }
            }
        }
        while let Some(bytes) = self.conn.poll_transmit(self.now) {
            assert!(!self.closed, "bytes after the close");
            let mut rest: &[u8] = &bytes;
            if self.preface_left > 0 {
                let n = self.preface_left.min(rest.len());
                let at = PREFACE.len() - self.preface_left;
                assert_eq!(&rest[..n], &PREFACE[at..at + n]);
                self.preface_left -= n;
                rest = &rest[n..];
            }
            for item in self.reader.read(rest) {
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
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.conn.handle_input(bytes, self.now);
        self.drain();
    }
}

fuzz_target!(|data: &[u8]| {
    let mut config = H2Config::default();
    config.stream_window = 1000;
    let mut h = Harness {
        conn: H2ClientConn::new(config),
        server: ScriptedClient::new(),
        reader: ScriptedClient::new(),
        preface_left: PREFACE.len(),
        now: Instant::now(),
        open: BTreeSet::new(),
        ended: BTreeSet::new(),
        closed: false,
    };
    h.conn.set_response_timeout(Some(Duration::from_secs(2)));
    h.conn.handle_connected(h.now);
    h.drain();
    let mut script = data.iter().copied();
    let mut next = move || script.next();
    if next().is_some_and(|b| b & 0x80 == 0) {
        let settings = h.server.settings(&[(3, 4)]);
        h.feed(&settings);
    }
    let headers = Headers::new();
    while let Some(op) = next() {
        let arg = next().unwrap_or(0);
        let stream = u32::from(arg % 8) * 2 + 1;
        match op % 14 {
            0 => {
                let bytes: Vec<u8> = (0..arg).map_while(|_| next()).collect();
                h.feed(&bytes);
            }
            1 => {
                let kind = next().unwrap_or(0) % 11;
                let flags = next().unwrap_or(0);
                let len = next().unwrap_or(0);
                let payload: Vec<u8> = (0..len).map_while(|_| next()).collect();
                let frame = h.server.frame(kind, flags, stream, &payload);
                h.feed(&frame);
            }
            2 => {
                let statuses = ["200", "204", "100", "404", "2000", "abc", "500"];
                let status = statuses[usize::from(arg >> 4) % statuses.len()];
                let mut fields = vec![(":status", status)];
                if arg & 1 != 0 {
                    fields.push(("content-type", "text/plain"));
                }
                if arg & 2 != 0 {
                    fields.push(("connection", "close"));
                }
                let frame = h.server.headers(stream, &fields, arg & 4 != 0);
                h.feed(&frame);
            }
            3 => {
                let len = usize::from(next().unwrap_or(0)) * 8;
                let frame = h.server.data(stream, &vec![b'd'; len], arg & 0x80 != 0);
                h.feed(&frame);
            }
            4 => {
                let frame = h
                    .server
                    .headers(stream, &[("grpc-status", "0")], arg & 1 == 0);
                h.feed(&frame);
            }
            5 => {
                let frame = h.server.rst_stream(stream, ErrorCode(u32::from(arg % 14)));
                h.feed(&frame);
            }
            6 => {
                let mut payload = vec![0, 0, 0, arg % 16];
                payload.extend((u32::from(arg) % 3).to_be_bytes());
                let frame = h.server.frame(7, 0, 0, &payload);
                h.feed(&frame);
            }
            7 => {
                let increment = u32::from(next().unwrap_or(0)) << (arg % 24);
                let frame = h
                    .server
                    .window_update(if arg & 0x80 != 0 { 0 } else { stream }, increment);
                h.feed(&frame);
            }
            8 => {
                let value = u32::from(next().unwrap_or(0)) << (arg % 24);
                let frame = h.server.settings(&[(u16::from(arg % 7), value)]);
                h.feed(&frame);
            }
            9 => {
                // The application sends a request (a body when arg says so).
                let parts = RequestParts {
                    method: if arg & 1 == 0 {
                        &Method::Get
                    } else {
                        &Method::Post
                    },
                    scheme: "http",
                    authority: b"fuzz",
                    path: b"/x",
                    headers: &headers,
                };
                if let Ok(id) = h.conn.send_request(parts, arg & 1 == 0) {
                    assert!(
                        !h.open.contains(&id) && !h.ended.contains(&id),
                        "stream id {id} reused"
                    );
                    h.open.insert(id);
                    if arg & 1 != 0 {
                        let _ = h
                            .conn
                            .send_body(id, Bytes::from(vec![b'b'; usize::from(arg) * 40]));
                        if arg & 2 != 0 {
                            let _ = h.conn.finish(id, None);
                        }
                    }
                }
                h.drain();
            }
            10 => {
                if let Some(&id) = h.open.iter().nth(usize::from(arg) % h.open.len().max(1)) {
                    h.conn.cancel(id);
                    h.open.remove(&id);
                    h.ended.insert(id);
                }
                h.drain();
            }
            11 => {
                h.now += Duration::from_millis(u64::from(arg) * 100);
                h.conn.handle_timeout(h.now);
                h.conn.handle_writable(arg & 1 == 0, h.now);
                h.drain();
            }
            12 => {
                let frame = h.server.ping([arg; 8]);
                h.feed(&frame);
            }
            _ => {
                if arg & 1 == 0 {
                    h.conn.handle_shutdown(h.now);
                } else {
                    h.conn.handle_eof(h.now);
                }
                h.drain();
            }
        }
    }
    h.conn.handle_lost(h.now);
    h.drain();
    assert!(h.open.is_empty(), "streams never ended: {:?}", h.open);
});
