/* The role actors ("datastore", "server", "agent"): one per K3s role, same
 * code. Each owns its role's desired and restore counts, its resource
 * settings, its copy of the configuration (for the spec its tasks should
 * have) and its task records; nothing else changes them. It creates tasks
 * up to the desired count once its upstream role is healthy (datastore ->
 * server -> agent), persists every record through the store before acting
 * on it, replaces terminal tasks with new ones (new ids) after a per-role
 * restart backoff, kills surplus tasks (outdated ones first, then newest
 * first) and reconciles.
 *
 * Task life in a role actor:
 *   created   record "__NEW" written; handed to the offers actor
 *             (M3S_OFFERS_PENDING) once Redis confirmed it;
 *   launched  the offers actor placed it (M3S_ROLE_LAUNCHED): agent, ports
 *             and TaskInfo fields written to the record;
 *   active    Mesos reported a non-terminal state; the record follows;
 *   killing   surplus or unwanted: KILL sent, kept until a terminal state;
 *   gone      terminal state: record deleted (with the acknowledgement sent
 *             only after Redis confirmed), replacement after the backoff.
 * A record loaded in "__NEW" without an agent may or may not have reached
 * Mesos (the previous daemon died around the ACCEPT): it is reconciled
 * first and replaced by a task with a new id only when Mesos says it does
 * not know it, so no task id is ever launched twice.
 *
 * Messages it accepts:
 *   M3S_STORE_LOADED    the framework_config record (tag TAG_LOAD_CONFIG)
 *                       and the role's task records (TAG_LOAD_TASKS,
 *                       unchecked, so a m3s_store_records_t *: the role
 *                       decodes straight from Redis's replies and sets
 *                       aside a record that is not JSON, not UTF-8 or not
 *                       usable). It asks for the next chunk
 *                       (M3S_STORE_NEXT) before decoding this one, so the
 *                       store has one ready when it is done.
 *   M3S_STORE_WRITTEN   the outcome of each of its own writes, in order (tag
 *                       = write sequence; flags M3S_STORE_FAILED when
 *                       refused for good); the offers actor's
 *                       framework_config writes for this role carry
 *                       M3S_ROLE_CONFIG_TAG | seq. What waits on a write
 *                       (an offer, an acknowledgement) goes ahead only on
 *                       that write's own "stored"; on "failed" it is not
 *                       done (a new task is dropped and replaced after the
 *                       restart backoff, an update stays unacknowledged, a
 *                       request is answered -EIO with M3S_ROLE_ERROR).
 *   M3S_STORE_PRESSURE  arg 1: the store is backlogged (it watches it
 *                       from start): no task is created (scale-ups and
 *                       replacements wait) and SCALE / SET_RESOURCE
 *                       requests with a reply slot (the API's) are refused
 *                       at once with -EAGAIN; plain SCALE sends (a cluster
 *                       operation of the offers actor) still set the count.
 *                       arg 0: over; the role converges.
 *   M3S_ROLE_UPSTREAM   arg 1/0: the upstream role is healthy (from the
 *                       previous role; the datastore has none).
 *   M3S_ROLE_SUBSCRIBED from the offers actor after each subscription:
 *                       explicit reconciliation of the role's tasks.
 *   M3S_ROLE_LAUNCHED   payload m3s_role_launch_t * (taken): a pending task
 *                       was placed and its ACCEPT sent.
 *   M3S_MESOS_UPDATE    payload m3s_mesos_update_t * (taken), routed by the
 *                       offers actor; acknowledged once the new state is in
 *                       Redis. An update that writes the record hands its
 *                       ACKNOWLEDGE to the store with that write
 *                       (m3s_store_batch_then): the store sends it to the
 *                       mesos actor once that write is stored, and drops it
 *                       if the write is refused for good. One that writes
 *                       nothing waits for the record's latest write here.
 *                       Updates of a task the role does not know:
 *                       killed if not terminal, acknowledged.
 *   M3S_ROLE_SCALE      request (m3s_call or plain send), arg = new desired
 *                       count (0 .. M3S_ROLE_MAX_COUNT; -EAGAIN while
 *                       the store is backlogged, see above); flags
 *                       M3S_ROLE_SAVE_RESTORE (remember the current count
 *                       as the restore count first, if it is not 0) or
 *                       M3S_ROLE_FROM_RESTORE (arg ignored: scale to the
 *                       restore count). Answered, once the new count is in
 *                       Redis, with arg = new - old; arg < 0 as -errno when
 *                       refused (-EINVAL out of range) is flagged with
 *                       M3S_ROLE_ERROR in flags.
 *   M3S_ROLE_SET_RESOURCE request, payload m3s_role_resource_t * (taken):
 *                       changes one resource setting for tasks launched
 *                       from now on; answered (arg 0 or -EINVAL with
 *                       M3S_ROLE_ERROR) once persisted.
 *   M3S_ROLE_NODE       payload m3s_role_node_t * (taken), from the
 *                       Kubernetes actor: the Kubernetes node of a task
 *                       (label m3s.aventer.biz/taskid) and whether it is
 *                       Ready. A server or agent task counts as healthy
 *                       only while it runs, its Mesos health check (if any)
 *                       passed and its node is Ready: never while its node
 *                       is unknown or NotReady (m3s-behaviour.md §7.2). A
 *                       datastore task: RUNNING and its health check.
 *                       Also feeds the node clock (below).
 *   M3S_ROLE_KUBE_LIVE  arg 1/0, from the Kubernetes actor whenever it
 *                       changes (no payload): 1 once a node list or a
 *                       resumed watch has answered since it (re)connected,
 *                       0 while it has no kubeconfig or cannot reach the
 *                       K3s API. A role starts at 0.
 * Node clock (server and agent only; K3S_NODE_TIMEOUT, CLEANUP_WAIT): a
 * task that is RUNNING and whose node is NotReady or missing is killed once
 * that has lasted K3S_NODE_TIMEOUT and the task has run CLEANUP_WAIT
 * (m3s_role_node_deadline), and replaced as a failed task is (a new id,
 * after the restart backoff). The clock starts at the latest of: the task
 * turning RUNNING, its node last seen Ready, the K3s API view turning live;
 * it stands still while the view is not live. K3S_NODE_TIMEOUT 0: never.
 * A rollout's replacement is no exception: the rollout waits for it to be
 * Ready without a timeout of its own, so one that is killed so fails its
 * step ("ended before it was ready", how: "TASK_KILLED node not Ready").
 *   M3S_ROLE_SET_SPEC   payload m3s_role_spec_t * (taken), from the offers
 *                       actor after a run-time configuration change: the
 *                       role's copy of the configuration is replaced (tasks
 *                       are compared against it) and the resources in
 *                       res_mask are set; reported back with gen in
 *                       M3S_OFFERS_ROLE_STATE.spec_gen.
 *   M3S_ROLE_STATUS     request without payload; answered with a json_t *
 *                       {"role","desired","restore","upstream_healthy",
 *                       "healthy","backoff_ms","resources":{...},
 *                       "spec_digest","outdated","spec_unknown",
 *                       "tasks":{id:{"state","agent","hostname","since",
 *                       "healthy","phase","agent_hostname","node",
 *                       "node_ready","outdated","node_unready_since"}},
 *                       and for server and agent "kube_live",
 *                       "replaced_node_not_ready" (tasks killed by the
 *                       node clock since start),
 *                       "ended":{id:"<state> <reason>"}} (the last 8
 *                       tasks that ended unasked, how: a lost host is
 *                       TASK_UNREACHABLE/LOST REASON_AGENT_REMOVED); a task is
 *                       outdated when it was launched with another spec
 *                       than the role's configuration gives now
 *                       (m3s/taskspec.h); "outdated" is null and the task
 *                       counts in spec_unknown when its record has no
 *                       digest, null without counting before its launch.
 *   M3S_ROLE_REPLACE    payload m3s_role_replace_t * (taken), from the
 *                       rollout actor (m3s/rollout.h); the role never
 *                       replaces an outdated task by itself. op REPLACE:
 *                       old_task is killed and new_task created at once with
 *                       the role's current spec (no restart backoff, the
 *                       count unchanged); op SURGE: the count grows by one
 *                       (persisted) and new_task is created; op RETIRE:
 *                       old_task is killed and the count shrinks by one.
 *                       Idempotent: a new_task the role has is not created
 *                       again, an old_task it does not have (or is killing)
 *                       is not killed; REPLACE of an old_task it does not
 *                       have creates new_task only while the role is short
 *                       of its count. Answered with M3S_ROLE_REPLACED to
 *                       r->notify (arg r->tag, payload the same struct,
 *                       taken by the receiver) with r->result 0, -ENOENT
 *                       (nothing done: old_task not there), -EAGAIN (store
 *                       backlogged, nothing done) or -EINVAL.
 * Messages it sends: M3S_OFFERS_PENDING / _CANCEL / _FORGET / _ROLE_STATE
 * to "offers"; M3S_MESOS_CALL (KILL, RECONCILE, ACKNOWLEDGE) to "mesos",
 * directly or, for an ACKNOWLEDGE riding a write, inside that
 * M3S_STORE_WRITE's batch; M3S_STORE_WRITE / _LOAD / _WATCH to "store";
 * M3S_ROLE_UPSTREAM to the next role.
 */
