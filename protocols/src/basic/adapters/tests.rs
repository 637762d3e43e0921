use bytes::Bytes;
use ringwork::testing::StringTransport;

use super::*;
use crate::basic::proto::length_prefixed::{LengthPrefixedLimits, Prefix, encode_frame};
use crate::basic::proto::netstring::{NetstringError, encode_netstring};

/// Echoes lines; `raw` switches to raw mode, where bytes are echoed as `raw:<bytes>` until
/// `END`, after which the rest is lines again.
struct Echo;

impl LineHandler for Echo {
    fn line_received(&mut self, ctx: &mut LineContext<'_, '_>, line: &[u8]) {
        if line == b"raw" {
            ctx.set_raw(true);
        } else if line == b"quit" {
            ctx.send_line(b"bye");
            ctx.close();
        } else {
            ctx.send_line(line);
        }
    }

    fn raw_data_received(&mut self, ctx: &mut LineContext<'_, '_>, data: &[u8]) {
        let end = data.windows(3).position(|w| w == b"END");
        let raw = &data[..end.unwrap_or(data.len())];
        if !raw.is_empty() {
            ctx.write(b"raw:");
            ctx.write(raw);
            ctx.write(b"\n");
        }
        if let Some(end) = end {
            ctx.set_line_mode_with(&data[end + 3..]);
        }
    }
}

#[test]
fn line_echo() {
    let mut t = StringTransport::new(LineReceiver::new(Echo));
    t.feed(b"hello\r\nwor");
    assert_eq!(t.take_written(), b"hello\n");
    t.feed(b"ld\n\n");
    assert_eq!(t.take_written(), b"world\n\n");
    assert!(t.is_open());
}

#[test]
fn line_echo_crlf_and_close_stops_delivery() {
    let mut t = StringTransport::new(LineReceiver::with_config(
        Echo,
        Delimiter::CrLf,
        LineLimits::default(),
    ));
    t.feed(b"a\nb\r\nquit\r\nignored\r\n");
    assert_eq!(t.take_written(), b"a\nb\r\nbye\r\n");
    assert!(t.is_closed());
    assert!(t.lost_reason().is_some_and(LostReason::is_clean));
}

#[test]
fn line_too_long_closes() {
    let mut t = StringTransport::new(LineReceiver::with_config(
        Echo,
        Delimiter::Lf,
        LineLimits::new(4),
    ));
    t.feed(b"ok\n");
    t.feed(b"too long\n");
    assert_eq!(t.take_written(), b"ok\n");
    assert!(t.is_closed());
}

struct Complain;

impl LineHandler for Complain {
    fn line_received(&mut self, ctx: &mut LineContext<'_, '_>, line: &[u8]) {
        ctx.send_line(line);
    }

    fn line_too_long(&mut self, ctx: &mut Context<'_>, error: LineError) {
        ctx.write(format!("error: {error}\n").as_bytes());
        ctx.close();
    }
}

#[test]
fn line_too_long_custom_reply() {
    let mut t = StringTransport::new(LineReceiver::with_config(
        Complain,
        Delimiter::Lf,
        LineLimits::new(2),
    ));
    t.feed(b"abc");
    assert_eq!(t.take_written(), b"error: line longer than 2 bytes\n");
    assert!(t.is_closed());
}

#[test]
fn raw_mode_switching_mid_buffer() {
    let mut t = StringTransport::new(LineReceiver::new(Echo));
    // One read holds a line, the switch, raw bytes, the end marker and more lines.
    t.feed(b"one\nraw\nxy\nzENDtwo\nthr");
    assert_eq!(t.take_written(), b"one\nraw:xy\nz\ntwo\n");
    t.feed(b"ee\nraw\n");
    t.feed(b"abc");
    t.feed(b"END");
    t.feed(b"four\n");
    assert_eq!(t.take_written(), b"three\nraw:abc\nfour\n");
}

/// Echoes netstrings; counts decode errors.
struct NsEcho;

impl FrameHandler<NetstringDecoder> for NsEcho {
    fn frame_received(&mut self, ctx: &mut Context<'_>, _: &mut NetstringDecoder, frame: Bytes) {
        let mut out = BytesMut::new();
        encode_netstring(&frame, &mut out);
        ctx.write_bytes(out.freeze());
    }

    fn decode_error(&mut self, ctx: &mut Context<'_>, error: NetstringError) {
        ctx.write(format!("{error}").as_bytes());
        ctx.close();
    }
}

#[test]
fn netstring_echo_and_error() {
    let mut t = StringTransport::new(NetstringReceiver::with_decoder(
        NetstringDecoder::new(),
        NsEcho,
    ));
    t.feed(b"5:hel");
    assert_eq!(t.take_written(), b"");
    t.feed(b"lo,0:,01:");
    assert_eq!(
        t.take_written(),
        b"5:hello,0:,netstring length has a leading zero"
    );
    assert!(t.is_closed());
}

/// Echoes length-prefixed frames with the default error handling.
struct LpEcho;

impl FrameHandler<LengthPrefixedDecoder> for LpEcho {
    fn frame_received(
        &mut self,
        ctx: &mut Context<'_>,
        decoder: &mut LengthPrefixedDecoder,
        frame: Bytes,
    ) {
        let mut out = BytesMut::new();
        if encode_frame(&frame, decoder.prefix(), &mut out).is_ok() {
            ctx.write_bytes(out.freeze());
        }
    }
}

#[test]
fn length_prefixed_echo_and_too_large_closes() {
    let decoder = LengthPrefixedDecoder::new(Prefix::U16, LengthPrefixedLimits::new(8));
    let mut t = StringTransport::new(LengthPrefixedReceiver::with_decoder(decoder, LpEcho));
    t.feed(b"\x00\x02hi\x00");
    assert_eq!(t.take_written(), b"\x00\x02hi");
    t.feed(b"\x00");
    assert_eq!(t.take_written(), b"\x00\x00");
    assert!(t.is_open());
    t.feed(b"\x00\x09");
    assert!(t.is_closed());
    assert_eq!(t.take_written(), b"");
}
