//! [`MemoryIo`]: the [`Io`] under a [`StringTransport`](super::StringTransport) — every
//! socket is a pair of byte queues in memory.
//!
//! Owns: the in-memory sockets of one transport (addresses, the send queue the "kernel" has
//! not taken yet, the bytes the peer received, receive/shutdown/close flags, pending
//! connects).
//! Contract: behaves as the platform driver does for the engine — sends are queued and taken
//! later (by [`MemoryIo::transmit`] or a drain, which the caller reports with
//! `State::sent`), a half-close waits for the queue to empty, close and abort drop whatever
//! is still queued, and nothing is reported for a socket after it is closed.
//! Does not: run callbacks or touch engine state (the transport does, through `dispatch`).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use ringwork_platform::{
    Bytes, OpError, OpKind, ProcessCommand, SockAddr, SocketId, Spawned, WindowSize,
};

use crate::io::Io;

/// First port of the local addresses given to outbound connections (plus the slot).
const EPHEMERAL_BASE: u16 = 40_000;

/// How an in-memory socket was closed.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Ended {
    /// `close`: a clean end (FIN) after whatever the peer already received.
    Closed,
    /// `abort`: a reset.
    Aborted,
}

/// The write side's half-close.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(super) enum Shutdown {
    /// Not requested.
    No,
    /// Requested; done once the send queue is empty.
    Wanted,
    /// Done: the peer saw the end of the stream.
    Done,
}

/// One in-memory stream socket.
pub(super) struct MemSocket {
    id: SocketId,
    pub(super) local: SockAddr,
    pub(super) peer: SockAddr,
    /// Outbound, the connect not completed yet.
    pub(super) connecting: bool,
    /// The engine wants bytes (`recv` / `stop_recv`).
    pub(super) receiving: bool,
    /// The test fed the peer's end of stream.
    pub(super) eof_fed: bool,
    /// The peer does not read: sent bytes stay queued until drained.
    pub(super) stalled: bool,
    /// Bytes handed to `send` and not taken by the "kernel" yet.
    queue: VecDeque<Bytes>,
    /// INVARIANT: the total length of `queue`.
    queued: usize,
    /// Every byte the peer received, in order, minus what the test took.
    pub(super) received: Vec<u8>,
    pub(super) shutdown: Shutdown,
    pub(super) ended: Option<Ended>,
}

impl MemSocket {
    fn new(id: SocketId, local: SockAddr, peer: SockAddr, connecting: bool) -> Self {
        Self {
            id,
            local,
            peer,
            connecting,
            receiving: false,
            eof_fed: false,
            stalled: false,
            queue: VecDeque::new(),
            queued: 0,
            received: Vec::new(),
            shutdown: Shutdown::No,
            ended: None,
        }
    }

    /// Bytes sent by the engine and not taken yet.
    pub(super) fn queued(&self) -> usize {
        self.queued
    }

    /// Moves up to `max` queued bytes to the peer; returns them.
    fn take(&mut self, max: usize) -> Vec<u8> {
        let mut taken = Vec::new();
        let mut budget = max;
        while budget > 0
            && let Some(front) = self.queue.front_mut()
        {
            if front.len() <= budget {
                budget -= front.len();
                taken.extend_from_slice(front);
                self.queue.pop_front();
            } else {
                taken.extend_from_slice(&front.split_to(budget));
                budget = 0;
            }
        }
        self.queued -= taken.len();
        self.received.extend_from_slice(&taken);
        self.finish_shutdown();
        taken
    }

    /// Completes a wanted half-close once nothing is left to send.
    fn finish_shutdown(&mut self) {
        if self.shutdown == Shutdown::Wanted && self.queued == 0 && !self.connecting {
            self.shutdown = Shutdown::Done;
        }
    }

    fn end(&mut self, how: Ended) {
        // Like the driver's close: unsent bytes are dropped, nothing more is reported.
        self.ended = Some(how);
        self.queue.clear();
        self.queued = 0;
        self.receiving = false;
    }
}

