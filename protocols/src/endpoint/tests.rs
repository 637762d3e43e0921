use std::net::SocketAddr;
use std::path::PathBuf;

use super::{Endpoint, EndpointError};

fn tcp(addr: &str) -> Endpoint {
    Endpoint::Tcp {
        addr: addr.parse::<SocketAddr>().expect("test address"),
    }
}

fn udp(addr: &str) -> Endpoint {
    Endpoint::Udp {
        addr: addr.parse::<SocketAddr>().expect("test address"),
    }
}

fn unix(path: &str) -> Endpoint {
    Endpoint::Unix {
        path: PathBuf::from(path),
    }
}

#[test]
fn valid() {
    let cases = [
        ("tcp:8080", tcp("0.0.0.0:8080")),
        ("tcp:0", tcp("0.0.0.0:0")),
        ("tcp:65535", tcp("0.0.0.0:65535")),
        ("tcp:8080:interface=127.0.0.1", tcp("127.0.0.1:8080")),
        ("tcp:port=8080:interface=127.0.0.1", tcp("127.0.0.1:8080")),
        ("tcp:interface=127.0.0.1:port=8080", tcp("127.0.0.1:8080")),
        ("tcp6:8080", tcp("[::]:8080")),
        ("tcp6:8080:interface=::1", tcp("[::1]:8080")),
        ("tcp6:8080:interface=\\:\\:1", tcp("[::1]:8080")),
        ("tcp6:443:interface=fe80::1:2", tcp("[fe80::1:2]:443")),
        ("udp:9000", udp("0.0.0.0:9000")),
        ("udp:9000:interface=127.0.0.1", udp("127.0.0.1:9000")),
        ("udp:0:interface=::1", udp("[::1]:0")),
        ("unix:/run/ringwork.sock", unix("/run/ringwork.sock")),
        ("unix:path=/run/ringwork.sock", unix("/run/ringwork.sock")),
        ("unix:relative.sock", unix("relative.sock")),
        ("unix:/tmp/a\\:b", unix("/tmp/a:b")),
        ("unix:/tmp/a=b", unix("/tmp/a=b")),
    ];
    for (text, expected) in cases {
        assert_eq!(text.parse::<Endpoint>(), Ok(expected), "{text}");
    }
}

#[test]
fn invalid_names_the_problem() {
    let cases: &[(&str, &str)] = &[
        ("", "empty endpoint string"),
        (
            "bogus:1",
            "unknown endpoint type \"bogus\" (known: tcp, tcp6, udp, unix, tls, systemd, fd, and the haproxy: prefix)",
        ),
        ("TCP:1", "unknown endpoint type \"TCP\""),
        ("8080", "unknown endpoint type \"8080\""),
        ("tcp", "tcp endpoint needs a port"),
        ("tcp:", "tcp endpoint needs a port"),
        ("tcp::interface=127.0.0.1", "tcp endpoint needs a port"),
        ("udp:interface=127.0.0.1", "udp endpoint needs a port"),
        ("tcp:http", "bad port \"http\""),
        (
            "tcp:65536",
            "bad port \"65536\": expected a number from 0 to 65535",
        ),
        ("tcp:+80", "bad port \"+80\""),
        ("tcp:-1", "bad port \"-1\""),
        (
            "tcp:80:interface=localhost",
            "bad interface address \"localhost\"",
        ),
        ("tcp:80:interface=", "bad interface address \"\""),
        ("tcp:80:interface=1.2.3", "bad interface address \"1.2.3\""),
        (
            "tcp:80:interface=::1",
            "tcp endpoint needs an IPv4 interface, got \"::1\" (use tcp6: instead)",
        ),
        (
            "tcp6:80:interface=127.0.0.1",
            "tcp6 endpoint needs an IPv6 interface, got \"127.0.0.1\" (use tcp: instead)",
        ),
        (
            "tcp:80:backlog=5",
            "unknown option \"backlog\" for a tcp endpoint (known: port, interface)",
        ),
        (
            "unix:/x:mode=660",
            "unknown option \"mode\" for a unix endpoint (known: path)",
        ),
        (
            "tcp:80:interface=127.0.0.1:interface=127.0.0.2",
            "option \"interface\" given twice",
        ),
        ("tcp:80:port=81", "option \"port\" given twice"),
        ("unix:/a:path=/b", "option \"path\" given twice"),
        (
            "tcp:80:127.0.0.1",
            "unexpected argument \"127.0.0.1\" in a tcp endpoint",
        ),
        ("unix:", "unix endpoint needs a socket path"),
        ("unix", "unix endpoint needs a socket path"),
        ("unix:path=", "unix endpoint needs a socket path"),
    ];
    for (text, needle) in cases {
        let error = text
            .parse::<Endpoint>()
            .expect_err(&format!("{text:?} should not parse"));
        let message = error.to_string();
        assert!(
            message.contains(needle),
            "{text:?}: error {message:?} does not contain {needle:?}"
        );
        assert!(
            message.starts_with(|c: char| c.is_lowercase()),
            "{text:?}: starts lowercase"
        );
        assert!(!message.ends_with('.'), "{text:?}: trailing period");
    }
}

