/* The api actor's handlers that say how things are: /health,
 * /api/m3s/v0/status, status/m3s, status/k8s, /metrics, events, the status
 * page's files, the kubeconfig, versions and capabilities. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/kube.h"
#include "m3s/mesos.h"
#include "m3s/offers.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"
#include "m3s/rollout.h"
#include "api-int.h"

#ifndef M3S_BUILD_DATE
#define M3S_BUILD_DATE ""
#endif

int api_h_versions(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const char body[] = "/api/m3s/v0";
  return api_respond(c, 200, CT_TEXT, "-", body, sizeof(body) - 1, NULL, NULL);
}

/* Liveness: always 200 while the server answers; the body says whether
 * Redis and Mesos are there (ui.c). No ids, no secrets: no auth. */
int api_h_health(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ask_t k[3] = {
    { .to = a->store, .name = "store", .type = M3S_STORE_STATUS },
    { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_STATUS },
    { .to = a->kube, .name = "kube", .type = M3S_KUBE_STATUS, .arg = M3S_KUBE_BRIEF },
  };
  int nk = a->kube ? 3 : 2;
  api_ask_all(a, k, nk);
  json_t *store = k[0].rc ? NULL : api_answer_json(k[0].ans);
  json_t *mesos = k[1].rc ? NULL : api_answer_json(k[1].ans);
  json_t *kube = nk < 3 || k[2].rc ? NULL : api_answer_json(k[2].ans);
  api_ask_free(k, nk);
  json_t *body = m3s__ui_health(store, mesos, kube);
  json_decref(store);
  json_decref(mesos);
  json_decref(kube);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  int st = text ? api_respond(c, 200, CT_JSON, NULL, text, strlen(text), NULL, NULL)
                : api_respond(c, 200, CT_TEXT, NULL, "ok", 2, NULL, NULL);
  free(text);
  return st;
}

int api_h_kubeconfig(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  /* The kube actor's copy of <fw>:kubernetes_config with every
   * 127.0.0.1:6443 replaced by the K3s server's <hostname>:<port>. None
   * yet: 200, no body and no content type, as the original. */
  if(!a->kube)
    return api_respond(c, 200, NULL, "v0", "", 0, NULL, NULL);
  ask_t k = { .to = a->kube, .name = "kube", .type = M3S_KUBE_CONFIG };
  int st = api_ask_one(a, c, &k);
  if(st)
    return st;
  char *text = m3s_msg_take(k.ans);
  api_ask_free(&k, 1);
  if(!text) {
    /* None read yet: "none published" only if Redis could be asked. (A
     * copy read before an outage is served: nothing can change it in
     * Redis while the K3s server cannot reach it either.) */
    ask_t s = { .to = a->store, .name = "store", .type = M3S_STORE_STATUS };
    api_ask_all(a, &s, 1);
    json_t *j = s.rc ? NULL : api_answer_json(s.ans);
    api_ask_free(&s, 1);
    bool down = !json_is_true(json_object_get(j, "connected"));
    json_decref(j);
    if(down)
      return api_error(c, 503, "Redis is unavailable: the kubeconfig (published there by the "
                                "K3s server) cannot be read; retry when Redis is back");
    return api_respond(c, 200, NULL, "v0", "", 0, NULL, NULL);
  }
  st = api_respond(c, 200, CT_TEXT, "v0", text, strlen(text), NULL, NULL);
  free(text);
  return st;
}

/* The kube actor's STATUS (arg M3S_KUBE_BRIEF or 0), or NULL when there is
 * no kube actor or it did not answer. New reference. */
static json_t *kube_status(api_t *a, int64_t arg)
{
  if(!a->kube)
    return NULL;
  ask_t k = { .to = a->kube, .name = "kube", .type = M3S_KUBE_STATUS, .arg = arg };
  api_ask_all(a, &k, 1);
  json_t *s = k.rc ? NULL : api_answer_json(k.ans);
  api_ask_free(&k, 1);
  return s;
}

