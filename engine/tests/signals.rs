//! `ShutdownHandle::on_signals` when logging fails: the signal thread starts the shutdown
//! before it logs the signal, and survives a log output that panics (as
//! tracing-subscriber's fmt layer does once stderr is closed: it reports the failed write
//! with `eprintln!`), so a second signal still stops the runtime at once.
//!
//! One test in this binary: it raises SIGTERM in its own process (with the handlers of
//! `on_signals` installed, nothing else here must see it). Both backends run in turn. The
//! server holds one connection open, so the first signal's graceful shutdown (a long grace)
//! cannot end the runtime: only the second signal, handled by the same thread after its
//! first log line panicked, can. Nothing sleeps: waits are bounded receives.

mod common;

use std::io;
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use common::{Running, available, recv};
use crossbeam_channel::{Sender, unbounded};
use ringwork::platform::BackendChoice;
use ringwork::{Context, Protocol, Reactor, Runtime};
use signal_hook::consts::SIGTERM;

/// Marks the panics this test provokes (kept out of the test's output).
const MARKER: &str = "log output failed (test)";

/// Tells the test it got its connection, then keeps it open.
struct Hold(crossbeam_channel::Sender<()>);

impl Protocol for Hold {
    fn connection_made(&mut self, _ctx: &mut Context<'_>) {
        let _ = self.0.send(());
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Told each time a signal thread writes a log line (just before that write panics).
static WRITES: OnceLock<Sender<()>> = OnceLock::new();

/// A log output that panics on the signal thread, as a closed stderr made the fmt layer do.
struct PanicOnSignalThread;

impl io::Write for PanicOnSignalThread {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if std::thread::current().name() == Some("ringwork-signals") {
            if let Some(tx) = WRITES.get() {
                let _ = tx.send(());
            }
            panic!("{MARKER}");
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn signals_stop_the_runtime_even_when_logging_panics() {
    common::quiet_panics(MARKER);
    let (writes_tx, writes) = unbounded();
    WRITES.set(writes_tx).expect("set once");
    tracing_subscriber::fmt()
        .with_writer(|| PanicOnSignalThread)
        .init();
    // Signal threads of the runtimes so far: each logs (and panics) on every signal.
    let mut threads = 0;
    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if !available(backend) {
            continue;
        }
        let runtime = Runtime::builder()
            .cores(1)
            .pin(false)
            .backend(backend)
            .build()
            .expect("build the runtime");
        runtime
            .shutdown_handle()
            .on_signals(Duration::from_secs(3600))
            .expect("install the signal handlers");
        threads += 1;
        let (setup_tx, setup) = unbounded();
        let (made_tx, made) = unbounded();
        let running = Running::start(runtime, move |reactor: &mut Reactor| {
            let made = made_tx.clone();
            let addr = reactor.listen_tcp(common::any_port(), move || Hold(made.clone()))?;
            let _ = setup_tx.send(addr);
            Ok(())
        });
        let addr = recv(&setup, "the server's address");
        let _client = TcpStream::connect(addr).expect("connect");
        recv(&made, "the server's connection");
        // A graceful shutdown that waits for the held connection (an hour's grace)...
        signal_hook::low_level::raise(SIGTERM).expect("raise SIGTERM");
        // (a signal raised again before the thread took the first would be merged with it)
        for _ in 0..threads {
            recv(&writes, "the signal threads' log lines");
        }
        // ... then the second signal: stop now, handled by the same thread, whose first log
        // line panicked.
        signal_hook::low_level::raise(SIGTERM).expect("raise SIGTERM again");
        running.join().expect("the runtime stops cleanly");
        for _ in 0..threads {
            recv(&writes, "the signal threads' second log lines");
        }
    }
}
