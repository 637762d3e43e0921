//! IMAP4rev1 command syntax (RFC 3501 §9), sans-IO: a command's lines and literals
//! ([`Part`]s, put together by the machine) become a [`Command`].
//!
//! Owns: the tokens (atoms, quoted strings, literals, parenthesized lists; an atom that
//! opens `[` runs to its `]`, so `BODY[HEADER.FIELDS (FROM)]<0.10>` is one atom), sequence
//! sets, fetch items, search keys, flags, dates, and the quoting of strings in responses.
//! Contract: [`parse`] never panics on any input; its error is the text of a `BAD`.
//! Does not: frame lines or literals (the machine does), or know mailboxes.

use bytes::Bytes;

/// One piece of a command as it arrived: a line (without its CRLF and without the
/// `{n}` that announced the literal after it) or a literal's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// Text of a line.
    Text(Bytes),
    /// A literal's octets.
    Literal(Bytes),
}

/// A token tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Atom(String),
    Str(Bytes),
    List(Vec<Value>),
}

/// A message number or UID in a set: a number or `*` (the largest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeqNumber {
    /// A number (1 or more).
    Number(u32),
    /// `*`.
    Last,
}

/// A sequence set: ranges, both ends included (in either order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNumber, SeqNumber)>);

impl SequenceSet {
    /// Whether `n` is in the set when `*` stands for `last`.
    #[must_use]
    pub fn contains(&self, n: u32, last: u32) -> bool {
        let value = |s: SeqNumber| match s {
            SeqNumber::Number(v) => v,
            SeqNumber::Last => last,
        };
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (value(a), value(b));
            (a.min(b)..=a.max(b)).contains(&n)
        })
    }
}

/// The system flags (RFC 3501 §2.3.2) a Maildir keeps in its file names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// `\Seen` (Maildir `S`).
    pub const SEEN: Flags = Flags(1);
    /// `\Answered` (Maildir `R`).
    pub const ANSWERED: Flags = Flags(2);
    /// `\Flagged` (Maildir `F`).
    pub const FLAGGED: Flags = Flags(4);
    /// `\Deleted` (Maildir `T`).
    pub const DELETED: Flags = Flags(8);
    /// `\Draft` (Maildir `D`).
    pub const DRAFT: Flags = Flags(16);

    /// Each flag: its IMAP name and Maildir letter, in the letters' ASCII order.
    pub const TABLE: [(Flags, &'static str, char); 5] = [
        (Flags::DRAFT, "\\Draft", 'D'),
        (Flags::FLAGGED, "\\Flagged", 'F'),
        (Flags::ANSWERED, "\\Answered", 'R'),
        (Flags::SEEN, "\\Seen", 'S'),
        (Flags::DELETED, "\\Deleted", 'T'),
    ];

    /// Whether every flag of `other` is set.
    #[must_use]
    pub fn has(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    /// `self` with `other` added.
    #[must_use]
    pub fn with(self, other: Flags) -> Flags {
        Flags(self.0 | other.0)
    }

    /// `self` without `other`.
    #[must_use]
    pub fn without(self, other: Flags) -> Flags {
        Flags(self.0 & !other.0)
    }

    /// The flags of a Maildir info part (`2,FRS`): unknown letters are ignored.
    #[must_use]
    pub fn from_maildir(info: &str) -> Flags {
        let letters = info.strip_prefix("2,").unwrap_or("");
        Flags::TABLE
            .iter()
            .filter(|(_, _, c)| letters.contains(*c))
            .fold(Flags::default(), |f, (flag, _, _)| f.with(*flag))
    }

    /// The Maildir letters, in ASCII order.
    #[must_use]
    pub fn maildir_letters(self) -> String {
        Flags::TABLE
            .iter()
            .filter(|(f, _, _)| self.has(*f))
            .map(|(_, _, c)| *c)
            .collect()
    }

    /// The IMAP list without parentheses (`\Seen \Flagged`); `recent` adds `\Recent`.
    #[must_use]
    pub fn imap_list(self, recent: bool) -> String {
        let mut names: Vec<&str> = Flags::TABLE
            .iter()
            .filter(|(f, _, _)| self.has(*f))
            .map(|(_, name, _)| *name)
            .collect();
        if recent {
            names.push("\\Recent");
        }
        names.join(" ")
    }

    fn from_name(name: &str) -> Option<Flags> {
        Flags::TABLE
            .iter()
            .find(|(_, n, _)| n.eq_ignore_ascii_case(name))
            .map(|(f, _, _)| *f)
    }
}

/// A body section (RFC 3501 §6.4.5; part numbers are not supported).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Section {
    /// `[]`: the whole message.
    Full,
    /// `[HEADER]`: the header and the blank line after it.
    Header,
    /// `[HEADER.FIELDS (..)]` or, with `not`, `[HEADER.FIELDS.NOT (..)]`.
    HeaderFields {
        /// The field names, as given.
        fields: Vec<String>,
        /// `.NOT`.
        not: bool,
    },
    /// `[TEXT]`: the body after the blank line.
    Text,
}

