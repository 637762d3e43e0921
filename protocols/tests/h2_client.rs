//! The HTTP/2 client connection (`http::client::h2::H2Connection`) on both backends: many
//! requests multiplexed on one connection to ringwork's server (h2c with prior knowledge
//! and TLS with ALPN, within a server's small stream limit, bodies both ways), to nginx over
//! TLS with `http2` (skipped, saying so, when nginx is not installed; a failure under `CI=true`), and refused when a
//! TLS server does not pick `h2`.
#![cfg(feature = "engine")]

mod nginx_peer;
mod reactor_support;

use std::net::SocketAddr;

use nginx_peer::Nginx;
use reactor_support::{block_on, reactor};
use ringwork::Bytes;
use ringwork::Reactor;
use ringwork::platform::BackendChoice;
use ringwork::testing::certs::{TestCa, TestCert};
use ringwork::tls::{Roots, TlsAcceptor, TlsConnector, server_name};
use ringwork_protocols::http::client::h2::H2Connection;
use ringwork_protocols::http::client::{
    BodySource, ClientConfig, ClientError, ClientRequest, HttpClient, HttpProtocol, NextChunk,
    StreamBody,
};
use ringwork_protocols::http::proto::Method;
use ringwork_protocols::http::proto::h2::H2Config;
use ringwork_protocols::http::server::{
    ALPN_H2, HttpServer, Request, Responder, Response, ServerConfig,
};

/// Echoes the method, path and body; `/hang` answers after a minute.
fn echo(request: Request, respond: Responder) {
    if request.path() == b"/hang" {
        let handle = request.handle().clone();
        request.handle().spawn_local(async move {
            let _ = handle.sleep(std::time::Duration::from_secs(60)).await;
            respond.send(Response::new(200));
        });
        return;
    }
    let text = format!(
        "{} {} ",
        String::from_utf8_lossy(request.method().as_bytes()),
        String::from_utf8_lossy(request.path())
    );
    let mut body = text.into_bytes();
    body.extend_from_slice(request.body());
    respond.send(Response::new(200).with_body(body));
}

/// A connector trusting `ca`, offering `alpn`.
fn connector(ca: &TestCa, alpn: &[&str]) -> TlsConnector {
    TlsConnector::builder()
        .roots(Roots::Certificates(vec![ca.cert.clone()]))
        .alpn(alpn.iter().copied())
        .build()
        .expect("connector")
}

fn servers(reactor: &mut Reactor, cert: &TestCert, alpn: &[&[u8]]) -> (SocketAddr, SocketAddr) {
    let mut config = ServerConfig::default();
    // A small limit: the client queues what does not fit.
    config.http2.max_concurrent_streams = 8;
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let plain = reactor
        .listen_tcp(loopback, HttpServer::new(echo, config.clone()))
        .expect("listen");
    let acceptor = TlsAcceptor::builder()
        .certificate(cert.chain(), cert.key())
        .alpn(alpn.iter().copied())
        .build()
        .expect("acceptor");
    let tls = reactor
        .listen_tls(loopback, &acceptor, HttpServer::new(echo, config))
        .expect("listen_tls");
    (plain, tls)
}

/// A streamed body from pieces in memory.
struct Pieces(std::collections::VecDeque<Bytes>);

impl BodySource for Pieces {
    fn next_chunk(&mut self) -> NextChunk<'_> {
        let piece = self.0.pop_front();
        Box::pin(async move { piece.map(Ok) })
    }
}

/// Runs the futures as tasks of `reactor`, all at once, and awaits them in order.
fn all<T: 'static>(
    reactor: &mut Reactor,
    futures: Vec<impl std::future::Future<Output = T> + 'static>,
) -> impl std::future::Future<Output = Vec<T>> + 'static {
    let tasks: Vec<_> = futures
        .into_iter()
        .map(|f| reactor.spawn_local(f))
        .collect();
    async move {
        let mut out = Vec::with_capacity(tasks.len());
        for task in tasks {
            out.push(task.await.expect("the task ran"));
        }
        out
    }
}

