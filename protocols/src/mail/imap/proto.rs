//! The IMAP4rev1 server connection as a kit machine (RFC 3501, with LITERAL+ of RFC 7888,
//! SASL-IR of RFC 4959, IDLE of RFC 2177, UIDPLUS of RFC 4315, UNSELECT of RFC 3691),
//! sans-IO.
//!
//! Owns: [`ImapServer`]: the framing of commands (lines, synchronizing literals with their
//! `+` continuation, non-synchronizing ones, limits on both), the states of RFC 3501 §3
//! (not authenticated, authenticated, selected, logout) and which commands each allows,
//! CAPABILITY, NOOP outside a mailbox, LOGOUT, STARTTLS (RFC 2595: input pipelined behind
//! it is dropped), LOGIN and AUTHENTICATE PLAIN (refused before TLS unless the
//! configuration allows plaintext logins: `LOGINDISABLED`), IDLE's continuation and
//! `DONE`, tagged status lines, `BAD` for what does not parse (the session goes on), and
//! the autologout timer.
//! Contract: the kit's [`Machine`] contract; one application decision at a time:
//! [`ImapEvent::Login`] ([`ImapServer::login_result`]), [`ImapEvent::Request`] (a
//! mailbox command: [`ImapServer::respond`], or [`ImapServer::respond_part`] then
//! [`ImapEvent::More`] once the output drained, for big FETCH answers),
//! [`ImapEvent::Idle`] (the application may push [`ImapServer::unsolicited`] data until
//! [`ImapEvent::IdleDone`], answered with [`ImapServer::respond`]), and
//! [`ImapEvent::StartTls`] after the go-ahead went out.
//! Does not: touch files (the application's [`super::store`] does), check passwords.
//! Tests: `proto/tests.rs`; fuzz target `fuzz/fuzz_targets/imap_server.rs`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use super::parse::{self, Command, Part};
use crate::basic::proto::line::LineEvent;
use crate::cred::{AvatarId, CredError, Credentials, sasl_plain};
use crate::kit::Machine;
use crate::mail::session::{LineSession, line_machine};

/// Settings of an [`ImapServer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ImapConfig {
    /// The longest command line, in bytes (literals not counted).
    pub max_line: usize,
    /// The largest literal (an APPENDed message), in bytes.
    pub max_literal: u64,
    /// Silence before the server logs the client out (RFC 3501 §5.4: at least 30 min;
    /// also while idling).
    pub timeout: Duration,
    /// Whether STARTTLS is offered.
    pub starttls: bool,
    /// Whether LOGIN and AUTHENTICATE are accepted before TLS (off: `LOGINDISABLED`).
    pub plaintext_login: bool,
    /// Bad commands tolerated before the server closes.
    pub max_errors: u32,
}

impl Default for ImapConfig {
    fn default() -> Self {
        ImapConfig {
            max_line: 8192,
            max_literal: 32 * 1024 * 1024,
            timeout: Duration::from_secs(30 * 60),
            starttls: false,
            plaintext_login: true,
            max_errors: 50,
        }
    }
}

/// What an [`ImapServer`] asks of its application.
#[derive(Debug)]
pub enum ImapEvent {
    /// Check credentials: answer with [`ImapServer::login_result`].
    Login(Credentials),
    /// A command on mailboxes (authenticated or selected state): answer with
    /// [`ImapServer::respond`] (or parts first).
    Request {
        /// The command's tag.
        tag: String,
        /// The command.
        command: Command,
    },
    /// After [`ImapServer::respond_part`]: the output drained; send the next part.
    More,
    /// IDLE began: report changes with [`ImapServer::unsolicited`] until
    /// [`ImapEvent::IdleDone`].
    Idle,
    /// The client ended IDLE: answer with [`ImapServer::respond`] (any pending changes
    /// as data).
    IdleDone,
    /// The go-ahead to STARTTLS is out: upgrade the transport now (server side).
    StartTls,
}

/// A tagged status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `OK`.
    Ok,
    /// `NO`.
    No,
    /// `BAD`.
    Bad,
}

/// How a command changed the selected mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Selection {
    /// Unchanged.
    #[default]
    Keep,
    /// A mailbox is selected now (SELECT or EXAMINE succeeded).
    Selected,
    /// None is (CLOSE, UNSELECT, a failed SELECT).
    None,
}

/// The application's answer to an [`ImapEvent::Request`].
#[derive(Clone, Debug)]
pub struct Response {
    /// Untagged lines (each ending in CRLF), sent before the status.
    pub data: Bytes,
    /// The status.
    pub status: Status,
    /// The status text, with any `[CODE]` first.
    pub text: String,
    /// The selection after the command.
    pub selection: Selection,
}

