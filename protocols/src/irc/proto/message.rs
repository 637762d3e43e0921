//! IRC message codec (sans-IO): RFC 1459 / RFC 2812 lines with IRCv3 message tags.
//!
//! Owns: [`Message`] (tags, prefix, command, parameters), [`Message::parse`] of one line
//! without its line end, [`Message::encode`] into a line with `\r\n`, tag value escaping
//! ([`escape_tag_value`], [`unescape_tag_value`]), [`Prefix`] (`nick!user@host`), the
//! RFC 1459 case mapping ([`irc_lower`]) and nick/channel name checks.
//! Contract: a line is at most [`MAX_LINE`] bytes without its tags (510 plus `\r\n`); the
//! tag section (from `@` to the space after it) is at most [`MAX_TAGS`] bytes (IRCv3
//! message-tags). At most [`MAX_PARAMS`] parameters (RFC 2812 §2.3). Bytes that are not
//! UTF-8 are taken with U+FFFD in their place (as Twisted decodes lines). Parsing never
//! panics; the last of two or more parameters is always sent after a `:`; encoding refuses a message it cannot put on the wire as given (a space in a
//! middle parameter, a line end anywhere) rather than changing its meaning.
//! Does not: frame lines (the connection machines do), or quote CTCP's low level (see
//! [`super::ctcp`]).
//! Spec: RFC 1459 §2.3, RFC 2812 §2.3, <https://ircv3.net/specs/extensions/message-tags>.
//! Tests: `message/tests.rs`; fuzz target `fuzz/irc_codec`.

use std::fmt;

/// The longest line without its tags, `\r\n` included (RFC 2812 §2.3).
pub const MAX_LINE: usize = 512;
/// The longest tag section, from `@` to the space after it (IRCv3 message-tags: 8191 for
/// a server's tags plus a client's; we take one budget for both).
pub const MAX_TAGS: usize = 8191;
/// The most parameters a message may carry (RFC 2812 §2.3).
pub const MAX_PARAMS: usize = 15;

/// One message tag: `key[=value]`, its value unescaped.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Tag {
    /// The key, with any `+` (client-only) and vendor prefix.
    pub key: String,
    /// The unescaped value (`None` and an empty value are the same on the wire).
    pub value: Option<String>,
}

impl Tag {
    /// A tag `key=value`.
    #[must_use]
    pub fn new(key: impl Into<String>, value: Option<String>) -> Self {
        Self {
            key: key.into(),
            value,
        }
    }

    /// Whether it is a client-only tag (`+key`).
    #[must_use]
    pub fn is_client_only(&self) -> bool {
        self.key.starts_with('+')
    }
}

/// An IRC message.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Message {
    /// IRCv3 tags, in order.
    pub tags: Vec<Tag>,
    /// The source (`server.name` or `nick!user@host`), without its `:`.
    pub prefix: Option<String>,
    /// The command, upper-cased (`PRIVMSG`), or a three-digit numeric (`001`).
    pub command: String,
    /// The parameters; the last one may hold spaces (sent as the trailing parameter).
    pub params: Vec<String>,
}

/// Why a line is not a message.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but spaces (such lines are to be ignored, RFC 2812 §2.3.1).
    #[error("empty line")]
    Empty,
    /// No command after the tags and prefix.
    #[error("no command")]
    NoCommand,
    /// The command is neither letters nor three digits.
    #[error("bad command")]
    BadCommand,
    /// The line without its tags is longer than [`MAX_LINE`].
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The tag section is longer than [`MAX_TAGS`].
    #[error("tags longer than {limit} bytes")]
    TagsTooLong {
        /// The limit.
        limit: usize,
    },
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {limit} parameters")]
    TooManyParams {
        /// The limit.
        limit: usize,
    },
    /// A NUL, CR or LF inside the line.
    #[error("forbidden byte in line")]
    ForbiddenByte,
}

/// Why a message cannot be encoded as given.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The command is empty or holds other than letters or digits.
    #[error("bad command {0:?}")]
    BadCommand(String),
    /// A parameter before the last is empty, starts with `:` or holds a space.
    #[error("parameter {index} cannot be a middle parameter")]
    BadMiddle {
        /// Its index.
        index: usize,
    },
    /// A NUL, CR or LF in a parameter, the prefix or a tag key.
    #[error("forbidden byte in message")]
    ForbiddenByte,
    /// A tag key that is empty or holds other than letters, digits, `-`, `/`, `.`, `+`.
    #[error("bad tag key {0:?}")]
    BadTagKey(String),
    /// More than [`MAX_PARAMS`] parameters.
    #[error("more than {limit} parameters")]
    TooManyParams {
        /// The limit.
        limit: usize,
    },
    /// The line without tags would exceed [`MAX_LINE`].
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The tag section would exceed [`MAX_TAGS`].
    #[error("tags longer than {limit} bytes")]
    TagsTooLong {
        /// The limit.
        limit: usize,
    },
}

