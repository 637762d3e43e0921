//! URL parsing and request-head encoding, table-driven.

use std::net::SocketAddr;

use ringwork::tls::ServerName;

use crate::http::client::error::ClientError;
use crate::http::client::request::{ClientRequest, encode_head, is_idempotent};
use crate::http::proto::Method;

#[test]
fn urls_that_parse() {
    // (url, addr, authority, target)
    let table = [
        (
            "http://127.0.0.1:8080/x?y",
            "127.0.0.1:8080",
            "127.0.0.1:8080",
            "/x?y",
        ),
        ("http://127.0.0.1/", "127.0.0.1:80", "127.0.0.1", "/"),
        ("http://127.0.0.1", "127.0.0.1:80", "127.0.0.1", "/"),
        ("http://127.0.0.1?q=1", "127.0.0.1:80", "127.0.0.1", "/?q=1"),
        ("HTTP://10.0.0.1:1/a#frag", "10.0.0.1:1", "10.0.0.1:1", "/a"),
        ("http://[::1]:9000/v6", "[::1]:9000", "[::1]:9000", "/v6"),
        ("http://[::1]/", "[::1]:80", "[::1]", "/"),
    ];
    for (url, addr, authority, target) in table {
        let request = ClientRequest::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(request.addr, addr.parse::<SocketAddr>().unwrap(), "{url}");
        assert_eq!(&request.authority[..], authority.as_bytes(), "{url}");
        assert_eq!(&request.target[..], target.as_bytes(), "{url}");
        assert_eq!(request.method, Method::Get, "{url}");
        assert!(request.tls.is_none(), "{url}: plaintext");
    }
}

#[test]
fn https_urls_verify_the_host_and_default_to_443() {
    // (url, addr, authority, server name)
    let table = [
        (
            "https://127.0.0.1/x",
            "127.0.0.1:443",
            "127.0.0.1",
            ServerName::IpAddress("127.0.0.1".parse::<std::net::IpAddr>().unwrap().into()),
        ),
        (
            "https://[::1]:9443",
            "[::1]:9443",
            "[::1]:9443",
            ServerName::IpAddress("::1".parse::<std::net::IpAddr>().unwrap().into()),
        ),
    ];
    for (url, addr, authority, name) in table {
        let request = ClientRequest::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(request.addr, addr.parse::<SocketAddr>().unwrap(), "{url}");
        assert_eq!(&request.authority[..], authority.as_bytes(), "{url}");
        let tls = request
            .tls
            .as_ref()
            .unwrap_or_else(|| panic!("{url}: no tls"));
        assert_eq!(tls.server_name, name, "{url}");
        assert!(tls.connector.is_none(), "{url}: the client's connector");
        // Plaintext again on request.
        assert!(request.tls(None).tls.is_none());
    }
}

#[test]
fn urls_with_host_names() {
    // (url, host, port, authority, server name if https)
    let table = [
        (
            "http://localhost:3000/p",
            "localhost",
            3000,
            "localhost:3000",
            None,
        ),
        ("http://LOCALHOST/", "LOCALHOST", 80, "LOCALHOST", None),
        (
            "http://backend.internal:8080/x",
            "backend.internal",
            8080,
            "backend.internal:8080",
            None,
        ),
        (
            "HTTPS://localhost:8443/",
            "localhost",
            8443,
            "localhost:8443",
            Some("localhost"),
        ),
        (
            "https://example.com/",
            "example.com",
            443,
            "example.com",
            Some("example.com"),
        ),
    ];
    for (url, host, port, authority, name) in table {
        let request = ClientRequest::from_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(request.host.as_deref(), Some(host), "{url}");
        assert_eq!(request.addr.port(), port, "{url}");
        assert!(request.addr.ip().is_unspecified(), "{url}");
        assert_eq!(&request.authority[..], authority.as_bytes(), "{url}");
        assert_eq!(request.server(), format!("{host}:{port}"));
        let tls = request.tls.as_ref().map(|t| t.server_name.clone());
        assert_eq!(tls, name.map(|n| ServerName::try_from(n).unwrap()), "{url}");
    }
    let literal = ClientRequest::from_url("http://127.0.0.1:1/").unwrap();
    assert_eq!(literal.host, None);
}

