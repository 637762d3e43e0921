//! The HTTP/1.1 client over TLS on both backends: against ringwork TLS servers started in
//! the test with certificates of a throw-away CA (`ringwork::testing::certs::TestCa`):
//! keep-alive over TLS, an untrusted CA, a certificate for another name, the pool keeping
//! plaintext and TLS connections to one address apart, the default connector, and a client
//! certificate; and against `openssl s_server -www`, a TLS peer nobody here wrote.
//!
//! Nothing sleeps: a test turns the reactor until its future resolved (bounded by
//! [`LIMIT`]); openssl is waited for by reading its output through a channel.
#![cfg(feature = "engine")]

mod common;
mod reactor_support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::TempDir;
use reactor_support::{block_on, reactor};
use ringwork::Reactor;
use ringwork::platform::BackendChoice;
use ringwork::testing::certs::{TestCa, TestCert};
use ringwork::tls::rustls::{CertificateError, Error as RustlsError};
use ringwork::tls::{ClientAuth, Roots, TlsAcceptor, TlsConnector, TlsError, server_name};
use ringwork_protocols::http::client::{
    ClientConfig, ClientError, ClientRequest, ClientResponse, HttpClient, TlsTarget,
};
use ringwork_protocols::http::server::{Handler, HttpServer, Request, Responder, Response};

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

/// Answers `tls=<bool> <path>`.
struct Hello;

impl Handler for Hello {
    fn handle(&self, request: Request, respond: Responder) {
        let path = String::from_utf8_lossy(request.path()).into_owned();
        respond.send(Response::text(format!("tls={} {path}", request.is_tls())));
    }
}

/// A ringwork HTTPS server presenting `cert` (and asking for client certificates of `ca`
/// if `client_auth`), on a free loopback port.
fn https_server(reactor: &mut Reactor, cert: &TestCert, client_auth: ClientAuth) -> SocketAddr {
    let acceptor = TlsAcceptor::builder()
        .certificate(cert.chain(), cert.key())
        .client_auth(client_auth)
        .build()
        .expect("acceptor");
    let server = HttpServer::new(Hello, Default::default());
    reactor
        .listen_tls(SocketAddr::from(([127, 0, 0, 1], 0)), &acceptor, server)
        .expect("listen_tls")
}

fn http_server(reactor: &mut Reactor) -> SocketAddr {
    let server = HttpServer::new(Hello, Default::default());
    reactor
        .listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
        .expect("listen")
}

/// A connector trusting `ca` only.
fn trusting(ca: &TestCa) -> TlsConnector {
    TlsConnector::builder()
        .roots(Roots::Certificates(vec![ca.cert.clone()]))
        .alpn(["http/1.1"])
        .build()
        .expect("connector")
}

/// A client whose TLS requests trust `ca`.
fn client_trusting(reactor: &Reactor, ca: &TestCa) -> HttpClient {
    let client = HttpClient::new(reactor.handle(), ClientConfig::default());
    client.set_tls_connector(trusting(ca));
    client
}

/// The rustls verdict of a failed TLS request.
#[track_caller]
fn handshake_error(result: Result<ClientResponse, ClientError>) -> RustlsError {
    match result {
        Err(ClientError::Tls {
            error: TlsError::Handshake(error),
            ..
        }) => error,
        other => panic!("expected a TLS handshake error, got {other:?}"),
    }
}

