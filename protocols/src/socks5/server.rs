//! [`Socks5Server`]: the SOCKS5 handshake on a client connection, then a [`Relay`] to the
//! requested target.
//!
//! Owns: the client protocol's phases (handshake, name lookup, relay) and the [`Dial`]
//! that sends the final reply.
//! Contract:
//! 1. Handshake: bytes go to [`Handshake`]; its replies are written back; an error closes
//!    the connection after its reply. The whole handshake (and name lookup) must end within
//!    [`Socks5Config::handshake_timeout`].
//! 2. A domain target is resolved through the core's name resolver
//!    ([`NameResolver::lookup_all`](ringwork::names::NameResolver::lookup_all), both
//!    families at once): a task awaits the lookup,
//!    stores the outcome in a mailbox the protocol shares, and arms a zero-delay timer on
//!    the connection, so the protocol picks the outcome up in `timer_fired` with its own
//!    context. A connection that closed meanwhile has no timers: the outcome is dropped.
//! 3. The destination policy ([`Socks5Config::policy`], see [`crate::destination`]): a
//!    name in a numeric form (`2130706433`, `0x7f.1`, ...) is taken as the address it
//!    denotes and IPv4-mapped IPv6 addresses as their IPv4 address; a name is checked
//!    before the lookup (a name rule may decide) and every address it resolves to after
//!    it. Only allowed addresses are connected to; with none, the reply is REP 0x02
//!    ("connection not allowed by ruleset") and an info log line names the target (a
//!    peer-supplied name, escaped) and the verdict.
//! 4. The connect: the allowed addresses raced with Happy Eyeballs (IPv6 and IPv4
//!    interleaved, staggered by 250 ms, the first connected wins); the reply (REP 0x00
//!    with the bound address, or the failure's REP code) is written before any relayed
//!    byte. Bytes the client sent after its request are held (bounded) and sent once
//!    connected.
//!
//! Does not: resolve on the reactor thread; keep state across cores.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use ringwork::{ConnId, Context, Factory, LostReason, Protocol, TimerId};

use super::proto::{Auth, Event, Handshake, MAX_MESSAGE, Reply, Target, encode_reply};
use crate::destination::{DestinationPolicy, Host, canonical_ip};
use crate::proxy::{Dial, LookupError, Relay, RelayConfig, RelayStats};

/// Settings of a [`Socks5Server`].
#[derive(Clone, Debug)]
pub struct Socks5Config {
    /// Who may use the server.
    pub auth: Auth,
    /// Relay settings once connected.
    pub relay: RelayConfig,
    /// The handshake and the name lookup must end within this.
    pub handshake_timeout: Duration,
    /// Which destinations clients may reach (a name before its lookup and each address it
    /// resolves to); a target with no allowed address gets REP 0x02. The default denies
    /// loopback, private, link-local and the other special addresses
    /// ([`crate::destination::AddressClass`]) and allows the rest.
    pub policy: DestinationPolicy,
}

impl Default for Socks5Config {
    fn default() -> Self {
        Self {
            auth: Auth::None,
            relay: RelayConfig::default(),
            handshake_timeout: Duration::from_secs(30),
            policy: DestinationPolicy::default(),
        }
    }
}

struct Shared {
    config: Socks5Config,
    stats: RelayStats,
}

/// A SOCKS5 server: the [`Factory`] for its listener. Build one per core (not `Send`).
/// Names are resolved through the core's [`NameResolver`](ringwork::names::NameResolver) (install another with
/// `Reactor::set_name_resolver` or `RuntimeBuilder::name_resolver`).
pub struct Socks5Server {
    shared: Rc<Shared>,
}

impl Socks5Server {
    /// A server for `config`.
    #[must_use]
    pub fn new(config: Socks5Config) -> Self {
        Self {
            shared: Rc::new(Shared {
                config,
                stats: RelayStats::default(),
            }),
        }
    }

    /// This core's relay counters.
    #[must_use]
    pub fn stats(&self) -> RelayStats {
        self.shared.stats.clone()
    }
}

impl Factory for Socks5Server {
    fn build_protocol(&mut self) -> Box<dyn Protocol> {
        Box::new(Socks5Conn {
            shared: Rc::clone(&self.shared),
            phase: Phase::Handshake {
                handshake: Handshake::new(self.shared.config.auth.clone()),
                buf: BytesMut::new(),
            },
            timer: None,
            mailbox: Rc::default(),
        })
    }
}

type Mailbox = Rc<RefCell<Option<Result<Vec<SocketAddr>, LookupError>>>>;

