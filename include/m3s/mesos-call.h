/* Builders of the Mesos v1 scheduler calls this daemon sends
 * (mesos-http-api.md §2), as jansson objects.
 *
 * Every builder returns a new reference (the caller json_decref()s it), or
 * NULL when an argument is invalid (a NULL or empty required string, a
 * malformed list, a non-finite or negative number); arguments documented as
 * "taken" are released in both cases. The JSON is the master's protobuf
 * JSON: proto field names, enum names as strings, doubles as JSON reals
 * (5.0, not 5), ids as {"value": ...}.
 *
 * Builders leave out the top-level framework_id (except SUBSCRIBE, which
 * carries it when re-subscribing): the Mesos actor sets it with
 * m3s_call_set_framework_id() right before sending, from the id of the live
 * subscription.
 *
 * Pure functions of their arguments: any thread may call them; a built call
 * belongs to the thread holding it (jansson objects are not thread-safe when
 * changed).
 */
#ifndef M3S_MESOS_CALL_H
#define M3S_MESOS_CALL_H

#include <stdbool.h>

#include <jansson.h>

#include "m3s/config-t.h"

typedef struct m3s_subscribe_opts {
  const char *framework_id;    /* NULL (or "") the first time */
  double failover_timeout_s;   /* >= 0; the original uses 5000 */
  bool https_webui;            /* the REST API serves TLS: webui_url https:// */
} m3s_subscribe_opts_t;

/* SUBSCRIBE with FrameworkInfo: user = cfg->framework_user, name = cfg->fw,
 * roles = [cfg->framework_role], hostname = cfg->framework_hostname,
 * webui_url = http(s)://<framework_hostname>:<framework_port> (no trailing
 * slash; an IPv6 literal is bracketed), failover_timeout, checkpoint true,
 * capabilities MULTI_ROLE and PARTITION_AWARE, principal only when
 * cfg->mesos_principal is non-empty (an empty principal would not match the
 * authenticated one, §7.1). With o->framework_id: the id in framework_info
 * and at the top level (they must be equal, §2.1). When the datastore,
 * server and agent hostname constraints are all set: offer_constraints for
 * the role, one group (OR-ed by Mesos) per distinct hostname, in the order
 * server, agent, datastore (m3s-behaviour.md §3.1). */
json_t *m3s_call_subscribe(const m3s_config_t *cfg, const m3s_subscribe_opts_t *o);

/* ACCEPT of offer_ids (taken: non-empty array of non-empty offer id
 * strings) with operations (taken: array of Offer.Operation objects, put in
 * as they are; NULL = none) and filters.refuse_seconds for what is left of
 * the offers. */
json_t *m3s_call_accept(json_t *offer_ids, json_t *operations, double refuse_seconds);
/* DECLINE of offer_ids (taken: array of non-empty offer id strings; may be
 * empty) with filters.refuse_seconds. */
json_t *m3s_call_decline(json_t *offer_ids, double refuse_seconds);
/* REVIVE / SUPPRESS of one role, or of all the framework's roles when role
 * is NULL or "" (then the call has no body, as the master allows). */
json_t *m3s_call_revive(const char *role);
json_t *m3s_call_suppress(const char *role);
/* KILL of task_id; agent_id NULL or "" leaves agent_id out (an empty value
 * makes the master ignore the kill, mesos-samples kill-empty-agent-id). */
json_t *m3s_call_kill(const char *task_id, const char *agent_id);
/* ACKNOWLEDGE of an update: all three required; uuid_b64 is the update's
 * status.uuid exactly as received. */
json_t *m3s_call_acknowledge(const char *agent_id, const char *task_id,
                             const char *uuid_b64);
/* RECONCILE. tasks (taken) is an array of objects {"task_id": "<id>",
 * "agent_id": "<id>"} with agent_id optional (absent, null or "" = left
 * out); NULL or an empty array gives implicit reconciliation
 * ("reconcile": {"tasks": []}, the body itself is required, §2.9). */
json_t *m3s_call_reconcile(json_t *tasks);
/* Adds a task to a RECONCILE call (agent_id NULL or "" = left out), so a
 * long list is built without a second tree of its items. Returns 0, or
 * -EINVAL when call is no RECONCILE or task_id is empty. */
int m3s_call_reconcile_add(json_t *call, const char *task_id, const char *agent_id);
json_t *m3s_call_teardown(void);

/* Sets or replaces the top-level framework_id of call; NULL or "" removes
 * it. For a SUBSCRIBE it also sets (removes) subscribe.framework_info.id,
 * since the master refuses the two when they differ. */
void m3s_call_set_framework_id(json_t *call, const char *framework_id);
/* The call as compact JSON: a new malloc'ed string (free()), NULL on
 * failure. */
char *m3s_call_dump(const json_t *call);
/* The call's type ("ACCEPT", ...), borrowed from call; NULL if it has none. */
const char *m3s_call_type(const json_t *call);
/* True when sending the call twice does no harm, so it may be retried after
 * a transport error that leaves unknown whether the master got it. */
bool m3s_call_idempotent(const json_t *call);

#endif
