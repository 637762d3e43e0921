//! SMTP replies as a client reads them (RFC 5321 §4.2), sans-IO.
//!
//! Owns: [`Reply`] (code, enhanced status, text lines), [`parse_reply`] (one complete
//! reply, single- or multi-line, from the front of a buffer) and [`ReplyLimits`].
//! Contract: `parse_reply` returns `Status::Partial` until the last line of a reply (the
//! one with a space, or nothing, after the code) has its line end; it never reads past
//! `limits.max_line` bytes of an unfinished line nor keeps more than `limits.max_lines`
//! lines. Lines end in CRLF; a bare LF is accepted too (many servers in the wild).
//! Does not: decide what a reply means for a command (see `conn.rs`).
//! Spec: RFC 5321 §4.2 (reply syntax), §4.2.1 (multi-line), RFC 3463/2034 (enhanced
//! status codes). Tests: `tests.rs`; fuzz target `fuzz/fuzz_targets/smtp_client_reply.rs`.

use std::fmt;

use crate::kit::{Parsed, Status};

/// Bounds on a reply (safe defaults).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct ReplyLimits {
    /// The longest reply line, line end excluded (RFC 5321 §4.5.3.1.5: 512 at least).
    pub max_line: usize,
    /// Lines of one multi-line reply at most (an EHLO reply has one per extension).
    pub max_lines: usize,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_line: 2048,
            max_lines: 128,
        }
    }
}

/// One server reply.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Reply {
    /// The three-digit code (200..=599).
    pub code: u16,
    /// The text of each line after the code and separator, enhanced code left in
    /// (the first line of an EHLO reply is the server's name).
    pub lines: Vec<String>,
}

impl Reply {
    /// `2yz` (and `3yz`, intermediate: go on).
    #[must_use]
    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// `4yz`: try again later.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// `5yz`: do not try again.
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The enhanced status code (RFC 3463, `x.y.z`) at the start of the first line, if any.
    #[must_use]
    pub fn enhanced(&self) -> Option<&str> {
        let first = self.lines.first()?;
        let word = first.split(' ').next()?;
        let mut parts = word.split('.');
        let class = parts.next()?;
        let ok = matches!(class, "2" | "4" | "5")
            && parts.clone().count() == 2
            && parts
                .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then_some(word)
    }

    /// The text, lines joined by a space.
    #[must_use]
    pub fn text(&self) -> String {
        self.lines.join(" ")
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        let text = self.text();
        if !text.is_empty() {
            write!(f, " {text}")?;
        }
        Ok(())
    }
}

/// A reply that breaks the syntax. The Display text is lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplyError {
    /// A line does not start with a code of three digits, 2..5 first.
    #[error("reply line without a valid code: {line:?}")]
    BadCode {
        /// The start of the line (at most 40 bytes).
        line: String,
    },
    /// The character after the code is neither a space, a hyphen nor the line end.
    #[error("bad separator after code {code}")]
    BadSeparator {
        /// The code.
        code: u16,
    },
    /// The lines of a multi-line reply carry different codes.
    #[error("multi-line reply changes code from {first} to {then}")]
    MixedCodes {
        /// The first line's code.
        first: u16,
        /// A later line's.
        then: u16,
    },
    /// A line longer than [`ReplyLimits::max_line`].
    #[error("reply line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// More lines than [`ReplyLimits::max_lines`].
    #[error("reply of more than {limit} lines")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
}

/// Parses one complete reply from the front of `input`.
///
/// # Errors
/// [`ReplyError`] when the input breaks the reply syntax or the limits.
pub fn parse_reply(input: &[u8], limits: ReplyLimits) -> Result<Status<Parsed<Reply>>, ReplyError> {
    let mut at = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &input[at..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            if rest.len() > limits.max_line + 1 {
                return Err(ReplyError::LineTooLong {
                    limit: limits.max_line,
                });
            }
            return Ok(Status::Partial);
        };
        let mut line = &rest[..end];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.len() > limits.max_line {
            return Err(ReplyError::LineTooLong {
                limit: limits.max_line,
            });
        }
        if lines.len() == limits.max_lines {
            return Err(ReplyError::TooManyLines {
                limit: limits.max_lines,
            });
        }
        at += end + 1;
        let this = line_code(line)?;
        if let Some(first) = code
            && first != this
        {
            return Err(ReplyError::MixedCodes { first, then: this });
        }
        code = Some(this);
        let (last, text) = match line.get(3) {
            None => (true, &[][..]),
            Some(b' ') => (true, &line[4..]),
            Some(b'-') => (false, &line[4..]),
            Some(_) => return Err(ReplyError::BadSeparator { code: this }),
        };
        lines.push(String::from_utf8_lossy(text).into_owned());
        if last {
            return Ok(Status::Complete(Parsed {
                value: Reply { code: this, lines },
                consumed: at,
            }));
        }
    }
}

fn line_code(line: &[u8]) -> Result<u16, ReplyError> {
    match line {
        [a @ b'2'..=b'5', b @ b'0'..=b'9', c @ b'0'..=b'9', ..] => {
            Ok(u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => Err(ReplyError::BadCode {
            line: String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned(),
        }),
    }
}

/// What an EHLO reply offers (RFC 5321 §4.1.1.1; keywords case-insensitive).
#[derive(Clone, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct Extensions {
    /// The server answered EHLO (false: HELO, no extensions).
    pub esmtp: bool,
    /// SIZE (RFC 1870): `Some(0)` offered without a limit, `Some(n)` the limit.
    pub size: Option<u64>,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
    /// AUTH mechanisms (RFC 4954), upper case.
    pub auth: Vec<String>,
}

impl Extensions {
    /// The extensions of an EHLO `reply` (its first line is the server's name).
    #[must_use]
    pub fn from_ehlo(reply: &Reply) -> Extensions {
        let mut ext = Extensions {
            esmtp: true,
            ..Extensions::default()
        };
        for line in reply.lines.iter().skip(1) {
            let mut words = line.split([' ', '=']).filter(|w| !w.is_empty());
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "SIZE" => ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                "PIPELINING" => ext.pipelining = true,
                "8BITMIME" => ext.eight_bit_mime = true,
                "STARTTLS" => ext.starttls = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                // `AUTH=PLAIN LOGIN` is the pre-standard form some servers still send.
                "AUTH" => {
                    for mech in words {
                        let mech = mech.to_ascii_uppercase();
                        if !ext.auth.contains(&mech) {
                            ext.auth.push(mech);
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }

    /// Whether AUTH `mechanism` is offered.
    #[must_use]
    pub fn offers_auth(&self, mechanism: &str) -> bool {
        self.auth.iter().any(|m| m.eq_ignore_ascii_case(mechanism))
    }
}
