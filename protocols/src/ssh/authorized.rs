//! The `authorized_keys` file: keys that may log in and the options restricting each
//! (OpenSSH's `sshd(8)` "AUTHORIZED_KEYS FILE FORMAT"): `restrict`, `no-pty`/`pty`,
//! `no-port-forwarding`/`port-forwarding`, `permitopen`, `permitlisten`, `command`,
//! `from`, `expiry-time`, and the forwarding kinds this server never offers
//! (`no-agent-forwarding`, `no-X11-forwarding`, `no-user-rc`). A line with an option this
//! server cannot honour (`environment=`, `cert-authority`, `principals=`, `tunnel=`, ...) or
//! does not know is refused whole, as OpenSSH refuses a line with a bad option: a key is
//! never accepted with fewer restrictions than its line asks for.

use std::net::IpAddr;
use std::path::Path;

use super::keys::{KeyError, PublicKey, glob};

/// The restrictions of one `authorized_keys` line (all off for a line without options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyOptions {
    /// `command="..."`: the forced command run instead of whatever the client asks
    /// (the client's command is in `SSH_ORIGINAL_COMMAND`).
    pub command: Option<String>,
    /// `from="pattern-list"`: client addresses allowed (`*`/`?` patterns, CIDR, `!`).
    pub from: Option<String>,
    /// `no-pty` (or `restrict` without `pty`): `pty-req` is refused.
    pub no_pty: bool,
    /// `no-port-forwarding` (or `restrict` without `port-forwarding`): `direct-tcpip` and
    /// `tcpip-forward` are refused.
    pub no_port_forwarding: bool,
    /// `permitopen="host:port"` (repeatable): the only `direct-tcpip` destinations
    /// (`None` port: `*`, any).
    pub permit_open: Vec<(String, Option<u32>)>,
    /// `permitlisten="[host:]port"` (repeatable): the only `tcpip-forward` binds.
    pub permit_listen: Vec<(Option<String>, Option<u32>)>,
    /// `expiry-time="YYYYMMDD[HHMM[SS]]"`: the key is refused from then on (Unix
    /// seconds; read as UTC).
    pub expires: Option<u64>,
}

impl KeyOptions {
    /// Whether a client at `peer` may use the key at Unix time `now` (`from=`,
    /// `expiry-time=`). An unknown peer address fails a `from=` restriction.
    #[must_use]
    pub fn admits(&self, peer: Option<IpAddr>, now: u64) -> bool {
        if self.expires.is_some_and(|t| now >= t) {
            return false;
        }
        match (&self.from, peer) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(patterns), Some(ip)) => from_matches(patterns, ip),
        }
    }

    /// Whether `direct-tcpip` to `host:port` is allowed.
    #[must_use]
    pub fn allows_open(&self, host: &str, port: u32) -> bool {
        !self.no_port_forwarding
            && (self.permit_open.is_empty()
                || self.permit_open.iter().any(|(h, p)| {
                    (h == "*" || h.eq_ignore_ascii_case(host)) && p.is_none_or(|p| p == port)
                }))
    }

    /// Whether `tcpip-forward` on `address:port` is allowed.
    #[must_use]
    pub fn allows_listen(&self, address: &str, port: u32) -> bool {
        !self.no_port_forwarding
            && (self.permit_listen.is_empty()
                || self.permit_listen.iter().any(|(h, p)| {
                    h.as_deref()
                        .is_none_or(|h| h == "*" || h.eq_ignore_ascii_case(address))
                        && p.is_none_or(|p| p == port)
                }))
    }
}

/// One key of an `authorized_keys` file with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    /// The key.
    pub key: PublicKey,
    /// Its line's options.
    pub options: KeyOptions,
}

/// The keys of an `authorized_keys` file.
#[derive(Debug, Clone, Default)]
pub struct AuthorizedKeys {
    keys: Vec<AuthorizedKey>,
    refused: Vec<String>,
}

/// Key type names that start a line without options.
fn is_key_type(word: &str) -> bool {
    word.starts_with("ssh-")
        || word.starts_with("ecdsa-sha2-")
        || word.starts_with("sk-ssh-")
        || word.starts_with("sk-ecdsa-")
}

