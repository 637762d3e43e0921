//! The simulation's own rules, with the example machines.

use std::time::Duration;

use super::*;
use crate::kit::example::{ClientEvent, LineClient, LineConfig, LineServer, ServerEvent};

#[test]
fn rng_is_the_splitmix64_sequence() {
    // First outputs of SplitMix64 from seed 0 (the published reference values).
    let mut rng = SimRng::new(0);
    assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
    assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
}

#[test]
fn segments_split_and_delay_but_keep_order() {
    let mut config = SimConfig::ideal();
    config.max_segment = 3;
    config.max_delay = Duration::from_millis(10);
    config.seed = 42;
    let mut pair = Pair::with_config(
        LineClient::new(1024),
        LineServer::new(LineConfig::default()),
        config,
    )
    .traced();
    pair.client.send(b"hello world");
    pair.drive();
    assert!(pair.server.poll_event().is_none() || pair.elapsed() == Duration::ZERO);
    while pair.step() {
        if let Some(ServerEvent::Line { line, .. }) = pair.server.poll_event() {
            assert_eq!(&line[..], b"hello world");
            let reads = pair
                .trace()
                .iter()
                .filter(|l| l.contains("Server reads"))
                .count();
            assert!(
                reads >= 4,
                "cut into segments of at most 3 bytes: {:?}",
                pair.trace()
            );
            return;
        }
    }
    panic!("the line never arrived");
}

#[test]
fn a_small_window_makes_the_sender_unwritable_until_the_receiver_reads() {
    let mut config = SimConfig::ideal();
    config.window = 4;
    config.max_segment = 10;
    let mut pair = Pair::with_config(
        LineClient::new(1024),
        LineServer::new(LineConfig {
            max_pending: 1,
            ..LineConfig::default()
        }),
        config,
    );
    for _ in 0..4 {
        pair.client.send(b"0123456789");
    }
    pair.drive();
    // The server took one line and stopped reading: the rest waits in the link.
    assert!(!pair.server.wants_input());
    assert!(
        !pair.client_end.writable,
        "the client was told the link is full"
    );
    let Some(ServerEvent::Line { id, .. }) = pair.server.poll_event() else {
        panic!("no line")
    };
    pair.server.reply(id, "ok");
    pair.drive();
    assert!(pair.server.poll_event().is_some(), "reading resumed");
}

#[test]
fn bytes_to_a_closed_side_reset_the_sender() {
    let mut pair = Pair::new(
        LineClient::new(1024),
        LineServer::new(LineConfig::default()),
    );
    // The server closes (shutdown, nothing pending) while the client's line is on its way.
    pair.client.send(b"late");
    let now = pair.now();
    pair.server.handle_shutdown(now);
    pair.drive();
    assert!(pair.is_done(Side::Server));
    let events: Vec<_> = std::iter::from_fn(|| pair.client.poll_event()).collect();
    assert!(events.contains(&ClientEvent::Lost), "{events:?}");
}

#[test]
fn advance_fires_deadlines_in_order() {
    let mut pair = Pair::new(
        LineClient::new(1024),
        LineServer::new(LineConfig::default()),
    );
    pair.advance(Duration::from_secs(59));
    assert!(pair.client.poll_event().is_none());
    pair.advance(Duration::from_secs(1));
    assert_eq!(
        pair.client.poll_event(),
        Some(ClientEvent::Line(Bytes::from_static(b"TIMEOUT")))
    );
}
