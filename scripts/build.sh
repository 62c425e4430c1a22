#!/usr/bin/env bash
# scripts/build.sh DIR [--target NAME]... [cmake options...]: configure and
# build one tree; with --target, only those targets (and what they need).
set -euo pipefail
dir=$1; shift
opts=() targets=()
while [ $# -gt 0 ]; do
  case $1 in
    --target) targets+=(--target "$2"); shift 2 ;;
    *) opts+=("$1"); shift ;;
  esac
done
cmake -S "$(dirname "$0")/.." -B "$dir" -DM3S_WERROR=ON "${opts[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)" "${targets[@]}"
