//! The relay: two connections of one core joined both ways, with backpressure, half-close,
//! an idle timeout and failover while the upstream connects.
//!
//! Owns: [`Relay`] (the client side's handle; [`Relay::start`] dials the upstream,
//! [`Relay::join`] joins one already open, with [`RelayUpstream`] its side), the upstream side's protocol, the
//! [`Dial`] hook its owner supplies, [`RelayConfig`] and the per-core [`RelayStats`].
//! Contract:
//! - Bytes read from one side are written to the other (one copy, into the other side's
//!   write buffer), in pieces of at most 16 KiB while that side stays writable. When its
//!   buffer passes the engine's high watermark, reading of the first side pauses; the other
//!   side's `write_drained` resumes it. What a single delivery brings beyond that (the
//!   engine hands over bytes that arrived while reading was paused in one piece) waits in
//!   the relay's overflow buffer, so the engine's hard write-buffer limit is never hit.
//!   Memory per pair: the write buffers up to their high watermark plus one piece, plus
//!   the overflow (bounded by what the kernel had already received when reading paused),
//!   plus, while the upstream connects, [`RelayConfig::max_held`] client bytes.
//! - An EOF from one side becomes `shutdown_write` on the other; once both sides sent EOF,
//!   both are closed after their queued bytes are sent.
//! - One side's `connection_lost` closes the other: gracefully (after its queued bytes) if
//!   the loss was clean, at once with a reset otherwise.
//! - No bytes either way for [`RelayConfig::idle_timeout`]: both close (with a log line).
//! - A side whose peer takes none of the bytes for it for [`RelayConfig::write_timeout`]
//!   is aborted by the engine (`LostReason::WriteStalled`, also through a splice), and
//!   the other side with it: a client that never reads a download frees both descriptors.
//! - While the upstream connects, client bytes are held here, not in the connecting
//!   connection's buffer, so that a failed connect loses nothing and [`Dial::failed`] can
//!   name another target.
//! - The upstream is a [`Target`]: an address, addresses known already (raced with Happy
//!   Eyeballs), or a client endpoint ([`EndpointConnector`]: a host name resolved at this
//!   connect through the core's name resolver and raced with Happy Eyeballs, TLS, Unix).
//!
//! - Splicing ([`RelayConfig::splice`]): once a direction looks like a bulk transfer
//!   ([`SplicePolicy::Bulk`]: that many bytes in a row of reads of at least
//!   [`BULK_READ`] bytes), its input is spliced into the other side inside the kernel
//!   ([`Context::splice_into`]): no copy at all, backpressure from the pipe, EOF passed on
//!   as before. Small reads (request/response traffic) stay on the copying path, which
//!   costs less per message than two splice calls. Where the engine cannot splice (TLS, not Linux, the in-memory
//!   test transport), the direction keeps copying.
//!
//! The pair's state is shared by the two protocols (`Rc<RefCell<_>>`): the engine never
//! runs two callbacks at once, so a borrow never overlaps another.
//! Does not: parse anything; copy without need (at most one copy per byte, see
//! `docs/proxy.md`).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringwork::endpoint::EndpointConnector;
use ringwork::{
    ConnId, ConnectOptions, Context, EngineError, HostConnect, LostReason, Protocol, SockAddr,
    TimerId,
};

/// Where a relay's upstream connects.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Target {
    /// One address (TCP or Unix).
    Addr(SockAddr),
    /// Addresses known already (a SOCKS server's, after its policy check), raced with
    /// Happy Eyeballs ([`Context::connect_addrs`]); `label` names them in errors.
    Addrs {
        /// What the addresses are of (the requested name).
        label: String,
        /// The addresses, in the resolver's order.
        addrs: Vec<std::net::SocketAddr>,
    },
    /// A client endpoint: a name is resolved at each connect and raced with Happy
    /// Eyeballs; TLS and Unix as the endpoint says.
    Endpoint(EndpointConnector),
}

impl From<SockAddr> for Target {
    fn from(addr: SockAddr) -> Self {
        Target::Addr(addr)
    }
}

impl From<std::net::SocketAddr> for Target {
    fn from(addr: std::net::SocketAddr) -> Self {
        Target::Addr(addr.into())
    }
}

impl From<EndpointConnector> for Target {
    fn from(endpoint: EndpointConnector) -> Self {
        Target::Endpoint(endpoint)
    }
}

