#!/bin/sh
# M3s bootstrap for the K3s server and agent containers.
#
# Mesos fetches this file from BOOTSTRAP_URL into the task sandbox as
# `bootstrap` and the container runs it with the k3s command line as its
# arguments, one token per argument:
#
#   /mnt/mesos/sandbox/bootstrap /usr/local/bin/k3s server --tls-san=... ...
#
# It prepares the container, then replaces itself with that command line,
# argument boundaries preserved (exec "$@"). Secrets (K3S_TOKEN,
# K3S_DATASTORE_ENDPOINT, the Redis password) stay in the environment, where
# k3s and m3s-controller read them; this script never prints them and never
# runs with `set -x`.
#
# From the M3s daemon's TaskInfo (src/actors/taskinfo.c):
#   K3SFRAMEWORK_TYPE     server or agent
#   KUBERNETES_VERSION    e.g. v1.31.5; k3s <version>+k3s1 is installed when
#                         the image has no k3s
#   K3S_TOKEN, K3S_URL, K3S_DATASTORE_*, K3S_KUBECONFIG_MODE   read by k3s
#   M3S_CONTROLLER__*, KUBECONFIG   read by m3s-controller (servers)
#   MESOS_SANDBOX_VAR     a JSON object of extra variables to export (jq)
# Optional, e.g. through K3S_NODE_ENV / K3S_SERVER_NODE_ENV /
# K3S_AGENT_NODE_ENV or a custom image:
#   K3S_DOCKER            true: Docker (dockerd + cri-dockerd) runs the pods;
#                         adds the cri-dockerd endpoint unless the arguments
#                         already name it (the daemon adds it itself when its
#                         own K3S_DOCKER is true)
#   M3S_SIDELOAD_DIR      where to look for config.toml.tmpl,
#                         config-v3.toml.tmpl (containerd templates, copied
#                         to /var/lib/rancher/k3s/agent/etc/containerd/) and
#                         registries.yaml (copied to /etc/rancher/k3s/);
#                         default: the sandbox, then /etc/m3s
#   M3S_MANIFESTS_DIR     add-on manifests (*.yaml) copied on servers into
#                         K3s' auto-deploy folder; default: the first of
#                         $MESOS_SANDBOX/manifests, /usr/share/m3s/manifests;
#                         "none" installs none
#   M3S_CONTROLLER_BIN    the m3s-controller to start on servers; default:
#                         from PATH, else $MESOS_SANDBOX/m3s-controller
#   M3S_K3S_DOWNLOAD_URL  k3s release mirror (default GitHub's releases)
#   M3S_BOOTSTRAP_DRY_RUN 1: change nothing, start nothing; print the final
#                         argv one argument per line on stdout and what would
#                         be done on stderr
set -eu

CRI_DOCKERD_ENDPOINT=unix:///var/run/cri-dockerd.sock
CNI_CONF_DIR=/var/lib/rancher/k3s/agent/etc/cni/net.d
CONTAINERD_DIR=/var/lib/rancher/k3s/agent/etc/containerd
MANIFESTS_DST=/var/lib/rancher/k3s/server/manifests
SANDBOX=${MESOS_SANDBOX:-/mnt/mesos/sandbox}
DRY_RUN='' # set below, once is_true exists

log() { printf 'bootstrap: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
dry() { [ "$DRY_RUN" = 1 ]; }

# Runs "$@", or only says so in a dry run.
act() {
  if dry; then
    log "(dry run) would: $*"
  else
    "$@"
  fi
}

# is_true NAME VALUE: the daemon's booleans (true/false, 1/0, yes/no, on/off,
# any case); empty is false; anything else stops the start.
is_true() {
  case $2 in
    '') return 1 ;;
    [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn]) return 0 ;;
    [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff]) return 1 ;;
    *) die "$1=\"$2\": expected true or false" ;;
  esac
}

if is_true M3S_BOOTSTRAP_DRY_RUN "${M3S_BOOTSTRAP_DRY_RUN:-}"; then
  DRY_RUN=1
fi

# The command line for the log: values of secret flags masked, arguments
# that need it quoted.
show_args() {
  out='' mask=''
  for a in "$@"; do
    if [ -n "$mask" ]; then
      a='***' mask=''
    else
      case $a in
        --token | -t | --agent-token | --datastore-endpoint | --etcd-s3-secret-key) mask=1 ;;
        --token=* | --agent-token=* | --datastore-endpoint=* | --etcd-s3-secret-key=*)
          a="${a%%=*}=***" ;;
      esac
    fi
    case $a in
      '' | *[!A-Za-z0-9_./:=,+@%-]*)
        a="'$(printf '%s' "$a" | sed "s/'/'\\\\''/g")'" ;;
    esac
    out="$out $a"
  done
  printf '%s\n' "${out# }"
}

