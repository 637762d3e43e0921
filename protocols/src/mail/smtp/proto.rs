//! The SMTP server connection as a kit machine (RFC 5321 ESMTP), sans-IO.
//!
//! Owns: [`SmtpServer`]: the greeting, command parsing, the transaction state (HELO/EHLO,
//! MAIL, RCPT, DATA with dot-stuffing), the ESMTP extensions SIZE, PIPELINING, 8BITMIME,
//! ENHANCEDSTATUSCODES, STARTTLS (RFC 3207) and AUTH PLAIN/LOGIN (RFC 4954, offered and
//! accepted only once TLS runs), limits (message size, recipients, line length, command
//! timeout) and the replies.
//! Contract: the kit's [`Machine`] contract. Decisions that need the world are events the
//! application answers, one at a time (commands pipelined behind them wait in the decoder,
//! so replies stay in order): [`SmtpEvent::Recipient`] ([`SmtpServer::recipient`]),
//! [`SmtpEvent::Auth`] ([`SmtpServer::auth_result`]), [`SmtpEvent::Message`]
//! ([`SmtpServer::delivered`]: the 250 after DATA is sent only then, so an application
//! that answers after an fsync acknowledges durable mail only). [`SmtpEvent::StartTls`]
//! comes after the `220` went out (in the clear); the application upgrades the transport,
//! the machine has already discarded input pipelined behind STARTTLS and reset the session.
//! Does not: touch sockets, files or clocks; verify passwords; relay.
//! Tests: `proto/tests.rs` (RawPeer scripts); fuzz target `fuzz/fuzz_targets/smtp_server.rs`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use crate::basic::proto::line::LineEvent;
use crate::cred::{AvatarId, CredError, Credentials, sasl_plain};
use crate::kit::Machine;
use crate::mail::session::{LineSession, line_machine};

/// Settings of an [`SmtpServer`] (limits with safe defaults).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SmtpConfig {
    /// The name in the greeting and the EHLO reply.
    pub hostname: String,
    /// The largest message (DATA after un-stuffing), in bytes; advertised with SIZE.
    pub max_message_size: usize,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// The longest command or text line, in bytes, line end excluded (RFC 5321 asks for
    /// at least 512 for commands and 1000 for text; AUTH lines need more).
    pub max_line: usize,
    /// A client silent this long while the server waits for a command or DATA gets 421.
    pub command_timeout: Duration,
    /// Bad commands tolerated before the server closes with 421.
    pub max_errors: u32,
    /// Whether STARTTLS is offered (the application holds a certificate).
    pub starttls: bool,
    /// Whether AUTH is offered once TLS runs (the application holds a checker).
    pub auth: bool,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            hostname: "localhost".to_owned(),
            max_message_size: 10 * 1024 * 1024,
            max_recipients: 100,
            max_line: 4096,
            command_timeout: Duration::from_secs(300),
            max_errors: 20,
            starttls: false,
            auth: false,
        }
    }
}

/// The envelope of a message: who said hello, the reverse path and the accepted recipients.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The HELO/EHLO argument.
    pub helo: String,
    /// The reverse path (`""` for the null sender `<>`).
    pub from: String,
    /// Accepted recipients, as given.
    pub to: Vec<String>,
    /// The authenticated user, if any.
    pub user: Option<AvatarId>,
    /// Whether the session ran TLS.
    pub tls: bool,
}

/// What an [`SmtpServer`] asks of its application.
#[derive(Debug)]
pub enum SmtpEvent {
    /// Decide on a recipient: answer with [`SmtpServer::recipient`].
    Recipient {
        /// The address inside `<>`.
        address: String,
        /// The authenticated user, if any (relay is for them only).
        user: Option<AvatarId>,
    },
    /// Check credentials (on a thread pool): answer with [`SmtpServer::auth_result`].
    Auth(Credentials),
    /// A complete message to deliver: answer with [`SmtpServer::delivered`] once it is
    /// durable (or failed).
    Message {
        /// Sender and recipients.
        envelope: Envelope,
        /// The message, dot-stuffing removed, lines ending in CRLF.
        data: Bytes,
    },
    /// The `220` to STARTTLS is out: upgrade the transport now (server side).
    StartTls,
}

