/* The kube actor's drains (M3S_KUBE_DRAIN, M3S_KUBE_RELEASE): the drain
 * set, pod lists and evictions through the Eviction API. Runs on the
 * actor's thread; the rules are in include/m3s/kube.h, the shared state in
 * kube-int.h.
 *
 * DESIGN. Nothing here waits: kube_drain_pump runs after every message
 * and every wake of the actor (kube_pump) and starts what is due, at most
 * KUBE_MAX_DRAIN_XFERS transfers at once; kube_drain_done takes their
 * answers. A periodic T_DRAIN timer, armed while the drain set is not
 * empty, wakes the actor every KUBE_DRAIN_TICK_MS so that due work starts
 * even when nothing else happens. Per task:
 *   1. its node (the node whose task id it is) is cordoned by the cordon
 *      rule (kube_want_patch), and nothing is evicted before the node is
 *      seen unschedulable;
 *   2. its pods are listed (GET /api/v1/pods?fieldSelector=spec.nodeName=
 *      <node>) one tick after the previous list ended, or after a backoff
 *      when it failed;
 *   3. every evictable pod (not a DaemonSet's, not a mirror pod, not
 *      terminated) is evicted once (POST .../pods/<pod>/eviction); a 429
 *      (a PodDisruptionBudget) or another error is retried after a backoff
 *      with jitter, a 404 means the pod is gone already;
 *   4. the task is drained when a list shows no evictable pod left.
 * The drain set lives in memory only: after a restart the caller asks
 * again, and evicting a pod that is gone is a harmless 404.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube-int.h"
#include "m3s/log.h"
#include "m3s/xalloc.h"

#define EVICT_BACKOFF_MIN_MS 2000
#define EVICT_BACKOFF_MAX_MS 10000
#define LIST_BACKOFF_MAX_MS 30000

/* ---- the drain set ---------------------------------------------------------------- */

bool kube_node_draining(kube_t *k, const kube_node_t *n)
{
  return n->task_id && k->drains.n && m3s_idmap_get(&k->drains, n->task_id) != NULL;
}

/* The node whose task is task, or NULL. */
static kube_node_t *node_of(kube_t *k, const char *task)
{
  for(size_t i = 0; i < k->nodes.cap; i++) {
    kube_node_t *n = k->nodes.slots[i].val;
    if(n && n->task_id && !strcmp(n->task_id, task))
      return n;
  }
  return NULL;
}

/* Forgets what the drain knew of its node's pods. */
static void drain_reset(kube_drain_t *d)
{
  d->pn = 0;
  d->pods = -1;
  d->drained = false;
  d->next_list_ms = 0;
  d->list_backoff_ms = 0;
}

static void drain_free(kube_drain_t *d)
{
  if(!d)
    return;
  free(d->pv);
  free(d->task);
  free(d);
}

void kube_drain_add(kube_t *k, const char *task)
{
  if(m3s_idmap_get(&k->drains, task))
    return; /* asked again: nothing changes */
  kube_drain_t *d = m3s_xcalloc(1, sizeof(*d));
  d->task = m3s_xstrdup(task);
  drain_reset(d);
  m3s_idmap_put(&k->drains, d->task, d);
  kube_node_t *n = node_of(k, task);
  m3s_info("task %s: drain asked (its node %s)", task, n ? n->name : "is not known yet");
  if(n)
    kube_want_patch(k, n);
  if(!k->drain_timer)
    k->drain_timer = m3s_timer_start(&k->base, T_DRAIN, KUBE_DRAIN_TICK_MS, KUBE_DRAIN_TICK_MS);
}

void kube_drain_release(kube_t *k, const char *task)
{
  kube_drain_t *d = m3s_idmap_del(&k->drains, task);
  if(!d)
    return;
  /* Its transfers in the air find no drain when they end. */
  kube_node_t *n = node_of(k, task);
  m3s_info("task %s: drain released (%s%s)", task, n ? "uncordoning its node " : "its node is gone",
           n ? n->name : "");
  drain_free(d);
  if(n)
    kube_want_patch(k, n);
  if(!k->drains.n && k->drain_timer) {
    m3s_timer_cancel(&k->base, k->drain_timer);
    k->drain_timer = 0;
  }
}

