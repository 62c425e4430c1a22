#!/usr/bin/env python3
"""m3s-controller (the helper in the K3s server container) as a process,
against a real redis-server that each test starts on a free loopback port
with a password and a non-default database, and stops by PID.

The controller polls every 200 ms here (M3S_CONTROLLER__POLL_INTERVAL) and
backs off to at most 1 s, so each phase settles within a few seconds; the
waits are for conditions, with generous deadlines for the sanitizer builds.

Run: M3S_CONTROLLER_BIN=build/m3s-controller python3 tests/integration/test_controller.py -v
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, ".."))
import redis_sentinel  # noqa: E402
from ports import free_port  # noqa: E402
CONTROLLER = os.environ.get("M3S_CONTROLLER_BIN",
                            os.path.join(HERE, "..", "..", "build", "m3s-controller"))
BOUND = 30.0
PASSWORD = "pw-Zq81 with space"
DB = 5
PREFIX = "m3stest"
KEY = PREFIX + ":kubernetes_config"
# Stands for the client key in a real kubeconfig: it must never be logged.
KEY_MATERIAL = "client-key-data: LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY0NBUUVF"


def kubeconfig(server="https://127.0.0.1:6443", extra=""):
    return ("apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: QUJD\n"
            "    server: %s\n  name: default\ncontexts: []\nkind: Config\nusers:\n- name: default\n"
            "  user:\n    %s\n%s" % (server, KEY_MATERIAL, extra)).encode()


class Resp:
    """The smallest RESP client: exact bytes in and out, no redis-cli
    quoting between the test and the value."""

    def __init__(self, port, password=PASSWORD, db=DB):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        if password:
            self.call("AUTH", password)
        self.call("SELECT", str(db))

    def close(self):
        self.sock.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def call(self, *args):
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = a if isinstance(a, bytes) else a.encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(out)
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        raise RuntimeError("unexpected reply %r" % line)


class Redis:
    """A throwaway redis-server with a password. With persist, the data
    survives a restart (append-only file synced on every write), as a real
    deployment's would; without, a restart comes back empty."""

    def __init__(self, password=PASSWORD, persist=False, extra=()):
        self.extra = list(extra)  # more redis-server arguments (--replicaof ...)
        self.dir = tempfile.mkdtemp(prefix="m3s-ctl-redis-")
        self.port = free_port()
        self.password = password
        self.persist = persist
        self.proc = None

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--dir", self.dir]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else \
            ["--appendonly", "no"]
        if self.password:
            args += ["--requirepass", self.password]
        args += self.extra
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                Resp(self.port, self.password, 0).close()
                return self
            except (OSError, RuntimeError):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start on port %d" % self.port)
                time.sleep(0.05)

    def client(self):
        return Resp(self.port, self.password)

    def get(self, key=KEY, db=DB):
        c = Resp(self.port, self.password, db)
        try:
            return c.call("GET", key)
        finally:
            c.close()

    def cmd(self, *args):
        c = self.client()
        try:
            return c.call(*args)
        finally:
            c.close()

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def cleanup(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Controller:
    """m3s-controller as a child, its stderr in a file."""

    def __init__(self, port, kubeconfig_path, **env):
        self.log = tempfile.NamedTemporaryFile(prefix="m3s-ctl-log-", suffix=".txt", delete=False)
        base = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "M3S_CONTROLLER__REDIS_SERVER": "127.0.0.1:%d" % port,
            "M3S_CONTROLLER__REDIS_PASSWORD": PASSWORD,
            "M3S_CONTROLLER__REDIS_DB": str(DB),
            "M3S_CONTROLLER__REDIS_PREFIX": PREFIX,
            "M3S_CONTROLLER__LOGLEVEL": "debug",
            "M3S_CONTROLLER__POLL_INTERVAL": "200ms",
            "M3S_CONTROLLER__BACKOFF_MAX": "1s",
            "KUBECONFIG": kubeconfig_path,
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                base[k] = os.environ[k]
        base.update(env)
        self.proc = subprocess.Popen([CONTROLLER], env=base, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def text(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def count(self, needle):
        return self.text().count(needle)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return "hung"

    def cleanup(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.unlink(self.log.name)


class ControllerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="m3s-ctl-")
        self.path = os.path.join(self.tmp, "k3s.yaml")
        self.controllers = []
        self.servers = []

    def tearDown(self):
        for c in self.controllers:
            c.cleanup()
        for r in self.servers:
            r.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------

    def redis(self, password=PASSWORD, start=True, persist=False):
        r = Redis(password, persist)
        self.servers.append(r)
        return r.start() if start else r

    def controller(self, redis, **env):
        c = Controller(redis.port, self.path, **env)
        self.controllers.append(c)
        return c

    def wait(self, what, predicate, timeout=BOUND):
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = predicate()
            except (OSError, RuntimeError):
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                logs = "\n".join(c.text()[-4000:] for c in self.controllers)
                self.fail("timed out after %.0fs waiting for %s\n--- controller log ---\n%s"
                          % (timeout, what, logs))
            time.sleep(0.05)

    def write(self, content):
        """Replaces the file the way an editor or K3s would: in place."""
        with open(self.path, "wb") as f:
            f.write(content)

    def assert_clean_exit(self, c, sig=signal.SIGTERM):
        rc = c.stop(sig)
        text = c.text()
        self.assertEqual(rc, 0, "exit code %r\n%s" % (rc, text[-4000:]))
        self.assertNotIn("Sanitizer", text)
        self.assertNotIn("runtime error", text)
        self.assertIn("stopping on %s" % ("SIGINT" if sig == signal.SIGINT else "SIGTERM"), text)

    def assert_no_secrets(self, c):
        text = c.text()
        self.assertNotIn(PASSWORD, text)
        self.assertNotIn("Zq81", text)
        self.assertNotIn(KEY_MATERIAL.split(": ")[1], text)

    # -- tests --------------------------------------------------------------

    def test_lifecycle(self):
        """Absent file, publication, change, deletion, flush, another
        server's kubeconfig, Redis restart, SIGTERM: the key follows the file
        through all of it."""
        r = self.redis(persist=True)
        c = self.controller(r)

        # No file: the key stays absent and the log says why.
        self.wait("the log to say the file is missing",
                  lambda: "it does not exist yet" in c.text())
        time.sleep(1.0)  # five polls
        self.assertIsNone(r.get())
        self.assertIsNone(c.proc.poll())
        self.assertEqual(c.count("it does not exist yet"), 1, "logged once, not per poll")

        # The file appears: the key holds its bytes exactly.
        first = kubeconfig()
        self.write(first)
        self.wait("the first publication", lambda: r.get() == first)

        # The file changes: the key follows.
        second = kubeconfig(extra="preferences: {}\n")
        self.write(second)
        self.wait("the changed kubeconfig", lambda: r.get() == second)

        # The key is deleted, then the whole database flushed: re-published.
        self.assertEqual(r.cmd("DEL", KEY), 1)
        self.wait("re-publication after DEL", lambda: r.get() == second)
        r.cmd("FLUSHDB")
        self.wait("re-publication after FLUSHDB", lambda: r.get() == second)
        self.assertIn("the key was gone", c.text())

        # Another server's controller publishes its own kubeconfig: this one
        # does not fight over the key while its own file stays the same.
        other = kubeconfig(server="https://127.0.0.1:6443", extra="# other server\n")
        r.cmd("SET", KEY, other)
        time.sleep(1.0)
        self.assertEqual(r.get(), other)

        # Redis goes away and comes back with its data: the controller
        # survives an outage of several backoff steps, says so, and publishes
        # its file again on the new connection.
        r.kill()
        self.wait("the log to report the lost Redis",
                  lambda: "lost the connection to Redis" in c.text()
                  or "waiting for Redis" in c.text())
        time.sleep(2.5)
        self.assertIsNone(c.proc.poll(), "the controller died with Redis")
        r.start()
        self.wait("re-publication after the Redis restart", lambda: r.get() == second)
        self.assertIn("connected to Redis again", c.text())

        # Other keys of the database are not touched.
        r.cmd("SET", PREFIX + ":framework", "x")
        time.sleep(0.6)
        self.assertEqual(r.get(PREFIX + ":framework"), b"x")
        self.assertEqual(r.cmd("DBSIZE"), 2)

        self.assert_clean_exit(c)
        self.assert_no_secrets(c)
        if os.environ.get("M3S_TEST_SHOW_LOG"):
            print(c.text())

    def test_file_present_at_start_and_removed(self):
        """A file already there is published; removing it leaves the key
        (the daemon keeps using the last kubeconfig) and is logged."""
        self.write(kubeconfig())
        r = self.redis()
        c = self.controller(r)
        self.wait("the publication", lambda: r.get() == kubeconfig())
        os.unlink(self.path)
        self.wait("the log to say the file is missing",
                  lambda: "it does not exist yet" in c.text())
        time.sleep(0.6)
        self.assertEqual(r.get(), kubeconfig())
        self.assert_clean_exit(c, signal.SIGINT)

    def test_redis_absent_at_start(self):
        """Nobody listens on the port yet: the controller waits, logs why
        once, and publishes when Redis arrives."""
        self.write(kubeconfig())
        r = self.redis(start=False)
        c = self.controller(r)
        self.wait("the log to say Redis is unreachable",
                  lambda: "waiting for Redis at 127.0.0.1:%d" % r.port in c.text())
        time.sleep(2.0)
        self.assertIsNone(c.proc.poll())
        self.assertEqual(c.count("waiting for Redis at"), 1, "logged once per state")
        self.assertGreaterEqual(c.count("still failing"), 2, "it kept trying")
        r.start()
        self.wait("the publication", lambda: r.get() == kubeconfig())
        self.assert_clean_exit(c)

    def test_wrong_password(self):
        """A refused password is an error in the log, once; the controller
        keeps retrying (with backoff), publishes nothing, stops cleanly."""
        self.write(kubeconfig())
        r = self.redis()
        c = self.controller(r, M3S_CONTROLLER__REDIS_PASSWORD="not-the-" + PASSWORD)
        self.wait("the log to report the refused password",
                  lambda: "refused the password" in c.text())
        self.wait("a few retries", lambda: c.count("still failing") >= 3)
        self.assertIsNone(c.proc.poll())
        self.assertEqual(c.count("refused the password"), 1)
        self.assertIsNone(r.get())
        self.assert_clean_exit(c)
        self.assert_no_secrets(c)
        self.assertNotIn("not-the-", c.text())

    def test_password_missing(self):
        """Redis wants a password and none is configured: said so plainly."""
        self.write(kubeconfig())
        r = self.redis()
        c = self.controller(r, M3S_CONTROLLER__REDIS_PASSWORD="")
        self.wait("the log to report the missing password",
                  lambda: "requires a password but M3S_CONTROLLER__REDIS_PASSWORD is empty"
                  in c.text())
        self.assertIsNone(r.get())
        self.assert_clean_exit(c)

    def test_database_refused(self):
        """A database index Redis does not have: logged, retried, no crash."""
        self.write(kubeconfig())
        r = self.redis()
        c = self.controller(r, M3S_CONTROLLER__REDIS_DB="999")
        self.wait("the log to report the refused database",
                  lambda: "refused database 999" in c.text())
        self.assertIsNone(c.proc.poll())
        self.assert_clean_exit(c)

    def test_no_password_needed(self):
        """Default settings against a Redis without a password, database 1,
        prefix from the environment: the key lands where the daemon reads."""
        self.write(kubeconfig())
        r = self.redis(password="")
        c = self.controller(r, M3S_CONTROLLER__REDIS_PASSWORD="", M3S_CONTROLLER__REDIS_DB="")
        self.wait("the publication in database 1",
                  lambda: r.get(db=1) == kubeconfig())
        self.assert_clean_exit(c)

    def test_follows_sentinel_failover(self):
        """With REDIS_SENTINELS (REDIS_SERVER then names nothing useful) the
        kubeconfig goes to the master the sentinels name, and after a
        failover to the new one."""
        master = self.redis(password="")
        replica = Redis(password="", extra=["--replicaof", "127.0.0.1", str(master.port)])
        self.servers.append(replica)
        replica.start()
        sentinel = redis_sentinel.Sentinel(master.port)
        self.addCleanup(sentinel.stop)
        sentinel.wait_replicas(1, BOUND)
        self.write(kubeconfig())
        c = self.controller(master, M3S_CONTROLLER__REDIS_SERVER="127.0.0.1:%d" % free_port(),
                            M3S_CONTROLLER__REDIS_PASSWORD="",
                            M3S_CONTROLLER__REDIS_SENTINELS="127.0.0.1:%d" % sentinel.port)
        self.wait("the publication", lambda: master.get() == kubeconfig())
        self.assertIn(b"OK", sentinel.command("SENTINEL", "FAILOVER", "m3s"))
        # The old master a replica now: what lands on the new one came from
        # the controller itself.
        self.wait("the old master to be demoted", lambda: b"role:slave" in master.cmd("INFO", "replication"))
        second = kubeconfig(extra="preferences: {}\n")
        self.write(second)
        # On the master the sentinel names at each look: on a busy machine
        # it may fail over again on its own.
        servers = {master.port: master, replica.port: replica}
        self.wait("the publication on the new master",
                  lambda: sentinel.master_port() in servers and
                  servers[sentinel.master_port()].get() == second)
        self.assert_clean_exit(c)

    def test_command_line(self):
        out = subprocess.run([CONTROLLER, "--help"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        for var in ("M3S_CONTROLLER__REDIS_SERVER", "M3S_CONTROLLER__REDIS_PASSWORD",
                    "M3S_CONTROLLER__REDIS_DB", "M3S_CONTROLLER__REDIS_PREFIX",
                    "M3S_CONTROLLER__LOGLEVEL", "KUBECONFIG", "kubernetes_config"):
            self.assertIn(var, out.stdout)
        out = subprocess.run([CONTROLLER, "--version"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0)
        self.assertRegex(out.stdout, r"^m3s-controller \d+\.\d+\.\d+")
        out = subprocess.run([CONTROLLER, "--bogus"], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 2)

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        for var, value in (("M3S_CONTROLLER__REDIS_DB", "one"),
                           ("M3S_CONTROLLER__REDIS_DB", "-1"),
                           ("M3S_CONTROLLER__REDIS_SERVER", "localhost"),
                           ("M3S_CONTROLLER__REDIS_SERVER", "127.0.0.1:70000"),
                           ("M3S_CONTROLLER__LOGLEVEL", "chatty"),
                           ("M3S_CONTROLLER__POLL_INTERVAL", "2 s"),
                           ("M3S_CONTROLLER__BACKOFF_MAX", "10ms")):
            out = subprocess.run([CONTROLLER], env=dict(env, **{var: value}),
                                 capture_output=True, text=True, timeout=30)
            self.assertEqual(out.returncode, 2, "%s=%s" % (var, value))
            lines = out.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, out.stderr)
            self.assertIn(var, lines[0])
            self.assertIn(value, lines[0])


if __name__ == "__main__":
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print("controller: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
