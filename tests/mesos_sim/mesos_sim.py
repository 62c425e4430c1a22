#!/usr/bin/env python3
"""Strict Mesos 1.11 master simulator for the M3s tests (Python 3 stdlib only).

It speaks the v1 scheduler HTTP API exactly as a real Mesos 1.11 master does
where the framework can observe it (status codes and their order, bodies,
chunked RecordIO stream, event JSON shapes, offer/filter/ack semantics), and is
stricter where a real master stays silent: every doubtful call is recorded as a
"violation" that tests can query.  Ground truth: shared/docs/mesos-http-api.md
and the captures in shared/mesos-samples/ (the captures win on disagreement).

Use it standalone::

    python3 tests/mesos_sim/mesos_sim.py --port 5050 --agents 3

or in-process::

    sim = MesosSim(agents=3, heartbeat=0.5)
    sim.start()
    ... sim.port, sim.state(), sim.violations(), sim.drop_stream() ...
    sim.stop()

See README.md next to this file for the control API.
"""

import argparse
import base64
import collections
import heapq
import http.server
import ipaddress
import json
import math
import random
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid as uuidlib
from bisect import bisect_right
from email.utils import formatdate
from urllib.parse import parse_qs, urlsplit

MESOS_VERSION = "1.11.0"

# Task states the master treats as terminal (protobuf::isTerminalState).
TERMINAL_STATES = frozenset([
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR"])

# How serious each violation kind is.  "error" = the framework did something
# wrong; "warning" = legal for Mesos but almost always a bug or a bad habit.
VIOLATION_SEVERITY = {
    "auth_failed": "error",
    "method_not_allowed": "error",
    "content_type_missing": "error",
    "content_type_unsupported": "error",
    "content_type_charset": "error",
    "protobuf_not_simulated": "error",
    "expect_100_continue": "error",
    "invalid_json": "error",
    "duplicate_json_key": "error",
    "json_type": "error",
    "bad_base64": "error",
    "base64_noncanonical": "error",
    "missing_required_field": "error",
    "unknown_enum_value": "error",
    "unknown_field": "error",
    "scalar_for_repeated": "error",
    "object_for_repeated": "error",
    "nested_array": "error",
    "non_integral_number": "error",
    "numeric_string": "warning",
    "call_validation": "error",
    "not_acceptable": "error",
    "subscribe_with_stream_id": "error",
    "unknown_framework": "error",
    "principal_mismatch": "error",
    "not_subscribed": "error",
    "missing_stream_id": "error",
    "wrong_stream_id": "error",
    "call_before_subscribed": "error",
    "not_implemented": "error",
    "subscribe_refused": "error",
    "subscribe_without_id": "warning",
    "subscribe_storm": "warning",
    "offer_hoarded": "warning",
    "failover_timeout_zero": "warning",
    "offers_empty": "error",
    "offer_unknown": "error",
    "offer_reused": "error",
    "offer_duplicate": "error",
    "offer_wrong_framework": "error",
    "offers_mixed_roles": "error",
    "offers_mixed_agents": "error",
    "launch_with_operation_id": "error",
    "resources_exceed_offer": "error",
    "duplicate_task_id": "error",
    "task_agent_mismatch": "error",
    "task_invalid": "error",
    "health_check_type_missing": "warning",
    "docker_invalid": "error",
    "operation_not_simulated": "warning",
    "operation_type_missing": "error",
    "refuse_seconds_invalid": "warning",
    "ack_unknown_uuid": "error",
    "ack_wrong_task": "error",
    "ack_wrong_agent": "error",
    "ack_unknown_task": "error",
    "unacked_update": "error",
    "kill_unknown_task": "warning",
    "kill_wrong_agent": "error",
    "revive_unknown_role": "error",
    "suppress_unknown_role": "error",
    "decline_unknown_offer": "error",
    "update_framework_invalid": "error",
    "stream_overflow": "error",
}


def _now():
    return time.time()


def _mono():
    return time.monotonic()


class _Bounded(collections.OrderedDict):
    """An insertion-ordered dict that forgets its oldest entries (bounded memory)."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit

    def __setitem__(self, key, value):
        if key in self:
            self.move_to_end(key)
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


def _dumps(obj):
    """Compact JSON like the master's rapidjson writer: no spaces, raw UTF-8.

    Python writes integral floats as "15.0", which is what Mesos does for
    double fields, and ints as plain integers (int64 fields)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def encode_record(obj):
    """One RecordIO record: decimal byte length, '\\n', then the JSON bytes."""
    data = _dumps(obj).encode("utf-8")
    return b"%d\n%s" % (len(data), data)


def _sx(text):
    """str (possibly carrying surrogate-escaped raw bytes) -> bytes."""
    return text.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------
# JSON parsing with the exact behaviour of stout/picojson, so that the 400
# bodies for broken JSON match the real master byte for byte.
# ---------------------------------------------------------------------------

class _PicoError(Exception):
    pass


class _PicoInput:
    """picojson's input cursor: getc() consumes, ungetc() only clears the
    'consumed' flag.  Error texts depend on exactly where the cursor stops."""

    __slots__ = ("data", "pos", "consumed", "line")

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.consumed = False
        self.line = 1

    def getc(self):
        if self.consumed:
            if self.data[self.pos] == 0x0A:
                self.line += 1
            self.pos += 1
        if self.pos >= len(self.data):
            self.consumed = False
            return -1
        self.consumed = True
        return self.data[self.pos]

    def ungetc(self):
        self.consumed = False

    def cur(self):
        if self.consumed:
            self.consumed = False
            self.pos += 1
        return self.pos

    def skip_ws(self):
        while True:
            ch = self.getc()
            if ch not in (0x20, 0x09, 0x0A, 0x0D):
                self.ungetc()
                return

    def expect(self, c):
        self.skip_ws()
        if self.getc() != c:
            self.ungetc()
            return False
        return True

    def match(self, pattern):
        for c in pattern:
            if self.getc() != c:
                self.ungetc()
                return False
        return True


_INT_RE = re.compile(r"[+-]?[0-9]+\Z")
_FLOAT_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\Z")
_PICO_MAX_DEPTH = 100
_ESCAPES = {0x22: b'"', 0x5C: b"\\", 0x2F: b"/", 0x62: b"\b", 0x66: b"\f",
            0x6E: b"\n", 0x72: b"\r", 0x74: b"\t"}


class _PicoParser:
    def __init__(self, data):
        self.inp = _PicoInput(data)
        self.duplicates = []

    def value(self, depth):
        inp = self.inp
        inp.skip_ws()
        ch = inp.getc()
        if ch == 0x6E:  # n
            if inp.match(b"ull"):
                return None
            raise _PicoError()
        if ch == 0x66:  # f
            if inp.match(b"alse"):
                return False
            raise _PicoError()
        if ch == 0x74:  # t
            if inp.match(b"rue"):
                return True
            raise _PicoError()
        if ch == 0x22:
            return self.string()
        if ch == 0x5B:
            return self.array(depth + 1)
        if ch == 0x7B:
            return self.obj(depth + 1)
        if 0x30 <= ch <= 0x39 or ch == 0x2D:
            inp.ungetc()
            return self.number()
        inp.ungetc()
        raise _PicoError()

    def number(self):
        inp = self.inp
        buf = bytearray()
        while True:
            ch = inp.getc()
            if 0x30 <= ch <= 0x39 or ch in (0x2B, 0x2D, 0x65, 0x45, 0x2E):
                buf.append(ch)
            else:
                inp.ungetc()
                break
        text = buf.decode("ascii")
        if not text:
            raise _PicoError()
        if not any(c in text for c in ".eE") and _INT_RE.match(text):
            v = int(text)
            if -(2 ** 63) <= v < 2 ** 63:
                return v
        if _FLOAT_RE.match(text):
            v = float(text)
            if math.isinf(v):
                # picojson refuses to hold an infinite double.
                raise _PicoError()
            return v
        raise _PicoError()

    def _quadhex(self):
        value = 0
        for _ in range(4):
            h = self.inp.getc()
            if h == -1:
                return -1
            if 0x30 <= h <= 0x39:
                h -= 0x30
            elif 0x41 <= h <= 0x46:
                h -= 0x41 - 10
            elif 0x61 <= h <= 0x66:
                h -= 0x61 - 10
            else:
                self.inp.ungetc()
                return -1
            value = value * 16 + h
        return value

    def _codepoint(self, out):
        cp = self._quadhex()
        if cp == -1:
            raise _PicoError()
        if 0xD800 <= cp <= 0xDFFF:
            if cp >= 0xDC00:
                raise _PicoError()
            if self.inp.getc() != 0x5C or self.inp.getc() != 0x75:
                self.inp.ungetc()
                raise _PicoError()
            second = self._quadhex()
            if not 0xDC00 <= second <= 0xDFFF:
                raise _PicoError()
            cp = (((cp - 0xD800) << 10) | ((second - 0xDC00) & 0x3FF)) + 0x10000
        out += chr(cp).encode("utf-8")

    def string(self):
        inp = self.inp
        out = bytearray()
        while True:
            ch = inp.getc()
            if ch < 0x20:
                inp.ungetc()
                raise _PicoError()
            if ch == 0x22:
                break
            if ch == 0x5C:
                ch = inp.getc()
                if ch == -1:
                    raise _PicoError()
                if ch in _ESCAPES:
                    out += _ESCAPES[ch]
                elif ch == 0x75:
                    self._codepoint(out)
                else:
                    raise _PicoError()
            else:
                out.append(ch)
        return out.decode("utf-8", "surrogateescape")

    def array(self, depth):
        if depth > _PICO_MAX_DEPTH:
            raise _PicoError()
        inp = self.inp
        items = []
        if inp.expect(0x5D):
            return items
        while True:
            items.append(self.value(depth))
            if not inp.expect(0x2C):
                break
        if not inp.expect(0x5D):
            raise _PicoError()
        return items

    def obj(self, depth):
        if depth > _PICO_MAX_DEPTH:
            raise _PicoError()
        inp = self.inp
        result = {}
        if inp.expect(0x7D):
            return result
        while True:
            if not inp.expect(0x22):
                raise _PicoError()
            key = self.string()
            if not inp.expect(0x3A):
                raise _PicoError()
            value = self.value(depth)
            if key in result:
                # picojson keeps the last value; we keep it too but note it.
                self.duplicates.append(key)
            result[key] = value
            if not inp.expect(0x2C):
                break
        if not inp.expect(0x7D):
            raise _PicoError()
        return result


def pico_parse(data):
    """Parse bytes like stout's JSON::parse.

    Returns (value, error, duplicate_keys); error is a str (may carry
    surrogate-escaped raw bytes) or None."""
    parser = _PicoParser(data)
    try:
        value = parser.value(0)
    except _PicoError:
        inp = parser.inp
        tail = bytearray()
        while True:
            ch = inp.getc()
            if ch == -1 or ch == 0x0A:
                break
            if ch >= 0x20:
                tail.append(ch)
        msg = "syntax error at line %d near: " % inp.line
        return None, msg + tail.decode("utf-8", "surrogateescape"), parser.duplicates
    end = parser.inp.cur()
    last_visible = len(data.rstrip(b" \t\n\r"))
    if end < last_visible:
        return None, ("Parsed JSON included non-whitespace trailing characters: "
                      + data[end:last_visible].decode("utf-8", "surrogateescape")), \
            parser.duplicates
    return value, None, parser.duplicates


# ---------------------------------------------------------------------------
# base64 and UUIDs, with stout's exact acceptance rules.
# ---------------------------------------------------------------------------

_B64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_INDEX = {c: i for i, c in enumerate(_B64_CHARS)}
_C_SPACE = frozenset(b" \t\n\v\f\r")


def stout_b64decode(text):
    """stout's base64::decode: stops at the first '=', skips whitespace and
    rejects anything outside [A-Za-z0-9+/].  Returns (bytes, error)."""
    out = bytearray()
    quad = []
    for c in _sx(text):
        if c == 0x3D:
            break
        if c in _C_SPACE:
            continue
        if c not in _B64_INDEX:
            return None, ("Invalid character '"
                          + bytes([c]).decode("utf-8", "surrogateescape") + "'")
        quad.append(_B64_INDEX[c])
        if len(quad) == 4:
            out.append(((quad[0] << 2) + ((quad[1] & 0x30) >> 4)) & 0xFF)
            out.append((((quad[1] & 0xF) << 4) + ((quad[2] & 0x3C) >> 2)) & 0xFF)
            out.append((((quad[2] & 0x3) << 6) + quad[3]) & 0xFF)
            quad = []
    if quad:
        # A partial group of i characters yields i-1 bytes, like stout.
        used = len(quad)
        quad += [0] * (4 - used)
        three = [((quad[0] << 2) + ((quad[1] & 0x30) >> 4)) & 0xFF,
                 (((quad[1] & 0xF) << 4) + ((quad[2] & 0x3C) >> 2)) & 0xFF]
        out += bytes(three[:used - 1])
    return bytes(out), None


def b64(data):
    return base64.b64encode(data).decode("ascii")


def uuid_error(data):
    """id::UUID::fromBytes: 16 bytes and a known RFC 4122 version (1..5)."""
    if len(data) != 16 or not 1 <= (data[6] >> 4) <= 5:
        return "Not a valid UUID"
    return None


# ---------------------------------------------------------------------------
# Protobuf schema of everything a scheduler may send (v1 mesos.proto and
# scheduler.proto, Mesos 1.11).  Each message lists its fields in declaration
# order (that is the order stout's jsonify emits them) with their numbers
# (protobuf's "Missing required fields" walks set fields by number).
#
# Field: (name, number, label, kind, ref, default, deprecated)
#   label: "req" | "opt" | "rep" | "map" (map<string, ref>)
#   kind:  string bytes bool double float int32 int64 uint32 uint64 enum msg
# ---------------------------------------------------------------------------

_NODEF = object()


class FieldSpec(tuple):
    __slots__ = ()
    name = property(lambda s: s[0])
    number = property(lambda s: s[1])
    label = property(lambda s: s[2])
    kind = property(lambda s: s[3])
    ref = property(lambda s: s[4])
    default = property(lambda s: s[5])
    deprecated = property(lambda s: s[6])


def _f(name, number, label, kind, ref=None, default=_NODEF, deprecated=False):
    return FieldSpec((name, number, label, kind, ref, default, deprecated))


def _req(name, number, kind, ref=None):
    return _f(name, number, "req", kind, ref)


def _opt(name, number, kind, ref=None, default=_NODEF, deprecated=False):
    return _f(name, number, "opt", kind, ref, default, deprecated)


def _rep(name, number, kind, ref=None):
    return _f(name, number, "rep", kind, ref)


def _map(name, number, kind, ref=None):
    return _f(name, number, "map", kind, ref)


def _id_msg():
    return [_req("value", 1, "string")]


_MESSAGES = {
    # --- ids and small types ---
    "FrameworkID": _id_msg(), "OfferID": _id_msg(), "AgentID": _id_msg(),
    "TaskID": _id_msg(), "ExecutorID": _id_msg(), "OperationID": _id_msg(),
    "ResourceProviderID": _id_msg(),
    "ContainerID": [_req("value", 1, "string"), _opt("parent", 2, "msg", "ContainerID")],
    "TimeInfo": [_req("nanoseconds", 1, "int64")],
    "DurationInfo": [_req("nanoseconds", 1, "int64")],
    "Labels": [_rep("labels", 1, "msg", "Label")],
    "Label": [_req("key", 1, "string"), _opt("value", 2, "string")],
    "Parameter": [_req("key", 1, "string"), _req("value", 2, "string")],
    "Parameters": [_rep("parameter", 1, "msg", "Parameter")],
    "Credential": [_req("principal", 1, "string"), _opt("secret", 2, "string")],
    # --- values, attributes, resources ---
    "Value.Scalar": [_req("value", 1, "double")],
    "Value.Range": [_req("begin", 1, "uint64"), _req("end", 2, "uint64")],
    "Value.Ranges": [_rep("range", 1, "msg", "Value.Range")],
    "Value.Set": [_rep("item", 1, "string")],
    "Value.Text": [_req("value", 1, "string")],
    "Attribute": [
        _req("name", 1, "string"), _req("type", 2, "enum", "Value.Type"),
        _opt("scalar", 3, "msg", "Value.Scalar"), _opt("ranges", 4, "msg", "Value.Ranges"),
        _opt("set", 6, "msg", "Value.Set"), _opt("text", 5, "msg", "Value.Text")],
    "Resource": [
        _opt("provider_id", 12, "msg", "ResourceProviderID"),
        _req("name", 1, "string"), _req("type", 2, "enum", "Value.Type"),
        _opt("scalar", 3, "msg", "Value.Scalar"), _opt("ranges", 4, "msg", "Value.Ranges"),
        _opt("set", 5, "msg", "Value.Set"),
        _opt("role", 6, "string", default="*", deprecated=True),
        _opt("allocation_info", 11, "msg", "Resource.AllocationInfo"),
        _opt("reservation", 8, "msg", "Resource.ReservationInfo"),
        _rep("reservations", 13, "msg", "Resource.ReservationInfo"),
        _opt("disk", 7, "msg", "Resource.DiskInfo"),
        _opt("revocable", 9, "msg", "Resource.RevocableInfo"),
        _opt("shared", 10, "msg", "Resource.SharedInfo")],
    "Resource.AllocationInfo": [_opt("role", 1, "string")],
    "Resource.ReservationInfo": [
        _opt("type", 4, "enum", "Resource.ReservationInfo.Type"), _opt("role", 3, "string"),
        _opt("principal", 1, "string"), _opt("labels", 2, "msg", "Labels")],
    "Resource.DiskInfo": [
        _opt("persistence", 1, "msg", "Resource.DiskInfo.Persistence"),
        _opt("volume", 2, "msg", "Volume"),
        _opt("source", 3, "msg", "Resource.DiskInfo.Source")],
    "Resource.DiskInfo.Persistence": [_req("id", 1, "string"), _opt("principal", 2, "string")],
    "Resource.DiskInfo.Source": [
        _req("type", 1, "enum", "Resource.DiskInfo.Source.Type"),
        _opt("path", 2, "msg", "Resource.DiskInfo.Source.Path"),
        _opt("mount", 3, "msg", "Resource.DiskInfo.Source.Mount"),
        _opt("vendor", 7, "string"), _opt("id", 4, "string"),
        _opt("metadata", 5, "msg", "Labels"), _opt("profile", 6, "string")],
    "Resource.DiskInfo.Source.Path": [_opt("root", 1, "string")],
    "Resource.DiskInfo.Source.Mount": [_opt("root", 1, "string")],
    "Resource.RevocableInfo": [],
    "Resource.SharedInfo": [],
    "Request": [_opt("agent_id", 1, "msg", "AgentID"), _rep("resources", 2, "msg", "Resource")],
    "Filters": [_opt("refuse_seconds", 1, "double", default=5.0)],
    "OfferFilters": [_opt("min_allocatable_resources", 1, "msg",
                          "OfferFilters.MinAllocatableResources")],
    "OfferFilters.MinAllocatableResources": [
        _rep("quantities", 1, "msg", "OfferFilters.ResourceQuantities")],
    "OfferFilters.ResourceQuantities": [_map("quantities", 1, "msg", "Value.Scalar")],
    # --- framework ---
    "FrameworkInfo": [
        _req("user", 1, "string"), _req("name", 2, "string"),
        _opt("id", 3, "msg", "FrameworkID"),
        _opt("failover_timeout", 4, "double", default=0.0),
        _opt("checkpoint", 5, "bool", default=False),
        _opt("role", 6, "string", default="*", deprecated=True),
        _rep("roles", 12, "string"),
        _opt("hostname", 7, "string"), _opt("principal", 8, "string"),
        _opt("webui_url", 9, "string"),
        _rep("capabilities", 10, "msg", "FrameworkInfo.Capability"),
        _opt("labels", 11, "msg", "Labels"),
        _map("offer_filters", 13, "msg", "OfferFilters")],
    "FrameworkInfo.Capability": [_opt("type", 1, "enum", "FrameworkInfo.Capability.Type")],
    # --- offer operations ---
    "Offer.Operation": [
        _opt("type", 1, "enum", "Offer.Operation.Type"), _opt("id", 12, "msg", "OperationID"),
        _opt("launch", 2, "msg", "Offer.Operation.Launch"),
        _opt("launch_group", 7, "msg", "Offer.Operation.LaunchGroup"),
        _opt("reserve", 3, "msg", "Offer.Operation.Reserve"),
        _opt("unreserve", 4, "msg", "Offer.Operation.Unreserve"),
        _opt("create", 5, "msg", "Offer.Operation.Create"),
        _opt("destroy", 6, "msg", "Offer.Operation.Destroy"),
        _opt("grow_volume", 13, "msg", "Offer.Operation.GrowVolume"),
        _opt("shrink_volume", 14, "msg", "Offer.Operation.ShrinkVolume"),
        _opt("create_disk", 15, "msg", "Offer.Operation.CreateDisk"),
        _opt("destroy_disk", 16, "msg", "Offer.Operation.DestroyDisk")],
    "Offer.Operation.Launch": [_rep("task_infos", 1, "msg", "TaskInfo")],
    "Offer.Operation.LaunchGroup": [
        _req("executor", 1, "msg", "ExecutorInfo"), _req("task_group", 2, "msg", "TaskGroupInfo")],
    "Offer.Operation.Reserve": [
        _rep("source", 2, "msg", "Resource"), _rep("resources", 1, "msg", "Resource")],
    "Offer.Operation.Unreserve": [_rep("resources", 1, "msg", "Resource")],
    "Offer.Operation.Create": [_rep("volumes", 1, "msg", "Resource")],
    "Offer.Operation.Destroy": [_rep("volumes", 1, "msg", "Resource")],
    "Offer.Operation.GrowVolume": [
        _req("volume", 1, "msg", "Resource"), _req("addition", 2, "msg", "Resource")],
    "Offer.Operation.ShrinkVolume": [
        _req("volume", 1, "msg", "Resource"), _req("subtract", 2, "msg", "Value.Scalar")],
    "Offer.Operation.CreateDisk": [
        _req("source", 1, "msg", "Resource"),
        _req("target_type", 2, "enum", "Resource.DiskInfo.Source.Type"),
        _opt("target_profile", 3, "string")],
    "Offer.Operation.DestroyDisk": [_req("source", 1, "msg", "Resource")],
    # --- tasks and executors ---
    "TaskInfo": [
        _req("name", 1, "string"), _req("task_id", 2, "msg", "TaskID"),
        _req("agent_id", 3, "msg", "AgentID"), _rep("resources", 4, "msg", "Resource"),
        _opt("executor", 5, "msg", "ExecutorInfo"), _opt("command", 7, "msg", "CommandInfo"),
        _opt("container", 9, "msg", "ContainerInfo"),
        _opt("health_check", 8, "msg", "HealthCheck"), _opt("check", 13, "msg", "CheckInfo"),
        _opt("kill_policy", 12, "msg", "KillPolicy"), _opt("data", 6, "bytes"),
        _opt("labels", 10, "msg", "Labels"), _opt("discovery", 11, "msg", "DiscoveryInfo"),
        _opt("max_completion_time", 14, "msg", "DurationInfo"),
        _map("limits", 15, "msg", "Value.Scalar")],
    "TaskGroupInfo": [_rep("tasks", 1, "msg", "TaskInfo")],
    "ExecutorInfo": [
        _opt("type", 15, "enum", "ExecutorInfo.Type"),
        _req("executor_id", 1, "msg", "ExecutorID"),
        _opt("framework_id", 8, "msg", "FrameworkID"), _opt("command", 7, "msg", "CommandInfo"),
        _opt("container", 11, "msg", "ContainerInfo"), _rep("resources", 5, "msg", "Resource"),
        _opt("name", 9, "string"), _opt("source", 10, "string", deprecated=True),
        _opt("data", 4, "bytes"), _opt("discovery", 12, "msg", "DiscoveryInfo"),
        _opt("shutdown_grace_period", 13, "msg", "DurationInfo"),
        _opt("labels", 14, "msg", "Labels")],
    "CommandInfo": [
        _rep("uris", 1, "msg", "CommandInfo.URI"), _opt("environment", 2, "msg", "Environment"),
        _opt("shell", 6, "bool", default=True), _opt("value", 3, "string"),
        _rep("arguments", 7, "string"), _opt("user", 5, "string")],
    "CommandInfo.URI": [
        _req("value", 1, "string"), _opt("executable", 2, "bool"),
        _opt("extract", 3, "bool", default=True), _opt("cache", 4, "bool"),
        _opt("output_file", 5, "string")],
    "Environment": [_rep("variables", 1, "msg", "Environment.Variable")],
    "Environment.Variable": [
        _req("name", 1, "string"),
        _opt("type", 3, "enum", "Environment.Variable.Type", default="VALUE"),
        _opt("value", 2, "string"), _opt("secret", 4, "msg", "Secret")],
    "Secret": [
        _opt("type", 1, "enum", "Secret.Type"), _opt("reference", 2, "msg", "Secret.Reference"),
        _opt("value", 3, "msg", "Secret.Value")],
    "Secret.Reference": [_req("name", 1, "string"), _opt("key", 2, "string")],
    "Secret.Value": [_req("data", 1, "bytes")],
    "KillPolicy": [_opt("grace_period", 1, "msg", "DurationInfo")],
    # --- containers ---
    "ContainerInfo": [
        _req("type", 1, "enum", "ContainerInfo.Type"), _rep("volumes", 2, "msg", "Volume"),
        _opt("hostname", 4, "string"), _opt("docker", 3, "msg", "ContainerInfo.DockerInfo"),
        _opt("mesos", 5, "msg", "ContainerInfo.MesosInfo"),
        _rep("network_infos", 7, "msg", "NetworkInfo"),
        _opt("linux_info", 8, "msg", "LinuxInfo"), _opt("rlimit_info", 9, "msg", "RLimitInfo"),
        _opt("tty_info", 10, "msg", "TTYInfo")],
    "ContainerInfo.DockerInfo": [
        _req("image", 1, "string"),
        _opt("network", 2, "enum", "ContainerInfo.DockerInfo.Network", default="HOST"),
        _rep("port_mappings", 3, "msg", "ContainerInfo.DockerInfo.PortMapping"),
        _opt("privileged", 4, "bool", default=False),
        _rep("parameters", 5, "msg", "Parameter"), _opt("force_pull_image", 6, "bool"),
        _opt("volume_driver", 7, "string", deprecated=True)],
    "ContainerInfo.DockerInfo.PortMapping": [
        _req("host_port", 1, "uint32"), _req("container_port", 2, "uint32"),
        _opt("protocol", 3, "string")],
    "ContainerInfo.MesosInfo": [_opt("image", 1, "msg", "Image")],
    "Image": [
        _req("type", 1, "enum", "Image.Type"), _opt("appc", 2, "msg", "Image.Appc"),
        _opt("docker", 3, "msg", "Image.Docker"), _opt("cached", 4, "bool", default=True)],
    "Image.Appc": [_req("name", 1, "string"), _opt("id", 2, "string"),
                   _opt("labels", 3, "msg", "Labels")],
    "Image.Docker": [_req("name", 1, "string"),
                     _opt("credential", 2, "msg", "Credential", deprecated=True),
                     _opt("config", 3, "msg", "Secret")],
    "Volume": [
        _req("mode", 3, "enum", "Volume.Mode"), _req("container_path", 1, "string"),
        _opt("host_path", 2, "string"), _opt("image", 4, "msg", "Image"),
        _opt("source", 5, "msg", "Volume.Source")],
    "Volume.Source": [
        _opt("type", 1, "enum", "Volume.Source.Type"),
        _opt("docker_volume", 2, "msg", "Volume.Source.DockerVolume"),
        _opt("host_path", 5, "msg", "Volume.Source.HostPath"),
        _opt("sandbox_path", 3, "msg", "Volume.Source.SandboxPath"),
        _opt("secret", 4, "msg", "Secret"),
        _opt("csi_volume", 6, "msg", "Volume.Source.CSIVolume")],
    "Volume.Source.DockerVolume": [
        _opt("driver", 1, "string"), _req("name", 2, "string"),
        _opt("driver_options", 3, "msg", "Parameters")],
    "Volume.Source.HostPath": [_req("path", 1, "string"),
                               _opt("mount_propagation", 2, "msg", "MountPropagation")],
    "MountPropagation": [_opt("mode", 1, "enum", "MountPropagation.Mode")],
    "Volume.Source.SandboxPath": [_opt("type", 1, "enum", "Volume.Source.SandboxPath.Type"),
                                  _req("path", 2, "string")],
    "Volume.Source.CSIVolume": [
        _req("plugin_name", 1, "string"),
        _opt("static_provisioning", 2, "msg", "Volume.Source.CSIVolume.StaticProvisioning")],
    "Volume.Source.CSIVolume.StaticProvisioning": [
        _req("volume_id", 1, "string"),
        _req("volume_capability", 2, "msg", "Volume.Source.CSIVolume.VolumeCapability"),
        _map("node_stage_secrets", 3, "msg", "Secret"),
        _map("node_publish_secrets", 4, "msg", "Secret"),
        _map("volume_context", 5, "string")],
    "Volume.Source.CSIVolume.VolumeCapability": [
        _opt("block", 1, "msg", "Volume.Source.CSIVolume.VolumeCapability.BlockVolume"),
        _opt("mount", 2, "msg", "Volume.Source.CSIVolume.VolumeCapability.MountVolume"),
        _req("access_mode", 3, "msg", "Volume.Source.CSIVolume.VolumeCapability.AccessMode")],
    "Volume.Source.CSIVolume.VolumeCapability.BlockVolume": [],
    "Volume.Source.CSIVolume.VolumeCapability.MountVolume": [
        _opt("fs_type", 1, "string"), _rep("mount_flags", 2, "string")],
    "Volume.Source.CSIVolume.VolumeCapability.AccessMode": [
        _req("mode", 1, "enum", "Volume.Source.CSIVolume.VolumeCapability.AccessMode.Mode")],
    "NetworkInfo": [
        _rep("ip_addresses", 5, "msg", "NetworkInfo.IPAddress"), _opt("name", 6, "string"),
        _rep("groups", 3, "string"), _opt("labels", 4, "msg", "Labels"),
        _rep("port_mappings", 7, "msg", "NetworkInfo.PortMapping")],
    "NetworkInfo.IPAddress": [
        _opt("protocol", 1, "enum", "NetworkInfo.Protocol", default="IPv4"),
        _opt("ip_address", 2, "string")],
    "NetworkInfo.PortMapping": [
        _req("host_port", 1, "uint32"), _req("container_port", 2, "uint32"),
        _opt("protocol", 3, "string")],
    "LinuxInfo": [
        _opt("capability_info", 1, "msg", "CapabilityInfo", deprecated=True),
        _opt("bounding_capabilities", 2, "msg", "CapabilityInfo"),
        _opt("effective_capabilities", 3, "msg", "CapabilityInfo"),
        _opt("share_pid_namespace", 4, "bool"), _opt("seccomp", 5, "msg", "SeccompInfo"),
        _opt("ipc_mode", 6, "enum", "LinuxInfo.IpcMode"), _opt("shm_size", 7, "uint32"),
        _opt("share_cgroups", 8, "bool", default=True)],
    "CapabilityInfo": [_rep("capabilities", 1, "enum", "CapabilityInfo.Capability")],
    "SeccompInfo": [_opt("profile_name", 1, "string"), _opt("unconfined", 2, "bool")],
    "RLimitInfo": [_rep("rlimits", 1, "msg", "RLimitInfo.RLimit")],
    "RLimitInfo.RLimit": [_opt("type", 1, "enum", "RLimitInfo.RLimit.Type"),
                          _opt("hard", 2, "uint64"), _opt("soft", 3, "uint64")],
    "TTYInfo": [_opt("window_size", 1, "msg", "TTYInfo.WindowSize")],
    "TTYInfo.WindowSize": [_req("rows", 1, "uint32"), _req("columns", 2, "uint32")],
    # --- health checks and checks ---
    "HealthCheck": [
        _opt("delay_seconds", 2, "double", default=15.0),
        _opt("interval_seconds", 3, "double", default=10.0),
        _opt("timeout_seconds", 4, "double", default=20.0),
        _opt("consecutive_failures", 5, "uint32", default=3),
        _opt("grace_period_seconds", 6, "double", default=10.0),
        _opt("type", 8, "enum", "HealthCheck.Type"), _opt("command", 7, "msg", "CommandInfo"),
        _opt("http", 1, "msg", "HealthCheck.HTTPCheckInfo"),
        _opt("tcp", 9, "msg", "HealthCheck.TCPCheckInfo")],
    "HealthCheck.HTTPCheckInfo": [
        _opt("protocol", 5, "enum", "NetworkInfo.Protocol", default="IPv4"),
        _opt("scheme", 3, "string"), _req("port", 1, "uint32"), _opt("path", 2, "string"),
        _rep("statuses", 4, "uint32")],
    "HealthCheck.TCPCheckInfo": [
        _opt("protocol", 2, "enum", "NetworkInfo.Protocol", default="IPv4"),
        _req("port", 1, "uint32")],
    "CheckInfo": [
        _opt("type", 1, "enum", "CheckInfo.Type"), _opt("command", 2, "msg", "CheckInfo.Command"),
        _opt("http", 3, "msg", "CheckInfo.Http"), _opt("tcp", 7, "msg", "CheckInfo.Tcp"),
        _opt("delay_seconds", 4, "double", default=15.0),
        _opt("interval_seconds", 5, "double", default=10.0),
        _opt("timeout_seconds", 6, "double", default=20.0)],
    "CheckInfo.Command": [_req("command", 1, "msg", "CommandInfo")],
    "CheckInfo.Http": [_req("port", 1, "uint32"), _opt("path", 2, "string")],
    "CheckInfo.Tcp": [_req("port", 1, "uint32")],
    # --- discovery ---
    "DiscoveryInfo": [
        _req("visibility", 1, "enum", "DiscoveryInfo.Visibility"), _opt("name", 2, "string"),
        _opt("environment", 3, "string"), _opt("location", 4, "string"),
        _opt("version", 5, "string"), _opt("ports", 6, "msg", "Ports"),
        _opt("labels", 7, "msg", "Labels")],
    "Ports": [_rep("ports", 1, "msg", "Port")],
    "Port": [
        _req("number", 1, "uint32"), _opt("name", 2, "string"), _opt("protocol", 3, "string"),
        _opt("visibility", 4, "enum", "DiscoveryInfo.Visibility"),
        _opt("labels", 5, "msg", "Labels")],
    # --- offer constraints (scheduler.proto) ---
    "OfferConstraints": [_map("role_constraints", 1, "msg", "OfferConstraints.RoleConstraints")],
    "OfferConstraints.RoleConstraints": [
        _rep("groups", 1, "msg", "OfferConstraints.RoleConstraints.Group")],
    "OfferConstraints.RoleConstraints.Group": [
        _rep("attribute_constraints", 1, "msg", "AttributeConstraint")],
    "AttributeConstraint": [
        _req("selector", 1, "msg", "AttributeConstraint.Selector"),
        _req("predicate", 2, "msg", "AttributeConstraint.Predicate")],
    "AttributeConstraint.Selector": [
        _opt("pseudoattribute_type", 1, "enum",
             "AttributeConstraint.Selector.PseudoattributeType"),
        _opt("attribute_name", 2, "string")],
    "AttributeConstraint.Predicate": [
        _opt("exists", 1, "msg", "AttributeConstraint.Predicate.Exists"),
        _opt("not_exists", 2, "msg", "AttributeConstraint.Predicate.NotExists"),
        _opt("text_equals", 3, "msg", "AttributeConstraint.Predicate.TextEquals"),
        _opt("text_not_equals", 4, "msg", "AttributeConstraint.Predicate.TextNotEquals"),
        _opt("text_matches", 5, "msg", "AttributeConstraint.Predicate.TextMatches"),
        _opt("text_not_matches", 6, "msg", "AttributeConstraint.Predicate.TextNotMatches")],
    "AttributeConstraint.Predicate.Exists": [],
    "AttributeConstraint.Predicate.NotExists": [],
    "AttributeConstraint.Predicate.TextEquals": [_req("value", 1, "string")],
    "AttributeConstraint.Predicate.TextNotEquals": [_req("value", 1, "string")],
    "AttributeConstraint.Predicate.TextMatches": [_req("regex", 1, "string")],
    "AttributeConstraint.Predicate.TextNotMatches": [_req("regex", 1, "string")],
    # --- the Call and its bodies ---
    "Call": [
        _opt("framework_id", 1, "msg", "FrameworkID"), _opt("type", 2, "enum", "Call.Type"),
        _opt("subscribe", 3, "msg", "Call.Subscribe"), _opt("accept", 4, "msg", "Call.Accept"),
        _opt("decline", 5, "msg", "Call.Decline"),
        _opt("accept_inverse_offers", 13, "msg", "Call.AcceptInverseOffers"),
        _opt("decline_inverse_offers", 14, "msg", "Call.DeclineInverseOffers"),
        _opt("revive", 15, "msg", "Call.Revive"), _opt("kill", 6, "msg", "Call.Kill"),
        _opt("shutdown", 7, "msg", "Call.Shutdown"),
        _opt("acknowledge", 8, "msg", "Call.Acknowledge"),
        _opt("acknowledge_operation_status", 17, "msg", "Call.AcknowledgeOperationStatus"),
        _opt("reconcile", 9, "msg", "Call.Reconcile"),
        _opt("reconcile_operations", 18, "msg", "Call.ReconcileOperations"),
        _opt("message", 10, "msg", "Call.Message"), _opt("request", 11, "msg", "Call.Request"),
        _opt("suppress", 16, "msg", "Call.Suppress"),
        _opt("update_framework", 19, "msg", "Call.UpdateFramework")],
    "Call.Subscribe": [
        _req("framework_info", 1, "msg", "FrameworkInfo"), _rep("suppressed_roles", 2, "string"),
        _opt("offer_constraints", 3, "msg", "OfferConstraints")],
    "Call.Accept": [
        _rep("offer_ids", 1, "msg", "OfferID"), _rep("operations", 2, "msg", "Offer.Operation"),
        _opt("filters", 3, "msg", "Filters")],
    "Call.Decline": [_rep("offer_ids", 1, "msg", "OfferID"), _opt("filters", 2, "msg", "Filters")],
    "Call.AcceptInverseOffers": [_rep("inverse_offer_ids", 1, "msg", "OfferID"),
                                 _opt("filters", 2, "msg", "Filters")],
    "Call.DeclineInverseOffers": [_rep("inverse_offer_ids", 1, "msg", "OfferID"),
                                  _opt("filters", 2, "msg", "Filters")],
    "Call.Revive": [_rep("roles", 1, "string")],
    "Call.Suppress": [_rep("roles", 1, "string")],
    "Call.Kill": [_req("task_id", 1, "msg", "TaskID"), _opt("agent_id", 2, "msg", "AgentID"),
                  _opt("kill_policy", 3, "msg", "KillPolicy")],
    "Call.Shutdown": [_req("executor_id", 1, "msg", "ExecutorID"),
                      _req("agent_id", 2, "msg", "AgentID")],
    "Call.Acknowledge": [_req("agent_id", 1, "msg", "AgentID"), _req("task_id", 2, "msg", "TaskID"),
                         _req("uuid", 3, "bytes")],
    "Call.AcknowledgeOperationStatus": [
        _opt("agent_id", 1, "msg", "AgentID"),
        _opt("resource_provider_id", 2, "msg", "ResourceProviderID"),
        _req("uuid", 3, "bytes"), _req("operation_id", 4, "msg", "OperationID")],
    "Call.Reconcile": [_rep("tasks", 1, "msg", "Call.Reconcile.Task")],
    "Call.Reconcile.Task": [_req("task_id", 1, "msg", "TaskID"),
                            _opt("agent_id", 2, "msg", "AgentID")],
    "Call.ReconcileOperations": [_rep("operations", 1, "msg", "Call.ReconcileOperations.Operation")],
    "Call.ReconcileOperations.Operation": [
        _req("operation_id", 1, "msg", "OperationID"), _opt("agent_id", 2, "msg", "AgentID"),
        _opt("resource_provider_id", 3, "msg", "ResourceProviderID")],
    "Call.Message": [_req("agent_id", 1, "msg", "AgentID"),
                     _req("executor_id", 2, "msg", "ExecutorID"), _req("data", 3, "bytes")],
    "Call.Request": [_rep("requests", 1, "msg", "Request")],
    "Call.UpdateFramework": [
        _req("framework_info", 1, "msg", "FrameworkInfo"), _rep("suppressed_roles", 2, "string"),
        _opt("offer_constraints", 3, "msg", "OfferConstraints")],
}

_CAPS_LINUX = (
    "UNKNOWN CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP "
    "LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER "
    "SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE "
    "SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP "
    "MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF "
    "CHECKPOINT_RESTORE")

_ENUMS = {k: frozenset(v.split()) for k, v in {
    "Call.Type": "UNKNOWN SUBSCRIBE TEARDOWN ACCEPT DECLINE ACCEPT_INVERSE_OFFERS "
                 "DECLINE_INVERSE_OFFERS REVIVE KILL SHUTDOWN ACKNOWLEDGE "
                 "ACKNOWLEDGE_OPERATION_STATUS RECONCILE RECONCILE_OPERATIONS MESSAGE REQUEST "
                 "SUPPRESS UPDATE_FRAMEWORK",
    "Value.Type": "SCALAR RANGES SET TEXT",
    "Offer.Operation.Type": "UNKNOWN LAUNCH LAUNCH_GROUP RESERVE UNRESERVE CREATE DESTROY "
                            "GROW_VOLUME SHRINK_VOLUME CREATE_DISK DESTROY_DISK",
    "FrameworkInfo.Capability.Type": "UNKNOWN REVOCABLE_RESOURCES TASK_KILLING_STATE "
                                     "GPU_RESOURCES SHARED_RESOURCES PARTITION_AWARE "
                                     "MULTI_ROLE RESERVATION_REFINEMENT REGION_AWARE",
    "ExecutorInfo.Type": "UNKNOWN DEFAULT CUSTOM",
    "ContainerInfo.Type": "DOCKER MESOS",
    "ContainerInfo.DockerInfo.Network": "HOST BRIDGE NONE USER",
    "Image.Type": "APPC DOCKER",
    "Volume.Mode": "RW RO",
    "Volume.Source.Type": "UNKNOWN DOCKER_VOLUME HOST_PATH SANDBOX_PATH SECRET CSI_VOLUME",
    "Volume.Source.SandboxPath.Type": "UNKNOWN SELF PARENT",
    "Volume.Source.CSIVolume.VolumeCapability.AccessMode.Mode":
        "UNKNOWN SINGLE_NODE_WRITER SINGLE_NODE_READER_ONLY MULTI_NODE_READER_ONLY "
        "MULTI_NODE_SINGLE_WRITER MULTI_NODE_MULTI_WRITER",
    "MountPropagation.Mode": "UNKNOWN HOST_TO_CONTAINER BIDIRECTIONAL",
    "NetworkInfo.Protocol": "IPv4 IPv6",
    "Secret.Type": "UNKNOWN REFERENCE VALUE",
    "Environment.Variable.Type": "UNKNOWN VALUE SECRET",
    "HealthCheck.Type": "UNKNOWN COMMAND HTTP TCP",
    "CheckInfo.Type": "UNKNOWN COMMAND HTTP TCP",
    "DiscoveryInfo.Visibility": "FRAMEWORK CLUSTER EXTERNAL",
    "Resource.ReservationInfo.Type": "UNKNOWN STATIC DYNAMIC",
    "Resource.DiskInfo.Source.Type": "UNKNOWN PATH MOUNT BLOCK RAW",
    "LinuxInfo.IpcMode": "UNKNOWN PRIVATE SHARE_PARENT",
    "CapabilityInfo.Capability": _CAPS_LINUX,
    "RLimitInfo.RLimit.Type": "UNKNOWN RLMT_AS RLMT_CORE RLMT_CPU RLMT_DATA RLMT_FSIZE "
                              "RLMT_LOCKS RLMT_MEMLOCK RLMT_MSGQUEUE RLMT_NICE RLMT_NOFILE "
                              "RLMT_NPROC RLMT_RSS RLMT_RTPRIO RLMT_RTTIME RLMT_SIGPENDING "
                              "RLMT_STACK",
    "AttributeConstraint.Selector.PseudoattributeType": "UNKNOWN HOSTNAME REGION ZONE",
}.items()}


class _Schema:
    """Lookup tables built once from _MESSAGES."""

    def __init__(self):
        self.fields = {}      # message -> {name: FieldSpec}
        self.ordered = {}     # message -> [FieldSpec] in declaration order
        self.by_number = {}   # message -> [FieldSpec] sorted by number
        for name, fields in _MESSAGES.items():
            self.ordered[name] = list(fields)
            self.fields[name] = {f.name: f for f in fields}
            self.by_number[name] = sorted(fields, key=lambda f: f.number)
        for name, fields in _MESSAGES.items():
            for f in fields:
                if f.kind == "msg" and f.ref not in _MESSAGES:
                    raise AssertionError("schema: %s.%s refers to unknown %s" % (name, f.name, f.ref))
                if f.kind == "enum" and f.ref not in _ENUMS:
                    raise AssertionError("schema: %s.%s refers to unknown enum %s"
                                         % (name, f.name, f.ref))


SCHEMA = _Schema()


class ConversionError(Exception):
    """The JSON does not map onto the protobuf message (-> HTTP 400)."""


_INT_LIMITS = {"int32": (-(2 ** 31), 2 ** 31), "int64": (-(2 ** 63), 2 ** 63),
               "uint32": (0, 2 ** 32), "uint64": (0, 2 ** 64)}


def _c_int_cast(value, kind):
    """What JSON::Number::as<intN_t>() yields: truncation, then wrap-around."""
    if isinstance(value, float):
        if value != value or math.isinf(value):
            return 0, True
        ivalue = int(value)
        lossy = float(ivalue) != value
    else:
        ivalue, lossy = value, False
    lo, hi = _INT_LIMITS[kind]
    if lo <= ivalue < hi:
        return ivalue, lossy
    width = hi - lo
    wrapped = (ivalue - lo) % width + lo
    return wrapped, True


class ProtoConverter:
    """JSON -> protobuf like stout's protobuf::parse, plus strict notes.

    The resulting "proto value" is a dict holding only the fields that are
    set: sub-messages are dicts, repeated fields lists, maps dicts, enums their
    names, bytes `bytes`.  Keys are visited in sorted order (stout's JSON
    object is a std::map), so the first error reported is the real one.
    `notes` collects (kind, path, message) for everything a real master would
    silently accept but that is almost certainly a framework bug."""

    def __init__(self):
        self.notes = []

    def note(self, kind, path, message):
        self.notes.append((kind, path, message))

    def convert(self, mname, obj, path=""):
        fields = SCHEMA.fields[mname]
        out = {}
        for key in sorted(obj):
            fpath = key if not path else path + "." + key
            spec = fields.get(key)
            if spec is None:
                self.note("unknown_field", fpath,
                          "'%s' is not a field of %s (a real master silently ignores it)"
                          % (key, mname))
                continue
            self._field(spec, out, obj[key], fpath, in_array=False)
        return out

    def _field(self, spec, out, value, path, in_array):
        if value is None:
            return  # JSON null means "not set"
        if isinstance(value, list):
            if spec.label not in ("rep", "map"):
                raise ConversionError("Not expecting a JSON array for field '%s'" % spec.name)
            if in_array:
                self.note("nested_array", path, "nested JSON array flattened into '%s'" % spec.name)
            for i, item in enumerate(value):
                self._field(spec, out, item, "%s[%d]" % (path, i), in_array=True)
            return
        if spec.label == "rep" and not in_array:
            kind = "object_for_repeated" if isinstance(value, dict) else "scalar_for_repeated"
            self.note(kind, path, "repeated field '%s' given a single JSON %s instead of an array"
                      % (spec.name, "object" if isinstance(value, dict) else "value"))
        if isinstance(value, dict):
            if spec.kind != "msg" and not (spec.label == "map"):
                raise ConversionError("Not expecting a JSON object for field '%s'" % spec.name)
            if spec.label == "map":
                entries = out.setdefault(spec.name, {})
                for key in sorted(value):
                    holder = {}
                    vspec = _f("value", 2, "opt", spec.kind, spec.ref)
                    self._field(vspec, holder, value[key], path + "." + key, in_array=False)
                    entries[key] = holder.get("value", {} if spec.kind == "msg" else None)
                return
            sub = self.convert(spec.ref, value, path)
            if spec.label == "rep":
                out.setdefault(spec.name, []).append(sub)
            else:
                out[spec.name] = sub
            return
        if spec.label == "map":
            # Map entries are messages on the wire, so a bare value never fits.
            raise ConversionError("Not expecting a JSON %s for field '%s'" % (
                "boolean" if isinstance(value, bool) else
                "string" if isinstance(value, str) else "number", spec.name))
        converted = self._scalar(spec, value, path)
        if converted is _NODEF:
            return
        if spec.label in ("rep", "map"):
            out.setdefault(spec.name, []).append(converted)
        else:
            out[spec.name] = converted

    def _scalar(self, spec, value, path):
        kind = spec.kind
        name = spec.name
        if isinstance(value, bool):
            if kind == "bool":
                return value
            raise ConversionError("Not expecting a JSON boolean for field '%s'" % name)
        if isinstance(value, str):
            if kind == "string":
                return value
            if kind == "bytes":
                data, err = stout_b64decode(value)
                if err is not None:
                    raise ConversionError("Failed to base64 decode bytes field '%s': %s"
                                          % (name, err))
                if b64(data) != value:
                    self.note("base64_noncanonical", path,
                              "bytes field '%s' is not canonical standard base64 with padding"
                              % name)
                return data
            if kind == "enum":
                if value in _ENUMS[spec.ref]:
                    return value
                if spec.label == "req":
                    raise ConversionError("Failed to find enum for '%s'" % value)
                self.note("unknown_enum_value", path,
                          "'%s' is not a value of %s; a real master drops the field"
                          % (value, spec.ref))
                return _NODEF
            if kind in ("double", "float"):
                if value == "Infinity":
                    return math.inf
                if value == "-Infinity":
                    return -math.inf
                number = self._number_from_string(value, name)
                self.note("numeric_string", path, "number for '%s' sent as a JSON string" % name)
                return float(number)
            if kind in _INT_LIMITS:
                number = self._number_from_string(value, name)
                self.note("numeric_string", path, "number for '%s' sent as a JSON string" % name)
                return self._int(spec, number, path)
            if kind == "bool":
                parsed, err, _ = pico_parse(_sx(value))
                if err is not None:
                    raise ConversionError("Failed to parse '%s' as a JSON boolean for field '%s': %s"
                                          % (value, name, err))
                if not isinstance(parsed, bool):
                    raise ConversionError("Failed to parse '%s' as a JSON boolean for field '%s': "
                                          "Unexpected JSON type parsed" % (value, name))
                self.note("numeric_string", path, "boolean for '%s' sent as a JSON string" % name)
                return parsed
            raise ConversionError("Not expecting a JSON string for field '%s'" % name)
        # JSON number
        if kind in ("double", "float"):
            return float(value)
        if kind in _INT_LIMITS:
            return self._int(spec, value, path)
        raise ConversionError("Not expecting a JSON number for field '%s'" % name)

    @staticmethod
    def _number_from_string(value, name):
        parsed, err, _ = pico_parse(_sx(value))
        if err is None and (isinstance(parsed, bool) or not isinstance(parsed, (int, float))):
            err = "Unexpected JSON type parsed"
        if err is not None:
            raise ConversionError("Failed to parse '%s' as a JSON number for field '%s': %s"
                                  % (value, name, err))
        return parsed

    def _int(self, spec, number, path):
        result, lossy = _c_int_cast(number, spec.kind)
        if lossy:
            self.note("non_integral_number", path,
                      "%r for %s field '%s' was truncated/wrapped to %d"
                      % (number, spec.kind, spec.name, result))
        return result


def missing_required(mname, value, prefix=""):
    """protobuf's InitializationErrorString: required fields in declaration
    order, then recursion into set sub-messages in field-number order."""
    errors = []
    for spec in SCHEMA.ordered[mname]:
        if spec.label == "req" and spec.name not in value:
            errors.append(prefix + spec.name)
    for spec in SCHEMA.by_number[mname]:
        if spec.kind != "msg" or spec.name not in value:
            continue
        sub = value[spec.name]
        if spec.label == "rep":
            for i, item in enumerate(sub):
                errors += missing_required(spec.ref, item, "%s%s[%d]." % (prefix, spec.name, i))
        elif spec.label == "map":
            for i, key in enumerate(sub):
                errors += missing_required(spec.ref, sub[key],
                                           "%s%s[%d].value." % (prefix, spec.name, i))
        else:
            errors += missing_required(spec.ref, sub, prefix + spec.name + ".")
    return errors


def jsonify(mname, value):
    """Protobuf value -> JSON the way stout's jsonify writes it: declaration
    order, defaults of non-deprecated fields included, empty repeated omitted."""
    out = {}
    for spec in SCHEMA.ordered[mname]:
        if spec.name in value:
            v = value[spec.name]
            if spec.label == "rep":
                if not v:
                    continue
                out[spec.name] = [_jsonify_scalar(spec, x) for x in v]
            elif spec.label == "map":
                if not v:
                    continue
                out[spec.name] = {k: _jsonify_scalar(spec, x) for k, x in v.items()}
            else:
                out[spec.name] = _jsonify_scalar(spec, v)
        elif spec.default is not _NODEF and not spec.deprecated:
            out[spec.name] = spec.default
    return out


def _jsonify_scalar(spec, v):
    if spec.kind == "msg":
        return jsonify(spec.ref, v)
    if spec.kind == "bytes":
        return b64(v)
    if spec.kind in ("double", "float"):
        return float(v)
    return v


# ---------------------------------------------------------------------------
# Resources: scalars in fixed point (3 decimals, like Mesos), ranges as sorted
# disjoint intervals, sets as sorted tuples.  A Resources value is an ordered
# list of Res; two Res with the same identity key merge.
# ---------------------------------------------------------------------------

def _fixed(value):
    return int(round(value * 1000))


def _ranges_normalize(ranges):
    ranges = sorted(ranges)
    out = []
    for b, e in ranges:
        if out and b <= out[-1][1] + 1:
            if e > out[-1][1]:
                out[-1] = (out[-1][0], e)
        else:
            out.append((b, e))
    return out


def _ranges_contains(outer, inner):
    starts = [b for b, _ in outer]
    for b, e in inner:
        i = bisect_right(starts, b) - 1
        if i < 0 or outer[i][1] < e:
            return False
    return True


def _ranges_subtract(a, b):
    out = []
    for lo, hi in a:
        pieces = [(lo, hi)]
        for rb, re_ in b:
            nxt = []
            for pl, ph in pieces:
                if re_ < pl or rb > ph:
                    nxt.append((pl, ph))
                    continue
                if pl < rb:
                    nxt.append((pl, rb - 1))
                if re_ < ph:
                    nxt.append((re_ + 1, ph))
            pieces = nxt
        out += pieces
    return _ranges_normalize(out)


def _ranges_str(ranges):
    return "[" + ", ".join("%d-%d" % r for r in ranges) + "]"


def _scalar_str(millis):
    # C++ `ostream << double` uses 6 significant digits, like %g.
    return "%g" % (millis / 1000.0)


class Res:
    """One resource entry.  `role` is the reservation role ('*' = unreserved),
    `alloc` the allocation role, `extra` a canonical string of every other
    identity field (disk, revocable, shared, provider, reservation details)."""

    __slots__ = ("name", "kind", "role", "alloc", "extra", "scalar", "ranges", "items")

    def __init__(self, name, kind, role="*", alloc=None, extra="", scalar=0,
                 ranges=None, items=()):
        self.name = name
        self.kind = kind
        self.role = role
        self.alloc = alloc
        self.extra = extra
        self.scalar = scalar
        self.ranges = ranges or []
        self.items = tuple(items)

    def key(self):
        return (self.name, self.kind, self.role, self.alloc, self.extra)

    def copy(self, alloc=_NODEF):
        return Res(self.name, self.kind, self.role,
                   self.alloc if alloc is _NODEF else alloc, self.extra,
                   self.scalar, list(self.ranges), self.items)

    def empty(self):
        if self.kind == "SCALAR":
            return self.scalar <= 0
        if self.kind == "RANGES":
            return not self.ranges
        return not self.items

    def value_str(self):
        if self.kind == "SCALAR":
            return _scalar_str(self.scalar)
        if self.kind == "RANGES":
            return _ranges_str(self.ranges)
        return "{" + ", ".join(self.items) + "}"

    def __str__(self):
        # Mesos' operator<<(Resource): name(allocated: r, reservations: ...):value
        parts = []
        if self.alloc is not None:
            parts.append("allocated: " + self.alloc)
        if self.role != "*":
            parts.append("reservations: [(STATIC," + self.role + ")]")
        if self.extra:
            parts.append(self.extra)
        head = self.name + ("(" + ", ".join(parts) + ")" if parts else "")
        return head + ":" + self.value_str()

    def to_json(self, with_alloc):
        """v1 protobuf JSON for offers (pre-refinement format: role '*')."""
        out = {"name": self.name, "type": self.kind}
        if self.kind == "SCALAR":
            out["scalar"] = {"value": self.scalar / 1000.0}
        elif self.kind == "RANGES":
            out["ranges"] = {"range": [{"begin": b, "end": e} for b, e in self.ranges]}
        else:
            out["set"] = {"item": list(self.items)}
        out["role"] = self.role
        if with_alloc and self.alloc is not None:
            out["allocation_info"] = {"role": self.alloc}
        return out


def res_add(resources, r):
    """resources += r (in place), merging entries with the same identity."""
    if r.empty():
        return resources
    k = r.key()
    for mine in resources:
        if mine.key() == k:
            if r.kind == "SCALAR":
                mine.scalar += r.scalar
            elif r.kind == "RANGES":
                mine.ranges = _ranges_normalize(mine.ranges + r.ranges)
            else:
                mine.items = tuple(sorted(set(mine.items) | set(r.items)))
            return resources
    resources.append(r.copy())
    return resources


def res_sum(*lists):
    out = []
    for lst in lists:
        for r in lst:
            res_add(out, r)
    return out


def res_sub(resources, r):
    """resources -= r (in place); entries that become empty are removed."""
    k = r.key()
    for i, mine in enumerate(resources):
        if mine.key() == k:
            if r.kind == "SCALAR":
                mine.scalar -= r.scalar
            elif r.kind == "RANGES":
                mine.ranges = _ranges_subtract(mine.ranges, r.ranges)
            else:
                mine.items = tuple(x for x in mine.items if x not in set(r.items))
            if mine.empty():
                del resources[i]
            return resources
    return resources


def res_contains(a, b):
    """Mesos' Resources::contains: every entry of b fits in what a has left."""
    remaining = [r.copy() for r in a]
    for r in res_sum(b):
        match = None
        for mine in remaining:
            if mine.key() == r.key():
                match = mine
                break
        if match is None:
            return False
        if r.kind == "SCALAR":
            if match.scalar < r.scalar:
                return False
        elif r.kind == "RANGES":
            if not _ranges_contains(match.ranges, r.ranges):
                return False
        elif not set(r.items) <= set(match.items):
            return False
        res_sub(remaining, r)
    return True


def res_str(resources):
    return "; ".join(str(r) for r in resources)


def res_summary(resources):
    """The legacy endpoints' resource map: cpus/gpus/mem/disk always present,
    ranges as a string like "[31000-31005, 31010-31010]"."""
    scalars = collections.OrderedDict([("disk", 0), ("mem", 0), ("gpus", 0), ("cpus", 0)])
    ranges = collections.OrderedDict()
    sets = collections.OrderedDict()
    for r in resources:
        if r.kind == "SCALAR":
            scalars[r.name] = scalars.get(r.name, 0) + r.scalar
        elif r.kind == "RANGES":
            ranges[r.name] = _ranges_normalize(ranges.get(r.name, []) + r.ranges)
        else:
            sets[r.name] = sorted(set(sets.get(r.name, [])) | set(r.items))
    out = collections.OrderedDict((k, v / 1000.0) for k, v in scalars.items())
    for k, v in ranges.items():
        out[k] = _ranges_str(v)
    for k, v in sets.items():
        out[k] = "{" + ", ".join(v) + "}"
    return out


def _resource_extra(proto):
    """Identity fields other than name/type/role/allocation, canonicalised."""
    extra = {}
    for key in ("provider_id", "reservation", "disk", "revocable", "shared"):
        if key in proto:
            extra[key] = proto[key]
    reservations = proto.get("reservations") or []
    if len(reservations) > 1 or (reservations and
                                 (reservations[-1].get("type") == "DYNAMIC"
                                  or "principal" in reservations[-1]
                                  or "labels" in reservations[-1])):
        extra["reservations"] = reservations
    if not extra:
        return ""
    return json.dumps(extra, sort_keys=True, default=lambda b: b64(b))


def resource_error(proto):
    """Resources::validate for one resource; returns a message or None."""
    name = proto.get("name", "")
    kind = proto.get("type")
    if not name:
        return "Empty resource name"
    if kind == "SCALAR":
        if "scalar" not in proto or "ranges" in proto or "set" in proto:
            return "Invalid scalar resource"
        v = proto["scalar"].get("value", 0.0)
        if v != v or v < 0:
            return "Invalid scalar resource: value < 0"
    elif kind == "RANGES":
        if "scalar" in proto or "ranges" not in proto or "set" in proto:
            return "Invalid ranges resource"
        rs = [(r.get("begin", 0), r.get("end", 0)) for r in proto["ranges"].get("range", [])]
        for i, (b, e) in enumerate(rs):
            if b > e:
                return "Invalid ranges resource: begin > end"
            for b2, e2 in rs[i + 1:]:
                if not (e < b2 or e2 < b):
                    return "Invalid ranges resource: overlapping ranges"
    elif kind == "SET":
        if "scalar" in proto or "ranges" in proto or "set" not in proto:
            return "Invalid set resource"
        items = proto["set"].get("item", [])
        if len(set(items)) != len(items):
            return "Invalid set resource: duplicated elements"
    else:
        return "Unsupported resource type"
    if "role" in proto and proto.get("reservations"):
        return "Resource with reservations must not have 'role' set"
    return None


def res_from_proto(proto, inject_alloc=None):
    """A converted Resource message -> Res.  The master injects the offer's
    allocation role into resources that lack allocation_info."""
    role = proto.get("role", "*")
    reservations = proto.get("reservations") or []
    if reservations:
        role = reservations[-1].get("role", "*")
    alloc = proto.get("allocation_info", {}).get("role") \
        if "allocation_info" in proto else inject_alloc
    r = Res(proto["name"], proto["type"], role, alloc, _resource_extra(proto))
    if r.kind == "SCALAR":
        r.scalar = _fixed(proto["scalar"]["value"])
    elif r.kind == "RANGES":
        r.ranges = _ranges_normalize(
            [(x["begin"], x["end"]) for x in proto["ranges"].get("range", [])])
    else:
        r.items = tuple(sorted(set(proto["set"].get("item", []))))
    return r


def parse_ranges_text(text):
    """'31000-32000' or '[31000-31099,31200-32000]' -> [(b, e), ...]."""
    text = text.strip().strip("[]")
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        b, _, e = part.partition("-")
        out.append((int(b), int(e or b)))
    return _ranges_normalize(out)


# ---------------------------------------------------------------------------
# Strict decoders (used by the tests, usable by any Python harness): the
# HTTP/1.1 chunked layer and the RecordIO layer, each rejecting anything a
# real master would never send.
# ---------------------------------------------------------------------------

class ProtocolError(Exception):
    pass


class ChunkedDecoder:
    """Incremental strict decoder of a chunked HTTP body.

    feed(bytes) -> list of chunk payloads (boundaries preserved, so tests can
    see how records were split).  `finished` turns true on the 0-chunk."""

    def __init__(self):
        self.buf = bytearray()
        self.finished = False
        self.need = None  # payload bytes still expected for the current chunk

    def feed(self, data):
        self.buf += data
        out = []
        while not self.finished:
            if self.need is None:
                i = self.buf.find(b"\r\n")
                if i < 0:
                    if len(self.buf) > 32:
                        raise ProtocolError("chunk size line too long")
                    break
                line = bytes(self.buf[:i])
                if not line or not re.fullmatch(rb"[0-9a-fA-F]+", line):
                    raise ProtocolError("bad chunk size line %r" % line)
                self.need = int(line, 16)
                del self.buf[:i + 2]
            if len(self.buf) < self.need + 2:
                break
            payload = bytes(self.buf[:self.need])
            if self.buf[self.need:self.need + 2] != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")
            del self.buf[:self.need + 2]
            if self.need == 0:
                self.finished = True
            else:
                out.append(payload)
            self.need = None
        return out


class RecordIODecoder:
    """Strict RecordIO decoder: '<1..20 ASCII digits>\\n<record>'.

    feed(bytes) -> list of parsed JSON records.  Raises ProtocolError on a
    malformed length, an oversized record or a record that is not JSON."""

    def __init__(self, max_record=64 * 1024 * 1024):
        self.buf = bytearray()
        self.need = None
        self.max_record = max_record

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            if self.need is None:
                i = self.buf.find(b"\n")
                if i < 0:
                    if len(self.buf) > 20 or not re.fullmatch(rb"[0-9]*", bytes(self.buf)):
                        raise ProtocolError("bad record length %r" % bytes(self.buf[:24]))
                    break
                digits = bytes(self.buf[:i])
                if not re.fullmatch(rb"[0-9]{1,20}", digits):
                    raise ProtocolError("bad record length %r" % digits)
                n = int(digits)
                if n > self.max_record:
                    raise ProtocolError("record of %d bytes is over the limit" % n)
                self.need = n
                del self.buf[:i + 1]
            if len(self.buf) < self.need:
                break
            record = bytes(self.buf[:self.need])
            del self.buf[:self.need]
            self.need = None
            if not record:
                continue
            try:
                out.append(json.loads(record.decode("utf-8")))
            except ValueError as e:
                raise ProtocolError("record is not JSON: %s" % e)
        return out


# ---------------------------------------------------------------------------
# Timers: one thread, a heap of deadlines.  Callbacks take the master lock
# themselves.
# ---------------------------------------------------------------------------

class _Timer:
    __slots__ = ("when", "seq", "fn", "args", "cancelled")

    def __init__(self, when, seq, fn, args):
        self.when = when
        self.seq = seq
        self.fn = fn
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def __lt__(self, other):
        return (self.when, self.seq) < (other.when, other.seq)


class _Timers:
    def __init__(self, on_error):
        self.heap = []
        self.cond = threading.Condition()
        self.seq = 0
        self.running = False
        self.thread = None
        self.on_error = on_error

    def start(self):
        self.running = True
        self.thread = threading.Thread(target=self._run, name="mesos-sim-timers", daemon=True)
        self.thread.start()

    def stop(self):
        with self.cond:
            self.running = False
            self.heap = []
            self.cond.notify_all()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(5)

    def call_later(self, delay, fn, *args):
        with self.cond:
            self.seq += 1
            t = _Timer(_mono() + max(0.0, delay), self.seq, fn, args)
            heapq.heappush(self.heap, t)
            if self.heap[0] is t:
                self.cond.notify()
            return t

    def _run(self):
        while True:
            with self.cond:
                while self.running:
                    if not self.heap:
                        self.cond.wait()
                        continue
                    delay = self.heap[0].when - _mono()
                    if delay <= 0:
                        break
                    self.cond.wait(delay)
                if not self.running:
                    return
                t = heapq.heappop(self.heap)
            if t.cancelled:
                continue
            try:
                t.fn(*t.args)
            except Exception:  # a broken callback must not kill all timers
                self.on_error(traceback.format_exc())


# ---------------------------------------------------------------------------
# Master-side entities.
# ---------------------------------------------------------------------------

class Agent:
    def __init__(self, index, agent_id, hostname, port, resources, attributes, docker):
        self.index = index
        self.id = agent_id
        self.hostname = hostname
        self.port = port
        self.ip = "127.0.0.1"
        self.total = resources          # [Res] with alloc=None
        self.used = []                  # [Res] with alloc roles
        self.offered = []
        self.attributes = attributes    # [(name, kind, value)]
        self.docker = docker
        self.registered = True          # known to the (current) master
        self.connected = True
        self.state = "active"           # active | unreachable
        self.registered_time = _now()
        self.reregistered_time = None
        self.unreachable_time = None
        self.tasks = collections.OrderedDict()    # (framework_id, task_id) -> Task
        self.framework_infos = {}                 # framework_id -> FrameworkInfo proto
        self.executors = {}                       # framework_id -> {executor_id: proto}
        self.executor_res = {}                    # (framework_id, executor_id) -> [Res]

    def free(self):
        """Unallocated resources (allocation roles stripped)."""
        left = [r.copy(alloc=None) for r in self.total]
        for r in self.used:
            res_sub(left, r.copy(alloc=None))
        for r in self.offered:
            res_sub(left, r.copy(alloc=None))
        return left

    def attribute_value(self, name):
        for aname, kind, value in self.attributes:
            if aname == name:
                return value if kind == "TEXT" else _scalar_str(_fixed(value)) \
                    if kind == "SCALAR" else str(value)
        return None

    def attributes_json(self):
        out = []
        for name, kind, value in self.attributes:
            a = {"name": name, "type": kind}
            if kind == "SCALAR":
                a["scalar"] = {"value": float(value)}
            elif kind == "RANGES":
                a["ranges"] = {"range": [{"begin": b, "end": e} for b, e in value]}
            elif kind == "SET":
                a["set"] = {"item": list(value)}
            else:
                a["text"] = {"value": value}
            out.append(a)
        return out

    def attributes_map(self):
        out = collections.OrderedDict()
        for name, kind, value in self.attributes:
            if kind == "SCALAR":
                out[name] = float(value)
            elif kind == "RANGES":
                out[name] = _ranges_str(value)
            elif kind == "SET":
                out[name] = "{" + ",".join(value) + "}"
            else:
                out[name] = value
        return out


class Offer:
    __slots__ = ("id", "framework_id", "agent_id", "role", "resources", "created", "timer")

    def __init__(self, offer_id, framework_id, agent_id, role, resources):
        self.id = offer_id
        self.framework_id = framework_id
        self.agent_id = agent_id
        self.role = role
        self.resources = resources
        self.created = _mono()
        self.timer = None


class StatusUpdate:
    """An agent/executor update waiting in the agent's per-task stream."""

    __slots__ = ("uuid", "status", "state", "created", "sends", "first_sent", "last_sent")

    def __init__(self, uuid_bytes, status):
        self.uuid = uuid_bytes
        self.status = status
        self.state = status["state"]
        self.created = _mono()
        self.sends = 0
        self.first_sent = None
        self.last_sent = None


class Task:
    def __init__(self, info, framework_id, agent, role, resources, executor_id=None,
                 executor_resources=None):
        self.info = info
        self.task_id = info["task_id"]["value"]
        self.name = info["name"]
        self.framework_id = framework_id
        self.agent_id = agent.id
        self.role = role
        self.resources = resources
        self.executor_id = executor_id              # None for command tasks
        self.executor_resources = executor_resources or []
        self.state = "TASK_STAGING"                 # latest state known to the master
        self.status_update_state = None             # latest state forwarded
        self.statuses = []                          # for the operator endpoints
        self.last_status = None                     # last forwarded TaskStatus
        self.pending = collections.deque()          # agent-side unacked updates
        self.resend_timer = None
        self.resend_interval = None
        self.launched = False
        self.released = False                       # resources given back
        self.container_id = str(uuidlib.uuid4())
        self.executor_pid = random.randint(1000, 60000)
        self.ip = agent.ip
        self.timers = []
        self.kill_requested = False
        self.healthy = None
        network = info.get("container", {}).get("docker", {}).get("network")
        if network in ("BRIDGE", "USER"):
            self.ip = "172.17.0.%d" % random.randint(2, 250)

    @property
    def exec_id_for_status(self):
        # Built-in executors use the task id as executor id.
        return self.executor_id or self.task_id

    def cancel_timers(self, include_resend=True):
        for t in self.timers:
            t.cancel()
        self.timers = []
        if include_resend and self.resend_timer is not None:
            self.resend_timer.cancel()
            self.resend_timer = None


class Framework:
    def __init__(self, framework_id, info):
        self.id = framework_id
        self.stream = None
        self.connected = False
        self.active = False
        self.recovered = False
        self.registered_time = _now()
        self.reregistered_time = self.registered_time
        self.unregistered_time = 0.0
        self.tasks = collections.OrderedDict()
        self.unreachable_tasks = _Bounded(1000)
        self.completed_tasks = collections.deque(maxlen=1000)
        self.offers = collections.OrderedDict()
        self.suppressed = set()
        self.filters = {}               # (agent_id, role) -> (expiry, refused [Res])
        self.failover_timer = None
        self.heartbeat_timer = None
        self.subscriptions = 0
        self.offer_constraints = {}
        self.set_info(info)

    def set_info(self, info):
        self.info = info
        self.name = info.get("name", "")
        self.user = info.get("user", "")
        self.capabilities = [c["type"] for c in info.get("capabilities", []) if "type" in c]
        self.multi_role = "MULTI_ROLE" in self.capabilities
        self.partition_aware = "PARTITION_AWARE" in self.capabilities
        self.killing_state = "TASK_KILLING_STATE" in self.capabilities
        if self.multi_role:
            self.roles = list(info.get("roles", []))
        else:
            self.roles = [info.get("role", "*")]
        self.failover_timeout = info.get("failover_timeout", 0.0)
        self.principal = info.get("principal")


class Stream:
    """One subscription connection.  Master code pushes encoded records; the
    HTTP handler thread that answered the SUBSCRIBE writes them out as chunks.
    Chunk boundaries are randomised so that records get split across chunks
    and several records land in one chunk."""

    MAX_QUEUED = 64 * 1024 * 1024

    def __init__(self, sim, stream_id):
        self.sim = sim
        self.id = stream_id
        self.framework_id = None
        self.cond = threading.Condition()
        self.items = collections.deque()   # ("rec"|"raw", bytes)
        self.queued = 0
        self.final = None                  # None | "end" | "abort" | ("truncate", bytes)
        self.closed = False
        self.sock = None
        self.subscribed_sent = False
        self.rng = random.Random(sim._rng.random())
        self.opened = _mono()

    # -- producer side (master code, any thread) --
    def push(self, data, kind="rec"):
        overflow = False
        with self.cond:
            if self.closed or self.final is not None:
                return False
            self.items.append((kind, data))
            self.queued += len(data)
            overflow = self.queued > self.MAX_QUEUED
            self.cond.notify()
        if overflow:
            self.sim._violation("stream_overflow", "the framework does not read its subscription "
                                "stream; %d bytes queued, connection dropped" % self.queued,
                                framework_id=self.framework_id)
            self.abort()
        return True

    def end(self):
        """Finish the body with the terminating chunk (clean end of stream)."""
        with self.cond:
            if self.final is None:
                self.final = "end"
            self.cond.notify()

    def abort(self):
        """Close the connection without the terminating chunk."""
        with self.cond:
            self.final = "abort"
            self.cond.notify()
            sock = self.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def truncate(self, data):
        with self.cond:
            if self.final is None:
                self.final = ("truncate", data)
            self.cond.notify()

    # -- consumer side (the HTTP handler thread) --
    def _peer_closed(self):
        try:
            r, _, _ = select.select([self.sock], [], [], 0)
            if r:
                return self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
        except (OSError, ValueError):
            return True
        return False

    def _take(self):
        """Wait for something to write; returns (batch, final)."""
        with self.cond:
            while True:
                if self.final == "abort":
                    return [], "abort"
                if self.final is not None:
                    batch = list(self.items)
                    self.items.clear()
                    return batch, self.final
                if self.items and not self.sim._silenced:
                    break
                self.cond.wait(0.2)
                # Notice a client that went away even while nothing is written
                # (no heartbeats, silenced master), like the master's socket does.
                if self.final is None and self._peer_closed():
                    return [], "abort"
            # Sometimes linger a moment so that several records share a chunk.
            if (self.sim.chunking == "random" and len(self.items) == 1
                    and self.rng.random() < 0.5):
                self.cond.wait(0.003)
            batch = list(self.items)
            self.items.clear()
            self.queued = 0
            return batch, None

    def _pieces(self, batch):
        if self.sim.chunking == "record":
            return [data for _, data in batch]
        data = b"".join(d for _, d in batch)
        pieces = []
        pos = 0
        rng = self.rng
        while pos < len(data):
            left = len(data) - pos
            roll = rng.random()
            if roll < 0.2:
                size = rng.randint(1, 3)          # splits the length digits
            elif roll < 0.55:
                size = rng.randint(1, 300)
            else:
                size = rng.randint(1, min(left, 65536))
            size = min(size, left)
            pieces.append(data[pos:pos + size])
            pos += size
        return pieces

    def run(self, sock):
        """Write the stream until it ends; called in the handler thread."""
        self.sock = sock
        mode = "abort"
        try:
            while True:
                batch, final = self._take()
                if final == "abort":
                    break
                for piece in self._pieces(batch):
                    sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                if final == "end":
                    sock.sendall(b"0\r\n\r\n")
                    mode = "end"
                    break
                if isinstance(final, tuple):
                    # Half a record, then the connection goes away.
                    sock.sendall(b"%x\r\n%s\r\n" % (len(final[1]), final[1]))
                    break
        except OSError:
            pass
        finally:
            with self.cond:
                self.closed = True
                self.items.clear()
            try:
                if mode == "end":
                    sock.shutdown(socket.SHUT_WR)
                else:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.sim._on_stream_closed(self)


# ---------------------------------------------------------------------------
# Helpers shared by validation code.
# ---------------------------------------------------------------------------

def validate_id(value):
    """common::validation::validateID."""
    if not value:
        return "ID must not be empty"
    if len(value.encode("utf-8", "surrogateescape")) > 255:
        return "ID must not be greater than 255 characters"
    if value in (".", ".."):
        return "'%s' is disallowed" % value
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c in "/\\" for c in value):
        return "'%s' contains invalid characters" % value
    return None


def role_error(role):
    """roles::validate."""
    if role == "*":
        return None
    if not role:
        return "Empty role name is invalid"
    if role.startswith("/"):
        return "Role '%s' cannot start with a slash" % role
    if role.endswith("/"):
        return "Role '%s' cannot end with a slash" % role
    if "//" in role:
        return "Role '%s' cannot contain two adjacent slashes" % role
    for comp in role.split("/"):
        if comp in (".", "..", "*"):
            return "Role '%s' cannot include '%s' as a component" % (role, comp)
        if comp.startswith("-"):
            return "Role component '%s' is invalid because it starts with a dash" % comp
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in comp):
            return ("Role component '%s' is invalid because it contains backspace or "
                    "whitespace" % comp)
    return None


