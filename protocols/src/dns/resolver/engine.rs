//! The resolver on the engine: [`Resolver`], a per-core handle that runs a
//! [`ResolverMachine`] on real sockets.
//!
//! Owns: one fresh UDP socket per exchange, bound to port 0 of the server's family (the
//! kernel picks a random source port: RFC 5452's second source of entropy, beside the
//! random id) and closed when the machine releases the exchange; a TCP connection per TC
//! retry (the kit adapter running [`TcpClientConn`]); one call on the core's timer wheel
//! at the machine's next deadline (`Inner::arm_wakeup`, the one place that makes timers);
//! the core's clock (`LocalHandle::now`, so a `ManualClock` drives it too);
//! futures for callers ([`Lookup`], [`Resolver::lookup_ip`]).
//! Contract: `!Send`, one per core, nothing shared (each core has its own cache). The
//! machine's `RefCell` is never borrowed across a call into the reactor, so callbacks the
//! reactor makes at once (a socket bound, a connect that fails) find it free.
//! Does not: decide anything (the machine does), or connect by name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use rand::TryRngCore;
use rand::rngs::OsRng;
use ringwork::{
    CallId, ConnectOptions, Context, DatagramContext, DatagramProtocol, Deferred, LocalHandle,
    LostReason, Reactor, UdpId,
};

use super::machine::{ExchangeId, LookupId, ResolverMachine, ResolverStats, Transmit};
use super::{Answer, Hosts, ResolvConf, ResolveError, ResolverConfig};
use crate::dns::proto::tcp::{TcpClientConn, TcpClientEvent};
use crate::dns::proto::{RType, Transport};
use crate::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};

/// Which family [`Resolver::lookup_ip`] lists first.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum IpOrder {
    /// IPv6 addresses, then IPv4.
    Ipv6First,
    /// IPv4 addresses, then IPv6.
    Ipv4First,
}

impl IpOrder {
    /// IPv6 first when this host has a route to the IPv6 internet from a global address,
    /// else IPv4 first (RFC 6724 lightly: an address family the host cannot use goes
    /// last). The probe is a UDP `connect` to a documentation address: the kernel picks a
    /// route and a source address, and no packet is sent.
    #[must_use]
    pub fn probe() -> IpOrder {
        let global_v6 = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))
            .and_then(|socket| {
                socket.connect((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), 53))?;
                socket.local_addr()
            })
            .is_ok_and(|local| match local.ip() {
                IpAddr::V6(ip) => !ip.is_loopback() && !ip.is_unicast_link_local(),
                IpAddr::V4(_) => false,
            });
        if global_v6 {
            IpOrder::Ipv6First
        } else {
            IpOrder::Ipv4First
        }
    }
}

impl ResolverConfig {
    /// From `/etc/resolv.conf` and `/etc/hosts` (see [`ResolverConfig::from_paths`]).
    ///
    /// # Errors
    /// See [`ResolverConfig::from_paths`].
    pub fn from_system() -> Result<Self, ResolveError> {
        Self::from_paths(Path::new("/etc/resolv.conf"), Path::new("/etc/hosts"))
    }

    /// From a resolv.conf and a hosts file. A file that does not exist counts as empty
    /// (glibc's defaults: 127.0.0.1, no hosts); lines glibc skips are skipped and logged
    /// as warnings with their line numbers. Reads the files at once (call it at start-up).
    ///
    /// # Errors
    /// [`ResolveError::Config`] naming the file when one exists but cannot be read.
    pub fn from_paths(resolv_conf: &Path, hosts: &Path) -> Result<Self, ResolveError> {
        let read = |path: &Path| match std::fs::read(path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(ResolveError::Config(format!("{}: {error}", path.display()))),
        };
        let conf = read(resolv_conf)?.map_or_else(ResolvConf::default, |t| ResolvConf::parse(&t));
        let hosts_file = read(hosts)?.map_or_else(Hosts::new, |t| Hosts::parse(&t));
        for (file, problems) in [(resolv_conf, &conf.problems), (hosts, &hosts_file.problems)] {
            for problem in problems {
                tracing::warn!(
                    file = %file.display(),
                    line = problem.line,
                    reason = %problem.reason,
                    "resolver configuration line skipped"
                );
            }
        }
        Ok(Self::from_files(&conf, hosts_file))
    }
}

