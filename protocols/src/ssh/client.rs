//! The SSH client connection machine: the transport with the host key checked by the
//! configured [`HostKeyCheck`] (a `known_hosts` file: [`known_hosts_check`]), publickey
//! authentication with an Ed25519 key, session channels (`exec`, streaming output, exit
//! status) and `direct-tcpip` channels (a forwarded connection).
//!
//! Calls made before authentication completes are queued and sent after it.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::channel::{
    ChannelId, ChannelKind, ChannelTable, LOCAL_MAX_PACKET, LOCAL_WINDOW, Phase, data_bytes,
};
use super::keys::{HostKeyStatus, KnownHosts, SigningKey};
use super::transport::{HostKeyCheck, Role, Transport, TransportConfig};
use super::wire::{Reader, WireError, Writer, msg, reason};
use crate::kit::{Close, Machine};

/// Client settings.
#[derive(Clone)]
pub struct ClientConfig {
    /// Transport settings.
    pub transport: TransportConfig,
    /// The user to log in as.
    pub user: String,
    /// The key to authenticate with.
    pub key: Arc<SigningKey>,
    /// Accepts or refuses the server's host key.
    pub host_key_check: HostKeyCheck,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A host key check against a `known_hosts` file's entries for `host` on `port`: only a
/// listed key is accepted (unknown hosts are refused, changed keys too).
#[must_use]
pub fn known_hosts_check(known: KnownHosts, host: String, port: u16) -> HostKeyCheck {
    Arc::new(move |key| match known.check(&host, port, key.blob()) {
        HostKeyStatus::Known => Ok(()),
        HostKeyStatus::Unknown => Err(format!("host key for {host}:{port} is not in known_hosts")),
        HostKeyStatus::Changed => Err(format!(
            "host key for {host}:{port} CHANGED (known_hosts lists another)"
        )),
        HostKeyStatus::Revoked => Err(format!("host key for {host}:{port} is revoked")),
    })
}

/// What the client machine hands its application.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Logged in; channels opened before are being opened now.
    Authenticated,
    /// The server refused the key.
    AuthFailed,
    /// A channel opened.
    Opened {
        /// The channel.
        channel: ChannelId,
    },
    /// A request (`exec`) was accepted or refused.
    RequestResult {
        /// The channel.
        channel: ChannelId,
        /// Accepted.
        ok: bool,
    },
    /// Data (`stderr`: extended data); call [`ClientConn::release`] once consumed.
    Data {
        /// The channel.
        channel: ChannelId,
        /// The bytes.
        data: Bytes,
        /// From stderr.
        stderr: bool,
    },
    /// The server sends no more data on this channel.
    Eof {
        /// The channel.
        channel: ChannelId,
    },
    /// The command's exit status.
    ExitStatus {
        /// The channel.
        channel: ChannelId,
        /// The code.
        code: u32,
    },
    /// The command was ended by a signal (name without `SIG`).
    ExitSignal {
        /// The channel.
        channel: ChannelId,
        /// The signal.
        signal: String,
    },
    /// The channel has room again.
    Writable {
        /// The channel.
        channel: ChannelId,
    },
    /// The channel is closed (or its open was refused).
    Closed {
        /// The channel.
        channel: ChannelId,
    },
    /// The connection ended: why.
    Disconnected {
        /// The reason.
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthState {
    Transport,
    WaitService,
    WaitResult,
    Done,
    Failed,
}

/// One SSH client connection.
pub struct ClientConn {
    config: ClientConfig,
    transport: Transport,
    auth: AuthState,
    channels: ChannelTable,
    /// Channel opens queued until authenticated.
    queued_opens: Vec<Vec<u8>>,
    /// Requests queued per channel until it is open.
    queued_requests: HashMap<ChannelId, Vec<(String, Vec<u8>)>>,
    /// Channels with a request answer outstanding, in order.
    awaiting: VecDeque<ChannelId>,
    events: VecDeque<ClientEvent>,
    packets: Vec<Vec<u8>>,
    writable: bool,
    close: Option<Close>,
    close_polled: bool,
    disconnected: bool,
}

const HIGH_WATER: usize = 1 << 20;

impl ClientConn {
    /// A new connection.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        let transport = Transport::new(
            Role::Client(Arc::clone(&config.host_key_check)),
            config.transport.clone(),
        );
        Self {
            config,
            transport,
            auth: AuthState::Transport,
            channels: ChannelTable::default(),
            queued_opens: Vec::new(),
            queued_requests: HashMap::new(),
            awaiting: VecDeque::new(),
            events: VecDeque::new(),
            packets: Vec::new(),
            writable: true,
            close: None,
            close_polled: false,
            disconnected: false,
        }
    }

