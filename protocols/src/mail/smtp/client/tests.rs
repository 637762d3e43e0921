//! The SMTP client machine against the server machine (`Pair`, no reactor), scripted
//! servers (`RawPeer`) for odd replies, and the reply parser's table and split points.

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::cred::{AvatarId, CredError, Credentials};
use crate::kit::sim::{Pair, RawPeer, SimConfig};
use crate::kit::{Machine, Status};
use crate::mail::smtp::{RcptVerdict, SmtpConfig, SmtpEvent, SmtpServer};

fn server_config() -> SmtpConfig {
    SmtpConfig {
        hostname: "mx.test".into(),
        max_message_size: 1000,
        max_recipients: 10,
        starttls: true,
        auth: true,
        ..SmtpConfig::default()
    }
}

fn message(to: &[&str], data: &str) -> OutgoingMessage {
    OutgoingMessage {
        from: "bob@x.test".into(),
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        data: Bytes::from(data.to_owned()),
    }
}

/// What a run saw: client events in words, and the messages the server took.
#[derive(Default)]
struct Seen {
    client: Vec<String>,
    results: Vec<Vec<RecipientResult>>,
    closed: Option<Result<(), SmtpError>>,
    delivered: Vec<(Vec<String>, String)>,
}

/// Runs `client` against the server machine; the server's application accepts
/// `*@mx.test` except `nobody@` (550) and `later@` (451), passwords "pw", and answers
/// deliveries per `deliver`.
fn run_with(
    client: SmtpClientConn,
    server: SmtpConfig,
    link: SimConfig,
    deliver: impl Fn(&str) -> Result<(), String>,
) -> Seen {
    let mut pair = Pair::with_config(client, SmtpServer::new(server, false), link);
    let mut seen = Seen::default();
    let client_seen = std::cell::RefCell::new(Vec::new());
    pair.run(
        Duration::from_secs(3600),
        |client, event, _| match event {
            ClientEvent::StartTls => {
                client_seen.borrow_mut().push(ClientEvent::StartTls);
                client.tls_started();
            }
            other => client_seen.borrow_mut().push(other),
        },
        |server, event, _| match event {
            SmtpEvent::Recipient { address, .. } => {
                let verdict = match address.split('@').next() {
                    Some("nobody") => RcptVerdict::UnknownUser,
                    Some("later") => RcptVerdict::TryLater,
                    _ if address.ends_with("@mx.test") => RcptVerdict::Accept,
                    _ => RcptVerdict::RelayDenied,
                };
                server.recipient(&address, verdict);
            }
            SmtpEvent::Auth(Credentials::UsernamePassword { username, password }) => {
                server.auth_result(if password == b"pw" {
                    Ok(AvatarId(username))
                } else {
                    Err(CredError::Unauthorized)
                });
            }
            SmtpEvent::Message { envelope, data } => {
                let text = String::from_utf8_lossy(&data).into_owned();
                let result = deliver(&text);
                if result.is_ok() {
                    seen.delivered.push((envelope.to, text));
                }
                server.delivered(result);
            }
            SmtpEvent::StartTls => {}
        },
    );
    for event in client_seen.into_inner() {
        match event {
            ClientEvent::StartTls => seen.client.push("starttls".into()),
            ClientEvent::Ready(ext) => seen.client.push(format!(
                "ready pipelining={} size={:?} auth={:?}",
                ext.pipelining, ext.size, ext.auth
            )),
            ClientEvent::Sent(results) => {
                seen.client.push("sent".into());
                seen.results.push(results);
            }
            ClientEvent::Closed(result) => {
                seen.client.push("closed".into());
                seen.closed = Some(result);
            }
        }
    }
    seen
}

fn run(client: SmtpClientConn, server: SmtpConfig) -> Seen {
    run_with(client, server, SimConfig::ideal(), |_| Ok(()))
}

fn statuses(results: &[RecipientResult]) -> Vec<(String, RecipientStatus)> {
    results
        .iter()
        .map(|r| (r.address.clone(), r.status))
        .collect()
}

fn tls_client(config: ClientConfig, messages: Vec<OutgoingMessage>) -> SmtpClientConn {
    let mut client = SmtpClientConn::new(config, false);
    for m in messages {
        client.send(m);
    }
    client.quit();
    client
}

