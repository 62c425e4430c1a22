/* The offers actor ("offers"): holds the pending launches of all roles and
 * answers every OFFERS event at once: it places as many pending tasks as fit
 * (placement.h: cpus, mem, disk, individual ports, hostname constraints, at
 * most K3S_MAX_PER_AGENT tasks of one role per Mesos agent), sends ONE
 * ACCEPT per agent with all its LAUNCH operations, declines every unused
 * offer with REFUSE_OFFERS seconds, never keeps an offer, SUPPRESSes when
 * nothing is pending and REVIVEs when demand appears.
 *
 * It is also the cluster-wide desk: it routes status updates to the role
 * that owns the task (task id -> role map, fed by the roles), kills and
 * acknowledges updates of tasks nobody owns, owns the framework_config
 * record (merging what each role reports and the cluster fields: server
 * hostname and port, cordon flag), runs the implicit reconciliation every
 * RECONCILE_WAIT, and drives cluster shutdown/start/restart in the
 * background. The Mesos actor subscribes only after this actor said READY,
 * which it does once every role has loaded its records: no update can reach
 * a role that does not yet know its tasks.
 *
 * Messages it accepts:
 *   M3S_STORE_LOADED      framework_config (the cluster fields).
 *   M3S_STORE_WRITTEN     its own framework_config writes (cordon answers;
 *                         -EIO with M3S_ROLE_ERROR when refused for good).
 *   M3S_STORE_PRESSURE    arg 1: the store is backlogged: nothing is placed
 *                         (every offer declined) and CLUSTER, SCHEDULING
 *                         and CONFIG_UPDATE requests are refused at once
 *                         (flags M3S_ROLE_ERROR, arg -EAGAIN); arg 0: over,
 *                         REVIVE when tasks are pending.
 *   M3S_OFFERS_ROLE_READY payload m3s_offers_ready_t * (taken): a role has
 *                         loaded its records; the tasks it owns.
 *   M3S_OFFERS_ROLE_STATE payload m3s_offers_role_state_t * (taken): a
 *                         role's counts, resources and health changed; the
 *                         framework_config write goes out with notify = the
 *                         role and tag = M3S_ROLE_CONFIG_TAG | state->seq.
 *   M3S_OFFERS_PENDING    payload m3s_offers_pending_t * (taken): a task
 *                         waiting for resources (also registers its owner).
 *   M3S_OFFERS_CANCEL     payload char * task id: no longer to be placed.
 *   M3S_OFFERS_FORGET     payload char * task id: terminal, owner forgets it.
 *   M3S_MESOS_SUBSCRIBED / _OFFERS / _RESCIND / _UPDATE  from "mesos".
 *   M3S_OFFERS_CLUSTER    request, arg = m3s_cluster_op_t; answered at once
 *                         with arg 0, or flags M3S_ROLE_ERROR and arg
 *                         -EALREADY (start of a running cluster, restart of
 *                         a stopped one) or -EBUSY (another operation runs).
 *   M3S_OFFERS_SCHEDULING request, arg 1 = cordon agents
 *                         (K3SDisableScheduling), 0 = uncordon; answered
 *                         once persisted.
 *   M3S_OFFERS_CONFIG_UPDATE request, payload m3s_live_change_t * (taken,
 *                         free()): a run-time configuration change
 *                         (m3s/liveconfig.h). Checked against its own copy
 *                         of the configuration with the roles' current
 *                         resources; refused at once (flags M3S_ROLE_ERROR,
 *                         arg -EINVAL, payload char * the reason), else
 *                         adopted for the TaskInfos it builds from now on,
 *                         sent to the roles (M3S_ROLE_SET_SPEC), written to
 *                         framework_config and answered once Redis has it
 *                         (payload json_t * {"updated": {name: value}}).
 *                         Resource values in role states older than the
 *                         change do not overwrite it.
 *   M3S_OFFERS_STATUS     request; answered with a json_t * object: pending
 *                         tasks, offer counters, suppressed, cluster
 *                         operation, server hostname/port, cordon flag.
 * Messages it sends: M3S_MESOS_CALL and M3S_MESOS_READY to "mesos",
 * M3S_ROLE_LAUNCHED / _SUBSCRIBED / _SCALE and routed M3S_MESOS_UPDATE to
 * the roles, M3S_STORE_WRITE / _LOAD / _WATCH to "store".
 */
#ifndef M3S_OFFERS_H
#define M3S_OFFERS_H

#include <stdbool.h>

#include "m3s/actor.h"
#include "m3s/records.h"
#include "m3s/taskinfo.h"

enum {
  M3S_OFFERS_ROLE_READY = M3S_MSG_USER + 400,
  M3S_OFFERS_ROLE_STATE,
  M3S_OFFERS_PENDING,
  M3S_OFFERS_CANCEL,
  M3S_OFFERS_FORGET,
  M3S_OFFERS_CLUSTER,
  M3S_OFFERS_SCHEDULING,
  M3S_OFFERS_STATUS,
  M3S_OFFERS_CONFIG_UPDATE,
};

typedef enum m3s_cluster_op {
  M3S_CLUSTER_SHUTDOWN = 1,   /* remember counts, scale all to 0 */
  M3S_CLUSTER_START,          /* scale all to the remembered counts */
  M3S_CLUSTER_RESTART,        /* servers + agents down, then up again */
  M3S_CLUSTER_RESTART_DS,     /* everything down, then up again */
  M3S_CLUSTER_RESTART_SERVER, /* servers + agents */
  M3S_CLUSTER_RESTART_AGENT,  /* agents */
} m3s_cluster_op_t;

typedef struct m3s_offers_known {
  char task_id[M3S_TASK_ID_LEN];
  char *agent_id;     /* "" when not launched */
  char *hostname;     /* agent hostname, "" when unknown */
} m3s_offers_known_t;

typedef struct m3s_offers_ready {
  m3s_role_t role;
  m3s_offers_known_t *tasks;
  size_t n;
} m3s_offers_ready_t;
void m3s_offers_ready_free(void *p);

typedef struct m3s_offers_role_state {
  m3s_role_t role;
  int64_t seq;                  /* for the framework_config write tag */
  int desired, restore;
  int live;                     /* tasks created and not terminal */
  int running;                  /* of which TASK_RUNNING */
  bool healthy;
  m3s_task_resources_t res;
  uint64_t spec_gen;            /* the last M3S_ROLE_SET_SPEC it applied */
} m3s_offers_role_state_t;

typedef struct m3s_offers_pending {
  char task_id[M3S_TASK_ID_LEN];
  m3s_role_t role;
  m3s_task_resources_t res;     /* what to launch it with */
} m3s_offers_pending_t;

extern const m3s_actor_ops_t m3s_offers_ops;

#endif
