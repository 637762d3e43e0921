//! The SSH server connection machine: transport ([`super::transport`]), user
//! authentication (RFC 4252: publickey against `authorized_keys`, password through the
//! application, attempt limits) and the connection protocol (RFC 4254: session channels
//! with `exec`/`shell`/`subsystem`, `pty-req`, `env`, `window-change`, `signal`;
//! `direct-tcpip`; `tcpip-forward`/`forwarded-tcpip`).
//!
//! The machine decides protocol matters itself and hands the application what needs the
//! world: a password to check, a command to start, data for a process or socket, a
//! forward to listen for. The application answers with the calls below.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::channel::{
    ChannelId, ChannelKind, ChannelTable, LOCAL_MAX_PACKET, LOCAL_WINDOW, Phase, data_bytes,
};
use super::keys::{AuthorizedKey, AuthorizedKeys, KeyOptions, PublicKey, SigningKey};
use super::transport::{Role, Transport, TransportConfig};
use super::wire::{Reader, WireError, Writer, msg, reason};
use crate::kit::{Close, Machine};

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Transport settings (version, re-key limits, handshake timeout).
    pub transport: TransportConfig,
    /// The host keys (at least one): each is offered with its algorithms in KEXINIT
    /// (Ed25519, ECDSA, RSA as `rsa-sha2-512`/`rsa-sha2-256`), the client picks.
    pub host_keys: Vec<Arc<SigningKey>>,
    /// Keys that may log in (as any user name: commands run as the server's own user).
    pub authorized_keys: Arc<AuthorizedKeys>,
    /// Offer password authentication (the application checks each password).
    pub password_auth: bool,
    /// Failed authentication attempts before the connection is closed.
    pub max_auth_attempts: u32,
    /// Time allowed from connect to successful authentication.
    pub auth_timeout: Duration,
    /// Channels open at once.
    pub max_channels: usize,
    /// Environment variables a session may set (`env`); others are refused.
    pub accept_env: Vec<String>,
}

impl ServerConfig {
    /// Defaults around a host key and authorized keys.
    #[must_use]
    pub fn new(host_key: Arc<SigningKey>, authorized_keys: Arc<AuthorizedKeys>) -> Self {
        Self {
            transport: TransportConfig::default(),
            host_keys: vec![host_key],
            authorized_keys,
            password_auth: false,
            max_auth_attempts: 6,
            auth_timeout: Duration::from_secs(60),
            max_channels: 32,
            accept_env: vec!["LANG".into(), "LC_*".into(), "TERM".into()],
        }
    }
}

/// A terminal requested with `pty-req`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtyRequest {
    /// `TERM`.
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The encoded terminal modes (RFC 4254 §8): `(opcode, value)` in order, up to
    /// `TTY_OP_END` (0) or the first opcode ≥ 160 (which has no defined argument).
    pub modes: Vec<(u8, u32)>,
}

/// At most this many terminal modes are kept from one `pty-req` (OpenSSH sends ~60).
const MAX_TERMINAL_MODES: usize = 256;

/// Decodes RFC 4254 §8 encoded terminal modes; a truncated list keeps what came before.
#[must_use]
pub fn decode_terminal_modes(encoded: &[u8]) -> Vec<(u8, u32)> {
    let mut r = Reader::new(encoded);
    let mut modes = Vec::new();
    while modes.len() < MAX_TERMINAL_MODES {
        let Ok(opcode) = r.u8() else { break };
        if opcode == 0 || opcode >= 160 {
            break;
        }
        let Ok(value) = r.u32() else { break };
        modes.push((opcode, value));
    }
    modes
}

/// What a session asked to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionRequest {
    /// `exec` with this command line (run by the user's shell, `sh -c`).
    Exec(String),
    /// `shell`.
    Shell,
    /// `subsystem` with this name (`sftp`).
    Subsystem(String),
}