    /// Sends `payload` as one message, unchecked: for fuzzing the peer's state machine
    /// with messages that travel encrypted. Not for applications.
    #[doc(hidden)]
    pub fn send_raw_payload(&mut self, payload: Vec<u8>) {
        self.flush();
        self.transport.send(payload);
    }

    /// Why the connection failed, if it did.
    #[must_use]
    pub fn error(&self) -> Option<&str> {
        self.transport.error()
    }

    /// Whether strict KEX is on.
    #[must_use]
    pub fn is_strict_kex(&self) -> bool {
        self.transport.is_strict()
    }

    /// The host key the server proved (after the key exchange).
    #[must_use]
    pub fn host_key(&self) -> Option<&super::keys::PublicKey> {
        self.transport.peer_host_key()
    }

    /// What channel `channel` carries (`None` once closed).
    #[must_use]
    pub fn channel_kind(&self, channel: ChannelId) -> Option<ChannelKind> {
        self.channels.kind(channel)
    }

    /// Re-keys completed.
    #[must_use]
    pub fn rekeys(&self) -> u64 {
        self.transport.rekeys()
    }

    fn open(&mut self, kind: ChannelKind, extra: &[u8], name: &str) -> ChannelId {
        let id = self.channels.insert(kind, Phase::Requested, 0, 0, 0);
        let mut w = Writer::message(msg::CHANNEL_OPEN);
        w.string(name)
            .u32(id.0)
            .u32(LOCAL_WINDOW)
            .u32(LOCAL_MAX_PACKET)
            .raw(extra);
        if self.auth == AuthState::Done {
            self.packets.push(w.finish());
        } else {
            self.queued_opens.push(w.finish());
        }
        self.flush();
        id
    }

    /// Opens a session channel ([`ClientEvent::Opened`] follows).
    pub fn open_session(&mut self) -> ChannelId {
        self.open(ChannelKind::Session, &[], "session")
    }

    /// Opens a `direct-tcpip` channel to `host:port` through the server.
    pub fn open_direct_tcpip(&mut self, host: &str, port: u32) -> ChannelId {
        let mut w = Writer::new();
        w.string(host).u32(port).string("127.0.0.1").u32(0);
        self.open(ChannelKind::Tcp, w.as_slice(), "direct-tcpip")
    }

    /// Runs `command` on a session channel ([`ClientEvent::RequestResult`] follows).
    pub fn exec(&mut self, channel: ChannelId, command: &str) {
        let mut w = Writer::new();
        w.string(command);
        self.request(channel, "exec", w.finish());
    }

    /// Asks for a terminal on a session channel (before `exec` or `shell`).
    pub fn request_pty(&mut self, channel: ChannelId, term: &str, cols: u32, rows: u32) {
        let mut w = Writer::new();
        w.string(term)
            .u32(cols)
            .u32(rows)
            .u32(0)
            .u32(0)
            .string([0u8]);
        self.request(channel, "pty-req", w.finish());
    }

    /// Starts subsystem `name` (`sftp`) on a session channel.
    pub fn subsystem(&mut self, channel: ChannelId, name: &str) {
        let mut w = Writer::new();
        w.string(name);
        self.request(channel, "subsystem", w.finish());
    }

