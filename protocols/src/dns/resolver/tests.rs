//! The resolver machine against a scripted server under a fake clock: every transmit is
//! read back as a DNS message, the test writes the reply it wants (right, wrong, hostile),
//! and time moves only when the test says.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use super::reply::MAX_CHAIN;
use super::*;
use crate::dns::proto::message::{CLASS_IN, rcode};
use crate::dns::proto::{Header, Message, MessageWriter, Section, Soa, Transport};

fn n(text: &str) -> Name {
    Name::parse(text, None).expect(text)
}

fn server(port: u16) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 53], port))
}

fn a(owner: &str, ip: [u8; 4], ttl: u32) -> Record {
    Record {
        name: n(owner),
        class: CLASS_IN,
        ttl,
        data: RData::A(ip.into()),
    }
}

fn cname(owner: &str, target: &str, ttl: u32) -> Record {
    Record {
        name: n(owner),
        class: CLASS_IN,
        ttl,
        data: RData::Cname(n(target)),
    }
}

fn soa(zone: &str, ttl: u32, minimum: u32) -> Record {
    Record {
        name: n(zone),
        class: CLASS_IN,
        ttl,
        data: RData::Soa(Soa {
            mname: n(&format!("ns.{zone}")),
            rname: n(&format!("hostmaster.{zone}")),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum,
        }),
    }
}

/// A reply to `query` (its id and question echoed) with `rcode`, `flags` added, answers
/// and authority records.
fn reply(query: &[u8], code: u16, flags: u16, answers: &[Record], authority: &[Record]) -> Vec<u8> {
    let q = Message::parse(query).expect("our query parses");
    let header = Header {
        id: q.header.id,
        flags: Header::QR | Header::RD | Header::RA | flags | code,
        ..Header::default()
    };
    let mut w = MessageWriter::new(Vec::new(), header, 65_535);
    let question = &q.questions[0];
    w.question_raw(question.name.wire(), question.qtype, question.qclass);
    for r in answers {
        assert!(w.record(Section::Answer, r));
    }
    for r in authority {
        assert!(w.record(Section::Authority, r));
    }
    w.finish()
}

/// The machine, the fake clock and what came out of it.
struct Harness {
    m: ResolverMachine,
    now: Instant,
    sent: Vec<Transmit>,
    released: Vec<ExchangeId>,
    events: Vec<LookupEvent>,
}

impl Harness {
    fn new(config: ResolverConfig) -> Self {
        Harness {
            m: ResolverMachine::new(config, [7; 32]),
            now: Instant::now(),
            sent: Vec::new(),
            released: Vec::new(),
            events: Vec::new(),
        }
    }

    fn servers(servers: &[SocketAddr]) -> Self {
        Self::new(
            ResolverConfig::with_servers(servers.iter().copied())
                .timeout(Duration::from_secs(1))
                .attempts(2),
        )
    }

    fn pump(&mut self) {
        while let Some(t) = self.m.poll_transmit() {
            self.sent.push(t);
        }
        while let Some(e) = self.m.poll_release() {
            self.released.push(e);
        }
        while let Some(e) = self.m.poll_event() {
            self.events.push(e);
        }
    }

    fn lookup(&mut self, name: &str, rtype: RType) -> LookupId {
        let id = self.m.lookup(name, rtype, self.now);
        self.pump();
        id
    }

    /// The oldest transmit not yet taken.
    fn take(&mut self) -> Transmit {
        assert!(
            !self.sent.is_empty(),
            "no transmit; events: {:?}",
            self.events
        );
        self.sent.remove(0)
    }

    fn no_transmit(&self) {
        assert!(
            self.sent.is_empty(),
            "unexpected transmits: {:?}",
            self.sent
        );
    }

    /// `bytes` from `t`'s server on `t`'s exchange and transport.
    fn deliver(&mut self, t: &Transmit, bytes: &[u8]) {
        match t.transport {
            Transport::Udp => self
                .m
                .handle_datagram(t.exchange, t.server, bytes, self.now),
            Transport::Tcp => self.m.handle_tcp_reply(t.exchange, bytes, self.now),
        }
        self.pump();
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.m.handle_timeout(self.now);
        self.pump();
    }

    fn result(&mut self, id: LookupId) -> Result<Answer, ResolveError> {
        let at = self
            .events
            .iter()
            .position(|e| e.id == id)
            .unwrap_or_else(|| panic!("no event for {id:?}; events: {:?}", self.events));
        self.events.remove(at).result
    }

