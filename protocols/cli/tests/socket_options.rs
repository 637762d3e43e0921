//! `ringwork serve`'s socket options (`--backlog`, `--recv-buffer`, `--keepalive`, ...)
//! seen from outside the process with `ss` (iproute2), on both backends.
//!
//! Proves: the listener has the backlog (ss's Send-Q of a listening socket) and receive
//! buffer (skmem `rb`, doubled by Linux) given; an accepted connection runs a keepalive
//! timer; bad values fail at start-up naming the flag (exit status 1, never "listening
//! on"). Without `ss` the checks that need it are skipped loudly (a failure under
//! `CI=true`; `scripts/install-socket-test-deps.sh` installs it).

#[macro_use]
mod support;

use std::net::TcpStream;
use std::process::Command;

use support::{Server, backend};

/// `ss ARGS` output; `None` (skipped, loudly) without ss outside CI.
fn ss(args: &[&str]) -> Option<String> {
    match Command::new("ss").args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "ss {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        }
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ss is missing: {e}"
            );
            eprintln!("skipped: ss (iproute2) is not installed: {e}");
            None
        }
    }
}

both_backends!(listener_options_are_set, bad_values_fail);

fn listener_options_are_set(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let mut server = Server::start(&[
        "serve",
        "echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
        "--backlog",
        "77",
        "--recv-buffer",
        "200000",
        "--keepalive",
        "30,5,3",
        "--tos",
        "0x28",
    ]);
    let endpoint = server.listening(1).remove(0);
    let port = endpoint.port().expect("a TCP port");
    let filter = format!("sport = :{port}");
    let Some(listening) = ss(&["-Hltnm", &filter]) else {
        return;
    };
    // "LISTEN 0 77 127.0.0.1:PORT 0.0.0.0:* skmem:(r0,rb400000,...)"
    let fields: Vec<&str> = listening.split_whitespace().collect();
    assert_eq!(
        fields.get(2),
        Some(&"77"),
        "the backlog as ss's Send-Q: {listening}"
    );
    assert!(
        listening.contains("rb400000"),
        "SO_RCVBUF 200000, doubled: {listening}"
    );

    let client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let local = client.local_addr().expect("address").port();
    let accepted = ss(&[
        "-Htno",
        "state",
        "established",
        &format!("dport = :{local}"),
    ])
    .expect("ss ran above");
    assert!(
        accepted.contains("timer:(keepalive,"),
        "a keepalive timer: {accepted}"
    );
    drop(client);
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

fn bad_values_fail(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    let cases = [
        ("--backlog", "0", "--backlog 0: must be 1 to 65535"),
        (
            "--fastopen",
            "70000",
            "--fastopen 70000: must be 1 to 65535",
        ),
        ("--recv-buffer", "0", "SO_RCVBUF 0: must be 1 byte to 1 GiB"),
        (
            "--bind-device",
            "a-very-long-name0",
            "SO_BINDTODEVICE \"a-very-long-name0\"",
        ),
    ];
    for (flag, value, why) in cases {
        let mut server = Server::start(&[
            "serve",
            "echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--cores",
            "1",
            "--backend",
            backend,
            flag,
            value,
        ]);
        while let Some(line) = server.next_line() {
            assert!(
                !line.contains("listening on "),
                "started with {flag} {value}"
            );
        }
        let status = server.child.wait().expect("wait");
        let text = server.seen.join("\n");
        assert_eq!(status.code(), Some(1), "{flag} {value}: {text}");
        assert!(text.contains(why), "{flag} {value}: {text}");
    }
}
