//! Pausing reading holds back everything the peer sent — its bytes *and* its end of stream —
//! until reading resumes: `eof_received` never overtakes bytes that were received while
//! reading was paused.

use std::cell::RefCell;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use ringwork::platform::{BackendChoice, testing};
use ringwork::{ConnId, Context, DriverConfig, Protocol, Reactor, ReactorConfig};

/// What the server saw, in order.
#[derive(Debug, Default)]
struct Seen {
    conn: Option<ConnId>,
    bytes: usize,
    /// Bytes received when `eof_received` ran.
    eof_after: Option<usize>,
    /// `eof_received` ran while reading was paused.
    eof_while_paused: bool,
}

/// Pauses reading on its first bytes; the test resumes it. Closes on end of stream.
struct PauseOnFirst(Rc<RefCell<Seen>>);

impl Protocol for PauseOnFirst {
    fn connection_made(&mut self, ctx: &mut Context<'_>) {
        self.0.borrow_mut().conn = Some(ctx.id());
    }

    fn data_received(&mut self, ctx: &mut Context<'_>, data: &[u8]) {
        let mut seen = self.0.borrow_mut();
        if seen.bytes == 0 {
            ctx.pause_reading();
        }
        seen.bytes += data.len();
    }

    fn eof_received(&mut self, ctx: &mut Context<'_>) {
        let mut seen = self.0.borrow_mut();
        seen.eof_after = Some(seen.bytes);
        seen.eof_while_paused = ctx.is_reading_paused();
        ctx.close();
    }
}

ringwork::platform::test_all_backends! {
    fn eof_waits_behind_bytes_held_by_a_pause(backend: BackendChoice) {
        // Small receive buffers: the message arrives as several completions, so some are
        // already in flight (held back) when the first one pauses reading.
        let config = DriverConfig { backend, buf_size: 4096, ..DriverConfig::default() };
        if testing::driver(backend, config.clone()).is_none() {
            return;
        }
        let mut reactor = Reactor::new(ReactorConfig::default(), config).unwrap();
        let seen = Rc::new(RefCell::new(Seen::default()));
        let factory_seen = Rc::clone(&seen);
        let addr = reactor
            .listen_tcp("127.0.0.1:0".parse().unwrap(), move || {
                PauseOnFirst(Rc::clone(&factory_seen))
            })
            .unwrap();

        // Everything, end of stream included, is in the server's socket before it reads.
        const SIZE: usize = 40_000;
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(&[7; SIZE]).unwrap();
        client.shutdown(Shutdown::Write).unwrap();

        let limit = Duration::from_secs(10);
        // The turn that delivers the first bytes also dispatches the completions that came
        // with them (more bytes, the end of stream): they arrive while reading is paused.
        assert!(reactor.run_until(limit, |_| seen.borrow().bytes > 0).unwrap());
        assert_eq!(seen.borrow().eof_after, None, "end of stream delivered while paused: {:?}", seen.borrow());

        let conn = seen.borrow().conn.unwrap();
        reactor.with_conn(conn, |ctx| ctx.resume_reading());
        assert!(reactor.run_until(limit, |_| seen.borrow().eof_after.is_some()).unwrap());
        let seen = seen.borrow();
        assert_eq!(seen.eof_after, Some(SIZE), "{seen:?}");
        assert!(!seen.eof_while_paused);
    }
}
