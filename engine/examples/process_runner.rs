//! Process runner: runs a command as a child of the reactor (Twisted's `spawnProcess`),
//! streams its stdout and stderr as they come, and prints its exit status.
//!
//! ```text
//! cargo run -p ringwork --example process_runner -- [--input TEXT] [--pty ROWSxCOLS] \
//!     [--term-after-ms N] -- COMMAND [ARGS...]
//! cargo run -p ringwork --example process_runner -- -- sh -c 'echo out; echo err >&2; exit 3'
//! cargo run -p ringwork --example process_runner -- --pty 24x80 -- sh -c 'tty; stty size'
//! ```
//!
//! `--input` is written to the child's stdin, which is then closed; `--term-after-ms` sends
//! it SIGTERM after that long. The runner exits with the child's exit code (128 + the
//! signal's number when a signal ended it). One reactor on this thread; the backend is
//! chosen by `RINGWORK_BACKEND`.

use std::error::Error;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use ringwork::signal::SIGTERM;
use ringwork::{
    DriverConfig, ExitStatus, LostReason, ProcessCommand, ProcessContext, ProcessProtocol, Reactor,
    ReactorConfig, WindowSize,
};

/// Runs a command on the ringwork reactor and streams its output.
#[derive(Debug, Parser)]
#[command(about)]
struct Args {
    /// Written to the child's stdin, which is then closed (default: closed at once).
    #[arg(long)]
    input: Option<String>,
    /// Run the child on a pseudo-terminal of this size (e.g. 24x80).
    #[arg(long, value_parser = parse_size)]
    pty: Option<WindowSize>,
    /// Send the child SIGTERM after this many milliseconds.
    #[arg(long)]
    term_after_ms: Option<u64>,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true)]
    command: Vec<String>,
}

fn parse_size(text: &str) -> Result<WindowSize, String> {
    let (rows, cols) = text.split_once('x').ok_or("expected ROWSxCOLS")?;
    let number = |s: &str| s.parse::<u16>().map_err(|e| format!("{s:?}: {e}"));
    Ok(WindowSize::new(number(rows)?, number(cols)?))
}

/// Copies the child's output to ours and remembers how it ended.
struct Runner {
    input: Option<String>,
    ended: std::rc::Rc<std::cell::Cell<Option<ExitStatus>>>,
}

impl ProcessProtocol for Runner {
    fn connection_made(&mut self, ctx: &mut ProcessContext<'_>) {
        eprintln!("[started pid {}]", ctx.pid().unwrap_or_default());
        if let Some(input) = self.input.take() {
            ctx.write_stdin(input.as_bytes());
        }
        ctx.close_stdin();
    }

    fn out_received(&mut self, _ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let mut out = std::io::stdout().lock();
        // A closed stdout only loses the copy; the child still runs to its end.
        let _ = out.write_all(data).and_then(|()| out.flush());
    }

    fn err_received(&mut self, _ctx: &mut ProcessContext<'_>, data: &[u8]) {
        let _ = std::io::stderr().lock().write_all(data);
    }

    fn in_connection_lost(&mut self, _ctx: &mut ProcessContext<'_>, reason: LostReason) {
        if !reason.is_clean() {
            eprintln!("[stdin: {reason}]");
        }
    }

    fn process_exited(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        eprintln!("[exited: {status}]");
    }

    fn process_ended(&mut self, _ctx: &mut ProcessContext<'_>, status: ExitStatus) {
        self.ended.set(Some(status));
    }
}

fn main() -> Result<ExitCode, Box<dyn Error>> {
    let args = Args::parse();
    let (program, rest) = args.command.split_first().ok_or("no command")?;
    let mut command = ProcessCommand::new(program).args(rest);
    if let Some(size) = args.pty {
        command = command.pty(size);
    }
    let mut reactor = Reactor::new(ReactorConfig::default(), DriverConfig::default())?;
    let ended = std::rc::Rc::default();
    let runner = Runner {
        input: args.input,
        ended: std::rc::Rc::clone(&ended),
    };
    let id = reactor.spawn_process(&command, runner)?;
    if let Some(ms) = args.term_after_ms {
        let handle = reactor.handle();
        let sleep = handle.sleep(Duration::from_millis(ms));
        reactor.spawn_local(async move {
            if sleep.await.is_ok() {
                handle.run(move |reactor| {
                    // It may have exited meanwhile.
                    let _ = reactor.with_process(id, |ctx| ctx.signal(SIGTERM));
                });
            }
        });
    }
    while ended.get().is_none() {
        reactor.turn(None)?;
    }
    let status = ended.get().ok_or("the child did not end")?;
    eprintln!("[ended: {status}]");
    let code = match status {
        ExitStatus::Exited(code) => code,
        ExitStatus::Signaled { signal, .. } => 128 + signal,
        _ => 255,
    };
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)))
}
