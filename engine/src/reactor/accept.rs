//! Accepting: starting accepted connections, the per-core connection limit and the accept
//! back-off after resource errors (see [`Reactor`]'s accept back-pressure).
//!
//! Owns: what an `Accepted` completion does, the queue of connections accepted past the
//! limit, and asking the listeners to accept or stop.
//! Contract: the accept state is re-checked after every callback batch that may have changed
//! the connection count, and once per turn; the common case is decided inline.

use std::panic::{AssertUnwindSafe, catch_unwind};

use ringwork_platform::{OpError, SocketId};

use super::{ACCEPT_BACKOFF, Reactor};
use crate::dispatch;

impl Reactor {
    pub(super) fn accepted(&mut self, listener: SocketId, result: Result<SocketId, OpError>) {
        let socket = match result {
            Ok(socket) => socket,
            Err(error) => {
                // Out of descriptors or memory: the error would repeat at once, so stop
                // accepting for a while (connections wait in the backlog) instead of spinning.
                // Per-connection errors (ECONNABORTED, ...) only affect that connection.
                let resource = error.is_resource_exhaustion();
                if resource && self.accept_backoff.is_none() {
                    // Repeats every ACCEPT_BACKOFF while the condition lasts: logged once
                    // per warning interval, with a count.
                    if let Some(suppressed) = self.state.warnings.accept.hit(self.state.now) {
                        tracing::warn!(
                            %error,
                            pause = ?ACCEPT_BACKOFF,
                            suppressed,
                            "accept failed; pausing accepts"
                        );
                    }
                    self.accept_backoff = Some(self.state.now + ACCEPT_BACKOFF);
                    self.update_accepting();
                } else if !resource {
                    tracing::debug!(%error, "accept failed");
                }
                return;
            }
        };
        let missed = self.state.warnings.accept.take_suppressed();
        if missed > 0 {
            tracing::info!(
                suppressed = missed,
                "accepting again; accept failures since the last warning"
            );
        }
        if self.state.conns.live() >= self.state.config.max_connections {
            // Accepted in the same batch as the one that reached the limit (stopping accepts
            // takes effect next turn): it waits, un-started, until room frees up.
            self.waiting.push_back((listener, socket));
            self.update_accepting();
            return;
        }
        self.start_accepted(listener, socket);
        self.update_accepting();
    }

    /// Builds the protocol of an accepted connection and starts it.
    pub(super) fn start_accepted(&mut self, listener: SocketId, socket: SocketId) {
        // A listener that a shutdown retired still gets its connection served: the kernel
        // accepted it before the accept was cancelled, so the client is waiting for it.
        let retired = self.stopping.is_some();
        let Some(entry) = self
            .listeners
            .iter_mut()
            .chain(self.retiring.iter_mut())
            .find(|l| l.socket == listener)
        else {
            self.driver.close(socket);
            return;
        };
        if let Some(total) = &self.state.total
            && !total.try_acquire()
        {
            // The runtime-wide limit: accept and close (see RuntimeBuilder::max_connections_total).
            self.state.stats.rejected += 1;
            self.driver.close(socket);
            return;
        }
        let counted = self.state.total.is_some();
        let factory = &mut entry.factory;
        let built = catch_unwind(AssertUnwindSafe(|| factory.build_protocol()));
        let Ok(protocol) = built else {
            if counted && let Some(total) = &self.state.total {
                total.release();
            }
            self.state.stats.panics += 1;
            if let Some(suppressed) = self.state.warnings.panic.hit(self.state.now) {
                tracing::error!(
                    suppressed,
                    "a factory panicked building a protocol; connection closed"
                );
            }
            self.driver.abort(socket);
            return;
        };
        let id = dispatch::accepted(
            &mut self.state,
            &mut self.driver,
            socket,
            protocol,
            entry.options.tls.as_ref(),
            entry
                .options
                .preamble
                .map(|p| (p, entry.options.preamble_timeout)),
        );
        if let Some(conn) = self.state.conns.get_mut(id) {
            conn.in_total = counted;
        }
        if retired {
            // It starts during the shutdown: told at once, as the others were.
            self.state
                .notices
                .push_back((id, crate::state::Notice::ShutdownStarted));
            self.run_notices();
        }
    }

    /// Stops accepting at the connection limit and resumes below it. Runs after every
    /// completion and callback batch: the common case (nothing waits, no back-off, the
    /// accept state already right) is decided inline, without the call (issue 16: 3.5 calls
    /// per keep-alive request, ~30 instructions each).
    #[inline]
    pub(super) fn update_accepting(&mut self) {
        let below_limit = self.state.conns.live() < self.state.config.max_connections;
        if self.waiting.is_empty()
            && self.accept_backoff.is_none()
            && self.accepting == (self.stopping.is_none() && below_limit)
        {
            return;
        }
        self.update_accepting_now();
    }

    /// [`Reactor::update_accepting`] when something may change: starts waiting connections
    /// below the limit, ends a back-off that is over and asks the listeners to accept or stop.
    #[inline(never)]
    fn update_accepting_now(&mut self) {
        while self.state.conns.live() < self.state.config.max_connections
            && let Some((listener, socket)) = self.waiting.pop_front()
        {
            self.start_accepted(listener, socket);
        }
        if self
            .accept_backoff
            .is_some_and(|until| self.state.now >= until)
        {
            self.accept_backoff = None;
        }
        let want = self.stopping.is_none()
            && self.accept_backoff.is_none()
            && self.state.conns.live() < self.state.config.max_connections;
        if want != self.accepting {
            self.accepting = want;
            for listener in &self.listeners {
                if want {
                    self.driver.accept(listener.socket);
                } else {
                    self.driver.stop_accept(listener.socket);
                }
            }
        }
    }
}
