/* /metrics: the Prometheus text exposition format (version 0.0.4).
 *
 * Each family is written once, HELP and TYPE first, then all its samples,
 * so the output parses strictly. Counters end in _total. The status objects
 * of the actors are read defensively: a field that is missing or of another
 * type is left out, a source that did not answer shows as
 * m3s_source_up{source=...} 0 and contributes nothing else.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "http-int.h"

static const char *const role_names[3] = { "datastore", "server", "agent" };

void m3s__metrics_label(char *buf, size_t len, const char *value)
{
  size_t o = 0;
  if(!len)
    return;
  for(const char *p = value ? value : ""; *p && o + 3 < len; p++) {
    if(*p == '\\' || *p == '"') {
      buf[o++] = '\\';
      buf[o++] = *p;
    }
    else if(*p == '\n') {
      buf[o++] = '\\';
      buf[o++] = 'n';
    }
    else
      buf[o++] = *p;
  }
  buf[o] = '\0';
}

static void family(FILE *out, const char *name, const char *type, const char *help)
{
  fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(FILE *out, double v)
{
  if(isnan(v))
    fputs("NaN", out);
  else if(isinf(v))
    fputs(v > 0 ? "+Inf" : "-Inf", out);
  else if(v == floor(v) && fabs(v) < 1e15)
    fprintf(out, "%.0f", v);
  else
    fprintf(out, "%.15g", v);
}

/* name{label="v"} value; label NULL = no labels. */
static void sample1(FILE *out, const char *name, const char *label, const char *lv, double v)
{
  char esc[256];
  if(label) {
    m3s__metrics_label(esc, sizeof(esc), lv);
    fprintf(out, "%s{%s=\"%s\"} ", name, label, esc);
  }
  else
    fprintf(out, "%s ", name);
  value(out, v);
  fputc('\n', out);
}

static void sample2(FILE *out, const char *name, const char *l1, const char *v1,
                    const char *l2, const char *v2, double v)
{
  char e1[256], e2[256];
  m3s__metrics_label(e1, sizeof(e1), v1);
  m3s__metrics_label(e2, sizeof(e2), v2);
  fprintf(out, "%s{%s=\"%s\",%s=\"%s\"} ", name, l1, e1, l2, e2);
  value(out, v);
  fputc('\n', out);
}

/* A number or a boolean member of obj. */
static bool num(const json_t *obj, const char *key, double *v)
{
  const json_t *j = json_object_get(obj, key);
  if(json_is_number(j)) {
    *v = json_number_value(j);
    return true;
  }
  if(json_is_boolean(j)) {
    *v = json_is_true(j) ? 1 : 0;
    return true;
  }
  return false;
}

/* A family with one unlabelled sample, if the field exists. */
static void scalar(FILE *out, const json_t *obj, const char *key, const char *name,
                   const char *type, const char *help)
{
  double v;
  if(num(obj, key, &v)) {
    family(out, name, type, help);
    sample1(out, name, NULL, NULL, v);
  }
}

/* A family with one sample per role that has the field. */
static void per_role(FILE *out, json_t *const roles[3], const char *key, const char *name,
                     const char *type, const char *help, double scale)
{
  bool any = false;
  double v;
  for(int r = 0; r < 3; r++) {
    if(!num(roles[r], key, &v))
      continue;
    if(!any)
      family(out, name, type, help);
    any = true;
    sample1(out, name, "role", role_names[r], v * scale);
  }
}

static void write_mesos(FILE *out, const json_t *m)
{
  const char *state = json_string_value(json_object_get(m, "state"));
  if(state) {
    family(out, "m3s_mesos_subscribed", "gauge",
           "1 when the framework is subscribed to the Mesos master.");
    sample1(out, "m3s_mesos_subscribed", NULL, NULL, strcmp(state, "subscribed") == 0);
    family(out, "m3s_mesos_state", "gauge", "The subscription state (the current one is 1).");
    sample1(out, "m3s_mesos_state", "state", state, 1);
  }
  scalar(out, m, "subscriptions", "m3s_mesos_subscriptions_total", "counter",
         "SUBSCRIBED events received.");
  scalar(out, m, "reconnects", "m3s_mesos_reconnects_total", "counter",
         "Subscriptions lost and re-established.");
  scalar(out, m, "events", "m3s_mesos_events_total", "counter",
         "Events read from the Mesos event stream.");
  double ok, failed;
  bool has_ok = num(m, "calls_ok", &ok), has_failed = num(m, "calls_failed", &failed);
  if(has_ok || has_failed) {
    family(out, "m3s_mesos_calls_total", "counter", "Scheduler calls by result.");
    if(has_ok)
      sample1(out, "m3s_mesos_calls_total", "result", "ok", ok);
    if(has_failed)
      sample1(out, "m3s_mesos_calls_total", "result", "failed", failed);
  }
  scalar(out, m, "calls_queued", "m3s_mesos_calls_queued", "gauge",
         "Scheduler calls waiting to be sent.");
  scalar(out, m, "offers_declined", "m3s_mesos_offers_declined_total", "counter",
         "Offers the Mesos actor declined itself (no offer actor).");
  scalar(out, m, "stream_pauses", "m3s_mesos_stream_pauses_total", "counter",
         "Times reading the event stream paused while the roles or the store caught up.");
}