#[test]
fn error_variants_carry_data() {
    assert_eq!(
        "tcp:99999".parse::<Endpoint>(),
        Err(EndpointError::BadPort {
            value: "99999".into()
        })
    );
    assert_eq!(
        "sctp:1".parse::<Endpoint>(),
        Err(EndpointError::UnknownType {
            kind: "sctp".into()
        })
    );
}

#[test]
fn display_round_trips() {
    let texts = [
        "tcp:8080",
        "tcp:0:interface=127.0.0.1",
        "tcp6:8080",
        "tcp6:8080:interface=::1",
        "udp:9000",
        "udp:9000:interface=127.0.0.1",
        "udp:9000:interface=::",
        "unix:/run/ringwork.sock",
        "unix:/tmp/a\\:b\\\\c",
    ];
    for text in texts {
        let endpoint: Endpoint = text.parse().expect(text);
        assert_eq!(endpoint.to_string(), text);
        assert_eq!(endpoint.to_string().parse::<Endpoint>(), Ok(endpoint));
    }
    // Other spellings print in the canonical form, which parses back to the same value.
    for (text, canonical) in [
        ("unix:path=/x", "unix:/x"),
        ("tcp:port=80", "tcp:80"),
        ("tcp:80:interface=0.0.0.0", "tcp:80"),
        ("tcp6:80:interface=::", "tcp6:80"),
    ] {
        let endpoint: Endpoint = text.parse().expect(text);
        assert_eq!(endpoint.to_string(), canonical);
        assert_eq!(canonical.parse::<Endpoint>(), Ok(endpoint));
    }
}

#[test]
fn port() {
    assert_eq!(tcp("127.0.0.1:0").port(), Some(0));
    assert_eq!(udp("[::1]:53").port(), Some(53));
    assert_eq!(unix("/x").port(), None);
}

#[test]
fn tls_endpoints_take_certificates_sni_alpn_and_client_verification() {
    use super::{ClientVerify, SniCert, TlsOptions};
    let parsed: Endpoint =
        "tls:8443:interface=::1:cert=/c/a\\:b.pem:key=/c/k.pem:sni=a.test,/c/a.pem,/c/a.key:\
         sni=*.b.test,/c/b.pem,/c/b.key:alpn=h2,http/1.1:ca=/c/ca.pem:verify=optional:timeout=5:records=full"
            .parse()
            .unwrap();
    let Endpoint::Tls { addr, tls } = &parsed else {
        panic!("{parsed:?}");
    };
    assert_eq!(*addr, "[::1]:8443".parse::<SocketAddr>().unwrap());
    assert_eq!(
        tls.cert.as_deref(),
        Some(std::path::Path::new("/c/a:b.pem"))
    );
    assert_eq!(tls.sni.len(), 2);
    assert_eq!(
        tls.sni[1],
        SniCert {
            name: "*.b.test".into(),
            cert: "/c/b.pem".into(),
            key: "/c/b.key".into()
        }
    );
    assert_eq!(tls.alpn, ["h2", "http/1.1"]);
    assert_eq!(tls.verify, ClientVerify::Optional);
    assert_eq!(tls.timeout_secs, Some(5));
    assert!(tls.full_records);
    assert_eq!(parsed.to_string().parse::<Endpoint>().unwrap(), parsed);
    // The short form: a self-signed certificate later; ca= alone means required.
    let short: Endpoint = "tls:8443".parse().unwrap();
    assert_eq!(
        short,
        Endpoint::Tls {
            addr: "0.0.0.0:8443".parse().unwrap(),
            tls: TlsOptions::default()
        }
    );
    assert_eq!(short.to_string(), "tls:8443");
    let Endpoint::Tls { tls, .. } = "tls:1:ca=/ca.pem".parse().unwrap() else {
        unreachable!()
    };
    assert_eq!(tls.verify, ClientVerify::Required);
}

