//! The stub resolver as a sans-IO machine ([`ResolverMachine`]).
//!
//! Owns: *lookups* (what a caller asked: a name as given and a type; the search list, hosts
//! and literal addresses, CNAME chains across replies, the final answer or error),
//! *queries* (one (absolute name, type) asked of the servers, shared by every lookup that
//! needs it: in-flight de-duplication) and *exchanges* (one query sent to one server over
//! UDP or TCP, with its own random id; the driver gives each UDP exchange a socket of its
//! own, so a random source port too).
//! Contract: no sockets, no clocks, no threads; every input carries `now`. Replies that
//! do not match their exchange (source, id, QR, question) are ignored and counted; no
//! peer bytes can panic it; memory is bounded by [`ResolverConfig::max_lookups`] and the
//! cache's limits. Query ids come from a ChaCha generator seeded by the caller.
//! Spec: glibc's `res_nsearch` order (search list and ndots; NXDOMAIN and NODATA go on to
//! the next name, a timeout stops the search), `res_send` (per-server timeout, `attempts`
//! rounds, `rotate`, TCP after TC), RFC 6891 §7 (FORMERR to EDNS: ask again without).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::cache::Cache;
use super::conf::absolute;
use super::error::{ResolveError, ServerError, ServerErrorKind};
use super::reply::{MAX_CHAIN, Outcome, Reply, Verdict, read_reply};
use super::{Answer, EDNS_UDP_SIZE, ResolverConfig, Source};
use crate::dns::proto::message::{CLASS_IN, rcode};
use crate::dns::proto::{
    DnsError, Edns, Header, MessageWriter, Name, RData, RType, Record, Transport,
};

/// A lookup, from [`ResolverMachine::lookup`].
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct LookupId(pub u64);

/// One query sent to one server over one transport; the driver opens a socket (or a TCP
/// connection) per exchange and closes it when the machine releases it.
#[derive(Clone, Copy, Debug, Eq, Hash, Ord, PartialEq, PartialOrd)]
pub struct ExchangeId(pub u64);

/// A message to send.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct Transmit {
    /// Its exchange: UDP replies come back with it ([`ResolverMachine::handle_datagram`]),
    /// and so does a TCP reply ([`ResolverMachine::handle_tcp_reply`]).
    pub exchange: ExchangeId,
    /// Where to.
    pub server: SocketAddr,
    /// UDP (a fresh socket) or TCP (a fresh connection; the driver frames the message).
    pub transport: Transport,
    /// The query.
    pub message: Bytes,
}

/// A finished lookup.
#[derive(Clone, Debug, Eq, PartialEq)]
pub struct LookupEvent {
    /// Which.
    pub id: LookupId,
    /// Its records, or why there are none.
    pub result: Result<Answer, ResolveError>,
}

/// Counters of a resolver.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct ResolverStats {
    /// Queries sent over UDP.
    pub udp_sent: u64,
    /// Queries sent over TCP.
    pub tcp_sent: u64,
    /// Replies ignored: wrong source, id, question or flags, or unreadable.
    pub ignored: u64,
    /// Exchanges that timed out.
    pub timeouts: u64,
    /// Steps of lookups answered from the cache.
    pub cache_hits: u64,
    /// Lookups that joined a query already in flight.
    pub joined: u64,
}

