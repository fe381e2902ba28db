#!/usr/bin/env bash
# Checks the Prometheus alert rules: `promtool check rules` (syntax, PromQL) and
# `promtool test rules` (deploy/prometheus/alerts_test.yml), and that every alert of alerts.yml
# has a test case in which it fires. promtool comes with Debian's `prometheus` package, installed
# here when missing (services are not started by the install; only promtool is used).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v promtool >/dev/null; then
    echo "promtool missing: apt-get install prometheus" >&2
    apt-get update -qq >&2
    # RUNLEVEL=1: the package's init script must not start a Prometheus server here.
    RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends prometheus >&2
fi

rules=deploy/prometheus/alerts.yml
tests=deploy/prometheus/alerts_test.yml
promtool check rules "$rules"
(cd "$(dirname "$tests")" && promtool test rules "$(basename "$tests")")

# Every alert must fire somewhere: an `alertname: X` line followed by a non-empty exp_alerts.
missing=""
for alert in $(sed -n 's/^ *- alert: *\([A-Za-z0-9_]*\).*/\1/p' "$rules"); do
    if ! awk -v a="$alert" '
        $0 ~ "alertname: " a "$" { seen = 1; next }
        seen && /exp_alerts:/ { if ($0 !~ /\[\]/) found = 1; seen = 0 }
        END { exit found ? 0 : 1 }' "$tests"; then
        missing="$missing $alert"
    fi
done
if [ -n "$missing" ]; then
    echo "alerts with no test case that fires them:$missing" >&2
    exit 1
fi
echo "deploy/prometheus: rules checked, every alert fires in a test"
