//! Receive-buffer exhaustion, on every backend.
//!
//! Proves: with a pool of 4 buffers of 512 B and 32 connections each streaming 256 KiB to the
//! server, while the server keeps the last 2 received buffers until the next turn, every
//! byte still arrives, in order, on the right connection, followed by end-of-stream; the
//! receives really ran out of buffers (`Stats::buffer_starvations`: ENOBUFS under io_uring,
//! a readable socket left unread under poll) and resumed when buffers came back; and every
//! buffer is back in the pool (`buffers_available`) once the caller dropped them.

mod common;

use std::collections::HashMap;

use ringwork_platform::{
    BackendChoice, Completion, DriverConfig, RecvBuf, SocketId, test_all_backends, testing,
};

use common::{Incoming, connect_pairs, drive, listen, rng, seed, settle, start_streams};

const CONNECTIONS: usize = 32;
const STREAM: usize = 256 * 1024;
const BUF_COUNT: u16 = 4;
const BUF_SIZE: u32 = 512;
/// Received buffers the server keeps until the turn after the one that delivered them.
const HELD: usize = 2;

#[derive(Default)]
struct State {
    incoming: HashMap<SocketId, Incoming>,
    /// Client socket -> bytes the driver reported sent.
    sent: HashMap<SocketId, usize>,
    /// The last `HELD` buffers received in the current turn.
    fresh: Vec<RecvBuf>,
    /// Those of the previous turn, dropped after this one.
    held: Vec<RecvBuf>,
    eofs: usize,
    shutdowns: usize,
    most_lent: u32,
}

test_all_backends! {
    fn tiny_pool_many_streams_all_bytes_in_order(backend: BackendChoice) {
        let config = DriverConfig {
            buf_count: BUF_COUNT,
            buf_size: BUF_SIZE,
            ..DriverConfig::default()
        };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let seed = seed("buffer_exhaustion", 0xb0f);
        let mut rng = rng(seed);
        let (listener, addr) = listen(&mut driver);
        let pairs = connect_pairs(&mut driver, listener, &addr, CONNECTIONS);
        assert_eq!(driver.buffers_available(), u32::from(BUF_COUNT));

        let mut state = State::default();
        (state.sent, state.incoming) =
            start_streams(&mut driver, &pairs, seed, STREAM, 32 * 1024, &mut rng);

        let turns = drive(
            &mut driver,
            &mut state,
            |driver, s, c| match c {
                Completion::Received { socket, buf } => {
                    s.incoming
                        .get_mut(&socket)
                        .unwrap_or_else(|| panic!("received on {socket}, not a server socket"))
                        .take(socket, &buf);
                    s.most_lent = s
                        .most_lent
                        .max(u32::from(BUF_COUNT) - driver.buffers_available());
                    s.fresh.push(buf);
                    if s.fresh.len() > HELD {
                        s.fresh.remove(0);
                    }
                }
                Completion::Eof { socket } => {
                    s.incoming.get_mut(&socket).expect("a server socket").end(socket);
                    s.eofs += 1;
                }
                Completion::Sent { socket, bytes, queued } => {
                    let sent = s.sent.get_mut(&socket).expect("client socket");
                    *sent += bytes;
                    assert_eq!(*sent + queued, STREAM, "{socket}: send accounting");
                }
                Completion::ShutdownDone { socket, result } => {
                    result.unwrap_or_else(|e| panic!("{socket}: shutdown: {e}"));
                    assert_eq!(s.sent[&socket], STREAM, "{socket}: shut down before sending all");
                    s.shutdowns += 1;
                }
                other => panic!("unexpected {other:?}"),
            },
            |_, s| {
                // The previous turn's buffers go back; this turn's last ones are kept.
                s.held = std::mem::take(&mut s.fresh);
                s.eofs == CONNECTIONS && s.shutdowns == CONNECTIONS
            },
            |driver, s| {
                let behind: Vec<String> = s
                    .incoming
                    .iter()
                    .filter(|(_, i)| !i.eof)
                    .take(8)
                    .map(|(id, i)| format!("{id}: {}/{STREAM}", i.received))
                    .collect();
                format!(
                    "{}/{CONNECTIONS} streams complete, {}/{CONNECTIONS} shutdowns, \
                     {} buffers available, {} held; incomplete: {behind:?}",
                    s.eofs,
                    s.shutdowns,
                    driver.buffers_available(),
                    s.held.len()
                )
            },
        );

        assert!(
            state.most_lent <= u32::from(BUF_COUNT),
            "the pool never grows: at most {BUF_COUNT} buffers lent, saw {}",
            state.most_lent
        );
        drop(std::mem::take(&mut state.held));
        drop(std::mem::take(&mut state.fresh));
        assert_eq!(
            driver.buffers_available(),
            u32::from(BUF_COUNT),
            "every buffer is back in the pool once the caller dropped them"
        );
        for pair in &pairs {
            assert!(driver.close(pair.client));
            assert!(driver.close(pair.server));
        }
        assert!(driver.close(listener));
        settle(&mut driver, 0);
        assert_eq!(driver.buffers_available(), u32::from(BUF_COUNT));

        let stats = driver.stats();
        eprintln!(
            "{backend:?}: {turns} turns, at most {} buffers lent at once; stats: {stats:?}",
            state.most_lent
        );
        // Both backends count a receive that found the pool empty (io_uring: ENOBUFS; poll:
        // a readable socket left unread for want of a buffer).
        assert!(
            stats.buffer_starvations > 0,
            "the receives never ran out of buffers: the test did not exercise starvation"
        );
    }
}