/// The stub resolver (see the module docs). The driver:
///
/// 1. calls [`ResolverMachine::lookup`] for what callers ask, and hands it what happened:
///    [`ResolverMachine::handle_datagram`], [`ResolverMachine::handle_tcp_reply`],
///    [`ResolverMachine::handle_exchange_failed`] (no socket, connection refused or lost),
///    [`ResolverMachine::handle_timeout`] (at [`ResolverMachine::poll_timeout`]);
/// 2. then takes, until empty: [`ResolverMachine::poll_event`] (finished lookups),
///    [`ResolverMachine::poll_release`] (exchanges to close) and
///    [`ResolverMachine::poll_transmit`] (messages to send, each on a new socket or
///    connection);
/// 3. arms one timer for [`ResolverMachine::poll_timeout`].
#[derive(Debug)]
pub struct ResolverMachine {
    config: ResolverConfig,
    cache: Cache,
    rng: StdRng,
    next_lookup: u64,
    next_exchange: u64,
    lookups: HashMap<LookupId, Lookup>,
    queries: HashMap<QueryKey, Query>,
    exchanges: HashMap<ExchangeId, Exchange>,
    /// The deadline of every exchange being waited for.
    deadlines: BTreeSet<(Instant, ExchangeId)>,
    transmits: VecDeque<Transmit>,
    releases: VecDeque<ExchangeId>,
    events: VecDeque<LookupEvent>,
    /// The server the next query starts at (`rotate`).
    rotation: usize,
    stats: ResolverStats,
}

/// A query's identity: lowercase wire-form name and type.
type QueryKey = (Box<[u8]>, RType);

#[derive(Debug)]
struct Lookup {
    /// The name as the caller gave it (for errors).
    asked: String,
    rtype: RType,
    /// The names still to try, in order.
    candidates: VecDeque<Name>,
    /// The name being tried (an answer's name).
    candidate: Name,
    /// CNAMEs followed so far from `candidate`.
    aliases: Vec<Record>,
    /// The query it waits for.
    waiting_on: Option<QueryKey>,
    /// Some name had NODATA (reported over NXDOMAIN at the end, as glibc does).
    nodata: bool,
    /// Some name's servers failed (reported over NXDOMAIN at the end).
    failure: Option<Vec<ServerError>>,
}

#[derive(Debug)]
struct Query {
    name: Name,
    rtype: RType,
    waiters: Vec<LookupId>,
    /// The server of step 0 (`rotate`).
    start: usize,
    /// Exchanges given up on so far: the server is `(start + step) % servers`, the round
    /// `step / servers`.
    step: usize,
    /// Whether the next exchange carries EDNS.
    edns: bool,
    /// The exchange being waited for.
    current: Option<ExchangeId>,
    /// The UDP exchange before it, still listening: a late reply is still an answer.
    previous: Option<ExchangeId>,
    failures: Vec<ServerError>,
}

#[derive(Debug)]
struct Exchange {
    key: QueryKey,
    server: SocketAddr,
    transport: Transport,
    id: u16,
    edns: bool,
    /// While it is the query's current exchange.
    deadline: Option<Instant>,
}

impl ResolverMachine {
    /// A resolver with `config`, its query ids drawn from a generator seeded with `seed`
    /// (the engine adapter seeds it from the OS; tests give a fixed one).
    #[must_use]
    pub fn new(config: ResolverConfig, seed: [u8; 32]) -> Self {
        Self {
            cache: Cache::new(config.cache.clone()),
            config,
            rng: StdRng::from_seed(seed),
            next_lookup: 0,
            next_exchange: 0,
            lookups: HashMap::new(),
            queries: HashMap::new(),
            exchanges: HashMap::new(),
            deadlines: BTreeSet::new(),
            transmits: VecDeque::new(),
            releases: VecDeque::new(),
            events: VecDeque::new(),
            rotation: 0,
            stats: ResolverStats::default(),
        }
    }

