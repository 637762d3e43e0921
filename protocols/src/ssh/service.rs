//! The SSH server on the engine: [`SshService`] makes one [`Adapter`] per connection
//! running a [`ServerConn`] with [`SshApp`], which starts processes (`exec`, `shell` with
//! a PTY, the `sftp` subsystem as a configured command), checks passwords on the thread
//! pool with the per-peer failure delay, and connects `direct-tcpip` channels.
//!
//! Flow control: a process's output pauses while its channel is over its high water
//! mark (the peer's window closed, or the socket is full) and resumes at
//! [`ServerEvent::Writable`]; client data is released (window reopened) once the
//! process's stdin or the TCP connection took it.
//!
//! Commands run as the server's own user (no setuid), in its working directory.

use std::collections::HashMap;

use bytes::Bytes;
use ringwork::{
    ConnId, Context, ExitStatus, LostReason, ProcessCommand, ProcessContext, ProcessId,
    ProcessProtocol, Protocol, TerminalMode, WindowSize,
};

use super::channel::ChannelId;
use super::forward::{self, Forward, ForwardedRelay, SharedSlot};
use super::server::{ServerConfig, ServerConn, ServerEvent, SessionRequest};
use crate::cred::{CredError, Credentials, SharedChecker, check_deferred};
use crate::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// The server's settings beyond the machine's.
#[derive(Clone)]
pub struct SshService {
    /// The machine's configuration.
    pub config: ServerConfig,
    /// Password checker (`--users`); password authentication is off without one.
    pub checker: Option<SharedChecker>,
    /// The `sftp` subsystem's command (`<exe> sftp-server --root DIR`).
    pub sftp_command: Option<ProcessCommand>,
    /// Allow `direct-tcpip` (ssh -L) and `tcpip-forward` (ssh -R).
    pub forwarding: bool,
}

impl std::fmt::Debug for SshService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SshService")
            .field("host_keys", &self.config.host_keys)
            .field("passwords", &self.checker.is_some())
            .field("sftp", &self.sftp_command.is_some())
            .finish_non_exhaustive()
    }
}

impl SshService {
    /// A connection's protocol.
    #[must_use]
    pub fn protocol(&self) -> Adapter<ServerConn, SshApp> {
        let mut config = self.config.clone();
        config.password_auth = self.checker.is_some();
        Adapter::new(
            ServerConn::new(config),
            SshApp {
                service: self.clone(),
                peer: None,
                processes: HashMap::new(),
                tcp: HashMap::new(),
                unreleased: HashMap::new(),
                half_closed: std::collections::HashSet::new(),
                forwards: Vec::new(),
                opening: HashMap::new(),
            },
        )
    }
}

/// What a connection's helpers (processes, TCP connections, password checks) post back.
#[derive(Debug)]
pub enum SshCommand {
    /// A password check's answer.
    Password(bool),
    /// Output of a process or TCP connection for a channel.
    Output {
        /// The channel.
        channel: ChannelId,
        /// The bytes.
        data: Bytes,
        /// From stderr.
        stderr: bool,
    },
    /// The process or connection took what it was given: release the window.
    Drained {
        /// The channel.
        channel: ChannelId,
    },
    /// The process or connection will send nothing more.
    Eof {
        /// The channel.
        channel: ChannelId,
    },
    /// The process ended (after its output): the status, then the channel closes.
    Ended {
        /// The channel.
        channel: ChannelId,
        /// How it ended (`None` for a TCP connection).
        status: Option<ExitStatus>,
    },
    /// The `direct-tcpip` connection is up (or failed).
    Connected {
        /// The channel.
        channel: ChannelId,
        /// The connection, or `None` when connecting failed.
        conn: Option<ConnId>,
    },
    /// A `tcpip-forward` listener is bound (or could not be).
    Listening {
        /// The request, for the answer.
        id: u64,
        /// The address string the client sent.
        address: String,
        /// The port the client asked for.
        requested: u32,
        /// Where it listens, or why it does not.
        bound: Result<std::net::SocketAddr, String>,
    },
    /// A forward's listener accepted a connection: open a `forwarded-tcpip` channel.
    Accepted {
        /// The forward's address string.
        address: String,
        /// The forward's bound port.
        port: u32,
        /// The connection (paused until its channel is confirmed).
        conn: ConnId,
        /// Who connected.
        origin: std::net::SocketAddr,
        /// What the connection shares with this one until then.
        slot: SharedSlot,
    },
}

