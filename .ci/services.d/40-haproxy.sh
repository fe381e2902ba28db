#!/usr/bin/env bash
# HAProxy for the fleet test (`cargo test --test alone fleet::`): only the binary is needed —
# the test writes its own configuration into a temporary directory and starts HAProxy on a free
# loopback port. Exports TEST_HAPROXY_BIN.
set -euo pipefail
bin="${TEST_HAPROXY_BIN:-}"
if [ -z "$bin" ]; then
  bin="$(command -v haproxy || true)"
fi
if [ -z "$bin" ] && [ -x /usr/sbin/haproxy ]; then
  bin=/usr/sbin/haproxy
fi
if [ -z "$bin" ]; then
  echo "== haproxy is not installed; installing it" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy >&2
  # The package starts a system instance on its default configuration; the test does not use it.
  bin="$(command -v haproxy || echo /usr/sbin/haproxy)"
fi
"$bin" -v >/dev/null 2>&1 || { echo "$bin does not run" >&2; exit 1; }
echo "== HAProxy ready; TEST_HAPROXY_BIN=${bin} ($("$bin" -v | head -1))" >&2
echo "export TEST_HAPROXY_BIN='${bin}'"
