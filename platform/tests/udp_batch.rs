//! Bursts of datagrams, on every backend.
//!
//! Proves:
//! - a burst of datagrams waiting in a socket is received whole and in one go, and the
//!   answers to all of them are sent in one go: under io_uring the whole exchange takes a
//!   handful of `io_uring_enter` calls, not one or more per datagram (the multishot recvmsg
//!   and the sends in flight together; `Stats::enters`);
//! - every datagram's payload and sender are intact, every answer reaches its sender;
//! - more datagrams queued at once than one batch of sends all go out, each reported `Sent`
//!   once, each received once;
//! - a burst is received in a few system calls, not one per datagram (poll: `recvmmsg` on
//!   Linux; io_uring: one multishot recvmsg), each datagram whole with its sender, in order,
//!   an empty one empty and a longer one than a buffer cut and flagged `truncated`.

mod common;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use ringwork_platform::{
    BackendChoice, Bytes, Completion, DriverConfig, test_all_backends, testing,
};

use common::{drive, std_addr};

/// Datagrams in the burst: fits in a default receive buffer (each small datagram costs
/// about 1 KiB of it), so none is dropped before the driver reads.
const BURST: usize = 128;

fn tagged(tag: usize) -> Vec<u8> {
    format!("query {tag:04} {}", "x".repeat(tag % 40)).into_bytes()
}

