/* The Kubernetes actor: kubeconfig, the node table, readiness to the
 * roles, node records, cordon and scaled-down node deletion, drains, status.
 * See include/m3s/kube.h for the contract and the rules, and kube-int.h for
 * how the actor's files divide the work (the HTTP client is
 * kube_client.c, drains kube_drain.c).
 *
 * Requests to other actors (offers and role status) carry reply slots the
 * actor polls from its wait hook (never blocking: a zero timeout), at most
 * one per kind in the air.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube-int.h"
#include "m3s/log.h"
#include "m3s/offers.h"
#include "m3s/records.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

bool kube_streq(const char *a, const char *b)
{
  return (!a && !b) || (a && b && !strcmp(a, b));
}

void kube_set_str(char **dst, const char *src)
{
  char *n = src ? m3s_xstrdup(src) : NULL;
  free(*dst);
  *dst = n;
}

/* Node names are DNS subdomains; anything else never goes into a URL. */
bool kube_safe_name(const char *s)
{
  size_t n = strlen(s);
  if(!n || n > KUBE_MAX_NODE_NAME)
    return false;
  for(size_t i = 0; i < n; i++) {
    char c = s[i];
    if(!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_'))
      return false;
  }
  return true;
}

/* ---- state, logged once per change --------------------------------------- */

/* The roles' node clocks run only while this is true (m3s/role.h). */
static void tell_live(kube_t *k)
{
  for(int r = M3S_ROLE_SERVER; r <= M3S_ROLE_AGENT; r++)
    if(k->roles[r])
      m3s_send(k->roles[r], m3s_msg_new(M3S_ROLE_KUBE_LIVE, k->connected, NULL, NULL));
}

/* cat "ok": connected; other categories say why not. A category logged
 * before is not logged again, however often the attempt fails. */
void kube_set_state(kube_t *k, bool connected, const char *cat, bool failure, const char *fmt,
                    ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->error, sizeof(k->error), fmt, ap);
  va_end(ap);
  bool was = k->connected;
  k->connected = connected;
  if(was != connected)
    tell_live(k);
  if(connected)
    k->error[0] = '\0';
  if(!strcmp(k->err_cat, cat))
    return;
  snprintf(k->err_cat, sizeof(k->err_cat), "%s", cat);
  if(connected)
    m3s_info("connected to the K3s API at %s", k->api ? k->api : "?");
  else if(failure)
    m3s_warn("K3s API: %s (retrying with backoff; logged again when this changes)", k->error);
  else
    m3s_info("K3s API: %s", k->error);
}

/* ---- roles and the store ---------------------------------------------------- */

static void tell_role(kube_t *k, m3s_role_t role, const char *task, const char *node, int ready)
{
  m3s_actor_t *to = k->roles[role];
  if(!to || !task || strlen(task) >= sizeof(((m3s_role_node_t *)0)->task_id))
    return;
  m3s_role_node_t *p = m3s_xcalloc(1, sizeof(*p));
  snprintf(p->task_id, sizeof(p->task_id), "%s", task);
  snprintf(p->node, sizeof(p->node), "%s", node);
  p->ready = ready;
  m3s_debug("node %s (task %s): %s to the %s role", node, task,
            ready < 0 ? "gone" : ready ? "Ready" : "not Ready", m3s_role_name(role));
  m3s_send(to, m3s_msg_new(M3S_ROLE_NODE, 0, p, free));
}

/* Tells the role what it must know about n (or that its task lost it). */
static void sync_role(kube_t *k, kube_node_t *n, bool force)
{
  if(n->told_task && (!kube_streq(n->told_task, n->task_id) || n->told_role != n->role)) {
    tell_role(k, n->told_role, n->told_task, n->name, -1);
    free(n->told_task);
    n->told_task = NULL;
  }
  if(!n->task_id)
    return;
  if(!force && n->told_task && n->told_ready == n->ready)
    return;
  tell_role(k, n->role, n->task_id, n->name, n->ready);
  kube_set_str(&n->told_task, n->task_id);
  n->told_role = n->role;
  n->told_ready = n->ready;
}