/// The application's decision on a recipient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RcptVerdict {
    /// A local mailbox: 250.
    Accept,
    /// A local domain, no such user: 550 5.1.1.
    UnknownUser,
    /// Not a local domain and the client may not relay: 554 5.7.1.
    RelayDenied,
    /// Temporarily not possible: 451 4.3.0.
    TryLater,
    /// Not a local domain; the client may relay but this server has no outbound delivery:
    /// 550 5.7.1.
    NoRelayRoute,
}

/// What the machine waits for from the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    Recipient,
    Auth,
    Delivery,
}

/// Where the session is.
#[derive(Debug)]
enum State {
    /// Commands.
    Command,
    /// AUTH LOGIN: the user name is next.
    AuthLoginUser,
    /// AUTH LOGIN: the password is next, after this user name.
    AuthLoginPassword(String),
    /// AUTH PLAIN without an initial response: the response is next.
    AuthPlain,
    /// Message text until the lone dot; `overflow` once it passed the size limit.
    Data { data: BytesMut, overflow: bool },
}

/// One SMTP server connection.
#[derive(Debug)]
pub struct SmtpServer {
    config: SmtpConfig,
    s: LineSession<SmtpEvent, Awaiting>,
    state: State,
    helo: Option<String>,
    from: Option<String>,
    to: Vec<String>,
    tls: bool,
    user: Option<AvatarId>,
}

impl SmtpServer {
    /// A connection with `config`; `tls` when it arrived over TLS already (a `tls:`
    /// endpoint, port 465 style).
    #[must_use]
    pub fn new(config: SmtpConfig, tls: bool) -> SmtpServer {
        SmtpServer {
            s: LineSession::new(config.max_line, config.command_timeout, config.max_errors),
            config,
            state: State::Command,
            helo: None,
            from: None,
            to: Vec::new(),
            tls,
            user: None,
        }
    }

    /// Whether the session runs TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The authenticated user, if any.
    #[must_use]
    pub fn user(&self) -> Option<&AvatarId> {
        self.user.as_ref()
    }

    /// Answers [`SmtpEvent::Recipient`]. Ignored when no recipient is awaited.
    pub fn recipient(&mut self, address: &str, verdict: RcptVerdict) {
        if self.s.awaiting != Some(Awaiting::Recipient) {
            return;
        }
        self.s.awaiting = None;
        match verdict {
            RcptVerdict::Accept => {
                self.to.push(address.to_owned());
                self.reply(b"250 2.1.5 OK");
            }
            RcptVerdict::UnknownUser => self.reply(b"550 5.1.1 No such user here"),
            RcptVerdict::RelayDenied => self.reply(b"554 5.7.1 Relay access denied"),
            RcptVerdict::TryLater => self.reply(b"451 4.3.0 Try again later"),
            RcptVerdict::NoRelayRoute => self.reply(b"550 5.7.1 Relaying not available here"),
        }
        self.s.resume = true;
    }

    /// Answers [`SmtpEvent::Auth`]. Ignored when no check is awaited.
    pub fn auth_result(&mut self, result: Result<AvatarId, CredError>) {
        if self.s.awaiting != Some(Awaiting::Auth) {
            return;
        }
        self.s.awaiting = None;
        match result {
            Ok(user) => {
                self.user = Some(user);
                self.reply(b"235 2.7.0 Authentication successful");
            }
            Err(CredError::Unauthorized) => {
                self.reply(b"535 5.7.8 Authentication credentials invalid");
            }
            Err(CredError::Unavailable(_)) => {
                self.reply(b"454 4.7.0 Temporary authentication failure");
            }
        }
        self.s.resume = true;
    }

    /// Answers [`SmtpEvent::Message`]: `Ok` once the message is durable (250), `Err` with
    /// a reason kept for the logs (451). Ignored when no delivery is awaited.
    pub fn delivered(&mut self, result: Result<(), String>) {
        if self.s.awaiting != Some(Awaiting::Delivery) {
            return;
        }
        self.s.awaiting = None;
        match result {
            Ok(()) => self.reply(b"250 2.0.0 OK: queued"),
            Err(_) => self.reply(b"451 4.3.0 Local delivery failed, try again later"),
        }
        self.s.resume = true;
    }

    fn greeting(&self) -> Vec<u8> {
        format!("220 {} ESMTP ringwork", self.config.hostname).into_bytes()
    }

    fn reply(&mut self, line: &[u8]) {
        self.s.reply(line);
    }

    /// A bad command: the reply, and a close after too many.
    fn error(&mut self, line: &[u8]) {
        if self.s.error(line) {
            self.fatal(b"421 4.7.0 Too many errors, closing connection");
        }
    }

