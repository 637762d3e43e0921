//! The session plumbing every line-command mail server machine shares (SMTP, POP3, IMAP).
//!
//! Owns: [`LineSession`]: the line decoder, the output queue, the application events, the
//! one decision the machine awaits, the idle deadline, the STARTTLS hand-off (input after
//! the go-ahead is dropped until the upgrade event was polled), the end of reading and the
//! close (once, after the output drained; nothing is sent after it).
//! Contract: a machine keeps one `LineSession` and forwards its [`Machine`] methods to the
//! `on_*`/`poll_*` methods here; it pulls lines with [`LineSession::next_line`] (which
//! yields nothing while a decision is awaited, after the end of reading or during a TLS
//! hand-off) and re-arms the deadline with [`LineSession::rearm`] after each batch.
//! Does not: parse commands or know any protocol's replies.
//!
//! [`Machine`]: crate::kit::Machine

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::basic::proto::line::{Delimiter, LineDecoder, LineError, LineEvent, LineLimits};
use crate::kit::{Close, Output};

/// The shared state of one line-command server connection: `E` its events, `A` what it
/// may await from the application.
#[derive(Debug)]
pub(crate) struct LineSession<E, A> {
    pub(crate) decoder: LineDecoder,
    pub(crate) out: Output,
    pub(crate) events: VecDeque<E>,
    /// The application decision the machine waits for; no lines are read meanwhile.
    pub(crate) awaiting: Option<A>,
    pub(crate) deadline: Option<Instant>,
    /// The idle timeout (re-armed after each batch of commands).
    pub(crate) timeout: Duration,
    max_line: usize,
    /// Bad commands so far, and how many end the session.
    errors: u32,
    max_errors: u32,
    /// The go-ahead to STARTTLS is queued: the upgrade event follows once it was polled.
    tls_after_flush: bool,
    /// Input after this is not read (the end command, a fatal error, the peer's end).
    pub(crate) done_reading: bool,
    pub(crate) close: Option<Close>,
    close_polled: bool,
    /// An answer arrived: resume command processing at the next poll (which knows the time).
    pub(crate) resume: bool,
}

impl<E, A> LineSession<E, A> {
    /// A session reading lines of at most `max_line` bytes, idle for at most `timeout`,
    /// tolerating `max_errors - 1` bad commands.
    pub(crate) fn new(max_line: usize, timeout: Duration, max_errors: u32) -> Self {
        LineSession {
            decoder: LineDecoder::with_config(Delimiter::Lf, LineLimits::new(max_line)),
            out: Output::new(),
            events: VecDeque::new(),
            awaiting: None,
            deadline: None,
            timeout,
            max_line,
            errors: 0,
            max_errors,
            tls_after_flush: false,
            done_reading: false,
            close: None,
            close_polled: false,
            resume: false,
        }
    }

    /// Queues `line` and CRLF.
    pub(crate) fn reply(&mut self, line: &[u8]) {
        self.out.write(line);
        self.out.write(b"\r\n");
    }

    /// A bad command's `line`; `true` when it was one too many (the caller ends the
    /// session).
    pub(crate) fn error(&mut self, line: &[u8]) -> bool {
        self.reply(line);
        self.errors += 1;
        self.errors >= self.max_errors
    }

    /// Stops reading; the connection closes once the output drained.
    pub(crate) fn end(&mut self) {
        self.done_reading = true;
        self.deadline = None;
        if self.close.is_none() {
            self.close = Some(Close::Graceful);
        }
    }

    /// Ends the session with `line`.
    pub(crate) fn fatal(&mut self, line: &[u8]) {
        self.reply(line);
        self.end();
    }

    /// The go-ahead to STARTTLS is queued: a fresh decoder (input pipelined behind the
    /// command is dropped, RFC 3207 §4.2), and the upgrade event once the output drained.
    pub(crate) fn start_tls(&mut self) {
        self.decoder = LineDecoder::with_config(Delimiter::Lf, LineLimits::new(self.max_line));
        self.tls_after_flush = true;
    }

    /// Whether a decision is awaited.
    pub(crate) fn busy(&self) -> bool {
        self.awaiting.is_some()
    }

    /// The next buffered line (or raw chunk) to act on, if the machine reads now.
    pub(crate) fn next_line(&mut self) -> Option<Result<LineEvent, LineError>> {
        if self.done_reading || self.busy() || self.tls_after_flush {
            return None;
        }
        self.decoder.poll_event().transpose()
    }

    /// Re-arms the idle deadline after a batch of commands (none once reading ended).
    pub(crate) fn rearm(&mut self, now: Instant) {
        self.deadline = (!self.done_reading).then(|| now + self.timeout);
    }

    /// [`Machine::handle_connected`](crate::kit::Machine::handle_connected): the greeting.
    pub(crate) fn on_connected(&mut self, greeting: &[u8], now: Instant) {
        self.reply(greeting);
        self.deadline = Some(now + self.timeout);
    }

    /// [`Machine::handle_input`](crate::kit::Machine::handle_input): buffers `data`;
    /// `false` when it is dropped (reading ended, or bytes in the clear after the
    /// go-ahead to STARTTLS: the injection RFC 3207 §4.2 warns about).
    pub(crate) fn on_input(&mut self, data: &[u8]) -> bool {
        if self.done_reading || self.tls_after_flush {
            return false;
        }
        self.decoder.handle_input(data);
        true
    }

