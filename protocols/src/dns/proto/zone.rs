//! Zones: RFC 1035 master files read into a [`Zone`] ready for lookups.
//!
//! Owns: the master-file syntax (`$ORIGIN`, `$TTL`, `@`, relative names, omitted owners,
//! TTLs and classes in either order, parentheses across lines, `;` comments, quoted strings
//! with escapes, TTL units `1h30m`, RFC 3597 `\#` generic data) for the types of
//! [`RData`], and the zone's checks: one SOA at the origin, every name inside the zone, no
//! other data beside a CNAME.
//! Contract: [`Zone::parse`] reads a whole file or fails naming the file, line and reason;
//! the zone it returns indexes every owner by its lowercase name, and knows the empty
//! non-terminals (names with nothing of their own but something below) so that a lookup can
//! tell NODATA from NXDOMAIN.
//! Does not: `$INCLUDE` (refused with an error), `$GENERATE`, DNSSEC types, zone transfers.
//! Spec: RFC 1035 §5 (master files), RFC 2308 §4 (`$TTL`), RFC 3597 §5 (unknown types),
//! RFC 1034 §3.6.2 (CNAME and other data).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::DnsError;
use super::message::{CLASS_IN, Record};
use super::name::Name;
use super::rdata::{RData, RType, Soa};

/// The records of one name and type.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct RrSet {
    /// The type.
    pub rtype: RType,
    /// The TTL (the first record's; RFC 2181 §5.2 asks all to be equal).
    pub ttl: u32,
    /// The data, in file order.
    pub data: Vec<RData>,
}

/// Everything at one owner name.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Node {
    /// The owner as written in the file.
    pub name: Name,
    /// Its record sets.
    pub rrsets: Vec<RrSet>,
}

impl Node {
    /// The record set of `rtype`, if any.
    #[must_use]
    pub fn rrset(&self, rtype: RType) -> Option<&RrSet> {
        self.rrsets.iter().find(|s| s.rtype == rtype)
    }
}

/// A zone loaded from a master file.
#[derive(Clone, Debug)]
pub struct Zone {
    origin: Name,
    soa: (u32, Soa),
    nodes: HashMap<Box<[u8]>, Node>,
    /// Names with no records of their own but names below them (lowercase keys).
    empty_non_terminals: HashSet<Box<[u8]>>,
    records: usize,
}

impl Zone {
    /// Reads a master file. `file` names it in errors; `origin` is the starting `$ORIGIN`
    /// (a file may set its own).
    ///
    /// # Errors
    /// [`DnsError::Zone`] with the line and what is wrong.
    pub fn parse(text: &str, file: &str, origin: Option<Name>) -> Result<Zone, DnsError> {
        Loader::new(file, origin).load(text)
    }

    /// The zone's origin (its apex).
    #[must_use]
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// The SOA's TTL and data.
    #[must_use]
    pub fn soa(&self) -> (u32, &Soa) {
        (self.soa.0, &self.soa.1)
    }

    /// The node of `key` (a lowercase wire-form name).
    #[must_use]
    pub fn node(&self, key: &[u8]) -> Option<&Node> {
        self.nodes.get(key)
    }

    /// Whether `key` is an empty non-terminal (it exists only because names below it do).
    #[must_use]
    pub fn is_empty_non_terminal(&self, key: &[u8]) -> bool {
        self.empty_non_terminals.contains(key)
    }

    /// Number of records.
    #[must_use]
    pub fn record_count(&self) -> usize {
        self.records
    }

    /// Every record, owners in no particular order.
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.nodes.values().flat_map(|node| {
            node.rrsets.iter().flat_map(move |set| {
                set.data.iter().map(move |data| Record {
                    name: node.name.clone(),
                    class: CLASS_IN,
                    ttl: set.ttl,
                    data: data.clone(),
                })
            })
        })
    }
}

