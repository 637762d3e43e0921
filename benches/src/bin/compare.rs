//! `compare`: runs a comparison suite of ringwork against its peers and writes
//! `results.md`, `results.json`, `throughput.svg` and `latency.svg`.
//!
//! ```text
//! cargo run --release -p ringwork-benches --bin compare -- --suite quick
//! ```
//!
//! Owns: the command line, resolving defaults (CPU split, binary directory, output
//! directory), raising RLIMIT_NOFILE (it re-executes itself under `sh -c 'ulimit -n N'`,
//! since this crate has no `unsafe` for setrlimit), and writing the output files after every
//! workload (an interrupted run keeps what it measured). See benches/README.md.
//! Does not: measure (see `ringwork_benches::compare`).
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use ringwork_benches::compare::load::{LoadEnv, find_wrk, version_of};
use ringwork_benches::compare::manifest::{Manifest, Paths, Protocol};
use ringwork_benches::compare::results::{Results, ServerInfo, SuiteInfo, utc_timestamp};
use ringwork_benches::compare::runner::{Config, run_workload};
use ringwork_benches::compare::server::Ports;
use ringwork_benches::compare::suite::{Load, Suite};
use ringwork_benches::compare::{default_cpu_split, markdown, parse_cpu_list, plot, procfs};
use ringwork_benches::parse_secs;

/// Set once the process has tried to raise its open-file limit (no re-exec loop).
const NOFILE_ENV: &str = "RINGWORK_COMPARE_NOFILE_RAISED";

/// Compare ringwork with the peer servers of a manifest: interleaved rounds, pinned CPUs,
/// ringwork-load (plus wrk for HTTP), server CPU per request, RSS with idle connections.
#[derive(Debug, Parser)]
#[command(name = "compare")]
struct Cli {
    /// smoke (seconds, a test), quick (~5 min on 2 cores), full (~30 min+).
    #[arg(long, default_value = "quick")]
    suite: String,
    /// Rounds (default: the suite's).
    #[arg(long)]
    rounds: Option<u32>,
    /// Measured seconds per run (default: the suite's).
    #[arg(long, value_parser = parse_secs)]
    duration: Option<std::time::Duration>,
    /// Warm-up seconds per run, excluded (default: the suite's).
    #[arg(long, value_parser = parse_secs)]
    warmup: Option<std::time::Duration>,
    /// Only these servers, comma-separated (manifest names).
    #[arg(long, value_delimiter = ',')]
    servers: Vec<String>,
    /// Only these workloads: ids or prefixes (`echo`, `http-keepalive,http-rate50`).
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// The peers manifest.
    #[arg(long)]
    manifest: Option<PathBuf>,
    /// Output directory (default: benches/results/UTC-TIMESTAMP).
    #[arg(long)]
    out: Option<PathBuf>,
    /// CPUs of the servers (taskset list; default: 0 on 2 CPUs, the lower half on more).
    #[arg(long)]
    server_cpus: Option<String>,
    /// CPUs of the load generators (default: 1 on 2 CPUs, the upper half on more).
    #[arg(long)]
    load_cpus: Option<String>,
    /// `{cores}` of the server commands (default: the number of server CPUs).
    #[arg(long)]
    server_cores: Option<usize>,
    /// Where `target/release/...` paths of the manifest and ringwork-load are looked up
    /// (default: $CARGO_TARGET_DIR/release, else target/release).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Idle connections of the RSS workload (default: the suite's).
    #[arg(long)]
    idle_connections: Option<u32>,
    /// Skip the wrk cross-check.
    #[arg(long)]
    no_wrk: bool,
    /// First port to try; each run takes the next free one.
    #[arg(long, default_value_t = 19_100)]
    port_base: u16,
    /// Fixed-rate workloads: ringwork-load's `--send-window` (sends of every connection due
    /// in one window go out together, at its start; `0` sends each at its own slot).
    #[arg(long, default_value = "100us")]
    send_window: String,
    /// Run the fixed-rate workloads' servers and generators under SCHED_FIFO (`chrt -f 10`;
    /// needs root), so that no other process (a compile, a kernel worker, this runner)
    /// delays them while they are runnable. Their generator then sleeps between sends
    /// instead of busy-polling, and closed-loop workloads run as usual: a task that never
    /// sleeps is throttled by the RT limit (50 ms of every second).
    #[arg(long)]
    fifo: bool,
    /// Fixed-rate workloads: take their percentages of this rate (req/s) instead of this
    /// run's slowest keep-alive median, e.g. to repeat another run's rates; then they need
    /// no `http-keepalive` in the same run.
    #[arg(long)]
    rate_base: Option<f64>,
    /// Keep the server and load CPUs from halting while the runner runs: a SCHED_IDLE busy
    /// loop on each (any other task preempts it at once). In a VM an idle vCPU halts, and
    /// waking it is a hypervisor exit: this takes the halts out of the latencies, to see
    /// what share of a tail they are (they are the VM's, not the server's).
    #[arg(long)]
    no_halt: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::from(2)
        }
    }
}

