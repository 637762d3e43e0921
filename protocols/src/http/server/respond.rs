//! How a handler answers: [`Responder`] (a whole [`Response`], now or later) and
//! [`BodyWriter`] (a streamed body with backpressure).
//!
//! Both post [`Command`]s to their connection's mailbox: given inside a callback, the answer
//! is applied in the same drive; given later (from a task, a timer, another connection's
//! callback), it wakes the connection, which applies it in the same reactor turn. What they
//! send waits in the machine until every earlier answer is out (pipelining keeps request
//! order). Neither holds any borrow of the connection: both are `'static`.

use std::fmt;
use std::future::{Future, poll_fn};

use bytes::Bytes;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::conn::{Command, FileBody, Sender};
use crate::http::proto::Headers;
use crate::http::proto::server::{RequestId, Response};

/// Bytes a writer may post between two drives before it is told to wait: a writer outside
/// any callback (a task relaying a small body) need not wait for the drive that is already
/// on its way.
const UNFLUSHED_SLACK: usize = 64 * 1024;

/// The answer a handler gives while its connection is calling it (issue 16): the
/// connection frames it as soon as the call returns, instead of it being posted to the
/// mailbox and run in the drive's next round (on the pipelined hello path that was a post,
/// a queue slot and three moves of the `Response` a request). One per server and core:
/// handler calls on a core do not overlap, and each call has a number, so an answer given
/// later (by a responder kept for later) or during another call is posted as before.
#[derive(Debug, Default)]
pub(crate) struct DirectAnswer {
    /// The handler call running now (0: none); calls are numbered from 1.
    running: Cell<u64>,
    /// The number of the last call begun.
    calls: Cell<u64>,
    /// The call whose answer `answer` holds.
    answered_in: Cell<u64>,
    answer: RefCell<Option<Response>>,
}

impl DirectAnswer {
    /// A handler call begins; it ends when the returned [`Call`] is dropped (also when the
    /// handler panics).
    pub(crate) fn begin(self: &Rc<Self>) -> Call {
        let number = self.calls.get() + 1;
        self.calls.set(number);
        Call {
            direct: Rc::clone(self),
            number,
            interrupted: self.running.replace(number),
        }
    }

    /// Whether an answer of handler call `call` is taken here now: that call is running
    /// and no other answer waits.
    fn accepts(&self, call: u64) -> bool {
        self.running.get() == call && self.answer.borrow().is_none()
    }

    /// Keeps `response` as the answer of call `call` (after [`DirectAnswer::accepts`]).
    fn put(&self, call: u64, response: Response) {
        *self.answer.borrow_mut() = Some(response);
        self.answered_in.set(call);
    }
}

/// A handler call in progress ([`DirectAnswer::begin`]). Dropping it ends the call: the
/// call it interrupted (if any) runs again, and an answer of this call still held here is
/// dropped (the handler panicked after answering: its connection is aborted).
pub(crate) struct Call {
    direct: Rc<DirectAnswer>,
    number: u64,
    interrupted: u64,
}

impl Call {
    /// The responder of this call: an answer given before the call ends is held here.
    pub(crate) fn responder(&self, responder: Responder) -> Responder {
        responder.with_direct(Rc::clone(&self.direct), self.number)
    }

    /// Whether the call answered here (the handler returned); then
    /// [`Call::take_with`].
    pub(crate) fn answered(&self) -> bool {
        self.direct.answered_in.get() == self.number && self.direct.answer.borrow().is_some()
    }

    /// Runs `f` on the answer (it may take it, or frame it where it is), then drops it.
    pub(crate) fn take_with<T>(&self, f: impl FnOnce(&mut Option<Response>) -> T) -> T {
        let mut answer = self.direct.answer.borrow_mut();
        let result = f(&mut answer);
        *answer = None;
        self.direct.answered_in.set(0);
        result
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let direct = &self.direct;
        direct.running.set(self.interrupted);
        if direct.answered_in.get() == self.number {
            // Not taken: the handler unwound. (`try_`: never a second panic while
            // unwinding; every borrow of the slot ends before the call does.)
            if let Ok(mut answer) = direct.answer.try_borrow_mut() {
                *answer = None;
                direct.answered_in.set(0);
            }
        }
    }
}

