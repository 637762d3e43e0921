//! The connection cap on the engine: a [`Factory`] wrapper whose protocols count their
//! connection in a process-wide [`ConnectionCounts`] and close it at once past the cap.
//!
//! One lock per accepted connection and one per close (never per request or per read): the
//! cap holds across cores, which SO_REUSEPORT gives one client's connections to.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use ringwork::{Context, Factory, LostReason, Protocol, TimerId};

use super::ConnectionCounts;

/// The live connections per client IP of every core (cheap to clone).
#[derive(Clone, Debug)]
pub struct ConnectionCap {
    counts: Arc<Mutex<ConnectionCounts>>,
}

impl ConnectionCap {
    /// At most `max` live connections per client IP, across the cores that share this cap.
    #[must_use]
    pub fn new(max: u32) -> Self {
        Self {
            counts: Arc::new(Mutex::new(ConnectionCounts::new(max))),
        }
    }

    /// `factory`'s protocols under this cap.
    #[must_use]
    pub fn wrap<F: Factory>(&self, factory: F) -> ConnectionCapFactory<F> {
        ConnectionCapFactory {
            inner: factory,
            cap: self.clone(),
        }
    }

    /// Live connections of `client` now.
    #[must_use]
    pub fn count(&self, client: IpAddr) -> u32 {
        self.lock().count(client)
    }

    /// Changes the cap for every core (a reload); open connections are not closed.
    pub fn set_max(&self, max: u32) {
        self.lock().set_max(max);
    }

    /// The cap per client.
    #[must_use]
    pub fn max(&self) -> u32 {
        self.lock().max()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnectionCounts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Factory`] whose connections count against a [`ConnectionCap`]: a client over its cap
/// is closed as soon as its connection is made (its protocol never sees it).
pub struct ConnectionCapFactory<F> {
    inner: F,
    cap: ConnectionCap,
}

impl<F: Factory> Factory for ConnectionCapFactory<F> {
    fn build_protocol(&mut self) -> Box<dyn Protocol> {
        Box::new(Capped {
            inner: self.inner.build_protocol(),
            cap: self.cap.clone(),
            state: CapState::Waiting,
        })
    }
}

/// Where a capped connection stands.
enum CapState {
    /// Before `connection_made`.
    Waiting,
    /// Counted for this client (a Unix socket has none: `None`, not counted).
    Counted(Option<IpAddr>),
    /// Over the cap: closed, the inner protocol never started.
    Refused,
}

struct Capped {
    inner: Box<dyn Protocol>,
    cap: ConnectionCap,
    state: CapState,
}

impl Capped {
    fn live(&self) -> bool {
        matches!(self.state, CapState::Counted(_))
    }
}

impl Protocol for Capped {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let client = ctx
            .peer_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.ip());
        if let Some(ip) = client
            && !self.cap.lock().open(ip)
        {
            tracing::debug!(conn = %ctx.id(), client = %ip, "connection cap per client reached; closing");
            self.state = CapState::Refused;
            ctx.abort();
            return;
        }
        self.state = CapState::Counted(client);
        self.inner.connection_made(ctx);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if self.live() {
            self.inner.data_received(ctx, data);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        if self.live() {
            self.inner.eof_received(ctx);
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if self.live() {
            self.inner.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if self.live() {
            self.inner.write_drained(ctx);
        }
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_>) {
        if self.live() {
            self.inner.shutdown_started(ctx);
        }
    }

    fn handshake_completed(&mut self, ctx: &mut Context<'_>) {
        if self.live() {
            self.inner.handshake_completed(ctx);
        }
    }

    fn woken(&mut self, ctx: &mut Context<'_>) {
        if self.live() {
            self.inner.woken(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if self.live() {
            self.inner.timer_fired(ctx, timer);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        match std::mem::replace(&mut self.state, CapState::Refused) {
            CapState::Counted(client) => {
                if let Some(ip) = client {
                    self.cap.lock().close(ip);
                }
                self.inner.connection_lost(ctx, reason);
            }
            // Never started (lost before connection_made, e.g. in a TLS handshake): the
            // inner protocol is told, as it would be without the cap.
            CapState::Waiting => self.inner.connection_lost(ctx, reason),
            CapState::Refused => {}
        }
    }
}
