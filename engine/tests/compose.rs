//! Deferred-style composition on every backend: `gather`, `try_gather`, `first_of` and
//! `with_timeout` over real operations, and cancellation that reaches the operation — a
//! connect future that loses (a timeout, a race, a failed sibling) aborts its connection.
//!
//! Time is a `ManualClock`: a timeout fires when the test moves the clock, so nothing
//! waits for it. A connect that must hang goes to a listener whose backlog is full.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use common::{Event, Lost, Sink, manual_reactor, recorded, recording_factory, turn_now, wait};
use ringwork::platform::BackendChoice;
use ringwork::{
    ConnId, ConnectError, ConnectOptions, Deferred, LostKind, Reactor, SockAddr, TimedOut,
    first_of, gather, try_gather,
};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A listener that records its connections, and its address.
fn server(reactor: &mut Reactor) -> (SockAddr, common::Logs) {
    let (factory, logs) = recording_factory(|| Sink);
    let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
    (addr.into(), logs)
}

/// A loopback address nothing listens on (connects are refused).
fn refused_addr() -> SockAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.into()
}

/// Where the spawned future puts its output.
type Slot<T> = Rc<RefCell<Option<T>>>;

/// Spawns `future` and returns where its output lands.
fn spawn<T: 'static>(reactor: &mut Reactor, future: impl Future<Output = T> + 'static) -> Slot<T> {
    let slot: Slot<T> = Rc::default();
    let out = Rc::clone(&slot);
    reactor.spawn_local(async move { *out.borrow_mut() = Some(future.await) });
    slot
}

