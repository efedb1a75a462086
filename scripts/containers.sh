#!/usr/bin/env bash
# scripts/containers.sh: a Docker engine and the kmsdb test images, for the container path of integration/
# (`make test-containers`). Debian/Ubuntu hosts; everything comes from the machine's own Debian mirror, no image
# registry is contacted.
#
#   bash scripts/containers.sh run [--] CMD [ARG...]
#       Engine up, images built, CMD run with the container-test environment (below), containers of this run
#       that CMD left behind removed (and the run failed), engine stopped again if this script started it.
#   bash scripts/containers.sh images   engine up, images built, engine stopped again if started here
#   bash scripts/containers.sh start    engine up and left running (pidfile in the state directory), images built
#   bash scripts/containers.sh stop     stop the engine that `start` started (an engine it did not start is left alone)
#   bash scripts/containers.sh env      the export lines for running `go test` in integration/ by hand after `start`
#   bash scripts/containers.sh clean    remove the containers of earlier runs, the three images and their build cache
#
# Engine: a daemon that already answers `docker info` is used as it is and never stopped. Otherwise the Debian
# packages docker.io, debootstrap and iptables are installed when missing (root only; apt-get) and dockerd is
# started with its defaults.
#
# Images (rebuilt from Docker's layer cache, so a second run takes seconds):
#   kmsdb-test/debian:bookworm   debootstrap --variant=minbase from the mirror in this machine's apt sources
#                                (`apt-cache policy`; KMSDB_DEBIAN_MIRROR overrides), imported with `docker import`
#   kmsdb-test/mariadb:10.11     Debian's mariadb-server; scripts/images/mariadb/entrypoint.sh
#   kmsdb-test/postgres:15       Debian's postgresql-15;  scripts/images/postgres/entrypoint.sh
# The entrypoints honour the official images' environment (MARIADB_*/MYSQL_*, POSTGRES_*), enforce passwords
# (scram-sha-256 for PostgreSQL over TCP) and print the readiness lines testcontainers' modules wait for.
# integration/ runs them by default (KMSDB_TEST_MARIADB_IMAGE / KMSDB_TEST_POSTGRES_IMAGE choose others).
#
# Container-test environment given to CMD: KMSDB_TEST_CONTAINERS=1 (containers only, never local servers),
# TESTCONTAINERS_HOST_OVERRIDE=localhost (testcontainers would otherwise dial the default gateway whenever
# /.dockerenv exists), TESTCONTAINERS_RYUK_DISABLED=true (the reaper image cannot be pulled; the tests remove
# their own containers), KMSDB_TEST_CONTAINERS_RUN=<id> (label put on every container of this run).
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
BASE_IMAGE=kmsdb-test/debian:$SUITE
MARIADB_IMAGE=kmsdb-test/mariadb:10.11
POSTGRES_IMAGE=kmsdb-test/postgres:15
STATE=${KMSDB_CONTAINERS_STATE:-${TMPDIR:-/tmp}/kmsdb-containers}
RUN_LABEL=org.kmsdb.test.run

say() { echo "containers.sh: $*" >&2; }
die() {
  say "$*"
  exit 1
}
elapsed() { echo "$((SECONDS - $1))s"; }

# ---------------------------------------------------------------------------------------------------------------
# Packages.
apt_updated=0
apt_install() {
  if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    die "missing $*: install them (Debian/Ubuntu: sudo apt-get install $*), or start a Docker engine yourself"
  fi
  if [[ $apt_updated == 0 ]]; then
    apt-get update -qq || die "apt-get update failed"
    apt_updated=1
  fi
  say "installing $* (apt-get)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null || die "apt-get install $* failed"
}

