//! Durability of `ringwork serve smtp`: 1,000 deliveries while the server is killed
//! (SIGKILL) at pseudo-random points — mid-DATA, right after the final dot (the delivery
//! in flight), between transactions — and restarted. Afterwards every message the server
//! acknowledged with 250 is in `new/`, complete, and no file in `new/` is partial. Both
//! backends.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;

use support::{Server, TempDir, backend};

const MESSAGES: usize = 1000;
const END: &str = "-- end of message --";

fn start(backend: &str, maildir: &Path) -> (Server, u16) {
    let mut server = Server::start(&[
        "serve",
        "smtp",
        "--backend",
        backend,
        "--cores",
        "1",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--maildir",
        maildir.to_str().unwrap(),
    ]);
    let port = server.listening(1)[0].port().expect("a TCP port");
    (server, port)
}

/// One SMTP client connection; `None` from any step means the server is gone.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(support::LIMIT)).unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        assert_eq!(client.reply().as_deref().map(|r| &r[..3]), Some("220"));
        client.send(b"EHLO durability.test\r\n").unwrap();
        assert_eq!(client.reply().as_deref().map(|r| &r[..3]), Some("250"));
        client
    }

    fn send(&mut self, bytes: &[u8]) -> Option<()> {
        self.writer.write_all(bytes).ok()
    }

    /// The last line of the next reply (multi-line replies skipped through).
    fn reply(&mut self) -> Option<String> {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) if line.len() >= 4 && line.as_bytes()[3] == b'-' => continue,
                Ok(_) => return Some(line),
            }
        }
    }
}

fn body(id: usize) -> String {
    let mut text = format!("Subject: message {id}\r\nMessage-Id: <{id}@durability.test>\r\n\r\n");
    for line in 0..80 {
        text.push_str(&format!("{id:06} line {line:03} {}\r\n", "x".repeat(100)));
    }
    text.push_str(END);
    text.push_str("\r\n");
    text
}

fn suite(name: &str) {
    let Some(backend) = backend(name) else { return };
    let dir = TempDir::new(&format!("durability-{name}"));
    let maildir = dir.0.join("mail");
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut acked = BTreeSet::new();
    let mut kills = 0;
    let (mut server, mut port) = start(backend, &maildir);
    let mut client = Client::connect(port);
    let mut id = 0;
    while id < MESSAGES {
        // About one kill in 40 messages, at one of three points.
        let kill_at = if next(40) == 0 { Some(next(3)) } else { None };
        let text = body(id);
        let mut step = || -> Option<bool> {
            client.send(
                b"MAIL FROM:<sender@durability.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n",
            )?;
            for expected in ["250", "250", "354"] {
                let reply = client.reply()?;
                assert!(reply.starts_with(expected), "{reply}");
            }
            let half = text.len() / 2;
            client.send(&text.as_bytes()[..half])?;
            if kill_at == Some(0) {
                return Some(false);
            }
            client.send(&text.as_bytes()[half..])?;
            client.send(b".\r\n")?;
            if kill_at == Some(1) {
                return Some(false);
            }
            let reply = client.reply()?;
            assert!(reply.starts_with("250"), "{reply}");
            Some(true)
        };
        match step() {
            Some(true) => {
                acked.insert(id);
                id += 1;
                if kill_at != Some(2) {
                    continue;
                }
            }
            // Killed mid-transaction: the message is not acknowledged; send it again.
            Some(false) => {}
            None => panic!("the server went away by itself at message {id}"),
        }
        server.child.kill().expect("SIGKILL");
        server.child.wait().expect("reap");
        kills += 1;
        (server, port) = start(backend, &maildir);
        client = Client::connect(port);
    }
    drop(client);
    assert!(server.terminate(), "clean exit");

    let new = maildir.join("alice").join("new");
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(&new).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            text.ends_with(&format!("{END}\r\n")),
            "a partial message in new/: {} bytes",
            text.len()
        );
        let id: usize = text
            .split("Subject: message ")
            .nth(1)
            .unwrap()
            .split("\r\n")
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!(text.ends_with(&body(id)), "message {id} differs");
        found.insert(id);
    }
    let missing: Vec<_> = acked.difference(&found).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in new/: {missing:?}"
    );
    assert_eq!(acked.len(), MESSAGES);
    assert!(kills >= 10, "only {kills} kills");
    eprintln!(
        "{backend}: {MESSAGES} acknowledged, {} files in new/ (unacknowledged duplicates allowed), {kills} SIGKILLs",
        found.len()
    );
}

#[test]
fn acknowledged_mail_survives_sigkill_uring() {
    suite("uring");
}

#[test]
fn acknowledged_mail_survives_sigkill_poll() {
    suite("poll");
}
