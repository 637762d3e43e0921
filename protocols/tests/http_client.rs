//! The HTTP/1.1 client on both backends: against raw in-process servers that answer canned
//! bytes (framing, interim responses, keep-alive, retries, timeouts, errors), against
//! ringwork's own server, Python's `http.server`, and against nginx when it is installed.
//!
//! Nothing sleeps: a test turns the reactor until its future resolved (bounded by
//! [`LIMIT`]); external servers are waited for by reading their output or exit status.
#![cfg(feature = "engine")]

mod nginx_peer;
mod reactor_support;

use std::cell::{Cell, RefCell};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::Duration;

use nginx_peer::Nginx;
use reactor_support::{LIMIT, block_on, reactor};
use ringwork::platform::BackendChoice;
use ringwork::{Bytes, Context, Protocol, Reactor};
use ringwork_protocols::http::client::{
    BodySource, ClientConfig, ClientError, ClientRequest, ClientResponse, Flow, HttpClient,
    NextChunk, ResponseSink, StreamBody,
};
use ringwork_protocols::http::proto::RequestHead;
use ringwork_protocols::http::proto::{H1Error, H1Limits, Headers, Method, ResponseHead};
use ringwork_protocols::http::server::{
    BodyError, Handler, HttpServer, Request, Responder, Response, ServerConfig,
};

/// What the raw server does with one request.
struct Reply {
    bytes: Vec<u8>,
    then: Then,
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Then {
    /// Keep the connection open for the next request.
    Keep,
    /// Close after writing.
    Close,
    /// Write nothing more and never answer (for timeouts).
    Hang,
}

fn reply(bytes: &str, then: Then) -> Reply {
    Reply {
        bytes: bytes.as_bytes().to_vec(),
        then,
    }
}

/// A request the raw server saw.
#[derive(Clone, Debug)]
struct Seen {
    /// Connection number (0 = first accepted).
    conn: usize,
    /// Request number on that connection.
    nth: usize,
    /// The head, as text.
    head: String,
    body: Vec<u8>,
}

type Script = Rc<dyn Fn(&Seen) -> Reply>;

/// Shared between the raw server's connections and the test.
#[derive(Default)]
struct ServerLog {
    accepted: Cell<usize>,
    requests: RefCell<Vec<Seen>>,
}

/// A server connection: reads requests (head + Content-Length body), answers by script.
struct Raw {
    conn: usize,
    nth: usize,
    buf: Vec<u8>,
    log: Rc<ServerLog>,
    script: Script,
    hung: bool,
}

impl Protocol for Raw {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.buf.extend_from_slice(data);
        while !self.hung {
            let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            let head = String::from_utf8_lossy(&self.buf[..end + 4]).into_owned();
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if self.buf.len() < end + 4 + length {
                return;
            }
            let body = self.buf[end + 4..end + 4 + length].to_vec();
            self.buf.drain(..end + 4 + length);
            let seen = Seen {
                conn: self.conn,
                nth: self.nth,
                head,
                body,
            };
            self.nth += 1;
            let reply = (self.script)(&seen);
            self.log.requests.borrow_mut().push(seen);
            ctx.write(&reply.bytes);
            match reply.then {
                Then::Keep => {}
                Then::Close => {
                    ctx.close();
                    return;
                }
                Then::Hang => self.hung = true,
            }
        }
    }
}

/// Listens on a free loopback port with a raw server following `script`.
fn serve(
    reactor: &mut Reactor,
    script: impl Fn(&Seen) -> Reply + 'static,
) -> (SocketAddr, Rc<ServerLog>) {
    let log = Rc::new(ServerLog::default());
    let script: Script = Rc::new(script);
    let server_log = Rc::clone(&log);
    let addr = reactor
        .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), move || {
            let conn = server_log.accepted.get();
            server_log.accepted.set(conn + 1);
            Raw {
                conn,
                nth: 0,
                buf: Vec::new(),
                log: Rc::clone(&server_log),
                script: Rc::clone(&script),
                hung: false,
            }
        })
        .expect("listen");
    (addr, log)
}

