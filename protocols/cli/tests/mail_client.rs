//! `ringwork mail send` (the SMTP client) on both backends: against `ringwork serve smtp`
//! (STARTTLS off/required, AUTH, pipelining, relay and unknown-user refusals, SIZE, 8-bit,
//! connection refused), against Python's `aiosmtpd` (AUTH PLAIN in the clear on loopback,
//! 550 and 451 per recipient, no PIPELINING offered: one command at a time), and MX
//! delivery through `ringwork serve dns` serving MX records that point at our SMTP server
//! (a dead lower-preference MX first, the implicit MX, a null MX, NXDOMAIN).
//! aiosmtpd comes from `scripts/install-mail-test-deps.sh`; under CI=true a missing peer
//! fails the test.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{Server, TempDir, backend};

const PATIENCE: Duration = Duration::from_secs(30);

fn users_file(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("users");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["passwd", "--file"])
        .arg(&file)
        .arg("alice")
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run ringwork passwd");
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    assert!(child.wait().unwrap().success());
    file
}

fn serve_smtp(backend: &str, dir: &TempDir, domains: &[&str]) -> (Server, u16) {
    serve_smtp_on(backend, dir, domains, "tcp:0:interface=127.0.0.1")
}

fn serve_smtp_on(backend: &str, dir: &TempDir, domains: &[&str], listen: &str) -> (Server, u16) {
    let users = users_file(&dir.0);
    let maildir = dir.0.join("mail");
    let mut args = vec![
        "serve",
        "smtp",
        "--backend",
        backend,
        "--cores",
        "1",
        "--listen",
        listen,
        "--maildir",
        maildir.to_str().unwrap(),
        "--users",
        users.to_str().unwrap(),
        "--max-message-size",
        "2000",
    ];
    for domain in domains {
        args.extend_from_slice(&["--domain", domain]);
    }
    let mut server = Server::start(&args);
    let port = server.listening(1)[0].port().expect("a TCP port");
    (server, port)
}

/// Runs `ringwork mail send ARGS` on `backend` with `message` on stdin: exit code, stdout.
fn send(backend: &str, args: &[&str], env: &[(&str, &str)], message: &[u8]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["mail", "send", "--timeout", "20"])
        .args(args)
        .env("RINGWORK_BACKEND", backend)
        .env_remove("RINGWORK_SMTP_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ringwork mail send");
    child.stdin.take().unwrap().write_all(message).unwrap();
    let out = child
        .wait_with_output()
        .expect("wait for ringwork mail send");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code != 1 && code != 2,
        "mail send {args:?} failed ({code}): {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (code, stdout)
}

/// The outcome word `ringwork mail send` printed for `address`.
fn outcome(stdout: &str, address: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{address} ")))
        .unwrap_or_else(|| panic!("no line for {address}: {stdout}"))
        .to_owned()
}

/// The messages in `DIR/mail/alice/new`, in name order.
fn delivered(dir: &TempDir) -> Vec<String> {
    let new = dir.0.join("mail").join("alice").join("new");
    let mut names: Vec<_> = std::fs::read_dir(&new)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
        .iter()
        .map(|p| String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned())
        .collect()
}

