//! The reverse proxy on both backends, in front of ringwork HTTP upstreams started in the
//! test, all on one reactor: keep-alive reuse, routing, streaming both ways, 502/504,
//! header rewriting and a smuggling attempt; a WebSocket tunnel whose bulk direction is
//! spliced.
//!
//! Nothing sleeps: every wait turns the reactor until a condition holds (bounded by
//! [`LIMIT`]); the streaming test is driven by the client's own progress (the upstream
//! finishes only after the client received the first part).
#![cfg(feature = "engine")]

mod reactor_support;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::Duration;

use reactor_support::{LIMIT, block_on, reactor};
use ringwork::platform::BackendChoice;
use ringwork::{Bytes, ConnId, ConnectOptions, Context, Deferred, Protocol, Reactor, Resolver};
use ringwork_protocols::http::client::{
    BodySource, ClientConfig, ClientError, ClientRequest, ClientResponse, Flow, HttpClient,
    NextChunk, ResponseSink, StreamBody,
};
use ringwork_protocols::http::proto::{Headers, Method, RequestHead, ResponseHead};
use ringwork_protocols::http::reverse_proxy::{ProxyConfig, ReverseProxy, server_config};
use ringwork_protocols::http::server::{
    BodyError, Handler, HttpServer, Request, Responder, Response, ServerConfig,
};
use ringwork_protocols::websocket::client::{WsClientOptions, connect};
use ringwork_protocols::websocket::proto::{CloseCode, Message, WsConfig};
use ringwork_protocols::websocket::server::ws_echo_server;

/// What an upstream saw.
#[derive(Default)]
struct Log {
    /// Distinct connections that carried requests.
    conns: RefCell<HashSet<ConnId>>,
    /// Request heads, as text.
    heads: RefCell<Vec<String>>,
    /// `/stream` waits for this before sending its second half.
    release: RefCell<Option<Deferred<()>>>,
    /// `/hang` requests, never answered.
    hung: RefCell<Vec<Responder>>,
    /// Bytes of `/big` written so far, and whether it finished.
    big_written: Cell<usize>,
    big_done: Cell<bool>,
    /// `/big`'s connection went away before it finished.
    big_aborted: Cell<bool>,
}

/// A ringwork HTTP upstream named `name`:
/// - `/stream`: 64 KiB, then (after `release`) 1 MiB more, chunked;
/// - `/upload`: streams the request body, answers `framing length pattern-ok`;
/// - `/hang`: never answers;
/// - `/big`: [`BIG`] bytes, sized, written only while the connection is ready;
/// - anything else: `name` and the request head as the body.
struct Upstream {
    name: &'static str,
    log: Rc<Log>,
}

const FIRST: usize = 64 * 1024;
/// The `/big` response: 64 MiB, far more than the socket buffers of two hops hold.
const BIG: usize = 64 << 20;
const REST: usize = 1 << 20;

impl Handler for Upstream {
    fn stream_body(&self, head: &RequestHead) -> bool {
        head.path() == b"/upload"
    }

    fn handle(&self, mut request: Request, respond: Responder) {
        self.log.conns.borrow_mut().insert(request.conn());
        let mut head = format!(
            "{} {} {:?}\r\n",
            request.method(),
            String::from_utf8_lossy(request.head().target.as_ref()),
            request.version()
        );
        for (name, value) in request.headers().iter() {
            head.push_str(&format!(
                "{}: {}\r\n",
                String::from_utf8_lossy(name),
                String::from_utf8_lossy(value)
            ));
        }
        self.log.heads.borrow_mut().push(head.clone());
        match request.path() {
            b"/stream" => {
                let release = self.log.release.borrow_mut().take();
                let mut body = respond.stream(Response::new(200).header("X-Upstream", self.name));
                body.write(vec![b'a'; FIRST]);
                request.handle().spawn_local(async move {
                    if let Some(release) = release {
                        let _ = release.await;
                    }
                    for _ in 0..REST / 65536 {
                        if !body.write(vec![b'b'; 65536]) && body.ready().await.is_err() {
                            return;
                        }
                    }
                    body.finish();
                });
            }
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
            b"/hang" => self.log.hung.borrow_mut().push(respond),
            b"/big" => {
                let mut body =
                    respond.stream(Response::new(200).header("Content-Length", BIG.to_string()));
                let log = Rc::clone(&self.log);
                request.handle().spawn_local(async move {
                    while log.big_written.get() < BIG {
                        if body.ready().await.is_err() {
                            log.big_aborted.set(true);
                            return;
                        }
                        body.write(vec![b'c'; 65536]);
                        log.big_written.set(log.big_written.get() + 65536);
                    }
                    body.finish();
                    log.big_done.set(true);
                });
            }
            _ => respond.send(Response::text(format!("{}\n{head}", self.name))),
        }
    }
}

