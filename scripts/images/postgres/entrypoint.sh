#!/bin/bash
# Entrypoint of kmsdb-test/postgres: the environment contract of the official postgres image, on Debian's
# PostgreSQL 15.
#
#   POSTGRES_PASSWORD (required unless POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_USER (default postgres),
#   POSTGRES_DB (default POSTGRES_USER), POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD (default scram-sha-256),
#   PGDATA, scripts in /docker-entrypoint-initdb.d (*.sh, *.sql, *.sql.gz); POSTGRES_X_FILE reads X from a file.
#
# Every TCP connection must give a password (scram-sha-256, passwords stored as SCRAM verifiers); only the unix
# socket inside the container trusts local users. As in the official image, the first start runs a temporary
# server without TCP to set up, then the real one: each logs "database system is ready to accept connections",
# the two lines testcontainers' PostgreSQL module waits for.
set -euo pipefail

log() { printf '%s [Entrypoint]: %s\n' "$(date -u '+%F %T UTC')" "$*"; }
fail() {
  printf '%s [Entrypoint] ERROR: %s\n' "$(date -u '+%F %T UTC')" "$*" >&2
  exit 1
}

# file_env NAME [DEFAULT]: NAME from the environment, or from the file named by NAME_FILE.
file_env() {
  local n=$1 f="${1}_FILE" v=${2:-}
  if [[ -n "${!n:-}" && -n "${!f:-}" ]]; then
    fail "both $n and $f are set (they are exclusive)"
  fi
  if [[ -n "${!n:-}" ]]; then
    v=${!n}
  elif [[ -n "${!f:-}" ]]; then
    [[ -r "${!f}" ]] || fail "$f=${!f}: file not readable"
    v=$(<"${!f}")
  fi
  export "$n"="$v"
  unset "$f"
}

if [[ "${1:-}" == -* ]]; then
  set -- postgres "$@"
fi
# Not a server start: another command, or the server asked for help or its version (as the official image).
want_help() {
  local a
  for a in "$@"; do
    case "$a" in -'?' | --help | --describe-config | -V | --version | -C | -C*) return 0 ;; esac
  done
  return 1
}
if [[ "${1:-}" != postgres ]] || want_help "$@"; then
  exec "$@"
fi
export PGDATA=${PGDATA:-/var/lib/postgresql/data}

if [[ $(id -u) == 0 ]]; then
  install -d -o postgres -g postgres -m 0700 "$PGDATA"
  install -d -o postgres -g postgres -m 2775 /var/run/postgresql
  # Same process (PID 1 stays the server in the end), as the postgres user.
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  file_env POSTGRES_PASSWORD
  file_env POSTGRES_USER postgres
  file_env POSTGRES_DB "$POSTGRES_USER"
  file_env POSTGRES_INITDB_ARGS
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
  if [[ -z "$POSTGRES_PASSWORD" && "$auth" != trust ]]; then
    fail "Database is uninitialized and superuser password is not specified: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust to allow every connection without a password)"
  fi
  if [[ "$auth" == trust ]]; then
    log "WARNING: POSTGRES_HOST_AUTH_METHOD=trust: TCP connections need no password"
  fi

  log "initdb in $PGDATA"
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  # shellcheck disable=SC2086
  initdb --username="$POSTGRES_USER" --pwfile="$pwfile" --auth-local=trust --auth-host="$auth" \
    $POSTGRES_INITDB_ARGS >/dev/null
  rm -f "$pwfile"
  printf '\nhost all all all %s\n' "$auth" >>"$PGDATA/pg_hba.conf"
  printf "\nlisten_addresses = '*'\npassword_encryption = 'scram-sha-256'\n" >>"$PGDATA/postgresql.auto.conf"

  log "Starting temporary server"
  pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
  psql=(psql -X -v ON_ERROR_STOP=1 --no-password --no-psqlrc -h /var/run/postgresql -p 5432 -U "$POSTGRES_USER")
  if [[ "$POSTGRES_DB" != postgres ]]; then
    "${psql[@]}" -d postgres -v db="$POSTGRES_DB" -q <<<"CREATE DATABASE :\"db\";" >/dev/null
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
      "${psql[@]}" -d "$POSTGRES_DB" -f "$f"
      ;;
    *.sql.gz)
      log "running $f"
      gzip -dc "$f" | "${psql[@]}" -d "$POSTGRES_DB"
      ;;
    *) log "ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  log "PostgreSQL init process complete; ready for start up."
fi

exec "$@"