    fn pending(&self, id: LookupId) -> bool {
        !self.events.iter().any(|e| e.id == id)
    }
}

fn question(t: &Transmit) -> (String, RType) {
    let q = Message::parse(&t.message).expect("a query");
    (q.questions[0].name.to_string(), q.questions[0].qtype)
}

fn ips(answer: &Answer) -> Vec<IpAddr> {
    answer.ips()
}

#[test]
fn a_query_is_rd_with_one_question_and_edns_1232() {
    let mut h = Harness::servers(&[server(53)]);
    h.lookup("www.example.com", RType::A);
    let t = h.take();
    assert_eq!(t.transport, Transport::Udp);
    assert_eq!(t.server, server(53));
    let q = Message::parse(&t.message).unwrap();
    assert!(q.header.has(Header::RD) && !q.header.has(Header::QR));
    assert_eq!(q.questions.len(), 1);
    assert_eq!(q.questions[0].name.to_string(), "www.example.com.");
    assert_eq!(q.questions[0].qclass, CLASS_IN);
    assert_eq!(q.edns.map(|e| e.udp_size), Some(EDNS_UDP_SIZE));
}

#[test]
fn search_list_and_ndots_in_glibc_order() {
    let search = vec![n("a.example."), n("b.example.")];
    let config = ResolverConfig::with_servers([server(53)]).search(search.clone(), 1);
    let mut h = Harness::new(config);
    // No dot: the search list first, then the name as given.
    let id = h.lookup("www", RType::A);
    let mut asked = Vec::new();
    for _ in 0..3 {
        let t = h.take();
        asked.push(question(&t).0);
        h.deliver(&t, &reply(&t.message, rcode::NXDOMAIN, 0, &[], &[]));
    }
    assert_eq!(asked, ["www.a.example.", "www.b.example.", "www."]);
    assert_eq!(
        h.result(id),
        Err(ResolveError::NxDomain { name: "www".into() })
    );

    // One dot (>= ndots 1): as given first; the second name answers.
    let id = h.lookup("www.x", RType::A);
    let t = h.take();
    assert_eq!(question(&t).0, "www.x.");
    h.deliver(&t, &reply(&t.message, rcode::NXDOMAIN, 0, &[], &[]));
    let t = h.take();
    assert_eq!(question(&t).0, "www.x.a.example.");
    let record = a("www.x.a.example.", [192, 0, 2, 1], 60);
    h.deliver(&t, &reply(&t.message, 0, 0, &[record], &[]));
    let answer = h.result(id).unwrap();
    assert_eq!(answer.name, n("www.x.a.example."));
    assert_eq!(answer.source, Source::Server(server(53)));
    h.no_transmit();

    // ndots 2: the same name goes through the search list first.
    let mut h = Harness::new(ResolverConfig::with_servers([server(53)]).search(search, 2));
    h.lookup("www.y", RType::A);
    assert_eq!(question(&h.take()).0, "www.y.a.example.");
    // A final dot: only the name itself.
    let id = h.lookup("www.z.", RType::A);
    let t = h.take();
    assert_eq!(question(&t).0, "www.z.");
    h.deliver(&t, &reply(&t.message, rcode::NXDOMAIN, 0, &[], &[]));
    assert!(matches!(h.result(id), Err(ResolveError::NxDomain { .. })));
}

#[test]
fn nodata_on_one_name_is_reported_over_nxdomain_on_the_others() {
    let config = ResolverConfig::with_servers([server(53)]).search(vec![n("a.example.")], 1);
    let mut h = Harness::new(config);
    let id = h.lookup("host", RType::AAAA);
    let t = h.take();
    h.deliver(
        &t,
        &reply(&t.message, 0, 0, &[], &[soa("a.example.", 60, 60)]),
    );
    let t = h.take();
    h.deliver(&t, &reply(&t.message, rcode::NXDOMAIN, 0, &[], &[]));
    assert_eq!(
        h.result(id),
        Err(ResolveError::NoRecords {
            name: "host".into(),
            rtype: RType::AAAA
        })
    );
}