/// The upstream connect in progress.
enum Dialing {
    /// To one address: the connection.
    Conn(ConnId),
    /// By name or over several addresses: the race.
    Race(HostConnect),
}

/// The most bytes written to a side in one piece: after each piece the relay checks the
/// side is still writable, so its write buffer passes the high watermark by less than this.
const WRITE_PIECE: usize = 16 * 1024;

/// The smallest read that counts towards [`SplicePolicy::Bulk`]: the kernel had a good
/// part of a receive buffer waiting.
pub const BULK_READ: usize = 4096;

/// When a relay hands a direction to the kernel ([`Context::splice_into`]).
///
/// Measured on loopback (`benches/scripts/tcp_proxy_splice_bench.sh`, `docs/proxy.md`):
/// splicing cuts the proxy's CPU per byte by ~45% for 64 KiB messages and ~25% for 16 KiB
/// ones, but costs ~50% more per message for 128-byte request/response traffic (two
/// system calls and a readiness wait per chunk instead of one copy each way).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum SplicePolicy {
    /// Always copy through user space.
    Off,
    /// Splice both directions as soon as the upstream connects.
    Always,
    /// Splice a direction once it carried this many bytes in consecutive reads of at least
    /// [`BULK_READ`] bytes each (a smaller read starts the count again): bulk transfers move
    /// to the kernel, small-message traffic keeps copying.
    Bulk(u64),
}

impl Default for SplicePolicy {
    /// `Bulk(64 KiB)`.
    fn default() -> Self {
        SplicePolicy::Bulk(64 * 1024)
    }
}

/// Settings of a relay.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// Close both sides after this long without a byte either way (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Most client bytes held while the upstream connects; past it, reading the client
    /// pauses until the upstream connected.
    pub max_held: usize,
    /// How long one upstream connect may take (`None`: the reactor's
    /// `ReactorConfig::connect_timeout`, 10 s by default).
    pub connect_timeout: Option<Duration>,
    /// When to move a direction into the kernel (splice).
    pub splice: SplicePolicy,
    /// Write-stall (send) timeout of both sides: a side whose peer takes no byte for this
    /// long is aborted, and the pair ends (the engine's
    /// [`Context::set_write_timeout`]). `None`: no timeout. Default 60 s.
    pub write_timeout: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            idle_timeout: Some(Duration::from_secs(300)),
            max_held: 256 * 1024,
            connect_timeout: None,
            splice: SplicePolicy::default(),
            write_timeout: Some(Duration::from_secs(60)),
        }
    }
}

/// Counters of the relays on one core (cheap to clone; `!Send`, read on the core).
#[derive(Clone, Debug, Default)]
pub struct RelayStats {
    inner: Rc<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    open: Cell<u64>,
    total: Cell<u64>,
    to_upstream: Cell<u64>,
    to_client: Cell<u64>,
    read_pauses: Cell<u64>,
    idle_closes: Cell<u64>,
    spliced_directions: Cell<u64>,
    spliced_bytes: Cell<u64>,
    max_buffered: Cell<usize>,
    max_overflow: Cell<usize>,
}

/// A snapshot of [`RelayStats`].
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
#[non_exhaustive]
pub struct RelaySnapshot {
    /// Pairs relaying (or connecting) now.
    pub open: u64,
    /// Pairs started.
    pub total: u64,
    /// Bytes relayed from clients to upstreams (copied or spliced; spliced bytes are
    /// counted when their pair ends).
    pub to_upstream: u64,
    /// Bytes relayed from upstreams to clients (likewise).
    pub to_client: u64,
    /// Directions handed to the kernel (splice).
    pub spliced_directions: u64,
    /// Bytes of `to_upstream` and `to_client` that went by splice.
    pub spliced_bytes: u64,
    /// Times reading one side paused because the other side's write buffer was full.
    pub read_pauses: u64,
    /// Pairs closed by the idle timeout.
    pub idle_closes: u64,
    /// The most bytes seen buffered towards one side right after a relayed write (the
    /// bound the watermarks keep).
    pub max_buffered: usize,
    /// The most bytes the relay itself held for one side whose write buffer was full
    /// (the engine delivers bytes that arrived while reading was paused in one piece).
    pub max_overflow: usize,
}