/// What the server machine hands its application.
#[derive(Debug)]
pub enum ServerEvent {
    /// Check this password; answer with [`ServerConn::password_result`].
    Password {
        /// The user name.
        user: String,
        /// The password.
        password: Vec<u8>,
    },
    /// The client authenticated.
    Authenticated {
        /// The user name.
        user: String,
        /// `publickey` or `password`.
        method: &'static str,
    },
    /// A session asks to run something; answer with [`ServerConn::start_result`].
    Start {
        /// The session channel.
        channel: ChannelId,
        /// What to run.
        request: SessionRequest,
        /// The terminal, if one was requested.
        pty: Option<PtyRequest>,
        /// Accepted environment variables.
        env: Vec<(String, String)>,
    },
    /// Data from the client; call [`ServerConn::release`] once consumed.
    Data {
        /// The channel.
        channel: ChannelId,
        /// The bytes.
        data: Bytes,
    },
    /// The client will send no more data on this channel.
    Eof {
        /// The channel.
        channel: ChannelId,
    },
    /// The terminal's size changed.
    WindowChange {
        /// The channel.
        channel: ChannelId,
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// The client asks to signal the process (`signal`, name without `SIG`).
    Signal {
        /// The channel.
        channel: ChannelId,
        /// The signal name (`INT`, `TERM`, ...).
        name: String,
    },
    /// The channel has room again after [`ServerConn::writable`] said no.
    Writable {
        /// The channel.
        channel: ChannelId,
    },
    /// The channel is closed both ways: release what serves it.
    Closed {
        /// The channel.
        channel: ChannelId,
    },
    /// `direct-tcpip` (ssh -L): connect and answer with [`ServerConn::open_result`].
    DirectTcpip {
        /// The new channel.
        channel: ChannelId,
        /// Host to connect to.
        host: String,
        /// Port to connect to.
        port: u32,
    },
    /// `tcpip-forward` (ssh -R): listen and answer with [`ServerConn::forward_result`].
    Forward {
        /// The request, for the answer.
        id: u64,
        /// Address to bind.
        address: String,
        /// Port to bind (0: any).
        port: u32,
    },
    /// `cancel-tcpip-forward`.
    CancelForward {
        /// The address.
        address: String,
        /// The port.
        port: u32,
    },
    /// A channel we opened ([`ServerConn::open_forwarded`]) was accepted.
    OpenConfirmed {
        /// The channel.
        channel: ChannelId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthState {
    WaitService,
    WaitRequest,
    Checking,
    Done,
}

struct Session {
    pty: Option<PtyRequest>,
    env: Vec<(String, String)>,
    started: bool,
    /// The start request wanted an answer.
    reply: bool,
}

/// One SSH server connection.
pub struct ServerConn {
    config: ServerConfig,
    transport: Transport,
    auth: AuthState,
    failures: u32,
    user: String,
    auth_deadline: Option<Instant>,
    channels: ChannelTable,
    sessions: std::collections::HashMap<ChannelId, Session>,
    /// Global request replies in request order: `None` until answered.
    global_replies: VecDeque<(u64, Option<Vec<u8>>)>,
    next_global: u64,
    events: VecDeque<ServerEvent>,
    packets: Vec<Vec<u8>>,
    writable: bool,
    close: Option<Close>,
    close_polled: bool,
    eof: bool,
    /// The client's address, for `from=` (set by the application).
    peer: Option<IpAddr>,
    /// The restrictions of the `authorized_keys` line the client logged in with.
    key_options: KeyOptions,
}

const HIGH_WATER: usize = 1 << 20;

impl ServerConn {
    /// A new connection.
    #[must_use]
    pub fn new(config: ServerConfig) -> Self {
        let transport = Transport::new(
            Role::Server(config.host_keys.clone()),
            config.transport.clone(),
        );
        Self {
            config,
            transport,
            auth: AuthState::WaitService,
            failures: 0,
            user: String::new(),
            auth_deadline: None,
            channels: ChannelTable::default(),
            sessions: std::collections::HashMap::new(),
            global_replies: VecDeque::new(),
            next_global: 0,
            events: VecDeque::new(),
            packets: Vec::new(),
            writable: true,
            close: None,
            close_polled: false,
            eof: false,
            peer: None,
            key_options: KeyOptions::default(),
        }
    }

    /// The client's address: `authorized_keys` lines with `from=` admit a client only
    /// when it is set and matches.
    pub fn set_peer_address(&mut self, peer: Option<IpAddr>) {
        self.peer = peer;
    }

    /// The `authorized_keys` options of the key the client logged in with (none for a
    /// password login).
    #[must_use]
    pub fn key_options(&self) -> &KeyOptions {
        &self.key_options
    }

    /// Sends `payload` as one message, unchecked: for fuzzing the peer's state machine
    /// with messages that travel encrypted. Not for applications.
    #[doc(hidden)]
    pub fn send_raw_payload(&mut self, payload: Vec<u8>) {
        self.flush();
        self.transport.send(payload);
    }

    /// Why the connection failed (transport or protocol), if it did.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        self.transport.error()
    }

    /// Whether strict KEX is on (the client offered it).
    #[must_use]
    pub fn is_strict_kex(&self) -> bool {
        self.transport.is_strict()
    }

    /// Re-keys completed.
    #[must_use]
    pub fn rekeys(&self) -> u64 {
        self.transport.rekeys()
    }

    /// The authenticated user name (empty before).
    #[must_use]
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Answers [`ServerEvent::Password`].
    pub fn password_result(&mut self, ok: bool) {
        if self.auth != AuthState::Checking {
            return;
        }
        if ok {
            self.auth_success("password");
        } else {
            self.auth_failure();
        }
        self.process();
    }

    /// Answers [`ServerEvent::Start`]: whether it started.
    pub fn start_result(&mut self, channel: ChannelId, ok: bool) {
        let Some(ch) = self.channels.get(channel) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&channel).filter(|s| s.reply) else {
            return;
        };
        session.reply = false;
        let mut w = Writer::message(if ok {
            msg::CHANNEL_SUCCESS
        } else {
            msg::CHANNEL_FAILURE
        });
        w.u32(ch.remote);
        self.packets.push(w.finish());
        self.flush();
    }

    /// Answers [`ServerEvent::DirectTcpip`]: whether the connection was made.
    pub fn open_result(&mut self, channel: ChannelId, ok: bool) {
        let Some(ch) = self.channels.get_mut(channel) else {
            return;
        };
        if ch.phase != Phase::Offered {
            return;
        }
        let remote = ch.remote;
        if ok {
            ch.phase = Phase::Open;
            let mut w = Writer::message(msg::CHANNEL_OPEN_CONFIRMATION);
            w.u32(remote)
                .u32(channel.0)
                .u32(LOCAL_WINDOW)
                .u32(LOCAL_MAX_PACKET);
            self.packets.push(w.finish());
        } else {
            self.channels.remove(channel);
            let mut w = Writer::message(msg::CHANNEL_OPEN_FAILURE);
            w.u32(remote).u32(2).string("connect failed").string("");
            self.packets.push(w.finish());
        }
        self.flush();
    }

    /// Answers [`ServerEvent::Forward`]: the bound port, or `None` on failure.
    pub fn forward_result(&mut self, id: u64, port: Option<u32>, requested_port: u32) {
        if let Some(slot) = self.global_replies.iter_mut().find(|(i, _)| *i == id) {
            slot.1 = Some(match port {
                Some(p) => {
                    let mut w = Writer::message(msg::REQUEST_SUCCESS);
                    if requested_port == 0 {
                        w.u32(p);
                    }
                    w.finish()
                }
                None => vec![msg::REQUEST_FAILURE],
            });
        }
        self.flush();
    }

    /// Opens a `forwarded-tcpip` channel for a connection accepted on a forward.
    pub fn open_forwarded(
        &mut self,
        address: &str,
        port: u32,
        origin: &str,
        origin_port: u32,
    ) -> Option<ChannelId> {
        if self.close.is_some() || self.channels.len() >= self.config.max_channels {
            return None;
        }
        let id = self
            .channels
            .insert(ChannelKind::Tcp, Phase::Requested, 0, 0, 0);
        let mut w = Writer::message(msg::CHANNEL_OPEN);
        w.string("forwarded-tcpip")
            .u32(id.0)
            .u32(LOCAL_WINDOW)
            .u32(LOCAL_MAX_PACKET);
        w.string(address).u32(port).string(origin).u32(origin_port);
        self.packets.push(w.finish());
        self.flush();
        Some(id)
    }

    /// Sends data on a channel (`stderr`: as extended data). Check [`ServerConn::writable`].
    pub fn send_data(&mut self, channel: ChannelId, data: &[u8], stderr: bool) {
        self.channels.write(channel, data, stderr);
        self.flush();
    }

    /// Whether a channel takes more data now ([`ServerEvent::Writable`] follows a no).
    #[must_use]
    pub fn writable(&self, channel: ChannelId) -> bool {
        self.channels.writable(channel) && self.writable
    }

    /// The application consumed `n` bytes of a channel's data: the window reopens.
    pub fn release(&mut self, channel: ChannelId, n: usize) {
        self.channels.release(channel, n, &mut self.packets);
        self.flush();
    }

    /// Sends EOF after the data queued.
    pub fn send_eof(&mut self, channel: ChannelId) {
        self.channels.want_eof(channel);
        self.flush();
    }

    /// Sends `exit-status` after the data and EOF.
    pub fn send_exit_status(&mut self, channel: ChannelId, code: u32) {
        self.channels
            .want_trailer(channel, "exit-status", &code.to_be_bytes());
        self.flush();
    }

    /// Sends `exit-signal` (name without `SIG`) after the data and EOF.
    pub fn send_exit_signal(&mut self, channel: ChannelId, name: &str, core_dumped: bool) {
        let mut w = Writer::new();
        w.string(name).bool(core_dumped).string("").string("");
        self.channels
            .want_trailer(channel, "exit-signal", w.as_slice());
        self.flush();
    }

    /// Closes a channel after what is queued.
    pub fn close_channel(&mut self, channel: ChannelId) {
        self.channels.want_eof(channel);
        self.channels.want_close(channel);
        self.flush();
    }

    fn auth_success(&mut self, method: &'static str) {
        self.auth = AuthState::Done;
        self.auth_deadline = None;
        self.packets.push(vec![msg::USERAUTH_SUCCESS]);
        self.events.push_back(ServerEvent::Authenticated {
            user: self.user.clone(),
            method,
        });
    }

    fn auth_failure(&mut self) {
        self.failures += 1;
        self.auth = AuthState::WaitRequest;
        if self.failures >= self.config.max_auth_attempts {
            self.fail(
                reason::NO_MORE_AUTH_METHODS_AVAILABLE,
                "too many authentication failures",
            );
            return;
        }
        self.send_auth_methods();
    }

    fn send_auth_methods(&mut self) {
        let mut methods = vec!["publickey"];
        if self.config.password_auth {
            methods.push("password");
        }
        let mut w = Writer::message(msg::USERAUTH_FAILURE);
        w.name_list(&methods).bool(false);
        self.packets.push(w.finish());
    }

    fn fail(&mut self, code: u32, text: &str) {
        self.flush();
        self.transport.disconnect(code, text);
        self.close.get_or_insert(Close::Graceful);
    }

    /// Moves queued packets and channel data into the transport.
    fn flush(&mut self) {
        for p in self.packets.drain(..) {
            self.transport.send(p);
        }
        if self.auth == AuthState::Done {
            let mut budget = if self.writable {
                HIGH_WATER.saturating_sub(self.transport.pending_output())
            } else {
                0
            };
            let (writable, closed) =
                self.channels
                    .flush(&mut self.packets, &mut budget, self.writable);
            for p in self.packets.drain(..) {
                self.transport.send(p);
            }
            for channel in writable {
                self.events.push_back(ServerEvent::Writable { channel });
            }
            for channel in closed {
                self.sessions.remove(&channel);
                self.events.push_back(ServerEvent::Closed { channel });
            }
        }
        // Global replies leave in request order.
        while let Some((_, Some(_))) = self.global_replies.front() {
            if let Some((_, Some(p))) = self.global_replies.pop_front() {
                self.transport.send(p);
            }
        }
    }

    /// Runs buffered input through the transport and handles each service message.
    fn process(&mut self) {
        while self.close.is_none() && self.auth != AuthState::Checking {
            let Some(payload) = self.transport.poll_payload() else {
                break;
            };
            if let Err(e) = self.handle(&payload) {
                let _ = e;
                self.fail(reason::PROTOCOL_ERROR, "malformed or unexpected message");
            }
        }
        if self.transport.error().is_some() {
            self.close.get_or_insert(Close::Graceful);
        }
        self.flush();
    }

    fn handle(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let mut r = Reader::new(payload);
        let number = r.u8()?;
        match (self.auth, number) {
            (AuthState::WaitService, msg::SERVICE_REQUEST) => {
                if r.utf8()? != "ssh-userauth" {
                    self.fail(reason::SERVICE_NOT_AVAILABLE, "unknown service");
                    return Ok(());
                }
                let mut w = Writer::message(msg::SERVICE_ACCEPT);
                w.string("ssh-userauth");
                self.packets.push(w.finish());
                self.auth = AuthState::WaitRequest;
            }
            (AuthState::WaitRequest, msg::USERAUTH_REQUEST) => self.userauth(&mut r)?,
            (AuthState::Done, msg::USERAUTH_REQUEST) => {} // ignored after success (RFC 4252 §5.1)
            (AuthState::Done, _) => self.connection(number, &mut r)?,
            (_, msg::EXT_INFO) => {}
            _ => return Err(WireError),
        }
        Ok(())
    }

    fn userauth(&mut self, r: &mut Reader<'_>) -> Result<(), WireError> {
        let user = r.utf8()?.to_owned();
        let service = r.utf8()?;
        let method = r.utf8()?;
        if service != "ssh-connection" {
            self.fail(reason::SERVICE_NOT_AVAILABLE, "unknown service");
            return Ok(());
        }
        if user.is_empty() || user.len() > 64 {
            self.auth_failure();
            return Ok(());
        }
        self.user = user.clone();
        match method {
            "publickey" => {
                let signed = r.bool()?;
                let algorithm = r.utf8()?;
                let blob = r.string()?;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                let entry = self
                    .config
                    .authorized_keys
                    .find_for(blob, self.peer, now)
                    .filter(|k| k.key.accepts_algorithm(algorithm))
                    .cloned();
                let Some(AuthorizedKey { key, options }) = entry else {
                    self.auth_failure();
                    return Ok(());
                };
                if !signed {
                    let mut w = Writer::message(msg::USERAUTH_PK_OK);
                    w.string(algorithm).string(blob);
                    self.packets.push(w.finish());
                    return Ok(());
                }
                let signature = r.string()?;
                if self.signed_data_verifies(&key, &user, algorithm, blob, signature) {
                    self.key_options = options;
                    self.auth_success("publickey");
                } else {
                    self.auth_failure();
                }
            }
            "password" if self.config.password_auth => {
                let change = r.bool()?;
                let password = r.string()?.to_vec();
                if change {
                    self.auth_failure();
                    return Ok(());
                }
                self.auth = AuthState::Checking;
                self.events
                    .push_back(ServerEvent::Password { user, password });
            }
            _ => self.send_auth_methods(),
        }
        Ok(())
    }

    fn signed_data_verifies(
        &self,
        key: &PublicKey,
        user: &str,
        algorithm: &str,
        blob: &[u8],
        signature: &[u8],
    ) -> bool {
        let Some(session_id) = self.transport.session_id() else {
            return false;
        };
        let mut w = Writer::new();
        w.string(session_id)
            .u8(msg::USERAUTH_REQUEST)
            .string(user)
            .string("ssh-connection");
        w.string("publickey")
            .bool(true)
            .string(algorithm)
            .string(blob);
        key.verify(w.as_slice(), signature)
    }

    fn connection(&mut self, number: u8, r: &mut Reader<'_>) -> Result<(), WireError> {
        match number {
            msg::CHANNEL_OPEN => self.channel_open(r)?,
            msg::GLOBAL_REQUEST => {
                let name = r.utf8()?.to_owned();
                let want_reply = r.bool()?;
                let id = self.next_global;
                self.next_global += 1;
                match name.as_str() {
                    "tcpip-forward" => {
                        let address = r.utf8()?.to_owned();
                        let port = r.u32()?;
                        if !self.key_options.allows_listen(&address, port) {
                            if want_reply {
                                self.global_replies
                                    .push_back((id, Some(vec![msg::REQUEST_FAILURE])));
                            }
                            return Ok(());
                        }
                        if want_reply {
                            self.global_replies.push_back((id, None));
                        }
                        self.events
                            .push_back(ServerEvent::Forward { id, address, port });
                    }
                    "cancel-tcpip-forward" => {
                        let address = r.utf8()?.to_owned();
                        let port = r.u32()?;
                        self.events
                            .push_back(ServerEvent::CancelForward { address, port });
                        if want_reply {
                            self.global_replies
                                .push_back((id, Some(vec![msg::REQUEST_SUCCESS])));
                        }
                    }
                    _ => {
                        if want_reply {
                            self.global_replies
                                .push_back((id, Some(vec![msg::REQUEST_FAILURE])));
                        }
                    }
                }
            }
            msg::CHANNEL_OPEN_CONFIRMATION => {
                let id = ChannelId(r.u32()?);
                let (remote, window, max) = (r.u32()?, r.u32()?, r.u32()?);
                if !self.channels.confirmed(id, remote, window, max) {
                    return Err(WireError);
                }
                self.events
                    .push_back(ServerEvent::OpenConfirmed { channel: id });
            }
            msg::CHANNEL_OPEN_FAILURE => {
                let id = ChannelId(r.u32()?);
                match self.channels.get(id) {
                    Some(ch) if ch.phase == Phase::Requested => {
                        self.channels.remove(id);
                        self.events.push_back(ServerEvent::Closed { channel: id });
                    }
                    _ => return Err(WireError),
                }
            }
            msg::CHANNEL_WINDOW_ADJUST => {
                let id = ChannelId(r.u32()?);
                let n = r.u32()?;
                self.channels.adjust(id, n);
            }
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                let id = ChannelId(r.u32()?);
                if number == msg::CHANNEL_EXTENDED_DATA {
                    r.u32()?;
                }
                let data = r.string()?;
                if let Err(e) = self.channels.received(id, data.len()) {
                    self.fail(reason::PROTOCOL_ERROR, e.0);
                    return Ok(());
                }
                if number == msg::CHANNEL_DATA && !data.is_empty() {
                    self.events.push_back(ServerEvent::Data {
                        channel: id,
                        data: data_bytes(data),
                    });
                } else {
                    // Extended data from a client has no meaning here: consumed at once.
                    self.channels.release(id, data.len(), &mut self.packets);
                }
            }
            msg::CHANNEL_EOF => {
                let id = ChannelId(r.u32()?);
                let ch = self.channels.get_mut(id).ok_or(WireError)?;
                if !ch.eof_received {
                    ch.eof_received = true;
                    self.events.push_back(ServerEvent::Eof { channel: id });
                }
            }
            msg::CHANNEL_CLOSE => {
                let id = ChannelId(r.u32()?);
                let ch = self.channels.get_mut(id).ok_or(WireError)?;
                ch.close_received = true;
                if ch.phase == Phase::Offered {
                    ch.phase = Phase::Open;
                }
            }
            msg::CHANNEL_REQUEST => self.channel_request(r)?,
            msg::CHANNEL_SUCCESS
            | msg::CHANNEL_FAILURE
            | msg::REQUEST_SUCCESS
            | msg::REQUEST_FAILURE => {}
            _ => {
                let mut w = Writer::message(msg::UNIMPLEMENTED);
                w.u32(0);
                self.packets.push(w.finish());
            }
        }
        Ok(())
    }

