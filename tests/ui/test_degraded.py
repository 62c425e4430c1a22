#!/usr/bin/env python3
"""Redis goes away under a running cluster: the API says so and does not
pretend. /health stays 200 (liveness) with "degraded" in its body, the
status endpoint and /metrics show the outage, and a scale the role takes
but cannot save is a 503 whose message is what really happens: the count is
acted on at once, saved when Redis is back. Then Redis comes back and
everything is as the message said.

Run: M3S_BIN=build/m3s python3 tests/ui/test_degraded.py -v
"""
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ui_harness import LONG, UiCase  # noqa: E402

FW = "m3s"


class DegradedTest(UiCase):
    def test_redis_outage_degraded_then_recovered(self):
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="1")
        self.wait_converged(sim, 1, 1, 1)
        self.wait("a healthy /health", lambda: self.health()["status"] == "ok")
        self.assertEqual(self.health(), {"status": "ok", "redis": True, "mesos": "subscribed",
                                         "k3s": "ready"})
        st = self.status()
        self.assertEqual((st["status"], st["problems"]), ("ok", []))
        for role in ("datastore", "server", "agent"):
            r = st["roles"][role]
            sim_ids = {t[0] for t in self.active(sim, role)}
            self.assertEqual(set(r["tasks"]), sim_ids)
            self.assertEqual((r["desired"], r["running"]), (1, 1))
            for t in r["tasks"].values():
                self.assertEqual(t["state"], "TASK_RUNNING")
                self.assertTrue(t["host"])

        self.redis().kill()
        self.wait("/health to say degraded", lambda: self.health()["redis"] is False)
        h = self.health()
        self.assertEqual(h, {"status": "degraded", "redis": False, "mesos": "subscribed",
                             "k3s": "ready", "reason": "Redis is not connected"})
        st = self.status()
        self.assertEqual(st["status"], "degraded")
        self.assertIs(st["redis"], False)
        self.assertTrue(any("Redis is not connected" in p for p in st["problems"]), st)
        code, _, metrics = self.get("/metrics")
        self.assertEqual(code, 200)
        self.assertIn("\nm3s_redis_connected 0\n", metrics)

        # The kubeconfig lives in Redis: the copy read before the outage
        # (the simulated K3s server published it) is still served.
        code, body = self.api("server/config")
        self.assertEqual(code, 200, body)
        self.assertRegex(body, r"\n    server: https://127\.0\.\d+\.1:%d\n" % sim.k3s_port)

        # A scale: taken by the role, not confirmed -> 503 saying so.
        t0 = time.monotonic()
        code, body = self.api("agent/scale/3")
        took = time.monotonic() - t0
        self.assertEqual(code, 503, body)
        self.assertLess(took, 5.0, "the mesos-cli gives up after 5 s")
        msg = json.loads(body)["error"]
        print("503 while Redis is down (%.1f s): %s" % (took, msg), file=sys.stderr)
        self.assertIn("Redis is unavailable, so the agent count 3 is not saved yet", msg)
        self.assertIn("written when Redis is back", msg)
        # What the message says is true: the role holds the count ...
        self.assertEqual(self.api("agent/scale"), (200, '{"Scale":3,"Running":3}'))
        self.assertEqual(self.status()["roles"]["agent"]["desired"], 3)
        # ... and launches nothing whose record is not saved.
        time.sleep(1.5)
        self.assertEqual(len(self.active(sim, "agent")), 1)
        self.assertIsNone(d.proc.poll(), "the daemon died during the Redis outage")

        self.redis().start()
        self.wait("/health ok again", lambda: self.health()["status"] == "ok", LONG)
        self.wait_converged(sim, 1, 1, 3)
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual(cfg["K3SAgentMax"], 3, "the count was saved once Redis was back")
        self.assertEqual(self.status()["status"], "ok")
        self.assertEqual(self.api("server/config")[0], 200)
        self.assertEqual(self.api("agent/scale/2"), (200, "-1"))
        self.wait_converged(sim, 1, 1, 2)
        self.finish(sim, d)

    def test_no_kubeconfig_while_redis_is_down(self):
        """None read before the outage: 503, not the "none published yet"
        empty 200 (no K3s server ran to publish one)."""
        sim, d = self.cluster(agents=2, K3S_SERVER_COUNT="0", K3S_AGENT_COUNT="0")
        self.assertEqual(self.api("server/config"), (200, ""))
        self.wait("a healthy /health", lambda: self.health()["status"] == "ok")
        self.redis().kill()
        self.wait("/health to say degraded", lambda: self.health()["redis"] is False)
        code, body = self.api("server/config")
        self.assertEqual(code, 503, body)
        self.assertIn("Redis is unavailable", json.loads(body)["error"])
        self.redis().start()
        self.wait("/health ok again", lambda: self.health()["status"] == "ok", LONG)
        self.assertEqual(self.api("server/config"), (200, ""))
        self.finish(sim, d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
