#!/usr/bin/env bash
# Ask throughput on a throw-away PostgreSQL with 1 and 2 witness replicas,
# next to pgbench inserting rows of the same size on the same server.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WITNESS=target/release/witness
SECONDS_PER=${SECONDS_PER:-5}
dir=$(mktemp -d)
chmod 755 "$dir" # the server may run as the postgres user
url=$(scripts/pg-temp.sh start "$dir/pg" 0 $$)
trap 'scripts/pg-temp.sh stop "$dir/pg" --remove; rm -rf "$dir"' EXIT
base=${url%/*}
for db in one two pgb; do "$BIN/createdb" -h 127.0.0.1 -p "${base##*:}" -U witness "$db"; done
echo "== witness on PostgreSQL, 1 replica"
WITNESS_LOG=error "$WITNESS" bench --seconds "$SECONDS_PER" --store "$base/one"
echo "== witness on PostgreSQL, 2 replicas"
WITNESS_LOG=error "$WITNESS" bench --seconds "$SECONDS_PER" --store "$base/two" --replicas 2
echo "== pgbench: single-row durable inserts (600-byte body), 64 clients"
"$BIN/psql" -q "$base/pgb" -c "CREATE TABLE bench_events (sequence BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
echo "INSERT INTO bench_events (body) VALUES (repeat('x', 600));" > "$dir/insert.sql"
"$BIN/pgbench" -n -c 64 -j 2 -T "$SECONDS_PER" -f "$dir/insert.sql" "$base/pgb" 2>/dev/null | grep -E "tps|latency average"
