#!/usr/bin/env python3
"""Rolling updates end to end (issue 15): the real daemon, the Mesos
simulator with its simulated K3s (fake_k3s.py: nodes, pods, the Eviction
API, PodDisruptionBudgets, cordon state) and a real redis-server, all on
loopback.

A plan replaces every outdated task one step at a time: servers first, then
agents, each agent cordoned and drained before its KILL, never more than
ROLLOUT_MAX_UNAVAILABLE agents unavailable. It can be paused, resumed and
aborted, stops FAILED when a new task fails (a replacement whose Mesos agent
is lost included), survives kill -9 of the daemon and the loss of an old
agent's Mesos agent, and holds still while Redis is down.

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
# No periodic reconciliation during a test: it sends a KILL again for a
# task still being killed (role.c), and the tests count the KILLs a rollout
# causes. A re-subscription still reconciles (the master failover test).
ENV = {"KUBERNETES_VERSION": "v1.31.5", "IMAGE_K3S": "example/k3s:1",
       "HEARTBEAT_INTERVAL": "1s", "RECONCILE_WAIT": "10m"}
# Each task takes more than half a simulated agent's memory (16384 MB):
# one task per Mesos agent, so losing one loses only the task chosen.
ONE_PER_HOST = {"DS_MEM": "9000", "K3S_SERVER_MEM": "9000", "K3S_AGENT_MEM": "9000"}


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

    def fake(self, sim):
        """The simulated cluster's fake K3s API (fake_k3s.FakeK3s)."""
        return sim._k3s._cluster(FW).api

    def node_of(self, sim, task_id):
        return sim.k3s_state()["tasks"].get(task_id, {}).get("node")

    def agent_nodes(self, sim):
        """{agent task id: node name} of the agents with a node."""
        tasks = sim.k3s_state()["tasks"]
        return {k: v["node"] for k, v in tasks.items() if v["role"] == "agent" and v["node"]}

    def wait_agent_nodes(self, sim, n):
        return self.wait("%d agent nodes Ready" % n, lambda: self.ready_agents(sim) == n and
                         self.agent_nodes(sim), LONG)

    def ready_agents(self, sim):
        """Agents available: task running, node Ready and schedulable."""
        k3s = sim._k3s
        with k3s.lock:
            tasks = {k: v["node"] for k, v in k3s.tasks.items() if v["role"] == "agent"}
        api = self.fake(sim)
        with api.cond:
            nodes = {n: (any(c["type"] == "Ready" and c["status"] == "True"
                             for c in o["status"]["conditions"]),
                         bool(o["spec"].get("unschedulable")))
                     for n, o in api.nodes.items()}
        return sum(1 for node in tasks.values()
                   if node in nodes and nodes[node][0] and not nodes[node][1])

    def sampler(self, sim, want):
        """Samples the agents unavailable (want - available) every 50 ms
        in a thread; returns (stop, result dict with "max")."""
        out = {"max": 0, "samples": 0}
        stop = threading.Event()

        def run():
            while not stop.is_set():
                out["max"] = max(out["max"], want - self.ready_agents(sim))
                out["samples"] += 1
                stop.wait(0.05)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        return stop, out, t

    def cordoned_at(self, sim, node):
        """Time of the first PATCH that cordoned node, or None."""
        for r in self.fake(sim).seen("PATCH", "/api/v1/nodes/%s" % node):
            try:
                if json.loads(r["body"]).get("spec", {}).get("unschedulable") is True:
                    return r["time"]
            except ValueError:
                pass
        return None

    def kill_times(self, sim):
        out = {}
        for c in sim.calls(type="KILL"):
            if isinstance(c["body"], dict):
                out.setdefault(c["body"]["kill"]["task_id"]["value"], []).append(c["time"])
        return out

    def step_of(self, plan, name):
        for ph in plan["phases"]:
            for st in ph["steps"]:
                if st["name"] == name:
                    return st
        return None

    def agents_cluster(self, n=3, servers=1, **env):
        e = dict(ENV, K3S_AGENT_COUNT=str(n), K3S_SERVER_COUNT=str(servers))
        e.update(env)
        sim, d = self.cluster(agents=n + servers + 3, **e)
        self.wait_converged(sim, 1, servers, n)
        self.wait_agent_nodes(sim, n)
        return sim, d

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

    def test_agent_rollout_drains_one_at_a_time(self):
        """A K3s version update of 1 server and 3 agents: servers first,
        then each agent cordoned and drained before its KILL, never more
        than ROLLOUT_MAX_UNAVAILABLE (1) agents unavailable, every new task
        on the new version, the plan COMPLETE."""
        sim, d = self.agents_cluster(3)
        old_agents = {t[0] for t in self.active(sim, "agent")}
        old_server = {t[0] for t in self.active(sim, "server")}
        nodes = self.agent_nodes(sim)
        self.put_pods(sim, nodes)
        # The budget refuses every eviction for a while: the drain waits.
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_for=1.5)
        stop, seen, th = self.sampler(sim, 3)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        plan = json.loads(body)["plan"]
        self.assertEqual(plan["status"], "IN_PROGRESS")
        self.assertEqual([p["name"] for p in plan["phases"]], ["server", "agent"])
        self.assertEqual({s["old_task"] for s in plan["phases"][1]["steps"]}, old_agents)
        self.assertEqual({s["old_task"] for s in plan["phases"][0]["steps"]}, old_server)
        # Another start while it runs is refused.
        code, body = self.api("cluster/rollout", "PUT")
        self.assertEqual(code, 409, body)
        self.wait_plan("COMPLETE")
        stop.set()
        th.join()
        self.assertGreater(seen["samples"], 10)
        self.assertEqual(seen["max"], 1, "agents unavailable at once (1: each drained in turn)")
        plan = self.plan()
        self.assertEqual([p["status"] for p in plan["phases"]], ["COMPLETE", "COMPLETE"])
        launched = {t["task_id"]["value"]: t for _, _, _, t in self.launched(sim)}
        kills = self.kill_times(sim)
        server_done = None
        for ph in plan["phases"]:
            for st in ph["steps"]:
                self.assertEqual(st["status"], "COMPLETE", st)
                self.assertEqual(self.version_of(launched[st["new_task"]]), "v1.32.0")
                self.assertEqual(len(kills.get(st["old_task"], [])), 1, st)
                if ph["name"] == "server":
                    server_done = st["finished"]
                else:
                    # Cordoned before its KILL, and after the servers.
                    t = self.cordoned_at(sim, nodes[st["old_task"]])
                    self.assertIsNotNone(t, "node of %s never cordoned" % st["old_task"])
                    self.assertLess(t, kills[st["old_task"]][0])
                    self.assertGreater(st["started"], server_done)
        self.check_drained_before_kill(sim, nodes, kills)
        # /metrics and the status page's data show the plan.
        code, text = self.request("/metrics")
        self.assertIn('m3s_rollout_steps{status="COMPLETE"} 4\n', text)
        self.assertIn('m3s_rollout_plan{status="COMPLETE"} 1\n', text)
        code, body = self.api("status")
        self.assertEqual(json.loads(body)["plan"]["id"], plan["id"])
        self.wait("the old tasks gone", lambda: self.converged(
            sim, 1, 1, 3, gone=old_agents | old_server))
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": set(), "Agent": set()})
        # The last plan stays readable, and a new one can start (nothing to do).
        code, body = self.api("cluster/rollout", "PUT")
        self.assertEqual(code, 200, body)
        self.assertEqual(sum(len(p["steps"]) for p in json.loads(body)["phases"]), 0)
        self.wait_plan("COMPLETE")
        self.assert_clean(sim, d)

    def check_drained_before_kill(self, sim, nodes, kills):
        """Every pod on an old agent's node was evicted once, while the node
        was cordoned and before the task's KILL (the fake K3s's record of
        evictions); DaemonSet and mirror pods were left alone."""
        api = self.fake(sim)
        ok = {}
        for e in list(api.evictions):
            if e["code"] == 201:
                ok.setdefault((e["namespace"], e["name"]), []).append(e)
            self.assertTrue(e["unschedulable"], e)
        for tid, node in nodes.items():
            for ns, name in self.pods[node]:
                got = ok.get((ns, name), [])
                self.assertEqual(len(got), 1, (name, got))
                self.assertLess(got[0]["time"], kills[tid][0], got[0])
            for ns, name in self.kept[node]:
                self.assertNotIn((ns, name), ok)
                self.assertIn((ns, name), api.pods_on(node))

    def put_pods(self, sim, nodes):
        """Two evictable pods on each node (a PodDisruptionBudget covers
        them), a DaemonSet pod and a mirror pod that a drain leaves."""
        api = self.fake(sim)
        self.pods, self.kept = {}, {}
        for i, node in enumerate(sorted(nodes.values())):
            self.pods[node] = [("default", "web-%d-a" % i), ("default", "web-%d-b" % i)]
            for ns, name in self.pods[node]:
                api.put_pod(ns, name, node, labels={"app": "web"})
            self.kept[node] = [("kube-system", "svclb-%d" % i), ("kube-system", "static-%d" % i)]
            api.put_pod("kube-system", "svclb-%d" % i, node, daemonset=True)
            api.put_pod("kube-system", "static-%d" % i, node, mirror=True)

    def test_surge_servers_and_agents(self):
        """Two servers and ROLLOUT_MAX_SURGE=1: every replacement is
        launched (and Ready) before its old task is drained and retired;
        the counts are back where they were at the end."""
        sim, d = self.agents_cluster(2, servers=2, ROLLOUT_MAX_SURGE="1")
        old = {t[0] for t in self.active(sim) if t[1] != "datastore"}
        nodes = self.agent_nodes(sim)
        self.put_pods(sim, nodes)
        code, body = self.update({"IMAGE_K3S": "example/k3s:2", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait_plan("COMPLETE")
        plan = self.plan()
        launched = {t["task_id"]["value"]: (seq, t) for seq, _, _, t in self.launched(sim)}
        kills = self.kill_times(sim)
        kill_seq = {c["body"]["kill"]["task_id"]["value"]: c["seq"]
                    for c in sim.calls(type="KILL") if isinstance(c["body"], dict)}
        for ph in plan["phases"]:
            for st in ph["steps"]:
                self.assertTrue(st["surge"], st)
                seq, ti = launched[st["new_task"]]
                self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:2")
                self.assertLess(seq, kill_seq[st["old_task"]], "launched before the kill")
                self.assertEqual(len(kills[st["old_task"]]), 1)
        self.check_drained_before_kill(sim, nodes, kills)
        self.assertEqual({s["old_task"] for p in plan["phases"] for s in p["steps"]}, old)
        self.wait("back to 1/2/2", lambda: self.converged(sim, 1, 2, 2, gone=old))
        for role in ("server", "agent"):
            code, body = self.api("%s/scale" % role)
            self.assertEqual(json.loads(body)["Scale"], 2, role)
        self.assert_clean(sim, d)

    def test_two_agents_at_a_time(self):
        """ROLLOUT_MAX_UNAVAILABLE=2: two agent steps run side by side, never
        a third agent unavailable."""
        sim, d = self.agents_cluster(4, ROLLOUT_MAX_UNAVAILABLE="2")
        nodes = self.agent_nodes(sim)
        self.put_pods(sim, nodes)
        # Held long enough that two drains overlap, whatever the load.
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_for=2.0)
        stop, seen, th = self.sampler(sim, 4)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait_plan("COMPLETE")
        stop.set()
        th.join()
        self.assertEqual(seen["max"], 2, "agents unavailable at once")
        kills = self.kill_times(sim)
        self.check_drained_before_kill(sim, nodes, kills)
        self.wait("4 current agents", lambda: self.current(sim, 4))
        self.assert_clean(sim, d)

    def test_pause_resume_abort(self):
        sim, d = self.agents_cluster(3)
        code, body = self.api("plan/pause", "PUT")
        self.assertEqual(code, 404, body)
        code, body = self.update({"IMAGE_K3S": "example/k3s:2", "rollout": True})
        self.assertEqual(code, 200, body)
        # Pause once the first agent step is under way: it finishes, no
        # other starts.
        self.wait("agent-1 under way", lambda: (self.step_of(self.plan(), "agent-1") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        code, body = self.api("plan/pause", "PUT")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["status"], "PAUSED")
        code, body = self.api("plan/pause", "PUT")
        self.assertEqual(code, 409, body)
        self.wait("agent-1 done", lambda: self.step_of(self.plan(), "agent-1")["status"]
                  == "COMPLETE", LONG * 2)
        time.sleep(2.0)  # paused: nothing else starts however long it waits
        plan = self.plan()
        self.assertEqual(plan["status"], "PAUSED")
        self.assertEqual([self.step_of(plan, n)["status"] for n in ("agent-2", "agent-3")],
                         ["PENDING", "PENDING"])
        old = self.step_of(plan, "agent-2")["old_task"]
        self.assertNotIn(old, self.kill_times(sim))
        code, body = self.api("plan/resume", "PUT")
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body)["status"], "IN_PROGRESS")
        # Abort while agent-2 runs: it finishes, agent-3 never starts.
        self.wait("agent-2 under way", lambda: self.step_of(self.plan(), "agent-2")["status"]
                  != "PENDING", LONG * 2)
        code, body = self.api("plan/abort", "PUT")
        self.assertEqual(code, 200, body)
        self.wait_plan("ABORTED")
        plan = self.plan()
        self.assertEqual(self.step_of(plan, "agent-2")["status"], "COMPLETE")
        self.assertEqual(self.step_of(plan, "agent-3")["status"], "PENDING")
        self.assertNotIn(self.step_of(plan, "agent-3")["old_task"], self.kill_times(sim))
        self.assertEqual(len(self.outdated()["Agent"]), 1)
        code, body = self.api("plan/resume", "PUT")
        self.assertEqual(code, 409, body)
        # A new plan takes the rest.
        code, body = self.api("cluster/rollout", "PUT")
        self.assertEqual(code, 200, body)
        self.assertEqual([len(p["steps"]) for p in json.loads(body)["phases"]], [0, 1])
        self.wait_plan("COMPLETE")
        self.assertEqual(self.outdated()["Agent"], set())
        self.assert_clean(sim, d)

    def test_failing_new_agent_stops_the_plan(self):
        sim, d = self.agents_cluster(3)
        old = {t[0] for t in self.active(sim, "agent")}
        # Every agent started from now on fails during its bring-up.
        sim.add_task_behavior(":agent$", state="TASK_FAILED", after=0.3,
                              message="k3s agent: cannot join")
        code, body = self.update({"IMAGE_K3S": "example/k3s:broken", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait_plan("FAILED")
        plan = self.plan()
        first = self.step_of(plan, "agent-1")
        self.assertEqual(first["status"], "FAILED")
        self.assertIn("ended before it was ready (TASK_FAILED", first["reason"])
        self.assertIn("agent-1", plan["reason"])
        self.assertEqual(plan["phases"][1]["status"], "FAILED")
        time.sleep(2.0)
        # Nothing further touched: the other old agents run, uncordoned.
        kills = self.kill_times(sim)
        untouched = old - {first["old_task"]}
        self.assertEqual(len(untouched), 2)
        for tid in untouched:
            self.assertNotIn(tid, kills)
            self.assertIsNone(self.cordoned_at(sim, self.node_of(sim, tid)))
        self.assertEqual([self.step_of(plan, n)["status"] for n in ("agent-2", "agent-3")],
                         ["PENDING", "PENDING"])
        sim.clear_task_behaviors()
        self.assert_clean(sim, d)

    def test_kill9_mid_plan_goes_on(self):
        """kill -9 while an agent step is under way: the new daemon goes on
        from that step; no task is killed twice and no id launched twice."""
        sim, d = self.agents_cluster(3, MESOS_FAILOVER_TIMEOUT="1h")
        nodes = self.agent_nodes(sim)
        self.put_pods(sim, nodes)
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_for=3.0)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait("agent-2 under way", lambda: (self.step_of(self.plan(), "agent-2") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        d.kill9()
        self.faults = getattr(self, "faults", 0) + 1
        stored = json.loads(self.redis().command("GET", "%s:rollout_plan" % FW))
        self.assertIn(stored["status"], ("IN_PROGRESS",))
        d2 = self.daemon(sim, **dict(ENV, K3S_AGENT_COUNT="3", MESOS_FAILOVER_TIMEOUT="1h",
                                     FRAMEWORK_PORT=str(self.api_port), AUTH_USERNAME="ops",
                                     AUTH_PASSWORD="orchestra-secret", RECONCILE_WAIT="10m",
                                     REFUSE_OFFERS="1", RESTART_BACKOFF_MIN="200ms"))
        self.wait_plan("COMPLETE")
        plan = self.plan()
        self.assertEqual(plan["id"], stored["id"])
        kills = self.kill_times(sim)
        launched = {t["task_id"]["value"]: t for _, _, _, t in self.launched(sim)}
        for ph in plan["phases"]:
            for st in ph["steps"]:
                self.assertEqual(st["status"], "COMPLETE", st)
                self.assertEqual(len(kills.get(st["old_task"], [])), 1, st)
                self.assertEqual(self.version_of(launched[st["new_task"]]), "v1.32.0")
        self.check_drained_before_kill(sim, nodes, kills)
        self.wait("3 current agents", lambda: self.current(sim, 3))
        self.assert_clean(sim, d2)

    def test_kill9_between_kill_and_end(self):
        """kill -9 after an old agent's KILL went out but before it ended
        (the simulator takes 20 s to kill): the restarted daemon has one
        task too many and must keep the replacement, not the old task."""
        env = dict(ENV, K3S_AGENT_COUNT="2", K3S_SERVER_COUNT="1", MESOS_FAILOVER_TIMEOUT="1h",
                   FRAMEWORK_PORT=None, AUTH_USERNAME="ops", AUTH_PASSWORD="orchestra-secret",
                   RECONCILE_WAIT="10m", REFUSE_OFFERS="1", RESTART_BACKOFF_MIN="200ms")
        sim, d = self.agents_cluster(2, MESOS_FAILOVER_TIMEOUT="1h")
        env["FRAMEWORK_PORT"] = str(self.api_port)
        sim.configure(kill_delay=20.0)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)

        def killed():
            st = self.step_of(self.plan(), "agent-1") or {}
            return st.get("old_task") in self.kill_times(sim) and st
        step = self.wait("agent-1's old task killed", killed, LONG * 2)
        d.kill9()
        self.faults = getattr(self, "faults", 0) + 1
        d2 = self.daemon(sim, **env)
        self.wait("agent-1's replacement running", lambda: any(
            t[0] == step["new_task"] for t in self.active(sim, "agent", "TASK_RUNNING")), LONG)
        sim.configure(kill_delay=0.05)
        self.wait_plan("COMPLETE")
        plan = self.plan()
        self.assertEqual(self.step_of(plan, "agent-1")["new_task"], step["new_task"])
        self.assertNotIn(step["new_task"], self.kill_times(sim), "the replacement was killed")
        self.wait("2 current agents", lambda: self.current(sim, 2))
        self.assert_clean(sim, d2)

    def test_master_restart_mid_plan(self):
        """A master failover while an agent step runs: the plan waits for
        the agents to come back and completes; nothing is launched twice
        and no old agent is killed twice."""
        sim, d = self.agents_cluster(3)
        nodes = self.agent_nodes(sim)
        self.put_pods(sim, nodes)
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_for=2.0)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait("agent-1 under way", lambda: (self.step_of(self.plan(), "agent-1") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        self.faults = getattr(self, "faults", 0) + 1
        sim.restart(reregister_delay=2.0)
        self.wait_plan("COMPLETE")
        kills = self.kill_times(sim)
        for st in self.plan()["phases"][1]["steps"]:
            self.assertEqual(st["status"], "COMPLETE", st)
            # A KILL in the air when the master went away is sent again by
            # the role's reconciliation: at least one, the replacement none.
            self.assertGreaterEqual(len(kills.get(st["old_task"], [])), 1, st)
            self.assertNotIn(st["new_task"], kills, st)
        self.check_drained_before_kill(sim, nodes, kills)
        self.wait("3 current agents", lambda: self.current(sim, 3))
        # A task being killed when the master went away is killed again at
        # the re-subscription, possibly before its agent re-registered: the
        # master does not know it yet (a warning, answered by reconciliation).
        self.assert_clean(sim, d, expected=("kill_unknown_task",))

    def current(self, sim, agents):
        """1 datastore, 1 server and `agents` agents running and recorded,
        no agent outdated; a failed wait says which part was missing."""
        if not self.converged(sim, 1, 1, agents):
            return False
        left = self.outdated()["Agent"]
        self.why = "converged, but agents still outdated: %s" % sorted(left)
        return not left

    def lose_host_of(self, sim, task_id):
        """Loses the Mesos agent running task_id at once (its tasks end
        TASK_UNREACHABLE, the framework being PARTITION_AWARE), after
        checking that no other task of ours runs there. Returns its id."""
        host = [t[2] for t in self.active(sim) if t[0] == task_id]
        self.assertEqual(len(host), 1, task_id)
        others = [t[0] for t in self.active(sim) if t[2] == host[0] and t[0] != task_id]
        self.assertEqual(others, [], "other tasks share the agent of %s" % task_id)
        self.faults = getattr(self, "faults", 0) + 1
        return sim.lose_agent(host[0], delay=0)

    def test_agent_lost_mid_plan(self):
        """The Mesos agent of an old agent whose step has not started is
        lost while agent-1 is drained: the role replaces the lost task at
        once with the current spec, so its step, when its turn comes, finds
        the task gone and is done without a drain or a KILL. The plan
        completes; it never has more than one step under way nor more than
        one live agent's node cordoned, so at most 2 agents are unavailable
        (the plan's one and the lost one); nothing is killed or drained
        twice; every agent at the end runs the new version."""
        sim, d = self.agents_cluster(3, **ONE_PER_HOST)
        old_agents = {t[0] for t in self.active(sim, "agent")}
        nodes = self.agent_nodes(sim)
        self.put_pods(sim, nodes)
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_for=2.0)
        stop, seen, th = self.sampler(sim, 3)
        steps = {"max": 0, "cordoned": 0}
        api = self.fake(sim)

        def run():
            while not stop.is_set():
                code, body = self.api("plan")
                if code == 200:
                    steps["max"] = max(steps["max"], sum(
                        1 for st in json.loads(body)["phases"][1]["steps"]
                        if st["status"] == "IN_PROGRESS"))
                live = set(self.agent_nodes(sim).values())
                with api.cond:
                    steps["cordoned"] = max(steps["cordoned"], sum(
                        1 for n, o in api.nodes.items()
                        if n in live and o["spec"].get("unschedulable")))
                stop.wait(0.05)
        th2 = threading.Thread(target=run, daemon=True)
        th2.start()
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait("agent-1 under way", lambda: (self.step_of(self.plan(), "agent-1") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        victim = self.step_of(self.plan(), "agent-3")
        self.assertEqual(victim["status"], "PENDING")
        lost = self.lose_host_of(sim, victim["old_task"])
        # The kubelet went with the host: K3s marks its node NotReady.
        sim.set_k3s_node_ready(task_id=victim["old_task"], ready=False)
        self.wait_plan("COMPLETE")
        stop.set()
        th.join()
        th2.join()
        self.assertEqual(steps["max"], 1, "agent steps under way at once")
        self.assertEqual(steps["cordoned"], 1, "nodes of live agents cordoned at once")
        self.assertLessEqual(seen["max"], 2, "agents unavailable: the plan's one and the lost one")
        plan = self.plan()
        kills = self.kill_times(sim)
        launched = {t["task_id"]["value"]: t for _, _, _, t in self.launched(sim)}
        for st in plan["phases"][1]["steps"]:
            self.assertEqual(st["status"], "COMPLETE", st)
            if st["old_task"] == victim["old_task"]:
                self.assertEqual(st["reason"], "the task is gone", st)
                self.assertIsNone(st["new_task"], st)
                self.assertNotIn(st["old_task"], kills, "the lost task was killed")
                self.assertIsNone(self.cordoned_at(sim, nodes[st["old_task"]]))
            else:
                self.assertEqual(len(kills.get(st["old_task"], [])), 1, st)
                self.assertEqual(self.version_of(launched[st["new_task"]]), "v1.32.0")
        drained = {k: v for k, v in nodes.items() if k != victim["old_task"]}
        self.check_drained_before_kill(sim, drained, kills)
        for e in self.fake(sim).evictions:
            self.assertNotIn((e["namespace"], e["name"]), self.pods[nodes[victim["old_task"]]])
        # The role's own replacement of the lost task: the new spec too.
        self.wait("3 current agents", lambda: self.converged(sim, 1, 1, 3, gone=old_agents) and
                  not self.outdated()["Agent"])
        for tid, _, agent, _ in self.active(sim, "agent"):
            self.assertNotEqual(agent, lost)
            self.assertEqual(self.version_of(launched[tid]), "v1.32.0", tid)
        self.assert_clean(sim, d)

    def test_new_agent_lost_before_ready(self):
        """The Mesos agent of agent-1's replacement is lost before the new
        node turns Ready. As for a failing new agent, the step fails and
        the plan stops FAILED, touching nothing further; the reason names
        how the task ended, so the operator sees the host went rather than
        the new spec failing. The role still replaces the lost task (new spec, count
        kept); a new plan then takes the agents left outdated."""
        sim, d = self.agents_cluster(3, **ONE_PER_HOST)
        old = {t[0] for t in self.active(sim, "agent")}
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_for=1.5)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        # The server phase is over: from now on a new node stays NotReady
        # until the test says (agent-1 is still draining for 1.5 s).
        self.wait("agent-1 under way", lambda: (self.step_of(self.plan(), "agent-1") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        sim._k3s.ready_delay = None

        # Lost once the daemon has acknowledged its updates: an ACKNOWLEDGE
        # still on its way then is dropped by the simulator, whose removed
        # agent keeps the update as unacknowledged for ever.
        def new_node():
            st = self.step_of(self.plan(), "agent-1")
            nt = st.get("new_task")
            return nt and any(t[0] == nt for t in self.active(sim, "agent", "TASK_RUNNING")) \
                and self.node_of(sim, nt) and \
                not any(u["task_id"] == nt for u in sim.unacked_updates()) and st
        step = self.wait("agent-1's replacement registered, NotReady", new_node, LONG * 2)
        self.assertEqual(step["status"], "IN_PROGRESS")
        lost = self.lose_host_of(sim, step["new_task"])
        sim._k3s.ready_delay = 1.0
        self.wait_plan("FAILED")
        plan = self.plan()
        first = self.step_of(plan, "agent-1")
        self.assertEqual(first["status"], "FAILED")
        # The reason says the host went, not that the new spec failed.
        self.assertEqual(first["reason"], "new task %s ended before it was ready "
                         "(TASK_UNREACHABLE REASON_AGENT_REMOVED)" % step["new_task"])
        self.assertIn("agent-1", plan["reason"])
        self.assertEqual(plan["phases"][1]["status"], "FAILED")
        # The role keeps the count: one more agent, on the new spec.
        self.wait("3 agents again", lambda: self.converged(sim, 1, 1, 3, gone={
            first["old_task"], step["new_task"]}), LONG)
        kills = self.kill_times(sim)
        self.assertEqual(len(kills.get(first["old_task"], [])), 1)
        self.assertNotIn(step["new_task"], kills)
        launched = {t["task_id"]["value"]: t for _, _, _, t in self.launched(sim)}
        untouched = old - {first["old_task"]}
        for tid, _, agent, _ in self.active(sim, "agent"):
            self.assertNotEqual(agent, lost)
            if tid not in untouched:
                self.assertEqual(self.version_of(launched[tid]), "v1.32.0", tid)
        # Nothing further touched by the failed plan.
        for tid in untouched:
            self.assertNotIn(tid, kills)
            self.assertIsNone(self.cordoned_at(sim, self.node_of(sim, tid)))
        self.assertEqual([self.step_of(plan, n)["status"] for n in ("agent-2", "agent-3")],
                         ["PENDING", "PENDING"])
        self.assertEqual(self.outdated()["Agent"], untouched)
        # The operator's way on: a new plan for what is left.
        code, body = self.api("cluster/rollout", "PUT")
        self.assertEqual(code, 200, body)
        self.assertEqual({s["old_task"] for s in json.loads(body)["phases"][1]["steps"]},
                         untouched)
        self.wait_plan("COMPLETE")
        self.wait("3 current agents", lambda: self.converged(sim, 1, 1, 3, gone=old) and
                  not self.outdated()["Agent"])
        kills = self.kill_times(sim)
        for tid in old:
            self.assertEqual(len(kills.get(tid, [])), 1, tid)
        self.assert_clean(sim, d)

    def test_new_agent_never_ready_hits_the_node_timeout(self):
        """The rollout waits for a new agent's node to be Ready without a
        limit of its own; one that stays NotReady is killed by the agent
        role after K3S_NODE_TIMEOUT (m3s/role.h), which fails the step with
        that reason, and the role replaces it (new id, new spec)."""
        sim, d = self.agents_cluster(1, K3S_NODE_TIMEOUT="3s", CLEANUP_WAIT="1s")
        # Two refused evictions hold agent-1's drain for seconds (the
        # drain's backoff), so the test sees the step under way before
        # the new agent exists.
        self.fake(sim).add_pdb("default", {"app": "web"}, refuse_count=2)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        # Once the agent step runs, its new node stays NotReady.
        self.wait("agent-1 under way", lambda: (self.step_of(self.plan(), "agent-1") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        sim._k3s.ready_delay = None
        self.wait_plan("FAILED")
        first = self.step_of(self.plan(), "agent-1")
        new = first["new_task"]
        self.assertEqual(first["reason"], "new task %s ended before it was ready "
                         "(TASK_KILLED node not Ready)" % new)
        self.assertIn("agent task %s: its Kubernetes node" % new, d.text())
        sim._k3s.ready_delay = 1.0
        self.wait("a replacement agent on the new spec",
                  lambda: self.converged(sim, 1, 1, 1, gone={first["old_task"], new}) and
                  not self.outdated()["Agent"], LONG)
        self.assert_clean(sim, d)

    def test_redis_outage_holds_the_plan(self):
        """While Redis is down the plan does not advance: no old agent is
        killed; once it is back the plan completes."""
        sim, d = self.agents_cluster(3)
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        self.assertEqual(code, 200, body)
        self.wait("agent-1 under way", lambda: (self.step_of(self.plan(), "agent-1") or {})
                  .get("status") == "IN_PROGRESS", LONG * 2)
        self.redis().kill()
        plan = self.plan()
        old = {st["old_task"] for st in plan["phases"][1]["steps"]}
        # A pending step needs at least two stored changes before its KILL.
        pending = {st["old_task"] for st in plan["phases"][1]["steps"]
                   if st["status"] == "PENDING"}
        self.assertTrue(pending)
        time.sleep(4.0)
        self.assertFalse(set(self.kill_times(sim)) & pending,
                         "an agent was killed while the plan could not be stored")
        self.assertEqual(self.plan()["status"], "IN_PROGRESS")
        self.assertTrue(all(self.step_of(self.plan(), st["name"])["status"] == "PENDING"
                            for st in plan["phases"][1]["steps"] if st["old_task"] in pending))
        self.redis().start()
        self.wait_plan("COMPLETE")
        kills = self.kill_times(sim)
        for tid in old:
            self.assertEqual(len(kills.get(tid, [])), 1, tid)
        self.assert_clean(sim, d)


def load_tests(loader, tests, pattern):
    return test_update.own_tests(RolloutTest, loader)


if __name__ == "__main__":
    unittest.main(verbosity=2)