#[test]
fn literal_addresses_and_hosts_need_no_query() {
    let mut hosts = Hosts::new();
    hosts
        .insert("gateway.lan", "192.0.2.1".parse().unwrap())
        .unwrap();
    let mut h = Harness::new(ResolverConfig::with_servers([server(53)]).hosts(hosts));
    let id = h.lookup("GATEWAY.lan.", RType::A);
    let answer = h.result(id).unwrap();
    assert_eq!(answer.source, Source::Hosts);
    assert_eq!(ips(&answer), ["192.0.2.1".parse::<IpAddr>().unwrap()]);
    // The name is the hosts file's: no AAAA there means none, without asking.
    let id = h.lookup("gateway.lan", RType::AAAA);
    assert!(matches!(h.result(id), Err(ResolveError::NoRecords { .. })));
    let id = h.lookup("192.0.2.9", RType::A);
    assert_eq!(h.result(id).unwrap().source, Source::Literal);
    let id = h.lookup("[2001:db8::1]", RType::AAAA);
    assert_eq!(
        ips(&h.result(id).unwrap()),
        ["2001:db8::1".parse::<IpAddr>().unwrap()]
    );
    let id = h.lookup("::1", RType::A);
    assert!(matches!(h.result(id), Err(ResolveError::NoRecords { .. })));
    h.no_transmit();
    // Not a name at all.
    let id = h.lookup("a..b", RType::A);
    assert!(matches!(h.result(id), Err(ResolveError::BadName { .. })));
    let id = h.lookup("", RType::A);
    assert!(matches!(h.result(id), Err(ResolveError::BadName { .. })));
    h.no_transmit();
}

#[test]
fn localhost_names_are_loopback_unless_the_hosts_file_says_otherwise() {
    let mut h = Harness::new(ResolverConfig::with_servers([server(53)]));
    for name in ["localhost", "LocalHost.", "db.localhost"] {
        let id = h.lookup(name, RType::AAAA);
        let answer = h.result(id).unwrap();
        assert_eq!(answer.source, Source::Localhost, "{name}");
        assert_eq!(ips(&answer), [IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]);
        let id = h.lookup(name, RType::A);
        assert_eq!(ips(&h.result(id).unwrap()), [IpAddr::from([127, 0, 0, 1])]);
    }
    // Not under localhost: asked of the server.
    h.no_transmit();
    h.lookup("localhost.example.", RType::A);
    let query = h.take();
    let asked = Message::parse(&query.message).unwrap();
    assert_eq!(asked.questions[0].name.to_string(), "localhost.example.");
    // The hosts file wins (glibc's order): its localhost has no IPv6 here.
    let mut hosts = Hosts::new();
    hosts
        .insert("localhost", "127.0.0.1".parse().unwrap())
        .unwrap();
    let mut h = Harness::new(ResolverConfig::with_servers([server(53)]).hosts(hosts));
    let id = h.lookup("localhost", RType::AAAA);
    assert!(matches!(h.result(id), Err(ResolveError::NoRecords { .. })));
    h.no_transmit();
}

#[test]
fn query_ids_are_random_and_differ_by_seed() {
    let ids = |seed: u8| -> Vec<u16> {
        let mut m = ResolverMachine::new(ResolverConfig::with_servers([server(53)]), [seed; 32]);
        let now = Instant::now();
        (0..200)
            .map(|i| {
                m.lookup(&format!("h{i}.example."), RType::A, now);
                let t = m.poll_transmit().expect("a query");
                Message::parse(&t.message).unwrap().header.id
            })
            .collect()
    };
    let first = ids(1);
    let distinct: HashSet<u16> = first.iter().copied().collect();
    assert!(distinct.len() > 190, "{} distinct of 200", distinct.len());
    let sequential = first
        .windows(2)
        .filter(|w| w[1] == w[0].wrapping_add(1))
        .count();
    assert!(sequential < 5, "ids look sequential: {first:?}");
    assert_ne!(first, ids(2));
}