fn text(response: &ringwork_protocols::http::client::ClientResponse) -> String {
    String::from_utf8_lossy(&response.body).into_owned()
}

ringwork::platform::test_all_backends! {
    fn many_requests_on_one_connection_to_our_server(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let (plain, tls) = servers(&mut reactor, &cert, &[ALPN_H2, b"http/1.1"]);
        let handle = reactor.handle();
        let name = server_name("localhost").expect("name");
        for (addr, tls) in [(plain, None), (tls, Some((connector(&ca, &["h2"]), name)))] {
            let conn = H2Connection::open(&handle, addr, tls, H2Config::default(), 1 << 20);
            let requests: Vec<_> = (0..40)
                .map(|i| {
                    let mut request = ClientRequest::get(addr, format!("/r/{i}"));
                    if i % 4 == 0 {
                        request = request.method(Method::Post).body(vec![b'x'; 100_000]);
                    }
                    conn.request(request)
                })
                .collect();
            let responses = { let all = all(&mut reactor, requests); block_on(&mut reactor, all) };
            for (i, response) in responses.into_iter().enumerate() {
                let response = response.unwrap_or_else(|e| panic!("request {i} to {addr}: {e}"));
                assert_eq!(response.head.status, 200);
                let body = text(&response);
                if i % 4 == 0 {
                    assert_eq!(body.len(), format!("POST /r/{i} ").len() + 100_000, "{addr}");
                } else {
                    assert_eq!(body, format!("GET /r/{i} "), "{addr}");
                }
            }
            assert!(!conn.is_closed());
        }
    }

    fn http_client_requests_over_http2_share_one_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let (plain, tls) = servers(&mut reactor, &cert, &[ALPN_H2, b"http/1.1"]);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        client.set_tls_connector(connector(&ca, &["h2", "http/1.1"]));
        for url in [format!("http://{plain}"), format!("https://localhost:{}", tls.port())] {
            let requests: Vec<_> = (0..30)
                .map(|i| {
                    let mut request = ClientRequest::from_url(&format!("{url}/c/{i}")).expect("url").over_http2(true);
                    if url.starts_with("https") {
                        // The name is verified; the address is the listener's.
                        request.addr = tls;
                        request.host = None;
                    }
                    client.request(request)
                })
                .collect();
            let responses = { let all = all(&mut reactor, requests); block_on(&mut reactor, all) };
            for (i, response) in responses.into_iter().enumerate() {
                let response = response.unwrap_or_else(|e| panic!("{url} request {i}: {e}"));
                assert_eq!(text(&response), format!("GET /c/{i} "));
                assert_eq!(response.head.version, ringwork_protocols::http::proto::Version::Http2);
            }
            // A streamed response through the same connection.
            let mut request = ClientRequest::from_url(&format!("{url}/stream")).expect("url").over_http2(true);
            if url.starts_with("https") {
                request.addr = tls;
                request.host = None;
            }
            let seen = std::rc::Rc::new(std::cell::Cell::new(0usize));
            let counted = std::rc::Rc::clone(&seen);
            let (head, _) = block_on(&mut reactor, client.request_streaming(request, move |piece| counted.set(counted.get() + piece.len()))).expect("streamed");
            assert_eq!(head.status, 200);
            assert_eq!(seen.get(), "GET /stream ".len());
        }
        // A streamed request body (no declared length) over the h2c connection, pulled as
        // the server's window opens.
        let pieces: std::collections::VecDeque<Bytes> = (0..8).map(|i| Bytes::from(vec![b'a' + i; 64 * 1024])).collect();
        let expected: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
        let request = ClientRequest::from_url(&format!("http://{plain}/up"))
            .expect("url")
            .method(Method::Post)
            .body_stream(StreamBody::new(Pieces(pieces), None))
            .over_http2(true);
        let response = block_on(&mut reactor, client.request(request)).expect("streamed upload");
        assert_eq!(&response.body[..b"POST /up ".len()], b"POST /up ");
        assert!(response.body[b"POST /up ".len()..] == expected[..], "{} bytes back", response.body.len());
        let stats = client.stats();
        // One HTTP/2 connection per server for all the requests.
        assert_eq!(stats.connections_opened, 2, "{stats:?}");
        assert_eq!(stats.requests_sent, 63, "{stats:?}");
    }

    fn a_refused_stream_with_a_streamed_body_fails_instead_of_going_again_empty(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let mut config = ServerConfig::default();
        config.http2.max_concurrent_streams = 1;
        let plain = reactor
            .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), HttpServer::new(echo, config))
            .expect("listen");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        // Two uploads sent before the server's SETTINGS arrive: the second is refused.
        let uploads: Vec<_> = (0..2)
            .map(|_| {
                let pieces = (0..4).map(|_| Bytes::from(vec![b'u'; 1000])).collect();
                let request = ClientRequest::from_url(&format!("http://{plain}/up"))
                    .expect("url")
                    .method(Method::Post)
                    .body_stream(StreamBody::new(Pieces(pieces), None))
                    .over_http2(true);
                client.request(request)
            })
            .collect();
        let results = { let all = all(&mut reactor, uploads); block_on(&mut reactor, all) };
        let mut refused = 0;
        for result in results {
            match result {
                Ok(response) => assert_eq!(response.body.len(), "POST /up ".len() + 4000, "an upload went through short"),
                Err(ClientError::Http2Reset { code: 7 }) => refused += 1,
                Err(error) => panic!("{error}"),
            }
        }
        assert_eq!(refused, 1);
    }

    fn http_client_response_timeout_over_http2(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let (plain, _) = servers(&mut reactor, &ca.server(&["localhost"]), &[ALPN_H2]);
        let mut config = ClientConfig::default();
        config.response_timeout = std::time::Duration::from_millis(300);
        let client = HttpClient::new(reactor.handle(), config);
        let hang = ClientRequest::get(plain, "/hang").over_http2(true);
        let result = block_on(&mut reactor, client.request(hang));
        assert!(matches!(result, Err(ClientError::ResponseTimeout { .. })), "{result:?}");
        // The connection goes on.
        let ok = block_on(&mut reactor, client.request(ClientRequest::get(plain, "/ok").over_http2(true))).expect("after a timeout");
        assert_eq!(text(&ok), "GET /ok ");
        assert_eq!(client.stats().connections_opened, 1);
    }

    fn http_client_protocol_choice_h1_h2_h2c_auto(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let (plain, tls_h2) = servers(&mut reactor, &cert, &[ALPN_H2, b"http/1.1"]);
        let (_, tls_h1) = servers(&mut reactor, &cert, &[b"http/1.1"]);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        client.set_tls_connector(connector(&ca, &["h2", "http/1.1"]));
        let https = |addr: SocketAddr, protocol: HttpProtocol| {
            let mut request = ClientRequest::from_url(&format!("https://localhost:{}/p", addr.port()))
                .expect("url")
                .with_protocol(protocol);
            request.addr = addr;
            request.host = None;
            request
        };
        let version = |reactor: &mut Reactor, request: ClientRequest| {
            block_on(reactor, client.request(request)).map(|r| r.head.version)
        };
        use ringwork_protocols::http::proto::Version::{Http11, Http2};
        // Plaintext: h1 and auto speak HTTP/1.1, h2 and h2c HTTP/2 with prior knowledge.
        for (protocol, want) in [
            (HttpProtocol::Http1, Http11),
            (HttpProtocol::Auto, Http11),
            (HttpProtocol::Http2, Http2),
            (HttpProtocol::H2c, Http2),
        ] {
            let request = ClientRequest::get(plain, "/p").with_protocol(protocol);
            assert_eq!(version(&mut reactor, request).expect("plaintext"), want, "{protocol:?}");
        }
        // TLS to a server that picks h2: auto, h2 and h2c speak HTTP/2; h1 with a connector
        // that offers h2 fails, saying so (the server would read its bytes as HTTP/2).
        let h1 = version(&mut reactor, https(tls_h2, HttpProtocol::Http1));
        assert!(matches!(h1, Err(ClientError::Http1NotNegotiated { .. })), "{h1:?}");
        for (protocol, want) in [
            (HttpProtocol::Auto, Http2),
            (HttpProtocol::Http2, Http2),
            (HttpProtocol::H2c, Http2),
        ] {
            assert_eq!(version(&mut reactor, https(tls_h2, protocol)).expect("tls"), want, "{protocol:?}");
        }
        // TLS to a server that picks http/1.1: auto (and h2c, as auto over TLS) go over
        // HTTP/1.1; h2 insists, and fails naming what the server chose.
        for protocol in [HttpProtocol::Auto, HttpProtocol::H2c] {
            assert_eq!(version(&mut reactor, https(tls_h1, protocol)).expect("fallback"), Http11, "{protocol:?}");
        }
        let strict = version(&mut reactor, https(tls_h1, HttpProtocol::Http2));
        assert!(matches!(strict, Err(ClientError::Http2NotNegotiated { .. })), "{strict:?}");
        // Names as the proxy's TOML spells them.
        for name in ["h1", "h2", "h2c", "auto"] {
            assert_eq!(HttpProtocol::from_name(name).expect("a name").name(), name);
        }
    }

    fn http_client_falls_back_to_http1_when_tls_does_not_pick_h2(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let (_, tls) = servers(&mut reactor, &ca.server(&["localhost"]), &[b"http/1.1"]);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        client.set_tls_connector(connector(&ca, &["h2", "http/1.1"]));
        for i in 0..3 {
            let mut request = ClientRequest::from_url(&format!("https://localhost:{}/f/{i}", tls.port()))
                .expect("url")
                .over_http2(true);
            request.addr = tls;
            request.host = None;
            let response = block_on(&mut reactor, client.request(request)).expect("over HTTP/1.1");
            assert_eq!(text(&response), format!("GET /f/{i} "));
            assert_eq!(response.head.version, ringwork_protocols::http::proto::Version::Http11);
        }
        // One refused HTTP/2 attempt, then one HTTP/1.1 connection for the three requests.
        let stats = client.stats();
        assert_eq!(stats.connections_opened, 2, "{stats:?}");
        assert_eq!(stats.reused, 2, "{stats:?}");
    }

    fn a_tls_server_without_h2_is_refused(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost"]);
        let (_, tls) = servers(&mut reactor, &cert, &[b"http/1.1"]);
        let name = server_name("localhost").expect("name");
        // Offering h2 and http/1.1, the server picks http/1.1: not an HTTP/2 connection.
        let target = Some((connector(&ca, &["h2", "http/1.1"]), name));
        let conn = H2Connection::open(&reactor.handle(), tls, target, H2Config::default(), 1 << 20);
        let result = block_on(&mut reactor, conn.request(ClientRequest::get(tls, "/")));
        assert!(matches!(result, Err(ClientError::Http2NotNegotiated { .. })), "{result:?}");
    }

    fn h2_over_tls_to_nginx(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let Some(nginx) = Nginx::h2_tls(&ca.server(&["localhost"])) else { return };
        let name = server_name("localhost").expect("name");
        let conn = H2Connection::open(&reactor.handle(), nginx.addr, Some((connector(&ca, &["h2"]), name)), H2Config::default(), 1 << 20);
        let requests: Vec<_> = (0..20)
            .map(|i| {
                let path = if i % 2 == 0 { "/small.txt" } else { "/big.bin" };
                conn.request(ClientRequest::get(nginx.addr, path))
            })
            .collect();
        let responses = { let all = all(&mut reactor, requests); block_on(&mut reactor, all) };
        for (i, response) in responses.into_iter().enumerate() {
            let response = response.unwrap_or_else(|e| panic!("request {i}: {e}"));
            assert_eq!(response.head.status, 200);
            let expected = if i % 2 == 0 { &nginx.small[..] } else { &nginx.big[..] };
            assert!(response.body == expected, "request {i}: {} bytes", response.body.len());
        }
        let missing = block_on(&mut reactor, conn.request(ClientRequest::get(nginx.addr, "/missing"))).expect("404");
        assert_eq!(missing.head.status, 404);
    }
}
