"""What the status-page and degraded-status tests share: the orchestration
harness of tests/integration (a real redis-server, the Mesos master
simulator and the daemon, all on loopback), borrowed without running its
tests."""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import test_mesos  # noqa: E402
import test_orchestra  # noqa: E402

USER, PASSWORD = "ops", "orchestra-secret"   # test_orchestra's cluster() credentials
LONG = test_orchestra.LONG
ROLES = test_orchestra.ROLES
_O = test_orchestra.OrchestraTest


class UiCase(test_mesos.MesosCase):
    # Borrowed helpers (plain functions of OrchestraTest).
    cluster = _O.cluster
    api = _O.api
    scale = _O.scale
    active = _O.active
    records = _O.records
    launched = _O.launched
    converged = _O.converged
    wait_converged = _O.wait_converged
    role_of = staticmethod(_O.role_of)

    def get(self, path, auth=True, timeout=10):
        """(status, headers, body) of GET http://127.0.0.1:<api>/<path>."""
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path))
        if auth:
            req.add_header("Authorization", "Basic " + base64.b64encode(
                ("%s:%s" % (USER, PASSWORD)).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def health(self):
        code, _, body = self.get("/health", auth=False)
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def status(self):
        code, _, body = self.get("/api/m3s/v0/status")
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def finish(self, sim, daemon):
        """The orchestration tests' closing checks: nothing unacknowledged or
        hoarded, no task id launched twice, a clean exit and no violation."""
        sim.check_unacked(older_than=3.0)
        sim.check_offers(older_than=5.0)
        ids = [ti["task_id"]["value"] for _, _, _, ti in self.launched(sim)]
        self.assertEqual(len(ids), len(set(ids)), "a task id was launched twice")
        test_mesos.MesosCase.assert_clean(self, sim, daemon)
