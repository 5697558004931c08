#!/bin/sh
# make bench: runs every benchmark in tests/bench/ and prints their tables.
#
# The figures depend on the filesystem more than on prakat: every announcement is a handful of
# file creations and renames.  A server keeps /var on ext4 with a journal; some build machines
# mount / without one and with online discard, where each file creation costs many times more.
# So, when run as root, the benchmark runs on a fresh journaled ext4 (a loop-mounted 4 GiB sparse
# image under /var/tmp, removed afterwards); otherwise, or with BENCH_DIR set, where it is told.
set -eu
build=${1:-build}
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME")"

mnt=""
cleanup() {
        if [ -n "$mnt" ]; then
                umount "$mnt" 2>/dev/null || true
                rmdir "$mnt" 2>/dev/null || true
                rm -f /var/tmp/prakat-bench.img
        fi
}
trap cleanup EXIT INT TERM
if [ -z "${BENCH_DIR:-}" ] && [ "$(id -u)" -eq 0 ] && command -v mkfs.ext4 >/dev/null; then
        img=/var/tmp/prakat-bench.img
        rm -f "$img"
        if truncate -s 4G "$img" && mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img" && mnt=$(mktemp -d /var/tmp/prakat-bench-mnt.XXXXXX) &&
           mount -o loop "$img" "$mnt" 2>/dev/null; then
                export BENCH_DIR="$mnt"
        else
                [ -n "$mnt" ] && rmdir "$mnt" 2>/dev/null
                mnt=""
                rm -f "$img"
        fi
fi
where=${BENCH_DIR:-/tmp}
echo "filesystem: $(findmnt -n -o FSTYPE,OPTIONS -T "$where" | cut -c1-100) ($where)"
summary=$(mktemp /tmp/prakat-bench-summary.XXXXXX)
export BENCH_SUMMARY="$summary"
/usr/bin/python3 tests/bench/bench_publish.py "$build"
echo
echo "The floor: only the file operations DESIGN requires per announcement, no prakat code (tests/bench/floor.c)"
floor=$(mktemp -d "$where/prakat-floor.XXXXXX")
"$build/bench-floor" "$floor" "${BENCH_ARCHIVE:-10000}" "${BENCH_BURST:-1000}"
rm -rf "$floor"
echo
/usr/bin/python3 tests/bench/bench_channels.py "$build"
/usr/bin/python3 tests/bench/bench_towers.py "$build"
/usr/bin/python3 tests/bench/summary.py "$summary" \
        "$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(findmnt -n -o FSTYPE -T "$where")"
rm -f "$summary"
