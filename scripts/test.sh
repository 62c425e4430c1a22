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
# The RecordIO decoder and the event parser under libFuzzer (clang), for a
# fixed number of runs from the checked-in corpus with a fixed seed, so the
# run is short and repeatable. New inputs go to a scratch directory.
echo "=== fuzz (mesos stream) ==="
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DM3S_FUZZ=ON -DM3S_WERROR=ON >/dev/null
cmake --build build-fuzz --target fuzz_mesos_stream -j"$(nproc)"
# libFuzzer's own output (its statistics and a recommended dictionary of
# some 400 lines) goes to a file; only a failure shows its tail.
scratch=$(mktemp -d)
if build-fuzz/tests/fuzz_mesos_stream -runs=100000 -seed=1 -max_len=8192 "$scratch" tests/fuzz/corpus \
     >build-fuzz/fuzz.log 2>&1; then
  summary+=("fuzz: passed ($(grep -c . build-fuzz/fuzz.log) lines in build-fuzz/fuzz.log)")
else
  tail -n 60 build-fuzz/fuzz.log
  summary+=("fuzz: FAILED (build-fuzz/fuzz.log)")
  status=1
fi
rm -rf "$scratch"

echo "=== summary ==="
printf '%s\n' "${summary[@]}"
exit $status
