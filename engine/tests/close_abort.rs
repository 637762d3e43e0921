//! `close` and `abort` on every backend: a close delivers every written byte before the
//! peer's EOF; an abort resets the peer; writes after either are ignored; `connection_lost`
//! runs exactly once per connection whatever the protocol does afterwards.

mod common;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use common::{
    Event, Lost, Sink, first_difference, nth, nth_lost, pattern, reactor, recorded,
    recording_factory, summaries, wait,
};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, LostReason, Protocol};

const BIG: usize = 8 << 20;

/// How a [`Writer`] ends its connection.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
enum End {
    /// `close()` right after writing.
    Close,
    /// `abort()` when the peer's first bytes arrive (some of the stream is in flight).
    AbortOnData,
}

/// Writes `data` on connect, ends the connection as `end` says, then tries everything
/// again (writes, closes, aborts), which must all be ignored.
struct Writer {
    data: Bytes,
    end: End,
    /// `is_open()` right after ending, and whether anything was still buffered.
    after_end: Rc<RefCell<Option<(bool, usize)>>>,
}

impl Writer {
    fn misbehave(ctx: &mut Context<'_>) {
        ctx.write(b"after the end");
        ctx.write_bytes(Bytes::from_static(b"after the end, no copy"));
        ctx.shutdown_write();
        ctx.close();
        ctx.abort();
    }
}

impl Protocol for Writer {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        // Half copied in chunks, half without a copy: both paths must be delivered.
        let half = self.data.len() / 2;
        for chunk in self.data[..half].chunks(1 << 20) {
            ctx.write(chunk);
        }
        ctx.write_bytes(self.data.slice(half..));
        if self.end == End::Close {
            ctx.close();
            *self.after_end.borrow_mut() = Some((ctx.is_open(), ctx.buffered()));
            ctx.write(b"after close");
            ctx.close();
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        if self.end == End::AbortOnData && self.after_end.borrow().is_none() {
            ctx.abort();
            *self.after_end.borrow_mut() = Some((ctx.is_open(), ctx.buffered()));
            Self::misbehave(ctx);
        }
    }

    fn eof_received(&mut self, _ctx: &mut Context<'_>) {}

    fn connection_lost(&mut self, ctx: &mut Context<'_>, _reason: LostReason) {
        // All ignored: the connection is gone.
        Self::misbehave(ctx);
    }
}

/// Reads; says "stop" once when the first bytes arrive.
struct Stopper {
    said: bool,
}

impl Protocol for Stopper {
    fn data_received(&mut self, ctx: &mut Context<'_>, _data: &[u8]) {
        if !self.said {
            self.said = true;
            ctx.write(b"stop");
        }
    }
}

ringwork::platform::test_all_backends! {
    /// 8 MiB written then `close()`: the peer gets every byte, then EOF; both sides Done.
    fn close_delivers_every_byte(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let data = Bytes::from(pattern(BIG));
        let after_end = Rc::default();
        let (factory, servers) = {
            let (data, after_end) = (data.clone(), Rc::clone(&after_end));
            recording_factory(move || Writer {
                data: data.clone(),
                end: End::Close,
                after_end: Rc::clone(&after_end),
            })
        };
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, client_log) = recorded(Sink);
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |r| client_log.borrow().is_lost() && nth_lost(&servers, 0) && r.connections() == 0,
            || {
                format!(
                    "both sides lost and removed; client: {}; server: {}",
                    client_log.borrow().summary(),
                    summaries(&servers)
                )
            },
        );

