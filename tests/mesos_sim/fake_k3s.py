#!/usr/bin/env python3
"""A fake K3s API server for the daemon's Kubernetes actor (Python standard
library only, plus the openssl command line for throwaway certificates).

- TLS with its own CA; the client certificate is required and checked
  against that CA (ssl.CERT_REQUIRED), as K3s does for the admin kubeconfig.
- GET /api/v1/nodes: a NodeList with metadata.resourceVersion.
- GET /api/v1/nodes?watch=1&resourceVersion=N: newline-delimited watch
  events after N (chunked), then new ones as the test makes them, until the
  test ends the watches or timeoutSeconds passes. A resourceVersion older
  than the last compaction gets an ERROR event with code 410, as the real
  API server does; `gone_http` makes the next watch a plain HTTP 410.
- GET /api/v1/nodes/<name>; PATCH and DELETE of it, applied and recorded.
- Pods on nodes (put_pod, delete_pod, pods_on): GET /api/v1/pods (a
  PodList; fieldSelector spec.nodeName=<node> honoured),
  GET /api/v1/namespaces/<ns>/pods and .../pods/<name>.
- The Eviction API: POST /api/v1/namespaces/<ns>/pods/<name>/eviction
  with a policy/v1 (or v1beta1) Eviction: 201 and a Success Status, the
  pod marked for deletion (deletionTimestamp) and removed after
  `evict_grace` seconds; 404 for an unknown pod; 429 with the API server's
  TooManyRequests Status when a PodDisruptionBudget (add_pdb) refuses.
  Every eviction is recorded in `evictions` with the pod's node and
  whether that node was unschedulable at that moment.
- What kubectl needs to list nodes: /version, /api, /apis, /api/v1 (the
  legacy discovery documents) and a meta.k8s.io Table when the client asks
  for one (`kubectl get nodes`); /readyz, /livez and /healthz answer "ok".
Every request is recorded in `requests` (method, path, query, host, body).

The project's one fake K3s API: test_kube.py drives it directly, the
Mesos simulator (k3s_sim.py) runs it for its K3s server tasks, and the e2e
tier's K3s stand-in image (tests/e2e/images/k3s-standin) runs it in its
container. In the tests it listens on loopback addresses only, on one or
more (host, port) pairs.
"""
import base64
import calendar
import copy
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


def _is_ip(host):
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class Certs:
    """A throwaway CA, a server certificate for localhost/127.0.0.1 (and
    the extra host names or addresses in `sans`), a client certificate it
    signed and one signed by another CA."""

    def __init__(self, sans=()):
        self.dir = tempfile.mkdtemp(prefix="m3s-k3s-tls-")
        d = self.path
        for ca in ("ca", "other-ca"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-days", "1", "-subj", "/CN=k3s-%s" % ca,
                     "-keyout", d(ca + ".key"), "-out", d(ca + ".crt"))
        ext = d("server.ext")
        with open(ext, "w") as f:
            names = ["DNS:localhost", "IP:127.0.0.1"]
            for h in sans:
                entry = ("IP:" if _is_ip(h) else "DNS:") + h
                if entry not in names:
                    names.append(entry)
            f.write("subjectAltName=%s\nextendedKeyUsage=serverAuth\n" % ",".join(names))
        self._leaf("server", "/CN=k3s", "ca", ext)
        cext = d("client.ext")
        with open(cext, "w") as f:
            f.write("extendedKeyUsage=clientAuth\n")
        self._leaf("client", "/O=system:masters/CN=system:admin", "ca", cext)
        self._leaf("wrong", "/O=system:masters/CN=system:admin", "other-ca", cext)

    def path(self, name):
        return os.path.join(self.dir, name)

    def _leaf(self, name, subj, ca, ext):
        d = self.path
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-subj", subj, "-keyout", d(name + ".key"), "-out", d(name + ".csr"))
        _openssl("x509", "-req", "-in", d(name + ".csr"), "-CA", d(ca + ".crt"),
                 "-CAkey", d(ca + ".key"), "-CAcreateserial", "-days", "1",
                 "-extfile", ext, "-out", d(name + ".crt"))

    def b64(self, name):
        with open(self.path(name), "rb") as f:
            return base64.b64encode(f.read()).decode()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def kubeconfig(certs, server="https://127.0.0.1:6443", client="client"):
    """A kubeconfig shaped like K3s' /etc/rancher/k3s/k3s.yaml."""
    return """apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: %s
    server: %s
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: %s
    client-key-data: %s
""" % (certs.b64("ca.crt"), server, certs.b64(client + ".crt"), certs.b64(client + ".key"))


