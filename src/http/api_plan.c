/* The rollout plan (m3s/rollout.h): GET /api/m3s/v0/plan, PUT
 * /api/m3s/v0/plan/{pause|resume|abort}, PUT /api/m3s/v0/cluster/rollout,
 * and the start of a plan after a cluster/update with "rollout": true. */
#include <errno.h>
#include <string.h>

#include "m3s/rollout.h"
#include "api-int.h"

/* The answer of the rollout actor as a response: the plan, or the error it
 * gave (what in a 409 / 404 / 503). */
static int respond(api_t *a, struct mg_connection *c, ask_t *k, const char *what)
{
  int st;
  if(k->rc == -ETIMEDOUT) {
    api_changed(a);
    st = api_error(c, 503, "the rollout plan was not confirmed as saved in Redis within %d ms: "
                   "it is saved once Redis answers and nothing advances until then; see GET "
                   "/api/m3s/v0/plan", a->opts.call_timeout_ms);
  }
  else if(k->rc) {
    st = api_unavailable(c, a, k);
  }
  else if(k->ans->flags & M3S_ROLE_ERROR) {
    switch(k->ans->arg) {
    case -ENOENT: st = api_error(c, 404, "there has never been a rollout plan"); break;
    case -EBUSY: st = api_error(c, 409, "a rollout plan is in progress or paused: resume or "
                                "abort it first"); break;
    case -EALREADY: st = api_error(c, 409, "the plan cannot %s now (see GET "
                                   "/api/m3s/v0/plan)", what); break;
    case -EIO: st = api_error(c, 500, "Redis refused the plan"); break;
    default: st = api_error(c, 503, "the rollout actor is not ready (loading, or Redis "
                            "backlogged); retry later"); break;
    }
  }
  else {
    api_changed(a);
    json_t *plan = api_answer_json(k->ans);
    st = plan ? api_respond_json(c, plan) : api_error(c, 500, "rollout answered without a plan");
  }
  api_ask_free(k, 1);
  return st;
}

int api_h_plan(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  (void)r;
  (void)q;
  ask_t k = { .to = a->rollout, .name = "rollout", .type = M3S_ROLLOUT_GET };
  if(api_ask_one(a, c, &k) != 0)
    return 503;
  json_t *plan = api_answer_json(k.ans);
  api_ask_free(&k, 1);
  if(!plan)
    return api_error(c, 404, "there has never been a rollout plan");
  return api_respond_json(c, plan);
}

int api_h_plan_control(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  (void)q;
  static const char *const what[] = { "", "pause", "resume", "abort" };
  ask_t k = { .to = a->rollout, .name = "rollout", .type = M3S_ROLLOUT_CONTROL, .arg = r->arg };
  api_ask_all(a, &k, 1);
  return respond(a, c, &k, what[r->arg]);
}

int api_start_rollout(api_t *a, struct mg_connection *c, bool force, json_t *updated)
{
  ask_t k = { .to = a->rollout, .name = "rollout", .type = M3S_ROLLOUT_START, .arg = force };
  api_ask_all(a, &k, 1);
  if(!updated)
    return respond(a, c, &k, "start");
  if(k.rc || (k.ans->flags & M3S_ROLE_ERROR)) {
    /* The variables are changed and stored: say so with the error. */
    json_decref(updated);
    return respond(a, c, &k, "start");
  }
  json_t *plan = api_answer_json(k.ans);
  api_ask_free(&k, 1);
  api_changed(a);
  json_object_set_new(updated, "plan", plan ? plan : json_null());
  return api_respond_json(c, updated);
}

/* PUT cluster/rollout, with an optional body {"force": true}. */
int api_h_rollout(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  (void)r;
  (void)q;
  int status = 0;
  json_t *body = api_read_json(c, true, &status);
  if(!body)
    return status;
  const char *bad = NULL, *key;
  json_t *v;
  if(!json_is_object(body))
    bad = "the body is not a JSON object";
  json_object_foreach(body, key, v) {
    if(strcmp(key, "force") || !json_is_boolean(v))
      bad = "the only member the body may have is \"force\": true or false";
  }
  bool force = json_is_true(json_object_get(body, "force"));
  json_decref(body);
  if(bad)
    return api_error(c, 400, "%s", bad);
  return api_start_rollout(a, c, force, NULL);
}
