#!/usr/bin/env bash
# Regenerates the gRPC stubs of witness.v1 from ../proto into
# src/witness/_proto (or into the directory given as $1, which the staleness
# test uses), with the grpcio-tools version pinned in requirements-dev.txt.
#
#   ./generate.sh            # rewrite the checked-in stubs
#   ./generate.sh /tmp/out   # write them elsewhere (for comparison)
#
# The Python used is $PYTHON if set, else sdk-python/.venv/bin/python (the
# venv is created and the pinned grpcio-tools installed when missing).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
proto_root="$(cd "$here/../proto" && pwd)"
out="${1:-$here/src/witness/_proto}"

if [[ -z "${PYTHON:-}" ]]; then
  if [[ ! -x "$here/.venv/bin/python" ]]; then
    python3 -m venv "$here/.venv"
  fi
  PYTHON="$here/.venv/bin/python"
  pin="$(grep -E '^grpcio-tools==' "$here/requirements-dev.txt")"
  if ! "$PYTHON" -c 'import grpc_tools' 2>/dev/null; then
    "$PYTHON" -m pip install --quiet --disable-pip-version-check \
      -r "$here/requirements-dev.txt"
  fi
  have="grpcio-tools==$("$PYTHON" -c 'from importlib.metadata import version; print(version("grpcio-tools"))')"
  if [[ "$have" != "$pin" ]]; then
    echo "generate.sh: $have installed, requirements-dev.txt pins $pin" >&2
    exit 1
  fi
fi

well_known="$("$PYTHON" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

(cd "$proto_root" && "$PYTHON" -m grpc_tools.protoc \
  -I "$proto_root" -I "$well_known" \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  witness/v1/witness.proto)

# The stubs live in the package witness._proto.witness.v1: make the grpc
# module import its sibling relatively instead of as top-level `witness.v1`.
sed -i.bak 's/^from witness\.v1 import witness_pb2 as /from . import witness_pb2 as /' \
  "$tmp/witness/v1/witness_pb2_grpc.py"
rm -f "$tmp/witness/v1/"*.bak

mkdir -p "$out/witness/v1"
for f in witness_pb2.py witness_pb2.pyi witness_pb2_grpc.py; do
  cp "$tmp/witness/v1/$f" "$out/witness/v1/$f"
done
for d in "$out" "$out/witness" "$out/witness/v1"; do
  [[ -f "$d/__init__.py" ]] || printf '"""Generated gRPC stubs (see generate.sh)."""\n' > "$d/__init__.py"
done
echo "generated witness.v1 stubs in $out"