/// Reading state of one file.
struct Loader<'a> {
    file: &'a str,
    line: usize,
    origin: Option<Name>,
    default_ttl: Option<u32>,
    last_owner: Option<Name>,
    last_ttl: Option<u32>,
    records: Vec<(usize, Record)>,
}

impl<'a> Loader<'a> {
    fn new(file: &'a str, origin: Option<Name>) -> Self {
        Self {
            file,
            line: 0,
            origin,
            default_ttl: None,
            last_owner: None,
            last_ttl: None,
            records: Vec::new(),
        }
    }

    fn error(&self, reason: impl Into<String>) -> DnsError {
        DnsError::Zone {
            file: self.file.to_owned(),
            line: self.line,
            reason: reason.into(),
        }
    }

    fn load(mut self, text: &str) -> Result<Zone, DnsError> {
        let mut entries = Entries::new(text);
        while let Some(entry) = entries.next() {
            let (line, tokens, owner_blank) = entry.map_err(|(line, reason)| DnsError::Zone {
                file: self.file.to_owned(),
                line,
                reason,
            })?;
            self.line = line;
            self.entry(&tokens, owner_blank)?;
        }
        self.finish()
    }

    fn entry(&mut self, tokens: &[Token], owner_blank: bool) -> Result<(), DnsError> {
        let Some(first) = tokens.first() else {
            return Ok(());
        };
        match first.text.as_str() {
            "$ORIGIN" if !first.quoted => {
                let arg = tokens
                    .get(1)
                    .ok_or_else(|| self.error("$ORIGIN needs a name"))?;
                let name = Name::parse(&arg.text, self.origin.as_ref())
                    .map_err(|e| self.error(e.to_string()))?;
                self.origin = Some(name);
                return Ok(());
            }
            "$TTL" if !first.quoted => {
                let arg = tokens
                    .get(1)
                    .ok_or_else(|| self.error("$TTL needs a value"))?;
                self.default_ttl =
                    Some(parse_ttl(&arg.text).ok_or_else(|| self.error("bad $TTL value"))?);
                return Ok(());
            }
            "$INCLUDE" | "$GENERATE" if !first.quoted => {
                return Err(self.error(format!("{} is not supported", first.text)));
            }
            _ => {}
        }
        let mut rest = tokens;
        let owner = if owner_blank {
            self.last_owner
                .clone()
                .ok_or_else(|| self.error("a record without an owner and none before it"))?
        } else {
            let name = Name::parse(&rest[0].text, self.origin.as_ref())
                .map_err(|e| self.error(format!("owner {:?}: {e}", rest[0].text)))?;
            rest = &rest[1..];
            name
        };
        // [TTL] [class] or [class] [TTL], then the type.
        let mut ttl = None;
        let mut class_seen = false;
        loop {
            let token = rest
                .first()
                .ok_or_else(|| self.error("a record without a type"))?;
            if ttl.is_none()
                && token.text.starts_with(|c: char| c.is_ascii_digit())
                && let Some(value) = parse_ttl(&token.text)
            {
                ttl = Some(value);
                rest = &rest[1..];
                continue;
            }
            if !class_seen && token.text.eq_ignore_ascii_case("IN") {
                class_seen = true;
                rest = &rest[1..];
                continue;
            }
            if ["CH", "HS", "CS"]
                .iter()
                .any(|c| token.text.eq_ignore_ascii_case(c))
            {
                return Err(self.error(format!("class {} is not supported (only IN)", token.text)));
            }
            break;
        }
        let rtype = RType::from_name(&rest[0].text)
            .ok_or_else(|| self.error(format!("unknown type {:?}", rest[0].text)))?;
        let fields = &rest[1..];
        let data = self.rdata(rtype, fields)?;
        let ttl = match (ttl, &data) {
            (Some(ttl), _) => ttl,
            // RFC 2308 §4: without $TTL, the SOA's minimum (the old meaning) is the default.
            (None, RData::Soa(soa)) => self.default_ttl.unwrap_or(soa.minimum),
            (None, _) => self
                .default_ttl
                .or(self.last_ttl)
                .ok_or_else(|| self.error("no TTL: give one or set $TTL"))?,
        };
        self.last_owner = Some(owner.clone());
        self.last_ttl = Some(ttl);
        self.records.push((
            self.line,
            Record {
                name: owner,
                class: CLASS_IN,
                ttl,
                data,
            },
        ));
        Ok(())
    }