fn against_serve_smtp(name: &str) {
    let Some(backend) = backend(name) else { return };
    let dir = TempDir::new(&format!("smtpc-serve-{backend}"));
    let (_server, port) = serve_smtp(backend, &dir, &["example.org"]);
    let server = format!("127.0.0.1:{port}");
    let base = ["--from", "bob@x.test", "--server", &server];

    // In the clear (pipelined: our server offers PIPELINING): one delivered, one refused.
    let args = [
        &base[..],
        &["--starttls", "off", "--to", "alice@example.org"],
    ]
    .concat();
    let args = [&args[..], &["--to", "nobody@example.org"]].concat();
    let (code, out) = send(backend, &args, &[], b"Subject: one\n\n.dot line\nend\n");
    assert_eq!(code, 69, "{out}");
    assert!(
        outcome(&out, "alice@example.org").starts_with("delivered: 250"),
        "{out}"
    );
    assert!(
        outcome(&out, "nobody@example.org").starts_with("bounced: 550 5.1.1"),
        "{out}"
    );

    // STARTTLS required, AUTH PLAIN: delivered; relay for the authenticated user refused.
    let auth = [
        &base[..],
        &[
            "--starttls",
            "required",
            "--tls-insecure",
            "--user",
            "alice",
        ],
    ]
    .concat();
    let args = [
        &auth[..],
        &["--to", "alice@example.org", "--to", "x@elsewhere.test"],
    ]
    .concat();
    let password = [("RINGWORK_SMTP_PASSWORD", "s3cret")];
    let (code, out) = send(
        backend,
        &args,
        &password,
        "Subject: caf\u{e9}\n\n8-bit\n".as_bytes(),
    );
    assert_eq!(code, 69, "{out}");
    assert!(
        outcome(&out, "alice@example.org").starts_with("delivered"),
        "{out}"
    );
    assert!(
        outcome(&out, "x@elsewhere.test").starts_with("bounced: 550 5.7.1"),
        "{out}"
    );

    // A wrong password: the 535 is the reason.
    let args = [&auth[..], &["--to", "alice@example.org"]].concat();
    let (code, out) = send(
        backend,
        &args,
        &[("RINGWORK_SMTP_PASSWORD", "nope")],
        b"x\n",
    );
    assert_eq!(code, 69, "{out}");
    assert!(
        outcome(&out, "alice@example.org").contains("535 5.7.8"),
        "{out}"
    );

    // AUTH without TLS is refused by the client itself.
    let args = [
        &base[..],
        &[
            "--starttls",
            "off",
            "--user",
            "alice",
            "--to",
            "alice@example.org",
        ],
    ]
    .concat();
    let (code, out) = send(backend, &args, &password, b"x\n");
    assert_eq!(code, 69, "{out}");
    assert!(
        outcome(&out, "alice@example.org").contains("does not run TLS"),
        "{out}"
    );

    // Over the server's SIZE: refused before MAIL.
    let args = [&base[..], &["--to", "alice@example.org"]].concat();
    let (code, out) = send(backend, &args, &[], &vec![b'y'; 3000]);
    assert_eq!(code, 69, "{out}");
    assert!(
        outcome(&out, "alice@example.org").contains("SIZE limit of 2000"),
        "{out}"
    );

    // STARTTLS required and the self-signed certificate not trusted: deferred, the TLS
    // failure named.
    let args = [
        &base[..],
        &["--starttls", "required", "--to", "alice@example.org"],
    ]
    .concat();
    let (code, out) = send(backend, &args, &[], b"x\n");
    assert_eq!(code, 75, "{out}");
    assert!(
        outcome(&out, "alice@example.org").contains("certificate"),
        "{out}"
    );

    let mail = delivered(&dir);
    assert_eq!(mail.len(), 2, "{mail:?}");
    assert!(
        mail[0].ends_with("Subject: one\r\n\r\n.dot line\r\nend\r\n"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains(" with ESMTP;"), "{}", mail[0]);
    assert!(mail[1].contains(" with ESMTPSA;"), "{}", mail[1]);
    assert!(
        mail[1].ends_with("Subject: caf\u{e9}\r\n\r\n8-bit\r\n"),
        "{}",
        mail[1]
    );

    // Nobody listening: deferred (exit 75).
    drop(_server);
    let (code, out) = send(backend, &args, &[], b"x\n");
    assert_eq!(code, 75, "{out}");
    assert!(
        outcome(&out, "alice@example.org").starts_with("deferred: connection lost"),
        "{out}"
    );
}

/// TLS from the first byte (port 465 style): `--tls` against a `tls:` endpoint.
fn implicit_tls(name: &str) {
    let Some(backend) = backend(name) else { return };
    let dir = TempDir::new(&format!("smtpc-tls-{backend}"));
    let listen = "tls:0:interface=127.0.0.1";
    let (_server, port) = serve_smtp_on(backend, &dir, &["example.org"], listen);
    let server = format!("127.0.0.1:{port}");
    let args = [
        "--from",
        "bob@x.test",
        "--server",
        &server,
        "--tls",
        "--tls-insecure",
        "--user",
        "alice",
        "--to",
        "alice@example.org",
    ];
    let (code, out) = send(
        backend,
        &args,
        &[("RINGWORK_SMTP_PASSWORD", "s3cret")],
        b"x\n",
    );
    assert_eq!(code, 0, "{out}");
    assert!(delivered(&dir)[0].contains(" with ESMTPSA;"));
}

#[test]
fn implicit_tls_uring() {
    implicit_tls("uring");
}

#[test]
fn implicit_tls_poll() {
    implicit_tls("poll");
}

#[test]
fn client_against_serve_smtp_uring() {
    against_serve_smtp("uring");
}

#[test]
fn client_against_serve_smtp_poll() {
    against_serve_smtp("poll");
}

const AIOSMTPD: &str = r#"
import asyncio, base64, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

mode = sys.argv[3] if len(sys.argv) > 3 else ""
busy = mode == "busy"
seen = set()

class Handler:
    async def handle_RCPT(self, server, session, envelope, address, options):
        local = address.split("@")[0]
        if busy:
            print("RCPT", address, flush=True)
            return "451 4.3.2 busy, try another MX"
        if mode == "greylist" and address not in seen and local != "nobody":
            seen.add(address)
            return "451 4.7.1 greylisted, try again later"
        if local == "nobody":
            return "550 5.1.1 no such user"
        if local == "later":
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"
    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content
        print("MSG", envelope.mail_from, ",".join(envelope.rcpt_tos),
              base64.b64encode(data).decode(), flush=True)
        return "250 2.0.0 queued"

def auth(server, session, envelope, mechanism, data):
    ok = data.login == b"alice" and data.password == b"pw"
    return AuthResult(success=ok, handled=False)

import socket
host = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1"
if len(sys.argv) > 2 and sys.argv[2] != "0":
    port = int(sys.argv[2])
else:
    probe = socket.socket()
    probe.bind((host, 0))
    port = probe.getsockname()[1]
    probe.close()
c = Controller(Handler(), hostname=host, port=port, authenticator=auth,
               auth_require_tls=False, auth_required=mode == "")
c.start()
print("PORT", port, flush=True)
sys.stdin.read()
c.stop()
"#;

/// aiosmtpd on a free port; its stdout lines through a channel; ends when dropped.
struct Aiosmtpd {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Aiosmtpd {
    fn start() -> Option<(Aiosmtpd, u16)> {
        Aiosmtpd::start_with(&[])
    }

    /// With `args`: host, port (`0`: any) and a mode, `busy` (every RCPT gets 451) or
    /// `greylist` (each address's first RCPT gets 451); no AUTH asked in either.
    fn start_with(args: &[&str]) -> Option<(Aiosmtpd, u16)> {
        let ok = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "aiosmtpd is missing: scripts/install-mail-test-deps.sh installs it"
            );
            eprintln!("skipped: aiosmtpd is not installed (scripts/install-mail-test-deps.sh)");
            return None;
        }
        let mut child = Command::new("python3")
            .args(["-c", AIOSMTPD])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start aiosmtpd");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let server = Aiosmtpd { child, lines };
        let port = server
            .next_line()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .expect("aiosmtpd prints its port");
        Some((server, port))
    }

    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(PATIENCE)
            .expect("a line from aiosmtpd in time")
    }
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        drop(self.child.stdin.take()); // EOF: it stops
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn against_aiosmtpd(name: &str) {
    let Some(backend) = backend(name) else { return };
    let Some((peer, port)) = Aiosmtpd::start() else {
        return;
    };
    let server = format!("127.0.0.1:{port}");
    let args = [
        "--from",
        "bob@x.test",
        "--server",
        &server,
        "--starttls",
        "off",
        "--user",
        "alice",
        "--allow-auth-in-clear",
        "--to",
        "alice@x.test",
        "--to",
        "nobody@x.test",
        "--to",
        "later@x.test",
        "--to",
        "carol@x.test",
    ];
    let password = [("RINGWORK_SMTP_PASSWORD", "pw")];
    let (code, out) = send(backend, &args, &password, b"Subject: hi\n\n.lead\nbody\n");
    assert_eq!(code, 69, "{out}");
    assert!(
        outcome(&out, "alice@x.test").starts_with("delivered: 250 2.0.0 queued"),
        "{out}"
    );
    assert!(
        outcome(&out, "carol@x.test").starts_with("delivered"),
        "{out}"
    );
    assert!(
        outcome(&out, "nobody@x.test").starts_with("bounced: 550 5.1.1"),
        "{out}"
    );
    assert!(
        outcome(&out, "later@x.test").starts_with("deferred: 451 4.3.0"),
        "{out}"
    );
    let line = peer.next_line();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        fields[..3],
        ["MSG", "bob@x.test", "alice@x.test,carol@x.test"],
        "{line}"
    );
    let data = base64_decode(fields[3]);
    assert_eq!(data, b"Subject: hi\r\n\r\n.lead\r\nbody\r\n", "{line}");

    // A wrong password: aiosmtpd's 535.
    let (code, out) = send(backend, &args, &[("RINGWORK_SMTP_PASSWORD", "x")], b"x\n");
    assert_eq!(code, 69, "{out}");
    assert!(outcome(&out, "alice@x.test").contains("535"), "{out}");
}

