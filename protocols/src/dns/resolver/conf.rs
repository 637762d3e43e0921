//! The system's resolver files as text: [`ResolvConf`] (`/etc/resolv.conf`) and [`Hosts`]
//! (`/etc/hosts`).
//!
//! Owns: reading both the way glibc does (its defaults, limits and tolerance), and saying
//! what was skipped: a line glibc would skip (a bad address, an option with a bad number)
//! is skipped here too and noted as a [`ConfProblem`] with its line number, which
//! [`ResolvConf::check`] and [`Hosts::check`] turn into a [`ConfError`] for callers that
//! refuse such files.
//! Does not: read files (the engine adapter does), or apply `RES_OPTIONS`/`LOCALDOMAIN`.
//! Spec: resolv.conf(5), hosts(5), glibc `resolv/res_init.c` (limits: 3 nameservers,
//! ndots ≤ 15, timeout ≤ 30 s, attempts ≤ 5).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use super::super::proto::Name;

/// Most nameservers used (glibc's MAXNS); later ones are ignored.
pub const MAX_NAMESERVERS: usize = 3;
/// Largest `ndots` (glibc's RES_MAXNDOTS).
pub const MAX_NDOTS: u8 = 15;
/// Largest `timeout` in seconds (glibc's RES_MAXRETRANS).
pub const MAX_TIMEOUT_SECS: u64 = 30;
/// Largest `attempts` (glibc's RES_MAXRETRY).
pub const MAX_ATTEMPTS: u8 = 5;
/// Most search domains kept (glibc before 2.26 kept 6; later ones are noted and dropped).
pub const MAX_SEARCH: usize = 16;

/// A line that was skipped (wholly or in part), and why.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ConfProblem {
    /// The line number, from 1.
    pub line: usize,
    /// What was wrong.
    pub reason: String,
}

/// A resolver file refused, with the first line at fault. The Display text is unstable.
#[derive(Clone, Debug, Eq, PartialEq, thiserror::Error)]
#[error("{file}:{line}: {reason}")]
pub struct ConfError {
    /// The file (or `<text>`).
    pub file: String,
    /// The line number, from 1.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

/// `/etc/resolv.conf`, read.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct ResolvConf {
    /// The nameservers (port 53), at most [`MAX_NAMESERVERS`]; 127.0.0.1 when the file
    /// names none (glibc's default).
    pub nameservers: Vec<SocketAddr>,
    /// The search list (`search`, or `domain`: the last of them wins).
    pub search: Vec<Name>,
    /// `options ndots:N` (default 1): names with at least this many dots are tried as
    /// given before the search list.
    pub ndots: u8,
    /// `options timeout:N` (default 5 s): how long one server is waited for.
    pub timeout: Duration,
    /// `options attempts:N` (default 2): rounds over the servers.
    pub attempts: u8,
    /// `options rotate`: start each query at the next server.
    pub rotate: bool,
    /// `options edns0`.
    pub edns0: bool,
    /// `options use-vc`: queries over TCP only.
    pub use_vc: bool,
    /// What was skipped.
    pub problems: Vec<ConfProblem>,
}

impl Default for ResolvConf {
    fn default() -> Self {
        Self {
            nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            search: Vec::new(),
            ndots: 1,
            timeout: Duration::from_secs(5),
            attempts: 2,
            rotate: false,
            edns0: false,
            use_vc: false,
            problems: Vec::new(),
        }
    }
}

