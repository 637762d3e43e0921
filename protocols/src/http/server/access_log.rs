//! Access log lines written to a file through a [`LogWriter`] (the engine's log sink: the
//! core formats the line, the sink's thread writes it), as JSON lines or nginx's
//! `combined` format with request time, upstream and upstream time appended.
//!
//! Owns: [`AccessLog`], [`AccessLogFormat`], [`UpstreamNote`] and the two line formats.
//! Contract: one line per response sent, ending in `\n`; peer bytes (target, referer, user
//! agent) are escaped so that a line stays one printable ASCII line: `\xNN` in `combined`
//! (as nginx escapes), `\uNNNN` in JSON; a missing value is `-` in `combined` and `null` in
//! JSON, never a Rust debug form. Times are UTC.
//! Does not: open, rotate or reopen the file (the sink does, on `LogSink::reopen`).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringwork::logging::LogWriter;

use crate::http::proto::server::RequestLog;

/// The shape of an access log line.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum AccessLogFormat {
    /// One JSON object per line: `time`, `remote_addr`, `remote_port`, `method`, `target`,
    /// `protocol`, `status`, `bytes_sent`, `referer`, `user_agent`, `request_time`
    /// (seconds), `upstream`, `upstream_time` (seconds).
    Json,
    /// nginx's `combined` format, then `rt=` (request time, seconds), `upstream=` and
    /// `ut=` (upstream time, seconds): `127.0.0.1 - - [07/Dec/2026:06:41:20 +0000] "GET /
    /// HTTP/1.1" 200 115 "-" "curl/8.5.0" rt=0.000 upstream=- ut=-`.
    Combined,
}

/// Where a server's access log lines go, and their format (cheap to clone; `Send`).
#[derive(Clone, Debug)]
pub struct AccessLog {
    format: AccessLogFormat,
    writer: LogWriter,
}

/// What a handler tells the access log about the upstream that answered a request
/// ([`Responder::note_upstream`](super::Responder::note_upstream)).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct UpstreamNote {
    /// The upstream server (`10.0.0.1:8080`, `api.internal:443`).
    pub upstream: String,
    /// From the request's start upstream to its response head (nginx's
    /// `$upstream_header_time`), or to the failure.
    pub time: Duration,
}

/// One response, as the access log sees it.
pub(crate) struct Entry<'a> {
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) request: &'a RequestLog,
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) duration: Option<Duration>,
    pub(crate) upstream: Option<&'a UpstreamNote>,
    pub(crate) time: SystemTime,
}

impl AccessLog {
    /// Lines in `format` to `writer` (a [`LogSink`](ringwork::logging::LogSink)'s).
    #[must_use]
    pub fn new(format: AccessLogFormat, writer: LogWriter) -> Self {
        Self { format, writer }
    }

    /// Formats `entry` into `line` (cleared first) and queues it.
    pub(crate) fn write(&self, entry: &Entry<'_>, line: &mut String) {
        line.clear();
        match self.format {
            AccessLogFormat::Json => json(entry, line),
            AccessLogFormat::Combined => combined(entry, line),
        }
        line.push('\n');
        self.writer.send(line.as_bytes());
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `(year, month 1-12, day, hour, minute, second, millisecond)` of `time` in UTC.
fn civil(time: SystemTime) -> (i64, u32, u32, u64, u64, u64, u32) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rest = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        month,
        day,
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis(),
    )
}

fn combined(entry: &Entry<'_>, line: &mut String) {
    let (year, month, day, hour, minute, second, _) = civil(entry.time);
    let month = MONTHS[(month as usize).saturating_sub(1) % 12];
    let request = entry.request;
    // `write!` to a String cannot fail.
    match entry.peer {
        Some(peer) => {
            let _ = write!(line, "{}", peer.ip());
        }
        None => line.push('-'),
    }
    let _ = write!(
        line,
        " - - [{day:02}/{month}/{year}:{hour:02}:{minute:02}:{second:02} +0000] \"{} ",
        request.method
    );
    escape_combined(&request.target, line);
    let _ = write!(
        line,
        " {}\" {} {} \"",
        request.version.as_str(),
        entry.status,
        entry.bytes
    );
    quoted_or_dash(request.referer.as_deref(), line);
    line.push_str("\" \"");
    quoted_or_dash(request.user_agent.as_deref(), line);
    line.push_str("\" rt=");
    match entry.duration {
        Some(d) => {
            let _ = write!(line, "{:.3}", d.as_secs_f64());
        }
        None => line.push('-'),
    }
    line.push_str(" upstream=");
    match entry.upstream {
        Some(note) => {
            escape_combined(note.upstream.as_bytes(), line);
            let _ = write!(line, " ut={:.3}", note.time.as_secs_f64());
        }
        None => line.push_str("- ut=-"),
    }
}

fn quoted_or_dash(value: Option<&[u8]>, line: &mut String) {
    match value {
        Some(value) => escape_combined(value, line),
        None => line.push('-'),
    }
}

/// nginx's escaping of variables in a log line: `"`, `\`, control bytes and bytes past
/// ASCII as `\xNN`.
fn escape_combined(bytes: &[u8], line: &mut String) {
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            let _ = write!(line, "\\x{b:02X}");
        } else {
            line.push(char::from(b));
        }
    }
}