static void store_node(kube_t *k, const char *name, const json_t *obj)
{
  if(!k->store)
    return;
  char *key = m3s_key_kubernetes_node(k->base.cfg->fw, name);
  if(!key)
    return;
  m3s_store_batch_t *b = m3s_store_batch_new(NULL, 0);
  if(obj) {
    char *text = json_dumps(obj, JSON_COMPACT);
    if(text)
      m3s_store_batch_set(b, key, text);
    free(text);
  }
  else {
    m3s_store_batch_del(b, key);
  }
  free(key);
  if(b->n)
    m3s_send(k->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
  else
    m3s_store_batch_free(b);
}

/* A node's record: written now, or, while the store is backlogged, once it
 * drains (the latest object only: the mirror keeps no history). */
static void save_node(kube_t *k, kube_node_t *n)
{
  n->unsaved = k->backlogged;
  if(!n->unsaved)
    store_node(k, n->name, n->obj);
}

static void save_unsaved(kube_t *k, kube_node_t *n)
{
  if(n->unsaved)
    save_node(k, n);
}

/* ---- mutations --------------------------------------------------------------- */

static void mq_push(kube_t *k, kube_mutation_t m)
{
  if(k->mq_n == k->mq_cap) {
    size_t cap = k->mq_cap ? k->mq_cap * 2 : 16;
    kube_mutation_t *q = m3s_xmalloc(cap * sizeof(*q));
    for(size_t i = 0; i < k->mq_n; i++)
      q[i] = k->mq[(k->mq_head + i) % k->mq_cap];
    free(k->mq);
    k->mq = q;
    k->mq_cap = cap;
    k->mq_head = 0;
  }
  k->mq[(k->mq_head + k->mq_n) % k->mq_cap] = m;
  k->mq_n++;
}

/* What spec.unschedulable should be: 1, 0, or -1 for no opinion. An agent
 * node follows K3SDisableScheduling OR its task draining; a server node is
 * cordoned only while draining, and uncordoned once after it. A cordoned
 * node is not uncordoned before the actor has run KUBE_UNCORDON_SETTLE_MS:
 * after a restart, the drain set is empty until its caller asks again, and
 * a node being drained must not take pods meanwhile. */
static int want_unschedulable(kube_t *k, const kube_node_t *n)
{
  int want;
  if(kube_node_draining(k, n))
    return 1;
  if(n->role != M3S_ROLE_AGENT)
    want = n->drain_cordoned ? 0 : -1;
  else
    want = k->disable_scheduling;
  if(want == 0 && n->unschedulable && !k->settled)
    return -1;
  return want;
}

void kube_want_patch(kube_t *k, kube_node_t *n)
{
  int want = want_unschedulable(k, n);
  if(n->role != M3S_ROLE_AGENT && n->drain_cordoned && want == 0 && !n->unschedulable)
    n->drain_cordoned = false; /* already uncordoned */
  if(n->patching || n->deleting || want < 0 || n->unschedulable == (want == 1) ||
     !kube_safe_name(n->name) || !k->api)
    return;
  n->patching = true;
  if(n->role != M3S_ROLE_AGENT && want == 1)
    n->drain_cordoned = true;
  kube_mutation_t m = { .kind = X_PATCH, .value = want == 1 };
  snprintf(m.node, sizeof(m.node), "%s", n->name);
  mq_push(k, m);
}

static void want_delete(kube_t *k, kube_node_t *n)
{
  if(n->deleting || !kube_safe_name(n->name) || !k->api)
    return;
  n->deleting = true;
  kube_mutation_t m = { .kind = X_DELETE };
  snprintf(m.node, sizeof(m.node), "%s", n->name);
  mq_push(k, m);
  m3s_info("node %s: its task %s is no longer an agent task and the node is not Ready: "
           "deleting it from Kubernetes", n->name, n->task_id);
}

/* ---- the node table ------------------------------------------------------------ */

static void node_free(kube_node_t *n)
{
  if(!n)
    return;
  json_decref(n->obj);
  free(n->task_id);
  free(n->told_task);
  free(n->name);
  free(n);
}

/* A node's object arrived (list, watch, PATCH answer): obj is taken. */
void kube_node_upsert(kube_t *k, json_t *obj)
{
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  if(!name || !*name || strlen(name) > KUBE_MAX_NODE_NAME) {
    json_decref(obj);
    return;
  }
  kube_node_t *n = m3s_idmap_get(&k->nodes, name);
  if(!n) {
    n = m3s_xcalloc(1, sizeof(*n));
    n->name = m3s_xstrdup(name);
    n->ready = -1;
    m3s_idmap_put(&k->nodes, n->name, n);
    k->version++;
  }
  json_decref(n->obj);
  n->obj = obj;
  n->seen = true;
  char *task = m3s_kube_node_task_id(obj);
  int ready = m3s_kube_node_ready(obj);
  m3s_role_t role = m3s_kube_node_is_server(obj) ? M3S_ROLE_SERVER : M3S_ROLE_AGENT;
  if(!kube_streq(task, n->task_id) || ready != n->ready || role != n->role) {
    k->version++;
    if(ready != n->ready)
      m3s_info("node %s (%s%s%s) is %s", n->name, m3s_role_name(role), task ? ", task " : "",
               task ? task : "", ready ? "Ready" : "not Ready");
  }
  free(n->task_id);
  n->task_id = task;
  n->ready = ready;
  n->role = role;
  n->unschedulable = json_is_true(json_object_get(json_object_get(obj, "spec"), "unschedulable"));
  if(ready)
    n->strikes = 0;
  save_node(k, n);
  sync_role(k, n, false);
  kube_want_patch(k, n);
}

void kube_node_remove(kube_t *k, const char *name)
{
  kube_node_t *n = m3s_idmap_del(&k->nodes, name);
  if(!n)
    return;
  k->version++;
  m3s_info("node %s is gone from Kubernetes", n->name);
  free(n->task_id);
  n->task_id = NULL;
  sync_role(k, n, false); /* tells the role its task's node is gone */
  store_node(k, n->name, NULL);
  node_free(n);
}

void kube_nodes_each(kube_t *k, void (*fn)(kube_t *, kube_node_t *))
{
  for(size_t i = 0; i < k->nodes.cap; i++) {
    kube_node_t *n = k->nodes.slots[i].val;
    if(n)
      fn(k, n);
  }
}



static void on_kubeconfig(kube_t *k, m3s_msg_t *msg)
{
  json_t *records = msg->payload;
  if(msg->flags & M3S_STORE_MORE) {
    m3s_send(k->store, m3s_msg_new(M3S_STORE_NEXT, TAG_KUBECONFIG, NULL, NULL));
  }
  else {
    k->load_out = false;
  }
  char *key = m3s_key_kubernetes_config(k->base.cfg->fw);
  const char *text = json_string_value(json_object_get(records, key));
  free(key);
  /* A deleted key keeps the last kubeconfig: the cluster it names may
   * still be there (m3s-controller writes it back). */
  if(!text || kube_streq(text, k->kc_text))
    return;
  bool first = !k->kc_text;
  kube_set_str(&k->kc_text, text);
  m3s_kubeconfig_free(&k->kc);
  k->kc_error[0] = '\0';
  k->kc_ok = m3s_kubeconfig_parse(text, strlen(text), &k->kc, k->kc_error,
                                  sizeof(k->kc_error)) == 0;
  m3s_info("%s kubeconfig from Redis%s%s", first ? "read the" : "the kubeconfig changed: read the new",
           k->kc_ok ? "" : ": ", k->kc_ok ? "" : k->kc_error);
  kube_rebuild(k);
}

/* ---- requests to other actors ------------------------------------------------------ */

static void ask(kube_t *k, kube_ask_t kind)
{
  m3s_actor_t *to = kind == ASK_OFFERS ? k->offers
                    : kind == ASK_SERVER ? k->roles[M3S_ROLE_SERVER] : k->roles[M3S_ROLE_AGENT];
  uint32_t type = kind == ASK_OFFERS ? M3S_OFFERS_STATUS : M3S_ROLE_STATUS;
  if(!to)
    return;
  if(k->asks[kind]) {
    if(m3s_now_ms() - k->ask_ms[kind] < KUBE_ASK_TIMEOUT_MS)
      return;
    m3s_reply_unref(k->asks[kind]); /* abandoned: a late answer is freed with the slot */
    k->asks[kind] = NULL;
  }
  m3s_msg_t *m = m3s_msg_new(type, 0, NULL, NULL);
  k->asks[kind] = m3s_reply_new();
  k->ask_ms[kind] = m3s_now_ms();
  m->reply = m3s_reply_ref(k->asks[kind]);
  m3s_send(to, m);
}

static void on_offers_status(kube_t *k, const json_t *st)
{
  const char *host = json_string_value(json_object_get(st, "server_hostname"));
  json_t *port = json_object_get(st, "server_port");
  json_t *ds = json_object_get(st, "disable_scheduling");
  if(host && json_is_integer(port)) {
    int p = (int)json_integer_value(port);
    if(!kube_streq(host, k->srv_host) || p != k->srv_port) {
      if(host[0])
        m3s_info("the K3s server runs on %s, API host port %d", host, p);
      kube_set_str(&k->srv_host, host);
      k->srv_port = p;
      kube_rebuild(k);
    }
  }
  if(json_is_boolean(ds)) {
    int v = json_is_true(ds);
    if(v != k->disable_scheduling) {
      k->disable_scheduling = v;
      m3s_info("agent nodes are to be %s", v ? "cordoned" : "schedulable");
    }
    kube_nodes_each(k, kube_want_patch);
  }
}

/* A role's status: re-tell it what it does not know (it may not have
 * known the task when we first told it), and find scaled-down agents. */
static void on_role_status(kube_t *k, m3s_role_t role, const json_t *st)
{
  const json_t *tasks = json_object_get(st, "tasks");
  if(!json_is_object(tasks))
    return;
  for(size_t i = 0; i < k->nodes.cap; i++) {
    kube_node_t *n = k->nodes.slots[i].val;
    if(!n || !n->task_id || n->role != role)
      continue;
    const json_t *t = json_object_get(tasks, n->task_id);
    if(t) {
      n->strikes = 0;
      const char *tnode = json_string_value(json_object_get(t, "node"));
      const json_t *tr = json_object_get(t, "node_ready");
      if(!tnode || strcmp(tnode, n->name) || !json_is_boolean(tr) ||
         json_is_true(tr) != (n->ready == 1))
        sync_role(k, n, true);
      continue;
    }
    if(role != M3S_ROLE_AGENT || n->ready || n->deleting)
      continue;
    if(++n->strikes >= KUBE_DELETE_STRIKES)
      want_delete(k, n);
  }
}

static void poll_asks(kube_t *k)
{
  for(int i = 0; i < NASK; i++) {
    if(!k->asks[i])
      continue;
    m3s_msg_t *ans = NULL;
    int rc = m3s_reply_wait(k->asks[i], 0, &ans);
    if(rc == -ETIMEDOUT)
      continue;
    m3s_reply_unref(k->asks[i]);
    k->asks[i] = NULL;
    json_t *st = ans ? m3s_msg_take(ans) : NULL;
    m3s_msg_free(ans);
    if(json_is_object(st)) {
      if(i == ASK_OFFERS)
        on_offers_status(k, st);
      else
        on_role_status(k, i == ASK_SERVER ? M3S_ROLE_SERVER : M3S_ROLE_AGENT, st);
    }
    json_decref(st);
  }
}

/* ---- status ------------------------------------------------------------------------ */

/* Why no K3s server node is Ready ("" when one is): what the agents wait
 * for, in the order a K3s server comes up. */
static void server_wait(const kube_t *k, char *buf, size_t len)
{
  const char *not_ready = NULL;
  buf[0] = '\0';
  if(!k->kc_text) {
    snprintf(buf, len, "no kubeconfig yet (the K3s server publishes it to Redis as "
             "%s:kubernetes_config once its API is up)", k->base.cfg->fw);
    return;
  }
  if(!k->kc_ok) {
    snprintf(buf, len, "the kubeconfig in Redis is unusable: %s", k->kc_error);
    return;
  }
  if(!k->connected) {
    snprintf(buf, len, "the K3s API is unreachable: %s", k->error);
    return;
  }
  for(size_t i = 0; i < k->nodes.cap; i++) {
    const kube_node_t *n = k->nodes.slots[i].val;
    if(!n || n->role != M3S_ROLE_SERVER || !n->task_id)
      continue;
    if(n->ready == 1)
      return;
    not_ready = n->name;
  }
  if(not_ready)
    snprintf(buf, len, "the K3s server node %s is NotReady", not_ready);
  else
    snprintf(buf, len, "no Kubernetes node of a K3s server task yet");
}

/* Logs what the agents wait for when it changes. */
static void log_wait(kube_t *k)
{
  char w[sizeof(k->wait)];
  server_wait(k, w, sizeof(w));
  if(!strcmp(w, k->wait))
    return;
  if(w[0])
    m3s_info("no Ready K3s server node, so no agent is started: %s", w);
  else
    m3s_info("a K3s server node is Ready: agents may start");
  snprintf(k->wait, sizeof(k->wait), "%s", w);
}

static json_t *status_json(kube_t *k, bool brief)
{
  json_t *nodes = json_object();
  for(size_t i = 0; i < k->nodes.cap; i++) {
    kube_node_t *n = k->nodes.slots[i].val;
    if(!n)
      continue;
    json_t *o = json_pack("{s:b, s:s, s:s, s:b}", "ready", n->ready == 1, "task_id",
                          n->task_id ? n->task_id : "", "role", m3s_role_name(n->role),
                          "unschedulable", n->unschedulable);
    if(!brief) {
      json_t *info = json_object_get(json_object_get(n->obj, "status"), "nodeInfo");
      json_object_set_new(o, "nodeInfo", json_is_object(info) ? json_deep_copy(info)
                                                               : json_object());
    }
    json_object_set_new(nodes, n->name, o);
  }
  char wait[sizeof(k->wait)];
  server_wait(k, wait, sizeof(wait));
  json_t *out = json_pack("{s:b, s:s, s:s, s:b, s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                   "s:o}",
                   "connected", k->connected, "api", k->api ? k->api : "", "error",
                   k->connected ? "" : k->error, "kubeconfig", k->kc_text != NULL,
                   "server_wait", wait, "version",
                   (json_int_t)k->version, "disable_scheduling",
                   k->disable_scheduling < 0 ? json_null() : json_boolean(k->disable_scheduling),
                   "lists", (json_int_t)k->lists, "watches", (json_int_t)k->watches,
                   "relists_gone", (json_int_t)k->relists_gone, "errors", (json_int_t)k->errors,
                   "patches", (json_int_t)k->patches, "deletes", (json_int_t)k->deletes,
                   "events", (json_int_t)k->events, "nodes", nodes);
  kube_drain_status(k, nodes, out);
  return out;
}

