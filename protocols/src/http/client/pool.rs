//! The per-core keep-alive pool: idle connections per server, the per-host connection
//! limit, and the queue of requests waiting for a connection.
//!
//! Owns: [`Pool`] (per-[`PoolKey`] [`Host`] bookkeeping), [`Lease`] (the right to use one
//! pooled connection or to open one new connection), [`acquire`].
//! Contract: a server is a [`PoolKey`]: its address, and for TLS the verified server name
//! and the connector, so a plaintext connection and a TLS one to the same address (or two
//! TLS ones verified as different names) are never handed out for each other.
//! `Host::open` counts every connection of that key from the moment a
//! [`Lease::New`] is granted until its `connection_lost` (or until the unused lease is
//! given back), so it never exceeds `max_conns_per_host`. Pool borrows are never held while
//! user code, a resolver or a drop that could re-enter the pool runs: a dropped lease gives
//! itself back through a reactor job.
//! Does not: read or write connections (see `conn.rs`).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;

use ringwork::{Deferred, Resolver};

use crate::http::client::Inner;
use crate::http::client::conn::{Command, Conn};
use crate::http::client::tls::TlsKey;

/// Connections of every server this core talks to.
#[derive(Default)]
pub(crate) struct Pool {
    hosts: HashMap<PoolKey, Host>,
}

/// Which connections may carry a request: same address (or host name and port), same
/// TLS (or none).
#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub(crate) struct PoolKey {
    /// The address; for a host name, only its port counts.
    pub(crate) addr: SocketAddr,
    /// The host name, lowercased (`None`: `addr` is the server).
    pub(crate) host: Option<String>,
    /// `None`: plaintext.
    pub(crate) tls: Option<TlsKey>,
}

/// One server (address and TLS identity).
#[derive(Default)]
struct Host {
    /// Idle keep-alive connections, most recently used last.
    idle: Vec<Conn>,
    /// Connections open or being opened (see the module contract).
    open: usize,
    /// Requests waiting for a connection, oldest first.
    waiters: VecDeque<Waiter>,
}

/// A request waiting for a connection.
struct Waiter {
    /// A retry that must not reuse a pooled connection.
    fresh: bool,
    resolver: Resolver<Lease>,
}

/// The right to send one request: on a pooled connection or on a new one.
///
/// Dropped unused (its future was dropped), it gives itself back on the next reactor job.
pub(crate) struct Lease {
    client: Rc<Inner>,
    key: PoolKey,
    kind: Option<LeaseKind>,
}

/// What a [`Lease`] grants.
enum LeaseKind {
    /// A pooled connection, marked reserved.
    Reuse(Conn),
    /// A slot for one new connection.
    New,
}

impl Lease {
    fn new(client: &Rc<Inner>, key: PoolKey, kind: LeaseKind) -> Self {
        Self {
            client: Rc::clone(client),
            key,
            kind: Some(kind),
        }
    }

    /// A lease on `conn`, already marked reserved.
    pub(crate) fn reuse(client: &Rc<Inner>, key: PoolKey, conn: &Conn) -> Self {
        Self::new(client, key, LeaseKind::Reuse(conn.clone()))
    }

    /// The pooled connection this lease grants; `None` for a new-connection slot.
    pub(crate) fn pooled(&self) -> Option<Conn> {
        match &self.kind {
            Some(LeaseKind::Reuse(conn)) => Some(conn.clone()),
            _ => None,
        }
    }

    /// Marks the lease used: the connection now owns the slot (its `connection_lost`
    /// frees it).
    pub(crate) fn consume(mut self) {
        self.kind = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let Some(kind) = self.kind.take() else { return };
        let client = Rc::clone(&self.client);
        let key = self.key.clone();
        // A job, not a direct call: a lease may be dropped inside a resolver or while the
        // pool or a connection's state is borrowed.
        self.client
            .handle
            .run(move |_| give_back(&client, key, kind));
    }
}

/// Waits for the right to send a request to `key`: a pooled idle connection (unless
/// `fresh`), else a new connection if the host is below its limit, else the next one to
/// free up.
pub(crate) async fn acquire(client: &Rc<Inner>, key: &PoolKey, fresh: bool) -> Lease {
    loop {
        let (deferred, evict) = {
            let mut pool = client.pool.borrow_mut();
            let host = pool.hosts.entry(key.clone()).or_default();
            if !fresh {
                while let Some(conn) = host.idle.pop() {
                    let usable = {
                        let mut status = conn.status_mut();
                        let usable = status.idle && !status.reserved;
                        status.reserved |= usable;
                        usable
                    };
                    if usable && !conn.is_closed() {
                        return Lease::new(client, key.clone(), LeaseKind::Reuse(conn));
                    }
                }
            }
            if host.open < client.config.max_conns_per_host {
                host.open += 1;
                return Lease::new(client, key.clone(), LeaseKind::New);
            }
            // A fresh request at the limit makes room by closing an idle connection; its
            // `connection_lost` hands the slot to the oldest waiter.
            let evict = if fresh { host.idle.pop() } else { None };
            let (deferred, resolver) = Deferred::new();
            host.waiters.push_back(Waiter { fresh, resolver });
            (deferred, evict)
        };
        if let Some(conn) = evict {
            close_idle(&conn);
        }
        if let Ok(lease) = deferred.await {
            return lease;
        }
    }
}