/// A greylisting server (451 to each address's first RCPT): `--retries` gets past it,
/// and a 550 is not retried.
fn retries_past_greylisting(name: &str) {
    let Some(backend) = backend(name) else { return };
    let Some((peer, port)) = Aiosmtpd::start_with(&["127.0.0.1", "0", "greylist"]) else {
        return;
    };
    let server = format!("127.0.0.1:{port}");
    let args = [
        "--from",
        "bob@x.test",
        "--server",
        &server,
        "--starttls",
        "off",
        "--retries",
        "2",
        "--retry-delay",
        "0.05",
        "--to",
        "alice@x.test",
        "--to",
        "nobody@x.test",
    ];
    let (code, out) = send(backend, &args, &[], b"Subject: grey\n\nx\n");
    assert_eq!(code, 69, "{out}");
    assert_eq!(
        outcome(&out, "alice@x.test"),
        "delivered: 250 2.0.0 queued (after 2 attempts)",
        "{out}"
    );
    assert_eq!(
        outcome(&out, "nobody@x.test"),
        "bounced: 550 5.1.1 no such user",
        "{out}"
    );
    assert!(peer.next_line().starts_with("MSG bob@x.test alice@x.test "));
    // Without --retries the greylisting defers (a fresh address).
    let args = [
        "--from",
        "bob@x.test",
        "--server",
        &server,
        "--starttls",
        "off",
        "--to",
        "carol@x.test",
    ];
    let (code, out) = send(backend, &args, &[], b"x\n");
    assert_eq!(code, 75, "{out}");
    assert!(
        outcome(&out, "carol@x.test").starts_with("deferred: 451 4.7.1"),
        "{out}"
    );
}

