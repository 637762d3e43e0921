use super::*;
use crate::compare::fixtures;

#[test]
fn rows_take_medians_of_good_runs_and_ratios_against_ringwork() {
    let w = &fixtures::results().workloads[0];
    let rw = w.row("ringwork", RINGWORK_LOAD).unwrap();
    assert_eq!(rw.rps.unwrap().median, 100_000.0);
    assert_eq!((rw.runs, rw.ok_runs), (3, 3));
    let ng = w.row("nginx", RINGWORK_LOAD).unwrap();
    // Round 3 of nginx had errors: excluded from the medians, reported as the failure.
    assert_eq!((ng.runs, ng.ok_runs), (3, 2));
    assert_eq!(ng.rps.unwrap().median, 85_000.0);
    assert!(ng.failure.as_deref().unwrap().contains("reset=2"));
    assert!((ng.ratio_rps.unwrap() - 100.0 / 85.0).abs() < 1e-9);
    assert!((ng.ratio_cpu.unwrap() - 10.0 / 12.0).abs() < 1e-9);
    assert_eq!(rw.ratio_rps, Some(1.0));
}

#[test]
fn missing_server_keeps_a_row_with_its_reason() {
    let w = &fixtures::results().workloads[0];
    let go = w.row("go", RINGWORK_LOAD).unwrap();
    assert_eq!(go.ok_runs, 0);
    assert_eq!(go.rps, None);
    assert_eq!(go.failure.as_deref(), Some("missing: /x/go-hello"));
}

#[test]
fn rank_check_from_both_tools() {
    let w = &fixtures::results().workloads[0];
    let rank = w.rank.as_ref().unwrap();
    assert!(!rank.agree, "the fixture's wrk puts nginx first");
    assert_eq!(rank.wrk, ["nginx", "ringwork"]);
}

#[test]
fn timestamps() {
    assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
    assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(utc_timestamp(1_795_282_824), "2026-11-21T17:40:24Z");
}