/// Starts an upstream on a free loopback port.
fn upstream(reactor: &mut Reactor, name: &'static str) -> (SocketAddr, Rc<Log>) {
    let log = Rc::new(Log::default());
    let handler_log = Rc::clone(&log);
    let mut config = ServerConfig::default();
    config.limits.max_body = 64 << 20;
    let server = HttpServer::new(
        Upstream {
            name,
            log: handler_log,
        },
        config,
    );
    let addr = reactor
        .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
        .expect("listen");
    (addr, log)
}

/// A loopback port nothing listens on.
fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Starts the proxy with `config` (its `listen` is ignored: a free port is used).
fn proxy(reactor: &mut Reactor, config: &str) -> SocketAddr {
    let config = ProxyConfig::from_toml(config).expect("valid config");
    let server = ReverseProxy::server(reactor.handle(), &config);
    reactor
        .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
        .expect("listen")
}

/// A config with one upstream pool `main` of `servers` and a catch-all route.
fn simple(servers: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        "listen = [\"tcp:0\"]\nmax_body = \"64MiB\"\n{extra}\n[upstreams.main]\nservers = [{}]\n\n[[routes]]\nupstream = \"main\"\n",
        list.join(", ")
    )
}

fn get(
    reactor: &mut Reactor,
    client: &HttpClient,
    request: ClientRequest,
) -> Result<ClientResponse, ClientError> {
    block_on(reactor, client.request(request))
}

