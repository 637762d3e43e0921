//! Deterministic simulation: two [`Machine`]s talking over an in-memory link, under a
//! virtual clock, with faults drawn from a seed.
//!
//! Owns: [`Pair`] (a client machine, a server machine, the link between them and the
//! clock), [`SimConfig`] (what the link does: segment splits, delays, receiver stalls, a
//! bounded window, clock jumps, resets, truncation) and [`SimRng`] (the seeded generator).
//! Contract: everything that happens is a function of the two machines, the calls the test
//! makes and [`SimConfig::seed`]: the same seed replays the same run exactly, so a failing
//! seed is a reproducible bug report (tests print it; `RINGWORK_SIM_SEED` replays one).
//! Time moves only in [`Pair::step`] / [`Pair::advance`]; [`Pair::drive`] moves bytes at the
//! current instant.
//! Does not: run an engine, open sockets or read the system clock (one `Instant::now()` at
//! creation is the clock's origin; every later instant is that plus simulated time).
//!
//! # Model
//! Each direction is a pipe of segments. What a machine transmits is cut into segments of
//! 1..=[`SimConfig::max_segment`] bytes, each delivered [`SimConfig::max_delay`] or less
//! later, in order. A receiver gets a segment only while it
//! [`wants_input`](Machine::wants_input) and is not stalled; undelivered bytes beyond
//! [`SimConfig::window`] make the sender unwritable until half of them are delivered (the
//! transport's watermarks). [`Close::Write`] and [`Close::Graceful`] deliver an end of
//! stream after the last byte; a gracefully closed side that later receives bytes answers
//! with a reset, as TCP does. [`Close::Abort`] and injected resets end both sides with
//! [`Machine::handle_lost`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{Close, Machine};

/// A small deterministic generator (SplitMix64): the same seed gives the same numbers on
/// every platform and version, which a replayable simulation needs (and general-purpose
/// RNG crates do not promise).
#[derive(Clone, Debug)]
pub struct SimRng(u64);

impl SimRng {
    /// A generator starting from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `per_million` / 1,000,000.
    pub fn chance(&mut self, per_million: u32) -> bool {
        self.below(1_000_000) < u64::from(per_million)
    }

    /// A duration in `0..=max`, in whole microseconds.
    pub fn duration(&mut self, max: Duration) -> Duration {
        let micros = u64::try_from(max.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(self.below(micros.saturating_add(1)))
    }
}

/// What the simulated link does. [`SimConfig::ideal`] is a perfect link; [`SimConfig::faulty`]
/// draws a hostile one from a seed.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SimConfig {
    /// The seed of every random choice.
    pub seed: u64,
    /// Largest segment; transmits are cut into pieces of 1..=this many bytes.
    pub max_segment: usize,
    /// Longest delivery delay of a segment.
    pub max_delay: Duration,
    /// Undelivered bytes in one direction before its sender is told it is not writable.
    pub window: usize,
    /// Chance per step (per million) that a receiver stops reading for a while.
    pub stall_chance: u32,
    /// Longest such stall.
    pub max_stall: Duration,
    /// Chance per step (per million) that the clock jumps ahead.
    pub jump_chance: u32,
    /// Longest clock jump.
    pub max_jump: Duration,
    /// Chance per step (per million) that the connection is reset.
    pub reset_chance: u32,
    /// Chance per step (per million) that one direction is cut: the receiver sees the end of
    /// the stream and later bytes are lost (a truncating middlebox, a crashed writer).
    pub truncate_chance: u32,
}

impl SimConfig {
    /// A perfect link: whole transmits, no delay, no faults, a large window.
    #[must_use]
    pub fn ideal() -> Self {
        Self {
            seed: 0,
            max_segment: usize::MAX,
            max_delay: Duration::ZERO,
            window: 1 << 20,
            stall_chance: 0,
            max_stall: Duration::ZERO,
            jump_chance: 0,
            max_jump: Duration::ZERO,
            reset_chance: 0,
            truncate_chance: 0,
        }
    }

