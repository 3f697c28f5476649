#!/usr/bin/env bash
# Where a decision's time goes: starts the release server on a directory that
# `KEEP=1 bench/decisions.sh` left (its database and clients.txt), records a call-graph profile
# of the server (`perf record --call-graph dwarf`) during a closed-loop decision run, and prints
# the samples per thread and the heaviest functions of the decision writer.
#
#     KEEP=1 bench/decisions.sh          # prints "bench: kept /tmp/encours-bench.XXXXXX"
#     bench/profile-decisions.sh /tmp/encours-bench.XXXXXX
#
# Settings (environment): DURATION=10 (seconds of load), CONNECTIONS=64. The profile stays in
# the directory as perf.data for `perf report -i`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:?usage: bench/profile-decisions.sh DIRECTORY_KEPT_BY_bench/decisions.sh}
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
# shellcheck source=kept-server.sh
. "$ROOT/bench/kept-server.sh"
command -v perf >/dev/null || { echo "profile: perf is needed (Debian: linux-perf)" >&2; exit 1; }

start_server
perf record -q -F 499 --call-graph dwarf,16384 -p "$SERVER" -o "$WORK/perf.data" \
    -- sleep "$((DURATION - 2))" 2>/dev/null &
PERF=$!
sleep 1
decisions "$DURATION" "$CONNECTIONS"
wait "$PERF" || true

echo "== samples per thread"
perf report -i "$WORK/perf.data" --no-children --sort comm -q -g none -F overhead,sample,comm 2>/dev/null |
    sort -k2 -n -r | head -6
echo "== decision writer, inclusive"
perf report -i "$WORK/perf.data" --children --comm decision-writer --sort sym -q -g none 2>/dev/null |
    grep -E 'encours::(service|store|audit)|sqlite3_(step|exec)' | head -25 | cut -c1-150