/// One fetch data item (RFC 3501 §6.4.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchItem {
    /// `FLAGS`.
    Flags,
    /// `UID`.
    Uid,
    /// `INTERNALDATE`.
    InternalDate,
    /// `RFC822.SIZE`.
    Size,
    /// `ENVELOPE`.
    Envelope,
    /// `BODY[..]`, `BODY.PEEK[..]`, and the RFC822 forms (`name` is what the response
    /// calls it: `RFC822`, `RFC822.HEADER`, `RFC822.TEXT`, or `None` for `BODY[..]`).
    Body {
        /// Which part.
        section: Section,
        /// `.PEEK` (or RFC822.HEADER): `\Seen` is not set.
        peek: bool,
        /// `<origin.count>`.
        partial: Option<(u32, u32)>,
        /// The RFC822 item's name, if it was one.
        name: Option<&'static str>,
    },
}

/// STORE's mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// `FLAGS`: replace.
    Replace,
    /// `+FLAGS`.
    Add,
    /// `-FLAGS`.
    Remove,
}

/// A search key (RFC 3501 §6.4.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SearchKey {
    /// All of them (the top level, or a parenthesized list).
    And(Vec<SearchKey>),
    /// `OR a b`.
    Or(Box<SearchKey>, Box<SearchKey>),
    /// `NOT a`.
    Not(Box<SearchKey>),
    /// `ALL`.
    All,
    /// A flag set (SEEN, DELETED, ...) or not set (UNSEEN, UNDELETED, ...).
    Flag(Flags, bool),
    /// `RECENT`.
    Recent,
    /// `NEW`: recent and unseen.
    New,
    /// A header field containing a string (FROM, TO, CC, BCC, SUBJECT, HEADER f s).
    Header(String, Vec<u8>),
    /// `BODY s`.
    Body(Vec<u8>),
    /// `TEXT s`: header or body.
    Text(Vec<u8>),
    /// Internal date before this day (days since 1970-01-01).
    Before(i64),
    /// Internal date on this day.
    On(i64),
    /// Internal date on or after this day.
    Since(i64),
    /// Larger than this many octets.
    Larger(u64),
    /// Smaller than this many octets.
    Smaller(u64),
    /// `UID set`.
    Uid(SequenceSet),
    /// A message number set.
    Sequence(SequenceSet),
}

/// A STATUS item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusItem {
    /// `MESSAGES`.
    Messages,
    /// `RECENT`.
    Recent,
    /// `UIDNEXT`.
    UidNext,
    /// `UIDVALIDITY`.
    UidValidity,
    /// `UNSEEN`.
    Unseen,
}