    /// A link whose splits, delays, window, stalls and clock jumps are drawn from `seed`,
    /// without resets or truncation (add them with [`SimConfig::with_breakage`]).
    #[must_use]
    pub fn faulty(seed: u64) -> Self {
        let mut rng = SimRng::new(seed ^ 0x5eed_5eed_5eed_5eed);
        let segments = [1, 2, 3, 7, 16, 100, 1500, 65_536];
        Self {
            seed,
            max_segment: segments[rng.below(segments.len() as u64) as usize],
            max_delay: Duration::from_millis(rng.below(50)),
            window: 1 + rng.below(256 * 1024) as usize,
            stall_chance: rng.below(200_000) as u32,
            max_stall: Duration::from_millis(rng.below(2_000)),
            jump_chance: rng.below(50_000) as u32,
            max_jump: Duration::from_secs(rng.below(120)),
            reset_chance: 0,
            truncate_chance: 0,
        }
    }

    /// The same link, also resetting or truncating the connection now and then.
    #[must_use]
    pub fn with_breakage(mut self) -> Self {
        let mut rng = SimRng::new(self.seed ^ 0xb4ea_cafe);
        self.reset_chance = rng.below(20_000) as u32;
        self.truncate_chance = rng.below(20_000) as u32;
        self
    }

    /// The seed to replay from the environment (`RINGWORK_SIM_SEED`), if set.
    #[must_use]
    pub fn seed_from_env() -> Option<u64> {
        std::env::var("RINGWORK_SIM_SEED").ok()?.trim().parse().ok()
    }
}

/// Which machine of a [`Pair`].
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Side {
    /// [`Pair::client`].
    Client,
    /// [`Pair::server`].
    Server,
}

/// One direction of the link.
#[derive(Debug, Default)]
struct Pipe {
    /// Segments not yet delivered, with their delivery instants (non-decreasing).
    segments: VecDeque<(Instant, Bytes)>,
    /// Bytes in `segments`.
    bytes: usize,
    /// The sender ended the stream: deliver an end of stream after the last segment.
    eof: bool,
    eof_delivered: bool,
    /// The direction was cut: nothing more is carried.
    cut: bool,
}

/// What the simulation knows about one machine.
#[derive(Debug)]
struct End {
    /// Gracefully closed or aborted: the machine gets no more calls (but timeouts).
    closed: bool,
    /// Lost: no more calls at all.
    lost: bool,
    /// What it was last told about writability.
    writable: bool,
    /// Not reading until then.
    stalled_until: Option<Instant>,
}

impl End {
    fn new() -> Self {
        Self {
            closed: false,
            lost: false,
            writable: true,
            stalled_until: None,
        }
    }
}

/// A client machine and a server machine connected by a simulated link under a virtual
/// clock.
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use ringwork_protocols::kit::sim::Pair;
/// use ringwork_protocols::kit::{Close, Machine};
///
/// /// Sends its input back, upper-cased.
/// #[derive(Default)]
/// struct Shout(Option<Bytes>);
///
/// impl Machine for Shout {
///     type Event = ();
///     fn handle_input(&mut self, data: &[u8], _now: Instant) {
///         self.0 = Some(Bytes::from(data.to_ascii_uppercase()));
///     }
///     fn handle_eof(&mut self, _now: Instant) {}
///     fn handle_timeout(&mut self, _now: Instant) {}
///     fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> { self.0.take() }
///     fn poll_event(&mut self) -> Option<()> { None }
///     fn poll_close(&mut self) -> Option<Close> { None }
///     fn poll_timeout(&self) -> Option<Instant> { None }
///     fn wants_input(&self) -> bool { true }
/// }
///
/// /// Sends "hi" once and records what comes back.
/// #[derive(Default)]
/// struct Greeter { sent: bool, heard: Vec<u8> }
///
/// impl Machine for Greeter {
///     type Event = ();
///     fn handle_input(&mut self, data: &[u8], _now: Instant) { self.heard.extend_from_slice(data) }
///     fn handle_eof(&mut self, _now: Instant) {}
///     fn handle_timeout(&mut self, _now: Instant) {}
///     fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
///         (!std::mem::replace(&mut self.sent, true)).then(|| Bytes::from_static(b"hi"))
///     }
///     fn poll_event(&mut self) -> Option<()> { None }
///     fn poll_close(&mut self) -> Option<Close> { None }
///     fn poll_timeout(&self) -> Option<Instant> { None }
///     fn wants_input(&self) -> bool { true }
/// }
///
/// let mut pair = Pair::new(Greeter::default(), Shout::default());
/// pair.drive();
/// assert_eq!(pair.client.heard, b"HI");
/// ```
pub struct Pair<C, S> {
    /// The client machine: call its methods between steps.
    pub client: C,
    /// The server machine.
    pub server: S,
    config: SimConfig,
    rng: SimRng,
    start: Instant,
    now: Instant,
    /// Client to server.
    up: Pipe,
    /// Server to client.
    down: Pipe,
    client_end: End,
    server_end: End,
    trace: Vec<String>,
    tracing: bool,
    /// Steps in a row that did not move the clock (a stuck machine is a bug, not a hang).
    idle_steps: u32,
}

