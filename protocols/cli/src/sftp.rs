//! `ringwork sftp-server --root DIR [--read-only]`: one SFTP session on stdin/stdout, as
//! OpenSSH's `sftp-server` (an SSH server's `sftp` subsystem spawns it; `sftp -D` runs it
//! directly). Logs go to stderr. Blocking file I/O: a process per session.

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use ringwork_protocols::kit::Machine;
use ringwork_protocols::ssh::sftp::{
    RootFs, RootFsConfig, SftpConfig, SftpEvent, SftpRoot, SftpServer,
};

/// `ringwork sftp-server`.
#[derive(Debug, Args)]
pub(crate) struct SftpServerArgs {
    /// The directory served: the client's `/`; no path resolves outside it.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// Refuse every change (write, create, remove, rename, mkdir, setstat) with
    /// SSH_FX_PERMISSION_DENIED.
    #[arg(long)]
    read_only: bool,
}

/// Serves one session until the client closes stdin (or a protocol error).
pub(crate) fn run(args: &SftpServerArgs) -> Result<(), String> {
    let root =
        SftpRoot::new(&args.root).map_err(|e| format!("--root {}: {e}", args.root.display()))?;
    let mut fs_config = RootFsConfig::default();
    fs_config.read_only = args.read_only;
    let fs = RootFs::new(root, fs_config);
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    serve(stdin, stdout, fs).map_err(|e| format!("sftp session: {e}"))
}

/// The blocking driver: read, feed the machine, run each request, write the answers.
fn serve(mut input: impl Read, mut output: impl Write, mut fs: RootFs) -> io::Result<()> {
    let mut server = SftpServer::new(SftpConfig::default());
    let mut buf = vec![0; 64 * 1024];
    loop {
        let now = Instant::now();
        let n = match input.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            server.handle_eof(now);
        } else {
            server.handle_input(&buf[..n], now);
        }
        // Requests are answered at once, so the machine never pauses reading for long:
        // each reply lets it parse what it held back.
        while let Some(event) = server.poll_event() {
            match event {
                SftpEvent::Request { id, request } => {
                    let response = fs.execute(request);
                    server.reply(id, &response);
                }
                SftpEvent::ProtocolError(why) => {
                    let _ = writeln!(io::stderr(), "ringwork sftp-server: closing: {why}");
                }
                _ => {}
            }
            while let Some(bytes) = server.poll_transmit(now) {
                output.write_all(&bytes)?;
            }
        }
        while let Some(bytes) = server.poll_transmit(now) {
            output.write_all(&bytes)?;
        }
        output.flush()?;
        if server.poll_close().is_some() {
            return Ok(());
        }
    }
}