impl RelayStats {
    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> RelaySnapshot {
        let c = &self.inner;
        RelaySnapshot {
            open: c.open.get(),
            total: c.total.get(),
            to_upstream: c.to_upstream.get(),
            to_client: c.to_client.get(),
            read_pauses: c.read_pauses.get(),
            idle_closes: c.idle_closes.get(),
            spliced_directions: c.spliced_directions.get(),
            spliced_bytes: c.spliced_bytes.get(),
            max_buffered: c.max_buffered.get(),
            max_overflow: c.max_overflow.get(),
        }
    }

    fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get().wrapping_add(n));
    }
}

/// What the owner of a relay decides when the upstream connects or fails to.
pub trait Dial: 'static {
    /// The upstream connected; runs before any byte is relayed (a SOCKS server writes its
    /// reply to the client here). `ctx` is the upstream's context; reach the client with
    /// `ctx.other(client)`.
    fn connected(&mut self, ctx: &mut Context<'_>, client: ConnId);

    /// The upstream failed to connect (or its socket could not be created). Return
    /// another target to try, or `None` to give up: the client is then closed after
    /// whatever this wrote to it. A connect by name fails with
    /// [`LostReason::HostConnect`], naming the host and each address tried.
    fn failed(
        &mut self,
        ctx: &mut Context<'_>,
        client: ConnId,
        reason: &LostReason,
    ) -> Option<Target>;
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Side {
    Client = 0,
    Upstream = 1,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Client => Side::Upstream,
            Side::Upstream => Side::Client,
        }
    }
}

#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum Phase {
    /// The upstream connects; client bytes are held.
    Connecting,
    Relaying,
    /// Closing or closed; callbacks only finish up.
    Done,
}

struct Pair {
    client: ConnId,
    /// The upstream connection, once it connected.
    upstream: Option<ConnId>,
    /// The connect in progress (to cancel it if the client leaves).
    dialing: Option<Dialing>,
    /// The number of the current dial: a loss of an earlier one's protocol is ignored.
    dial_number: u64,
    phase: Phase,
    /// Client bytes read while the upstream connects.
    held: BytesMut,
    /// An EOF arrived from this side (and was, or will be, passed on).
    eof: [bool; 2],
    /// Bytes for this side that its write buffer could not take yet (see
    /// [`Pair::write_some`]); non-empty only while the other side's reading is paused.
    overflow: [BytesMut; 2],
    /// `shutdown_write` was called on this side.
    shut: [bool; 2],
    /// Reading of this side is paused by the relay (the other side is not writable, or
    /// held bytes are at their limit).
    paused: [bool; 2],
    /// Bytes of this side's current run of large reads (see [`SplicePolicy::Bulk`]).
    bulk_run: [u64; 2],
    /// This side's input is spliced into the other side.
    spliced: [bool; 2],
    /// Splicing this side was refused: keep copying.
    splice_refused: [bool; 2],
    /// Both sides' spliced byte counts when last looked at (activity for the idle timer).
    spliced_seen: u64,
    last_activity: Instant,
    idle_timer: Option<TimerId>,
    config: RelayConfig,
    stats: RelayStats,
    dial: Box<dyn Dial>,
}