/// Steps at one instant before the simulation calls the run stuck.
const MAX_IDLE_STEPS: u32 = 100_000;

impl<C: Machine, S: Machine> Pair<C, S> {
    /// Two machines over a perfect link ([`SimConfig::ideal`]), both told they are connected.
    pub fn new(client: C, server: S) -> Self {
        Self::with_config(client, server, SimConfig::ideal())
    }

    /// Two machines over the link `config` describes.
    pub fn with_config(mut client: C, mut server: S, config: SimConfig) -> Self {
        let start = Instant::now();
        client.handle_connected(start);
        server.handle_connected(start);
        Self {
            client,
            server,
            rng: SimRng::new(config.seed),
            config,
            start,
            now: start,
            up: Pipe::default(),
            down: Pipe::default(),
            client_end: End::new(),
            server_end: End::new(),
            trace: Vec::new(),
            tracing: false,
            idle_steps: 0,
        }
    }

    /// Records what happens (see [`Pair::trace`]).
    #[must_use]
    pub fn traced(mut self) -> Self {
        self.tracing = true;
        self
    }

    /// What happened, one line per action (when [`Pair::traced`]).
    #[must_use]
    pub fn trace(&self) -> &[String] {
        &self.trace
    }

    /// The simulated time.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Simulated time since the pair was made.
    #[must_use]
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// The link's settings (the seed among them).
    #[must_use]
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// Whether `side` was lost (reset) or closed.
    #[must_use]
    pub fn is_done(&self, side: Side) -> bool {
        let end = self.end(side);
        end.lost || end.closed
    }

    /// Whether `side` was lost (reset by the peer, aborted, or broken by the link).
    #[must_use]
    pub fn is_lost(&self, side: Side) -> bool {
        self.end(side).lost
    }

