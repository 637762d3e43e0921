//! HTTP/2 server conformance, h2spec style: raw frames from a scripted client against the
//! server connection machine (no reactor), one case per rule of RFC 9113 / RFC 7541, each
//! quoting its section, with the answer the rule requires: a connection error (GOAWAY with
//! its code), a stream error (RST_STREAM with its code), or a connection that goes on.

use std::time::Duration;

use ringwork_protocols::http::proto::h2::frame::{ErrorCode, Frame, flag, kind, setting};
use ringwork_protocols::http::proto::h2::script::{Received, ScriptedClient, request_fields};
use ringwork_protocols::http::proto::h2::{H2Config, H2ServerConn};
use ringwork_protocols::http::proto::server::{ServerConfig, ServerEvent};
use ringwork_protocols::kit::Machine;
use ringwork_protocols::kit::sim::{Pair, RawPeer};

/// What a case must end in.
#[derive(Debug)]
enum Expect {
    /// A connection error: GOAWAY with this code, then the close.
    Goaway(ErrorCode),
    /// A stream error on this stream; the connection goes on.
    Reset(u32, ErrorCode),
    /// A request reached the application on this stream; the connection goes on.
    Request(u32),
    /// The server answered this stream with this status by itself.
    Status(u32, &'static str),
    /// Nothing is wrong: no GOAWAY, no RST_STREAM, and a PING is answered.
    Alive,
    /// A PING answered with this data.
    PingAck([u8; 8]),
}

struct Case {
    section: &'static str,
    rule: &'static str,
    /// Bytes after the preface and SETTINGS (or the whole input when `raw`).
    input: fn(&ScriptedClient) -> Vec<u8>,
    expect: Expect,
    raw: bool,
    config: fn(&mut H2Config),
}

fn none(_: &mut H2Config) {}

const fn case(
    section: &'static str,
    rule: &'static str,
    input: fn(&ScriptedClient) -> Vec<u8>,
    expect: Expect,
) -> Case {
    Case {
        section,
        rule,
        input,
        expect,
        raw: false,
        config: none,
    }
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A POST head on `stream` without END_STREAM.
fn post(c: &ScriptedClient, stream: u32) -> Vec<u8> {
    c.headers(stream, &request_fields("POST", "/"), false)
}

/// A request head with `extra` fields after the pseudo-fields.
fn get_with(c: &ScriptedClient, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = request_fields("GET", "/");
    fields.extend_from_slice(extra);
    c.headers(1, &fields, true)
}

/// A GET head on `stream` with `extra` fields after the pseudo-fields.
fn get_with_on(c: &ScriptedClient, stream: u32, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = request_fields("GET", "/");
    fields.extend_from_slice(extra);
    c.headers(stream, &fields, true)
}

/// A request head of exactly `fields`.
fn fields(c: &ScriptedClient, fields: &[(&str, &str)]) -> Vec<u8> {
    c.headers(1, fields, true)
}

fn cases() -> Vec<Case> {
    use ErrorCode as E;
    use Expect::*;
    let mut cases = vec![
        // §3.4 Preface.
        Case {
            raw: true,
            ..case(
                "3.4",
                "an invalid connection preface is a connection error PROTOCOL_ERROR",
                |_| b"PRI * HTTP/1.1\r\n\r\nSM\r\n\r\n".to_vec(),
                Goaway(E::PROTOCOL_ERROR),
            )
        },
        Case {
            raw: true,
            ..case(
                "3.4",
                "the client preface's first frame MUST be SETTINGS",
                |c| {
                    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
                    v.extend(c.ping([0; 8]));
                    v
                },
                Goaway(E::PROTOCOL_ERROR),
            )
        },
        // §4.1 Frame format.
        case(
            "4.1",
            "implementations MUST ignore and discard frames of unknown types",
            |c| c.frame(0xfe, 0, 0, b"xyz"),
            Alive,
        ),
        case(
            "4.1",
            "unknown flags MUST be ignored",
            |c| c.frame(kind::PING, 0xfe, 0, &[1; 8]),
            PingAck([1; 8]),
        ),
        case(
            "4.1",
            "the reserved bit MUST be ignored when receiving",
            |c| {
                let mut f = c.window_update(0, 1);
                f[5] |= 0x80;
                f
            },
            Alive,
        ),
        // §4.2 Frame size.
        case(
            "4.2",
            "DATA larger than SETTINGS_MAX_FRAME_SIZE is a FRAME_SIZE_ERROR",
            |c| cat(&[post(c, 1), c.data(1, &[0; 16_385], false)]),
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        case(
            "4.2",
            "HEADERS larger than SETTINGS_MAX_FRAME_SIZE is a connection FRAME_SIZE_ERROR",
            |c| {
                let mut fields = request_fields("GET", "/");
                let big = "x".repeat(16_400);
                fields.push(("x-big", &big));
                c.headers(1, &fields, true)
            },
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        // §4.3 Header compression.
        case(
            "4.3",
            "a header block that does not decode is a COMPRESSION_ERROR (index 0)",
            |c| {
                c.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM,
                    1,
                    &[0x80],
                )
            },
            Goaway(E::COMPRESSION_ERROR),
        ),
        case(
            "4.3",
            "an index past both tables is a COMPRESSION_ERROR (RFC 7541 §2.3.3)",
            |c| {
                c.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM,
                    1,
                    &[0xff, 0x7f],
                )
            },
            Goaway(E::COMPRESSION_ERROR),
        ),
        case(
            "4.3",
            "a table size update above SETTINGS_HEADER_TABLE_SIZE is a COMPRESSION_ERROR (RFC 7541 §6.3)",
            |c| {
                let mut block = vec![0x3f, 0xe1, 0x3f];
                block.extend(c.block(&request_fields("GET", "/")));
                c.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM,
                    1,
                    &block,
                )
            },
            Goaway(E::COMPRESSION_ERROR),
        ),
        case(
            "4.3",
            "a header block is contiguous: PRIORITY in the middle is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    c.frame(
                        kind::HEADERS,
                        flag::END_STREAM,
                        1,
                        &c.block(&request_fields("GET", "/")),
                    ),
                    c.frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 0, 15]),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "4.3",
            "a header block is contiguous: DATA in the middle is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    c.frame(kind::HEADERS, 0, 1, &c.block(&request_fields("POST", "/"))),
                    c.data(1, b"x", true),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.10",
            "CONTINUATION of another stream in a header block is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    c.frame(
                        kind::HEADERS,
                        flag::END_STREAM,
                        1,
                        &c.block(&request_fields("GET", "/")),
                    ),
                    c.frame(kind::CONTINUATION, flag::END_HEADERS, 3, &[]),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.5",
            "an unknown frame type inside a header block is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    c.frame(
                        kind::HEADERS,
                        flag::END_STREAM,
                        1,
                        &c.block(&request_fields("GET", "/")),
                    ),
                    c.frame(0xfe, 0, 1, &[]),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        // §5.1 Stream states.
        case(
            "5.1",
            "idle: DATA is a connection error PROTOCOL_ERROR",
            |c| c.data(1, b"x", true),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.1",
            "idle: RST_STREAM is a connection error PROTOCOL_ERROR",
            |c| c.rst_stream(1, E::CANCEL),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.1",
            "idle: WINDOW_UPDATE is a connection error PROTOCOL_ERROR",
            |c| c.window_update(1, 10),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.1",
            "idle: CONTINUATION is a connection error PROTOCOL_ERROR",
            |c| c.frame(kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.1",
            "idle: PRIORITY is allowed",
            |c| c.frame(kind::PRIORITY, 0, 9, &[0, 0, 0, 0, 15]),
            Alive,
        ),
        case(
            "5.1",
            "idle: HEADERS opens the stream",
            |c| c.get(1, "/"),
            Request(1),
        ),
        case(
            "5.1",
            "half-closed (remote): DATA is a stream error STREAM_CLOSED",
            |c| cat(&[c.get(1, "/"), c.data(1, b"x", true)]),
            Reset(1, E::STREAM_CLOSED),
        ),
        case(
            "5.1",
            "half-closed (remote): HEADERS is a stream error STREAM_CLOSED",
            |c| cat(&[c.get(1, "/"), c.headers(1, &[("x", "y")], true)]),
            Reset(1, E::STREAM_CLOSED),
        ),
        case(
            "5.1",
            "half-closed (remote): WINDOW_UPDATE is allowed",
            |c| cat(&[c.get(1, "/"), c.window_update(1, 10)]),
            Request(1),
        ),
        case(
            "5.1",
            "half-closed (remote): RST_STREAM closes the stream",
            |c| cat(&[c.get(1, "/"), c.rst_stream(1, E::CANCEL)]),
            Alive,
        ),
        case(
            "5.1",
            "open: DATA is delivered",
            |c| cat(&[post(c, 1), c.data(1, b"abc", false)]),
            Request(1),
        ),
        case(
            "5.1",
            "open: trailers end the stream",
            |c| {
                cat(&[
                    post(c, 1),
                    c.data(1, b"abc", false),
                    c.headers(1, &[("x-trailer", "1")], true),
                ])
            },
            Request(1),
        ),
        case(
            "5.1",
            "closed (reset by the client): DATA is a stream error STREAM_CLOSED",
            |c| {
                cat(&[
                    post(c, 1),
                    c.rst_stream(1, E::CANCEL),
                    c.data(1, b"x", false),
                ])
            },
            Reset(1, E::STREAM_CLOSED),
        ),
        case(
            "5.1",
            "closed (reset by the client): HEADERS is a connection error STREAM_CLOSED",
            |c| cat(&[post(c, 1), c.rst_stream(1, E::CANCEL), c.get(1, "/")]),
            Goaway(E::STREAM_CLOSED),
        ),
        case(
            "5.1",
            "closed: WINDOW_UPDATE is ignored",
            |c| {
                cat(&[
                    post(c, 1),
                    c.rst_stream(1, E::CANCEL),
                    c.window_update(1, 5),
                ])
            },
            Alive,
        ),
        case(
            "5.1",
            "closed: RST_STREAM is ignored",
            |c| {
                cat(&[
                    post(c, 1),
                    c.rst_stream(1, E::CANCEL),
                    c.rst_stream(1, E::CANCEL),
                ])
            },
            Alive,
        ),
        case(
            "5.1",
            "closed: PRIORITY is allowed",
            |c| {
                cat(&[
                    post(c, 1),
                    c.rst_stream(1, E::CANCEL),
                    c.frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 0, 15]),
                ])
            },
            Alive,
        ),
        // §5.1.1 Stream identifiers.
        case(
            "5.1.1",
            "a client stream id MUST be odd: an even one is a PROTOCOL_ERROR",
            |c| c.get(2, "/"),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.1.1",
            "a new stream id MUST be above all the client opened: a PROTOCOL_ERROR",
            |c| cat(&[c.get(5, "/"), c.get(3, "/")]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "5.1.1",
            "stream ids may skip (the skipped ones close)",
            |c| cat(&[c.get(1, "/"), c.get(7, "/")]),
            Request(7),
        ),
        // §5.1.2 Stream concurrency.
        Case {
            config: |config| config.max_concurrent_streams = 2,
            ..case(
                "5.1.2",
                "past SETTINGS_MAX_CONCURRENT_STREAMS a stream is refused (REFUSED_STREAM)",
                |c| cat(&[c.get(1, "/"), c.get(3, "/"), c.get(5, "/")]),
                Reset(5, E::REFUSED_STREAM),
            )
        },
        // §5.3.1 Priority.
        case(
            "5.3.1",
            "a stream depending on itself in HEADERS is a stream error PROTOCOL_ERROR",
            |c| {
                let mut payload = vec![0, 0, 0, 1, 15];
                payload.extend(c.block(&request_fields("GET", "/")));
                c.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM | flag::PRIORITY,
                    1,
                    &payload,
                )
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "5.3.1",
            "a stream depending on itself in PRIORITY is a stream error PROTOCOL_ERROR",
            |c| c.frame(kind::PRIORITY, 0, 3, &[0, 0, 0, 3, 15]),
            Reset(3, E::PROTOCOL_ERROR),
        ),
        // §5.5 Extensions.
        case(
            "5.5",
            "unknown SETTINGS identifiers MUST be ignored",
            |c| c.settings(&[(0x99, 1)]),
            Alive,
        ),
        // §6.1 DATA.
        case(
            "6.1",
            "DATA on stream 0 is a PROTOCOL_ERROR",
            |c| c.data(0, b"x", false),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.1",
            "padding as long as the payload is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    post(c, 1),
                    c.frame(kind::DATA, flag::PADDED, 1, &[4, 1, 2, 3]),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.1",
            "padded DATA is accepted",
            |c| {
                cat(&[
                    post(c, 1),
                    c.frame(
                        kind::DATA,
                        flag::PADDED | flag::END_STREAM,
                        1,
                        &[2, b'h', b'i', 0, 0],
                    ),
                ])
            },
            Request(1),
        ),
        // §6.2 HEADERS.
        case(
            "6.2",
            "HEADERS on stream 0 is a PROTOCOL_ERROR",
            |c| c.headers(0, &request_fields("GET", "/"), true),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.2",
            "HEADERS padding as long as the payload is a PROTOCOL_ERROR",
            |c| {
                c.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::PADDED,
                    1,
                    &[5, 0x82, 0x84, 0x86],
                )
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.2",
            "HEADERS with padding and priority fields is accepted",
            |c| {
                let mut payload = vec![3, 0, 0, 0, 0, 15];
                payload.extend(c.block(&request_fields("GET", "/")));
                payload.extend([0, 0, 0]);
                c.frame(
                    kind::HEADERS,
                    flag::END_HEADERS | flag::END_STREAM | flag::PADDED | flag::PRIORITY,
                    1,
                    &payload,
                )
            },
            Request(1),
        ),
        // §6.3 PRIORITY.
        case(
            "6.3",
            "PRIORITY on stream 0 is a PROTOCOL_ERROR",
            |c| c.frame(kind::PRIORITY, 0, 0, &[0, 0, 0, 1, 15]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.3",
            "PRIORITY other than 5 octets is a stream error FRAME_SIZE_ERROR",
            |c| c.frame(kind::PRIORITY, 0, 1, &[0, 0, 0, 3]),
            Reset(1, E::FRAME_SIZE_ERROR),
        ),
        // §6.4 RST_STREAM.
        case(
            "6.4",
            "RST_STREAM on stream 0 is a PROTOCOL_ERROR",
            |c| c.rst_stream(0, E::CANCEL),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.4",
            "RST_STREAM other than 4 octets is a FRAME_SIZE_ERROR",
            |c| cat(&[post(c, 1), c.frame(kind::RST_STREAM, 0, 1, &[0, 0, 8])]),
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        // §6.5 SETTINGS.
        case(
            "6.5",
            "SETTINGS ack with a payload is a FRAME_SIZE_ERROR",
            |c| c.frame(kind::SETTINGS, flag::ACK, 0, &[0, 1, 0, 0, 0, 0]),
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        case(
            "6.5",
            "SETTINGS on a stream is a PROTOCOL_ERROR",
            |c| c.frame(kind::SETTINGS, 0, 1, &[]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.5",
            "SETTINGS length not a multiple of 6 is a FRAME_SIZE_ERROR",
            |c| c.frame(kind::SETTINGS, 0, 0, &[0, 1, 0]),
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        case(
            "6.5.2",
            "SETTINGS_ENABLE_PUSH other than 0 or 1 is a PROTOCOL_ERROR",
            |c| c.settings(&[(setting::ENABLE_PUSH, 2)]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.5.2",
            "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1 is a FLOW_CONTROL_ERROR",
            |c| c.settings(&[(setting::INITIAL_WINDOW_SIZE, 1 << 31)]),
            Goaway(E::FLOW_CONTROL_ERROR),
        ),
        case(
            "6.5.2",
            "SETTINGS_MAX_FRAME_SIZE below 2^14 is a PROTOCOL_ERROR",
            |c| c.settings(&[(setting::MAX_FRAME_SIZE, 16_383)]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.5.2",
            "SETTINGS_MAX_FRAME_SIZE above 2^24-1 is a PROTOCOL_ERROR",
            |c| c.settings(&[(setting::MAX_FRAME_SIZE, 1 << 24)]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.5.3",
            "SETTINGS are acknowledged (and the connection goes on)",
            |c| c.settings(&[(setting::HEADER_TABLE_SIZE, 0)]),
            Alive,
        ),
        // §6.6 PUSH_PROMISE.
        case(
            "8.4",
            "a client cannot push: PUSH_PROMISE is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    c.get(1, "/"),
                    c.frame(
                        kind::PUSH_PROMISE,
                        flag::END_HEADERS,
                        1,
                        &[0, 0, 0, 2, 0x82],
                    ),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        // §6.7 PING.
        case(
            "6.7",
            "PING is answered with ACK and the same data",
            |c| c.ping(*b"ringwork"),
            PingAck(*b"ringwork"),
        ),
        case(
            "6.7",
            "a PING ACK is not answered",
            |c| c.frame(kind::PING, flag::ACK, 0, &[7; 8]),
            Alive,
        ),
        case(
            "6.7",
            "PING on a stream is a PROTOCOL_ERROR",
            |c| c.frame(kind::PING, 0, 1, &[0; 8]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.7",
            "PING other than 8 octets is a FRAME_SIZE_ERROR",
            |c| c.frame(kind::PING, 0, 0, &[0; 7]),
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        // §6.8 GOAWAY.
        case(
            "6.8",
            "GOAWAY on a stream is a PROTOCOL_ERROR",
            |c| c.frame(kind::GOAWAY, 0, 1, &[0; 8]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.8",
            "after the client's GOAWAY an idle connection closes with GOAWAY NO_ERROR",
            |c| c.frame(kind::GOAWAY, 0, 0, &[0; 8]),
            Goaway(E::NO_ERROR),
        ),
        // §6.9 WINDOW_UPDATE.
        case(
            "6.9",
            "a connection WINDOW_UPDATE of 0 is a PROTOCOL_ERROR",
            |c| c.window_update(0, 0),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.9",
            "a stream WINDOW_UPDATE of 0 is a stream error PROTOCOL_ERROR",
            |c| cat(&[post(c, 1), c.window_update(1, 0)]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "6.9",
            "WINDOW_UPDATE other than 4 octets is a FRAME_SIZE_ERROR",
            |c| c.frame(kind::WINDOW_UPDATE, 0, 0, &[0, 0, 1]),
            Goaway(E::FRAME_SIZE_ERROR),
        ),
        case(
            "6.9.1",
            "a connection window past 2^31-1 is a FLOW_CONTROL_ERROR",
            |c| c.window_update(0, 0x7fff_ffff),
            Goaway(E::FLOW_CONTROL_ERROR),
        ),
        case(
            "6.9.1",
            "a stream window past 2^31-1 is a stream error FLOW_CONTROL_ERROR",
            |c| cat(&[post(c, 1), c.window_update(1, 0x7fff_ffff)]),
            Reset(1, E::FLOW_CONTROL_ERROR),
        ),
        case(
            "6.9.2",
            "SETTINGS_INITIAL_WINDOW_SIZE taking a window past 2^31-1 is a FLOW_CONTROL_ERROR",
            |c| {
                cat(&[
                    post(c, 1),
                    c.window_update(1, 0x7fff_ffff - 65_535),
                    c.settings(&[(setting::INITIAL_WINDOW_SIZE, 65_536)]),
                ])
            },
            Goaway(E::FLOW_CONTROL_ERROR),
        ),
        Case {
            config: |config| config.stream_window = 16_384,
            ..case(
                "6.9.1",
                "DATA past the stream's window is a stream error FLOW_CONTROL_ERROR",
                |c| {
                    cat(&[
                        post(c, 1),
                        c.frame(kind::SETTINGS, flag::ACK, 0, &[]),
                        c.data(1, &[0; 16_384], false),
                        c.data(1, b"x", false),
                    ])
                },
                Reset(1, E::FLOW_CONTROL_ERROR),
            )
        },
        Case {
            config: |config| config.connection_window = 65_535,
            ..case(
                "6.9.1",
                "DATA past the connection's window is a FLOW_CONTROL_ERROR",
                |c| {
                    let mut v = Vec::new();
                    for stream in [1, 3, 5, 7, 9] {
                        v.extend(post(c, stream));
                        v.extend(c.data(stream, &[0; 16_000], false));
                    }
                    v
                },
                Goaway(E::FLOW_CONTROL_ERROR),
            )
        },
        // §6.10 CONTINUATION.
        case(
            "6.10",
            "CONTINUATION after END_HEADERS is a PROTOCOL_ERROR",
            |c| {
                cat(&[
                    post(c, 1),
                    c.frame(kind::CONTINUATION, flag::END_HEADERS, 1, &[]),
                ])
            },
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.10",
            "CONTINUATION on stream 0 is a PROTOCOL_ERROR",
            |c| c.frame(kind::CONTINUATION, flag::END_HEADERS, 0, &[]),
            Goaway(E::PROTOCOL_ERROR),
        ),
        case(
            "6.10",
            "HEADERS and CONTINUATIONs make one header block",
            |c| {
                let block = c.block(&request_fields("GET", "/"));
                cat(&[
                    c.frame(kind::HEADERS, flag::END_STREAM, 1, &block[..3]),
                    c.frame(kind::CONTINUATION, 0, 1, &block[3..6]),
                    c.frame(kind::CONTINUATION, flag::END_HEADERS, 1, &block[6..]),
                ])
            },
            Request(1),
        ),
        // §8.1 HTTP message framing.
        case(
            "8.1",
            "trailers without END_STREAM are malformed (stream error PROTOCOL_ERROR)",
            |c| {
                cat(&[
                    post(c, 1),
                    c.data(1, b"x", false),
                    c.headers(1, &[("x-t", "1")], false),
                ])
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.1",
            "trailers with a pseudo-field are malformed",
            |c| cat(&[post(c, 1), c.headers(1, &[(":path", "/")], true)]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.1.1",
            "a body shorter than content-length is malformed",
            |c| {
                cat(&[
                    c.headers(
                        1,
                        &[
                            (":method", "POST"),
                            (":scheme", "http"),
                            (":path", "/"),
                            ("content-length", "5"),
                        ],
                        false,
                    ),
                    c.data(1, b"abc", true),
                ])
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.1.1",
            "a body longer than content-length is malformed",
            |c| {
                cat(&[
                    c.headers(
                        1,
                        &[
                            (":method", "POST"),
                            (":scheme", "http"),
                            (":path", "/"),
                            ("content-length", "2"),
                        ],
                        false,
                    ),
                    c.data(1, b"abc", false),
                ])
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.1.1",
            "content-length with END_STREAM on HEADERS is malformed",
            |c| {
                c.headers(
                    1,
                    &[
                        (":method", "POST"),
                        (":scheme", "http"),
                        (":path", "/"),
                        ("content-length", "1"),
                    ],
                    true,
                )
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        // §8.2 Fields.
        case(
            "8.2",
            "an uppercase field name is malformed",
            |c| get_with(c, &[("X-Upper", "1")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.1",
            "a field value with LF is malformed",
            |c| get_with(c, &[("x-a", "a\nb")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.1",
            "a field value with NUL is malformed",
            |c| get_with(c, &[("x-a", "a\0b")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.1",
            "a field value starting with a space is malformed",
            |c| get_with(c, &[("x-a", " b")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.1",
            "a field name with a space is malformed",
            |c| get_with(c, &[("x a", "b")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.2",
            "a connection-specific field (connection) is malformed",
            |c| get_with(c, &[("connection", "keep-alive")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.2",
            "a connection-specific field (transfer-encoding) is malformed",
            |c| get_with(c, &[("transfer-encoding", "chunked")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.2",
            "te other than trailers is malformed",
            |c| get_with(c, &[("te", "gzip")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.2.2",
            "te: trailers is allowed",
            |c| get_with(c, &[("te", "trailers")]),
            Request(1),
        ),
        // §8.3 Pseudo-fields.
        case(
            "8.3",
            "an unknown pseudo-field is malformed",
            |c| get_with(c, &[(":foo", "1")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3",
            "a response pseudo-field in a request is malformed",
            |c| {
                fields(
                    c,
                    &[
                        (":status", "200"),
                        (":method", "GET"),
                        (":scheme", "http"),
                        (":path", "/"),
                    ],
                )
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3",
            "a pseudo-field after a regular field is malformed",
            |c| {
                fields(
                    c,
                    &[
                        (":method", "GET"),
                        ("x-a", "1"),
                        (":scheme", "http"),
                        (":path", "/"),
                    ],
                )
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3.1",
            "a repeated :path is malformed",
            |c| {
                fields(
                    c,
                    &[
                        (":method", "GET"),
                        (":scheme", "http"),
                        (":path", "/"),
                        (":path", "/"),
                    ],
                )
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3.1",
            "a request without :method is malformed",
            |c| fields(c, &[(":scheme", "http"), (":path", "/")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3.1",
            "a request without :scheme is malformed",
            |c| fields(c, &[(":method", "GET"), (":path", "/")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3.1",
            "a request without :path is malformed",
            |c| fields(c, &[(":method", "GET"), (":scheme", "http")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.3.1",
            "an empty :path is malformed",
            |c| fields(c, &[(":method", "GET"), (":scheme", "http"), (":path", "")]),
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.5",
            "CONNECT with :path is malformed",
            |c| {
                fields(
                    c,
                    &[
                        (":method", "CONNECT"),
                        (":authority", "a:1"),
                        (":path", "/"),
                    ],
                )
            },
            Reset(1, E::PROTOCOL_ERROR),
        ),
        case(
            "8.5",
            "CONNECT with only :authority is a request",
            |c| fields(c, &[(":method", "CONNECT"), (":authority", "a:1")]),
            Request(1),
        ),
        // §6.5.2 / §10.5.1 Limits.
        Case {
            config: |config| config.max_header_list_size = 200,
            ..case(
                "10.5.1",
                "a head over SETTINGS_MAX_HEADER_LIST_SIZE is answered 431",
                |c| get_with(c, &[("x-big", &"y".repeat(300))]),
                Status(1, "431"),
            )
        },
        // §10.5 Denial of service.
        case(
            "10.5",
            "CONTINUATION flood (CVE-2024-27316) ends in ENHANCE_YOUR_CALM",
            |c| {
                let mut v = c.frame(kind::HEADERS, 0, 1, &c.block(&request_fields("GET", "/")));
                for _ in 0..100 {
                    v.extend(c.frame(kind::CONTINUATION, 0, 1, b"\x40\x01a\x01b"));
                }
                v
            },
            Goaway(E::ENHANCE_YOUR_CALM),
        ),
        case(
            "10.5",
            "rapid reset (CVE-2023-44487) ends in ENHANCE_YOUR_CALM",
            |c| {
                let mut v = Vec::new();
                for i in 0..400 {
                    let stream = 1 + 2 * i;
                    v.extend(c.get(stream, "/"));
                    v.extend(c.rst_stream(stream, ErrorCode::CANCEL));
                }
                v
            },
            Goaway(E::ENHANCE_YOUR_CALM),
        ),
        case(
            "10.5",
            "a flood of malformed requests (each a stream error) ends in ENHANCE_YOUR_CALM",
            |c| {
                (0..400u32)
                    .flat_map(|i| get_with_on(c, 1 + 2 * i, &[("X-Upper", "1")]))
                    .collect()
            },
            Goaway(E::ENHANCE_YOUR_CALM),
        ),
        case(
            "10.5",
            "a PING flood ends in ENHANCE_YOUR_CALM",
            |c| (0..3000).flat_map(|_| c.ping([0; 8])).collect(),
            Goaway(E::ENHANCE_YOUR_CALM),
        ),
        case(
            "10.5",
            "a SETTINGS flood ends in ENHANCE_YOUR_CALM",
            |c| (0..3000).flat_map(|_| c.settings(&[])).collect(),
            Goaway(E::ENHANCE_YOUR_CALM),
        ),
    ];
    cases.shrink_to_fit();
    cases
}

struct Outcome {
    received: Vec<Received>,
    events: Vec<ServerEvent>,
    closed: bool,
}

fn run(case: &Case) -> Outcome {
    let mut config = ServerConfig::default();
    (case.config)(&mut config.http2);
    let client = ScriptedClient::new();
    let mut pair = Pair::new(RawPeer::new(), H2ServerConn::new(&config));
    if !case.raw {
        pair.client.send(client.preface());
    }
    pair.client.send((case.input)(&client));
    pair.drive();
    pair.advance(Duration::from_millis(1));
    let mut events: Vec<ServerEvent> = std::iter::from_fn(|| pair.server.poll_event()).collect();
    let closed_now = pair.server.is_closing();
    if !closed_now {
        // The connection goes on: a PING is answered.
        pair.client.send(client.ping(*b"stillok!"));
        pair.drive();
        events.extend(std::iter::from_fn(|| pair.server.poll_event()));
    }
    let mut reader = ScriptedClient::new();
    let received = reader.read(&pair.client.take_received());
    Outcome {
        received,
        events,
        closed: pair.server.is_closing() || pair.client.saw_eof(),
    }
}

fn goaway(received: &[Received]) -> Option<ErrorCode> {
    received.iter().find_map(|r| match r {
        Received::Frame(Frame::GoAway { code, .. }) => Some(*code),
        _ => None,
    })
}

fn resets(received: &[Received]) -> Vec<(u32, ErrorCode)> {
    received
        .iter()
        .filter_map(|r| match r {
            Received::Frame(Frame::RstStream { stream, code }) => Some((*stream, *code)),
            _ => None,
        })
        .collect()
}

fn alive(outcome: &Outcome) -> bool {
    !outcome.closed
        && goaway(&outcome.received).is_none()
        && outcome.received.iter().any(|r| {
            matches!(r, Received::Frame(Frame::Ping { ack: true, data }) if data == b"stillok!")
        })
}

fn check(case: &Case) -> Result<(), String> {
    let outcome = run(case);
    let ok =
        match &case.expect {
            Expect::Goaway(code) => goaway(&outcome.received) == Some(*code) && outcome.closed,
            Expect::Reset(stream, code) => {
                resets(&outcome.received).contains(&(*stream, *code)) && alive(&outcome)
            }
            Expect::Request(stream) => {
                outcome.events.iter().any(
                    |e| matches!(e, ServerEvent::Request { id, .. } if id.0 == u64::from(*stream)),
                ) && resets(&outcome.received).is_empty()
                    && alive(&outcome)
            }
            Expect::Status(stream, status) => outcome.received.iter().any(|r| {
                matches!(r, Received::Headers { stream: s, .. } if s == stream)
                    && r.field(":status") == Some(status)
            }),
            Expect::Alive => resets(&outcome.received).is_empty() && alive(&outcome),
            Expect::PingAck(data) => outcome.received.iter().any(
                |r| matches!(r, Received::Frame(Frame::Ping { ack: true, data: d }) if d == data),
            ) && alive(&outcome),
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "RFC 9113 §{} {}: expected {:?}; got closed={} frames={:?} events={:?}",
            case.section,
            case.rule,
            case.expect,
            outcome.closed,
            outcome
                .received
                .iter()
                .filter(|r| !matches!(
                    r,
                    Received::Frame(Frame::Settings { .. } | Frame::WindowUpdate { .. })
                ))
                .collect::<Vec<_>>(),
            outcome.events.len(),
        ))
    }
}

#[test]
fn conformance_cases() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let failures: Vec<String> = cases.iter().filter_map(|case| check(case).err()).collect();
    println!("{} cases, {} failed", cases.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_server_preface_is_settings_then_the_connection_window() {
    let config = ServerConfig::default();
    let mut pair = Pair::new(RawPeer::new(), H2ServerConn::new(&config));
    pair.drive();
    let received = ScriptedClient::new().read(&pair.client.take_received());
    assert!(matches!(
        received[0],
        Received::Frame(Frame::Settings { ack: false, .. })
    ));
    assert_eq!(
        received[1],
        Received::Frame(Frame::WindowUpdate {
            stream: 0,
            increment: 1024 * 1024 - 65_535
        })
    );
    // The client's SETTINGS is acknowledged.
    let client = ScriptedClient::new();
    pair.client.send(client.preface());
    pair.drive();
    let received = ScriptedClient::new().read(&pair.client.take_received());
    assert!(received.contains(&Received::Frame(Frame::Settings {
        ack: true,
        entries: Default::default()
    })));
    assert!(pair.server.wants_input());
}