impl AuthorizedKeys {
    /// Parses the file's text. Lines that are malformed, of an unsupported key type, or with
    /// an option that cannot be honoured are skipped, each with the reason
    /// ([`AuthorizedKeys::refused`]).
    #[must_use]
    pub fn parse(text: &str) -> Self {
        let mut out = Self::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok(entry) => out.keys.push(entry),
                Err(why) => out.refused.push(format!("line {}: {why}", n + 1)),
            }
        }
        out
    }

    /// Reads and parses `path`.
    ///
    /// # Errors
    /// [`KeyError::Io`] when it cannot be read.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::parse(&text))
    }

    /// The first line listing the key with this blob (its options not checked).
    #[must_use]
    pub fn find(&self, blob: &[u8]) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|k| k.key.blob() == blob)
            .map(|k| &k.key)
    }

    /// The first line listing the key with this blob whose `from=` and `expiry-time=`
    /// admit a client at `peer` at Unix time `now` (as OpenSSH, a line that does not admit
    /// the client is passed over for the next one listing the same key).
    #[must_use]
    pub fn find_for(&self, blob: &[u8], peer: Option<IpAddr>, now: u64) -> Option<&AuthorizedKey> {
        self.keys
            .iter()
            .find(|k| k.key.blob() == blob && k.options.admits(peer, now))
    }

    /// How many keys were read.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key was read.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Lines that were skipped.
    #[must_use]
    pub fn skipped(&self) -> usize {
        self.refused.len()
    }

    /// Why each skipped line was skipped (`line N: reason`).
    #[must_use]
    pub fn refused(&self) -> &[String] {
        &self.refused
    }
}

fn parse_line(line: &str) -> Result<AuthorizedKey, String> {
    let first = line.split_whitespace().next().unwrap_or("");
    let (options, rest) = if is_key_type(first) {
        (KeyOptions::default(), line)
    } else {
        let (raw, rest) = split_options(line)?;
        (parse_options(raw)?, rest.trim_start())
    };
    let key = PublicKey::from_openssh(rest).map_err(|e| e.to_string())?;
    Ok(AuthorizedKey { key, options })
}

/// The options field (up to the first whitespace outside quotes) and the rest.
fn split_options(line: &str) -> Result<(&str, &str), String> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Ok((&line[..i], &line[i..])),
            _ => {}
        }
    }
    Err(if quoted {
        "unterminated quote in options".into()
    } else {
        "options but no key".into()
    })
}

/// Splits `a,b="x,y",c` at unquoted commas; values unquoted (`\"` is a quote).
fn option_items(raw: &str) -> Result<Vec<(String, Option<String>)>, String> {
    let mut items = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == ',' || c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let mut value = None;
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.next() != Some('"') {
                return Err(format!("option {name}: value not in double quotes"));
            }
            let mut v = String::new();
            loop {
                match chars.next() {
                    None => return Err(format!("option {name}: unterminated quote")),
                    Some('"') => break,
                    Some('\\') if chars.peek() == Some(&'"') => {
                        v.push('"');
                        chars.next();
                    }
                    Some(c) => v.push(c),
                }
            }
            value = Some(v);
        }
        if name.is_empty() {
            return Err("empty option".into());
        }
        items.push((name.to_ascii_lowercase(), value));
        match chars.next() {
            None => return Ok(items),
            Some(',') => {}
            Some(c) => return Err(format!("unexpected {c:?} after an option")),
        }
    }
}

fn parse_options(raw: &str) -> Result<KeyOptions, String> {
    let mut o = KeyOptions::default();
    let (mut restrict, mut pty, mut forwarding) = (false, false, false);
    let mut no_pty = false;
    let mut no_forwarding = false;
    for (name, value) in option_items(raw)? {
        let need = |v: Option<String>| v.ok_or_else(|| format!("option {name} needs a value"));
        let flag = |v: &Option<String>| {
            if v.is_some() {
                Err(format!("option {name} takes no value"))
            } else {
                Ok(())
            }
        };
        match name.as_str() {
            "restrict" => {
                flag(&value)?;
                restrict = true;
            }
            "pty" => {
                flag(&value)?;
                pty = true;
            }
            "no-pty" => {
                flag(&value)?;
                no_pty = true;
            }
            "port-forwarding" => {
                flag(&value)?;
                forwarding = true;
            }
            "no-port-forwarding" => {
                flag(&value)?;
                no_forwarding = true;
            }
            // Never offered by this server: accepted, nothing to restrict.
            "no-agent-forwarding" | "no-x11-forwarding" | "no-user-rc" => flag(&value)?,
            "command" => {
                if o.command.is_some() {
                    return Err("command given twice".into());
                }
                o.command = Some(need(value)?);
            }
            "from" => {
                if o.from.is_some() {
                    return Err("from given twice".into());
                }
                let patterns = need(value)?;
                for p in patterns.split(',') {
                    let p = p.strip_prefix('!').unwrap_or(p);
                    if p.is_empty() || (p.contains('/') && cidr(p).is_none()) {
                        return Err(format!("from: bad pattern {p:?}"));
                    }
                }
                o.from = Some(patterns);
            }
            "permitopen" => {
                let v = need(value)?;
                let (host, port) = host_port(&v)
                    .ok_or_else(|| format!("permitopen: expected host:port, not {v:?}"))?;
                o.permit_open.push((host.to_owned(), port));
            }
            "permitlisten" => {
                let v = need(value)?;
                let (host, port) = match host_port(&v) {
                    Some((host, port)) => (Some(host.to_owned()), port),
                    None => (
                        None,
                        port_or_any(&v).ok_or_else(|| format!("permitlisten: bad port {v:?}"))?,
                    ),
                };
                o.permit_listen.push((host, port));
            }
            "expiry-time" => {
                let v = need(value)?;
                o.expires = Some(expiry(&v).ok_or_else(|| format!("expiry-time: bad time {v:?}"))?);
            }
            "environment" => {
                return Err("environment= is not supported (the server sets no user \
                            environment, as sshd's default PermitUserEnvironment no)"
                    .into());
            }
            other => return Err(format!("option {other} is not supported")),
        }
    }
    o.no_pty = no_pty || (restrict && !pty);
    o.no_port_forwarding = no_forwarding || (restrict && !forwarding);
    Ok(o)
}

