#!/usr/bin/env python3
"""The e2e checks; started by tests/e2e/run.sh, which provides the Docker
daemon and the images (E2E_* variables).

Part 1, the daemon's tasks as real containers: a real Mesos master and one
agent with --containerizers=docker,mesos, a real redis-server, the daemon
with IMAGE_* naming the local images. Checked:
  - the datastore, the server and the agent run as Docker containers, and
    for each, every field of the TaskInfo's ContainerInfo (privileged,
    network, port mappings, volumes and their driver, hostname) and every
    Docker parameter (cap-add, shm-size, memory-swap, ulimit, ...) is found
    applied in `docker inspect`;
  - no image was pulled (the agent log has no `docker pull`);
  - the datastore runs MariaDB (its greeting through the published port, a
    query with the root password), and Mesos reports its health check
    healthy;
  - the server's m3s-controller published the kubeconfig in Redis, byte for
    byte the file in the container; the REST API serves it with the address
    rewritten to the agent; the daemon reaches the test K3s API in the
    container through the published port and sees the server's node;
  - the master log has no dropped, ignored or invalid call;
  - a framework teardown stops every container.
Part 2, the compose example (docker/docker-compose.yml, our image built by
its Dockerfile): against a fresh real master, the daemon subscribes, its
HEALTHCHECK turns healthy, `docker-compose down` stops it with exit code 0.

Every wait is for a condition, with a generous deadline. Prints one line per
check; exits 1 at the first failure.
"""
import base64
import ipaddress
import json
import os
import re
import resource
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from ports import free_port  # noqa: E402
WORK = os.environ["E2E_WORK"]
DOCKER = os.environ["E2E_DOCKER"]
MESOS = os.environ["E2E_MESOS"]
SHARED = os.environ["E2E_SHARED"]
AGENT_IP = os.environ["E2E_AGENT_IP"]
M3S = os.environ["M3S_BIN"]
SOCK = os.environ["DOCKER_HOST"][len("unix://"):]
DS_IMAGE = "m3s-e2e/mariadb:e2e"
K3S_IMAGE = "m3s-e2e/k3s-standin:e2e"
FW = "m3s"
AUTH = ("e2e", secrets.token_hex(12))
REDIS_PASSWORD = secrets.token_hex(12)
REDIS_DB = "3"
DS_PASSWORD = "ds-" + secrets.token_hex(8)
LONG = 300.0
# dockerd --ip binds published ports of the default bridge only; a network of
# our own needs the same as an option, or they land on 0.0.0.0.
LOOPBACK_PORTS = ("-o", "com.docker.network.bridge.host_binding_ipv4=" + AGENT_IP)
KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"   # in the server container

started = []          # (name, Popen) to stop at the end, by PID
clusters = []         # Mesos work dirs to stop


def say(*a):
    print("e2e:", *a, flush=True)


def fail(msg):
    say("FAILED:", msg)
    raise SystemExit(1)


def ok(msg):
    say("ok:", msg)


def wait_for(what, fn, timeout=LONG, step=0.5):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except (OSError, ValueError, KeyError, urllib.error.URLError) as e:
            last = None
            err = e
        else:
            err = None
        if last:
            return last
        time.sleep(step)
    fail("timed out after %.0f s waiting for %s%s" % (timeout, what,
                                                       " (%s)" % err if err else ""))


