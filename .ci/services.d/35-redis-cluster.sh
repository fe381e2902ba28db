#!/usr/bin/env bash
# A Redis Cluster of three masters (no replicas) on 127.0.0.1:17001-17003, data and nodes.conf
# under $PG_CI_DIR/redis-cluster/: TEST_REDIS_CLUSTER_NODES. Idempotent: a cluster answering
# cluster_state:ok is reused; a node that is down is started again from its own directory (its
# nodes.conf brings it back into the cluster); a cluster never created is created.
set -euo pipefail
ports=(17001 17002 17003)
base="${PG_CI_DIR:-/tmp/pension-gateway-ci}/redis-cluster"
mkdir -p "$base"
state_ok() {
  redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null | tr -d '\r' | grep -qx 'cluster_state:ok'
}
all_ok() { for p in "${ports[@]}"; do state_ok "$p" || return 1; done; }
if ! all_ok; then
  echo "== Redis Cluster is not ok on 127.0.0.1:${ports[0]}-${ports[2]}; starting it" >&2
  if ! command -v redis-server >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >&2
  fi
  for p in "${ports[@]}"; do
    if ! redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1; then
      mkdir -p "$base/$p"
      redis-server --daemonize yes --bind 127.0.0.1 --port "$p" \
        --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 2000 \
        --save "" --appendonly no --dir "$base/$p" \
        --pidfile "$base/$p/redis.pid" --logfile "$base/$p/redis.log" >&2
    fi
  done
  for p in "${ports[@]}"; do
    for _ in $(seq 1 30); do redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null 2>&1 && break; sleep 1; done
    redis-cli -h 127.0.0.1 -p "$p" ping >/dev/null || { echo "Redis node $p did not come up (see $base/$p/redis.log)" >&2; exit 1; }
  done
  # Slots never assigned: a fresh set of nodes, create the cluster.
  assigned="$(redis-cli -h 127.0.0.1 -p "${ports[0]}" cluster info | tr -d '\r' | sed -n 's/^cluster_slots_assigned://p')"
  if [ "${assigned:-0}" = "0" ]; then
    redis-cli --cluster create "${ports[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes >&2
  fi
  for _ in $(seq 1 60); do all_ok && break; sleep 1; done
  all_ok || { echo "Redis Cluster did not reach cluster_state:ok within 60 s (logs under $base)" >&2; exit 1; }
fi
echo "== Redis Cluster ready on 127.0.0.1:${ports[0]}-${ports[2]}" >&2
echo "export TEST_REDIS_CLUSTER_NODES='redis://127.0.0.1:17001,redis://127.0.0.1:17002,redis://127.0.0.1:17003'"