enum Phase {
    Handshake {
        handshake: Handshake,
        /// Unconsumed input: at most one message.
        buf: BytesMut,
    },
    Resolving {
        /// The name as the policy checks it (lowercase, no trailing dot).
        name: String,
        /// The target for log lines (escaped).
        target: String,
        /// Client bytes after the request.
        held: BytesMut,
        eof: bool,
    },
    Relay(Relay),
    Closed,
}

struct Socks5Conn {
    shared: Rc<Shared>,
    phase: Phase,
    /// The handshake deadline.
    timer: Option<TimerId>,
    mailbox: Mailbox,
}

impl Socks5Conn {
    fn fail(&mut self, ctx: &mut Context<'_>, reply: Reply) {
        ctx.write(&encode_reply(reply, None));
        ctx.close();
        self.phase = Phase::Closed;
    }

    /// The request was read: check it, then resolve (for a name) or connect.
    fn request(&mut self, ctx: &mut Context<'_>, target: Target, held: BytesMut) {
        let (asked, port) = match target {
            Target::Addr(addr) => {
                return self.start_relay(ctx, None, vec![addr], &held, false, addr.to_string());
            }
            Target::Domain(name, port) => (name, port),
        };
        // Peer-supplied: escaped wherever it is logged.
        let target = format!("{asked:?}:{port}");
        let name = match Host::parse(&asked) {
            // A numeric form: the address it denotes, never a lookup.
            Host::Addr(ip) => {
                let addr = SocketAddr::new(ip, port);
                return self.start_relay(ctx, None, vec![addr], &held, false, target);
            }
            Host::Name(name) => name,
        };
        if let Some(verdict) = self.shared.config.policy.check_name(&name, port)
            && !verdict.allowed
        {
            tracing::info!("socks5: {target} not allowed ({verdict})");
            return self.fail(ctx, Reply::NotAllowed);
        }
        // The name as the client sent it: a trailing dot matters to the resolver.
        let lookup = ctx.handle().name_resolver().lookup_all(&asked);
        let mailbox = Rc::clone(&self.mailbox);
        let handle = ctx.handle();
        let id = ctx.id();
        let waker = handle.clone();
        drop(handle.spawn_local(async move {
            let outcome = lookup.await.map(|ips| {
                ips.into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect()
            });
            *mailbox.borrow_mut() = Some(outcome);
            // Calls the protocol back on its own connection (a no-op if it is gone).
            waker.run(move |reactor| {
                reactor.with_conn(id, |ctx| {
                    let _ = ctx.call_later(Duration::ZERO);
                });
            });
        }));
        if held.len() >= self.shared.config.relay.max_held {
            ctx.pause_reading();
        }
        self.phase = Phase::Resolving {
            name,
            target,
            held,
            eof: false,
        };
    }

    /// Connects to the first of `addrs` the policy allows (`name`: the name they were
    /// resolved from), trying the next allowed one on failure.
    fn start_relay(
        &mut self,
        ctx: &mut Context<'_>,
        name: Option<&str>,
        addrs: Vec<SocketAddr>,
        held: &[u8],
        eof: bool,
        target: String,
    ) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        if addrs.is_empty() {
            return self.fail(ctx, Reply::HostUnreachable);
        }
        let policy = &self.shared.config.policy;
        let mut denied = None;
        let mut allowed = VecDeque::with_capacity(addrs.len());
        for addr in addrs {
            // Connect to what the policy checked: `::ffff:127.0.0.1` is 127.0.0.1.
            let ip: IpAddr = canonical_ip(addr.ip());
            let verdict = policy.check(name, ip, addr.port());
            if verdict.allowed {
                allowed.push_back(SocketAddr::new(ip, addr.port()));
            } else if denied.is_none() {
                denied = Some(format!("{ip}: {verdict}"));
            }
        }
        if allowed.is_empty() {
            let why = denied.unwrap_or_default();
            tracing::info!("socks5: {target} not allowed ({why})");
            return self.fail(ctx, Reply::NotAllowed);
        }
        // One address: connect to it; several: race them (Happy Eyeballs).
        let upstream = if allowed.len() == 1 {
            crate::proxy::Target::from(allowed[0])
        } else {
            crate::proxy::Target::Addrs {
                label: target.clone(),
                addrs: allowed.into(),
            }
        };
        let dial = ReplyDial { target };
        let relay = Relay::start(
            ctx,
            &upstream,
            held,
            Box::new(dial),
            &self.shared.config.relay,
            &self.shared.stats,
        );
        if eof {
            relay.eof_received(ctx);
        }
        self.phase = Phase::Relay(relay);
    }

    /// The lookup finished (the mailbox holds its outcome).
    fn resolved(&mut self, ctx: &mut Context<'_>) {
        let Some(outcome) = self.mailbox.borrow_mut().take() else {
            return;
        };
        let Phase::Resolving {
            name,
            target,
            held,
            eof,
        } = std::mem::replace(&mut self.phase, Phase::Closed)
        else {
            return;
        };
        match outcome {
            Ok(addrs) => self.start_relay(ctx, Some(&name), addrs, &held, eof, target),
            Err(error) => {
                // The error names the peer's host: escaped.
                let error = error.to_string();
                tracing::info!("socks5: {target}: {}", error.escape_debug());
                self.fail(ctx, Reply::HostUnreachable);
            }
        }
    }
}

