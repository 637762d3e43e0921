//! Who shares a listening address ([`ReusePort`]) on every backend: this process's own
//! listeners share one (one per core), a stranger's SO_REUSEPORT listener is not joined
//! unless [`ReusePort::Shared`] asks for it, port 0 always gets a fresh port, the group is
//! forgotten once its last listener is closed, and a restart binds while the previous run's
//! connections sit in TIME_WAIT.
//!
//! "A stranger" is a socket2 listener made here without the driver: to the driver it is
//! exactly what another process's listener is (the kernel checks options and user, not the
//! process).

mod common;

use std::collections::HashMap;
use std::io::ErrorKind;

use common::{connect_pairs, drive, settle, v4};
use ringwork_platform::{
    BackendChoice, Completion, DriverConfig, ListenOptions, ReusePort, SockAddr, test_all_backends,
    testing,
};
use socket2::{Domain, Socket, Type};

/// A listener on `addr` made outside the driver (another process's, as far as the driver can
/// tell), with SO_REUSEPORT when `reuse_port`.
fn stranger(addr: &SockAddr, reuse_port: bool) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(reuse_port).expect("SO_REUSEPORT");
    socket.bind(addr).expect("bind the stranger");
    socket.listen(16).expect("listen");
    socket
}

fn options(reuse_port: ReusePort) -> ListenOptions {
    ListenOptions {
        reuse_port,
        ..ListenOptions::default()
    }
}

fn port(addr: &SockAddr) -> u16 {
    addr.as_socket().expect("an IP address").port()
}

test_all_backends! {
    fn a_strangers_reuseport_group_is_not_joined_by_default(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let held = stranger(&v4(0), true);
        let addr = held.local_addr().expect("address");
        let error = driver
            .listen(&addr, &ListenOptions::default())
            .expect_err("joined a stranger's SO_REUSEPORT group");
        assert_eq!(error.source.kind(), ErrorKind::AddrInUse, "{error}");
        assert!(
            format!("{error}: {}", error.source).contains("Address already in use"),
            "{error}"
        );
        // Asked for, it joins.
        let joined = driver
            .listen(&addr, &options(ReusePort::Shared))
            .expect("ReusePort::Shared joins the stranger's group");
        assert_eq!(driver.local_addr(joined).expect("address"), addr);
    }

    fn a_plain_holder_refuses_every_mode(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let held = stranger(&v4(0), false);
        let addr = held.local_addr().expect("address");
        for reuse in [ReusePort::Off, ReusePort::Process, ReusePort::Shared] {
            let error = driver.listen(&addr, &options(reuse)).expect_err("bound a held port");
            assert_eq!(error.source.kind(), ErrorKind::AddrInUse, "{reuse:?}: {error}");
        }
    }

    fn this_process_listeners_share_an_address(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let Some(mut other_core) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let first = driver.listen(&v4(0), &ListenOptions::default()).expect("listen");
        let addr = driver.local_addr(first).expect("address");
        // Another core (driver) of this process, and a second listener of the same one, join.
        let second = other_core.listen(&addr, &ListenOptions::default()).expect("join");
        let third = driver.listen(&addr, &ListenOptions::default()).expect("join again");
        assert_eq!(other_core.local_addr(second).expect("address"), addr);
        drop(other_core);
        // One group: the kernel spreads connections over both remaining listeners (all 32 on
        // one of them has a chance of 2^-31).
        assert!(driver.accept(first));
        assert!(driver.accept(third));
        let clients: Vec<_> = (0..32).map(|_| driver.connect(&addr).expect("connect")).collect();
        let mut accepted = HashMap::new();
        drive(
            &mut driver,
            &mut accepted,
            |_, accepted, c| match c {
                Completion::Accepted { listener, result } => {
                    result.expect("accept");
                    *accepted.entry(listener).or_insert(0) += 1;
                }
                Completion::Connected { result, .. } => result.expect("connect"),
                other => panic!("unexpected {other:?}"),
            },
            |_, accepted| accepted.values().sum::<usize>() == clients.len(),
            |_, accepted| format!("accepted {accepted:?}"),
        );
        assert_eq!(accepted.len(), 2, "one listener took every connection: {accepted:?}");
        // A stranger without SO_REUSEPORT still cannot bind it.
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        let refused = socket.bind(&addr).and_then(|()| socket.listen(16));
        assert_eq!(refused.map_err(|e| e.kind()), Err(ErrorKind::AddrInUse));
    }

    fn port_zero_always_gets_a_fresh_port(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let a = driver.listen(&v4(0), &ListenOptions::default()).expect("listen");
        let b = driver.listen(&v4(0), &ListenOptions::default()).expect("listen");
        let (a, b) = (driver.local_addr(a).expect("a"), driver.local_addr(b).expect("b"));
        assert_ne!(port(&a), port(&b), "two port-0 listeners shared a port");
    }

    fn a_closed_group_is_forgotten(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let first = driver.listen(&v4(0), &ListenOptions::default()).expect("listen");
        let addr = driver.local_addr(first).expect("address");
        let second = driver.listen(&addr, &ListenOptions::default()).expect("join");
        assert!(driver.close(first));
        assert!(driver.close(second));
        settle(&mut driver, 0);
        // The port is free again; a stranger with SO_REUSEPORT takes it: our group is gone, so
        // a new listener must not join the stranger's.
        let _held = stranger(&addr, true);
        let error = driver
            .listen(&addr, &ListenOptions::default())
            .expect_err("joined a stranger's group after ours closed");
        assert_eq!(error.source.kind(), ErrorKind::AddrInUse, "{error}");
    }

    fn a_restart_binds_over_time_wait(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let listener = driver.listen(&v4(0), &ListenOptions::default()).expect("listen");
        let addr = driver.local_addr(listener).expect("address");
        assert!(driver.accept(listener));
        // The server side closes first: its end (bound to the listening port) goes to
        // TIME_WAIT.
        let pairs = connect_pairs(&mut driver, listener, &addr, 4);
        for pair in &pairs {
            assert!(driver.close(pair.server));
        }
        settle(&mut driver, 1 + pairs.len());
        for pair in &pairs {
            assert!(driver.close(pair.client));
        }
        assert!(driver.close(listener));
        settle(&mut driver, 0);
        let again = driver
            .listen(&addr, &ListenOptions::default())
            .expect("listen again while the old connections are in TIME_WAIT");
        assert_eq!(driver.local_addr(again).expect("address"), addr);
    }
}

