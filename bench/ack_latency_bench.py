#!/usr/bin/env python3
"""Persist-then-acknowledge latency (issue 13): the time from a status
update's arrival to its ACKNOWLEDGE, for updates the daemon must write to
Redis first, next to a bare hiredis SET round trip measured in the same run.

The simulator runs TASKS agent tasks the daemon has records of (all
RUNNING). The benchmark makes them report TASK_STARTING and TASK_RUNNING in
turn (each a change of state, so each is written to Redis before it is
acknowledged), UPDATES in all, WINDOW at a time (default 1: pure latency,
no queueing). Times are taken in the simulator: from the moment the update
is queued on the subscription stream to the moment the ACKNOWLEDGE call
reaches it, so they include the loopback HTTP and the simulator's own
Python; to tell those apart, the same number of updates that need no write
(TASK_RUNNING health reports: acknowledged at once) is measured too, in the
same run: that is the transport floor.

The bare round trip: bench/redis_set_rtt, one SET of a record-sized value
at a time on its own connection to the same Redis (with --replica: SET then
WAIT 1, the same check the daemon makes with REDIS_WAIT_REPLICAS=1).

--replica starts a replica redis-server and runs the daemon with
REDIS_WAIT_REPLICAS=1; it is skipped, with a message, when the daemon does
not know that variable (m3s --print-config does not list it).

Usage: python3 bench/ack_latency_bench.py [build/m3s] [--tasks N]
       [--updates N] [--window W] [--runs R] [--replica]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "mesos_sim"))
import test_mesos  # noqa: E402
from mesos_sim import MesosSim  # noqa: E402
from recovery_bench import TEMPLATE, redis_pipe, resp, task_record, wait_log  # noqa: E402


class TimedSim(MesosSim):
    """The simulator, noting when each update is queued on the stream and
    when its ACKNOWLEDGE arrives (monotonic seconds, by uuid)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.sent, self.acked = {}, {}
        self.created = None  # uuid of the update made last
        self.acked_cond = threading.Condition()

    def _deliver(self, task, update):
        self.sent.setdefault(update.uuid, time.monotonic())
        super()._deliver(task, update)

    def _agent_status(self, task, *args, **kw):
        before = len(task.pending)
        super()._agent_status(task, *args, **kw)
        if len(task.pending) > before:
            # Sent now, or once the one before it is acknowledged.
            self.created = task.pending[-1].uuid

    def _call_acknowledge(self, fw, call, entry):
        t = time.monotonic()
        u = call["acknowledge"]["uuid"]
        out = super()._call_acknowledge(fw, call, entry)
        if self._uuids.get(u, {}).get("acked"):  # taken by the agent
            with self.acked_cond:
                self.acked.setdefault(u, t)
                self.acked_cond.notify_all()
        return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def replica_supported(binary):
    env = dict(os.environ, REDIS_WAIT_REPLICAS="1")
    out = subprocess.run([binary, "--print-config"], env=env, capture_output=True, text=True,
                         timeout=30)
    return out.returncode == 0 and any(line.startswith("REDIS_WAIT_REPLICAS=")
                                       for line in out.stdout.splitlines())


def start_replica(master_port, workdir):
    """A redis-server replicating master_port, on a free loopback port; the
    copy it receives goes to workdir."""
    port = test_mesos.free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", workdir,
                             "--replicaof", "127.0.0.1", str(master_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "replication"],
                             capture_output=True, text=True, timeout=10).stdout
        if "master_link_status:up" in out:
            return proc
        time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("the replica did not connect to its master")


def set_rtts(rtt_bin, port, count, size, replicas):
    args = [rtt_bin, "127.0.0.1", str(port), "1", str(count), str(size)]
    if replicas:
        args.append(str(replicas))
    out = subprocess.run(args, capture_output=True, text=True, timeout=600, check=True)
    lines = out.stdout.split()
    assert lines[0] == "n" and int(lines[1]) == count, out.stdout[:200]
    return [float(x) / 1e6 for x in lines[2:]]