/// Closes an idle connection taken out of the pool.
fn close_idle(conn: &Conn) {
    conn.status_mut().idle = false;
    let _ = conn.post(Command::Close);
}

/// Returns an unused lease: a pooled connection goes back to idle, a new-connection slot
/// goes to the next waiter.
fn give_back(client: &Rc<Inner>, key: PoolKey, kind: LeaseKind) {
    match kind {
        LeaseKind::Reuse(conn) => {
            if !std::mem::take(&mut conn.status_mut().reserved) || conn.is_closed() {
                return;
            }
            if let Some(next) = offer_idle(client, &key, &conn) {
                next.resolve(Lease::new(client, key, LeaseKind::Reuse(conn)));
            }
        }
        LeaseKind::New => slot_freed(client, &key),
    }
}

/// What to do with a connection whose response completed with keep-alive.
pub(crate) enum Release {
    /// Hand it to this waiter (already marked reserved).
    Waiter(Resolver<Lease>),
    /// Kept idle in the pool.
    Pooled,
    /// Close it: the pool is full, or a waiter needs a fresh connection.
    Close,
}

/// Offers an idle connection to the waiters, else keeps or closes it. Returns the waiter to
/// resolve with the connection reserved.
fn offer_idle(client: &Rc<Inner>, key: &PoolKey, conn: &Conn) -> Option<Resolver<Lease>> {
    match release(client, key, conn) {
        Release::Waiter(resolver) => {
            conn.status_mut().reserved = true;
            Some(resolver)
        }
        Release::Pooled => None,
        Release::Close => {
            close_idle(conn);
            None
        }
    }
}

/// Decides where an idle connection goes; see [`Release`]. On [`Release::Waiter`] the
/// caller marks it reserved.
pub(crate) fn release(client: &Rc<Inner>, key: &PoolKey, conn: &Conn) -> Release {
    let mut pool = client.pool.borrow_mut();
    let host = pool.hosts.entry(key.clone()).or_default();
    while let Some(waiter) = host.waiters.front() {
        if waiter.resolver.is_canceled() {
            host.waiters.pop_front();
            continue;
        }
        if waiter.fresh {
            // Closing this connection frees a slot for it.
            return Release::Close;
        }
        let Some(waiter) = host.waiters.pop_front() else {
            break;
        };
        return Release::Waiter(waiter.resolver);
    }
    if host.idle.len() >= client.config.max_idle_per_host {
        return Release::Close;
    }
    host.idle.push(conn.clone());
    Release::Pooled
}

/// A connection of `key` is gone: forget it and give its slot to the next waiter.
pub(crate) fn conn_gone(client: &Rc<Inner>, key: &PoolKey, conn: &Conn) {
    {
        let mut pool = client.pool.borrow_mut();
        if let Some(host) = pool.hosts.get_mut(key) {
            host.idle.retain(|c| !c.same(conn));
        }
    }
    slot_freed(client, key);
}

/// One connection slot of `key` is free: the oldest live waiter gets it.
fn slot_freed(client: &Rc<Inner>, key: &PoolKey) {
    let next = {
        let mut pool = client.pool.borrow_mut();
        let Some(host) = pool.hosts.get_mut(key) else {
            return;
        };
        host.open = host.open.saturating_sub(1);
        let mut next = None;
        while let Some(waiter) = host.waiters.pop_front() {
            if !waiter.resolver.is_canceled() {
                host.open += 1;
                next = Some(waiter.resolver);
                break;
            }
        }
        if next.is_none() && host.open == 0 && host.idle.is_empty() {
            pool.hosts.remove(key);
        }
        next
    };
    if let Some(resolver) = next {
        resolver.resolve(Lease::new(client, key.clone(), LeaseKind::New));
    }
}

/// Idle connections and open connections to `addr`, plaintext and TLS together (for stats
/// and tests).
pub(crate) fn counts(client: &Inner, addr: SocketAddr) -> (usize, usize) {
    counts_where(client, |key| key.host.is_none() && key.addr == addr)
}

/// Idle and open connections to the host name `host` on `port`.
pub(crate) fn host_counts(client: &Inner, host: &str, port: u16) -> (usize, usize) {
    let host = host.to_ascii_lowercase();
    counts_where(client, |key| {
        key.host.as_deref() == Some(host.as_str()) && key.addr.port() == port
    })
}

fn counts_where(client: &Inner, matches: impl Fn(&PoolKey) -> bool) -> (usize, usize) {
    client
        .pool
        .borrow()
        .hosts
        .iter()
        .filter(|(key, _)| matches(key))
        .fold((0, 0), |(idle, open), (_, h)| {
            (idle + h.idle.len(), open + h.open)
        })
}
