//! Cancelling a connect by name closes every socket it opened: a race with two attempts in
//! flight (both addresses black-holed) dropped, on every backend, leaves this process with
//! the descriptors it had before, and no connection on the reactor.
//!
//! Alone in its binary: it counts this process's descriptors (/proc/self/fd), which other
//! tests running alongside would disturb; the backends run one after the other. Nothing
//! sleeps: the final count is awaited by turning the reactor (io_uring closes descriptors
//! asynchronously), bounded by a failure limit.
#![cfg(target_os = "linux")]

mod common;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{FullBacklog, LIMIT, Lost, Sink, available, manual_reactor, recorded, turn_now};
use ringwork::platform::BackendChoice;
use ringwork::testing::FakeResolver;
use ringwork::{ConnectOptions, Reactor};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// Turns `reactor` (briefly each time) until `done`, failing after [`LIMIT`].
fn until(reactor: &mut Reactor, what: &str, mut done: impl FnMut(&mut Reactor) -> bool) {
    let deadline = Instant::now() + LIMIT;
    while !done(reactor) {
        assert!(Instant::now() < deadline, "still waiting for {what}");
        reactor.turn(Some(Duration::from_millis(10))).expect("turn");
    }
}

/// Two black-holed addresses of one name on one port (`[::1]:P` and `127.0.0.1:P`), or
/// two IPv4 ones (`127.0.0.1:P`, `127.0.0.2:P`) where IPv6 loopback is missing.
fn black_holes() -> (Vec<FullBacklog>, Vec<IpAddr>, u16) {
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    let ips: Vec<IpAddr> = if v6 {
        vec!["::1".parse().unwrap(), "127.0.0.1".parse().unwrap()]
    } else {
        vec!["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()]
    };
    for _ in 0..50 {
        let Ok(first) = FullBacklog::at(SocketAddr::new(ips[0], 0)) else {
            continue;
        };
        let port = first.addr.port();
        if let Ok(second) = FullBacklog::at(SocketAddr::new(ips[1], port)) {
            return (vec![first, second], ips, port);
        }
    }
    panic!("no port free on both addresses in 50 tries");
}

fn dropping_the_race_closes_every_socket(backend: BackendChoice) {
    let Some((mut reactor, clock)) = manual_reactor(backend) else {
        return;
    };
    let (_holes, ips, port) = black_holes();
    let fake = FakeResolver::new();
    let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = ips.iter().partition(|ip| ip.is_ipv6());
    fake.set("holes.test", &v6, &v4);
    reactor.set_name_resolver(Rc::new(fake));
    let handle = reactor.handle();
    for _ in 0..3 {
        turn_now(&mut reactor);
    }
    let before = open_fds();
    let (client, log) = recorded(Sink);
    let connect = handle.connect_host("holes.test", port, client, ConnectOptions::new());
    let task = reactor.spawn_local(connect);
    until(&mut reactor, "the first attempt", |r| r.connections() == 1);
    clock.advance(Duration::from_millis(250));
    until(&mut reactor, "the second attempt", |r| r.connections() == 2);
    assert!(open_fds() >= before + 2, "two sockets opened");
    // The first race runs on as a task (a JoinHandle does not own its task) until its
    // connect timeout; a second one is cancelled by dropping its future.
    drop(task);
    let (client, log2) = recorded(Sink);
    let second = handle.connect_host("holes.test", port, client, ConnectOptions::new());
    until(&mut reactor, "the third attempt", |r| r.connections() == 3);
    clock.advance(Duration::from_millis(250));
    until(&mut reactor, "the fourth attempt", |r| r.connections() == 4);
    drop(second);
    until(&mut reactor, "the dropped race's attempts to close", |r| {
        r.connections() == 2
    });
    assert_eq!(
        log2.borrow().lost(),
        Some(Lost::Aborted),
        "{}",
        log2.borrow().summary()
    );
    assert_eq!(log2.borrow().made(), 0);
    // The first race ends at its connect timeout.
    clock.advance(Duration::from_secs(10));
    until(&mut reactor, "the first race's timeout", |r| {
        r.connections() == 0 && log.borrow().is_lost()
    });
    assert!(
        matches!(log.borrow().lost(), Some(Lost::Other(text)) if text.contains("timed out after 10s")),
        "{}",
        log.borrow().summary()
    );
    until(&mut reactor, "every descriptor closed", |_| {
        open_fds() == before
    });
    assert_eq!(reactor.next_deadline(), None, "no timer left behind");
}

#[test]
fn cancelled_races_leave_no_descriptor() {
    for backend in [BackendChoice::Uring, BackendChoice::Poll] {
        if available(backend) {
            dropping_the_race_closes_every_socket(backend);
        }
    }
}
