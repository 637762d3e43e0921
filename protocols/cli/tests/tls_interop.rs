//! TLS and the PROXY protocol against real peers that nobody here wrote: `openssl s_client`
//! against `ringwork serve echo --listen tls:..` (verification, TLS 1.3 and 1.2, ALPN,
//! SNI), curl against `ringwork serve hello --listen tls:..` (a CA-signed certificate,
//! connection reuse, the self-signed default, client certificates), `openssl s_server` for
//! the engine's TLS client side (a trusted and an untrusted CA), `curl
//! --haproxy-protocol` against `haproxy:tcp:..` and `haproxy:tls:..` endpoints, and bulk
//! downloads over TLS from `ringwork serve web`: curl (checksum), `openssl s_client` with
//! key updates mid-stream, Python's `http.client` with ranges.
//!
//! Certificates come from `ringwork::testing::certs::TestCa`, written to a temporary
//! directory. Every test runs on both backends (the binary's `--backend`, or the in-process
//! reactor). curl and openssl are installed by `scripts/install-http-test-deps.sh`: a
//! missing tool skips the test loudly, except under `CI`, where it fails. Nothing sleeps:
//! waits read a child's output through a channel with a timeout, or turn the reactor.

mod support;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Instant;

use ringwork::platform::testing;
use ringwork::testing::certs::{TestCa, TestCert};
use ringwork::tls::{Roots, TlsConnector, TlsError, TlsInfo, server_name};
use ringwork::{
    BackendChoice, ConnectOptions, Context, DriverConfig, LostReason, Protocol, Reactor,
    ReactorConfig, SockAddr,
};
use ringwork_protocols::Endpoint;
use support::{LIMIT, TempDir};

const INSTALL: &str = "scripts/install-http-test-deps.sh";

/// Whether `program` runs here. Missing: a loud skip, or a failure when `CI` is set.
fn have(program: &str, version_arg: &str) -> bool {
    let found = Command::new(program)
        .arg(version_arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is not installed (CI is set): install it with {INSTALL}"
        );
        eprintln!("skipped: {program} not installed (install it with {INSTALL})");
    }
    found
}

fn have_openssl() -> bool {
    have("openssl", "version")
}

fn have_curl() -> bool {
    have("curl", "--version")
}

fn backend_name(backend: BackendChoice) -> &'static str {
    match backend {
        BackendChoice::Uring => "uring",
        _ => "poll",
    }
}

/// Sends every line of `from` to `tx`, prefixed with `tag`.
fn forward(from: impl Read + Send + 'static, tag: &'static str, tx: Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            if tx.send(format!("{tag}{line}")).is_err() {
                break;
            }
        }
    });
}

