#!/usr/bin/env bash
# The client-events load benchmark, in one command:
#
#     bench/events.sh
#
# Builds the release server, tools/loadgen and its eventgen, starts `encours serve` on a fresh
# SQLite database with its default settings (WAL, synchronous=FULL), creates realistic clients,
# writes realistic event batches (eventgen: per client, 90 days of invoices, payments on time,
# late or in parts, credit notes, dunning letters, insurance cover, external scores, sales
# alerts and a few legal proceedings, merged in date order as an ERP sends them and cut into
# batches of BATCH events), then measures in one run:
#   1. GET /healthz, closed loop: the ceiling of the HTTP stack on this machine;
#   2. POST /v1/events, closed loop: the maximum rate of events logged, projected, and their
#      clients re-scored and reviewed (limit reviews are audit records);
# and checks that every event of every batch answered 200 was accepted, that the log holds
# exactly the events accepted, and that the audit chain verifies. Every event is durable when
# answered. The server and the load generator share the machine's cores.
#
# Settings (environment):
#   DURATION=20          seconds of the events phase
#   HEALTHZ_DURATION=10  seconds of the healthz phase
#   CLIENTS=1000         clients created before the run
#   BATCH=500            events per POST /v1/events
#   BATCHES=200          distinct batches generated (BATCH x BATCHES events); the run goes
#                        through them again as needed, with fresh event and invoice ids
#   CONNECTIONS=8        keep-alive connections of the events phase
#   HEALTHZ_CONNECTIONS=64
#   LOADGEN_THREADS=1    threads of the load generator (0: one per core)
#   BENCH_TMPDIR=$TMPDIR where the temporary database directory goes (must be a real disk)
#   KEEP=0               1 keeps the temporary directory (database, server log, JSON results)
#   SKIP_BUILD=0         1 uses the binaries already built
#   SERVER_SETTING=      one ENCOURS_NAME=value for the server, to compare with the defaults
#   REBUILD_CHECK=0      1 also replays every client's log at the end (`encours clients
#                        rebuild --check`) and fails on any difference with the projection
#   PERF=0               1 records a CPU profile of the server during the events phase
#                        (perf record -a -g into the temporary directory; implies KEEP=1)
#
# Exit status 0 when every request was answered 2xx, every event accepted and the checks pass,
# whether or not the goals are met (the summary says); 1 otherwise.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-20}
HEALTHZ_DURATION=${HEALTHZ_DURATION:-10}
CLIENTS=${CLIENTS:-1000}
BATCH=${BATCH:-500}
BATCHES=${BATCHES:-200}
CONNECTIONS=${CONNECTIONS:-8}
HEALTHZ_CONNECTIONS=${HEALTHZ_CONNECTIONS:-64}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}
REBUILD_CHECK=${REBUILD_CHECK:-0}
PERF=${PERF:-0}
[[ $PERF == 1 ]] && KEEP=1

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for tool in cargo curl jq sqlite3; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
if [[ $PERF == 1 ]]; then command -v perf >/dev/null || die "perf is needed for PERF=1"; fi

# The server's defaults, not whatever this shell exports: no ENCOURS_* setting leaks in.
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ENCOURS_' || true)

# The server in the crate's target directory (CARGO_TARGET_DIR when set), the load generator
# in its own (a separate crate).
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
LOADGEN_TARGET=$ROOT/tools/loadgen/target
if [[ $SKIP_BUILD != 1 ]]; then
    say "building the release server and the load generator"
    cargo build --release --quiet --bin encours --manifest-path "$ROOT/Cargo.toml"
    cargo build --release --quiet --manifest-path "$ROOT/tools/loadgen/Cargo.toml" \
        --target-dir "$LOADGEN_TARGET"
fi
ENCOURS=$TARGET/release/encours
LOADGEN=$LOADGEN_TARGET/release/loadgen
EVENTGEN=$LOADGEN_TARGET/release/eventgen
[[ -x $ENCOURS && -x $LOADGEN && -x $EVENTGEN ]] || die "binaries missing (run without SKIP_BUILD=1)"

# The server, its clients and the helpers every load benchmark shares.
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
declare -A CPU WRITTEN
PERF_PID=

