//! Client endpoint strings (Twisted's `clientFromString`) connecting on every backend:
//! `tcp:` by name (the system resolver, Happy Eyeballs) and by address with a timeout and
//! a bound source address, `tls:` against the engine's own TLS server (an rcgen
//! certificate, trusted by `ca=`, named by `sni=`, or not verified with `verify=no`), and
//! `unix:`. Each client sends a line, the server echoes it, the client checks it.
//!
//! Server and client share one reactor on the test thread; waits turn the reactor until
//! the event (never sleep).

mod common;

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

use common::{Echo, Hello, any_port, reactor, recorded, wait};
use ringwork::endpoint::{ClientEndpoint, client_from_string};
use ringwork::platform::BackendChoice;
use ringwork::testing::certs::TestCa;
use ringwork::tls::TlsAcceptor;
use ringwork::{ConnectError, Reactor};

fn temp_dir(name: &str, backend: BackendChoice) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "ringwork-endpoints-{name}-{}-{backend:?}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Connects `text`'s endpoint with a client that says `ping` and waits for the echo;
/// returns the connect's outcome as text on failure.
fn ping(reactor: &mut Reactor, text: &str) -> Result<(), String> {
    let connector = client_from_string(text).map_err(|e| e.to_string())?;
    let (client, log) = recorded(Hello(b"ping\n".to_vec()));
    let connect = connector.connect(&reactor.handle(), client);
    let outcome: Rc<RefCell<Option<Result<(), ConnectError>>>> = Rc::default();
    let out = Rc::clone(&outcome);
    reactor.spawn_local(async move { *out.borrow_mut() = Some(connect.await.map(drop)) });
    wait(
        reactor,
        |_| match &*outcome.borrow() {
            Some(Ok(())) => log.borrow().bytes == b"ping\n",
            Some(Err(_)) => true,
            None => false,
        },
        || format!("{text}: {}", log.borrow().summary()),
    );
    let result = outcome.borrow_mut().take().unwrap();
    result.map_err(|e| e.to_string())
}

ringwork::platform::test_all_backends! {
    fn tcp_endpoints(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let addr = reactor.listen_tcp(any_port(), || Echo).unwrap();
        let port = addr.port();
        ping(&mut reactor, &format!("tcp:host=localhost:port={port}")).unwrap();
        ping(&mut reactor, &format!("tcp:localhost:{port}")).unwrap();
        ping(&mut reactor, &format!("tcp:host=127.0.0.1:port={port}:timeout=5:bindAddress=127.0.0.1")).unwrap();
        let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = refused.local_addr().unwrap().port();
        drop(refused);
        let error = ping(&mut reactor, &format!("tcp:host=localhost:port={closed}")).unwrap_err();
        assert!(error.starts_with(&format!("cannot connect to localhost:{closed}: ")), "{error}");
        assert!(error.contains("refused"), "{error}");
    }

    fn tls_endpoints(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ca = TestCa::new();
        let cert = ca.server(&["localhost", "backend.test"]);
        let acceptor = TlsAcceptor::builder().certificate(cert.chain(), cert.key()).build().unwrap();
        let addr = reactor.listen_tls(any_port(), &acceptor, || Echo).unwrap();
        let port = addr.port();
        let dir = temp_dir("tls", backend);
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, &ca.cert_pem).unwrap();
        let ca_arg = ca_file.display();
        ping(&mut reactor, &format!("tls:host=localhost:port={port}:ca={ca_arg}")).unwrap();
        ping(&mut reactor, &format!("tls:host=127.0.0.1:port={port}:sni=backend.test:ca={ca_arg}")).unwrap();
        ping(&mut reactor, &format!("tls:host=localhost:port={port}:verify=no")).unwrap();
        // Another name than the certificate's: refused by the client.
        let error = ping(&mut reactor, &format!("tls:host=127.0.0.1:port={port}:sni=other.test:ca={ca_arg}")).unwrap_err();
        assert!(error.contains("cannot connect to 127.0.0.1") || error.contains("certificate"), "{error}");
        // A CA file that is not there: an error before any connect.
        let error = ping(&mut reactor, &format!("tls:host=localhost:port={port}:ca={}", dir.join("missing.pem").display())).unwrap_err();
        assert!(error.contains("missing.pem"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn unix_endpoints(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let dir = temp_dir("unix", backend);
        let path = dir.join("echo:1.sock");
        reactor.listen_unix(&path, || Echo).unwrap();
        let escaped = path.display().to_string().replace(':', r"\:");
        ping(&mut reactor, &format!("unix:path={escaped}:timeout=5")).unwrap();
        let endpoint: ClientEndpoint = format!("unix:{escaped}").parse().unwrap();
        assert_eq!(endpoint, ClientEndpoint::Unix { path: path.clone(), timeout: None });
        let error = ping(&mut reactor, &format!("unix:path={}", dir.join("none.sock").display())).unwrap_err();
        assert!(error.contains("connect failed"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
