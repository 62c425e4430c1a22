/* What the REST API adds for operators beyond the original's endpoints:
 * the bodies of /health, /api/m3s/v0/status and /api/m3s/v0/events, and
 * the message of the 503 for a change that was not confirmed in time.
 * The status page's files are compiled in from src/http/ui/ (ui.cmake).
 *
 * Everything here is a pure function of the status answers the api actor
 * gathered (borrowed, read-only, possibly NULL when a source did not
 * answer) or of the log ring (m3s_log_recent); it runs on civetweb's
 * workers and touches no actor state.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/log.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"
#include "http-int.h"

static const char *const role_names[3] = { "datastore", "server", "agent" };

static bool redis_connected(const json_t *store)
{
  return json_is_true(json_object_get(store, "connected"));
}

static const char *mesos_state(const json_t *mesos)
{
  const char *s = json_string_value(json_object_get(mesos, "state"));
  return s ? s : "unknown";
}

static json_int_t int_of(const json_t *obj, const char *key)
{
  return json_integer_value(json_object_get(obj, key));
}

static const char *str_of(const json_t *obj, const char *key)
{
  const char *s = json_string_value(json_object_get(obj, key));
  return s ? s : "";
}

/* The refusal Redis answers writes with while it lasts ("OOM ..."), or
 * NULL: nothing confirmed while it lasts. */
static const char *redis_refusal(const json_t *store)
{
  return json_string_value(json_object_get(store, "refusal"));
}

/* "ready" when a K3s server node is Ready, else why not (what the agents
 * wait for); "unknown" when the kube actor did not answer. */
static const char *k3s_state(const json_t *kube)
{
  const json_t *w = json_object_get(kube, "server_wait");
  if(!json_is_string(w))
    return "unknown";
  return json_string_length(w) ? json_string_value(w) : "ready";
}

/* k3s does not make the status degraded: agents waiting for a server node
 * is the normal bring-up, not a fault of the daemon. */
json_t *m3s__ui_health(const json_t *store, const json_t *mesos, const json_t *kube)
{
  bool redis = redis_connected(store);
  const char *state = mesos_state(mesos), *refusal = redis_refusal(store);
  bool subscribed = strcmp(state, "subscribed") == 0;
  bool backlogged = json_is_true(json_object_get(store, "backlogged"));
  bool ok = redis && subscribed && !refusal && !backlogged;
  json_t *h = json_pack("{s:s, s:b, s:s, s:s}", "status", ok ? "ok" : "degraded", "redis", redis,
                        "mesos", state, "k3s", k3s_state(kube));
  char reason[600], backlog[160] = "";
  if(backlogged)
    snprintf(backlog, sizeof(backlog),
             "Redis is backlogged: %" JSON_INTEGER_FORMAT " writes wait; new tasks, launches "
             "and changes are held back until it drains",
             int_of(store, "queued_batches"));
  if(refusal)
    snprintf(reason, sizeof(reason), "Redis refuses writes: %s%s%s", refusal,
             backlogged ? "; " : "", backlog);
  else if(!redis)
    snprintf(reason, sizeof(reason), "Redis is not connected%s%s", backlogged ? "; " : "",
             backlog);
  else if(backlogged)
    snprintf(reason, sizeof(reason), "%s", backlog);
  else if(!subscribed)
    snprintf(reason, sizeof(reason), "not subscribed to the Mesos master (%s)", state);
  if(!ok)
    json_object_set_new(h, "reason", json_string(reason));
  return h;
}

/* One role's part of the status: counts and tasks, copied field by field
 * (the answer may be shared with other workers: never reference it). */
