#!/usr/bin/env bash
# Instructions per event, independent of the machine's load: ingests EVENTS events of the
# events benchmark's batches with `encours events import` (the same service path as
# POST /v1/events, minus HTTP) under callgrind, on a copy of the database a kept run left, and
# prints the total, the instructions per event and the heaviest parts.
#
#     KEEP=1 DURATION=1 HEALTHZ_DURATION=1 bench/events.sh   # prints "bench: kept /tmp/encours-bench.XXXXXX"
#     bench/events-instructions.sh /tmp/encours-bench.XXXXXX
#
# Settings (environment): EVENTS=10000 (from the batches after FROM_BATCH=100, whose ids the
# kept run did not use). Needs valgrind. The profile stays in the directory as events.cg.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:?usage: bench/events-instructions.sh DIRECTORY_KEPT_BY_bench/events.sh}
EVENTS=${EVENTS:-10000}
FROM_BATCH=${FROM_BATCH:-100}
ENCOURS=${CARGO_TARGET_DIR:-$ROOT/target}/release/encours
for f in "$WORK/encours.db" "$WORK/batches.ndjson" "$ENCOURS"; do
    [[ -e $f ]] || { echo "instructions: $f is missing" >&2; exit 1; }
done
for tool in valgrind callgrind_annotate jq sqlite3; do
    command -v "$tool" >/dev/null || { echo "instructions: $tool is needed" >&2; exit 1; }
done
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ENCOURS_' || true)

# The events as an ERP's NDJSON file, with ids of a round the load generator never sent.
sed -n "$FROM_BATCH,\$p" "$WORK/batches.ndjson" | sed 's/{round}/instr/g' | jq -c '.events[]' |
    awk -v n="$EVENTS" 'NR <= n' >"$WORK/instr.ndjson"
n=$(wc -l <"$WORK/instr.ndjson")
sqlite3 "$WORK/encours.db" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
cp "$WORK/encours.db" "$WORK/instr.db"
rm -f "$WORK/instr.db-wal" "$WORK/instr.db-shm"

ENCOURS_DATABASE_URL="sqlite://$WORK/instr.db" valgrind --tool=callgrind \
    --callgrind-out-file="$WORK/events.cg" "$ENCOURS" events import "$WORK/instr.ndjson" \
    >"$WORK/instr.log" 2>&1
total=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$WORK/instr.log")
echo "commit $(git -C "$ROOT" rev-parse --short HEAD): $n events, $total instructions (start-up included)," \
    "$((total / n)) an event"
callgrind_annotate --inclusive=yes "$WORK/events.cg" 2>/dev/null |
    grep -E 'encours::(service|store|policy|audit)::[a-z_:]+ \[' | head -n 25 | cut -c1-150
