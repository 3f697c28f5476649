#!/usr/bin/env bash
# The credit-decisions load benchmark, in one command:
#
#     bench/decisions.sh
#
# Builds the release server and tools/loadgen, starts `encours serve` on a fresh SQLite database
# with its default settings (WAL, synchronous=FULL), creates realistic clients, then measures in
# one run:
#   1. GET /healthz, closed loop: the ceiling of the HTTP stack on this machine;
#   2. POST /v1/credit-decisions, closed loop: the maximum decision rate;
#   3. POST /v1/credit-decisions, open loop at $RATE/s: the latency at that rate, measured from
#      each request's scheduled time (no coordinated omission);
# and checks that the audit chain verifies and holds at least one record per decision answered.
# Every decision is the real one: durable, reserved and audited. The server and the load
# generator share the machine's cores.
#
# Settings (environment):
#   DURATION=20          seconds of each decisions phase
#   HEALTHZ_DURATION=10  seconds of the healthz phase
#   CLIENTS=1000         clients created before the run, picked round robin
#   CONNECTIONS=64       keep-alive connections of the closed-loop phases
#   RATE=2000            decisions per second of the open-loop phase
#   RATE_CONNECTIONS=64  connections of the open-loop phase
#   LOADGEN_THREADS=1    threads of the load generator (0: one per core)
#   BENCH_TMPDIR=$TMPDIR where the temporary database directory goes (must be a real disk)
#   KEEP=0               1 keeps the temporary directory (database, server log, JSON results)
#   SKIP_BUILD=0         1 uses the binaries already built
#   SERVER_SETTING=      one ENCOURS_NAME=value for the server, to compare with the defaults
#
# Exit status 0 when every request was answered 2xx and the audit checks pass, whether or not
# the goals are met (the summary says); 1 otherwise, with the summary printed first when the
# run got that far. A server that cannot keep up with RATE makes phase 3 last until its queue
# has drained (DURATION x RATE requests in all).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-20}
HEALTHZ_DURATION=${HEALTHZ_DURATION:-10}
CLIENTS=${CLIENTS:-1000}
CONNECTIONS=${CONNECTIONS:-64}
RATE=${RATE:-2000}
RATE_CONNECTIONS=${RATE_CONNECTIONS:-64}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for tool in cargo curl jq; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done

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
[[ -x $ENCOURS && -x $LOADGEN ]] || die "binaries missing (run without SKIP_BUILD=1)"

# The server, its clients and the helpers every load benchmark shares.
# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
declare -A CPU WRITTEN
decision='{"request_id":"bench-%s-{n}","client_id":"{client}","amount":"1250.00","currency":"EUR","requested_terms_days":30,"channel":"checkout","order_ref":"SO-%s-{n}"}'

say "1/3 GET /healthz, closed loop, $CONNECTIONS connections, $HEALTHZ_DURATION s"
t0=$(server_ticks)
lg "$BASE/healthz" -c "$CONNECTIONS" -d "$HEALTHZ_DURATION" --json "$WORK/healthz.json"
CPU[healthz]=$(($(server_ticks) - t0))

say "2/3 POST /v1/credit-decisions, closed loop, $CONNECTIONS connections, $DURATION s"
# shellcheck disable=SC2059
t0=$(server_ticks) w0=$(server_written)
lg "$BASE/v1/credit-decisions" -X POST --body "$(printf "$decision" max max)" \
    --clients-file "$WORK/clients.txt" -c "$CONNECTIONS" -d "$DURATION" --json "$WORK/max.json"
CPU[max]=$(($(server_ticks) - t0)) WRITTEN[max]=$(($(server_written) - w0))

say "3/3 POST /v1/credit-decisions, open loop at $RATE/s, $RATE_CONNECTIONS connections, $DURATION s"
# shellcheck disable=SC2059
t0=$(server_ticks)
lg "$BASE/v1/credit-decisions" -X POST --body "$(printf "$decision" rate rate)" \
    --clients-file "$WORK/clients.txt" -c "$RATE_CONNECTIONS" -d "$DURATION" -r "$RATE" \
    --json "$WORK/rate.json"
CPU[rate]=$(($(server_ticks) - t0))

say "verifying the audit chain"
curl -sf --max-time 600 "$BASE/v1/audit/verify" -H "Authorization: Bearer $TOKEN" >"$WORK/verify.json" ||
    die "GET /v1/audit/verify failed"
decided=$(jq -s '[.[].statuses["201"] // 0] | add' "$WORK/max.json" "$WORK/rate.json")
records=$(jq .records "$WORK/verify.json")
[[ $(jq .ok "$WORK/verify.json") == true ]] || die "the audit chain does not verify: $(cat "$WORK/verify.json")"
((records >= decided + CLIENTS)) ||
    die "$records audit records for $decided decisions and $CLIENTS client creations"
