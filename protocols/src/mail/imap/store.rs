//! One IMAP session's view of a user's Maildir (blocking: the engine glue runs it on the
//! thread pool, one command at a time).
//!
//! Owns: [`Session`]: mailboxes (INBOX is `USER/`, a Maildir++ folder `NAME` is
//! `USER/.NAME/`), the persistent UIDs (`ringwork-uidlist` in each Maildir: UIDVALIDITY,
//! the next UID and one UID per message name, rewritten atomically under a lock file so
//! two sessions never hand out one UID twice), flags in file names (`:2,DFRST`), the move
//! of `new/` to `cur/` when a mailbox is selected read-write (those messages are
//! `\Recent` for this session), and every mailbox command: LIST/LSUB, CREATE, DELETE,
//! RENAME, STATUS, SELECT/EXAMINE, APPEND, FETCH, STORE, SEARCH, COPY, EXPUNGE, CLOSE,
//! NOOP/CHECK/IDLE's rescans (`EXISTS`, `EXPUNGE` and flag changes made by others).
//! Contract: [`Session::run`] answers a command; a FETCH answer may come in parts
//! ([`Outcome::more`]): [`Session::fetch_more`] gives the next, at most about
//! [`FETCH_CHUNK`] bytes each, message bodies streamed from their files.
//! Does not: check credentials; hold message bodies in memory beyond one chunk (SEARCH
//! reads one message at a time; APPEND's literal is the machine's).

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::message::{self, contains_ignore_case};
use super::parse::{
    Command, FetchItem, Flags, SearchKey, Section, SequenceSet, StatusItem, StoreMode,
    format_date_time, push_string,
};
use super::proto::{Response, Selection, Status};
use crate::mail::maildir;

/// The size a FETCH answer's part grows to before it is handed out.
pub const FETCH_CHUNK: usize = 256 * 1024;

const UIDLIST: &str = "ringwork-uidlist";
const LOCK: &str = "ringwork-uidlist.lock";

/// One message of the selected mailbox.
#[derive(Clone, Debug)]
struct Message {
    uid: u32,
    /// The unique name (before `:2,`).
    base: String,
    path: PathBuf,
    flags: Flags,
    recent: bool,
    size: u64,
    /// Seconds since the epoch (the file's modification time).
    date: i64,
}

/// A Maildir's messages with UIDs assigned.
#[derive(Debug)]
struct Scan {
    validity: u32,
    next_uid: u32,
    messages: Vec<Message>,
}

#[derive(Debug)]
struct Selected {
    dir: PathBuf,
    read_only: bool,
    validity: u32,
    next_uid: u32,
    messages: Vec<Message>,
}

/// A piece of a FETCH answer: bytes, or a range of a message file.
#[derive(Debug)]
enum Piece {
    Data(Vec<u8>),
    File(Arc<File>, u64, u64),
}

#[derive(Debug)]
struct FetchCursor {
    /// Messages still to answer (0-based).
    queue: VecDeque<usize>,
    items: Vec<FetchItem>,
    pieces: VecDeque<Piece>,
}

/// The result of a command: the machine's [`Response`], and whether a FETCH has more
/// parts (then `response` carries a part's data only).
#[derive(Debug)]
pub struct Outcome {
    /// What to send.
    pub response: Response,
    /// A FETCH part: call [`Session::fetch_more`] once it went out.
    pub more: bool,
}

impl Outcome {
    fn done(data: Vec<u8>, status: Status, text: impl Into<String>) -> Outcome {
        Outcome {
            response: Response::new(data, status, text),
            more: false,
        }
    }
}

/// One logged-in session over `root` (the user's Maildir).
#[derive(Debug)]
pub struct Session {
    root: PathBuf,
    host: String,
    selected: Option<Selected>,
    fetch: Option<FetchCursor>,
}

fn io_no(what: &str, e: &io::Error) -> Outcome {
    Outcome::done(Vec::new(), Status::No, format!("[SERVERBUG] {what}: {e}"))
}

impl Session {
    /// A session over the Maildir `root`; `host` names new files.
    #[must_use]
    pub fn new(root: PathBuf, host: &str) -> Session {
        Session {
            root,
            host: host.to_owned(),
            selected: None,
            fetch: None,
        }
    }

    /// The folder of mailbox `name`, if the name is acceptable.
    fn folder(&self, name: &str) -> Option<PathBuf> {
        if name == "INBOX" {
            return Some(self.root.clone());
        }
        let ok = !name.is_empty()
            && name.len() <= 200
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..")
            && !name.eq_ignore_ascii_case("INBOX")
            && name
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\' || b == b' ');
        ok.then(|| self.root.join(format!(".{name}")))
    }

    fn existing(&self, name: &str) -> Option<PathBuf> {
        let dir = self.folder(name)?;
        (name == "INBOX" || dir.join("cur").is_dir()).then_some(dir)
    }

