//! [`TcpProxy`]: a TCP port forward to a list of upstreams, round-robin, with health.
//!
//! Upstreams are client endpoints ([`EndpointConnector`]): a host name is resolved at
//! every connect (through the core's name resolver, raced with Happy Eyeballs), so a name
//! whose addresses change is followed without a restart; TLS and Unix upstreams work too.
//!
//! Owns: the per-core upstream table (round-robin cursor, down marks with exponential
//! backoff) and the client protocol that starts a [`Relay`].
//! Contract: each client connection picks the next healthy upstream in turn; a connect that
//! fails marks that upstream down for a backoff (`backoff_initial`, doubling per
//! consecutive failure up to `backoff_max`) and the next healthy upstream not tried yet for
//! this client is tried, with the client's bytes still held. With none left the client is
//! closed and a line is logged. An upstream whose backoff ended is tried again by the next
//! client; success clears its mark. State is per core: no locks, and each core learns of a
//! dead upstream by itself.
//! Does not: probe upstreams in the background; balance by load.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use ringwork::endpoint::{ClientEndpoint, EndpointConnector};
use ringwork::{ConnId, Context, Factory, LostReason, Protocol, TimerId};

use super::relay::{Dial, Relay, RelayConfig, RelayStats, Target};

/// Settings of a [`TcpProxy`].
#[derive(Clone, Debug)]
pub struct TcpProxyConfig {
    /// Where clients are forwarded, in round-robin order (at least one).
    pub upstreams: Vec<EndpointConnector>,
    /// Relay settings (idle timeout, bytes held while connecting).
    pub relay: RelayConfig,
    /// How long a failed upstream is skipped after its first failure.
    pub backoff_initial: Duration,
    /// The longest skip (the backoff doubles per consecutive failure up to this).
    pub backoff_max: Duration,
    /// Send a PROXY protocol header (v1 or v2) to the upstream first, naming the client
    /// (`ctx.peer_addr()`, which is itself the header's client on a `haproxy:` listener) and
    /// the address it connected to. `None`: send nothing.
    pub send_proxy: Option<crate::proxy_protocol::Version>,
}

impl TcpProxyConfig {
    /// Defaults (1 s backoff doubling to 30 s, the default [`RelayConfig`]) for
    /// `upstreams` (addresses).
    #[must_use]
    pub fn new(upstreams: Vec<SocketAddr>) -> Self {
        Self::with_endpoints(upstreams.into_iter().map(EndpointConnector::from).collect())
    }

    /// Defaults for `upstreams` (client endpoints: `tcp:host=backend:port=80`, ...).
    #[must_use]
    pub fn with_endpoints(upstreams: Vec<EndpointConnector>) -> Self {
        Self {
            upstreams,
            relay: RelayConfig::default(),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            send_proxy: None,
        }
    }
}

/// One upstream's health as one core sees it.
#[derive(Clone, Debug, Eq, PartialEq)]
#[non_exhaustive]
pub struct UpstreamHealth {
    /// The upstream.
    pub upstream: ClientEndpoint,
    /// Skipped until then (after a failure).
    pub down_until: Option<Instant>,
    /// Failed connects since its last success.
    pub consecutive_failures: u32,
    /// Connects that succeeded.
    pub connected: u64,
    /// Connects that failed.
    pub failed: u64,
}

struct Upstreams {
    list: Vec<UpstreamHealth>,
    /// The connectors, in the order of `list`.
    connectors: Vec<EndpointConnector>,
    next: usize,
    backoff_initial: Duration,
    backoff_max: Duration,
}

impl Upstreams {
    /// The next healthy upstream not in `tried` (round-robin), marked tried.
    fn pick(&mut self, now: Instant, tried: &mut [bool]) -> Option<usize> {
        let n = self.list.len();
        for k in 0..n {
            let i = (self.next + k) % n;
            if !tried[i] && self.list[i].down_until.is_none_or(|t| now >= t) {
                self.next = (i + 1) % n;
                tried[i] = true;
                return Some(i);
            }
        }
        None
    }

    fn mark_up(&mut self, i: usize) {
        let up = &mut self.list[i];
        if up.down_until.is_some() {
            tracing::info!("upstream {} is back", up.upstream.label());
        }
        up.down_until = None;
        up.consecutive_failures = 0;
        up.connected += 1;
    }

    fn mark_down(&mut self, i: usize, now: Instant, reason: &LostReason) {
        let up = &mut self.list[i];
        let exp = up.consecutive_failures.min(16);
        let backoff = self
            .backoff_initial
            .saturating_mul(1 << exp)
            .min(self.backoff_max);
        up.consecutive_failures = up.consecutive_failures.saturating_add(1);
        up.failed += 1;
        up.down_until = Some(now + backoff);
        tracing::warn!(
            "upstream {} failed ({reason}); skipped for {backoff:?}",
            up.upstream.label()
        );
    }
}

/// The per-core state every client connection shares.
struct Shared {
    upstreams: RefCell<Upstreams>,
    relay: RelayConfig,
    stats: RelayStats,
    send_proxy: Option<crate::proxy_protocol::Version>,
}

/// A TCP port forward: the [`Factory`] for the listening side. Build one per core (it is
/// not `Send`); its health table and counters are that core's.
pub struct TcpProxy {
    shared: Rc<Shared>,
}