#[test]
fn starttls_auth_and_two_pipelined_messages_with_per_recipient_results() {
    let config = ClientConfig {
        tls: TlsMode::Required,
        credentials: Some(SmtpCredentials {
            username: "alice".into(),
            password: "pw".into(),
        }),
        ..ClientConfig::default()
    };
    let client = tls_client(
        config,
        vec![
            message(
                &["alice@mx.test", "nobody@mx.test", "later@mx.test"],
                "Subject: one\n\n.dot line\n..two\nend",
            ),
            message(&["carol@mx.test"], "Subject: two\r\n\r\nbody\r\n"),
        ],
    );
    let seen = run(client, server_config());
    assert_eq!(
        seen.client,
        [
            "starttls",
            "ready pipelining=true size=Some(1000) auth=[\"PLAIN\", \"LOGIN\"]",
            "sent",
            "sent",
            "closed"
        ]
    );
    assert_eq!(seen.closed, Some(Ok(())));
    assert_eq!(
        statuses(&seen.results[0]),
        [
            ("alice@mx.test".into(), RecipientStatus::Delivered),
            ("nobody@mx.test".into(), RecipientStatus::Bounced),
            ("later@mx.test".into(), RecipientStatus::Deferred),
        ]
    );
    assert_eq!(seen.results[0][1].reply.as_ref().map(|r| r.code), Some(550));
    assert_eq!(seen.results[0][1].reason, "550 5.1.1 No such user here");
    assert_eq!(
        statuses(&seen.results[1]),
        [("carol@mx.test".into(), RecipientStatus::Delivered)]
    );
    // Dot-stuffing round trip, LF turned into CRLF, a final line end added.
    assert_eq!(
        seen.delivered,
        [
            (
                vec!["alice@mx.test".to_owned()],
                "Subject: one\r\n\r\n.dot line\r\n..two\r\nend\r\n".to_owned()
            ),
            (
                vec!["carol@mx.test".to_owned()],
                "Subject: two\r\n\r\nbody\r\n".to_owned()
            ),
        ]
    );
}

#[test]
fn auth_login_when_plain_is_not_offered() {
    let mut pair = Pair::new(
        tls_client(
            ClientConfig {
                tls: TlsMode::Off,
                credentials: Some(SmtpCredentials {
                    username: "alice".into(),
                    password: "pw".into(),
                }),
                dangerous_auth_without_tls: true,
                ..ClientConfig::default()
            },
            vec![],
        ),
        RawPeer::new(),
    );
    let expect = |pair: &mut Pair<SmtpClientConn, RawPeer>, reply: &str, want: &str| {
        pair.server.send(reply);
        pair.drive();
        assert_eq!(String::from_utf8_lossy(&pair.server.take_received()), want);
    };
    expect(&mut pair, "220 raw ESMTP\r\n", "EHLO localhost\r\n");
    expect(&mut pair, "250-raw\r\n250 AUTH LOGIN\r\n", "AUTH LOGIN\r\n");
    expect(&mut pair, "334 VXNlcm5hbWU6\r\n", "YWxpY2U=\r\n");
    expect(&mut pair, "334 UGFzc3dvcmQ6\r\n", "cHc=\r\n");
    expect(&mut pair, "235 ok\r\n", "QUIT\r\n");
    expect(&mut pair, "221 bye\r\n", "");
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(
        matches!(events.last(), Some(ClientEvent::Closed(Ok(())))),
        "{events:?}"
    );
}

#[test]
fn auth_is_refused_in_the_clear_and_bad_credentials_stop_the_session() {
    let credentials = Some(SmtpCredentials {
        username: "alice".into(),
        password: "pw".into(),
    });
    let clear = tls_client(
        ClientConfig {
            tls: TlsMode::Off,
            credentials: credentials.clone(),
            ..ClientConfig::default()
        },
        vec![message(&["alice@mx.test"], "x")],
    );
    let seen = run(clear, server_config());
    assert!(
        matches!(seen.closed, Some(Err(SmtpError::AuthUnavailable { .. }))),
        "{:?}",
        seen.closed
    );
    assert_eq!(
        statuses(&seen.results[0]),
        [("alice@mx.test".into(), RecipientStatus::Bounced)]
    );
    assert!(seen.delivered.is_empty());

    let wrong = tls_client(
        ClientConfig {
            tls: TlsMode::Required,
            credentials: Some(SmtpCredentials {
                username: "alice".into(),
                password: "nope".into(),
            }),
            ..ClientConfig::default()
        },
        vec![message(&["alice@mx.test"], "x")],
    );
    let seen = run(wrong, server_config());
    let Some(Err(SmtpError::Rejected { stage, reply })) = &seen.closed else {
        panic!("{:?}", seen.closed)
    };
    assert_eq!((*stage, reply.code), (Stage::Auth, 535));
    assert_eq!(
        reply.to_string(),
        "535 5.7.8 Authentication credentials invalid"
    );
}