        let after_end = *after_end.borrow();
        let (open, buffered) = after_end.expect("the server closed");
        assert!(!open, "is_open() after close()");
        assert!(
            buffered > 0,
            "close() with 8 MiB written: the bytes are still buffered"
        );
        let client = client_log.borrow();
        assert!(
            client.bytes == data,
            "client got {} of {BIG} bytes (first difference at {:?}): {}",
            client.bytes.len(),
            first_difference(&client.bytes, &data),
            client.summary()
        );
        let n = client.events.len();
        assert!(
            client.eofs() == 1 && client.events[n - 2] == Event::Eof,
            "client: EOF after the last byte: {}",
            client.summary()
        );
        assert_eq!(
            client.lost(),
            Some(Lost::Done),
            "client: {}",
            client.summary()
        );
        let server = nth(&servers, 0);
        assert_eq!(
            server.borrow().losses(),
            [Lost::Done],
            "server: {}",
            server.borrow().summary()
        );
        assert!(server.borrow().bytes.is_empty());
    }

    /// `abort()` while a large write is in flight: the peer sees a reset (a prefix of the
    /// stream at most), the aborting side gets Aborted, once.
    fn abort_resets_the_peer(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let data = Bytes::from(pattern(BIG));
        let after_end = Rc::default();
        let (factory, servers) = {
            let (data, after_end) = (data.clone(), Rc::clone(&after_end));
            recording_factory(move || Writer {
                data: data.clone(),
                end: End::AbortOnData,
                after_end: Rc::clone(&after_end),
            })
        };
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, client_log) = recorded(Stopper { said: false });
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |r| client_log.borrow().is_lost() && nth_lost(&servers, 0) && r.connections() == 0,
            || {
                format!(
                    "both sides lost and removed; client: {}; server: {}",
                    client_log.borrow().summary(),
                    summaries(&servers)
                )
            },
        );

        let after_end = *after_end.borrow();
        let (open, buffered) = after_end.expect("the server aborted");
        assert!(!open, "is_open() after abort()");
        assert_eq!(buffered, 0, "abort() drops unsent bytes");
        let server = nth(&servers, 0);
        let server = server.borrow();
        assert_eq!(
            server.losses(),
            [Lost::Aborted],
            "server: {}",
            server.summary()
        );
        let client = client_log.borrow();
        assert_eq!(
            client.lost(),
            Some(Lost::Reset),
            "client: {}",
            client.summary()
        );
        assert_eq!(client.eofs(), 0, "a reset is no EOF: {}", client.summary());
        assert!(
            client.bytes.len() <= BIG && client.bytes[..] == data[..client.bytes.len()],
            "client got {} bytes that are not a prefix of the stream (first difference at {:?})",
            client.bytes.len(),
            first_difference(&client.bytes, &data[..client.bytes.len().min(BIG)])
        );
        eprintln!(
            "{backend:?}: peer saw {} of {BIG} bytes before the reset",
            client.bytes.len()
        );
    }

    /// A peer's abort: this side sees Reset; each side's `connection_lost` runs once even
    /// when the protocol keeps calling close and abort from it.
    fn peer_abort_is_reset(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        struct AbortAtOnce;
        impl Protocol for AbortAtOnce {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.write(b"never sent");
                ctx.abort();
                ctx.abort();
            }
            fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
            fn connection_lost(&mut self, ctx: &mut Context<'_>, _reason: LostReason) {
                ctx.close();
                ctx.abort();
            }
        }
        let (factory, servers) = recording_factory(|| AbortAtOnce);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, client_log) = recorded(Sink);
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |r| client_log.borrow().is_lost() && nth_lost(&servers, 0) && r.connections() == 0,
            || {
                format!(
                    "both sides lost and removed; client: {}; server: {}",
                    client_log.borrow().summary(),
                    summaries(&servers)
                )
            },
        );
        let server = nth(&servers, 0);
        assert_eq!(
            server.borrow().events,
            [Event::Made, Event::Lost(Lost::Aborted)]
        );
        let client = client_log.borrow();
        assert!(
            client.bytes.is_empty(),
            "bytes written before abort() were sent"
        );
        assert_eq!(
            client.losses(),
            [Lost::Reset],
            "client: {}",
            client.summary()
        );
    }
}
