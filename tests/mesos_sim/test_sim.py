"""Tests of the Mesos master simulator (stdlib unittest, ~1 minute).

Run from the repository root:

    python3 -m unittest tests/mesos_sim/test_sim.py -v

The simulator must answer like the real Mesos 1.11 master captured in
shared/mesos-samples (every call capture is replayed), and must catch, and
record, the framework mistakes the real master tolerates silently.
"""

import base64
import collections
import glob
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import mesos_sim  # noqa: E402  (needs the path above)
from mesos_sim import ChunkedDecoder, MesosSim, ProtocolError, RecordIODecoder  # noqa: E402

SAMPLES = None
for _candidate in (os.environ.get("MESOS_SAMPLES"),
                   os.path.join(HERE, "..", "..", "..", "shared", "mesos-samples"),
                   "/work/shared/mesos-samples"):
    if _candidate and os.path.isdir(os.path.join(_candidate, "calls")):
        SAMPLES = os.path.abspath(_candidate)
        break

# The framework the captures were made with (Go M3s FrameworkInfo).
M3S_INFO = {"user": "root", "name": "m3s", "roles": ["m3s"],
            "capabilities": [{"type": "MULTI_ROLE"}], "failover_timeout": 5000.0,
            "checkpoint": True, "hostname": "127.0.0.1",
            "webui_url": "http://127.0.0.1:10000"}

# The two agents of the capture setup.
CAPTURE_AGENTS = [
    {"hostname": "127.0.0.1", "cpus": 4, "mem": 8192, "disk": 10000, "ports": "31000-32000",
     "port": 5051},
    {"hostname": "127.0.0.1", "cpus": 2, "mem": 4096, "disk": 5000, "ports": "32001-32100",
     "port": 5052},
]

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def make_sim(testcase, **kw):
    """A fast simulator: short heartbeats/intervals, stopped at test end."""
    opts = dict(agent_specs=CAPTURE_AGENTS, heartbeat=0.3, offer_interval=0.1,
                resend_interval=0.4, task_start_delay=0.02, health_delay=0.05,
                kill_delay=0.02, reregister_delay=0.5, seed=7)
    opts.update(kw)
    sim = MesosSim(**opts).start()
    # Cleanups run last-in first-out: stop first, then insist on no internal error.
    testcase.addCleanup(lambda: testcase.assertEqual(list(sim._errors), []))
    testcase.addCleanup(sim.stop)
    return sim


def http_request(port, method, path, headers=None, body=b"", timeout=5):
    """One request with exactly the given headers (plus Host and
    Content-Length).  Returns (status, body text, {header: value})."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body or method == "POST":
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body if body else None)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, data.decode("utf-8", "replace"), dict(resp.getheaders())
    finally:
        conn.close()


class Client:
    """A strict scheduler: the SUBSCRIBE stream is read from a raw socket
    through strict chunked and RecordIO decoders; calls go over http.client
    on another connection."""

    def __init__(self, sim, info=None, framework_id=None, body=None, headers=None,
                 auto_ack=False):
        self.sim = sim
        self.auto_ack = auto_ack
        self.cond = threading.Condition()
        self.events = []          # (monotonic time, event)
        self.chunks = []          # chunk payload sizes
        self.records_per_chunk = []
        self.split_records = 0    # chunks that ended inside a record
        self.eof = False
        self.clean_eof = False
        self.error = None
        self.closing = False
        self.conn = None
        self.ack_conn = None
        info = dict(info or M3S_INFO)
        if framework_id:
            info["id"] = {"value": framework_id}
        call = {"type": "SUBSCRIBE", "subscribe": {"framework_info": info}}
        if framework_id:
            call["framework_id"] = {"value": framework_id}
        raw = body if body is not None else json.dumps(call).encode()
        hdrs = {"Content-Type": "application/json", "Accept": "application/json"}
        if headers is not None:
            hdrs = headers
        self.sock = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
        lines = ["POST /api/v1/scheduler HTTP/1.1", "Host: 127.0.0.1:%d" % sim.port]
        lines += ["%s: %s" % kv for kv in hdrs.items()]
        lines.append("Content-Length: %d" % len(raw))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + raw)
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed before the response head")
            buf += data
        head, rest = buf.split(b"\r\n\r\n", 1)
        head_lines = head.decode().split("\r\n")
        self.status_line = head_lines[0]
        self.status = int(head_lines[0].split()[1])
        self.headers = collections.OrderedDict()
        for line in head_lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip()] = v.strip()
        self.stream_id = self.headers.get("Mesos-Stream-Id")
        self.body = b""
        if self.status != 200:
            need = int(self.headers.get("Content-Length", "0"))
            while len(rest) < need:
                rest += self.sock.recv(65536)
            self.body = rest
            self.sock.close()
            return
        self.framework_id = framework_id
        self.chunked = ChunkedDecoder()
        self.recordio = RecordIODecoder(max_record=16 * 1024 * 1024)
        self.thread = threading.Thread(target=self._read, args=(rest,), daemon=True)
        self.thread.start()

    # ---- the stream
    def _feed(self, data):
        for chunk in self.chunked.feed(data):
            self.chunks.append(len(chunk))
            records = self.recordio.feed(chunk)
            self.records_per_chunk.append(len(records))
            if self.recordio.need is not None or self.recordio.buf:
                self.split_records += 1
            now = time.monotonic()
            for ev in records:
                with self.cond:
                    if ev.get("type") == "SUBSCRIBED":
                        self.framework_id = ev["subscribed"]["framework_id"]["value"]
                    self.events.append((now, ev))
                    self.cond.notify_all()
                if self.auto_ack and ev.get("type") == "UPDATE" and "uuid" in ev["update"]["status"]:
                    self._ack(ev["update"]["status"])

    def _read(self, initial):
        try:
            self._feed(initial)
            while not self.chunked.finished:
                data = self.sock.recv(65536)
                if not data:
                    break
                self._feed(data)
        except ProtocolError as e:
            self.error = e
        except OSError:
            pass
        finally:
            with self.cond:
                self.eof = True
                self.clean_eof = self.chunked.finished
                self.cond.notify_all()

    def close(self):
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in (self.conn, self.ack_conn):
            if c is not None:
                c.close()

    def types(self):
        with self.cond:
            return [e.get("type") for _, e in self.events]

    def wait(self, predicate, timeout=3.0):
        """Wait until predicate(events) is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                value = predicate([e for _, e in self.events])
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0 or self.eof and not value:
                    return predicate([e for _, e in self.events])
                self.cond.wait(min(left, 0.1))

    def wait_event(self, etype, after=0, timeout=3.0, match=None):
        def find(evs):
            for i in range(after, len(evs)):
                if evs[i].get("type") == etype and (match is None or match(evs[i])):
                    return i + 1, evs[i]
            return None
        found = self.wait(find, timeout)
        if not found:
            raise AssertionError("no %s event within %.1f s (got %s)" % (etype, timeout,
                                                                       self.types()))
        return found

    def count(self):
        with self.cond:
            return len(self.events)

    def wait_eof(self, timeout=3.0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.eof and time.monotonic() < deadline:
                self.cond.wait(0.05)
            return self.eof

    def updates(self, after=0, task_id=None):
        with self.cond:
            out = []
            for _, e in self.events[after:]:
                if e.get("type") == "UPDATE":
                    st = e["update"]["status"]
                    if task_id is None or st["task_id"]["value"] == task_id:
                        out.append(st)
            return out

    def wait_update(self, task_id, state, after=0, timeout=3.0, **fields):
        def match(ev):
            st = ev["update"]["status"]
            return (st["task_id"]["value"] == task_id and st["state"] == state
                    and all(st.get(k) == v for k, v in fields.items()))
        return self.wait_event("UPDATE", after, timeout, match)

    def offers(self, after=0):
        with self.cond:
            out = []
            for _, e in self.events[after:]:
                if e.get("type") == "OFFERS":
                    out += e["offers"]["offers"]
            return out

    def wait_offer(self, after=0, agent_id=None, timeout=3.0):
        def match(ev):
            return any(agent_id is None or o["agent_id"]["value"] == agent_id
                       for o in ev["offers"]["offers"])
        idx, ev = self.wait_event("OFFERS", after, timeout, match)
        for o in ev["offers"]["offers"]:
            if agent_id is None or o["agent_id"]["value"] == agent_id:
                return idx, o

    # ---- calls
    def call(self, obj, stream_id=True, headers=None, raw=None):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=5)
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if stream_id is True:
            h["Mesos-Stream-Id"] = self.stream_id
        elif stream_id:
            h["Mesos-Stream-Id"] = stream_id
        if headers:
            h.update(headers)
        body = raw if raw is not None else json.dumps(obj).encode()
        self.conn.request("POST", "/api/v1/scheduler", body, h)
        resp = self.conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")

    def fw(self, ctype, **body):
        call = {"type": ctype, "framework_id": {"value": self.framework_id}}
        call.update(body)
        return call

    def _ack(self, status):
        if self.ack_conn is None:
            self.ack_conn = http.client.HTTPConnection("127.0.0.1", self.sim.port, timeout=5)
        call = self.fw("ACKNOWLEDGE", acknowledge={
            "agent_id": status["agent_id"], "task_id": status["task_id"], "uuid": status["uuid"]})
        try:
            self.ack_conn.request("POST", "/api/v1/scheduler", json.dumps(call),
                                  {"Content-Type": "application/json",
                                   "Mesos-Stream-Id": self.stream_id})
            self.ack_conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            if not self.closing:  # only the test's own cleanup may interrupt us
                raise

    def ack(self, status):
        return self.call(self.fw("ACKNOWLEDGE", acknowledge={
            "agent_id": status["agent_id"], "task_id": status["task_id"],
            "uuid": status["uuid"]}))

    def launch(self, offer, task_id, cpus=0.1, mem=32, extra=None, ports=None, filters=0):
        ti = task_info(offer["agent_id"]["value"], task_id, cpus, mem, ports)
        if extra:
            ti.update(extra)
        return self.call(self.fw("ACCEPT", accept={
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [ti]}}],
            "filters": {"refuse_seconds": filters}}))


