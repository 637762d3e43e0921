//! Fuzz target for the whole HTTP/1.1 server connection (`ServerConn`), not only its
//! parsers: arbitrary input split arbitrarily, arbitrary timeouts, writability changes,
//! half-closes, shutdowns, and an application that answers in any order, whole or
//! streamed, releasing or discarding bodies.
//!
//! Asserts: no panic; bounded buffers (held input within the head limit plus one read,
//! body bytes given out without release within the body buffer plus one read); answers
//! leave in request order (each application answer carries `X-Id`, and the ids on the wire
//! strictly increase); what is written parses as a sequence of responses; nothing is
//! written after the connection asked to close.
//!
//! Input: a script of operations, each an op byte and its arguments (see `Op`).
#![no_main]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::server::{
    RequestId, Response, ServerConfig, ServerConn, ServerEvent,
};
use ringwork_protocols::http::proto::{
    BodyDecoder, H1Limits, Headers, Method, Status, parse_response,
};
use ringwork_protocols::kit::{Close, Machine};

/// Largest single input piece the script feeds.
const MAX_FEED: usize = 255;

fn config(tiny: bool) -> ServerConfig {
    let mut config = ServerConfig::default();
    config.max_pipelined = 4;
    config.body_buffer = 64;
    config.header_read_timeout = Duration::from_secs(10);
    config.body_read_timeout = Duration::from_secs(10);
    config.keep_alive_timeout = Duration::from_secs(30);
    if tiny {
        let mut limits = H1Limits::default();
        limits.max_request_line = 48;
        limits.max_head = 128;
        limits.max_headers = 4;
        limits.max_body = 100;
        config.limits = limits;
    }
    config
}

/// What the fuzzing application knows about a request.
struct Req {
    /// Body bytes given out and not released.
    unreleased: usize,
    streaming: bool,
}

struct Harness {
    conn: ServerConn,
    now: Instant,
    requests: BTreeMap<u64, Req>,
    /// Methods of the requests, by id (to frame-check responses to HEAD).
    methods: BTreeMap<u64, Method>,
    wire: Vec<u8>,
    closed: Option<Close>,
    body_outstanding: usize,
    /// Reads delivered since the machine stopped wanting input.
    reads_while_paused: u32,
    limits: H1Limits,
    body_buffer: usize,
}

impl Harness {
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(event) = self.conn.poll_event() {
                progressed = true;
                match event {
                    ServerEvent::Request { id, head, .. } => {
                        self.methods.insert(id.0, head.method);
                        self.requests.insert(
                            id.0,
                            Req {
                                unreleased: 0,
                                streaming: false,
                            },
                        );
                    }
                    ServerEvent::Body { id, data } => {
                        if let Some(req) = self.requests.get_mut(&id.0) {
                            req.unreleased += data.len();
                        }
                        self.body_outstanding += data.len();
                        // Bounded: the body buffer plus what one read can carry.
                        assert!(
                            self.body_outstanding <= self.body_buffer + MAX_FEED + 16,
                            "{} body bytes unreleased",
                            self.body_outstanding
                        );
                    }
                    ServerEvent::BodyEnd { .. } | ServerEvent::BodyError { .. } => {}
                    ServerEvent::Sent { .. } => {}
                    _ => {}
                }
            }
            while let Some(bytes) = self.conn.poll_transmit(self.now) {
                progressed = true;
                assert!(self.closed.is_none(), "bytes written after the close");
                self.wire.extend_from_slice(&bytes);
            }
            if let Some(close) = self.conn.poll_close() {
                assert!(self.closed.is_none(), "close asked twice");
                self.closed = Some(close);
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        // Bounded input: the head limit plus one read plus one pipelined burst.
        assert!(
            self.conn.held_input() <= self.limits.max_head + 2 * MAX_FEED + 2,
            "{} bytes of input held",
            self.conn.held_input()
        );
    }

    fn answer(&mut self, pick: u8, kind: u8) {
        let Some(&id) = self
            .requests
            .keys()
            .nth(usize::from(pick) % self.requests.len().max(1))
        else {
            return;
        };
        let req = self.requests.get_mut(&id).expect("picked above");
        let rid = RequestId(id);
        let tag = Bytes::from(id.to_string());
        if req.streaming {
            match kind % 3 {
                0 => {
                    let _ = self
                        .conn
                        .send_body(rid, Bytes::from(vec![b'x'; usize::from(kind)]));
                }
                1 => {
                    let _ = self.conn.finish(rid, Some(Headers::new()));
                    self.requests.remove(&id);
                }
                _ => {
                    let _ = self.conn.finish(rid, None);
                    self.requests.remove(&id);
                }
            }
            return;
        }
        match kind % 4 {
            0 | 1 => {
                let body = vec![b'b'; usize::from(kind) * 3];
                let _ = self.conn.send_response(
                    rid,
                    Response::new(200 + u16::from(kind % 7))
                        .header("X-Id", tag)
                        .with_body(body),
                );
                self.requests.remove(&id);
            }
            2 => {
                let mut response = Response::new(200).header("X-Id", tag);
                if kind & 0x40 != 0 {
                    response = response.header("Content-Length", (u32::from(kind) * 2).to_string());
                }
                if self.conn.send_head(rid, response).is_ok() {
                    req.streaming = true;
                } else {
                    self.requests.remove(&id);
                }
            }
            _ => {
                // Give up on the body, answer with an error.
                self.conn.discard_body(rid);
                let _ = self
                    .conn
                    .send_response(rid, Response::error(413).header("X-Id", tag));
                self.requests.remove(&id);
            }
        }
    }

