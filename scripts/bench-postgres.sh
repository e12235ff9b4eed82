#!/usr/bin/env bash
# Durable Ask on PostgreSQL against PostgreSQL's own ceiling, in one run on
# one throw-away server: pgbench running a single-row durable INSERT with N
# clients, then witness `Ask` (gRPC, h2load) with the same N clients, and
# the ratio. For reference, the same h2load load against witness on SQLite
# (no PostgreSQL in the path: what the witness process itself sustains on
# this machine) and against 2 witness replicas sharing the database.
#
#   CLIENTS="16 64" SECONDS_PER=10 scripts/bench-postgres.sh
#
# h2load counts any HTTP 200 as a success, and gRPC errors come as HTTP 200
# with a grpc-status trailer, so every witness figure is checked against
# the decisions actually in the database.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WITNESS=${WITNESS:-target/release/witness}
SECONDS_PER=${SECONDS_PER:-10}
CLIENTS=${CLIENTS:-"16 64"}

need() { # command, Debian package
    command -v "$1" >/dev/null || [ -x "$1" ] || {
        echo "installing $2 (apt)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    }
}
need h2load nghttp2-client
need "$BIN/pgbench" postgresql-15 # pgbench ships with the server package
[ -x "$WITNESS" ] || { echo "no $WITNESS: cargo build --release --bin witness" >&2; exit 1; }

dir=$(mktemp -d)
chmod 755 "$dir" # the server may run as the postgres user
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    scripts/pg-temp.sh stop "$dir/pg" --remove
    rm -rf "$dir"
}
url=$(scripts/pg-temp.sh start "$dir/pg" 0 $$)
trap cleanup EXIT
base=${url%/*}
port=${base##*:}
psql() { "$BIN/psql" -qtA -h 127.0.0.1 -p "$port" -U witness "$@"; }
"$BIN/createdb" -h 127.0.0.1 -p "$port" -U witness pgb
psql pgb -c "CREATE TABLE bench_events (sequence BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
echo "INSERT INTO bench_events (body) VALUES (repeat('x', 600));" >"$dir/insert.sql"

# One Ask as a gRPC frame: kind "bench.deploy", input {"service": "api"},
# authorized_roles ["sre"], surfaces ["console"]; no request_id (h2load
# sends the same body every time, and a repeated key would be a replay).
python3 - "$dir/ask.bin" <<'EOF'
import struct, sys
def ld(field, payload):  # length-delimited field
    n, out = len(payload), bytearray([field << 3 | 2])
    while n >= 0x80:
        out.append(n & 0x7F | 0x80); n >>= 7
    out.append(n)
    return bytes(out) + payload
value = ld(3, b"api")                          # Value.string_value
entry = ld(1, b"service") + ld(2, value)       # Struct.fields map entry
msg = (ld(2, b"bench.deploy") + ld(3, ld(5, ld(1, entry)))  # Value.struct_value
       + ld(5, b"sre") + ld(6, b"console"))
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
EOF

# Starts a witness server on STORE_URL; sets ADDR to its address.
serve() {
    local name=$1 store=$2
    printf '[store]\nurl = "%s"\n[limits]\nrequests_per_second = 0\n' "$store" >"$dir/$name.toml"
    WITNESS_LOG=error "$WITNESS" serve --listen 127.0.0.1:0 --config "$dir/$name.toml" \
        >"$dir/$name.out" 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do
        if grep -q "^witness listening on " "$dir/$name.out"; then
            ADDR=$(sed -n 's/^witness listening on //p' "$dir/$name.out" | head -1)
            return
        fi
        sleep 0.1
    done
    echo "witness did not start:" >&2; cat "$dir/$name.out" >&2; exit 1
}

# h2load's req/s for N clients (one connection each, one request in
# flight each) against the Ask of the servers given.
asks() {
    local n=$1; shift
    local per=$((n / $#)) out total=0 ok=0
    for addr in "$@"; do
        h2load -D "$SECONDS_PER" -c "$per" -m 1 -t 1 \
            -d "$dir/ask.bin" -H "content-type: application/grpc" -H "te: trailers" \
            -H "x-witness-principal: bench" -H "x-witness-roles: sre" \
            "http://$addr/witness.v1.WitnessService/Ask" >"$dir/h2load.$addr.out" 2>&1 &
    done
    wait
    for addr in "$@"; do
        out="$dir/h2load.$addr.out"
        total=$(awk -v t="$total" '/^finished in/ {gsub(",", "", $4); printf "%.0f", t + $4}' "$out")
        ok=$((ok + $(awk '/^status codes:/ {print $3}' "$out")))
    done
    echo "$total $ok"
}

decisions() { psql "$1" -c "SELECT count(*) FROM decisions"; }

pgbench_tps() {
    "$BIN/pgbench" -n -c "$1" -j 2 -T "$SECONDS_PER" -f "$dir/insert.sql" \
        -h 127.0.0.1 -p "$port" -U witness pgb 2>/dev/null |
        awk '/^tps/ {printf "%.0f", $3}'
}

echo "witness bench-postgres: $SECONDS_PER s per figure, PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), $(nproc) cores"
i=0
for n in $CLIENTS; do
    i=$((i + 1))
    "$BIN/createdb" -h 127.0.0.1 -p "$port" -U witness "w$i"
    serve "pg$i" "$base/w$i"
    tps=$(pgbench_tps "$n")
    read -r rate ok < <(asks "$n" "$ADDR")
    made=$(decisions "w$i")
    [ "$made" -ge "$ok" ] || { echo "only $made decisions for $ok HTTP 200s: Asks failed" >&2; exit 1; }
    printf 'N=%-3s pgbench single-row INSERT %6s tps | witness Ask on PostgreSQL %6s req/s | ratio %s\n' \
        "$n" "$tps" "$rate" "$(awk -v a="$rate" -v b="$tps" 'BEGIN {printf "%.2f", a / b}')"
    kill "${pids[-1]}"
done
n=${CLIENTS##* }
serve sqlite "sqlite://$dir/w.db"
read -r rate _ < <(asks "$n" "$ADDR")
printf 'N=%-3s witness Ask on SQLite (no PostgreSQL: the witness process alone) %6s req/s\n' "$n" "$rate"
kill "${pids[-1]}"
"$BIN/createdb" -h 127.0.0.1 -p "$port" -U witness two
serve two-a "$base/two"
a=$ADDR
serve two-b "$base/two"
read -r rate ok < <(asks "$n" "$a" "$ADDR")
made=$(decisions two)
[ "$made" -ge "$ok" ] || { echo "only $made decisions for $ok HTTP 200s: Asks failed" >&2; exit 1; }
printf 'N=%-3s witness Ask on PostgreSQL, 2 replicas %6s req/s\n' "$n" "$rate"
