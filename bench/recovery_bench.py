#!/usr/bin/env python3
"""Recovery benchmark (issue 4): a daemon starting on a Redis that holds
10,000 task records (the original's format) of tasks the master still runs.

Measured per run, from the daemon's exec to its log line "agent role: every
task reconciled with the master": loading every record, subscribing with the
stored framework id and hearing back from the master about each task; and
the daemon's peak RSS (VmHWM) at that moment. Also from exec to "N task
record(s) loaded": the records read and parsed. "exec" is the return of
Popen (the child has exec'd); the end is the time stamp the daemon wrote
on the line.

In the same run, alternating with the daemon's starts, the floor: the cost
of only reading the same records with hiredis (bench/redis_read_floor.c:
SCAN, then MGET or pipelined GETs of 1,000 keys, the faster of the two, no
parsing), timed like the daemon: from the return of Popen (the process has
exec'd) to its exit, so the start-up of a process and its Redis connection
count on both sides. And, as before, the same daemon on an empty Redis from exec to
SUBSCRIBED.

The records are the original's format as Go writes it (compact), each
with its own task id in the environment and arguments and its agent's
MesosAgent object, like records of a real cluster.

Usage: python3 bench/recovery_bench.py [build/m3s] [--tasks N] [--runs R]
(redis_read_floor is looked for in bench/ next to the binary.)
With --dump-records FILE, only writes N such records to FILE, one a line
(agent ids and hostnames shaped like the simulator's), for
bench/record_decode_bench, and exits.
"""
import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "mesos_sim"))
import test_mesos  # noqa: E402
from mesos_sim import MesosSim  # noqa: E402

TEMPLATE = os.path.join(HERE, "..", "tests", "data", "records", "task_agent_running.json")


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_pipe(port, commands, db=1):
    """Sends RESP commands in one stream and reads all replies."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(resp("SELECT", db) + b"".join(commands))
        want = len(commands) + 1
        buf = b""
        while buf.count(b"\r\n") < want:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk


def wait_log(daemon, needle, timeout):
    """The time of the first log line holding needle, as the daemon stamped
    it (wall clock, to the millisecond): polling the log neither delays the
    figure nor, polled slowly, takes the daemon's CPU."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        text = daemon.text()
        at = text.find(needle)
        if at >= 0:
            stamp = text[text.rfind("\n", 0, at) + 1:].split()[0]
            return datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
        if daemon.proc.poll() is not None:
            raise RuntimeError("daemon exited:\n" + daemon.text()[-3000:])
        time.sleep(0.01)
    raise RuntimeError("timed out waiting for %r\n%s" % (needle, daemon.text()[-3000:]))


def redis_writes(redis):
    """SET/DEL/MSET/UNLINK calls Redis has served so far."""
    n = 0
    for line in redis.command("INFO", "commandstats").decode().splitlines():
        name = line.split(":", 1)[0]
        if name in ("cmdstat_set", "cmdstat_del", "cmdstat_mset", "cmdstat_unlink"):
            n += int(line.split("calls=")[1].split(",")[0])
    return n


def vmhwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def thread_cpu(pid):
    """{thread name: CPU seconds} of a process: the scheduler's nanosecond
    run time (/proc/.../schedstat), else user + system in clock ticks."""
    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "stat") as f:
                st = f.read()
            try:
                with open(base + "schedstat") as f:
                    secs = int(f.read().split()[0]) / 1e9
            except (OSError, ValueError, IndexError):
                fields = st[st.rindex(")") + 2:].split()
                secs = (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        out[name] = out.get(name, 0) + secs
    return out


def task_record(tmpl, tid, agent, hosts, instances):
    """The template as the original writes it for task tid on agent."""
    rec = dict(tmpl, TaskID=tid, task_name="m3s:agent", Agent=agent, State="TASK_RUNNING",
               Instances=instances)
    rec["environment"] = {"variables": [
        dict(v, value=tid) if v["name"] == "MESOS_TASK_ID" else v
        for v in tmpl["environment"]["variables"]]}
    rec["arguments"] = [a.replace(tmpl["TaskID"], tid) for a in tmpl["arguments"]]
    rec["MesosAgent"] = dict(tmpl["MesosAgent"], id=agent, hostname=hosts[agent])
    return json.dumps(rec, separators=(",", ":"))


def read_floor(floor_bin, port, want):
    """Seconds hiredis needs to read the task records, no parsing: the
    faster of MGET and pipelined GETs, each a process of its own timed as
    the daemon is, from the return of Popen (the child has exec'd) to its
    exit; and, for information, the same measured inside the process (from
    connect, without start-up). Returns (from exec, inside)."""
    best = inside = None
    for way in ("mget", "get"):
        p = subprocess.Popen([floor_bin, "127.0.0.1", str(port), "1", "m3s:agent:*", way],
                             stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        out, _ = p.communicate(timeout=120)
        secs = time.monotonic() - t0
        assert p.returncode == 0, out
        _, keys, _, ins = out.split()
        assert int(keys) == want, out
        best = secs if best is None else min(best, secs)
        inside = float(ins) if inside is None else min(inside, float(ins))
    return best, inside


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default=os.path.join(HERE, "..", "build", "m3s"))
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--dump-records", metavar="FILE")
    args = ap.parse_args()
    if args.dump_records:
        with open(TEMPLATE) as f:
            tmpl = json.load(f)
        master = "0f3c5e1a-6b2d-4e8f-9a71-3c4d5e6f7a8b"
        agents = ["%s-S%d" % (master, i) for i in range(max(1, args.tasks // 200))]
        hosts = {a: "agent-%d.mesos-sim" % i for i, a in enumerate(agents)}
        with open(args.dump_records, "w") as f:
            for i in range(args.tasks):
                tid = "%08x-0000-4000-8000-%012x" % (i, i)
                f.write(task_record(tmpl, tid, agents[i % len(agents)], hosts, args.tasks) + "\n")
        return
    test_mesos.M3S = os.path.abspath(args.binary)
    floor_bin = os.path.join(os.path.dirname(test_mesos.M3S), "bench", "redis_read_floor")
    if not os.access(floor_bin, os.X_OK):
        sys.exit("no %s: build the bench targets first" % floor_bin)
    env = {"LOGLEVEL": "info", **({"MALLOC_ARENA_MAX": os.environ["MALLOC_ARENA_MAX"]} if "MALLOC_ARENA_MAX" in os.environ else {}), "RECONCILE_WAIT": "1h", "DS_COUNT": "0",
           "K3S_SERVER_COUNT": "0", "K3S_AGENT_COUNT": "0"}

    agents = max(1, args.tasks // 200)
    sim = MesosSim(agents=agents, cpus=10000, mem=10 ** 7, heartbeat=5, offer_interval=1,
                   resend_interval=600)
    sim.start()
    redis = test_mesos.Redis()
    try:
        master = "127.0.0.1:%d" % sim.port
        # Baseline: exec -> SUBSCRIBED on an empty Redis (framework registers).
        base = []
        for _ in range(args.runs):
            redis_pipe(redis.port, [resp("FLUSHDB")])
            d = test_mesos.Daemon(master, REDIS_SERVER="127.0.0.1:%d" % redis.port, **env)
            t0 = time.time()
            t1 = wait_log(d, "] subscribed to ", 60)
            base.append(t1 - t0)
            d.stop()
            d.cleanup()
        fid = json.loads(redis.command("GET", "m3s:framework"))["FrameworkInfo"]["id"]["value"]

        # The tasks the master runs for that framework, and their records.
        with open(TEMPLATE) as f:
            tmpl = json.load(f)
        ids = ["%08x-0000-4000-8000-%012x" % (i, i) for i in range(args.tasks)]
        agent_ids = [a["id"] for a in sim.state()["agents"]]
        t0 = time.monotonic()
        for i, tid in enumerate(ids):
            sim.launch_task(framework_id=fid, task_id=tid, agent=agent_ids[i % len(agent_ids)],
                            cpus=0.01, mem=1, name="m3s:agent")
        print("simulator: %d tasks started in %.1f s" % (len(ids), time.monotonic() - t0))
        cmds = []
        hosts = {a["id"]: a["hostname"] for a in sim.state()["agents"]}
        for i, tid in enumerate(ids):
            cmds.append(resp("SET", "m3s:agent:%s" % tid,
                             task_record(tmpl, tid, agent_ids[i % len(agent_ids)], hosts, args.tasks)))
        cfg = {"DSMax": 0, "K3SServerMax": 0, "K3SAgentMax": args.tasks}
        cmds.append(resp("SET", "m3s:framework_config", json.dumps(cfg)))
        redis_pipe(redis.port, cmds)
        size = int(redis.command("DBSIZE").strip() or 0)
        print("redis: %d keys" % size)

        # The first start after those launches also acknowledges their
        # 20,000 pending STARTING/RUNNING updates: a warm-up, reported apart.
        times, loads, floors, floors_inside, rss, rss_l, cpu, writes = [], [], [], [], [], [], [], []
        for run in range(args.runs + 1):
            if run:
                f, fi = read_floor(floor_bin, redis.port, args.tasks)
                floors.append(f)
                floors_inside.append(fi)
            w0 = redis_writes(redis)
            d = test_mesos.Daemon(master, REDIS_SERVER="127.0.0.1:%d" % redis.port, **env)
            t0 = time.time()
            tl = wait_log(d, "agent role: %d task record(s) loaded" % args.tasks, 120)
            rss_loaded = vmhwm_kib(d.proc.pid)
            t1 = wait_log(d, "agent role: every task reconciled with the master", 120)
            if run == 0:
                print("warm-up start (also acknowledges %d pending updates): %.3f s, peak RSS "
                      "%.1f MiB" % (2 * args.tasks, t1 - t0, vmhwm_kib(d.proc.pid) / 1024))
            else:
                loads.append(tl - t0)
                times.append(t1 - t0)
                rss.append(vmhwm_kib(d.proc.pid))
                rss_l.append(rss_loaded)
                cpu.append(thread_cpu(d.proc.pid))
            text = d.text()
            d.stop()
            d.cleanup()
            if run:
                writes.append(redis_writes(redis) - w0)
            launched = [c for c in sim.calls(type="ACCEPT")]
            assert "%d task record(s) loaded" % args.tasks in text, text[-2000:]
        print("baseline (empty Redis, exec -> SUBSCRIBED): median %.3f s of %s"
              % (statistics.median(base), ["%.3f" % x for x in base]))
        print("floor (hiredis: SCAN + MGET/GET, no parsing; exec -> exit): median %.3f s of %s"
              % (statistics.median(floors), ["%.3f" % x for x in floors]))
        print("  the same inside the process (connect -> read), not compared: median %.3f s"
              % statistics.median(floors_inside))
        print("recovery, records loaded (exec -> %d records parsed): median %.3f s of %s"
              % (args.tasks, statistics.median(loads), ["%.3f" % x for x in loads]))
        print("recovery (%d records, exec -> all reconciled): median %.3f s of %s"
              % (args.tasks, statistics.median(times), ["%.3f" % x for x in times]))
        rl = [x / f for x, f in zip(loads, floors)]
        rt = [x / f for x, f in zip(times, floors)]
        print("ratio loaded / floor, per run: %s; median %.2fx"
              % (["%.2f" % x for x in rl], statistics.median(rl)))
        print("ratio all reconciled / floor, per run: %s; median %.2fx"
              % (["%.2f" % x for x in rt], statistics.median(rt)))
        print("peak RSS at that point: median %.1f MiB of %s"
              % (statistics.median(rss) / 1024, ["%.1f" % (x / 1024) for x in rss]))
        print("peak RSS when the records were loaded (read just after the log line): "
              "median %.1f MiB of %s"
              % (statistics.median(rss_l) / 1024, ["%.1f" % (x / 1024) for x in rss_l]))
        last = cpu[-1]
        print("daemon CPU by thread (last run): %s; total %.2f s"
              % (", ".join("%s %.2f" % kv for kv in sorted(last.items())), sum(last.values())))
        print("Redis writes during each recovery run (a record the master confirms "
              "unchanged is not rewritten): %s" % writes)
        print("ratio recovery / baseline: %.1fx" % (statistics.median(times) /
                                                     statistics.median(base)))
        print("ACCEPT calls during recovery runs: %d (0 = nothing relaunched)" % len(launched))
        v = [x for x in sim.violations() if x["severity"] == "error"]
        print("simulator violations: %d" % len(v))
        for x in v[:5]:
            print("  %s: %s (call %s)" % (x["kind"], x["message"], x.get("call")))
    finally:
        sim.stop()
        redis.stop()


if __name__ == "__main__":
    main()