    /// Starts looking up `name`'s records of `rtype`; the result comes as a
    /// [`LookupEvent`] (at once for a literal address, a hosts entry, a cache hit or a bad
    /// name).
    ///
    /// `name` is as a user writes it: absolute with a final dot (asked as is), else
    /// completed with the search list per `ndots`. An IP address (`192.0.2.1`, `::1`,
    /// `[::1]`) asked for A or AAAA is its own answer. A and AAAA of a name in the hosts
    /// file are answered from it alone (no records of the family: no records); `localhost`
    /// and names under it that the hosts file lacks are the loopback addresses (RFC 6761
    /// §6.3), never sent to a server.
    pub fn lookup(&mut self, name: &str, rtype: RType, now: Instant) -> LookupId {
        let id = LookupId(self.next_lookup);
        self.next_lookup += 1;
        if let Some(result) = self.immediate(name, rtype) {
            self.events.push_back(LookupEvent { id, result });
            return id;
        }
        if self.lookups.len() >= self.config.max_lookups {
            let limit = self.config.max_lookups;
            let result = Err(ResolveError::TooManyLookups { limit });
            self.events.push_back(LookupEvent { id, result });
            return id;
        }
        let candidates = match self.candidates(name) {
            Ok(candidates) => candidates,
            Err(reason) => {
                let name = name.to_owned();
                let result = Err(ResolveError::BadName { name, reason });
                self.events.push_back(LookupEvent { id, result });
                return id;
            }
        };
        self.lookups.insert(
            id,
            Lookup {
                asked: name.to_owned(),
                rtype,
                candidates,
                candidate: Name::root(),
                aliases: Vec::new(),
                waiting_on: None,
                nodata: false,
                failure: None,
            },
        );
        self.next_candidate(id, now);
        id
    }

    /// The caller lost interest: no event will come for `id`. A query it started goes on
    /// (its answer is cached).
    pub fn cancel(&mut self, id: LookupId) {
        if let Some(lookup) = self.lookups.remove(&id)
            && let Some(key) = lookup.waiting_on
            && let Some(query) = self.queries.get_mut(&key)
        {
            query.waiters.retain(|w| *w != id);
        }
    }

    /// A datagram arrived on `exchange`'s socket from `from`.
    pub fn handle_datagram(
        &mut self,
        exchange: ExchangeId,
        from: SocketAddr,
        data: &[u8],
        now: Instant,
    ) {
        let Some(ex) = self.exchanges.get(&exchange) else {
            return;
        };
        // RFC 5452 §9.1: the reply must come from the address and port asked.
        let same_source = from.ip().to_canonical() == ex.server.ip().to_canonical()
            && from.port() == ex.server.port();
        let query = self.queries.get(&ex.key);
        let verdict = match query {
            Some(query) if same_source && ex.transport == Transport::Udp => {
                read_reply(data, ex.id, &query.name, query.rtype, false)
            }
            _ => Verdict::NotOurs,
        };
        match verdict {
            Verdict::Reply(reply) => self.on_reply(exchange, reply, now),
            // Over UDP anyone can send anything: wait on for the real reply.
            Verdict::NotOurs | Verdict::Malformed => self.stats.ignored += 1,
        }
    }

    /// A whole message (its length prefix taken off) arrived on `exchange`'s TCP
    /// connection.
    pub fn handle_tcp_reply(&mut self, exchange: ExchangeId, message: &[u8], now: Instant) {
        let Some(ex) = self.exchanges.get(&exchange) else {
            return;
        };
        let verdict = match self.queries.get(&ex.key) {
            Some(query) if ex.transport == Transport::Tcp => {
                read_reply(message, ex.id, &query.name, query.rtype, true)
            }
            _ => return,
        };
        match verdict {
            Verdict::Reply(reply) => self.on_reply(exchange, reply, now),
            // The connection is ours alone: a wrong reply on it is that server's failure.
            Verdict::NotOurs | Verdict::Malformed => {
                self.stats.ignored += 1;
                self.exchange_failed(exchange, ServerErrorKind::Malformed, now);
            }
        }
    }

    /// `exchange` cannot go on: its socket could not be opened, its connection was
    /// refused or lost before the reply.
    pub fn handle_exchange_failed(&mut self, exchange: ExchangeId, reason: &str, now: Instant) {
        self.exchange_failed(
            exchange,
            ServerErrorKind::Unreachable(reason.to_owned()),
            now,
        );
    }

