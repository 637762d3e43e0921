//! The HTTP/1.1 server over real sockets on both backends: responses and their framing,
//! keep-alive, pipelining order, deferred and streamed answers, request bodies (whole and
//! streamed), limits and smuggling defences (exact status, then close), 100-continue,
//! timeouts, a dropped Responder, `max_pipelined` backpressure and graceful shutdown.
//!
//! The server runs on a one-core runtime on a background thread (`common::Server`); the
//! client is a blocking socket on the test thread. Nothing sleeps: waits are reads with a
//! timeout or channel receives with a deadline.
#![cfg(feature = "engine")]

mod common;

use std::cell::{Cell, RefCell};
use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant, SystemTime};

use common::{Client, LIMIT, Server, pattern};
use ringwork::BackendChoice;
use ringwork_protocols::http::date::parse_http_date;
use ringwork_protocols::http::proto::RequestHead;
use ringwork_protocols::http::server::{Handler, Request, Responder, Response, ServerConfig};
use ringwork_protocols::http::services::{HELLO_BODY, hello};

/// Pieces of the streamed response: 128 × 64 KiB = 8 MiB.
const PIECE: usize = 64 * 1024;
const PIECES: usize = 128;

/// A handler with one behaviour per path; it reports events to the test.
struct TestHandler {
    events: Sender<String>,
    held: RefCell<Vec<Responder>>,
    holds: Cell<usize>,
}

fn handler(events: &Sender<String>) -> impl Fn() -> TestHandler + Send + Sync + 'static {
    let events = events.clone();
    move || TestHandler {
        events: events.clone(),
        held: RefCell::new(Vec::new()),
        holds: Cell::new(0),
    }
}

impl Handler for TestHandler {
    fn stream_body(&self, head: &RequestHead) -> bool {
        head.path() == b"/count" || head.path() == b"/stream-echo"
    }

    fn handle(&self, mut request: Request, respond: Responder) {
        let path = String::from_utf8_lossy(request.path()).into_owned();
        let handle = request.handle().clone();
        match path.as_str() {
            "/hello" => hello(request, respond),
            "/echo" => respond.send(Response::new(200).with_body(request.body().clone())),
            "/deferred" => {
                let _ = self.events.send("deferred".into());
                handle.clone().spawn_local(async move {
                    let _ = handle.sleep(Duration::from_millis(100)).await;
                    respond.send(Response::text("deferred"));
                });
            }
            "/small-stream-later" => {
                // From a task (outside any callback): small writes must not be told to
                // wait for the flush that is already scheduled.
                let events = self.events.clone();
                handle.spawn_local(async move {
                    let mut writer = respond.stream(Response::new(200));
                    let ready: Vec<bool> = (0..4).map(|_| writer.write(&b"abcd"[..])).collect();
                    let _ = events.send(format!("ready {ready:?}"));
                    writer.finish();
                });
            }
            "/stream" => {
                let mut writer = respond.stream(Response::new(200));
                let events = self.events.clone();
                handle.spawn_local(async move {
                    let data = pattern(PIECE * PIECES);
                    for (i, piece) in data.chunks(PIECE).enumerate() {
                        if writer.ready().await.is_err() {
                            let _ = events.send("stream gone".into());
                            return;
                        }
                        writer.write(piece.to_vec());
                        let _ = events.send(format!("written {}", i + 1));
                    }
                    let _ = events.send("stream done".into());
                    writer.finish();
                });
            }
            "/stream-drop" => {
                let mut writer = respond.stream(Response::new(200));
                writer.write(vec![b'x'; 1000]);
                drop(writer);
            }
            "/sized-drop" => {
                let mut writer =
                    respond.stream(Response::new(200).header("Content-Length", "100000"));
                writer.write(vec![b'x'; 1000]);
                drop(writer);
            }
            "/drop" => drop(respond),
            "/count" => {
                let mut body = request.take_body_stream().expect("a streamed body");
                let events = self.events.clone();
                handle.spawn_local(async move {
                    let mut total = 0usize;
                    let mut pieces = 0usize;
                    while let Some(piece) = body.next().await {
                        match piece {
                            Ok(piece) => total += piece.len(),
                            Err(e) => {
                                let _ = events.send(format!("count error: {e}"));
                                return respond.send(Response::error(400));
                            }
                        }
                        pieces += 1;
                    }
                    respond.send(
                        Response::text(total.to_string()).header("X-Pieces", pieces.to_string()),
                    );
                });
            }
            "/stream-echo" => {
                let mut body = request.take_body_stream().expect("a streamed body");
                handle.spawn_local(async move {
                    let mut all = Vec::new();
                    while let Some(Ok(piece)) = body.next().await {
                        all.extend_from_slice(&piece);
                    }
                    let trailer = body
                        .trailers()
                        .and_then(|t| t.get("x-checksum").map(|v| v.to_vec()))
                        .unwrap_or_default();
                    respond.send(
                        Response::new(200)
                            .header("X-Trailer", trailer)
                            .with_body(all),
                    );
                });
            }
            "/hold" => {
                self.holds.set(self.holds.get() + 1);
                self.held.borrow_mut().push(respond);
                let _ = self.events.send("hold".into());
            }
            "/finished-early" => {
                // Streamed and finished while an earlier response is still pending: its
                // writer has nothing left to wait for once both went out.
                let mut writer = respond.stream(Response::new(200));
                let ready = writer.when_ready();
                writer.write(&b"early"[..]);
                writer.finish();
                let events = self.events.clone();
                handle.spawn_local(async move {
                    let outcome = match ready.await {
                        Ok(()) => "finished-early ready",
                        Err(_) => "finished-early closed",
                    };
                    let _ = events.send(outcome.into());
                });
            }
            "/release" => {
                let holds = self.holds.get();
                for held in self.held.borrow_mut().drain(..) {
                    held.send(Response::text("released"));
                }
                respond.send(Response::text(holds.to_string()));
            }
            p if p.starts_with("/p/") => {
                // Later requests answer sooner: the order must still follow the requests.
                let n: u64 = p[3..].parse().unwrap_or(0);
                let delay = Duration::from_millis(2 * 50u64.saturating_sub(n));
                handle.clone().spawn_local(async move {
                    let _ = handle.sleep(delay).await;
                    respond.send(Response::text(path));
                });
            }
            _ => respond.send(Response::error(404)),
        }
    }
}

