/* The Kubernetes actor ("kube"): the daemon's view of the K3s cluster
 * through the K3s API (m3s-behaviour.md §7.4, §7.5), as the original's
 * embedded controller, rebuilt whenever what it depends on changes.
 *
 * What it does, every HEARTBEAT_INTERVAL:
 *   - reads <fw>:kubernetes_config (written by m3s-controller in the K3s
 *     server container) through the store (M3S_STORE_LOAD), parses it with
 *     libyaml (current-context, else the first cluster and user) and takes
 *     the cluster's server and certificate-authority-data and the user's
 *     client-certificate-data and client-key-data (or token);
 *   - asks the offers actor (M3S_OFFERS_STATUS) where the K3s server task
 *     runs ("server_hostname", "server_port") and whether the agents are
 *     cordoned ("disable_scheduling");
 *   - asks the server and agent roles (M3S_ROLE_STATUS) which tasks they
 *     have and what they believe about their nodes.
 * While no K3s server node is Ready (agents wait), the kubeconfig, then the
 * server's address and tasks, are looked for every second instead.
 * The API is reached at https://<server_hostname>:<server_port> (the host
 * port mapped to 6443) with the kubeconfig's CA and client certificate
 * from memory (libcurl + OpenSSL blobs, the server's certificate and
 * hostname verified: the server task carries --tls-san=<agent hostname>).
 * When the kubeconfig or that address changes, every transfer is dropped
 * and the client is built again (the original never rebuilt it).
 *
 * The actor's files are described in src/actors/kube-int.h.
 *
 * Nodes: GET /api/v1/nodes, then a watch from the list's resourceVersion
 * (newline-delimited watch events on one long transfer, bookmarks asked
 * for, ended by the API server after WATCH_TIMEOUT_S). A watch that ends
 * is resumed from the last resourceVersion seen; 410 Gone (as the HTTP
 * status or as an ERROR event with code 410) means a fresh list. Every
 * failure (connection, TLS, HTTP status, malformed answer) is retried with
 * exponential backoff and jitter (KUBE_BACKOFF_MIN_MS .. KUBE_BACKOFF_MAX_MS);
 * it is logged once per change of state, reported by M3S_KUBE_STATUS and
 * on /metrics, and never stops the daemon.
 *
 * For each node:
 *   - its Node object is written to <fw>:kubernetes:<name> (deleted when
 *     the node is deleted or missing from a new list);
 *   - its task: label m3s.aventer.biz/taskid, else the first element of
 *     the annotation k3s.io/node-args (a JSON array) that contains
 *     "taskid=": the text after that up to a ',' or the end (so both
 *     "m3s.aventer.biz/taskid=<id>" and the agents'
 *     "node-labels=m3s.aventer.biz/taskid=<id>" work);
 *   - its role: "server" when the name contains "server" or it has the
 *     node-role.kubernetes.io/control-plane or .../master label, else
 *     "agent";
 *   - M3S_ROLE_NODE (ready 1/0, -1 when the node is gone or no longer
 *     names that task) goes to that role's actor whenever the task or its
 *     readiness changes, and again whenever the role's status shows it
 *     believes something else (a role that did not know the task yet).
 * Rules it enforces:
 *   - cordon: every agent node's spec.unschedulable is the offers actor's
 *     K3SDisableScheduling flag OR its task in the drain set (PATCH,
 *     strategic merge patch); nothing is patched for the flag before it is
 *     known; a server node is cordoned only while its task drains, and
 *     uncordoned when released; a cordoned node is not uncordoned in the
 *     actor's first 10 s (KUBE_UNCORDON_SETTLE_MS), so that after a daemon
 *     restart the caller of M3S_KUBE_DRAIN has time to ask again before a
 *     node it drains takes pods;
 *   - drains: for a task in the drain set whose node is known, once the
 *     node is seen cordoned, its pods are listed (GET /api/v1/pods?
 *     fieldSelector=spec.nodeName=<node>) every KUBE_DRAIN_TICK_MS (1 s,
 *     and at once when the last eviction is answered) and every pod that is not a DaemonSet's (ownerReferences), not a
 *     mirror pod (annotation kubernetes.io/config.mirror) and not
 *     terminated (phase Succeeded or Failed) is evicted once (POST
 *     /api/v1/namespaces/<ns>/pods/<pod>/eviction, a policy/v1 Eviction);
 *     429 (a PodDisruptionBudget refuses for now) and other failures are
 *     retried after 2..10 s of backoff with jitter, logged once per
 *     change; 404 means the pod is gone already. The task is "drained"
 *     once a list shows none of those pods left; a task whose node is not
 *     known (not yet, or no more) is not drained ("node": null): the
 *     caller decides. A pod already terminating
 *     (deletionTimestamp) is waited for, not evicted. The drain set is in
 *     memory only: after a daemon restart the caller asks again (harmless:
 *     a pod that is gone answers 404);
 *   - scaled-down agents: an agent node whose task id the agent role no
 *     longer lists, and that is not Ready, in two consecutive heartbeats, is
 *     deleted from Kubernetes (DELETE /api/v1/nodes/<name>); a Ready node is
 *     never deleted, nor a node without a task id, nor a server node.
 *
 * Messages it accepts:
 *   M3S_STORE_LOADED  the kubeconfig (tag TAG_KUBECONFIG).
 *   M3S_STORE_PRESSURE arg 1: the store is backlogged: node records are not
 *                     written, only marked (the latest object is kept);
 *                     arg 0: every marked node is written. Deletes go out
 *                     either way.
 *   M3S_KUBE_STATUS   request, arg 0 (full) or M3S_KUBE_BRIEF (nodes
 *                     without nodeInfo); answered with a json_t * (owned by
 *                     the receiver): {"connected": bool, "api": url or "",
 *                     "error": "" or why it is not connected,
 *                     "kubeconfig": bool, "server_wait": "" when a K3s
 *                     server node is Ready, else why not (no kubeconfig
 *                     yet, the API unreachable and why, the node NotReady
 *                     or not seen): what the agents wait for, also logged
 *                     at each heartbeat where it changed,
 *                     "version": n (changes whenever
 *                     a node's name, task or readiness does),
 *                     "disable_scheduling": bool or null, "lists": n,
 *                     "watches": n, "relists_gone": n, "errors": n,
 *                     "patches": n, "deletes": n,
 *                     "nodes": {name: {"ready", "task_id", "role",
 *                     "unschedulable", "nodeInfo", "draining": bool,
 *                     "pods": evictable pods on it at the last look, or
 *                     null (not draining, or not looked yet), "drained":
 *                     bool, "drain_error": "" or the latest reason}},
 *                     "drains": {task id: {"node": name or null (not
 *                     known), "pods": n or null, "drained": bool,
 *                     "evictions": n sent, "refused": n (429s), "error":
 *                     "" or the latest reason}},
 *                     "evictions": {"ok": n (including 404: gone),
 *                     "refused": n, "error": n}}.
 *   M3S_KUBE_CONFIG   request; answered with a char * (owned by the
 *                     receiver, free()) holding the kubeconfig with every
 *                     "127.0.0.1:6443" replaced by
 *                     <server_hostname>:<server_port> exactly as the
 *                     original's /server/config, or a NULL payload when
 *                     there is no kubeconfig yet.
 *   M3S_KUBE_DRAIN    payload a task id (char *, taken: free()), arg 0, no
 *                     answer: the task joins the drain set (asking again
 *                     changes nothing); its node is cordoned and drained
 *                     (see the rules). Poll M3S_KUBE_STATUS for "drains".
 *   M3S_KUBE_RELEASE  payload a task id (char *, taken: free()), arg 0, no
 *                     answer: the task leaves the drain set; its node, if
 *                     it still exists, goes back to unschedulable =
 *                     K3SDisableScheduling (agents) or is uncordoned
 *                     (a server node). Unknown task: nothing happens.
 * Messages it sends: M3S_STORE_LOAD / _WRITE / _WATCH to "store",
 * M3S_OFFERS_STATUS (request) to "offers", M3S_ROLE_STATUS (request),
 * M3S_ROLE_NODE and M3S_ROLE_KUBE_LIVE (arg "connected", at each change: the
 * roles' node clocks run only on a live view) to "server" and "agent". Its requests carry reply slots
 * that it polls without blocking; a request unanswered after
 * ASK_TIMEOUT_MS is abandoned (the slot's reference counting makes a late
 * answer harmless).
 *
 * Threads: one actor thread owns the curl multi handle, every JSON value
 * and every string above; answers are new values built for the receiver.
 * The helpers below are pure functions: any thread.
 */