impl Pair {
    fn id(&self, side: Side) -> Option<ConnId> {
        match side {
            Side::Client => Some(self.client),
            Side::Upstream => self.upstream,
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, side: Side, data: &[u8]) {
        self.last_activity = ctx.now();
        match self.phase {
            Phase::Connecting if side == Side::Client => {
                self.held.extend_from_slice(data);
                if self.held.len() >= self.config.max_held && !self.paused[0] {
                    ctx.pause_reading();
                    self.paused[0] = true;
                }
            }
            Phase::Relaying => {
                let c = &self.stats.inner;
                match side {
                    Side::Client => RelayStats::add(&c.to_upstream, data.len() as u64),
                    Side::Upstream => RelayStats::add(&c.to_client, data.len() as u64),
                }
                let run = &mut self.bulk_run[side as usize];
                *run = if data.len() >= BULK_READ {
                    *run + data.len() as u64
                } else {
                    0
                };
                let dest = side.other();
                let rest = if self.overflow[dest as usize].is_empty() {
                    self.write_some(ctx, dest, data)
                } else {
                    data
                };
                if !rest.is_empty() {
                    // The engine delivered more than the peer's buffer takes (bytes stashed
                    // while reading was paused come in one piece): keep the rest here.
                    let overflow = &mut self.overflow[dest as usize];
                    overflow.extend_from_slice(rest);
                    c.max_overflow.set(c.max_overflow.get().max(overflow.len()));
                }
                if !self.overflow[dest as usize].is_empty() || !self.writable(ctx, dest) {
                    self.pause(ctx, side);
                }
                self.maybe_splice(ctx, side);
            }
            // Bytes after the pair ended (or from an upstream not yet relaying) go nowhere.
            Phase::Connecting | Phase::Done => {}
        }
    }

    /// Hands `side`'s input to the kernel if the policy says so now (`ctx` may be either
    /// side's). Bytes the relay holds for the other side are queued on it first (the
    /// engine sends them before anything spliced), and reading resumes: the pipe is the
    /// backpressure from then on.
    fn maybe_splice(&mut self, ctx: &mut Context<'_>, side: Side) {
        let s = side as usize;
        let due = match self.config.splice {
            SplicePolicy::Off => false,
            SplicePolicy::Always => true,
            SplicePolicy::Bulk(after) => self.bulk_run[s] >= after,
        };
        if !due
            || self.phase != Phase::Relaying
            || self.spliced[s]
            || self.splice_refused[s]
            || self.eof[s]
        {
            return;
        }
        let (Some(from), Some(to)) = (self.id(side), self.id(side.other())) else {
            return;
        };
        let overflow = std::mem::take(&mut self.overflow[side.other() as usize]);
        if !overflow.is_empty() {
            ctx.other(to).write_bytes(overflow.freeze());
        }
        match ctx.other(from).splice_into(to) {
            Ok(()) => {
                self.spliced[s] = true;
                RelayStats::add(&self.stats.inner.spliced_directions, 1);
                self.resume(ctx, side);
            }
            Err(error) => {
                tracing::debug!("relay: {side:?} side keeps copying: {error}");
                self.splice_refused[s] = true;
            }
        }
    }

    /// Bytes spliced so far in both directions.
    fn spliced_total(&self, ctx: &mut Context<'_>) -> u64 {
        [Some(self.client), self.upstream]
            .into_iter()
            .flatten()
            .map(|id| ctx.other(id).spliced_bytes())
            .sum()
    }

    fn writable(&self, ctx: &mut Context<'_>, side: Side) -> bool {
        self.id(side).is_some_and(|id| ctx.other(id).is_writable())
    }

    /// Writes `data` to `dest` in pieces while it stays writable; returns what is left.
    fn write_some<'d>(&self, ctx: &mut Context<'_>, dest: Side, mut data: &'d [u8]) -> &'d [u8] {
        let Some(id) = self.id(dest) else {
            return &[];
        };
        let mut peer = ctx.other(id);
        while !data.is_empty() && peer.is_writable() {
            let n = data.len().min(WRITE_PIECE);
            peer.write(&data[..n]);
            data = &data[n..];
        }
        let c = &self.stats.inner;
        c.max_buffered
            .set(c.max_buffered.get().max(peer.buffered()));
        data
    }

    /// Moves held overflow bytes to `dest` while it is writable (no copy).
    fn flush_overflow(&mut self, ctx: &mut Context<'_>, dest: Side) {
        let Some(id) = self.id(dest) else {
            return;
        };
        let overflow = &mut self.overflow[dest as usize];
        let mut peer = ctx.other(id);
        while !overflow.is_empty() && peer.is_writable() {
            let n = overflow.len().min(WRITE_PIECE);
            peer.write_bytes(overflow.split_to(n).freeze());
        }
        let c = &self.stats.inner;
        c.max_buffered
            .set(c.max_buffered.get().max(peer.buffered()));
    }

    /// Pauses reading `side` (`ctx` may be either side's).
    fn pause(&mut self, ctx: &mut Context<'_>, side: Side) {
        if self.paused[side as usize] {
            return;
        }
        if let Some(id) = self.id(side) {
            ctx.other(id).pause_reading();
            self.paused[side as usize] = true;
            RelayStats::add(&self.stats.inner.read_pauses, 1);
        }
    }

    fn resume(&mut self, ctx: &mut Context<'_>, side: Side) {
        if !self.paused[side as usize] {
            return;
        }
        if let Some(id) = self.id(side) {
            ctx.other(id).resume_reading();
            self.paused[side as usize] = false;
        }
    }

    /// `side`'s write buffer passed its high watermark.
    fn pause_writing(&mut self, ctx: &mut Context<'_>, side: Side) {
        if self.phase == Phase::Relaying {
            self.pause(ctx, side.other());
        }
    }

    /// `side`'s write buffer drained.
    fn write_drained(&mut self, ctx: &mut Context<'_>, side: Side) {
        if self.phase == Phase::Relaying {
            self.flush_overflow(ctx, side);
            self.pass_eof(ctx, side);
            self.finish_if_done(ctx);
            if self.phase != Phase::Relaying {
                return;
            }
            if self.overflow[side as usize].is_empty() && self.writable(ctx, side) {
                self.resume(ctx, side.other());
            }
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>, side: Side) {
        self.eof[side as usize] = true;
        match self.phase {
            Phase::Relaying => {
                self.pass_eof(ctx, side.other());
                self.finish_if_done(ctx);
            }
            // The client's EOF is passed on once the upstream connected.
            Phase::Connecting => {}
            Phase::Done => ctx.close(),
        }
    }

    /// Half-closes `dest` once its source sent EOF and every byte for it was written.
    fn pass_eof(&mut self, ctx: &mut Context<'_>, dest: Side) {
        let d = dest as usize;
        if self.eof[dest.other() as usize]
            && self.overflow[d].is_empty()
            && !self.shut[d]
            && let Some(id) = self.id(dest)
        {
            ctx.other(id).shutdown_write();
            self.shut[d] = true;
        }
    }

    /// Both directions ended: close both sides (after their queued bytes).
    fn finish_if_done(&mut self, ctx: &mut Context<'_>) {
        let flushed = self.overflow.iter().all(BytesMut::is_empty);
        if self.eof == [true, true] && flushed && self.phase == Phase::Relaying {
            self.end(ctx);
            for id in [Some(self.client), self.upstream].into_iter().flatten() {
                ctx.other(id).close();
            }
        }
    }

    /// Marks the pair ended (once).
    fn end(&mut self, ctx: &mut Context<'_>) {
        if self.phase == Phase::Done {
            return;
        }
        self.phase = Phase::Done;
        let c = &self.stats.inner;
        c.open.set(c.open.get().saturating_sub(1));
        let spliced = |ctx: &mut Context<'_>, id: Option<ConnId>| {
            id.map_or(0, |id| ctx.other(id).spliced_bytes())
        };
        let (up, down) = (spliced(ctx, Some(self.client)), spliced(ctx, self.upstream));
        RelayStats::add(&c.to_upstream, up);
        RelayStats::add(&c.to_client, down);
        RelayStats::add(&c.spliced_bytes, up + down);
        if let Some(timer) = self.idle_timer.take() {
            ctx.other(self.client).cancel_timer(timer);
        }
        self.held = BytesMut::new();
        self.overflow = [BytesMut::new(), BytesMut::new()];
    }

    /// The upstream connected (`ctx` is the upstream's).
    fn upstream_made(&mut self, ctx: &mut Context<'_>, dial: u64) {
        if self.phase != Phase::Connecting || dial != self.dial_number {
            // The client left while we connected.
            ctx.close();
            return;
        }
        self.upstream = Some(ctx.id());
        self.dialing = None;
        self.phase = Phase::Relaying;
        self.last_activity = ctx.now();
        ctx.set_write_timeout(self.config.write_timeout);
        self.dial.connected(ctx, self.client);
        let held = std::mem::take(&mut self.held);
        RelayStats::add(&self.stats.inner.to_upstream, held.len() as u64);
        self.overflow[Side::Upstream as usize] = held;
        self.flush_overflow(ctx, Side::Upstream);
        self.pass_eof(ctx, Side::Upstream);
        if self.overflow[Side::Upstream as usize].is_empty() && ctx.is_writable() {
            self.resume(ctx, Side::Client);
        }
        self.maybe_splice(ctx, Side::Client);
        self.maybe_splice(ctx, Side::Upstream);
    }

    /// Tries the next address after a failed connect, or gives up and closes the client.
    fn redial(&mut self, ctx: &mut Context<'_>, pair: &Rc<RefCell<Pair>>, reason: LostReason) {
        let mut reason = reason;
        loop {
            if matches!(reason, LostReason::Shutdown) {
                self.end(ctx);
                ctx.other(self.client).close();
                return;
            }
            let Some(target) = self.dial.failed(ctx, self.client, &reason) else {
                self.end(ctx);
                ctx.other(self.client).close();
                return;
            };
            self.dial_number += 1;
            let upstream = Upstream {
                pair: Rc::clone(pair),
                dial: self.dial_number,
            };
            match connect(ctx, &target, upstream, self.config.connect_timeout) {
                Ok(dialing) => {
                    self.dialing = Some(dialing);
                    return;
                }
                Err(error) => reason = error,
            }
        }
    }

    /// `dial`: the dial number of an upstream's protocol (0 for the client).
    fn connection_lost(
        &mut self,
        ctx: &mut Context<'_>,
        pair: &Rc<RefCell<Pair>>,
        side: Side,
        dial: u64,
        reason: LostReason,
    ) {
        if side == Side::Upstream && self.phase == Phase::Connecting {
            if dial == self.dial_number {
                self.dialing = None;
                self.redial(ctx, pair, reason);
            }
            return;
        }
        if side == Side::Upstream && self.upstream != Some(ctx.id()) {
            // An earlier attempt; not part of the pair any more.
            return;
        }
        let was_live = self.phase != Phase::Done;
        self.end(ctx);
        if side == Side::Client
            && let Some(dialing) = self.dialing.take()
        {
            // The client left while the upstream connects: cancel the connect.
            match dialing {
                Dialing::Conn(id) => ctx.other(id).abort(),
                Dialing::Race(race) => race.cancel_now(ctx),
            }
            return;
        }
        let Some(peer) = self.id(side.other()) else {
            return;
        };
        let mut peer = ctx.other(peer);
        if !peer.is_open() {
            return;
        }
        match reason {
            LostReason::Done | LostReason::Shutdown => peer.close(),
            _ => {
                if was_live {
                    tracing::debug!("relay: {side:?} side lost ({reason}); resetting the other");
                }
                peer.abort();
            }
        }
    }

    /// The client's timer fired; true if it was the idle timer.
    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) -> bool {
        if self.idle_timer != Some(timer) {
            return false;
        }
        self.idle_timer = None;
        let Some(idle) = self.config.idle_timeout else {
            return true;
        };
        // Spliced bytes never reach `data_received`: their counters show activity (sampled
        // here, so a spliced pair that went quiet closes within one to two timeouts).
        let spliced = self.spliced_total(ctx);
        if spliced != self.spliced_seen {
            self.spliced_seen = spliced;
            self.last_activity = ctx.now();
        }
        let quiet = ctx.now().saturating_duration_since(self.last_activity);
        if quiet < idle {
            self.idle_timer = Some(ctx.call_later(idle - quiet));
            return true;
        }
        let peer = ctx.peer_addr().ok().and_then(|a| a.as_socket());
        tracing::info!(
            "relay idle for {idle:?}: closing {} (client {peer:?})",
            ctx.id()
        );
        RelayStats::add(&self.stats.inner.idle_closes, 1);
        self.end(ctx);
        for id in [Some(self.client), self.upstream].into_iter().flatten() {
            let mut side = ctx.other(id);
            // Nothing moved for the whole timeout: bytes still queued go to a peer that
            // does not read, so waiting for them could last for ever.
            if side.buffered() > 0 {
                side.abort();
            } else {
                side.close();
            }
        }
        true
    }
}

