#!/usr/bin/env bash
# The main command: installs what is missing, builds, and runs the daemon in
# the foreground with the configuration from the environment (see
# `build/m3s --help`). Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh build -DCMAKE_BUILD_TYPE=Release
exec build/m3s "$@"