static void write_store(FILE *out, const json_t *s)
{
  scalar(out, s, "connected", "m3s_redis_connected", "gauge", "1 when Redis is connected.");
  scalar(out, s, "queued", "m3s_redis_queued", "gauge", "Writes waiting for Redis.");
  scalar(out, s, "backlogged", "m3s_redis_backlogged", "gauge",
         "1 while so many writes wait for Redis that new work is held back.");
  scalar(out, s, "backlogs", "m3s_redis_backlogs_total", "counter",
         "Times the writes waiting for Redis reached the high mark.");
  scalar(out, s, "errors", "m3s_redis_errors_total", "counter", "Redis errors.");
  scalar(out, s, "reconnects", "m3s_redis_reconnects_total", "counter",
         "Redis connections lost and re-established.");
  const json_t *by = json_object_get(s, "refused_by_error");
  if(json_object_size(by)) {
    const char *word;
    const json_t *n;
    family(out, "m3s_redis_refused_writes_total", "counter",
           "Writes Redis refused, by the first word of its error reply (WAIT: too few "
           "replicas had them).");
    json_object_foreach((json_t *)by, word, n)
      sample1(out, "m3s_redis_refused_writes_total", "error", word, json_number_value(n));
  }
  scalar(out, s, "failed", "m3s_redis_failed_writes_total", "counter",
         "Writes Redis refused for good (their senders were told).");
}

static void write_offers(FILE *out, const json_t *o)
{
  /* "pending": a count, or the pending tasks themselves. */
  const json_t *p = json_object_get(o, "pending");
  double pending = -1;
  if(json_is_number(p))
    pending = json_number_value(p);
  else if(json_is_array(p))
    pending = (double)json_array_size(p);
  else if(json_is_object(p))
    pending = (double)json_object_size(p);
  if(pending >= 0) {
    family(out, "m3s_offers_pending_tasks", "gauge", "Tasks waiting for an offer.");
    sample1(out, "m3s_offers_pending_tasks", NULL, NULL, pending);
  }
  const json_t *by = json_object_get(o, "pending_by_role");
  if(json_is_object(by) && json_object_size(by)) {
    const char *k;
    const json_t *v;
    family(out, "m3s_offers_pending_tasks_by_role", "gauge",
           "Tasks waiting for an offer, by role.");
    json_object_foreach((json_t *)by, k, v)
      if(json_is_number(v))
        sample1(out, "m3s_offers_pending_tasks_by_role", "role", k, json_number_value(v));
  }
  scalar(out, o, "offers_received", "m3s_offers_received_total", "counter",
         "Offers received from Mesos.");
  scalar(out, o, "offers_accepted", "m3s_offers_accepted_total", "counter",
         "Offers accepted (tasks launched on them).");
  scalar(out, o, "offers_declined", "m3s_offers_declined_total", "counter",
         "Offers declined.");
  scalar(out, o, "rescinds", "m3s_offers_rescinded_total", "counter",
         "Offers rescinded by the master.");
  scalar(out, o, "launched", "m3s_tasks_launched_total", "counter", "Tasks launched.");
  scalar(out, o, "suppressed", "m3s_offers_suppressed", "gauge",
         "1 while offers are suppressed (nothing pending).");
  scalar(out, o, "disable_scheduling", "m3s_agents_cordoned", "gauge",
         "1 while the K3s agents are cordoned.");
  const char *op = json_string_value(json_object_get(o, "cluster_operation"));
  if(op) {
    family(out, "m3s_cluster_operation_running", "gauge",
           "1 while a cluster operation (shutdown, start, restart) runs.");
    if(*op)
      sample1(out, "m3s_cluster_operation_running", "operation", op, 1);
  }
}

/* The Kubernetes side (m3s/kube.h): connection and nodes by role and
 * readiness. */
