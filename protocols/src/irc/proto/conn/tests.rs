//! The server's connection machine against a scripted peer, under a virtual clock.

use std::time::Duration;

use super::*;
use crate::kit::sim::{Pair, RawPeer};

fn config() -> IrcConfig {
    IrcConfig {
        motd: vec!["hello".into()],
        ..IrcConfig::default()
    }
}

fn pair_with(config: IrcConfig) -> Pair<RawPeer, ServerConn> {
    Pair::new(
        RawPeer::new(),
        ServerConn::new(Arc::new(config), "127.0.0.1"),
    )
}

fn events(pair: &mut Pair<RawPeer, ServerConn>) -> Vec<ConnEvent> {
    std::iter::from_fn(|| pair.server.poll_event()).collect()
}

fn lines(pair: &mut Pair<RawPeer, ServerConn>) -> Vec<String> {
    String::from_utf8_lossy(&pair.client.take_received())
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn register(pair: &mut Pair<RawPeer, ServerConn>, nick: &str) {
    pair.client
        .send(format!("NICK {nick}\r\nUSER u 0 * :Real Name\r\n"));
    pair.drive();
    let got = events(pair);
    assert_eq!(
        got,
        [ConnEvent::Register {
            nick: nick.into(),
            user: "u".into(),
            realname: "Real Name".into()
        }]
    );
    pair.server.registered(nick);
    pair.drive();
}

#[test]
fn registration_sends_the_welcome_burst() {
    let mut pair = pair_with(config());
    register(&mut pair, "alice");
    let got = lines(&mut pair);
    let codes: Vec<&str> = got
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        codes,
        ["001", "002", "003", "004", "005", "375", "372", "376"]
    );
    assert_eq!(
        got[0],
        ":irc.ringwork.local 001 alice :Welcome to the ringwork IRC Network alice!u@127.0.0.1"
    );
    assert!(got[4].contains("CASEMAPPING=rfc1459") && got[4].contains("PREFIX=(ov)@+"));
    assert!(pair.server.is_registered());
}

#[test]
fn commands_before_registration_get_451_and_ping_is_answered() {
    let mut pair = pair_with(config());
    pair.client.send("JOIN #a\r\nPING :tok\r\n");
    pair.drive();
    assert_eq!(
        lines(&mut pair),
        [
            ":irc.ringwork.local 451 * :You have not registered",
            ":irc.ringwork.local PONG irc.ringwork.local :tok"
        ]
    );
    assert!(events(&mut pair).is_empty());
}

#[test]
fn cap_negotiation_holds_registration_until_end() {
    let mut pair = pair_with(config());
    pair.client
        .send("CAP LS 302\r\nNICK bob\r\nUSER b 0 * :B\r\nCAP REQ :server-time multi-prefix\r\n");
    pair.drive();
    assert!(events(&mut pair).is_empty(), "no registration during CAP");
    assert_eq!(
        lines(&mut pair),
        [
            ":irc.ringwork.local CAP * LS :message-tags multi-prefix server-time",
            ":irc.ringwork.local CAP * ACK :server-time multi-prefix"
        ]
    );
    pair.client.send("CAP REQ :sasl\r\nCAP END\r\n");
    pair.drive();
    assert_eq!(lines(&mut pair), [":irc.ringwork.local CAP * NAK :sasl"]);
    assert!(matches!(
        events(&mut pair)[..],
        [ConnEvent::Register { .. }]
    ));
    let caps = pair.server.caps();
    assert!(caps.server_time && caps.multi_prefix && !caps.message_tags);
    // Tags per capability: time yes, client tags no.
    pair.server.registered("bob");
    pair.drive();
    let _ = lines(&mut pair);
    pair.server.deliver(&Delivery {
        line: Bytes::from_static(b":a!a@h PRIVMSG #c :hi\r\n"),
        time: Some("2026-12-07T06:00:00.000Z".into()),
        client_tags: Some("+typing=active".into()),
    });
    pair.drive();
    assert_eq!(
        lines(&mut pair),
        ["@time=2026-12-07T06:00:00.000Z :a!a@h PRIVMSG #c :hi"]
    );
}