static json_t *role_summary(const json_t *r)
{
  json_t *tasks = json_object();
  int running = 0, healthy = 0;
  const char *id;
  json_t *t;
  json_object_foreach((json_t *)json_object_get(r, "tasks"), id, t) {
    const char *state = str_of(t, "state");
    const json_t *h = json_object_get(t, "healthy");
    if(strcmp(state, "TASK_RUNNING") == 0)
      running++;
    if(json_is_true(h))
      healthy++;
    const char *host = str_of(t, "agent_hostname");
    if(!*host)
      host = str_of(t, "hostname");
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "state", state, "host", host, "since",
                          str_of(t, "since"), "phase", str_of(t, "phase"));
    json_object_set_new(o, "healthy", json_is_boolean(h) ? json_boolean(json_is_true(h))
                                                         : json_null());
    const char *node = json_string_value(json_object_get(t, "node"));
    json_object_set_new(o, "node", node ? json_string(node) : json_null());
    const char *unready = json_string_value(json_object_get(t, "node_unready_since"));
    json_object_set_new(o, "node_unready_since", unready ? json_string(unready) : json_null());
    const json_t *od = json_object_get(t, "outdated");
    json_object_set_new(o, "outdated", json_is_boolean(od) ? json_boolean(json_is_true(od))
                                                           : json_null());
    json_object_set_new(tasks, id, o);
  }
  /* outdated, spec_unknown: launched tasks whose spec differs from what the
   * configuration gives now, or is not known (m3s/taskspec.h). */
  return json_pack("{s:I, s:I, s:i, s:i, s:i, s:b, s:b, s:I, s:I, s:I, s:I, s:o}", "desired",
                   int_of(r, "desired"), "restore", int_of(r, "restore"), "live",
                   (int)json_object_size(tasks), "running", running, "healthy_tasks", healthy,
                   "healthy", json_is_true(json_object_get(r, "healthy")), "upstream_healthy",
                   json_is_true(json_object_get(r, "upstream_healthy")), "backoff_ms",
                   int_of(r, "backoff_ms"), "outdated", int_of(r, "outdated"), "spec_unknown",
                   int_of(r, "spec_unknown"), "replaced_node_not_ready",
                   int_of(r, "replaced_node_not_ready"), "tasks", tasks);
}