/// In-memory sockets by slot (generation 0; slots are never reused).
#[derive(Default)]
pub(super) struct MemoryIo {
    sockets: Vec<MemSocket>,
    /// Makes `connect` itself fail (socket creation) with this error.
    pub(super) connect_error: Option<io::ErrorKind>,
}

impl MemoryIo {
    /// Adds an established (accepted) socket.
    pub(super) fn add_accepted(&mut self, local: SockAddr, peer: SockAddr) -> SocketId {
        self.add(|id| MemSocket::new(id, local, peer, false))
    }

    fn add(&mut self, make: impl FnOnce(SocketId) -> MemSocket) -> SocketId {
        let slot = u32::try_from(self.sockets.len())
            .unwrap_or_else(|_| panic!("more than u32::MAX in-memory sockets"));
        let id = SocketId::from_parts(slot, 0);
        self.sockets.push(make(id));
        id
    }

    /// The socket `id`, open or not (`None` if it never existed).
    pub(super) fn socket(&self, id: SocketId) -> Option<&MemSocket> {
        self.sockets.get(id.slot() as usize).filter(|s| s.id == id)
    }

    /// See [`MemoryIo::socket`].
    pub(super) fn socket_mut(&mut self, id: SocketId) -> Option<&mut MemSocket> {
        self.sockets
            .get_mut(id.slot() as usize)
            .filter(|s| s.id == id)
    }

    /// The socket `id` if it is not closed.
    fn open_mut(&mut self, id: SocketId) -> Option<&mut MemSocket> {
        self.socket_mut(id).filter(|s| s.ended.is_none())
    }

    /// The "kernel" takes every queued byte of each socket whose peer reads; returns the
    /// sockets that sent something (each is due a `Sent` with nothing left queued).
    pub(super) fn transmit(&mut self) -> Vec<SocketId> {
        let mut sent = Vec::new();
        for socket in &mut self.sockets {
            if socket.ended.is_some() || socket.connecting {
                continue;
            }
            if !socket.stalled && socket.queued > 0 {
                socket.take(usize::MAX);
                sent.push(socket.id);
            }
            socket.finish_shutdown();
        }
        sent
    }

    /// Takes up to `max` queued bytes of `id` (a stalled peer reading); returns them and how
    /// many stay queued.
    pub(super) fn drain(&mut self, id: SocketId, max: usize) -> (Vec<u8>, usize) {
        match self.open_mut(id) {
            Some(socket) if !socket.connecting => {
                let taken = socket.take(max);
                (taken, socket.queued)
            }
            _ => (Vec::new(), 0),
        }
    }

    /// Outbound connects not completed yet, with their addresses.
    pub(super) fn pending_connects(&self) -> Vec<(SocketId, SockAddr)> {
        self.sockets
            .iter()
            .filter(|s| s.connecting && s.ended.is_none())
            .map(|s| (s.id, s.peer.clone()))
            .collect()
    }
}

/// A `NotFound` error for an operation on a socket that is not open (the driver's error).
fn not_open(id: SocketId) -> OpError {
    OpError {
        op: OpKind::Open,
        socket: Some(id),
        source: io::Error::new(io::ErrorKind::NotFound, "socket is not open"),
    }
}

/// The local address of an outbound socket in `slot` connecting to `peer`.
fn ephemeral(slot: u32, peer: &SockAddr) -> SockAddr {
    // Ports wrap: a test does not open 25,000 connections, and duplicates are harmless.
    let port = EPHEMERAL_BASE.wrapping_add((slot % 25_000) as u16);
    let ip = match peer.as_socket() {
        Some(SocketAddr::V6(_)) => Ipv6Addr::LOCALHOST.into(),
        _ => Ipv4Addr::LOCALHOST.into(),
    };
    SocketAddr::new(ip, port).into()
}

