#!/usr/bin/env bash
# Tests the Debian package `make deb` built (`make deb-check` runs both):
#   - its control fields (dpkg-deb -f) and maintainer scripts (dpkg-deb -e);
#   - its files (dpkg-deb -x): the binary, the systemd unit from deploy/, the
#     config from deploy/ as a conffile, /var/lib/witness;
#   - that the unit and the shipped config agree (paths, secret variables);
#   - the extracted binary: --version, and `serve` with the shipped config
#     made dev-safe (below) answering GET /healthz;
#   - lintian: no E: line.
# The last line is `N passed, M failed`.
#
#   scripts/check-deb.sh [PATH.deb]    (default: target/debian/witness_VERSION-1_ARCH.deb)
set -uo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"$/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
deb=${1:-target/debian/witness_${version}-1_${arch}.deb}

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1${2:+: $2}"; }
# check WHAT CONDITION: one test, passed when the shell condition (a string,
# evaluated here) succeeds; returns its status.
check() {
    if eval "$2"; then ok "$1"; else bad "$1"; return 1; fi
}
summary() {
    echo
    echo "check-deb: $passed passed, $failed failed"
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
}

if [ ! -f "$deb" ]; then
    bad "the package" "$deb not found (make deb builds it)"
    summary
    exit 1
fi
echo "check-deb: $deb"