/// `*` or a port number.
fn port_or_any(v: &str) -> Option<Option<u32>> {
    if v == "*" {
        return Some(None);
    }
    v.parse::<u16>().ok().map(|p| Some(u32::from(p)))
}

/// `host:port`, `[v6]:port`, port `*` for any.
fn host_port(v: &str) -> Option<(&str, Option<u32>)> {
    let (host, port) = if let Some(rest) = v.strip_prefix('[') {
        let (host, port) = rest.split_once("]:")?;
        (host, port)
    } else {
        v.rsplit_once(':')?
    };
    if host.is_empty() {
        return None;
    }
    Some((host, port_or_any(port)?))
}

/// `addr/len`: the network address and prefix length.
fn cidr(p: &str) -> Option<(IpAddr, u32)> {
    let (addr, len) = p.split_once('/')?;
    let addr: IpAddr = addr.parse().ok()?;
    let len: u32 = len.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

fn in_cidr(ip: IpAddr, (net, len): (IpAddr, u32)) -> bool {
    let bits = |a: IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        }
    };
    let ((a, wa), (n, wn)) = (bits(ip), bits(net));
    if wa != wn {
        return false;
    }
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    a & mask == n & mask
}

/// OpenSSH's `from=` rule: a negated pattern that matches refuses, else any positive
/// match admits. Patterns are `*`/`?` globs over the address text, or CIDR networks (no
/// host names: the address is not looked up in DNS, as sshd's default `UseDNS no`).
#[must_use]
pub fn from_matches(patterns: &str, ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    let text = ip.to_string();
    let mut admitted = false;
    for pattern in patterns.split(',') {
        let (negated, p) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let hit = if p.contains('/') {
            cidr(p).is_some_and(|net| in_cidr(ip, net))
        } else {
            glob(p.as_bytes(), text.as_bytes())
        };
        if hit && negated {
            return false;
        }
        admitted |= hit;
    }
    admitted
}

