#!/bin/sh
# make bench: runs every benchmark in tests/bench/ and prints their tables.
set -eu
build=${1:-build}
cd "$(dirname "$0")/../.."
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME")"
/usr/bin/python3 tests/bench/bench_publish.py "$build"
