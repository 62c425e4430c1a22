#!/usr/bin/env python3
"""K3s orchestration end to end: the real daemon, the Mesos simulator and a
real redis-server, all on loopback.

Every test ends with the simulator's verdict: no violation (duplicate task
ids, resources beyond an offer, hoarded offers, updates never or twice
acknowledged, ...) but the ones a test provokes on purpose.

Run: M3S_BIN=build/m3s python3 tests/integration/test_orchestra.py -v
"""
import base64
import json
import os
import random
import re
import socket
import sys
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import redis_sentinel  # noqa: E402
import test_mesos  # noqa: E402  (the module: its MesosTest must not run here)

BOUND, SLOW = test_mesos.BOUND, test_mesos.SLOW

ROLES = ("datastore", "server", "agent")
FW = "m3s"
LONG = BOUND * (3 if SLOW else 1)


class OrchestraTest(test_mesos.MesosCase):
    # -- setup -----------------------------------------------------------

    def cluster(self, agents=4, sim_kw=None, **env):
        kw = {"agents": agents, "task_start_delay": 0.05, "health_delay": 0.1, "k3s": True}
        self.api_port = test_mesos.free_port()
        env.setdefault("FRAMEWORK_PORT", str(self.api_port))
        env.setdefault("AUTH_USERNAME", "ops")
        env.setdefault("AUTH_PASSWORD", "orchestra-secret")
        kw.update(sim_kw or {})
        sim = self.sim(**kw)
        env.setdefault("RESTART_BACKOFF_MIN", "200ms")
        env.setdefault("RESTART_BACKOFF_MAX", "2s")
        env.setdefault("RECONCILE_WAIT", "3s")
        env.setdefault("REFUSE_OFFERS", "1")
        d = self.daemon(sim, **env)
        return sim, d

    def api(self, path, method="GET"):
        """(status, body) of a REST API call with the test's credentials."""
        req = urllib.request.Request("http://127.0.0.1:%d/api/m3s/v0/%s" % (self.api_port, path),
                                     method=method)
        req.add_header("Authorization",
                       "Basic " + base64.b64encode(b"ops:orchestra-secret").decode())
        deadline = time.monotonic() + LONG
        while True:
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    return resp.status, resp.read().decode()
            except urllib.error.HTTPError as e:
                return e.code, e.read().decode()
            except (ConnectionError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)  # the daemon is still starting

    def health(self):
        """/health's body (no credentials)."""
        url = "http://127.0.0.1:%d/health" % self.api_port
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def scale(self, role, n, expect_diff=None):
        code, body = self.api("%s/scale/%d" % (role, n))
        self.assertEqual(code, 200, body)
        if expect_diff is not None:
            self.assertEqual(body, str(expect_diff))
        return body

    # -- views -------------------------------------------------------------

    @staticmethod
    def role_of(name):
        return name.rsplit(":", 1)[-1]

    def active(self, sim, role=None, state=None):
        """The simulator's live tasks: [(task_id, role, agent_id, state)]."""
        out = []
        for t in sim.state(include_agents=False)["tasks"]:
            if t["where"] != "active":
                continue
            r = self.role_of(t["name"])
            if (role is None or r == role) and (state is None or t["state"] == state):
                out.append((t["task_id"], r, t["agent_id"], t["state"]))
        return out

    def records(self, role=None):
        """Task records in Redis: {task_id: record}."""
        out = {}
        keys = self.redis().command("--scan", "--pattern", "%s:*" % FW).decode().split()
        for k in keys:
            parts = k.split(":")
            if len(parts) != 3 or parts[1] not in ROLES or (role and parts[1] != role):
                continue
            raw = self.redis().command("GET", k)
            if raw.strip():     # not deleted since the scan
                out[parts[2]] = json.loads(raw)
        return out

    def launched(self, sim):
        """Every TaskInfo the daemon sent in an ACCEPT, in order:
        [(call seq, time, agent_id, taskinfo)]."""
        out = []
        for c in sim.calls(type="ACCEPT"):
            if c["status"] != 202 or not isinstance(c["body"], dict):
                continue
            for op in c["body"]["accept"].get("operations", []):
                for ti in op.get("launch", {}).get("task_infos", []):
                    out.append((c["seq"], c["time"], ti["agent_id"]["value"], ti))
        return out

    @staticmethod
    def updates(sim):
        """[(event entry, TaskStatus)] of every UPDATE sent."""
        return [(e, e["event"]["update"]["status"]) for e in sim.events(type="UPDATE")
                if "event" in e]

    def converged(self, sim, ds, sv, ag, gone=()):
        """The cluster at ds/sv/ag, all running and recorded, and none of
        the task ids in `gone` alive: judged on one snapshot of the
        simulator, since two snapshots can straddle a kill."""
        want = {"datastore": ds, "server": sv, "agent": ag}
        act = self.active(sim)
        # Why not (yet): a failed wait shows the last reason (self.why).
        self.why = "the simulator's live tasks: %s" % sorted((t[1], t[0], t[3]) for t in act)
        if set(gone) & {t[0] for t in act}:
            return False
        for r in ROLES:
            running = [t for t in act if t[1] == r and t[3] == "TASK_RUNNING"]
            if len(running) != want[r] or len([t for t in act if t[1] == r]) != want[r]:
                return False
        recs = self.records()
        self.why += "; records: %s" % sorted((k, v.get("State")) for k, v in recs.items())
        if set(recs) != {t[0] for t in act}:
            return False
        if not all(recs[t[0]]["State"] == "TASK_RUNNING" for t in act):
            return False
        self.why = "converged"
        return True

    def wait_converged(self, sim, ds, sv, ag, timeout=None):
        self.wait("the cluster at %d/%d/%d" % (ds, sv, ag),
                  lambda: self.converged(sim, ds, sv, ag), timeout or LONG)

    def assert_clean(self, sim, daemon, expected=()):
        sim.check_unacked(older_than=3.0)
        sim.check_offers(older_than=5.0)
        ids = [ti["task_id"]["value"] for _, _, _, ti in self.launched(sim)]
        self.assertEqual(len(ids), len(set(ids)), "a task id was launched twice")
        super().assert_clean(sim, daemon, expected)

    # -- tests ----------------------------------------------------------------

    def test_bring_up_order_and_taskinfo(self):
        labels = [{"key": "traefik.enable", "value": "true"}]
        sim, d = self.cluster(
            agents=4, K3S_AGENT_COUNT="3", K3S_TOKEN="tok-secret-1", DOMAIN=".test",
            DOCKER_CNI="k3snet", BOOTSTRAP_URL="http://127.0.0.1:1/bootstrap.sh",
            K3S_AGENT_TCP_PORT="9000", K3S_AGENT_LABELS=json.dumps(labels),
            K3S_AGENT_CPU="1.5", K3S_AGENT_MEM="1500", K3S_AGENT_DISK="2000",
            IMAGE_K3S="example/k3s:1", DS_MYSQL_PASSWORD="dbpw")
        self.wait_converged(sim, 1, 1, 3)
        launches = self.launched(sim)
        by_role = {r: [x for x in launches if self.role_of(x[3]["name"]) == r] for r in ROLES}
        self.assertEqual([len(by_role[r]) for r in ROLES], [1, 1, 3])

        # Order and gating: the server is launched after the datastore was
        # reported healthy, the agents after the server's K3s API answered
        # (its health check) and its node was Ready (test_k3s_gate.py).
        ds_id = by_role["datastore"][0][3]["task_id"]["value"]
        sv_id = by_role["server"][0][3]["task_id"]["value"]
        healthy = [e for e, st in self.updates(sim)
                   if st["task_id"]["value"] == ds_id and st.get("healthy") is True]
        running = [e for e, st in self.updates(sim)
                   if st["task_id"]["value"] == sv_id and st.get("healthy") is True]
        self.assertTrue(healthy and running)
        self.assertLess(healthy[0]["time"], by_role["server"][0][1])
        self.assertLess(running[0]["time"], min(x[1] for x in by_role["agent"]))
        # All three agents in one offer round, each on its own Mesos agent.
        self.assertEqual(len({x[0] for x in by_role["agent"]}) <= 3, True)
        self.assertEqual(len({x[2] for x in by_role["agent"]}), 3)

        for seq, _, agent, ti in launches:
            role = self.role_of(ti["name"])
            c = ti["container"]
            dk = c["docker"]
            self.assertEqual(ti["name"], "%s:%s" % (FW, role))
            self.assertEqual(c["type"], "DOCKER")
            self.assertEqual(c["hostname"], "%s%s.test" % (FW, role))
            self.assertEqual(dk["network"], "USER")
            self.assertEqual(c["network_infos"], [{"name": "k3snet"}])
            self.assertTrue(dk["force_pull_image"])
            env = {v["name"]: v.get("value") for v in
                   ti["command"].get("environment", {}).get("variables", [])}
            ports = [p["host_port"] for p in dk["port_mappings"]]
            self.assertEqual(len(ports), len(set(ports)))
            for p in ports:
                self.assertTrue(31000 <= p <= 32000 or p == sim.k3s_port, p)
            res = {r["name"]: r for r in ti["resources"]}
            offered_ports = set()
            for r in ti["resources"]:
                if r["name"] == "ports":
                    for rg in r["ranges"]["range"]:
                        offered_ports.update(range(rg["begin"], rg["end"] + 1))
            self.assertEqual(offered_ports, set(ports))
            disc = [p["name"] for p in ti["discovery"]["ports"]["ports"]]
            if role == "agent":
                self.assertEqual(dk["image"], "example/k3s:1")
                self.assertTrue(dk["privileged"])
                self.assertEqual(res["cpus"]["scalar"]["value"], 1.5)
                self.assertEqual(res["mem"]["scalar"]["value"], 1500)
                self.assertEqual(res["disk"]["scalar"]["value"], 2000)
                self.assertEqual([m["container_port"] for m in dk["port_mappings"]],
                                 [80, 443, 9000])
                self.assertEqual(disc, ["m3s-http", "m3s-https", "m3s-tcp"])
                self.assertEqual(ti["labels"]["labels"], labels)
                self.assertEqual(env["K3S_TOKEN"], "tok-secret-1")
                self.assertEqual(env["K3S_URL"], "https://m3sserver.test:6443")
                self.assertEqual(env["K3SFRAMEWORK_TYPE"], "agent")
                self.assertNotIn("REDIS_PASSWORD", env)
                self.assertEqual(ti["command"]["uris"][0]["value"],
                                 "http://127.0.0.1:1/bootstrap.sh")
                self.assertEqual(ti["command"]["value"], "/mnt/mesos/sandbox/bootstrap")
            elif role == "server":
                self.assertEqual(dk["port_mappings"][0], {"host_port": sim.k3s_port,
                                                          "container_port": 6443,
                                                          "protocol": "tcp"})
                self.assertEqual(disc, ["kubernetes", "http"])
                self.assertEqual(env["K3SFRAMEWORK_TYPE"], "server")
                self.assertIn("dbpw", env["K3S_DATASTORE_ENDPOINT"])
                self.assertEqual(c["volumes"][0]["container_path"], "/var/lib/rancher/k3s")
            else:
                self.assertEqual(dk["image"], "docker.io/mariadb:10.8.3")
                self.assertEqual(ti["health_check"]["type"], "COMMAND")
                self.assertEqual(env["MYSQL_ROOT_PASSWORD"], "dbpw")
                self.assertEqual(disc, ["datastore"])

        # The Redis records say what runs where, in the original's format.
        recs = self.records()
        ips = {st["task_id"]["value"]: st["container_status"]["network_infos"][0]
               ["ip_addresses"][0]["ip_address"] for _, st in self.updates(sim)
               if st["state"] == "TASK_RUNNING" and "container_status" in st}
        for tid, role, agent, _ in self.active(sim):
            r = recs[tid]
            self.assertEqual(r["TaskID"], tid)
            self.assertEqual(r["task_name"], "%s:%s" % (FW, role))
            self.assertEqual(r["Agent"], agent)
            self.assertEqual(r["State"], "TASK_RUNNING")
            self.assertTrue(r["port_mappings"])
            self.assertEqual([a["ip_address"] for n in r["networkinfo"]
                              for a in n["ip_addresses"]], [ips[tid]])
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual((cfg["DSMax"], cfg["K3SServerMax"], cfg["K3SAgentMax"]), (1, 1, 3))
        self.assertRegex(cfg["K3SServerHostname"], r"^127\.0\.\d+\.1$")
        self.assertNotIn("tok-secret-1", self.redis().command("GET", "%s:framework_config" % FW)
                         .decode())
        # Nothing pending: offers suppressed.
        fw = self.connected_framework(sim)
        self.assertEqual(fw["suppressed_roles"], ["m3s"])
        self.assert_clean(sim, d)

    def test_agents_wait_for_a_ready_server_node(self):
        """No agent while the server's K3s node is unknown or NotReady (the
        simulated K3s registers it 2 s after the server runs, NotReady, and
        only the test makes it Ready); agents follow within a heartbeat of
        it turning Ready; agents that run are left alone when it turns
        NotReady again, and no new one starts then."""
        heartbeat = 5.0
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="2",
                              HEARTBEAT_INTERVAL="%gs" % heartbeat,
                              sim_kw={"k3s_node_delay": 2.0, "k3s_ready_delay": None})
        sv = self.wait("the server healthy in Mesos (its K3s API answers)", lambda: [
            st["task_id"]["value"] for _, st in self.updates(sim)
            if st.get("healthy") is True and st["task_id"]["value"] in self.records("server")])
        sv = sv[0]
        hc = [ti for _, _, _, ti in self.launched(sim) if ti["task_id"]["value"] == sv][0]
        self.assertIn("/readyz", hc["health_check"]["command"]["value"])

        # Running, healthy in Mesos, no node yet: no agent, all along.
        def node_seen():
            self.assertEqual(self.records("agent"), {}, "an agent before the server's node")
            code, body = self.api("status/m3s")
            return code == 200 and json.loads(body)["Server"][sv].get("K3sNodeName")
        node = self.wait("the daemon to see the server's node", node_seen)
        self.assertEqual(sim.k3s_state()["clusters"][FW]["nodes"][node]["ready"], False)
        # What the agents wait for: on /health, on the status page, in the log.
        why = "the K3s server node %s is NotReady" % node
        self.wait("/health to say why", lambda: self.health()["k3s"] == why)
        code, body = self.api("status")
        self.assertIn("the agents wait for a healthy K3s server: " + why,
                      json.loads(body)["problems"])
        self.assertEqual(json.loads(body)["kubernetes"]["nodes"][node]["ready"], False)
        self.assertTrue(json.loads(body)["kubernetes"]["simulated"])
        self.wait("the log to say why",
                  lambda: "no Ready K3s server node, so no agent is started: " + why in d.text())
        self.assertIn("no Ready K3s server node, so no agent is started: no kubeconfig yet",
                      d.text())
        time.sleep(2 * heartbeat)
        self.assertEqual([x for x in self.launched(sim) if x[3]["name"].endswith(":agent")], [],
                         "an agent was launched while the server's node was NotReady")
        self.assertEqual(self.records("agent"), {})

        t_ready = time.time()
        sim.set_k3s_node_ready(node=node, ready=True)
        self.wait("two agents launched", lambda: len(
            [x for x in self.launched(sim) if x[3]["name"].endswith(":agent")]) == 2)
        first = min(x[1] for x in self.launched(sim) if x[3]["name"].endswith(":agent"))
        self.assertGreater(first, t_ready)
        self.assertLess(first - t_ready, heartbeat, "agents took longer than a heartbeat")
        self.assertEqual(self.health()["k3s"], "ready")
        code, body = self.api("status")
        self.assertFalse([p for p in json.loads(body)["problems"] if "agents wait" in p])
        self.wait_converged(sim, 1, 1, 2)

        # NotReady again: the running agents stay, a scale-up waits.
        sim.set_k3s_node_ready(node=node, ready=False)
        self.wait("the server role unhealthy", lambda: "server role is not healthy" in d.text())
        self.scale("agent", 3)
        time.sleep(2 * heartbeat)
        self.assertEqual(len([x for x in self.launched(sim) if x[3]["name"].endswith(":agent")]),
                         2)
        self.assertEqual(len(self.active(sim, "agent", "TASK_RUNNING")), 2)
        sim.set_k3s_node_ready(node=node, ready=True)
        self.wait_converged(sim, 1, 1, 3)
        self.assert_clean(sim, d)

    # -- the node clock (K3S_NODE_TIMEOUT, CLEANUP_WAIT; m3s/role.h) --------

    def status(self):
        code, body = self.api("status")
        self.assertEqual(code, 200, body)
        return json.loads(body)

    def node_of(self, task_id, ready=None):
        """The name of the task's node as the daemon sees it (and with that
        readiness, when `ready` is given), else None."""
        for name, n in (self.status().get("kubernetes") or {}).get("nodes", {}).items():
            if n["task_id"] == task_id and (ready is None or n["ready"] == ready):
                return name
        return None

    def unready_since(self, role, task_id):
        t = self.status()["roles"][role]["tasks"].get(task_id)
        return t and t.get("node_unready_since")

    def node_down(self, sim, role, task_id):
        """Turns the task's node NotReady and waits for its role to count
        it so; returns the node's name and when it was turned."""
        node = self.node_of(task_id)
        t0 = time.monotonic()
        sim.set_k3s_node_ready(node=node, ready=False)
        self.wait("the %s role to count %s NotReady" % (role, node),
                  lambda: self.unready_since(role, task_id))
        return node, t0

    def node_cluster(self, timeout, **env):
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="2", K3S_NODE_TIMEOUT="%gs" % timeout,
                              CLEANUP_WAIT="1s", **env)
        self.wait_converged(sim, 1, 1, 2)
        for t in self.active(sim, "agent") + self.active(sim, "server"):
            self.wait("the node of %s Ready" % t[0], lambda: self.node_of(t[0], ready=True))
        return sim, d

    def test_node_not_ready_agent_is_replaced(self):
        """An agent whose node stays NotReady for K3S_NODE_TIMEOUT is killed
        (not before) and replaced by a task with a new id whose node turns
        Ready; the other agent is left alone."""
        timeout = 3.0
        sim, d = self.node_cluster(timeout)
        agents = [t[0] for t in self.active(sim, "agent")]
        victim, other = agents
        node, t0 = self.node_down(sim, "agent", victim)
        self.wait("the victim killed",
                  lambda: victim not in {t[0] for t in self.active(sim)}, LONG)
        self.assertGreaterEqual(time.monotonic() - t0, timeout, "killed before K3S_NODE_TIMEOUT")
        self.wait("a replacement agent", lambda: self.converged(sim, 1, 1, 2, gone=[victim]))
        new = [t[0] for t in self.active(sim, "agent") if t[0] != other]
        self.assertEqual(len(new), 1)
        self.assertNotIn(new[0], agents)
        self.wait("the replacement's node Ready", lambda: self.node_of(new[0], ready=True))
        self.assertIn(other, [t[0] for t in self.active(sim, "agent")])
        self.assertRegex(d.text(), r"agent task %s: its Kubernetes node %s has been NotReady since "
                         r"\S+ \(\d+ s; K3S_NODE_TIMEOUT 3 s\): killing it" % (victim, node))
        self.assertEqual(self.metric(
            'm3s_tasks_replaced_total{role="agent",reason="node_not_ready"}'), 1)
        self.assertEqual(self.metric(
            'm3s_tasks_replaced_total{role="server",reason="node_not_ready"}'), 0)
        self.assert_clean(sim, d)

    def test_node_not_ready_briefly_kills_nothing(self):
        """NotReady for less than K3S_NODE_TIMEOUT, then Ready: the clock
        resets and nothing is killed, however long one waits after."""
        timeout = 8.0 * (3 if SLOW else 1)
        sim, d = self.node_cluster(timeout)
        before = {t[0] for t in self.active(sim)}
        n_launched = len(self.launched(sim))
        victim = self.active(sim, "agent")[0][0]
        node, t0 = self.node_down(sim, "agent", victim)
        self.assertLess(time.monotonic() - t0, timeout - 1,
                        "the machine is too slow for this test's NotReady to be brief")
        sim.set_k3s_node_ready(node=node, ready=True)
        self.wait("the role to see the node Ready again",
                  lambda: self.node_of(victim, ready=True) and
                  not self.unready_since("agent", victim))
        time.sleep(timeout + 2)
        self.assertEqual({t[0] for t in self.active(sim)}, before)
        self.assertEqual(len(self.launched(sim)), n_launched)
        self.assertNotIn("killing it, a new task replaces it", d.text())
        self.assert_clean(sim, d)

    def test_node_clock_stands_still_while_the_k3s_api_is_away(self):
        """An agent node seen NotReady, then the K3s API unreachable for
        longer than K3S_NODE_TIMEOUT: nothing is killed (no evidence); the
        API back with the node Ready: still nothing."""
        timeout = 6.0 * (3 if SLOW else 1)
        sim, d = self.node_cluster(timeout)
        before = {t[0] for t in self.active(sim)}
        victim = self.active(sim, "agent")[0][0]
        node, t0 = self.node_down(sim, "agent", victim)
        self.assertTrue(sim.set_k3s_api_up(False))
        self.wait("the daemon to lose the K3s API",
                  lambda: not self.status()["kubernetes"]["connected"])
        self.assertLess(time.monotonic() - t0, timeout - 1,
                        "the machine is too slow: the API went away after the node timeout")
        self.wait("the agent role to stop the clocks",
                  lambda: "agent role: the K3s API view is not live" in d.text())
        self.wait("the status to show no clock for it",
                  lambda: self.unready_since("agent", victim) is None)
        time.sleep(timeout + 3)
        self.assertEqual({t[0] for t in self.active(sim)}, before)
        sim.set_k3s_node_ready(node=node, ready=True)
        self.assertTrue(sim.set_k3s_api_up(True))
        self.wait("the daemon back on the K3s API with the node Ready",
                  lambda: self.status()["kubernetes"]["connected"] and
                  self.node_of(victim, ready=True) and
                  not self.unready_since("agent", victim), LONG)
        self.assertEqual({t[0] for t in self.active(sim)}, before)
        self.assertNotIn("killing it, a new task replaces it", d.text())
        self.assert_clean(sim, d)

    def test_node_not_ready_server_is_replaced(self):
        """The server's node NotReady past K3S_NODE_TIMEOUT: the server task
        is replaced; the agents keep running through it."""
        sim, d = self.node_cluster(3.0)
        agents = {t[0] for t in self.active(sim, "agent")}
        server = self.active(sim, "server")[0][0]
        self.node_down(sim, "server", server)
        self.wait("the server killed",
                  lambda: server not in {t[0] for t in self.active(sim)}, LONG)
        self.wait("a new server", lambda: self.converged(sim, 1, 1, 2, gone=[server]))
        new = self.active(sim, "server")[0][0]
        self.wait("the new server's node Ready", lambda: self.node_of(new, ready=True), LONG)
        self.assertEqual({t[0] for t in self.active(sim, "agent")}, agents)
        self.assertEqual(len([x for x in self.launched(sim) if x[3]["name"].endswith(":agent")]),
                         2, "an agent was replaced")
        self.assertEqual(self.metric(
            'm3s_tasks_replaced_total{role="server",reason="node_not_ready"}'), 1)
        self.assert_clean(sim, d)

    def test_failures_are_replaced_with_new_ids(self):
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="2")
        self.wait_converged(sim, 1, 1, 2)
        # A container exits with an error.
        victim = self.active(sim, "agent")[0][0]
        sim.fail_task(victim)
        self.wait("a replacement agent", lambda: victim not in self.records()
                  and len(self.active(sim, "agent", "TASK_RUNNING")) == 2)
        self.wait_converged(sim, 1, 1, 2)
        # The master loses track of a task (PARTITION_AWARE: unreachable).
        victim2 = self.active(sim, "agent")[0][0]
        sim.lose_task(victim2)
        self.wait("a replacement after TASK_UNREACHABLE",
                  lambda: victim2 not in self.records() and
                  len(self.active(sim, "agent", "TASK_RUNNING")) == 2)
        # A whole Mesos agent goes away with the server on it.
        server_agent = self.active(sim, "server")[0][2]
        old = {t[0] for t in self.active(sim) if t[2] == server_agent}
        sim.lose_agent(server_agent)
        self.wait("replacements for the lost agent's tasks",
                  lambda: not (old & set(self.records())) and
                  self.converged(sim, 1, 1, 2), LONG)
        for t in self.active(sim):
            self.assertNotEqual(t[2], server_agent)
        ids = [ti["task_id"]["value"] for _, _, _, ti in self.launched(sim)]
        self.assertEqual(len(ids), len(set(ids)))
        self.assert_clean(sim, d)

    def test_crash_loop_backs_off(self):
        sim, d = self.cluster(agents=3, K3S_AGENT_COUNT="1", RESTART_BACKOFF_MIN="300ms",
                              RESTART_BACKOFF_MAX="5s")
        self.wait_converged(sim, 1, 1, 1)
        sim.add_task_behavior(r":agent$", state="TASK_FAILED", after=0.05)
        sim.fail_task(self.active(sim, "agent")[0][0])
        self.wait("five crashed agents", lambda: len(
            [x for x in self.launched(sim) if x[3]["name"].endswith(":agent")]) >= 6, LONG * 2)
        times = [x[1] for x in self.launched(sim) if x[3]["name"].endswith(":agent")][1:]
        gaps = [b - a for a, b in zip(times, times[1:])]
        # 0.3, 0.6, 1.2, 2.4 s plus offer and task timing: each gap well
        # above the previous one, the last one at least 2 s.
        self.assertGreater(gaps[-1], 2.0, gaps)
        for a, b in zip(gaps, gaps[1:]):
            self.assertGreater(b, a * 1.4, gaps)
        self.assertIn("failure 4 in a row", d.text())
        sim.clear_task_behaviors()
        self.wait_converged(sim, 1, 1, 1, LONG * 2)
        self.assert_clean(sim, d)

    def test_not_enough_resources_waits(self):
        # Two Mesos agents with 1.5 cpus each: the datastore (1 cpu) and the
        # server (1 cpu) fit, one on each; K3s agents of 2 cpus never do.
        sim, d = self.cluster(agents=2, sim_kw={"cpus": 1.5, "mem": 8192},
                              K3S_AGENT_COUNT="4", K3S_MAX_PER_AGENT="0")
        self.wait("datastore and server running", lambda: len(
            self.active(sim, state="TASK_RUNNING")) >= 2)
        # The agents wait for the server's node to be Ready, then for offers.
        self.wait("four agent records", lambda: len(self.records("agent")) == 4)
        time.sleep(2.0)
        launches = self.launched(sim)
        agents = [x for x in launches if x[3]["name"].endswith(":agent")]
        # Nothing beyond the offers.
        self.assertEqual(agents, [])
        self.assertEqual(sim.violations(kind="resources_exceed_offer"), [])
        recs = self.records("agent")
        self.assertEqual(len(recs), 4)
        self.assertTrue(all(r["State"] == "__NEW" for r in recs.values()))
        self.assertIn("still waiting for resources", d.text())
        # Offers keep being declined, never hoarded.
        self.assertTrue(sim.calls(type="DECLINE"))
        self.assert_clean(sim, d)

    def test_unknown_task_is_killed(self):
        sim, d = self.cluster(agents=3, K3S_AGENT_COUNT="1")
        self.wait_converged(sim, 1, 1, 1)
        fid = self.connected_framework(sim)["id"]
        stray = sim.launch_task(framework_id=fid, name="stray", cpus=0.1, mem=32)
        self.wait("the stray task killed", lambda: stray not in
                  [t[0] for t in self.active(sim)], LONG)
        self.wait_converged(sim, 1, 1, 1)
        self.assert_clean(sim, d)

    def test_restart_adopts_tasks(self):
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="2")
        self.wait_converged(sim, 1, 1, 2)
        before = {t[0] for t in self.active(sim)}
        n = len(self.launched(sim))
        self.assertEqual(d.stop(), 0)
        d2 = self.daemon(sim, RECONCILE_WAIT="3s", REFUSE_OFFERS="1")
        self.daemon_subscribed(sim, d2)
        time.sleep(2.0)
        self.wait_converged(sim, 1, 1, 2)
        self.assertEqual({t[0] for t in self.active(sim)}, before)
        self.assertEqual(len(self.launched(sim)), n, "a restarted daemon launched tasks again")
        self.assert_clean(sim, d2)

    def test_kill9_during_scale_up(self):
        """SIGKILL at random moments while the cluster comes up and is scaled
        through the API; each new daemon continues from Redis. Afterwards:
        exactly the last count the API confirmed, no id launched twice,
        every update acknowledged exactly once."""
        rng = random.Random(int(os.environ.get("M3S_TEST_SEED", "7")))
        sim = self.sim(agents=10, task_start_delay=0.05, health_delay=0.1, k3s=True)
        self.api_port = test_mesos.free_port()
        env = {"K3S_AGENT_COUNT": "4", "RECONCILE_WAIT": "3s", "REFUSE_OFFERS": "1",
               "RESTART_BACKOFF_MIN": "200ms", "MESOS_FAILOVER_TIMEOUT": "1h",
               "FRAMEWORK_PORT": str(self.api_port), "AUTH_USERNAME": "ops",
               "AUTH_PASSWORD": "orchestra-secret"}
        rounds = int(os.environ.get("M3S_KILL9_ROUNDS", "8"))
        want = 4
        print("kill -9 seed %s" % os.environ.get("M3S_TEST_SEED", "7"), file=sys.stderr)
        for i in range(rounds):
            d = self.daemon(sim, **env)
            if i % 2:
                # A scale the API confirmed is in Redis: it must hold.
                want = rng.randint(2, 9)
                self.scale("agent", want)
            time.sleep(rng.uniform(0.05, 1.2 if not SLOW else 3.0))
            d.kill9()
            # A kill ends the subscription and can catch one call on the
            # wire, as any fault that ends a subscription (assert_clean).
            self.faults = getattr(self, "faults", 0) + 1
        d = self.daemon(sim, **env)
        self.wait_converged(sim, 1, 1, want, LONG * 2)
        # Stable: nothing more launched, nothing pending in Mesos.
        n = len(self.launched(sim))
        time.sleep(2.0)
        self.assertEqual(len(self.launched(sim)), n)
        self.assertTrue(self.converged(sim, 1, 1, want))
        self.assertEqual(len([fw for fw in sim.state(include_agents=False)["frameworks"]
                              if fw["active"]]), 1)
        self.assert_clean(sim, d)

    def test_redis_outage_during_activity(self):
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="3")
        self.wait_converged(sim, 1, 1, 3)
        self.redis().kill()
        # Work while Redis is away: a task fails and is replaced.
        victim = self.active(sim, "agent")[0][0]
        sim.fail_task(victim)
        time.sleep(1.5)
        self.assertIsNone(d.proc.poll(), "the daemon died during the Redis outage")
        # The replacement is not launched before its record is in Redis.
        self.assertEqual(len(self.active(sim, "agent", "TASK_RUNNING")), 2)
        failed = {st["uuid"] for _, st in self.updates(sim)
                  if st["task_id"]["value"] == victim and st["state"] == "TASK_FAILED"}
        self.assertTrue(failed)
        acked = [c for c in sim.calls(type="ACKNOWLEDGE")
                 if isinstance(c["body"], dict) and c["body"]["acknowledge"]["uuid"] in failed]
        self.assertEqual(acked, [], "the failure was acknowledged before it was persisted")
        self.redis().start()
        self.wait_converged(sim, 1, 1, 3)
        self.assertNotIn(victim, self.records())
        self.assert_clean(sim, d)

    def test_redis_outage_a_given_up_task_running_again_is_killed(self):
        """A task the role has given up (here TASK_UNREACHABLE) that is
        reported running again while its end is not yet in Redis is killed
        at once. After a master failover this is a KILL answered
        TASK_UNKNOWN, then TASK_RUNNING when its agent re-registers; with
        no periodic reconciliation (10 min) nothing else would kill it."""
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="2", RECONCILE_WAIT="10m",
                              DS_MEM="9000", K3S_SERVER_MEM="9000", K3S_AGENT_MEM="9000")
        self.wait_converged(sim, 1, 1, 2)
        victim, _, host, _ = self.active(sim, "agent")[0]
        self.assertEqual([t[0] for t in self.active(sim) if t[2] == host], [victim])

        def kept():
            code, body = self.api("status/m3s")
            self.assertEqual(code, 200, body)
            return victim in json.loads(body)["Agent"]

        def killed():
            return [c for c in sim.calls(type="KILL") if isinstance(c["body"], dict) and
                    c["body"]["kill"]["task_id"]["value"] == victim]

        self.redis().kill()
        sim.lose_agent(host, delay=0)
        self.wait("the role to give the unreachable task up", lambda: not kept())
        self.assertEqual(killed(), [])
        sim.restore_agent(host)
        sim.set_task_health(victim, True)
        self.wait("the task running again killed while Redis is away", killed)
        self.redis().start()
        self.wait("the cluster at 1/1/2 without it",
                  lambda: self.converged(sim, 1, 1, 2, gone=(victim,)), LONG)
        self.assertEqual(len(killed()), 1)
        self.assertNotIn(victim, self.records())
        self.assert_clean(sim, d)

    # -- Redis refusing writes (issue 13) ------------------------------------

    def refuse_writes(self, kind):
        """Makes Redis refuse every write the way `kind` does."""
        r = self.redis()
        if kind == "OOM":
            r.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
            r.command("CONFIG", "SET", "maxmemory", "1")
        elif kind == "READONLY":
            # A replica of a master that is not there keeps its data and
            # refuses writes.
            nobody = test_mesos.free_port()
            r.command("REPLICAOF", "127.0.0.1", str(nobody))
        elif kind == "MISCONF":
            gone = os.path.join(r.dir, "gone")
            os.mkdir(gone)
            r.command("CONFIG", "SET", "dir", gone)
            os.rmdir(gone)
            r.command("CONFIG", "SET", "save", "3600 1")
            r.command("CONFIG", "SET", "stop-writes-on-bgsave-error", "yes")
            r.command("BGSAVE")
            self.wait("the background save to fail", lambda: b"rdb_last_bgsave_status:err"
                      in r.command("INFO", "persistence"))
        probe = r.command("SET", "m3s-test:probe", "x").decode()
        self.assertTrue(probe.startswith(kind), probe)

    def accept_writes(self, kind):
        r = self.redis()
        if kind == "OOM":
            r.command("CONFIG", "SET", "maxmemory", "0")
        elif kind == "READONLY":
            r.command("REPLICAOF", "NO", "ONE")
        elif kind == "MISCONF":
            r.command("CONFIG", "SET", "dir", r.dir)
            r.command("CONFIG", "SET", "save", "")
            r.command("SAVE")
        self.assertEqual(r.command("SET", "m3s-test:probe", "x").strip(), b"OK")
        r.command("DEL", "m3s-test:probe")

    def request(self, path, method="GET", body=None):
        """(status, body) of a call to the daemon's HTTP port with the
        test's credentials (path outside the API's prefix); body: bytes as
        they are, anything else as JSON."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.api_port, path),
                                     method=method, data=data)
        req.add_header("Authorization",
                       "Basic " + base64.b64encode(b"ops:orchestra-secret").decode())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def check_refusal_shown(self, kind):
        """The refusal is visible while it lasts: /health, the status
        answer behind the page, /metrics."""
        self.wait("/health to give the refusal", lambda: json.loads(self.request("/health")[1]).get(
            "reason", "").startswith("Redis refuses writes: "))
        health = json.loads(self.request("/health")[1])
        self.assertEqual(health["status"], "degraded")
        self.assertIn(kind, health["reason"])
        code, body = self.request("/api/m3s/v0/status")
        self.assertEqual(code, 200, body)
        self.assertTrue(any("Redis refuses writes" in p for p in json.loads(body)["problems"]),
                        body)
        code, body = self.request("/metrics")
        self.assertEqual(code, 200)
        m = re.search(r'^m3s_redis_refused_writes_total\{error="%s"\} (\d+)' % kind, body, re.M)
        self.assertTrue(m and int(m.group(1)) > 0, body)

    def check_refusal_holds(self, kind):
        """While Redis refuses writes (`kind`), a scale-up and a burst of
        task failures: no task is launched without its record, no update
        is acknowledged before its state is stored, the API does not say
        done; once Redis accepts writes again the cluster converges."""
        sim, d = self.cluster(agents=8, K3S_AGENT_COUNT="3")
        self.wait_converged(sim, 1, 1, 3)
        launched = len(self.launched(sim))
        nupdates = len(self.updates(sim))
        self.refuse_writes(kind)
        code, body = self.api("agent/scale/5")
        self.assertNotEqual(code, 200, "a scale was confirmed while Redis refused it: " + body)
        self.check_refusal_shown(kind)
        victims = [t[0] for t in self.active(sim, "agent")][:2]
        for v in victims:
            sim.fail_task(v)
        self.wait("the failures to be sent", lambda: all(
            any(st["task_id"]["value"] == v and st["state"] == "TASK_FAILED"
                for _, st in self.updates(sim)) for v in victims))
        code, body = self.api("agent/scale/4")
        self.assertNotEqual(code, 200, body)
        time.sleep(2.0)  # time for a wrong launch or acknowledgement to show
        self.assertIsNone(d.proc.poll(), "the daemon died while Redis refused writes")
        self.assertEqual(len(self.launched(sim)), launched,
                         "a task was launched while Redis refused its record")
        sent = {st.get("uuid") for _, st in self.updates(sim)[nupdates:]} - {None}
        self.assertTrue(sent)
        acked = [c for c in sim.calls(type="ACKNOWLEDGE") if isinstance(c["body"], dict)
                 and c["body"]["acknowledge"]["uuid"] in sent]
        self.assertEqual(acked, [], "an update was acknowledged while Redis refused its state")
        self.accept_writes(kind)
        self.wait_converged(sim, 1, 1, 4)
        self.wait("/health ok again", lambda: json.loads(self.request("/health")[1])["status"] == "ok")
        recs = self.records("agent")
        for v in victims:
            self.assertNotIn(v, recs)
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual(cfg["K3SAgentMax"], 4)
        self.assert_clean(sim, d)

    def test_redis_oom_holds_launches_and_acks(self):
        self.check_refusal_holds("OOM")

    def test_redis_readonly_holds_launches_and_acks(self):
        self.check_refusal_holds("READONLY")

    def test_redis_misconf_holds_launches_and_acks(self):
        self.check_refusal_holds("MISCONF")

    # -- pushback (issue 13) -----------------------------------------------------

    def metric(self, name):
        m = re.search(r"(?m)^%s (\S+)$" % re.escape(name), self.request("/metrics")[1])
        return float(m.group(1)) if m else None

    def test_redis_backlog_pushes_back(self):
        """More writes wait for Redis than the store's high mark (10000):
        the writers are told, no task is created or launched, every change
        through the API is refused at once with a 503 naming the backlog,
        the queue stops growing, /health and /metrics show it. Once Redis
        takes writes again the queue drains, the work asked before the
        backlog goes on, and changes are taken again."""
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="1")
        self.wait_converged(sim, 1, 1, 1)
        launched = len(self.launched(sim))
        self.refuse_writes("OOM")
        # 9999 new agent records and the framework_config write reach the
        # mark; the answer waits for the count to be stored: not in time.
        code, body = self.api("agent/scale/10000")
        self.assertEqual(code, 503, body)
        self.wait("/health to say Redis is backlogged", lambda: "Redis is backlogged" in
                  json.loads(self.request("/health")[1]).get("reason", ""))
        self.assertEqual(self.metric("m3s_redis_backlogged"), 1)
        self.assertIn("backlogged, writers hold back new work", d.text())
        queued = self.metric("m3s_redis_queued")
        self.assertGreaterEqual(queued, 10000)
        for path, method in (("server/scale/2", "GET"), ("agent/scale/3", "GET"),
                             ("agent/cpus/0.5", "PUT"), ("agent/cordon", "PUT"),
                             ("cluster/shutdown", "PUT")):
            t = time.monotonic()
            code, body = self.api(path, method)
            took = time.monotonic() - t
            self.assertEqual(code, 503, path + ": " + body)
            self.assertIn("Redis is backlogged", json.loads(body)["error"], path)
            self.assertLess(took, 3.0, path + ": refused only after the timeout")
        code, body = self.request("/api/m3s/v0/cluster/update", "PUT", {"IMAGE_K3S": "example/k3s:x"})
        self.assertEqual(code, 503, body)
        self.assertIn("Redis is backlogged", json.loads(body)["error"])
        self.assertEqual(json.loads(self.api("server/scale")[1])["Scale"], 1)
        time.sleep(1.5)  # time for a wrong launch or a new write to show
        self.assertEqual(len(self.launched(sim)), launched)
        self.assertEqual(self.metric("m3s_redis_queued"), queued, "the queue kept growing")
        code, body = self.request("/api/m3s/v0/status")
        self.assertTrue(any("Redis is backlogged" in p for p in json.loads(body)["problems"]),
                        body)

        self.accept_writes("OOM")
        self.wait("the backlog to drain", lambda: self.metric("m3s_redis_backlogged") == 0)
        self.wait("/health ok again", lambda: json.loads(self.request("/health")[1])["status"] == "ok")
        self.assertIn("no longer backlogged", d.text())
        # Nothing asked before the backlog was lost: the 9999 records are
        # stored and new agents launch.
        keys = self.redis().command("--scan", "--pattern", "%s:agent:*" % FW).decode().split()
        self.assertEqual(len(keys), 10000)
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual(cfg["K3SAgentMax"], 10000)
        self.assertNotEqual(cfg.get("ImageK3S"), "example/k3s:x")  # refused: not made
        self.assertEqual(cfg["K3SServerMax"], 1)
        self.wait("new agents to launch", lambda: len(self.launched(sim)) > launched)
        self.scale("agent", 1, expect_diff=-9999)
        self.wait_converged(sim, 1, 1, 1, timeout=LONG * 2)
        self.assert_clean(sim, d)

    # -- Redis Sentinel ---------------------------------------------------------

    def sentinel_set(self, replicas):
        """The test's Redis as master, `replicas` replicas and one sentinel
        (quorum 1) watching them as "m3s"; returns {port: Redis}, the
        sentinel's port."""
        master = self.redis()
        servers = {master.port: master}
        for _ in range(replicas):
            rep = test_mesos.Redis(extra=["--replicaof", "127.0.0.1", str(master.port)])
            self.addCleanup(rep.stop)
            servers[rep.port] = rep
        for rep in servers.values():
            if rep is not master:
                self.wait("a replica in sync", lambda rep=rep: b"master_link_status:up"
                          in rep.command("INFO", "replication"))
        sentinel = redis_sentinel.Sentinel(master.port)
        self.addCleanup(sentinel.stop)
        self.sentinel = sentinel
        sentinel.wait_replicas(replicas, BOUND)
        return servers, sentinel.port

    def follow_sentinel(self, daemon, servers):
        """Waits for the daemon's latest Redis connection to be to the
        master the sentinel names now, and makes that the test's Redis. The
        sentinel may fail over more than once: on a busy machine a new
        master whose fsync stalls past down-after-milliseconds is taken
        for down in turn, and the daemon must follow each time."""
        named = [None]

        def on_it():
            port = named[0] = self.sentinel.master_port()
            conns = re.findall(r"\] connected to Redis at (\S+) \(master named by the sentinels\)",
                               daemon.text())
            self.why = "the sentinel names %s (switches: %s); the daemon's connections: %s" % (
                port, self.sentinel.switches(), conns)
            return port in servers and conns[-1:] == ["127.0.0.1:%d" % port]
        self.wait("the daemon on the master the sentinel names", on_it, LONG * 2)
        # The port seen when the wait ended: asking again could catch the
        # sentinel between masters.
        self._redis = servers[named[0]]

    def check_failover(self, how):
        """A Sentinel failover (`how`: "failover" by SENTINEL FAILOVER,
        "kill" by kill -9 of the master) while the daemon scales up and
        tasks fail, with REDIS_WAIT_REPLICAS=1: afterwards the new master
        holds every record, and a new daemon started on it adopts the
        cluster as it is: no task duplicated, none lost or killed.

        WAIT 1 keeps a confirmed write only where the promoted replica has
        it: with one replica, the one promoted; after kill -9 with two, the
        sentinel promotes the one with the most data, and the other lets
        writes be confirmed again. (SENTINEL FAILOVER with two replicas
        would not do: until the sentinel moves the second one over, it
        still copies the old master, so WAIT 1 passes for writes the new
        master never gets.)"""
        servers, sport = self.sentinel_set(1 if how == "failover" else 2)
        old = self.redis()
        sim, d = self.cluster(agents=10, K3S_AGENT_COUNT="2",
                              REDIS_SENTINELS="127.0.0.1:%d" % sport,
                              REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT="500ms")
        self.wait_converged(sim, 1, 1, 2)
        self.scale("agent", 6, 4)
        victim = self.active(sim, "agent")[0][0]
        sim.fail_task(victim)
        if how == "failover":
            self.assertIn(b"OK", self.sentinel.command("SENTINEL", "FAILOVER", "m3s"))
        else:
            old.proc.kill()
            old.proc.wait()
        self.wait("the sentinel to name a new master",
                  lambda: self.sentinel.master_port() not in (None, old.port), LONG * 2)
        self.follow_sentinel(d, servers)
        # Until a replica of the new master has its writes, nothing is
        # confirmed: the API may say so (503) while the count is taken.
        code, body = self.api("agent/scale/5")
        self.assertTrue(code == 200 or (code == 503 and ("did not confirm" in body
                                                         or "not saved yet" in body)), body)
        self.wait_converged(sim, 1, 1, 5, LONG * 2)
        self.assertNotIn(victim, self.records())
        self.follow_sentinel(d, servers)
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual(cfg["K3SAgentMax"], 5)
        # The records are in the new master, but an acknowledgement waits
        # until WAIT 1 says a replica has its state too: the demoted master
        # first has to be turned into the new one's replica and sync, which
        # takes seconds on a busy machine.
        self.wait("every update acknowledged once a replica has its state",
                  lambda: not sim.unacked_updates(), LONG * 2)
        self.assert_clean(sim, d)
        # What the new master holds is the whole cluster: a new daemon
        # launches nothing and kills nothing.
        n, kills = len(self.launched(sim)), len(sim.calls(type="KILL"))
        self.assertEqual(d.stop(), 0)
        d2 = self.daemon(sim, FRAMEWORK_PORT=str(self.api_port), AUTH_USERNAME="ops",
                         AUTH_PASSWORD="orchestra-secret", RECONCILE_WAIT="3s",
                         REFUSE_OFFERS="1", REDIS_SENTINELS="127.0.0.1:%d" % sport,
                         REDIS_WAIT_REPLICAS="1", REDIS_WAIT_TIMEOUT="500ms")
        self.daemon_subscribed(sim, d2)
        self.assertEqual(self.api("agent/scale"), (200, '{"Scale":5,"Running":5}'))
        time.sleep(1.0)
        self.wait_converged(sim, 1, 1, 5)
        self.assertEqual(len(self.launched(sim)), n)
        self.assertEqual(len(sim.calls(type="KILL")), kills)
        self.wait("every update acknowledged", lambda: not sim.unacked_updates(), LONG)
        self.assert_clean(sim, d2)

    def test_sentinel_failover_command(self):
        self.check_failover("failover")

    def test_sentinel_failover_kill9(self):
        self.check_failover("kill")

    def test_scale_agents(self):
        sim, d = self.cluster(agents=6, K3S_AGENT_COUNT="1")
        self.wait_converged(sim, 1, 1, 1)
        self.scale("agent", 5, 4)
        self.wait_converged(sim, 1, 1, 5)
        self.assertEqual(self.api("agent/scale"), (200, '{"Scale":5,"Running":5}'))
        order = [ti["task_id"]["value"] for _, _, _, ti in self.launched(sim)
                 if ti["name"].endswith(":agent")]
        self.scale("agent", 2, -3)
        self.wait_converged(sim, 1, 1, 2)
        # Scale-down kills the newest agents first.
        self.assertEqual({t[0] for t in self.active(sim, "agent")}, set(order[:2]))
        self.scale("agent", 0, -2)
        self.wait_converged(sim, 1, 1, 0)
        self.scale("agent", 3, 3)
        self.wait_converged(sim, 1, 1, 3)
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual(cfg["K3SAgentMax"], 3)
        # The count survives a restart of the daemon (Redis wins over the
        # environment's K3S_AGENT_COUNT=1).
        self.assertEqual(d.stop(), 0)
        d2 = self.daemon(sim, FRAMEWORK_PORT=str(self.api_port), AUTH_USERNAME="ops",
                         AUTH_PASSWORD="orchestra-secret", K3S_AGENT_COUNT="1",
                         RECONCILE_WAIT="3s", REFUSE_OFFERS="1")
        self.daemon_subscribed(sim, d2)
        self.assertEqual(self.api("agent/scale"), (200, '{"Scale":3,"Running":3}'))
        time.sleep(1.0)
        self.wait_converged(sim, 1, 1, 3)
        self.assert_clean(sim, d2)

    def test_scale_servers_and_datastore(self):
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="1")
        self.wait_converged(sim, 1, 1, 1)
        self.scale("server", 3, 2)
        self.wait_converged(sim, 1, 3, 1)
        servers = self.active(sim, "server")
        self.assertEqual(len({t[2] for t in servers}), 3, "servers spread over agents")
        self.scale("server", 1, -2)
        self.wait_converged(sim, 1, 1, 1)
        code, body = self.api("datastore/scale/2")
        self.assertEqual((code, body), (200, "1"))
        self.wait_converged(sim, 2, 1, 1)
        # The plugin's alias.
        self.assertEqual(self.api("etcd/scale/1"), (200, "-1"))
        self.wait_converged(sim, 1, 1, 1)
        self.assert_clean(sim, d)

    def test_cluster_shutdown_start_restart(self):
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="2")
        self.wait_converged(sim, 1, 1, 2)
        ds_id = self.active(sim, "datastore")[0][0]
        self.assertEqual(self.api("cluster/shutdown", "PUT")[0], 200)
        self.wait_converged(sim, 0, 0, 0)
        cfg = json.loads(self.redis().command("GET", "%s:framework_config" % FW))
        self.assertEqual((cfg["DSMaxRestore"], cfg["K3SServerMaxRestore"],
                          cfg["K3SAgentMaxRestore"]), (1, 1, 2))
        self.assertEqual(self.api("cluster/start", "PUT")[0], 200)
        self.wait_converged(sim, 1, 1, 2)
        # Starting a running cluster is refused, as in the original.
        self.assertEqual(self.api("cluster/start", "PUT")[0], 406)
        ds_id = self.active(sim, "datastore")[0][0]
        before = {t[0] for t in self.active(sim) if t[1] != "datastore"}
        # The restart answers at once (the original blocks until it is
        # done): with the master holding every kill, the answer comes while
        # the old tasks all still run.
        sim.configure(kill_delay=3600.0)
        since = self.last_seq(sim)
        code, body = self.api("cluster/restart", "PUT")
        self.assertEqual((code, body), (200, "Restart Scheduled."))
        self.wait("the old tasks' kills", lambda: {
            c["body"]["kill"]["task_id"]["value"]
            for c in sim.calls(since=since, type="KILL")} >= before)
        self.assertLessEqual(before, {t[0] for t in self.active(sim)})
        sim.configure(kill_delay=0.05)
        for tid in before:
            sim.fail_task(tid, "TASK_KILLED", message="Command terminated with signal Terminated")
        self.wait("servers and agents replaced",
                  lambda: self.converged(sim, 1, 1, 2, gone=before), LONG)
        self.assertEqual(self.active(sim, "datastore")[0][0], ds_id,
                         "a cluster restart keeps the datastore")
        # Per-role restart: only the agents.
        servers = {t[0] for t in self.active(sim, "server")}
        agents = {t[0] for t in self.active(sim, "agent")}
        self.assertEqual(self.api("agent/restart", "PUT")[0], 200)
        self.wait("agents replaced", lambda: self.converged(sim, 1, 1, 2, gone=agents), LONG)
        self.assertEqual({t[0] for t in self.active(sim, "server")}, servers)
        self.assert_clean(sim, d)

    def test_adopts_records_of_the_original(self):
        """Redis as the Go M3s left it (its record formats, its counts) and
        the master still running those tasks: the daemon adopts them all,
        launches nothing, and acknowledges their pending updates."""
        data = os.path.join(HERE, "..", "data", "records")
        sim, d = self.cluster(agents=4, DS_COUNT="0", K3S_SERVER_COUNT="0",
                              K3S_AGENT_COUNT="0")
        fid = self.daemon_subscribed(sim, d)["id"]
        self.assertEqual(d.stop(), 0)
        with open(os.path.join(data, "task_agent_running.json")) as f:
            tmpl = json.load(f)
        with open(os.path.join(data, "framework_config.json")) as f:
            fwc = json.load(f)
        fwc.update(DSMax=1, K3SServerMax=1, K3SAgentMax=2)
        agents = [a["id"] for a in sim.state()["agents"]]
        ids = {}
        for i, role in enumerate(["datastore", "server", "agent", "agent"]):
            tid = "%08x-1111-4222-8333-%012x" % (i, i)
            sim.launch_task(framework_id=fid, task_id=tid, agent=agents[i], cpus=0.5, mem=64,
                            name="%s:%s" % (FW, role))
            rec = dict(tmpl, TaskID=tid, task_name="%s:%s" % (FW, role), Agent=agents[i])
            self.redis().command("SET", "%s:%s:%s" % (FW, role, tid), json.dumps(rec))
            ids[tid] = role
        self.redis().command("SET", "%s:framework_config" % FW, json.dumps(fwc))
        n = len(self.launched(sim))
        d2 = self.daemon(sim, FRAMEWORK_PORT=str(self.api_port), FRAMEWORK_BIND="127.0.0.1",
                         AUTH_USERNAME="ops", AUTH_PASSWORD="orchestra-secret",
                         DS_COUNT="0", K3S_SERVER_COUNT="0", K3S_AGENT_COUNT="0",
                         RECONCILE_WAIT="3s", REFUSE_OFFERS="1")
        self.wait("every pending update acknowledged",
                  lambda: self.converged(sim, 1, 1, 2) and not sim.unacked_updates())
        time.sleep(1.0)
        self.assertEqual(len(self.launched(sim)), n, "an adopted task was launched again")
        self.assertEqual({t[0]: t[1] for t in self.active(sim)}, ids)
        self.assertEqual(self.api("agent/scale"), (200, '{"Scale":2,"Running":2}'))
        # The records keep the original's fields that the daemon does not model.
        rec = self.records("agent")[sorted(t for t, r in ids.items() if r == "agent")[0]]
        self.assertEqual(rec["uris"], tmpl["uris"])
        self.assertEqual(rec["StateTime"], tmpl["StateTime"])
        self.assert_clean(sim, d2)

    def test_unusable_records_are_set_aside(self):
        """A record that is valid JSON but not a task record this version can
        use, and one that is not JSON at all: both moved aside with a log
        line, nothing lost, the cluster comes up."""
        self.redis().command("SET", "%s:agent:old-1" % FW, '{"TaskID": "old-1", "CPU": "two"}')
        self.redis().command("SET", "%s:agent:old-2" % FW, '{"TaskID": ')
        # JSON but not UTF-8 (the role checks it, the store hands it over).
        bad_utf8 = b'{"TaskID":"old-4","hostname":"h\xff"}'
        with socket.create_connection(("127.0.0.1", self.redis().port)) as s:
            s.sendall(b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n"
                      b"$%d\r\n%s\r\n" % (len(FW) + 12, b"%s:agent:old-4" % FW.encode(),
                                         len(bad_utf8), bad_utf8))
            buf = b""
            while buf.count(b"\r\n") < 2:
                buf += s.recv(100)
        # A usable record but for its id, longer than the actors' buffers
        # (it would be cut, and its updates taken for a stranger's).
        with open(os.path.join(HERE, "..", "data", "records", "task_agent_running.json")) as f:
            long_id = "old-3-" + "x" * 60
            rec = dict(json.load(f), TaskID=long_id)
        self.redis().command("SET", "%s:agent:%s" % (FW, long_id), json.dumps(rec))
        sim, d = self.cluster(agents=3, K3S_AGENT_COUNT="1")
        self.wait_converged(sim, 1, 1, 1)
        keys = self.redis().command("--scan", "--pattern", "%s:corrupt:*" % FW).decode().split()
        self.assertEqual(sorted(k.split(":")[3] for k in keys),
                         ["old-1", "old-2", "old-3-" + "x" * 60, "old-4"], keys)
        moved4 = [k for k in keys if ":old-4:" in k][0]
        self.assertEqual(self.redis().command("GET", moved4).rstrip(b"\n"), bad_utf8)
        self.assertIn("its TaskID is longer than 39 characters", d.text())
        moved = [k for k in keys if ":old-1:" in k][0]
        self.assertEqual(self.redis().command("GET", moved).strip(),
                         b'{"TaskID": "old-1", "CPU": "two"}')
        self.assertIn("m3s:agent:old-1: task record: CPU is not a number", d.text())
        self.assert_clean(sim, d)

    def test_master_restart_keeps_running_tasks(self):
        """A master restarted with an in-memory registry answers the
        reconciliation with TASK_UNKNOWN for tasks whose agent has not
        re-registered yet (as the real master does, see tests/realmesos).
        They still run: none is replaced, and once the agents are back the
        same tasks run and none was launched twice."""
        # Kept until the next reconciliation, RECONCILE_WAIT later: longer
        # than the agents' absence here.
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="1", RECONCILE_WAIT="10m")
        self.wait_converged(sim, 1, 1, 1)
        before = {t[0] for t in self.active(sim)}
        n = len(self.launched(sim))
        since = self.last_seq(sim)
        self.faults = getattr(self, "faults", 0) + 1
        sim.restart(reregister_delay=3.0)
        self.wait("re-subscription", lambda: self.subscribed(sim, since))
        self.wait("TASK_UNKNOWN for the three tasks", lambda: len(
            [1 for _, st in self.updates(sim) if st["state"] == "TASK_UNKNOWN"]) >= 3)
        self.wait("the agents back with the tasks", lambda: len(
            [1 for _, st in self.updates(sim)
             if st.get("message") == "Unknown agent reregistered"]) >= 3)
        self.wait_converged(sim, 1, 1, 1)
        self.assertEqual({t[0] for t in self.active(sim)}, before)
        self.assertEqual(len(self.launched(sim)), n, "a task was replaced while its agent was away")
        self.assert_clean(sim, d)


# ctest runs these tests in three groups at once (ORCHESTRA_GROUP), as most
# of their time is waiting: one run of all would be the test command's
# longest. A test belongs to the first group whose prefix it has, else to
# "other", so a new test is never left out.
GROUPS = (("redis", ("test_redis_", "test_sentinel_")),
          ("scale", ("test_scale_", "test_cluster_", "test_adopts_", "test_unusable_",
                     "test_master_restart_")))


def test_group(name):
    for group, prefixes in GROUPS:
        if name.startswith(prefixes):
            return group
    return "other"


def load_tests(loader, tests, pattern):
    want = os.environ.get("ORCHESTRA_GROUP")
    if not want:
        return tests
    if want not in [g for g, _ in GROUPS] + ["other"]:
        raise ValueError("ORCHESTRA_GROUP=%s: no such group" % want)
    out = unittest.TestSuite()
    for name in loader.getTestCaseNames(OrchestraTest):
        if test_group(name) == want:
            out.addTest(OrchestraTest(name))
    return out


if __name__ == "__main__":
    unittest.main(verbosity=2)
