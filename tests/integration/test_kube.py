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


if __name__ == "__main__":
    unittest.main()
