//! The engine's protocol-level tests, on [`StringTransport`]: they run the reactor's own
//! state and dispatch code over in-memory sockets and a manual clock.

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::{ConnectOptions, TimerId};

/// What a [`Probe`] saw, in order.
#[derive(Clone, Debug, Eq, PartialEq)]
enum Event {
    Made,
    Data(Vec<u8>),
    Eof,
    PauseWriting,
    Drained,
    /// A timer and the clock's offset from the transport's start when it fired.
    Timer(TimerId, Duration),
    Lost(String),
}

type Log = Rc<RefCell<Vec<Event>>>;
type Hook = Box<dyn FnMut(&mut Context<'_>)>;
type DataHook = Box<dyn FnMut(&mut Context<'_>, &[u8])>;
type TimerHook = Box<dyn FnMut(&mut Context<'_>, TimerId)>;

/// A protocol that logs every callback and runs optional hooks.
struct Probe {
    log: Log,
    start: Option<Instant>,
    on_made: Option<Hook>,
    on_data: Option<DataHook>,
    on_eof: Option<Hook>,
    on_drained: Option<Hook>,
    on_timer: Option<TimerHook>,
}

impl Probe {
    fn new(log: &Log) -> Self {
        Self {
            log: Rc::clone(log),
            start: None,
            on_made: None,
            on_data: None,
            on_eof: None,
            on_drained: None,
            on_timer: None,
        }
    }

    fn on_made(mut self, f: impl FnMut(&mut Context<'_>) + 'static) -> Self {
        self.on_made = Some(Box::new(f));
        self
    }

    fn on_data(mut self, f: impl FnMut(&mut Context<'_>, &[u8]) + 'static) -> Self {
        self.on_data = Some(Box::new(f));
        self
    }

    fn on_eof(mut self, f: impl FnMut(&mut Context<'_>) + 'static) -> Self {
        self.on_eof = Some(Box::new(f));
        self
    }

    fn on_drained(mut self, f: impl FnMut(&mut Context<'_>) + 'static) -> Self {
        self.on_drained = Some(Box::new(f));
        self
    }

    fn on_timer(mut self, f: impl FnMut(&mut Context<'_>, TimerId) + 'static) -> Self {
        self.on_timer = Some(Box::new(f));
        self
    }

    fn push(&self, event: Event) {
        self.log.borrow_mut().push(event);
    }
}

impl Protocol for Probe {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.start = Some(ctx.now());
        self.push(Event::Made);
        if let Some(f) = &mut self.on_made {
            f(ctx);
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.push(Event::Data(data.to_vec()));
        if let Some(f) = &mut self.on_data {
            f(ctx, data);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.push(Event::Eof);
        match &mut self.on_eof {
            Some(f) => f(ctx),
            None => ctx.close(),
        }
    }

    fn pause_writing(&mut self, _ctx: &mut Context<'_>) {
        self.push(Event::PauseWriting);
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.push(Event::Drained);
        if let Some(f) = &mut self.on_drained {
            f(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let since = ctx.now() - self.start.unwrap_or(ctx.now());
        self.push(Event::Timer(timer, since));
        if let Some(f) = &mut self.on_timer {
            f(ctx, timer);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        // Writes to a lost connection are ignored.
        ctx.write(b"from connection_lost");
        self.push(Event::Lost(reason.to_string()));
    }
}

fn new_log() -> Log {
    Rc::default()
}

fn events(log: &Log) -> Vec<Event> {
    log.borrow().clone()
}

fn lost_count(log: &Log) -> usize {
    log.borrow()
        .iter()
        .filter(|e| matches!(e, Event::Lost(_)))
        .count()
}

fn data(bytes: &[u8]) -> Event {
    Event::Data(bytes.to_vec())
}

fn lost(reason: &LostReason) -> Event {
    Event::Lost(reason.to_string())
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Small limits so backpressure shows with a few writes.
fn small_config() -> ReactorConfig {
    ReactorConfig {
        write_high_watermark: 1000,
        write_low_watermark: 100,
        write_buffer_limit: 4000,
        ..ReactorConfig::default()
    }
}

// ---- echo, close, abort, half-close ----

#[test]
fn echo_writes_back_each_chunk_in_order() {
    let log = new_log();
    let mut t = StringTransport::new(Probe::new(&log).on_data(|ctx, d| ctx.write(d)));
    assert_eq!(events(&log), [Event::Made], "connection_made runs in new");
    t.feed(b"hello ");
    assert_eq!(t.written(), b"hello ");
    t.feed(b"world");
    assert_eq!(t.take_written(), b"hello world");
    assert!(t.written().is_empty());
    t.feed(b"");
    assert_eq!(events(&log).len(), 3, "empty input is not delivered");
    let stats = t.stats();
    assert_eq!((stats.bytes_in, stats.bytes_out), (11, 11));
    assert_eq!((stats.accepted, stats.connections), (1, 1));
    assert!(t.is_open() && !t.is_closed());
}

#[test]
fn close_after_a_line_flushes_the_reply_first() {
    let log = new_log();
    let mut line = Vec::new();
    let probe = Probe::new(&log).on_data(move |ctx, d| {
        line.extend_from_slice(d);
        if line.ends_with(b"\n") {
            ctx.write(b"you said: ");
            ctx.write(&line);
            ctx.close();
            ctx.write(b"ignored after close");
            ctx.close();
        }
    });
    let mut t = StringTransport::new(probe);
    t.feed(b"hel");
    assert!(t.written().is_empty() && t.is_open());
    t.feed(b"lo\n");
    assert_eq!(t.written(), b"you said: hello\n");
    assert!(t.is_closed() && !t.is_open() && !t.is_aborted());
    assert!(matches!(t.lost_reason(), Some(LostReason::Done)));
    assert_eq!(lost_count(&log), 1);
    assert_eq!(events(&log).last(), Some(&lost(&LostReason::Done)));
    // The connection is gone: input and writes are ignored, nothing is called again.
    t.feed(b"more");
    t.with_context(|ctx| {
        assert!(!ctx.is_open() && !ctx.is_writable());
        ctx.write(b"late");
    });
    assert_eq!(t.written(), b"you said: hello\n");
    assert_eq!(lost_count(&log), 1);
    assert_eq!(t.stats().connections, 0);
}

#[test]
fn close_waits_for_a_stalled_peer_to_read_everything() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, _| {
        ctx.write(&[7; 500]);
        ctx.close();
    });
    let mut t = StringTransport::new(probe);
    t.stall_peer(true);
    t.feed(b"x");
    assert!(!t.is_open(), "closing");
    assert!(!t.is_closed(), "not closed before the bytes are sent");
    assert_eq!((t.queued(), t.written().len()), (500, 0));
    assert_eq!(t.drain_up_to(200), [7; 200]);
    assert!(!t.is_closed());
    assert_eq!(t.drain(), [7; 300]);
    assert!(t.is_closed());
    assert!(matches!(t.lost_reason(), Some(LostReason::Done)));
    assert_eq!(t.written(), [7; 500], "drained bytes are written too");
    assert_eq!(lost_count(&log), 1);
}

#[test]
fn abort_drops_unsent_bytes_and_resets() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, d| {
        if d == b"abort" {
            ctx.write(b"never sent");
            ctx.abort();
            ctx.close();
            ctx.abort();
        } else {
            ctx.write(d);
        }
    });
    let mut t = StringTransport::new(probe);
    t.feed(b"sent");
    t.stall_peer(true);
    t.feed(b"queued");
    assert_eq!(t.queued(), 6);
    t.feed(b"abort");
    assert!(t.is_closed() && t.is_aborted());
    assert!(matches!(t.lost_reason(), Some(LostReason::Aborted)));
    assert_eq!(t.queued(), 0, "queued bytes are dropped");
    assert!(t.drain().is_empty());
    assert_eq!(t.written(), b"sent");
    assert_eq!(lost_count(&log), 1);
}

#[test]
fn half_close_after_eof_keeps_writing_until_shutdown() {
    let log = new_log();
    let probe = Probe::new(&log)
        .on_data(|ctx, d| ctx.write(d))
        .on_eof(|ctx| {
            ctx.write(b"summary");
            ctx.shutdown_write();
            ctx.write(b"ignored after shutdown");
        });
    let mut t = StringTransport::new(probe);
    t.feed(b"a");
    t.stall_peer(true);
    t.feed(b"b");
    t.feed_eof();
    assert!(!t.is_write_shut_down(), "waits for queued bytes");
    assert!(t.is_open(), "half-closed, not closing");
    t.stall_peer(false);
    assert!(t.is_write_shut_down());
    assert_eq!(t.written(), b"absummary");
    assert!(!t.is_closed());
    // The protocol decides when to close.
    t.with_context(|ctx| ctx.close());
    assert!(t.is_closed());
    assert!(matches!(t.lost_reason(), Some(LostReason::Done)));
    assert_eq!(
        events(&log),
        [
            Event::Made,
            data(b"a"),
            data(b"b"),
            Event::Eof,
            lost(&LostReason::Done)
        ]
    );
}

#[test]
fn default_eof_received_closes_after_pending_bytes() {
    let log = new_log();
    let mut t = StringTransport::new(Probe::new(&log).on_data(|ctx, d| ctx.write(d)));
    t.stall_peer(true);
    t.feed(b"last");
    t.feed_eof();
    assert!(!t.is_closed());
    assert_eq!(t.drain(), b"last");
    assert!(t.is_closed() && !t.is_aborted());
    assert!(matches!(t.lost_reason(), Some(LostReason::Done)));
}

#[test]
fn reset_and_errors_end_the_connection_with_their_reason() {
    let log = new_log();
    let mut t = StringTransport::new(Probe::new(&log));
    t.reset_by_peer();
    assert!(t.is_closed());
    assert!(matches!(t.lost_reason(), Some(LostReason::Reset)));
    assert_eq!(events(&log), [Event::Made, lost(&LostReason::Reset)]);
    t.reset_by_peer();
    assert_eq!(lost_count(&log), 1);

    let log = new_log();
    let mut t = StringTransport::new(Probe::new(&log));
    t.fail(io::ErrorKind::TimedOut);
    match t.lost_reason() {
        Some(LostReason::Error(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            assert_eq!(e.op, OpKind::Recv);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(lost_count(&log), 1);
}

// ---- timers ----

#[test]
fn call_later_fires_only_once_the_clock_reaches_it() {
    let log = new_log();
    let timer = Rc::new(RefCell::new(None));
    let slot = Rc::clone(&timer);
    let probe = Probe::new(&log).on_made(move |ctx| {
        *slot.borrow_mut() = Some(ctx.call_later(ms(1000)));
    });
    let mut t = StringTransport::new(probe);
    let id = timer.borrow().expect("armed");
    assert_eq!(t.next_deadline(), Some(t.now() + ms(1000)));
    t.advance(ms(999));
    assert_eq!(events(&log), [Event::Made]);
    t.advance(ms(1));
    assert_eq!(events(&log), [Event::Made, Event::Timer(id, ms(1000))]);
    assert_eq!(t.elapsed(), ms(1000));
    t.advance(Duration::from_secs(60));
    assert_eq!(events(&log).len(), 2, "a one-shot fires once");
    assert_eq!(t.next_deadline(), None);
    assert!(
        !t.with_context(|ctx| ctx.cancel_timer(id)),
        "cancelling a fired one-shot"
    );
}

#[test]
fn call_every_repeats_with_one_id_until_cancelled() {
    let log = new_log();
    let probe = Probe::new(&log)
        .on_made(|ctx| {
            ctx.call_every(ms(100));
        })
        .on_timer(|ctx, _| ctx.write(b"tick "));
    let mut t = StringTransport::new(probe);
    t.advance(ms(350));
    assert_eq!(t.written(), b"tick tick tick ");
    let fired: Vec<_> = events(&log)
        .into_iter()
        .filter_map(|e| match e {
            Event::Timer(id, at) => Some((id, at)),
            _ => None,
        })
        .collect();
    assert_eq!(fired.len(), 3, "at 100, 200 and 300 ms: {fired:?}");
    let id = fired[0].0;
    assert!(fired.iter().all(|&(i, _)| i == id), "same id: {fired:?}");
    assert_eq!(
        fired.iter().map(|&(_, at)| at).collect::<Vec<_>>(),
        [ms(100), ms(200), ms(300)]
    );
    assert!(t.with_context(|ctx| ctx.cancel_timer(id)), "still armed");
    assert!(
        !t.with_context(|ctx| ctx.cancel_timer(id)),
        "already cancelled"
    );
    t.advance(Duration::from_secs(10));
    assert_eq!(
        events(&log)
            .iter()
            .filter(|e| matches!(e, Event::Timer(..)))
            .count(),
        3
    );
}

#[test]
fn a_repeating_timer_can_cancel_itself_in_its_callback() {
    let log = new_log();
    let mut count = 0;
    let probe = Probe::new(&log)
        .on_made(|ctx| {
            ctx.call_every(ms(10));
        })
        .on_timer(move |ctx, id| {
            count += 1;
            if count == 3 {
                assert!(ctx.cancel_timer(id), "re-armed before the callback");
            }
        });
    let mut t = StringTransport::new(probe);
    t.advance(Duration::from_secs(1));
    let fired = events(&log)
        .iter()
        .filter(|e| matches!(e, Event::Timer(..)))
        .count();
    assert_eq!(fired, 3);
    assert_eq!(t.next_deadline(), None);
}

#[test]
fn timers_fire_in_deadline_then_arming_order() {
    let log = new_log();
    let ids = Rc::new(RefCell::new(Vec::new()));
    let armed = Rc::clone(&ids);
    let probe = Probe::new(&log).on_made(move |ctx| {
        let mut ids = armed.borrow_mut();
        for delay in [30, 10, 20, 10, 0] {
            ids.push(ctx.call_later(ms(delay)));
        }
    });
    let mut t = StringTransport::new(probe);
    let ids = ids.borrow().clone();
    t.advance(Duration::ZERO);
    t.advance(ms(100));
    let fired: Vec<_> = events(&log)
        .into_iter()
        .filter_map(|e| match e {
            Event::Timer(id, at) => Some((id, at)),
            _ => None,
        })
        .collect();
    assert_eq!(
        fired,
        [
            (ids[4], ms(0)),
            (ids[1], ms(10)),
            (ids[3], ms(10)),
            (ids[2], ms(20)),
            (ids[0], ms(30)),
        ]
    );
}

#[test]
fn a_timer_callback_runs_a_whole_turn() {
    // A timer that writes and closes: the bytes are flushed and the close completes within
    // the same advance.
    let log = new_log();
    let probe = Probe::new(&log)
        .on_made(|ctx| {
            ctx.call_later(Duration::from_secs(5));
        })
        .on_timer(|ctx, _| {
            ctx.write(b"timeout\n");
            ctx.close();
        });
    let mut t = StringTransport::new(probe);
    t.advance(Duration::from_secs(5));
    assert_eq!(t.written(), b"timeout\n");
    assert!(t.is_closed());
}

#[test]
fn timers_of_a_closed_connection_never_fire() {
    let log = new_log();
    let probe = Probe::new(&log)
        .on_made(|ctx| {
            ctx.call_later(ms(10));
            ctx.call_every(ms(10));
        })
        .on_data(|ctx, _| ctx.close());
    let mut t = StringTransport::new(probe);
    t.feed(b"bye");
    // Cancelled when the connection was lost, not merely skipped when due: a closed
    // connection leaves nothing in the wheel.
    assert_eq!(t.next_deadline(), None);
    t.advance(Duration::from_secs(1));
    assert!(!events(&log).iter().any(|e| matches!(e, Event::Timer(..))));
}

#[test]
fn fired_and_cancelled_timers_leave_the_connection_list() {
    let log = new_log();
    let probe = Probe::new(&log).on_made(|ctx| {
        ctx.call_later(ms(5));
        let every = ctx.call_every(ms(5));
        assert!(ctx.cancel_timer(every));
    });
    let mut t = StringTransport::new(probe);
    t.advance(ms(10));
    assert_eq!(
        t.next_deadline(),
        None,
        "the one-shot fired and the repeater was cancelled"
    );
    t.with_context(|ctx| ctx.close());
    assert_eq!(
        events(&log)
            .iter()
            .filter(|e| matches!(e, Event::Timer(..)))
            .count(),
        1
    );
}

// ---- backpressure and memory bounds ----

#[test]
fn stalled_peer_pauses_writing_once_and_drain_resumes_it() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, _| ctx.write(&[1; 600]));
    let mut t = StringTransport::with_config(probe, small_config());
    t.stall_peer(true);
    t.feed(b"1");
    assert!(t.with_context(|ctx| ctx.is_writable()));
    t.feed(b"2");
    t.feed(b"3");
    assert_eq!(t.queued(), 1800);
    assert!(!t.with_context(|ctx| ctx.is_writable()));
    assert_eq!(t.with_context(|ctx| ctx.buffered()), 1800);
    let pauses = |log: &Log| {
        log.borrow()
            .iter()
            .filter(|e| **e == Event::PauseWriting)
            .count()
    };
    assert_eq!(pauses(&log), 1, "pause_writing once: {:?}", events(&log));
    // Reading part of it leaves more than the low watermark: still paused.
    t.drain_up_to(1600);
    assert!(!events(&log).contains(&Event::Drained));
    assert!(!t.with_context(|ctx| ctx.is_writable()));
    // Down to the low watermark: write_drained, writable again.
    t.drain_up_to(100);
    assert_eq!(events(&log).last(), Some(&Event::Drained));
    assert!(t.with_context(|ctx| ctx.is_writable()));
    assert_eq!(t.drain().len(), 100);
    assert_eq!(t.written().len(), 1800);
    assert_eq!(pauses(&log), 1);
}

/// Writes `total` bytes in 300-byte writes while writable, then closes: the streaming
/// pattern (call it again from `write_drained`).
fn producer(total: usize) -> impl FnMut(&mut Context<'_>) + Clone {
    let left = Rc::new(RefCell::new(total));
    move |ctx| {
        let mut left = left.borrow_mut();
        while *left > 0 && ctx.is_writable() {
            let n = (*left).min(300);
            ctx.write(&vec![b'p'; n]);
            *left -= n;
        }
        if *left == 0 {
            ctx.close();
        }
    }
}

#[test]
fn a_producer_refills_on_write_drained() {
    // A peer that reads at once: the whole stream goes out within `new`.
    let log = new_log();
    let produce = producer(5000);
    let probe = Probe::new(&log)
        .on_made(produce.clone())
        .on_drained(produce);
    let t = StringTransport::with_config(probe, small_config());
    assert_eq!(t.written().len(), 5000);
    assert!(t.is_closed());
    assert!(matches!(t.lost_reason(), Some(LostReason::Done)));

    // A slow peer: the producer never holds more than the high watermark plus one write.
    let log = new_log();
    let mut produce = producer(5000);
    let probe = Probe::new(&log)
        .on_data({
            let mut produce = produce.clone();
            move |ctx, _| produce(ctx)
        })
        .on_drained(move |ctx| produce(ctx));
    let mut t = StringTransport::with_config(probe, small_config());
    t.stall_peer(true);
    t.feed(b"go");
    let mut reads = 0;
    while !t.is_closed() {
        assert!(t.queued() <= 1000 + 300, "queued {}", t.queued());
        assert!(
            !t.drain_up_to(250).is_empty(),
            "stuck at {} bytes",
            t.written().len()
        );
        reads += 1;
    }
    assert_eq!(t.written().len(), 5000);
    assert!(reads >= 5000 / 250);
    let pauses = events(&log)
        .iter()
        .filter(|e| **e == Event::PauseWriting)
        .count();
    let drains = events(&log)
        .iter()
        .filter(|e| **e == Event::Drained)
        .count();
    assert!(
        pauses >= 3 && (pauses == drains || pauses == drains + 1),
        "{pauses} {drains}"
    );
}

#[test]
fn passing_the_write_buffer_limit_aborts_and_bounds_memory() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, _| {
        // Ignores backpressure: keeps writing while the connection is open.
        for _ in 0..100 {
            if !ctx.is_open() {
                break;
            }
            ctx.write(&[0; 700]);
        }
    });
    let mut t = StringTransport::with_config(probe, small_config());
    t.stall_peer(true);
    t.feed(b"flood");
    assert!(t.is_closed() && t.is_aborted());
    match t.lost_reason() {
        Some(LostReason::WriteBufferFull { limit }) => assert_eq!(*limit, 4000),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(t.queued(), 0, "the queue is dropped");
    assert!(t.written().is_empty());
    assert!(
        t.stats().bytes_out <= 4000,
        "never more than the limit handed down: {}",
        t.stats().bytes_out
    );
    // pause_writing was queued before the abort; the protocol is told it is lost, not paused.
    assert_eq!(
        events(&log).last(),
        Some(&lost(&LostReason::WriteBufferFull { limit: 4000 }))
    );
    assert_eq!(lost_count(&log), 1);
}

#[test]
fn queued_bytes_count_toward_the_limit_across_turns() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, _| ctx.write(&[0; 900]));
    let mut t = StringTransport::with_config(probe, small_config());
    t.stall_peer(true);
    for _ in 0..4 {
        t.feed(b"w");
    }
    assert!(t.is_open(), "3600 bytes queued, limit 4000");
    t.feed(b"w");
    assert!(matches!(
        t.lost_reason(),
        Some(LostReason::WriteBufferFull { .. })
    ));
}

#[test]
fn write_bytes_keeps_order_with_copied_writes() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, _| {
        ctx.write(b"a");
        ctx.write_bytes(Bytes::from_static(b"b"));
        ctx.write(b"c");
        ctx.write_bytes(Bytes::from_static(b"d"));
        ctx.close();
    });
    let mut t = StringTransport::new(probe);
    t.feed(b"go");
    assert_eq!(t.written(), b"abcd");
    assert!(matches!(t.lost_reason(), Some(LostReason::Done)));
}

// ---- reading control ----

#[test]
fn paused_reading_holds_input_and_delivers_it_in_order_on_resume() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, d| {
        if d == b"first" {
            ctx.pause_reading();
        }
    });
    let mut t = StringTransport::new(probe);
    t.feed(b"first");
    assert!(t.is_reading_paused());
    assert!(
        !t.io.socket(t.id().0).unwrap().receiving,
        "stop_recv reached the Io"
    );
    t.feed(b"second");
    t.feed(b"third");
    assert_eq!(events(&log), [Event::Made, data(b"first")]);
    t.with_context(|ctx| ctx.resume_reading());
    assert!(!t.is_reading_paused());
    assert!(t.io.socket(t.id().0).unwrap().receiving);
    assert_eq!(
        events(&log),
        [Event::Made, data(b"first"), data(b"secondthird")]
    );
    t.feed(b"fourth");
    assert_eq!(events(&log).last(), Some(&data(b"fourth")));
    assert_eq!(t.stats().bytes_in, 22);
}

#[test]
fn eof_waits_behind_bytes_held_while_paused() {
    // The reactor can see [Received, Received, Eof] in one turn (the poll backend reads to
    // the end of the stream): a pause in the first must not let the EOF overtake the second.
    let log = new_log();
    let probe = Probe::new(&log)
        .on_data(|ctx, d| {
            if d == b"a" {
                ctx.pause_reading();
            }
            ctx.write(d);
        })
        .on_eof(|ctx| {
            ctx.write(b"!");
            ctx.close();
        });
    let mut t = StringTransport::new(probe);
    t.feed(b"a");
    t.feed(b"b");
    t.feed_eof();
    assert_eq!(events(&log), [Event::Made, data(b"a")]);
    assert!(
        t.is_open(),
        "the EOF is held: the default close did not run"
    );
    t.with_context(|ctx| ctx.resume_reading());
    assert_eq!(
        events(&log),
        [
            Event::Made,
            data(b"a"),
            data(b"b"),
            Event::Eof,
            lost(&LostReason::Done)
        ]
    );
    assert_eq!(t.written(), b"ab!");
}

#[test]
fn eof_while_paused_without_held_bytes_waits_for_resume() {
    let log = new_log();
    let mut t = StringTransport::new(Probe::new(&log).on_data(|ctx, _| ctx.pause_reading()));
    t.feed(b"x");
    t.feed_eof();
    assert_eq!(events(&log), [Event::Made, data(b"x")]);
    t.with_context(|ctx| ctx.resume_reading());
    assert_eq!(events(&log)[2..], [Event::Eof, lost(&LostReason::Done)]);
}

#[test]
fn pausing_again_on_held_bytes_keeps_the_eof_back() {
    let log = new_log();
    let mut t = StringTransport::new(Probe::new(&log).on_data(|ctx, _| ctx.pause_reading()));
    t.feed(b"1");
    t.feed(b"2");
    t.feed_eof();
    t.with_context(|ctx| ctx.resume_reading());
    assert_eq!(events(&log), [Event::Made, data(b"1"), data(b"2")]);
    assert!(t.is_reading_paused());
    t.with_context(|ctx| ctx.resume_reading());
    assert_eq!(events(&log)[3..], [Event::Eof, lost(&LostReason::Done)]);
    assert_eq!(lost_count(&log), 1);
}

// ---- panics ----

#[test]
fn a_panicking_protocol_is_dropped_and_its_connection_aborted() {
    let log = new_log();
    let probe = Probe::new(&log).on_data(|ctx, d| {
        ctx.write(b"reply");
        assert!(d != b"boom", "protocol bug");
    });
    let mut t = StringTransport::new(probe);
    t.feed(b"ok");
    t.feed(b"boom");
    assert!(t.is_closed() && t.is_aborted());
    assert!(matches!(t.lost_reason(), Some(LostReason::Panicked)));
    assert_eq!(t.stats().panics, 1);
    assert_eq!(
        t.written(),
        b"reply",
        "the panicked callback's write is dropped"
    );
    assert_eq!(
        lost_count(&log),
        0,
        "no connection_lost on the panicked protocol"
    );
    t.feed(b"after");
    t.advance(Duration::from_secs(1));
    assert_eq!(events(&log), [Event::Made, data(b"ok"), data(b"boom")]);
}

#[test]
fn a_panic_in_connection_made_is_contained() {
    let log = new_log();
    let t = StringTransport::new(Probe::new(&log).on_made(|_| panic!("bad start")));
    assert!(t.is_closed());
    assert!(matches!(t.lost_reason(), Some(LostReason::Panicked)));
    assert_eq!(t.stats().panics, 1);
}

// ---- addresses, outbound connections, futures ----

#[test]
fn addresses_are_configurable_and_gone_after_close() {
    let peer: SocketAddr = "192.0.2.1:1234".parse().unwrap();
    let log = new_log();
    let mut t = StringTransport::builder()
        .peer_addr(peer)
        .build(Probe::new(&log));
    let (p, l) = t.with_context(|ctx| (ctx.peer_addr().unwrap(), ctx.local_addr().unwrap()));
    assert_eq!(p.as_socket(), Some(peer));
    assert_eq!(l.as_socket(), Some(DEFAULT_LOCAL_ADDR));
    t.with_context(|ctx| ctx.close());
    let err = t.with_context(|ctx| ctx.peer_addr().unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

/// Opens one outbound connection, writes to it before it connects, and logs its events.
fn opener(
    upstream_log: &Log,
    ids: &Rc<RefCell<Vec<ConnId>>>,
) -> impl FnMut(&mut Context<'_>) + use<> {
    let upstream_log = Rc::clone(upstream_log);
    let ids = Rc::clone(ids);
    move |ctx| {
        let addr = SockAddr::from("10.1.2.3:80".parse::<SocketAddr>().unwrap());
        let up = Probe::new(&upstream_log).on_data(|ctx, d| ctx.write(d));
        let id = ctx
            .connect(&addr, up, ConnectOptions::default())
            .expect("in-memory connect");
        ctx.other(id).write(b"early ");
        ids.borrow_mut().push(id);
    }
}

#[test]
fn outbound_connect_completes_and_sends_early_writes() {
    let (log, up_log) = (new_log(), new_log());
    let ids = Rc::default();
    let mut t = StringTransport::new(Probe::new(&log).on_made(opener(&up_log, &ids)));
    let id = ids.borrow()[0];
    let pending = t.pending_connects();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].0, id);
    assert_eq!(
        pending[0].1.as_socket(),
        Some("10.1.2.3:80".parse().unwrap())
    );
    assert!(events(&up_log).is_empty(), "no callback before it connects");
    assert!(
        t.remote(id).written().is_empty(),
        "nothing sent while connecting"
    );
    let err = t
        .remote(id)
        .with_context(|ctx| ctx.peer_addr().unwrap_err());
    assert_eq!(err.kind(), io::ErrorKind::NotConnected);

    t.complete_connect(id, Ok(()));
    assert_eq!(events(&up_log), [Event::Made]);
    assert!(t.pending_connects().is_empty());
    let mut up = t.remote(id);
    assert_eq!(up.take_written(), b"early ");
    up.feed(b"echo");
    assert_eq!(up.written(), b"echo");
    assert!(up.is_open());
    up.feed_eof();
    assert!(up.is_closed());
    assert!(matches!(up.lost_reason(), Some(LostReason::Done)));
    assert!(t.is_open(), "the first connection is unaffected");
    assert_eq!(t.connections(), [t.id()]);
    assert_eq!(t.stats().connects, 1);
}

#[test]
fn outbound_connect_failure_and_timeout() {
    let (log, up_log) = (new_log(), new_log());
    let ids: Rc<RefCell<Vec<ConnId>>> = Rc::default();
    let mut open = opener(&up_log, &ids);
    let mut t = StringTransport::new(Probe::new(&log));
    t.with_context(&mut open);
    t.with_context(&mut open);
    let (refused, slow) = (ids.borrow()[0], ids.borrow()[1]);

    t.complete_connect(refused, Err(io::ErrorKind::ConnectionRefused));
    match t.remote(refused).lost_reason() {
        Some(LostReason::ConnectFailed(e)) => {
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        events(&up_log).len(),
        1,
        "only connection_lost, no connection_made"
    );

    let timeout = ReactorConfig::default().connect_timeout;
    t.advance(timeout - ms(1));
    assert_eq!(t.pending_connects().len(), 1);
    t.advance(ms(1));
    assert!(t.pending_connects().is_empty());
    assert!(matches!(
        t.remote(slow).lost_reason(),
        Some(LostReason::ConnectTimeout)
    ));
    assert!(t.remote(slow).is_aborted());
    let up_events = events(&up_log);
    assert_eq!(up_events.len(), 2, "{up_events:?}");
    assert!(matches!(&up_events[0], Event::Lost(s) if s.starts_with("connect failed")));
    assert_eq!(up_events[1], lost(&LostReason::ConnectTimeout));

    t.set_connect_error(Some(io::ErrorKind::PermissionDenied));
    let err = t.with_context(|ctx| {
        let addr = SockAddr::from("10.1.2.3:80".parse::<SocketAddr>().unwrap());
        match ctx.connect(&addr, Probe::new(&up_log), ConnectOptions::default()) {
            Err(crate::EngineError::Op(error)) => error,
            other => panic!("expected the socket's error, got {other:?}"),
        }
    });
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(
        lost_count(&up_log),
        2,
        "a protocol never connected gets no callback"
    );
}

#[test]
#[should_panic(expected = "no pending connect")]
fn completing_a_connect_twice_is_a_test_bug() {
    let ids = Rc::default();
    let mut t = StringTransport::new(Probe::new(&new_log()).on_made(opener(&new_log(), &ids)));
    let id = ids.borrow()[0];
    t.complete_connect(id, Ok(()));
    t.complete_connect(id, Ok(()));
}

#[test]
#[should_panic(expected = "feed after feed_eof")]
fn feeding_after_eof_is_a_test_bug() {
    let mut t = StringTransport::new(Probe::new(&new_log()).on_eof(|_| {}));
    t.feed_eof();
    t.feed(b"x");
}

#[test]
fn spawned_futures_run_within_the_turn() {
    let log = new_log();
    let (deferred, resolver) = crate::Deferred::<Vec<u8>>::new();
    let resolver = RefCell::new(Some(resolver));
    let mut deferred = Some(deferred);
    let probe = Probe::new(&log)
        .on_made(move |ctx| {
            let id = ctx.id();
            let handle = ctx.handle();
            let deferred = deferred.take().expect("made once");
            let _task = ctx.handle().spawn_local(async move {
                let reply = deferred.await.unwrap_or_default();
                handle.spawn_local(async move { drop((id, reply)) });
            });
        })
        .on_data(move |_, d| {
            if let Some(r) = resolver.borrow_mut().take() {
                r.resolve(d.to_vec());
            }
        });
    let mut t = StringTransport::new(probe);
    t.feed(b"answer");
    assert!(t.executor.is_empty(), "both tasks ran to completion");
}

#[test]
#[should_panic(expected = "cannot run LocalHandle::run jobs")]
fn reactor_jobs_are_refused_loudly() {
    let _t = StringTransport::new(Probe::new(&new_log()).on_made(|ctx| ctx.handle().run(|_| {})));
}

#[test]
fn a_huge_delay_saturates_instead_of_panicking() {
    let log = new_log();
    let probe = Probe::new(&log).on_made(|ctx| {
        ctx.call_later(Duration::MAX);
        ctx.call_every(Duration::MAX);
    });
    let mut t = StringTransport::new(probe);
    t.advance(Duration::from_secs(3600));
    assert!(t.is_open(), "the connection survives: {:?}", events(&log));
    assert_eq!(t.stats().panics, 0);
}

#[test]
fn no_backpressure_callbacks_after_close() {
    let log = new_log();
    // Crosses the high watermark and closes in the same callback.
    let probe = Probe::new(&log).on_data(|ctx, _| {
        ctx.write(&[7; 1500]);
        ctx.close();
    });
    let mut t = StringTransport::with_config(probe, small_config());
    t.stall_peer(true);
    t.feed(b"go");
    t.drain();
    let seen = events(&log);
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::PauseWriting | Event::Drained)),
        "pressure callbacks after close: {seen:?}"
    );
    assert!(
        t.lost_reason().is_some_and(LostReason::is_clean),
        "{seen:?}"
    );
}

/// Counts `woken` callbacks; writes `woke N` on each.
struct Wakeable {
    woken: Rc<RefCell<usize>>,
}

impl Protocol for Wakeable {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if data == b"wake" {
            // From inside a callback: the wake runs after it, in the same step.
            ctx.handle().wake(ctx.id());
        }
    }

    fn woken(&mut self, ctx: &mut Context<'_>) {
        *self.woken.borrow_mut() += 1;
        let n = *self.woken.borrow();
        ctx.write(format!("woke {n}\n").as_bytes());
    }
}

