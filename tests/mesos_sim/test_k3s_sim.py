"""k3s_sim.py: what the simulated K3s containers do, against a real
redis-server and over TLS, without the Mesos side (a stub stands in for
MesosSim's two hooks).

Run: python3 -m unittest tests/mesos_sim/test_k3s_sim.py -v
"""
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import types
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import k3s_sim  # noqa: E402
from ports import free_port  # noqa: E402

BOUND = 20.0


class StubSim:
    verbose = False

    def __init__(self):
        self.health = []

    def _later(self, delay, fn, *args):
        fn(*args)

    def _health(self, task, healthy):
        self.health.append((task.task_id, healthy))


def task(role, task_id, redis_port, api_port=None):
    args = ["/usr/local/bin/k3s", role, "--snapshotter=native"]
    if role == "server":
        args += ["--token=s3cret", "--node-label", "m3s.aventer.biz/taskid=" + task_id]
    else:
        args += ["--with-node-id", "--kubelet-arg", "node-labels=m3s.aventer.biz/taskid=" + task_id]
    env = {"KUBERNETES_VERSION": "v1.31.5", "K3S_TOKEN": "s3cret",
           "M3S_CONTROLLER__REDIS_SERVER": "127.0.0.1:%d" % redis_port,
           "M3S_CONTROLLER__REDIS_PASSWORD": "", "M3S_CONTROLLER__REDIS_DB": "1",
           "M3S_CONTROLLER__REDIS_PREFIX": "m3s"}
    info = {"name": "m3s:" + role, "task_id": {"value": task_id},
            "command": {"arguments": args, "environment": {"variables": [
                {"name": k, "value": v} for k, v in env.items()]}},
            "container": {"hostname": "m3s%s.local" % role, "docker": {"port_mappings": (
                [{"host_port": api_port, "container_port": 6443}] if api_port else [])}}}
    if role == "server":
        info["health_check"] = {"type": "COMMAND", "command": {"value": "true"}}
    return types.SimpleNamespace(task_id=task_id, name=info["name"], info=info, ip="172.17.0.9")