static void write_kube(FILE *out, const json_t *k)
{
  scalar(out, k, "connected", "m3s_kube_connected", "gauge",
         "1 while the K3s API answers the node list and watch.");
  scalar(out, k, "errors", "m3s_kube_errors_total", "counter",
         "Failed K3s API requests (connection, TLS, HTTP status, malformed answers).");
  scalar(out, k, "relists_gone", "m3s_kube_relists_gone_total", "counter",
         "Node watches that expired (410 Gone) and were listed again.");
  const json_t *ev = json_object_get(k, "evictions");
  if(json_is_object(ev)) {
    static const char *const results[] = { "ok", "refused", "error" };
    family(out, "m3s_kube_evictions_total", "counter",
           "Pod evictions of node drains, by result: ok (evicted or gone already), refused "
           "(429: a PodDisruptionBudget), error.");
    for(size_t i = 0; i < sizeof(results) / sizeof(results[0]); i++)
      sample1(out, "m3s_kube_evictions_total", "result", results[i],
              json_number_value(json_object_get(ev, results[i])));
  }
  const json_t *drains = json_object_get(k, "drains");
  if(json_is_object(drains)) {
    double draining = 0, drained = 0;
    const char *task;
    const json_t *d;
    json_object_foreach((json_t *)drains, task, d) {
      draining++;
      drained += json_is_true(json_object_get(d, "drained"));
    }
    family(out, "m3s_kube_drains", "gauge", "Tasks whose nodes are being drained, by state.");
    sample1(out, "m3s_kube_drains", "state", "draining", draining - drained);
    sample1(out, "m3s_kube_drains", "state", "drained", drained);
  }
  const json_t *nodes = json_object_get(k, "nodes");
  if(!json_is_object(nodes))
    return;
  double count[2][2] = { { 0, 0 }, { 0, 0 } }; /* [agent?][ready?] */
  const char *name;
  const json_t *n;
  json_object_foreach((json_t *)nodes, name, n) {
    const char *role = json_string_value(json_object_get(n, "role"));
    count[role && !strcmp(role, "agent")][json_is_true(json_object_get(n, "ready"))]++;
  }
  family(out, "m3s_kube_nodes", "gauge", "Kubernetes nodes by K3s role and readiness.");
  for(int r = 0; r < 2; r++)
    for(int ready = 0; ready < 2; ready++)
      sample2(out, "m3s_kube_nodes", "role", r ? "agent" : "server", "ready",
              ready ? "true" : "false", count[r][ready]);
}

static void write_roles(FILE *out, json_t *const roles[3])
{
  per_role(out, roles, "desired", "m3s_role_desired", "gauge",
           "Desired number of tasks of the role.", 1);
  per_role(out, roles, "restore", "m3s_role_restore", "gauge",
           "Count the role returns to on cluster start.", 1);
  per_role(out, roles, "healthy", "m3s_role_healthy", "gauge", "1 when the role is healthy.", 1);
  per_role(out, roles, "upstream_healthy", "m3s_role_upstream_healthy", "gauge",
           "1 when the role's upstream role is healthy.", 1);
  per_role(out, roles, "backoff_ms", "m3s_role_restart_backoff_seconds", "gauge",
           "Time left before the role replaces a failed task.", 0.001);
  per_role(out, roles, "outdated", "m3s_tasks_outdated", "gauge",
           "Launched tasks whose spec differs from what the configuration gives now.", 1);
  per_role(out, roles, "spec_unknown", "m3s_tasks_spec_unknown", "gauge",
           "Launched tasks whose record has no spec digest (launched by an older version).",
           1);

  /* Tasks the role replaced, by why (only the node clock counts so far). */
  bool anyr = false;
  double v;
  for(int r = 0; r < 3; r++) {
    if(!num(roles[r], "replaced_node_not_ready", &v))
      continue;
    if(!anyr)
      family(out, "m3s_tasks_replaced_total", "counter",
             "Tasks the role killed and replaced, by reason (node_not_ready: "
             "K3S_NODE_TIMEOUT).");
    anyr = true;
    sample2(out, "m3s_tasks_replaced_total", "role", role_names[r], "reason", "node_not_ready", v);
  }

  /* Tasks by role and state (a count per distinct state). */
  bool any = false;
  for(int r = 0; r < 3; r++) {
    json_t *tasks = json_object_get(roles[r], "tasks");
    if(!json_is_object(tasks))
      continue;
    json_t *by_state = json_object();
    const char *id;
    json_t *t;
    json_object_foreach(tasks, id, t) {
      const char *st = json_string_value(json_object_get(t, "state"));
      if(!st)
        st = json_string_value(t); /* a bare state string */
      if(!st || !*st)
        st = "unknown";
      json_object_set_new(by_state, st,
                          json_integer(json_integer_value(json_object_get(by_state, st)) + 1));
    }
    if(!any)
      family(out, "m3s_tasks", "gauge", "Tasks known to each role, by state.");
    any = true;
    const char *st;
    json_t *n;
    json_object_foreach(by_state, st, n)
      sample2(out, "m3s_tasks", "role", role_names[r], "state", st,
              (double)json_integer_value(n));
    json_decref(by_state);
  }
}