void kube_drain_free(kube_t *k)
{
  for(size_t i = 0; i < k->drains.cap; i++)
    drain_free(k->drains.slots[i].val);
  m3s_idmap_free(&k->drains);
}

/* ---- pods --------------------------------------------------------------------------- */

static kube_pod_t *pod_find(kube_drain_t *d, const char *ns, const char *name)
{
  for(size_t i = 0; i < d->pn; i++)
    if(!strcmp(d->pv[i].ns, ns) && !strcmp(d->pv[i].name, name))
      return &d->pv[i];
  return NULL;
}

static kube_pod_t *pod_add(kube_drain_t *d, const char *ns, const char *name)
{
  if(d->pn == d->pcap) {
    d->pcap = d->pcap ? d->pcap * 2 : 8;
    d->pv = m3s_xrealloc(d->pv, d->pcap * sizeof(*d->pv));
  }
  kube_pod_t *p = &d->pv[d->pn++];
  memset(p, 0, sizeof(*p));
  snprintf(p->ns, sizeof(p->ns), "%s", ns);
  snprintf(p->name, sizeof(p->name), "%s", name);
  p->state = POD_PENDING;
  return p;
}

/* 1 when a drain evicts (or waits for) the pod: not a DaemonSet's, not a
 * mirror pod, not terminated. */
static bool evictable(const json_t *pod)
{
  const json_t *meta = json_object_get(pod, "metadata");
  const char *phase = json_string_value(json_object_get(json_object_get(pod, "status"), "phase"));
  if(phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))
    return false;
  if(json_object_get(json_object_get(meta, "annotations"), "kubernetes.io/config.mirror"))
    return false;
  size_t i;
  json_t *ref;
  json_array_foreach(json_object_get(meta, "ownerReferences"), i, ref) {
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    if(kind && !strcmp(kind, "DaemonSet"))
      return false;
  }
  return true;
}

/* A new error for the drain: kept for its status, logged when its kind
 * (a PodDisruptionBudget, a pod list, an eviction failure) changed, not
 * for each pod it concerns. */
static void drain_error(kube_drain_t *d, const char *kind, const char *text)
{
  snprintf(d->error, sizeof(d->error), "%s", text);
  if(!strcmp(d->error_kind, kind))
    return;
  snprintf(d->error_kind, sizeof(d->error_kind), "%s", kind);
  m3s_warn("task %s: drain of node %s: %s (retrying with backoff; logged again when this "
           "changes)", d->task, d->node[0] ? d->node : "?", text);
}

