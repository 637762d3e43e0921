//! Domain names: [`Name`] (owned, wire form, lowercased for comparison) and the reading of
//! compressed names out of messages.
//!
//! Owns: the wire form (length-prefixed labels ending in the root label), parsing a name at
//! an offset of a message with compression pointers (RFC 1035 §4.1.4) — loops, forward
//! jumps and pointers past the end are errors, never a hang or a panic — the presentation
//! form (`www.example.com.`, with `\DDD` escapes), and case-insensitive comparison
//! (RFC 4343).
//! Contract: a [`Name`] is at most 255 bytes on the wire, each label at most 63; its bytes
//! keep the case they were given (answers echo names as asked); [`Name::key`] is the
//! lowercase form used for lookups.
//! Does not: handle IDNA (names are bytes) or wildcards (the zone does).
//! Spec: RFC 1035 §2.3.4 (limits), §3.1 (wire form), §4.1.4 (compression); RFC 4343 (case).

use std::fmt;

use super::error::DnsError;

/// The longest name on the wire, in bytes (RFC 1035 §2.3.4).
pub const MAX_NAME: usize = 255;
/// The longest label, in bytes.
pub const MAX_LABEL: usize = 63;

/// A domain name in wire form (no compression), as given.
#[derive(Clone, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub struct Name {
    wire: Box<[u8]>,
}

impl Name {
    /// The root name (`.`).
    #[must_use]
    pub fn root() -> Self {
        Self {
            wire: Box::new([0]),
        }
    }

    /// A name from its uncompressed wire form.
    ///
    /// # Errors
    /// [`DnsError::BadName`] when `wire` is not exactly one well-formed name.
    pub fn from_wire(wire: &[u8]) -> Result<Self, DnsError> {
        let mut at = 0;
        loop {
            let len = usize::from(*wire.get(at).ok_or(DnsError::BadName("truncated"))?);
            if len > MAX_LABEL {
                return Err(DnsError::BadName("label longer than 63 bytes"));
            }
            at += 1 + len;
            if at > MAX_NAME {
                return Err(DnsError::BadName("name longer than 255 bytes"));
            }
            if len == 0 {
                break;
            }
        }
        if at != wire.len() {
            return Err(DnsError::BadName("bytes after the root label"));
        }
        Ok(Self { wire: wire.into() })
    }

    /// Parses the presentation form (`www.example.com.`; relative names are completed with
    /// `origin`, `@` is the origin). `\.` and `\DDD` escapes are understood.
    ///
    /// # Errors
    /// [`DnsError::BadName`] for an empty label, a label over 63 bytes, a name over 255, a
    /// bad escape, or a relative name without an origin.
    pub fn parse(text: &str, origin: Option<&Name>) -> Result<Self, DnsError> {
        if text == "@" {
            return origin
                .cloned()
                .ok_or(DnsError::BadName("@ without an origin"));
        }
        if text == "." {
            return Ok(Self::root());
        }
        let bytes = text.as_bytes();
        let mut wire = Vec::with_capacity(bytes.len() + 2);
        let mut label = Vec::with_capacity(MAX_LABEL);
        let mut i = 0;
        let mut absolute = false;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    let next = *bytes
                        .get(i + 1)
                        .ok_or(DnsError::BadName("escape at the end"))?;
                    if next.is_ascii_digit() {
                        let digits = bytes
                            .get(i + 1..i + 4)
                            .ok_or(DnsError::BadName("short \\DDD"))?;
                        let value = std::str::from_utf8(digits)
                            .ok()
                            .and_then(|d| d.parse::<u16>().ok())
                            .filter(|v| *v <= 255)
                            .ok_or(DnsError::BadName("bad \\DDD escape"))?;
                        label.push(value as u8);
                        i += 4;
                    } else {
                        label.push(next);
                        i += 2;
                    }
                }
                b'.' => {
                    if label.is_empty() {
                        return Err(DnsError::BadName("empty label"));
                    }
                    push_label(&mut wire, &label)?;
                    label.clear();
                    i += 1;
                    if i == bytes.len() {
                        absolute = true;
                    }
                }
                byte => {
                    label.push(byte);
                    i += 1;
                }
            }
        }
        if !label.is_empty() {
            push_label(&mut wire, &label)?;
        }
        if absolute {
            wire.push(0);
        } else {
            let origin = origin.ok_or(DnsError::BadName("relative name without an origin"))?;
            wire.extend_from_slice(&origin.wire);
        }
        if wire.len() > MAX_NAME {
            return Err(DnsError::BadName("name longer than 255 bytes"));
        }
        Ok(Self { wire: wire.into() })
    }

    /// The uncompressed wire form.
    #[must_use]
    pub fn wire(&self) -> &[u8] {
        &self.wire
    }

    /// The lowercase wire form: what lookups compare.
    #[must_use]
    pub fn key(&self) -> Box<[u8]> {
        let mut key: Box<[u8]> = self.wire.clone();
        lowercase_wire(&mut key);
        key
    }

    /// Whether it is the root.
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.wire.len() == 1
    }

    /// The labels, first to last (the root label excluded).
    pub fn labels(&self) -> impl Iterator<Item = &[u8]> {
        Labels {
            wire: &self.wire,
            at: 0,
        }
    }

    /// Number of labels (the root excluded).
    #[must_use]
    pub fn label_count(&self) -> usize {
        self.labels().count()
    }

    /// The name without its first label (`None` for the root).
    #[must_use]
    pub fn parent(&self) -> Option<Name> {
        let first = usize::from(*self.wire.first()?);
        (first > 0).then(|| Self {
            wire: self.wire[1 + first..].into(),
        })
    }

    /// Whether `self` is `other` or below it (case-insensitive).
    #[must_use]
    pub fn is_subdomain_of(&self, other: &Name) -> bool {
        let (me, them) = (&self.wire, &other.wire);
        if them.len() > me.len() {
            return false;
        }
        // Compare suffixes on a label boundary.
        let mut at = 0;
        while me.len() - at > them.len() {
            at += 1 + usize::from(me[at]);
        }
        me.len() - at == them.len() && me[at..].eq_ignore_ascii_case(them)
    }

    /// `label` prepended (`*` for a wildcard owner, say).
    ///
    /// # Errors
    /// [`DnsError::BadName`] when the result is too long.
    pub fn prepend(&self, label: &[u8]) -> Result<Name, DnsError> {
        let mut wire = Vec::with_capacity(self.wire.len() + label.len() + 1);
        push_label(&mut wire, label)?;
        wire.extend_from_slice(&self.wire);
        Self::from_wire(&wire)
    }

    /// Case-insensitive equality (RFC 4343).
    #[must_use]
    pub fn eq_ignore_case(&self, other: &Name) -> bool {
        self.wire.eq_ignore_ascii_case(&other.wire)
    }
}

