//! [`LogSink`]: log lines through a byte-bounded queue to one writer thread.
//!
//! Why a thread: a write to stderr blocks while the pipe behind it is full (a log collector
//! that stopped reading, a paused pager, a terminal on XOFF). Written from a core's thread,
//! such a write would stall every connection of that core for as long as the reader sleeps.
//! Here the calling thread only copies the line into the queue (formatting stays where it
//! was, in the caller); the writer thread alone waits on the output. When the queue is full
//! or the output fails (EPIPE once the reader is gone) lines are dropped and counted, and
//! the count is logged as soon as a write succeeds again.
//!
//! A sink made by [`LogSink::reopenable`] owns a file it can reopen on request
//! ([`LogSink::reopen`], logrotate's SIGUSR1 habit): the lines queued before the request go
//! to the file as it was, the ones after to the file at its path now.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use crate::error::EngineError;

/// Default byte budget of a [`LogSink`]'s queue.
pub const DEFAULT_QUEUE_BUDGET: usize = 1024 * 1024;

/// Bytes a queued line counts for beyond its own (the allocation and the queue slot), so
/// that a flood of empty lines is bounded too.
const LINE_OVERHEAD: usize = 64;

/// The writer thread writes what is queued in one `write` of at most about this many bytes.
const BATCH: usize = 64 * 1024;

/// A non-blocking, lossy destination for log lines: a queue (bounded in bytes) drained by a
/// writer thread into an output such as stderr.
///
/// Lines are sent through [`LogWriter`]s ([`LogSink::writer`]); sending never blocks and
/// never fails loudly: a line that does not fit the queue, or that the output refuses, is
/// counted in [`LogSink::lost`]. After a successful write following losses the writer
/// thread logs (through `tracing`, at WARN) how many lines were lost since it last said so.
/// Dropping the sink and all its writers ends the thread after it wrote what was queued;
/// the thread is never joined (it may be blocked on a full output for good).
#[derive(Clone)]
pub struct LogSink {
    writer: LogWriter,
    /// How a reopenable sink's file is opened again.
    reopen: Option<Arc<OpenFile>>,
}

impl std::fmt::Debug for LogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSink")
            .field("writer", &self.writer)
            .field("reopenable", &self.reopen.is_some())
            .finish()
    }
}

/// Opens a reopenable sink's file.
type OpenFile = dyn Fn() -> io::Result<std::fs::File> + Send + Sync;

/// Says how a reopen went (`None`: the new file is open).
type ReopenReport = dyn Fn(Option<&io::Error>) + Send;

/// A reopen request: the opener of the file.
struct ReopenFile(Arc<OpenFile>);

impl std::fmt::Debug for ReopenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReopenFile")
    }
}

/// Opens `path` for appending, creating it (mode 0640 on Unix) if missing.
fn open_append(path: &std::path::Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o640);
    options.open(path)
}

impl LogSink {
    /// A sink writing to the process's stderr with the default budget ([`DEFAULT_QUEUE_BUDGET`]).
    ///
    /// # Errors
    /// The writer thread could not be started.
    pub fn stderr() -> Result<Self, EngineError> {
        Self::new(io::stderr(), DEFAULT_QUEUE_BUDGET)
    }

    /// A sink writing to `output`; at most `budget` bytes (plus a small overhead per line)
    /// wait in its queue.
    ///
    /// # Errors
    /// The writer thread could not be started.
    pub fn new<W: Write + Send + 'static>(output: W, budget: usize) -> Result<Self, EngineError> {
        Self::start(output, None, budget)
    }

    /// A sink appending to the file at `path` (created if missing, mode 0640 on Unix), which
    /// [`LogSink::reopen`] opens again by its path: after logrotate renamed it, new lines go
    /// to a new file of that name. At most `budget` bytes wait in its queue.
    ///
    /// # Errors
    /// The file could not be opened, or the writer thread could not be started.
    pub fn reopenable(path: &std::path::Path, budget: usize) -> Result<Self, EngineError> {
        let open = {
            let path = path.to_owned();
            move || open_append(&path)
        };
        let file = open().map_err(|source| EngineError::Io {
            what: "opening a log file",
            source,
        })?;
        let path = path.to_owned();
        Self::start(
            file,
            Some(Box::new(move |error: Option<&io::Error>| match error {
                None => tracing::info!("log file reopened: {}", path.display()),
                Some(error) => tracing::error!(
                    "cannot reopen log file {}: {error}; still writing to the old one",
                    path.display()
                ),
            })),
            budget,
        )
        .map(|mut sink| {
            sink.reopen = Some(Arc::new(open));
            sink
        })
    }

    fn start<W: Write + Send + 'static>(
        output: W,
        report: Option<Box<ReopenReport>>,
        budget: usize,
    ) -> Result<Self, EngineError> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            lost: AtomicU64::new(0),
            budget,
        });
        let thread_shared = Arc::clone(&shared);
        thread::Builder::new()
            .name("ringwork-log".into())
            .spawn(move || drain(output, &rx, &thread_shared, report))
            .map_err(|source| EngineError::Io {
                what: "starting the log thread",
                source,
            })?;
        Ok(Self {
            writer: LogWriter { tx, shared },
            reopen: None,
        })
    }

    /// Asks the writer thread to reopen the file of a [`LogSink::reopenable`] sink after the
    /// lines queued so far (nothing for other sinks). It logs `log file reopened: PATH`
    /// (info) once the new file is open, or an error naming the path (the old file is kept).
    /// Never blocks.
    pub fn reopen(&self) {
        if let Some(open) = &self.reopen {
            let _ = self
                .writer
                .tx
                .send(Message::Reopen(Box::new(ReopenFile(Arc::clone(open)))));
        }
    }

    /// A handle that sends lines to this sink.
    #[must_use]
    pub fn writer(&self) -> LogWriter {
        self.writer.clone()
    }

    /// Lines lost so far (queue full, or the output failed).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.writer.lost()
    }

    /// Waits until the lines queued before this call have been written (or have failed),
    /// including the report of lines lost among them, for at most `timeout`. Returns whether
    /// that happened in time; it does not when the output is blocked (a full pipe nobody
    /// reads), and then the lines stay queued.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (ack, done) = crossbeam_channel::bounded(1);
        if self.writer.tx.send(Message::Flush(ack)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).is_ok()
    }
}

