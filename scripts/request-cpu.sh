#!/usr/bin/env bash
# Gateway CPU per answered request against the crypto floor, measured in one sitting.
#
#   scripts/request-cpu.sh sqlite|mysql [group_commit=true|false] [requests=20000]
#
# Starts `serve --demo` (log level warn) on a fresh database, warms it with 2,000 requests, then
# reads the gateway's utime+stime (and the MariaDB server's, for mysql) from /proc/<pid>/stat
# before and after `bench http --concurrency 16 --requests N`, and measures the crypto floor
# (1/sign_rate + 1/verify_rate of `bench crypto --engine fast --threads 1`) right after.
# Prints one line of key=value pairs. Only 127.0.0.1; stops only the gateway it started.
set -euo pipefail
backend=${1:?sqlite|mysql}
group_commit=${2:-true}
requests=${3:-20000}
bin=${BIN:-target/release/pension-gateway}
port=${PORT:-18471}
mysql_server=${MYSQL_SERVER:-mysql://root@127.0.0.1:3306}
tmp=$(mktemp -d)
tick=$(getconf CLK_TCK)

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

case $backend in
  sqlite) url="sqlite://$tmp/bench.db" ;;
  mysql)
    db="pg_cpu_$$_$RANDOM"
    mysql -h127.0.0.1 -uroot -e "CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
    url="$mysql_server/$db"
    mariadb_pid=$(ss -ltnp | awk '/127.0.0.1:3306 /{print}' | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
    ;;
  *) echo "backend: sqlite|mysql" >&2; exit 2 ;;
esac
head -c 32 /dev/urandom | base64 >"$tmp/admin.token"; chmod 600 "$tmp/admin.token"

GATEWAY__DATABASE__URL=$url GATEWAY__DATABASE__GROUP_COMMIT=$group_commit \
GATEWAY__LOG__LEVEL=warn GATEWAY__SERVER__LISTEN=127.0.0.1:$port \
GATEWAY__SERVER__OPS_LISTEN=127.0.0.1:$((port + 1)) GATEWAY__SERVER__ADMIN_LISTEN=127.0.0.1:$((port + 2)) \
GATEWAY__SERVER__ADMIN_TOKEN_FILE=$tmp/admin.token \
  "$bin" serve --demo >"$tmp/gateway.log" 2>&1 &
gw=$!
cleanup() {
  kill "$gw" 2>/dev/null || true; wait "$gw" 2>/dev/null || true
  if [ -n "${db:-}" ]; then mysql -h127.0.0.1 -uroot -e "DROP DATABASE IF EXISTS $db" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
for _ in $(seq 1 300); do curl -fs "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.2; done

api="http://127.0.0.1:$port/v1/pension/account"
"$bin" bench http --url "$api" --concurrency 16 --requests 2000 --output json >/dev/null
g0=$(cpu_ticks "$gw"); m0=${mariadb_pid:+$(cpu_ticks "$mariadb_pid")}
out=$("$bin" bench http --url "$api" --concurrency 16 --requests "$requests" --output json)
g1=$(cpu_ticks "$gw"); m1=${mariadb_pid:+$(cpu_ticks "$mariadb_pid")}
# The floor is counted in the measuring thread's CPU time (`*_per_cpu_sec`), so a busy machine
# does not inflate it; the share of a core the bench got is printed for context only.
crypto=$(/usr/bin/time -o "$tmp/time" -f "%U %S %e" "$bin" bench crypto --engine fast --threads 1 --seconds 2 --output json)
share=$(awk '{print ($1 + $2) / $3}' "$tmp/time")

python3 - "$out" "$crypto" "$g0" "$g1" "${m0:-0}" "${m1:-0}" "$tick" "$backend" "$group_commit" "$share" <<'EOF'
import json, sys
out, crypto = json.loads(sys.argv[1]), json.loads(sys.argv[2])
g0, g1, m0, m1, tick = (int(x) for x in sys.argv[3:8])
n = out["requests"]
e = crypto["rounds"][0]["engines"][0]
share = min(1.0, float(sys.argv[10]))
floor = 1e6 / e["sign_per_cpu_sec"] + 1e6 / e["verify_per_cpu_sec"]
gw = (g1 - g0) / tick * 1e6 / n
db = (m1 - m0) / tick * 1e6 / n
lat = {k: out[k] for k in ("p50_ms", "p99_ms")}
print(f"backend={sys.argv[8]} group_commit={sys.argv[9]} requests={n} "
      f"req_s={out['req_per_sec']:.0f} floor_us={floor:.1f} core_share={share:.2f} gateway_us={gw:.1f} "
      f"ratio={gw / floor:.2f} mariadbd_us={db:.1f} "
      f"floor_share={out['req_per_sec'] / (2e6 / floor) * 100:.1f}% "
      f"statuses={out.get('by_status')} bad_sig={out.get('bad_signatures')} latency={json.dumps(lat)}")
EOF
