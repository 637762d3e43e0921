//! Fuzz target for the SMTP client: the reply parser on raw bytes, then the session machine
//! driven by a script of server bytes (split anywhere), time passing, TLS upgrades, queued
//! messages and QUIT at any time. Asserts: no panic; the parser takes at most its input and
//! yields codes 200..=599 with at least one line; every queued message gets exactly one
//! `Sent` with one result per recipient; exactly one `Closed`, followed only by the `Sent`
//! of messages queued after it; nothing written after the close.
#![no_main]

use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::kit::{Machine, Status};
use ringwork_protocols::mail::smtp::client::{
    ClientConfig, ClientEvent, OutgoingMessage, ReplyLimits, SmtpClientConn, SmtpCredentials,
    TlsMode, parse_reply,
};

fuzz_target!(|data: &[u8]| {
    let limits = ReplyLimits::default();
    if let Ok(Status::Complete(parsed)) = parse_reply(data, limits) {
        assert!(parsed.consumed <= data.len());
        assert!((200..=599).contains(&parsed.value.code));
        assert!(!parsed.value.lines.is_empty());
    }
    let [flags, script @ ..] = data else { return };
    let mut config = ClientConfig::default();
    config.tls = match flags % 3 {
        0 => TlsMode::Off,
        1 => TlsMode::Opportunistic,
        _ => TlsMode::Required,
    };
    if flags & 4 != 0 {
        config.credentials = Some(SmtpCredentials {
            username: "u".into(),
            password: "p".into(),
        });
        config.dangerous_auth_without_tls = flags & 8 != 0;
    }
    let mut client = SmtpClientConn::new(config, flags & 16 != 0);
    let mut now = Instant::now();
    client.handle_connected(now);
    let mut queued = 0usize;
    let mut recipients = Vec::new();
    let mut sent = Vec::new();
    let mut closed = 0usize;
    let mut after_closed = false;
    let mut close_polled = false;
    let mut rest = script;
    let mut drain = |client: &mut SmtpClientConn, now: Instant| {
        while let Some(bytes) = client.poll_transmit(now) {
            assert!(!close_polled, "transmit after the close");
            let _ = bytes;
        }
        while let Some(event) = client.poll_event() {
            // Only a message queued after the end may still be reported (deferred).
            assert!(
                !after_closed || matches!(event, ClientEvent::Sent(_)),
                "event after Closed"
            );
            match event {
                ClientEvent::Sent(results) => sent.push(results.len()),
                ClientEvent::Closed(_) => {
                    closed += 1;
                    after_closed = true;
                }
                ClientEvent::StartTls => client.tls_started(),
                ClientEvent::Ready(_) => {}
            }
        }
        while let Some(bytes) = client.poll_transmit(now) {
            assert!(!close_polled, "transmit after the close");
            let _ = bytes;
        }
        if client.poll_close().is_some() {
            close_polled = true;
        }
    };
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 8 {
            0..=3 => {
                let len = usize::from(op / 8).min(rest.len());
                let (chunk, tail) = rest.split_at(len);
                rest = tail;
                client.handle_input(chunk, now);
            }
            4 => {
                now += Duration::from_secs(u64::from(op / 8) * 20);
                client.handle_timeout(now);
            }
            5 => {
                let n = usize::from(op / 8 % 4);
                let to: Vec<String> = (0..n).map(|i| format!("r{i}@x")).collect();
                recipients.push(n);
                queued += 1;
                client.send(OutgoingMessage {
                    from: "s@x".into(),
                    to,
                    data: Bytes::from(vec![
                        if op & 64 != 0 { 0xe9 } else { b'.' };
                        usize::from(op / 4)
                    ]),
                });
            }
            6 => client.quit(),
            _ => client.handle_eof(now),
        }
        drain(&mut client, now);
    }
    client.handle_lost(now);
    drain(&mut client, now);
    assert_eq!(sent.len(), queued, "one Sent per message");
    assert_eq!(sent, recipients, "one result per recipient");
    assert_eq!(closed, 1, "exactly one Closed");
});
