//! Reactor-level time on every backend: calls (`call_later`/`call_at` with cancel and
//! reset, from the reactor, a handle, a future and a protocol), cancellable sleeps,
//! `LoopingCall` schedules, and a `ManualClock` driving a real reactor — connect, idle and
//! shutdown timeouts of real connections fire when the test moves the clock, not later.
//!
//! Nothing sleeps. Under a manual clock a timer falls due only when the test moves the
//! clock; one non-waiting turn (`turn_now`) then fires it. Tests on the system clock check
//! that nothing fires before its deadline.

mod common;

use std::cell::{Cell, RefCell};
use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{
    Event, Lost, Sink, manual_reactor, reactor, recorded, recording_factory, turn_now, wait,
};
use ringwork::platform::BackendChoice;
use ringwork::{
    ConnectOptions, Context, LoopingCall, MissedTicks, Protocol, Reactor, Repeat, TimerId,
};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// What ran, in order.
type Trace = Rc<RefCell<Vec<&'static str>>>;

/// A call that records `name`.
fn note(trace: &Trace, name: &'static str) -> impl FnOnce(&mut Reactor) + 'static {
    let trace = Rc::clone(trace);
    move |_| trace.borrow_mut().push(name)
}

/// Closes its connection after `idle` without input (a server's idle timeout).
struct IdleTimeout {
    idle: Duration,
    timer: Option<TimerId>,
}

impl Protocol for IdleTimeout {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.timer = Some(ctx.call_later(self.idle));
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
        }
        self.timer = Some(ctx.call_later(self.idle));
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: TimerId) {
        ctx.close();
    }
}

/// Arms a reactor call through its context's handle when connected.
struct ArmsACall {
    trace: Trace,
}

