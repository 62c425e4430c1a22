#!/usr/bin/env python3
"""`k3s` in the e2e tier's K3s stand-in image.

It answers the one command the server task's Mesos health check runs,
`k3s kubectl --kubeconfig FILE get --raw PATH`, as the real k3s kubectl
does: a GET of PATH from the kubeconfig's server, with its CA and client
certificate, printing the body; exit 0 on a 2xx answer, 1 otherwise.
Anything else exits 2: the stand-in has no more of K3s.
"""
import base64
import os
import re
import ssl
import sys
import tempfile
import urllib.request

USAGE = "k3s (e2e stand-in): only 'kubectl [--kubeconfig FILE] get --raw PATH'"


def field(text, name):
    m = re.search(r"^\s*%s:\s*(\S+)\s*$" % re.escape(name), text, re.M)
    if not m:
        raise ValueError("the kubeconfig has no %s" % name)
    return m.group(1)


def main(argv):
    if argv[:1] != ["kubectl"]:
        print(USAGE, file=sys.stderr)
        return 2
    args = argv[1:]
    path = os.environ.get("KUBECONFIG", "/etc/rancher/k3s/k3s.yaml")
    if "--kubeconfig" in args:
        i = args.index("--kubeconfig")
        path = args[i + 1] if i + 1 < len(args) else ""
        del args[i:i + 2]
    if len(args) != 3 or args[:2] != ["get", "--raw"]:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        with open(path) as f:
            text = f.read()
        ctx = ssl.create_default_context(
            cadata=base64.b64decode(field(text, "certificate-authority-data")).decode())
        with tempfile.TemporaryDirectory() as d:
            crt, key = os.path.join(d, "client.crt"), os.path.join(d, "client.key")
            for name, data in ((crt, "client-certificate-data"), (key, "client-key-data")):
                with open(name, "wb") as f:
                    f.write(base64.b64decode(field(text, data)))
            ctx.load_cert_chain(crt, key)
        url = field(text, "server").rstrip("/") + args[2]
        with urllib.request.urlopen(url, context=ctx, timeout=10) as resp:
            sys.stdout.write(resp.read().decode())
        return 0
    except (OSError, ValueError, ssl.SSLError) as e:
        print("k3s kubectl: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