say "writing $BATCHES batches of $BATCH events for $CLIENTS clients"
"$EVENTGEN" --clients-file "$WORK/clients.txt" --batches "$BATCHES" --batch-size "$BATCH" \
    --today "$(date -u +%F)" >"$WORK/batches.ndjson"
mix=$(jq -r '.events[].type' "$WORK/batches.ndjson" | sort | uniq -c | sort -rn |
    awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $1, $2 }')
distinct() { sed -n "${1}p" "$WORK/batches.ndjson" | jq '[.events[].client_id] | unique | length'; }
first_clients=$(distinct 1)
mid_clients=$(distinct $(((BATCHES + 1) / 2)))

say "1/2 GET /healthz, closed loop, $HEALTHZ_CONNECTIONS connections, $HEALTHZ_DURATION s"
t0=$(server_ticks)
lg "$BASE/healthz" -c "$HEALTHZ_CONNECTIONS" -d "$HEALTHZ_DURATION" --json "$WORK/healthz.json"
CPU[healthz]=$(($(server_ticks) - t0))

say "2/2 POST /v1/events, closed loop, $CONNECTIONS connections, $DURATION s, $BATCH events a batch"
LOAD_EVENTS=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $PERF == 1 ]]; then
    # System-wide (-a): the server's blocking threads are spawned during the run, which -p misses.
    perf record -a -g -F 499 -o "$WORK/perf.data" -- sleep "$DURATION" \
        >"$WORK/perf.log" 2>&1 &
    PERF_PID=$!
fi
# The event writer's own counters (transactions, batches, busy seconds) around the phase.
writer() { curl -sf "$BASE/metrics" | awk -v m="encours_event_writer_$1_total" '$1 == m { print $2 }'; }
writer_before=("$(writer transactions)" "$(writer batches)" "$(writer busy_seconds)")
t0=$(server_ticks) w0=$(server_written)
lg "$BASE/v1/events" -X POST --bodies-file "$WORK/batches.ndjson" \
    --sum-field accepted --sum-field duplicates --sum-field rejected \
    -c "$CONNECTIONS" -d "$DURATION" --json "$WORK/events.json"
CPU[events]=$(($(server_ticks) - t0)) WRITTEN[events]=$(($(server_written) - w0))
writer_after=("$(writer transactions)" "$(writer batches)" "$(writer busy_seconds)")
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ -n $PERF_PID ]]; then wait "$PERF_PID" || true; fi

say "checking what was acknowledged against the database"
j() { jq -r "$1" "$WORK/$2.json"; }
answered=$(j '.statuses["200"] // 0' events)
accepted=$(j '.sums.accepted // 0' events)
duplicates=$(j '.sums.duplicates // 0' events)
rejected=$(j '.sums.rejected // 0' events)
[[ $(j .sums_unparsed events) == 0 ]] || die "some answers 200 had no counts"
((accepted == answered * BATCH && duplicates == 0 && rejected == 0)) ||
    die "$answered batches answered 200: $accepted events accepted, $duplicates duplicates, $rejected rejected; expected $((answered * BATCH)) accepted"
curl -sf --max-time 600 "$BASE/v1/audit/verify" -H "Authorization: Bearer $TOKEN" >"$WORK/verify.json" ||
    die "GET /v1/audit/verify failed"
[[ $(jq .ok "$WORK/verify.json") == true ]] || die "the audit chain does not verify: $(cat "$WORK/verify.json")"
records=$(jq .records "$WORK/verify.json")
db() { sqlite3 "file:$WORK/encours.db?mode=ro" "$1"; }
logged=$(db 'SELECT count(*) FROM client_events')
((logged == accepted)) || die "$logged events in the log for $accepted accepted"
reviews=$(db "SELECT count(*) FROM audit_records WHERE kind = 'client.limit_review'")
scored=$(db 'SELECT count(*) FROM clients WHERE risk_score IS NOT NULL')
invoices=$(db 'SELECT count(*) FROM invoices')
db_size=$(du -ch "$WORK"/encours.db* | tail -n 1 | cut -f1)
rebuild="not run (REBUILD_CHECK=1 runs it)"
if [[ $REBUILD_CHECK == 1 ]]; then
    say "replaying every client's log (encours clients rebuild --check)"
    (cd "$WORK" && "$ENCOURS" clients rebuild --check >"$WORK/rebuild.txt" 2>&1) ||
        die "the projection differs from the replay: $(tail -n 5 "$WORK/rebuild.txt")"
    rebuild="exact, every client"
