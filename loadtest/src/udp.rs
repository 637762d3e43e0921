//! The `udp` workload: request/response datagrams with a timeout per datagram, driven by
//! any [`Session`] (the same trait as stream workloads).
//!
//! Owns: one UDP socket per flow; the datagram driver (each `write_request` is one
//! datagram, each received datagram one `on_bytes` call); [`SeqEchoSession`], the echo
//! session of `ringwork-load udp`.
//! Contract: a datagram unanswered after the timeout counts as a `timeout` error, frees its
//! slot and is reported to the session with [`Session::expired`]: a lost datagram is never
//! waited on past it. A ticker wakes when the next datagram falls due (constant rate) or
//! expires, at least every millisecond. Latencies are matched to the oldest outstanding request, exact
//! with one datagram in flight per flow (the default); with more, replies that overtake
//! each other swap their latencies (counts stay exact).
//! Does not: use `on_connect` or `on_eof` (no connection).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::Sender;
use ringwork::{DatagramContext, DatagramProtocol, LocalHandle, Reactor, UdpId};

use crate::report::ErrorKind;
use crate::run::{CoreResult, Live, Plan};
use crate::session::{Progress, ResponseError, Session};
use crate::stream::CoreState;

/// Smallest echo datagram: the sequence number.
pub(crate) const MIN_SIZE: usize = 8;
/// Longest wait of the ticker (how soon it notices the end of the run).
const TICK: Duration = Duration::from_millis(1);
/// Shortest wait of the ticker (no busy loop when something is due at once).
const MIN_WAIT: Duration = Duration::from_micros(20);
/// Default per-datagram timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Echo over datagrams: each request is a little-endian `u64` sequence number and filler;
/// a reply completes the request with its number, so late replies (after their timeout)
/// and strays are recognised and ignored.
#[derive(Clone, Debug)]
pub struct SeqEchoSession {
    filler: Bytes,
    seq: u64,
    outstanding: VecDeque<u64>,
}

impl SeqEchoSession {
    /// Datagrams of `size` bytes (at least 8).
    #[must_use]
    pub fn new(size: usize) -> Self {
        Self {
            filler: crate::tcp::message(size.saturating_sub(MIN_SIZE)),
            seq: 0,
            outstanding: VecDeque::new(),
        }
    }
}

impl Session for SeqEchoSession {
    fn write_request(&mut self, out: &mut BytesMut) {
        self.seq += 1;
        out.put_u64_le(self.seq);
        out.put_slice(&self.filler);
        self.outstanding.push_back(self.seq);
    }

    fn on_bytes(&mut self, data: &[u8]) -> Result<Progress, ResponseError> {
        let done = Progress {
            consumed: data.len(),
            ..Progress::default()
        };
        let Some(seq) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            return Err(ResponseError::Malformed {
                reason: "datagram shorter than its 8-byte sequence number".into(),
            });
        };
        if data[8..] != self.filler[..] {
            return Err(ResponseError::Mismatch { offset: 8 });
        }
        let seq = u64::from_le_bytes(seq);
        // Not outstanding: a reply after its timeout (already counted) or a stray.
        let Some(pos) = self.outstanding.iter().position(|&s| s == seq) else {
            return Ok(done);
        };
        self.outstanding.remove(pos);
        Ok(Progress {
            completed: 1,
            ..done
        })
    }

    fn expired(&mut self, requests: u32) {
        for _ in 0..requests {
            self.outstanding.pop_front();
        }
    }
}

struct Flow<S> {
    id: Option<UdpId>,
    session: S,
    /// (intended, actual send time), oldest first.
    in_flight: VecDeque<(Instant, Instant)>,
    next_send: Instant,
}

struct UdpCore<S> {
    st: CoreState,
    flows: Vec<Flow<S>>,
    target: SocketAddr,
    timeout: Duration,
    scratch: BytesMut,
}

impl<S: Session> UdpCore<S> {
    fn on_datagram(&mut self, flow: usize, data: &[u8], now: Instant) {
        if self.st.in_window(now) {
            self.st.counters.bytes_in += data.len() as u64;
        }
        let f = &mut self.flows[flow];
        let progress = match f.session.on_bytes(data) {
            Ok(p) => p,
            Err(e) => return self.st.error(ErrorKind::BadResponse, 1, || e.to_string()),
        };
        let n = (progress.completed as usize).min(f.in_flight.len());
        let record = self.st.in_window(now);
        for (intended, sent) in f.in_flight.drain(..n) {
            if record {
                self.st.record(now, intended, sent);
            }
        }
        self.st.in_flight = self.st.in_flight.saturating_sub(n as u64);
        self.st.completed += n as u64;
        if record {
            self.st.counters.requests += n as u64;
            self.st.counters.unsuccessful += u64::from(progress.unsuccessful);
            if let Some(class) = progress.class {
                self.st.counters.count_class(class, n as u64);
            }
        }
        self.st.live.cores[self.st.core].set_completed(self.st.completed);
        self.st.check_done();
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        for f in &mut self.flows {
            let mut n = 0u32;
            while let Some(&(_, sent)) = f.in_flight.front() {
                if now.saturating_duration_since(sent) < timeout {
                    break;
                }
                f.in_flight.pop_front();
                n += 1;
            }
            if n > 0 {
                f.session.expired(n);
                self.st.in_flight = self.st.in_flight.saturating_sub(u64::from(n));
                self.st.error(ErrorKind::Timeout, u64::from(n), || {
                    format!("no reply within {timeout:?}")
                });
            }
        }
        self.st.check_done();
    }

