#!/usr/bin/env bash
# bench/api_bench.sh [BUILD_DIR] [ROUNDS] [SECONDS]
#
# Requests per second and p99 latency of the REST API's status endpoint
# (GET /api/m3s/v0/status/m3s with Basic auth) of the real daemon, against a
# bare civetweb handler answering a constant (the ceiling), in the same run,
# alternating, with wrk on 127.0.0.1 and 64 connections. Prints each round
# and the median ratio.
#
# The daemon is BUILD_DIR/m3s started by scripts/run.sh on its local
# cluster (the Mesos simulator with 3 agents and a redis-server), running
# 1 datastore, 1 server and 3 K3s agents before the measurement starts, so
# every answer carries real task state from the three role actors. The
# ceiling is BUILD_DIR/bench/api_bench_server; wrk is the Debian package.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-release}
rounds=${2:-5}
secs=${3:-10}
bare_bin="$build/bench/api_bench_server"
if [ ! -x "$bare_bin" ] || [ ! -x "$build/m3s" ]; then
  echo "build $build first" >&2
  exit 2
fi
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

tmp=$(mktemp -d)
bare_pid="" run_pid=""
cleanup() {
  [ -n "$bare_pid" ] && { kill "$bare_pid" 2>/dev/null; wait "$bare_pid" 2>/dev/null; }
  # run.sh stops the daemon, the simulator and redis-server it started.
  [ -n "$run_pid" ] && { kill -TERM "$run_pid" 2>/dev/null; wait "$run_pid" 2>/dev/null; }
  rm -rf "$tmp"
}
trap cleanup EXIT

"$bare_bin" >"$tmp/bare" &
bare_pid=$!
# shellcheck source=tests/ports.sh
. tests/ports.sh
port=""
free_port port
AUTH_USERNAME=bench AUTH_PASSWORD=bench-password FRAMEWORK_PORT=$port K3S_AGENT_COUNT=3 \
  LOGLEVEL=warn M3S_BIN="$build/m3s" scripts/run.sh >"$tmp/run" 2>&1 &
run_pid=$!

auth="Authorization: Basic $(printf 'bench:bench-password' | base64 -w0)"
api="http://127.0.0.1:$port/api/m3s/v0"
# Ready: the bare port printed and every K3s agent running.
for _ in $(seq 600); do
  [ -s "$tmp/bare" ] &&
    [ "$(curl -s -H "$auth" "$api/agent/scale" 2>/dev/null)" = '{"Scale":3,"Running":3}' ] && break
  kill -0 "$run_pid" 2>/dev/null || { echo "the daemon stopped:" >&2; cat "$tmp/run" >&2; exit 1; }
  sleep 0.1
done
bare=$(awk '$1 == "bare" {print $2}' "$tmp/bare")
body=$(curl -s -H "$auth" "$api/status/m3s")
case $body in
  '{"Server":{'*) ;;
  *) echo "the cluster did not come up or the status answer is unexpected: $body" >&2
     cat "$tmp/run" >&2; exit 1 ;;
esac

# "<requests/s> <p99 in ms>" of one wrk run.
measure() {
  wrk -t2 -c64 -d"${secs}s" --latency "$@" | awk '
    /Requests\/sec:/ { rps = $2 }
    $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                  ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : v }
    END { printf "%s %.2f\n", rps, ms }'
}

# A warm-up of each, not counted.
wrk -t2 -c64 -d2s "http://127.0.0.1:$bare/" >/dev/null
wrk -t2 -c64 -d2s -H "$auth" "$api/status/m3s" >/dev/null

echo "status answer: ${#body} bytes (1 datastore, 1 server, 3 agents)"
printf '%-6s %12s %10s %12s %10s %7s\n' round bare_rps bare_p99 api_rps api_p99 ratio
ratios=()
for r in $(seq "$rounds"); do
  read -r brps bp99 < <(measure "http://127.0.0.1:$bare/")
  read -r arps ap99 < <(measure -H "$auth" "$api/status/m3s")
  ratio=$(awk -v a="$arps" -v b="$brps" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  printf '%-6s %12s %8sms %12s %8sms %7s\n' "$r" "$brps" "$bp99" "$arps" "$ap99" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END {
  printf "median api/bare ratio over %d rounds: %s\n", NR, v[int((NR + 1) / 2)] }'
