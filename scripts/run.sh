#!/usr/bin/env bash
# The main command: installs what is missing, builds, runs the daemon, prints
# where to reach it, then follows its log. Ctrl-C (SIGINT) or SIGTERM stops
# the daemon and everything this script started.
#
# Without MESOS_MASTER it first starts a local cluster on free loopback ports:
# a redis-server and the Mesos master simulator with three agents
# (127.0.0.1, 127.0.1.1, 127.0.2.1) whose K3s tasks act as K3s containers: a
# simulated Kubernetes (tests/mesos_sim/k3s_sim.py) with a kubeconfig, an
# API and nodes, but no kubelet and no containers. The REST API then
# listens on 127.0.0.1 (FRAMEWORK_BIND) on a free port, and API credentials
# are generated unless AUTH_USERNAME and AUTH_PASSWORD are set.
#
# With MESOS_MASTER (and REDIS_SERVER) set it runs against those instead;
# credentials are generated only when missing, with a warning.
#
# Environment for tests and packagers: M3S_BIN=<path> runs that binary
# instead of building build/m3s.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --run
if [ -n "${M3S_BIN:-}" ]; then
  bin=$M3S_BIN
  [ -x "$bin" ] || { echo "run: M3S_BIN=$bin is not an executable" >&2; exit 1; }
else
  scripts/build.sh build --target m3s -DCMAKE_BUILD_TYPE=Release
  bin=build/m3s
fi

rundir=$(mktemp -d "${TMPDIR:-/tmp}/m3s-run.XXXXXX")
log=$rundir/m3s.log
started=()   # "pid name", in start order
daemon=""
tailer=""

