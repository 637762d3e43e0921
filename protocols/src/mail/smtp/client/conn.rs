//! The SMTP client session as a kit machine (RFC 5321), sans-IO.
//!
//! Owns: [`SmtpClientConn`]: the greeting, EHLO (HELO when EHLO is refused), the
//! extensions, STARTTLS ([`TlsMode`]), AUTH PLAIN/LOGIN, and one transaction per queued
//! message — RSET between messages, MAIL (with SIZE and BODY=8BITMIME), RCPT per
//! recipient, DATA with dot-stuffing, pipelined when the server offers PIPELINING — then
//! QUIT; per-command timeouts (RFC 5321 §4.5.3.2); per-recipient results.
//! Contract: the kit's [`Machine`] contract, plus:
//! 1. queue messages with [`SmtpClientConn::send`] and end with [`SmtpClientConn::quit`]
//!    (before or after connecting: they run once the session is ready, in order);
//! 2. [`ClientEvent::StartTls`] comes once the server's `220` to STARTTLS is read: the
//!    application upgrades the transport, then calls [`SmtpClientConn::tls_started`];
//! 3. every queued message gets exactly one [`ClientEvent::Sent`] (with a result per
//!    recipient, also when the session fails before or during it), and the session ends
//!    with exactly one [`ClientEvent::Closed`].
//!
//! Does not: touch sockets, clocks or TLS; resolve MX records or retry (the engine glue
//! does); encode MIME (the message is given whole, headers included).
//! Spec: RFC 5321, RFC 1870 (SIZE), RFC 2920 (PIPELINING), RFC 6152 (8BITMIME), RFC 3207
//! (STARTTLS), RFC 4954 (AUTH), RFC 4616 (PLAIN). Tests: `tests.rs` (against the server
//! machine in a `Pair`, and `RawPeer` scripts); fuzz target `smtp_client_reply`.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Bytes, BytesMut};

use super::reply::{Extensions, Reply, ReplyError, ReplyLimits, parse_reply};
use crate::kit::{Close, Machine, Output, Status};

/// Whether and how the session upgrades to TLS with STARTTLS.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub enum TlsMode {
    /// STARTTLS must succeed, else the session ends before any mail ([`SmtpError::TlsRequired`]).
    Required,
    /// STARTTLS when the server offers it; in the clear otherwise (RFC 7435).
    #[default]
    Opportunistic,
    /// Never STARTTLS.
    Off,
}

/// Command timeouts, RFC 5321 §4.5.3.2's suggestions by default.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct Timeouts {
    /// The `220` greeting (5 min).
    pub greeting: Duration,
    /// MAIL (5 min).
    pub mail: Duration,
    /// RCPT (5 min).
    pub rcpt: Duration,
    /// DATA's `354` (2 min).
    pub data_init: Duration,
    /// The reply after the final dot (10 min). The message goes to the transport whole,
    /// so the "data block" timeout (3 min) is folded into this one.
    pub data_term: Duration,
    /// Every other command: EHLO, STARTTLS, AUTH, RSET, QUIT (5 min).
    pub other: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        let minutes = |m: u64| Duration::from_secs(60 * m);
        Timeouts {
            greeting: minutes(5),
            mail: minutes(5),
            rcpt: minutes(5),
            data_init: minutes(2),
            data_term: minutes(10),
            other: minutes(5),
        }
    }
}

impl Timeouts {
    /// Every timeout set to `timeout` (tests, impatient tools).
    #[must_use]
    pub fn all(timeout: Duration) -> Timeouts {
        Timeouts {
            greeting: timeout,
            mail: timeout,
            rcpt: timeout,
            data_init: timeout,
            data_term: timeout,
            other: timeout,
        }
    }
}

/// A user name and password for AUTH. The password is not shown by `Debug`.
#[derive(Clone, Eq, PartialEq)]
pub struct SmtpCredentials {
    /// The user name (authentication identity).
    pub username: String,
    /// The password.
    pub password: String,
}

