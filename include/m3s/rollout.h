/* The rollout actor ("rollout"): owns the rollout plan, the replacement of
 * outdated tasks (m3s/taskspec.h) one step at a time without downtime.
 *
 * A plan has phases datastore (only when it has outdated tasks), server and
 * agent, run in that order; one step per outdated task, in the role's task
 * order. Statuses: PENDING, IN_PROGRESS, PAUSED, COMPLETE, FAILED, ABORTED.
 * A step goes through stages, each stored before it acts:
 *   datastore  replace (kill the old task, launch new_task) -> ready
 *              (RUNNING, its health check not failed);
 *   server     count 1: replace -> ready (RUNNING, node Ready); count > 1:
 *              surge (new_task launched first, the count one higher) ->
 *              ready -> retire (the old one killed, the count back);
 *   agent      drain (cordon, evict: M3S_KUBE_DRAIN every tick until the
 *              kube status says drained, at most ROLLOUT_DRAIN_TIMEOUT, then
 *              FAILED unless the plan was started with force) -> replace ->
 *              ready -> release (M3S_KUBE_RELEASE); with ROLLOUT_MAX_SURGE 1
 *              surge -> drain -> retire -> release.
 * Up to ROLLOUT_MAX_UNAVAILABLE agent steps run at once, and an agent step
 * starts only while fewer agents than that are unavailable (node cordoned,
 * NotReady or missing, or task not running); server and datastore steps
 * run one at a time. A new task that ends before it is ready fails its step
 * and the plan (FAILED, with the reason, and how the task ended when the
 * role's status says: a lost host reads TASK_UNREACHABLE
 * REASON_AGENT_REMOVED); nothing further is touched. "ready" has no time
 * limit of its own: a server or agent task whose node stays NotReady is
 * killed by its role after K3S_NODE_TIMEOUT (m3s/role.h), which fails the
 * step as "TASK_KILLED node not Ready".
 * Steps under way beside a failed one are left where they are; a step that
 * failed in its drain releases the node (M3S_KUBE_RELEASE: uncordoned).
 * Pause: no step starts, those under way finish; resume; abort: as pause,
 * then the plan ends ABORTED once the steps under way are done.
 *
 * What it knows of the cluster comes from a status poll (M3S_ROLE_STATUS of
 * the three roles, M3S_KUBE_STATUS brief) every 100 ms, only while a plan
 * runs or a START waits; a stage is over when a poll asked after its action
 * says so.
 *
 * Persistence: the plan is the JSON of M3S_ROLLOUT_GET in <fw>:rollout_plan
 * (with each step's "stage" and the plan's "force"). Every change is
 * written through the store, and the actor acts (sends to a role or the
 * kube actor) only while its latest write is confirmed stored: a Redis
 * outage holds the plan where it is. At start the plan is loaded; one in
 * progress goes on from the stage each step was in: the stage's action is
 * sent again once, and the roles' and the kube actor's requests are
 * idempotent (a replacement's id is chosen and stored before it is asked
 * for), so nothing is drained or killed twice.
 *
 * Messages it accepts:
 *   M3S_ROLLOUT_START   request (m3s_call), arg 1 = force: a plan
 *                       for every outdated task; answered once stored with a
 *                       json_t * (the plan), or flags M3S_ROLE_ERROR and arg
 *                       -EBUSY (a plan in progress or paused), -EAGAIN (not
 *                       ready: plan not loaded, a role or Redis busy), -EIO
 *                       (Redis refused it).
 *   M3S_ROLLOUT_GET     request; answered with a json_t * (the plan) or a
 *                       NULL payload when there has never been one.
 *   M3S_ROLLOUT_CONTROL request, arg M3S_ROLLOUT_PAUSE / _RESUME / _ABORT;
 *                       answered once stored with the plan, or flags
 *                       M3S_ROLE_ERROR and arg -ENOENT (no plan) or -EALREADY
 *                       (the plan is not in a state it applies to).
 *   M3S_STORE_LOADED, M3S_STORE_WRITTEN, M3S_STORE_PRESSURE  from "store".
 *   M3S_ROLE_REPLACED   the answers of its M3S_ROLE_REPLACE (m3s/role.h).
 * Messages it sends: M3S_ROLE_STATUS (reply slots it polls) and
 * M3S_ROLE_REPLACE to the roles, M3S_KUBE_STATUS (polled), M3S_KUBE_DRAIN
 * and M3S_KUBE_RELEASE to "kube", M3S_STORE_LOAD / _WRITE / _WATCH to
 * "store".
 *
 * Threads: only its own thread touches the plan; answers are new values.
 */
#ifndef M3S_ROLLOUT_H
#define M3S_ROLLOUT_H

#include "m3s/actor.h"

enum {
  M3S_ROLLOUT_START = M3S_MSG_USER + 600,
  M3S_ROLLOUT_GET,
  M3S_ROLLOUT_CONTROL,
};

enum { M3S_ROLLOUT_PAUSE = 1, M3S_ROLLOUT_RESUME, M3S_ROLLOUT_ABORT };

/* The Redis key's suffix: <fw>:rollout_plan. */
#define M3S_ROLLOUT_KEY "rollout_plan"

extern const m3s_actor_ops_t m3s_rollout_ops;

#endif
