//! Datagrams, timers and the cross-thread wake-up, on every backend.
//!
//! Proves:
//! - (a) UDP round trips over IPv4 and IPv6 (`::1`; skipped with a printed reason where it
//!   cannot be bound): each `ReceivedFrom` names the sender's `local_addr` and carries its
//!   payload intact (1 byte up to a full buffer); an empty datagram arrives as an empty
//!   `ReceivedFrom`, and receiving goes on after it;
//! - (b) a datagram longer than a pool buffer arrives cut to the buffer with `truncated:
//!   true`, and the flag does not stick to the next datagram; one of exactly a buffer's
//!   size arrives whole with `truncated: false`;
//! - (c) timers armed in shuffled order are delivered in deadline order, never before their
//!   deadline, cancelled timers (before or after they reached the backend) never fire, and
//!   cancelling a fired timer returns `false`;
//! - (d) `Waker::wake` from another thread ends a `turn(None, ..)` that is blocked in the
//!   kernel (the waking thread first sees the driver's thread asleep in its wait system
//!   call) with `Completion::Woken`. A broken wake-up would hang the turn, so a watchdog
//!   aborts the process after 20 s with a message.

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::seq::SliceRandom;
use ringwork_platform::{
    BackendChoice, Bytes, Completion, Driver, DriverConfig, SocketId, TimerId, test_all_backends,
    testing,
};

use common::{drive, pattern, rng, seed, settle, std_addr};

// ---------------------------------------------------------------------------------------
// (a) round trips

const ROUNDS: usize = 24;

struct RoundTrip {
    /// Datagram in flight: (from, to, payload).
    expected: Option<(SocketId, SocketId, Bytes)>,
    rounds: usize,
    sent: usize,
    /// Payload bytes handed to `send_to`, and reported sent.
    handed_bytes: usize,
    sent_bytes: usize,
}

fn udp_round_trips(backend: BackendChoice, ip: IpAddr) {
    let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
        return;
    };
    let a = match driver.bind_udp(SocketAddr::new(ip, 0)) {
        Ok(a) => a,
        Err(e) if ip.is_ipv6() => {
            eprintln!("skipped: IPv6 UDP round trip ({ip} cannot be bound here: {e})");
            return;
        }
        Err(e) => panic!("bind {ip}: {e}"),
    };
    let b = driver.bind_udp(SocketAddr::new(ip, 0)).expect("bind");
    let addr_of = |driver: &Driver, id| std_addr(&driver.local_addr(id).expect("local_addr"));
    let addrs: HashMap<SocketId, SocketAddr> =
        [(a, addr_of(&driver, a)), (b, addr_of(&driver, b))].into();
    assert!(driver.recv(a));
    assert!(driver.recv(b));
    let seed = seed("udp_round_trips", 0x0d9);
    let mut rng = rng(seed);
    let max = driver.config().buf_size as usize;
    let mut datagram = |round: usize| -> Bytes {
        // One round sends a single byte, one a byte less than a buffer (a full buffer has
        // its own test: `datagram_filling_a_buffer_is_not_truncated`).
        let len = match round {
            3 => 1,
            5 => max - 1,
            _ => rng.random_range(1..max),
        };
        Bytes::from(pattern(seed.wrapping_add(round as u64), len))
    };
    let first = datagram(0);
    let first_len = first.len();
    assert!(driver.send_to(a, first.clone(), addrs[&b]));
    let mut state = RoundTrip {
        expected: Some((a, b, first)),
        rounds: 0,
        sent: 0,
        handed_bytes: first_len,
        sent_bytes: 0,
    };
    drive(
        &mut driver,
        &mut state,
        |driver, s, c| match c {
            Completion::ReceivedFrom {
                socket,
                buf,
                from,
                truncated,
            } => {
                let (sender, receiver, payload) = s.expected.take().expect("a datagram in flight");
                assert_eq!(socket, receiver, "datagram arrived on the wrong socket");
                assert_eq!(
                    from, addrs[&sender],
                    "ReceivedFrom.from is not the sender's address"
                );
                assert!(
                    !truncated,
                    "a datagram of {} bytes reported truncated",
                    payload.len()
                );
                assert_eq!(buf.len(), payload.len(), "datagram length");
                assert!(*buf == payload[..], "datagram payload differs");
                s.rounds += 1;
                if s.rounds < ROUNDS {
                    let reply = datagram(s.rounds);
                    s.handed_bytes += reply.len();
                    assert!(driver.send_to(receiver, reply.clone(), addrs[&sender]));
                    s.expected = Some((receiver, sender, reply));
                }
            }
            Completion::Sent {
                socket,
                bytes,
                queued,
            } => {
                assert!(socket == a || socket == b);
                assert_eq!(queued, 0, "one datagram queued at a time");
                s.sent += 1;
                s.sent_bytes += bytes;
            }
            other => panic!("unexpected {other:?}"),
        },
        |_, s| s.rounds == ROUNDS && s.sent == ROUNDS,
        |_, s| {
            format!(
                "{}/{ROUNDS} datagrams received, {} sent; in flight: {:?}",
                s.rounds,
                s.sent,
                s.expected.as_ref().map(|(from, to, p)| (from, to, p.len()))
            )
        },
    );
    assert_eq!(
        state.sent_bytes, state.handed_bytes,
        "Sent reports each datagram's length"
    );
    assert!(driver.close(a));
    assert!(driver.close(b));
    settle(&mut driver, 0);
}

