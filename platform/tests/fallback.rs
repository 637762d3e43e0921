//! Backend selection and the automatic fallback from io_uring to poll.
//!
//! Proves: when io_uring setup fails (simulated through `simulate_uring_setup_errno`),
//! `BackendChoice::Auto` runs on the poll backend, which works, and
//! `capabilities().uring_unavailable` names the reason (EPERM: seccomp, or the sysctl when it
//! is set; ENOSYS: not implemented); forcing `BackendChoice::Uring` instead fails with
//! `SetupError::UringUnavailable` whose text names the reason; an unknown backend name is a
//! clear error; and without simulation io_uring on this machine runs with the features the
//! backend relies on (task-run mode, provided buffer ring, multishot receive).
//!
//! The environment is never changed (tests run in parallel threads): `RINGWORK_BACKEND` is
//! exercised through `BackendChoice::from_str`, which is what reading it uses.

mod common;

use ringwork_platform::{
    BackendChoice, BackendKind, Bytes, Completion, Driver, DriverConfig, SetupError,
    UringUnavailable, testing,
};

use common::{Pair, connect_pairs, drive, listen, settle};

/// `None` when `RINGWORK_BACKEND` makes `Auto` mean something else (printed as a skip).
fn auto_is_automatic(test: &str) -> Option<()> {
    match std::env::var(BackendChoice::ENV) {
        Ok(value) if value.parse::<BackendChoice>().ok() != Some(BackendChoice::Auto) => {
            eprintln!(
                "skipped: {test} ({}={value:?} overrides BackendChoice::Auto)",
                BackendChoice::ENV
            );
            None
        }
        _ => Some(()),
    }
}

fn simulated(backend: BackendChoice, errno: i32) -> DriverConfig {
    DriverConfig {
        backend,
        simulate_uring_setup_errno: Some(errno),
        ..DriverConfig::default()
    }
}

/// What EPERM from io_uring_setup means on this machine: seccomp unless the sysctl is set.
fn eperm_reason() -> UringUnavailable {
    let sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse::<u8>().ok())
        .unwrap_or(0);
    if sysctl > 0 {
        UringUnavailable::DisabledBySysctl { value: sysctl }
    } else {
        UringUnavailable::DeniedBySeccomp
    }
}

/// Sends a few bytes through a loopback pair on `driver`.
fn exchange(driver: &mut Driver) {
    let (listener, addr) = listen(driver);
    let Pair { client, server } = connect_pairs(driver, listener, &addr, 1)[0];
    assert!(driver.recv(server));
    assert!(driver.send(client, Bytes::from_static(b"fallback works")));
    let mut got = Vec::new();
    drive(
        driver,
        &mut got,
        |_, got, c| match c {
            Completion::Received { buf, .. } => got.extend_from_slice(&buf),
            Completion::Sent { .. } => {}
            other => panic!("unexpected {other:?}"),
        },
        |_, got| got.len() == 14,
        |_, got| format!("{}/14 bytes through the fallback driver", got.len()),
    );
    assert_eq!(got, b"fallback works");
    for id in [client, server, listener] {
        assert!(driver.close(id));
    }
    settle(driver, 0);
}

#[test]
fn auto_falls_back_to_poll_when_setup_is_denied() {
    let Some(()) = auto_is_automatic("auto_falls_back_to_poll_when_setup_is_denied") else {
        return;
    };
    let mut driver = Driver::with_config(simulated(BackendChoice::Auto, libc::EPERM))
        .expect("Auto falls back instead of failing");
    assert_eq!(driver.backend(), BackendKind::Poll);
    let capabilities = driver.capabilities();
    assert_eq!(capabilities.backend, Some(BackendKind::Poll));
    assert_eq!(capabilities.uring_unavailable, Some(eperm_reason()));
    eprintln!("fallback (EPERM): {capabilities:?}");
    exchange(&mut driver);
}