ringwork::platform::test_all_backends! {
    fn get_over_tls_reuses_one_connection(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let addr = https_server(&mut reactor, &ca.server(&["localhost", "127.0.0.1"]), ClientAuth::None);
        let client = client_trusting(&reactor, &ca);
        for i in 0..3 {
            let url = format!("https://localhost:{}/n/{i}", addr.port());
            let response = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")).expect("response");
            assert_eq!(response.head.status, 200);
            assert_eq!(text(&response), format!("tls=true /n/{i}"));
        }
        let stats = client.stats();
        assert_eq!((stats.connections_opened, stats.reused), (1, 2), "{stats:?}");
        assert_eq!(client.idle_connections_to("localhost", addr.port()), 1);
        // An IP literal is verified as an IP address (the certificate names 127.0.0.1): a
        // connection of its own, since the name differs.
        let url = format!("https://127.0.0.1:{}/ip", addr.port());
        let response = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")).expect("response");
        assert_eq!(text(&response), "tls=true /ip");
        assert_eq!(client.stats().connections_opened, 2);
    }

    fn untrusted_ca_is_a_tls_error(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let addr = https_server(&mut reactor, &ca.server(&["localhost"]), ClientAuth::None);
        let client = client_trusting(&reactor, &TestCa::new());
        let url = format!("https://localhost:{}/", addr.port());
        let result = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url"));
        let message = result.as_ref().err().map(ToString::to_string).unwrap_or_default();
        let error = handshake_error(result);
        assert!(matches!(error, RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)), "{error}");
        assert!(message.contains(&addr.to_string()) && message.contains("UnknownIssuer"), "{message}");
        // The same server through a per-request connector that trusts its CA.
        let target = TlsTarget { server_name: server_name("localhost").expect("name"), connector: Some(trusting(&ca)) };
        let request = ClientRequest::get(addr, "/own").tls(target);
        let response = get(&mut reactor, &client, request).expect("response");
        assert_eq!(text(&response), "tls=true /own");
    }

    fn hostname_mismatch_is_a_tls_error(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let addr = https_server(&mut reactor, &ca.server(&["a.test"]), ClientAuth::None);
        let client = client_trusting(&reactor, &ca);
        let url = format!("https://localhost:{}/", addr.port());
        let error = handshake_error(get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")));
        assert!(
            matches!(
                error,
                RustlsError::InvalidCertificate(
                    CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
                )
            ),
            "{error}"
        );
        // Verified as the name the certificate has, the same server is fine.
        let request = ClientRequest::from_url(&url)
            .expect("url")
            .tls(TlsTarget::new(server_name("a.test").expect("name")));
        let response = get(&mut reactor, &client, request).expect("response");
        assert_eq!(text(&response), "tls=true /");
    }

    fn pool_keeps_plaintext_and_tls_apart(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let client = client_trusting(&reactor, &ca);
        // A plaintext server with an idle pooled connection: an https request to the same
        // address must not ride on it (it would succeed in the clear); its own connection
        // fails the handshake against a server that does not speak TLS.
        let plain = http_server(&mut reactor);
        let response = get(&mut reactor, &client, ClientRequest::get(plain, "/p")).expect("plain");
        assert_eq!(text(&response), "tls=false /p");
        assert_eq!(client.idle_connections(plain), 1);
        let https = ClientRequest::get(plain, "/s").tls(TlsTarget::new(server_name("localhost").expect("name")));
        let result = get(&mut reactor, &client, https);
        assert!(matches!(result, Err(ClientError::Tls { .. })), "{result:?}");
        assert_eq!(client.stats().connections_opened, 2);
        // The plaintext connection is still there, and still used for plaintext.
        let response = get(&mut reactor, &client, ClientRequest::get(plain, "/p2")).expect("plain");
        assert_eq!(text(&response), "tls=false /p2");
        assert_eq!(client.stats().connections_opened, 2);

        // A TLS server with an idle pooled connection: a plaintext request to it gets its
        // own connection (and no answer a TLS server would give in the clear).
        let tls = https_server(&mut reactor, &ca.server(&["localhost", "b.test"]), ClientAuth::None);
        let url = format!("https://localhost:{}/t", tls.port());
        let response = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")).expect("tls");
        assert_eq!(text(&response), "tls=true /t");
        assert_eq!(client.stats().connections_opened, 3);
        let result = get(&mut reactor, &client, ClientRequest::get(tls, "/clear"));
        assert!(!matches!(&result, Ok(r) if r.head.status == 200), "{result:?}");
        assert_eq!(client.stats().connections_opened, 4);
        // Another server name to the same address: another connection too.
        let request = ClientRequest::get(tls, "/b").tls(TlsTarget::new(server_name("b.test").expect("name")));
        let response = get(&mut reactor, &client, request).expect("tls as b.test");
        assert_eq!(text(&response), "tls=true /b");
        assert_eq!(client.stats().connections_opened, 5);
        // The first TLS connection still serves its own name.
        let response = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")).expect("tls");
        assert_eq!(text(&response), "tls=true /t");
        assert_eq!(client.stats().connections_opened, 5);
    }

    fn default_connector_uses_the_system_roots(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let addr = https_server(&mut reactor, &ca.server(&["localhost"]), ClientAuth::None);
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        let url = format!("https://localhost:{}/", addr.port());
        match get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")) {
            // The test CA is in no system store.
            Err(ClientError::Tls { error: TlsError::Handshake(RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)), .. }) => {}
            // A machine without any system roots: an error, not a panic.
            Err(ClientError::TlsConfig(error)) => eprintln!("no system roots here: {error}"),
            other => panic!("expected an untrusted certificate, got {other:?}"),
        }
    }

    fn client_certificate_for_a_server_that_requires_one(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let required = ClientAuth::Required(vec![ca.cert.clone()]);
        let addr = https_server(&mut reactor, &ca.server(&["localhost"]), required);
        let url = format!("https://localhost:{}/m", addr.port());
        let alice = ca.client("alice");
        let with_cert = TlsConnector::builder()
            .roots(Roots::Certificates(vec![ca.cert.clone()]))
            .client_certificate(alice.chain(), alice.key())
            .build()
            .expect("connector");
        let client = HttpClient::new(reactor.handle(), ClientConfig::default());
        client.set_tls_connector(with_cert);
        let response = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")).expect("mTLS");
        assert_eq!(text(&response), "tls=true /m");
        // Without one: TLS 1.3 clients finish first and hear of the refusal by alert, so
        // this is a TLS error during or right after the handshake.
        let without = client_trusting(&reactor, &ca);
        let result = get(&mut reactor, &without, ClientRequest::from_url(&url).expect("url"));
        let error = result.as_ref().err().and_then(ClientError::tls_error).cloned();
        let error = error.unwrap_or_else(|| panic!("expected a TLS error, got {result:?}"));
        assert!(error.to_string().to_lowercase().replace(' ', "").contains("certificaterequired"), "{error}");
    }

    fn against_openssl_s_server(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let Some(server) = OpensslServer::start("https-client-openssl") else { return };
        let client = client_trusting(&reactor, &server.ca);
        let url = format!("https://localhost:{}/", server.addr.port());
        let response = get(&mut reactor, &client, ClientRequest::from_url(&url).expect("url")).expect("response");
        assert_eq!(response.head.status, 200);
        // s_server -www describes the session it negotiated.
        let body = text(&response);
        assert!(body.contains("Ciphers supported in s_server binary"), "{body}");
        assert!(body.contains("TLSv1.3"), "{body}");
        // And an untrusting client is refused.
        let stranger = client_trusting(&reactor, &TestCa::new());
        let error = handshake_error(get(&mut reactor, &stranger, ClientRequest::from_url(&url).expect("url")));
        assert!(matches!(error, RustlsError::InvalidCertificate(CertificateError::UnknownIssuer)), "{error}");
    }
}

/// `openssl s_server -www` on a free loopback port with a certificate of its own test CA
/// (for `localhost`); killed on drop.
struct OpensslServer {
    ca: TestCa,
    addr: SocketAddr,
    child: Child,
    _dir: TempDir,
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
        let (cert, key) = ca.server(&["localhost"]).write_pem(&dir.0, "server");
        let (child, addr) = common::openssl_s_server_www(&cert, &key);
        Some(OpensslServer {
            ca,
            addr,
            child,
            _dir: dir,
        })
    }
}

impl Drop for OpensslServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