def task_info(agent_id, task_id, cpus=0.1, mem=32, ports=None):
    res = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": cpus}},
           {"name": "mem", "type": "SCALAR", "scalar": {"value": mem}}]
    if ports:
        res.append({"name": "ports", "type": "RANGES",
                    "ranges": {"range": [{"begin": b, "end": e} for b, e in ports]}})
    return {"name": "sample-" + task_id, "task_id": {"value": task_id},
            "agent_id": {"value": agent_id}, "resources": res,
            "command": {"shell": True, "value": "sleep 1000"}}


def subscribe(testcase, sim, **kw):
    c = Client(sim, **kw)
    testcase.addCleanup(c.close)
    testcase.assertEqual(c.status, 200, c.body)
    c.wait_event("SUBSCRIBED")
    return c


def uuid_b64():
    return base64.b64encode(uuid.uuid4().bytes).decode()


# ---------------------------------------------------------------------------
# Replay of every call capture.
# ---------------------------------------------------------------------------

CAP_MASTER = "82317765-6c51-4b5d-9b5d-eb9f972e545e"
CAP_FW = CAP_MASTER + "-0000"
CAP_SID = "aef86433-0a8e-4e2f-a71a-3caf4a699ef9"
CAP_SID_AFTER_RESTART = "cc5a4bda-c66f-44f7-8402-4811b9cbe40a"
CAP_SID_MADEUP = "0be28568-0242-4ab1-ac1b-bf3938a72114"
OFFER_RE = re.compile(re.escape(CAP_MASTER) + r"-O\d+")


@unittest.skipIf(SAMPLES is None, "shared/mesos-samples not found")
class CaptureReplayTest(unittest.TestCase):
    """Every calls/*.json capture, replayed against a fresh simulator set up
    like the capture cluster: same status, same body, same headers, same
    resulting events (ids adapted)."""

    maxDiff = None

    def setUp(self):
        self.sim = make_sim(self)
        self.main = subscribe(self, self.sim)
        # As in the capture session, the first OFFERS has arrived before any call.
        self.main.wait_event("OFFERS")
        self.agents = self.sim.agent_ids()
        self.subst = {CAP_FW: self.main.framework_id, CAP_SID: self.main.stream_id,
                      CAP_SID_AFTER_RESTART: self.main.stream_id,
                      CAP_MASTER + "-S0": self.agents[0], CAP_MASTER + "-S1": self.agents[1]}
        self.offer_for = None   # substitute for captured offer ids

    # ---- helpers
    def fresh_offer(self, agent=0, timeout=3.0):
        """Wait for an offer of the given agent that is still outstanding."""
        aid = self.agents[agent]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            live = {o["id"] for o in self.sim.state(False)["offers"]}
            for o in reversed(self.main.offers()):
                if o["agent_id"]["value"] == aid and o["id"]["value"] in live:
                    return o
            time.sleep(0.02)
        raise AssertionError("no outstanding offer for agent %d" % agent)

    def run_task(self, task_id, extra=None, ack=True, ports=None):
        """Launch a task on agent 0 and acknowledge everything it sends."""
        before = self.main.count()
        self.main.launch(self.fresh_offer(), task_id, extra=extra, ports=ports)
        _, ev = self.main.wait_update(task_id, "TASK_STARTING", before)
        if ack:
            self.main.ack(ev["update"]["status"])
            _, ev = self.main.wait_update(task_id, "TASK_RUNNING", before)
            self.main.ack(ev["update"]["status"])
            if extra and "health_check" in extra:
                _, ev = self.main.wait_update(task_id, "TASK_RUNNING", before, healthy=True)
                self.main.ack(ev["update"]["status"])
        return ev

    def substitute(self, value):
        if isinstance(value, str):
            for k, v in self.subst.items():
                value = value.replace(k, v)
            if self.offer_for is not None:
                value = OFFER_RE.sub(self.offer_for, value)
            return value
        if isinstance(value, list):
            return [self.substitute(v) for v in value]
        if isinstance(value, dict):
            return {k: self.substitute(v) for k, v in value.items()}
        return value

    def replay(self, cap):
        req = cap["request"]
        headers = {k: self.substitute(v) for k, v in req["headers"].items()
                   if k not in ("Host", "Content-Length")}
        body = req["body"]
        if body is None:
            raw = b""
        elif isinstance(body, str):
            raw = body.encode()
        else:
            raw = json.dumps(self.substitute(body)).encode()
        return http_request(self.sim.port, req["method"], req["path"], headers, raw)

    def check_response(self, name, cap, got):
        status, body, headers = got
        exp = cap["response"]
        self.assertEqual(status, exp["status"], "%s: %s" % (name, body))
        self.assertEqual(body, self.substitute(exp["body"]), name)
        for key in ("Content-Type", "Allow", "Content-Length"):
            if key in exp["headers"]:
                self.assertEqual(headers.get(key), self.substitute(exp["headers"][key]),
                                 "%s: header %s" % (name, key))
            else:
                self.assertNotIn(key, headers, "%s: unexpected header %s" % (name, key))

    def check_events(self, name, cap, after, client=None):
        """Each expected UPDATE arrives, with the same fields that matter."""
        client = client or self.main
        for exp in cap.get("resulting_events", []):
            exp = self.substitute(exp)
            st = exp["update"]["status"]
            _, ev = client.wait_update(st["task_id"]["value"], st["state"], after)
            got = ev["update"]["status"]
            if "uuid" in got:
                client.ack(got)  # the capture client acknowledged, so the next one flows
            for key in ("message", "source", "reason", "healthy"):
                self.assertEqual(got.get(key), st.get(key), "%s: %s of %s" % (name, key, st))
            for key in ("uuid", "agent_id", "container_status", "executor_id"):
                self.assertEqual(key in got, key in st, "%s: presence of %s" % (name, key))
            if "agent_id" in st:
                self.assertEqual(got["agent_id"], st["agent_id"], name)

    def no_offers_for(self, seconds, after):
        time.sleep(seconds)
        return not self.main.offers(after)

    # ---- preparations and extra checks, keyed by capture file
    def prepare(self, name):
        if name in ("accept-resources-exceed-offer", "accept-valid", "decline-with-filters",
                    "accept-duplicate-task-id-within-one-launch", "err-bool-for-double",
                    "err-content-type-missing", "err-content-type-text-plain",
                    "err-content-type-with-charset", "err-missing-required-task-name",
                    "err-missing-stream-id", "err-wrong-stream-id"):
            self.offer_for = self.fresh_offer()["id"]["value"]
        elif name in ("accept-duplicate-task-id-of-running-task", "kill-empty-agent-id"):
            self.run_task("health-cmd", {"health_check": {
                "type": "COMMAND", "command": {"value": "true"}, "interval_seconds": 1.0}})
            self.offer_for = self.fresh_offer()["id"]["value"]
        elif name in ("reconcile-explicit", "reconcile-implicit"):
            self.run_task("health-cmd", {"health_check": {
                "type": "COMMAND", "command": {"value": "true"}, "interval_seconds": 1.0}})
            self.run_task("health-http", {"health_check": {
                "type": "HTTP", "http": {"port": 31500, "path": "/", "scheme": "http"}}},
                ports=[(31500, 31500)])
            self.run_task("cmd-ok")
            before = self.main.count()
            self.sim.finish_task("cmd-ok")
            _, ev = self.main.wait_update("cmd-ok", "TASK_FINISHED", before)
            self.main.ack(ev["update"]["status"])
            self.sim.wait_until(lambda: not self.sim.unacked_updates())
        elif name in ("revive", "revive-roles", "revive-unknown-role"):
            offers = [self.fresh_offer(0), self.fresh_offer(1)]
            self.main.call(self.main.fw("DECLINE", decline={
                "offer_ids": [o["id"] for o in offers], "filters": {"refuse_seconds": 1000}}))
        elif name in ("suppress", "suppress-no-roles"):
            pass
        elif name == "err-old-stream-id-after-failover":
            old = self.main.stream_id
            new = subscribe(self, self.sim, framework_id=self.main.framework_id)
            self.main.wait_eof()
            self.subst[CAP_SID] = old
            self.main = new
        elif name == "teardown":
            made_up = subscribe(self, self.sim, framework_id="made-up-framework-id-0001",
                                info=dict(M3S_INFO, name="m3s-madeup"))
            self.subst[CAP_SID_MADEUP] = made_up.stream_id
            self.madeup = made_up

    def after(self, name, cap, mark):
        sim, main = self.sim, self.main
        if name in ("revive", "revive-roles"):
            self.assertTrue(main.offers(mark) or main.wait_event("OFFERS", mark, 1.0),
                            "OFFERS must follow a REVIVE at once")
        elif name == "revive-unknown-role":
            self.assertTrue(self.no_offers_for(0.6, mark))
            self.assertTrue(sim.violations(kind="revive_unknown_role"))
        elif name in ("suppress", "suppress-no-roles"):
            live = [{"value": x["id"]} for x in sim.state(False)["offers"]]
            self.assertTrue(live)
            main.call(main.fw("DECLINE", decline={"offer_ids": live,
                                                  "filters": {"refuse_seconds": 0}}))
            mark = main.count()
            self.assertTrue(self.no_offers_for(1.0, mark), "no OFFERS after SUPPRESS")
        elif name == "decline-with-filters":
            declined = time.monotonic()
            idx, _ = main.wait_offer(mark, agent_id=self.agents[0], timeout=3.0)
            with main.cond:
                at = main.events[idx - 1][0]
            self.assertGreaterEqual(at - declined, 0.9, "re-offered before refuse_seconds")
            self.assertLess(at - declined, 2.0)
        elif name == "kill-empty-agent-id":
            time.sleep(0.3)
            self.assertEqual(main.updates(mark), [])
            self.assertTrue(sim.violations(kind="kill_wrong_agent"))
        elif name in ("teardown-main-framework",):
            self.assertTrue(main.wait_eof())
            self.assertTrue(main.clean_eof)
            self.assertEqual([e for e in main.types()[mark:] if e != "HEARTBEAT"], [])
        elif name == "teardown":
            self.assertTrue(self.madeup.wait_eof())
            self.assertTrue(self.madeup.clean_eof)
        elif name == "accept-unknown-offer":
            self.assertTrue(sim.violations(kind="offer_unknown"))
        elif name == "ack-unknown-task-valid-uuid":
            self.assertTrue(sim.violations(kind="ack_unknown_uuid"))
        elif name == "subscribe-ok":
            pass
        elif name.startswith("err-"):
            self.assertTrue(sim.violations(), "%s must be recorded as a violation" % name)

    def test_replay_every_call_capture(self):
        files = sorted(glob.glob(os.path.join(SAMPLES, "calls", "*.json")))
        self.assertGreaterEqual(len(files), 39)
        replayed = 0
        for path in files:
            name = os.path.basename(path)[:-5]
            with open(path) as f:
                cap = json.load(f)
            with self.subTest(capture=name):
                # A fresh cluster for every capture, as in the capture session.
                self.doCleanups()
                self.setUp()
                if name == "subscribe-ok":
                    self.check_subscribe_ok(cap)
                    replayed += 1
                    continue
                self.prepare(name)
                mark = self.main.count()
                got = self.replay(cap)
                self.check_response(name, cap, got)
                self.check_events(name, cap, mark,
                                  self.madeup if name == "teardown" else None)
                self.after(name, cap, mark)
                replayed += 1
        self.assertEqual(replayed, len(files))

    def check_subscribe_ok(self, cap):
        req = cap["request"]
        c = Client(self.sim, body=json.dumps(req["body"]).encode(),
                   headers={k: v for k, v in req["headers"].items()
                            if k not in ("Host", "Content-Length")})
        self.addCleanup(c.close)
        self.assertEqual(c.status_line, cap["response"]["status_line"])
        for key, value in cap["response"]["headers"].items():
            if key == "Date":
                continue
            self.assertIn(key, c.headers)
            if key == "Mesos-Stream-Id":
                self.assertRegex(c.headers[key], UUID_RE)
            else:
                self.assertEqual(c.headers[key], value)
        self.assertNotIn("Content-Length", c.headers)
        c.wait_event("HEARTBEAT")
        self.assertEqual(c.types()[:2], ["SUBSCRIBED", "HEARTBEAT"])


