//! The io_uring backend. SKELETON.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use socket2::{SockRef, Socket};

use crate::completion::Completion;
use crate::config::{Capabilities, DriverConfig};
use crate::error::UringUnavailable;
use crate::id::SocketId;
use crate::table::{Core, SocketKind};
use crate::waker::Waker;

pub(crate) fn signal_eventfd(_fd: &OwnedFd) -> io::Result<()> {
    todo!()
}

pub(crate) struct Uring {
    capabilities: Capabilities,
}

impl Uring {
    pub(crate) fn new(_config: &DriverConfig) -> Result<Self, UringUnavailable> {
        Err(UringUnavailable::NotImplemented)
    }
    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }
    pub(crate) fn buffers_available(&self) -> u32 {
        todo!()
    }
    pub(crate) fn waker(&self) -> Waker {
        todo!()
    }
    pub(crate) fn attach(
        &mut self,
        _id: SocketId,
        _socket: Socket,
        _kind: SocketKind,
    ) -> io::Result<()> {
        todo!()
    }
    pub(crate) fn with_socket<R>(
        &self,
        _id: SocketId,
        _f: impl FnOnce(SockRef<'_>) -> io::Result<R>,
    ) -> Option<io::Result<R>> {
        todo!()
    }
    pub(crate) fn turn(
        &mut self,
        _core: &mut Core,
        _timeout: Option<Duration>,
        _out: &mut Vec<Completion>,
    ) -> io::Result<()> {
        todo!()
    }
}