/// A client with `config` and one request to `path`, run to completion.
fn get(
    reactor: &mut Reactor,
    client: &HttpClient,
    addr: SocketAddr,
    path: &str,
) -> Result<ClientResponse, ClientError> {
    let future = client.request(ClientRequest::get(addr, path.to_owned()));
    block_on(reactor, future)
}

fn text(response: &ClientResponse) -> &str {
    std::str::from_utf8(&response.body).expect("utf-8 body")
}

const HELLO: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

/// A streamed request body: `total` bytes of a repeating pattern in `piece`-byte pieces,
/// failing instead of yielding the piece that starts at `fail_at`.
struct Pattern {
    sent: usize,
    total: usize,
    piece: usize,
    fail_at: Option<usize>,
}

impl Pattern {
    fn new(total: usize, piece: usize) -> Self {
        Self {
            sent: 0,
            total,
            piece,
            fail_at: None,
        }
    }
}

impl BodySource for Pattern {
    fn next_chunk(&mut self) -> NextChunk<'_> {
        let next = if self.fail_at.is_some_and(|at| self.sent >= at) {
            Some(Err(BodyError::Closed))
        } else if self.sent == self.total {
            None
        } else {
            let n = self.piece.min(self.total - self.sent);
            let bytes: Vec<u8> = (self.sent..self.sent + n)
                .map(|i| (i % 251) as u8)
                .collect();
            self.sent += n;
            Some(Ok(bytes.into()))
        };
        Box::pin(std::future::ready(next))
    }
}

/// A ringwork server handler that streams the request body and answers with its framing,
/// length and whether every byte matched [`Pattern`].
struct CountBody;

impl Handler for CountBody {
    fn stream_body(&self, _head: &RequestHead) -> bool {
        true
    }

    fn handle(&self, mut request: Request, respond: Responder) {
        let framing = if request.headers().contains("transfer-encoding") {
            "chunked"
        } else {
            "sized"
        };
        let Some(mut body) = request.take_body_stream() else {
            respond.send(Response::text("empty"));
            return;
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
            respond.send(Response::text(format!("{framing} {len} {ok}")));
        });
    }
}