/// Starts the upstream connect, with the relay's connect timeout if it has one (an
/// endpoint's own `timeout=` comes first); the error is the reason the attempt failed.
fn connect(
    ctx: &mut Context<'_>,
    target: &Target,
    upstream: Upstream,
    timeout: Option<Duration>,
) -> Result<Dialing, LostReason> {
    let mut options = ConnectOptions::new();
    if let Some(timeout) = timeout {
        options = options.timeout(timeout);
    }
    let started = match target {
        Target::Addr(addr) => ctx.connect(addr, upstream, options).map(Dialing::Conn),
        Target::Addrs { label, addrs } => Ok(Dialing::Race(ctx.connect_addrs(
            label,
            addrs.clone(),
            upstream,
            options,
        ))),
        Target::Endpoint(endpoint) => {
            let endpoint = match timeout {
                Some(timeout) => endpoint.clone().default_timeout(timeout),
                None => endpoint.clone(),
            };
            endpoint.connect_from(ctx, upstream).map(Dialing::Race)
        }
    };
    started.map_err(|error| match error {
        EngineError::Op(error) => LostReason::ConnectFailed(error),
        // A plain connect fails only in creating its socket (above); kept for the
        // error type's other cases.
        other => {
            tracing::warn!(error = %other, "upstream connect could not start");
            LostReason::Aborted
        }
    })
}