test_all_backends! {
    fn udp_round_trip_ipv4(backend: BackendChoice) {
        udp_round_trips(backend, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    fn udp_round_trip_ipv6(backend: BackendChoice) {
        udp_round_trips(backend, IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
}

test_all_backends! {
    fn empty_datagram_is_delivered(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let a = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let b = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let to = std_addr(&driver.local_addr(b).unwrap());
        let from = std_addr(&driver.local_addr(a).unwrap());
        assert!(driver.recv(b));
        assert!(driver.send_to(a, Bytes::new(), to));
        assert!(driver.send_to(a, Bytes::from_static(b"after"), to));
        // (empty datagram seen, "after" seen)
        let mut got = (0, 0);
        drive(
            &mut driver,
            &mut got,
            |_, got, c| match c {
                Completion::ReceivedFrom { socket, buf, from: f, truncated } => {
                    assert_eq!((socket, f, truncated), (b, from, false));
                    match &buf[..] {
                        b"" => got.0 += 1,
                        b"after" => got.1 += 1,
                        other => panic!("unexpected datagram {other:?}"),
                    }
                }
                Completion::Sent { socket, .. } => assert_eq!(socket, a),
                other => panic!("an empty datagram (a valid UDP payload) gave {other:?}"),
            },
            |_, got| *got == (1, 1),
            |_, got| format!("(empty, \"after\") datagrams received: {got:?}"),
        );
        assert!(driver.close(a));
        assert!(driver.close(b));
        settle(&mut driver, 0);
    }
}

// ---------------------------------------------------------------------------------------
// (b) truncation

test_all_backends! {
    fn oversized_datagram_is_truncated(backend: BackendChoice) {
        const BUF: u32 = 1024;
        let config = DriverConfig { buf_size: BUF, ..DriverConfig::default() };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let a = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let b = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let to = std_addr(&driver.local_addr(b).unwrap());
        let from = std_addr(&driver.local_addr(a).unwrap());
        // The first byte tags each datagram, so the check does not rely on their order.
        let mut big = pattern(0x7a, 3 * BUF as usize);
        big[0] = 1;
        let mut small = pattern(0x7b, 100);
        small[0] = 2;
        assert!(driver.recv(b));
        assert!(driver.send_to(a, Bytes::from(big.clone()), to));
        assert!(driver.send_to(a, Bytes::from(small.clone()), to));
        let mut got: HashMap<u8, (Vec<u8>, bool)> = HashMap::new();
        drive(
            &mut driver,
            &mut got,
            |_, got, c| match c {
                Completion::ReceivedFrom { socket, buf, from: f, truncated } => {
                    assert_eq!(socket, b);
                    assert_eq!(f, from);
                    assert!(!buf.is_empty());
                    assert!(got.insert(buf[0], (buf.to_vec(), truncated)).is_none());
                }
                Completion::Sent { socket, .. } => assert_eq!(socket, a),
                other => panic!("unexpected {other:?}"),
            },
            |_, got| got.len() == 2,
            |_, got| format!("datagrams received (by tag): {:?}", got.keys().collect::<Vec<_>>()),
        );
        let (cut, truncated) = &got[&1];
        assert!(*truncated, "a {}-byte datagram into {BUF}-byte buffers: truncated", big.len());
        assert_eq!(cut.len(), BUF as usize, "cut to one buffer");
        assert_eq!(cut[..], big[..BUF as usize], "the start of the datagram is kept");
        let (whole, truncated) = &got[&2];
        assert!(!*truncated, "the next, small datagram is not truncated");
        assert_eq!(*whole, small);
        assert!(driver.close(a));
        assert!(driver.close(b));
        settle(&mut driver, 0);
    }
}

test_all_backends! {
    fn datagram_filling_a_buffer_is_not_truncated(backend: BackendChoice) {
        const BUF: u32 = 1024;
        let config = DriverConfig { buf_size: BUF, ..DriverConfig::default() };
        let Some(mut driver) = testing::driver(backend, config) else { return };
        let a = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let b = driver.bind_udp((Ipv4Addr::LOCALHOST, 0).into()).expect("bind");
        let to = std_addr(&driver.local_addr(b).unwrap());
        let mut full = pattern(0x7c, BUF as usize);
        full[0] = 1;
        let mut almost = pattern(0x7d, BUF as usize - 1);
        almost[0] = 2;
        assert!(driver.recv(b));
        assert!(driver.send_to(a, Bytes::from(full.clone()), to));
        assert!(driver.send_to(a, Bytes::from(almost.clone()), to));
        let mut got: HashMap<u8, (Vec<u8>, bool)> = HashMap::new();
        drive(
            &mut driver,
            &mut got,
            |_, got, c| match c {
                Completion::ReceivedFrom { socket, buf, truncated, .. } => {
                    assert_eq!(socket, b);
                    assert!(got.insert(buf[0], (buf.to_vec(), truncated)).is_none());
                }
                Completion::Sent { socket, .. } => assert_eq!(socket, a),
                other => panic!("unexpected {other:?}"),
            },
            |_, got| got.len() == 2,
            |_, got| format!("datagrams received (by tag): {:?}", got.keys().collect::<Vec<_>>()),
        );
        assert_eq!(got[&2], (almost, false), "a datagram one byte shorter than a buffer");
        let (whole, truncated) = &got[&1];
        assert_eq!(*whole, full, "a datagram of exactly one buffer arrives whole");
        assert!(
            !*truncated,
            "a datagram of exactly buf_size ({BUF}) bytes is not longer than a buffer, yet \
             reported truncated"
        );
        assert!(driver.close(a));
        assert!(driver.close(b));
        settle(&mut driver, 0);
    }
}

// ---------------------------------------------------------------------------------------
// (c) timers

const TIMERS: usize = 20;
const SPACING: Duration = Duration::from_micros(2500);

#[derive(Default)]
struct Timers {
    deadlines: HashMap<TimerId, Instant>,
    cancelled: Vec<TimerId>,
    /// (timer, its deadline, when it was delivered, in which turn), in delivery order.
    fired: Vec<(TimerId, Instant, Instant, u64)>,
    turn: u64,
    sentinel: Option<TimerId>,
    sentinel_fired: bool,
}

impl Timers {
    fn handle(&mut self, c: Completion) {
        let now = Instant::now();
        let Completion::Timer { timer } = c else {
            panic!("unexpected {c:?}")
        };
        assert!(
            !self.cancelled.contains(&timer),
            "cancelled timer {timer:?} fired"
        );
        if Some(timer) == self.sentinel {
            self.sentinel_fired = true;
            return;
        }
        let deadline = self.deadlines[&timer];
        assert!(
            now >= deadline,
            "timer {timer:?} fired {:?} before its deadline",
            deadline - now
        );
        assert!(
            !self.fired.iter().any(|f| f.0 == timer),
            "timer {timer:?} fired twice"
        );
        self.fired.push((timer, deadline, now, self.turn));
    }
}

test_all_backends! {
    fn timers_fire_in_deadline_order_and_cancel(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let mut rng = rng(seed("timers", 0x7173));
        let start = Instant::now();
        // Deadlines start, start + 2.5 ms, ... (the first one has passed when armed).
        let mut order: Vec<usize> = (0..TIMERS).collect();
        order.shuffle(&mut rng);
        let mut state = Timers::default();
        let mut by_index = HashMap::new();
        for &i in &order {
            let deadline = start + SPACING * i as u32;
            let id = driver.timer(deadline);
            state.deadlines.insert(id, deadline);
            by_index.insert(i, id);
        }
        // Cancelled before they reach the backend.
        for i in [2, 9, 14] {
            assert!(driver.cancel_timer(by_index[&i]));
            assert!(!driver.cancel_timer(by_index[&i]), "second cancel returns false");
            state.cancelled.push(by_index[&i]);
        }
        // One turn hands the others to the backend; then cancel some armed ones (deadlines
        // 42.5 ms and later, far beyond this turn).
        let mut out = Vec::new();
        driver.turn(Some(Duration::ZERO), &mut out).expect("turn");
        for c in out.drain(..) {
            state.handle(c);
        }
        for i in [17, 19] {
            let after = SPACING * i as u32;
            assert!(driver.cancel_timer(by_index[&i]), "timer {i} (deadline +{after:?}) gone");
            state.cancelled.push(by_index[&i]);
        }
        // A last timer well after all others: once it fired, any cancelled timer that was
        // going to fire would have.
        let sentinel = driver.timer(start + SPACING * TIMERS as u32 + Duration::from_millis(20));
        state.sentinel = Some(sentinel);
        drive(
            &mut driver,
            &mut state,
            |_, s, c| s.handle(c),
            |_, s| {
                s.turn += 1;
                s.sentinel_fired
            },
            |_, s| {
                let expected = TIMERS - s.cancelled.len();
                format!("{}/{expected} timers fired, sentinel not yet", s.fired.len())
            },
        );
        let expected: Vec<TimerId> = (0..TIMERS)
            .map(|i| by_index[&i])
            .filter(|id| !state.cancelled.contains(id))
            .collect();
        let delivered: Vec<TimerId> = state.fired.iter().map(|f| f.0).collect();
        // (deadline, delivered at, turn), relative to the start, in delivery order.
        let timeline: Vec<String> = state
            .fired
            .iter()
            .map(|&(_, deadline, at, turn)| {
                format!("{:?}->{:?}@{turn}", deadline - start, at - start)
            })
            .collect();
        assert_eq!(
            delivered, expected,
            "timers delivered in deadline order, each once; deadline->delivery@turn: \
             {timeline:?}"
        );
        eprintln!("{backend:?}: deadline->delivery@turn {timeline:?}");
        for (id, ..) in &state.fired {
            assert!(!driver.cancel_timer(*id), "cancel after firing returns false");
        }
        assert!(!driver.cancel_timer(sentinel));
    }
}

// ---------------------------------------------------------------------------------------
// (d) wake-up from another thread

/// Aborts the process unless the returned sender is dropped within `limit`.
fn watchdog(limit: Duration, what: &'static str) -> mpsc::Sender<()> {
    let (tx, rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("watchdog: {what} still blocked after {limit:?}: aborting");
            std::process::abort();
        }
    });
    tx
}

/// Whether thread `task` (a /proc/self/task/TID path) is asleep in a wait system call
/// (io_uring_enter or epoll).
fn asleep_in_wait(task: &str) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("{task}/stat")) else {
        return false;
    };
    // The state follows the command name, which is in parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    if state != Some("S") {
        return false;
    }
    let Ok(syscall) = std::fs::read_to_string(format!("{task}/syscall")) else {
        return false;
    };
    let Some(Ok(nr)) = syscall
        .split_whitespace()
        .next()
        .map(str::parse::<libc::c_long>)
    else {
        return false; // "running"
    };
    #[cfg(target_arch = "x86_64")]
    if nr == libc::SYS_epoll_wait {
        return true;
    }
    [
        libc::SYS_io_uring_enter,
        libc::SYS_epoll_pwait,
        libc::SYS_epoll_pwait2,
    ]
    .contains(&nr)
}

