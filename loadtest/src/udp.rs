//! The `udp` workload: request/response datagrams with a timeout per datagram.
//!
//! Owns: one UDP socket per flow; each datagram starts with a little-endian `u64` sequence
//! number (then filler up to `--size`), and a reply is matched to its request by that
//! number, so loss, reordering and late replies never confuse the accounting. A datagram
//! unanswered after the timeout counts as a `timeout` error and frees its slot: a lost
//! datagram is never waited on past it. A 1 ms ticker expires datagrams and sends what
//! the constant-rate schedule has made due.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use crossbeam_channel::Sender;
use ringwork::{DatagramContext, DatagramProtocol, Reactor, UdpId};

use crate::report::ErrorKind;
use crate::run::{CoreResult, Live, Plan};
use crate::stream::CoreState;

/// Smallest datagram: the sequence number.
pub(crate) const MIN_SIZE: usize = 8;
/// How often the ticker runs.
const TICK: Duration = Duration::from_millis(1);
/// Default per-datagram timeout.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

struct Flow {
    id: Option<UdpId>,
    seq: u64,
    /// (sequence, intended, actual send time), oldest first.
    in_flight: VecDeque<(u64, Instant, Instant)>,
    next_send: Instant,
}

struct UdpCore {
    st: CoreState,
    flows: Vec<Flow>,
    filler: Bytes,
    target: SocketAddr,
    timeout: Duration,
}

impl UdpCore {
    fn on_datagram(&mut self, flow: usize, data: &[u8], now: Instant) {
        let record = self.st.in_window(now);
        if record {
            self.st.counters.bytes_in += data.len() as u64;
        }
        let Some(seq) = data.get(..8).and_then(|b| <[u8; 8]>::try_from(b).ok()) else {
            self.st.error(ErrorKind::BadResponse, 1, || {
                "datagram shorter than 8 bytes".into()
            });
            return;
        };
        let seq = u64::from_le_bytes(seq);
        let f = &mut self.flows[flow];
        // Not found: a reply after its timeout (already counted) or a stray datagram.
        let Some(pos) = f.in_flight.iter().position(|&(s, _, _)| s == seq) else {
            return;
        };
        let Some((_, intended, sent)) = f.in_flight.remove(pos) else {
            return;
        };
        self.st.in_flight -= 1;
        self.st.completed += 1;
        if record {
            self.st.record(now, intended, sent);
            self.st.counters.requests += 1;
        }
        self.st.live.cores[self.st.core].set_completed(self.st.completed);
        self.st.check_done();
    }

    fn expire(&mut self, now: Instant) {
        let timeout = self.timeout;
        for flow in 0..self.flows.len() {
            while let Some(&(_, _, sent)) = self.flows[flow].in_flight.front() {
                if now.saturating_duration_since(sent) < timeout {
                    break;
                }
                self.flows[flow].in_flight.pop_front();
                self.st.in_flight -= 1;
                self.st.error(ErrorKind::Timeout, 1, || {
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
        while f.in_flight.len() < plan.depth && self.st.quota != Some(0) {
            let intended = match plan.interval {
                None => now,
                Some(interval) => {
                    if f.next_send > now {
                        break;
                    }
                    let at = f.next_send;
                    f.next_send = at + interval;
                    at
                }
            };
            if let Some(q) = &mut self.st.quota {
                *q -= 1;
            }
            f.seq += 1;
            let mut d = BytesMut::with_capacity(MIN_SIZE + self.filler.len());
            d.put_u64_le(f.seq);
            d.put_slice(&self.filler);
            if self.st.in_window(now) {
                self.st.counters.sent += 1;
                self.st.counters.bytes_out += d.len() as u64;
            }
            out.push(d.freeze());
            f.in_flight.push_back((f.seq, intended, now));
            self.st.in_flight += 1;
        }
    }
}

struct FlowProto {
    core: Rc<RefCell<UdpCore>>,
    flow: usize,
    out: Vec<Bytes>,
}

impl DatagramProtocol for FlowProto {
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], _from: SocketAddr) {
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

fn tick(reactor: &mut Reactor, core: &Rc<RefCell<UdpCore>>, out: &mut Vec<Bytes>) {
    let now = Instant::now();
    let mut c = core.borrow_mut();
    c.expire(now);
    let target = c.target;
    for flow in 0..c.flows.len() {
        let Some(id) = c.flows[flow].id else { continue };
        c.fill(flow, now, out);
        for d in out.drain(..) {
            reactor.send_to(id, d, target);
        }
    }
}

/// Binds this core's flows and starts its ticker.
pub(crate) fn start_core(
    reactor: &mut Reactor,
    plan: Arc<Plan>,
    live: Arc<Live>,
    size: usize,
    tx: Sender<CoreResult>,
) {
    let core_index = reactor.core_index();
    let st = CoreState::new(Arc::clone(&plan), live, core_index);
    let filler = crate::tcp::message(size.saturating_sub(MIN_SIZE));
    let indices: Vec<usize> = (core_index..plan.connections).step_by(plan.cores).collect();
    let core = Rc::new(RefCell::new(UdpCore {
        st,
        flows: indices
            .iter()
            .map(|&i| Flow {
                id: None,
                seq: 0,
                in_flight: VecDeque::with_capacity(plan.depth),
                next_send: plan.slot_start(i).1,
            })
            .collect(),
        filler,
        target: plan.addr,
        timeout: plan.timeout.unwrap_or(DEFAULT_TIMEOUT),
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
    let handle = reactor.handle();
    let ticker = Rc::clone(&core);
    let h = handle.clone();
    // Detached: the task runs on even though its JoinHandle is dropped.
    drop(handle.spawn_local(async move {
        loop {
            let _ = h.sleep(TICK).await;
            if ticker.borrow().st.live.stopping() {
                break;
            }
            let c = Rc::clone(&ticker);
            h.run(move |r| tick(r, &c, &mut Vec::new()));
        }
    }));
    reactor.on_stop(move |_| {
        let _ = tx.send(core.borrow_mut().st.take_result());
    });
}
