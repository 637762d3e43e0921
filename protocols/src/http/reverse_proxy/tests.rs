use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;

fn route(host: Option<&str>, prefix: &str, upstream: usize) -> Route {
    Route {
        host: host.map_or(HostPattern::Any, |h| HostPattern::parse(h).unwrap()),
        prefix: prefix.to_owned(),
        upstream,
        host_rewrite: None,
        strip_prefix: false,
        rate_limit: None,
    }
}

// --- routing ---

#[test]
fn host_patterns() {
    assert_eq!(
        HostPattern::parse("Example.COM."),
        Ok(HostPattern::Exact("example.com".into()))
    );
    assert_eq!(
        HostPattern::parse("*.example.com"),
        Ok(HostPattern::Wildcard(".example.com".into()))
    );
    for bad in ["", "*.", "a.*.com", "example.com:80", "exa mple.com", "*"] {
        assert!(HostPattern::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        routing::normalize_host(b"Example.com:8080"),
        Some("example.com".into())
    );
    assert_eq!(routing::normalize_host(b"[::1]:8080"), Some("[::1]".into()));
    assert_eq!(
        routing::normalize_host(b"www.example.com."),
        Some("www.example.com".into())
    );
    assert_eq!(routing::normalize_host(b""), None);
}

#[test]
fn lookup_prefers_exact_host_then_wildcard_then_any_and_longest_prefix() {
    let table = RouteTable::new(vec![
        route(None, "/", 0),
        route(None, "/static/", 1),
        route(Some("*.example.com"), "/", 2),
        route(Some("*.api.example.com"), "/", 3),
        route(Some("www.example.com"), "/", 4),
        route(Some("www.example.com"), "/v2/", 5),
        route(Some("www.example.com"), "/v2/admin", 6),
    ]);
    let up = |host: Option<&str>, path: &str| {
        table
            .lookup(host.map(str::as_bytes), path.as_bytes())
            .map(|r| r.upstream)
    };
    assert_eq!(up(None, "/x"), Some(0));
    assert_eq!(up(Some("other.org"), "/static/a.css"), Some(1));
    assert_eq!(up(Some("a.example.com"), "/static/a.css"), Some(2));
    // The wildcard needs one more label.
    assert_eq!(up(Some("example.com"), "/"), Some(0));
    assert_eq!(up(Some("x.y.example.com"), "/"), Some(2));
    assert_eq!(up(Some("v1.api.example.com"), "/"), Some(3));
    assert_eq!(up(Some("WWW.Example.com:443"), "/"), Some(4));
    assert_eq!(up(Some("www.example.com"), "/v2/users"), Some(5));
    assert_eq!(up(Some("www.example.com"), "/v2/admin/x"), Some(6));
    assert_eq!(up(Some("www.example.com"), "/v2"), Some(4));

    // No catch-all: an unknown host or a path outside every prefix has no route.
    let strict = RouteTable::new(vec![route(Some("a.test"), "/api/", 0)]);
    assert!(strict.lookup(Some(b"b.test"), b"/api/x").is_none());
    assert!(strict.lookup(Some(b"a.test"), b"/other").is_none());
    assert!(strict.lookup(None, b"/api/x").is_none());
    // Ties go to the first route.
    let tie = RouteTable::new(vec![route(None, "/", 7), route(None, "/", 8)]);
    assert_eq!(tie.lookup(None, b"/").map(|r| r.upstream), Some(7));
}

#[test]
fn upstream_round_robin_and_backoff() {
    let a: ServerAddr = "127.0.0.1:1".parse().unwrap();
    let b: ServerAddr = "backend.internal:2".parse().unwrap();
    let c: ServerAddr = "127.0.0.1:3".parse().unwrap();
    let mut pool = UpstreamPool::new(
        "p",
        &[a.clone(), b.clone(), c.clone()],
        Duration::from_secs(10),
    );
    let t0 = Instant::now();
    let picks: Vec<_> = (0..6).map(|_| pool.pick(t0).unwrap()).collect();
    assert_eq!(picks, [&a, &b, &c, &a, &b, &c].map(Clone::clone));
    pool.mark_failed(&b, t0);
    let picks: Vec<_> = (0..4).map(|_| pool.pick(t0).unwrap()).collect();
    assert_eq!(picks, [&a, &c, &a, &c].map(Clone::clone));
    // After the back-off it is tried again.
    let later = t0 + Duration::from_secs(11);
    let picks: Vec<_> = (0..3).map(|_| pool.pick(later).unwrap()).collect();
    assert!(picks.contains(&b), "{picks:?}");
    // All down: the one whose back-off ends first.
    pool.mark_failed(&a, t0);
    pool.mark_failed(&b, t0 + Duration::from_secs(1));
    pool.mark_failed(&c, t0 + Duration::from_secs(2));
    assert_eq!(pool.pick(t0), Some(a));
    pool.mark_ok(&c);
    assert_eq!(pool.pick(t0), Some(c));
}

fn servers(n: u16) -> Vec<ServerAddr> {
    (1..=n)
        .map(|i| format!("10.0.0.{i}:80").parse().unwrap())
        .collect()
}

#[test]
fn least_connections_picks_the_least_busy_in_turn() {
    let s = servers(3);
    let mut pool =
        UpstreamPool::new("p", &s, Duration::from_secs(10)).with_balance(Balance::LeastConnections);
    let t0 = Instant::now();
    // All idle: in turn, each now has one in flight.
    let picks: Vec<_> = (0..3).map(|_| pool.pick(t0).unwrap()).collect();
    assert_eq!(picks, s);
    // The second finishes twice as fast: it gets the next ones.
    pool.release(&s[1]);
    assert_eq!(pool.pick(t0).unwrap(), s[1]);
    pool.release(&s[1]);
    pool.release(&s[0]);
    let next = pool.pick(t0).unwrap();
    assert!(next == s[0] || next == s[1], "{next}");
    // A long-running pile on one server: the others take the load.
    let mut pool =
        UpstreamPool::new("p", &s, Duration::from_secs(10)).with_balance(Balance::LeastConnections);
    let mut counts = [0usize; 3];
    for i in 0..300 {
        let addr = pool.pick(t0).unwrap();
        let at = s.iter().position(|x| *x == addr).unwrap();
        counts[at] += 1;
        // Servers 1 and 2 answer at once; server 0 never does.
        if at != 0 || i % 100 == 99 {
            pool.release(&addr);
        }
    }
    assert!(counts[0] <= 3, "{counts:?}");
    assert!(counts[1].abs_diff(counts[2]) <= 1, "{counts:?}");
    // A failed server is skipped while it backs off.
    pool.mark_failed(&s[1], t0);
    for _ in 0..10 {
        let addr = pool.pick(t0).unwrap();
        assert_ne!(addr, s[1]);
        pool.release(&addr);
    }
}

#[test]
fn consistent_hash_spreads_evenly_and_moves_only_the_keys_of_a_leaving_server() {
    let s = servers(4);
    let hash_pool = |servers: &[ServerAddr]| {
        UpstreamPool::new("p", servers, Duration::from_secs(10))
            .with_balance(Balance::ConsistentHash(HashKey::ClientIp))
    };
    let mut pool = hash_pool(&s);
    let t0 = Instant::now();
    let keys: Vec<u64> = (0..20_000u32)
        .map(|i| ip_hash(std::net::Ipv4Addr::from(0x0a00_0000 + i).into()))
        .collect();
    let before: Vec<ServerAddr> = keys
        .iter()
        .map(|&k| pool.pick_for(t0, Some(k)).unwrap())
        .collect();
    // Distribution: each of 4 servers within ±20 % of a quarter.
    for server in &s {
        let share = before.iter().filter(|a| *a == server).count();
        assert!(
            (4_000..=6_000).contains(&share),
            "{server}: {share} of 20,000; {:?}",
            s.iter()
                .map(|x| before.iter().filter(|a| *a == x).count())
                .collect::<Vec<_>>()
        );
    }
    // The same key, the same server (also from a pool built again: another core or process).
    let mut again = hash_pool(&s);
    for (k, addr) in keys.iter().zip(&before).take(1000) {
        assert_eq!(again.pick_for(t0, Some(*k)).as_ref(), Some(addr));
    }
    // Server 2 goes down: only its keys move, spread over the others.
    pool.mark_failed(&s[2], t0);
    let mut moved_to = [0usize; 4];
    for (k, addr) in keys.iter().zip(&before) {
        let now = pool.pick_for(t0, Some(*k)).unwrap();
        if *addr == s[2] {
            assert_ne!(now, s[2]);
            moved_to[s.iter().position(|x| *x == now).unwrap()] += 1;
        } else {
            assert_eq!(now, *addr, "a key of a server still up moved");
        }
    }
    assert!(
        moved_to.iter().filter(|n| **n > 0).count() == 3,
        "{moved_to:?}"
    );
    // Removed from the configuration: the same.
    let without: Vec<ServerAddr> = [&s[0], &s[1], &s[3]].map(Clone::clone).to_vec();
    let mut smaller = hash_pool(&without);
    for (k, addr) in keys.iter().zip(&before) {
        let now = smaller.pick_for(t0, Some(*k)).unwrap();
        if *addr != s[2] {
            assert_eq!(now, *addr);
        }
    }
    // Back up: it gets exactly its keys back.
    pool.mark_ok(&s[2]);
    for (k, addr) in keys.iter().zip(&before) {
        assert_eq!(pool.pick_for(t0, Some(*k)).as_ref(), Some(addr));
    }
    // No key (the header is missing): in turn.
    let picks: Vec<_> = (0..4).map(|_| pool.pick_for(t0, None).unwrap()).collect();
    assert_eq!(picks.len(), 4);
    let mut sorted = picks.clone();
    sorted.sort_by_key(ToString::to_string);
    sorted.dedup();
    assert_eq!(sorted.len(), 4, "{picks:?}");
}

#[test]
fn targets() {
    let split = |t: &'static str| split_target(&Bytes::from_static(t.as_bytes()));
    assert_eq!(split("/a?b"), Ok((None, Bytes::from_static(b"/a?b"))));
    assert_eq!(split("*"), Ok((None, Bytes::from_static(b"*"))));
    assert_eq!(
        split("http://Example.com:8080/x?y"),
        Ok((
            Some(Bytes::from_static(b"Example.com:8080")),
            Bytes::from_static(b"/x?y")
        ))
    );
    assert_eq!(
        split("HTTP://h"),
        Ok((Some(Bytes::from_static(b"h")), Bytes::from_static(b"/")))
    );
    assert_eq!(
        split("http://h?q"),
        Ok((Some(Bytes::from_static(b"h")), Bytes::from_static(b"/?q")))
    );
    assert_eq!(split("example.com:443"), Err(405));
    assert_eq!(split("https://h/"), Err(400));
    assert_eq!(split("http:///x"), Err(400));
    assert_eq!(split("http://user@h/x"), Err(400));
    let strip = |t: &'static str, p| strip_prefix(&Bytes::from_static(t.as_bytes()), p);
    assert_eq!(
        strip("/api/users?x", "/api"),
        Bytes::from_static(b"/users?x")
    );
    assert_eq!(strip("/api/users", "/api/"), Bytes::from_static(b"/users"));
    assert_eq!(strip("/api", "/api"), Bytes::from_static(b"/"));
}

// --- headers ---

fn headers(fields: &[(&'static str, &'static str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in fields {
        h.append(*n, *v);
    }
    h
}

#[test]
fn hop_by_hop_fields_are_stripped() {
    let mut h = headers(&[
        ("Host", "a"),
        ("Connection", "keep-alive, X-Secret , close"),
        ("connection", "X-Other"),
        ("X-Secret", "1"),
        ("x-other", "2"),
        ("Keep-Alive", "timeout=5"),
        ("Proxy-Connection", "keep-alive"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic eA=="),
        ("Proxy-Authenticate", "Basic"),
        ("X-Kept", "yes"),
        ("Content-Type", "text/plain"),
    ]);
    strip_hop_by_hop(&mut h);
    let names: Vec<_> = h
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names, ["Host", "X-Kept", "Content-Type"]);
}

#[test]
fn forwarded_fields() {
    let v4 = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 60)));
    let hop = Hop {
        client: v4,
        proto: "http",
        host: Some(b"example.com"),
    };
    let mut h = headers(&[
        ("X-Forwarded-For", "203.0.113.1"),
        ("x-forwarded-for", "198.51.100.2 "),
        ("X-Forwarded-Proto", "https"),
        ("Forwarded", "for=203.0.113.1"),
    ]);
    add_forwarded(&mut h, &hop, ForwardedMode::Append);
    assert_eq!(
        h.get_str("x-forwarded-for"),
        Some("203.0.113.1, 198.51.100.2, 192.0.2.60")
    );
    assert_eq!(h.get_all("x-forwarded-for").count(), 1);
    assert_eq!(h.get_str("x-forwarded-proto"), Some("http"));
    assert_eq!(h.get_str("x-forwarded-host"), Some("example.com"));
    assert_eq!(
        h.get_str("forwarded"),
        Some("for=203.0.113.1, for=192.0.2.60;proto=http;host=example.com")
    );

    // RFC 7239 §6: IPv6 in brackets and quotes; a host with a port quoted.
    let v6 = Some(IpAddr::V6("2001:db8:cafe::17".parse::<Ipv6Addr>().unwrap()));
    let hop = Hop {
        client: v6,
        proto: "https",
        host: Some(b"example.com:8443"),
    };
    let mut h = headers(&[("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6")]);
    add_forwarded(&mut h, &hop, ForwardedMode::Replace);
    assert_eq!(h.get_str("x-forwarded-for"), Some("2001:db8:cafe::17"));
    assert_eq!(
        h.get_str("forwarded"),
        Some("for=\"[2001:db8:cafe::17]\";proto=https;host=\"example.com:8443\"")
    );
    // An IPv4-mapped client shows as IPv4; an unknown one as "unknown".
    let mapped = Some(IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped()));
    let mut h = Headers::new();
    add_forwarded(
        &mut h,
        &Hop {
            client: mapped,
            proto: "http",
            host: None,
        },
        ForwardedMode::Append,
    );
    assert_eq!(h.get_str("forwarded"), Some("for=10.1.2.3;proto=http"));
    assert!(!h.contains("x-forwarded-host"));
    let mut h = Headers::new();
    add_forwarded(
        &mut h,
        &Hop {
            client: None,
            proto: "http",
            host: None,
        },
        ForwardedMode::Append,
    );
    assert_eq!(h.get_str("x-forwarded-for"), Some("unknown"));
    // Off leaves everything alone.
    let mut h = headers(&[("X-Forwarded-For", "1.1.1.1")]);
    add_forwarded(
        &mut h,
        &Hop {
            client: v4,
            proto: "http",
            host: None,
        },
        ForwardedMode::Off,
    );
    assert_eq!(h, headers(&[("X-Forwarded-For", "1.1.1.1")]));
}