impl ResolvConf {
    /// Reads resolv.conf text. Never fails: what glibc skips is skipped and noted in
    /// [`ResolvConf::problems`].
    #[must_use]
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf {
            nameservers: Vec::new(),
            ..ResolvConf::default()
        };
        let problem = conf_problem;
        let mut problems = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let words = words(raw);
            let Some((&keyword, args)) = words.split_first() else {
                continue;
            };
            match keyword {
                "nameserver" => {
                    let Some(&addr) = args.first() else {
                        problems.push(problem(line, "nameserver without an address".into()));
                        continue;
                    };
                    match nameserver(addr) {
                        Ok(_) if conf.nameservers.len() == MAX_NAMESERVERS => {
                            problems.push(problem(
                                line,
                                format!("more than {MAX_NAMESERVERS} nameservers: {addr} ignored"),
                            ));
                        }
                        Ok(server) => conf.nameservers.push(server),
                        Err(reason) => problems.push(problem(line, reason)),
                    }
                }
                "domain" | "search" => {
                    conf.search.clear();
                    let wanted = if keyword == "domain" {
                        &args[..args.len().min(1)]
                    } else {
                        args
                    };
                    for &domain in wanted {
                        if domain == "." {
                            continue;
                        }
                        if conf.search.len() == MAX_SEARCH {
                            problems.push(problem(
                                line,
                                format!("more than {MAX_SEARCH} search domains: {domain} ignored"),
                            ));
                            continue;
                        }
                        match Name::parse(domain.trim_end_matches('.'), Some(&Name::root())) {
                            Ok(name) => conf.search.push(name),
                            Err(error) => problems
                                .push(problem(line, format!("{keyword} {domain:?}: {error}"))),
                        }
                    }
                }
                "options" => {
                    for &option in args {
                        if let Err(reason) = conf.option(option) {
                            problems.push(problem(line, reason));
                        }
                    }
                }
                // sortlist, lookup (BSD), family and anything else: ignored, as glibc does.
                _ => {}
            }
        }
        if conf.nameservers.is_empty() {
            conf.nameservers = ResolvConf::default().nameservers;
        }
        conf.problems = problems;
        conf
    }

    /// The first problem as an error, for callers that refuse a file with skipped lines.
    ///
    /// # Errors
    /// A [`ConfError`] naming `file` and the first problem's line.
    pub fn check(&self, file: &str) -> Result<(), ConfError> {
        first_problem(file, &self.problems)
    }

    fn option(&mut self, option: &str) -> Result<(), String> {
        let number = |value: &str, max: u64| -> Result<u64, String> {
            value
                .parse::<u64>()
                .map(|n| n.min(max))
                .map_err(|_| format!("options {option}: not a number"))
        };
        if let Some(value) = option.strip_prefix("ndots:") {
            self.ndots = number(value, u64::from(MAX_NDOTS))? as u8;
        } else if let Some(value) = option.strip_prefix("timeout:") {
            self.timeout = Duration::from_secs(number(value, MAX_TIMEOUT_SECS)?.max(1));
        } else if let Some(value) = option.strip_prefix("attempts:") {
            self.attempts = (number(value, u64::from(MAX_ATTEMPTS))? as u8).max(1);
        } else {
            match option {
                "rotate" => self.rotate = true,
                "edns0" => self.edns0 = true,
                "use-vc" | "usevc" => self.use_vc = true,
                // debug, single-request, no-tld-query, trust-ad, inet6, ...: glibc's own
                // knobs or no-ops here; unknown options are ignored, as glibc does.
                _ => {}
            }
        }
        Ok(())
    }
}

/// `/etc/hosts`, read: addresses by name (case-insensitive), in file order.
#[derive(Clone, Debug, Default, Eq, PartialEq)]
pub struct Hosts {
    /// Lowercase absolute wire-form name to its addresses.
    by_name: HashMap<Box<[u8]>, Vec<IpAddr>>,
    /// What was skipped.
    pub problems: Vec<ConfProblem>,
}