    fn channel_open(&mut self, r: &mut Reader<'_>) -> Result<(), WireError> {
        let kind = r.utf8()?.to_owned();
        let (remote, window, max_packet) = (r.u32()?, r.u32()?, r.u32()?);
        let refuse = |this: &mut Self, code: u32, text: &str| {
            let mut w = Writer::message(msg::CHANNEL_OPEN_FAILURE);
            w.u32(remote).u32(code).string(text).string("");
            this.packets.push(w.finish());
        };
        if self.channels.len() >= self.config.max_channels {
            refuse(self, 4, "too many channels");
            return Ok(());
        }
        match kind.as_str() {
            "session" => {
                let id = self.channels.insert(
                    ChannelKind::Session,
                    Phase::Open,
                    remote,
                    window,
                    max_packet,
                );
                self.sessions.insert(
                    id,
                    Session {
                        pty: None,
                        env: Vec::new(),
                        started: false,
                        reply: false,
                    },
                );
                let mut w = Writer::message(msg::CHANNEL_OPEN_CONFIRMATION);
                w.u32(remote)
                    .u32(id.0)
                    .u32(LOCAL_WINDOW)
                    .u32(LOCAL_MAX_PACKET);
                self.packets.push(w.finish());
            }
            "direct-tcpip" => {
                let host = r.utf8()?.to_owned();
                let port = r.u32()?;
                if !self.key_options.allows_open(&host, port) {
                    refuse(self, 1, "forwarding to this address is not permitted");
                    return Ok(());
                }
                let id = self.channels.insert(
                    ChannelKind::Tcp,
                    Phase::Offered,
                    remote,
                    window,
                    max_packet,
                );
                self.events.push_back(ServerEvent::DirectTcpip {
                    channel: id,
                    host,
                    port,
                });
            }
            _ => refuse(self, 3, "unknown channel type"),
        }
        Ok(())
    }