/// The client side of a relay: the client connection's protocol forwards its callbacks
/// here (see [`crate::proxy::TcpProxy`] and the SOCKS5 server).
///
/// 1. [`Relay::start`] from a callback of the client connection: the upstream connect
///    starts, and `held` (bytes the client already sent) is queued for it.
/// 2. Forward every later callback of the client connection to the method of the same
///    name ([`Relay::timer_fired`] says whether the timer was the relay's).
pub struct Relay {
    pair: Rc<RefCell<Pair>>,
}

impl Relay {
    /// Starts connecting to `target` for the client of `ctx`, with `held` as the client's
    /// first bytes. If the connect cannot even start, [`Dial::failed`] is asked for
    /// another target at once.
    pub fn start(
        ctx: &mut Context<'_>,
        target: &Target,
        held: &[u8],
        dial: Box<dyn Dial>,
        config: &RelayConfig,
        stats: &RelayStats,
    ) -> Relay {
        let c = &stats.inner;
        c.open.set(c.open.get() + 1);
        RelayStats::add(&c.total, 1);
        let idle_timer = config.idle_timeout.map(|idle| ctx.call_later(idle));
        ctx.set_write_timeout(config.write_timeout);
        let reading_paused = ctx.is_reading_paused();
        let pair = Rc::new(RefCell::new(Pair {
            client: ctx.id(),
            upstream: None,
            dialing: None,
            dial_number: 1,
            phase: Phase::Connecting,
            held: BytesMut::from(held),
            eof: [false; 2],
            overflow: [BytesMut::new(), BytesMut::new()],
            shut: [false; 2],
            paused: [reading_paused, false],
            bulk_run: [0; 2],
            spliced: [false; 2],
            splice_refused: [false; 2],
            spliced_seen: 0,
            last_activity: ctx.now(),
            idle_timer,
            config: config.clone(),
            stats: stats.clone(),
            dial,
        }));
        let upstream = Upstream {
            pair: Rc::clone(&pair),
            dial: 1,
        };
        let result = connect(ctx, target, upstream, config.connect_timeout);
        {
            let mut p = pair.borrow_mut();
            match result {
                Ok(dialing) => p.dialing = Some(dialing),
                Err(error) => p.redial(ctx, &pair, error),
            }
            if p.held.len() >= p.config.max_held && !p.paused[0] && p.phase == Phase::Connecting {
                ctx.pause_reading();
                p.paused[0] = true;
            }
        }
        Relay { pair }
    }

