"""The M3s plugin's logic, without the mesos CLI: configuration, framework
discovery through the Mesos master, the M3s REST API calls and the text
each command prints. Standard library only, so that it can be imported and
tested without avmesos-cli (main.py is the thin plugin on top of it).

Every command function returns the text to print, or raises M3sError with
a one-line message (the plugin prints it and exits non-zero).
"""
import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT = 5.0               # seconds per request (the daemon answers within 4)
DEFAULT_MASTER = "127.0.0.1:5050"


class M3sError(Exception):
    """A failure to report to the user: one line, no traceback."""


# ---- configuration ---------------------------------------------------------

def load_config(path):
    """The CLI's config.toml as a dict (tomllib, or the toml package)."""
    try:
        import tomllib
        with open(path, "rb") as f:
            return tomllib.load(f)
    except ImportError:
        import toml  # the mesos CLI's own dependency on older Pythons
        return toml.load(path)


def _bool(value, where):
    if value is None:
        return False
    if not isinstance(value, bool):
        raise M3sError("%s: ssl_verify must be true or false, not %r" % (where, value))
    return value


def master_settings(data):
    """(base URL, (principal, secret) or None, ssl_verify) of the master
    from the [master] table."""
    master = data.get("master")
    if not isinstance(master, dict):
        raise M3sError("the config has no [master] table")
    address = master.get("address", DEFAULT_MASTER)
    if not isinstance(address, str) or not address:
        raise M3sError("[master] address must be a non-empty string")
    if "://" not in address:
        address = "http://" + address
    auth = None
    if master.get("principal") and master.get("secret"):
        auth = (str(master["principal"]), str(master["secret"]))
    return address.rstrip("/"), auth, _bool(master.get("ssl_verify"), "[master]")


def framework_settings(data, name):
    """((principal, secret) or None, ssl_verify) from [m3s.<name>], where
    name is what the user typed (framework name or id)."""
    table = data.get("m3s", {})
    if not isinstance(table, dict):
        raise M3sError("[m3s] must be a table of [m3s.<framework-name>] tables")
    fw = table.get(name)
    if fw is None:
        raise M3sError("the config has no [m3s.%s] table with the framework's principal and "
                       "secret" % name)
    if not isinstance(fw, dict):
        raise M3sError("[m3s.%s] must be a table" % name)
    auth = None
    if fw.get("principal") and fw.get("secret"):
        auth = (str(fw["principal"]), str(fw["secret"]))
    return auth, _bool(fw.get("ssl_verify"), "[m3s.%s]" % name)


# ---- HTTP ----------------------------------------------------------------------

def request(method, url, auth=None, ssl_verify=False, timeout=TIMEOUT, body=None):
    """(status, body text) of one request, with body (a JSON value) or an
    empty one. Transport errors raise M3sError; HTTP error statuses are
    returned."""
    data = json.dumps(body).encode("utf-8") if body is not None else None
    req = urllib.request.Request(url, method=method,
                                 data=data if data is not None else
                                 (b"" if method == "PUT" else None))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if auth:
        token = base64.b64encode(("%s:%s" % auth).encode("utf-8")).decode("ascii")
        req.add_header("Authorization", "Basic " + token)
    ctx = None
    if url.startswith("https:"):
        ctx = ssl.create_default_context()
        if not ssl_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status, resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise M3sError("Unable to open url '%s': %s" % (url, reason)) from None


def _error_text(body):
    try:
        msg = json.loads(body).get("error")
        if msg:
            return msg
    except (ValueError, AttributeError):
        pass
    return body.strip()[:300]


def call(method, url, auth, ssl_verify, who, body=None):
    """The body of a successful answer; an HTTP error becomes M3sError with
    the daemon's JSON error message."""
    status, body = request(method, url, auth, ssl_verify, body=body)
    if status == 401:
        raise M3sError("%s %s: 401 authentication failed: check principal and secret in "
                       "[m3s.%s]" % (method, url, who))
    if status >= 400:
        raise M3sError("%s %s: %d %s" % (method, url, status, _error_text(body)))
    return body


# ---- the master ---------------------------------------------------------------

def get_frameworks(data):
    """The master's frameworks (GET /master/frameworks)."""
    base, auth, verify = master_settings(data)
    body = call("GET", base + "/master/frameworks", auth, verify, "master")
    try:
        return json.loads(body)["frameworks"]
    except (ValueError, KeyError, TypeError):
        raise M3sError("the master's /master/frameworks answer has no frameworks list") from None


def framework_id(frameworks, name):
    """The id of the framework `name`: an id as given (it has five '-'),
    else the first active framework of that name (any case)."""
    if name.count("-") == 5:
        return name
    for fw in frameworks:
        if fw.get("active") is True and str(fw.get("name", "")).lower() == name.lower():
            return fw["id"]
    raise M3sError("Unable to find an active framework named '%s'" % name)


def framework_address(frameworks, fid):
    """The framework's webui_url, the base of its REST API."""
    for fw in frameworks:
        if fw.get("id") == fid:
            url = fw.get("webui_url")
            if not url:
                raise M3sError("framework %s has no webui_url: its REST API cannot be found" % fid)
            return url.rstrip("/")
    raise M3sError("Unable to find framework '%s'" % fid)


class Framework:
    """One M3s framework's REST API, found through the master."""

    def __init__(self, data, name):
        self.name = name
        frameworks = get_frameworks(data)
        self.id = framework_id(frameworks, name)
        self.url = framework_address(frameworks, self.id)
        self.auth, self.ssl_verify = framework_settings(data, name)

    def get(self, endpoint):
        return call("GET", self.url + endpoint, self.auth, self.ssl_verify, self.name)

    def put(self, endpoint, body=None):
        return call("PUT", self.url + endpoint, self.auth, self.ssl_verify, self.name, body)


