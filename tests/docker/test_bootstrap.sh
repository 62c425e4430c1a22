#!/usr/bin/env bash
# docker/bootstrap/bootstrap.sh: shellcheck, then its decisions through the
# dry-run mode (M3S_BOOTSTRAP_DRY_RUN=1: the final argv one argument per line
# on stdout, what it would do on stderr; nothing installed or started).
# Every case runs under dash (POSIX sh, Debian's and Ubuntu's /bin/sh) and
# bash, with a clean environment holding the secrets the daemon passes, and
# checks that none of them is ever printed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
script=$root/docker/bootstrap/bootstrap.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
passes=0
ok() { passes=$((passes + 1)); }
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# ---- shellcheck --------------------------------------------------------------
if ! command -v shellcheck >/dev/null 2>&1; then
  fail "shellcheck is not installed (apt-get install -y shellcheck; scripts/setup.sh does)"
else
  if shellcheck "$root"/docker/bootstrap/*.sh "$0"; then ok; else fail "shellcheck"; fi
fi
for sh in dash bash; do
  if "$sh" -n "$script"; then ok; else fail "$sh -n: syntax"; fi
done

# ---- fixtures ----------------------------------------------------------------
TOKEN='tok-S3cret-7731'
DB_PASSWORD='dbPa55-9901'
REDIS_PASSWORD='rdPa55-4417'
DATASTORE="mysql://root:$DB_PASSWORD@tcp(m3sdatastore.local:3306)/k3s"
sandbox=$tmp/sandbox
mkdir -p "$sandbox/manifests" "$tmp/bin" "$tmp/side"
cp "$root/docker/manifests/"*.yaml "$sandbox/manifests/"
printf '#!/bin/sh\nexit 0\n' >"$tmp/bin/m3s-controller"
chmod +x "$tmp/bin/m3s-controller"
printf '#!/bin/sh\necho k3s version v1.31.5+k3s1\n' >"$tmp/bin/k3s"
chmod +x "$tmp/bin/k3s"
printf 'version = 3\n' >"$tmp/side/config-v3.toml.tmpl"

# run SHELL ROLE [VAR=value...] -- ARGS...: the bootstrap in a clean
# environment like the daemon's server/agent task; stdout in $tmp/out,
# stderr in $tmp/err, the exit code in $rc.
run() {
  local sh=$1 role=$2
  shift 2
  local vars=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  env -i PATH="/usr/bin:/bin" M3S_BOOTSTRAP_DRY_RUN=1 MESOS_SANDBOX="$sandbox" \
    SERVICE_NAME="m3s:$role" KUBERNETES_VERSION=v1.31.5 K3SFRAMEWORK_TYPE="$role" \
    K3S_URL=https://m3sserver.local:6443 K3S_TOKEN="$TOKEN" K3S_KUBECONFIG_MODE=666 \
    KUBECONFIG=/etc/rancher/k3s/k3s.yaml M3S_CONTROLLER__REDIS_SERVER=redis:6379 \
    M3S_CONTROLLER__REDIS_PASSWORD="$REDIS_PASSWORD" M3S_CONTROLLER__REDIS_DB=1 \
    M3S_CONTROLLER__REDIS_PREFIX=m3s M3S_CONTROLLER__LOGLEVEL=info \
    K3S_DATASTORE_ENDPOINT="$DATASTORE" MESOS_SANDBOX_VAR= TZ=Etc/UTC MESOS_TASK_ID=t-1 \
    M3S_CONTROLLER_BIN="$tmp/bin/m3s-controller" \
    "${vars[@]}" "$sh" "$script" "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  # No secret ever reaches the output, whatever the case.
  for s in "$TOKEN" "$DB_PASSWORD" "$REDIS_PASSWORD" "$DATASTORE"; do
    if grep -qF -- "$s" "$tmp/out" "$tmp/err"; then fail "$sh: a secret was printed: $s"; fi
  done
}

# expect_argv NAME ARGS...: stdout is exactly ARGS, one per line.
expect_argv() {
  local name=$1
  shift
  if [ "$rc" -ne 0 ]; then
    fail "$name: exit $rc: $(cat "$tmp/err")"
    return
  fi
  printf '%s\n' "$@" >"$tmp/want"
  if cmp -s "$tmp/want" "$tmp/out"; then ok; else
    fail "$name: argv differs"
    diff "$tmp/want" "$tmp/out" >&2
  fi
}

expect_err() {  # expect_err NAME TEXT: stderr has TEXT
  if grep -qF -- "$2" "$tmp/err"; then ok; else fail "$1: stderr lacks \"$2\": $(cat "$tmp/err")"; fi
}

expect_no_err() {  # expect_no_err NAME TEXT: stderr does not have TEXT
  if grep -qF -- "$2" "$tmp/err"; then fail "$1: stderr has \"$2\""; else ok; fi
}

expect_fail() {  # expect_fail NAME TEXT: non-zero exit, TEXT on stderr, no argv
  if [ "$rc" -eq 0 ]; then fail "$1: exit 0, want failure"; return; fi
  [ -s "$tmp/out" ] && fail "$1: printed an argv although it failed"
  expect_err "$1" "$2"
}

# What the daemon's TaskInfo builder sends (K3S_SERVER_STRING default,
# K3S_DOCKER=true, taint, task id label), plus tokens the shell must not
# touch: spaces, quotes, globs, variables, backslashes, an empty one.
server_args=(/usr/local/bin/k3s server --cluster-cidr=10.2.0.0/16 --service-cidr=10.3.0.0/16
  --kube-scheduler-arg=leader-elect=false --snapshotter=native --flannel-backend=vxlan
  --container-runtime-endpoint unix:///var/run/cri-dockerd.sock --tls-san=m3sserver
  --node-label m3s.aventer.biz/taskid=0f1e2d3c-aaaa-bbbb-cccc-001122334455
  --node-taint node-role.kubernetes.io/master=NoSchedule:NoSchedule --tls-san=agent1.example)
# shellcheck disable=SC2016  # $HOME and `id` are meant literally
odd_args=("with space" "two  spaces" "*" "/etc/*" "[ab]" "it's" 'say "hi"' '$HOME' '`id`'
  'back\slash' "" "-" "--" "tab	inside" "ünïcødé")
agent_args=(/usr/local/bin/k3s agent --snapshotter=native --with-node-id --kubelet-arg
  node-labels=m3s.aventer.biz/taskid=0f1e2d3c-aaaa-bbbb-cccc-001122334455)

for sh in dash bash; do
  # -- argv preserved exactly ---------------------------------------------------
  run "$sh" server -- "${server_args[@]}" "${odd_args[@]}"
  expect_argv "$sh server argv" "${server_args[@]}" "${odd_args[@]}"
  expect_err "$sh server runtime" "container runtime cri-dockerd"
  expect_err "$sh server dockerd" "would start dockerd"
  expect_err "$sh server cri-dockerd" "would start cri-dockerd --network-plugin=cni"
  expect_err "$sh server controller" "would start $tmp/bin/m3s-controller in the background"
  expect_err "$sh server manifests" "/var/lib/rancher/k3s/server/manifests/dashboard.yaml"
  expect_err "$sh server install" "would install k3s v1.31.5+k3s1"
  expect_err "$sh server exec line" "'with space'"

  run "$sh" agent -- "${agent_args[@]}" "${odd_args[@]}"
  expect_argv "$sh agent argv" "${agent_args[@]}" "${odd_args[@]}"
  expect_err "$sh agent runtime" "container runtime containerd"
  expect_no_err "$sh agent: no controller" "m3s-controller"
  expect_no_err "$sh agent: no manifests" "manifests"
  expect_no_err "$sh agent: no docker" "dockerd"

  # -- K3S_DOCKER ---------------------------------------------------------------
  # Not in the arguments yet: added once, at the end.
  run "$sh" agent K3S_DOCKER=true -- "${agent_args[@]}"
  expect_argv "$sh K3S_DOCKER adds" "${agent_args[@]}" --container-runtime-endpoint \
    unix:///var/run/cri-dockerd.sock
  expect_err "$sh K3S_DOCKER runtime" "container runtime cri-dockerd"
  # Already there, as the daemon writes it (two tokens) or as one token:
  # not added again.
  run "$sh" server K3S_DOCKER=TRUE -- "${server_args[@]}"
  expect_argv "$sh K3S_DOCKER present" "${server_args[@]}"
  run "$sh" agent K3S_DOCKER=yes -- "${agent_args[@]}" \
    --container-runtime-endpoint=unix:///var/run/cri-dockerd.sock
  expect_argv "$sh K3S_DOCKER present (=)" "${agent_args[@]}" \
    --container-runtime-endpoint=unix:///var/run/cri-dockerd.sock
  # k3s' own --docker: dockerd only, no endpoint added.
  run "$sh" agent K3S_DOCKER=1 -- "${agent_args[@]}" --docker
  expect_argv "$sh --docker" "${agent_args[@]}" --docker
  expect_err "$sh --docker runtime" "container runtime k3s-docker"
  expect_no_err "$sh --docker: no cri-dockerd" "would start cri-dockerd"
  # Off or unset: containerd, nothing added.
  run "$sh" agent K3S_DOCKER=false -- "${agent_args[@]}"
  expect_argv "$sh K3S_DOCKER=false" "${agent_args[@]}"
  expect_err "$sh K3S_DOCKER=false runtime" "container runtime containerd"
  # Contradictions and bad values stop the start.
  run "$sh" agent K3S_DOCKER=true -- "${agent_args[@]}" \
    --container-runtime-endpoint unix:///run/other.sock
  expect_fail "$sh K3S_DOCKER vs other endpoint" "name another runtime endpoint"
  run "$sh" agent K3S_DOCKER=maybe -- "${agent_args[@]}"
  expect_fail "$sh K3S_DOCKER=maybe" 'K3S_DOCKER="maybe": expected true or false'

  # -- the dry-run switch is a boolean; a typo must not mean "run for real" --
  run "$sh" agent M3S_BOOTSTRAP_DRY_RUN=yes -- "${agent_args[@]}"
  expect_argv "$sh dry run = yes" "${agent_args[@]}"
  run "$sh" agent M3S_BOOTSTRAP_DRY_RUN=dry -- "${agent_args[@]}"
  expect_fail "$sh dry run typo" 'M3S_BOOTSTRAP_DRY_RUN="dry": expected true or false'

  # -- role -------------------------------------------------------------------------
  run "$sh" worker -- "${agent_args[@]}"
  expect_fail "$sh bad role" 'K3SFRAMEWORK_TYPE="worker"'
  run "$sh" server -- "${agent_args[@]}"
  expect_fail "$sh role mismatch" "K3SFRAMEWORK_TYPE is server but the command line runs k3s agent"
  run "$sh" agent --
  expect_fail "$sh no arguments" "no k3s command line"
  run "$sh" server M3S_CONTROLLER_BIN= PATH=/usr/bin:/bin -- "${server_args[@]}"
  expect_fail "$sh server without controller" "m3s-controller is neither in PATH nor in"
  run "$sh" server M3S_CONTROLLER_BIN= PATH="$tmp/bin:/usr/bin:/bin" -- "${server_args[@]}"
  expect_argv "$sh controller from PATH" "${server_args[@]}"
  expect_err "$sh controller from PATH" "would start $tmp/bin/m3s-controller"

  # -- k3s present / version --------------------------------------------------------
  run "$sh" agent -- "$tmp/bin/k3s" agent
  expect_argv "$sh k3s present" "$tmp/bin/k3s" agent
  expect_err "$sh k3s present" "k3s is in the image ($tmp/bin/k3s)"
  expect_no_err "$sh k3s present: no install" "would install"
  run "$sh" agent PATH="$tmp/bin:/usr/bin:/bin" -- k3s agent
  expect_err "$sh k3s in PATH" "k3s is in the image ($tmp/bin/k3s)"
  run "$sh" agent KUBERNETES_VERSION=1.30.2 -- /opt/k3s/k3s agent
  expect_err "$sh version without v" "would install k3s v1.30.2+k3s1"
  expect_err "$sh install path" "to /opt/k3s/k3s"
  run "$sh" agent KUBERNETES_VERSION=v1.31.5+k3s2 -- /usr/local/bin/k3s agent
  expect_err "$sh k3s release kept" "would install k3s v1.31.5+k3s2 from"
  run "$sh" agent 'KUBERNETES_VERSION=v1; rm -rf /' -- /usr/local/bin/k3s agent
  expect_fail "$sh bad version" "is not a version"

  # -- side-loaded configuration ---------------------------------------------------
  run "$sh" agent M3S_SIDELOAD_DIR="$tmp/side" -- "${agent_args[@]}"
  expect_argv "$sh sideload argv" "${agent_args[@]}"
  expect_err "$sh containerd template" \
    "cp $tmp/side/config-v3.toml.tmpl /var/lib/rancher/k3s/agent/etc/containerd/config-v3.toml.tmpl"
  cp "$tmp/side/config-v3.toml.tmpl" "$sandbox/config.toml.tmpl"
  printf 'mirrors: {}\n' >"$sandbox/registries.yaml"
  run "$sh" agent K3S_DOCKER=true -- "${agent_args[@]}"
  expect_err "$sh template from the sandbox" \
    "cp $sandbox/config.toml.tmpl /var/lib/rancher/k3s/agent/etc/containerd/config.toml.tmpl"
  expect_err "$sh template vs docker" "config.toml.tmpl has no effect"
  expect_err "$sh registries" "cp $sandbox/registries.yaml /etc/rancher/k3s/registries.yaml"
  rm -f "$sandbox/config.toml.tmpl" "$sandbox/registries.yaml"
  run "$sh" agent -- "${agent_args[@]}"
  expect_no_err "$sh no template" "containerd/config"

  # -- manifests --------------------------------------------------------------------
  run "$sh" server M3S_MANIFESTS_DIR=none -- "${server_args[@]}"
  expect_err "$sh manifests off" "add-on manifests: none"
  expect_no_err "$sh manifests off" "dashboard.yaml"
  cp "$root/docker/manifests/dashboard.yaml" "$tmp/side/Bad_Name.yaml"
  run "$sh" server M3S_MANIFESTS_DIR="$tmp/side" -- "${server_args[@]}"
  expect_err "$sh manifest name check" "skipped $tmp/side/Bad_Name.yaml"
  rm -f "$tmp/side/Bad_Name.yaml"

  # -- MESOS_SANDBOX_VAR -------------------------------------------------------------
  if command -v jq >/dev/null 2>&1; then
    run "$sh" agent MESOS_SANDBOX_VAR='{"HTTP_PROXY":"http://proxy:3128","NO_PROXY":"a b"}' \
      -- "${agent_args[@]}"
    expect_argv "$sh sandbox vars argv" "${agent_args[@]}"
    expect_err "$sh sandbox var exported" "exported HTTP_PROXY from MESOS_SANDBOX_VAR"
    expect_no_err "$sh sandbox var value not logged" "proxy:3128"
    run "$sh" agent MESOS_SANDBOX_VAR='["x"]' -- "${agent_args[@]}"
    expect_fail "$sh sandbox var not an object" "MESOS_SANDBOX_VAR is not a JSON object"
    run "$sh" agent MESOS_SANDBOX_VAR='{"A B":"x"}' -- "${agent_args[@]}"
    expect_fail "$sh sandbox var bad name" "is not a variable name"
  else
    fail "jq is not installed (apt-get install -y jq; scripts/setup.sh does)"
  fi

  # -- secrets given on the command line are masked in the log ----------------------
  run "$sh" server -- "${server_args[@]}" --token=cmdline-T0ken --datastore-endpoint \
    "mysql://u:cmdline-Pw@tcp(x)/k3s"
  expect_err "$sh masked token" "--token=***"
  expect_no_err "$sh masked token" "cmdline-T0ken"
  expect_no_err "$sh masked endpoint" "cmdline-Pw"
done

# ---- a real run, agent with k3s' containerd: exec with the argv intact ------
# The fake k3s reports its argv and which variables it got. Only where the
# cgroup v2 fix has nothing to do (it would move this machine's processes);
# an agent with containerd writes nothing outside the sandbox.
cat >"$tmp/bin/k3s" <<'EOF'
#!/bin/sh
printf '%s\n' "$0" "$@"
echo "token:${K3S_TOKEN:+set}"
echo "redis-password:${M3S_CONTROLLER__REDIS_PASSWORD:-unset}"
EOF
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  echo "note: cgroup v2 here: the real-run case is skipped" >&2
else
  for sh in dash bash; do
    run "$sh" agent M3S_BOOTSTRAP_DRY_RUN=0 -- "$tmp/bin/k3s" agent --with-node-id "${odd_args[@]}"
    expect_argv "$sh real run" "$tmp/bin/k3s" agent --with-node-id "${odd_args[@]}" \
      token:set redis-password:unset
  done
fi

echo "bootstrap: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
