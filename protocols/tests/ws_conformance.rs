//! WebSocket conformance in the spirit of the Autobahn testsuite: a server machine
//! ([`WsConn`], echoing every message) against raw client frames, one case per behaviour,
//! each naming the RFC section it checks (Autobahn's case numbers in brackets where one
//! matches). Every case runs with the input whole and split at every byte, so framing,
//! fragmentation and UTF-8 are checked across reads too. Sans-IO: no reactor, no sockets
//! (the same machine runs on both backends in `protocols/cli/tests/ws_interop.rs`).

use std::time::Instant;

use ringwork_protocols::kit::Machine;
use ringwork_protocols::kit::Status;
use ringwork_protocols::websocket::proto::frame::{OpCode, apply_mask, parse_head};
use ringwork_protocols::websocket::proto::{
    DeflateConfig, DeflateParams, Message, Negotiated, WsConfig, WsConn, WsEvent,
};

/// A masked client frame.
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | rsv | opcode];
    let n = payload.len();
    if n < 126 {
        out.push(0x80 | n as u8);
    } else if n < 65_536 {
        out.push(0x80 | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let key = [0x12, 0x34, 0x56, 0x78];
    out.extend_from_slice(&key);
    let mut body = payload.to_vec();
    apply_mask(&mut body, key, 0);
    out.extend_from_slice(&body);
    out
}

fn text(payload: &[u8]) -> Vec<u8> {
    frame(true, 0, 1, payload)
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    frame(true, 0, 8, &payload)
}

/// What the server sends back.
#[derive(Clone, Debug, Eq, PartialEq)]
enum Out {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<u16>),
}

fn parse_output(mut wire: &[u8]) -> Vec<Out> {
    let mut out = Vec::new();
    while !wire.is_empty() {
        let Ok(Status::Complete(parsed)) = parse_head(wire) else {
            panic!("server output does not parse: {wire:?}")
        };
        let head = parsed.value;
        assert!(head.mask.is_none(), "a server never masks (RFC 6455 5.1)");
        let end = parsed.consumed + head.len as usize;
        let payload = wire[parsed.consumed..end].to_vec();
        wire = &wire[end..];
        out.push(match head.opcode {
            OpCode::Text => Out::Text(payload),
            OpCode::Binary => Out::Binary(payload),
            OpCode::Pong => Out::Pong(payload),
            OpCode::Close => Out::Close(
                (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]])),
            ),
            other => panic!("unexpected {other:?}"),
        });
    }
    out
}

fn config(deflate: bool) -> WsConfig {
    let mut config = WsConfig::default();
    config.max_message = 1 << 16;
    config.max_frame = 1 << 16;
    config.deflate = deflate.then(DeflateConfig::default);
    config
}

/// Feeds `input` in pieces cut at `cuts` to an echoing server; what it sent back.
fn run(input: &[u8], cuts: &[usize], deflate: bool) -> Vec<Out> {
    let negotiated = Negotiated {
        deflate: deflate.then_some(DeflateParams {
            server_no_context_takeover: true,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }),
        ..Negotiated::default()
    };
    let mut conn = WsConn::server(config(deflate), negotiated);
    let now = Instant::now();
    conn.handle_connected(now);
    let mut wire = Vec::new();
    let mut at = 0;
    for &end in cuts.iter().chain([&input.len()]) {
        conn.handle_input(&input[at..end], now);
        at = end;
        while let Some(event) = conn.poll_event() {
            if let WsEvent::Message(message) = event {
                conn.send(message).expect("echo");
            }
        }
        while let Some(bytes) = conn.poll_transmit(now) {
            wire.extend_from_slice(&bytes);
        }
    }
    parse_output(&wire)
}

fn check(name: &str, input: &[u8], deflate: bool, want: &[Out]) {
    assert_eq!(run(input, &[], deflate), want, "{name}");
    if input.len() <= 512 {
        for cut in 1..input.len() {
            assert_eq!(run(input, &[cut], deflate), want, "{name}, split at {cut}");
        }
    }
}

fn echo(text: &str) -> Out {
    Out::Text(text.as_bytes().to_vec())
}

const NORMAL: Out = Out::Close(Some(1000));
const PROTOCOL: Out = Out::Close(Some(1002));
const INVALID: Out = Out::Close(Some(1007));
const TOO_BIG: Out = Out::Close(Some(1009));

