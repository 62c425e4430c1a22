"""A real Mesos 1.11 master and agents for the tests, through the scripts in
../shared/mesos (install.sh, start-cluster.sh, stop-cluster.sh; read their
README), and the checks of what the master logged.

Everything this module starts is stopped with stop-cluster.sh, by the
recorded PIDs, in every exit path the process sees (test cleanup, atexit,
SIGTERM/SIGINT).
"""
import atexit
import datetime
import glob
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
SHARED = os.path.abspath(os.environ.get("M3S_SHARED", os.path.join(ROOT, "..", "shared")))
SCRIPTS = os.path.join(SHARED, "mesos")
MESOS = os.environ.get("M3S_MESOS_DIR", "/opt/mesos-1.11.0")

# What the master logs about a call it dropped, ignored or refused (the
# issue's list, with any "Cannot ...", e.g. "Cannot send status update
# acknowledgement"). ALLOWED holds the only exceptions: the start-up warning
# about the loopback address, and lines about what an agent sent the master,
# never about a framework's call.
BAD = re.compile(r"Dropping|Ignoring|invalid|TASK_ERROR|Cannot|Failed to validate")
ALLOWED = (re.compile(r"Master bound to loopback interface! Cannot communicate with remote"),
           # An agent's resource report with nothing new.
           re.compile(r"Ignoring update on agent .* as it reports no changes"),
           # After a master restart an agent re-sends a task's update before it
           # has re-registered; the master ignores it until then.
           re.compile(r"Ignoring status update .* from unknown agent "),
           # An agent that re-registers with a restarted master before our
           # framework has subscribed again: the master cannot tell a framework
           # it does not know yet (the framework's reconciliation does).
           re.compile(r"Dropping update \w+ for task \S+ of framework \S+ 'Unknown agent "
                      r"reregistered' for unknown framework "),
           # An agent's own registration retries.
           re.compile(r"Ignoring (re)?register agent message from "),
           # An agent reporting a task's executor gone after the task's end
           # was acknowledged and the task removed.
           re.compile(r"Ignoring unknown exited executor "))
# The master's counters of refused updates and acknowledgements.
INVALID_COUNTERS = ("master/invalid_status_updates", "master/invalid_status_update_acknowledgements",
                    "master/invalid_operation_status_updates",
                    "master/invalid_operation_status_update_acknowledgements",
                    "master/invalid_framework_to_executor_messages")

LIVE = set()
STARTING = set()    # start-cluster.sh processes still running


def available():
    """Why the real-Mesos tests cannot run here, or None."""
    if not os.path.isfile(os.path.join(SCRIPTS, "start-cluster.sh")):
        return "../shared/mesos is absent (%s)" % SCRIPTS
    if os.geteuid() != 0:
        return "start-cluster.sh needs root (agent mount namespaces)"
    return None


