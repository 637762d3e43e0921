//! The POP3 server machine against scripted clients (RawPeer), no reactor.

use super::*;
use crate::kit::sim::{Pair, RawPeer};

const ONE: &[u8] = b"Subject: one\r\nX: y\r\n\r\nbody 1\r\n.dot\r\nbody 3\r\n";
const TWO: &[u8] = b"Subject: two\n\nshort\n";

fn pair(config: Pop3Config, tls: bool) -> Pair<RawPeer, Pop3Server> {
    let mut pair = Pair::new(RawPeer::new(), Pop3Server::new(config, tls));
    pair.drive();
    pair.client.take_received();
    pair
}

/// Sends `script`, answering events as the Maildir application would (alice/pw, two
/// messages); returns the replies and the deletions asked for.
fn talk(pair: &mut Pair<RawPeer, Pop3Server>, script: &str) -> (String, Vec<Vec<usize>>) {
    pair.client.send(script.as_bytes());
    let mut updates = Vec::new();
    for _ in 0..100 {
        pair.drive();
        let Some(event) = pair.server.poll_event() else {
            break;
        };
        match event {
            Pop3Event::Login(Credentials::UsernamePassword { username, password }) => {
                if username == "alice" && password == b"pw" {
                    pair.server.login_result(Ok(vec![
                        MessageInfo {
                            uid: "u1".into(),
                            size: ONE.len() as u64,
                        },
                        MessageInfo {
                            uid: "u2".into(),
                            size: TWO.len() as u64,
                        },
                    ]));
                } else {
                    pair.server.login_result(Err(CredError::Unauthorized));
                }
            }
            Pop3Event::Retrieve { index } => {
                pair.server
                    .message(Ok(Bytes::from_static([ONE, TWO][index])));
            }
            Pop3Event::Update { deleted } => {
                updates.push(deleted);
                pair.server.updated(Ok(()));
            }
            Pop3Event::StartTls => updates.push(vec![usize::MAX]),
        }
    }
    pair.drive();
    (
        String::from_utf8_lossy(&pair.client.take_received()).into_owned(),
        updates,
    )
}

#[test]
fn a_session_lists_reads_and_deletes_only_at_quit() {
    let mut pair = pair(Pop3Config::default(), false);
    let (text, _) = talk(
        &mut pair,
        "USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS pw\r\nSTAT\r\nLIST\r\nUIDL 2\r\n",
    );
    assert_eq!(
        text,
        format!(
            "+OK\r\n-ERR [AUTH] Invalid credentials\r\n+OK\r\n+OK maildrop has 2 messages\r\n+OK 2 {}\r\n+OK\r\n1 {}\r\n2 {}\r\n.\r\n+OK 2 u2\r\n",
            ONE.len() + TWO.len(),
            ONE.len(),
            TWO.len()
        )
    );
    let (text, _) = talk(&mut pair, "RETR 1\r\nTOP 1 1\r\nTOP 2 0\r\n");
    assert_eq!(
        text,
        "+OK message follows\r\nSubject: one\r\nX: y\r\n\r\nbody 1\r\n..dot\r\nbody 3\r\n.\r\n\
         +OK message follows\r\nSubject: one\r\nX: y\r\n\r\nbody 1\r\n.\r\n\
         +OK message follows\r\nSubject: two\r\n\r\n.\r\n"
    );
    let (text, updates) = talk(
        &mut pair,
        "DELE 1\r\nDELE 1\r\nRETR 1\r\nSTAT\r\nRSET\r\nDELE 2\r\nLIST\r\n",
    );
    assert!(updates.is_empty(), "nothing removed before QUIT");
    assert_eq!(
        text,
        format!(
            "+OK message 1 deleted\r\n-ERR Message already deleted\r\n-ERR Message already deleted\r\n+OK 1 {}\r\n+OK\r\n+OK message 2 deleted\r\n+OK\r\n1 {}\r\n.\r\n",
            TWO.len(),
            ONE.len()
        )
    );
    let (text, updates) = talk(&mut pair, "QUIT\r\nNOOP\r\n");
    assert_eq!(text, "+OK Bye\r\n");
    assert_eq!(updates, [vec![1]]);
    assert!(pair.client.saw_eof());
}

