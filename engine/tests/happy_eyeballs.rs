//! Connect by name with Happy Eyeballs v2 (RFC 8305) on every backend: a fake resolver
//! answers (or holds its answers until the test releases them) and a manual clock drives a
//! real reactor, so the Resolution Delay and the Connection Attempt Delay are tested
//! without waiting.
//!
//! The name's IPv6 and IPv4 addresses share one port: `[::1]:P` and `127.0.0.1:P`. A
//! "black-holed" address is a listener whose accept queue is full (the kernel drops the
//! SYNs, so the connect hangs); a "refused" one is a socket bound to the address that does
//! not listen (the kernel answers with a reset). Tests that need IPv6 on loopback say
//! `skipped: no IPv6 on loopback` when the host has none.

mod common;

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use common::{
    Event, FullBacklog, Lost, Sink, manual_reactor, recorded, recording_factory, turn_now, wait,
};
use ringwork::names::AddressFamily;
use ringwork::platform::BackendChoice;
use ringwork::testing::FakeResolver;
use ringwork::{ConnectError, ConnectOptions, LostKind, Reactor};

const V6: &str = "::1";
const V4: &str = "127.0.0.1";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whether `[::1]` can be bound here (says so when it cannot).
fn ipv6_loopback() -> bool {
    match std::net::TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(error) => {
            eprintln!("skipped: no IPv6 on loopback ({error})");
            false
        }
    }
}

/// A socket bound to `addr` that does not listen: connects to it are refused, and
/// nothing else can take the address while it lives.
fn refusing(addr: SocketAddr) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Retries `make` with fresh ports until both families' sockets get the same one (a port
/// free for IPv6 may be taken for IPv4).
fn same_port<T>(
    mut make: impl FnMut(u16) -> io::Result<T>,
    first: impl Fn() -> io::Result<u16>,
) -> T {
    for _ in 0..50 {
        let port = first().expect("a free IPv6 port");
        if let Ok(made) = make(port) {
            return made;
        }
    }
    panic!("no port free for both IPv4 and IPv6 in 50 tries");
}

/// Where the spawned future puts its output.
type Slot<T> = Rc<RefCell<Option<T>>>;

fn spawn<T: 'static>(reactor: &mut Reactor, future: impl Future<Output = T> + 'static) -> Slot<T> {
    let slot: Slot<T> = Rc::default();
    let out = Rc::clone(&slot);
    reactor.spawn_local(async move { *out.borrow_mut() = Some(future.await) });
    slot
}

/// A fake resolver on `reactor` with `name` -> `[::1]`, `127.0.0.1`.
fn dual(reactor: &mut Reactor, name: &str) -> FakeResolver {
    let fake = FakeResolver::new();
    fake.set(name, &[ip(V6)], &[ip(V4)]);
    reactor.set_name_resolver(Rc::new(fake.clone()));
    fake
}

