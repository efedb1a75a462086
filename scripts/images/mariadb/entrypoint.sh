#!/bin/bash
# Entrypoint of kmsdb-test/mariadb: the environment contract of the official mariadb image, on Debian's MariaDB.
#
#   MARIADB_ROOT_PASSWORD / MARIADB_ALLOW_EMPTY_ROOT_PASSWORD / MARIADB_RANDOM_ROOT_PASSWORD (one is required)
#   MARIADB_ROOT_HOST (default %), MARIADB_DATABASE, MARIADB_USER + MARIADB_PASSWORD (all privileges on
#   MARIADB_DATABASE), scripts in /docker-entrypoint-initdb.d (*.sh, *.sql, *.sql.gz).
#   Each MARIADB_X may be given as MYSQL_X (MARIADB_X wins) and as X_FILE (the value read from that file).
#
# Accounts are created with passwords (mysql_native_password); anonymous accounts are dropped, and root exists
# only as root@localhost and root@MARIADB_ROOT_HOST.
# The first start initialises the data directory with a server that listens on no TCP port; the server that
# then serves port 3306 logs its readiness line, followed by the one testcontainers' MariaDB module waits for
# (`port: 3306  mariadb.org binary distribution`: a Debian build's own line ends with its comment instead).
set -euo pipefail

log() { printf '%s [Note] [Entrypoint]: %s\n' "$(date -u '+%F %T')" "$*"; }
fail() {
  printf '%s [ERROR] [Entrypoint]: %s\n' "$(date -u '+%F %T')" "$*" >&2
  exit 1
}

# env_var NAME: $MARIADB_NAME, else $MYSQL_NAME, else the content of the file named by *_FILE.
env_var() {
  local n
  for n in "MARIADB_$1" "MYSQL_$1"; do
    if [[ -n "${!n:-}" ]]; then
      printf '%s' "${!n}"
      return
    fi
    local f="${n}_FILE"
    if [[ -n "${!f:-}" ]]; then
      [[ -r "${!f}" ]] || fail "$f=${!f}: file not readable"
      cat "${!f}"
      return
    fi
  done
}

