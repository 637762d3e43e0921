//! End-to-end test of the comparison runner: `compare --suite smoke --servers ringwork`
//! against the debug-built `ringwork` and `ringwork-load`, checking the four output files
//! and a positive ringwork throughput in results.json.
//!
//! The two binaries belong to other packages, so `cargo test -p ringwork-benches` does not
//! build them: when they are missing next to the `compare` binary, the test builds them
//! (`cargo build -p ringwork-cli --bin ringwork -p ringwork-loadtest --bin
//! ringwork-load`, same target directory); if that fails it prints a loud SKIPPED line.
//! It uses no wrk (`--no-wrk`) and no other peer, and takes ~10 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn bin_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_compare"))
        .parent()
        .expect("the compare binary is in a directory")
        .to_path_buf()
}

/// Makes sure `ringwork` and `ringwork-load` exist in `dir`; the reason if they cannot.
fn ensure_binaries(dir: &Path) -> Result<(), String> {
    let present = || {
        ["ringwork", "ringwork-load"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if present() {
        return Ok(());
    }
    // target/<profile>/compare: build the same profile into the same target directory.
    let target = dir.parent().ok_or("no target directory")?;
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("CARGO_TARGET_DIR", target)
        .args(["build", "-p", "ringwork-cli", "--bin", "ringwork"])
        .args(["-p", "ringwork-loadtest", "--bin", "ringwork-load"]);
    if profile == "release" {
        cmd.arg("--release");
    }
    eprintln!("compare_smoke: building ringwork and ringwork-load: {cmd:?}");
    let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() || !present() {
        return Err(format!("building them failed ({status})"));
    }
    Ok(())
}

const MANIFEST: &str = r#"
[[server]]
name = "ringwork"
workload = "http"
cmd = ["target/release/ringwork", "serve", "hello", "--listen", "tcp:{port}:interface=127.0.0.1", "--cores", "{cores}"]
requires = ["target/release/ringwork"]

[[server]]
name = "ringwork"
workload = "echo"
cmd = ["target/release/ringwork", "serve", "echo", "--listen", "tcp:{port}:interface=127.0.0.1", "--cores", "{cores}"]
requires = ["target/release/ringwork"]

[[server]]
name = "absent"
workload = "http"
cmd = ["/nonexistent/absent-server", "{port}"]
requires = ["/nonexistent/absent-server"]
"#;

#[test]
fn smoke_suite_end_to_end() {
    let bins = bin_dir();
    if let Err(why) = ensure_binaries(&bins) {
        eprintln!(
            "\n*** compare_smoke SKIPPED: ringwork/ringwork-load are not in {} and {why} ***\n",
            bins.display()
        );
        return;
    }
    let out = std::env::temp_dir().join(format!("compare-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).unwrap();
    let manifest = out.join("peers.toml");
    std::fs::write(&manifest, MANIFEST).unwrap();

    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args([
            "--suite",
            "smoke",
            "--servers",
            "ringwork,absent",
            "--no-wrk",
        ])
        .arg("--bin-dir")
        .arg(&bins)
        .arg("--manifest")
        .arg(&manifest)
        .arg("--out")
        .arg(&out)
        .args(["--port-base", "23100"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "compare failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stderr}\n{stdout}\ncompare_smoke: {elapsed:?}");

    for f in [
        "results.md",
        "results.json",
        "throughput.svg",
        "latency.svg",
    ] {
        let p = out.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p).unwrap().len() > 100,
            "{f} missing or empty"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let median_rps = |id: &str| -> f64 {
        let w = json["workloads"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["workload"]["id"] == id)
            .unwrap_or_else(|| panic!("no workload {id}"));
        let row = w["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["server"] == "ringwork" && r["tool"] == "ringwork-load")
            .unwrap_or_else(|| panic!("no ringwork row in {id}"));
        row["rps"]["median"].as_f64().unwrap_or(0.0)
    };
    for id in [
        "echo-128b-c10",
        "http-keepalive",
        "http-pipeline16",
        "http-rate50",
        "http-rate80",
    ] {
        assert!(median_rps(id) > 0.0, "{id}: ringwork has no positive req/s");
    }
    // The missing server is reported, not dropped.
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(
        md.contains("absent (http) skipped**: missing: /nonexistent/absent-server"),
        "{md}"
    );
    assert!(md.contains("| absent |"), "{md}");
    // A bound that says the smoke suite stops by itself (it takes ~10 s on a quiet machine;
    // a loaded 2-core CI machine has taken over 30 s), not a timing.
    assert!(elapsed.as_secs() < 120, "the smoke suite took {elapsed:?}");
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn the_repository_manifest_parses_and_has_the_baseline() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/peers.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let m = ringwork_benches::compare::manifest::Manifest::parse(&text).unwrap();
    assert!(
        m.servers.iter().any(|s| s.name == "ringwork"),
        "no ringwork entry in {path}"
    );
}
