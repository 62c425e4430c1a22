#!/usr/bin/env python3
"""The daemon against the Mesos master simulator, over loopback.

Each test starts a fresh simulator in this process and the real `m3s`
binary (path in M3S_BIN) as a child, injects one fault, and checks that the
daemon subscribes again within a bounded time with the calls a real master
accepts: the simulator records every violation, and each test ends by
asserting there is none. The time from each fault to the next SUBSCRIBED is
printed, for the closing note and the README.

Run: M3S_BIN=build/m3s python3 tests/integration/test_mesos.py -v
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mesos_sim"))
sys.path.insert(0, os.path.join(HERE, ".."))
from mesos_sim import MesosSim  # noqa: E402
from ports import free_port  # noqa: E402 (also test_mesos.free_port for others)

M3S = os.environ.get("M3S_BIN", os.path.join(HERE, "..", "..", "build", "m3s"))
HEARTBEAT = 0.5          # seconds; the daemon's watchdog fires after 5 of them
BOUND = 30.0             # generous: a correct daemon needs a few seconds at most
SLOW = os.environ.get("M3S_SANITIZER") == "thread"

measured = []            # (fault, seconds to re-subscribe)


class Redis:
    """A throwaway redis-server on a free loopback port, stopped by PID."""

    def __init__(self, extra=()):
        self.extra = list(extra)  # more redis-server arguments (--replicaof ...)
        self.dir = tempfile.mkdtemp(prefix="m3s-redis-")
        self.port = free_port()  # reserved across restarts too
        self.start()

    def start(self):
        """(Re)starts the server on the same port and directory; the
        append-only file, synced on every write, keeps the data across."""
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", self.dir,
             # tests move "dir" to make a background save fail (MISCONF)
             "--enable-protected-configs", "yes"] + self.extra,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while not self.ping():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("redis-server did not start on port %d" % self.port)
            time.sleep(0.05)

    def command(self, *args, db=1):
        """One command through redis-cli (DB 1 is REDIS_DB's default)."""
        out = subprocess.run(["redis-cli", "-p", str(self.port), "-n", str(db)] + list(args),
                             capture_output=True, timeout=10)
        return out.stdout

    def ping(self):
        try:
            return self.command("PING").startswith(b"PONG")
        except (OSError, subprocess.TimeoutExpired):
            return False

    def kill(self):
        """An outage: the server process goes away, its data stays on disk."""
        self.proc.terminate()
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Daemon:
    """The m3s binary as a child process, its log in a temporary file."""

    def __init__(self, master, **env):
        self.log = tempfile.NamedTemporaryFile(prefix="m3s-log-", suffix=".txt", delete=False)
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "FRAMEWORK_HOSTNAME": "m3s.test",
            "MESOS_MASTER": master,
            "LOGLEVEL": "debug",
            "MESOS_BACKOFF_MIN": "100ms",
            "MESOS_BACKOFF_MAX": "2s",
            "REFUSE_OFFERS": "5",
            # The REST API on loopback only, on a port of its own.
            "FRAMEWORK_BIND": "127.0.0.1",
            "FRAMEWORK_PORT": str(free_port()),
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            if k in os.environ:
                base[k] = os.environ[k]
        base.update(env)
        self.proc = subprocess.Popen([M3S], env=base, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def subscribed_count(self, framework_id):
        """How often the daemon logged that it read SUBSCRIBED for this id."""
        return sum(1 for line in self.text().splitlines()
                   if "] subscribed to " in line and " as %s" % framework_id in line)

    def stop(self):
        """SIGTERM; the daemon must exit 0 (under ASan: without leaks)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = "hung"
        return rc

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


class MesosCase(unittest.TestCase):
    """Simulators, Redis and daemons per test, and the helpers to watch them
    (shared with test_orchestra.py)."""

    def setUp(self):
        self.sims = []
        self.daemons = []

    def tearDown(self):
        res = getattr(self._outcome, "result", None)
        why = [tb for t, tb in (list(res.failures) + list(res.errors) if res else [])
               if t is self]
        if why:
            # The reason first: a CI excerpt that cuts the long logs below
            # still shows it (unittest prints it only at the very end).
            sys.stderr.write("--- %s failed: ---\n%s\n" % (self.id(), why[-1][-3000:]))
        for i, d in enumerate(self.daemons):
            if why:
                # What the daemon said is the next thing a failure needs;
                # the configuration it logs first is left out.
                lines = [x for x in d.text().splitlines() if "] config " not in x]
                sys.stderr.write("--- %s: daemon %d log tail ---\n%s\n"
                                 % (self.id(), i, "\n".join(lines)[-20000:]))
            d.cleanup()
        for s in self.sims:
            s.stop()

    # -- helpers ------------------------------------------------------------

    def sim(self, **kw):
        """A simulator; with k3s=True its server and agent tasks act as K3s
        containers (k3s_sim.py): each agent is a loopback address of its
        own, and the K3s API host port (K3S_SERVER_PORT, set by daemon())
        is a free port that every agent offers."""
        kw.setdefault("agents", 2)
        kw.setdefault("heartbeat", HEARTBEAT)
        kw.setdefault("offer_interval", 0.3)
        kw.setdefault("resend_interval", 1.0)
        k3s_port = None
        if kw.get("k3s"):
            k3s_port = free_port()
            kw.setdefault("agent_hostname", "127.0.{i}.1")
            kw["ports"] = "%s,%d-%d" % (kw.get("ports", "31000-32000"), k3s_port, k3s_port)
            kw.setdefault("k3s_config_delay", 0.1)
            kw.setdefault("k3s_node_delay", 0.1)
            kw.setdefault("k3s_ready_delay", 0.2)
        s = MesosSim(**kw)
        s.k3s_port = k3s_port
        s.start()
        self.sims.append(s)
        return s

    def redis(self):
        if not hasattr(self, "_redis"):
            self._redis = Redis()
            self.addCleanup(self._redis.stop)
        return self._redis

    def daemon(self, sim, **env):
        env.setdefault("REDIS_SERVER", "127.0.0.1:%d" % self.redis().port)
        if getattr(sim, "k3s_port", None):
            env.setdefault("K3S_SERVER_PORT", str(sim.k3s_port))
        d = Daemon("127.0.0.1:%d" % sim.port, **env)
        self.daemons.append(d)
        return d

    def wait(self, what, predicate, timeout=BOUND):
        deadline = time.monotonic() + timeout
        self.why = None  # a predicate may say why it is false (converged)
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                logs = "\n".join(d.text()[-4000:] for d in self.daemons)
                # What the simulated K3s containers could not do (a port
                # they could not listen on, a kubeconfig not published).
                k3s = [e for s in self.sims if getattr(s, "k3s_port", None)
                       for e in s.k3s_state().get("errors", [])]
                self.fail("timed out after %.0fs waiting for %s%s\n--- daemon log tail ---\n%s%s"
                          % (timeout, what, "\n--- last reason ---\n" + self.why if self.why
                             else "", logs,
                             "\n--- simulated K3s errors ---\n" + "\n".join(k3s) if k3s else ""))
            time.sleep(0.02)

    def subscribed(self, sim, since=0):
        """SUBSCRIBE calls answered 200 after call seq `since`."""
        return [c for c in sim.calls(since=since, type="SUBSCRIBE") if c["status"] == 200]

    def connected_framework(self, sim):
        for fw in sim.state(include_agents=False)["frameworks"]:
            if fw["connected"]:
                return fw
        return None

    def last_seq(self, sim):
        calls = sim.calls()
        return calls[-1]["seq"] if calls else 0

    def daemon_subscribed(self, sim, daemon):
        """Waits until the daemon itself has read SUBSCRIBED (the simulator
        counts a framework as connected as soon as it sent the event)."""
        fw = self.wait("a subscription", lambda: self.connected_framework(sim))
        self.wait("the daemon to read SUBSCRIBED",
                  lambda: daemon.subscribed_count(fw["id"]) > 0)
        return fw

    def resubscribed_after(self, sim, daemon, fault, inject, same_id=True):
        """Injects a fault and waits for the daemon to be subscribed again;
        records the time it took."""
        fw = self.daemon_subscribed(sim, daemon)
        before = daemon.subscribed_count(fw["id"])
        since = self.last_seq(sim)
        self.faults = getattr(self, "faults", 0) + 1
        t0 = time.time()
        inject()
        self.wait("re-subscription after " + fault, lambda: self.subscribed(sim, since))
        # Connected again: with a fresh SUBSCRIBED read by the daemon (for a
        # removed framework that is the second subscription, not the refused
        # first one).
        if same_id:
            fw2 = self.wait("the framework connected again",
                            lambda: self.connected_framework(sim))
        else:
            fw2 = self.wait("a new framework connected",
                            lambda: (lambda f: f if f and f["id"] != fw["id"] else None)(
                                self.connected_framework(sim)))
        self.wait("the daemon to read SUBSCRIBED again",
                  lambda: daemon.subscribed_count(fw2["id"]) > (before if same_id else 0))
        took = time.time() - t0
        measured.append((fault, took))
        if same_id:
            self.assertEqual(fw2["id"], fw["id"], "the framework id must survive " + fault)
        return fw, fw2, took

    # A fault that ends a subscription can catch one call on the wire (the
    # daemon sends one at a time): the master then answers 403 "not
    # subscribed", 400 "wrong stream id" or, after a restart, 400 "cannot be
    # found". That is a race no framework can avoid; more than one such call
    # per fault would mean the daemon kept sending after it knew.
    RACES = ("not_subscribed", "wrong_stream_id", "unknown_framework")

    def assert_clean(self, sim, daemon, expected=()):
        """The daemon stops with 0 and the simulator saw nothing wrong but
        the `expected` kinds of violation the test provoked on purpose and at
        most one in-flight call per injected fault."""
        self.assertEqual(daemon.stop(), 0, "daemon exit code\n" + daemon.text()[-4000:])
        races = [x for x in sim.violations() if x["kind"] in self.RACES]
        self.assertLessEqual(len(races), getattr(self, "faults", 0),
                             "calls sent after the subscription was lost: %s" % races)
        v = [x for x in sim.violations()
             if x["kind"] not in expected and x["kind"] not in self.RACES]
        self.assertEqual(v, [], "simulator recorded violations:\n" +
                         "\n".join("%s: %s" % (x["kind"], x["message"]) for x in v))


class MesosTest(MesosCase):
    # -- tests ----------------------------------------------------------------

    def test_subscribe_call(self):
        sim = self.sim()
        port = free_port()
        d = self.daemon(sim, MESOS_FAILOVER_TIMEOUT="2h", FRAMEWORK_PORT=str(port))
        self.wait("SUBSCRIBED", lambda: self.connected_framework(sim))
        call = self.subscribed(sim)[0]
        self.assertEqual(call["headers"].get("Content-Type"), "application/json")
        self.assertNotIn("Mesos-Stream-Id", call["headers"])
        self.assertNotIn("Expect", call["headers"])
        info = call["body"]["subscribe"]["framework_info"]
        self.assertEqual(info["user"], "root")
        self.assertEqual(info["name"], "m3s")
        self.assertEqual(info["roles"], ["m3s"])
        self.assertEqual(info["hostname"], "m3s.test")
        self.assertEqual(info["webui_url"], "http://m3s.test:%d" % port)
        self.assertEqual(info["failover_timeout"], 7200.0)
        self.assertTrue(info["checkpoint"])
        self.assertEqual(sorted(c["type"] for c in info["capabilities"]),
                         ["MULTI_ROLE", "PARTITION_AWARE"])
        self.assertNotIn("framework_id", call["body"])
        self.assertNotIn("id", info)
        self.assert_clean(sim, d)

    def test_offers_declined_not_hoarded(self):
        sim = self.sim()
        d = self.daemon(sim)
        self.wait("DECLINE calls", lambda: [c for c in sim.calls(type="DECLINE")
                                            if c["status"] == 202])
        for c in sim.calls(type="DECLINE"):
            self.assertEqual(c["body"]["decline"]["filters"]["refuse_seconds"], 5.0)
            self.assertTrue(c["headers"].get("Mesos-Stream-Id"))
        # No offer stays with the framework for long.
        self.wait("no outstanding offers",
                  lambda: (self.connected_framework(sim) or {}).get("offers", 1) == 0)
        self.assert_clean(sim, d)

    def test_updates_acknowledged(self):
        sim = self.sim()
        d = self.daemon(sim, DS_COUNT="0", K3S_SERVER_COUNT="0", K3S_AGENT_COUNT="0")
        fw = self.daemon_subscribed(sim, d)
        tasks = [sim.launch_task(fw["id"]) for _ in range(3)]

        def all_acked():
            sent = {e["event"]["update"]["status"]["uuid"] for e in sim.events(type="UPDATE")
                    if "event" in e and e["event"]["update"]["status"].get("uuid")
                    and e["event"]["update"]["status"]["task_id"]["value"] in tasks}
            acked = {c["body"]["acknowledge"]["uuid"] for c in sim.calls(type="ACKNOWLEDGE")
                     if c["status"] == 202}
            return len(sent) >= 3 and sent <= acked and not sim.unacked_updates()
        # Tasks the daemon does not own are killed (while staging or after
        # they ran, depending on timing); every update of them with a uuid is
        # acknowledged, once.
        self.wait("the foreign tasks killed", lambda: not [
            t for t in sim.state(include_agents=False)["tasks"]
            if t["task_id"] in tasks and t["state"] != "TASK_KILLED"])
        self.wait("every update acknowledged", all_acked)
        acks = [c for c in sim.calls(type="ACKNOWLEDGE")]
        uuids = [c["body"]["acknowledge"]["uuid"] for c in acks]
        self.assertEqual(len(uuids), len(set(uuids)), "an update was acknowledged twice")
        self.assertEqual(sim.check_unacked(), [])
        # launch_task takes resources from an outstanding offer and rescinds
        # it; a DECLINE of that offer already on the wire is a race no
        # framework can avoid (the master ignores it).
        self.assert_clean(sim, d, expected=("offer_reused",))

    def test_framework_id_removal(self):
        """DELETE /api/m3s/v0/framework: while subscribed the master has the
        framework and nothing changes; while the master refuses us, the id is
        dropped and the next subscription registers a new framework."""
        import urllib.request
        sim = self.sim()
        port = free_port()
        d = self.daemon(sim, FRAMEWORK_PORT=str(port), DS_COUNT="0", K3S_SERVER_COUNT="0",
                        K3S_AGENT_COUNT="0")
        fw = self.daemon_subscribed(sim, d)
        # The API starts beside the subscription, not before it: on a busy
        # machine SUBSCRIBED can come first.
        self.wait("the REST API listening", lambda: "REST API on http://127.0.0.1:%d" % port
                  in d.text())

        def delete():
            req = urllib.request.Request("http://127.0.0.1:%d/api/m3s/v0/framework" % port,
                                         method="DELETE")
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        self.assertEqual(delete(), (200, b""))
        time.sleep(0.5)
        self.assertEqual(self.connected_framework(sim)["id"], fw["id"])
        sim.fail_next_subscribes(1000)
        since = self.last_seq(sim)
        sim.drop_stream()
        self.wait("a refused SUBSCRIBE", lambda: [
            c for c in sim.calls(since=since, type="SUBSCRIBE") if c["status"] == 503])
        self.assertEqual(delete(), (200, b""))
        sim.fail_next_subscribes(0)
        fw2 = self.wait("a new framework", lambda: (lambda f: f if f and f["id"] != fw["id"]
                                                    else None)(self.connected_framework(sim)))
        self.wait("the new id in Redis", lambda: fw2["id"].encode() in
                  self.redis().command("GET", "m3s:framework"))
        # The new registration is what the operator asked for.
        self.assert_clean(sim, d, expected=("subscribe_without_id",))

    def test_stream_drop(self):
        sim = self.sim()
        d = self.daemon(sim)
        self.resubscribed_after(sim, d, "stream drop", lambda: sim.drop_stream())
        self.resubscribed_after(sim, d, "stream end", lambda: sim.drop_stream(clean=True))
        self.assert_clean(sim, d)

    def test_silent_master(self):
        sim = self.sim()
        d = self.daemon(sim)
        _, _, took = self.resubscribed_after(sim, d, "silent master (no heartbeats)",
                                             lambda: sim.pause_heartbeats())
        sim.resume_heartbeats()
        # The watchdog waits five heartbeat intervals before it gives up.
        self.assertGreaterEqual(took, 5 * HEARTBEAT * 0.9)
        self.assertIn("heartbeat intervals", d.text())
        self.assert_clean(sim, d)

    def test_master_restart(self):
        sim = self.sim(reregister_delay=0.5)
        d = self.daemon(sim)
        self.resubscribed_after(sim, d, "master restart", lambda: sim.restart())
        self.assert_clean(sim, d)

    def test_redirect_to_leader(self):
        leader = self.sim()
        follower = self.sim()
        d = self.daemon(follower)
        follower.redirect("127.0.0.1:%d" % leader.port)
        fw = self.wait("subscribed at the leader", lambda: self.connected_framework(leader))
        # The master answers 307 before it parses the body, so these calls
        # have no type in the simulator's log.
        redirected = [c for c in follower.calls() if c["status"] == 307]
        self.assertTrue(redirected)
        measured.append(("redirect to the leader (307 -> SUBSCRIBE there)",
                         self.subscribed(leader)[0]["time"] - redirected[0]["time"]))
        self.assertTrue(fw["id"])
        self.assertIn("following the redirect", d.text())
        self.assert_clean(leader, d)
        self.assertEqual(follower.violations(), [])

    def test_malformed_frames(self):
        sim = self.sim()
        d = self.daemon(sim, MESOS_MAX_EVENT_SIZE="65536")
        for kind in ("bad-length", "no-length", "bad-json", "oversize", "truncate"):
            self.resubscribed_after(sim, d, "malformed frame (%s)" % kind,
                                    lambda: sim.send_malformed(kind=kind, size=10 ** 9))
        self.assertIn("dropping the subscription", d.text())
        self.assert_clean(sim, d)

    def test_503_on_subscribe(self):
        sim = self.sim()
        d = self.daemon(sim)

        def inject():
            sim.fail_next_subscribes(3)
            sim.drop_stream()
        self.resubscribed_after(sim, d, "three 503s on subscribe", inject)
        self.assertEqual(len([c for c in sim.calls(type="SUBSCRIBE") if c["status"] == 503]), 3)
        self.assert_clean(sim, d)

    def test_framework_removed_registers_anew(self):
        sim = self.sim()
        d = self.daemon(sim)
        fw, fw2, _ = self.resubscribed_after(sim, d, "framework removed",
                                             lambda: sim.remove_framework(), same_id=False)
        self.assertNotEqual(fw["id"], fw2["id"])
        self.assertIn("REMOVED", d.text())
        # The first re-subscription with the old id is refused, by design, and
        # a call the daemon sent before it learnt of the removal may have met
        # "Framework cannot be found".
        self.assertEqual(len(sim.violations(kind="subscribe_refused")), 1)
        self.assert_clean(sim, d, expected=("subscribe_refused",))

    def test_basic_auth(self):
        sim = self.sim(auth="m3s:s3cret-pw")
        bad = self.daemon(sim, MESOS_USERNAME="m3s", MESOS_PASSWORD="wrong-pw")
        # 401 comes before the body is parsed: these calls have no type.
        self.wait("a 401", lambda: [c for c in sim.calls() if c["status"] == 401])
        self.wait("the refusal logged", lambda: "refused the subscription with HTTP 401" in bad.text())
        self.assertEqual(bad.stop(), 0)
        self.assertNotIn("wrong-pw", bad.text())
        self.assertTrue(sim.violations(kind="auth_failed"))
        sim.reset_violations()
        good = self.daemon(sim, MESOS_USERNAME="m3s", MESOS_PASSWORD="s3cret-pw",
                           MESOS_PRINCIPAL="m3s")
        self.wait("SUBSCRIBED with credentials", lambda: self.connected_framework(sim))
        self.assertNotIn("s3cret-pw", good.text())
        self.assert_clean(sim, good)

    def tls_files(self):
        """A throwaway self-signed certificate for 127.0.0.1."""
        d = tempfile.mkdtemp(prefix="m3s-tls-")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
        self.addCleanup(lambda: [os.unlink(cert), os.unlink(key), os.rmdir(d)])
        return cert, key

    def test_mesos_ssl(self):
        sim = self.sim(tls=self.tls_files())
        # SKIP_SSL=true (the default): the self-signed master is accepted.
        d = self.daemon(sim, MESOS_SSL="true")
        self.daemon_subscribed(sim, d)
        self.assertEqual(d.stop(), 0)
        # SKIP_SSL=false: the certificate is verified and refused, clearly,
        # and the daemon keeps retrying without ever subscribing.
        since = self.last_seq(sim)
        strict = self.daemon(sim, MESOS_SSL="true", SKIP_SSL="false")
        self.wait("the certificate refusal logged",
                  lambda: "connection to the master" in strict.text() and
                  "certificate" in strict.text().lower())
        self.assertEqual(sim.calls(since=since), [])
        self.assert_clean(sim, strict)

    def test_sigkill_restart_keeps_framework_id(self):
        # The framework id lives in Redis: a daemon killed without warning and
        # started again subscribes with the same id, so Mesos hands it its
        # tasks back.
        sim = self.sim()
        d = self.daemon(sim)
        fw = self.daemon_subscribed(sim, d)
        self.wait("the framework record in Redis",
                  lambda: fw["id"].encode() in self.redis().command("GET", "m3s:framework"))
        d.kill9()
        d2 = self.daemon(sim)
        self.wait("the id restored", lambda: "framework id %s restored from Redis" % fw["id"]
                  in d2.text())
        fw2 = self.daemon_subscribed(sim, d2)
        self.assertEqual(fw2["id"], fw["id"])
        self.assertEqual(len(sim.framework_ids()), 1, "a second framework was registered")
        # Secrets never reach Redis.
        self.assertNotIn(b"Password", self.redis().command("GET", "m3s:framework"))
        self.assert_clean(sim, d2)

    def test_redis_outage(self):
        # Redis goes away while the daemon runs and something must be
        # persisted meanwhile (the master removes the framework, so a new id
        # is registered): the daemon keeps running, and once Redis is back the
        # record holds what it would have held without the outage.
        sim = self.sim()
        r = self.redis()
        d = self.daemon(sim)
        fw = self.daemon_subscribed(sim, d)
        self.wait("the framework record in Redis",
                  lambda: fw["id"].encode() in r.command("GET", "m3s:framework"))
        # A task whose TASK_RUNNING is acknowledged: the agent sends a task's
        # updates one at a time, so a TASK_FAILED would otherwise queue
        # behind a TASK_RUNNING that cannot be acknowledged without Redis.
        def running_acked():
            acked = {c["body"]["acknowledge"]["uuid"] for c in sim.calls(type="ACKNOWLEDGE")
                     if isinstance(c["body"], dict)}
            return [e["event"]["update"]["status"]["task_id"]["value"]
                    for e in sim.events(type="UPDATE") if "event" in e
                    and e["event"]["update"]["status"]["state"] == "TASK_RUNNING"
                    and e["event"]["update"]["status"]["uuid"] in acked]
        running = self.wait("a running task, acknowledged", running_acked)
        r.kill()
        # An update whose acknowledgement must wait for Redis; the framework
        # it belongs to is then removed: the new framework must not
        # acknowledge it (the simulator flags ack_wrong_task).
        sim.fail_task(running[0])
        self.wait("the failure read", lambda: "update: task %s TASK_FAILED" % running[0]
                  in d.text())
        sim.remove_framework()
        self.faults = getattr(self, "faults", 0) + 1
        fw2 = self.wait("a new framework", lambda: (lambda f: f if f and f["id"] != fw["id"]
                                                     else None)(self.connected_framework(sim)))
        self.wait("the daemon to read it", lambda: d.subscribed_count(fw2["id"]) > 0)
        self.assertIsNone(d.proc.poll(), "the daemon died during the Redis outage")
        self.wait("the outage noticed", lambda: "Redis connection to" in d.text())
        r.start()
        self.wait("the new id in Redis after the outage",
                  lambda: fw2["id"].encode() in r.command("GET", "m3s:framework"), timeout=60)
        self.wait("the old framework's acknowledgement dropped",
                  lambda: "acknowledgement of an update to framework %s dropped" % fw["id"]
                  in d.text())
        self.assertEqual(len(sim.violations(kind="subscribe_refused")), 1)
        self.assert_clean(sim, d, expected=("subscribe_refused",))

    def test_restart_keeps_framework_and_tasks(self):
        # The daemon stops and starts again while the master keeps its
        # framework (failover): a clean stop must not tear it down.
        sim = self.sim()
        d = self.daemon(sim)
        fw = self.daemon_subscribed(sim, d)
        self.assertEqual(d.stop(), 0)
        teardown = sim.calls(type="TEARDOWN")
        self.assertEqual(teardown, [], "a stopping daemon must not tear the framework down")
        self.wait("the master notices", lambda: not self.connected_framework(sim))
        self.assertIn(fw["id"], sim.framework_ids())
        self.assertEqual(sim.violations(), [])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    if measured:
        print("\nfault injected -> daemon subscribed again (polled every 20 ms):")
        for fault, took in measured:
            print("  %-45s %6.2f s" % (fault, took))
    failed = len(result.failures) + len(result.errors)
    print("integration: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