fi

# The summary.
num() { LC_ALL=C printf '%.0f' "$1" | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'; }
healthz_rate=$(j .rate healthz)
event_rate=$(awk -v b="$(j .rate events)" -v n="$BATCH" 'BEGIN { print b * n }')
verdict() { # value goal floor
    awk -v v="$1" -v g="$2" -v f="$3" 'BEGIN { print (v >= g ? "goal met" : v >= f ? "floor met, goal missed" : "BELOW FLOOR") }'
}
HZ=$(getconf CLK_TCK)
row() { # label file units-per-answer
    printf '%-38s %9s %9s %8.2f %8.2f %8.2f %9.4f\n' "$1" "$(j .answered "$2")" "$(num "$(j .rate "$2")")" \
        "$(j .latency_ms.p50 "$2")" "$(j .latency_ms.p99 "$2")" "$(j .latency_ms.max "$2")" \
        "$(awk -v t="${CPU[$2]}" -v hz="$HZ" -v n="$(j .answered "$2")" -v per="$3" 'BEGIN { print 1000 * t / hz / n / per }')"
}
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null) ]] && commit="$commit+changes"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
cat <<EOF

Encours client-events benchmark — $(date -u +%Y-%m-%dT%H:%MZ), commit $commit
machine: $(nproc) cores ($cpu), shared by the server (ENCOURS_WORKERS default: one per core but one)
         and the load generator ($LOADGEN_THREADS thread(s)); loopback HTTP/1.1 keep-alive
server:  release build, SQLite on $FSTYPE (WAL, synchronous=FULL, defaults), JSON logs at warn
load:    average $LOAD_BEFORE before the run, $LOAD_EVENTS before the events phase, $LOAD_AFTER after
data:    $CLIENTS clients; $BATCHES distinct batches of $BATCH events ($first_clients clients in the first,
         $mid_clients in the middle one); mix: $mix

phase                                   answered    rate/s   p50 ms   p99 ms   max ms  srv CPU ms
$(row "healthz, closed loop, $HEALTHZ_CONNECTIONS conn, ${HEALTHZ_DURATION}s" healthz 1) a request
$(row "events, closed loop, $CONNECTIONS conn, ${DURATION}s" events "$BATCH") an event
(events phase: answered, rate and latency are per batch of $BATCH events)

events/s                 $(num "$event_rate")   goal >= 50,000, floor 20,000: $(verdict "$event_rate" 50000 20000)
healthz/s (HTTP ceiling) $(num "$healthz_rate")
event writer             $(awk -v t0="${writer_before[0]}" -v t1="${writer_after[0]}" -v b0="${writer_before[1]}" -v b1="${writer_after[1]}" \
    -v s0="${writer_before[2]}" -v s1="${writer_after[2]}" -v d="$DURATION" \
    'BEGIN { t = t1 - t0; printf "%d transactions, %.1f batches a transaction, busy %.0f %% of the phase", t, (t > 0 ? (b1 - b0) / t : 0), 100 * (s1 - s0) / d }')
disk written an event    $(awk -v b="${WRITTEN[events]}" -v n="$accepted" 'BEGIN { printf "%.2f KB", (n > 0 ? b / 1024 / n : 0) }') (the server's write_bytes: log, database, checkpoints)
checks                   $accepted events accepted = $answered batches x $BATCH = $logged in the log;
                         $invoices invoices, $scored clients scored, $reviews limit reviews recorded;
                         audit verify ok ($records records); replay: $rebuild
database                 $db_size (database and WAL)
EOF
if [[ $PERF == 1 ]]; then
    echo "profile                  perf report -i $WORK/perf.data --no-children --comm encours"
fi
bad=0
for phase in healthz events; do
    n=$(j '.not_2xx + .failed' "$phase")
    if ((n > 0)); then
        echo "ERRORS in phase $phase: $n requests not answered 2xx: $(jq -c '{statuses, errors}' "$WORK/$phase.json")"
        bad=$((bad + n))
    fi
done
((bad == 0)) || die "$bad requests were not answered 2xx (see the server log)"