    /// Answers a mailbox command (authenticated or selected state).
    pub fn run(&mut self, command: Command) -> Outcome {
        self.fetch = None;
        match command {
            Command::List {
                reference,
                pattern,
                lsub,
            } => self.list(&reference, &pattern, lsub),
            Command::Create(name) => self.create(&name),
            Command::Delete(name) => self.delete(&name),
            Command::Rename(from, to) => self.rename(&from, &to),
            Command::Subscribe(_, subscribe) => Outcome::done(
                Vec::new(),
                Status::Ok,
                if subscribe {
                    "SUBSCRIBE completed"
                } else {
                    "UNSUBSCRIBE completed"
                },
            ),
            Command::Status { mailbox, items } => self.status(&mailbox, &items),
            Command::Select { mailbox, read_only } => self.select(&mailbox, read_only),
            Command::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&mailbox, flags, date, &message),
            Command::Noop | Command::Check => {
                let text = if matches!(command, Command::Check) {
                    "CHECK completed"
                } else {
                    "NOOP completed"
                };
                let data = self.refresh();
                Outcome::done(data, Status::Ok, text)
            }
            Command::Close | Command::Unselect => {
                let close = matches!(command, Command::Close);
                if close && let Some(sel) = self.selected.as_mut().filter(|s| !s.read_only) {
                    let doomed: Vec<PathBuf> = sel
                        .messages
                        .iter()
                        .filter(|m| m.flags.has(Flags::DELETED))
                        .map(|m| m.path.clone())
                        .collect();
                    if let Err(e) = maildir::remove(&doomed) {
                        return io_no("removing messages", &e);
                    }
                }
                self.selected = None;
                let mut outcome = Outcome::done(Vec::new(), Status::Ok, "Mailbox closed");
                outcome.response.selection = Selection::None;
                outcome
            }
            Command::Expunge(uids) => self.expunge(uids.as_ref()),
            Command::Search { uid, key } => self.search(uid, &key),
            Command::Fetch { uid, set, items } => self.fetch(uid, &set, items),
            Command::Store {
                uid,
                set,
                mode,
                silent,
                flags,
            } => self.store(uid, &set, mode, silent, flags),
            Command::Copy { uid, set, mailbox } => self.copy(uid, &set, &mailbox),
            _ => Outcome::done(Vec::new(), Status::Bad, "Not a mailbox command"),
        }
    }

    /// IDLE's rescan: the changes since the last one, as untagged data (empty: none).
    pub fn idle_poll(&mut self) -> Vec<u8> {
        self.refresh()
    }

    fn list(&self, reference: &str, pattern: &str, lsub: bool) -> Outcome {
        let verb = if lsub { "LSUB" } else { "LIST" };
        let mut data = Vec::new();
        if pattern.is_empty() {
            data.extend_from_slice(format!("* {verb} (\\Noselect) \".\" \"\"\r\n").as_bytes());
            return Outcome::done(data, Status::Ok, format!("{verb} completed"));
        }
        let full = format!("{reference}{pattern}");
        let mut names = vec!["INBOX".to_owned()];
        if let Ok(entries) = fs::read_dir(&self.root) {
            let mut folders: Vec<String> = entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("cur").is_dir())
                .filter_map(|e| e.file_name().to_str()?.strip_prefix('.').map(str::to_owned))
                .filter(|n| !n.is_empty())
                .collect();
            folders.sort();
            names.extend(folders);
        }
        for name in names {
            let candidate = if name == "INBOX" && full.eq_ignore_ascii_case("inbox") {
                true
            } else {
                wildcard(full.as_bytes(), name.as_bytes())
            };
            if candidate {
                data.extend_from_slice(format!("* {verb} () \".\" ").as_bytes());
                push_string(&mut data, name.as_bytes());
                data.extend_from_slice(b"\r\n");
            }
        }
        Outcome::done(data, Status::Ok, format!("{verb} completed"))
    }

    fn create(&self, name: &str) -> Outcome {
        let Some(dir) = self.folder(name).filter(|_| name != "INBOX") else {
            return Outcome::done(Vec::new(), Status::No, "[CANNOT] Bad mailbox name");
        };
        if dir.exists() {
            return Outcome::done(Vec::new(), Status::No, "[ALREADYEXISTS] Mailbox exists");
        }
        match maildir::create(&dir) {
            Ok(()) => Outcome::done(Vec::new(), Status::Ok, "CREATE completed"),
            Err(e) => io_no("creating", &e),
        }
    }

    fn delete(&mut self, name: &str) -> Outcome {
        let Some(dir) = self.existing(name).filter(|_| name != "INBOX") else {
            return Outcome::done(Vec::new(), Status::No, "[NONEXISTENT] No such mailbox");
        };
        if self.selected.as_ref().is_some_and(|s| s.dir == dir) {
            return Outcome::done(Vec::new(), Status::No, "[INUSE] Mailbox selected");
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Outcome::done(Vec::new(), Status::Ok, "DELETE completed"),
            Err(e) => io_no("deleting", &e),
        }
    }

    fn rename(&self, from: &str, to: &str) -> Outcome {
        let (Some(src), Some(dst)) = (
            self.existing(from).filter(|_| from != "INBOX"),
            self.folder(to).filter(|_| to != "INBOX"),
        ) else {
            return Outcome::done(Vec::new(), Status::No, "[CANNOT] Cannot rename that");
        };
        if dst.exists() {
            return Outcome::done(Vec::new(), Status::No, "[ALREADYEXISTS] Mailbox exists");
        }
        match fs::rename(&src, &dst) {
            Ok(()) => Outcome::done(Vec::new(), Status::Ok, "RENAME completed"),
            Err(e) => io_no("renaming", &e),
        }
    }

    fn status(&self, name: &str, items: &[StatusItem]) -> Outcome {
        let Some(dir) = self.existing(name) else {
            return Outcome::done(Vec::new(), Status::No, "[NONEXISTENT] No such mailbox");
        };
        let scan = match scan(&dir, false) {
            Ok(scan) => scan,
            Err(e) => return io_no("reading the mailbox", &e),
        };
        let mut parts = Vec::new();
        for item in items {
            let (label, value) = match item {
                StatusItem::Messages => ("MESSAGES", scan.messages.len() as u64),
                StatusItem::Recent => (
                    "RECENT",
                    scan.messages.iter().filter(|m| m.recent).count() as u64,
                ),
                StatusItem::UidNext => ("UIDNEXT", u64::from(scan.next_uid)),
                StatusItem::UidValidity => ("UIDVALIDITY", u64::from(scan.validity)),
                StatusItem::Unseen => (
                    "UNSEEN",
                    scan.messages
                        .iter()
                        .filter(|m| !m.flags.has(Flags::SEEN))
                        .count() as u64,
                ),
            };
            parts.push(format!("{label} {value}"));
        }
        let mut data = b"* STATUS ".to_vec();
        push_string(&mut data, name.as_bytes());
        data.extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Outcome::done(data, Status::Ok, "STATUS completed")
    }

    fn select(&mut self, name: &str, read_only: bool) -> Outcome {
        self.selected = None;
        let failed = |status, text: &str| {
            let mut outcome = Outcome::done(Vec::new(), status, text);
            outcome.response.selection = Selection::None;
            outcome
        };
        let Some(dir) = self.existing(name) else {
            return failed(Status::No, "[NONEXISTENT] No such mailbox");
        };
        let scan = match scan(&dir, !read_only) {
            Ok(scan) => scan,
            Err(e) => return failed(Status::No, &format!("[SERVERBUG] {e}")),
        };
        let all = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
        let mut data = format!("* FLAGS ({all})\r\n").into_bytes();
        let permanent = if read_only { "" } else { all };
        data.extend_from_slice(
            format!("* OK [PERMANENTFLAGS ({permanent})] Flags permitted\r\n").as_bytes(),
        );
        data.extend_from_slice(format!("* {} EXISTS\r\n", scan.messages.len()).as_bytes());
        let recent = scan.messages.iter().filter(|m| m.recent).count();
        data.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
        if let Some(i) = scan.messages.iter().position(|m| !m.flags.has(Flags::SEEN)) {
            data.extend_from_slice(format!("* OK [UNSEEN {}] First unseen\r\n", i + 1).as_bytes());
        }
        data.extend_from_slice(
            format!(
                "* OK [UIDVALIDITY {}] UIDs valid\r\n* OK [UIDNEXT {}] Predicted next UID\r\n",
                scan.validity, scan.next_uid
            )
            .as_bytes(),
        );
        self.selected = Some(Selected {
            dir,
            read_only,
            validity: scan.validity,
            next_uid: scan.next_uid,
            messages: scan.messages,
        });
        let (code, verb) = if read_only {
            ("READ-ONLY", "EXAMINE")
        } else {
            ("READ-WRITE", "SELECT")
        };
        let mut outcome = Outcome::done(data, Status::Ok, format!("[{code}] {verb} completed"));
        outcome.response.selection = Selection::Selected;
        outcome
    }

    /// Rescans the selected mailbox: `EXPUNGE` for messages gone, `FETCH (FLAGS ..)` for
    /// flags changed elsewhere, `EXISTS`/`RECENT` for new ones.
    fn refresh(&mut self) -> Vec<u8> {
        let mut data = Vec::new();
        let Some(sel) = self.selected.as_mut() else {
            return data;
        };
        let Ok(scan) = scan(&sel.dir, !sel.read_only) else {
            return data;
        };
        let by_uid: HashMap<u32, &Message> = scan.messages.iter().map(|m| (m.uid, m)).collect();
        for i in (0..sel.messages.len()).rev() {
            if !by_uid.contains_key(&sel.messages[i].uid) {
                sel.messages.remove(i);
                data.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
            }
        }
        for (i, m) in sel.messages.iter_mut().enumerate() {
            if let Some(now) = by_uid.get(&m.uid) {
                m.path.clone_from(&now.path);
                if now.flags != m.flags {
                    m.flags = now.flags;
                    data.extend_from_slice(
                        format!(
                            "* {} FETCH (FLAGS ({}))\r\n",
                            i + 1,
                            m.flags.imap_list(m.recent)
                        )
                        .as_bytes(),
                    );
                }
            }
        }
        let known = sel.messages.last().map_or(0, |m| m.uid);
        let fresh: Vec<Message> = scan
            .messages
            .into_iter()
            .filter(|m| m.uid > known)
            .collect();
        if !fresh.is_empty() {
            sel.messages.extend(fresh);
            data.extend_from_slice(format!("* {} EXISTS\r\n", sel.messages.len()).as_bytes());
            let recent = sel.messages.iter().filter(|m| m.recent).count();
            data.extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
        }
        sel.validity = scan.validity;
        sel.next_uid = scan.next_uid;
        data
    }

    fn append(&mut self, name: &str, flags: Flags, date: Option<i64>, message: &[u8]) -> Outcome {
        let Some(dir) = self.existing(name) else {
            return Outcome::done(Vec::new(), Status::No, "[TRYCREATE] No such mailbox");
        };
        let written = (|| -> io::Result<String> {
            let path = maildir::deliver(&dir, &self.host, &[message])?;
            let base = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            let path = if flags == Flags::default() {
                path
            } else {
                let cur = dir
                    .join("cur")
                    .join(format!("{base}:2,{}", flags.maildir_letters()));
                fs::rename(&path, &cur)?;
                cur
            };
            if let Some(seconds) = date {
                let time = UNIX_EPOCH + Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_modified(time)?;
            }
            Ok(base)
        })();
        let base = match written {
            Ok(base) => base,
            Err(e) => return io_no("appending", &e),
        };
        let scan = match scan(&dir, false) {
            Ok(scan) => scan,
            Err(e) => return io_no("reading the mailbox", &e),
        };
        let uid = scan
            .messages
            .iter()
            .find(|m| m.base == base)
            .map_or(0, |m| m.uid);
        let selected_here = self.selected.as_ref().is_some_and(|s| s.dir == dir);
        let data = if selected_here {
            self.refresh()
        } else {
            Vec::new()
        };
        Outcome::done(
            data,
            Status::Ok,
            format!("[APPENDUID {} {uid}] APPEND completed", scan.validity),
        )
    }

    /// The selected messages a set names (0-based, in order).
    fn resolve(&self, uid: bool, set: &SequenceSet) -> Vec<usize> {
        let Some(sel) = &self.selected else {
            return Vec::new();
        };
        let last = if uid {
            sel.messages.last().map_or(0, |m| m.uid)
        } else {
            u32::try_from(sel.messages.len()).unwrap_or(u32::MAX)
        };
        sel.messages
            .iter()
            .enumerate()
            .filter(|(i, m)| {
                let n = if uid {
                    m.uid
                } else {
                    u32::try_from(i + 1).unwrap_or(u32::MAX)
                };
                set.contains(n, last)
            })
            .map(|(i, _)| i)
            .collect()
    }

    fn expunge(&mut self, uids: Option<&SequenceSet>) -> Outcome {
        let chosen = uids.map(|set| self.resolve(true, set));
        let Some(sel) = self.selected.as_mut() else {
            return Outcome::done(Vec::new(), Status::Bad, "No mailbox selected");
        };
        if sel.read_only {
            return Outcome::done(Vec::new(), Status::No, "[READ-ONLY] Mailbox is read-only");
        }
        let doomed: Vec<usize> = (0..sel.messages.len())
            .filter(|&i| sel.messages[i].flags.has(Flags::DELETED))
            .filter(|i| chosen.as_ref().is_none_or(|c| c.contains(i)))
            .collect();
        let paths: Vec<PathBuf> = doomed
            .iter()
            .map(|&i| sel.messages[i].path.clone())
            .collect();
        if let Err(e) = maildir::remove(&paths) {
            return io_no("removing messages", &e);
        }
        let mut data = Vec::new();
        for &i in doomed.iter().rev() {
            sel.messages.remove(i);
            data.extend_from_slice(format!("* {} EXPUNGE\r\n", i + 1).as_bytes());
        }
        Outcome::done(data, Status::Ok, "EXPUNGE completed")
    }

    fn store(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        mode: StoreMode,
        silent: bool,
        flags: Flags,
    ) -> Outcome {
        let chosen = self.resolve(uid, set);
        let Some(sel) = self.selected.as_mut() else {
            return Outcome::done(Vec::new(), Status::Bad, "No mailbox selected");
        };
        if sel.read_only {
            return Outcome::done(Vec::new(), Status::No, "[READ-ONLY] Mailbox is read-only");
        }
        let mut data = Vec::new();
        for i in chosen {
            let m = &mut sel.messages[i];
            // Another session changed its flags: add to or take from those.
            relocate(&sel.dir, m);
            let wanted = match mode {
                StoreMode::Replace => flags,
                StoreMode::Add => m.flags.with(flags),
                StoreMode::Remove => m.flags.without(flags),
            };
            if let Err(e) = set_flags(&sel.dir, m, wanted) {
                return io_no("storing flags", &e);
            }
            if !silent {
                let uid_part = if uid {
                    format!(" UID {}", m.uid)
                } else {
                    String::new()
                };
                data.extend_from_slice(
                    format!(
                        "* {} FETCH (FLAGS ({}){uid_part})\r\n",
                        i + 1,
                        m.flags.imap_list(m.recent)
                    )
                    .as_bytes(),
                );
            }
        }
        Outcome::done(data, Status::Ok, "STORE completed")
    }

    fn copy(&mut self, uid: bool, set: &SequenceSet, mailbox: &str) -> Outcome {
        let chosen = self.resolve(uid, set);
        let Some(dest) = self.existing(mailbox) else {
            return Outcome::done(Vec::new(), Status::No, "[TRYCREATE] No such mailbox");
        };
        let Some(sel) = self.selected.as_ref() else {
            return Outcome::done(Vec::new(), Status::Bad, "No mailbox selected");
        };
        let mut copies = Vec::new();
        for &i in &chosen {
            let m = &sel.messages[i];
            match copy_file(&m.path, &dest, &self.host, m.flags) {
                Ok(base) => copies.push((m.uid, base)),
                Err(e) => return io_no("copying", &e),
            }
        }
        let scan = match scan(&dest, false) {
            Ok(scan) => scan,
            Err(e) => return io_no("reading the mailbox", &e),
        };
        let uid_of: HashMap<&str, u32> = scan
            .messages
            .iter()
            .map(|m| (m.base.as_str(), m.uid))
            .collect();
        let source: Vec<String> = copies.iter().map(|(u, _)| u.to_string()).collect();
        let target: Vec<String> = copies
            .iter()
            .map(|(_, b)| uid_of.get(b.as_str()).copied().unwrap_or(0).to_string())
            .collect();
        let selected_here = sel.dir == dest;
        let data = if selected_here {
            self.refresh()
        } else {
            Vec::new()
        };
        let code = if copies.is_empty() {
            String::new()
        } else {
            format!(
                "[COPYUID {} {} {}] ",
                scan.validity,
                source.join(","),
                target.join(",")
            )
        };
        Outcome::done(data, Status::Ok, format!("{code}COPY completed"))
    }

    fn search(&mut self, uid: bool, key: &SearchKey) -> Outcome {
        let Some(sel) = self.selected.as_ref() else {
            return Outcome::done(Vec::new(), Status::Bad, "No mailbox selected");
        };
        let last_uid = sel.messages.last().map_or(0, |m| m.uid);
        let count = u32::try_from(sel.messages.len()).unwrap_or(u32::MAX);
        let mut hits = Vec::new();
        for (i, m) in sel.messages.iter().enumerate() {
            let seq = u32::try_from(i + 1).unwrap_or(u32::MAX);
            let mut content = Content::new(&m.path);
            let context = SearchContext {
                message: m,
                seq,
                last_uid,
                count,
            };
            if matches(key, &context, &mut content) {
                hits.push(if uid { m.uid } else { seq });
            }
        }
        let mut data = b"* SEARCH".to_vec();
        for hit in hits {
            data.extend_from_slice(format!(" {hit}").as_bytes());
        }
        data.extend_from_slice(b"\r\n");
        Outcome::done(data, Status::Ok, "SEARCH completed")
    }

    fn fetch(&mut self, uid: bool, set: &SequenceSet, items: Vec<FetchItem>) -> Outcome {
        let queue: VecDeque<usize> = self.resolve(uid, set).into();
        self.fetch = Some(FetchCursor {
            queue,
            items,
            pieces: VecDeque::new(),
        });
        self.fetch_more()
    }

    /// The next part of a FETCH answer (the first comes from [`Session::run`]).
    pub fn fetch_more(&mut self) -> Outcome {
        let mut out = Vec::new();
        while out.len() < FETCH_CHUNK {
            let Some(cursor) = self.fetch.as_mut() else {
                break;
            };
            match cursor.pieces.pop_front() {
                Some(Piece::Data(data)) => out.extend_from_slice(&data),
                Some(Piece::File(file, start, len)) => {
                    let room = (FETCH_CHUNK - out.len()).max(16 * 1024) as u64;
                    let take = len.min(room);
                    let before = out.len();
                    let read = (|| -> io::Result<()> {
                        let mut f: &File = &file;
                        f.seek(SeekFrom::Start(start))?;
                        f.take(take).read_to_end(&mut out)?;
                        Ok(())
                    })();
                    let got = (out.len() - before) as u64;
                    if let Err(e) = read {
                        self.fetch = None;
                        return io_no("reading a message", &e);
                    }
                    if got < take {
                        // The file shrank under us: pad so the literal's length holds.
                        out.resize(before + usize::try_from(take).unwrap_or(0), b' ');
                    }
                    if len > take {
                        cursor
                            .pieces
                            .push_front(Piece::File(file, start + take, len - take));
                    }
                }
                None => {
                    let Some(i) = cursor.queue.pop_front() else {
                        self.fetch = None;
                        break;
                    };
                    let items = cursor.items.clone();
                    match self.render(i, &items) {
                        Ok(pieces) => {
                            if let Some(cursor) = self.fetch.as_mut() {
                                cursor.pieces = pieces;
                            }
                        }
                        Err(e) => {
                            self.fetch = None;
                            return io_no("reading a message", &e);
                        }
                    }
                }
            }
        }
        let more = self.fetch.is_some();
        Outcome {
            response: Response::new(out, Status::Ok, "FETCH completed"),
            more,
        }
    }

    /// One message's `* N FETCH (...)` line, as pieces.
    fn render(&mut self, index: usize, items: &[FetchItem]) -> io::Result<VecDeque<Piece>> {
        let Some(sel) = self.selected.as_mut() else {
            return Ok(VecDeque::new());
        };
        let sets_seen = !sel.read_only
            && items
                .iter()
                .any(|i| matches!(i, FetchItem::Body { peek: false, .. }));
        let m = &mut sel.messages[index];
        relocate(&sel.dir, m);
        let mut flags_changed = false;
        if sets_seen && !m.flags.has(Flags::SEEN) {
            set_flags(&sel.dir, m, m.flags.with(Flags::SEEN))?;
            flags_changed = true;
        }
        let m = m.clone();
        let mut file: Option<Arc<File>> = None;
        let mut header: Option<Vec<u8>> = None;
        let mut pieces = VecDeque::new();
        let mut line = format!("* {} FETCH (", index + 1).into_bytes();
        let mut first = true;
        let mut items: Vec<FetchItem> = items.to_vec();
        if flags_changed && !items.contains(&FetchItem::Flags) {
            items.push(FetchItem::Flags);
        }
        for item in &items {
            if !first {
                line.push(b' ');
            }
            first = false;
            match item {
                FetchItem::Flags => {
                    line.extend_from_slice(
                        format!("FLAGS ({})", m.flags.imap_list(m.recent)).as_bytes(),
                    );
                }
                FetchItem::Uid => line.extend_from_slice(format!("UID {}", m.uid).as_bytes()),
                FetchItem::InternalDate => line.extend_from_slice(
                    format!("INTERNALDATE {}", format_date_time(m.date)).as_bytes(),
                ),
                FetchItem::Size => {
                    line.extend_from_slice(format!("RFC822.SIZE {}", m.size).as_bytes());
                }
                FetchItem::Envelope => {
                    let header = cached_header(&m.path, &mut file, &mut header)?;
                    line.extend_from_slice(b"ENVELOPE ");
                    line.extend(message::envelope(header));
                }
                FetchItem::Body {
                    section,
                    partial,
                    name,
                    ..
                } => {
                    let label = match name {
                        Some(name) => (*name).to_owned(),
                        None => format!("BODY[{}]", section_label(section)),
                    };
                    let origin = partial.map(|(o, _)| format!("<{o}>")).unwrap_or_default();
                    line.extend_from_slice(format!("{label}{origin} ").as_bytes());
                    let header_len = cached_header(&m.path, &mut file, &mut header)?.len() as u64;
                    // The section: computed bytes, or a range of the file.
                    let (data, range): (Option<Vec<u8>>, (u64, u64)) = match section {
                        Section::Full => (None, (0, m.size)),
                        Section::Text => (None, (header_len.min(m.size), m.size)),
                        Section::Header => (header.clone(), (0, 0)),
                        Section::HeaderFields { fields, not } => (
                            Some(message::header_fields(
                                header.as_deref().unwrap_or_default(),
                                fields,
                                *not,
                            )),
                            (0, 0),
                        ),
                    };
                    let total = data.as_ref().map_or(range.1 - range.0, |d| d.len() as u64);
                    let (skip, len) = match partial {
                        Some((origin, count)) => {
                            let skip = u64::from(*origin).min(total);
                            (skip, u64::from(*count).min(total - skip))
                        }
                        None => (0, total),
                    };
                    line.extend_from_slice(format!("{{{len}}}\r\n").as_bytes());
                    match data {
                        Some(data) => {
                            let start = usize::try_from(skip).unwrap_or(0);
                            let end = start + usize::try_from(len).unwrap_or(0);
                            line.extend_from_slice(&data[start..end]);
                        }
                        None => {
                            pieces.push_back(Piece::Data(std::mem::take(&mut line)));
                            let file = open_cached(&m.path, &mut file)?;
                            pieces.push_back(Piece::File(file, range.0 + skip, len));
                        }
                    }
                }
            }
        }
        line.extend_from_slice(b")\r\n");
        pieces.push_back(Piece::Data(line));
        Ok(pieces)
    }
}

