/* Builders of Mesos scheduler calls (see m3s/mesos-call.h).
 *
 * DESIGN
 * Each builder assembles the call with json_object_set_new /
 * json_array_append_new, which take their value even when they fail, so a
 * half-built call is released with one json_decref and nothing leaks. put()
 * and push() fold jansson's failures (out of memory, invalid UTF-8 in a
 * config string) into one "ok" flag checked at the end.
 *
 * Shapes are those of mesos-http-api.md §2 and the captured calls in
 * mesos-samples/calls: the body member is the call type in lower snake case,
 * ids are {"value": ...}, doubles are json_real so they print as 5.0.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/mesos-call.h"

/* Mesos refuses a failover_timeout that does not fit int64 nanoseconds
 * (§2.1); stay clearly below 2^63 ns. */
#define MAX_FAILOVER_S 9.2e9

/* obj[key] = val, taking val. False if anything is NULL or the set fails. */
static bool put(json_t *obj, const char *key, json_t *val)
{
  if(!val)
    return false;
  return json_object_set_new(obj, key, val) == 0;
}

/* Appends val to arr, taking val. */
static bool push(json_t *arr, json_t *val)
{
  if(!val)
    return false;
  return json_array_append_new(arr, val) == 0;
}

static bool nonempty(const char *s)
{
  return s && s[0];
}

/* {"value": v}, a new reference; NULL for invalid UTF-8 or no memory. */
static json_t *id_obj(const char *v)
{
  return json_pack("{s:s}", "value", v);
}

/* {"type": type} with the body object (taken) under body_key, or with no
 * body when body is NULL. */
static json_t *envelope(const char *type, const char *body_key, json_t *body)
{
  json_t *call = json_pack("{s:s}", "type", type);
  bool ok = call != NULL;

  if(body_key)
    ok = put(call, body_key, body) && ok;
  else
    json_decref(body);
  if(!ok) {
    json_decref(call);
    return NULL;
  }
  return call;
}

/* A seconds value we are willing to send as a filter. */
static bool valid_seconds(double s)
{
  return isfinite(s) && s >= 0;
}

/* [{"value": id}, ...] from an array of non-empty id strings (borrowed);
 * NULL if an item is not one, or if empty and !allow_empty. */
static json_t *id_list(const json_t *ids, bool allow_empty)
{
  json_t *out, *item;
  size_t i;
  bool ok;

  if(!json_is_array(ids) || (!allow_empty && json_array_size(ids) == 0))
    return NULL;
  out = json_array();
  ok = out != NULL;
  json_array_foreach(ids, i, item) {
    if(!nonempty(json_string_value(item))) {
      ok = false;
      break;
    }
    ok = ok && push(out, id_obj(json_string_value(item)));
  }
  if(!ok) {
    json_decref(out);
    return NULL;
  }
  return out;
}

/* ---- SUBSCRIBE ---- */

/* http(s)://host:port; an IPv6 literal host gets brackets so the port stays
 * separable (the REST client takes webui_url verbatim). */
static json_t *webui_url(const m3s_config_t *cfg, bool https)
{
  const char *h = cfg->framework_hostname;
  bool v6 = strchr(h, ':') && h[0] != '[';

  return json_sprintf("%s://%s%s%s:%d", https ? "https" : "http", v6 ? "[" : "",
                      h, v6 ? "]" : "", cfg->framework_port);
}

/* subscribe.offer_constraints (§2.12) when all three hostname constraints
 * are set, else NULL with *ok untouched. Hostnames are already lower-cased
 * by the config loader; duplicates are dropped since groups are OR-ed. */