/// The application of one SSH connection.
pub struct SshApp {
    service: SshService,
    peer: Option<std::net::IpAddr>,
    processes: HashMap<ChannelId, ProcessId>,
    tcp: HashMap<ChannelId, ConnId>,
    /// Client bytes handed on but not yet released to the window.
    unreleased: HashMap<ChannelId, usize>,
    /// TCP channels with one direction finished (client EOF or the TCP peer's EOF): the
    /// second end closes the connection.
    half_closed: std::collections::HashSet<ChannelId>,
    /// This connection's remote forwards (`ssh -R`), closed with it.
    forwards: Vec<Forward>,
    /// `forwarded-tcpip` channels asked of the client and not yet confirmed.
    opening: HashMap<ChannelId, (ConnId, SharedSlot)>,
}

impl SshApp {
    fn start(
        &mut self,
        machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<SshCommand>,
        channel: ChannelId,
        (request, pty, env): StartRequest,
    ) -> bool {
        let shell = std::env::var("SHELL").unwrap_or_else(|_| "/bin/sh".into());
        let mut command = match request {
            SessionRequest::Exec(line) => ProcessCommand::new(&shell).arg("-c").arg(line),
            SessionRequest::Shell => ProcessCommand::new(&shell),
            SessionRequest::Subsystem(name) => match (name.as_str(), &self.service.sftp_command) {
                ("sftp", Some(command)) => command.clone(),
                _ => return false,
            },
        };
        for (key, value) in env {
            command = command.env(key, value);
        }
        command = command
            .env("USER", machine.user())
            .env("LOGNAME", machine.user());
        if let Some(pty) = pty {
            let size = WindowSize::new(clamp16(pty.rows), clamp16(pty.cols));
            command = command
                .pty(size)
                .pty_modes(terminal_modes(&pty.modes))
                .env("TERM", pty.term);
        }
        let protocol = ChildOutput {
            channel,
            sender: mailbox.sender(),
            pending_in: false,
        };
        match ctx.spawn_process(&command, protocol) {
            Ok(id) => {
                self.processes.insert(channel, id);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "ssh: spawn failed");
                false
            }
        }
    }

    fn direct_tcpip(
        &mut self,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<SshCommand>,
        channel: ChannelId,
        host: &str,
        port: u32,
    ) -> bool {
        let Ok(port) = u16::try_from(port) else {
            return false;
        };
        let relay = TcpRelay {
            channel,
            sender: mailbox.sender(),
            connected: false,
        };
        // Names resolved by the engine's resolver, addresses raced (Happy Eyeballs); a
        // failure comes to the relay as `connection_lost` before it connected.
        let options = ringwork::ConnectOptions::new().timeout(CONNECT_TIMEOUT);
        ctx.connect_host(host, port, relay, options).is_ok()
    }

    /// Data from the client for `channel`, handed to its process or TCP connection.
    fn deliver(
        &mut self,
        machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        channel: ChannelId,
        data: &[u8],
    ) {
        let n = data.len();
        if let Some(&id) = self.processes.get(&channel) {
            let mut process = ctx.process(id);
            process.write_stdin(data);
            if process.is_writable() {
                machine.release(channel, n);
            } else {
                *self.unreleased.entry(channel).or_default() += n;
            }
        } else if let Some(&id) = self.tcp.get(&channel) {
            let mut conn = ctx.other(id);
            conn.write(data);
            if conn.is_writable() {
                machine.release(channel, n);
            } else {
                *self.unreleased.entry(channel).or_default() += n;
            }
        } else {
            machine.release(channel, n);
        }
    }

    fn pause(&mut self, ctx: &mut Context<'_>, channel: ChannelId, pause: bool) {
        if let Some(&id) = self.processes.get(&channel) {
            let mut p = ctx.process(id);
            if pause {
                p.pause_reading()
            } else {
                p.resume_reading()
            }
        } else if let Some(&id) = self.tcp.get(&channel) {
            let mut c = ctx.other(id);
            if pause {
                c.pause_reading()
            } else {
                c.resume_reading()
            }
        }
    }

    fn release_all(&mut self, ctx: &mut Context<'_>) {
        for (_, id) in self.processes.drain() {
            let _ = ctx.process(id).kill();
        }
        for (_, id) in self.tcp.drain() {
            ctx.other(id).close();
        }
        for (_, (id, _)) in self.opening.drain() {
            ctx.other(id).close();
        }
        for forward in self.forwards.drain(..) {
            tracing::info!(bound = %forward.bound, "ssh: remote forward closed");
            forward::close_listener(ctx, forward.bound);
        }
    }

    /// `tcpip-forward`: binds a loopback listener on this core (in a job of the core: a
    /// callback cannot listen) whose connections become `forwarded-tcpip` channels; the
    /// answer comes back as [`SshCommand::Listening`].
    fn listen_forward(
        &mut self,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<SshCommand>,
        (id, address, port): (u64, String, u32),
    ) -> bool {
        if !self.service.forwarding || self.forwards.len() >= MAX_FORWARDS {
            return false;
        }
        let Some(addr) = forward::bind_address(&address, port) else {
            return false;
        };
        let sender = mailbox.sender();
        ctx.handle().run(move |reactor| {
            let relay_sender = sender.clone();
            let relay_address = address.clone();
            // Off: a port another listener holds (another SSH connection's forward) is
            // refused, never shared.
            let options = ringwork::ListenerOptions::default().reuse_port(ringwork::ReusePort::Off);
            let bound = reactor
                .listen_with(&addr.into(), &options, move || {
                    ForwardedRelay::new(relay_sender.clone(), relay_address.clone())
                })
                .map_err(|e| e.to_string())
                .and_then(|a| a.as_socket().ok_or_else(|| "no IP address".to_owned()));
            let answer = SshCommand::Listening {
                id,
                address,
                requested: port,
                bound: bound.clone(),
            };
            // The SSH connection ended meanwhile: its listener goes too.
            if sender.post(answer).is_err()
                && let Ok(bound) = bound
            {
                reactor.close_listener(&bound.into());
            }
        });
        true
    }

    /// A connection accepted on a forward: asks the client for a `forwarded-tcpip`
    /// channel (the connection waits, paused, for the answer).
    fn open_forwarded(
        &mut self,
        machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        (address, port, conn, origin, slot): (
            String,
            u32,
            ConnId,
            std::net::SocketAddr,
            SharedSlot,
        ),
    ) {
        let origin_ip = origin.ip().to_string();
        match machine.open_forwarded(&address, port, &origin_ip, u32::from(origin.port())) {
            Some(channel) => {
                self.opening.insert(channel, (conn, slot));
            }
            None => ctx.other(conn).close(),
        }
    }

    /// The client accepted a `forwarded-tcpip` channel: the connection is relayed from now
    /// on (what it read meanwhile first).
    fn forwarded_confirmed(
        &mut self,
        machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        channel: ChannelId,
    ) {
        let Some((conn, slot)) = self.opening.remove(&channel) else {
            return;
        };
        let (held, eof, lost) = {
            let mut slot = slot.borrow_mut();
            slot.channel = Some(channel);
            (std::mem::take(&mut slot.held), slot.eof, slot.lost)
        };
        if !held.is_empty() {
            machine.send_data(channel, &held, false);
        }
        if lost {
            machine.send_eof(channel);
            machine.close_channel(channel);
            return;
        }
        self.tcp.insert(channel, conn);
        if eof {
            machine.send_eof(channel);
            self.half_closed.insert(channel);
        }
        if machine.writable(channel) {
            ctx.other(conn).resume_reading();
        }
    }
}