/// Re-executes this process under `ulimit -n wanted` once, when the soft limit is lower.
fn raise_nofile(wanted: u64) -> Result<(), String> {
    let soft = procfs::nofile_limits().map_or(0, |l| l.0);
    if soft >= wanted || std::env::var_os(NOFILE_ENV).is_some() {
        return Ok(());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let err = Command::new("sh")
        .arg("-c")
        .arg(r#"n=$1; shift; ulimit -n "$n" 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@""#)
        .arg("sh")
        .arg(wanted.to_string())
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(NOFILE_ENV, "1")
        .exec();
    Err(format!("cannot re-execute under ulimit -n {wanted}: {err}"))
}

fn write_outputs(out: &Path, results: &Results) -> Result<String, String> {
    let md = markdown::render(results);
    let io = |p: &Path, e: std::io::Error| format!("{}: {e}", p.display());
    let json = serde_json::to_string_pretty(results).map_err(|e| e.to_string())?;
    let p = out.join("results.json");
    std::fs::write(&p, json).map_err(|e| io(&p, e))?;
    let p = out.join("results.md");
    std::fs::write(&p, &md).map_err(|e| io(&p, e))?;
    plot::throughput(&out.join("throughput.svg"), results)?;
    plot::latency(&out.join("latency.svg"), results)?;
    Ok(md)
}

fn git_version(repo: &Path) -> Option<String> {
    version_of(
        &[
            "git".into(),
            "describe".into(),
            "--always".into(),
            "--dirty".into(),
        ],
        repo,
    )
    .map(|v| format!("git {v}"))
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    if let Some(base) = cli.rate_base.filter(|b| !(b.is_finite() && *b >= 1.0)) {
        return Err(format!(
            "--rate-base {base}: must be a rate of at least 1 req/s"
        ));
    }
    if cli.fifo {
        // Refused here rather than as a failed start of every server.
        let ok = Command::new("chrt")
            .args(["-f", "10", "true"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err(
                "--fifo: `chrt -f 10` failed (SCHED_FIFO needs root or CAP_SYS_NICE)".into(),
            );
        }
    }
    let mut suite = Suite::named(&cli.suite)
        .ok_or_else(|| format!("unknown suite {:?} (smoke, quick, full)", cli.suite))?;
    if let Some(r) = cli.rounds {
        suite.rounds = r.max(1);
    }
    if let Some(d) = cli.duration {
        suite.duration = d;
    }
    if let Some(w) = cli.warmup {
        suite.warmup = w;
    }
    if !cli.workloads.is_empty() {
        suite.retain(&cli.workloads);
        if suite.workloads.is_empty() {
            return Err(format!(
                "--workloads {:?} matches no workload of the suite",
                cli.workloads
            ));
        }
    }
    if let Some(n) = cli.idle_connections {
        for w in &mut suite.workloads {
            if let Load::IdleRss { connections } = &mut w.load {
                *connections = n;
                w.title = format!("RSS with {n} idle connections");
            }
        }
    }
    let idle_max = suite
        .workloads
        .iter()
        .filter_map(|w| match w.load {
            Load::IdleRss { connections } => Some(u64::from(connections)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    raise_nofile(idle_max + 4096)?;

    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or("no repository root")?
        .to_path_buf();
    let bin_dir =
        cli.bin_dir
            .clone()
            .unwrap_or_else(|| match std::env::var_os("CARGO_TARGET_DIR") {
                Some(t) => PathBuf::from(t).join("release"),
                None => repo.join("target/release"),
            });
    let bin_dir = if bin_dir.is_relative() {
        repo.join(bin_dir)
    } else {
        bin_dir
    };
    let paths = Paths {
        repo: repo.clone(),
        bin_dir: bin_dir.clone(),
    };
    let ringwork_load = bin_dir.join("ringwork-load");
    if !ringwork_load.is_file() {
        return Err(format!(
            "{} not found: build it with `cargo build --release -p ringwork-loadtest --bin ringwork-load` \
             (or pass --bin-dir)",
            ringwork_load.display()
        ));
    }

    let manifest_path = cli
        .manifest
        .clone()
        .unwrap_or_else(|| repo.join("benches/peers/peers.toml"));
    let text = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let manifest =
        Manifest::parse(&text).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    let mut servers = manifest.servers;
    if !cli.servers.is_empty() {
        for name in &cli.servers {
            if !servers.iter().any(|s| &s.name == name) {
                return Err(format!(
                    "--servers: {name:?} is not in {}",
                    manifest_path.display()
                ));
            }
        }
        servers.retain(|s| cli.servers.contains(&s.name));
    }
    let unavailable: BTreeMap<(String, Protocol), String> = servers
        .iter()
        .filter_map(|s| {
            let why = format!("missing: {}", s.missing(&paths)?);
            Some(((s.name.clone(), s.workload), why))
        })
        .collect();

    let machine = procfs::machine();
    let (def_server, def_load) = default_cpu_split(machine.available_cpus);
    let server_cpus = cli.server_cpus.clone().unwrap_or(def_server);
    let load_cpus = cli.load_cpus.clone().unwrap_or(def_load);
    let server_n = parse_cpu_list(&server_cpus)?.len();
    let load_n = parse_cpu_list(&load_cpus)?.len();
    let server_cores = cli.server_cores.unwrap_or(server_n);
    let wrk = if cli.no_wrk { None } else { find_wrk() };

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let started_utc = utc_timestamp(now);
    let out = cli.out.clone().unwrap_or_else(|| {
        repo.join("benches/results")
            .join(started_utc.replace(':', "-"))
    });
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;

    let nofile = procfs::nofile_limits();
    let (ephemeral_ports, somaxconn) = procfs::net_limits();
    let mut settings = BTreeMap::new();
    let mut set = |k: &str, v: String| settings.insert(k.to_string(), v);
    set(
        "server CPUs (taskset)",
        format!("{server_cpus}, {{cores}} = {server_cores}"),
    );
    set(
        "load generator CPUs (taskset, ringwork-load --cpus, wrk -t)",
        format!("{load_cpus} ({load_n} threads)"),
    );
    set(
        "wrk",
        wrk.as_ref().map_or_else(
            || "not used (not found or --no-wrk)".into(),
            |p| p.display().to_string(),
        ),
    );
    set(
        "RLIMIT_NOFILE (soft/hard)",
        nofile.map_or_else(|| "?".into(), |(s, h)| format!("{s}/{h}")),
    );
    set(
        "ephemeral ports / somaxconn",
        format!(
            "{} / {}",
            ephemeral_ports.map_or_else(|| "?".into(), |v| v.to_string()),
            somaxconn.map_or_else(|| "?".into(), |v| v.to_string())
        ),
    );
    let busy_poll = if cli.fifo { "0" } else { "200us" };
    set(
        "fixed-rate generator (ringwork-load)",
        format!("--busy-poll {busy_poll} --send-window {}", cli.send_window),
    );
    set(
        "scheduling",
        if cli.fifo {
            "fixed-rate servers and generators under SCHED_FIFO (chrt -f 10, --fifo)".into()
        } else {
            "normal (SCHED_OTHER)".into()
        },
    );
    if let Some(base) = cli.rate_base {
        set("fixed rates of", format!("{base} req/s (--rate-base)"));
    }
    if cli.no_halt {
        set(
            "idle CPUs",
            "kept from halting by a SCHED_IDLE busy loop each (--no-halt)".into(),
        );
    }
    set("manifest", manifest_path.display().to_string());
    set("binaries", bin_dir.display().to_string());

    let mut versions = BTreeMap::new();
    if let Some(v) = git_version(&repo) {
        versions.insert("repository (ringwork, ringwork-load)".to_string(), v);
    }
    if let Some(v) = wrk
        .as_ref()
        .and_then(|w| version_of(&[w.display().to_string(), "-v".into()], &repo))
    {
        versions.insert("wrk".into(), v);
    }
    for s in &servers {
        if !s.version.is_empty()
            && !unavailable.contains_key(&(s.name.clone(), s.workload))
            && !versions.contains_key(&s.name)
        {
            let cmd: Vec<String> = s.version.iter().map(|a| paths.resolve(a)).collect();
            if let Some(v) = version_of(&cmd, &repo) {
                versions.insert(s.name.clone(), v);
            }
        }
    }

    let command = std::iter::once("compare".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let mut results = Results {
        command: format!(
            "cargo run --release -p ringwork-benches --bin compare -- {}",
            &command[8.min(command.len())..]
        ),
        started_utc,
        elapsed_s: 0.0,
        machine,
        suite: SuiteInfo {
            name: suite.name.clone(),
            rounds: suite.rounds,
            duration_s: suite.duration.as_secs_f64(),
            warmup_s: suite.warmup.as_secs_f64(),
        },
        settings,
        servers: servers
            .iter()
            .map(|s| ServerInfo {
                name: s.name.clone(),
                protocol: s.workload.to_string(),
                unavailable: unavailable.get(&(s.name.clone(), s.workload)).cloned(),
            })
            .collect(),
        versions,
        workloads: Vec::new(),
        warnings: Vec::new(),
    };
    for ((name, workload), why) in &unavailable {
        eprintln!("compare: server {name} ({workload}) skipped: {why}");
    }
    if let Some(why) = idle_note(idle_max, nofile.map(|n| n.0), ephemeral_ports) {
        eprintln!("compare: {why}");
        results.warnings.push(why);
    }
    // Other jobs on the machine skew req/s (CPU per request much less): say so up front.
    let idle = procfs::idle_percent(std::time::Duration::from_secs(1));
    if let Some(idle) = idle.filter(|i| *i < 90.0) {
        let busiest = Command::new("ps")
            .args(["-e", "-o", "comm=", "--sort=-pcpu"])
            .output()
            .map(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.lines().take(4).collect::<Vec<_>>().join(", ")
            })
            .unwrap_or_default();
        let why = format!(
            "the machine was only {idle:.0}% idle before the run (busiest: {busiest}): \
             expect noisy req/s; compare CPU per request and re-run when it is quiet"
        );
        eprintln!("compare: WARNING: {why}");
        results.warnings.push(why);
    }
    let wants_wrk = suite
        .workloads
        .iter()
        .any(|w| matches!(w.load, Load::Http { wrk: true, .. }));
    if wants_wrk && wrk.is_none() {
        let why = "wrk cross-check skipped: wrk not found on PATH or --no-wrk \
                   (scripts/install-http-test-deps.sh installs it)";
        eprintln!("compare: {why}");
        results.warnings.push(why.into());
    }
    // The runner's own polling stays off the server CPUs.
    let runner_cpu = parse_cpu_list(&load_cpus)?.first().copied().unwrap_or(0);
    if let Err(e) = ringwork_benches::pin_to_cpu(runner_cpu) {
        results
            .warnings
            .push(format!("could not pin the runner to CPU {runner_cpu}: {e}"));
    }
    if server_cpus == load_cpus {
        results
            .warnings
            .push("the server and the load generator share CPUs: throughput and CPU/req are not comparable to split runs".into());
    }
    let workloads = suite.workloads.clone();
    let cfg = Config {
        suite,
        servers,
        unavailable,
        paths,
        server_cpus,
        server_cores,
        load: LoadEnv {
            ringwork_load,
            wrk,
            pipeline_lua: repo.join("benches/scripts/wrk/pipeline.lua"),
            cpus: load_cpus,
            threads: load_n,
            clk_tck: procfs::clk_tck(),
            send_window: cli.send_window.clone(),
            busy_poll: busy_poll.into(),
            fifo: cli.fifo,
        },
        rate_base: cli.rate_base,
        logs,
        nofile_soft: nofile.map(|n| n.0),
        ephemeral_ports,
    };
    eprintln!("compare: suite {} -> {}", cfg.suite.name, out.display());
    let started = Instant::now();
    let mut ports = Ports::new(cli.port_base);
    let mut md = String::new();
    let mut spinners = Vec::new();
    if cli.no_halt {
        let mut cpus = parse_cpu_list(&cfg.server_cpus)?;
        cpus.extend(parse_cpu_list(&cfg.load.cpus)?);
        cpus.sort_unstable();
        cpus.dedup();
        for cpu in cpus {
            spinners.push(spin(cpu)?);
        }
    }
    let mut outcome = Ok(());
    for w in &workloads {
        run_workload(&cfg, w, &mut ports, &mut results);
        results.elapsed_s = started.elapsed().as_secs_f64();
        match write_outputs(&out, &results) {
            Ok(text) => md = text,
            Err(e) => {
                outcome = Err(e);
                break;
            }
        }
    }
    for mut s in spinners {
        let _ = s.kill();
        let _ = s.wait();
    }
    outcome?;
    println!("{md}");
    eprintln!("compare: results in {}", out.display());
    Ok(())
}

/// A SCHED_IDLE busy loop pinned to `cpu` (`--no-halt`) that also ends by itself once this
/// process is gone (it checks with `kill -0` on every pass), so an interrupted runner leaves
/// no spinner behind.
fn spin(cpu: usize) -> Result<std::process::Child, String> {
    Command::new("chrt")
        .args(["-i", "0", "taskset", "-c", &cpu.to_string(), "sh", "-c"])
        .arg(r#"while kill -0 "$0" 2>/dev/null; do :; done"#)
        .arg(std::process::id().to_string())
        .stdin(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("--no-halt: cannot start a busy loop on CPU {cpu}: {e}"))
}

/// Why fewer idle connections than asked can be opened, if so.
fn idle_note(wanted: u64, nofile_soft: Option<u64>, ports: Option<u64>) -> Option<String> {
    let wanted = u32::try_from(wanted).ok().filter(|w| *w > 0)?;
    ringwork_benches::compare::idle::budget(wanted, nofile_soft, ports).1
}