fn text(response: &ClientResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
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

/// Counts a response body; holds it back at the first slice until the test lets it go on
/// (or aborts its connection).
struct PausingSink {
    conn: Rc<Cell<Option<ConnId>>>,
    received: Rc<Cell<usize>>,
    abort: bool,
    /// Lets the paused body go on.
    resume: Rc<RefCell<Option<Resolver<bool>>>>,
}

impl ResponseSink for PausingSink {
    fn head(&mut self, _ctx: &mut Context<'_>, _head: ResponseHead) {}

    fn data(&mut self, ctx: &mut Context<'_>, data: Bytes) -> Flow {
        self.received.set(self.received.get() + data.len());
        if self.conn.get().is_some() {
            return Flow::Continue;
        }
        self.conn.set(Some(ctx.id()));
        if self.abort {
            ctx.abort();
            return Flow::Continue;
        }
        let (resumed, resolver) = Deferred::new();
        *self.resume.borrow_mut() = Some(resolver);
        Flow::Pause(Box::pin(async move { resumed.await.unwrap_or(false) }))
    }
}

/// Writes `request` on a new connection and collects everything until the server closes.
struct RawClient {
    request: Vec<u8>,
    got: Rc<RefCell<Vec<u8>>>,
    done: Rc<Cell<bool>>,
}

impl Protocol for RawClient {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(&self.request);
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, data: &[u8]) {
        self.got.borrow_mut().extend_from_slice(data);
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, _reason: ringwork::LostReason) {
        self.done.set(true);
    }
}

fn raw_exchange(reactor: &mut Reactor, addr: SocketAddr, request: &[u8]) -> String {
    let got = Rc::new(RefCell::new(Vec::new()));
    let done = Rc::new(Cell::new(false));
    let client = RawClient {
        request: request.to_vec(),
        got: Rc::clone(&got),
        done: Rc::clone(&done),
    };
    reactor
        .connect(&addr.into(), client, ConnectOptions::default())
        .expect("connect");
    let finished = reactor.run_until(LIMIT, |_| done.get()).expect("turn");
    assert!(finished, "the proxy closed the connection");
    String::from_utf8_lossy(&got.borrow()).into_owned()
}

ringwork::platform::test_all_backends! {
    fn keep_alive_reuse(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..8 {
            let response = get(&mut reactor, &client, ClientRequest::get(addr, format!("/n/{i}"))).expect("response");
            assert_eq!(response.head.status, 200);
            assert!(text(&response).starts_with(&format!("A\nGET /n/{i} ")), "{}", text(&response));
        }
        // HEAD: no body, but the upstream's Content-Length, on the same connection.
        let request = ClientRequest::get(addr, "/same").method(Method::Head);
        let response = get(&mut reactor, &client, request).expect("head");
        assert_eq!(response.head.status, 200);
        assert!(response.body.is_empty());
        let length = response.head.headers.get_str("content-length").expect("a length");
        assert!(length.parse::<usize>().expect("a number") > 100, "{length}");
        assert_eq!(log.conns.borrow().len(), 1, "one upstream connection for every request");
        assert_eq!(client.stats().connections_opened, 1);
    }

    /// Upstream servers by name: `http://localhost:P` (the system resolver) and
    /// `backend.test:P` (a fake resolver on the proxy's core). Names are kept in the
    /// configuration and looked up when the proxy opens a connection, not at load.
    fn upstream_servers_by_name(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let port = up.port();
        let fake = ringwork::testing::FakeResolver::new();
        fake.set("backend.test", &[], &["127.0.0.1".parse().unwrap()]);
        reactor.set_name_resolver(Rc::new(fake.clone()));
        let config = format!(
            "listen = [\"tcp:0\"]\n[upstreams.named]\nservers = [\"backend.test:{port}\"]\n\n[[routes]]\nupstream = \"named\"\n"
        );
        let addr = proxy(&mut reactor, &config);
        assert!(fake.lookups().is_empty(), "nothing looked up at load");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..3 {
            let response = get(&mut reactor, &client, ClientRequest::get(addr, format!("/n/{i}"))).expect("response");
            assert_eq!(response.head.status, 200, "{}", text(&response));
            assert!(text(&response).starts_with("A\n"), "{}", text(&response));
        }
        assert_eq!(log.conns.borrow().len(), 1, "the name's connection is reused");
        assert_eq!(fake.lookups().len(), 2, "one lookup (both families) for one connection");
        fake.set("backend.test", &[], &[]);
        // A name without addresses now: the pooled connection still serves...
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/again")).expect("response");
        assert_eq!(response.head.status, 200);

        let (up_b, _log_b) = upstream(&mut reactor, "B");
        let config = format!(
            "listen = [\"tcp:0\"]\n[upstreams.local]\nservers = [\"http://localhost:{}\"]\n\n[[routes]]\nupstream = \"local\"\n",
            up_b.port()
        );
        reactor.set_name_resolver(Rc::new(ringwork::names::SystemResolver::new(reactor.thread_pool().clone())));
        let addr = proxy(&mut reactor, &config);
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/local")).expect("response");
        assert!(text(&response).starts_with("B\n"), "{}", text(&response));

        // ...while a new proxy (no pooled connection) finds no address: 502.
        reactor.set_name_resolver(Rc::new(fake.clone()));
        let config = format!(
            "listen = [\"tcp:0\"]\n[upstreams.named]\nservers = [\"backend.test:{port}\"]\n\n[[routes]]\nupstream = \"named\"\n"
        );
        let addr = proxy(&mut reactor, &config);
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/gone")).expect("response");
        assert_eq!(response.head.status, 502);
    }

    fn routing_by_host_and_prefix(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (a, _) = upstream(&mut reactor, "A");
        let (b, _) = upstream(&mut reactor, "B");
        let (c, c_log) = upstream(&mut reactor, "C");
        let config = format!(
            r#"listen = ["tcp:0"]
[upstreams.a]
servers = ["{a}"]
[upstreams.b]
servers = ["{b}"]
[upstreams.c]
servers = ["{c}"]

[[routes]]
upstream = "a"

[[routes]]
path = "/api/"
upstream = "b"

[[routes]]
host = "*.c.test"
upstream = "c"

[[routes]]
host = "x.c.test"
path = "/api/v2/"
upstream = "b"
host_rewrite = "internal.b"
strip_prefix = true
"#
        );
        let addr = proxy(&mut reactor, &config);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let cases = [
            ("other.test", "/", "A"),
            ("other.test", "/api/x", "B"),
            ("y.c.test", "/api/x", "C"),
            ("Y.C.TEST:8080", "/", "C"),
            ("c.test", "/", "A"),
            ("x.c.test", "/api/v2/users?id=1", "B"),
        ];
        for (host, path, expected) in cases {
            let request = ClientRequest::get(addr, path.to_owned()).authority(host.to_owned());
            let response = get(&mut reactor, &client, request).expect("response");
            let body = text(&response);
            assert!(body.starts_with(&format!("{expected}\n")), "{host}{path}: {body}");
        }
        // The last route rewrote Host and stripped its prefix.
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/api/v2/users?id=1").authority("x.c.test")).expect("response");
        let body = text(&response);
        assert!(body.contains("GET /users?id=1 "), "{body}");
        assert!(body.contains("Host: internal.b\r\n"), "{body}");
        assert!(body.contains("X-Forwarded-Host: x.c.test\r\n"), "{body}");
        // Host is preserved by default.
        let heads = c_log.heads.borrow();
        assert!(heads[0].contains("Host: y.c.test\r\n"), "{}", heads[0]);
    }

    fn chunked_response_streams_while_upstream_is_sending(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let (released, release) = Deferred::new();
        *log.release.borrow_mut() = Some(released);
        let release: Rc<RefCell<Option<Resolver<()>>>> = Rc::new(RefCell::new(Some(release)));
        let received = Rc::new(Cell::new(0usize));
        let early = Rc::new(Cell::new(false));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let (seen, signal, first) = (Rc::clone(&received), Rc::clone(&release), Rc::clone(&early));
        let future = client.request_streaming(ClientRequest::get(addr, "/stream"), move |chunk| {
            seen.set(seen.get() + chunk.len());
            // The first part arrived while the upstream still holds the rest back: only
            // then let it finish. A proxy that buffered the body would never get here.
            if seen.get() >= FIRST
                && let Some(release) = signal.borrow_mut().take()
            {
                first.set(true);
                release.resolve(());
            }
        });
        let (head, _trailers) = block_on(&mut reactor, future).expect("streamed response");
        assert_eq!(head.status, 200);
        assert!(early.get(), "the first part arrived before the upstream finished");
        assert_eq!(received.get(), FIRST + REST);
        // Re-framed: the upstream sent chunked, the proxy's answer is chunked too.
        assert_eq!(head.headers.get_str("transfer-encoding"), Some("chunked"));
        assert_eq!(head.headers.get_str("x-upstream"), Some("A"));
    }

    fn slow_client_holds_the_upstream_back(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let mut config = ClientConfig::default();
        config.limits.max_body = u64::MAX;
        let client = HttpClient::new(reactor.handle(), config);
        let conn = Rc::new(Cell::new(None));
        let received = Rc::new(Cell::new(0));
        let resume = Rc::new(RefCell::new(None));
        let sink = PausingSink {
            conn: Rc::clone(&conn),
            received: Rc::clone(&received),
            abort: false,
            resume: Rc::clone(&resume),
        };
        let done = Rc::new(Cell::new(false));
        let finished = Rc::clone(&done);
        let exchange = client.request_with(ClientRequest::get(addr, "/big"), sink);
        reactor.spawn_local(async move {
            exchange.await.expect("the whole response");
            finished.set(true);
        });
        assert!(reactor.run_until(LIMIT, |_| conn.get().is_some()).expect("turn"), "first slice");
        // The client reads nothing more. The upstream must stop well short of the end, and
        // stay stopped: wait until 300 ms pass without progress (as tests/http_server.rs
        // does for the server alone).
        let mut written = log.big_written.get();
        loop {
            let progressed = reactor
                .run_until(Duration::from_millis(300), |_| log.big_written.get() != written)
                .expect("turn");
            if !progressed {
                break;
            }
            written = log.big_written.get();
            assert!(!log.big_done.get(), "64 MiB went through to a client not reading");
        }
        // Socket buffers of two hops plus the proxy's write buffer, not the whole body.
        assert!(written < BIG / 2, "{written} bytes written before the client read");
        let resolver: Resolver<bool> = resume.borrow_mut().take().expect("paused at the first slice");
        resolver.resolve(true);
        assert!(reactor.run_until(LIMIT, |_| done.get()).expect("turn"), "the rest arrives");
        assert_eq!(received.get(), BIG);
        assert!(log.big_done.get());
    }

    fn client_gone_mid_response_aborts_the_upstream(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let mut config = ClientConfig::default();
        config.limits.max_body = u64::MAX;
        let client = HttpClient::new(reactor.handle(), config);
        let sink = PausingSink {
            conn: Rc::new(Cell::new(None)),
            received: Rc::new(Cell::new(0)),
            abort: true,
            resume: Rc::new(RefCell::new(None)),
        };
        let result = block_on(&mut reactor, client.request_with(ClientRequest::get(addr, "/big"), sink));
        assert!(matches!(result, Err(ClientError::Closed)), "abandoned");
        // The proxy stops reading the upstream and drops its connection: the upstream's
        // writer sees it gone long before 64 MiB.
        assert!(reactor.run_until(LIMIT, |_| log.big_aborted.get()).expect("turn"), "upstream aborted");
        assert!(!log.big_done.get());
    }

    fn upstream_gone_mid_body_truncates_the_response(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        // Announces 100 bytes, sends 3, closes.
        struct Short;
        impl Protocol for Short {
            fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
                ctx.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
                ctx.close();
            }
        }
        let up = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), || Short).expect("listen");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        // The head (200) went out already: the client sees the body cut short, not a 502.
        match get(&mut reactor, &client, ClientRequest::get(addr, "/")) {
            Err(ClientError::Closed) => {}
            other => panic!("expected a truncated response, got {other:?}"),
        }
    }

    fn request_bodies_stream_upstream(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let total = 6 << 20;
        for (length, expected) in [(None, "chunked"), (Some(total as u64), "sized")] {
            let body = StreamBody::new(Pattern { sent: 0, total, piece: 50_000 }, length);
            let request = ClientRequest::get(addr, "/upload").method(Method::Post).body_stream(body);
            let response = get(&mut reactor, &client, request).expect("upload");
            assert_eq!(response.head.status, 200);
            assert_eq!(text(&response), format!("{expected} {total} true"));
        }
        // Both uploads and the connection to the upstream were reused.
        assert_eq!(log.conns.borrow().len(), 1);
        // A request body larger than max_body is refused by the proxy's server (413).
        let small = simple(&[up], "").replace("64MiB", "1MiB");
        let addr = proxy(&mut reactor, &small);
        let body = StreamBody::new(Pattern { sent: 0, total: 2 << 20, piece: 65536 }, Some(2 << 20));
        let request = ClientRequest::get(addr, "/upload").method(Method::Put).body_stream(body);
        match get(&mut reactor, &client, request) {
            Ok(response) => assert_eq!(response.head.status, 413),
            // The proxy may close while the upload is still being written.
            Err(ClientError::Closed | ClientError::RequestBody(_)) => {}
            Err(error) => panic!("{error}"),
        }
    }

    fn refused_upstream_is_502_and_skipped(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let dead = refused_port();
        let addr = proxy(&mut reactor, &simple(&[dead], ""));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/")).expect("response");
        assert_eq!(response.head.status, 502);

        // A pool with a dead and a live server: requests without a body go to the live one,
        // and the dead one is skipped afterwards (its back-off).
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[dead, up], ""));
        for _ in 0..4 {
            let response = get(&mut reactor, &client, ClientRequest::get(addr, "/")).expect("response");
            assert_eq!(response.head.status, 200);
        }
        assert_eq!(log.heads.borrow().len(), 4);
    }

    fn silent_upstream_is_504(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], "[timeouts]\nresponse_head = \"300ms\"\n"));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/hang")).expect("response");
        assert_eq!(response.head.status, 504);
        assert_eq!(log.hung.borrow().len(), 1);
    }

    fn malformed_upstream_response_is_502(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        // An upstream that answers with both Content-Length and Transfer-Encoding.
        struct Bad;
        impl Protocol for Bad {
            fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
                ctx.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
            }
        }
        let up = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), || Bad).expect("listen");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/")).expect("response");
        assert_eq!(response.head.status, 502);
    }

    fn header_rewriting(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let request = ClientRequest::get(addr, "/h")
            .authority("app.test")
            .header("X-Forwarded-For", "203.0.113.9")
            .header("Connection", "X-Secret")
            .header("X-Secret", "do not forward")
            .header("Keep-Alive", "timeout=9")
            .header("TE", "trailers")
            .header("Upgrade", "websocket")
            .header("Proxy-Authorization", "Basic eDp5")
            .header("X-Kept", "1");
        let response = get(&mut reactor, &client, request).expect("response");
        assert_eq!(response.head.status, 200);
        let seen = log.heads.borrow()[0].to_ascii_lowercase();
        assert!(seen.contains("host: app.test\r\n"), "{seen}");
        assert!(seen.contains("x-forwarded-for: 203.0.113.9, 127.0.0.1\r\n"), "{seen}");
        assert!(seen.contains("x-forwarded-proto: http\r\n"), "{seen}");
        assert!(seen.contains("x-forwarded-host: app.test\r\n"), "{seen}");
        assert!(seen.contains("forwarded: for=127.0.0.1;proto=http;host=app.test\r\n"), "{seen}");
        assert!(seen.contains("x-kept: 1\r\n"), "{seen}");
        assert!(seen.contains("via: 1.1 ringwork\r\n"), "{seen}");
        for gone in ["x-secret", "keep-alive", "te:", "upgrade", "proxy-authorization"] {
            assert!(!seen.contains(gone), "{gone} forwarded: {seen}");
        }
        // The client's connection option is not the upstream's: the proxy's own
        // connection management only (keep-alive by default, no Connection field).
        assert!(!seen.contains("connection:"), "{seen}");
        // Response side: the upstream's hop-by-hop fields are stripped too (a raw upstream:
        // ringwork's server would not let a handler send its own Connection field).
        struct HopUp;
        impl Protocol for HopUp {
            fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
                ctx.write(b"HTTP/1.1 200 OK\r\nConnection: X-Up-Secret\r\nX-Up-Secret: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-Up-Kept: 1\r\nContent-Length: 2\r\n\r\nok");
            }
        }
        let up = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), || HopUp).expect("listen");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let response = get(&mut reactor, &client, ClientRequest::get(addr, "/")).expect("response");
        assert_eq!(text(&response), "ok");
        let headers = &response.head.headers;
        assert_eq!(headers.get_str("x-up-kept"), Some("1"));
        for gone in ["x-up-secret", "keep-alive", "proxy-authenticate"] {
            assert!(!headers.contains(gone), "{gone} in {headers:?}");
        }
    }

    fn smuggling_attempt_is_rejected_and_not_forwarded(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(&mut reactor, &simple(&[up], ""));
        let attack = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
        let reply = raw_exchange(&mut reactor, addr, attack);
        assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        assert_eq!(reply.matches("HTTP/1.1").count(), 1, "one reply, then close: {reply}");
        // A bad chunk size in a streamed body: 400 as well.
        let bad_chunk = b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n";
        let reply = raw_exchange(&mut reactor, addr, bad_chunk);
        assert!(reply.starts_with("HTTP/1.1 400 "), "{reply}");
        assert!(log.heads.borrow().iter().all(|h| !h.contains("/smuggled")));
        assert!(log.heads.borrow().iter().all(|h| !h.starts_with("POST / ")), "{:?}", log.heads.borrow());
    }

    /// A pipelined client whose second response arrives first (its slot is not at the
    /// front yet, so the proxy waits for the client to "drain"), then closes: the upstream
    /// connection of that second response is back in the pool by then, serving another
    /// client, and must not be aborted on the first client's behalf (it was: the other
    /// client got a 502 with no log line).
    fn a_closing_pipelined_client_leaves_the_reused_upstream_alone(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let config = ProxyConfig::from_toml(&simple(&[up], "")).expect("valid config");
        let proxy = ReverseProxy::new(reactor.handle(), &config);
        let server = HttpServer::new(proxy.clone(), server_config(&config));
        let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server).expect("listen");

        // Client A pipelines a request the upstream holds and one it answers at once.
        let got = Rc::new(RefCell::new(Vec::new()));
        let a_done = Rc::new(Cell::new(false));
        let a = RawClient {
            request: b"GET /hang HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(),
            got: Rc::clone(&got),
            done: Rc::clone(&a_done),
        };
        let a = reactor.connect(&addr.into(), a, ConnectOptions::default()).expect("connect");
        // `/fast` was answered and its upstream connection went back to the pool.
        let pooled = reactor.run_until(LIMIT, |_| proxy.client().idle_connections(up) == 1).expect("turn");
        assert!(pooled, "the /fast connection was not pooled");

        // Client B's request reuses that connection; the upstream holds it too. A POST
        // with a body: the proxy never retries it.
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let result = Rc::new(RefCell::new(None));
        let slot = Rc::clone(&result);
        let request = ClientRequest::get(addr, "/hang").method(Method::Post).body("data");
        let request = client.request(request);
        reactor.spawn_local(async move { *slot.borrow_mut() = Some(request.await) });
        let held = reactor.run_until(LIMIT, |_| log.hung.borrow().len() == 2).expect("turn");
        assert!(held, "B's request did not reach the upstream");
        assert_eq!(proxy.client().stats().reused, 1, "B's request reused /fast's connection");

        // A goes away; once the proxy has seen it (both ends of A gone), B's answer comes.
        let before = reactor.connections();
        reactor.with_conn(a, |ctx| ctx.abort());
        let gone = reactor.run_until(LIMIT, |r| r.connections() + 2 <= before).expect("turn");
        assert!(gone, "the proxy did not notice A closing");
        let b_responder = log.hung.borrow_mut().pop().expect("B's request");
        b_responder.send(Response::text("held"));
        let answered = reactor.run_until(LIMIT, |_| result.borrow().is_some()).expect("turn");
        assert!(answered, "B got no answer");
        let response = result.borrow_mut().take().expect("checked").expect("B's response");
        assert_eq!(response.head.status, 200, "B: {}", text(&response));
        assert_eq!(text(&response), "held");
    }

    /// The keep-alive race: the upstream closes a pooled connection just as the next
    /// request goes out on it (here: it reads the request and closes without a byte). A
    /// request without a body is sent again on a new connection and the client gets 200;
    /// a request whose body streamed from the client is not replayed (the upstream may
    /// have started on it) and gets a 502.
    fn a_request_racing_into_a_closing_upstream_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        /// Answers the first request of each connection, then closes on the next one.
        struct OneShot {
            answered: bool,
        }
        impl Protocol for OneShot {
            fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
                if self.answered {
                    ctx.close();
                } else if data.windows(4).any(|w| w == b"\r\n\r\n") {
                    self.answered = true;
                    ctx.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                }
            }
        }
        let up = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), || OneShot { answered: false })
            .expect("listen");
        let config = ProxyConfig::from_toml(&simple(&[up], "")).expect("valid config");
        let proxy = ReverseProxy::new(reactor.handle(), &config);
        let server = HttpServer::new(proxy.clone(), server_config(&config));
        let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server).expect("listen");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..3 {
            let response = get(&mut reactor, &client, ClientRequest::get(addr, "/")).expect("response");
            assert_eq!((response.head.status, text(&response).as_str()), (200, "ok"), "GET {i}");
        }
        let stats = proxy.client().stats();
        assert!(stats.retries >= 2, "the GETs after the first were retried: {stats:?}");

        let request = ClientRequest::get(addr, "/").method(Method::Post).body("data");
        let response = get(&mut reactor, &client, request).expect("response");
        assert_eq!(response.head.status, 502, "{}", text(&response));
    }
}

