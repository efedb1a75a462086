#!/usr/bin/env bash
# scripts/testdb.sh: make sure a PostgreSQL and a MariaDB (or MySQL) server answer for the tests, and that
# PostgreSQL enforces passwords for the test roles. Idempotent; run by `make test` before the tests.
#
#   With KMSDB_TEST_PG_ADMIN_DSN / KMSDB_TEST_MYSQL_ADMIN_DSN set, it only checks that those servers answer
#   (and creates the database kmsdb_test and the role group kmsdb_password_auth if missing).
#   Otherwise it uses the servers of this machine: starts them when installed but stopped, adds pg_hba.conf rules
#   that make members of the role group kmsdb_password_auth log in with scram-sha-256 (above the trust rules),
#   reloads, creates kmsdb_test on both engines, and proves that a wrong password is rejected on each.
#
# It never silently skips: when a server is missing it exits non-zero and says what to install or which variable to set.
set -euo pipefail
cd "$(dirname "$0")/.."

GROUP=kmsdb_password_auth
DB=kmsdb_test
did=()

die() {
  echo "testdb.sh: $*" >&2
  exit 1
}

howto_pg="install PostgreSQL (Debian/Ubuntu: apt-get install postgresql) or set KMSDB_TEST_PG_ADMIN_DSN=postgres://USER:PASSWORD@HOST:PORT/postgres?sslmode=disable (a superuser)"
howto_my="install MariaDB (Debian/Ubuntu: apt-get install mariadb-server) or set KMSDB_TEST_MYSQL_ADMIN_DSN='USER:PASSWORD@tcp(HOST:PORT)/' (go-sql-driver/mysql DSN of a user with CREATE USER and GRANT OPTION)"

# ---------------------------------------------------------------------------------------------------------------
# Servers given by environment variables: only check that they answer (done by a small Go program, since the
# MySQL DSN is in go-sql-driver syntax that the command line clients do not read).
if [[ -n "${KMSDB_TEST_PG_ADMIN_DSN:-}" || -n "${KMSDB_TEST_MYSQL_ADMIN_DSN:-}" ]]; then
  if [[ -z "${KMSDB_TEST_PG_ADMIN_DSN:-}" || -z "${KMSDB_TEST_MYSQL_ADMIN_DSN:-}" ]]; then
    echo "testdb.sh: only one of KMSDB_TEST_PG_ADMIN_DSN / KMSDB_TEST_MYSQL_ADMIN_DSN is set; the other engine uses its default (local server)" >&2
  fi
  exec go run ./internal/testdb/cmd/testdbcheck
fi

# ---------------------------------------------------------------------------------------------------------------
# PostgreSQL on this machine (127.0.0.1:5432).
PGHOST=127.0.0.1
PGPORT=5432

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" -t 2 >/dev/null 2>&1; }

# psql as the postgres superuser: over TCP (trust) when allowed, else over the socket as the postgres OS user.
export PGOPTIONS="-c client_min_messages=warning"

pgsql() {
  if psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1 </dev/null; then
    psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U postgres -d postgres -At "$@" </dev/null
  elif command -v runuser >/dev/null && id postgres >/dev/null 2>&1; then
    runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d postgres -At "$@" </dev/null
  else
    die "cannot log in to PostgreSQL at $PGHOST:$PGPORT as postgres; set KMSDB_TEST_PG_ADMIN_DSN to a superuser DSN"
  fi
}

command -v psql >/dev/null || die "no psql on PATH: $howto_pg"
if ! pg_up; then
  command -v pg_lsclusters >/dev/null || die "PostgreSQL does not answer at $PGHOST:$PGPORT and no pg_lsclusters: $howto_pg"
  cluster=$(pg_lsclusters -h | awk -v p="$PGPORT" '$3 == p {print $1, $2; exit}')
  [[ -n "$cluster" ]] || die "no PostgreSQL cluster on port $PGPORT (pg_lsclusters): $howto_pg"
  # shellcheck disable=SC2086
  pg_ctlcluster --skip-systemctl-redirect $cluster start || die "pg_ctlcluster $cluster start failed (see /var/log/postgresql/)"
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || die "PostgreSQL cluster $cluster started but does not answer at $PGHOST:$PGPORT"
  did+=("started PostgreSQL $cluster")
fi

hba=$(pgsql -c 'SHOW hba_file')
[[ -f "$hba" ]] || die "pg_hba.conf not found at '$hba' (SHOW hba_file)"
rules="local all +$GROUP scram-sha-256
host all +$GROUP 127.0.0.1/32 scram-sha-256
host all +$GROUP ::1/128 scram-sha-256"
marker="# kmsdb: test roles (members of $GROUP) must give a password; added by scripts/testdb.sh"
# Rebuild the file with our block first (before every other rule) and compare: idempotent, and repairs a
# block that someone moved below a trust rule.
tmp=$(mktemp)
{
  echo "$marker"
  echo "$rules"
  grep -vxF -e "$marker" -e "local all +$GROUP scram-sha-256" -e "host all +$GROUP 127.0.0.1/32 scram-sha-256" \
    -e "host all +$GROUP ::1/128 scram-sha-256" "$hba" || true
} >"$tmp"
if ! cmp -s "$tmp" "$hba"; then
  cp -p "$hba" "$hba.kmsdb.bak"
  cat "$tmp" >"$hba" # keep owner and mode of the original
  did+=("put scram-sha-256 rules for +$GROUP at the top of $hba (backup $hba.kmsdb.bak)")