#[test]
fn replies_that_do_not_match_are_ignored() {
    let mut h = Harness::servers(&[server(53)]);
    let id = h.lookup("www.example.com.", RType::A);
    let t = h.take();
    let good = reply(
        &t.message,
        0,
        0,
        &[a("www.example.com.", [192, 0, 2, 1], 60)],
        &[],
    );
    // Another source port, another address.
    h.m.handle_datagram(t.exchange, server(54), &good, h.now);
    h.m.handle_datagram(
        t.exchange,
        SocketAddr::from(([192, 0, 2, 54], 53)),
        &good,
        h.now,
    );
    // Another id.
    let mut wrong_id = good.clone();
    wrong_id[0] ^= 0xFF;
    h.deliver(&t, &wrong_id);
    // Not a response (QR clear).
    let mut query_bit = good.clone();
    query_bit[2] &= 0x7F;
    h.deliver(&t, &query_bit);
    // Another question.
    let mut other = t.message.to_vec();
    other[13] = b'X'; // "www" -> "Xww"
    let other_question = reply(
        &other,
        0,
        0,
        &[a("Xww.example.com.", [192, 0, 2, 66], 60)],
        &[],
    );
    h.deliver(&t, &other_question);
    // Another type.
    let mut aaaa = t.message.to_vec();
    let qtype_at = 12 + n("www.example.com.").wire().len();
    aaaa[qtype_at + 1] = 28;
    h.deliver(&t, &reply(&aaaa, 0, 0, &[], &[]));
    // Garbage of every length.
    for len in 0..good.len() {
        h.deliver(&t, &good[..len]);
    }
    assert!(h.pending(id));
    assert!(h.m.stats().ignored >= 6 + good.len() as u64 - 12);
    // The real reply, its question in another case (RFC 4343), is taken.
    let mut upper = t.message.to_vec();
    upper[13..16].copy_from_slice(b"WWW");
    h.deliver(
        &t,
        &reply(
            &upper,
            0,
            0,
            &[a("WWW.example.com.", [192, 0, 2, 1], 60)],
            &[],
        ),
    );
    assert_eq!(
        ips(&h.result(id).unwrap()),
        ["192.0.2.1".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(h.m.open_exchanges(), 0);
    assert_eq!(h.released, [t.exchange]);
}

#[test]
fn a_silent_server_gives_way_to_the_next_for_every_round() {
    let mut h = Harness::servers(&[server(1), server(2)]);
    let id = h.lookup("quiet.example.", RType::A);
    let start = h.now;
    let mut order = Vec::new();
    for round in 0..4 {
        let t = h.take();
        order.push(t.server.port());
        assert_eq!(
            h.m.poll_timeout(),
            Some(h.now + Duration::from_secs(1)),
            "{round}"
        );
        // Nothing happens before the deadline.
        h.advance(Duration::from_millis(999));
        h.no_transmit();
        h.advance(Duration::from_millis(1));
    }
    assert_eq!(order, [1, 2, 1, 2]);
    assert_eq!(h.now - start, Duration::from_secs(4));
    assert_eq!(
        h.result(id),
        Err(ResolveError::TimedOut {
            name: "quiet.example.".into(),
            servers: vec![server(1), server(2)]
        })
    );
    assert_eq!(h.m.stats().timeouts, 4);
    assert_eq!(h.m.open_exchanges(), 0);
    assert_eq!(h.released.len(), 4, "every socket closed");
    assert_eq!(h.m.poll_timeout(), None);
}

#[test]
fn a_late_reply_from_the_previous_server_still_answers() {
    let mut h = Harness::servers(&[server(1), server(2)]);
    let id = h.lookup("slow.example.", RType::A);
    let first = h.take();
    h.advance(Duration::from_secs(1));
    let second = h.take();
    assert_eq!(second.server, server(2));
    let late = reply(
        &first.message,
        0,
        0,
        &[a("slow.example.", [192, 0, 2, 7], 60)],
        &[],
    );
    h.deliver(&first, &late);
    assert_eq!(h.result(id).unwrap().source, Source::Server(server(1)));
    let mut released = h.released.clone();
    released.sort();
    assert_eq!(released, [first.exchange, second.exchange]);
}

#[test]
fn truncated_over_udp_is_asked_again_over_tcp() {
    let mut h = Harness::servers(&[server(53)]);
    let id = h.lookup("big.example.", RType::A);
    let udp = h.take();
    h.deliver(&udp, &reply(&udp.message, 0, Header::TC, &[], &[]));
    let tcp = h.take();
    assert_eq!(tcp.transport, Transport::Tcp);
    assert_eq!(tcp.server, server(53));
    assert_eq!(h.released, [udp.exchange], "the UDP socket is done");
    let records: Vec<Record> = (0..60)
        .map(|i| a("big.example.", [198, 51, 100, i], 60))
        .collect();
    h.deliver(&tcp, &reply(&tcp.message, 0, 0, &records, &[]));
    assert_eq!(h.result(id).unwrap().records.len(), 60);
    assert_eq!(h.m.stats().tcp_sent, 1);
    // A truncated UDP reply cut mid-record is still a TC reply.
    let id = h.lookup("big2.example.", RType::A);
    let udp = h.take();
    let mut cut = reply(
        &udp.message,
        0,
        Header::TC,
        &[a("big2.example.", [1, 2, 3, 4], 5)],
        &[],
    );
    cut.truncate(cut.len() - 3);
    h.deliver(&udp, &cut);
    assert_eq!(h.take().transport, Transport::Tcp);
    assert!(h.pending(id));
}

#[test]
fn tcp_failures_move_to_the_next_server() {
    let mut h = Harness::servers(&[server(1), server(2)]);
    let id = h.lookup("t.example.", RType::A);
    let udp = h.take();
    h.deliver(&udp, &reply(&udp.message, 0, Header::TC, &[], &[]));
    let tcp = h.take();
    h.m.handle_exchange_failed(tcp.exchange, "connection refused", h.now);
    h.pump();
    let next = h.take();
    assert_eq!((next.server, next.transport), (server(2), Transport::Udp));
    h.deliver(&next, &reply(&next.message, 0, Header::TC, &[], &[]));
    let tcp = h.take();
    // A wrong message over TCP fails the exchange (nobody else can write to it).
    h.deliver(&tcp, b"\x00\x01garbage");
    let next = h.take();
    assert_eq!(next.server, server(1), "round two");
    h.deliver(&next, &reply(&next.message, rcode::SERVFAIL, 0, &[], &[]));
    let last = h.take();
    h.deliver(&last, &reply(&last.message, rcode::REFUSED, 0, &[], &[]));
    let Err(ResolveError::ServerFailure { failures, .. }) = h.result(id) else {
        panic!("a server failure");
    };
    let kinds: Vec<String> = failures.iter().map(ToString::to_string).collect();
    assert_eq!(
        kinds,
        [
            "192.0.2.53:1 unreachable (connection refused)",
            "192.0.2.53:2 malformed answer",
            "192.0.2.53:1 SERVFAIL",
            "192.0.2.53:2 REFUSED"
        ]
    );
    assert_eq!(h.m.open_exchanges(), 0);
}

#[test]
fn servfail_refused_and_notimp_go_to_the_next_server_at_once() {
    for code in [rcode::SERVFAIL, rcode::REFUSED, rcode::NOTIMP] {
        let mut h = Harness::servers(&[server(1), server(2)]);
        let id = h.lookup("f.example.", RType::A);
        let t = h.take();
        h.deliver(&t, &reply(&t.message, code, 0, &[], &[]));
        let next = h.take();
        assert_eq!(next.server, server(2), "rcode {code}: no wait");
        let record = a("f.example.", [192, 0, 2, 3], 60);
        h.deliver(&next, &reply(&next.message, 0, 0, &[record], &[]));
        assert!(h.result(id).is_ok());
    }
    // An error reply without its question (some servers send them) counts too.
    let mut h = Harness::servers(&[server(1), server(2)]);
    h.lookup("g.example.", RType::A);
    let t = h.take();
    let mut bare = vec![0; 12];
    bare[..2].copy_from_slice(&t.message[..2]);
    bare[2] = 0x81;
    bare[3] = 0x82; // QR RD RA SERVFAIL
    h.deliver(&t, &bare);
    assert_eq!(h.take().server, server(2));
}

#[test]
fn formerr_to_edns_is_asked_again_without_it() {
    let mut h = Harness::servers(&[server(1), server(2)]);
    let id = h.lookup("old.example.", RType::A);
    let t = h.take();
    h.deliver(&t, &reply(&t.message, rcode::FORMERR, 0, &[], &[]));
    let again = h.take();
    assert_eq!(again.server, server(1), "the same server");
    assert!(Message::parse(&again.message).unwrap().edns.is_none());
    // FORMERR again (without EDNS): that server fails.
    h.deliver(&again, &reply(&again.message, rcode::FORMERR, 0, &[], &[]));
    let next = h.take();
    assert_eq!(next.server, server(2));
    assert!(
        Message::parse(&next.message).unwrap().edns.is_some(),
        "EDNS again"
    );
    h.deliver(
        &next,
        &reply(
            &next.message,
            0,
            0,
            &[a("old.example.", [1, 1, 1, 1], 9)],
            &[],
        ),
    );
    assert!(h.result(id).is_ok());
}

#[test]
fn nxdomain_and_nodata_are_cached_for_the_soa_minimum() {
    let mut h = Harness::servers(&[server(53)]);
    let id = h.lookup("gone.example.", RType::A);
    let t = h.take();
    // SOA TTL 300, MINIMUM 60: cached for 60 s (RFC 2308 §5).
    let nx = reply(
        &t.message,
        rcode::NXDOMAIN,
        0,
        &[],
        &[soa("example.", 300, 60)],
    );
    h.deliver(&t, &nx);
    assert!(matches!(h.result(id), Err(ResolveError::NxDomain { .. })));
    h.advance(Duration::from_secs(59));
    // The name does not exist for any type.
    for rtype in [RType::A, RType::AAAA, RType::MX] {
        let id = h.lookup("GONE.example.", rtype);
        assert!(matches!(h.result(id), Err(ResolveError::NxDomain { .. })));
    }
    h.no_transmit();
    h.advance(Duration::from_secs(1));
    h.lookup("gone.example.", RType::A);
    h.take();

    // NODATA is per type.
    let id = h.lookup("v4only.example.", RType::AAAA);
    let t = h.take();
    h.deliver(
        &t,
        &reply(&t.message, 0, 0, &[], &[soa("example.", 30, 600)]),
    );
    assert!(matches!(h.result(id), Err(ResolveError::NoRecords { .. })));
    let id = h.lookup("v4only.example.", RType::AAAA);
    assert!(matches!(h.result(id), Err(ResolveError::NoRecords { .. })));
    h.no_transmit();
    h.lookup("v4only.example.", RType::A);
    h.take();

    // Without an SOA (or with one for another zone) nothing is cached.
    for authority in [vec![], vec![soa("elsewhere.", 300, 300)]] {
        let id = h.lookup("nosoa.example.", RType::A);
        let t = h.take();
        h.deliver(&t, &reply(&t.message, rcode::NXDOMAIN, 0, &[], &authority));
        assert!(h.result(id).is_err());
    }
}

#[test]
fn positive_answers_are_cached_with_ttls_counted_down_and_capped() {
    let mut h = Harness::servers(&[server(53)]);
    let id = h.lookup("www.example.", RType::A);
    let t = h.take();
    let records = [
        a("www.example.", [192, 0, 2, 1], 300),
        a("www.example.", [192, 0, 2, 2], 200),
    ];
    h.deliver(&t, &reply(&t.message, 0, 0, &records, &[]));
    assert_eq!(h.result(id).unwrap().ttl(), 200);
    h.advance(Duration::from_secs(150));
    let id = h.lookup("www.example.", RType::A);
    let answer = h.result(id).unwrap();
    assert_eq!(answer.source, Source::Cache);
    let ttls: Vec<u32> = answer.records.iter().map(|r| r.ttl).collect();
    assert_eq!(
        ttls,
        [50, 50],
        "counted down, no more than the entry has left"
    );
    h.advance(Duration::from_secs(50));
    let id = h.lookup("www.example.", RType::A);
    let t = h.take();
    h.deliver(&t, &reply(&t.message, 0, 0, &records, &[]));
    assert_eq!(h.result(id).unwrap().source, Source::Server(server(53)));

    // A week-long TTL is kept a day at most.
    let id = h.lookup("long.example.", RType::A);
    let t = h.take();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[a("long.example.", [1, 2, 3, 4], 604_800)],
            &[],
        ),
    );
    h.result(id).unwrap();
    h.advance(Duration::from_secs(86_399));
    let id = h.lookup("long.example.", RType::A);
    assert_eq!(h.result(id).unwrap().records[0].ttl, 1);
    h.advance(Duration::from_secs(1));
    h.lookup("long.example.", RType::A);
    h.take();
    // TTL 0: used, not kept.
    let id = h.lookup("zero.example.", RType::A);
    let t = h.take();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[a("zero.example.", [1, 2, 3, 4], 0)],
            &[],
        ),
    );
    h.result(id).unwrap();
    h.lookup("zero.example.", RType::A);
    h.take();
}

