//! File operations in the core's io_uring ring ([`Driver::file`]), as futures.
//!
//! Owns: [`RingOp`], the future of one [`FileRequest`], and the table of operations in
//! flight ([`RingOps`], on the reactor) that routes each `Completion::File` to its future.
//! Contract: a `RingOp` hands its request to the reactor at its first poll (a job of the
//! core's queue, run in the same turn; submitted by the turn's `io_uring_enter`), and is
//! woken with the result. Dropped before its completion, it tells the reactor to forget
//! the operation: the driver keeps the request's memory until the kernel is done, so
//! nothing is freed under the kernel's feet.
//! Does not: fall back to threads (the caller, `fs`, chooses the ring only when the driver
//! has file operations).
//!
//! [`Driver::file`]: ringwork_platform::Driver::file

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use ringwork_platform::{Driver, FileDone, FileOpId, FileRequest, OpError};

use crate::local::LocalHandle;

/// What a [`RingOp`] and the reactor share.
#[derive(Default)]
pub(crate) struct RingSlot {
    state: RefCell<SlotState>,
}

#[derive(Default)]
struct SlotState {
    id: Option<FileOpId>,
    result: Option<Result<FileDone, OpError>>,
    waker: Option<Waker>,
    /// The future was dropped: submit nothing more, drop the result.
    abandoned: bool,
}

impl RingSlot {
    /// The operation finished: wake its future (or drop the result if nobody waits).
    pub(crate) fn complete(&self, result: Result<FileDone, OpError>) {
        let waker = {
            let mut state = self.state.borrow_mut();
            if state.abandoned {
                return;
            }
            state.result = Some(result);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The file operations of a core in flight, by id (a field of the reactor).
#[derive(Default)]
pub(crate) struct RingOps {
    waiting: HashMap<FileOpId, Rc<RingSlot>>,
}

impl RingOps {
    /// Submits `request` for `slot` (`None`: nobody waits, as for the close of a dropped
    /// file).
    pub(crate) fn submit(
        &mut self,
        driver: &mut Driver,
        request: FileRequest,
        slot: Option<Rc<RingSlot>>,
    ) {
        if slot
            .as_ref()
            .is_some_and(|slot| slot.state.borrow().abandoned)
        {
            return; // dropped before its submission: the request drops here, unsent
        }
        match (driver.file(request), slot) {
            (Ok(id), Some(slot)) => {
                slot.state.borrow_mut().id = Some(id);
                self.waiting.insert(id, slot);
            }
            (Ok(id), None) => {
                driver.forget_file(id);
            }
            (Err(error), Some(slot)) => slot.complete(Err(error)),
            (Err(error), None) => tracing::debug!(%error, "a detached file operation failed"),
        }
    }

    /// A `Completion::File` arrived.
    pub(crate) fn complete(&mut self, id: FileOpId, result: Result<FileDone, OpError>) {
        if let Some(slot) = self.waiting.remove(&id) {
            slot.complete(result);
        }
    }

    /// The future of `id` was dropped.
    pub(crate) fn forget(&mut self, driver: &mut Driver, id: FileOpId) {
        if self.waiting.remove(&id).is_some() {
            driver.forget_file(id);
        }
    }

    /// Operations whose future waits.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }
}

/// The future of one file operation in the ring.
pub(crate) struct RingOp {
    handle: LocalHandle,
    request: Option<FileRequest>,
    slot: Rc<RingSlot>,
}

impl RingOp {
    pub(crate) fn new(handle: LocalHandle, request: FileRequest) -> Self {
        Self {
            handle,
            request: Some(request),
            slot: Rc::default(),
        }
    }

    /// Submits `request` with nobody waiting for it (its completion is dropped).
    pub(crate) fn detached(handle: &LocalHandle, request: FileRequest) {
        handle.run(move |reactor| reactor.submit_file(request, None));
    }
}

impl Future for RingOp {
    type Output = Result<FileDone, OpError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut state = this.slot.state.borrow_mut();
        if let Some(result) = state.result.take() {
            state.id = None; // nothing to forget when dropped
            return Poll::Ready(result);
        }
        state.waker = Some(cx.waker().clone());
        drop(state);
        if let Some(request) = this.request.take() {
            let slot = Rc::clone(&this.slot);
            this.handle
                .run(move |reactor| reactor.submit_file(request, Some(slot)));
        }
        Poll::Pending
    }
}

impl Drop for RingOp {
    fn drop(&mut self) {
        let mut state = self.slot.state.borrow_mut();
        if state.result.is_some() || self.request.is_some() {
            return; // finished, or never submitted
        }
        state.abandoned = true;
        if let Some(id) = state.id {
            self.handle.run(move |reactor| reactor.forget_file(id));
        }
    }
}