#[test]
fn via() {
    use crate::http::proto::Version;
    let mut h = Headers::new();
    add_via(&mut h, Version::Http11, "ringwork");
    assert_eq!(h.get_str("via"), Some("1.1 ringwork"));
    let mut h = headers(&[("Via", "1.0 fred, 1.1 p.example.net"), ("via", "1.1 cdn")]);
    add_via(&mut h, Version::Http10, "ringwork");
    assert_eq!(
        h.get_str("via"),
        Some("1.0 fred, 1.1 p.example.net, 1.1 cdn, 1.0 ringwork")
    );
    assert_eq!(h.get_all("via").count(), 1);
}

#[test]
fn error_statuses() {
    use crate::http::server::BodyError;
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let refused = ClientError::Connect {
        addr,
        source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
    };
    assert_eq!(status_for(&refused), 502);
    assert_eq!(
        status_for(&ClientError::ConnectTimeout {
            addr,
            timeout: Duration::from_secs(1)
        }),
        504
    );
    assert_eq!(
        status_for(&ClientError::ResponseTimeout {
            timeout: Duration::from_secs(1)
        }),
        504
    );
    assert_eq!(status_for(&ClientError::Closed), 502);
    assert_eq!(
        status_for(&ClientError::Protocol(
            crate::http::proto::H1Error::UnexpectedEof
        )),
        502
    );
    assert_eq!(
        status_for(&ClientError::RequestBody(BodyError::Closed)),
        400
    );
    // TLS: an untrusted or wrong certificate is a bad gateway; a handshake that does not
    // finish in time is a timeout.
    let untrusted = ringwork::tls::rustls::Error::InvalidCertificate(
        ringwork::tls::rustls::CertificateError::UnknownIssuer,
    );
    let tls = |error| ClientError::Tls { addr, error };
    assert_eq!(status_for(&tls(TlsError::Handshake(untrusted))), 502);
    assert_eq!(status_for(&tls(TlsError::ClosedDuringHandshake)), 502);
    assert_eq!(status_for(&tls(TlsError::HandshakeTimeout)), 504);
}

