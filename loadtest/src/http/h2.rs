//! The `h2` workload: HTTP/2 requests multiplexed on each connection (h2load's `-m`), over
//! h2c with prior knowledge (`http://`) or TLS with ALPN `h2` (`https://`).
//!
//! Owns: [`H2Workload`] (one precomputed header block per URL: the request's fields are
//! encoded once, with the static table and literals only, so every request reuses the same
//! bytes) and [`H2Session`], which opens a stream per request and counts a response when its
//! stream ends (END_STREAM on HEADERS or DATA; a RST_STREAM is a failed response).
//! Contract: the driver's `depth` is the number of streams in flight per connection. The
//! session advertises windows of 2^31-1 (so it never has to send a WINDOW_UPDATE: the
//! [`Session`] trait writes only with requests), answers SETTINGS and PING with the next
//! request it writes, and decodes every header block (HPACK state must follow the server).
//! Responses may end out of order; the driver times the oldest request in flight, as for
//! the other workloads.
//! Does not: honour the server's SETTINGS_MAX_CONCURRENT_STREAMS (a refused stream counts as
//! failed: keep `-m` within the server's limit), push, or send request bodies past 16 KiB.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use ringwork_protocols::http::proto::h2::frame::{
    self, ErrorCode, FrameHeader, HEADER_LEN, MAX_WINDOW, PREFACE, flag, kind, setting,
};
use ringwork_protocols::http::proto::h2::hpack::{HpackDecoder, encode_field};

use super::Url;
use crate::session::{Progress, ResponseError, Session};

/// Largest request body sent (one DATA frame at the default SETTINGS_MAX_FRAME_SIZE).
pub const MAX_BODY: usize = frame::DEFAULT_MAX_FRAME_SIZE as usize;

/// What every HTTP/2 connection of a run sends.
#[derive(Clone, Debug)]
pub struct H2Workload {
    /// The address all URLs point to.
    pub addr: std::net::SocketAddr,
    /// The URLs are `https://`.
    pub tls: bool,
    /// The host of the URLs, as written (the default TLS server name).
    pub host: String,
    /// Header blocks, one per URL.
    blocks: Arc<[Bytes]>,
    body: Bytes,
}

impl H2Workload {
    /// Builds the header blocks: `method` to each URL (all on one host and port), with
    /// `headers` (`Name: value`) and `body` (at most [`MAX_BODY`] bytes).
    ///
    /// # Errors
    /// A bad URL, URLs on different hosts, an invalid header or method, a body too large.
    pub fn new(
        urls: &[String],
        method: &str,
        headers: &[String],
        body: &[u8],
    ) -> Result<Self, String> {
        let first = Url::parse(urls.first().ok_or("no URL given")?)?;
        let addr = first.resolve()?;
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("bad method {method:?}"));
        }
        if body.len() > MAX_BODY {
            return Err(format!("h2: a body of at most {MAX_BODY} bytes"));
        }
        let mut fields = Vec::with_capacity(headers.len());
        for header in headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("header {header:?}: expected 'Name: value'"))?;
            fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let scheme = if first.tls { "https" } else { "http" };
        let mut blocks = Vec::with_capacity(urls.len());
        for url in urls {
            let parsed = Url::parse(url)?;
            if (parsed.tls, parsed.host.as_str(), parsed.port)
                != (first.tls, first.host.as_str(), first.port)
            {
                return Err(format!(
                    "{url}: every URL must have the first URL's scheme, host and port ({}:{})",
                    first.host, first.port
                ));
            }
            let mut block = BytesMut::new();
            encode_field(&mut block, b":method", method.as_bytes());
            encode_field(&mut block, b":scheme", scheme.as_bytes());
            encode_field(&mut block, b":path", parsed.target.as_bytes());
            encode_field(&mut block, b":authority", parsed.host_header().as_bytes());
            for (name, value) in &fields {
                encode_field(&mut block, name.as_bytes(), value.as_bytes());
            }
            if !body.is_empty() && !fields.iter().any(|(n, _)| n == "content-length") {
                encode_field(
                    &mut block,
                    b"content-length",
                    body.len().to_string().as_bytes(),
                );
            }
            blocks.push(block.freeze());
        }
        Ok(Self {
            addr,
            tls: first.tls,
            host: first.host.clone(),
            blocks: blocks.into(),
            body: Bytes::copy_from_slice(body),
        })
    }

    /// A session for one connection.
    #[must_use]
    pub fn session(&self) -> H2Session {
        H2Session {
            blocks: Arc::clone(&self.blocks),
            body: self.body.clone(),
            next_block: 0,
            next_stream: 1,
            decoder: HpackDecoder::new(4096),
            statuses: HashMap::new(),
            block: None,
            control: BytesMut::new(),
            goaway: false,
        }
    }
}