/// Remote forwards (`ssh -R`) one connection may hold.
const MAX_FORWARDS: usize = 16;

/// How long a `direct-tcpip` connect may take.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a session asked to run, with its terminal and environment.
type StartRequest = (
    SessionRequest,
    Option<super::server::PtyRequest>,
    Vec<(String, String)>,
);

fn clamp16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "TERM" => 15,
        _ => return None,
    })
}

fn signal_name(n: i32) -> String {
    match n {
        1 => "HUP",
        2 => "INT",
        3 => "QUIT",
        6 => "ABRT",
        9 => "KILL",
        11 => "SEGV",
        13 => "PIPE",
        14 => "ALRM",
        15 => "TERM",
        10 => "USR1",
        12 => "USR2",
        _ => return format!("{n}"),
    }
    .to_owned()
}

impl Application<ServerConn> for SshApp {
    type Command = SshCommand;
    type Status = ();

    fn connected(
        &mut self,
        machine: &mut ServerConn,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<SshCommand>,
    ) {
        self.peer = ctx
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip());
        machine.set_peer_address(self.peer);
    }

    fn event(
        &mut self,
        machine: &mut ServerConn,
        event: ServerEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<SshCommand>,
    ) {
        match event {
            ServerEvent::Password { user, password } => {
                let Some(checker) = self.service.checker.clone() else {
                    machine.password_result(false);
                    return;
                };
                let sender = mailbox.sender();
                let handle = ctx.handle();
                let peer = self.peer;
                let credentials = Credentials::UsernamePassword {
                    username: user,
                    password,
                };
                match check_deferred(ctx.thread_pool(), checker, credentials) {
                    Err(_) => machine.password_result(false),
                    Ok(pending) => {
                        ctx.handle().spawn_local(async move {
                            let result = pending
                                .await
                                .unwrap_or_else(|e| Err(CredError::Unavailable(e.to_string())));
                            let delay =
                                crate::mail::failure_delay(peer, result.as_ref().map(|_| ()));
                            if !delay.is_zero() {
                                let _ = handle.sleep(delay).await;
                            }
                            let _ = sender.post(SshCommand::Password(result.is_ok()));
                        });
                    }
                }
            }
            ServerEvent::Authenticated { user, method } => {
                let options = machine.key_options();
                tracing::info!(
                    user,
                    method,
                    peer = ?self.peer,
                    forced_command = options.command.as_deref(),
                    no_pty = options.no_pty,
                    no_port_forwarding = options.no_port_forwarding,
                    "ssh: authenticated"
                );
            }
            ServerEvent::Start {
                channel,
                request,
                pty,
                env,
            } => {
                let ok = self.start(machine, ctx, mailbox, channel, (request, pty, env));
                machine.start_result(channel, ok);
            }
            ServerEvent::Data { channel, data } => self.deliver(machine, ctx, channel, &data),
            ServerEvent::Eof { channel } => {
                if let Some(&id) = self.processes.get(&channel) {
                    ctx.process(id).close_stdin();
                } else if let Some(&id) = self.tcp.get(&channel) {
                    if self.half_closed.insert(channel) {
                        ctx.other(id).shutdown_write();
                    } else {
                        ctx.other(id).close();
                    }
                }
            }
            ServerEvent::WindowChange {
                channel,
                cols,
                rows,
            } => {
                if let Some(&id) = self.processes.get(&channel) {
                    let _ = ctx
                        .process(id)
                        .set_window_size(WindowSize::new(clamp16(rows), clamp16(cols)));
                }
            }
            ServerEvent::Signal { channel, name } => {
                if let (Some(&id), Some(n)) = (self.processes.get(&channel), signal_number(&name)) {
                    let _ = ctx.process(id).signal(n);
                }
            }
            ServerEvent::Writable { channel } => self.pause(ctx, channel, false),
            ServerEvent::Closed { channel } => {
                self.unreleased.remove(&channel);
                self.half_closed.remove(&channel);
                if let Some(id) = self.processes.remove(&channel) {
                    let mut p = ctx.process(id);
                    if p.exit_status().is_none() {
                        let _ = p.kill();
                    }
                }
                if let Some(id) = self.tcp.remove(&channel) {
                    ctx.other(id).close();
                }
                // A `forwarded-tcpip` channel the client refused.
                if let Some((id, _)) = self.opening.remove(&channel) {
                    ctx.other(id).close();
                }
            }
            ServerEvent::DirectTcpip {
                channel,
                host,
                port,
            } => {
                if !self.service.forwarding
                    || !self.direct_tcpip(ctx, mailbox, channel, &host, port)
                {
                    machine.open_result(channel, false);
                }
            }
            ServerEvent::Forward { id, address, port } => {
                if !self.listen_forward(ctx, mailbox, (id, address, port)) {
                    machine.forward_result(id, None, port);
                }
            }
            ServerEvent::CancelForward { address, port } => {
                if let Some(index) = self.forwards.iter().position(|f| f.matches(&address, port)) {
                    let forward = self.forwards.swap_remove(index);
                    tracing::info!(bound = %forward.bound, "ssh: remote forward cancelled");
                    forward::close_listener(ctx, forward.bound);
                }
            }
            ServerEvent::OpenConfirmed { channel } => {
                self.forwarded_confirmed(machine, ctx, channel);
            }
        }
    }

    fn command(&mut self, machine: &mut ServerConn, command: SshCommand, ctx: &mut Context<'_>) {
        match command {
            SshCommand::Password(ok) => machine.password_result(ok),
            SshCommand::Output {
                channel,
                data,
                stderr,
            } => {
                machine.send_data(channel, &data, stderr);
                if !machine.writable(channel) {
                    self.pause(ctx, channel, true);
                }
            }
            SshCommand::Drained { channel } => {
                if let Some(n) = self.unreleased.remove(&channel) {
                    machine.release(channel, n);
                }
            }
            SshCommand::Eof { channel } => {
                machine.send_eof(channel);
                if let Some(&id) = self.tcp.get(&channel)
                    && !self.half_closed.insert(channel)
                {
                    ctx.other(id).close();
                }
            }
            SshCommand::Ended { channel, status } => {
                match status {
                    Some(ExitStatus::Exited(code)) => {
                        machine.send_exit_status(channel, u32::try_from(code).unwrap_or(255))
                    }
                    Some(ExitStatus::Signaled {
                        signal,
                        core_dumped,
                    }) => {
                        machine.send_exit_signal(channel, &signal_name(signal), core_dumped);
                    }
                    _ => {}
                }
                self.processes.remove(&channel);
                self.tcp.remove(&channel);
                machine.close_channel(channel);
            }
            SshCommand::Listening {
                id,
                address,
                requested,
                bound,
            } => match bound {
                Ok(bound) => {
                    tracing::info!(%bound, address, "ssh: remote forward listening");
                    machine.forward_result(id, Some(u32::from(bound.port())), requested);
                    self.forwards.push(Forward {
                        address,
                        requested,
                        bound,
                    });
                }
                Err(error) => {
                    tracing::info!(%error, address, port = requested, "ssh: tcpip-forward refused");
                    machine.forward_result(id, None, requested);
                }
            },
            SshCommand::Accepted {
                address,
                port,
                conn,
                origin,
                slot,
            } => self.open_forwarded(machine, ctx, (address, port, conn, origin, slot)),
            SshCommand::Connected { channel, conn } => match conn {
                Some(id) => {
                    self.tcp.insert(channel, id);
                    machine.open_result(channel, true);
                }
                None => machine.open_result(channel, false),
            },
        }
    }

    fn lost(&mut self, _machine: &mut ServerConn, ctx: &mut Context<'_>, _reason: LostReason) {
        self.release_all(ctx);
    }
}