// --- configuration ---

const EXAMPLE: &str = r#"
listen = ["tcp:8080:interface=127.0.0.1"]
cores = 2
max_body = "16MiB"

[timeouts]
connect = "2s"
response_head = 15
idle = "90s"
body = "500ms"
write = "20s"
tunnel = "10m"

[forwarded]
mode = "replace"
proto = "https"

[upstreams.api]
servers = ["127.0.0.1:9001", "[::1]:9002"]
backoff = "30s"

balance = "least-connections"

[upstreams.web]
servers = ["localhost:9003"]
balance = "consistent-hash"
hash_key = "header:X-Session"

[[routes]]
host = "api.example.com"
path = "/v1/"
upstream = "api"
host_rewrite = "api.internal"
strip_prefix = true

[[routes]]
upstream = "web"
"#;

#[test]
fn upstream_protocol_choice() {
    use crate::http::client::HttpProtocol;
    let pool = |servers: &str, extra: &str| {
        let text = format!(
            "listen = [\"tcp:80\"]\n[upstreams.a]\nservers = [\"{servers}\"]\n{extra}\n[[routes]]\nupstream = \"a\"\n"
        );
        ProxyConfig::from_toml(&text).unwrap().upstreams[0].protocol
    };
    assert_eq!(pool("10.0.0.1:80", ""), HttpProtocol::Http1);
    for (name, protocol) in [
        ("h1", HttpProtocol::Http1),
        ("h2", HttpProtocol::Http2),
        ("h2c", HttpProtocol::H2c),
        ("auto", HttpProtocol::Auto),
    ] {
        assert_eq!(
            pool("10.0.0.1:80", &format!("protocol = \"{name}\"")),
            protocol
        );
    }
    assert_eq!(
        pool(
            "https://10.0.0.1:443",
            "protocol = \"auto\"\ntls_verify = false"
        ),
        HttpProtocol::Auto
    );
    // The older spelling: prior knowledge in plaintext, ALPN over TLS (h2c over TLS is
    // auto's behaviour).
    assert_eq!(pool("10.0.0.1:80", "http2 = true"), HttpProtocol::H2c);
}