    fn name(&self, token: &Token) -> Result<Name, DnsError> {
        Name::parse(&token.text, self.origin.as_ref())
            .map_err(|e| self.error(format!("{:?}: {e}", token.text)))
    }

    fn number<T: std::str::FromStr>(
        &self,
        token: Option<&Token>,
        what: &str,
    ) -> Result<T, DnsError> {
        token
            .and_then(|t| t.text.parse().ok())
            .ok_or_else(|| self.error(format!("bad or missing {what}")))
    }

    fn rdata(&self, rtype: RType, fields: &[Token]) -> Result<RData, DnsError> {
        let count = |n: usize| -> Result<(), DnsError> {
            if fields.len() == n {
                Ok(())
            } else {
                Err(self.error(format!(
                    "{} takes {n} fields, got {}",
                    rtype.name(),
                    fields.len()
                )))
            }
        };
        if fields.first().is_some_and(|t| t.text == "\\#" && !t.quoted) {
            return self.generic(rtype, &fields[1..]);
        }
        Ok(match rtype {
            RType::A => {
                count(1)?;
                RData::A(
                    fields[0].text.parse::<Ipv4Addr>().map_err(|_| {
                        self.error(format!("bad IPv4 address {:?}", fields[0].text))
                    })?,
                )
            }
            RType::AAAA => {
                count(1)?;
                RData::Aaaa(
                    fields[0].text.parse::<Ipv6Addr>().map_err(|_| {
                        self.error(format!("bad IPv6 address {:?}", fields[0].text))
                    })?,
                )
            }
            RType::NS => {
                count(1)?;
                RData::Ns(self.name(&fields[0])?)
            }
            RType::CNAME => {
                count(1)?;
                RData::Cname(self.name(&fields[0])?)
            }
            RType::PTR => {
                count(1)?;
                RData::Ptr(self.name(&fields[0])?)
            }
            RType::MX => {
                count(2)?;
                RData::Mx {
                    preference: self.number(fields.first(), "MX preference")?,
                    exchange: self.name(&fields[1])?,
                }
            }
            RType::SOA => {
                count(7)?;
                let time = |i: usize, what: &str| {
                    parse_ttl(&fields[i].text).ok_or_else(|| self.error(format!("bad SOA {what}")))
                };
                RData::Soa(Soa {
                    mname: self.name(&fields[0])?,
                    rname: self.name(&fields[1])?,
                    serial: self.number(fields.get(2), "SOA serial")?,
                    refresh: time(3, "refresh")?,
                    retry: time(4, "retry")?,
                    expire: time(5, "expire")?,
                    minimum: time(6, "minimum")?,
                })
            }
            RType::TXT => {
                if fields.is_empty() {
                    return Err(self.error("TXT needs at least one string"));
                }
                let mut strings = Vec::with_capacity(fields.len());
                for field in fields {
                    let bytes = field.bytes.clone();
                    if bytes.len() > 255 {
                        return Err(self.error("a TXT string is longer than 255 bytes"));
                    }
                    strings.push(bytes);
                }
                RData::Txt(strings)
            }
            RType::SRV => {
                count(4)?;
                RData::Srv {
                    priority: self.number(fields.first(), "SRV priority")?,
                    weight: self.number(fields.get(1), "SRV weight")?,
                    port: self.number(fields.get(2), "SRV port")?,
                    target: self.name(&fields[3])?,
                }
            }
            RType::CAA => {
                count(3)?;
                let tag = fields[1].text.as_bytes().to_vec();
                if tag.is_empty() || !tag.iter().all(u8::is_ascii_alphanumeric) {
                    return Err(self.error("CAA tag must be letters and digits"));
                }
                RData::Caa {
                    flags: self.number(fields.first(), "CAA flags")?,
                    tag,
                    value: fields[2].bytes.clone(),
                }
            }
            other => return Err(self.error(format!("type {} needs the \\# form", other.name()))),
        })
    }

