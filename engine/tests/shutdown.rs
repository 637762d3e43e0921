//! Graceful shutdown on every backend: after `ShutdownHandle::shutdown(grace)` a runtime
//! accepts no new connection, lets requests in flight finish (answered, then closed by the
//! server: Done), and `Runtime::run` returns as soon as no connection is left; connections
//! still open when the grace period ends are aborted with `LostReason::Shutdown`.
//!
//! The server is a one-core [`Runtime`] on a background thread; its protocols report over a
//! channel. The clients are recorded protocols on a single-threaded reactor on the test
//! thread (same backend).

mod common;

use std::time::{Duration, Instant};

use common::{Log, Lost, Running, reactor, recorded, recv, summaries, wait};
use crossbeam_channel::{Sender, unbounded};
use ringwork::platform::BackendChoice;
use ringwork::{ConnectOptions, Context, Cores, LostReason, Protocol, Reactor, Runtime, TimerId};

const CLIENTS: usize = 3;

/// What the server's protocols report.
#[derive(Clone, Debug, Eq, PartialEq)]
enum Srv {
    Made,
    Request,
    Lost(Lost),
}

/// Acknowledges a request ("request\n") at once and answers it `delay` later, then closes.
struct Delayed {
    delay: Duration,
    got: Vec<u8>,
    events: Sender<Srv>,
}

impl Protocol for Delayed {
    fn connection_made(&mut self, _ctx: &mut Context<'_>) {
        let _ = self.events.send(Srv::Made);
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        self.got.extend_from_slice(data);
        if self.got == b"request\n" {
            ctx.write(b"ack\n");
            ctx.call_later(self.delay);
            let _ = self.events.send(Srv::Request);
        }
    }

    fn timer_fired(&mut self, ctx: &mut Context<'_>, _timer: TimerId) {
        ctx.write(b"answer\n");
        ctx.close();
    }

    fn connection_lost(&mut self, _ctx: &mut Context<'_>, reason: LostReason) {
        let _ = self.events.send(Srv::Lost(Lost::from(&reason)));
    }
}

/// Sends one request and reads until the server closes.
fn client() -> (common::Recorded<common::Hello>, Log) {
    recorded(common::Hello(b"request\n".to_vec()))
}

/// A started server: the runtime, its listener's address, its core 0 and its reports.
struct Server {
    running: Running,
    addr: ringwork::SockAddr,
    core: Cores,
    events: crossbeam_channel::Receiver<Srv>,
}

fn server(backend: BackendChoice, delay: Duration) -> Server {
    let runtime = Runtime::builder()
        .cores(1)
        .pin(false)
        .backend(backend)
        .build()
        .unwrap();
    let (events_tx, events) = unbounded();
    let (setup_tx, setup) = unbounded();
    let running = Running::start(runtime, move |reactor: &mut Reactor| {
        let tx = events_tx.clone();
        let addr = reactor.listen_tcp(common::any_port(), move || Delayed {
            delay,
            got: Vec::new(),
            events: tx.clone(),
        })?;
        let cores = reactor.cores().expect("a runtime core has cores").clone();
        setup_tx.send((addr, cores)).unwrap();
        Ok(())
    });
    let (addr, core) = recv(&setup, "the server's address");
    Server {
        running,
        addr: addr.into(),
        core,
        events,
    }
}

/// Waits until every client got its acknowledgement (the server holds the request).
fn connect_and_wait_for_acks(reactor: &mut Reactor, addr: &ringwork::SockAddr) -> Vec<Log> {
    let logs: Vec<Log> = (0..CLIENTS)
        .map(|_| {
            let (client, log) = client();
            reactor
                .connect(addr, client, ConnectOptions::default())
                .unwrap();
            log
        })
        .collect();
    wait(
        reactor,
        |_| logs.iter().all(|l| l.borrow().bytes.starts_with(b"ack\n")),
        || format!("every request acknowledged: {}", summaries(&logs_of(&logs))),
    );
    logs
}

fn logs_of(logs: &[Log]) -> common::Logs {
    std::rc::Rc::new(std::cell::RefCell::new(logs.to_vec()))
}

/// Returns once everything sent to `core` before now has run (the shutdown included).
fn fence(core: &Cores) {
    let (tx, rx) = unbounded();
    core.send(0, move |_| {
        let _ = tx.send(());
    })
    .expect("core 0 runs");
    recv(&rx, "the fence message on core 0");
}

/// Everything the server reported, once its runtime has returned.
fn reports(server: &Server) -> Vec<Srv> {
    server.events.try_iter().collect()
}

fn count(reports: &[Srv], want: &Srv) -> usize {
    reports.iter().filter(|r| *r == want).count()
}