impl Protocol for ArmsACall {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.handle()
            .call_later(secs(1), note(&self.trace, "from a context"));
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

ringwork::platform::test_all_backends! {
    /// Calls run in deadline order when the clock passes them; a cancelled one never runs,
    /// a reset one runs at its new time; cancel and reset of a call that ran say false.
    fn calls_run_in_order_with_cancel_and_reset(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let handle = reactor.handle();
        let trace = Trace::default();
        let start = handle.now();
        let a = handle.call_later(ms(10), note(&trace, "a"));
        let b = handle.call_later(ms(20), note(&trace, "b"));
        let c = reactor.call_later(ms(30), note(&trace, "c"));
        let _d = handle.call_at(start + ms(10), note(&trace, "d"));
        assert_eq!(handle.deadline(a), Some(start + ms(10)));
        assert!(handle.cancel(b), "cancel a pending call");
        assert!(!handle.cancel(b), "cancel it twice");
        assert!(!handle.is_pending(b));
        assert!(handle.reset(c, ms(5)), "move a pending call earlier");
        assert_eq!(reactor.next_deadline(), Some(start + ms(5)));

        clock.advance(ms(4));
        turn_now(&mut reactor);
        assert!(trace.borrow().is_empty(), "nothing is due at 4 ms: {:?}", trace.borrow());
        clock.advance(ms(1));
        turn_now(&mut reactor);
        assert_eq!(*trace.borrow(), ["c"]);
        clock.advance(ms(100));
        turn_now(&mut reactor);
        // Equal deadlines run in the order they were armed.
        assert_eq!(*trace.borrow(), ["c", "a", "d"]);
        assert!(!handle.cancel(a), "cancel a call that ran");
        assert!(!handle.reset(a, ms(1)), "reset a call that ran");
        assert!(!reactor.cancel_call(c));
        assert_eq!(reactor.next_deadline(), None, "the cancelled call left the wheel");
    }

    /// A call armed from the reactor, from a future's handle and from a protocol's context
    /// all run, with the reactor, when the clock passes them — no connection needed for the
    /// first two.
    fn calls_from_the_reactor_a_future_and_a_context(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let trace = Trace::default();
        reactor.call_later(secs(1), note(&trace, "from the reactor"));
        let handle = reactor.handle();
        let from_future = note(&trace, "from a future");
        reactor.spawn_local(async move {
            handle.call_later(secs(1), from_future);
        });
        let (factory, servers) = recording_factory(|| Sink);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let client = ArmsACall { trace: Rc::clone(&trace) };
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(&mut reactor, |_| servers.borrow().len() == 1, || "the connection".into());
        assert!(trace.borrow().is_empty());
        clock.advance(secs(1));
        wait(&mut reactor, |_| trace.borrow().len() == 3, || format!("{:?}", trace.borrow()));
        let mut ran = trace.borrow().clone();
        ran.sort_unstable();
        assert_eq!(ran, ["from a context", "from a future", "from the reactor"]);
    }

    /// On the system clock a call runs no earlier than its deadline, with the reactor idle
    /// (it wakes up for the call by itself).
    fn a_call_never_runs_early(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let ran: Rc<Cell<Option<Instant>>> = Rc::default();
        let armed = Instant::now();
        let seen = Rc::clone(&ran);
        reactor.call_later(ms(20), move |reactor| seen.set(Some(reactor.now())));
        wait(&mut reactor, |_| ran.get().is_some(), || "the call".into());
        let at = ran.get().unwrap();
        assert!(at >= armed + ms(20), "ran {:?} early", (armed + ms(20)) - at);
    }

    /// A call that panics is counted and logged; the next call still runs.
    fn a_panicking_call_leaves_the_core_running(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        common::quiet_panics("a call that panics");
        let trace = Trace::default();
        reactor.call_later(ms(1), |_| panic!("a call that panics"));
        reactor.call_later(ms(2), note(&trace, "after"));
        clock.advance(ms(2));
        turn_now(&mut reactor);
        assert_eq!(*trace.borrow(), ["after"]);
        assert_eq!(reactor.stats().panics, 1);
    }

    /// Dropping a reactor drops its pending calls, also those whose closure holds a handle
    /// to it (a cycle through the core's shared state otherwise).
    fn dropping_the_reactor_drops_pending_calls(backend: BackendChoice) {
        let Some((mut reactor, _clock)) = manual_reactor(backend) else { return };
        let marker = Rc::new(());
        let held = Rc::clone(&marker);
        let handle = reactor.handle();
        reactor.call_later(secs(60), move |_| drop((held, handle)));
        let held = Rc::clone(&marker);
        reactor.handle().run(move |_| drop(held));
        assert_eq!(Rc::strong_count(&marker), 3);
        drop(reactor);
        assert_eq!(Rc::strong_count(&marker), 1, "a pending call outlived its reactor");
    }

    /// A sleep completes when the clock passes its deadline; dropping one before then
    /// removes its wheel entry (it used to stay until due).
    fn dropping_a_sleep_removes_its_timer(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let handle = reactor.handle();
        let start = handle.now();
        let dropped = handle.sleep(secs(30));
        let kept = handle.sleep(secs(60));
        assert_eq!(reactor.next_deadline(), Some(start + secs(30)));
        drop(dropped);
        assert_eq!(reactor.next_deadline(), Some(start + secs(60)));
        let woke = Rc::new(Cell::new(false));
        let seen = Rc::clone(&woke);
        reactor.spawn_local(async move {
            kept.await.expect("the sleep completes");
            seen.set(true);
        });
        turn_now(&mut reactor);
        assert!(!woke.get());
        clock.advance(secs(60));
        wait(&mut reactor, |_| woke.get(), || "the 60 s sleep".into());
        assert_eq!(reactor.next_deadline(), None);
    }

    /// A real outbound connect that hangs (a full backlog) times out after its 30 s connect
    /// timeout when the manual clock passes it — without 30 s of waiting, which the test's
    /// 20 s bound would not allow — and not a moment before.
    fn a_manual_clock_fires_a_real_connect_timeout(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let backlog = common::FullBacklog::new();
        let (client, log) = recorded(Sink);
        let options = ConnectOptions::new().timeout(secs(30));
        reactor.connect(&backlog.addr.into(), client, options).unwrap();
        clock.advance(secs(29));
        turn_now(&mut reactor);
        turn_now(&mut reactor);
        assert!(!log.borrow().is_lost(), "{}", log.borrow().summary());
        clock.advance(secs(1));
        wait(&mut reactor, |_| log.borrow().is_lost(), || log.borrow().summary());
        assert_eq!(log.borrow().events, [Event::Lost(Lost::ConnectTimeout)]);
    }

    /// A server protocol's 60 s idle timeout closes a real connection once the clock passes
    /// it; input before then restarts it.
    fn a_manual_clock_fires_a_real_idle_timeout(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let (factory, servers) =
            recording_factory(|| IdleTimeout { idle: secs(60), timer: None });
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, log) = recorded(Sink);
        let id = reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(&mut reactor, |_| servers.borrow().len() == 1, || "the connection".into());
        clock.advance(secs(59));
        turn_now(&mut reactor);
        reactor.with_conn(id, |ctx| ctx.write(b"still here"));
        let server = common::nth(&servers, 0);
        wait(&mut reactor, |_| server.borrow().bytes.len() == 10, || server.borrow().summary());
        // The input at 59 s moved the timeout to 119 s.
        clock.advance(secs(59));
        turn_now(&mut reactor);
        turn_now(&mut reactor);
        assert!(!log.borrow().is_lost(), "closed early: {}", log.borrow().summary());
        clock.advance(secs(1));
        wait(&mut reactor, |_| log.borrow().is_lost(), || log.borrow().summary());
        assert_eq!(log.borrow().lost(), Some(Lost::Done));
    }