# A second look, straight in the database when the sqlite3 shell is here: one row per decision.
rows="?"
if command -v sqlite3 >/dev/null; then
    rows=$(sqlite3 "file:$WORK/encours.db?mode=ro" 'SELECT count(*) FROM decisions')
    ((rows >= decided)) || die "$rows decision rows for $decided decisions answered 201"
fi

# The summary.
j() { jq -r "$1" "$WORK/$2.json"; }
num() { LC_ALL=C printf '%.0f' "$1" | sed -e ':a' -e 's/\B[0-9]\{3\}\>/,&/' -e 'ta'; }
healthz_rate=$(j .rate healthz)
max_rate=$(j .rate max)
p50=$(j .latency_ms.p50 rate)
p99=$(j .latency_ms.p99 rate)
verdict() { # value goal floor higher|lower
    if [[ $4 == higher ]]; then
        awk -v v="$1" -v g="$2" -v f="$3" 'BEGIN { print (v >= g ? "goal met" : v >= f ? "floor met, goal missed" : "BELOW FLOOR") }'
    else
        awk -v v="$1" -v g="$2" -v f="$3" 'BEGIN { print (v <= g ? "goal met" : v <= f ? "floor met, goal missed" : "ABOVE FLOOR") }'
    fi
}
HZ=$(getconf CLK_TCK)
row() { # label file
    printf '%-44s %10s %10s %9.2f %9.2f %9.2f %9.2f %9.3f\n' "$1" "$(j .answered "$2")" "$(num "$(j .rate "$2")")" \
        "$(j .latency_ms.p50 "$2")" "$(j .latency_ms.p99 "$2")" "$(j '.latency_ms["p99.9"]' "$2")" "$(j .latency_ms.max "$2")" \
        "$(awk -v t="${CPU[$2]}" -v hz="$HZ" -v n="$(j .answered "$2")" 'BEGIN { print 1000 * t / hz / n }')"
}
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -n $(git -C "$ROOT" status --porcelain -- src migrations Cargo.toml Cargo.lock 2>/dev/null) ]] && commit="$commit+changes"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
cat <<EOF

Encours decisions benchmark — $(date -u +%Y-%m-%dT%H:%MZ), commit $commit
machine: $(nproc) cores ($cpu), shared by the server (ENCOURS_WORKERS default: one per core but one)
         and the load generator ($LOADGEN_THREADS thread(s)); loopback HTTP/1.1 keep-alive
server:  release build, SQLite on $FSTYPE (WAL, synchronous=FULL, defaults), JSON logs at warn
load:    average $LOAD_BEFORE before the run (other processes; ~0 for clean figures)
data:    $CLIENTS clients; every decision durable, reserved and audited

phase                                          answered     rate/s   p50 ms    p99 ms  p99.9 ms    max ms  srv CPU ms/req
$(row "healthz, closed loop, $CONNECTIONS conn, ${HEALTHZ_DURATION}s" healthz)
$(row "decisions, closed loop, $CONNECTIONS conn, ${DURATION}s" max)
$(row "decisions, open loop at $RATE/s, $RATE_CONNECTIONS conn, ${DURATION}s" rate)
(open loop latency from each request's scheduled time; service time p50 $(j .service_ms.p50 rate) ms, p99 $(j .service_ms.p99 rate) ms)

decisions/s                   $(num "$max_rate")   goal >= 10,000, floor 5,000: $(verdict "$max_rate" 10000 5000 higher)
healthz/s (HTTP ceiling)      $(num "$healthz_rate")
decisions/healthz             $(awk -v d="$max_rate" -v h="$healthz_rate" 'BEGIN { printf "%.1f%%", 100 * d / h }')
p50 at $RATE/s              $p50 ms
p99 at $RATE/s              $p99 ms   goal <= 10 ms, floor 20 ms at 2,000/s: $([[ $RATE == 2000 ]] && verdict "$p99" 10 20 lower || echo "not judged at $RATE/s")
disk written a decision       $(awk -v b="${WRITTEN[max]}" -v n="$(j .answered max)" 'BEGIN { printf "%.1f KB", (n > 0 ? b / 1024 / n : 0) }') in the closed loop (the server's write_bytes: log, database, checkpoints)
audit                         verify ok, $records records >= $decided decisions answered 201 + $CLIENTS clients; $rows decision rows
EOF
if [[ $(j .saturated rate) == true ]]; then
    echo "note: the server did not keep up with $RATE/s: the open-loop latency includes the queue"
fi
bad=0
for phase in healthz max rate; do
    n=$(j '.not_2xx + .failed' "$phase")
    if ((n > 0)); then
        echo "ERRORS in phase $phase: $n requests not answered 2xx: $(jq -c '{statuses, errors}' "$WORK/$phase.json")"
        bad=$((bad + n))
    fi
done
((bad == 0)) || die "$bad requests were not answered 2xx (see the server log)"
