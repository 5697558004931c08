#!/bin/sh
# Runs each libFuzzer target for a bounded time and prints one table.  Called by `make fuzz`:
#   tests/fuzz/run.sh BUILD_DIR SECONDS TARGET...
# Each target starts from its seeds (tests/fuzz/corpus/TARGET/, read only) and keeps what it finds in
# BUILD_DIR/corpus/TARGET/; crashes go to BUILD_DIR/crashes/TARGET-*, the log to BUILD_DIR/logs/TARGET.log.
# Exits non-zero when a target crashed, leaked, timed out or ran out of memory.
set -u
build=$1
seconds=$2
shift 2
top=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$build/logs" "$build/crashes"
table=$(mktemp)
bad=0
for t in "$@"; do
        mkdir -p "$build/corpus/$t"
        log="$build/logs/$t.log"
        rm -f "$build/crashes/$t"-*
        echo "fuzz $t: ${seconds}s ..."
        "$build/fuzz-$t" -max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
                -max_len=65536 -artifact_prefix="$build/crashes/$t-" \
                "$build/corpus/$t" "$top/tests/fuzz/corpus/$t" >"$log" 2>&1
        rc=$?
        execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        crashes=$(find "$build/crashes" -name "$t-*" | wc -l)
        corpus=$(find "$build/corpus/$t" "$top/tests/fuzz/corpus/$t" -type f | wc -l)
        if [ "$rc" -ne 0 ] && [ "$crashes" -eq 0 ]; then crashes=1; fi
        [ "$crashes" -gt 0 ] && bad=1
        printf '| %-14s | %7s | %12s | %8s | %7s | %7s |\n' "$t" "$seconds" "${execs:-?}" "${rate:-?}" "$corpus" \
                "$crashes" >>"$table"
done
echo
printf '| %-14s | %7s | %12s | %8s | %7s | %7s |\n' target seconds executions "exec/s" corpus crashes
printf '|%s|%s|%s|%s|%s|%s|\n' ---------------- --------- -------------- ---------- --------- ---------
cat "$table"
rm -f "$table"
if [ $bad -ne 0 ]; then
        echo "fuzz: crashes in $build/crashes/ (logs in $build/logs/)"
        exit 1
fi
