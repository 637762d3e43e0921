//! [`Waker`]: wakes a driver that waits in [`Driver::turn`](crate::Driver::turn) from another
//! thread.

use std::fmt;
use std::io;
use std::sync::Arc;

#[derive(Clone)]
enum Inner {
    /// An eventfd that the io_uring backend keeps a read armed on.
    #[cfg(uring)]
    EventFd(Arc<std::os::fd::OwnedFd>),
    /// mio's waker (eventfd, kqueue user event or IOCP post).
    Mio(Arc<mio::Waker>),
}

/// A cheap, cloneable, `Send + Sync` handle that makes the owning driver's current or next
/// [`Driver::turn`](crate::Driver::turn) return with a [`Completion::Woken`](crate::Completion::Woken).
/// Wakes before the driver looks merge into one.
#[derive(Clone)]
pub struct Waker {
    inner: Inner,
}

impl Waker {
    #[cfg(uring)]
    pub(crate) fn eventfd(fd: Arc<std::os::fd::OwnedFd>) -> Self {
        Self {
            inner: Inner::EventFd(fd),
        }
    }

    pub(crate) fn mio(waker: Arc<mio::Waker>) -> Self {
        Self {
            inner: Inner::Mio(waker),
        }
    }

    /// Wakes the driver.
    ///
    /// # Errors
    /// The OS error of signalling it (not expected in practice).
    pub fn wake(&self) -> io::Result<()> {
        match &self.inner {
            #[cfg(uring)]
            Inner::EventFd(fd) => crate::sys::uring::signal_eventfd(fd),
            Inner::Mio(waker) => waker.wake(),
        }
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &self.inner {
            #[cfg(uring)]
            Inner::EventFd(_) => "Waker(eventfd)",
            Inner::Mio(_) => "Waker(mio)",
        })
    }
}
