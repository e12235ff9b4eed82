#!/usr/bin/env bash
# A private, throw-away PostgreSQL from the machine's binaries, for tests,
# benchmarks and `make run-postgres`.
#
#   pg-temp.sh start DIR [PORT] [WATCH_PID]   prints the database URL
#   pg-temp.sh stop DIR [--remove]
#
# initdb refuses to run as root, so as root the server runs as `postgres`.
# With WATCH_PID, the cluster stops and DIR is removed once that process
# exits (test binaries pass their own pid, so nothing outlives them).
set -euo pipefail
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

cmd=${1:?usage: pg-temp.sh start|stop DIR}
DIR=${2:?usage: pg-temp.sh start|stop DIR}
case "$cmd" in
start)
    [ -x "$BIN/postgres" ] || { echo "pg-temp: PostgreSQL 15 binaries not found in $BIN: run \`make pg\`" >&2; exit 1; }
    PORT=${3:-0}
    if [ -f "$DIR/port" ]; then PORT=$(cat "$DIR/port"); fi
    if [ "$PORT" = 0 ]; then
        PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    fi
    mkdir -p "$DIR"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; chmod 700 "$DIR"; fi
    if [ ! -f "$DIR/PG_VERSION" ]; then
        as_pg "$BIN/initdb" -D "$DIR" -U witness --auth=trust -E UTF8 >/dev/null
        echo "$PORT" > "$DIR/port"
    fi
    as_pg "$BIN/pg_ctl" -D "$DIR" -l "$DIR/server.log" -w -t 60 start \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=300" >/dev/null
    "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U witness -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'witness'" | grep -q 1 ||
        "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U witness witness
    if [ -n "${4:-}" ]; then
        nohup bash -c "while kill -0 $4 2>/dev/null; do sleep 1; done; '$0' stop '$DIR' --remove" \
            >/dev/null 2>&1 &
    fi
    echo "postgres://witness@127.0.0.1:$PORT/witness"
    ;;
stop)
    if [ -f "$DIR/postmaster.pid" ]; then
        as_pg "$BIN/pg_ctl" -D "$DIR" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ "${3:-}" = "--remove" ]; then rm -rf "$DIR"; fi
    ;;
*)
    echo "usage: pg-temp.sh start|stop DIR" >&2
    exit 2
    ;;
esac