impl fmt::Debug for SmtpCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpCredentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Settings of an [`SmtpClientConn`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The name said in EHLO/HELO (this host's name; `localhost` by default).
    pub helo_name: String,
    /// STARTTLS policy.
    pub tls: TlsMode,
    /// AUTH with these, after TLS (see `auth_without_tls`).
    pub credentials: Option<SmtpCredentials>,
    /// Allow AUTH on a session without TLS (the password then crosses in the clear: only
    /// for loopback test servers). Off by default.
    pub dangerous_auth_without_tls: bool,
    /// Command timeouts.
    pub timeouts: Timeouts,
    /// Reply bounds.
    pub limits: ReplyLimits,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            helo_name: "localhost".to_owned(),
            tls: TlsMode::default(),
            credentials: None,
            dangerous_auth_without_tls: false,
            timeouts: Timeouts::default(),
            limits: ReplyLimits::default(),
        }
    }
}

/// A message to send: the envelope and the content (headers and body, lines ending in LF
/// or CRLF; sent with CRLF and dot-stuffed).
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct OutgoingMessage {
    /// The reverse path (`""` for the null sender).
    pub from: String,
    /// The recipients.
    pub to: Vec<String>,
    /// The message.
    pub data: Bytes,
}

/// What happened to one recipient of a message.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum RecipientStatus {
    /// The server took responsibility (`250` after the final dot).
    Delivered,
    /// A transient failure (`4yz`, timeout, lost connection): try again later.
    Deferred,
    /// A permanent failure (`5yz`, or refused before sending): do not retry.
    Bounced,
}

/// The outcome for one recipient.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RecipientResult {
    /// The recipient, as given.
    pub address: String,
    /// Delivered, deferred or bounced.
    pub status: RecipientStatus,
    /// The server's reply that decided it, if a reply did.
    pub reply: Option<Reply>,
    /// Why, in words: the reply (`550 5.1.1 No such user here`) or a local reason.
    pub reason: String,
}

impl RecipientResult {
    fn from_reply(address: &str, reply: &Reply) -> RecipientResult {
        let status = if reply.code < 300 {
            RecipientStatus::Delivered
        } else if reply.is_permanent() {
            RecipientStatus::Bounced
        } else {
            // 4yz, and a 3yz where a final reply belongs (a broken server): try later.
            RecipientStatus::Deferred
        };
        RecipientResult {
            address: address.to_owned(),
            status,
            reply: Some(reply.clone()),
            reason: reply.to_string(),
        }
    }

    fn local(address: &str, status: RecipientStatus, reason: String) -> RecipientResult {
        RecipientResult {
            address: address.to_owned(),
            status,
            reply: None,
            reason,
        }
    }
}

/// The step of a session, for errors.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub enum Stage {
    /// Connecting, or waiting for the `220` greeting.
    Greeting,
    /// EHLO or HELO.
    Hello,
    /// STARTTLS and the TLS handshake.
    StartTls,
    /// AUTH.
    Auth,
    /// Between messages (no command outstanding).
    Idle,
    /// A mail transaction (RSET, MAIL, RCPT, DATA, the message).
    Transaction,
    /// QUIT.
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Hello => "EHLO/HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Idle => "idle",
            Stage::Transaction => "mail transaction",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why a session ended early. The Display text is lowercase and unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SmtpError {
    /// The server refused a step of the session.
    #[error("server refused {stage}: {reply}")]
    Rejected {
        /// Which.
        stage: Stage,
        /// Its reply (code and text).
        reply: Reply,
    },
    /// TLS was required and the server does not offer STARTTLS.
    #[error("STARTTLS required but not offered by the server")]
    TlsRequired,
    /// AUTH cannot be done: not over TLS, or no common mechanism.
    #[error("cannot authenticate: {reason}")]
    AuthUnavailable {
        /// Why.
        reason: String,
    },
    /// The server sent something that is not a reply, or a reply nothing asked for.
    #[error("protocol error during {stage}: {reason}")]
    Protocol {
        /// When.
        stage: Stage,
        /// What.
        reason: String,
    },
    /// No reply within the command's timeout.
    #[error("timeout during {stage} after {after:?}")]
    Timeout {
        /// When.
        stage: Stage,
        /// The timeout.
        after: Duration,
    },
    /// The connection ended (or could not be made) before the session did.
    #[error("connection lost during {stage}{}", .detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Lost {
        /// When.
        stage: Stage,
        /// What the transport said (a connect or TLS failure), if known.
        detail: Option<String>,
    },
}