fn section_label(section: &Section) -> String {
    match section {
        Section::Full => String::new(),
        Section::Header => "HEADER".into(),
        Section::Text => "TEXT".into(),
        Section::HeaderFields { fields, not } => format!(
            "HEADER.FIELDS{} ({})",
            if *not { ".NOT" } else { "" },
            fields.join(" ")
        ),
    }
}

fn open_cached(path: &Path, file: &mut Option<Arc<File>>) -> io::Result<Arc<File>> {
    if let Some(f) = file {
        return Ok(Arc::clone(f));
    }
    let f = Arc::new(File::open(path)?);
    *file = Some(Arc::clone(&f));
    Ok(f)
}

fn cached_header<'a>(
    path: &Path,
    file: &mut Option<Arc<File>>,
    header: &'a mut Option<Vec<u8>>,
) -> io::Result<&'a [u8]> {
    if header.is_none() {
        let f = open_cached(path, file)?;
        let mut reader: &File = &f;
        reader.seek(SeekFrom::Start(0))?;
        *header = Some(message::read_header(&mut reader)?);
    }
    Ok(header.as_deref().unwrap_or_default())
}

/// A message's bytes, read once when a search key needs them.
struct Content<'a> {
    path: &'a Path,
    data: Option<Vec<u8>>,
}