/// A child's streams, posted to the connection as commands.
struct ChildOutput {
    channel: ChannelId,
    sender: MailboxSender<SshCommand>,
    pending_in: bool,
}

impl ProcessProtocol for ChildOutput {
    fn out_received(&mut self, ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let command = SshCommand::Output {
            channel: self.channel,
            data: Bytes::copy_from_slice(data),
            stderr: false,
        };
        if self.sender.post(command).is_err() {
            let _ = ctx.kill();
        }
    }

    fn err_received(&mut self, _ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let _ = self.sender.post(SshCommand::Output {
            channel: self.channel,
            data: Bytes::copy_from_slice(data),
            stderr: true,
        });
    }

    fn pause_writing(&mut self, _ctx: &mut ProcessContext<'_>) {
        self.pending_in = true;
    }

    fn in_drained(&mut self, _ctx: &mut ProcessContext<'_>) {
        self.pending_in = false;
        let _ = self.sender.post(SshCommand::Drained {
            channel: self.channel,
        });
    }

    fn process_ended(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        let _ = self.sender.post(SshCommand::Ended {
            channel: self.channel,
            status: Some(status),
        });
    }
}

/// A `direct-tcpip` connection, posted to the SSH connection as commands.
struct TcpRelay {
    channel: ChannelId,
    sender: MailboxSender<SshCommand>,
    connected: bool,
}

