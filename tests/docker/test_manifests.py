#!/usr/bin/env python3
"""The add-on manifests in docker/manifests, checked the way K3s' deploy
controller and the API server would look at them, without a cluster:

- every file parses, every YAML document is a mapping with apiVersion, kind
  and metadata.name, and the file name is a valid AddOn name;
- no object is defined twice; namespaced objects sit in a namespace that the
  manifests create;
- references resolve: (Cluster)RoleBindings to roles defined here or to the
  built-in cluster-admin and to service accounts defined here, pods to their
  service account, secret and configmap volumes; Services select the labels of
  some Deployment's pods, on ports those containers declare; each Deployment's
  selector matches its own pod template;
- images are pinned (an explicit tag, never latest);
- the dashboard contract: ServiceAccount kubernetes-dashboard/admin-user bound
  to cluster-admin by a ClusterRoleBinding, so that
  `kubectl -n kubernetes-dashboard create token admin-user` signs in as admin.

Run: python3 tests/docker/test_manifests.py [DIR]
"""
import os
import re
import shutil
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:  # pragma: no cover - reported as a failure, not a skip
    print("python3-yaml is missing: apt-get install -y python3-yaml (scripts/setup.sh does)")
    sys.exit(1)

HERE = os.path.dirname(os.path.abspath(__file__))
DIR = os.environ.get("M3S_MANIFESTS_DIR",
                     os.path.join(HERE, "..", "..", "docker", "manifests"))

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PersistentVolume", "StorageClass", "PriorityClass"}
BUILTIN_CLUSTER_ROLES = {"cluster-admin", "admin", "edit", "view"}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def load(directory):
    """{(kind, namespace, name): (file, doc)} and the list of files."""
    objects, files = {}, []
    for name in sorted(os.listdir(directory)):
        if not name.endswith((".yaml", ".yml")):
            continue
        files.append(name)
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            for i, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                where = "%s document %d" % (name, i + 1)
                if not isinstance(doc, dict):
                    raise AssertionError("%s: not a mapping" % where)
                for field in ("apiVersion", "kind", "metadata"):
                    if field not in doc:
                        raise AssertionError("%s: no %s" % (where, field))
                meta = doc["metadata"]
                if not isinstance(meta, dict) or not meta.get("name"):
                    raise AssertionError("%s: no metadata.name" % where)
                ns = None if doc["kind"] in CLUSTER_SCOPED else meta.get("namespace")
                key = (doc["kind"], ns, meta["name"])
                if key in objects:
                    raise AssertionError("%s: %s defined twice (first in %s)"
                                         % (where, key, objects[key][0]))
                objects[key] = (where, doc)
    return objects, files