static void pods_listed(kube_t *k, kube_drain_t *d, const kube_xfer_t *x)
{
  json_error_t jerr;
  json_t *list = json_loadb(x->buf ? x->buf : "", x->len, 0, &jerr);
  json_t *items = json_object_get(list, "items");
  char why[768];
  if(!json_is_array(items)) {
    snprintf(why, sizeof(why), "the pod list of node %s is not a PodList%s%s", d->node,
             list ? "" : ": ", list ? "" : jerr.text);
    json_decref(list);
    d->list_backoff_ms = d->list_backoff_ms ? d->list_backoff_ms * 2 : KUBE_BACKOFF_MIN_MS;
    if(d->list_backoff_ms > LIST_BACKOFF_MAX_MS)
      d->list_backoff_ms = LIST_BACKOFF_MAX_MS;
    d->next_list_ms = m3s_now_ms() + kube_jitter(k, d->list_backoff_ms);
    drain_error(d, "list:protocol", why);
    return;
  }
  d->list_backoff_ms = 0;
  d->next_list_ms = m3s_now_ms() + KUBE_DRAIN_TICK_MS;
  for(size_t i = 0; i < d->pn; i++)
    d->pv[i].seen = false;
  long count = 0;
  size_t i;
  json_t *pod;
  json_array_foreach(items, i, pod) {
    const json_t *meta = json_object_get(pod, "metadata");
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *on = json_string_value(json_object_get(json_object_get(pod, "spec"), "nodeName"));
    if(!ns || !name || (on && strcmp(on, d->node)) || !evictable(pod))
      continue;
    count++;
    if(strlen(ns) > KUBE_MAX_NS || !kube_safe_name(ns) || !kube_safe_name(name)) {
      snprintf(why, sizeof(why), "the pod %.63s/%.100s has a name that cannot be evicted", ns,
               name);
      drain_error(d, "pod name", why);
      continue;
    }
    kube_pod_t *p = pod_find(d, ns, name);
    if(!p)
      p = pod_add(d, ns, name);
    p->seen = true;
    /* Terminating already (evicted by someone, or deleted): only waited for. */
    if(p->state == POD_PENDING && json_object_get(meta, "deletionTimestamp"))
      p->state = POD_EVICTED;
  }
  json_decref(list);
  /* Pods no longer listed are gone. */
  size_t o = 0;
  for(size_t j = 0; j < d->pn; j++)
    if(d->pv[j].seen)
      d->pv[o++] = d->pv[j];
  d->pn = o;
  bool was = d->drained;
  d->pods = count;
  d->drained = count == 0;
  if(d->drained && !was) {
    m3s_info("task %s: node %s is drained (no evictable pod left)", d->task, d->node);
    d->error[0] = d->error_kind[0] = '\0';
  }
}

/* Whether a pod of the drain still waits for its eviction or its answer. */
static bool evictions_left(const kube_drain_t *d)
{
  for(size_t i = 0; i < d->pn; i++)
    if(d->pv[i].state != POD_EVICTED)
      return true;
  return false;
}

/* The message of a Status body (errbody), or "". */
static void status_message(const kube_xfer_t *x, char *buf, size_t len)
{
  json_t *st = json_loads(x->errbody, 0, NULL);
  const char *m = json_string_value(json_object_get(st, "message"));
  snprintf(buf, len, "%s", m ? m : "");
  json_decref(st);
}

static void evicted(kube_t *k, kube_drain_t *d, const kube_xfer_t *x, CURLcode res, long status)
{
  kube_pod_t *p = d ? pod_find(d, x->ns, x->pod) : NULL;
  char why[768], msg[200], kind[48] = "pdb";
  if(res == CURLE_OK && (status == 200 || status == 201 || status == 404)) {
    k->evict_ok++;
    if(status == 404)
      m3s_debug("pod %s/%s: gone before its eviction", x->ns, x->pod);
    else
      m3s_info("pod %s/%s evicted from node %s (drain of task %s)", x->ns, x->pod, x->node,
               x->task);
    if(p)
      p->state = POD_EVICTED;
    /* The last eviction answered: look again soon rather than at the
     * next tick (an eviction without grace period is gone already). */
    if(d && !d->listing && !evictions_left(d))
      d->next_list_ms = m3s_now_ms();
    return;
  }
  if(res == CURLE_OK && status == 429) {
    k->evict_refused++;
    if(d)
      d->refused++;
    status_message(x, msg, sizeof(msg));
    snprintf(why, sizeof(why), "PodDisruptionBudget: 429 %s for %s/%s",
             msg[0] ? msg : "Too Many Requests", x->ns, x->pod);
  }
  else {
    const char *cat;
    k->evict_error++;
    if(d)
      d->failed++;
    kube_describe(x, res, status, &cat, why, sizeof(why));
    snprintf(kind, sizeof(kind), "eviction:%s:%ld", cat, status);
  }
  if(!p)
    return;
  p->state = POD_PENDING;
  p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : EVICT_BACKOFF_MIN_MS;
  if(p->backoff_ms > EVICT_BACKOFF_MAX_MS)
    p->backoff_ms = EVICT_BACKOFF_MAX_MS;
  p->next_ms = m3s_now_ms() + kube_jitter(k, p->backoff_ms);
  drain_error(d, kind, why);
}