#[test]
fn starttls_required_without_the_offer_sends_nothing() {
    let client = tls_client(
        ClientConfig {
            tls: TlsMode::Required,
            ..ClientConfig::default()
        },
        vec![message(&["alice@mx.test"], "x")],
    );
    let seen = run(
        client,
        SmtpConfig {
            starttls: false,
            ..server_config()
        },
    );
    assert_eq!(seen.closed, Some(Err(SmtpError::TlsRequired)));
    assert_eq!(seen.results[0][0].status, RecipientStatus::Bounced);
    assert!(seen.delivered.is_empty());
    // Opportunistic goes on in the clear.
    let client = tls_client(
        ClientConfig::default(),
        vec![message(&["alice@mx.test"], "x")],
    );
    let seen = run(
        client,
        SmtpConfig {
            starttls: false,
            ..server_config()
        },
    );
    assert_eq!(seen.closed, Some(Ok(())));
    assert_eq!(seen.delivered.len(), 1);
}

#[test]
fn size_is_honoured_before_sending_and_announced() {
    let big = "x".repeat(2000);
    let client = tls_client(
        ClientConfig::default(),
        vec![
            message(&["alice@mx.test"], &big),
            message(&["alice@mx.test"], "small"),
        ],
    );
    let seen = run(client, server_config());
    assert_eq!(seen.results[0][0].status, RecipientStatus::Bounced);
    assert!(
        seen.results[0][0].reason.contains("SIZE limit of 1000"),
        "{}",
        seen.results[0][0].reason
    );
    assert_eq!(seen.results[1][0].status, RecipientStatus::Delivered);
    assert_eq!(seen.delivered.len(), 1);
}

#[test]
fn a_failed_delivery_is_deferred_and_the_session_goes_on() {
    let client = tls_client(
        ClientConfig::default(),
        vec![
            message(&["alice@mx.test"], "fail"),
            message(&["alice@mx.test"], "ok"),
        ],
    );
    let seen = run_with(client, server_config(), SimConfig::ideal(), |text| {
        if text.starts_with("fail") {
            Err("disk full".into())
        } else {
            Ok(())
        }
    });
    assert_eq!(seen.results[0][0].status, RecipientStatus::Deferred);
    assert_eq!(seen.results[0][0].reply.as_ref().map(|r| r.code), Some(451));
    assert_eq!(seen.results[1][0].status, RecipientStatus::Delivered);
}

#[test]
fn relay_refusal_bounces_and_no_data_goes_out() {
    let client = tls_client(
        ClientConfig::default(),
        vec![message(&["x@elsewhere.test"], "x")],
    );
    let seen = run(client, server_config());
    assert_eq!(seen.results[0][0].status, RecipientStatus::Bounced);
    assert_eq!(seen.results[0][0].reply.as_ref().map(|r| r.code), Some(554));
    assert!(seen.delivered.is_empty());
    assert_eq!(seen.closed, Some(Ok(())));
}

#[test]
fn faulty_links_deliver_or_defer_every_recipient() {
    let seeds = SimConfig::seed_from_env().map_or(0..200, |s| s..s + 1);
    for seed in seeds {
        let client = tls_client(
            ClientConfig {
                tls: TlsMode::Opportunistic,
                timeouts: Timeouts::all(Duration::from_secs(30)),
                ..ClientConfig::default()
            },
            vec![
                message(&["alice@mx.test", "nobody@mx.test"], "one\n.\n"),
                message(&["carol@mx.test"], "two"),
            ],
        );
        let seen = run_with(
            client,
            server_config(),
            SimConfig::faulty(seed).with_breakage(),
            |_| Ok(()),
        );
        assert_eq!(seen.results.len(), 2, "seed {seed}: one Sent per message");
        assert!(seen.closed.is_some(), "seed {seed}: Closed");
        assert_eq!(
            seen.client.last().map(String::as_str),
            Some("closed"),
            "seed {seed}"
        );
        // Nothing the server took is reported as bounced, and what is reported delivered
        // was taken.
        for (i, results) in seen.results.iter().enumerate() {
            for r in results {
                let taken = seen.delivered.iter().any(|(to, text)| {
                    to.contains(&r.address) && text.starts_with(if i == 0 { "one" } else { "two" })
                });
                if r.status == RecipientStatus::Delivered {
                    assert!(taken, "seed {seed}: {r:?}");
                }
                if r.address == "nobody@mx.test" {
                    assert_ne!(r.status, RecipientStatus::Delivered, "seed {seed}");
                }
            }
        }
    }
}