    fn channel_request(&mut self, r: &mut Reader<'_>) -> Result<(), WireError> {
        let id = ChannelId(r.u32()?);
        let name = r.utf8()?.to_owned();
        let want_reply = r.bool()?;
        let remote = self.channels.get(id).ok_or(WireError)?.remote;
        let mut ok = false;
        let mut deferred = false;
        if let Some(session) = self.sessions.get_mut(&id) {
            match name.as_str() {
                "pty-req" if !session.started && !self.key_options.no_pty => {
                    let term = r.utf8()?.to_owned();
                    let (cols, rows, width, height) = (r.u32()?, r.u32()?, r.u32()?, r.u32()?);
                    let modes = decode_terminal_modes(r.string()?);
                    session.pty = Some(PtyRequest {
                        term,
                        cols,
                        rows,
                        width,
                        height,
                        modes,
                    });
                    ok = true;
                }
                "env" if !session.started => {
                    let key = r.utf8()?.to_owned();
                    let value = r.utf8()?.to_owned();
                    if session.env.len() < 64 && env_allowed(&self.config.accept_env, &key) {
                        session.env.push((key, value));
                        ok = true;
                    }
                }
                "exec" | "shell" | "subsystem" if !session.started => {
                    let mut request = match name.as_str() {
                        "exec" => {
                            SessionRequest::Exec(String::from_utf8_lossy(r.string()?).into_owned())
                        }
                        "shell" => SessionRequest::Shell,
                        _ => SessionRequest::Subsystem(r.utf8()?.to_owned()),
                    };
                    // A forced command runs instead; the client's is SSH_ORIGINAL_COMMAND.
                    if let Some(forced) = &self.key_options.command {
                        match request {
                            SessionRequest::Exec(original)
                            | SessionRequest::Subsystem(original) => {
                                session.env.push(("SSH_ORIGINAL_COMMAND".into(), original));
                            }
                            SessionRequest::Shell => {}
                        }
                        request = SessionRequest::Exec(forced.clone());
                    }
                    session.started = true;
                    session.reply = want_reply;
                    deferred = true;
                    self.events.push_back(ServerEvent::Start {
                        channel: id,
                        request,
                        pty: session.pty.clone(),
                        env: std::mem::take(&mut session.env),
                    });
                }
                "window-change" => {
                    let (cols, rows) = (r.u32()?, r.u32()?);
                    self.events.push_back(ServerEvent::WindowChange {
                        channel: id,
                        cols,
                        rows,
                    });
                    ok = true;
                }
                "signal" => {
                    let name = r.utf8()?.to_owned();
                    self.events
                        .push_back(ServerEvent::Signal { channel: id, name });
                    ok = true;
                }
                _ => {}
            }
        }
        if deferred {
            return Ok(());
        }
        if want_reply {
            let mut w = Writer::message(if ok {
                msg::CHANNEL_SUCCESS
            } else {
                msg::CHANNEL_FAILURE
            });
            w.u32(remote);
            self.packets.push(w.finish());
        }
        Ok(())
    }
}

