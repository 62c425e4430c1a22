#!/usr/bin/env python3
"""The status page at / in headless Chromium, against the real daemon, the
Mesos master simulator and a real redis-server on loopback.

Chromium opens http://user:password@127.0.0.1:<port>/ (the credentials in
the URL answer the page's basic-auth challenge; its own fetches of the
status and events then go out with them, which the daemon's request
counters prove), runs the page's scripts with a virtual-time budget, and
dumps the DOM; the test reads what the page shows (tasks by role with
their states and hosts, desired and running counts, Mesos and Redis state,
recent events) and compares it with the simulator. Redis is then stopped
and the page must say so. A screenshot is saved in the test's temporary
directory (its path is printed; M3S_UI_SCREENSHOT=<file> copies it).

Run: M3S_BIN=build/m3s python3 tests/ui/test_page.py -v
"""
import base64
import html.parser
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ui_harness import LONG, PASSWORD, ROLES, USER, UiCase  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Dom(html.parser.HTMLParser):
    """What the page shows: tasks (role, id, state, host) from the rows
    with data-task, text by element id, attributes by element id, the
    events' rows."""

    def __init__(self):
        super().__init__()
        self.role = None
        self.tasks = []
        self.by_id = {}
        self.attrs = {}
        self.events = []
        self.nodes = []       # (name, data-ready) of the Kubernetes rows
        self.steps = []       # (step, data-status) of the rollout plan's rows
        self._stack = []      # (tag, id or None, collecting event row?)
        self._row = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("data-role"):
            self.role = a["data-role"]
        if "data-task" in a:
            self.tasks.append((self.role, a["data-task"], a.get("data-state"),
                               a.get("data-host"), a.get("data-outdated")))
        if "data-node" in a:
            self.nodes.append((a["data-node"], a.get("data-ready")))
        if "data-step" in a:
            self.steps.append((a["data-step"], a.get("data-status")))
        if "data-seq" in a:
            self._row = []
            self.events.append(self._row)
        if a.get("id"):
            self.attrs[a["id"]] = a
            self.by_id.setdefault(a["id"], "")
        self._stack.append((tag, a.get("id")))
        if tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        while self._stack:
            t, _ = self._stack.pop()
            if t == tag:
                break
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        for _, i in self._stack:
            if i:
                self.by_id[i] += data
        if self._row is not None and self._row:
            self._row[-1] += data