/// The stub resolver of one core: a cheap handle (`Rc`, `!Send`) to clone into the
/// protocols and futures of that core.
///
/// # Examples
/// ```no_run
/// use ringwork::{DriverConfig, Reactor, ReactorConfig};
/// use ringwork_protocols::dns::proto::RType;
/// use ringwork_protocols::dns::resolver::{Resolver, ResolverConfig};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
/// let resolver = Resolver::new(reactor.handle(), ResolverConfig::from_system()?)?;
/// reactor.spawn_local(async move {
///     match resolver.lookup_ip("example.com").await {
///         Ok(ips) => println!("{ips:?}"),
///         Err(error) => eprintln!("{error}"),
///     }
///     if let Ok(mx) = resolver.lookup("example.com", RType::MX).await {
///         for record in &mx.records {
///             println!("{}", record.data);
///         }
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Resolver {
    inner: Rc<RefCell<Inner>>,
}

struct Inner {
    machine: ResolverMachine,
    handle: LocalHandle,
    /// The callers waiting, by lookup.
    waiting: HashMap<LookupId, ringwork::Resolver<Result<Answer, ResolveError>>>,
    /// The socket or connection of each exchange not yet released.
    io: HashMap<ExchangeId, Io>,
    drive_queued: bool,
    /// The call armed for the machine's next deadline, and that deadline.
    wakeup: Option<(CallId, Instant)>,
    order: IpOrder,
    this: Weak<RefCell<Inner>>,
}

enum Io {
    Udp(UdpId),
    Tcp(MailboxSender<Abort>),
}

/// Ends a TCP exchange the machine released before its reply.
struct Abort;

impl Resolver {
    /// A resolver on the core of `handle` (`reactor.handle()`, `ctx.handle()`), its
    /// query ids seeded from the OS, [`IpOrder::probe`]d once.
    ///
    /// # Errors
    /// [`ResolveError::Config`]: no servers, or no randomness from the OS.
    pub fn new(handle: LocalHandle, config: ResolverConfig) -> Result<Resolver, ResolveError> {
        if config.servers.is_empty() {
            return Err(ResolveError::Config("no nameservers".into()));
        }
        let mut seed = [0; 32];
        OsRng.try_fill_bytes(&mut seed).map_err(|error| {
            ResolveError::Config(format!("no random seed from the OS: {error}"))
        })?;
        let inner = Rc::new_cyclic(|this| {
            RefCell::new(Inner {
                machine: ResolverMachine::new(config, seed),
                handle,
                waiting: HashMap::new(),
                io: HashMap::new(),
                drive_queued: false,
                wakeup: None,
                order: IpOrder::probe(),
                this: this.clone(),
            })
        });
        Ok(Resolver { inner })
    }

    /// Sets which family [`Resolver::lookup_ip`] lists first.
    pub fn set_ip_order(&self, order: IpOrder) {
        self.inner.borrow_mut().order = order;
    }

    /// Looks up `name`'s records of `rtype` (see [`ResolverMachine::lookup`] for names,
    /// the search list, hosts and literal addresses). The lookup starts now; the future
    /// only waits for it, so two lookups made before either is awaited run in parallel
    /// (A and AAAA for Happy Eyeballs: two `lookup`s, each awaited as it comes).
    ///
    /// # Cancellation
    /// Dropping the future drops the caller's interest; a query already sent goes on and
    /// its answer is cached.
    pub fn lookup(&self, name: &str, rtype: RType) -> Lookup {
        let (deferred, waiter) = Deferred::new();
        let id = {
            let mut inner = self.inner.borrow_mut();
            let now = inner.handle.now();
            let id = inner.machine.lookup(name, rtype, now);
            inner.waiting.insert(id, waiter);
            inner.after_input();
            id
        };
        Lookup {
            deferred,
            id,
            inner: Rc::downgrade(&self.inner),
            done: false,
        }
    }

