//! Client endpoint strings: every field, positional forms, escapes, round trips through
//! `Display`, and bad input naming the field.

use super::*;

fn parse(text: &str) -> ClientEndpoint {
    text.parse()
        .unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
}

fn error(text: &str) -> ClientEndpointError {
    match text.parse::<ClientEndpoint>() {
        Ok(endpoint) => panic!("{text:?} parsed as {endpoint:?}"),
        Err(e) => e,
    }
}

fn tcp(host: &str, port: u16) -> ClientEndpoint {
    ClientEndpoint::tcp(host, port)
}

#[test]
fn tcp_fields() {
    assert_eq!(
        parse("tcp:host=example.com:port=80"),
        tcp("example.com", 80)
    );
    assert_eq!(
        parse("tcp:port=80:host=example.com"),
        tcp("example.com", 80)
    );
    assert_eq!(parse("tcp:example.com:80"), tcp("example.com", 80));
    assert_eq!(parse("tcp:example.com:port=80"), tcp("example.com", 80));
    assert_eq!(
        parse("tcp:host=db.internal:port=5432:timeout=2.5:bindAddress=127.0.0.2"),
        ClientEndpoint::Tcp {
            host: "db.internal".into(),
            port: 5432,
            timeout: Some(Duration::from_millis(2500)),
            bind: Some("127.0.0.2".parse().unwrap()),
        }
    );
    assert_eq!(parse("tcp:host=localhost.:port=1"), tcp("localhost.", 1));
    assert_eq!(
        parse("tcp:host=under_score.test:port=1"),
        tcp("under_score.test", 1)
    );
}

#[test]
fn ipv6_addresses_with_and_without_escapes() {
    for text in [
        "tcp:host=::1:port=80",
        r"tcp:host=\:\:1:port=80",
        "tcp:host=[::1]:port=80",
        "tcp:port=80:host=::1",
    ] {
        assert_eq!(parse(text), tcp("::1", 80), "{text}");
    }
    assert_eq!(
        parse("tcp:host=fd00::2:port=80:bindAddress=fd00::1"),
        ClientEndpoint::Tcp {
            host: "fd00::2".into(),
            port: 80,
            timeout: None,
            bind: Some("fd00::1".parse().unwrap()),
        }
    );
}

#[test]
fn tls_fields() {
    assert_eq!(
        parse("tls:host=example.com:port=443"),
        ClientEndpoint::Tls {
            host: "example.com".into(),
            port: 443,
            timeout: None,
            bind: None,
            tls: TlsClientOptions {
                sni: None,
                ca: None,
                verify: true
            },
        }
    );
    assert_eq!(
        parse(r"tls:host=10.0.0.5:port=8443:sni=api.internal:ca=/etc/c\:a.pem:verify=no:timeout=3"),
        ClientEndpoint::Tls {
            host: "10.0.0.5".into(),
            port: 8443,
            timeout: Some(Duration::from_secs(3)),
            bind: None,
            tls: TlsClientOptions {
                sni: Some("api.internal".into()),
                ca: Some(PathBuf::from("/etc/c:a.pem")),
                verify: false
            },
        }
    );
    assert!(matches!(
        parse("ssl:example.com:443"),
        ClientEndpoint::Tls { .. }
    ));
}

#[test]
fn unix_fields_and_escapes() {
    let unix = |path: &str, timeout| ClientEndpoint::Unix {
        path: PathBuf::from(path),
        timeout,
    };
    assert_eq!(
        parse("unix:path=/run/app.sock"),
        unix("/run/app.sock", None)
    );
    assert_eq!(parse("unix:/run/app.sock"), unix("/run/app.sock", None));
    assert_eq!(
        parse(r"unix:path=/tmp/a\:b\\c:timeout=9"),
        unix(r"/tmp/a:b\c", Some(Duration::from_secs(9)))
    );
    assert_eq!(parse("unix:path=/tmp/x=y"), unix("/tmp/x=y", None));
}

#[test]
fn display_round_trips() {
    for text in [
        "tcp:host=example.com:port=80",
        "tcp:host=::1:port=80:timeout=0.5:bindAddress=::1",
        "tls:host=example.com:port=443:sni=other.test:ca=/etc/ca.pem:verify=no",
        r"unix:path=/tmp/a\:b:timeout=3",
    ] {
        let endpoint = parse(text);
        let printed = endpoint.to_string();
        assert_eq!(parse(&printed), endpoint, "{text} -> {printed}");
    }
    assert_eq!(
        parse("tcp:example.com:80").to_string(),
        "tcp:host=example.com:port=80"
    );
    assert_eq!(
        parse("tcp:host=::1:port=80").to_string(),
        r"tcp:host=\:\:1:port=80"
    );
}