impl SmtpError {
    /// Whether trying again later cannot help (a `5yz` refusal, TLS required but absent,
    /// no way to authenticate).
    #[must_use]
    pub fn is_permanent(&self) -> bool {
        match self {
            SmtpError::Rejected { reply, .. } => reply.is_permanent(),
            SmtpError::TlsRequired | SmtpError::AuthUnavailable { .. } => true,
            SmtpError::Protocol { .. } | SmtpError::Timeout { .. } | SmtpError::Lost { .. } => {
                false
            }
        }
    }

    /// The session failed at the transport (connect, TLS, lost, timeout): another server
    /// may do better.
    #[must_use]
    pub fn is_connection_failure(&self) -> bool {
        matches!(self, SmtpError::Lost { .. } | SmtpError::Timeout { .. })
    }
}

/// What an [`SmtpClientConn`] tells its application.
#[derive(Debug)]
pub enum ClientEvent {
    /// The server said `220` to STARTTLS: upgrade the transport, then call
    /// [`SmtpClientConn::tls_started`].
    StartTls,
    /// The session is set up (TLS and AUTH done as configured): the server's extensions.
    Ready(Extensions),
    /// A queued message is done: one result per recipient, in the order given.
    Sent(Vec<RecipientResult>),
    /// The session is over: `Ok` after QUIT, else why. The last event.
    Closed(Result<(), SmtpError>),
}

#[derive(Debug)]
enum State {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    /// The `220` to STARTTLS is read; the application upgrades the transport.
    TlsWait,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    AuthLoginDone,
    /// Ready; no command outstanding.
    Idle,
    Transaction,
    Quit,
    Done,
}

/// A command of a transaction, as sent or to send.
#[derive(Debug)]
enum Cmd {
    Rset,
    Mail(Bytes),
    Rcpt(usize, Bytes),
    Data,
    /// The message and its final dot.
    Body,
    /// A lone dot after a `354` nobody wanted (RFC 2920 §3.1: every RCPT failed).
    EmptyBody,
}

#[derive(Debug)]
struct Transaction {
    message: OutgoingMessage,
    /// The stuffed message with its final dot.
    body: Bytes,
    results: Vec<Option<RecipientResult>>,
    accepted: Vec<usize>,
    /// RSET, MAIL or DATA failed: its reply decides every recipient without a result.
    failed: Option<Reply>,
    to_send: VecDeque<Cmd>,
    in_flight: VecDeque<Cmd>,
}

/// One SMTP client session (see the module docs for the call order).
#[derive(Debug)]
pub struct SmtpClientConn {
    config: ClientConfig,
    input: BytesMut,
    out: Output,
    state: State,
    ext: Extensions,
    tls: bool,
    queue: VecDeque<OutgoingMessage>,
    transaction: Option<Transaction>,
    quit_requested: bool,
    /// A transaction ran on this session: RSET before the next.
    used: bool,
    events: VecDeque<ClientEvent>,
    /// A command went out: its timeout, started at the next call that knows the time.
    arm: Option<Duration>,
    deadline: Option<Instant>,
    close: Option<Close>,
    close_polled: bool,
}

impl SmtpClientConn {
    /// A session with `config`; `tls` when the transport runs TLS from the start
    /// (port 465, "implicit TLS": STARTTLS is then not used).
    #[must_use]
    pub fn new(config: ClientConfig, tls: bool) -> SmtpClientConn {
        let greeting = config.timeouts.greeting;
        SmtpClientConn {
            config,
            input: BytesMut::new(),
            out: Output::new(),
            state: State::Greeting,
            ext: Extensions::default(),
            tls,
            queue: VecDeque::new(),
            transaction: None,
            quit_requested: false,
            used: false,
            events: VecDeque::new(),
            arm: Some(greeting),
            deadline: None,
            close: None,
            close_polled: false,
        }
    }