class K3sSimTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="m3s-k3s-sim-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.redis_port = free_port()
        self.redis = subprocess.Popen(["redis-server", "--port", str(self.redis_port), "--bind",
                                       "127.0.0.1", "--dir", self.tmp, "--save", ""],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (self.redis.terminate(), self.redis.wait(10)))
        self.sim = StubSim()
        self.k3s = k3s_sim.K3sSim(self.sim, ["127.0.0.1", "127.0.1.1"], config_delay=0.05,
                                  node_delay=0.05, ready_delay=None)
        self.addCleanup(self.k3s.stop)

    def wait(self, what, fn):
        deadline = time.monotonic() + BOUND
        while True:
            v = fn()
            if v:
                return v
            self.assertLess(time.monotonic(), deadline, "timed out waiting for " + what)
            time.sleep(0.02)

    def redis_get(self, key):
        out = subprocess.run(["redis-cli", "-p", str(self.redis_port), "-n", "1", "--raw", "GET",
                              key], capture_output=True, text=True, timeout=10)
        return out.stdout.rstrip("\n")

    def https(self, host, port, path):
        """GET over TLS with the published kubeconfig's CA and client cert."""
        c = self.k3s.clusters["m3s"].certs
        ctx = ssl.create_default_context(cafile=c.path("ca.crt"))
        ctx.load_cert_chain(c.path("client.crt"), c.path("client.key"))
        with urllib.request.urlopen("https://%s:%d%s" % (host, port, path), context=ctx,
                                    timeout=10) as r:
            return r.read().decode()

    def node(self, name):
        return self.k3s.clusters["m3s"].api.node(name)

    def call(self, host, port, method, path, body=None):
        """(status, JSON answer) of a request with the kubeconfig's
        credentials; HTTP errors are answers too."""
        c = self.k3s.clusters["m3s"].certs
        ctx = ssl.create_default_context(cafile=c.path("ca.crt"))
        ctx.load_cert_chain(c.path("client.crt"), c.path("client.key"))
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("https://%s:%d%s" % (host, port, path), data=data,
                                     method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
                return r.status, json.loads(r.read().decode())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode())

    def evict(self, port, ns, name, body=None):
        return self.call("127.0.0.1", port, "POST",
                         "/api/v1/namespaces/%s/pods/%s/eviction" % (ns, name),
                         body if body is not None else
                         {"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": name, "namespace": ns}})

    def test_agent_pods_evictions_and_budgets(self):
        api_port = free_port()
        self.k3s.task_running(task("server", "sv-3", self.redis_port, api_port),
                              types.SimpleNamespace(hostname="127.0.0.1"))
        self.k3s.task_running(task("agent", "ag-3", self.redis_port),
                              types.SimpleNamespace(hostname="127.0.0.1"))
        self.wait("the API", lambda: self.k3s.state()["clusters"].get("m3s", {})
                  .get("listening"))
        node = self.wait("the agent node", lambda: [
            k for k in self.k3s.state()["clusters"]["m3s"]["nodes"] if "agent" in k])[0]
        suffix = node.rsplit("-", 1)[1]
        api = self.k3s.clusters["m3s"].api
        self.wait("its pods", lambda: len(api.pods_on(node)) == 3)
        # The pod list of the node, as the API server answers it.
        code, pods = self.call("127.0.0.1", api_port, "GET",
                               "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s" % node)
        self.assertEqual((code, pods["kind"], pods["apiVersion"]), (200, "PodList", "v1"))
        self.assertTrue(pods["metadata"]["resourceVersion"])
        by_name = {p["metadata"]["name"]: p for p in pods["items"]}
        self.assertEqual(sorted(by_name), sorted(["svclb-traefik-" + suffix, "web-%s-1" % suffix,
                                                  "web-%s-2" % suffix]))
        ds = by_name["svclb-traefik-" + suffix]
        self.assertEqual(ds["metadata"]["ownerReferences"][0]["kind"], "DaemonSet")
        self.assertEqual(ds["metadata"]["namespace"], "kube-system")
        for p in pods["items"]:
            self.assertEqual((p["spec"]["nodeName"], p["status"]["phase"]), (node, "Running"))
        code, other = self.call("127.0.0.1", api_port, "GET",
                                "/api/v1/pods?fieldSelector=spec.nodeName%3Dnowhere")
        self.assertEqual((code, other["items"]), (200, []))
        code, st = self.call("127.0.0.1", api_port, "GET", "/api/v1/pods?fieldSelector=spec.x%3Dy")
        self.assertEqual((code, st["kind"], st["reason"]), (400, "Status", "BadRequest"))
        web1, web2 = "web-%s-1" % suffix, "web-%s-2" % suffix
        code, one = self.call("127.0.0.1", api_port, "GET",
                              "/api/v1/namespaces/default/pods/" + web1)
        self.assertEqual((code, one["metadata"]["name"]), (200, web1))

        # A budget that refuses the first two evictions: 429 with the API
        # server's Status, then 201 and the pod gone.
        self.assertEqual(self.k3s.add_pdb("default", {"app": "web"}, refuse_count=2,
                                          name="web-pdb"), "web-pdb")
        for _ in range(2):
            code, st = self.evict(api_port, "default", web1)
            self.assertEqual(code, 429)
            self.assertEqual((st["kind"], st["status"], st["reason"], st["code"]),
                             ("Status", "Failure", "TooManyRequests", 429))
            self.assertEqual(st["message"],
                             "Cannot evict pod as it would violate the pod's disruption budget.")
            self.assertEqual(st["details"]["causes"][0]["reason"], "DisruptionBudget")
            self.assertIn("web-pdb", st["details"]["causes"][0]["message"])
        code, st = self.evict(api_port, "default", web1)
        self.assertEqual((code, st["kind"], st["status"]), (201, "Status", "Success"))
        self.assertNotIn(("default", web1), api.pods_on(node))
        code, st = self.evict(api_port, "default", web1)
        self.assertEqual((code, st["reason"]), (404, "NotFound"))
        self.assertEqual(st["message"], 'pods "%s" not found' % web1)
        # Not an Eviction, or another pod's: 400, nothing evicted.
        code, st = self.evict(api_port, "default", web2, {"kind": "Pod"})
        self.assertEqual(code, 400)
        code, st = self.evict(api_port, "default", web2,
                              {"apiVersion": "policy/v1", "kind": "Eviction",
                               "metadata": {"name": "other", "namespace": "default"}})
        self.assertEqual(code, 400)
        self.assertIn(("default", web2), api.pods_on(node))

        # A grace delay and max_unavailable 1: while one pod terminates the
        # next is refused; a terminating pod's eviction is accepted again.
        self.k3s.clear_pdbs()
        self.k3s.set_evict_grace(1.0)
        self.k3s.put_pod("default", "web-x", node, labels={"app": "web"})
        self.k3s.add_pdb("default", {"app": "web"}, max_unavailable=1)
        self.assertEqual(self.evict(api_port, "default", web2)[0], 201)
        self.assertIn(("default", web2), api.pods_on(node))   # terminating
        pod = api.pods[("default", web2)]
        self.assertIn("deletionTimestamp", pod["metadata"])
        self.assertEqual(self.evict(api_port, "default", "web-x")[0], 429)
        self.assertEqual(self.evict(api_port, "default", web2)[0], 201)
        self.wait("the evicted pod gone", lambda: ("default", web2) not in api.pods_on(node))
        self.assertEqual(self.evict(api_port, "default", "web-x")[0], 201)

        # Each eviction recorded with its node's cordon state at the time.
        self.call("127.0.0.1", api_port, "PATCH", "/api/v1/nodes/" + node,
                  {"spec": {"unschedulable": True}})
        self.k3s.put_pod("default", "web-y", node, labels={"app": "web"})
        self.k3s.clear_pdbs()
        self.assertEqual(self.evict(api_port, "default", "web-y")[0], 201)
        ev = self.k3s.state()["clusters"]["m3s"]["evictions"]
        self.assertEqual([(e["name"], e["code"]) for e in ev],
                         [(web1, 429), (web1, 429), (web1, 201), (web1, 404), (web2, 201),
                          ("web-x", 429), (web2, 201), ("web-x", 201), ("web-y", 201)])
        self.assertEqual([e["unschedulable"] for e in ev], [False] * 8 + [True])
        self.assertEqual(ev[0]["node"], node)
        self.assertIsNone(ev[3]["node"])
        st = self.k3s.state()["clusters"]["m3s"]
        self.assertTrue(st["nodes"][node]["unschedulable"])
        self.assertEqual([(p["name"], p["terminating"]) for p in st["pods"][node]
                          if not p["daemonset"]], [("web-x", True), ("web-y", True)])
        self.wait("the evicted pods gone", lambda: len(api.pods_on(node)) == 1)
        self.assertTrue(self.k3s.delete_pod("kube-system", "svclb-traefik-" + suffix))
        self.assertEqual(api.pods_on(node), [])
        self.assertEqual(self.k3s.state()["errors"], [])

    def test_server_and_agent(self):
        api_port = free_port()
        sv = task("server", "sv-1", self.redis_port, api_port)
        self.k3s.task_running(sv, types.SimpleNamespace(hostname="127.0.1.1"))
        # The kubeconfig in Redis, as K3s writes it; the API on the agent's
        # address with a certificate valid for it.
        kc = self.wait("the kubeconfig", lambda: self.redis_get("m3s:kubernetes_config"))
        self.assertIn("    server: https://127.0.0.1:6443\n", kc)
        self.assertEqual(kc, self.k3s.clusters["m3s"].kubeconfig.rstrip("\n"))
        self.assertEqual(self.https("127.0.1.1", api_port, "/readyz"), "ok")
        self.assertEqual(self.sim.health, [("sv-1", True)])
        n = self.wait("the server node", lambda: self.node("m3sserver.local"))
        ready = [c for c in n["status"]["conditions"] if c["type"] == "Ready"][0]
        self.assertEqual(ready["status"], "False")
        labels = n["metadata"]["labels"]
        self.assertEqual(labels["m3s.aventer.biz/taskid"], "sv-1")
        self.assertEqual(labels["node-role.kubernetes.io/control-plane"], "true")
        args = json.loads(n["metadata"]["annotations"]["k3s.io/node-args"])
        self.assertEqual(args, ["server", "--snapshotter=native", "--token=********",
                                "--node-label", "m3s.aventer.biz/taskid=sv-1"])
        self.assertNotIn("s3cret", json.dumps(n))
        self.assertIn("simulated", n["status"]["nodeInfo"]["osImage"])
        self.assertEqual(n["status"]["nodeInfo"]["kubeletVersion"], "v1.31.5+k3s1")
        listed = json.loads(self.https("127.0.1.1", api_port, "/api/v1/nodes"))
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["m3sserver.local"])
        # Ready only when told (ready_delay None).
        self.assertEqual(self.k3s.set_ready(task_id="sv-1"), "m3sserver.local")
        self.assertEqual(self.k3s.state()["clusters"]["m3s"]["nodes"]["m3sserver.local"]["ready"],
                         True)

        ag = task("agent", "ag-1", self.redis_port)
        self.k3s.task_running(ag, types.SimpleNamespace(hostname="127.0.0.1"))
        name = self.wait("the agent node", lambda: [
            k for k in self.k3s.state()["clusters"]["m3s"]["nodes"] if "agent" in k])[0]
        self.assertRegex(name, r"^m3sagent\.local-[0-9a-f]{8}$")
        self.assertEqual(self.node(name)["metadata"]["labels"]["m3s.aventer.biz/taskid"], "ag-1")

        # The server ends: its API stops, its node turns NotReady.
        self.k3s.task_ended(sv)
        self.wait("the server node NotReady", lambda: not self.k3s.state()["clusters"]["m3s"]
                  ["nodes"]["m3sserver.local"]["ready"])
        self.wait("the API gone", lambda: not self.k3s.state()["clusters"]["m3s"]["listening"])
        with self.assertRaises(OSError):
            self.https("127.0.1.1", api_port, "/readyz")
        self.assertEqual(self.k3s.state()["errors"], [])

    def test_address_taken_is_reported(self):
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            sv = task("server", "sv-2", self.redis_port, port)
            self.k3s.task_running(sv, types.SimpleNamespace(hostname="127.0.0.1"))
            err = self.wait("an error", lambda: self.k3s.state()["errors"])
        self.assertIn("cannot serve the K3s API on 127.0.0.1:%d" % port, err[0])
        self.assertEqual(self.sim.health, [])