    /// The datagrams flow `flow` may send now.
    fn fill(&mut self, flow: usize, now: Instant, out: &mut Vec<Bytes>) {
        let plan = Arc::clone(&self.st.plan);
        if now >= plan.end || self.st.live.stopping() {
            return;
        }
        let f = &mut self.flows[flow];
        if !f.session.ready() {
            return;
        }
        while f.in_flight.len() < plan.depth && self.st.quota != Some(0) {
            let intended = match plan.interval {
                None => now,
                Some(interval) => {
                    // With a send window, due from the start of the window holding the
                    // slot (see `Plan::wake_at`), and timed from the send if earlier.
                    if plan.wake_at(f.next_send) > now {
                        break;
                    }
                    let at = f.next_send;
                    f.next_send = at + interval;
                    at.min(now)
                }
            };
            if let Some(q) = &mut self.st.quota {
                *q -= 1;
            }
            f.session.write_request(&mut self.scratch);
            let datagram = self.scratch.split().freeze();
            if self.st.in_window(now) {
                self.st.counters.sent += 1;
                self.st.counters.bytes_out += datagram.len() as u64;
            }
            out.push(datagram);
            f.in_flight.push_back((intended, now));
            self.st.in_flight += 1;
        }
    }
}

struct FlowProto<S> {
    core: Rc<RefCell<UdpCore<S>>>,
    flow: usize,
    out: Vec<Bytes>,
}

impl<S: Session> DatagramProtocol for FlowProto<S> {
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], _from: SocketAddr) {
        // Any source is accepted (a target of 0.0.0.0 answers from 127.0.0.1); the session
        // decides whether the datagram is a reply.
        let now = ctx.now();
        let target = {
            let mut core = self.core.borrow_mut();
            core.on_datagram(self.flow, data, now);
            core.fill(self.flow, now, &mut self.out);
            core.target
        };
        for d in self.out.drain(..) {
            ctx.send_bytes_to(d, target);
        }
    }
}

/// Expires and sends what is due; returns how long until something else falls due
/// (between [`MIN_WAIT`] and [`TICK`]).
fn tick<S: Session>(reactor: &mut Reactor, core: &Rc<RefCell<UdpCore<S>>>) -> Duration {
    let now = Instant::now();
    let mut c = core.borrow_mut();
    c.expire(now);
    let target = c.target;
    let mut out = Vec::new();
    let mut next = now + TICK;
    for flow in 0..c.flows.len() {
        let Some(id) = c.flows[flow].id else { continue };
        c.fill(flow, now, &mut out);
        for d in out.drain(..) {
            reactor.send_to(id, d, target);
        }
        let f = &c.flows[flow];
        if let Some(&(_, sent)) = f.in_flight.front() {
            next = next.min(sent + c.timeout);
        }
        if c.st.plan.interval.is_some() && f.in_flight.len() < c.st.plan.depth {
            next = next.min(c.st.plan.wake_at(f.next_send));
        }
    }
    next.saturating_duration_since(now).max(MIN_WAIT)
}

/// Runs [`tick`] after `delay`, then again when it says, until the run stops.
fn schedule<S: Session>(h: LocalHandle, core: Rc<RefCell<UdpCore<S>>>, delay: Duration) {
    let handle = h.clone();
    // Detached: the task runs on even though its JoinHandle is dropped.
    drop(handle.spawn_local(async move {
        let _ = h.sleep(delay).await;
        if core.borrow().st.live.stopping() {
            return;
        }
        let again = h.clone();
        h.run(move |r| {
            let next = tick(r, &core);
            schedule(again, core, next);
        });
    }));
}

/// Binds this core's flows (a session each from `factory`) and starts its ticker.
pub(crate) fn start_core<S: Session>(
    reactor: &mut Reactor,
    plan: Arc<Plan>,
    live: Arc<Live>,
    factory: &dyn Fn() -> S,
    tx: Sender<CoreResult>,
) {
    let core_index = reactor.core_index();
    let st = CoreState::new(Arc::clone(&plan), live, core_index, None);
    let indices: Vec<usize> = (core_index..plan.connections).step_by(plan.cores).collect();
    let core = Rc::new(RefCell::new(UdpCore {
        st,
        flows: indices
            .iter()
            .map(|&i| Flow {
                id: None,
                session: factory(),
                in_flight: VecDeque::with_capacity(plan.depth),
                next_send: plan.slot_start(i).1,
            })
            .collect(),
        target: plan.addr,
        timeout: plan.timeout.unwrap_or(DEFAULT_TIMEOUT),
        scratch: BytesMut::new(),
    }));
    let local: SocketAddr = if plan.addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    for flow in 0..indices.len() {
        let proto = FlowProto {
            core: Rc::clone(&core),
            flow,
            out: Vec::new(),
        };
        match reactor.bind_udp(local, proto) {
            Ok(id) => core.borrow_mut().flows[flow].id = Some(id),
            Err(e) => core
                .borrow_mut()
                .st
                .error(ErrorKind::ConnectError, 1, || e.to_string()),
        }
    }
    schedule(reactor.handle(), Rc::clone(&core), Duration::ZERO);
    reactor.on_stop(move |r| {
        let mut result = core.borrow_mut().st.take_result();
        result.counters.panics = r.stats().panics;
        result.engine = crate::run::engine_counts(r, core.borrow().st.completed);
        let _ = tx.send(result);
    });
}
