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
- PATCH and DELETE of /api/v1/nodes/<name>, applied and recorded.
Every request is recorded in `requests` (method, path, query, host, body).

Used by test_kube.py on 127.0.0.1, and by the e2e tier's K3s stand-in
image (tests/e2e/images/k3s-standin), where it listens in its container.
"""
import base64
import copy
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True)


class Certs:
    """A throwaway CA, a server certificate for localhost/127.0.0.1 (plus
    `sans`, names or IPv4 addresses), a client certificate it signed and
    one signed by another CA."""

    def __init__(self, sans=()):
        self.dir = tempfile.mkdtemp(prefix="m3s-k3s-tls-")
        d = self.path
        for ca in ("ca", "other-ca"):
            _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-nodes", "-days", "1", "-subj", "/CN=k3s-%s" % ca,
                     "-keyout", d(ca + ".key"), "-out", d(ca + ".crt"))
        ext = d("server.ext")
        with open(ext, "w") as f:
            alt = ["DNS:localhost", "IP:127.0.0.1"]
            for n in sans:
                alt.append(("IP:" if n.replace(".", "").isdigit() else "DNS:") + n)
            f.write("subjectAltName=%s\n" % ",".join(alt) +
                    "extendedKeyUsage=serverAuth\n")
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


def node_object(name, task_id=None, ready=False, node_args=None, server=False):
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
    if task_id and not node_args:
        labels["m3s.aventer.biz/taskid"] = task_id
    if server:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    annotations = {}
    if node_args is not None:
        annotations["k3s.io/node-args"] = json.dumps(node_args)
    return {
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "uid": "uid-" + name, "labels": labels,
                     "annotations": annotations},
        "spec": {},
        "status": {
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True" if ready else "False",
                 "reason": "KubeletReady" if ready else "KubeletNotReady"},
            ],
            "nodeInfo": {"machineID": "m-" + name, "kubeletVersion": "v1.30.4+k3s1",
                         "kubeProxyVersion": "v1.30.4+k3s1", "osImage": "Ubuntu 22.04",
                         "containerRuntimeVersion": "docker://24.0.6",
                         "operatingSystem": "linux", "architecture": "amd64"},
        },
    }


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
            for c in obj["status"]["conditions"]:
                if c["type"] == "Ready":
                    c["status"] = "True" if ready else "False"
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

    def seen(self, method=None, path=None, since=0):
        with self.cond:
            return [r for r in self.requests[since:]
                    if (method is None or r["method"] == method) and
                    (path is None or r["path"] == path)]

    # -- server ---------------------------------------------------------------

    def start(self, host="127.0.0.1", port=0):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
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

            def do_GET(self):
                r = self._record()
                if r["path"] != "/api/v1/nodes":
                    return self._status(404, "NotFound", "not found")
                if r["query"].get("watch") not in ("1", "true"):
                    with fake.cond:
                        items = [copy.deepcopy(n) for n in fake.nodes.values()]
                        rv = str(fake.rv)
                    return self._json(200, {"kind": "NodeList", "apiVersion": "v1",
                                            "metadata": {"resourceVersion": rv},
                                            "items": items})
                self._watch(r)

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

            def handle_error(self, request, client_address):
                with fake.cond:
                    fake.tls_failures += 1   # refused handshakes land here

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certs.path("server.crt"), self.certs.path("server.key"))
        ctx.load_verify_locations(self.certs.path("ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        self.server = Server((host, port), Handler)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True,
                                             do_handshake_on_connect=False)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.end_watches()
            self.server.shutdown()
            self.server.server_close()
        if self.own_certs:
            self.certs.cleanup()
