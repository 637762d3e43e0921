//! `ringwork serve irc` on 2 cores against clients nobody here wrote, on both backends:
//! Twisted's own `IRCClient` (`tests/irc/twisted_client.py`) and the PyPI `irc` package
//! (`tests/irc/irc_package_client.py`). Each script connects until it has two clients on
//! different cores (the server names the core in `002`), then runs registration, a nick
//! collision, joins, channel and private messages, CTCP ACTION, modes, a topic, a kick and
//! a quit message. Both are installed by `scripts/install-irc-test-deps.sh`; a missing
//! peer fails the test under `CI=true` and is skipped with a loud line otherwise.
//! Also, with a plain socket: `--motd` and `--server-name` in the welcome, a wrong password,
//! a flood cut off with `ERROR :Excess Flood`, a line over the limit answered 417, the
//! channel limit answered 405.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use support::{Server, TempDir, backend, free_port};

#[macro_use]
mod support;

/// Whether python3 imports `module`; under CI=true a missing peer is a failure.
fn peer(module: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "python3 module {module} is missing: scripts/install-irc-test-deps.sh installs it"
        );
        eprintln!(
            "skipped: python3 module {module} is not installed (scripts/install-irc-test-deps.sh)"
        );
    }
    ok
}

/// `ringwork serve irc` on 2 cores; its port.
fn serve(backend: &str, extra: &[&str]) -> (Server, u16) {
    let port = free_port();
    let endpoint = format!("tcp:{port}:interface=127.0.0.1");
    let mut args = vec![
        "serve",
        "irc",
        "--listen",
        &endpoint,
        "--cores",
        "2",
        "--backend",
        backend,
    ];
    args.extend_from_slice(extra);
    let mut server = Server::start(&args);
    server.listening(2);
    (server, port)
}

/// Runs a client script against the server; its `ok` lines.
fn run_script(script: &str, port: u16, password: Option<&str>) -> Vec<String> {
    let path = format!("{}/tests/irc/{script}", env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new("python3");
    command.arg(&path).arg(port.to_string());
    command.args(password);
    let output = command.output().expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script}:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.lines().map(str::to_owned).collect()
}

fn twisted_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer("twisted.words.protocols.irc") {
        return;
    }
    let (_server, port) = serve(backend, &["--password", "sesame"]);
    let lines = run_script("twisted_client.py", port, Some("sesame"));
    assert_eq!(lines[0], "ok cores 0 1");
    assert_eq!(
        lines[1..],
        [
            "ok nick in use",
            "ok join",
            "ok messages",
            "ok modes",
            "ok topic",
            "ok kick",
            "ok quit"
        ]
    );
}

fn irc_package_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    if !peer("irc.client") {
        return;
    }
    let (_server, port) = serve(backend, &[]);
    let lines = run_script("irc_package_client.py", port, None);
    assert_eq!(
        lines,
        [
            "ok cores 0 1",
            "ok join",
            "ok messages",
            "ok modes",
            "ok kick",
            "ok quit"
        ]
    );
}

/// A plain-socket client: lines in and out.
struct Raw {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        // A failure bound only: every read waits for a line the server sends.
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        Raw {
            writer: stream.try_clone().expect("clone"),
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("write");
    }

    /// Lines until one contains `needle` (that one included); `None` at EOF.
    fn until(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read a line");
            if n == 0 {
                panic!("closed before {needle:?}; saw {lines:?}");
            }
            let found = line.contains(needle);
            lines.push(line.trim_end().to_owned());
            if found {
                return lines;
            }
        }
    }

    /// Reads to EOF.
    fn rest(&mut self) -> String {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut self.reader, &mut text);
        text
    }
}

fn limits_suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    let dir = TempDir::new("irc-motd");
    let motd = dir.0.join("motd.txt");
    std::fs::write(&motd, "first line\nsecond line\n").expect("write the MOTD");
    let motd = motd.to_str().expect("a UTF-8 path").to_owned();
    let (_server, port) = serve(
        backend,
        &[
            "--password",
            "pw",
            "--motd",
            &motd,
            "--server-name",
            "irc.test",
        ],
    );

    let mut wrong = Raw::connect(port);
    wrong.send("PASS nope\r\nNICK w\r\nUSER w 0 * :W\r\n");
    let lines = wrong.until("ERROR");
    assert!(lines[0].contains(" 464 "), "{lines:?}");
    assert_eq!(wrong.rest(), "", "closed after ERROR");

    let mut client = Raw::connect(port);
    client.send("PASS pw\r\nNICK limits\r\nUSER l 0 * :L\r\n");
    let welcome = client.until(" 376 ");
    assert_eq!(
        welcome[0],
        ":irc.test 001 limits :Welcome to the ringwork IRC Network limits!l@127.0.0.1"
    );
    let motd: Vec<&str> = welcome
        .iter()
        .filter(|l| l.contains(" 372 "))
        .map(String::as_str)
        .collect();
    assert_eq!(
        motd,
        [
            ":irc.test 372 limits :- first line",
            ":irc.test 372 limits :- second line"
        ]
    );
    client.send(&format!("PRIVMSG limits :{}\r\n", "x".repeat(600)));
    assert!(client.until(" 417 ")[0].ends_with(":Input line was too long"));
    let joins: Vec<String> = (0..21).map(|i| format!("#c{i}")).collect();
    client.send(&format!("JOIN {}\r\n", joins.join(",")));
    let lines = client.until(" 405 ");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains("#c20 :You have joined too many channels")),
        "{lines:?}"
    );

    let mut flooder = Raw::connect(port);
    flooder.send("PASS pw\r\nNICK flooder\r\nUSER f 0 * :F\r\n");
    flooder.until(" 376 ");
    let flood: String = (0..200)
        .map(|i| format!("PRIVMSG flooder :{i}\r\n"))
        .collect();
    flooder.send(&flood);
    let lines = flooder.until("ERROR");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("ERROR :Closing Link: 127.0.0.1 (Excess Flood)")
    );
}

#[test]
fn twisted_client_against_serve_irc_uring() {
    twisted_suite("uring");
}

#[test]
fn twisted_client_against_serve_irc_poll() {
    twisted_suite("poll");
}

#[test]
fn irc_package_against_serve_irc_uring() {
    irc_package_suite("uring");
}

#[test]
fn irc_package_against_serve_irc_poll() {
    irc_package_suite("poll");
}

#[test]
fn limits_of_serve_irc_uring() {
    limits_suite("uring");
}

#[test]
fn limits_of_serve_irc_poll() {
    limits_suite("poll");
}
