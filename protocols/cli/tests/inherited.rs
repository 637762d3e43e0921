//! `ringwork serve --listen systemd:...` and `--listen fd:N` under a real socket activator:
//! systemd's `systemd-socket-activate` (Debian's `systemd` package; installed by
//! `scripts/install-socket-test-deps.sh`), on both backends, answered to curl.
//!
//! Proves:
//! - `systemd-socket-activate -l 127.0.0.1:P ringwork serve hello --listen
//!   systemd:domain=INET:index=0 --cores 2` answers curl on P, every core listening on the
//!   passed socket;
//! - `systemd:domain=INET:name=web` finds the socket `--fdname=web` named, and `fd:3` takes
//!   it by number (`serve echo`);
//! - a `domain=` that is not the passed socket's family, an index not passed, and a
//!   `systemd:` endpoint in a process systemd did not start fail at start-up with a
//!   message saying why (exit status 1, never "listening on").
//!
//! Without `systemd-socket-activate` (or curl) the tests are skipped loudly; under
//! `CI=true` a missing tool fails them.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use support::{PATIENCE, Server, backend, free_port};

const ACTIVATE: &str = "systemd-socket-activate";

/// Whether `tool` runs here; `false` (skipped, loudly) outside CI, a failure under CI.
fn have(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is missing (scripts/install-socket-test-deps.sh installs it)"
        );
        eprintln!("skipped: {tool} is not installed (scripts/install-socket-test-deps.sh)");
    }
    found
}

/// Starts `ringwork ARGS` under `systemd-socket-activate -l 127.0.0.1:PORT` and waits
/// until the activator listens (it starts ringwork at the first connection).
fn activated(port: u16, args: &[&str]) -> Server {
    activated_with(port, &[], args)
}

/// [`activated`] with more options for the activator (`--fdname=NAME`).
fn activated_with(port: u16, options: &[&str], args: &[&str]) -> Server {
    let mut command = Command::new(ACTIVATE);
    command
        .args(options)
        .arg("-l")
        .arg(format!("127.0.0.1:{port}"))
        .arg("-E")
        .arg("RUST_LOG=info")
        .arg(env!("CARGO_BIN_EXE_ringwork"))
        .args(args);
    let mut server = Server::spawn(command);
    loop {
        let line = server.next_line().unwrap_or_else(|| {
            panic!("{ACTIVATE} ended: {}", server.seen.join("\n"));
        });
        if line.starts_with("Listening on ") {
            return server;
        }
    }
}

/// Runs curl against `url`; its body.
fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--max-time"])
        .arg(PATIENCE.as_secs().to_string())
        .arg(url)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 body")
}

/// Waits for `server`'s exit after a start-up failure; its stderr.
fn failed(mut server: Server) -> String {
    while let Some(line) = server.next_line() {
        assert!(
            !line.contains("listening on "),
            "ringwork started: {}",
            server.seen.join("\n")
        );
    }
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(1), "{}", server.seen.join("\n"));
    server.seen.join("\n")
}

both_backends!(
    systemd_hello_answers_curl,
    systemd_socket_by_name,
    fd_echo,
    bad_inherited_sockets_fail
);

/// `systemd:domain=INET:name=web` finds the socket `--fdname=web` named (LISTEN_FDNAMES).
fn systemd_socket_by_name(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    if !have(ACTIVATE) {
        return;
    }
    let port = free_port();
    let args = [
        "serve",
        "echo",
        "--listen",
        "systemd:domain=INET:name=web",
        "--cores",
        "1",
        "--backend",
        backend,
    ];
    let mut server = activated_with(port, &["--fdname=web"], &args);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.write_all(b"by name\n").expect("write");
    let mut echoed = [0; 8];
    stream.read_exact(&mut echoed).expect("echo");
    assert_eq!(&echoed, b"by name\n");
    assert_eq!(
        server.listening(1)[0].to_string(),
        "systemd:domain=INET:name=web"
    );
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

fn systemd_hello_answers_curl(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    if !have(ACTIVATE) || !have("curl") {
        return;
    }
    let port = free_port();
    let mut server = activated(
        port,
        &[
            "serve",
            "hello",
            "--listen",
            "systemd:domain=INET:index=0",
            "--cores",
            "2",
            "--backend",
            backend,
        ],
    );
    // The first request starts ringwork; it waits in the socket's accept queue meanwhile.
    let body = curl(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(body, "Hello, World!");
    let endpoints = server.listening(2);
    assert!(
        endpoints
            .iter()
            .all(|e| e.to_string() == "systemd:domain=INET:index=0"),
        "{endpoints:?}"
    );
    assert_eq!(
        curl(&format!("http://127.0.0.1:{port}/again")),
        "Hello, World!"
    );
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

fn fd_echo(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    if !have(ACTIVATE) {
        return;
    }
    let port = free_port();
    let args = [
        "serve",
        "echo",
        "--listen",
        "fd:3",
        "--cores",
        "1",
        "--backend",
        backend,
    ];
    let mut server = activated(port, &args);
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.write_all(b"inherited\n").expect("write");
    let mut echoed = [0; 10];
    stream.read_exact(&mut echoed).expect("echo");
    assert_eq!(&echoed, b"inherited\n");
    assert_eq!(server.listening(1)[0].to_string(), "fd:3");
    assert!(server.terminate(), "exit status 0 after SIGTERM");
}

fn bad_inherited_sockets_fail(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        return;
    };
    // Not started by systemd at all.
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringwork"));
    command
        .args(["serve", "hello", "--listen", "systemd:domain=INET:index=0"])
        .args(["--backend", backend])
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
    let text = failed(Server::spawn(command));
    assert!(
        text.contains("no sockets passed by systemd: LISTEN_PID is not set"),
        "{text}"
    );
    if !have(ACTIVATE) {
        return;
    }
    let cases = [
        (
            "systemd:domain=INET6:index=0",
            "of family INET, not domain=INET6",
        ),
        (
            "systemd:domain=INET:index=1",
            "index 1 is not among the 1 socket(s) systemd passed",
        ),
    ];
    for (endpoint, why) in cases {
        let port = free_port();
        let server = activated(
            port,
            &["serve", "hello", "--listen", endpoint, "--backend", backend],
        );
        // The activator starts ringwork at the first connection, which then fails.
        let _client = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let text = failed(server);
        assert!(text.contains(why), "{endpoint}: {text}");
    }
}
