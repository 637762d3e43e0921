//! Fuzz target for the POP3 server machine: a script of input chunks (split anywhere),
//! time passing, application answers (login listings or refusals, message bytes or read
//! errors, update outcomes, given at any time, also when not asked), the peer's end and
//! shutdowns. Asserts: no panic; every line sent ends in CRLF; single-line answers start
//! with `+OK` or `-ERR`; at most one event outstanding; an Update only after a login, with
//! indexes inside the listing; nothing written after the close.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::cred::CredError;
use ringwork_protocols::kit::Machine;
use ringwork_protocols::mail::pop3::{MessageInfo, Pop3Config, Pop3Event, Pop3Server};

fuzz_target!(|data: &[u8]| {
    let [flags, script @ ..] = data else { return };
    let mut config = Pop3Config::default();
    config.max_line = 64;
    config.stls = flags & 1 != 0;
    config.plaintext_login = flags & 2 != 0;
    let mut server = Pop3Server::new(config, flags & 4 != 0);
    let mut now = Instant::now();
    server.handle_connected(now);
    let mut out = server
        .poll_transmit(now)
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut closed = false;
    let mut pending: Option<Pop3Event> = None;
    let mut listed = 0usize;
    let mut rest = script;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 8 {
            0..=3 => {
                let len = usize::from(op / 8).min(rest.len());
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                server.handle_input(chunk, now);
            }
            4 => {
                now += Duration::from_secs(u64::from(op / 8) * 30);
                server.handle_timeout(now);
            }
            5 => match pending.take() {
                Some(Pop3Event::Login(_)) => {
                    if op & 8 != 0 {
                        listed = usize::from(op / 16);
                        let listing = (0..listed)
                            .map(|i| MessageInfo {
                                uid: format!("u{i}"),
                                size: i as u64 * 7,
                            })
                            .collect();
                        server.login_result(Ok(listing));
                    } else {
                        server.login_result(Err(CredError::Unauthorized));
                    }
                }
                Some(Pop3Event::Retrieve { index }) => {
                    assert!(index < listed);
                    let text: &'static [u8] = b"A: b\r\n.\r\n\r\n.x\nline\r\n..\r\nlast";
                    server.message(if op & 8 != 0 {
                        Ok(Bytes::from_static(text))
                    } else {
                        Err("x".into())
                    });
                }
                Some(Pop3Event::Update { deleted }) => {
                    assert!(deleted.iter().all(|&i| i < listed));
                    server.updated(if op & 8 != 0 { Ok(()) } else { Err("x".into()) });
                }
                Some(Pop3Event::StartTls) | None => {
                    server.updated(Ok(()));
                    server.message(Ok(Bytes::new()));
                    server.login_result(Ok(Vec::new()));
                }
            },
            6 => server.handle_eof(now),
            _ => server.handle_shutdown(now),
        }
        while let Some(bytes) = server.poll_transmit(now) {
            assert!(!closed, "a write after the close");
            out.extend_from_slice(&bytes);
        }
        while let Some(event) = server.poll_event() {
            if matches!(event, Pop3Event::StartTls) {
                continue;
            }
            assert!(pending.is_none(), "two decisions outstanding");
            pending = Some(event);
        }
        if server.poll_close().is_some() {
            closed = true;
        }
    }
    assert!(out.is_empty() || out.ends_with(b"\r\n"));
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "{line:?}");
    }
    assert!(out.starts_with(b"+OK"));
});