#[test]
fn a_client_that_leaves_without_quit_deletes_nothing() {
    let mut pair = pair(Pop3Config::default(), false);
    let (_, updates) = talk(&mut pair, "USER alice\r\nPASS pw\r\nDELE 1\r\n");
    assert!(updates.is_empty());
    pair.client.shutdown_write();
    pair.drive();
    assert!(pair.server.poll_event().is_none(), "no Update without QUIT");
}

#[test]
fn errors_keep_the_session_and_states_are_enforced() {
    let mut pair = pair(Pop3Config::default(), false);
    let (text, _) = talk(
        &mut pair,
        "STAT\r\nPASS x\r\nFOO\r\nUSER\r\nUSER alice\r\nPASS pw\r\nRETR 9\r\nRETR x\r\nTOP 1\r\nUSER bob\r\nNOOP\r\n",
    );
    let firsts: Vec<&str> = text.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        firsts,
        [
            "-ERR", "-ERR", "-ERR", "-ERR", "+OK", "+OK", "-ERR", "-ERR", "-ERR", "-ERR", "+OK"
        ],
        "{text}"
    );
}

#[test]
fn stls_discards_pipelined_input_and_plain_login_waits_for_it() {
    let config = Pop3Config {
        stls: true,
        plaintext_login: false,
        ..Pop3Config::default()
    };
    let mut pair = pair(config, false);
    let (text, events) = talk(
        &mut pair,
        "CAPA\r\nUSER alice\r\nSTLS\r\nUSER alice\r\nPASS pw\r\n",
    );
    assert!(
        text.contains("STLS\r\n") && !text.contains("\r\nUSER\r\n"),
        "{text}"
    );
    assert!(text.contains("-ERR [AUTH] Use STLS first\r\n"), "{text}");
    assert!(text.ends_with("+OK Begin TLS negotiation\r\n"), "{text}");
    assert_eq!(events, [vec![usize::MAX]]);
    let (text, _) = talk(&mut pair, "CAPA\r\nPASS pw\r\nUSER alice\r\nPASS pw\r\n");
    assert!(
        !text.contains("STLS") && text.contains("\r\nUSER\r\n"),
        "{text}"
    );
    assert!(
        text.ends_with("-ERR USER first\r\n+OK\r\n+OK maildrop has 2 messages\r\n"),
        "{text}"
    );
}

#[test]
fn an_answer_after_the_peer_left_writes_nothing() {
    let mut pair = pair(Pop3Config::default(), false);
    pair.client.send(b"USER alice\r\nPASS pw\r\n");
    pair.drive();
    assert!(matches!(
        pair.server.poll_event(),
        Some(Pop3Event::Login(_))
    ));
    pair.server.handle_eof(pair.now());
    assert!(pair.server.poll_close().is_some());
    pair.server.login_result(Err(CredError::Unauthorized));
    assert_eq!(pair.server.poll_transmit(pair.now()), None);
}

#[test]
fn a_locked_maildrop_gets_in_use_and_the_session_may_retry() {
    let mut pair = pair(Pop3Config::default(), false);
    pair.client.send(b"USER alice\r\nPASS pw\r\nSTAT\r\n");
    pair.drive();
    assert!(matches!(
        pair.server.poll_event(),
        Some(Pop3Event::Login(_))
    ));
    pair.server.login_in_use();
    pair.drive();
    assert_eq!(
        pair.client.take_received(),
        b"+OK\r\n-ERR [IN-USE] Maildrop locked by another session\r\n-ERR Not logged in\r\n"
    );
    let (text, _) = talk(&mut pair, "USER alice\r\nPASS pw\r\n");
    assert_eq!(text, "+OK\r\n+OK maildrop has 2 messages\r\n");
}
