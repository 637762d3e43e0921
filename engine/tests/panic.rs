//! Panic isolation on every backend: a protocol (or factory) that panics loses its own
//! connection only — the peer sees a reset, the panicked protocol gets no further callback,
//! the panic is counted — and the core keeps serving every other connection.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use common::{
    Event, Log, Logs, Lost, Sink, nth, reactor, recorded, recording_factory, summaries, wait,
};
use ringwork::platform::BackendChoice;
use ringwork::{ConnId, ConnectOptions, Context, Protocol, Reactor, SockAddr};

/// In every deliberate panic message (kept off stderr by [`common::quiet_panics`]).
const MARKER: &str = "deliberate test panic";

/// What a server connection does besides echoing.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Echo,
    PanicOnMade,
}

/// Echoes; panics on "PANIC", or in `connection_made` when told to.
struct Fragile {
    mode: Mode,
}

impl Protocol for Fragile {
    fn connection_made(&mut self, _ctx: &mut Context<'_>) {
        if let Mode::PanicOnMade = self.mode {
            panic!("{MARKER} in connection_made");
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if data.windows(5).any(|w| w == b"PANIC") {
            panic!("{MARKER} in data_received");
        }
        ctx.write(data);
    }
}

/// A listener whose connections take their modes from `modes` (then plain echo).
fn fragile_server(reactor: &mut Reactor, modes: &[Mode]) -> (SockAddr, Logs) {
    let modes = Rc::new(RefCell::new(modes.iter().copied().collect::<VecDeque<_>>()));
    let (factory, logs) = recording_factory(move || Fragile {
        mode: modes.borrow_mut().pop_front().unwrap_or(Mode::Echo),
    });
    (
        reactor
            .listen_tcp(common::any_port(), factory)
            .unwrap()
            .into(),
        logs,
    )
}

/// A bystander: a client on the same core whose echoes must keep working.
struct Bystander {
    id: ConnId,
    log: Log,
    sent: Vec<u8>,
}

impl Bystander {
    fn connect(reactor: &mut Reactor, addr: &SockAddr) -> Bystander {
        let (client, log) = recorded(Sink);
        let id = reactor
            .connect(addr, client, ConnectOptions::default())
            .unwrap();
        Bystander {
            id,
            log,
            sent: Vec::new(),
        }
    }

    /// Sends `message` and waits for its echo (all earlier echoes included).
    fn echo(&mut self, reactor: &mut Reactor, message: &[u8]) {
        self.sent.extend_from_slice(message);
        reactor.with_conn(self.id, |ctx| ctx.write(message));
        let (log, sent) = (&self.log, &self.sent);
        wait(
            reactor,
            |_| log.borrow().bytes == *sent || log.borrow().is_lost(),
            || {
                format!(
                    "the bystander's echo of {:?}: {}",
                    String::from_utf8_lossy(message),
                    log.borrow().summary()
                )
            },
        );
        assert_eq!(
            String::from_utf8_lossy(&log.borrow().bytes),
            String::from_utf8_lossy(sent),
            "the bystander's echo: {}",
            log.borrow().summary()
        );
    }