/// Sends lines to a [`LogSink`]; cheap to clone. Each `write` (or [`LogWriter::send`]) is one
/// record, normally a whole line ending in `\n`, as `tracing-subscriber`'s `fmt` layer
/// writes each event with one `write_all`.
///
/// Its [`io::Write`] implementation always reports success: a lost line is counted, not
/// returned as an error (an error would make `tracing-subscriber` print a complaint to
/// stderr with `eprintln!`, which panics once stderr is closed).
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: Sender<Message>,
    shared: Arc<Shared>,
}

impl LogWriter {
    /// Queues a copy of `line`; `false` if it was dropped instead (the queue is over its
    /// budget, or the writer thread is gone). Never blocks.
    pub fn send(&self, line: &[u8]) -> bool {
        let cost = line.len() + LINE_OVERHEAD;
        let before = self.shared.queued.fetch_add(cost, Ordering::Relaxed);
        if before + cost > self.shared.budget {
            self.shared.queued.fetch_sub(cost, Ordering::Relaxed);
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if self.tx.send(Message::Line(line.to_vec())).is_err() {
            self.shared.queued.fetch_sub(cost, Ordering::Relaxed);
            self.shared.lost.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Lines lost so far by the sink (all its writers).
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.shared.lost.load(Ordering::Relaxed)
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What the writers and the writer thread share.
#[derive(Debug)]
struct Shared {
    /// Bytes queued (with [`LINE_OVERHEAD`] each line), at most about `budget`.
    queued: AtomicUsize,
    /// Lines lost so far.
    lost: AtomicU64,
    budget: usize,
}

#[derive(Debug)]
enum Message {
    Line(Vec<u8>),
    /// Acknowledge once everything before it is written.
    Flush(Sender<()>),
    /// Write everything before it, then reopen the file ([`LogSink::reopen`]).
    Reopen(Box<ReopenFile>),
}

/// The writer thread: writes queued lines in batches until every sender is gone.
fn drain<W: Write + 'static>(
    mut output: W,
    rx: &Receiver<Message>,
    shared: &Shared,
    report: Option<Box<ReopenReport>>,
) {
    // A reopened file replaces `output` (only a reopenable sink, whose `W` is a File, gets
    // reopen requests).
    let mut reopened: Option<std::fs::File> = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut acks: Vec<Sender<()>> = Vec::new();
    let mut reported = 0;
    loop {
        // With a flush waiting, do not block: acknowledge it when nothing else is queued.
        let first = if acks.is_empty() {
            match rx.recv() {
                Ok(message) => message,
                Err(_) => break,
            }
        } else {
            match rx.try_recv() {
                Ok(message) => message,
                Err(TryRecvError::Empty) => {
                    acknowledge(&mut acks);
                    continue;
                }
                Err(TryRecvError::Disconnected) => break,
            }
        };
        let (mut lines, mut cost) = (0, 0);
        let mut next = Some(first);
        let mut reopen = None;
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => {
                    lines += 1;
                    cost += line.len() + LINE_OVERHEAD;
                    batch.extend_from_slice(&line);
                }
                Message::Flush(ack) => acks.push(ack),
                // The batch so far goes to the old file; the rest waits for the new one.
                Message::Reopen(open) => reopen = Some(open),
            }
            if batch.len() < BATCH && reopen.is_none() {
                next = rx.try_recv().ok();
            }
        }
        let written = batch.is_empty() || {
            let out: &mut dyn Write = match &mut reopened {
                Some(file) => file,
                None => &mut output,
            };
            out.write_all(&batch).and_then(|()| out.flush()).is_ok()
        };
        if let Some(open) = reopen {
            match (open.0)() {
                Ok(file) => {
                    reopened = Some(file);
                    if let Some(report) = &report {
                        report(None);
                    }
                }
                Err(error) => {
                    if let Some(report) = &report {
                        report(Some(&error));
                    }
                }
            }
        }
        shared.queued.fetch_sub(cost, Ordering::Relaxed);
        if !written {
            shared.lost.fetch_add(lines, Ordering::Relaxed);
        }
        batch.clear();
        if batch.capacity() > 4 * BATCH {
            batch.shrink_to(BATCH);
        }
        let lost = shared.lost.load(Ordering::Relaxed);
        if written && lost > reported {
            // The report goes through the queue like any line; a flush waiting now is
            // acknowledged once the report is written (next turn).
            tracing::warn!(
                lost = lost - reported,
                "log lines lost: the log output was full or failed"
            );
            reported = lost;
            continue;
        }
        acknowledge(&mut acks);
    }
    match &mut reopened {
        Some(file) => {
            let _ = file.flush();
        }
        None => {
            let _ = output.flush();
        }
    }
    acknowledge(&mut acks);
}

fn acknowledge(acks: &mut Vec<Sender<()>>) {
    for ack in acks.drain(..) {
        let _ = ack.send(());
    }
}
