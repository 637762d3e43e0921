//! `ReconnectingClient` on every backend, against a server that goes up and down: a
//! `std::net` listener on one port that the test closes and binds again. Retry delays are
//! checked against the backoff policy, and pass on a `ManualClock`, so the test never waits
//! for them; it waits only on events (the client's, a connection accepted).

mod common;

use std::cell::RefCell;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use common::{Sink, manual_reactor, recording_factory, turn_now, wait};
use ringwork::platform::BackendChoice;
use ringwork::{Backoff, LostKind, Reactor, ReconnectEvent, ReconnectState, ReconnectingClient};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

type Events = Rc<RefCell<Vec<ReconnectEvent>>>;

/// A loopback port nothing listens on now.
fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// The server, up: a listener on `addr` (SO_REUSEADDR, so the port is free again at once).
fn server_up(addr: SocketAddr) -> TcpListener {
    let listener = TcpListener::bind(addr).expect("bind the server's port again");
    listener.set_nonblocking(true).unwrap();
    listener
}

/// Turns until `events` holds `n` events; returns the new ones.
#[track_caller]
fn next_events(
    reactor: &mut Reactor,
    events: &Events,
    seen: &mut usize,
    n: usize,
) -> Vec<ReconnectEvent> {
    let want = *seen + n;
    wait(
        reactor,
        |_| events.borrow().len() >= want,
        || format!("{n} events: {:?}", events.borrow()),
    );
    let new = events.borrow()[*seen..want].to_vec();
    *seen = want;
    new
}

/// Whether `event` is a retry after `delay`.
fn retrying(event: &ReconnectEvent, retry: u32, delay: Duration) -> bool {
    matches!(event, ReconnectEvent::Retrying { retry: r, delay: d } if *r == retry && *d == delay)
}

/// Accepts the client's connection (already completed by the kernel when the client saw
/// `connection_made`).
fn accept(listener: &TcpListener) -> TcpStream {
    let (stream, _) = listener
        .accept()
        .expect("the client's connection is in the backlog");
    stream.set_nonblocking(false).unwrap();
    stream
}

