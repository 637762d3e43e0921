//! Where `ringwork`'s output goes: `tracing` events, panic messages and the few plain
//! messages (the self-signed certificate's path, a start-up error) all reach stderr through
//! one [`LogSink`], so no write of the process can panic or block a core.
//!
//! Owns: the `tracing-subscriber` set-up (`RUST_LOG` filter, default info), the panic hook,
//! and a limit on repeated warnings at sites that have none of their own.
//! Contract: a core's thread formats its event and queues the line; the sink's thread
//! writes it. When stderr is a full pipe nobody reads, or closed (the reader exited), lines
//! are dropped and counted, and the count is logged once writing works again. A WARN or
//! ERROR site that does not limit itself (one without a `suppressed` field, e.g. rustls's
//! warnings about a client's bad ClientHello, which reach `tracing` through the `log` crate)
//! writes at most one line per `--warn-interval` per thread; the next line it writes
//! carries `suppressed=N`, the count of lines it did not write. A site with a `signal`
//! field (what a SIGHUP reload logs) is not limited: each line answers an operator.
//! Does not: format events (the fmt layer does) or escape fields (the sites log peer bytes
//! through `ringwork::logging::escape`; rustls quotes them with `{:?}`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant};

use ringwork::EngineError;
use ringwork::logging::{LogSink, LogWriter, RateLimit};
use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long the end of the process waits for queued lines to reach stderr (a stderr that
/// nobody reads must not hold the exit up for long).
const EXIT_FLUSH: Duration = Duration::from_secs(1);

/// The process's log output (cheap to clone).
#[derive(Clone, Debug)]
pub struct Logging {
    sink: LogSink,
}

impl Logging {
    /// Starts the sink (writing to stderr, or appending to `file`: `--logfile`), installs the
    /// `tracing` subscriber (`RUST_LOG`, default info) and the panic hook. `interval` limits
    /// repeated warnings (see the module docs).
    ///
    /// # Errors
    /// The sink's thread could not be started.
    pub fn init(
        interval: Duration,
        file: Option<&std::path::Path>,
    ) -> Result<Logging, EngineError> {
        let sink = match file {
            Some(path) => LogSink::reopenable(path, ringwork::logging::DEFAULT_QUEUE_BUDGET)
                .map_err(|e| EngineError::Config {
                    what: format!("--logfile {}: {e}", path.display()),
                })?,
            None => LogSink::stderr()?,
        };
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(file.is_none() && io::stderr().is_terminal())
            .with_writer(Output {
                writer: sink.writer(),
                interval,
            })
            .init();
        let logging = Logging { sink };
        logging.install_panic_hook();
        Ok(logging)
    }

    /// Writes `text` (whole lines) to stderr after the log lines queued so far; never
    /// blocks, never fails (a line that cannot be written is counted as lost).
    pub fn say(&self, text: &str) {
        self.sink.writer().send(text.as_bytes());
    }

    /// The sink (to reopen a `--logfile` on SIGUSR1).
    pub fn sink(&self) -> LogSink {
        self.sink.clone()
    }

    /// Waits a little for queued lines to reach stderr (at the end of the process).
    pub fn finish(&self) {
        self.sink.flush(EXIT_FLUSH);
    }

    /// Panic messages go through the sink too: std's own hook writes to stderr directly,
    /// which blocks a core's thread on a full pipe (a protocol panic is caught and the core
    /// goes on, so its message must not stall it).
    fn install_panic_hook(&self) {
        let sink = self.sink.clone();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("<unnamed>");
            let mut text = format!("thread '{name}' {info}\n");
            let backtrace = std::backtrace::Backtrace::capture();
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                text.push_str(&format!("stack backtrace:\n{backtrace}\n"));
            }
            sink.writer().send(text.as_bytes());
            if name == "main" {
                // The process ends next: give the message its chance to be written.
                sink.flush(EXIT_FLUSH);
            }
        }));
    }
}

/// The fmt layer's writer: the sink, with the per-site limit on repeated warnings.
struct Output {
    writer: LogWriter,
    interval: Duration,
}

thread_local! {
    /// This thread's limiters of WARN and ERROR sites, by [`site`] (bounded by the number of
    /// log sites in the program).
    static SITES: RefCell<HashMap<u64, RateLimit>> = RefCell::new(HashMap::new());
}

/// A log site: its target, file and line (a `log` crate event has no callsite of its own).
fn site(meta: &Metadata<'_>) -> u64 {
    let mut hasher = DefaultHasher::new();
    (meta.target(), meta.file(), meta.line(), meta.name()).hash(&mut hasher);
    hasher.finish()
}

impl<'a> MakeWriter<'a> for Output {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            writer: &self.writer,
            verdict: Verdict::Write,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        // Levels compare by verbosity: WARN and ERROR are at most WARN. A site with a
        // `suppressed` field limits itself; one with a `signal` field answers an operator's
        // signal (a reload), rare by nature, and every one of its lines is wanted.
        let fields = meta.fields();
        let limited = *meta.level() <= Level::WARN
            && fields.field("suppressed").is_none()
            && fields.field("signal").is_none();
        let verdict = if limited {
            let now = Instant::now();
            let hit = SITES.with(|sites| {
                sites
                    .borrow_mut()
                    .entry(site(meta))
                    .or_insert_with(|| RateLimit::new(self.interval))
                    .hit(now)
            });
            match hit {
                None => Verdict::Skip,
                Some(0) => Verdict::Write,
                Some(suppressed) => Verdict::Count(suppressed),
            }
        } else {
            Verdict::Write
        };
        Line {
            writer: &self.writer,
            verdict,
        }
    }
}

/// What happens to one event's line.
#[derive(Clone, Copy, Debug)]
enum Verdict {
    Write,
    /// Over its site's limit: dropped.
    Skip,
    /// Written with ` suppressed=N` appended.
    Count(u64),
}

/// One event's line on its way to the sink.
struct Line<'a> {
    writer: &'a LogWriter,
    verdict: Verdict,
}

impl io::Write for Line<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.verdict {
            Verdict::Write => {
                self.writer.send(buf);
            }
            Verdict::Skip => {}
            Verdict::Count(suppressed) => {
                let text = buf.strip_suffix(b"\n").unwrap_or(buf);
                let mut line = Vec::with_capacity(text.len() + 24);
                line.extend_from_slice(text);
                line.extend_from_slice(format!(" suppressed={suppressed}\n").as_bytes());
                self.writer.send(&line);
            }
        }
        // Never an error: the fmt layer would report it with `eprintln!`, which panics
        // once stderr is closed.
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
