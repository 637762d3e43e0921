//! Listening on inherited sockets ([`Inherited`], `Driver::listen_inherited`), on every
//! backend. systemd's environment is checked by the unit tests of `inherit.rs` (a test
//! cannot set another process's environment safely); the CLI's `systemd_activation` test
//! runs the real `systemd-socket-activate`.
//!
//! Proves:
//! - a listening socket left open by "the parent" (here: this process's own, by number)
//!   is accepted on by two drivers at once (two cores), each through its own duplicate,
//!   and the original descriptor stays open and becomes close-on-exec;
//! - a descriptor that is not open, not a socket, a datagram socket, or a stream socket
//!   that is not listening is refused with an error saying which, and nothing is added.

mod common;

use std::io::Read;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;

use ringwork_platform::inherit::{InheritError, Inherited};
use ringwork_platform::{BackendChoice, Completion, Driver, SocketId, test_all_backends, testing};

use common::drive;

/// Accepts one connection on `listener` of `driver` and writes `reply` to it.
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
        |_, _| "nothing accepted on the inherited listener".into(),
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
}

/// Reads `len` bytes from `client`.
fn read(mut client: TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    client.read_exact(&mut got).expect("read");
    got
}

fn refused(driver: &mut Driver, fd: i32) -> String {
    let error = driver
        .listen_inherited(&Inherited::Fd(fd))
        .expect_err("refused");
    let inner = error
        .source
        .get_ref()
        .and_then(|e| e.downcast_ref::<InheritError>())
        .unwrap_or_else(|| panic!("no InheritError in {error}"));
    inner.to_string()
}

test_all_backends! {
    fn two_drivers_accept_on_one_inherited_listener(backend: BackendChoice) {
        let Some(mut first) = testing::driver(backend, Default::default()) else { return };
        let Some(mut second) = testing::driver(backend, Default::default()) else { return };
        let parent = TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = parent.local_addr().expect("address");
        let inherited = Inherited::Fd(parent.as_raw_fd());
        let a = first.listen_inherited(&inherited).expect("inherit on the first core");
        let b = second.listen_inherited(&inherited).expect("inherit on the second core");
        assert_eq!(first.local_addr(a).expect("address").as_socket(), Some(addr));
        for (driver, listener, reply) in
            [(&mut first, a, &b"first"[..]), (&mut second, b, &b"second"[..])]
        {
            // Only this driver accepts now: the connection is its.
            let client = TcpStream::connect(addr).expect("connect");
            accept_and_reply(driver, listener, reply);
            assert_eq!(read(client, reply.len()), reply);
            assert!(driver.stop_accept(listener));
        }
        // The parent's descriptor is still open (and now close-on-exec).
        // SAFETY: fcntl only reads the flags of a descriptor this test holds open.
        let flags = unsafe { libc::fcntl(parent.as_raw_fd(), libc::F_GETFD) };
        assert_eq!(flags & libc::FD_CLOEXEC, libc::FD_CLOEXEC);
        drop(parent);
    }

    fn sockets_that_do_not_listen_are_refused(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let text = refused(&mut driver, udp.as_raw_fd());
        assert!(text.contains("not a stream socket"), "{text}");

        let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
        let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
        let text = refused(&mut driver, client.as_raw_fd());
        assert!(text.contains("a stream socket that is not listening"), "{text}");

        let file = std::fs::File::open("/dev/null").expect("open");
        let text = refused(&mut driver, file.as_raw_fd());
        assert!(text.contains("not a socket"), "{text}");

        // Far above any open descriptor (and the descriptor limit).
        let text = refused(&mut driver, 1 << 30);
        assert!(text.contains("not an open descriptor"), "{text}");

        let text = refused(&mut driver, 1);
        assert!(text.contains("3 or more"), "{text}");
        assert_eq!(driver.live_sockets(), 0, "nothing added");
    }
}