# ---- what the arguments ask for ---------------------------------------------

# decide_runtime ARGS...: sets RUNTIME (containerd, cri-dockerd, k3s-docker or
# custom) and ADD_ENDPOINT (1 when the cri-dockerd endpoint must be appended).
decide_runtime() {
  endpoint='' docker_flag=''
  while [ $# -gt 0 ]; do
    case $1 in
      --container-runtime-endpoint=*) endpoint=${1#*=} ;;
      --container-runtime-endpoint) endpoint=${2-}; [ $# -lt 2 ] || shift ;;
      --docker) docker_flag=1 ;;
    esac
    shift
  done
  ADD_ENDPOINT=''
  if [ -n "$docker_flag" ]; then
    RUNTIME=k3s-docker # k3s runs its own cri-dockerd; it needs dockerd
  elif [ "$endpoint" = "$CRI_DOCKERD_ENDPOINT" ]; then
    RUNTIME=cri-dockerd
  elif [ -n "$endpoint" ]; then
    RUNTIME=custom
  else
    RUNTIME=containerd
  fi
  if is_true K3S_DOCKER "${K3S_DOCKER:-}"; then
    case $RUNTIME in
      containerd) RUNTIME=cri-dockerd ADD_ENDPOINT=1 ;;
      custom) die "K3S_DOCKER is true but the arguments name another runtime endpoint ($endpoint)" ;;
    esac
  fi
}

# The k3s subcommand in ARGS (the first word after the program that is not
# an option), or nothing.
subcommand() {
  shift
  for a in "$@"; do
    case $a in -*) ;; *) printf '%s\n' "$a"; return 0 ;; esac
  done
}

# The k3s release for KUBERNETES_VERSION: v1.31.5 -> v1.31.5+k3s1; a
# version that already names a k3s release is kept.
k3s_release() {
  v=${KUBERNETES_VERSION:-}
  [ -n "$v" ] || { log "error: KUBERNETES_VERSION is not set"; return 1; }
  case $v in v*) ;; *) v=v$v ;; esac
  case $v in *+k3s*) ;; *) v=$v+k3s1 ;; esac
  case $v in
    *[!A-Za-z0-9.+-]*)
      log "error: KUBERNETES_VERSION=\"$KUBERNETES_VERSION\" is not a version"
      return 1 ;;
  esac
  printf '%s\n' "$v"
}

# ---- steps ----------------------------------------------------------------

# MESOS_SANDBOX_VAR: a JSON object whose members become environment
# variables (names logged, values not: they may be secrets).
export_sandbox_vars() {
  [ -n "${MESOS_SANDBOX_VAR:-}" ] || return 0
  command -v jq >/dev/null 2>&1 || die "MESOS_SANDBOX_VAR is set but jq is not in the image"
  pairs=$(printf '%s' "$MESOS_SANDBOX_VAR" | jq -r 'if type != "object" then error("not an object")
      else to_entries[] | .key + "=" + (.value | if type == "string" then . else tojson end | @base64)
      end') || die "MESOS_SANDBOX_VAR is not a JSON object"
  while IFS= read -r pair; do
    [ -n "$pair" ] || continue
    name=${pair%%=*}
    case $name in
      '' | [0-9]* | *[!A-Za-z0-9_]*) die "MESOS_SANDBOX_VAR: \"$name\" is not a variable name" ;;
    esac
    value=$(printf '%s' "${pair#*=}" | base64 -d)
    export "$name=$value"
    log "exported $name from MESOS_SANDBOX_VAR"
  done <<EOF
$pairs
EOF
}

# cgroup v2 inside a container: enabling controllers for children needs an
# empty root cgroup, so every process moves to /init first. Done only in a
# private cgroup namespace (the root is our own: /proc/self/cgroup says
# "0::/"), never on a hierarchy shared with the host.
cgroup_v2_fix() {
  [ -f /sys/fs/cgroup/cgroup.controllers ] || return 0
  if [ "$(cat /proc/self/cgroup)" != "0::/" ]; then
    log "cgroup v2 without a private cgroup namespace: left alone (the daemon's CGROUP_V2=true gives the container one)"
    return 0
  fi
  if dry; then
    log "(dry run) would move every process to /sys/fs/cgroup/init and enable the controllers"
    return 0
  fi
  mkdir -p /sys/fs/cgroup/init
  # The list is taken whole first: moving processes changes the file.
  pids=$(cat /sys/fs/cgroup/cgroup.procs)
  while read -r pid; do
    printf '%s\n' "$pid" >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null || :
  done <<EOF
$pids
EOF
  read -r controllers </sys/fs/cgroup/cgroup.controllers || :
  for c in $controllers; do
    printf '+%s\n' "$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
      log "cgroup v2: cannot enable the $c controller"
  done
}

