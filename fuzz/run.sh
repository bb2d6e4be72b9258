#!/bin/sh
# Runs fuzz targets one after another for SECONDS each (default 600), at the lowest priority,
# keeping going after a crash (fork mode) so that every target gets its full time; what it
# finds lands in fuzz/artifacts/TARGET/, its log in fuzz/target/logs/TARGET.log.
# Usage, from fuzz/: ./run.sh [SECONDS] [TARGET...]   (no targets: all of them)
set -eu
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=${*:-$(cargo +nightly fuzz list)}
mkdir -p target/logs
for t in $targets; do
    mkdir -p "target/work/$t"
    echo "== $t: $seconds s from $(date -u +%H:%M:%S)"
    nice -n 19 cargo +nightly fuzz run -s none -a "$t" "target/work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 \
        -fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1 \
        >"target/logs/$t.log" 2>&1 || echo "   $t exited $?"
    grep -E "DONE|stat::number_of_executed_units|stat::average_exec_per_sec|crash-|oom-|timeout-" \
        "target/logs/$t.log" | tail -5
done
