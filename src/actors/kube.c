/* The Kubernetes actor: kubeconfig, node list and watch, node records,
 * readiness to the roles, cordon and scaled-down node deletion. See
 * include/m3s/kube.h for the contract and the rules.
 *
 * DESIGN. Like the Mesos actor, it owns one libcurl multi handle and waits
 * in curl_multi_poll with its wake eventfd as an extra fd, so mail, the
 * API's sockets and timers all wake the same thread. Transfers:
 *  - the sync transfer, one at a time: a LIST, or a WATCH whose body is a
 *    stream of newline-delimited watch events decoded as they arrive;
 *  - mutations (PATCH for cordon, DELETE for scaled-down nodes), from a
 *    queue, at most MAX_MUTATIONS at once.
 * curl callbacks never add or remove handles: they decode, update the node
 * table, send messages (which never touches curl) and queue mutations; a
 * callback that must end its transfer records why and returns 0, and the
 * rest happens once curl_multi_perform has returned (process_done, pump).
 *
 * The client (multi handle, its pooled connections, the URL, the
 * certificates) is rebuilt from scratch whenever the kubeconfig or the K3s
 * server's address changes: no connection made with old credentials or to
 * an old address is ever reused.
 *
 * Requests to other actors (offers and role status) carry reply slots the
 * actor polls from its wait hook (never blocking: a zero timeout), at most
 * one per kind in the air.
 */
#include "m3s/kube.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <yaml.h>

#include "m3s/idmap.h"
#include "m3s/log.h"
#include "m3s/offers.h"
#include "m3s/records.h"
#include "m3s/reply.h"
#include "m3s/role.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

enum {
  T_HEARTBEAT = M3S_MSG_USER + 1, /* timer: poll kubeconfig, address, roles */
  T_RETRY,                        /* timer: next attempt after a failure */
  TAG_KUBECONFIG = 1,             /* tag of our M3S_STORE_LOAD */
};

#define KUBE_BACKOFF_MIN_MS 500
#define KUBE_BACKOFF_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 10000L
#define LIST_TIMEOUT_MS 60000L
#define MUTATION_TIMEOUT_MS 20000L
#define WATCH_TIMEOUT_S 300        /* the API server ends the watch; we resume */
#define WATCH_MIN_LIFE_MS 1000     /* a shorter watch without events is a failure */
#define MAX_LIST_BODY (64u << 20)
#define MAX_EVENT (16u << 20)
#define MAX_MUTATION_BODY (4u << 20)
#define ERR_KEEP 512
#define MAX_MUTATIONS 4
#define ASK_POLL_MS 20
#define ASK_TIMEOUT_MS 10000
#define DELETE_STRIKES 2
#define MAX_NODE_NAME 253

/* ---- helpers shared with the tests (pure) -------------------------------- */

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Standard base64 (line breaks and spaces ignored, padding optional).
 * Returns a new NUL-terminated buffer and its length, or NULL. */
