# Sourced by the load benchmarks (bench/decisions.sh, bench/events.sh) once their settings
# and binaries are set (CLIENTS, BENCH_TMPDIR, KEEP, ENCOURS, LOADGEN, LOADGEN_THREADS, say,
# die): the load check, a fresh directory on a real disk, the release server on SQLite with
# its defaults and a random secret, a token, CLIENTS realistic clients, cleanup on exit, and
# `lg` (the load generator, failing when the server dies) and `server_ticks` (its CPU time).
# shellcheck shell=bash
# Other work on the machine takes cores from the server and the load generator alike.
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if awk -v l="${LOAD_BEFORE%% *}" 'BEGIN { exit !(l > 0.5) }'; then
    printf 'bench: WARNING: load average %s before the run: other processes are busy and will skew the figures\n' "$LOAD_BEFORE" >&2
fi

WORK=$(mktemp -d "$BENCH_TMPDIR/encours-bench.XXXXXX")
FSTYPE=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
if [[ $FSTYPE == tmpfs ]]; then
    rm -rf "$WORK"
    die "$BENCH_TMPDIR is a tmpfs, where fsync costs nothing: set BENCH_TMPDIR to a directory on disk"
fi

SERVER_PID=
cleanup() {
    local status=$?
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status != 0 && -s $WORK/server.log ]]; then
        printf '\nbench: failed; the last lines of the server log:\n' >&2
        tail -n 20 "$WORK/server.log" >&2
    fi
    if [[ $KEEP == 1 || $status != 0 ]]; then
        printf 'bench: kept %s\n' "$WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    local port
    for _ in $(seq 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

PORT=$(free_port)
BASE=http://127.0.0.1:$PORT
export ENCOURS_DATABASE_URL="sqlite://$WORK/encours.db"
export ENCOURS_BIND="127.0.0.1:$PORT"
ENCOURS_JWT_SECRET=$(head -c 48 /dev/urandom | base64 | tr -d '\n')
export ENCOURS_JWT_SECRET
export ENCOURS_LOG=json RUST_LOG=warn
# A setting to compare against the defaults, e.g. SERVER_SETTING=ENCOURS_COMPILE_POLICIES=false.
if [[ -n ${SERVER_SETTING:-} ]]; then
    [[ $SERVER_SETTING == ENCOURS_*=* ]] || die "SERVER_SETTING must look like ENCOURS_NAME=value"
    export "${SERVER_SETTING?}"
fi

say "starting encours serve on $BASE, database in $WORK"
(cd "$WORK" && exec "$ENCOURS" serve >"$WORK/server.log" 2>&1) &
SERVER_PID=$!
for _ in $(seq 600); do
    kill -0 "$SERVER_PID" 2>/dev/null || die "the server stopped at start"
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz") == 200 ]] && break
    sleep 0.1
done
[[ $(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz") == 200 ]] || die "the server is not ready"
TOKEN=$(cd "$WORK" && "$ENCOURS" token --sub bench --scope all)
export LOADGEN_TOKEN=$TOKEN

say "creating $CLIENTS clients"
# Realistic French (and some other euro-area) businesses: names, SIREN-like numbers, NACE
# sectors, and limits from 5 to 50 million EUR, far above what the run can reserve.
trades=("Boulangeries:C10.71" "Transports:H49.41" "Menuiserie:C16.23" "Garage:G45.20"
    "Imprimerie:C18.12" "Pharmacie:G47.73" "Plomberie:F43.22" "Restaurant:I56.10"
    "Negoce:G46.90" "Ingenierie:M71.12" "Fromagerie:C10.51" "Electricite:F43.21")
names=(Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent
    Lefebvre Michel Garcia David Bertrand Roux Vincent Fournier)
forms=(SAS SARL SA EURL)
countries=(FR FR FR FR FR FR FR FR BE DE ES IT)
limits=(5000000.00 10000000.00 10000000.00 20000000.00 50000000.00)
: >"$WORK/clients.txt"
: >"$WORK/clients.curl"
for i in $(seq "$CLIENTS"); do
    id=$(printf 'C-%06d' "$i")
    trade=${trades[i % ${#trades[@]}]}
    name="${trade%%:*} ${names[i * 7 % ${#names[@]}]} ${forms[i % ${#forms[@]}]}"
    body=$(printf '{"name":"%s","registration_number":"%09d","country":"%s","sector":"%s","currency":"EUR","credit_limit":"%s"}' \
        "$name" $((312000000 + i * 7919 % 687000000)) "${countries[i % ${#countries[@]}]}" \
        "${trade##*:}" "${limits[i % ${#limits[@]}]}")
    echo "$id" >>"$WORK/clients.txt"
    # One curl process, one kept-alive connection: a config block per client.
    ((i > 1)) && echo next >>"$WORK/clients.curl"
    printf 'url = "%s/v1/clients/%s"\nrequest = "PUT"\nheader = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\ndata = "%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code}\\n"\n' \
        "$BASE" "$id" "$TOKEN" "${body//\"/\\\"}" >>"$WORK/clients.curl"
done
created=$(curl -s -K "$WORK/clients.curl" | grep -c '^201$' || true)
[[ $created == "$CLIENTS" ]] || die "created $created of $CLIENTS clients"

# Answers other than 2xx do not stop the run: they are counted and reported in the summary,
# and make the script exit non-zero at the end.
lg() {
    server_alive
    "$LOADGEN" --threads "$LOADGEN_THREADS" --allow-errors "$@"
    server_alive
}
server_alive() {
    kill -0 "$SERVER_PID" 2>/dev/null && return
    local status=0
    wait "$SERVER_PID" || status=$?
    SERVER_PID=
    if ((status > 128)); then
        die "the server died: killed by signal $((status - 128)) ($(kill -l $((status - 128))))"
    fi
    die "the server exited with status $status"
}
# The server's CPU time so far, in clock ticks (user + system): CPU per request for each phase.
server_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
# The bytes the server has written to storage so far (log, database and checkpoints alike):
# disk written per request for each phase, which a wall-clock rate on a shared machine hides.
# 0 where the kernel does not let us read it (the summary then shows 0).
server_written() { awk '/^write_bytes:/ { print $2 }' "/proc/$SERVER_PID/io" 2>/dev/null || echo 0; }