#[test]
fn auto_falls_back_to_poll_when_io_uring_is_missing() {
    let Some(()) = auto_is_automatic("auto_falls_back_to_poll_when_io_uring_is_missing") else {
        return;
    };
    let driver = Driver::with_config(simulated(BackendChoice::Auto, libc::ENOSYS))
        .expect("Auto falls back instead of failing");
    assert_eq!(driver.backend(), BackendKind::Poll);
    assert_eq!(
        driver.capabilities().uring_unavailable,
        Some(UringUnavailable::NotImplemented)
    );
}

#[test]
fn forced_uring_fails_with_the_reason() {
    for (errno, expected, words) in [
        (libc::EPERM, eperm_reason(), ["EPERM", "seccomp"]),
        (
            libc::ENOSYS,
            UringUnavailable::NotImplemented,
            ["ENOSYS", "not implemented"],
        ),
    ] {
        let error = Driver::with_config(simulated(BackendChoice::Uring, errno))
            .expect_err("a forced io_uring backend that cannot set up is an error");
        let text = error.to_string();
        eprintln!("forced uring, errno {errno}: {text}");
        match error {
            SetupError::UringUnavailable { reason } => assert_eq!(reason, expected),
            other => panic!("expected UringUnavailable, got {other:?}"),
        }
        assert!(text.contains("io_uring"), "{text:?} names io_uring");
        if expected != UringUnavailable::DeniedBySeccomp && errno == libc::EPERM {
            continue; // The sysctl is set here: its own text, checked in the unit tests.
        }
        for word in words {
            assert!(text.contains(word), "{text:?} names the reason ({word})");
        }
    }
}

#[test]
fn explicit_poll_has_no_fallback_reason() {
    let driver =
        Driver::with_config(simulated(BackendChoice::Poll, libc::EPERM)).expect("poll backend");
    assert_eq!(driver.backend(), BackendKind::Poll);
    assert_eq!(
        driver.capabilities().uring_unavailable,
        None,
        "poll was chosen, not fallen back to"
    );
}

#[test]
fn backend_names_parse_and_bad_ones_are_clear_errors() {
    for (name, choice) in [
        ("auto", BackendChoice::Auto),
        ("", BackendChoice::Auto),
        ("uring", BackendChoice::Uring),
        (" IO_URING ", BackendChoice::Uring),
        ("io-uring", BackendChoice::Uring),
        ("poll", BackendChoice::Poll),
        ("epoll", BackendChoice::Poll),
        ("mio", BackendChoice::Poll),
    ] {
        assert_eq!(name.parse::<BackendChoice>().ok(), Some(choice), "{name:?}");
    }
    let error = "bogus"
        .parse::<BackendChoice>()
        .expect_err("unknown backend name");
    let text = error.to_string();
    eprintln!("bad backend name: {text}");
    assert!(
        matches!(&error, SetupError::BadBackendVariable { value } if value == "bogus"),
        "{error:?}"
    );
    for word in [BackendChoice::ENV, "bogus", "auto", "uring", "poll"] {
        assert!(text.contains(word), "{text:?} mentions {word}");
    }
}

#[test]
fn uring_capabilities_on_this_machine() {
    let Some(driver) = testing::driver(BackendChoice::Uring, DriverConfig::default()) else {
        return;
    };
    let capabilities = driver.capabilities();
    eprintln!("io_uring capabilities: {capabilities:#?}");
    assert_eq!(driver.backend(), BackendKind::Uring);
    assert_eq!(capabilities.backend, Some(BackendKind::Uring));
    assert_eq!(capabilities.uring_unavailable, None);
    assert!(
        capabilities.defer_taskrun || capabilities.coop_taskrun,
        "neither DEFER_TASKRUN nor COOP_TASKRUN in use"
    );
    assert!(capabilities.buf_ring, "no provided buffer ring");
    assert!(capabilities.multishot_recv, "no multishot recv");
    assert!(capabilities.multishot_accept, "no multishot accept");
    assert!(capabilities.ext_arg, "no IORING_FEAT_EXT_ARG");
    assert!(capabilities.sq_entries >= DriverConfig::default().sq_entries);
    assert!(capabilities.cq_entries >= DriverConfig::default().cq_entries);
}
