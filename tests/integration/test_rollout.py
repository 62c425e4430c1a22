#!/usr/bin/env python3
"""Rolling updates end to end (issue 15): the real daemon, the Mesos
simulator with its simulated K3s (fake_k3s.py: nodes, pods, the Eviction
API, PodDisruptionBudgets, cordon state) and a real redis-server, all on
loopback.

A plan replaces every outdated task one step at a time: servers first, then
agents, each agent cordoned and drained before its KILL, never more than
ROLLOUT_MAX_UNAVAILABLE agents unavailable. It can be paused, resumed and
aborted, stops FAILED when a new task fails, survives kill -9 of the daemon
and holds still while Redis is down.

Run: M3S_BIN=build/m3s python3 tests/integration/test_rollout.py -v
"""
import json
import os
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_orchestra  # noqa: E402
import test_update  # noqa: E402

FW = test_orchestra.FW
LONG = test_orchestra.LONG
ENV = {"KUBERNETES_VERSION": "v1.31.5", "IMAGE_K3S": "example/k3s:1",
       "HEARTBEAT_INTERVAL": "1s"}


class RolloutTest(test_update.UpdateTest):
    def plan(self):
        code, body = self.api("plan")
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def plan_status(self):
        code, body = self.api("plan")
        return json.loads(body)["status"] if code == 200 else None

    def wait_plan(self, status, timeout=None):
        return self.wait("the plan %s" % status, lambda: self.plan_status() == status,
                         timeout or LONG * 2)

    def version_of(self, ti):
        return self.env_of(ti).get("KUBERNETES_VERSION")

    def kills(self, sim):
        """task id -> number of KILL calls the daemon sent for it."""
        out = {}
        for c in sim.calls(type="KILL"):
            if isinstance(c["body"], dict):
                tid = c["body"]["kill"]["task_id"]["value"]
                out[tid] = out.get(tid, 0) + 1
        return out

    # -- tests -------------------------------------------------------------

    def test_server_rollout_in_place(self):
        """One server: replaced in place; the plan says so, COMPLETE."""
        sim, d = self.cluster(agents=3, K3S_AGENT_COUNT="0", **ENV)
        self.wait_converged(sim, 1, 1, 0)
        old = {t[0] for t in self.active(sim, "server")}
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        doc = json.loads(body)
        self.assertEqual(doc["updated"], {"KUBERNETES_VERSION": "v1.32.0"})
        plan = doc["plan"]
        self.assertEqual([p["name"] for p in plan["phases"]], ["server", "agent"])
        self.assertEqual([s["old_task"] for s in plan["phases"][0]["steps"]], sorted(old))
        self.wait_plan("COMPLETE")
        plan = self.plan()
        step = plan["phases"][0]["steps"][0]
        self.assertEqual(step["status"], "COMPLETE")
        self.assertTrue(step["started"] and step["finished"])
        new = step["new_task"]
        ti = [t for _, _, _, t in self.launched(sim) if t["task_id"]["value"] == new][0]
        self.assertEqual(self.version_of(ti), "v1.32.0")
        self.wait("the old server gone", lambda: self.converged(sim, 1, 1, 0, gone=old))
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": set(), "Agent": set()})
        self.assert_clean(sim, d)


def load_tests(loader, tests, pattern):
    return test_update.own_tests(RolloutTest, loader)


if __name__ == "__main__":
    unittest.main(verbosity=2)
