#!/usr/bin/env bash
# Redis speaking only TLS on 127.0.0.1:16380, with a CA and server certificate generated for the
# run under $PG_CI_DIR/redis-tls/: TEST_REDIS_TLS_URL, TEST_REDIS_TLS_CA_FILE.
set -euo pipefail
port=16380
dir="${PG_CI_DIR:-/tmp/pension-gateway-ci}/redis-tls"
mkdir -p "$dir"
ca="$dir/ca.pem"
tls_up() {
  [ -s "$ca" ] && redis-cli --tls --cacert "$ca" -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG
}
if ! tls_up; then
  echo "== Redis TLS is not answering on 127.0.0.1:$port; starting it" >&2
  if ! command -v redis-server >/dev/null || ! command -v openssl >/dev/null; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server openssl >&2
  fi
  # A stale server from an earlier run (certificates since replaced) is stopped by its pid file.
  if [ -s "$dir/redis.pid" ] && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null; then
    kill "$(cat "$dir/redis.pid")" || true
    sleep 1
  fi
  # A CA, and a server certificate for 127.0.0.1 and localhost signed by it (EC P-256).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=pension-gateway test Redis CA" -keyout "$dir/ca.key" -out "$ca" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=127.0.0.1" -keyout "$dir/server.key" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$ca" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 30 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
  chmod 600 "$dir/ca.key" "$dir/server.key"
  chmod 644 "$ca"
  redis-server --daemonize yes --bind 127.0.0.1 --port 0 --tls-port "$port" \
    --tls-cert-file "$dir/server.pem" --tls-key-file "$dir/server.key" \
    --tls-ca-cert-file "$ca" --tls-auth-clients no \
    --save "" --appendonly no --dir "$dir" \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
  for _ in $(seq 1 30); do tls_up && break; sleep 1; done
  tls_up || { echo "Redis TLS did not come up within 30 s (see $dir/redis.log)" >&2; exit 1; }
fi
echo "== Redis TLS ready on 127.0.0.1:$port; CA $ca" >&2
echo "export TEST_REDIS_TLS_URL='rediss://127.0.0.1:$port'"
echo "export TEST_REDIS_TLS_CA_FILE='$ca'"