impl<'a> Content<'a> {
    fn new(path: &'a Path) -> Self {
        Content { path, data: None }
    }

    fn get(&mut self) -> &[u8] {
        if self.data.is_none() {
            self.data = Some(fs::read(self.path).unwrap_or_default());
        }
        self.data.as_deref().unwrap_or_default()
    }

    fn split(&mut self) -> (&[u8], &[u8]) {
        let data = self.get();
        let end = message::header_end(data, 0).unwrap_or(data.len());
        data.split_at(end)
    }
}

struct SearchContext<'a> {
    message: &'a Message,
    seq: u32,
    last_uid: u32,
    count: u32,
}

fn matches(key: &SearchKey, cx: &SearchContext<'_>, content: &mut Content<'_>) -> bool {
    let m = cx.message;
    let day = m.date.div_euclid(86_400);
    match key {
        SearchKey::And(keys) => keys.iter().all(|k| matches(k, cx, content)),
        SearchKey::Or(a, b) => matches(a, cx, content) || matches(b, cx, content),
        SearchKey::Not(k) => !matches(k, cx, content),
        SearchKey::All => true,
        SearchKey::Flag(flag, set) => m.flags.has(*flag) == *set,
        SearchKey::Recent => m.recent,
        SearchKey::New => m.recent && !m.flags.has(Flags::SEEN),
        SearchKey::Header(name, needle) => {
            let (header, _) = content.split();
            let value = message::fields_joined(header, name);
            // HEADER f "" matches every message that has the field.
            (needle.is_empty() && message::field(header, name).is_some())
                || (!needle.is_empty() && contains_ignore_case(&value, needle))
        }
        SearchKey::Body(needle) => contains_ignore_case(content.split().1, needle),
        SearchKey::Text(needle) => contains_ignore_case(content.get(), needle),
        SearchKey::Before(d) => day < *d,
        SearchKey::On(d) => day == *d,
        SearchKey::Since(d) => day >= *d,
        SearchKey::Larger(n) => m.size > *n,
        SearchKey::Smaller(n) => m.size < *n,
        SearchKey::Uid(set) => set.contains(m.uid, cx.last_uid),
        SearchKey::Sequence(set) => set.contains(cx.seq, cx.count),
    }
}

