#!/usr/bin/env python3
"""Rollout benchmark (issue 15): wall time of a K3s version rollout of
1 server and N agents (default 20) in the simulator with its simulated K3s
(fake_k3s.py: every agent node holds two pods that the drain evicts), and
how much of it is waiting versus the daemon's own work.

From the daemon's own log (each stage change of each step is logged with
the daemon's time stamp as it is entered):
  - drain wait: time in the "drain" stage (cordon, evictions, the pods
    gone), summed over the steps;
  - Ready wait: time in the "ready" (and "surge") stage: the new task's
    launch through Mesos, its K3s node registering and turning Ready;
  - the rest of the wall time is the daemon's own pace: building and
    storing the plan, storing each stage before acting on it, the status
    poll (every 100 ms, answers looked at 15 ms after) that notices a stage
    is done, the replace and
    release messages;
and the CPU time the daemon's threads used during the rollout
(/proc/<pid>/task/*/schedstat).

Usage: python3 bench/rollout_bench.py BUILD_DIR [--agents 20] [--runs 1]
"""
import argparse
import base64
import json
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "mesos_sim"))
import test_mesos  # noqa: E402
import mesos_sim  # noqa: E402
from recovery_bench import thread_cpu  # noqa: E402

STAGE = re.compile(r"^(\S+) INFO  \[rollout\] rollout \S+: step (\S+)(?:: (\w+)| complete)")


def ts(text):
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def request(port, path, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request("http://127.0.0.1:%d/api/m3s/v0/%s" % (port, path),
                                 method=method, data=data)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"ops:bench").decode())
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (ConnectionError, urllib.error.URLError):
        return 0, None


def one_run(args):
    k3s_port, api_port = test_mesos.free_port(), test_mesos.free_port()
    sim = mesos_sim.MesosSim(agents=args.agents + 4, heartbeat=0.5, offer_interval=0.3,
                             resend_interval=1.0, task_start_delay=0.05, health_delay=0.1,
                             k3s=True, agent_hostname="127.0.{i}.1",
                             ports="31000-32000,%d-%d" % (k3s_port, k3s_port),
                             k3s_config_delay=0.1, k3s_node_delay=0.1, k3s_ready_delay=0.2)
    sim.start()
    redis = test_mesos.Redis()
    d = None
    try:
        d = test_mesos.Daemon("127.0.0.1:%d" % sim.port,
                              REDIS_SERVER="127.0.0.1:%d" % redis.port, LOGLEVEL="info",
                              K3S_SERVER_PORT=str(k3s_port), FRAMEWORK_PORT=str(api_port),
                              AUTH_USERNAME="ops", AUTH_PASSWORD="bench",
                              K3S_AGENT_COUNT=str(args.agents), REFUSE_OFFERS="1",
                              RECONCILE_WAIT="1m", HEARTBEAT_INTERVAL="1s",
                              KUBERNETES_VERSION="v1.31.5")
        deadline = time.monotonic() + 300
        k3s = None
        while True:
            st = sim.k3s_state()
            nodes = {t: v["node"] for t, v in st.get("tasks", {}).items()
                     if v["role"] == "agent" and v["node"]}
            ready = st.get("clusters", {}).get("m3s", {}).get("nodes", {})
            if len(nodes) == args.agents and all(ready.get(n, {}).get("ready")
                                                 for n in nodes.values()):
                code, plan = request(api_port, "status/m3s")
                if code == 200:
                    break
            if time.monotonic() > deadline or d.proc.poll() is not None:
                raise RuntimeError("cluster not up:\n" + d.text()[-3000:])
            time.sleep(0.2)
        k3s = sim._k3s._cluster("m3s").api
        for i, node in enumerate(sorted(nodes.values())):
            for j in range(2):
                k3s.put_pod("default", "web-%d-%d" % (i, j), node, labels={"app": "web"})
        time.sleep(1.5)  # settle: the kube actor's first heartbeat after the pods
        cpu0 = thread_cpu(d.proc.pid)
        t0 = time.time()
        code, body = request(api_port, "cluster/update", "PUT",
                             {"KUBERNETES_VERSION": "v1.32.0", "rollout": True})
        if code != 200:
            raise RuntimeError("update: %s %s" % (code, body))
        deadline = time.monotonic() + 900
        while True:
            code, plan = request(api_port, "plan")
            if code == 200 and plan["status"] not in ("IN_PROGRESS", "PENDING"):
                break
            if time.monotonic() > deadline or d.proc.poll() is not None:
                raise RuntimeError("rollout not done:\n" + d.text()[-3000:])
            time.sleep(0.05)
        t1 = time.time()
        cpu1 = thread_cpu(d.proc.pid)
        if plan["status"] != "COMPLETE":
            raise RuntimeError("plan %s: %s" % (plan["status"], plan.get("reason")))
        # Stage times from the daemon's log.
        marks = {}
        for line in d.text().splitlines():
            m = STAGE.match(line)
            if m:
                marks.setdefault(m.group(2), []).append((ts(m.group(1)), m.group(3) or "done"))
        waits = {"drain": 0.0, "ready": 0.0}
        for seq in marks.values():
            for (t, stage), (t_next, _) in zip(seq, seq[1:]):
                if stage == "drain":
                    waits["drain"] += t_next - t
                elif stage in ("ready", "surge"):
                    waits["ready"] += t_next - t
        first = min(t for seq in marks.values() for t, _ in seq)
        last = max(t for seq in marks.values() for t, _ in seq)
        wall = t1 - t0
        cpu = {k: cpu1.get(k, 0) - cpu0.get(k, 0) for k in cpu1}
        evictions = sum(1 for e in k3s.evictions if e["code"] == 201)
        return {"wall": wall, "plan": last - first, "drain": waits["drain"],
                "ready": waits["ready"], "steps": sum(len(p["steps"]) for p in plan["phases"]),
                "cpu": sum(cpu.values()), "cpu_rollout": cpu.get("rollout", 0.0),
                "evictions": evictions}
    finally:
        if d is not None:
            d.stop()
            d.cleanup()
        sim.stop()
        redis.stop()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    test_mesos.M3S = os.path.abspath(os.path.join(args.build, "m3s"))
    for i in range(args.runs):
        r = one_run(args)
        own = r["wall"] - r["drain"] - r["ready"]
        print("run %d: 1 server + %d agents (%d steps, %d pods evicted): PUT -> COMPLETE "
              "%.1f s; waiting: drain %.1f s, Ready %.1f s; the daemon's own pace %.1f s "
              "(%.0f%%); daemon CPU %.2f s (rollout thread %.3f s)"
              % (i + 1, args.agents, r["steps"], r["evictions"], r["wall"], r["drain"],
                 r["ready"], own, 100 * own / r["wall"], r["cpu"], r["cpu_rollout"]))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
