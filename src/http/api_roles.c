/* The api actor's handlers for the roles and the cluster: scale and
 * counts, resources, cordon, cluster operations, the framework id. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/mesos.h"
#include "m3s/offers.h"
#include "m3s/xalloc.h"
#include "api-int.h"

/* The original forgets the framework id when the master no longer lists
 * it; the Mesos actor knows that without asking: subscribed means the
 * master has the framework (nothing changes), otherwise the id is dropped
 * and the next subscription registers a new framework. 200, empty body,
 * either way, as the original. */
int api_h_framework_delete(api_t *a, struct mg_connection *c, const route_t *r,
                           const req_t *q)
{
  (void)r;
  (void)q;
  ask_t k = { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_FORGET_ID };
  int st = api_ask_one(a, c, &k);
  if(st)
    return st;
  api_ask_free(&k, 1);
  return api_respond_str(c, 200, CT_JSON, "");
}

/* 0..M3S_ROLE_MAX_COUNT in plain decimal digits. */
static bool parse_count(const char *s, int *out)
{
  long v = 0;
  size_t n = strlen(s);
  if(n == 0 || n > 9)
    return false;
  for(size_t i = 0; i < n; i++) {
    if(s[i] < '0' || s[i] > '9')
      return false;
    v = v * 10 + (s[i] - '0');
  }
  if(v > M3S_ROLE_MAX_COUNT)
    return false;
  *out = (int)v;
  return true;
}

int api_h_scale(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  int count;
  if(!parse_count(q->count, &count))
    return api_error(c, 400, "the count must be a whole number from 0 to %d",
                      M3S_ROLE_MAX_COUNT);
  ask_t k = { .to = a->roles[r->arg], .name = api_role_actor[r->arg], .type = M3S_ROLE_SCALE,
              .arg = count };
  m3s_ui_change_t ch = { .kind = M3S_UI_SCALE, .owner = api_role_actor[r->arg], .count = count };
  int st = api_ask_change(a, c, &k, M3S_ROLE_STATUS, &ch);
  if(st)
    return st;
  api_changed(a);
  if(k.ans->flags & M3S_ROLE_ERROR) {
    int e = (int)-k.ans->arg;
    api_ask_free(&k, 1);
    if(e == EINVAL)
      return api_error(c, 400, "the %s role refused the count %d", api_role_actor[r->arg], count);
    if(e == EAGAIN)
      return api_backlogged(c);
    return api_error(c, 500, "the %s role could not scale: %s", api_role_actor[r->arg],
                     strerror(e));
  }
  char body[32];
  snprintf(body, sizeof(body), "%lld", (long long)k.ans->arg);
  api_ask_free(&k, 1);
  return api_respond_str(c, 200, (r->flags & R_TEXT) ? CT_TEXT : CT_JSON, body);
}

int api_h_count(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ticket_t t;
  json_t *s;
  int st = api_roles_status(a, c, &r->arg, 1, &t, &s);
  if(st)
    return st;
  json_t *desired = json_object_get(s, "desired");
  json_t *tasks = json_object_get(s, "tasks");
  json_t *out = NULL;
  if(json_is_integer(desired) && json_is_object(tasks))
    out = json_pack("{s:I, s:I}", "Scale", json_integer_value(desired), "Running",
                    (json_int_t)json_object_size(tasks));
  api_status_release(a, &t);
  if(!out)
    return api_error(c, 500, "the %s role answered without its counts", api_role_actor[r->arg]);
  return api_respond_json(c, out);
}

int api_h_scheduling(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ask_t k = { .to = a->offers, .name = "offers", .type = M3S_OFFERS_SCHEDULING, .arg = r->arg };
  m3s_ui_change_t ch = { .kind = M3S_UI_CORDON, .owner = "offers", .count = r->arg };
  int st = api_ask_change(a, c, &k, M3S_OFFERS_STATUS, &ch);
  if(st)
    return st;
  api_changed(a);
  bool failed = k.ans->flags & M3S_ROLE_ERROR;
  int e = (int)-k.ans->arg;
  api_ask_free(&k, 1);
  if(failed && e == EAGAIN)
    return api_backlogged(c);
  if(failed)
    return api_error(c, 500, "the scheduling flag could not be saved: %s", strerror(e));
  return api_respond_str(c, 200, CT_JSON,
                     r->arg ? "Nodes Cordoned, Scheduling will be disabled"
                            : "Nodes Uncordoned, Scheduling will now resume");
}

