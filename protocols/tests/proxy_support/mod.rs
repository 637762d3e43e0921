//! Helpers shared by the proxy tests: a proxy (`TcpProxy` or `Socks5Server`) on a one-core
//! runtime on a background thread, an inspection hook that reads the core's relay counters
//! and upstream health on the core itself (a closure sent with `Cores::send`), plain
//! std-thread upstreams, and a streaming checksum.
//!
//! Nothing sleeps: waits are channel receives and reads with a deadline of [`LIMIT`].
#![allow(dead_code)] // Each test binary uses a different subset.

use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use ringwork::platform::testing;
use ringwork::{
    BackendChoice, Cores, DriverConfig, EngineError, Reactor, ReactorConfig, Runtime,
    ShutdownHandle,
};
use ringwork_protocols::proxy::{
    RelaySnapshot, RelayStats, TcpProxy, TcpProxyConfig, UpstreamHealth,
};
use ringwork_protocols::socks5::{Socks5Config, Socks5Server};

/// How long any one wait may take before the test fails.
pub const LIMIT: Duration = Duration::from_secs(30);

/// What the proxy's core reports.
#[derive(Clone, Debug)]
pub struct Inspect {
    pub stats: RelaySnapshot,
    pub health: Vec<UpstreamHealth>,
}

type Inspector = Box<dyn Fn() -> Inspect>;

thread_local! {
    /// On the proxy's core thread: reads its per-core state.
    static INSPECT: RefCell<Option<Inspector>> = const { RefCell::new(None) };
    /// The proxy core's fake resolver, when it has one.
    static FAKE: RefCell<Option<ringwork::testing::FakeResolver>> = const { RefCell::new(None) };
}

/// A proxy on a one-core runtime on its own thread; shut down (at once) on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    cores: Cores,
    handle: ShutdownHandle,
    done: Receiver<Result<(), EngineError>>,
}

impl Proxy {
    /// A [`TcpProxy`] for `config`; `None` when `backend` cannot run here.
    pub fn tcp(
        backend: BackendChoice,
        config: TcpProxyConfig,
        reactor: ReactorConfig,
    ) -> Option<Proxy> {
        Self::tcp_resolving(backend, config, reactor, false)
    }

    /// [`Proxy::tcp`] whose core resolves names with a fake resolver (`fake`; set its
    /// names with [`Proxy::set_name`]) instead of the system's.
    pub fn tcp_resolving(
        backend: BackendChoice,
        config: TcpProxyConfig,
        reactor: ReactorConfig,
        fake: bool,
    ) -> Option<Proxy> {
        Proxy::start(backend, reactor, move |r| {
            if fake {
                let resolver = ringwork::testing::FakeResolver::new();
                FAKE.with(|f| *f.borrow_mut() = Some(resolver.clone()));
                r.set_name_resolver(std::rc::Rc::new(resolver));
            }
            let proxy = TcpProxy::new(config.clone());
            let handle = proxy.handle();
            INSPECT.with(|i| {
                *i.borrow_mut() = Some(Box::new(move || Inspect {
                    stats: handle.stats().snapshot(),
                    health: handle.health(),
                }));
            });
            r.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), proxy)
        })
    }

    /// A [`Socks5Server`] for `config`, resolving names with the system resolver.
    pub fn socks5(backend: BackendChoice, config: Socks5Config) -> Option<Proxy> {
        Self::socks5_resolving(backend, config, Vec::new())
    }

    /// A [`Socks5Server`] for `config` whose core resolves `names` (name, IPv6 addresses,
    /// IPv4 addresses) with a fake resolver (no other name resolves); the system resolver
    /// when `names` is empty.
    pub fn socks5_resolving(
        backend: BackendChoice,
        config: Socks5Config,
        names: Vec<(String, Vec<IpAddr>, Vec<IpAddr>)>,
    ) -> Option<Proxy> {
        Proxy::start(backend, ReactorConfig::default(), move |r| {
            if !names.is_empty() {
                let fake = ringwork::testing::FakeResolver::new();
                for (name, v6, v4) in &names {
                    fake.set(name, v6, v4);
                }
                r.set_name_resolver(std::rc::Rc::new(fake));
            }
            let server = Socks5Server::new(config.clone());
            let stats: RelayStats = server.stats();
            INSPECT.with(|i| {
                *i.borrow_mut() = Some(Box::new(move || Inspect {
                    stats: stats.snapshot(),
                    health: Vec::new(),
                }));
            });
            r.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), server)
        })
    }

    fn start(
        backend: BackendChoice,
        reactor: ReactorConfig,
        listen: impl Fn(&mut Reactor) -> Result<SocketAddr, EngineError> + Send + Sync + 'static,
    ) -> Option<Proxy> {
        testing::driver(backend, DriverConfig::default())?;
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let runtime = Runtime::builder()
            .cores(1)
            .pin(false)
            .backend(backend)
            .reactor_config(reactor)
            .build()
            .expect("build a runtime");
        let handle = runtime.shutdown_handle();
        let (tx, rx) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        thread::Builder::new()
            .name("proxy".into())
            .spawn(move || {
                let result = runtime.run(move |reactor| {
                    let addr = listen(reactor)?;
                    let cores = reactor.cores().cloned().expect("a runtime core");
                    let _ = tx.send((addr, cores));
                    Ok(())
                });
                let _ = done_tx.send(result);
            })
            .expect("start the proxy thread");
        let (addr, cores) = rx.recv_timeout(LIMIT).expect("the proxy to listen");
        Some(Proxy {
            addr,
            cores,
            handle,
            done,
        })
    }

    /// The core's counters and upstream health, read on the core.
    pub fn inspect(&self) -> Inspect {
        let (tx, rx) = mpsc::channel();
        self.cores
            .send(0, move |_| {
                let _ = tx.send(INSPECT.with(|i| i.borrow().as_ref().map(|f| f())));
            })
            .expect("the proxy core runs");
        rx.recv_timeout(LIMIT)
            .expect("the proxy core answers")
            .expect("an inspector")
    }

    /// Sets `name`'s addresses in the proxy core's fake resolver (see
    /// [`Proxy::tcp_resolving`]); returns once the core did.
    pub fn set_name(&self, name: &str, v6: Vec<IpAddr>, v4: Vec<IpAddr>) {
        let (tx, rx) = mpsc::channel();
        let name = name.to_owned();
        self.cores
            .send(0, move |_| {
                FAKE.with(|f| {
                    if let Some(fake) = f.borrow().as_ref() {
                        fake.set(&name, &v6, &v4);
                    }
                });
                let _ = tx.send(());
            })
            .expect("the proxy core runs");
        rx.recv_timeout(LIMIT).expect("the proxy core answers");
    }

    /// Asks the core until `done` holds (each ask is a round trip through the reactor).
    #[track_caller]
    pub fn wait_until(&self, what: &str, done: impl Fn(&Inspect) -> bool) -> Inspect {
        let start = Instant::now();
        loop {
            let now = self.inspect();
            if done(&now) {
                return now;
            }
            assert!(
                start.elapsed() < LIMIT,
                "waited {LIMIT:?} for {what}: {now:?}"
            );
            thread::yield_now();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.handle.shutdown(Duration::ZERO);
        let _ = self.done.recv_timeout(LIMIT);
    }
}