/// A parsed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `CAPABILITY`.
    Capability,
    /// `NOOP`.
    Noop,
    /// `LOGOUT`.
    Logout,
    /// `STARTTLS`.
    StartTls,
    /// `LOGIN user password`.
    Login {
        /// The user name.
        user: String,
        /// The password.
        password: Vec<u8>,
    },
    /// `AUTHENTICATE mechanism [initial-response]` (RFC 4959 SASL-IR).
    Authenticate {
        /// The mechanism, upper-cased.
        mechanism: String,
        /// The base64 initial response, if given.
        initial: Option<Vec<u8>>,
    },
    /// `SELECT` (`read_only`: `EXAMINE`).
    Select {
        /// The mailbox name.
        mailbox: String,
        /// EXAMINE.
        read_only: bool,
    },
    /// `CREATE`.
    Create(String),
    /// `DELETE`.
    Delete(String),
    /// `RENAME from to`.
    Rename(String, String),
    /// `SUBSCRIBE` (`true`) or `UNSUBSCRIBE`.
    Subscribe(String, bool),
    /// `LIST` or (`lsub`) `LSUB`.
    List {
        /// The reference name.
        reference: String,
        /// The pattern (`*` and `%` wildcards).
        pattern: String,
        /// LSUB.
        lsub: bool,
    },
    /// `STATUS mailbox (items)`.
    Status {
        /// The mailbox.
        mailbox: String,
        /// What to report.
        items: Vec<StatusItem>,
    },
    /// `APPEND mailbox [(flags)] [date] literal`.
    Append {
        /// The mailbox.
        mailbox: String,
        /// Flags to set.
        flags: Flags,
        /// The internal date, seconds since the epoch.
        date: Option<i64>,
        /// The message.
        message: Bytes,
    },
    /// `CHECK`.
    Check,
    /// `CLOSE`.
    Close,
    /// `UNSELECT` (RFC 3691).
    Unselect,
    /// `EXPUNGE`, or `UID EXPUNGE set` (RFC 4315).
    Expunge(Option<SequenceSet>),
    /// `[UID] SEARCH`.
    Search {
        /// UID SEARCH.
        uid: bool,
        /// The keys (all must match).
        key: SearchKey,
    },
    /// `[UID] FETCH set items`.
    Fetch {
        /// UID FETCH.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// What of them.
        items: Vec<FetchItem>,
    },
    /// `[UID] STORE set mode flags`.
    Store {
        /// UID STORE.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// Replace, add or remove.
        mode: StoreMode,
        /// `.SILENT`.
        silent: bool,
        /// The flags.
        flags: Flags,
    },
    /// `[UID] COPY set mailbox`.
    Copy {
        /// UID COPY.
        uid: bool,
        /// Which messages.
        set: SequenceSet,
        /// Where to.
        mailbox: String,
    },
    /// `IDLE` (RFC 2177).
    Idle,
}

/// The tag of a command line, if it has a valid one (for a `BAD` that names it).
#[must_use]
pub fn tag_of(line: &[u8]) -> Option<&str> {
    let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let tag = std::str::from_utf8(&line[..end]).ok()?;
    (!tag.is_empty() && tag.bytes().all(is_tag_char)).then_some(tag)
}

fn is_tag_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){%*\"\\+]".contains(&b)
}

/// A header field name's characters (RFC 5322 ftext, less the IMAP specials).
fn is_field_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b"(){\"\\:".contains(&b)
}

/// Parses a complete command (its tag first). The error is a `BAD`'s text.
///
/// # Errors
/// A syntax error, an unknown command or bad arguments.
pub fn parse(parts: &[Part]) -> Result<(String, Command), String> {
    let values = tokens(parts)?;
    let mut values = values.into_iter();
    let tag = match values.next() {
        Some(Value::Atom(tag)) if tag.bytes().all(is_tag_char) => tag,
        _ => return Err("Missing tag".into()),
    };
    let name = match values.next() {
        Some(Value::Atom(name)) => name.to_ascii_uppercase(),
        _ => return Err("Missing command".into()),
    };
    let args: Vec<Value> = values.collect();
    let command = command(&name, args)?;
    Ok((tag, command))
}

