//! The SMTP server machine against scripted clients (RawPeer), no reactor.

use std::time::Duration;

use super::*;
use crate::kit::sim::{Pair, RawPeer};

fn config() -> SmtpConfig {
    SmtpConfig {
        hostname: "mx.test".into(),
        max_message_size: 100,
        max_recipients: 2,
        starttls: true,
        auth: true,
        ..SmtpConfig::default()
    }
}

fn pair(config: SmtpConfig, tls: bool) -> Pair<RawPeer, SmtpServer> {
    let mut pair = Pair::new(RawPeer::new(), SmtpServer::new(config, tls));
    pair.drive();
    pair
}

/// Sends `script`, answers events as a simple application would (alice@ local, others
/// relayed only when authenticated, password "pw"), and returns the reply text and events.
fn talk(pair: &mut Pair<RawPeer, SmtpServer>, script: &str) -> (String, Vec<String>) {
    pair.client.send(script.as_bytes());
    let mut seen = Vec::new();
    for _ in 0..100 {
        pair.drive();
        let Some(event) = pair.server.poll_event() else {
            break;
        };
        match event {
            SmtpEvent::Recipient { address, user } => {
                seen.push(format!("rcpt {address}"));
                let verdict = if address.ends_with("@mx.test") {
                    if address.starts_with("alice@") {
                        RcptVerdict::Accept
                    } else {
                        RcptVerdict::UnknownUser
                    }
                } else if user.is_some() {
                    RcptVerdict::Accept
                } else {
                    RcptVerdict::RelayDenied
                };
                pair.server.recipient(&address, verdict);
            }
            SmtpEvent::Auth(Credentials::UsernamePassword { username, password }) => {
                seen.push(format!("auth {username}"));
                let ok = password == b"pw";
                pair.server.auth_result(if ok {
                    Ok(AvatarId(username))
                } else {
                    Err(CredError::Unauthorized)
                });
            }
            SmtpEvent::Message { envelope, data } => {
                seen.push(format!(
                    "message from={} to={} data={:?}",
                    envelope.from,
                    envelope.to.join(","),
                    String::from_utf8_lossy(&data)
                ));
                pair.server.delivered(Ok(()));
            }
            SmtpEvent::StartTls => seen.push("starttls".into()),
        }
    }
    pair.drive();
    (
        String::from_utf8_lossy(&pair.client.take_received()).into_owned(),
        seen,
    )
}

fn codes(text: &str) -> Vec<&str> {
    text.lines().map(|l| &l[..l.len().min(4)]).collect()
}

#[test]
fn greets_and_delivers_a_pipelined_transaction_with_dot_stuffing() {
    let mut pair = pair(config(), false);
    assert_eq!(
        pair.client.take_received(),
        b"220 mx.test ESMTP ringwork\r\n"
    );
    let (text, events) = talk(
        &mut pair,
        "EHLO client.test\r\nMAIL FROM:<bob@x.test> SIZE=20 BODY=8BITMIME\r\nRCPT TO:<alice@mx.test>\r\nDATA\r\n\
         Subject: hi\r\n\r\n..dot\r\n.\r\nQUIT\r\n",
    );
    assert!(text.starts_with("250-mx.test\r\n250-SIZE 100\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"), "{text}");
    assert!(!text.contains("AUTH"), "no AUTH before TLS: {text}");
    assert_eq!(codes(&text)[6..], ["250 ", "250 ", "354 ", "250 ", "221 "]);
    assert_eq!(
        events,
        [
            "rcpt alice@mx.test",
            "message from=bob@x.test to=alice@mx.test data=\"Subject: hi\\r\\n\\r\\n.dot\\r\\n\""
        ]
    );
    assert!(pair.client.saw_eof(), "QUIT closes");
}