const WAKES: usize = 5;

test_all_backends! {
    fn wake_ends_a_blocking_turn(backend: BackendChoice) {
        let Some(mut driver) = testing::driver(backend, DriverConfig::default()) else {
            return;
        };
        let _watchdog = watchdog(Duration::from_secs(20), "turn(None) waiting for a wake-up");
        let waker = driver.waker();
        let mut out = Vec::new();

        // A wake before the turn is not lost.
        waker.wake().expect("wake");
        driver.turn(None, &mut out).expect("turn");
        assert!(matches!(out[..], [Completion::Woken]), "{out:?}");
        out.clear();

        // Wakes while the turn blocks in the kernel.
        let task = format!(
            "/proc/self/{}",
            std::fs::read_link("/proc/thread-self")
                .expect("/proc/thread-self")
                .strip_prefix(std::process::id().to_string())
                .expect("pid/task/tid")
                .display()
        );
        let never_blocked = Arc::new(AtomicBool::new(false));
        let (go, rounds) = mpsc::channel::<()>();
        let waking = {
            let never_blocked = Arc::clone(&never_blocked);
            std::thread::spawn(move || {
                while rounds.recv().is_ok() {
                    let give_up = Instant::now() + Duration::from_secs(10);
                    while !asleep_in_wait(&task) {
                        if Instant::now() > give_up {
                            never_blocked.store(true, Ordering::SeqCst);
                            break;
                        }
                        std::thread::yield_now();
                    }
                    waker.wake().expect("wake");
                }
            })
        };
        for round in 0..WAKES {
            go.send(()).expect("waking thread alive");
            // Blocks until woken: nothing else can complete.
            driver.turn(None, &mut out).expect("turn");
            assert!(
                matches!(out[..], [Completion::Woken]),
                "round {round}: turn(None) returned {out:?}"
            );
            out.clear();
        }
        drop(go);
        waking.join().expect("waking thread");
        assert!(
            !never_blocked.load(Ordering::SeqCst),
            "the driver's thread was never seen asleep in its wait: the wake-ups did not \
             interrupt a blocked turn"
        );
        eprintln!("{backend:?}: {WAKES} wake-ups ended blocking turns; stats {:?}", driver.stats());
    }
}