def _stringify_set(items):
    items = sorted(items)
    return "{ " + ", ".join(items) + " }"


def accepts_media_type(header, media_type):
    """libprocess Request::acceptsMediaType: the first of 'type/subtype',
    'type/*', '*/*' present in Accept decides; q=0 means not acceptable."""
    if header is None:
        return True
    header = header.replace(" ", "").replace("\t", "").replace("\n", "")
    major = media_type.split("/")[0]
    for candidate in (media_type, major + "/*", "*/*"):
        for entry in header.split(","):
            tokens = [t for t in entry.split(";") if t]
            if not tokens or tokens[0].lower() != candidate.lower():
                continue
            q = [t.split("=", 1)[1] for t in tokens[1:] if t.startswith("q=") and "=" in t]
            if len(q) != 1:
                return True
            try:
                return float(q[0]) > 0
            except ValueError:
                return False
    return False


def validate_call(call, principal):
    """validation::scheduler::call::validate (after the JSON conversion)."""
    if "type" not in call:
        return "Expecting 'type' to be present"
    ctype = call["type"]
    if ctype == "SUBSCRIBE":
        if "subscribe" not in call:
            return "Expecting 'subscribe' to be present"
        info = call["subscribe"]["framework_info"]
        if info.get("id", {}).get("value", "") != call.get("framework_id", {}).get("value", ""):
            return "'framework_id' differs from 'subscribe.framework_info.id'"
        if principal is not None and "principal" in info and info["principal"] != principal:
            return ("Authenticated principal '%s' does not match principal '%s' set in "
                    "`FrameworkInfo`" % (principal, info["principal"]))
        return None
    if "framework_id" not in call:
        return "Expecting 'framework_id' to be present"
    body = {"ACCEPT": "accept", "DECLINE": "decline",
            "ACCEPT_INVERSE_OFFERS": "accept_inverse_offers",
            "DECLINE_INVERSE_OFFERS": "decline_inverse_offers", "KILL": "kill",
            "SHUTDOWN": "shutdown", "ACKNOWLEDGE": "acknowledge",
            "ACKNOWLEDGE_OPERATION_STATUS": "acknowledge_operation_status",
            "RECONCILE": "reconcile", "RECONCILE_OPERATIONS": "reconcile_operations",
            "MESSAGE": "message", "REQUEST": "request",
            "UPDATE_FRAMEWORK": "update_framework"}.get(ctype)
    if body is not None and body not in call:
        return "Expecting '%s' to be present" % body
    if ctype == "ACKNOWLEDGE":
        return uuid_error(call["acknowledge"]["uuid"])
    if ctype == "ACKNOWLEDGE_OPERATION_STATUS":
        err = uuid_error(call["acknowledge_operation_status"]["uuid"])
        if err:
            return err
        if "agent_id" not in call["acknowledge_operation_status"]:
            return "Expecting 'agent_id' to be present"
    if ctype == "UPDATE_FRAMEWORK":
        info = call["update_framework"]["framework_info"]
        if info.get("id", {}).get("value", "") != call["framework_id"].get("value", ""):
            return "'framework_id' differs from 'update_framework.framework_info.id'"
    return None


