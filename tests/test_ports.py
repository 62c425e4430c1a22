"""tests/ports.py and tests/ports.sh: the ports the tests hand their servers
are outside the kernel's ephemeral range, never handed to two holders at
once, and free again when their holder dies (SIGKILL included)."""
import os
import signal
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ports  # noqa: E402

HOLD = """
import sys
sys.path.insert(0, %r)
import ports
print(" ".join(str(ports.free_port()) for _ in range(int(sys.argv[1]))), flush=True)
sys.stdin.read()
""" % HERE


class PortsTest(unittest.TestCase):
    def holder(self, n):
        """A process holding n ports until its stdin closes; and the ports."""
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(n)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.end, p)
        return p

    def end(self, p):
        if p.poll() is None:
            p.kill()
        p.wait()
        for f in (p.stdin, p.stdout):
            if f:
                f.close()

    def test_outside_the_ephemeral_range_distinct_and_bindable(self):
        lo, hi = ports._ephemeral()
        got = [ports.free_port() for _ in range(50)]
        self.assertEqual(len(set(got)), 50, got)
        for p in got:
            self.assertTrue(ports.LOW <= p < ports.HIGH and not lo <= p <= hi, p)
            self.assertTrue(ports._bindable("127.0.0.1", p), p)

    def test_processes_asking_at_once_never_share_a_port(self):
        # 4 x 200 random picks out of 10,000 ports would share about 24
        # ports without the locks.
        procs = [self.holder(200) for _ in range(4)]
        seen = []
        for p in procs:
            seen += [int(x) for x in p.stdout.readline().split()]
        self.assertEqual(len(seen), 800)
        self.assertEqual(len(set(seen)), 800, "a port handed out twice")

    def test_a_port_held_is_not_handed_out_and_a_killed_holder_frees_it(self):
        p = self.holder(1)
        port = int(p.stdout.readline())
        self.assertIsNone(ports._lock(port), "held, yet lockable")
        p.send_signal(signal.SIGKILL)
        p.wait()
        fd = ports._lock(port)
        self.assertIsNotNone(fd, "still held after its holder died")
        os.close(fd)

    def test_the_shell_keeps_its_port_until_it_exits(self):
        sh = subprocess.Popen(["bash", "-c", '. "$1"; p=""; free_port p; echo "$p"; cat >/dev/null',
                               "-", os.path.join(HERE, "ports.sh")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(self.end, sh)
        port = int(sh.stdout.readline())
        lo, hi = ports._ephemeral()
        self.assertTrue(ports.LOW <= port < ports.HIGH and not lo <= port <= hi, port)
        self.assertIsNone(ports._lock(port), "the shell's port is not held")
        sh.stdin.close()
        self.assertEqual(sh.wait(timeout=10), 0)
        fd = ports._lock(port)
        self.assertIsNotNone(fd, "still held after the shell exited")
        os.close(fd)


if __name__ == "__main__":
    unittest.main()