    /// Queues `message`; it is sent once the session is ready and the messages before it
    /// are done (also when [`SmtpClientConn::quit`] was called, if QUIT has not gone out
    /// yet). Once QUIT went out or the session ended, it gets its [`ClientEvent::Sent`]
    /// (deferred) at once. `Sent` events come in the order of `send` calls.
    pub fn send(&mut self, message: OutgoingMessage) {
        // Once QUIT is out nothing else is queued, so this keeps the order of `Sent`s.
        if matches!(self.state, State::Done | State::Quit) {
            let reason = "session already closed".to_owned();
            self.events.push_back(ClientEvent::Sent(all(
                &message.to,
                RecipientStatus::Deferred,
                &reason,
            )));
            return;
        }
        self.queue.push_back(message);
        self.next();
    }

    /// Ends the session with QUIT once the queued messages are done.
    pub fn quit(&mut self) {
        self.quit_requested = true;
        self.next();
    }

    /// The application upgraded the transport after [`ClientEvent::StartTls`]: the session
    /// starts over with EHLO (RFC 3207 §4.2). Ignored at any other time.
    pub fn tls_started(&mut self) {
        if matches!(self.state, State::TlsWait) {
            self.tls = true;
            self.ext = Extensions::default();
            self.command(
                b"EHLO ",
                self.config.helo_name.clone().as_bytes(),
                State::Ehlo,
            );
        }
    }

    /// Whether the session runs TLS.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The server's extensions (from the last EHLO).
    #[must_use]
    pub fn extensions(&self) -> &Extensions {
        &self.ext
    }

    fn stage(&self) -> Stage {
        match self.state {
            State::Greeting => Stage::Greeting,
            State::Ehlo | State::Helo => Stage::Hello,
            State::StartTls | State::TlsWait => Stage::StartTls,
            State::AuthPlain
            | State::AuthLoginUser
            | State::AuthLoginPassword
            | State::AuthLoginDone => Stage::Auth,
            State::Idle | State::Done => Stage::Idle,
            State::Transaction => Stage::Transaction,
            State::Quit => Stage::Quit,
        }
    }

    /// Writes `verb` + `arg` + CRLF, enters `state` and starts that state's timeout.
    fn command(&mut self, verb: &[u8], arg: &[u8], state: State) {
        self.out.write(verb);
        self.out.write(arg);
        self.out.write(b"\r\n");
        self.state = state;
        self.arm = Some(self.config.timeouts.other);
    }

    fn settle_time(&mut self, now: Instant) {
        if let Some(after) = self.arm.take() {
            self.deadline = Some(now + after);
        }
    }

