#!/usr/bin/env python3
"""Checks of the shipped packaging that need no Docker daemon and no systemd:

- docker/Dockerfile: two Debian 12 stages; the builder runs the README's
  scripts (setup.sh --build-only, build.sh); the runtime stage runs as a
  non-root user, has the HEALTHCHECK, EXPOSE 10000, DOCKER_RUNNING=true, the
  OCI labels; everything it COPYs exists and is not excluded by
  .dockerignore; its apt packages provide every library the built m3s and
  m3s-controller load (ldd, dpkg -S, apt-cache depends; skipped where apt
  is not there).
- docker/docker-compose.yml: Redis plus M3s, healthchecks, restart
  policies, every M3s variable is one the daemon knows, every secret comes
  from the .env file (no literal secret).
- packaging/m3s.service: the required directives, no reload, and
  `systemd-analyze verify` without a single warning (when installed).
- packaging/m3s.env: every variable of `m3s --help` is in it, and with every
  line uncommented the daemon's effective configuration is exactly its
  default one (so the defaults written there are right).

Run: M3S_BIN=build/m3s M3S_CONTROLLER_BIN=build/m3s-controller \
     python3 tests/packaging/test_packaging.py -v
"""
import fnmatch
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.abspath(os.environ.get("M3S_BIN", os.path.join(ROOT, "build", "m3s")))
CTL = os.path.abspath(os.environ.get("M3S_CONTROLLER_BIN",
                                     os.path.join(ROOT, "build", "m3s-controller")))
SECRETS = ("AUTH_PASSWORD", "REDIS_PASSWORD", "K3S_TOKEN", "DS_MYSQL_PASSWORD",
           "MESOS_PASSWORD", "SSL_KEY_BASE64", "VAULT_TOKEN")


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def help_variables():
    out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
    return re.findall(r"^  ([A-Z][A-Z0-9_]*)  \(", out, re.M)


def dockerfile_instructions(text):
    """[(INSTRUCTION, arguments)] with continuation lines joined."""
    out, cur = [], ""
    for ln in text.splitlines():
        s = ln.strip()
        if not cur and (not s or s.startswith("#")):
            continue
        if cur and s.startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        word, _, rest = cur.partition(" ")
        out.append((word.upper(), rest.strip()))
        cur = ""
    return out


def stages(instr):
    res, cur = [], None
    for word, args in instr:
        if word == "FROM":
            cur = {"from": args, "instr": []}
            res.append(cur)
        elif cur is not None:
            cur["instr"].append((word, args))
    return res