work=$(mktemp -d)
server=
cleanup() {
    if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- control fields ----------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
check "Package: witness" '[ "$(field Package)" = witness ]'
check "Version: $version-1 (Cargo.toml's version, revision 1)" '[ "$(field Version)" = "$version-1" ]'
check "Architecture: $arch" '[ "$(field Architecture)" = "$arch" ]'
maintainer=$(sed -n '/^\[package\.metadata\.deb\]/,/^\[/s/^maintainer = "\(.*\)"$/\1/p' Cargo.toml)
check "Maintainer: $maintainer (Cargo.toml's)" '[ -n "$maintainer" ] && [ "$(field Maintainer)" = "$maintainer" ]'
depends=$(field Depends)
check "Depends: $depends (names libc6 and adduser)" \
    'grep -Eq "(^|, )libc6( |,|\$)" <<<"$depends" && grep -Eq "(^|, )adduser( |,|\$)" <<<"$depends"'
check "Section: admin, Priority: optional" '[ "$(field Section)" = admin ] && [ "$(field Priority)" = optional ]'
check "Description and its long form" '[ "$(field Description | wc -l)" -gt 1 ]'

# --- maintainer scripts ------------------------------------------------------
dpkg-deb -e "$deb" "$work/DEBIAN"
ctl=$work/DEBIAN
check "conffiles lists /etc/witness/witness.toml" 'grep -qx /etc/witness/witness.toml "$ctl/conffiles"'
check "postinst is executable" '[ -x "$ctl/postinst" ]'
check "postinst makes the witness system user and group" \
    'grep -q "adduser --system --group .*witness" "$ctl/postinst"'
check "postinst gives /var/lib/witness to witness (dpkg-statoverride)" \
    'grep -q "own witness witness 0750 /var/lib/witness" "$ctl/postinst"'
check "postinst has cargo-deb's systemd snippet (#DEBHELPER# replaced)" \
    'grep -q deb-systemd-helper "$ctl/postinst" && ! grep -q "#DEBHELPER#" "$ctl/postinst"'
check "postrm handles purge" 'grep -q "^purge)" "$ctl/postrm"'
for script in postinst prerm postrm; do
    [ -f "$ctl/$script" ] || continue
    check "$script passes sh -n" 'sh -n "$ctl/$script"'
done

# --- files ---------------------------------------------------------------------
root=$work/root
dpkg-deb -x "$deb" "$root"
listing=$(dpkg-deb -c "$deb")
has() { grep -Eq " \./$1\$" <<<"$listing"; }
mode() { stat -c %a "$root/$1"; }
check "/usr/bin/witness, mode 755" 'has usr/bin/witness && [ "$(mode usr/bin/witness)" = 755 ]'
unit=
for dir in usr/lib/systemd/system lib/systemd/system; do
    if has "$dir/witness.service"; then unit=$dir/witness.service; fi
done
check "the unit /${unit:-lib/systemd/system/witness.service} is deploy/witness.service" \
    '[ -n "$unit" ] && cmp -s "$root/$unit" deploy/witness.service'
check "/etc/witness/witness.toml is deploy/witness.prod.toml, mode 640" \
    'cmp -s "$root/etc/witness/witness.toml" deploy/witness.prod.toml && [ "$(mode etc/witness/witness.toml)" = 640 ]'
check "/var/lib/witness (a directory)" 'has var/lib/witness/'
check "/usr/share/doc/witness/copyright names the license" \
    'grep -q "^License: Apache-2.0" "$root/usr/share/doc/witness/copyright"'
check "changelog.Debian.gz's newest entry is $version-1 (deploy/debian/changelog)" \
    'zcat "$root/usr/share/doc/witness/changelog.Debian.gz" | head -1 | grep -q "^witness ($version-1) "'
check "md5sums match the files" '[ -s "$ctl/md5sums" ] && (cd "$root" && md5sum --check --quiet "$ctl/md5sums")'
check "nothing under /usr/local" '! grep -q " \./usr/local" <<<"$listing"'

# --- the unit and the shipped config agree -------------------------------------
if [ -n "$unit" ]; then
    u=$root/$unit
    for line in ExecStartPre ExecStart; do
        cmd=$(sed -n "s/^$line=//p" "$u" | head -1)
        bin=${cmd%% *}
        check "$line runs $bin, which the package ships" '[ -n "$bin" ] && [ -x "$root$bin" ]'
        check "$line reads /etc/witness/witness.toml" 'grep -q -- "--config /etc/witness/witness.toml" <<<"$cmd"'
    done
    check "the unit reads /etc/witness/witness.env" 'grep -qx "EnvironmentFile=-/etc/witness/witness.env" "$u"'
    check "the unit's install comment creates /etc/witness" \
        'grep -q "^#.*install -d -m 0750 -o root -g witness /etc/witness\$" "$u"'
    check "the unit writes only /var/lib/witness, its state directory" \
        'grep -qx "StateDirectory=witness" "$u" && grep -qx "ReadWritePaths=/var/lib/witness" "$u"'
    # Every variable the config reads a secret from (secret_env,
    # password_env) is one the unit's comment tells to put in witness.env.
    vars=$(sed -n 's/^[a-z_]*_env *= *"\([A-Z0-9_]*\)".*/\1/p' deploy/witness.prod.toml)
    check "the config reads secrets from variables (${vars//$'\n'/, })" '[ -n "$vars" ]'
    for v in $vars; do
        check "the unit's comment names $v for witness.env" 'grep -q "^#.*$v=" "$u"'
    done
    check "the config keeps no inline secret or password" \
        '! grep -Eq "^(secret|password) *=" deploy/witness.prod.toml && ! grep -Eq "^url *= *\"postgres://[^@/]*:" deploy/witness.prod.toml'
fi

# --- the extracted binary --------------------------------------------------------
bin=$root/usr/bin/witness
check "witness --version names $version" '"$bin" --version | grep -q "witness $version"'

# As shipped, the config must not start: its principals' token hashes are
# placeholders and its secrets come from variables that are not set here.
shipped=$root/etc/witness/witness.toml
if env -u WITNESS_PAGER_SECRET -u WITNESS_DB_PASSWORD timeout 20 "$bin" serve --config "$shipped" \
    --listen 127.0.0.1:0 >"$work/shipped.out" 2>&1; then
    bad "the shipped config as is refuses to start" "witness served with it"
elif grep -q 'witness listening on' "$work/shipped.out"; then
    bad "the shipped config as is refuses to start" "it listened: $(head -c 300 "$work/shipped.out")"
else
    ok "the shipped config as is refuses to start ($(head -1 "$work/shipped.out" | sed "s|$root||" | cut -c1-200))"
fi

# "Dev-safe": the shipped config with only what this machine lacks or must
# not reach changed, everything else (policies, webhook, limits, metrics,
# JSON logs, principals) as shipped:
#   - the three placeholder token hashes become SHA-256s of test tokens;
#   - [tls] goes (its certificate is not here) and it listens on
#     127.0.0.1:0 (loopback needs no TLS);
#   - the store is a SQLite file in a temporary folder
#     (WITNESS__STORE__URL), so password_env (PostgreSQL's) goes;
#   - the receipt key is written in that folder (WITNESS__RECEIPTS__KEY_FILE);
#   - no traces are exported (WITNESS__TRACING__OTLP_ENDPOINT empty): no
#     collector is reachable from here;
#   - the webhook's secret_env variable is set; no decision is asked, so
#     nothing is ever sent to its URL.
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
awk -v h1="$(sha dev-safe-token-1)" -v h2="$(sha dev-safe-token-2)" -v h3="$(sha dev-safe-token-3)" '
    BEGIN { split(h1 " " h2 " " h3, h, " ") }
    /^\[/ { skip = ($0 == "[tls]") }
    skip { next }
    /^password_env *=/ { next }
    /^token_sha256 = "…"/ { n++; print "token_sha256 = \"" h[n] "\""; next }
    { print }
' "$shipped" >"$work/witness.toml"
check "dev-safe config: three placeholder hashes replaced, [tls] dropped" \
    '[ "$(grep -c "^token_sha256 = \"[0-9a-f]\{64\}\"" "$work/witness.toml")" = 3 ] && ! grep -q "^\[tls\]" "$work/witness.toml"'
devsafe=(env WITNESS__STORE__URL="sqlite://$work/w.db" WITNESS__RECEIPTS__KEY_FILE="$work/receipt.key"
    WITNESS__TRACING__OTLP_ENDPOINT= WITNESS_PAGER_SECRET=dev-safe-secret)
check "witness migrate with the dev-safe config" \
    '"${devsafe[@]}" "$bin" migrate --config "$work/witness.toml" >"$work/migrate.out" 2>&1' ||
    sed 's/^/      /' "$work/migrate.out"

"${devsafe[@]}" "$bin" serve --config "$work/witness.toml" --listen 127.0.0.1:0 \
    >"$work/serve.out" 2>"$work/serve.err" &
server=$!
addr=
for _ in $(seq 1 300); do
    addr=$(sed -n 's/^witness listening on //p' "$work/serve.out" | head -1)
    [ -n "$addr" ] || ! kill -0 "$server" 2>/dev/null && break
    sleep 0.1
done
if [ -n "$addr" ]; then
    ok "witness serve with the dev-safe config listens ($addr)"
    code=$(curl -s -o "$work/healthz" -w '%{http_code}' "http://$addr/healthz")
    check "GET /healthz answers 200 ($code: $(head -c 60 "$work/healthz"))" '[ "$code" = 200 ]'
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/v1/decisions?authorized=sre")
    check "without a token, /v1/decisions is refused ($code): not dev mode" '[ "$code" = 401 ]'
    code=$(curl -s -o /dev/null -w '%{http_code}' -H "authorization: Bearer dev-safe-token-2" \
        "http://$addr/v1/decisions?authorized=sre")
    check "with alice's token (a shipped principal), /v1/decisions answers 200 ($code)" '[ "$code" = 200 ]'
    kill -TERM "$server"
    wait "$server"
    status=$?
    server=
    check "witness serve stops on SIGTERM with status 0 ($status)" '[ "$status" = 0 ]'
else
    bad "witness serve with the dev-safe config listens" "$(head -c 600 "$work/serve.err")"
fi

# --- lintian -------------------------------------------------------------------
if command -v lintian >/dev/null; then
    lintian --allow-root --tag-display-limit 0 "$deb" >"$work/lintian.out" 2>&1
    errors=$(grep -c '^E:' "$work/lintian.out")
    warnings=$(grep -c '^W:' "$work/lintian.out")
    sed 's/^/      lintian: /' "$work/lintian.out"
    check "lintian: no errors ($errors errors, $warnings warnings)" '[ "$errors" = 0 ]'
else
    bad "lintian" "not installed (make deb-check installs it)"
fi

summary
