//! Descriptor passing (SCM_RIGHTS, `fdpass`) between reactors, on every backend.
//!
//! Proves:
//! - a listening socket of one driver, sent over a Unix stream socket pair, is adopted by
//!   another driver (another reactor) that accepts a connection on it and answers; after
//!   the first driver closed its listener the second still accepts (the socket lives while
//!   a descriptor of it does);
//! - several descriptors travel in one message, in order, with their bytes;
//! - the received descriptors are close-on-exec; bad calls (no data byte, more descriptors
//!   than asked for) fail (the descriptors that did arrive are closed by the call).

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use ringwork_platform::fdpass::{recv_fds, send_fds};
use ringwork_platform::{
    BackendChoice, Completion, Driver, SocketId, SocketKind, test_all_backends, testing,
};
use socket2::{SockRef, Socket};

use common::{drive, v4};

/// Accepts one connection on `listener` of `driver` and sends `reply` on it.
fn accept_and_reply(driver: &mut Driver, listener: SocketId, reply: &'static [u8]) {
    assert!(driver.accept(listener));
    let mut accepted = None;
    drive(
        driver,
        &mut accepted,
        |_, accepted, c| match c {
            Completion::Accepted { result, .. } => *accepted = Some(result.expect("accepted")),
            c => panic!("unexpected {c:?}"),
        },
        |_, accepted| accepted.is_some(),
        |_, _| "nothing accepted on the passed listener".into(),
    );
    let socket = accepted.expect("accepted");
    driver.send(socket, bytes::Bytes::from_static(reply));
    let mut sent = false;
    drive(
        driver,
        &mut sent,
        |_, sent, c| match c {
            Completion::Sent { queued: 0, .. } => *sent = true,
            c => panic!("unexpected {c:?}"),
        },
        |_, sent| *sent,
        |_, _| "the reply was not sent".into(),
    );
    assert!(driver.close(socket));
    assert!(driver.stop_accept(listener));
}

fn read(mut client: TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    client.read_exact(&mut got).expect("read");
    got
}

test_all_backends! {
    fn a_listener_passed_to_another_reactor_accepts(backend: BackendChoice) {
        let Some(mut first) = testing::driver(backend, Default::default()) else { return };
        let Some(mut second) = testing::driver(backend, Default::default()) else { return };
        let listener = first.listen(&v4(0), &Default::default()).expect("listen");
        let addr = first.local_addr(listener).expect("address").as_socket().expect("IP");
        let (here, there) = UnixStream::pair().expect("socket pair");

        // The first reactor sends its listener's descriptor with one byte.
        first
            .with_socket(listener, |socket| send_fds(SockRef::from(&here), b"L", &[socket.as_fd()]))
            .expect("send the listener");
        let mut byte = [0; 1];
        let (n, mut fds) = recv_fds(SockRef::from(&there), &mut byte, 1).expect("receive");
        assert_eq!((n, &byte, fds.len()), (1, b"L", 1));
        let fd = fds.pop().expect("one descriptor");
        // SAFETY: fcntl reads the flags of a descriptor this test owns.
        let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC, "close-on-exec");

        // The second reactor adopts it and accepts.
        let passed = second.adopt(Socket::from(fd), SocketKind::Listener).expect("adopt");
        assert_eq!(second.local_addr(passed).expect("address").as_socket(), Some(addr));
        let client = TcpStream::connect(addr).expect("connect");
        accept_and_reply(&mut second, passed, b"second");
        assert_eq!(read(client, 6), b"second");

        // With the first reactor's listener closed, the passed one still accepts.
        assert!(first.close(listener));
        common::settle(&mut first, 0);
        let client = TcpStream::connect(addr).expect("connect after the first closed");
        accept_and_reply(&mut second, passed, b"still");
        assert_eq!(read(client, 5), b"still");
    }
}