fetch() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsSL --retry 5 --retry-delay 2 --connect-timeout 20 -o "$2" "$1"
  else
    wget -q -T 60 -O "$2" "$1"
  fi
}

# install_k3s PATH RELEASE: the release's binary for this machine, checked
# against the release's sha256 list, installed at PATH.
install_k3s() {
  case $(uname -m) in
    x86_64 | amd64) suffix='' sums=amd64 ;;
    aarch64 | arm64) suffix=-arm64 sums=arm64 ;;
    armv7* | armhf) suffix=-armhf sums=arm ;;
    s390x) suffix=-s390x sums=s390x ;;
    *) die "no k3s release for $(uname -m)" ;;
  esac
  url=${M3S_K3S_DOWNLOAD_URL:-https://github.com/k3s-io/k3s/releases/download}/$2
  if dry; then
    log "(dry run) would install k3s $2 from $url/k3s$suffix to $1"
    return 0
  fi
  log "installing k3s $2 from $url to $1"
  tmp=$(mktemp -d)
  fetch "$url/sha256sum-$sums.txt" "$tmp/sums" || die "cannot download $url/sha256sum-$sums.txt"
  fetch "$url/k3s$suffix" "$tmp/k3s$suffix" || die "cannot download $url/k3s$suffix"
  awk -v f="k3s$suffix" '$2 == f' "$tmp/sums" >"$tmp/sum"
  [ -s "$tmp/sum" ] || die "k3s$suffix is not in the release's sha256 list"
  (cd "$tmp" && sha256sum -c sum >/dev/null) || die "k3s $2: the download does not match its sha256"
  mkdir -p "$(dirname "$1")"
  chmod 0755 "$tmp/k3s$suffix"
  mv "$tmp/k3s$suffix" "$1"
  rm -rf "$tmp"
  command -v kubectl >/dev/null 2>&1 || ln -s "$1" "$(dirname "$1")/kubectl" 2>/dev/null || :
}

# ensure_k3s PROGRAM: k3s as named by the first argument, installed at the
# pinned release when the image does not have it.
ensure_k3s() {
  case ${1##*/} in
    k3s) ;;
    *) log "the command is $1, not k3s: nothing to install"; return 0 ;;
  esac
  release=$(k3s_release) || exit 1
  case $1 in
    */*) path=$1 ;;
    *) path=$(command -v "$1" 2>/dev/null) || path='' ;;
  esac
  if [ -n "$path" ] && [ -x "$path" ]; then
    log "k3s is in the image ($path); KUBERNETES_VERSION asks for $release"
  else
    install_k3s "${path:-/usr/local/bin/k3s}" "$release"
  fi
}

# sideload DIR...: containerd templates and registries.yaml, from the first
# DIR that has them (see the header).
sideload() {
  for name in config.toml.tmpl config-v3.toml.tmpl registries.yaml; do
    for d in "$@"; do
      [ -f "$d/$name" ] || continue
      case $name in
        registries.yaml) dst=/etc/rancher/k3s ;;
        *)
          dst=$CONTAINERD_DIR
          [ "$RUNTIME" = containerd ] ||
            log "note: $name has no effect: the container runtime is $RUNTIME, not k3s' containerd" ;;
      esac
      act mkdir -p "$dst"
      act cp "$d/$name" "$dst/$name"
      dry || log "installed $d/$name as $dst/$name"
      break
    done
  done
}

# start_daemon NAME LOG SOCKET COMMAND...: COMMAND in the background, its
# output in LOG; waits (up to 120 s) until SOCKET exists.
start_daemon() {
  name=$1 out=$2 sock=$3
  shift 3
  if ! command -v "$1" >/dev/null 2>&1; then
    dry || die "the $RUNTIME runtime needs $1, which is not in the image"
    log "(dry run) note: $1 is not in this image"
  fi
  if dry; then
    log "(dry run) would start $(show_args "$@") (log $out) and wait for $sock"
    return 0
  fi
  "$@" >>"$out" 2>&1 &
  log "started $name (pid $!, log $out)"
  i=0
  until [ -S "$sock" ]; do
    kill -0 "$!" 2>/dev/null || die "$name exited at start; see $out"
    i=$((i + 1))
    [ "$i" -le 120 ] || die "$name did not create $sock within 120 s; see $out"
    sleep 1
  done
}

start_runtime() {
  case $RUNTIME in
    cri-dockerd | k3s-docker)
      act mkdir -p /etc/cni/net.d
      start_daemon dockerd "$SANDBOX/dockerd.log" /var/run/docker.sock dockerd ;;
    *) log "container runtime: $RUNTIME"; return 0 ;;
  esac
  [ "$RUNTIME" = cri-dockerd ] || return 0
  start_daemon cri-dockerd "$SANDBOX/cri-dockerd.log" "${CRI_DOCKERD_ENDPOINT#unix://}" \
    cri-dockerd --network-plugin=cni --cni-bin-dir=/usr/lib/cni --cni-conf-dir="$CNI_CONF_DIR/"
}

# Add-on manifests into K3s' auto-deploy folder (servers). The AddOn name is
# the file name, so it must be a lowercase DNS-style name.
install_manifests() {
  src=${M3S_MANIFESTS_DIR:-}
  if [ "$src" = none ]; then
    log "add-on manifests: none (M3S_MANIFESTS_DIR=none)"
    return 0
  fi
  if [ -z "$src" ]; then
    for d in "$SANDBOX/manifests" /usr/share/m3s/manifests; do
      [ -d "$d" ] && { src=$d; break; }
    done
  fi
  if [ -z "$src" ] || [ ! -d "$src" ]; then
    log "warning: no add-on manifests (looked in ${src:-$SANDBOX/manifests and /usr/share/m3s/manifests}); the dashboard is not installed"
    return 0
  fi
  act mkdir -p "$MANIFESTS_DST"
  for f in "$src"/*.yaml "$src"/*.yml; do
    [ -f "$f" ] || continue
    base=${f##*/}
    case ${base%.*} in
      '' | *[!a-z0-9.-]* | [.-]* | *[.-])
        log "warning: skipped $f: K3s needs a lowercase name of letters, digits, '-' and '.'"
        continue ;;
    esac
    act cp "$f" "$MANIFESTS_DST/$base"
    dry || log "add-on manifest $base installed"
  done
}