fn push_label(wire: &mut Vec<u8>, label: &[u8]) -> Result<(), DnsError> {
    if label.is_empty() {
        return Err(DnsError::BadName("empty label"));
    }
    if label.len() > MAX_LABEL {
        return Err(DnsError::BadName("label longer than 63 bytes"));
    }
    wire.push(label.len() as u8);
    wire.extend_from_slice(label);
    Ok(())
}

/// Lowercases the label bytes of an uncompressed wire-form name in place.
pub(crate) fn lowercase_wire(wire: &mut [u8]) {
    let mut at = 0;
    while at < wire.len() {
        let len = usize::from(wire[at]);
        let end = (at + 1 + len).min(wire.len());
        wire[at + 1..end].make_ascii_lowercase();
        at = end;
    }
}

struct Labels<'a> {
    wire: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let len = usize::from(*self.wire.get(self.at)?);
        if len == 0 {
            return None;
        }
        let label = self.wire.get(self.at + 1..self.at + 1 + len)?;
        self.at += 1 + len;
        Some(label)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_root() {
            return f.write_str(".");
        }
        for label in self.labels() {
            for &b in label {
                match b {
                    b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b'@' | b'$' => {
                        write!(f, "\\{}", b as char)?
                    }
                    0x21..=0x7e => write!(f, "{}", b as char)?,
                    _ => write!(f, "\\{b:03}")?,
                }
            }
            f.write_str(".")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Name({self})")
    }
}

/// Reads the (possibly compressed) name at `at` of `msg` into `out` as uncompressed wire
/// form; returns the offset just past the name's bytes at `at` (after its pointer, if it
/// ends in one).
///
/// # Errors
/// [`DnsError::BadName`] for a name past the end, a reserved label type, a pointer that is
/// not strictly backwards (loops), or a name over 255 bytes.
pub fn read_name(msg: &[u8], at: usize, out: &mut NameBuf) -> Result<usize, DnsError> {
    out.len = 0;
    let mut pos = at;
    let mut end = None;
    // Every pointer must go strictly backwards: no loops, and at most len/2 jumps.
    let mut limit = pos;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::BadName("name past the end"))?;
        match len & 0xC0 {
            0x00 => {
                let len = usize::from(len);
                let label = msg
                    .get(pos..pos + 1 + len)
                    .ok_or(DnsError::BadName("label past the end"))?;
                if out.len + label.len() > MAX_NAME {
                    return Err(DnsError::BadName("name longer than 255 bytes"));
                }
                out.bytes[out.len..out.len + label.len()].copy_from_slice(label);
                out.len += label.len();
                pos += 1 + len;
                if len == 0 {
                    return Ok(end.unwrap_or(pos));
                }
            }
            0xC0 => {
                let low = *msg
                    .get(pos + 1)
                    .ok_or(DnsError::BadName("pointer past the end"))?;
                let target = (usize::from(len & 0x3F) << 8) | usize::from(low);
                if target >= limit {
                    return Err(DnsError::BadName("compression pointer not backwards"));
                }
                end.get_or_insert(pos + 2);
                limit = target;
                pos = target;
            }
            _ => return Err(DnsError::BadName("reserved label type")),
        }
    }
}

