//! The write-stall (send) timeout: a connection with bytes to send whose peer takes none of
//! them for the timeout is aborted with `LostReason::WriteStalled`; a peer that reads
//! slowly but keeps taking bytes is never cut, and neither is an idle connection.
//!
//! The exact timing is checked under the manual clock of `ringwork::testing`; real sockets
//! on every backend (a client that never reads, with a small receive buffer; a client that
//! reads in small bursts; a splice into a client that never reads) use a short timeout and
//! wait on `connection_lost`, never sleeping.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::{Event, Lost, any_port, reactor_with, recording_factory, wait, wait_longer};
use ringwork::platform::BackendChoice;
use ringwork::testing::StringTransport;
use ringwork::{ConnId, ConnectOptions, Context, LostKind, LostReason, Protocol, ReactorConfig};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The slow-reader tests (real sockets): the timeout, the reader's pause between reads, and
/// how much it reads (about three timeouts' worth at its pace: ~2.4 s here). The timeout
/// leaves room for a reader thread descheduled for a few hundred milliseconds on a loaded
/// 2-core machine (a real stall of the reader, which 400 ms did not survive under load).
const SLOW_TIMEOUT: Duration = Duration::from_millis(800);
const SLOW_PACE: Duration = Duration::from_millis(2);
const SLOW_TOTAL: usize = 16 << 20;
/// How long a slow reader may take in all: ~2.4 s quiet, but each 2 ms pause stretches on
/// a loaded machine (one run took over 20 s with load average 10).
const SLOW_WAIT: Duration = Duration::from_secs(120);

/// Writes `n` bytes when told to (through `with_context`), otherwise only reads.
struct Quiet;

impl Protocol for Quiet {
    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

fn with_timeout(timeout: Option<Duration>) -> ReactorConfig {
    ReactorConfig {
        write_timeout: timeout,
        ..ReactorConfig::default()
    }
}

fn stalled_transport(config: ReactorConfig) -> StringTransport {
    let mut t = StringTransport::with_config(Quiet, config);
    t.stall_peer(true);
    t
}

fn lost_kind(t: &StringTransport) -> Option<LostKind> {
    t.lost_reason().map(LostReason::kind)
}

#[test]
fn a_peer_that_takes_nothing_is_aborted_after_the_timeout() {
    let mut t = stalled_transport(with_timeout(Some(TIMEOUT)));
    t.with_context(|ctx| ctx.write(&[7; 4096]));
    assert_eq!(t.queued(), 4096);
    t.advance(TIMEOUT - Duration::from_millis(10));
    assert!(t.is_open(), "cut before the timeout");
    t.advance(Duration::from_millis(20));
    assert!(
        matches!(t.lost_reason(), Some(LostReason::WriteStalled { after }) if *after == TIMEOUT),
        "{:?}",
        t.lost_reason()
    );
    assert!(t.is_aborted(), "a stalled connection is reset");
    assert_eq!(t.stats().write_stalls, 1);
}

#[test]
fn a_slow_reader_that_keeps_taking_bytes_is_never_cut() {
    let mut t = stalled_transport(with_timeout(Some(TIMEOUT)));
    t.with_context(|ctx| ctx.write(&vec![1; 1 << 20]));
    // A few bytes every 20 s: ten minutes, far more than the timeout, still open.
    for _ in 0..30 {
        t.advance(Duration::from_secs(20));
        assert!(t.is_open(), "cut while the reader made progress");
        assert_eq!(t.drain_up_to(1000).len(), 1000);
    }
    // Then it stops taking bytes: cut one timeout after the last progress.
    t.advance(TIMEOUT - Duration::from_secs(1));
    assert!(t.is_open());
    t.advance(Duration::from_secs(2));
    assert_eq!(lost_kind(&t), Some(LostKind::WriteStalled));
}

#[test]
fn an_idle_connection_and_a_drained_one_are_never_cut() {
    let mut t = StringTransport::with_config(Quiet, with_timeout(Some(TIMEOUT)));
    t.advance(TIMEOUT * 10);
    assert!(t.is_open(), "idle: nothing to send");
    t.stall_peer(true);
    t.with_context(|ctx| ctx.write(b"hello"));
    t.advance(TIMEOUT / 2);
    assert_eq!(t.drain(), b"hello");
    t.advance(TIMEOUT * 10);
    assert!(t.is_open(), "everything was taken");
}

#[test]
fn new_bytes_after_a_quiet_spell_get_the_whole_timeout() {
    let mut t = StringTransport::with_config(Quiet, with_timeout(Some(TIMEOUT)));
    // Taken at once; the stall timer armed by this write stays armed for a while.
    t.with_context(|ctx| ctx.write(b"first"));
    t.advance(TIMEOUT * 3 / 4);
    t.stall_peer(true);
    t.with_context(|ctx| ctx.write(b"second"));
    // The first timer fires a quarter timeout later: "second" waited only that long.
    t.advance(TIMEOUT - Duration::from_secs(1));
    assert!(t.is_open(), "counted from before the bytes were written");
    t.advance(Duration::from_secs(2));
    assert_eq!(lost_kind(&t), Some(LostKind::WriteStalled));
}

#[test]
fn the_timeout_is_set_per_connection() {
    // No default: a stalled peer holds the connection as long as it likes.
    let mut t = stalled_transport(with_timeout(None));
    t.with_context(|ctx| ctx.write(b"pending"));
    t.advance(TIMEOUT * 10);
    assert!(t.is_open());
    // Set on the connection, bytes pending count from now.
    let set = Duration::from_secs(5);
    t.with_context(|ctx| {
        ctx.set_write_timeout(Some(set));
        assert_eq!(ctx.write_timeout(), Some(set));
    });
    t.advance(Duration::from_secs(4));
    assert!(t.is_open());
    t.advance(Duration::from_secs(2));
    assert!(
        matches!(t.lost_reason(), Some(LostReason::WriteStalled { after }) if *after == set),
        "{:?}",
        t.lost_reason()
    );

    // A reactor-wide default turned off for one connection (zero means none).
    let mut t = stalled_transport(with_timeout(Some(TIMEOUT)));
    t.with_context(|ctx| {
        ctx.write(b"pending");
        ctx.set_write_timeout(Some(Duration::ZERO));
        assert_eq!(ctx.write_timeout(), None);
    });
    t.advance(TIMEOUT * 10);
    assert!(t.is_open());
}

#[test]
fn a_close_waiting_for_a_stalled_peer_is_aborted_too() {
    let mut t = stalled_transport(with_timeout(Some(TIMEOUT)));
    t.with_context(|ctx| {
        ctx.write(b"goodbye");
        ctx.close();
    });
    assert!(!t.is_closed(), "the close waits for the bytes");
    t.advance(TIMEOUT + Duration::from_secs(1));
    assert_eq!(lost_kind(&t), Some(LostKind::WriteStalled));
}

/// Writes `data` once connected, then reads (and keeps the connection open).
struct Push(Bytes);

impl Protocol for Push {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write_bytes(self.0.clone());
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// A client socket that never reads, with a small receive buffer so the stall comes soon.
fn deaf_client(addr: std::net::SocketAddr) -> socket2::Socket {
    client_with_buffer(addr, 4096)
}

/// A client socket with a receive buffer of `size` bytes (set before connecting).
fn client_with_buffer(addr: std::net::SocketAddr, size: usize) -> socket2::Socket {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    socket.connect(&addr.into()).expect("connect");
    socket
}

/// A client with a small receive buffer that reads `total` bytes slowly: one read, then a
/// pause of `pace` (the simulated peer's pace, not a wait for an event). Returns the bytes
/// read.
fn paced_reader(
    addr: std::net::SocketAddr,
    total: usize,
    pace: Duration,
) -> std::thread::JoinHandle<usize> {
    use std::io::Read;
    let mut socket = client_with_buffer(addr, 16 * 1024);
    std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let mut got = 0;
        while got < total {
            match ringwork::platform::testing::retry_interrupted(|| socket.read(&mut buf)) {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n,
            }
            std::thread::sleep(pace);
        }
        got
    })
}