#ifndef M3S_ROLE_H
#define M3S_ROLE_H

#include <stdint.h>

#include "m3s/actor.h"
#include "m3s/config.h"
#include "m3s/records.h"
#include "m3s/taskinfo.h"
#include "m3s/taskspec.h"

enum {
  M3S_ROLE_UPSTREAM = M3S_MSG_USER + 300,
  M3S_ROLE_SUBSCRIBED,
  M3S_ROLE_LAUNCHED,
  M3S_ROLE_SCALE,
  M3S_ROLE_SET_RESOURCE,
  M3S_ROLE_STATUS,
  M3S_ROLE_NODE,
  M3S_ROLE_SET_SPEC,
  M3S_ROLE_REPLACE,
  M3S_ROLE_REPLACED,
  M3S_ROLE_KUBE_LIVE,
};

/* flags of M3S_ROLE_SCALE requests and answers */
#define M3S_ROLE_SAVE_RESTORE 1u
#define M3S_ROLE_FROM_RESTORE 2u
#define M3S_ROLE_ERROR 0x100u

#define M3S_ROLE_MAX_COUNT 10000
/* Store tags of framework_config writes done for a role by the offers
 * actor: kept apart from the role's own write sequence. */
#define M3S_ROLE_CONFIG_TAG ((int64_t)1 << 48)