ringwork::platform::test_all_backends! {
    fn sized_body_and_request_head(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, addr, "/a?b=c").expect("response");
        assert_eq!(response.head.status, 200);
        assert_eq!(text(&response), "hello");
        assert!(response.trailers.is_none());
        let seen = log.requests.borrow()[0].clone();
        assert!(seen.head.starts_with("GET /a?b=c HTTP/1.1\r\n"), "{}", seen.head);
        assert!(seen.head.contains(&format!("Host: {addr}\r\n")), "{}", seen.head);
        assert!(seen.head.contains("User-Agent: ringwork/"), "{}", seen.head);
        assert!(!seen.head.to_ascii_lowercase().contains("content-length"), "{}", seen.head);
    }

    fn post_body_is_sent_with_content_length(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let request = ClientRequest::get(addr, "/upload")
            .method(Method::Post)
            .header("X-Test", "1")
            .header("Content-Length", "999")
            .body("payload");
        block_on(&mut reactor, client.request(request)).expect("response");
        let seen = log.requests.borrow()[0].clone();
        assert!(seen.head.starts_with("POST /upload HTTP/1.1\r\n"), "{}", seen.head);
        assert!(seen.head.contains("Content-Length: 7\r\n"), "{}", seen.head);
        assert!(!seen.head.contains("999"), "caller's Content-Length dropped: {}", seen.head);
        assert!(seen.head.contains("X-Test: 1\r\n"), "{}", seen.head);
        assert_eq!(seen.body, b"payload");
    }

    fn chunked_with_trailers(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| {
            reply(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
                Then::Keep,
            )
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for _ in 0..2 {
            let response = get(&mut reactor, &client, addr, "/").expect("response");
            assert_eq!(text(&response), "hello world");
            let trailers = response.trailers.expect("trailers");
            assert_eq!(trailers.get_str("x-sum"), Some("42"));
        }
        assert_eq!(log.accepted.get(), 1, "a chunked response keeps the connection");
        assert_eq!(client.stats().reused, 1);
    }

    fn close_delimited_body(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| {
            reply("HTTP/1.1 200 OK\r\n\r\nuntil the end", Then::Close)
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for _ in 0..2 {
            let response = get(&mut reactor, &client, addr, "/").expect("response");
            assert_eq!(text(&response), "until the end");
        }
        assert_eq!(log.accepted.get(), 2);
        assert_eq!(client.stats().connections_opened, 2);
        assert_eq!(client.stats().reused, 0);
    }

    fn head_has_no_body(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |seen| {
            if seen.head.starts_with("HEAD") {
                reply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", Then::Keep)
            } else {
                reply(HELLO, Then::Keep)
            }
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let request = ClientRequest::get(addr, "/").method(Method::Head);
        let response = block_on(&mut reactor, client.request(request)).expect("HEAD");
        assert_eq!(response.head.headers.get_str("content-length"), Some("100"));
        assert!(response.body.is_empty());
        // The next response is read correctly on the same connection.
        let response = get(&mut reactor, &client, addr, "/").expect("GET");
        assert_eq!(text(&response), "hello");
        assert_eq!(log.accepted.get(), 1);
    }

    fn no_content_and_not_modified(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |seen| match seen.nth {
            0 => reply("HTTP/1.1 204 No Content\r\n\r\n", Then::Keep),
            1 => reply("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", Then::Keep),
            _ => reply(HELLO, Then::Keep),
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let response = get(&mut reactor, &client, addr, "/").expect("204");
        assert_eq!((response.head.status, response.body.len()), (204, 0));
        let response = get(&mut reactor, &client, addr, "/").expect("304");
        assert_eq!((response.head.status, response.body.len()), (304, 0));
        let response = get(&mut reactor, &client, addr, "/").expect("200");
        assert_eq!(text(&response), "hello");
        assert_eq!(log.accepted.get(), 1);
    }

    fn interim_responses_are_skipped(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| {
            reply(
                "HTTP/1.1 100 Continue\r\n\r\n\
                 HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n\
                 HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
                Then::Keep,
            )
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let request = ClientRequest::get(addr, "/").method(Method::Put).body("data");
        let response = block_on(&mut reactor, client.request(request)).expect("response");
        assert_eq!(response.head.status, 201);
        assert_eq!(text(&response), "ok");
        assert_eq!(log.requests.borrow()[0].body, b"data");
        // The connection is still usable.
        get(&mut reactor, &client, addr, "/").expect("second");
        assert_eq!(log.accepted.get(), 1);
    }

    fn keep_alive_reuses_one_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for _ in 0..10 {
            let response = get(&mut reactor, &client, addr, "/").expect("response");
            assert_eq!(text(&response), "hello");
        }
        let stats = client.stats();
        assert_eq!(stats.connections_opened, 1, "{stats:?}");
        assert_eq!(stats.requests_sent, 10, "{stats:?}");
        assert_eq!(stats.reused, 9, "{stats:?}");
        assert_eq!(log.accepted.get(), 1);
        assert_eq!(client.idle_connections(addr), 1);
    }

    /// Requests to a host name: `localhost` through the system resolver, and a name a
    /// fake resolver maps; each name's connections are pooled and reused, the `Host`
    /// field carries the name, and a name nobody knows fails naming it.
    fn requests_by_host_name_share_a_pool(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let fake = ringwork::testing::FakeResolver::new();
        fake.set("backend.test", &[], &["127.0.0.1".parse().unwrap()]);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let port = addr.port();
        let url = format!("http://localhost:{port}/a");
        for _ in 0..3 {
            let request = ClientRequest::from_url(&url).expect("url");
            let response = block_on(&mut reactor, client.request(request)).expect("response");
            assert_eq!(text(&response), "hello");
        }
        assert_eq!(log.accepted.get(), 1, "one connection for one name");
        assert_eq!(client.idle_connections_to("localhost", port), 1);
        assert_eq!(client.idle_connections_to("LocalHost", port), 1);
        assert!(log.requests.borrow()[0].head.contains(&format!("Host: localhost:{port}")));

        reactor.set_name_resolver(Rc::new(fake.clone()));
        let url = format!("http://backend.test:{port}/b");
        for _ in 0..2 {
            let request = ClientRequest::from_url(&url).expect("url");
            let response = block_on(&mut reactor, client.request(request)).expect("response");
            assert_eq!(text(&response), "hello");
        }
        assert_eq!(log.accepted.get(), 2, "a second name, a second pool");
        assert_eq!(client.idle_connections_to("backend.test", port), 1);
        assert_eq!(fake.lookups().len(), 2, "looked up once (two families) for one connection");

        let request = ClientRequest::from_url(&format!("http://nowhere.test:{port}/")).expect("url");
        let error = block_on(&mut reactor, client.request(request)).expect_err("no such name");
        assert!(matches!(error, ClientError::ConnectHost(_)), "{error:?}");
        assert!(error.to_string().contains("nowhere.test"), "{error}");
    }

    fn graceful_shutdown_closes_idle_connections(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        get(&mut reactor, &client, addr, "/").expect("response");
        assert_eq!(client.idle_connections(addr), 1);
        // A grace period longer than the wait: the idle connection must not hold it up.
        reactor.shutdown(Duration::from_secs(600));
        let closed = reactor.run_until(LIMIT, |r| r.connections() == 0).expect("turn");
        assert!(closed, "idle pooled connections close when the shutdown starts");
        assert_eq!(client.idle_connections(addr), 0);
    }

    fn connection_close_opens_a_new_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| {
            reply(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
                Then::Keep,
            )
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for _ in 0..3 {
            let response = get(&mut reactor, &client, addr, "/").expect("response");
            assert_eq!(text(&response), "hello");
        }
        assert_eq!(client.stats().connections_opened, 3);
        assert_eq!(log.accepted.get(), 3);
        // A request asking for close is not pooled either.
        let request = ClientRequest::get(addr, "/").header("Connection", "close");
        block_on(&mut reactor, client.request(request)).expect("response");
        assert_eq!(client.idle_connections(addr), 0);
    }

    fn idle_connection_closed_by_server_is_dropped(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        // Answers with keep-alive, then closes anyway (an idle timeout on the server).
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Close));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        get(&mut reactor, &client, addr, "/").expect("first");
        let dropped = reactor
            .run_until(LIMIT, |_| client.idle_connections(addr) == 0)
            .expect("turn");
        assert!(dropped, "the closed connection left the pool");
        get(&mut reactor, &client, addr, "/").expect("second");
        let stats = client.stats();
        assert_eq!((stats.connections_opened, stats.retries), (2, 0), "{stats:?}");
        assert_eq!(log.accepted.get(), 2);
    }

    fn reused_connection_failing_is_retried_once(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        // The second request on a connection is met with a close (the race of a server
        // closing an idle connection as a request arrives).
        let (addr, log) = serve(&mut reactor, |seen| {
            if seen.nth == 0 { reply(HELLO, Then::Keep) } else { reply("", Then::Close) }
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        get(&mut reactor, &client, addr, "/").expect("first");
        let response = get(&mut reactor, &client, addr, "/").expect("retried");
        assert_eq!(text(&response), "hello");
        let stats = client.stats();
        assert_eq!(stats.retries, 1, "{stats:?}");
        assert_eq!(stats.connections_opened, 2, "{stats:?}");
        assert_eq!(log.accepted.get(), 2);
        let answered = log.requests.borrow().last().map(|s| (s.conn, s.nth));
        assert_eq!(answered, Some((1, 0)), "the retry went to a new connection");
        // A POST is not idempotent: the same failure is returned, not retried.
        let request = ClientRequest::get(addr, "/").method(Method::Post).body("x");
        let error = block_on(&mut reactor, client.request(request)).expect_err("not retried");
        assert!(matches!(error, ClientError::Closed), "{error:?}");
        assert_eq!(client.stats().retries, 1);
    }

    fn response_timeout(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _log) = serve(&mut reactor, |_| reply("HTTP/1.1 200 OK\r\n", Then::Hang));
        let mut config = ClientConfig::default();
        config.response_timeout = Duration::from_millis(200);
        let client = HttpClient::new(reactor.handle(), config);
        let error = get(&mut reactor, &client, addr, "/").expect_err("timeout");
        assert!(
            matches!(error, ClientError::ResponseTimeout { timeout } if timeout == Duration::from_millis(200)),
            "{error:?}"
        );
        assert_eq!(client.stats().retries, 0);
    }

    fn body_timeout(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _log) = serve(&mut reactor, |_| {
            reply("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", Then::Hang)
        });
        let mut config = ClientConfig::default();
        config.body_timeout = Duration::from_millis(200);
        let client = HttpClient::new(reactor.handle(), config);
        let error = get(&mut reactor, &client, addr, "/").expect_err("timeout");
        assert!(matches!(error, ClientError::BodyTimeout { .. }), "{error:?}");
    }

    fn panicking_sink_frees_its_connection_slot(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let mut config = ClientConfig::default();
        config.max_conns_per_host = 1;
        let client = HttpClient::new(reactor.handle(), config);
        let future = client.request_with(ClientRequest::get(addr, "/"), Panics);
        let error = block_on(&mut reactor, future).expect_err("the sink panicked");
        assert!(matches!(error, ClientError::Closed), "{error:?}");
        // With one slot per host, this only works if the panicked connection freed it.
        let response = get(&mut reactor, &client, addr, "/").expect("response");
        assert_eq!(text(&response), "hello");
        assert_eq!(log.accepted.get(), 2);
    }

    fn connect_refused(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let error = get(&mut reactor, &client, addr, "/").expect_err("refused");
        match error {
            ClientError::Connect { addr: to, source } => {
                assert_eq!(to, addr);
                assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
            }
            other => panic!("expected Connect, got {other:?}"),
        }
    }

    fn malformed_responses_are_protocol_errors(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _log) = serve(&mut reactor, |seen| match seen.head.split(' ').nth(1) {
            Some("/garbage") => reply("HELLO THERE\r\n\r\n", Then::Keep),
            Some("/lengths") => reply(
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                Then::Keep,
            ),
            _ => reply(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                Then::Keep,
            ),
        });
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let error = get(&mut reactor, &client, addr, "/garbage").expect_err("garbage");
        assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
        let error = get(&mut reactor, &client, addr, "/lengths").expect_err("lengths");
        assert!(
            matches!(error, ClientError::Protocol(H1Error::ConflictingContentLength)),
            "{error:?}"
        );
        let error = get(&mut reactor, &client, addr, "/chunk").expect_err("chunk size");
        assert!(matches!(error, ClientError::Protocol(H1Error::BadChunkSize)), "{error:?}");
        assert_eq!(client.idle_connections(addr), 0);
    }

    fn body_too_large(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _log) = serve(&mut reactor, |seen| {
            if seen.head.starts_with("GET /sized") {
                reply("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world", Then::Keep)
            } else {
                reply(
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                     6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
                    Then::Keep,
                )
            }
        });
        let mut config = ClientConfig::default();
        let mut limits = H1Limits::default();
        limits.max_body = 10;
        config.limits = limits;
        let client = HttpClient::new(reactor.handle(), config);
        for path in ["/sized", "/chunked"] {
            let error = get(&mut reactor, &client, addr, path).expect_err("too large");
            assert!(matches!(error, ClientError::BodyTooLarge { limit: 10 }), "{path}: {error:?}");
        }
    }

    fn streaming_delivers_every_byte(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let big: String = (0..200_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{big}", big.len());
        let (addr, _log) = serve(&mut reactor, move |_| reply(&answer, Then::Keep));
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let got = Rc::new(RefCell::new(Vec::new()));
        let pieces = Rc::new(Cell::new(0));
        let (sink, count) = (Rc::clone(&got), Rc::clone(&pieces));
        let future = client.request_streaming(ClientRequest::get(addr, "/big"), move |data| {
            sink.borrow_mut().extend_from_slice(data);
            count.set(count.get() + 1);
        });
        let (head, trailers) = block_on(&mut reactor, future).expect("response");
        assert_eq!(head.status, 200);
        assert!(trailers.is_none());
        assert_eq!(got.borrow().as_slice(), big.as_bytes());
        assert!(pieces.get() > 1, "the body arrived in {} pieces", pieces.get());
    }

    fn requests_queue_at_the_per_host_limit(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, log) = serve(&mut reactor, |_| reply(HELLO, Then::Keep));
        let mut config = ClientConfig::default();
        config.max_conns_per_host = 1;
        let client = HttpClient::new(reactor.handle(), config);
        let results = Rc::new(RefCell::new(Vec::new()));
        for i in 0..5 {
            let future = client.request(ClientRequest::get(addr, format!("/{i}")));
            let results = Rc::clone(&results);
            reactor.spawn_local(async move {
                let response = future.await;
                results.borrow_mut().push(response.map(|r| r.body));
            });
        }
        let done = reactor
            .run_until(LIMIT, |_| results.borrow().len() == 5)
            .expect("turn");
        assert!(done, "five queued requests finished: {}", results.borrow().len());
        assert!(results.borrow().iter().all(|r| r.as_deref().ok() == Some(&b"hello"[..])));
        assert_eq!(log.accepted.get(), 1);
        assert_eq!(client.stats().connections_opened, 1);
        assert_eq!(client.stats().reused, 4);
    }

    fn against_the_ringwork_server(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let server = HttpServer::new(
            |request: Request, respond: Responder| {
                if request.path() == b"/stream" {
                    // No Content-Length: the server sends it chunked, with a trailer.
                    let mut body = respond.stream(Response::new(200));
                    body.write("part one, ");
                    body.write("part two");
                    let mut trailers = Headers::new();
                    trailers.append("X-Done", "yes");
                    body.finish_with_trailers(trailers);
                } else {
                    let mut echo = request.method().as_bytes().to_vec();
                    echo.extend_from_slice(b" ");
                    echo.extend_from_slice(request.body());
                    respond.send(Response::text(echo));
                }
            },
            ServerConfig::default(),
        );
        let addr = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
            .expect("listen");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..10 {
            let request = ClientRequest::get(addr, "/echo")
                .method(Method::Post)
                .body(format!("body {i}"));
            let response = block_on(&mut reactor, client.request(request)).expect("echo");
            assert_eq!(text(&response), format!("POST body {i}"));
            let response = get(&mut reactor, &client, addr, "/stream").expect("stream");
            assert_eq!(text(&response), "part one, part two");
            let trailers = response.trailers.expect("chunked with trailers");
            assert_eq!(trailers.get_str("x-done"), Some("yes"));
        }
        let stats = client.stats();
        assert_eq!(stats.connections_opened, 1, "{stats:?}");
        assert_eq!(stats.reused, 19, "{stats:?}");
    }

    fn streamed_request_bodies(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let mut config = ServerConfig::default();
        config.limits.max_body = 64 << 20;
        let server = HttpServer::new(CountBody, config);
        let addr = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
            .expect("listen");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let total = 6 << 20;
        for (length, expected) in [(None, "chunked"), (Some(total as u64), "sized")] {
            let body = StreamBody::new(Pattern::new(total, 100_000), length);
            let request = ClientRequest::get(addr, "/up").method(Method::Put).body_stream(body);
            let response = block_on(&mut reactor, client.request(request)).expect("upload");
            assert_eq!(text(&response), format!("{expected} {total} true"));
        }
        // Both uploads ran on one keep-alive connection.
        assert_eq!(client.stats().connections_opened, 1);

        // A failing source aborts the request; a source shorter than its declared length,
        // or one whose piece crosses it, too.
        let mut failing = Pattern::new(total, 65_536);
        failing.fail_at = Some(1 << 20);
        for (source, length) in [
            (failing, None),
            (Pattern::new(1000, 100), Some(2000)),
            (Pattern::new(3000, 300), Some(2000)),
        ] {
            let request = ClientRequest::get(addr, "/up")
                .method(Method::Post)
                .body_stream(StreamBody::new(source, length));
            match block_on(&mut reactor, client.request(request)) {
                Err(ClientError::RequestBody(_)) if length.is_none() => {}
                Err(ClientError::RequestBodyLength { declared: 2000, sent }) if length.is_some() => {
                    assert!(sent == 1000 || sent == 2100, "{sent}");
                }
                other => panic!("expected a request body error, got {other:?}"),
            }
        }
        // The client still works afterwards.
        let body = StreamBody::new(Pattern::new(10, 3), Some(10));
        let request = ClientRequest::get(addr, "/up").method(Method::Post).body_stream(body);
        let response = block_on(&mut reactor, client.request(request)).expect("upload");
        assert_eq!(text(&response), "sized 10 true");
    }

    fn against_python_http_server(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let Some(server) = PythonServer::start() else { return };
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..20 {
            let url = format!("http://127.0.0.1:{}/item/{i}", server.port);
            let request = ClientRequest::from_url(&url).expect("url");
            let response = block_on(&mut reactor, client.request(request)).expect("response");
            assert_eq!(response.head.status, 200);
            assert_eq!(text(&response), format!("python says /item/{i}"));
        }
        let stats = client.stats();
        assert_eq!(stats.requests_sent, 20, "{stats:?}");
        assert_eq!(stats.connections_opened, 1, "keep-alive with http.server: {stats:?}");
        assert_eq!(stats.reused, 19, "{stats:?}");
    }

    fn against_nginx(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let Some(nginx) = Nginx::plain() else { return };
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        for i in 0..20 {
            let path = if i % 2 == 0 { "/small.txt" } else { "/big.bin" };
            let request = ClientRequest::get(nginx.addr, path);
            let response = block_on(&mut reactor, client.request(request)).expect("response");
            assert_eq!(response.head.status, 200, "{path}");
            let expected = if i % 2 == 0 { &nginx.small[..] } else { &nginx.big[..] };
            assert!(response.body == expected, "{path}: body differs");
        }
        let request = ClientRequest::get(nginx.addr, "/missing");
        let response = block_on(&mut reactor, client.request(request)).expect("404");
        assert_eq!(response.head.status, 404);
        let request = ClientRequest::get(nginx.addr, "/big.bin").method(Method::Head);
        let response = block_on(&mut reactor, client.request(request)).expect("HEAD");
        assert!(response.body.is_empty());
        let stats = client.stats();
        assert_eq!(stats.connections_opened, 1, "keep-alive with nginx: {stats:?}");
        assert_eq!(stats.reused, 21, "{stats:?}");
    }
}