#[test]
fn framing() {
    let cases: Vec<(&str, Vec<u8>, Vec<Out>)> = vec![
        // RFC 6455 5.2 / 5.6 [1.1.x, 1.2.x]: text and binary, every length form.
        ("5.6 text, 0 bytes [1.1.1]", text(b""), vec![echo("")]),
        (
            "5.2 text, 125 bytes [1.1.2]",
            text(&[b'*'; 125]),
            vec![Out::Text(vec![b'*'; 125])],
        ),
        (
            "5.2 text, 126 bytes: 16-bit length [1.1.3]",
            text(&[b'*'; 126]),
            vec![Out::Text(vec![b'*'; 126])],
        ),
        (
            "5.2 binary, 65536 bytes: 64-bit length [1.2.6]",
            frame(true, 0, 2, &[0xfe; 65_536]),
            vec![Out::Binary(vec![0xfe; 65_536])],
        ),
        // RFC 6455 5.1: a server MUST close on an unmasked frame.
        (
            "5.1 unmasked client frame",
            vec![0x81, 0x01, b'x'],
            vec![PROTOCOL],
        ),
    ];
    for (name, input, want) in cases {
        check(name, &input, false, &want);
    }
}

#[test]
fn pings_and_pongs() {
    let cases: Vec<(&str, Vec<u8>, Vec<Out>)> = vec![
        (
            "5.5.2 ping, empty payload, answered [2.1]",
            frame(true, 0, 9, b""),
            vec![Out::Pong(vec![])],
        ),
        (
            "5.5.3 pong echoes the ping's data [2.2]",
            frame(true, 0, 9, b"hello"),
            vec![Out::Pong(b"hello".to_vec())],
        ),
        (
            "5.5.2 binary ping payload [2.3]",
            frame(true, 0, 9, &[0, 0xff, 0xfe, 0xfd]),
            vec![Out::Pong(vec![0, 0xff, 0xfe, 0xfd])],
        ),
        (
            "5.5.2 ping of 125 bytes [2.4]",
            frame(true, 0, 9, &[b'p'; 125]),
            vec![Out::Pong(vec![b'p'; 125])],
        ),
        (
            "5.5 ping of 126 bytes is a protocol error [2.5]",
            frame(true, 0, 9, &[b'p'; 126]),
            vec![PROTOCOL],
        ),
        (
            "5.5.3 an unsolicited pong is ignored [2.7]",
            [frame(true, 0, 10, b"x"), text(b"after")].concat(),
            vec![echo("after")],
        ),
        (
            "5.5 a fragmented ping is a protocol error",
            frame(false, 0, 9, b""),
            vec![PROTOCOL],
        ),
    ];
    for (name, input, want) in cases {
        check(name, &input, false, &want);
    }
}

#[test]
fn reserved_bits_and_opcodes() {
    let mut cases: Vec<(String, Vec<u8>, Vec<Out>)> = Vec::new();
    for (rsv, case) in [(0x40, "3.1"), (0x20, "3.2"), (0x10, "3.4"), (0x70, "3.7")] {
        cases.push((
            format!("5.2 RSV {rsv:#x} without an extension is a protocol error [{case}]"),
            [text(b"ok"), frame(true, rsv, 1, b"bad"), text(b"never")].concat(),
            vec![echo("ok"), PROTOCOL],
        ));
    }
    for op in [3u8, 4, 5, 6, 7, 11, 12, 13, 14, 15] {
        cases.push((
            format!("5.2 reserved opcode {op} is a protocol error [4.x]"),
            [text(b"ok"), frame(true, 0, op, b""), text(b"never")].concat(),
            vec![echo("ok"), PROTOCOL],
        ));
    }
    for (name, input, want) in cases {
        check(&name, &input, false, &want);
    }
}

