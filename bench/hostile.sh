#!/usr/bin/env bash
# The hostile-policy drill (issue 9, point 5), in one command:
#
#     bench/hostile.sh
#
# A credit manager puts live a `review` version that spins forever, recurses without end or
# grows an array and a map without end — but only for a few clients (ids `H-LOOP-*`, `H-REC-*`,
# `H-ALLOC-*`); every other client gets the shipped review. While the usual decision load runs
# on the other clients, those few are sent orders at HOSTILE_RATE a second. The drill proves:
#   - every hostile order is answered 201 `review` with a `POLICY_ERROR` reason naming the
#     `review` stage: the sandbox stopped the script, nothing crashed, nothing was approved;
#   - the decision rate for the rest stays within MAX_DROP % of its rate without the hostile
#     orders (measured in the same run, the hostile version live in both, alternating phases
#     normal, hostile, …: the medians are compared, so one phase disturbed by the machine does
#     not decide);
#   - the server's memory stays bounded: its peak resident size while hostile orders run is
#     within MEM_SLACK_MB of its peak without them, and does not grow by more than that from
#     the first hostile phase to the last;
#   - the audit chain verifies and holds every decision.
# It then sends each kind of hostile order alone, and a normal client's order alone, to show
# what one costs the server (CPU per order).
# Release server on SQLite with its defaults, as bench/decisions.sh runs it; the server and the
# load generator share the machine's cores, so the rates are relative, not absolute.
#
# Settings (environment):
#   DURATION=8           seconds of each phase: a baseline with the shipped policies, then
#                        PAIRS pairs of phases normal / hostile with the hostile version live
#   PAIRS=3              pairs of phases; their medians are compared
#   CLIENTS=200          normal clients, picked round robin by the closed loop
#   CONNECTIONS=32       keep-alive connections of the normal closed loop
#   HOSTILE_RATE=20      hostile orders a second (open loop, spread over the hostile clients)
#   MAX_DROP=20          largest accepted drop of the normal rate, in percent
#   MEM_SLACK_MB=64      largest accepted growth of the peak resident size, in MiB
#   LOADGEN_THREADS=1, BENCH_TMPDIR, KEEP=0, SKIP_BUILD=0   as for bench/decisions.sh
#
# Exit status 0 when every promise above holds; 1 otherwise, after the summary.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${DURATION:-8}
PAIRS=${PAIRS:-3}
CLIENTS=${CLIENTS:-200}
CONNECTIONS=${CONNECTIONS:-32}
HOSTILE_RATE=${HOSTILE_RATE:-20}
MAX_DROP=${MAX_DROP:-20}
MEM_SLACK_MB=${MEM_SLACK_MB:-64}
LOADGEN_THREADS=${LOADGEN_THREADS:-1}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'drill: %s\n' "$*" >&2; exit 1; }

for tool in cargo curl jq; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ENCOURS_' || true)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ $SKIP_BUILD != 1 ]]; then
    say "building the release server and the load generator"
    cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" --bin encours
    cargo build --release --quiet --manifest-path "$ROOT/tools/loadgen/Cargo.toml" \
        --target-dir "$ROOT/tools/loadgen/target"
fi
ENCOURS=$TARGET/release/encours
LOADGEN=$ROOT/tools/loadgen/target/release/loadgen
[[ -x $ENCOURS && -x $LOADGEN ]] || die "binaries missing (run without SKIP_BUILD=1)"

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"

