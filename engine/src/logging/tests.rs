use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;

use super::{ESCAPE_LIMIT, LogSink, RateLimit, escape};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn rate_limit_logs_the_first_then_one_per_interval_with_a_count() {
    let second = Duration::from_secs(1);
    let mut limit = RateLimit::new(10 * second);
    let t0 = Instant::now();
    assert_eq!(limit.hit(t0), Some(0));
    for i in 1..10 {
        assert_eq!(limit.hit(t0 + i * second), None, "at {i}s");
    }
    assert_eq!(limit.hit(t0 + 10 * second), Some(9));
    assert_eq!(limit.hit(t0 + 11 * second), None);
    // A quiet spell: the next one is logged with what was counted before it.
    assert_eq!(limit.hit(t0 + 100 * second), Some(1));
    assert_eq!(limit.hit(t0 + 101 * second), None);
    assert_eq!(limit.take_suppressed(), 1);
    assert_eq!(limit.take_suppressed(), 0);
    // Taking the count keeps the window.
    assert_eq!(limit.hit(t0 + 102 * second), None);
    assert_eq!(limit.hit(t0 + 110 * second), Some(1));
}

#[test]
fn rate_limit_with_zero_interval_logs_everything() {
    let mut limit = RateLimit::new(Duration::ZERO);
    let now = Instant::now();
    for _ in 0..5 {
        assert_eq!(limit.hit(now), Some(0));
    }
}

#[test]
fn rate_limit_tolerates_a_clock_going_backwards() {
    let mut limit = RateLimit::new(Duration::from_secs(10));
    let t0 = Instant::now() + Duration::from_secs(5);
    assert_eq!(limit.hit(t0), Some(0));
    assert_eq!(limit.hit(t0 - Duration::from_secs(5)), None);
}

#[test]
fn escape_table() {
    let cases: &[(&[u8], &str)] = &[
        (b"", ""),
        (b"plain text: 1 + 2 = 3", "plain text: 1 + 2 = 3"),
        (b"line\r\nFAKE", r"line\x0d\x0aFAKE"),
        (b"\x1b[31mred\x07", r"\x1b[31mred\x07"),
        (b"back\\slash", r"back\\slash"),
        (b"\x00\x7f\xff", r"\x00\x7f\xff"),
        ("caf\u{e9} \u{202e}".as_bytes(), r"caf\xc3\xa9 \xe2\x80\xae"),
    ];
    for (input, expected) in cases {
        assert_eq!(escape(input).to_string(), *expected, "{input:?}");
    }
}

#[test]
fn escape_cuts_long_input() {
    let long = vec![b'a'; ESCAPE_LIMIT + 10];
    let text = escape(&long).to_string();
    assert_eq!(
        text,
        format!("{}...(10 more bytes)", "a".repeat(ESCAPE_LIMIT))
    );
    assert_eq!(
        escape(&long).limit(usize::MAX).to_string(),
        "a".repeat(long.len())
    );
    assert_eq!(escape(b"abc").limit(1).to_string(), "a...(2 more bytes)");
    let controls = vec![b'\n'; ESCAPE_LIMIT * 2];
    let text = escape(&controls).to_string();
    assert!(text.len() < ESCAPE_LIMIT * 4 + 30, "{}", text.len());
    assert!(!text.contains('\n'));
}

/// An output that fails every write, as stderr does once its reader is gone (EPIPE).
struct Broken;

impl Write for Broken {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_failing_output_costs_lines_not_errors() {
    let sink = LogSink::new(Broken, 1024 * 1024).expect("start the sink");
    let mut writer = sink.writer();
    for i in 0..10 {
        // The io::Write face reports success: tracing-subscriber must not see an error.
        writer
            .write_all(format!("line {i}\n").as_bytes())
            .expect("never fails");
    }
    assert!(sink.flush(LIMIT), "the flush is acknowledged");
    assert_eq!(sink.lost(), 10);
}

/// An output that blocks until told to go on, as a pipe nobody reads does; then it keeps
/// what is written.
struct Stalled {
    go: Receiver<()>,
    blocked: bool,
    out: Arc<Mutex<Vec<u8>>>,
}

impl Write for Stalled {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.blocked {
            let _ = self.go.recv();
            self.blocked = false;
        }
        self.out
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_stalled_output_never_blocks_the_sender_and_the_queue_is_bounded() {
    let (go, gate) = crossbeam_channel::bounded(1);
    let out = Arc::default();
    let budget = 64 * 1024;
    let output = Stalled {
        go: gate,
        blocked: true,
        out: Arc::clone(&out),
    };
    let sink = LogSink::new(output, budget).expect("start the sink");
    let writer = sink.writer();
    let line = [b'x'; 99];
    let mut line = line.to_vec();
    line.push(b'\n');
    // Far more than the budget: with the output stalled, sending must neither block nor
    // queue without bound.
    let sent = (0..10_000).filter(|_| writer.send(&line)).count();
    assert!(sent < 10_000, "some lines are dropped");
    assert!(sent * line.len() <= budget, "{sent} lines queued");
    assert_eq!(sink.lost(), (10_000 - sent) as u64);
    assert!(!sink.flush(Duration::ZERO), "nothing is written yet");
    go.send(()).expect("release the output");
    assert!(sink.flush(LIMIT), "the queue drains once the output moves");
    let written = out.lock().unwrap_or_else(PoisonError::into_inner).len();
    assert_eq!(written, sent * line.len());
    // The queue is usable again.
    assert!(writer.send(&line));
    assert!(sink.flush(LIMIT));
}

/// A reopenable sink: lines before `reopen` stay in the renamed file, lines after go to a
/// new file at the path (logrotate's rename-then-signal).
#[test]
fn reopen_moves_later_lines_to_a_new_file() {
    let dir = std::env::temp_dir().join(format!("ringwork-sink-reopen-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("access.log");
    let sink = LogSink::reopenable(&path, 1 << 20).expect("open");
    let writer = sink.writer();
    assert!(writer.send(b"one\n"));
    assert!(sink.flush(Duration::from_secs(20)));
    let rotated = dir.join("access.log.1");
    std::fs::rename(&path, &rotated).expect("rename");
    // Still the open file: the renamed one.
    assert!(writer.send(b"two\n"));
    sink.reopen();
    assert!(writer.send(b"three\n"));
    assert!(sink.flush(Duration::from_secs(20)));
    assert_eq!(
        std::fs::read_to_string(&rotated).expect("read"),
        "one\ntwo\n"
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), "three\n");
    let _ = std::fs::remove_dir_all(&dir);
}
