//! The IMAP server machine against scripted clients (RawPeer), no reactor: framing,
//! literals, states, login, STARTTLS, IDLE, limits. The mailbox commands against a real
//! Maildir are in `store/tests.rs`.

use super::*;
use crate::kit::sim::{Pair, RawPeer};

fn pair(config: ImapConfig, tls: bool) -> Pair<RawPeer, ImapServer> {
    let mut pair = Pair::new(RawPeer::new(), ImapServer::new(config, tls));
    pair.drive();
    pair
}

/// Sends `script`, answering events as a tiny application would (alice/pw; every mailbox
/// command gets `OK` naming it, APPEND tells the literal's size); returns the replies and
/// the events seen.
fn talk(pair: &mut Pair<RawPeer, ImapServer>, script: &[u8]) -> (String, Vec<String>) {
    pair.client.send(script);
    let mut seen = Vec::new();
    for _ in 0..200 {
        pair.drive();
        let Some(event) = pair.server.poll_event() else {
            break;
        };
        match event {
            ImapEvent::Login(Credentials::UsernamePassword { username, password }) => {
                seen.push(format!("login {username}"));
                if username == "alice" && password == b"pw" {
                    pair.server.login_result(Ok(AvatarId(username)));
                } else {
                    pair.server.login_result(Err(CredError::Unauthorized));
                }
            }
            ImapEvent::Request { command, .. } => {
                let text = match &command {
                    Command::Append { message, .. } => format!("APPEND {} bytes", message.len()),
                    Command::Select { .. } => "SELECT".to_owned(),
                    other => format!("{other:?}").chars().take(40).collect(),
                };
                seen.push(text.clone());
                let mut response = Response::new(Vec::new(), Status::Ok, text);
                if matches!(command, Command::Select { .. }) {
                    response.selection = Selection::Selected;
                }
                if matches!(command, Command::Close) {
                    response.selection = Selection::None;
                }
                pair.server.respond(response);
            }
            ImapEvent::More => seen.push("more".into()),
            ImapEvent::Idle => {
                seen.push("idle".into());
                pair.server.unsolicited(b"* 4 EXISTS\r\n");
            }
            ImapEvent::IdleDone => {
                seen.push("idle done".into());
                pair.server
                    .respond(Response::new(Vec::new(), Status::Ok, "IDLE terminated"));
            }
            ImapEvent::StartTls => seen.push("starttls".into()),
        }
    }
    pair.drive();
    (
        String::from_utf8_lossy(&pair.client.take_received()).into_owned(),
        seen,
    )
}

#[test]
fn greeting_capability_login_and_logout() {
    let mut pair = pair(ImapConfig::default(), false);
    let greeting = String::from_utf8(pair.client.take_received()).unwrap();
    assert_eq!(
        greeting,
        "* OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS UNSELECT AUTH=PLAIN] ringwork IMAP4rev1 server ready\r\n"
    );
    let (text, seen) = talk(
        &mut pair,
        b"a1 CAPABILITY\r\na2 LOGIN alice wrong\r\na3 LOGIN \"alice\" {2}\r\npw\r\na4 NOOP\r\na5 LOGOUT\r\n",
    );
    assert_eq!(
        text,
        "* CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS UNSELECT AUTH=PLAIN\r\n\
         a1 OK CAPABILITY completed\r\n\
         a2 NO [AUTHENTICATIONFAILED] Invalid credentials\r\n\
         + Ready for literal data\r\n\
         a3 OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS UNSELECT] Logged in\r\n\
         a4 OK NOOP completed\r\n\
         * BYE ringwork IMAP4rev1 server logging out\r\n\
         a5 OK LOGOUT completed\r\n"
    );
    assert_eq!(seen, ["login alice", "login alice"]);
    let (text, seen) = talk(&mut pair, b"a6 NOOP\r\n");
    assert!(
        text.is_empty() && seen.is_empty(),
        "nothing is read after LOGOUT"
    );
}