    /// The shutdown grace period is the clock's too: connections left when it ends are
    /// aborted when the clock passes it.
    fn a_manual_clock_ends_a_shutdown_grace_period(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let (factory, servers) = recording_factory(|| Sink);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, log) = recorded(Sink);
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(&mut reactor, |_| servers.borrow().len() == 1, || "the connection".into());
        reactor.shutdown(secs(30));
        turn_now(&mut reactor);
        assert!(!log.borrow().is_lost());
        clock.advance(secs(30));
        wait(&mut reactor, |r| r.is_finished(), || log.borrow().summary());
        assert_eq!(log.borrow().lost(), Some(Lost::Shutdown));
    }

    /// Fixed rate, skipping: a jump of the clock runs the latest due tick once, saying how
    /// many it skipped, and the grid stays where it was.
    fn looping_call_fixed_rate_skips_missed_ticks(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let start = reactor.now();
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&ticks);
        let looping = LoopingCall::start(&reactor.handle(), Repeat::every(secs(1)), move |_, tick| {
            seen.borrow_mut().push(*tick);
            ControlFlow::Continue(())
        });
        assert_eq!(looping.next_tick(), Some(start + secs(1)));
        clock.advance(secs(1));
        turn_now(&mut reactor);
        clock.advance(ms(3500));
        turn_now(&mut reactor);
        turn_now(&mut reactor);
        let got: Vec<_> = ticks.borrow().iter().map(|t| (t.index, t.scheduled - start, t.missed)).collect();
        assert_eq!(got, [(0, secs(1), 0), (3, secs(4), 2)]);
        assert_eq!((looping.ticks(), looping.missed()), (2, 2));
        assert_eq!(looping.next_tick(), Some(start + secs(5)), "the grid did not move");
        assert!(looping.stop());
        assert!(!looping.stop());
        assert_eq!(reactor.next_deadline(), None);
    }

    /// Fixed rate, bursting: every missed tick runs, one per turn, until on time again.
    fn looping_call_fixed_rate_bursts_missed_ticks(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let start = reactor.now();
        let ticks = Rc::new(RefCell::new(Vec::new()));
        let seen = Rc::clone(&ticks);
        let repeat = Repeat::fixed_rate(secs(1), MissedTicks::Burst);
        let looping = LoopingCall::start(&reactor.handle(), repeat, move |_, tick| {
            seen.borrow_mut().push((tick.index, tick.scheduled, tick.now));
            ControlFlow::Continue(())
        });
        clock.advance(ms(3500));
        wait(&mut reactor, |_| looping.ticks() == 3, || format!("{:?}", ticks.borrow()));
        turn_now(&mut reactor);
        let now = start + ms(3500);
        assert_eq!(
            *ticks.borrow(),
            [(0, start + secs(1), now), (1, start + secs(2), now), (2, start + secs(3), now)]
        );
        assert_eq!(looping.next_tick(), Some(start + secs(4)));
        looping.stop();
    }

    /// Fixed delay: each tick is due `delay` after the previous one's function returned —
    /// here it "works" for 500 ms by moving the clock.
    fn looping_call_fixed_delay_counts_from_the_end_of_a_tick(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let start = reactor.now();
        let busy = clock.clone();
        let looping = LoopingCall::start(&reactor.handle(), Repeat::fixed_delay(secs(1)), move |_, _| {
            busy.advance(ms(500));
            ControlFlow::Continue(())
        });
        clock.advance(secs(1));
        wait(&mut reactor, |_| looping.ticks() == 1, || "the first tick".into());
        assert_eq!(looping.next_tick(), Some(start + ms(2500)));
        looping.stop();
    }

    /// `start_now` runs the first tick at once; a function that returns `Break` stops the
    /// loop and is dropped, as is the function of a loop stopped from outside.
    fn looping_call_stops_from_inside_and_outside(backend: BackendChoice) {
        let Some((mut reactor, clock)) = manual_reactor(backend) else { return };
        let captured = Rc::new(());
        let held = Rc::clone(&captured);
        let inside = LoopingCall::start_now(&reactor.handle(), Repeat::every(secs(1)), move |_, tick| {
            let _ = &held;
            if tick.index == 1 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        });
        let held = Rc::clone(&captured);
        let outside = LoopingCall::start(&reactor.handle(), Repeat::every(secs(1)), move |_, _| {
            let _ = &held;
            ControlFlow::Continue(())
        });
        turn_now(&mut reactor);
        assert_eq!(inside.ticks(), 1, "start_now ran the first tick at once");
        clock.advance(secs(1));
        turn_now(&mut reactor);
        assert_eq!((inside.ticks(), outside.ticks()), (2, 1));
        assert!(!inside.is_running(), "Break stopped it");
        assert_eq!(Rc::strong_count(&captured), 2, "the stopped loop's function was dropped");
        assert!(outside.stop());
        assert_eq!(Rc::strong_count(&captured), 1);
        clock.advance(secs(10));
        turn_now(&mut reactor);
        assert_eq!((inside.ticks(), outside.ticks()), (2, 1));
        assert_eq!(reactor.next_deadline(), None);
    }

    /// One manual clock drives every core of a runtime: moving it (from the test's thread)
    /// wakes each core, whose call then runs.
    fn a_manual_clock_drives_every_core_of_a_runtime(backend: BackendChoice) {
        if !common::available(backend) {
            return;
        }
        let clock = ringwork::ManualClock::new();
        let config = ringwork::ReactorConfig {
            clock: ringwork::Clock::Manual(clock.clone()),
            ..ringwork::ReactorConfig::default()
        };
        let runtime = ringwork::Runtime::builder()
            .cores(2)
            .pin(false)
            .backend(backend)
            .reactor_config(config)
            .build()
            .unwrap();
        let (armed_tx, armed) = crossbeam_channel::unbounded();
        let (fired_tx, fired) = crossbeam_channel::unbounded();
        let running = common::Running::start(runtime, move |reactor| {
            let core = reactor.core_index();
            let fired = fired_tx.clone();
            reactor.call_later(secs(60), move |_| fired.send(core).unwrap());
            armed_tx.send(core).unwrap();
            Ok(())
        });
        for _ in 0..2 {
            common::recv(&armed, "a core to arm its call");
        }
        assert!(fired.try_recv().is_err(), "a call ran before the clock moved");
        clock.advance(secs(60));
        let mut cores = [common::recv(&fired, "a call"), common::recv(&fired, "the other call")];
        cores.sort_unstable();
        assert_eq!(cores, [0, 1]);
        running.handle.shutdown(Duration::ZERO);
        running.join().unwrap();
    }

    /// On the system clock, a 5 ms loop ticks on its grid, never early.
    fn looping_call_ticks_on_time(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let start = reactor.now();
        let late: Rc<RefCell<Vec<(Instant, Instant)>>> = Rc::default();
        let seen = Rc::clone(&late);
        let looping = LoopingCall::start(&reactor.handle(), Repeat::every(ms(5)), move |r, tick| {
            seen.borrow_mut().push((tick.scheduled, r.now()));
            ControlFlow::Continue(())
        });
        wait(&mut reactor, |_| looping.ticks() >= 3, || "three ticks".into());
        looping.stop();
        for (k, &(scheduled, at)) in late.borrow().iter().enumerate() {
            assert!(scheduled >= start + ms(5) * (k as u32 + 1), "tick {k} off the grid");
            assert!(at >= scheduled, "tick {k} ran early");
        }
    }
}
