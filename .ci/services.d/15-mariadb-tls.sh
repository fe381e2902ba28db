#!/usr/bin/env bash
# A second MariaDB that accepts TLS connections only, on 127.0.0.1:13307 (root, empty password,
# database `test`), with a CA and a server certificate generated for the run:
# TEST_MYSQL_TLS_URL (TLS parameters included) and TEST_MYSQL_TLS_CA_FILE (the CA, PEM).
#
# Everything lives under $PG_CI_DIR/mariadb-tls/: data directory, socket, pid file, log and the
# certificates. A second run reuses a server that already answers over TLS.
set -euo pipefail
port=13307
dir="${PG_CI_DIR:-/tmp/pension-gateway-ci}/mariadb-tls"
certs="$dir/certs"
data="$dir/data"
mkdir -p "$certs"
url="mysql://root@127.0.0.1:${port}/test?require_ssl=true"

tls_up() {
  mariadb --protocol=tcp -h 127.0.0.1 -P "$port" -u root --ssl --ssl-ca="$certs/ca.pem" \
    --ssl-verify-server-cert -e 'SELECT 1' >/dev/null 2>&1
}

if ! [ -x /usr/sbin/mariadbd ]; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >&2
fi
command -v openssl >/dev/null || {
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >&2
}

if ! [ -s "$certs/ca.pem" ] || ! [ -s "$certs/server.pem" ] || ! [ -s "$certs/server.key" ] \
  || ! tls_up; then
  # mariadbd runs as `mysql` when started by root (it refuses to run as root without --user).
  user_opt=()
  if [ "$(id -u)" -eq 0 ]; then
    user_opt=(--user=mysql)
  fi
  # Stop a previous instance of ours that no longer answers (its pid file is in our directory).
  if [ -s "$dir/mariadbd.pid" ]; then
    old="$(cat "$dir/mariadbd.pid")"
    if kill -0 "$old" 2>/dev/null && grep -q "$dir" "/proc/$old/cmdline" 2>/dev/null; then
      echo "== stopping the unresponsive TLS MariaDB (pid $old)" >&2
      kill "$old"
      for _ in $(seq 1 30); do kill -0 "$old" 2>/dev/null || break; sleep 1; done
    fi
  fi
  if ! [ -s "$certs/ca.pem" ] || ! [ -s "$certs/server.pem" ] || ! [ -s "$certs/server.key" ]; then
    echo "== generating a CA and a server certificate for 127.0.0.1 / localhost" >&2
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=pension-gateway test CA" \
      -keyout "$certs/ca.key" -out "$certs/ca.pem" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$certs/server.key" -out "$certs/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$certs/server.ext"
    openssl x509 -req -in "$certs/server.csr" -CA "$certs/ca.pem" -CAkey "$certs/ca.key" \
      -CAcreateserial -days 3650 -extfile "$certs/server.ext" -out "$certs/server.pem" 2>/dev/null
    # The CA is a public file: not writable by group or others (the gateway checks that).
    chmod 0644 "$certs/ca.pem" "$certs/server.pem"
    chmod 0600 "$certs/ca.key"
    chmod 0640 "$certs/server.key"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    chown -R mysql:mysql "$dir" 2>/dev/null || true
    chown root:root "$certs/ca.pem" "$certs/ca.key"
    chmod 0755 "$dir" "$certs"
  fi
  if ! [ -d "$data/mysql" ]; then
    echo "== initialising the TLS MariaDB data directory" >&2
    mkdir -p "$data"
    [ "$(id -u)" -eq 0 ] && chown mysql:mysql "$data"
    mariadb-install-db --no-defaults "${user_opt[@]}" --datadir="$data" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 \
      || { cat "$dir/install.log" >&2; exit 1; }
  fi
  echo "== starting MariaDB with TLS only on 127.0.0.1:${port}" >&2
  # --no-defaults: none of the system instance's settings (port, socket, datadir) leak in.
  /usr/sbin/mariadbd --no-defaults "${user_opt[@]}" --datadir="$data" \
    --bind-address=127.0.0.1 --port="$port" --socket="$dir/mariadbd.sock" \
    --pid-file="$dir/mariadbd.pid" --log-error="$dir/mariadbd.log" \
    --skip-name-resolve --innodb-buffer-pool-size=32M --innodb-log-file-size=16M \
    --ssl-ca="$certs/ca.pem" --ssl-cert="$certs/server.pem" --ssl-key="$certs/server.key" \
    --require-secure-transport=ON </dev/null >/dev/null 2>&1 &
  disown || true
  for _ in $(seq 1 120); do tls_up && break; sleep 0.5; done
  tls_up || { echo "TLS MariaDB did not come up within 60 s; see $dir/mariadbd.log" >&2; tail -20 "$dir/mariadbd.log" >&2 || true; exit 1; }
fi
mariadb --protocol=tcp -h 127.0.0.1 -P "$port" -u root --ssl --ssl-ca="$certs/ca.pem" \
  --ssl-verify-server-cert -e "CREATE DATABASE IF NOT EXISTS test"
echo "== MariaDB (TLS only) ready; TEST_MYSQL_TLS_URL=${url}" >&2
echo "export TEST_MYSQL_TLS_URL='${url}'"
echo "export TEST_MYSQL_TLS_CA_FILE='${certs}/ca.pem'"