#[test]
fn authenticate_plain_with_and_without_initial_response() {
    let mut pair = pair(ImapConfig::default(), false);
    pair.client.take_received();
    // "\0alice\0pw" and "\0alice\0no".
    let (text, _) = talk(
        &mut pair,
        b"a AUTHENTICATE PLAIN AGFsaWNlAG5v\r\nb AUTHENTICATE PLAIN\r\nAGFsaWNlAHB3\r\n",
    );
    assert!(
        text.starts_with("a NO [AUTHENTICATIONFAILED]") && text.contains("\r\n+ \r\nb OK ["),
        "{text}"
    );
    let (text, _) = talk(&mut pair, b"c AUTHENTICATE PLAIN\r\n");
    assert!(text.starts_with("c BAD Already"), "{text}");
    let mut pair = self::pair(ImapConfig::default(), false);
    pair.client.take_received();
    let (text, _) = talk(
        &mut pair,
        b"d AUTHENTICATE PLAIN\r\n*\r\ne AUTHENTICATE X\r\n",
    );
    assert_eq!(
        text,
        "+ \r\nd BAD AUTHENTICATE cancelled\r\ne NO Unsupported mechanism\r\n"
    );
}

#[test]
fn logindisabled_before_starttls_and_pipelined_input_dropped() {
    let config = ImapConfig {
        starttls: true,
        plaintext_login: false,
        ..ImapConfig::default()
    };
    let mut pair = pair(config, false);
    let greeting = String::from_utf8(pair.client.take_received()).unwrap();
    assert!(greeting.contains("STARTTLS LOGINDISABLED]"), "{greeting}");
    let (text, seen) = talk(
        &mut pair,
        b"a LOGIN alice pw\r\nb STARTTLS\r\nc LOGIN alice pw\r\n",
    );
    assert_eq!(
        text,
        "a NO [PRIVACYREQUIRED] Use STARTTLS first\r\nb OK Begin TLS negotiation now\r\n"
    );
    assert_eq!(
        seen,
        ["starttls"],
        "the LOGIN pipelined behind STARTTLS is dropped"
    );
    assert!(pair.server.is_tls());
    let (text, _) = talk(&mut pair, b"d CAPABILITY\r\ne LOGIN alice pw\r\n");
    assert!(
        text.contains("AUTH=PLAIN") && !text.contains("STARTTLS") && text.contains("e OK"),
        "{text}"
    );
}

#[test]
fn states_are_enforced_and_bad_commands_keep_the_session() {
    let mut pair = pair(ImapConfig::default(), false);
    pair.client.take_received();
    let (text, seen) = talk(
        &mut pair,
        b"a SELECT INBOX\r\nb FETCH 1 FLAGS\r\n\r\nc FROB\r\n(x\r\nd LOGIN alice pw\r\ne FETCH 1 FLAGS\r\nf SELECT inbox\r\ng FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (FROM TO)]<0.10>)\r\nh FETCH 1 BODY[\r\ni CLOSE\r\nj STORE 1 +FLAGS (\\Seen)\r\n",
    );
    assert_eq!(
        text,
        "a BAD Log in first\r\nb BAD No mailbox selected\r\n* BAD Missing tag\r\nc BAD Unknown command\r\n\
         * BAD Unbalanced parenthesis\r\nd OK [CAPABILITY IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS UNSELECT] Logged in\r\n\
         e BAD No mailbox selected\r\nf OK SELECT\r\ng OK Fetch { uid: false, set: SequenceSet([(N\r\n\
         h BAD Unbalanced bracket\r\ni OK Close\r\nj BAD No mailbox selected\r\n"
    );
    assert_eq!(seen.len(), 4, "{seen:?}");
}

#[test]
fn literals_synchronizing_non_synchronizing_and_too_big() {
    let config = ImapConfig {
        max_literal: 100,
        ..ImapConfig::default()
    };
    let mut pair = pair(config, false);
    pair.client.take_received();
    talk(&mut pair, b"l LOGIN alice pw\r\n");
    // A synchronizing literal split across reads, then LITERAL+ with the next command
    // in the same read.
    pair.client.send(b"a APPEND INBOX (\\Seen) {12}\r\n");
    pair.drive();
    assert_eq!(pair.client.take_received(), b"+ Ready for literal data\r\n");
    let (text, seen) = talk(
        &mut pair,
        b"Subject: x\r\n\r\nb APPEND INBOX {5+}\r\nhello\r\nc NOOP\r\n",
    );
    assert_eq!(seen, ["APPEND 12 bytes", "APPEND 5 bytes"]);
    assert_eq!(
        text,
        "a OK APPEND 12 bytes\r\nb OK APPEND 5 bytes\r\nc OK NOOP completed\r\n"
    );
    let (text, _) = talk(&mut pair, b"d APPEND INBOX {101}\r\ne NOOP\r\n");
    assert_eq!(
        text,
        "d BAD [TOOBIG] Literal too big\r\ne OK NOOP completed\r\n"
    );
    let (text, _) = talk(&mut pair, b"f APPEND INBOX {101+}\r\n");
    assert_eq!(text, "* BYE [TOOBIG] Literal too big\r\n");
    let (text, seen) = talk(&mut pair, b"g NOOP\r\n");
    assert!(text.is_empty() && seen.is_empty(), "the session ended");
}

