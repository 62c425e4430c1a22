"""What a K3s server or agent container does, for the Mesos simulator's
tasks (MesosSim(k3s=True), `--k3s`). Nothing runs in a container: this is a
simulated Kubernetes, served by the project's one fake K3s API
(fake_k3s.py).

For a running task named `<fw>:server`:
  - the K3s API (TLS, the client certificate required, a server
    certificate valid for every agent host name and 127.0.0.1) listens on
    the task's agent host and the host port mapped to container port 6443;
    the agent host must resolve to a loopback address;
  - `config_delay` seconds after TASK_RUNNING the kubeconfig, shaped like
    K3s' /etc/rancher/k3s/k3s.yaml (server https://127.0.0.1:6443), is SET
    in Redis under `<prefix>:kubernetes_config`, as m3s-controller does: the
    Redis address, password, database and prefix come from the task's
    M3S_CONTROLLER__* environment, as the controller reads them;
  - the task's health check passes while that API listens.
For a running `<fw>:server` or `<fw>:agent` task, `node_delay` seconds after
TASK_RUNNING a Node is registered, NotReady, and `ready_delay` seconds later
it turns Ready (ready_delay None: only set_ready() makes it Ready). Its name
is the container's hostname (agents: with a "-<8 hex>" suffix, as
--with-node-id gives), its labels those K3s and the task's --node-label /
--kubelet-arg node-labels=... arguments give, its k3s.io/node-args
annotation the k3s command line as bootstrap runs it (secrets redacted).
When the task ends its node turns NotReady and a server's API stops.
Every agent node gets pods when it registers, as a K3s cluster's agents
have: a DaemonSet's (kube-system/svclb-traefik-<8 hex>) and two of a
Deployment's (default/web-<8 hex>-1 and -2, label app=web), so drains
have something to evict and something to leave alone.

Controls (also on the simulator's control API, POST /sim/k3s-*): put_pod,
delete_pod, add_pdb, clear_pdbs, evict_grace, api (set_api_up); state() lists the pods by
node, the PodDisruptionBudgets and every eviction with the cordon state
of its node at that time.

One cluster (CA, client certificate, nodes) per framework prefix: the
Kubernetes state outlives a server task, as it lives in the datastore.
"""
import hashlib
import json
import socket
import threading
import time

import fake_k3s

SECRET_FLAGS = ("--token", "--agent-token", "--datastore-endpoint")
OS_IMAGE = "simulated by mesos_sim (no kubelet, no containers)"


def _env(info):
    out = {}
    for v in info.get("command", {}).get("environment", {}).get("variables", []):
        if "name" in v:
            out[v["name"]] = v.get("value", "")
    return out


def _words(info):
    """The k3s command line after bootstrap's word splitting, without the
    binary."""
    words = " ".join(info.get("command", {}).get("arguments", [])).split()
    for i, w in enumerate(words):
        if w == "k3s" or w.endswith("/k3s"):
            return words[i + 1:]
    return words


def _node_args(words):
    out, hide = [], False
    for w in words:
        if hide:
            out.append("********")
            hide = False
            continue
        flag, eq, _ = w.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(flag + "=********")
            else:
                out.append(w)
                hide = True
            continue
        out.append(w)
    return out


def _arg_labels(words):
    """Labels from --node-label k=v and --kubelet-arg node-labels=k=v,..."""
    labels = {}

    def add(text):
        for kv in text.split(","):
            k, eq, v = kv.partition("=")
            if eq and k:
                labels[k] = v
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else ""
        if w == "--node-label":
            add(nxt)
        elif w.startswith("--node-label="):
            add(w.split("=", 1)[1])
        elif w == "--kubelet-arg" and nxt.startswith("node-labels="):
            add(nxt.split("=", 1)[1])
        elif w.startswith("--kubelet-arg=node-labels="):
            add(w.split("=", 2)[2])
    return labels