def node_object(name, task_id=None, ready=False, node_args=None, server=False, labels=None,
                annotations=None, node_info=None, addresses=None):
    """A Node as K3s registers it. The task id goes into the label unless
    node_args (the k3s.io/node-args annotation) carries it instead."""
    lab = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
           "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
           "beta.kubernetes.io/arch": "amd64", "node.kubernetes.io/instance-type": "k3s",
           "beta.kubernetes.io/instance-type": "k3s"}
    if task_id and not node_args:
        lab["m3s.aventer.biz/taskid"] = task_id
    if server:
        lab["node-role.kubernetes.io/control-plane"] = "true"
        lab["node-role.kubernetes.io/master"] = "true"
    lab.update(labels or {})
    ann = {}
    if node_args is not None:
        ann["k3s.io/node-args"] = json.dumps(node_args)
    ann.update(annotations or {})
    info = {"machineID": "m-" + name, "kubeletVersion": "v1.30.4+k3s1",
            "kubeProxyVersion": "v1.30.4+k3s1", "osImage": "Ubuntu 22.04",
            "containerRuntimeVersion": "docker://24.0.6", "operatingSystem": "linux",
            "architecture": "amd64"}
    info.update(node_info or {})
    obj = {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": "uid-" + name, "labels": lab, "annotations": ann,
                     "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                _ready_condition(ready),
            ],
            "nodeInfo": info,
        },
    }
    if addresses:
        obj["status"]["addresses"] = addresses
    return obj


def _ready_condition(ready):
    return {"type": "Ready", "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "message": "kubelet is posting ready status" if ready
            else "container runtime status check may not have completed yet"}


def _node_table(nodes):
    """kubectl get nodes: the meta.k8s.io/v1 Table the API server prints."""
    rows = []
    now = time.time()
    for n in nodes:
        md = n["metadata"]
        ready = any(c["type"] == "Ready" and c["status"] == "True"
                    for c in n["status"].get("conditions", []))
        roles = sorted(k.split("/", 1)[1] for k in md.get("labels", {})
                       if k.startswith("node-role.kubernetes.io/"))
        try:
            created = calendar.timegm(time.strptime(md["creationTimestamp"],
                                                    "%Y-%m-%dT%H:%M:%SZ"))
            age = "%ds" % max(0, int(now - created))
        except (KeyError, ValueError):
            age = "<unknown>"
        info = n["status"].get("nodeInfo", {})
        ips = [a["address"] for a in n["status"].get("addresses", [])
               if a.get("type") == "InternalIP"]
        rows.append({"cells": [md["name"], "Ready" if ready else "NotReady",
                               ",".join(roles) or "<none>", age,
                               info.get("kubeletVersion", ""), ips[0] if ips else "<none>",
                               "<none>", info.get("osImage", ""),
                               info.get("kernelVersion", ""),
                               info.get("containerRuntimeVersion", "")],
                     "object": {"kind": "PartialObjectMetadata",
                                "apiVersion": "meta.k8s.io/v1", "metadata": md}})
    cols = [("Name", 0), ("Status", 0), ("Roles", 0), ("Age", 0), ("Version", 0),
            ("Internal-IP", 1), ("External-IP", 1), ("OS-Image", 1), ("Kernel-Version", 1),
            ("Container-Runtime", 1)]
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {},
            "columnDefinitions": [{"name": c, "type": "string",
                                   "format": "name" if c == "Name" else "",
                                   "description": "", "priority": p} for c, p in cols],
            "rows": rows}


_DISCOVERY = {
    "/api": {"kind": "APIVersions", "versions": ["v1"],
             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                             "serverAddress": "127.0.0.1:6443"}]},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "nodes", "singularName": "node", "namespaced": False, "kind": "Node",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
         "shortNames": ["no"]},
        {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
         "shortNames": ["po"]},
        {"name": "pods/eviction", "singularName": "", "namespaced": True, "group": "policy",
         "version": "v1", "kind": "Eviction", "verbs": ["create"]}]},
}