#[test]
fn idle_reports_changes_until_done() {
    let mut pair = pair(ImapConfig::default(), false);
    pair.client.take_received();
    talk(&mut pair, b"l LOGIN alice pw\r\ns SELECT INBOX\r\n");
    let (text, seen) = talk(&mut pair, b"i IDLE\r\n");
    assert_eq!(text, "+ idling\r\n* 4 EXISTS\r\n");
    assert_eq!(seen, ["idle"]);
    assert!(pair.server.is_idle());
    let (text, seen) = talk(&mut pair, b"DONE\r\nn NOOP\r\n");
    assert_eq!(text, "i OK IDLE terminated\r\nn OK Noop\r\n");
    assert_eq!(seen, ["idle done", "Noop"]);
    let (text, _) = talk(&mut pair, b"j IDLE\r\nnope\r\n");
    // The line after IDLE arrived before the application heard of it: nothing is pushed.
    assert_eq!(text, "+ idling\r\nj BAD Expected DONE\r\n");
}

#[test]
fn partial_answers_wait_for_room() {
    let mut pair = pair(ImapConfig::default(), false);
    pair.client.take_received();
    talk(&mut pair, b"l LOGIN alice pw\r\ns SELECT INBOX\r\n");
    pair.client.send(b"f FETCH 1:2 BODY[]\r\n");
    pair.drive();
    assert!(matches!(
        pair.server.poll_event(),
        Some(ImapEvent::Request { .. })
    ));
    pair.server.handle_writable(false, pair.now());
    pair.server
        .respond_part(Bytes::from_static(b"* 1 FETCH (BODY[] {1}\r\nx)\r\n"));
    pair.drive();
    assert!(
        pair.server.poll_event().is_none(),
        "no More while the transport is full"
    );
    pair.server.handle_writable(true, pair.now());
    assert!(matches!(pair.server.poll_event(), Some(ImapEvent::More)));
    pair.server.respond(Response::new(
        &b"* 2 FETCH (BODY[] {0}\r\n)\r\n"[..],
        Status::Ok,
        "done",
    ));
    pair.drive();
    assert_eq!(
        pair.client.take_received(),
        b"* 1 FETCH (BODY[] {1}\r\nx)\r\n* 2 FETCH (BODY[] {0}\r\n)\r\nf OK done\r\n"
    );
}

#[test]
fn autologout_and_long_lines() {
    let config = ImapConfig {
        timeout: Duration::from_secs(60),
        max_line: 64,
        ..ImapConfig::default()
    };
    let mut pair = pair(config.clone(), false);
    pair.client.take_received();
    pair.advance(Duration::from_secs(61));
    pair.drive();
    assert_eq!(
        pair.client.take_received(),
        b"* BYE Autologout; idle for too long\r\n"
    );
    let mut pair = self::pair(config, false);
    pair.client.take_received();
    let (text, _) = talk(&mut pair, &[b'x'; 100]);
    assert_eq!(text, "* BYE Line too long\r\n");
}

#[test]
fn never_panics_on_junk_split_anywhere() {
    let script: &[u8] = b"a LOGIN alice pw\r\nb SELECT INBOX\r\nc FETCH 1:* (BODY.PEEK[HEADER.FIELDS (A)]<1.2> UID)\r\nd SEARCH OR (FROM x) NOT SEEN UID 1:*\r\ne APPEND INBOX {3+}\r\nabc\r\nf STORE 1 +FLAGS.SILENT \\Deleted\r\n\xff\x00{9999999999999}\r\n";
    for cut in 0..script.len() {
        let mut pair = pair(ImapConfig::default(), false);
        pair.client.send(&script[..cut]);
        pair.drive();
        talk(&mut pair, &script[cut..]);
    }
}
