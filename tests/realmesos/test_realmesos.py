#!/usr/bin/env python3
"""The daemon against a real Mesos 1.11 master and two agents (from
../shared/mesos), a real redis-server, over loopback.

The agents run only the Mesos containerizer, so every task of ours (a
Docker task) fails at once with TASK_FAILED: what is shown here is how the
daemon talks to a real master, not running K3s. Each test ends with the
master's verdict: nothing in its log about a dropped, ignored or invalid
call, its invalid-update/acknowledgement counters at 0, every status update
it forwarded acknowledged, no task id launched twice, and never more live
tasks of a role than asked for. test_checker_catches_wrong_calls shows the
verdict fails when a call is made wrong on purpose.

Where ../shared is absent (or without root) the suite says so and exits
77, which ctest reports as skipped.

Run (as root): M3S_BIN=build/m3s python3 tests/realmesos/test_realmesos.py -v
"""
import base64
import os
import shutil
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "cli_plugin"))
import cluster  # noqa: E402
import real_cli  # noqa: E402
import test_mesos  # noqa: E402  (the Daemon and Redis helpers; its tests do not run here)

SLOW = test_mesos.SLOW
LONG = 90.0 * (2 if SLOW else 1)       # generous bound of any wait
BACKOFF_MIN, BACKOFF_MAX = 0.5, 4.0     # RESTART_BACKOFF_* given to the daemon
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"}
ROLES = ("datastore", "server", "agent")
SKIP = 77
PING_FLAGS = ["--agent_ping_timeout=1secs", "--max_agent_ping_timeouts=3"]


def role_of(name):
    return name.rsplit(":", 1)[-1]