impl Protocol for Socks5Conn {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.timer = Some(ctx.call_later(self.shared.config.handshake_timeout));
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        match &mut self.phase {
            Phase::Handshake { handshake, buf } => {
                buf.extend_from_slice(data);
                let result = handshake.handle_input(buf);
                if let Some(reply) = handshake.poll_transmit() {
                    ctx.write(&reply);
                }
                match result {
                    Ok(consumed) => buf.advance(consumed),
                    Err(error) => {
                        tracing::debug!("socks5: {error}");
                        ctx.close();
                        self.phase = Phase::Closed;
                        return;
                    }
                }
                match handshake.poll_event() {
                    Some(Event::Connect(target)) => {
                        let held = buf.split();
                        self.request(ctx, target, held);
                    }
                    // By the handshake's contract it needs at most one message unconsumed.
                    None if buf.len() > MAX_MESSAGE => {
                        ctx.close();
                        self.phase = Phase::Closed;
                    }
                    None => {}
                }
            }
            Phase::Resolving { held, .. } => {
                held.extend_from_slice(data);
                if held.len() >= self.shared.config.relay.max_held {
                    ctx.pause_reading();
                }
            }
            Phase::Relay(relay) => relay.data_received(ctx, data),
            Phase::Closed => {}
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        match &mut self.phase {
            Phase::Resolving { eof, .. } => *eof = true,
            Phase::Relay(relay) => relay.eof_received(ctx),
            Phase::Handshake { .. } | Phase::Closed => {
                ctx.close();
                self.phase = Phase::Closed;
            }
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Phase::Relay(relay) = &self.phase {
            relay.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Phase::Relay(relay) = &self.phase {
            relay.write_drained(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if self.timer == Some(timer) {
            self.timer = None;
            if !matches!(self.phase, Phase::Relay(_) | Phase::Closed) {
                tracing::info!("socks5: handshake timed out; closing {}", ctx.id());
                ctx.abort();
                self.phase = Phase::Closed;
            }
            return;
        }
        match &self.phase {
            Phase::Relay(relay) => {
                relay.timer_fired(ctx, timer);
            }
            Phase::Resolving { .. } => self.resolved(ctx),
            Phase::Handshake { .. } | Phase::Closed => {}
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Phase::Relay(relay) = std::mem::replace(&mut self.phase, Phase::Closed) {
            relay.connection_lost(ctx, reason);
        }
    }
}

/// Writes the final reply.
struct ReplyDial {
    target: String,
}

impl Dial for ReplyDial {
    fn connected(&mut self, ctx: &mut Context<'_>, client: ConnId) {
        let bound = ctx.local_addr().ok().and_then(|a| a.as_socket());
        ctx.other(client)
            .write(&encode_reply(Reply::Succeeded, bound));
    }

    fn failed(
        &mut self,
        ctx: &mut Context<'_>,
        client: ConnId,
        reason: &LostReason,
    ) -> Option<crate::proxy::Target> {
        let reply = match reason {
            LostReason::ConnectFailed(error) => Reply::from_io_error(error.kind()),
            LostReason::ConnectTimeout => Reply::TtlExpired,
            LostReason::HostConnect(error) => match error.io_kind() {
                Some(std::io::ErrorKind::TimedOut) => Reply::TtlExpired,
                Some(kind) => Reply::from_io_error(kind),
                None => Reply::GeneralFailure,
            },
            _ => Reply::GeneralFailure,
        };
        tracing::info!("socks5: connect to {} failed: {reason}", self.target);
        ctx.other(client).write(&encode_reply(reply, None));
        None
    }
}
