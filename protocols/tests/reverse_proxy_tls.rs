//! The reverse proxy in front of `https://` upstreams, on both backends: ringwork TLS
//! upstreams started in the test with certificates of a throw-away CA (keep-alive reuse
//! counted in TLS connections, bodies streamed both ways, `tls_verify = false` against an
//! untrusted certificate, a name mismatch, mutual TLS) and `openssl s_server -www`.
//!
//! Nothing sleeps: every wait turns the reactor until its future resolved (bounded by
//! [`LIMIT`]); openssl is waited for by reading its output through a channel.
#![cfg(feature = "engine")]

mod common;
mod reactor_support;

use std::cell::RefCell;
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use common::TempDir;
use reactor_support::{block_on, reactor};
use ringwork::platform::BackendChoice;
use ringwork::testing::certs::{TestCa, TestCert};
use ringwork::tls::{ClientAuth, TlsAcceptor};
use ringwork::{ConnId, Reactor};
use ringwork_protocols::http::client::{
    BodySource, ClientConfig, ClientRequest, ClientResponse, HttpClient, NextChunk, StreamBody,
};
use ringwork_protocols::http::proto::{Method, RequestHead};
use ringwork_protocols::http::reverse_proxy::{ProxyConfig, ReverseProxy, server_config};
use ringwork_protocols::http::server::{
    BodyError, Handler, HttpServer, Request, Responder, Response, ServerConfig,
};

fn get(reactor: &mut Reactor, client: &HttpClient, request: ClientRequest) -> ClientResponse {
    block_on(reactor, client.request(request)).expect("a response from the proxy")
}

fn text(response: &ClientResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

/// The first part of `/stream`, and the rest (sent in 64 KiB pieces).
const FIRST: usize = 64 * 1024;
const REST: usize = 1 << 20;

/// A TLS upstream:
/// - `/upload`: streams the request body, answers `framing length pattern-ok`;
/// - `/stream`: [`FIRST`] + [`REST`] bytes, chunked, written as the connection drains;
/// - anything else: `tls=<bool>` and the request head.
struct Upstream {
    /// Connections that carried requests (each is one TLS handshake).
    conns: Rc<RefCell<HashSet<ConnId>>>,
}

impl Handler for Upstream {
    fn stream_body(&self, head: &RequestHead) -> bool {
        head.path() == b"/upload"
    }

    fn handle(&self, mut request: Request, respond: Responder) {
        self.conns.borrow_mut().insert(request.conn());
        match request.path() {
            b"/upload" => {
                let chunked = request.headers().has_token("transfer-encoding", "chunked");
                let Some(mut body) = request.take_body_stream() else {
                    return respond.send(Response::text("no body"));
                };
                request.handle().spawn_local(async move {
                    let (mut len, mut ok) = (0usize, true);
                    while let Some(piece) = body.next().await {
                        let Ok(piece) = piece else { return };
                        ok &= piece
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == ((len + i) % 251) as u8);
                        len += piece.len();
                    }
                    let framing = if chunked { "chunked" } else { "sized" };
                    respond.send(Response::text(format!("{framing} {len} {ok}")));
                });
            }
            b"/stream" => {
                let mut body = respond.stream(Response::new(200));
                body.write(vec![b'a'; FIRST]);
                request.handle().spawn_local(async move {
                    for _ in 0..REST / 65536 {
                        if !body.write(vec![b'b'; 65536]) && body.ready().await.is_err() {
                            return;
                        }
                    }
                    body.finish();
                });
            }
            _ => {
                let mut head = format!(
                    "tls={} {} {}\r\n",
                    request.is_tls(),
                    request.method(),
                    String::from_utf8_lossy(request.head().target.as_ref())
                );
                for (name, value) in request.headers().iter() {
                    let (name, value) = (
                        String::from_utf8_lossy(name),
                        String::from_utf8_lossy(value),
                    );
                    head.push_str(&format!("{name}: {value}\r\n"));
                }
                respond.send(Response::text(head));
            }
        }
    }
}

