//! The HTTP/2 server's settings and limits ([`H2Config`]) and the token bucket that bounds
//! floods of cheap frames.

use std::time::Instant;

/// HTTP/2 settings and limits of a server connection, with safe defaults.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct H2Config {
    /// SETTINGS_MAX_CONCURRENT_STREAMS: streams the client may have open; more are refused
    /// (RST_STREAM REFUSED_STREAM).
    pub max_concurrent_streams: u32,
    /// SETTINGS_INITIAL_WINDOW_SIZE: body bytes a client may send on a stream before the
    /// application releases some.
    pub stream_window: u32,
    /// The connection's receive window (raised from 65,535 by a WINDOW_UPDATE at start).
    pub connection_window: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: a bigger request head is answered 431.
    pub max_header_list_size: u32,
    /// Bytes of one compressed header block (HEADERS and its CONTINUATIONs); past it the
    /// connection ends with ENHANCE_YOUR_CALM.
    pub max_header_block: usize,
    /// CONTINUATION frames in one header block; past it the connection ends with
    /// ENHANCE_YOUR_CALM (CVE-2024-27316).
    pub max_continuations: usize,
    /// Streams the client may reset (or have refused) in a burst; past it the connection
    /// ends with ENHANCE_YOUR_CALM (CVE-2023-44487)...
    pub reset_burst: u32,
    /// ...refilled at this many per second.
    pub resets_per_second: u32,
    /// PING, SETTINGS, PRIORITY, empty DATA and frames on closed streams in a burst; past
    /// it the connection ends with ENHANCE_YOUR_CALM...
    pub control_burst: u32,
    /// ...refilled at this many per second.
    pub control_per_second: u32,
    /// Output bytes waiting for the peer past which reading pauses (a peer that does not
    /// read cannot make us produce more).
    pub max_buffered_output: usize,
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441): extended CONNECT (`:protocol`, a
    /// WebSocket over a stream) is advertised and accepted; off, such a request is a
    /// stream error PROTOCOL_ERROR.
    pub enable_connect_protocol: bool,
    /// How long the client has to acknowledge our SETTINGS (RFC 9113 §6.5.3): past it, a
    /// connection error SETTINGS_TIMEOUT. `None`: no limit.
    pub settings_timeout: Option<std::time::Duration>,
}

impl Default for H2Config {
    fn default() -> Self {
        Self {
            max_concurrent_streams: 128,
            stream_window: 256 * 1024,
            connection_window: 1024 * 1024,
            max_header_list_size: 64 * 1024,
            max_header_block: 64 * 1024,
            max_continuations: 32,
            reset_burst: 200,
            resets_per_second: 100,
            control_burst: 1000,
            control_per_second: 500,
            max_buffered_output: 1024 * 1024,
            enable_connect_protocol: true,
            settings_timeout: Some(std::time::Duration::from_secs(10)),
        }
    }
}

/// A token bucket: a burst, refilled at a rate (in thousandths, no floats).
#[derive(Debug)]
pub(crate) struct Bucket {
    level: u64,
    burst: u64,
    per_second: u64,
    at: Option<Instant>,
}

impl Bucket {
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        Self {
            level: u64::from(burst) * 1000,
            burst: u64::from(burst) * 1000,
            per_second: u64::from(per_second),
            at: None,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        if let Some(at) = self.at {
            let ms = now.saturating_duration_since(at).as_millis();
            let refill = u64::try_from(ms)
                .unwrap_or(u64::MAX)
                .saturating_mul(self.per_second);
            self.level = self.level.saturating_add(refill).min(self.burst);
        }
        self.at = Some(now);
        if self.level < 1000 {
            return false;
        }
        self.level -= 1000;
        true
    }
}