#[test]
fn fragmentation() {
    let cases: Vec<(&str, Vec<u8>, Vec<Out>)> = vec![
        (
            "5.4 a text message in two fragments [5.3]",
            [frame(false, 0, 1, b"frag"), frame(true, 0, 0, b"ment")].concat(),
            vec![echo("fragment")],
        ),
        (
            "5.4 control frames between fragments [5.6]",
            [
                frame(false, 0, 1, b"a"),
                frame(true, 0, 9, b"p"),
                frame(false, 0, 0, b"b"),
                frame(true, 0, 10, b"q"),
                frame(true, 0, 0, b"c"),
            ]
            .concat(),
            vec![Out::Pong(b"p".to_vec()), echo("abc")],
        ),
        (
            "5.4 continuation without a message [5.9]",
            frame(true, 0, 0, b"x"),
            vec![PROTOCOL],
        ),
        (
            "5.4 a new message inside a fragmented one [5.18]",
            [frame(false, 0, 1, b"a"), text(b"b")].concat(),
            vec![PROTOCOL],
        ),
        (
            "5.4 empty fragments [5.19-ish]",
            [
                frame(false, 0, 2, b""),
                frame(false, 0, 0, b""),
                frame(true, 0, 0, b""),
            ]
            .concat(),
            vec![Out::Binary(vec![])],
        ),
        (
            "5.4 many one-byte fragments",
            [
                frame(false, 0, 1, b"1"),
                frame(false, 0, 0, b"2"),
                frame(false, 0, 0, b"3"),
                frame(true, 0, 0, b"4"),
            ]
            .concat(),
            vec![echo("1234")],
        ),
    ];
    for (name, input, want) in cases {
        check(name, &input, false, &want);
    }
}

#[test]
fn utf8() {
    let euro = "€".as_bytes(); // e2 82 ac
    let cases: Vec<(&str, Vec<u8>, Vec<Out>)> = vec![
        (
            "8.1 valid multi-byte text [6.2.1]",
            text("κόσμε😀".as_bytes()),
            vec![echo("κόσμε😀")],
        ),
        (
            "8.1 a character split across fragments is fine [6.2.3]",
            [
                frame(false, 0, 1, &euro[..1]),
                frame(false, 0, 0, &euro[1..2]),
                frame(true, 0, 0, &euro[2..]),
            ]
            .concat(),
            vec![echo("€")],
        ),
        (
            "8.1 invalid byte fails with 1007 [6.3.1]",
            text(b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"),
            vec![INVALID],
        ),
        (
            "8.1 a truncated character at the end fails [6.4.x]",
            text(&euro[..2]),
            vec![INVALID],
        ),
        (
            "8.1 fail fast: invalid in the first fragment [6.4.1]",
            frame(false, 0, 1, b"\xff"),
            vec![INVALID],
        ),
        (
            "8.1 surrogate halves are invalid [6.20.x]",
            text(b"\xed\xa0\x80"),
            vec![INVALID],
        ),
        (
            "8.1 overlong encodings are invalid [6.9.x]",
            text(b"\xc0\xaf"),
            vec![INVALID],
        ),
        (
            "8.1 binary is not checked",
            frame(true, 0, 2, b"\xff\xfe"),
            vec![Out::Binary(b"\xff\xfe".to_vec())],
        ),
        (
            "7.1.6 an invalid close reason fails with 1007 [7.5.1]",
            close(1000, b"\xff"),
            vec![INVALID],
        ),
    ];
    for (name, input, want) in cases {
        check(name, &input, false, &want);
    }
}

#[test]
fn closing() {
    let mut cases: Vec<(String, Vec<u8>, Vec<Out>)> = vec![
        (
            "5.5.1 close echoes the code [7.1.1]".into(),
            [text(b"a"), close(1000, b""), text(b"never")].concat(),
            vec![echo("a"), NORMAL],
        ),
        (
            "5.5.1 close without a code is answered without one [7.3.1]".into(),
            frame(true, 0, 8, b""),
            vec![Out::Close(None)],
        ),
        (
            "5.5.1 a one-byte close payload is a protocol error [7.3.2]".into(),
            frame(true, 0, 8, b"\x03"),
            vec![PROTOCOL],
        ),
        (
            "5.5.1 close with a reason [7.3.4]".into(),
            close(1000, b"bye"),
            vec![NORMAL],
        ),
    ];
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        cases.push((
            format!("7.4 valid code {code} [7.7.x]"),
            close(code, b""),
            vec![Out::Close(Some(code))],
        ));
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535,
    ] {
        cases.push((
            format!("7.4 invalid code {code} is a protocol error [7.9.x]"),
            close(code, b""),
            vec![PROTOCOL],
        ));
    }
    for (name, input, want) in cases {
        check(&name, &input, false, &want);
    }
}

