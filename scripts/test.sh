#!/usr/bin/env bash
# The test command: installs what is missing, then builds and runs every test
# suite three times: an optimised build, AddressSanitizer+UndefinedBehavior-
# Sanitizer, and ThreadSanitizer. Any sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Reports are fatal and go to stderr, where ctest --output-on-failure shows
# them; halt_on_error makes the first one fail the test.
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:exitcode=66

status=0
summary=()
for variant in release asan tsan; do
  case $variant in
    release) opts=(-DCMAKE_BUILD_TYPE=Release) ;;
    asan) opts=(-DCMAKE_BUILD_TYPE=Debug -DM3S_SANITIZER=address -DM3S_DEBUG_YIELD=ON) ;;
    tsan) opts=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DM3S_SANITIZER=thread -DM3S_DEBUG_YIELD=ON) ;;
  esac
  echo "=== $variant build ==="
  scripts/build.sh "build-$variant" "${opts[@]}"
  echo "=== $variant tests ==="
  if ctest --test-dir "build-$variant" --output-on-failure -j2 --timeout 900; then
    summary+=("$variant: passed")
  else
    summary+=("$variant: FAILED")
    status=1
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