#[test]
fn tls_and_haproxy_errors_name_the_problem() {
    for (text, want) in [
        ("tls:8443:cert=/c.pem", "cert= and key= go together"),
        ("tls:8443:verify=required", "needs ca=PATH"),
        ("tls:8443:sni=a.test,/c.pem", "NAME,CERT,KEY"),
        ("tls:8443:alpn=h2,,x", "1 to 255 bytes"),
        ("tls:8443:timeout=0", "above 0"),
        ("tls:8443:records=small", "full or dynamic"),
        ("tls:8443:cert=a:cert=b:key=k", "given twice"),
        ("tls:8443:bogus=1", "unknown option"),
        ("tls", "needs a port"),
        ("haproxy:udp:53", "stream endpoint"),
        ("haproxy:haproxy:tcp:1", "stream endpoint"),
        ("haproxy:", "empty endpoint"),
    ] {
        let error = text.parse::<Endpoint>().unwrap_err().to_string();
        assert!(error.contains(want), "{text}: {error}");
    }
}

#[test]
fn haproxy_wraps_stream_endpoints() {
    for text in [
        "haproxy:tcp:8080",
        "haproxy:tls:8443:cert=/c.pem:key=/k.pem",
        "haproxy:unix:/run/x.sock",
    ] {
        let parsed: Endpoint = text.parse().unwrap();
        assert!(matches!(parsed, Endpoint::Haproxy(_)), "{text}");
        assert!(parsed.is_stream());
        assert_eq!(parsed.to_string(), text);
    }
    assert_eq!(
        "haproxy:tcp:8080".parse::<Endpoint>().unwrap().port(),
        Some(8080)
    );
}

#[test]
fn inherited_sockets() {
    use super::Domain;
    let systemd = |domain, index, name: Option<&str>| Endpoint::Systemd {
        domain,
        index,
        name: name.map(str::to_owned),
    };
    let cases = [
        (
            "systemd:domain=INET:index=0",
            systemd(Domain::Inet, 0, None),
        ),
        (
            "systemd:index=2:domain=INET6",
            systemd(Domain::Inet6, 2, None),
        ),
        (
            "systemd:domain=UNIX:name=web",
            systemd(Domain::Unix, 0, Some("web")),
        ),
        ("fd:3", Endpoint::Fd { fd: 3 }),
        ("fd:fd=17", Endpoint::Fd { fd: 17 }),
        (
            "haproxy:fd:4",
            Endpoint::Haproxy(Box::new(Endpoint::Fd { fd: 4 })),
        ),
    ];
    for (text, expected) in cases {
        let parsed = text.parse::<Endpoint>();
        assert_eq!(parsed, Ok(expected.clone()), "{text}");
        assert!(expected.is_stream() && expected.port().is_none(), "{text}");
        let printed = expected.to_string();
        assert_eq!(printed.parse::<Endpoint>(), Ok(expected), "{printed}");
    }
    let errors: &[(&str, &str)] = &[
        (
            "systemd:index=0",
            "systemd: needs domain=INET, INET6 or UNIX",
        ),
        (
            "systemd:domain=INET",
            "systemd: needs index=N (or name=NAME)",
        ),
        (
            "systemd:domain=inet:index=0",
            "expected INET, INET6 or UNIX",
        ),
        ("systemd:domain=INET:index=-1", "a number from 0"),
        (
            "systemd:domain=INET:index=0:name=a",
            "give index= or name=, not both",
        ),
        (
            "systemd:domain=INET:index=0:index=1",
            "option \"index\" given twice",
        ),
        (
            "systemd:domain=INET:port=0",
            "unknown option \"port\" for a systemd endpoint",
        ),
        ("systemd:INET:0", "unexpected argument \"INET\""),
        ("fd:2", "a descriptor number, 3 or more"),
        ("fd:+5", "a descriptor number, 3 or more"),
        ("fd:", "a descriptor number, 3 or more"),
    ];
    for (text, want) in errors {
        let error = text.parse::<Endpoint>().expect_err(text);
        assert!(error.to_string().contains(want), "{text}: {error}");
    }
}
