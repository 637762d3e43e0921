//! The kit's engine adapter on real connections, both backends: the worked example's
//! [`LineServer`] machine driven by [`Adapter`] for two applications — one answering in its
//! event callback, one answering later from a future through a [`MailboxSender`] (no
//! `Rc<RefCell<..>>` in application code). A blocking std client talks to it; waits are
//! reads with a timeout, never sleeps.
#![cfg(feature = "engine")]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use std::sync::mpsc;

use ringwork::platform::testing;
use ringwork::{BackendChoice, Context, DriverConfig, Runtime, ShutdownHandle};
use ringwork_protocols::kit::adapter::{Adapter, Application, Mailbox, MailboxSender};
use ringwork_protocols::kit::channel::channel;
use ringwork_protocols::kit::example::{
    ClientEvent, LineClient, LineConfig, LineServer, ServerEvent,
};

/// How long any one wait may take before the test fails.
const LIMIT: Duration = Duration::from_secs(20);

/// Upper-cases each line in its event callback.
struct Shout;

impl Application<LineServer> for Shout {
    type Command = ();
    type Status = ();

    fn event(
        &mut self,
        machine: &mut LineServer,
        ServerEvent::Line { id, line }: ServerEvent,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<()>,
    ) {
        machine.reply(id, Bytes::from(line.to_ascii_uppercase()));
    }
}

/// Answers each line from a task, after a delay that shrinks with the line's id, so later
/// lines are answered first; the machine still sends them in order.
struct Later;

/// A reply computed elsewhere.
struct Reply(u64, Bytes);

impl Application<LineServer> for Later {
    type Command = Reply;
    type Status = ();

    fn event(
        &mut self,
        _machine: &mut LineServer,
        ServerEvent::Line { id, line }: ServerEvent,
        ctx: &mut Context<'_>,
        mailbox: &Mailbox<Reply>,
    ) {
        let sender: MailboxSender<Reply> = mailbox.sender();
        let handle = ctx.handle();
        let delay = Duration::from_millis(30u64.saturating_sub(id * 10));
        ctx.handle().spawn_local(async move {
            let _ = handle.sleep(delay).await;
            let _ = sender.post(Reply(
                id,
                Bytes::from(format!("later {id}: {}", String::from_utf8_lossy(&line))),
            ));
        });
    }

    fn command(
        &mut self,
        machine: &mut LineServer,
        Reply(id, text): Reply,
        _ctx: &mut Context<'_>,
    ) {
        machine.reply(id, text);
    }
}

/// A one-core runtime on its own thread serving `app`'s line protocol; shut down on drop.
struct Served {
    addr: SocketAddr,
    handle: ShutdownHandle,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.handle.shutdown(Duration::ZERO);
    }
}

fn serve<A: Application<LineServer>>(
    backend: BackendChoice,
    config: LineConfig,
    app: fn() -> A,
) -> Option<Served> {
    serve_with(backend, move |_reactor| {
        let config = config.clone();
        move || Adapter::new(LineServer::new(config.clone()), app())
    })
}

/// A one-core runtime serving the protocol that `factory(reactor)` makes per connection.
fn serve_with<F, P>(
    backend: BackendChoice,
    factory: impl Fn(&mut ringwork::Reactor) -> F + Send + Sync + 'static,
) -> Option<Served>
where
    F: FnMut() -> P + 'static,
    P: ringwork::Protocol,
{
    testing::driver(backend, DriverConfig::default())?;
    let runtime = Runtime::builder()
        .cores(1)
        .pin(false)
        .backend(backend)
        .build()
        .expect("build a runtime");
    let handle = runtime.shutdown_handle();
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        runtime.run(move |reactor| {
            let make = factory(reactor);
            let addr = reactor.listen_tcp(SocketAddr::from(([127, 0, 0, 1], 0)), make)?;
            let _ = addr_tx.send(addr);
            Ok(())
        })
    });
    let addr = addr_rx.recv_timeout(LIMIT).expect("the server to listen");
    Some(Served { addr, handle })
}

/// Sends `lines` and reads every line until the server closes.
fn converse(addr: SocketAddr, lines: &[&str]) -> Vec<String> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(LIMIT)).expect("timeout");
    for line in lines {
        stream
            .write_all(format!("{line}\n").as_bytes())
            .expect("send");
    }
    BufReader::new(stream)
        .lines()
        .map(|l| l.expect("a line before the close"))
        .collect()
}

/// The client side: sends what is posted to it, reports what comes back.
struct Talker {
    heard: std::sync::mpsc::Sender<String>,
}

impl Application<LineClient> for Talker {
    type Command = &'static str;
    type Status = ();

