# Sourced, not run. free_port VAR [HOST]: sets VAR to a loopback port free on
# HOST (default 127.0.0.1) and reserved, by the same flock convention as
# tests/ports.py (which says why), until this shell and every child that
# inherited the lock's fd have exited. Call it directly, not in $(...): a
# subshell's lock would go with it.
# shellcheck shell=bash
M3S_PORTS_PY="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/ports.py"

# (Its locals start with _fp_ so that they cannot hide the caller's VAR.)
free_port() {
  local _fp_dir _fp_p _fp_fd
  _fp_dir="/tmp/m3s-test-ports-$(id -u)"
  for _fp_p in $(python3 "$M3S_PORTS_PY" --candidates "${2:-127.0.0.1}"); do
    exec {_fp_fd}>>"$_fp_dir/$_fp_p"
    if flock -n "$_fp_fd"; then
      printf -v "$1" %s "$_fp_p"
      return 0
    fi
    exec {_fp_fd}>&-
  done
  echo "free_port: no free port on ${2:-127.0.0.1}" >&2
  return 1
}