/// The right to answer one request, exactly once. Dropping it unanswered sends a 500.
///
/// It is `'static` and may be moved into a future or a callback to answer later (after an
/// upstream call or a timer); responses still leave in request order.
#[must_use = "a request must be answered; dropping the Responder sends 500"]
pub struct Responder {
    sender: Sender,
    id: RequestId,
    done: bool,
    /// Whether the access log takes [`Responder::note_upstream`].
    notes: bool,
    /// Where an answer given during handler call `.1` goes instead of the mailbox.
    direct: Option<(Rc<DirectAnswer>, u64)>,
}

impl Responder {
    pub(crate) fn new(sender: Sender, id: RequestId, notes: bool) -> Self {
        Self {
            sender,
            id,
            done: false,
            notes,
            direct: None,
        }
    }

    /// The responder of handler call `call` (see [`DirectAnswer`]): an answer given before
    /// that call ends goes to `direct`.
    fn with_direct(mut self, direct: Rc<DirectAnswer>, call: u64) -> Self {
        self.direct = Some((direct, call));
        self
    }

    /// Whether [`Responder::note_upstream`] is heard (an access log file is on): a handler
    /// can skip preparing a note nobody reads.
    #[must_use]
    pub fn wants_upstream_note(&self) -> bool {
        self.notes
    }

    /// Tells the access log which upstream answered (or failed) this request and how long
    /// it took: its line shows them. Call before answering; a no-op without an access log
    /// file (then `upstream` is not even formatted).
    pub fn note_upstream(&self, upstream: &dyn fmt::Display, time: std::time::Duration) {
        if self.notes {
            let note = super::UpstreamNote {
                upstream: upstream.to_string(),
                time,
            };
            let _ = self.sender.post(Command::Upstream(self.id, Box::new(note)));
        }
    }

    /// Sends `response` with its whole body.
    pub fn send(mut self, response: Response) {
        self.done = true;
        // Nothing posted earlier waits (it would run first): the connection takes the
        // answer as its handler call returns.
        if let Some((direct, call)) = &self.direct
            && self.sender.pending() == 0
            && direct.accepts(*call)
        {
            direct.put(*call, response);
            return;
        }
        let _ = self.sender.post(Command::Respond(self.id, response));
    }

    /// Sends the head of `response` (its body is ignored) and returns a writer for the
    /// body. The body is sized if the response has a Content-Length, chunked otherwise
    /// (close-delimited for an HTTP/1.0 client).
    pub fn stream(mut self, response: Response) -> BodyWriter {
        self.done = true;
        let _ = self.sender.post(Command::Head(self.id, response));
        BodyWriter {
            sender: self.sender.clone(),
            id: self.id,
            finished: false,
        }
    }

    /// Switches protocols: sends `response` (a `101 Switching Protocols` with the new
    /// protocol's `Upgrade` field; the server adds `Connection: Upgrade`) and, once it is
    /// out, hands the connection to `protocol`, with any bytes the client sent after its
    /// request as its first input. Only a request that asked to upgrade (`Connection:
    /// upgrade` and `Upgrade`, HTTP/1.1, no body) may be answered so: for any other the
    /// client gets 500 and the connection closes. WebSocket does this for you:
    /// [`Request::upgrade_websocket`](super::Request::upgrade_websocket).
    pub fn upgrade(mut self, response: Response, protocol: impl ringwork::Protocol) {
        self.done = true;
        let _ = self
            .sender
            .post(Command::Upgrade(self.id, response, Box::new(protocol)));
    }

    /// Carries another protocol on this request's stream: HTTP/2 extended CONNECT (RFC
    /// 8441). Sends `response`'s head (a 2xx, no Content-Length) and runs `protocol` over the
    /// stream: the client's DATA is its input (its window reopens as the protocol takes
    /// more), what it sends goes out as DATA, its end is END_STREAM and an abort a
    /// RST_STREAM. Only a request with `:protocol` on HTTP/2
    /// ([`Request::protocol`](super::Request::protocol)) may be answered so: any other gets
    /// 500. WebSocket does this for you:
    /// [`Request::upgrade_websocket`](super::Request::upgrade_websocket).
    pub fn carry(
        mut self,
        response: Response,
        protocol: impl crate::kit::nested::StreamProtocol + 'static,
    ) {
        self.done = true;
        let _ = self
            .sender
            .post(Command::Carry(self.id, response, Box::new(protocol)));
    }

