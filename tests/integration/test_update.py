#!/usr/bin/env python3
"""Run-time configuration changes end to end (PUT /api/m3s/v0/cluster/update):
the real daemon, the Mesos simulator and a real redis-server on loopback.

A change is checked like the environment at start, answered once Redis holds
it, kept across a restart of the daemon, used for every task launched after
it; tasks launched before it show as outdated in status/m3s and /metrics. A
bad body is a 400 that changes nothing.

Run: M3S_BIN=build/m3s python3 tests/integration/test_update.py -v
"""
import fnmatch
import json
import os
import re
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_orchestra  # noqa: E402  (the module: its tests must not run here)

FW = test_orchestra.FW
LONG = test_orchestra.LONG


class UpdateTest(test_orchestra.OrchestraTest):
    def update(self, body):
        return self.request("/api/m3s/v0/cluster/update", "PUT", body)

    def fw_config(self):
        return json.loads(self.redis().command("GET", "%s:framework_config" % FW))

    def outdated(self):
        code, body = self.api("status/m3s")
        self.assertEqual(code, 200, body)
        doc = json.loads(body)
        # The original's fields are all still there.
        self.assertEqual(set(doc), {"Server", "Agent", "API", "Datastore", "Outdated"})
        return {k: set(v) for k, v in doc["Outdated"].items()}

    def metric(self, name, role):
        code, text = self.request("/metrics")
        self.assertEqual(code, 200, text)
        m = re.search(r'^%s\{role="%s"\} (\S+)$' % (name, role), text, re.M)
        self.assertIsNotNone(m, "%s{role=%s} missing" % (name, role))
        return float(m.group(1))

    @staticmethod
    def env_of(ti):
        return {v["name"]: v.get("value") for v in
                ti["command"].get("environment", {}).get("variables", [])}

    @staticmethod
    def cpus_of(ti):
        return [r["scalar"]["value"] for r in ti["resources"] if r["name"] == "cpus"][0]

    def agent_launches(self, sim):
        return {ti["task_id"]["value"]: ti for _, _, _, ti in self.launched(sim)
                if ti["name"].endswith(":agent")}

    def new_agents(self, sim, before, n):
        """The n agent TaskInfos launched since `before` (a set of ids),
        once they run and are recorded."""
        def ready():
            got = {k: v for k, v in self.agent_launches(sim).items() if k not in before}
            recs = self.records("agent")
            if len(got) == n and all(recs.get(k, {}).get("State") == "TASK_RUNNING"
                                     for k in got):
                return got
            return None
        return self.wait("%d new agent(s)" % n, ready, LONG)

    # -- tests -------------------------------------------------------------

    def test_update_is_kept_used_and_marks_outdated(self):
        sim, d = self.cluster(agents=6, K3S_AGENT_COUNT="2", IMAGE_K3S="example/k3s:1",
                              KUBERNETES_VERSION="v1.31.5", K3S_AGENT_CPU="0.5")
        self.wait_converged(sim, 1, 1, 2)
        old = self.agent_launches(sim)
        server_ids = {t[0] for t in self.active(sim, "server")}
        recs = self.records()
        self.assertTrue(all(re.fullmatch(r"[0-9a-f]{32}", r.get("spec_digest", ""))
                            for r in recs.values()), recs)
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": set(), "Agent": set()})
        self.assertEqual(self.metric("m3s_tasks_outdated", "agent"), 0)

        labels = [{"key": "tier", "value": "b"}]
        code, body = self.update({"KUBERNETES_VERSION": "v1.32.0", "IMAGE_K3S": "example/k3s:2",
                                  "K3S_AGENT_CPU": 0.6, "K3S_AGENT_LABELS": json.dumps(labels)})
        self.assertEqual(code, 200, body)
        self.assertEqual(json.loads(body), {"updated": {
            "KUBERNETES_VERSION": "v1.32.0", "IMAGE_K3S": "example/k3s:2", "K3S_AGENT_CPU": 0.6,
            "K3S_AGENT_LABELS": labels}})
        # In Redis when answered, in the original's fields.
        fc = self.fw_config()
        self.assertEqual(fc["KubernetesVersion"], "v1.32.0")
        self.assertEqual(fc["ImageK3S"], "example/k3s:2")
        self.assertEqual(fc["K3SAgentCPU"], 0.6)
        self.assertEqual(fc["K3SAgentCPULimit"], 0.6, "a limit at its request follows it")
        self.assertEqual(fc["K3SAgentLabels"], labels, "kept parsed, as the original does")
        self.assertEqual(sorted(fc["M3SRuntimeVariables"]),
                         ["IMAGE_K3S", "K3S_AGENT_LABELS", "KUBERNETES_VERSION"])
        # The tasks launched before are outdated; the datastore's spec does
        # not use these settings.
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": server_ids,
                                           "Agent": set(old)})
        self.assertEqual(self.metric("m3s_tasks_outdated", "agent"), 2)
        self.assertEqual(self.metric("m3s_tasks_outdated", "server"), 1)
        self.assertEqual(self.metric("m3s_tasks_outdated", "datastore"), 0)
        self.assertEqual(self.metric("m3s_tasks_spec_unknown", "agent"), 0)

        # Tasks launched from now on carry the change.
        self.scale("agent", 3, 1)
        new = self.new_agents(sim, set(old), 1)
        for ti in new.values():
            self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:2")
            self.assertEqual(self.env_of(ti)["KUBERNETES_VERSION"], "v1.32.0")
            self.assertEqual(self.cpus_of(ti), 0.6)
            self.assertEqual(ti["labels"]["labels"], labels)
        self.assertEqual(self.outdated()["Agent"], set(old))

        # A restart keeps it, although the environment still says otherwise.
        self.assertEqual(d.stop(), 0)
        d2 = self.daemon(sim, FRAMEWORK_PORT=str(self.api_port), AUTH_USERNAME="ops",
                         AUTH_PASSWORD="orchestra-secret", K3S_AGENT_COUNT="2",
                         IMAGE_K3S="example/k3s:1", KUBERNETES_VERSION="v1.31.5",
                         K3S_AGENT_CPU="0.5", RECONCILE_WAIT="3s", REFUSE_OFFERS="1")
        self.daemon_subscribed(sim, d2)
        self.wait_converged(sim, 1, 1, 3)
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": server_ids,
                                           "Agent": set(old)})
        self.assertEqual(self.metric("m3s_tasks_outdated", "agent"), 2)
        before = set(self.agent_launches(sim))
        self.scale("agent", 4, 1)
        for ti in self.new_agents(sim, before, 1).values():
            self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:2")
            self.assertEqual(self.env_of(ti)["KUBERNETES_VERSION"], "v1.32.0")
            self.assertEqual(self.cpus_of(ti), 0.6)
            self.assertEqual(ti["labels"]["labels"], labels)

        # The original's resource endpoint feeds the same configuration: it
        # makes every agent outdated and is what the next one gets.
        code, body = self.api("agent/cpus/0.7", "PUT")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.fw_config()["K3SAgentCPU"], 0.7)
        self.assertEqual(len(self.outdated()["Agent"]), 4)
        before = set(self.agent_launches(sim))
        self.scale("agent", 5, 1)
        for ti in self.new_agents(sim, before, 1).values():
            self.assertEqual(self.cpus_of(ti), 0.7)
            self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:2")
        self.assertEqual(len(self.outdated()["Agent"]), 4)
        self.assert_clean(sim, d2)

    def test_bad_update_changes_nothing(self):
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="1", IMAGE_K3S="example/k3s:1",
                              K3S_AGENT_CPU="0.5")
        self.wait_converged(sim, 1, 1, 1)
        fc0 = self.fw_config()
        bad = [
            (b"not json", "not JSON"),
            (b'{"IMAGE_K3S": "a", "IMAGE_K3S": "b"}', "not JSON"),
            (b"[1, 2]", "expected a JSON object"),
            (b"{}", "no variables"),
            ({"K3S_AGENT_CPU": "lots"}, 'K3S_AGENT_CPU="lots": expected a number'),
            ({"K3S_AGENT_MEM": 16}, 'K3S_AGENT_MEM="16": expected a number >= 32'),
            ({"K3S_AGENT_LABELS": "{\"key\": 1}"}, "K3S_AGENT_LABELS="),
            ({"NO_SUCH_VARIABLE": "1"}, "NO_SUCH_VARIABLE: unknown variable"),
            ({"rollout": "yes", "IMAGE_K3S": "example/k3s:2"},
             '"rollout" and "force" take true or false'),
            ({"force": True, "IMAGE_K3S": "example/k3s:2"}, '"force" applies only with'),
            ({"rollout": True, "IMAGE_K3S": "example/k3s:2", "K3S_AGENT_MEM": 1},
             'K3S_AGENT_MEM="1"'),
            ({"FRAMEWORK_NAME": "x"}, "FRAMEWORK_NAME: cannot be changed at run time"),
            ({"IMAGE_K3S": ["example/k3s:2"]}, "IMAGE_K3S: expected a string, number or boolean"),
            ({"IMAGE_K3S": None}, "IMAGE_K3S: expected a string, number or boolean"),
            ({"IMAGE_K3S": "example/k3s:2", "DS_CPU": -1}, 'DS_CPU="-1"'),
            ({"K3S_AGENT_CPU_LIMIT": 0.2}, "K3S_AGENT_CPU_LIMIT=0.2 is below K3S_AGENT_CPU=0.5"),
        ]
        for body, want in bad:
            code, text = self.update(body)
            self.assertEqual(code, 400, (body, text))
            self.assertIn(want, json.loads(text)["error"], body)
        for body, want in ((b"not json", "not JSON"), ({"force": 1}, '"force": true or false'),
                           ({"forced": True}, '"force": true or false'), ([], "not a JSON object")):
            code, text = self.request("/api/m3s/v0/cluster/rollout", "PUT", body)
            self.assertEqual(code, 400, (body, text))
            self.assertIn(want, json.loads(text)["error"], body)
        # No plan was started by any of them.
        code, text = self.api("plan")
        self.assertEqual(code, 404, text)
        self.assertIn("never been a rollout plan", json.loads(text)["error"])
        self.assertEqual(self.redis().command("GET", "%s:rollout_plan" % FW).strip(), b"")
        fc = self.fw_config()
        for k in ("ImageK3S", "KubernetesVersion", "M3SRuntimeVariables"):
            self.assertEqual(fc.get(k), fc0.get(k), k)
        for k in ("K3SAgentCPU", "K3SAgentCPULimit", "K3SAgentMEM", "DSCPU"):
            self.assertEqual(fc[k], fc0[k], k)
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": set(), "Agent": set()})
        before = set(self.agent_launches(sim))
        self.scale("agent", 2, 1)
        for ti in self.new_agents(sim, before, 1).values():
            self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:1")
        self.assertIn("m3s_tasks_outdated", self.request("/metrics")[1])
        self.assert_clean(sim, d)

    def test_confirmed_only_once_redis_has_it(self):
        """With Redis down the change is not confirmed (503); once Redis is
        back it is stored, and a restarted daemon keeps it."""
        sim, d = self.cluster(agents=3, K3S_AGENT_COUNT="1", IMAGE_K3S="example/k3s:1")
        self.wait_converged(sim, 1, 1, 1)
        self.redis().kill()
        code, text = self.update({"IMAGE_K3S": "example/k3s:3"})
        self.assertEqual(code, 503, text)
        self.assertIn("not confirmed", json.loads(text)["error"])
        self.redis().start()
        self.wait("the change in Redis",
                  lambda: self.fw_config().get("ImageK3S") == "example/k3s:3", LONG)
        self.assertEqual(self.fw_config()["M3SRuntimeVariables"], ["IMAGE_K3S"])
        self.assertEqual(d.stop(), 0)
        d2 = self.daemon(sim, FRAMEWORK_PORT=str(self.api_port), AUTH_USERNAME="ops",
                         AUTH_PASSWORD="orchestra-secret", K3S_AGENT_COUNT="1",
                         IMAGE_K3S="example/k3s:1", RECONCILE_WAIT="3s", REFUSE_OFFERS="1")
        self.daemon_subscribed(sim, d2)
        self.wait_converged(sim, 1, 1, 1)
        before = set(self.agent_launches(sim))
        self.scale("agent", 2, 1)
        for ti in self.new_agents(sim, before, 1).values():
            self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:3")
        self.assert_clean(sim, d2)

    def test_records_of_the_original_are_unknown_not_outdated(self):
        """Tasks the Go M3s launched have no digest: their spec is unknown,
        not outdated. Its framework_config holds ImageK3S and
        KubernetesVersion from its own environment; they are not taken for
        run-time changes: this daemon's environment decides."""
        data = os.path.join(HERE, "..", "data", "records")
        # The datastore and the server come from a first run, so the server
        # is a (simulated) K3s with a Ready node that agents can join; their
        # records then lose the digest, as when the Go version rewrote them.
        sim, d = self.cluster(agents=4, K3S_AGENT_COUNT="0")
        fid = self.daemon_subscribed(sim, d)["id"]
        self.wait_converged(sim, 1, 1, 0)
        self.wait("the server's node Ready", lambda: self.health()["k3s"] == "ready")
        self.assertEqual(d.stop(), 0)
        old = set()
        for role in ("datastore", "server"):
            for tid, rec in self.records(role).items():
                self.assertIn("spec_digest", rec)
                del rec["spec_digest"]
                self.redis().command("SET", "%s:%s:%s" % (FW, role, tid), json.dumps(rec))
                old.add(tid)
        with open(os.path.join(data, "task_agent_running.json")) as f:
            tmpl = json.load(f)
        with open(os.path.join(data, "framework_config.json")) as f:
            fwc = json.load(f)
        self.assertNotEqual(fwc["ImageK3S"], "example/k3s:env")
        fwc.update(DSMax=1, K3SServerMax=1, K3SAgentMax=2, K3SAgentCPU=0.5,
                   K3SAgentCPULimit=0.5, K3SAgentMEM=256, K3SAgentMEMLimit=256)
        # Where the server of the first run really is (the Go sample's is
        # elsewhere), so its K3s API stays reachable.
        first = self.fw_config()
        for k in ("K3SServerHostname", "K3SServerPort"):
            fwc[k] = first[k]
        busy = {t[2] for t in self.launched(sim)}
        agents = [a["id"] for a in sim.state()["agents"] if a["id"] not in busy]
        for i in range(2):
            tid = "%08x-1111-4222-8333-%012x" % (i, i)
            sim.launch_task(framework_id=fid, task_id=tid, agent=agents[i], cpus=0.5, mem=64,
                            name="%s:agent" % FW)
            rec = dict(tmpl, TaskID=tid, task_name="%s:agent" % FW, Agent=agents[i])
            self.assertNotIn("spec_digest", rec)
            self.redis().command("SET", "%s:agent:%s" % (FW, tid), json.dumps(rec))
            old.add(tid)
        self.redis().command("SET", "%s:framework_config" % FW, json.dumps(fwc))
        d2 = self.daemon(sim, FRAMEWORK_PORT=str(self.api_port), FRAMEWORK_BIND="127.0.0.1",
                         AUTH_USERNAME="ops", AUTH_PASSWORD="orchestra-secret",
                         DS_COUNT="0", K3S_SERVER_COUNT="0", K3S_AGENT_COUNT="0",
                         IMAGE_K3S="example/k3s:env", KUBERNETES_VERSION="v1.31.5",
                         RECONCILE_WAIT="3s", REFUSE_OFFERS="1")
        self.wait("the original's tasks adopted",
                  lambda: self.converged(sim, 1, 1, 2) and not sim.unacked_updates())
        self.assertEqual(self.outdated(), {"Datastore": set(), "Server": set(), "Agent": set()})
        self.assertEqual(self.metric("m3s_tasks_spec_unknown", "agent"), 2)
        self.assertEqual(self.metric("m3s_tasks_spec_unknown", "server"), 1)
        self.assertEqual(self.metric("m3s_tasks_outdated", "agent"), 0)
        # The launches known before the scale: its ACCEPT may go out before
        # the API answers.
        before = set(self.agent_launches(sim)) | old
        self.scale("agent", 3, 1)
        new = self.new_agents(sim, before, 1)
        for ti in new.values():
            self.assertEqual(ti["container"]["docker"]["image"], "example/k3s:env")
            self.assertEqual(self.env_of(ti)["KUBERNETES_VERSION"], "v1.31.5")
        # A change afterwards: the new agent is outdated, the unknown stay so.
        code, body = self.update({"IMAGE_K3S": "example/k3s:next"})
        self.assertEqual(code, 200, body)
        self.assertEqual(self.outdated()["Agent"], set(new))
        self.assertEqual(self.metric("m3s_tasks_spec_unknown", "agent"), 2)
        self.assert_clean(sim, d2)


def own_tests(cls, loader):
    """Only the tests cls itself defines (those of its bases run in their
    own files), filtered by -k."""
    names = sorted(n for n in cls.__dict__ if n.startswith("test_"))
    names = [n for n in names if not loader.testNamePatterns or
             any(fnmatch.fnmatchcase(n, p) for p in loader.testNamePatterns)]
    return unittest.TestSuite(cls(n) for n in names)


def load_tests(loader, tests, pattern):
    return own_tests(UpdateTest, loader)


if __name__ == "__main__":
    unittest.main(verbosity=2)
