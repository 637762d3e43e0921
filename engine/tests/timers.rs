//! Protocol timers on every backend: `call_later` order and punctuality, cancellation,
//! `call_every` repeats, and timers of a connection that is gone.
//!
//! Each timer protocol runs on an outbound connection to a listener of the same reactor.
//! Fire times are `ctx.now()` at `timer_fired`, compared with `ctx.now()` when the timer was
//! armed plus its delay: never earlier, and not absurdly later (the reactor must wake up
//! for a timer by itself; nothing else happens while these tests wait).

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{Event, Lost, Sink, reactor, reactor_with, recorded, recording_factory, wait};
use ringwork::platform::{BackendChoice, BatchWait, DriverConfig};
use ringwork::{ConnId, ConnectOptions, Context, Protocol, Reactor, ReactorConfig, TimerId};

/// Latest acceptable firing, after the deadline (generous for a loaded CI machine; a
/// reactor that does not wake up for timers would wait for [`common::LIMIT`]).
const LATE: Duration = Duration::from_secs(2);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A listener that only reads (recorded), and its address.
fn idle_server(reactor: &mut Reactor) -> (ringwork::SockAddr, common::Logs) {
    let (factory, logs) = recording_factory(|| Sink);
    (
        reactor
            .listen_tcp(common::any_port(), factory)
            .unwrap()
            .into(),
        logs,
    )
}

#[derive(Default)]
struct Timeline {
    /// Per timer: its index among the armed ones and its deadline (armed `now` + delay).
    armed: HashMap<TimerId, (usize, Instant)>,
    /// Timers in firing order, with `ctx.now()` at the call.
    fired: Vec<(TimerId, Instant)>,
}

/// Arms one `call_later` per delay when connected; records when each fires.
struct Later {
    delays: Vec<Duration>,
    timeline: Rc<RefCell<Timeline>>,
}

impl Protocol for Later {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let mut timeline = self.timeline.borrow_mut();
        for (i, &delay) in self.delays.iter().enumerate() {
            let armed = ctx.now();
            let id = ctx.call_later(delay);
            timeline.armed.insert(id, (i, armed + delay));
        }
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.timeline.borrow_mut().fired.push((timer, ctx.now()));
    }
}

/// Arms `a`, `b`, `c` at 5, 15, 30 ms and cancels `b` at once; tries to cancel timers that
/// already fired from `timer_fired`.
struct Cancels {
    ids: Vec<TimerId>,
    /// Every `cancel_timer` result, in call order.
    results: Rc<RefCell<Vec<bool>>>,
    fired: Rc<RefCell<Vec<TimerId>>>,
}

impl Protocol for Cancels {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.ids = [5, 15, 30].map(|d| ctx.call_later(ms(d))).to_vec();
        let mut results = self.results.borrow_mut();
        results.push(ctx.cancel_timer(self.ids[1]));
        results.push(ctx.cancel_timer(self.ids[1]));
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        self.fired.borrow_mut().push(timer);
        // Already fired (one-shot): nothing to cancel.
        self.results.borrow_mut().push(ctx.cancel_timer(timer));
    }
}

#[derive(Default)]
struct Repeats {
    /// The two repeating timers and when they were armed.
    every: Option<(TimerId, TimerId, Instant)>,
    /// Fires per timer, with `ctx.now()`.
    fires: HashMap<TimerId, Vec<Instant>>,
    /// The result of cancelling the first timer from its own third `timer_fired`.
    cancelled_inside: Option<bool>,
}

/// Two repeating timers (5 ms and 7 ms); the first cancels itself on its third fire.
struct Every {
    repeats: Rc<RefCell<Repeats>>,
}

impl Protocol for Every {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        let (a, b) = (ctx.call_every(ms(5)), ctx.call_every(ms(7)));
        self.repeats.borrow_mut().every = Some((a, b, now));
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let mut repeats = self.repeats.borrow_mut();
        let fires = repeats.fires.entry(timer).or_default();
        fires.push(ctx.now());
        let third = fires.len() == 3;
        let (a, ..) = repeats.every.expect("armed");
        if timer == a && third {
            repeats.cancelled_inside = Some(ctx.cancel_timer(a));
        }
    }
}

