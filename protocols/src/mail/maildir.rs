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

/// One message of a Maildir: its file, unique id (the name before any `:2,` info) and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The file, in `new/` or `cur/`.
    pub path: PathBuf,
    /// The unique name (without the `:2,FLAGS` part).
    pub uid: String,
    /// Its size in bytes.
    pub size: u64,
}

/// The messages of the Maildir `dir` (`new/` and `cur/`), oldest first by name; a missing
/// Maildir is an empty one.
///
/// # Errors
/// The OS error, with the folder named.
pub fn list(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for sub in ["cur", "new"] {
        let folder = dir.join(sub);
        let reading = match fs::read_dir(&folder) {
            Ok(reading) => reading,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{}: {e}", folder.display()),
                ));
            }
        };
        for item in reading {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            let meta = item.metadata()?;
            if name.starts_with('.') || !meta.is_file() {
                continue;
            }
            let uid: String = name
                .split(':')
                .next()
                .unwrap_or(&name)
                .chars()
                .filter(char::is_ascii_graphic)
                .take(70)
                .collect();
            entries.push(Entry {
                path: item.path(),
                uid,
                size: meta.len(),
            });
        }
    }
    entries.sort_by(|a, b| a.uid.cmp(&b.uid));
    Ok(entries)
}

/// Removes `paths` (already gone is fine) and fsyncs their folders.
///
/// # Errors
/// The first failure, with the file named; the others are still tried.
pub fn remove(paths: &[PathBuf]) -> io::Result<()> {
    let mut first = None;
    let mut folders: Vec<&Path> = Vec::new();
    for path in paths {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                first.get_or_insert(io::Error::new(
                    e.kind(),
                    format!("removing {}: {e}", path.display()),
                ));
            }
        }
        if let Some(parent) = path.parent()
            && !folders.contains(&parent)
        {
            folders.push(parent);
        }
    }
    for folder in folders {
        if let Err(e) = File::open(folder).and_then(|d| d.sync_all()) {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliver_list_and_remove() {
        let dir = std::env::temp_dir().join(format!("ringwork-maildir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(list(&dir).unwrap(), [], "a missing Maildir is empty");
        let first = deliver(&dir, "host/x:y", &[b"Head: 1\r\n", b"\r\nbody\r\n"]).unwrap();
        let second = deliver(&dir, "host", &[b"two"]).unwrap();
        assert!(first.starts_with(dir.join("new")) && second.starts_with(dir.join("new")));
        assert_eq!(fs::read(&first).unwrap(), b"Head: 1\r\n\r\nbody\r\n");
        assert_eq!(
            fs::read_dir(dir.join("tmp")).unwrap().count(),
            0,
            "tmp/ is left empty"
        );
        let name = first.file_name().unwrap().to_str().unwrap();
        assert!(name.ends_with(".host_x_y"), "{name}");

        let seen = dir.join("cur").join("0000.seen:2,S");
        fs::write(&seen, "old").unwrap();
        let entries = list(&dir).unwrap();
        let uids: Vec<&str> = entries.iter().map(|e| e.uid.as_str()).collect();
        assert_eq!(uids[0], "0000.seen", "the :2, info is not part of the uid");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].size, 3);

        remove(&[seen.clone(), first.clone(), dir.join("new").join("gone")]).unwrap();
        assert_eq!(list(&dir).unwrap().len(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }
}
