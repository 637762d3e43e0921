//! Helpers shared by the HTTP server tests: an [`HttpServer`] on a one-core [`Runtime`]
//! running on a background thread (one per backend), and a small blocking HTTP/1.1 client
//! that reads responses exactly as framed (it parses chunked framing itself, so the tests
//! check the server's framing, not a library's tolerance of it).
//!
//! Nothing sleeps: every read has a timeout of [`LIMIT`] and a wait that runs out fails
//! saying what it waited for.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ringwork::platform::testing;
use ringwork::{BackendChoice, DriverConfig, EngineError, ReactorConfig, Runtime, ShutdownHandle};
use ringwork_protocols::http::server::{Handler, HttpServer, ServerConfig};

/// How long any one wait may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(20);

/// An HTTP server on a one-core runtime on its own thread; shut down (at once) on drop.
pub struct Server {
    pub addr: SocketAddr,
    handle: ShutdownHandle,
    done: mpsc::Receiver<Result<(), EngineError>>,
}

impl Server {
    /// Starts a server on `backend` whose core builds its handler with `make`; `None` when
    /// the backend cannot run here (skipped loudly by `testing::driver`).
    pub fn start<H, F>(backend: BackendChoice, config: ServerConfig, make: F) -> Option<Server>
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        Server::start_with(backend, config, ReactorConfig::default(), make)
    }

    /// [`Server::start`] with the reactor's settings too.
    pub fn start_with<H, F>(
        backend: BackendChoice,
        config: ServerConfig,
        reactor: ReactorConfig,
        make: F,
    ) -> Option<Server>
    where
        H: Handler,
        F: Fn() -> H + Send + Sync + 'static,
    {
        Server::start_server(backend, reactor, move || {
            HttpServer::new(make(), config.clone())
        })
    }

    /// A server that the core builds whole with `build` (for the builder's options).
    pub fn start_server<F>(
        backend: BackendChoice,
        reactor: ReactorConfig,
        build: F,
    ) -> Option<Server>
    where
        F: Fn() -> HttpServer + Send + Sync + 'static,
    {
        testing::driver(backend, DriverConfig::default())?;
        let runtime = Runtime::builder()
            .cores(1)
            .pin(false)
            .backend(backend)
            .reactor_config(reactor)
            .build()
            .expect("build a runtime");
        let handle = runtime.shutdown_handle();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        thread::Builder::new()
            .name("http-server".into())
            .spawn(move || {
                let result = runtime.run(move |reactor| {
                    let server = build();
                    let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)?;
                    let _ = addr_tx.send(addr);
                    Ok(())
                });
                let _ = done_tx.send(result);
            })
            .expect("start the server thread");
        let addr = addr_rx.recv_timeout(LIMIT).expect("the server to listen");
        Some(Server { addr, handle, done })
    }

    /// Starts a graceful shutdown with `grace`.
    pub fn shutdown(&self, grace: Duration) {
        self.handle.shutdown(grace);
    }

    /// Waits for the runtime to return (after [`Server::shutdown`]).
    #[track_caller]
    pub fn join(&self) {
        self.done
            .recv_timeout(LIMIT)
            .expect("the server's runtime to return")
            .expect("the server's runtime to succeed");
    }

    /// A client connected to this server.
    pub fn client(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.shutdown(Duration::ZERO);
    }
}

/// One response as read off the wire.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The chunk sizes, for a chunked body.
    pub chunks: Option<Vec<usize>>,
    /// The trailer fields of a chunked body.
    pub trailers: Vec<(String, String)>,
}

impl Resp {
    /// The first field named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many fields are named `name`.
    pub fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking client: writes raw bytes, reads framed responses.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect to the server");
        stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// A client whose socket receive buffer is `size` bytes (kernel autotuning off), so
    /// that a client not reading pushes back on the server quickly.
    pub fn with_recv_buffer(addr: SocketAddr, size: usize) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        socket.connect(&addr.into()).expect("connect to the server");
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// The bytes read past the last parsed message (a body being read by hand).
    pub fn take_buffered(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    /// Writes `bytes` (all of them).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream
            .write_all(bytes.as_ref())
            .expect("write to the server");
    }

    /// A `GET path` with Host (and `extra` header lines, each ending in CRLF).
    pub fn get(&mut self, path: &str, extra: &str) -> Resp {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"));
        self.response()
    }