    /// The addresses of `host` (A and AAAA asked in parallel), ordered by
    /// [`IpOrder`] (probed, or [`Resolver::set_ip_order`]): one family's addresses, then
    /// the other's, each in the server's order. A literal address is itself. Addresses of
    /// one family are enough: the other's failure is then not reported.
    ///
    /// # Errors
    /// When neither family has an address: a failure to get an answer (timeout, server
    /// failure) before NXDOMAIN, before no records.
    pub fn lookup_ip(
        &self,
        host: &str,
    ) -> impl Future<Output = Result<Vec<IpAddr>, ResolveError>> + 'static {
        let v4 = self.lookup(host, RType::A);
        let v6 = self.lookup(host, RType::AAAA);
        let order = self.inner.borrow().order;
        async move {
            let (v4, v6) = (v4.await, v6.await);
            merge(order, v4, v6)
        }
    }

    /// The machine's counters.
    #[must_use]
    pub fn stats(&self) -> ResolverStats {
        self.inner.borrow().machine.stats()
    }

    /// Entries in the cache.
    #[must_use]
    pub fn cached(&self) -> usize {
        self.inner.borrow().machine.cache().len()
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&self) {
        self.inner.borrow_mut().machine.clear_cache();
    }

    /// Sockets and connections held for exchanges not yet over.
    #[must_use]
    pub fn open_exchanges(&self) -> usize {
        self.inner.borrow().io.len()
    }
}

/// A lookup in flight ([`Resolver::lookup`]): a future of its answer.
pub struct Lookup {
    deferred: Deferred<Result<Answer, ResolveError>>,
    id: LookupId,
    inner: Weak<RefCell<Inner>>,
    done: bool,
}

impl Future for Lookup {
    type Output = Result<Answer, ResolveError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let polled = Pin::new(&mut self.deferred).poll(cx);
        match polled {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                self.done = true;
                // Canceled: the resolver (or its core) is gone.
                Poll::Ready(result.unwrap_or(Err(ResolveError::Shutdown)))
            }
        }
    }
}

impl Drop for Lookup {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(inner) = self.inner.upgrade()
            && let Ok(mut inner) = inner.try_borrow_mut()
            && inner.waiting.remove(&self.id).is_some()
        {
            inner.machine.cancel(self.id);
        }
    }
}

impl Inner {
    /// After any input: hands finished lookups to their callers, moves the wake-up to the
    /// machine's next deadline, and has the reactor send and close what the machine wants.
    fn after_input(&mut self) {
        while let Some(event) = self.machine.poll_event() {
            if let Some(waiter) = self.waiting.remove(&event.id) {
                waiter.resolve(event.result);
            }
        }
        self.arm_wakeup();
        if self.machine.has_io() && !self.drive_queued {
            self.drive_queued = true;
            let this = self.this.clone();
            self.handle.run(move |reactor| drive(&this, reactor));
        }
    }

    /// Keeps one call on this core's timer wheel at the machine's next deadline (the one
    /// place that makes timers): armed, moved or cancelled as the deadline changes.
    fn arm_wakeup(&mut self) {
        let want = self.machine.poll_timeout();
        match (self.wakeup, want) {
            (Some((_, armed)), Some(at)) if armed == at => {}
            (Some((call, _)), Some(at)) if self.handle.reset_at(call, at) => {
                self.wakeup = Some((call, at));
            }
            (_, Some(at)) => {
                let this = self.this.clone();
                let call = self.handle.call_at(at, move |reactor| wake(&this, reactor));
                self.wakeup = Some((call, at));
            }
            (Some((call, _)), None) => {
                self.handle.cancel(call);
                self.wakeup = None;
            }
            (None, None) => {}
        }
    }
}

/// The machine's deadline came.
fn wake(this: &Weak<RefCell<Inner>>, reactor: &mut Reactor) {
    let Some(rc) = this.upgrade() else {
        return;
    };
    {
        let mut inner = rc.borrow_mut();
        inner.wakeup = None;
        let now = inner.handle.now();
        inner.machine.handle_timeout(now);
        inner.after_input();
    }
    drive(this, reactor);
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: close what the exchanges still hold.
        if let Some((call, _)) = self.wakeup.take() {
            self.handle.cancel(call);
        }
        for (_, io) in self.io.drain() {
            match io {
                Io::Udp(id) => self.handle.run(move |reactor| {
                    reactor.close_udp(id);
                }),
                Io::Tcp(sender) => {
                    let _ = sender.post(Abort);
                }
            }
        }
    }
}