    /// Whether the client is gone (the answer would be discarded).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.done {
            let _ = self
                .sender
                .post(Command::Respond(self.id, Response::error(500)));
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder").field("id", &self.id).finish()
    }
}

/// The body of a streamed response. Write pieces while [`BodyWriter::write`] returns true;
/// then wait for [`BodyWriter::ready`]. Call [`BodyWriter::finish`] at the end; dropping
/// it unfinished closes the connection (the client sees a truncated body).
pub struct BodyWriter {
    sender: Sender,
    id: RequestId,
    finished: bool,
}

/// The connection closed: nothing more can be written.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
#[error("the connection is closed")]
pub struct Closed;

impl BodyWriter {
    /// Queues `data`; whether more may be written now (false: wait for
    /// [`BodyWriter::ready`]). Bytes past a declared Content-Length are dropped and the
    /// connection is closed after the response.
    pub fn write(&mut self, data: impl Into<Bytes>) -> bool {
        let data = data.into();
        let len = data.len();
        if self.sender.post(Command::Body(self.id, data)).is_ok() {
            self.sender.status_mut().unflushed += len;
        }
        self.is_ready()
    }

    /// Whether writing now would not grow the connection's buffer past its high
    /// watermark: this response is the oldest unanswered one, the transport is writable,
    /// and less than 64 KiB written since the connection last ran waits for it. Also true
    /// once the response was answered in full and handed on (nothing is left to wait for;
    /// later writes are ignored).
    #[must_use]
    pub fn is_ready(&self) -> bool {
        !self.sender.is_closed() && ready(&self.sender.status(), self.id)
    }

    /// Waits until [`BodyWriter::is_ready`].
    ///
    /// # Errors
    /// [`Closed`] once the connection is gone.
    pub async fn ready(&self) -> Result<(), Closed> {
        self.when_ready().await
    }

    /// [`BodyWriter::ready`] as a future that does not borrow the writer: for code that
    /// keeps writing from elsewhere (a proxy's upstream callbacks) while a task waits.
    ///
    /// # Errors
    /// [`Closed`] once the connection is gone.
    pub fn when_ready(&self) -> impl Future<Output = Result<(), Closed>> + 'static {
        let (sender, id) = (self.sender.clone(), self.id);
        poll_fn(move |cx| {
            sender.poll_status(cx, |status, closed| {
                if closed {
                    Some(Err(Closed))
                } else {
                    ready(status, id).then_some(Ok(()))
                }
            })
        })
    }

    /// Offers `len` bytes of `file` from `offset` as the next body bytes, for the kernel to
    /// send ([`ringwork::Context::send_file`]: sendfile(2), never through this process's
    /// memory). `true` once it took them; `false` when it cannot (TLS, HTTP/2, a chunked or
    /// close-delimited body, a range longer than the Content-Length left, an earlier answer
    /// still going out, the in-memory transport, not Linux, the connection gone): nothing
    /// was sent then, so write the bytes instead. Best called once
    /// [`BodyWriter::ready`] said this answer goes out.
    ///
    /// The file is read when sent: if it ends before the range does, the connection closes
    /// (the client sees a short body, never other bytes).
    pub async fn send_file(
        &mut self,
        file: &Rc<ringwork::fs::File>,
        offset: u64,
        len: u64,
    ) -> bool {
        let taken = Rc::new(Cell::new(None));
        let body = FileBody {
            file: Rc::clone(file),
            offset,
            len,
            taken: Rc::clone(&taken),
        };
        if self.sender.post(Command::File(self.id, body)).is_err() {
            return false;
        }
        // The command runs in the connection's next drive, which wakes status waiters.
        poll_fn(|cx| {
            self.sender
                .poll_status(cx, |_, closed| taken.get().or(closed.then_some(false)))
        })
        .await
    }

    /// Ends the body.
    pub fn finish(self) {
        self.finish_with_trailers(Headers::new());
    }

    /// Ends a chunked body with trailer fields (dropped for other framings).
    pub fn finish_with_trailers(mut self, trailers: Headers) {
        self.finished = true;
        let _ = self.sender.post(Command::Finish(self.id, Some(trailers)));
    }
}

