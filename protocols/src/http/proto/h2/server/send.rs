//! The sending side of an HTTP/2 server connection: response heads and trailers encoded
//! straight into the output (one header block buffer reused), and DATA cut to the windows
//! and the peer's frame size, streams taking turns.

use super::{H2ServerConn, Send, request};
use crate::http::proto::Headers;
use crate::http::proto::h2::{frame, hpack};

impl H2ServerConn {
    /// Encodes a response head (HEADERS and CONTINUATIONs) for `stream_id`: `:status`,
    /// the application's fields less the connection-specific ones (RFC 9113 §8.2.2),
    /// Content-Length when `length` is given, Date and Server.
    pub(super) fn write_head(
        &mut self,
        stream_id: u32,
        status: u16,
        headers: &Headers,
        length: Option<u64>,
        end_stream: bool,
    ) {
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        hpack::encode_status(&mut block, status);
        let mut has_date = false;
        for (name, value) in headers.iter() {
            if request::is_connection_specific(name)
                || (length.is_some() && name.eq_ignore_ascii_case(b"content-length"))
            {
                continue;
            }
            has_date |= name.eq_ignore_ascii_case(b"date");
            hpack::encode_field(&mut block, name, value);
        }
        if let Some(length) = length {
            let mut digits = [0; 20];
            hpack::encode_field(&mut block, b"content-length", decimal(length, &mut digits));
        }
        if !has_date {
            let date = self.date;
            hpack::encode_field(&mut block, b"date", &date);
        }
        if let Some(name) = &self.server_name {
            hpack::encode_field(&mut block, b"server", name);
        }
        let max = self.peer_max_frame_size;
        let n = block.len();
        self.emit(|buf| frame::encode_headers(buf, stream_id, &block, end_stream, max));
        if let Some(stream) = self.streams.get_mut(&stream_id) {
            stream.sent += n as u64;
        }
        self.scratch = block;
    }

    /// Writes DATA (and ends) for the streams that can send, in turn, within the windows
    /// and until the output is full.
    pub(super) fn flush_streams(&mut self) {
        // Turns in a row that moved nothing: once every listed stream had one, stop.
        if !self.writable {
            // The transport is full: `handle_writable(true)` settles again.
            return;
        }
        let mut idle_turns = 0;
        while idle_turns <= self.sendable.len() && self.out.len() < self.config.max_buffered_output
        {
            let Some(stream_id) = self.sendable.pop_front() else {
                break;
            };
            let max_frame = self.peer_max_frame_size as usize;
            let conn_window = self.send_window;
            let Some(stream) = self.streams.get_mut(&stream_id) else {
                continue;
            };
            let mut wrote = 0usize;
            let mut blocked = false;
            while let Some(front) = stream.queued.front_mut() {
                let window = stream.send_window.min(conn_window - wrote as i64);
                if window <= 0 {
                    blocked = true;
                    break;
                }
                let n = front.len().min(max_frame).min(window as usize);
                let piece = front.split_to(n);
                if front.is_empty() {
                    stream.queued.pop_front();
                }
                stream.queued_len -= n;
                stream.send_window -= n as i64;
                stream.sent += n as u64;
                wrote += n;
                let end = stream.queued.is_empty()
                    && stream.send == Send::Ending
                    && stream.trailers.is_none();
                let buf = self.out.buffer();
                frame::encode_data_header(buf, stream_id, n, end);
                self.out.wrote(frame::HEADER_LEN);
                self.out.write_bytes(piece);
                if end {
                    break;
                }
                if wrote >= 64 * 1024 {
                    // Fairness: others get a turn.
                    break;
                }
            }
            self.send_window -= wrote as i64;
            let stream = self.stream_mut(stream_id);
            let queued_empty = stream.queued.is_empty();
            let ending = stream.send == Send::Ending;
            if queued_empty && ending {
                let ended_by_data = wrote > 0 && stream.trailers.is_none();
                if let Some(trailers) = stream.trailers.take() {
                    self.write_trailers(stream_id, &trailers);
                } else if !ended_by_data {
                    self.emit(|buf| frame::encode_data_header(buf, stream_id, 0, true));
                }
                self.sent_in_full(stream_id);
                idle_turns = 0;
            } else if !queued_empty {
                // More to send (a turn used up, or a window shut: a WINDOW_UPDATE settles
                // again).
                self.sendable.push_back(stream_id);
                if blocked && wrote == 0 {
                    idle_turns += 1;
                } else {
                    idle_turns = 0;
                }
            }
        }
    }

    fn write_trailers(&mut self, stream_id: u32, trailers: &Headers) {
        let mut block = std::mem::take(&mut self.scratch);
        block.clear();
        for (name, value) in trailers.iter() {
            if !request::is_connection_specific(name) {
                hpack::encode_field(&mut block, name, value);
            }
        }
        let max = self.peer_max_frame_size;
        self.emit(|buf| frame::encode_headers(buf, stream_id, &block, true, max));
        self.scratch = block;
    }
}

/// The decimal digits of `value`, written into `buf` (no allocation).
fn decimal(mut value: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &buf[at..];
        }
    }
}