    /// Time passed: exchanges whose server did not answer in time give way to the next.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, exchange)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            let Some(ex) = self.exchanges.get_mut(&exchange) else {
                continue;
            };
            ex.deadline = None;
            let (key, server) = (ex.key.clone(), ex.server);
            if self
                .queries
                .get(&key)
                .is_some_and(|q| q.current == Some(exchange))
            {
                self.stats.timeouts += 1;
                // Kept listening as the previous exchange (see `send`).
                let failure = ServerError {
                    server,
                    kind: ServerErrorKind::TimedOut,
                };
                self.next_step(&key, failure, now);
            }
        }
    }

    /// The next message to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next exchange that is over: close its socket or connection.
    #[must_use]
    pub fn poll_release(&mut self) -> Option<ExchangeId> {
        self.releases.pop_front()
    }

    /// The next finished lookup.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<LookupEvent> {
        self.events.pop_front()
    }

    /// When [`ResolverMachine::handle_timeout`] has work next.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Whether a transmit or a release is waiting to be polled.
    #[must_use]
    pub fn has_io(&self) -> bool {
        !self.transmits.is_empty() || !self.releases.is_empty()
    }

    /// The counters.
    #[must_use]
    pub fn stats(&self) -> ResolverStats {
        self.stats
    }

    /// The cache.
    #[must_use]
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Forgets every cached answer.
    pub fn clear_cache(&mut self) {
        self.cache.clear();
    }

    /// Lookups in flight.
    #[must_use]
    pub fn lookups_in_flight(&self) -> usize {
        self.lookups.len()
    }

    /// Exchanges not yet released (sockets and connections the driver holds for it).
    #[must_use]
    pub fn open_exchanges(&self) -> usize {
        self.exchanges.len()
    }

    /// The settings.
    #[must_use]
    pub fn config(&self) -> &ResolverConfig {
        &self.config
    }

    /// A literal address, or a hosts entry.
    fn immediate(&self, name: &str, rtype: RType) -> Option<Result<Answer, ResolveError>> {
        if rtype != RType::A && rtype != RType::AAAA {
            return None;
        }
        let bare = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        let (ips, source, owner) = if let Ok(ip) = bare.parse::<IpAddr>() {
            (
                vec![ip],
                Source::Literal,
                absolute(bare).unwrap_or_else(|_| Name::root()),
            )
        } else {
            let owner = absolute(name).ok()?;
            match self.config.hosts.lookup(&owner) {
                Some(ips) => (ips.to_vec(), Source::Hosts, owner),
                None if is_localhost(&owner) => (
                    vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
                    Source::Localhost,
                    owner,
                ),
                None => return None,
            }
        };
        let records: Vec<Record> = ips
            .into_iter()
            .filter_map(|ip| match (ip, rtype) {
                (IpAddr::V4(a), RType::A) => Some(RData::A(a)),
                (IpAddr::V6(a), RType::AAAA) => Some(RData::Aaaa(a)),
                _ => None,
            })
            .map(|data| Record {
                name: owner.clone(),
                class: CLASS_IN,
                ttl: 0,
                data,
            })
            .collect();
        Some(if records.is_empty() {
            Err(ResolveError::NoRecords {
                name: name.to_owned(),
                rtype,
            })
        } else {
            Ok(Answer {
                name: owner,
                rtype,
                aliases: Vec::new(),
                records,
                source,
            })
        })
    }

    /// The names to ask, in order (glibc's `res_nsearch`): a name with a final dot alone;
    /// else the name as given first when it has at least `ndots` dots, then the name with
    /// each search domain, then the name as given if not tried yet.
    fn candidates(&self, name: &str) -> Result<VecDeque<Name>, &'static str> {
        let reason = |error: DnsError| match error {
            DnsError::BadName(reason) => reason,
            _ => "not a valid name",
        };
        if name.is_empty() {
            return Err("empty name");
        }
        let as_is = absolute(name).map_err(reason)?;
        if name.ends_with('.') {
            return Ok(VecDeque::from([as_is]));
        }
        let dots = name.bytes().filter(|&b| b == b'.').count();
        let first = dots >= usize::from(self.config.ndots);
        let mut names = VecDeque::new();
        if first {
            names.push_back(as_is.clone());
        }
        for domain in &self.config.search {
            // A name too long with this domain is skipped, as glibc does.
            if let Ok(full) = Name::parse(name, Some(domain))
                && !names.iter().any(|n: &Name| n.eq_ignore_case(&full))
            {
                names.push_back(full);
            }
        }
        if !first && !names.iter().any(|n| n.eq_ignore_case(&as_is)) {
            names.push_back(as_is);
        }
        Ok(names)
    }

    /// Moves `id` to its next name, or finishes it when none is left.
    fn next_candidate(&mut self, id: LookupId, now: Instant) {
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        match lookup.candidates.pop_front() {
            Some(name) => {
                lookup.candidate = name.clone();
                lookup.aliases.clear();
                self.resolve(id, name, now);
            }
            None => {
                let asked = lookup.asked.clone();
                let error = if lookup.nodata {
                    ResolveError::NoRecords {
                        name: asked,
                        rtype: lookup.rtype,
                    }
                } else if let Some(failures) = lookup.failure.take() {
                    failure_error(asked, failures)
                } else {
                    ResolveError::NxDomain { name: asked }
                };
                self.finish(id, Err(error));
            }
        }
    }

    /// Asks for `name` on behalf of `id`: from the cache, by joining a query in flight, or
    /// by a new query.
    fn resolve(&mut self, id: LookupId, name: Name, now: Instant) {
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        let rtype = lookup.rtype;
        if let Some(outcome) = self.cache.get(&name, rtype, now) {
            self.stats.cache_hits += 1;
            self.advance(id, Ok((outcome, Source::Cache)), now);
            return;
        }
        let key: QueryKey = (name.key(), rtype);
        lookup.waiting_on = Some(key.clone());
        if let Some(query) = self.queries.get_mut(&key) {
            query.waiters.push(id);
            self.stats.joined += 1;
            return;
        }
        if self.config.servers.is_empty() {
            let error = ResolveError::Config("no nameservers".into());
            self.finish(id, Err(error));
            return;
        }
        if self.queries.len() >= self.config.max_lookups {
            let limit = self.config.max_lookups;
            self.finish(id, Err(ResolveError::TooManyLookups { limit }));
            return;
        }
        let start = if self.config.rotate {
            self.rotation = (self.rotation + 1) % self.config.servers.len();
            self.rotation
        } else {
            0
        };
        self.queries.insert(
            key.clone(),
            Query {
                name,
                rtype,
                waiters: vec![id],
                start,
                step: 0,
                edns: self.config.edns,
                current: None,
                previous: None,
                failures: Vec::new(),
            },
        );
        self.send(&key, self.first_transport(), now);
    }

    /// What a step of `id` came to: records (done), an alias to follow, a negative answer
    /// or a failure (the next name, or done).
    fn advance(
        &mut self,
        id: LookupId,
        result: Result<(Outcome, Source), Vec<ServerError>>,
        now: Instant,
    ) {
        let Some(lookup) = self.lookups.get_mut(&id) else {
            return;
        };
        lookup.waiting_on = None;
        match result {
            Ok((Outcome::Records { chain, records }, source)) => {
                lookup.aliases.extend(chain);
                let answer = Answer {
                    name: lookup.candidate.clone(),
                    rtype: lookup.rtype,
                    aliases: std::mem::take(&mut lookup.aliases),
                    records,
                    source,
                };
                self.finish(id, Ok(answer));
            }
            Ok((Outcome::Alias { chain, target }, _)) => {
                lookup.aliases.extend(chain);
                let looped = target.eq_ignore_case(&lookup.candidate)
                    || lookup
                        .aliases
                        .iter()
                        .any(|r| r.name.eq_ignore_case(&target));
                if lookup.aliases.len() > MAX_CHAIN || looped {
                    let name = lookup.asked.clone();
                    let error = ResolveError::AliasChain {
                        name,
                        limit: MAX_CHAIN,
                    };
                    self.finish(id, Err(error));
                } else {
                    self.resolve(id, target, now);
                }
            }
            Ok((Outcome::NxDomain { .. }, _)) => self.next_candidate(id, now),
            Ok((Outcome::NoData { .. }, _)) => {
                lookup.nodata = true;
                self.next_candidate(id, now);
            }
            Err(failures) => {
                let timed_out = failures.iter().all(|f| f.kind == ServerErrorKind::TimedOut);
                if timed_out {
                    // glibc: a timeout ends the search (the next name would time out too).
                    let error = failure_error(lookup.asked.clone(), failures);
                    self.finish(id, Err(error));
                } else {
                    lookup.failure = Some(failures);
                    self.next_candidate(id, now);
                }
            }
        }
    }

    fn finish(&mut self, id: LookupId, result: Result<Answer, ResolveError>) {
        if self.lookups.remove(&id).is_some() {
            self.events.push_back(LookupEvent { id, result });
        }
    }

    fn first_transport(&self) -> Transport {
        if self.config.tcp_only {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    /// Sends query `key` to its current step's server over `transport`, as a new exchange.
    fn send(&mut self, key: &QueryKey, transport: Transport, now: Instant) {
        let servers = self.config.servers.len();
        let Some(query) = self.queries.get_mut(key) else {
            return;
        };
        let server = self.config.servers[(query.start + query.step) % servers];
        let id: u16 = self.rng.random();
        let message = build_query(id, &query.name, query.rtype, query.edns);
        let exchange = ExchangeId(self.next_exchange);
        self.next_exchange += 1;
        let deadline = now + self.config.timeout;
        let edns = query.edns;
        // The exchange before keeps listening (a late reply still answers); older ones go.
        let older = query.previous.take();
        let before = query.current.replace(exchange);
        if let Some(old) = older {
            self.release(old);
        }
        if let Some(before) = before {
            match self.exchanges.get(&before).map(|e| e.transport) {
                Some(Transport::Udp) => {
                    self.stop_waiting(before);
                    if let Some(query) = self.queries.get_mut(key) {
                        query.previous = Some(before);
                    }
                }
                _ => self.release(before),
            }
        }
        self.exchanges.insert(
            exchange,
            Exchange {
                key: key.clone(),
                server,
                transport,
                id,
                edns,
                deadline: Some(deadline),
            },
        );
        self.deadlines.insert((deadline, exchange));
        match transport {
            Transport::Udp => self.stats.udp_sent += 1,
            Transport::Tcp => self.stats.tcp_sent += 1,
        }
        self.transmits.push_back(Transmit {
            exchange,
            server,
            transport,
            message,
        });
    }

    /// A reply that passed the checks arrived on `exchange`.
    fn on_reply(&mut self, exchange: ExchangeId, reply: Reply, now: Instant) {
        let Some(ex) = self.exchanges.get(&exchange) else {
            return;
        };
        let (key, server, transport, edns) = (ex.key.clone(), ex.server, ex.transport, ex.edns);
        let Some(query) = self.queries.get_mut(&key) else {
            return;
        };
        let current = query.current == Some(exchange);
        match reply {
            Reply::Answer(outcome, ttl) => {
                self.complete(&key, outcome, ttl, Source::Server(server), now);
            }
            // Only the exchange being waited for moves the query on.
            _ if !current => {
                query.previous = None;
                self.release(exchange);
            }
            Reply::Truncated => {
                query.current = None;
                self.release(exchange);
                self.send(&key, Transport::Tcp, now);
            }
            Reply::Failure(code) if code == rcode::FORMERR && edns => {
                // RFC 6891 §7: a server that does not know EDNS may answer FORMERR.
                query.current = None;
                query.edns = false;
                self.release(exchange);
                self.send(&key, transport, now);
            }
            Reply::Failure(code) => {
                query.current = None;
                self.release(exchange);
                let failure = ServerError {
                    server,
                    kind: ServerErrorKind::Rcode(code),
                };
                self.next_step(&key, failure, now);
            }
        }
    }

    /// `exchange` ended without a reply.
    fn exchange_failed(&mut self, exchange: ExchangeId, kind: ServerErrorKind, now: Instant) {
        let Some(ex) = self.exchanges.get(&exchange) else {
            return;
        };
        let (key, server) = (ex.key.clone(), ex.server);
        let Some(query) = self.queries.get_mut(&key) else {
            return;
        };
        if query.current == Some(exchange) {
            query.current = None;
            self.release(exchange);
            self.next_step(&key, ServerError { server, kind }, now);
        } else if query.previous == Some(exchange) {
            query.previous = None;
            self.release(exchange);
        }
    }

    /// The current server failed (`failure`): the next server, or the next round, or the
    /// query fails.
    fn next_step(&mut self, key: &QueryKey, failure: ServerError, now: Instant) {
        let steps = self.config.servers.len() * usize::from(self.config.attempts.max(1));
        let edns = self.config.edns;
        let Some(query) = self.queries.get_mut(key) else {
            return;
        };
        query.failures.push(failure);
        query.step += 1;
        query.edns = edns;
        if query.step < steps {
            self.send(key, self.first_transport(), now);
            return;
        }
        let Some(query) = self.queries.remove(key) else {
            return;
        };
        for exchange in query.current.into_iter().chain(query.previous) {
            self.release(exchange);
        }
        for waiter in query.waiters {
            self.advance(waiter, Err(query.failures.clone()), now);
        }
    }

    /// Query `key` got its answer: cache it, release its exchanges, move its lookups on.
    fn complete(
        &mut self,
        key: &QueryKey,
        outcome: Outcome,
        ttl: u32,
        source: Source,
        now: Instant,
    ) {
        let Some(query) = self.queries.remove(key) else {
            return;
        };
        for exchange in query.current.into_iter().chain(query.previous) {
            self.release(exchange);
        }
        self.cache
            .insert(&query.name, query.rtype, &outcome, ttl, now);
        for waiter in query.waiters {
            self.advance(waiter, Ok((outcome.clone(), source)), now);
        }
    }

    /// Stops the timer of `exchange` (it may still listen).
    fn stop_waiting(&mut self, exchange: ExchangeId) {
        if let Some(ex) = self.exchanges.get_mut(&exchange)
            && let Some(at) = ex.deadline.take()
        {
            self.deadlines.remove(&(at, exchange));
        }
    }

    /// Forgets `exchange`; the driver closes its socket or connection.
    fn release(&mut self, exchange: ExchangeId) {
        self.stop_waiting(exchange);
        if self.exchanges.remove(&exchange).is_some() {
            self.releases.push_back(exchange);
        }
    }
}

/// The error of a lookup whose servers all failed: timed out if every exchange did.
fn failure_error(name: String, failures: Vec<ServerError>) -> ResolveError {
    if failures.iter().all(|f| f.kind == ServerErrorKind::TimedOut) {
        let mut servers: Vec<SocketAddr> = Vec::new();
        for failure in &failures {
            if !servers.contains(&failure.server) {
                servers.push(failure.server);
            }
        }
        ResolveError::TimedOut { name, servers }
    } else {
        ResolveError::ServerFailure { name, failures }
    }
}

/// A query: RD set, one question (class IN), and an OPT record when `edns`.
fn build_query(id: u16, name: &Name, rtype: RType, edns: bool) -> Bytes {
    let header = Header {
        id,
        flags: Header::RD,
        ..Header::default()
    };
    // A name is at most 255 bytes: header, question and OPT fit 512 bytes.
    let mut writer = MessageWriter::new(Vec::with_capacity(64), header, 512);
    writer.question_raw(name.wire(), rtype, CLASS_IN);
    if edns {
        writer.reserve(11);
        writer.opt(Edns {
            udp_size: EDNS_UDP_SIZE,
            ext_rcode: 0,
            version: 0,
            dnssec_ok: false,
        });
    }
    Bytes::from(writer.finish())
}

/// `localhost.` or a name under it (RFC 6761 §6.3).
fn is_localhost(name: &Name) -> bool {
    name.labels()
        .last()
        .is_some_and(|label| label.eq_ignore_ascii_case(b"localhost"))
}
