#!/bin/sh
# Entry point of the e2e datastore image. Arguments that start with '-' are
# mariadbd options (the daemon passes the --ssl-* ones that way). An empty
# data directory (a new volume) is initialised first: root gets
# MYSQL_ROOT_PASSWORD from every host, MYSQL_DATABASE is created.
set -eu
if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- mariadbd "$@"
fi
mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld /var/lib/mysql
if [ ! -d /var/lib/mysql/mysql ]; then
  : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD is required}"
  echo "datastore: initialising /var/lib/mysql"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
  pw=$(printf '%s' "$MYSQL_ROOT_PASSWORD" | sed "s/'/''/g")
  {
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$pw';"
    echo "CREATE USER IF NOT EXISTS 'root'@'%' IDENTIFIED BY '$pw';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    [ -n "${MYSQL_DATABASE:-}" ] && echo "CREATE DATABASE IF NOT EXISTS \`$MYSQL_DATABASE\`;"
  } > /run/mysqld/init.sql
  chown mysql:mysql /run/mysqld/init.sql
  set -- "$@" --init-file=/run/mysqld/init.sql
fi
exec "$@" --user=mysql --bind-address=0.0.0.0