#ifndef M3S_KUBE_H
#define M3S_KUBE_H

#include <jansson.h>
#include <stddef.h>

#include "m3s/actor.h"

enum {
  M3S_KUBE_STATUS = M3S_MSG_USER + 500,
  M3S_KUBE_CONFIG,
  M3S_KUBE_DRAIN,
  M3S_KUBE_RELEASE,
};

#define M3S_KUBE_BRIEF 1 /* arg of M3S_KUBE_STATUS: leave nodeInfo out */

#define M3S_KUBE_TASK_LABEL "m3s.aventer.biz/taskid"
#define M3S_KUBE_NODE_ARGS "k3s.io/node-args"

/* What the daemon needs of a kubeconfig. Every member is owned; the PEM
 * buffers are NUL-terminated as well as sized. */
typedef struct m3s_kubeconfig {
  char *server;            /* "https://127.0.0.1:6443" */
  char *ca_pem;            /* certificate-authority-data, decoded; NULL = none */
  size_t ca_len;
  char *cert_pem;          /* client-certificate-data, decoded; NULL = none */
  size_t cert_len;
  char *key_pem;           /* client-key-data, decoded; NULL = none */
  size_t key_len;
  char *token;             /* user.token; NULL = none */
} m3s_kubeconfig_t;

/* Parses kubeconfig YAML text[0..len) into *out (zeroed first). Returns 0,
 * or -EPROTO with one line in err (no secret in it) and nothing in *out to
 * free. The cluster and user are those of current-context when it names
 * them, else the first of each. A server is required, and either a client
 * certificate with its key or a token. */
int m3s_kubeconfig_parse(const char *text, size_t len, m3s_kubeconfig_t *out, char *err,
                         size_t errlen);
/* Frees what *k owns (the key wiped first) and zeroes it; NULL-safe. */
void m3s_kubeconfig_free(m3s_kubeconfig_t *k);

/* New string (free()): text with every "127.0.0.1:6443" replaced by
 * "<host>:<port>" (§9.3 #9). */
char *m3s_kubeconfig_rewrite(const char *text, const char *host, int port);

/* New string (free()): the server URL with its host and port replaced by
 * host:port (IPv6 literals bracketed), its path kept; NULL when server is
 * not an http(s) URL. */
char *m3s_kube_api_url(const char *server, const char *host, int port);

/* The task id of a Node object (label, then the node-args annotation), as
 * a new string (free()), or NULL. */
char *m3s_kube_node_task_id(const json_t *node);
/* 1 when the Node's Ready condition is "True", else 0. */
int m3s_kube_node_ready(const json_t *node);
/* 1 when the node is a K3s server (name or role labels), else 0. */
int m3s_kube_node_is_server(const json_t *node);

extern const m3s_actor_ops_t m3s_kube_ops;

#endif
