//! Test fixtures: a small hand-made [`Results`] (two servers measured, one missing, a wrk
//! cross-check that disagrees, a fixed-rate run and an idle-connections run).

use std::collections::BTreeMap;

use crate::compare::idle::Idle;
use crate::compare::load::Run;
use crate::compare::procfs::Machine;
use crate::compare::results::{
    RINGWORK_LOAD, Results, RunRecord, ServerInfo, SuiteInfo, WRK, WorkloadResult,
};
use crate::compare::suite::Suite;

fn run(rps: f64, cpu: f64, p99: f64, problem: Option<&str>) -> Run {
    let mut errors = BTreeMap::new();
    if problem.is_some() {
        errors.insert("reset".to_string(), 2);
    }
    Run {
        requests: (rps * 2.0) as u64,
        rps,
        p50_us: Some(p99 / 4.0),
        p99_us: Some(p99),
        p999_us: Some(p99 * 2.0),
        cpu_us_per_req: Some(cpu),
        errors,
        problem: problem.map(String::from),
        ..Run::default()
    }
}

fn rec(round: u32, server: &str, tool: &str, run: Option<Run>, failure: Option<&str>) -> RunRecord {
    RunRecord {
        round,
        server: server.into(),
        tool: tool.into(),
        run,
        failure: failure.map(String::from),
    }
}

/// The fixture.
pub fn results() -> Results {
    let suite = Suite::named("quick").unwrap();
    let find = |id: &str| suite.workloads.iter().find(|w| w.id == id).unwrap().clone();
    let servers = vec![
        "ringwork".to_string(),
        "nginx".to_string(),
        "go".to_string(),
    ];

    let mut keepalive = WorkloadResult::new(find("http-keepalive"), servers.clone());
    for round in 1..=3 {
        let r = f64::from(round);
        keepalive.runs.push(rec(
            round,
            "ringwork",
            RINGWORK_LOAD,
            Some(run(95_000.0 + 5_000.0 * (r - 1.0), 10.0, 1500.0, None)),
            None,
        ));
        let problem = (round == 3).then_some("errors reset=2");
        keepalive.runs.push(rec(
            round,
            "nginx",
            RINGWORK_LOAD,
            Some(run(
                if round == 3 { 200_000.0 } else { 85_000.0 },
                12.0,
                1800.0,
                problem,
            )),
            None,
        ));
        keepalive.runs.push(rec(
            round,
            "go",
            RINGWORK_LOAD,
            None,
            Some("missing: /x/go-hello"),
        ));
        keepalive.runs.push(rec(
            round,
            "ringwork",
            WRK,
            Some(run(88_000.0, 10.5, 1400.0, None)),
            None,
        ));
        keepalive.runs.push(rec(
            round,
            "nginx",
            WRK,
            Some(run(90_000.0, 11.0, 1300.0, None)),
            None,
        ));
    }
    keepalive.summarize();

    let mut rate = WorkloadResult::new(find("http-rate50"), servers[..2].to_vec());
    rate.rate = Some(42_500.0);
    rate.runs.push(rec(
        1,
        "ringwork",
        RINGWORK_LOAD,
        Some(Run {
            uncorrected_p99_us: Some(250.0),
            send_lag_p99_us: Some(20.0),
            send_lag_p999_us: Some(90.0),
            load_cpu_us_per_req: Some(11.5),
            ..run(42_500.0, 9.0, 300.0, None)
        }),
        None,
    ));
    rate.runs.push(rec(
        1,
        "nginx",
        RINGWORK_LOAD,
        Some(run(42_400.0, 11.0, 450.0, None)),
        None,
    ));
    rate.summarize();

    let mut idle = WorkloadResult::new(find("idle-rss"), servers[..2].to_vec());
    idle.idle.push((
        "ringwork".into(),
        Ok(Idle {
            requested: 10_000,
            opened: 10_000,
            accepted: 10_000,
            rss_before_kib: 4_000,
            rss_with_kib: 24_000,
            note: None,
        }),
    ));
    idle.idle.push((
        "nginx".into(),
        Err("exited (exit status: 1) before accepting".into()),
    ));

    Results {
        command: "compare --suite quick".into(),
        started_utc: "2026-11-21T17:40:24Z".into(),
        elapsed_s: 300.0,
        machine: Machine {
            cpu_model: "Test CPU".into(),
            cpus: 2,
            available_cpus: 2,
            kernel: "6.18.0".into(),
            mem_total_kib: Some(4 << 20),
        },
        suite: SuiteInfo {
            name: "quick".into(),
            rounds: 3,
            duration_s: 2.0,
            warmup_s: 0.5,
        },
        settings: BTreeMap::from([("server CPUs".to_string(), "0".to_string())]),
        servers: vec![
            ServerInfo {
                name: "ringwork".into(),
                protocol: "http".into(),
                unavailable: None,
            },
            ServerInfo {
                name: "nginx".into(),
                protocol: "http".into(),
                unavailable: None,
            },
            ServerInfo {
                name: "go".into(),
                protocol: "http".into(),
                unavailable: Some("missing: /x/go-hello".into()),
            },
        ],
        versions: BTreeMap::from([(
            "nginx".to_string(),
            "nginx version: nginx/1.26.0".to_string(),
        )]),
        workloads: vec![keepalive, rate, idle],
        warnings: vec![],
    }
}
