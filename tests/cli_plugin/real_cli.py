"""The real avmesos mesos-cli from ../shared/tools/avmesos-cli (see
../shared/tools/README.md), run as a user runs it, with our plugin
(mesos_cli/m3s) listed in its config file. Shared by tests/cli_plugin and
tests/realmesos."""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
CLI_DIR = os.path.abspath(os.environ.get(
    "M3S_AVMESOS_CLI", os.path.join(ROOT, "..", "shared", "tools", "avmesos-cli")))
PLUGIN_DIR = os.path.join(ROOT, "mesos_cli", "m3s")
# The CLI's dependencies are Debian packages (scripts/setup.sh): Debian's
# Python sees them, whatever other python3 comes first on PATH.
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def available():
    return os.path.isdir(os.path.join(CLI_DIR, "avmesos", "cli"))


def config_text(master, name, principal, secret, ssl_verify="false"):
    """A config file for MESOS_CLI_CONFIG: our plugin, the master and one
    [m3s.<name>] table."""
    return """plugins = ["%s"]

[master]
  address = "%s"

[m3s."%s"]
  principal = "%s"
  secret = "%s"
  ssl_verify = %s
""" % (PLUGIN_DIR, master, name, principal, secret, ssl_verify)


def run(config, args, home, env=None):
    """(exit code, stdout, stderr) of `mesos <args>`. config: the path of
    the config file; home: a writable HOME (the CLI needs one)."""
    e = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": home,
         "PYTHONPATH": CLI_DIR, "MESOS_CLI_CONFIG": config, "PYTHONDONTWRITEBYTECODE": "1"}
    e.update(env or {})
    p = subprocess.run([PYTHON, "-m", "avmesos.cli.mesos-cli"] + list(args),
                       env=e, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr
