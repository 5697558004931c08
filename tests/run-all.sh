#!/bin/sh
# Runs every test against one or more build directories and ends with "N passed, N failed".
#   tests/run-all.sh build build-asan      unit + integration tests on each build
#   tests/run-all.sh --unit-only build
#   tests/run-all.sh valgrind:build        the integration suites in $PRAKAT_VALGRIND_TESTS (default below)
#                                          on build/ with prakatd under valgrind memcheck (harness.py)
# Unit tests are cmocka programs (build/tests/test-*); integration tests are tests/integration/test_*.py
# and the fault suites tests/fault/test_*.py (crash loop, outages, disk full),
# which print "PASS: name" or "FAIL: name" per case.
set -u
unit_only=0
if [ "${1:-}" = "--unit-only" ]; then unit_only=1; shift; fi
[ $# -ge 1 ] || set -- build
top=$(cd "$(dirname "$0")/.." && pwd)
out="$top/tests/out"
# About 4 minutes under valgrind; test_crash, test_upload, the tower and fault suites are left out (their
# timing is too tight for it).
vg_tests=${PRAKAT_VALGRIND_TESTS:-test_intake test_bad_input test_site test_daemon test_schedule test_approval test_facebook test_line test_receipt test_preview test_report test_wordpress test_control_group}
mkdir -p "$out"
passed=0
failed=0
failures=""

count_cmocka() { # log file -> adds to passed/failed
        p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)
        f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$1" | tail -n 1)
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0}))
}

run_suite() { # BUILD VALGRIND TAG FILE: runs one integration suite into its log, its exit status beside it
        log="$out/$(echo "$3/$(basename "$4" .py)" | tr / _).log"
        PRAKAT_VALGRIND=$2 PRAKAT_BUILD="$1" timeout 900 /usr/bin/python3 "$4" >"$log" 2>&1
        echo $? >"$log.rc"
}

for build in "$@"; do
        vg=0
        case "$build" in valgrind:*) vg=1; build=${build#valgrind:} ;; esac
        case "$build" in /*) ;; *) build="$top/$build" ;; esac
        tag=$(basename "$build")
        [ $vg -eq 1 ] && tag=valgrind
        for t in "$build"/tests/test-*; do
                [ -x "$t" ] && [ $vg -eq 0 ] || continue
                name="$tag/$(basename "$t")"
                log="$out/$(echo "$name" | tr / _).log"
                if "$t" >"$log" 2>&1; then :; else
                        grep -q '^\[  FAILED  \]' "$log" || { failed=$((failed + 1)); failures="$failures $name(crashed)"; }
                fi
                count_cmocka "$log"
                grep -q '^\[  FAILED  \]' "$log" && failures="$failures $name"
                echo "unit $name: $(grep -E '^\[  (PASSED|FAILED)  \]' "$log" | tr '\n' ' ')"
        done
        [ $unit_only -eq 1 ] && continue
        # Two lanes side by side (most suites mostly wait on sleeps and sockets): the timing-sensitive
        # ones (towers, crashes, outages, a full disk) one after another in one lane, the rest in the
        # other.  test_install installs packages into this machine (users, /var/lib/prakat): it runs
        # alone, after both lanes.  PRAKAT_TEST_LANES=1 runs everything in one lane.
        suites=""
        lane_a=""
        lane_b=""
        alone=""
        for t in "$top"/tests/integration/test_*.py "$top"/tests/fault/test_*.py; do
                [ -f "$t" ] || continue
                case " $vg_tests " in *" $(basename "$t" .py) "*) ;; *) [ $vg -eq 0 ] || continue ;; esac
                suites="$suites $t"
                case "$(basename "$t" .py)" in
                test_tower_* | test_crash* | test_outage | test_disk_full) lane_a="$lane_a $t" ;;
                test_install) alone="$alone $t" ;;
                *) lane_b="$lane_b $t" ;;
                esac
        done
        if [ "${PRAKAT_TEST_LANES:-2}" -ge 2 ]; then
                (for t in $lane_a; do run_suite "$build" $vg "$tag" "$t"; done) &
                lane=$!
                for t in $lane_b; do run_suite "$build" $vg "$tag" "$t"; done
                wait $lane
                for t in $alone; do run_suite "$build" $vg "$tag" "$t"; done
        else
                for t in $suites; do run_suite "$build" $vg "$tag" "$t"; done
        fi
        for t in $suites; do
                name="$tag/$(basename "$t" .py)"
                log="$out/$(echo "$name" | tr / _).log"
                rc=$(cat "$log.rc" 2>/dev/null || echo 1)
                p=$(grep -c '^PASS: ' "$log")
                f=$(grep -c '^FAIL: ' "$log")
                if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; echo "FAIL: $name exited with $rc" >>"$log"; fi
                passed=$((passed + p))
                failed=$((failed + f))
                [ "$f" -gt 0 ] && failures="$failures $name"
                echo "integration $name: $p passed, $f failed"
        done
done
if [ -n "$failures" ]; then
        echo "Failures in:$failures (logs in tests/out/)"
        for name in $failures; do
                log="$out/$(echo "${name%(crashed)}" | tr / _).log"
                [ -f "$log" ] && { echo "---- $log"; grep -E '^(FAIL|\[  FAILED|\[  ERROR|.*[Ee]rror)' "$log" | head -n 40; }
        done
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
