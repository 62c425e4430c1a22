#!/usr/bin/env bash
# scripts/build.sh DIR [cmake options...]: configure and build one tree.
set -euo pipefail
dir=$1; shift
cmake -S "$(dirname "$0")/.." -B "$dir" -DM3S_WERROR=ON "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