static char *b64_decode(const char *in, size_t *outlen)
{
  size_t n = strlen(in);
  char *out = m3s_xmalloc(n / 4 * 3 + 4);
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  bool pad = false;
  for(size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    int v;
    if(c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if(c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if(c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if(c == '+' || c == '-')
      v = 62;
    else if(c == '/' || c == '_')
      v = 63;
    else if(c == '=') {
      pad = true;
      continue;
    }
    else if(c == '\n' || c == '\r' || c == ' ' || c == '\t')
      continue;
    else
      goto bad;
    if(pad)
      goto bad; /* data after padding */
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  if(bits >= 6)
    goto bad; /* a lone sextet cannot be */
  out[o] = '\0';
  *outlen = o;
  return out;
bad:
  free(out);
  return NULL;
}

/* libyaml document navigation (nodes are borrowed from the document). */
static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
  if(!map || map->type != YAML_MAPPING_NODE)
    return NULL;
  for(yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(d, p->key);
    if(k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
       !memcmp(k->data.scalar.value, key, k->data.scalar.length))
      return yaml_document_get_node(d, p->value);
  }
  return NULL;
}

/* The scalar's text (NUL-terminated by libyaml) or NULL. */
static const char *yscalar(yaml_node_t *n)
{
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The element of a named list (clusters, users, contexts) called name, or
 * the first element when name is NULL; returns its `inner` mapping. */
static yaml_node_t *ynamed(yaml_document_t *d, yaml_node_t *root, const char *list,
                          const char *name, const char *inner)
{
  yaml_node_t *seq = ymap_get(d, root, list);
  if(!seq || seq->type != YAML_SEQUENCE_NODE)
    return NULL;
  for(yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
      it++) {
    yaml_node_t *el = yaml_document_get_node(d, *it);
    const char *n = yscalar(ymap_get(d, el, "name"));
    if(!name || (n && !strcmp(n, name)))
      return ymap_get(d, el, inner);
  }
  return NULL;
}

void m3s_kubeconfig_free(m3s_kubeconfig_t *k)
{
  if(!k)
    return;
  if(k->key_pem) {
    volatile char *p = k->key_pem;
    for(size_t i = 0; i < k->key_len; i++)
      p[i] = 0;
  }
  free(k->server);
  free(k->ca_pem);
  free(k->cert_pem);
  free(k->key_pem);
  free(k->token);
  memset(k, 0, sizeof(*k));
}

static int decode_field(yaml_node_t *n, const char *what, char **out, size_t *len, char *err,
                        size_t errlen)
{
  const char *v = yscalar(n);
  if(!v)
    return 0;
  *out = b64_decode(v, len);
  if(!*out) {
    errf(err, errlen, "kubeconfig: %s is not base64", what);
    return -EPROTO;
  }
  return 0;
}

int m3s_kubeconfig_parse(const char *text, size_t len, m3s_kubeconfig_t *out, char *err,
                         size_t errlen)
{
  yaml_parser_t parser;
  yaml_document_t doc;
  bool have_doc = false;
  int rc = -EPROTO;

  memset(out, 0, sizeof(*out));
  if(!yaml_parser_initialize(&parser)) {
    errf(err, errlen, "kubeconfig: cannot initialise the YAML parser");
    return -ENOMEM;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if(!yaml_parser_load(&parser, &doc)) {
    errf(err, errlen, "kubeconfig: not YAML: %s at line %zu",
         parser.problem ? parser.problem : "error", parser.problem_mark.line + 1);
    goto out;
  }
  have_doc = true;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if(!root || root->type != YAML_MAPPING_NODE) {
    errf(err, errlen, "kubeconfig: not a YAML mapping");
    goto out;
  }
  const char *ctx_name = yscalar(ymap_get(&doc, root, "current-context"));
  yaml_node_t *ctx = ctx_name && *ctx_name ? ynamed(&doc, root, "contexts", ctx_name, "context")
                                           : NULL;
  const char *cl_name = yscalar(ymap_get(&doc, ctx, "cluster"));
  const char *us_name = yscalar(ymap_get(&doc, ctx, "user"));
  yaml_node_t *cluster = ynamed(&doc, root, "clusters", cl_name, "cluster");
  yaml_node_t *user = ynamed(&doc, root, "users", us_name, "user");
  if(!cluster) {
    errf(err, errlen, "kubeconfig: no cluster%s%s", cl_name ? " named " : "",
         cl_name ? cl_name : "");
    goto out;
  }
  const char *server = yscalar(ymap_get(&doc, cluster, "server"));
  if(!server || !*server) {
    errf(err, errlen, "kubeconfig: the cluster has no server");
    goto out;
  }
  out->server = m3s_xstrdup(server);
  if(decode_field(ymap_get(&doc, cluster, "certificate-authority-data"),
                  "certificate-authority-data", &out->ca_pem, &out->ca_len, err, errlen) ||
     decode_field(ymap_get(&doc, user, "client-certificate-data"), "client-certificate-data",
                  &out->cert_pem, &out->cert_len, err, errlen) ||
     decode_field(ymap_get(&doc, user, "client-key-data"), "client-key-data", &out->key_pem,
                  &out->key_len, err, errlen))
    goto out;
  const char *token = yscalar(ymap_get(&doc, user, "token"));
  if(token && *token)
    out->token = m3s_xstrdup(token);
  if(!out->token && (!out->cert_pem || !out->key_pem)) {
    errf(err, errlen, "kubeconfig: the user has neither a client certificate with its key "
         "nor a token");
    goto out;
  }
  rc = 0;
out:
  if(have_doc)
    yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  if(rc)
    m3s_kubeconfig_free(out);
  return rc;
}

char *m3s_kubeconfig_rewrite(const char *text, const char *host, int port)
{
  static const char from[] = "127.0.0.1:6443";
  char to[300];
  snprintf(to, sizeof(to), "%s:%d", host ? host : "", port);
  size_t fl = sizeof(from) - 1, tl = strlen(to), n = 0;
  for(const char *p = text; (p = strstr(p, from)); p += fl)
    n++;
  size_t len = strlen(text);
  char *out = m3s_xmalloc(len + n * (tl > fl ? tl - fl : 0) + 1);
  char *o = out;
  for(const char *p = text;;) {
    const char *hit = strstr(p, from);
    if(!hit) {
      memcpy(o, p, strlen(p) + 1);
      break;
    }
    memcpy(o, p, (size_t)(hit - p));
    o += hit - p;
    memcpy(o, to, tl);
    o += tl;
    p = hit + fl;
  }
  return out;
}

char *m3s_kube_api_url(const char *server, const char *host, int port)
{
  const char *scheme;
  if(!strncmp(server, "https://", 8))
    scheme = "https://";
  else if(!strncmp(server, "http://", 7))
    scheme = "http://";
  else
    return NULL;
  const char *rest = server + strlen(scheme);
  const char *path = rest + strcspn(rest, "/?#");
  size_t plen = strlen(path);
  while(plen && path[plen - 1] == '/')
    plen--;
  bool v6 = strchr(host, ':') != NULL && host[0] != '[';
  size_t need = strlen(scheme) + strlen(host) + plen + 16;
  char *url = m3s_xmalloc(need);
  snprintf(url, need, "%s%s%s%s:%d%.*s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port,
           (int)plen, path);
  return url;
}

char *m3s_kube_node_task_id(const json_t *node)
{
  const json_t *meta = json_object_get(node, "metadata");
  const char *label = json_string_value(
    json_object_get(json_object_get(meta, "labels"), M3S_KUBE_TASK_LABEL));
  if(label && *label)
    return m3s_xstrdup(label);
  const char *args = json_string_value(
    json_object_get(json_object_get(meta, "annotations"), M3S_KUBE_NODE_ARGS));
  if(!args)
    return NULL;
  json_t *arr = json_loads(args, 0, NULL);
  char *id = NULL;
  size_t i;
  json_t *el;
  json_array_foreach(arr, i, el) {
    const char *s = json_string_value(el);
    const char *hit = s ? strstr(s, "taskid=") : NULL;
    if(!hit)
      continue;
    hit += strlen("taskid=");
    size_t n = strcspn(hit, ",= \t");
    if(n && (hit[n] == '\0' || hit[n] == ',' || hit[n] == ' ' || hit[n] == '\t')) {
      id = m3s_xmalloc(n + 1);
      memcpy(id, hit, n);
      id[n] = '\0';
    }
    break; /* the first element naming a task id decides */
  }
  json_decref(arr);
  return id;
}

int m3s_kube_node_ready(const json_t *node)
{
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(json_object_get(node, "status"), "conditions"), i, c) {
    const char *type = json_string_value(json_object_get(c, "type"));
    if(type && !strcmp(type, "Ready")) {
      const char *st = json_string_value(json_object_get(c, "status"));
      return st && !strcmp(st, "True");
    }
  }
  return 0;
}

int m3s_kube_node_is_server(const json_t *node)
{
  const json_t *meta = json_object_get(node, "metadata");
  const char *name = json_string_value(json_object_get(meta, "name"));
  const json_t *labels = json_object_get(meta, "labels");
  return (name && strstr(name, "server")) ||
         json_object_get(labels, "node-role.kubernetes.io/control-plane") ||
         json_object_get(labels, "node-role.kubernetes.io/master");
}

/* ---- the actor ------------------------------------------------------------ */

typedef enum xkind { X_LIST, X_WATCH, X_PATCH, X_DELETE } xkind_t;
static const char *const xnames[] = { "list", "watch", "patch", "delete" };

typedef struct kube kube_t;

typedef struct xfer {
  kube_t *k;
  xkind_t kind;
  CURL *h;
  struct curl_slist *hdrs;
  char *req;                /* request body (PATCH) */
  char node[MAX_NODE_NAME + 1];
  char *buf;                /* response body, or the watch's line buffer */
  size_t len, cap, limit;
  char errbody[ERR_KEEP];   /* start of a non-2xx body */
  size_t errlen;
  char errbuf[CURL_ERROR_SIZE];
  char why[256];            /* set by a callback that aborted the transfer */
  bool gone;                /* the watch saw an ERROR event with code 410 */
  long status;
  int64_t started_ms;
  uint64_t events;
} xfer_t;

typedef struct mutation {
  xkind_t kind;             /* X_PATCH or X_DELETE */
  char node[MAX_NODE_NAME + 1];
  bool value;               /* PATCH: spec.unschedulable */
} mutation_t;

typedef struct node {
  char *name;               /* the key in the map */
  json_t *obj;              /* owned */
  char *task_id;            /* NULL: none */
  m3s_role_t role;          /* M3S_ROLE_SERVER or M3S_ROLE_AGENT */
  int ready;
  bool unschedulable;
  bool seen;                /* during a list */
  bool patching, deleting;  /* a mutation is queued or in flight */
  int strikes;              /* scaled-down observations in a row */
  bool unsaved;             /* its record waits for the store to drain */
  /* what the role was last told */
  char *told_task;
  m3s_role_t told_role;
  int told_ready;
} node_t;

typedef enum ask_kind { ASK_OFFERS, ASK_SERVER, ASK_AGENT, NASK } ask_kind_t;

struct kube {
  m3s_actor_t base;
  m3s_actor_t *store, *offers, *roles[4];
  CURLM *multi;
  unsigned rng;

  /* kubeconfig and address */
  bool load_out;            /* a kubeconfig load is in the air */
  char *kc_text;            /* as in Redis; NULL: none seen yet */
  m3s_kubeconfig_t kc;
  bool kc_ok;
  char kc_error[256];
  char *srv_host;           /* "" unknown */
  int srv_port;
  int disable_scheduling;   /* -1 unknown */
  char *api;                /* base URL of the API, NULL: no client */
  char *resource_version;   /* last seen; NULL: list first */

  /* transfers */
  xfer_t *sync;
  xfer_t *mut[MAX_MUTATIONS];
  mutation_t *mq;
  size_t mq_head, mq_n, mq_cap;
  uint64_t retry_timer;
  int64_t backoff_ms;

  /* state */
  bool connected;
  char error[512];
  char err_cat[32];         /* category of the state last logged */
  m3s_idmap_t nodes;
  uint64_t version;
  char wait[600];           /* why no K3s server node is Ready, as last logged */
  bool backlogged;          /* the store's M3S_STORE_PRESSURE */

  /* requests to other actors */
  m3s_reply_t *asks[NASK];
  int64_t ask_ms[NASK];

  /* counters */
  uint64_t lists, watches, relists_gone, errors, patches, deletes, events;
};

static void start_sync(kube_t *k);
static void pump(kube_t *k);

static bool streq(const char *a, const char *b)
{
  return (!a && !b) || (a && b && !strcmp(a, b));
}

static void set_str(char **dst, const char *src)
{
  char *n = src ? m3s_xstrdup(src) : NULL;
  free(*dst);
  *dst = n;
}

/* Node names are DNS subdomains; anything else never goes into a URL. */
static bool safe_name(const char *s)
{
  size_t n = strlen(s);
  if(!n || n > MAX_NODE_NAME)
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

/* cat "ok": connected; other categories say why not. A category logged
 * before is not logged again, however often the attempt fails. */
static void set_state(kube_t *k, bool connected, const char *cat, bool failure, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
static void set_state(kube_t *k, bool connected, const char *cat, bool failure, const char *fmt,
                      ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(k->error, sizeof(k->error), fmt, ap);
  va_end(ap);
  k->connected = connected;
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
static void sync_role(kube_t *k, node_t *n, bool force)
{
  if(n->told_task && (!streq(n->told_task, n->task_id) || n->told_role != n->role)) {
    tell_role(k, n->told_role, n->told_task, n->name, -1);
    free(n->told_task);
    n->told_task = NULL;
  }
  if(!n->task_id)
    return;
  if(!force && n->told_task && n->told_ready == n->ready)
    return;
  tell_role(k, n->role, n->task_id, n->name, n->ready);
  set_str(&n->told_task, n->task_id);
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
static void save_node(kube_t *k, node_t *n)
{
  n->unsaved = k->backlogged;
  if(!n->unsaved)
    store_node(k, n->name, n->obj);
}

static void save_unsaved(kube_t *k, node_t *n)
{
  if(n->unsaved)
    save_node(k, n);
}

/* ---- mutations --------------------------------------------------------------- */

static void mq_push(kube_t *k, mutation_t m)
{
  if(k->mq_n == k->mq_cap) {
    size_t cap = k->mq_cap ? k->mq_cap * 2 : 16;
    mutation_t *q = m3s_xmalloc(cap * sizeof(*q));
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

static void want_patch(kube_t *k, node_t *n)
{
  if(n->patching || n->deleting || k->disable_scheduling < 0 || n->role != M3S_ROLE_AGENT ||
     n->unschedulable == (k->disable_scheduling == 1) || !safe_name(n->name) || !k->api)
    return;
  n->patching = true;
  mutation_t m = { .kind = X_PATCH, .value = k->disable_scheduling == 1 };
  snprintf(m.node, sizeof(m.node), "%s", n->name);
  mq_push(k, m);
}

static void want_delete(kube_t *k, node_t *n)
{
  if(n->deleting || !safe_name(n->name) || !k->api)
    return;
  n->deleting = true;
  mutation_t m = { .kind = X_DELETE };
  snprintf(m.node, sizeof(m.node), "%s", n->name);
  mq_push(k, m);
  m3s_info("node %s: its task %s is no longer an agent task and the node is not Ready: "
           "deleting it from Kubernetes", n->name, n->task_id);
}

/* ---- the node table ------------------------------------------------------------ */

static void node_free(node_t *n)
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
static void node_upsert(kube_t *k, json_t *obj)
{
  const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
  if(!name || !*name || strlen(name) > MAX_NODE_NAME) {
    json_decref(obj);
    return;
  }
  node_t *n = m3s_idmap_get(&k->nodes, name);
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
  if(!streq(task, n->task_id) || ready != n->ready || role != n->role) {
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
  want_patch(k, n);
}

static void node_remove(kube_t *k, const char *name)
{
  node_t *n = m3s_idmap_del(&k->nodes, name);
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

static void nodes_each(kube_t *k, void (*fn)(kube_t *, node_t *))
{
  for(size_t i = 0; i < k->nodes.cap; i++) {
    node_t *n = k->nodes.slots[i].val;
    if(n)
      fn(k, n);
  }
}

static void node_unsee(kube_t *k, node_t *n)
{
  n->seen = false;
}

static void node_patch_check(kube_t *k, node_t *n)
{
  want_patch(k, n);
}

/* ---- transfers -------------------------------------------------------------------- */

static void xfer_free(xfer_t *x)
{
  if(!x)
    return;
  if(x->h) {
    curl_multi_remove_handle(x->k->multi, x->h);
    curl_easy_cleanup(x->h);
  }
  curl_slist_free_all(x->hdrs);
  free(x->req);
  free(x->buf);
  free(x);
}

static bool buf_append(xfer_t *x, const char *data, size_t len)
{
  if(x->len + len + 1 > x->limit)
    return false;
  if(x->len + len + 1 > x->cap) {
    size_t cap = x->cap ? x->cap : 16384;
    while(cap < x->len + len + 1)
      cap *= 2;
    x->buf = m3s_xrealloc(x->buf, cap);
    x->cap = cap;
  }
  memcpy(x->buf + x->len, data, len);
  x->len += len;
  x->buf[x->len] = '\0';
  return true;
}

static void keep_errbody(xfer_t *x, const char *data, size_t len)
{
  size_t room = sizeof(x->errbody) - 1 - x->errlen;
  size_t n = len < room ? len : room;
  for(size_t i = 0; i < n; i++) /* printable for the log */
    x->errbody[x->errlen + i] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : ' ';
  x->errlen += n;
  x->errbody[x->errlen] = '\0';
}

static long response_code(xfer_t *x)
{
  if(!x->status)
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
  return x->status;
}

static void set_rv(kube_t *k, const json_t *obj)
{
  const char *rv = json_string_value(
    json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  if(rv && *rv)
    set_str(&k->resource_version, rv);
}

/* One watch event line. Returns false to end the watch (x->why or x->gone). */
static bool watch_event(kube_t *k, xfer_t *x, const char *line, size_t len)
{
  json_error_t jerr;
  json_t *ev = json_loadb(line, len, 0, &jerr);
  const char *type = json_string_value(json_object_get(ev, "type"));
  json_t *obj = json_object_get(ev, "object");
  bool ok = true;
  if(!type || !json_is_object(obj)) {
    snprintf(x->why, sizeof(x->why), "malformed watch event (%s)",
             ev ? "no type or object" : jerr.text);
    json_decref(ev);
    return false;
  }
  x->events++;
  k->events++;
  if(!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED")) {
    set_rv(k, obj);
    node_upsert(k, json_incref(obj));
  }
  else if(!strcmp(type, "DELETED")) {
    set_rv(k, obj);
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if(name)
      node_remove(k, name);
  }
  else if(!strcmp(type, "BOOKMARK")) {
    set_rv(k, obj);
  }
  else if(!strcmp(type, "ERROR")) {
    json_int_t code = json_integer_value(json_object_get(obj, "code"));
    const char *msg = json_string_value(json_object_get(obj, "message"));
    if(code == 410) {
      x->gone = true;
    }
    else {
      snprintf(x->why, sizeof(x->why), "the watch reported an error (code %lld: %s)",
               (long long)code, msg ? msg : "no message");
    }
    ok = false;
  }
  else {
    m3s_debug("ignored watch event of type %s", type);
  }
  json_decref(ev);
  return ok;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
  xfer_t *x = ud;
  size_t len = size * nmemb;
  long status = response_code(x);
  if(status < 200 || status > 299) {
    keep_errbody(x, data, len);
    return len;
  }
  if(!buf_append(x, data, len)) {
    snprintf(x->why, sizeof(x->why), "%s answer larger than %zu bytes", xnames[x->kind],
             x->limit);
    return 0;
  }
  if(x->kind != X_WATCH)
    return len;
  /* Complete lines are events; the rest waits for more data. */
  size_t start = 0;
  for(;;) {
    char *nl = memchr(x->buf + start, '\n', x->len - start);
    if(!nl)
      break;
    size_t l = (size_t)(nl - (x->buf + start));
    bool go = true;
    if(l > 0 && !(l == 1 && x->buf[start] == '\r'))
      go = watch_event(x->k, x, x->buf + start, l);
    start += l + 1;
    if(!go) {
      x->len = 0;
      return 0;
    }
  }
  memmove(x->buf, x->buf + start, x->len - start);
  x->len -= start;
  x->buf[x->len] = '\0';
  return len;
}

static xfer_t *xfer_new(kube_t *k, xkind_t kind, const char *path, const char *node)
{
  const m3s_kubeconfig_t *kc = &k->kc;
  xfer_t *x = m3s_xcalloc(1, sizeof(*x));
  char url[1024];
  x->k = k;
  x->kind = kind;
  x->started_ms = m3s_now_ms();
  x->limit = kind == X_LIST ? MAX_LIST_BODY : kind == X_WATCH ? MAX_EVENT : MAX_MUTATION_BODY;
  if(node)
    snprintf(x->node, sizeof(x->node), "%s", node);
  x->h = curl_easy_init();
  if(!x->h) {
    free(x);
    return NULL;
  }
  snprintf(url, sizeof(url), "%s%s", k->api, path);
  CURL *h = x->h;
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_PRIVATE, x);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
  if(kc->ca_pem) {
    struct curl_blob b = { kc->ca_pem, kc->ca_len, CURL_BLOB_COPY };
    curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
  }
  if(kc->cert_pem && kc->key_pem) {
    struct curl_blob c = { kc->cert_pem, kc->cert_len, CURL_BLOB_COPY };
    struct curl_blob key = { kc->key_pem, kc->key_len, CURL_BLOB_COPY };
    curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &c);
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
  }
  x->hdrs = curl_slist_append(NULL, "Accept: application/json");
  x->hdrs = curl_slist_append(x->hdrs, "User-Agent: m3s/" M3S_VERSION);
  if(kc->token) {
    size_t n = strlen(kc->token) + 32;
    char *auth = m3s_xmalloc(n);
    snprintf(auth, n, "Authorization: Bearer %s", kc->token);
    x->hdrs = curl_slist_append(x->hdrs, auth);
    memset(auth, 0, n);
    free(auth);
  }
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 10L);
  if(kind == X_WATCH) {
    /* The server ends a watch after WATCH_TIMEOUT_S: one that stays silent
     * much longer lost its connection without a word. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)WATCH_TIMEOUT_S + 60L);
  }
  else {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, kind == X_LIST ? LIST_TIMEOUT_MS : MUTATION_TIMEOUT_MS);
  }
  return x;
}

static bool xfer_start(kube_t *k, xfer_t *x)
{
  curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
  CURLMcode mc = curl_multi_add_handle(k->multi, x->h);
  if(mc != CURLM_OK) {
    m3s_error("cannot start a %s transfer: %s", xnames[x->kind], curl_multi_strerror(mc));
    curl_easy_cleanup(x->h);
    x->h = NULL;
    return false;
  }
  return true;
}

/* Exponential backoff with jitter: a random delay in [d/2, d]. */
static int64_t next_backoff(kube_t *k)
{
  int64_t d = k->backoff_ms;
  k->backoff_ms = d * 2 > KUBE_BACKOFF_MAX_MS ? KUBE_BACKOFF_MAX_MS : d * 2;
  return d / 2 + (int64_t)(rand_r(&k->rng) % (unsigned)(d / 2 + 1));
}

static void retry_in(kube_t *k, int64_t delay_ms)
{
  if(k->retry_timer)
    m3s_timer_cancel(&k->base, k->retry_timer);
  k->retry_timer = m3s_timer_start(&k->base, T_RETRY, delay_ms, 0);
}

/* A failed list or watch: report, back off, retry. */
static void sync_failed(kube_t *k, const char *cat, const char *fmt, ...)
  __attribute__((format(printf, 3, 4)));
static void sync_failed(kube_t *k, const char *cat, const char *fmt, ...)
{
  char msg[480];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  k->errors++;
  set_state(k, false, cat, true, "%s", msg);
  int64_t d = next_backoff(k);
  m3s_debug("K3s API: next attempt in %lld ms", (long long)d);
  retry_in(k, d);
}

/* Why a transfer failed, as (category, text). */
static void describe(const xfer_t *x, CURLcode res, long status, const char **cat, char *buf,
                     size_t len)
{
  if(x->why[0]) {
    *cat = "protocol";
    snprintf(buf, len, "%s: %s", xnames[x->kind], x->why);
  }
  else if(res != CURLE_OK) {
    switch(res) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_USE_SSL_FAILED:
      *cat = "tls";
      snprintf(buf, len, "TLS with %s failed (the server's certificate not trusted, or the "
               "client certificate refused): %s (%s)",
               x->k->api, x->errbuf[0] ? x->errbuf : "", curl_easy_strerror(res));
      break;
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
      *cat = "unreachable";
      snprintf(buf, len, "%s is unreachable: %s", x->k->api,
               x->errbuf[0] ? x->errbuf : curl_easy_strerror(res));
      break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      if(!status) {
        /* With TLS 1.3 the server checks the client certificate after the
         * handshake: a refused one breaks the connection at the first
         * write or read. */
        *cat = "tls";
        snprintf(buf, len, "the connection to %s broke before any answer, as when the server "
                 "refuses the client certificate: %s (%s)", x->k->api,
                 x->errbuf[0] ? x->errbuf : "", curl_easy_strerror(res));
        break;
      }
      /* fall through */
    default:
      *cat = "transfer";
      snprintf(buf, len, "%s of %s failed: %s (%s)", xnames[x->kind], x->k->api,
               x->errbuf[0] ? x->errbuf : "", curl_easy_strerror(res));
      break;
    }
  }
  else if(status == 401 || status == 403) {
    *cat = "refused";
    snprintf(buf, len, "%s refused the client credentials of the kubeconfig (HTTP %ld: %.200s)",
             x->k->api, status, x->errbody);
  }
  else {
    *cat = "http";
    snprintf(buf, len, "%s answered the %s with HTTP %ld: %.200s", x->k->api, xnames[x->kind],
             status, x->errbody);
  }
}

static void start_list(kube_t *k)
{
  xfer_t *x = xfer_new(k, X_LIST, "/api/v1/nodes", NULL);
  if(!x || !xfer_start(k, x)) {
    xfer_free(x);
    sync_failed(k, "internal", "cannot start the node list");
    return;
  }
  k->sync = x;
}

static void start_watch(kube_t *k)
{
  char path[512];
  snprintf(path, sizeof(path),
           "/api/v1/nodes?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=%d",
           k->resource_version, WATCH_TIMEOUT_S);
  xfer_t *x = xfer_new(k, X_WATCH, path, NULL);
  if(!x || !xfer_start(k, x)) {
    xfer_free(x);
    sync_failed(k, "internal", "cannot start the node watch");
    return;
  }
  k->sync = x;
  k->watches++;
  m3s_debug("watching nodes from resourceVersion %s", k->resource_version);
}

/* List or watch, whichever is due, when nothing is running or waiting. */
static void start_sync(kube_t *k)
{
  if(!k->api || k->sync || k->retry_timer)
    return;
  if(k->resource_version)
    start_watch(k);
  else
    start_list(k);
}

static void list_done(kube_t *k, xfer_t *x)
{
  json_error_t jerr;
  json_t *list = json_loadb(x->buf ? x->buf : "", x->len, 0, &jerr);
  json_t *items = json_object_get(list, "items");
  const char *rv = json_string_value(
    json_object_get(json_object_get(list, "metadata"), "resourceVersion"));
  if(!json_is_array(items) || !rv || !*rv) {
    sync_failed(k, "protocol", "the node list from %s is not a NodeList%s%s", k->api,
                list ? "" : ": ", list ? "" : jerr.text);
    json_decref(list);
    return;
  }
  k->lists++;
  nodes_each(k, node_unsee);
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it)
    node_upsert(k, json_incref(it));
  /* Nodes the list does not have are gone. */
  for(;;) {
    const char *gone = NULL;
    for(size_t s = 0; s < k->nodes.cap && !gone; s++) {
      node_t *n = k->nodes.slots[s].val;
      if(n && !n->seen)
        gone = n->name;
    }
    if(!gone)
      break;
    node_remove(k, gone);
  }
  set_str(&k->resource_version, rv);
  m3s_debug("listed %zu node(s) at resourceVersion %s", json_array_size(items), rv);
  json_decref(list); /* rv and items were borrowed from it */
  k->backoff_ms = KUBE_BACKOFF_MIN_MS;
  set_state(k, true, "ok", false, "%s", "");
  start_watch(k);
}

static void sync_done(kube_t *k, CURLcode res)
{
  xfer_t *x = k->sync;
  long status = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
  k->sync = NULL;
  if(res == CURLE_WRITE_ERROR && (x->why[0] || x->gone))
    res = CURLE_OK; /* ours */
  if(x->kind == X_WATCH && (x->gone || status == 410)) {
    k->relists_gone++;
    m3s_info("the node watch expired (410 Gone at resourceVersion %s): listing again",
             k->resource_version ? k->resource_version : "?");
    free(k->resource_version);
    k->resource_version = NULL;
    xfer_free(x);
    start_list(k);
    return;
  }
  if(res == CURLE_OK && status >= 200 && status <= 299 && !x->why[0]) {
    if(x->kind == X_LIST) {
      list_done(k, x);
    }
    else if(x->events == 0 && m3s_now_ms() - x->started_ms < WATCH_MIN_LIFE_MS) {
      sync_failed(k, "watch", "the node watch at %s ended at once, without an event", k->api);
    }
    else {
      /* The server ended the watch (its timeout): resume where it stopped. */
      k->backoff_ms = KUBE_BACKOFF_MIN_MS;
      m3s_debug("the node watch ended after %llu event(s): resuming",
                (unsigned long long)x->events);
      start_watch(k);
    }
    xfer_free(x);
    return;
  }
  const char *cat;
  char msg[480];
  describe(x, res, status, &cat, msg, sizeof(msg));
  xfer_free(x);
  sync_failed(k, cat, "%s", msg);
}

static void mutation_done(kube_t *k, int slot, CURLcode res)
{
  xfer_t *x = k->mut[slot];
  long status = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
  k->mut[slot] = NULL;
  node_t *n = m3s_idmap_get(&k->nodes, x->node);
  if(n && x->kind == X_PATCH)
    n->patching = false;
  if(n && x->kind == X_DELETE)
    n->deleting = false;
  bool ok = res == CURLE_OK && status >= 200 && status <= 299;
  if(ok && x->kind == X_PATCH) {
    k->patches++;
    json_t *obj = json_loadb(x->buf ? x->buf : "", x->len, 0, NULL);
    if(json_is_object(obj))
      node_upsert(k, obj); /* the answer is the patched node */
    else
      json_decref(obj);
    n = m3s_idmap_get(&k->nodes, x->node);
    m3s_info("node %s %s", x->node, n && n->unschedulable ? "cordoned" : "uncordoned");
  }
  else if(x->kind == X_DELETE && (ok || status == 404)) {
    k->deletes++;
    m3s_info("node %s deleted from Kubernetes", x->node);
  }
  else if(x->kind == X_PATCH && status == 404) {
    /* gone meanwhile: the watch tells */
  }
  else {
    const char *cat;
    char msg[480];
    describe(x, res, status, &cat, msg, sizeof(msg));
    k->errors++;
    m3s_warn("node %s: %s (tried again at the next heartbeat)", x->node, msg);
  }
  xfer_free(x);
}

/* Starts queued mutations while there is room. */
static void pump_mutations(kube_t *k)
{
  if(!k->api || !k->connected)
    return;
  for(int s = 0; s < MAX_MUTATIONS && k->mq_n; s++) {
    if(k->mut[s])
      continue;
    mutation_t m = k->mq[k->mq_head];
    k->mq_head = (k->mq_head + 1) % k->mq_cap;
    k->mq_n--;
    node_t *n = m3s_idmap_get(&k->nodes, m.node);
    if(!n)
      continue;
    char path[MAX_NODE_NAME + 32];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", m.node);
    xfer_t *x = xfer_new(k, m.kind, path, m.node);
    if(!x) {
      n->patching = n->deleting = false;
      continue;
    }
    if(m.kind == X_PATCH) {
      x->req = m3s_xstrdup(m.value ? "{\"spec\":{\"unschedulable\":true}}"
                                   : "{\"spec\":{\"unschedulable\":false}}");
      x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/strategic-merge-patch+json");
      curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "PATCH");
      curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, x->req);
    }
    else {
      curl_easy_setopt(x->h, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    x->hdrs = curl_slist_append(x->hdrs, "Expect:");
    if(!xfer_start(k, x)) {
      n->patching = n->deleting = false;
      xfer_free(x);
      continue;
    }
    k->mut[s] = x;
  }
}

static void pump(kube_t *k)
{
  start_sync(k);
  pump_mutations(k);
}

static void process_done(kube_t *k)
{
  CURLMsg *msg;
  int left;
  while((msg = curl_multi_info_read(k->multi, &left))) {
    if(msg->msg != CURLMSG_DONE)
      continue;
    CURL *h = msg->easy_handle;
    CURLcode res = msg->data.result;
    if(k->sync && h == k->sync->h) {
      sync_done(k, res);
      continue;
    }
    for(int s = 0; s < MAX_MUTATIONS; s++) {
      if(k->mut[s] && h == k->mut[s]->h) {
        mutation_done(k, s, res);
        break;
      }
    }
  }
}

/* ---- the client: rebuilt whenever kubeconfig or address change ------------------- */

static void drop_transfers(kube_t *k)
{
  xfer_free(k->sync);
  k->sync = NULL;
  for(int s = 0; s < MAX_MUTATIONS; s++) {
    xfer_free(k->mut[s]);
    k->mut[s] = NULL;
  }
  k->mq_n = k->mq_head = 0;
  for(size_t i = 0; i < k->nodes.cap; i++) {
    node_t *n = k->nodes.slots[i].val;
    if(n)
      n->patching = n->deleting = false;
  }
  if(k->retry_timer)
    m3s_timer_cancel(&k->base, k->retry_timer);
  k->retry_timer = 0;
}

static void rebuild(kube_t *k)
{
  drop_transfers(k);
  /* A fresh multi handle: no pooled connection made with the old
   * certificates or to the old address survives. */
  if(k->multi)
    curl_multi_cleanup(k->multi);
  k->multi = curl_multi_init();
  free(k->api);
  k->api = NULL;
  free(k->resource_version);
  k->resource_version = NULL;
  k->backoff_ms = KUBE_BACKOFF_MIN_MS;
  k->connected = false;
  if(!k->kc_text) {
    set_state(k, false, "no-kubeconfig", false, "waiting for the kubeconfig in Redis (%s:"
              "kubernetes_config), published by m3s-controller in the K3s server", k->base.cfg->fw);
    return;
  }
  if(!k->kc_ok) {
    set_state(k, false, "bad-kubeconfig", true, "%s", k->kc_error);
    return;
  }
  if(!k->srv_host || !k->srv_host[0] || k->srv_port <= 0) {
    set_state(k, false, "no-address", false, "waiting for the K3s server task's address");
    return;
  }
  k->api = m3s_kube_api_url(k->kc.server, k->srv_host, k->srv_port);
  if(!k->api || !k->multi) {
    set_state(k, false, "bad-kubeconfig", true, "kubeconfig: the server %s is not an http(s) URL",
              k->kc.server);
    free(k->api);
    k->api = NULL;
    return;
  }
  set_state(k, false, "connecting", false, "connecting to %s", k->api);
  start_list(k);
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
  if(!text || streq(text, k->kc_text))
    return;
  bool first = !k->kc_text;
  set_str(&k->kc_text, text);
  m3s_kubeconfig_free(&k->kc);
  k->kc_error[0] = '\0';
  k->kc_ok = m3s_kubeconfig_parse(text, strlen(text), &k->kc, k->kc_error,
                                  sizeof(k->kc_error)) == 0;
  m3s_info("%s kubeconfig from Redis%s%s", first ? "read the" : "the kubeconfig changed: read the new",
           k->kc_ok ? "" : ": ", k->kc_ok ? "" : k->kc_error);
  rebuild(k);
}

/* ---- requests to other actors ------------------------------------------------------ */

static void ask(kube_t *k, ask_kind_t kind)
{
  m3s_actor_t *to = kind == ASK_OFFERS ? k->offers
                    : kind == ASK_SERVER ? k->roles[M3S_ROLE_SERVER] : k->roles[M3S_ROLE_AGENT];
  uint32_t type = kind == ASK_OFFERS ? M3S_OFFERS_STATUS : M3S_ROLE_STATUS;
  if(!to)
    return;
  if(k->asks[kind]) {
    if(m3s_now_ms() - k->ask_ms[kind] < ASK_TIMEOUT_MS)
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
    if(!streq(host, k->srv_host) || p != k->srv_port) {
      if(host[0])
        m3s_info("the K3s server runs on %s, API host port %d", host, p);
      set_str(&k->srv_host, host);
      k->srv_port = p;
      rebuild(k);
    }
  }
  if(json_is_boolean(ds)) {
    int v = json_is_true(ds);
    if(v != k->disable_scheduling) {
      k->disable_scheduling = v;
      m3s_info("agent nodes are to be %s", v ? "cordoned" : "schedulable");
    }
    nodes_each(k, node_patch_check);
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
    node_t *n = k->nodes.slots[i].val;
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
    if(++n->strikes >= DELETE_STRIKES)
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
    const node_t *n = k->nodes.slots[i].val;
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
    node_t *n = k->nodes.slots[i].val;
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
  return json_pack("{s:b, s:s, s:s, s:b, s:s, s:I, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
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

static void heartbeat(kube_t *k)
{
  log_wait(k);
  if(k->store && !k->load_out) {
    k->load_out = true;
    m3s_send(k->store, m3s_msg_new(M3S_STORE_LOAD, TAG_KUBECONFIG,
                                   m3s_store_load_new("kubernetes_config", &k->base,
                                                      TAG_KUBECONFIG),
                                   m3s_store_load_free));
  }
  /* The roles' task lists only matter once there is a K3s API to compare
   * them with: a role's full status is large with thousands of tasks. */
  for(int i = 0; i < NASK; i++)
    if((ask_kind_t)i == ASK_OFFERS || k->kc_ok)
      ask(k, (ask_kind_t)i);
}

static void kube_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  kube_t *k = (kube_t *)self;
  switch(msg->type) {
  case T_HEARTBEAT:
    heartbeat(k);
    break;
  case T_RETRY:
    k->retry_timer = 0;
    break; /* pump() below starts what is due */
  case M3S_STORE_LOADED:
    if(msg->arg == TAG_KUBECONFIG)
      on_kubeconfig(k, msg);
    break;
  case M3S_STORE_WRITTEN:
    break;
  case M3S_STORE_PRESSURE:
    k->backlogged = msg->arg != 0;
    if(!k->backlogged)
      nodes_each(k, save_unsaved);
    break;
  case M3S_KUBE_STATUS:
    m3s_msg_reply(msg, m3s_msg_new(M3S_KUBE_STATUS, 0,
                                   status_json(k, msg->arg == M3S_KUBE_BRIEF), m3s_json_drop));
    break;
  case M3S_KUBE_CONFIG:
    m3s_msg_reply(msg, m3s_msg_new(M3S_KUBE_CONFIG, 0, config_text(k), free));
    break;
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
  pump(k);
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
  if(asking && (timeout_ms < 0 || timeout_ms > ASK_POLL_MS))
    timeout_ms = ASK_POLL_MS;
  if(timeout_ms < 0)
    timeout_ms = 1000;
  curl_multi_poll(k->multi, &extra, 1, timeout_ms, NULL);
  curl_multi_perform(k->multi, &running);
  process_done(k);
  poll_asks(k);
  pump(k);
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
  set_str(&k->srv_host, "");
  m3s_timer_start(self, T_HEARTBEAT, 0, self->cfg->heartbeat_interval_ms);
  rebuild(k); /* states what it waits for */
  return 0;
}

static void kube_stop(m3s_actor_t *self)
{
  kube_t *k = (kube_t *)self;
  drop_transfers(k);
  if(k->multi)
    curl_multi_cleanup(k->multi);
  k->multi = NULL;
  for(int i = 0; i < NASK; i++)
    m3s_reply_unref(k->asks[i]);
  for(size_t i = 0; i < k->nodes.cap; i++)
    node_free(k->nodes.slots[i].val);
  m3s_idmap_free(&k->nodes);
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
