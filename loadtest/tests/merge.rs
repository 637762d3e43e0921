//! `ringwork-load merge` (issue 16): reports of different runs are refused with what differs,
//! and merged rates are consistent (never more completed than sent per second).

use ringwork_loadtest::Report;
use ringwork_loadtest::report::{Counters, ReportError, RunFacts, new_histogram};

/// A report of `requests` completed out of `sent`, over `duration_s`.
fn report(workload: &str, target: &str, rate: Option<f64>, duration_s: f64, sent: u64) -> Report {
    let mut h = new_histogram();
    let requests = sent - 10;
    for i in 0..requests {
        h.record(100 + i % 1000).expect("record");
    }
    let facts = RunFacts {
        workload: workload.into(),
        target: target.into(),
        connections: 10,
        cores: 1,
        target_rate: rate,
        duration_s,
    };
    let counters = Counters {
        requests,
        sent,
        bytes_in: requests * 100,
        ..Counters::default()
    };
    Report::new(facts, counters, &h, None)
}

#[test]
fn reports_of_different_runs_are_refused_naming_what_differs() {
    let http = report("http", "http://127.0.0.1:8080/", None, 10.0, 1000);
    for (other, what, first, second) in [
        (
            report("tcp", "http://127.0.0.1:8080/", None, 10.0, 1000),
            "workload",
            "http",
            "tcp",
        ),
        (
            report("http", "http://127.0.0.1:8081/", None, 10.0, 1000),
            "target",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8081/",
        ),
        (
            report("http", "http://127.0.0.1:8080/", Some(5000.0), 10.0, 1000),
            "rate mode",
            "closed loop",
            "constant rate",
        ),
    ] {
        let error = Report::merge(&[http.clone(), http.clone(), other]).expect_err(what);
        assert!(
            matches!(&error, ReportError::Mismatch { what: w, index: 3, .. } if *w == what),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(
            text.contains(what) && text.contains(first) && text.contains(second),
            "{text}"
        );
    }
    // The same run's reports still merge.
    let merged = Report::merge(&[http.clone(), http]).expect("same workload and target");
    assert_eq!((merged.workload.as_str(), merged.runs), ("http", 2));
}

#[test]
fn merged_rates_never_show_more_completed_than_sent() {
    // Concurrent runs whose measured periods differ: summing each run's own rate would give
    // 990/1 + 990/10 = 1089 completed/s against 2000/10 = 200 sent/s.
    let short = report("http", "t", None, 1.0, 1000);
    let long = report("http", "t", None, 10.0, 1000);
    assert!(short.rps + long.rps > (short.sent + long.sent) as f64 / 10.0);
    let merged = Report::merge(&[short, long]).expect("merge");
    assert_eq!((merged.requests, merged.sent), (1980, 2000));
    assert_eq!(merged.duration_s, 10.0);
    let sent_rate = merged.sent as f64 / merged.duration_s;
    assert!((merged.rps - 198.0).abs() < 1e-9, "{}", merged.rps);
    assert!(merged.rps <= sent_rate, "{} > {sent_rate}", merged.rps);
    assert!((merged.in_mb_per_sec - 1980.0 * 100.0 / 10.0 / 1e6).abs() < 1e-12);
    let summary = merged.summary();
    assert!(
        summary.contains("1980 completed, 198.0/s; 2000 sent (200.0/s)"),
        "{summary}"
    );
}

#[test]
fn the_merge_command_names_the_difference() {
    let dir = std::env::temp_dir().join(format!("ringwork-load-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (a, b) = (dir.join("a.json"), dir.join("b.json"));
    std::fs::write(&a, report("http", "t", None, 10.0, 100).to_json()).expect("write");
    std::fs::write(&b, report("tcp", "t", None, 10.0, 100).to_json()).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringwork-load"))
        .arg("merge")
        .arg(&a)
        .arg(&b)
        .output()
        .expect("run ringwork-load merge");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("workload") && stderr.contains("\"http\"") && stderr.contains("\"tcp\""),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
