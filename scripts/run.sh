#!/usr/bin/env bash
# The main command: installs what is missing, builds, and runs the daemon in
# the foreground (see `build/m3s --help` for its configuration). Without
# MESOS_MASTER in the environment it first starts a local cluster for it: a
# redis-server and the Mesos master simulator with three agents, both on free
# loopback ports. Ctrl-C stops the daemon and everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release

pids=()
tmp=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "$tmp" ] && rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -z "${MESOS_MASTER:-}" ]; then
  tmp=$(mktemp -d)
  redis_port=$(free_port)
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$tmp" --save "" \
    --appendonly yes >"$tmp/redis.log" 2>&1 &
  pids+=($!)
  python3 -u tests/mesos_sim/mesos_sim.py --port 0 --agents 3 >"$tmp/mesos.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do
    grep -q '^listening on' "$tmp/mesos.log" 2>/dev/null && break
    sleep 0.1
  done
  master=$(sed -n 's/^listening on //p' "$tmp/mesos.log" | head -1)
  [ -n "$master" ] || { echo "run: the Mesos simulator did not start: $(cat "$tmp/mesos.log")" >&2; exit 1; }
  export MESOS_MASTER=$master REDIS_SERVER=127.0.0.1:$redis_port
  export FRAMEWORK_HOSTNAME=${FRAMEWORK_HOSTNAME:-127.0.0.1} LOGLEVEL=${LOGLEVEL:-info}
  echo "run: local cluster: Mesos master simulator at http://$MESOS_MASTER (3 agents)," \
       "Redis at $REDIS_SERVER; logs in $tmp" >&2
fi

# Not exec: the trap must stop what was started once the daemon exits.
build/m3s "$@" &
daemon=$!
trap 'kill -TERM "$daemon" 2>/dev/null || true' INT TERM
wait "$daemon" || true
wait "$daemon" 2>/dev/null