int api_h_version(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  /* K3SVersion: one element per Kubernetes node the kube actor knows,
   * null when none (or no answer). */
  json_t *s = kube_status(a, 0), *k3s = NULL;
  const char *name;
  json_t *n;
  json_object_foreach(json_object_get(s, "nodes"), name, n) {
    json_t *info = json_object_get(n, "nodeInfo");
    if(!k3s)
      k3s = json_array();
    json_array_append_new(k3s, json_pack("{s:s, s:O}", "NodeName", name, "NodeInfo",
                                         json_is_object(info) ? info : json_object()));
  }
  json_decref(s);
  return api_respond_json(c, json_pack("{s:{s:s, s:s}, s:o}", "M3SVersion", "gitVersion",
                                   M3S_VERSION, "buildDate", M3S_BUILD_DATE, "K3SVersion",
                                   k3s ? k3s : json_null()));
}

static char *render_status_m3s(json_t *const s[3], const json_t *names)
{
  json_t *maps[3], *outdated[3];
  for(int i = 0; i < 3; i++) {
    maps[i] = json_object();
    outdated[i] = json_array();
    const char *id;
    json_t *task;
    json_object_foreach(json_object_get(s[i], "tasks"), id, task) {
      if(json_is_true(json_object_get(task, "outdated")))
        json_array_append_new(outdated[i], json_string(id));
      const char *state = json_string_value(json_object_get(task, "state"));
      if(!state)
        state = "";
      if(i == 0) /* datastore: task id -> state */
        json_object_set_new(maps[i], id, json_string(state));
      else
        json_object_set_new(maps[i], id, json_pack("{s:s, s:s}", "Status", state, "K3sNodeName",
                                                   json_string_value(json_object_get(names, id))
                                                     ? json_string_value(json_object_get(names, id))
                                                     : ""));
    }
  }
  /* Outdated (m3s only): the tasks launched with another spec than the
   * configuration gives now (m3s/taskspec.h), by role. */
  json_t *out = json_pack("{s:o, s:o, s:s, s:o, s:{s:o, s:o, s:o}}", "Server", maps[1], "Agent",
                          maps[2], "API", "", "Datastore", maps[0], "Outdated", "Datastore",
                          outdated[0], "Server", outdated[1], "Agent", outdated[2]);
  char *body = out ? json_dumps(out, JSON_COMPACT) : NULL;
  json_decref(out);
  return body;
}

int api_h_status_m3s(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const int roles[3] = { M3S_ROLE_DATASTORE, M3S_ROLE_SERVER, M3S_ROLE_AGENT };
  ticket_t t[3];
  json_t *s[3];
  int st = api_roles_status(a, c, roles, 3, t, s);
  if(st)
    return st;
  /* K3sNodeName: task id -> node name from the kube actor's live state;
   * its version changes whenever a node's task or name does. */
  ticket_t kt;
  json_t *ks, *names = json_object();
  bool kheld = api_kube_brief(a, &kt, &ks) == 0;
  const char *nname;
  json_t *nd;
  json_object_foreach(json_object_get(ks, "nodes"), nname, nd) {
    const char *tid = json_string_value(json_object_get(nd, "task_id"));
    if(tid && *tid)
      json_object_set_new(names, tid, json_string(nname));
  }
  uint64_t kv = ks ? (uint64_t)json_integer_value(json_object_get(ks, "version")) + 1 : 0;
  if(kheld)
    api_status_release(a, &kt);
  /* The same answers render the same body: keep the last one. */
  uint64_t ids[4] = { t[0].f->id, t[1].f->id, t[2].f->id, kv };
  char *body = NULL;
  pthread_mutex_lock(&a->out_lock);
  if(a->out_body && !memcmp(ids, a->out_ids, sizeof(ids)))
    body = m3s_xstrdup(a->out_body);
  pthread_mutex_unlock(&a->out_lock);
  if(!body) {
    body = render_status_m3s(s, names);
    if(body) {
      char *copy = m3s_xstrdup(body);
      pthread_mutex_lock(&a->out_lock);
      free(a->out_body);
      a->out_body = copy;
      memcpy(a->out_ids, ids, sizeof(ids));
      pthread_mutex_unlock(&a->out_lock);
    }
  }
  json_decref(names);
  for(int i = 0; i < 3; i++)
    api_status_release(a, &t[i]);
  if(!body)
    return api_error(c, 500, "cannot encode the answer");
  st = api_respond_str(c, 200, CT_JSON, body);
  free(body);
  return st;
}

int api_h_status_k8s(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const int agent = M3S_ROLE_AGENT;
  ticket_t t;
  json_t *s;
  int st = api_roles_status(a, c, &agent, 1, &t, &s);
  if(st)
    return st;
  bool ok = json_is_true(json_object_get(s, "healthy"));
  if(a->kube) {
    /* From Kubernetes: connected, every agent node of an agent task Ready,
     * and as many of them as the agent role's desired count. */
    ticket_t kt;
    json_t *ks;
    bool kheld = api_kube_brief(a, &kt, &ks) == 0;
    const json_t *tasks = json_object_get(s, "tasks");
    json_int_t desired = json_integer_value(json_object_get(s, "desired")), count = 0;
    const char *name;
    json_t *n;
    ok = json_is_true(json_object_get(ks, "connected"));
    json_object_foreach(json_object_get(ks, "nodes"), name, n) {
      const char *tid = json_string_value(json_object_get(n, "task_id"));
      const char *role = json_string_value(json_object_get(n, "role"));
      if(!tid || !*tid || !role || strcmp(role, "agent") || !json_object_get(tasks, tid))
        continue;
      count++;
      ok = ok && json_is_true(json_object_get(n, "ready"));
    }
    ok = ok && count == desired;
    if(!kheld) {
      api_status_release(a, &t);
      return api_error(c, 503, "kube did not answer");
    }
    api_status_release(a, &kt);
  }
  api_status_release(a, &t);
  return api_respond_str(c, 200, CT_JSON, ok ? "ok" : "nok");
}

int api_h_capabilities(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const struct { const char *name, *path, *method; } fixed[] = {
    { "cluster-restart", "/api/m3s/v0/cluster/restart", "PUT" },
    { "server-restart", "/api/m3s/v0/server/restart", "PUT" },
    { "agent-restart", "/api/m3s/v0/agent/restart", "PUT" },
    { "ds-restart", "/api/m3s/v0/ds/restart", "PUT" },
    { "cluster-start", "/api/m3s/v0/cluster/start", "PUT" },
    { "cluster-shutdown", "/api/m3s/v0/cluster/shutdown", "PUT" },
    { "cluster-update", "/api/m3s/v0/cluster/update", "PUT" },
    { "cluster-rollout", "/api/m3s/v0/cluster/rollout", "PUT" },
    { "rollout-plan", "/api/m3s/v0/plan", "GET" },
    { "rollout-pause", "/api/m3s/v0/plan/pause", "PUT" },
    { "rollout-resume", "/api/m3s/v0/plan/resume", "PUT" },
    { "rollout-abort", "/api/m3s/v0/plan/abort", "PUT" },
    { "k3s-count-agents", "/api/m3s/v0/agent/scale", "GET" },
    { "k3s-count-servers", "/api/m3s/v0/server/scale", "GET" },
    { "k3s-count-datastore", "/api/m3s/v0/datastore/scale", "GET" },
    { "get-kubeconfig", "/api/m3s/v0/server/config", "GET" },
    { "get-kubeversion", "/api/m3s/v0/server/version", "GET" },
    { "scale-agent", "/api/m3s/v0/agent/scale/{count}", "GET" },
    { "scale-server", "/api/m3s/v0/server/scale/{count}", "GET" },
    { "scale-datastore", "/api/m3s/v0/datastore/scale/{count}", "GET" },
    { "scale-etcd", "/api/m3s/v0/etcd/scale/{count}", "GET" },
    { "status-k3s", "/api/m3s/v0/status/k8s", "GET" },
    { "status-m3s", "/api/m3s/v0/status/m3s", "GET" },
  };
  static const char *const comps[] = { "server", "agent", "ds" };
  static const struct { const char *suffix, *seg, *var; } adj[] = {
    { "cpus", "cpus", "cpus" },         { "cpus-limit", "cpusLimit", "cpus" },
    { "memory", "memory", "memory" },   { "memory-limit", "memoryLimit", "memory" },
    { "disk", "disk", "disk" },         { "disk-limit", "diskLimit", "disk" },
  };
  char line[160];
  json_t *arr = json_array();
  for(size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
    snprintf(line, sizeof(line), "%s, %s, %s", fixed[i].name, fixed[i].path, fixed[i].method);
    json_array_append_new(arr, json_string(line));
  }
  for(size_t i = 0; i < sizeof(comps) / sizeof(comps[0]); i++) {
    for(size_t j = 0; j < sizeof(adj) / sizeof(adj[0]); j++) {
      snprintf(line, sizeof(line), "adjust-%s-%s, /api/m3s/v0/%s/%s/{%s}, PUT", comps[i],
               adj[j].suffix, comps[i], adj[j].seg, adj[j].var);
      json_array_append_new(arr, json_string(line));
    }
  }
  json_array_append_new(arr, json_string("cordon-agent-nodes, /api/m3s/v0/agent/cordon, PUT"));
  json_array_append_new(arr,
                        json_string("uncordon-agent-nodes, /api/m3s/v0/agent/uncordon, PUT"));
  json_array_append_new(arr, json_string("metrics, /metrics, GET"));
  json_array_append_new(arr, json_string("health, /health, GET"));
  char *body = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  int st = api_respond_str(c, 200, CT_JSON, body ? body : "[]");
  free(body);
  return st;
}