/// The first connection accepted waits; each later one splices its input into it.
struct Hub {
    sink: Rc<RefCell<Option<ConnId>>>,
}

impl Protocol for Hub {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let sink = *self.sink.borrow();
        match sink {
            None => *self.sink.borrow_mut() = Some(ctx.id()),
            Some(sink) => ctx
                .splice_into(sink)
                .expect("splice into the first connection"),
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        // Bytes a receive already in flight picked up before the splice: forward them.
        if let Some(sink) = *self.sink.borrow() {
            ctx.other(sink).write(data);
        }
    }
}

ringwork::platform::test_all_backends! {
    /// A real client that never reads a 64 MiB download: the server's connection is
    /// aborted with WriteStalled once the kernel stops taking bytes for the timeout.
    fn a_client_that_never_reads_is_cut_off(backend: BackendChoice) {
        let timeout = Duration::from_millis(200);
        let Some(mut reactor) = reactor_with(backend, with_timeout(Some(timeout))) else { return };
        let data = Bytes::from(vec![b'x'; 8 << 20]);
        let (factory, servers) = recording_factory(move || Push(data.clone()));
        let addr = reactor.listen_tcp(any_port(), factory).unwrap();
        let client = deaf_client(addr);
        wait(
            &mut reactor,
            |_| common::nth_lost(&servers, 0),
            || format!("the server to give up: {}", common::summaries(&servers)),
        );
        let server = common::nth(&servers, 0);
        assert_eq!(
            server.borrow().lost(),
            Some(Lost::Other(LostReason::WriteStalled { after: timeout }.to_string())),
            "{}",
            server.borrow().summary()
        );
        assert_eq!(reactor.stats().write_stalls, 1);
        drop(client);
    }

    /// A real client that reads through a small receive buffer, pausing between reads, so
    /// the server holds unsent bytes for far longer than the timeout: the whole body
    /// arrives, the server is never cut. (The kernel wakes a sender only once a good part
    /// of its send buffer is free, so "slow" here is still megabytes per second: the
    /// engine sees progress only at that granularity.)
    fn a_slow_client_that_keeps_reading_is_not_cut(backend: BackendChoice) {
        let Some(mut reactor) = reactor_with(backend, with_timeout(Some(SLOW_TIMEOUT))) else { return };
        const TOTAL: usize = SLOW_TOTAL;
        let data = Bytes::from(vec![b'y'; TOTAL]);
        let (factory, servers) = recording_factory(move || Push(data.clone()));
        let addr = reactor.listen_tcp(any_port(), factory).unwrap();
        let started = std::time::Instant::now();
        let reader = paced_reader(addr, TOTAL, SLOW_PACE);
        wait_longer(
            &mut reactor,
            SLOW_WAIT,
            |_| reader.is_finished() || common::nth_lost(&servers, 0),
            || format!("the slow reader: {}", common::summaries(&servers)),
        );
        let server = common::nth(&servers, 0);
        assert!(
            matches!(server.borrow().lost(), None | Some(Lost::Done)),
            "cut although the client kept reading: {}",
            server.borrow().summary()
        );
        assert_eq!(reader.join().expect("reader"), TOTAL);
        eprintln!("{backend:?}: {TOTAL} bytes read slowly in {:?}", started.elapsed());
        assert_eq!(reactor.stats().write_stalls, 0);
    }

    /// A splice into a client that never reads: nothing is queued in the engine, the
    /// pipe fills up, and the destination is still cut after the timeout.
    fn a_splice_into_a_client_that_never_reads_is_cut_off(backend: BackendChoice) {
        let timeout = Duration::from_millis(200);
        let Some(mut reactor) = reactor_with(backend, with_timeout(Some(timeout))) else { return };
        let sink = Rc::new(RefCell::new(None));
        let (factory, hub) = {
            let sink = Rc::clone(&sink);
            recording_factory(move || Hub { sink: Rc::clone(&sink) })
        };
        let addr = reactor.listen_tcp(any_port(), factory).unwrap();
        let deaf = deaf_client(addr);
        wait(&mut reactor, |_| sink.borrow().is_some(), || "the sink to be accepted".into());
        // The source pushes 8 MiB; its own connection never times out.
        struct Source(Bytes);
        impl Protocol for Source {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.set_write_timeout(None);
                ctx.write_bytes(self.0.clone());
            }
            fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
        }
        let source = Source(Bytes::from(vec![b'z'; 8 << 20]));
        reactor.connect(&addr.into(), source, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| common::nth_lost(&hub, 0),
            || format!("the spliced sink to be cut: {}", common::summaries(&hub)),
        );
        let sink_log = common::nth(&hub, 0);
        assert_eq!(
            sink_log.borrow().lost(),
            Some(Lost::Other(LostReason::WriteStalled { after: timeout }.to_string())),
            "{}",
            sink_log.borrow().summary()
        );
        assert!(reactor.stats().splices >= 1, "{:?}", reactor.stats());
        assert!(
            !sink_log.borrow().events.contains(&Event::WriteDrained),
            "{}",
            sink_log.borrow().summary()
        );
        drop(deaf);
    }

    /// A splice into a client that reads slowly but steadily: spliced bytes count as
    /// progress, so the destination is never cut although nothing is queued in the engine.
    fn a_splice_into_a_slow_reader_is_not_cut(backend: BackendChoice) {
        let Some(mut reactor) = reactor_with(backend, with_timeout(Some(SLOW_TIMEOUT))) else { return };
        const TOTAL: usize = SLOW_TOTAL;
        let sink = Rc::new(RefCell::new(None));
        let (factory, hub) = {
            let sink = Rc::clone(&sink);
            recording_factory(move || Hub { sink: Rc::clone(&sink) })
        };
        let addr = reactor.listen_tcp(any_port(), factory).unwrap();
        let started = std::time::Instant::now();
        let reader = paced_reader(addr, TOTAL, SLOW_PACE);
        wait(&mut reactor, |_| sink.borrow().is_some(), || "the sink to be accepted".into());
        let push = Push(Bytes::from(vec![b'w'; TOTAL]));
        reactor.connect(&addr.into(), push, ConnectOptions::default()).unwrap();
        wait_longer(
            &mut reactor,
            SLOW_WAIT,
            |_| reader.is_finished() || common::nth_lost(&hub, 0),
            || format!("the slow reader: {}", common::summaries(&hub)),
        );
        let sink_log = common::nth(&hub, 0);
        assert!(
            matches!(sink_log.borrow().lost(), None | Some(Lost::Done)),
            "cut while bytes were spliced: {}",
            sink_log.borrow().summary()
        );
        assert_eq!(reader.join().expect("reader"), TOTAL);
        eprintln!("{backend:?}: {TOTAL} bytes spliced to a slow reader in {:?}", started.elapsed());
        assert!(reactor.stats().bytes_spliced > 0, "{:?}", reactor.stats());
    }
}