int api_h_cluster(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ask_t k = { .to = a->offers, .name = "offers", .type = M3S_OFFERS_CLUSTER, .arg = r->arg };
  int st = api_ask_one(a, c, &k);
  if(st)
    return st;
  api_changed(a);
  bool failed = k.ans->flags & M3S_ROLE_ERROR;
  int e = (int)-k.ans->arg;
  api_ask_free(&k, 1);
  bool restart = r->arg != M3S_CLUSTER_SHUTDOWN && r->arg != M3S_CLUSTER_START;
  if(failed && e == EALREADY) {
    if(r->arg == M3S_CLUSTER_START)
      return api_error(c, 406, "the cluster is already running");
    if(r->arg == M3S_CLUSTER_SHUTDOWN)
      return api_error(c, 406, "the cluster is already shut down");
    return api_error(c, 406, "the cluster is shut down: start it instead");
  }
  if(failed && e == EBUSY)
    return api_error(c, 409, "another cluster operation is in progress");
  if(failed && e == EAGAIN)
    return api_backlogged(c);
  if(failed)
    return api_error(c, 500, "the cluster operation failed: %s", strerror(e));
  return api_respond_str(c, 200, CT_JSON, restart ? "Restart Scheduled." : "");
}

/* A finite decimal >= 0: digits, optionally one '.' and more digits. */
static bool parse_amount(const char *s, double *out)
{
  size_t n = strlen(s), digits = 0, dots = 0;
  if(n == 0 || n > 24)
    return false;
  for(size_t i = 0; i < n; i++) {
    if(s[i] >= '0' && s[i] <= '9')
      digits++;
    else if(s[i] == '.' && i > 0 && i + 1 < n && !dots)
      dots++;
    else
      return false;
  }
  char *end = NULL;
  double v = strtod(s, &end);
  if(!digits || !end || *end || v < 0 || v > 1e12)
    return false;
  *out = v;
  return true;
}

int api_h_resource(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  double v;
  if(!parse_amount(q->count, &v))
    return api_error(c, 400, "%s must be a number >= 0 (e.g. 2 or 0.5)", q->res_name);
  m3s_role_resource_t *p = m3s_xmalloc(sizeof(*p));
  p->kind = (m3s_role_resource_kind_t)q->res;
  p->value = v;
  static const char *const keys[] = { "cpus", "cpus_limit", "mem", "mem_limit", "disk",
                                      "disk_limit" };
  ask_t k = { .to = a->roles[q->comp], .name = api_role_actor[q->comp],
              .type = M3S_ROLE_SET_RESOURCE, .payload = p };
  m3s_ui_change_t ch = { .kind = M3S_UI_RESOURCE, .owner = api_role_actor[q->comp],
                         .res_key = keys[q->res], .value = v };
  int st = api_ask_change(a, c, &k, M3S_ROLE_STATUS, &ch);
  if(st)
    return st;
  api_changed(a);
  bool failed = k.ans->flags & M3S_ROLE_ERROR;
  int e = (int)-k.ans->arg;
  api_ask_free(&k, 1);
  if(failed && e == EINVAL)
    return api_error(c, 400, "the %s role refused %s = %s", api_role_actor[q->comp], q->res_name,
                      q->count);
  if(failed && e == EAGAIN)
    return api_backlogged(c);
  if(failed)
    return api_error(c, 500, "the %s role could not save %s: %s", api_role_actor[q->comp],
                      q->res_name, strerror(e));
  return api_respond_str(c, 200, CT_JSON, "Resources Updated");
}
