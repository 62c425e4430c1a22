/* Offer placement: which pending tasks go on which offers of one OFFERS
 * event (m3s-behaviour.md §5, fixing §13.1 item 6).
 *
 * Pure: no I/O, no globals, any thread may call it. The offers are the
 * checked array of m3s_event_t.offers (mesos-event.h): every offer has an
 * id.value, agent_id.value, hostname and a resources array of objects with a
 * string name. Everything else in a resource is checked here.
 *
 * Rules (mesos-http-api.md §3.2, §4.2, §10.3):
 *  - A resource counts when it is allocated to the framework role
 *    (allocation_info.role == opts->role, or no allocation_info at all, as
 *    for a framework without MULTI_ROLE), both unreserved and reserved.
 *    Revocable and shared resources, and disks with a source or persistence
 *    (mount disks and volumes cannot be carved), are never used.
 *  - Scalars are summed per name across all counted entries of all offers of
 *    one agent and compared in thousandths, the master's fixed point; a task
 *    takes from reserved entries first.
 *  - cpus, mem and disk are all checked; every port a task needs (its fixed
 *    one and n_ports free ones) must lie inside a counted ports range, and
 *    no port is handed out twice.
 *  - Tasks are taken in the given order; each goes on the first agent with
 *    room, looking from the agent after the one used last (so equal tasks
 *    spread), at most max_per_agent_per_role of one role per agent counting
 *    those already running there.
 */
#ifndef M3S_PLACEMENT_H
#define M3S_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define M3S_PLACE_MAX_PORTS 8   /* host ports of one task, fixed included */
#define M3S_PLACE_MAX_ROLES 8   /* task roles are 0 .. this - 1 */
#define M3S_PLACE_MAX_SLICES 24 /* resource entries one task is carved from */

typedef struct m3s_pending {          /* one task waiting for resources */
  const char *task_id;
  int role;                           /* 0 .. M3S_PLACE_MAX_ROLES-1: tasks
                                         of one role are spread */
  double cpus, mem, disk;             /* >= 0 */
  size_t n_ports;                     /* free host ports it needs (any) */
  int fixed_port;                     /* a specific host port it needs in
                                         addition, 0 = none */
  const char *hostname;               /* only an agent with this hostname,
                                         NULL = any */
} m3s_pending_t;

/* One task already running: where (the agent id when known, else the
 * hostname: a hostname counts for every agent of that hostname) and of
 * which role. count lets one entry stand for several tasks. */
typedef struct m3s_running_task {
  const char *agent;
  int role;
  unsigned count;
} m3s_running_task_t;

typedef struct m3s_running {
  const m3s_running_task_t *tasks;
  size_t n;
} m3s_running_t;

/* A piece of one offered resource entry taken by a task. */
typedef struct m3s_slice {
  uint32_t offer_index;               /* into the offers array */
  uint32_t resource_index;            /* into that offer's resources */
  int64_t amount;                     /* scalars: thousandths taken;
                                         ports: the port */
} m3s_slice_t;

typedef struct m3s_assignment {
  size_t pending_index;               /* into the pending array */
  size_t offer_index;                 /* the agent's offer of the first
                                         slice */
  const char *agent_id, *hostname;    /* borrowed from the offers json */
  int ports[M3S_PLACE_MAX_PORTS];     /* host ports taken, fixed first */
  size_t n_ports;
  m3s_slice_t slices[M3S_PLACE_MAX_SLICES]; /* cpus, mem, disk, ports */
  size_t n_slices;
} m3s_assignment_t;

typedef struct m3s_placement_opts {
  const char *role;                   /* the framework role, non-NULL */
  int max_per_agent_per_role;         /* 0 = unlimited; the daemon uses
                                         K3S_MAX_PER_AGENT */
  int any_port_min, any_port_max;     /* "any" ports only from this span of
                                         the offered ranges (0 = no bound);
                                         the daemon uses PORTRANGE_FROM + 1
                                         .. PORTRANGE_TO - 1, as the
                                         original; fixed ports are not
                                         bounded */
} m3s_placement_opts_t;

/* Places as many pending tasks as fit. out has room for n_pending
 * assignments, offer_used for json_array_size(offers) flags; running may be
 * NULL. Returns the number of assignments (in pending order), or -EINVAL
 * for a bad argument (offers not an array, role NULL, a pending task with a
 * negative or non-finite scalar, too many ports, a role or port out of
 * range; a running task with a role out of range), or -ENOMEM.
 *
 * offer_used[i] is true when some assignment takes from offer i. The caller
 * sends, per agent, ONE ACCEPT listing all used offers of that agent with
 * all its LAUNCH operations, and declines the unused offers. */
int m3s_place(const json_t *offers, const m3s_pending_t *pending,
              size_t n_pending, const m3s_running_t *running,
              const m3s_placement_opts_t *opts, m3s_assignment_t *out,
              bool *offer_used);

/* The TaskInfo "resources" array of an assignment (a new reference, NULL
 * out of memory): one object per offered entry it takes from, a copy of
 * that entry (role, reservation(s), allocation_info, ... as offered, which
 * the master requires for reserved resources) with only scalar.value or
 * ranges changed. The copied members are shared with offers by reference
 * count: treat both as read-only. */
json_t *m3s_place_resources_json(const json_t *offers,
                                 const m3s_assignment_t *a);

#endif
