#!/usr/bin/env bash
# bench/api_bench.sh [BUILD_DIR] [ROUNDS] [SECONDS]
#
# Requests per second and p99 latency of the REST API's status endpoint
# (GET /api/m3s/v0/status/m3s, Basic auth, three role actors asked per
# request) against a bare civetweb handler answering a constant, in the same
# run, alternating, with wrk on 127.0.0.1 and 64 connections. Prints each
# round and the median ratio. The server is bench/api_bench_server (built
# with the project); wrk is the Debian package of that name.
# M3S_BENCH_STATUS_MAX_AGE_MS=-1 in the environment turns off the reuse of
# recent role answers (requests then share only answers still in the air).
set -euo pipefail
build=${1:-build-release}
rounds=${2:-5}
secs=${3:-10}
server="$build/bench/api_bench_server"
[ -x "$server" ] || { echo "build $server first" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 2; }

out=$(mktemp)
"$server" >"$out" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 100); do
  [ "$(wc -l <"$out")" -ge 2 ] && break
  sleep 0.05
done
api=$(awk '$1 == "api" {print $2}' "$out")
bare=$(awk '$1 == "bare" {print $2}' "$out")
auth="Authorization: Basic $(printf 'bench:bench-password' | base64 -w0)"

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
wrk -t2 -c64 -d2s -H "$auth" "http://127.0.0.1:$api/api/m3s/v0/status/m3s" >/dev/null
body=$(curl -s -H "$auth" "http://127.0.0.1:$api/api/m3s/v0/status/m3s")
case $body in
  '{"Server":{'*) ;;
  *) echo "unexpected status answer: $body" >&2; exit 1 ;;
esac

printf '%-6s %12s %10s %12s %10s %7s\n' round bare_rps bare_p99 api_rps api_p99 ratio
ratios=()
for r in $(seq "$rounds"); do
  read -r brps bp99 < <(measure "http://127.0.0.1:$bare/")
  read -r arps ap99 < <(measure -H "$auth" "http://127.0.0.1:$api/api/m3s/v0/status/m3s")
  ratio=$(awk -v a="$arps" -v b="$brps" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$ratio")
  printf '%-6s %12s %8sms %12s %8sms %7s\n' "$r" "$brps" "$bp99" "$arps" "$ap99" "$ratio"
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{ v[NR] = $1 } END {
  printf "median api/bare ratio over %d rounds: %s\n", NR, v[int((NR + 1) / 2)] }'