fn config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.limits.max_body = 16 * 1024 * 1024;
    config
}

/// A server with [`TestHandler`] and `config`, and the handler's event channel.
fn start(backend: BackendChoice, config: ServerConfig) -> Option<(Server, Receiver<String>)> {
    let (tx, rx) = mpsc::channel();
    let server = Server::start(backend, config, handler(&tx))?;
    Some((server, rx))
}

#[track_caller]
fn event(events: &Receiver<String>, what: &str) -> String {
    events
        .recv_timeout(LIMIT)
        .unwrap_or_else(|_| panic!("no {what} event within {LIMIT:?}"))
}

ringwork::platform::test_all_backends! {
    fn hello_response(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let resp = client.get("/hello", "");
        assert_eq!((resp.status, resp.reason.as_str()), (200, "OK"));
        assert_eq!(resp.body, HELLO_BODY);
        assert_eq!(resp.header("content-type"), Some("text/plain"));
        assert_eq!(resp.header("content-length"), Some("13"));
        assert_eq!(resp.count("date"), 1);
        let date = parse_http_date(resp.header("date").unwrap().as_bytes()).expect("an HTTP-date");
        let skew = SystemTime::now().duration_since(date).unwrap_or_default();
        assert!(skew < Duration::from_secs(5), "Date is {skew:?} old");
        assert!(resp.header("connection").is_none(), "HTTP/1.1 keep-alive needs no Connection");
        assert!(resp.header("transfer-encoding").is_none());
    }

    fn keep_alive_100_requests(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        for i in 0..100 {
            let resp = client.get(&format!("/p/{}", 50 + i), "");
            assert_eq!(resp.status, 200);
            assert_eq!(resp.text(), format!("/p/{}", 50 + i));
        }
    }

    fn http10_without_keep_alive_closes(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send("GET /hello HTTP/1.0\r\n\r\n");
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, HELLO_BODY);
        client.expect_closed();

        // With keep-alive asked for, it stays open and says so.
        let mut client = server.client();
        client.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = client.response();
        assert_eq!(resp.header("connection"), Some("keep-alive"));
        client.send("GET /hello HTTP/1.0\r\n\r\n");
        assert_eq!(client.response().body, HELLO_BODY);
        client.expect_closed();
    }

    fn connection_close_closes_after_response(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        // A second request after the closing one is never answered.
        client.send(
            "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n\
             GET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("connection"), Some("close"));
        client.expect_closed();
    }

    fn pipelined_responses_keep_request_order(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let all: String = (0..50)
            .map(|n| format!("GET /p/{n} HTTP/1.1\r\nHost: t\r\n\r\n"))
            .collect();
        client.send(all);
        for n in 0..50 {
            let resp = client.response();
            assert_eq!(resp.status, 200);
            assert_eq!(resp.text(), format!("/p/{n}"), "response {n} out of order");
        }
    }

    fn deferred_answer(backend: BackendChoice) {
        let Some((server, events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let start = Instant::now();
        let resp = client.get("/deferred", "");
        assert_eq!(event(&events, "deferred"), "deferred");
        assert_eq!((resp.status, resp.text().as_str()), (200, "deferred"));
        assert!(start.elapsed() >= Duration::from_millis(90), "answered before its sleep");
        // The connection is still usable.
        assert_eq!(client.get("/hello", "").body, HELLO_BODY);
    }

    fn small_writes_from_a_task_stay_ready(backend: BackendChoice) {
        let Some((server, events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let resp = client.get("/small-stream-later", "");
        assert_eq!(event(&events, "ready"), "ready [true, true, true, true]");
        assert_eq!((resp.status, resp.text().as_str()), (200, "abcdabcdabcdabcd"));
    }

    /// A client that asks for 8 MiB and never reads: once the server's bytes stop moving
    /// for `write_timeout`, the connection is cut (reset), the handler's writer learns it,
    /// and the client sees the end of the connection well before the end of the body.
    fn a_client_that_never_reads_a_download_is_cut_off(backend: BackendChoice) {
        let mut config = config();
        config.write_timeout = Some(Duration::from_millis(300));
        let Some((server, events)) = start(backend, config) else { return };
        let mut client = Client::with_recv_buffer(server.addr, 4096);
        let asked = Instant::now();
        client.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
        let last = loop {
            let e = event(&events, "the stream to end");
            if !e.starts_with("written") {
                break e;
            }
        };
        assert_eq!(last, "stream gone", "the writer was not told the client is gone");
        assert!(asked.elapsed() >= Duration::from_millis(300), "cut before the timeout");
        // What the kernel had already taken arrives, then the reset (or EOF).
        let got = client.read_to_close();
        assert!(got.len() < PIECE * PIECES, "the whole body arrived: {} bytes", got.len());
    }

    /// A streamed response finished while an earlier one was pending (pipelining): once
    /// both went out, waiting for its writer to be ready ends at once (it waited until the
    /// connection closed, which kept a reverse proxy's drain task, and the upstream
    /// connection id it held, alive for the whole connection).
    fn a_finished_response_is_ready_without_waiting_for_the_close(backend: BackendChoice) {
        let Some((server, events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send(
            "GET /hold HTTP/1.1\r\nHost: t\r\n\r\nGET /finished-early HTTP/1.1\r\nHost: t\r\n\r\n\
             GET /release HTTP/1.1\r\nHost: t\r\n\r\n",
        );
        assert_eq!(client.response().text(), "released");
        assert_eq!(client.response().text(), "early");
        assert_eq!(client.response().text(), "1");
        // The connection is still open: the writer's wait must end now, not at the close.
        let outcome = loop {
            let e = event(&events, "the early writer's wait to end");
            if e.starts_with("finished-early") {
                break e;
            }
        };
        assert_eq!(outcome, "finished-early ready");
        assert_eq!(client.get("/hello", "").status, 200, "the connection stayed usable");
    }

    fn streamed_response_8_mib(backend: BackendChoice) {
        let Some((server, events)) = start(backend, config()) else { return };
        // A small receive buffer (no autotuning): the kernel cannot absorb 8 MiB.
        let mut client = Client::with_recv_buffer(server.addr, 64 * 1024);
        client.send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
        // Not reading yet: the writer must stop well short of the end, and stay stopped.
        assert_eq!(event(&events, "first piece"), "written 1");
        let mut written = 1;
        loop {
            match events.recv_timeout(Duration::from_millis(300)) {
                Ok(e) if e == "stream done" => panic!("8 MiB went out to a client not reading"),
                Ok(e) => written = e["written ".len()..].parse().unwrap(),
                Err(_) => break,
            }
        }
        // Where it stops depends on the kernel's send buffer (up to tcp_wmem's maximum)
        // plus the engine's write high watermark; it must stop short of the whole body.
        assert!(written < PIECES, "{written} pieces written before the client read");
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.header("transfer-encoding"), Some("chunked"));
        assert_eq!(resp.body.len(), PIECE * PIECES);
        assert!(resp.body == pattern(PIECE * PIECES), "streamed bytes differ");
        assert_eq!(resp.chunks.as_deref(), Some(&[PIECE; PIECES][..]));
        let done = loop {
            let e = event(&events, "stream end");
            if !e.starts_with("written") {
                break e;
            }
        };
        assert_eq!(done, "stream done");
        // Keep-alive survives a streamed response.
        assert_eq!(client.get("/hello", "").body, HELLO_BODY);
    }

    fn streamed_response_to_http10_is_close_delimited(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert!(resp.header("transfer-encoding").is_none(), "chunked to HTTP/1.0");
        assert!(resp.header("content-length").is_none());
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(resp.body == pattern(PIECE * PIECES), "close-delimited bytes differ");
    }

    fn max_requests_per_connection(backend: BackendChoice) {
        let mut config = config();
        config.max_requests_per_connection = Some(3);
        let Some((server, _events)) = start(backend, config) else { return };
        let mut client = server.client();
        for _ in 0..2 {
            let resp = client.get("/hello", "");
            assert!(resp.header("connection").is_none());
        }
        // Pipelined past the limit: the third is answered with close, the fourth never.
        client.send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        let resp = client.response();
        assert_eq!(resp.header("connection"), Some("close"));
        client.expect_closed();
    }

    fn dropped_body_writer_truncates_and_closes(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send("GET /stream-drop HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = client.head();
        assert_eq!(head.header("transfer-encoding"), Some("chunked"));
        let rest = client.read_to_close();
        assert!(rest.starts_with(b"3e8\r\n"), "{:?}", String::from_utf8_lossy(&rest[..20]));
        assert!(!rest.ends_with(b"0\r\n\r\n"), "a truncated body got its last chunk");
        assert_eq!(rest.len(), 5 + 1000 + 2, "more than the written piece arrived");

        let mut client = server.client();
        client.send("GET /sized-drop HTTP/1.1\r\nHost: t\r\n\r\n");
        let head = client.head();
        assert_eq!(head.header("content-length"), Some("100000"));
        assert_eq!(client.read_to_close().len(), 1000);
    }

    fn request_bodies_reach_the_handler_whole(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let json = br#"{"name":"ringwork","list":[1,2,3]}"#;
        client.send(format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
            json.len()
        ));
        client.send(json);
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, json);

        // Chunked, with extensions and trailers, in small writes.
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        client.send("5;ext=1\r\nhello\r\n");
        client.send("6\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n");
        let resp = client.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "hello world"));

        // Streamed, trailers visible to the handler.
        client.send(
            "POST /stream-echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             3\r\nabc\r\n3\r\ndef\r\n0\r\nX-Checksum: 42\r\n\r\n",
        );
        let resp = client.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "abcdef"));
        assert_eq!(resp.header("x-trailer"), Some("42"));
    }

    fn streamed_request_body_10_mib(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let len = 10 * 1024 * 1024;
        client.send(format!(
            "POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n"
        ));
        let body = pattern(len);
        for piece in body.chunks(256 * 1024) {
            client.send(piece);
        }
        let resp = client.response();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.text(), len.to_string());
        let pieces: usize = resp.header("x-pieces").unwrap().parse().unwrap();
        assert!(pieces > 1, "the body did not stream");
        // Chunked too.
        client.send("POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        for piece in body.chunks(1024 * 1024) {
            client.send(format!("{:x}\r\n", piece.len()));
            client.send(piece);
            client.send("\r\n");
        }
        client.send("0\r\n\r\n");
        assert_eq!(client.response().text(), len.to_string());
    }

    fn streamed_body_resumes_with_input_already_read(backend: BackendChoice) {
        // The whole chunked body arrives in one write, far over body_buffer: reading
        // pauses with chunks still in the server's input buffer, and nothing more will
        // arrive from the client to restart it.
        let mut config = config();
        config.body_buffer = 4 * 1024;
        let Some((server, _events)) = start(backend, config) else { return };
        let mut client = server.client();
        let mut request =
            String::from("POST /count HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
        for _ in 0..64 {
            request.push_str(&format!("400\r\n{}\r\n", "b".repeat(1024)));
        }
        request.push_str("0\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
        client.send(request);
        assert_eq!(client.response().text(), (64 * 1024).to_string());
        assert_eq!(client.response().body, HELLO_BODY);
    }

    fn limits_and_smuggling_are_rejected_and_closed(backend: BackendChoice) {
        let mut config = config();
        config.limits.max_body = 1000;
        let Some((server, _events)) = start(backend, config) else { return };
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let many = format!("GET / HTTP/1.1\r\nHost: t\r\n{many}\r\n");
        let large = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "v".repeat(17_000));
        let chunk = "a".repeat(800);
        let chunked_big = format!(
            "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
             320\r\n{chunk}\r\n320\r\n{chunk}\r\n0\r\n\r\n"
        );
        let cases: Vec<(&str, String, u16)> = vec![
            ("long request line", long_target, 414),
            ("too many headers", many, 431),
            ("too large header", large, 431),
            (
                "Content-Length over max_body",
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\n\r\n".into(),
                413,
            ),
            ("chunked over max_body", chunked_big, 413),
            (
                "CL and TE",
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                    .into(),
                400,
            ),
            (
                "two differing CLs",
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\
                 Content-Length: 6\r\n\r\nhello!"
                    .into(),
                400,
            ),
            (
                "TE gzip",
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n".into(),
                400,
            ),
            ("bare LF", "GET /hello HTTP/1.1\nHost: t\n\n".into(), 400),
            (
                "obs-fold",
                "GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n".into(),
                400,
            ),
            ("space before colon", "GET /hello HTTP/1.1\r\nHost : t\r\n\r\n".into(), 400),
            (
                "bad chunk size",
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
                    .into(),
                400,
            ),
            (
                "chunk data not ended by CRLF",
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                 5\r\nhelloXX0\r\n\r\n"
                    .into(),
                400,
            ),
            (
                "negative CL",
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n".into(),
                400,
            ),
            ("no Host", "GET /hello HTTP/1.1\r\n\r\n".into(), 400),
            ("two Hosts", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
            ("HTTP/2.0", "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n".into(), 505),
            (
                "unknown Expect",
                "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx"
                    .into(),
                417,
            ),
            (
                "gzip, chunked",
                "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                    .into(),
                501,
            ),
        ];
        for (name, request, status) in cases {
            let mut client = server.client();
            client.send(request);
            let resp = client.response();
            assert_eq!(resp.status, status, "{name}: {resp:?}");
            assert_eq!(resp.header("connection"), Some("close"), "{name}");
            assert!(!resp.text().contains("ringwork"), "{name}: echoed a rejected body");
            client.expect_closed();
        }
    }

    fn expect_100_continue(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
        );
        let interim = client.head();
        assert_eq!(interim.status, 100);
        client.send("hello");
        let resp = client.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "hello"));

        // No 1xx to an HTTP/1.0 client (RFC 9110 §15.2).
        let mut client = server.client();
        client.send("POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
        client.send("hello");
        let head = client.head();
        assert_eq!(head.status, 200);
        assert_eq!(client.read_to_close(), b"hello");

        // A body that will be refused gets the refusal, not 100 (Continue).
        let mut client = server.client();
        client.send(
            "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\
             Content-Length: 99999999\r\n\r\n",
        );
        assert_eq!(client.head().status, 413);
        assert_eq!(client.read_to_close(), b"413 Content Too Large\n");
    }

    fn slowloris_gets_408(backend: BackendChoice) {
        let mut config = config();
        config.header_read_timeout = Duration::from_millis(200);
        let Some((server, _events)) = start(backend, config) else { return };
        let mut client = server.client();
        let head = format!("GET /hello HTTP/1.1\r\nHost: t\r\nX-Pad: {}\r\n\r\n", "p".repeat(200));
        // One byte, then up to 20 ms for an answer: the head would take far longer than the
        // header timeout, and every byte comes well within it.
        client
            .stream
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let start = Instant::now();
        let mut sent = 0;
        let mut first = [0u8; 1];
        let got = loop {
            assert!(sent < head.len(), "the whole slow head was accepted");
            client.send(&head.as_bytes()[sent..=sent]);
            sent += 1;
            match std::io::Read::read(&mut client.stream, &mut first) {
                Ok(n) => break n,
                Err(e) if matches!(e.kind(), WouldBlock | TimedOut | Interrupted) => {}
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!((got, first[0]), (1, b'H'));
        assert!(start.elapsed() >= Duration::from_millis(150), "408 came too early");
        client.stream.set_read_timeout(Some(LIMIT)).unwrap();
        let mut rest = client.read_to_close();
        rest.insert(0, b'H');
        let text = String::from_utf8_lossy(&rest);
        assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
    }

    fn idle_keep_alive_closes(backend: BackendChoice) {
        let mut config = config();
        config.keep_alive_timeout = Duration::from_millis(200);
        let Some((server, _events)) = start(backend, config) else { return };
        let mut client = server.client();
        assert_eq!(client.get("/hello", "").status, 200);
        let start = Instant::now();
        client.expect_closed();
        assert!(start.elapsed() >= Duration::from_millis(150), "closed before the timeout");
    }

    fn body_stall_gets_408(backend: BackendChoice) {
        let mut config = config();
        config.body_read_timeout = Duration::from_millis(200);
        let Some((server, _events)) = start(backend, config) else { return };
        let mut client = server.client();
        client.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
        let resp = client.response();
        assert_eq!(resp.status, 408);
        client.expect_closed();
    }

    fn streamed_body_stall_gets_408_and_ends_the_stream(backend: BackendChoice) {
        let mut config = config();
        config.body_read_timeout = Duration::from_millis(200);
        let Some((server, events)) = start(backend, config) else { return };
        let mut client = server.client();
        client.send("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
        let resp = client.response();
        assert_eq!(resp.status, 408);
        client.expect_closed();
        // The handler's stream must end (with an error), not wait forever.
        let e = event(&events, "body stream error");
        assert!(e.starts_with("count error"), "{e}");
    }

    fn streamed_body_cut_short_ends_the_stream(backend: BackendChoice) {
        let Some((server, events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send("POST /count HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello");
        client.shutdown_write();
        let e = event(&events, "body stream error");
        assert!(e.starts_with("count error"), "{e}");
    }

    fn dropped_responder_sends_500(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        let resp = client.get("/drop", "");
        assert_eq!(resp.status, 500);
        assert_eq!(client.get("/hello", "").body, HELLO_BODY);
    }

    fn max_pipelined_stops_reading(backend: BackendChoice) {
        let mut config = config();
        config.max_pipelined = 4;
        let Some((server, events)) = start(backend, config) else { return };
        let mut client = server.client();
        let all: String = (0..10)
            .map(|_| "GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
            .collect();
        client.send(all);
        let mut dispatched = 0;
        let mut answered = 0;
        while answered < 10 {
            while dispatched < (answered + 4).min(10) {
                assert_eq!(event(&events, "hold"), "hold");
                dispatched += 1;
            }
            let holds = server.client().get("/release", "").text();
            if answered == 0 {
                assert_eq!(holds, "4", "read past max_pipelined");
            }
            while answered < dispatched {
                assert_eq!(client.response().text(), "released");
                answered += 1;
            }
        }
    }

    fn graceful_shutdown_closes_idle_connection(backend: BackendChoice) {
        let Some((server, _events)) = start(backend, config()) else { return };
        let mut client = server.client();
        assert_eq!(client.get("/hello", "").status, 200);
        server.shutdown(LIMIT);
        client.expect_closed();
        server.join();
    }

    fn graceful_shutdown_finishes_in_flight_request(backend: BackendChoice) {
        let Some((server, events)) = start(backend, config()) else { return };
        let mut client = server.client();
        client.send("GET /deferred HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(event(&events, "deferred"), "deferred");
        server.shutdown(LIMIT);
        let resp = client.response();
        assert_eq!((resp.status, resp.text().as_str()), (200, "deferred"));
        // Answered after the shutdown began: the client learns not to reuse the connection.
        assert_eq!(resp.header("connection"), Some("close"));
        client.expect_closed();
        server.join();
    }
}