/// A UDP socket on `addr` made outside the driver, with SO_REUSEPORT when `reuse_port`.
fn udp_stranger(addr: std::net::SocketAddr, reuse_port: bool) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None).expect("socket");
    socket.set_reuse_port(reuse_port).expect("SO_REUSEPORT");
    socket.bind(&addr.into()).expect("bind the stranger");
    socket
}

test_all_backends! {
    fn udp_sockets_of_this_process_share_an_address_and_strangers_are_refused(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let any: std::net::SocketAddr = "127.0.0.1:0".parse().expect("address");
        let first = driver.bind_udp_with(any, ReusePort::Process).expect("first socket");
        let addr = driver
            .local_addr(first)
            .expect("bound address")
            .as_socket()
            .expect("IP");
        // Another core of this process joins the group.
        let second = driver.bind_udp_with(addr, ReusePort::Process).expect("join");
        assert_ne!(first, second);
        drop(driver);
        // A port a stranger holds (with SO_REUSEPORT) is not joined by default...
        let held = udp_stranger(any, true);
        let addr = held.local_addr().expect("address").as_socket().expect("IP");
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let error = driver
            .bind_udp_with(addr, ReusePort::Process)
            .expect_err("joined a stranger's UDP port");
        assert_eq!(error.source.kind(), ErrorKind::AddrInUse, "{error}");
        // ...nor by a plain bind; and joined only when asked.
        assert!(driver.bind_udp(addr).is_err());
        driver
            .bind_udp_with(addr, ReusePort::Shared)
            .expect("joined on purpose");
    }
}
