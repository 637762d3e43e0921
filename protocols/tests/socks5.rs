//! The SOCKS5 server over real sockets on both backends: curl through it (`--socks5` with
//! an IP, `--socks5-hostname` with `localhost` resolved by the server, username/password
//! via `--proxy-user` and a `socks5://user:pass@` URL, a wrong password refused) to the
//! `ringwork::http` hello server started in-test; and raw clients for the reply codes
//! (connection refused 0x05, BIND 0x07, an unknown name 0x04). The destination policy: by
//! default loopback targets are refused (REP 0x02) in every spelling — an address, a name
//! resolving to it, numeric names (`0`, `2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`),
//! IPv4-mapped IPv6 — and an allow rule opens one. The other tests allow loopback, where
//! their web server is.
//!
//! curl must be installed: a missing one fails the test, naming
//! `scripts/install-http-test-deps.sh`. Nothing sleeps.
#![cfg(feature = "engine")]

mod common;
mod proxy_support;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

use common::Server;
use proxy_support::{LIMIT, Proxy, connect, read_all, refused_port};
use ringwork::BackendChoice;
use ringwork_protocols::destination::{DestinationPolicy, Rule};
use ringwork_protocols::http::server::ServerConfig;
use ringwork_protocols::http::services::{HELLO_BODY, hello};
use ringwork_protocols::socks5::{Auth, Socks5Config};

const INSTALL: &str = "scripts/install-http-test-deps.sh";

/// `curl` with a time limit; returns its output whatever its status.
fn curl(args: &[&str]) -> Output {
    let max = LIMIT.as_secs().to_string();
    let mut all = vec!["--silent", "--show-error", "--max-time", &max];
    all.extend_from_slice(args);
    Command::new("curl")
        .args(&all)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}): install it with {INSTALL}"))
}