/* The last rollout plan: its status, and its steps by status. */
static void write_rollout(FILE *out, const json_t *plan)
{
  static const char *const st[] = { "PENDING", "IN_PROGRESS", "PAUSED", "COMPLETE", "FAILED",
                                    "ABORTED" };
  double n[6] = { 0 };
  const char *ps = json_string_value(json_object_get(plan, "status"));
  const json_t *ph;
  size_t i, j;
  json_array_foreach(json_object_get(plan, "phases"), i, ph) {
    const json_t *step;
    json_array_foreach(json_object_get(ph, "steps"), j, step) {
      const char *s = json_string_value(json_object_get(step, "status"));
      for(size_t k = 0; s && k < 6; k++)
        n[k] += !strcmp(s, st[k]);
    }
  }
  family(out, "m3s_rollout_plan", "gauge",
         "1 for the status of the last rollout plan (none: no sample).");
  for(size_t k = 0; k < 6; k++)
    sample1(out, "m3s_rollout_plan", "status", st[k], ps && !strcmp(ps, st[k]));
  family(out, "m3s_rollout_steps", "gauge", "Steps of the last rollout plan, by status.");
  for(size_t k = 0; k < 6; k++)
    sample1(out, "m3s_rollout_steps", "status", st[k], n[k]);
}

void m3s__metrics_write(FILE *out, const m3s_metrics_in_t *in)
{
  static const char *const sources[] = { "mesos", "store", "offers", "datastore", "server",
                                         "agent" };
  const json_t *got[] = { in->mesos, in->store, in->offers, in->roles[0], in->roles[1],
                          in->roles[2] };

  family(out, "m3s_build_info", "gauge", "The running daemon's version.");
  sample1(out, "m3s_build_info", "version", M3S_VERSION, 1);
  family(out, "m3s_source_up", "gauge",
         "1 when the actor answered its status request for this scrape.");
  for(size_t i = 0; i < sizeof(sources) / sizeof(sources[0]); i++)
    sample1(out, "m3s_source_up", "source", sources[i], json_is_object(got[i]));

  if(json_is_object(in->mesos))
    write_mesos(out, in->mesos);
  if(json_is_object(in->store))
    write_store(out, in->store);
  if(json_is_object(in->offers))
    write_offers(out, in->offers);
  write_roles(out, (json_t *const *)in->roles);
  if(json_is_object(in->kube))
    write_kube(out, in->kube);
  if(json_is_object(in->rollout))
    write_rollout(out, in->rollout);

  if(in->nactors) {
    family(out, "m3s_actor_mailbox_depth", "gauge", "Messages queued for each actor.");
    for(size_t i = 0; i < in->nactors; i++)
      sample1(out, "m3s_actor_mailbox_depth", "actor", in->actor_names[i],
              (double)in->actor_depths[i]);
  }

  family(out, "m3s_api_requests_total", "counter",
         "REST API requests by route (path template) and status code.");
  for(size_t r = 0; r < in->nroutes; r++) {
    for(size_t k = 0; k < in->ncodes; k++) {
      uint64_t n = in->requests[r * in->ncodes + k];
      if(!n)
        continue;
      char code[16];
      if(in->codes[k])
        snprintf(code, sizeof(code), "%d", in->codes[k]);
      else
        snprintf(code, sizeof(code), "other");
      sample2(out, "m3s_api_requests_total", "path", in->route_templates[r], "code", code,
              (double)n);
    }
  }
  family(out, "m3s_api_auth_failures_total", "counter",
         "Requests with wrong or malformed credentials.");
  sample1(out, "m3s_api_auth_failures_total", NULL, NULL, (double)in->auth_failures);
  family(out, "m3s_api_auth_throttled_total", "counter",
         "Requests refused (429) because their client failed to authenticate too often.");
  sample1(out, "m3s_api_auth_throttled_total", NULL, NULL, (double)in->auth_throttled);
}
