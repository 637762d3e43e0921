//! The I/O a [`Context`](crate::Context) needs, behind a trait: the platform driver in a
//! reactor, an in-memory transport in [`testing`](crate::testing).
//!
//! Owns: the [`Io`] trait and its driver implementation.
//! Contract: every method records intent or reads cached state; none blocks. Effects reach
//! the kernel at the end of the reactor's turn (the driver batches them).

use std::time::Duration;

use ringwork_platform::{
    Bytes, ConnectOptions, Driver, OpError, ProcessCommand, SockAddr, SocketId, Spawned, WindowSize,
};

/// What the engine asks of the layer below, per socket.
pub(crate) trait Io {
    /// Queues bytes (no copy).
    fn send(&mut self, socket: SocketId, bytes: Bytes);
    /// Starts receiving.
    fn recv(&mut self, socket: SocketId);
    /// Stops receiving.
    fn stop_recv(&mut self, socket: SocketId);
    /// Shuts the write side down once queued bytes are sent.
    fn shutdown_write(&mut self, socket: SocketId);
    /// Closes now (queued bytes below the engine are dropped).
    fn close(&mut self, socket: SocketId);
    /// Closes with a reset.
    fn abort(&mut self, socket: SocketId);
    /// Starts an outbound stream connection with `options` (local address, socket
    /// options, TCP Fast Open).
    fn connect(&mut self, addr: &SockAddr, options: &ConnectOptions) -> Result<SocketId, OpError>;
    /// The local address.
    fn local_addr(&self, socket: SocketId) -> Result<SockAddr, OpError>;
    /// The peer address.
    fn peer_addr(&self, socket: SocketId) -> Result<SockAddr, OpError>;
    /// Queues a file range after the bytes queued so far; the kernel sends it.
    fn send_file(
        &mut self,
        socket: SocketId,
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        len: u64,
    ) -> Result<(), OpError>;
    /// Sends what arrives on `from` to `to` inside the kernel.
    fn splice(&mut self, from: SocketId, to: SocketId) -> Result<(), OpError>;
    /// Whether a splice into `socket` holds bytes waiting for it.
    fn splice_backlog(&self, socket: SocketId) -> bool;
    /// Starts a child process.
    fn spawn(&mut self, command: &ProcessCommand) -> Result<Spawned, OpError>;
    /// Signals the child watched by `child`.
    fn signal(&mut self, child: SocketId, signal: i32) -> Result<(), OpError>;
    /// Sets the size of terminal `pty`.
    fn set_window_size(&mut self, pty: SocketId, size: WindowSize) -> Result<(), OpError>;
}

impl Io for Driver {
    fn send(&mut self, socket: SocketId, bytes: Bytes) {
        Driver::send(self, socket, bytes);
    }

    fn recv(&mut self, socket: SocketId) {
        Driver::recv(self, socket);
    }

    fn stop_recv(&mut self, socket: SocketId) {
        Driver::stop_recv(self, socket);
    }

    fn shutdown_write(&mut self, socket: SocketId) {
        Driver::shutdown_write(self, socket);
    }

    fn close(&mut self, socket: SocketId) {
        Driver::close(self, socket);
    }

    fn abort(&mut self, socket: SocketId) {
        Driver::abort(self, socket);
    }

    fn connect(&mut self, addr: &SockAddr, options: &ConnectOptions) -> Result<SocketId, OpError> {
        Driver::connect_with(self, addr, options)
    }

    fn local_addr(&self, socket: SocketId) -> Result<SockAddr, OpError> {
        Driver::local_addr(self, socket)
    }

    fn peer_addr(&self, socket: SocketId) -> Result<SockAddr, OpError> {
        Driver::peer_addr(self, socket)
    }

    fn send_file(
        &mut self,
        socket: SocketId,
        file: std::sync::Arc<std::fs::File>,
        offset: u64,
        len: u64,
    ) -> Result<(), OpError> {
        Driver::send_file(self, socket, file, offset, len)
    }

    fn splice(&mut self, from: SocketId, to: SocketId) -> Result<(), OpError> {
        Driver::splice(self, from, to)
    }

    fn splice_backlog(&self, socket: SocketId) -> bool {
        Driver::splice_backlog(self, socket)
    }

    fn spawn(&mut self, command: &ProcessCommand) -> Result<Spawned, OpError> {
        Driver::spawn(self, command)
    }

    fn signal(&mut self, child: SocketId, signal: i32) -> Result<(), OpError> {
        Driver::signal(self, child, signal)
    }

    fn set_window_size(&mut self, pty: SocketId, size: WindowSize) -> Result<(), OpError> {
        Driver::set_window_size(self, pty, size)
    }
}

/// Default connect timeout for outbound connections.
pub(crate) const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
