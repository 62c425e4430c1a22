#!/usr/bin/env python3
"""Validates the LAUNCH operations dumped by check_taskinfo (M3S_TASKINFO_DUMP)
against the Mesos simulator's strict protobuf schema and task checks.

Usage: validate_taskinfo.py <dump dir>

For every <dir>/*.json (one Offer.Operation each) it fails on:
  - a duplicate JSON key;
  - any ProtoConverter note (unknown field, unknown enum value, numeric
    string, object for a repeated field, non-integral number, ...) or
    ConversionError (JSON type error);
  - a missing required field (protobuf's InitializationErrorString);
  - what the master's task validation and the docker containerizer would
    refuse: invalid resources, more than one allocation role, health check
    without/with an invalid type, invalid environment, invalid container,
    limits other than cpus/mem or below the request, port mappings outside
    the ports resource or with a HOST network, USER network without exactly
    one network info, shell without a command value.
Exit status 0 only when at least one file was checked and all passed.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "mesos_sim"))

import mesos_sim  # noqa: E402
from mesos_sim import (ConversionError, ProtoConverter, missing_required,  # noqa: E402
                       resource_error)


def _no_dup_pairs(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError("duplicate JSON key %r" % k)
        seen[k] = v
    return seen


def _docker_errors(ti):
    """MesosSim._docker_error on the proto value of one TaskInfo."""
    container = ti.get("container", {})
    if container.get("type") != "DOCKER":
        return ["container type is not DOCKER"]
    errs = []
    docker = container.get("docker", {})
    network = docker.get("network", "HOST")
    mappings = docker.get("port_mappings", [])
    if mappings and network not in ("BRIDGE", "USER"):
        errs.append("Port mappings are only supported for bridge and user-defined networks")
    ranges = []
    for r in ti.get("resources", []):
        if r.get("name") == "ports" and r.get("type") == "RANGES":
            ranges += [(x.get("begin", 0), x.get("end", 0)) for x in r["ranges"].get("range", [])]
    for m in mappings:
        hp = m["host_port"]
        if not any(b <= hp <= e for b, e in ranges):
            errs.append("Port [%d] not included in resources" % hp)
    if network == "USER" and len(container.get("network_infos", [])) != 1:
        errs.append("Exactly one network info is required for USER network")
    if container.get("hostname") and network == "HOST":
        errs.append("Unable to set hostname with host network mode")
    command = ti.get("command", {})
    if command.get("shell", True) and "value" not in command:
        errs.append("Shell specified but no command value provided")
    return errs


def _task_errors(ti):
    """The parts of the master's validateTask a TaskInfo alone decides."""
    errs = []
    if ("command" in ti) == ("executor" in ti):
        errs.append("exactly one of command and executor must be set")
    hc = ti.get("health_check")
    if hc is not None:
        if "type" not in hc:
            errs.append("health_check without 'type' (the master would infer it)")
        err = mesos_sim._health_error(hc)
        if err:
            errs.append("invalid health check: " + err)
    resources = ti.get("resources", [])
    if not resources:
        errs.append("Task uses no resources")
    roles = set()
    for r in resources:
        err = resource_error(r)
        if err:
            errs.append("invalid resource %s: %s" % (r.get("name"), err))
        if "role" in r:
            errs.append("resource %s sets 'role' (MULTI_ROLE frameworks must not)" % r.get("name"))
        roles.add(r.get("allocation_info", {}).get("role"))
    if len(roles) > 1:
        errs.append("resources have several allocation roles: %r" % sorted(map(str, roles)))
    if "command" in ti:
        err = mesos_sim._env_error(ti["command"])
        if err:
            errs.append("invalid CommandInfo: " + err)
    if "container" in ti:
        err = mesos_sim._container_error(ti["container"])
        if err:
            errs.append("invalid ContainerInfo: " + err)
    limits = ti.get("limits", {})
    if set(limits) - {"cpus", "mem"}:
        errs.append("limits other than cpus/mem")
    totals = {}
    for r in resources:
        if r.get("type") == "SCALAR":
            totals[r["name"]] = totals.get(r["name"], 0.0) + r["scalar"]["value"]
    for name in ("cpus", "mem"):
        if name in limits and limits[name].get("value", 0.0) < totals.get(name, 0.0):
            errs.append("%s limit below the request" % name)
    errs += _docker_errors(ti)
    return errs


def validate_file(path):
    with open(path) as f:
        obj = json.load(f, object_pairs_hook=_no_dup_pairs)
    conv = ProtoConverter()
    try:
        op = conv.convert("Offer.Operation", obj)
    except ConversionError as e:
        return ["conversion error: %s" % e]
    errs = ["%s at %s: %s" % (kind, p, msg) for kind, p, msg in conv.notes]
    errs += ["missing required field " + m for m in missing_required("Offer.Operation", op)]
    if op.get("type") != "LAUNCH":
        errs.append("operation type is not LAUNCH")
    tasks = op.get("launch", {}).get("task_infos", [])
    if not tasks:
        errs.append("no task_infos")
    for ti in tasks:
        errs += ["task %s: %s" % (ti.get("task_id", {}).get("value"), e)
                 for e in _task_errors(ti)]
    return errs


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: %s <dump dir>\n" % argv[0])
        return 2
    files = sorted(f for f in os.listdir(argv[1]) if f.endswith(".json"))
    if not files:
        sys.stderr.write("no *.json files in %s\n" % argv[1])
        return 1
    failed = 0
    for name in files:
        try:
            errs = validate_file(os.path.join(argv[1], name))
        except (ValueError, OSError) as e:
            errs = [str(e)]
        if errs:
            failed += 1
            for e in errs:
                print("FAIL %s: %s" % (name, e))
        else:
            print("ok   %s" % name)
    print("%d file(s), %d failed" % (len(files), failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
