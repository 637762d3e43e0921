//! The `ws --subscribers N` workload: WebSocket fan-out through a broadcast server
//! (`ringwork serve ws-chat`): N subscribers connect and only read; once they are all
//! connected, one publisher sends fixed-size binary messages at a constant rate, each
//! carrying its send time and sequence number; every subscriber records the delivery
//! latency (receive time minus send time, one process clock) of each message.
//!
//! Owns: [`run_fanout`], [`FanoutOptions`], [`FanoutReport`].
//! Contract: subscribers are spread over the load generator's cores (`--cores`), connected
//! at most [`CONNECTS_IN_FLIGHT`] at a time per core; messages published during the
//! warm-up are not measured; deliveries of measured messages are counted until
//! [`GRACE`] after the last one was sent, and any measured message a subscriber never got
//! is counted as lost. The publisher reads (and ignores) its own copies, so it is never a
//! slow subscriber itself.
//! Does not: use the request/response driver (`run.rs`): deliveries are not answers to a
//! subscriber's own requests. Latency includes the load generator's own scheduling (on a
//! machine where it shares the CPUs with the server, that is part of what is measured).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringwork::tls::TlsConnector;
use ringwork::{DriverConfig, ReactorConfig, Runtime};
use ringwork_protocols::websocket::client::{WsClient, WsClientOptions, connect};
use ringwork_protocols::websocket::proto::{Message, WsConfig};

use crate::run::RunOptions;
use crate::tls::TlsOptions;

/// Subscriber connects in progress at once on one core (a listen backlog is finite).
pub const CONNECTS_IN_FLIGHT: usize = 64;

/// How long after the last measured message deliveries are still awaited.
pub const GRACE: Duration = Duration::from_secs(2);

/// Settings of a fan-out run.
#[derive(Clone, Debug)]
pub struct FanoutOptions {
    /// The URL (`ws://` or `wss://`).
    pub url: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Subscribers.
    pub subscribers: usize,
    /// Messages the publisher sends per second.
    pub rate: f64,
    /// Message size (at least 16: send time and sequence number).
    pub size: usize,
    /// Measured publishing time, after the warm-up.
    pub duration: Duration,
    /// Publishing time not measured.
    pub warmup: Duration,
    /// Longest wait for all subscribers to connect (then the run goes on with those).
    pub connect_timeout: Duration,
    /// TLS of a `wss://` URL (each core builds its own connector from it).
    pub tls: Option<TlsOptions>,
    /// Load generator cores, CPUs and backend (from the common options).
    pub run: RunOptions,
}

/// What a fan-out run measured.
#[derive(Clone, Debug)]
pub struct FanoutReport {
    /// Subscribers asked for.
    pub subscribers: usize,
    /// Subscribers connected when publishing started.
    pub connected: usize,
    /// Subscribers that failed to connect.
    pub connect_failed: usize,
    /// How long connecting all of them took.
    pub connect_time: Duration,
    /// Messages published in the measured period.
    pub published: u64,
    /// Deliveries of measured messages (to any subscriber).
    pub delivered: u64,
    /// Measured deliveries that never came (`published × connected − delivered`, at
    /// least zero).
    pub lost: u64,
    /// Subscribers whose connection ended during the run.
    pub disconnected: u64,
    /// Measured publishing time.
    pub duration: Duration,
    /// Delivery latency, microseconds.
    pub latency: Histogram<u64>,
}

impl FanoutReport {
    /// Deliveries per second over the measured period.
    #[must_use]
    pub fn deliveries_per_sec(&self) -> f64 {
        self.delivered as f64 / self.duration.as_secs_f64().max(1e-9)
    }

    /// The report as text.
    #[must_use]
    pub fn summary(&self) -> String {
        let h = &self.latency;
        format!(
            "fan-out: {} subscribers ({} connected in {:.2}s, {} failed), {} messages published in {:.1}s\n\
             deliveries: {} ({:.0}/s), lost {}, subscribers disconnected {}\n\
             delivery latency: p50 {} us  p90 {} us  p99 {} us  p99.9 {} us  max {} us\n",
            self.subscribers,
            self.connected,
            self.connect_time.as_secs_f64(),
            self.connect_failed,
            self.published,
            self.duration.as_secs_f64(),
            self.delivered,
            self.deliveries_per_sec(),
            self.lost,
            self.disconnected,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        )
    }

