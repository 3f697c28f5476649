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
ENCOURS=${CARGO_TARGET_DIR:-$ROOT/target}/release/encours
LOADGEN=$ROOT/tools/loadgen/target/release/loadgen
for f in "$WORK/encours.db" "$WORK/clients.txt" "$ENCOURS" "$LOADGEN"; do
    [[ -e $f ]] || { echo "profile: $f is missing" >&2; exit 1; }
done
command -v perf >/dev/null || { echo "profile: perf is needed (Debian: linux-perf)" >&2; exit 1; }

while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ENCOURS_' || true)
PORT=$((20000 + RANDOM % 40000))
export ENCOURS_DATABASE_URL="sqlite://$WORK/encours.db" ENCOURS_BIND="127.0.0.1:$PORT"
export ENCOURS_LOG=json RUST_LOG=warn
ENCOURS_JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export ENCOURS_JWT_SECRET

(cd "$WORK" && exec "$ENCOURS" serve >"$WORK/profile-server.log" 2>&1) &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break
    sleep 0.1
done
LOADGEN_TOKEN=$(cd "$WORK" && "$ENCOURS" token --sub profile --scope all)
export LOADGEN_TOKEN

tag="profile-$(date +%s)"
perf record -q -F 499 --call-graph dwarf,16384 -p "$SERVER" -o "$WORK/perf.data" \
    -- sleep "$((DURATION - 2))" 2>/dev/null &
PERF=$!
sleep 1
"$LOADGEN" "http://127.0.0.1:$PORT/v1/credit-decisions" -X POST --allow-errors \
    --body '{"request_id":"'"$tag"'-{n}","client_id":"{client}","amount":"1250.00","currency":"EUR","requested_terms_days":30,"channel":"checkout","order_ref":"SO-{n}"}' \
    --clients-file "$WORK/clients.txt" -c "$CONNECTIONS" -d "$DURATION"
wait "$PERF" || true

echo "== samples per thread"
perf report -i "$WORK/perf.data" --no-children --sort comm -q -g none -F overhead,sample,comm 2>/dev/null |
    sort -k2 -n -r | head -6
echo "== decision writer, inclusive"
perf report -i "$WORK/perf.data" --children --comm decision-writer --sort sym -q -g none 2>/dev/null |
    grep -E 'encours::(service|store|audit)|sqlite3_(step|exec)' | head -25 | cut -c1-150
