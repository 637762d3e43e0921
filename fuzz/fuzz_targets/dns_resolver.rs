//! Fuzz target for the DNS stub resolver machine: the input is a script of lookups, replies
//! (arbitrary datagrams; replies that copy the query's id and question and go on with
//! arbitrary bytes, so the answer parsing and the CNAME chain logic are reached; the same
//! over TCP), failures, cancellations and clock steps. Properties: no panic; each lookup
//! gets at most one event (exactly one unless cancelled); an answer's records sit at the end
//! of its alias chain, which starts at its name and links up; the cache stays within its
//! byte bound; and once the clock runs past every deadline, nothing is left in flight and
//! every exchange was released.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use ringwork_protocols::dns::proto::{Name, RData, RType, Transport};
use ringwork_protocols::dns::resolver::{
    Hosts, LookupId, ResolverConfig, ResolverMachine, Transmit,
};

const NAMES: [&str; 8] = [
    "www",
    "www.example.com",
    "www.example.com.",
    "a.b.c.d.e",
    "localhost",
    "192.0.2.1",
    "[::1]",
    "x",
];
const TYPES: [RType; 6] = [
    RType::A,
    RType::AAAA,
    RType::MX,
    RType::TXT,
    RType::CNAME,
    RType::SRV,
];
const MAX_BYTES: usize = 4_096;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn bytes(&mut self, len: usize) -> &[u8] {
        let len = len.min(self.0.len());
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        head
    }
}

fn server(i: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5300 + u16::from(i)))
}

fuzz_target!(|data: &[u8]| {
    let mut hosts = Hosts::new();
    let _ = hosts.insert("localhost", "127.0.0.1".parse().unwrap());
    let mut config = ResolverConfig::with_servers([server(0), server(1)])
        .timeout(Duration::from_secs(1))
        .attempts(2)
        .search(vec![Name::parse("example.com.", None).unwrap()], 1)
        .hosts(hosts);
    config.cache.max_bytes = MAX_BYTES;
    config.max_lookups = 64;
    let mut m = ResolverMachine::new(config, [3; 32]);
    let mut now = Instant::now();
    let mut input = Input(data);
    let mut sent: Vec<Transmit> = Vec::new();
    let mut released: HashSet<u64> = HashSet::new();
    let mut events: HashMap<LookupId, usize> = HashMap::new();
    let mut started: Vec<LookupId> = Vec::new();
    let mut cancelled: HashSet<LookupId> = HashSet::new();

    let mut drain = |m: &mut ResolverMachine,
                     sent: &mut Vec<Transmit>,
                     events: &mut HashMap<LookupId, usize>| {
        while let Some(t) = m.poll_transmit() {
            assert!(
                !released.contains(&t.exchange.0),
                "a released exchange is reused"
            );
            sent.push(t);
        }
        while let Some(e) = m.poll_release() {
            assert!(released.insert(e.0), "released twice");
        }
        while let Some(event) = m.poll_event() {
            *events.entry(event.id).or_default() += 1;
            if let Ok(answer) = &event.result {
                let mut at = answer.name.clone();
                for alias in &answer.aliases {
                    assert!(alias.name.eq_ignore_case(&at), "the chain links up");
                    let RData::Cname(target) = &alias.data else {
                        panic!("an alias that is not a CNAME");
                    };
                    at = target.clone();
                }
                for record in &answer.records {
                    assert!(
                        record.name.eq_ignore_case(&at),
                        "records at the chain's end"
                    );
                }
            }
        }
        assert!(m.cache().bytes() <= MAX_BYTES);
    };

    while let Some(op) = input.byte() {
        match op % 8 {
            0 | 1 => {
                let name = NAMES[usize::from(input.byte().unwrap_or(0)) % NAMES.len()];
                let rtype = TYPES[usize::from(input.byte().unwrap_or(0)) % TYPES.len()];
                started.push(m.lookup(name, rtype, now));
            }
            2 | 3 if !sent.is_empty() => {
                // A reply with the query's id and question (or not), then arbitrary bytes.
                let t = sent[usize::from(input.byte().unwrap_or(0)) % sent.len()].clone();
                let mode = input.byte().unwrap_or(0);
                let len = usize::from(input.byte().unwrap_or(0)) * 4;
                let mut msg = Vec::new();
                if mode & 1 == 1 {
                    let question_end =
                        12 + t.message[12..].iter().position(|&b| b == 0).unwrap_or(0) + 5;
                    msg.extend_from_slice(&t.message[..question_end.min(t.message.len())]);
                    // QR, the fuzz's flags and counts.
                    msg[2] = 0x80 | input.byte().unwrap_or(0);
                    msg[3] = input.byte().unwrap_or(0);
                    let counts = input.bytes(6).to_vec();
                    msg[6..6 + counts.len()].copy_from_slice(&counts);
                }
                msg.extend_from_slice(input.bytes(len));
                let from = if mode & 2 == 0 { t.server } else { server(9) };
                match t.transport {
                    Transport::Udp => m.handle_datagram(t.exchange, from, &msg, now),
                    Transport::Tcp => m.handle_tcp_reply(t.exchange, &msg, now),
                }
            }
            4 => {
                let ms = u64::from(input.byte().unwrap_or(0)) * 20;
                now += Duration::from_millis(ms);
                m.handle_timeout(now);
            }
            5 if !sent.is_empty() => {
                let t = &sent[usize::from(input.byte().unwrap_or(0)) % sent.len()];
                m.handle_exchange_failed(t.exchange, "refused", now);
            }
            6 if !started.is_empty() => {
                let id = started[usize::from(input.byte().unwrap_or(0)) % started.len()];
                if !events.contains_key(&id) {
                    cancelled.insert(id);
                }
                m.cancel(id);
            }
            _ => {}
        }
        drain(&mut m, &mut sent, &mut events);
    }
    // Past every deadline: everything ends.
    for _ in 0..10_000 {
        let Some(at) = m.poll_timeout() else { break };
        now = now.max(at);
        m.handle_timeout(now);
        drain(&mut m, &mut sent, &mut events);
    }
    assert_eq!(m.poll_timeout(), None, "deadlines keep coming");
    assert_eq!(m.lookups_in_flight(), 0);
    assert_eq!(m.open_exchanges(), 0);
    for t in &sent {
        assert!(
            released.contains(&t.exchange.0),
            "exchange {:?} never released",
            t.exchange
        );
    }
    for id in &started {
        let count = events.get(id).copied().unwrap_or(0);
        assert!(count <= 1, "{id:?} finished {count} times");
        assert!(
            count == 1 || cancelled.contains(id),
            "{id:?} never finished"
        );
    }
});