fn command(name: &str, args: Vec<Value>) -> Result<Command, String> {
    let mut args = Args(args.into_iter());
    let command = match name {
        "CAPABILITY" => Command::Capability,
        "NOOP" => Command::Noop,
        "LOGOUT" => Command::Logout,
        "STARTTLS" => Command::StartTls,
        "CHECK" => Command::Check,
        "CLOSE" => Command::Close,
        "UNSELECT" => Command::Unselect,
        "EXPUNGE" => Command::Expunge(None),
        "IDLE" => Command::Idle,
        "LOGIN" => Command::Login {
            user: args.string_utf8()?,
            password: args.string()?.to_vec(),
        },
        "AUTHENTICATE" => Command::Authenticate {
            mechanism: args.atom()?.to_ascii_uppercase(),
            initial: args.optional_string(),
        },
        "SELECT" | "EXAMINE" => Command::Select {
            mailbox: args.mailbox()?,
            read_only: name == "EXAMINE",
        },
        "CREATE" => Command::Create(args.mailbox()?),
        "DELETE" => Command::Delete(args.mailbox()?),
        "RENAME" => Command::Rename(args.mailbox()?, args.mailbox()?),
        "SUBSCRIBE" | "UNSUBSCRIBE" => Command::Subscribe(args.mailbox()?, name == "SUBSCRIBE"),
        "LIST" | "LSUB" => Command::List {
            reference: args.string_utf8()?,
            pattern: args.string_utf8()?,
            lsub: name == "LSUB",
        },
        "STATUS" => {
            let mailbox = args.mailbox()?;
            let items = args
                .list()?
                .into_iter()
                .map(|v| match atom(&v).map(str::to_ascii_uppercase).as_deref() {
                    Some("MESSAGES") => Ok(StatusItem::Messages),
                    Some("RECENT") => Ok(StatusItem::Recent),
                    Some("UIDNEXT") => Ok(StatusItem::UidNext),
                    Some("UIDVALIDITY") => Ok(StatusItem::UidValidity),
                    Some("UNSEEN") => Ok(StatusItem::Unseen),
                    _ => Err("Unknown STATUS item".to_owned()),
                })
                .collect::<Result<_, _>>()?;
            Command::Status { mailbox, items }
        }
        "APPEND" => append(&mut args)?,
        "SEARCH" => search(&mut args, false)?,
        "FETCH" => fetch(&mut args, false)?,
        "STORE" => store(&mut args, false)?,
        "COPY" => copy(&mut args, false)?,
        "UID" => {
            let sub = args.atom()?.to_ascii_uppercase();
            match sub.as_str() {
                "SEARCH" => search(&mut args, true)?,
                "FETCH" => fetch(&mut args, true)?,
                "STORE" => store(&mut args, true)?,
                "COPY" => copy(&mut args, true)?,
                "EXPUNGE" => Command::Expunge(Some(sequence_set(&args.atom()?)?)),
                _ => return Err("Unknown UID command".into()),
            }
        }
        _ => return Err("Unknown command".into()),
    };
    if args.0.next().is_some() {
        return Err("Too many arguments".into());
    }
    Ok(command)
}

struct Args(std::vec::IntoIter<Value>);

impl Args {
    fn next(&mut self) -> Result<Value, String> {
        self.0.next().ok_or_else(|| "Missing argument".to_owned())
    }

    fn atom(&mut self) -> Result<String, String> {
        match self.next()? {
            Value::Atom(a) => Ok(a),
            _ => Err("Expected an atom".into()),
        }
    }

    /// An astring: an atom, a quoted string or a literal.
    fn string(&mut self) -> Result<Bytes, String> {
        match self.next()? {
            Value::Atom(a) => Ok(Bytes::from(a.into_bytes())),
            Value::Str(s) => Ok(s),
            Value::List(_) => Err("Expected a string".into()),
        }
    }

    fn string_utf8(&mut self) -> Result<String, String> {
        String::from_utf8(self.string()?.to_vec()).map_err(|_| "Expected UTF-8".to_owned())
    }

    fn optional_string(&mut self) -> Option<Vec<u8>> {
        match self.0.next() {
            Some(Value::Atom(a)) => Some(a.into_bytes()),
            Some(Value::Str(s)) => Some(s.to_vec()),
            _ => None,
        }
    }

    /// A mailbox name: `INBOX` in any case is `INBOX`.
    fn mailbox(&mut self) -> Result<String, String> {
        let name = self.string_utf8()?;
        Ok(if name.eq_ignore_ascii_case("INBOX") {
            "INBOX".to_owned()
        } else {
            name
        })
    }

    fn list(&mut self) -> Result<Vec<Value>, String> {
        match self.next()? {
            Value::List(l) => Ok(l),
            _ => Err("Expected a parenthesized list".into()),
        }
    }
}

fn atom(value: &Value) -> Option<&str> {
    match value {
        Value::Atom(a) => Some(a),
        _ => None,
    }
}

fn append(args: &mut Args) -> Result<Command, String> {
    let mailbox = args.mailbox()?;
    let mut flags = Flags::default();
    let mut date = None;
    let mut next = args.next()?;
    if let Value::List(list) = &next {
        flags = flag_list(list)?;
        next = args.next()?;
    }
    if let Value::Str(text) = &next
        && !args.0.as_slice().is_empty()
    {
        let text = std::str::from_utf8(text).map_err(|_| "Bad date-time")?;
        date = Some(parse_date_time(text).ok_or("Bad date-time")?);
        next = args.next()?;
    }
    match next {
        Value::Str(message) => Ok(Command::Append {
            mailbox,
            flags,
            date,
            message,
        }),
        _ => Err("APPEND needs a literal".into()),
    }
}