    fn release(&mut self, pick: u8) {
        let count = self.requests.len().max(1);
        let Some((&id, req)) = self.requests.iter_mut().nth(usize::from(pick) % count) else {
            return;
        };
        let n = std::mem::take(&mut req.unreleased);
        self.body_outstanding -= n;
        self.conn.release_body(RequestId(id), n);
        self.conn.continue_body(RequestId(id));
    }

    /// Checks what was written: a sequence of responses whose `X-Id`s strictly increase.
    fn check_wire(&self) {
        let limits = H1Limits::default();
        let mut at = 0;
        let mut last: Option<u64> = None;
        while at < self.wire.len() {
            let rest = &self.wire[at..];
            let parsed = match parse_response(rest, &limits, &Method::Get) {
                Ok(Status::Complete(parsed)) => parsed,
                other => panic!("unparsable output at {at}: {other:?}"),
            };
            at += parsed.consumed;
            if parsed.head.status == 100 {
                continue;
            }
            let Some(id) = parsed
                .head
                .headers
                .get_str("x-id")
                .map(|v| v.parse::<u64>().expect("an id"))
            else {
                // An error reply of the machine's own: the connection ends after it.
                assert!(self.closed.is_some(), "an error reply without a close");
                return;
            };
            if let Some(last) = last {
                assert!(id > last, "answer {id} after {last}: out of order");
            }
            last = Some(id);
            if self.methods.get(&id) == Some(&Method::Head) {
                continue;
            }
            let mut decoder = BodyDecoder::new(parsed.body, &limits);
            loop {
                let step = match decoder.decode(&self.wire[at..]) {
                    Ok(step) => step,
                    Err(e) => panic!("bad body framing of answer {id}: {e}"),
                };
                at += step.consumed;
                if step.finished || step.consumed == 0 {
                    break;
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, script @ ..] = data else {
        return;
    };
    let config = config(flags & 1 == 1);
    let mut h = Harness {
        limits: config.limits.clone(),
        body_buffer: config.body_buffer,
        conn: ServerConn::new(config),
        now: Instant::now(),
        requests: BTreeMap::new(),
        methods: BTreeMap::new(),
        wire: Vec::new(),
        closed: None,
        body_outstanding: 0,
        reads_while_paused: 0,
    };
    h.conn.handle_connected(h.now);
    let mut ops: VecDeque<u8> = script.iter().copied().collect();
    while let Some(op) = ops.pop_front() {
        let arg = ops.pop_front().unwrap_or(0);
        match op % 10 {
            // Feed `arg` bytes of the script as input.
            0..=2 => {
                let n = usize::from(arg).min(ops.len()).min(MAX_FEED);
                let piece: Vec<u8> = ops.drain(..n).collect();
                // As on a real transport: while the machine does not want input, one read
                // already in flight still arrives; later ones wait in the kernel.
                if h.conn.wants_input() {
                    h.reads_while_paused = 0;
                }
                if h.closed.is_none() && h.reads_while_paused < 1 {
                    if !h.conn.wants_input() {
                        h.reads_while_paused += 1;
                    }
                    h.conn.handle_input(&piece, h.now);
                }
            }
            // Time passes: `arg` seconds, then the machine's deadline if asked.
            3 => {
                h.now += Duration::from_secs(u64::from(arg) % 40);
                if h.conn.poll_timeout().is_some_and(|t| t <= h.now) {
                    h.conn.handle_timeout(h.now);
                }
            }
            4 | 5 => {
                let kind = ops.pop_front().unwrap_or(0);
                h.answer(arg, kind);
            }
            6 => h.release(arg),
            7 => h.conn.handle_writable(arg & 1 == 1, h.now),
            8 => {
                if h.closed.is_none() {
                    h.conn.handle_eof(h.now);
                }
            }
            _ => match arg % 3 {
                0 => h.conn.handle_shutdown(h.now),
                1 => {
                    if let Some(&id) = h.requests.keys().next() {
                        h.conn.discard_body(RequestId(id));
                    }
                }
                _ => {
                    // A timeout call before any deadline must change nothing harmful.
                    h.conn.handle_timeout(h.now);
                }
            },
        }
        h.pump();
        // A machine that asks for a deadline in the past would spin its driver.
        if let Some(deadline) = h.conn.poll_timeout()
            && deadline <= h.now
        {
            h.conn.handle_timeout(h.now);
            h.pump();
            assert!(
                h.conn.poll_timeout().is_none_or(|d| d > h.now),
                "deadline stays in the past after handle_timeout"
            );
        }
    }
    h.check_wire();
});
