#!/usr/bin/env bash
# Instructions a decision costs the server, counted rather than timed: on this shared 2-core VM
# the decision rate and the CPU a decision moves by ±10 % between runs of one binary, more than
# most changes worth making; callgrind's counts repeat to within a fraction of a per cent.
#
#     KEEP=1 bench/decisions.sh          # prints "bench: kept /tmp/encours-bench.XXXXXX"
#     bench/decisions-instructions.sh /tmp/encours-bench.XXXXXX
#
# Copies the kept database (every count starts from the same state), starts the release server
# under callgrind with instrumentation off through start-up and a warm-up, turns it on for
# DURATION seconds (default 20) of a closed loop on one connection, so that every decision is
# alone in its writer batch and the count does not depend on how requests happened to batch,
# and prints the user-space instructions per decision: in all, and in the decision writer, the
# draft (client read, policies, audit payload) and the HTTP layer. Kernel work (fsync, the
# network) is not counted. KEEP=1 keeps the callgrind output for callgrind_annotate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KEPT=${1:?usage: bench/decisions-instructions.sh DIRECTORY_KEPT_BY_bench/decisions.sh}
DURATION=${DURATION:-20}
command -v valgrind >/dev/null || { echo "instructions: valgrind is needed (Debian: valgrind)" >&2; exit 1; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/encours-instructions.XXXXXX")
cp "$KEPT"/encours.db* "$KEPT/clients.txt" "$WORK"/
# shellcheck source=kept-server.sh
. "$ROOT/bench/kept-server.sh"

start_server valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out"
cleanup() {
    kill "$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    if [[ ${KEEP:-0} == 1 ]]; then echo "instructions: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
decisions 3 1 >/dev/null
callgrind_control -i on "$SERVER" >/dev/null 2>&1
decisions "$DURATION" 1 --json "$WORK/load.json" >/dev/null
callgrind_control -i off "$SERVER" >/dev/null 2>&1
callgrind_control -d "$SERVER" >/dev/null 2>&1

answered=$(sed -n 's/.*"ok_2xx": *\([0-9]*\).*/\1/p' "$WORK/load.json" | head -1)
[[ ${answered:-0} -gt 0 ]] || { echo "instructions: no decision answered 2xx" >&2; exit 1; }
out=$WORK/callgrind.out.1
annotated=$(callgrind_annotate --inclusive=yes "$out" 2>/dev/null)
# The first of the functions named that the build did not inline.
inclusive() {
    local pat
    for pat in "$@"; do
        awk -v pat="$pat" -v n="$answered" 'index($0, pat) { gsub(",", "", $1); print int($1 / n); found = 1; exit }
            END { exit !found }' <<<"$annotated" && return
    done
    echo "?"
}
total=$(awk -v n="$answered" '/PROGRAM TOTALS/ { gsub(",", "", $1); print int($1 / n); exit }' <<<"$annotated")
echo "decisions counted        $answered (one connection, ${DURATION}s under callgrind)"
echo "instructions a decision  $total (user space, all threads)"
echo "  decision writer        $(inclusive 'encours::service::committer::run' 'encours::service::committer::commit_batch' 'encours::service::committer::write_batch')"
echo "  draft                  $(inclusive 'encours::service::decisions::draft')"
echo "  HTTP dispatcher        $(inclusive 'actix_http::h1::dispatcher::Dispatcher')"