    fn timeout_now(&self) -> Duration {
        match (&self.state, &self.transaction) {
            (State::Greeting, _) => self.config.timeouts.greeting,
            (State::Transaction, Some(t)) => match t.in_flight.back() {
                Some(Cmd::Mail(_)) => self.config.timeouts.mail,
                Some(Cmd::Rcpt(..)) => self.config.timeouts.rcpt,
                Some(Cmd::Data) => self.config.timeouts.data_init,
                Some(Cmd::Body | Cmd::EmptyBody) => self.config.timeouts.data_term,
                _ => self.config.timeouts.other,
            },
            _ => self.config.timeouts.other,
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Greeting => {
                self.state = State::Greeting;
                if reply.code == 220 {
                    self.ehlo();
                } else {
                    // RFC 5321 §3.1: a 554 greeting means "no service here".
                    self.fail(SmtpError::Rejected {
                        stage: Stage::Greeting,
                        reply,
                    });
                }
            }
            State::Ehlo => {
                self.state = State::Ehlo;
                if reply.code == 250 {
                    self.ext = Extensions::from_ehlo(&reply);
                    self.after_hello();
                } else if reply.is_permanent() && !self.tls {
                    // RFC 5321 §3.2: a server that does not know EHLO gets HELO.
                    let name = self.config.helo_name.clone();
                    self.command(b"HELO ", name.as_bytes(), State::Helo);
                } else {
                    self.fail(SmtpError::Rejected {
                        stage: Stage::Hello,
                        reply,
                    });
                }
            }
            State::Helo => {
                self.state = State::Helo;
                if reply.code == 250 {
                    self.ext = Extensions::default();
                    self.after_hello();
                } else {
                    self.fail(SmtpError::Rejected {
                        stage: Stage::Hello,
                        reply,
                    });
                }
            }
            State::StartTls => {
                self.state = State::StartTls;
                if reply.code == 220 {
                    self.state = State::TlsWait;
                    self.arm = None;
                    self.deadline = None;
                    if !self.input.is_empty() {
                        // RFC 3207 §4.2: bytes behind the 220 came in the clear and would
                        // be taken as protected (the STARTTLS injection flaw).
                        self.fail(SmtpError::Protocol {
                            stage: Stage::StartTls,
                            reason: "data after the 220 to STARTTLS".into(),
                        });
                        return;
                    }
                    self.events.push_back(ClientEvent::StartTls);
                } else if self.config.tls == TlsMode::Required {
                    self.fail(SmtpError::Rejected {
                        stage: Stage::StartTls,
                        reply,
                    });
                } else {
                    self.authenticate();
                }
            }
            State::AuthPlain | State::AuthLoginDone => {
                self.state = State::AuthPlain;
                if reply.code == 235 {
                    self.ready();
                } else {
                    self.fail(SmtpError::Rejected {
                        stage: Stage::Auth,
                        reply,
                    });
                }
            }
            State::AuthLoginUser | State::AuthLoginPassword if reply.code != 334 => {
                self.state = State::AuthLoginUser;
                self.fail(SmtpError::Rejected {
                    stage: Stage::Auth,
                    reply,
                });
            }
            State::AuthLoginUser => {
                let user = self.credentials().username;
                let user = BASE64.encode(user);
                self.command(b"", user.as_bytes(), State::AuthLoginPassword);
            }
            State::AuthLoginPassword => {
                let password = BASE64.encode(self.credentials().password);
                self.command(b"", password.as_bytes(), State::AuthLoginDone);
            }
            State::Transaction => {
                self.state = State::Transaction;
                self.transaction_reply(reply);
            }
            State::Quit => {
                self.state = State::Quit;
                self.finish(Ok(()));
            }
            state @ (State::Idle | State::TlsWait | State::Done) => {
                self.state = state;
                // A reply nothing asked for: a 421 before the server closes, or garbage.
                let error = if reply.code == 421 {
                    SmtpError::Rejected {
                        stage: self.stage(),
                        reply,
                    }
                } else {
                    SmtpError::Protocol {
                        stage: self.stage(),
                        reason: format!("unexpected reply {reply}"),
                    }
                };
                self.fail(error);
            }
        }
    }

    fn credentials(&self) -> SmtpCredentials {
        self.config.credentials.clone().unwrap_or(SmtpCredentials {
            username: String::new(),
            password: String::new(),
        })
    }

    fn ehlo(&mut self) {
        let name = self.config.helo_name.clone();
        self.command(b"EHLO ", name.as_bytes(), State::Ehlo);
    }

    fn after_hello(&mut self) {
        if !self.tls && self.config.tls != TlsMode::Off {
            if self.ext.starttls {
                self.command(b"STARTTLS", b"", State::StartTls);
                return;
            }
            if self.config.tls == TlsMode::Required {
                self.fail(SmtpError::TlsRequired);
                return;
            }
        }
        self.authenticate();
    }

    fn authenticate(&mut self) {
        let Some(credentials) = self.config.credentials.clone() else {
            self.ready();
            return;
        };
        // RFC 4954 §4: a password mechanism only under TLS, unless the user asked.
        if !self.tls && !self.config.dangerous_auth_without_tls {
            self.fail(SmtpError::AuthUnavailable {
                reason: "the session does not run TLS".into(),
            });
            return;
        }
        if self.ext.offers_auth("PLAIN") {
            let mut message = Vec::with_capacity(2 + credentials.username.len() * 2);
            message.push(0);
            message.extend_from_slice(credentials.username.as_bytes());
            message.push(0);
            message.extend_from_slice(credentials.password.as_bytes());
            let encoded = BASE64.encode(message);
            self.command(b"AUTH PLAIN ", encoded.as_bytes(), State::AuthPlain);
        } else if self.ext.offers_auth("LOGIN") {
            self.command(b"AUTH LOGIN", b"", State::AuthLoginUser);
        } else {
            let offered = if self.ext.auth.is_empty() {
                "none".to_owned()
            } else {
                self.ext.auth.join(" ")
            };
            self.fail(SmtpError::AuthUnavailable {
                reason: format!("no PLAIN or LOGIN mechanism (offered: {offered})"),
            });
        }
    }

