#!/usr/bin/env bash
# Headless Chromium for the HTML-report check (tests/it/ops/bench_reports.rs): TEST_CHROMIUM_BIN.
# Nothing to start: the test runs the browser on a file:// page with networking off.
set -euo pipefail
bin="${TEST_CHROMIUM_BIN:-$(command -v chromium || true)}"
if [ -z "$bin" ]; then
  echo "== Chromium is not installed; installing Debian's chromium" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  bin="$(command -v chromium)"
fi
"$bin" --version >&2
echo "== Chromium ready; TEST_CHROMIUM_BIN=${bin}" >&2
echo "export TEST_CHROMIUM_BIN='${bin}'"