def sweep_orphans():
    """Stops the clusters of earlier runs that were killed without a chance
    to clean up (SIGKILL, e.g. a ctest timeout): each cluster directory
    names the test process that owns it."""
    for owner in glob.glob(os.path.join(tempfile.gettempdir(), "m3s-realmesos-*", "owner")):
        d = os.path.dirname(owner)
        if os.path.exists(os.path.join(d, "stopped")):
            continue                           # kept for its logs
        try:
            with open(owner) as f:
                pid = int(f.read())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"test_realmesos" in f.read():
                    continue                   # its owner still runs
        except (OSError, ValueError):
            pass
        print("realmesos: stopping the cluster an earlier run left in %s" % d)
        subprocess.run([os.path.join(SCRIPTS, "stop-cluster.sh"), d],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        open(os.path.join(d, "stopped"), "w").close()


def install():
    """install.sh (idempotent: a few seconds when already installed)."""
    subprocess.run([os.path.join(SCRIPTS, "install.sh"), MESOS], check=True,
                   stdout=subprocess.DEVNULL, timeout=900)


def _stop_all(*_):
    # A start-cluster.sh that is interrupted stops what it started.
    for p in list(STARTING):
        p.terminate()
        p.wait(timeout=60)
    for c in list(LIVE):
        c.stop()


# Callables the signal handler runs first (a test registers what it
# started: the daemon, redis-server).
CLEANUPS = []


def _on_signal(signum, _frame):
    for fn in list(CLEANUPS):
        try:
            fn()
        except Exception:  # noqa: BLE001  (the clusters must still be stopped)
            pass
    _stop_all()
    # os._exit: a SystemExit raised inside a test would be recorded as that
    # test's error by unittest, which would go on with the next test.
    os._exit(128 + signum)


atexit.register(_stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _clean_env():
    """The environment without MESOS_* / LIBPROCESS_* (Mesos reads its flags
    from MESOS_<FLAG>), as start-cluster.sh does."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MESOS_") and not k.startswith("LIBPROCESS_")}


def glog_time(line):
    """Epoch seconds of a glog line (I20261206 20:39:59.771744 ...), local time."""
    t = datetime.datetime.strptime(line[1:24], "%Y%m%d %H:%M:%S.%f")
    return t.timestamp()


class Cluster:
    """One master and N agents from start-cluster.sh, in a fresh directory."""

    def __init__(self, agents=2, master_flags=(), agent_flags=()):
        self.dir = os.path.realpath(tempfile.mkdtemp(prefix="m3s-realmesos-"))
        args = [os.path.join(SCRIPTS, "start-cluster.sh"), "--agents", str(agents),
                "--dir", self.dir, "--mesos", MESOS]
        args += ["--master-flag=" + f for f in master_flags]
        args += ["--agent-flag=" + f for f in agent_flags]
        LIVE.add(self)
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        STARTING.add(p)
        try:
            out, err = p.communicate(timeout=300)
        finally:
            STARTING.discard(p)
        if p.returncode != 0:
            raise RuntimeError("start-cluster.sh failed:\n" + err[-4000:])
        with open(os.path.join(self.dir, "owner"), "w") as f:
            f.write("%d\n" % os.getpid())
        env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        self.master = env["MESOS_MASTER"]
        self.procs = []          # what this module launched itself (reaped at stop)
        self.stopped = False

    # -- the master's HTTP endpoints -------------------------------------------

    def get(self, path, timeout=10):
        with urllib.request.urlopen("http://%s%s" % (self.master, path), timeout=timeout) as r:
            return json.loads(r.read())

    def frameworks(self):
        return self.get("/master/frameworks")["frameworks"]

    def active_agents(self):
        return [a for a in self.get("/master/slaves")["slaves"] if a.get("active")]

    def metrics(self):
        return self.get("/metrics/snapshot")

    # -- processes ---------------------------------------------------------------

    def pid(self, name):
        with open(os.path.join(self.dir, "pids", name)) as f:
            return int(f.read())

    def _argv(self, name):
        with open("/proc/%d/cmdline" % self.pid(name), "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]

    def _launch(self, name, argv, log):
        with open(os.path.join(self.dir, log), "ab") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=_clean_env(),
                                 start_new_session=True)
        self.procs.append(p)
        with open(os.path.join(self.dir, "pids", name), "w") as f:
            f.write("%d\n" % p.pid)
        return p

    def _wait_gone(self, pid, what, timeout=60):
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                raise RuntimeError("%s (pid %d) did not exit" % (what, pid))
            time.sleep(0.05)

    def restart_master(self):
        """SIGTERM to the master, then the same command line again (same
        port and work_dir; --registry=in_memory, so it forgets everything).
        Its log goes to a new file master.log.restart<N>.

        The real master has been seen to hang in its start-up (between its
        version lines and "Using 'hierarchical' allocator", serving 404s,
        for minutes) on this busy machine. Such a master is not what the
        test is about: its threads' stacks go to stderr for the record, it
        is killed (we started it, by PID) and started again, at most three
        times in all."""
        argv = self._argv("master")
        for attempt in range(3):
            pid = self.pid("master")
            os.kill(pid, signal.SIGTERM if attempt == 0 else signal.SIGKILL)
            self._wait_gone(pid, "the master")
            n = len(glob.glob(os.path.join(self.dir, "master.log.restart*"))) + 1
            log = "master.log.restart%d" % n
            p = self._launch("master", argv, log)
            deadline = time.monotonic() + 45
            while time.monotonic() < deadline:
                try:
                    if self.metrics().get("master/elected") == 1:
                        return
                except OSError:
                    pass
                time.sleep(0.1)
            with open(os.path.join(self.dir, log), errors="replace") as f:
                tail = f.read()[-2000:]
            stacks = subprocess.run(["gdb", "-batch", "-p", str(p.pid), "-ex",
                                     "thread apply all bt 12"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, timeout=60).stdout \
                if shutil.which("gdb") else "(no gdb for the stacks)"
            sys.stderr.write("the restarted master (pid %d) was not elected in 45 s; "
                             "its log:\n%s\nits threads:\n%s\n" % (p.pid, tail, stacks[-6000:]))
        raise RuntimeError("the restarted master was not elected, three times")

    def kill_agent(self, i):
        pid = self.pid("agent-%d" % i)
        os.kill(pid, signal.SIGKILL)
        self._wait_gone(pid, "agent %d" % i)

    def start_agent(self, i, ip, port):
        """A new agent (fresh work dir, so a new agent id) with agent 1's
        flags but its own address, in the mount namespace start-cluster.sh
        uses where cgroup2 is mounted outside /sys/fs/cgroup."""
        argv = self._argv("agent-1")
        d = os.path.join(self.dir, "agent-%d" % i)
        for sub in ("work", "runtime", "fetch-cache"):
            os.makedirs(os.path.join(d, sub))
        repl = {"--ip": ip, "--hostname": ip, "--port": str(port),
                "--work_dir": d + "/work", "--runtime_dir": d + "/runtime",
                "--fetcher_cache_dir": d + "/fetch-cache"}
        argv = [("%s=%s" % (a.split("=", 1)[0], repl[a.split("=", 1)[0]])
                 if a.split("=", 1)[0] in repl else a) for a in argv]
        mounts = []
        with open("/proc/mounts") as f:
            for line in f:
                fields = line.split()
                if fields[2] == "cgroup2" and fields[1] != "/sys/fs/cgroup":
                    mounts.append(fields[1])
        if mounts:
            mounts.sort(key=len, reverse=True)
            argv = ["unshare", "-m", "--propagation", "unchanged", "--", "/bin/sh", "-c",
                    'n=$1; shift; while [ "$n" -gt 0 ]; do mount --make-private "$1" || exit 96; '
                    'umount "$1" 2>/dev/null || umount -l "$1" || exit 97; shift; n=$((n-1)); '
                    'done; exec "$@"', "mesos-agent-ns", str(len(mounts))] + mounts + argv
        self._launch("agent-%d" % i, argv, "agent-%d.log" % i)

    def stop(self):
        if self.stopped:
            return
        self.stopped = True
        LIVE.discard(self)
        subprocess.run([os.path.join(SCRIPTS, "stop-cluster.sh"), self.dir],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        open(os.path.join(self.dir, "stopped"), "w").close()
        for p in self.procs:
            p.wait(timeout=30)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the master's log ------------------------------------------------------------

    def log_lines(self, restarted=False):
        """Every line the master(s) of this cluster logged, in order (only
        the restarted masters' with restarted=True)."""
        out = []
        names = sorted(glob.glob(os.path.join(self.dir, "master.log.restart*")))
        for name in ([] if restarted else ["master.log"]) + names:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                out += f.read().splitlines()
        return out

    def log_problems(self):
        """Master log lines about a dropped, ignored or invalid call."""
        return [line for line in self.log_lines()
                if BAD.search(line) and not any(a.search(line) for a in ALLOWED)]

    def invalid_counters(self):
        """The master's invalid-update/acknowledgement counters that are not 0.
        An update an agent sends while its framework is disconnected (our
        daemon killed or restarting) counts as invalid too; the agent sends
        it again later. So does the second copy of an update the agent sent
        twice (it resends its pending updates when it re-registers with a
        restarted master): the first copy is acknowledged and its task
        removed, then the master forwards the second and cannot find the
        task. Those, logged "for a disconnected framework" and "Could not
        lookup task for status update", are not counted here: neither is
        about a call of ours."""
        m = self.metrics()
        lines = self.log_lines()
        away = sum(1 for line in lines
                   if "Received status update" in line and "for a disconnected framework" in line)
        twice = sum(1 for line in lines if "Could not lookup task for status update" in line)
        m["master/invalid_status_updates"] = (m.get("master/invalid_status_updates", 0)
                                              - away - twice)
        return {k: m[k] for k in INVALID_COUNTERS if m.get(k, 0) != 0}

    def unacknowledged(self):
        """Status updates the master forwarded to a framework with a UUID
        and never saw acknowledged: [(task id, state, uuid)]."""
        fwd = re.compile(r"Forwarding status update (\w+) \(Status UUID: ([0-9a-f-]+)\) for task (\S+)")
        ack = re.compile(r"Processing ACKNOWLEDGE call for status ([0-9a-f-]+) for task (\S+)")
        sent, acked = {}, set()
        for line in self.log_lines():
            m = fwd.search(line)
            if m:
                sent[(m.group(3), m.group(2))] = m.group(1)
            m = ack.search(line)
            if m:
                acked.add((m.group(2), m.group(1)))
        return [(t, s, u) for (t, u), s in sent.items() if (t, u) not in acked]

    def launches(self):
        """[(time, task id, agent id)] of every task the master launched."""
        pat = re.compile(r"Launching task (\S+) of framework \S+ .* on agent (\S+)")
        out = []
        for line in self.log_lines():
            m = pat.search(line)
            if m:
                out.append((glog_time(line), m.group(1), m.group(2)))
        return out

    def failures(self):
        """{task id: time} of the TASK_FAILED updates the agents sent."""
        pat = re.compile(r"Status update TASK_FAILED \(Status UUID: \S+\) for task (\S+)")
        out = {}
        for line in self.log_lines():
            m = pat.search(line)
            if m and m.group(1) not in out:
                out[m.group(1)] = glog_time(line)
        return out


class SchedulerClient:
    """A second framework, subscribed by hand over the v1 scheduler API, to
    make wrong calls on purpose (the checker's self-test)."""

    def __init__(self, master, name="selftest"):
        host, port = master.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        body = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {
            "user": "root", "name": name, "roles": [name],
            "capabilities": [{"type": "MULTI_ROLE"}]}}}
        self.conn.request("POST", "/api/v1/scheduler", json.dumps(body),
                          {"Content-Type": "application/json", "Accept": "application/json"})
        self.resp = self.conn.getresponse()
        if self.resp.status != 200:
            raise RuntimeError("SUBSCRIBE answered %d" % self.resp.status)
        self.stream = self.resp.getheader("Mesos-Stream-Id")
        # The first RecordIO record is SUBSCRIBED with the framework id.
        length = b""
        while not length.endswith(b"\n"):
            length += self.resp.read(1)
        event = json.loads(self.resp.read(int(length)))
        self.id = event["subscribed"]["framework_id"]["value"]
        self.master = master

    def call(self, body):
        body["framework_id"] = {"value": self.id}
        req = urllib.request.Request("http://%s/api/v1/scheduler" % self.master,
                                     data=json.dumps(body).encode(), method="POST")
        req.add_header("Content-Type", "application/json")
        req.add_header("Mesos-Stream-Id", self.stream)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def close(self):
        self.conn.close()