#[test]
fn the_cache_is_bounded_by_bytes_least_recently_used_first() {
    let mut config = ResolverConfig::with_servers([server(53)]);
    config.cache.max_bytes = 2_000;
    let mut h = Harness::new(config);
    for i in 0..100u8 {
        let name = format!("h{i}.example.");
        let id = h.lookup(&name, RType::A);
        let t = h.take();
        let answer = a(&name, [10, 0, 0, i], 600);
        if i == 1 {
            // h0 is used again: the least recently used is h1, not h0.
            let hit = h.lookup("h0.example.", RType::A);
            assert_eq!(h.result(hit).unwrap().source, Source::Cache);
        }
        h.deliver(&t, &reply(&t.message, 0, 0, &[answer], &[]));
        h.result(id).unwrap();
        assert!(h.m.cache().bytes() <= 2_000);
    }
    let kept = h.m.cache().len();
    assert!(kept > 5 && kept < 100, "{kept} entries");
    let id = h.lookup("h99.example.", RType::A);
    assert_eq!(h.result(id).unwrap().source, Source::Cache);
    h.lookup("h1.example.", RType::A);
    h.take();
}

#[test]
fn cname_chains_are_followed_within_a_reply_and_across_replies() {
    let mut h = Harness::servers(&[server(53)]);
    let id = h.lookup("www.example.", RType::A);
    let t = h.take();
    let answers = [
        cname("www.example.", "web.example.", 300),
        cname("web.example.", "host.example.", 100),
        a("host.example.", [192, 0, 2, 20], 200),
        // Not on the chain: ignored (and never cached).
        a("bank.example.", [6, 6, 6, 6], 9999),
    ];
    h.deliver(&t, &reply(&t.message, 0, 0, &answers, &[]));
    let answer = h.result(id).unwrap();
    assert_eq!(answer.aliases.len(), 2);
    assert_eq!(answer.canonical(), &n("host.example."));
    assert_eq!(ips(&answer), ["192.0.2.20".parse::<IpAddr>().unwrap()]);
    assert_eq!(answer.ttl(), 100);
    h.lookup("bank.example.", RType::A);
    h.take();

    // A chain leaving the server's zone: the resolver asks for its end.
    let id = h.lookup("alias.example.", RType::A);
    let t = h.take();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[cname("alias.example.", "target.other.", 60)],
            &[],
        ),
    );
    let t = h.take();
    assert_eq!(question(&t).0, "target.other.");
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[a("target.other.", [192, 0, 2, 9], 60)],
            &[],
        ),
    );
    let answer = h.result(id).unwrap();
    assert_eq!(answer.name, n("alias.example."));
    assert_eq!(answer.aliases.len(), 1);
    // Both steps come from the cache next time.
    let id = h.lookup("alias.example.", RType::A);
    assert_eq!(h.result(id).unwrap().source, Source::Cache);
    h.no_transmit();
}