/// A TLS upstream presenting `cert` (asking for client certificates per `auth`).
fn upstream(
    reactor: &mut Reactor,
    cert: &TestCert,
    auth: ClientAuth,
) -> (SocketAddr, Rc<RefCell<HashSet<ConnId>>>) {
    let acceptor = TlsAcceptor::builder()
        .certificate(cert.chain(), cert.key())
        .client_auth(auth)
        .build()
        .expect("acceptor");
    let conns = Rc::new(RefCell::new(HashSet::new()));
    let mut config = ServerConfig::default();
    config.limits.max_body = 64 << 20;
    let handler = Upstream {
        conns: Rc::clone(&conns),
    };
    let addr = reactor
        .listen_tls(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            &acceptor,
            HttpServer::new(handler, config),
        )
        .expect("listen_tls");
    (addr, conns)
}

/// Starts the proxy with `config` on a free port; returns its address and the proxy (for
/// its upstream client's counters).
fn proxy(reactor: &mut Reactor, config: &str) -> (SocketAddr, ReverseProxy) {
    let config =
        ProxyConfig::from_toml(config).unwrap_or_else(|e| panic!("invalid config: {e}\n{config}"));
    let proxy = ReverseProxy::new(reactor.handle(), &config);
    let server = HttpServer::new(proxy.clone(), server_config(&config));
    let addr = reactor
        .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
        .expect("listen");
    (addr, proxy)
}

/// A config with the pool `main` of `servers` and the keys `pool` in its table.
fn https_config(servers: &[String], pool: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("{s:?}")).collect();
    format!(
        "listen = [\"tcp:0\"]\nmax_body = \"64MiB\"\n[upstreams.main]\nservers = [{}]\n{pool}\n\n[[routes]]\nupstream = \"main\"\n",
        list.join(", ")
    )
}

/// A CA with its certificate written to `ca.pem` in a temporary directory.
struct Pki {
    dir: TempDir,
    ca: TestCa,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = TempDir::new(name);
        let ca = TestCa::new();
        std::fs::write(dir.0.join("ca.pem"), &ca.cert_pem).expect("write ca.pem");
        Pki { dir, ca }
    }

    /// `tls_ca = "…/ca.pem"`.
    fn tls_ca(&self) -> String {
        format!(
            "tls_ca = {:?}",
            self.dir.0.join("ca.pem").display().to_string()
        )
    }
}

/// `total` bytes of a repeating pattern in `piece`-byte pieces.
struct Pattern {
    sent: usize,
    total: usize,
    piece: usize,
}

impl BodySource for Pattern {
    fn next_chunk(&mut self) -> NextChunk<'_> {
        let next = (self.sent < self.total).then(|| {
            let n = self.piece.min(self.total - self.sent);
            let bytes: Vec<u8> = (self.sent..self.sent + n)
                .map(|i| (i % 251) as u8)
                .collect();
            self.sent += n;
            Ok::<_, BodyError>(bytes.into())
        });
        Box::pin(std::future::ready(next))
    }
}

/// Log lines written while a test's subscriber is the default (on this thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log lock")).into_owned()
    }
}

