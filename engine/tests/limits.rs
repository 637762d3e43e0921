//! Connection limits on every backend: the per-core limit stops accepting (connections wait
//! in the backlog and are accepted when room frees up); the runtime-wide limit accepts and
//! closes at once.

use std::io::Read;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::Duration;

use ringwork::platform::BackendChoice;
use ringwork::platform::testing::{self, retry_interrupted};
use ringwork::{Context, DriverConfig, Protocol, Reactor, ReactorConfig, Runtime};

/// Greets, then echoes.
struct Greeter;

impl Protocol for Greeter {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(b"hi\n");
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }
}

ringwork::platform::test_all_backends! {
    fn per_core_limit_stops_accepting_until_room_frees(backend: BackendChoice) {
        testing::driver(backend, DriverConfig::default()).map(drop).unwrap_or(());
        let config = ReactorConfig { max_connections: 3, ..ReactorConfig::default() };
        let Ok(mut reactor) = Reactor::new(config, DriverConfig { backend, ..DriverConfig::default() }) else {
            return; // uring unavailable: already reported by testing::driver
        };
        let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Greeter).unwrap();
        // The kernel completes handshakes into the backlog; the reactor accepts only 3.
        let mut clients: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let reached = reactor.run_until(Duration::from_secs(10), |r| r.stats().accepted == 3).unwrap();
        assert!(reached, "{:?}", reactor.stats());
        // Give the loop a few more turns: nothing beyond the limit is accepted.
        for _ in 0..5 {
            reactor.turn(Some(Duration::from_millis(20))).unwrap();
        }
        assert_eq!(reactor.stats().accepted, 3);
        assert_eq!(reactor.connections(), 3);
        // One client leaves: its server side closes and a waiting connection is accepted.
        drop(clients.remove(0));
        assert!(reactor.run_until(Duration::from_secs(10), |r| r.stats().accepted == 4).unwrap());
        assert_eq!(reactor.connections(), 3);
    }
}

#[test]
fn runtime_wide_limit_accepts_and_closes() {
    let runtime = Runtime::builder()
        .cores(1)
        .pin(false)
        .max_connections_total(2)
        .build()
        .unwrap();
    let shutdown = runtime.shutdown_handle();
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        runtime.run(move |reactor| {
            let addr = reactor.listen_tcp("127.0.0.1:0".parse().unwrap(), || Greeter)?;
            tx.send(addr).unwrap();
            Ok(())
        })
    });
    let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let read_greeting = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 3];
        retry_interrupted(|| stream.read(&mut buf)).map(|n| buf[..n].to_vec())
    };
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).unwrap();
        assert_eq!(read_greeting(&mut stream).unwrap(), b"hi\n");
        kept.push(stream);
    }
    // The third is accepted and closed: end of stream (or a reset), never a greeting.
    let mut third = TcpStream::connect(addr).unwrap();
    match read_greeting(&mut third) {
        Ok(bytes) => assert!(bytes.is_empty(), "over the limit but greeted: {bytes:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    // Room frees up when one leaves.
    drop(kept.pop());
    let mut again = None;
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).unwrap();
        if read_greeting(&mut stream).is_ok_and(|b| b == b"hi\n") {
            again = Some(stream);
            break;
        }
    }
    assert!(
        again.is_some(),
        "a slot freed by a closed connection was never reused"
    );
    shutdown.shutdown(Duration::ZERO);
    server.join().unwrap().unwrap();
}
