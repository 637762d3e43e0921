//! What FETCH and SEARCH need of one RFC 5322 message: where the header ends, header
//! fields (unfolded, or the original lines for `HEADER.FIELDS`), and the ENVELOPE
//! structure of RFC 3501 §7.4.2.
//!
//! Does not: decode MIME or RFC 2047 words (ENVELOPE carries the raw text, as RFC 3501
//! asks); parse groups in address lists (a group's name is dropped, its members kept).

use std::io::{self, Read};

use super::parse::{push_nstring, push_string};

/// The largest header read for ENVELOPE, `HEADER.FIELDS` and header searches; a longer
/// one is cut there.
pub const MAX_HEADER: usize = 256 * 1024;

/// The header of the message in `file` (through the blank line that ends it, if within
/// [`MAX_HEADER`]).
///
/// # Errors
/// The read's error.
pub fn read_header(file: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut header = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = file.read(&mut chunk)?;
        if n == 0 {
            return Ok(header);
        }
        let from = header.len().saturating_sub(3);
        header.extend_from_slice(&chunk[..n]);
        if let Some(end) = header_end(&header, from) {
            header.truncate(end);
            return Ok(header);
        }
        if header.len() >= MAX_HEADER {
            header.truncate(MAX_HEADER);
            return Ok(header);
        }
    }
}

/// The length of the header through its blank line, searching from `from`.
#[must_use]
pub fn header_end(data: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(p) = data
        .get(i..)
        .and_then(|d| d.iter().position(|&b| b == b'\n'))
    {
        let lf = i + p;
        if lf == 0 {
            // A message that starts with its blank line has an empty header.
            return Some(1);
        }
        match data.get(lf + 1) {
            Some(b'\n') => return Some(lf + 2),
            Some(b'\r') if data.get(lf + 2) == Some(&b'\n') => return Some(lf + 3),
            _ => {}
        }
        if lf == 1 && data[0] == b'\r' {
            return Some(2);
        }
        i = lf + 1;
    }
    None
}

/// The header's fields: (name, the original lines with their line ends).
fn raw_fields(header: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut fields: Vec<(&[u8], &[u8])> = Vec::new();
    let mut lines = header.split_inclusive(|&b| b == b'\n').peekable();
    let mut pos = 0;
    while let Some(line) = lines.next() {
        let line_start = pos;
        pos += line.len();
        let text = line.trim_ascii_end();
        if text.is_empty() {
            break;
        }
        // Continuation lines join the field before.
        let mut end = pos;
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                end += next.len();
                pos += next.len();
                lines.next();
            } else {
                break;
            }
        }
        if let Some(colon) = text.iter().position(|&b| b == b':') {
            fields.push((text[..colon].trim_ascii(), &header[line_start..end]));
        }
    }
    fields
}

/// The unfolded value of the first field `name` (case-insensitive).
#[must_use]
pub fn field(header: &[u8], name: &str) -> Option<Vec<u8>> {
    raw_fields(header)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, raw)| unfold(raw))
}

/// Every value of field `name`, unfolded, joined with `, ` (for searches of To, Cc...).
#[must_use]
pub fn fields_joined(header: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, raw) in raw_fields(header) {
        if n.eq_ignore_ascii_case(name.as_bytes()) {
            if !out.is_empty() {
                out.extend_from_slice(b", ");
            }
            out.extend(unfold(raw));
        }
    }
    out
}

fn unfold(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
    let mut out = Vec::with_capacity(raw.len());
    for &b in &raw[colon..] {
        if b != b'\r' && b != b'\n' {
            out.push(b);
        }
    }
    out.trim_ascii().to_vec()
}

