#!/usr/bin/env bash
# The e2e tier: the daemon's tasks as real Docker containers on a real Mesos
# agent, and the compose example against the real Mesos master. Opt-in (it
# starts a Docker daemon, which CI does not), as root on Debian 12:
#
#   tests/e2e/run.sh 2>&1 | tee e2e-output.txt
#
# It installs what is missing (docker.io, debootstrap, docker-compose,
# redis-server; Mesos through ../shared/mesos/install.sh), builds the
# daemon (build-release) when M3S_BUILD holds no m3s, then:
#   1. starts its own dockerd (data and sockets under a scratch directory;
#      storage driver overlay2, else vfs; published ports on 127.0.0.11,
#      the address of the Mesos agent; the extra OCI runtime m3s-e2e-runc,
#      see runc-bounded);
#   2. builds every image locally, with no registry: a `debootstrap
#      --variant=minbase bookworm` root file system imported with `docker
#      import` (also tagged debian:12 and debian:12-slim for
#      docker/Dockerfile), the datastore image (Debian's mariadb-server), the
#      K3s stand-in (the test K3s API and m3s-controller) and a Redis image
#      (Debian's redis-server, tagged redis:7 for docker/docker-compose.yml);
#   3. runs tests/e2e/test_e2e.py (what is checked is listed there);
#   4. stops everything it started, by PID, and removes the scratch directory
#      (E2E_KEEP=1 keeps it, with the logs).
# E2E_CACHE=<dir> keeps the debootstrap result there and reuses it.
# Exit status 0 when every check passed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${M3S_BUILD:-$ROOT/build-release}
SHARED=${M3S_SHARED:-$ROOT/../shared}
# The Debian mirror apt already uses (the first main-archive URI of its
# sources), unless E2E_MIRROR names another.
apt_mirror() {
  sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null || true
  sed -n 's/^deb[[:space:]]\+\([^[:space:]]*\/debian\)[[:space:]].*/\1/p' /etc/apt/sources.list 2>/dev/null || true
}
MIRROR=${E2E_MIRROR:-$(apt_mirror | sed -n 1p)}
DOCKER=/usr/bin/docker            # Debian's client, matching its dockerd
AGENT_IP=127.0.0.11               # start-cluster.sh's first agent