impl Io for MemoryIo {
    fn send(&mut self, socket: SocketId, bytes: Bytes) {
        // As the driver: refused (dropped) after close or half-close.
        if let Some(s) = self.open_mut(socket)
            && s.shutdown == Shutdown::No
            && !bytes.is_empty()
        {
            s.queued += bytes.len();
            s.queue.push_back(bytes);
        }
    }

    fn recv(&mut self, socket: SocketId) {
        if let Some(s) = self.open_mut(socket)
            && !s.eof_fed
        {
            s.receiving = true;
        }
    }

    fn stop_recv(&mut self, socket: SocketId) {
        if let Some(s) = self.open_mut(socket) {
            s.receiving = false;
        }
    }

    fn shutdown_write(&mut self, socket: SocketId) {
        if let Some(s) = self.open_mut(socket)
            && s.shutdown == Shutdown::No
        {
            s.shutdown = Shutdown::Wanted;
        }
    }

    fn close(&mut self, socket: SocketId) {
        if let Some(s) = self.open_mut(socket) {
            s.end(Ended::Closed);
        }
    }

    fn abort(&mut self, socket: SocketId) {
        if let Some(s) = self.open_mut(socket) {
            s.end(Ended::Aborted);
        }
    }

    fn connect(
        &mut self,
        addr: &SockAddr,
        _options: &ringwork_platform::ConnectOptions,
    ) -> Result<SocketId, OpError> {
        if let Some(kind) = self.connect_error {
            return Err(OpError {
                op: OpKind::Open,
                socket: None,
                source: io::Error::new(kind, "in-memory connect refused by the test"),
            });
        }
        let peer = addr.clone();
        Ok(self.add(|id| {
            let local = ephemeral(id.slot(), &peer);
            MemSocket::new(id, local, peer, true)
        }))
    }

    fn local_addr(&self, socket: SocketId) -> Result<SockAddr, OpError> {
        match self.socket(socket) {
            Some(s) if s.ended.is_none() => Ok(s.local.clone()),
            _ => Err(not_open(socket)),
        }
    }

    fn peer_addr(&self, socket: SocketId) -> Result<SockAddr, OpError> {
        match self.socket(socket) {
            Some(s) if s.ended.is_none() && s.connecting => Err(OpError {
                op: OpKind::Open,
                socket: Some(socket),
                source: io::Error::from(io::ErrorKind::NotConnected),
            }),
            Some(s) if s.ended.is_none() => Ok(s.peer.clone()),
            _ => Err(not_open(socket)),
        }
    }

    fn send_file(
        &mut self,
        socket: SocketId,
        _file: std::sync::Arc<std::fs::File>,
        _offset: u64,
        _len: u64,
    ) -> Result<(), OpError> {
        // No kernel to read the file: protocols read and write it under test.
        Err(OpError {
            op: OpKind::Send,
            socket: Some(socket),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "the in-memory transport does not send files",
            ),
        })
    }

    fn splice(&mut self, from: SocketId, _to: SocketId) -> Result<(), OpError> {
        // Nothing to splice in memory: protocols keep copying under test.
        Err(OpError {
            op: OpKind::Splice,
            socket: Some(from),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "the in-memory transport does not splice",
            ),
        })
    }

    fn splice_backlog(&self, _socket: SocketId) -> bool {
        false
    }

    fn spawn(&mut self, _command: &ProcessCommand) -> Result<Spawned, OpError> {
        Err(unsupported(OpKind::Spawn, None, "child processes"))
    }

    fn signal(&mut self, child: SocketId, _signal: i32) -> Result<(), OpError> {
        Err(unsupported(OpKind::Signal, Some(child), "child processes"))
    }

    fn set_window_size(&mut self, pty: SocketId, _size: WindowSize) -> Result<(), OpError> {
        Err(unsupported(OpKind::Signal, Some(pty), "terminals"))
    }
}

/// What the in-memory transport does not do.
fn unsupported(op: OpKind, socket: Option<SocketId>, what: &str) -> OpError {
    OpError {
        op,
        socket,
        source: io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{what} do not run on the in-memory transport"),
        ),
    }
}
