//! `ringwork passwd --file FILE USER`: adds or replaces a user of a password file
//! (Argon2id hashes, `ringwork_protocols::cred::PasswordFile`).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Args;
use ringwork_protocols::cred::PasswordFile;

/// `ringwork passwd`.
#[derive(Debug, Args)]
pub(crate) struct Passwd {
    /// The password file (created if missing; written atomically, mode 0600).
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
    /// The user to add or replace (letters, digits and . _ - + @).
    user: String,
}

/// Reads the password (a line of stdin; on a terminal, with echo off via `stty`), hashes
/// it and writes the file.
pub(crate) fn run(passwd: &Passwd) -> Result<(), String> {
    let mut file = PasswordFile::load(&passwd.file, true).map_err(|e| e.to_string())?;
    let password = read_password().map_err(|e| format!("reading the password: {e}"))?;
    if password.is_empty() {
        return Err("empty password refused".to_owned());
    }
    let replaced = file.contains(&passwd.user);
    file.set_password(&passwd.user, password.as_bytes())
        .map_err(|e| e.to_string())?;
    file.save(&passwd.file).map_err(|e| e.to_string())?;
    let verb = if replaced { "replaced" } else { "added" };
    // A failed status line on stderr is not worth failing the command for.
    let _ = writeln!(
        std::io::stderr(),
        "ringwork: {verb} {} in {}",
        passwd.user,
        passwd.file.display()
    );
    Ok(())
}

fn read_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let tty = stdin.is_terminal();
    if tty {
        let _ = write!(std::io::stderr(), "Password: ");
        let _ = std::process::Command::new("stty").arg("-echo").status();
    }
    let mut line = String::new();
    let result = stdin.lock().read_line(&mut line);
    if tty {
        let _ = std::process::Command::new("stty").arg("echo").status();
        let _ = writeln!(std::io::stderr());
    }
    result?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
