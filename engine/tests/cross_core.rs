//! Cross-core messages on every backend: a [`Runtime`] of two cores, each a reactor thread;
//! [`Cores::send`] runs a closure on the chosen core, [`Cores::broadcast`] once on each, also
//! when sent from a protocol callback; the runtime shuts down through its handle.
//!
//! The runtime runs on a background thread ([`common::Running`]); what happens on the cores
//! comes back over channels, each wait bounded by [`common::LIMIT`].

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Running, available, recv};
use crossbeam_channel::{Sender, unbounded};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, Cores, Protocol, Reactor, Runtime};

const CORES: usize = 2;
/// Stands for the test thread as a message's sender.
const TEST: usize = usize::MAX;

fn runtime(backend: BackendChoice) -> Option<Runtime> {
    if !available(backend) {
        return None;
    }
    Some(
        Runtime::builder()
            .cores(CORES)
            .pin(false)
            .backend(backend)
            .build()
            .unwrap(),
    )
}

/// Where a closure ran: the reactor's core index and the name of its thread.
fn place(reactor: &Reactor) -> (usize, String) {
    let thread = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .to_string();
    (reactor.core_index(), thread)
}

#[derive(Clone, Debug, Eq, Ord, PartialEq, PartialOrd)]
enum Ran {
    /// A `Cores::send` from core `from`.
    Sent {
        from: usize,
        on: usize,
        thread: String,
    },
    /// A `Cores::broadcast` from core `from` (or [`TEST`]).
    Broadcast {
        from: usize,
        on: usize,
        thread: String,
    },
    /// The last message sent to core `on`: everything sent to it before has run.
    Fence { on: usize },
}

fn core_thread(core: usize) -> String {
    format!("ringwork-core-{core}")
}

/// On a connection: "hello" makes it send a closure to the other core, which connects back
/// to this listener (the connection's local address) from there; "back" (that connection)
/// is reported. Both then close.
struct Relay {
    events: Sender<String>,
}

