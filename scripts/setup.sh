#!/usr/bin/env bash
# Installs, from Debian 12's packages, whatever the build and the tests need
# and is not installed yet. Needs root (or sudo) only when something is
# missing. Used by scripts/run.sh and scripts/test.sh, and by the Dockerfile.
set -euo pipefail

packages=(build-essential cmake pkg-config libcurl4-openssl-dev libhiredis-dev
          libjansson-dev libcivetweb-dev libssl-dev check redis-server redis-sentinel curl
          ca-certificates procps python3 openssl clang libclang-rt-14-dev wrk
          shellcheck python3-yaml jq libyaml-dev chromium docker-compose systemd
          # the real mesos-cli (../shared/tools/avmesos-cli) that runs our plugin
          python3-toml python3-requests python3-urllib3 python3-docopt
          python3-kazoo python3-tenacity python3-ujson)
# --build-only: just what scripts/build.sh needs (the Dockerfile's builder).
if [ "${1:-}" = --build-only ]; then
  packages=(build-essential cmake pkg-config libcurl4-openssl-dev libhiredis-dev
            libjansson-dev libcivetweb-dev libssl-dev check python3 libyaml-dev)
fi

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