def _redis_set(addr, password, db, key, value, timeout=5.0):
    """SET key value over RESP; raises OSError or ValueError on failure."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"

    def cmd(*parts):
        out = b"*%d\r\n" % len(parts)
        for p in parts:
            p = p.encode() if isinstance(p, str) else p
            out += b"$%d\r\n%s\r\n" % (len(p), p)
        return out
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        f = s.makefile("rb")
        calls = []
        if password:
            calls.append(cmd("AUTH", password))
        calls.append(cmd("SELECT", str(db or 0)))
        calls.append(cmd("SET", key, value))
        s.sendall(b"".join(calls))
        for _ in calls:
            line = f.readline()
            if not line.startswith(b"+"):
                raise ValueError("Redis answered %r" % line.strip())


class _Cluster:
    """The Kubernetes of one framework prefix."""

    def __init__(self, prefix, sans):
        self.prefix = prefix
        self.certs = fake_k3s.Certs(sans=sans)
        self.api = fake_k3s.FakeK3s(self.certs)
        self.listeners = {}        # server task id -> listener
        self.paused = {}           # server task id -> (host, port) while set_api_up(False)
        self.kubeconfig = fake_k3s.kubeconfig(self.certs)


class K3sSim:
    def __init__(self, sim, agent_hosts, config_delay=0.5, node_delay=0.5, ready_delay=1.0):
        self.sim = sim
        self.sans = sorted(set(h for h in agent_hosts if h))
        self.config_delay = config_delay
        self.node_delay = node_delay
        self.ready_delay = ready_delay
        self.lock = threading.Lock()
        self.clusters = {}         # prefix -> _Cluster
        self.tasks = {}            # task id -> {"prefix", "role", "node", "gen"}
        self.errors = []           # what could not be done, for tests and the log
        self.timers = []
        self.stopped = False

    # -- helpers ------------------------------------------------------------

    def _later(self, delay, fn, *args):
        def run():
            with self.lock:
                if self.stopped:
                    return
            try:
                fn(*args)
            except Exception as e:  # noqa: BLE001 - reported, never fatal
                self._error("%s: %s" % (getattr(fn, "__name__", "k3s"), e))
        t = threading.Timer(max(0.0, delay), run)
        t.daemon = True
        with self.lock:
            self.timers = [x for x in self.timers if x.is_alive()]
            self.timers.append(t)
        t.start()

    def _error(self, text):
        with self.lock:
            self.errors.append(text)
            del self.errors[:-100]
        if self.sim.verbose:
            print("k3s-sim: " + text, flush=True)

    def _cluster(self, prefix):
        with self.lock:
            c = self.clusters.get(prefix)
            if c is None:
                c = self.clusters[prefix] = _Cluster(prefix, self.sans)
            return c

    def _current(self, task_id, gen):
        with self.lock:
            t = self.tasks.get(task_id)
            return t if t and t["gen"] == gen else None

    # -- hooks (called by MesosSim under its lock: nothing here blocks) ----

    def owns_health(self, task):
        return task.name.endswith(":server")

    def task_running(self, task, agent):
        prefix, _, role = task.name.rpartition(":")
        if role not in ("server", "agent") or not prefix:
            return
        with self.lock:
            if task.task_id in self.tasks:
                return
            gen = object()
            self.tasks[task.task_id] = {"prefix": prefix, "role": role, "node": None,
                                        "gen": gen, "info": task.info, "ip": task.ip}
        if role == "server":
            self._later(0, self._serve, task, agent.hostname, gen)
        self._later(self.node_delay, self._register, task.task_id, gen)

    def task_ended(self, task):
        with self.lock:
            t = self.tasks.pop(task.task_id, None)
        if t:
            self._later(0, self._end, task.task_id, t)

    # -- actions (timer threads) -------------------------------------------

    def _serve(self, task, host, gen):
        t = self._current(task.task_id, gen)
        if not t:
            return
        c = self._cluster(t["prefix"])
        port = None
        for m in task.info.get("container", {}).get("docker", {}).get("port_mappings", []):
            if m.get("container_port") == 6443:
                port = m.get("host_port")
        if not port:
            return self._error("server task %s maps no host port to 6443" % task.task_id)
        try:
            srv = c.api.listen(socket.gethostbyname(host), port)
        except (OSError, ValueError) as e:
            return self._error("server task %s: cannot serve the K3s API on %s:%s: %s"
                               % (task.task_id, host, port, e))
        with self.lock:
            if self.tasks.get(task.task_id, {}).get("gen") is not gen:
                srv_gone = True
            else:
                srv_gone = False
                c.listeners[task.task_id] = srv
        if srv_gone:
            c.api.unlisten(srv)
            return
        self._health(task, True)
        self._later(self.config_delay, self._publish, task, gen, 0)

    def _health(self, task, healthy):
        if "health_check" in task.info:
            self.sim._later(0, self.sim._health, task, healthy)

    def _publish(self, task, gen, attempt):
        t = self._current(task.task_id, gen)
        if not t:
            return
        env = _env(task.info)
        addr = env.get("M3S_CONTROLLER__REDIS_SERVER", "")
        prefix = env.get("M3S_CONTROLLER__REDIS_PREFIX") or t["prefix"]
        c = self._cluster(t["prefix"])
        try:
            db = int(env.get("M3S_CONTROLLER__REDIS_DB") or 0)
            if not addr:
                raise ValueError("no M3S_CONTROLLER__REDIS_SERVER in the task's environment")
            _redis_set(addr, env.get("M3S_CONTROLLER__REDIS_PASSWORD", ""), db,
                       prefix + ":kubernetes_config", c.kubeconfig)
        except (OSError, ValueError) as e:
            if attempt == 0:
                self._error("server task %s: kubeconfig not published to Redis %s: %s "
                            "(trying again every second)" % (task.task_id, addr, e))
            self._later(1.0, self._publish, task, gen, attempt + 1)

    def _register(self, task_id, gen):
        t = self._current(task_id, gen)
        if not t:
            return
        info, role = t["info"], t["role"]
        words = _words(info)
        env = _env(info)
        hostname = info.get("container", {}).get("hostname") or t["prefix"] + role
        name = hostname.lower()
        if role == "agent":
            name += "-" + hashlib.sha256(task_id.encode()).hexdigest()[:8]
        version = env.get("KUBERNETES_VERSION", "v1.30.4").lstrip("v")
        node_env = {k: ("********" if k in ("K3S_TOKEN", "K3S_DATASTORE_ENDPOINT") else v)
                    for k, v in env.items() if k.startswith("K3S_")}
        obj = fake_k3s.node_object(
            name, None, ready=False, node_args=_node_args(words),
            server=role == "server", labels=_arg_labels(words),
            annotations={"k3s.io/hostname": hostname, "k3s.io/internal-ip": t["ip"],
                         "k3s.io/node-env": json.dumps(node_env, sort_keys=True)},
            node_info={"kubeletVersion": "v%s+k3s1" % version,
                       "kubeProxyVersion": "v%s+k3s1" % version, "osImage": OS_IMAGE,
                       "containerRuntimeVersion": "docker://24.0.6"},
            addresses=[{"type": "InternalIP", "address": t["ip"]},
                       {"type": "Hostname", "address": hostname}])
        c = self._cluster(t["prefix"])
        with self.lock:
            if self.tasks.get(task_id, {}).get("gen") is not gen:
                return
            t["node"] = name
        c.api.put_node(obj)
        if role == "agent":
            suffix = name.rsplit("-", 1)[-1]
            c.api.put_pod("kube-system", "svclb-traefik-" + suffix, name, daemonset=True,
                          labels={"app": "svclb-traefik"})
            for i in (1, 2):
                c.api.put_pod("default", "web-%s-%d" % (suffix, i), name, labels={"app": "web"})
        if self.ready_delay is not None:
            self._later(self.ready_delay, self._ready, task_id, gen)

    def _ready(self, task_id, gen):
        t = self._current(task_id, gen)
        if t and t["node"]:
            self._cluster(t["prefix"]).api.set_ready(t["node"], True)

    def _end(self, task_id, t):
        c = self._cluster(t["prefix"])
        with self.lock:
            srv = c.listeners.pop(task_id, None)
        if srv:
            c.api.unlisten(srv)
        with self.lock:
            # A server's node name is its hostname: a replacement already
            # runs that node's kubelet, which keeps it Ready.
            taken = any(o["node"] == t["node"] and o["prefix"] == t["prefix"]
                        for o in self.tasks.values())
        if t["node"] and not taken and c.api.node(t["node"]):
            c.api.set_ready(t["node"], False)

    # -- control --------------------------------------------------------------

    def set_ready(self, node=None, task_id=None, ready=True):
        """Makes a node (by name or by its task) Ready or NotReady; returns its
        name. KeyError when there is no such node (yet)."""
        with self.lock:
            clusters = list(self.clusters.values())
            if task_id is not None:
                t = self.tasks.get(task_id)
                node = t and t["node"]
        for c in clusters:
            if node and c.api.node(node):
                c.api.set_ready(node, bool(ready))
                return node
        raise KeyError("no node %s" % (node or "for task %s" % task_id))

    def set_api_up(self, up=True, prefix=None):
        """up=False: the K3s API of a cluster stops listening (open
        watches end, connections are refused) while its server task and
        nodes stay as they are, as when the daemon cannot reach a K3s server;
        up=True: it listens again on the same addresses (those of server
        tasks still running). Returns the addresses it stopped or started."""
        c = self._cluster_of(prefix)
        out = []
        if not up:
            with self.lock:
                items = list(c.listeners.items())
            for task_id, srv in items:
                addr = srv.server_address[:2]
                c.api.unlisten(srv)
                with self.lock:
                    c.paused[task_id] = addr
                out.append("%s:%d" % addr)
            return out
        with self.lock:
            paused, c.paused = c.paused, {}
        for task_id, (host, port) in paused.items():
            with self.lock:
                if task_id not in self.tasks:
                    continue
            srv = c.api.listen(host, port)
            with self.lock:
                c.listeners[task_id] = srv
            out.append("%s:%d" % (host, port))
        return out

    def _cluster_of(self, prefix=None):
        """The _Cluster of a framework prefix (None: the only one)."""
        with self.lock:
            if prefix is not None:
                c = self.clusters.get(prefix)
            elif len(self.clusters) == 1:
                c = next(iter(self.clusters.values()))
            else:
                c = None
        if c is None:
            raise KeyError("no K3s cluster %s" % (prefix if prefix is not None else
                                                 "yet (or several: name the prefix)"))
        return c

    def _api(self, prefix=None):
        """The fake API of a framework prefix (None: the only one)."""
        return self._cluster_of(prefix).api

    def put_pod(self, namespace, name, node, daemonset=False, mirror=False, labels=None,
                prefix=None):
        """Creates or replaces a pod on a node (fake_k3s.FakeK3s.put_pod)."""
        self._api(prefix).put_pod(namespace, name, node, daemonset, mirror, labels)
        return name

    def delete_pod(self, namespace, name, prefix=None):
        return self._api(prefix).delete_pod(namespace, name)

    def add_pdb(self, namespace, selector, max_unavailable=None, min_available=None,
                refuse_for=None, refuse_count=None, name=None, prefix=None):
        """A PodDisruptionBudget (fake_k3s.FakeK3s.add_pdb); returns its name."""
        return self._api(prefix).add_pdb(namespace, selector, max_unavailable, min_available,
                                         refuse_for, refuse_count, name)

    def clear_pdbs(self, prefix=None):
        self._api(prefix).clear_pdbs()

    def set_evict_grace(self, seconds, prefix=None):
        """Seconds an evicted pod takes to go."""
        api = self._api(prefix)
        with api.cond:
            api.evict_grace = float(seconds)

    def state(self):
        with self.lock:
            clusters = list(self.clusters.values())
            errors = list(self.errors)
            tasks = {k: {"role": v["role"], "node": v["node"], "prefix": v["prefix"]}
                     for k, v in self.tasks.items()}
        out = {"simulated": True, "errors": errors, "tasks": tasks, "clusters": {}}
        for c in clusters:
            with c.api.cond:
                nodes = {n: {"ready": any(x["type"] == "Ready" and x["status"] == "True"
                                          for x in o["status"]["conditions"]),
                             "labels": o["metadata"]["labels"]}
                         for n, o in c.api.nodes.items()}
                listening = ["%s:%d" % s.server_address[:2] for s in c.api.servers]
                for n in nodes:
                    nodes[n]["unschedulable"] = bool(c.api.nodes[n]["spec"].get("unschedulable"))
                pods = {}
                for (ns, pname), p in sorted(c.api.pods.items()):
                    pods.setdefault(p["spec"].get("nodeName") or "", []).append(
                        {"namespace": ns, "name": pname,
                         "terminating": "deletionTimestamp" in p["metadata"],
                         "daemonset": any(o.get("kind") == "DaemonSet" for o in
                                          p["metadata"].get("ownerReferences", []))})
                pdbs = [{k: v for k, v in b.items() if k != "until"} for b in c.api.pdbs]
                evictions = [dict(e) for e in c.api.evictions]
            out["clusters"][c.prefix] = {"nodes": nodes, "listening": listening, "pods": pods,
                                         "pdbs": pdbs, "evictions": evictions}
        return out

    def stop(self):
        with self.lock:
            self.stopped = True
            timers = list(self.timers)
            clusters = list(self.clusters.values())
        for t in timers:
            t.cancel()
        for c in clusters:
            c.api.stop()
            c.certs.cleanup()