static char *config_text(const kube_t *k)
{
  if(!k->kc_text)
    return NULL;
  /* Without a known server address the original would write ":<port>";
   * the text as published is more useful then. */
  if(!k->srv_host || !k->srv_host[0])
    return m3s_xstrdup(k->kc_text);
  return m3s_kubeconfig_rewrite(k->kc_text, k->srv_host, k->srv_port);
}

/* ---- actor hooks ---------------------------------------------------------------------- */

static void load_kubeconfig(kube_t *k)
{
  if(k->store && !k->load_out) {
    k->load_out = true;
    m3s_send(k->store, m3s_msg_new(M3S_STORE_LOAD, TAG_KUBECONFIG,
                                   m3s_store_load_new("kubernetes_config", &k->base,
                                                      TAG_KUBECONFIG),
                                   m3s_store_load_free));
  }
}

/* Between heartbeats, while agents wait for a Ready server node: what the
 * next step needs (the kubeconfig, then the server's address and task). */
static void lookout(kube_t *k)
{
  char w[sizeof(k->wait)];
  server_wait(k, w, sizeof(w));
  if(!w[0])
    return;
  if(!k->kc_ok) {
    load_kubeconfig(k);
    return;
  }
  ask(k, ASK_OFFERS);
  ask(k, ASK_SERVER);
}