fn flag_list(values: &[Value]) -> Result<Flags, String> {
    let mut flags = Flags::default();
    for v in values {
        let name = atom(v).ok_or("Bad flag")?;
        if let Some(flag) = Flags::from_name(name) {
            flags = flags.with(flag);
        } else if name.starts_with('\\') && !name.eq_ignore_ascii_case("\\Recent") {
            return Err(format!("Unknown system flag {name}"));
        }
        // Keywords are accepted and not kept (PERMANENTFLAGS lists none).
    }
    Ok(flags)
}

fn store(args: &mut Args, uid: bool) -> Result<Command, String> {
    let set = sequence_set(&args.atom()?)?;
    let item = args.atom()?.to_ascii_uppercase();
    let (mode, rest) = match item.as_bytes().first() {
        Some(b'+') => (StoreMode::Add, &item[1..]),
        Some(b'-') => (StoreMode::Remove, &item[1..]),
        _ => (StoreMode::Replace, &item[..]),
    };
    let silent = match rest {
        "FLAGS" => false,
        "FLAGS.SILENT" => true,
        _ => return Err("Expected FLAGS, +FLAGS or -FLAGS".into()),
    };
    let values: Vec<Value> = match args.next()? {
        Value::List(list) => list,
        single @ Value::Atom(_) => {
            let mut all = vec![single];
            all.extend(args.0.by_ref());
            all
        }
        Value::Str(_) => return Err("Bad flag".into()),
    };
    Ok(Command::Store {
        uid,
        set,
        mode,
        silent,
        flags: flag_list(&values)?,
    })
}

fn copy(args: &mut Args, uid: bool) -> Result<Command, String> {
    Ok(Command::Copy {
        uid,
        set: sequence_set(&args.atom()?)?,
        mailbox: args.mailbox()?,
    })
}