fn env_allowed(patterns: &[String], key: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => p == key,
    })
}

impl Machine for ServerConn {
    type Event = ServerEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.transport.start(now);
        self.auth_deadline = Some(now + self.config.auth_timeout);
    }

    fn handle_input(&mut self, data: &[u8], now: Instant) {
        if self.close.is_some() {
            return;
        }
        self.transport.start(now);
        self.transport.input(data);
        self.process();
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
        self.close.get_or_insert(Close::Graceful);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.auth_deadline.is_some_and(|d| d <= now) && self.auth != AuthState::Done {
            self.fail(reason::PROTOCOL_ERROR, "authentication timed out");
            return;
        }
        self.transport.timeout(now);
        self.process();
    }

    fn handle_writable(&mut self, writable: bool, _now: Instant) {
        self.writable = writable;
        if writable {
            // While the transport was full `writable(channel)` said no for every channel,
            // also those opened meanwhile: each open channel with room gets `Writable` now.
            self.channels.block_open();
            self.flush();
        }
    }

    fn handle_shutdown(&mut self, _now: Instant) {
        self.fail(reason::BY_APPLICATION, "server shutting down");
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.close_polled && self.close != Some(Close::Write) {
            return None;
        }
        self.flush();
        self.transport.arm_rekey(now);
        self.transport.take_output()
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled {
            return None;
        }
        let close = self.close?;
        if self.transport.has_output() {
            return None;
        }
        self.close_polled = true;
        Some(close)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let t = self.transport.deadline();
        match (
            t,
            self.auth_deadline.filter(|_| self.auth != AuthState::Done),
        ) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn wants_input(&self) -> bool {
        self.close.is_none()
            && self.auth != AuthState::Checking
            && self.transport.pending_output() < 4 * HIGH_WATER
            && self.transport.buffered() < 2 * super::cipher::MAX_PACKET
    }
}