#[test]
fn the_proxy_advertises_extended_connect() {
    // RFC 8441 is bridged to HTTP/1.1 upgrades upstream (h2_bridge.rs).
    let config = ProxyConfig::from_toml(EXAMPLE).unwrap();
    assert!(super::server_config(&config).http2.enable_connect_protocol);
}

#[test]
fn h2_bridge_checks_the_upstream_accept_and_carries_the_negotiation() {
    use super::h2_bridge::{accept_response, upstream_key};
    use crate::http::proto::Headers;
    use crate::websocket::proto::handshake::accept_key;
    let key = upstream_key().unwrap();
    assert_eq!(key.len(), 24, "base64 of 16 bytes");
    assert_ne!(key, upstream_key().unwrap(), "a fresh key each time");
    let switched = |accept: &str| {
        let mut headers = Headers::new();
        headers.insert("Upgrade", Bytes::from_static(b"websocket"));
        headers.insert(
            "Sec-WebSocket-Accept",
            Bytes::copy_from_slice(accept.as_bytes()),
        );
        headers.insert("Sec-WebSocket-Protocol", Bytes::from_static(b"chat"));
        headers.insert(
            "Sec-WebSocket-Extensions",
            Bytes::from_static(b"permessage-deflate; server_no_context_takeover"),
        );
        headers
    };
    let response = accept_response(&key, switched(&accept_key(key.as_bytes()))).unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    assert_eq!(headers.get_str("sec-websocket-protocol"), Some("chat"));
    assert_eq!(
        headers.get_str("sec-websocket-extensions"),
        Some("permessage-deflate; server_no_context_takeover")
    );
    assert!(!headers.contains("sec-websocket-accept"));
    assert!(!headers.contains("upgrade"));
    // An accept for another key (an upstream answering someone else's handshake): refused.
    assert!(accept_response(&key, switched(&accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="))).is_err());
    let mut not_websocket = switched(&accept_key(key.as_bytes()));
    not_websocket.insert("Upgrade", Bytes::from_static(b"h2c"));
    assert!(accept_response(&key, not_websocket).is_err());
}

#[test]
fn config_example() {
    let config = ProxyConfig::from_toml(EXAMPLE).unwrap();
    assert_eq!(config.listen.len(), 1);
    assert_eq!(config.cores, Some(2));
    assert_eq!(config.max_body, 16 << 20);
    assert_eq!(
        config.timeouts,
        Timeouts {
            connect: Duration::from_secs(2),
            response_head: Duration::from_secs(15),
            idle: Duration::from_secs(90),
            body: Duration::from_millis(500),
            write: Duration::from_secs(20),
            tunnel: Duration::from_secs(600),
        }
    );
    assert_eq!(config.forwarded, ForwardedMode::Replace);
    assert_eq!(config.proto, "https");
    assert_eq!(config.upstreams.len(), 2);
    assert_eq!(config.upstreams[0].name, "api");
    assert_eq!(
        config.upstreams[0].servers[1],
        "[::1]:9002".parse().unwrap()
    );
    assert_eq!(
        config.upstreams[1].servers[0],
        ServerAddr::Host {
            name: "localhost".into(),
            port: 9003
        },
        "names are kept, resolved at each connect"
    );
    assert_eq!(config.upstreams[0].backoff, Duration::from_secs(30));
    assert_eq!(config.upstreams[1].backoff, Duration::from_secs(10));
    assert_eq!(config.upstreams[0].balance, Balance::LeastConnections);
    assert_eq!(
        config.upstreams[1].balance,
        Balance::ConsistentHash(HashKey::Header("x-session".into()))
    );
    let routes = config.routes.routes();
    assert_eq!(routes[0].host, HostPattern::Exact("api.example.com".into()));
    assert_eq!((routes[0].upstream, routes[0].strip_prefix), (0, true));
    assert_eq!(routes[0].host_rewrite.as_deref(), Some("api.internal"));
    assert_eq!(
        (
            &routes[1].host,
            routes[1].prefix.as_str(),
            routes[1].upstream
        ),
        (&HostPattern::Any, "/", 1)
    );

    let minimal = "listen = [\"tcp:80\"]\n[upstreams.a]\nservers = [\"10.0.0.1:80\"]\n[[routes]]\nupstream = \"a\"\n";
    let config = ProxyConfig::from_toml(minimal).unwrap();
    assert_eq!(config.timeouts, Timeouts::default());
    assert_eq!(
        (config.max_body, config.forwarded, config.cores),
        (8 << 20, ForwardedMode::Append, None)
    );
}

#[test]
fn listen_is_optional_but_not_empty() {
    // Without `listen` the program gives the endpoints (`ringwork serve --listen`).
    let routes = "[upstreams.a]\nservers = [\"10.0.0.1:80\"]\n[[routes]]\nupstream = \"a\"\n";
    let config = ProxyConfig::from_toml(routes).unwrap();
    assert!(config.listen.is_empty());
    let empty = ProxyConfig::from_toml(&format!("listen = []\n{routes}"));
    assert!(
        matches!(
            &empty,
            Err(ConfigError::Invalid { line: Some(1), field, .. }) if field == "listen"
        ),
        "{empty:?}"
    );
}

#[test]
fn config_errors_name_line_and_field() {
    let base = "listen = [\"tcp:80\"]\n[upstreams.a]\nservers = [\"10.0.0.1:80\"]\n[[routes]]\nupstream = \"a\"\n";
    let cases: &[(&str, &str, Option<usize>, &str)] = &[
        // (text to replace in base, replacement, line, field)
        (
            "upstream = \"a\"",
            "upstream = \"b\"",
            Some(5),
            "routes[0].upstream",
        ),
        ("10.0.0.1:80", "10.0.0.1", Some(3), "upstreams.a.servers[0]"),
        (
            "10.0.0.1:80",
            "10.0.0.1:99999",
            Some(3),
            "upstreams.a.servers[0]",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = [\"10.0.0.1:80\"]\nbalance = \"random\"",
            Some(4),
            "upstreams.a.balance",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = [\"10.0.0.1:80\"]\nbalance = \"consistent-hash\"\nhash_key = \"cookie\"",
            Some(5),
            "upstreams.a.hash_key",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = [\"10.0.0.1:80\"]\nhash_key = \"client_ip\"",
            Some(4),
            "upstreams.a.hash_key",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = [\"10.0.0.1:80\"]\nprotocol = \"h3\"",
            Some(4),
            "upstreams.a.protocol",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = [\"10.0.0.1:80\"]\nhttp2 = true\nprotocol = \"h2\"",
            Some(5),
            "upstreams.a.protocol",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = [\"https://10.0.0.1:443\"]\nprotocol = \"h2c\"",
            Some(4),
            "upstreams.a.protocol",
        ),
        ("tcp:80", "udp:80", Some(1), "listen[0]"),
        ("tcp:80", "ftp:80", Some(1), "listen[0]"),
        (
            "upstream = \"a\"",
            "upstream = \"a\"\nhost = \"a.*.com\"",
            Some(6),
            "routes[0].host",
        ),
        (
            "upstream = \"a\"",
            "upstream = \"a\"\npath = \"api\"",
            Some(6),
            "routes[0].path",
        ),
        (
            "upstream = \"a\"",
            "upstream = \"a\"\nhots = \"x\"",
            Some(6),
            "toml",
        ),
        (
            "[upstreams.a]",
            "[timeouts]\nconnect = \"5 parsecs\"\n[upstreams.a]",
            Some(3),
            "timeouts.connect",
        ),
        (
            "[upstreams.a]",
            "[timeouts]\nidle = \"0s\"\n[upstreams.a]",
            Some(3),
            "timeouts.idle",
        ),
        (
            "[upstreams.a]",
            "max_body = \"1PB\"\n[upstreams.a]",
            Some(2),
            "max_body",
        ),
        (
            "[upstreams.a]",
            "[forwarded]\nmode = \"sometimes\"\n[upstreams.a]",
            Some(3),
            "forwarded.mode",
        ),
        (
            "servers = [\"10.0.0.1:80\"]",
            "servers = []",
            Some(2),
            "upstreams.a.servers",
        ),
        ("upstream = \"a\"", "upstream = 7", Some(5), "toml"),
        (
            "listen = [\"tcp:80\"]",
            "listen = [\"tcp:80\"\n",
            Some(3),
            "toml",
        ),
    ];
    for (from, to, line, field) in cases {
        assert!(base.contains(from), "{from}");
        let text = base.replacen(from, to, 1);
        match ProxyConfig::from_toml(&text) {
            Err(ConfigError::Invalid {
                line: l,
                field: f,
                message,
            }) => {
                assert_eq!((l, f.as_str()), (*line, *field), "{text}\n{message}");
                let shown = ConfigError::Invalid {
                    line: l,
                    field: f,
                    message,
                }
                .to_string();
                assert!(
                    shown.starts_with(&format!("line {}: ", line.unwrap())),
                    "{shown}"
                );
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let no_routes =
        "listen = [\"tcp:80\"]\nroutes = []\n[upstreams.a]\nservers = [\"10.0.0.1:80\"]\n";
    assert!(matches!(
        ProxyConfig::from_toml(no_routes),
        Err(ConfigError::Invalid { field, .. }) if field == "routes"
    ));
    let missing = ProxyConfig::from_toml("listen = [\"tcp:80\"]\n")
        .unwrap_err()
        .to_string();
    assert!(missing.contains("upstreams"), "{missing}");
}

#[test]
fn client_limits_from_the_file() {
    let routes = "[upstreams.a]\nservers = [\"10.0.0.1:80\"]\n[[routes]]\nupstream = \"a\"\n";
    let config = ProxyConfig::from_toml(routes).unwrap();
    assert_eq!(config.limits, ClientLimits::default());
    let text = format!(
        "{routes}[limits]\nrequests_per_second = 50\nburst = 100\nconnections_per_ip = 8\n"
    );
    let config = ProxyConfig::from_toml(&text).unwrap();
    let requests = config.limits.requests.expect("a rate");
    assert_eq!((requests.rate, requests.burst), (50.0, 100));
    assert_eq!(config.limits.connections_per_ip, Some(8));
    // The burst defaults to one second's worth.
    let config =
        ProxyConfig::from_toml(&format!("{routes}[limits]\nrequests_per_second = 2.5\n")).unwrap();
    assert_eq!(config.limits.requests.map(|r| r.burst), Some(3));
    for (bad, field) in [
        ("requests_per_second = 0", "limits.requests_per_second"),
        ("requests_per_second = -1.5", "limits.requests_per_second"),
        ("burst = 5", "limits.burst"),
        ("connections_per_ip = 0", "limits.connections_per_ip"),
        ("per_route = 1", "toml"),
    ] {
        match ProxyConfig::from_toml(&format!("{routes}[limits]\n{bad}\n")) {
            Err(ConfigError::Invalid { field: f, .. }) => assert_eq!(f, field, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn route_rate_limits_from_the_file() {
    let head = "[upstreams.a]\nservers = [\"10.0.0.1:80\"]\n[[routes]]\nupstream = \"a\"\n";
    let config = ProxyConfig::from_toml(head).unwrap();
    assert_eq!(config.routes.routes()[0].rate_limit, None);
    let config =
        ProxyConfig::from_toml(&format!("{head}rate_limit = 50\nrate_burst = 100\n")).unwrap();
    let limit = config.routes.routes()[0].rate_limit.expect("a rate");
    assert_eq!((limit.rate, limit.burst), (50.0, 100));
    // The burst defaults to one second's worth.
    let config = ProxyConfig::from_toml(&format!("{head}rate_limit = 2.5\n")).unwrap();
    assert_eq!(
        config.routes.routes()[0].rate_limit.map(|r| r.burst),
        Some(3)
    );
    // `head` has four lines: the route's fields start on line 5.
    for (bad, field, at) in [
        ("rate_limit = 0", "routes[0].rate_limit", 5),
        ("rate_limit = -1.5", "routes[0].rate_limit", 5),
        ("rate_limit = 5\nrate_burst = 0", "routes[0].rate_burst", 6),
        ("rate_burst = 5", "routes[0].rate_burst", 5),
        ("rate_limit = \"fast\"", "toml", 5),
        ("rate_burst = -1\nrate_limit = 1", "toml", 5),
    ] {
        match ProxyConfig::from_toml(&format!("{head}{bad}\n")) {
            Err(ConfigError::Invalid { field: f, line, .. }) => {
                assert_eq!(f, field, "{bad}");
                assert_eq!(line, Some(at), "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
}
