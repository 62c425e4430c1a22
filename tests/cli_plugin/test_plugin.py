#!/usr/bin/env python3
"""The mesos-cli plugin (mesos_cli/m3s) run by the real avmesos mesos-cli
against the daemon, the Mesos master simulator and a real redis-server,
over loopback only.

Each command runs as a user runs it: `python3 -m avmesos.cli.mesos-cli m3s
...` with PYTHONPATH at ../shared/tools/avmesos-cli (see
../shared/tools/README.md), a config file named by MESOS_CLI_CONFIG that
lists our plugin folder, and a HOME of its own. The CLI finds the framework
through the simulator's /master/frameworks and its webui_url
(FRAMEWORK_HOSTNAME=127.0.0.1). Where ../shared is absent the suite says so
and exits 77, which ctest reports as skipped.

Run: M3S_BIN=build/m3s python3 tests/cli_plugin/test_plugin.py -v
"""
import base64
import json
import os
import shutil
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "ui"))
import real_cli  # noqa: E402
from ui_harness import UiCase, test_mesos  # noqa: E402
free_port = test_mesos.free_port

USER, PASSWORD = "ops", "orchestra-secret"
SKIP = 77   # ctest SKIP_RETURN_CODE


class PluginTest(UiCase):
    tls_files = test_mesos.MesosTest.tls_files

    def setUp(self):
        super().setUp()
        self.home = tempfile.mkdtemp(prefix="m3s-cli-home-")
        self.addCleanup(shutil.rmtree, self.home, True)

    def start(self, **env):
        port = free_port()
        env.update(FRAMEWORK_HOSTNAME="127.0.0.1", FRAMEWORK_BIND="127.0.0.1",
                   FRAMEWORK_PORT=str(port))
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="1", **env)
        self.api_port = port  # cluster() picked one of its own; the daemon has ours
        self.wait_converged(sim, 1, 1, 1)
        return sim, d

    def config(self, text):
        """A config file for MESOS_CLI_CONFIG; returns its path."""
        fd, path = tempfile.mkstemp(suffix=".toml", dir=self.home)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return path

    def good_config(self, sim, name="m3s", secret=PASSWORD, ssl_verify="false"):
        return self.config(real_cli.config_text("127.0.0.1:%d" % sim.port, name, USER, secret,
                                                ssl_verify))

    def mesos(self, config, *args, env=None):
        """(exit code, stdout, stderr) of `mesos <args>` by the real CLI."""
        return real_cli.run(config, args, self.home, env)

    def ok(self, config, *args, **kw):
        """stdout of a command that must succeed."""
        rc, out, err = self.mesos(config, *args, **kw)
        self.assertEqual(rc, 0, "mesos %s: %s%s" % (" ".join(args), out, err))
        self.assertEqual(err, "")
        return out

    def fails(self, config, pattern, *args, **kw):
        """A command that must fail with one `Error: ...` line matching pattern."""
        rc, out, err = self.mesos(config, *args, **kw)
        self.assertNotEqual(rc, 0, "mesos %s succeeded: %s" % (" ".join(args), out))
        self.assertNotIn("Traceback", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertRegex(err, "^Error: " + pattern)
        return err

    # -- tests --------------------------------------------------------------------

    def test_commands_against_the_daemon(self):
        sim, d = self.start()
        cfg = self.good_config(sim)
        fw = self.connected_framework(sim)

        # The CLI loads the plugin from the config's folder.
        self.assertIn("m3s", self.ok(cfg, "--help"))
        self.assertIn("scale", self.ok(cfg, "help", "m3s"))

        # list: found through the master, with its webui_url.
        lines = self.ok(cfg, "m3s", "list").splitlines()
        self.assertEqual(lines[0].split(), ["ID", "Active", "WebUI", "Name"])
        self.assertEqual(lines[1].split(), [fw["id"], "True",
                                            "http://127.0.0.1:%d" % self.api_port, "m3s"])
        self.assertEqual(len(lines), 2)

        # status -m: the daemon's view equals the simulator's.
        st = json.loads(self.ok(cfg, "m3s", "status", "-m", "m3s"))
        self.assertEqual(set(st["Datastore"]), {t[0] for t in self.active(sim, "datastore")})
        self.assertEqual(set(st["Server"]), {t[0] for t in self.active(sim, "server")})
        self.assertEqual(set(st["Agent"]), {t[0] for t in self.active(sim, "agent")})
        self.assertEqual(set(st["Datastore"].values()), {"TASK_RUNNING"})
        code, k8s = self.api("status/k8s")
        self.assertEqual(code, 200)
        self.assertEqual(self.ok(cfg, "m3s", "status", "-k", "m3s"), k8s + "\n")
        self.assertEqual(len(self.ok(cfg, "m3s", "status", "-m", "-k", "m3s").splitlines()), 2)

        ver = json.loads(self.ok(cfg, "m3s", "version", "m3s"))
        self.assertIn("gitVersion", ver["M3SVersion"])
        # The kubeconfig: whatever the daemon serves, printed as is.
        code, body = self.api("server/config")
        self.assertEqual(code, 200)
        self.assertEqual(self.ok(cfg, "m3s", "kubeconfig", "m3s"), body + "\n")

        # scale -a / -m / -e: the printed difference, and the cluster follows.
        self.assertEqual(self.ok(cfg, "m3s", "scale", "-a", "m3s", "3"),
                         "Scale up/down agent\n2\n")
        self.wait_converged(sim, 1, 1, 3)
        self.assertEqual(self.ok(cfg, "m3s", "scale", "-m", "m3s", "2"),
                         "Scale up/down server\n1\n")
        self.wait_converged(sim, 1, 2, 3)
        self.assertEqual(self.ok(cfg, "m3s", "scale", "-a", "-m", "m3s", "1"),
                         "Scale up/down agent\n-2\nScale up/down server\n-1\n")
        self.wait_converged(sim, 1, 1, 1)
        # By framework id.
        by_id = self.good_config(sim, name=fw["id"])
        self.assertEqual(self.ok(by_id, "m3s", "scale", "-e", fw["id"], "2"),
                         "Scale up/down datastore\n1\n")
        self.wait_converged(sim, 2, 1, 1)
        self.assertEqual(self.ok(cfg, "m3s", "scale", "--etcd", "m3s", "1"),
                         "Scale up/down datastore\n-1\n")
        self.wait_converged(sim, 1, 1, 1)
        self.assertIn("Nothing to scale", self.ok(cfg, "m3s", "scale", "m3s", "4"))
        self.fails(cfg, "the count must be a whole number", "m3s", "scale", "-a", "m3s", "many")
        self.fails(cfg, "GET http://127.0.0.1:%d/api/m3s/v0/agent/scale/99999: 400 the count "
                   "must be" % self.api_port, "m3s", "scale", "-a", "m3s", "99999")
        self.wait_converged(sim, 1, 1, 1)

        # cluster stop / start / restart.
        self.assertEqual(self.ok(cfg, "m3s", "cluster", "m3s", "stop"),
                         "Shutdown Kubernetes Cluster\n")
        self.wait_converged(sim, 0, 0, 0)
        self.fails(cfg, ".*406 the cluster is shut down", "m3s", "cluster", "m3s", "restart")
        self.assertEqual(self.ok(cfg, "m3s", "cluster", "m3s", "start"),
                         "Start Kubernetes Cluster\n")
        self.wait_converged(sim, 1, 1, 1)
        before = {t[0] for t in self.active(sim, "agent")}
        self.assertEqual(self.ok(cfg, "m3s", "cluster", "m3s", "restart"),
                         "Restart Kubernetes Cluster\nRestart Scheduled.\n")
        self.wait("the agent replaced", lambda: self.converged(sim, 1, 1, 1) and
                  not before & {t[0] for t in self.active(sim, "agent")})
        self.fails(cfg, "unknown cluster operation", "m3s", "cluster", "m3s", "explode")
        self.finish(sim, d)

    def test_update_and_plan(self):
        sim, d = self.start(KUBERNETES_VERSION="v1.31.5", IMAGE_K3S="example/k3s:1")
        cfg = self.good_config(sim)
        self.fails(cfg, ".*/api/m3s/v0/plan: 404 there has never been a rollout plan",
                   "m3s", "plan", "m3s")
        self.fails(cfg, "'bogus' is not KEY=VALUE", "m3s", "update", "m3s", "bogus")
        self.fails(cfg, "--force applies only with --rollout", "m3s", "update", "--force",
                   "m3s", "IMAGE_K3S=x")
        self.fails(cfg, ".*400 K3S_AGENT_MEM=\"1\"", "m3s", "update", "m3s",
                   "IMAGE_K3S=example/k3s:2", "K3S_AGENT_MEM=1")
        self.assertNotIn("ImageK3S", json.loads(self.redis().command(
            "GET", "m3s:framework_config")), "a refused change changes nothing")
        # A change alone: printed as the daemon took it; the tasks outdated.
        self.assertEqual(self.ok(cfg, "m3s", "update", "m3s", "IMAGE_K3S=example/k3s:2"),
                         "IMAGE_K3S=example/k3s:2\n")
        # With --rollout (given after the arguments too): the plan's table.
        out = self.ok(cfg, "m3s", "update", "m3s", "KUBERNETES_VERSION=v1.32.0", "--rollout")
        lines = out.splitlines()
        self.assertEqual(lines[0], "KUBERNETES_VERSION=v1.32.0")
        self.assertRegex(lines[1], "^Plan [0-9a-f-]+: IN_PROGRESS$")
        self.assertEqual(lines[2].split()[:4], ["Phase", "Step", "Status", "Stage"])
        self.assertEqual([ln.split()[:2] for ln in lines[3:]],
                         [["server", "server-1"], ["agent", "agent-1"]])
        self.assertRegex(self.ok(cfg, "m3s", "plan", "m3s", "pause"), "^Plan [0-9a-f-]+: PAUSED")
        self.assertRegex(self.ok(cfg, "m3s", "plan", "m3s"), "^Plan [0-9a-f-]+: PAUSED")
        self.fails(cfg, ".*409 the plan cannot pause now", "m3s", "plan", "m3s", "pause")
        self.assertRegex(self.ok(cfg, "m3s", "plan", "m3s", "resume"),
                         "^Plan [0-9a-f-]+: IN_PROGRESS")
        self.wait("the plan complete", lambda: json.loads(
            self.ok(cfg, "m3s", "plan", "--json", "m3s"))["status"] == "COMPLETE",
            test_mesos.BOUND * 3)
        plan = self.ok(cfg, "m3s", "plan", "m3s").splitlines()
        self.assertTrue(all(ln.split()[2] == "COMPLETE" for ln in plan[2:]), plan)
        self.fails(cfg, "unknown plan action 'explode'", "m3s", "plan", "m3s", "explode")
        self.finish(sim, d)

    def test_errors_are_clear(self):
        sim, d = self.start()
        fw = self.connected_framework(sim)
        cfg = self.good_config(sim)
        # Wrong secret: the daemon's 401, named as such, and nothing changes.
        bad = self.good_config(sim, secret="wrong")
        self.fails(bad, ".*401 authentication failed.*\\[m3s.m3s\\]", "m3s", "status", "-m", "m3s")
        self.fails(bad, ".*401 authentication failed", "m3s", "scale", "-a", "m3s", "4")
        code, body = self.api("agent/scale")
        self.assertEqual((code, json.loads(body)["Scale"]), (200, 1))
        # No [m3s.<name>] table for the name typed.
        self.fails(self.good_config(sim, name="other"), "the config has no \\[m3s.m3s\\] table",
                   "m3s", "version", "m3s")
        # A framework the master does not know, by name and by id.
        self.fails(cfg, "Unable to find an active framework named 'nothere'",
                   "m3s", "version", "nothere")
        unknown = "00000000-0000-0000-0000-000000000000-0000"
        self.fails(self.good_config(sim, name=unknown), "Unable to find framework '%s'" % unknown,
                   "m3s", "version", unknown)
        # ssl_verify must be a boolean.
        typo = self.config('plugins = ["%s"]\n[master]\naddress = "127.0.0.1:%d"\n'
                           '[m3s.m3s]\nprincipal = "a"\nsecret = "b"\nssl_verify = "no"\n'
                           % (real_cli.PLUGIN_DIR, sim.port))
        self.fails(typo, "\\[m3s.m3s\\]: ssl_verify must be true or false", "m3s", "version",
                   "m3s")
        # A master that is not there: a transport error, one line.
        gone = self.config('plugins = ["%s"]\n[master]\naddress = "127.0.0.1:%d"\n'
                           % (real_cli.PLUGIN_DIR, free_port()))
        self.fails(gone, "Unable to open url 'http://127.0.0.1", "m3s", "list")
        # A stopped daemon. The master keeps the framework (failover) but
        # inactive: by id the CLI still calls its webui_url, which no longer
        # answers; by name there is no active framework any more, once the
        # master has noticed the disconnection (on its own clock: waited for).
        self.assertEqual(d.stop(), 0)
        by_id = self.good_config(sim, name=fw["id"])
        self.fails(by_id, "Unable to open url 'http://127.0.0.1:%d/" % self.api_port,
                   "m3s", "version", fw["id"])
        self.wait("the master to list the framework inactive",
                  lambda: self.ok(cfg, "m3s", "list").splitlines() == ["ID  Active  WebUI  Name"])
        listed = self.ok(cfg, "m3s", "list", "-a").splitlines()[1].split()
        self.assertEqual(listed[:2], [fw["id"], "False"])
        self.fails(cfg, "Unable to find an active framework named 'm3s'", "m3s", "version", "m3s")

    def test_tls_with_ssl_verify(self):
        cert, key = self.tls_files()
        b64 = {}
        for k, p in (("SSL_CRT_BASE64", cert), ("SSL_KEY_BASE64", key)):
            with open(p, "rb") as f:
                b64[k] = base64.b64encode(f.read()).decode()
        sim, d = self.start(**b64)
        url = "https://127.0.0.1:%d" % self.api_port
        lines = self.ok(self.good_config(sim), "m3s", "list").splitlines()
        self.assertEqual(lines[1].split()[2], url)
        # ssl_verify = false: the self-signed certificate is accepted.
        insecure = self.good_config(sim)
        self.assertEqual(self.ok(insecure, "m3s", "scale", "-a", "m3s", "2"),
                         "Scale up/down agent\n1\n")
        self.wait_converged(sim, 1, 1, 2)
        # ssl_verify = true: refused while the certificate is not trusted ...
        strict = self.good_config(sim, ssl_verify="true")
        self.fails(strict, "Unable to open url '%s/api/m3s/v0/server/version': .*CERTIFICATE_VERIFY"
                   "_FAILED" % url, "m3s", "version", "m3s")
        # ... and accepted once it is (the CA file a user would point at).
        ver = json.loads(self.ok(strict, "m3s", "version", "m3s", env={"SSL_CERT_FILE": cert}))
        self.assertIn("gitVersion", ver["M3SVersion"])
        self.finish(sim, d)


def main():
    if not real_cli.available():
        print("cli_plugin: skipped: the real mesos-cli is not at %s (../shared is absent)"
              % real_cli.CLI_DIR)
        sys.exit(SKIP)
    unittest.main(verbosity=2)


if __name__ == "__main__":
    main()