/// Arms a one-shot and a repeating timer, then closes at once.
struct Doomed;

impl Protocol for Doomed {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.call_later(ms(0));
        ctx.call_later(ms(10));
        ctx.call_every(ms(3));
        ctx.close();
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Arms one timer when connected (the end of the observation window).
struct Sentinel(Duration);

impl Protocol for Sentinel {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.call_later(self.0);
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Checks that a timer due at `due` fired at `at`: not before, and not [`LATE`] after.
#[track_caller]
fn assert_punctual(what: &str, due: Instant, at: Instant) {
    assert!(
        at >= due,
        "{what} fired {:?} before its deadline",
        due.duration_since(at)
    );
    assert!(
        at - due < LATE,
        "{what} fired {:?} after its deadline",
        at - due
    );
}

ringwork::platform::test_all_backends! {
    /// Several `call_later` delays (two equal, one zero) fire once each, in deadline order
    /// (equal deadlines in arming order), never before their deadline.
    fn call_later_fires_in_order_never_early(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _) = idle_server(&mut reactor);
        // The last (longest) one closes the window: duplicates of earlier ones would show.
        let delays: Vec<Duration> = [30, 5, 20, 5, 1, 10, 0, 60].map(ms).to_vec();
        let timeline = Rc::new(RefCell::new(Timeline::default()));
        let client = Later {
            delays: delays.clone(),
            timeline: Rc::clone(&timeline),
        };
        reactor.connect(&addr, client, ConnectOptions::default()).unwrap();
        let last = delays.len() - 1;
        wait(
            &mut reactor,
            |_| {
                let t = timeline.borrow();
                t.fired.iter().any(|(id, _)| t.armed[id].0 == last)
            },
            || {
                format!(
                    "the {:?} timer; fired so far: {}",
                    delays[last],
                    timeline.borrow().fired.len()
                )
            },
        );

        let timeline = timeline.borrow();
        let fired: Vec<usize> = timeline
            .fired
            .iter()
            .map(|(id, _)| timeline.armed[id].0)
            .collect();
        let mut expected: Vec<usize> = (0..delays.len()).collect();
        expected.sort_by_key(|&i| (delays[i], i));
        let named = |order: &[usize]| order.iter().map(|&i| delays[i]).collect::<Vec<_>>();
        assert_eq!(
            fired,
            expected,
            "firing order (by delay: {:?}, expected {:?})",
            named(&fired),
            named(&expected)
        );
        for (id, at) in &timeline.fired {
            let (i, due) = timeline.armed[id];
            assert_punctual(&format!("the {:?} timer", delays[i]), due, *at);
        }
    }

