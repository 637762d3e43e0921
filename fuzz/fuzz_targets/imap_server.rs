//! Fuzz target for the IMAP server machine and its command parser: a script of input
//! chunks (split anywhere: lines, synchronizing and non-synchronizing literals), time
//! passing, application answers (logins accepted or refused, responses that select or
//! deselect, partial FETCH answers, pushes while idling, given at any time, also when
//! not asked), transport backpressure, the peer's end and shutdowns. Asserts: no panic;
//! every line sent ends in CRLF (literals aside: the script's answers carry none); at most
//! one decision outstanding; no Request before a login; nothing written after the close;
//! the greeting comes first.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::cred::{AvatarId, CredError};
use ringwork_protocols::kit::Machine;
use ringwork_protocols::mail::imap::{
    ImapConfig, ImapEvent, ImapServer, Response, Selection, Status,
};

fuzz_target!(|data: &[u8]| {
    let [flags, script @ ..] = data else { return };
    let mut config = ImapConfig::default();
    config.max_line = 96;
    config.max_literal = 300;
    config.starttls = flags & 1 != 0;
    config.plaintext_login = flags & 2 != 0;
    let mut server = ImapServer::new(config, flags & 4 != 0);
    let mut now = Instant::now();
    server.handle_connected(now);
    let mut out = server
        .poll_transmit(now)
        .map(|b| b.to_vec())
        .unwrap_or_default();
    let mut closed = false;
    let mut pending: Option<ImapEvent> = None;
    let mut logged_in = false;
    let mut rest = script;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 10 {
            0..=3 => {
                let len = usize::from(op / 10).min(rest.len());
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                server.handle_input(chunk, now);
            }
            4 => {
                now += Duration::from_secs(u64::from(op / 10) * 60);
                server.handle_timeout(now);
            }
            5 | 6 => match pending.take() {
                Some(ImapEvent::Login(_)) => {
                    if op & 16 != 0 {
                        logged_in = true;
                        server.login_result(Ok(AvatarId("u".into())));
                    } else {
                        server.login_result(Err(CredError::Unauthorized));
                    }
                }
                Some(ImapEvent::Request { .. } | ImapEvent::More | ImapEvent::IdleDone) => {
                    if op % 10 == 6 {
                        server.respond_part(Bytes::from_static(b"* 1 FETCH (UID 1)\r\n"));
                    } else {
                        let mut response = Response::new(
                            &b"* 1 EXISTS\r\n"[..],
                            [Status::Ok, Status::No, Status::Bad][usize::from(op / 16) % 3],
                            "done",
                        );
                        response.selection =
                            [Selection::Keep, Selection::Selected, Selection::None]
                                [usize::from(op / 48) % 3];
                        server.respond(response);
                    }
                }
                Some(ImapEvent::Idle | ImapEvent::StartTls) | None => {
                    server.unsolicited(b"* 2 EXISTS\r\n");
                    server.respond(Response::new(Bytes::new(), Status::Ok, "stray"));
                    server.login_result(Ok(AvatarId("stray".into())));
                }
            },
            7 => server.handle_writable(op & 16 != 0, now),
            8 => server.handle_eof(now),
            _ => server.handle_shutdown(now),
        }
        while let Some(bytes) = server.poll_transmit(now) {
            assert!(!closed, "a write after the close");
            out.extend_from_slice(&bytes);
        }
        while let Some(event) = server.poll_event() {
            match event {
                ImapEvent::StartTls => continue,
                ImapEvent::Idle => {
                    assert!(logged_in, "IDLE before a login");
                    continue;
                }
                ImapEvent::Request { .. } => assert!(logged_in, "a Request before a login"),
                _ => {}
            }
            assert!(pending.is_none(), "two decisions outstanding");
            pending = Some(event);
        }
        if server.poll_close().is_some() {
            closed = true;
        }
    }
    assert!(out.starts_with(b"* OK [CAPABILITY IMAP4rev1"));
    assert!(out.is_empty() || out.ends_with(b"\r\n"));
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "{line:?}");
    }
});