/// IMAP's LIST wildcards: `*` matches anything, `%` anything but the delimiter `.`.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match pattern.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|i| wildcard(rest, &name[i..])),
        Some((b'%', rest)) => {
            let stop = name.iter().position(|&b| b == b'.').unwrap_or(name.len());
            (0..=stop).any(|i| wildcard(rest, &name[i..]))
        }
        Some((&c, rest)) => name.first() == Some(&c) && wildcard(rest, &name[1..]),
    }
}

/// Renames `m`'s file to carry `flags` (into `cur/`). A file renamed meanwhile by
/// another session (its flags changed) is found again by its unique name.
fn set_flags(dir: &Path, m: &mut Message, flags: Flags) -> io::Result<()> {
    if flags == m.flags && m.path.parent().is_some_and(|p| p.ends_with("cur")) {
        return Ok(());
    }
    let path = dir
        .join("cur")
        .join(format!("{}:2,{}", m.base, flags.maildir_letters()));
    let renamed = match fs::rename(&m.path, &path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match find(dir, &m.base) {
            Some(now) => fs::rename(&now, &path),
            None => Err(e),
        },
        other => other,
    };
    renamed.map_err(|e| io::Error::new(e.kind(), format!("renaming {}: {e}", m.path.display())))?;
    m.path = path;
    m.flags = flags;
    Ok(())
}

