#!/usr/bin/env bash
# Engine echo vs bare driver echo: the engine's echo example (engine/examples/echo.rs, one
# core) and the bare driver echo server (benches/examples/driver_echo.rs), both on io_uring
# and pinned to SERVER_CPU, loaded by the same echo_load client pinned to CLIENT_CPU with
# the same settings, runs interleaved (engine, driver, engine, driver, ...).
#
# It is driver_echo_bench.sh with RUNS="engine:uring driver:uring": the table's last line
# gives the engine/driver ratios of msg/s and of server CPU time per message. Every setting
# of driver_echo_bench.sh (ROUNDS, DURATION, WARMUP, CONNECTIONS, SIZE, LOAD_BACKEND,
# SERVER_CPU, CLIENT_CPU, PORT_BASE) applies; set RUNS to compare other pairs.
#
# Measure on an otherwise idle machine: on 2-core VMs noise is +-5-10% and more (see
# FINDINGS.md).
set -euo pipefail
export RUNS=${RUNS:-engine:uring driver:uring}
exec "$(dirname "${BASH_SOURCE[0]}")/driver_echo_bench.sh" "$@"