/* The status page's files (ui.cmake), behind the API's authentication. */
int api_h_ui(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  const m3s_ui_asset_t *f = NULL;
  for(size_t i = 0; i < m3s__ui_nassets && !f; i++)
    if(!strcmp(m3s__ui_assets[i].path, r->path))
      f = &m3s__ui_assets[i];
  if(!f)
    return api_error(c, 404, "no such file");
  return api_respond(c, 200, f->ctype, NULL, (const char *)f->data, f->len,
                 "Content-Security-Policy", M3S_UI_CSP);
}

/* Everything the status page shows but the events (ui.c): answers even
 * when Redis, Mesos or a role is away, and says so. */
int api_h_status(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const int roles[3] = { M3S_ROLE_DATASTORE, M3S_ROLE_SERVER, M3S_ROLE_AGENT };
  ask_t k[4] = {
    { .to = a->store, .name = "store", .type = M3S_STORE_STATUS },
    { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_STATUS },
    { .to = a->offers, .name = "offers", .type = M3S_OFFERS_STATUS },
    { .to = a->kube, .name = "kube", .type = M3S_KUBE_STATUS },
  };
  int nk = a->kube ? 4 : 3;
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  ticket_t t[3];
  json_t *j[6];
  api_status_begin(a, roles, 3, t);
  api_ask_send(k, nk);
  /* The shared requests first: others may be waiting for them. */
  for(int i = 0; i < 3; i++)
    api_status_end(a, &t[i], deadline, &j[3 + i]); /* NULL when it failed */
  api_ask_wait(k, nk, deadline);
  for(int i = 0; i < 3; i++)
    j[i] = k[i].rc ? NULL : api_answer_json(k[i].ans);
  json_t *kube = nk < 4 || k[3].rc ? NULL : api_answer_json(k[3].ans);
  api_ask_free(k, nk);
  json_t *out = m3s__ui_status(j[0], j[1], j[2], &j[3], kube);
  json_decref(kube);
  /* The rollout plan, as GET plan gives it (null: none, or no answer). */
  ask_t kp = { .to = a->rollout, .name = "rollout", .type = M3S_ROLLOUT_GET };
  api_ask_all(a, &kp, 1);
  json_t *plan = kp.rc ? NULL : api_answer_json(kp.ans);
  api_ask_free(&kp, 1);
  if(out)
    json_object_set_new(out, "plan", plan ? plan : json_null());
  else
    json_decref(plan);
  for(int i = 0; i < 3; i++) {
    json_decref(j[i]);
    api_status_release(a, &t[i]);
  }
  return api_respond_json(c, out);
}