ringwork::platform::test_all_backends! {
    /// Requests in flight at shutdown are answered (200 ms later) and closed by the server;
    /// a connect after shutdown is never served; `run` returns well before the 5 s grace.
    fn graceful_shutdown_finishes_in_flight_requests(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let server = server(backend, Duration::from_millis(200));
        let logs = connect_and_wait_for_acks(&mut reactor, &server.addr);

        let start = Instant::now();
        server.running.handle.shutdown(Duration::from_secs(5));
        fence(&server.core);
        let (late, late_log) = client();
        reactor.connect(&server.addr, late, ConnectOptions::default()).unwrap();

        let all = logs_of(&logs);
        wait(
            &mut reactor,
            |_| logs.iter().all(|l| l.borrow().is_lost()) && late_log.borrow().is_lost(),
            || {
                format!(
                    "every client to end; in flight: {}; late: {}",
                    summaries(&all),
                    late_log.borrow().summary()
                )
            },
        );
        server.running.join().expect("Runtime::run returns Ok");
        let elapsed = start.elapsed();

        for log in &logs {
            let log = log.borrow();
            assert_eq!(log.bytes, b"ack\nanswer\n", "in flight: {}", log.summary());
            assert_eq!(log.lost(), Some(Lost::Done), "in flight: {}", log.summary());
        }
        let late = late_log.borrow();
        eprintln!(
            "{backend:?}: the connect after shutdown ended with {:?}",
            late.lost()
        );
        assert!(
            late.bytes.is_empty(),
            "the late connection was served: {}",
            late.summary()
        );
        let refused = Lost::ConnectFailed(std::io::ErrorKind::ConnectionRefused);
        assert!(
            matches!(late.lost(), Some(Lost::Reset | Lost::Done)) || late.lost() == Some(refused),
            "the late connection: refused, reset or closed unserved; got {}",
            late.summary()
        );
        let reports = reports(&server);
        assert_eq!(
            count(&reports, &Srv::Made),
            CLIENTS,
            "server connections made: {reports:?}"
        );
        assert_eq!(count(&reports, &Srv::Request), CLIENTS, "{reports:?}");
        assert_eq!(
            count(&reports, &Srv::Lost(Lost::Done)),
            CLIENTS,
            "{reports:?}"
        );
        assert!(
            elapsed < Duration::from_secs(4),
            "run returned {elapsed:?} after shutdown: it waited for the grace period although \
             every connection had finished"
        );
    }

    /// With a 100 ms grace, requests that would be answered after 5 s are cut off: the
    /// server's connections end with Shutdown, the clients see a reset, `run` returns Ok.
    fn short_grace_aborts_what_is_left(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let server = server(backend, Duration::from_secs(5));
        let logs = connect_and_wait_for_acks(&mut reactor, &server.addr);

        let start = Instant::now();
        server.running.handle.shutdown(Duration::from_millis(100));
        let all = logs_of(&logs);
        wait(
            &mut reactor,
            |_| logs.iter().all(|l| l.borrow().is_lost()),
            || format!("every client to end: {}", summaries(&all)),
        );
        server.running.join().expect("Runtime::run returns Ok");
        let elapsed = start.elapsed();

        for log in &logs {
            let log = log.borrow();
            assert_eq!(log.bytes, b"ack\n", "cut off: {}", log.summary());
            assert_eq!(log.lost(), Some(Lost::Reset), "cut off: {}", log.summary());
        }
        let reports = reports(&server);
        assert_eq!(
            count(&reports, &Srv::Lost(Lost::Shutdown)),
            CLIENTS,
            "server connections aborted by the shutdown: {reports:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(100),
            "connections were cut off {elapsed:?} after shutdown, before the 100 ms grace"
        );
        assert!(
            elapsed < Duration::from_secs(4),
            "run returned {elapsed:?} after shutdown"
        );
    }

    /// `Reactor::shutdown` in single-threaded mode: the listener closes, the request in
    /// flight is answered, and the reactor finishes once its connections are gone.
    fn single_threaded_reactor_shutdown(backend: BackendChoice) {
        let Some(mut reactor) = reactor(backend) else { return };
        let (events_tx, events) = unbounded();
        let addr: ringwork::SockAddr = reactor
            .listen_tcp(common::any_port(), move || Delayed {
                delay: Duration::from_millis(50),
                got: Vec::new(),
                events: events_tx.clone(),
            })
            .unwrap()
            .into();
        let (first, log) = client();
        reactor.connect(&addr, first, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |_| log.borrow().bytes == b"ack\n",
            || format!("the acknowledgement: {}", log.borrow().summary()),
        );
        reactor.shutdown(Duration::from_secs(5));
        assert!(!reactor.is_finished(), "finished with two connections open");
        let (late, late_log) = client();
        reactor.connect(&addr, late, ConnectOptions::default()).unwrap();
        wait(
            &mut reactor,
            |r| r.is_finished(),
            || {
                format!(
                    "the reactor to finish: {} connections; client: {}; late: {}",
                    reactor_connections(&log, &late_log),
                    log.borrow().summary(),
                    late_log.borrow().summary()
                )
            },
        );
        assert_eq!(
            log.borrow().bytes,
            b"ack\nanswer\n",
            "{}",
            log.borrow().summary()
        );
        assert_eq!(log.borrow().lost(), Some(Lost::Done));
        assert!(
            late_log.borrow().bytes.is_empty(),
            "served after shutdown: {}",
            late_log.borrow().summary()
        );
        let reports: Vec<Srv> = events.try_iter().collect();
        assert_eq!(
            count(&reports, &Srv::Made),
            1,
            "server connections made: {reports:?}"
        );
        assert!(
            reactor.run().is_ok(),
            "run() after the shutdown finished returns at once"
        );
    }
}

/// For failure messages: which of the two clients is still open.
fn reactor_connections(a: &Log, b: &Log) -> String {
    format!(
        "client lost: {}, late lost: {}",
        a.borrow().is_lost(),
        b.borrow().is_lost()
    )
}