    /// Ends the session with `line`.
    fn fatal(&mut self, line: &[u8]) {
        self.s.fatal(line);
        self.state = State::Command;
    }

    fn reset_transaction(&mut self) {
        self.from = None;
        self.to.clear();
    }

    /// Processes buffered lines until one needs the application or input runs out.
    fn process(&mut self, now: Instant) {
        while let Some(line) = self.s.next_line() {
            match line {
                Ok(LineEvent::Line(line) | LineEvent::Raw(line)) => self.line(&line),
                Err(_) => {
                    self.fatal(b"500 5.5.2 Line too long");
                    return;
                }
            }
        }
        self.s.rearm(now);
    }

    fn line(&mut self, line: &[u8]) {
        match std::mem::replace(&mut self.state, State::Command) {
            State::Command => self.command(line),
            State::Data { data, overflow } => self.data_line(line, data, overflow),
            State::AuthLoginUser => match decode_sasl(line) {
                Ok(user) => match String::from_utf8(user) {
                    Ok(user) => {
                        self.reply(b"334 UGFzc3dvcmQ6");
                        self.state = State::AuthLoginPassword(user);
                    }
                    Err(_) => self.error(b"501 5.5.2 Bad user name"),
                },
                Err(reply) => self.error(reply),
            },
            State::AuthLoginPassword(username) => match decode_sasl(line) {
                Ok(password) => self.check(Credentials::UsernamePassword { username, password }),
                Err(reply) => self.error(reply),
            },
            State::AuthPlain => match decode_sasl(line) {
                Ok(message) => self.plain(&message),
                Err(reply) => self.error(reply),
            },
        }
    }

    fn check(&mut self, credentials: Credentials) {
        self.s.awaiting = Some(Awaiting::Auth);
        self.s.events.push_back(SmtpEvent::Auth(credentials));
    }

    fn plain(&mut self, message: &[u8]) {
        match sasl_plain(message) {
            Ok(credentials) => self.check(credentials),
            Err(_) => self.error(b"501 5.5.2 Malformed PLAIN response"),
        }
    }

    fn data_line(&mut self, line: &[u8], mut data: BytesMut, mut overflow: bool) {
        if line == b"." {
            if overflow {
                self.reset_transaction();
                self.reply(b"552 5.3.4 Message size exceeds fixed maximum message size");
                return;
            }
            let envelope = Envelope {
                helo: self.helo.clone().unwrap_or_default(),
                from: self.from.take().unwrap_or_default(),
                to: std::mem::take(&mut self.to),
                user: self.user.clone(),
                tls: self.tls,
            };
            self.s.awaiting = Some(Awaiting::Delivery);
            self.s.events.push_back(SmtpEvent::Message {
                envelope,
                data: data.freeze(),
            });
            return;
        }
        let text = line.strip_prefix(b".").unwrap_or(line);
        if !overflow {
            if data.len() + text.len() + 2 > self.config.max_message_size {
                overflow = true;
                data = BytesMut::new();
            } else {
                data.extend_from_slice(text);
                data.extend_from_slice(b"\r\n");
            }
        }
        self.state = State::Data { data, overflow };
    }

    fn command(&mut self, line: &[u8]) {
        let (verb, args) = match line.iter().position(|&b| b == b' ') {
            Some(at) => (&line[..at], trim(&line[at + 1..])),
            None => (line, &b""[..]),
        };
        let verb = verb.to_ascii_uppercase();
        match &verb[..] {
            b"EHLO" | b"HELO" => self.hello(&verb, args),
            b"MAIL" => self.mail(args),
            b"RCPT" => self.rcpt(args),
            b"DATA" => self.data(args),
            b"RSET" => {
                self.reset_transaction();
                self.reply(b"250 2.0.0 OK");
            }
            b"NOOP" => self.reply(b"250 2.0.0 OK"),
            b"QUIT" => {
                self.reply(b"221 2.0.0 Bye");
                self.s.end();
            }
            b"VRFY" => self.reply(b"252 2.5.0 Cannot VRFY user, but will accept message"),
            b"EXPN" => self.error(b"502 5.5.1 EXPN not supported"),
            b"HELP" => self.reply(b"214 2.0.0 See RFC 5321"),
            b"STARTTLS" => self.starttls(args),
            b"AUTH" => self.auth(args),
            _ => self.error(b"500 5.5.1 Command unrecognized"),
        }
    }

