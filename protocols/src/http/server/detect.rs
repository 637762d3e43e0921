//! Which HTTP a connection speaks: HTTP/2 when TLS negotiated `h2` (ALPN) or the first
//! bytes are the HTTP/2 connection preface (h2c with prior knowledge, RFC 9113 §3.3),
//! HTTP/1.1 otherwise; then the chosen machine's adapter runs the connection.
//!
//! Owns: [`Detect`], the [`Protocol`] the server's factory builds for each connection; it
//! holds the first bytes until they tell (at most the 24 bytes of the preface: any byte
//! that departs from it decides HTTP/1.1 at once, so an HTTP/1.1 request is never
//! delayed), and forwards every callback to the chosen adapter after.
//! Contract: the adapter gets `connection_made` when the choice is made, then the held
//! bytes, then everything as it comes. A connection that sends a prefix of the preface and
//! stalls is handed to HTTP/1.1 after `header_read_timeout` (whose own deadline ends it).
//! A graceful shutdown before the choice reaches the adapter after the bytes that decided
//! (so a draining server answers the first request of a brand-new connection, as the
//! HTTP/1.1 machine promises, instead of closing it under the client).
//! Does not: upgrade from HTTP/1.1 (`Upgrade: h2c` is not supported; RFC 9113 §3.1
//! deprecates it).

use std::rc::Rc;

use ringwork::{Context, LostReason, Protocol, TimerId};

use super::Shared;
use super::conn::ServerApp;
use crate::http::proto::h2::H2ServerConn;
use crate::http::proto::h2::frame::PREFACE;
use crate::http::proto::server::ServerConn;
use crate::kit::adapter::Adapter;

/// The ALPN protocol id of HTTP/2 over TLS.
pub const ALPN_H2: &[u8] = b"h2";

type H1 = Adapter<ServerConn, ServerApp<ServerConn>>;
type H2 = Adapter<H2ServerConn, ServerApp<H2ServerConn>>;

enum State {
    /// Not known yet: `held` bytes so far, a prefix of the preface (so only their count is
    /// kept: no buffer per connection that has sent nothing yet, issue 16).
    Undecided {
        held: u8,
        timer: Option<TimerId>,
        /// A graceful shutdown started before the choice: the adapter hears of it once it
        /// has the bytes that decided (a draining server still answers a request already
        /// on its way, instead of closing a connection whose client is about to ask).
        shutdown_pending: bool,
    },
    Http1(Box<H1>),
    Http2(Box<H2>),
}

/// A server connection that picks HTTP/1.1 or HTTP/2 (see the module docs). Every
/// connection that has sent nothing yet holds one (boxed): 24 bytes, a 32-byte allocation
/// (issue 16: memory per idle connection).
pub(crate) struct Detect {
    shared: Rc<Shared>,
    state: State,
}

impl Detect {
    pub(crate) fn new(shared: Rc<Shared>) -> Self {
        Self {
            shared,
            state: State::Undecided {
                held: 0,
                timer: None,
                shutdown_pending: false,
            },
        }
    }

    /// Passes on a shutdown that started before the choice (`pending`, from
    /// [`Detect::decide`]), once there is an adapter.
    fn pass_pending_shutdown(&mut self, ctx: &mut Context<'_>, pending: bool) {
        if !pending {
            return;
        }
        if let Some(inner) = self.inner() {
            inner.shutdown_started(ctx);
        }
    }

    fn inner(&mut self) -> Option<&mut dyn Protocol> {
        match &mut self.state {
            State::Undecided { .. } => None,
            State::Http1(adapter) => Some(adapter.as_mut()),
            State::Http2(adapter) => Some(adapter.as_mut()),
        }
    }

    /// Chooses, starts the adapter and hands it the held bytes. Returns whether a
    /// shutdown started before the choice (for [`Detect::pass_pending_shutdown`]).
    fn decide(&mut self, ctx: &mut Context<'_>, http2: bool) -> bool {
        let State::Undecided {
            held,
            timer,
            shutdown_pending,
        } = std::mem::replace(
            &mut self.state,
            State::Undecided {
                held: 0,
                timer: None,
                shutdown_pending: false,
            },
        )
        else {
            return false;
        };
        if let Some(timer) = timer {
            ctx.cancel_timer(timer);
        }
        let shared = Rc::clone(&self.shared);
        self.state = if http2 {
            let machine = H2ServerConn::new(&shared.config);
            State::Http2(Box::new(Adapter::new(machine, ServerApp::new(shared))))
        } else {
            let machine = ServerConn::new(std::sync::Arc::clone(&shared.config));
            State::Http1(Box::new(Adapter::new(machine, ServerApp::new(shared))))
        };
        if let Some(inner) = self.inner() {
            inner.connection_made(ctx);
            if held > 0 && ctx.is_open() {
                inner.data_received(ctx, &PREFACE[..usize::from(held)]);
            }
        }
        shutdown_pending
    }
}

