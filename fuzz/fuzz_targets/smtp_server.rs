//! Fuzz target for the SMTP server machine: a script of input chunks (split anywhere),
//! time passing, application answers (recipient verdicts, credential results, delivery
//! outcomes, given at any time, also when not asked), the peer's end and shutdowns.
//! Asserts: no panic; every reply line is a three-digit code followed by ' ' or '-' and
//! ends in CRLF; at most one event outstanding; nothing written after the close; the held
//! input stays bounded by the line limit plus one read.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::cred::{AvatarId, CredError};
use ringwork_protocols::kit::{Close, Machine};
use ringwork_protocols::mail::smtp::{RcptVerdict, SmtpConfig, SmtpEvent, SmtpServer};

fuzz_target!(|data: &[u8]| {
    let [flags, script @ ..] = data else { return };
    let mut config = SmtpConfig::default();
    config.max_line = 64;
    config.max_message_size = 256;
    config.max_recipients = 3;
    config.starttls = flags & 1 != 0;
    config.auth = flags & 2 != 0;
    let mut server = SmtpServer::new(config, flags & 4 != 0);
    let start = Instant::now();
    let mut now = start;
    server.handle_connected(now);
    let mut out = Vec::new();
    let mut closed = false;
    let mut pending: Option<SmtpEvent> = None;
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
                now += Duration::from_secs(u64::from(op / 8) * 20);
                server.handle_timeout(now);
            }
            5 => match pending.take() {
                Some(SmtpEvent::Recipient { address, .. }) => {
                    let verdicts = [
                        RcptVerdict::Accept,
                        RcptVerdict::UnknownUser,
                        RcptVerdict::RelayDenied,
                        RcptVerdict::TryLater,
                        RcptVerdict::NoRelayRoute,
                    ];
                    server.recipient(&address, verdicts[usize::from(op / 8) % verdicts.len()]);
                }
                Some(SmtpEvent::Auth(_)) => server.auth_result(if op & 8 != 0 {
                    Ok(AvatarId("u".into()))
                } else {
                    Err(CredError::Unauthorized)
                }),
                Some(SmtpEvent::Message { data, .. }) => {
                    assert!(data.len() <= 256);
                    server.delivered(if op & 8 != 0 { Ok(()) } else { Err("x".into()) });
                }
                Some(SmtpEvent::StartTls) | None => {
                    // Answers nobody asked for are ignored.
                    server.delivered(Ok(()));
                    server.auth_result(Ok(AvatarId("u".into())));
                    server.recipient("a@b", RcptVerdict::Accept);
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
            if matches!(event, SmtpEvent::StartTls) {
                continue;
            }
            assert!(pending.is_none(), "two decisions outstanding");
            pending = Some(event);
        }
        if let Some(close) = server.poll_close() {
            assert!(matches!(
                close,
                Close::Graceful | Close::Abort | Close::Write
            ));
            closed = true;
        }
        if let Some(at) = server.poll_timeout() {
            assert!(at >= start);
        }
    }
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "{line:?}");
        assert!(
            line.len() >= 5 && line[..3].iter().all(u8::is_ascii_digit),
            "{line:?}"
        );
        assert!(
            line[3] == b' ' || line[3] == b'-' || line == b"334 \r\n",
            "{line:?}"
        );
    }
});