impl Hosts {
    /// No entries.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads hosts-file text: `ADDRESS NAME [ALIAS...]`, `#` comments. Never fails: lines
    /// glibc skips (a bad address, no name) are skipped and noted in [`Hosts::problems`].
    #[must_use]
    pub fn parse(text: &str) -> Hosts {
        let mut hosts = Hosts::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let words = words(raw);
            let Some((&addr, names)) = words.split_first() else {
                continue;
            };
            let Ok(ip) = addr.parse::<IpAddr>() else {
                hosts
                    .problems
                    .push(conf_problem(line, format!("not an address: {addr:?}")));
                continue;
            };
            if names.is_empty() {
                hosts
                    .problems
                    .push(conf_problem(line, format!("{addr} without a name")));
            }
            for &name in names {
                if let Err(reason) = hosts.insert(name, ip) {
                    hosts
                        .problems
                        .push(conf_problem(line, format!("{name:?}: {reason}")));
                }
            }
        }
        hosts
    }

    /// Adds `ip` to `name`'s addresses.
    ///
    /// # Errors
    /// `name` is not a valid name.
    pub fn insert(&mut self, name: &str, ip: IpAddr) -> Result<(), String> {
        let name = absolute(name).map_err(|error| error.to_string())?;
        let ips = self.by_name.entry(name.key()).or_default();
        if !ips.contains(&ip) {
            ips.push(ip);
        }
        Ok(())
    }

    /// The addresses of `name` (case-insensitive; absolute or not), in file order.
    #[must_use]
    pub fn lookup(&self, name: &Name) -> Option<&[IpAddr]> {
        self.by_name.get(&name.key()).map(Vec::as_slice)
    }

    /// Whether it has no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }

    /// The first problem as an error, for callers that refuse a file with skipped lines.
    ///
    /// # Errors
    /// A [`ConfError`] naming `file` and the first problem's line.
    pub fn check(&self, file: &str) -> Result<(), ConfError> {
        first_problem(file, &self.problems)
    }
}

/// `name` (with or without its final dot) as an absolute name.
///
/// # Errors
/// Not a valid name.
pub(crate) fn absolute(name: &str) -> Result<Name, super::super::proto::DnsError> {
    if name.ends_with('.') {
        Name::parse(name, None)
    } else {
        Name::parse(name, Some(&Name::root()))
    }
}

fn conf_problem(line: usize, reason: String) -> ConfProblem {
    ConfProblem { line, reason }
}

fn first_problem(file: &str, problems: &[ConfProblem]) -> Result<(), ConfError> {
    match problems.first() {
        None => Ok(()),
        Some(p) => Err(ConfError {
            file: file.to_owned(),
            line: p.line,
            reason: p.reason.clone(),
        }),
    }
}

/// The words of a line up to a comment (`#` or `;` starting a word; a line starting with
/// either is all comment).
fn words(line: &str) -> Vec<&str> {
    line.split_ascii_whitespace()
        .take_while(|w| !w.starts_with('#') && !w.starts_with(';'))
        .collect()
}