#[track_caller]
fn curl_ok(args: &[&str]) -> Vec<u8> {
    let out = curl(args);
    assert!(
        out.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A SOCKS5 proxy that may reach loopback (where the tests' servers are).
fn socks(backend: BackendChoice, auth: Auth) -> Option<Proxy> {
    socks_with(backend, auth, &["allow loopback"])
}

/// A SOCKS5 proxy with these rules (`allow X` / `deny X`, in order).
fn socks_with(backend: BackendChoice, auth: Auth, rules: &[&str]) -> Option<Proxy> {
    let rules = rules
        .iter()
        .map(|r| match r.split_once(' ') {
            Some(("allow", text)) => Rule::allow(text).expect("a rule"),
            Some(("deny", text)) => Rule::deny(text).expect("a rule"),
            _ => panic!("{r:?}: allow X or deny X"),
        })
        .collect();
    let config = Socks5Config {
        auth,
        policy: DestinationPolicy::new(rules),
        ..Socks5Config::default()
    };
    Proxy::socks5(backend, config)
}

/// A request to CONNECT to the domain name `name` (sent as is) on `port`.
fn connect_name(name: &str, port: u16) -> Vec<u8> {
    let mut r = vec![5, 1, 0, 3, u8::try_from(name.len()).expect("a short name")];
    r.extend_from_slice(name.as_bytes());
    r.extend_from_slice(&port.to_be_bytes());
    r
}

/// A request to CONNECT to an IPv6 address.
fn connect_v6(addr: std::net::Ipv6Addr, port: u16) -> Vec<u8> {
    let mut r = vec![5, 1, 0, 4];
    r.extend_from_slice(&addr.octets());
    r.extend_from_slice(&port.to_be_bytes());
    r
}

/// The spellings of 127.0.0.1 a client may try as a domain name.
const LOOPBACK_NAMES: [&str; 9] = [
    "2130706433",
    "0x7f.1",
    "127.1",
    "0177.0.0.1",
    "0x7f000001",
    "127.0.0.1.",
    "[::ffff:127.0.0.1]",
    "::ffff:7f00:1",
    "localhost",
];

fn web(backend: BackendChoice) -> Option<Server> {
    Server::start(backend, ServerConfig::default(), || hello)
}

fn users() -> Auth {
    Auth::UserPass(vec![(b"alice".to_vec(), b"s3cret".to_vec())])
}

/// A raw SOCKS5 client: no-auth greeting, then `request`; returns the reply (10 bytes for
/// an IPv4 BND.ADDR) and whatever followed until EOF.
fn raw_request(proxy: SocketAddr, request: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut s = connect(proxy);
    s.write_all(&[5, 1, 0]).expect("greeting");
    let mut choice = [0u8; 2];
    s.read_exact(&mut choice).expect("method choice");
    assert_eq!(choice, [5, 0]);
    s.write_all(request).expect("request");
    let mut reply = vec![0u8; 10];
    s.read_exact(&mut reply).expect("a reply");
    (reply, read_all(&mut s))
}

fn connect_v4(addr: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = addr else {
        panic!("an IPv4 address")
    };
    let mut r = vec![5, 1, 0, 1];
    r.extend_from_slice(&v4.ip().octets());
    r.extend_from_slice(&v4.port().to_be_bytes());
    r
}

ringwork::platform::test_all_backends! {
    fn curl_socks5_with_an_ip_target(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let Some(proxy) = socks(backend, Auth::None) else { return };
        let url = format!("http://{}/", web.addr);
        let body = curl_ok(&["--socks5", &proxy.addr.to_string(), &url]);
        assert_eq!(body, HELLO_BODY);
        let end = proxy.wait_until("the pair to close", |i| i.stats.open == 0);
        assert_eq!(end.stats.total, 1);
    }

    fn curl_socks5_hostname_resolves_on_the_server(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let Some(proxy) = socks(backend, Auth::None) else { return };
        let url = format!("http://localhost:{}/", web.addr.port());
        let body = curl_ok(&["--socks5-hostname", &proxy.addr.to_string(), &url]);
        assert_eq!(body, HELLO_BODY);
        // Twice more, over one proxy: names are resolved at each request.
        for _ in 0..2 {
            let url = format!("socks5h://{}", proxy.addr);
            let target = format!("http://localhost:{}/", web.addr.port());
            assert_eq!(curl_ok(&["--proxy", &url, &target]), HELLO_BODY);
        }
    }

    fn curl_with_username_and_password(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let Some(proxy) = socks(backend, users()) else { return };
        let target = format!("http://{}/", web.addr);
        let body = curl_ok(&[
            "--socks5", &proxy.addr.to_string(), "--proxy-user", "alice:s3cret", &target,
        ]);
        assert_eq!(body, HELLO_BODY);
        let url = format!("socks5://alice:s3cret@{}", proxy.addr);
        assert_eq!(curl_ok(&["--proxy", &url, &target]), HELLO_BODY);

        // A wrong password, and none at all, are refused before any connect.
        let url = format!("socks5://alice:wrong@{}", proxy.addr);
        let out = curl(&["--proxy", &url, &target]);
        assert!(!out.status.success(), "a wrong password was accepted");
        let out = curl(&["--socks5", &proxy.addr.to_string(), &target]);
        assert!(!out.status.success(), "no credentials were accepted");
        assert_eq!(proxy.inspect().stats.total, 2, "only the good ones connected");
    }

    fn a_refused_connect_gets_rep_0x05(backend: BackendChoice) {
        let Some(proxy) = socks(backend, Auth::None) else { return };
        let (reply, rest) = raw_request(proxy.addr, &connect_v4(refused_port()));
        assert_eq!(reply, [5, 0x05, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert!(rest.is_empty());
    }

    fn bind_gets_rep_0x07_and_an_unknown_name_0x04(backend: BackendChoice) {
        let Some(proxy) = socks(backend, Auth::None) else { return };
        let mut bind = connect_v4(refused_port());
        bind[1] = 0x02;
        let (reply, _) = raw_request(proxy.addr, &bind);
        assert_eq!(reply[..2], [5, 0x07]);

        let name = b"no-such-host.invalid";
        let mut request = vec![5, 1, 0, 3, name.len() as u8];
        request.extend_from_slice(name);
        request.extend_from_slice(&80u16.to_be_bytes());
        let (reply, _) = raw_request(proxy.addr, &request);
        assert_eq!(reply[..2], [5, 0x04]);
    }

    /// A name the server's resolver maps to `::1` (nothing listens there for the web port:
    /// refused) and `127.0.0.1`: the server checks both against its policy and races them
    /// (Happy Eyeballs): IPv6 is refused, IPv4 connects at once. With `::1` denied by a
    /// rule only IPv4 is tried; with both denied the reply is 0x02.
    fn a_name_from_the_resolver_hook_is_raced_and_checked(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let port = web.addr.port();
        let names = || vec![(
            "web.test".to_owned(),
            vec!["::1".parse().unwrap()],
            vec!["127.0.0.1".parse().unwrap()],
        )];
        let url = format!("http://web.test:{port}/");
        for rules in [&["allow loopback"][..], &["deny ::1", "allow loopback"]] {
            let config = Socks5Config {
                policy: DestinationPolicy::new(rules.iter().map(|r| match r.split_once(' ') {
                    Some(("allow", t)) => Rule::allow(t).unwrap(),
                    Some((_, t)) => Rule::deny(t).unwrap(),
                    None => unreachable!(),
                }).collect()),
                ..Socks5Config::default()
            };
            let Some(proxy) = Proxy::socks5_resolving(backend, config, names()) else { return };
            let body = curl_ok(&["--socks5-hostname", &proxy.addr.to_string(), &url]);
            assert_eq!(body, HELLO_BODY, "rules {rules:?}");
        }
        let config = Socks5Config::default();
        let Some(proxy) = Proxy::socks5_resolving(backend, config, names()) else { return };
        let (reply, _) = raw_request(proxy.addr, &connect_name("web.test", port));
        assert_eq!(reply[..2], [5, 0x02], "loopback denied by default, in both families");
        let (reply, _) = raw_request(proxy.addr, &connect_name("other.test", port));
        assert_eq!(reply[..2], [5, 0x04], "a name the resolver does not know");
    }

    fn a_target_outside_the_rules_gets_rep_0x02(backend: BackendChoice) {
        let Some(proxy) = socks_with(backend, Auth::None, &["deny *:9", "allow loopback"])
        else {
            return;
        };
        let (reply, rest) = raw_request(proxy.addr, &connect_v4("127.0.0.1:9".parse().unwrap()));
        assert_eq!(reply[..2], [5, 0x02]);
        assert!(rest.is_empty());
        assert_eq!(proxy.inspect().stats.total, 0, "no connect was tried");
    }

    fn loopback_is_refused_by_default_and_allowed_by_a_rule(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let Some(proxy) = socks_with(backend, Auth::None, &[]) else { return };
        let socks = proxy.addr.to_string();
        let port = web.addr.port();
        for (option, host) in [
            ("--socks5", "127.0.0.1"),
            ("--socks5-hostname", "127.0.0.1"),
            ("--socks5-hostname", "localhost"),
            ("--socks5-hostname", "0"),
            ("--socks5-hostname", "2130706433"),
            ("--socks5-hostname", "[::ffff:127.0.0.1]"),
            ("--socks5-hostname", "0x7f.1"),
        ] {
            let url = format!("http://{host}:{port}/");
            let out = curl(&[option, &socks, &url]);
            assert!(!out.status.success(), "curl {option} {url} got through");
            // curl: "Can't complete SOCKS5 connection to ... (2)": REP 0x02.
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("(2)"), "curl {option} {url}: {stderr}");
        }
        // Every spelling, sent raw as a domain name; the unspecified address (reaches this
        // host) as a name and an address; IPv4-mapped IPv6 as an address.
        let mut requests: Vec<Vec<u8>> =
            LOOPBACK_NAMES.iter().map(|name| connect_name(name, port)).collect();
        requests.push(connect_name("0", port));
        requests.push(connect_name("0.0.0.0", port));
        requests.push(connect_v4(SocketAddr::from(([0, 0, 0, 0], port))));
        requests.push(connect_v6(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(), port));
        requests.push(connect_v6(std::net::Ipv6Addr::LOCALHOST, port));
        for request in &requests {
            let (reply, rest) = raw_request(proxy.addr, request);
            assert_eq!(reply[..2], [5, 0x02], "{request:?}");
            assert!(rest.is_empty());
        }
        assert_eq!(proxy.inspect().stats.total, 0, "no connect was tried");

        // One rule opens the web server, in every spelling, and nothing else on loopback.
        let rule = format!("allow 127.0.0.1:{port}");
        let Some(proxy) = socks_with(backend, Auth::None, &[&rule]) else { return };
        let socks = proxy.addr.to_string();
        for (option, host) in [
            ("--socks5", "127.0.0.1"),
            ("--socks5-hostname", "localhost"),
            ("--socks5-hostname", "2130706433"),
            ("--socks5-hostname", "[::ffff:127.0.0.1]"),
        ] {
            let url = format!("http://{host}:{port}/");
            assert_eq!(curl_ok(&[option, &socks, &url]), HELLO_BODY, "{option} {url}");
        }
        for name in LOOPBACK_NAMES {
            let mut request = connect_name(name, port);
            request.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            let (reply, rest) = raw_request(proxy.addr, &request);
            assert_eq!(reply[..2], [5, 0x00], "{name}");
            let http = String::from_utf8_lossy(&rest);
            assert!(http.ends_with("Hello, World!"), "{name}: {http}");
        }
        let (reply, _) = raw_request(proxy.addr, &connect_v4(refused_port()));
        assert_eq!(reply[..2], [5, 0x02], "another loopback port");
    }

    fn clients_leaving_during_a_lookup_do_no_harm(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let Some(proxy) = socks(backend, Auth::None) else { return };
        let mut request = vec![5, 1, 0, 5, 1, 0, 3, 9];
        request.extend_from_slice(b"localhost");
        request.extend_from_slice(&web.addr.port().to_be_bytes());
        for _ in 0..20 {
            let mut s = connect(proxy.addr);
            s.write_all(&request).expect("write");
            // Gone before (or while) the name resolves.
        }
        let url = format!("http://localhost:{}/", web.addr.port());
        let body = curl_ok(&["--socks5-hostname", &proxy.addr.to_string(), &url]);
        assert_eq!(body, HELLO_BODY);
        proxy.wait_until("every pair to close", |i| i.stats.open == 0);
    }

    fn the_reply_comes_before_relayed_bytes_and_early_data_is_kept(backend: BackendChoice) {
        let Some(web) = web(backend) else { return };
        let Some(proxy) = socks(backend, Auth::None) else { return };
        let mut s = connect(proxy.addr);
        // Greeting, request and the HTTP request in one write (optimistic data).
        let mut all = vec![5, 1, 0];
        all.extend(connect_v4(web.addr));
        all.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        s.write_all(&all).expect("write");
        let got = read_all(&mut s);
        assert_eq!(got[..2], [5, 0]);
        assert_eq!(got[2..4], [5, 0], "REP succeeded");
        assert_eq!(got[5], 1, "an IPv4 BND.ADDR");
        let bound = u16::from_be_bytes([got[10], got[11]]);
        assert_ne!(bound, 0, "BND.PORT is the outbound connection's port");
        let http = String::from_utf8_lossy(&got[12..]);
        assert!(http.starts_with("HTTP/1.1 200 OK"), "{http}");
        assert!(http.ends_with("Hello, World!"), "{http}");
    }
}