/// Follows a message whose file another session renamed (its flags changed): its path
/// and flags as they are now.
fn relocate(dir: &Path, m: &mut Message) {
    if !m.path.exists()
        && let Some(now) = find(dir, &m.base)
    {
        let name = now.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        m.flags = Flags::from_maildir(name.split_once(':').map_or("", |(_, info)| info));
        m.path = now;
    }
}

/// The current file of the message named `base` in `cur/` or `new/`.
fn find(dir: &Path, base: &str) -> Option<PathBuf> {
    ["cur", "new"].iter().find_map(|sub| {
        fs::read_dir(dir.join(sub)).ok()?.find_map(|item| {
            let item = item.ok()?;
            let name = item.file_name().into_string().ok()?;
            let matches = name == base || name.strip_prefix(base)?.starts_with(':');
            matches.then(|| item.path())
        })
    })
}

/// Copies the message at `src` into the Maildir `dest` (durably, like a delivery) with
/// `flags`; returns the new unique name.
fn copy_file(src: &Path, dest: &Path, host: &str, flags: Flags) -> io::Result<String> {
    maildir::create(dest)?;
    let name = maildir::unique_name(host);
    let tmp = dest.join("tmp").join(&name);
    let done = (|| {
        fs::copy(src, &tmp)?;
        File::open(&tmp)?.sync_all()?;
        let cur = dest
            .join("cur")
            .join(format!("{name}:2,{}", flags.maildir_letters()));
        fs::rename(&tmp, &cur)?;
        File::open(dest.join("cur"))?.sync_all()
    })();
    if let Err(e) = done {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("copying {} into {}: {e}", src.display(), dest.display()),
        ));
    }
    Ok(name)
}