class ControlApiTest(unittest.TestCase):
    """The simulator's control API reaches the fake K3s API's pods and
    budgets (POST /sim/k3s-*, GET /sim/k3s)."""

    def test_pods_and_budgets_over_http(self):
        from mesos_sim import MesosSim
        sim = MesosSim(agents=1, k3s=True, k3s_node_delay=0.05, k3s_ready_delay=None).start()
        self.addCleanup(sim.stop)

        def post(name, body):
            req = urllib.request.Request("http://127.0.0.1:%d/sim/%s" % (sim.port, name),
                                         data=json.dumps(body).encode(), method="POST")
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    return r.status, json.loads(r.read().decode())
            except urllib.error.HTTPError as e:
                return e.code, json.loads(e.read().decode())

        def state():
            with urllib.request.urlopen("http://127.0.0.1:%d/sim/k3s" % sim.port,
                                        timeout=10) as r:
                return json.loads(r.read().decode())
        # No cluster before a K3s task runs: a clear 400.
        code, err = post("k3s-pdb", {"namespace": "default", "selector": {"app": "web"}})
        self.assertEqual(code, 400)
        self.assertIn("no K3s cluster", err["error"])
        sim._k3s.task_running(task("agent", "ag-9", free_port()),
                              types.SimpleNamespace(hostname="127.0.0.1"))
        deadline = time.monotonic() + BOUND
        while not state()["clusters"].get("m3s", {}).get("pods"):
            self.assertLess(time.monotonic(), deadline, "the agent's pods")
            time.sleep(0.02)
        node = next(iter(state()["clusters"]["m3s"]["nodes"]))
        self.assertEqual(post("k3s-put-pod", {"namespace": "default", "name": "extra",
                                              "node": node, "labels": {"app": "web"}}),
                         (200, {"ok": True, "result": "extra"}))
        self.assertEqual(post("k3s-pdb", {"namespace": "default", "selector": {"app": "web"},
                                          "refuse_count": 1, "name": "web-pdb"}),
                         (200, {"ok": True, "result": "web-pdb"}))
        self.assertEqual(post("k3s-evict-grace", {"seconds": 0})[0], 200)
        api = sim._k3s.clusters["m3s"].api
        self.assertEqual(api.evict("default", "extra")[0], 429)
        self.assertEqual(api.evict("default", "extra")[0], 201)
        self.assertEqual(post("k3s-delete-pod", {"namespace": "kube-system",
                                                 "name": "nope"})[1]["result"], False)
        self.assertEqual(post("k3s-clear-pdbs", {})[0], 200)
        st = state()["clusters"]["m3s"]
        self.assertEqual(st["pdbs"], [])
        self.assertEqual([(e["name"], e["code"], e["unschedulable"]) for e in st["evictions"]],
                         [("extra", 429, False), ("extra", 201, False)])
        self.assertEqual(sorted(p["name"].split("-")[0] for p in st["pods"][node]),
                         ["svclb", "web", "web"])
        self.assertFalse(st["nodes"][node]["unschedulable"])


if __name__ == "__main__":
    unittest.main()