    fn ready(&mut self) {
        self.state = State::Idle;
        self.arm = None;
        self.deadline = None;
        self.events.push_back(ClientEvent::Ready(self.ext.clone()));
        self.next();
    }

    /// In `Idle`: starts the next message, or QUIT.
    fn next(&mut self) {
        if !matches!(self.state, State::Idle) {
            return;
        }
        while let Some(message) = self.queue.pop_front() {
            if self.begin(message) {
                return;
            }
        }
        if self.quit_requested {
            self.command(b"QUIT", b"", State::Quit);
        }
    }

    /// Starts a transaction for `message`; `false` when it was refused before any command
    /// (its `Sent` is queued).
    fn begin(&mut self, message: OutgoingMessage) -> bool {
        let refuse =
            |reason: String| ClientEvent::Sent(all(&message.to, RecipientStatus::Bounced, &reason));
        if message.to.is_empty() {
            self.events.push_back(ClientEvent::Sent(Vec::new()));
            return false;
        }
        if let Some(bad) = std::iter::once(&message.from)
            .chain(&message.to)
            .find(|a| !valid_address(a))
        {
            let event = refuse(format!("invalid address {bad:?}"));
            self.events.push_back(event);
            return false;
        }
        if message.to.iter().any(String::is_empty) {
            let event = refuse("empty recipient".into());
            self.events.push_back(event);
            return false;
        }
        let (body, size) = stuff(&message.data);
        // RFC 1870 §6: a client SHOULD NOT send a message larger than the server's SIZE.
        if let Some(limit) = self.ext.size
            && limit > 0
            && size as u64 > limit
        {
            let event = refuse(format!(
                "message of {size} bytes is over the server's SIZE limit of {limit}"
            ));
            self.events.push_back(event);
            return false;
        }
        let eight_bit = !message.data.is_ascii();
        // RFC 6152 §3: 8-bit data only to a server that offers 8BITMIME.
        if eight_bit && !self.ext.eight_bit_mime {
            let event = refuse("8-bit message and the server lacks 8BITMIME".into());
            self.events.push_back(event);
            return false;
        }
        let mut mail = format!("MAIL FROM:<{}>", message.from);
        if self.ext.size.is_some() {
            mail.push_str(&format!(" SIZE={size}"));
        }
        if eight_bit {
            mail.push_str(" BODY=8BITMIME");
        }
        mail.push_str("\r\n");
        let mut to_send = VecDeque::new();
        if self.used {
            to_send.push_back(Cmd::Rset);
        }
        to_send.push_back(Cmd::Mail(Bytes::from(mail)));
        for (i, rcpt) in message.to.iter().enumerate() {
            to_send.push_back(Cmd::Rcpt(i, Bytes::from(format!("RCPT TO:<{rcpt}>\r\n"))));
        }
        to_send.push_back(Cmd::Data);
        self.used = true;
        self.transaction = Some(Transaction {
            results: vec![None; message.to.len()],
            message,
            body,
            accepted: Vec::new(),
            failed: None,
            to_send,
            in_flight: VecDeque::new(),
        });
        self.state = State::Transaction;
        self.flush_transaction();
        true
    }