    fn hello(&mut self, verb: &[u8], args: &[u8]) {
        let Some(domain) = std::str::from_utf8(args)
            .ok()
            .filter(|d| valid_domain_arg(d))
        else {
            self.error(b"501 5.5.4 Syntax: EHLO domain");
            return;
        };
        self.reset_transaction();
        self.helo = Some(domain.to_owned());
        let host = self.config.hostname.clone();
        if verb == b"HELO" {
            self.reply(format!("250 {host}").as_bytes());
            return;
        }
        let mut lines = vec![
            host,
            format!("SIZE {}", self.config.max_message_size),
            "PIPELINING".to_owned(),
            "8BITMIME".to_owned(),
            "ENHANCEDSTATUSCODES".to_owned(),
        ];
        if self.config.starttls && !self.tls {
            lines.push("STARTTLS".to_owned());
        }
        if self.config.auth && self.tls && self.user.is_none() {
            lines.push("AUTH PLAIN LOGIN".to_owned());
        }
        let last = lines.len() - 1;
        for (i, text) in lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            self.reply(format!("250{sep}{text}").as_bytes());
        }
    }

    fn mail(&mut self, args: &[u8]) {
        if self.helo.is_none() {
            return self.error(b"503 5.5.1 Send EHLO first");
        }
        if self.from.is_some() {
            return self.error(b"503 5.5.1 Sender already given");
        }
        let Some((from, params)) = path_arg(args, b"FROM:") else {
            return self.error(b"501 5.5.4 Syntax: MAIL FROM:<address>");
        };
        for param in params.split(|&b| b == b' ').filter(|p| !p.is_empty()) {
            let (key, value) = match param.iter().position(|&b| b == b'=') {
                Some(at) => (&param[..at], &param[at + 1..]),
                None => (param, &b""[..]),
            };
            match &key.to_ascii_uppercase()[..] {
                b"SIZE" => {
                    let size = std::str::from_utf8(value)
                        .ok()
                        .and_then(|v| v.parse::<u64>().ok());
                    match size {
                        None => return self.error(b"501 5.5.4 Bad SIZE parameter"),
                        Some(size) if size > self.config.max_message_size as u64 => {
                            return self.reply(
                                b"552 5.3.4 Message size exceeds fixed maximum message size",
                            );
                        }
                        Some(_) => {}
                    }
                }
                b"BODY" => {
                    let body = value.to_ascii_uppercase();
                    if body != b"7BIT" && body != b"8BITMIME" {
                        return self.error(b"501 5.5.4 Bad BODY parameter");
                    }
                }
                // RFC 4954 §5: accepted and not trusted.
                b"AUTH" => {}
                _ => return self.error(b"555 5.5.4 Unsupported MAIL parameter"),
            }
        }
        self.from = Some(from);
        self.reply(b"250 2.1.0 OK");
    }

    fn rcpt(&mut self, args: &[u8]) {
        if self.from.is_none() {
            return self.error(b"503 5.5.1 Need MAIL before RCPT");
        }
        let Some((to, params)) = path_arg(args, b"TO:") else {
            return self.error(b"501 5.5.4 Syntax: RCPT TO:<address>");
        };
        if !params.is_empty() {
            return self.error(b"555 5.5.4 Unsupported RCPT parameter");
        }
        if to.is_empty() {
            return self.error(b"501 5.1.3 Bad recipient address syntax");
        }
        if self.to.len() >= self.config.max_recipients {
            return self.reply(b"452 4.5.3 Too many recipients");
        }
        self.s.awaiting = Some(Awaiting::Recipient);
        self.s.events.push_back(SmtpEvent::Recipient {
            address: to,
            user: self.user.clone(),
        });
    }

    fn data(&mut self, args: &[u8]) {
        if !args.is_empty() {
            return self.error(b"501 5.5.4 Syntax: DATA");
        }
        if self.from.is_none() {
            return self.error(b"503 5.5.1 Need MAIL command");
        }
        if self.to.is_empty() {
            return self.error(b"554 5.5.1 No valid recipients");
        }
        self.reply(b"354 End data with <CR><LF>.<CR><LF>");
        self.state = State::Data {
            data: BytesMut::new(),
            overflow: false,
        };
    }

    fn starttls(&mut self, args: &[u8]) {
        if !self.config.starttls || self.tls {
            return self.error(b"502 5.5.1 STARTTLS not available");
        }
        if !args.is_empty() {
            return self.error(b"501 5.5.4 Syntax: STARTTLS");
        }
        self.reply(b"220 2.0.0 Ready to start TLS");
        // RFC 3207 §4.2: whatever the client pipelined after STARTTLS came in the clear and
        // is discarded; the session starts over (no HELO, no transaction, no user).
        self.s.start_tls();
        self.helo = None;
        self.reset_transaction();
        self.user = None;
        self.tls = true;
    }

    fn auth(&mut self, args: &[u8]) {
        if !self.config.auth {
            return self.error(b"502 5.5.1 AUTH not available");
        }
        if !self.tls {
            return self
                .error(b"538 5.7.11 Encryption required for requested authentication mechanism");
        }
        if self.helo.is_none() {
            return self.error(b"503 5.5.1 Send EHLO first");
        }
        if self.user.is_some() {
            return self.error(b"503 5.5.1 Already authenticated");
        }
        if self.from.is_some() {
            return self.error(b"503 5.5.1 AUTH not permitted during a mail transaction");
        }
        let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let mechanism = words.next().unwrap_or_default().to_ascii_uppercase();
        let initial = words.next();
        if words.next().is_some() {
            return self.error(b"501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        }
        match (&mechanism[..], initial) {
            (b"PLAIN", None) => {
                self.reply(b"334 ");
                self.state = State::AuthPlain;
            }
            (b"PLAIN", Some(initial)) => match decode_sasl(initial) {
                Ok(message) => self.plain(&message),
                Err(reply) => self.error(reply),
            },
            (b"LOGIN", None) => {
                self.reply(b"334 VXNlcm5hbWU6");
                self.state = State::AuthLoginUser;
            }
            (b"LOGIN", Some(initial)) => match decode_sasl(initial).map(String::from_utf8) {
                Ok(Ok(user)) => {
                    self.reply(b"334 UGFzc3dvcmQ6");
                    self.state = State::AuthLoginPassword(user);
                }
                Ok(Err(_)) => self.error(b"501 5.5.2 Bad user name"),
                Err(reply) => self.error(reply),
            },
            _ => self.error(b"504 5.5.4 Unrecognized authentication type"),
        }
    }
}

/// A SASL response line: base64, `=` for empty, `*` to cancel (RFC 4954 §4).
fn decode_sasl(line: &[u8]) -> Result<Vec<u8>, &'static [u8]> {
    match trim(line) {
        b"*" => Err(b"501 5.0.0 Authentication cancelled"),
        b"=" => Ok(Vec::new()),
        text => BASE64
            .decode(text)
            .map_err(|_| &b"501 5.5.2 Cannot decode response"[..]),
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// A HELO/EHLO argument: a domain or an address literal, printable ASCII.
fn valid_domain_arg(domain: &str) -> bool {
    !domain.is_empty() && domain.len() <= 255 && domain.bytes().all(|b| b.is_ascii_graphic())
}

/// `FROM:<path> params` or `TO:<path> params` (prefix case-insensitive, a space after the
/// colon tolerated): the address inside the brackets and the rest.
fn path_arg<'a>(args: &'a [u8], prefix: &[u8]) -> Option<(String, &'a [u8])> {
    if args.len() < prefix.len() || !args[..prefix.len()].eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = trim(&args[prefix.len()..]);
    let inner = rest.strip_prefix(b"<")?;
    let close = inner.iter().position(|&b| b == b'>')?;
    let address = &inner[..close];
    // A source route (`@a,@b:user@host`, RFC 5321 §4.1.2) is accepted and ignored.
    let address = match address.iter().position(|&b| b == b':') {
        Some(at) if address.first() == Some(&b'@') => &address[at + 1..],
        _ => address,
    };
    if address.len() > 256
        || address
            .iter()
            .any(|b| !b.is_ascii_graphic() || b"<>".contains(b))
    {
        return None;
    }
    let address = String::from_utf8(address.to_vec()).ok()?;
    Some((address, trim(&inner[close + 1..])))
}

line_machine!(
    SmtpServer,
    SmtpEvent,
    start_tls: SmtpEvent::StartTls,
    timeout: b"421 4.4.2 Timeout, closing connection",
    shutdown: b"421 4.3.2 Service shutting down",
);

#[cfg(test)]
mod tests;