/// The persistent UIDs of a Maildir.
#[derive(Debug)]
struct UidList {
    validity: u32,
    next: u32,
    uids: HashMap<String, u32>,
}

fn load_uidlist(dir: &Path) -> io::Result<Option<UidList>> {
    let text = match fs::read_to_string(dir.join(UIDLIST)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut lines = text.lines();
    let mut head = lines.next().unwrap_or_default().split(' ');
    let (Some("ringwork-uidlist"), Some("1"), Some(validity), Some(next)) =
        (head.next(), head.next(), head.next(), head.next())
    else {
        // Unreadable: start over with a new UIDVALIDITY (clients resync).
        return Ok(None);
    };
    let (Ok(validity), Ok(next)) = (validity.parse(), next.parse()) else {
        return Ok(None);
    };
    let mut uids = HashMap::new();
    for line in lines {
        if let Some((uid, base)) = line.split_once(' ')
            && let Ok(uid) = uid.parse::<u32>()
        {
            uids.insert(base.to_owned(), uid);
        }
    }
    Ok(Some(UidList {
        validity,
        next,
        uids,
    }))
}

/// Writes the list atomically: a temporary file, fsynced, renamed over the old one.
fn save_uidlist(dir: &Path, list: &UidList) -> io::Result<()> {
    let mut entries: Vec<(&String, &u32)> = list.uids.iter().collect();
    entries.sort_by_key(|(_, uid)| **uid);
    let mut text = format!("ringwork-uidlist 1 {} {}\n", list.validity, list.next);
    for (base, uid) in entries {
        text.push_str(&format!("{uid} {base}\n"));
    }
    let tmp = dir.join(format!("{UIDLIST}.tmp"));
    {
        let mut file = File::create(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, dir.join(UIDLIST))?;
    File::open(dir)?.sync_all()
}

/// Holds the Maildir's UID list lock (flock on `ringwork-uidlist.lock`) until dropped.
#[cfg(unix)]
fn lock(dir: &Path) -> io::Result<nix::fcntl::Flock<File>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, errno)| io::Error::from(errno))
}

