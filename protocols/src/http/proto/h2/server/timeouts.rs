//! The HTTP/2 server's own deadlines besides idleness: a request body that stalls (per
//! stream, `ServerConfig::body_read_timeout`) and SETTINGS that the client never
//! acknowledges (`H2Config::settings_timeout`, RFC 9113 §6.5.3).
//!
//! A stream's body deadline runs only while the client may send (its request is open, the
//! stream's and the connection's receive windows are open): a body held up because the
//! application has not released what came is the application's doing, not the client's.
//! Each DATA starts it again. Past it the stream alone ends: `408` if it is not answered
//! yet (then RST_STREAM NO_ERROR, RFC 9113 §8.1, as for any answer that completes before
//! its request), RST_STREAM CANCEL if it is; other streams are not touched. CONNECT
//! streams (tunnels, RFC 8441) carry a protocol, not a body, and have no such deadline.

use std::time::Instant;

use super::{H2ServerConn, Recv, Send};
use crate::http::proto::h2::frame::ErrorCode;
use crate::http::proto::server::{RequestId, Response};

impl H2ServerConn {
    /// Starts or stops each stream's body deadline as the client may send or not.
    pub(super) fn date_bodies(&mut self, now: Instant) {
        let Some(timeout) = self.body_timeout else {
            return;
        };
        let connection_open = self.recv_window > 0;
        for stream in self.streams.values_mut() {
            let client_may_send = matches!(stream.recv, Recv::Open { .. })
                && stream.body_timer
                && connection_open
                && stream.recv_window > 0;
            if !client_may_send {
                stream.body_deadline = None;
            } else if stream.body_deadline.is_none() {
                stream.body_deadline = Some(now + timeout);
            }
        }
    }

    /// A DATA frame came on a stream: its body deadline starts again.
    pub(super) fn body_progress(&mut self, stream_id: u32, now: Instant) {
        let timeout = self.body_timeout;
        if let Some(stream) = self.streams.get_mut(&stream_id)
            && stream.body_timer
        {
            stream.body_deadline = timeout.map(|t| now + t);
        }
    }

    /// Ends the streams whose bodies stalled past their deadline, and the connection if
    /// our SETTINGS went unacknowledged past theirs.
    pub(super) fn expire(&mut self, now: Instant) {
        if self.settings_deadline.is_some_and(|at| at <= now) {
            self.settings_deadline = None;
            // RFC 9113 §6.5.3: no acknowledgement in time: a connection error
            // SETTINGS_TIMEOUT.
            self.connection_error(ErrorCode::SETTINGS_TIMEOUT, "SETTINGS not acknowledged");
            return;
        }
        let mut stalled: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| s.body_deadline.is_some_and(|at| at <= now))
            .map(|(&id, _)| id)
            .collect();
        stalled.sort_unstable();
        for stream_id in stalled {
            let Some(stream) = self.streams.get_mut(&stream_id) else {
                continue;
            };
            stream.body_deadline = None;
            stream.body_timer = false;
            if stream.send == Send::Pending {
                // The request will not complete: 408, and the client told to stop sending.
                let _ = self.send_response(RequestId(u64::from(stream_id)), Response::error(408));
            } else {
                self.reset_stream(stream_id, ErrorCode::CANCEL);
            }
        }
    }

    /// The earliest of the body and SETTINGS deadlines.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.streams
            .values()
            .filter_map(|s| s.body_deadline)
            .chain(self.settings_deadline)
            .min()
    }
}
