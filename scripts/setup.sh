#!/usr/bin/env bash
# Installs, from Debian 12's packages, whatever is needed and not installed
# yet. Needs root (or sudo) only when something is missing.
#   scripts/setup.sh               everything the tests need (scripts/test.sh)
#   scripts/setup.sh --run         the build and what scripts/run.sh runs: the
#                                  daemon, redis-server, the Mesos simulator
#   scripts/setup.sh --build-only  just what scripts/build.sh needs (the
#                                  Dockerfile's builder)
set -euo pipefail

build=(build-essential cmake pkg-config libcurl4-openssl-dev libhiredis-dev
       libjansson-dev libcivetweb-dev libssl-dev check python3 libyaml-dev)
# The local cluster of scripts/run.sh: Redis, the simulator (Python, openssl
# for its K3s certificates) and curl for the readiness probe.
run=(redis-server curl ca-certificates procps openssl)
# Only the tests: the fuzzer's compiler, load generator, linters, the status
# page's browser, the packaging checks, Redis Sentinel, kubectl for the
# quick-start test.
test=(clang libclang-rt-14-dev wrk shellcheck python3-yaml jq chromium docker-compose
      systemd redis-sentinel
      # the real mesos-cli (../shared/tools/avmesos-cli) that runs our plugin
      python3-toml python3-requests python3-urllib3 python3-docopt
      python3-kazoo python3-tenacity python3-ujson)

case ${1:-} in
  --build-only) packages=("${build[@]}") ;;
  --run) packages=("${build[@]}" "${run[@]}") ;;
  "")
    packages=("${build[@]}" "${run[@]}" "${test[@]}")
    # Any kubectl will do; Debian's comes with kubernetes-client.
    command -v kubectl >/dev/null || packages+=(kubernetes-client)
    ;;
  *) echo "usage: scripts/setup.sh [--run|--build-only]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