/// Scripted servers: each step answers and checks what the client sent.
fn scripted(config: ClientConfig, messages: Vec<OutgoingMessage>) -> Pair<SmtpClientConn, RawPeer> {
    Pair::new(tls_client(config, messages), RawPeer::new())
}

fn step(pair: &mut Pair<SmtpClientConn, RawPeer>, reply: &str) -> String {
    pair.server.send(reply);
    pair.drive();
    String::from_utf8_lossy(&pair.server.take_received()).into_owned()
}

fn events(pair: &mut Pair<SmtpClientConn, RawPeer>) -> Vec<ClientEvent> {
    std::iter::from_fn(|| pair.client.poll_event()).collect()
}

#[test]
fn helo_fallback_without_pipelining_sends_one_command_at_a_time() {
    let mut pair = scripted(
        ClientConfig::default(),
        vec![message(&["a@x", "b@x"], "hi"), message(&["c@x"], "again")],
    );
    assert_eq!(step(&mut pair, "220 old\r\n"), "EHLO localhost\r\n");
    assert_eq!(step(&mut pair, "502 what\r\n"), "HELO localhost\r\n");
    assert_eq!(step(&mut pair, "250 old\r\n"), "MAIL FROM:<bob@x.test>\r\n");
    assert_eq!(step(&mut pair, "250 ok\r\n"), "RCPT TO:<a@x>\r\n");
    assert_eq!(step(&mut pair, "550 no\r\n"), "RCPT TO:<b@x>\r\n");
    assert_eq!(step(&mut pair, "250 ok\r\n"), "DATA\r\n");
    assert_eq!(step(&mut pair, "354 go\r\n"), "hi\r\n.\r\n");
    // The second message starts with RSET.
    assert_eq!(step(&mut pair, "250 queued\r\n"), "RSET\r\n");
    assert_eq!(step(&mut pair, "250 ok\r\n"), "MAIL FROM:<bob@x.test>\r\n");
    // MAIL refused: no RCPT, the message is reported, QUIT.
    assert_eq!(step(&mut pair, "451 busy\r\n"), "QUIT\r\n");
    let events = events(&mut pair);
    let sent: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Sent(r) => Some(statuses(r)),
            _ => None,
        })
        .collect();
    assert_eq!(
        sent,
        [
            vec![
                ("a@x".into(), RecipientStatus::Bounced),
                ("b@x".into(), RecipientStatus::Delivered)
            ],
            vec![("c@x".into(), RecipientStatus::Deferred)],
        ]
    );
}

#[test]
fn pipelined_commands_go_together_and_a_354_without_recipients_gets_a_lone_dot() {
    let mut pair = scripted(
        ClientConfig::default(),
        vec![message(&["a@x", "b@x"], "hi")],
    );
    step(&mut pair, "220 x\r\n");
    assert_eq!(
        step(
            &mut pair,
            "250-x\r\n250-PIPELINING\r\n250-SIZE\r\n250 8BITMIME\r\n"
        ),
        "MAIL FROM:<bob@x.test> SIZE=4\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n"
    );
    assert_eq!(
        step(&mut pair, "250 ok\r\n550 no\r\n550 no\r\n354 go\r\n"),
        ".\r\n"
    );
    assert_eq!(step(&mut pair, "554 no valid recipients\r\n"), "QUIT\r\n");
    let events = events(&mut pair);
    let Some(ClientEvent::Sent(results)) =
        events.iter().find(|e| matches!(e, ClientEvent::Sent(_)))
    else {
        panic!("{events:?}")
    };
    assert!(results.iter().all(|r| r.status == RecipientStatus::Bounced));
}

