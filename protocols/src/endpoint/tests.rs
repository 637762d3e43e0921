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
            "unknown endpoint type \"bogus\" (known: tcp, tcp6, udp, unix)",
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