static json_t *offer_constraints(const m3s_config_t *cfg, bool *ok)
{
  const char *hosts[] = {
    cfg->k3s_server_constraint_host, cfg->k3s_agent_constraint_host,
    cfg->k3s_ds_constraint_host,
  };
  const size_t n = sizeof(hosts) / sizeof(hosts[0]);
  json_t *groups, *role, *rc, *wrap;

  for(size_t i = 0; i < n; i++)
    if(!nonempty(hosts[i]))
      return NULL;

  groups = json_array();
  if(!groups) {
    *ok = false;
    return NULL;
  }
  for(size_t i = 0; i < n; i++) {
    bool dup = false;

    for(size_t j = 0; j < i; j++)
      dup = dup || strcmp(hosts[i], hosts[j]) == 0;
    if(dup)
      continue;
    *ok = push(groups, json_pack(
      "{s:[{s:{s:s}, s:{s:{s:s}}}]}",
      "attribute_constraints",
        "selector", "pseudoattribute_type", "HOSTNAME",
        "predicate", "text_equals", "value", hosts[i])) && *ok;
  }
  role = json_object();
  *ok = put(role, "groups", groups) && *ok;
  rc = json_object();
  *ok = put(rc, cfg->framework_role, role) && *ok;
  wrap = json_object();
  *ok = put(wrap, "role_constraints", rc) && *ok;
  return wrap;
}

json_t *m3s_call_subscribe(const m3s_config_t *cfg, const m3s_subscribe_opts_t *o)
{
  json_t *fi = NULL, *sub = NULL, *call = NULL, *oc;
  const char *id;
  bool ok = true;

  if(!cfg || !o || !nonempty(cfg->framework_user) || !nonempty(cfg->fw) ||
     !nonempty(cfg->framework_role) || !nonempty(cfg->framework_hostname) ||
     !cfg->mesos_principal || !cfg->k3s_ds_constraint_host ||
     !cfg->k3s_server_constraint_host || !cfg->k3s_agent_constraint_host ||
     !isfinite(o->failover_timeout_s) || o->failover_timeout_s < 0 ||
     o->failover_timeout_s > MAX_FAILOVER_S)
    return NULL;
  id = nonempty(o->framework_id) ? o->framework_id : NULL;

  /* Field order as in mesos.proto, which keeps dumps easy to compare with
   * the master's own JSON. */
  fi = json_pack("{s:s}", "user", cfg->framework_user);
  ok = fi != NULL;
  ok = put(fi, "name", json_string(cfg->fw)) && ok;
  if(id)
    ok = put(fi, "id", id_obj(id)) && ok;
  ok = put(fi, "failover_timeout", json_real(o->failover_timeout_s)) && ok;
  ok = put(fi, "checkpoint", json_true()) && ok;
  /* MULTI_ROLE: roles, never the deprecated role (§2.1). */
  ok = put(fi, "roles", json_pack("[s]", cfg->framework_role)) && ok;
  ok = put(fi, "hostname", json_string(cfg->framework_hostname)) && ok;
  /* An empty principal is not "no principal": with HTTP authentication on
   * it differs from the authenticated one (400), and once registered a
   * principal cannot change on re-subscribe ("Changing framework's
   * principal is not allowed"). Left out, the master fills in the
   * authenticated one (§2.1, §7.1). */
  if(cfg->mesos_principal[0])
    ok = put(fi, "principal", json_string(cfg->mesos_principal)) && ok;
  ok = put(fi, "webui_url", webui_url(cfg, o->https_webui)) && ok;
  /* PARTITION_AWARE: TASK_UNREACHABLE/GONE/... instead of a catch-all
   * TASK_LOST, so a partitioned agent is not mistaken for a dead task. */
  ok = put(fi, "capabilities", json_pack("[{s:s},{s:s}]", "type", "MULTI_ROLE",
                                         "type", "PARTITION_AWARE")) && ok;

  sub = json_object();
  ok = put(sub, "framework_info", fi) && ok;
  fi = NULL;
  oc = offer_constraints(cfg, &ok);
  if(oc)
    ok = put(sub, "offer_constraints", oc) && ok;

  call = json_pack("{s:s}", "type", "SUBSCRIBE");
  ok = call != NULL && ok;
  if(id)
    ok = put(call, "framework_id", id_obj(id)) && ok;
  ok = put(call, "subscribe", sub) && ok;
  if(!ok) {
    json_decref(call);
    return NULL;
  }
  return call;
}

/* ---- offers ---- */