#[test]
fn the_250_after_data_waits_for_the_delivery() {
    let mut pair = pair(config(), false);
    pair.client.take_received();
    pair.client
        .send(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@mx.test>\r\nDATA\r\nx\r\n.\r\nNOOP\r\n");
    pair.drive();
    let Some(SmtpEvent::Recipient { address, .. }) = pair.server.poll_event() else {
        panic!()
    };
    pair.server.recipient(&address, RcptVerdict::Accept);
    pair.drive();
    assert!(matches!(
        pair.server.poll_event(),
        Some(SmtpEvent::Message { .. })
    ));
    pair.drive();
    let text = String::from_utf8(pair.client.take_received()).unwrap();
    assert_eq!(
        codes(&text),
        ["250 ", "250 ", "250 ", "354 "],
        "nothing after 354 until delivered"
    );
    pair.advance(Duration::from_secs(3600));
    assert!(
        pair.client.take_received().is_empty(),
        "no timeout while the delivery runs"
    );
    pair.server.delivered(Err("disk full".into()));
    pair.drive();
    let text = String::from_utf8(pair.client.take_received()).unwrap();
    assert_eq!(codes(&text), ["451 ", "250 "]);
}

#[test]
fn bad_commands_get_500_501_503_and_the_session_goes_on() {
    let mut pair = pair(config(), false);
    pair.client.take_received();
    let (text, _) = talk(
        &mut pair,
        "FOO\r\nMAIL FROM:<a@b>\r\nEHLO\r\nHELO c\r\nRCPT TO:<alice@mx.test>\r\nMAIL FROM:a@b\r\nMAIL FROM:<a@b> X=1\r\n\
         DATA\r\nVRFY alice\r\nEXPN list\r\nMAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\nRSET\r\nNOOP\r\n",
    );
    assert_eq!(
        codes(&text),
        [
            "500 ", "503 ", "501 ", "250 ", "503 ", "501 ", "555 ", "503 ", "252 ", "502 ", "250 ",
            "503 ", "554 ", "250 ", "250 "
        ],
        "{text}"
    );
}

#[test]
fn relay_is_refused_and_limits_hold() {
    let mut pair = pair(config(), false);
    pair.client.take_received();
    let (text, events) = talk(
        &mut pair,
        "EHLO c\r\nMAIL FROM:<a@b> SIZE=101\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@elsewhere.test>\r\nRCPT TO:<bob@mx.test>\r\n\
         RCPT TO:<alice@mx.test>\r\nRCPT TO:<alice@mx.test>\r\nRCPT TO:<alice@mx.test>\r\nDATA\r\n",
    );
    assert_eq!(
        codes(&text)[6..],
        [
            "552 ", "250 ", "554 ", "550 ", "250 ", "250 ", "452 ", "354 "
        ],
        "{text}"
    );
    assert_eq!(events.len(), 4, "the 452 needs no decision");
    let big = format!(
        "{}\r\n.\r\nNOOP\r\n",
        "y".repeat(60) + "\r\n" + &"z".repeat(60)
    );
    let (text, events) = talk(&mut pair, &big);
    assert_eq!(codes(&text), ["552 ", "250 "], "{text}");
    assert!(events.is_empty());
}

#[test]
fn a_line_over_the_limit_and_a_silent_client_get_closed() {
    let mut pair = pair(
        SmtpConfig {
            max_line: 16,
            ..config()
        },
        false,
    );
    pair.client.take_received();
    pair.client.send(b"NOOP 0123456789abcdef\r\n");
    pair.drive();
    assert!(
        String::from_utf8(pair.client.take_received())
            .unwrap()
            .starts_with("500 5.5.2")
    );
    assert!(pair.client.saw_eof());

    let mut pair = pair_silent();
    pair.advance(Duration::from_secs(301));
    assert!(
        String::from_utf8(pair.client.take_received())
            .unwrap()
            .contains("421 4.4.2")
    );
    assert!(pair.client.saw_eof());
}

fn pair_silent() -> Pair<RawPeer, SmtpServer> {
    let mut pair = pair(config(), false);
    pair.client.take_received();
    pair
}

#[test]
fn starttls_discards_pipelined_input_and_resets_the_session() {
    let mut pair = pair(config(), false);
    pair.client.take_received();
    let (text, events) = talk(
        &mut pair,
        "EHLO c\r\nAUTH PLAIN AGFsaWNlAHB3\r\nSTARTTLS\r\nEHLO evil\r\nMAIL FROM:<injected@x>\r\n",
    );
    assert!(
        text.contains("538 5.7.11"),
        "AUTH refused in the clear: {text}"
    );
    assert!(text.ends_with("220 2.0.0 Ready to start TLS\r\n"), "{text}");
    assert_eq!(events, ["starttls"]);
    assert!(pair.server.is_tls());
    // The injected command was dropped: the first reply after the upgrade is NOOP's.
    let (text, _) = talk(&mut pair, "NOOP\r\n");
    assert_eq!(text, "250 2.0.0 OK\r\n");
    let (text, _) = talk(&mut pair, "MAIL FROM:<a@b>\r\nEHLO c\r\nSTARTTLS\r\n");
    assert!(text.starts_with("503 "), "{text}");
    assert!(
        text.contains("250-AUTH PLAIN LOGIN\r\n") || text.contains("250 AUTH PLAIN LOGIN\r\n"),
        "{text}"
    );
    assert!(!text.contains("STARTTLS\r\n250"), "{text}");
    assert!(
        text.ends_with("502 5.5.1 STARTTLS not available\r\n"),
        "{text}"
    );
}

#[test]
fn auth_plain_and_login_after_tls() {
    let mut pair = pair(config(), true);
    pair.client.take_received();
    // PLAIN with a wrong password, then LOGIN in steps, then relay is allowed.
    let (text, events) = talk(
        &mut pair,
        "EHLO c\r\nAUTH PLAIN AGFsaWNlAHdyb25n\r\nAUTH LOGIN\r\nYWxpY2U=\r\ncHc=\r\nAUTH PLAIN\r\nMAIL FROM:<alice@mx.test>\r\nRCPT TO:<x@elsewhere.test>\r\n",
    );
    let codes = codes(&text);
    assert_eq!(
        codes[codes.len() - 7..],
        ["535 ", "334 ", "334 ", "235 ", "503 ", "250 ", "250 "],
        "{text}"
    );
    assert_eq!(
        events,
        ["auth alice", "auth alice", "rcpt x@elsewhere.test"]
    );
    assert_eq!(pair.server.user(), Some(&AvatarId("alice".into())));

    let mut pair = self::pair(config(), true);
    pair.client.take_received();
    let (text, _) = talk(
        &mut pair,
        "EHLO c\r\nAUTH PLAIN\r\n*\r\nAUTH PLAIN !!\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\nAGFsaWNlAHB3\r\n",
    );
    assert_eq!(
        super::tests::codes(&text)[6..],
        ["334 ", "501 ", "501 ", "504 ", "334 ", "235 "],
        "{text}"
    );
}

#[test]
fn never_panics_on_junk_split_anywhere() {
    let script = b"EHLO a\r\nMAIL FROM:<\xff>\r\nRCPT TO:<>\r\nAUTH LOGIN =\r\n\r\n\0\r\nDATA\r\n\r\n.\r\nSTARTTLS x\r\n";
    for split in 0..script.len() {
        let mut pair = pair(config(), split % 2 == 0);
        pair.client.send(&script[..split]);
        pair.drive();
        while let Some(event) = pair.server.poll_event() {
            if let SmtpEvent::Auth(_) = event {
                pair.server.auth_result(Err(CredError::Unauthorized));
            }
        }
        pair.client.send(&script[split..]);
        pair.drive();
    }
}

#[test]
fn an_answer_after_the_peer_left_writes_nothing() {
    let mut pair = pair_silent();
    pair.client
        .send(b"HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@mx.test>\r\n");
    pair.drive();
    pair.client.take_received();
    let Some(SmtpEvent::Recipient { address, .. }) = pair.server.poll_event() else {
        panic!("a recipient to decide")
    };
    pair.server.handle_eof(pair.now());
    assert!(pair.server.poll_close().is_some());
    pair.server.recipient(&address, RcptVerdict::Accept);
    assert_eq!(pair.server.poll_transmit(pair.now()), None);
}
