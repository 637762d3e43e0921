#!/usr/bin/env bash
# Helpers of the callgrind scripts (hello_, static_, dns_, ws_callgrind.sh): sourced.

# callgrind_control_waking PID WAKE OPTION...: runs `callgrind_control OPTION... PID` (-z to
# zero the counters, -d to dump them). callgrind_control is served when the server runs, not
# while it waits in the kernel, so the shell function WAKE (a request the server answers) is
# run every 0.2 s until the control returns.
callgrind_control_waking() {
    local server=$1 wake=$2
    shift 2
    callgrind_control "$@" "$server" >/dev/null &
    local control=$!
    while kill -0 $control 2>/dev/null; do
        "$wake" >/dev/null 2>&1 || true
        sleep 0.2
    done
}

# callgrind_total DUMP: the instructions of the whole program in DUMP.
callgrind_total() {
    callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'
}

# callgrind_report OUT COUNT LABEL UNIT: prints the newest first dump in OUT
# (callgrind.out.PID.1), COUNT under LABEL (what the load completed: "requests",
# "queries completed"), the dump's instructions and the instructions per UNIT.
callgrind_report() {
    local out=$1 count=$2 label=$3 unit=$4 dump total
    dump=$(ls -t "$out"/callgrind.out.*.1 2>/dev/null | head -1)
    total=$(callgrind_total "$dump")
    echo "dump: $dump"
    echo "$label: $count"
    echo "instructions: $total"
    echo "instructions/$unit: $(awk -v t="$total" -v r="$count" 'BEGIN {printf "%.0f", t / r}')"
}
