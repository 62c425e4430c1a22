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
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import k3s_sim  # noqa: E402

BOUND = 20.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


if __name__ == "__main__":
    unittest.main()