    /// Sends what may go now: everything up to DATA with PIPELINING, else one command
    /// once the previous one is answered; skips what a failure made pointless.
    fn flush_transaction(&mut self) {
        let pipelining = self.ext.pipelining;
        let Some(t) = self.transaction.as_mut() else {
            return;
        };
        while let Some(cmd) = t.to_send.front() {
            if !t.in_flight.is_empty() && !pipelining {
                break;
            }
            // Without pipelining, nothing after a failed MAIL and no DATA without a
            // recipient (RFC 5321 §3.3).
            let pointless = match cmd {
                Cmd::Rcpt(..) => t.failed.is_some(),
                Cmd::Data => t.failed.is_some() || t.accepted.is_empty(),
                _ => false,
            };
            if pointless && !pipelining {
                t.to_send.clear();
                break;
            }
            let Some(cmd) = t.to_send.pop_front() else {
                break;
            };
            match &cmd {
                Cmd::Rset => self.out.write(b"RSET\r\n"),
                Cmd::Mail(line) | Cmd::Rcpt(_, line) => self.out.write(line),
                Cmd::Data => self.out.write(b"DATA\r\n"),
                Cmd::Body => self.out.write_bytes(t.body.clone()),
                Cmd::EmptyBody => self.out.write(b".\r\n"),
            }
            t.in_flight.push_back(cmd);
        }
        if t.in_flight.is_empty() {
            self.end_transaction();
        } else {
            self.arm = Some(self.timeout_now());
        }
    }

    fn transaction_reply(&mut self, reply: Reply) {
        let Some(t) = self.transaction.as_mut() else {
            return;
        };
        let Some(cmd) = t.in_flight.pop_front() else {
            self.fail(SmtpError::Protocol {
                stage: Stage::Transaction,
                reason: format!("unexpected reply {reply}"),
            });
            return;
        };
        match cmd {
            Cmd::Rset | Cmd::Mail(_) => {
                if reply.code >= 300 && t.failed.is_none() {
                    t.failed = Some(reply);
                }
            }
            Cmd::Rcpt(i, _) => {
                if t.failed.is_none() {
                    if reply.code < 300 {
                        t.accepted.push(i);
                    } else {
                        t.results[i] = Some(RecipientResult::from_reply(&t.message.to[i], &reply));
                    }
                }
            }
            Cmd::Data => {
                if reply.code == 354 {
                    let next = if t.failed.is_some() || t.accepted.is_empty() {
                        Cmd::EmptyBody
                    } else {
                        Cmd::Body
                    };
                    t.to_send.push_front(next);
                } else if t.failed.is_none() {
                    t.failed = Some(reply);
                }
            }
            Cmd::Body => {
                for &i in &t.accepted {
                    t.results[i] = Some(RecipientResult::from_reply(&t.message.to[i], &reply));
                }
            }
            Cmd::EmptyBody => {}
        }
        if t.in_flight.is_empty() || matches!(t.to_send.front(), Some(Cmd::Body | Cmd::EmptyBody)) {
            self.flush_transaction();
        }
    }

    /// Reports the transaction and goes on with the next message.
    fn end_transaction(&mut self) {
        let Some(t) = self.transaction.take() else {
            return;
        };
        let results = t
            .results
            .into_iter()
            .enumerate()
            .map(|(i, result)| {
                let address = &t.message.to[i];
                result.unwrap_or_else(|| match &t.failed {
                    Some(reply) => RecipientResult::from_reply(address, reply),
                    None => RecipientResult::local(
                        address,
                        RecipientStatus::Deferred,
                        "no reply for the message".into(),
                    ),
                })
            })
            .collect();
        self.events.push_back(ClientEvent::Sent(results));
        self.state = State::Idle;
        self.arm = None;
        self.deadline = None;
        self.next();
    }

    /// Ends the session: every message not reported yet gets its results from `error`,
    /// then `Closed`.
    fn fail(&mut self, error: SmtpError) {
        if matches!(self.state, State::Done) {
            return;
        }
        let status = if error.is_permanent() {
            RecipientStatus::Bounced
        } else {
            RecipientStatus::Deferred
        };
        let reason = error.to_string();
        if let Some(t) = self.transaction.take() {
            let results = t
                .results
                .into_iter()
                .enumerate()
                .map(|(i, r)| {
                    r.unwrap_or_else(|| {
                        RecipientResult::local(&t.message.to[i], status, reason.clone())
                    })
                })
                .collect();
            self.events.push_back(ClientEvent::Sent(results));
        }
        for message in std::mem::take(&mut self.queue) {
            self.events
                .push_back(ClientEvent::Sent(all(&message.to, status, &reason)));
        }
        // A sane connection is left politely; a broken one is cut.
        let polite = matches!(
            error,
            SmtpError::Rejected { .. } | SmtpError::TlsRequired | SmtpError::AuthUnavailable { .. }
        ) && !matches!(self.state, State::TlsWait);
        if polite {
            self.out.write(b"QUIT\r\n");
        }
        self.finish(Err(error));
        self.close = Some(if polite {
            Close::Graceful
        } else {
            Close::Abort
        });
    }

