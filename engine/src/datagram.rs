//! Datagram sockets, UDP and Unix: [`DatagramProtocol`] and its [`DatagramContext`].

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;
use ringwork_platform::{Driver, OpError, SockAddr, SocketId};

/// A UDP socket of one core, from [`Reactor::bind_udp`](crate::Reactor::bind_udp).
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub struct UdpId(pub(crate) SocketId);

/// What a UDP socket does (Twisted's `DatagramProtocol`).
pub trait DatagramProtocol: 'static {
    /// The socket is bound and receiving.
    fn started(&mut self, ctx: &mut DatagramContext<'_>) {
        let _ = ctx;
    }

    /// A datagram arrived from `from`. `data` is valid during this call only.
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr);

    /// A datagram arrived on a Unix datagram socket
    /// ([`Reactor::bind_unix_datagram`](crate::Reactor::bind_unix_datagram)) from `from`:
    /// a path (`from.as_pathname()`), a Linux abstract name, or an unnamed sender
    /// (`from.is_unnamed()`), which cannot be answered. Answer with
    /// [`DatagramContext::send_to_addr`]. The default drops it.
    fn unix_datagram_received(
        &mut self,
        ctx: &mut DatagramContext<'_>,
        data: &[u8],
        from: &SockAddr,
    ) {
        let _ = (ctx, data, from);
    }
}

/// The transport of a UDP socket, given to [`DatagramProtocol`] callbacks.
pub struct DatagramContext<'a> {
    driver: &'a mut Driver,
    socket: SocketId,
    now: Instant,
}

impl<'a> DatagramContext<'a> {
    pub(crate) fn new(driver: &'a mut Driver, socket: SocketId, now: Instant) -> Self {
        Self {
            driver,
            socket,
            now,
        }
    }

    /// This socket's id.
    #[must_use]
    pub fn id(&self) -> UdpId {
        UdpId(self.socket)
    }

    /// The time of the current loop turn.
    #[must_use]
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Sends a copy of `data` to `to`.
    pub fn send_to(&mut self, data: &[u8], to: SocketAddr) {
        self.driver
            .send_to(self.socket, Bytes::copy_from_slice(data), to);
    }

    /// Sends `data` to `to` without a copy.
    pub fn send_bytes_to(&mut self, data: Bytes, to: SocketAddr) {
        self.driver.send_to(self.socket, data, to);
    }

    /// Sends a copy of `data` to `to`, any address of the socket's family (a Unix path or
    /// abstract name for a Unix datagram socket). A datagram that cannot be sent (to an
    /// unnamed or gone receiver) is dropped, as for UDP.
    pub fn send_to_addr(&mut self, data: &[u8], to: &SockAddr) {
        self.driver
            .send_to_addr(self.socket, Bytes::copy_from_slice(data), to.clone());
    }

    /// The local address.
    ///
    /// # Errors
    /// The OS error.
    pub fn local_addr(&self) -> Result<SockAddr, OpError> {
        self.driver.local_addr(self.socket)
    }

    /// Changes a multicast setting of this socket: joins or leaves a group, sets the TTL,
    /// loopback or sending interface (see [`Multicast`](crate::platform::multicast::Multicast)).
    ///
    /// # Errors
    /// As [`Driver::multicast`](crate::platform::Driver::multicast).
    pub fn multicast(
        &mut self,
        setting: &crate::platform::multicast::Multicast,
    ) -> Result<(), OpError> {
        self.driver.multicast(self.socket, setting)
    }
}