#[test]
fn limits() {
    let big = 1 << 16;
    let cases: Vec<(&str, Vec<u8>, Vec<Out>)> = vec![
        (
            "10.4 a frame over max_frame fails with 1009 [9.x]",
            frame(true, 0, 2, &vec![0; big + 1]),
            vec![TOO_BIG],
        ),
        (
            "10.4 a message over max_message across fragments fails with 1009",
            [
                frame(false, 0, 2, &vec![0; big / 2 + 1]),
                frame(true, 0, 0, &vec![0; big / 2]),
            ]
            .concat(),
            vec![TOO_BIG],
        ),
        (
            "10.4 exactly max_message is fine",
            frame(true, 0, 2, &vec![7; big]),
            vec![Out::Binary(vec![7; big])],
        ),
        (
            "5.2 a 64-bit length with the top bit set is a protocol error",
            [
                vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0],
                vec![1, 2, 3, 4],
            ]
            .concat(),
            vec![PROTOCOL],
        ),
    ];
    for (name, input, want) in cases {
        check(name, &input, false, &want);
    }
}

#[test]
fn permessage_deflate() {
    // RFC 7692 7.2.3.1: "Hello" compressed, no context.
    let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    // RFC 7692 7.2.3.4: the same message compressed into two fragments.
    let (first, second) = ([0xf2, 0x48, 0xcd], [0xc9, 0xc9, 0x07, 0x00]);
    // 100 KiB of zeros: a small frame that inflates past the 64 KiB limit.
    let mut bomb = Vec::new();
    ringwork_protocols::websocket::proto::deflate::Deflater::new(9, 15, true)
        .compress(&vec![0u8; 100 * 1024], &mut bomb);
    let cases: Vec<(&str, Vec<u8>, bool, Vec<Out>)> = vec![
        (
            "RFC 7692 7.2.3.1 a compressed message [12.x]",
            frame(true, 0x40, 1, &hello),
            true,
            vec![echo("Hello")],
        ),
        (
            "RFC 7692 7.2.3.4 compressed fragments; RSV1 on the first only",
            [frame(false, 0x40, 1, &first), frame(true, 0, 0, &second)].concat(),
            true,
            vec![echo("Hello")],
        ),
        (
            "RFC 7692 6.1 RSV1 on a continuation is a protocol error",
            [frame(false, 0x40, 1, &first), frame(true, 0x40, 0, &second)].concat(),
            true,
            vec![PROTOCOL],
        ),
        (
            "RFC 7692 6.1 RSV1 on a control frame is a protocol error",
            frame(true, 0x40, 9, b""),
            true,
            vec![PROTOCOL],
        ),
        (
            "RFC 7692 7.2.1 uncompressed messages still pass",
            text(b"plain"),
            true,
            vec![echo("plain")],
        ),
        (
            "RFC 7692 a deflate bomb fails with 1009",
            frame(true, 0x40, 2, &bomb),
            true,
            vec![TOO_BIG],
        ),
        (
            "RFC 7692 garbage fails with 1007",
            frame(true, 0x40, 2, &[0xff; 16]),
            true,
            vec![INVALID],
        ),
        (
            "RFC 7692 RSV1 without the extension is a protocol error",
            frame(true, 0x40, 1, &hello),
            false,
            vec![PROTOCOL],
        ),
    ];
    for (name, input, deflate, want) in cases {
        let got: Vec<Out> = run(&input, &[], deflate)
            .into_iter()
            .map(|out| match out {
                // Our echo may be compressed: compare what it says, not its bytes.
                Out::Text(bytes) if deflate && bytes != b"Hello" && bytes != b"plain" => {
                    Out::Text(inflate(&bytes))
                }
                other => other,
            })
            .collect();
        assert_eq!(got, want, "{name}");
    }
    let _ = Message::text("");
}

fn inflate(wire: &[u8]) -> Vec<u8> {
    let mut inflater = ringwork_protocols::websocket::proto::deflate::Inflater::new(15, true);
    let mut out = Vec::new();
    inflater.inflate(wire, &mut out, 1 << 20).expect("inflate");
    inflater.finish(&mut out, 1 << 20).expect("inflate");
    out
}