class Watch(threading.Thread):
    """Polls the master's /master/frameworks and keeps what the checks
    need: the most live tasks of each role seen at once, and terminal tasks
    that stayed in `tasks` (not acknowledged) for long."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c = c
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.want = {r: 1 for r in ROLES}      # updated by the test on a scale
        self.over = []                         # (role, live tasks, wanted)
        self.terminal_seen = {}                # task id -> first time seen terminal in `tasks`

    def set_want(self, role, n):
        with self.lock:
            self.want[role] = n

    def run(self):
        while not self.stop_ev.wait(0.25):
            try:
                fws = self.c.frameworks()
            except (OSError, ValueError):
                continue                       # the master is restarting
            now = time.monotonic()
            with self.lock:
                for fw in fws:
                    if fw["name"] != "m3s":
                        continue
                    live = {r: 0 for r in ROLES}
                    for t in fw["tasks"]:
                        if t["state"] in TERMINAL:
                            self.terminal_seen.setdefault(t["id"], now)
                        else:
                            live[role_of(t["name"])] += 1
                    for r in ROLES:
                        if live[r] > self.want[r]:
                            self.over.append((r, live[r], self.want[r]))

    def stuck(self, older_than=15.0):
        """Terminal tasks that stayed unacknowledged in `tasks` for long."""
        now = time.monotonic()
        with self.lock:
            return [t for t, first in self.terminal_seen.items() if now - first > older_than
                    and any(t == x["id"] for fw in self.c.frameworks() for x in fw["tasks"])]

    def stop(self):
        self.stop_ev.set()
        self.join(timeout=10)


class RealMesosTest(test_mesos.MesosCase):
    def setUp(self):
        super().setUp()
        self.clusters = []
        cluster.CLEANUPS[:] = [self.kill_children]

    def kill_children(self):
        """On SIGTERM/SIGINT: the daemons and redis-server this test started."""
        for d in self.daemons:
            d.cleanup()
        if hasattr(self, "_redis"):
            self._redis.stop()

    def tearDown(self):
        failed = self._outcome.result is not None and any(
            t is self for t, _ in list(self._outcome.result.failures) +
            list(self._outcome.result.errors))
        for w in getattr(self, "watches", []):
            w.stop()
        super().tearDown()
        for c in self.clusters:
            c.stop()
            if failed:
                sys.stderr.write("--- master log tail (%s) ---\n%s\n" % (
                    c.dir, "\n".join(c.log_lines()[-60:])))
            else:
                c.remove()

    # -- setup -------------------------------------------------------------------

    def cluster(self, **kw):
        c = cluster.Cluster(**kw)
        self.clusters.append(c)
        return c

    def daemon_on(self, c, **env):
        self.api_port = test_mesos.free_port()
        base = dict(FRAMEWORK_HOSTNAME="127.0.0.1", FRAMEWORK_PORT=str(self.api_port),
                    AUTH_USERNAME="ops", AUTH_PASSWORD="real-secret",
                    RESTART_BACKOFF_MIN="%dms" % (BACKOFF_MIN * 1000),
                    RESTART_BACKOFF_MAX="%dms" % (BACKOFF_MAX * 1000),
                    REFUSE_OFFERS="1", HEARTBEAT_INTERVAL="2s")
        base.update(env)
        env = base
        env.setdefault("REDIS_SERVER", "127.0.0.1:%d" % self.redis().port)
        d = test_mesos.Daemon(c.master, **env)
        self.daemons.append(d)
        return d

    def watch(self, c):
        w = Watch(c)
        w.start()
        self.watches = getattr(self, "watches", []) + [w]
        return w

    def api(self, path):
        return rest_api(self.api_port, path)

    # -- views -------------------------------------------------------------------

    def framework(self, c, fid=None):
        """The m3s framework the master lists as active (and connected)."""
        for fw in c.frameworks():
            if fw["name"] == "m3s" and fw["active"] and (fid is None or fw["id"] == fid):
                return fw
        return None

    def ds_launches(self, c, since=0.0):
        return [x for x in c.launches() if x[0] >= since]

    # -- the verdict ---------------------------------------------------------------

    def assert_master_clean(self, c, w=None, refused_ok=0, fault=False):
        """The master's verdict (see the module doc). `refused_ok`: calls a
        fault could catch in flight (at most one per injected fault);
        without a `fault` the framework never left the master."""
        if not fault:
            self.assertEqual([x for x in c.log_lines() if "Framework " in x and " disconnected"
                              in x], [], "the framework disconnected")
        self.assertEqual(c.log_problems(), [], "the master dropped, ignored or refused a call")
        self.assertEqual(c.invalid_counters(), {})
        # An update forwarded a moment ago may still have its ACKNOWLEDGE on
        # the way, and a running daemon gets new ones: the verdict is the
        # first reading with none outstanding. One never acknowledged stays
        # in every reading, so it fails once the 10 s are over. (Judging a
        # new reading after a first one was empty failed when an update was
        # forwarded in between: its ACKNOWLEDGE came 13 ms later.)
        deadline = time.monotonic() + 10
        left = c.unacknowledged()
        while left and time.monotonic() < deadline:
            time.sleep(0.2)
            left = c.unacknowledged()
        self.assertEqual(left, [], "status updates never acknowledged")
        ids = [x[1] for x in c.launches()]
        self.assertEqual(len(ids), len(set(ids)), "a task id was launched twice")
        if w is not None:
            self.assertEqual(w.over, [], "more live tasks of a role than asked for")
            self.assertEqual(w.stuck(), [], "terminal tasks never acknowledged")
        for d in self.daemons:
            text = d.text()
            refused = [line for line in text.splitlines() if "refused by the master" in line
                       or "answered the subscription with HTTP" in line]
            self.assertLessEqual(len(refused), refused_ok, "\n".join(refused))

    def assert_backoff(self, c, since=0.0):
        """Each replacement launched no sooner than the doubled backoff after
        the failure it replaces, and the delay reached its maximum."""
        launches = self.ds_launches(c, since)
        failed = c.failures()
        gaps = []
        for i, (t, tid, _) in enumerate(launches[:-1]):
            self.assertIn(tid, failed, "launched task %s did not fail" % tid)
            gaps.append(launches[i + 1][0] - failed[tid])
        for i, g in enumerate(gaps):
            want = min(BACKOFF_MIN * 2 ** i, BACKOFF_MAX)
            self.assertGreaterEqual(g, want - 0.05, "relaunch %d after %.2fs, backoff %.1fs: %s"
                                    % (i + 1, g, want, ["%.2f" % x for x in gaps]))
        return gaps

    # -- tests ----------------------------------------------------------------------

    def test_subscription_calls_backoff_and_scale(self):
        c = self.cluster()
        w = self.watch(c)
        d = self.daemon_on(c, MESOS_FAILOVER_TIMEOUT="2h")
        fw = self.wait("the framework active at the master", lambda: self.framework(c), LONG)
        # The FrameworkInfo we mean to send, as the master understood it.
        self.assertEqual(fw["roles"], ["m3s"])
        self.assertEqual(sorted(fw["capabilities"]), ["MULTI_ROLE", "PARTITION_AWARE"])
        self.assertEqual(fw["webui_url"], "http://127.0.0.1:%d" % self.api_port)
        self.assertEqual(fw["failover_timeout"], 7200.0)
        self.assertTrue(fw["checkpoint"])
        self.assertEqual(fw["user"], "root")
        self.assertEqual(fw["hostname"], "127.0.0.1")
        self.assertTrue(fw["connected"])
        start = time.time()

        # The datastore task fails at once, again and again: the relaunches
        # back off, doubling up to the maximum, never with a reused id.
        self.wait("six datastore launches", lambda: len(c.launches()) >= 6, LONG)
        gaps = self.assert_backoff(c)
        self.assertGreaterEqual(max(gaps), BACKOFF_MAX - 0.05, gaps)
        print("relaunch delays after each failure (s): %s" % " ".join("%.2f" % g for g in gaps))
        # No hot loop: over the whole run no more launches than the backoff allows.
        elapsed = time.time() - start
        self.assertLessEqual(len(c.launches()), 5 + elapsed / BACKOFF_MAX + 1)
        # Nothing launched past the failing datastore (the gate), and every
        # task the master knows is a datastore.
        self.assertEqual({role_of(t["name"]) for f in c.frameworks() for t in
                          f["tasks"] + f["completed_tasks"]}, {"datastore"})

        # A scale through the REST API reaches the master: 0 stops the
        # launches ...
        code, body = self.api("datastore/scale/0")
        self.assertEqual((code, body), (200, "-1"))
        t0 = time.time()
        self.wait("no datastore task left", lambda: not [
            t for f in c.frameworks() for t in f["tasks"]], LONG)
        # A task launched just before the scale may live until its kill:
        # only from here on none may.
        w.set_want("datastore", 0)
        time.sleep(BACKOFF_MAX + 2)
        self.assertEqual([x for x in c.launches() if x[0] > t0 + 1.0], [],
                         "launched after the scale to 0")
        # ... 2 brings two at a time, one per agent; this one by our
        # mesos-cli plugin, run by the real CLI, which finds the daemon
        # through the real master's /master/frameworks.
        w.set_want("datastore", 2)
        t1 = time.time()
        if real_cli.available():
            home = tempfile.mkdtemp(prefix="m3s-cli-home-")
            self.addCleanup(shutil.rmtree, home, True)
            cfg = os.path.join(home, "config.toml")
            with open(cfg, "w") as f:
                f.write(real_cli.config_text(c.master, "m3s", "ops", "real-secret"))
            rc, out, err = real_cli.run(cfg, ["m3s", "list"], home)
            self.assertEqual((rc, err), (0, ""), out)
            self.assertEqual(out.splitlines()[1].split(), [fw["id"], "True", fw["webui_url"],
                                                           "m3s"])
            rc, out, err = real_cli.run(cfg, ["m3s", "scale", "-e", "m3s", "2"], home)
            self.assertEqual((rc, out, err), (0, "Scale up/down datastore\n2\n", ""))
        else:
            code, body = self.api("datastore/scale/2")
            self.assertEqual((code, body), (200, "2"))
        agents = {a["id"] for a in c.active_agents()}
        self.wait("datastore tasks on both agents",
                  lambda: {x[2] for x in c.launches() if x[0] >= t1} == agents, LONG)
        self.assertEqual(self.api("datastore/scale")[0], 200)
        self.assert_master_clean(c, w)
        self.assertEqual(d.stop(), 0, d.text()[-3000:])

    def test_checker_catches_wrong_calls(self):
        """The verdict cannot pass by accident: with the daemon's calls clean,
        a second framework's wrong calls (a DECLINE of an offer that does not
        exist, an ACKNOWLEDGE for an agent that does not exist) are caught."""
        c = self.cluster(agents=1)
        d = self.daemon_on(c)
        self.wait("the framework active", lambda: self.framework(c), LONG)
        self.wait("two datastore launches", lambda: len(c.launches()) >= 2, LONG)
        self.assert_master_clean(c)
        bad = cluster.SchedulerClient(c.master)
        try:
            agent = c.active_agents()[0]["id"]
            self.assertEqual(bad.call({"type": "DECLINE", "decline": {
                "offer_ids": [{"value": "no-such-offer-O1"}]}}), 202)
            self.wait("the decline logged", lambda: c.log_problems(), LONG)
            problems = c.log_problems()
            print("caught: " + " | ".join(p.split("] ", 1)[-1] for p in problems))
            self.assertTrue(any("decline" in p.lower() for p in problems), problems)
            self.assertEqual(bad.call({"type": "ACKNOWLEDGE", "acknowledge": {
                "agent_id": {"value": agent + "9"}, "task_id": {"value": "no-such-task"},
                "uuid": "9ET8+GiSTs+PvBUo1a3HlA=="}}), 202)
            self.wait("the acknowledgement refused", lambda: c.invalid_counters(), LONG)
            print("caught: %s" % c.invalid_counters())
            with self.assertRaises(AssertionError):
                self.assert_master_clean(c)
        finally:
            bad.close()
        self.assertEqual(d.stop(), 0, d.text()[-3000:])

    def test_master_restart(self):
        # An agent notices that its master is gone when the master's pings
        # stop (by default after 5 x 15 s); with 3 x 1 s the agents are back
        # within seconds of the restart.
        c = self.cluster(master_flags=PING_FLAGS)
        w = self.watch(c)
        d = self.daemon_on(c)
        fw = self.wait("the framework active", lambda: self.framework(c), LONG)
        self.wait("three datastore launches", lambda: len(c.launches()) >= 3, LONG)
        c.restart_master()
        t0 = time.time()
        # The master forgot everything (in-memory registry): the daemon
        # subscribes again with its id, and reconciles.
        again = self.wait("the framework back with the same id",
                          lambda: self.framework(c, fw["id"]), LONG)
        self.assertEqual(again["webui_url"], fw["webui_url"])
        self.wait("both agents registered again", lambda: len(c.active_agents()) == 2, LONG)
        # What the restarted master logged: the subscription and a reconcile.
        self.wait("a reconciliation after the restart",
                  lambda: any("task state reconciliation for framework %s" % fw["id"] in x
                              for x in c.log_lines(restarted=True)), LONG)
        self.assertTrue(any("Subscribing framework 'm3s'" in x
                            for x in c.log_lines(restarted=True)))
        # The daemon goes on: new launches after the restart, fail, are
        # acknowledged; still one framework, no duplicate task.
        n = len(c.launches())
        self.wait("launches after the restart", lambda: len(c.launches()) >= n + 2, LONG)
        self.assertEqual([f["id"] for f in c.frameworks() if f["name"] == "m3s"], [fw["id"]])
        self.assert_master_clean(c, w, refused_ok=1, fault=True)
        self.assertEqual(d.stop(), 0, d.text()[-3000:])

    def test_agent_goes_away_and_a_new_one_registers(self):
        # The master declares a silent agent gone after ~3 s (3 x 1 s pings),
        # as in ../shared/mesos-samples.
        c = self.cluster(master_flags=PING_FLAGS)
        w = self.watch(c)
        # The datastore pinned to the host 127.0.0.12 (agent 2).
        d = self.daemon_on(c, K3S_DS_CONSTRAINT="hostname:127.0.0.12")
        self.wait("the framework active", lambda: self.framework(c), LONG)
        old = [a["id"] for a in c.active_agents() if a["hostname"] == "127.0.0.12"][0]
        # Kill it right after a failure, while the daemon is backing off.
        self.wait("four launches on agent 2", lambda: len(c.launches()) >= 4, LONG)
        self.assertEqual({x[2] for x in c.launches()}, {old})
        last = c.launches()[-1][1]
        self.wait("the last one failed", lambda: last in c.failures(), LONG)
        # ... and acknowledged: an acknowledgement the master cannot pass on
        # to a dead agent would be the test's doing, not the daemon's.
        self.wait("its failure acknowledged", lambda: not c.unacknowledged(), LONG)
        c.kill_agent(2)
        t0 = time.time()
        self.wait("the master to drop agent 2",
                  lambda: old not in {a["id"] for a in c.active_agents()}, LONG)
        # A new agent on the same host: a new agent id.
        c.start_agent(3, "127.0.0.12", test_mesos.free_port())
        new = self.wait("the new agent registered", lambda: [
            a["id"] for a in c.active_agents() if a["hostname"] == "127.0.0.12"], LONG)[0]
        self.assertNotEqual(new, old)
        self.wait("a datastore launched on the new agent",
                  lambda: any(x[2] == new for x in c.launches()), LONG)
        self.assertEqual([x for x in c.launches() if x[0] > t0 and x[2] == old], [],
                         "launched on the agent that went away")
        self.assert_master_clean(c, w)
        self.assertEqual(d.stop(), 0, d.text()[-3000:])

    def test_daemon_kill9_failover(self):
        c = self.cluster()
        w = self.watch(c)
        d = self.daemon_on(c)
        fw = self.wait("the framework active", lambda: self.framework(c), LONG)
        self.wait("three datastore launches", lambda: len(c.launches()) >= 3, LONG)
        d.kill9()
        self.wait("the master to see the framework gone",
                  lambda: not self.framework(c), LONG)
        n = len(c.launches())
        d2 = self.daemon_on(c, FRAMEWORK_PORT=str(self.api_port))
        again = self.wait("the framework back with the same id",
                          lambda: self.framework(c, fw["id"]), LONG)
        self.assertEqual(again["id"], fw["id"])
        self.assertEqual(sum(1 for line in c.log_lines()
                             if "Subscribing framework 'm3s'" in line), 2)
        self.assertEqual([f["id"] for f in c.frameworks() if f["name"] == "m3s"], [fw["id"]])
        self.wait("launches after the failover", lambda: len(c.launches()) >= n + 2, LONG)
        self.assert_master_clean(c, w, fault=True)
        self.assertEqual(d2.stop(), 0, d2.text()[-3000:])


def rest_api(port, path):
    """(status, body) of a REST API call with the test's credentials."""
    req = urllib.request.Request("http://127.0.0.1:%d/api/m3s/v0/%s" % (port, path))
    req.add_header("Authorization", "Basic " + base64.b64encode(b"ops:real-secret").decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def main():
    why = cluster.available()
    if why:
        print("realmesos: skipped: " + why)
        sys.exit(SKIP)
    cluster.sweep_orphans()
    cluster.install()
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