#[test]
fn retries_past_greylisting_uring() {
    retries_past_greylisting("uring");
}

#[test]
fn retries_past_greylisting_poll() {
    retries_past_greylisting("poll");
}

/// Standard base64 (aiosmtpd's report), decoded without a crate.
fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

#[test]
fn client_against_aiosmtpd_uring() {
    against_aiosmtpd("uring");
}

#[test]
fn client_against_aiosmtpd_poll() {
    against_aiosmtpd("poll");
}

const ZONE: &str = r#"$ORIGIN example.test.
$TTL 300
@        IN SOA ns1 hostmaster ( 1 2h 15m 1w 300 )
         IN NS  ns1
         IN MX  5 dead
         IN MX  7 busy
         IN MX  10 mx1
ns1      IN A   127.0.0.1
dead     IN A   127.0.0.2
busy     IN A   127.0.0.3
mx1      IN A   127.0.0.1
implicit IN A   127.0.0.1
nomail   IN MX  0 .
"#;

fn mx_delivery(name: &str) {
    let Some(backend) = backend(name) else { return };
    let dir = TempDir::new(&format!("smtpc-mx-{backend}"));
    let zone = dir.0.join("example.zone");
    std::fs::write(&zone, ZONE).expect("write the zone");
    let mut dns = Server::start(&[
        "serve",
        "dns",
        "--zone",
        zone.to_str().unwrap(),
        "--listen",
        "udp:0:interface=127.0.0.1",
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let dns_port = dns.listening(1)[0].port().expect("a UDP port");
    let (_smtp, smtp_port) = serve_smtp(backend, &dir, &["example.test", "implicit.example.test"]);
    let dns_server = format!("127.0.0.1:{dns_port}");
    let smtp_port = smtp_port.to_string();
    // The second MX answers every RCPT with 451 (aiosmtpd on 127.0.0.3, the same port);
    // without aiosmtpd (outside CI) it refuses the connection instead.
    let busy = Aiosmtpd::start_with(&["127.0.0.3", &smtp_port, "busy"]);
    let args = [
        "--from",
        "bob@x.test",
        "--mx",
        "--dns-server",
        &dns_server,
        "--mx-port",
        &smtp_port,
        "--to",
        "alice@example.test",
        "--to",
        "alice@implicit.example.test",
        "--to",
        "bob@nomail.example.test",
        "--to",
        "carol@nx.example.test",
    ];
    let (code, out) = send(backend, &args, &[], b"Subject: by MX\n\nhello\n");
    assert_eq!(code, 69, "{out}");
    // The preferred MX (dead, 127.0.0.2) refuses the connection, the next (busy) defers
    // with 451: mx1 takes it.
    assert!(
        outcome(&out, "alice@example.test").starts_with("delivered: mx1.example.test: 250"),
        "{out}"
    );
    // No MX: the domain's own address (RFC 5321 §5.1).
    assert!(
        outcome(&out, "alice@implicit.example.test")
            .starts_with("delivered: implicit.example.test: 250"),
        "{out}"
    );
    assert!(
        outcome(&out, "bob@nomail.example.test").contains("556 5.1.10"),
        "{out}"
    );
    assert!(
        outcome(&out, "carol@nx.example.test").contains("NXDOMAIN"),
        "{out}"
    );
    assert_eq!(delivered(&dir).len(), 2);
    if let Some((busy, _)) = busy {
        assert_eq!(
            busy.next_line(),
            "RCPT alice@example.test",
            "the busy MX was asked"
        );
        assert!(
            busy.lines.try_recv().is_err(),
            "the busy MX took no message"
        );
    }
}

#[test]
fn mx_delivery_through_serve_dns_uring() {
    mx_delivery("uring");
}

#[test]
fn mx_delivery_through_serve_dns_poll() {
    mx_delivery("poll");
}