#[test]
fn a_taken_nick_waits_for_another() {
    let mut pair = pair_with(config());
    pair.client.send("NICK bob\r\nUSER b 0 * :B\r\n");
    pair.drive();
    assert_eq!(events(&mut pair).len(), 1);
    // Lines while the claim is out wait for its answer.
    pair.client.send("NICK bob2\r\n");
    pair.drive();
    assert!(events(&mut pair).is_empty());
    pair.server.nick_rejected("bob");
    pair.drive();
    assert_eq!(
        lines(&mut pair),
        [":irc.ringwork.local 433 * bob :Nickname is already in use"]
    );
    assert_eq!(
        events(&mut pair),
        [ConnEvent::Register {
            nick: "bob2".into(),
            user: "b".into(),
            realname: "B".into()
        }]
    );
}

#[test]
fn a_wrong_password_ends_the_connection() {
    let mut pair = pair_with(IrcConfig {
        password: Some("sesame".into()),
        ..config()
    });
    pair.client
        .send("PASS wrong\r\nNICK bob\r\nUSER b 0 * :B\r\n");
    pair.drive();
    let got = lines(&mut pair);
    assert_eq!(got[0], ":irc.ringwork.local 464 bob :Password incorrect");
    assert_eq!(got[1], "ERROR :Closing Link: 127.0.0.1 (Bad Password)");
    assert!(pair.client.saw_eof());
    let mut ok = pair_with(IrcConfig {
        password: Some("sesame".into()),
        ..config()
    });
    ok.client.send("PASS sesame\r\n");
    register(&mut ok, "bob");
}

#[test]
fn long_lines_get_417_and_the_connection_goes_on() {
    let mut pair = pair_with(config());
    register(&mut pair, "al");
    let _ = lines(&mut pair);
    // Over 512 without tags: parsed whole, refused.
    pair.client
        .send(format!("PRIVMSG #c :{}\r\n", "x".repeat(600)));
    // Over the whole frame limit: dropped while it streams in.
    pair.client.send(format!(
        "PRIVMSG #c :{}\r\nPRIVMSG #c :ok\r\n",
        "y".repeat(9000)
    ));
    pair.drive();
    assert_eq!(
        lines(&mut pair),
        [
            ":irc.ringwork.local 417 al :Input line was too long",
            ":irc.ringwork.local 417 al :Input line was too long"
        ]
    );
    let got = events(&mut pair);
    assert_eq!(got.len(), 1);
    assert!(matches!(&got[0], ConnEvent::Command(m) if m.params[1] == "ok"));
}

#[test]
fn flood_is_held_then_taken_at_the_rate_and_excess_disconnects() {
    let mut pair = pair_with(config());
    register(&mut pair, "al");
    let _ = lines(&mut pair);
    // The registration's lines are spent by now.
    pair.advance(Duration::from_secs(10));
    let burst: String = (0..15).map(|i| format!("PRIVMSG #c :{i}\r\n")).collect();
    pair.client.send(burst);
    pair.drive();
    // The burst (10) is taken now; the rest at 2 per second.
    assert_eq!(events(&mut pair).len(), 10);
    pair.advance(Duration::from_millis(1000));
    assert_eq!(events(&mut pair).len(), 2);
    pair.advance(Duration::from_secs(10));
    assert_eq!(events(&mut pair).len(), 3);
    // More than flood_queue (20) held at once: Excess Flood.
    let flood: String = (0..40).map(|i| format!("PRIVMSG #c :{i}\r\n")).collect();
    pair.client.send(flood);
    pair.drive();
    let got = events(&mut pair);
    assert!(
        matches!(got.last(), Some(ConnEvent::Quit { reason, registered: true }) if reason == "Excess Flood"),
        "{got:?}"
    );
    assert_eq!(
        lines(&mut pair).last().map(String::as_str),
        Some("ERROR :Closing Link: 127.0.0.1 (Excess Flood)")
    );
    assert!(pair.client.saw_eof());
}

