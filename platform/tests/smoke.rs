//! Quick end-to-end checks of the driver on every backend.

use std::time::{Duration, Instant};

use ringwork_platform::{
    BackendChoice, Bytes, Completion, DriverConfig, ListenOptions, SockAddr, test_all_backends,
    testing,
};

test_all_backends! {
    fn echo_one_connection(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let addr: SockAddr = "127.0.0.1:0".parse::<std::net::SocketAddr>().unwrap().into();
        let listener = driver.listen(&addr, &ListenOptions::default()).unwrap();
        let addr = driver.local_addr(listener).unwrap();
        assert!(driver.accept(listener));
        let client = driver.connect(&addr).unwrap();
        assert!(driver.send(client, Bytes::from_static(b"hello")));
        let mut out = Vec::new();
        let mut server = None;
        let mut echoed = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        while echoed.len() < 5 {
            assert!(Instant::now() < deadline, "timed out; got {echoed:?}");
            driver.turn(Some(Duration::from_secs(1)), &mut out).unwrap();
            for c in out.drain(..) {
                match c {
                    Completion::Accepted { result, .. } => {
                        let s = result.unwrap();
                        driver.recv(s);
                        server = Some(s);
                    }
                    Completion::Connected { socket, result } => {
                        result.unwrap();
                        driver.recv(socket);
                    }
                    Completion::Received { socket, buf } if Some(socket) == server => {
                        driver.send(socket, Bytes::copy_from_slice(&buf));
                    }
                    Completion::Received { buf, .. } => echoed.extend_from_slice(&buf),
                    Completion::Sent { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(echoed, b"hello");
        let stats = driver.stats();
        assert!(stats.enters <= stats.turns + 2, "one enter per turn: {stats:?}");
    }
}

test_all_backends! {
    fn idle_wait_blocks_until_woken(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let mut out = Vec::new();
        // An idle turn with a short timeout returns empty after one enter: the wake-up read
        // must not complete on its own.
        let before = driver.stats();
        driver.turn(Some(Duration::from_millis(20)), &mut out).unwrap();
        driver.turn(Some(Duration::from_millis(20)), &mut out).unwrap();
        assert!(out.is_empty(), "idle turns produced {out:?}");
        let after = driver.stats();
        assert!(after.enters - before.enters <= 3, "{before:?} -> {after:?}");
        let waker = driver.waker();
        let thread = std::thread::spawn(move || waker.wake().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while !out.iter().any(|c| matches!(c, Completion::Woken)) {
            assert!(Instant::now() < deadline, "never woken");
            driver.turn(Some(Duration::from_secs(5)), &mut out).unwrap();
        }
        thread.join().unwrap();
    }
}

test_all_backends! {
    fn unix_stream_echo(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else { return };
        let dir = std::env::temp_dir().join(format!("ringwork-smoke-{}-{backend:?}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("echo.sock");
        let _ = std::fs::remove_file(&path);
        let addr = SockAddr::unix(&path).unwrap();
        let listener = driver.listen(&addr, &ListenOptions::default()).unwrap();
        assert!(driver.local_addr(listener).unwrap().as_pathname().is_some());
        assert!(driver.accept(listener));
        let client = driver.connect(&addr).unwrap();
        let message = Bytes::from(vec![0x5a; 100_000]);
        assert!(driver.send(client, message.clone()));
        assert!(driver.recv(client));
        let (mut out, mut echoed) = (Vec::new(), Vec::new());
        let deadline = Instant::now() + Duration::from_secs(10);
        while echoed.len() < message.len() {
            assert!(Instant::now() < deadline, "timed out with {} bytes echoed", echoed.len());
            driver.turn(Some(Duration::from_secs(1)), &mut out).unwrap();
            for c in out.drain(..) {
                match c {
                    Completion::Accepted { result, .. } => assert!(driver.recv(result.unwrap())),
                    Completion::Connected { result, .. } => result.unwrap(),
                    Completion::Received { socket, buf } if socket != client => {
                        assert!(driver.send(socket, Bytes::copy_from_slice(&buf)));
                    }
                    Completion::Received { buf, .. } => echoed.extend_from_slice(&buf),
                    Completion::Sent { .. } => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(echoed, message);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
