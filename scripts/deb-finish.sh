#!/usr/bin/env bash
# Adds to the .deb cargo-deb wrote what cargo-deb cannot: the empty state
# directory /var/lib/witness (cargo-deb packages files only), and the
# md5sums control file (what `dpkg --verify` checks; conffiles are left
# out, as dh_md5sums does). `make deb` runs it.
#
#   scripts/deb-finish.sh PATH.deb
set -euo pipefail
deb=${1:?usage: deb-finish.sh PATH.deb}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/pkg"
install -d -m 0750 "$work/pkg/var/lib/witness"
(
    cd "$work/pkg"
    find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | LC_ALL=C sort |
        grep -vxF -f <(sed 's|^/||' DEBIAN/conffiles 2>/dev/null || true) |
        xargs -r -d '\n' md5sum >DEBIAN/md5sums
)
chmod 0644 "$work/pkg/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$work/pkg" "$deb" >/dev/null
