//! A server on its own reactor thread for the load generator's tests.
#![allow(dead_code)] // Each test file uses part of it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use ringwork::platform::BackendChoice;
use ringwork::{DriverConfig, Reactor, ReactorConfig};

/// A server on its own reactor thread; stops when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Starts a reactor on `backend` on its own thread; `start` (run there) opens what it
/// serves and returns the address. `None` when the backend cannot run here (io_uring
/// unavailable: the platform says `skipped: uring`).
pub fn serve(
    backend: BackendChoice,
    start: impl FnOnce(&mut Reactor) -> SocketAddr + Send + 'static,
) -> Option<Server> {
    ringwork::platform::testing::driver(backend, DriverConfig::default())?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = crossbeam_channel::bounded(1);
    let s = Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let driver = DriverConfig {
            backend,
            ..DriverConfig::default()
        };
        let mut reactor = Reactor::new(ReactorConfig::default(), driver).expect("reactor");
        tx.send(start(&mut reactor)).expect("send addr");
        while !s.load(Ordering::Relaxed) {
            reactor.turn(Some(Duration::from_millis(10))).expect("turn");
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server address");
    Some(Server {
        addr,
        stop,
        thread: Some(thread),
    })
}

/// The IP address a UDP socket of `reactor` is bound to.
pub fn udp_addr(reactor: &Reactor, id: ringwork::UdpId) -> SocketAddr {
    reactor
        .udp_local_addr(id)
        .expect("addr")
        .as_socket()
        .expect("ip")
}
