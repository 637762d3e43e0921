use bytes::{BufMut, BytesMut};

use super::*;

fn raw(len: usize, kind: u8, flags: u8, stream: u32, payload: &[u8]) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_header(&mut buf, len, kind, flags, stream);
    buf.put_slice(payload);
    buf
}

fn decode(mut buf: BytesMut) -> Result<Frame, FrameError> {
    match decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE)? {
        Status::Complete(frame) => {
            assert!(buf.is_empty(), "left {buf:?}");
            Ok(frame)
        }
        Status::Partial => panic!("partial"),
    }
}

fn conn_code(result: Result<Frame, FrameError>) -> ErrorCode {
    match result {
        Err(FrameError::Connection { code, .. }) => code,
        other => panic!("expected a connection error, got {other:?}"),
    }
}

#[test]
fn every_frame_type_round_trips() {
    let mut buf = BytesMut::new();
    encode_settings(&mut buf, &[(setting::MAX_CONCURRENT_STREAMS, 100)]);
    encode_settings_ack(&mut buf);
    encode_ping(&mut buf, false, [1; 8]);
    encode_ping(&mut buf, true, [2; 8]);
    encode_goaway(&mut buf, 7, ErrorCode::ENHANCE_YOUR_CALM, b"calm");
    encode_rst_stream(&mut buf, 3, ErrorCode::CANCEL);
    encode_window_update(&mut buf, 0, 1000);
    encode_data_header(&mut buf, 1, 3, true);
    buf.put_slice(b"abc");
    encode_headers(&mut buf, 5, &[0x82; 40_000], false, DEFAULT_MAX_FRAME_SIZE);
    buf.extend_from_slice(&raw(0, 0xfa, 0, 9, b""));
    let mut frames = Vec::new();
    while let Status::Complete(frame) = decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap() {
        frames.push(frame);
    }
    assert!(buf.is_empty());
    assert_eq!(frames.len(), 12);
    let Frame::Settings {
        ack: false,
        entries,
    } = &frames[0]
    else {
        panic!("{:?}", frames[0]);
    };
    assert_eq!(
        settings_entries(entries).collect::<Vec<_>>(),
        [(setting::MAX_CONCURRENT_STREAMS, 100)]
    );
    assert!(matches!(frames[1], Frame::Settings { ack: true, .. }));
    assert_eq!(
        frames[2],
        Frame::Ping {
            ack: false,
            data: [1; 8]
        }
    );
    assert_eq!(
        frames[3],
        Frame::Ping {
            ack: true,
            data: [2; 8]
        }
    );
    assert_eq!(
        frames[4],
        Frame::GoAway {
            last_stream: 7,
            code: ErrorCode::ENHANCE_YOUR_CALM,
            debug: Bytes::from_static(b"calm")
        }
    );
    assert_eq!(
        frames[5],
        Frame::RstStream {
            stream: 3,
            code: ErrorCode::CANCEL
        }
    );
    assert_eq!(
        frames[6],
        Frame::WindowUpdate {
            stream: 0,
            increment: 1000
        }
    );
    assert_eq!(
        frames[7],
        Frame::Data {
            stream: 1,
            end_stream: true,
            data: Bytes::from_static(b"abc"),
            flow_len: 3
        }
    );
    // 40,000 bytes of block: one HEADERS and two CONTINUATIONs, END_HEADERS on the last.
    assert!(
        matches!(&frames[8], Frame::Headers { stream: 5, end_headers: false, end_stream: false, block, .. } if block.len() == 16_384)
    );
    assert!(
        matches!(&frames[9], Frame::Continuation { stream: 5, end_headers: false, block } if block.len() == 16_384)
    );
    assert!(
        matches!(&frames[10], Frame::Continuation { stream: 5, end_headers: true, block } if block.len() == 40_000 - 32_768)
    );
    assert_eq!(
        frames[11],
        Frame::Unknown {
            kind: 0xfa,
            stream: 9
        }
    );
}

#[test]
fn partial_frames_wait_at_every_split_point() {
    let mut whole = BytesMut::new();
    encode_ping(&mut whole, false, *b"12345678");
    for cut in 0..whole.len() {
        let mut buf = BytesMut::from(&whole[..cut]);
        assert!(
            decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE)
                .unwrap()
                .is_partial()
        );
        assert_eq!(buf.len(), cut);
        buf.extend_from_slice(&whole[cut..]);
        assert!(matches!(
            decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE).unwrap(),
            Status::Complete(Frame::Ping { .. })
        ));
    }
}

#[test]
fn padding_is_removed_and_counted_for_flow_control() {
    // DATA, PADDED: pad length 3, "hi", 3 bytes of padding.
    let frame = decode(raw(
        6,
        kind::DATA,
        flag::PADDED,
        1,
        &[3, b'h', b'i', 0, 0, 0],
    ))
    .unwrap();
    assert_eq!(
        frame,
        Frame::Data {
            stream: 1,
            end_stream: false,
            data: Bytes::from_static(b"hi"),
            flow_len: 6
        }
    );
    // HEADERS, PADDED | PRIORITY: pad 1, dependency 3 (exclusive), weight 15, block, pad.
    let payload = [1, 0x80, 0, 0, 3, 15, 0x82, 0];
    let frame = decode(raw(
        8,
        kind::HEADERS,
        flag::PADDED | flag::PRIORITY | flag::END_HEADERS,
        5,
        &payload,
    ))
    .unwrap();
    assert_eq!(
        frame,
        Frame::Headers {
            stream: 5,
            end_stream: false,
            end_headers: true,
            priority: Some(Priority {
                dependency: 3,
                exclusive: true,
                weight: 15
            }),
            block: Bytes::from_static(&[0x82]),
        }
    );
}

