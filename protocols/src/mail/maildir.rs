//! Maildir delivery (<https://cr.yp.to/proto/maildir.html>), durable: the message is
//! written to `tmp/`, fsynced, renamed into `new/`, and `new/` is fsynced, so that a
//! message acknowledged after [`deliver`] returned survives a crash and no half-written
//! one is ever in `new/`. Blocking: run it on the engine's thread pool.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Creates `dir/{tmp,new,cur}` if missing.
///
/// # Errors
/// The OS error, with the folder named.
pub fn create(dir: &Path) -> io::Result<()> {
    for sub in ["tmp", "new", "cur"] {
        let path = dir.join(sub);
        fs::create_dir_all(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))?;
    }
    Ok(())
}

/// A file name unique on this host: `SECONDS.M<micros>P<pid>Q<sequence>.HOST`.
#[must_use]
pub fn unique_name(host: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    let host: String = host
        .chars()
        .map(|c| if c == '/' || c == ':' { '_' } else { c })
        .collect();
    format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        seq,
        host
    )
}

/// Writes `parts` (concatenated) as one message into the Maildir `dir` (created if
/// missing); returns its path in `new/` once it and the directory entry are durable.
///
/// # Errors
/// The OS error, with the file named; a partial file is removed from `tmp/`.
pub fn deliver(dir: &Path, host: &str, parts: &[&[u8]]) -> io::Result<PathBuf> {
    create(dir)?;
    let name = unique_name(host);
    let tmp = dir.join("tmp").join(&name);
    let new = dir.join("new").join(&name);
    let context = |what: &str, path: &Path, e: io::Error| {
        io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
    };
    let written = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(context("writing", &tmp, e));
    }
    if let Err(e) = fs::rename(&tmp, &new) {
        let _ = fs::remove_file(&tmp);
        return Err(context("renaming into", &new, e));
    }
    let new_dir = dir.join("new");
    File::open(&new_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| context("syncing", &new_dir, e))?;
    Ok(new)
}
