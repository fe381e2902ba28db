#!/usr/bin/env bash
# Checks deploy/pension-gateway.service with `systemd-analyze verify`.
#
# `verify` insists that every Exec* binary exists and is executable, and the unit names the
# installed path (/usr/local/bin/pension-gateway), which CI does not have. So a copy of the unit,
# with that path rewritten to the binary built from this tree, is verified instead; nothing else
# in the copy changes. `verify` reports unknown keys and bad values as warnings with exit code 0,
# so any output at all fails the check as well.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v systemd-analyze >/dev/null; then
    echo "systemd-analyze missing: apt-get install systemd" >&2
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends systemd >&2
fi

target="${CARGO_TARGET_DIR:-target}"
bin="$(realpath -m "$target/debug/pension-gateway")"
if [ ! -x "$bin" ]; then
    cargo build --quiet --bin pension-gateway
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sed "s#/usr/local/bin/pension-gateway#$bin#g" deploy/pension-gateway.service \
    > "$work/pension-gateway.service"
grep -q "^ExecStart=$bin serve --config " "$work/pension-gateway.service"

set +e
out="$(systemd-analyze verify "$work/pension-gateway.service" 2>&1)"
rc=$?
set -e
if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "systemd-analyze verify deploy/pension-gateway.service (exit $rc):" >&2
    echo "$out" >&2
    exit 1
fi
echo "deploy/pension-gateway.service: systemd-analyze verify ok"
