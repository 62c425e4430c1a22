#!/usr/bin/env bash
# Daemon command line, as an operator meets it: --help lists every variable,
# bad values stop the start with exit code 2 and one clear line, secrets never
# show in --print-config or in the log, SIGTERM/SIGINT stop it with exit 0
# (under ASan that includes "no leaks").
set -uo pipefail
m3s=$1
tmp=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# shellcheck source=tests/ports.sh
. "$(dirname "$0")/../ports.sh"
free_port api_port || exit 1

# A clean environment: only what the sanitizers need, plus the test's own.
# (A command prefix, not a function: a backgrounded function would be a
# subshell, and the signals below must reach the daemon itself.)
run=(env -i PATH="$PATH" ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}"
     TSAN_OPTIONS="${TSAN_OPTIONS:-}" FRAMEWORK_HOSTNAME=m3s.test MESOS_MASTER=127.0.0.1:1
     REDIS_SERVER=127.0.0.1:1 FRAMEWORK_BIND=127.0.0.1
     FRAMEWORK_PORT="$api_port")

# --help: every variable of the original, from the code's table.
"${run[@]}" "$m3s" --help >"$tmp/help" 2>&1 && ok || fail "--help exit code"
for v in FRAMEWORK_USER FRAMEWORK_NAME FRAMEWORK_ROLE FRAMEWORK_PORT FRAMEWORK_HOSTNAME \
  FRAMEWORK_STATEFILE_PATH MESOS_MASTER MESOS_USERNAME MESOS_PASSWORD MESOS_PRINCIPAL MESOS_SSL \
  SKIP_SSL MESOS_CNI DOCKER_CNI DOMAIN PORTRANGE_FROM PORTRANGE_TO HEARTBEAT_INTERVAL \
  RECONCILE_WAIT CLEANUP_WAIT K3S_NODE_TIMEOUT REVIVE_WAIT REFUSE_OFFERS LOGLEVEL AUTH_USERNAME \
  AUTH_PASSWORD SSL_CRT_BASE64 SSL_KEY_BASE64 REDIS_SERVER REDIS_PASSWORD REDIS_DB M3S_PLUGINS \
  DOCKER_RUNNING TZ DS_COUNT K3S_SERVER_COUNT K3S_AGENT_COUNT DS_MYSQL DS_ETCD DS_PORT \
  DS_MYSQL_USERNAME DS_MYSQL_PASSWORD DS_MYSQL_SSL DS_CPU DS_CPU_LIMIT DS_MEM DS_MEM_LIMIT DS_DISK \
  DS_DISK_LIMIT IMAGE_MYSQL IMAGE_ETCD IMAGE_K3S VOLUME_DRIVER VOLUME_DS VOLUME_K3S_SERVER \
  K3S_DS_CONSTRAINT K3S_SERVER_CONSTRAINT K3S_AGENT_CONSTRAINT KUBERNETES_VERSION K3S_TOKEN \
  KUBECONFIG BOOTSTRAP_URL K3S_SERVER_STRING K3S_AGENT_STRING K3S_SERVER_PORT K3S_SERVER_CPU \
  K3S_SERVER_CPU_LIMIT K3S_SERVER_MEM K3S_SERVER_MEM_LIMIT K3S_SERVER_DISK K3S_SERVER_DISK_LIMIT \
  K3S_AGENT_CPU K3S_AGENT_CPU_LIMIT K3S_AGENT_MEM K3S_AGENT_MEM_LIMIT K3S_AGENT_DISK \
  K3S_AGENT_DISK_LIMIT K3S_AGENT_TCP_PORT K3S_SERVER_LABELS K3S_AGENT_LABELS K3S_NODE_ENV \
  K3S_SERVER_NODE_ENV K3S_AGENT_NODE_ENV K3S_NODE_ENV_DELIMITER K3S_SERVER_CUSTOM_DOCKER_PARAMETER \
  K3S_AGENT_CUSTOM_DOCKER_PARAMETER K3S_NODE_DOCKER_PARAMETER_DELIMITER K3S_DOCKER K3S_ENABLE_TAINT \
  K3S_DISABLE_SCHEDULING K3S_CONTAINER_DISK DOCKER_SHM_SIZE DOCKER_ULIMIT DOCKER_MEMORY_SWAP \
  DOCKER_SOCK CGROUP_V2 RESTRICT_DISK_ALLOCATION CUSTOM_DOCKER_RUNTIME ENABLE_REGISTRY_MIRROR \
  ENFORCE_MESOS_TASK_LIMITS K3S_CUSTOM_DOMAIN VAULT_TOKEN VAULT_URL VAULT_TIMEOUT KAFKA_PLUGIN_TOPIC; do
  grep -q "\b$v\b" "$tmp/help" && ok || fail "--help does not list $v"
done