    /// Closes it; both ends finish cleanly.
    fn finish(self, reactor: &mut Reactor, server: &Log) {
        reactor.with_conn(self.id, |ctx| ctx.close());
        wait(
            reactor,
            |_| self.log.borrow().is_lost() && server.borrow().is_lost(),
            || "the bystander to finish".into(),
        );
        assert_eq!(
            self.log.borrow().lost(),
            Some(Lost::Done),
            "bystander: {}",
            self.log.borrow().summary()
        );
        assert_eq!(
            server.borrow().lost(),
            Some(Lost::Done),
            "bystander's server: {}",
            server.borrow().summary()
        );
    }
}

/// Waits for `victim` (a client) to end, and checks it saw a reset and no bytes.
#[track_caller]
fn assert_reset(reactor: &mut Reactor, victim: &Log) {
    wait(
        reactor,
        |_| victim.borrow().is_lost(),
        || {
            format!(
                "the panicked connection's peer to end: {}",
                victim.borrow().summary()
            )
        },
    );
    let victim = victim.borrow();
    assert_eq!(
        victim.lost(),
        Some(Lost::Reset),
        "the peer of a panicked protocol: {}",
        victim.summary()
    );
    assert!(
        victim.bytes.is_empty(),
        "the peer got bytes: {}",
        victim.summary()
    );
}

ringwork::platform::test_all_backends! {
    /// A panic in `data_received`: its connection is reset, the protocol gets no
    /// `connection_lost`, one panic is counted, and another connection's echo works before
    /// and after.
    fn panic_in_data_received(backend: BackendChoice) {
        common::quiet_panics(MARKER);
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, servers) = fragile_server(&mut reactor, &[]);
        let mut bystander = Bystander::connect(&mut reactor, &addr);
        bystander.echo(&mut reactor, b"before;");

        let (victim, victim_log) = recorded(common::Hello(b"PANIC".to_vec()));
        reactor.connect(&addr, victim, ConnectOptions::default()).unwrap();
        assert_reset(&mut reactor, &victim_log);
        bystander.echo(&mut reactor, b"after;");
        wait(
            &mut reactor,
            |r| r.connections() == 2,
            || "the panicked connection to leave the table".into(),
        );

        let panicked = nth(&servers, 1);
        assert_eq!(
            panicked.borrow().events,
            [Event::Made, Event::Data(5)],
            "the panicked protocol got a callback after its panic"
        );
        assert_eq!(reactor.stats().panics, 1, "panics counted");
        bystander.finish(&mut reactor, &nth(&servers, 0));
        assert_eq!(
            servers.borrow().len(),
            2,
            "server connections: {}",
            summaries(&servers)
        );
    }

    /// A panic in `connection_made`: the same isolation.
    fn panic_in_connection_made(backend: BackendChoice) {
        common::quiet_panics(MARKER);
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, servers) = fragile_server(&mut reactor, &[Mode::Echo, Mode::PanicOnMade]);
        let mut bystander = Bystander::connect(&mut reactor, &addr);
        bystander.echo(&mut reactor, b"before;");

        let (victim, victim_log) = recorded(Sink);
        reactor.connect(&addr, victim, ConnectOptions::default()).unwrap();
        assert_reset(&mut reactor, &victim_log);
        bystander.echo(&mut reactor, b"after;");
        wait(
            &mut reactor,
            |r| r.connections() == 2,
            || "the panicked connection to leave the table".into(),
        );

        let panicked = nth(&servers, 1);
        assert_eq!(
            panicked.borrow().events,
            [Event::Made],
            "the panicked protocol got a callback after its panic"
        );
        assert_eq!(reactor.stats().panics, 1, "panics counted");
        bystander.finish(&mut reactor, &nth(&servers, 0));
    }

    /// A factory that panics while building a protocol: that connection is reset, the
    /// listener keeps accepting, other connections are served.
    fn panic_in_factory(backend: BackendChoice) {
        common::quiet_panics(MARKER);
        let Some(mut reactor) = reactor(backend) else { return };
        let built = Rc::new(Cell::new(0));
        let (factory, servers) = {
            let built = Rc::clone(&built);
            recording_factory(move || {
                built.set(built.get() + 1);
                if built.get() == 2 {
                    panic!("{MARKER} in the factory");
                }
                Fragile { mode: Mode::Echo }
            })
        };
        let addr: SockAddr = reactor
            .listen_tcp(common::any_port(), factory)
            .unwrap()
            .into();
        let mut bystander = Bystander::connect(&mut reactor, &addr);
        bystander.echo(&mut reactor, b"before;");

        let (victim, victim_log) = recorded(Sink);
        reactor.connect(&addr, victim, ConnectOptions::default()).unwrap();
        assert_reset(&mut reactor, &victim_log);
        bystander.echo(&mut reactor, b"after;");

        // The listener still accepts.
        let mut newcomer = Bystander::connect(&mut reactor, &addr);
        newcomer.echo(&mut reactor, b"newcomer;");
        assert_eq!(built.get(), 3, "protocols built");
        assert_eq!(reactor.stats().panics, 1, "panics counted");
        bystander.finish(&mut reactor, &nth(&servers, 0));
        newcomer.finish(&mut reactor, &nth(&servers, 1));
    }
}
