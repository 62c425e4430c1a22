#!/usr/bin/env python3
"""The mesos-cli plugin (mesos_cli/m3s) against the real daemon, the Mesos
master simulator and a real redis-server, over loopback only.

The plugin's logic (m3sapi.py) is called as the CLI would call it, with a
config.toml written here; the framework is found through the simulator's
/master/frameworks and its webui_url (FRAMEWORK_HOSTNAME=127.0.0.1). The
plugin class itself (main.py) is loaded with a minimal stand-in for the
CLI's `cli` package (avmesos-cli cannot be installed here) to check that
its COMMANDS and methods fit together.

Run: M3S_BIN=build/m3s python3 tests/cli_plugin/test_plugin.py -v
"""
import io
import json
import os
import socket
import sys
import tempfile
import types
import unittest
import contextlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(HERE, "..", "ui"))
sys.path.insert(0, os.path.join(ROOT, "mesos_cli"))
sys.path.insert(0, os.path.join(ROOT, "mesos_cli", "m3s"))
from ui_harness import UiCase  # noqa: E402
import m3sapi  # noqa: E402  (alone: the package's __init__ needs the CLI)

USER, PASSWORD = "ops", "orchestra-secret"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PluginTest(UiCase):
    def start(self, **env):
        port = free_port()
        env.update(FRAMEWORK_HOSTNAME="127.0.0.1", FRAMEWORK_BIND="127.0.0.1",
                   FRAMEWORK_PORT=str(port))
        sim, d = self.cluster(agents=5, K3S_AGENT_COUNT="1", **env)
        self.api_port = port  # cluster() picked one of its own; the daemon has ours
        self.wait_converged(sim, 1, 1, 1)
        return sim, d

    def config(self, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        self.addCleanup(os.unlink, f.name)
        f.write(text)
        f.close()
        return m3sapi.load_config(f.name)

    def good_config(self, sim, name="m3s", secret=PASSWORD):
        return self.config("""
plugins = ["%s"]

[master]
  address = "127.0.0.1:%d"

[m3s.%s]
  principal = "%s"
  secret = "%s"
  ssl_verify = false
""" % (os.path.join(ROOT, "mesos_cli", "m3s"), sim.port, name, USER, secret))

    def test_commands_against_the_daemon(self):
        sim, d = self.start()
        cfg = self.good_config(sim)
        fw = self.connected_framework(sim)

        # list: found through the master, with its webui_url.
        out = m3sapi.cmd_list(cfg)
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "Active", "WebUI", "Name"])
        self.assertEqual(lines[1].split(), [fw["id"], "True",
                                            "http://127.0.0.1:%d" % self.api_port, "m3s"])

        # status -m: the daemon's view equals the simulator's.
        st = json.loads(m3sapi.cmd_status(cfg, "m3s", m3s=True))
        self.assertEqual(set(st["Datastore"]), {t[0] for t in self.active(sim, "datastore")})
        self.assertEqual(set(st["Server"]), {t[0] for t in self.active(sim, "server")})
        self.assertEqual(set(st["Agent"]), {t[0] for t in self.active(sim, "agent")})
        self.assertEqual(set(st["Datastore"].values()), {"TASK_RUNNING"})
        self.assertIn(m3sapi.cmd_status(cfg, "m3s", kubernetes=True), ("ok", "nok"))
        both = m3sapi.cmd_status(cfg, "m3s", m3s=True, kubernetes=True).splitlines()
        self.assertEqual(len(both), 2)
        self.assertIn("Nothing to show", m3sapi.cmd_status(cfg, "m3s"))

        ver = json.loads(m3sapi.cmd_version(cfg, "m3s"))
        self.assertIn("gitVersion", ver["M3SVersion"])
        # The kubeconfig: whatever the daemon serves, printed as is.
        code, body = self.api("server/config")
        self.assertEqual(code, 200)
        self.assertEqual(m3sapi.cmd_kubeconfig(cfg, "m3s"), body)

        # scale -a / -m / -e, by name and by framework id.
        self.assertEqual(m3sapi.cmd_scale(cfg, "m3s", "3", agent=True),
                         "Scale up/down agent\n2")
        self.wait_converged(sim, 1, 1, 3)
        self.assertEqual(m3sapi.cmd_scale(cfg, "m3s", "2", manager=True),
                         "Scale up/down server\n1")
        self.wait_converged(sim, 1, 2, 3)
        self.assertEqual(m3sapi.cmd_scale(cfg, "m3s", "1", manager=True, agent=True),
                         "Scale up/down agent\n-2\nScale up/down server\n-1")
        self.wait_converged(sim, 1, 1, 1)
        by_id = self.good_config(sim, name=fw["id"])
        self.assertEqual(m3sapi.cmd_scale(by_id, fw["id"], "2", etcd=True),
                         "Scale up/down datastore\n1")
        self.wait_converged(sim, 2, 1, 1)
        self.assertEqual(m3sapi.cmd_scale(cfg, "m3s", "1", etcd=True),
                         "Scale up/down datastore\n-1")
        self.wait_converged(sim, 1, 1, 1)
        self.assertIn("Nothing to scale", m3sapi.cmd_scale(cfg, "m3s", "4"))
        with self.assertRaisesRegex(m3sapi.M3sError, "whole number"):
            m3sapi.cmd_scale(cfg, "m3s", "many", agent=True)
        with self.assertRaisesRegex(m3sapi.M3sError, "400 the count must be"):
            m3sapi.cmd_scale(cfg, "m3s", "99999", agent=True)

        # cluster stop / start / restart.
        self.assertEqual(m3sapi.cmd_cluster(cfg, "m3s", "stop"), "Shutdown Kubernetes Cluster")
        self.wait_converged(sim, 0, 0, 0)
        with self.assertRaisesRegex(m3sapi.M3sError, "406 the cluster is shut down"):
            m3sapi.cmd_cluster(cfg, "m3s", "restart")
        self.assertEqual(m3sapi.cmd_cluster(cfg, "m3s", "start"), "Start Kubernetes Cluster")
        self.wait_converged(sim, 1, 1, 1)
        before = {t[0] for t in self.active(sim, "agent")}
        self.assertEqual(m3sapi.cmd_cluster(cfg, "m3s", "restart"),
                         "Restart Kubernetes Cluster\nRestart Scheduled.")
        self.wait("the agent replaced", lambda: self.converged(sim, 1, 1, 1) and
                  not before & {t[0] for t in self.active(sim, "agent")})
        with self.assertRaisesRegex(m3sapi.M3sError, "unknown cluster operation"):
            m3sapi.cmd_cluster(cfg, "m3s", "explode")
        self.finish(sim, d)

    def test_errors_are_clear(self):
        sim, d = self.start()
        # Wrong secret: the daemon's 401, named as such.
        bad = self.good_config(sim, secret="wrong")
        with self.assertRaisesRegex(m3sapi.M3sError, "401 authentication failed.*\\[m3s.m3s\\]"):
            m3sapi.cmd_status(bad, "m3s", m3s=True)
        # No [m3s.<name>] table for the name typed.
        cfg = self.good_config(sim)
        with self.assertRaisesRegex(m3sapi.M3sError, "no \\[m3s.m3s\\] table"):
            m3sapi.cmd_version(self.good_config(sim, name="other"), "m3s")
        # A framework the master does not know.
        with self.assertRaisesRegex(m3sapi.M3sError, "Unable to find an active framework"):
            m3sapi.cmd_version(cfg, "nothere")
        # ssl_verify must be a boolean.
        typo = self.config('[master]\naddress = "127.0.0.1:%d"\n[m3s.m3s]\nprincipal = "a"\n'
                           'secret = "b"\nssl_verify = "no"\n' % sim.port)
        with self.assertRaisesRegex(m3sapi.M3sError, "ssl_verify must be true or false"):
            m3sapi.cmd_version(typo, "m3s")
        # A master that is not there: a transport error, one line.
        gone = self.config('[master]\naddress = "127.0.0.1:%d"\n' % free_port())
        with self.assertRaisesRegex(m3sapi.M3sError, "Unable to open url 'http://127.0.0.1"):
            m3sapi.cmd_list(gone)
        with self.assertRaisesRegex(m3sapi.M3sError, "no \\[master\\] table"):
            m3sapi.cmd_list(self.config('plugins = []\n'))
        # A stopped daemon: its webui_url no longer answers.
        self.assertEqual(d.stop(), 0)
        with self.assertRaisesRegex(m3sapi.M3sError, "Unable to open url 'http://127.0.0.1:%d/"
                                    % self.api_port):
            m3sapi.cmd_version(cfg, "m3s")

    def test_plugin_class_with_a_stand_in_cli(self):
        """main.py as the CLI loads it: every command has its method, and
        the docopt-style argument dict reaches m3sapi."""
        cli = types.ModuleType("cli")
        exc = types.ModuleType("cli.exceptions")
        plugins = types.ModuleType("cli.plugins")

        class CLIException(Exception):
            pass

        class PluginBase:
            def __init__(self, settings, config):
                self.settings, self.config = settings, config
        exc.CLIException = CLIException
        plugins.PluginBase = PluginBase
        saved = {k: sys.modules.get(k) for k in ("cli", "cli.exceptions", "cli.plugins")}
        sys.modules.update({"cli": cli, "cli.exceptions": exc, "cli.plugins": plugins})
        try:
            import importlib
            pkg = importlib.import_module("m3s")
        finally:
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v
        self.assertEqual((pkg.PLUGIN_NAME, pkg.PLUGIN_CLASS), ("m3s", "M3s"))
        cls = getattr(pkg, pkg.PLUGIN_CLASS)
        for name, spec in cls.COMMANDS.items():
            self.assertTrue(callable(getattr(cls, name)), name)
            self.assertEqual(set(spec), {"arguments", "flags", "short_help", "long_help"})
        self.assertEqual(set(cls.COMMANDS["scale"]["flags"]),
                         {"-a --agent", "-m --manager", "-e --etcd"})

        sim, d = self.start()
        plugin = cls(None, types.SimpleNamespace(data=self.good_config(sim)))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            plugin.scale({"<framework-name>": "m3s", "<count>": "2", "--agent": True,
                          "--manager": False, "--etcd": False})
        self.assertEqual(out.getvalue(), "Scale up/down agent\n1\n")
        self.wait_converged(sim, 1, 1, 2)
        with self.assertRaisesRegex(CLIException, "Unable to find an active framework"):
            plugin.version({"<framework-name>": "zzz"})
        self.finish(sim, d)


if __name__ == "__main__":
    unittest.main(verbosity=2)