impl Response {
    /// A response with `data`, `status` and `text`, the selection unchanged.
    #[must_use]
    pub fn new(data: impl Into<Bytes>, status: Status, text: impl Into<String>) -> Response {
        Response {
            data: data.into(),
            status,
            text: text.into(),
            selection: Selection::Keep,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Awaiting {
    Login(String),
    Request(String),
    /// A part went out: [`ImapEvent::More`] once drained and writable.
    Part(String),
    /// IDLE's `DONE` was read.
    IdleDone(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    NotAuthenticated,
    Authenticated,
    Selected,
}

/// A literal being read.
#[derive(Debug)]
struct Literal {
    remaining: u64,
    data: BytesMut,
}

/// One IMAP server connection.
#[derive(Debug)]
pub struct ImapServer {
    config: ImapConfig,
    s: LineSession<ImapEvent, Awaiting>,
    state: State,
    tls: bool,
    user: Option<AvatarId>,
    /// The command so far (lines and literals), and its size.
    parts: Vec<Part>,
    parts_len: u64,
    literal: Option<Literal>,
    /// AUTHENTICATE PLAIN's tag: the response line is next.
    sasl: Option<String>,
    /// IDLE's tag while idling.
    idle: Option<String>,
    writable: bool,
    /// [`ImapEvent::More`] was due but the transport was full.
    more_pending: bool,
}

impl ImapServer {
    /// A connection with `config`; `tls` when it arrived over TLS already (IMAPS).
    #[must_use]
    pub fn new(config: ImapConfig, tls: bool) -> ImapServer {
        ImapServer {
            s: LineSession::new(config.max_line, config.timeout, config.max_errors),
            config,
            state: State::NotAuthenticated,
            tls,
            user: None,
            parts: Vec::new(),
            parts_len: 0,
            literal: None,
            sasl: None,
            idle: None,
            writable: true,
            more_pending: false,
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

    /// Whether the client is idling (between [`ImapEvent::Idle`] and `DONE`).
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.idle.is_some()
    }

    /// Answers [`ImapEvent::Login`].
    pub fn login_result(&mut self, result: Result<AvatarId, CredError>) {
        let Some(Awaiting::Login(tag)) = self.s.awaiting.clone() else {
            return;
        };
        self.s.awaiting = None;
        match result {
            Ok(user) => {
                self.user = Some(user);
                self.state = State::Authenticated;
                let caps = self.capabilities();
                self.tagged(&tag, Status::Ok, &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(CredError::Unauthorized) => {
                self.tagged(
                    &tag,
                    Status::No,
                    "[AUTHENTICATIONFAILED] Invalid credentials",
                );
            }
            Err(CredError::Unavailable(_)) => {
                self.tagged(&tag, Status::No, "[UNAVAILABLE] Try again later");
            }
        }
        self.s.resume = true;
    }

    /// Answers [`ImapEvent::Request`] or [`ImapEvent::IdleDone`] (after any parts).
    pub fn respond(&mut self, response: Response) {
        let tag = match self.s.awaiting.clone() {
            Some(Awaiting::Request(tag) | Awaiting::Part(tag) | Awaiting::IdleDone(tag)) => tag,
            _ => return,
        };
        self.s.awaiting = None;
        self.more_pending = false;
        self.s.out.write_bytes(response.data);
        match response.selection {
            Selection::Keep => {}
            Selection::Selected => self.state = State::Selected,
            Selection::None => self.state = State::Authenticated,
        }
        self.tagged(&tag, response.status, &response.text);
        self.s.resume = true;
    }

    /// A part of the answer to [`ImapEvent::Request`] (untagged data); the machine says
    /// [`ImapEvent::More`] once it went out, and the answer goes on with more parts or
    /// [`ImapServer::respond`].
    pub fn respond_part(&mut self, data: Bytes) {
        let tag = match self.s.awaiting.clone() {
            Some(Awaiting::Request(tag) | Awaiting::Part(tag)) => tag,
            _ => return,
        };
        self.s.out.write_bytes(data);
        self.s.awaiting = Some(Awaiting::Part(tag));
        self.more_pending = true;
    }

    /// Untagged data while idling (`* 3 EXISTS`); ignored otherwise.
    pub fn unsolicited(&mut self, data: &[u8]) {
        if self.idle.is_some() && self.s.awaiting.is_none() && !self.s.done_reading {
            self.s.out.write(data);
        }
    }

    fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] ringwork IMAP4rev1 server ready",
            self.capabilities()
        )
        .into_bytes()
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 LITERAL+ SASL-IR IDLE UIDPLUS UNSELECT");
        if self.state == State::NotAuthenticated {
            if self.config.starttls && !self.tls {
                caps.push_str(" STARTTLS");
            }
            if self.tls || self.config.plaintext_login {
                caps.push_str(" AUTH=PLAIN");
            } else {
                caps.push_str(" LOGINDISABLED");
            }
        }
        caps
    }

    fn tagged(&mut self, tag: &str, status: Status, text: &str) {
        let status = match status {
            Status::Ok => "OK",
            Status::No => "NO",
            Status::Bad => "BAD",
        };
        self.s.reply(format!("{tag} {status} {text}").as_bytes());
    }

    /// A bad command: `BAD`, and a close after too many.
    fn bad(&mut self, tag: &str, text: &str) {
        let line = format!("{tag} BAD {text}");
        if self.s.error(line.as_bytes()) {
            self.fatal(b"* BYE Too many errors");
        }
    }

    fn fatal(&mut self, line: &[u8]) {
        self.s.fatal(line);
        self.idle = None;
    }

    fn process(&mut self, now: Instant) {
        while let Some(event) = self.s.next_line() {
            match event {
                Ok(LineEvent::Line(line)) => self.line(line),
                Ok(LineEvent::Raw(chunk)) => self.literal_bytes(&chunk),
                Err(_) => {
                    self.fatal(b"* BYE Line too long");
                    return;
                }
            }
        }
        self.s.rearm(now);
    }

    fn literal_bytes(&mut self, chunk: &[u8]) {
        let Some(literal) = self.literal.as_mut() else {
            self.s.decoder.set_line_mode_with(chunk);
            return;
        };
        let take = usize::try_from(literal.remaining)
            .unwrap_or(usize::MAX)
            .min(chunk.len());
        literal.data.extend_from_slice(&chunk[..take]);
        literal.remaining -= take as u64;
        if literal.remaining == 0 {
            let data = std::mem::take(&mut literal.data).freeze();
            self.literal = None;
            self.parts.push(Part::Literal(data));
            self.s.decoder.set_line_mode_with(&chunk[take..]);
        }
    }

    fn line(&mut self, line: Bytes) {
        if let Some(tag) = self.sasl.take() {
            return self.sasl_response(&tag, &line);
        }
        if self.idle.is_some() {
            if line.eq_ignore_ascii_case(b"DONE") {
                let tag = self.idle.take().unwrap_or_default();
                self.s.awaiting = Some(Awaiting::IdleDone(tag));
                self.s.events.push_back(ImapEvent::IdleDone);
            } else {
                // RFC 2177: anything but DONE ends IDLE as a protocol error.
                let tag = self.idle.take().unwrap_or_default();
                self.bad(&tag, "Expected DONE");
            }
            return;
        }
        self.parts_len += line.len() as u64;
        if let Some((head, size, plus)) = parse::literal_suffix(&line) {
            let head = line.slice(..head.len());
            let total = self.parts_len + size;
            if size > self.config.max_literal || total > self.config.max_literal + 65_536 {
                let tag = self.command_tag(&line);
                self.parts.clear();
                self.parts_len = 0;
                if plus {
                    // The client sends it anyway: no way to skip it safely (RFC 7888 §4).
                    self.fatal(b"* BYE [TOOBIG] Literal too big");
                } else {
                    self.bad(&tag, "[TOOBIG] Literal too big");
                }
                return;
            }
            self.parts.push(Part::Text(head));
            self.parts_len += size;
            if size == 0 {
                self.parts.push(Part::Literal(Bytes::new()));
                return;
            }
            if !plus {
                self.s.reply(b"+ Ready for literal data");
            }
            self.literal = Some(Literal {
                remaining: size,
                data: BytesMut::new(),
            });
            self.s.decoder.set_raw(true);
            return;
        }
        self.parts.push(Part::Text(line));
        let parts = std::mem::take(&mut self.parts);
        self.parts_len = 0;
        match parse::parse(&parts) {
            Ok((tag, command)) => self.command(tag, command),
            Err(text) => {
                self.parts = parts;
                let tag = self.command_tag(b"");
                self.parts.clear();
                self.bad(&tag, &text);
            }
        }
    }

    /// The tag of the command being put together (for a `BAD` before it is complete):
    /// its first line is `line` or came before.
    fn command_tag(&self, line: &[u8]) -> String {
        let first = match self.parts.first() {
            Some(Part::Text(first)) => first,
            _ => line,
        };
        parse::tag_of(first).unwrap_or("*").to_owned()
    }

    fn command(&mut self, tag: String, command: Command) {
        let authenticated = self.state != State::NotAuthenticated;
        let selected = self.state == State::Selected;
        match command {
            Command::Capability => {
                let caps = self.capabilities();
                self.s.reply(format!("* CAPABILITY {caps}").as_bytes());
                self.tagged(&tag, Status::Ok, "CAPABILITY completed");
            }
            Command::Logout => {
                self.s.reply(b"* BYE ringwork IMAP4rev1 server logging out");
                self.tagged(&tag, Status::Ok, "LOGOUT completed");
                self.s.end();
            }
            Command::Noop if !selected => self.tagged(&tag, Status::Ok, "NOOP completed"),
            Command::StartTls => self.starttls(&tag),
            Command::Login { user, password } if !authenticated => {
                if !self.login_allowed(&tag) {
                    return;
                }
                self.login(
                    tag,
                    Credentials::UsernamePassword {
                        username: user,
                        password,
                    },
                );
            }
            Command::Authenticate { mechanism, initial } if !authenticated => {
                if !self.login_allowed(&tag) {
                    return;
                }
                if mechanism != "PLAIN" {
                    return self.tagged(&tag, Status::No, "Unsupported mechanism");
                }
                match initial {
                    Some(initial) => self.sasl_response(&tag, &initial),
                    None => {
                        self.s.reply(b"+ ");
                        self.sasl = Some(tag);
                    }
                }
            }
            Command::Login { .. } | Command::Authenticate { .. } => {
                self.bad(&tag, "Already authenticated");
            }
            Command::Idle if authenticated => {
                self.s.reply(b"+ idling");
                self.idle = Some(tag);
                self.s.events.push_back(ImapEvent::Idle);
            }
            Command::Check
            | Command::Close
            | Command::Unselect
            | Command::Expunge(_)
            | Command::Search { .. }
            | Command::Fetch { .. }
            | Command::Store { .. }
            | Command::Copy { .. }
            | Command::Noop
                if !selected =>
            {
                self.bad(&tag, "No mailbox selected");
            }
            _ if !authenticated => self.bad(&tag, "Log in first"),
            command => {
                self.s.awaiting = Some(Awaiting::Request(tag.clone()));
                self.s.events.push_back(ImapEvent::Request { tag, command });
            }
        }
    }

    fn login_allowed(&mut self, tag: &str) -> bool {
        if self.tls || self.config.plaintext_login {
            return true;
        }
        self.tagged(tag, Status::No, "[PRIVACYREQUIRED] Use STARTTLS first");
        false
    }

    fn sasl_response(&mut self, tag: &str, line: &[u8]) {
        if line == b"*" {
            return self.bad(tag, "AUTHENTICATE cancelled");
        }
        let decoded = if line == b"=" {
            Ok(Vec::new())
        } else {
            BASE64.decode(line.trim_ascii())
        };
        match decoded.map(|m| sasl_plain(&m)) {
            Ok(Ok(credentials)) => self.login(tag.to_owned(), credentials),
            Ok(Err(_)) => self.tagged(tag, Status::No, "[AUTHENTICATIONFAILED] Bad PLAIN message"),
            Err(_) => self.bad(tag, "Cannot decode the response"),
        }
    }

    fn login(&mut self, tag: String, credentials: Credentials) {
        self.s.awaiting = Some(Awaiting::Login(tag));
        self.s.events.push_back(ImapEvent::Login(credentials));
    }

    fn starttls(&mut self, tag: &str) {
        if !self.config.starttls || self.tls || self.state != State::NotAuthenticated {
            return self.bad(tag, "STARTTLS not available");
        }
        self.tagged(tag, Status::Ok, "Begin TLS negotiation now");
        self.s.start_tls();
        self.tls = true;
    }

    fn set_writable(&mut self, writable: bool) {
        self.writable = writable;
        self.check_more();
    }

    /// [`ImapEvent::More`] is due once the output drained and the transport has room.
    fn check_more(&mut self) {
        if self.more_pending
            && self.writable
            && self.s.out.is_empty()
            && matches!(self.s.awaiting, Some(Awaiting::Part(_)))
        {
            self.more_pending = false;
            self.s.events.push_back(ImapEvent::More);
        }
    }
}

line_machine!(
    ImapServer,
    ImapEvent,
    start_tls: ImapEvent::StartTls,
    timeout: b"* BYE Autologout; idle for too long",
    shutdown: b"* BYE Server shutting down",
    drained: check_more,
    writable: set_writable,
);

#[cfg(test)]
mod tests;
