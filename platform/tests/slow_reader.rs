//! A big send to a peer that reads in small pieces, on every backend.
//!
//! Proves: 32 MiB queued at once on an accepted stream reach a peer that drains its socket
//! a few KiB at a time, byte for byte, with no `SendError` (one send woken for a little room
//! many times).
//!
//! Related: io_uring may finish a send on a non-blocking socket with `EAGAIN` once its
//! internal poll retries run out; the driver waits for room and sends again
//! (`Stats::eagain_retries`). This test does not force that path (the kernel's trigger is not
//! reproducible on demand); engine/tests/examples.rs's stalled-proxy test met it under load.

mod common;

use std::io::Read;
use std::thread;

use bytes::Bytes;
use ringwork_platform::{BackendChoice, Completion, DriverConfig, test_all_backends, testing};

use common::{accept_one, drive, pattern};

const PAYLOAD: usize = 32 * 1024 * 1024;
/// The peer's read size: small, so the sender is woken for little room many times.
const SIP: usize = 4 * 1024;

test_all_backends! {
    fn a_big_send_reaches_a_peer_that_reads_in_sips(backend: BackendChoice) {
        for (name, config) in testing::data_path_configs() {
            eprintln!("{backend:?}, {name}");
            big_send_to_sipping_peer(backend, config);
        }
    }
}

fn big_send_to_sipping_peer(backend: BackendChoice, config: DriverConfig) {
    let Some(mut driver) = testing::driver(backend, config) else {
        return;
    };
    let (mut outside, socket) = accept_one(&mut driver);
    let payload = pattern(7, PAYLOAD);
    let expected = payload.clone();
    let reader = thread::spawn(move || {
        let mut got = Vec::with_capacity(PAYLOAD);
        let mut buf = vec![0; SIP];
        while got.len() < PAYLOAD {
            let n = outside.read(&mut buf).expect("read");
            assert!(n > 0, "end of stream after {} bytes", got.len());
            got.extend_from_slice(&buf[..n]);
        }
        got
    });
    assert!(driver.send(socket, Bytes::from(payload)));
    let mut sent = 0;
    drive(
        &mut driver,
        &mut sent,
        |_, sent, c| match c {
            Completion::Sent { bytes, .. } => *sent += bytes,
            c => panic!("unexpected {c:?} after {sent} bytes sent"),
        },
        |_, sent| *sent == PAYLOAD,
        |_, sent| format!("{sent} of {PAYLOAD} bytes sent"),
    );
    let got = reader.join().expect("reader");
    assert!(got == expected, "the peer received different bytes");
}