fi
rm -f "$tmp"

pgsql -c "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$GROUP') THEN CREATE ROLE $GROUP NOLOGIN; END IF; END \$\$"
if [[ -z "$(pgsql -c "SELECT 1 FROM pg_database WHERE datname = '$DB'")" ]]; then
  pgsql -c "CREATE DATABASE $DB"
  did+=("created PostgreSQL database $DB")
fi
pgsql -c 'SELECT pg_reload_conf()' >/dev/null
bad=$(pgsql -c "SELECT count(*) FROM pg_hba_file_rules WHERE error IS NOT NULL")
[[ "$bad" == 0 ]] || die "$hba has $bad invalid line(s): SELECT * FROM pg_hba_file_rules WHERE error IS NOT NULL"

# Prove it: a probe role logs in with its password and is rejected with a wrong one.
probe_pw="probe-$RANDOM-$RANDOM-$$"
pgsql -c "DROP ROLE IF EXISTS kmsdb_probe_sh" >/dev/null
pgsql -c "SET password_encryption = 'scram-sha-256'; CREATE ROLE kmsdb_probe_sh LOGIN PASSWORD '$probe_pw' IN ROLE $GROUP" >/dev/null
pg_probe() { PGPASSWORD="$1" PGCONNECT_TIMEOUT=5 psql -X -w -h "$PGHOST" -p "$PGPORT" -U kmsdb_probe_sh -d "$DB" -Atc 'select 1' </dev/null 2>&1; }
ok=1
out=$(pg_probe "$probe_pw") || { ok=0; echo "testdb.sh: PostgreSQL probe role cannot log in with its password: $out" >&2; }
# The reload is asynchronous: give the postmaster a moment before declaring the rule ineffective.
for _ in $(seq 1 20); do
  if out=$(pg_probe "wrong-$probe_pw"); then sleep 0.25; else break; fi
done
if pg_probe "wrong-$probe_pw" >/dev/null; then
  ok=0
  echo "testdb.sh: PostgreSQL accepted a WRONG password for a member of $GROUP: the scram rule in $hba is not in effect" >&2
fi
pgsql -c "DROP ROLE IF EXISTS kmsdb_probe_sh" >/dev/null
[[ $ok == 1 ]] || exit 1
pgver=$(pgsql -c 'SHOW server_version' | cut -d' ' -f1)

# ---------------------------------------------------------------------------------------------------------------
# MariaDB / MySQL on this machine (127.0.0.1:3306, root without password).
MYHOST=127.0.0.1
MYPORT=3306
myclient=$(command -v mariadb || command -v mysql || true)
[[ -n "$myclient" ]] || die "no mariadb/mysql client on PATH: $howto_my"
mysqlq() { "$myclient" --protocol=tcp -h "$MYHOST" -P "$MYPORT" -uroot --connect-timeout=3 -N -B "$@" </dev/null; }
my_up() { mysqlq -e 'select 1' >/dev/null 2>&1; }

if ! my_up; then
  daemon=$(command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd /usr/sbin/mysqld 2>/dev/null | head -1 || true)
  [[ -n "$daemon" ]] || die "MariaDB does not answer at $MYHOST:$MYPORT and no mariadbd/mysqld is installed: $howto_my"
  if id mysql >/dev/null 2>&1; then install -d -o mysql -g mysql /run/mysqld; fi
  start-stop-daemon --start --oknodo --background --exec "$daemon" || die "could not start $daemon (see /var/log/mysql/error.log)"
  for _ in $(seq 1 60); do my_up && break; sleep 0.5; done
  my_up || die "$daemon started but MariaDB does not answer at $MYHOST:$MYPORT as root without a password; set KMSDB_TEST_MYSQL_ADMIN_DSN"
  did+=("started $daemon")
fi
if [[ -z "$(mysqlq -e "SHOW DATABASES LIKE '$DB'")" ]]; then
  mysqlq -e "CREATE DATABASE IF NOT EXISTS $DB"
  did+=("created MariaDB database $DB")
fi
mysqlq -e "DROP USER IF EXISTS 'kmsdb_probe_sh'@'%'; CREATE USER 'kmsdb_probe_sh'@'%' IDENTIFIED BY '$probe_pw'"
ok=1
"$myclient" --protocol=tcp -h "$MYHOST" -P "$MYPORT" -ukmsdb_probe_sh -p"$probe_pw" -e 'select 1' </dev/null >/dev/null 2>&1 ||
  { ok=0; echo "testdb.sh: MariaDB probe user cannot log in with its password" >&2; }
if "$myclient" --protocol=tcp -h "$MYHOST" -P "$MYPORT" -ukmsdb_probe_sh -p"wrong-$probe_pw" -e 'select 1' </dev/null >/dev/null 2>&1; then
  ok=0
  echo "testdb.sh: MariaDB accepted a WRONG password" >&2
fi
mysqlq -e "DROP USER IF EXISTS 'kmsdb_probe_sh'@'%'"
[[ $ok == 1 ]] || exit 1
myver=$(mysqlq -e 'SELECT VERSION()')

if [[ ${#did[@]} -gt 0 ]]; then
  (IFS=';'; echo "testdb.sh: ${did[*]}" | sed 's/;/; /g')
fi
echo "testdb.sh: PostgreSQL $pgver at $PGHOST:$PGPORT and MariaDB $myver at $MYHOST:$MYPORT ready; database $DB; wrong passwords rejected on both"
