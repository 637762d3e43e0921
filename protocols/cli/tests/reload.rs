//! SIGHUP reloads the certificates of `tls:` listeners: `openssl s_client` sees the new
//! certificate on a new connection while a keep-alive connection made before the reload
//! keeps working; a broken certificate file is refused with a log line and the previous
//! certificate keeps serving. Both backends; openssl is installed by
//! `scripts/install-http-test-deps.sh` (missing: skipped, or a failure under `CI=true`).
//! Waits read the server's stderr and s_client's output through channels, never sleep.

#[macro_use]
mod support;

use std::io::{Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};

use ringwork::testing::certs::TestCa;
use support::{LIMIT, Server, TempDir, backend};

fn have_openssl() -> bool {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is missing: scripts/install-http-test-deps.sh installs it"
        );
        eprintln!("skipped: openssl is not installed");
    }
    ok
}

/// The certificate a new TLS connection to `port` is given (s_client's PEM of the leaf).
fn served_certificate(port: u16) -> String {
    let output = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let out = String::from_utf8_lossy(&output.stdout);
    let begin = out
        .find("-----BEGIN CERTIFICATE-----")
        .unwrap_or_else(|| panic!("no certificate in s_client's output:\n{out}"));
    let end = out[begin..]
        .find("-----END CERTIFICATE-----")
        .expect("the end of the certificate")
        + begin
        + "-----END CERTIFICATE-----".len();
    out[begin..end].to_owned()
}

/// The leaf of a PEM chain as written in a file.
fn leaf(pem: &str) -> String {
    let end = pem
        .find("-----END CERTIFICATE-----")
        .expect("a certificate")
        + "-----END CERTIFICATE-----".len();
    pem[..end].trim().to_owned()
}

/// An `openssl s_client` kept open: requests in through stdin, lines out through a channel.
struct Client {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let mut child = Command::new("openssl")
            .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
            .args(["-servername", "localhost", "-quiet", "-crlf", "-ign_eof"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl s_client");
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        // Chunks, not lines: the hello body has no newline.
        std::thread::spawn(move || {
            let mut stdout = stdout;
            let mut buf = [0u8; 4096];
            loop {
                match stdout.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx
                            .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                            .is_err()
                        {
                            break;
                        }
                    }
                }
            }
        });
        Client {
            child,
            stdin,
            lines,
        }
    }

    /// One keep-alive request; waits for the hello body.
    fn hello(&mut self) {
        self.stdin
            .write_all(b"GET / HTTP/1.1\nHost: localhost\n\n")
            .expect("send through s_client");
        self.stdin.flush().expect("flush");
        let mut seen = String::new();
        while !seen.contains("Hello, World!") {
            let chunk = self.lines.recv_timeout(LIMIT).unwrap_or_else(|e| {
                panic!("no response on the kept-alive connection ({e}): {seen:?}")
            });
            seen.push_str(&chunk);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the server's stderr until a line contains `text`.
fn wait_for(server: &mut Server, text: &str) -> String {
    loop {
        let line = server.next_line().expect("ringwork runs");
        if line.contains(text) {
            return line;
        }
    }
}

fn sighup_reloads_certificates(backend: &str) {
    let Some(backend) = self::backend(backend) else {
        eprintln!("skipped: uring");
        return;
    };
    if !have_openssl() {
        return;
    }
    let dir = TempDir::new("reload");
    let (first, second) = (TestCa::new(), TestCa::new());
    let (cert_a, key_a) = first.server(&["localhost"]).write_pem(&dir.0, "a");
    let (cert_b, key_b) = second.server(&["localhost"]).write_pem(&dir.0, "b");
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::copy(&cert_a, &cert).expect("copy");
    std::fs::copy(&key_a, &key).expect("copy");
    let listen = format!(
        "tls:0:interface=127.0.0.1:cert={}:key={}",
        cert.display(),
        key.display()
    );
    let mut server = Server::start(&[
        "serve",
        "hello",
        "--listen",
        &listen,
        "--cores",
        "1",
        "--backend",
        backend,
    ]);
    let endpoint = server.listening(1).remove(0).to_string();
    let port: u16 = endpoint
        .split(':')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("a port");
    let pem_a = leaf(&std::fs::read_to_string(&cert_a).expect("read"));
    let pem_b = leaf(&std::fs::read_to_string(&cert_b).expect("read"));
    assert_eq!(served_certificate(port), pem_a);
    let mut kept = Client::connect(port);
    kept.hello();

    // New files, SIGHUP: new connections get them, the kept one goes on.
    std::fs::copy(&cert_b, &cert).expect("copy");
    std::fs::copy(&key_b, &key).expect("copy");
    let hup = |server: &Server| {
        let status = Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    hup(&server);
    wait_for(&mut server, "certificates reloaded");
    assert_eq!(served_certificate(port), pem_b);
    kept.hello();

    // A broken certificate: refused with a log line, the previous one keeps serving.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("write");
    hup(&server);
    let line = wait_for(&mut server, "cannot reload the certificates");
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("still serving the old ones"), "{line}");
    assert_eq!(served_certificate(port), pem_b);
    kept.hello();
    // A key that does not match the certificate is refused too.
    std::fs::copy(&cert_a, &cert).expect("copy");
    hup(&server);
    wait_for(&mut server, "cannot reload the certificates");
    assert_eq!(served_certificate(port), pem_b);
    drop(kept);
    assert!(server.terminate());
}

both_backends!(sighup_reloads_certificates);
