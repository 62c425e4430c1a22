#!/usr/bin/env python3
"""The daemon's Kubernetes actor end to end: the real daemon, the Mesos
simulator, a real redis-server, the real m3s-controller publishing the
kubeconfig (when M3S_CONTROLLER_BIN is set; else the test writes the key as
it would) and a fake K3s API server (fake_k3s.py: TLS, client certificate
required), all on loopback.

The simulated agents are called "localhost" and the K3s server's host port
(K3S_SERVER_PORT) is the fake API's port, so the address the daemon
rewrites the kubeconfig to (<agent hostname>:<server port>) is the fake.

Run: M3S_BIN=build/m3s python3 tests/integration/test_kube.py -v
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_mesos  # noqa: E402
import fake_k3s  # noqa: E402

BOUND = test_mesos.BOUND * (3 if test_mesos.SLOW else 1)
FW = "m3s"
CONTROLLER = os.environ.get("M3S_CONTROLLER_BIN")


class Publisher:
    """Puts a kubeconfig where the daemon reads it: through m3s-controller
    watching a file, or straight into Redis without it."""

    def __init__(self, case, redis):
        self.case, self.redis = case, redis
        self.dir = tempfile.mkdtemp(prefix="m3s-kube-cfg-")
        self.path = os.path.join(self.dir, "k3s.yaml")
        self.proc = None
        self.log = None

    def publish(self, text):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.path)
        if not CONTROLLER:
            self.redis.command("SET", "%s:kubernetes_config" % FW, text)
        elif not self.proc:
            self.log = tempfile.NamedTemporaryFile(prefix="m3s-ctl-", suffix=".txt",
                                                   delete=False)
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "M3S_CONTROLLER__REDIS_SERVER": "127.0.0.1:%d" % self.redis.port,
                   "M3S_CONTROLLER__REDIS_DB": "1",
                   "M3S_CONTROLLER__REDIS_PREFIX": FW,
                   "M3S_CONTROLLER__POLL_INTERVAL": "200ms",
                   "KUBECONFIG": self.path}
            for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
                if k in os.environ:
                    env[k] = os.environ[k]
            self.proc = subprocess.Popen([CONTROLLER], env=env, stdout=self.log,
                                         stderr=subprocess.STDOUT)
        self.case.wait("the kubeconfig in Redis",
                       lambda: self.redis.command("GET", "%s:kubernetes_config" % FW)
                       .decode().rstrip("\n") == text.rstrip("\n"), BOUND)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.proc.wait(timeout=30)
            self.case.assertEqual(rc, 0, "m3s-controller exit code")
        if self.log:
            os.unlink(self.log.name)
        for f in os.listdir(self.dir):
            os.unlink(os.path.join(self.dir, f))
        os.rmdir(self.dir)


class KubeTest(test_mesos.MesosCase):

    def setUp(self):
        super().setUp()
        self.k3s = fake_k3s.FakeK3s().start()
        self.addCleanup(self.k3s.stop)

    def cluster(self, agents=2, start_delay=0.05, **env):
        port = self.k3s.port
        self.api_port = test_mesos.free_port()
        sim = self.sim(agents=3, agent_hostname="localhost",
                       ports="31000-31999,%d-%d" % (port, port),
                       task_start_delay=start_delay, health_delay=0.1)
        env.setdefault("K3S_AGENT_COUNT", str(agents))
        env.setdefault("K3S_SERVER_PORT", str(port))
        env.setdefault("HEARTBEAT_INTERVAL", "300ms")
        env.setdefault("FRAMEWORK_PORT", str(self.api_port))
        env.setdefault("AUTH_USERNAME", "ops")
        env.setdefault("AUTH_PASSWORD", "kube-secret")
        env.setdefault("RESTART_BACKOFF_MIN", "200ms")
        env.setdefault("RECONCILE_WAIT", "3s")
        env.setdefault("REFUSE_OFFERS", "1")
        d = self.daemon(sim, **env)
        self.pub = Publisher(self, self.redis())
        self.addCleanup(self.pub.stop)
        return sim, d

    def api(self, path, method="GET", raw=False):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path),
                                     method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"ops:kube-secret").decode())
        deadline = time.monotonic() + BOUND
        while True:
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.headers.get("Content-Type"), e.read().decode()
            except (ConnectionError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    self.fail("the REST API does not answer\n--- daemon log tail ---\n" +
                              "\n".join(d.text()[-4000:] for d in self.daemons))
                time.sleep(0.1)

    def metric(self, name):
        _, _, text = self.api("/metrics")
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                key, _, val = line.rpartition(" ")
                if key == name:
                    return float(val)
        return None

    def metric_line(self, line):
        _, _, text = self.api("/metrics")
        return line in text.splitlines()

    def task_ids(self, sim, role):
        return [t["task_id"] for t in sim.state(include_agents=False)["tasks"]
                if t["where"] == "active" and t["name"].endswith(":" + role)]

    def role_records(self, role):
        keys = self.redis().command("--scan", "--pattern", "%s:%s:*" % (FW, role)).decode()
        return [k.split(":", 2)[2] for k in keys.split()]

    def launches(self, sim, role):
        """[(time, task id)] of every LAUNCH of the role the daemon sent."""
        out = []
        for c in sim.calls(type="ACCEPT"):
            if c["status"] != 202 or not isinstance(c["body"], dict):
                continue
            for op in c["body"]["accept"].get("operations", []):
                for ti in op.get("launch", {}).get("task_infos", []):
                    if ti["name"].endswith(":" + role):
                        out.append((c["time"], ti["task_id"]["value"]))
        return out

    def node_record(self, name):
        raw = self.redis().command("GET", "%s:kubernetes:%s" % (FW, name))
        return json.loads(raw) if raw.strip() else None

    # -- tests -------------------------------------------------------------------

    def test_nodes_gate_agents_watch_cordon(self):
        k3s = self.k3s
        # The server task takes 3 s from ACCEPT to RUNNING: time enough for
        # its node to be known (NotReady) before Mesos says it runs.
        sim, d = self.cluster(agents=2, start_delay=3.0)
        self.pub.publish(fake_k3s.kubeconfig(k3s.certs))

        server_id = self.wait("the server task record",
                              lambda: (self.role_records("server") or [None])[0], BOUND)
        k3s.put_node(fake_k3s.node_object("m3sserver", server_id, ready=False, server=True))
        # The kubeconfig reached the fake, at the rewritten address, with the
        # client certificate (the fake requires it).
        self.wait("the node list at the fake API", lambda: k3s.seen("GET", "/api/v1/nodes"))
        first = k3s.seen("GET", "/api/v1/nodes")[0]
        self.assertEqual(first["host"], "localhost:%d" % k3s.port)
        self.wait("the node record in Redis",
                  lambda: self.node_record("m3sserver") is not None, BOUND)
        self.assertEqual(self.node_record("m3sserver")["metadata"]["labels"]
                         ["m3s.aventer.biz/taskid"], server_id)

        # The server runs (Mesos) but its node is not Ready: no agent.
        self.wait("the server running",
                  lambda: server_id in [t["task_id"] for t in sim.state(include_agents=False)
                                        ["tasks"] if t["state"] == "TASK_RUNNING"], BOUND)
        time.sleep(2.0)
        self.assertEqual(self.launches(sim, "agent"), [],
                         "agents launched while the server's node was not Ready")
        _, _, body = self.api("/api/m3s/v0/status/m3s")
        self.assertEqual(json.loads(body)["Server"][server_id]["K3sNodeName"], "m3sserver")
        _, _, k8s = self.api("/api/m3s/v0/status/k8s")
        self.assertEqual(k8s, "nok")

        t_ready = time.time()
        k3s.set_ready("m3sserver", True)
        self.wait("two agents launched", lambda: len(self.launches(sim, "agent")) == 2, BOUND)
        self.assertGreater(min(t for t, _ in self.launches(sim, "agent")), t_ready)
        agent_ids = [i for _, i in self.launches(sim, "agent")]

        # Agent nodes: one labelled, one found through k3s.io/node-args.
        k3s.put_node(fake_k3s.node_object("m3sagent-a", agent_ids[0], ready=True))
        k3s.put_node(fake_k3s.node_object(
            "m3sagent-b", agent_ids[1], ready=False,
            node_args=["agent", "--with-node-id", "--kubelet-arg",
                       "node-labels=m3s.aventer.biz/taskid=%s" % agent_ids[1]]))
        self.wait("both agent nodes in Redis",
                  lambda: self.node_record("m3sagent-a") and self.node_record("m3sagent-b"))
        _, _, k8s = self.api("/api/m3s/v0/status/k8s")
        self.assertEqual(k8s, "nok")   # one agent node is not Ready
        k3s.set_ready("m3sagent-b", True)
        self.wait("status/k8s ok", lambda: self.api("/api/m3s/v0/status/k8s")[2] == "ok")
        _, _, body = self.api("/api/m3s/v0/status/m3s")
        agents = json.loads(body)["Agent"]
        self.assertEqual({agents[i]["K3sNodeName"] for i in agent_ids},
                         {"m3sagent-a", "m3sagent-b"})

        # server/config: every 127.0.0.1:6443 rewritten, text/plain.
        code, ctype, text = self.api("/api/m3s/v0/server/config")
        self.assertEqual(code, 200)
        self.assertTrue(ctype.startswith("text/plain"), ctype)
        self.assertIn("server: https://localhost:%d\n" % k3s.port, text)
        self.assertNotIn("127.0.0.1:6443", text)
        self.assertEqual(text, fake_k3s.kubeconfig(k3s.certs).replace(
            "127.0.0.1:6443", "localhost:%d" % k3s.port))

        # server/version: one element per node.
        code, ctype, body = self.api("/api/m3s/v0/server/version")
        v = json.loads(body)
        self.assertEqual(v["M3SVersion"]["gitVersion"], re.search(
            r"m3s_build_info\{version=\"([^\"]+)\"", self.api("/metrics")[2]).group(1))
        self.assertEqual(sorted(x["NodeName"] for x in v["K3SVersion"]),
                         ["m3sagent-a", "m3sagent-b", "m3sserver"])
        for x in v["K3SVersion"]:
            self.assertEqual(x["NodeInfo"]["kubeletVersion"], "v1.30.4+k3s1")

        # metrics
        self.assertEqual(self.metric("m3s_kube_connected"), 1)
        self.assertTrue(self.metric_line('m3s_kube_nodes{role="agent",ready="true"} 2'))
        self.assertTrue(self.metric_line('m3s_kube_nodes{role="server",ready="true"} 1'))
        for result in ("ok", "refused", "error"):
            self.assertTrue(self.metric_line('m3s_kube_evictions_total{result="%s"} 0' % result))
        self.assertTrue(self.metric_line('m3s_kube_drains{state="draining"} 0'))

        # Cordon: the agents' spec.unschedulable follows; the server is left.
        since = len(k3s.requests)
        code, _, body = self.api("/api/m3s/v0/agent/cordon", "PUT")
        self.assertEqual(code, 200, body)
        self.wait("both agents cordoned",
                  lambda: all(k3s.node(n)["spec"].get("unschedulable") is True
                              for n in ("m3sagent-a", "m3sagent-b")))
        patches = k3s.seen("PATCH", since=since)
        self.assertEqual(sorted(p["path"] for p in patches),
                         ["/api/v1/nodes/m3sagent-a", "/api/v1/nodes/m3sagent-b"])
        for p in patches:
            self.assertEqual(p["content_type"], "application/strategic-merge-patch+json")
            self.assertEqual(json.loads(p["body"]), {"spec": {"unschedulable": True}})
        self.assertNotIn("unschedulable", k3s.node("m3sserver")["spec"])
        self.wait("the cordon in Redis", lambda: self.node_record("m3sagent-a")["spec"]
                  .get("unschedulable") is True)
        code, _, body = self.api("/api/m3s/v0/agent/uncordon", "PUT")
        self.assertEqual(code, 200, body)
        self.wait("both agents uncordoned",
                  lambda: all(k3s.node(n)["spec"].get("unschedulable") is False
                              for n in ("m3sagent-a", "m3sagent-b")))
        time.sleep(1.0)   # several heartbeats: no more PATCHes once they match
        n_patches = len(k3s.seen("PATCH"))
        time.sleep(1.0)
        self.assertEqual(len(k3s.seen("PATCH")), n_patches)

        # A watch that ends is resumed from the last resourceVersion.
        since = len(k3s.requests)
        rv = k3s.rv
        k3s.end_watches()
        self.wait("the watch resumed", lambda: [r for r in k3s.seen("GET", since=since)
                                                if r["query"].get("watch") == "1"])
        resumed = [r for r in k3s.seen("GET", since=since) if r["query"].get("watch") == "1"][0]
        self.assertEqual(resumed["query"]["resourceVersion"], str(rv))
        self.assertEqual([r for r in k3s.seen("GET", since=since) if "watch" not in r["query"]],
                         [], "a resumed watch must not list again")
        k3s.put_node(fake_k3s.node_object("m3sextra", None, ready=True))
        self.wait("a node added after the resume",
                  lambda: self.node_record("m3sextra") is not None)

        # 410 Gone as an ERROR event: listed again, then watched from there.
        lists = len([r for r in k3s.seen("GET") if "watch" not in r["query"]])
        k3s.compact()
        k3s.end_watches()
        k3s.put_node(fake_k3s.node_object("m3sextra2", None, ready=True))
        self.wait("a fresh list after 410",
                  lambda: len([r for r in k3s.seen("GET") if "watch" not in r["query"]]) > lists)
        self.wait("the node added meanwhile", lambda: self.node_record("m3sextra2") is not None)
        # 410 as the HTTP status of the watch request.
        lists = len([r for r in k3s.seen("GET") if "watch" not in r["query"]])
        k3s.gone_http = True
        k3s.end_watches()
        self.wait("a fresh list after HTTP 410",
                  lambda: len([r for r in k3s.seen("GET") if "watch" not in r["query"]]) > lists)
        # A deleted node leaves Redis.
        k3s.delete_node("m3sextra")
        self.wait("the deleted node's record gone", lambda: self.node_record("m3sextra") is None)
        self.assertGreaterEqual(self.metric("m3s_kube_relists_gone_total"), 2)

        # Scale the agents down to 1: the node of the killed task is deleted
        # from Kubernetes once it is not Ready; the other one stays.
        code, _, body = self.api("/api/m3s/v0/agent/scale/1")
        self.assertEqual(code, 200, body)
        self.wait("one agent task left", lambda: len(self.task_ids(sim, "agent")) == 1)
        left = self.task_ids(sim, "agent")[0]
        by_task = {agent_ids[0]: "m3sagent-a", agent_ids[1]: "m3sagent-b"}
        gone = [n for t, n in by_task.items() if t != left][0]
        kept = by_task[left]
        time.sleep(1.0)
        self.assertEqual(k3s.seen("DELETE"), [], "a Ready node was deleted")
        k3s.set_ready(gone, False)
        self.wait("the scaled-down node deleted",
                  lambda: k3s.seen("DELETE", "/api/v1/nodes/" + gone))
        self.wait("its record gone", lambda: self.node_record(gone) is None)
        self.assertIsNotNone(k3s.node(kept))
        self.assertEqual(len(k3s.seen("DELETE")), 1)
        self.wait("status/k8s ok with one agent",
                  lambda: self.api("/api/m3s/v0/status/k8s")[2] == "ok")

        # The kubeconfig's client key never reaches the log.
        self.assertNotIn(k3s.certs.b64("client.key")[:40], d.text())
        self.assert_clean(sim, d)

    def test_wrong_client_certificate(self):
        k3s = self.k3s
        sim, d = self.cluster(agents=0)
        self.pub.publish(fake_k3s.kubeconfig(k3s.certs, client="wrong"))
        self.wait("the server task running",
                  lambda: [t for t in sim.state(include_agents=False)["tasks"]
                           if t["name"].endswith(":server") and t["state"] == "TASK_RUNNING"])
        self.wait("refused handshakes at the fake", lambda: k3s.tls_failures >= 3, BOUND)
        self.assertEqual(k3s.requests, [])
        self.assertEqual(self.metric("m3s_kube_connected"), 0)
        self.assertGreaterEqual(self.metric("m3s_kube_errors_total"), 3)
        # Reported once per change of state, not once per attempt.
        warned = [l for l in d.text().splitlines() if "WARN" in l and "K3s API:" in l]
        self.assertEqual(len(warned), 1, warned)
        self.assertIn("client certificate", warned[0])
        code, _, body = self.api("/api/m3s/v0/status/k8s")
        self.assertEqual((code, body), (200, "nok"))
        # Still running; the right kubeconfig (m3s-controller publishes the
        # changed file) rebuilds the client.
        self.pub.publish(fake_k3s.kubeconfig(k3s.certs))
        self.wait("connected with the right certificate",
                  lambda: self.metric("m3s_kube_connected") == 1, BOUND)
        self.assertTrue(k3s.seen("GET", "/api/v1/nodes"))
        self.assert_clean(sim, d)

    def test_no_kubeconfig(self):
        """Without a kubeconfig the daemon runs and says what it waits for;
        server/config answers 200 without a body, server/version null."""
        sim, d = self.cluster(agents=0)
        self.wait("the server task running",
                  lambda: [t for t in sim.state(include_agents=False)["tasks"]
                           if t["name"].endswith(":server") and t["state"] == "TASK_RUNNING"])
        code, ctype, body = self.api("/api/m3s/v0/server/config")
        self.assertEqual((code, ctype, body), (200, None, ""))
        code, _, body = self.api("/api/m3s/v0/server/version")
        self.assertIsNone(json.loads(body)["K3SVersion"])
        self.assertEqual(self.metric("m3s_kube_connected"), 0)
        self.assertIn("waiting for the kubeconfig", d.text())
        self.assertEqual(self.k3s.requests, [])
        self.assert_clean(sim, d)


DRIVER = os.environ.get("M3S_KUBE_DRIVER")


class Driver(test_mesos.Daemon):
    """kube_driver (tests/integration/kube_driver.c): the kube actor and
    the store, driven line by line; its log in a temporary file."""

    def __init__(self, redis_port, api_port):
        self.log = tempfile.NamedTemporaryFile(prefix="m3s-kube-drv-", suffix=".txt",
                                               delete=False)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "MESOS_MASTER": "127.0.0.1:1", "FRAMEWORK_HOSTNAME": "m3s.test",
               "REDIS_SERVER": "127.0.0.1:%d" % redis_port, "K3S_SERVER_PORT": str(api_port),
               "KUBE_DRIVER_HOST": "localhost", "HEARTBEAT_INTERVAL": "300ms",
               "LOGLEVEL": "debug"}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        self.proc = subprocess.Popen([DRIVER], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)

    def cmd(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline()
        if not out:
            raise AssertionError("kube_driver ended\n" + self.text()[-4000:])
        return out.strip()

    def status(self):
        st = json.loads(self.cmd("status"))
        if "driver_error" in st:
            raise AssertionError("kube_driver: %s" % st["driver_error"])
        return st

    def stop(self):
        """End of input: the actors stop; 0 when all went well (under ASan:
        no leak). It ignores SIGTERM (blocked, as in the daemon)."""
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        return super().stop()

    def cleanup(self):
        super().cleanup()
        self.proc.stdout.close()
        if not self.proc.stdin.closed:
            self.proc.stdin.close()


EVICTABLE_A = [("default", "web-1"), ("default", "web-2")]
KEPT_A = [("default", "job-1"), ("kube-system", "kube-apiserver-m3sagent-a"),
          ("kube-system", "svclb-traefik-a1")]


@unittest.skipUnless(DRIVER, "M3S_KUBE_DRIVER (the kube_driver binary) is not set")
class KubeDrainTest(test_mesos.MesosCase):
    """M3S_KUBE_DRAIN / M3S_KUBE_RELEASE against the fake K3s API: two
    agent nodes; on m3sagent-a a DaemonSet pod, a mirror pod, a finished
    pod and two pods of a Deployment; on m3sagent-b one pod."""

    def setUp(self):
        super().setUp()
        self.k3s = fake_k3s.FakeK3s().start()
        self.addCleanup(self.k3s.stop)
        self.redis().command("SET", "%s:kubernetes_config" % FW,
                             fake_k3s.kubeconfig(self.k3s.certs))
        k3s = self.k3s
        k3s.put_node(fake_k3s.node_object("m3sagent-a", "task-a", ready=True))
        k3s.put_node(fake_k3s.node_object("m3sagent-b", "task-b", ready=True))
        k3s.put_pod("kube-system", "svclb-traefik-a1", "m3sagent-a", daemonset=True)
        k3s.put_pod("kube-system", "kube-apiserver-m3sagent-a", "m3sagent-a", mirror=True)
        k3s.put_pod("default", "job-1", "m3sagent-a", phase="Succeeded")
        for ns, name in EVICTABLE_A:
            k3s.put_pod(ns, name, "m3sagent-a", labels={"app": "web"})
        k3s.put_pod("default", "web-3", "m3sagent-b", labels={"app": "web"})
        self.drv = self.driver()
        self.drv.cmd("ds 0")
        self.wait("both nodes known", lambda: set(self.drv.status()["nodes"]) ==
                  {"m3sagent-a", "m3sagent-b"})

    def wait(self, what, predicate, timeout=BOUND):
        return super().wait(what, predicate, timeout)

    def driver(self):
        d = Driver(self.redis().port, self.k3s.port)
        self.daemons.append(d)
        return d

    def stop_driver(self, d):
        self.assertEqual(d.stop(), 0, "kube_driver exit code\n" + d.text()[-4000:])

    def drained(self, task):
        d = self.drv.status()["drains"].get(task)
        return d if d and d["drained"] else None

    def unschedulable(self, node):
        return self.k3s.node(node)["spec"].get("unschedulable") is True

    def first_patch(self, node, value, since=0):
        for r in self.k3s.seen("PATCH", "/api/v1/nodes/" + node, since=since):
            if json.loads(r["body"]) == {"spec": {"unschedulable": value}}:
                return r
        return None

    def test_drain_cordons_then_evicts(self):
        k3s, drv = self.k3s, self.drv
        self.assertEqual(drv.cmd("drain task-a"), "ok")
        d = self.wait("task-a drained", lambda: self.drained("task-a"))
        self.assertEqual(d, {"node": "m3sagent-a", "pods": 0, "drained": True, "evictions": 2,
                             "refused": 0, "error": ""})
        # Cordoned, and only then evicted: the PATCH came first and every
        # eviction found the node unschedulable.
        self.assertTrue(self.unschedulable("m3sagent-a"))
        cordon = self.first_patch("m3sagent-a", True)
        self.assertIsNotNone(cordon)
        self.assertEqual(sorted((e["namespace"], e["name"]) for e in k3s.evictions), EVICTABLE_A)
        for e in k3s.evictions:
            self.assertEqual((e["code"], e["node"], e["unschedulable"]), (201, "m3sagent-a", True))
            self.assertGreater(e["time"], cordon["time"])
        posts = k3s.seen("POST")
        for r in posts:
            self.assertEqual(r["content_type"], "application/json")
            body = json.loads(r["body"])
            ns, name = r["path"].split("/")[4], r["path"].split("/")[6]
            self.assertEqual(body, {"apiVersion": "policy/v1", "kind": "Eviction",
                                    "metadata": {"name": name, "namespace": ns}})
        # DaemonSet, mirror and finished pods stay; the other node is left.
        self.assertEqual(k3s.pods_on("m3sagent-a"), KEPT_A)
        self.assertEqual(k3s.pods_on("m3sagent-b"), [("default", "web-3")])
        self.assertFalse(self.unschedulable("m3sagent-b"))
        self.assertEqual({r["query"].get("fieldSelector") for r in k3s.seen("GET", "/api/v1/pods")},
                         {"spec.nodeName=m3sagent-a"})
        st = drv.status()
        a = st["nodes"]["m3sagent-a"]
        self.assertEqual((a["draining"], a["pods"], a["drained"], a["drain_error"],
                          a["unschedulable"]), (True, 0, True, "", True))
        b = st["nodes"]["m3sagent-b"]
        self.assertEqual((b["draining"], b["pods"], b["drained"], b["drain_error"]),
                         (False, None, False, ""))
        self.assertEqual(st["evictions"], {"ok": 2, "refused": 0, "error": 0})

        # DRAIN again: nothing changes, nothing is evicted twice.
        n_posts = len(k3s.seen("POST"))
        self.assertEqual(drv.cmd("drain task-a"), "ok")
        lists = len(k3s.seen("GET", "/api/v1/pods"))
        self.wait("two more pod lists", lambda: len(k3s.seen("GET", "/api/v1/pods")) >= lists + 2)
        self.assertEqual(len(k3s.seen("POST")), n_posts)
        self.assertEqual(self.drained("task-a")["evictions"], 2)

        # RELEASE: uncordoned (K3SDisableScheduling is false), no longer
        # draining, no more pod lists.
        since = len(k3s.requests)
        self.assertEqual(drv.cmd("release task-a"), "ok")
        self.wait("m3sagent-a uncordoned", lambda: not self.unschedulable("m3sagent-a"))
        self.assertIsNotNone(self.first_patch("m3sagent-a", False, since))
        st = self.wait("no drains", lambda: (lambda s: s if not s["drains"] else None)(
            drv.status()))
        self.assertFalse(st["nodes"]["m3sagent-a"]["draining"])
        lists = len(k3s.seen("GET", "/api/v1/pods"))
        time.sleep(2.5)
        self.assertEqual(len(k3s.seen("GET", "/api/v1/pods")), lists)
        self.assertEqual(k3s.seen("PATCH", "/api/v1/nodes/m3sagent-b"), [])
        self.stop_driver(drv)

    def test_pdb_refusal_retried_and_pods_waited_for(self):
        k3s, drv = self.k3s, self.drv
        k3s.evict_grace = 3.0
        k3s.add_pdb("default", {"app": "web"}, max_unavailable=1, refuse_for=3.0,
                    name="web-pdb")
        t0 = time.monotonic()
        drv.cmd("drain task-a")
        st = self.wait("a refusal reported",
                       lambda: (lambda s: s if s["drains"]["task-a"]["refused"] else None)(
                           drv.status()))
        err = st["drains"]["task-a"]["error"]
        self.assertIn("PodDisruptionBudget: 429 Cannot evict pod as it would violate the pod's "
                      "disruption budget. for default/web-", err)
        self.assertEqual(st["nodes"]["m3sagent-a"]["drain_error"], err)
        self.assertFalse(st["drains"]["task-a"]["drained"])
        # max_unavailable 1: once one pod terminates the other is refused
        # until it is gone; each eviction comes through in the end.
        self.wait("both pods evicted", lambda: sorted(
            (e["namespace"], e["name"]) for e in k3s.evictions if e["code"] == 201)
            == EVICTABLE_A, BOUND * 2)
        # Evicted but still terminating: not drained while a pod is there.
        if k3s.pods_on("m3sagent-a") != KEPT_A:
            d = drv.status()["drains"]["task-a"]
            still = k3s.pods_on("m3sagent-a") != KEPT_A
            if still:
                self.assertFalse(d["drained"], d)
        d = self.wait("task-a drained", lambda: self.drained("task-a"), BOUND * 2)
        self.assertEqual(k3s.pods_on("m3sagent-a"), KEPT_A)
        self.assertEqual(d["error"], "")
        refused = [e for e in k3s.evictions if e["code"] == 429]
        self.assertGreaterEqual(len(refused), 2)
        self.assertEqual(d["refused"], len(refused))
        self.assertTrue(all(e["unschedulable"] for e in k3s.evictions))
        # Backoff, not a busy loop: at most one retry per pod every second.
        elapsed = time.monotonic() - t0
        self.assertLessEqual(len(k3s.evictions), 2 * (elapsed + 2), k3s.evictions)
        # Logged once per change of reason, not once per refusal.
        warned = [l for l in drv.text().splitlines() if "WARN" in l and "PodDisruptionBudget" in l]
        self.assertLess(len(warned), len(refused) + 1)
        self.assertLessEqual(len(warned), 2 * 2, warned)
        self.stop_driver(drv)

    def test_disable_scheduling_wins(self):
        k3s, drv = self.k3s, self.drv
        drv.cmd("ds 1")
        self.wait("both agents cordoned", lambda: self.unschedulable("m3sagent-a") and
                  self.unschedulable("m3sagent-b"))
        drv.cmd("drain task-a")
        self.wait("task-a drained", lambda: self.drained("task-a"))
        since = len(k3s.requests)
        drv.cmd("release task-a")
        self.wait("no drains", lambda: not drv.status()["drains"])
        time.sleep(1.5)
        self.assertTrue(self.unschedulable("m3sagent-a"), "release undid K3SDisableScheduling")
        self.assertEqual(k3s.seen("PATCH", since=since), [])
        drv.cmd("ds 0")
        self.wait("both agents uncordoned", lambda: not self.unschedulable("m3sagent-a") and
                  not self.unschedulable("m3sagent-b"))
        # A drain asked before the flag is known cordons all the same.
        d2 = self.driver()
        self.stop_driver(drv)
        self.drv = d2
        d2.cmd("drain task-b")
        self.wait("task-b drained", lambda: self.drained("task-b"))
        self.assertTrue(self.unschedulable("m3sagent-b"))
        self.assertIsNone(d2.status()["disable_scheduling"])
        self.assertEqual(k3s.pods_on("m3sagent-b"), [])
        self.stop_driver(d2)

    def test_unknown_task_then_its_node(self):
        k3s, drv = self.k3s, self.drv
        drv.cmd("drain")   # no task id: refused, nothing else changes
        drv.cmd("drain task-c")
        st = self.wait("the drain listed", lambda: (lambda s: s if "task-c" in s["drains"]
                                                    else None)(drv.status()))
        self.assertEqual(st["drains"]["task-c"], {"node": None, "pods": None, "drained": False,
                                                   "evictions": 0, "refused": 0, "error": ""})
        self.assertEqual(list(st["drains"]), ["task-c"])
        self.assertIn("without a usable task id", drv.text())
        k3s.put_node(fake_k3s.node_object("m3sagent-c", "task-c", ready=True))
        k3s.put_pod("default", "web-9", "m3sagent-c", labels={"app": "web"})
        d = self.wait("task-c drained", lambda: self.drained("task-c"))
        self.assertEqual((d["node"], d["evictions"]), ("m3sagent-c", 1))
        self.assertTrue(self.unschedulable("m3sagent-c"))
        self.assertFalse(self.unschedulable("m3sagent-a"))
        self.stop_driver(drv)

    def test_server_node_drain(self):
        """A server node is cordoned only while its task drains."""
        k3s, drv = self.k3s, self.drv
        k3s.put_node(fake_k3s.node_object("m3sserver", "task-s", ready=True, server=True))
        k3s.put_pod("default", "web-s", "m3sserver", labels={"app": "web"})
        drv.cmd("ds 1")
        self.wait("agents cordoned", lambda: self.unschedulable("m3sagent-a"))
        self.assertFalse(self.unschedulable("m3sserver"))
        drv.cmd("drain task-s")
        d = self.wait("task-s drained", lambda: self.drained("task-s"))
        self.assertEqual((d["node"], d["evictions"]), ("m3sserver", 1))
        self.assertTrue(self.unschedulable("m3sserver"))
        drv.cmd("release task-s")
        self.wait("the server node uncordoned", lambda: not self.unschedulable("m3sserver"))
        self.assertTrue(self.unschedulable("m3sagent-a"))
        n_patches = len(k3s.seen("PATCH", "/api/v1/nodes/m3sserver"))
        time.sleep(1.0)
        self.assertEqual(len(k3s.seen("PATCH", "/api/v1/nodes/m3sserver")), n_patches)
        self.stop_driver(drv)

    def test_api_away_mid_drain_and_restart(self):
        k3s, drv = self.k3s, self.drv
        k3s.add_pdb("default", {"app": "web"}, refuse_count=10 ** 6, name="web-pdb")
        drv.cmd("drain task-a")
        self.wait("refusals", lambda: drv.status()["drains"]["task-a"]["refused"] >= 2)
        # The K3s API goes away: the drain waits, and says why.
        k3s.unlisten(k3s.server)
        self.wait("disconnected", lambda: not drv.status()["connected"])
        k3s.clear_pdbs()
        time.sleep(1.0)
        k3s.server = k3s.listen("127.0.0.1", k3s.port)
        d = self.wait("task-a drained after the API came back",
                      lambda: self.drained("task-a"), BOUND * 2)
        self.assertEqual(k3s.pods_on("m3sagent-a"), KEPT_A)
        self.assertTrue(all(e["unschedulable"] for e in k3s.evictions))
        self.assertEqual(sorted((e["namespace"], e["name"]) for e in k3s.evictions
                                if e["code"] == 201), EVICTABLE_A)
        self.assertGreaterEqual(d["refused"], 2)
        # A restarted daemon asks again: harmless, the node stays cordoned
        # and nothing is evicted twice.
        self.stop_driver(drv)
        n_evictions = len(k3s.evictions)
        since = len(k3s.requests)
        self.drv = self.driver()
        self.drv.cmd("ds 0")
        # The flag says schedulable, but the node stays cordoned while the
        # caller has time to ask again (10 s after start).
        self.wait("the flag known", lambda: self.drv.status()["disable_scheduling"] is False)
        self.wait("a node list", lambda: k3s.seen("GET", "/api/v1/nodes", since=since))
        time.sleep(0.5)
        self.drv.cmd("drain task-a")
        d = self.wait("task-a drained again", lambda: self.drained("task-a"))
        self.assertEqual((d["evictions"], d["pods"]), (0, 0))
        self.assertEqual(len(k3s.evictions), n_evictions)
        self.assertTrue(self.unschedulable("m3sagent-a"))
        self.assertIsNone(self.first_patch("m3sagent-a", False, since))
        self.stop_driver(self.drv)


if __name__ == "__main__":
    unittest.main()