impl Protocol for TcpRelay {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.connected = true;
        if self
            .sender
            .post(SshCommand::Connected {
                channel: self.channel,
                conn: Some(ctx.id()),
            })
            .is_err()
        {
            ctx.close();
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let command = SshCommand::Output {
            channel: self.channel,
            data: Bytes::copy_from_slice(data),
            stderr: false,
        };
        if self.sender.post(command).is_err() {
            ctx.close();
        }
    }

    fn eof_received(&mut self, _ctx: &mut Context<'_>) {
        let _ = self.sender.post(SshCommand::Eof {
            channel: self.channel,
        });
    }

    fn write_drained(&mut self, _ctx: &mut Context<'_>) {
        let _ = self.sender.post(SshCommand::Drained {
            channel: self.channel,
        });
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, _reason: LostReason) {
        let command = if self.connected {
            SshCommand::Ended {
                channel: self.channel,
                status: None,
            }
        } else {
            SshCommand::Connected {
                channel: self.channel,
                conn: None,
            }
        };
        let _ = self.sender.post(command);
    }
}

/// RFC 4254 §8 opcodes as the platform's terminal settings; opcodes this OS has no
/// setting for (`VDSUSP`, `IUCLC`, `XCASE`, ...) are ignored.
fn terminal_modes(modes: &[(u8, u32)]) -> Vec<TerminalMode> {
    use ringwork::{ControlChar as C, ModeFlag as F};
    let mut out = Vec::with_capacity(modes.len());
    for &(opcode, value) in modes {
        let char_of = |c| TerminalMode::Char(c, u8::try_from(value).unwrap_or(0xff));
        let flag = |f| TerminalMode::Flag(f, value != 0);
        out.push(match opcode {
            1 => char_of(C::Intr),
            2 => char_of(C::Quit),
            3 => char_of(C::Erase),
            4 => char_of(C::Kill),
            5 => char_of(C::Eof),
            6 => char_of(C::Eol),
            7 => char_of(C::Eol2),
            8 => char_of(C::Start),
            9 => char_of(C::Stop),
            10 => char_of(C::Susp),
            12 => char_of(C::Reprint),
            13 => char_of(C::WErase),
            14 => char_of(C::LNext),
            18 => char_of(C::Discard),
            30 => flag(F::Ignpar),
            31 => flag(F::Parmrk),
            32 => flag(F::Inpck),
            33 => flag(F::Istrip),
            34 => flag(F::Inlcr),
            35 => flag(F::Igncr),
            36 => flag(F::Icrnl),
            38 => flag(F::Ixon),
            39 => flag(F::Ixany),
            40 => flag(F::Ixoff),
            41 => flag(F::Imaxbel),
            42 => flag(F::Iutf8),
            50 => flag(F::Isig),
            51 => flag(F::Icanon),
            53 => flag(F::Echo),
            54 => flag(F::Echoe),
            55 => flag(F::Echok),
            56 => flag(F::Echonl),
            57 => flag(F::Noflsh),
            58 => flag(F::Tostop),
            59 => flag(F::Iexten),
            60 => flag(F::Echoctl),
            61 => flag(F::Echoke),
            62 => flag(F::Pendin),
            70 => flag(F::Opost),
            72 => flag(F::Onlcr),
            73 => flag(F::Ocrnl),
            74 => flag(F::Onocr),
            75 => flag(F::Onlret),
            90 => flag(F::Cs7),
            91 => flag(F::Cs8),
            92 => flag(F::Parenb),
            93 => flag(F::Parodd),
            128 => TerminalMode::InputSpeed(value),
            129 => TerminalMode::OutputSpeed(value),
            _ => continue,
        });
    }
    out
}