/// One HTTP/2 connection of the load generator (see the module docs).
#[derive(Debug)]
pub struct H2Session {
    blocks: Arc<[Bytes]>,
    body: Bytes,
    next_block: usize,
    next_stream: u32,
    decoder: HpackDecoder,
    /// Streams in flight, with their status once the head arrived.
    statuses: HashMap<u32, Option<u16>>,
    /// A header block across CONTINUATIONs: stream, END_STREAM, fragments.
    block: Option<(u32, bool, Vec<u8>)>,
    /// SETTINGS and PING answers, sent with the next request.
    control: BytesMut,
    goaway: bool,
}

fn malformed(reason: impl Into<String>) -> ResponseError {
    ResponseError::Malformed {
        reason: reason.into(),
    }
}

impl H2Session {
    /// A whole header block for `stream`.
    fn head(
        &mut self,
        stream: u32,
        end_stream: bool,
        block: &[u8],
        progress: &mut Progress,
    ) -> Result<(), ResponseError> {
        let mut status = None;
        self.decoder
            .decode(block, usize::MAX, |name, value| {
                if name == b":status" {
                    status = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u16>().ok());
                }
            })
            .map_err(|e| malformed(e.to_string()))?;
        match status {
            // Interim: the final head follows.
            Some(code) if code < 200 => {}
            Some(code) => {
                if let Some(slot) = self.statuses.get_mut(&stream) {
                    *slot = Some(code);
                }
            }
            // Trailers.
            None => {}
        }
        if end_stream {
            self.end(stream, progress);
        }
        Ok(())
    }

    fn end(&mut self, stream: u32, progress: &mut Progress) {
        // Only streams in flight count (not a late frame of one that ended).
        let Some(status) = self.statuses.remove(&stream) else {
            return;
        };
        progress.completed += 1;
        if !status.is_some_and(|s| (200..300).contains(&s)) {
            progress.unsuccessful += 1;
        }
    }
}

impl Session for H2Session {
    fn on_connect(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(PREFACE);
        frame::encode_settings(
            out,
            &[
                (setting::ENABLE_PUSH, 0),
                (setting::INITIAL_WINDOW_SIZE, MAX_WINDOW),
            ],
        );
        frame::encode_window_update(out, 0, MAX_WINDOW - frame::DEFAULT_WINDOW);
    }