#[test]
fn wake_calls_woken_once_per_wake_and_never_after_the_connection_is_gone() {
    let woken = Rc::new(RefCell::new(0));
    let mut t = StringTransport::new(Wakeable {
        woken: Rc::clone(&woken),
    });
    t.feed(b"wake");
    assert_eq!(t.take_written(), b"woke 1\n");
    // From outside any callback (a future, a value kept elsewhere).
    let (handle, id) = t.with_context(|ctx| (ctx.handle(), ctx.id()));
    handle.wake(id);
    handle.wake(id);
    t.with_context(|_| {});
    assert_eq!(t.take_written(), b"woke 2\nwoke 3\n");
    t.with_context(|ctx| ctx.abort());
    handle.wake(id);
    t.with_context(|_| {});
    assert_eq!(*woken.borrow(), 3, "a lost connection is not woken");
}

/// Echoes, pausing its reading while its own write buffer is full.
struct BackpressuredEcho;

impl Protocol for BackpressuredEcho {
    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        ctx.write(data);
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        ctx.pause_reading();
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        ctx.resume_reading();
    }
}

#[test]
fn a_large_stash_is_delivered_in_pieces_that_respect_backpressure() {
    // Reads in flight when reading paused (up to a whole buffer ring of them under
    // io_uring) are held. Delivered in one callback on resume, 1 MiB would go into a write
    // buffer whose hard limit is 256 KiB, and the connection would be aborted
    // (WriteBufferFull); in pieces, the protocol's own pause holds the rest back.
    let config = ReactorConfig {
        write_high_watermark: 64 * 1024,
        write_low_watermark: 16 * 1024,
        write_buffer_limit: 256 * 1024,
        ..ReactorConfig::default()
    };
    let mut t = StringTransport::with_config(BackpressuredEcho, config);
    t.stall_peer(true);
    t.with_context(|ctx| ctx.pause_reading());
    let piece: Vec<u8> = (0..16 * 1024).map(|i| (i % 251) as u8).collect();
    for _ in 0..64 {
        t.feed(&piece);
    }
    t.with_context(|ctx| ctx.resume_reading());
    assert!(t.is_open(), "lost: {:?}", t.lost_reason());
    let mut echoed = Vec::new();
    while echoed.len() < 64 * piece.len() {
        let got = t.drain();
        assert!(!got.is_empty(), "stuck after {} bytes", echoed.len());
        echoed.extend_from_slice(&got);
        assert!(t.is_open(), "lost: {:?}", t.lost_reason());
    }
    assert!(
        echoed.chunks(piece.len()).all(|c| c == piece),
        "in order, nothing lost"
    );
}