class ManifestTest(unittest.TestCase):
    directory = None  # None: DIR

    @classmethod
    def setUpClass(cls):
        cls.objects, cls.files = load(cls.directory or DIR)

    def of_kind(self, kind):
        return [(k, d) for k, (_, d) in self.objects.items() if k[0] == kind]

    def has(self, kind, ns, name):
        return (kind, ns, name) in self.objects

    def test_files_and_names(self):
        self.assertTrue(self.files, "no manifests in %s" % DIR)
        for f in self.files:
            base = f.rsplit(".", 1)[0]
            # The AddOn object K3s creates is named after the file.
            self.assertRegex(base, DNS_SUBDOMAIN, "%s is not a valid AddOn name" % f)
        for (kind, ns, name), (where, _) in self.objects.items():
            self.assertRegex(name, DNS_SUBDOMAIN, "%s: bad name %r" % (where, name))
            if kind in ("Namespace", "Service", "Deployment"):
                self.assertRegex(name, DNS_LABEL, "%s: %s name must be a DNS label" % (where, kind))

    def test_namespaces_exist(self):
        for (kind, ns, _), (where, doc) in self.objects.items():
            if kind in CLUSTER_SCOPED:
                continue
            self.assertIsNotNone(ns, "%s: namespaced %s without metadata.namespace" % (where, kind))
            self.assertTrue(self.has("Namespace", None, ns),
                            "%s: namespace %s is not created here" % (where, ns))

    def test_bindings_resolve(self):
        for kind in ("RoleBinding", "ClusterRoleBinding"):
            for (_, ns, name), doc in self.of_kind(kind):
                ref = doc["roleRef"]
                self.assertEqual(ref.get("apiGroup"), "rbac.authorization.k8s.io", name)
                if ref["kind"] == "ClusterRole":
                    self.assertTrue(ref["name"] in BUILTIN_CLUSTER_ROLES
                                    or self.has("ClusterRole", None, ref["name"]),
                                    "%s %s: ClusterRole %s unknown" % (kind, name, ref["name"]))
                else:
                    self.assertEqual(kind, "RoleBinding")
                    self.assertTrue(self.has("Role", ns, ref["name"]),
                                    "%s %s: Role %s unknown" % (kind, name, ref["name"]))
                self.assertTrue(doc.get("subjects"), "%s %s: no subjects" % (kind, name))
                for s in doc["subjects"]:
                    if s["kind"] == "ServiceAccount":
                        self.assertTrue(self.has("ServiceAccount", s["namespace"], s["name"]),
                                        "%s %s: service account %s/%s unknown"
                                        % (kind, name, s["namespace"], s["name"]))

    def test_workloads(self):
        deployments = self.of_kind("Deployment")
        self.assertTrue(deployments)
        pods = []  # (namespace, labels, container ports)
        for (_, ns, name), doc in deployments:
            spec = doc["spec"]
            tmpl = spec["template"]
            labels = tmpl["metadata"]["labels"]
            for k, v in spec["selector"]["matchLabels"].items():
                self.assertEqual(labels.get(k), v, "%s: selector does not match its pods" % name)
            pod = tmpl["spec"]
            sa = pod.get("serviceAccountName")
            if sa:
                self.assertTrue(self.has("ServiceAccount", ns, sa),
                                "%s: service account %s unknown" % (name, sa))
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            for v in volumes.values():
                if "secret" in v:
                    self.assertTrue(self.has("Secret", ns, v["secret"]["secretName"]), name)
                if "configMap" in v:
                    self.assertTrue(self.has("ConfigMap", ns, v["configMap"]["name"]), name)
            ports = set()
            for c in pod["containers"]:
                image = c["image"]
                tag = image.rsplit("/", 1)[-1].partition(":")[2]
                self.assertTrue(tag and tag != "latest", "%s: image %s is not pinned" % (name, image))
                for m in c.get("volumeMounts", []):
                    self.assertIn(m["name"], volumes, "%s: mount of unknown volume" % name)
                for p in c.get("ports", []):
                    ports.add(p["containerPort"])
                    if "name" in p:
                        ports.add(p["name"])
            pods.append((ns, labels, ports))

        for (_, ns, name), doc in self.of_kind("Service"):
            selector = doc["spec"]["selector"]
            matching = [ports for pns, labels, ports in pods
                        if pns == ns and all(labels.get(k) == v for k, v in selector.items())]
            self.assertTrue(matching, "Service %s selects no pods" % name)
            for p in doc["spec"]["ports"]:
                target = p.get("targetPort", p["port"])
                self.assertTrue(any(target in ports for ports in matching),
                                "Service %s: targetPort %s is no container port" % (name, target))

    def test_admin_user(self):
        ns = "kubernetes-dashboard"
        self.assertTrue(self.has("Namespace", None, ns))
        self.assertTrue(self.has("ServiceAccount", ns, "admin-user"),
                        "no ServiceAccount admin-user in %s" % ns)
        bound = [name for (_, _, name), doc in self.of_kind("ClusterRoleBinding")
                 if doc["roleRef"]["kind"] == "ClusterRole"
                 and doc["roleRef"]["name"] == "cluster-admin"
                 and any(s["kind"] == "ServiceAccount" and s["name"] == "admin-user"
                         and s.get("namespace") == ns for s in doc["subjects"])]
        self.assertTrue(bound, "admin-user is not bound to cluster-admin")
        # The dashboard itself must not run as admin.
        for (_, _, name), doc in self.of_kind("Deployment"):
            self.assertNotEqual(doc["spec"]["template"]["spec"].get("serviceAccountName"),
                                "admin-user", name)
        self.assertTrue(self.has("Deployment", ns, "kubernetes-dashboard"))
        self.assertTrue(self.has("Service", ns, "kubernetes-dashboard"))


class CheckerTest(unittest.TestCase):
    """The checks above fail on broken input (so a green run means something)."""

    def check(self, text):
        d = tempfile.mkdtemp(prefix="m3s-manifests-")
        try:
            with open(os.path.join(d, "x.yaml"), "w", encoding="utf-8") as f:
                f.write(text)
            probe = type("Probe", (ManifestTest,), {"directory": d})
            with open(os.devnull, "w", encoding="utf-8") as devnull:
                result = unittest.TextTestRunner(stream=devnull).run(
                    unittest.defaultTestLoader.loadTestsFromTestCase(probe))
            return result.wasSuccessful()
        finally:
            shutil.rmtree(d)

    def test_detects_breakage(self):
        with open(os.path.join(DIR, "dashboard.yaml"), encoding="utf-8") as f:
            good = f.read()
        self.assertTrue(self.check(good))
        broken = {
            "no admin binding": good.replace("name: cluster-admin", "name: view"),
            "unpinned image": good.replace("metrics-scraper:v1.0.8", "metrics-scraper:latest"),
            "bad yaml": good + "\n---\n: : :\n  - [\n",
            "service selects nothing": good.replace("    k8s-app: dashboard-metrics-scraper\n  ports",
                                                    "    k8s-app: nothing\n  ports"),
            "wrong target port": good.replace("targetPort: 8443", "targetPort: 9443"),
            "unknown service account": good.replace("serviceAccountName: kubernetes-dashboard",
                                                    "serviceAccountName: nobody", 1),
        }
        for what, text in broken.items():
            self.assertNotEqual(text, good, what)
            self.assertFalse(self.check(text), "not detected: " + what)


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        DIR = sys.argv.pop(1)
    result = unittest.main(exit=False, verbosity=2).result
    failed = len(result.failures) + len(result.errors)
    print("manifests: %d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