ringwork::platform::test_all_backends! {
    fn https_upstream_keeps_one_tls_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = Pki::new("proxy-tls-reuse");
        let (up, conns) = upstream(&mut reactor, &pki.ca.server(&["localhost"]), ClientAuth::None);
        let servers = [format!("https://localhost:{}", up.port())];
        let (addr, proxy) = proxy(&mut reactor, &https_config(&servers, &pki.tls_ca()));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..6 {
            let response = get(&mut reactor, &client, ClientRequest::get(addr, format!("/n/{i}")).authority("app.test"));
            assert_eq!(response.head.status, 200, "{}", text(&response));
            let body = text(&response).to_ascii_lowercase();
            assert!(body.starts_with(&format!("tls=true get /n/{i}\r\n")), "{body}");
            // The client's side was plaintext: that is what X-Forwarded-Proto says.
            assert!(body.contains("x-forwarded-proto: http\r\n"), "{body}");
            assert!(body.contains("host: app.test\r\n"), "{body}");
        }
        // Six requests over one client connection: one upstream TLS connection (one
        // handshake), reused five times.
        assert_eq!(client.stats().connections_opened, 1);
        assert_eq!(conns.borrow().len(), 1, "upstream TLS connections");
        let stats = proxy.client().stats();
        assert_eq!((stats.connections_opened, stats.reused), (1, 5), "{stats:?}");
    }

    fn bodies_stream_both_ways_over_tls(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = Pki::new("proxy-tls-stream");
        let (up, conns) = upstream(&mut reactor, &pki.ca.server(&["localhost"]), ClientAuth::None);
        let servers = [format!("https://localhost:{}", up.port())];
        let (addr, _) = proxy(&mut reactor, &https_config(&servers, &pki.tls_ca()));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let total = 3 << 20;
        for (length, expected) in [(None, "chunked"), (Some(total as u64), "sized")] {
            let body = StreamBody::new(Pattern { sent: 0, total, piece: 50_000 }, length);
            let request = ClientRequest::get(addr, "/upload").method(Method::Post).body_stream(body);
            let response = get(&mut reactor, &client, request);
            assert_eq!(response.head.status, 200);
            assert_eq!(text(&response), format!("{expected} {total} true"));
        }
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/stream"));
        assert_eq!(response.head.status, 200);
        assert_eq!(response.head.headers.get_str("transfer-encoding"), Some("chunked"));
        assert_eq!(response.body.len(), FIRST + REST);
        assert!(response.body[..FIRST].iter().all(|&b| b == b'a'));
        assert!(response.body[FIRST..].iter().all(|&b| b == b'b'));
        assert_eq!(conns.borrow().len(), 1, "one upstream TLS connection for all three");
    }

    fn untrusted_upstream_is_502_unless_tls_verify_is_off(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        // A certificate of a CA nobody trusts (not in the system store, not in tls_ca).
        let stranger = TestCa::new();
        let (up, conns) = upstream(&mut reactor, &stranger.server(&["localhost"]), ClientAuth::None);
        let servers = [format!("https://localhost:{}", up.port())];
        // Default: the system's roots (or, on a machine without any, another CA's file).
        let pki = Pki::new("proxy-tls-untrusted");
        let default = https_config(&servers, "");
        let default = match ProxyConfig::from_toml(&default) {
            Ok(_) => default,
            Err(error) => {
                eprintln!("no system roots here ({error}): trusting another CA instead");
                https_config(&servers, &pki.tls_ca())
            }
        };
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let (addr, _) = proxy(&mut reactor, &default);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/"));
        assert_eq!(response.head.status, 502);
        assert!(conns.borrow().is_empty(), "no request reached the upstream");
        // The log names the upstream and the TLS failure.
        let log = logs.text();
        let line = log
            .lines()
            .find(|l| l.contains("upstream TLS handshake failed"))
            .unwrap_or_else(|| panic!("no TLS failure logged:\n{log}"));
        assert!(line.contains(&up.to_string()) && line.contains("UnknownIssuer"), "{line}");

        // Trusting its CA but verified as another name than the certificate's: 502 too.
        let stranger_ca = pki.dir.0.join("stranger.pem");
        std::fs::write(&stranger_ca, &stranger.cert_pem).expect("write stranger.pem");
        let mismatch = https_config(
            &servers,
            &format!("tls_ca = {:?}\ntls_server_name = \"other.test\"", stranger_ca.display().to_string()),
        );
        let (addr, _) = proxy(&mut reactor, &mismatch);
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/"));
        assert_eq!(response.head.status, 502);
        assert!(logs.text().contains("not valid for name \"other.test\""), "{}", logs.text());

        // tls_verify = false: the same upstream is reached (encrypted, unauthenticated),
        // and a warning said so when the config loaded.
        let insecure = https_config(&servers, "tls_verify = false");
        let (addr, _) = proxy(&mut reactor, &insecure);
        assert!(logs.text().contains("tls_verify = false"), "{}", logs.text());
        for _ in 0..2 {
            let response = get(&mut reactor, &client, ClientRequest::get(addr, "/x"));
            assert_eq!(response.head.status, 200);
            assert!(text(&response).starts_with("tls=true GET /x\r\n"), "{}", text(&response));
        }
        assert_eq!(conns.borrow().len(), 1, "kept alive without verification too");
    }

    fn mutual_tls_upstream(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let pki = Pki::new("proxy-mtls");
        let required = ClientAuth::Required(vec![pki.ca.cert.clone()]);
        let (up, conns) = upstream(&mut reactor, &pki.ca.server(&["localhost"]), required);
        let (cert, key) = pki.ca.client("proxy").write_pem(&pki.dir.0, "client");
        let servers = [format!("https://localhost:{}", up.port())];
        let with_cert = format!(
            "{}\ntls_cert = {:?}\ntls_key = {:?}",
            pki.tls_ca(),
            cert.display().to_string(),
            key.display().to_string()
        );
        let (addr, _) = proxy(&mut reactor, &https_config(&servers, &with_cert));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/m"));
        assert_eq!(response.head.status, 200);
        assert!(text(&response).starts_with("tls=true GET /m\r\n"), "{}", text(&response));
        assert_eq!(conns.borrow().len(), 1);
        // Without a client certificate the upstream refuses the handshake: 502.
        let (addr, _) = proxy(&mut reactor, &https_config(&servers, &pki.tls_ca()));
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/m"));
        assert_eq!(response.head.status, 502);
        assert_eq!(conns.borrow().len(), 1, "the refused connection carried no request");
    }

    fn openssl_s_server_as_upstream(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let Some(openssl) = OpensslServer::start("proxy-openssl") else { return };
        let ca = openssl.dir.0.join("ca.pem");
        let servers = [format!("https://localhost:{}", openssl.addr.port())];
        let pool = format!("tls_ca = {:?}", ca.display().to_string());
        let (addr, _) = proxy(&mut reactor, &https_config(&servers, &pool));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/"));
        assert_eq!(response.head.status, 200);
        let body = text(&response);
        assert!(body.contains("Ciphers supported in s_server binary"), "{body}");
        // openssl answers HTTP/1.0, close-delimited: the proxy re-frames it as chunked.
        assert_eq!(response.head.headers.get_str("transfer-encoding"), Some("chunked"));
    }
}

/// `openssl s_server -www` on a free loopback port with a certificate (for `localhost`) of
/// a test CA written to `ca.pem` in `dir`; killed on drop.
struct OpensslServer {
    dir: TempDir,
    addr: SocketAddr,
    child: Child,
}

impl OpensslServer {
    /// `None` (a loud skip) when openssl is not installed; under `CI` that is a failure.
    fn start(name: &str) -> Option<OpensslServer> {
        let installed = Command::new("openssl")
            .arg("version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !installed {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl is not installed (CI is set)"
            );
            eprintln!("skipped: openssl not installed (scripts/install-http-test-deps.sh)");
            return None;
        }
        let dir = TempDir::new(name);
        let ca = TestCa::new();
        std::fs::write(dir.0.join("ca.pem"), &ca.cert_pem).expect("write ca.pem");
        let (cert, key) = ca.server(&["localhost"]).write_pem(&dir.0, "server");
        let (child, addr) = common::openssl_s_server_www(&cert, &key);
        Some(OpensslServer { dir, addr, child })
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
