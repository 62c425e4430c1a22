#!/usr/bin/env python3
"""The README's main command, run as a new user runs it.

scripts/run.sh is started in a session of its own (so that the test can
find everything it started by its process group and send the group a
Ctrl-C) with the already-built daemon (M3S_BIN) instead of a new build.
Each test checks what the script printed against what really runs:

- local mode (no MESOS_MASTER): the script starts redis-server, the Mesos
  simulator and the daemon; the printed URLs answer with the printed
  credentials (and refuse without them), and so does the image's
  HEALTHCHECK script (docker/healthcheck.sh); the status endpoint shows the
  datastore, the server and the agent RUNNING; after SIGINT the script
  exits 0 and nothing it started is left running, its scratch directory
  is gone and its ports are closed.
- SIGINT to the script alone (not its group): same clean stop, through the
  script's own trap.
- external mode (MESOS_MASTER and REDIS_SERVER set, no AUTH_*): the script
  uses them, starts no simulator and no Redis, warns that it generated the
  credentials, and leaves the test's own master and Redis running when it
  stops.

Run: M3S_BIN=build/m3s python3 tests/quickstart/test_quickstart.py -v
"""
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests"))
from ports import free_port  # noqa: E402
RUN = os.path.join(ROOT, "scripts", "run.sh")
BIN = os.path.abspath(os.environ.get("M3S_BIN", os.path.join(ROOT, "build", "m3s")))
START_TIMEOUT = 120   # setup.sh's check plus start-up; nothing is built
CLUSTER_TIMEOUT = 60  # datastore -> server -> agent on the simulator
STOP_TIMEOUT = 30

# Variables a new user's shell would not have; the test's own environment
# (ctest, CI) must not leak into the script.
CLEARED = ("MESOS_MASTER", "REDIS_SERVER", "AUTH_USERNAME", "AUTH_PASSWORD",
           "FRAMEWORK_PORT", "FRAMEWORK_BIND", "FRAMEWORK_HOSTNAME", "SSL_CRT_BASE64",
           "SSL_KEY_BASE64", "LOGLEVEL", "FRAMEWORK_NAME", "REDIS_PASSWORD", "REDIS_DB")


