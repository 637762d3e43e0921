//! Runs of datagrams to one destination sent with UDP GSO, on every backend.
//!
//! Proves:
//! - datagrams queued in one go, to two destinations, in runs of one size with shorter ones
//!   and larger ones between, all arrive intact and once each, each reported `Sent` once
//!   with its size; under io_uring the runs went as GSO sends (`Stats::gso_sends`), far
//!   fewer than the datagrams;
//! - the same over IPv6;
//! - when the kernel refuses GSO on a socket (here: UDP checksums turned off with
//!   `SO_NO_CHECK`, which GSO needs), the same datagrams still all arrive, sent one by one;
//! - `DriverConfig::udp_gso = false` sends no GSO at all;
//! - with `DriverConfig::udp_gso_gather`, the queue is grouped by size and destination
//!   before it is sent: the same datagrams go in fewer GSO sends.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ringwork_platform::{
    BackendChoice, Bytes, Completion, Driver, DriverConfig, SocketId, test_all_backends, testing,
};

use common::drive;

/// A datagram of `size` bytes carrying `tag` in its first two bytes and `tag as u8` after.
fn datagram(tag: usize, size: usize) -> Vec<u8> {
    let mut bytes = vec![tag as u8; size];
    bytes[..2].copy_from_slice(&(tag as u16).to_be_bytes());
    bytes
}

/// The sizes of the datagrams, in the order queued, and which of two receivers each goes to:
/// a run of 40 of 120 bytes to the first, broken every 8th by one to the second; one of 50
/// (a shorter last segment); 20 of 200; 30 of 120 again; a 1-byte one; 10 of 2,000 (too
/// large for a GSO segment).
fn plan() -> Vec<(usize, usize)> {
    let mut plan = Vec::new();
    for i in 0..40 {
        plan.push((120, 0));
        if i % 8 == 7 {
            plan.push((120, 1));
        }
    }
    plan.push((50, 0));
    plan.extend(std::iter::repeat_n((200, 0), 20));
    plan.extend(std::iter::repeat_n((120, 0), 30));
    plan.push((2, 1));
    plan.extend(std::iter::repeat_n((2000, 1), 10));
    plan
}