def _env_error(command):
    for var in command.get("environment", {}).get("variables", []):
        vtype = var.get("type", "VALUE")
        name = var.get("name", "")
        if vtype == "SECRET":
            if "secret" not in var:
                return "Environment variable '%s' of type 'SECRET' must have a secret set" % name
            if "value" in var:
                return "Environment variable '%s' of type 'SECRET' must not have a value set" % name
        elif vtype == "VALUE":
            if "value" not in var:
                return "Environment variable '%s' of type 'VALUE' must have a value set" % name
            if "secret" in var:
                return "Environment variable '%s' of type 'VALUE' must not have a secret set" % name
        else:
            return "Environment variable of type 'UNKNOWN' is not allowed"
    return None


def _container_error(container):
    """common::validation::validateContainerInfo."""
    for vol in container.get("volumes", []):
        count = sum(1 for k in ("host_path", "image", "source") if k in vol)
        if count != 1:
            return "Invalid volume: Only one of them should be set: 'host_path', 'image' and 'source'"
        if "source" in vol:
            src = vol["source"]
            stype = src.get("type", "UNKNOWN")
            need = {"DOCKER_VOLUME": ("docker_volume", "'source.docker_volume' is not set for "
                                                       "DOCKER_VOLUME volume"),
                    "HOST_PATH": ("host_path", "'source.host_path' is not set for HOST_PATH volume"),
                    "SANDBOX_PATH": ("sandbox_path", "'source.sandbox_path' is not set for "
                                                     "SANDBOX_PATH volume"),
                    "SECRET": ("secret", "'source.secret' is not set for SECRET volume"),
                    "CSI_VOLUME": ("csi_volume", "'source.csi_volume' is not set for CSI volume")}
            if stype not in need:
                return "Invalid volume: 'source.type' is unknown"
            if need[stype][0] not in src:
                return "Invalid volume: " + need[stype][1]
    if container.get("type") == "DOCKER":
        if "docker" not in container:
            return "DockerInfo 'docker' is not set for DOCKER typed ContainerInfo"
        for p in container["docker"].get("parameters", []):
            if p.get("key") == "name":
                return "Parameter in DockerInfo must not be 'name'"
    return None