    /// RFC 3597 §5: `\# LENGTH HEX...`.
    fn generic(&self, rtype: RType, fields: &[Token]) -> Result<RData, DnsError> {
        let len: usize = self.number(fields.first(), "\\# length")?;
        let hex: String = fields[1..].iter().map(|t| t.text.as_str()).collect();
        if hex.len() != len * 2 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("\\# data does not match its length"));
        }
        let bytes: Vec<u8> = (0..len)
            .map(|i| u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap_or(0))
            .collect();
        // Known types in generic form are read as their own type.
        let mut wire = Vec::with_capacity(bytes.len());
        wire.extend_from_slice(&bytes);
        RData::read(rtype, &wire, 0, wire.len()).map_err(|e| self.error(e.to_string()))
    }

    fn finish(self) -> Result<Zone, DnsError> {
        let (soa_line, soa_owner, soa) = self
            .records
            .iter()
            .find_map(|(line, r)| match &r.data {
                RData::Soa(soa) => Some((*line, r.name.clone(), (r.ttl, soa.clone()))),
                _ => None,
            })
            .ok_or_else(|| self.error("the zone has no SOA record"))?;
        let origin = soa_owner;
        let at = |line: usize, reason: String| DnsError::Zone {
            file: self.file.to_owned(),
            line,
            reason,
        };
        let mut nodes: HashMap<Box<[u8]>, Node> = HashMap::new();
        let mut soas = 0;
        for (line, record) in &self.records {
            if !record.name.is_subdomain_of(&origin) {
                return Err(at(
                    *line,
                    format!("{} is outside the zone {origin}", record.name),
                ));
            }
            if record.rtype() == RType::SOA {
                soas += 1;
                if !record.name.eq_ignore_case(&origin) || soas > 1 {
                    return Err(at(*line, "a second SOA record".into()));
                }
            }
            let node = nodes.entry(record.name.key()).or_insert_with(|| Node {
                name: record.name.clone(),
                rrsets: Vec::new(),
            });
            match node.rrsets.iter_mut().find(|s| s.rtype == record.rtype()) {
                Some(set) => {
                    if record.rtype() == RType::CNAME {
                        return Err(at(*line, format!("a second CNAME at {}", record.name)));
                    }
                    if !set.data.contains(&record.data) {
                        set.data.push(record.data.clone());
                    }
                }
                None => node.rrsets.push(RrSet {
                    rtype: record.rtype(),
                    ttl: record.ttl,
                    data: vec![record.data.clone()],
                }),
            }
            // RFC 1034 §3.6.2: a CNAME stands alone.
            if node.rrsets.len() > 1 && node.rrset(RType::CNAME).is_some() {
                return Err(at(
                    *line,
                    format!("{} has a CNAME and other data", record.name),
                ));
            }
        }
        let _ = soa_line;
        let mut empty_non_terminals = HashSet::new();
        for node in nodes.values() {
            let mut name = node.name.parent();
            while let Some(parent) = name {
                if !parent.is_subdomain_of(&origin) || parent.eq_ignore_case(&origin) {
                    break;
                }
                let key = parent.key();
                if !nodes.contains_key(&key) {
                    empty_non_terminals.insert(key);
                }
                name = parent.parent();
            }
        }
        Ok(Zone {
            origin,
            soa,
            records: self.records.len(),
            nodes,
            empty_non_terminals,
        })
    }
}

/// A TTL: seconds, or BIND units (`1w2d3h4m5s`).
fn parse_ttl(text: &str) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return None;
    }
    u32::try_from(total).ok()
}

/// A token of a master file.
#[derive(Clone, Debug)]
struct Token {
    /// The text (escapes kept, for names).
    text: String,
    /// The bytes with escapes resolved (for strings).
    bytes: Vec<u8>,
    quoted: bool,
}