# ---------------------------------------------------------------------------------------------------------------
# Engine.
engine_answers() { command -v docker >/dev/null && timeout 10 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

started_pid=""
run_id=""
tmp_dirs=()
on_exit() {
  [[ ${#tmp_dirs[@]} == 0 ]] || rm -rf "${tmp_dirs[@]}"
  # An interrupted run (Ctrl-C, a killed test binary) still removes its containers before the engine stops.
  [[ -z "$run_id" ]] || remove_leftovers "$run_id" || true
  stop_engine "$started_pid"
}

engine_up() {
  if engine_answers; then
    return 0
  fi
  local need=()
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v iptables >/dev/null || need+=(iptables)
  [[ ${#need[@]} == 0 ]] || apt_install "${need[@]}"
  command -v docker >/dev/null || die "dockerd is installed but no docker client on PATH"
  engine_answers && return 0
  [[ $(id -u) == 0 ]] || die "no Docker engine answers and only root can start dockerd: start Docker (e.g. sudo systemctl start docker)"
  mkdir -p "$STATE"
  local t=$SECONDS
  # Own session: a Ctrl-C reaches this script, which removes the containers before it stops the engine.
  setsid dockerd >"$STATE/dockerd.log" 2>&1 </dev/null &
  started_pid=$!
  echo "$started_pid" >"$STATE/dockerd.pid"
  for _ in $(seq 1 120); do
    engine_answers && break
    kill -0 "$started_pid" 2>/dev/null || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd exited at start (log above, $STATE/dockerd.log)"; }
    sleep 0.5
  done
  engine_answers || { tail -20 "$STATE/dockerd.log" >&2; die "dockerd started (pid $started_pid) but does not answer after 60s"; }
  # The daemon's own pidfile, should setsid have forked.
  local own
  own=$(cat /var/run/docker.pid 2>/dev/null || true)
  if [[ -n "$own" && "$own" != "$started_pid" && "$(cat "/proc/$own/comm" 2>/dev/null)" == dockerd ]]; then
    started_pid=$own
    echo "$started_pid" >"$STATE/dockerd.pid"
  fi
  say "started dockerd (pid $started_pid, $(elapsed "$t"), log $STATE/dockerd.log)"
}

# stop_engine PID: stop the dockerd this script started (TERM, then KILL after 60s) and wait for it.
stop_engine() {
  local pid=$1
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]]; then
    kill -TERM "$pid"
    for _ in $(seq 1 120); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      say "dockerd (pid $pid) did not stop within 60s: killing it"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    say "stopped dockerd (pid $pid)"
  fi
  rm -f "$STATE/dockerd.pid"
}

# ---------------------------------------------------------------------------------------------------------------
# Images.

# mirror_lines prints "URI SUITE" for each $SUITE, $SUITE-updates and $SUITE-security main source of this machine.
mirror_lines() {
  apt-cache policy 2>/dev/null | awk -v s="$SUITE" '
    $1 ~ /^[0-9]+$/ && $3 ~ ("^" s "(-updates|-security)?/main$") && $5 == "Packages" {
      split($3, p, "/"); if (!seen[$2 " " p[1]]++) print $2, p[1]
    }'
}

build_base() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    return 0
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  local lines mirror
  lines=$(mirror_lines)
  if [[ -z "$lines" && -z "${KMSDB_DEBIAN_MIRROR:-}" && $(id -u) == 0 ]]; then
    apt-get update -qq || true # the package lists may simply be missing
    lines=$(mirror_lines)
  fi
  mirror=${KMSDB_DEBIAN_MIRROR:-$(awk -v s="$SUITE" '$2 == s {print $1; exit}' <<<"$lines")}
  [[ -n "$mirror" ]] || die "no Debian $SUITE mirror in this machine's apt sources (apt-cache policy): set KMSDB_DEBIAN_MIRROR to a Debian mirror URL"
  [[ -n "$lines" ]] || lines="$mirror $SUITE"
  local t=$SECONDS rootfs
  rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/kmsdb-rootfs.XXXXXX")
  tmp_dirs+=("$rootfs")
  say "building $BASE_IMAGE: debootstrap --variant=minbase $SUITE from $mirror"
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 ||
    { tail -20 "$rootfs.log" >&2; die "debootstrap failed (log above, $rootfs.log)"; }
  rm -f "$rootfs.log"
  awk '{print "deb", $1, $2, "main"}' <<<"$lines" >"$rootfs/etc/apt/sources.list"
  # No services start while packages install; no recommends, documentation or translations (smaller, faster).
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\nAcquire::Languages "none";\n' >"$rootfs/etc/apt/apt.conf.d/90kmsdb-test"
  printf 'path-exclude=/usr/share/doc/*\npath-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\npath-exclude=/usr/share/locale/*\n' >"$rootfs/etc/dpkg/dpkg.cfg.d/90kmsdb-test"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" --numeric-owner -c . |
    docker import --change 'ENV LANG=C.UTF-8' --change 'CMD ["bash"]' \
      --message "kmsdb test base: debootstrap --variant=minbase $SUITE" - "$BASE_IMAGE" >/dev/null
  rm -rf "$rootfs"
  say "built $BASE_IMAGE ($(elapsed "$t"))"
}

build_image() { # build_image TAG DIR
  local t=$SECONDS out
  # The classic builder uses the locally tagged base image as it is; --network host: the package mirror is
  # reached exactly as this machine reaches it.
  if ! out=$(DOCKER_BUILDKIT=0 docker build --network host --build-arg "BASE=$BASE_IMAGE" -t "$1" "$2" 2>&1); then
    echo "$out" | tail -30 >&2
    die "docker build of $1 failed (output above)"
  fi
  say "built $1 ($(elapsed "$t"))"
}

build_images() {
  build_base
  # Side by side: a cold build is mostly waiting for the mirror and for dpkg.
  local pids=() rc=0 p
  build_image "$MARIADB_IMAGE" scripts/images/mariadb &
  pids+=($!)
  build_image "$POSTGRES_IMAGE" scripts/images/postgres &
  pids+=($!)
  for p in "${pids[@]}"; do
    wait "$p" || rc=1
  done
  [[ $rc == 0 ]] || die "building the images failed (see above)"
  # Images that a rebuild untagged would pile up on a CI machine.
  local img
  for img in kmsdb-test/mariadb kmsdb-test/postgres; do
    docker image prune -f --filter "label=org.opencontainers.image.title=$img" >/dev/null
  done
}

# ---------------------------------------------------------------------------------------------------------------
# Containers of a run that are still there (the tests remove their own; this is the safety net).
remove_leftovers() { # remove_leftovers RUN_ID -> 1 when some were left
  local ids
  ids=$(docker ps -aq --filter "label=$RUN_LABEL=$1" 2>/dev/null || true)
  [[ -z "$ids" ]] && return 0
  say "containers left behind by the run: $(echo "$ids" | tr '\n' ' ')-- removing them"
  # shellcheck disable=SC2086
  docker rm -f -v $ids >/dev/null || true
  return 1
}

container_env() {
  export KMSDB_TEST_CONTAINERS=1
  export TESTCONTAINERS_HOST_OVERRIDE=localhost
  export TESTCONTAINERS_RYUK_DISABLED=true
}

cmd=${1:-}
[[ $# -gt 0 ]] && shift
# A signal ends the script through its EXIT trap (containers removed, engine stopped).
trap 'exit 130' INT
trap 'exit 143' TERM
case "$cmd" in
run)
  [[ "${1:-}" == -- ]] && shift
  [[ $# -gt 0 ]] || die "usage: $0 run [--] CMD [ARG...]"
  trap on_exit EXIT
  engine_up
  build_images
  container_env
  run_id="$(date +%s)-$$"
  export KMSDB_TEST_CONTAINERS_RUN=$run_id
  rc=0
  "$@" || rc=$?
  if ! remove_leftovers "$run_id"; then
    say "FAIL: the command left containers behind (removed now); every test must remove its containers"
    [[ $rc != 0 ]] || rc=1
  fi
  run_id=""
  exit "$rc"
  ;;
images)
  trap on_exit EXIT
  engine_up
  build_images
  ;;
start)
  trap '[[ ${#tmp_dirs[@]} == 0 ]] || rm -rf "${tmp_dirs[@]}"' EXIT
  engine_up
  build_images
  [[ -n "$started_pid" ]] && say "dockerd left running; stop it with: bash $0 stop"
  ;;
stop)
  if [[ -f "$STATE/dockerd.pid" ]]; then
    stop_engine "$(cat "$STATE/dockerd.pid")"
  else
    say "no dockerd started by this script ($STATE/dockerd.pid absent): nothing to stop"
  fi
  ;;
clean)
  trap on_exit EXIT
  engine_up
  ids=$(docker ps -aq --filter "label=$RUN_LABEL")
  if [[ -n "$ids" ]]; then
    # shellcheck disable=SC2086
    docker rm -f -v $ids >/dev/null
    say "removed containers of earlier runs: $(echo "$ids" | tr '\n' ' ')"
  fi
  for img in "$MARIADB_IMAGE" "$POSTGRES_IMAGE" "$BASE_IMAGE"; do
    if docker image inspect "$img" >/dev/null 2>&1; then
      docker rmi "$img" >/dev/null
      say "removed $img"
    fi
  done
  ;;
env)
  container_env
  for v in KMSDB_TEST_CONTAINERS TESTCONTAINERS_HOST_OVERRIDE TESTCONTAINERS_RYUK_DISABLED; do
    echo "export $v=${!v}"
  done
  ;;
*)
  die "usage: $0 run [--] CMD [ARG...] | images | start | stop | env | clean"
  ;;
esac