#[test]
fn host_port_is_tcp() {
    for (text, want) in [
        ("localhost:8080", tcp("localhost", 8080)),
        ("127.0.0.1:9000", tcp("127.0.0.1", 9000)),
        ("[::1]:9000", tcp("::1", 9000)),
        ("tcp:host=b:port=1", tcp("b", 1)),
    ] {
        assert_eq!(ClientEndpoint::parse_or_host_port(text), Ok(want), "{text}");
    }
    assert!(matches!(
        ClientEndpoint::parse_or_host_port("unix:/run/x"),
        Ok(ClientEndpoint::Unix { .. })
    ));
    for bad in ["localhost", "::1:80", "host:0", "host:http", ""] {
        assert!(ClientEndpoint::parse_or_host_port(bad).is_err(), "{bad}");
    }
}

#[test]
fn bad_input_names_the_field() {
    use ClientEndpointError as E;
    assert_eq!(error(""), E::Empty);
    assert!(matches!(error("udp:host=a:port=1"), E::UnknownType { kind } if kind == "udp"));
    assert!(matches!(
        error("tcp:port=80"),
        E::Missing { field: "host", .. }
    ));
    assert!(matches!(
        error("tcp:host=a"),
        E::Missing { field: "port", .. }
    ));
    assert!(matches!(error("tls:a"), E::Missing { field: "port", .. }));
    assert!(matches!(
        error("unix:timeout=3"),
        E::Missing { field: "path", .. }
    ));
    for port in ["0", "65536", "-1", "+80", "http", ""] {
        let text = format!("tcp:host=a:port={port}");
        assert!(
            matches!(error(&text), E::BadValue { field: "port", .. }),
            "{text}"
        );
    }
    for timeout in ["0", "-1", "abc", "NaN", "inf"] {
        let text = format!("tcp:host=a:port=1:timeout={timeout}");
        assert!(
            matches!(
                error(&text),
                E::BadValue {
                    field: "timeout",
                    ..
                }
            ),
            "{text}"
        );
    }
    for host in ["", "a b", "a..b", "-.-/", "x:y"] {
        let text = format!(r"tcp:host={}:port=1", host.replace(':', r"\:"));
        assert!(
            matches!(error(&text), E::BadValue { field: "host", .. }),
            "{text}"
        );
    }
    assert!(matches!(
        error("tcp:host=a:port=1:bindAddress=somewhere"),
        E::BadValue {
            field: "bindAddress",
            ..
        }
    ));
    assert!(matches!(
        error("tls:host=a:port=1:verify=maybe"),
        E::BadValue {
            field: "verify",
            ..
        }
    ));
    assert!(matches!(
        error("tls:host=a:port=1:sni=a b"),
        E::BadValue { field: "sni", .. }
    ));
    assert!(matches!(
        error("tls:host=a:port=1:ca="),
        E::BadValue { field: "ca", .. }
    ));
    assert!(matches!(
        error("tcp:host=a:port=1:sni=b"),
        E::UnknownOption { key, .. } if key == "sni"
    ));
    assert!(matches!(
        error("unix:path=/p:host=a"),
        E::UnknownOption { .. }
    ));
    assert!(matches!(error("tcp:host=a:port=1:port=2"), E::Duplicate { key } if key == "port"));
    assert!(matches!(error("tcp:a:1:host=b"), E::Duplicate { key } if key == "host"));
    assert!(matches!(error("tcp:a:1:extra"), E::Unexpected { .. }));
    assert!(matches!(error("tcp:port=1:a"), E::Unexpected { .. }));
    let text = error("tcp:host=a:port=99999").to_string();
    assert_eq!(
        text,
        "bad port \"99999\": expected a number from 1 to 65535"
    );
}

#[test]
fn connectors_load_tls_roots_once() {
    let plain = parse("tcp:host=a:port=1").connector().unwrap();
    assert!(plain.tls.is_none());
    let insecure = parse("tls:host=a:port=1:verify=no").connector().unwrap();
    assert!(insecure.tls.is_some());
    let missing = parse("tls:host=a:port=1:ca=/nonexistent/ca.pem").connector();
    assert!(missing.is_err(), "a missing CA file is an error");
}