    /// The report as JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        let h = &self.latency;
        let value = serde_json::json!({
            "workload": "ws-fanout",
            "subscribers": self.subscribers,
            "connected": self.connected,
            "connect_failed": self.connect_failed,
            "connect_s": self.connect_time.as_secs_f64(),
            "published": self.published,
            "delivered": self.delivered,
            "deliveries_per_sec": self.deliveries_per_sec(),
            "lost": self.lost,
            "disconnected": self.disconnected,
            "duration_s": self.duration.as_secs_f64(),
            "latency_us": {
                "p50": h.value_at_quantile(0.5),
                "p90": h.value_at_quantile(0.9),
                "p99": h.value_at_quantile(0.99),
                "p999": h.value_at_quantile(0.999),
                "max": h.max(),
                "mean": h.mean(),
            },
        });
        serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
    }
}

/// Counters shared by every core.
struct Shared {
    epoch: Instant,
    connected: AtomicUsize,
    failed: AtomicUsize,
    disconnected: AtomicU64,
    /// Sequence number of the first measured message (`u64::MAX` until known).
    first_measured: AtomicU64,
    /// Messages sent (the next sequence number).
    sent: AtomicU64,
    /// Nanoseconds since `epoch` when publishing starts (0: not yet).
    publish_at: AtomicU64,
}

/// One core's measurements.
struct CoreStats {
    latency: Histogram<u64>,
    delivered: u64,
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs to 100 s, 3 significant digits: the bounds are valid constants.
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("valid histogram bounds")
}