static void heartbeat(kube_t *k)
{
  log_wait(k);
  load_kubeconfig(k);
  /* The roles' task lists only matter once there is a K3s API to compare
   * them with: a role's full status is large with thousands of tasks. */
  for(int i = 0; i < NASK; i++)
    if((kube_ask_t)i == ASK_OFFERS || k->kc_ok)
      ask(k, (kube_ask_t)i);
}

static void kube_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  kube_t *k = (kube_t *)self;
  switch(msg->type) {
  case T_HEARTBEAT:
    heartbeat(k);
    break;
  case T_LOOKOUT:
    lookout(k);
    break;
  case T_RETRY:
    k->retry_timer = 0;
    break; /* kube_pump() below starts what is due */
  case T_DRAIN:
    break; /* likewise */
  case T_SETTLED:
    k->settled = true;
    kube_nodes_each(k, kube_want_patch);
    break;
  case M3S_STORE_LOADED:
    if(msg->arg == TAG_KUBECONFIG) {
      on_kubeconfig(k, msg);
      if(k->kc_ok)
        lookout(k); /* the server's address next, without waiting a tick */
    }
    break;
  case M3S_STORE_WRITTEN:
    break;
  case M3S_STORE_PRESSURE:
    k->backlogged = msg->arg != 0;
    if(!k->backlogged)
      kube_nodes_each(k, save_unsaved);
    break;
  case M3S_KUBE_STATUS:
    m3s_msg_reply(msg, m3s_msg_new(M3S_KUBE_STATUS, 0,
                                   status_json(k, msg->arg == M3S_KUBE_BRIEF), m3s_json_drop));
    break;
  case M3S_KUBE_CONFIG:
    m3s_msg_reply(msg, m3s_msg_new(M3S_KUBE_CONFIG, 0, config_text(k), free));
    break;
  case M3S_KUBE_DRAIN:
  case M3S_KUBE_RELEASE: {
    char *task = m3s_msg_take(msg);
    if(!task || !*task || strlen(task) > KUBE_MAX_TASK_ID)
      m3s_warn("%s without a usable task id: ignored",
               msg->type == M3S_KUBE_DRAIN ? "drain" : "release");
    else if(msg->type == M3S_KUBE_DRAIN)
      kube_drain_add(k, task);
    else
      kube_drain_release(k, task);
    free(task);
    break;
  }
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
  kube_pump(k);
}

