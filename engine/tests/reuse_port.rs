//! [`ListenerOptions::reuse_port`] on every backend: a runtime's cores share their listening
//! address, but by default none of them joins another process's SO_REUSEPORT listeners
//! ("Address already in use", as for any held port); [`ReusePort::Shared`] joins on purpose.
//!
//! "Another process" is a socket2 listener made here outside the engine: the kernel checks
//! socket options and the user, not the process, so it stands for one exactly.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::{Echo, Running, any_port, available, reactor, recv};
use ringwork::platform::BackendChoice;
use ringwork::{EngineError, ListenerOptions, ReusePort, Runtime};
use socket2::{Domain, Socket, Type};

/// Another process's listener on `addr`, with SO_REUSEPORT.
fn strangers_group(addr: SocketAddr) -> Socket {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_reuse_port(true).expect("SO_REUSEPORT");
    socket.bind(&addr.into()).expect("bind");
    socket.listen(16).expect("listen");
    socket
}

fn local(socket: &Socket) -> SocketAddr {
    socket
        .local_addr()
        .expect("address")
        .as_socket()
        .expect("IP")
}

/// A port free right now (a later bind may still lose it to another test: rare).
fn free_port() -> SocketAddr {
    TcpListener::bind(any_port())
        .expect("bind")
        .local_addr()
        .expect("address")
}

fn runtime(backend: BackendChoice, cores: usize) -> Runtime {
    Runtime::builder()
        .cores(cores)
        .pin(false)
        .backend(backend)
        .build()
        .expect("build a runtime")
}

ringwork::platform::test_all_backends! {
    fn listen_refuses_another_process_group_unless_shared(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let held = strangers_group(any_port());
        let addr = local(&held);
        let error = reactor.listen_tcp(addr, || Echo).expect_err("joined a stranger's group");
        let text = error.to_string();
        assert!(
            matches!(&error, EngineError::Op(e) if e.source.kind() == std::io::ErrorKind::AddrInUse),
            "{error:?}"
        );
        assert!(text.contains("Address already in use"), "{text}");
        // The same through listen_with and the default options.
        assert!(reactor.listen_with(&addr.into(), &ListenerOptions::default(), || Echo).is_err());
        let shared = ListenerOptions::default().reuse_port(ReusePort::Shared);
        let bound = reactor
            .listen_with(&addr.into(), &shared, || Echo)
            .expect("ReusePort::Shared joins");
        assert_eq!(bound.as_socket(), Some(addr));
    }

    fn a_runtimes_cores_share_their_address(backend: BackendChoice) {
        if !available(backend) {
            return;
        }
        let addr = free_port();
        let (tx, listening) = crossbeam_channel::unbounded();
        let running = Running::start(runtime(backend, 3), move |reactor| {
            let bound = reactor.listen_tcp(addr, || Echo)?;
            tx.send(bound).expect("the test waits");
            Ok(())
        });
        for _ in 0..3 {
            assert_eq!(recv(&listening, "every core to listen"), addr);
        }
        // Served (by whichever core the kernel picks).
        let mut client = TcpStream::connect(addr).expect("connect");
        client.write_all(b"ping").expect("write");
        let mut echoed = [0; 4];
        client.read_exact(&mut echoed).expect("echo");
        assert_eq!(&echoed, b"ping");
        // The group is the runtime's own: another process without SO_REUSEPORT is refused.
        let stranger = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        stranger.set_reuse_address(true).expect("SO_REUSEADDR");
        let refused = stranger.bind(&addr.into()).and_then(|()| stranger.listen(16));
        assert_eq!(refused.map_err(|e| e.kind()), Err(std::io::ErrorKind::AddrInUse));
        running.handle.shutdown(std::time::Duration::ZERO);
        running.join().expect("the runtime stops cleanly");
    }

    fn a_runtime_on_a_strangers_port_fails_to_start(backend: BackendChoice) {
        if !available(backend) {
            return;
        }
        let held = strangers_group(any_port());
        let addr = local(&held);
        let running = Running::start(runtime(backend, 2), move |reactor| {
            reactor.listen_tcp(addr, || Echo).map(drop)
        });
        let error = running.join().expect_err("started on a port another process holds");
        assert!(error.to_string().contains("Address already in use"), "{error}");
    }
}