fn json(entry: &Entry<'_>, line: &mut String) {
    let (year, month, day, hour, minute, second, millis) = civil(entry.time);
    let request = entry.request;
    let _ = write!(
        line,
        "{{\"time\":\"{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{millis:03}Z\","
    );
    match entry.peer {
        Some(peer) => {
            let _ = write!(
                line,
                "\"remote_addr\":\"{}\",\"remote_port\":{},",
                peer.ip(),
                peer.port()
            );
        }
        None => line.push_str("\"remote_addr\":null,\"remote_port\":null,"),
    }
    line.push_str("\"method\":");
    json_string(request.method.to_string().as_bytes(), line);
    line.push_str(",\"target\":");
    json_string(&request.target, line);
    let _ = write!(
        line,
        ",\"protocol\":\"{}\",\"status\":{},\"bytes_sent\":{},\"referer\":",
        request.version.as_str(),
        entry.status,
        entry.bytes
    );
    json_or_null(request.referer.as_deref(), line);
    line.push_str(",\"user_agent\":");
    json_or_null(request.user_agent.as_deref(), line);
    line.push_str(",\"request_time\":");
    match entry.duration {
        Some(d) => {
            let _ = write!(line, "{:.6}", d.as_secs_f64());
        }
        None => line.push_str("null"),
    }
    line.push_str(",\"upstream\":");
    match entry.upstream {
        Some(note) => {
            json_string(note.upstream.as_bytes(), line);
            let _ = write!(line, ",\"upstream_time\":{:.6}}}", note.time.as_secs_f64());
        }
        None => line.push_str("null,\"upstream_time\":null}"),
    }
}

fn json_or_null(value: Option<&[u8]>, line: &mut String) {
    match value {
        Some(value) => json_string(value, line),
        None => line.push_str("null"),
    }
}

/// A JSON string of peer bytes: read as UTF-8 (invalid sequences become U+FFFD), with
/// everything but printable ASCII escaped as `\uNNNN` (a right-to-left override or line
/// separator cannot reorder or split what a terminal shows).
fn json_string(bytes: &[u8], line: &mut String) {
    line.push('"');
    for c in String::from_utf8_lossy(bytes).chars() {
        match c {
            '"' => line.push_str("\\\""),
            '\\' => line.push_str("\\\\"),
            ' '..='~' => line.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(line, "\\u{unit:04x}");
                }
            }
        }
    }
    line.push('"');
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::http::proto::{Method, Version};

    fn request() -> RequestLog {
        RequestLog {
            method: Method::Get,
            target: Bytes::from_static("/a\"b\u{202e}".as_bytes()),
            version: Version::Http11,
            referer: None,
            user_agent: Some(Bytes::from_static(b"curl/8.5.0")),
        }
    }

    fn entry<'a>(request: &'a RequestLog, upstream: Option<&'a UpstreamNote>) -> Entry<'a> {
        Entry {
            peer: Some("127.0.0.1:5555".parse().expect("an address")),
            request,
            status: 200,
            bytes: 115,
            duration: Some(Duration::from_millis(12)),
            upstream,
            // 2026-12-07T06:41:20.250Z
            time: UNIX_EPOCH + Duration::from_millis(1_796_625_680_250),
        }
    }

    #[test]
    fn combined_line() {
        let request = request();
        let mut line = String::new();
        combined(&entry(&request, None), &mut line);
        assert_eq!(
            line,
            "127.0.0.1 - - [07/Dec/2026:06:41:20 +0000] \"GET /a\\x22b\\xE2\\x80\\xAE HTTP/1.1\" \
             200 115 \"-\" \"curl/8.5.0\" rt=0.012 upstream=- ut=-"
        );
        let note = UpstreamNote {
            upstream: "10.0.0.1:80".into(),
            time: Duration::from_millis(7),
        };
        line.clear();
        combined(&entry(&request, Some(&note)), &mut line);
        assert!(
            line.ends_with(" rt=0.012 upstream=10.0.0.1:80 ut=0.007"),
            "{line}"
        );
    }

    #[test]
    fn json_line() {
        let request = request();
        let note = UpstreamNote {
            upstream: "10.0.0.1:80".into(),
            time: Duration::from_millis(7),
        };
        let mut line = String::new();
        json(&entry(&request, Some(&note)), &mut line);
        assert_eq!(
            line,
            "{\"time\":\"2026-12-07T06:41:20.250Z\",\"remote_addr\":\"127.0.0.1\",\
             \"remote_port\":5555,\"method\":\"GET\",\"target\":\"/a\\\"b\\u202e\",\
             \"protocol\":\"HTTP/1.1\",\"status\":200,\"bytes_sent\":115,\"referer\":null,\
             \"user_agent\":\"curl/8.5.0\",\"request_time\":0.012000,\
             \"upstream\":\"10.0.0.1:80\",\"upstream_time\":0.007000}"
        );
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
        assert_eq!(parsed["target"], "/a\"b\u{202e}");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil(UNIX_EPOCH), (1970, 1, 1, 0, 0, 0, 0));
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(
            civil(UNIX_EPOCH + Duration::from_secs(1_709_251_199)),
            (2024, 2, 29, 23, 59, 59, 0)
        );
    }
}
