//! [`ReusePort`]: who may share a listening address through SO_REUSEPORT, and the
//! process-wide record of the address groups this process created.
//!
//! Owns: the registry of live groups (address -> a token every listener of the group holds)
//! and [`bind_listener`], which binds and listens under the chosen [`ReusePort`].
//! Contract, for [`ReusePort::Process`] (the default):
//! 1. The first listener of this process on an address binds and listens *without*
//!    SO_REUSEPORT, so an address any other socket holds (listening, or bound with
//!    SO_REUSEPORT by another process) fails with EADDRINUSE, exactly as a plain bind does.
//!    Only once it listens does it set SO_REUSEPORT, so the next listeners can join: the
//!    kernel checks a newcomer against the options its group has at that moment (Linux
//!    `inet_csk_bind_conflict`, BSD `in_pcbbind_setup`). There is no window in which a
//!    stranger could join first: a stranger racing us without SO_REUSEPORT loses at bind
//!    or listen, and one with SO_REUSEPORT asked to share.
//! 2. Later listeners of this process on the same address (other cores) find its token
//!    here and bind with SO_REUSEPORT from the start, joining the group.
//! 3. The token goes when the group's last listener is released (after its descriptor is
//!    closed): a later listener on the address binds exclusively again.
//!
//! Port 0 is never looked up: each such listener gets a fresh port, exclusively, and is
//! recorded under that port, so a listener asking for the port it was given joins it.
//! SO_REUSEADDR is set on every TCP listener (also the exclusive first one), so a restarted
//! server still binds while connections of its previous run sit in TIME_WAIT.
//! Does not: stop a stranger that sets SO_REUSEPORT itself (same user) from joining a
//! group later: that takes eBPF steering; the stranger asked for it. UDP sockets never use
//! SO_REUSEPORT (see [`Driver::bind_udp`](crate::Driver::bind_udp)), so they are exclusive.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use socket2::{SockAddr, Socket};

/// Who may share a listening address through SO_REUSEPORT (Unix; elsewhere every listener
/// is exclusive).
#[derive(Clone, Copy, Debug, Default, Eq, Hash, PartialEq)]
#[non_exhaustive]
pub enum ReusePort {
    /// No SO_REUSEPORT: this listener is the address's only one.
    Off,
    /// The listeners of this process share the address (one per core, the kernel spreads
    /// connections over them), but the first one binds exclusively: an address someone
    /// else holds fails with EADDRINUSE instead of silently sharing its connections.
    #[default]
    Process,
    /// Join any SO_REUSEPORT group on the address, even another process's (same user): for
    /// zero-downtime restarts, where the new process starts before the old one stops.
    Shared,
}

/// A live group's token: every listener of the group holds a clone.
#[derive(Debug)]
pub(crate) struct Group;

/// Groups created (or joined) by this process, by kind (stream listener or datagram) and
/// bound address.
static GROUPS: Mutex<Option<Groups>> = Mutex::new(None);

/// Live groups by (is a stream listener, bound address).
type Groups = HashMap<(bool, SocketAddr), Weak<Group>>;

/// Binds `socket` (SO_REUSEADDR already set) to `addr` and listens with `backlog`, sharing
/// the address as `reuse` says. Returns the group token the listener must hold until its
/// descriptor is closed (`None` when it shares nothing).
///
/// # Errors
/// The OS error of bind, listen or setsockopt (EADDRINUSE when the address is held).
pub(crate) fn bind_listener(
    socket: &Socket,
    addr: &SockAddr,
    backlog: i32,
    reuse: ReusePort,
) -> io::Result<Option<Arc<Group>>> {
    bind_shared(socket, addr, Some(backlog), reuse)
}

/// [`bind_listener`] for a datagram socket (no listen): the same rules, its own groups.
/// (UDP sockets get no SO_REUSEADDR, which on Linux would let a stranger share the port.)
///
/// # Errors
/// As [`bind_listener`].
pub(crate) fn bind_datagram(
    socket: &Socket,
    addr: &SockAddr,
    reuse: ReusePort,
) -> io::Result<Option<Arc<Group>>> {
    bind_shared(socket, addr, None, reuse)
}

/// Binds (and listens, with `backlog`) under `reuse`.
fn bind_shared(
    socket: &Socket,
    addr: &SockAddr,
    backlog: Option<i32>,
    reuse: ReusePort,
) -> io::Result<Option<Arc<Group>>> {
    let bind_and_listen = || -> io::Result<()> {
        socket.bind(addr)?;
        if let Some(backlog) = backlog {
            socket.listen(backlog)?;
        }
        Ok(())
    };
    let Some(wanted) = addr
        .as_socket()
        .filter(|_| reuse != ReusePort::Off && supported())
    else {
        bind_and_listen()?;
        return Ok(None);
    };
    let kind = backlog.is_some();
    // Held across bind and listen, so two cores of this process asking at once see one
    // first listener and one joiner, never two first listeners.
    let mut groups = GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
    let groups = groups.get_or_insert_with(HashMap::new);
    let existing = match wanted.port() {
        0 => None,
        _ => groups.get(&(kind, wanted)).and_then(Weak::upgrade),
    };
    if existing.is_some() || reuse == ReusePort::Shared {
        set_reuse_port(socket)?;
        bind_and_listen()?;
    } else {
        // Exclusive first (EADDRINUSE if anyone holds the address), then open to this
        // process's other sockets (the kernel lets a later SO_REUSEPORT socket join a
        // bound one that set it after binding, for TCP and UDP alike).
        bind_and_listen()?;
        set_reuse_port(socket)?;
    }
    if let Some(group) = existing {
        return Ok(Some(group));
    }
    let bound = socket.local_addr()?.as_socket().unwrap_or(wanted);
    let group = Arc::new(Group);
    groups.retain(|_, group| group.strong_count() > 0);
    groups.insert((kind, bound), Arc::downgrade(&group));
    Ok(Some(group))
}

#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
fn supported() -> bool {
    true
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
fn supported() -> bool {
    false
}

#[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos"))))]
fn set_reuse_port(socket: &Socket) -> io::Result<()> {
    socket.set_reuse_port(true)
}

#[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos")))))]
fn set_reuse_port(_socket: &Socket) -> io::Result<()> {
    Ok(())
}