#[test]
fn keepalive_pings_then_times_out() {
    let mut pair = pair_with(config());
    register(&mut pair, "al");
    let _ = lines(&mut pair);
    pair.advance(Duration::from_secs(90));
    assert_eq!(lines(&mut pair), ["PING irc.ringwork.local"]);
    // An answer resets the clock.
    pair.client.send("PONG irc.ringwork.local\r\n");
    pair.drive();
    pair.advance(Duration::from_secs(89));
    assert!(lines(&mut pair).is_empty());
    pair.advance(Duration::from_secs(1));
    assert_eq!(lines(&mut pair), ["PING irc.ringwork.local"]);
    pair.advance(Duration::from_secs(60));
    assert_eq!(
        lines(&mut pair),
        ["ERROR :Closing Link: 127.0.0.1 (Ping timeout: 150 seconds)"]
    );
    assert!(
        matches!(&events(&mut pair)[..], [ConnEvent::Quit { reason, .. }] if reason.starts_with("Ping timeout"))
    );
}

#[test]
fn registration_times_out() {
    let mut pair = pair_with(config());
    pair.client.send("NICK x\r\n");
    pair.drive();
    pair.advance(Duration::from_secs(60));
    assert_eq!(
        lines(&mut pair),
        ["ERROR :Closing Link: 127.0.0.1 (Registration timed out)"]
    );
    assert_eq!(
        events(&mut pair),
        [ConnEvent::Quit {
            reason: "Registration timed out".into(),
            registered: false
        }]
    );
}

#[test]
fn quit_and_eof_are_one_quit_event() {
    let mut pair = pair_with(config());
    register(&mut pair, "al");
    let _ = lines(&mut pair);
    pair.client.send("QUIT :bye all\r\nPRIVMSG #x :after\r\n");
    pair.drive();
    assert_eq!(
        lines(&mut pair),
        ["ERROR :Closing Link: 127.0.0.1 (Quit: bye all)"]
    );
    assert_eq!(
        events(&mut pair),
        [ConnEvent::Quit {
            reason: "Quit: bye all".into(),
            registered: true
        }]
    );
    let mut eof = pair_with(config());
    register(&mut eof, "b");
    eof.client.close();
    eof.drive();
    assert!(matches!(&events(&mut eof)[..], [ConnEvent::Quit { .. }]));
}

#[test]
fn a_client_that_does_not_read_is_cut_at_the_sendq_limit() {
    let mut pair = pair_with(IrcConfig {
        max_sendq: 1000,
        ..config()
    });
    register(&mut pair, "al");
    pair.server.handle_writable(false, pair.now());
    for _ in 0..30 {
        pair.server.deliver(&Delivery::plain(
            &b":a!a@h PRIVMSG al :0123456789012345678901234567890123456789\r\n"[..],
        ));
    }
    let got = events(&mut pair);
    assert!(
        matches!(&got[..], [ConnEvent::Quit { reason, .. }] if reason == "SendQ exceeded"),
        "{got:?}"
    );
}

#[test]
fn input_split_at_every_byte_gives_the_same_events() {
    let script = b"CAP LS\r\nNICK al\r\nUSER u 0 * :R N\r\nCAP REQ :message-tags\r\nCAP END\r\n";
    let mut whole = pair_with(config());
    whole.client.send(&script[..]);
    whole.drive();
    let expected = events(&mut whole);
    for cut in 0..script.len() {
        let mut pair = pair_with(config());
        pair.client.send(&script[..cut]);
        pair.drive();
        pair.client.send(&script[cut..]);
        pair.drive();
        assert_eq!(events(&mut pair), expected, "cut at {cut}");
    }
}