def pod_object(ns, name, node, daemonset=False, mirror=False, labels=None, phase="Running"):
    """A Pod as the API server returns it: owned by a ReplicaSet, or by a
    DaemonSet; a mirror pod (a static pod of the kubelet) carries the
    kubernetes.io/config.mirror annotation and is owned by its Node."""
    uid = "uid-%s-%s" % (ns, name)
    if daemonset:
        owner = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": name.rsplit("-", 1)[0],
                 "uid": "uid-ds-" + name, "controller": True, "blockOwnerDeletion": True}
    elif mirror:
        owner = {"apiVersion": "v1", "kind": "Node", "name": node, "uid": "uid-" + node,
                 "controller": True}
    else:
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                 "name": name.rsplit("-", 1)[0], "uid": "uid-rs-" + name, "controller": True,
                 "blockOwnerDeletion": True}
    meta = {"name": name, "namespace": ns, "uid": uid, "labels": dict(labels or {}),
            "ownerReferences": [owner],
            "creationTimestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if mirror:
        meta["annotations"] = {"kubernetes.io/config.mirror": "hash-" + name,
                               "kubernetes.io/config.source": "file"}
    return {"kind": "Pod", "apiVersion": "v1", "metadata": meta,
            "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}],
                     "terminationGracePeriodSeconds": 30},
            "status": {"phase": phase}}


def _status_obj(code, reason, message, details=None):
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code}
    if details is not None:
        out["details"] = details
    return out


