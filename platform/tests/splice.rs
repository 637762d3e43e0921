//! Splicing one stream socket into another, on every backend (Linux).
//!
//! Proves: 8 MiB each way between two outside peers (plain std sockets on threads) cross
//! the driver through `Driver::splice` byte for byte, after bytes queued on the destination
//! before the splice; no `Received` is delivered for a spliced socket; `Spliced` counts
//! every byte; each source's end arrives as its `Eof` only after its bytes went out, and a
//! `shutdown_write` then passes the end on; a destination that resets ends the splice with
//! its `SendError`; and bad requests (into itself, twice, unknown sockets) are refused with
//! `InvalidInput`. The 8 MiB transfer runs with the default pipe and with 1 MiB pipes.
#![cfg(target_os = "linux")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::Duration;

use ringwork_platform::{
    BackendChoice, Completion, DriverConfig, SocketId, test_all_backends, testing,
};

use common::{accept_one, drive, listen, pattern};

const PAYLOAD: usize = 8 * 1024 * 1024;

#[derive(Default)]
struct Progress {
    /// Bytes spliced from (a, b).
    spliced: [usize; 2],
    eofs: Vec<SocketId>,
    send_errors: Vec<SocketId>,
    shutdowns: usize,
}

/// 8 MiB each way through a pair of splices with pipes of `pipe_size` bytes (see the
/// module docs for what it checks).
fn eight_mib_each_way(backend: BackendChoice, pipe_size: usize) {
    let config = DriverConfig {
        splice_pipe_size: pipe_size,
        ..DriverConfig::default()
    };
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    let (left, a) = accept_one(&mut driver);
    let (right, b) = accept_one(&mut driver);
    // Queued before the splice: must reach `right` before any spliced byte.
    assert!(driver.send(b, b"HEAD".as_slice().into()));
    driver.splice(a, b).expect("splice a -> b");
    driver.splice(b, a).expect("splice b -> a");
    assert!(driver.recv(a) && driver.recv(b));

    let to_right = pattern(1, PAYLOAD);
    let to_left = pattern(2, PAYLOAD);
    let peer = |mut stream: TcpStream, send: Vec<u8>| {
        thread::spawn(move || {
            let mut reader = stream.try_clone().expect("clone");
            let receiver = thread::spawn(move || {
                let mut got = Vec::new();
                reader.read_to_end(&mut got).expect("read");
                got
            });
            stream.write_all(&send).expect("write");
            stream.shutdown(Shutdown::Write).expect("shutdown");
            receiver.join().expect("receiver")
        })
    };
    left.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    right
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let left_peer = peer(left.try_clone().expect("clone"), to_right.clone());
    let right_peer = peer(right.try_clone().expect("clone"), to_left.clone());

    let mut progress = Progress::default();
    drive(
        &mut driver,
        &mut progress,
        |driver, p, c| match c {
            Completion::Spliced { socket, bytes } => {
                p.spliced[usize::from(socket == b)] += bytes;
            }
            Completion::Eof { socket } => {
                let i = usize::from(socket == b);
                assert_eq!(p.spliced[i], PAYLOAD, "EOF before every byte went out");
                p.eofs.push(socket);
                assert!(driver.shutdown_write(if socket == a { b } else { a }));
            }
            Completion::ShutdownDone { result, .. } => {
                result.expect("shutdown");
                p.shutdowns += 1;
            }
            Completion::Sent { .. } => {}
            c => panic!("unexpected {c:?}"),
        },
        |_, p| p.shutdowns == 2,
        |_, p| format!("spliced {:?}, eofs {:?}", p.spliced, p.eofs),
    );
    let got_left = left_peer.join().expect("left peer");
    let got_right = right_peer.join().expect("right peer");
    assert_eq!(got_right.len(), PAYLOAD + 4);
    assert!(got_right[..4] == *b"HEAD", "queued bytes did not go first");
    assert!(got_right[4..] == to_right[..], "bytes to the right differ");
    assert!(got_left == to_left, "bytes to the left differ");
    assert!(driver.stats().submitted > 0);
    drop((left, right));
}

test_all_backends! {
    fn eight_mib_each_way_in_order_with_ends_passed_on(backend: BackendChoice) {
        eight_mib_each_way(backend, DriverConfig::default().splice_pipe_size);
    }

    fn eight_mib_each_way_through_one_mib_pipes(backend: BackendChoice) {
        // Larger than the default pipe: one splice call moves up to 1 MiB (fewer calls per
        // MB); where /proc/sys/fs/pipe-max-size refuses it, the default size is kept.
        eight_mib_each_way(backend, 1 << 20);
    }

    fn a_destination_reset_ends_the_splice_with_its_send_error(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (mut left, a) = accept_one(&mut driver);
        let (right, b) = accept_one(&mut driver);
        driver.splice(a, b).expect("splice");
        assert!(driver.recv(a));
        // The destination's peer resets: writing to `b` fails once it learns of it.
        socket2::SockRef::from(&right)
            .set_linger(Some(Duration::ZERO))
            .expect("linger");
        drop(right);
        let writer = thread::spawn(move || {
            let chunk = vec![7u8; 64 * 1024];
            // Ends when the driver stops reading and the peer's window closes, or with an
            // error once the socket is closed.
            for _ in 0..256 {
                if left.write_all(&chunk).is_err() {
                    break;
                }
            }
        });
        let mut progress = Progress::default();
        drive(
            &mut driver,
            &mut progress,
            |_, p, c| match c {
                Completion::Spliced { bytes, .. } => p.spliced[0] += bytes,
                Completion::SendError { socket, error } => {
                    assert!(
                        matches!(
                            error.kind(),
                            ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
                        ),
                        "{error}"
                    );
                    p.send_errors.push(socket);
                }
                c => panic!("unexpected {c:?}"),
            },
            |_, p| !p.send_errors.is_empty(),
            |_, p| format!("no SendError; spliced {:?}", p.spliced),
        );
        assert_eq!(progress.send_errors, vec![b]);
        // The splice ended and reading the source stopped: closing both is all that is left.
        assert!(driver.close(a) && driver.close(b));
        // Closes take effect in a turn; dropping the driver closes everything, which ends
        // the writer's blocked write.
        drop(driver);
        writer.join().expect("writer");
    }

    fn bad_splices_are_refused(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let (_left, a) = accept_one(&mut driver);
        let (_right, b) = accept_one(&mut driver);
        let (listener, _) = listen(&mut driver);
        let invalid = |r: Result<(), ringwork_platform::OpError>| {
            r.expect_err("refused").kind() == ErrorKind::InvalidInput
        };
        assert!(invalid(driver.splice(a, a)), "into itself");
        assert!(invalid(driver.splice(listener, a)), "from a listener");
        assert!(invalid(driver.splice(a, SocketId::from_parts(999, 0))), "to nothing");
        driver.splice(a, b).expect("first splice");
        assert!(invalid(driver.splice(a, b)), "twice from a");
        let (_third, c) = accept_one(&mut driver);
        assert!(invalid(driver.splice(c, b)), "second splice into b");
        driver.splice(b, a).expect("the other direction");
    }
}