/// A child process whose stdout and stderr lines arrive through a channel; killed on drop.
struct Proc {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(what: &str, command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let (tx, lines) = mpsc::channel();
        forward(child.stdout.take().expect("piped stdout"), "", tx.clone());
        forward(child.stderr.take().expect("piped stderr"), "", tx);
        Proc {
            what: what.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `found` (returned), or the process ends (`None`).
    /// Fails after [`LIMIT`].
    fn until(&mut self, mut found: impl FnMut(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if found(&line) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => panic!(
                    "{}: nothing expected after {LIMIT:?}; output:\n{}",
                    self.what,
                    self.output()
                ),
            }
        }
    }

    /// Like [`Proc::until`], failing if the process ends first.
    #[track_caller]
    fn expect(&mut self, what: &str, found: impl FnMut(&str) -> bool) -> String {
        self.until(found).unwrap_or_else(|| {
            panic!(
                "{}: ended before {what}; output:\n{}",
                self.what,
                self.output()
            )
        })
    }

    /// Writes `text` to its stdin. A process that already ended (a refused handshake) is
    /// not an error here: its output says what happened.
    fn send(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        let _ = stdin
            .write_all(text.as_bytes())
            .and_then(|()| stdin.flush());
    }

    /// Closes its stdin and reads its output until it exits (fails after [`LIMIT`]);
    /// returns its exit status.
    fn finish(&mut self) -> std::process::ExitStatus {
        self.stdin = None;
        assert!(self.until(|_| false).is_none());
        self.child.wait().expect("wait for the child")
    }

    /// Everything read so far.
    fn output(&self) -> String {
        self.seen.join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ringwork serve SERVICE.. --listen ENDPOINT --cores 1 --backend B`, with `XDG_DATA_HOME`
/// in a temporary directory (a self-signed certificate never lands in `$HOME`).
struct Ringwork {
    proc: Proc,
    /// The endpoint as bound.
    bound: Endpoint,
}

impl Ringwork {
    /// `None` when `backend` cannot run here (skipped loudly).
    fn start(backend: BackendChoice, service: &[&str], endpoint: &str, dir: &Path) -> Option<Self> {
        testing::driver(backend, DriverConfig::default())?;
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringwork"));
        command
            .arg("serve")
            .args(service)
            .args(["--listen", endpoint, "--cores", "1"])
            .args(["--backend", backend_name(backend)])
            .env("RUST_LOG", "info")
            .env("XDG_DATA_HOME", dir.join("xdg"))
            .env_remove("RINGWORK_BACKEND");
        let mut proc = Proc::spawn("ringwork", &mut command);
        let line = proc.expect("listening", |l| l.contains("listening on "));
        let (_, rest) = line.split_once("listening on ").expect("matched");
        let text = rest.split(" (core").next().expect("split yields one");
        let bound = text
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} is not an endpoint: {e}"));
        Some(Ringwork { proc, bound })
    }

    fn port(&self) -> u16 {
        self.bound.port().expect("an IP endpoint")
    }

    /// `https://localhost:PORT/`.
    fn https(&self) -> String {
        format!("https://localhost:{}/", self.port())
    }

    /// curl's `--resolve` for `localhost` (the listener is on 127.0.0.1 only).
    fn resolve(&self) -> String {
        format!("localhost:{}:127.0.0.1", self.port())
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temporary path")
}

/// A CA and PEM files in a temporary directory: `ca.pem`, `server.{pem,key}` (localhost,
/// 127.0.0.1), `a.{pem,key}` (a.test) and `client.{pem,key}`.
struct Pki {
    dir: TempDir,
    ca: TestCa,
    server: TestCert,
    ca_pem: PathBuf,
    server_pem: PathBuf,
    server_key: PathBuf,
    a_pem: PathBuf,
    a_key: PathBuf,
    client_pem: PathBuf,
    client_key: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = TempDir::new(name);
        let ca = TestCa::new();
        let ca_pem = dir.0.join("ca.pem");
        std::fs::write(&ca_pem, &ca.cert_pem).unwrap();
        let server = ca.server(&["localhost", "127.0.0.1"]);
        let (server_pem, server_key) = server.write_pem(&dir.0, "server");
        let (a_pem, a_key) = ca.server(&["a.test"]).write_pem(&dir.0, "a");
        let (client_pem, client_key) = ca.client("alice").write_pem(&dir.0, "client");
        Pki {
            dir,
            ca,
            server,
            ca_pem,
            server_pem,
            server_key,
            a_pem,
            a_key,
            client_pem,
            client_key,
        }
    }

    /// `tls:0:interface=127.0.0.1:cert=..:key=..` followed by `extra`.
    fn endpoint(&self, extra: &str) -> String {
        format!(
            "tls:0:interface=127.0.0.1:cert={}:key={}{extra}",
            path(&self.server_pem),
            path(&self.server_key)
        )
    }
}

/// `openssl s_client -connect 127.0.0.1:PORT ARGS`, sends `line`, and returns its output up
/// to the echo of `line` (`Err` with the output if it ended without one).
fn s_client(port: u16, args: &[&str], line: &str) -> Result<String, String> {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args);
    let mut proc = Proc::spawn("openssl s_client", &mut command);
    proc.send(&format!("{line}\n"));
    match proc.until(|l| l == line) {
        Some(_) => Ok(proc.output()),
        None => Err(proc.output()),
    }
}

/// `s_client` that must get its echo, then ends it (stdin closed) and waits for it to exit
/// (so that `-sess_out` is written); returns its whole output.
#[track_caller]
fn s_client_to_the_end(port: u16, args: &[&str], line: &str) -> String {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(args);
    let mut proc = Proc::spawn("openssl s_client", &mut command);
    proc.send(&format!("{line}\n"));
    proc.expect("the echo", |l| l == line);
    proc.finish();
    proc.output()
}

/// `s_client` that must succeed.
#[track_caller]
fn s_client_ok(port: u16, args: &[&str], line: &str) -> String {
    s_client(port, args, line)
        .unwrap_or_else(|out| panic!("s_client {args:?} got no echo; output:\n{out}"))
}

/// `openssl s_client` to an HTTP service on `port` offering ALPN `alpn` (`None`: no ALPN
/// extension): one `GET /` (`Connection: close`); returns its whole output, which names the
/// negotiated protocol (`ALPN protocol: ..` or `No ALPN negotiated`). `Err` with the output
/// if no response came (a refused handshake).
fn s_client_http(port: u16, ca: &str, alpn: Option<&str>) -> Result<String, String> {
    let mut command = Command::new("openssl");
    command
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args([
            "-servername",
            "localhost",
            "-CAfile",
            ca,
            "-verify_return_error",
            "-crlf",
        ]);
    if let Some(alpn) = alpn {
        command.args(["-alpn", alpn]);
    }
    let mut proc = Proc::spawn("openssl s_client", &mut command);
    proc.send("GET / HTTP/1.1\nHost: localhost\nConnection: close\n\n");
    let answered = proc.until(|l| l.starts_with("HTTP/1.1 ")).is_some();
    proc.finish();
    match answered {
        true => Ok(proc.output()),
        false => Err(proc.output()),
    }
}

/// `curl --silent --show-error --max-time LIMIT ARGS`.
fn curl(args: &[&str]) -> Output {
    let max = LIMIT.as_secs().to_string();
    Command::new("curl")
        .args(["--silent", "--show-error", "--max-time", &max])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl")
}

/// [`curl`] that must succeed; returns stdout.
#[track_caller]
fn curl_ok(args: &[&str]) -> String {
    let out = curl(args);
    assert!(
        out.status.success(),
        "curl {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 from curl")
}

ringwork::platform::test_all_backends! {
    fn openssl_s_client_verifies_and_negotiates(backend: BackendChoice) {
        if !have_openssl() { return; }
        let pki = Pki::new("s-client");
        let Some(server) = Ringwork::start(backend, &["echo"], &pki.endpoint(""), &pki.dir.0) else { return };
        let port = server.port();
        let ca = path(&pki.ca_pem);
        let verify = ["-servername", "localhost", "-CAfile", ca, "-verify_return_error"];

        let mut quiet = verify.to_vec();
        quiet.push("-quiet");
        s_client_ok(port, &quiet, "hello over tls");

        let out = s_client_ok(port, &verify, "hello again");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        assert!(out.contains("New, TLSv1.3, Cipher is"), "{out}");

        let mut tls12 = verify.to_vec();
        tls12.push("-tls1_2");
        let out = s_client_ok(port, &tls12, "hello twelve");
        assert!(out.contains("New, TLSv1.2, Cipher is"), "{out}");
        assert!(out.contains("Protocol  : TLSv1.2"), "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

        // A client trusting only another CA refuses the certificate.
        let other = pki.dir.0.join("other-ca.pem");
        std::fs::write(&other, TestCa::new().cert_pem).unwrap();
        let refused = s_client(port, &["-servername", "localhost", "-CAfile", path(&other), "-verify_return_error"], "x");
        let out = refused.expect_err("an untrusted certificate must fail the handshake");
        assert!(out.contains("unable to get local issuer certificate"), "{out}");

        // TLS 1.3 key updates both ways (`K`: s_client updates its keys and asks the server
        // to update its own): the echoes after each come back under the new keys.
        let mut command = Command::new("openssl");
        command.args(["s_client", "-connect", &format!("127.0.0.1:{port}")]).args(verify);
        let mut proc = Proc::spawn("openssl s_client", &mut command);
        for (round, command) in ["K", "k", "K"].iter().enumerate() {
            proc.send(&format!("{command}\n"));
            proc.expect("KEYUPDATE", |l| l == "KEYUPDATE");
            let line = format!("after key update {round}");
            proc.send(&format!("{line}\n"));
            proc.expect("the echo", |l| l == line);
        }
        drop(proc);

        // Resumption, TLS 1.2: by session ID or ticket on each of five reconnects.
        let mut reconnect = tls12.clone();
        reconnect.push("-reconnect");
        let out = s_client_ok(port, &reconnect, "resumed twelve");
        assert_eq!(out.matches("Reused, TLSv1.2").count(), 5, "{out}");
        // TLS 1.3: with the ticket of a first connection, saved and given back.
        let session = pki.dir.0.join("session.pem");
        let mut first = verify.to_vec();
        first.extend(["-sess_out", path(&session)]);
        let out = s_client_to_the_end(port, &first, "first");
        assert!(out.contains("New, TLSv1.3"), "{out}");
        let mut second = verify.to_vec();
        second.extend(["-sess_in", path(&session)]);
        let out = s_client_ok(port, &second, "second");
        assert!(out.contains("Reused, TLSv1.3"), "{out}");
    }

    fn openssl_s_client_alpn_and_sni(backend: BackendChoice) {
        if !have_openssl() { return; }
        let pki = Pki::new("s-client-alpn");
        let extra = format!(":alpn=http/1.1:sni=a.test,{},{}", path(&pki.a_pem), path(&pki.a_key));
        let Some(server) = Ringwork::start(backend, &["echo"], &pki.endpoint(&extra), &pki.dir.0) else { return };
        let port = server.port();
        let ca = path(&pki.ca_pem);

        let out = s_client_ok(port, &["-servername", "localhost", "-CAfile", ca, "-verify_return_error", "-alpn", "h2,http/1.1"], "alpn");
        assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
        let subject = |out: &str| {
            out.lines()
                .find(|l| l.starts_with("subject="))
                .map(|l| l.replace(' ', ""))
                .unwrap_or_else(|| panic!("no subject line:\n{out}"))
        };
        assert_eq!(subject(&out), "subject=CN=localhost");

        let out = s_client_ok(port, &["-servername", "a.test", "-CAfile", ca, "-verify_return_error", "-alpn", "http/1.1"], "sni");
        assert_eq!(subject(&out), "subject=CN=a.test", "{out}");
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

        // Only SNI certificates, no default: another name, or none, is refused by an alert.
        let endpoint = format!("tls:0:interface=127.0.0.1:sni=a.test,{},{}", path(&pki.a_pem), path(&pki.a_key));
        let Some(sni_only) = Ringwork::start(backend, &["echo"], &endpoint, &pki.dir.0) else { return };
        let port = sni_only.port();
        let out = s_client_ok(port, &["-servername", "a.test", "-CAfile", ca, "-verify_return_error"], "a");
        assert_eq!(subject(&out), "subject=CN=a.test", "{out}");
        for name in [&["-servername", "other.test"][..], &["-noservername"][..]] {
            let mut args = name.to_vec();
            args.extend(["-CAfile", ca]);
            let out = s_client(port, &args, "refused").expect_err("no certificate for that name");
            assert!(out.contains("alert"), "{name:?}: {out}");
        }
    }

    // HTTP services advertise the protocols they speak (`h2` then `http/1.1`, as nginx with
    // http2 on and Go do) without `alpn=`; echo (which does not read its bytes) advertises
    // nothing.
    fn http_services_advertise_h2_and_http_1_1(backend: BackendChoice) {
        if !have_openssl() { return; }
        let pki = Pki::new("alpn-default");
        let ca = path(&pki.ca_pem);
        let root = path(&pki.dir.0);
        for service in [&["hello"][..], &["web", "--root", root], &["ws-echo"]] {
            let Some(server) = Ringwork::start(backend, service, &pki.endpoint(""), &pki.dir.0) else { return };
            let out = s_client_http(server.port(), ca, Some("http/1.1"))
                .unwrap_or_else(|out| panic!("{service:?}, -alpn http/1.1: no response:\n{out}"));
            assert!(out.contains("ALPN protocol: http/1.1"), "{service:?}:\n{out}");
            // A client without ALPN is served HTTP/1.1 as before.
            let out = s_client_http(server.port(), ca, None).expect("a response without ALPN");
            assert!(out.contains("No ALPN negotiated"), "{out}");
            // A client offering h2 gets h2 (so the HTTP/1.1 bytes s_client sends are not
            // answered as HTTP/1.1).
            for offer in ["h2", "h2,http/1.1"] {
                let out = s_client_http(server.port(), ca, Some(offer))
                    .expect_err("h2 does not answer HTTP/1.1 bytes");
                assert!(out.contains("ALPN protocol: h2"), "{service:?}, -alpn {offer}:\n{out}");
            }
        }
        let Some(echo) = Ringwork::start(backend, &["echo"], &pki.endpoint(""), &pki.dir.0) else { return };
        let out = s_client_ok(echo.port(), &["-servername", "localhost", "-CAfile", ca, "-alpn", "http/1.1"], "echo");
        assert!(out.contains("No ALPN negotiated"), "{out}");
    }

    fn curl_https_with_a_ca_signed_certificate(backend: BackendChoice) {
        if !have_curl() { return; }
        let pki = Pki::new("curl-https");
        let Some(server) = Ringwork::start(backend, &["hello"], &pki.endpoint(""), &pki.dir.0) else { return };
        let (url, resolve, ca) = (server.https(), server.resolve(), path(&pki.ca_pem));
        assert_eq!(curl_ok(&["--cacert", ca, "--resolve", &resolve, &url]), "Hello, World!");
        // Several requests over one connection: curl connects once, then reuses it.
        let out = curl_ok(&[
            "--http1.1", "--cacert", ca, "--resolve", &resolve,
            "--write-out", " connects=%{num_connects} version=%{http_version}\\n",
            &url, &url, &url,
        ]);
        assert_eq!(
            out,
            "Hello, World! connects=1 version=1.1\n\
             Hello, World! connects=0 version=1.1\n\
             Hello, World! connects=0 version=1.1\n"
        );
        // TLS 1.2 works too.
        let out = curl_ok(&[
            "--tls-max", "1.2", "--cacert", ca, "--resolve", &resolve,
            "--write-out", " %{ssl_verify_result}", &url,
        ]);
        assert_eq!(out, "Hello, World! 0");
        // Without the CA, curl refuses the certificate.
        let out = curl(&["--resolve", &resolve, &url]);
        assert_eq!(out.status.code(), Some(60), "{}", String::from_utf8_lossy(&out.stderr));
    }

    fn curl_downloads_a_large_file_over_tls(backend: BackendChoice) {
        if !have_curl() { return; }
        let pki = Pki::new("curl-tls-download");
        let root = pki.dir.0.join("root");
        std::fs::create_dir(&root).unwrap();
        let body = support::pattern(5 * 1024 * 1024 + 7);
        std::fs::write(root.join("big.bin"), &body).unwrap();
        let service = ["web", "--root", path(&root)];
        let Some(server) = Ringwork::start(backend, &service, &pki.endpoint(""), &pki.dir.0) else { return };
        let saved = pki.dir.0.join("downloaded.bin");
        let url = format!("{}big.bin", server.https());
        let ca = path(&pki.ca_pem);
        curl_ok(&["--cacert", ca, "--resolve", &server.resolve(), "--output", path(&saved), &url]);
        let got = std::fs::read(&saved).unwrap();
        assert!(got == body, "the download differs ({} of {} bytes)", got.len(), body.len());
        // A slow reader: the server's TLS writes wait for the client (backpressure).
        let out = curl_ok(&[
            "--cacert", ca, "--resolve", &server.resolve(), "--limit-rate", "2M",
            "--range", "0-3145727", "--output", path(&saved), "--write-out", "%{http_code}", &url,
        ]);
        assert_eq!(out, "206");
        let got = std::fs::read(&saved).unwrap();
        assert!(got[..] == body[..3 << 20], "the range differs ({} bytes)", got.len());
    }

    fn openssl_key_updates_during_large_downloads(backend: BackendChoice) {
        if !have_openssl() { return; }
        let pki = Pki::new("s-client-keyupdate-bulk");
        let root = pki.dir.0.join("root");
        std::fs::create_dir(&root).unwrap();
        // Numbered lines: what arrived, in order and whole, is checked line by line.
        let lines = 200_000;
        let text: String = (0..lines).map(|i| format!("line {i:08}\n")).collect();
        std::fs::write(root.join("big.txt"), &text).unwrap();
        let service = ["web", "--root", path(&root)];
        let Some(server) = Ringwork::start(backend, &service, &pki.endpoint(""), &pki.dir.0) else { return };
        let ca = path(&pki.ca_pem);
        let mut command = Command::new("openssl");
        command
            .args(["s_client", "-connect", &format!("127.0.0.1:{}", server.port())])
            .args(["-servername", "localhost", "-CAfile", ca, "-verify_return_error", "-crlf"]);
        let mut proc = Proc::spawn("openssl s_client", &mut command);
        let get = "GET /big.txt HTTP/1.1\nHost: localhost\n\n";
        fn body_line(proc: &mut Proc, want: usize) {
            let line = proc.expect("a body line", |l| l.starts_with("line "));
            assert_eq!(line, format!("line {want:08}"), "a line lost or out of order");
        }
        // Key updates mid-stream, both ways (`K`: s_client updates its keys and asks the
        // server to update its own), while the server is sending: the rest of the body
        // comes under the new keys. A second download on the same connection is wholly
        // after them.
        for (round, update) in ["K", "k"].iter().enumerate() {
            proc.send(get);
            for want in 0..lines {
                body_line(&mut proc, want);
                if want == 10 {
                    proc.send(&format!("{update}\n"));
                }
            }
            assert!(proc.output().contains("KEYUPDATE"), "round {round}: {}", proc.output());
        }
        proc.send(get);
        for want in 0..lines {
            body_line(&mut proc, want);
        }
        assert_eq!(proc.output().matches("KEYUPDATE").count(), 2);
    }

    fn python_downloads_ranges_over_tls(backend: BackendChoice) {
        if !have("python3", "--version") { return; }
        let pki = Pki::new("python-tls-ranges");
        let root = pki.dir.0.join("root");
        std::fs::create_dir(&root).unwrap();
        let body = support::pattern(6 * 1024 * 1024 + 13);
        std::fs::write(root.join("big.bin"), &body).unwrap();
        let service = ["web", "--root", path(&root)];
        let Some(server) = Ringwork::start(backend, &service, &pki.endpoint(""), &pki.dir.0) else { return };
        // One keep-alive connection: the whole file, then ranges (start, end inclusive),
        // each written to a file of its own for the comparison below.
        let ranges = [(0, 0), (1, 16_383), (16_384, 16_384 * 3 + 7), (5_000_000, body.len() - 1)];
        let spec: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
        let script = r#"
import http.client, ssl, sys
port, ca, out, specs = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
ctx = ssl.create_default_context(cafile=ca)
conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=60)
conn.request("GET", "/big.bin")
r = conn.getresponse()
assert r.status == 200, r.status
open(out + ".full", "wb").write(r.read())
for i, spec in enumerate(specs):
    conn.request("GET", "/big.bin", headers={"Range": "bytes=" + spec})
    r = conn.getresponse()
    assert r.status == 206, (spec, r.status)
    assert r.getheader("Content-Range").startswith("bytes " + spec + "/"), r.getheader("Content-Range")
    open(out + "." + str(i), "wb").write(r.read())
print("done")
"#;
        let out_base = pki.dir.0.join("got");
        let output = Command::new("python3")
            .args(["-c", script, &server.port().to_string(), path(&pki.ca_pem), path(&out_base)])
            .args(&spec)
            .stdin(Stdio::null())
            .output()
            .expect("run python3");
        assert!(output.status.success(), "python3: {}", String::from_utf8_lossy(&output.stderr));
        let full = std::fs::read(pki.dir.0.join("got.full")).unwrap();
        assert!(full == body, "the download differs ({} of {} bytes)", full.len(), body.len());
        for (i, (a, b)) in ranges.iter().enumerate() {
            let got = std::fs::read(pki.dir.0.join(format!("got.{i}"))).unwrap();
            assert!(got[..] == body[*a..=*b], "range {a}-{b} differs ({} bytes)", got.len());
        }
    }

    fn curl_https_with_the_self_signed_default(backend: BackendChoice) {
        if !have_curl() { return; }
        let dir = TempDir::new("curl-self-signed");
        let Some(server) = Ringwork::start(backend, &["hello"], "tls:0:interface=127.0.0.1", &dir.0) else { return };
        let said = server
            .proc
            .seen
            .iter()
            .find_map(|l| l.split_once("curl --cacert ").map(|(_, rest)| rest.to_owned()))
            .unwrap_or_else(|| panic!("no certificate path on stderr:\n{}", server.proc.output()));
        let cert = said.split(' ').next().expect("split yields one").to_owned();
        assert!(Path::new(&cert).starts_with(dir.0.join("xdg")), "{cert} outside XDG_DATA_HOME");
        let out = curl_ok(&["--cacert", &cert, "--resolve", &server.resolve(), &server.https()]);
        assert_eq!(out, "Hello, World!");
        // By address too: the certificate names 127.0.0.1.
        let url = format!("https://127.0.0.1:{}/", server.port());
        assert_eq!(curl_ok(&["--cacert", &cert, &url]), "Hello, World!");
        // Nothing went wrong on the server's side.
        assert!(!server.proc.output().contains("ERROR"), "{}", server.proc.output());
    }

    fn curl_client_certificates(backend: BackendChoice) {
        if !have_curl() { return; }
        let pki = Pki::new("curl-client-cert");
        let extra = format!(":ca={}", path(&pki.ca_pem));
        let Some(server) = Ringwork::start(backend, &["hello"], &pki.endpoint(&extra), &pki.dir.0) else { return };
        let (url, resolve, ca) = (server.https(), server.resolve(), path(&pki.ca_pem));
        let out = curl(&["--cacert", ca, "--resolve", &resolve, &url]);
        assert!(!out.status.success(), "no client certificate must fail");
        assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
        let out = curl_ok(&[
            "--cacert", ca, "--resolve", &resolve,
            "--cert", path(&pki.client_pem), "--key", path(&pki.client_key), &url,
        ]);
        assert_eq!(out, "Hello, World!");
        // The server's own certificate does not do as a client certificate (no clientAuth).
        let out = curl(&[
            "--cacert", ca, "--resolve", &resolve,
            "--cert", path(&pki.server_pem), "--key", path(&pki.server_key), &url,
        ]);
        assert!(!out.status.success(), "a server certificate as client certificate must fail");
    }

    fn curl_haproxy_protocol(backend: BackendChoice) {
        if !have_curl() { return; }
        let pki = Pki::new("curl-haproxy");
        let Some(mut plain) = Ringwork::start(backend, &["hello"], "haproxy:tcp:0:interface=127.0.0.1", &pki.dir.0) else { return };
        let url = format!("http://127.0.0.1:{}/", plain.port());
        let out = curl_ok(&["--haproxy-protocol", "--write-out", " %{http_code}", &url]);
        assert_eq!(out, "Hello, World! 200");
        // Without the header: no HTTP response, the connection is closed, the server says why.
        let out = curl(&[&url]);
        assert_eq!(out.status.code(), Some(52), "curl: {}", String::from_utf8_lossy(&out.stderr));
        assert!(out.stdout.is_empty());
        let line = plain.proc.expect("a log line about the preamble", |l| l.contains("invalid preamble"));
        assert!(line.contains("PROXY protocol"), "{line}");

        let endpoint = format!("haproxy:{}", pki.endpoint(""));
        let Some(tls) = Ringwork::start(backend, &["hello"], &endpoint, &pki.dir.0) else { return };
        assert!(matches!(tls.bound, Endpoint::Haproxy(_)), "{}", tls.bound);
        let out = curl_ok(&[
            "--haproxy-protocol", "--cacert", path(&pki.ca_pem), "--resolve", &tls.resolve(),
            "--write-out", " %{http_code}", &tls.https(),
        ]);
        assert_eq!(out, "Hello, World! 200");
    }
}

ringwork::platform::test_all_backends! {
    fn openssl_resumes_on_any_core(backend: BackendChoice) {
        if !have_openssl() { return; }
        if testing::driver(backend, DriverConfig::default()).is_none() { return; }
        let pki = Pki::new("s-client-cores");
        // A fixed port: every core binds it (SO_REUSEPORT), the kernel spreads connections.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let endpoint = pki.endpoint("").replacen("tls:0:", &format!("tls:{port}:"), 1);
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringwork"));
        command
            .args(["serve", "echo", "--listen", &endpoint, "--cores", "2"])
            .args(["--backend", backend_name(backend)])
            .env("RUST_LOG", "info")
            .env_remove("RINGWORK_BACKEND");
        let mut server = Proc::spawn("ringwork", &mut command);
        for _ in 0..2 {
            server.expect("listening on every core", |l| l.contains("listening on "));
        }
        let ca = path(&pki.ca_pem);
        let session = pki.dir.0.join("session.pem");
        let verify = ["-servername", "localhost", "-CAfile", ca, "-verify_return_error"];
        let mut first = verify.to_vec();
        first.extend(["-sess_out", path(&session)]);
        let out = s_client_to_the_end(port, &first, "first");
        assert!(out.contains("New, TLSv1.3"), "{out}");
        // The ticket of one core's connection resumes on every core's listener.
        let mut again = verify.to_vec();
        again.extend(["-sess_in", path(&session)]);
        for i in 0..16 {
            let out = s_client_ok(port, &again, &format!("again {i}"));
            assert!(out.contains("Reused, TLSv1.3"), "connection {i}: {out}");
        }
        // Both cores took connections (each says how many when it stops).
        let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        assert!(server.until(|_| false).is_none());
        let accepted: Vec<u64> = server
            .seen
            .iter()
            .filter_map(|l| l.split_once(" stopped: ")?.1.split(' ').next()?.parse().ok())
            .collect();
        assert_eq!(accepted.len(), 2, "{}", server.output());
        assert_eq!(accepted.iter().sum::<u64>(), 17, "{}", server.output());
        assert!(accepted.iter().all(|n| *n > 0), "one core took every connection: {accepted:?}");
    }
}

/// Sends a line once connected, closes once a whole line came back; records the outcome.
#[derive(Default)]
struct LineSeen {
    info: Option<TlsInfo>,
    received: Vec<u8>,
    lost: Option<String>,
    tls_error: Option<TlsError>,
    handshake_error: Option<String>,
}

struct LineClient(Rc<RefCell<LineSeen>>);

impl Protocol for LineClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.0.borrow_mut().info = ctx.tls().cloned();
        ctx.write(b"hello ringwork\n");
    }
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut seen = self.0.borrow_mut();
        seen.received.extend_from_slice(data);
        if seen.received.ends_with(b"\n") {
            ctx.close();
        }
    }
    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        let mut seen = self.0.borrow_mut();
        if let LostReason::Tls(e) = &reason {
            seen.tls_error = Some(e.clone());
            if let TlsError::Handshake(e) = e {
                seen.handshake_error = Some(e.to_string());
            }
        }
        seen.lost = Some(reason.to_string());
    }
}

