"""The M3s plugin for the mesos CLI (avmesos-cli): `mesos m3s ...`.

This file is only the glue the CLI loads (PLUGIN_CLASS, COMMANDS and one
method per command); everything it does is in m3sapi.py, which needs
nothing but the Python standard library.
"""
from avmesos.cli.exceptions import CLIException
from avmesos.cli.plugins import PluginBase

from . import m3sapi


PLUGIN_NAME = "m3s"
PLUGIN_CLASS = "M3s"

VERSION = "0.2.0"

SHORT_HELP = "Interacts with the Kubernetes Framework M3s"


class M3s(PluginBase):
    """The m3s plugin."""

    COMMANDS = {
        "list": {
            "arguments": [],
            "flags": {"-a --all": "also list frameworks that are not active"},
            "short_help": "List the M3s frameworks.",
            "long_help": "List the frameworks whose name contains 'm3s', with their web UI "
                         "(REST API) address.",
        },
        "kubeconfig": {
            "arguments": ["<framework-name>"],
            "flags": {},
            "short_help": "Print the Kubernetes cluster's kubeconfig.",
            "long_help": "Print the kubeconfig of the K3s cluster that the framework runs.",
        },
        "version": {
            "arguments": ["<framework-name>"],
            "flags": {},
            "short_help": "Print the M3s and K3s versions.",
            "long_help": "Print the version of M3s and of the K3s nodes, as JSON.",
        },
        "status": {
            "arguments": ["<framework-name>"],
            "flags": {"-m --m3s": "the tasks of M3s",
                      "-k --kubernetes": "whether the Kubernetes agents are healthy"},
            "short_help": "Print the status of the framework.",
            "long_help": "Print the status of M3s' tasks (-m) and of Kubernetes (-k).",
        },
        "scale": {
            "arguments": ["<framework-name>", "<count>"],
            "flags": {"-a --agent": "scale the K3s agents",
                      "-m --manager": "scale the K3s servers",
                      "-e --etcd": "scale the datastore"},
            "short_help": "Scale K3s agents, servers or the datastore.",
            "long_help": "Set the number of K3s agents (-a), servers (-m) or datastore "
                         "tasks (-e) to <count>; prints the difference to the old count.",
        },
        "cluster": {
            "arguments": ["<framework-name>", "<operation>"],
            "flags": {},
            "short_help": "Start, stop or restart the Kubernetes cluster.",
            "long_help": "<operation> is start, stop (scale everything to 0, remembering the "
                         "counts) or restart (servers and agents, in the background).",
        },
        "update": {
            "arguments": ["<framework-name>", "<assignment>..."],
            "flags": {"-r --rollout": "then replace what the change makes outdated, step "
                                      "by step (a rollout plan)",
                      "-f --force": "with --rollout: replace an agent whose drain timed "
                                    "out"},
            "short_help": "Change run-time variables, optionally with a rollout.",
            "long_help": "Each <assignment> is KEY=VALUE, e.g. KUBERNETES_VERSION=v1.32.0 "
                         "or K3S_AGENT_MEM=4096; checked as at start, nothing changes when "
                         "one is bad. With --rollout the outdated tasks are replaced one "
                         "at a time (see `mesos m3s plan`).",
        },
        "plan": {
            "arguments": ["<framework-name>", "[<action>]"],
            "flags": {"-j --json": "print the plan as JSON"},
            "short_help": "Show, pause, resume or abort the rollout plan.",
            "long_help": "Without <action>, print the rollout plan; <action> is pause, "
                         "resume or abort (stop after the steps under way).",
        },
    }

    def _run(self, fn, *args, **kwargs):
        try:
            print(fn(self.config.data, *args, **kwargs))
        except m3sapi.M3sError as e:
            raise CLIException(str(e)) from None

    def list(self, argv):
        self._run(m3sapi.cmd_list, bool(argv.get("--all")))

    def kubeconfig(self, argv):
        self._run(m3sapi.cmd_kubeconfig, argv["<framework-name>"])

    def version(self, argv):
        self._run(m3sapi.cmd_version, argv["<framework-name>"])

    def status(self, argv):
        self._run(m3sapi.cmd_status, argv["<framework-name>"], m3s=bool(argv.get("--m3s")),
                  kubernetes=bool(argv.get("--kubernetes")))

    def scale(self, argv):
        self._run(m3sapi.cmd_scale, argv["<framework-name>"], argv["<count>"],
                  agent=bool(argv.get("--agent")), manager=bool(argv.get("--manager")),
                  etcd=bool(argv.get("--etcd")))

    def cluster(self, argv):
        self._run(m3sapi.cmd_cluster, argv["<framework-name>"], argv["<operation>"])

    def update(self, argv):
        self._run(m3sapi.cmd_update, argv["<framework-name>"], argv["<assignment>"],
                  rollout=bool(argv.get("--rollout")), force=bool(argv.get("--force")))

    def plan(self, argv):
        self._run(m3sapi.cmd_plan, argv["<framework-name>"], argv.get("<action>"),
                  as_json=bool(argv.get("--json")))