# ---- the commands ----------------------------------------------------------------

def table(header, rows):
    """Left-aligned columns, each as wide as its widest cell plus two."""
    widths = [max(len(str(r[i])) for r in [header] + rows) + 2 for i in range(len(header))]
    lines = ["".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [header] + rows]
    return "\n".join(lines)


def cmd_list(data, all_frameworks=False):
    rows = []
    for fw in get_frameworks(data):
        if "m3s" not in str(fw.get("name", "")).lower():
            continue
        if not all_frameworks and fw.get("active") is not True:
            continue
        rows.append([fw.get("id", ""), "True" if fw.get("active") else "False",
                     fw.get("webui_url", ""), fw.get("name", "")])
    return table(["ID", "Active", "WebUI", "Name"], rows)


def cmd_kubeconfig(data, name):
    return Framework(data, name).get("/api/m3s/v0/server/config")


def cmd_version(data, name):
    return Framework(data, name).get("/api/m3s/v0/server/version")


def cmd_status(data, name, m3s=False, kubernetes=False):
    fw = Framework(data, name)
    out = []
    if m3s:
        out.append(fw.get("/api/m3s/v0/status/m3s"))
    if kubernetes:
        out.append(fw.get("/api/m3s/v0/status/k8s"))
    if not out:
        out.append("Nothing to show: give -m/--m3s and/or -k/--kubernetes")
    return "\n".join(out)


SCALE_TARGETS = (("agent", "agent", "agent"), ("manager", "server", "server"),
                 ("etcd", "etcd", "datastore"))


def cmd_scale(data, name, count, agent=False, manager=False, etcd=False):
    """Scales each role whose flag is set: -a agents, -m servers
    (managers), -e the datastore (the daemon's etcd alias)."""
    try:
        n = int(count)
    except (TypeError, ValueError):
        raise M3sError("the count must be a whole number, not %r" % (count,)) from None
    if n < 0:
        raise M3sError("the count must not be negative")
    wanted = {"agent": agent, "manager": manager, "etcd": etcd}
    if not any(wanted.values()):
        return "Nothing to scale: give -a/--agent, -m/--manager or -e/--etcd"
    fw = Framework(data, name)
    out = []
    for flag, path, role in SCALE_TARGETS:
        if wanted[flag]:
            out.append("Scale up/down %s" % role)
            out.append(fw.get("/api/m3s/v0/%s/scale/%d" % (path, n)))
    return "\n".join(out)


CLUSTER_OPS = {
    "stop": ("/api/m3s/v0/cluster/shutdown", "Shutdown Kubernetes Cluster"),
    "start": ("/api/m3s/v0/cluster/start", "Start Kubernetes Cluster"),
    "restart": ("/api/m3s/v0/cluster/restart", "Restart Kubernetes Cluster"),
}


def cmd_cluster(data, name, operation):
    if operation not in CLUSTER_OPS:
        raise M3sError("unknown cluster operation '%s' (start, stop or restart)" % operation)
    path, title = CLUSTER_OPS[operation]
    body = Framework(data, name).put(path)
    return title + ("\n" + body if body else "")


def cmd_update(data, name, assignments, rollout=False, force=False):
    """Changes run-time variables (PUT cluster/update): KEY=VALUE each;
    --rollout starts a plan for what the change makes outdated, --force lets
    it replace agents whose drain timed out. Flags are also taken among the
    assignments (the CLI parses options only before the arguments)."""
    change = {}
    for a in assignments:
        if a == "--rollout":
            rollout = True
        elif a == "--force":
            force = True
        elif "=" not in a or a.startswith("="):
            raise M3sError("'%s' is not KEY=VALUE" % a)
        else:
            key, value = a.split("=", 1)
            change[key] = value
    if force and not rollout:
        raise M3sError("--force applies only with --rollout")
    if not change and not rollout:
        raise M3sError("nothing to change: give KEY=VALUE (e.g. KUBERNETES_VERSION=v1.32.0)")
    if rollout:
        change["rollout"] = True
    if force:
        change["force"] = True
    doc = json.loads(Framework(data, name).put("/api/m3s/v0/cluster/update", change))
    out = []
    for k, v in sorted(doc.get("updated", {}).items()):
        out.append("%s=%s" % (k, v if isinstance(v, str) else json.dumps(v)))
    if "updated" not in doc:
        doc = {"plan": doc}
    if doc.get("plan"):
        out.append(format_plan(doc["plan"]))
    return "\n".join(out)


def format_plan(plan):
    """A plan (GET /api/m3s/v0/plan) as a header line and a step table."""
    head = "Plan %s: %s" % (plan.get("id", ""), plan.get("status", ""))
    if plan.get("reason"):
        head += " (%s)" % plan["reason"]
    rows = []
    for ph in plan.get("phases", []):
        for st in ph.get("steps", []):
            rows.append([ph.get("name", ""), st.get("name", ""), st.get("status", ""),
                         st.get("stage") or "", st.get("old_task") or "",
                         st.get("new_task") or "-", st.get("reason") or ""])
    if not rows:
        return head + "\nNothing outdated: no step."
    return head + "\n" + table(["Phase", "Step", "Status", "Stage", "Old task", "New task",
                                "Reason"], rows)


PLAN_ACTIONS = ("pause", "resume", "abort")


def cmd_plan(data, name, action=None, as_json=False):
    """The rollout plan, or pause/resume/abort it."""
    if action is not None and action not in PLAN_ACTIONS:
        raise M3sError("unknown plan action '%s' (pause, resume or abort)" % action)
    fw = Framework(data, name)
    body = fw.put("/api/m3s/v0/plan/" + action) if action else fw.get("/api/m3s/v0/plan")
    return body if as_json else format_plan(json.loads(body))
