//! Flow control on every backend: a reader that stops reading slows its producer down
//! through the kernel and the write watermarks, without unbounded buffering anywhere, and
//! the whole stream still arrives intact; a producer that ignores `is_writable` is cut off
//! at the write buffer's hard limit.

mod common;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use common::{Lost, first_difference, pattern, reactor_with, recorded, recording_factory, wait};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, LostReason, Protocol, ReactorConfig};

const TOTAL: usize = 64 << 20;
const CHUNK: usize = 64 * 1024;
/// How long the reader stays paused before resuming.
const STALL: Duration = Duration::from_millis(300);

#[derive(Debug, Default)]
struct Producing {
    /// Bytes written so far.
    written: usize,
    /// Largest `ctx.buffered()` seen right after a write.
    max_buffered: usize,
    pauses: usize,
    drains: usize,
    lost: Option<Lost>,
}

/// Writes the stream in chunks while `is_writable()`, resumes on `write_drained`, closes at
/// the end.
struct Producer {
    data: Bytes,
    state: Rc<RefCell<Producing>>,
}

impl Producer {
    fn produce(&mut self, ctx: &mut Context<'_>) {
        let mut state = self.state.borrow_mut();
        while ctx.is_writable() && state.written < self.data.len() {
            let end = (state.written + CHUNK).min(self.data.len());
            ctx.write(&self.data[state.written..end]);
            state.written = end;
            state.max_buffered = state.max_buffered.max(ctx.buffered());
        }
        if state.written == self.data.len() && ctx.is_open() {
            ctx.close();
        }
    }
}

impl Protocol for Producer {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.produce(ctx);
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        let mut state = self.state.borrow_mut();
        state.pauses += 1;
        assert!(!ctx.is_writable(), "pause_writing while writable");
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        self.state.borrow_mut().drains += 1;
        assert!(ctx.is_writable(), "write_drained while not writable");
        self.produce(ctx);
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        self.state.borrow_mut().lost = Some(Lost::from(&reason));
    }
}

#[derive(Debug, Default)]
struct Reading {
    /// Bytes received (all checked against the stream, in order).
    received: usize,
    /// `data_received` calls while reading was paused (must be none).
    while_paused: usize,
    /// The producer's bytes written, largest buffer and pauses when the reader resumed.
    at_resume: Option<(usize, usize, usize)>,
    eof: bool,
    lost: Option<Lost>,
    /// Where the stream first differed, if it did.
    corrupt_at: Option<usize>,
}

/// Pauses reading when connected, resumes after [`STALL`], then checks every byte.
struct StalledReader {
    expected: Bytes,
    state: Rc<RefCell<Reading>>,
    producer: Rc<RefCell<Producing>>,
}

impl Protocol for StalledReader {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.pause_reading();
        assert!(ctx.is_reading_paused());
        ctx.call_later(STALL);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut state = self.state.borrow_mut();
        if ctx.is_reading_paused() {
            state.while_paused += 1;
        }
        let start = state.received;
        let end = start + data.len();
        if state.corrupt_at.is_none() {
            let want = &self.expected[start.min(self.expected.len())..end.min(self.expected.len())];
            state.corrupt_at = first_difference(data, want).map(|i| start + i);
        }
        state.received = end;
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: ringwork::TimerId) {
        let producer = self.producer.borrow();
        self.state.borrow_mut().at_resume =
            Some((producer.written, producer.max_buffered, producer.pauses));
        drop(producer);
        ctx.resume_reading();
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        self.state.borrow_mut().eof = true;
        ctx.close();
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        self.state.borrow_mut().lost = Some(Lost::from(&reason));
    }
}

/// Writes 256 KiB every millisecond, whatever `is_writable()` says.
struct Flood {
    chunk: Bytes,
    /// Largest `ctx.buffered()` while the connection was open.
    max_buffered: Rc<RefCell<usize>>,
}