    /// A cancelled timer never fires; cancelling twice, or after the timer fired, says false.
    fn cancel(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _) = idle_server(&mut reactor);
        let results = Rc::new(RefCell::new(Vec::new()));
        let fired = Rc::new(RefCell::new(Vec::new()));
        let (client, log) = recorded(Cancels {
            ids: Vec::new(),
            results: Rc::clone(&results),
            fired: Rc::clone(&fired),
        });
        reactor.connect(&addr, client, ConnectOptions::default()).unwrap();
        // The 30 ms timer fires after the cancelled 15 ms one was due.
        wait(
            &mut reactor,
            |_| fired.borrow().len() >= 2,
            || format!("two timers to fire: {}", log.borrow().summary()),
        );
        let ids = log
            .borrow()
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Timer(id) => Some(*id),
                _ => None,
            })
            .collect::<Vec<_>>();
        assert_eq!(*fired.borrow(), ids);
        assert_eq!(ids.len(), 2, "fired: {ids:?}");
        assert!(
            ids[0] < ids[1],
            "the 5 ms timer first, then the 30 ms one: {ids:?}"
        );
        assert_eq!(
            *results.borrow(),
            [true, false, false, false],
            "cancel pending, cancel again, cancel after firing (x2)"
        );
    }

    /// `call_every` fires repeatedly with one id, spaced by its interval, and stops for good
    /// when cancelled, from its own callback or from outside.
    fn call_every_repeats_until_cancelled(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _) = idle_server(&mut reactor);
        let repeats = Rc::new(RefCell::new(Repeats::default()));
        let id = reactor
            .connect(
                &addr,
                Every {
                    repeats: Rc::clone(&repeats),
                },
                ConnectOptions::default(),
            )
            .unwrap();
        let fires_of = |t: TimerId| repeats.borrow().fires.get(&t).map_or(0, Vec::len);
        wait(
            &mut reactor,
            |_| {
                repeats
                    .borrow()
                    .every
                    .is_some_and(|(a, b, _)| fires_of(a) >= 3 && fires_of(b) >= 3)
            },
            || {
                format!(
                    "three fires of each repeating timer: {:?}",
                    repeats.borrow().fires
                )
            },
        );
        let (a, b, armed) = repeats.borrow().every.unwrap();
        // Cancel the second from outside any callback.
        let b_fires = fires_of(b);
        assert!(
            reactor.with_conn(id, |ctx| ctx.cancel_timer(b)),
            "cancel a live repeating timer"
        );
        assert!(
            !reactor.with_conn(id, |ctx| ctx.cancel_timer(b)),
            "cancel it twice"
        );
        // A window of several intervals: neither may fire again.
        let end = reactor.with_conn(id, |ctx| ctx.call_later(ms(40)));
        wait(
            &mut reactor,
            |_| repeats.borrow().fires.contains_key(&end),
            || "the 40 ms window to end".into(),
        );

        let repeats = repeats.borrow();
        assert_eq!(
            repeats.cancelled_inside,
            Some(true),
            "cancelling itself from timer_fired"
        );
        assert_eq!(
            repeats.fires[&a].len(),
            3,
            "the self-cancelled timer fired again"
        );
        assert_eq!(
            repeats.fires[&b].len(),
            b_fires,
            "the cancelled timer fired again"
        );
        for (t, interval) in [(a, ms(5)), (b, ms(7))] {
            let mut due = armed + interval;
            for (k, &at) in repeats.fires[&t].iter().enumerate() {
                assert_punctual(&format!("fire {k} of the {interval:?} timer"), due, at);
                due = at + interval;
            }
        }
    }

    /// Timers of a connection that closed never fire — not on it, and not on a later
    /// connection that takes its slot.
    fn timers_of_a_lost_connection_never_fire(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, servers) = idle_server(&mut reactor);
        let (doomed, doomed_log) = recorded(Doomed);
        reactor.connect(&addr, doomed, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| doomed_log.borrow().is_lost(),
            || {
                format!(
                    "the doomed connection to close: {}",
                    doomed_log.borrow().summary()
                )
            },
        );
        // Later connections (reusing slots) and one that ends the window.
        let mut later_clients = Vec::new();
        for _ in 0..4 {
            let (client, log) = recorded(Sink);
            reactor.connect(&addr, client, ConnectOptions::default()).unwrap();
            later_clients.push(log);
        }
        let (sentinel, sentinel_log) = recorded(Sentinel(ms(50)));
        reactor.connect(&addr, sentinel, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| {
                sentinel_log
                    .borrow()
                    .count(|e| matches!(e, Event::Timer(_)))
                    == 1
            },
            || {
                format!(
                    "the 50 ms window to end: {}",
                    sentinel_log.borrow().summary()
                )
            },
        );

        let doomed = doomed_log.borrow();
        assert_eq!(
            doomed.events,
            [Event::Made, Event::Lost(Lost::Done)],
            "{}",
            doomed.summary()
        );
        let doomed_slot = doomed.id.map(ConnId::index);
        let mut reused = false;
        for log in later_clients.iter().chain(servers.borrow().iter()) {
            let log = log.borrow();
            reused |= log.id.map(ConnId::index) == doomed_slot;
            assert_eq!(
                log.count(|e| matches!(e, Event::Timer(_))),
                0,
                "a later connection got a timer it never armed: {}",
                log.summary()
            );
        }
        eprintln!("{backend:?}: slot of the closed connection reused: {reused}");
    }

    /// A timer armed from outside any callback (`Reactor::with_conn`) counts its delay from
    /// the moment it is armed, not from the reactor's last turn.
    fn armed_outside_a_callback_is_not_early(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (addr, _) = idle_server(&mut reactor);
        let timeline = Rc::new(RefCell::new(Timeline::default()));
        let client = Later {
            delays: Vec::new(),
            timeline: Rc::clone(&timeline),
        };
        let id = reactor.connect(&addr, client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |r| r.connections() == 2,
            || "the connection to open".into(),
        );
        // The program works for a while between turns (this sleep waits for nothing: it
        // makes the reactor's turn time old, as any work outside the reactor does).
        std::thread::sleep(ms(50));
        let armed = Instant::now();
        let timer = reactor.with_conn(id, |ctx| ctx.call_later(ms(100)));
        wait(
            &mut reactor,
            |_| !timeline.borrow().fired.is_empty(),
            || "the timer".into(),
        );
        let (fired, at) = timeline.borrow().fired[0];
        assert_eq!(fired, timer);
        assert_punctual("a timer armed through with_conn", armed + ms(100), at);
    }

    /// `LocalHandle::sleep` futures wake in deadline order, never early, with no
    /// connection open (the reactor wakes for the wheel entry by itself).
    fn sleeps_wake_futures_in_order(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let woke: Rc<RefCell<Vec<(u64, Instant)>>> = Rc::default();
        let start = Instant::now();
        for delay in [60, 20, 40] {
            let handle = reactor.handle();
            let woke = Rc::clone(&woke);
            reactor.spawn_local(async move {
                handle.sleep(ms(delay)).await.expect("sleep resolves");
                woke.borrow_mut().push((delay, Instant::now()));
            });
        }
        wait(
            &mut reactor,
            |_| woke.borrow().len() == 3,
            || format!("three sleeps, woke {:?}", woke.borrow()),
        );
        let woke = woke.borrow();
        let order: Vec<u64> = woke.iter().map(|(d, _)| *d).collect();
        assert_eq!(order, [20, 40, 60]);
        for &(delay, at) in woke.iter() {
            assert_punctual("a sleep", start + ms(delay), at);
        }
    }

    /// With `busy_poll`, the reactor spins (turns without sleeping) while a timer is due
    /// within it, and the timer still fires on time, never early; without, it sleeps until
    /// the timer (a few turns at most).
    fn busy_poll_spins_until_a_close_timer(backend: BackendChoice) {
        let turns_until_timer = |busy_poll: Duration| {
            let config = ReactorConfig {
                busy_poll,
                ..ReactorConfig::default()
            };
            let mut reactor = reactor_with(backend, config)?;
            let fired: Rc<RefCell<Option<Instant>>> = Rc::default();
            let armed = reactor.now();
            let f = Rc::clone(&fired);
            reactor.call_later(ms(30), move |r| *f.borrow_mut() = Some(r.now()));
            let before = reactor.stats().turns;
            wait(&mut reactor, |_| fired.borrow().is_some(), || "the 30 ms timer".into());
            let at = fired.borrow().expect("fired");
            assert_punctual("the 30 ms timer", armed + ms(30), at);
            Some(reactor.stats().turns - before)
        };
        let Some(sleeping) = turns_until_timer(Duration::ZERO) else { return };
        let Some(spinning) = turns_until_timer(ms(100)) else { return };
        assert!(sleeping <= 5, "{sleeping} turns without busy polling");
        // 30 ms of non-blocking turns: thousands on an idle machine; far more than 5 on
        // any.
        assert!(spinning > 50, "only {spinning} turns while busy polling");
    }

    /// A timer a callback arms with no delay fires in the same turn as the callback: the
    /// turn skips the wheel only when no timer was armed since its wait was chosen.
    fn a_due_timer_armed_by_a_callback_fires_in_its_turn(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (factory, _) = recording_factory(|| Greeter);
        let addr: ringwork::SockAddr = reactor
            .listen_tcp(common::any_port(), factory)
            .unwrap()
            .into();
        let log: Rc<RefCell<Vec<&'static str>>> = Rc::default();
        reactor
            .connect(&addr, DueNow(Rc::clone(&log)), ConnectOptions::default())
            .unwrap();
        // A long timer keeps the wheel non-empty, as a server's idle timeouts do.
        reactor.call_later(Duration::from_secs(3600), |_| {});
        for _ in 0..10_000 {
            if log.borrow().contains(&"fired") {
                break;
            }
            log.borrow_mut().push("turn");
            reactor.turn(Some(ms(100))).expect("reactor turn");
        }
        let log = log.borrow();
        let data = log.iter().position(|e| *e == "data").expect("the greeting arrived");
        assert_eq!(
            log.get(data + 1),
            Some(&"fired"),
            "the due timer waited for another turn: {log:?}"
        );
    }

    /// A driver that batches its waits (`DriverConfig::batch_wait`, here up to 1 s) still
    /// fires the reactor's timers on time: the reactor's next deadline bounds the wait, and
    /// a timer is never held for the batch. The batch is engaged first (a burst of
    /// datagrams delivered in one turn), so the first timer's wait is a batch wait.
    fn batch_wait_does_not_delay_timers(backend: BackendChoice) {
        if !common::available(backend) {
            return;
        }
        let max_wait = Duration::from_secs(1);
        let driver = DriverConfig {
            backend,
            batch_wait: Some(BatchWait {
                min_completions: 16,
                max_wait,
            }),
            ..DriverConfig::default()
        };
        let mut reactor =
            Reactor::new(ReactorConfig::default(), driver).expect("create a reactor");
        let received = Rc::new(RefCell::new(0usize));
        let id = reactor
            .bind_udp(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                Counter(Rc::clone(&received)),
            )
            .expect("bind");
        let addr = reactor
            .udp_local_addr(id)
            .expect("local address")
            .as_socket()
            .expect("an IP address");
        let client = std::net::UdpSocket::bind("127.0.0.1:0").expect("client socket");
        for i in 0..16u8 {
            client.send_to(&[i], addr).expect("send");
        }
        wait(&mut reactor, |_| *received.borrow() == 16, || "the burst".into());
        let fired: Rc<RefCell<Vec<(u64, Instant)>>> = Rc::default();
        let armed = reactor.now();
        for delay in [30, 60, 90] {
            let f = Rc::clone(&fired);
            reactor.call_later(ms(delay), move |r| f.borrow_mut().push((delay, r.now())));
        }
        wait(&mut reactor, |_| fired.borrow().len() == 3, || "three timers".into());
        for &(delay, at) in fired.borrow().iter() {
            let due = armed + ms(delay);
            assert!(at >= due, "the {delay} ms timer fired early");
            assert!(
                at - due < max_wait / 2,
                "the {delay} ms timer fired {:?} late: held by the batch wait",
                at - due
            );
        }
    }
}

/// Writes a greeting as soon as it is connected (the server of
/// `a_due_timer_armed_by_a_callback_fires_in_its_turn`).
struct Greeter;

impl Protocol for Greeter {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(b"hi");
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Arms a timer that is due at once when bytes arrive; logs both.
struct DueNow(Rc<RefCell<Vec<&'static str>>>);

impl Protocol for DueNow {
    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        self.0.borrow_mut().push("data");
        let _ = ctx.call_later(Duration::ZERO);
    }

    fn timer_fired(&mut self, _ctx: &mut Context<'_>, _timer: TimerId) {
        self.0.borrow_mut().push("fired");
    }
}

/// Counts the datagrams it receives.
struct Counter(Rc<RefCell<usize>>);

impl ringwork::DatagramProtocol for Counter {
    fn datagram_received(
        &mut self,
        _: &mut ringwork::DatagramContext<'_>,
        _: &[u8],
        _: std::net::SocketAddr,
    ) {
        *self.0.borrow_mut() += 1;
    }
}