    /// Starts the user's shell on a session channel.
    pub fn shell(&mut self, channel: ChannelId) {
        self.request(channel, "shell", Vec::new());
    }

    /// Tells the server the terminal's new size (no answer).
    pub fn window_change(&mut self, channel: ChannelId, cols: u32, rows: u32) {
        let mut w = Writer::new();
        w.u32(cols).u32(rows).u32(0).u32(0);
        self.notify(channel, "window-change", w.as_slice());
    }

    /// Asks the server to signal the process (`name` without `SIG`; no answer).
    pub fn signal(&mut self, channel: ChannelId, name: &str) {
        let mut w = Writer::new();
        w.string(name);
        self.notify(channel, "signal", w.as_slice());
    }

    /// A request without an answer, on an open channel (ignored otherwise).
    fn notify(&mut self, channel: ChannelId, name: &str, body: &[u8]) {
        if let Some(ch) = self.channels.get(channel)
            && ch.phase == Phase::Open
        {
            let mut w = Writer::message(msg::CHANNEL_REQUEST);
            w.u32(ch.remote).string(name).bool(false).raw(body);
            self.packets.push(w.finish());
            self.flush();
        }
    }

    fn request(&mut self, channel: ChannelId, name: &str, body: Vec<u8>) {
        match self.channels.get(channel) {
            Some(ch) if ch.phase == Phase::Open => {
                let mut w = Writer::message(msg::CHANNEL_REQUEST);
                w.u32(ch.remote).string(name).bool(true).raw(&body);
                self.packets.push(w.finish());
                self.awaiting.push_back(channel);
                self.flush();
            }
            Some(_) => self
                .queued_requests
                .entry(channel)
                .or_default()
                .push((name.to_owned(), body)),
            None => {}
        }
    }

    /// Sends data on a channel. Check [`ClientConn::writable`].
    pub fn send_data(&mut self, channel: ChannelId, data: &[u8]) {
        self.channels.write(channel, data, false);
        self.flush();
    }

    /// Whether a channel takes more data now.
    #[must_use]
    pub fn writable(&self, channel: ChannelId) -> bool {
        self.channels.writable(channel) && self.writable
    }

    /// The application consumed `n` bytes of a channel's data.
    pub fn release(&mut self, channel: ChannelId, n: usize) {
        self.channels.release(channel, n, &mut self.packets);
        self.flush();
    }

    /// Sends EOF after the data queued.
    pub fn send_eof(&mut self, channel: ChannelId) {
        self.channels.want_eof(channel);
        self.flush();
    }

    /// Closes a channel after what is queued.
    pub fn close_channel(&mut self, channel: ChannelId) {
        self.channels.want_close(channel);
        self.flush();
    }