    fn event(
        &mut self,
        _machine: &mut LineClient,
        event: ClientEvent,
        _ctx: &mut Context<'_>,
        _mailbox: &Mailbox<&'static str>,
    ) {
        let text = match event {
            ClientEvent::Line(line) => String::from_utf8_lossy(&line).into_owned(),
            ClientEvent::Closed => "<closed>".into(),
            ClientEvent::Lost => "<lost>".into(),
        };
        let _ = self.heard.send(text);
    }

    fn command(&mut self, machine: &mut LineClient, line: &'static str, _ctx: &mut Context<'_>) {
        if line == "QUIT" {
            machine.quit();
        } else {
            machine.send(line.as_bytes());
        }
    }
}

ringwork::platform::test_all_backends! {
    fn a_task_drives_the_machine_through_a_channel(backend: BackendChoice) {
        let Some(server) = serve_with(backend, |reactor| {
            let handle = reactor.handle();
            move || {
                let (adapter, conn) = channel(LineServer::new(LineConfig::default()));
                // One task per connection, in the async style: events in, calls out.
                drop(handle.spawn_local(async move {
                    while let Some(ServerEvent::Line { id, line }) = conn.next_event().await {
                        let reply = Bytes::from(format!("task: {}", String::from_utf8_lossy(&line)));
                        if conn.call(move |machine| machine.reply(id, reply)).is_err() {
                            break;
                        }
                    }
                }));
                adapter
            }
        }) else {
            return;
        };
        let heard = converse(server.addr, &["x", "y", "QUIT"]);
        assert_eq!(heard, ["task: x", "task: y", "BYE"]);
    }

    fn commands_posted_before_the_connection_exists_run_once_it_connects(backend: BackendChoice) {
        let Some(server) = serve(backend, LineConfig::default(), || Shout) else { return };
        testing::driver(backend, DriverConfig::default()).expect("checked by serve");
        let driver = DriverConfig {
            backend,
            ..DriverConfig::default()
        };
        let mut reactor = ringwork::Reactor::new(ringwork::ReactorConfig::default(), driver)
            .expect("a reactor");
        let (heard_tx, heard) = mpsc::channel();
        let adapter = Adapter::new(LineClient::new(1024), Talker { heard: heard_tx });
        let sender = adapter.sender();
        // Posted before the connection is even opened: runs at its first drive.
        sender.post("early").expect("open");
        reactor
            .connect(&server.addr.into(), adapter, ringwork::ConnectOptions::new())
            .expect("connect");
        let mut got = Vec::new();
        let mut next = |reactor: &mut ringwork::Reactor| {
            assert!(
                reactor.run_until(LIMIT, |_| {
                    heard.try_recv().map(|line| got.push(line)).is_ok()
                }).expect("turn"),
                "no answer"
            );
        };
        next(&mut reactor);
        // Posted later, from outside any callback: wakes the connection.
        sender.post("later").expect("open");
        next(&mut reactor);
        sender.post("QUIT").expect("open");
        next(&mut reactor);
        assert_eq!(got, ["EARLY", "LATER", "BYE"]);
    }


    fn answers_in_the_event_callback(backend: BackendChoice) {
        let Some(server) = serve(backend, LineConfig::default(), || Shout) else { return };
        let heard = converse(server.addr, &["one", "two", "QUIT"]);
        assert_eq!(heard, ["ONE", "TWO", "BYE"]);
    }

    fn answers_later_through_the_mailbox_in_request_order(backend: BackendChoice) {
        let Some(server) = serve(backend, LineConfig::default(), || Later) else { return };
        let heard = converse(server.addr, &["a", "b", "c", "QUIT"]);
        assert_eq!(heard, ["later 0: a", "later 1: b", "later 2: c", "BYE"]);
    }

    fn the_machine_deadline_closes_an_idle_connection(backend: BackendChoice) {
        let mut config = LineConfig::default();
        config.idle_timeout = Duration::from_millis(50);
        let Some(server) = serve(backend, config, || Shout) else { return };
        // No QUIT: the connection ends by the idle timeout.
        let heard = converse(server.addr, &["x"]);
        assert_eq!(heard, ["X", "TIMEOUT"]);
    }

    fn backpressure_pauses_reading_and_loses_nothing(backend: BackendChoice) {
        let mut config = LineConfig::default();
        config.max_pending = 2;
        let Some(server) = serve(backend, config, || Later) else { return };
        let mut many = vec!["n"; 40];
        many.push("QUIT");
        let heard = converse(server.addr, &many);
        assert_eq!(heard.len(), 41);
        for (i, line) in heard.iter().take(40).enumerate() {
            assert_eq!(*line, format!("later {i}: n"));
        }
        assert_eq!(heard[40], "BYE");
    }
}