#[test]
fn cname_loops_and_long_chains_end_in_an_error() {
    let mut h = Harness::servers(&[server(53)]);
    // A loop inside one reply: malformed, ignored (times out after the server rounds).
    let id = h.lookup("loop.example.", RType::A);
    let t = h.take();
    let looping = [
        cname("loop.example.", "b.example.", 60),
        cname("b.example.", "loop.example.", 60),
    ];
    h.deliver(&t, &reply(&t.message, 0, 0, &looping, &[]));
    assert!(h.pending(id));
    // Across replies: each step points on; the ninth link is refused.
    let id = h.lookup("c0.example.", RType::A);
    for i in 0..=MAX_CHAIN {
        let t = h.sent.pop().expect("a query");
        assert_eq!(question(&t).0, format!("c{i}.example."));
        let link = cname(
            &format!("c{i}.example."),
            &format!("c{}.example.", i + 1),
            60,
        );
        h.deliver(&t, &reply(&t.message, 0, 0, &[link], &[]));
    }
    assert!(matches!(h.result(id), Err(ResolveError::AliasChain { .. })));
    // A loop across replies.
    let id = h.lookup("p.example.", RType::A);
    let t = h.sent.pop().unwrap();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[cname("p.example.", "q.example.", 60)],
            &[],
        ),
    );
    let t = h.sent.pop().unwrap();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[cname("q.example.", "p.example.", 60)],
            &[],
        ),
    );
    assert!(matches!(h.result(id), Err(ResolveError::AliasChain { .. })));
}