#[test]
fn eight_bit_needs_8bitmime_and_announces_it() {
    let mut pair = scripted(
        ClientConfig::default(),
        vec![
            message(&["a@x"], "caf\u{e9}"),
            message(&["a@x"], "caf\u{e9}"),
        ],
    );
    step(&mut pair, "220 x\r\n");
    assert_eq!(
        step(&mut pair, "250-x\r\n250 8BITMIME\r\n"),
        "MAIL FROM:<bob@x.test> BODY=8BITMIME\r\n"
    );
    let mut pair = scripted(
        ClientConfig::default(),
        vec![message(&["a@x"], "caf\u{e9}")],
    );
    step(&mut pair, "220 x\r\n");
    assert_eq!(step(&mut pair, "250 x\r\n"), "QUIT\r\n");
    let events = events(&mut pair);
    assert!(
        events.iter().any(|e| matches!(e, ClientEvent::Sent(r) if r[0].status == RecipientStatus::Bounced && r[0].reason.contains("8BITMIME"))),
        "{events:?}"
    );
}

#[test]
fn timeouts_per_command_defer_the_message() {
    let timeouts = Timeouts {
        data_term: Duration::from_secs(600),
        ..Timeouts::all(Duration::from_secs(60))
    };
    let mut pair = scripted(
        ClientConfig {
            timeouts,
            ..ClientConfig::default()
        },
        vec![message(&["a@x"], "hi")],
    );
    step(&mut pair, "220 x\r\n");
    step(&mut pair, "250 x\r\n");
    step(&mut pair, "250 ok\r\n");
    step(&mut pair, "250 ok\r\n");
    assert_eq!(step(&mut pair, "354 go\r\n"), "hi\r\n.\r\n");
    pair.advance(Duration::from_secs(300));
    assert!(
        events(&mut pair)
            .iter()
            .all(|e| !matches!(e, ClientEvent::Closed(_))),
        "10 minutes for the final reply"
    );
    pair.advance(Duration::from_secs(301));
    let events = events(&mut pair);
    let [
        ClientEvent::Sent(results),
        ClientEvent::Closed(Err(SmtpError::Timeout { stage, .. })),
    ] = &events[..]
    else {
        panic!("{events:?}")
    };
    assert_eq!(*stage, Stage::Transaction);
    assert_eq!(results[0].status, RecipientStatus::Deferred);
    assert!(
        pair.server.saw_reset()
            || pair.is_lost(crate::kit::sim::Side::Client)
            || pair.client.poll_close().is_none()
    );
}

#[test]
fn odd_replies_end_the_session_with_a_protocol_error() {
    for (reply, want) in [
        ("hello\r\n", "without a valid code"),
        ("220-a\r\n230 b\r\n", "changes code"),
        ("220x\r\n", "bad separator"),
    ] {
        let mut pair = scripted(ClientConfig::default(), vec![message(&["a@x"], "hi")]);
        step(&mut pair, reply);
        let events = events(&mut pair);
        let Some(ClientEvent::Closed(Err(error))) = events.last() else {
            panic!("{reply:?}: {events:?}")
        };
        assert!(error.to_string().contains(want), "{reply:?}: {error}");
        assert!(
            matches!(&events[0], ClientEvent::Sent(r) if r[0].status == RecipientStatus::Deferred)
        );
    }
    // A 421 between commands: the server is going away.
    let mut pair = Pair::new(
        SmtpClientConn::new(ClientConfig::default(), false),
        RawPeer::new(),
    );
    step(&mut pair, "220 x\r\n");
    step(&mut pair, "250 x\r\n");
    step(&mut pair, "421 4.4.2 going away\r\n");
    let seen = events(&mut pair);
    assert!(
        matches!(
            seen.last(),
            Some(ClientEvent::Closed(Err(SmtpError::Rejected {
                stage: Stage::Idle,
                ..
            })))
        ),
        "{seen:?}"
    );
    // A 554 greeting: no service here.
    let mut pair = scripted(ClientConfig::default(), vec![message(&["a@x"], "hi")]);
    assert_eq!(step(&mut pair, "554 no service\r\n"), "QUIT\r\n");
    let events = events(&mut pair);
    assert!(
        matches!(&events[0], ClientEvent::Sent(r) if r[0].status == RecipientStatus::Bounced),
        "{events:?}"
    );
}