/// Futures under the transport's manual clock: a sleep and a `with_timeout` complete when
/// `advance` passes them; a dropped sleep leaves the wheel; a deferred resolved in time wins.
#[test]
fn sleeps_and_timeouts_follow_the_manual_clock() {
    use crate::executor::{Deferred, TimedOut};

    struct Quiet;
    impl Protocol for Quiet {
        fn data_received(&mut self, _: &mut Context<'_>, _: &[u8]) {}
    }
    let mut t = StringTransport::new(Quiet);
    let handle = t.with_context(|ctx| ctx.handle());
    assert_eq!(
        handle.now(),
        t.now(),
        "the handles' time is the transport's"
    );
    let start = t.now();

    let dropped = handle.sleep(Duration::from_secs(1));
    assert_eq!(t.next_deadline(), Some(start + Duration::from_secs(1)));
    drop(dropped);
    assert_eq!(t.next_deadline(), None, "a dropped sleep left the wheel");

    let (never, _resolver) = Deferred::<u8>::new();
    let (soon, resolve_soon) = Deferred::<u8>::new();
    type Outcome = Result<Result<u8, crate::Canceled>, TimedOut>;
    let outcomes: Rc<RefCell<Vec<Outcome>>> = Rc::default();
    for deferred in [never, soon] {
        let bounded = handle.with_timeout(Duration::from_secs(5), deferred);
        let out = Rc::clone(&outcomes);
        drop(handle.spawn_local(async move {
            let outcome = bounded.await;
            out.borrow_mut().push(outcome);
        }));
    }
    t.advance(Duration::from_secs(2));
    resolve_soon.resolve(9);
    t.advance(Duration::ZERO);
    assert_eq!(*outcomes.borrow(), [Ok(Ok(9))]);
    t.advance(Duration::from_secs(3) - Duration::from_nanos(1));
    assert_eq!(outcomes.borrow().len(), 1, "timed out early");
    t.advance(Duration::from_nanos(1));
    let after = Duration::from_secs(5);
    assert_eq!(*outcomes.borrow(), [Ok(Ok(9)), Err(TimedOut { after })]);
    assert_eq!(t.next_deadline(), None);
}