api() { # METHOD PATH [BODY] [TOKEN]: the answer's body; fails on a non-2xx answer
    local args=(-sS --fail-with-body --max-time 120 -X "$1" "$BASE$2" -H "Authorization: Bearer ${4:-$TOKEN}")
    [[ -n ${3:-} ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
    curl "${args[@]}"
}

say "creating the hostile clients"
: >"$WORK/hostile.txt"
for kind in LOOP REC ALLOC; do
    for i in 1 2; do
        id="H-$kind-$i"
        api PUT "/v1/clients/$id" '{"name":"Drill '"$kind $i"' SAS","registration_number":"99900000'"$i"'","country":"FR","sector":"G46.90","currency":"EUR","credit_limit":"5000000.00"}' >/dev/null
        echo "$id" >>"$WORK/hostile.txt"
    done
done

# The resident size of the server, sampled every 200 ms into a file per phase.
sample_rss() { # FILE
    while kill -0 "$SERVER_PID" 2>/dev/null; do
        awk '/^VmRSS/ { print $2 }' "/proc/$SERVER_PID/status" >>"$1" 2>/dev/null || true
        sleep 0.2
    done
}
peak_kib() { sort -n "$1" | tail -n 1; }

decision='{"request_id":"drill-%s-{n}","client_id":"{client}","amount":"1250.00","currency":"EUR","requested_terms_days":30,"channel":"%s","order_ref":"SO-%s-{n}"}'
declare -A CPU
phase() { # NAME HOSTILE(0|1)
    local name=$1 hostile=$2 sampler hostile_pid= t0
    t0=$(server_ticks)
    say "phase $name: decisions, closed loop, $CONNECTIONS connections, ${DURATION} s$([[ $hostile == 1 ]] && echo ", with $HOSTILE_RATE hostile orders/s")"
    : >"$WORK/rss-$name.txt"
    sample_rss "$WORK/rss-$name.txt" &
    sampler=$!
    if [[ $hostile == 1 ]]; then
        # shellcheck disable=SC2059
        "$LOADGEN" --threads 1 --allow-errors "$BASE/v1/credit-decisions" -X POST \
            --body "$(printf "$decision" "$name-h" erp "$name-h")" --clients-file "$WORK/hostile.txt" \
            -c 8 -d "$DURATION" -r "$HOSTILE_RATE" --json "$WORK/$name-hostile.json" >"$WORK/$name-hostile.out" &
        hostile_pid=$!
    fi
    # shellcheck disable=SC2059
    lg "$BASE/v1/credit-decisions" -X POST --body "$(printf "$decision" "$name" checkout "$name")" \
        --clients-file "$WORK/clients.txt" -c "$CONNECTIONS" -d "$DURATION" --json "$WORK/$name.json" >"$WORK/$name.out"
    [[ -z $hostile_pid ]] || wait "$hostile_pid" || true
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    CPU[$name]=$(($(server_ticks) - t0))
    printf '   %s decisions/s for the rest%s, peak RSS %s MiB\n' "$(jq -r '.rate | floor' "$WORK/$name.json")" \
        "$([[ $hostile == 1 ]] && printf ', %s hostile answered' "$(jq -r .answered "$WORK/$name-hostile.json")")" \
        "$(($(peak_kib "$WORK/rss-$name.txt") / 1024))" >&2
}

phase baseline 0

say "putting the hostile review version live (written by one user, activated by another: four-eyes)"
AUTHOR=$(cd "$WORK" && "$ENCOURS" token --sub drill-author --scope all)
CHECKER=$(cd "$WORK" && "$ENCOURS" token --sub drill-checker --scope all)
shipped=$(api GET /v1/policies/review)
hostile_source="// DRILL (bench/hostile.sh): hostile for the H-* clients, the shipped review for the rest.
fn dive(depth) { dive(depth + 1) }

let drill_id = if \"client_id\" in client { client.client_id } else { \"\" };
if drill_id.starts_with(\"H-LOOP\") { let spins = 0; loop { spins += 1; } }
if drill_id.starts_with(\"H-REC\") { dive(0); }
if drill_id.starts_with(\"H-ALLOC\") {
    let heap = [];
    let index = #{};
    loop { heap.push(heap.len()); index[\`k\${heap.len()}\`] = heap.len(); }
}

$(jq -r '.versions | map(select(.version == 1))[0].source' <<<"$shipped")"
body=$(jq -n --arg source "$hostile_source" --argjson tests "$(jq '.versions | map(select(.version == 1))[0].tests' <<<"$shipped")" \
    '{source: $source, description: "drill: loops, recursion and allocation for the H-* clients", tests: $tests}')
version=$(api POST /v1/policies/review/versions "$body" "$AUTHOR" | jq -r .version)
api POST "/v1/policies/review/versions/$version/activate" '{}' "$CHECKER" >/dev/null
echo "   review version $version is live" >&2

for i in $(seq "$PAIRS"); do
    phase "normal-$i" 0
    phase "hostile-$i" 1
done

# What one hostile order costs the server, kind by kind, with nothing else running, next to an
# order of a normal client at the same concurrency (2 orders in flight, so the writer commits
# one or two at a time: dearer than under load, where commits are grouped).
head -n 2 "$WORK/clients.txt" >"$WORK/solo-NORMAL.txt"
for kind in NORMAL LOOP REC ALLOC; do
    say "orders alone: $kind, closed loop, 2 connections, 3 s"
    [[ $kind == NORMAL ]] || grep "^H-$kind-" "$WORK/hostile.txt" >"$WORK/solo-$kind.txt"
    t0=$(server_ticks)
    # shellcheck disable=SC2059
    "$LOADGEN" --threads 1 --allow-errors "$BASE/v1/credit-decisions" -X POST \
        --body "$(printf "$decision" "solo-$kind" erp "solo-$kind")" --clients-file "$WORK/solo-$kind.txt" \
        -c 2 -d 3 --json "$WORK/solo-$kind.json" >"$WORK/solo-$kind.out"
    CPU[solo-$kind]=$(($(server_ticks) - t0))
done

say "checking every hostile decision"
hostile_answered=0
bad_hostile=0
while IFS= read -r id; do
    cursor=
    while :; do
        page=$(api GET "/v1/credit-decisions?client_id=$id&limit=500${cursor:+&cursor=$cursor}")
        n=$(jq '.items | length' <<<"$page")
        hostile_answered=$((hostile_answered + n))
        # Each must be a review with a POLICY_ERROR reason from the review stage, nothing reserved.
        wrong=$(jq '[.items[] | select(.outcome != "review"
            or ([.reasons[] | select(.code == "POLICY_ERROR" and .policy == "review")] | length) == 0)] | length' <<<"$page")
        bad_hostile=$((bad_hostile + wrong))
        cursor=$(jq -r '.next_cursor // empty' <<<"$page")
        [[ -n $cursor ]] || break
    done
done <"$WORK/hostile.txt"
sent=$(jq -s '[.[].statuses["201"] // 0] | add' "$WORK"/hostile-*-hostile.json "$WORK"/solo-{LOOP,REC,ALLOC}.json)
sample=$(api GET "/v1/credit-decisions?client_id=H-LOOP-1&limit=1" | jq -c '.items[0].reasons | map(select(.code == "POLICY_ERROR"))[0].message')
exposure=$(api GET /v1/clients/H-ALLOC-1 | jq -r .exposure.total)

say "verifying the audit chain"
verify=$(api GET /v1/audit/verify)
decided=$(jq -s '[.[].statuses["201"] // 0] | add' "$WORK"/*.json)

# The verdicts.
rate() { jq -r .rate "$WORK/$1.json"; }
median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
each() { for i in $(seq "$PAIRS"); do "$2" "$1-$i"; done; }
normal=$(each normal rate | median)
hostile=$(each hostile rate | median)
drop=$(awk -v n="$normal" -v h="$hostile" 'BEGIN { printf "%.1f", 100 * (n - h) / n }')
peak() { echo $(($(peak_kib "$WORK/rss-$1.txt") / 1024)); }
peak_normal=$(each normal peak | sort -n | tail -n 1)
peak_hostile=$(each hostile peak | sort -n | tail -n 1)
failures=()
awk -v d="$drop" -v m="$MAX_DROP" 'BEGIN { exit !(d <= m) }' ||
    failures+=("the rate for the rest dropped by $drop %, more than $MAX_DROP %")
((peak_hostile <= peak_normal + MEM_SLACK_MB)) ||
    failures+=("peak RSS $peak_hostile MiB with hostile orders, $peak_normal MiB without: more than $MEM_SLACK_MB MiB apart")
(($(peak "hostile-$PAIRS") <= $(peak hostile-1) + MEM_SLACK_MB)) ||
    failures+=("peak RSS grew from $(peak hostile-1) to $(peak "hostile-$PAIRS") MiB from the first hostile phase to the last")
((hostile_answered == sent && sent > 0)) ||
    failures+=("$sent hostile orders answered 201 but $hostile_answered decisions found")
((bad_hostile == 0)) || failures+=("$bad_hostile hostile decisions are not a review with POLICY_ERROR from the review stage")
[[ $exposure == 0.00 ]] || failures+=("a hostile client has exposure $exposure: something was reserved")
[[ $(jq .ok <<<"$verify") == true ]] || failures+=("the audit chain does not verify: $verify")
(($(jq .records <<<"$verify") >= decided + CLIENTS)) ||
    failures+=("$(jq .records <<<"$verify") audit records for $decided decisions and $CLIENTS clients")
for f in "$WORK"/*.json; do
    n=$(jq '.not_2xx + .failed' "$f")
    ((n == 0)) || failures+=("$(basename "$f" .json): $n requests not answered 2xx: $(jq -c '{statuses, errors}' "$f")")
done

HZ=$(getconf CLK_TCK)
commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
cpu_ms() { # PHASE: server CPU per decision answered in that phase, in ms
    local n
    n=$(jq -s '[.[].answered] | add' "$WORK/$1.json" $([[ -f $WORK/$1-hostile.json ]] && echo "$WORK/$1-hostile.json"))
    awk -v t="${CPU[$1]}" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.2f", 1000 * t / hz / n }'
}
row() { printf '%-12s %12s %12s %14s %10s\n' "$1" "$(rate "$1" | xargs printf '%.0f')" "$2" "$(cpu_ms "$1")" "$(peak "$1")"; }
cat <<EOF

Encours hostile-policy drill — $(date -u +%Y-%m-%dT%H:%MZ), commit $commit, load average $LOAD_BEFORE before
$(nproc) cores shared by the release server (SQLite, defaults) and the load generator; $CLIENTS normal
clients on $CONNECTIONS connections (closed loop), 6 hostile clients at $HOSTILE_RATE orders/s (open loop)

phase        rest dec/s    hostile/s  CPU ms/dec   peak RSS MiB
$(row baseline -)
$(for i in $(seq "$PAIRS"); do row "normal-$i" -; row "hostile-$i" "$(jq -r '.rate | floor' "$WORK/hostile-$i-hostile.json")"; done)

rate for the rest     $(printf '%.0f' "$normal")/s without hostile orders, $(printf '%.0f' "$hostile")/s with (medians): drop $drop % (at most $MAX_DROP %)
hostile decisions     $hostile_answered answered, all review with POLICY_ERROR: $([[ $bad_hostile == 0 ]] && echo yes || echo "NO ($bad_hostile wrong)"); nothing reserved
                      e.g. $sample
hostile cost          server CPU per order, alone on 2 connections: loop $(cpu_ms solo-LOOP) ms, recursion $(cpu_ms solo-REC) ms,
                      allocation $(cpu_ms solo-ALLOC) ms; a normal client's order $(cpu_ms solo-NORMAL) ms
hostile latency       p50 $(jq -r .latency_ms.p50 "$WORK/hostile-1-hostile.json") ms, p99 $(jq -r .latency_ms.p99 "$WORK/hostile-1-hostile.json") ms (phase hostile-1)
memory                peak $peak_normal MiB without, $peak_hostile MiB with hostile orders (slack $MEM_SLACK_MB MiB)
audit                 verify $(jq .ok <<<"$verify"), $(jq .records <<<"$verify") records for $decided decisions + $CLIENTS clients
server CPU            $(awk -v t="$(server_ticks)" -v hz="$HZ" 'BEGIN { printf "%.1f s", t / hz }') in all
EOF
if ((${#failures[@]} > 0)); then
    printf '\nFAILED:\n' >&2
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
echo "drill passed"