/// A nameserver address: IPv4, or IPv6 with an optional numeric `%scope`.
fn nameserver(text: &str) -> Result<SocketAddr, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, 53));
    }
    if let Some((ip, scope)) = text.split_once('%')
        && let Ok(ip) = ip.parse::<Ipv6Addr>()
    {
        return match scope.parse::<u32>() {
            Ok(scope) => Ok(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope))),
            Err(_) => Err(format!(
                "nameserver {text}: only numeric scope ids are understood"
            )),
        };
    }
    Err(format!("nameserver {text:?}: not an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_defaults_for_an_empty_file() {
        let conf = ResolvConf::parse("");
        assert_eq!(conf, ResolvConf::default());
        assert_eq!(conf.nameservers, [SocketAddr::from(([127, 0, 0, 1], 53))]);
        assert_eq!(
            (conf.ndots, conf.timeout, conf.attempts),
            (1, Duration::from_secs(5), 2)
        );
    }

    #[test]
    fn every_setting_is_read() {
        let conf = ResolvConf::parse(
            "# written by hand\n\
             ; another comment\n\
             nameserver 192.0.2.1\n\
             nameserver 2001:db8::53 # trailing comment\n\
             nameserver fe80::1%2\n\
             nameserver 192.0.2.4\n\
             domain old.example\n\
             search Example.COM. corp.example.com\n\
             options ndots:2 timeout:1 attempts:3 rotate edns0 use-vc single-request\n\
             sortlist 130.155.160.0/255.255.240.0\n",
        );
        assert_eq!(
            conf.nameservers,
            [
                "192.0.2.1:53".parse::<SocketAddr>().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
                "[fe80::1%2]:53".parse().unwrap(),
            ]
        );
        let search: Vec<String> = conf.search.iter().map(ToString::to_string).collect();
        assert_eq!(search, ["Example.COM.", "corp.example.com."]);
        assert_eq!(conf.ndots, 2);
        assert_eq!(conf.timeout, Duration::from_secs(1));
        assert_eq!(conf.attempts, 3);
        assert!(conf.rotate && conf.edns0 && conf.use_vc);
        assert_eq!(conf.problems.len(), 1, "{:?}", conf.problems);
        assert_eq!(conf.problems[0].line, 6);
        assert!(conf.problems[0].reason.contains("more than 3"));
    }

    #[test]
    fn the_last_of_domain_and_search_wins_and_limits_clamp() {
        let conf = ResolvConf::parse(
            "search a.example b.example\ndomain c.example d.example\noptions ndots:99 timeout:0 attempts:9\n",
        );
        assert_eq!(conf.search.len(), 1);
        assert_eq!(conf.search[0].to_string(), "c.example.");
        assert_eq!(conf.ndots, MAX_NDOTS);
        assert_eq!(conf.timeout, Duration::from_secs(1));
        assert_eq!(conf.attempts, MAX_ATTEMPTS);
        assert!(conf.problems.is_empty());
    }

    #[test]
    fn bad_lines_are_skipped_with_their_line_numbers() {
        let conf = ResolvConf::parse(
            "nameserver not-an-address\nnameserver\nnameserver fe80::1%eth0\noptions ndots:x\nsearch ok.example bad..example\nnameserver 192.0.2.9\n",
        );
        assert_eq!(conf.nameservers, ["192.0.2.9:53".parse().unwrap()]);
        let lines: Vec<usize> = conf.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5]);
        assert_eq!(conf.ndots, 1, "a bad number leaves the default");
        assert_eq!(conf.search.len(), 1);
        let error = conf.check("/etc/resolv.conf").unwrap_err();
        assert_eq!(error.line, 1);
        assert_eq!(
            error.to_string(),
            "/etc/resolv.conf:1: nameserver \"not-an-address\": not an IP address"
        );
    }

    #[test]
    fn hosts_by_name_and_alias_case_insensitively() {
        let hosts = Hosts::parse(
            "127.0.0.1 localhost\n\
             ::1 localhost ip6-localhost # v6\n\
             192.0.2.7  Web.Example.com  web   \n\
             2001:db8::7 web.example.com\n\
             # 192.0.2.8 commented.example\n\
             not-an-ip host\n\
             192.0.2.9\n\
             192.0.2.10 bad..name good\n",
        );
        let ips = |name: &str| {
            hosts
                .lookup(&absolute(name).unwrap())
                .map(<[IpAddr]>::to_vec)
        };
        assert_eq!(
            ips("LOCALHOST").unwrap(),
            [
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "::1".parse().unwrap()
            ]
        );
        assert_eq!(
            ips("web.example.com.").unwrap(),
            [
                "192.0.2.7".parse::<IpAddr>().unwrap(),
                "2001:db8::7".parse().unwrap()
            ]
        );
        assert_eq!(
            ips("web").unwrap(),
            ["192.0.2.7".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(ips("good").unwrap().len(), 1);
        assert!(ips("commented.example").is_none());
        let lines: Vec<usize> = hosts.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [6, 7, 8]);
        assert_eq!(hosts.check("/etc/hosts").unwrap_err().line, 6);
    }
}
