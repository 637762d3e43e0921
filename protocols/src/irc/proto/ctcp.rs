//! CTCP framing (sans-IO): `\x01COMMAND args\x01` inside a PRIVMSG or NOTICE text.
//!
//! Owns: [`Ctcp`], [`Ctcp::parse`] (a text that is one CTCP message; the closing `\x01`
//! may be missing, as many clients send it) and [`Ctcp::encode`].
//! Does not: the obsolete low-level and CTCP-level quoting of the 1994 draft (no client in
//! use sends it; Twisted's `ctcpQuote` does, for `\x10`, which we pass through as is), or
//! several CTCP messages in one text (only the first is taken).
//! Spec: <https://modern.ircdocs.horse/ctcp>.

/// The CTCP delimiter.
pub const DELIM: char = '\u{1}';

/// One CTCP message: `ACTION waves`, `VERSION`, `PING 1234`.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Ctcp {
    /// The command, upper-cased.
    pub command: String,
    /// What follows the command and one space (`None` when nothing does).
    pub args: Option<String>,
}

impl Ctcp {
    /// A CTCP message.
    #[must_use]
    pub fn new(command: impl Into<String>, args: Option<String>) -> Self {
        Self {
            command: command.into(),
            args,
        }
    }

    /// The CTCP message in `text`, if `text` is one (starts with `\x01` and has a command).
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let inner = text.strip_prefix(DELIM)?;
        let inner = inner.strip_suffix(DELIM).unwrap_or(inner);
        let inner = inner.split(DELIM).next().unwrap_or("");
        let (command, args) = match inner.split_once(' ') {
            Some((command, args)) => (command, Some(args.to_owned())),
            None => (inner, None),
        };
        if command.is_empty() {
            return None;
        }
        Some(Self {
            command: command.to_ascii_uppercase(),
            args,
        })
    }

    /// The text to put in a PRIVMSG (a query) or NOTICE (a reply). CR, LF, NUL and
    /// `\x01` in the parts are dropped: they would end the line or the message.
    #[must_use]
    pub fn encode(&self) -> String {
        let clean = |s: &str| -> String {
            s.chars()
                .filter(|&c| !matches!(c, '\r' | '\n' | '\0' | DELIM))
                .collect()
        };
        let mut out = String::with_capacity(self.command.len() + 8);
        out.push(DELIM);
        out.push_str(&clean(&self.command));
        if let Some(args) = &self.args {
            out.push(' ');
            out.push_str(&clean(args));
        }
        out.push(DELIM);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_encodes() {
        let action = Ctcp::parse("\u{1}ACTION waves hello\u{1}").expect("ctcp");
        assert_eq!(action, Ctcp::new("ACTION", Some("waves hello".into())));
        assert_eq!(action.encode(), "\u{1}ACTION waves hello\u{1}");
        assert_eq!(
            Ctcp::parse("\u{1}version"),
            Some(Ctcp::new("VERSION", None))
        );
        assert_eq!(Ctcp::parse("hello"), None);
        assert_eq!(Ctcp::parse("\u{1}\u{1}"), None);
        assert_eq!(
            Ctcp::new("PING", Some("1\r\n2\u{1}".into())).encode(),
            "\u{1}PING 12\u{1}"
        );
    }
}