/// Sends what the machine wants sent, closes what it released, arms the wake-up.
fn drive(this: &Weak<RefCell<Inner>>, reactor: &mut Reactor) {
    let Some(rc) = this.upgrade() else {
        return;
    };
    loop {
        let (transmits, releases) = {
            let mut inner = rc.borrow_mut();
            inner.drive_queued = false;
            let transmits: Vec<Transmit> =
                std::iter::from_fn(|| inner.machine.poll_transmit()).collect();
            let releases: Vec<ExchangeId> =
                std::iter::from_fn(|| inner.machine.poll_release()).collect();
            (transmits, releases)
        };
        if transmits.is_empty() && releases.is_empty() {
            break;
        }
        // Opened before the releases: an exchange sent and released in one batch is
        // opened, then closed (never left open).
        let timeout = rc.borrow().machine.config().timeout;
        for transmit in transmits {
            let exchange = transmit.exchange;
            let opened = open(reactor, &rc, transmit, timeout);
            let mut inner = rc.borrow_mut();
            match opened {
                Ok(io) => {
                    inner.io.insert(exchange, io);
                }
                Err(reason) => {
                    let now = inner.handle.now();
                    inner.machine.handle_exchange_failed(exchange, &reason, now);
                    inner.after_input();
                }
            }
        }
        for exchange in releases {
            let io = rc.borrow_mut().io.remove(&exchange);
            match io {
                Some(Io::Udp(id)) => {
                    reactor.close_udp(id);
                }
                Some(Io::Tcp(sender)) => {
                    let _ = sender.post(Abort);
                }
                None => {}
            }
        }
    }
    rc.borrow_mut().after_input();
}

/// Opens the socket or connection of `transmit` and sends its query.
fn open(
    reactor: &mut Reactor,
    rc: &Rc<RefCell<Inner>>,
    transmit: Transmit,
    timeout: std::time::Duration,
) -> Result<Io, String> {
    let inner = Rc::downgrade(rc);
    match transmit.transport {
        Transport::Udp => {
            let local = match transmit.server {
                SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
                SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            };
            let socket = ExchangeSocket {
                inner,
                exchange: transmit.exchange,
            };
            let id = reactor
                .bind_udp(local, socket)
                .map_err(|error| format!("UDP socket: {error}"))?;
            reactor.send_to(id, transmit.message, transmit.server);
            Ok(Io::Udp(id))
        }
        Transport::Tcp => {
            let app = TcpExchange {
                inner,
                exchange: transmit.exchange,
                lost: None,
            };
            let adapter = Adapter::new(TcpClientConn::new(transmit.message), app);
            let sender = adapter.sender();
            reactor
                .connect(
                    &transmit.server.into(),
                    adapter,
                    ConnectOptions::new().timeout(timeout),
                )
                .map_err(|error| format!("TCP connect: {error}"))?;
            Ok(Io::Tcp(sender))
        }
    }
}

/// The UDP socket of one exchange.
struct ExchangeSocket {
    inner: Weak<RefCell<Inner>>,
    exchange: ExchangeId,
}

impl DatagramProtocol for ExchangeSocket {
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        let Some(rc) = self.inner.upgrade() else {
            return;
        };
        let mut inner = rc.borrow_mut();
        inner
            .machine
            .handle_datagram(self.exchange, from, data, ctx.now());
        inner.after_input();
    }
}

/// The TCP connection of one exchange (a TC retry).
struct TcpExchange {
    inner: Weak<RefCell<Inner>>,
    exchange: ExchangeId,
    /// Why the engine lost the connection (more precise than the machine's reason).
    lost: Option<String>,
}

impl Application<TcpClientConn> for TcpExchange {
    type Command = Abort;
    type Status = ();

    fn event(
        &mut self,
        _machine: &mut TcpClientConn,
        event: TcpClientEvent,
        ctx: &mut Context<'_>,
        _mailbox: &Mailbox<Abort>,
    ) {
        let Some(rc) = self.inner.upgrade() else {
            return;
        };
        let mut inner = rc.borrow_mut();
        match event {
            TcpClientEvent::Reply(message) => {
                inner
                    .machine
                    .handle_tcp_reply(self.exchange, &message, ctx.now());
            }
            TcpClientEvent::Failed(reason) => {
                let reason = self.lost.as_deref().unwrap_or(reason);
                inner
                    .machine
                    .handle_exchange_failed(self.exchange, reason, ctx.now());
            }
        }
        inner.after_input();
    }

    fn command(&mut self, machine: &mut TcpClientConn, _abort: Abort, ctx: &mut Context<'_>) {
        if !machine.is_done() {
            ctx.abort();
        }
    }

    fn lost(&mut self, _machine: &mut TcpClientConn, _ctx: &mut Context<'_>, reason: LostReason) {
        self.lost = Some(reason.to_string());
    }
}