test_all_backends! {
    fn a_burst_is_received_and_answered_in_a_few_turns(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let server = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let server_addr = std_addr(&driver.local_addr(server).expect("local address"));
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client bind");
        client.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let client_addr = client.local_addr().expect("client address");
        // The whole burst waits in the server's socket before the driver receives at all.
        for tag in 0..BURST {
            client.send_to(&tagged(tag), server_addr).expect("send");
        }
        let enters_before = driver.stats().enters;
        assert!(driver.recv(server));
        // (answered, sent)
        let mut counts = (0, 0);
        drive(
            &mut driver,
            &mut counts,
            |driver, (answered, sent), c| match c {
                Completion::ReceivedFrom { socket, buf, from, truncated } => {
                    assert_eq!(socket, server);
                    assert_eq!(from, client_addr, "the sender's address");
                    assert!(!truncated);
                    let mut answer = b"answer to ".to_vec();
                    answer.extend_from_slice(&buf);
                    assert!(driver.send_to(server, Bytes::from(answer), from));
                    *answered += 1;
                }
                Completion::Sent { socket, .. } => {
                    assert_eq!(socket, server);
                    *sent += 1;
                }
                c => panic!("unexpected {c:?}"),
            },
            |_, &mut (answered, sent)| answered == BURST && sent == BURST,
            |_, (answered, sent)| format!("{answered} of {BURST} answered, {sent} sent"),
        );
        let enters = driver.stats().enters - enters_before;
        let mut got = HashSet::new();
        let mut buf = [0; 256];
        for _ in 0..BURST {
            let (n, from) = client.recv_from(&mut buf).expect("an answer");
            assert_eq!(from, server_addr);
            let text = std::str::from_utf8(&buf[..n]).expect("utf-8");
            let query = text.strip_prefix("answer to ").expect("an answer's prefix");
            let tag: usize = query[6..10].parse().expect("a tag");
            assert_eq!(query.as_bytes(), tagged(tag), "answer {tag} carries its query");
            assert!(got.insert(tag), "answer {tag} twice");
        }
        assert_eq!(got.len(), BURST);
        eprintln!("{backend:?}: {BURST} datagrams in and out in {enters} enters");
        if backend == BackendChoice::Uring {
            // One datagram per enter would be >= 128; batching does it in a few (the receive
            // ends when the burst is drained, the answers go out together).
            assert!(enters <= 8, "{enters} io_uring_enter calls for a burst of {BURST}");
        }
    }

    fn more_datagrams_than_one_batch_all_go_out_once(backend: BackendChoice) {
        // More than io_uring's sends in flight per socket (64): the rest wait their turn.
        // Small, so all of them fit in the receiver's buffer even before it reads.
        const COUNT: usize = 160;
        const SIZE: usize = 48;
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let sender = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("receiver bind");
        receiver.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        let to: SocketAddr = receiver.local_addr().expect("receiver address");
        let reading = thread::spawn(move || {
            let mut tags = HashSet::new();
            let mut buf = [0; 2 * SIZE];
            while tags.len() < COUNT {
                let (n, _) = receiver.recv_from(&mut buf).expect("a datagram");
                assert_eq!(n, SIZE);
                let tag = u16::from_be_bytes([buf[0], buf[1]]) as usize;
                assert!(buf[2..n].iter().all(|&b| b == tag as u8), "payload of {tag}");
                assert!(tags.insert(tag), "datagram {tag} twice");
            }
            tags.len()
        });
        for tag in 0..COUNT {
            let mut datagram = vec![tag as u8; SIZE];
            datagram[..2].copy_from_slice(&(tag as u16).to_be_bytes());
            assert!(driver.send_to(sender, Bytes::from(datagram), to));
        }
        assert_eq!(driver.send_queued(sender), Some(COUNT * SIZE));
        let mut sent = 0;
        drive(
            &mut driver,
            &mut sent,
            |_, sent, c| match c {
                Completion::Sent { socket, bytes, .. } => {
                    assert_eq!((socket, bytes), (sender, SIZE));
                    *sent += 1;
                }
                c => panic!("unexpected {c:?} after {sent} sent"),
            },
            |_, sent| *sent == COUNT,
            |_, sent| format!("{sent} of {COUNT} sent"),
        );
        assert_eq!(reading.join().expect("receiver"), COUNT);
        assert_eq!(driver.send_queued(sender), Some(0));
    }

    fn a_burst_is_received_in_a_few_system_calls(backend: BackendChoice) {
        let config = DriverConfig {
            buf_size: 512,
            ..DriverConfig::default()
        };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let server = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let server_addr = std_addr(&driver.local_addr(server).expect("local address"));
        let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("client bind");
        let client_addr = client.local_addr().expect("client address");
        // Datagram `i`: `tagged(i)`, but 0 is empty and 7 longer than a buffer.
        let datagram = |i: usize| match i {
            0 => Vec::new(),
            7 => vec![7; 600],
            _ => tagged(i),
        };
        for i in 0..BURST {
            client.send_to(&datagram(i), server_addr).expect("send");
        }
        let submitted_before = driver.stats().submitted;
        assert!(driver.recv(server));
        let mut received = Vec::new();
        drive(
            &mut driver,
            &mut received,
            |_, received, c| match c {
                Completion::ReceivedFrom { socket, buf, from, truncated } => {
                    assert_eq!(socket, server);
                    assert_eq!(from, client_addr, "the sender's address");
                    received.push((buf.to_vec(), truncated));
                }
                c => panic!("unexpected {c:?}"),
            },
            |_, received| received.len() == BURST,
            |_, received| format!("{} of {BURST} received", received.len()),
        );
        for (i, (payload, truncated)) in received.iter().enumerate() {
            if i == 7 {
                assert!(*truncated, "a 600-byte datagram into 512-byte buffers");
                assert_eq!(payload[..], [7; 512], "the truncated datagram's first 512 bytes");
            } else {
                assert!(!truncated, "datagram {i} reported truncated");
                assert_eq!(*payload, datagram(i), "datagram {i}");
            }
        }
        // Receives only: one system call per datagram would be >= 128.
        let submitted = driver.stats().submitted - submitted_before;
        eprintln!("{backend:?}: {BURST} datagrams received with {submitted} operations");
        if cfg!(target_os = "linux") {
            assert!(submitted <= (BURST / 4) as u64, "{submitted} receive calls for {BURST}");
        }
    }
}