ringwork::platform::test_all_backends! {
    /// `gather` of three connects yields three ids in order; `try_gather` with one refused
    /// connect fails with it at once and aborts the others, which were hanging.
    fn gather_connects_and_fail_fast(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (addr, servers) = server(&mut reactor);
        let handle = reactor.handle();
        let connects: Vec<_> = (0..3)
            .map(|_| handle.connect(addr.clone(), Sink, ConnectOptions::default()))
            .collect();
        let all = spawn(&mut reactor, gather(connects));
        wait(&mut reactor, |_| all.borrow().is_some(), || "three connects".into());
        let ids: Vec<ConnId> = all.borrow_mut().take().unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(ids.len(), 3);
        wait(&mut reactor, |_| servers.borrow().len() == 3, || "three accepts".into());

        let backlog = common::FullBacklog::new();
        let (hanging_a, log_a) = recorded(Sink);
        let (hanging_b, log_b) = recorded(Sink);
        let before = reactor.connections();
        let connects = vec![
            handle.connect(backlog.addr, hanging_a, ConnectOptions::default()),
            handle.connect(refused_addr(), Sink, ConnectOptions::default()),
            handle.connect(backlog.addr, hanging_b, ConnectOptions::default()),
        ];
        let failed = spawn(&mut reactor, try_gather(connects));
        wait(&mut reactor, |_| failed.borrow().is_some(), || "the refused connect".into());
        let error = failed.borrow_mut().take().unwrap().unwrap_err();
        assert_eq!(error.kind(), Some(LostKind::ConnectFailed), "{error}");
        wait(
            &mut reactor,
            |_| log_a.borrow().is_lost() && log_b.borrow().is_lost(),
            || format!("a: {}, b: {}", log_a.borrow().summary(), log_b.borrow().summary()),
        );
        for log in [&log_a, &log_b] {
            assert_eq!(log.borrow().events, [Event::Lost(Lost::Aborted)], "never made, aborted");
        }
        assert_eq!(reactor.connections(), before, "the aborted connects left no connection");
    }

    /// `with_timeout` of a connect that hangs yields `TimedOut` when the clock passes the
    /// timeout, and the dropped connect is aborted: its socket closed, its protocol told.
    fn a_timed_out_connect_is_aborted(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let backlog = common::FullBacklog::new();
        let handle = reactor.handle();
        let (client, log) = recorded(Sink);
        let bounded = handle.with_timeout(secs(5), handle.connect(backlog.addr, client, ConnectOptions::default()));
        let outcome = spawn(&mut reactor, bounded);
        turn_now(&mut reactor);
        assert_eq!(reactor.connections(), 1, "the connect started");
        clock.advance(secs(5));
        wait(&mut reactor, |_| log.borrow().is_lost(), || log.borrow().summary());
        assert!(matches!(*outcome.borrow(), Some(Err(TimedOut { after })) if after == secs(5)));
        assert_eq!(log.borrow().events, [Event::Lost(Lost::Aborted)]);
        assert_eq!(reactor.connections(), 0);
        assert_eq!(reactor.next_deadline(), None, "the connect timeout left with the connection");
    }

    /// A connect that finishes within its timeout yields its id, and the timeout's sleep
    /// leaves the timer wheel.
    fn a_connect_within_its_timeout(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (addr, servers) = server(&mut reactor);
        let handle = reactor.handle();
        let (client, log) = recorded(Sink);
        let bounded = handle.with_timeout(secs(5), handle.connect(addr, client, ConnectOptions::default()));
        let outcome = spawn(&mut reactor, bounded);
        wait(&mut reactor, |_| outcome.borrow().is_some(), || log.borrow().summary());
        let id = outcome.borrow_mut().take().unwrap().unwrap().unwrap();
        assert_eq!(log.borrow().id, Some(id));
        assert_eq!(log.borrow().events, [Event::Made]);
        wait(&mut reactor, |_| servers.borrow().len() == 1, || "the accept".into());
        assert_eq!(reactor.next_deadline(), None);
    }

    /// `first_of` a hanging connect and a sleep: the sleep wins when the clock passes it,
    /// and the connect is aborted. A losing `Deferred` tells its producer nobody waits.
    fn first_of_cancels_the_losers(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let backlog = common::FullBacklog::new();
        let handle = reactor.handle();
        let (client, log) = recorded(Sink);
        let connect = handle.connect(backlog.addr, client, ConnectOptions::default());
        let sleep = handle.sleep(secs(2));
        let race: Vec<std::pin::Pin<Box<dyn Future<Output = &'static str>>>> = vec![
            Box::pin(async move { connect.await.map_or("connect failed", |_| "connected") }),
            Box::pin(async move { sleep.await.map_or("sleep canceled", |()| "slept") }),
        ];
        let winner = spawn(&mut reactor, first_of(race));
        clock.advance(secs(2));
        wait(&mut reactor, |_| winner.borrow().is_some(), || "the race".into());
        assert_eq!(*winner.borrow(), Some(Some((1, "slept"))));
        wait(&mut reactor, |_| log.borrow().is_lost(), || log.borrow().summary());
        assert_eq!(log.borrow().events, [Event::Lost(Lost::Aborted)]);

        let (fast, resolve_fast) = Deferred::new();
        let (slow, resolve_slow) = Deferred::<u32>::new();
        let winner = spawn(&mut reactor, first_of([fast, slow]));
        resolve_fast.resolve(7);
        wait(&mut reactor, |_| winner.borrow().is_some(), || "the deferreds".into());
        assert_eq!(*winner.borrow(), Some(Some((0, Ok(7)))));
        assert!(resolve_slow.is_canceled(), "the loser was dropped");
        let nothing = spawn(&mut reactor, first_of(Vec::<Deferred<u32>>::new()));
        wait(&mut reactor, |_| nothing.borrow().is_some(), || "an empty race".into());
        assert_eq!(*nothing.borrow(), Some(None));
    }

    /// A connect future says why it failed: refused, or timed out after its connect
    /// timeout (when the manual clock passes it).
    fn connect_errors_have_context(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let handle = reactor.handle();
        let refused = spawn(&mut reactor, handle.connect(refused_addr(), Sink, ConnectOptions::default()));
        wait(&mut reactor, |_| refused.borrow().is_some(), || "the refusal".into());
        let error = refused.borrow_mut().take().unwrap().unwrap_err();
        assert!(matches!(error, ConnectError::Failed { kind: LostKind::ConnectFailed, .. }), "{error:?}");
        assert!(error.to_string().contains("refused"), "{error}");

        let backlog = common::FullBacklog::new();
        let options = ConnectOptions::new().timeout(secs(30));
        let late = spawn(&mut reactor, handle.connect(backlog.addr, Sink, options));
        turn_now(&mut reactor);
        clock.advance(secs(30));
        wait(&mut reactor, |_| late.borrow().is_some(), || "the connect timeout".into());
        let error = late.borrow_mut().take().unwrap().unwrap_err();
        assert!(matches!(error, ConnectError::TimedOut { after } if after == secs(30)), "{error:?}");
    }

    /// A connect future dropped in the turn it was made never starts its connect: the
    /// protocol is dropped without a callback and no socket is opened.
    fn a_connect_dropped_before_it_starts_never_starts(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (addr, servers) = server(&mut reactor);
        let (client, log) = recorded(Sink);
        drop(reactor.handle().connect(addr, client, ConnectOptions::default()));
        turn_now(&mut reactor);
        turn_now(&mut reactor);
        assert!(log.borrow().events.is_empty(), "{}", log.borrow().summary());
        assert_eq!(Rc::strong_count(&log), 1, "the protocol was dropped");
        assert_eq!(reactor.connections(), 0);
        assert!(servers.borrow().is_empty());
    }
}