impl TcpProxy {
    /// A proxy for `config`.
    ///
    /// # Panics
    /// If `config.upstreams` is empty (a caller's mistake: the CLI checks it).
    #[must_use]
    pub fn new(config: TcpProxyConfig) -> Self {
        assert!(
            !config.upstreams.is_empty(),
            "a TCP proxy needs at least one upstream"
        );
        let list = config
            .upstreams
            .iter()
            .map(|connector| UpstreamHealth {
                upstream: connector.endpoint().clone(),
                down_until: None,
                consecutive_failures: 0,
                connected: 0,
                failed: 0,
            })
            .collect();
        Self {
            shared: Rc::new(Shared {
                upstreams: RefCell::new(Upstreams {
                    list,
                    connectors: config.upstreams,
                    next: 0,
                    backoff_initial: config.backoff_initial,
                    backoff_max: config.backoff_max,
                }),
                relay: config.relay,
                stats: RelayStats::default(),
                send_proxy: config.send_proxy,
            }),
        }
    }

    /// This core's relay counters.
    #[must_use]
    pub fn stats(&self) -> RelayStats {
        self.shared.stats.clone()
    }

    /// This core's view of the upstreams.
    #[must_use]
    pub fn health(&self) -> Vec<UpstreamHealth> {
        self.shared.upstreams.borrow().list.clone()
    }

    /// A second handle on the same per-core state (for inspection after the factory was
    /// handed to a listener).
    #[must_use]
    pub fn handle(&self) -> TcpProxy {
        TcpProxy {
            shared: Rc::clone(&self.shared),
        }
    }
}

impl Factory for TcpProxy {
    fn build_protocol(&mut self) -> Box<dyn Protocol> {
        Box::new(ProxyConn {
            shared: Rc::clone(&self.shared),
            relay: None,
        })
    }
}

/// A client connection of the proxy.
struct ProxyConn {
    shared: Rc<Shared>,
    relay: Option<Relay>,
}

impl Protocol for ProxyConn {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        let n = self.shared.upstreams.borrow().list.len();
        let mut tried = vec![false; n];
        let picked = self
            .shared
            .upstreams
            .borrow_mut()
            .pick(ctx.now(), &mut tried);
        let Some(current) = picked else {
            let peer = ctx.peer_addr().ok().and_then(|a| a.as_socket());
            tracing::warn!("no healthy upstream: closing client {peer:?}");
            ctx.close();
            return;
        };
        let target = Target::Endpoint(self.shared.upstreams.borrow().connectors[current].clone());
        let dial = UpstreamDial {
            shared: Rc::clone(&self.shared),
            current,
            tried,
        };
        self.relay = Some(Relay::start(
            ctx,
            &target,
            &[],
            Box::new(dial),
            &self.shared.relay,
            &self.shared.stats,
        ));
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        if let Some(relay) = &self.relay {
            relay.data_received(ctx, data);
        }
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        match &self.relay {
            Some(relay) => relay.eof_received(ctx),
            None => ctx.close(),
        }
    }

    fn pause_writing(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = &self.relay {
            relay.pause_writing(ctx);
        }
    }

    fn write_drained(&mut self, ctx: &mut Context<'_>) {
        if let Some(relay) = &self.relay {
            relay.write_drained(ctx);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        if let Some(relay) = &self.relay {
            relay.timer_fired(ctx, timer);
        }
    }

    fn connection_lost(&mut self, ctx: &mut Context<'_>, reason: LostReason) {
        if let Some(relay) = self.relay.take() {
            relay.connection_lost(ctx, reason);
        }
    }
}

/// Health bookkeeping and failover for one client's connect.
struct UpstreamDial {
    shared: Rc<Shared>,
    current: usize,
    tried: Vec<bool>,
}

impl Dial for UpstreamDial {
    fn connected(&mut self, ctx: &mut Context<'_>, client: ConnId) {
        self.shared.upstreams.borrow_mut().mark_up(self.current);
        if let Some(version) = self.shared.send_proxy {
            // Before any relayed byte: the relay writes held bytes after this returns.
            let header = proxy_header(&ctx.other(client), version);
            ctx.write(&header);
        }
    }

    fn failed(
        &mut self,
        ctx: &mut Context<'_>,
        client: ConnId,
        reason: &LostReason,
    ) -> Option<Target> {
        let mut upstreams = self.shared.upstreams.borrow_mut();
        upstreams.mark_down(self.current, ctx.now(), reason);
        match upstreams.pick(ctx.now(), &mut self.tried) {
            Some(next) => {
                self.current = next;
                Some(Target::Endpoint(upstreams.connectors[next].clone()))
            }
            None => {
                let peer = ctx
                    .other(client)
                    .peer_addr()
                    .ok()
                    .and_then(|a| a.as_socket());
                tracing::warn!("no healthy upstream left: closing client {peer:?}");
                None
            }
        }
    }
}

/// The PROXY header naming `client`'s peer and local addresses (`UNKNOWN`/`AF_UNSPEC` when
/// they are not IP addresses of one family, e.g. a Unix socket client).
fn proxy_header(client: &Context<'_>, version: crate::proxy_protocol::Version) -> Vec<u8> {
    use crate::proxy_protocol::{Addresses, ProxyHeader, encode};
    use std::net::SocketAddr::{V4, V6};
    let peer = client.peer_addr().ok().and_then(|a| a.as_socket());
    let local = client.local_addr().ok().and_then(|a| a.as_socket());
    let addresses = match (peer, local) {
        (Some(V4(source)), Some(V4(destination))) => Addresses::Inet {
            source,
            destination,
        },
        (Some(V6(source)), Some(V6(destination))) => Addresses::Inet6 {
            source,
            destination,
        },
        _ => Addresses::Unspec,
    };
    // Encoding an address pair of one family cannot fail; fall back to UNKNOWN regardless.
    encode(&ProxyHeader::new(version, addresses.clone()))
        .or_else(|_| encode(&ProxyHeader::new(version, Addresses::Unspec)))
        .unwrap_or_default()
}