    /// [`Machine::handle_eof`](crate::kit::Machine::handle_eof).
    pub(crate) fn on_eof(&mut self) {
        if !self.done_reading {
            self.end();
        }
    }

    /// Whether [`Machine::handle_timeout`](crate::kit::Machine::handle_timeout) at `now`
    /// ends the session.
    pub(crate) fn timed_out(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|at| at <= now) && !self.busy()
    }

    /// Whether [`Machine::handle_shutdown`](crate::kit::Machine::handle_shutdown) ends the
    /// session now (not while a decision is pending).
    pub(crate) fn shutdown_now(&self) -> bool {
        !self.done_reading && !self.busy()
    }

    /// Whether the machine should process buffered lines before the next transmit (an
    /// answer arrived since).
    pub(crate) fn take_resume(&mut self) -> bool {
        !self.close_polled && std::mem::take(&mut self.resume)
    }

    /// [`Machine::poll_transmit`](crate::kit::Machine::poll_transmit) after any resume:
    /// the next bytes; once they drained after a go-ahead to STARTTLS, `start_tls()`'s
    /// event is queued.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        start_tls: impl FnOnce() -> E,
    ) -> Option<Bytes> {
        if self.close_polled {
            // Nothing after the close: an answer that came after the peer left (its end
            // closed the session while a decision was pending) is dropped.
            self.out.clear();
            return None;
        }
        let out = self.out.poll();
        if out.is_none() && self.tls_after_flush {
            self.tls_after_flush = false;
            self.events.push_back(start_tls());
            self.deadline = Some(now + self.timeout);
        }
        out
    }

    /// [`Machine::poll_event`](crate::kit::Machine::poll_event).
    pub(crate) fn poll_event(&mut self) -> Option<E> {
        self.events.pop_front()
    }

    /// [`Machine::poll_close`](crate::kit::Machine::poll_close).
    pub(crate) fn poll_close(&mut self) -> Option<Close> {
        if self.close_polled || !self.out.is_empty() {
            return None;
        }
        self.close_polled = self.close.is_some();
        self.close
    }

    /// [`Machine::poll_timeout`](crate::kit::Machine::poll_timeout).
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.filter(|_| !self.busy())
    }

    /// [`Machine::wants_input`](crate::kit::Machine::wants_input): pipelined commands wait
    /// in the decoder while an answer is pending; reading stops once a line's worth is held.
    pub(crate) fn wants_input(&self) -> bool {
        !self.done_reading && (!self.busy() || self.decoder.buffered() <= self.max_line)
    }
}

/// Implements [`Machine`](crate::kit::Machine) for a line-command server that keeps its
/// [`LineSession`] in field `s` and has `fn greeting(&self) -> Vec<u8>`,
/// `fn process(&mut self, now: Instant)` (the command loop) and
/// `fn fatal(&mut self, line: &[u8])` (ends the session with a reply). The caller has
/// `Machine` in scope (its tests drive the machine through it). Optionally
/// `drained: method` is called each time the output ran dry in `poll_transmit`, and
/// `writable: method` gets `handle_writable`'s flag.
macro_rules! line_machine {
    ($machine:ty, $event:ty, start_tls: $start_tls:expr, timeout: $timeout:expr,
     shutdown: $shutdown:expr $(, drained: $drained:ident, writable: $writable:ident)? $(,)?) => {
        impl Machine for $machine {
            type Event = $event;

            fn handle_connected(&mut self, now: ::std::time::Instant) {
                let greeting = self.greeting();
                self.s.on_connected(&greeting, now);
            }

            fn handle_input(&mut self, data: &[u8], now: ::std::time::Instant) {
                if self.s.on_input(data) {
                    self.process(now);
                }
            }

            fn handle_eof(&mut self, _now: ::std::time::Instant) {
                self.s.on_eof();
            }

            fn handle_timeout(&mut self, now: ::std::time::Instant) {
                if self.s.timed_out(now) {
                    self.fatal($timeout);
                }
            }

            fn handle_shutdown(&mut self, _now: ::std::time::Instant) {
                if self.s.shutdown_now() {
                    self.fatal($shutdown);
                }
            }

            fn poll_transmit(&mut self, now: ::std::time::Instant) -> Option<::bytes::Bytes> {
                if self.s.take_resume() {
                    self.process(now);
                }
                let out = self.s.poll_transmit(now, || $start_tls);
                $(
                    if out.is_none() {
                        self.$drained();
                    }
                )?
                out
            }

            $(
                fn handle_writable(&mut self, writable: bool, _now: ::std::time::Instant) {
                    self.$writable(writable);
                }
            )?

            fn poll_event(&mut self) -> Option<$event> {
                self.s.poll_event()
            }

            fn poll_close(&mut self) -> Option<$crate::kit::Close> {
                self.s.poll_close()
            }

            fn poll_timeout(&self) -> Option<::std::time::Instant> {
                self.s.poll_timeout()
            }

            fn wants_input(&self) -> bool {
                self.s.wants_input()
            }
        }
    };
}
pub(crate) use line_machine;