#[test]
fn urls_that_fail() {
    // (url, reason contains)
    let table = [
        ("ftp://127.0.0.1/", "only the http and https schemes"),
        ("httpss://127.0.0.1/", "only the http and https schemes"),
        ("https://user@127.0.0.1/", "user info"),
        ("https://127.0.0.1:0x1bb/", "malformed port"),
        ("127.0.0.1:80/", "no scheme"),
        ("http://exa mple.com/", "not an IP address or a host name"),
        ("http://a..b/", "not an IP address or a host name"),
        ("http:///path", "empty host"),
        ("http://user@127.0.0.1/", "user info"),
        ("http://127.0.0.1:99999/", "out of range"),
        ("http://127.0.0.1:/", "malformed port"),
        ("http://127.0.0.1:8x/", "malformed port"),
        ("http://[::1/", "unclosed"),
        ("http://[::1]x/", "junk after"),
        ("http://[zz]/", "IPv6"),
        ("http://127.0.0.1/a b", "whitespace"),
        ("http://1.2.3/", "not an IP address or a host name"),
    ];
    for (url, reason) in table {
        match ClientRequest::from_url(url) {
            Err(ClientError::BadUrl { reason: got }) => {
                assert!(got.contains(reason), "{url}: {got:?} lacks {reason:?}");
            }
            other => panic!("{url}: expected BadUrl, got {other:?}"),
        }
    }
}

fn head(request: &ClientRequest, agent: Option<&str>) -> String {
    String::from_utf8(encode_head(request, agent).unwrap().to_vec()).unwrap()
}

#[test]
fn head_framing_fields() {
    let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    // (request, user agent, expected head)
    let table = [
        (
            ClientRequest::get(addr, "/"),
            Some("ua/1"),
            "GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: ua/1\r\n\r\n",
        ),
        (
            ClientRequest::get(addr, "/").method(Method::Post),
            None,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 0\r\n\r\n",
        ),
        (
            ClientRequest::get(addr, "/x")
                .method(Method::Put)
                .authority("example.com")
                .header("User-Agent", "mine")
                .header("Transfer-Encoding", "chunked")
                .body("abc"),
            Some("ua/1"),
            "PUT /x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: mine\r\n\
             Content-Length: 3\r\n\r\n",
        ),
        (
            ClientRequest::get(addr, "/").header("host", "other"),
            None,
            "GET / HTTP/1.1\r\nhost: other\r\n\r\n",
        ),
        (
            ClientRequest::get(addr, "/").method(Method::Head),
            None,
            "HEAD / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n",
        ),
    ];
    for (request, agent, expected) in table {
        assert_eq!(head(&request, agent), expected);
    }
}

#[test]
fn heads_that_would_split_the_message_are_refused() {
    let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
    let bad = [
        ClientRequest::get(addr, "/a b"),
        ClientRequest::get(addr, ""),
        ClientRequest::get(addr, "/").header("X", "a\r\nInjected: 1"),
        ClientRequest::get(addr, "/").header("Bad Name", "v"),
        ClientRequest::get(addr, "/").authority("h\r\nX: y"),
    ];
    for request in bad {
        let result = encode_head(&request, None);
        assert!(
            matches!(result, Err(ClientError::InvalidRequest(_))),
            "{request:?}: {result:?}"
        );
    }
}

#[test]
fn idempotent_methods() {
    for method in [
        Method::Get,
        Method::Head,
        Method::Put,
        Method::Delete,
        Method::Options,
        Method::Trace,
    ] {
        assert!(is_idempotent(&method), "{method}");
    }
    for method in [Method::Post, Method::Patch, Method::Connect] {
        assert!(!is_idempotent(&method), "{method}");
    }
}