/// Connects through `connector` to `addr` as `localhost`; waits for the end.
fn line_exchange(
    reactor: &mut Reactor,
    addr: &SockAddr,
    connector: &TlsConnector,
) -> Rc<RefCell<LineSeen>> {
    let seen = Rc::new(RefCell::new(LineSeen::default()));
    reactor
        .connect(
            addr,
            LineClient(seen.clone()),
            ConnectOptions::new().tls(connector.clone(), server_name("localhost").unwrap()),
        )
        .expect("connect_tls");
    let done = reactor
        .run_until(LIMIT, |_| seen.borrow().lost.is_some())
        .expect("reactor turn");
    assert!(
        done,
        "{} backend: the connection did not end in {LIMIT:?}",
        reactor.backend()
    );
    seen
}

ringwork::platform::test_all_backends! {
    fn ringwork_client_against_openssl_s_server(backend: BackendChoice) {
        if !have_openssl() { return; }
        if testing::driver(backend, DriverConfig::default()).is_none() { return; }
        let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig { backend, ..DriverConfig::default() })
            .expect("create a reactor");
        let pki = Pki::new("s-server");
        let mut command = Command::new("openssl");
        command.args([
            "s_server", "-accept", "127.0.0.1:0", "-cert", path(&pki.server_pem),
            "-key", path(&pki.server_key), "-CAfile", path(&pki.ca_pem), "-rev",
        ]);
        let mut s_server = Proc::spawn("openssl s_server", &mut command);
        let line = s_server.expect("ACCEPT", |l| l.starts_with("ACCEPT "));
        let addr: std::net::SocketAddr = line["ACCEPT ".len()..].parse().expect("ACCEPT ip:port");
        let addr = SockAddr::from(addr);

        let trusting = TlsConnector::builder().roots(Roots::Certificates(vec![pki.ca.cert.clone()])).build().unwrap();
        let seen = line_exchange(&mut reactor, &addr, &trusting);
        let seen = seen.borrow();
        assert_eq!(String::from_utf8_lossy(&seen.received), "krowgnir olleh\n", "{:?}", seen.lost);
        let info = seen.info.as_ref().expect("connection_made after the handshake");
        assert_eq!(info.version, "TLSv1.3");
        assert_eq!(info.peer_certificates.first(), Some(&pki.server.cert));

        let stranger = TestCa::new();
        let untrusting = TlsConnector::builder().roots(Roots::Certificates(vec![stranger.cert.clone()])).build().unwrap();
        let refused = line_exchange(&mut reactor, &addr, &untrusting);
        let refused = refused.borrow();
        assert!(refused.info.is_none() && refused.received.is_empty());
        let error = refused.handshake_error.clone().unwrap_or_else(|| panic!("not a handshake error: {:?}", refused.lost));
        let text = error.to_lowercase().replace(' ', "");
        assert!(text.contains("unknownissuer"), "{error}");
    }

    fn ringwork_client_certificate_and_alpn_against_openssl_s_server(backend: BackendChoice) {
        if !have_openssl() { return; }
        if testing::driver(backend, DriverConfig::default()).is_none() { return; }
        let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig { backend, ..DriverConfig::default() })
            .expect("create a reactor");
        let pki = Pki::new("s-server-client-cert");
        // -Verify: a client certificate is required.
        let mut command = Command::new("openssl");
        command.args([
            "s_server", "-accept", "127.0.0.1:0", "-cert", path(&pki.server_pem),
            "-key", path(&pki.server_key), "-CAfile", path(&pki.ca_pem), "-Verify", "1",
            "-verify_return_error", "-alpn", "http/1.1", "-rev",
        ]);
        let mut s_server = Proc::spawn("openssl s_server", &mut command);
        let line = s_server.expect("ACCEPT", |l| l.starts_with("ACCEPT "));
        let addr: std::net::SocketAddr = line["ACCEPT ".len()..].parse().expect("ACCEPT ip:port");
        let addr = SockAddr::from(addr);
        let roots = Roots::Certificates(vec![pki.ca.cert.clone()]);
        let alice = pki.ca.client("alice");

        let with_cert = TlsConnector::builder()
            .roots(roots.clone())
            .client_certificate(alice.chain(), alice.key())
            .alpn(["h2", "http/1.1"])
            .build()
            .unwrap();
        let seen = line_exchange(&mut reactor, &addr, &with_cert);
        let seen = seen.borrow();
        assert_eq!(String::from_utf8_lossy(&seen.received), "krowgnir olleh\n", "{:?}", seen.lost);
        let info = seen.info.as_ref().expect("handshake");
        assert_eq!(info.alpn.as_deref(), Some(&b"http/1.1"[..]));

        // Without a certificate: in TLS 1.3 the client finishes first and learns of the
        // refusal by the server's alert; either way no reply, and a TLS error.
        let without = TlsConnector::builder().roots(roots).build().unwrap();
        let refused = line_exchange(&mut reactor, &addr, &without);
        let refused = refused.borrow();
        assert!(refused.received.is_empty(), "{:?}", refused.received);
        let error = refused.tls_error.clone().unwrap_or_else(|| panic!("not a TLS error: {:?}", refused.lost));
        let text = error.to_string().to_lowercase().replace(' ', "");
        assert!(text.contains("certificaterequired"), "{error}");
    }
}