/// `HEADER.FIELDS (names)` (or `.NOT`): the matching fields' original lines and the
/// blank line.
#[must_use]
pub fn header_fields(header: &[u8], names: &[String], not: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, raw) in raw_fields(header) {
        let listed = names
            .iter()
            .any(|n| n.as_bytes().eq_ignore_ascii_case(name));
        if listed != not {
            out.extend_from_slice(raw);
            if !raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The ENVELOPE of a header (RFC 3501 §7.4.2), as IMAP text.
#[must_use]
pub fn envelope(header: &[u8]) -> Vec<u8> {
    let mut out = b"(".to_vec();
    let get = |name: &str| field(header, name).filter(|v| !v.is_empty());
    push_nstring(&mut out, get("Date").as_deref());
    out.push(b' ');
    push_nstring(&mut out, get("Subject").as_deref());
    let from = get("From");
    for (name, fallback) in [
        ("From", None),
        ("Sender", from.as_ref()),
        ("Reply-To", from.as_ref()),
        ("To", None),
        ("Cc", None),
        ("Bcc", None),
    ] {
        out.push(b' ');
        match get(name).as_ref().or(fallback) {
            Some(value) => push_addresses(&mut out, value),
            None => out.extend_from_slice(b"NIL"),
        }
    }
    out.push(b' ');
    push_nstring(&mut out, get("In-Reply-To").as_deref());
    out.push(b' ');
    push_nstring(&mut out, get("Message-ID").as_deref());
    out.push(b')');
    out
}

/// An address list: `((name NIL mailbox host) ...)`, or `NIL` when none parses.
fn push_addresses(out: &mut Vec<u8>, value: &[u8]) {
    let addresses: Vec<Address> = split_addresses(value)
        .into_iter()
        .filter_map(address)
        .collect();
    if addresses.is_empty() {
        out.extend_from_slice(b"NIL");
        return;
    }
    out.push(b'(');
    for (name, mailbox, host) in addresses {
        out.push(b'(');
        push_nstring(out, name.as_deref());
        out.extend_from_slice(b" NIL ");
        push_string(out, &mailbox);
        out.push(b' ');
        push_string(out, &host);
        out.push(b')');
    }
    out.push(b')');
}

/// Splits an address list at commas outside quotes, angle brackets and comments; a
/// group's `name:` and `;` are dropped.
fn split_addresses(value: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let (mut quoted, mut angle, mut comment) = (false, false, 0usize);
    let mut start = 0;
    let mut i = 0;
    while i < value.len() {
        match value[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b'(' if !quoted => comment += 1,
            b')' if !quoted => comment = comment.saturating_sub(1),
            b',' | b';' if !quoted && !angle && comment == 0 => {
                parts.push(&value[start..i]);
                start = i + 1;
            }
            b':' if !quoted && !angle && comment == 0 => start = i + 1,
            _ => {}
        }
        i += 1;
    }
    parts.push(&value[start..]);
    parts
}

/// An address: (display name, local part, domain).
type Address = (Option<Vec<u8>>, Vec<u8>, Vec<u8>);

/// One address of a list.
fn address(text: &[u8]) -> Option<Address> {
    let text = text.trim_ascii();
    let (name, spec) = match (
        text.iter().rposition(|&b| b == b'<'),
        text.iter().rposition(|&b| b == b'>'),
    ) {
        (Some(open), Some(close)) if open < close => {
            let name = text[..open].trim_ascii();
            let name = name
                .strip_prefix(b"\"")
                .and_then(|n| n.strip_suffix(b"\""))
                .unwrap_or(name);
            let name = (!name.is_empty()).then(|| name.to_vec());
            (name, text[open + 1..close].trim_ascii())
        }
        _ => {
            // `user@host (Comment)`: the comment is dropped.
            let end = text.iter().position(|&b| b == b'(').unwrap_or(text.len());
            (None, text[..end].trim_ascii())
        }
    };
    let at = spec.iter().rposition(|&b| b == b'@')?;
    let (mailbox, host) = (&spec[..at], &spec[at + 1..]);
    if mailbox.is_empty() || host.is_empty() {
        return None;
    }
    Some((name, mailbox.to_vec(), host.to_vec()))
}

/// Whether `needle` occurs in `haystack`, ASCII case-insensitively (SEARCH's matching).
#[must_use]
pub fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"From: \"Bob B.\" <bob@example.org>\r\nTo: alice@example.org, Carol <carol@x.test>\r\nSubject: hello\r\n there\r\nDate: Mon, 7 Dec 2026 09:00:00 +0000\r\nMessage-ID: <1@x>\r\n\r\n";

    #[test]
    fn header_end_and_fields() {
        let mut message = HEADER.to_vec();
        message.extend_from_slice(b"body\r\n");
        assert_eq!(header_end(&message, 0), Some(HEADER.len()));
        assert_eq!(header_end(b"\r\nbody", 0), Some(2));
        assert_eq!(header_end(b"A: b\n\nbody", 0), Some(6));
        assert_eq!(header_end(b"A: b\r\n", 0), None);
        assert_eq!(field(HEADER, "subject").unwrap(), b"hello there");
        assert_eq!(
            header_fields(HEADER, &["SUBJECT".into(), "to".into()], false),
            b"To: alice@example.org, Carol <carol@x.test>\r\nSubject: hello\r\n there\r\n\r\n"
        );
        let not = header_fields(HEADER, &["Subject".into()], true);
        assert!(!contains_ignore_case(&not, b"subject") && contains_ignore_case(&not, b"FROM:"));
    }

    #[test]
    fn envelope_of_a_header() {
        let env = String::from_utf8(envelope(HEADER)).unwrap();
        assert_eq!(
            env,
            "(\"Mon, 7 Dec 2026 09:00:00 +0000\" \"hello there\" ((\"Bob B.\" NIL \"bob\" \"example.org\")) ((\"Bob B.\" NIL \"bob\" \"example.org\")) ((\"Bob B.\" NIL \"bob\" \"example.org\")) ((NIL NIL \"alice\" \"example.org\")(\"Carol\" NIL \"carol\" \"x.test\")) NIL NIL NIL \"<1@x>\")"
        );
        assert_eq!(
            envelope(b"Subject: \"q\"\r\n\r\n"),
            b"(NIL {3}\r\n\"q\" NIL NIL NIL NIL NIL NIL NIL NIL)"
        );
    }
}