    /// Ends the connection (DISCONNECT, then close).
    pub fn disconnect(&mut self) {
        self.flush();
        self.transport.disconnect(reason::BY_APPLICATION, "bye");
        self.close.get_or_insert(Close::Graceful);
    }

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
            for channel in &closed {
                self.queued_requests.remove(channel);
            }
            // After Disconnected the application hears nothing more about channels.
            if !self.disconnected {
                for channel in writable {
                    self.events.push_back(ClientEvent::Writable { channel });
                }
                for channel in closed {
                    self.events.push_back(ClientEvent::Closed { channel });
                }
            }
        }
    }

    fn fail(&mut self, text: &str) {
        self.flush();
        self.transport.disconnect(reason::PROTOCOL_ERROR, text);
        self.close.get_or_insert(Close::Graceful);
    }

    fn process(&mut self) {
        while self.close.is_none() {
            if self.auth == AuthState::Transport && self.transport.is_ready() {
                let mut w = Writer::message(msg::SERVICE_REQUEST);
                w.string("ssh-userauth");
                self.packets.push(w.finish());
                self.auth = AuthState::WaitService;
            }
            let Some(payload) = self.transport.poll_payload() else {
                break;
            };
            if self.handle(&payload).is_err() {
                self.fail("malformed or unexpected message");
            }
        }
        if self.auth == AuthState::Transport && self.transport.is_ready() && self.close.is_none() {
            let mut w = Writer::message(msg::SERVICE_REQUEST);
            w.string("ssh-userauth");
            self.packets.push(w.finish());
            self.auth = AuthState::WaitService;
        }
        if let Some(error) = self.transport.error() {
            if !self.disconnected {
                self.disconnected = true;
                self.events.push_back(ClientEvent::Disconnected {
                    reason: error.to_owned(),
                });
            }
            self.close.get_or_insert(Close::Graceful);
        }
        self.flush();
    }

    fn userauth_request(&mut self) {
        let key = &self.config.key;
        let blob = key.public_blob();
        let Some(session_id) = self.transport.session_id() else {
            return;
        };
        let mut signed = Writer::new();
        signed
            .string(session_id)
            .u8(msg::USERAUTH_REQUEST)
            .string(&self.config.user)
            .string("ssh-connection");
        signed
            .string("publickey")
            .bool(true)
            .string(key.algorithm())
            .string(&blob);
        let Ok(signature) = key.sign_as(key.algorithm(), signed.as_slice()) else {
            self.fail("signing with the user key failed");
            return;
        };
        let mut w = Writer::message(msg::USERAUTH_REQUEST);
        w.string(&self.config.user)
            .string("ssh-connection")
            .string("publickey")
            .bool(true);
        w.string(key.algorithm()).string(&blob).string(&signature);
        self.packets.push(w.finish());
    }

    fn handle(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let mut r = Reader::new(payload);
        let number = r.u8()?;
        match (self.auth, number) {
            (_, msg::EXT_INFO | msg::USERAUTH_BANNER) => {}
            (AuthState::WaitService, msg::SERVICE_ACCEPT) => {
                self.userauth_request();
                self.auth = AuthState::WaitResult;
            }
            (AuthState::WaitResult, msg::USERAUTH_SUCCESS) => {
                self.auth = AuthState::Done;
                self.events.push_back(ClientEvent::Authenticated);
                let opens = std::mem::take(&mut self.queued_opens);
                self.packets.extend(opens);
            }
            (AuthState::WaitResult, msg::USERAUTH_FAILURE) => {
                self.auth = AuthState::Failed;
                self.events.push_back(ClientEvent::AuthFailed);
                self.transport.disconnect(
                    reason::NO_MORE_AUTH_METHODS_AVAILABLE,
                    "authentication failed",
                );
                self.close.get_or_insert(Close::Graceful);
            }
            (AuthState::Done, _) => self.connection(number, &mut r)?,
            _ => return Err(WireError),
        }
        Ok(())
    }

    fn connection(&mut self, number: u8, r: &mut Reader<'_>) -> Result<(), WireError> {
        match number {
            msg::CHANNEL_OPEN_CONFIRMATION => {
                let id = ChannelId(r.u32()?);
                let (remote, window, max) = (r.u32()?, r.u32()?, r.u32()?);
                if !self.channels.confirmed(id, remote, window, max) {
                    return Err(WireError);
                }
                self.events.push_back(ClientEvent::Opened { channel: id });
                for (name, body) in self.queued_requests.remove(&id).unwrap_or_default() {
                    self.request(id, &name, body);
                }
            }
            msg::CHANNEL_OPEN_FAILURE => {
                let id = ChannelId(r.u32()?);
                if self
                    .channels
                    .get(id)
                    .is_none_or(|c| c.phase != Phase::Requested)
                {
                    return Err(WireError);
                }
                self.channels.remove(id);
                self.events.push_back(ClientEvent::Closed { channel: id });
            }
            msg::CHANNEL_WINDOW_ADJUST => {
                let id = ChannelId(r.u32()?);
                let n = r.u32()?;
                self.channels.adjust(id, n);
            }
            msg::CHANNEL_DATA | msg::CHANNEL_EXTENDED_DATA => {
                let id = ChannelId(r.u32()?);
                let stderr = number == msg::CHANNEL_EXTENDED_DATA;
                if stderr {
                    r.u32()?;
                }
                let data = r.string()?;
                if let Err(e) = self.channels.received(id, data.len()) {
                    self.fail(e.0);
                    return Ok(());
                }
                if !data.is_empty() {
                    self.events.push_back(ClientEvent::Data {
                        channel: id,
                        data: data_bytes(data),
                        stderr,
                    });
                }
            }
            msg::CHANNEL_EOF => {
                let id = ChannelId(r.u32()?);
                let ch = self.channels.get_mut(id).ok_or(WireError)?;
                ch.eof_received = true;
                self.events.push_back(ClientEvent::Eof { channel: id });
            }
            msg::CHANNEL_CLOSE => {
                let id = ChannelId(r.u32()?);
                self.channels.get_mut(id).ok_or(WireError)?.close_received = true;
            }
            msg::CHANNEL_REQUEST => {
                let id = ChannelId(r.u32()?);
                let name = r.utf8()?;
                let want_reply = r.bool()?;
                let remote = self.channels.get(id).ok_or(WireError)?.remote;
                match name {
                    "exit-status" => {
                        let code = r.u32()?;
                        self.events
                            .push_back(ClientEvent::ExitStatus { channel: id, code });
                    }
                    "exit-signal" => {
                        let signal = r.utf8()?.to_owned();
                        self.events.push_back(ClientEvent::ExitSignal {
                            channel: id,
                            signal,
                        });
                    }
                    _ => {}
                }
                if want_reply {
                    let mut w = Writer::message(msg::CHANNEL_FAILURE);
                    w.u32(remote);
                    self.packets.push(w.finish());
                }
            }
            msg::CHANNEL_SUCCESS | msg::CHANNEL_FAILURE => {
                let id = ChannelId(r.u32()?);
                if self.awaiting.front() == Some(&id) {
                    self.awaiting.pop_front();
                    let ok = number == msg::CHANNEL_SUCCESS;
                    self.events
                        .push_back(ClientEvent::RequestResult { channel: id, ok });
                }
            }
            msg::GLOBAL_REQUEST => {
                r.utf8()?;
                if r.bool()? {
                    self.packets.push(vec![msg::REQUEST_FAILURE]);
                }
            }
            msg::CHANNEL_OPEN => {
                r.utf8()?;
                let remote = r.u32()?;
                let mut w = Writer::message(msg::CHANNEL_OPEN_FAILURE);
                w.u32(remote).u32(1).string("not accepted").string("");
                self.packets.push(w.finish());
            }
            msg::REQUEST_SUCCESS | msg::REQUEST_FAILURE => {}
            _ => {
                let mut w = Writer::message(msg::UNIMPLEMENTED);
                w.u32(0);
                self.packets.push(w.finish());
            }
        }
        Ok(())
    }
}

impl Machine for ClientConn {
    type Event = ClientEvent;

    fn handle_connected(&mut self, now: Instant) {
        self.transport.start(now);
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
        if !self.disconnected {
            self.disconnected = true;
            self.events.push_back(ClientEvent::Disconnected {
                reason: "connection closed by the server".into(),
            });
        }
        self.close.get_or_insert(Close::Graceful);
    }

    fn handle_timeout(&mut self, now: Instant) {
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

    fn handle_lost(&mut self, _now: Instant) {
        if !self.disconnected {
            self.disconnected = true;
            self.events.push_back(ClientEvent::Disconnected {
                reason: "connection lost".into(),
            });
        }
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<Bytes> {
        if self.close_polled {
            return None;
        }
        self.flush();
        self.transport.arm_rekey(now);
        self.transport.take_output()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
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
        self.transport.deadline()
    }

    fn wants_input(&self) -> bool {
        self.close.is_none()
            && self.transport.pending_output() < 4 * HIGH_WATER
            && self.transport.buffered() < 2 * super::cipher::MAX_PACKET
    }
}