/// An upstream that says which HTTP version it was asked in, echoes the body and ends with
/// a trailer, as a gRPC server does.
fn grpc_like(request: Request, respond: Responder) {
    let version = format!("{:?}", request.version());
    let te = request
        .headers()
        .get("te")
        .map(<[u8]>::to_vec)
        .unwrap_or_default();
    let body = request.body().clone();
    let mut writer = respond.stream(
        Response::new(200)
            .header("x-version", version)
            .header("x-te", te),
    );
    writer.write(body);
    let mut trailers = Headers::new();
    trailers.append("grpc-status", "0");
    writer.finish_with_trailers(trailers);
}

ringwork::platform::test_all_backends! {
    /// `http2 = true` on a pool: the proxy speaks HTTP/2 (h2c) to its servers, the request
    /// body streams up, the response and its trailers come back to an HTTP/1.1 client.
    fn an_http2_pool_reaches_its_servers_over_h2c_with_trailers(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let upstream = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), HttpServer::new(grpc_like, ServerConfig::default()))
            .expect("listen");
        let config = format!(
            "listen = [\"tcp:0\"]\n[upstreams.main]\nservers = [\"{upstream}\"]\nhttp2 = true\n\n[[routes]]\nupstream = \"main\"\n"
        );
        let addr = proxy(&mut reactor, &config);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..3 {
            let body = vec![b'p'; 100_000 + i];
            let request = ClientRequest::new(Method::Post, addr, "/svc/Method").body(body.clone());
            let response = get(&mut reactor, &client, request).expect("proxied");
            assert_eq!(response.head.status, 200);
            assert_eq!(response.head.headers.get("x-version"), Some(&b"Http2"[..]));
            assert!(response.body == body, "{} bytes back", response.body.len());
            let trailers = response.trailers.expect("trailers passed through");
            assert_eq!(trailers.get("grpc-status"), Some(&b"0"[..]));
        }
        // HTTP/2 from the client too, as gRPC: a body without Content-Length and
        // `te: trailers`, which an HTTP/2 pool passes on.
        let request = ClientRequest::new(Method::Post, addr, "/svc/Method")
            .header("te", "trailers")
            .body(vec![b'g'; 70_000])
            .over_http2(true);
        let response = get(&mut reactor, &client, request).expect("proxied over h2 both ways");
        assert_eq!(response.head.headers.get("x-version"), Some(&b"Http2"[..]));
        assert_eq!(response.head.headers.get("x-te"), Some(&b"trailers"[..]));
        assert_eq!(response.body.len(), 70_000);
        assert_eq!(response.trailers.and_then(|t| t.get("grpc-status").map(<[u8]>::to_vec)), Some(b"0".to_vec()));
    }
}