/// `1,3:5,7:*`.
///
/// # Errors
/// Not a sequence set.
pub fn sequence_set(text: &str) -> Result<SequenceSet, String> {
    let number = |s: &str| -> Result<SeqNumber, String> {
        if s == "*" {
            return Ok(SeqNumber::Last);
        }
        match s.parse::<u32>() {
            Ok(n) if n > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(SeqNumber::Number(n)),
            _ => Err("Bad sequence set".into()),
        }
    };
    let ranges = text
        .split(',')
        .map(|range| match range.split_once(':') {
            Some((a, b)) => Ok((number(a)?, number(b)?)),
            None => number(range).map(|n| (n, n)),
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(SequenceSet(ranges))
}

fn fetch(args: &mut Args, uid: bool) -> Result<Command, String> {
    let set = sequence_set(&args.atom()?)?;
    let mut items = Vec::new();
    match args.next()? {
        Value::List(list) => {
            for v in &list {
                items.push(fetch_item(atom(v).ok_or("Bad fetch item")?)?);
            }
        }
        Value::Atom(a) => match a.to_ascii_uppercase().as_str() {
            "ALL" => items.extend([
                FetchItem::Flags,
                FetchItem::InternalDate,
                FetchItem::Size,
                FetchItem::Envelope,
            ]),
            "FAST" | "FULL" => {
                items.extend([FetchItem::Flags, FetchItem::InternalDate, FetchItem::Size]);
                if a.eq_ignore_ascii_case("FULL") {
                    items.push(FetchItem::Envelope);
                }
            }
            _ => items.push(fetch_item(&a)?),
        },
        Value::Str(_) => return Err("Bad fetch item".into()),
    }
    if uid && !items.contains(&FetchItem::Uid) {
        items.insert(0, FetchItem::Uid);
    }
    Ok(Command::Fetch { uid, set, items })
}

fn fetch_item(text: &str) -> Result<FetchItem, String> {
    let upper = text.to_ascii_uppercase();
    let rfc822 = |section, peek, name| FetchItem::Body {
        section,
        peek,
        partial: None,
        name: Some(name),
    };
    Ok(match upper.as_str() {
        "FLAGS" => FetchItem::Flags,
        "UID" => FetchItem::Uid,
        "INTERNALDATE" => FetchItem::InternalDate,
        "RFC822.SIZE" => FetchItem::Size,
        "ENVELOPE" => FetchItem::Envelope,
        "RFC822" => rfc822(Section::Full, false, "RFC822"),
        "RFC822.HEADER" => rfc822(Section::Header, true, "RFC822.HEADER"),
        "RFC822.TEXT" => rfc822(Section::Text, false, "RFC822.TEXT"),
        _ => {
            let (peek, rest) = if let Some(rest) = upper.strip_prefix("BODY.PEEK[") {
                (true, rest)
            } else if let Some(rest) = upper.strip_prefix("BODY[") {
                (false, rest)
            } else {
                return Err(format!("Unsupported fetch item {text}"));
            };
            let close = rest.find(']').ok_or("Bad section")?;
            let section = section(&rest[..close])?;
            let partial = match &rest[close + 1..] {
                "" => None,
                tail => {
                    let inner = tail
                        .strip_prefix('<')
                        .and_then(|t| t.strip_suffix('>'))
                        .ok_or("Bad partial")?;
                    let (origin, count) = inner.split_once('.').ok_or("Bad partial")?;
                    let origin = origin.parse().map_err(|_| "Bad partial")?;
                    let count = count.parse().map_err(|_| "Bad partial")?;
                    Some((origin, count))
                }
            };
            FetchItem::Body {
                section,
                peek,
                partial,
                name: None,
            }
        }
    })
}

fn section(text: &str) -> Result<Section, String> {
    Ok(match text {
        "" => Section::Full,
        "HEADER" => Section::Header,
        "TEXT" => Section::Text,
        _ => {
            let (not, rest) = if let Some(rest) = text.strip_prefix("HEADER.FIELDS.NOT") {
                (true, rest)
            } else if let Some(rest) = text.strip_prefix("HEADER.FIELDS") {
                (false, rest)
            } else {
                return Err(format!("Unsupported section [{text}]"));
            };
            let inner = rest
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or("Bad header list")?;
            let fields: Vec<String> = inner.split_ascii_whitespace().map(str::to_owned).collect();
            if fields.is_empty() || fields.iter().any(|f| !f.bytes().all(is_field_char)) {
                return Err("Bad header list".into());
            }
            Section::HeaderFields { fields, not }
        }
    })
}

fn search(args: &mut Args, uid: bool) -> Result<Command, String> {
    let mut values: Vec<Value> = args.0.by_ref().collect();
    if values
        .first()
        .and_then(atom)
        .is_some_and(|a| a.eq_ignore_ascii_case("CHARSET"))
    {
        let charset = match values.get(1) {
            Some(Value::Atom(a)) => a.to_ascii_uppercase(),
            Some(Value::Str(s)) => String::from_utf8_lossy(s).to_ascii_uppercase(),
            _ => return Err("Bad CHARSET".into()),
        };
        if charset != "UTF-8" && charset != "US-ASCII" {
            return Err("[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset".into());
        }
        values.drain(..2);
    }
    let mut keys = Vec::new();
    let mut iter = values.into_iter();
    while let Some(v) = iter.next() {
        keys.push(search_key(v, &mut iter, 0)?);
    }
    if keys.is_empty() {
        return Err("SEARCH needs a key".into());
    }
    Ok(Command::Search {
        uid,
        key: SearchKey::And(keys),
    })
}

fn search_key(
    value: Value,
    rest: &mut std::vec::IntoIter<Value>,
    depth: usize,
) -> Result<SearchKey, String> {
    if depth > 32 {
        return Err("Search keys nested too deep".into());
    }
    let text = |rest: &mut std::vec::IntoIter<Value>| -> Result<Vec<u8>, String> {
        match rest.next() {
            Some(Value::Atom(a)) => Ok(a.into_bytes()),
            Some(Value::Str(s)) => Ok(s.to_vec()),
            _ => Err("Search key needs a string".into()),
        }
    };
    let day = |rest: &mut std::vec::IntoIter<Value>| -> Result<i64, String> {
        let t = text(rest)?;
        std::str::from_utf8(&t)
            .ok()
            .and_then(parse_date)
            .ok_or_else(|| "Bad date".to_owned())
    };
    let number = |rest: &mut std::vec::IntoIter<Value>| -> Result<u64, String> {
        let t = text(rest)?;
        std::str::from_utf8(&t)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| "Bad number".to_owned())
    };
    let next = |rest: &mut std::vec::IntoIter<Value>| -> Result<SearchKey, String> {
        let v = rest.next().ok_or("Missing search key")?;
        search_key(v, rest, depth + 1)
    };
    let name = match value {
        Value::List(list) => {
            let mut inner = list.into_iter();
            let mut keys = Vec::new();
            while let Some(v) = inner.next() {
                keys.push(search_key(v, &mut inner, depth + 1)?);
            }
            return Ok(SearchKey::And(keys));
        }
        Value::Str(_) => return Err("Bad search key".into()),
        Value::Atom(a) => a.to_ascii_uppercase(),
    };
    let header = |field: &str, rest: &mut std::vec::IntoIter<Value>| {
        Ok::<_, String>(SearchKey::Header(field.to_owned(), text(rest)?))
    };
    Ok(match name.as_str() {
        "ALL" => SearchKey::All,
        "SEEN" => SearchKey::Flag(Flags::SEEN, true),
        "UNSEEN" => SearchKey::Flag(Flags::SEEN, false),
        "DELETED" => SearchKey::Flag(Flags::DELETED, true),
        "UNDELETED" => SearchKey::Flag(Flags::DELETED, false),
        "FLAGGED" => SearchKey::Flag(Flags::FLAGGED, true),
        "UNFLAGGED" => SearchKey::Flag(Flags::FLAGGED, false),
        "ANSWERED" => SearchKey::Flag(Flags::ANSWERED, true),
        "UNANSWERED" => SearchKey::Flag(Flags::ANSWERED, false),
        "DRAFT" => SearchKey::Flag(Flags::DRAFT, true),
        "UNDRAFT" => SearchKey::Flag(Flags::DRAFT, false),
        "RECENT" => SearchKey::Recent,
        "OLD" => SearchKey::Not(Box::new(SearchKey::Recent)),
        "NEW" => SearchKey::New,
        "FROM" | "TO" | "CC" | "BCC" | "SUBJECT" => header(&name, rest)?,
        "HEADER" => {
            let field = String::from_utf8(text(rest)?).map_err(|_| "Bad header name")?;
            header(&field, rest)?
        }
        "BODY" => SearchKey::Body(text(rest)?),
        "TEXT" => SearchKey::Text(text(rest)?),
        "BEFORE" => SearchKey::Before(day(rest)?),
        "ON" => SearchKey::On(day(rest)?),
        "SINCE" => SearchKey::Since(day(rest)?),
        "LARGER" => SearchKey::Larger(number(rest)?),
        "SMALLER" => SearchKey::Smaller(number(rest)?),
        "UID" => {
            let t = text(rest)?;
            SearchKey::Uid(sequence_set(
                std::str::from_utf8(&t).map_err(|_| "Bad sequence set")?,
            )?)
        }
        "NOT" => SearchKey::Not(Box::new(next(rest)?)),
        "OR" => {
            let a = next(rest)?;
            let b = next(rest)?;
            SearchKey::Or(Box::new(a), Box::new(b))
        }
        _ if name
            .bytes()
            .all(|b| b.is_ascii_digit() || b":,*".contains(&b)) =>
        {
            SearchKey::Sequence(sequence_set(&name)?)
        }
        _ => return Err(format!("Unsupported search key {name}")),
    })
}

/// The tokens of a command, lists nested (at most 16 deep).
fn tokens(parts: &[Part]) -> Result<Vec<Value>, String> {
    let mut stack: Vec<Vec<Value>> = vec![Vec::new()];
    for part in parts {
        let text = match part {
            Part::Literal(bytes) => {
                push(&mut stack, Value::Str(bytes.clone()));
                continue;
            }
            Part::Text(text) => text,
        };
        let mut i = 0;
        while i < text.len() {
            match text[i] {
                b' ' => i += 1,
                b'(' => {
                    if stack.len() > 16 {
                        return Err("Lists nested too deep".into());
                    }
                    stack.push(Vec::new());
                    i += 1;
                }
                b')' => {
                    if stack.len() < 2 {
                        return Err("Unbalanced parenthesis".into());
                    }
                    let list = stack.pop().unwrap_or_default();
                    push(&mut stack, Value::List(list));
                    i += 1;
                }
                b'"' => {
                    let mut out = Vec::new();
                    i += 1;
                    loop {
                        match text.get(i) {
                            None => return Err("Unterminated quoted string".into()),
                            Some(b'"') => break,
                            Some(b'\\') => {
                                match text.get(i + 1) {
                                    Some(&c @ (b'"' | b'\\')) => out.push(c),
                                    _ => return Err("Bad escape in quoted string".into()),
                                }
                                i += 2;
                            }
                            Some(&c) => {
                                out.push(c);
                                i += 1;
                            }
                        }
                    }
                    i += 1;
                    push(&mut stack, Value::Str(Bytes::from(out)));
                }
                b'{' => return Err("Misplaced literal".into()),
                _ => {
                    let start = i;
                    let mut depth = 0usize;
                    while let Some(&c) = text.get(i) {
                        match c {
                            b'[' => depth += 1,
                            b']' if depth > 0 => depth -= 1,
                            b' ' | b'(' | b')' if depth > 0 => {}
                            b' ' | b'(' | b')' | b'"' | b'{' => break,
                            _ if c.is_ascii_control() || c >= 0x80 => {
                                return Err("Bad character".into());
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    if depth > 0 {
                        return Err("Unbalanced bracket".into());
                    }
                    let atom =
                        String::from_utf8(text[start..i].to_vec()).map_err(|_| "Bad character")?;
                    push(&mut stack, Value::Atom(atom));
                }
            }
        }
    }
    if stack.len() != 1 {
        return Err("Unbalanced parenthesis".into());
    }
    Ok(stack.pop().unwrap_or_default())
}

fn push(stack: &mut [Vec<Value>], value: Value) {
    if let Some(top) = stack.last_mut() {
        top.push(value);
    }
}

/// The literal a line announces at its end: (`{n}` or `{n+}` removed, n, non-synchronizing).
#[must_use]
pub fn literal_suffix(line: &[u8]) -> Option<(&[u8], u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let (digits, plus) = match inner[open + 1..].strip_suffix(b"+") {
        Some(d) => (d, true),
        None => (&inner[open + 1..], false),
    };
    if digits.is_empty() || digits.len() > 12 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((&line[..open], n, plus))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Days since 1970-01-01 of a civil date (H. Hinnant's algorithm).
#[must_use]
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day since 1970-01-01: (year, month 1-12, day 1-31).
#[must_use]
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `1-Feb-1994` (SEARCH dates): days since 1970-01-01.
#[must_use]
pub fn parse_date(text: &str) -> Option<i64> {
    let mut it = text.split('-');
    let day: u32 = it.next()?.trim().parse().ok()?;
    let month = it.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))?;
    let year: i64 = it.next()?.parse().ok()?;
    if it.next().is_some() || !(1..=31).contains(&day) || !(1..=9999).contains(&year) {
        return None;
    }
    Some(days_from_civil(year, u32::try_from(month).ok()? + 1, day))
}

/// `17-Jul-1996 02:44:25 -0700` (APPEND, INTERNALDATE): seconds since the epoch.
#[must_use]
pub fn parse_date_time(text: &str) -> Option<i64> {
    let mut it = text.trim().split(' ').filter(|s| !s.is_empty());
    let days = parse_date(it.next()?)?;
    let mut hms = it.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let zone = it.next()?;
    if it.next().is_some() || h > 23 || m > 59 || s > 60 || zone.len() != 5 {
        return None;
    }
    let sign = match zone.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let zh: i64 = zone.get(1..3)?.parse().ok()?;
    let zm: i64 = zone.get(3..5)?.parse().ok()?;
    Some(days * 86_400 + h * 3600 + m * 60 + s - sign * (zh * 3600 + zm * 60))
}

/// `"07-Dec-2026 09:11:15 +0000"` (with the quotes) for seconds since the epoch.
#[must_use]
pub fn format_date_time(seconds: i64) -> String {
    let (y, mo, d) = civil_from_days(seconds.div_euclid(86_400));
    let rem = seconds.rem_euclid(86_400);
    format!(
        "\"{d:02}-{}-{y:04} {:02}:{:02}:{:02} +0000\"",
        MONTHS[(mo as usize).saturating_sub(1) % 12],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Appends `bytes` as an IMAP string: quoted when it is short 7-bit text without `"`,
/// `\`, CR or LF, else a literal.
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let quotable = bytes.len() < 1024
        && bytes
            .iter()
            .all(|&b| b.is_ascii() && !b.is_ascii_control() && b != b'"' && b != b'\\');
    if quotable {
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
    }
}

/// [`push_string`], or `NIL` for `None`.
pub fn push_nstring(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => push_string(out, b),
        None => out.extend_from_slice(b"NIL"),
    }
}