/// Splits a master file into entries: (line, tokens, owner left blank).
struct Entries<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    line: usize,
}

impl<'a> Entries<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            chars: text.chars().peekable(),
            line: 1,
        }
    }

    /// The next entry; `Err((line, reason))` for bad syntax.
    #[allow(clippy::type_complexity)]
    fn next(&mut self) -> Option<Result<(usize, Vec<Token>, bool), (usize, String)>> {
        loop {
            self.chars.peek()?;
            let start = self.line;
            let owner_blank = matches!(self.chars.peek(), Some(' ' | '\t'));
            let mut tokens = Vec::new();
            let mut depth = 0usize;
            loop {
                match self.chars.peek().copied() {
                    None => break,
                    Some('\n') => {
                        self.chars.next();
                        self.line += 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Some(' ' | '\t' | '\r') => {
                        self.chars.next();
                    }
                    Some(';') => {
                        while self.chars.peek().is_some_and(|c| *c != '\n') {
                            self.chars.next();
                        }
                    }
                    Some('(') => {
                        self.chars.next();
                        depth += 1;
                    }
                    Some(')') => {
                        self.chars.next();
                        if depth == 0 {
                            return Some(Err((self.line, "unbalanced ')'".into())));
                        }
                        depth -= 1;
                    }
                    Some('"') => {
                        self.chars.next();
                        match self.quoted() {
                            Ok(token) => tokens.push(token),
                            Err(reason) => return Some(Err((self.line, reason))),
                        }
                    }
                    Some(_) => tokens.push(self.word()),
                }
            }
            if depth > 0 {
                return Some(Err((start, "'(' without ')'".into())));
            }
            if !tokens.is_empty() {
                return Some(Ok((start, tokens, owner_blank)));
            }
        }
    }

    fn word(&mut self) -> Token {
        let mut text = String::new();
        let mut bytes = Vec::new();
        while let Some(&c) = self.chars.peek() {
            if matches!(c, ' ' | '\t' | '\r' | '\n' | ';' | '(' | ')' | '"') {
                break;
            }
            self.chars.next();
            text.push(c);
            if c == '\\' {
                if let Some(next) = self.escape() {
                    match next {
                        Escape::Byte(b, raw) => {
                            bytes.push(b);
                            text.push_str(&raw);
                        }
                    }
                }
            } else {
                let mut buf = [0; 4];
                bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        Token {
            text,
            bytes,
            quoted: false,
        }
    }

    fn quoted(&mut self) -> Result<Token, String> {
        let mut text = String::new();
        let mut bytes = Vec::new();
        loop {
            let c = self.chars.next().ok_or("a quote without its end")?;
            match c {
                '"' => break,
                '\\' => {
                    if let Some(Escape::Byte(b, raw)) = self.escape() {
                        bytes.push(b);
                        text.push('\\');
                        text.push_str(&raw);
                    }
                }
                '\n' => {
                    self.line += 1;
                    bytes.push(b'\n');
                    text.push(c);
                }
                c => {
                    let mut buf = [0; 4];
                    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    text.push(c);
                }
            }
        }
        Ok(Token {
            text,
            bytes,
            quoted: true,
        })
    }

    /// After a backslash: `\DDD` or `\X`.
    fn escape(&mut self) -> Option<Escape> {
        let first = self.chars.next()?;
        if first.is_ascii_digit() {
            let mut digits = String::from(first);
            for _ in 0..2 {
                if let Some(&d) = self.chars.peek()
                    && d.is_ascii_digit()
                {
                    digits.push(d);
                    self.chars.next();
                }
            }
            let value: u16 = digits.parse().ok()?;
            return Some(Escape::Byte(u8::try_from(value).ok()?, digits));
        }
        Some(Escape::Byte(first as u8, first.to_string()))
    }
}

enum Escape {
    Byte(u8, String),
}

#[cfg(test)]
pub(crate) mod tests;
