//! `Runtime::on_signal`: SIGHUP and SIGUSR1 sent to this process reach their handlers on
//! core 0, in the order the handlers were added; SIGINT and SIGTERM cannot be routed
//! (they keep their shutdown meaning).
//!
//! One test in this binary: it raises signals in its own process, which every other test
//! of the binary would see. Both backends run in turn. Nothing sleeps: each delivery is
//! awaited on a channel, bounded by `common::LIMIT`.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::{Running, available, recv};
use ringwork::platform::BackendChoice;
use ringwork::signal::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use ringwork::{EngineError, Runtime};

#[test]
fn signals_reach_their_handlers_on_core_0() {
    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if !available(backend) {
            continue;
        }
        let runtime = Runtime::builder()
            .cores(2)
            .pin(false)
            .backend(backend)
            .build()
            .expect("build the runtime");
        let (tx, events) = crossbeam_channel::unbounded();
        for (signal, name) in [(SIGHUP, "hup"), (SIGUSR1, "usr1"), (SIGHUP, "hup again")] {
            let tx = tx.clone();
            runtime
                .on_signal(signal, move |reactor| {
                    let _ = tx.send((name, reactor.core_index(), reactor.backend()));
                })
                .expect("route a signal");
        }
        for signal in [SIGINT, SIGTERM] {
            let refused = runtime.on_signal(signal, |_| {});
            assert!(
                matches!(refused, Err(EngineError::Config { .. })),
                "{signal}"
            );
        }
        let (ready_tx, ready) = crossbeam_channel::unbounded();
        let running = Running::start(runtime, move |_reactor| {
            let _ = ready_tx.send(());
            Ok(())
        });
        recv(&ready, "core 0 started");
        recv(&ready, "core 1 started");
        let kind = if backend == BackendChoice::Uring {
            ringwork::BackendKind::Uring
        } else {
            ringwork::BackendKind::Poll
        };
        signal_hook::low_level::raise(SIGHUP).expect("raise SIGHUP");
        assert_eq!(recv(&events, "SIGHUP"), ("hup", 0, kind));
        assert_eq!(
            recv(&events, "SIGHUP's second handler"),
            ("hup again", 0, kind)
        );
        signal_hook::low_level::raise(SIGUSR1).expect("raise SIGUSR1");
        assert_eq!(recv(&events, "SIGUSR1"), ("usr1", 0, kind));
        running.handle.shutdown(Duration::ZERO);
        running.join().expect("the runtime stops");
        assert!(
            events.try_recv().is_err(),
            "one call per handler and delivery"
        );
    }
}