    /// Joins the client of `ctx` to `upstream`, a connection of the same core that is
    /// already open (an HTTP reverse proxy after the upstream's `101 Switching Protocols`):
    /// the pair relays at once, starting with `to_client` (bytes the upstream sent after
    /// what its owner consumed). The upstream connection's protocol forwards its callbacks
    /// to the returned [`RelayUpstream`] from now on; if its reading is paused, say so in
    /// `upstream_paused` (the relay resumes it once the client can take bytes).
    pub fn join(
        ctx: &mut Context<'_>,
        upstream: ConnId,
        upstream_paused: bool,
        to_client: &[u8],
        config: &RelayConfig,
        stats: &RelayStats,
    ) -> (Relay, RelayUpstream) {
        let c = &stats.inner;
        c.open.set(c.open.get() + 1);
        RelayStats::add(&c.total, 1);
        RelayStats::add(&c.to_client, to_client.len() as u64);
        let idle_timer = config.idle_timeout.map(|idle| ctx.call_later(idle));
        ctx.set_write_timeout(config.write_timeout);
        ctx.other(upstream).set_write_timeout(config.write_timeout);
        let reading_paused = ctx.is_reading_paused();
        let pair = Rc::new(RefCell::new(Pair {
            client: ctx.id(),
            upstream: Some(upstream),
            dialing: None,
            dial_number: 1,
            phase: Phase::Relaying,
            held: BytesMut::new(),
            eof: [false; 2],
            overflow: [BytesMut::from(to_client), BytesMut::new()],
            shut: [false; 2],
            paused: [reading_paused, upstream_paused],
            bulk_run: [0; 2],
            spliced: [false; 2],
            splice_refused: [false; 2],
            spliced_seen: 0,
            last_activity: ctx.now(),
            idle_timer,
            config: config.clone(),
            stats: stats.clone(),
            dial: Box::new(NoDial),
        }));
        {
            let mut p = pair.borrow_mut();
            p.flush_overflow(ctx, Side::Client);
            if p.overflow[Side::Client as usize].is_empty() && ctx.is_writable() {
                p.resume(ctx, Side::Upstream);
            }
            p.maybe_splice(ctx, Side::Client);
            p.maybe_splice(ctx, Side::Upstream);
        }
        let upstream = RelayUpstream {
            pair: Rc::clone(&pair),
        };
        (Relay { pair }, upstream)
    }

