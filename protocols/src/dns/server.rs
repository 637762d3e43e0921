//! The authoritative DNS server on the engine: UDP ([`UdpServer`]) and TCP
//! ([`tcp_server`]) answering from one shared [`Catalog`].
//!
//! Owns: the engine glue only — a UDP socket's datagrams go to
//! [`Catalog::answer_into`] and the answer goes back to the sender; a TCP connection is the
//! [`TcpServerConn`] machine on the kit adapter. The catalog is loaded once and shared by
//! every core read-only (`Arc`).
//! Does not: parse or decide anything (see [`crate::dns::proto`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use ringwork::{DatagramContext, DatagramProtocol};

use super::proto::authority::{Catalog, Transport};
use super::proto::tcp::{TcpConfig, TcpServerConn};
use crate::kit::adapter::{Adapter, Silent};

/// A UDP socket answering queries from a catalog.
pub struct UdpServer {
    catalog: Arc<Catalog>,
    answer: Vec<u8>,
    /// Queries answered and dropped (no header, or a response sent to us).
    answered: u64,
    dropped: u64,
}

impl UdpServer {
    /// A server answering from `catalog`.
    #[must_use]
    pub fn new(catalog: Arc<Catalog>) -> Self {
        Self {
            catalog,
            answer: Vec::with_capacity(512),
            answered: 0,
            dropped: 0,
        }
    }

    /// Queries answered so far.
    #[must_use]
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// Datagrams dropped so far (not queries).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

impl DatagramProtocol for UdpServer {
    fn datagram_received(&mut self, ctx: &mut DatagramContext<'_>, data: &[u8], from: SocketAddr) {
        if self
            .catalog
            .answer_into(data, Transport::Udp, &mut self.answer)
        {
            self.answered += 1;
            ctx.send_bytes_to(Bytes::copy_from_slice(&self.answer), from);
        } else {
            self.dropped += 1;
        }
    }
}

/// A factory of DNS-over-TCP connections answering from `catalog`, for `listen_tcp`.
pub fn tcp_server(
    catalog: Arc<Catalog>,
    config: TcpConfig,
) -> impl FnMut() -> Adapter<TcpServerConn, Silent> + 'static {
    move || {
        Adapter::new(
            TcpServerConn::new(Arc::clone(&catalog), config.clone()),
            Silent,
        )
    }
}