def docker(*args, check=True):
    r = subprocess.run([DOCKER] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        fail("docker %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout


def gateway_of(net):
    """The host's address on a Docker network. `docker network inspect`
    leaves Gateway out when dockerd has just created its default bridge;
    Docker then uses the subnet's first address."""
    cfg = json.loads(docker("network", "inspect", net))[0]["IPAM"]["Config"][0]
    return cfg.get("Gateway") or str(ipaddress.ip_network(cfg["Subnet"])[1])


def http_json(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization",
                       "Basic " + base64.b64encode(("%s:%s" % auth).encode()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    return json.loads(body) if body.strip()[:1] in (b"{", b"[") else body.decode()


# ---- processes ---------------------------------------------------------------

def start(name, argv, env=None, log=None):
    out = open(log or os.path.join(WORK, name + ".log"), "ab")
    p = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    started.append((name, p))
    return p


def stop(name, p, timeout=30):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            say("%s (%d) ignored SIGTERM; SIGKILL" % (name, p.pid))
            p.kill()
            p.wait()
    return p.returncode


def start_cluster(tag, agent_flags=()):
    d = os.path.join(WORK, tag)
    argv = [os.path.join(SHARED, "mesos", "start-cluster.sh"), "--agents", "1", "--dir", d,
            "--mesos", MESOS] + ["--agent-flag=" + f for f in agent_flags]
    r = subprocess.run(argv, capture_output=True, text=True)
    if r.returncode != 0:
        fail("start-cluster.sh: %s %s" % (r.stdout[-2000:], r.stderr[-2000:]))
    clusters.append(d)
    env = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', r.stdout, re.M))
    say("Mesos cluster %s: master %s, agent %s (%s)" % (tag, env["MESOS_MASTER"],
                                                        env["MESOS_AGENT_ENDPOINTS"], d))
    return env


def stop_cluster(d):
    subprocess.run([os.path.join(SHARED, "mesos", "stop-cluster.sh"), d],
                   capture_output=True, text=True)
    clusters.remove(d)


def start_redis(bind):
    port = free_port()
    d = os.path.join(WORK, "redis-%d" % port)
    os.makedirs(d)
    p = start("redis-server-%d" % port,
              ["redis-server", "--bind", bind, "--port", str(port), "--dir", d,
               "--save", "", "--appendonly", "no", "--requirepass", REDIS_PASSWORD])
    wait_for("redis-server on %d" % port, lambda: redis(port, "PING") == "PONG", 30)
    return port


def redis(port, *cmd):
    """One command over RESP (AUTH and SELECT first); its reply as
    str/bytes/None."""
    def enc(*a):
        return b"*%d\r\n" % len(a) + b"".join(
            b"$%d\r\n%s\r\n" % (len(x), x) for x in (s.encode() for s in a))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(enc("AUTH", REDIS_PASSWORD) + enc("SELECT", REDIS_DB) + enc(*cmd))
        f = s.makefile("rb")
        replies = []
        for _ in range(3):
            line = f.readline().rstrip(b"\r\n")
            if line[:1] == b"$":
                n = int(line[1:])
                replies.append(None if n < 0 else f.read(n + 2)[:-2])
            elif line[:1] == b"-":
                raise ValueError(line.decode())
            else:
                replies.append(line[1:].decode())
        return replies[2]


def master_state(master, path):
    return http_json("http://%s/%s" % (master, path))


# ---- part 1: the tasks as real containers -------------------------------------

PARAM_CHECKS = {
    # Docker parameter key -> a check of `docker inspect` HostConfig/Config.
    "cap-add": lambda v, c: v in c["HostConfig"]["CapAdd"],
    "shm-size": lambda v, c: c["HostConfig"]["ShmSize"] == size_bytes(v),
    "memory-swap": lambda v, c: c["HostConfig"]["MemorySwap"] == size_bytes(v),
    "ulimit": lambda v, c: {"Name": v.split("=")[0], "Soft": int(v.split("=")[1]),
                            "Hard": int(v.split("=")[1])} in (c["HostConfig"]["Ulimits"] or []),
    "net-alias": lambda v, c: any(v in (n.get("Aliases") or [])
                                  for n in c["NetworkSettings"]["Networks"].values()),
    "cgroupns": lambda v, c: c["HostConfig"].get("CgroupnsMode") == v,
    "runtime": lambda v, c: c["HostConfig"]["Runtime"] == v,
}


def size_bytes(v):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)b?", v.lower())
    if not m:
        fail("cannot read the size %r" % v)
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def check_container(task, c):
    """Every ContainerInfo field and Docker parameter of the task, found in
    the container's `docker inspect`."""
    ci = task["container"]
    dk = ci["docker"]
    name = task["name"]
    if c["Config"]["Image"] != dk["image"]:
        fail("%s: image %s, TaskInfo %s" % (name, c["Config"]["Image"], dk["image"]))
    if c["HostConfig"]["Privileged"] != dk.get("privileged", False):
        fail("%s: privileged %s" % (name, c["HostConfig"]["Privileged"]))
    net = dk.get("network", "HOST")
    if net == "BRIDGE" and c["HostConfig"]["NetworkMode"] not in ("bridge", "default"):
        fail("%s: network mode %s for BRIDGE" % (name, c["HostConfig"]["NetworkMode"]))
    if net == "USER":
        want = ci["network_infos"][0]["name"]
        if c["HostConfig"]["NetworkMode"] != want or want not in c["NetworkSettings"]["Networks"]:
            fail("%s: network mode %s, TaskInfo USER %s" % (name, c["HostConfig"]["NetworkMode"],
                                                            want))
        net = "USER " + want
    if "hostname" in ci and c["Config"]["Hostname"] != ci["hostname"]:
        fail("%s: hostname %s, TaskInfo %s" % (name, c["Config"]["Hostname"], ci["hostname"]))
    bound = c["HostConfig"]["PortBindings"] or {}
    for m in dk.get("port_mappings", []):
        key = "%d/%s" % (m["container_port"], m.get("protocol", "tcp"))
        hosts = [b["HostPort"] for b in bound.get(key, [])]
        if str(m["host_port"]) not in hosts:
            fail("%s: port %s bound to %s, TaskInfo %d" % (name, key, hosts, m["host_port"]))
        pub = c["NetworkSettings"]["Ports"].get(key) or []
        if not any(p["HostIp"] == AGENT_IP and p["HostPort"] == str(m["host_port"]) for p in pub):
            fail("%s: port %s not published on %s:%d: %s" % (name, key, AGENT_IP,
                                                              m["host_port"], pub))
    mounts = {m["Destination"]: m for m in c["Mounts"]}
    for v in ci.get("volumes", []):
        dv = v["source"]["docker_volume"]
        m = mounts.get(v["container_path"])
        if not m or m["Type"] != "volume" or m["Name"] != dv["name"] or \
           m["Driver"] != dv["driver"] or not m["RW"]:
            fail("%s: volume %s at %s: %s" % (name, dv, v["container_path"], m))
    for p in dk.get("parameters", []):
        check = PARAM_CHECKS.get(p["key"])
        if not check:
            fail("%s: no check for the Docker parameter %s" % (name, p["key"]))
        if not check(p["value"], c):
            fail("%s: Docker parameter %s=%s not applied" % (name, p["key"], p["value"]))
    # Mesos' own options: the task's memory as --memory.
    # (the master's /tasks gives resources as {"mem": MB, ...}; the limit,
    # when the task has one, is what Mesos hands Docker).
    limits = task.get("limits") or {}
    mem = limits.get("mem", task["resources"]["mem"])
    if c["HostConfig"]["Memory"] != int(float(mem) * 1024 * 1024):
        fail("%s: memory %d bytes, TaskInfo %s MB" % (name, c["HostConfig"]["Memory"], mem))
    return ["image", "privileged=%s" % dk.get("privileged", False), "network %s" % net,
            "hostname", "%d port mappings" % len(dk.get("port_mappings", [])),
            "%d volumes" % len(ci.get("volumes", [])), "memory %s MB" % mem] + \
        ["%s=%s" % (p["key"], p["value"]) for p in dk.get("parameters", [])]


def mysql_greeting(port):
    with socket.create_connection((AGENT_IP, port), timeout=5) as s:
        data = s.recv(256)
    # Protocol 10 handshake: 4-byte header, protocol version, NUL-ended version.
    if len(data) < 6 or data[4] != 10:
        return None
    return data[5:data.index(b"\0", 5)].decode()


def part1(mode):
    """mode "bridge": the default (DOCKER_CNI=bridge, Docker network BRIDGE);
    "user": DOCKER_CNI naming a Docker network (network USER, network_infos,
    net-alias), as in the compose example."""
    say("---- part 1 (%s network): the daemon's tasks as real containers" % mode)
    net = "bridge"
    if mode == "user":
        net = "m3s-e2e-tasks"
        docker("network", "create", *LOOPBACK_PORTS, net)
    gateway = gateway_of(net)
    # The server container reaches Redis on the Docker bridge's host address.
    rport = start_redis("127.0.0.1 %s" % gateway)
    say("redis-server on 127.0.0.1 and %s, port %d" % (gateway, rport))
    # mesos-docker-executor aborts (Option::get() of None) unless the agent
    # hands it both CNI directories, even for tasks on Docker's own networks.
    cni = os.path.join(WORK, "cni")
    for d in ("plugins", "config"):
        os.makedirs(os.path.join(cni, d), exist_ok=True)
    env = start_cluster("mesos-docker-" + mode, [
        "--containerizers=docker,mesos", "--docker=" + DOCKER, "--docker_socket=" + SOCK,
        "--network_cni_plugins_dir=" + os.path.join(cni, "plugins"),
        "--network_cni_config_dir=" + os.path.join(cni, "config"),
        "--resources=cpus:8;mem:16384;disk:100000;ports:[31000-32000]"])
    master = env["MESOS_MASTER"]
    agent_log = os.path.join(env["MESOS_WORK"], "agent-1.log")
    api_port = free_port()
    denv = {k: v for k, v in os.environ.items()
            if not k.startswith(("MESOS_", "LIBPROCESS_", "DOCKER_"))}
    denv.update({
        "MESOS_MASTER": master, "REDIS_SERVER": "%s:%d" % (gateway, rport),
        "REDIS_PASSWORD": REDIS_PASSWORD, "REDIS_DB": REDIS_DB,
        "FRAMEWORK_HOSTNAME": "127.0.0.1",
        "FRAMEWORK_BIND": "127.0.0.1", "FRAMEWORK_PORT": str(api_port),
        "AUTH_USERNAME": AUTH[0], "AUTH_PASSWORD": AUTH[1],
        "K3S_TOKEN": secrets.token_hex(16), "DS_MYSQL_PASSWORD": DS_PASSWORD,
        "IMAGE_MYSQL": DS_IMAGE, "IMAGE_K3S": K3S_IMAGE,
        "DOCKER_FORCE_PULL": "false",
        "VOLUME_DS": "m3s-e2e-%s-datastore" % mode,
        "VOLUME_K3S_SERVER": "m3s-e2e-%s-k3s-server" % mode, "DOCKER_CNI": net,
        "BOOTSTRAP_URL": "file://" + os.path.join(ROOT, "docker", "bootstrap", "bootstrap.sh"),
        "K3S_SERVER_COUNT": "1", "K3S_AGENT_COUNT": "1", "LOGLEVEL": "info",
        "KUBECONFIG": KUBECONFIG,
        # runc sets the container's nofile limit; raising it above dockerd's
        # own hard limit needs CAP_SYS_RESOURCE, which this host's bounding
        # set lacks ("error setting rlimit type 7: operation not permitted"
        # with the default 1048576). The largest value allowed here.
        "DOCKER_ULIMIT": str(resource.getrlimit(resource.RLIMIT_NOFILE)[1]),
        # Privileged containers need it on this host (see runc-bounded); it
        # also shows Docker taking the runtime parameter.
        "CUSTOM_DOCKER_RUNTIME": "m3s-e2e-runc",
        # cgroupns=private, which Docker also accepts on a cgroup v1 host.
        "CGROUP_V2": "true",
    })
    daemon = start("m3s", [M3S], env=denv)
    say("daemon %d, API 127.0.0.1:%d" % (daemon.pid, api_port))
    api = "http://127.0.0.1:%d/api/m3s/v0/" % api_port

    def running():
        tasks = [t for t in master_state(master, "master/tasks")["tasks"]
                 if t["framework_id"] and t["name"].startswith(FW + ":")]
        if daemon.poll() is not None:
            fail("the daemon exited with %s" % daemon.returncode)
        bad = [t for t in tasks if t["state"] in ("TASK_FAILED", "TASK_ERROR", "TASK_DROPPED")]
        if bad:
            with open(agent_log, errors="replace") as f:
                why = re.findall(r".*(?:failed to start|Failed to launch).*", f.read())
            fail("%s %s; the agent log says: %s" % (bad[0]["name"], bad[0]["state"],
                                                   why[-1:] or "nothing"))
        run = {t["name"].split(":")[1]: t for t in tasks if t["state"] == "TASK_RUNNING"}
        return run if set(run) == {"datastore", "server", "agent"} else None
    t0 = time.monotonic()
    tasks = wait_for("datastore, server and agent TASK_RUNNING", running)
    ok("datastore, server and agent TASK_RUNNING after %.0f s" % (time.monotonic() - t0))

    # TaskInfo as the master holds it (the master's /tasks omits nothing we send
    # in ContainerInfo), against the containers.
    for role in ("datastore", "server", "agent"):
        t = tasks[role]
        cid = t["statuses"][-1]["container_status"]["container_id"]["value"]
        c = json.loads(docker("inspect", "mesos-" + cid))[0]
        if not c["State"]["Running"]:
            fail("%s: container not running" % role)
        say("%s: container mesos-%s, image %s" % (role, cid, c["Config"]["Image"]))
        ok("%s: Docker applied %s" % (role, ", ".join(check_container(t, c))))
    with open(agent_log, errors="replace") as f:
        alog = f.read()
    if re.search(r"docker\S* .*\bpull\b", alog) or "Failed to pull" in alog:
        fail("the agent pulled an image: %s" % re.search(r".*pull.*", alog).group(0))
    ok("no image pulled (the agent log has no docker pull)")

    # The datastore: MariaDB, reachable through its published port, healthy.
    ds = tasks["datastore"]
    hp = ds["container"]["docker"]["port_mappings"][0]["host_port"]
    version = wait_for("the MariaDB greeting on %s:%d" % (AGENT_IP, hp), lambda: mysql_greeting(hp))
    ok("datastore greets on %s:%d (published port): %s" % (AGENT_IP, hp, version))
    cid = "mesos-" + ds["statuses"][-1]["container_status"]["container_id"]["value"]
    out = wait_for("a query in the datastore", lambda: docker(
        "exec", cid, "mariadb", "-uroot", "-p" + DS_PASSWORD, "-h", "127.0.0.1", "-N", "-e",
        "SELECT VERSION(); SHOW DATABASES LIKE 'k3s'", check=False).split())
    if "k3s" not in out or "MariaDB" not in out[0]:
        fail("datastore query answered %s" % out)
    ok("datastore runs %s with the k3s database, root password from DS_MYSQL_PASSWORD" % out[0])

    def healthy():
        t = [x for x in master_state(master, "master/tasks")["tasks"]
             if x["id"] == ds["id"]][0]
        st = t["statuses"][-1]
        return st if st.get("healthy") is True else None
    st = wait_for("the datastore health check (mysqladmin ping) healthy", healthy)
    ok("Mesos reports the datastore healthy: its COMMAND check (mysqladmin ping) passes, "
       "task %s" % st["state"])

    # The server: kubeconfig from m3s-controller in Redis, served by the API.
    sv = tasks["server"]
    cid = "mesos-" + sv["statuses"][-1]["container_status"]["container_id"]["value"]
    in_redis = wait_for("%s:kubernetes_config in Redis" % FW,
                        lambda: redis(rport, "GET", FW + ":kubernetes_config"))
    path = KUBECONFIG
    r = subprocess.run([DOCKER, "exec", cid, "cat", path], capture_output=True)
    if r.returncode != 0:
        fail("docker exec %s cat %s: %s" % (cid, path, (r.stdout + r.stderr).decode()))
    in_container = r.stdout
    if in_redis != in_container:
        fail("Redis holds %d bytes, the container's %s %d" % (len(in_redis), path,
                                                               len(in_container)))
    ok("m3s-controller in the server container published %s (%d bytes) to Redis %s"
       % (path, len(in_redis), FW + ":kubernetes_config"))
    served = wait_for("the kubeconfig from the API",
                      lambda: http_json(api + "server/config", AUTH))
    sport = sv["container"]["docker"]["port_mappings"][0]["host_port"]
    want = "server: https://%s:%d" % (AGENT_IP, sport)
    if want not in served:
        fail("the API's kubeconfig lacks %r: %s" % (want, re.findall(r"server: .*", served)))
    ok("the API serves it with %r" % want)
    for line in docker("logs", cid).splitlines():
        if re.search(r"k3s-standin: (bootstrap fetched|K3s API)", line):
            say("server container:", line)

    def node_seen():
        st = http_json(api + "status/m3s", AUTH)
        return [v for v in st["Server"].values() if v.get("K3sNodeName")]
    seen = wait_for("the daemon seeing the server's node", node_seen)
    ok("the daemon reached the test K3s API in the server container through %s:%d "
       "(TLS, client certificate) and sees its node %s" % (AGENT_IP, sport,
                                                          seen[0]["K3sNodeName"]))

    # The master saw nothing wrong.
    with open(os.path.join(env["MESOS_WORK"], "master.log"), errors="replace") as f:
        mlog = f.read()
    # ("Ignoring update on agent ... as it reports no changes" is the agent's
    # own resource report, not a call of ours.)
    bad = re.findall(r".*(?:Dropping|Ignoring (?!update on agent .* reports no changes)|"
                     r"invalid|TASK_ERROR|Cannot kill|Failed to validate).*", mlog)
    if bad:
        fail("master log: %s" % bad[:3])
    ok("master log: no dropped, ignored or invalid call")

    # Teardown: Mesos kills the tasks; every container stops.
    fid = sv["framework_id"]
    stop("m3s", daemon)
    req = urllib.request.Request("http://%s/master/teardown" % master,
                                 data=("frameworkId=" + fid).encode(), method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    wait_for("every task container gone", lambda: not docker(
        "ps", "-q", "--filter", "name=mesos-").strip(), 120)
    ok("framework teardown: every task container stopped")
    stop_cluster(env["MESOS_WORK"])
    stop("redis-server-%d" % rport, dict(started)["redis-server-%d" % rport])
    if mode == "user":
        docker("network", "rm", net)


# ---- part 2: the compose example ----------------------------------------------

class Forwarder:
    """TCP from addr to 127.0.0.1:port: the master listens on loopback only,
    the compose network reaches it through its gateway address."""

    def __init__(self, addr, port):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.target = port
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                a, _ = self.sock.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self.pipe, args=(x, y), daemon=True).start()

    @staticmethod
    def pipe(x, y):
        try:
            while True:
                d = x.recv(65536)
                if not d:
                    break
                y.sendall(d)
        except OSError:
            pass
        finally:
            for s in (x, y):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


def part2():
    say("---- part 2: the compose example against the real master")
    env = start_cluster("mesos-compose")
    master = env["MESOS_MASTER"]
    net = "m3s-e2e-mini"
    docker("network", "create", *LOOPBACK_PORTS, net)
    gw = gateway_of(net)
    fwd = Forwarder(gw, int(master.split(":")[1]))
    say("the master %s is reached from %s as %s:%d" % (master, net, gw, fwd.port))
    port = free_port(AGENT_IP)
    envfile = os.path.join(WORK, "compose.env")
    with open(envfile, "w") as f:
        f.write("\n".join("%s=%s" % kv for kv in {
            "MESOS_MASTER": "%s:%d" % (gw, fwd.port), "FRAMEWORK_HOSTNAME": AGENT_IP,
            "M3S_PORT": str(port), "DOCKER_CNI": net, "DOMAIN": ".mini",
            "AUTH_USERNAME": AUTH[0], "AUTH_PASSWORD": AUTH[1],
            "REDIS_PASSWORD": REDIS_PASSWORD, "K3S_TOKEN": secrets.token_hex(16),
            "DS_MYSQL_PASSWORD": DS_PASSWORD, "K3S_SERVER_COUNT": "1", "K3S_AGENT_COUNT": "1",
            "BOOTSTRAP_URL": "file://" + os.path.join(ROOT, "docker", "bootstrap", "bootstrap.sh"),
            "VOLUME_K3S_SERVER": "m3s-e2e-k3s-server", "LOGLEVEL": "info"}.items()) + "\n")
    compose = ["docker-compose", "--env-file", envfile, "-p", "m3se2e",
               "-f", os.path.join(ROOT, "docker", "docker-compose.yml")]
    t0 = time.monotonic()
    r = subprocess.run(compose + ["build"], capture_output=True, text=True)
    with open(os.path.join(WORK, "compose-build.log"), "w") as f:
        f.write(r.stdout + r.stderr)
    if r.returncode != 0:
        fail("docker-compose build: %s" % (r.stdout + r.stderr)[-3000:])
    ok("docker-compose build: our image from docker/Dockerfile (%.0f s)" % (time.monotonic() - t0))
    r = subprocess.run(compose + ["up", "-d"], capture_output=True, text=True)
    if r.returncode != 0:
        fail("docker-compose up: %s" % (r.stdout + r.stderr)[-3000:])
    ok("docker-compose up -d")
    cid = subprocess.run(compose + ["ps", "-q", "m3s"], capture_output=True,
                         text=True).stdout.strip()

    def subscribed():
        fws = master_state(master, "master/frameworks")["frameworks"]
        return [f for f in fws if f["name"] == FW and f["active"]]
    fw = wait_for("the compose daemon subscribed", subscribed, 120)[0]
    ok("the daemon in compose subscribed: framework %s active, webui_url %s"
       % (fw["id"], fw.get("webui_url")))
    t0 = time.monotonic()
    health = wait_for("the HEALTHCHECK healthy", lambda: (lambda s: s if s["Status"] == "healthy"
                      else None)(json.loads(docker("inspect", cid))[0]["State"]["Health"]), 180)
    ok("HEALTHCHECK healthy after %.0f s more: %s" % (time.monotonic() - t0,
                                                       health["Log"][-1]["Output"].strip() or
                                                       "exit %d" % health["Log"][-1]["ExitCode"]))
    st = http_json("http://%s:%d/api/m3s/v0/status/m3s" % (AGENT_IP, port), AUTH)
    ok("its REST API answers through the published port: %s" % json.dumps(st)[:200])
    events = subprocess.Popen([DOCKER, "events", "--filter", "container=" + cid, "--filter",
                               "event=die", "--format", "{{json .}}"],
                              stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    r = subprocess.run(compose + ["down"], capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0:
        fail("docker-compose down: %s" % (r.stdout + r.stderr)[-3000:])
    die = json.loads(events.stdout.readline())
    events.terminate()
    events.wait()
    code = die["Actor"]["Attributes"]["exitCode"]
    if code != "0":
        fail("the daemon's container died with exit code %s" % code)
    ok("docker-compose down in %.1f s: the daemon stopped on SIGTERM with exit code 0" % took)
    fwd.close()
    docker("network", "rm", net)
    stop_cluster(env["MESOS_WORK"])


def main():
    # SIGTERM (run.sh interrupted) still runs the clean-up below.
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(143))
    try:
        part1("bridge")
        part1("user")
        part2()
        say("PASSED")
    finally:
        for name, p in reversed(started):
            stop(name, p)
        for d in list(clusters):
            stop_cluster(d)


if __name__ == "__main__":
    main()