say() { printf 'e2e: %s\n' "$*"; }
die() { printf 'e2e: FAILED: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (dockerd, debootstrap and the Mesos agent need it)"
[ -d "$SHARED/mesos" ] || die "no $SHARED/mesos (the prebuilt Mesos); set M3S_SHARED"
[ -n "$MIRROR" ] || die "no Debian mirror found in apt's sources; set E2E_MIRROR"

need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v docker-compose >/dev/null || need+=(docker-compose)
command -v redis-server >/dev/null || need+=(redis-server)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null ||
    { apt-get update >/dev/null &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >/dev/null; }
fi
MESOS=$("$SHARED/mesos/install.sh" | tail -1)
[ -x "$MESOS/bin/mesos-master" ] || die "Mesos not installed (install.sh printed '$MESOS')"
if [ ! -x "$BUILD/m3s" ] || [ ! -x "$BUILD/m3s-controller" ]; then
  say "building $BUILD"
  "$ROOT/scripts/build.sh" "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
fi

WORK=$(mktemp -d /tmp/m3s-e2e.XXXXXX)
SOCK=$WORK/docker.sock
DOCKERD_PID=
TEST_PID=
had_docker0=true
cleanup() {
  local rc=$?
  if [ -n "$TEST_PID" ] && kill -0 "$TEST_PID" 2>/dev/null; then
    kill -TERM "$TEST_PID"   # it stops its daemon, Redis and Mesos clusters
    wait "$TEST_PID" || true
  fi
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    # Containers the test left (only on a failure): ours, on our daemon.
    mapfile -t ids < <("$DOCKER" -H "unix://$SOCK" ps -aq 2>/dev/null || true)
    [ ${#ids[@]} -eq 0 ] || "$DOCKER" -H "unix://$SOCK" rm -f "${ids[@]}" >/dev/null 2>&1 || true
    kill -TERM "$DOCKERD_PID"
    for _ in $(seq 1 150); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$DOCKERD_PID" 2>/dev/null && { say "dockerd ignored SIGTERM; SIGKILL"; kill -KILL "$DOCKERD_PID"; }
    say "dockerd $DOCKERD_PID stopped"
    # Its default bridge outlives it; remove it unless it was there before.
    if ! $had_docker0 && ip link show docker0 >/dev/null 2>&1; then
      ip link delete docker0 || true
    fi
  fi
  # Mounts dockerd left under the scratch directory (none after a clean stop).
  { grep -o " $WORK/[^ ]*" /proc/mounts || true; } | sort -r |
    while read -r m; do umount -l "$m" || true; done
  if [ "${E2E_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
    say "scratch directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. dockerd ---------------------------------------------------------------
had_docker0=false
ip link show docker0 >/dev/null 2>&1 && had_docker0=true
start_dockerd() { # driver
  /usr/sbin/dockerd --data-root "$WORK/docker" --exec-root "$WORK/exec" \
    --pidfile "$WORK/dockerd.pid" -H "unix://$SOCK" --storage-driver "$1" \
    --ip "$AGENT_IP" --add-runtime "m3s-e2e-runc=$ROOT/tests/e2e/runc-bounded" \
    >"$WORK/dockerd-$1.log" 2>&1 &
  DOCKERD_PID=$!
  for _ in $(seq 1 150); do
    "$DOCKER" -H "unix://$SOCK" version >/dev/null 2>&1 && return 0
    kill -0 "$DOCKERD_PID" 2>/dev/null || break
    sleep 0.2
  done
  say "dockerd with $1 did not start; its last lines:"
  tail -5 "$WORK/dockerd-$1.log" | sed 's/^/  /'
  kill -0 "$DOCKERD_PID" 2>/dev/null && { kill -TERM "$DOCKERD_PID"; wait "$DOCKERD_PID" || true; }
  DOCKERD_PID=
  return 1
}
driver=
for d in overlay2 vfs; do
  if start_dockerd "$d"; then driver=$d; break; fi
done
[ -n "$driver" ] || die "dockerd cannot run here (logs above)"
export DOCKER_HOST=unix://$SOCK
say "dockerd $DOCKERD_PID: $("$DOCKER" version --format 'server {{.Server.Version}}, API {{.Server.APIVersion}}'), storage driver $driver, cgroup $("$DOCKER" info --format '{{.CgroupDriver}} v{{.CgroupVersion}}')"

# ---- 2. images ----------------------------------------------------------------
t0=$(date +%s)
rootfs_tar=$WORK/minbase.tar
if [ -n "${E2E_CACHE:-}" ] && [ -s "$E2E_CACHE/minbase-bookworm.tar" ]; then
  rootfs_tar=$E2E_CACHE/minbase-bookworm.tar
  say "reusing $rootfs_tar (E2E_CACHE)"
else
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -5 "$WORK/debootstrap.log"; die "debootstrap failed"; }
  tar -C "$WORK/rootfs" -cf "$rootfs_tar" .
  rm -rf "$WORK/rootfs"
  if [ -n "${E2E_CACHE:-}" ]; then
    mkdir -p "$E2E_CACHE" && cp "$rootfs_tar" "$E2E_CACHE/minbase-bookworm.tar"
  fi
fi
"$DOCKER" import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' "$rootfs_tar" \
  m3s-e2e/minbase:bookworm >/dev/null
"$DOCKER" tag m3s-e2e/minbase:bookworm debian:12
"$DOCKER" tag m3s-e2e/minbase:bookworm debian:12-slim
say "minbase root file system imported ($(( $(date +%s) - t0 )) s): $("$DOCKER" run --rm m3s-e2e/minbase:bookworm cat /etc/debian_version)"

IMAGES=$ROOT/tests/e2e/images
build() { # tag context
  local t
  t=$(date +%s)
  "$DOCKER" build -q --build-arg BASE=m3s-e2e/minbase:bookworm -t "$1" "$2" >/dev/null ||
    die "docker build of $1 failed"
  say "image $1 built ($(( $(date +%s) - t )) s)"
}
build m3s-e2e/mariadb:e2e "$IMAGES/mariadb"
mkdir -p "$WORK/standin"
cp "$IMAGES/k3s-standin/Dockerfile" "$IMAGES/k3s-standin/standin.py" \
   "$IMAGES/k3s-standin/k3s.py" "$BUILD/m3s-controller" \
   "$ROOT/tests/mesos_sim/fake_k3s.py" "$WORK/standin/"
build m3s-e2e/k3s-standin:e2e "$WORK/standin"
build redis:7 "$IMAGES/redis"

# ---- 3. the checks ----------------------------------------------------------------
export E2E_WORK=$WORK E2E_DOCKER=$DOCKER E2E_MESOS=$MESOS E2E_SHARED=$SHARED E2E_AGENT_IP=$AGENT_IP
export M3S_BIN=$BUILD/m3s
python3 "$ROOT/tests/e2e/test_e2e.py" &
TEST_PID=$!
wait "$TEST_PID"
say "tier passed in $SECONDS s in all"