def drive(sim, fid, ids, updates, window, kind, state):
    """Makes tasks report updates (kind "write": alternating STARTING and
    RUNNING; "nowrite": RUNNING health reports), at most window unacked at
    a time; returns the arrival -> ACKNOWLEDGE latencies in seconds. state:
    {task id: its state}, kept up to date."""
    lat, outstanding, nxt = [], {}, 0
    deadline = time.monotonic() + 600
    while len(lat) < updates:
        while len(outstanding) < window and nxt < updates:
            tid = ids[nxt % len(ids)]
            if tid in outstanding.values():
                break
            sim.created = None
            if kind == "write":
                state[tid] = "TASK_STARTING" if state[tid] == "TASK_RUNNING" else "TASK_RUNNING"
                sim.fail_task(tid, state=state[tid], framework_id=fid)
            else:
                sim.set_task_health(tid, nxt % 2 == 0, framework_id=fid)
            assert sim.created is not None, "no update made for %s" % tid
            outstanding[sim.created] = tid
            nxt += 1
        with sim.acked_cond:
            while not any(u in sim.acked for u in outstanding):
                if time.monotonic() > deadline:
                    raise RuntimeError("no ACKNOWLEDGE for %d update(s)" % len(outstanding))
                sim.acked_cond.wait(1)
            done = [u for u in outstanding if u in sim.acked]
        for u in done:
            lat.append(sim.acked[u] - sim.sent[u])
            del outstanding[u]
    return lat


def fmt_ms(xs):
    return "p50 %.3f ms, p99 %.3f ms" % (pct(xs, 50) * 1e3, pct(xs, 99) * 1e3)