/// A receiver on loopback reading `count` datagrams on a thread: returns its address and the
/// thread, whose result maps each tag to the datagram's size (each checked intact, once).
fn receiver(ip: IpAddr, count: usize) -> (SocketAddr, JoinHandle<HashMap<usize, usize>>) {
    let socket = UdpSocket::bind((ip, 0)).expect("receiver bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let addr = socket.local_addr().expect("receiver address");
    let reading = thread::spawn(move || {
        let mut got = HashMap::new();
        let mut buf = [0; 4096];
        while got.len() < count {
            let (n, _) = socket.recv_from(&mut buf).expect("a datagram");
            let tag = u16::from_be_bytes([buf[0], buf[1]]) as usize;
            assert_eq!(&buf[..n], datagram(tag, n), "datagram {tag} intact");
            assert!(got.insert(tag, n).is_none(), "datagram {tag} twice");
        }
        got
    });
    (addr, reading)
}

/// Queues every datagram of [`plan`] on `sender` at once, turns until each is `Sent`, and
/// checks the receivers (on `sender`'s loopback address) got each exactly once with its size.
fn send_plan(driver: &mut Driver, sender: SocketId) {
    let ip = std_ip(driver, sender);
    let plan = plan();
    let counts = [0, 1].map(|r| plan.iter().filter(|&&(_, to)| to == r).count());
    let receivers = counts.map(|count| receiver(ip, count));
    let mut expected = [HashMap::new(), HashMap::new()];
    for (tag, &(size, to)) in plan.iter().enumerate() {
        let addr = receivers[to].0;
        assert!(driver.send_to(sender, Bytes::from(datagram(tag, size)), addr));
        expected[to].insert(tag, size);
    }
    let total: usize = plan.iter().map(|&(size, _)| size).sum();
    assert_eq!(driver.send_queued(sender), Some(total));
    // (datagrams sent, their bytes)
    let mut sent = (0, 0);
    drive(
        driver,
        &mut sent,
        |_, (count, bytes), c| match c {
            Completion::Sent {
                socket, bytes: n, ..
            } => {
                assert_eq!(socket, sender);
                *count += 1;
                *bytes += n;
            }
            c => panic!("unexpected {c:?} after {count} sent"),
        },
        |_, &mut (count, _)| count == plan.len(),
        |_, (count, _)| format!("{count} of {} sent", plan.len()),
    );
    assert_eq!(
        sent,
        (plan.len(), total),
        "each datagram Sent once, its size"
    );
    assert_eq!(driver.send_queued(sender), Some(0));
    for ((_, reading), expected) in receivers.into_iter().zip(expected) {
        assert_eq!(reading.join().expect("receiver"), expected);
    }
}

/// The IP address `sender` is bound to.
fn std_ip(driver: &Driver, sender: SocketId) -> IpAddr {
    let local = driver.local_addr(sender).expect("local address");
    local.as_socket().expect("an IP address").ip()
}

test_all_backends! {
    fn runs_to_an_ipv6_destination_go_as_gso_sends(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let sender = driver.bind_udp((Ipv6Addr::LOCALHOST, 0).into()).expect("bind ::1");
        let before = driver.stats().gso_sends;
        send_plan(&mut driver, sender);
        let gso_sends = driver.stats().gso_sends - before;
        assert!((4..=12).contains(&gso_sends), "{gso_sends} GSO sends");
    }

    fn runs_to_one_destination_go_as_gso_sends(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let sender = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let before = driver.stats().gso_sends;
        send_plan(&mut driver, sender);
        let gso_sends = driver.stats().gso_sends - before;
        eprintln!("{backend:?}: {} datagrams in {gso_sends} GSO sends and single ones", plan().len());
        // Runs: 8,8,8,8,8 of 120 to the first receiver (the 5th ends at the 50-byte one),
        // 5 of 120 to the second, 20 of 200, 30 of 120; at most 64 in flight at once may
        // split one further.
        assert!(gso_sends >= 4, "{gso_sends} GSO sends");
        assert!(gso_sends <= 12, "{gso_sends} GSO sends");
    }

    fn a_refused_gso_send_falls_back_to_one_send_each(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let sender = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        // GSO needs UDP checksums: with them off the kernel refuses it (EINVAL).
        driver
            .with_socket(sender, |socket| {
                let on: libc::c_int = 1;
                // SAFETY: a valid descriptor, an int option of the right size.
                let r = unsafe {
                    libc::setsockopt(
                        socket.as_raw_fd(),
                        libc::SOL_SOCKET,
                        libc::SO_NO_CHECK,
                        (&raw const on).cast(),
                        size_of::<libc::c_int>() as libc::socklen_t,
                    )
                };
                if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
            })
            .expect("SO_NO_CHECK");
        send_plan(&mut driver, sender);
        // Once refused, the socket does not try again.
        let before = driver.stats().gso_sends;
        send_plan(&mut driver, sender);
        assert_eq!(driver.stats().gso_sends, before, "GSO tried again after a refusal");
    }

    fn gathering_sends_the_same_datagrams_in_fewer_gso_sends(backend: BackendChoice) {
        let config = DriverConfig { udp_gso_gather: true, ..DriverConfig::default() };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let sender = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let before = driver.stats().gso_sends;
        send_plan(&mut driver, sender);
        let gso_sends = driver.stats().gso_sends - before;
        eprintln!("{backend:?}: gathered, {gso_sends} GSO sends");
        // One run of 70 of 120 bytes to the first receiver (64 at most, then 6), 5 to the
        // second, 20 of 200; without gathering, 9 or more.
        assert!((3..=5).contains(&gso_sends), "{gso_sends} GSO sends");
    }

    fn gso_can_be_turned_off(backend: BackendChoice) {
        let config = DriverConfig { udp_gso: false, ..DriverConfig::default() };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let sender = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        send_plan(&mut driver, sender);
        assert_eq!(driver.stats().gso_sends, 0);
    }
}