class FakeK3s:
    def __init__(self, certs=None):
        self.certs = certs or Certs()
        self.own_certs = certs is None
        self.cond = threading.Condition()
        self.nodes = {}          # name -> Node object
        self.rv = 100            # resourceVersion counter
        self.log = []            # (rv, type, object) for watches
        self.compacted = 0       # watches from an rv below this get 410 Gone
        self.generation = 0      # bumped by end_watches()
        self.gone_http = False
        self.requests = []
        self.tls_failures = 0
        self.server = None
        self.servers = []        # every listener, the first one is `server`
        self.pods = {}           # (namespace, name) -> Pod object
        self.pdbs = []           # PodDisruptionBudgets (add_pdb)
        self.evictions = []      # every eviction asked: see evict()
        self.evict_grace = 0.0   # seconds an evicted pod takes to go

    # -- control (test thread) ------------------------------------------------

    def _event(self, kind, obj):
        self.rv += 1
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(self.rv)
        if kind != "DELETED":
            self.nodes[obj["metadata"]["name"]] = obj
        self.log.append((self.rv, kind, copy.deepcopy(obj)))
        self.cond.notify_all()
        return obj

    def put_node(self, obj):
        with self.cond:
            name = obj["metadata"]["name"]
            return self._event("MODIFIED" if name in self.nodes else "ADDED", obj)

    def set_ready(self, name, ready):
        with self.cond:
            obj = copy.deepcopy(self.nodes[name])
            conds = obj["status"]["conditions"]
            for i, c in enumerate(conds):
                if c["type"] == "Ready":
                    conds[i] = _ready_condition(ready)
            return self._event("MODIFIED", obj)

    def delete_node(self, name):
        with self.cond:
            obj = self.nodes.pop(name)
            self._event("DELETED", obj)

    def end_watches(self):
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def compact(self):
        """Forgets the event history: a watch from any resourceVersion
        handed out so far gets 410 Gone; a new list is needed."""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            self.log = []

    def node(self, name):
        with self.cond:
            return copy.deepcopy(self.nodes.get(name))

    # -- pods and PodDisruptionBudgets (test thread) ------------------------------

    def put_pod(self, ns, name, node, daemonset=False, mirror=False, labels=None,
                phase="Running"):
        """Creates or replaces a pod on a node; returns it."""
        with self.cond:
            self.rv += 1
            obj = pod_object(ns, name, node, daemonset, mirror, labels, phase)
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.pods[(ns, name)] = obj
            return copy.deepcopy(obj)

    def delete_pod(self, ns, name):
        """Removes a pod at once; True when it was there."""
        with self.cond:
            return self.pods.pop((ns, name), None) is not None

    def pods_on(self, node):
        """[(namespace, name)] of the pods on a node, sorted."""
        with self.cond:
            return sorted(k for k, p in self.pods.items() if p["spec"].get("nodeName") == node)

    def add_pdb(self, ns, selector, max_unavailable=None, min_available=None, refuse_for=None,
                refuse_count=None, name=None):
        """A PodDisruptionBudget over the pods of namespace ns whose labels
        include `selector`. It refuses an eviction (429) that would leave
        fewer than min_available of them not terminating, or more than
        max_unavailable terminating; and, to make a drain wait, every
        eviction for `refuse_for` seconds from now or the first
        `refuse_count` ones. Returns its name."""
        with self.cond:
            pdb = {"name": name or "pdb-%d" % (len(self.pdbs) + 1), "namespace": ns,
                   "selector": dict(selector), "max_unavailable": max_unavailable,
                   "min_available": min_available,
                   "until": time.monotonic() + refuse_for if refuse_for else None,
                   "refuse_count": refuse_count or 0, "refused": 0}
            self.pdbs.append(pdb)
            return pdb["name"]

    def clear_pdbs(self):
        with self.cond:
            self.pdbs = []

    def _pdb_refusal(self, pod):
        """(under cond) The 429 Status a PodDisruptionBudget answers an
        eviction of pod with, or None when every budget allows it."""
        md = pod["metadata"]
        for pdb in self.pdbs:
            if pdb["namespace"] != md["namespace"] or any(
                    md.get("labels", {}).get(k) != v for k, v in pdb["selector"].items()):
                continue
            covered = [p for (ns, _), p in self.pods.items() if ns == pdb["namespace"] and all(
                p["metadata"].get("labels", {}).get(k) == v for k, v in pdb["selector"].items())]
            healthy = len([p for p in covered if "deletionTimestamp" not in p["metadata"]])
            terminating = len(covered) - healthy
            need = pdb["min_available"]
            if need is None and pdb["max_unavailable"] is not None:
                need = len(covered) - pdb["max_unavailable"]
            refuse = False
            if pdb["until"] is not None and time.monotonic() < pdb["until"]:
                refuse = True
            if pdb["refused"] < pdb["refuse_count"]:
                refuse = True
            if pdb["min_available"] is not None and healthy - 1 < pdb["min_available"]:
                refuse = True
            if pdb["max_unavailable"] is not None and terminating + 1 > pdb["max_unavailable"]:
                refuse = True
            if not refuse:
                continue
            pdb["refused"] += 1
            return _status_obj(
                429, "TooManyRequests",
                "Cannot evict pod as it would violate the pod's disruption budget.",
                {"causes": [{"reason": "DisruptionBudget",
                             "message": "The disruption budget %s needs %d healthy pods and "
                             "has %d currently" % (pdb["name"], max(need or 0, 0), healthy)}]})
        return None

    def evict(self, ns, name):
        """What POST .../pods/<name>/eviction does: (code, body). Recorded
        in `evictions` as {"namespace", "name", "node", "unschedulable",
        "code", "time"}."""
        with self.cond:
            pod = self.pods.get((ns, name))
            node = pod["spec"].get("nodeName") if pod else None
            rec = {"namespace": ns, "name": name, "node": node, "time": time.time(),
                   "unschedulable": bool(node and self.nodes.get(node, {}).get("spec", {})
                                         .get("unschedulable"))}
            if pod is None:
                code, body = 404, _status_obj(404, "NotFound", 'pods "%s" not found' % name,
                                              {"name": name, "kind": "pods"})
            elif "deletionTimestamp" in pod["metadata"]:
                code, body = 201, None   # terminating already: no budget is checked
            else:
                body = self._pdb_refusal(pod)
                code = 429 if body else 201
                if not body:
                    pod["metadata"]["deletionTimestamp"] = time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + self.evict_grace))
                    pod["metadata"]["deletionGracePeriodSeconds"] = int(self.evict_grace)
                    if self.evict_grace <= 0:
                        self.pods.pop((ns, name), None)
                    else:
                        uid = pod["metadata"]["uid"]
                        t = threading.Timer(self.evict_grace, self._gone, (ns, name, uid))
                        t.daemon = True
                        t.start()
            if body is None:
                body = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                        "status": "Success", "code": 201}
            rec["code"] = code
            self.evictions.append(rec)
            return code, body

    def _gone(self, ns, name, uid):
        with self.cond:
            pod = self.pods.get((ns, name))
            if pod and pod["metadata"]["uid"] == uid:
                del self.pods[(ns, name)]

    def seen(self, method=None, path=None, since=0):
        with self.cond:
            return [r for r in self.requests[since:]
                    if (method is None or r["method"] == method) and
                    (path is None or r["path"] == path)]

    # -- server ---------------------------------------------------------------

    def start(self, host="127.0.0.1", port=0, contained=False):
        """Listens on host:port (a free port by default; `port` tells which).
        Returns self. `contained`: see listen()."""
        self.server = self.listen(host, port, contained)
        self.port = self.server.server_address[1]
        return self

    def _classes(self):
        if getattr(self, "_server_class", None):
            return self._server_class
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def setup(self):
                super().setup()
                with fake.cond:
                    self.server.conns.add(self.connection)

            def finish(self):
                with fake.cond:
                    self.server.conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _record(self, body=None):
                u = urllib.parse.urlsplit(self.path)
                r = {"method": self.command, "path": u.path,
                     "query": dict(urllib.parse.parse_qsl(u.query)),
                     "host": self.headers.get("Host"),
                     "content_type": self.headers.get("Content-Type"),
                     "body": body, "time": time.time()}
                with fake.cond:
                    fake.requests.append(r)
                return r

            def _json(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _status(self, code, reason, message):
                self._json(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "message": message, "reason": reason, "code": code})

            def _text(self, code, text):
                data = text.encode()
                self.send_response(code)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                r = self._record()
                path = r["path"]
                if path in ("/readyz", "/livez", "/healthz"):
                    return self._text(200, "ok")
                if path == "/version":
                    return self._json(200, {"major": "1", "minor": "30",
                                            "gitVersion": "v1.30.4+k3s1", "platform":
                                            "linux/amd64"})
                if path in _DISCOVERY:
                    return self._json(200, _DISCOVERY[path])
                if path == "/api/v1/pods" or path.startswith("/api/v1/namespaces/"):
                    return self._get_pods(r)
                if path.startswith("/api/v1/nodes/"):
                    with fake.cond:
                        obj = copy.deepcopy(fake.nodes.get(path.rsplit("/", 1)[-1]))
                    if obj is None:
                        return self._status(404, "NotFound", "node not found")
                    return self._json(200, obj)
                if path != "/api/v1/nodes":
                    return self._status(404, "NotFound", "not found")
                if r["query"].get("watch") not in ("1", "true"):
                    with fake.cond:
                        items = [copy.deepcopy(n) for n in fake.nodes.values()]
                        rv = str(fake.rv)
                    if "as=Table" in (self.headers.get("Accept") or ""):
                        table = _node_table(items)
                        table["metadata"]["resourceVersion"] = rv
                        return self._json(200, table)
                    return self._json(200, {"kind": "NodeList", "apiVersion": "v1",
                                            "metadata": {"resourceVersion": rv},
                                            "items": items})
                self._watch(r)

            def _get_pods(self, r):
                parts = r["path"].strip("/").split("/")
                # api v1 pods | api v1 namespaces <ns> pods [<name>]
                if parts[2:3] == ["pods"] and len(parts) == 3:
                    ns, name = None, None
                elif len(parts) in (5, 6) and parts[2] == "namespaces" and parts[4] == "pods":
                    ns, name = parts[3], parts[5] if len(parts) == 6 else None
                else:
                    return self._status(404, "NotFound", "not found")
                if name is not None:
                    with fake.cond:
                        obj = copy.deepcopy(fake.pods.get((ns, name)))
                    if obj is None:
                        return self._json(404, _status_obj(
                            404, "NotFound", 'pods "%s" not found' % name,
                            {"name": name, "kind": "pods"}))
                    return self._json(200, obj)
                want = {}
                for term in filter(None, r["query"].get("fieldSelector", "").split(",")):
                    k, eq, v = term.partition("=")
                    if not eq or k not in ("spec.nodeName", "metadata.namespace",
                                           "metadata.name", "status.phase"):
                        return self._status(400, "BadRequest",
                                            'field label not supported: %s' % k)
                    want[k] = v.lstrip("=")

                def field(p, k):
                    a, b = k.split(".")
                    return p.get(a, {}).get(b, "")
                with fake.cond:
                    items = [copy.deepcopy(p) for (pns, _), p in sorted(fake.pods.items())
                             if (ns is None or pns == ns) and
                             all(field(p, k) == v for k, v in want.items())]
                    rv = str(fake.rv)
                self._json(200, {"kind": "PodList", "apiVersion": "v1",
                                 "metadata": {"resourceVersion": rv}, "items": items})

            def _chunk(self, data):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _watch(self, r):
                try:
                    since = int(r["query"].get("resourceVersion", "0"))
                except ValueError:
                    return self._status(400, "BadRequest", "bad resourceVersion")
                timeout = float(r["query"].get("timeoutSeconds", "300"))
                with fake.cond:
                    if fake.gone_http:
                        fake.gone_http = False
                        return self._status(410, "Expired", "too old resource version")
                    gen = fake.generation
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                deadline = time.monotonic() + timeout
                try:
                    while True:
                        with fake.cond:
                            if since < fake.compacted:
                                out = [{"type": "ERROR", "object": {
                                    "kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "message": "too old resource version: %d (%d)"
                                    % (since, fake.compacted), "reason": "Expired",
                                    "code": 410}}]
                                end = True
                            else:
                                out = [{"type": t, "object": o} for rv, t, o in fake.log
                                       if rv > since]
                                end = False
                                if out:
                                    since = int(out[-1]["object"]["metadata"]
                                                ["resourceVersion"])
                                elif fake.generation != gen or time.monotonic() > deadline:
                                    end = True
                                else:
                                    fake.cond.wait(0.2)
                        for ev in out:
                            self._chunk(json.dumps(ev).encode() + b"\n")
                        if end:
                            break
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

            def _body(self):
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n).decode() if n else ""

            def do_POST(self):
                body = self._body()
                r = self._record(body)
                parts = r["path"].strip("/").split("/")
                if not (len(parts) == 7 and parts[:3] == ["api", "v1", "namespaces"] and
                        parts[4] == "pods" and parts[6] == "eviction"):
                    return self._status(404, "NotFound", "not found")
                ns, name = parts[3], parts[5]
                try:
                    ev = json.loads(body)
                except ValueError:
                    return self._status(400, "BadRequest", "the body is not JSON")
                md = ev.get("metadata", {}) if isinstance(ev, dict) else {}
                if (not isinstance(ev, dict) or ev.get("kind") != "Eviction" or
                        ev.get("apiVersion") not in ("policy/v1", "policy/v1beta1")):
                    return self._status(400, "BadRequest",
                                        "the body is not a policy/v1 Eviction")
                if md.get("name") != name or md.get("namespace", ns) != ns:
                    return self._status(400, "BadRequest",
                                        "name in URL does not match name in Eviction object")
                code, obj = fake.evict(ns, name)
                self._json(code, obj)

            def do_PATCH(self):
                body = self._body()
                r = self._record(body)
                name = r["path"].rsplit("/", 1)[-1]
                if not r["path"].startswith("/api/v1/nodes/"):
                    return self._status(404, "NotFound", "not found")
                try:
                    patch = json.loads(body)
                except ValueError:
                    return self._status(400, "BadRequest", "not JSON")
                with fake.cond:
                    if name not in fake.nodes:
                        return self._status(404, "NotFound", "node %s not found" % name)
                    obj = copy.deepcopy(fake.nodes[name])
                    for k, v in patch.get("spec", {}).items():
                        if v is None:
                            obj["spec"].pop(k, None)
                        else:
                            obj["spec"][k] = v
                    obj = fake._event("MODIFIED", obj)
                self._json(200, obj)

            def do_DELETE(self):
                r = self._record()
                name = r["path"].rsplit("/", 1)[-1]
                with fake.cond:
                    if not r["path"].startswith("/api/v1/nodes/") or name not in fake.nodes:
                        return self._status(404, "NotFound", "node %s not found" % name)
                    obj = fake.nodes.pop(name)
                    fake._event("DELETED", obj)
                self._json(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def __init__(self, *a, **kw):
                self.conns = set()   # open connections, closed by unlisten()
                super().__init__(*a, **kw)

            def handle_error(self, request, client_address):
                with fake.cond:
                    fake.tls_failures += 1   # refused handshakes land here

        self._server_class = (Server, Handler)
        return self._server_class

    def listen(self, host, port, contained=False):
        """One more listener on host:port (loopback only, unless `contained`:
        the caller runs in a network namespace of its own, as the e2e
        stand-in in its container; OSError when the address is taken).
        Returns it, for unlisten()."""
        if not contained and not ipaddress.ip_address(host).is_loopback:
            raise ValueError("the fake K3s API listens on loopback only, not %r" % host)
        Server, Handler = self._classes()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.path("server.crt"), self.certs.path("server.key"))
        ctx.load_verify_locations(self.certs.path("ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        srv = Server((host, port), Handler)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True,
                                     do_handshake_on_connect=False)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        with self.cond:
            self.servers.append(srv)
        return srv

    def unlisten(self, srv):
        """Stops one listener as a server that goes away: new connections
        are refused, open watches end, open connections are closed."""
        with self.cond:
            if srv not in self.servers:
                return
            self.servers.remove(srv)
        self.end_watches()
        srv.shutdown()
        srv.server_close()
        with self.cond:
            conns = list(srv.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self):
        with self.cond:
            servers = list(self.servers)
        for srv in servers:
            self.unlisten(srv)
        if self.own_certs:
            self.certs.cleanup()