    /// Whether both directions are finished: nothing in flight, and each side closed, lost,
    /// or at the end of its input.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        let both_lost = self.client_end.lost && self.server_end.lost;
        both_lost
            || (self.up.segments.is_empty()
                && self.down.segments.is_empty()
                && (self.client_end.lost || self.client_end.closed || self.down.eof_delivered)
                && (self.server_end.lost || self.server_end.closed || self.up.eof_delivered))
    }

    /// Moves bytes at the current instant until nothing more can move without the clock:
    /// collects transmits and closes, applies writability, delivers due segments.
    pub fn drive(&mut self) {
        loop {
            let mut moved = self.collect(Side::Client);
            moved |= self.collect(Side::Server);
            moved |= self.deliver(Side::Server);
            moved |= self.deliver(Side::Client);
            if !moved {
                return;
            }
        }
    }

    /// Advances the clock to the next thing that will happen (a delivery, the end of a
    /// stall, a machine's deadline), maybe injecting a fault first, and drives. `false`
    /// when nothing is pending: the run is over unless the test acts.
    pub fn step(&mut self) -> bool {
        self.step_before(None)
    }

    /// [`Pair::step`], but not to an instant after `limit` (then `false`, and the clock
    /// stays).
    fn step_before(&mut self, limit: Option<Instant>) -> bool {
        self.drive();
        self.inject_faults();
        // A fault (a clock jump that fired a deadline, a reset) may have made work.
        self.drive();
        let Some(next) = self.next_instant() else {
            return false;
        };
        if limit.is_some_and(|limit| next > limit) {
            return false;
        }
        if next <= self.now {
            self.idle_steps += 1;
            assert!(
                self.idle_steps < MAX_IDLE_STEPS,
                "simulation stuck at +{:?}: a machine keeps asking for a deadline it has \
                 handled, or a receiver keeps wanting input it does not take (seed {})",
                self.elapsed(),
                self.config.seed,
            );
        } else {
            self.idle_steps = 0;
        }
        let target = next.max(self.now);
        self.set_time(target);
        self.drive();
        true
    }

    /// Advances the clock by `by`, handling everything due on the way in order.
    pub fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            self.drive();
            match self.next_instant() {
                Some(next) if next <= until => {
                    let target = next.max(self.now);
                    self.set_time(target);
                }
                _ => break,
            }
        }
        self.set_time(until);
        self.drive();
    }

    /// Runs until nothing is pending before `limit` of simulated time from now: drives,
    /// hands every event to `on_client` / `on_server` (which may call the machine), and
    /// steps. Returns whether it stopped because nothing at all was pending (`false`: what
    /// is pending, a keep-alive deadline say, lies beyond the limit; the clock stays before
    /// it).
    pub fn run(
        &mut self,
        limit: Duration,
        mut on_client: impl FnMut(&mut C, C::Event, Instant),
        mut on_server: impl FnMut(&mut S, S::Event, Instant),
    ) -> bool {
        let until = self.now + limit;
        let mut stuck = false;
        loop {
            self.drive();
            let mut acted = false;
            while let Some(event) = self.server.poll_event() {
                on_server(&mut self.server, event, self.now);
                acted = true;
            }
            while let Some(event) = self.client.poll_event() {
                on_client(&mut self.client, event, self.now);
                acted = true;
            }
            if acted {
                stuck = false;
                continue;
            }
            if stuck {
                // The last step could not move, and its events changed nothing.
                return self.next_instant().is_none();
            }
            stuck = !self.step_before(Some(until));
        }
    }

    /// Cuts the connection: both machines get [`Machine::handle_lost`] now.
    pub fn reset(&mut self) {
        self.note(|| "reset by the link".to_string());
        self.lose(Side::Client);
        self.lose(Side::Server);
    }

    fn end(&self, side: Side) -> &End {
        match side {
            Side::Client => &self.client_end,
            Side::Server => &self.server_end,
        }
    }

    fn note(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let at = self.now - self.start;
            self.trace.push(format!("{at:?} {}", line()));
        }
    }

    /// Sets the clock and gives due timeouts to both machines.
    fn set_time(&mut self, now: Instant) {
        if now > self.now {
            self.now = now;
        }
        let now = self.now;
        if !self.is_done(Side::Client) && self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.note(|| "client timeout".to_string());
            self.client.handle_timeout(now);
        }
        if !self.is_done(Side::Server) && self.server.poll_timeout().is_some_and(|t| t <= now) {
            self.note(|| "server timeout".to_string());
            self.server.handle_timeout(now);
        }
        for side in [Side::Client, Side::Server] {
            let end = match side {
                Side::Client => &mut self.client_end,
                Side::Server => &mut self.server_end,
            };
            if end.stalled_until.is_some_and(|t| t <= now) {
                end.stalled_until = None;
            }
        }
    }

    /// The next instant something is scheduled.
    fn next_instant(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for (pipe, end, wants) in [
            (&self.up, &self.server_end, self.server.wants_input()),
            (&self.down, &self.client_end, self.client.wants_input()),
        ] {
            if end.lost || end.closed {
                continue;
            }
            consider(end.stalled_until);
            if end.stalled_until.is_none() && wants {
                consider(pipe.segments.front().map(|(at, _)| *at));
            }
        }
        if !self.is_done(Side::Client) {
            consider(self.client.poll_timeout());
        }
        if !self.is_done(Side::Server) {
            consider(self.server.poll_timeout());
        }
        next
    }

    /// Random faults for this step.
    fn inject_faults(&mut self) {
        let config = self.config.clone();
        if self.rng.chance(config.jump_chance) {
            let by = self.rng.duration(config.max_jump);
            self.note(|| format!("clock jumps {by:?}"));
            let target = self.now + by;
            self.set_time(target);
        }
        for side in [Side::Client, Side::Server] {
            if self.rng.chance(config.stall_chance) {
                let until = self.now + self.rng.duration(config.max_stall);
                let offset = until - self.start;
                self.note(|| format!("{side:?} stalls until +{offset:?}"));
                match side {
                    Side::Client => self.client_end.stalled_until = Some(until),
                    Side::Server => self.server_end.stalled_until = Some(until),
                }
            }
        }
        if self.rng.chance(config.reset_chance) {
            self.reset();
        }
        if self.rng.chance(config.truncate_chance) {
            let towards_server = self.rng.below(2) == 0;
            self.note(|| {
                let to = if towards_server { "server" } else { "client" };
                format!("link to the {to} is cut")
            });
            let pipe = if towards_server {
                &mut self.up
            } else {
                &mut self.down
            };
            pipe.cut = true;
            pipe.segments.clear();
            pipe.bytes = 0;
            pipe.eof = true;
        }
    }

    /// Takes `side`'s transmits and close request into its outgoing pipe.
    fn collect(&mut self, side: Side) -> bool {
        let (end, pipe) = match side {
            Side::Client => (&self.client_end, &self.up),
            Side::Server => (&self.server_end, &self.down),
        };
        if end.lost || end.closed {
            return false;
        }
        let accepting = !pipe.eof;
        let mut moved = false;
        loop {
            let next = match side {
                Side::Client => self.client.poll_transmit(self.now),
                Side::Server => self.server.poll_transmit(self.now),
            };
            let Some(bytes) = next else { break };
            moved = true;
            if accepting {
                self.send(side, bytes);
            }
        }
        let close = match side {
            Side::Client => self.client.poll_close(),
            Side::Server => self.server.poll_close(),
        };
        if let Some(close) = close {
            moved = true;
            self.note(|| format!("{side:?} asks {close:?}"));
            match close {
                Close::Write => self.pipe_mut(side).eof = true,
                Close::Graceful => {
                    self.pipe_mut(side).eof = true;
                    self.end_mut(side).closed = true;
                }
                Close::Abort => {
                    self.lose(Side::Client);
                    self.lose(Side::Server);
                }
            }
        }
        moved | self.update_writable(side)
    }

    fn pipe_mut(&mut self, from: Side) -> &mut Pipe {
        match from {
            Side::Client => &mut self.up,
            Side::Server => &mut self.down,
        }
    }

    fn end_mut(&mut self, side: Side) -> &mut End {
        match side {
            Side::Client => &mut self.client_end,
            Side::Server => &mut self.server_end,
        }
    }

    /// Cuts `bytes` into segments with delivery times.
    fn send(&mut self, from: Side, mut bytes: Bytes) {
        let max_segment = self.config.max_segment.max(1);
        let max_delay = self.config.max_delay;
        while !bytes.is_empty() {
            let size = if max_segment >= bytes.len() {
                bytes.len()
            } else {
                1 + self.rng.below(max_segment as u64) as usize
            };
            let piece = bytes.split_to(size.min(bytes.len()));
            let delay = self.rng.duration(max_delay);
            let now = self.now;
            let pipe = self.pipe_mut(from);
            if pipe.cut {
                return;
            }
            let at = pipe
                .segments
                .back()
                .map_or(now + delay, |(last, _)| (*last).max(now + delay));
            pipe.bytes += piece.len();
            pipe.segments.push_back((at, piece));
        }
    }

    /// Tells `side` when its outgoing pipe crosses the window.
    fn update_writable(&mut self, side: Side) -> bool {
        let window = self.config.window.max(1);
        let now = self.now;
        let (end, bytes) = match side {
            Side::Client => (&mut self.client_end, self.up.bytes),
            Side::Server => (&mut self.server_end, self.down.bytes),
        };
        if end.lost || end.closed {
            return false;
        }
        let writable = if end.writable {
            bytes <= window
        } else {
            bytes <= window / 2
        };
        if writable == end.writable {
            return false;
        }
        end.writable = writable;
        match side {
            Side::Client => self.client.handle_writable(writable, now),
            Side::Server => self.server.handle_writable(writable, now),
        }
        true
    }

    /// Delivers due segments (and a due end of stream) to `to`.
    fn deliver(&mut self, to: Side) -> bool {
        let now = self.now;
        let mut moved = false;
        loop {
            let (end, pipe) = match to {
                Side::Server => (&self.server_end, &mut self.up),
                Side::Client => (&self.client_end, &mut self.down),
            };
            if end.lost {
                return moved;
            }
            let wants = match to {
                Side::Server => self.server.wants_input(),
                Side::Client => self.client.wants_input(),
            };
            let due = pipe.segments.front().is_some_and(|(at, _)| *at <= now);
            if due && end.closed {
                // Bytes reach a closed socket: TCP answers with a reset.
                pipe.segments.clear();
                pipe.bytes = 0;
                self.note(|| format!("bytes reach the closed {to:?}: reset"));
                self.lose(Side::Client);
                self.lose(Side::Server);
                return true;
            }
            if !wants || end.stalled_until.is_some() || end.closed {
                return moved;
            }
            if due {
                let Some((_, bytes)) = pipe.segments.pop_front() else {
                    return moved;
                };
                pipe.bytes -= bytes.len();
                self.note(|| format!("{to:?} reads {} bytes", bytes.len()));
                match to {
                    Side::Server => self.server.handle_input(&bytes, now),
                    Side::Client => self.client.handle_input(&bytes, now),
                }
                moved = true;
                let from = match to {
                    Side::Server => Side::Client,
                    Side::Client => Side::Server,
                };
                self.update_writable(from);
                continue;
            }
            if pipe.segments.is_empty() && pipe.eof && !pipe.eof_delivered {
                pipe.eof_delivered = true;
                self.note(|| format!("{to:?} reads the end of stream"));
                match to {
                    Side::Server => self.server.handle_eof(now),
                    Side::Client => self.client.handle_eof(now),
                }
                return true;
            }
            return moved;
        }
    }

    fn lose(&mut self, side: Side) {
        let now = self.now;
        let end = self.end_mut(side);
        if end.lost {
            return;
        }
        end.lost = true;
        self.pipe_mut(side).segments.clear();
        self.pipe_mut(side).bytes = 0;
        self.note(|| format!("{side:?} lost"));
        match side {
            Side::Client => self.client.handle_lost(now),
            Side::Server => self.server.handle_lost(now),
        }
    }
}

