//! The authoritative DNS server on the engine: UDP ([`UdpServer`]) and TCP
//! ([`tcp_server`]) answering from one shared [`Catalog`].
//!
//! Owns: the engine glue only — a UDP socket's datagrams go to
//! [`AnswerCache::answer_into`] (the socket's own cache in front of [`Catalog`]) and the
//! answer goes back to the sender; a TCP connection is the
//! [`TcpServerConn`] machine on the kit adapter. The catalog is loaded once and shared by
//! every core read-only (`Arc`).
//! Does not: parse or decide anything (see [`crate::dns::proto`]).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use ringwork::{DatagramContext, DatagramProtocol};

use super::proto::authority::{AnswerCache, Catalog, Transport};
use super::proto::tcp::{TcpConfig, TcpServerConn};
use crate::kit::adapter::{Adapter, Silent};

/// Bytes of answers each UDP socket keeps (see [`AnswerCache`]).
pub const CACHE_BYTES: usize = 4 << 20;

/// Size of the blocks answers are cut from.
const ARENA_BLOCK: usize = 64 * 1024;

/// A UDP socket answering queries from a catalog, through a cache of its own.
pub struct UdpServer {
    catalog: Arc<Catalog>,
    cache: AnswerCache,
    answer: Vec<u8>,
    /// Answers are cut from this buffer (one allocation per many answers, not per answer).
    arena: BytesMut,
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
            cache: AnswerCache::new(CACHE_BYTES),
            answer: Vec::with_capacity(512),
            arena: BytesMut::new(),
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
            .cache
            .answer_into(&self.catalog, data, Transport::Udp, &mut self.answer)
        {
            self.answered += 1;
            if self.arena.capacity() < self.answer.len() {
                // A fresh block; the old one is freed once its last answer was sent.
                self.arena = BytesMut::with_capacity(ARENA_BLOCK.max(self.answer.len()));
            }
            self.arena.extend_from_slice(&self.answer);
            ctx.send_bytes_to(self.arena.split().freeze(), from);
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