    fn write_request(&mut self, out: &mut BytesMut) {
        out.extend_from_slice(&self.control);
        self.control.clear();
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        self.statuses.insert(stream, None);
        let block = &self.blocks[self.next_block];
        self.next_block = (self.next_block + 1) % self.blocks.len();
        frame::encode_headers(
            out,
            stream,
            block,
            self.body.is_empty(),
            frame::DEFAULT_MAX_FRAME_SIZE,
        );
        if !self.body.is_empty() {
            frame::encode_data_header(out, stream, self.body.len(), true);
            out.put_slice(&self.body);
        }
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        let mut progress = Progress::default();
        let mut at = 0;
        while let Some(head) = data.get(at..at + HEADER_LEN) {
            // `head` is HEADER_LEN bytes long (the range above), so the conversion holds.
            let header = FrameHeader::parse(head.try_into().expect("a 9-byte slice"));
            let end = at + HEADER_LEN + header.len as usize;
            let Some(payload) = data.get(at + HEADER_LEN..end) else {
                break;
            };
            at = end;
            let flags = header.flags;
            let stream = header.stream;
            if let Some((block_stream, end_stream, mut fragments)) = self.block.take() {
                if header.kind != kind::CONTINUATION || stream != block_stream {
                    return Err(malformed("a header block interrupted"));
                }
                fragments.extend_from_slice(payload);
                if flags & flag::END_HEADERS != 0 {
                    self.head(stream, end_stream, &fragments, &mut progress)?;
                } else {
                    self.block = Some((stream, end_stream, fragments));
                }
                continue;
            }
            match header.kind {
                kind::DATA if flags & flag::END_STREAM != 0 => self.end(stream, &mut progress),
                kind::HEADERS => {
                    let mut start = 0;
                    let mut stop = payload.len();
                    if flags & flag::PADDED != 0 {
                        let pad = usize::from(
                            *payload.first().ok_or_else(|| malformed("padded HEADERS"))?,
                        );
                        start = 1;
                        stop = stop.checked_sub(pad).ok_or_else(|| malformed("padding"))?;
                    }
                    if flags & flag::PRIORITY != 0 {
                        start += 5;
                    }
                    let block = payload
                        .get(start..stop)
                        .ok_or_else(|| malformed("HEADERS too short"))?;
                    let end_stream = flags & flag::END_STREAM != 0;
                    if flags & flag::END_HEADERS != 0 {
                        self.head(stream, end_stream, block, &mut progress)?;
                    } else {
                        self.block = Some((stream, end_stream, block.to_vec()));
                    }
                }
                kind::RST_STREAM => {
                    // A reset stream in flight is a failed response.
                    if let Some(slot) = self.statuses.get_mut(&stream) {
                        *slot = None;
                        self.end(stream, &mut progress);
                    }
                }
                kind::SETTINGS if flags & flag::ACK == 0 => {
                    frame::encode_settings_ack(&mut self.control)
                }
                kind::PING if flags & flag::ACK == 0 => {
                    let data: [u8; 8] = payload
                        .try_into()
                        .map_err(|_| malformed("PING not 8 octets"))?;
                    frame::encode_ping(&mut self.control, true, data);
                }
                kind::GOAWAY => {
                    self.goaway = true;
                    let code = payload
                        .get(4..8)
                        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
                    if code.is_some_and(|c| c != ErrorCode::NO_ERROR.0) {
                        return Err(malformed(format!("GOAWAY {code:?}")));
                    }
                }
                _ => {}
            }
        }
        progress.consumed = at;
        progress.close = self.goaway;
        Ok(progress)
    }
}

#[cfg(test)]
mod tests {
    use ringwork_protocols::http::proto::h2::H2ServerConn;
    use ringwork_protocols::http::proto::server::{Response, ServerConfig, ServerEvent};
    use ringwork_protocols::kit::Machine;

    use super::*;

    /// The session against the server machine, bytes handed over by hand.
    #[test]
    fn streams_complete_against_the_server_machine() {
        let workload = H2Workload::new(
            &[
                "http://127.0.0.1:8080/a".into(),
                "http://127.0.0.1:8080/missing".into(),
            ],
            "GET",
            &["x-test: 1".into()],
            b"",
        )
        .unwrap();
        let mut session = workload.session();
        let mut server = H2ServerConn::new(&ServerConfig::default());
        let now = std::time::Instant::now();
        server.handle_connected(now);
        let mut out = BytesMut::new();
        session.on_connect(&mut out);
        for _ in 0..10 {
            session.write_request(&mut out);
        }
        server.handle_input(&out, now);
        while let Some(event) = server.poll_event() {
            if let ServerEvent::Request { id, head, .. } = event {
                let status = if head.path() == b"/a" { 200 } else { 404 };
                server
                    .send_response(id, Response::new(status).with_body("x"))
                    .unwrap();
            }
        }
        let mut wire = Vec::new();
        while let Some(bytes) = server.poll_transmit(now) {
            wire.extend_from_slice(&bytes);
        }
        // Fed in two pieces cut mid-frame: the rest comes back with more.
        let cut = wire.len() / 2 + 3;
        let first = session.on_bytes(&wire[..cut]).unwrap();
        let mut rest = wire[first.consumed..].to_vec();
        let second = session.on_bytes(&rest).unwrap();
        rest.drain(..second.consumed);
        assert!(rest.is_empty());
        assert_eq!(first.completed + second.completed, 10);
        assert_eq!(first.unsuccessful + second.unsuccessful, 5);
        // The server's SETTINGS is answered with the next request.
        let mut next = BytesMut::new();
        session.write_request(&mut next);
        assert_eq!(
            &next[..9],
            &[0, 0, 0, kind::SETTINGS, flag::ACK, 0, 0, 0, 0]
        );
    }
}