/// The addresses of A and AAAA answers in `order`, or the more telling error.
fn merge(
    order: IpOrder,
    v4: Result<Answer, ResolveError>,
    v6: Result<Answer, ResolveError>,
) -> Result<Vec<IpAddr>, ResolveError> {
    let ips = |r: &Result<Answer, ResolveError>| r.as_ref().map(Answer::ips).unwrap_or_default();
    let (four, six) = (ips(&v4), ips(&v6));
    if !four.is_empty() || !six.is_empty() {
        return Ok(match order {
            IpOrder::Ipv6First => six.into_iter().chain(four).collect(),
            IpOrder::Ipv4First => four.into_iter().chain(six).collect(),
        });
    }
    // A failure to learn anything says more than a negative answer for the other family.
    let rank = |e: &ResolveError| match e {
        ResolveError::NoRecords { .. } => 0,
        ResolveError::NxDomain { .. } => 1,
        _ => 2,
    };
    match (v4, v6) {
        (Err(e4), Err(e6)) => Err(if rank(&e6) > rank(&e4) { e6 } else { e4 }),
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
        (Ok(answer), Ok(_)) => Err(ResolveError::NoRecords {
            name: answer.name.to_string(),
            rtype: RType::A,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_files_are_read_and_missing_ones_are_defaults() {
        let dir =
            std::env::temp_dir().join(format!("ringwork-resolver-conf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (conf, hosts) = (dir.join("resolv.conf"), dir.join("hosts"));
        std::fs::write(&conf, "nameserver 192.0.2.1\nnameserver bad\noptions timeout:1 ndots:3\nsearch corp.example\n").unwrap();
        std::fs::write(&hosts, "192.0.2.7 gw\n").unwrap();
        let config = ResolverConfig::from_paths(&conf, &hosts).unwrap();
        assert_eq!(config.servers, ["192.0.2.1:53".parse().unwrap()]);
        assert_eq!(config.timeout, std::time::Duration::from_secs(1));
        assert_eq!(config.ndots, 3);
        assert_eq!(config.search.len(), 1);
        assert!(!config.hosts.is_empty());
        let missing = ResolverConfig::from_paths(&dir.join("none"), &dir.join("none")).unwrap();
        assert_eq!(missing.servers, ["127.0.0.1:53".parse().unwrap()]);
        assert!(missing.hosts.is_empty());
        // A directory is not a readable file: an error naming it.
        let error = ResolverConfig::from_paths(&dir, &hosts).unwrap_err();
        assert!(
            error.to_string().contains(&dir.display().to_string()),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn lookup_ip_merges_families_in_order_and_keeps_the_telling_error() {
        let answer = |ip: &str| {
            let ip: IpAddr = ip.parse().unwrap();
            let data = match ip {
                IpAddr::V4(a) => crate::dns::proto::RData::A(a),
                IpAddr::V6(a) => crate::dns::proto::RData::Aaaa(a),
            };
            Ok(Answer {
                name: crate::dns::proto::Name::root(),
                rtype: RType::A,
                aliases: Vec::new(),
                records: vec![crate::dns::proto::Record {
                    name: crate::dns::proto::Name::root(),
                    class: 1,
                    ttl: 1,
                    data,
                }],
                source: super::super::Source::Cache,
            })
        };
        let no = |rtype| {
            Err(ResolveError::NoRecords {
                name: "h".into(),
                rtype,
            })
        };
        let nx = || Err(ResolveError::NxDomain { name: "h".into() });
        let timed_out = || {
            Err(ResolveError::TimedOut {
                name: "h".into(),
                servers: vec![],
            })
        };
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(
            merge(
                IpOrder::Ipv4First,
                answer("192.0.2.1"),
                answer("2001:db8::1")
            ),
            Ok(vec![v4, v6])
        );
        assert_eq!(
            merge(
                IpOrder::Ipv6First,
                answer("192.0.2.1"),
                answer("2001:db8::1")
            ),
            Ok(vec![v6, v4])
        );
        assert_eq!(
            merge(IpOrder::Ipv6First, answer("192.0.2.1"), timed_out()),
            Ok(vec![v4])
        );
        assert_eq!(
            merge(IpOrder::Ipv4First, no(RType::A), timed_out()).unwrap_err(),
            timed_out().unwrap_err()
        );
        assert_eq!(
            merge(IpOrder::Ipv4First, nx(), no(RType::AAAA)).unwrap_err(),
            nx().unwrap_err()
        );
        assert_eq!(
            merge(IpOrder::Ipv4First, no(RType::A), no(RType::AAAA)).unwrap_err(),
            no(RType::A).unwrap_err()
        );
    }
}