ringwork::platform::test_all_backends! {
    /// An upgrade request goes upstream with `Connection: Upgrade`, its `Upgrade` and its
    /// `Sec-WebSocket-*` fields (and the proxy's own fields); the upstream's 200 comes back
    /// as a normal response; an unreachable pool is 502 and a silent one 504; after each,
    /// the client's connection goes on as HTTP (a pipelined request is answered).
    fn websocket_upgrade_head_and_failures(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let upgrade = |path: &str| {
            format!(
                "GET {path} HTTP/1.1\r\nHost: app.test\r\nConnection: keep-alive, Upgrade\r\n\
                 Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: chat\r\n\r\n\
                 GET /after HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"
            )
        };
        let (up, log) = upstream(&mut reactor, "A");
        let addr = proxy(
            &mut reactor,
            &simple(&[up], "[timeouts]\nresponse_head = \"300ms\"\n"),
        );
        let reply = raw_exchange(&mut reactor, addr, upgrade("/h").as_bytes());
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert_eq!(reply.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{reply}");
        let seen = log.heads.borrow()[0].to_ascii_lowercase();
        for field in [
            "connection: upgrade\r\n",
            "upgrade: websocket\r\n",
            "sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n",
            "sec-websocket-version: 13\r\n",
            "sec-websocket-protocol: chat\r\n",
            "x-forwarded-for: 127.0.0.1\r\n",
            "via: 1.1 ringwork\r\n",
        ] {
            assert!(seen.contains(field), "{field:?} missing: {seen}");
        }
        assert!(!seen.contains("keep-alive"), "{seen}");

        let reply = raw_exchange(&mut reactor, addr, upgrade("/hang").as_bytes());
        assert!(reply.starts_with("HTTP/1.1 504 "), "{reply}");
        assert!(reply.contains("HTTP/1.1 200 OK\r\n"), "{reply}");

        let dead = proxy(&mut reactor, &simple(&[refused_port()], ""));
        let reply = raw_exchange(&mut reactor, dead, upgrade("/").as_bytes());
        assert!(reply.starts_with("HTTP/1.1 502 "), "{reply}");
        assert_eq!(reply.matches("HTTP/1.1 502 ").count(), 2, "{reply}");
    }

    /// A WebSocket through the proxy to ringwork's echo: a 4 MiB message comes back whole,
    /// and the tunnel (the TCP proxy's relay) spliced at least one direction, as the TCP
    /// proxy splices bulk transfers.
    fn websocket_tunnel_splices_bulk(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let echo = reactor
            .listen_tcp(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                ws_echo_server(ServerConfig::default(), WsConfig::default()),
            )
            .expect("listen");
        let config = ProxyConfig::from_toml(&simple(&[echo], "")).expect("valid config");
        let proxy = ReverseProxy::new(reactor.handle(), &config);
        let tunnels = proxy.tunnels().clone();
        let addr = reactor
            .listen_tcp(
                SocketAddr::from(([127, 0, 0, 1], 0)),
                HttpServer::new(proxy, server_config(&config)),
            )
            .expect("listen");
        let handle = reactor.handle();
        let url = format!("ws://{addr}/");
        let big: Vec<u8> = (0..4 << 20).map(|i| (i % 251) as u8).collect();
        let sent = Bytes::from(big);
        let expected = sent.clone();
        let echoed = block_on(&mut reactor, async move {
            let client = connect(&handle, &url, WsClientOptions::default())
                .await
                .expect("handshake through the proxy");
            client.send(Message::Binary(sent)).expect("send");
            let echoed = client.recv().await;
            let _ = client.close(CloseCode::NORMAL, "done");
            while client.recv().await.is_some() {}
            echoed
        });
        let echoed = echoed.expect("the echo");
        assert!(echoed.as_bytes() == &expected, "the echo differs");
        let stats = tunnels.snapshot();
        assert_eq!(stats.total, 1, "{stats:?}");
        assert!(stats.spliced_directions >= 1, "{stats:?}");
    }
}

/// A reactor on `backend` whose clock moves only when the test says so.
fn manual_reactor(backend: BackendChoice) -> Option<(Reactor, ringwork::ManualClock)> {
    ringwork::platform::testing::driver(backend, ringwork::DriverConfig::default())?;
    let clock = ringwork::ManualClock::new();
    let config = ringwork::ReactorConfig {
        clock: ringwork::Clock::Manual(clock.clone()),
        ..ringwork::ReactorConfig::default()
    };
    let driver = ringwork::DriverConfig {
        backend,
        ..ringwork::DriverConfig::default()
    };
    Some((
        Reactor::new(config, driver).expect("create a reactor"),
        clock,
    ))
}

ringwork::platform::test_all_backends! {
    /// A route with `rate_limit = 2` and `rate_burst = 3`: its burst reaches the upstream,
    /// the next request is 429 with `Retry-After: 1` and never reaches it; a token is back
    /// after 1/rate s of the (manual) clock, and never more than the burst. Another route
    /// of the same pool is not limited; a reload builds new (full) buckets.
    fn a_route_rate_limit_answers_429_before_the_upstream(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let (up, log) = upstream(&mut reactor, "A");
        let config_text = format!(
            "listen = [\"tcp:0\"]\n[upstreams.main]\nservers = [\"{up}\"]\n\n\
             [[routes]]\npath = \"/limited\"\nupstream = \"main\"\nrate_limit = 2\nrate_burst = 3\n\n\
             [[routes]]\nupstream = \"main\"\n"
        );
        let config = ProxyConfig::from_toml(&config_text).expect("valid config");
        let proxy = ReverseProxy::new(reactor.handle(), &config);
        let server = HttpServer::new(proxy.clone(), server_config(&config));
        let addr = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
            .expect("listen");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let send = |reactor: &mut Reactor, path: &'static str| {
            let response = get(reactor, &client, ClientRequest::get(addr, path)).expect("response");
            let retry = response.head.headers.get_str("retry-after").map(str::to_owned);
            (response.head.status, retry)
        };
        let ok = (200, None);
        let wait = (429, Some("1".to_owned()));
        let upstream_requests = |log: &Log| log.heads.borrow().len();
        for _ in 0..3 {
            assert_eq!(send(&mut reactor, "/limited/a"), ok);
        }
        assert_eq!(upstream_requests(&log), 3);
        assert_eq!(send(&mut reactor, "/limited/b"), wait);
        assert_eq!(upstream_requests(&log), 3, "a 429 never reaches the upstream");
        // The other route is not limited.
        for _ in 0..10 {
            assert_eq!(send(&mut reactor, "/other"), ok);
        }
        // 0.4 s: 0.8 of a token, still 429; 0.1 s more: one token, then 429 again.
        clock.advance(Duration::from_millis(400));
        assert_eq!(send(&mut reactor, "/limited"), wait);
        clock.advance(Duration::from_millis(100));
        assert_eq!(send(&mut reactor, "/limited"), ok);
        assert_eq!(send(&mut reactor, "/limited"), wait);
        // 10 s: 20 tokens' worth, but the bucket holds 3.
        clock.advance(Duration::from_secs(10));
        for _ in 0..3 {
            assert_eq!(send(&mut reactor, "/limited"), ok);
        }
        assert_eq!(send(&mut reactor, "/limited"), wait);
        // A reload (the file parsed again): new tables, new buckets (full again).
        let reloaded = ProxyConfig::from_toml(&config_text).expect("valid config");
        proxy.reload(&reloaded);
        for _ in 0..3 {
            assert_eq!(send(&mut reactor, "/limited"), ok);
        }
        assert_eq!(send(&mut reactor, "/limited"), wait);
        assert_eq!(upstream_requests(&log), 3 + 10 + 1 + 3 + 3);
    }
}