#[test]
fn data_behind_the_starttls_220_is_refused() {
    let mut pair = scripted(ClientConfig::default(), vec![]);
    step(&mut pair, "220 x\r\n");
    assert_eq!(step(&mut pair, "250-x\r\n250 STARTTLS\r\n"), "STARTTLS\r\n");
    step(&mut pair, "220 go\r\n250 injected\r\n");
    let events = events(&mut pair);
    assert!(
        matches!(
            events.last(),
            Some(ClientEvent::Closed(Err(SmtpError::Protocol {
                stage: Stage::StartTls,
                ..
            })))
        ),
        "{events:?}"
    );
}

#[test]
fn addresses_that_would_inject_commands_are_refused() {
    let mut pair = scripted(
        ClientConfig::default(),
        vec![message(&["a@x>\r\nRCPT TO:<evil@y"], "hi")],
    );
    step(&mut pair, "220 x\r\n");
    assert_eq!(step(&mut pair, "250 x\r\n"), "QUIT\r\n");
}

#[test]
fn replies_parse_whole_and_at_every_split_point() {
    let limits = ReplyLimits::default();
    let cases: [(&[u8], u16, &[&str]); 4] = [
        (b"250 ok\r\n", 250, &["ok"]),
        (b"250\r\n", 250, &[""]),
        (b"250-a\r\n250-b c\r\n250 d\n", 250, &["a", "b c", "d"]),
        (b"550 5.1.1 no\r\n", 550, &["5.1.1 no"]),
    ];
    for (input, code, lines) in cases {
        for cut in 0..input.len() {
            assert_eq!(
                parse_reply(&input[..cut], limits),
                Ok(Status::Partial),
                "{input:?} cut {cut}"
            );
        }
        let Ok(Status::Complete(parsed)) = parse_reply(input, limits) else {
            panic!("{input:?}")
        };
        assert_eq!(parsed.consumed, input.len());
        assert_eq!(parsed.value.code, code);
        assert_eq!(parsed.value.lines, lines);
    }
    let reply = Reply {
        code: 550,
        lines: vec!["5.1.1 No such user".into()],
    };
    assert_eq!(reply.enhanced(), Some("5.1.1"));
    assert!(matches!(
        parse_reply(&[b'2'; 5000], limits),
        Err(ReplyError::LineTooLong { .. })
    ));
    let many = "250-x\r\n".repeat(200);
    assert!(matches!(
        parse_reply(many.as_bytes(), limits),
        Err(ReplyError::TooManyLines { .. })
    ));
    assert!(matches!(
        parse_reply(b"199 x\r\n", limits),
        Err(ReplyError::BadCode { .. })
    ));
}

#[test]
fn ehlo_extensions_are_read() {
    let reply = Reply {
        code: 250,
        lines: [
            "mx",
            "SIZE 35882577",
            "pipelining",
            "AUTH=PLAIN LOGIN",
            "AUTH PLAIN CRAM-MD5",
            "STARTTLS",
            "8BITMIME",
        ]
        .map(String::from)
        .to_vec(),
    };
    let ext = Extensions::from_ehlo(&reply);
    assert_eq!(ext.size, Some(35_882_577));
    assert!(ext.pipelining && ext.starttls && ext.eight_bit_mime);
    assert_eq!(ext.auth, ["PLAIN", "LOGIN", "CRAM-MD5"]);
}

#[test]
fn stuffing_adds_dots_and_crlf() {
    assert_eq!(
        stuff(b"a\n.b\r\n..\n").0,
        Bytes::from_static(b"a\r\n..b\r\n...\r\n.\r\n")
    );
    assert_eq!(stuff(b"").0, Bytes::from_static(b".\r\n"));
    assert_eq!(stuff(b"x").1, 3);
}

#[test]
fn sent_events_keep_the_order_of_send_calls_around_quit() {
    // Found by the fuzzer: a message queued after `quit` (QUIT not out yet) was reported
    // before the one queued ahead of it.
    let mut client = SmtpClientConn::new(ClientConfig::default(), false);
    client.send(message(&["alice@mx.test", "carol@mx.test"], "one"));
    client.quit();
    client.send(message(&["dave@mx.test"], "two"));
    let seen = run(client, server_config());
    assert_eq!(
        seen.results.iter().map(Vec::len).collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(seen.delivered.len(), 2, "both sent before QUIT");
    assert_eq!(seen.closed, Some(Ok(())));
}
