//! The chat example (`protocols/examples/chat.rs`, lines cut by `LineReceiver`), run as a
//! program with two cores, under each backend (`RINGWORK_BACKEND` on the example process;
//! the io_uring half is skipped loudly where io_uring is unavailable and fails under
//! `RINGWORK_REQUIRE_URING=1`).
//!
//! Proves: a line reaches every other client on both cores and never its sender; a line
//! sent in pieces and ended by `\r\n` arrives whole; a line over the limit ends the
//! sender's connection with a message. Nothing sleeps: the test waits for the example's
//! "listening on" lines and reads with timeouts; the process is killed when dropped.
//!
//! `cargo test` builds the examples before the integration tests; this file finds the
//! binary beside its own (`target/<profile>/examples/chat`).
#![cfg(feature = "engine")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use ringwork::platform::testing;
use ringwork::{BackendChoice, DriverConfig};

/// Longest wait for the example to start or for a line.
const PATIENCE: Duration = Duration::from_secs(30);

/// The chat example, built by `cargo test` next to this test's binary.
fn example_path() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in target/<profile>/deps");
    let path = profile_dir.join("examples").join("chat");
    assert!(
        path.exists(),
        "{} is missing: `cargo test -p ringwork-protocols` builds it (with --test alone, run \
         `cargo build -p ringwork-protocols --example chat` first)",
        path.display()
    );
    path
}

/// The running example; killed when dropped. Its stdout arrives through a channel.
struct Chat {
    child: Child,
    lines: Receiver<String>,
}

impl Chat {
    fn start(backend: &str, listen: &str) -> Chat {
        let mut child = Command::new(example_path())
            .args(["--listen", listen, "--cores", "2"])
            .env("RINGWORK_BACKEND", backend)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the chat example");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let chat = Chat { child, lines };
        for _ in 0..2 {
            let line = chat.lines.recv_timeout(PATIENCE).expect("a listening line");
            assert!(line.contains("listening on"), "{line}");
        }
        chat
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A chat client: its connection and the lines it reads.
struct Chatter {
    core: usize,
    name: String,
    stream: TcpStream,
    lines: BufReader<TcpStream>,
}

impl Chatter {
    fn join(addr: SocketAddr) -> Chatter {
        let stream = TcpStream::connect_timeout(&addr, PATIENCE).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
        let mut lines = BufReader::new(stream.try_clone().expect("clone"));
        let greeting = read_line(&mut lines);
        // "welcome, you are on core N as N.M"
        let rest = greeting
            .strip_prefix("welcome, you are on core ")
            .unwrap_or_else(|| panic!("unexpected greeting {greeting:?}"));
        let (core, name) = rest.split_once(" as ").expect("core and name");
        Chatter {
            core: core.parse().expect("core index"),
            name: name.to_string(),
            stream,
            lines,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    fn hear(&mut self) -> String {
        read_line(&mut self.lines)
    }
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let n = reader.read_line(&mut line).expect("read a line");
    assert!(n > 0, "connection closed");
    line.trim_end_matches('\n').to_string()
}

fn backends() -> Vec<&'static str> {
    let mut backends = Vec::new();
    if testing::driver(BackendChoice::Uring, DriverConfig::default()).is_some() {
        backends.push("uring");
    }
    backends.push("poll");
    backends
}

#[test]
fn chat_delivers_lines_to_clients_on_both_cores() {
    for backend in backends() {
        eprintln!("--- backend {backend}");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("probe")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let _chat = Chat::start(backend, &listen);
        let addr: SocketAddr = listen.parse().expect("address");

        // The kernel spreads connections over the two cores' listeners: join until each
        // core has at least two clients.
        let mut clients = Vec::new();
        while (0..2).any(|core| clients.iter().filter(|c: &&Chatter| c.core == core).count() < 2) {
            assert!(
                clients.len() < 64,
                "64 connections did not reach both cores"
            );
            clients.push(Chatter::join(addr));
        }
        let s0 = clients.iter().position(|c| c.core == 0).expect("core 0");
        let s1 = clients.iter().position(|c| c.core == 1).expect("core 1");

        // Each line reaches every other client, on both cores; never its sender (the next
        // line a sender reads is someone else's). The third line comes in two pieces and
        // ends with CRLF: the LineReceiver joins the pieces and strips the CR.
        for (round, sender) in [s0, s1, s0].into_iter().enumerate() {
            let text = format!("line {round} from core {}", clients[sender].core);
            if round == 2 {
                let (head, tail) = text.split_at(4);
                clients[sender].send(head.as_bytes());
                clients[sender].send(format!("{tail}\r\n").as_bytes());
            } else {
                clients[sender].send(format!("{text}\n").as_bytes());
            }
            let expected = format!("[{}] {text}", clients[sender].name);
            for (i, client) in clients.iter_mut().enumerate() {
                if i != sender {
                    assert_eq!(client.hear(), expected, "client on core {}", client.core);
                }
            }
        }

        // A line over the 4096-byte limit: the sender is told and disconnected.
        let sender = &mut clients[s1];
        sender.send(&vec![b'x'; 5000]);
        assert_eq!(sender.hear(), "line too long, bye");
        let mut rest = Vec::new();
        let _ = sender.lines.read_to_end(&mut rest);
        assert!(rest.is_empty(), "nothing after the goodbye: {rest:?}");
    }
}