def run(args, replica):
    test_mesos.M3S = os.path.abspath(args.binary)
    rtt_bin = os.path.join(os.path.dirname(test_mesos.M3S), "bench", "redis_set_rtt")
    if not os.access(rtt_bin, os.X_OK):
        sys.exit("no %s: build the bench targets first" % rtt_bin)
    env = {"LOGLEVEL": "info", "RECONCILE_WAIT": "1h", "DS_COUNT": "0", "K3S_SERVER_COUNT": "0",
           "K3S_AGENT_COUNT": "0"}
    if replica:
        env["REDIS_WAIT_REPLICAS"] = "1"
    sim = TimedSim(agents=max(1, args.tasks // 100), cpus=10000, mem=10 ** 7, heartbeat=5,
                   offer_interval=1, resend_interval=2, chunking="record")
    sim.start()
    redis = test_mesos.Redis()
    rep = None
    daemon = None
    try:
        if replica:
            repdir = tempfile.mkdtemp(prefix="m3s-replica-")
            rep = start_replica(redis.port, repdir)
        master = "127.0.0.1:%d" % sim.port
        d = test_mesos.Daemon(master, REDIS_SERVER="127.0.0.1:%d" % redis.port, **env)
        wait_log(d, "] subscribed to ", 60)
        d.stop()
        d.cleanup()
        fid = json.loads(redis.command("GET", "m3s:framework"))["FrameworkInfo"]["id"]["value"]
        with open(TEMPLATE) as f:
            tmpl = json.load(f)
        agents = sim.state()["agents"]
        agent_ids = [a["id"] for a in agents]
        hosts = {a["id"]: a["hostname"] for a in agents}
        ids = ["%08x-0000-4000-8000-%012x" % (i, i) for i in range(args.tasks)]
        for i, tid in enumerate(ids):
            sim.launch_task(framework_id=fid, task_id=tid, agent=agent_ids[i % len(agent_ids)],
                            cpus=0.01, mem=1, name="m3s:agent")
        cmds = [resp("SET", "m3s:agent:%s" % tid,
                     task_record(tmpl, tid, agent_ids[i % len(agent_ids)], hosts, args.tasks))
                for i, tid in enumerate(ids)]
        size = len(cmds[0])
        cmds.append(resp("SET", "m3s:framework_config",
                         json.dumps({"DSMax": 0, "K3SServerMax": 0, "K3SAgentMax": args.tasks})))
        redis_pipe(redis.port, cmds)
        daemon = test_mesos.Daemon(master, REDIS_SERVER="127.0.0.1:%d" % redis.port, **env)
        wait_log(daemon, "agent role: every task reconciled with the master", 120)
        # The launches' STARTING/RUNNING updates (re-sent every 2 s until
        # then) are acknowledged first.
        deadline = time.monotonic() + 120
        while sim.unacked_updates():
            if time.monotonic() > deadline:
                raise RuntimeError("updates of the launches still unacknowledged")
            time.sleep(0.1)
        # Each task's record then holds the network infos the simulator
        # reports: a health report changes nothing and is not written.
        state = {tid: "TASK_RUNNING" for tid in ids}
        drive(sim, fid, ids, 2 * len(ids), 1, "write", state)
        label = "replica, REDIS_WAIT_REPLICAS=1" if replica else "single Redis"
        rows = []
        for r in range(args.runs):
            rtt = set_rtts(rtt_bin, redis.port, args.updates, size, 1 if replica else 0)
            w0 = redis_writes(redis)
            wr = drive(sim, fid, ids, args.updates, args.window, "write", state)
            writes = redis_writes(redis) - w0
            starting = [tid for tid in ids if state[tid] != "TASK_RUNNING"]
            drive(sim, fid, starting, len(starting), args.window, "write", state)
            nw = drive(sim, fid, ids, args.updates, args.window, "nowrite", state)
            rows.append((rtt, wr, nw))
            print("[%s] run %d: bare SET%s round trip %s; update -> ACKNOWLEDGE with a write "
                  "%s (%d Redis writes); without a write %s; p99 ratio %.2fx, p50 ratio %.2fx"
                  % (label, r + 1, "+WAIT" if replica else "", fmt_ms(rtt), fmt_ms(wr), writes,
                     fmt_ms(nw), pct(wr, 99) / pct(rtt, 99), pct(wr, 50) / pct(rtt, 50)),
                  flush=True)
        r99 = [pct(w, 99) / pct(t, 99) for t, w, _ in rows]
        r50 = [pct(w, 50) / pct(t, 50) for t, w, _ in rows]
        d99 = [(pct(w, 99) - pct(n, 99)) / pct(t, 99) for t, w, n in rows]
        print("[%s] ack p99 / bare round trip p99: %s (median %.2fx); p50: %s (median %.2fx); "
              "(p99 with a write - p99 without) / bare p99: %s"
              % (label, ["%.2f" % x for x in r99], statistics.median(r99),
                 ["%.2f" % x for x in r50], statistics.median(r50),
                 ["%.2f" % x for x in d99]))
        v = [x for x in sim.violations() if x["severity"] == "error"]
        print("[%s] simulator violations: %d" % (label, len(v)))
        for x in v[:5]:
            print("  %s: %s" % (x["kind"], x["message"]))
    finally:
        if daemon:
            daemon.stop()
            daemon.cleanup()
        if rep:
            rep.terminate()
            rep.wait()
            shutil.rmtree(repdir, ignore_errors=True)
        sim.stop()
        redis.stop()


def redis_writes(redis):
    n = 0
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        name = line.split(":", 1)[0]
        if name in ("cmdstat_set", "cmdstat_del", "cmdstat_mset", "cmdstat_exec"):
            n += int(line.split("calls=")[1].split(",")[0])
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default=os.path.join(HERE, "..", "build", "m3s"))
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--updates", type=int, default=10000)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--replica", action="store_true",
                    help="also against a Redis with a replica, REDIS_WAIT_REPLICAS=1")
    args = ap.parse_args()
    run(args, False)
    if args.replica:
        if replica_supported(os.path.abspath(args.binary)):
            run(args, True)
        else:
            print("[replica] skipped: this m3s does not know REDIS_WAIT_REPLICAS "
                  "(m3s --print-config does not list it)")


if __name__ == "__main__":
    main()