impl Message {
    /// A message without tags or prefix.
    #[must_use]
    pub fn new(command: impl Into<String>, params: Vec<String>) -> Self {
        Self {
            tags: Vec::new(),
            prefix: None,
            command: command.into(),
            params,
        }
    }

    /// The same message with `prefix`.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Parameter `index`, or `""`.
    #[must_use]
    pub fn param(&self, index: usize) -> &str {
        self.params.get(index).map_or("", String::as_str)
    }

    /// The value of tag `key` (`Some("")` for a tag without value).
    #[must_use]
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|t| t.key == key)
            .map(|t| t.value.as_deref().unwrap_or(""))
    }

    /// Parses one line, given without its `\r\n` (a trailing `\r` is taken off).
    ///
    /// # Errors
    /// [`ParseError`]: the line is empty, too long, or not a message.
    pub fn parse(line: &[u8]) -> Result<Self, ParseError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().any(|&b| b == 0 || b == b'\r' || b == b'\n') {
            return Err(ParseError::ForbiddenByte);
        }
        let mut rest = line;
        let mut tags = Vec::new();
        if let Some(after) = rest.strip_prefix(b"@") {
            let end = after.iter().position(|&b| b == b' ').unwrap_or(after.len());
            // `@`, the tags and the space after them.
            if end + 2 > MAX_TAGS {
                return Err(ParseError::TagsTooLong { limit: MAX_TAGS });
            }
            tags = parse_tags(&after[..end]);
            rest = skip_spaces(&after[end..]);
        }
        // RFC 2812: 512 bytes with the CRLF (which the caller took off).
        if rest.len() + 2 > MAX_LINE {
            return Err(ParseError::LineTooLong { limit: MAX_LINE });
        }
        let mut prefix = None;
        if let Some(after) = rest.strip_prefix(b":") {
            let end = after.iter().position(|&b| b == b' ').unwrap_or(after.len());
            // An empty source (`: CMD`) is taken as none (it could not be sent back).
            prefix = Some(lossy(&after[..end])).filter(|p| !p.is_empty());
            rest = skip_spaces(&after[end..]);
        }
        let mut rest = skip_spaces(rest);
        if rest.is_empty() {
            return Err(if line.iter().all(|&b| b == b' ') {
                ParseError::Empty
            } else {
                ParseError::NoCommand
            });
        }
        let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
        let command = &rest[..end];
        let numeric = command.len() == 3 && command.iter().all(u8::is_ascii_digit);
        if !numeric && !command.iter().all(u8::is_ascii_alphabetic) {
            return Err(ParseError::BadCommand);
        }
        let command = lossy(command).to_ascii_uppercase();
        rest = &rest[end..];
        let mut params = Vec::new();
        loop {
            rest = skip_spaces(rest);
            if rest.is_empty() {
                break;
            }
            if params.len() == MAX_PARAMS {
                return Err(ParseError::TooManyParams { limit: MAX_PARAMS });
            }
            if let Some(trailing) = rest.strip_prefix(b":") {
                params.push(lossy(trailing));
                break;
            }
            let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            params.push(lossy(&rest[..end]));
            rest = &rest[end..];
        }
        Ok(Self {
            tags,
            prefix,
            command,
            params,
        })
    }

    /// Appends the message as a line, `\r\n` included.
    ///
    /// # Errors
    /// [`EncodeError`]: a part cannot go on the wire as given, or a limit is passed
    /// (nothing is appended then).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.check()?;
        let start = out.len();
        self.write(out, None);
        let tags_len = self.tags_len();
        if out.len() - start - tags_len > MAX_LINE {
            out.truncate(start);
            return Err(EncodeError::LineTooLong { limit: MAX_LINE });
        }
        Ok(())
    }

    /// Appends the message as a line, cutting its last parameter (at a character boundary)
    /// so that the line fits [`MAX_LINE`], as servers do with relayed text.
    ///
    /// # Errors
    /// As [`Message::encode`], except for the line length when the last parameter can take
    /// the cut.
    pub fn encode_truncated(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.check()?;
        let start = out.len();
        self.write(out, None);
        let over = (out.len() - start - self.tags_len()).saturating_sub(MAX_LINE);
        if over == 0 {
            return Ok(());
        }
        out.truncate(start);
        let Some(last) = self.params.last() else {
            return Err(EncodeError::LineTooLong { limit: MAX_LINE });
        };
        if over > last.len() {
            return Err(EncodeError::LineTooLong { limit: MAX_LINE });
        }
        let mut keep = last.len() - over;
        while !last.is_char_boundary(keep) {
            keep -= 1;
        }
        self.write(out, Some(keep));
        Ok(())
    }

    /// The message as a line, `\r\n` included.
    ///
    /// # Errors
    /// As [`Message::encode`].
    pub fn to_line(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(64);
        self.encode(&mut out)?;
        Ok(out)
    }

    fn check(&self) -> Result<(), EncodeError> {
        let numeric = self.command.len() == 3 && self.command.bytes().all(|b| b.is_ascii_digit());
        if !numeric
            && (self.command.is_empty() || !self.command.bytes().all(|b| b.is_ascii_alphabetic()))
        {
            return Err(EncodeError::BadCommand(self.command.clone()));
        }
        if self.params.len() > MAX_PARAMS {
            return Err(EncodeError::TooManyParams { limit: MAX_PARAMS });
        }
        let forbidden = |s: &str| s.bytes().any(|b| b == 0 || b == b'\r' || b == b'\n');
        if self.params.iter().any(|p| forbidden(p))
            || self
                .prefix
                .as_deref()
                .is_some_and(|p| forbidden(p) || p.contains(' ') || p.is_empty())
        {
            return Err(EncodeError::ForbiddenByte);
        }
        for (index, param) in self.params.iter().enumerate() {
            let last = index + 1 == self.params.len();
            if !last && (param.is_empty() || param.starts_with(':') || param.contains(' ')) {
                return Err(EncodeError::BadMiddle { index });
            }
        }
        for tag in &self.tags {
            let valid = !tag.key.is_empty()
                && tag.key.bytes().enumerate().all(|(i, b)| {
                    b.is_ascii_alphanumeric() || b"-/.".contains(&b) || (i == 0 && b == b'+')
                });
            if !valid {
                return Err(EncodeError::BadTagKey(tag.key.clone()));
            }
        }
        if self.tags_len() > MAX_TAGS {
            return Err(EncodeError::TagsTooLong { limit: MAX_TAGS });
        }
        Ok(())
    }

    /// Bytes of the tag section (`@...` and its space); 0 without tags.
    fn tags_len(&self) -> usize {
        if self.tags.is_empty() {
            return 0;
        }
        let mut out = Vec::new();
        write_tags(&self.tags, &mut out);
        out.len()
    }

    /// Writes the line; `cut` keeps that many bytes of the last parameter.
    fn write(&self, out: &mut Vec<u8>, cut: Option<usize>) {
        write_tags(&self.tags, out);
        if let Some(prefix) = &self.prefix {
            out.push(b':');
            out.extend_from_slice(prefix.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.command.as_bytes());
        for (index, param) in self.params.iter().enumerate() {
            out.push(b' ');
            let last = index + 1 == self.params.len();
            let param = match cut {
                Some(keep) if last => &param[..keep],
                _ => param.as_str(),
            };
            // The last of several parameters always goes as trailing (as servers send
            // text and lists, which naive clients expect after a `:`), but in MODE; a lone
            // one only when it must.
            let needs = param.is_empty() || param.starts_with(':') || param.contains(' ');
            if last && (needs || (index > 0 && self.command != "MODE")) {
                out.push(b':');
            }
            out.extend_from_slice(param.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl fmt::Display for Message {
    /// The line without `\r\n`, as sent (lossy when it cannot be encoded).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::new();
        self.write(&mut out, None);
        out.truncate(out.len() - 2);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

/// Writes `@k=v;k2 ` (nothing for no tags).
fn write_tags(tags: &[Tag], out: &mut Vec<u8>) {
    if tags.is_empty() {
        return;
    }
    out.push(b'@');
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        out.extend_from_slice(tag.key.as_bytes());
        if let Some(value) = tag.value.as_deref().filter(|v| !v.is_empty()) {
            out.push(b'=');
            out.extend_from_slice(escape_tag_value(value).as_bytes());
        }
    }
    out.push(b' ');
}

fn parse_tags(section: &[u8]) -> Vec<Tag> {
    section
        .split(|&b| b == b';')
        .filter(|t| !t.is_empty())
        .map(|tag| match tag.iter().position(|&b| b == b'=') {
            Some(eq) => Tag {
                key: lossy(&tag[..eq]),
                value: Some(unescape_tag_value(&lossy(&tag[eq + 1..]))),
            },
            None => Tag {
                key: lossy(tag),
                value: None,
            },
        })
        .collect()
}

fn skip_spaces(mut bytes: &[u8]) -> &[u8] {
    while let Some(rest) = bytes.strip_prefix(b" ") {
        bytes = rest;
    }
    bytes
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Escapes a tag value (IRCv3: `;` `\:`, space `\s`, `\` `\\`, CR `\r`, LF `\n`).
#[must_use]
pub fn escape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Unescapes a tag value: the escapes of [`escape_tag_value`]; a `\` before another
/// character is dropped, and a lone `\` at the end too (IRCv3).
#[must_use]
pub fn unescape_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('\\') => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A message source split into its parts: `nick!user@host`, or a server name (`nick` only).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Prefix {
    /// The nick or server name.
    pub nick: String,
    /// The user (ident), if given.
    pub user: Option<String>,
    /// The host, if given.
    pub host: Option<String>,
}

impl Prefix {
    /// Splits `nick!user@host`.
    #[must_use]
    pub fn parse(prefix: &str) -> Self {
        let (rest, host) = match prefix.split_once('@') {
            Some((rest, host)) => (rest, Some(host.to_owned())),
            None => (prefix, None),
        };
        let (nick, user) = match rest.split_once('!') {
            Some((nick, user)) => (nick, Some(user.to_owned())),
            None => (rest, None),
        };
        Self {
            nick: nick.to_owned(),
            user,
            host,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.nick)?;
        if let Some(user) = &self.user {
            write!(f, "!{user}")?;
        }
        if let Some(host) = &self.host {
            write!(f, "@{host}")?;
        }
        Ok(())
    }
}

/// `text` in RFC 1459 case mapping's lower case: ASCII letters, and `[]\~` as `{}|^`
/// (the Scandinavian origin of IRC), so `Nick[a]` and `nick{A}` are the same nick.
#[must_use]
pub fn irc_lower(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Whether `nick` is a valid nickname (RFC 2812 §2.3.1: a letter or special first, then
/// letters, digits, specials or `-`), at most `max_len` bytes.
#[must_use]
pub fn is_valid_nick(nick: &str, max_len: usize) -> bool {
    let special = |c: u8| b"[]\\`_^{|}".contains(&c);
    let bytes = nick.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= max_len
        && (bytes[0].is_ascii_alphabetic() || special(bytes[0]))
        && bytes[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || special(c) || c == b'-')
}

/// Whether `name` is a valid channel name (RFC 2812 §1.3: `#` or `&`, at most `max_len`
/// bytes, no space, comma, BEL or colon).
#[must_use]
pub fn is_valid_channel(name: &str, max_len: usize) -> bool {
    let bytes = name.as_bytes();
    bytes.len() >= 2
        && bytes.len() <= max_len
        && (bytes[0] == b'#' || bytes[0] == b'&')
        && !bytes[1..]
            .iter()
            .any(|&c| c == b' ' || c == b',' || c == 7 || c == b':' || c == 0)
}

/// Whether `name` starts like a channel name.
#[must_use]
pub fn is_channel_name(name: &str) -> bool {
    name.starts_with('#') || name.starts_with('&')
}

/// Whether `text` matches the wildcard `mask` (`*` any run, `?` one character), both in
/// RFC 1459 lower case (ban masks, WHO and LIST masks).
#[must_use]
pub fn mask_matches(mask: &str, text: &str) -> bool {
    let mask: Vec<char> = irc_lower(mask).chars().collect();
    let text: Vec<char> = irc_lower(text).chars().collect();
    // Iterative glob with one backtrack point (linear in practice, no recursion).
    let (mut m, mut t) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        if m < mask.len() && (mask[m] == '?' || mask[m] == text[t]) {
            m += 1;
            t += 1;
        } else if m < mask.len() && mask[m] == '*' {
            star = Some(m);
            mark = t;
            m += 1;
        } else if let Some(s) = star {
            m = s + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    while m < mask.len() && mask[m] == '*' {
        m += 1;
    }
    m == mask.len()
}

#[cfg(test)]
mod tests;