json_t *m3s_call_accept(json_t *offer_ids, json_t *operations, double refuse_seconds)
{
  json_t *ids = id_list(offer_ids, false), *body = NULL, *op;
  size_t i;
  bool ok = ids != NULL && valid_seconds(refuse_seconds);

  if(!operations)
    operations = json_array();
  ok = ok && json_is_array(operations);
  json_array_foreach(operations, i, op)
    ok = ok && json_is_object(op);
  if(!ok)
    goto out;

  body = json_object();
  ok = put(body, "offer_ids", ids);
  ids = NULL;
  ok = put(body, "operations", operations) && ok;
  operations = NULL;
  ok = put(body, "filters", json_pack("{s:f}", "refuse_seconds", refuse_seconds)) && ok;

out:
  json_decref(offer_ids);
  json_decref(operations);
  json_decref(ids);
  if(!ok) {
    json_decref(body);
    return NULL;
  }
  return envelope("ACCEPT", "accept", body);
}

json_t *m3s_call_decline(json_t *offer_ids, double refuse_seconds)
{
  json_t *ids = id_list(offer_ids, true), *body;
  bool ok;

  json_decref(offer_ids);
  if(!ids || !valid_seconds(refuse_seconds)) {
    json_decref(ids);
    return NULL;
  }
  body = json_object();
  ok = put(body, "offer_ids", ids);
  ok = put(body, "filters", json_pack("{s:f}", "refuse_seconds", refuse_seconds)) && ok;
  if(!ok) {
    json_decref(body);
    return NULL;
  }
  return envelope("DECLINE", "decline", body);
}

/* REVIVE/SUPPRESS: the field is roles (an array), §2.5 / errata 3. */
static json_t *roles_call(const char *type, const char *key, const char *role)
{
  json_t *body;

  if(!nonempty(role))
    return envelope(type, NULL, NULL);
  body = json_pack("{s:[s]}", "roles", role);
  if(!body)
    return NULL;
  return envelope(type, key, body);
}

json_t *m3s_call_revive(const char *role)
{
  return roles_call("REVIVE", "revive", role);
}

json_t *m3s_call_suppress(const char *role)
{
  return roles_call("SUPPRESS", "suppress", role);
}

/* ---- tasks ---- */

json_t *m3s_call_kill(const char *task_id, const char *agent_id)
{
  json_t *body;
  bool ok;

  if(!nonempty(task_id))
    return NULL;
  body = json_object();
  ok = put(body, "task_id", id_obj(task_id));
  if(nonempty(agent_id))
    ok = put(body, "agent_id", id_obj(agent_id)) && ok;
  if(!ok) {
    json_decref(body);
    return NULL;
  }
  return envelope("KILL", "kill", body);
}

json_t *m3s_call_acknowledge(const char *agent_id, const char *task_id,
                             const char *uuid_b64)
{
  json_t *body;

  if(!nonempty(agent_id) || !nonempty(task_id) || !nonempty(uuid_b64))
    return NULL;
  body = json_pack("{s:{s:s}, s:{s:s}, s:s}", "agent_id", "value", agent_id,
                   "task_id", "value", task_id, "uuid", uuid_b64);
  if(!body)
    return NULL;
  return envelope("ACKNOWLEDGE", "acknowledge", body);
}

/* Appends {"task_id": {"value": task_id}[, "agent_id": ...]} to list. */
static bool reconcile_item(json_t *list, const char *task_id, const char *agent_id)
{
  json_t *item = json_object();
  bool ok = put(item, "task_id", id_obj(task_id));
  if(nonempty(agent_id))
    ok = put(item, "agent_id", id_obj(agent_id)) && ok;
  return push(list, item) && ok;
}

