//! A listening socket passed between reactors (SCM_RIGHTS through
//! `platform::fdpass`) and listened on with [`Reactor::listen_socket`], on every backend.
//!
//! Proves: a reactor on another thread that receives the descriptor over a Unix socket
//! pair accepts a connection on it and its protocol answers; a socket that is not listening
//! is refused. Waits turn the reactor until the event, bounded; nothing sleeps.

#![cfg(unix)]

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use common::{Hello, reactor, recording_factory, wait};
use ringwork::ListenerOptions;
use ringwork::platform::fdpass::{recv_fds, send_fds};
use ringwork::platform::{BackendChoice, SockAddr, Socket};

ringwork::platform::test_all_backends! {
    fn a_passed_listener_accepts_on_another_reactor(backend: BackendChoice) {
        if !common::available(backend) {
            return;
        }
        // "The other process": a listener sent over a socket pair, then closed here.
        let listener = TcpListener::bind(common::any_port()).expect("listen");
        let addr = listener.local_addr().expect("address");
        let (here, there) = UnixStream::pair().expect("socket pair");
        send_fds(socket2::SockRef::from(&here), b"L", &[listener.as_fd()]).expect("send");
        drop(listener);

        let (done, finished) = mpsc::channel();
        let server = std::thread::spawn(move || {
            let mut reactor = reactor(backend).expect("a reactor");
            let mut byte = [0; 1];
            let (_, mut fds) = recv_fds(socket2::SockRef::from(&there), &mut byte, 1)
                .expect("receive the listener");
            let socket = Socket::from(fds.pop().expect("one descriptor"));
            let (factory, logs) = recording_factory(|| Hello(b"passed\n".to_vec()));
            let bound = reactor
                .listen_socket(socket, &ListenerOptions::default(), factory)
                .expect("listen on the passed socket");
            assert_eq!(bound.as_socket(), Some(addr));
            wait(
                &mut reactor,
                |_| logs.borrow().first().is_some_and(|l| l.borrow().is_lost()),
                || "the connection on the passed listener".into(),
            );
            done.send(()).expect("report");
        });
        let mut client = TcpStream::connect(addr).expect("connect");
        client.set_read_timeout(Some(common::LIMIT)).expect("timeout");
        let mut reply = [0; 7];
        client.read_exact(&mut reply).expect("read");
        assert_eq!(&reply, b"passed\n");
        // The end of stream ends the connection (and the reactor thread's wait).
        drop(client);
        finished.recv_timeout(common::LIMIT).expect("the reactor thread finished");
        server.join().expect("no panic on the reactor thread");
    }

    fn a_socket_that_does_not_listen_is_refused(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let socket = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("socket");
        socket.bind(&SockAddr::from(common::any_port())).expect("bind");
        let error = reactor
            .listen_socket(socket, &ListenerOptions::default(), || Hello(Vec::new()))
            .expect_err("not listening");
        assert!(error.to_string().contains("not listening"), "{error}");
    }
}