ringwork::platform::test_all_backends! {
    /// Down: attempts are refused and retried after 1, 2, 4 s, then 5 s (the maximum).
    /// Up: the next attempt connects, the protocol gets the server's bytes, and the delay
    /// is reset. Down again: the loss is retried after 1 s. Up again: connected again.
    /// `stop_trying` then lets the last connection end without a new attempt.
    fn reconnects_to_a_server_that_goes_up_and_down(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let addr = free_addr();
        let events = Events::default();
        let log = Rc::clone(&events);
        let (factory, protocols) = recording_factory(|| Sink);
        let backoff = Backoff::new().initial(secs(1)).factor(2.0).max_delay(secs(5)).jitter(0.0);
        let client = ReconnectingClient::new(addr)
            .backoff(backoff)
            .observe(move |event| log.borrow_mut().push(event.clone()))
            .start(&reactor.handle(), factory);
        let mut seen = 0;

        // Down: refused, with growing delays.
        for (retry, delay) in [(1, secs(1)), (2, secs(2)), (3, secs(4)), (4, secs(5)), (5, secs(5))] {
            let got = next_events(&mut reactor, &events, &mut seen, 3);
            assert!(matches!(got[0], ReconnectEvent::Attempt { .. }), "{got:?}");
            assert!(matches!(got[1], ReconnectEvent::Lost { kind: LostKind::ConnectFailed, was_connected: false, .. }), "{got:?}");
            assert!(retrying(&got[2], retry, delay), "retry {retry}: {got:?}");
            assert!(matches!(client.state(), ReconnectState::Waiting { .. }));
            // Not a moment early.
            clock.advance(delay - Duration::from_millis(1));
            turn_now(&mut reactor);
            assert_eq!(events.borrow().len(), seen, "an attempt before the delay passed");
            if retry == 5 {
                break;
            }
            clock.advance(Duration::from_millis(1));
        }
        assert_eq!(client.retries(), 5);

        // Up: the next attempt connects and the delay is reset.
        let listener = server_up(addr);
        clock.advance(Duration::from_millis(1));
        let got = next_events(&mut reactor, &events, &mut seen, 2);
        assert!(matches!(got[1], ReconnectEvent::Connected { .. }), "{got:?}");
        assert_eq!(client.retries(), 0);
        assert_eq!(client.attempts(), 6);
        let mut stream = accept(&listener);
        stream.write_all(b"hello").unwrap();
        let protocol = common::nth(&protocols, 5);
        wait(&mut reactor, |_| protocol.borrow().bytes == b"hello", || protocol.borrow().summary());

        // Down again: lost, retried after the initial delay, refused, retried after 2 s.
        drop(stream);
        drop(listener);
        let got = next_events(&mut reactor, &events, &mut seen, 2);
        assert!(matches!(got[0], ReconnectEvent::Lost { kind: LostKind::Done, was_connected: true, .. }), "{got:?}");
        assert!(retrying(&got[1], 1, secs(1)), "{got:?}");
        clock.advance(secs(1));
        let got = next_events(&mut reactor, &events, &mut seen, 3);
        assert!(retrying(&got[2], 2, secs(2)), "{got:?}");

        // Up again.
        let listener = server_up(addr);
        clock.advance(secs(2));
        let got = next_events(&mut reactor, &events, &mut seen, 2);
        assert!(matches!(got[1], ReconnectEvent::Connected { .. }), "{got:?}");
        let stream = accept(&listener);

        // Stop trying: the connection stays up; once it ends, nothing follows.
        client.stop_trying();
        assert!(matches!(client.state(), ReconnectState::Connected(_)));
        drop(stream);
        let got = next_events(&mut reactor, &events, &mut seen, 2);
        assert!(matches!(got[0], ReconnectEvent::Lost { .. }), "{got:?}");
        assert_eq!(got[1], ReconnectEvent::Stopped);
        assert_eq!(client.state(), ReconnectState::Stopped);
        clock.advance(secs(3600));
        turn_now(&mut reactor);
        assert_eq!(events.borrow().len(), seen, "an attempt after stop_trying");
        assert_eq!(reactor.next_deadline(), None);
    }

    /// With `max_retries`, the client gives up after that many failures in a row;
    /// `stop_trying` while waiting cancels the scheduled attempt.
    fn gives_up_after_max_retries_and_stops_while_waiting(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let addr = free_addr();
        let events = Events::default();
        let log = Rc::clone(&events);
        let backoff = Backoff::new().initial(secs(1)).jitter(0.0).max_retries(Some(2));
        let client = ReconnectingClient::new(addr)
            .backoff(backoff)
            .observe(move |event| log.borrow_mut().push(event.clone()))
            .start(&reactor.handle(), || Sink);
        let mut seen = 0;
        next_events(&mut reactor, &events, &mut seen, 3);
        clock.advance(secs(1));
        next_events(&mut reactor, &events, &mut seen, 3);
        clock.advance(secs(2));
        let got = next_events(&mut reactor, &events, &mut seen, 3);
        assert_eq!(got[2], ReconnectEvent::GaveUp { retries: 2 });
        assert_eq!(client.state(), ReconnectState::GaveUp);
        assert_eq!(client.attempts(), 3);
        assert_eq!(reactor.next_deadline(), None);

        let other = ReconnectingClient::new(addr)
            .backoff(Backoff::new().initial(secs(1)).jitter(0.0))
            .start(&reactor.handle(), || Sink);
        wait(&mut reactor, |_| matches!(other.state(), ReconnectState::Waiting { .. }), || format!("{other:?}"));
        other.stop_trying();
        assert_eq!(other.state(), ReconnectState::Stopped);
        assert_eq!(reactor.next_deadline(), None, "the scheduled attempt was cancelled");
        clock.advance(secs(60));
        turn_now(&mut reactor);
        assert_eq!(other.attempts(), 1);
    }

    /// A retry that falls due while the reactor shuts down (its grace period kept open by
    /// another connection) starts no new connection: the client stops.
    fn stops_when_the_reactor_shuts_down(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let (factory, servers) = recording_factory(|| Sink);
        let live = reactor.listen_tcp(common::any_port(), factory).unwrap();
        reactor.connect(&live.into(), Sink, ringwork::ConnectOptions::default()).unwrap();
        wait(&mut reactor, |_| servers.borrow().len() == 1, || "the other connection".into());
        let events = Events::default();
        let log = Rc::clone(&events);
        let client = ReconnectingClient::new(free_addr())
            .backoff(Backoff::new().initial(secs(1)).jitter(0.0))
            .observe(move |event| log.borrow_mut().push(event.clone()))
            .start(&reactor.handle(), || Sink);
        let mut seen = 0;
        next_events(&mut reactor, &events, &mut seen, 3);
        reactor.shutdown(secs(60));
        clock.advance(secs(1));
        let got = next_events(&mut reactor, &events, &mut seen, 1);
        assert_eq!(got, [ReconnectEvent::Stopped]);
        assert_eq!(client.state(), ReconnectState::Stopped);
        assert_eq!(client.attempts(), 1);
    }

    /// Jitter spreads the delays within their fraction, and one seed gives the same delays
    /// every time.
    fn jitter_is_bounded_and_repeatable_with_a_seed(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let addr = free_addr();
        let run = |reactor: &mut Reactor, seed: u64| {
            let delays = Rc::new(RefCell::new(Vec::new()));
            let log = Rc::clone(&delays);
            let backoff = Backoff::new().initial(secs(10)).factor(1.0).jitter(0.5).seed(seed).max_retries(Some(6));
            let client = ReconnectingClient::new(addr)
                .backoff(backoff)
                .observe(move |event| {
                    if let ReconnectEvent::Retrying { delay, .. } = event {
                        log.borrow_mut().push(*delay);
                    }
                })
                .start(&reactor.handle(), || Sink);
            while client.state() != ReconnectState::GaveUp {
                wait(reactor, |_| !matches!(client.state(), ReconnectState::Connecting(_)), || format!("{client:?}"));
                clock.advance(secs(15));
                turn_now(reactor);
            }
            delays.take()
        };
        let first = run(&mut reactor, 7);
        assert_eq!(first.len(), 6);
        assert!(first.iter().all(|d| *d >= secs(5) && *d <= secs(15)), "{first:?}");
        assert!(first.iter().any(|d| *d != first[0]), "no spread: {first:?}");
        assert_eq!(run(&mut reactor, 7), first);
        assert_ne!(run(&mut reactor, 8), first);
    }
}