static void problem(json_t *list, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(json_t *list, const char *fmt, ...)
{
  char buf[700];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  json_array_append_new(list, json_string(buf));
}

/* Agents wanted but not started because the server role is not healthy:
 * why, from the first thing missing in the order a K3s server comes up. */
static void agents_wait(json_t *problems, json_t *const roles[3], const json_t *kube)
{
  const json_t *sv = roles[1], *ag = roles[2];
  if(!json_is_object(sv) || !json_is_object(ag) || int_of(ag, "desired") == 0 ||
     json_is_true(json_object_get(ag, "upstream_healthy")))
    return;
  int running = 0;
  const char *id;
  json_t *t;
  json_object_foreach((json_t *)json_object_get(sv, "tasks"), id, t)
    running += strcmp(str_of(t, "state"), "TASK_RUNNING") == 0;
  const char *why = k3s_state(kube);
  if(!json_is_true(json_object_get(sv, "upstream_healthy")))
    why = "the datastore is not healthy yet, so no K3s server runs";
  else if(!running)
    why = "no K3s server task runs yet";
  else if(!strcmp(why, "unknown"))
    why = "the Kubernetes actor did not answer";
  else if(!strcmp(why, "ready"))
    why = "the K3s server's health check (its K3s API answering) has not passed yet";
  problem(problems, "the agents wait for a healthy K3s server: %s", why);
}

/* The Kubernetes nodes as the kube actor sees them; "simulated" when a
 * node says it is one of the Mesos simulator's (tests/mesos_sim). */
static json_t *kube_summary(const json_t *kube)
{
  if(!json_is_object(kube))
    return json_null();
  json_t *nodes = json_object();
  bool simulated = false;
  const char *name;
  json_t *n;
  json_object_foreach((json_t *)json_object_get(kube, "nodes"), name, n) {
    const json_t *info = json_object_get(n, "nodeInfo");
    const char *os = str_of(info, "osImage");
    simulated = simulated || strstr(os, "simulated by mesos_sim") != NULL;
    json_object_set_new(nodes, name,
                        json_pack("{s:b, s:s, s:s, s:s, s:s}", "ready",
                                  json_is_true(json_object_get(n, "ready")), "role",
                                  str_of(n, "role"), "task_id", str_of(n, "task_id"),
                                  "version", str_of(info, "kubeletVersion"), "os_image", os));
  }
  return json_pack("{s:b, s:s, s:s, s:b, s:o}", "connected",
                   json_is_true(json_object_get(kube, "connected")), "api",
                   str_of(kube, "api"), "k3s", k3s_state(kube), "simulated", simulated,
                   "nodes", nodes);
}

json_t *m3s__ui_status(const json_t *store, const json_t *mesos, const json_t *offers,
                       json_t *const roles[3], const json_t *kube)
{
  json_t *out = m3s__ui_health(store, mesos, kube);
  json_t *problems = json_array();
  bool degraded = strcmp(str_of(out, "status"), "ok") != 0;

  if(!json_is_object(store))
    problem(problems, "the store actor did not answer: the Redis state is unknown");
  else if(redis_refusal(store))
    problem(problems,
            "Redis refuses writes for %" JSON_INTEGER_FORMAT " s (%.200s): %" JSON_INTEGER_FORMAT
            " write(s) wait; launches, acknowledgements and changes wait for them",
            int_of(store, "refusing_ms") / 1000, redis_refusal(store),
            int_of(store, "queued_batches"));
  else if(!redis_connected(store))
    problem(problems,
            "Redis is not connected: %" JSON_INTEGER_FORMAT " write(s) wait for it; nothing "
            "changed since is saved until it is back",
            int_of(store, "queued_batches"));
  if(json_is_true(json_object_get(store, "backlogged")))
    problem(problems,
            "Redis is backlogged for %" JSON_INTEGER_FORMAT " s: %" JSON_INTEGER_FORMAT
            " write(s) wait; no new task is created or launched and changes through the API "
            "are refused (503) until it is down to %d",
            int_of(store, "backlogged_ms") / 1000, int_of(store, "queued_batches"),
            M3S_STORE_LOW_WATER);
  if(!json_is_object(mesos))
    problem(problems, "the Mesos actor did not answer");
  else if(strcmp(mesos_state(mesos), "subscribed") != 0)
    problem(problems, "not subscribed to the Mesos master (%s): no offers, no updates",
            mesos_state(mesos));

  json_t *rs = json_object();
  for(int i = 0; i < 3; i++) {
    if(json_is_object(roles[i])) {
      json_object_set_new(rs, role_names[i], role_summary(roles[i]));
      continue;
    }
    json_object_set_new(rs, role_names[i], json_null());
    problem(problems, "the %s role did not answer", role_names[i]);
    degraded = true;
  }
  agents_wait(problems, roles, kube);
  json_object_set_new(out, "status", json_string(degraded ? "degraded" : "ok"));
  json_object_set_new(out, "problems", problems);
  json_object_set_new(out, "kubernetes", kube_summary(kube));
  json_object_set_new(out, "version", json_string(M3S_VERSION));
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  json_object_set_new(out, "time_ms",
                      json_integer((json_int_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000L));
  json_object_set_new(out, "framework_id",
                      json_string(str_of(mesos, "framework_id")));
  json_object_set_new(out, "redis_queued",
                      json_is_object(store) ? json_integer(int_of(store, "queued_batches"))
                                            : json_null());
  if(json_is_object(offers))
    json_object_set_new(
      out, "offers",
      json_pack("{s:I, s:b, s:s, s:b, s:s, s:I}", "pending", int_of(offers, "pending"),
                "suppressed", json_is_true(json_object_get(offers, "suppressed")),
                "cluster_operation", str_of(offers, "cluster_operation"), "agents_cordoned",
                json_is_true(json_object_get(offers, "disable_scheduling")),
                "server_hostname", str_of(offers, "server_hostname"), "server_port",
                int_of(offers, "server_port")));
  else
    json_object_set_new(out, "offers", json_null());
  json_object_set_new(out, "roles", rs);
  return out;
}

json_t *m3s__ui_events(const char *query)
{
  uint64_t after = 0;
  /* after=<decimal>; anything else means "all". */
  for(const char *p = query; p && *p;) {
    if(!strncmp(p, "after=", 6)) {
      char *end = NULL;
      errno = 0;
      unsigned long long v = strtoull(p + 6, &end, 10);
      if(!errno && end != p + 6 && (*end == '\0' || *end == '&') && p[6] != '-')
        after = v;
    }
    p = strchr(p, '&');
    if(p)
      p++;
  }
  m3s_log_event_t *ev = m3s_xcalloc(M3S_LOG_RECENT, sizeof(*ev));
  size_t n = m3s_log_recent(ev, M3S_LOG_RECENT, after);
  json_t *list = json_array();
  for(size_t i = 0; i < n; i++)
    json_array_append_new(list, json_pack("{s:I, s:I, s:s, s:s, s:s}", "seq",
                                          (json_int_t)ev[i].seq, "time_ms",
                                          (json_int_t)ev[i].time_ms, "level",
                                          m3s_log_level_name(ev[i].level), "actor",
                                          ev[i].actor, "text", ev[i].text));
  json_t *out = json_pack("{s:I, s:o}", "last", (json_int_t)(n ? ev[n - 1].seq : after),
                          "events", list);
  free(ev);
  return out;
}

/* Does the owner's status show the change? */
static bool taken(const m3s_ui_change_t *ch, const json_t *owner)
{
  if(!json_is_object(owner))
    return false;
  switch(ch->kind) {
  case M3S_UI_SCALE:
    return json_is_integer(json_object_get(owner, "desired")) &&
           int_of(owner, "desired") == ch->count;
  case M3S_UI_RESOURCE: {
    const json_t *v = json_object_get(json_object_get(owner, "resources"), ch->res_key);
    return json_is_number(v) && fabs(json_number_value(v) - ch->value) < 1e-9;
  }
  case M3S_UI_CORDON:
    return json_is_boolean(json_object_get(owner, "disable_scheduling")) &&
           json_is_true(json_object_get(owner, "disable_scheduling")) == (ch->count != 0);
  }
  return false;
}

void m3s__ui_unconfirmed(char *buf, size_t len, const m3s_ui_change_t *ch, const json_t *owner,
                         const json_t *store, int timeout_ms)
{
  char what[160], now[200], who[64];
  if(ch->kind == M3S_UI_CORDON)
    snprintf(who, sizeof(who), "%s actor", ch->owner);
  else
    snprintf(who, sizeof(who), "%s role", ch->owner);
  switch(ch->kind) {
  case M3S_UI_SCALE:
    snprintf(what, sizeof(what), "the %s count %d", ch->owner, ch->count);
    snprintf(now, sizeof(now),
             "it acts on it now: surplus tasks are killed at once, new tasks are launched only "
             "once their records are saved");
    break;
  case M3S_UI_RESOURCE:
    snprintf(what, sizeof(what), "%s %s = %g", ch->owner, ch->res_key, ch->value);
    snprintf(now, sizeof(now), "tasks launched from now on get it");
    break;
  default:
    snprintf(what, sizeof(what), "the agents' scheduling flag (%s)",
             ch->count ? "cordon" : "uncordon");
    snprintf(now, sizeof(now), "the daemon holds it in memory");
    break;
  }
  bool has_store = json_is_object(store), up = redis_connected(store);
  json_int_t queued = int_of(store, "queued_batches");

  if(!json_is_object(owner)) {
    snprintf(buf, len,
             "the %s did not answer within %d ms, so it is unknown whether it took %s (Redis: %s);"
             " check the current value before retrying",
             who, timeout_ms, what,
             !has_store ? "unknown" : up ? "connected" : "unavailable");
    return;
  }
  if(!taken(ch, owner)) {
    snprintf(buf, len,
             "the %s has not taken %s within %d ms (Redis: %s); check the current value before "
             "retrying",
             who, what, timeout_ms, !has_store ? "unknown" : up ? "connected"
                                                                    : "unavailable");
    return;
  }
  if(has_store && up && redis_refusal(store)) {
    snprintf(buf, len,
             "Redis refuses writes (%.200s), so %s is not saved yet. The %s has taken it and %s. "
             "The change waits in the store's write queue (%" JSON_INTEGER_FORMAT " write(s) "
             "queued) and is written when Redis accepts writes again",
             redis_refusal(store), what, who, now, queued);
    return;
  }
  if(has_store && !up) {
    snprintf(buf, len,
             "Redis is unavailable, so %s is not saved yet. The %s has taken it and %s. The change "
             "waits in the store's write queue (%" JSON_INTEGER_FORMAT " write(s) queued) and "
             "is written when Redis is back; if the daemon stops before that, it is lost",
             what, who, now, queued);
    return;
  }
  snprintf(buf, len,
           "the %s has taken %s, but %s not confirm it saved within %d ms%s",
           who, what, has_store ? "Redis did" : "the store (not answering) did",
           timeout_ms,
           has_store ? "; it is written in order behind the writes queued before it" : "");
}
