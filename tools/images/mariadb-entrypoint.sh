#!/bin/bash
# Entrypoint of the local MariaDB image (Debian's mariadb-server), honouring
# the part of the upstream `mariadb` image's environment the chart uses:
#   MARIADB_ROOT_PASSWORD  root password (required on first start)
#   MARIADB_DATABASE       database created on first start
#   MARIADB_USER / MARIADB_PASSWORD  user created on first start, ALL on that database
#   MARIADB_AUTO_UPGRADE   when set, mariadb-upgrade runs if the data is older than the server
# Like upstream: arguments starting with "-" are mariadbd options; the data
# directory is initialised only when it holds no system tables; runs as
# whatever non-root user the pod says (uid 999 here, `mysql`).
set -euo pipefail

log() { printf '%s [Entrypoint]: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

if [[ "${1:-}" == -* || $# -eq 0 ]]; then
  set -- mariadbd "$@"
fi
if [[ "$1" != mariadbd && "$1" != mysqld ]]; then
  exec "$@"
fi

DATADIR=/var/lib/mysql
SOCKET=/run/mysqld/mysqld.sock
server_version="$(mariadbd --version | sed -n 's/.*Ver \([0-9.]*\)-.*/\1/p')"

temp_server_start() {
  "$@" --skip-networking --socket="${SOCKET}" --skip-slave-start --wsrep-on=OFF >/tmp/mariadb-init.log 2>&1 &

  for _ in $(seq 1 60); do
    if mariadb-admin --socket="${SOCKET}" -uroot ${ROOTPW:+-p"${ROOTPW}"} ping >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  cat /tmp/mariadb-init.log >&2
  log "the temporary server did not start"
  exit 1
}
temp_server_stop() {
  mariadb-admin --socket="${SOCKET}" -uroot ${ROOTPW:+-p"${ROOTPW}"} shutdown
}
sql_escape() { printf '%s' "$1" | sed -e "s/\\\\/\\\\\\\\/g" -e "s/'/\\\\'/g"; }

ROOTPW=""
if [[ ! -d "${DATADIR}/mysql" ]]; then
  : "${MARIADB_ROOT_PASSWORD:?MARIADB_ROOT_PASSWORD is required to initialise the database}"
  log "initialising ${DATADIR} (MariaDB ${server_version})"
  mariadb-install-db --datadir="${DATADIR}" --auth-root-authentication-method=normal \
    --skip-test-db --skip-name-resolve >/tmp/mariadb-install.log 2>&1 || { cat /tmp/mariadb-install.log >&2; exit 1; }
  temp_server_start "$@"
  {
    echo "SET @@SESSION.SQL_LOG_BIN=0;"
    echo "DELETE FROM mysql.user WHERE user='' OR (user='root' AND host NOT IN ('localhost'));"
    echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '$(sql_escape "${MARIADB_ROOT_PASSWORD}")';"
    echo "CREATE USER 'root'@'%' IDENTIFIED BY '$(sql_escape "${MARIADB_ROOT_PASSWORD}")';"
    echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
    if [[ -n "${MARIADB_DATABASE:-}" ]]; then
      echo "CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE}\`;"
    fi
    if [[ -n "${MARIADB_USER:-}" ]]; then
      echo "CREATE USER '$(sql_escape "${MARIADB_USER}")'@'%' IDENTIFIED BY '$(sql_escape "${MARIADB_PASSWORD:-}")';"
      if [[ -n "${MARIADB_DATABASE:-}" ]]; then
        echo "GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '$(sql_escape "${MARIADB_USER}")'@'%';"
      fi
    fi
    echo "FLUSH PRIVILEGES;"
  } | mariadb --socket="${SOCKET}" -uroot --protocol=socket
  ROOTPW="${MARIADB_ROOT_PASSWORD}"
  temp_server_stop
  wait
  log "initialised; database '${MARIADB_DATABASE:-}' and user '${MARIADB_USER:-}' created"
elif [[ -n "${MARIADB_AUTO_UPGRADE:-}" ]]; then
  data_version="$(sed -n 's/^\([0-9.]*\).*/\1/p' "${DATADIR}/mysql_upgrade_info" 2>/dev/null || true)"
  if [[ "${data_version}" != "${server_version}" ]]; then
    log "data ${data_version:-unknown} != server ${server_version}: running mariadb-upgrade"
    ROOTPW="${MARIADB_ROOT_PASSWORD:-}"
    temp_server_start "$@"
    mariadb-upgrade --socket="${SOCKET}" -uroot ${ROOTPW:+-p"${ROOTPW}"} >&2
    temp_server_stop
    wait
  fi
fi

log "starting MariaDB ${server_version}"
exec "$@"