impl Protocol for Relay {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let cores = ctx.cores().expect("a runtime core has cores").clone();
        let here = cores.this_core();
        match data {
            b"hello" => {
                let addr = ctx.local_addr().expect("the listener's address");
                let events = self.events.clone();
                let other = (here + 1) % cores.len();
                let sent = cores.send(other, move |reactor| {
                    let (on, thread) = place(reactor);
                    let _ = events.send(format!("relay from {here} ran on {on} ({thread})"));
                    let back = Back {
                        events: events.clone(),
                    };
                    reactor
                        .connect(&addr, back, ConnectOptions::default())
                        .expect("connect back");
                });
                sent.expect("send to the other core");
                ctx.write(b"relayed");
                ctx.close();
            }
            b"back" => {
                let _ = self.events.send(format!("back arrived on {here}"));
                ctx.close();
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// The connection opened by the relayed closure: says "back", reads until closed.
struct Back {
    events: Sender<String>,
}

impl Protocol for Back {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let on = ctx.cores().map_or(TEST, Cores::this_core);
        let _ = self.events.send(format!("back connected on {on}"));
        ctx.write(b"back");
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

ringwork::platform::test_all_backends! {
    /// `send` runs on the target core's thread; `broadcast` runs once on every core (from
    /// a core and from outside); messages to a core run in order; sending to a core that
    /// does not exist, or after shutdown, is an error.
    fn send_and_broadcast(backend: BackendChoice) {
        let Some(runtime) = runtime(backend) else { return };
        let (tx, rx) = unbounded::<Ran>();
        let (cores_tx, cores_rx) = unbounded::<Cores>();
        let test_tx = tx.clone();
        let running = Running::start(runtime, move |reactor| {
            let cores = reactor.cores().expect("a runtime core has cores").clone();
            let from = reactor.core_index();
            assert_eq!(cores.this_core(), from);
            assert_eq!(cores.len(), CORES);
            if from == 0 {
                cores_tx.send(cores.clone()).unwrap();
            }
            let sent = tx.clone();
            cores.send((from + 1) % CORES, move |r| {
                let (on, thread) = place(r);
                let _ = sent.send(Ran::Sent { from, on, thread });
            })?;
            let sent = tx.clone();
            cores.broadcast(move |r| {
                let (on, thread) = place(r);
                let _ = sent.send(Ran::Broadcast { from, on, thread });
            });
            Ok(())
        });
        let cores = recv(&cores_rx, "core 0's Cores handle");
        // From the test thread too.
        {
            let sent = test_tx.clone();
            cores.broadcast(move |r| {
                let (on, thread) = place(r);
                let _ = sent.send(Ran::Broadcast {
                    from: TEST,
                    on,
                    thread,
                });
            });
        }
        assert!(
            cores.send(CORES, |_| {}).is_err(),
            "sending to core {CORES} of {CORES}"
        );

        let mut expected = Vec::new();
        for from in 0..CORES {
            let on = (from + 1) % CORES;
            expected.push(Ran::Sent {
                from,
                on,
                thread: core_thread(on),
            });
        }
        for from in (0..CORES).chain([TEST]) {
            for on in 0..CORES {
                expected.push(Ran::Broadcast {
                    from,
                    on,
                    thread: core_thread(on),
                });
            }
        }
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.push(recv(
                &rx,
                &format!("{} messages; got {got:?}", expected.len()),
            ));
        }
        // Fences: once they ran, anything run twice would have shown up before them.
        for on in 0..CORES {
            let fence = test_tx.clone();
            cores
                .send(on, move |_| {
                    let _ = fence.send(Ran::Fence { on });
                })
                .unwrap();
        }
        let mut fences = 0;
        while fences < CORES {
            match recv(&rx, "the fences") {
                Ran::Fence { .. } => fences += 1,
                other => got.push(other),
            }
        }
        got.sort();
        expected.sort();
        assert_eq!(
            got, expected,
            "messages run (each exactly once, on its core's thread)"
        );

        let start = Instant::now();
        running.handle.shutdown(Duration::from_secs(5));
        running
            .join()
            .expect("Runtime::run returns Ok after shutdown");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "an idle runtime waited out its grace"
        );
        assert!(cores.send(0, |_| {}).is_err(), "sending to a stopped core");
    }

    /// A protocol callback on one core sends a closure to the other core through
    /// `ctx.cores()`; it runs there and opens a connection from that core.
    fn message_from_a_protocol_callback(backend: BackendChoice) {
        let Some(runtime) = runtime(backend) else { return };
        let (events_tx, events) = unbounded::<String>();
        let (addr_tx, addr_rx) = unbounded::<SocketAddr>();
        let running = Running::start(runtime, move |reactor| {
            // One listener, on core 0 only: the relay must cross to core 1.
            if reactor.core_index() == 0 {
                let events = events_tx.clone();
                let bound = reactor.listen_tcp(common::any_port(), move || Relay {
                    events: events.clone(),
                })?;
                addr_tx.send(bound).unwrap();
            }
            Ok(())
        });
        let addr = recv(&addr_rx, "the listener's address");
        let mut stream = TcpStream::connect(addr).expect("connect to the runtime");
        stream.set_read_timeout(Some(common::LIMIT)).unwrap();
        stream.write_all(b"hello").unwrap();
        let mut reply = Vec::new();
        stream.read_to_end(&mut reply).expect("read the reply");
        assert_eq!(reply, b"relayed");

        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(recv(&events, &format!("relay events; got {got:?}")));
        }
        got.sort();
        assert_eq!(
            got,
            [
                "back arrived on 0".to_string(),
                "back connected on 1".to_string(),
                format!("relay from 0 ran on 1 ({})", core_thread(1)),
            ]
        );
        running.handle.shutdown(Duration::from_secs(5));
        running
            .join()
            .expect("Runtime::run returns Ok after shutdown");
    }

    /// A message that panics is contained: counted in that core's stats, and the core keeps
    /// running messages and shuts down normally.
    fn a_panicking_message_is_contained(backend: BackendChoice) {
        common::quiet_panics("deliberate test panic");
        let Some(runtime) = runtime(backend) else { return };
        let (cores_tx, cores_rx) = unbounded::<Cores>();
        let running = Running::start(runtime, move |reactor| {
            if reactor.core_index() == 0 {
                cores_tx
                    .send(reactor.cores().expect("cores").clone())
                    .unwrap();
            }
            Ok(())
        });
        let cores = recv(&cores_rx, "core 0's Cores handle");
        cores
            .send(1, |_| panic!("deliberate test panic in a message"))
            .unwrap();
        let (tx, rx) = unbounded();
        cores
            .send(1, move |r| {
                let _ = tx.send((r.core_index(), r.stats().panics));
            })
            .unwrap();
        assert_eq!(recv(&rx, "a message after the panicking one"), (1, 1));
        running.handle.shutdown(Duration::from_secs(5));
        running.join().expect("Runtime::run returns Ok");
    }
}
