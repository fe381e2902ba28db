#!/usr/bin/env bash
# MariaDB on 127.0.0.1:3306 (root, empty password, database `test`): TEST_MYSQL_URL.
set -euo pipefail
url="${TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
mysql_up() { mysqladmin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }
if ! mysql_up; then
  echo "== MariaDB is not answering on 127.0.0.1:3306; starting it" >&2
  if ! [ -x /usr/sbin/mariadbd ]; then
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >&2
  fi
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  if [ ! -d /var/lib/mysql/mysql ]; then
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >&2
  fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql
  for _ in $(seq 1 60); do mysql_up && break; sleep 1; done
  mysql_up || { echo "MariaDB did not come up within 60 s" >&2; exit 1; }
fi
mysql --protocol=tcp -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS test"
echo "== MariaDB ready; TEST_MYSQL_URL=${url}" >&2
echo "export TEST_MYSQL_URL='${url}'"
