#!/usr/bin/env python3
"""Orchestration benchmark (issue 5): the daemon brings up a cluster with
K3S_AGENT_COUNT K3s agents on a simulated Mesos cluster of AGENTS agents.

Measured in one run:
  - time from SUBSCRIBED (the daemon's log line) to every task RUNNING;
  - offer rounds: OFFERS events that placed at least one task, and how many
    tasks each placed (the target: every task placed in the first round
    that has room for it, so: datastore, server, agents = 3 rounds);
  - the daemon's CPU time per OFFERS event: the offers actor's thread (it
    places, builds the TaskInfos and the ACCEPTs, and also routes every
    status update) and the Mesos actor's thread (it reads and parses the
    stream), from /proc/<pid>/task/*/schedstat (nanoseconds);
  - in the same run, jansson's CPU time just to parse the same OFFERS
    events, captured from the simulator's stream (bench/parse_bench).

Usage: python3 bench/orchestra_bench.py BUILD_DIR [--agents 2000] [--count 1000]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "mesos_sim"))
import test_mesos  # noqa: E402
import mesos_sim  # noqa: E402
from recovery_bench import thread_cpu  # noqa: E402


class CapturingSim(mesos_sim.MesosSim):
    """Keeps the bytes of every OFFERS record it streams."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.offer_records = []

    def _send(self, fw, event):
        if event.get("type") == "OFFERS" and fw is not None and fw.stream is not None:
            self.offer_records.append(mesos_sim.encode_record(event))
        return super()._send(fw, event)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()
    test_mesos.M3S = os.path.abspath(os.path.join(args.build, "m3s"))
    parse_bench = os.path.abspath(os.path.join(args.build, "bench", "parse_bench"))

    sim = CapturingSim(agents=args.agents, heartbeat=15, offer_interval=1,
                       resend_interval=60, task_start_delay=0.05, health_delay=0.1)
    sim.start()
    redis = test_mesos.Redis()
    d = None
    try:
        d = test_mesos.Daemon("127.0.0.1:%d" % sim.port,
                              REDIS_SERVER="127.0.0.1:%d" % redis.port, LOGLEVEL="info",
                              K3S_AGENT_COUNT=str(args.count), REFUSE_OFFERS="5")
        want = args.count + 2
        t_start = time.monotonic()
        deadline = t_start + 600
        sub = None
        while True:
            text = d.text()
            if sub is None and "] subscribed to " in text:
                sub = time.monotonic()
            running = sum(1 for t in sim.state(include_agents=False)["tasks"]
                          if t["state"] == "TASK_RUNNING")
            if running >= want:
                done = time.monotonic()
                break
            if time.monotonic() > deadline or d.proc.poll() is not None:
                raise RuntimeError("not converged: %d of %d running\n%s"
                                   % (running, want, text[-3000:]))
            time.sleep(0.01)
        time.sleep(1.0)  # the last updates' acknowledgements
        cpu = thread_cpu(d.proc.pid)
        text = d.text()
        rounds = [int(m.group(1)) for m in
                  re.finditer(r"offer round: (\d+) task\(s\) placed", text)]
        events = len(sim.offer_records)
        with tempfile.NamedTemporaryFile(prefix="m3s-offers-", suffix=".rio",
                                         delete=False) as f:
            for rec in sim.offer_records:
                f.write(rec)
            path = f.name
        out = subprocess.run([parse_bench, path, "7"], capture_output=True, text=True,
                             check=True).stdout
        os.unlink(path)
        m = re.search(r"events (\d+) bytes (\d+) parse_cpu_s ([0-9.]+)", out)
        parse_s = float(m.group(3))
        print("cluster: %d Mesos agents, %d K3s agents (+ datastore + server)"
              % (args.agents, args.count))
        print("SUBSCRIBED -> all %d tasks RUNNING: %.2f s (daemon start -> SUBSCRIBED %.2f s)"
              % (want, done - sub, sub - t_start))
        print("offer rounds that placed tasks: %d, tasks placed per round: %s"
              % (len(rounds), rounds))
        print("OFFERS events received: %d (%.1f MB)" % (events, int(m.group(2)) / 1e6))
        off, mes = cpu.get("offers", 0.0), cpu.get("mesos", 0.0)
        print("daemon CPU: offers thread %.3f s, mesos thread %.3f s, all threads %.3f s"
              % (off, mes, sum(cpu.values())))
        print("jansson parse of the same OFFERS events: %.3f s (%.2f ms per event)"
              % (parse_s, 1000 * parse_s / max(events, 1)))
        print("offers thread CPU per OFFERS event: %.2f ms -> %.2fx the parse"
              % (1000 * off / max(events, 1), off / parse_s if parse_s else float("nan")))
        v = [x for x in sim.violations() if x["severity"] == "error"]
        print("simulator violations: %d" % len(v))
        for x in v[:5]:
            print("  %s: %s" % (x["kind"], x["message"][:200]))
    finally:
        if d is not None:
            d.stop()
            d.cleanup()
        sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
