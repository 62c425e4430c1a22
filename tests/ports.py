"""Free loopback ports for the tests, without the bind-0-and-close race.

A port found by binding port 0 and closing the socket lies in the kernel's
ephemeral range: before the server that was meant to get it binds it, any
outgoing connection on the machine (a curl, a redis client, another test
under ctest -j2) may be handed it. So the ports handed out here:
- come from 10000-19999, outside the ephemeral range (32768-60999 on
  Debian; read from /proc) and below the 20000-30999 that
  ../shared/mesos/start-cluster.sh picks for real masters and agents and the
  31000-32000 that the agents (real and simulated) offer to tasks;
- are reserved by an flock on /tmp/m3s-test-ports-<uid>/<port>, held for the
  life of the process that asked (in Python) or of the shell and its
  children (tests/ports.sh), so two tests running at once never get the same
  one; the kernel drops the lock when its holder dies, even by SIGKILL;
- are bindable on the asked address when handed out.

Python: `from ports import free_port`. Shell: source tests/ports.sh.
`python3 tests/ports.py --candidates [HOST]` prints a few ports that are free
now and unreserved, one per line, for tests/ports.sh to reserve.
"""
import errno
import fcntl
import os
import random
import socket
import sys

LOW, HIGH = 10000, 20000
# Not under $TMPDIR: every test must see the same locks, whatever its environment.
LOCK_DIR = "/tmp/m3s-test-ports-%d" % os.getuid()
_held = {}  # port -> the fd whose flock reserves it, for this process's life


def _ephemeral():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def _bindable(host, port):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _shuffled():
    """Every port of the range that this process does not hold, in random
    order: a few random draws first, which nearly always find one, then the
    whole range shuffled, so a crowded range is still searched to the end."""
    lo, hi = _ephemeral()
    rng = random.SystemRandom()
    for _ in range(64):
        p = rng.randrange(LOW, HIGH)
        if not lo <= p <= hi and p not in _held:
            yield p
    ports = [p for p in range(LOW, HIGH) if not lo <= p <= hi and p not in _held]
    rng.shuffle(ports)
    yield from ports


def _lock(port):
    """An fd holding the reservation of port, or None if another holds it."""
    os.makedirs(LOCK_DIR, exist_ok=True)
    fd = os.open(os.path.join(LOCK_DIR, str(port)), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return None
        raise
    return fd


def _reserve(host, port):
    """An fd holding the reservation of port if nobody holds it and it can
    be bound on host now, else None."""
    fd = _lock(port)
    if fd is not None and not _bindable(host, port):
        os.close(fd)
        fd = None
    return fd


def free_port(host="127.0.0.1"):
    """A port free on host and reserved for this process until it exits."""
    for port in _shuffled():
        fd = _reserve(host, port)
        if fd is not None:
            _held[port] = fd
            return port
    raise RuntimeError("no free port in %d-%d on %s" % (LOW, HIGH - 1, host))


def candidates(host="127.0.0.1", n=16):
    """Up to n ports free on host and not reserved by anyone right now; not
    reserved for the caller either: it must take the lock itself."""
    out = []
    for port in _shuffled():
        if port in out:
            continue
        fd = _reserve(host, port)
        if fd is not None:
            os.close(fd)
            out.append(port)
            if len(out) == n:
                break
    return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or sys.argv[1] != "--candidates":
        sys.exit("usage: ports.py --candidates [HOST]")
    print("\n".join(str(p) for p in candidates(*sys.argv[2:])))
