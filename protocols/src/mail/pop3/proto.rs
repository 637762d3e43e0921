//! The POP3 server connection as a kit machine (RFC 1939, CAPA of RFC 2449, STLS of
//! RFC 2595), sans-IO.
//!
//! Owns: [`Pop3Server`]: the AUTHORIZATION state (USER/PASS, STLS, CAPA), the TRANSACTION
//! state over a listing the application gives at login (STAT, LIST, UIDL, TOP, RETR, DELE,
//! RSET, NOOP) and the UPDATE state (QUIT: the marked messages are handed to the
//! application to remove; nothing is removed before). Multi-line answers are
//! byte-stuffed and end with `.`; TOP's cut (headers, blank line, N body lines) is done here.
//! Contract: the kit's [`Machine`] contract; one application decision at a time, as the SMTP
//! machine: [`Pop3Event::Login`] ([`Pop3Server::login_result`]), [`Pop3Event::Retrieve`]
//! ([`Pop3Server::message`]), [`Pop3Event::Update`] ([`Pop3Server::updated`]),
//! [`Pop3Event::StartTls`] after the `+OK` to STLS went out (input pipelined behind STLS
//! is discarded).
//! Does not: read or delete files; check passwords; lock the maildrop (the application
//! does, and says so with [`Pop3Server::login_in_use`]).
//! Tests: `proto/tests.rs`.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::basic::proto::line::LineEvent;
use crate::cred::{CredError, Credentials};
use crate::kit::{Close, Machine};
use crate::mail::session::{LineSession, line_machine};

/// Settings of a [`Pop3Server`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Pop3Config {
    /// The longest command line, in bytes (RFC 2449 allows 255 octets of command).
    pub max_line: usize,
    /// Silence before the server closes (RFC 1939: at least 10 minutes).
    pub timeout: Duration,
    /// Whether STLS is offered.
    pub stls: bool,
    /// Whether USER/PASS are accepted before TLS (off: `-ERR [AUTH]`, use STLS).
    pub plaintext_login: bool,
    /// Bad commands tolerated before the server closes.
    pub max_errors: u32,
}

impl Default for Pop3Config {
    fn default() -> Self {
        Pop3Config {
            max_line: 1024,
            timeout: Duration::from_secs(600),
            stls: false,
            plaintext_login: true,
            max_errors: 20,
        }
    }
}

/// One message of the maildrop, as listed at login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageInfo {
    /// Its unique id (UIDL): printable ASCII, 1 to 70 characters.
    pub uid: String,
    /// Its size in octets.
    pub size: u64,
}

/// What a [`Pop3Server`] asks of its application.
#[derive(Debug)]
pub enum Pop3Event {
    /// Check credentials and list the user's maildrop: answer with
    /// [`Pop3Server::login_result`].
    Login(Credentials),
    /// Read message `index` (0-based in the login listing): answer with
    /// [`Pop3Server::message`].
    Retrieve {
        /// The message.
        index: usize,
    },
    /// QUIT in the TRANSACTION state: remove these messages (0-based), then answer with
    /// [`Pop3Server::updated`].
    Update {
        /// The messages marked deleted.
        deleted: Vec<usize>,
    },
    /// The `+OK` to STLS is out: upgrade the transport now (server side).
    StartTls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Awaiting {
    Login,
    /// A message for RETR (`None`) or TOP (`Some(body lines)`).
    Message(Option<usize>),
    Update,
}

/// One POP3 server connection.
#[derive(Debug)]
pub struct Pop3Server {
    config: Pop3Config,
    s: LineSession<Pop3Event, Awaiting>,
    /// USER given, PASS next.
    user: Option<String>,
    /// The maildrop once logged in (TRANSACTION state), with deletion marks.
    messages: Option<Vec<(MessageInfo, bool)>>,
    tls: bool,
}

impl Pop3Server {
    /// A connection with `config`; `tls` when it arrived over TLS already (port 995 style).
    #[must_use]
    pub fn new(config: Pop3Config, tls: bool) -> Pop3Server {
        Pop3Server {
            s: LineSession::new(config.max_line, config.timeout, config.max_errors),
            config,
            user: None,
            messages: None,
            tls,
        }
    }

    /// Whether the session runs TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Answers [`Pop3Event::Login`]: the maildrop's listing, or why not.
    pub fn login_result(&mut self, result: Result<Vec<MessageInfo>, CredError>) {
        if self.s.awaiting != Some(Awaiting::Login) {
            return;
        }
        self.s.awaiting = None;
        match result {
            Ok(listing) => {
                let text = format!("+OK maildrop has {} messages", listing.len());
                self.reply(text.as_bytes());
                self.messages = Some(listing.into_iter().map(|m| (m, false)).collect());
            }
            Err(CredError::Unauthorized) => self.reply(b"-ERR [AUTH] Invalid credentials"),
            Err(CredError::Unavailable(_)) => self.reply(b"-ERR [SYS/TEMP] Try again later"),
        }
        self.s.resume = true;
    }