/// A scripted peer for [`Pair`]s: sends what the test writes, records what it receives,
/// and closes when told. Use it to test one machine against raw bytes (a server against
/// hand-written requests, a client against hand-written responses).
#[derive(Debug, Default)]
pub struct RawPeer {
    out: super::Output,
    received: bytes::BytesMut,
    close: Option<Close>,
    eof: bool,
    lost: bool,
    /// Stop reading (the peer's flow control) while set.
    pub paused: bool,
}

impl RawPeer {
    /// A peer with nothing to send.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `data` to send.
    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        self.out.write(data.as_ref());
    }

    /// Half-closes after what was queued.
    pub fn shutdown_write(&mut self) {
        self.close = Some(Close::Write);
    }

    /// Closes after what was queued.
    pub fn close(&mut self) {
        self.close = Some(Close::Graceful);
    }

    /// Resets the connection.
    pub fn abort(&mut self) {
        self.close = Some(Close::Abort);
    }

    /// Everything received so far.
    #[must_use]
    pub fn received(&self) -> &[u8] {
        &self.received
    }

    /// Takes what was received so far.
    pub fn take_received(&mut self) -> Vec<u8> {
        self.received.split().to_vec()
    }

    /// Whether the other side ended its stream.
    #[must_use]
    pub fn saw_eof(&self) -> bool {
        self.eof
    }

    /// Whether the connection was reset.
    #[must_use]
    pub fn saw_reset(&self) -> bool {
        self.lost
    }
}

impl Machine for RawPeer {
    type Event = ();

    fn handle_input(&mut self, data: &[u8], _now: Instant) {
        self.received.extend_from_slice(data);
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_lost(&mut self, _now: Instant) {
        self.lost = true;
    }

    fn poll_transmit(&mut self, _now: Instant) -> Option<Bytes> {
        self.out.poll()
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }

    fn poll_close(&mut self) -> Option<Close> {
        self.close.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_input(&self) -> bool {
        !self.paused
    }
}

#[cfg(test)]
mod tests;
