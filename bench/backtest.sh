#!/usr/bin/env bash
# The backtest benchmark, in one command:
#
#     bench/backtest.sh
#
# Builds the release server, starts it on a fresh SQLite database (bench/common.sh), gives a
# varied book of clients (payment histories, insurance, scores, a few in receivership), makes
# SEED real decisions through the API (one in eight for a new prospect), submits a deposit
# draft asking prospects 25 % instead of 20 %, stops the server, then copies the decision
# records with new sequence numbers until the log holds DECISIONS of them (the copies do not
# chain: the backtest does not verify the chain, and the payloads are real ones), and times
# `encours policies backtest deposit DRAFT --limit DECISIONS` RUNS times.
#
# Settings (environment):
#   DECISIONS=100000  decision records backtested
#   SEED=400          real decisions made through the API
#   CLIENTS=60        clients of the book
#   RUNS=3            timed backtests
#   BENCH_TMPDIR=$TMPDIR, KEEP=0, SKIP_BUILD=0 as in bench/decisions.sh
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DECISIONS=${DECISIONS:-100000}
SEED=${SEED:-400}
CLIENTS=${CLIENTS:-60}
RUNS=${RUNS:-3}
BENCH_TMPDIR=${BENCH_TMPDIR:-${TMPDIR:-/tmp}}
KEEP=${KEEP:-0}
SKIP_BUILD=${SKIP_BUILD:-0}

say() { printf '\n== %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for tool in cargo curl jq sqlite3; do
    command -v "$tool" >/dev/null || die "$tool is needed"
done
while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ENCOURS_' || true)

TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ $SKIP_BUILD != 1 ]]; then
    say "building the release server"
    cargo build --release --quiet --bin encours --manifest-path "$ROOT/Cargo.toml"
fi
ENCOURS=$TARGET/release/encours
[[ -x $ENCOURS ]] || die "$ENCOURS missing (run without SKIP_BUILD=1)"

# shellcheck source=bench/common.sh
source "$ROOT/bench/common.sh"
DB=$WORK/encours.db

say "a varied book: histories, late payers, insurance, scores, legal statuses"
sqlite3 "$DB" <<SQL
.timeout 10000
UPDATE clients SET credit_limit_minor = (20000 + (rowid % 7) * 40000) * 100,
    invoices_paid = CASE WHEN rowid % 6 = 0 THEN 0 ELSE 4 + rowid % 30 END,
    paid_late = CASE WHEN rowid % 5 = 1 THEN 2 + rowid % 9 ELSE rowid % 2 END,
    total_days_late = CASE WHEN rowid % 5 = 1 THEN (2 + rowid % 9) * 25 ELSE rowid % 2 * 3 END,
    external_score = CASE WHEN rowid % 4 = 3 THEN NULL ELSE 35 + rowid * 13 % 60 END,
    score_provider = CASE WHEN rowid % 4 = 3 THEN NULL ELSE 'Ellisphere' END,
    external_score_as_of = CASE WHEN rowid % 4 = 3 THEN NULL ELSE '2026-11-01' END,
    insurer = CASE WHEN rowid % 3 = 0 THEN 'Allianz Trade' ELSE NULL END,
    insured_minor = CASE WHEN rowid % 3 = 0 THEN (5000 + rowid % 5 * 20000) * 100 ELSE NULL END,
    legal_status = CASE WHEN rowid % 29 = 0 THEN 'receivership' WHEN rowid % 23 = 0 THEN 'safeguard' ELSE 'none' END;
SQL