    /// The upstream connection: once it connected (for a connect to one address, once
    /// the connect started).
    #[must_use]
    pub fn upstream(&self) -> Option<ConnId> {
        let pair = self.pair.borrow();
        match (&pair.upstream, &pair.dialing) {
            (Some(id), _) | (None, Some(Dialing::Conn(id))) => Some(*id),
            _ => None,
        }
    }

    /// Forward of the client's `data_received`.
    pub fn data_received(&self, ctx: &mut Context<'_>, data: &[u8]) {
        self.pair
            .borrow_mut()
            .data_received(ctx, Side::Client, data);
    }

    /// Forward of the client's `eof_received`.
    pub fn eof_received(&self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().eof_received(ctx, Side::Client);
    }

    /// Forward of the client's `pause_writing`.
    pub fn pause_writing(&self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().pause_writing(ctx, Side::Client);
    }

    /// Forward of the client's `write_drained`.
    pub fn write_drained(&self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().write_drained(ctx, Side::Client);
    }

    /// Forward of the client's `timer_fired`; false if `timer` is not the relay's.
    pub fn timer_fired(&self, ctx: &mut Context<'_>, timer: TimerId) -> bool {
        self.pair.borrow_mut().timer_fired(ctx, timer)
    }

    /// Forward of the client's `connection_lost`.
    pub fn connection_lost(&self, ctx: &mut Context<'_>, reason: LostReason) {
        let pair = Rc::clone(&self.pair);
        self.pair
            .borrow_mut()
            .connection_lost(ctx, &pair, Side::Client, 0, reason);
    }
}

/// The upstream connection's protocol.
struct Upstream {
    pair: Rc<RefCell<Pair>>,
    /// Which dial of the pair this is.
    dial: u64,
}

/// The [`Dial`] of a pair joined from two open connections ([`Relay::join`]): nothing is
/// dialled, so neither method runs.
struct NoDial;

impl Dial for NoDial {
    fn connected(&mut self, _ctx: &mut Context<'_>, _client: ConnId) {}

    fn failed(
        &mut self,
        _ctx: &mut Context<'_>,
        _client: ConnId,
        _reason: &LostReason,
    ) -> Option<Target> {
        None
    }
}

/// The upstream side of a pair made by [`Relay::join`]: the upstream connection's
/// protocol forwards its callbacks here (`connection_made` has already run). Clones are
/// handles to the same pair.
#[derive(Clone)]
pub struct RelayUpstream {
    pair: Rc<RefCell<Pair>>,
}

impl RelayUpstream {
    /// Forward of the upstream's `data_received`.
    pub fn data_received(&self, ctx: &mut Context<'_>, data: &[u8]) {
        self.pair
            .borrow_mut()
            .data_received(ctx, Side::Upstream, data);
    }

    /// Forward of the upstream's `eof_received`.
    pub fn eof_received(&self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().eof_received(ctx, Side::Upstream);
    }

    /// Forward of the upstream's `pause_writing`.
    pub fn pause_writing(&self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().pause_writing(ctx, Side::Upstream);
    }

    /// Forward of the upstream's `write_drained`.
    pub fn write_drained(&self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().write_drained(ctx, Side::Upstream);
    }

    /// Forward of the upstream's `connection_lost`.
    pub fn connection_lost(&self, ctx: &mut Context<'_>, reason: LostReason) {
        let pair = Rc::clone(&self.pair);
        let mut p = self.pair.borrow_mut();
        let dial = p.dial_number;
        p.connection_lost(ctx, &pair, Side::Upstream, dial, reason);
    }
}

impl Protocol for Upstream {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().upstream_made(ctx, self.dial);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.pair
            .borrow_mut()
            .data_received(ctx, Side::Upstream, data);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().eof_received(ctx, Side::Upstream);
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().pause_writing(ctx, Side::Upstream);
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.pair.borrow_mut().write_drained(ctx, Side::Upstream);
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        let pair = Rc::clone(&self.pair);
        self.pair
            .borrow_mut()
            .connection_lost(ctx, &pair, Side::Upstream, self.dial, reason);
    }
}