static void kube_wait(m3s_actor_t *self, int wake_fd, int timeout_ms)
{
  kube_t *k = (kube_t *)self;
  struct curl_waitfd extra = { .fd = wake_fd, .events = CURL_WAIT_POLLIN };
  long curl_ms = -1;
  int running;
  bool asking = false;

  for(int i = 0; i < NASK; i++)
    asking = asking || k->asks[i] != NULL;
  curl_multi_timeout(k->multi, &curl_ms);
  if(curl_ms >= 0 && (timeout_ms < 0 || curl_ms < timeout_ms))
    timeout_ms = (int)curl_ms;
  if(asking && (timeout_ms < 0 || timeout_ms > KUBE_ASK_POLL_MS))
    timeout_ms = KUBE_ASK_POLL_MS;
  if(timeout_ms < 0)
    timeout_ms = 1000;
  curl_multi_poll(k->multi, &extra, 1, timeout_ms, NULL);
  curl_multi_perform(k->multi, &running);
  kube_process_done(k);
  poll_asks(k);
  kube_pump(k);
}

static int kube_start(m3s_actor_t *self)
{
  kube_t *k = (kube_t *)self;
  k->multi = curl_multi_init();
  if(!k->multi)
    return -ENOMEM;
  k->rng = (unsigned)m3s_now_ms() ^ (unsigned)(uintptr_t)k;
  k->backoff_ms = KUBE_BACKOFF_MIN_MS;
  k->disable_scheduling = -1;
  k->store = m3s_system_find(self->sys, "store");
  k->offers = m3s_system_find(self->sys, "offers");
  k->roles[M3S_ROLE_SERVER] = m3s_system_find(self->sys, "server");
  k->roles[M3S_ROLE_AGENT] = m3s_system_find(self->sys, "agent");
  if(k->store)
    m3s_store_watch(k->store, self);
  kube_set_str(&k->srv_host, "");
  m3s_timer_start(self, T_HEARTBEAT, 0, self->cfg->heartbeat_interval_ms);
  m3s_timer_start(self, T_SETTLED, KUBE_UNCORDON_SETTLE_MS, 0);
  m3s_timer_start(self, T_LOOKOUT, KUBE_LOOKOUT_MS, KUBE_LOOKOUT_MS);
  kube_rebuild(k); /* states what it waits for */
  return 0;
}

static void kube_stop(m3s_actor_t *self)
{
  kube_t *k = (kube_t *)self;
  kube_drop_transfers(k);
  if(k->multi)
    curl_multi_cleanup(k->multi);
  k->multi = NULL;
  for(int i = 0; i < NASK; i++)
    m3s_reply_unref(k->asks[i]);
  for(size_t i = 0; i < k->nodes.cap; i++)
    node_free(k->nodes.slots[i].val);
  m3s_idmap_free(&k->nodes);
  kube_drain_free(k);
  free(k->mq);
  m3s_kubeconfig_free(&k->kc);
  free(k->kc_text);
  free(k->srv_host);
  free(k->api);
  free(k->resource_version);
}

const m3s_actor_ops_t m3s_kube_ops = {
  .name = "kube",
  .size = sizeof(kube_t),
  .start = kube_start,
  .handle = kube_handle,
  .wait = kube_wait,
  .stop = kube_stop,
};