/* ---- transfers ------------------------------------------------------------------------ */

static int free_slot(const kube_t *k)
{
  for(int s = 0; s < KUBE_MAX_DRAIN_XFERS; s++)
    if(!k->dx[s])
      return s;
  return -1;
}

static bool start(kube_t *k, kube_xfer_t *x, int slot)
{
  x->hdrs = curl_slist_append(x->hdrs, "Expect:");
  if(!kube_xfer_start(k, x)) {
    kube_xfer_free(x);
    return false;
  }
  k->dx[slot] = x;
  return true;
}

static void list_pods(kube_t *k, kube_drain_t *d, int slot)
{
  char path[KUBE_MAX_NODE_NAME + 64];
  snprintf(path, sizeof(path), "/api/v1/pods?fieldSelector=spec.nodeName%%3D%s", d->node);
  kube_xfer_t *x = kube_xfer_new(k, X_PODS, path, d->node);
  if(!x)
    return;
  snprintf(x->task, sizeof(x->task), "%s", d->task);
  d->listing = start(k, x, slot);
}

static void evict(kube_t *k, kube_drain_t *d, kube_pod_t *p, int slot)
{
  char path[KUBE_MAX_NS + KUBE_MAX_NODE_NAME + 64];
  snprintf(path, sizeof(path), "/api/v1/namespaces/%s/pods/%s/eviction", p->ns, p->name);
  kube_xfer_t *x = kube_xfer_new(k, X_EVICT, path, d->node);
  if(!x)
    return;
  snprintf(x->task, sizeof(x->task), "%s", d->task);
  snprintf(x->ns, sizeof(x->ns), "%s", p->ns);
  snprintf(x->pod, sizeof(x->pod), "%s", p->name);
  json_t *body = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "policy/v1", "kind",
                           "Eviction", "metadata", "name", p->name, "namespace", p->ns);
  x->req = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
  curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->req ? x->req : "");
  if(start(k, x, slot)) {
    p->state = POD_INFLIGHT;
    d->evictions++;
  }
}

/* One drain: follow its node, cordon, list, evict what is due. */
static void drain_step(kube_t *k, kube_drain_t *d, int64_t now)
{
  kube_node_t *n = node_of(k, d->task);
  if(!n || strcmp(n->name, d->node)) {
    if(d->node[0] || n)
      drain_reset(d);
    snprintf(d->node, sizeof(d->node), "%s", n ? n->name : "");
  }
  if(!n)
    return;
  kube_want_patch(k, n);
  if(!k->api || !k->connected || !n->unschedulable || !kube_safe_name(n->name))
    return; /* cordoned first, then evicted */
  int slot;
  if(!d->listing && now >= d->next_list_ms && (slot = free_slot(k)) >= 0)
    list_pods(k, d, slot);
  for(size_t i = 0; i < d->pn; i++) {
    kube_pod_t *p = &d->pv[i];
    if(p->state != POD_PENDING || now < p->next_ms)
      continue;
    if((slot = free_slot(k)) < 0)
      return;
    evict(k, d, p, slot);
  }
}

void kube_drain_pump(kube_t *k)
{
  if(!k->drains.n)
    return;
  int64_t now = m3s_now_ms();
  for(size_t i = 0; i < k->drains.cap; i++) {
    kube_drain_t *d = k->drains.slots[i].val;
    if(d)
      drain_step(k, d, now);
  }
}

