//! The portable backend: mio readiness (epoll, kqueue, IOCP) turned into completions.
//! SKELETON — to be implemented.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, Socket};

use crate::buf::BufPool;
use crate::completion::Completion;
use crate::config::{BackendKind, Capabilities, DriverConfig};
use crate::error::{SetupError, UringUnavailable};
use crate::id::SocketId;
use crate::table::{Core, SocketKind};
use crate::waker::Waker;

pub(crate) struct Poll {
    poll: mio::Poll,
    waker: Arc<mio::Waker>,
    pool: BufPool,
    capabilities: Capabilities,
}

impl Poll {
    pub(crate) fn new(
        config: &DriverConfig,
        fallback: Option<UringUnavailable>,
    ) -> Result<Self, SetupError> {
        let io = |what| move |source| SetupError::Io { what, source };
        let poll = mio::Poll::new().map_err(io("creating the poll instance"))?;
        let waker = Arc::new(
            mio::Waker::new(poll.registry(), mio::Token(usize::MAX))
                .map_err(io("creating the waker"))?,
        );
        let pool = BufPool::new_list(config.buf_size, config.buf_count)
            .map_err(io("allocating receive buffers"))?;
        let capabilities = Capabilities {
            backend: Some(BackendKind::Poll),
            uring_unavailable: fallback,
            ..Capabilities::default()
        };
        Ok(Self {
            poll,
            waker,
            pool,
            capabilities,
        })
    }

    pub(crate) fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    pub(crate) fn buffers_available(&self) -> u32 {
        self.pool.available()
    }

    pub(crate) fn waker(&self) -> Waker {
        Waker::mio(Arc::clone(&self.waker))
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
        let _ = &self.poll;
        todo!()
    }
}