class DockerfileTest(unittest.TestCase):
    def setUp(self):
        self.instr = dockerfile_instructions(read("docker/Dockerfile"))
        self.stages = stages(self.instr)
        self.build, self.run = self.stages[0], self.stages[-1]

    def of(self, stage, word):
        return [a for w, a in stage["instr"] if w == word]

    def test_stages(self):
        self.assertEqual(len(self.stages), 2)
        self.assertRegex(self.build["from"], r"^debian:12 AS build$")
        self.assertEqual(self.run["from"], "debian:12-slim")
        runs = " ".join(self.of(self.build, "RUN"))
        self.assertIn("scripts/setup.sh --build-only", runs)
        self.assertIn("scripts/build.sh build -DCMAKE_BUILD_TYPE=Release", runs)
        # The README builds with the same scripts, so they cannot drift.
        readme = read("README.md")
        self.assertIn("scripts/run.sh", readme)
        self.assertIn("scripts/build.sh", read("scripts/run.sh"))

    def test_runtime_stage(self):
        users = self.of(self.run, "USER")
        self.assertEqual(len(users), 1)
        self.assertNotIn(users[0].split(":")[0], ("root", "0"))
        self.assertIn("DOCKER_RUNNING=true", self.of(self.run, "ENV"))
        self.assertEqual(self.of(self.run, "EXPOSE"), ["10000"])
        hc = self.of(self.run, "HEALTHCHECK")
        self.assertEqual(len(hc), 1)
        self.assertIn("/usr/share/m3s/healthcheck.sh", hc[0])
        self.assertEqual(self.of(self.run, "ENTRYPOINT"), ['["/usr/bin/m3s"]'])
        labels = " ".join(self.of(self.run, "LABEL"))
        for key in ("title", "description", "version", "revision", "licenses", "created"):
            self.assertIn("org.opencontainers.image.%s=" % key, labels)
        copies = self.of(self.run, "COPY")
        dests = [c.split()[-1] for c in copies]
        for want in ("/usr/bin/m3s", "/usr/share/m3s/m3s-controller",
                     "/usr/share/m3s/bootstrap.sh", "/usr/share/m3s/manifests/",
                     "/usr/share/m3s/healthcheck.sh"):
            self.assertIn(want, dests)

    def test_copied_files_exist_and_are_in_the_context(self):
        ignore = [ln.strip() for ln in read(".dockerignore").splitlines()
                  if ln.strip() and not ln.startswith("#")]
        self.assertIn("build/", ignore)
        self.assertIn("build-*/", ignore)
        self.assertIn("docker/.env", ignore)

        def ignored(path):
            for pat in ignore:
                pat = pat.rstrip("/")
                parts = path.split("/")
                for i in range(1, len(parts) + 1):
                    if fnmatch.fnmatch("/".join(parts[:i]), pat):
                        return True
            return False
        for stage in self.stages:
            for c in self.of(stage, "COPY"):
                if c.startswith("--from="):
                    continue
                for src in c.split()[:-1]:
                    if src == ".":
                        continue
                    self.assertTrue(os.path.exists(os.path.join(ROOT, src)), src)
                    self.assertFalse(ignored(src.rstrip("/")), src + " is in .dockerignore")
        self.assertTrue(os.access(os.path.join(ROOT, "docker/healthcheck.sh"), os.X_OK))
        self.assertTrue(os.access(os.path.join(ROOT, "docker/bootstrap/bootstrap.sh"), os.X_OK))

    @unittest.skipUnless(shutil.which("apt-cache") and shutil.which("dpkg"),
                         "needs Debian's apt-cache and dpkg")
    def test_runtime_packages_cover_the_binaries(self):
        runs = " ".join(self.of(self.run, "RUN"))
        m = re.search(r"apt-get install -y --no-install-recommends (.*?) &&", runs)
        self.assertTrue(m, runs)
        pkgs = [p for p in m.group(1).split() if not p.startswith("-")]
        pol = subprocess.run(["apt-cache", "policy"] + pkgs, capture_output=True, text=True)
        if "Candidate: (none)" in pol.stdout or pol.stdout.count("Candidate:") != len(pkgs):
            self.skipTest("apt has no package lists (apt-get update)")
        dep = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                              "--no-suggests", "--no-conflicts", "--no-breaks",
                              "--no-replaces", "--no-enhances"] + pkgs,
                             capture_output=True, text=True, check=True).stdout
        closure = {ln.split(":")[0] for ln in dep.splitlines() if ln and not ln[0].isspace()}
        closure.add("libc6")   # in every Debian image
        for binary in (BIN, CTL):
            ldd = subprocess.run(["ldd", binary], capture_output=True, text=True,
                                 check=True).stdout
            for lib in re.findall(r"=> (/\S+)", ldd):
                owner = None
                for path in (lib, os.path.realpath(lib)):
                    r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
                    if r.returncode == 0:
                        owner = r.stdout.split(":")[0]
                        break
                self.assertIsNotNone(owner, "no package owns %s" % lib)
                self.assertIn(owner, closure, "%s (%s, needed by %s) is not installed "
                              "by the runtime stage" % (lib, owner, os.path.basename(binary)))