    /// Reads more bytes into the buffer; false at EOF. Fails on timeout.
    fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match ringwork::platform::testing::retry_interrupted(|| self.stream.read(&mut chunk)) {
            Ok(0) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => false,
            Err(e) => panic!("reading from the server: {e} (waited {LIMIT:?})"),
        }
    }

    /// Reads until `buf` holds `n` bytes; fails at EOF.
    fn need(&mut self, n: usize, what: &str) {
        while self.buf.len() < n {
            assert!(
                self.fill(),
                "connection closed while reading {what}: have {} bytes, need {n}",
                self.buf.len()
            );
        }
    }

    /// Reads a CRLF-terminated line (without the CRLF).
    fn line(&mut self, what: &str) -> Vec<u8> {
        loop {
            if let Some(at) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..at].to_vec();
                self.buf.drain(..at + 2);
                return line;
            }
            assert!(self.fill(), "connection closed while reading {what}");
        }
    }

    /// Reads one response head (an interim 1xx one too).
    pub fn head(&mut self) -> Resp {
        let end = loop {
            if let Some(at) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(
                self.fill(),
                "connection closed before a response head; got {:?}",
                String::from_utf8_lossy(&self.buf)
            );
        };
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut fields);
        let status = parsed
            .parse(&self.buf[..end])
            .expect("a valid response head");
        assert!(status.is_complete());
        let resp = Resp {
            status: parsed.code.expect("status"),
            reason: parsed.reason.unwrap_or_default().to_owned(),
            headers: parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            body: Vec::new(),
            chunks: None,
            trailers: Vec::new(),
        };
        self.buf.drain(..end);
        resp
    }

    /// Reads one final response (skipping 1xx) to a GET-like request.
    pub fn response(&mut self) -> Resp {
        self.response_to(false)
    }

    /// Reads one final response; `head_request`: it has no body.
    pub fn response_to(&mut self, head_request: bool) -> Resp {
        let mut resp = loop {
            let resp = self.head();
            if resp.status >= 200 {
                break resp;
            }
        };
        if head_request || resp.status == 204 || resp.status == 304 {
            return resp;
        }
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
        if chunked {
            assert!(
                resp.header("content-length").is_none(),
                "both Content-Length and chunked"
            );
            let mut chunks = Vec::new();
            loop {
                let line = self.line("a chunk size");
                let line = String::from_utf8(line).expect("chunk size is text");
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
                if size == 0 {
                    break;
                }
                self.need(size + 2, "a chunk");
                resp.body.extend_from_slice(&self.buf[..size]);
                assert_eq!(
                    &self.buf[size..size + 2],
                    b"\r\n",
                    "chunk not ended by CRLF"
                );
                self.buf.drain(..size + 2);
                chunks.push(size);
            }
            loop {
                let line = self.line("a trailer");
                if line.is_empty() {
                    break;
                }
                let line = String::from_utf8(line).expect("trailer is text");
                let (name, value) = line.split_once(':').expect("trailer has a colon");
                resp.trailers
                    .push((name.to_owned(), value.trim().to_owned()));
            }
            resp.chunks = Some(chunks);
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().expect("numeric Content-Length");
            self.need(len, "a sized body");
            resp.body = self.buf.drain(..len).collect();
        } else {
            // Close-delimited.
            while self.fill() {}
            resp.body = std::mem::take(&mut self.buf);
        }
        resp
    }

    /// Asserts the server closes the connection (EOF or reset) within [`LIMIT`], with no
    /// further bytes.
    #[track_caller]
    pub fn expect_closed(&mut self) {
        let start = Instant::now();
        while self.fill() {
            assert!(start.elapsed() < LIMIT, "the server did not close");
        }
        assert!(
            self.buf.is_empty(),
            "unexpected bytes before the close: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
    }

    /// Reads until EOF and returns everything received (after what is buffered).
    pub fn read_to_close(&mut self) -> Vec<u8> {
        while self.fill() {}
        std::mem::take(&mut self.buf)
    }

    /// Half-closes the write side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A deterministic byte pattern of `len` bytes (period 251, prime: a piece moved or lost
/// shows).
pub fn pattern(len: usize) -> Vec<u8> {
    let period: Vec<u8> = (0..251u8).collect();
    period.iter().copied().cycle().take(len).collect()
}

/// A directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "ringwork-{name}-{}-{:?}",
            std::process::id(),
            thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Starts `openssl s_server -www` on a free loopback port with `cert` and `key` (PEM) and
/// returns it with the address it printed (`ACCEPT host:port`); fails after [`LIMIT`].
pub fn openssl_s_server_www(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut child = Command::new("openssl")
        .args(["s_server", "-accept", "127.0.0.1:0", "-www", "-cert"])
        .arg(cert)
        .arg("-key")
        .arg(key)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start openssl s_server");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("ACCEPT ") {
                let _ = tx.send(addr.parse::<std::net::SocketAddr>());
            }
        }
    });
    match rx.recv_timeout(LIMIT) {
        Ok(Ok(addr)) => (child, addr),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("openssl s_server did not say where it listens: {other:?}");
        }
    }
}