    fn finish(&mut self, result: Result<(), SmtpError>) {
        self.state = State::Done;
        self.arm = None;
        self.deadline = None;
        self.input.clear();
        self.events.push_back(ClientEvent::Closed(result));
        self.close = Some(Close::Graceful);
    }
}

impl Machine for SmtpClientConn {
    type Event = ClientEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.settle_time(now);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if matches!(self.state, State::Done) {
            return;
        }
        self.settle_time(now);
        self.input.extend_from_slice(data);
        while !matches!(self.state, State::Done) {
            match parse_reply(&self.input, self.config.limits) {
                Ok(Status::Partial) => break,
                Ok(Status::Complete(parsed)) => {
                    let _ = self.input.split_to(parsed.consumed);
                    self.on_reply(parsed.value);
                }
                Err(error) => {
                    let stage = self.stage();
                    self.fail(SmtpError::Protocol {
                        stage,
                        reason: reply_error(&error),
                    });
                }
            }
        }
        self.settle_time(now);
    }

    fn handle_eof(&mut self, now: Instant) {
        self.handle_lost(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.settle_time(now);
        if self.deadline.is_some_and(|at| at <= now) {
            let after = self.timeout_now();
            let stage = self.stage();
            self.fail(SmtpError::Timeout { stage, after });
        }
    }

    fn handle_lost(&mut self, _now: Instant) {
        match self.state {
            State::Done => {}
            // The server may close right after (or instead of) its 221.
            State::Quit => self.finish(Ok(())),
            _ => {
                let stage = self.stage();
                self.fail(SmtpError::Lost {
                    stage,
                    detail: None,
                });
                self.out.clear();
            }
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        self.settle_time(now);
        if self.close_polled {
            self.out.clear();
            return None;
        }
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled || !self.out.is_empty() {
            return None;
        }
        self.close_polled = self.close.is_some();
        self.close
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn wants_input(&self) -> bool {
        !matches!(self.state, State::Done | State::TlsWait)
    }
}

fn reply_error(error: &ReplyError) -> String {
    format!("bad reply: {error}")
}

fn all(to: &[String], status: RecipientStatus, reason: &str) -> Vec<RecipientResult> {
    to.iter()
        .map(|a| RecipientResult::local(a, status, reason.to_owned()))
        .collect()
}

/// An address that can go inside `<>` on a command line: no controls, spaces or angle
/// brackets (which would let a caller inject commands), at most 256 bytes (RFC 5321
/// §4.5.3.1.3).
fn valid_address(address: &str) -> bool {
    address.len() <= 256
        && address
            .bytes()
            .all(|b| b > b' ' && b != 0x7f && b != b'<' && b != b'>')
}

/// The message with CRLF line ends, dot-stuffed (RFC 5321 §4.5.2), and its final dot;
/// and its size before stuffing (for SIZE=).
pub fn stuff(data: &[u8]) -> (Bytes, usize) {
    let mut out = BytesMut::with_capacity(data.len() + data.len() / 64 + 8);
    let mut size = 0;
    let mut lines = data.split(|&b| b == b'\n').peekable();
    while let Some(mut line) = lines.next() {
        if lines.peek().is_none() && line.is_empty() {
            break; // the data ended with its line end
        }
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if line.first() == Some(&b'.') {
            out.extend_from_slice(b".");
        }
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        size += line.len() + 2;
    }
    out.extend_from_slice(b".\r\n");
    (out.freeze(), size)
}