class ComposeTest(unittest.TestCase):
    def setUp(self):
        self.text = read("docker/docker-compose.yml")
        self.doc = yaml.safe_load(self.text)
        self.env_example = read("docker/env.example")

    def test_services(self):
        svc = self.doc["services"]
        self.assertEqual(set(svc), {"redis", "m3s"})
        for name, s in svc.items():
            self.assertIn("healthcheck", s, name)
            self.assertIn("test", s["healthcheck"], name)
            self.assertIn("restart", s, name)
        m3s = svc["m3s"]
        self.assertEqual(m3s["build"]["dockerfile"], "docker/Dockerfile")
        self.assertEqual(m3s["depends_on"]["redis"]["condition"], "service_healthy")
        self.assertEqual(m3s["healthcheck"]["test"], ["CMD", "/usr/share/m3s/healthcheck.sh"])
        self.assertIn("redis-data:/data", svc["redis"]["volumes"])
        self.assertTrue(self.doc["networks"]["tasks"]["external"])

    def test_environment(self):
        env = self.doc["services"]["m3s"]["environment"]
        known = set(help_variables())
        self.assertEqual(set(env) - known, set(), "variables m3s does not know")
        for v in ("MESOS_MASTER", "REDIS_SERVER", "DOMAIN", "K3S_TOKEN", "AUTH_USERNAME",
                  "AUTH_PASSWORD", "DOCKER_CNI", "VOLUME_K3S_SERVER", "BOOTSTRAP_URL"):
            self.assertIn(v, env)
        self.assertTrue(env["REDIS_SERVER"].startswith("redis${DOMAIN"))
        for s in SECRETS:
            if s in env:
                self.assertRegex(str(env[s]), r"^\$\{%s:[?-]" % s,
                                 "%s must come from the .env file" % s)
        # Every variable the compose file requires has a placeholder in the
        # example .env, and the placeholders are obviously not real.
        required = set(re.findall(r"\$\{([A-Z0-9_]+):\?", self.text))
        example = dict(ln.split("=", 1) for ln in self.env_example.splitlines()
                       if ln and not ln.startswith("#"))
        self.assertEqual(required - set(example), set())
        for s in SECRETS:
            if example.get(s):
                self.assertIn("CHANGE-ME", example[s], s)

    # docker-compose and systemd-analyze are installed by scripts/setup.sh:
    # these checks always run.
    def test_docker_compose_config(self):
        with tempfile.TemporaryDirectory() as d:
            env = os.path.join(d, "env")
            shutil.copy(os.path.join(ROOT, "docker/env.example"), env)
            r = subprocess.run(["docker-compose", "--env-file", env, "-f",
                                os.path.join(ROOT, "docker/docker-compose.yml"), "config"],
                               capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            # A missing secret stops it.
            with open(env, "w") as f:
                f.write("".join(ln + "\n" for ln in self.env_example.splitlines()
                                if not ln.startswith("K3S_TOKEN=")))
            r = subprocess.run(["docker-compose", "--env-file", env, "-f",
                                os.path.join(ROOT, "docker/docker-compose.yml"), "config"],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("set K3S_TOKEN", r.stderr)


class SystemdTest(unittest.TestCase):
    def setUp(self):
        self.unit = read("packaging/m3s.service")
        self.kv = {}
        for ln in self.unit.splitlines():
            if "=" in ln and not ln.startswith("#"):
                k, _, v = ln.partition("=")
                self.kv.setdefault(k, []).append(v)

    def test_directives(self):
        self.assertEqual(self.kv["EnvironmentFile"], ["/etc/m3s/m3s.env"])
        self.assertEqual(self.kv["ExecStart"], ["/usr/bin/m3s"])
        self.assertEqual(self.kv["Restart"], ["on-failure"])
        self.assertEqual(self.kv["RestartPreventExitStatus"], ["2"])
        self.assertNotIn("ExecReload", self.kv)   # the daemon ignores SIGHUP
        for k, v in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"),
                     ("PrivateTmp", "yes"), ("ProtectHome", "yes")):
            self.assertEqual(self.kv[k], [v], k)

    def test_systemd_analyze_verify(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m3s.service")
            with open(path, "w") as f:
                f.write(self.unit.replace("/usr/bin/m3s", BIN)
                        .replace("/etc/m3s/m3s.env", os.path.join(ROOT, "packaging/m3s.env")))
            r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                               text=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stderr.strip(), "", "systemd-analyze warned")


class EnvFileTest(unittest.TestCase):
    @staticmethod
    def parse(text):
        """KEY=VALUE lines as systemd's EnvironmentFile= reads these (no line
        continuations or escapes are used in the file: checked)."""
        out = {}
        for ln in text.splitlines():
            if not ln.strip() or ln.startswith("#"):
                continue
            k, _, v = ln.partition("=")
            assert "\\" not in v, ln
            if len(v) >= 2 and v[0] == v[-1] == '"':
                v = v[1:-1]
            out[k] = v
        return out

    def test_every_variable_and_its_default(self):
        text = read("packaging/m3s.env")
        names = help_variables()
        listed = re.findall(r"^#([A-Z][A-Z0-9_]*)=", text, re.M)
        self.assertEqual(listed, names)
        self.assertEqual(self.parse(text), {}, "m3s.env must set nothing by default")
        uncommented = "\n".join(re.sub(r"^#([A-Z][A-Z0-9_]*=)", r"\1", ln)
                                for ln in text.splitlines())
        env = self.parse(uncommented)
        self.assertEqual(sorted(env), sorted(names))
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        default = subprocess.run([BIN, "--print-config"], env=base, capture_output=True,
                                 text=True)
        self.assertEqual(default.returncode, 0, default.stderr)
        written = subprocess.run([BIN, "--print-config"], env=dict(base, **env),
                                 capture_output=True, text=True)
        self.assertEqual(written.returncode, 0, written.stderr)
        self.assertEqual(written.stdout, default.stdout)


if __name__ == "__main__":
    unittest.main()