# m3s-controller in the background (servers): publishes the kubeconfig to
# Redis. It gets neither the K3s token nor the datastore credentials, and is
# restarted if it ever dies of something else than a stop signal.
start_controller() {
  bin=${M3S_CONTROLLER_BIN:-}
  if [ -z "$bin" ]; then
    if command -v m3s-controller >/dev/null 2>&1; then
      bin=$(command -v m3s-controller)
    elif [ -x "$SANDBOX/m3s-controller" ]; then
      bin=$SANDBOX/m3s-controller
    fi
  fi
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    die "m3s-controller is neither in PATH nor in $SANDBOX: without it the daemon never gets the kubeconfig"
  fi
  if dry; then
    log "(dry run) would start $bin in the background"
    return 0
  fi
  (
    unset K3S_TOKEN K3S_AGENT_TOKEN K3S_DATASTORE_ENDPOINT K3S_DATASTORE_KEYFILE
    while :; do
      "$bin" && exit 0
      log "m3s-controller exited with status $?; starting it again in 5 s"
      sleep 5
    done
  ) &
  log "started m3s-controller $bin (pid $!)"
}

# ---- main -----------------------------------------------------------------

[ $# -gt 0 ] || die "no k3s command line in the arguments"
ROLE=${K3SFRAMEWORK_TYPE:-}
case $ROLE in
  server | agent) ;;
  '') die "K3SFRAMEWORK_TYPE is not set (server or agent)" ;;
  *) die "K3SFRAMEWORK_TYPE=\"$ROLE\": expected server or agent" ;;
esac
sub=$(subcommand "$@")
case $sub in
  server | agent)
    [ "$sub" = "$ROLE" ] || die "K3SFRAMEWORK_TYPE is $ROLE but the command line runs k3s $sub" ;;
esac

decide_runtime "$@"
if [ -n "$ADD_ENDPOINT" ]; then
  set -- "$@" --container-runtime-endpoint "$CRI_DOCKERD_ENDPOINT"
fi
log "role $ROLE, container runtime $RUNTIME${DRY_RUN:+, dry run}"

export_sandbox_vars
cgroup_v2_fix
ensure_k3s "$1"
if [ -n "${M3S_SIDELOAD_DIR:-}" ]; then
  sideload "$M3S_SIDELOAD_DIR"
else
  sideload "$SANDBOX" /etc/m3s
fi
start_runtime
if [ "$ROLE" = server ]; then
  install_manifests
  start_controller
fi

# k3s needs none of the controller's settings (one of them is the Redis
# password).
unset M3S_CONTROLLER__REDIS_SERVER M3S_CONTROLLER__REDIS_PASSWORD M3S_CONTROLLER__REDIS_DB \
  M3S_CONTROLLER__REDIS_PREFIX M3S_CONTROLLER__LOGLEVEL M3S_CONTROLLER__ENABLE_TAINT \
  M3S_CONTROLLER__REDIS_SENTINELS M3S_CONTROLLER__REDIS_MASTER_NAME \
  M3S_CONTROLLER__REDIS_SENTINEL_PASSWORD

log "exec $(show_args "$@")"
if dry; then
  printf '%s\n' "$@"
  exit 0
fi
exec "$@"
