#!/usr/bin/env python3
"""Entry point of the e2e tier's K3s stand-in image.

The daemon's server and agent TaskInfos make Mesos run
`docker run ... <image> /mnt/mesos/sandbox/bootstrap <k3s arguments>`; the
real image executes the fetched bootstrap script, which installs and starts
K3s. This entry point takes the same arguments instead and:

- checks that the Mesos fetcher put an executable bootstrap where the
  command points (BOOTSTRAP_URL really fetched into the sandbox);
- on a server (K3SFRAMEWORK_TYPE=server): serves the test K3s API
  (fake_k3s.py) on 0.0.0.0:6443 with a certificate for every --tls-san
  argument, as K3s does; writes the admin kubeconfig to $KUBECONFIG; adds a
  Ready node labelled with the task id (--node-label); and runs
  m3s-controller, which publishes that kubeconfig to Redis;
- on an agent: only waits.

It prints what it received (arguments, environment names) for the e2e log,
and stops on SIGTERM (docker stop), ending m3s-controller first.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, "/opt/m3s-e2e")
import fake_k3s  # noqa: E402

stop = threading.Event()


def on_term(signum, frame):
    stop.set()


def log(*a):
    print("k3s-standin:", *a, flush=True)


def main():
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    argv = sys.argv[1:]
    role = os.environ.get("K3SFRAMEWORK_TYPE", "")
    log("role", role, "argv", json.dumps(argv))
    log("environment", " ".join(sorted(os.environ)))
    if not argv or not os.path.isfile(argv[0]) or not os.access(argv[0], os.X_OK):
        log("no executable bootstrap at", argv[0] if argv else "(no command)")
        return 1
    log("bootstrap fetched:", argv[0], os.path.getsize(argv[0]), "bytes")
    controller = fake = None
    if role == "server":
        sans = [a.split("=", 1)[1] for a in argv if a.startswith("--tls-san=")]
        labels = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--node-label"]
        certs = fake_k3s.Certs(sans=sans)
        fake = fake_k3s.FakeK3s(certs).start(host="0.0.0.0", port=6443, contained=True)
        path = os.environ.get("KUBECONFIG", "/etc/rancher/k3s/k3s.yaml")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            f.write(fake_k3s.kubeconfig(certs))
        os.rename(path + ".tmp", path)
        node = fake_k3s.node_object(socket.gethostname(),
                                    task_id=os.environ.get("MESOS_TASK_ID"),
                                    ready=True, server=True)
        for label in labels:
            k, _, v = label.partition("=")
            node["metadata"]["labels"][k] = v
        fake.put_node(node)
        log("K3s API on :6443, certificate for", sans, "kubeconfig", path,
            "node", node["metadata"]["name"], "labels", labels)
        controller = subprocess.Popen(["/usr/local/bin/m3s-controller"])
        log("m3s-controller pid", controller.pid)
    while not stop.wait(1.0):
        if controller and controller.poll() is not None:
            log("m3s-controller exited with", controller.returncode)
            return 1
    log("SIGTERM: stopping")
    if controller:
        controller.terminate()
        controller.wait(10)
    if fake:
        fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