def _health_error(hc):
    """common::validation::validateHealthCheck."""
    htype = hc.get("type")
    if htype is None:
        return "HealthCheck must specify 'type'"
    if htype == "COMMAND":
        if "command" not in hc:
            return "Expecting 'command' to be set for COMMAND health check"
        cmd = hc["command"]
        if "value" not in cmd:
            return "Command health check must contain %s" % (
                "'shell command'" if cmd.get("shell", True) else "'executable path'")
        err = _env_error(cmd)
        if err:
            return "Health check's `CommandInfo` is invalid: " + err
    elif htype == "HTTP":
        if "http" not in hc:
            return "Expecting 'http' to be set for HTTP health check"
        http_ = hc["http"]
        if "scheme" in http_ and http_["scheme"] not in ("http", "https"):
            return "Unsupported HTTP health check scheme: '%s'" % http_["scheme"]
        if "path" in http_ and not http_["path"].startswith("/"):
            return "The path '%s' of HTTP health check must start with '/'" % http_["path"]
    elif htype == "TCP":
        if "tcp" not in hc:
            return "Expecting 'tcp' to be set for TCP health check"
    else:
        return "'UNKNOWN' is not a valid health check type"
    for key in ("delay_seconds", "grace_period_seconds", "interval_seconds", "timeout_seconds"):
        if key in hc and hc[key] < 0:
            return "Expecting '%s' to be non-negative" % key
    return None


def _check_error(ck):
    """common::validation::validateCheckInfo."""
    ctype = ck.get("type")
    if ctype is None:
        return "CheckInfo must specify 'type'"
    if ctype == "COMMAND":
        if "command" not in ck:
            return "Expecting 'command' to be set for COMMAND check"
        cmd = ck["command"]["command"]
        if "value" not in cmd:
            return "Command check must contain %s" % (
                "'shell command'" if cmd.get("shell", True) else "'executable path'")
        err = _env_error(cmd)
        if err:
            return "Check's `CommandInfo` is invalid: " + err
    elif ctype == "HTTP":
        if "http" not in ck:
            return "Expecting 'http' to be set for HTTP check"
        path = ck["http"].get("path")
        if path is not None and not path.startswith("/"):
            return "The path '%s' of HTTP check must start with '/'" % path
    elif ctype == "TCP":
        if "tcp" not in ck:
            return "Expecting 'tcp' to be set for TCP check"
    else:
        return "'UNKNOWN' is not a valid check type"
    for key in ("delay_seconds", "interval_seconds", "timeout_seconds"):
        if key in ck and ck[key] < 0:
            return "Expecting '%s' to be non-negative" % key
    return None


def _proto_resource_str(proto):
    """Best-effort stringify of a (possibly invalid) Resource message."""
    parts = []
    if "allocation_info" in proto and "role" in proto["allocation_info"]:
        parts.append("allocated: " + proto["allocation_info"]["role"])
    head = proto.get("name", "") + ("(" + ", ".join(parts) + ")" if parts else "")
    if "scalar" in proto:
        value = "%g" % proto["scalar"].get("value", 0.0)
    elif "ranges" in proto:
        value = "[" + ", ".join("%d-%d" % (r.get("begin", 0), r.get("end", 0))
                                for r in proto["ranges"].get("range", [])) + "]"
    elif "set" in proto:
        value = "{" + ", ".join(proto["set"].get("item", [])) + "}"
    else:
        value = ""
    return head + ":" + value


def _parse_attributes(text):
    """'rack:r1;ssd:1;zones:{a,b};ids:[1-3]' -> [(name, kind, value)]."""
    out = []
    if not text:
        return out
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, value = part.partition(":")
        value = value.strip()
        if value.startswith("[") and value.endswith("]"):
            out.append((name, "RANGES", parse_ranges_text(value)))
        elif value.startswith("{") and value.endswith("}"):
            out.append((name, "SET", [v.strip() for v in value[1:-1].split(",") if v.strip()]))
        else:
            try:
                out.append((name, "SCALAR", float(value)))
            except ValueError:
                out.append((name, "TEXT", value))
    return out


class _Reply:
    __slots__ = ("status", "body", "headers", "stream", "call", "principal")

    def __init__(self, status, body="", headers=(), stream=None, call=None, principal=None):
        self.status = status
        self.body = body
        self.headers = list(headers)
        self.stream = stream
        self.call = call
        self.principal = principal


# ---------------------------------------------------------------------------
# The simulator.
# ---------------------------------------------------------------------------