/// Runs a fan-out test.
///
/// # Errors
/// The runtime could not start, or no subscriber connected.
pub fn run_fanout(opts: &FanoutOptions) -> Result<FanoutReport, String> {
    if opts.size < 16 {
        return Err("ws fan-out: --size must be at least 16 (send time and sequence)".into());
    }
    if !opts.rate.is_finite() || opts.rate <= 0.0 {
        return Err("ws fan-out: -R (messages/s) must be positive".into());
    }
    let cores = opts.run.cores.max(1);
    let shared = Arc::new(Shared {
        epoch: Instant::now(),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        disconnected: AtomicU64::new(0),
        first_measured: AtomicU64::new(u64::MAX),
        sent: AtomicU64::new(0),
        publish_at: AtomicU64::new(0),
    });
    let reactor_config = ReactorConfig {
        connect_timeout: opts.connect_timeout,
        timer_tick: Duration::from_micros(100),
        max_connections: opts.subscribers / cores + 1024,
        ..ReactorConfig::default()
    };
    let mut builder = Runtime::builder()
        .cores(cores)
        .pin(false)
        .reactor_config(reactor_config)
        .driver_config(DriverConfig {
            backend: opts.run.backend,
            ..DriverConfig::default()
        });
    if let Some(cpus) = &opts.run.cpus {
        builder = builder.cpus(cpus.clone());
    }
    // One connector per core (each its own resumption cache), built here to report errors.
    let connectors = (0..cores)
        .map(|_| opts.tls.as_ref().map(TlsOptions::connector).transpose())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ws fan-out: {e}"))?;
    let connectors = Arc::new(connectors);
    let runtime = builder.build().map_err(|e| e.to_string())?;
    let shutdown = runtime.shutdown_handle();
    let (tx, rx) = crossbeam_channel::unbounded::<(Histogram<u64>, u64)>();
    let started = Instant::now();
    let run_opts = opts.clone();
    let core_shared = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("ringwork-load".into())
        .spawn(move || {
            runtime.run(move |reactor| {
                let handle = reactor.handle();
                let index = reactor.core_index();
                let tls = connectors.get(index).cloned().flatten();
                let stats = Rc::new(RefCell::new(CoreStats {
                    latency: new_histogram(),
                    delivered: 0,
                }));
                let mine: Vec<usize> = (index..run_opts.subscribers).step_by(cores).collect();
                let queue = Rc::new(RefCell::new(mine));
                for _ in 0..CONNECTS_IN_FLIGHT {
                    let (h, q, s, st, o, tls) = (
                        handle.clone(),
                        Rc::clone(&queue),
                        Arc::clone(&core_shared),
                        Rc::clone(&stats),
                        run_opts.clone(),
                        tls.clone(),
                    );
                    drop(handle.spawn_local(async move {
                        loop {
                            let next = q.borrow_mut().pop();
                            if next.is_none() {
                                break;
                            }
                            match connect(&h, &o.url, client_options(&o, tls.clone())).await {
                                Ok(client) => {
                                    s.connected.fetch_add(1, Ordering::Relaxed);
                                    let (s, st) = (Arc::clone(&s), Rc::clone(&st));
                                    drop(h.spawn_local(subscribe(client, s, st)));
                                }
                                Err(error) => {
                                    if s.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                        eprintln!(
                                            "ws fan-out: a subscriber failed to connect: {error}"
                                        );
                                    }
                                }
                            }
                        }
                    }));
                }
                if index == 0 {
                    let (h, s, o) = (handle.clone(), Arc::clone(&core_shared), run_opts.clone());
                    drop(handle.spawn_local(publish(h, s, o, tls.clone())));
                }
                // Reports this core's figures once the run is over.
                let (h, s, st, tx, o) = (
                    handle.clone(),
                    Arc::clone(&core_shared),
                    Rc::clone(&stats),
                    tx.clone(),
                    run_opts.clone(),
                );
                drop(handle.spawn_local(async move {
                    // Wait for publishing to start, then for its end plus the grace period.
                    loop {
                        let at = s.publish_at.load(Ordering::Acquire);
                        if at != 0 {
                            let end =
                                s.epoch + Duration::from_nanos(at) + o.warmup + o.duration + GRACE;
                            if h.sleep_until(end).await.is_err() {
                                return;
                            }
                            break;
                        }
                        if h.sleep(Duration::from_millis(10)).await.is_err() {
                            return;
                        }
                    }
                    let st = st.borrow();
                    let _ = tx.send((st.latency.clone(), st.delivered));
                }));
                Ok(())
            })
        })
        .map_err(|e| format!("cannot start the runtime thread: {e}"))?;

    let mut latency = new_histogram();
    let mut delivered = 0;
    let deadline = started + opts.connect_timeout * 4 + opts.warmup + opts.duration + GRACE * 4;
    for _ in 0..cores {
        let wait = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok((h, d)) => {
                let _ = latency.add(&h);
                delivered += d;
            }
            Err(_) => break,
        }
    }
    // Before the shutdown, which ends every subscriber.
    let disconnected = shared.disconnected.load(Ordering::Relaxed);
    shutdown.shutdown(Duration::ZERO);
    let _ = thread.join();
    let connected = shared.connected.load(Ordering::Relaxed);
    if connected == 0 {
        return Err(format!(
            "ws fan-out: no subscriber connected to {} ({} failed)",
            opts.url,
            shared.failed.load(Ordering::Relaxed)
        ));
    }
    let first = shared.first_measured.load(Ordering::Relaxed);
    let sent = shared.sent.load(Ordering::Relaxed);
    let published = sent.saturating_sub(first.min(sent));
    let publish_at = Duration::from_nanos(shared.publish_at.load(Ordering::Relaxed));
    Ok(FanoutReport {
        subscribers: opts.subscribers,
        connected,
        connect_failed: shared.failed.load(Ordering::Relaxed),
        connect_time: (shared.epoch + publish_at).saturating_duration_since(started),
        published,
        delivered,
        lost: (published * connected as u64).saturating_sub(delivered),
        disconnected,
        duration: opts.duration,
        latency,
    })
}

