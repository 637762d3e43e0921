//! Unix datagram sockets (`Driver::bind_unix_datagram`, `send_to_addr`,
//! `Completion::ReceivedFromUnix`), on every backend.
//!
//! Proves:
//! - a datagram between two named sockets arrives with the sender's path, and the answer
//!   sent to that path arrives back with the receiver's path;
//! - Linux abstract names work the same way (sender named by its abstract name);
//! - an unnamed sender's datagram arrives with an unnamed address (no path, no abstract
//!   name), and an answer to it fails with a `SendError` (it cannot be addressed);
//! - a datagram longer than a pool buffer arrives cut to the buffer, flagged truncated;
//! - UDP still reports `ReceivedFrom` with an IP sender (its own tests cover the rest).

mod common;

use std::path::PathBuf;

use ringwork_platform::{
    BackendChoice, Completion, Driver, DriverConfig, OpKind, SockAddr, SocketId, test_all_backends,
    testing,
};

use common::drive;

/// A fresh directory for this test's socket paths.
fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("ringwork-unix-dgram-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits for the next datagram on `socket`: its payload, sender and truncation flag.
fn next_datagram(driver: &mut Driver, socket: SocketId) -> (Vec<u8>, SockAddr, bool) {
    let mut got = None;
    drive(
        driver,
        &mut got,
        |_, got, c| match c {
            Completion::ReceivedFromUnix {
                socket: s,
                buf,
                from,
                truncated,
            } => {
                assert_eq!(s, socket);
                *got = Some((buf.to_vec(), *from, truncated));
            }
            Completion::Sent { .. } => {}
            c => panic!("unexpected {c:?}"),
        },
        |_, got| got.is_some(),
        |_, _| "no datagram arrived".into(),
    );
    got.expect("a datagram")
}

test_all_backends! {
    fn named_sockets_talk_both_ways(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let dir = temp_dir(&format!("{backend:?}-named"));
        let (a_path, b_path) = (dir.join("a.sock"), dir.join("b.sock"));
        let a_addr = SockAddr::unix(&a_path).expect("address");
        let b_addr = SockAddr::unix(&b_path).expect("address");
        let a = driver.bind_unix_datagram(Some(&a_addr)).expect("bind a");
        let b = driver.bind_unix_datagram(Some(&b_addr)).expect("bind b");
        assert!(driver.recv(a) && driver.recv(b));

        assert!(driver.send_to_addr(b, b"ping".as_slice().into(), a_addr.clone()));
        let (payload, from, truncated) = next_datagram(&mut driver, a);
        assert_eq!((payload.as_slice(), truncated), (&b"ping"[..], false));
        assert_eq!(from.as_pathname(), Some(b_path.as_path()));

        assert!(driver.send_to_addr(a, b"pong".as_slice().into(), from));
        let (payload, from, _) = next_datagram(&mut driver, b);
        assert_eq!(payload, b"pong");
        assert_eq!(from.as_pathname(), Some(a_path.as_path()));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn abstract_names(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let name = format!("\0ringwork-test-{}-{backend:?}", std::process::id());
        let a_addr = SockAddr::unix(format!("{name}-a")).expect("abstract address");
        let b_addr = SockAddr::unix(format!("{name}-b")).expect("abstract address");
        let a = driver.bind_unix_datagram(Some(&a_addr)).expect("bind a");
        let b = driver.bind_unix_datagram(Some(&b_addr)).expect("bind b");
        assert!(driver.recv(a));
        assert!(driver.send_to_addr(b, b"hi".as_slice().into(), a_addr));
        let (payload, from, _) = next_datagram(&mut driver, a);
        assert_eq!(payload, b"hi");
        assert_eq!(from.as_abstract_namespace(), Some(format!("{name}-b").as_bytes()[1..].as_ref()));
    }

    fn an_unnamed_sender_cannot_be_answered(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let dir = temp_dir(&format!("{backend:?}-unnamed"));
        let a_addr = SockAddr::unix(dir.join("a.sock")).expect("address");
        let a = driver.bind_unix_datagram(Some(&a_addr)).expect("bind a");
        let anonymous = driver.bind_unix_datagram(None).expect("unnamed socket");
        assert!(driver.recv(a));
        assert!(driver.send_to_addr(anonymous, b"who".as_slice().into(), a_addr));
        let (payload, from, _) = next_datagram(&mut driver, a);
        assert_eq!(payload, b"who");
        assert!(from.is_unix() && from.is_unnamed(), "{from:?}");
        assert_eq!((from.as_pathname(), from.as_abstract_namespace()), (None, None));
        // An answer has nowhere to go.
        assert!(driver.send_to_addr(a, b"you?".as_slice().into(), from));
        let mut failed = None;
        drive(
            &mut driver,
            &mut failed,
            |_, failed, c| match c {
                Completion::SendError { socket, error } => {
                    assert_eq!(socket, a);
                    assert_eq!(error.op, OpKind::SendTo);
                    *failed = Some(error);
                }
                c => panic!("unexpected {c:?}"),
            },
            |_, failed| failed.is_some(),
            |_, _| "the answer to an unnamed sender did not fail".into(),
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn a_long_datagram_is_truncated(backend: BackendChoice) {
        let config = DriverConfig { buf_size: 4096, ..DriverConfig::default() };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let dir = temp_dir(&format!("{backend:?}-long"));
        let a_addr = SockAddr::unix(dir.join("a.sock")).expect("address");
        let a = driver.bind_unix_datagram(Some(&a_addr)).expect("bind a");
        let b = driver.bind_unix_datagram(Some(&SockAddr::unix(dir.join("b.sock")).expect("address"))).expect("bind b");
        assert!(driver.recv(a));
        let long: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
        assert!(driver.send_to_addr(b, long.clone().into(), a_addr));
        let (payload, _, truncated) = next_datagram(&mut driver, a);
        assert!(truncated, "flagged truncated");
        assert_eq!(payload, long[..4096], "cut to the buffer");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn bad_addresses_are_refused(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, Default::default()) else { return };
        let ip = SockAddr::from(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        let error = driver.bind_unix_datagram(Some(&ip)).expect_err("an IP address");
        assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(driver.live_sockets(), 0);
    }
}
