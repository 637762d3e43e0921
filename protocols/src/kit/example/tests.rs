//! The line machines under [`Pair`]: on a perfect link, then on faulty links drawn from
//! seeds (every run replays from its seed).

use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::kit::sim::{Pair, Side, SimConfig};

fn pair() -> Pair<LineClient, LineServer> {
    Pair::new(
        LineClient::new(1024),
        LineServer::new(LineConfig::default()),
    )
}

/// Lines the client saw.
fn heard(events: &[ClientEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            ClientEvent::Line(line) => String::from_utf8_lossy(line).into_owned(),
            ClientEvent::Closed => "<closed>".into(),
            ClientEvent::Lost => "<lost>".into(),
        })
        .collect()
}

#[test]
fn replies_leave_in_request_order_even_when_answered_out_of_order() {
    let mut pair = pair();
    for line in ["a", "b", "c"] {
        pair.client.send(line.as_bytes());
    }
    pair.drive();
    let ids: Vec<u64> = std::iter::from_fn(|| pair.server.poll_event())
        .map(|ServerEvent::Line { id, .. }| id)
        .collect();
    assert_eq!(ids, [0, 1, 2]);
    pair.server.reply(2, "C");
    pair.server.reply(1, "B");
    pair.drive();
    assert!(
        pair.client.poll_event().is_none(),
        "held until line 0 is answered"
    );
    pair.server.reply(0, "A");
    pair.server.reply(0, "again");
    pair.drive();
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(heard(&events), ["A", "B", "C"]);
}

#[test]
fn quit_says_bye_after_pending_replies_and_closes() {
    let mut pair = pair();
    pair.client.send(b"x");
    pair.client.quit();
    let mut events = Vec::new();
    let finished = pair.run(
        Duration::from_secs(1),
        |_, e, _| events.push(e),
        |server, ServerEvent::Line { id, line }, _| server.reply(id, line),
    );
    assert!(finished);
    assert_eq!(heard(&events), ["x", "BYE", "<closed>"]);
    assert!(pair.is_done(Side::Server));
}

#[test]
fn idle_connection_times_out_but_not_while_a_reply_is_pending() {
    let mut pair = pair();
    pair.client.send(b"slow");
    pair.drive();
    assert!(pair.server.poll_event().is_some());
    pair.advance(Duration::from_secs(120));
    assert!(
        pair.client.poll_event().is_none(),
        "no timeout with a line pending"
    );
    pair.server.reply(0, "done");
    pair.advance(Duration::from_secs(59));
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(heard(&events), ["done"]);
    pair.advance(Duration::from_secs(1));
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(heard(&events), ["TIMEOUT", "<closed>"]);
}

#[test]
fn too_long_line_is_an_error_and_a_close() {
    let mut pair = Pair::new(
        LineClient::new(1024),
        LineServer::new(LineConfig {
            max_line: 8,
            ..LineConfig::default()
        }),
    );
    pair.client.send(b"0123456789");
    pair.drive();
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(heard(&events), ["ERROR line too long", "<closed>"]);
}

#[test]
fn reading_stops_at_max_pending_and_resumes_when_answered() {
    let mut pair = Pair::new(
        LineClient::new(1024),
        LineServer::new(LineConfig {
            max_pending: 2,
            ..LineConfig::default()
        }),
    );
    for i in 0..5 {
        pair.client.send(format!("{i}").as_bytes());
    }
    pair.drive();
    let first: Vec<_> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert_eq!(first.len(), 2);
    assert!(!pair.server.wants_input());
    pair.server.reply(0, "r0");
    pair.drive();
    let more: Vec<_> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    assert_eq!(more.len(), 1, "one slot freed, one more line taken");
}

#[test]
fn shutdown_answers_pending_lines_then_says_bye() {
    let mut pair = pair();
    pair.client.send(b"q");
    pair.drive();
    assert!(pair.server.poll_event().is_some());
    let now = pair.now();
    pair.server.handle_shutdown(now);
    pair.server.reply(0, "a");
    pair.drive();
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert_eq!(heard(&events), ["a", "BYE", "<closed>"]);
}