/// A name being read: a fixed buffer, no allocation.
#[derive(Clone)]
pub struct NameBuf {
    bytes: [u8; MAX_NAME],
    len: usize,
}

impl NameBuf {
    /// An empty buffer.
    #[must_use]
    pub fn new() -> Self {
        Self {
            bytes: [0; MAX_NAME],
            len: 0,
        }
    }

    /// The uncompressed wire form read last.
    #[must_use]
    pub fn wire(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    /// Lowercases it in place (for lookups).
    pub fn make_lowercase(&mut self) {
        // Every byte at once (vectorised), not label by label: `read_name`, the only writer,
        // takes only labels of at most 63 bytes, so no length octet is an ASCII capital
        // (b'A' is 65) and lowercasing leaves the lengths as they are.
        self.bytes[..self.len].make_ascii_lowercase();
    }

    /// An owned [`Name`].
    #[must_use]
    pub fn to_name(&self) -> Name {
        Name {
            wire: self.wire().into(),
        }
    }
}

impl Default for NameBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for NameBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_name(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::parse(text, None).expect(text)
    }

    #[test]
    fn presentation_round_trips() {
        for text in ["example.com.", "a.b.c.", ".", "x\\.y.z.", "\\000.\\255."] {
            assert_eq!(name(text).to_string(), text, "{text}");
        }
        let origin = name("example.com.");
        assert_eq!(
            Name::parse("www", Some(&origin)).unwrap(),
            name("www.example.com.")
        );
        assert_eq!(Name::parse("@", Some(&origin)).unwrap(), origin);
    }

    #[test]
    fn limits_are_enforced() {
        assert!(Name::parse(&format!("{}.", "a".repeat(64)), None).is_err());
        assert!(Name::parse(&format!("{}.", "a".repeat(63)), None).is_ok());
        let long = format!("{}.", vec!["a".repeat(63); 4].join("."));
        assert!(Name::parse(&long, None).is_err(), "256 bytes on the wire");
        assert!(Name::parse("a..b.", None).is_err());
        assert!(Name::parse("rel", None).is_err());
    }

    #[test]
    fn a_read_name_lowercases_its_labels_and_keeps_its_lengths() {
        // Labels of every length a name may have (lengths 65..=90 would be 'A'..='Z' if a
        // label could be that long), in mixed case, with bytes past 'Z' and below 'A'.
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for len in [1usize, 9, 26, 45, 63, 63, 40] {
            let label: Vec<u8> = (0..len).map(|i| b"AbZ@[`z09-_"[i % 11]).collect();
            wire.push(len as u8);
            wire.extend_from_slice(&label);
            want.push(len as u8);
            want.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        wire.push(0);
        want.push(0);
        let mut buf = NameBuf::new();
        assert_eq!(read_name(&wire, 0, &mut buf).unwrap(), wire.len());
        buf.make_lowercase();
        assert_eq!(buf.wire(), want);
        let mut label_wise = wire.clone();
        lowercase_wire(&mut label_wise);
        assert_eq!(buf.wire(), label_wise);
    }

    #[test]
    fn subdomains_and_case() {
        let a = name("WWW.Example.COM.");
        assert!(a.is_subdomain_of(&name("example.com.")));
        assert!(a.is_subdomain_of(&name(".")));
        assert!(!a.is_subdomain_of(&name("ample.com.")));
        assert!(a.eq_ignore_case(&name("www.example.com.")));
        assert_eq!(a.key(), name("www.example.com.").key());
        assert_eq!(a.parent().unwrap().to_string(), "Example.COM.");
    }

    #[test]
    fn compressed_names_are_read_and_loops_refused() {
        // "example.com." at 0, then "www" + pointer to 0 at 13.
        let mut msg = vec![7];
        msg.extend_from_slice(b"example");
        msg.push(3);
        msg.extend_from_slice(b"com");
        msg.push(0);
        let at = msg.len();
        msg.push(3);
        msg.extend_from_slice(b"www");
        msg.extend_from_slice(&[0xC0, 0]);
        let mut buf = NameBuf::new();
        assert_eq!(read_name(&msg, at, &mut buf).unwrap(), msg.len());
        assert_eq!(buf.to_name(), name("www.example.com."));
        // A pointer to itself, and one forward.
        assert!(read_name(&[0xC0, 0], 0, &mut buf).is_err());
        assert!(read_name(&[0xC0, 2, 0], 0, &mut buf).is_err());
        // Two pointers pointing at each other.
        assert!(read_name(&[0xC0, 2, 0xC0, 0], 2, &mut buf).is_err());
        // Past the end, reserved label type.
        assert!(read_name(&[3, b'a'], 0, &mut buf).is_err());
        assert!(read_name(&[0x40, 0], 0, &mut buf).is_err());
    }
}
