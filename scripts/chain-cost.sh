#!/usr/bin/env bash
# What the tamper-evident audit chain costs on the request path: one binary, `serve --demo` on a
# fresh SQLite file per run (log level warn), with `audit.chain` on and off in alternating
# rounds, each measured by `bench http --concurrency 16 --requests N --warmup 2000
# --server-pid` (every answer's signature verified).
#
#   BIN=target/release/pension-gateway scripts/chain-cost.sh [rounds=6] [requests=20000]
#
# Prints one line per run: the round, the chain setting, the audit rows (all | chained), the
# throughput and the server's CPU per request. Only 127.0.0.1:8080 and :9100 (the demo's
# listeners, which must be free); stops only the gateway it started.
set -euo pipefail
rounds=${1:-6}
requests=${2:-20000}
bin=$(realpath "${BIN:-target/release/pension-gateway}")
for round in $(seq "$rounds"); do
    for chain in true false; do
        dir=$(mktemp -d)
        (
            cd "$dir"
            env -i PATH=/usr/bin:/bin HOME="$dir" GATEWAY__LOG__LEVEL=warn \
                GATEWAY__AUDIT__CHAIN=$chain "$bin" serve --demo >serve.log 2>&1 &
            pid=$!
            trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
            for _ in $(seq 100); do
                curl -sf http://127.0.0.1:9100/readyz >/dev/null && break
                sleep 0.1
            done
            out=$("$bin" --demo bench http --concurrency 16 --requests "$requests" \
                --warmup 2000 --server-pid "$pid" 2>&1)
            rows=$(sqlite3 data/gateway.db "SELECT count(*) || ' | ' || count(seq) FROM query_audit")
            rate=$(grep -E '^throughput' <<<"$out" | awk '{print $2}')
            cpu=$(grep -E '^server CPU  ' <<<"$out" | awk '{print $3}')
            echo "round=$round chain=$chain rows=$rows req_per_s=$rate server_cpu_us=$cpu"
        )
        rm -rf "$dir"
    done
done