json_t *m3s_call_reconcile(json_t *tasks)
{
  json_t *list = NULL, *t, *body;
  size_t i;
  bool ok = tasks == NULL || json_is_array(tasks);

  if(ok)
    list = json_array();
  ok = ok && list != NULL;
  json_array_foreach(tasks, i, t) {
    json_t *aid = json_object_get(t, "agent_id");
    const char *task_id = json_string_value(json_object_get(t, "task_id"));
    const char *agent_id = json_string_value(aid);

    if(!ok || !json_is_object(t) || !nonempty(task_id) ||
       (aid && !json_is_null(aid) && !agent_id)) {
      ok = false;
      break;
    }
    ok = reconcile_item(list, task_id, agent_id);
  }
  json_decref(tasks);
  if(!ok) {
    json_decref(list);
    return NULL;
  }
  /* An empty list is implicit reconciliation; the body stays required. */
  body = json_object();
  if(!put(body, "tasks", list)) {
    json_decref(body);
    return NULL;
  }
  return envelope("RECONCILE", "reconcile", body);
}

int m3s_call_reconcile_add(json_t *call, const char *task_id, const char *agent_id)
{
  const char *type = m3s_call_type(call);
  json_t *list = json_object_get(json_object_get(call, "reconcile"), "tasks");
  if(!type || strcmp(type, "RECONCILE") != 0 || !json_is_array(list) || !nonempty(task_id))
    return -EINVAL;
  return reconcile_item(list, task_id, agent_id) ? 0 : -ENOMEM;
}

json_t *m3s_call_teardown(void)
{
  return envelope("TEARDOWN", NULL, NULL);
}

/* ---- helpers on built calls ---- */

void m3s_call_set_framework_id(json_t *call, const char *framework_id)
{
  json_t *fi = NULL;
  const char *type = m3s_call_type(call);

  if(!json_is_object(call))
    return;
  if(type && strcmp(type, "SUBSCRIBE") == 0)
    fi = json_object_get(json_object_get(call, "subscribe"), "framework_info");
  if(!nonempty(framework_id)) {
    json_object_del(call, "framework_id");
    if(json_is_object(fi))
      json_object_del(fi, "id");
    return;
  }
  /* If the id cannot be set (no memory, invalid UTF-8), a stale id must not
   * stay behind: the call then goes without one and the master refuses it,
   * rather than acting for another framework. */
  if(!put(call, "framework_id", id_obj(framework_id)))
    json_object_del(call, "framework_id");
  if(json_is_object(fi) && !put(fi, "id", id_obj(framework_id)))
    json_object_del(fi, "id");
}

char *m3s_call_dump(const json_t *call)
{
  if(!call)
    return NULL;
  /* 15 significant digits print 0.1 as 0.1 (17 give 0.10000000000000001)
   * and still carry every value we send exactly: scalars are rounded to 3
   * decimals by Mesos, timeouts are whole seconds. */
  return json_dumps(call, JSON_COMPACT | JSON_REAL_PRECISION(15));
}

const char *m3s_call_type(const json_t *call)
{
  return json_string_value(json_object_get(call, "type"));
}

bool m3s_call_idempotent(const json_t *call)
{
  /* Calls whose second copy changes nothing (§2, mesos-samples facts 8):
   * DECLINE of an offer already gone is ignored; REVIVE/SUPPRESS set a
   * state; KILL of a dying or dead task only gets a reconciliation answer;
   * a duplicate ACKNOWLEDGE is ignored by the agent; RECONCILE only asks;
   * a second TEARDOWN gets 400 "Framework cannot be found" and nothing else.
   *
   * Not idempotent:
   * - ACCEPT: if the first copy was executed, the offers are consumed and
   *   a resend makes the master answer every task in it with TASK_LOST /
   *   TASK_DROPPED (invalid offers) or TASK_ERROR (duplicate id), under the
   *   task ids of tasks that are in fact launching. The caller must instead
   *   wait for the updates (or reconcile) and relaunch from a new offer.
   * - SUBSCRIBE: a first SUBSCRIBE retried creates a second framework
   *   (§2.1); subscribing is the reconnect logic's job, never a retry. */
  static const char *const safe[] = {
    "DECLINE", "REVIVE", "SUPPRESS", "KILL", "ACKNOWLEDGE", "RECONCILE",
    "TEARDOWN",
  };
  const char *type = m3s_call_type(call);

  if(!type)
    return false;
  for(size_t i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
    if(strcmp(type, safe[i]) == 0)
      return true;
  return false;
}