impl Protocol for Detect {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        if let Some(tls) = ctx.tls() {
            // TLS decided by ALPN: h2, or HTTP/1.1 for anything else (no ALPN at all too).
            let http2 = tls.alpn.as_deref() == Some(ALPN_H2);
            // No shutdown can have started before `connection_made`.
            let _ = self.decide(ctx, http2);
            return;
        }
        let timeout = self.shared.config.header_read_timeout;
        if let State::Undecided { timer, .. } = &mut self.state {
            *timer = Some(ctx.call_later(timeout));
        }
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(inner) = self.inner() {
            inner.data_received(ctx, data);
            return;
        }
        let State::Undecided { held, .. } = &mut self.state else {
            return;
        };
        let start = usize::from(*held);
        let take = data.len().min(PREFACE.len() - start);
        let matches = data[..take] == PREFACE[start..start + take];
        if matches && start + take < PREFACE.len() {
            // All of `data` matched (take == data.len()): still a prefix, shorter than the
            // 24-byte preface, so the count fits.
            *held = u8::try_from(start + take).unwrap_or(u8::MAX);
            return;
        }
        let pending = self.decide(ctx, matches);
        if let Some(inner) = self.inner() {
            inner.data_received(ctx, data);
        }
        self.pass_pending_shutdown(ctx, pending);
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if matches!(self.state, State::Undecided { .. }) {
            let pending = self.decide(ctx, false);
            self.pass_pending_shutdown(ctx, pending);
        }
        if let Some(inner) = self.inner() {
            inner.eof_received(ctx);
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner() {
            inner.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner() {
            inner.write_drained(ctx);
        }
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        match &mut self.state {
            // Nothing decided yet: the adapter hears of it with the first bytes (or when
            // the head deadline decides HTTP/1.1, whose draining then ends it).
            State::Undecided {
                shutdown_pending, ..
            } => *shutdown_pending = true,
            State::Http1(inner) => inner.shutdown_started(ctx),
            State::Http2(inner) => inner.shutdown_started(ctx),
        }
    }

    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner() {
            inner.handshake_completed(ctx);
        }
    }

    fn woken(&mut self, ctx: &mut Context<'_>) {
        if let Some(inner) = self.inner() {
            inner.woken(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        match &mut self.state {
            State::Undecided {
                timer: Some(ours), ..
            } if *ours == timer => {
                // A prefix of the preface and then nothing: HTTP/1.1's head deadline
                // decides what happens to it.
                let pending = self.decide(ctx, false);
                self.pass_pending_shutdown(ctx, pending);
            }
            _ => {
                if let Some(inner) = self.inner() {
                    inner.timer_fired(ctx, timer);
                }
            }
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(inner) = self.inner() {
            inner.connection_lost(ctx, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use ringwork::testing::StringTransport;

    use super::*;
    use crate::http::server::{HttpServer, Request, Responder, Response, ServerConfig};

    fn detect() -> Detect {
        let server = HttpServer::new(
            |_: Request, respond: Responder| respond.send(Response::new(200)),
            ServerConfig::default(),
        );
        Detect::new(Rc::clone(&server.shared))
    }

    /// The preface in pieces: only a count of the bytes held is kept while undecided, and
    /// HTTP/2 starts once the last piece matches (its SETTINGS frame goes out).
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn detect_stays_small() {
        assert!(size_of::<Detect>() <= 24, "Detect: {}", size_of::<Detect>());
    }

    #[test]
    fn a_preface_in_pieces_decides_http2() {
        let mut t = StringTransport::new(detect());
        t.feed(&PREFACE[..3]);
        t.feed(&PREFACE[3..17]);
        assert!(t.written().is_empty(), "undecided: nothing written yet");
        t.feed(&PREFACE[17..]);
        // The server's preface: a SETTINGS frame (type 4 in the frame header's 4th byte).
        assert_eq!(t.written().get(3), Some(&4), "{:?}", t.written());
    }

    /// A prefix of the preface, then a byte that departs from it: HTTP/1.1 gets the held
    /// bytes (rebuilt from the preface) before the rest.
    #[test]
    fn a_departing_prefix_is_replayed_to_http1() {
        let mut t = StringTransport::new(detect());
        t.feed(b"P");
        t.feed(b"OST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let written = String::from_utf8_lossy(t.written()).into_owned();
        assert!(written.starts_with("HTTP/1.1 200 "), "{written}");
    }
}