# Stops one process this script started: SIGTERM, then SIGKILL after 10 s.
# A child that exited stays a zombie (state Z) until it is waited for.
stop_pid() {
  local pid=$1 state i
  kill -TERM "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  for i in $(seq 1 100); do
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1) || break
    [ -z "$state" ] || [ "$state" = Z ] && break
    sleep 0.1
  done
  [ "${state:-}" = Z ] || kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local i entry
  trap '' INT TERM
  [ -n "$daemon" ] && stop_pid "$daemon"
  [ -n "$tailer" ] && stop_pid "$tailer"
  for ((i = ${#started[@]} - 1; i >= 0; i--)); do
    entry=${started[i]}
    stop_pid "${entry%% *}"
  done
  rm -rf "$rundir"
  return 0
}
trap cleanup EXIT

# free_port VAR: a port reserved for this script and what it starts (tests/ports.sh
# says how), so a test running beside it, or a connection the kernel opens meanwhile,
# cannot take it before its server binds it.
# shellcheck source=tests/ports.sh
. tests/ports.sh

# 24 random characters of [A-Za-z0-9], safe on a command line and in a URL.
random_password() {
  head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | head -c 24
}

local_cluster=false
generated_auth=false
if [ -z "${MESOS_MASTER:-}" ]; then
  local_cluster=true
  redis_port=""
  free_port redis_port
  redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$rundir" --save "" \
    --appendonly yes >"$rundir/redis.log" 2>&1 &
  started+=("$! redis-server")
  # The K3s API's host port (K3S_SERVER_PORT) is a free one every agent offers.
  [ -n "${K3S_SERVER_PORT:-}" ] || free_port K3S_SERVER_PORT
  export K3S_SERVER_PORT
  # Created here, not by the background job's redirection, which may come
  # after the first look below: sed on a missing file fails, and with
  # pipefail and set -e the script would exit 2 without a word.
  : >"$rundir/mesos.log"
  python3 -u tests/mesos_sim/mesos_sim.py --port 0 --agents 3 --k3s \
    --agent-hostname '127.0.{i}.1' --ports "31000-32000,$K3S_SERVER_PORT-$K3S_SERVER_PORT" \
    >"$rundir/mesos.log" 2>&1 &
  started+=("$! mesos-simulator")
  master=""
  for _ in $(seq 1 100); do
    master=$(sed -n 's/^listening on //p' "$rundir/mesos.log" 2>/dev/null | head -1)
    [ -n "$master" ] && break
    sleep 0.1
  done
  [ -n "$master" ] || { echo "run: the Mesos simulator did not start: $(cat "$rundir/mesos.log")" >&2; exit 1; }
  export MESOS_MASTER=$master REDIS_SERVER=127.0.0.1:$redis_port
  export FRAMEWORK_HOSTNAME=${FRAMEWORK_HOSTNAME:-127.0.0.1} LOGLEVEL=${LOGLEVEL:-info}
  export FRAMEWORK_BIND=${FRAMEWORK_BIND:-127.0.0.1}
  [ -n "${FRAMEWORK_PORT:-}" ] || free_port FRAMEWORK_PORT
  export FRAMEWORK_PORT
  if [ -z "${AUTH_USERNAME:-}" ] || [ -z "${AUTH_PASSWORD:-}" ]; then
    export AUTH_USERNAME=${AUTH_USERNAME:-m3s} AUTH_PASSWORD
    AUTH_PASSWORD=$(random_password)
    generated_auth=true
  fi
else
  [ -n "${REDIS_SERVER:-}" ] ||
    echo "run: warning: MESOS_MASTER is set but REDIS_SERVER is not; using the default 127.0.0.1:6379" >&2
  if [ -z "${AUTH_USERNAME:-}" ] || [ -z "${AUTH_PASSWORD:-}" ]; then
    export AUTH_USERNAME=${AUTH_USERNAME:-m3s} AUTH_PASSWORD
    AUTH_PASSWORD=$(random_password)
    generated_auth=true
    echo "run: warning: AUTH_USERNAME/AUTH_PASSWORD not set: generated a password for this run only;" \
         "set both for credentials that survive a restart (mesos-cli needs them)" >&2
  fi
fi

# The daemon's stderr goes to a file that is followed below, after the
# banner, so that the banner is not torn apart by log lines.
"$bin" "$@" 2>>"$log" &
daemon=$!
stop_requested=false
trap 'stop_requested=true; kill -TERM "$daemon" 2>/dev/null || true' INT TERM

# The URLs printed use the address the API is bound to, else the hostname
# announced to Mesos; the readiness probe goes to the bound address or to
# loopback (the API listens on every interface then).
port=${FRAMEWORK_PORT:-10000}
host=${FRAMEWORK_BIND:-} probe=${FRAMEWORK_BIND:-}
if [ -z "$host" ] || [ "$host" = 0.0.0.0 ]; then
  host=${FRAMEWORK_HOSTNAME:-$(hostname -f 2>/dev/null || hostname)}
  probe=127.0.0.1
fi
scheme=http
[ -n "${SSL_CRT_BASE64:-}" ] && scheme=https
base=$scheme://$host:$port
insecure=""
[ "$scheme" = https ] && insecure="-k "

# Ready when /health answers (it needs no credentials).
ready=false
for _ in $(seq 1 300); do
  kill -0 "$daemon" 2>/dev/null || break
  "$stop_requested" && break
  if curl -fsS ${insecure:+-k} -o /dev/null --max-time 1 "$scheme://$probe:$port/health" 2>/dev/null; then
    ready=true
    break
  fi
  sleep 0.1
done

if "$ready"; then
  if "$generated_auth"; then
    user_shown=$AUTH_USERNAME pass_shown=$AUTH_PASSWORD
    cred="$AUTH_USERNAME:$AUTH_PASSWORD"
    what="generated for this run"
  else
    user_shown=$AUTH_USERNAME pass_shown="(your AUTH_PASSWORD)"
    # shellcheck disable=SC2016  # printed for the user's shell to expand
    cred='$AUTH_USERNAME:$AUTH_PASSWORD'
    what="from the environment"
  fi
  procs=""
  for entry in "${started[@]}"; do procs+="${entry#* } ${entry%% *}, "; done
  procs+="m3s $daemon"
  where=""
  "$local_cluster" && where=" on a local simulated Mesos cluster (3 agents, master http://$MESOS_MASTER, Redis $REDIS_SERVER)
with a simulated Kubernetes: nodes and an API, no kubelet, no containers"
  cat <<EOF

M3s is running$where.
  REST API     $base/api/m3s/v0/
  status page  $base/
  metrics      $base/metrics
  health       $base/health  (no credentials)
  user         $user_shown
  password     $pass_shown  ($what)
  try          curl ${insecure}-u "$cred" $base/api/m3s/v0/status/m3s
  kubeconfig   curl ${insecure}-u "$cred" $base/api/m3s/v0/server/config > kubeconfig
  nodes        kubectl --kubeconfig kubeconfig get nodes  (once the server's node is Ready)
  processes    $procs
  log          $log
Ctrl-C stops everything this script started. The daemon's log follows.

EOF
else
  kill -0 "$daemon" 2>/dev/null && ! "$stop_requested" &&
    echo "run: the daemon did not answer on $base/health within 30 s; its log follows" >&2
fi

tail -n +1 -F --pid="$daemon" "$log" 2>/dev/null &
tailer=$!

rc=0
while :; do
  set +e
  wait "$daemon"
  rc=$?
  set -e
  # A trapped signal interrupts wait with a status above 128 while the
  # daemon still runs; wait again for its real exit status.
  if [ "$rc" -gt 128 ] && kill -0 "$daemon" 2>/dev/null; then
    continue
  fi
  break
done
daemon=""
# Let tail print the last lines (it polls the daemon's pid once a second).
wait "$tailer" 2>/dev/null || true
tailer=""
cleanup
trap - EXIT
echo "run: m3s exited with status $rc; stopped everything this script started" >&2
exit "$rc"