def port_open(port, host="127.0.0.1"):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def get(url, cred=None, timeout=10):
    """(status, headers, body) of a GET."""
    req = urllib.request.Request(url)
    if cred:
        req.add_header("Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def proc_group(pid):
    """Process group of pid, or None when it is gone (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    if fields[0] == "Z":
        return None
    return int(fields[2])


def group_members(pgid):
    """Live processes (not zombies) whose process group is pgid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and proc_group(int(d)) == pgid:
            out.append(int(d))
    return out


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


class Script:
    """scripts/run.sh in a new session, its output collected by a thread."""

    def __init__(self, env):
        self.tmp = tempfile.mkdtemp(prefix="m3s-quickstart-")
        full = {k: v for k, v in os.environ.items() if k not in CLEARED}
        full.update(env)
        full["M3S_BIN"] = BIN
        full["TMPDIR"] = self.tmp      # the script's scratch directory goes here
        self.proc = subprocess.Popen([RUN], cwd=self.tmp, env=full, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.pgid = self.proc.pid      # a session leader leads its group
        self.lines = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            with self.lock:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def text(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.text(), re.M)
            if m:
                return m
            if self.proc.poll() is not None:
                self.reader.join(5)
                m = re.search(pattern, self.text(), re.M)
                if m:
                    return m
                raise AssertionError("run.sh exited with %d before printing %r:\n%s"
                                     % (self.proc.returncode, pattern, self.text()))
            time.sleep(0.1)
        raise AssertionError("run.sh did not print %r within %ds:\n%s"
                             % (pattern, timeout, self.text()))

    def banner(self):
        """What the script printed: URLs, credentials, commands, processes."""
        self.wait_for(r"^Ctrl-C stops everything", START_TIMEOUT)
        t = self.text()

        def field(name):
            m = re.search(r"^  %s +(.*)$" % name, t, re.M)
            if not m:
                raise AssertionError("no %r line in the banner:\n%s" % (name, t))
            return m.group(1).strip()
        b = {k: field(k) for k in ("REST API", "status page", "metrics", "health", "user",
                                   "password", "try", "kubeconfig", "nodes", "processes",
                                   "log")}
        b["health"] = b["health"].split()[0]
        b["password_note"] = b["password"]
        b["password"] = b["password"].split()[0]
        b["procs"] = {}
        for item in b["processes"].split(","):
            name, pid = item.split()
            b["procs"][name] = int(pid)
        return b

    def stop(self, sig, to_group):
        if to_group:
            os.killpg(self.pgid, sig)   # what a terminal's Ctrl-C does
        else:
            os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(STOP_TIMEOUT)
        finally:
            self.reader.join(5)
            self.proc.stdout.close()

    def cleanup(self):
        """Only on a failed test: whatever of the group is still there."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.proc.stdout.close()
        for pid in group_members(self.pgid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class QuickstartTest(unittest.TestCase):
    def start(self, **env):
        s = Script(env)
        self.addCleanup(s.cleanup)
        return s

    def check_processes(self, s, b, expected):
        self.assertEqual(sorted(b["procs"]), sorted(expected), b["processes"])
        marks = {"redis-server": "redis-server", "mesos-simulator": "mesos_sim.py", "m3s": BIN}
        for name, pid in b["procs"].items():
            self.assertEqual(proc_group(pid), s.pgid, "%s (%d) is not in the script's group"
                             % (name, pid))
            self.assertIn(marks[name], cmdline(pid), name)

    def cluster_running(self, api, cred):
        """Waits until status/m3s shows each role's task TASK_RUNNING."""
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        body = ""
        while time.monotonic() < deadline:
            code, _, body = get(api + "status/m3s", cred)
            if code == 200:
                st = json.loads(body)
                ds = list(st["Datastore"].values())
                sv = [t["Status"] for t in st["Server"].values()]
                ag = [t["Status"] for t in st["Agent"].values()]
                if (ds == ["TASK_RUNNING"] and sv == ["TASK_RUNNING"]
                        and ag == ["TASK_RUNNING"]):
                    return st
            time.sleep(0.2)
        self.fail("the cluster did not come up within %ds; last status: %s"
                  % (CLUSTER_TIMEOUT, body))

    def check_urls(self, b, cred):
        port = int(re.search(r":(\d+)/", b["REST API"]).group(1))
        base = "http://127.0.0.1:%d" % port
        self.assertEqual(b["REST API"], base + "/api/m3s/v0/")
        self.assertEqual(b["status page"], base + "/")
        self.assertEqual(b["metrics"], base + "/metrics")
        self.assertEqual(b["health"], base + "/health")

        code, _, _ = get(b["health"])
        self.assertEqual(code, 200)
        for url in (b["REST API"] + "status/m3s", b["metrics"], b["status page"]):
            code, _, _ = get(url)
            self.assertEqual(code, 401, url + " answers without credentials")
            wrong = cred[:-1] + ("y" if cred.endswith("x") else "x")
            code, _, _ = get(url, wrong)
            self.assertEqual(code, 401, url + " answers with a wrong password")
        code, hdr, body = get(b["metrics"], cred)
        self.assertEqual(code, 200, body)
        self.assertIn("m3s_mesos_subscribed 1", body.splitlines())
        code, hdr, body = get(b["status page"], cred)
        self.assertEqual(code, 200, body[:300])
        self.assertIn("text/html", hdr.get("Content-Type", ""))

        # The printed commands work when pasted into a shell.
        out = subprocess.run(["bash", "-c", b["try"]], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(set(json.loads(out.stdout)),
                         {"Server", "Agent", "API", "Datastore", "Outdated"})
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run(["bash", "-c", b["kubeconfig"] + " && test -f kubeconfig"],
                                 capture_output=True, text=True, timeout=30, cwd=d)
            self.assertEqual(out.returncode, 0, out.stderr)
        return port

    def check_kubernetes(self, b, cred):
        """status/k8s says ok; the printed kubeconfig and kubectl commands,
        pasted into a shell, list the server's and the agent's nodes, Ready.
        Returns the K3s API's (host, port): the host of the agent the server
        task landed on, one of the simulator's 127.0.<i>.1."""
        deadline = time.monotonic() + CLUSTER_TIMEOUT
        while get(b["REST API"] + "status/k8s", cred)[2] != "ok":
            self.assertLess(time.monotonic(), deadline, "status/k8s never said ok")
            time.sleep(0.2)
        kubectl = b["nodes"].split("  (")[0]
        self.assertEqual(kubectl, "kubectl --kubeconfig kubeconfig get nodes")
        with tempfile.TemporaryDirectory() as d:
            out = subprocess.run(["bash", "-c", b["kubeconfig"] + " && " + kubectl],
                                 capture_output=True, text=True, timeout=60, cwd=d)
            self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(d, "kubeconfig")) as f:
                server = re.search(r"^    server: https://(127\.0\.\d+\.1):(\d+)$", f.read(),
                                   re.M)
        self.assertTrue(server, "the kubeconfig names no https://127.0.<i>.1:<port> server "
                        "(an agent of the simulator)")
        rows = [line.split() for line in out.stdout.splitlines()[1:]]
        self.assertEqual(out.stdout.split()[:2], ["NAME", "STATUS"], out.stdout)
        self.assertEqual(sorted((r[0].split("-")[0], r[1]) for r in rows),
                         [("m3sagent.local", "Ready"), ("m3sserver.local", "Ready")],
                         out.stdout)
        return server.group(1), int(server.group(2))

    def check_stopped(self, s, b, rc, ports):
        self.assertEqual(rc, 0, s.text()[-3000:])
        self.assertIn("stopped everything this script started", s.text())
        for name, pid in b["procs"].items():
            self.assertIsNone(proc_group(pid), "%s (%d) still runs: %s"
                              % (name, pid, cmdline(pid)))
        left = group_members(s.pgid)
        self.assertEqual(left, [], "left running: %s" % [cmdline(p) for p in left])
        for p in ports:
            host, port = p if isinstance(p, tuple) else ("127.0.0.1", p)
            self.assertFalse(port_open(port, host), "%s:%d still open" % (host, port))
        self.assertEqual(os.listdir(s.tmp), [], "the script's scratch directory was left")

    def local(self, to_group):
        s = self.start()
        b = s.banner()
        self.assertIn("generated for this run", b["password_note"])
        self.assertEqual(b["user"], "m3s")
        self.assertRegex(b["password"], r"^[A-Za-z0-9]{24}$")
        self.check_processes(s, b, ["redis-server", "mesos-simulator", "m3s"])
        self.assertRegex(b["try"], r"^curl -u \"m3s:%s\" %sstatus/m3s$"
                         % (b["password"], re.escape(b["REST API"])))
        cred = "m3s:" + b["password"]
        api_port = self.check_urls(b, cred)
        self.assertEqual(self.healthcheck(api_port), 0)
        st = self.cluster_running(b["REST API"], cred)
        m = re.search(r"Redis 127\.0\.0\.1:(\d+)", s.text())
        redis_port = int(m.group(1))
        m = re.search(r"master http://127\.0\.0\.1:(\d+)", s.text())
        master_port = int(m.group(1))
        # The log is followed after the banner.
        s.wait_for(r"agent role is healthy", 10)
        self.assertIn("with a simulated Kubernetes", s.text())
        k3s_api = self.check_kubernetes(b, cred)
        print("cluster up: %s" % json.dumps(st), file=sys.stderr)
        rc = s.stop(signal.SIGINT, to_group)
        self.check_stopped(s, b, rc, [api_port, redis_port, master_port, k3s_api])
        self.assertEqual(self.healthcheck(api_port), 1)

    @staticmethod
    def healthcheck(port):
        """Exit code of the image's HEALTHCHECK script against this daemon."""
        env = {k: v for k, v in os.environ.items() if k not in CLEARED}
        env.update(FRAMEWORK_PORT=str(port), FRAMEWORK_BIND="127.0.0.1")
        return subprocess.run([os.path.join(ROOT, "docker", "healthcheck.sh")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=30).returncode

    def test_local_cluster_ctrl_c(self):
        self.local(to_group=True)

    def test_local_cluster_sigint_to_script(self):
        self.local(to_group=False)

    def test_external_master_and_redis(self):
        tmp = tempfile.mkdtemp(prefix="m3s-quickstart-ext-")
        self.addCleanup(shutil.rmtree, tmp, True)
        redis_port, k3s_port = free_port(), free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                  "--dir", tmp, "--save", ""], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (redis.terminate(), redis.wait(10)))
        sim = subprocess.Popen([sys.executable, "-u", os.path.join(ROOT, "tests", "mesos_sim",
                                                                    "mesos_sim.py"),
                                "--port", "0", "--agents", "3", "--k3s",
                                "--agent-hostname", "127.0.{i}.1",
                                "--ports", "31000-32000,%d-%d" % (k3s_port, k3s_port)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (sim.terminate(), sim.wait(10), sim.stdout.close()))
        master = sim.stdout.readline().decode().split()[-1]
        self.assertRegex(master, r"^127\.0\.0\.1:\d+$")
        deadline = time.monotonic() + 10
        while not port_open(redis_port):
            self.assertLess(time.monotonic(), deadline, "redis-server did not start")
            time.sleep(0.05)

        api_port = free_port()
        s = self.start(MESOS_MASTER=master, REDIS_SERVER="127.0.0.1:%d" % redis_port,
                       FRAMEWORK_BIND="127.0.0.1", FRAMEWORK_PORT=str(api_port),
                       FRAMEWORK_HOSTNAME="127.0.0.1", LOGLEVEL="info",
                       K3S_SERVER_PORT=str(k3s_port))
        b = s.banner()
        self.assertIn("warning: AUTH_USERNAME/AUTH_PASSWORD not set", s.text())
        self.assertNotIn("local simulated Mesos cluster", s.text())
        self.check_processes(s, b, ["m3s"])
        self.assertEqual(b["REST API"], "http://127.0.0.1:%d/api/m3s/v0/" % api_port)
        cred = "m3s:" + b["password"]
        self.check_urls(b, cred)
        self.cluster_running(b["REST API"], cred)
        self.assertEqual(self.check_kubernetes(b, cred)[1], k3s_port)
        rc = s.stop(signal.SIGINT, to_group=True)
        self.check_stopped(s, b, rc, [api_port])
        # What the test started is still there.
        self.assertIsNone(redis.poll())
        self.assertIsNone(sim.poll())
        self.assertTrue(port_open(redis_port))


if __name__ == "__main__":
    if not os.access(BIN, os.X_OK):
        sys.exit("M3S_BIN=%s is not an executable" % BIN)
    unittest.main()
