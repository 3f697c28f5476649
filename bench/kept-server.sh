# Sourced by the scripts that run the release server again on a directory that
# `KEEP=1 bench/decisions.sh` left (its database and clients.txt): bench/profile-decisions.sh,
# bench/decisions-instructions.sh. The caller sets ROOT and WORK; this sets ENCOURS and LOADGEN and
# gives `start_server [WRAPPER…]` (sets SERVER, PORT and LOADGEN_TOKEN; the server stops when the
# caller exits) and `decisions SECONDS CONNECTIONS [LOADGEN_OPTION…]` (a closed loop of unique
# orders over the kept clients).

ENCOURS=${CARGO_TARGET_DIR:-$ROOT/target}/release/encours
LOADGEN=$ROOT/tools/loadgen/target/release/loadgen
for f in "$WORK/encours.db" "$WORK/clients.txt" "$ENCOURS" "$LOADGEN"; do
    [[ -e $f ]] || { echo "$(basename "$0"): $f is missing" >&2; exit 1; }
done

start_server() {
    while IFS= read -r name; do unset "$name"; done < <(compgen -e | grep '^ENCOURS_' || true)
    PORT=$((20000 + RANDOM % 40000))
    export ENCOURS_DATABASE_URL="sqlite://$WORK/encours.db" ENCOURS_BIND="127.0.0.1:$PORT"
    export ENCOURS_LOG=json RUST_LOG=warn
    ENCOURS_JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
    export ENCOURS_JWT_SECRET
    (cd "$WORK" && exec "$@" "$ENCOURS" serve >"$WORK/server.log" 2>&1) &
    SERVER=$!
    trap 'kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true' EXIT
    # Under valgrind the start takes seconds, not milliseconds.
    for _ in $(seq 600); do
        curl -sf -o /dev/null "http://127.0.0.1:$PORT/readyz" && break
        sleep 0.1
    done
    LOADGEN_TOKEN=$(cd "$WORK" && "$ENCOURS" token --sub bench --scope all)
    export LOADGEN_TOKEN
}

decisions() {
    local seconds=$1 connections=$2
    shift 2
    local tag
    tag="kept-$(date +%s%N)"
    "$LOADGEN" "http://127.0.0.1:$PORT/v1/credit-decisions" -X POST --allow-errors \
        --body '{"request_id":"'"$tag"'-{n}","client_id":"{client}","amount":"1250.00","currency":"EUR","requested_terms_days":30,"channel":"checkout","order_ref":"SO-{n}"}' \
        --clients-file "$WORK/clients.txt" -c "$connections" -d "$seconds" "$@"
}