test_all_backends! {
    /// What a server handing its listener over relies on: after `stop_accept`, the
    /// listener is closed only once `accept_in_flight` is false; every connection made
    /// before is then either delivered as `Accepted` or still queued for the process that
    /// holds the socket (here a duplicate): none is reset.
    fn a_stopped_listener_loses_no_connection(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let listener = driver.listen(&v4(0), &Default::default()).expect("listen");
        let addr = driver.local_addr(listener).expect("address").as_socket().expect("IP");
        let successor = driver
            .with_socket(listener, |socket| socket.try_clone())
            .expect("a duplicate");
        assert!(driver.accept(listener));
        let mut out = Vec::new();
        driver.turn(Some(std::time::Duration::ZERO), &mut out).expect("turn");
        assert!(out.is_empty(), "{out:?}");
        match backend {
            // io_uring: the multishot accept is with the kernel.
            BackendChoice::Uring => assert!(driver.accept_in_flight(listener)),
            _ => assert!(!driver.accept_in_flight(listener)),
        }
        let clients: Vec<TcpStream> =
            (0..4).map(|_| TcpStream::connect(addr).expect("connect")).collect();
        assert!(driver.stop_accept(listener));
        let mut accepted = Vec::new();
        drive(
            &mut driver,
            &mut accepted,
            |_, accepted, c| match c {
                Completion::Accepted { result, .. } => accepted.push(result.expect("accepted")),
                c => panic!("unexpected {c:?}"),
            },
            |d, _| !d.accept_in_flight(listener),
            |_, _| "the accept never came back".into(),
        );
        assert!(driver.close(listener));
        eprintln!("{backend:?}: {} of {} accepted after stop_accept", accepted.len(), clients.len());
        // The ones the driver accepted are answered by it, the others by the successor.
        for socket in &accepted {
            driver.send(*socket, bytes::Bytes::from_static(b"d"));
        }
        let mut sent = 0;
        drive(
            &mut driver,
            &mut sent,
            |_, sent, c| match c {
                Completion::Sent { queued: 0, .. } => *sent += 1,
                c => panic!("unexpected {c:?}"),
            },
            |_, sent| *sent == accepted.len(),
            |_, _| "a reply was not sent".into(),
        );
        successor.set_nonblocking(true).expect("non-blocking");
        for _ in accepted.len()..clients.len() {
            let (conn, _) = successor.accept().expect("queued for the successor");
            std::io::Write::write_all(&mut TcpStream::from(conn), b"s").expect("reply");
        }
        for client in clients {
            let got = read(client, 1);
            assert!(got == b"d" || got == b"s", "{got:?}");
        }
    }
}

#[test]
fn several_descriptors_in_one_message() {
    let (here, there) = UnixStream::pair().expect("socket pair");
    let listeners: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("listen"))
        .collect();
    let borrowed: Vec<_> = listeners.iter().map(AsFd::as_fd).collect();
    let sent = send_fds(SockRef::from(&here), b"three", &borrowed).expect("send");
    assert_eq!(sent, 5);
    let mut buf = [0; 16];
    let (n, fds) = recv_fds(SockRef::from(&there), &mut buf, 8).expect("receive");
    assert_eq!(&buf[..n], b"three");
    let addrs: Vec<_> = fds
        .into_iter()
        .map(|fd: OwnedFd| TcpListener::from(fd).local_addr().expect("address"))
        .collect();
    let want: Vec<_> = listeners
        .iter()
        .map(|l| l.local_addr().expect("address"))
        .collect();
    assert_eq!(addrs, want, "in order");
}

#[test]
fn bad_calls_fail() {
    let (here, there) = UnixStream::pair().expect("socket pair");
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let error = send_fds(SockRef::from(&here), b"", &[listener.as_fd()]).expect_err("no data");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);

    let two = [listener.as_fd(), listener.as_fd()];
    send_fds(SockRef::from(&here), b"x", &two).expect("send two");
    let mut buf = [0; 4];
    let error = recv_fds(SockRef::from(&there), &mut buf, 1).expect_err("one asked, two sent");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData, "{error}");
}
