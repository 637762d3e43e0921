//! Automatic fallback under the real failure: `kernel.io_uring_disabled=2`.
//!
//! Ignored by default because it needs the sysctl set for the whole machine, which would
//! break every other io_uring test running at the same time. `.ci/run` sets the sysctl,
//! runs this binary alone with `--ignored`, and restores it. The in-process injection
//! (`simulate_uring_setup_errno`) is covered by `fallback.rs` on every run.

use std::time::{Duration, Instant};

use ringwork_platform::{
    BackendChoice, BackendKind, Bytes, Completion, Driver, DriverConfig, ListenOptions, SetupError,
    UringUnavailable,
};

fn sysctl() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .expect("this test runs on Linux with the io_uring_disabled sysctl")
        .trim()
        .parse()
        .expect("the sysctl holds a number")
}

#[test]
#[ignore = "needs kernel.io_uring_disabled=2 for the whole machine; run by .ci/run"]
fn auto_falls_back_to_poll_when_the_sysctl_disables_io_uring() {
    assert_eq!(
        sysctl(),
        2,
        "set kernel.io_uring_disabled=2 before running this test"
    );

    let forced = Driver::with_config(DriverConfig {
        backend: BackendChoice::Uring,
        ..Default::default()
    });
    match forced {
        Err(SetupError::UringUnavailable { reason }) => {
            assert_eq!(reason, UringUnavailable::DisabledBySysctl { value: 2 });
            let text = SetupError::UringUnavailable { reason }.to_string();
            assert!(text.contains("kernel.io_uring_disabled=2"), "{text}");
        }
        other => panic!("forcing uring must fail with the sysctl's reason, got {other:?}"),
    }

    let mut driver = Driver::with_config(DriverConfig {
        backend: BackendChoice::Auto,
        ..Default::default()
    })
    .expect("auto falls back instead of failing");
    assert_eq!(driver.backend(), BackendKind::Poll);
    assert_eq!(
        driver.capabilities().uring_unavailable,
        Some(UringUnavailable::DisabledBySysctl { value: 2 })
    );

    // The fallback driver works: one echo round trip.
    let addr = "127.0.0.1:0"
        .parse::<std::net::SocketAddr>()
        .unwrap()
        .into();
    let listener = driver.listen(&addr, &ListenOptions::default()).unwrap();
    let addr = driver.local_addr(listener).unwrap();
    driver.accept(listener);
    let client = driver.connect(&addr).unwrap();
    driver.send(client, Bytes::from_static(b"ping"));
    let (mut out, mut got) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(20);
    while got != b"ping" {
        assert!(
            Instant::now() < deadline,
            "no echo through the fallback driver"
        );
        driver
            .turn(Some(Duration::from_millis(500)), &mut out)
            .unwrap();
        for completion in out.drain(..) {
            match completion {
                Completion::Accepted { result, .. } => {
                    driver.recv(result.unwrap());
                }
                Completion::Connected { socket, result } => {
                    result.unwrap();
                    driver.recv(socket);
                }
                Completion::Received { socket, buf } if socket != client => {
                    driver.send(socket, Bytes::copy_from_slice(&buf));
                }
                Completion::Received { buf, .. } => got.extend_from_slice(&buf),
                _ => {}
            }
        }
    }
}