# sql_string S: S as a quoted SQL string literal (backslash escapes, the server's default sql_mode).
sql_string() {
  local s=${1//\\/\\\\}
  s=${s//\'/\\\'}
  printf "'%s'" "$s"
}
sql_ident() { printf '`%s`' "${1//\`/\`\`}"; }

if [[ "${1:-}" == -* ]]; then
  set -- mariadbd "$@"
fi
if [[ "${1:-}" != mariadbd && "${1:-}" != mysqld ]]; then
  exec "$@"
fi
shift
SERVER=(mariadbd --user=mysql --datadir=/var/lib/mysql "$@")
SOCKET=/run/mysqld/mysqld.sock
install -d -o mysql -g mysql -m 0755 /run/mysqld
chown mysql:mysql /var/lib/mysql

if [[ ! -d /var/lib/mysql/mysql ]]; then
  root_pw=$(env_var ROOT_PASSWORD)
  allow_empty=$(env_var ALLOW_EMPTY_ROOT_PASSWORD)
  random_pw=$(env_var RANDOM_ROOT_PASSWORD)
  root_host=$(env_var ROOT_HOST)
  root_host=${root_host:-%}
  database=$(env_var DATABASE)
  user=$(env_var USER)
  password=$(env_var PASSWORD)
  if [[ -z "$root_pw" && -z "$allow_empty" && -z "$random_pw" ]]; then
    fail "Database is uninitialized and password option is not specified: set one of MARIADB_ROOT_PASSWORD, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
  fi
  if [[ "$user" == root ]]; then
    fail "MARIADB_USER=root: MARIADB_USER and MARIADB_PASSWORD are for a regular user, not root (use MARIADB_ROOT_PASSWORD)"
  fi
  if [[ -n "$user" && -z "$password" ]]; then
    fail "MARIADB_USER is set but MARIADB_PASSWORD is not: the user would have no password"
  fi
  if [[ -z "$root_pw" && -n "$random_pw" ]]; then
    root_pw=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
    log "GENERATED ROOT PASSWORD: $root_pw"
  fi

  log "Initializing database files"
  mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --auth-root-authentication-method=normal \
    --skip-name-resolve --cross-bootstrap >/dev/null

  log "Starting temporary server"
  "${SERVER[@]}" --skip-networking --socket="$SOCKET" &
  pid=$!
  for _ in $(seq 1 120); do
    mariadb --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || fail "temporary server exited"
    sleep 0.5
  done
  mariadb --protocol=socket --socket="$SOCKET" -uroot -e 'SELECT 1' >/dev/null 2>&1 || fail "temporary server does not answer"

  sql="SET @@SESSION.SQL_LOG_BIN=0;
DELETE FROM mysql.global_priv WHERE User = '' OR (User = 'root' AND Host NOT IN ('localhost'));
FLUSH PRIVILEGES;"
  if [[ -n "$root_pw" ]]; then
    sql+="
SET PASSWORD FOR 'root'@'localhost' = PASSWORD($(sql_string "$root_pw"));"
  fi
  if [[ "$root_host" != localhost ]]; then
    sql+="
CREATE USER 'root'@$(sql_string "$root_host") IDENTIFIED BY $(sql_string "$root_pw");
GRANT ALL ON *.* TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@$(sql_string "$root_host") WITH GRANT OPTION;"
  fi
  if [[ -n "$database" ]]; then
    sql+="
CREATE DATABASE IF NOT EXISTS $(sql_ident "$database");"
  fi
  if [[ -n "$user" ]]; then
    sql+="
CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$password");"
    if [[ -n "$database" ]]; then
      sql+="
GRANT ALL ON $(sql_ident "$database").* TO $(sql_string "$user")@'%';"
    fi
  fi
  # The password reaches the client through a file only root can read, never the command line.
  cnf=$(mktemp)
  chmod 600 "$cnf"
  printf '[client]\nuser=root\nsocket=%s\n' "$SOCKET" >"$cnf"
  mariadb --defaults-extra-file="$cnf" --protocol=socket <<<"$sql" || fail "setting up accounts failed"
  if [[ -n "$root_pw" ]]; then
    printf 'password=%s\n' "$root_pw" >>"$cnf"
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    [[ -e "$f" ]] || continue
    case "$f" in
    *.sh)
      log "running $f"
      # shellcheck disable=SC1090
      if [[ -x "$f" ]]; then "$f"; else . "$f"; fi
      ;;
    *.sql)
      log "running $f"
      mariadb --defaults-extra-file="$cnf" --protocol=socket ${database:+"$database"} <"$f"
      ;;
    *.sql.gz)
      log "running $f"
      gzip -dc "$f" | mariadb --defaults-extra-file="$cnf" --protocol=socket ${database:+"$database"}
      ;;
    *) log "ignoring $f" ;;
    esac
  done
  rm -f "$cnf"

  log "Stopping temporary server"
  kill -TERM "$pid"
  wait "$pid" || fail "temporary server did not stop cleanly"
  log "Temporary server stopped; MariaDB init process done. Ready for start up."
fi

# The server's log passes through unchanged; after its own readiness line for port 3306 comes the line the
# testcontainers MariaDB module waits for (its wait strategy matches the comment of mariadb.org's builds).
ready_watch() {
  local line
  while IFS= read -r line; do
    printf '%s\n' "$line"
    if [[ "$line" == "Version: '"*"  port: 3306  "* ]]; then
      printf "%s\n" "${line%  port: 3306  *}  port: 3306  mariadb.org binary distribution (readiness line for testcontainers; this build: ${line##*  port: 3306  })"
    fi
  done
}
"${SERVER[@]}" > >(ready_watch) 2>&1 &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null' TERM INT QUIT
rc=0
wait "$pid" || rc=$?
# A signal interrupts the first wait; wait again for the server's own exit.
if kill -0 "$pid" 2>/dev/null; then
  rc=0
  wait "$pid" || rc=$?
fi
exit "$rc"