# ---------------------------------------------------------------------------
# Stricter than the real master: what gets recorded.
# ---------------------------------------------------------------------------

class StrictCheckTest(unittest.TestCase):
    def setUp(self):
        self.sim = make_sim(self)
        self.c = subscribe(self, self.sim)
        self.c.wait_event("OFFERS")

    def kinds(self):
        return [v["kind"] for v in self.sim.violations()]

    def live_offer(self, agent=0):
        aid = self.sim.agent_ids()[agent]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            live = {o["id"] for o in self.sim.state(False)["offers"]}
            for o in reversed(self.c.offers()):
                if o["agent_id"]["value"] == aid and o["id"]["value"] in live:
                    return o
            time.sleep(0.02)
        self.fail("no live offer")

    def test_unknown_field_is_recorded_but_answered_like_the_real_master(self):
        o = self.live_offer()
        status, body = self.c.call(self.c.fw("DECLINE", decline={
            "offer_ids": [o["id"]], "filters": {"refuse_second": 30}}))
        self.assertEqual((status, body), (202, ""))
        v = self.sim.violations(kind="unknown_field")
        self.assertEqual(len(v), 1)
        self.assertEqual(v[0]["path"], "decline.filters.refuse_second")
        self.assertEqual(v[0]["call"], "DECLINE")
        self.assertEqual(v[0]["status"], 202)

    def test_unknown_enum_names_are_dropped_and_recorded(self):
        info = dict(M3S_INFO, capabilities=[{"type": "MULTI_ROLE"}, {"type": "TELEPATHY"}])
        c = subscribe(self, self.sim, info=info)
        self.assertEqual(self.sim.operator_frameworks(c.framework_id)["frameworks"][0]
                         ["capabilities"], ["MULTI_ROLE"])
        self.assertIn("unknown_enum_value", self.kinds())
        # An unknown name in a required enum is a 400.
        status, body = self.c.call(self.c.fw("ACCEPT", accept={
            "offer_ids": [self.live_offer()["id"]], "operations": [{"type": "LAUNCH", "launch": {
                "task_infos": [dict(task_info(self.sim.agent_ids()[0], "x"), resources=[
                    {"name": "cpus", "type": "SCALER", "scalar": {"value": 1}}])]}}]}))
        self.assertEqual((status, body), (400, "Failed to convert JSON into Call protobuf: "
                                               "Failed to find enum for 'SCALER'"))

    def test_json_types_enums_as_names_and_base64(self):
        cases = [
            ({"type": 3}, "Failed to convert JSON into Call protobuf: Not expecting a JSON "
                          "number for field 'type'"),
            (self.c.fw("REVIVE", revive={"roles": {"r": 1}}),
             "Failed to convert JSON into Call protobuf: Not expecting a JSON object for field "
             "'roles'"),
            (self.c.fw("KILL", kill={"task_id": ["a"]}),
             "Failed to convert JSON into Call protobuf: Not expecting a JSON array for field "
             "'task_id'"),
            (self.c.fw("ACKNOWLEDGE", acknowledge={
                "agent_id": {"value": "a"}, "task_id": {"value": "t"},
                "uuid": base64.urlsafe_b64encode(b"\xfb\xff" * 8).decode()}),
             "Failed to convert JSON into Call protobuf: Failed to base64 decode bytes field "
             "'uuid': Invalid character '-'"),
            (self.c.fw("ACKNOWLEDGE", acknowledge={"agent_id": {"value": "a"},
                                                   "task_id": {"value": "t"}, "uuid": ""}),
             "Failed to validate scheduler::Call: Not a valid UUID"),
        ]
        for call, expected in cases:
            with self.subTest(call=call):
                self.assertEqual(self.c.call(call), (400, expected))
        self.assertIn("json_type", self.kinds())
        self.assertIn("bad_base64", self.kinds())

    def test_required_fields_are_checked_recursively(self):
        ti = task_info(self.sim.agent_ids()[0], "vol")
        ti["container"] = {"type": "DOCKER", "docker": {"image": "x", "port_mappings": [
            {"host_port": 31000}]}, "volumes": [{"container_path": "/data"}]}
        ti["discovery"] = {"ports": {"ports": [{"name": "http"}]}}
        status, body = self.c.call(self.c.fw("ACCEPT", accept={
            "offer_ids": [self.live_offer()["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [ti]}}]}))
        self.assertEqual(status, 400)
        self.assertEqual(body, "Failed to convert JSON into Call protobuf: Missing required "
                               "fields: accept.operations[0].launch.task_infos[0].container."
                               "volumes[0].mode, accept.operations[0].launch.task_infos[0]."
                               "container.docker.port_mappings[0].container_port, accept."
                               "operations[0].launch.task_infos[0].discovery.visibility, "
                               "accept.operations[0].launch.task_infos[0].discovery.ports.ports"
                               "[0].number")
        self.assertIn("missing_required_field", self.kinds())

    def test_resources_beyond_the_offer(self):
        o = self.live_offer()
        before = self.c.count()
        # Ports outside the offered range.
        self.c.launch(o, "bad-ports", ports=[(30000, 30001)])
        _, ev = self.c.wait_update("bad-ports", "TASK_ERROR", before)
        self.assertIn("is more than available", ev["update"]["status"]["message"])
        self.assertNotIn("uuid", ev["update"]["status"])
        # Two tasks that each fit but together exceed the offer (scalars summed).
        o = self.live_offer()
        aid = o["agent_id"]["value"]
        before = self.c.count()
        self.c.call(self.c.fw("ACCEPT", accept={"offer_ids": [o["id"]], "operations": [
            {"type": "LAUNCH", "launch": {"task_infos": [task_info(aid, "half-1", cpus=3),
                                                         task_info(aid, "half-2", cpus=3)]}}]}))
        self.c.wait_update("half-1", "TASK_STARTING", before)
        _, ev = self.c.wait_update("half-2", "TASK_ERROR", before)
        self.assertRegex(ev["update"]["status"]["message"],
                         r"^Total resources cpus\(allocated: m3s\):3; mem\(allocated: m3s\):32 "
                         r"required by task and its executor is more than available "
                         r"ports\(allocated: m3s\):\[31000-32000\]; cpus\(allocated: m3s\):1;")
        self.assertEqual(len(self.sim.violations(kind="resources_exceed_offer")), 2)

    def test_operations_mixing_agents(self):
        o0, o1 = self.live_offer(0), self.live_offer(1)
        before = self.c.count()
        ti = task_info(o0["agent_id"]["value"], "mixed")
        self.assertEqual(self.c.call(self.c.fw("ACCEPT", accept={
            "offer_ids": [o0["id"], o1["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [ti]}}]})), (202, ""))
        _, ev = self.c.wait_update("mixed", "TASK_LOST", before)
        st = ev["update"]["status"]
        self.assertEqual(st["reason"], "REASON_INVALID_OFFERS")
        self.assertEqual(st["message"], "Task launched with invalid offers: Aggregated offers "
                         "must belong to one single agent. Offer %s uses agent %s and agent %s"
                         % (o1["id"]["value"], o1["agent_id"]["value"], o0["agent_id"]["value"]))
        self.assertIn("offers_mixed_agents", self.kinds())
        # Both offers went back: they are offered again.
        self.c.wait_offer(before, o0["agent_id"]["value"])

    def test_reused_offer_id(self):
        o = self.live_offer()
        self.c.launch(o, "first")
        before = self.c.count()
        self.c.launch(o, "second")
        _, ev = self.c.wait_update("second", "TASK_LOST", before)
        self.assertEqual(ev["update"]["status"]["message"], "Task launched with invalid offers: "
                         "Offer %s is no longer valid" % o["id"]["value"])
        v = self.sim.violations(kind="offer_reused")
        self.assertEqual(len(v), 1)
        self.assertIn("accepted", v[0]["message"])
        # A DECLINE of a consumed offer is ignored by the master but recorded.
        self.c.call(self.c.fw("DECLINE", decline={"offer_ids": [o["id"]]}))
        self.assertEqual(len(self.sim.violations(kind="offer_reused")), 2)

    def test_duplicate_task_id(self):
        self.c.launch(self.live_offer(), "dup")
        self.c.wait_update("dup", "TASK_STARTING")
        before = self.c.count()
        self.c.launch(self.live_offer(), "dup")
        _, ev = self.c.wait_update("dup", "TASK_ERROR", before)
        self.assertEqual(ev["update"]["status"]["message"], "Task has duplicate ID: dup")
        self.assertIn("duplicate_task_id", self.kinds())

    def test_acknowledgements_with_unknown_uuid(self):
        self.c.launch(self.live_offer(), "acked")
        _, ev = self.c.wait_update("acked", "TASK_STARTING")
        st = dict(ev["update"]["status"])
        self.assertEqual(self.c.ack(dict(st, uuid=uuid_b64())), (202, ""))
        self.assertIn("ack_unknown_uuid", self.kinds())
        self.assertEqual(self.c.ack(dict(st, agent_id={"value": self.sim.agent_ids()[1]})),
                         (202, ""))
        self.assertIn("ack_wrong_agent", self.kinds())
        # The right acknowledgement still works, and acking a copy twice is fine.
        self.assertEqual(self.c.ack(st), (202, ""))
        self.assertEqual(self.c.ack(st), (202, ""))
        self.c.wait_update("acked", "TASK_RUNNING")

    def test_calls_before_subscribed(self):
        self.sim.configure(subscribed_delay=0.5)
        c2 = Client(self.sim, framework_id=self.c.framework_id)
        self.addCleanup(c2.close)
        self.assertEqual(c2.status, 200)
        # The 200 head is there, SUBSCRIBED is not: the master still has the
        # old stream for this framework.
        status, body = c2.call(c2.fw("REVIVE"))
        self.assertEqual(status, 400)
        self.assertIn("didn't match the stream ID currently associated", body)
        self.assertIn("call_before_subscribed", self.kinds())
        c2.wait_event("SUBSCRIBED")
        self.assertEqual(c2.call(c2.fw("REVIVE")), (202, ""))

    def test_wrong_and_missing_stream_id_are_not_executed(self):
        o = self.live_offer()
        call = self.c.fw("DECLINE", decline={"offer_ids": [o["id"]]})
        self.assertEqual(self.c.call(call, stream_id=None)[0], 400)
        self.assertEqual(self.c.call(call, stream_id=str(uuid.uuid4()))[0], 400)
        self.assertEqual(self.c.call(call, stream_id=self.c.stream_id + " ")[0], 400)
        self.assertIn(o["id"]["value"], {x["id"] for x in self.sim.state(False)["offers"]})
        self.assertEqual(self.kinds().count("missing_stream_id"), 1)
        self.assertEqual(self.kinds().count("wrong_stream_id"), 2)

    def test_expect_100_continue_is_recorded_and_never_answered(self):
        s = socket.create_connection(("127.0.0.1", self.sim.port), timeout=5)
        self.addCleanup(s.close)
        body = json.dumps(self.c.fw("REVIVE")).encode()
        s.sendall(("POST /api/v1/scheduler HTTP/1.1\r\nHost: x\r\nContent-Type: "
                   "application/json\r\nMesos-Stream-Id: %s\r\nExpect: 100-continue\r\n"
                   "Content-Length: %d\r\n\r\n" % (self.c.stream_id, len(body))).encode())
        s.settimeout(0.3)
        with self.assertRaises(socket.timeout):
            s.recv(100)  # no "100 Continue", like libprocess
        s.settimeout(5)
        s.sendall(body)
        self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 202 Accepted"))
        self.assertIn("expect_100_continue", self.kinds())

    def test_content_type_with_charset_is_415(self):
        status, body = self.c.call(self.c.fw("REVIVE"),
                                   headers={"Content-Type": "application/json; charset=utf-8"})
        self.assertEqual(status, 415)
        self.assertIn("content_type_charset", self.kinds())

    def test_status_code_order(self):
        """401 before 307/503 before 405 before 400 (Content-Type) ..."""
        port = self.sim.port
        self.sim.require_auth("p", "s")
        self.sim.no_leader()
        self.assertEqual(http_request(port, "GET", "/api/v1/scheduler")[0], 401)
        good = {"Authorization": "Basic " + base64.b64encode(b"p:s").decode()}
        self.assertEqual(http_request(port, "GET", "/api/v1/scheduler", good)[:2],
                         (503, "No leader elected"))
        self.sim.no_leader(False)
        self.sim.set_recovering(True)
        self.assertEqual(http_request(port, "GET", "/api/v1/scheduler", good)[:2],
                         (503, "Master has not finished recovery"))
        self.sim.set_recovering(False)
        self.assertEqual(http_request(port, "GET", "/api/v1/scheduler", good)[0], 405)
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler", good, b"{")[1],
                         "Expecting 'Content-Type' to be present")
        ct = dict(good, **{"Content-Type": "text/plain"})
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler", ct, b"{")[0], 415)
        ct["Content-Type"] = "application/json"
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler", ct, b"{")[1],
                         "Failed to parse body into JSON: syntax error at line 1 near: ")
        self.assertEqual(http_request(port, "POST", "/master/api/v1/scheduler/", ct,
                                      b'{"type":"SUBSCRIBE"}')[1],
                         "Failed to validate scheduler::Call: Expecting 'subscribe' to be present")
        sub = json.dumps({"type": "SUBSCRIBE", "subscribe": {"framework_info": M3S_INFO}})
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler",
                                      dict(ct, Accept="text/html"), sub.encode())[0], 406)
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler",
                                      dict(ct, **{"Mesos-Stream-Id": "x"}), sub.encode())[0], 400)
        fw = json.dumps(self.c.fw("REVIVE")).encode()
        # The authenticated principal must be the framework's (unset here).
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler", ct, fw)[:2],
                         (400, "Authenticated principal 'p' does not match principal '' set "
                               "in `FrameworkInfo`"))
        self.sim.disable_auth()
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler", ct, fw)[1],
                         "All non-subscribe calls should include the 'Mesos-Stream-Id' header")
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler",
                                      dict(ct, **{"Mesos-Stream-Id": self.c.stream_id}), fw)[0],
                         202)
        unknown = json.dumps({"type": "UNKNOWN", "framework_id": {"value":
                                                                   self.c.framework_id}})
        self.assertEqual(http_request(port, "POST", "/api/v1/scheduler",
                                      dict(ct, **{"Mesos-Stream-Id": self.c.stream_id}),
                                      unknown.encode())[0], 501)


# ---------------------------------------------------------------------------
# The stream on the wire.
# ---------------------------------------------------------------------------

class StreamTest(unittest.TestCase):
    def test_raw_stream_parses_with_strict_decoders(self):
        sim = make_sim(self, heartbeat=0.05, chunking="random", seed=3)
        c = subscribe(self, sim)
        self.assertEqual(c.status_line, "HTTP/1.1 200 OK")
        self.assertEqual(c.headers["Transfer-Encoding"], "chunked")
        self.assertEqual(c.headers["Content-Type"], "application/json")
        self.assertRegex(c.stream_id, UUID_RE)
        c.wait(lambda evs: len(evs) > 40, timeout=5)
        types = c.types()
        self.assertEqual(types[:2], ["SUBSCRIBED", "HEARTBEAT"])
        self.assertIn("OFFERS", types)
        self.assertIsNone(c.error)
        sub = c.events[0][1]["subscribed"]
        self.assertIsInstance(sub["heartbeat_interval_seconds"], float)
        self.assertEqual(sub["master_info"]["ip"], 16777343)
        self.assertEqual(sub["master_info"]["address"], {"hostname": "127.0.0.1",
                                                         "ip": "127.0.0.1", "port": sim.port})
        self.assertRegex(sub["framework_id"]["value"],
                         "^" + re.escape(sim.master_id) + "-0000$")
        # Naive parsers get caught: records split across chunks, and several
        # records inside one chunk, both happen.
        self.assertGreater(c.split_records, 0)
        self.assertGreater(max(c.records_per_chunk), 1)
        offer = c.offers()[0]
        self.assertEqual([r["name"] for r in offer["resources"]], ["ports", "cpus", "mem", "disk"])
        self.assertEqual(offer["resources"][1], {"name": "cpus", "type": "SCALAR",
                                                 "scalar": {"value": 4.0}, "role": "*",
                                                 "allocation_info": {"role": "m3s"}})

    def test_records_are_compact_and_byte_counted(self):
        rec = mesos_sim.encode_record({"type": "ERROR", "error": {"message": "d\u00e9j\u00e0"}})
        length, _, data = rec.partition(b"\n")
        self.assertEqual(int(length), len(data))
        self.assertNotIn(b" ", data)
        self.assertEqual(mesos_sim.encode_record({"type": "HEARTBEAT"}),
                         b'20\n{"type":"HEARTBEAT"}')

    def test_heartbeats_arrive_at_the_configured_interval(self):
        sim = make_sim(self, heartbeat=0.2)
        c = subscribe(self, sim)
        c.wait(lambda evs: sum(e["type"] == "HEARTBEAT" for e in evs) >= 7, timeout=3)
        with c.cond:
            times = [t for t, e in c.events if e["type"] == "HEARTBEAT"]
        gaps = [b - a for a, b in zip(times[1:], times[2:])]
        self.assertAlmostEqual(sum(gaps) / len(gaps), 0.2, delta=0.06)
        self.assertEqual(c.events[0][1]["subscribed"]["heartbeat_interval_seconds"], 0.2)

    def test_update_resent_until_acknowledged_with_backoff(self):
        sim = make_sim(self, resend_interval=0.25)
        c = subscribe(self, sim)
        _, offer = c.wait_offer()
        c.launch(offer, "slow-acker")
        c.wait(lambda evs: len(c.updates(task_id="slow-acker")) >= 3, timeout=3)
        ups = c.updates(task_id="slow-acker")
        self.assertEqual([u["state"] for u in ups[:3]], ["TASK_STARTING"] * 3)
        self.assertEqual(len({u["uuid"] for u in ups[:3]}), 1)
        with c.cond:
            times = [t for t, e in c.events if e["type"] == "UPDATE"]
        self.assertGreater(times[2] - times[1], 1.5 * (times[1] - times[0]))  # doubling
        # RUNNING waits behind the unacknowledged STARTING.
        self.assertNotIn("TASK_RUNNING", [u["state"] for u in ups])
        self.assertEqual(sim.unacked_updates()[0]["queued_behind"], 1)
        found = sim.check_unacked(older_than=0.2)
        self.assertEqual(len(found), 1)
        self.assertEqual(sim.violations(kind="unacked_update")[0]["severity"], "error")
        c.ack(ups[0])
        c.wait_update("slow-acker", "TASK_RUNNING")


# ---------------------------------------------------------------------------
# Task lifecycle, offers, filters, reconciliation.
# ---------------------------------------------------------------------------

class LifecycleTest(unittest.TestCase):
    def test_launch_health_kill_and_resources_come_back(self):
        sim = make_sim(self)
        c = subscribe(self, sim, auto_ack=True)
        _, offer = c.wait_offer(agent_id=sim.agent_ids()[0])
        mark = c.count()
        c.launch(offer, "web", cpus=1.5, extra={"health_check": {
            "type": "TCP", "tcp": {"port": 31000}}}, ports=[(31000, 31000)])
        c.wait_update("web", "TASK_STARTING", mark)
        c.wait_update("web", "TASK_RUNNING", mark)
        _, ev = c.wait_update("web", "TASK_RUNNING", mark, healthy=True)
        self.assertEqual(ev["update"]["status"]["reason"],
                         "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED")
        fws = sim.operator_frameworks()["frameworks"][0]
        _, o2 = c.wait_offer(mark, agent_id=sim.agent_ids()[0])
        res = {r["name"]: r for r in o2["resources"]}
        self.assertEqual(res["cpus"]["scalar"]["value"], 2.5)
        self.assertEqual(res["ports"]["ranges"]["range"], [{"begin": 31001, "end": 32000}])
        mark = c.count()
        self.assertEqual(c.call(c.fw("KILL", kill={"task_id": {"value": "web"},
                                                   "agent_id": offer["agent_id"]})), (202, ""))
        _, ev = c.wait_update("web", "TASK_KILLED", mark)
        self.assertIn("uuid", ev["update"]["status"])
        # The freed resources come back (as a new offer beside the one held).
        a0 = sim.agent_ids()[0]

        def offered_cpus():
            return sum(o["resources"]["cpus"] for o in sim.state(False)["offers"]
                       if o["agent_id"] == a0)
        self.assertEqual(sim.wait_until(lambda: offered_cpus() == 4.0, timeout=3), True)
        sim.wait_until(lambda: sim.operator_frameworks()["frameworks"][0]["completed_tasks"])
        done = sim.operator_frameworks()["frameworks"][0]["completed_tasks"][0]
        self.assertEqual(done["state"], "TASK_KILLED")
        self.assertEqual([s["state"] for s in done["statuses"]],
                         ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLED"])
        self.assertTrue(done["statuses"][1]["healthy"])
        self.assertEqual(fws["tasks"][0]["health_check"]["tcp"], {"protocol": "IPv4",
                                                                  "port": 31000})

    def test_killing_state_and_kill_before_launch(self):
        sim = make_sim(self, task_start_delay=0.5)
        info = dict(M3S_INFO, capabilities=[{"type": "MULTI_ROLE"},
                                            {"type": "TASK_KILLING_STATE"}])
        c = subscribe(self, sim, info=info, auto_ack=True)
        _, offer = c.wait_offer()
        c.launch(offer, "early")
        c.call(c.fw("KILL", kill={"task_id": {"value": "early"}}))
        _, ev = c.wait_update("early", "TASK_KILLED")
        self.assertEqual(ev["update"]["status"]["reason"], "REASON_TASK_KILLED_DURING_LAUNCH")
        sim.configure(task_start_delay=0.01)
        _, offer = c.wait_offer(c.count())
        c.launch(offer, "late")
        c.wait_update("late", "TASK_RUNNING")
        mark = c.count()
        c.call(c.fw("KILL", kill={"task_id": {"value": "late"}}))
        c.wait_update("late", "TASK_KILLING", mark)
        c.wait_update("late", "TASK_KILLED", mark)

    def test_filters_suppress_and_revive(self):
        sim = make_sim(self)
        c = subscribe(self, sim)
        c.wait(lambda evs: len(c.offers()) >= 2)
        a0 = sim.agent_ids()[0]
        o = [x for x in c.offers() if x["agent_id"]["value"] == a0][0]
        mark = c.count()
        c.call(c.fw("DECLINE", decline={"offer_ids": [o["id"]],
                                        "filters": {"refuse_seconds": 0.6}}))
        t0 = time.monotonic()
        idx, _ = c.wait_offer(mark, agent_id=a0, timeout=3)
        self.assertGreaterEqual(c.events[idx - 1][0] - t0, 0.55)
        # Without filters an ACCEPT's leftovers are refused for 5 s.
        _, o = c.wait_offer(idx - 1, agent_id=a0)
        c.call(c.fw("ACCEPT", accept={
            "offer_ids": [o["id"]], "operations": [{"type": "LAUNCH", "launch": {
                "task_infos": [task_info(a0, "t")]}}]}))
        mark = c.count()
        time.sleep(0.5)
        self.assertEqual([x for x in c.offers(mark) if x["agent_id"]["value"] == a0], [])
        c.call(c.fw("SUPPRESS"))
        self.assertEqual(c.call(c.fw("REVIVE")), (202, ""))
        c.wait_offer(mark, agent_id=a0, timeout=1.0)
        # Suppressed: nothing, whatever is declined.
        c.call(c.fw("SUPPRESS", suppress={"roles": ["m3s"]}))
        live = [{"value": x["id"]} for x in sim.state(False)["offers"]]
        c.call(c.fw("DECLINE", decline={"offer_ids": live, "filters": {"refuse_seconds": 0}}))
        mark = c.count()
        time.sleep(0.5)
        self.assertEqual(c.offers(mark), [])
        self.assertEqual(sim.state()["frameworks"][0]["suppressed_roles"], ["m3s"])

    def test_agent_attributes_and_offer_hoarding(self):
        sim = make_sim(self, agent_specs=None, agents=2, cpus=2, mem=1024, disk=100,
                       ports="31000-31009,31020-31029", attributes="rack:r{i};ssd:1;zones:{a,b}")
        c = subscribe(self, sim)
        c.wait(lambda evs: len(c.offers()) >= 2)
        o = sorted(c.offers(), key=lambda x: x["hostname"])[1]
        self.assertEqual(o["hostname"], "agent-1.mesos-sim")
        self.assertEqual(o["attributes"], [
            {"name": "rack", "type": "TEXT", "text": {"value": "r1"}},
            {"name": "ssd", "type": "SCALAR", "scalar": {"value": 1.0}},
            {"name": "zones", "type": "SET", "set": {"item": ["a", "b"]}}])
        self.assertEqual(o["resources"][0]["ranges"]["range"],
                         [{"begin": 31000, "end": 31009}, {"begin": 31020, "end": 31029}])
        slave = sim.operator_slaves()["slaves"][1]
        self.assertEqual(slave["attributes"], {"rack": "r1", "ssd": 1.0, "zones": "{a,b}"})
        self.assertEqual(len(sim.check_offers(older_than=0.0)), 2)
        self.assertEqual(len(sim.violations(kind="offer_hoarded")), 2)

    def test_multi_role_and_single_role_offer_shapes(self):
        sim = make_sim(self, agent_specs=[CAPTURE_AGENTS[0]])
        info = {"user": "root", "name": "legacy", "failover_timeout": 100.0}
        c = subscribe(self, sim, info=info)
        _, o = c.wait_offer()
        self.assertNotIn("allocation_info", o)
        for r in o["resources"]:
            self.assertEqual(r["role"], "*")
            self.assertNotIn("allocation_info", r)
        before = c.count()
        c.launch(o, "big", cpus=9)
        _, ev = c.wait_update("big", "TASK_ERROR", before)
        self.assertIn("cpus(allocated: *):9", ev["update"]["status"]["message"])

    def test_reconciliation_and_partition_awareness(self):
        sim = make_sim(self, agent_lost_delay=0.2)
        pa = dict(M3S_INFO, name="pa", capabilities=[{"type": "MULTI_ROLE"},
                                                    {"type": "PARTITION_AWARE"}])
        c = subscribe(self, sim, info=pa, auto_ack=True)
        plain = subscribe(self, sim, info=dict(M3S_INFO, name="plain"), auto_ack=True)
        a0, a1 = sim.agent_ids()
        sim.allocate_now()
        # Both frameworks get a task on agent 0; each refuses the rest for long
        # so that the other one is offered what is left.
        for client, tid in ((c, "pa-task"), (plain, "plain-task")):
            _, o = client.wait_offer(agent_id=a0, timeout=3)
            client.launch(o, tid, filters=1000)
            client.wait_update(tid, "TASK_RUNNING")
            live = [{"value": x["id"]} for x in sim.state(False)["offers"]
                    if x["framework_id"] == client.framework_id]
            client.call(client.fw("DECLINE", decline={"offer_ids": live,
                                                      "filters": {"refuse_seconds": 1000}}))
        mark, pmark = c.count(), plain.count()
        sim.lose_agent(a0)
        _, ev = c.wait_update("pa-task", "TASK_UNREACHABLE", mark)
        st = ev["update"]["status"]
        self.assertEqual((st["source"], st["reason"]), ("SOURCE_MASTER", "REASON_AGENT_REMOVED"))
        self.assertIsInstance(st["unreachable_time"]["nanoseconds"], int)
        self.assertNotIn("uuid", st)
        _, ev = plain.wait_update("plain-task", "TASK_LOST", pmark)
        plain.wait_event("FAILURE", pmark)
        mark = c.count()
        c.call(c.fw("RECONCILE", reconcile={"tasks": [
            {"task_id": {"value": "pa-task"}, "agent_id": {"value": a0}},
            {"task_id": {"value": "gone"}, "agent_id": {"value": a1}},
            {"task_id": {"value": "nowhere"}}]}))
        _, ev = c.wait_update("pa-task", "TASK_UNREACHABLE", mark)
        self.assertEqual(ev["update"]["status"]["message"], "Reconciliation: Task is unreachable")
        c.wait_update("gone", "TASK_GONE", mark)
        c.wait_update("nowhere", "TASK_UNKNOWN", mark)
        pmark = plain.count()
        plain.call(plain.fw("RECONCILE", reconcile={"tasks": [
            {"task_id": {"value": "plain-task"}, "agent_id": {"value": a0}}]}))
        plain.wait_update("plain-task", "TASK_LOST", pmark,
                          message="Reconciliation: Task is unreachable")
        # The agent comes back: the task is running again for reconciliation.
        sim.restore_agent(a0)
        pmark = plain.count()
        plain.call(plain.fw("RECONCILE", reconcile={"tasks": []}))
        plain.wait_update("plain-task", "TASK_RUNNING", pmark,
                          message="Reconciliation: Latest task state")

    def test_failover_resubscribe_and_failover_timeout(self):
        sim = make_sim(self)
        c = subscribe(self, sim)
        c.wait_event("OFFERS")
        c2 = subscribe(self, sim, framework_id=c.framework_id)
        self.assertTrue(c.wait_eof())
        self.assertTrue(c.clean_eof)
        self.assertEqual(c.types()[-1], "ERROR")
        self.assertEqual(c.events[-1][1]["error"]["message"], "Framework failed over")
        self.assertNotIn("RESCIND", c.types() + c2.types())
        self.assertEqual(c2.framework_id, c.framework_id)
        self.assertNotEqual(c2.stream_id, c.stream_id)
        c2.wait_event("OFFERS")
        # A framework with a short failover timeout is removed once it is gone.
        info = dict(M3S_INFO, name="short", failover_timeout=0.3)
        s = subscribe(self, sim, info=info)
        fid = s.framework_id
        s.close()
        sim.wait_until(lambda: fid not in sim.framework_ids(), timeout=3)
        self.assertNotIn(fid, sim.framework_ids())
        again = Client(sim, info=info, framework_id=fid)
        self.addCleanup(again.close)
        again.wait_eof()
        self.assertEqual(again.types(), ["ERROR"])
        self.assertEqual(again.events[0][1]["error"]["message"], "Framework has been removed")
        self.assertTrue(again.clean_eof)

    def test_subscribe_refusals_come_as_error_events(self):
        sim = make_sim(self)
        bad = dict(M3S_INFO, capabilities=[])
        c = Client(sim, info=bad)
        self.addCleanup(c.close)
        self.assertEqual(c.status, 200)
        c.wait_eof()
        self.assertEqual(c.events[0][1]["error"]["message"], "'FrameworkInfo.roles' must not be "
                         "set when the framework is not MULTI_ROLE capable")
        unknown = subscribe(self, sim, framework_id="made-up-framework-id-0001")
        self.assertEqual(unknown.framework_id, "made-up-framework-id-0001")

    def test_docker_tasks(self):
        sim = make_sim(self, agent_specs=[dict(CAPTURE_AGENTS[0], docker=False),
                                          CAPTURE_AGENTS[1]])
        c = subscribe(self, sim, auto_ack=True)
        a0, a1 = sim.agent_ids()
        docker = {"container": {"type": "DOCKER", "docker": {
            "image": "rancher/k3s", "network": "BRIDGE",
            "port_mappings": [{"host_port": 32001, "container_port": 6443}]}},
            "command": {"shell": False}}
        c.wait(lambda evs: len(c.offers()) >= 2)
        o0 = [o for o in c.offers() if o["agent_id"]["value"] == a0][0]
        o1 = [o for o in c.offers() if o["agent_id"]["value"] == a1][0]
        c.launch(o0, "no-docker", extra=docker)
        _, ev = c.wait_update("no-docker", "TASK_FAILED")
        self.assertEqual(ev["update"]["status"]["message"],
                         "Abnormal executor termination: unknown container")
        self.assertIn("uuid", ev["update"]["status"])
        c.launch(o1, "k3s", extra=docker, ports=[(32001, 32001)])
        _, ev = c.wait_update("k3s", "TASK_RUNNING")
        ip = ev["update"]["status"]["container_status"]["network_infos"][0]["ip_addresses"][0]
        self.assertTrue(ip["ip_address"].startswith("172.17."))
        _, o1 = c.wait_offer(c.count() - 1, agent_id=a1)
        c.launch(o1, "bad-mapping", extra=docker, ports=[(32002, 32002)])
        _, ev = c.wait_update("bad-mapping", "TASK_FAILED")
        self.assertEqual(ev["update"]["status"]["message"],
                         "Failed to launch container: Port [32001] not included in resources")
        self.assertTrue(sim.violations(kind="docker_invalid"))
        task = sim.operator_frameworks()["frameworks"][0]["tasks"][0]
        self.assertEqual(task["container"]["docker"]["network"], "BRIDGE")
        self.assertFalse(task["container"]["docker"]["privileged"])


# ---------------------------------------------------------------------------
# Every fault of the control API has an observable effect.
# ---------------------------------------------------------------------------

class FaultTest(unittest.TestCase):
    def setUp(self):
        self.sim = make_sim(self)
        self.c = subscribe(self, self.sim, auto_ack=True)
        self.c.wait_event("OFFERS")

    def running_task(self, task_id, client=None, agent=0):
        client = client or self.c
        aid = self.sim.agent_ids()[agent]
        deadline = time.monotonic() + 3
        offer = None
        while offer is None and time.monotonic() < deadline:
            live = {o["id"] for o in self.sim.state(False)["offers"]}
            offer = next((o for o in reversed(client.offers()) if o["agent_id"]["value"] == aid
                          and o["id"]["value"] in live), None)
            time.sleep(0.02)
        self.assertIsNotNone(offer)
        mark = client.count()
        client.launch(offer, task_id)
        client.wait_update(task_id, "TASK_RUNNING", mark)
        self.sim.wait_until(lambda: not self.sim.unacked_updates())

    def test_drop_stream(self):
        self.assertEqual(self.sim.drop_stream(), 1)
        self.assertTrue(self.c.wait_eof())
        self.assertFalse(self.c.clean_eof)  # no terminating chunk
        self.sim.wait_until(lambda: not self.sim.state()["frameworks"][0]["connected"])
        self.assertEqual(self.c.call(self.c.fw("REVIVE")), (403, "Framework is not subscribed"))
        # Subscribing again without the id leaks a new framework: recorded.
        leak = subscribe(self, self.sim)
        self.assertNotEqual(leak.framework_id, self.c.framework_id)
        self.assertEqual([v["kind"] for v in self.sim.violations(kind="subscribe_without_id")],
                         ["subscribe_without_id"])
        # Clean variant: terminating chunk.
        c2 = subscribe(self, self.sim, framework_id=self.c.framework_id)
        self.sim.drop_stream(c2.framework_id, clean=True)
        self.assertTrue(c2.wait_eof())
        self.assertTrue(c2.clean_eof)

    def test_pause_resume_heartbeats_and_silence(self):
        self.sim.pause_heartbeats()
        mark = self.c.count()
        time.sleep(0.8)
        self.assertNotIn("HEARTBEAT", self.c.types()[mark:])
        self.assertFalse(self.c.eof)
        self.sim.resume_heartbeats()
        self.c.wait_event("HEARTBEAT", mark, timeout=1)
        self.sim.silence()  # events queue up: nothing at all reaches the client
        mark = self.c.count()
        time.sleep(0.7)
        self.assertEqual(self.c.types()[mark:], [])
        self.sim.silence(False)
        self.c.wait_event("HEARTBEAT", mark, timeout=1)

    def test_restart(self):
        self.running_task("survivor")
        old_master = self.sim.master_id
        self.sim.restart(reregister_delay=0.6)
        self.assertTrue(self.c.wait_eof())
        self.assertFalse(self.c.clean_eof)
        self.assertEqual(self.c.call(self.c.fw("REVIVE"))[1], "Framework cannot be found")
        c2 = subscribe(self, self.sim, framework_id=self.c.framework_id)
        sub = c2.events[0][1]["subscribed"]
        self.assertEqual(sub["framework_id"]["value"], self.c.framework_id)
        self.assertNotEqual(sub["master_info"]["id"], old_master)
        mark = c2.count()
        c2.call(c2.fw("RECONCILE", reconcile={"tasks": [{"task_id": {"value": "survivor"},
                                                         "agent_id": {"value":
                                                                      self.sim.agent_ids()[0]}}]}))
        c2.wait_update("survivor", "TASK_LOST", mark, message="Reconciliation: Task is unknown")
        mark = c2.count()
        c2.call(c2.fw("RECONCILE", reconcile={"tasks": []}))
        _, ev = c2.wait_update("survivor", "TASK_RUNNING", mark, timeout=3)
        self.assertEqual(ev["update"]["status"]["message"], "Unknown agent reregistered")
        self.assertEqual(ev["update"]["status"]["reason"], "REASON_AGENT_REREGISTERED")
        self.assertNotIn("uuid", ev["update"]["status"])
        _, offer = c2.wait_offer(mark)
        self.assertTrue(offer["id"]["value"].startswith(self.sim.master_id + "-O"))
        self.assertFalse(offer["agent_id"]["value"].startswith(self.sim.master_id))

    def test_redirect_and_master_redirect_endpoint(self):
        self.sim.redirect("10.1.2.3:5050")
        self.assertTrue(self.c.wait_eof())
        status, body, headers = http_request(self.sim.port, "POST", "/api/v1/scheduler",
                                             {"Content-Type": "application/json"}, b"{}")
        self.assertEqual((status, body), (307, ""))
        self.assertEqual(headers["Location"], "//10.1.2.3:5050/master/api/v1/scheduler")
        status, _, headers = http_request(self.sim.port, "GET", "/master/redirect")
        self.assertEqual((status, headers["Location"]), (307, "//10.1.2.3:5050"))
        self.sim.redirect(None)
        status, _, headers = http_request(self.sim.port, "GET", "/master/redirect")
        self.assertEqual(headers["Location"], "//127.0.0.1:%d" % self.sim.port)

    def test_fail_finish_lose_task_and_health(self):
        for tid in ("f", "d", "l", "h"):
            self.running_task(tid)
        mark = self.c.count()
        self.sim.fail_task("f")
        self.sim.finish_task("d")
        self.sim.set_task_health("h", False)
        self.sim.lose_task("l")
        _, ev = self.c.wait_update("f", "TASK_FAILED", mark)
        self.assertIn("uuid", ev["update"]["status"])
        self.c.wait_update("d", "TASK_FINISHED", mark)
        self.c.wait_update("h", "TASK_RUNNING", mark, healthy=False)
        _, ev = self.c.wait_update("l", "TASK_LOST", mark)
        self.assertNotIn("uuid", ev["update"]["status"])
        # Hand agent 1 over to a PARTITION_AWARE framework.
        a1 = self.sim.agent_ids()[1]
        self.c.call(self.c.fw("DECLINE", decline={"offer_ids": [
            {"value": o["id"]} for o in self.sim.state(False)["offers"] if o["agent_id"] == a1],
            "filters": {"refuse_seconds": 1000}}))
        pa = subscribe(self, self.sim, info=dict(M3S_INFO, name="pa", capabilities=[
            {"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}]), auto_ack=True)
        self.running_task("pa-l", client=pa, agent=1)
        mark = pa.count()
        self.sim.lose_task("pa-l")
        pa.wait_update("pa-l", "TASK_UNREACHABLE", mark)

    def test_task_behavior(self):
        self.sim.add_task_behavior("^crash-", state="TASK_FAILED", after=0.1)
        self.running_task("crash-1")
        _, ev = self.c.wait_update("crash-1", "TASK_FAILED")
        self.assertEqual(ev["update"]["status"]["message"], "Command exited with status 1")

    def test_lose_agent(self):
        self.running_task("on-agent1", agent=1)
        a1 = self.sim.agent_ids()[1]
        held = [o["id"] for o in self.sim.state(False)["offers"] if o["agent_id"] == a1]
        mark = self.c.count()
        self.sim.lose_agent(a1)
        if held:
            _, ev = self.c.wait_event("RESCIND", mark)
            self.assertEqual(ev["rescind"]["offer_id"]["value"], held[0])
        _, ev = self.c.wait_update("on-agent1", "TASK_LOST", mark)
        st = ev["update"]["status"]
        self.assertEqual((st["reason"], st["message"]), ("REASON_AGENT_REMOVED",
                                                         "health check timed out"))
        _, ev = self.c.wait_event("FAILURE", mark)
        self.assertEqual(ev["failure"], {"agent_id": {"value": a1}})
        fw = self.sim.operator_frameworks()["frameworks"][0]
        self.assertEqual([t["id"] for t in fw["unreachable_tasks"]], ["on-agent1"])

    def test_malformed_frames_break_strict_decoders(self):
        for kind in ("bad-length", "no-length", "oversize", "bad-json"):
            with self.subTest(kind=kind):
                c = subscribe(self, self.sim, framework_id=self.c.framework_id)
                c.wait_event("HEARTBEAT")
                self.sim.send_malformed(kind, framework_id=c.framework_id)
                c.wait(lambda evs: c.error is not None, timeout=2)
                self.assertIsInstance(c.error, ProtocolError)
        c = subscribe(self, self.sim, framework_id=self.c.framework_id)
        self.sim.send_malformed("truncate")
        self.assertTrue(c.wait_eof())
        self.assertFalse(c.clean_eof)
        self.assertEqual(c.recordio.need, 20)  # half a HEARTBEAT was left over
        self.assertLess(len(c.recordio.buf), 20)
        d = RecordIODecoder()
        self.assertEqual(d.feed(b"0\n20\n{\"type\":\"HEARTBEAT\"}"), [{"type": "HEARTBEAT"}])

    def test_fail_next_subscribes(self):
        self.sim.fail_next_subscribes(2)
        for _ in range(2):
            c = Client(self.sim)
            self.assertEqual((c.status, c.body), (503, b"Master has not finished recovery"))
            time.sleep(0.06)  # a retry with a backoff
        subscribe(self, self.sim)
        refused = [c for c in self.sim.calls(type="SUBSCRIBE") if c["status"] == 503]
        self.assertEqual(len(refused), 2)
        self.assertEqual(refused[0]["body"]["subscribe"]["framework_info"]["name"], "m3s")
        self.assertEqual(self.sim.violations(kind="subscribe_storm"), [])
        # Retrying in a tight loop, even on 503s, is a storm.
        self.sim.fail_next_subscribes(5)
        for _ in range(5):
            self.assertEqual(Client(self.sim).status, 503)
        self.assertEqual(len(self.sim.violations(kind="subscribe_storm")), 1)

    def test_launch_task_for_the_framework(self):
        tid = self.sim.launch_task(self.c.framework_id, cpus=1, mem=128)
        self.assertEqual(tid, "sim-task-1")
        _, ev = self.c.wait_update(tid, "TASK_RUNNING")
        self.assertIn("uuid", ev["update"]["status"])
        self.sim.wait_until(lambda: not self.sim.unacked_updates())
        self.assertEqual(self.sim.unacked_updates(), [])
        tasks = self.sim.state()["tasks"]
        self.assertEqual([(t["task_id"], t["state"]) for t in tasks], [(tid, "TASK_RUNNING")])

    def test_auth(self):
        self.sim.require_auth("m3s", "secret")
        c = Client(self.sim)
        self.assertEqual(c.status, 401)
        self.assertEqual(c.headers["WWW-Authenticate"], 'Basic realm="mesos-master-scheduler"')
        bad = Client(self.sim, headers={
            "Content-Type": "application/json",
            "Authorization": "Basic " + base64.b64encode(b"m3s:wrong").decode()})
        self.assertEqual(bad.status, 401)
        auth = "Basic " + base64.b64encode(b"m3s:secret").decode()
        ok = Client(self.sim, headers={"Content-Type": "application/json",
                                       "Authorization": auth})
        self.addCleanup(ok.close)
        self.assertEqual(ok.status, 200)
        ok.wait_event("SUBSCRIBED")
        self.assertEqual(ok.call(ok.fw("REVIVE"))[0], 401)
        self.assertEqual(ok.call(ok.fw("REVIVE"), headers={"Authorization": auth}), (202, ""))
        fw = self.sim.operator_frameworks(ok.framework_id)["frameworks"][0]
        self.assertEqual(fw["principal"], "m3s")
        self.assertIn("auth_failed", [v["kind"] for v in self.sim.violations()])
        # The call log knows what a refused call was.
        self.assertEqual([c["status"] for c in self.sim.calls(type="SUBSCRIBE")][-3:],
                         [401, 401, 200])

    def test_remove_framework(self):
        fid = self.c.framework_id
        self.assertEqual(self.sim.remove_framework(fid), [fid])
        self.assertTrue(self.c.wait_eof())
        again = Client(self.sim, framework_id=fid)
        self.addCleanup(again.close)
        self.assertEqual(again.status, 200)
        again.wait_eof()
        self.assertEqual(again.types(), ["ERROR"])
        self.assertEqual(again.events[0][1]["error"]["message"], "Framework has been removed")
        self.assertTrue(again.clean_eof)
        done = self.sim.operator_frameworks()["completed_frameworks"]
        self.assertEqual([f["id"] for f in done], [fid])

    def test_send_error(self):
        self.sim.send_error("Framework failed over")
        self.assertTrue(self.c.wait_eof())
        self.assertTrue(self.c.clean_eof)
        self.assertEqual(self.c.events[-1][1], {"type": "ERROR",
                                                "error": {"message": "Framework failed over"}})

    def test_rescind(self):
        live = [o["id"] for o in self.sim.state(False)["offers"]]
        mark = self.c.count()
        self.assertEqual(sorted(self.sim.rescind_offers()), sorted(live))
        self.c.wait(lambda evs: sum(e["type"] == "RESCIND" for e in evs[mark:]) == len(live))

    def test_control_api_over_http(self):
        port = self.sim.port

        def post(name, body=None):
            data = json.dumps(body or {}).encode()
            status, text, _ = http_request(port, "POST", "/sim/" + name,
                                           {"Content-Type": "application/json"}, data)
            return status, json.loads(text)
        self.c.call(self.c.fw("REVIVE", revive={"roles": ["nope"]}))
        status, v = http_request(port, "GET", "/sim/violations?kind=revive_unknown_role")[:2]
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(v)[0]["kind"], "revive_unknown_role")
        self.assertEqual(post("reset-violations"), (200, {"ok": True, "result": None}))
        self.assertEqual(json.loads(http_request(port, "GET", "/sim/violations")[1]), [])
        calls = json.loads(http_request(port, "GET", "/sim/calls?type=REVIVE")[1])
        self.assertEqual(calls[-1]["status"], 202)
        self.assertEqual(calls[-1]["body"]["revive"], {"roles": ["nope"]})
        self.assertEqual(calls[-1]["headers"]["Mesos-Stream-Id"], self.c.stream_id)
        state = json.loads(http_request(port, "GET", "/sim/state")[1])
        self.assertEqual(state["call_counts"]["REVIVE"], 1)
        self.assertEqual(state["frameworks"][0]["id"], self.c.framework_id)
        self.assertEqual(len(state["agents"]), 2)
        self.assertEqual(post("pause-heartbeats")[0], 200)
        self.assertTrue(self.sim.state()["heartbeats_paused"])
        self.assertEqual(post("fail-task", {"task_id": "nope"})[0], 400)
        self.assertEqual(post("no-such-thing")[0], 404)
        self.assertEqual(post("error", {"message": "bye"})[0], 200)
        self.assertTrue(self.c.wait_eof())


# ---------------------------------------------------------------------------
# Operator endpoints (what mesos-cli reads).
# ---------------------------------------------------------------------------

class OperatorTest(unittest.TestCase):
    def test_frameworks_state_slaves_tasks(self):
        sim = make_sim(self)
        c = subscribe(self, sim, auto_ack=True)
        _, o = c.wait_offer()
        c.launch(o, "op-task", extra={"labels": {"labels": [{"key": "k", "value": "v"}]}})
        c.wait_update("op-task", "TASK_RUNNING")
        for path in ("/master/frameworks", "/master/frameworks/", "/frameworks",
                     "/master/frameworks?framework_id=" + c.framework_id):
            status, body, headers = http_request(sim.port, "GET", path)
            self.assertEqual((status, headers["Content-Type"]), (200, "application/json"))
            data = json.loads(body)
            self.assertEqual(data["frameworks"][0]["id"], c.framework_id)
        fw = data["frameworks"][0]
        if SAMPLES:
            with open(os.path.join(SAMPLES, "operator", "master-frameworks.json")) as f:
                sample = json.load(f)["body"]
            self.assertEqual(list(data), list(sample))
            self.assertEqual(list(fw), list(sample["frameworks"][0]))
            self.assertEqual(list(fw["tasks"][0])[:9], list(sample["frameworks"][0]["tasks"][0])[:9])
        self.assertEqual(fw["webui_url"], "http://127.0.0.1:10000")
        self.assertEqual(fw["tasks"][0]["labels"], [{"key": "k", "value": "v"}])
        self.assertEqual(fw["tasks"][0]["executor_id"], "")
        self.assertEqual(json.loads(http_request(sim.port, "GET",
                                                 "/master/frameworks?framework_id=x")[1])
                         ["frameworks"], [])
        state = json.loads(http_request(sim.port, "GET", "/master/state")[1])
        if SAMPLES:
            with open(os.path.join(SAMPLES, "operator", "master-state.json")) as f:
                sample = json.load(f)["body"]
            self.assertLessEqual(set(state) - {"build_date"}, set(sample))
            self.assertEqual(list(state["slaves"][0]), list(sample["slaves"][0]))
        self.assertEqual(state["slaves"][0]["pid"], "slave(1)@127.0.0.1:5051")
        slaves = json.loads(http_request(sim.port, "GET", "/slaves")[1])
        self.assertEqual(len(slaves["slaves"]), 2)
        tasks = json.loads(http_request(sim.port, "GET", "/tasks?order=asc&limit=-1")[1])
        self.assertEqual(tasks["tasks"][0]["statuses"][-1]["state"], "TASK_RUNNING")
        self.assertEqual(http_request(sim.port, "GET", "/master/state.json")[0], 404)


# ---------------------------------------------------------------------------
# Scale: the orchestration benchmark uses 2,000 agents.
# ---------------------------------------------------------------------------

class ScaleTest(unittest.TestCase):
    def test_two_thousand_agents(self):
        sim = make_sim(self, agent_specs=None, agents=2000, cpus=8, mem=16384,
                       offer_interval=0.5)
        t0 = time.monotonic()
        c = subscribe(self, sim)
        c.wait(lambda evs: len(c.offers()) >= 2000, timeout=10)
        self.assertEqual(len(c.offers()), 2000)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertLessEqual(c.types().count("OFFERS"), 2)  # batched
        offers = c.offers()
        t0 = time.monotonic()
        c.launch(offers[1234], "one-of-many", filters=1000)
        c.wait_update("one-of-many", "TASK_STARTING")
        self.assertEqual(c.call(c.fw("DECLINE", decline={
            "offer_ids": [o["id"] for o in offers if o is not offers[1234]],
            "filters": {"refuse_seconds": 1000}})), (202, ""))
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertEqual(sim.state(False)["offers"], [])
        self.assertEqual(sim.violations(severity="error"), [])


# ---------------------------------------------------------------------------
# Standalone use.
# ---------------------------------------------------------------------------

class CliTest(unittest.TestCase):
    def test_port_zero_prints_address_and_stops_on_sigterm(self):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "mesos_sim.py"), "--port",
                                 "0", "--agents", "2", "--heartbeat", "15"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = proc.stdout.readline().decode()
            m = re.fullmatch(r"listening on 127\.0\.0\.1:(\d+)\n", line)
            self.assertIsNotNone(m, line)
            port = int(m.group(1))
            status, body, _ = http_request(port, "GET", "/master/state")
            self.assertEqual(status, 200)
            self.assertEqual(len(json.loads(body)["slaves"]), 2)
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(10), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()

    def test_loopback_only(self):
        with self.assertRaises(ValueError):
            MesosSim(host="0.0.0.0")
        with self.assertRaises(ValueError):
            MesosSim(host="192.168.1.1")


if __name__ == "__main__":
    unittest.main()