say "$SEED decisions through the API"
: >"$WORK/decisions.curl"
mapfile -t ids <"$WORK/clients.txt"
for i in $(seq "$SEED"); do
    amount=$(printf '%d.%02d' $((50 + i * 733 % 30000)) $((i * 37 % 100)))
    terms=(30 45 60 90)
    if ((i % 8 == 5)); then
        body=$(printf '{"request_id":"bt-%d","client_id":"NEW-%d","amount":"%s","currency":"EUR","requested_terms_days":%d,"channel":"checkout","prospect":{"name":"Prospect %d SAS","country":"FR"}}' \
            "$i" "$i" "$amount" "${terms[i % 4]}" "$i")
    else
        body=$(printf '{"request_id":"bt-%d","client_id":"%s","amount":"%s","currency":"EUR","requested_terms_days":%d,"channel":"erp"}' \
            "$i" "${ids[i % ${#ids[@]}]}" "$amount" "${terms[i % 4]}")
    fi
    ((i > 1)) && echo next >>"$WORK/decisions.curl"
    printf 'url = "%s/v1/credit-decisions"\nrequest = "POST"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
        "$BASE" "$TOKEN" "${body//\"/\\\"}" >>"$WORK/decisions.curl"
done
made=$(curl -s -K "$WORK/decisions.curl" | grep -c '^201$' || true)
[[ $made == "$SEED" ]] || die "made $made of $SEED decisions"

say "a deposit draft: prospects pay 25 % instead of 20 %"
draft=$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/v1/policies/deposit" | jq '
    (.versions[] | select(.version == '"$(curl -sf -H "Authorization: Bearer $TOKEN" "$BASE/v1/policies/deposit" | jq .active_version)"')) as $v
    | {source: ($v.source | sub("DEPOSIT_PROSPECT = 20"; "DEPOSIT_PROSPECT = 25")),
       description: "prospects pay 25 %",
       tests: [$v.tests[] | select(tostring | test("PROSPECT|is_prospect") | not)]}' |
    curl -sf -X POST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
        --data-binary @- "$BASE/v1/policies/deposit/versions" | jq -r .version)
[[ $draft =~ ^[0-9]+$ ]] || die "the draft was not created"

say "stopping the server; copying decision records up to $DECISIONS"
kill -TERM "$SERVER_PID"
wait "$SERVER_PID" || true
SERVER_PID=
sqlite3 "$DB" <<SQL
.timeout 10000
CREATE TEMP TABLE k(i INTEGER PRIMARY KEY);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ($DECISIONS + $SEED - 1) / $SEED)
INSERT INTO k SELECT i FROM n;
INSERT INTO audit_records (sequence, kind, subject, client_id, actor, recorded_at, payload, prev_hash, hash)
SELECT r.sequence + k.i * m.top, r.kind, r.subject, r.client_id, r.actor, r.recorded_at, r.payload,
       r.prev_hash, r.hash || '-copy-' || k.i
FROM audit_records r, k, (SELECT max(sequence) AS top FROM audit_records) m
WHERE r.kind = 'decision';
UPDATE audit_head SET sequence = (SELECT max(sequence) FROM audit_records);
SQL
total=$(sqlite3 "$DB" "SELECT count(*) FROM audit_records WHERE kind = 'decision'")
bytes=$(sqlite3 "$DB" "SELECT avg(length(payload)) FROM audit_records WHERE kind = 'decision'")
printf 'bench: %s decision records (payloads of %.0f bytes on average), %s cores, load %s\n' \
    "$total" "$bytes" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)" >&2

for run in $(seq "$RUNS"); do
    say "run $run/$RUNS: encours policies backtest deposit $draft --limit $DECISIONS"
    start=$(date +%s.%N)
    ENCOURS_DATABASE_URL="sqlite://$DB" "$ENCOURS" policies backtest deposit "$draft" \
        --limit "$DECISIONS" >"$WORK/backtest-$run.txt"
    end=$(date +%s.%N)
    head -n 2 "$WORK/backtest-$run.txt"
    printf 'wall clock (process, start to exit): %.2f s\n' "$(echo "$end - $start" | bc)"
done
printf '\n' && sed -n '3,$p' "$WORK/backtest-$RUNS.txt" | head -n 20