#[test]
fn frame_rules_give_their_errors() {
    use ErrorCode as E;
    // RFC 9113 §6.1: padding as long as the payload.
    assert_eq!(
        conn_code(decode(raw(3, kind::DATA, flag::PADDED, 1, &[3, 0, 0]))),
        E::PROTOCOL_ERROR
    );
    // §6.1: DATA on stream 0.
    assert_eq!(
        conn_code(decode(raw(1, kind::DATA, 0, 0, b"x"))),
        E::PROTOCOL_ERROR
    );
    // §6.2: HEADERS on stream 0.
    assert_eq!(
        conn_code(decode(raw(1, kind::HEADERS, 4, 0, &[0x82]))),
        E::PROTOCOL_ERROR
    );
    // §6.3: PRIORITY of 4 octets is a stream error.
    assert_eq!(
        decode(raw(4, kind::PRIORITY, 0, 1, &[0; 4])),
        Err(FrameError::stream(
            1,
            E::FRAME_SIZE_ERROR,
            "PRIORITY not 5 octets"
        ))
    );
    // §6.4: RST_STREAM of 3 octets; on stream 0.
    assert_eq!(
        conn_code(decode(raw(3, kind::RST_STREAM, 0, 1, &[0; 3]))),
        E::FRAME_SIZE_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(4, kind::RST_STREAM, 0, 0, &[0; 4]))),
        E::PROTOCOL_ERROR
    );
    // §6.5: SETTINGS ack with payload; length 5; on a stream; bad values.
    assert_eq!(
        conn_code(decode(raw(6, kind::SETTINGS, flag::ACK, 0, &[0; 6]))),
        E::FRAME_SIZE_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(5, kind::SETTINGS, 0, 0, &[0; 5]))),
        E::FRAME_SIZE_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(0, kind::SETTINGS, 0, 1, &[]))),
        E::PROTOCOL_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(6, kind::SETTINGS, 0, 0, &[0, 2, 0, 0, 0, 2]))),
        E::PROTOCOL_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(6, kind::SETTINGS, 0, 0, &[0, 4, 0x80, 0, 0, 0]))),
        E::FLOW_CONTROL_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(
            6,
            kind::SETTINGS,
            0,
            0,
            &[0, 5, 0, 0, 0x3f, 0xff]
        ))),
        E::PROTOCOL_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(6, kind::SETTINGS, 0, 0, &[0, 5, 1, 0, 0, 0]))),
        E::PROTOCOL_ERROR
    );
    // Unknown settings are ignored (§6.5.2).
    assert!(decode(raw(6, kind::SETTINGS, 0, 0, &[0, 0x77, 0, 0, 0, 9])).is_ok());
    // §6.7: PING of 7 octets; on a stream.
    assert_eq!(
        conn_code(decode(raw(7, kind::PING, 0, 0, &[0; 7]))),
        E::FRAME_SIZE_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(8, kind::PING, 0, 1, &[0; 8]))),
        E::PROTOCOL_ERROR
    );
    // §6.8: GOAWAY on a stream.
    assert_eq!(
        conn_code(decode(raw(8, kind::GOAWAY, 0, 1, &[0; 8]))),
        E::PROTOCOL_ERROR
    );
    // §6.9: WINDOW_UPDATE of 0: stream error on a stream, connection error on 0; 3 octets.
    assert!(matches!(
        decode(raw(4, kind::WINDOW_UPDATE, 0, 1, &[0; 4])),
        Err(FrameError::Stream {
            stream: 1,
            code: E::PROTOCOL_ERROR,
            ..
        })
    ));
    assert_eq!(
        conn_code(decode(raw(4, kind::WINDOW_UPDATE, 0, 0, &[0; 4]))),
        E::PROTOCOL_ERROR
    );
    assert_eq!(
        conn_code(decode(raw(3, kind::WINDOW_UPDATE, 0, 0, &[0; 3]))),
        E::FRAME_SIZE_ERROR
    );
    // §6.10: CONTINUATION on stream 0.
    assert_eq!(
        conn_code(decode(raw(1, kind::CONTINUATION, 4, 0, &[0x82]))),
        E::PROTOCOL_ERROR
    );
    // §4.2: a frame over SETTINGS_MAX_FRAME_SIZE, refused from its header alone.
    let mut big = BytesMut::new();
    encode_header(&mut big, 16_385, kind::DATA, 0, 1);
    assert_eq!(
        conn_code(decode_frame(&mut big, DEFAULT_MAX_FRAME_SIZE).map(|s| s.complete().unwrap())),
        E::FRAME_SIZE_ERROR
    );
}

#[test]
fn a_stream_error_consumes_its_frame() {
    let mut buf = raw(4, kind::PRIORITY, 0, 1, &[0; 4]);
    encode_ping(&mut buf, false, [0; 8]);
    assert!(decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE).is_err());
    assert!(matches!(
        decode_frame(&mut buf, DEFAULT_MAX_FRAME_SIZE),
        Ok(Status::Complete(Frame::Ping { .. }))
    ));
}

#[test]
fn the_reserved_bit_of_stream_ids_is_ignored() {
    let mut buf = raw(4, kind::WINDOW_UPDATE, 0, 0, &[0x80, 0, 0, 5]);
    buf[5] |= 0x80;
    assert_eq!(
        decode(buf).unwrap(),
        Frame::WindowUpdate {
            stream: 0,
            increment: 5
        }
    );
}