/// `YYYYMMDD[HHMM[SS]]` (an optional trailing `Z`), read as UTC, in Unix seconds.
fn expiry(v: &str) -> Option<u64> {
    let v = v.strip_suffix(['Z', 'z']).unwrap_or(v);
    if !matches!(v.len(), 8 | 12 | 14) || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| v.get(r).and_then(|s| s.parse::<u64>().ok());
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, min) = if v.len() >= 12 {
        (num(8..10)?, num(10..12)?)
    } else {
        (0, 0)
    };
    let sec = if v.len() == 14 { num(12..14)? } else { 0 };
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil, years ≥ 1970).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hour * 3600 + min * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ssh::keys::SigningKey;

    fn key_line() -> String {
        SigningKey::generate("k").unwrap().public().to_openssh()
    }

    fn options(raw: &str) -> Result<KeyOptions, String> {
        parse_line(&format!("{raw} {} comment", key_line())).map(|k| k.options)
    }

    #[test]
    fn a_line_without_options_has_none() {
        let keys = AuthorizedKeys::parse(&format!("# c\n\n{} me@host\n", key_line()));
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.keys[0].options, KeyOptions::default());
    }

    #[test]
    fn restrict_and_its_reenabling_flags() {
        let o = options("restrict").unwrap();
        assert!(o.no_pty && o.no_port_forwarding);
        let o = options("restrict,pty").unwrap();
        assert!(!o.no_pty && o.no_port_forwarding);
        let o = options("restrict,port-forwarding").unwrap();
        assert!(o.no_pty && !o.no_port_forwarding);
        let o = options("no-pty").unwrap();
        assert!(o.no_pty && !o.no_port_forwarding);
        let o =
            options("NO-PORT-FORWARDING,no-agent-forwarding,no-X11-forwarding,no-user-rc").unwrap();
        assert!(!o.no_pty && o.no_port_forwarding);
        assert!(!o.allows_open("h", 1) && !o.allows_listen("", 1));
    }

    #[test]
    fn command_quoting_keeps_commas_spaces_and_escaped_quotes() {
        let o = options(r#"command="echo \"a, b\" c",no-pty"#).unwrap();
        assert_eq!(o.command.as_deref(), Some(r#"echo "a, b" c"#));
        assert!(o.no_pty);
        assert!(options(r#"command="unterminated"#).is_err());
        assert!(options("command=unquoted").is_err());
        assert!(options(r#"command="a",command="b""#).is_err());
    }

    #[test]
    fn permitopen_and_permitlisten_limit_forwarding() {
        let o = options(r#"permitopen="localhost:80",permitopen="[::1]:*""#).unwrap();
        assert!(o.allows_open("localhost", 80) && o.allows_open("LOCALHOST", 80));
        assert!(!o.allows_open("localhost", 81) && !o.allows_open("127.0.0.1", 80));
        assert!(o.allows_open("::1", 9));
        assert!(
            o.allows_listen("", 1),
            "no permitlisten: listening not limited"
        );
        let o = options(r#"permitlisten="8080",permitlisten="localhost:*""#).unwrap();
        assert!(o.allows_listen("", 8080) && o.allows_listen("localhost", 9));
        assert!(!o.allows_listen("", 8081));
        assert!(options(r#"permitopen="nocolon""#).is_err());
        assert!(options(r#"permitopen="h:99999""#).is_err());
        assert!(options(r#"permitlisten="x""#).is_err());
    }

    #[test]
    fn from_patterns_globs_cidr_and_negation() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(from_matches("127.0.0.1", ip("127.0.0.1")));
        assert!(!from_matches("127.0.0.2", ip("127.0.0.1")));
        assert!(from_matches("10.*,127.0.0.?", ip("127.0.0.5")));
        assert!(from_matches("127.0.0.0/8", ip("127.1.2.3")));
        assert!(!from_matches("127.0.0.0/24", ip("127.0.1.1")));
        assert!(!from_matches("127.0.0.0/8,!127.0.0.9", ip("127.0.0.9")));
        assert!(from_matches("::1", ip("::1")));
        assert!(from_matches("fd00::/8", ip("fd12::1")));
        assert!(
            from_matches("127.0.0.1", ip("::ffff:127.0.0.1")),
            "v4-mapped"
        );
        assert!(!from_matches("!127.0.0.1", ip("127.0.0.1")));
        let o = options(r#"from="127.0.0.0/8,!127.0.0.2""#).unwrap();
        assert!(o.admits(Some(ip("127.0.0.1")), 0));
        assert!(!o.admits(Some(ip("127.0.0.2")), 0));
        assert!(!o.admits(None, 0), "unknown peer fails from=");
        assert!(options(r#"from="10.0.0.0/33""#).is_err());
    }

    #[test]
    fn expiry_time_is_read_as_utc() {
        assert_eq!(expiry("19700101"), Some(0));
        assert_eq!(expiry("20000301"), Some(951_868_800));
        assert_eq!(expiry("202612071345"), Some(1_796_651_100));
        assert_eq!(expiry("20261207134501Z"), Some(1_796_651_101));
        assert_eq!(expiry("2026120"), None);
        assert_eq!(expiry("20261307"), None);
        let o = options(r#"expiry-time="20000301""#).unwrap();
        assert!(o.admits(None, 951_868_799) && !o.admits(None, 951_868_800));
    }

    #[test]
    fn unknown_or_unsupported_options_refuse_the_line_with_a_reason() {
        let text = format!(
            "environment=\"A=b\" {k}\ncert-authority {k}\nbogus {k}\npty=\"x\" {k}\n{k}\n",
            k = key_line()
        );
        let keys = AuthorizedKeys::parse(&text);
        assert_eq!(keys.len(), 1);
        let refused = keys.refused();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(
            refused[0].starts_with("line 1: environment="),
            "{refused:?}"
        );
        assert!(refused[1].contains("cert-authority"), "{refused:?}");
        assert!(refused[2].contains("bogus"), "{refused:?}");
        assert!(refused[3].contains("takes no value"), "{refused:?}");
    }

    #[test]
    fn find_for_passes_over_lines_that_do_not_admit_the_client() {
        let k = key_line();
        let text = format!("from=\"10.0.0.1\",command=\"a\" {k}\ncommand=\"b\" {k}\n");
        let keys = AuthorizedKeys::parse(&text);
        let blob = keys.keys[0].key.blob().to_vec();
        let found = keys
            .find_for(&blob, Some("127.0.0.1".parse().unwrap()), 0)
            .unwrap();
        assert_eq!(found.options.command.as_deref(), Some("b"));
    }
}