"${run[@]}" "$m3s" --version | grep -Eq '^m3s [0-9]+\.[0-9]+\.[0-9]+' && ok || fail "--version"
"${run[@]}" "$m3s" --bogus >/dev/null 2>&1; [ $? -eq 2 ] && ok || fail "unknown argument must exit 2"

# Bad values: exit code 2 and one line naming the variable and the value.
bad() {
  local var=$1 val=$2
  "${run[@]}" "$var=$val" "$m3s" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  [ $rc -eq 2 ] || { fail "$var=$val: exit $rc, want 2"; return; }
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || { fail "$var=$val: want exactly one line, got: $(cat "$tmp/err")"; return; }
  grep -q -- "$var" "$tmp/err" && grep -qF -- "$val" "$tmp/err" && ok ||
    fail "$var=$val: line does not name variable and value: $(cat "$tmp/err")"
}
bad K3S_AGENT_COUNT abc
bad K3S_AGENT_COUNT -1
bad HEARTBEAT_INTERVAL 15
bad HEARTBEAT_INTERVAL 0s
bad RECONCILE_WAIT 10x
bad REDIS_DB two
bad MESOS_SSL maybe
bad FRAMEWORK_PORT 70000
bad DS_CPU lots
bad LOGLEVEL chatty
bad K3S_SERVER_LABELS '{not json'
bad K3S_NODE_ENV 'A=1,B'
bad REDIS_SERVER 'redis-without-port'

# --print-config: effective values, secrets masked.
secrets=(MESOS_PASSWORD=mesos-pw-1x2y AUTH_PASSWORD=api-pw-3z4w REDIS_PASSWORD=redis-pw-5v6u
         K3S_TOKEN=k3s-token-7t8s DS_MYSQL_PASSWORD=mysql-pw-9r0q)
"${run[@]}" "${secrets[@]}" K3S_AGENT_COUNT=3 "$m3s" --print-config >"$tmp/cfg" 2>&1 && ok || fail "--print-config exit"
grep -q '^K3S_AGENT_COUNT=3$' "$tmp/cfg" && ok || fail "--print-config shows K3S_AGENT_COUNT=3"
grep -q '^K3S_TOKEN=\*\*\*$' "$tmp/cfg" && ok || fail "--print-config masks K3S_TOKEN"
for s in "${secrets[@]}"; do
  grep -qF "${s#*=}" "$tmp/cfg" && fail "--print-config shows secret ${s%%=*}" || ok
done

# Start, wait for the start line, stop with a signal: exit 0, secrets never logged.
# Each run has its own log file: a reused one could show the previous run's
# start line before the new daemon has truncated it, and a signal sent then
# would reach a daemon that has not blocked its signals yet. The start line
# is written only after the daemon blocked them (src/main.c), and each
# signal is sent only once the daemon has logged the one before.
wait_for() { # wait_for FILE PATTERN: until the line is logged or the daemon is gone
  for _ in $(seq 1 600); do
    grep -q -- "$2" "$1" && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  grep -q -- "$2" "$1"
}
start_and_stop() {
  local sig=$1 log="$tmp/log.$1"
  "${run[@]}" "${secrets[@]}" LOGLEVEL=debug "$m3s" >"$log" 2>&1 &
  pid=$!
  wait_for "$log" "m3s .* started as framework" ||
    { fail "daemon did not start: $(cat "$log")"; kill "$pid"; wait "$pid"; pid=""; return; }
  kill -HUP "$pid"   # logged and ignored
  wait_for "$log" "SIGHUP ignored" && ok || fail "SIGHUP not logged"
  kill -"$sig" "$pid"
  wait "$pid"
  local rc=$?
  pid=""
  [ $rc -eq 0 ] && ok || fail "SIG$sig: exit $rc, want 0: $(tail -20 "$log")"
  grep -q "SIG$sig received" "$log" && ok || fail "SIG$sig not logged"
  for s in "${secrets[@]}"; do
    grep -qF "${s#*=}" "$log" && fail "log shows secret ${s%%=*}" || ok
  done
}
start_and_stop TERM
start_and_stop INT

# A certificate and a key that do not belong together: the REST API cannot
# serve TLS with them, so the daemon does not start (exit 2, one clear line).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/k1.pem" -out "$tmp/c1.pem" -days 1 \
  -subj /CN=127.0.0.1 >/dev/null 2>&1
openssl genrsa -out "$tmp/k2.pem" 2048 >/dev/null 2>&1
b64url() { base64 -w0 "$1" | tr '+/' '-_'; }
"${run[@]}" SSL_CRT_BASE64="$(b64url "$tmp/c1.pem")" SSL_KEY_BASE64="$(b64url "$tmp/k2.pem")" \
  "$m3s" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 2 ] && ok || fail "mismatched TLS key: exit $rc, want 2: $(tail -5 "$tmp/err" "$tmp/out")"
grep -qi "key" "$tmp/out" "$tmp/err" && ok || fail "mismatched TLS key: no line says why"

echo "cli: $passes passed, $fails failed"
[ $fails -eq 0 ]