/// No lock where flock(2) is missing: sessions of one user must not overlap there.
#[cfg(not(unix))]
fn lock(dir: &Path) -> io::Result<()> {
    let _ = dir;
    Ok(())
}

/// Lists the Maildir `dir` with UIDs (assigning new ones, persisted, under the lock);
/// `move_new` moves `new/` into `cur/` (those are `\Recent`; without the move, the
/// messages still in `new/` are).
fn scan(dir: &Path, move_new: bool) -> io::Result<Scan> {
    maildir::create(dir)?;
    let lock = lock(dir)?;
    let mut list = load_uidlist(dir)?.unwrap_or_else(|| UidList {
        validity: u32::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                & 0x7fff_ffff,
        )
        .unwrap_or(1)
        .max(1),
        next: 1,
        uids: HashMap::new(),
    });
    let mut messages = Vec::new();
    // cur/ first: what moves out of new/ below must not be listed twice.
    for sub in ["cur", "new"] {
        let folder = dir.join(sub);
        for item in fs::read_dir(&folder)? {
            let item = item?;
            let Ok(name) = item.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let (base, info) = name.split_once(':').unwrap_or((&name, ""));
            let base = base.to_owned();
            let mut path = item.path();
            let recent = sub == "new";
            if recent && move_new {
                let moved = dir
                    .join("cur")
                    .join(format!("{base}:2,{}", &info.get(2..).unwrap_or("")));
                match fs::rename(&path, &moved) {
                    Ok(()) => path = moved,
                    // Another session moved it first: it is not recent for us.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
            }
            let meta = match fs::metadata(&path) {
                Ok(meta) if meta.is_file() => meta,
                Ok(_) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let date = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
            messages.push(Message {
                uid: 0,
                base,
                path,
                flags: Flags::from_maildir(info),
                recent,
                size: meta.len(),
                date,
            });
        }
    }
    // New names get UIDs in name order (Maildir names start with the delivery time).
    messages.sort_by(|a, b| a.base.cmp(&b.base));
    let mut changed = false;
    for m in &mut messages {
        match list.uids.get(&m.base) {
            Some(&uid) => m.uid = uid,
            None => {
                m.uid = list.next;
                list.next += 1;
                list.uids.insert(m.base.clone(), m.uid);
                changed = true;
            }
        }
    }
    let before = list.uids.len();
    let live: std::collections::HashSet<&str> = messages.iter().map(|m| m.base.as_str()).collect();
    list.uids.retain(|base, _| live.contains(base.as_str()));
    changed |= list.uids.len() != before;
    if changed || !dir.join(UIDLIST).exists() {
        save_uidlist(dir, &list)?;
    }
    drop(lock);
    messages.sort_by_key(|m| m.uid);
    Ok(Scan {
        validity: list.validity,
        next_uid: list.next,
        messages,
    })
}

#[cfg(test)]
mod tests;
