//! Fuzz target for the whole HTTP/1.1 client connection (`ClientConn`): server bytes split
//! arbitrarily, ends of stream, time passing, pauses, streamed uploads, closes and aborts,
//! and new requests whenever the connection says it is idle.
//!
//! Asserts: no panic; per exchange the events come as Head, Data*, then exactly one End or
//! Failed (or just Failed), never two endings and nothing after one; an exchange ended
//! reusable leaves the connection idle; nothing is transmitted after the close; a deadline
//! handled does not stay in the past.
//!
//! Input: `[flags, script...]`, a script of operations (see the match below).
#![no_main]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::client::{
    ClientConn, ClientConnConfig, ClientEvent, OutgoingRequest,
};
use ringwork_protocols::http::proto::{H1Limits, Method};
use ringwork_protocols::kit::{Close, Machine};

/// Where the current exchange's events stand.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Seen {
    None,
    Head,
    Ended,
}

fn request(kind: u8) -> OutgoingRequest {
    let (method, head, streamed) = match kind % 4 {
        0 => (Method::Get, "GET / HTTP/1.1\r\nHost: t\r\n\r\n", None),
        1 => (Method::Head, "HEAD / HTTP/1.1\r\nHost: t\r\n\r\n", None),
        2 => (
            Method::Post,
            "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            Some(None),
        ),
        _ => (
            Method::Put,
            "PUT / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n",
            Some(Some(10)),
        ),
    };
    OutgoingRequest {
        method,
        head: Bytes::from_static(head.as_bytes()),
        body: Bytes::new(),
        wants_close: kind & 0x10 != 0,
        streamed,
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, script @ ..] = data else {
        return;
    };
    let mut config = ClientConnConfig::default();
    config.response_timeout = Duration::from_secs(10);
    config.body_timeout = Duration::from_secs(10);
    config.idle_timeout = Duration::from_secs(30);
    if flags & 1 == 1 {
        let mut limits = H1Limits::default();
        limits.max_head = 128;
        limits.max_headers = 4;
        limits.max_body = 100;
        config.limits = limits;
    }
    let mut conn = ClientConn::new(config);
    let mut now = Instant::now();
    conn.handle_connected(now);
    let mut seen = Seen::Ended;
    let mut closed: Option<Close> = None;
    let mut ops: VecDeque<u8> = script.iter().copied().collect();
    while let Some(op) = ops.pop_front() {
        let arg = ops.pop_front().unwrap_or(0);
        match op % 9 {
            0..=2 => {
                let n = usize::from(arg).min(ops.len());
                let piece: Vec<u8> = ops.drain(..n).collect();
                conn.handle_input(&piece, now);
            }
            3 => {
                if conn.is_idle() {
                    conn.send_request(request(arg))
                        .expect("an idle connection takes a request");
                    seen = Seen::None;
                } else {
                    assert!(
                        conn.send_request(request(arg)).is_err(),
                        "two exchanges at once"
                    );
                }
            }
            4 => {
                let _ = conn.send_body(Bytes::from(vec![b'u'; usize::from(arg % 12)]));
            }
            5 => {
                let _ = conn.finish_body();
            }
            6 => {
                now += Duration::from_secs(u64::from(arg % 40));
                conn.handle_timeout(now);
            }
            7 => match arg % 5 {
                0 => conn.handle_eof(now),
                1 => conn.set_paused(true),
                2 => conn.set_paused(false),
                3 => conn.close(),
                _ => conn.abort(),
            },
            _ => match arg % 3 {
                0 => conn.handle_writable(arg & 0x10 != 0, now),
                1 => conn.handle_shutdown(now),
                _ => conn.handle_lost(now),
            },
        }
        while let Some(event) = conn.poll_event() {
            match event {
                ClientEvent::Head(_) => {
                    assert_eq!(seen, Seen::None, "a head out of place");
                    seen = Seen::Head;
                }
                ClientEvent::Data(_) => assert_eq!(seen, Seen::Head, "data without a head"),
                ClientEvent::End { reusable, .. } => {
                    assert_eq!(seen, Seen::Head, "an end without a head");
                    seen = Seen::Ended;
                    if reusable {
                        assert!(conn.is_idle(), "reusable but not idle");
                    }
                }
                ClientEvent::Failed { .. } => {
                    assert_ne!(seen, Seen::Ended, "a failure after the end");
                    seen = Seen::Ended;
                }
                _ => {}
            }
        }
        while let Some(bytes) = conn.poll_transmit(now) {
            assert!(closed.is_none(), "{} bytes after the close", bytes.len());
        }
        if let Some(close) = conn.poll_close() {
            assert!(closed.is_none(), "close asked twice");
            closed = Some(close);
        }
        if let Some(deadline) = conn.poll_timeout()
            && deadline <= now
        {
            conn.handle_timeout(now);
            assert!(
                conn.poll_timeout().is_none_or(|d| d > now),
                "deadline stays in the past"
            );
            // Whatever the timeout produced is checked on the next round.
        }
    }
});