#[cfg(test)]
mod tests {
    use super::decode_terminal_modes;

    #[test]
    fn terminal_modes_stop_at_end_or_an_opcode_of_160_and_above() {
        // VINTR=3, ECHO=0, an unknown opcode 99 kept (the application ignores it),
        // ISPEED=9600, then TTY_OP_END and bytes after it.
        let mut encoded = Vec::new();
        for (op, v) in [(1u8, 3u32), (53, 0), (99, 7), (128, 9600)] {
            encoded.push(op);
            encoded.extend_from_slice(&v.to_be_bytes());
        }
        encoded.extend_from_slice(&[0, 1, 0, 0, 0, 9]);
        let modes = decode_terminal_modes(&encoded);
        assert_eq!(modes, vec![(1, 3), (53, 0), (99, 7), (128, 9600)]);
        // Opcode 160 has no defined argument: the list ends there.
        assert_eq!(
            decode_terminal_modes(&[1, 0, 0, 0, 3, 160, 1, 0, 0, 0, 4]),
            vec![(1, 3)]
        );
        // Truncated: what came before is kept.
        assert_eq!(decode_terminal_modes(&[1, 0, 0, 0, 3, 2, 0]), vec![(1, 3)]);
        assert!(decode_terminal_modes(&[]).is_empty());
        // Bounded.
        let many: Vec<u8> = (0..10_000).flat_map(|_| [1u8, 0, 0, 0, 3]).collect();
        assert_eq!(decode_terminal_modes(&many).len(), 256);
    }
}