ringwork::platform::test_all_backends! {
    /// IPv6 black-holed: the IPv6 attempt runs alone for the Connection Attempt Delay
    /// (250 ms), then IPv4 starts beside it and wins; the IPv6 attempt is aborted and the
    /// protocol sees only the winner.
    fn ipv6_black_holed_ipv4_wins_after_the_attempt_delay(backend: BackendChoice) {
        if !ipv6_loopback() { return; }
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let (factory, accepted) = recording_factory(|| Sink);
        // Shared, so a retry with another port can hand the listener a factory again (a
        // listen that failed has consumed the one it was given).
        let factory = Rc::new(RefCell::new(factory));
        let (hole, port) = same_port(
            |port| {
                let hole = FullBacklog::at(SocketAddr::new(ip(V6), port))?;
                let shared = Rc::clone(&factory);
                let f = move || (shared.borrow_mut())();
                match reactor.listen_tcp(SocketAddr::new(ip(V4), port), f) {
                    Ok(_) => Ok((hole, port)),
                    Err(_) => Err(io::Error::other("taken")),
                }
            },
            || Ok(std::net::TcpListener::bind("[::1]:0")?.local_addr()?.port()),
        );
        let fake = dual(&mut reactor, "dual.test");
        let handle = reactor.handle();
        let (client, log) = recorded(Sink);
        let connect = handle.connect_host("dual.test", port, client, ConnectOptions::new());
        let outcome = spawn(&mut reactor, connect);
        for _ in 0..5 { turn_now(&mut reactor); }
        assert_eq!(reactor.connections(), 1, "only the IPv6 attempt runs");
        assert!(accepted.borrow().is_empty(), "IPv4 not tried yet");
        assert_eq!(fake.lookups(), [("dual.test".to_owned(), AddressFamily::V6), ("dual.test".to_owned(), AddressFamily::V4)]);
        clock.advance(ms(249));
        for _ in 0..5 { turn_now(&mut reactor); }
        assert_eq!(reactor.connections(), 1, "still alone at 249 ms");
        clock.advance(ms(1));
        wait(&mut reactor, |_| outcome.borrow().is_some(), || log.borrow().summary());
        let id = outcome.borrow_mut().take().unwrap().expect("connected over IPv4");
        assert_eq!(log.borrow().events, [Event::Made], "the protocol saw the winner only");
        assert_eq!(log.borrow().id, Some(id));
        let peer = reactor.with_conn(id, |ctx| ctx.peer_addr().unwrap().as_socket().unwrap());
        assert_eq!(peer, SocketAddr::new(ip(V4), port));
        wait(&mut reactor, |r| r.connections() == 2, || "the winner and its accepted peer only".into());
        assert_eq!(accepted.borrow().len(), 1);
        drop(hole);
    }

    /// IPv6 refused: IPv4 starts at once (the clock never moves).
    fn ipv6_refused_ipv4_at_once(backend: BackendChoice) {
        if !ipv6_loopback() { return; }
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (factory, accepted) = recording_factory(|| Sink);
        // Shared, so a retry with another port can hand the listener a factory again (a
        // listen that failed has consumed the one it was given).
        let factory = Rc::new(RefCell::new(factory));
        let (_refusing, port) = same_port(
            |port| {
                let socket = refusing(SocketAddr::new(ip(V6), port))?;
                let shared = Rc::clone(&factory);
                let f = move || (shared.borrow_mut())();
                match reactor.listen_tcp(SocketAddr::new(ip(V4), port), f) {
                    Ok(_) => Ok((socket, port)),
                    Err(_) => Err(io::Error::other("taken")),
                }
            },
            || Ok(std::net::TcpListener::bind("[::1]:0")?.local_addr()?.port()),
        );
        dual(&mut reactor, "dual.test");
        let (client, log) = recorded(Sink);
        let connect = reactor.handle().connect_host("dual.test", port, client, ConnectOptions::new());
        let outcome = spawn(&mut reactor, connect);
        wait(&mut reactor, |_| outcome.borrow().is_some(), || log.borrow().summary());
        let id = outcome.borrow_mut().take().unwrap().expect("connected over IPv4");
        let peer = reactor.with_conn(id, |ctx| ctx.peer_addr().unwrap().as_socket().unwrap());
        assert_eq!(peer.ip(), ip(V4));
        assert_eq!(log.borrow().events, [Event::Made]);
        wait(&mut reactor, |_| accepted.borrow().len() == 1, || "the accept".into());
    }

    /// Both refused: one error naming the host and both attempts.
    fn both_refused_error_lists_both(backend: BackendChoice) {
        if !ipv6_loopback() { return; }
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (_sockets, port) = same_port(
            |port| {
                let a = refusing(SocketAddr::new(ip(V6), port))?;
                let b = refusing(SocketAddr::new(ip(V4), port))?;
                Ok(((a, b), port))
            },
            || Ok(std::net::TcpListener::bind("[::1]:0")?.local_addr()?.port()),
        );
        dual(&mut reactor, "dual.test");
        let (client, log) = recorded(Sink);
        let connect = reactor.handle().connect_host("dual.test", port, client, ConnectOptions::new());
        let outcome = spawn(&mut reactor, connect);
        wait(&mut reactor, |_| outcome.borrow().is_some() && log.borrow().is_lost(), || log.borrow().summary());
        let error = outcome.borrow_mut().take().unwrap().unwrap_err();
        let ConnectError::Host(detail) = &error else { panic!("{error:?}") };
        assert_eq!(detail.attempts.len(), 2, "{error}");
        assert_eq!(error.kind(), Some(LostKind::ConnectFailed));
        let text = error.to_string();
        assert!(text.starts_with(&format!("cannot connect to dual.test:{port}: ")), "{text}");
        assert!(text.contains(&format!("[::1]:{port}: ")) && text.contains(&format!("127.0.0.1:{port}: ")), "{text}");
        assert!(text.contains("refused"), "{text}");
        assert_eq!(detail.io_kind(), Some(io::ErrorKind::ConnectionRefused));
        // The protocol got one connection_lost, never connection_made.
        assert_eq!(log.borrow().events.len(), 1, "{}", log.borrow().summary());
        assert_eq!(log.borrow().made(), 0);
        assert_eq!(reactor.connections(), 0);
    }

    /// An IPv4 answer first waits for IPv6 up to the Resolution Delay (50 ms): released
    /// within it, IPv6 goes first; never released, IPv4 starts at 50 ms.
    fn ipv4_first_waits_for_ipv6_up_to_the_resolution_delay(backend: BackendChoice) {
        if !ipv6_loopback() { return; }
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let (factory, _accepted) = recording_factory(|| Sink);
        // Shared, so a retry with another port can hand the listener a factory again (a
        // listen that failed has consumed the one it was given).
        let factory = Rc::new(RefCell::new(factory));
        let (v6_listener, port) = same_port(
            |port| {
                let v6 = std::net::TcpListener::bind(SocketAddr::new(ip(V6), port))?;
                let shared = Rc::clone(&factory);
                let f = move || (shared.borrow_mut())();
                match reactor.listen_tcp(SocketAddr::new(ip(V4), port), f) {
                    Ok(_) => Ok((v6, port)),
                    Err(_) => Err(io::Error::other("taken")),
                }
            },
            || Ok(std::net::TcpListener::bind("[::1]:0")?.local_addr()?.port()),
        );
        let fake = dual(&mut reactor, "slow6.test");
        fake.set("slow6.test", &[ip(V6)], &[ip(V4)]);
        fake.hold("slow6.test", AddressFamily::V6);
        let handle = reactor.handle();

        // Released within the delay: IPv6 is tried first and wins.
        let (client, log) = recorded(Sink);
        let outcome = spawn(&mut reactor, handle.connect_host("slow6.test", port, client, ConnectOptions::new()));
        for _ in 0..5 { turn_now(&mut reactor); }
        assert_eq!(reactor.connections(), 0, "IPv4 answered, but waits for IPv6");
        clock.advance(ms(30));
        for _ in 0..5 { turn_now(&mut reactor); }
        assert_eq!(reactor.connections(), 0, "still within the Resolution Delay");
        assert_eq!(fake.release("slow6.test", AddressFamily::V6), 1);
        wait(&mut reactor, |_| outcome.borrow().is_some(), || log.borrow().summary());
        let id = outcome.borrow_mut().take().unwrap().expect("connected");
        let peer = reactor.with_conn(id, |ctx| ctx.peer_addr().unwrap().as_socket().unwrap());
        assert_eq!(peer.ip(), ip(V6), "IPv6 first once it answered");

        // Never released: IPv4 starts once the 50 ms pass.
        fake.hold("slow6.test", AddressFamily::V6);
        let (client, log) = recorded(Sink);
        let outcome = spawn(&mut reactor, handle.connect_host("slow6.test", port, client, ConnectOptions::new()));
        let before = reactor.connections();
        for _ in 0..5 { turn_now(&mut reactor); }
        clock.advance(ms(49));
        for _ in 0..5 { turn_now(&mut reactor); }
        assert_eq!(reactor.connections(), before, "nothing before 50 ms");
        clock.advance(ms(1));
        wait(&mut reactor, |_| outcome.borrow().is_some(), || log.borrow().summary());
        let id = outcome.borrow_mut().take().unwrap().expect("connected");
        let peer = reactor.with_conn(id, |ctx| ctx.peer_addr().unwrap().as_socket().unwrap());
        assert_eq!(peer.ip(), ip(V4), "IPv4 after the Resolution Delay");
        turn_now(&mut reactor);
        assert_eq!(fake.dropped(), 1, "the IPv6 lookup still held was dropped with the race");
        drop(v6_listener);
    }

    /// The connect timeout bounds the whole race: lookups that never answer end in one
    /// error at the timeout, naming the host.
    fn the_connect_timeout_covers_the_lookups(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let fake = dual(&mut reactor, "mute.test");
        fake.hold("mute.test", AddressFamily::V6);
        fake.hold("mute.test", AddressFamily::V4);
        let (client, log) = recorded(Sink);
        let options = ConnectOptions::new().timeout(Duration::from_secs(3));
        let connect = reactor.handle().connect_host("mute.test", 80, client, options);
        let outcome = spawn(&mut reactor, connect);
        for _ in 0..5 { turn_now(&mut reactor); }
        clock.advance(Duration::from_secs(3));
        wait(&mut reactor, |_| outcome.borrow().is_some(), || log.borrow().summary());
        let error = outcome.borrow_mut().take().unwrap().unwrap_err();
        assert_eq!(error.kind(), Some(LostKind::ConnectTimeout), "{error}");
        assert_eq!(error.to_string(), "cannot connect to mute.test:80: timed out after 3s (no answer from the resolver)");
        wait(&mut reactor, |_| log.borrow().is_lost(), || log.borrow().summary());
        assert_eq!(log.borrow().made(), 0);
        turn_now(&mut reactor);
        assert_eq!(fake.dropped(), 2, "both lookups were dropped");
    }

    /// Literal addresses never reach the resolver; a name the resolver does not know fails
    /// with an error naming it and why.
    fn literals_skip_the_resolver_and_lookup_errors_name_the_host(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (factory, accepted) = recording_factory(|| Sink);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let fake = FakeResolver::new();
        reactor.set_name_resolver(Rc::new(fake.clone()));
        let handle = reactor.handle();
        let outcome = spawn(&mut reactor, handle.connect_host("127.0.0.1", addr.port(), Sink, ConnectOptions::new()));
        wait(&mut reactor, |_| outcome.borrow().is_some(), || "the literal connect".into());
        assert!(outcome.borrow_mut().take().unwrap().is_ok());
        wait(&mut reactor, |_| accepted.borrow().len() == 1, || "the accept".into());
        assert!(fake.lookups().is_empty(), "a literal was looked up: {:?}", fake.lookups());

        let (client, log) = recorded(Sink);
        let outcome = spawn(&mut reactor, handle.connect_host("nowhere.test", 80, client, ConnectOptions::new()));
        wait(&mut reactor, |_| outcome.borrow().is_some() && log.borrow().is_lost(), || log.borrow().summary());
        let error = outcome.borrow_mut().take().unwrap().unwrap_err();
        let ConnectError::Host(detail) = &error else { panic!("{error:?}") };
        assert!(detail.is_lookup_failure());
        assert_eq!(error.to_string(), "cannot connect to nowhere.test:80: cannot resolve nowhere.test: not in the fake resolver");
        assert!(matches!(log.borrow().lost(), Some(Lost::Other(text)) if text.contains("nowhere.test")));
    }

    /// The protocol form (`Context::connect_host` through `Reactor::connect_host`): the
    /// winner gets `connection_made` and its data; the handle tells its id.
    fn the_callback_form_connects_by_name(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let (factory, accepted) = recording_factory(|| common::Hello(b"hi".to_vec()));
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let fake = FakeResolver::new();
        fake.set("v4only.test", &[], &[ip(V4)]);
        reactor.set_name_resolver(Rc::new(fake.clone()));
        let (client, log) = recorded(Sink);
        let connect = reactor.connect_host("v4only.test", addr.port(), client, ConnectOptions::new()).unwrap();
        assert_eq!(connect.id(), None, "no winner yet");
        wait(&mut reactor, |_| log.borrow().bytes == b"hi", || log.borrow().summary());
        assert_eq!(connect.id(), log.borrow().id);
        assert_eq!(log.borrow().made(), 1);
        assert_eq!(accepted.borrow().len(), 1);
        connect.cancel();
        wait(&mut reactor, |_| log.borrow().is_lost(), || log.borrow().summary());
        assert_eq!(log.borrow().lost(), Some(Lost::Aborted));
    }
}

