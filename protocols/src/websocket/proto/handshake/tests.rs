use super::*;
use crate::http::proto::{H1Limits, Status, parse_request, parse_response};
use crate::websocket::proto::deflate::DeflateConfig;

fn request(text: &str) -> RequestHead {
    let raw = text.replace('\n', "\r\n");
    match parse_request(raw.as_bytes(), &H1Limits::default()) {
        Ok(Status::Complete(parsed)) => parsed.head,
        other => panic!("{other:?}"),
    }
}

const RFC_REQUEST: &str = "GET /chat HTTP/1.1\nHost: server.example.com\nUpgrade: websocket\n\
Connection: Upgrade\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\nOrigin: http://example.com\n\
Sec-WebSocket-Protocol: chat, superchat\nSec-WebSocket-Version: 13\n\n";

#[test]
fn rfc6455_accept_key() {
    // RFC 6455 §1.3.
    assert_eq!(
        accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
}

#[test]
fn server_accepts_the_rfc_request() {
    let config = WsConfig {
        protocols: vec!["superchat".into(), "chat".into()],
        ..WsConfig::default()
    };
    let accepted = check_request(&request(RFC_REQUEST), &config).unwrap();
    assert_eq!(accepted.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(accepted.negotiated.protocol.as_deref(), Some("superchat"));
    let bytes = accepted.response_bytes();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with("HTTP/1.1 101 Switching Protocols\r\n"));
    assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    assert!(text.contains("Sec-WebSocket-Protocol: superchat\r\n"));
    // No protocol in common: none chosen.
    let accepted = check_request(&request(RFC_REQUEST), &WsConfig::default()).unwrap();
    assert_eq!(accepted.negotiated.protocol, None);
}

#[test]
fn server_rejects_bad_requests() {
    let cases = [
        ("GET /chat", "POST /chat", HandshakeError::NotGet),
        (
            "Upgrade: websocket",
            "Upgrade: h2c",
            HandshakeError::BadField { field: "Upgrade" },
        ),
        (
            "Connection: Upgrade",
            "Connection: keep-alive",
            HandshakeError::BadField {
                field: "Connection",
            },
        ),
        (
            "dGhlIHNhbXBsZSBub25jZQ==",
            "dGhlIHNhbXBsZQ==",
            HandshakeError::BadField {
                field: "Sec-WebSocket-Key",
            },
        ),
        ("Version: 13", "Version: 8", HandshakeError::Version),
    ];
    for (from, to, error) in cases {
        let text = RFC_REQUEST.replacen(from, to, 1);
        let got = check_request(&request(&text), &WsConfig::default());
        assert_eq!(got.as_ref().err(), Some(&error), "{from} -> {to}");
    }
    assert_eq!(HandshakeError::Version.status(), 426);
    assert_eq!(HandshakeError::NotGet.status(), 400);
}

#[test]
fn extensions_grammar() {
    let offers = parse_extensions(
        [
            &b"permessage-deflate; client_max_window_bits, permessage-deflate"[..],
            &b"foo; bar=\"1\" ;baz"[..],
        ]
        .into_iter(),
    )
    .unwrap();
    assert_eq!(offers.len(), 3);
    assert_eq!(
        offers[0].params,
        vec![("client_max_window_bits".into(), None)]
    );
    assert_eq!(
        offers[2].params,
        vec![("bar".into(), Some("1".into())), ("baz".into(), None)]
    );
    assert!(parse_extensions([&b"a; b=c d"[..]].into_iter()).is_err());
    assert!(parse_extensions([&b"; x"[..]].into_iter()).is_err());
}

#[test]
fn deflate_negotiated_by_the_server() {
    let config = WsConfig {
        deflate: Some(DeflateConfig::default()),
        ..WsConfig::default()
    };
    let text = RFC_REQUEST.replacen(
        "Sec-WebSocket-Version: 13\n",
        "Sec-WebSocket-Version: 13\nSec-WebSocket-Extensions: permessage-deflate; \
server_max_window_bits=8, permessage-deflate; client_max_window_bits\n",
        1,
    );
    let accepted = check_request(&request(&text), &config).unwrap();
    // The first offer (a window of 8) is declined, the second taken.
    assert_eq!(
        accepted.negotiated.extensions.as_deref(),
        Some("permessage-deflate")
    );
    assert!(accepted.negotiated.deflate.is_some());
    // Without a deflate config the offer is ignored.
    let accepted = check_request(&request(&text), &WsConfig::default()).unwrap();
    assert_eq!(accepted.negotiated.extensions, None);
}

#[test]
fn client_round_trip_and_checks() {
    let config = WsConfig {
        deflate: Some(DeflateConfig::default()),
        protocols: vec!["chat".into()],
        ..WsConfig::default()
    };
    let wanted = WsRequest {
        host: "localhost:9".into(),
        path: "/x".into(),
        protocols: vec!["chat".into()],
        headers: vec![("Origin".into(), "http://localhost".into())],
    };
    let (client, bytes) = ClientHandshake::new(&wanted, &config, [7; 16]);
    let parsed = match parse_request(&bytes, &H1Limits::default()) {
        Ok(Status::Complete(parsed)) => parsed,
        other => panic!("{other:?}"),
    };
    assert_eq!(parsed.consumed, bytes.len());
    let accepted = check_request(&parsed.head, &config).unwrap();
    assert_eq!(accepted.negotiated.protocol.as_deref(), Some("chat"));
    let response = accepted.response_bytes();
    let head = match parse_response(&response, &H1Limits::default(), &Method::Get) {
        Ok(Status::Complete(parsed)) => parsed.head,
        other => panic!("{other:?}"),
    };
    let negotiated = client.check(&head).unwrap();
    assert_eq!(negotiated, accepted.negotiated);
    // A wrong accept key, a protocol not offered, an extension not offered, a 200.
    let text = std::str::from_utf8(&response).unwrap();
    let bad = [
        text.replacen(&accepted.accept, "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", 1),
        text.replacen("Protocol: chat", "Protocol: other", 1),
        text.replacen("permessage-deflate", "x-webkit-deflate-frame", 1),
        text.replacen("101 Switching Protocols", "200 OK", 1),
    ];
    for response in bad {
        let head = match parse_response(response.as_bytes(), &H1Limits::default(), &Method::Get) {
            Ok(Status::Complete(parsed)) => parsed.head,
            other => panic!("{other:?}"),
        };
        assert!(client.check(&head).is_err(), "{response}");
    }
}