#[test]
fn lookups_of_one_name_and_type_share_one_query() {
    let mut h = Harness::servers(&[server(53)]);
    let first = h.lookup("shared.example.", RType::A);
    let second = h.lookup("SHARED.example.", RType::A);
    let other_type = h.lookup("shared.example.", RType::AAAA);
    assert_eq!(h.sent.len(), 2, "one query per type");
    assert_eq!(h.m.stats().joined, 1);
    let t = h.take();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[a("shared.example.", [192, 0, 2, 4], 60)],
            &[],
        ),
    );
    let (first, second) = (h.result(first).unwrap(), h.result(second).unwrap());
    assert_eq!(first.records, second.records);
    assert_eq!(
        second.name,
        n("SHARED.example."),
        "each keeps the name as asked"
    );
    assert!(h.pending(other_type));
    // A cancelled lookup gets no event; its query still fills the cache.
    let gone = h.lookup("cancel.example.", RType::A);
    h.m.cancel(gone);
    let t = h.sent.pop().unwrap();
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[a("cancel.example.", [192, 0, 2, 5], 60)],
            &[],
        ),
    );
    assert!(h.pending(gone));
    let id = h.lookup("cancel.example.", RType::A);
    assert_eq!(h.result(id).unwrap().source, Source::Cache);
}