    /// Answers [`Pop3Event::Login`] when the credentials were good but another session
    /// holds the maildrop's lock (RFC 1939 §8: exclusive access): `-ERR [IN-USE]`, and the
    /// session stays in the AUTHORIZATION state.
    pub fn login_in_use(&mut self) {
        if self.s.awaiting != Some(Awaiting::Login) {
            return;
        }
        self.s.awaiting = None;
        self.reply(b"-ERR [IN-USE] Maildrop locked by another session");
        self.s.resume = true;
    }

    /// Answers [`Pop3Event::Retrieve`] with the message's bytes (lines ending in CRLF or
    /// LF), or an error kept for the logs.
    pub fn message(&mut self, result: Result<Bytes, String>) {
        let Some(Awaiting::Message(top)) = self.s.awaiting else {
            return;
        };
        self.s.awaiting = None;
        match result {
            Ok(data) => {
                self.reply(b"+OK message follows");
                let mut in_body = false;
                let mut body_lines = 0usize;
                for line in data.split_inclusive(|&b| b == b'\n') {
                    if let Some(limit) = top
                        && in_body
                    {
                        if body_lines >= limit {
                            break;
                        }
                        body_lines += 1;
                    }
                    let text = line.strip_suffix(b"\n").unwrap_or(line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    if text.is_empty() {
                        in_body = true;
                    }
                    if text.first() == Some(&b'.') {
                        self.s.out.write(b".");
                    }
                    self.s.out.write(text);
                    self.s.out.write(b"\r\n");
                }
                self.reply(b".");
            }
            Err(_) => self.reply(b"-ERR [SYS/TEMP] Cannot read the message"),
        }
        self.s.resume = true;
    }

    /// Answers [`Pop3Event::Update`]; the session then ends.
    pub fn updated(&mut self, result: Result<(), String>) {
        if self.s.awaiting != Some(Awaiting::Update) {
            return;
        }
        self.s.awaiting = None;
        match result {
            Ok(()) => self.reply(b"+OK Bye"),
            Err(_) => self.reply(b"-ERR [SYS/TEMP] Some deleted messages not removed"),
        }
        self.s.close = Some(Close::Graceful);
    }

    fn greeting(&self) -> Vec<u8> {
        b"+OK ringwork POP3 server ready".to_vec()
    }

    fn reply(&mut self, line: &[u8]) {
        self.s.reply(line);
    }

    fn error(&mut self, line: &[u8]) {
        if self.s.error(line) {
            self.fatal(b"-ERR Too many errors");
        }
    }

    fn fatal(&mut self, line: &[u8]) {
        self.s.fatal(line);
    }

    fn process(&mut self, now: Instant) {
        while let Some(line) = self.s.next_line() {
            match line {
                Ok(LineEvent::Line(line) | LineEvent::Raw(line)) => self.command(&line),
                Err(_) => {
                    self.fatal(b"-ERR Line too long");
                    return;
                }
            }
        }
        self.s.rearm(now);
    }

    fn command(&mut self, line: &[u8]) {
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let verb = words.next().unwrap_or_default().to_ascii_uppercase();
        let args: Vec<&[u8]> = words.collect();
        let logged_in = self.messages.is_some();
        match (&verb[..], logged_in) {
            (b"CAPA", _) => self.capa(),
            (b"NOOP", true) => self.reply(b"+OK"),
            (b"QUIT", false) => {
                self.reply(b"+OK Bye");
                self.s.end();
            }
            (b"QUIT", true) => {
                let deleted = self
                    .messages
                    .iter()
                    .flatten()
                    .enumerate()
                    .filter(|(_, (_, deleted))| *deleted)
                    .map(|(i, _)| i)
                    .collect();
                self.s.done_reading = true;
                self.s.deadline = None;
                self.s.awaiting = Some(Awaiting::Update);
                self.s.events.push_back(Pop3Event::Update { deleted });
            }
            (b"STLS", false) => self.stls(&args),
            (b"USER", false) => self.user_command(&args),
            (b"PASS", false) => self.pass(line),
            (b"STAT", true) => {
                let (count, size) = self
                    .live()
                    .fold((0, 0), |(c, s), (_, m)| (c + 1, s + m.size));
                self.reply(format!("+OK {count} {size}").as_bytes());
            }
            (b"LIST" | b"UIDL", true) => self.listing(&verb, &args),
            (b"RETR", true) => self.retrieve(&args, None),
            (b"TOP", true) => match args.get(1).and_then(|n| parse_number(n)) {
                Some(lines) if args.len() == 2 => self.retrieve(&args[..1], Some(lines)),
                _ => self.error(b"-ERR Syntax: TOP msg lines"),
            },
            (b"DELE", true) => match self.index(&args) {
                Ok(i) => {
                    if let Some((_, deleted)) = self.messages.as_mut().and_then(|m| m.get_mut(i)) {
                        *deleted = true;
                    }
                    self.reply(format!("+OK message {} deleted", i + 1).as_bytes());
                }
                Err(reply) => self.error(reply),
            },
            (b"RSET", true) => {
                for (_, deleted) in self.messages.iter_mut().flatten() {
                    *deleted = false;
                }
                self.reply(b"+OK");
            }
            (
                b"STAT" | b"LIST" | b"UIDL" | b"RETR" | b"TOP" | b"DELE" | b"RSET" | b"NOOP",
                false,
            ) => {
                self.error(b"-ERR Not logged in");
            }
            (b"USER" | b"PASS" | b"STLS", true) => self.error(b"-ERR Already logged in"),
            _ => self.error(b"-ERR Unknown command"),
        }
    }

    /// The messages not marked deleted, with their 0-based index.
    fn live(&self) -> impl Iterator<Item = (usize, &MessageInfo)> {
        self.messages
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, (_, deleted))| !deleted)
            .map(|(i, (m, _))| (i, m))
    }

