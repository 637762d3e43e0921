//! Fuzz target for the IRC server's connection machine (`irc::proto::conn::ServerConn`),
//! driven by a script: input cut anywhere, time passing (keep-alive, registration and flood
//! deadlines), writability changes, end of input, the network's answers to a registration
//! (granted or refused), lines delivered to the client. Asserts: no panic; every line the
//! machine sends parses as a message and fits the limits; at most one `Quit` event and no
//! event after it; nothing sent after the close; a `Register` is answered before the next
//! one (the machine holds lines while its claim is out).
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::irc::proto::message::{MAX_LINE, MAX_TAGS, Message};
use ringwork_protocols::irc::proto::{ConnEvent, Delivery, IrcConfig, ServerConn};
use ringwork_protocols::kit::{Close, Machine};

fuzz_target!(|data: &[u8]| {
    let mut config = IrcConfig::default();
    config.password = data
        .first()
        .filter(|b| *b & 1 == 1)
        .map(|_| "pw".to_owned());
    config.max_sendq = 4096;
    let mut conn = ServerConn::new(Arc::new(config), "127.0.0.1");
    let start = Instant::now();
    let mut now = start;
    conn.handle_connected(now);
    let mut quit = false;
    let mut closed = false;
    let mut claim: Option<String> = None;
    let mut out = Vec::new();
    let mut rest = data.get(1..).unwrap_or_default();
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        match op % 8 {
            0..=2 => {
                let n = usize::from(rest.first().copied().unwrap_or(0)).min(rest.len());
                let (chunk, tail) = rest.split_at(n);
                conn.handle_input(chunk, now);
                rest = tail;
            }
            3 => {
                let secs = u64::from(rest.first().copied().unwrap_or(1));
                rest = rest.get(1..).unwrap_or_default();
                now += Duration::from_millis(secs * 250);
                if conn.poll_timeout().is_some_and(|at| at <= now) {
                    conn.handle_timeout(now);
                }
            }
            4 => conn.handle_writable(op & 0x10 != 0, now),
            5 => {
                if let Some(nick) = claim.take() {
                    if op & 0x10 != 0 {
                        conn.registered(&nick);
                    } else {
                        conn.nick_rejected(&nick);
                    }
                }
            }
            6 => conn.deliver(&Delivery {
                line: bytes::Bytes::from_static(b":a!b@c PRIVMSG x :hello\r\n"),
                time: Some("2026-12-07T06:00:00.000Z".into()),
                client_tags: Some("+typing=active".into()),
            }),
            _ => {
                if op & 0x10 != 0 {
                    conn.handle_eof(now);
                } else {
                    conn.handle_lost(now);
                }
            }
        }
        while let Some(event) = conn.poll_event() {
            assert!(!quit, "an event after Quit: {event:?}");
            match event {
                ConnEvent::Register { nick, .. } => {
                    assert!(claim.is_none(), "a second Register before the answer");
                    claim = Some(nick);
                }
                ConnEvent::Quit { .. } => quit = true,
                ConnEvent::Command(message) => assert!(conn.is_registered(), "{message:?}"),
            }
        }
        while let Some(bytes) = conn.poll_transmit(now) {
            assert!(!closed, "a transmit after the close");
            out.extend_from_slice(&bytes);
        }
        if let Some(close) = conn.poll_close() {
            assert!(matches!(close, Close::Graceful | Close::Abort));
            closed = true;
        }
        // Every whole line sent parses and fits.
        while let Some(at) = out.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = out.drain(..=at).collect();
            assert!(line.len() <= MAX_LINE + MAX_TAGS, "{}", line.len());
            let line = &line[..line.len() - 1];
            let line = line.strip_suffix(b"\r").expect("lines end with CRLF");
            Message::parse(line)
                .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(line)));
        }
    }
});