#[test]
fn rotate_starts_each_query_at_the_next_server() {
    let mut config = ResolverConfig::with_servers([server(1), server(2), server(3)]);
    config.rotate = true;
    let mut h = Harness::new(config);
    let ports: Vec<u16> = (0..4)
        .map(|i| {
            h.lookup(&format!("r{i}.example."), RType::A);
            h.take().server.port()
        })
        .collect();
    assert_eq!(ports, [2, 3, 1, 2]);
}

#[test]
fn tcp_only_and_limits() {
    let mut config = ResolverConfig::with_servers([server(53)]);
    config.tcp_only = true;
    config.max_lookups = 2;
    let mut h = Harness::new(config);
    h.lookup("a.example.", RType::A);
    h.lookup("b.example.", RType::A);
    let third = h.lookup("c.example.", RType::A);
    assert_eq!(
        h.result(third),
        Err(ResolveError::TooManyLookups { limit: 2 })
    );
    assert!(h.sent.iter().all(|t| t.transport == Transport::Tcp));
}

#[test]
fn hostile_replies_never_panic_or_poison_the_cache() {
    let mut h = Harness::servers(&[server(53)]);
    let id = h.lookup("victim.example.", RType::A);
    let t = h.take();
    let good = reply(
        &t.message,
        0,
        0,
        &[a("victim.example.", [192, 0, 2, 1], 60)],
        &[],
    );
    let mut hostile: Vec<Vec<u8>> = Vec::new();
    // A compression loop in the answer's owner, and a pointer past the end.
    let mut looped = reply(&t.message, 0, 0, &[], &[]);
    looped[7] = 1; // ANCOUNT 1
    let at = looped.len() as u16;
    looped.extend_from_slice(&(0xC000 | at).to_be_bytes());
    looped.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 6, 6, 6, 6]);
    hostile.push(looped.clone());
    let mut past = looped;
    let end = past.len();
    past[end - 14..end - 12].copy_from_slice(&0xFFFFu16.to_be_bytes());
    hostile.push(past);
    // Counts far past the end.
    let mut counts = good.clone();
    counts[6..12].copy_from_slice(&[0xFF; 6]);
    hostile.push(counts);
    // A record of the right name but another class, then a wrong-length A record.
    let mut chaos = good.clone();
    let class_at = chaos.len() - 14 + 2;
    chaos[class_at + 1] = 3;
    hostile.push(chaos);
    let mut short_a = good.clone();
    let len_at = short_a.len() - 6;
    short_a[len_at + 1] = 3;
    hostile.push(short_a);
    // Every one byte flipped in the good reply, and every truncation of it.
    for i in 0..good.len() {
        let mut flipped = good.clone();
        flipped[i] ^= 0x5A;
        hostile.push(flipped);
        hostile.push(good[..i].to_vec());
    }
    for bytes in &hostile {
        h.m.handle_datagram(t.exchange, t.server, bytes, h.now);
        h.pump();
        // Whatever it did with it, no record of another name was cached.
        for e in h.events.drain(..) {
            if let Ok(answer) = &e.result {
                assert!(
                    answer
                        .records
                        .iter()
                        .all(|r| r.name.eq_ignore_case(&answer.name))
                );
            }
        }
        h.sent.clear();
    }
    let _ = id;
    assert!(h.m.cache().len() <= 1);
    // A forged reply with the wrong id trying to plant another name is never cached.
    let id = h.lookup("bank.example.", RType::A);
    let t = h.take();
    let mut forged = reply(
        &t.message,
        0,
        0,
        &[a("bank.example.", [6, 6, 6, 6], 9999)],
        &[],
    );
    forged[1] ^= 1;
    h.deliver(&t, &forged);
    assert!(h.pending(id));
    h.deliver(
        &t,
        &reply(
            &t.message,
            0,
            0,
            &[a("bank.example.", [192, 0, 2, 80], 60)],
            &[],
        ),
    );
    assert_eq!(
        ips(&h.result(id).unwrap()),
        ["192.0.2.80".parse::<IpAddr>().unwrap()]
    );
}
