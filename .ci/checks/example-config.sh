#!/usr/bin/env bash
# Checks deploy/gateway.example.toml with `pension-gateway serve --check-config`.
#
# The example names files under /etc/pension-gateway/ (key ring, admin token), which CI does not
# have. So the check generates them in a temporary directory — a fresh key ring made with
# `pension-gateway keys init` / `keys generate` (WeChat's key: a fresh SM2 public key from
# OpenSSL — the demo's is a published key, refused outside demo mode), a random admin token,
# mode 0600 — and checks a copy of the example whose
# /etc/pension-gateway/ paths are rewritten to that directory; nothing else changes. The pepper
# comes from the environment, as the example says (gateway.env). Then two broken variants must be
# refused with exit code 2: an admin token file readable by others, and an unknown key.
set -euo pipefail
cd "$(dirname "$0")/../.."

target="${CARGO_TARGET_DIR:-target}"
bin="$(realpath -m "$target/debug/pension-gateway")"
if [ ! -x "$bin" ]; then
    cargo build --quiet --bin pension-gateway
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
etc="$work/etc"
mkdir -m 700 "$etc"

# The key commands must not see any GATEWAY_* configuration of the caller.
clean_env() { env -u GATEWAY_CONFIG $(env | sed -n 's/^\(GATEWAY__[^=]*\)=.*/-u \1/p') "$@"; }
openssl genpkey -algorithm SM2 -out "$work/wechat.key" 2>/dev/null
openssl pkey -in "$work/wechat.key" -pubout -out "$work/wechat.pub"
clean_env "$bin" keys --dir "$etc/keys" init --wechat-key "$work/wechat.pub" >/dev/null
clean_env "$bin" keys --dir "$etc/keys" generate >/dev/null
(umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$etc/admin-token")

sed "s#/etc/pension-gateway/#$etc/#g" deploy/gateway.example.toml > "$work/gateway.toml"
pepper="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

check() {
    clean_env GATEWAY__ACCOUNTS__ID_PEPPER="$pepper" "$bin" serve --check-config --config "$1"
}

out="$(check "$work/gateway.toml")"
echo "$out"
case "$out" in
    "configuration ok:"*"key ring $etc/keys"*"v2 staged"*) ;;
    *) echo "unexpected summary: $out" >&2; exit 1 ;;
esac

# Refusals: exit code 2 and a message naming the fault.
expect_refused() {
    local what="$1" config="$2" pattern="$3" rc=0 err
    err="$(check "$config" 2>&1 >/dev/null)" || rc=$?
    if [ "$rc" -ne 2 ] || ! grep -q -- "$pattern" <<<"$err"; then
        echo "$what: expected exit 2 naming '$pattern', got exit $rc: $err" >&2
        exit 1
    fi
    echo "refused as expected ($what): $err"
}
chmod 644 "$etc/admin-token"
expect_refused "admin token readable by others" "$work/gateway.toml" "admin-token"
chmod 600 "$etc/admin-token"
{ cat "$work/gateway.toml"; printf '\n[server2]\nx = 1\n'; } > "$work/unknown.toml"
expect_refused "unknown section" "$work/unknown.toml" "server2"
echo "deploy/gateway.example.toml: serve --check-config ok"