impl Protocol for Flood {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.call_every(Duration::from_millis(1));
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: ringwork::TimerId) {
        ctx.write_bytes(self.chunk.clone());
        if ctx.is_open() {
            let mut max = self.max_buffered.borrow_mut();
            *max = (*max).max(ctx.buffered());
        }
    }
}

/// Never reads until told to.
struct Deaf;

impl Protocol for Deaf {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.pause_reading();
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Writes `data`, then closes.
struct WriteAndClose(Bytes);

impl Protocol for WriteAndClose {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write_bytes(self.0.clone());
        ctx.close();
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Pauses reading when connected (so the peer's bytes and EOF wait in the kernel), resumes
/// 50 ms later, pauses again on the first bytes (the rest is in flight), resumes 50 ms
/// later; records callbacks that arrive while paused.
struct PauseTwice {
    data_calls: usize,
    while_paused: Rc<RefCell<Vec<&'static str>>>,
}

impl PauseTwice {
    fn pause(ctx: &mut Context<'_>) {
        ctx.pause_reading();
        ctx.call_later(Duration::from_millis(50));
    }
}

impl Protocol for PauseTwice {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        Self::pause(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        if ctx.is_reading_paused() {
            self.while_paused.borrow_mut().push("data_received");
        }
        self.data_calls += 1;
        if self.data_calls == 1 {
            Self::pause(ctx);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if ctx.is_reading_paused() {
            self.while_paused.borrow_mut().push("eof_received");
        }
        ctx.close();
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: ringwork::TimerId) {
        ctx.resume_reading();
    }
}

ringwork::platform::test_all_backends! {
    /// Pausing while more bytes and the peer's EOF are already on their way: nothing is
    /// delivered while paused, and after resuming every byte comes before the EOF.
    fn pause_holds_bytes_and_eof_in_order(backend: BackendChoice) {
        const SIZE: usize = 1 << 20;
        let Some(mut reactor) = reactor_with(backend, ReactorConfig::default()) else { return };
        let data = Bytes::from(pattern(SIZE));
        let server_data = data.clone();
        let addr = reactor
            .listen_tcp(common::any_port(), move || {
                WriteAndClose(server_data.clone())
            })
            .unwrap();
        let while_paused = Rc::new(RefCell::new(Vec::new()));
        let (client, log) = recorded(PauseTwice {
            data_calls: 0,
            while_paused: Rc::clone(&while_paused),
        });
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| log.borrow().is_lost(),
            || format!("the reader to finish: {}", log.borrow().summary()),
        );
        let log = log.borrow();
        assert_eq!(
            *while_paused.borrow(),
            Vec::<&str>::new(),
            "callbacks while reading was paused: {}",
            log.summary()
        );
        assert!(
            log.bytes == data,
            "got {} of {SIZE} bytes (first difference at {:?}): {}",
            log.bytes.len(),
            first_difference(&log.bytes, &data),
            log.summary()
        );
        let n = log.events.len();
        assert_eq!(
            log.events[n - 2..],
            [common::Event::Eof, common::Event::Lost(Lost::Done)],
            "{}",
            log.summary()
        );
    }

    /// 64 MiB to a reader that stalls for a while: the producer is paused, its buffer stays
    /// within the high watermark plus one chunk, nothing is delivered while paused, and
    /// after resuming every byte arrives in order.
    fn stalled_reader_bounds_the_producer(backend: BackendChoice) {
        let config = ReactorConfig::default();
        let high = config.write_high_watermark;
        let Some(mut reactor) = reactor_with(backend, config) else { return };
        let data = Bytes::from(pattern(TOTAL));
        let producing = Rc::new(RefCell::new(Producing::default()));
        let addr = {
            let (data, producing) = (data.clone(), Rc::clone(&producing));
            reactor
                .listen_tcp(common::any_port(), move || Producer {
                    data: data.clone(),
                    state: Rc::clone(&producing),
                })
                .unwrap()
        };
        let reading = Rc::new(RefCell::new(Reading::default()));
        let reader = StalledReader {
            expected: data.clone(),
            state: Rc::clone(&reading),
            producer: Rc::clone(&producing),
        };
        reactor.connect(&addr.into(), reader, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| reading.borrow().lost.is_some() && producing.borrow().lost.is_some(),
            || {
                format!(
                    "the whole stream and both ends; reader: {:?}; producer: {:?}",
                    reading.borrow(),
                    producing.borrow()
                )
            },
        );

        let reading = reading.borrow();
        let producing = producing.borrow();
        eprintln!("{backend:?}: reader {reading:?}; producer {producing:?}");
        let (written, max_buffered, pauses) = reading.at_resume.expect("the reader resumed");
        assert!(
            pauses >= 1,
            "the producer got no pause_writing during the stall"
        );
        assert!(
            written < TOTAL / 2,
            "{written} of {TOTAL} bytes were produced while the reader was paused: \
             something buffers without bound"
        );
        assert!(
            max_buffered <= high + CHUNK,
            "{max_buffered} bytes buffered during the stall (high watermark {high} + one \
             {CHUNK}-byte chunk)"
        );
        assert!(
            producing.max_buffered <= high + CHUNK,
            "{} bytes buffered at some point (high watermark {high} + one {CHUNK}-byte chunk)",
            producing.max_buffered
        );
        assert!(
            producing.drains >= 1,
            "write_drained never came after the stall"
        );
        assert_eq!(
            reading.while_paused, 0,
            "data_received while reading was paused"
        );
        assert_eq!(
            reading.corrupt_at, None,
            "the stream differs from what was written"
        );
        assert_eq!(reading.received, TOTAL, "bytes received");
        assert!(reading.eof, "EOF after the stream");
        assert_eq!(reading.lost, Some(Lost::Done), "reader's end");
        assert_eq!(producing.lost, Some(Lost::Done), "producer's end");
    }

    /// A peer that never reads, and a producer that ignores `is_writable`: the connection
    /// is aborted with WriteBufferFull at the configured limit, never buffering more.
    fn write_buffer_limit_aborts(backend: BackendChoice) {
        const LIMIT: usize = 1 << 20;
        let config = ReactorConfig {
            write_high_watermark: 256 * 1024,
            write_low_watermark: 64 * 1024,
            write_buffer_limit: LIMIT,
            ..ReactorConfig::default()
        };
        let Some(mut reactor) = reactor_with(backend, config) else { return };
        let max_buffered = Rc::new(RefCell::new(0));
        let (factory, servers) = {
            let max_buffered = Rc::clone(&max_buffered);
            recording_factory(move || Flood {
                chunk: Bytes::from(pattern(256 * 1024)),
                max_buffered: Rc::clone(&max_buffered),
            })
        };
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, client_log) = recorded(Deaf);
        let client_id = reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| common::nth_lost(&servers, 0),
            || {
                format!(
                    "the flooding server to be cut off: {}",
                    common::summaries(&servers)
                )
            },
        );
        let server = common::nth(&servers, 0);
        assert_eq!(
            server.borrow().lost(),
            Some(Lost::WriteBufferFull { limit: LIMIT }),
            "server: {}",
            server.borrow().summary()
        );
        assert!(
            server.borrow().count(|e| *e == common::Event::PauseWriting) >= 1,
            "the flood passed the high watermark without pause_writing: {}",
            server.borrow().summary()
        );
        let max = *max_buffered.borrow();
        assert!(
            max <= LIMIT,
            "{max} bytes buffered, past the {LIMIT}-byte limit"
        );
        // The reader now reads what reached it, then sees the reset.
        reactor.with_conn(client_id, |ctx| ctx.resume_reading());
        wait(
            &mut reactor,
            |_| client_log.borrow().is_lost(),
            || {
                format!(
                    "the reader to see the end: {}",
                    client_log.borrow().summary()
                )
            },
        );
        let client = client_log.borrow();
        assert_eq!(
            client.lost(),
            Some(Lost::Reset),
            "reader: {}",
            client.summary()
        );
    }
}
