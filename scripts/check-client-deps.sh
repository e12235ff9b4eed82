#!/usr/bin/env bash
# Fails when the witness-client crate (or witness-proto under it) depends,
# at run time, on a store, an HTTP server or the witness server itself: a
# Rust user who adds witness-client must compile none of them.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo="${CARGO:-cargo}"
forbidden='^(rusqlite|libsqlite3-sys|tokio-postgres|postgres-.*|deadpool.*|axum.*|witness)$'
names=$("$cargo" tree --locked -p witness-client -e normal --prefix none --format '{p}' | awk '{print $1}' | sort -u)
bad=$(grep -E "$forbidden" <<<"$names" || true)
if [[ -n "$bad" ]]; then
  echo "witness-client must not depend on:" $bad >&2
  echo "(see: cargo tree -p witness-client -e normal -i <name>)" >&2
  exit 1
fi
echo "witness-client: $(wc -l <<<"$names") crates, none of the server's"