    /// The 0-based index of the one message argument, not deleted.
    fn index(&self, args: &[&[u8]]) -> Result<usize, &'static [u8]> {
        let [arg] = args else {
            return Err(b"-ERR Syntax: one message number");
        };
        let n = parse_number(arg).ok_or(&b"-ERR Bad message number"[..])?;
        let messages = self.messages.as_deref().unwrap_or_default();
        match n
            .checked_sub(1)
            .and_then(|i| messages.get(i).map(|m| (i, m)))
        {
            Some((i, (_, false))) => Ok(i),
            Some((_, (_, true))) => Err(b"-ERR Message already deleted"),
            None => Err(b"-ERR No such message"),
        }
    }

    fn capa(&mut self) {
        self.reply(b"+OK Capability list follows");
        for cap in ["TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"] {
            self.reply(cap.as_bytes());
        }
        if self.messages.is_none() && (self.tls || self.config.plaintext_login) {
            self.reply(b"USER");
        }
        if self.config.stls && !self.tls && self.messages.is_none() {
            self.reply(b"STLS");
        }
        self.reply(b"IMPLEMENTATION ringwork");
        self.reply(b".");
    }

    fn stls(&mut self, args: &[&[u8]]) {
        if !self.config.stls || self.tls {
            return self.error(b"-ERR STLS not available");
        }
        if !args.is_empty() {
            return self.error(b"-ERR Syntax: STLS");
        }
        self.reply(b"+OK Begin TLS negotiation");
        self.s.start_tls();
        self.user = None;
        self.tls = true;
    }

    fn user_command(&mut self, args: &[&[u8]]) {
        if !self.tls && !self.config.plaintext_login {
            return self.error(b"-ERR [AUTH] Use STLS first");
        }
        match args {
            [name] => match std::str::from_utf8(name) {
                Ok(name) => {
                    self.user = Some(name.to_owned());
                    self.reply(b"+OK");
                }
                Err(_) => self.error(b"-ERR Bad user name"),
            },
            _ => self.error(b"-ERR Syntax: USER name"),
        }
    }

    fn pass(&mut self, line: &[u8]) {
        let Some(username) = self.user.take() else {
            return self.error(b"-ERR USER first");
        };
        // The password is the rest of the line (it may hold spaces).
        let password = line.get(5..).unwrap_or_default().to_vec();
        self.s.awaiting = Some(Awaiting::Login);
        self.s
            .events
            .push_back(Pop3Event::Login(Credentials::UsernamePassword {
                username,
                password,
            }));
    }

    fn listing(&mut self, verb: &[u8], args: &[&[u8]]) {
        let uidl = verb == b"UIDL";
        let show = |i: usize, m: &MessageInfo| {
            if uidl {
                format!("{} {}", i + 1, m.uid)
            } else {
                format!("{} {}", i + 1, m.size)
            }
        };
        if args.is_empty() {
            let lines: Vec<String> = self.live().map(|(i, m)| show(i, m)).collect();
            self.reply(b"+OK");
            for line in lines {
                self.reply(line.as_bytes());
            }
            self.reply(b".");
            return;
        }
        match self.index(args) {
            Ok(i) => {
                let text = self
                    .messages
                    .as_ref()
                    .and_then(|m| m.get(i))
                    .map(|(m, _)| show(i, m));
                self.reply(format!("+OK {}", text.unwrap_or_default()).as_bytes());
            }
            Err(reply) => self.error(reply),
        }
    }

    fn retrieve(&mut self, args: &[&[u8]], top: Option<usize>) {
        match self.index(args) {
            Ok(index) => {
                self.s.awaiting = Some(Awaiting::Message(top));
                self.s.events.push_back(Pop3Event::Retrieve { index });
            }
            Err(reply) => self.error(reply),
        }
    }
}

fn parse_number(arg: &[u8]) -> Option<usize> {
    if arg.is_empty() || arg.len() > 9 || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

line_machine!(
    Pop3Server,
    Pop3Event,
    start_tls: Pop3Event::StartTls,
    timeout: b"-ERR Timeout",
    shutdown: b"-ERR Server shutting down",
);

#[cfg(test)]
mod tests;