/// Every core listens on each TCP endpoint, `tls:` and `haproxy:` ones too: with port 0 and
/// several cores each core would bind its own free port, so the binary refuses, as for
/// `tcp:0` (a check, no I/O: one backend is enough).
#[test]
fn alpn_protocols_a_service_does_not_speak_are_refused() {
    let pki = Pki::new("alpn-refused");
    for (service, alpn, message) in [
        (
            "hello",
            "h3,http/1.1",
            "alpn=h3 is a protocol this service does not speak (it speaks h2, http/1.1)",
        ),
        (
            "socks5",
            "x-socks",
            "alpn=x-socks is a protocol this service does not speak (it has no ALPN name",
        ),
    ] {
        let endpoint = pki.endpoint(&format!(":alpn={alpn}"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringwork"));
        command
            .args(["serve", service, "--listen", &endpoint, "--cores", "1"])
            .env("XDG_DATA_HOME", pki.dir.0.join("xdg"));
        // Fails after LIMIT if it starts serving instead of refusing.
        let mut proc = Proc::spawn("ringwork", &mut command);
        let status = proc.finish();
        let stderr = proc.output();
        assert_eq!(status.code(), Some(1), "{service}: {stderr}");
        assert!(
            stderr.contains(&format!("serve {service}: ")) && stderr.contains(message),
            "{stderr}"
        );
    }
    // The help's example advertises only what the services speak.
    let help = Command::new(env!("CARGO_BIN_EXE_ringwork"))
        .args(["serve", "--help"])
        .output()
        .expect("run ringwork");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("alpn=") && !help.contains("alpn=h2"),
        "{help}"
    );
}

#[test]
fn port_zero_tls_and_haproxy_endpoints_with_several_cores_fail() {
    let dir = TempDir::new("port-zero-cores");
    for endpoint in [
        "tls:0:interface=127.0.0.1",
        "haproxy:tcp:0:interface=127.0.0.1",
        "haproxy:tls:0:interface=127.0.0.1",
    ] {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringwork"));
        command
            .args(["serve", "echo", "--listen", endpoint, "--cores", "2"])
            .args(["--backend", "poll"])
            .env("RUST_LOG", "info")
            .env("XDG_DATA_HOME", dir.0.join("xdg"))
            .env_remove("RINGWORK_BACKEND");
        let mut proc = Proc::spawn("ringwork", &mut command);
        if let Some(line) = proc.until(|l| l.contains("listening on ")) {
            panic!(
                "{endpoint} with 2 cores: the binary started ({line}); output:\n{}",
                proc.output()
            );
        }
        let status = proc.child.wait().expect("wait for ringwork");
        assert_eq!(status.code(), Some(1), "{endpoint}: {}", proc.output());
        assert!(
            proc.output().contains("--cores 1"),
            "{endpoint}: {}",
            proc.output()
        );
    }
}