int api_h_events(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  return api_respond_json(c, m3s__ui_events(mg_get_request_info(c)->query_string));
}

int api_h_metrics(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const char *const actors[] = { "store", "offers", "datastore", "server",
                                        "agent", "mesos", "kube", "rollout", "api" };
  ask_t k[5] = {
    { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_STATUS },
    { .to = a->store, .name = "store", .type = M3S_STORE_STATUS },
    { .to = a->offers, .name = "offers", .type = M3S_OFFERS_STATUS },
    { .to = a->kube, .name = "kube", .type = M3S_KUBE_STATUS, .arg = M3S_KUBE_BRIEF },
    { .to = a->rollout, .name = "rollout", .type = M3S_ROLLOUT_GET },
  };
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  static const int roles[3] = { M3S_ROLE_DATASTORE, M3S_ROLE_SERVER, M3S_ROLE_AGENT };
  ticket_t t[3];
  api_status_begin(a, roles, 3, t);
  api_ask_send(k, 5);
  json_t *j[6];
  /* The shared requests first: others may be waiting for them. */
  for(int i = 0; i < 3; i++)
    api_status_end(a, &t[i], deadline, &j[3 + i]); /* NULL when it failed */
  api_ask_wait(k, 5, deadline);
  for(int i = 0; i < 3; i++)
    j[i] = k[i].rc ? NULL : api_answer_json(k[i].ans);
  json_t *kube = k[3].rc ? NULL : api_answer_json(k[3].ans);
  json_t *plan = k[4].rc ? NULL : api_answer_json(k[4].ans);
  api_ask_free(k, 5);

  const char *names[sizeof(actors) / sizeof(actors[0])];
  size_t depths[sizeof(actors) / sizeof(actors[0])], nact = 0;
  for(size_t i = 0; i < sizeof(actors) / sizeof(actors[0]); i++) {
    m3s_actor_t *act = m3s_system_find(a->base.sys, actors[i]);
    if(act) {
      names[nact] = actors[i];
      depths[nact++] = m3s_actor_depth(act);
    }
  }
  size_t ncount = (api_nroutes + 1) * API_NCODES;
  uint64_t *snap = m3s_xcalloc(ncount, sizeof(*snap));
  for(size_t i = 0; i < ncount; i++)
    snap[i] = atomic_load_explicit(&a->requests[i], memory_order_relaxed);
  const char **templates = m3s_xcalloc(api_nroutes + 1, sizeof(*templates));
  for(size_t i = 0; i < api_nroutes; i++)
    templates[i] = api_routes[i].path;
  templates[api_nroutes] = "(unmatched)";

  m3s_metrics_in_t in = {
    .mesos = j[0], .store = j[1], .offers = j[2], .roles = { j[3], j[4], j[5] }, .kube = kube,
    .rollout = plan,
    .actor_names = names, .actor_depths = depths, .nactors = nact,
    .route_templates = templates, .nroutes = api_nroutes + 1, .codes = api_codes,
    .ncodes = API_NCODES,
    .requests = snap,
    .auth_failures = atomic_load_explicit(&a->auth_failures, memory_order_relaxed),
    .auth_throttled = atomic_load_explicit(&a->auth_throttled, memory_order_relaxed),
  };
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  if(f) {
    m3s__metrics_write(f, &in);
    fclose(f);
  }
  free(snap);
  free(templates);
  json_decref(kube);
  json_decref(plan);
  for(int i = 0; i < 3; i++) {
    json_decref(j[i]);
    api_status_release(a, &t[i]);
  }
  if(!f || !buf) {
    free(buf);
    return api_error(c, 500, "out of memory");
  }
  int st = api_respond(c, 200, CT_METRICS, NULL, buf, len, NULL, NULL);
  free(buf);
  return st;
}

