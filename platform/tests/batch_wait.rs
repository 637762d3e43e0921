//! `DriverConfig::batch_wait` on every backend (io_uring batches; poll ignores it).
//!
//! Proves:
//! - the batch wait engages only after a busy turn: a lone datagram after a burst is still
//!   delivered, after at most `max_wait` (under io_uring with the kernel feature: not before
//!   it either, so the batching is really on), never held until the turn's timeout; the
//!   next lone one, after that quiet turn, without waiting;
//! - `min_completions` datagrams end the wait at once, without waiting out `max_wait`;
//! - the turn's timeout ends a batch wait that is longer (a reactor's next timer);
//! - a driver timer fires at its deadline, not up to `max_wait` later.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use ringwork_platform::{
    BackendChoice, BackendKind, BatchWait, Completion, Driver, DriverConfig, SocketId,
    test_all_backends, testing,
};

use common::std_addr;

/// A turn's timeout long enough that a wait held until it is obvious.
const LONG_TURN: Duration = Duration::from_secs(10);

/// A driver of `backend` with `batch_wait` set, a receiving UDP socket with its address,
/// and a client socket that sent it a burst of `min_completions` datagrams, received in one
/// turn: a busy turn, after which the batch wait is engaged.
fn udp_driver(
    backend: BackendChoice,
    min_completions: u32,
    max_wait: Duration,
) -> Option<(Driver, SocketId, SocketAddr, UdpSocket)> {
    let config = DriverConfig {
        batch_wait: Some(BatchWait {
            min_completions,
            max_wait,
        }),
        ..DriverConfig::default()
    };
    let mut driver = testing::driver(backend, config)?;
    let socket = driver
        .bind_udp("127.0.0.1:0".parse().expect("an address"))
        .expect("bind");
    let addr = std_addr(&driver.local_addr(socket).expect("local_addr"));
    assert!(driver.recv(socket));
    // Submit the receive: nothing is ready, so this returns at its zero timeout.
    let mut out = Vec::new();
    driver.turn(Some(Duration::ZERO), &mut out).expect("turn");
    assert!(out.is_empty(), "{out:?}");
    let client = UdpSocket::bind("127.0.0.1:0").expect("bind a client");
    for i in 0..min_completions {
        client.send_to(&i.to_be_bytes(), addr).expect("send");
    }
    // A full batch waiting: delivered at once whether the wait is engaged or not.
    receive(
        &mut driver,
        socket,
        min_completions as usize,
        Instant::now(),
    );
    Some((driver, socket, addr, client))
}

/// Turns until `count` datagrams arrived on `socket`; how long that took from `start`.
fn receive(driver: &mut Driver, socket: SocketId, count: usize, start: Instant) -> Duration {
    let mut out = Vec::new();
    let mut received = 0;
    while received < count {
        assert!(
            start.elapsed() < LONG_TURN,
            "{received}/{count} datagrams after {:?}",
            start.elapsed()
        );
        driver.turn(Some(LONG_TURN), &mut out).expect("turn");
        for completion in out.drain(..) {
            match completion {
                Completion::ReceivedFrom { socket: s, .. } if s == socket => received += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    start.elapsed()
}

/// Whether `driver` batches its waits (io_uring on a kernel with IORING_FEAT_MIN_TIMEOUT).
fn batching(driver: &Driver) -> bool {
    let batching = driver.capabilities().batch_wait;
    assert!(
        !batching || driver.backend() == BackendKind::Uring,
        "only io_uring batches"
    );
    batching
}

test_all_backends! {
    fn a_lone_datagram_arrives_within_max_wait(backend: BackendChoice) {
        let max_wait = Duration::from_millis(300);
        let Some((mut driver, socket, addr, client)) = udp_driver(backend, 8, max_wait) else {
            return;
        };
        let start = Instant::now();
        client.send_to(b"one", addr).expect("send");
        let took = receive(&mut driver, socket, 1, start);
        // Not held for 8 completions until the turn's timeout (generous for a loaded
        // machine: the bound is `max_wait`).
        assert!(took < LONG_TURN / 2, "a lone datagram took {took:?}");
        if batching(&driver) {
            assert!(took >= max_wait, "delivered after {took:?}: not batched");
        }
        // That turn carried one completion: the next wait is an ordinary one.
        let start = Instant::now();
        client.send_to(b"two", addr).expect("send");
        let took = receive(&mut driver, socket, 1, start);
        assert!(took < max_wait, "after a quiet turn a lone datagram took {took:?}");
    }

    fn a_full_batch_ends_the_wait_at_once(backend: BackendChoice) {
        let max_wait = Duration::from_secs(1);
        let Some((mut driver, socket, addr, client)) = udp_driver(backend, 4, max_wait) else {
            return;
        };
        let start = Instant::now();
        for i in 0..4u8 {
            client.send_to(&[i], addr).expect("send");
        }
        let took = receive(&mut driver, socket, 4, start);
        assert!(took < max_wait, "4 datagrams took {took:?}: the wait ran out");
    }

    fn the_turn_timeout_ends_a_longer_batch_wait(backend: BackendChoice) {
        let max_wait = Duration::from_secs(1);
        let Some((mut driver, ..)) = udp_driver(backend, 8, max_wait) else {
            return;
        };
        let timeout = Duration::from_millis(50);
        let start = Instant::now();
        let mut out = Vec::new();
        driver.turn(Some(timeout), &mut out).expect("turn");
        let took = start.elapsed();
        assert!(out.is_empty(), "{out:?}");
        assert!(took >= timeout, "returned after {took:?}, before the timeout");
        assert!(took < max_wait, "the 50 ms timeout ended the wait after {took:?}");
    }

    fn a_driver_timer_is_not_held_by_the_batch(backend: BackendChoice) {
        let max_wait = Duration::from_secs(1);
        let Some((mut driver, ..)) = udp_driver(backend, 8, max_wait) else {
            return;
        };
        let due = Instant::now() + Duration::from_millis(50);
        let timer = driver.timer(due);
        let mut out = Vec::new();
        let fired = loop {
            assert!(Instant::now() < due + LONG_TURN, "the timer never fired");
            driver.turn(Some(LONG_TURN), &mut out).expect("turn");
            if let Some(c) = out.drain(..).find(|c| matches!(c, Completion::Timer { .. })) {
                assert!(matches!(c, Completion::Timer { timer: t } if t == timer));
                break Instant::now();
            }
        };
        assert!(fired >= due, "fired {:?} early", due - fired);
        assert!(
            fired - due < max_wait,
            "fired {:?} after its deadline: held by the batch wait",
            fired - due
        );
    }
}
