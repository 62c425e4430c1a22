"""A throwaway redis-sentinel on a free loopback port, watching one master
as "m3s" alone (quorum 1) and failing over fast; stopped by PID. Shared by
the orchestra and controller tests."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ports import free_port  # noqa: E402


class Sentinel:
    def __init__(self, master_port, password=""):
        self.dir = tempfile.mkdtemp(prefix="m3s-sentinel-")
        self.port = free_port()
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:
            # Its log says when it switched masters (switches()).
            f.write("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n"
                    "sentinel monitor m3s 127.0.0.1 %d 1\n"
                    # Not 1 s: a master whose fsync stalls that long on a
                    # busy machine would be failed over again on its own.
                    "sentinel down-after-milliseconds m3s 3000\n"
                    "sentinel failover-timeout m3s 5000\n"
                    % (self.port, self.dir, os.path.join(self.dir, "sentinel.log"), master_port))
            if password:
                f.write("sentinel auth-pass m3s %s\n" % password)
        self.proc = subprocess.Popen(["redis-sentinel", conf], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def command(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                              capture_output=True, timeout=10).stdout

    def master_port(self):
        """The port of the master the sentinel names now, or None."""
        out = self.command("SENTINEL", "get-master-addr-by-name", "m3s").split()
        return int(out[1]) if len(out) == 2 else None

    def switches(self):
        """The masters it switched to, in order, from its log: [port]."""
        try:
            with open(os.path.join(self.dir, "sentinel.log"), errors="replace") as f:
                return [int(line.split()[-1]) for line in f if "+switch-master" in line]
        except OSError:
            return []

    def replicas(self):
        """How many replicas the sentinel has found."""
        return self.command("SENTINEL", "replicas", "m3s").count(b"slave")

    def wait_replicas(self, n, timeout):
        deadline = time.monotonic() + timeout
        while self.replicas() < n:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the sentinel did not find %d replica(s)" % n)
            time.sleep(0.1)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