/// `RuntimeBuilder::name_resolver` builds one resolver per core, on that core: each core
/// connects by a name only its own resolver knows.
#[test]
fn a_runtime_builds_a_resolver_per_core() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use ringwork::Runtime;

    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if !common::available(backend) {
            continue;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let built = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&built);
        let runtime = Runtime::builder()
            .cores(2)
            .pin(false)
            .backend(backend)
            .name_resolver(move |reactor| {
                counted.fetch_add(1, Ordering::SeqCst);
                let fake = FakeResolver::new();
                let name = format!("core{}.test", reactor.core_index());
                fake.set(&name, &[], &[ip(V4)]);
                Rc::new(fake)
            })
            .build()
            .unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        let running = common::Running::start(runtime, move |reactor| {
            let name = format!("core{}.test", reactor.core_index());
            let connect = reactor
                .handle()
                .connect_host(&name, port, Sink, ConnectOptions::new());
            let tx = tx.clone();
            reactor.spawn_local(async move {
                let _ = tx.send(connect.await.map(drop).map_err(|e| e.to_string()));
            });
            Ok(())
        });
        for _ in 0..2 {
            assert_eq!(common::recv(&rx, "a core's connect by name"), Ok(()));
        }
        assert_eq!(built.load(Ordering::SeqCst), 2, "one resolver per core");
        running.handle.shutdown(Duration::ZERO);
        running.join().unwrap();
        drop(listener);
    }
}
