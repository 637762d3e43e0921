//! Half-close on every backend: a client that finished sending still receives; a server
//! that keeps its connection after the peer's end of stream can reply and then close.

mod common;

use common::{
    Event, Hello, Lost, Sink, nth, nth_lost, pattern, reactor, recorded, recording_factory,
    summaries, wait,
};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, Protocol};

const REQUEST: usize = 4 << 20;
const REPLY: usize = 1 << 20;

/// Sends its request, half-closes, then writes once more (ignored after `shutdown_write`).
struct Requester {
    request: Vec<u8>,
}

impl Protocol for Requester {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        ctx.write(&self.request);
        ctx.shutdown_write();
        ctx.write(b"ignored: written after shutdown_write");
    }

    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
}

/// Collects the request; on end of stream keeps the connection, replies, then closes.
struct ReplyAfterEof {
    reply: Vec<u8>,
}

impl Protocol for ReplyAfterEof {
    fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        assert!(
            ctx.is_open(),
            "the connection stays open after the peer's EOF"
        );
        // In chunks, so the reply spans several sends and turns.
        for chunk in self.reply.chunks(64 * 1024) {
            ctx.write(chunk);
        }
        ctx.close();
    }
}

/// Asserts the events are `Made`, then only data, then `Eof`, then `Lost(Done)` (write
/// pressure callbacks may come anywhere: the reply is written after the EOF).
#[track_caller]
fn assert_clean_half_close(who: &str, log: &common::Record) {
    let events: Vec<&Event> = log
        .events
        .iter()
        .filter(|e| !matches!(e, Event::PauseWriting | Event::WriteDrained))
        .collect();
    let n = events.len();
    let ok = n >= 3
        && *events[0] == Event::Made
        && events[1..n - 2].iter().all(|e| matches!(e, Event::Data(_)))
        && *events[n - 2] == Event::Eof
        && *events[n - 1] == Event::Lost(Lost::Done);
    assert!(
        ok,
        "{who}: expected made, data, eof, lost(Done); got {}",
        log.summary()
    );
}

ringwork::platform::test_all_backends! {
    /// Client writes and half-closes; server replies after EOF and closes; both end Done.
    fn reply_after_eof(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let reply = pattern(REPLY);
        let server_reply = reply.clone();
        let (factory, servers) = recording_factory(move || ReplyAfterEof {
            reply: server_reply.clone(),
        });
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let request = pattern(REQUEST);
        let (client, client_log) = recorded(Requester {
            request: request.clone(),
        });
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();

        wait(
            &mut reactor,
            |_| client_log.borrow().is_lost() && nth_lost(&servers, 0),
            || {
                format!(
                    "both sides' connection_lost; client: {}, server: {}",
                    client_log.borrow().summary(),
                    summaries(&servers)
                )
            },
        );

        let server = nth(&servers, 0);
        let server = server.borrow();
        assert!(
            server.bytes == request,
            "server got {} bytes, not the {REQUEST}-byte request (bytes written after \
             shutdown_write must be dropped; first difference at {:?})",
            server.bytes.len(),
            common::first_difference(&server.bytes, &request)
        );
        assert_clean_half_close("server", &server);
        let client = client_log.borrow();
        assert!(
            client.bytes == reply,
            "client got {} of {REPLY} reply bytes before EOF (first difference at {:?})",
            client.bytes.len(),
            common::first_difference(&client.bytes, &reply)
        );
        assert_clean_half_close("client", &client);
        drop((server, client));
        wait(
            &mut reactor,
            |r| r.connections() == 0,
            || "connections to leave the table".into(),
        );
    }

    /// The default `eof_received` closes the server's side cleanly after the client's
    /// half-close; the client, still reading, then sees EOF.
    fn default_eof_closes(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (factory, servers) = recording_factory(|| Sink);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        struct HalfClose;
        impl Protocol for HalfClose {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.write(b"bye");
                ctx.shutdown_write();
            }
            fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
        }
        let (client, client_log) = recorded(HalfClose);
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| client_log.borrow().is_lost() && nth_lost(&servers, 0),
            || {
                format!(
                    "both sides' connection_lost; client: {}, server: {}",
                    client_log.borrow().summary(),
                    summaries(&servers)
                )
            },
        );
        let server = nth(&servers, 0);
        let server = server.borrow();
        assert_eq!(server.bytes, b"bye");
        assert_clean_half_close("server", &server);
        let client = client_log.borrow();
        assert_eq!(
            client.events,
            [Event::Made, Event::Eof, Event::Lost(Lost::Done)],
            "client: {}",
            client.summary()
        );
    }

    /// A half-closed client whose peer also only half-closes: both directions end, and the
    /// server, which never overrides `eof_received`, still gets exactly one EOF and one loss.
    fn half_close_both_ways(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        struct Answer;
        impl Protocol for Answer {
            fn connection_made(&mut self, ctx: &mut Context<'_>) {
                ctx.write(b"server speaks first");
                ctx.shutdown_write();
            }
            fn data_received(&mut self, _ctx: &mut Context<'_>, _data: &[u8]) {}
        }
        let (factory, servers) = recording_factory(|| Answer);
        let addr = reactor.listen_tcp(common::any_port(), factory).unwrap();
        let (client, client_log) = recorded(Hello(b"client too".to_vec()));
        reactor.connect(&addr.into(), client, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| client_log.borrow().is_lost() && nth_lost(&servers, 0),
            || {
                format!(
                    "both sides' connection_lost; client: {}, server: {}",
                    client_log.borrow().summary(),
                    summaries(&servers)
                )
            },
        );
        let server = nth(&servers, 0);
        let server = server.borrow();
        let client = client_log.borrow();
        assert_eq!(server.bytes, b"client too", "server: {}", server.summary());
        assert_eq!(
            client.bytes,
            b"server speaks first",
            "client: {}",
            client.summary()
        );
        assert_eq!(
            server.lost(),
            Some(Lost::Done),
            "server: {}",
            server.summary()
        );
        assert_eq!(
            client.lost(),
            Some(Lost::Done),
            "client: {}",
            client.summary()
        );
        assert_eq!((server.eofs(), client.eofs()), (1, 1));
    }
}