bool kube_drain_done(kube_t *k, CURL *h, CURLcode res)
{
  int s = 0;
  while(s < KUBE_MAX_DRAIN_XFERS && !(k->dx[s] && k->dx[s]->h == h))
    s++;
  if(s == KUBE_MAX_DRAIN_XFERS)
    return false;
  kube_xfer_t *x = k->dx[s];
  k->dx[s] = NULL;
  long status = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
  if(res == CURLE_WRITE_ERROR && x->why[0])
    res = CURLE_OK; /* ours: x->why says what */
  kube_drain_t *d = m3s_idmap_get(&k->drains, x->task);
  if(d && x->kind == X_PODS)
    d->listing = false;
  /* A drain whose node changed meanwhile takes nothing from the old one. */
  if(d && strcmp(d->node, x->node))
    d = NULL;
  if(x->kind == X_EVICT) {
    evicted(k, d, x, res, status);
  }
  else if(d) {
    if(res == CURLE_OK && status >= 200 && status <= 299 && !x->why[0]) {
      pods_listed(k, d, x);
    }
    else {
      const char *cat;
      char why[768];
      kube_describe(x, res, status, &cat, why, sizeof(why));
      d->list_backoff_ms = d->list_backoff_ms ? d->list_backoff_ms * 2 : KUBE_BACKOFF_MIN_MS;
      if(d->list_backoff_ms > LIST_BACKOFF_MAX_MS)
        d->list_backoff_ms = LIST_BACKOFF_MAX_MS;
      d->next_list_ms = m3s_now_ms() + kube_jitter(k, d->list_backoff_ms);
      char kind[48];
      snprintf(kind, sizeof(kind), "list:%s:%ld", cat, status);
      drain_error(d, kind, why);
    }
  }
  kube_xfer_free(x);
  return true;
}

/* The client is rebuilt or stops: transfers end, their work is due again. */
void kube_drain_drop(kube_t *k)
{
  for(int s = 0; s < KUBE_MAX_DRAIN_XFERS; s++) {
    kube_xfer_free(k->dx[s]);
    k->dx[s] = NULL;
  }
  for(size_t i = 0; i < k->drains.cap; i++) {
    kube_drain_t *d = k->drains.slots[i].val;
    if(!d)
      continue;
    d->listing = false;
    for(size_t j = 0; j < d->pn; j++)
      if(d->pv[j].state == POD_INFLIGHT)
        d->pv[j].state = POD_PENDING;
  }
}

/* ---- status ------------------------------------------------------------------------------ */

static json_t *pods_json(const kube_drain_t *d)
{
  return d->pods < 0 ? json_null() : json_integer(d->pods);
}

void kube_drain_status(kube_t *k, json_t *nodes, json_t *out)
{
  const char *name;
  json_t *o;
  json_object_foreach(nodes, name, o) {
    const char *task = json_string_value(json_object_get(o, "task_id"));
    kube_drain_t *d = task && *task ? m3s_idmap_get(&k->drains, task) : NULL;
    bool here = d && !strcmp(d->node, name);
    json_object_set_new(o, "draining", json_boolean(d != NULL));
    json_object_set_new(o, "pods", here ? pods_json(d) : json_null());
    json_object_set_new(o, "drained", json_boolean(here && d->drained));
    json_object_set_new(o, "drain_error", json_string(d ? d->error : ""));
  }
  json_t *drains = json_object();
  for(size_t i = 0; i < k->drains.cap; i++) {
    kube_drain_t *d = k->drains.slots[i].val;
    if(!d)
      continue;
    json_object_set_new(drains, d->task,
                        json_pack("{s:o, s:o, s:b, s:I, s:I, s:s}", "node",
                                  d->node[0] ? json_string(d->node) : json_null(), "pods",
                                  pods_json(d), "drained", d->drained, "evictions",
                                  (json_int_t)d->evictions, "refused", (json_int_t)d->refused,
                                  "error", d->error));
  }
  json_object_set_new(out, "drains", drains);
  json_object_set_new(out, "evictions",
                      json_pack("{s:I, s:I, s:I}", "ok", (json_int_t)k->evict_ok, "refused",
                                (json_int_t)k->evict_refused, "error",
                                (json_int_t)k->evict_error));
}