/// Whether the writer of `id` may write, by what its connection published.
fn ready(status: &super::conn::WriteStatus, id: RequestId) -> bool {
    match &status.multiplexed {
        // HTTP/2: streams are independent; a writer waits for its own window, or for the
        // connection when the transport is full.
        Some(streams) => {
            streams.writable && !streams.waiting.contains(&id) && status.unflushed < UNFLUSHED_SLACK
        }
        None => {
            id < status.answered_below
                || (status.ready == Some(id) && status.unflushed < UNFLUSHED_SLACK)
        }
    }
}

impl Drop for BodyWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.sender.post(Command::Finish(self.id, None));
        }
    }
}

impl fmt::Debug for BodyWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyWriter").field("id", &self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::http::server::conn::WriteStatus;
    use crate::kit::adapter::Mailbox;

    fn responder(mailbox: &Mailbox<Command, WriteStatus>, call: &Call) -> Responder {
        call.responder(Responder::new(mailbox.sender(), RequestId(7), true))
    }

    /// What the mailbox holds, in order: `R` an answer, `U` an upstream note.
    fn posted(mailbox: &Mailbox<Command, WriteStatus>) -> String {
        std::iter::from_fn(|| mailbox.take())
            .map(|command| match command {
                Command::Respond(..) => 'R',
                Command::Upstream(..) => 'U',
                _ => '?',
            })
            .collect()
    }

    #[test]
    fn an_answer_given_during_its_call_waits_for_the_connection_not_in_the_mailbox() {
        let mailbox = Mailbox::new();
        let direct = Rc::new(DirectAnswer::default());
        let call = direct.begin();
        responder(&mailbox, &call).send(Response::new(204));
        assert_eq!(posted(&mailbox), "");
        assert!(call.answered());
        let status = call.take_with(|slot| slot.take().map(|response| response.status()));
        assert_eq!(status, Some(204));
        assert!(!call.answered(), "taken once");
    }

    #[test]
    fn answers_after_a_post_after_the_call_or_during_another_call_are_posted() {
        let mailbox = Mailbox::new();
        let direct = Rc::new(DirectAnswer::default());
        // A note posted first runs first: the answer queues behind it.
        let call = direct.begin();
        let respond = responder(&mailbox, &call);
        respond.note_upstream(&"10.0.0.1:80", Duration::from_millis(3));
        respond.send(Response::new(200));
        assert!(!call.answered());
        drop(call);
        assert_eq!(posted(&mailbox), "UR");
        // Kept for later: the call has ended.
        let call = direct.begin();
        let kept = responder(&mailbox, &call);
        drop(call);
        kept.send(Response::new(200));
        assert_eq!(posted(&mailbox), "R");
        // Answered while another call runs (one nested in it): not that call's answer.
        let outer = direct.begin();
        let outer_respond = responder(&mailbox, &outer);
        let inner = direct.begin();
        outer_respond.send(Response::new(200));
        assert!(!inner.answered());
        drop(inner);
        assert!(!outer.answered());
        assert_eq!(posted(&mailbox), "R");
    }

    #[test]
    fn an_answer_left_by_a_call_that_unwound_is_dropped() {
        let mailbox = Mailbox::new();
        let direct = Rc::new(DirectAnswer::default());
        let call = direct.begin();
        responder(&mailbox, &call).send(Response::new(200));
        // The handler panicked after answering: the call ends without the answer taken.
        drop(call);
        let next = direct.begin();
        responder(&mailbox, &next).send(Response::new(204));
        assert!(next.answered(), "the slot is free again");
        assert_eq!(posted(&mailbox), "");
    }
}