/// Runs `lines` lines through a link drawn from `seed`; the server answers each line
/// with its upper-case after a delay that depends on the line. Returns what the client
/// heard.
fn faulty_run(seed: u64, lines: usize, breakage: bool) -> (Vec<String>, bool) {
    let mut config = SimConfig::faulty(seed);
    if breakage {
        config = config.with_breakage();
    }
    let server = LineServer::new(LineConfig {
        max_pending: 3,
        // Without breakage every reply must arrive: longer than any clock jump, so the
        // idle timeout cannot end the session. (With breakage it may, and does.)
        idle_timeout: if breakage {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(3600)
        },
        ..LineConfig::default()
    });
    let mut pair = Pair::with_config(LineClient::new(1 << 16), server, config).traced();
    for i in 0..lines {
        pair.client.send(format!("line {i}").as_bytes());
    }
    pair.client.quit();
    let mut events = Vec::new();
    let mut held: Vec<(u64, Bytes)> = Vec::new();
    let finished = pair.run(
        Duration::from_secs(3600),
        |_, e, _| events.push(e),
        |server, ServerEvent::Line { id, line }, _| {
            // Answer odd ids at once and hold even ones until the next line: replies are
            // given out of order, and must still arrive in order.
            let upper = Bytes::from(line.to_ascii_uppercase());
            if id % 2 == 1 {
                server.reply(id, upper);
                for (id, reply) in held.drain(..) {
                    server.reply(id, reply);
                }
            } else {
                held.push((id, upper));
                if id + 1 == lines as u64 {
                    for (id, reply) in held.drain(..) {
                        server.reply(id, reply);
                    }
                }
            }
        },
    );
    let trace = pair.trace();
    let tail = trace[trace.len().saturating_sub(40)..].join("\n");
    assert!(
        finished,
        "seed {seed}: the run did not end within an hour of simulated time\n{tail}"
    );
    if breakage {
        // After the replies in order comes one end: the server's own (BYE, TIMEOUT),
        // the stream's, or the reset's.
        let replies = events
            .iter()
            .take_while(|e| matches!(e, ClientEvent::Line(l) if l.starts_with(b"LINE")))
            .count();
        let rest = heard(&events[replies..]);
        let allowed = ["BYE", "TIMEOUT", "<closed>", "<lost>"];
        assert!(
            rest.iter().all(|r| allowed.contains(&r.as_str())),
            "seed {seed}: {rest:?}\n{tail}"
        );
    }
    (heard(&events), pair.is_lost(Side::Client))
}

#[test]
fn faulty_links_keep_replies_complete_and_in_order() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..300).collect(),
    };
    for seed in seeds {
        let (heard, lost) = faulty_run(seed, 20, false);
        assert!(!lost, "seed {seed}: lost without breakage");
        let mut expected: Vec<String> = (0..20).map(|i| format!("LINE {i}")).collect();
        expected.push("BYE".into());
        expected.push("<closed>".into());
        assert_eq!(heard, expected, "seed {seed}");
    }
}

#[test]
fn broken_links_end_both_sides_with_an_ordered_prefix() {
    let seeds: Vec<u64> = match SimConfig::seed_from_env() {
        Some(seed) => vec![seed],
        None => (0..300).collect(),
    };
    for seed in seeds {
        let (heard, _lost) = faulty_run(seed, 20, true);
        // Whatever arrived is a prefix of the replies in order, then an end.
        let replies: Vec<&String> = heard.iter().filter(|l| l.starts_with("LINE")).collect();
        for (i, line) in replies.iter().enumerate() {
            assert_eq!(**line, format!("LINE {i}"), "seed {seed}: {heard:?}");
        }
    }
}

#[test]
fn the_same_seed_replays_the_same_run() {
    let run = |seed| {
        let mut pair = Pair::with_config(
            LineClient::new(1024),
            LineServer::new(LineConfig::default()),
            SimConfig::faulty(seed).with_breakage(),
        )
        .traced();
        for i in 0..10 {
            pair.client.send(format!("{i}").as_bytes());
        }
        pair.run(
            Duration::from_secs(600),
            |_, _, _| {},
            |server, ServerEvent::Line { id, line }, _| server.reply(id, line),
        );
        pair.trace().to_vec()
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