fn client_options(opts: &FanoutOptions, tls: Option<TlsConnector>) -> WsClientOptions {
    let mut options = WsClientOptions::default();
    options.addr = Some(opts.addr);
    options.server_name = opts.tls.as_ref().map(|t| t.server_name.clone());
    options.tls = tls;
    options.connect_timeout = Some(opts.connect_timeout);
    let mut config = WsConfig::default();
    config.max_message = opts.size.max(1 << 16);
    config.max_frame = config.max_frame.max(config.max_message);
    options.config = config;
    options
}

/// Nanoseconds since the run's epoch.
fn now_ns(shared: &Shared) -> u64 {
    u64::try_from(shared.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// One subscriber: records the latency of every measured message it gets.
async fn subscribe(client: WsClient, shared: Arc<Shared>, stats: Rc<RefCell<CoreStats>>) {
    while let Some(message) = client.recv().await {
        let payload = message.as_bytes();
        let (Some(sent), Some(seq)) = (read_u64(payload, 0), read_u64(payload, 8)) else {
            continue;
        };
        if seq < shared.first_measured.load(Ordering::Relaxed) {
            continue;
        }
        let micros = now_ns(&shared).saturating_sub(sent) / 1000;
        let mut stats = stats.borrow_mut();
        let _ = stats.latency.record(micros.max(1));
        stats.delivered += 1;
    }
    shared.disconnected.fetch_add(1, Ordering::Relaxed);
}

fn read_u64(payload: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = payload.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(bytes))
}

/// The publisher: waits for the subscribers, connects, sends at the rate.
async fn publish(
    handle: ringwork::LocalHandle,
    shared: Arc<Shared>,
    opts: FanoutOptions,
    tls: Option<TlsConnector>,
) {
    let give_up = Instant::now() + opts.connect_timeout * 4;
    while shared.connected.load(Ordering::Relaxed) + shared.failed.load(Ordering::Relaxed)
        < opts.subscribers
        && Instant::now() < give_up
    {
        if handle.sleep(Duration::from_millis(5)).await.is_err() {
            return;
        }
    }
    let client = match connect(&handle, &opts.url, client_options(&opts, tls)).await {
        Ok(client) => Rc::new(client),
        Err(error) => {
            eprintln!("ws fan-out: the publisher failed to connect: {error}");
            shared
                .publish_at
                .store(now_ns(&shared).max(1), Ordering::Release);
            return;
        }
    };
    // The publisher's own copies come back too: read them so it is never slow itself.
    let reader = Rc::clone(&client);
    drop(handle.spawn_local(async move { while reader.recv().await.is_some() {} }));
    let start = now_ns(&shared).max(1);
    shared.publish_at.store(start, Ordering::Release);
    let interval = 1e9 / opts.rate;
    let warmup = u64::try_from(opts.warmup.as_nanos()).unwrap_or(u64::MAX);
    let end = start + warmup + u64::try_from(opts.duration.as_nanos()).unwrap_or(u64::MAX);
    let mut payload = vec![0u8; opts.size];
    let mut seq = 0u64;
    loop {
        let due = start + (seq as f64 * interval) as u64;
        if due >= end {
            break;
        }
        if due > now_ns(&shared) {
            // An error: the core is shutting down.
            let due_at = shared.epoch + Duration::from_nanos(due);
            if handle.sleep_until(due_at).await.is_err() {
                return;
            }
        }
        if due >= start + warmup && shared.first_measured.load(Ordering::Relaxed) == u64::MAX {
            shared.first_measured.store(seq, Ordering::Relaxed);
        }
        // The intended send time: a late publisher shows up as latency, not as a lower
        // rate (coordinated omission).
        payload[..8].copy_from_slice(&due.to_le_bytes());
        payload[8..16].copy_from_slice(&seq.to_le_bytes());
        if client
            .send(Message::Binary(Bytes::copy_from_slice(&payload)))
            .is_err()
        {
            eprintln!("ws fan-out: the publisher's connection closed");
            break;
        }
        seq += 1;
        shared.sent.store(seq, Ordering::Relaxed);
    }
    if shared.first_measured.load(Ordering::Relaxed) == u64::MAX {
        shared.first_measured.store(seq, Ordering::Relaxed);
    }
}