/// A client connection with a read timeout of [`LIMIT`].
pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect to the proxy");
    stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
    stream
}

/// Reads until EOF.
pub fn read_all(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read to EOF");
    out
}

/// A std upstream on 127.0.0.1 running `serve` on a thread per connection.
pub fn upstream(serve: impl Fn(TcpStream) + Send + Sync + Clone + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an upstream");
    let addr = listener.local_addr().expect("upstream address");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            stream.set_read_timeout(Some(LIMIT)).expect("read timeout");
            let serve = serve.clone();
            thread::spawn(move || serve(stream));
        }
    });
    addr
}

/// An upstream that reads each connection to its EOF, then answers `tag` and what it read,
/// and closes.
pub fn tagged_echo(tag: &'static [u8]) -> SocketAddr {
    upstream(move |mut s| {
        let mut request = Vec::new();
        let _ = s.read_to_end(&mut request);
        let _ = s.write_all(&[tag, &request].concat());
    })
}

/// A port where nothing listens (bound, then released): connects are refused.
pub fn refused_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address")
}

/// A deterministic stream of pseudo-random bytes (xorshift64*), written in 64 KiB pieces.
pub struct Pattern {
    state: u64,
}

impl Pattern {
    pub fn new(seed: u64) -> Pattern {
        Pattern { state: seed | 1 }
    }

    /// Fills `buf` (a multiple of 8 bytes long) with the next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for word in buf.chunks_exact_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            word.copy_from_slice(&v.to_le_bytes());
        }
    }
}

/// A streaming checksum over bytes split anywhere (64-bit words, FNV-style mixing): equal
/// streams give equal sums whatever the read sizes.
#[derive(Clone, Debug, Default)]
pub struct Checksum {
    hash: u64,
    carry: [u8; 8],
    carried: usize,
    len: u64,
}

impl Checksum {
    pub fn new() -> Checksum {
        Checksum {
            hash: 0xcbf2_9ce4_8422_2325,
            ..Checksum::default()
        }
    }

    fn mix(&mut self, word: u64) {
        self.hash = (self.hash ^ word)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(29);
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.carried > 0 {
            let take = (8 - self.carried).min(data.len());
            self.carry[self.carried..self.carried + take].copy_from_slice(&data[..take]);
            self.carried += take;
            data = &data[take..];
            if self.carried < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.carry));
            self.carried = 0;
        }
        let mut words = data.chunks_exact(8);
        for word in &mut words {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = words.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
    }

    /// The sum and the length.
    pub fn finish(&self) -> (u64, u64) {
        let mut last = self.clone();
        if last.carried > 0 {
            let mut w = [0u8; 8];
            w[..last.carried].copy_from_slice(&last.carry[..last.carried]);
            last.mix(u64::from_le_bytes(w) ^ (last.carried as u64) << 56);
        }
        (last.hash, last.len)
    }
}

/// Writes `len` bytes of [`Pattern`] `seed` to `stream`; returns their checksum.
pub fn send_pattern(stream: &mut impl Write, seed: u64, len: u64) -> (u64, u64) {
    let mut pattern = Pattern::new(seed);
    let mut sum = Checksum::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        pattern.fill(&mut buf);
        let n = left.min(buf.len() as u64) as usize;
        stream.write_all(&buf[..n]).expect("write the pattern");
        sum.update(&buf[..n]);
        left -= n as u64;
    }
    sum.finish()
}

/// Reads `stream` to EOF; returns the checksum of what came.
pub fn sum_to_eof(stream: &mut impl Read) -> (u64, u64) {
    let mut sum = Checksum::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match ringwork::platform::testing::retry_interrupted(|| stream.read(&mut buf)) {
            Ok(0) => return sum.finish(),
            Ok(n) => sum.update(&buf[..n]),
            Err(e) => panic!("reading: {e}"),
        }
    }
}
