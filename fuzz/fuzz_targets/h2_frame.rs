//! Fuzz target for the HTTP/2 frame decoder (`h2::frame::decode_frame`).
//!
//! Asserts: no panic; a complete frame consumed exactly its header and payload; a frame
//! never exceeds the size limit given; a stream error consumed its frame and a connection
//! error consumed nothing; SETTINGS entries come in whole 6-byte pieces; what decoded as
//! PING, WINDOW_UPDATE, RST_STREAM and GOAWAY encodes back to the same bytes.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringwork_protocols::http::proto::h2::frame::{
    self, Frame, FrameError, FrameHeader, HEADER_LEN, decode_frame, settings_entries,
};
use ringwork_protocols::kit::Status;

fuzz_target!(|data: &[u8]| {
    let Some((&limit_byte, data)) = data.split_first() else {
        return;
    };
    let max = if limit_byte & 1 == 0 { 16_384 } else { 100 };
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.len();
        let header = buf.first_chunk::<HEADER_LEN>().map(FrameHeader::parse);
        match decode_frame(&mut buf, max) {
            Ok(Status::Partial) => {
                assert_eq!(buf.len(), before);
                break;
            }
            Ok(Status::Complete(frame)) => {
                let header = header.expect("a complete frame has a header");
                assert!(header.len <= max);
                assert_eq!(before - buf.len(), HEADER_LEN + header.len as usize);
                check(
                    &frame,
                    &data[data.len() - before..][..HEADER_LEN + header.len as usize],
                );
            }
            Err(FrameError::Connection { .. }) => {
                assert_eq!(buf.len(), before);
                break;
            }
            Err(FrameError::Stream { stream, .. }) => {
                let header = header.expect("a stream error has a header");
                assert_eq!(stream, header.stream);
                assert_eq!(before - buf.len(), HEADER_LEN + header.len as usize);
            }
        }
    }
});

fn check(frame: &Frame, raw: &[u8]) {
    let mut again = BytesMut::new();
    match frame {
        Frame::Settings { entries, .. } => {
            assert_eq!(entries.len() % 6, 0);
            assert_eq!(settings_entries(entries).count(), entries.len() / 6);
            return;
        }
        Frame::Ping { ack, data } => frame::encode_ping(&mut again, *ack, *data),
        Frame::WindowUpdate { stream, increment } => {
            assert_ne!(*increment, 0);
            frame::encode_window_update(&mut again, *stream, *increment);
        }
        Frame::RstStream { stream, code } => frame::encode_rst_stream(&mut again, *stream, *code),
        Frame::GoAway {
            last_stream,
            code,
            debug,
        } => {
            frame::encode_goaway(&mut again, *last_stream, *code, debug);
        }
        Frame::Data { data, flow_len, .. } => {
            assert!(data.len() <= *flow_len as usize);
            return;
        }
        _ => return,
    }
    // Flags other than ACK and the reserved bits are not kept: compare what is (the
    // payload's first bit is reserved in WINDOW_UPDATE and GOAWAY).
    let mut raw = raw.to_vec();
    if matches!(frame, Frame::WindowUpdate { .. } | Frame::GoAway { .. }) {
        raw[9] &= 0x7f;
    }
    assert_eq!(again[..4], raw[..4]);
    assert_eq!(again[9..], raw[9..]);
}