class MesosSim:
    """A strict, in-process Mesos 1.11 master with N simulated agents.

    All public methods are thread-safe.  Timing knobs are in seconds."""

    def __init__(self, host="127.0.0.1", port=0, agents=3, cpus=8.0, mem=16384.0,
                 disk=100000.0, ports="31000-32000", attributes="",
                 agent_hostname="agent-{i}.mesos-sim", agent_specs=None,
                 heartbeat=15.0, advertised_heartbeat=None, offer_interval=1.0,
                 resend_interval=10.0, resend_backoff=True, resend_max=600.0,
                 task_start_delay=0.05, health_delay=0.2, kill_delay=0.05,
                 subscribed_delay=0.0, reregister_delay=5.0, agent_lost_delay=0.0,
                 offer_timeout=None, max_offers_per_event=0, max_failover_timeout=None,
                 docker=True, chunking="random", seed=None, hostname=None, auth=None,
                 verbose=False, max_calls=10000, max_violations=10000, max_events=10000,
                 tls=None, k3s=False, k3s_config_delay=0.5, k3s_node_delay=0.5,
                 k3s_ready_delay=1.0):
        if not self._is_loopback(host):
            raise ValueError("mesos_sim only binds loopback addresses, not %r" % host)
        if chunking not in ("random", "record"):
            raise ValueError("chunking must be 'random' or 'record'")
        self.host = "127.0.0.1" if host == "localhost" else host
        self.requested_port = port
        self.port = None
        self.hostname = hostname or self.host
        self.heartbeat = float(heartbeat)
        self.advertised_heartbeat = advertised_heartbeat
        self.offer_interval = float(offer_interval)
        self.resend_interval = float(resend_interval)
        self.resend_backoff = resend_backoff
        self.resend_max = float(resend_max)
        self.task_start_delay = float(task_start_delay)
        self.health_delay = float(health_delay)
        self.kill_delay = float(kill_delay)
        self.subscribed_delay = float(subscribed_delay)
        self.reregister_delay = float(reregister_delay)
        self.agent_lost_delay = float(agent_lost_delay)
        self.offer_timeout = offer_timeout
        self.max_offers_per_event = int(max_offers_per_event or 0)
        self.max_failover_timeout = max_failover_timeout
        self.chunking = chunking
        self.verbose = verbose
        # tls=(cert_file, key_file): the master speaks https on its one port,
        # as a Mesos master built with SSL does.
        self._tls_ctx = None
        if tls:
            self._tls_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls_ctx.load_cert_chain(tls[0], tls[1])

        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._timers = _Timers(self._internal_error)
        self._server = None
        self._server_thread = None
        self._started = False

        self.master_id = str(uuidlib.uuid4())
        self._fw_seq = 0
        self._offer_seq = 0
        self._agents = collections.OrderedDict()
        self._frameworks = collections.OrderedDict()
        self._completed_frameworks = collections.deque(maxlen=50)
        self._removed_ids = _Bounded(10000)
        self._offers = {}
        self._dead_offers = _Bounded(100000)
        self._free_agents = collections.OrderedDict()
        self._pending_streams = {}
        self._streams = set()
        self._uuids = _Bounded(200000)
        self._violations = collections.deque(maxlen=max_violations)
        self._vseq = 0
        self._calls = collections.deque(maxlen=max_calls)
        self._cseq = 0
        self._events = collections.deque(maxlen=max_events)
        self._eseq = 0
        self._call_counts = collections.Counter()
        self._status_counts = collections.Counter()
        self._event_counts = collections.Counter()
        self._heartbeats_paused = False
        self._silenced = False
        self._leader = None
        self._recovering = False
        self._fail_subscribes = 0
        self._fail_subscribes_msg = "Master has not finished recovery"
        self._auth = None
        self._behaviors = []
        self._subscribe_times = _Bounded(1000)
        self._launched_by_sim = 0
        self._generation = 0
        self._rr = 0
        self._allocate_pending = False
        self._errors = collections.deque(maxlen=100)
        self.subscriptions = 0
        self.start_time = _now()
        self.elected_time = self.start_time

        if auth:
            principal, _, secret = auth.partition(":") if isinstance(auth, str) else auth
            self._auth = (principal, secret)

        specs = agent_specs
        if specs is None:
            specs = [{} for _ in range(int(agents))]
        for i, spec in enumerate(specs):
            self._add_agent(i, spec, cpus, mem, disk, ports, attributes, agent_hostname, docker)
        # k3s: what K3s containers do for this framework's server and agent
        # tasks (k3s_sim.py).
        self._k3s = None
        if k3s:
            import k3s_sim
            self._k3s = k3s_sim.K3sSim(self, [a.hostname for a in self._agents.values()],
                                       k3s_config_delay, k3s_node_delay, k3s_ready_delay)

    # ----------------------------------------------------------------- setup

    @staticmethod
    def _is_loopback(host):
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    def _add_agent(self, i, spec, cpus, mem, disk, ports, attributes, hostname_fmt, docker):
        def fmt(value):
            # Only "{i}" is substituted: attributes may hold sets like "{a,b}".
            return value.replace("{i}", str(i)) if isinstance(value, str) else value
        hostname = fmt(spec.get("hostname", hostname_fmt))
        total = []
        port_text = spec.get("ports", ports)
        if port_text:
            ranges = parse_ranges_text(port_text) if isinstance(port_text, str) else \
                _ranges_normalize([tuple(r) for r in port_text])
            if ranges:
                total.append(Res("ports", "RANGES", ranges=ranges))
        for name, default in (("cpus", cpus), ("mem", mem), ("disk", disk)):
            value = float(spec.get(name, default))
            if value > 0:
                total.append(Res(name, "SCALAR", scalar=_fixed(value)))
        for name, value in spec.get("scalars", {}).items():
            total.append(Res(name, "SCALAR", scalar=_fixed(float(value))))
        attrs = spec.get("attributes", attributes)
        if isinstance(attrs, dict):
            attr_list = []
            for name, value in attrs.items():
                value = fmt(value)
                attr_list.append((name, "SCALAR", float(value)) if isinstance(value, (int, float))
                                 else (name, "TEXT", str(value)))
        else:
            attr_list = _parse_attributes(fmt(attrs))
        agent_id = "%s-S%d" % (self.master_id, i)
        agent = Agent(i, agent_id, hostname, int(spec.get("port", 5051 + i)), total, attr_list,
                      bool(spec.get("docker", docker)))
        self._agents[agent_id] = agent
        self._free_agents[agent_id] = agent

    def start(self):
        """Bind, start serving and allocating.  Returns self."""
        if self._started:
            return self
        sim = self

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            address_family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

            def __init__(self, *a, **kw):
                self.sim = sim
                self.connections = set()
                self.conn_lock = threading.Lock()
                super().__init__(*a, **kw)

            def get_request(self):
                request, client_address = super().get_request()
                if sim._tls_ctx is not None:
                    # The handshake happens in the handler's thread, on its
                    # first read, so a slow client cannot stall accept().
                    request = sim._tls_ctx.wrap_socket(request, server_side=True,
                                                       do_handshake_on_connect=False)
                return request, client_address

            def process_request(self, request, client_address):
                with self.conn_lock:
                    self.connections.add(request)
                super().process_request(request, client_address)

            def shutdown_request(self, request):
                with self.conn_lock:
                    self.connections.discard(request)
                super().shutdown_request(request)

            def handle_error(self, request, client_address):
                if sim.verbose:
                    super().handle_error(request, client_address)

        self._server = Server((self.host, self.requested_port), _Handler)
        self.port = self._server.server_address[1]
        self._timers.start()
        self._server_thread = threading.Thread(target=self._server.serve_forever,
                                               kwargs={"poll_interval": 0.1},
                                               name="mesos-sim-http", daemon=True)
        self._server_thread.start()
        self._started = True
        self._timers.call_later(self.offer_interval, self._allocation_loop)
        return self

    def stop(self):
        """Stop serving, close every connection and stop all timers."""
        if not self._started:
            return
        self._started = False
        with self._lock:
            streams = list(self._streams) + list(self._pending_streams.values())
        for s in streams:
            s.abort()
        self._server.shutdown()
        self._server.server_close()
        with self._server.conn_lock:
            conns = list(self._server.connections)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._timers.stop()
        self._server_thread.join(5)
        if self._k3s is not None:
            self._k3s.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % ("https" if self._tls_ctx else "http", host, self.port)

    def _internal_error(self, text):
        self._errors.append(text)
        if self.verbose:
            sys.stderr.write(text)

    def _later(self, delay, fn, *args):
        """Run fn(*args) after `delay` seconds, under the master lock."""
        def run():
            with self._lock:
                if self._started:
                    fn(*args)
        return self._timers.call_later(delay, run)

    # ---------------------------------------------------------- bookkeeping

    def _violation(self, kind, message, call=None, framework_id=None, path=None,
                   status=None, call_seq=None):
        with self._lock:
            self._vseq += 1
            v = collections.OrderedDict([
                ("seq", self._vseq), ("time", _now()), ("kind", kind),
                ("severity", VIOLATION_SEVERITY.get(kind, "error")),
                ("message", message), ("call", call), ("framework_id", framework_id),
                ("path", path), ("status", status), ("call_seq", call_seq)])
            self._violations.append(v)
            if self.verbose:
                sys.stderr.write("mesos-sim violation: %s: %s\n" % (kind, message))
            return v

    def _log_event(self, framework_id, event, size):
        self._eseq += 1
        etype = event.get("type")
        self._event_counts[etype] += 1
        entry = collections.OrderedDict([("seq", self._eseq), ("time", _now()),
                                         ("framework_id", framework_id), ("type", etype)])
        if size <= 16384:
            entry["event"] = event
        elif etype == "OFFERS":
            entry["offers"] = len(event["offers"]["offers"])
        self._events.append(entry)

    def _send(self, fw, event):
        """Queue one event on the framework's current stream (if connected)."""
        if fw is None or fw.stream is None:
            return False
        data = encode_record(event)
        self._log_event(fw.id, event, len(data))
        return fw.stream.push(data)

    def _send_stream(self, stream, event, framework_id=None):
        data = encode_record(event)
        self._log_event(framework_id, event, len(data))
        return stream.push(data)

    # ------------------------------------------------- scheduler endpoint

    def _authenticate(self, header):
        """libprocess' Basic authenticator: exactly 'Basic <b64>' and exactly
        one ':' in the decoded credential."""
        if header is None:
            return None
        parts = header.split(" ")
        if len(parts) != 2 or parts[0] != "Basic":
            return None
        decoded, err = stout_b64decode(parts[1])
        if err is not None:
            return None
        cred = decoded.decode("utf-8", "surrogateescape").split(":")
        if len(cred) != 2 or self._auth is None or tuple(cred) != self._auth:
            return None
        return cred[0]

    def _new_call_entry(self, handler, body):
        h = handler.headers
        self._cseq += 1
        headers = collections.OrderedDict()
        for name in ("Content-Type", "Accept", "Mesos-Stream-Id", "Expect", "Content-Length",
                     "Transfer-Encoding", "Connection"):
            if name in h:
                headers[name] = h.get(name)
        if "Authorization" in h:
            headers["Authorization"] = "<present>"
        return collections.OrderedDict([
            ("seq", self._cseq), ("time", _now()), ("method", handler.command),
            ("path", handler.path), ("type", None), ("framework_id", None),
            ("headers", headers), ("body", None), ("status", None), ("response", "")])

    def _finish_call_entry(self, entry, body, parsed):
        if parsed is None and body:
            # Refused before the master parsed it (401, 307, 405, 503...): the
            # log still says what the call was.
            try:
                value = json.loads(body.decode("utf-8"))
            except ValueError:
                value = None
            if isinstance(value, dict):
                parsed = value
                if entry["type"] is None and isinstance(value.get("type"), str):
                    entry["type"] = value["type"]
                fid = value.get("framework_id")
                if (entry["framework_id"] is None and isinstance(fid, dict)
                        and isinstance(fid.get("value"), str)):
                    entry["framework_id"] = fid["value"]
        if entry["type"] == "SUBSCRIBE":
            self._check_subscribe_storm(entry, parsed)
        # Violations found while the call ran learn the status it got.
        for i, v in enumerate(reversed(self._violations)):
            if i > 200 or (v["call_seq"] is not None and v["call_seq"] < entry["seq"]):
                break
            if v["call_seq"] == entry["seq"] and v["status"] is None:
                v["status"] = entry["status"]
        if parsed is not None and len(body) <= 65536:
            entry["body"] = parsed
        else:
            entry["body"] = body[:4096].decode("utf-8", "replace")
        self._calls.append(entry)
        self._call_counts[entry["type"] or "<unparsed>"] += 1
        self._status_counts[str(entry["status"])] += 1

    def _check_subscribe_storm(self, entry, parsed):
        """Five SUBSCRIBE calls of one framework, each within 50 ms of the
        previous one, is a retry loop without backoff (refused calls count)."""
        name = ""
        if isinstance(parsed, dict):
            info = parsed.get("subscribe", {})
            info = info.get("framework_info", {}) if isinstance(info, dict) else {}
            name = info.get("name", "") if isinstance(info, dict) else ""
        now = _mono()
        recent = self._subscribe_times.get(name)
        if not recent or now - recent[-1] > 0.05:
            recent = collections.deque(maxlen=5)
            self._subscribe_times[name] = recent
        recent.append(now)
        if len(recent) == 5:
            self._violation("subscribe_storm",
                            "5 SUBSCRIBE calls of framework %r within %.3f s: retry with a "
                            "backoff" % (name, recent[-1] - recent[0]),
                            call="SUBSCRIBE", framework_id=entry["framework_id"],
                            status=entry["status"], call_seq=entry["seq"])
            recent.clear()

    def _scheduler(self, handler, body):
        """Everything the master does for POST /api/v1/scheduler, in the order
        of Master::Http::scheduler.  Returns a _Reply (with .stream set for a
        successful SUBSCRIBE)."""
        with self._lock:
            entry = self._new_call_entry(handler, body)
        parsed = [None]
        try:
            reply = self._scheduler_checks(handler, body, entry, parsed)
        finally:
            with self._lock:
                self._finish_call_entry(entry, body, parsed[0])
        return reply

    def _scheduler_checks(self, handler, body, entry, parsed):
        h = handler.headers

        def reply(status, text="", extra=(), kind=None, msg=None, path=None):
            entry["status"] = status
            entry["response"] = text
            if kind is not None:
                self._violation(kind, msg or text, call=entry["type"],
                                framework_id=entry["framework_id"], path=path, status=status,
                                call_seq=entry["seq"])
            return _Reply(status, text, extra)

        if handler.expect_100:
            self._violation("expect_100_continue",
                            "request carries 'Expect: 100-continue'; libprocess never answers "
                            "100 so the client stalls (send an empty 'Expect:' header)",
                            call_seq=entry["seq"])
        # 0: authentication happens in libprocess before the handler runs.
        principal = None
        if self._auth is not None:
            principal = self._authenticate(h.get("Authorization"))
            if principal is None:
                return reply(401, "401 Unauthorized.",
                             [("WWW-Authenticate", 'Basic realm="mesos-master-scheduler"')],
                             kind="auth_failed", msg="missing or wrong Basic credentials")
        # 2: leadership.
        if self._leader == "none":
            return reply(503, "No leader elected")
        if self._leader is not None:
            return reply(307, "", [("Location", "//%s/master/api/v1/scheduler" % self._leader)])
        # 3: registry recovery.
        if self._recovering:
            return reply(503, "Master has not finished recovery")
        if self._fail_subscribes > 0 and handler.command == "POST":
            value, _, _ = pico_parse(body)
            if isinstance(value, dict) and value.get("type") == "SUBSCRIBE":
                with self._lock:
                    self._fail_subscribes -= 1
                entry["type"] = "SUBSCRIBE"
                return reply(503, self._fail_subscribes_msg)
        # 4: method.
        if handler.command != "POST":
            return reply(405, "405 Method Not Allowed. Expecting one of { 'POST' }, but "
                              "received '%s'." % handler.command, [("Allow", "POST")],
                         kind="method_not_allowed")
        # 5: content type and body.
        ctype = h.get("Content-Type")
        if ctype is None:
            return reply(400, "Expecting 'Content-Type' to be present",
                         kind="content_type_missing")
        if ctype == "application/x-protobuf":
            return reply(400, "Failed to parse body into Call protobuf",
                         kind="protobuf_not_simulated",
                         msg="protobuf bodies are not simulated; send application/json")
        if ctype != "application/json":
            charset = ctype.split(";")[0].strip().lower() == "application/json"
            return reply(415, "Expecting 'Content-Type' of application/json or "
                              "application/x-protobuf",
                         kind="content_type_charset" if charset else "content_type_unsupported",
                         msg=("Content-Type %r: the master compares the header byte for byte, "
                              "parameters such as charset are refused" % ctype) if charset
                         else "Content-Type %r is not application/json" % ctype)
        value, err, dups = pico_parse(body)
        if err is None and not isinstance(value, dict):
            err = "Unexpected JSON type parsed"
        if err is not None:
            return reply(400, "Failed to parse body into JSON: " + err, kind="invalid_json")
        parsed[0] = value
        if isinstance(value.get("type"), str):
            entry["type"] = value["type"]
        fid = value.get("framework_id")
        if isinstance(fid, dict) and isinstance(fid.get("value"), str):
            entry["framework_id"] = fid["value"]
        for key in dups:
            self._violation("duplicate_json_key", "JSON object key %r appears twice; the last "
                            "value wins" % key, call=entry["type"], call_seq=entry["seq"])
        conv = ProtoConverter()
        try:
            call = conv.convert("Call", value)
        except ConversionError as e:
            self._record_notes(conv, entry)
            text = str(e)
            return reply(400, "Failed to convert JSON into Call protobuf: " + text,
                         kind="bad_base64" if "base64" in text else "json_type")
        self._record_notes(conv, entry)
        missing = missing_required("Call", call)
        if missing:
            return reply(400, "Failed to convert JSON into Call protobuf: Missing required "
                              "fields: " + ", ".join(missing),
                         kind="missing_required_field", path=missing[0])
        entry["type"] = call.get("type")
        # 6: call validation.
        err = validate_call(call, principal)
        if err is not None:
            return reply(400, "Failed to validate scheduler::Call: " + err,
                         kind="call_validation")
        if call["type"] == "SUBSCRIBE":
            accept = h.get("Accept")
            if not accepts_media_type(accept, "application/json"):
                if accepts_media_type(accept, "application/x-protobuf"):
                    return reply(406, "Expecting 'Accept' to allow 'application/x-protobuf' or "
                                      "'application/json'", kind="protobuf_not_simulated",
                                 msg="a protobuf event stream is not simulated; accept "
                                     "application/json")
                return reply(406, "Expecting 'Accept' to allow 'application/x-protobuf' or "
                                  "'application/json'", kind="not_acceptable")
            if "Mesos-Stream-Id" in h:
                return reply(400, "Subscribe calls should not include the 'Mesos-Stream-Id' "
                                  "header", kind="subscribe_with_stream_id")
            stream = Stream(self, str(uuidlib.uuid4()))
            entry["status"] = 200
            entry["stream_id"] = stream.id
            return _Reply(200, "", (), stream=stream, call=call, principal=principal)
        with self._lock:
            return self._dispatch(call, h, principal, entry, reply)

    def _record_notes(self, conv, entry):
        for kind, path, message in conv.notes:
            self._violation(kind, message, call=entry["type"], framework_id=entry["framework_id"],
                            path=path, call_seq=entry["seq"])

    def _dispatch(self, call, headers, principal, entry, reply):
        ctype = call["type"]
        fid = call["framework_id"]["value"]
        entry["framework_id"] = fid
        sid = headers.get("Mesos-Stream-Id")
        pending = self._pending_streams.get(sid) if sid is not None else None
        if pending is not None:
            self._violation("call_before_subscribed",
                            "%s sent on stream %s before its SUBSCRIBED event was sent" % (ctype, sid),
                            call=ctype, framework_id=fid, call_seq=entry["seq"])
        fw = self._frameworks.get(fid)
        if fw is None:
            return reply(400, "Framework cannot be found", kind="unknown_framework")
        if principal is not None and principal != fw.principal:
            return reply(400, "Authenticated principal '%s' does not match principal '%s' set "
                              "in `FrameworkInfo`" % (principal, fw.principal or ""),
                         kind="principal_mismatch")
        if not fw.connected:
            return reply(403, "Framework is not subscribed", kind="not_subscribed")
        if sid is None:
            return reply(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' "
                              "header", kind="missing_stream_id")
        if sid != fw.stream.id:
            return reply(400, "The stream ID '%s' included in this request didn't match the "
                              "stream ID currently associated with framework ID %s" % (sid, fid),
                         kind="wrong_stream_id")
        handler = {
            "TEARDOWN": self._call_teardown, "ACCEPT": self._call_accept,
            "DECLINE": self._call_decline, "REVIVE": self._call_revive,
            "SUPPRESS": self._call_suppress, "KILL": self._call_kill,
            "SHUTDOWN": self._call_ignored, "ACKNOWLEDGE": self._call_acknowledge,
            "ACKNOWLEDGE_OPERATION_STATUS": self._call_ack_operation,
            "RECONCILE": self._call_reconcile, "RECONCILE_OPERATIONS": self._call_ignored,
            "MESSAGE": self._call_ignored, "REQUEST": self._call_ignored,
            "ACCEPT_INVERSE_OFFERS": self._call_inverse_offers,
            "DECLINE_INVERSE_OFFERS": self._call_inverse_offers,
            "UPDATE_FRAMEWORK": self._call_update_framework,
        }.get(ctype)
        if handler is None:  # UNKNOWN
            return reply(501, "", kind="not_implemented",
                         msg="call type UNKNOWN is answered 501 Not Implemented")
        result = handler(fw, call, entry)
        if result is None:
            return reply(202)
        return reply(*result)

    def _call_violation(self, entry, kind, message, path=None):
        self._violation(kind, message, call=entry["type"], framework_id=entry["framework_id"],
                        path=path, status=entry.get("status"), call_seq=entry["seq"])

    # -------------------------------------------------------------- subscribe

    def _open_stream(self, stream):
        """Called by the handler before the 200 head goes out: once a client
        can have read the stream id, a call with it is one sent before
        SUBSCRIBED, however soon it arrives."""
        with self._lock:
            self._pending_streams[stream.id] = stream
            self._streams.add(stream)

    def _begin_subscribe(self, stream, call, principal):
        """Called by the handler once the 200 head is on the wire.  The real
        master answers 200 before it has processed the subscription; a
        configurable delay reproduces that window."""
        with self._lock:
            if self.subscribed_delay > 0:
                self._later(self.subscribed_delay, self._subscribe, stream, call, principal)
            else:
                self._subscribe(stream, call, principal)

    def _refuse_subscription(self, stream, message):
        self._violation("subscribe_refused", "SUBSCRIBE answered with ERROR %r" % message,
                        call="SUBSCRIBE")
        self._send_stream(stream, {"type": "ERROR", "error": {"message": message}})
        stream.end()

    def _validate_framework_info(self, info, sub):
        multi = any(c.get("type") == "MULTI_ROLE" for c in info.get("capabilities", []))
        if multi and "role" in info:
            return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
        if not multi and info.get("roles"):
            return ("'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE "
                    "capable")
        if multi:
            roles = info.get("roles", [])
            dups = set(r for r in roles if roles.count(r) > 1)
            if dups:
                return "'FrameworkInfo.roles' contains duplicate items: " + _stringify_set(dups)
            for r in roles:
                err = role_error(r)
                if err:
                    return "'FrameworkInfo.roles' contains invalid role: " + err
            roles = set(roles)
        else:
            err = role_error(info.get("role", "*"))
            if err:
                return "'FrameworkInfo.role' is not a valid role: " + err
            roles = {info.get("role", "*")}
        fid = info.get("id", {}).get("value", "")
        if fid:
            err = validate_id(fid)
            if err:
                return err
        timeout = info.get("failover_timeout", 0.0)
        if timeout != timeout or abs(timeout) * 1e9 >= 2 ** 63:
            return "The framework failover_timeout (%g) is invalid" % timeout
        suppressed = set(sub.get("suppressed_roles", []))
        if not suppressed <= roles:
            return ("Suppressed roles %s are not contained in the set of roles"
                    % _stringify_set(suppressed - roles))
        for role, rc in sub.get("offer_constraints", {}).get("role_constraints", {}).items():
            if role not in roles:
                return ("Offer constraints specify `role_constraints` for a role '%s'not "
                        "contained in the set of roles" % role)
            for group in rc.get("groups", []):
                for ac in group.get("attribute_constraints", []):
                    sel, pred = ac.get("selector", {}), ac.get("predicate", {})
                    if not sel:
                        return "'AttributeConstraint::selector' has no value set"
                    if not pred:
                        return "'AttributeConstraint::predicate' has no value set"
                    for key in ("text_matches", "text_not_matches"):
                        if key in pred:
                            try:
                                re.compile(pred[key]["regex"])
                            except re.error as e:
                                return "Failed to construct regex from '%s': %s" % (
                                    pred[key]["regex"], e)
        return None

    def _subscribe(self, stream, call, principal):
        self._pending_streams.pop(stream.id, None)
        if stream.closed or stream.final is not None:
            return
        sub = call["subscribe"]
        info = sub["framework_info"]
        err = self._validate_framework_info(info, sub)
        if err:
            return self._refuse_subscription(stream, err)
        if principal is not None and "principal" not in info:
            info["principal"] = principal
        fid = info.get("id", {}).get("value", "")
        if fid and fid in self._removed_ids:
            return self._refuse_subscription(stream, "Framework has been removed")
        now = _now()
        if not fid:
            for other in self._frameworks.values():
                if (other.name == info.get("name") and other.user == info.get("user")
                        and not other.connected):
                    self._violation("subscribe_without_id",
                                    "SUBSCRIBE without framework id while framework %s (%s) is "
                                    "disconnected: the framework leaks a new id instead of "
                                    "failing over" % (other.id, other.name), call="SUBSCRIBE")
                    break
            fid = "%s-%04d" % (self.master_id, self._fw_seq)
            self._fw_seq += 1
            info["id"] = {"value": fid}
            fw = Framework(fid, info)
            self._frameworks[fid] = fw
        else:
            fw = self._frameworks.get(fid)
            if fw is not None:
                if fw.info.get("principal") != info.get("principal"):
                    return self._refuse_subscription(stream,
                                                     "Changing framework's principal is not "
                                                     "allowed.")
                # user and checkpoint cannot change on re-subscription.
                info["user"] = fw.info.get("user", info.get("user"))
                if "checkpoint" in fw.info:
                    info["checkpoint"] = fw.info["checkpoint"]
                else:
                    info.pop("checkpoint", None)
                old = fw.stream
                fw.stream = None
                if old is not None:
                    self._send_stream(old, {"type": "ERROR",
                                            "error": {"message": "Framework failed over"}}, fid)
                    old.end()
                # Offers die with the old subscription, without RESCIND.
                for offer in list(fw.offers.values()):
                    self._remove_offer(offer, "invalidated by the framework's re-subscription")
                if fw.failover_timer is not None:
                    fw.failover_timer.cancel()
                    fw.failover_timer = None
                fw.set_info(info)
                fw.reregistered_time = now
                fw.recovered = False
            else:
                # An id this master never issued (or forgot after a failover) is adopted.
                fw = Framework(fid, info)
                self._frameworks[fid] = fw
        if fw.failover_timeout == 0:
            self._violation("failover_timeout_zero",
                            "failover_timeout is 0: the master removes the framework and kills "
                            "its tasks as soon as the subscription drops", call="SUBSCRIBE",
                            framework_id=fid)
        fw.stream = stream
        stream.framework_id = fid
        fw.connected = True
        fw.active = True
        fw.subscriptions += 1
        fw.suppressed = set(sub.get("suppressed_roles", []))
        fw.offer_constraints = sub.get("offer_constraints", {})
        self.subscriptions += 1
        interval = self.advertised_heartbeat if self.advertised_heartbeat is not None \
            else self.heartbeat
        self._send(fw, {"type": "SUBSCRIBED", "subscribed": collections.OrderedDict([
            ("framework_id", {"value": fid}),
            ("heartbeat_interval_seconds", float(interval)),
            ("master_info", self._master_info())])})
        stream.subscribed_sent = True
        self._heartbeat(fw, stream)
        self._allocate_soon()

    def _master_info(self):
        # The deprecated `ip`: IPv4 bytes in network order read as a
        # little-endian uint32 (16777343 for 127.0.0.1); 0 for an IPv6 master.
        packed = 0
        try:
            packed = int.from_bytes(socket.inet_aton(self.host), "little")
        except OSError:
            pass
        return collections.OrderedDict([
            ("id", self.master_id), ("ip", packed), ("port", self.port),
            ("pid", "master@%s:%d" % (self.host, self.port)), ("hostname", self.hostname),
            ("version", MESOS_VERSION),
            ("address", collections.OrderedDict([("hostname", self.hostname), ("ip", self.host),
                                                 ("port", self.port)])),
            ("capabilities", [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"},
                              {"type": "QUOTA_V2"}])])

    def _heartbeat(self, fw, stream):
        if fw.stream is not stream or stream.closed:
            return
        if not self._heartbeats_paused:
            self._send(fw, {"type": "HEARTBEAT"})
        fw.heartbeat_timer = self._later(self.heartbeat, self._heartbeat, fw, stream)

    def _on_stream_closed(self, stream):
        with self._lock:
            self._streams.discard(stream)
            self._pending_streams.pop(stream.id, None)
            fw = self._frameworks.get(stream.framework_id)
            if fw is not None and fw.stream is stream:
                self._disconnect(fw)

    def _disconnect(self, fw):
        """The subscription connection is gone: deactivate, drop the offers,
        start the failover timeout."""
        fw.stream = None
        fw.connected = False
        fw.active = False
        fw.unregistered_time = _now()
        if fw.heartbeat_timer is not None:
            fw.heartbeat_timer.cancel()
        for offer in list(fw.offers.values()):
            self._remove_offer(offer, "rescinded: the framework disconnected")
        timeout = fw.failover_timeout
        if self.max_failover_timeout is not None:
            timeout = min(timeout, float(self.max_failover_timeout))
        if timeout <= 0:
            self._remove_framework(fw, "failover timeout expired")
        else:
            fw.failover_timer = self._later(timeout, self._failover_expired, fw)

    def _failover_expired(self, fw):
        if self._frameworks.get(fw.id) is fw and not fw.connected:
            self._remove_framework(fw, "failover timeout expired")

    def _remove_framework(self, fw, reason):
        """Master::removeFramework: tasks are killed silently, the stream is
        closed without an event and the id can never be used again."""
        if fw.failover_timer is not None:
            fw.failover_timer.cancel()
        if fw.heartbeat_timer is not None:
            fw.heartbeat_timer.cancel()
        for offer in list(fw.offers.values()):
            self._remove_offer(offer, "framework removed")
        for task in list(fw.tasks.values()):
            task.cancel_timers()
            self._release(task)
            task.pending.clear()
            if task.state not in TERMINAL_STATES:
                task.state = "TASK_KILLED"
            agent = self._agents.get(task.agent_id)
            if agent is not None:
                agent.tasks.pop((fw.id, task.task_id), None)
            fw.completed_tasks.append(task)
        fw.tasks.clear()
        fw.unreachable_tasks.clear()
        for agent in self._agents.values():
            agent.executors.pop(fw.id, None)
            agent.framework_infos.pop(fw.id, None)
            for key in [k for k in agent.tasks if k[0] == fw.id]:
                agent.tasks.pop(key).cancel_timers()
        if fw.stream is not None:
            stream = fw.stream
            fw.stream = None
            stream.end()
        fw.connected = False
        fw.active = False
        fw.unregistered_time = _now()
        fw.removed_reason = reason
        self._frameworks.pop(fw.id, None)
        self._completed_frameworks.append(fw)
        self._removed_ids[fw.id] = reason

    # ------------------------------------------------------------ allocation

    def _allocation_loop(self):
        with self._lock:
            if not self._started:
                return
            self._allocate()
        self._timers.call_later(self.offer_interval, self._allocation_loop)

    def _allocate_soon(self):
        if not self._allocate_pending:
            self._allocate_pending = True
            self._later(0, self._allocate)

    def _mark_free(self, agent):
        self._free_agents[agent.id] = agent

    def _pick_role(self, fw, agent, free, now):
        for role in fw.roles:
            if role in fw.suppressed:
                continue
            flt = fw.filters.get((agent.id, role))
            if flt is not None:
                expiry, refused = flt
                if now < expiry:
                    if res_contains(refused, free):
                        continue
                else:
                    del fw.filters[(agent.id, role)]
            if not self._constraints_ok(fw, role, agent):
                continue
            return role
        return None

    def _constraints_ok(self, fw, role, agent):
        rc = fw.offer_constraints.get("role_constraints", {}).get(role)
        if not rc or not rc.get("groups"):
            return True
        for group in rc["groups"]:
            ok = True
            for ac in group.get("attribute_constraints", []):
                sel = ac.get("selector", {})
                if sel.get("pseudoattribute_type") == "HOSTNAME":
                    value = agent.hostname
                elif "attribute_name" in sel:
                    value = agent.attribute_value(sel["attribute_name"])
                else:
                    value = None  # no fault domains in the simulator
                pred = ac.get("predicate", {})
                if "exists" in pred:
                    ok = value is not None
                elif "not_exists" in pred:
                    ok = value is None
                elif "text_equals" in pred:
                    ok = value == pred["text_equals"]["value"]
                elif "text_not_equals" in pred:
                    ok = value != pred["text_not_equals"]["value"]
                elif "text_matches" in pred:
                    ok = value is not None and re.fullmatch(pred["text_matches"]["regex"],
                                                            value) is not None
                elif "text_not_matches" in pred:
                    ok = value is None or re.fullmatch(pred["text_not_matches"]["regex"],
                                                       value) is None
                if not ok:
                    break
            if ok:
                return True
        return False

    def _allocate(self):
        """One allocation cycle: every agent with unallocated resources goes,
        whole, to one eligible framework role.  One OFFERS event per framework
        carries all its new offers (batched; cost is O(agents with free
        resources), never O(agents x offers))."""
        self._allocate_pending = False
        frameworks = [f for f in self._frameworks.values()
                      if f.active and f.stream is not None and f.stream.subscribed_sent]
        if not frameworks:
            return
        now = _mono()
        batches = collections.OrderedDict((f.id, []) for f in frameworks)
        n = len(frameworks)
        for agent_id, agent in list(self._free_agents.items()):
            if not agent.registered or not agent.connected or agent.state != "active":
                continue
            free = agent.free()
            if not free:
                del self._free_agents[agent_id]
                continue
            chosen = None
            for k in range(n):
                fw = frameworks[(self._rr + k) % n]
                role = self._pick_role(fw, agent, free, now)
                if role is not None:
                    chosen = (fw, role)
                    break
            if chosen is None:
                continue
            self._rr += 1
            fw, role = chosen
            offer = self._make_offer(fw, agent, role, free)
            batches[fw.id].append(offer)
            del self._free_agents[agent_id]
        for fw in frameworks:
            offers = batches[fw.id]
            if not offers:
                continue
            size = self.max_offers_per_event or len(offers)
            for i in range(0, len(offers), size):
                self._send(fw, {"type": "OFFERS", "offers": {
                    "offers": [self._offer_json(fw, o) for o in offers[i:i + size]]}})

    def _make_offer(self, fw, agent, role, free):
        offer_id = "%s-O%d" % (self.master_id, self._offer_seq)
        self._offer_seq += 1
        resources = [r.copy(alloc=role) for r in free]
        offer = Offer(offer_id, fw.id, agent.id, role, resources)
        for r in resources:
            res_add(agent.offered, r)
        fw.offers[offer_id] = offer
        self._offers[offer_id] = offer
        if self.offer_timeout:
            offer.timer = self._later(float(self.offer_timeout), self._offer_timed_out, offer)
        return offer

    def _offer_json(self, fw, offer):
        agent = self._agents[offer.agent_id]
        out = collections.OrderedDict([
            ("id", {"value": offer.id}), ("framework_id", {"value": fw.id}),
            ("agent_id", {"value": agent.id}), ("hostname", agent.hostname),
            ("url", collections.OrderedDict([
                ("scheme", "http"),
                ("address", collections.OrderedDict([("hostname", agent.hostname),
                                                     ("ip", agent.ip), ("port", agent.port)])),
                ("path", "/slave(1)")])),
            ("resources", [r.to_json(fw.multi_role) for r in offer.resources])])
        attrs = agent.attributes_json()
        if attrs:
            out["attributes"] = attrs
        execs = agent.executors.get(fw.id)
        if execs:
            out["executor_ids"] = [{"value": e} for e in execs]
        if fw.multi_role:
            out["allocation_info"] = {"role": offer.role}
        return out

    def _remove_offer(self, offer, reason, rescind=False):
        """Take an offer out of circulation; its resources go back to the
        agent's unallocated pool (a caller that launches tasks re-allocates
        them as used)."""
        if self._offers.pop(offer.id, None) is None:
            return
        fw = self._frameworks.get(offer.framework_id)
        if fw is not None:
            fw.offers.pop(offer.id, None)
        if offer.timer is not None:
            offer.timer.cancel()
        agent = self._agents.get(offer.agent_id)
        if agent is not None:
            for r in offer.resources:
                res_sub(agent.offered, r)
            self._mark_free(agent)
        self._dead_offers[offer.id] = "%s (%.3f s after it was offered)" % (
            reason, _mono() - offer.created)
        if rescind and fw is not None:
            self._send(fw, {"type": "RESCIND", "rescind": {"offer_id": {"value": offer.id}}})

    def _offer_timed_out(self, offer):
        if offer.id in self._offers:
            self._remove_offer(offer, "rescinded: offer timeout", rescind=True)

    def _add_filter(self, fw, agent_id, role, resources, refuse):
        if refuse <= 0 or not resources:
            return
        duration = max(refuse, self.offer_interval)
        refused = [r.copy(alloc=None) for r in resources]
        key = (agent_id, role)
        now = _mono()
        old = fw.filters.get(key)
        expiry = now + duration
        if old is not None and old[0] > now:
            refused = res_sum(old[1], refused)
            expiry = max(expiry, old[0])
        fw.filters[key] = (expiry, refused)

    def _refuse_seconds(self, filters, entry):
        """The allocator's reading of Filters.refuse_seconds."""
        if filters is None:
            return 5.0
        value = filters.get("refuse_seconds", 5.0)
        if value != value or value < 0:
            self._call_violation(entry, "refuse_seconds_invalid",
                                 "refuse_seconds %r is negative; the default 5 s applies" % value)
            return 5.0
        return min(value, 365 * 86400.0)

    # ----------------------------------------------------------------- ACCEPT

    def _offer_problem(self, fw, offer_ids):
        """validation::offer::validate, in the master's order.  Returns
        (message for the TASK_LOST, violation kind, detail) or None."""
        seen = set()
        for oid in offer_ids:
            if oid in seen:
                return ("Duplicate offer %s in offer list" % oid, "offer_duplicate", "")
            seen.add(oid)
        for oid in offer_ids:
            if oid not in self._offers:
                dead = self._dead_offers.get(oid)
                if dead is not None:
                    return ("Offer %s is no longer valid" % oid, "offer_reused",
                            "offer %s was already used: %s" % (oid, dead))
                return ("Offer %s is no longer valid" % oid, "offer_unknown",
                        "offer %s was never sent by this master" % oid)
        for oid in offer_ids:
            offer = self._offers[oid]
            if offer.framework_id != fw.id:
                return ("Offer %s has invalid framework %s while framework %s is expected"
                        % (oid, offer.framework_id, fw.id), "offer_wrong_framework", "")
        role = None
        for oid in offer_ids:
            offer = self._offers[oid]
            if role is None:
                role = offer.role
            elif offer.role != role:
                return ("Aggregated offers must be allocated to the same role. Offer %s uses "
                        "role '%s but another is using role '%s" % (oid, offer.role, role),
                        "offers_mixed_roles", "")
        agent_id = None
        for oid in offer_ids:
            offer = self._offers[oid]
            if agent_id is None:
                agent_id = offer.agent_id
            if offer.agent_id != agent_id:
                return ("Aggregated offers must belong to one single agent. Offer %s uses agent "
                        "%s and agent %s" % (oid, offer.agent_id, agent_id),
                        "offers_mixed_agents", "")
        return None

    @staticmethod
    def _operation_tasks(op):
        if op.get("type") == "LAUNCH":
            return op.get("launch", {}).get("task_infos", [])
        if op.get("type") == "LAUNCH_GROUP":
            return op.get("launch_group", {}).get("task_group", {}).get("tasks", [])
        return []

    def _master_status(self, task_id, state, message, reason, agent_id=None, executor_id=None,
                       extra=None):
        """A TaskStatus generated by the master itself: no uuid, never acked."""
        st = collections.OrderedDict([("task_id", {"value": task_id}), ("state", state)])
        if message is not None:
            st["message"] = message
        st["source"] = "SOURCE_MASTER"
        st["reason"] = reason
        if agent_id is not None:
            st["agent_id"] = {"value": agent_id}
        if executor_id is not None:
            st["executor_id"] = {"value": executor_id}
        st["timestamp"] = _now()
        for key in ("healthy", "check_status", "labels", "container_status", "unreachable_time"):
            if extra and key in extra:
                st[key] = extra[key]
        return st

    def _send_update(self, fw, status):
        self._send(fw, {"type": "UPDATE", "update": {"status": status}})

    def _call_accept(self, fw, call, entry):
        acc = call["accept"]
        offer_ids = [o.get("value", "") for o in acc.get("offer_ids", [])]
        ops = acc.get("operations", [])
        refuse = self._refuse_seconds(acc.get("filters"), entry)
        if not offer_ids:
            problem = ("No offers specified", "offers_empty", "")
        else:
            problem = self._offer_problem(fw, offer_ids)
        if problem is not None:
            message, kind, detail = problem
            self._call_violation(entry, kind, message + ("; " + detail if detail else ""),
                                 path="accept.offer_ids")
            for oid in offer_ids:
                offer = self._offers.get(oid)
                if offer is not None and offer.framework_id == fw.id:
                    self._remove_offer(offer, "returned after an invalid ACCEPT")
            state = "TASK_DROPPED" if fw.partition_aware else "TASK_LOST"
            for op in ops:
                for ti in self._operation_tasks(op):
                    aid = ti.get("agent_id", {}).get("value")
                    self._send_update(fw, self._master_status(
                        ti["task_id"]["value"], state,
                        "Task launched with invalid offers: " + message,
                        "REASON_INVALID_OFFERS", agent_id=aid))
            return None
        offers = [self._offers[oid] for oid in offer_ids]
        agent = self._agents[offers[0].agent_id]
        role = offers[0].role
        remaining = res_sum(*[o.resources for o in offers])
        for offer in offers:
            self._remove_offer(offer, "accepted")
        for i, op in enumerate(ops):
            optype = op.get("type")
            if optype == "LAUNCH":
                self._launch(fw, agent, role, op, remaining, entry, i)
            elif optype == "LAUNCH_GROUP":
                self._launch_group(fw, agent, role, op, remaining, entry, i)
            elif optype is None:
                self._call_violation(entry, "operation_type_missing",
                                     "operation without a (known) type is ignored by the master",
                                     path="accept.operations[%d]" % i)
            else:
                self._call_violation(entry, "operation_not_simulated",
                                     "%s operations are not simulated; ignored" % optype,
                                     path="accept.operations[%d]" % i)
        # Whatever the operations did not use is declined with the filter.
        self._add_filter(fw, agent.id, role, remaining, refuse)
        self._mark_free(agent)
        return None

    def _task_error(self, fw, entry, ti, message, kind, reason="REASON_TASK_INVALID", path=None):
        self._call_violation(entry, kind, "task %s: %s" % (ti["task_id"]["value"], message),
                             path=path)
        self._send_update(fw, self._master_status(
            ti["task_id"]["value"], "TASK_ERROR", message, reason,
            agent_id=ti.get("agent_id", {}).get("value")))

    def _inject_allocation(self, resources, role):
        for r in resources:
            if "allocation_info" not in r:
                r["allocation_info"] = {"role": role}

    def _validate_task_common(self, fw, agent, ti, entry, path):
        """validation::task::internal::validateTask.  Returns (msg, kind)."""
        tid = ti["task_id"]["value"]
        err = validate_id(tid)
        if err:
            return err, "task_invalid"
        if tid in fw.tasks:
            return "Task has duplicate ID: " + tid, "duplicate_task_id"
        if tid in fw.unreachable_tasks:
            return "Task reuses the ID of an unreachable task: " + tid, "duplicate_task_id"
        if ti["agent_id"]["value"] != agent.id:
            return ("Task uses invalid agent %s while agent %s is expected"
                    % (ti["agent_id"]["value"], agent.id), "task_agent_mismatch")
        kp = ti.get("kill_policy", {}).get("grace_period")
        if kp is not None and kp["nanoseconds"] < 0:
            return "Task's 'kill_policy.grace_period' must be non-negative", "task_invalid"
        mct = ti.get("max_completion_time")
        if mct is not None and mct["nanoseconds"] < 0:
            return "Task's `max_completion_time` must be non-negative", "task_invalid"
        if "check" in ti:
            err = _check_error(ti["check"])
            if err:
                return "Task uses invalid check: " + err, "task_invalid"
        hc = ti.get("health_check")
        if hc is not None:
            if "type" not in hc:
                present = [k for k in ("command", "http", "tcp") if k in hc]
                if len(present) == 1:
                    hc["type"] = present[0].upper()
                    self._call_violation(entry, "health_check_type_missing",
                                         "task %s: health_check without 'type'; the master "
                                         "infers %s" % (tid, hc["type"]),
                                         path=path + ".health_check")
            err = _health_error(hc)
            if err:
                return "Task uses invalid health check: " + err, "task_invalid"
        resources = ti.get("resources", [])
        if not resources:
            return "Task uses no resources", "task_invalid"
        for r in resources:
            err = resource_error(r)
            if err:
                return ("Task uses invalid resources: Invalid resources: Resource '%s' is "
                        "invalid: %s" % (_proto_resource_str(r), err), "task_invalid")
        roles = []
        for r in resources:
            role = r.get("allocation_info", {}).get("role")
            if role is None:
                return ("Invalid task resources: The resources are not allocated to a role",
                        "task_invalid")
            if roles and role != roles[0]:
                return ("Invalid task resources: The resources have multiple allocation roles "
                        "('%s' and '%s') but only one allocation role is allowed"
                        % (role, roles[0]), "task_invalid")
            roles.append(role)
        if "command" in ti:
            err = _env_error(ti["command"])
            if err:
                return "Task's `CommandInfo` is invalid: " + err, "task_invalid"
        if "container" in ti:
            err = _container_error(ti["container"])
            if err:
                return "Task's `ContainerInfo` is invalid: " + err, "task_invalid"
        limits = ti.get("limits", {})
        if limits:
            if set(limits) - {"cpus", "mem"}:
                return "Only cpus and mem may be included in a task's resource limits", \
                    "task_invalid"
            totals = {}
            for r in resources:
                if r.get("type") == "SCALAR":
                    totals[r["name"]] = totals.get(r["name"], 0.0) + r["scalar"]["value"]
            if "cpus" in limits:
                if "cpus" not in totals:
                    return ("When a CPU limit is specified, a CPU request must also be "
                            "specified", "task_invalid")
                if limits["cpus"].get("value", 0.0) < totals["cpus"]:
                    return ("The cpu limit must be greater than or equal to the cpu request",
                            "task_invalid")
            if "mem" in limits:
                if "mem" not in totals:
                    return ("When a memory limit is specified, a memory request must also be "
                            "specified", "task_invalid")
                if limits["mem"].get("value", 0.0) < totals["mem"]:
                    return ("The memory limit must be greater than or equal to the memory "
                            "request", "task_invalid")
        return None, None

    def _validate_executor(self, fw, agent, ex):
        """The parts of executor::internal::validate a framework can get wrong."""
        err = validate_id(ex["executor_id"]["value"])
        if err:
            return err
        if ex.get("type") == "DEFAULT" and "command" in ex:
            return "'ExecutorInfo.command' must not be set for 'DEFAULT' executor"
        if ex.get("type") == "CUSTOM" and "command" not in ex:
            return "'ExecutorInfo.command' must be set for 'CUSTOM' executor"
        if "command" in ex:
            err = _env_error(ex["command"])
            if err:
                return "Executor's `CommandInfo` is invalid: " + err
        if "container" in ex:
            err = _container_error(ex["container"])
            if err:
                return "Executor's `ContainerInfo` is invalid: " + err
        if "framework_id" not in ex:
            return "'ExecutorInfo.framework_id' must be set"
        if ex["framework_id"]["value"] != fw.id:
            return ("ExecutorInfo has an invalid FrameworkID (Actual: %s vs Expected: %s)"
                    % (ex["framework_id"]["value"], fw.id))
        for r in ex.get("resources", []):
            err = resource_error(r)
            if err:
                return ("Executor uses invalid resources: Invalid resources: Resource '%s' is "
                        "invalid: %s" % (_proto_resource_str(r), err))
        existing = agent.executors.get(fw.id, {}).get(ex["executor_id"]["value"])
        if existing is not None and existing != ex:
            return ("ExecutorInfo is not compatible with existing ExecutorInfo with same "
                    "ExecutorID.")
        return None

    def _launch(self, fw, agent, role, op, remaining, entry, index):
        tasks = op.get("launch", {}).get("task_infos", [])
        if "id" in op:
            for ti in tasks:
                self._task_error(fw, entry, ti, "The `id` field cannot be set on LAUNCH "
                                 "operations", "launch_with_operation_id")
            return
        for j, ti in enumerate(tasks):
            path = "accept.operations[%d].launch.task_infos[%d]" % (index, j)
            self._inject_allocation(ti.get("resources", []), role)
            err, kind = self._validate_task_common(fw, agent, ti, entry, path)
            ex = ti.get("executor")
            exec_res = []
            if err is None:
                if ("executor" in ti) == ("command" in ti):
                    err, kind = ("Task should have at least one (but not both) of CommandInfo "
                                 "or ExecutorInfo present", "task_invalid")
                elif ex is not None:
                    ex.setdefault("framework_id", {"value": fw.id})
                    self._inject_allocation(ex.get("resources", []), role)
                    err = self._validate_executor(fw, agent, ex)
                    if err is None and ex.get("type", "CUSTOM") != "CUSTOM":
                        err = "'ExecutorInfo.type' must be 'CUSTOM'"
                    if err is None and "command" not in ex:
                        err = "'ExecutorInfo.command' must be set"
                    kind = "task_invalid"
                    if err is None and ex["executor_id"]["value"] not in \
                            agent.executors.get(fw.id, {}):
                        exec_res = [res_from_proto(r, role) for r in ex.get("resources", [])]
            if err is None:
                task_res = [res_from_proto(r, role) for r in ti["resources"]]
                total = res_sum(task_res, exec_res)
                if not res_contains(remaining, total):
                    err, kind = ("Total resources %s required by task and its executor is more "
                                 "than available %s" % (res_str(total), res_str(remaining)),
                                 "resources_exceed_offer")
            if err is None and ti.get("container", {}).get("linux_info", {}).get(
                    "share_cgroups", True) is False:
                err, kind = ("Only tasks in a task group may have 'share_cgroups' set to "
                             "'false'", "task_invalid")
            if err is not None:
                self._task_error(fw, entry, ti, err, kind, path=path)
                continue
            for r in total:
                res_sub(remaining, r)
            executor_id = ex["executor_id"]["value"] if ex is not None else None
            self._add_task(fw, agent, ti, role, task_res, executor_id, exec_res, ex)

    def _launch_group(self, fw, agent, role, op, remaining, entry, index):
        lg = op["launch_group"]
        ex = lg["executor"]
        tasks = lg["task_group"].get("tasks", [])
        path = "accept.operations[%d].launch_group" % index
        self._inject_allocation(ex.get("resources", []), role)
        err = None
        for j, ti in enumerate(tasks):
            self._inject_allocation(ti.get("resources", []), role)
            terr, _ = self._validate_task_common(fw, agent, ti, entry,
                                                 "%s.task_group.tasks[%d]" % (path, j))
            if terr is None and ti.get("container", {}).get("type") == "DOCKER":
                terr = "Docker ContainerInfo is not supported on the task"
            if terr is not None:
                err = "Task '%s' is invalid: %s" % (ti["task_id"]["value"], terr)
                break
        exec_res = []
        if err is None:
            err = self._validate_executor(fw, agent, ex)
        if err is None:
            if "type" not in ex:
                err = "'ExecutorInfo.type' must be set"
            elif ex.get("container", {}).get("type") == "DOCKER":
                err = "Docker ContainerInfo is not supported on the executor"
            else:
                for ti in tasks:
                    if "executor" in ti and ti["executor"] != ex:
                        err = ("The `ExecutorInfo` of task '%s' is different from executor '%s'"
                               % (ti["task_id"]["value"], ex["executor_id"]["value"]))
                        break
        if err is None:
            ex_all = [res_from_proto(r, role) for r in ex.get("resources", [])]
            cpus = sum(r.scalar for r in ex_all if r.name == "cpus") / 1000.0
            mem = sum(r.scalar for r in ex_all if r.name == "mem") / 1000.0
            eid = ex["executor_id"]["value"]
            if cpus < 0.01:
                err = "Executor '%s' uses less CPUs (%s) than the minimum required (0.01)" % (
                    eid, ("%g" % cpus) if cpus else "None")
            elif mem < 32:
                err = ("Executor '%s' uses less memory (%s) than the minimum required (32MB)"
                       % (eid, ("%gMB" % mem) if mem else "None"))
            elif not any(r.name == "disk" for r in ex_all):
                err = "Executor '%s' uses no disk" % eid
            else:
                if eid not in agent.executors.get(fw.id, {}):
                    exec_res = ex_all
                task_res_all = [[res_from_proto(r, role) for r in ti["resources"]]
                                for ti in tasks]
                total = res_sum(exec_res, *task_res_all)
                if not res_contains(remaining, total):
                    err = ("Total resources %s required by task group and its executor are "
                           "more than available %s" % (res_str(total), res_str(remaining)))
        if err is not None:
            for ti in tasks:
                self._task_error(fw, entry, ti, err, "task_invalid",
                                 reason="REASON_TASK_GROUP_INVALID", path=path)
            return
        for r in total:
            res_sub(remaining, r)
        eid = ex["executor_id"]["value"]
        for k, ti in enumerate(tasks):
            self._add_task(fw, agent, ti, role, task_res_all[k], eid, exec_res if k == 0 else [],
                           ex)

    def _add_task(self, fw, agent, ti, role, task_res, executor_id, exec_res, executor_info):
        task = Task(ti, fw.id, agent, role, task_res, executor_id, exec_res)
        fw.tasks[task.task_id] = task
        agent.tasks[(fw.id, task.task_id)] = task
        agent.framework_infos[fw.id] = fw.info
        for r in res_sum(task_res, exec_res):
            res_add(agent.used, r)
        if executor_id is not None:
            agent.executors.setdefault(fw.id, collections.OrderedDict())[executor_id] = \
                executor_info
            if exec_res:
                # Executor resources live as long as any task of the executor.
                agent.executor_res[(fw.id, executor_id)] = exec_res
        task.timers.append(self._later(self.task_start_delay, self._agent_launch, task))
        return task

    # ------------------------------------------------- agents and executors

    def _docker_error(self, task):
        """What the docker containerizer/executor refuses at launch time."""
        container = task.info["container"]
        docker = container.get("docker", {})
        network = docker.get("network", "HOST")
        mappings = docker.get("port_mappings", [])
        if mappings and network not in ("BRIDGE", "USER"):
            return "Port mappings are only supported for bridge and user-defined networks"
        ports = []
        for r in task.resources:
            if r.name == "ports" and r.kind == "RANGES":
                ports += r.ranges
        for m in mappings:
            hp = m["host_port"]
            if not any(b <= hp <= e for b, e in ports):
                return "Port [%d] not included in resources" % hp
        if network == "USER" and len(container.get("network_infos", [])) != 1:
            return "Exactly one network info is required for USER network"
        if container.get("hostname") and network == "HOST":
            return "Unable to set hostname with host network mode"
        command = task.info.get("command", {})
        if command.get("shell", True) and "value" not in command:
            return "Shell specified but no command value provided"
        return None

    def _agent_launch(self, task):
        """The agent hands the task to its executor."""
        agent = self._agents.get(task.agent_id)
        if (task.released or task.launched or task.kill_requested or agent is None
                or not agent.connected):
            return
        container = task.info.get("container", {})
        if container.get("type") == "DOCKER":
            if not agent.docker:
                # Captured: an agent without the docker containerizer.
                self._agent_status(task, "TASK_FAILED", "SOURCE_AGENT",
                                   reason="REASON_EXECUTOR_TERMINATED",
                                   message="Abnormal executor termination: unknown container",
                                   container=False)
                return
            err = self._docker_error(task)
            if err is not None:
                self._violation("docker_invalid", "task %s: %s" % (task.task_id, err),
                                framework_id=task.framework_id)
                self._agent_status(task, "TASK_FAILED", "SOURCE_AGENT",
                                   reason="REASON_CONTAINER_LAUNCH_FAILED",
                                   message="Failed to launch container: " + err, container=False)
                return
        task.launched = True
        self._agent_status(task, "TASK_STARTING", "SOURCE_EXECUTOR")
        self._agent_status(task, "TASK_RUNNING", "SOURCE_EXECUTOR")
        if self._k3s is not None:
            self._k3s.task_running(task, agent)
        if "health_check" in task.info and not (self._k3s and self._k3s.owns_health(task)):
            task.timers.append(self._later(self.health_delay, self._health, task, True))
        for rule in self._behaviors:
            if rule["regex"].search(task.task_id) or rule["regex"].search(task.name):
                task.timers.append(self._later(rule["after"], self._apply_behavior, task, rule))
                break

    def _health(self, task, healthy):
        if task.launched and task.state == "TASK_RUNNING":
            self._agent_status(task, "TASK_RUNNING", "SOURCE_EXECUTOR",
                               reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", healthy=healthy)

    def _apply_behavior(self, task, rule):
        if task.state not in TERMINAL_STATES:
            self._agent_status(task, rule["state"], rule["source"], reason=rule["reason"],
                               message=rule["message"])

    def _agent_status(self, task, state, source, reason=None, message=None, healthy=None,
                      container=True):
        """An update generated by the agent or the executor: it gets a uuid and
        enters the agent's per-task stream (only its head is forwarded; it is
        re-sent until acknowledged)."""
        if task.state in TERMINAL_STATES:
            return  # nothing comes after a terminal state
        u = uuidlib.uuid4().bytes
        st = collections.OrderedDict([("task_id", {"value": task.task_id}), ("state", state)])
        if message is not None:
            st["message"] = message
        st["source"] = source
        if reason is not None:
            st["reason"] = reason
        st["agent_id"] = {"value": task.agent_id}
        st["executor_id"] = {"value": task.exec_id_for_status}
        st["timestamp"] = _now()
        st["uuid"] = b64(u)
        if healthy is not None:
            task.healthy = healthy
            st["healthy"] = healthy
        if container:
            st["container_status"] = collections.OrderedDict([
                ("container_id", {"value": task.container_id}),
                ("network_infos", [{"ip_addresses": [{"protocol": "IPv4",
                                                      "ip_address": task.ip}]}]),
                ("executor_pid", task.executor_pid)])
        task.state = state
        if state in TERMINAL_STATES:
            # The executor is done: no more health/behaviour timers, but the
            # agent keeps re-sending whatever is still unacknowledged.
            task.cancel_timers(include_resend=False)
            self._release(task)
            if self._k3s is not None:
                self._k3s.task_ended(task)
        update = StatusUpdate(u, st)
        self._uuids[u] = {"framework_id": task.framework_id, "task_id": task.task_id,
                          "agent_id": task.agent_id, "state": state, "acked": False}
        task.pending.append(update)
        if len(task.pending) == 1:
            self._forward_head(task)

    def _forward_head(self, task):
        update = task.pending[0]
        task.status_update_state = update.state
        task.last_status = update.status
        self._remember_status(task, update.status)
        self._deliver(task, update)
        task.resend_interval = self.resend_interval
        if task.resend_timer is not None:
            task.resend_timer.cancel()
        task.resend_timer = self._later(task.resend_interval, self._resend, task, update)

    def _remember_status(self, task, status):
        """Task.statuses as the master keeps them: a repeated state replaces
        the previous entry (that is what the operator endpoints show)."""
        entry = collections.OrderedDict([("state", status["state"]),
                                         ("timestamp", status["timestamp"])])
        if "container_status" in status:
            cs = status["container_status"]
            entry["container_status"] = collections.OrderedDict(
                (k, cs[k]) for k in ("container_id", "network_infos") if k in cs)
        if "healthy" in status:
            entry["healthy"] = status["healthy"]
        if task.statuses and task.statuses[-1]["state"] == entry["state"]:
            task.statuses[-1] = entry
        else:
            task.statuses.append(entry)
        del task.statuses[:-100]

    def _deliver(self, task, update):
        agent = self._agents.get(task.agent_id)
        fw = self._frameworks.get(task.framework_id)
        if agent is None or not agent.registered or not agent.connected:
            return  # the agent cannot reach the master; it keeps retrying
        if update.first_sent is None:
            update.first_sent = _mono()
        update.last_sent = _mono()
        update.sends += 1
        if fw is not None and fw.connected:
            self._send_update(fw, update.status)

    def _resend(self, task, update):
        if not task.pending or task.pending[0] is not update:
            return
        self._deliver(task, update)
        if self.resend_backoff:
            task.resend_interval = min(task.resend_interval * 2, self.resend_max)
        task.resend_timer = self._later(task.resend_interval, self._resend, task, update)

    def _release(self, task):
        """Give the task's resources back to its agent (terminal state)."""
        if task.released:
            return
        task.released = True
        agent = self._agents.get(task.agent_id)
        if agent is None:
            return
        for r in task.resources:
            res_sub(agent.used, r)
        if task.executor_id is not None:
            key = (task.framework_id, task.executor_id)
            still_used = any(t.executor_id == task.executor_id and not t.released
                             for (fid, _), t in agent.tasks.items() if fid == task.framework_id)
            if not still_used:
                for r in agent.executor_res.pop(key, []):
                    res_sub(agent.used, r)
                agent.executors.get(task.framework_id, {}).pop(task.executor_id, None)
        self._mark_free(agent)

    def _forget_task(self, fw, task):
        """The terminal update was acknowledged: the task becomes 'completed'."""
        task.cancel_timers()
        if fw is not None and fw.tasks.get(task.task_id) is task:
            del fw.tasks[task.task_id]
            fw.completed_tasks.append(task)
        agent = self._agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((task.framework_id, task.task_id), None)

    # --------------------------------------------------------- calls: others

    def _call_ignored(self, fw, call, entry):
        return None

    def _call_teardown(self, fw, call, entry):
        self._remove_framework(fw, "TEARDOWN")
        return None

    def _call_decline(self, fw, call, entry):
        dec = call["decline"]
        refuse = self._refuse_seconds(dec.get("filters"), entry)
        for i, o in enumerate(dec.get("offer_ids", [])):
            oid = o.get("value", "")
            offer = self._offers.get(oid)
            path = "decline.offer_ids[%d]" % i
            if offer is None:
                dead = self._dead_offers.get(oid)
                if dead is not None:
                    self._call_violation(entry, "offer_reused", "DECLINE of offer %s that was "
                                         "already used: %s (ignored by the master)" % (oid, dead),
                                         path=path)
                else:
                    self._call_violation(entry, "offer_unknown", "DECLINE of offer %s that was "
                                         "never sent (ignored by the master)" % oid, path=path)
                continue
            if offer.framework_id != fw.id:
                self._call_violation(entry, "offer_wrong_framework",
                                     "DECLINE of offer %s of framework %s"
                                     % (oid, offer.framework_id), path=path)
                continue
            self._remove_offer(offer, "declined")
            self._add_filter(fw, offer.agent_id, offer.role, offer.resources, refuse)
        return None

    def _roles_of_call(self, fw, body, entry, kind):
        roles = list(body.get("roles", [])) if body else []
        bad = [r for r in roles if r not in fw.roles or role_error(r)]
        if bad:
            self._call_violation(entry, kind, "%s for role(s) %s the framework is not "
                                 "subscribed with: the master silently drops the whole call"
                                 % (entry["type"], ", ".join(repr(r) for r in bad)))
            return None
        return roles or list(fw.roles)

    def _call_revive(self, fw, call, entry):
        roles = self._roles_of_call(fw, call.get("revive"), entry, "revive_unknown_role")
        if roles is None:
            return None
        for role in roles:
            fw.suppressed.discard(role)
        for key in [k for k in fw.filters if k[1] in roles]:
            del fw.filters[key]
        self._allocate_soon()
        return None

    def _call_suppress(self, fw, call, entry):
        roles = self._roles_of_call(fw, call.get("suppress"), entry, "suppress_unknown_role")
        if roles is not None:
            fw.suppressed.update(roles)
        return None

    def _call_kill(self, fw, call, entry):
        kill = call["kill"]
        tid = kill["task_id"]["value"]
        aid = kill["agent_id"].get("value", "") if "agent_id" in kill else None
        task = fw.tasks.get(tid)
        if task is None:
            self._call_violation(entry, "kill_unknown_task",
                                 "KILL of task %s unknown to the master; answered by "
                                 "reconciliation" % tid)
            self._reconcile_one(fw, tid, aid)
            return None
        if aid is not None and aid != task.agent_id:
            self._call_violation(entry, "kill_wrong_agent",
                                 "KILL of task %s with agent_id %r but the task is on %s: the "
                                 "master silently ignores it" % (tid, aid, task.agent_id),
                                 path="kill.agent_id")
            return None
        agent = self._agents.get(task.agent_id)
        if task.state in TERMINAL_STATES or agent is None or not agent.connected:
            return None
        task.kill_requested = True
        if not task.launched:
            self._agent_status(task, "TASK_KILLED", "SOURCE_AGENT",
                               reason="REASON_TASK_KILLED_DURING_LAUNCH",
                               message="Killed before delivery to the executor", container=False)
            return None
        if fw.killing_state:
            self._agent_status(task, "TASK_KILLING", "SOURCE_EXECUTOR")
        task.timers.append(self._later(self.kill_delay, self._finish_kill, task))
        return None

    def _finish_kill(self, task):
        self._agent_status(task, "TASK_KILLED", "SOURCE_EXECUTOR",
                           message="Command terminated with signal Terminated")

    def _call_acknowledge(self, fw, call, entry):
        ack = call["acknowledge"]
        aid = ack["agent_id"]["value"]
        tid = ack["task_id"]["value"]
        u = ack["uuid"]
        info = self._uuids.get(u)
        task = fw.tasks.get(tid)
        if info is None:
            self._call_violation(entry, "ack_unknown_uuid",
                                 "ACKNOWLEDGE of uuid %s for task %s: no update with this uuid "
                                 "was ever sent%s" % (b64(u), tid,
                                                      "" if task else " (and the task is unknown)"),
                                 path="acknowledge.uuid")
            return None
        if info["framework_id"] != fw.id or info["task_id"] != tid:
            self._call_violation(entry, "ack_wrong_task",
                                 "ACKNOWLEDGE of uuid %s with task %s, but that update belongs "
                                 "to task %s" % (b64(u), tid, info["task_id"]),
                                 path="acknowledge.task_id")
            return None
        if info["agent_id"] != aid:
            self._call_violation(entry, "ack_wrong_agent",
                                 "ACKNOWLEDGE of task %s names agent %s, but the task is on %s: "
                                 "the acknowledgement never reaches the right agent"
                                 % (tid, aid, info["agent_id"]), path="acknowledge.agent_id")
            return None
        if info["acked"]:
            return None  # duplicates of re-sent updates are fine (agent ignores them)
        if task is None:
            task = fw.unreachable_tasks.get(tid)
        agent = self._agents.get(aid)
        if task is None or agent is None or not agent.registered or not agent.connected:
            return None  # dropped; the agent will re-send
        if task.pending and task.pending[0].uuid == u:
            update = task.pending.popleft()
            info["acked"] = True
            if task.resend_timer is not None:
                task.resend_timer.cancel()
                task.resend_timer = None
            if update.state in TERMINAL_STATES:
                self._forget_task(fw, task)
            elif task.pending:
                self._forward_head(task)
        return None

    def _call_ack_operation(self, fw, call, entry):
        self._call_violation(entry, "ack_unknown_uuid",
                             "ACKNOWLEDGE_OPERATION_STATUS: no operation status was ever sent "
                             "(operation feedback is not simulated)")
        return None

    def _call_inverse_offers(self, fw, call, entry):
        body = call.get("accept_inverse_offers") or call.get("decline_inverse_offers") or {}
        for o in body.get("inverse_offer_ids", []):
            self._call_violation(entry, "offer_unknown", "inverse offer %s was never sent"
                                 % o.get("value", ""))
        return None

    def _call_update_framework(self, fw, call, entry):
        upd = call["update_framework"]
        info = upd["framework_info"]
        err = self._validate_framework_info(info, upd)
        if err is None and fw.info.get("principal") != info.get("principal"):
            err = "Changing framework's principal is not allowed."
        if err is None and info.get("user") != fw.info.get("user"):
            err = ("Updating 'FrameworkInfo.user' is unsupported; attempted to update from "
                   "'%s' to '%s'" % (fw.info.get("user"), info.get("user")))
        if err is None and info.get("checkpoint", False) != fw.info.get("checkpoint", False):
            err = ("Updating 'FrameworkInfo.checkpoint' is unsupported; attempted to update "
                   "from '%s' to '%s'" % (str(fw.info.get("checkpoint", False)).lower(),
                                          str(info.get("checkpoint", False)).lower()))
        if err is not None:
            self._call_violation(entry, "update_framework_invalid", err)
            return (400, err)
        old_roles = set(fw.roles)
        fw.set_info(info)
        fw.suppressed = set(upd.get("suppressed_roles", []))
        fw.offer_constraints = upd.get("offer_constraints", {})
        for offer in list(fw.offers.values()):
            if offer.role not in fw.roles:
                self._remove_offer(offer, "rescinded: role removed by UPDATE_FRAMEWORK",
                                   rescind=True)
        if set(fw.roles) != old_roles:
            self._allocate_soon()
        return (200, "")

    # ----------------------------------------------------------- reconcile

    def _call_reconcile(self, fw, call, entry):
        tasks = call["reconcile"].get("tasks", [])
        if not tasks:
            for task in list(fw.tasks.values()):
                self._send_update(fw, self._known_task_status(task))
            return None
        for t in tasks:
            aid = t["agent_id"].get("value", "") if "agent_id" in t else None
            self._reconcile_one(fw, t["task_id"]["value"], aid)
        return None

    def _known_task_status(self, task):
        state = task.status_update_state or task.state
        return self._master_status(
            task.task_id, state, "Reconciliation: Latest task state", "REASON_RECONCILIATION",
            agent_id=task.agent_id, executor_id=task.executor_id, extra=task.last_status)

    def _reconcile_one(self, fw, tid, aid):
        """Master::reconcile, explicit case, per task (doc §6.6)."""
        task = fw.tasks.get(tid)
        if task is not None:
            self._send_update(fw, self._known_task_status(task))
            return
        agent = self._agents.get(aid) if aid is not None else None
        known = agent is not None and agent.registered
        pa = fw.partition_aware
        if known and agent.state == "active":
            status = self._master_status(tid, "TASK_GONE" if pa else "TASK_LOST",
                                         "Reconciliation: Task is unknown to the agent",
                                         "REASON_RECONCILIATION", agent_id=aid)
        elif known and agent.state == "unreachable":
            status = self._master_status(
                tid, "TASK_UNREACHABLE" if pa else "TASK_LOST",
                "Reconciliation: Task is unreachable", "REASON_RECONCILIATION", agent_id=aid,
                extra={"unreachable_time": {"nanoseconds": int(agent.unreachable_time * 1e9)}})
        else:
            status = self._master_status(tid, "TASK_UNKNOWN" if pa else "TASK_LOST",
                                         "Reconciliation: Task is unknown",
                                         "REASON_RECONCILIATION", agent_id=aid)
        self._send_update(fw, status)

    # =============================================================== faults
    # Every fault is a public method (also reachable as POST /sim/<name>).

    def _target_frameworks(self, framework_id=None):
        if framework_id is not None:
            fw = self._frameworks.get(framework_id)
            if fw is None:
                raise KeyError("unknown framework %s" % framework_id)
            return [fw]
        return list(self._frameworks.values())

    def _find_task(self, task_id, framework_id=None):
        for fw in self._target_frameworks(framework_id):
            task = fw.tasks.get(task_id)
            if task is not None:
                return fw, task
        raise KeyError("unknown task %s" % task_id)

    def _find_agent(self, ref):
        if ref is None:
            return next(iter(self._agents.values()))
        if isinstance(ref, int):
            return list(self._agents.values())[ref]
        if ref in self._agents:
            return self._agents[ref]
        for agent in self._agents.values():
            if agent.hostname == ref:
                return agent
        raise KeyError("unknown agent %s" % ref)

    def drop_stream(self, framework_id=None, clean=False):
        """Close subscription connection(s): abruptly (no terminating chunk)
        or, with clean=True, with the terminating chunk.  Returns the count."""
        with self._lock:
            streams = [fw.stream for fw in self._target_frameworks(framework_id) if fw.stream]
            if framework_id is None:
                streams = list(self._streams)
        for s in streams:
            s.end() if clean else s.abort()
        return len(streams)

    def pause_heartbeats(self):
        """Keep the streams open but stop sending HEARTBEAT events."""
        self._heartbeats_paused = True

    def resume_heartbeats(self):
        self._heartbeats_paused = False

    def silence(self, enabled=True):
        """A silent master: nothing at all is written on the streams (events
        queue up) until silence(False); the connections stay open."""
        self._silenced = bool(enabled)
        with self._lock:
            for s in self._streams:
                with s.cond:
                    s.cond.notify()

    def restart(self, reregister_delay=None, recovery_time=0.0):
        """Master failover with the in-memory registry: every stream drops, the
        master forgets frameworks, offers and agents (new master id); agents
        (and their running tasks) re-register after `reregister_delay`."""
        with self._lock:
            streams = list(self._streams) + list(self._pending_streams.values())
            for offer in list(self._offers.values()):
                self._remove_offer(offer, "invalidated by a master failover")
            for fw in self._frameworks.values():
                for t in (fw.failover_timer, fw.heartbeat_timer):
                    if t is not None:
                        t.cancel()
                fw.stream = None
            self._frameworks.clear()
            self._removed_ids.clear()
            self._completed_frameworks.clear()
            self._pending_streams.clear()
            self.master_id = str(uuidlib.uuid4())
            self._fw_seq = 0
            self._offer_seq = 0
            self.elected_time = _now()
            for agent in self._agents.values():
                agent.registered = False
                agent.offered = []
            delay = self.reregister_delay if reregister_delay is None else reregister_delay
            # A second restart must not be undone by the first one's timers.
            self._generation += 1
            for agent in self._agents.values():
                self._later(float(delay), self._agent_reregistered, agent, self._generation)
            if recovery_time:
                self._recovering = True
                self._later(float(recovery_time), setattr, self, "_recovering", False)
        for s in streams:
            s.abort()

    def _agent_reregistered(self, agent, generation):
        """The agent comes back to a master that did not know it.  The master
        learns the agent's tasks (and frameworks) and tells subscribed
        frameworks 'Unknown agent reregistered' (no uuid)."""
        if agent.registered or generation != self._generation:
            return
        agent.registered = True
        agent.connected = True
        agent.state = "active"
        agent.reregistered_time = _now()
        for (fid, tid), task in list(agent.tasks.items()):
            fw = self._frameworks.get(fid)
            if fw is None:
                fw = Framework(fid, agent.framework_infos.get(fid, {"user": "", "name": ""}))
                fw.recovered = True
                self._frameworks[fid] = fw
            fw.tasks[tid] = task
            if fw.connected:
                self._send_update(fw, self._master_status(
                    tid, task.state, "Unknown agent reregistered", "REASON_AGENT_REREGISTERED",
                    agent_id=agent.id, executor_id=task.executor_id, extra=task.last_status))
        self._mark_free(agent)
        self._allocate_soon()

    def redirect(self, leader, drop_streams=True):
        """Pretend another master leads: scheduler calls get 307 with
        Location //<leader>/master/api/v1/scheduler.  leader=None undoes it."""
        with self._lock:
            self._leader = leader
            streams = list(self._streams) if (leader and drop_streams) else []
        for s in streams:
            s.abort()

    def no_leader(self, enabled=True):
        """503 'No leader elected' for every scheduler call."""
        with self._lock:
            self._leader = "none" if enabled else None

    def set_recovering(self, enabled=True):
        """503 'Master has not finished recovery' for every scheduler call."""
        self._recovering = bool(enabled)

    def fail_next_subscribes(self, count=1, message="Master has not finished recovery"):
        """Answer the next `count` SUBSCRIBE calls with 503 <message>."""
        with self._lock:
            self._fail_subscribes = int(count)
            self._fail_subscribes_msg = message

    def require_auth(self, principal, secret):
        """HTTP Basic authentication on the scheduler endpoint (401 otherwise)."""
        with self._lock:
            self._auth = (principal, secret)

    def disable_auth(self):
        with self._lock:
            self._auth = None

    def fail_task(self, task_id, state="TASK_FAILED", message=None, reason=None,
                  source="SOURCE_EXECUTOR", framework_id=None):
        """The executor reports a terminal (or any) state, with a uuid."""
        with self._lock:
            _, task = self._find_task(task_id, framework_id)
            if message is None and state == "TASK_FAILED":
                message = "Command exited with status 1"
            if message is None and state == "TASK_FINISHED":
                message = "Command exited with status 0"
            self._agent_status(task, state, source, reason=reason, message=message)

    def finish_task(self, task_id, framework_id=None):
        self.fail_task(task_id, state="TASK_FINISHED", framework_id=framework_id)

    def launch_task(self, framework_id=None, task_id=None, agent=None, cpus=0.1, mem=32.0,
                    name=None, health_check=False):
        """Start a task for a framework as if it had launched it (a task that
        survived a failover, say): resources are taken from an agent (an offer
        holding them is rescinded) and the task sends STARTING and RUNNING
        with uuids, which the framework must acknowledge.  Returns the id."""
        with self._lock:
            if framework_id is None:
                connected = [f for f in self._frameworks.values() if f.connected]
                if not connected:
                    raise KeyError("no connected framework")
                fw = connected[0]
            else:
                fw = self._target_frameworks(framework_id)[0]
            role = fw.roles[0] if fw.roles else "*"
            need = [Res("cpus", "SCALAR", scalar=_fixed(cpus)),
                    Res("mem", "SCALAR", scalar=_fixed(mem))]
            candidates = [self._find_agent(agent)] if agent is not None else \
                [a for a in self._agents.values()
                 if a.registered and a.connected and a.state == "active"]
            chosen = None
            for a in candidates:
                if res_contains(a.free(), need):
                    chosen = a
                    break
            if chosen is None:
                for a in candidates:
                    held = [o for o in self._offers.values() if o.agent_id == a.id]
                    pool = res_sum(a.free(), *[[r.copy(alloc=None) for r in o.resources]
                                               for o in held])
                    if res_contains(pool, need):
                        for o in held:
                            self._remove_offer(o, "rescinded: resources taken by a task",
                                               rescind=True)
                        chosen = a
                        break
            if chosen is None:
                raise ValueError("no agent has %g cpus and %g MB free" % (cpus, mem))
            self._launched_by_sim += 1
            task_id = task_id or "sim-task-%d" % self._launched_by_sim
            if task_id in fw.tasks:
                raise ValueError("task %s already exists" % task_id)
            info = {"name": name or task_id, "task_id": {"value": task_id},
                    "agent_id": {"value": chosen.id},
                    "resources": [dict(r.to_json(True), allocation_info={"role": role})
                                  for r in need],
                    "command": {"shell": True, "value": "sleep 1000"}}
            if health_check:
                info["health_check"] = {"type": "COMMAND", "command": {"value": "true"}}
            self._add_task(fw, chosen, info, role, [r.copy(alloc=role) for r in need],
                           None, [], None)
            return task_id

    def lose_task(self, task_id, framework_id=None, state=None, reason="REASON_AGENT_DISCONNECTED",
                  message="Task lost (simulated fault)"):
        """The master reports the task lost (no uuid): TASK_LOST, or
        TASK_UNREACHABLE for PARTITION_AWARE frameworks."""
        with self._lock:
            fw, task = self._find_task(task_id, framework_id)
            state = state or ("TASK_UNREACHABLE" if fw.partition_aware else "TASK_LOST")
            now = _now()
            task.cancel_timers()
            task.pending.clear()
            self._release(task)
            task.state = task.status_update_state = state
            status = self._master_status(task.task_id, state, message, reason,
                                         agent_id=task.agent_id,
                                         extra={"unreachable_time": {"nanoseconds": int(now * 1e9)}})
            task.last_status = status
            self._remember_status(task, status)
            del fw.tasks[task.task_id]
            fw.unreachable_tasks[task.task_id] = task
            agent = self._agents.get(task.agent_id)
            if agent is not None:
                agent.tasks.pop((fw.id, task.task_id), None)
            self._send_update(fw, status)

    def set_task_health(self, task_id, healthy, framework_id=None):
        """A health check result: TASK_RUNNING with healthy=<bool>, uuid."""
        with self._lock:
            _, task = self._find_task(task_id, framework_id)
            self._health(task, bool(healthy))

    def add_task_behavior(self, match, state="TASK_FINISHED", after=1.0, message=None,
                          reason=None, source="SOURCE_EXECUTOR"):
        """Tasks whose id or name matches the regex reach `state` `after`
        seconds after they start running (e.g. a crashing container)."""
        if message is None and state == "TASK_FINISHED":
            message = "Command exited with status 0"
        if message is None and state == "TASK_FAILED":
            message = "Command exited with status 1"
        with self._lock:
            self._behaviors.append({"match": match, "regex": re.compile(match), "state": state,
                                    "after": float(after), "message": message, "reason": reason,
                                    "source": source})

    def clear_task_behaviors(self):
        with self._lock:
            self._behaviors = []

    def lose_agent(self, agent=None, delay=None):
        """The agent disappears: its offers are rescinded at once; after
        `delay` its tasks get TASK_LOST (TASK_UNREACHABLE if PARTITION_AWARE),
        REASON_AGENT_REMOVED, no uuid, then FAILURE {agent_id}."""
        with self._lock:
            a = self._find_agent(agent)
            a.connected = False
            for offer in [o for o in self._offers.values() if o.agent_id == a.id]:
                self._remove_offer(offer, "rescinded: agent lost", rescind=True)
            delay = self.agent_lost_delay if delay is None else float(delay)
            if delay > 0:
                self._later(delay, self._mark_unreachable, a)
            else:
                self._mark_unreachable(a)
            return a.id

    def _mark_unreachable(self, agent):
        if agent.connected or agent.state == "unreachable":
            return
        agent.state = "unreachable"
        agent.unreachable_time = _now()
        ns = int(agent.unreachable_time * 1e9)
        for (fid, tid), task in list(agent.tasks.items()):
            fw = self._frameworks.get(fid)
            if fw is None or fw.tasks.get(tid) is not task:
                continue
            del fw.tasks[tid]
            task.cancel_timers(include_resend=False)
            if task.state in TERMINAL_STATES:
                fw.completed_tasks.append(task)
                continue
            state = "TASK_UNREACHABLE" if fw.partition_aware else "TASK_LOST"
            status = self._master_status(tid, state, "health check timed out",
                                         "REASON_AGENT_REMOVED", agent_id=agent.id,
                                         extra={"unreachable_time": {"nanoseconds": ns}})
            task.state = "TASK_UNREACHABLE" if fw.partition_aware else "TASK_LOST"
            task.status_update_state = task.state
            task.last_status = status
            self._remember_status(task, status)
            fw.unreachable_tasks[tid] = task
            self._send_update(fw, status)
        for fw in self._frameworks.values():
            if fw.connected:
                self._send(fw, {"type": "FAILURE", "failure": {"agent_id": {"value": agent.id}}})

    def restore_agent(self, agent=None):
        """An unreachable agent re-registers with its tasks still running.
        No update is sent (reconciliation reveals TASK_RUNNING again)."""
        with self._lock:
            a = self._find_agent(agent)
            a.connected = True
            a.state = "active"
            a.reregistered_time = _now()
            for (fid, tid), task in list(a.tasks.items()):
                fw = self._frameworks.get(fid)
                if fw is not None and fw.unreachable_tasks.get(tid) is task:
                    del fw.unreachable_tasks[tid]
                    fw.tasks[tid] = task
                    if task.launched:
                        task.state = task.status_update_state = "TASK_RUNNING"
            for (fid, tid), task in a.tasks.items():
                if task.pending:
                    self._deliver(task, task.pending[0])
            self._mark_free(a)
            self._allocate_soon()
            return a.id

    def send_malformed(self, kind="bad-length", framework_id=None, size=None):
        """Write a broken RecordIO frame on the stream(s):
        bad-length ('1x\\n'), no-length ('\\n'), oversize (a length of `size`,
        default 2**40, followed by a few bytes), bad-json (a record that is not
        JSON), truncate (half a record, then the connection closes),
        empty-record ('0\\n', legal but unusual)."""
        heartbeat = encode_record({"type": "HEARTBEAT"})
        frames = {
            "bad-length": b"1x\n{}",
            "no-length": b"\n{}",
            "oversize": b"%d\n{\"type\":\"HEARTBEAT\"}" % int(size or 2 ** 40),
            "bad-json": b'19\n{"type":"HEARTBEAT"',
            "empty-record": b"0\n",
        }
        if kind not in frames and kind != "truncate":
            raise ValueError("unknown malformed kind %r" % kind)
        with self._lock:
            streams = [fw.stream for fw in self._target_frameworks(framework_id) if fw.stream]
        for s in streams:
            if kind == "truncate":
                s.truncate(heartbeat[:len(heartbeat) // 2])
            else:
                s.push(frames[kind], kind="raw")
        return len(streams)

    def remove_framework(self, framework_id=None):
        """The failover timeout expires (or an operator tears the framework
        down): tasks are killed silently, the stream (if any) ends without an
        event, and a later SUBSCRIBE with this id gets ERROR 'Framework has
        been removed'."""
        with self._lock:
            removed = []
            for fw in self._target_frameworks(framework_id):
                self._remove_framework(fw, "removed by the simulator")
                removed.append(fw.id)
            return removed

    def send_error(self, message="Framework failed over", framework_id=None, close=True):
        """Send an ERROR event (terminal for the subscription) and end it."""
        with self._lock:
            frameworks = [fw for fw in self._target_frameworks(framework_id) if fw.stream]
            for fw in frameworks:
                stream = fw.stream
                self._send(fw, {"type": "ERROR", "error": {"message": message}})
                if close:
                    stream.end()
            return len(frameworks)

    def rescind_offers(self, offer_id=None, framework_id=None):
        """RESCIND outstanding offers (one, one framework's, or all)."""
        with self._lock:
            offers = [o for o in self._offers.values()
                      if (offer_id is None or o.id == offer_id)
                      and (framework_id is None or o.framework_id == framework_id)]
            for o in offers:
                self._remove_offer(o, "rescinded by the simulator", rescind=True)
            return [o.id for o in offers]

    def allocate_now(self):
        with self._lock:
            self._allocate()

    def configure(self, **knobs):
        """Change timing knobs at run time (heartbeat, offer_interval,
        resend_interval, resend_backoff, task_start_delay, health_delay,
        kill_delay, subscribed_delay, reregister_delay, agent_lost_delay,
        offer_timeout, max_failover_timeout, chunking)."""
        allowed = {"heartbeat", "advertised_heartbeat", "offer_interval", "resend_interval",
                   "resend_backoff", "resend_max", "task_start_delay", "health_delay",
                   "kill_delay", "subscribed_delay", "reregister_delay", "agent_lost_delay",
                   "offer_timeout", "max_failover_timeout", "max_offers_per_event", "chunking"}
        with self._lock:
            for key, value in knobs.items():
                if key not in allowed:
                    raise KeyError("unknown knob %s" % key)
                setattr(self, key, value)

    # ============================================================== queries

    def violations(self, since=0, kind=None, severity=None):
        with self._lock:
            return [dict(v) for v in self._violations
                    if v["seq"] > since and (kind is None or v["kind"] == kind)
                    and (severity is None or v["severity"] == severity)]

    def reset_violations(self):
        with self._lock:
            self._violations.clear()

    def calls(self, since=0, type=None):
        with self._lock:
            return [dict(c) for c in self._calls
                    if c["seq"] > since and (type is None or c["type"] == type)]

    def reset_calls(self):
        with self._lock:
            self._calls.clear()
            self._call_counts.clear()
            self._status_counts.clear()

    def events(self, since=0, type=None, framework_id=None):
        with self._lock:
            return [dict(e) for e in self._events
                    if e["seq"] > since and (type is None or e["type"] == type)
                    and (framework_id is None or e["framework_id"] == framework_id)]

    def reset_events(self):
        with self._lock:
            self._events.clear()

    def unacked_updates(self, older_than=0.0):
        """Status updates with a uuid still waiting for an ACKNOWLEDGE."""
        now = _mono()
        out = []
        with self._lock:
            for agent in self._agents.values():
                for task in agent.tasks.values():
                    for i, u in enumerate(task.pending):
                        if i == 0 and u.first_sent is not None:
                            age = now - u.first_sent
                        else:
                            age = 0.0
                        if i == 0 and u.first_sent is not None and age >= older_than:
                            out.append(collections.OrderedDict([
                                ("framework_id", task.framework_id), ("task_id", task.task_id),
                                ("agent_id", task.agent_id), ("state", u.state),
                                ("uuid", b64(u.uuid)), ("age_seconds", round(age, 3)),
                                ("sends", u.sends), ("queued_behind", len(task.pending) - 1)]))
        return out

    def check_unacked(self, older_than=0.0):
        """Record an 'unacked_update' violation for every update sent more
        than `older_than` seconds ago and still not acknowledged."""
        found = self.unacked_updates(older_than)
        for u in found:
            self._violation("unacked_update", "%s of task %s (uuid %s) sent %.1f s ago, %d "
                            "time(s), never acknowledged" % (u["state"], u["task_id"], u["uuid"],
                                                             u["age_seconds"], u["sends"]),
                            framework_id=u["framework_id"])
        return found

    def check_offers(self, older_than=10.0):
        """Record an 'offer_hoarded' violation for every offer held longer
        than `older_than` seconds without ACCEPT or DECLINE (the master has
        no offer timeout by default, so hoarded offers starve everyone)."""
        now = _mono()
        with self._lock:
            old = [o for o in self._offers.values() if now - o.created >= older_than]
            for o in old:
                self._violation("offer_hoarded", "offer %s (agent %s) held for %.1f s without "
                                "ACCEPT or DECLINE" % (o.id, o.agent_id, now - o.created),
                                framework_id=o.framework_id)
            return [o.id for o in old]

    def wait_until(self, predicate, timeout=5.0, interval=0.02):
        """Poll predicate() until it is truthy; return its value (or None)."""
        deadline = _mono() + timeout
        while True:
            value = predicate()
            if value or _mono() >= deadline:
                return value
            time.sleep(interval)

    def framework_ids(self):
        with self._lock:
            return list(self._frameworks)

    def agent_ids(self):
        with self._lock:
            return list(self._agents)

    def state(self, include_agents=True):
        """A summary of everything the simulator holds (GET /sim/state)."""
        now = _mono()
        with self._lock:
            frameworks = []
            for fw in self._frameworks.values():
                frameworks.append(collections.OrderedDict([
                    ("id", fw.id), ("name", fw.name), ("active", fw.active),
                    ("connected", fw.connected), ("recovered", fw.recovered),
                    ("roles", fw.roles), ("capabilities", fw.capabilities),
                    ("suppressed_roles", sorted(fw.suppressed)),
                    ("failover_timeout", fw.failover_timeout),
                    ("subscriptions", fw.subscriptions),
                    ("stream_id", fw.stream.id if fw.stream else None),
                    ("tasks", len(fw.tasks)), ("unreachable_tasks", len(fw.unreachable_tasks)),
                    ("completed_tasks", len(fw.completed_tasks)), ("offers", len(fw.offers)),
                    ("filters", len(fw.filters))]))
            tasks = []
            for fw in self._frameworks.values():
                for group, items in (("active", fw.tasks.values()),
                                     ("unreachable", fw.unreachable_tasks.values())):
                    for t in items:
                        tasks.append(collections.OrderedDict([
                            ("framework_id", fw.id), ("task_id", t.task_id), ("name", t.name),
                            ("agent_id", t.agent_id), ("state", t.state),
                            ("forwarded_state", t.status_update_state), ("healthy", t.healthy),
                            ("where", group), ("pending_updates", len(t.pending))]))
            out = collections.OrderedDict([
                ("master_id", self.master_id), ("port", self.port),
                ("leader", self._leader or "self"), ("recovering", self._recovering),
                ("heartbeats_paused", self._heartbeats_paused), ("silenced", self._silenced),
                ("auth", self._auth is not None),
                ("subscriptions", self.subscriptions),
                ("open_streams", len(self._streams)),
                ("frameworks", frameworks),
                ("removed_frameworks", list(self._removed_ids)),
                ("tasks", tasks),
                ("offers", [collections.OrderedDict([
                    ("id", o.id), ("framework_id", o.framework_id), ("agent_id", o.agent_id),
                    ("role", o.role), ("age_seconds", round(now - o.created, 3)),
                    ("resources", res_summary(o.resources))]) for o in self._offers.values()]),
                ("pending_updates", self.unacked_updates()),
                ("call_counts", dict(self._call_counts)),
                ("status_counts", dict(self._status_counts)),
                ("event_counts", dict(self._event_counts)),
                ("violations", len(self._violations)),
                ("internal_errors", len(self._errors)),
                ("agent_count", len(self._agents)),
            ])
            if include_agents:
                out["agents"] = [collections.OrderedDict([
                    ("id", a.id), ("hostname", a.hostname), ("state", a.state),
                    ("registered", a.registered), ("connected", a.connected),
                    ("total", res_summary(a.total)), ("used", res_summary(a.used)),
                    ("offered", res_summary(a.offered)), ("free", res_summary(a.free())),
                    ("tasks", len(a.tasks))]) for a in self._agents.values()]
            return out

    # =================================================== operator endpoints
    # The legacy JSON model of readonly_handler.cpp (what mesos-cli reads).

    def _task_json(self, task):
        out = collections.OrderedDict([
            ("id", task.task_id), ("name", task.name), ("framework_id", task.framework_id),
            ("executor_id", task.executor_id or ""), ("slave_id", task.agent_id),
            ("state", task.state), ("resources", res_summary(task.resources)),
            ("role", task.role), ("statuses", list(task.statuses))])
        info = task.info
        if "labels" in info and info["labels"].get("labels"):
            out["labels"] = [jsonify("Label", lb) for lb in info["labels"]["labels"]]
        for key, mname in (("discovery", "DiscoveryInfo"), ("container", "ContainerInfo"),
                           ("health_check", "HealthCheck")):
            if key in info:
                out[key] = jsonify(mname, info[key])
        return out

    def _framework_json(self, fw):
        used = res_sum(*[t.resources for t in fw.tasks.values() if not t.released])
        offered = res_sum(*[o.resources for o in fw.offers.values()])
        out = collections.OrderedDict([
            ("id", fw.id), ("name", fw.name), ("used_resources", res_summary(used)),
            ("offered_resources", res_summary(offered)), ("capabilities", fw.capabilities),
            ("hostname", fw.info.get("hostname", "")),
            ("webui_url", fw.info.get("webui_url", "")), ("active", fw.active),
            ("connected", fw.connected), ("recovered", fw.recovered),
            ("user", fw.user), ("failover_timeout", float(fw.failover_timeout)),
            ("checkpoint", fw.info.get("checkpoint", False)),
            ("registered_time", fw.registered_time),
            ("unregistered_time", float(fw.unregistered_time))])
        if fw.principal is not None:
            out["principal"] = fw.principal
        out["resources"] = res_summary(res_sum(used, offered))
        if fw.reregistered_time != fw.registered_time:
            out["reregistered_time"] = fw.reregistered_time
        if fw.multi_role:
            out["roles"] = fw.roles
        else:
            out["role"] = fw.roles[0]
        out["tasks"] = [self._task_json(t) for t in fw.tasks.values()]
        out["unreachable_tasks"] = [self._task_json(t) for t in fw.unreachable_tasks.values()]
        out["completed_tasks"] = [self._task_json(t) for t in fw.completed_tasks]
        out["offers"] = [collections.OrderedDict([
            ("id", o.id), ("framework_id", fw.id), ("allocation_info", {"role": o.role}),
            ("slave_id", o.agent_id), ("resources", res_summary(o.resources))])
            for o in fw.offers.values()]
        executors = []
        for agent in self._agents.values():
            for eid, ex in agent.executors.get(fw.id, {}).items():
                executors.append(collections.OrderedDict([
                    ("executor_id", eid), ("name", ex.get("name", "")),
                    ("framework_id", fw.id), ("slave_id", agent.id),
                    ("resources", res_summary(agent.executor_res.get((fw.id, eid), [])))]))
        out["executors"] = executors
        if fw.info.get("labels", {}).get("labels"):
            out["labels"] = [jsonify("Label", lb) for lb in fw.info["labels"]["labels"]]
        out["offer_constraints"] = jsonify("OfferConstraints", fw.offer_constraints) \
            if fw.offer_constraints else {}
        return out

    def _agent_json(self, agent, full=False):
        out = collections.OrderedDict([
            ("id", agent.id), ("hostname", agent.hostname), ("port", agent.port),
            ("attributes", agent.attributes_map()),
            ("pid", "slave(1)@%s:%d" % (agent.ip, agent.port)),
            ("registered_time", agent.registered_time)])
        if agent.reregistered_time is not None:
            out["reregistered_time"] = agent.reregistered_time
        out["resources"] = res_summary(agent.total)
        out["used_resources"] = res_summary(agent.used)
        out["offered_resources"] = res_summary(agent.offered)
        out["reserved_resources"] = {}
        out["unreserved_resources"] = res_summary(agent.total)
        out["active"] = agent.connected and agent.state == "active"
        out["deactivated"] = False
        out["version"] = MESOS_VERSION
        out["capabilities"] = ["MULTI_ROLE", "HIERARCHICAL_ROLE", "RESERVATION_REFINEMENT",
                               "RESOURCE_PROVIDER", "RESIZE_VOLUME", "AGENT_OPERATION_FEEDBACK",
                               "AGENT_DRAINING", "TASK_RESOURCE_LIMITS"]
        if full:
            out["reserved_resources_full"] = {}
            out["unreserved_resources_full"] = [r.to_json(False) for r in agent.total]
            out["used_resources_full"] = [r.to_json(True) for r in agent.used]
            out["offered_resources_full"] = [r.to_json(True) for r in agent.offered]
        return out

    def _completed_framework_json(self, fw):
        out = self._framework_json(fw)
        out["active"] = False
        out["connected"] = False
        return out

    def operator_frameworks(self, framework_id=None):
        with self._lock:
            frameworks = [f for f in self._frameworks.values()
                          if framework_id is None or f.id == framework_id]
            completed = [f for f in self._completed_frameworks
                         if framework_id is None or f.id == framework_id]
            return collections.OrderedDict([
                ("frameworks", [self._framework_json(f) for f in frameworks]),
                ("completed_frameworks", [self._completed_framework_json(f) for f in completed]),
                ("unregistered_frameworks", [])])

    def operator_state(self):
        with self._lock:
            registered = [a for a in self._agents.values() if a.registered]
            pid = "master@%s:%d" % (self.host, self.port)
            return collections.OrderedDict([
                ("version", MESOS_VERSION), ("build_date", "mesos-sim"),
                ("build_time", self.start_time), ("build_user", ""),
                ("start_time", self.start_time), ("elected_time", self.elected_time),
                ("id", self.master_id), ("pid", pid), ("hostname", self.hostname),
                ("capabilities", ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"]),
                ("activated_slaves", float(sum(1 for a in registered
                                               if a.connected and a.state == "active"))),
                ("deactivated_slaves", 0.0),
                ("unreachable_slaves", float(sum(1 for a in registered
                                                 if a.state == "unreachable"))),
                ("leader", pid),
                ("leader_info", collections.OrderedDict([
                    ("id", self.master_id), ("pid", pid), ("port", self.port),
                    ("hostname", self.hostname)])),
                ("flags", {}),
                ("slaves", [self._agent_json(a) for a in registered if a.state == "active"]),
                ("recovered_slaves", []),
                ("frameworks", [self._framework_json(f) for f in self._frameworks.values()]),
                ("completed_frameworks", [self._completed_framework_json(f)
                                          for f in self._completed_frameworks]),
                ("orphan_tasks", []), ("unregistered_frameworks", [])])

    def operator_slaves(self, slave_id=None):
        with self._lock:
            return collections.OrderedDict([
                ("slaves", [self._agent_json(a, full=True) for a in self._agents.values()
                            if a.registered and a.state == "active"
                            and (slave_id is None or a.id == slave_id)]),
                ("recovered_slaves", [])])

    def operator_tasks(self, framework_id=None, task_id=None, limit=100, offset=0,
                       order="desc"):
        with self._lock:
            tasks = []
            for fw in list(self._frameworks.values()) + list(self._completed_frameworks):
                if framework_id is not None and fw.id != framework_id:
                    continue
                for t in list(fw.tasks.values()) + list(fw.unreachable_tasks.values()) + \
                        list(fw.completed_tasks):
                    if task_id is None or t.task_id == task_id:
                        tasks.append(t)
            tasks.sort(key=lambda t: t.statuses[0]["timestamp"] if t.statuses else 0,
                       reverse=(order != "asc"))
            if limit >= 0:
                tasks = tasks[offset:offset + limit]
            else:
                tasks = tasks[offset:]
            return {"tasks": [self._task_json(t) for t in tasks]}

    # ====================================================== control API table

    _CONTROL = {
        # POST /sim/<name> -> method
        "drop-stream": "drop_stream",
        "pause-heartbeats": "pause_heartbeats",
        "resume-heartbeats": "resume_heartbeats",
        "silence": "silence",
        "restart": "restart",
        "redirect": "redirect",
        "no-leader": "no_leader",
        "recovering": "set_recovering",
        "fail-subscribes": "fail_next_subscribes",
        "require-auth": "require_auth",
        "disable-auth": "disable_auth",
        "launch-task": "launch_task",
        "fail-task": "fail_task",
        "finish-task": "finish_task",
        "lose-task": "lose_task",
        "task-health": "set_task_health",
        "task-behavior": "add_task_behavior",
        "clear-task-behaviors": "clear_task_behaviors",
        "lose-agent": "lose_agent",
        "restore-agent": "restore_agent",
        "malformed": "send_malformed",
        "remove-framework": "remove_framework",
        "error": "send_error",
        "rescind": "rescind_offers",
        "allocate": "allocate_now",
        "configure": "configure",
        "check-unacked": "check_unacked",
        "check-offers": "check_offers",
        "reset-violations": "reset_violations",
        "reset-calls": "reset_calls",
        "reset-events": "reset_events",
        "k3s-node-ready": "set_k3s_node_ready",
        "k3s-put-pod": "k3s_put_pod",
        "k3s-delete-pod": "k3s_delete_pod",
        "k3s-pdb": "k3s_add_pdb",
        "k3s-clear-pdbs": "k3s_clear_pdbs",
        "k3s-evict-grace": "k3s_evict_grace",
        "k3s-api": "set_k3s_api_up",
    }

    def _k3s_or_fail(self):
        if self._k3s is None:
            raise ValueError("the simulator runs without --k3s")
        return self._k3s

    def k3s_put_pod(self, **kw):
        """(k3s) A pod on a node: namespace, name, node[, daemonset, mirror,
        labels, prefix]."""
        return self._k3s_or_fail().put_pod(**kw)

    def k3s_delete_pod(self, **kw):
        """(k3s) Removes a pod at once: namespace, name[, prefix]."""
        return self._k3s_or_fail().delete_pod(**kw)

    def k3s_add_pdb(self, **kw):
        """(k3s) A PodDisruptionBudget: namespace, selector (labels)[,
        max_unavailable, min_available, refuse_for (s), refuse_count,
        name, prefix]; see fake_k3s.FakeK3s.add_pdb."""
        return self._k3s_or_fail().add_pdb(**kw)

    def k3s_clear_pdbs(self, **kw):
        """(k3s) Removes every PodDisruptionBudget[, prefix]."""
        return self._k3s_or_fail().clear_pdbs(**kw)

    def k3s_evict_grace(self, **kw):
        """(k3s) seconds an evicted pod takes to go[, prefix]."""
        return self._k3s_or_fail().set_evict_grace(**kw)

    def set_k3s_node_ready(self, node=None, task_id=None, ready=True):
        """(k3s) A node, by name or by its task, turns Ready or NotReady."""
        if self._k3s is None:
            raise ValueError("the simulator runs without --k3s")
        return self._k3s.set_ready(node, task_id, ready)

    def set_k3s_api_up(self, up=True, prefix=None):
        """(k3s) The K3s API stops listening (up false) or listens again,
        the server task and its nodes unchanged; see K3sSim.set_api_up."""
        return self._k3s_or_fail().set_api_up(bool(up), prefix)

    def k3s_state(self):
        """(k3s) Clusters, their nodes and listeners, tasks and errors."""
        return self._k3s.state() if self._k3s else {"simulated": False}

    def _control(self, handler, name, query, body):
        """JSON over HTTP: POST /sim/<name> with keyword arguments as a JSON
        object; GET /sim/state|violations|calls|events|unacked."""
        def arg(key, conv=str, default=None):
            values = query.get(key)
            return conv(values[0]) if values else default
        if handler.command == "GET":
            if name == "state":
                return 200, self.state(include_agents=arg("agents", str, "1") != "0")
            if name == "violations":
                return 200, self.violations(arg("since", int, 0), arg("kind"), arg("severity"))
            if name == "calls":
                return 200, self.calls(arg("since", int, 0), arg("type"))
            if name == "events":
                return 200, self.events(arg("since", int, 0), arg("type"), arg("framework_id"))
            if name == "unacked":
                return 200, self.unacked_updates(arg("older_than", float, 0.0))
            if name == "errors":
                return 200, list(self._errors)
            if name == "k3s":
                return 200, self.k3s_state()
            return 404, {"error": "unknown query %s" % name}
        if handler.command != "POST":
            return 405, {"error": "use GET for queries and POST for actions"}
        if name not in self._CONTROL:
            return 404, {"error": "unknown action %s" % name,
                         "actions": sorted(self._CONTROL)}
        try:
            kwargs = json.loads(body.decode("utf-8")) if body.strip() else {}
            if not isinstance(kwargs, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError as e:
            return 400, {"error": "bad JSON body: %s" % e}
        method = getattr(self, self._CONTROL[name])
        if name in ("silence", "no-leader", "recovering") and "enabled" not in kwargs:
            kwargs["enabled"] = True
        try:
            result = method(**kwargs)
        except (KeyError, ValueError, TypeError) as e:
            return 400, {"error": str(e)}
        return 200, {"ok": True, "result": result}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mesos-sim"
    expect_100 = False

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("mesos-sim: " + (fmt % args) + "\n")

    def parse_request(self):
        self.expect_100 = False
        return super().parse_request()

    def handle_expect_100(self):
        # libprocess never sends "100 Continue": remember it, stay silent.
        self.expect_100 = True
        return True

    MAX_BODY = 64 * 1024 * 1024  # keeps memory bounded whatever a client sends

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            data = bytearray()
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                if len(data) + size > self.MAX_BODY:
                    raise ValueError("request body over %d bytes" % self.MAX_BODY)
                data += self.rfile.read(size)
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.MAX_BODY:
            raise ValueError("request body over %d bytes" % self.MAX_BODY)
        return self.rfile.read(length) if length > 0 else b""

    def _write(self, status, body=b"", headers=(), content_type=None):
        if isinstance(body, str):
            body = _sx(body)
        self.send_response_only(status)
        self.send_header("Date", formatdate(usegmt=True))
        for k, v in headers:
            self.send_header(k, v)
        if body and content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status, obj):
        self._write(status, _dumps(obj).encode("utf-8"), content_type="application/json")

    def _dispatch(self):
        sim = self.server.sim
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        try:
            self._route(sim, body)
        except OSError:
            self.close_connection = True
        except Exception:
            # A simulator bug must be visible, not a silently reset connection.
            text = traceback.format_exc()
            sim._internal_error(text)
            self.close_connection = True
            try:
                self._write(500, "mesos-sim internal error:\n" + text, (),
                            "text/plain; charset=utf-8")
            except OSError:
                pass

    def _route(self, sim, body):
        parts = urlsplit(self.path)
        path = parts.path.rstrip("/") or "/"
        query = parse_qs(parts.query)
        if path in ("/api/v1/scheduler", "/master/api/v1/scheduler"):
            return self._scheduler(sim, body)
        if path.startswith("/sim/"):
            status, obj = sim._control(self, path[5:], query, body)
            return self._json(status, obj)
        if sim._leader not in (None, "none") and (path.startswith("/master/") or path in (
                "/frameworks", "/state", "/slaves", "/tasks", "/redirect")):
            location = "//" + sim._leader
            if path not in ("/redirect", "/master/redirect"):
                location += self.path if self.path.startswith("/master") else "/master" + self.path
            return self._write(307, b"", [("Location", location)])
        if path in ("/redirect", "/master/redirect"):
            return self._write(307, b"", [("Location", "//%s:%d" % (sim.hostname, sim.port))])

        def one(key, conv=str, default=None):
            values = query.get(key)
            return conv(values[0]) if values else default
        if self.command not in ("GET", "HEAD"):
            if path in ("/master/frameworks", "/frameworks", "/master/state", "/state",
                        "/master/slaves", "/slaves", "/master/tasks", "/tasks"):
                return self._write(405, "405 Method Not Allowed. Expecting one of { 'GET' }, "
                                        "but received '%s'." % self.command,
                                   [("Allow", "GET")], "text/plain; charset=utf-8")
        if path in ("/master/frameworks", "/frameworks"):
            return self._json(200, sim.operator_frameworks(one("framework_id")))
        if path in ("/master/state", "/state"):
            return self._json(200, sim.operator_state())
        if path in ("/master/slaves", "/slaves"):
            return self._json(200, sim.operator_slaves(one("slave_id")))
        if path in ("/master/tasks", "/tasks"):
            return self._json(200, sim.operator_tasks(one("framework_id"), one("task_id"),
                                                      one("limit", int, 100),
                                                      one("offset", int, 0),
                                                      one("order", str, "desc")))
        self._write(404, b"")

    def _scheduler(self, sim, body):
        reply = sim._scheduler(self, body)
        if reply.stream is None:
            headers = list(reply.headers)
            return self._write(reply.status, reply.body, headers,
                               "text/plain; charset=utf-8" if reply.body else None)
        stream = reply.stream
        sim._open_stream(stream)
        self.close_connection = True
        try:
            self.send_response_only(200)
            self.send_header("Date", formatdate(usegmt=True))
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Mesos-Stream-Id", stream.id)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
        except OSError:
            stream.abort()
            sim._on_stream_closed(stream)
            return
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sim._begin_subscribe(stream, reply.call, reply.principal)
        stream.run(self.connection)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _dispatch


# ---------------------------------------------------------------------------
# Command line.
# ---------------------------------------------------------------------------

def _build_arg_parser():
    p = argparse.ArgumentParser(description="Strict Mesos 1.11 master simulator (loopback only).")
    p.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    p.add_argument("--port", type=int, default=5050, help="0 picks a free port")
    p.add_argument("--agents", type=int, default=3, help="number of simulated agents")
    p.add_argument("--cpus", type=float, default=8.0)
    p.add_argument("--mem", type=float, default=16384.0, help="MB per agent")
    p.add_argument("--disk", type=float, default=100000.0, help="MB per agent")
    p.add_argument("--ports", default="31000-32000", help="port ranges, e.g. 31000-31099,31200-32000")
    p.add_argument("--attributes", default="",
                   help="agent attributes, e.g. 'rack:r{i};ssd:1' ({i} = agent index)")
    p.add_argument("--agent-hostname", default="agent-{i}.mesos-sim",
                   help="hostname pattern ({i} = agent index)")
    p.add_argument("--agents-json", help="JSON file: a list of per-agent specs (hostname, cpus, "
                                         "mem, disk, ports, attributes, docker, port)")
    p.add_argument("--no-docker", action="store_true",
                   help="agents without the docker containerizer (DOCKER tasks fail)")
    p.add_argument("--heartbeat", type=float, default=15.0, help="seconds between HEARTBEATs")
    p.add_argument("--advertised-heartbeat", type=float, default=None,
                   help="heartbeat_interval_seconds sent in SUBSCRIBED (default: --heartbeat)")
    p.add_argument("--offer-interval", type=float, default=1.0,
                   help="allocation interval: unused resources are re-offered this often")
    p.add_argument("--resend-interval", type=float, default=10.0,
                   help="first re-send of an unacknowledged update (then doubling)")
    p.add_argument("--no-resend-backoff", action="store_true", help="re-send at a fixed interval")
    p.add_argument("--task-start-delay", type=float, default=0.05)
    p.add_argument("--health-delay", type=float, default=0.2)
    p.add_argument("--subscribed-delay", type=float, default=0.0,
                   help="delay between the 200 head and SUBSCRIBED (calls in between are flagged)")
    p.add_argument("--reregister-delay", type=float, default=5.0,
                   help="agents re-register this long after a simulated master restart")
    p.add_argument("--agent-lost-delay", type=float, default=0.0,
                   help="lost agent: delay between RESCIND and TASK_LOST/FAILURE (real: ~6-75 s)")
    p.add_argument("--offer-timeout", type=float, default=None)
    p.add_argument("--max-offers-per-event", type=int, default=0)
    p.add_argument("--max-failover-timeout", type=float, default=None,
                   help="cap every framework's failover_timeout (fast tests)")
    p.add_argument("--chunking", choices=("random", "record"), default="random")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--hostname", default=None, help="master hostname (MasterInfo, redirects)")
    p.add_argument("--auth", default=None, help="principal:secret for HTTP Basic auth")
    p.add_argument("--tls-cert", default=None, help="PEM certificate: serve https")
    p.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")
    p.add_argument("--k3s", action="store_true",
                   help="server and agent tasks act as K3s containers (k3s_sim.py)")
    p.add_argument("--k3s-config-delay", type=float, default=0.5,
                   help="server RUNNING to its kubeconfig in Redis")
    p.add_argument("--k3s-node-delay", type=float, default=0.5,
                   help="task RUNNING to its node registered (NotReady)")
    p.add_argument("--k3s-ready-delay", type=float, default=1.0,
                   help="node registered to Ready; negative: only k3s-node-ready")
    p.add_argument("--verbose", action="store_true")
    return p


def main(argv=None):
    args = _build_arg_parser().parse_args(argv)
    specs = None
    if args.agents_json:
        with open(args.agents_json) as f:
            specs = json.load(f)
    sim = MesosSim(
        host=args.host, port=args.port, agents=args.agents, cpus=args.cpus, mem=args.mem,
        disk=args.disk, ports=args.ports, attributes=args.attributes,
        agent_hostname=args.agent_hostname, agent_specs=specs, docker=not args.no_docker,
        heartbeat=args.heartbeat, advertised_heartbeat=args.advertised_heartbeat,
        offer_interval=args.offer_interval, resend_interval=args.resend_interval,
        resend_backoff=not args.no_resend_backoff, task_start_delay=args.task_start_delay,
        health_delay=args.health_delay, subscribed_delay=args.subscribed_delay,
        reregister_delay=args.reregister_delay, agent_lost_delay=args.agent_lost_delay,
        offer_timeout=args.offer_timeout, max_offers_per_event=args.max_offers_per_event,
        max_failover_timeout=args.max_failover_timeout, chunking=args.chunking, seed=args.seed,
        hostname=args.hostname, auth=args.auth, verbose=args.verbose,
        tls=(args.tls_cert, args.tls_key) if args.tls_cert else None, k3s=args.k3s,
        k3s_config_delay=args.k3s_config_delay, k3s_node_delay=args.k3s_node_delay,
        k3s_ready_delay=None if args.k3s_ready_delay < 0 else args.k3s_ready_delay)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()
    # Before the line that says it is up: a caller may signal right after.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sim.start()
    sys.stdout.write("listening on %s:%d\n" % (sim.host, sim.port))
    sys.stdout.flush()
    while not done.wait(0.5):
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
