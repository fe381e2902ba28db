#!/usr/bin/env bash
# Redis on 127.0.0.1:6379: TEST_REDIS_URL.
set -euo pipefail
url="${TEST_REDIS_URL:-redis://127.0.0.1:6379}"
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "== Redis is not answering on 127.0.0.1:6379; starting it" >&2
  if ! command -v redis-server >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  fi
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >&2
  for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis did not come up within 30 s" >&2; exit 1; }
fi
echo "== Redis ready; TEST_REDIS_URL=${url}" >&2
echo "export TEST_REDIS_URL='${url}'"