typedef struct m3s_role_launch {
  char task_id[M3S_TASK_ID_LEN];
  char *agent_id;
  char *hostname;        /* agent hostname */
  json_t *taskinfo;      /* deep copy of the launched TaskInfo (owned) */
  char spec_digest[M3S_SPEC_DIGEST_LEN + 1]; /* of what was launched; "" =
                                                unknown */
} m3s_role_launch_t;
void m3s_role_launch_free(void *p);

typedef struct m3s_role_node {
  char task_id[M3S_TASK_ID_LEN];
  char node[256];        /* Kubernetes node name */
  int ready;             /* 1 Ready, 0 not Ready (or Unknown), -1 node gone */
} m3s_role_node_t;

/* The times (monotonic ms, 0 = never) the node clock of a task starts
 * from: the first TASK_RUNNING, the last time its node was seen Ready, and
 * the K3s API view turning live (0 while it is not live). */
typedef struct m3s_role_node_clock {
  int64_t running_ms, last_ready_ms, live_ms;
} m3s_role_node_clock_t;
/* Since when the task's node counts as not Ready: the latest of the three,
 * or 0 (no clock) when the task is not running or the view not live. Only
 * meaningful while the node is not Ready. */
int64_t m3s_role_node_since(const m3s_role_node_clock_t *c);
/* When such a task is to be killed: since + timeout_ms, but not before
 * running_ms + cleanup_ms; INT64_MAX when never (no clock, timeout 0). */
int64_t m3s_role_node_deadline(const m3s_role_node_clock_t *c, int64_t timeout_ms,
                               int64_t cleanup_ms);

typedef enum m3s_role_resource_kind {
  M3S_RES_CPU, M3S_RES_CPU_LIMIT, M3S_RES_MEM, M3S_RES_MEM_LIMIT,
  M3S_RES_DISK, M3S_RES_DISK_LIMIT,
} m3s_role_resource_kind_t;

typedef struct m3s_role_resource {
  m3s_role_resource_kind_t kind;
  double value;
} m3s_role_resource_t;

/* A run-time configuration change, from the offers actor once it accepted
 * it (m3s/liveconfig.h). */
typedef struct m3s_role_spec {
  m3s_config_t cfg;      /* the whole new configuration (owned) */
  uint64_t gen;          /* the offers actor's change count */
  unsigned res_mask;     /* 1u << m3s_role_resource_kind_t the change sets */
  m3s_task_resources_t res; /* the role's resources after the change */
} m3s_role_spec_t;
void m3s_role_spec_free(void *p);

typedef enum m3s_role_replace_op {
  M3S_REPLACE_INPLACE, M3S_REPLACE_SURGE, M3S_REPLACE_RETIRE,
} m3s_role_replace_op_t;

/* A replacement asked by the rollout actor (free()). */
typedef struct m3s_role_replace {
  m3s_role_replace_op_t op;
  char old_task[M3S_TASK_ID_LEN];  /* "" for SURGE */
  char new_task[M3S_TASK_ID_LEN];  /* "" for RETIRE */
  m3s_actor_t *notify;
  int64_t tag;
  int result;                      /* set by the role */
} m3s_role_replace_t;

extern const m3s_actor_ops_t m3s_role_datastore_ops;
extern const m3s_actor_ops_t m3s_role_server_ops;
extern const m3s_actor_ops_t m3s_role_agent_ops;

/* The ops of a role's actor (NULL for M3S_ROLE_NONE); its name is
 * m3s_role_name(role). */
const m3s_actor_ops_t *m3s_role_ops(m3s_role_t role);

#endif
