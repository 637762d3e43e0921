//! UDP sockets of a reactor on both backends: a datagram echoed back, and
//! [`Reactor::close_udp`] (the protocol dropped, no callback after the close, the port free
//! again), and a multicast group joined through [`Reactor::udp_multicast`] on `lo`
//! reaching the protocol, and a Unix datagram socket ([`Reactor::bind_unix_datagram`])
//! echoing to its client's path. Waits turn the reactor until the event, bounded by `LIMIT`;
//! nothing sleeps.

use std::cell::RefCell;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use ringwork::platform::BackendChoice;
use ringwork::{DatagramContext, DatagramProtocol};

use common::{LIMIT, reactor, wait};

mod common;

/// Records what it receives and echoes it; notes its drop.
struct Echo {
    seen: Rc<RefCell<Vec<Vec<u8>>>>,
    dropped: Rc<RefCell<bool>>,
}

impl DatagramProtocol for Echo {
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        self.seen.borrow_mut().push(data.to_vec());
        ctx.send_to(data, from);
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        *self.dropped.borrow_mut() = true;
    }
}

fn close_udp_releases_the_socket(backend: BackendChoice) {
    let Some(mut reactor) = reactor(backend) else {
        return;
    };
    let seen = Rc::new(RefCell::new(Vec::new()));
    let dropped = Rc::new(RefCell::new(false));
    let id = reactor
        .bind_udp(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Echo {
                seen: Rc::clone(&seen),
                dropped: Rc::clone(&dropped),
            },
        )
        .expect("bind");
    let addr = reactor
        .udp_local_addr(id)
        .expect("local address")
        .as_socket()
        .expect("an IP address");
    let client = UdpSocket::bind("127.0.0.1:0").expect("client socket");
    client.set_nonblocking(true).expect("non-blocking");
    client.send_to(b"one", addr).expect("send");
    let mut buf = [0; 16];
    let mut echoed = None;
    wait(
        &mut reactor,
        |_| {
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                echoed = Some(buf[..n].to_vec());
            }
            echoed.is_some()
        },
        || "the echo".into(),
    );
    assert_eq!(echoed.as_deref(), Some(&b"one"[..]));

    assert!(reactor.close_udp(id), "open until now");
    assert!(*dropped.borrow(), "the protocol is dropped at once");
    assert!(!reactor.close_udp(id), "closed once");
    assert!(reactor.udp_local_addr(id).is_err());
    // The descriptor goes once the driver is done with it: the port is free again.
    wait(
        &mut reactor,
        |reactor| {
            let _ = reactor.turn(Some(Duration::from_millis(5)));
            UdpSocket::bind(addr).is_ok()
        },
        || format!("{addr} to be free after close_udp (limit {LIMIT:?})"),
    );
    assert_eq!(seen.borrow().len(), 1, "nothing after the close");
}

#[test]
fn close_udp_releases_the_socket_uring() {
    close_udp_releases_the_socket(BackendChoice::Uring);
}

#[test]
fn close_udp_releases_the_socket_poll() {
    close_udp_releases_the_socket(BackendChoice::Poll);
}

/// A UDP socket of the reactor joins `group` on `lo`; a datagram sent to the group reaches
/// its protocol.
fn multicast_reaches_the_protocol(backend: BackendChoice, group: [u8; 4]) {
    use ringwork::platform::multicast::{Interface, Multicast};
    let Some(mut reactor) = reactor(backend) else {
        return;
    };
    let seen = Rc::new(RefCell::new(Vec::new()));
    let protocol = Echo {
        seen: Rc::clone(&seen),
        dropped: Rc::new(RefCell::new(false)),
    };
    let id = reactor
        .bind_udp(SocketAddr::from(([0, 0, 0, 0], 0)), protocol)
        .expect("bind");
    let port = reactor
        .udp_local_addr(id)
        .expect("local address")
        .as_socket()
        .expect("an IP address")
        .port();
    // Only its own groups (the other backend's test joins another group on `lo`).
    reactor
        .udp_multicast(id, &Multicast::AllGroups(false))
        .expect("IP_MULTICAST_ALL");
    let join = Multicast::Join {
        group: group.into(),
        interface: Interface::Name("lo".into()),
    };
    reactor.udp_multicast(id, &join).expect("join");
    let sender = UdpSocket::bind("127.0.0.1:0").expect("sender");
    socket2::SockRef::from(&sender)
        .set_multicast_if_v4(&[127, 0, 0, 1].into())
        .expect("IP_MULTICAST_IF");
    sender
        .send_to(b"to the group", SocketAddr::from((group, port)))
        .expect("send");
    wait(
        &mut reactor,
        |_| !seen.borrow().is_empty(),
        || "the group's datagram".into(),
    );
    assert_eq!(seen.borrow()[0], b"to the group");
}

#[test]
fn multicast_reaches_the_protocol_uring() {
    multicast_reaches_the_protocol(BackendChoice::Uring, [239, 255, 43, 1]);
}

#[test]
fn multicast_reaches_the_protocol_poll() {
    multicast_reaches_the_protocol(BackendChoice::Poll, [239, 255, 43, 2]);
}

/// Echoes Unix datagrams to their sender's address; records what arrives.
struct UnixEcho {
    seen: Rc<RefCell<Vec<Vec<u8>>>>,
}

impl DatagramProtocol for UnixEcho {
    fn datagram_received(&mut self, _: &mut DatagramContext<'_>, _: &[u8], _: SocketAddr) {
        panic!("a Unix datagram socket gets no IP datagrams");
    }

    fn unix_datagram_received(
        &mut self,
        ctx: &mut DatagramContext<'_>,
        data: &[u8],
        from: &ringwork::SockAddr,
    ) {
        self.seen.borrow_mut().push(data.to_vec());
        ctx.send_to_addr(data, from);
    }
}

/// A Unix datagram socket of the reactor echoes a client's datagram to the client's path.
fn unix_datagram_echo(backend: BackendChoice) {
    use std::os::unix::net::UnixDatagram;
    let Some(mut reactor) = reactor(backend) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!(
        "ringwork-engine-unix-dgram-{}-{backend:?}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let seen = Rc::new(RefCell::new(Vec::new()));
    let server_path = dir.join("server.sock");
    let id = reactor
        .bind_unix_datagram(
            &server_path,
            UnixEcho {
                seen: Rc::clone(&seen),
            },
        )
        .expect("bind");
    let local = reactor.udp_local_addr(id).expect("local address");
    assert_eq!(local.as_pathname(), Some(server_path.as_path()));
    let client = UnixDatagram::bind(dir.join("client.sock")).expect("client socket");
    client.set_nonblocking(true).expect("non-blocking");
    client.send_to(b"over unix", &server_path).expect("send");
    let mut buf = [0; 32];
    let mut echoed = None;
    wait(
        &mut reactor,
        |_| {
            if let Ok(n) = client.recv(&mut buf) {
                echoed = Some(buf[..n].to_vec());
            }
            echoed.is_some()
        },
        || "the echo".into(),
    );
    assert_eq!(echoed.as_deref(), Some(&b"over unix"[..]));
    assert_eq!(seen.borrow().len(), 1);
    assert!(reactor.close_udp(id));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unix_datagram_echo_uring() {
    unix_datagram_echo(BackendChoice::Uring);
}

#[test]
fn unix_datagram_echo_poll() {
    unix_datagram_echo(BackendChoice::Poll);
}