class PageTest(UiCase):
    def chromium(self, *args, budget=6000):
        self.assertTrue(CHROMIUM, "chromium is not installed (scripts/setup.sh installs it)")
        prof = tempfile.mkdtemp(prefix="m3s-chromium-", dir=self.tmp)
        url = "http://%s:%s@127.0.0.1:%d/" % (USER, PASSWORD, self.api_port)
        cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
               "--no-first-run", "--user-data-dir=" + prof,
               "--virtual-time-budget=%d" % budget] + list(args) + [url]
        out = subprocess.run(cmd, capture_output=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr.decode(errors="replace")[-2000:])
        return out.stdout.decode("utf-8", "replace")

    def page(self):
        dom = Dom()
        dom.feed(self.chromium("--dump-dom"))
        return dom

    def api_count(self, path, code):
        _, _, m = self.get("/metrics")
        hit = re.search(r'm3s_api_requests_total\{path="%s",code="%d"\} (\d+)'
                        % (re.escape(path), code), m)
        return int(hit.group(1)) if hit else 0

    def put(self, path):
        """(status, JSON or text) of PUT /api/m3s/v0/<path>."""
        req = urllib.request.Request("http://127.0.0.1:%d/api/m3s/v0/%s" % (self.api_port, path),
                                     method="PUT", data=b"")
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % (USER, PASSWORD)).encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_status_page_in_chromium(self):
        self.tmp = tempfile.mkdtemp(prefix="m3s-ui-test-")
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="2")
        self.wait_converged(sim, 1, 1, 2)
        unauth_before = self.api_count("/api/m3s/v0/status", 401)

        dom = self.page()
        # The page drew the daemon's answer, fetched with the browser's
        # credentials (no 401 on the data endpoints).
        self.assertTrue(dom.attrs.get("updated", {}).get("data-ok"),
                        "the page never got its data: %s" % dom.by_id.get("fetch-error"))
        self.assertEqual(dom.by_id["fetch-error"], "")
        self.assertGreater(self.api_count("/api/m3s/v0/status", 200), 0)
        self.assertGreater(self.api_count("/api/m3s/v0/events", 200), 0)
        self.assertEqual(self.api_count("/api/m3s/v0/status", 401), unauth_before)

        self.assertEqual(dom.attrs["overall"]["data-status"], "ok")
        self.assertEqual(dom.attrs["mesos"]["data-state"], "subscribed")
        self.assertEqual(dom.attrs["redis"]["data-connected"], "true")
        # The deploy plan, in order, each task as the simulator has it.
        self.assertEqual([r for r in dict.fromkeys(t[0] for t in dom.tasks)], list(ROLES))
        hosts = {a["id"]: a["hostname"] for a in sim.state()["agents"]}
        shown = {(t[0], t[1], t[2], t[3]) for t in dom.tasks}
        actual = {(r, tid, state, hosts[agent]) for tid, r, agent, state in self.active(sim)}
        self.assertEqual(shown, actual)
        for role, n in zip(ROLES, (1, 1, 2)):
            self.assertEqual(dom.by_id[role + "-desired"], str(n))
            self.assertEqual(dom.by_id[role + "-running"], str(n))
        # Kubernetes: the simulated K3s's nodes, Ready, said to be simulated.
        self.assertEqual(dom.attrs["k8s-state"]["data-k3s"], "ready")
        self.assertNotIn("hidden", dom.attrs["k8s-simulated"])
        self.assertIn("simulated", dom.by_id["k8s-simulated"])
        k3s = sim.k3s_state()["clusters"]["m3s"]["nodes"]
        self.assertEqual(sorted(dom.nodes), sorted((n, "true") for n in k3s))
        self.assertEqual(len(dom.nodes), 3)
        # Recent events: real log lines of this daemon, no secret.
        self.assertTrue(dom.events, "no events shown")
        log = d.text()
        for row in dom.events:
            self.assertEqual(len(row), 4, row)
            self.assertIn(row[1], ("INFO", "WARN", "ERROR"))
            self.assertIn("[%s] %s" % (row[2], row[3]), log)
        self.assertTrue(any("role scaled" in r[3] or "creating" in r[3] for r in dom.events))
        page_text = " ".join(dom.by_id.values())
        self.assertNotIn(PASSWORD, page_text)
        self.assertEqual({t[4] for t in dom.tasks}, {"false"}, dom.tasks)

        # A run-time change of the K3s image: the servers and agents running
        # are outdated, the datastore (another image) is not.
        req = urllib.request.Request(
            "http://127.0.0.1:%d/api/m3s/v0/cluster/update" % self.api_port, method="PUT",
            data=json.dumps({"IMAGE_K3S": "example/k3s:next"}).encode())
        req.add_header("Authorization", "Basic " + base64.b64encode(
            ("%s:%s" % (USER, PASSWORD)).encode()).decode())
        with urllib.request.urlopen(req, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
        dom = self.page()
        self.assertEqual({(t[0], t[4]) for t in dom.tasks},
                         {("datastore", "false"), ("server", "true"), ("agent", "true")})

        # The rollout plan, live: none yet; a paused plan as the API has it;
        # then complete.
        self.assertEqual(dom.attrs["rollout-state"]["data-status"], "")
        self.assertIn("No rollout plan yet", dom.by_id["rollout-info"])
        self.assertEqual(dom.steps, [])
        self.assertEqual(self.put("cluster/rollout")[0], 200)
        code, plan = self.put("plan/pause")
        self.assertEqual(code, 200, plan)
        dom = self.page()
        self.assertEqual(dom.attrs["rollout-state"]["data-status"], "PAUSED")
        self.assertIn(plan["id"], dom.by_id["rollout-info"])
        self.assertEqual([n for n, _ in dom.steps], ["server-1", "agent-1", "agent-2"])
        self.assertEqual(self.put("plan/resume")[0], 200)
        self.wait("the plan complete", lambda: json.loads(
            self.get("/api/m3s/v0/plan")[2])["status"] == "COMPLETE", LONG * 2)
        dom = self.page()
        self.assertEqual(dom.attrs["rollout-state"]["data-status"], "COMPLETE")
        self.assertEqual(dom.steps, [("server-1", "COMPLETE"), ("agent-1", "COMPLETE"),
                                     ("agent-2", "COMPLETE")])

        shot = os.path.join(self.tmp, "status-page.png")
        self.chromium("--screenshot=" + shot, "--window-size=1280,900", "--hide-scrollbars")
        self.assertTrue(os.path.getsize(shot) > 10000, "screenshot too small")
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        print("screenshot: %s" % shot, file=sys.stderr)
        if os.environ.get("M3S_UI_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["M3S_UI_SCREENSHOT"])

        # Redis goes away: the page says so.
        self.redis().kill()
        self.wait("/health degraded", lambda: self.health()["redis"] is False)
        dom = self.page()
        self.assertEqual(dom.attrs["overall"]["data-status"], "degraded")
        self.assertEqual(dom.attrs["redis"]["data-connected"], "false")
        self.assertIn("Redis is not connected", dom.by_id["problems"])
        self.assertEqual(len(dom.tasks), 4, "the roles still show their tasks")
        self.redis().start()
        self.wait("/health ok", lambda: self.health()["status"] == "ok")
        self.finish(sim, d)
        shutil.rmtree(self.tmp, ignore_errors=True) if not os.environ.get("M3S_UI_KEEP") else None


if __name__ == "__main__":
    unittest.main(verbosity=2)
