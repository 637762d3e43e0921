//! Completion-queue overflow, on every backend (the overflow assertion is io_uring's).
//!
//! Proves: with a tiny ring (2 submission entries, 4 completion entries) and 32 connections
//! receiving at once (multishot receives post many completions per submission), every byte
//! still arrives intact and in order, and under io_uring the completion queue really
//! overflowed (`Stats::cq_overflows > 0`: detected and flushed) while no completion was lost
//! (`Stats::cq_dropped == 0`). Under poll the same workload runs and its stats are printed.

mod common;

use std::collections::HashMap;

use ringwork_platform::{
    BackendChoice, BackendKind, Completion, DriverConfig, SocketId, test_all_backends, testing,
};

use common::{Incoming, connect_pairs, drive, listen, rng, seed, settle, start_streams};

const CONNECTIONS: usize = 32;
const STREAM: usize = 64 * 1024;

#[derive(Default)]
struct State {
    incoming: HashMap<SocketId, Incoming>,
    sent: HashMap<SocketId, usize>,
    eofs: usize,
    shutdowns: usize,
}

test_all_backends! {
    fn tiny_ring_overflows_without_losing_completions(backend: BackendChoice) {
        let config = DriverConfig {
            sq_entries: 2,
            cq_entries: 4,
            ..DriverConfig::default()
        };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let capabilities = driver.capabilities();
        eprintln!(
            "{backend:?}: ring of {} SQ / {} CQ entries, nodrop {}",
            capabilities.sq_entries, capabilities.cq_entries, capabilities.nodrop
        );
        let seed = seed("cq_overflow", 0xc0f);
        let mut rng = rng(seed);
        let (listener, addr) = listen(&mut driver);
        let pairs = connect_pairs(&mut driver, listener, &addr, CONNECTIONS);
        let mut state = State::default();
        (state.sent, state.incoming) =
            start_streams(&mut driver, &pairs, seed, STREAM, 16 * 1024, &mut rng);
        drive(
            &mut driver,
            &mut state,
            |_, s, c| match c {
                Completion::Received { socket, buf } => {
                    s.incoming.get_mut(&socket).expect("a server socket").take(socket, &buf);
                }
                Completion::Eof { socket } => {
                    s.incoming.get_mut(&socket).expect("a server socket").end(socket);
                    s.eofs += 1;
                }
                Completion::Sent { socket, bytes, queued } => {
                    let sent = s.sent.get_mut(&socket).expect("a client socket");
                    *sent += bytes;
                    assert_eq!(*sent + queued, STREAM, "{socket}: send accounting");
                }
                Completion::ShutdownDone { socket, result } => {
                    result.unwrap_or_else(|e| panic!("{socket}: shutdown: {e}"));
                    assert_eq!(s.sent[&socket], STREAM, "{socket}: shut down early");
                    s.shutdowns += 1;
                }
                other => panic!("unexpected {other:?}"),
            },
            |_, s| s.eofs == CONNECTIONS && s.shutdowns == CONNECTIONS,
            |driver, s| {
                let behind: Vec<String> = s
                    .incoming
                    .iter()
                    .filter(|(_, i)| !i.eof)
                    .take(8)
                    .map(|(id, i)| format!("{id}: {}/{STREAM}", i.received))
                    .collect();
                format!(
                    "{}/{CONNECTIONS} streams complete, {}/{CONNECTIONS} shutdowns; \
                     incomplete: {behind:?}; stats {:?}",
                    s.eofs,
                    s.shutdowns,
                    driver.stats()
                )
            },
        );
        for pair in &pairs {
            assert!(driver.close(pair.client));
            assert!(driver.close(pair.server));
        }
        assert!(driver.close(listener));
        settle(&mut driver, 0);
        let stats = driver.stats();
        eprintln!("{backend:?}: stats {stats:?}");
        assert_eq!(stats.cq_dropped, 0, "completions lost on overflow");
        if driver.backend() == BackendKind::Uring {
            assert!(
                stats.cq_overflows > 0,
                "the 4-entry completion queue never overflowed: the test proved nothing"
            );
        }
    }
}
