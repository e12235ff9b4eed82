#!/usr/bin/env bash
# What a synchronous standby costs per Ask: one throw-away primary and a
# streaming standby of it (pg_basebackup -R), one witness on the
# multi-host URL, and h2load Asks with N clients, alternating between
# asynchronous replication (`synchronous_commit = local`) and synchronous
# (`synchronous_commit = on`, `synchronous_standby_names = '*'`), ROUNDS
# times each, on the same servers in the same run.
#
#   CLIENTS=16 SECONDS_PER=10 ROUNDS=3 scripts/bench-ha.sh
#
# Every figure is checked against the decisions actually in the database
# (h2load counts gRPC errors as HTTP 200).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WITNESS=${WITNESS:-target/release/witness}
SECONDS_PER=${SECONDS_PER:-10}
CLIENTS=${CLIENTS:-16}
ROUNDS=${ROUNDS:-3}

command -v h2load >/dev/null || {
    echo "installing h2load (apt: nghttp2-client)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nghttp2-client >/dev/null
}
[ -x "$WITNESS" ] || { echo "no $WITNESS: cargo build --release --bin witness" >&2; exit 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

dir=$(mktemp -d)
chmod 755 "$dir" # the servers may run as the postgres user
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
wpid=
cleanup() {
    [ -z "$wpid" ] || kill "$wpid" 2>/dev/null || true
    scripts/pg-temp.sh stop "$dir/standby" --remove
    scripts/pg-temp.sh stop "$dir/primary" --remove
    rm -rf "$dir"
}
url=$(scripts/pg-temp.sh start "$dir/primary" 0 $$)
trap cleanup EXIT
base=${url%/*}
p1=${base##*:}
psql() { "$BIN/psql" -qtAX -h 127.0.0.1 -p "$p1" -U witness "$@"; }
as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p "$p1" -U witness -D "$dir/standby" -R -c fast -X stream
rm -f "$dir"/standby/.s.PGSQL.* # the primary's socket lock, copied
p2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
echo "$p2" >"$dir/standby/port"
scripts/pg-temp.sh start "$dir/standby" >/dev/null
"$BIN/createdb" -h 127.0.0.1 -p "$p1" -U witness ha

# One Ask as a gRPC frame (as in scripts/bench-postgres.sh).
python3 - "$dir/ask.bin" <<'EOF'
import struct, sys
def ld(field, payload):
    n, out = len(payload), bytearray([field << 3 | 2])
    while n >= 0x80:
        out.append(n & 0x7F | 0x80); n >>= 7
    out.append(n)
    return bytes(out) + payload
value = ld(3, b"api")
entry = ld(1, b"service") + ld(2, value)
msg = (ld(2, b"bench.deploy") + ld(3, ld(5, ld(1, entry)))
       + ld(5, b"sre") + ld(6, b"console"))
open(sys.argv[1], "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
EOF

printf '[store]\nurl = "postgres://witness@127.0.0.1:%s,127.0.0.1:%s/ha?target_session_attrs=read-write"\n[limits]\nrequests_per_second = 0\n' \
    "$p2" "$p1" >"$dir/witness.toml"
WITNESS_LOG=error "$WITNESS" serve --listen 127.0.0.1:0 --config "$dir/witness.toml" >"$dir/witness.out" 2>&1 &
wpid=$!
for _ in $(seq 300); do grep -q "^witness listening on " "$dir/witness.out" && break; sleep 0.1; done
addr=$(sed -n 's/^witness listening on //p' "$dir/witness.out" | head -1)
[ -n "$addr" ] || { echo "witness did not start:" >&2; cat "$dir/witness.out" >&2; exit 1; }

mode() { # on | local
    psql postgres -c "ALTER SYSTEM SET synchronous_standby_names = '*'" \
        -c "ALTER SYSTEM SET synchronous_commit = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
    local state sc
    for _ in $(seq 100); do
        state=$(psql postgres -c "SELECT sync_state FROM pg_stat_replication")
        sc=$(psql postgres -c "SHOW synchronous_commit")
        if [ "$sc" = "$1" ] && { [ "$1" = local ] || [ "$state" = sync ]; }; then return; fi
        sleep 0.1
    done
    echo "replication did not become synchronous_commit = $1 ($state)" >&2; exit 1
}

asks() { # prints: req/s ok
    h2load -D "$SECONDS_PER" -c "$CLIENTS" -m 1 -t 1 \
        -d "$dir/ask.bin" -H "content-type: application/grpc" -H "te: trailers" \
        -H "x-witness-principal: bench" -H "x-witness-roles: sre" \
        "http://$addr/witness.v1.WitnessService/Ask" >"$dir/h2load.out" 2>&1
    awk '/^finished in/ {gsub(",", "", $4); printf "%.0f ", $4} /^status codes:/ {print $3}' "$dir/h2load.out"
}

echo "witness bench-ha: $SECONDS_PER s per figure, $CLIENTS clients, PostgreSQL $("$BIN/postgres" --version | awk '{print $3}'), $(nproc) cores, primary and standby on one machine"
for r in $(seq "$ROUNDS"); do
    for m in local on; do
        mode "$m"
        before=$(psql ha -c "SELECT count(*) FROM decisions" 2>/dev/null || echo 0)
        read -r rate ok < <(asks)
        after=$(psql ha -c "SELECT count(*) FROM decisions")
        [ $((after - before)) -ge "$ok" ] || { echo "only $((after - before)) decisions for $ok HTTP 200s: Asks failed" >&2; exit 1; }
        printf 'round %s  synchronous_commit = %-5s  witness Ask %6s req/s\n' "$r" "$m" "$rate"
    done
done