/// A sink whose head callback panics (the engine drops its connection's protocol).
#[derive(Debug)]
struct Panics;

impl ResponseSink for Panics {
    fn head(&mut self, _ctx: &mut Context<'_>, _head: ResponseHead) {
        panic!("sink panics on purpose");
    }

    fn data(&mut self, _ctx: &mut Context<'_>, _data: Bytes) -> Flow {
        Flow::Continue
    }
}

/// Waits (bounded) for a line from a child's stdout on a helper thread.
fn first_line(child: &mut Child) -> Option<String> {
    let stdout = child.stdout.take()?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    rx.recv_timeout(LIMIT).ok()
}

/// Python's `http.server` with an HTTP/1.1 handler that sends Content-Length; killed on drop.
struct PythonServer {
    child: Child,
    port: u16,
}

const PYTHON_SERVER: &str = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = ("python says " + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"#;

impl PythonServer {
    fn start() -> Option<PythonServer> {
        let child = Command::new("python3")
            .args(["-c", PYTHON_SERVER])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            eprintln!("skipped: python3 not installed");
            return None;
        };
        let line = first_line(&mut child);
        let mut server = PythonServer { child, port: 0 };
        server.port = line
            .as_deref()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("python3 printed no port: {line:?}"));
        Some(server)
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
