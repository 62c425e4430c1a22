/* The kube actor's HTTP client: one libcurl multi handle, the node list
 * and watch (the sync transfer), node mutations (PATCH, DELETE), backoff,
 * and the client rebuilt whenever the kubeconfig or the K3s server's
 * address changes. Runs on the actor's thread; see kube-int.h.
 *
 * DESIGN. Like the Mesos actor, the kube actor owns one libcurl multi
 * handle and waits in curl_multi_poll with its wake eventfd as an extra
 * fd, so mail, the API's sockets and timers all wake the same thread.
 * Transfers:
 *  - the sync transfer, one at a time: a LIST, or a WATCH whose body is a
 *    stream of newline-delimited watch events decoded as they arrive;
 *  - mutations (PATCH for cordon, DELETE for scaled-down nodes), from a
 *    queue, at most KUBE_MAX_MUTATIONS at once;
 *  - drain transfers (pod lists, evictions: kube_drain.c), at most
 *    KUBE_MAX_DRAIN_XFERS at once.
 * curl callbacks never add or remove handles: they decode, update the node
 * table, send messages (which never touches curl) and queue mutations; a
 * callback that must end its transfer records why and returns 0, and the
 * rest happens once curl_multi_perform has returned (kube_process_done,
 * kube_pump).
 *
 * The client (multi handle, its pooled connections, the URL, the
 * certificates) is rebuilt from scratch whenever the kubeconfig or the K3s
 * server's address changes: no connection made with old credentials or to
 * an old address is ever reused.
 */
#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube-int.h"
#include "m3s/log.h"
#include "m3s/xalloc.h"

const char *const kube_xnames[] = { "list", "watch", "patch", "delete", "pod list", "eviction" };

static void start_sync(kube_t *k);


void kube_xfer_free(kube_xfer_t *x)
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

static bool buf_append(kube_xfer_t *x, const char *data, size_t len)
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

static void keep_errbody(kube_xfer_t *x, const char *data, size_t len)
{
  size_t room = sizeof(x->errbody) - 1 - x->errlen;
  size_t n = len < room ? len : room;
  for(size_t i = 0; i < n; i++) /* printable for the log */
    x->errbody[x->errlen + i] = (data[i] >= 0x20 && data[i] < 0x7f) ? data[i] : ' ';
  x->errlen += n;
  x->errbody[x->errlen] = '\0';
}

static long response_code(kube_xfer_t *x)
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
    kube_set_str(&k->resource_version, rv);
}

/* One watch event line. Returns false to end the watch (x->why or x->gone). */
static bool watch_event(kube_t *k, kube_xfer_t *x, const char *line, size_t len)
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
    kube_node_upsert(k, json_incref(obj));
  }
  else if(!strcmp(type, "DELETED")) {
    set_rv(k, obj);
    const char *name = json_string_value(json_object_get(json_object_get(obj, "metadata"), "name"));
    if(name)
      kube_node_remove(k, name);
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
  kube_xfer_t *x = ud;
  size_t len = size * nmemb;
  long status = response_code(x);
  if(status < 200 || status > 299) {
    keep_errbody(x, data, len);
    return len;
  }
  if(!buf_append(x, data, len)) {
    snprintf(x->why, sizeof(x->why), "%s answer larger than %zu bytes", kube_xnames[x->kind],
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

kube_xfer_t *kube_xfer_new(kube_t *k, kube_xkind_t kind, const char *path, const char *node)
{
  const m3s_kubeconfig_t *kc = &k->kc;
  kube_xfer_t *x = m3s_xcalloc(1, sizeof(*x));
  char url[1024];
  x->k = k;
  x->kind = kind;
  x->started_ms = m3s_now_ms();
  x->limit = kind == X_LIST || kind == X_PODS ? KUBE_MAX_LIST_BODY
             : kind == X_WATCH                ? KUBE_MAX_EVENT
                                              : KUBE_MAX_MUTATION_BODY;
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
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, KUBE_CONNECT_TIMEOUT_MS);
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
    /* The server ends a watch after KUBE_WATCH_TIMEOUT_S: one that stays silent
     * much longer lost its connection without a word. */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)KUBE_WATCH_TIMEOUT_S + 60L);
  }
  else {
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, kind == X_LIST || kind == X_PODS
                                              ? KUBE_LIST_TIMEOUT_MS : KUBE_MUTATION_TIMEOUT_MS);
  }
  return x;
}

bool kube_xfer_start(kube_t *k, kube_xfer_t *x)
{
  curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
  CURLMcode mc = curl_multi_add_handle(k->multi, x->h);
  if(mc != CURLM_OK) {
    m3s_error("cannot start a %s transfer: %s", kube_xnames[x->kind], curl_multi_strerror(mc));
    curl_easy_cleanup(x->h);
    x->h = NULL;
    return false;
  }
  return true;
}

/* Exponential backoff with jitter: a random delay in [d/2, d]. */
int64_t kube_jitter(kube_t *k, int64_t d)
{
  return d / 2 + (int64_t)(rand_r(&k->rng) % (unsigned)(d / 2 + 1));
}

static int64_t next_backoff(kube_t *k)
{
  int64_t d = k->backoff_ms;
  k->backoff_ms = d * 2 > KUBE_BACKOFF_MAX_MS ? KUBE_BACKOFF_MAX_MS : d * 2;
  return kube_jitter(k, d);
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
  kube_set_state(k, false, cat, true, "%s", msg);
  int64_t d = next_backoff(k);
  m3s_debug("K3s API: next attempt in %lld ms", (long long)d);
  retry_in(k, d);
}

/* Why a transfer failed, as (category, text). */
void kube_describe(const kube_xfer_t *x, CURLcode res, long status, const char **cat, char *buf,
                     size_t len)
{
  if(x->why[0]) {
    *cat = "protocol";
    snprintf(buf, len, "%s: %s", kube_xnames[x->kind], x->why);
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
      snprintf(buf, len, "%s of %s failed: %s (%s)", kube_xnames[x->kind], x->k->api,
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
    snprintf(buf, len, "%s answered the %s with HTTP %ld: %.200s", x->k->api, kube_xnames[x->kind],
             status, x->errbody);
  }
}

static void start_list(kube_t *k)
{
  kube_xfer_t *x = kube_xfer_new(k, X_LIST, "/api/v1/nodes", NULL);
  if(!x || !kube_xfer_start(k, x)) {
    kube_xfer_free(x);
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
           k->resource_version, KUBE_WATCH_TIMEOUT_S);
  kube_xfer_t *x = kube_xfer_new(k, X_WATCH, path, NULL);
  if(!x || !kube_xfer_start(k, x)) {
    kube_xfer_free(x);
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

static void node_unsee(kube_t *k, kube_node_t *n)
{
  (void)k;
  n->seen = false;
}

static void list_done(kube_t *k, kube_xfer_t *x)
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
  kube_nodes_each(k, node_unsee);
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it)
    kube_node_upsert(k, json_incref(it));
  /* Nodes the list does not have are gone. */
  for(;;) {
    const char *gone = NULL;
    for(size_t s = 0; s < k->nodes.cap && !gone; s++) {
      kube_node_t *n = k->nodes.slots[s].val;
      if(n && !n->seen)
        gone = n->name;
    }
    if(!gone)
      break;
    kube_node_remove(k, gone);
  }
  kube_set_str(&k->resource_version, rv);
  m3s_debug("listed %zu node(s) at resourceVersion %s", json_array_size(items), rv);
  json_decref(list); /* rv and items were borrowed from it */
  k->backoff_ms = KUBE_BACKOFF_MIN_MS;
  kube_set_state(k, true, "ok", false, "%s", "");
  start_watch(k);
}

static void sync_done(kube_t *k, CURLcode res)
{
  kube_xfer_t *x = k->sync;
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
    kube_xfer_free(x);
    start_list(k);
    return;
  }
  if(res == CURLE_OK && status >= 200 && status <= 299 && !x->why[0]) {
    if(x->kind == X_LIST) {
      list_done(k, x);
    }
    else if(x->events == 0 && m3s_now_ms() - x->started_ms < KUBE_WATCH_MIN_LIFE_MS) {
      sync_failed(k, "watch", "the node watch at %s ended at once, without an event", k->api);
    }
    else {
      /* The server ended the watch (its timeout): resume where it stopped. */
      k->backoff_ms = KUBE_BACKOFF_MIN_MS;
      m3s_debug("the node watch ended after %llu event(s): resuming",
                (unsigned long long)x->events);
      start_watch(k);
    }
    kube_xfer_free(x);
    return;
  }
  const char *cat;
  char msg[480];
  kube_describe(x, res, status, &cat, msg, sizeof(msg));
  kube_xfer_free(x);
  sync_failed(k, cat, "%s", msg);
}

static void mutation_done(kube_t *k, int slot, CURLcode res)
{
  kube_xfer_t *x = k->mut[slot];
  long status = 0;
  curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &status);
  k->mut[slot] = NULL;
  kube_node_t *n = m3s_idmap_get(&k->nodes, x->node);
  if(n && x->kind == X_PATCH)
    n->patching = false;
  if(n && x->kind == X_DELETE)
    n->deleting = false;
  bool ok = res == CURLE_OK && status >= 200 && status <= 299;
  if(ok && x->kind == X_PATCH) {
    k->patches++;
    json_t *obj = json_loadb(x->buf ? x->buf : "", x->len, 0, NULL);
    if(json_is_object(obj))
      kube_node_upsert(k, obj); /* the answer is the patched node */
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
    kube_describe(x, res, status, &cat, msg, sizeof(msg));
    k->errors++;
    m3s_warn("node %s: %s (tried again at the next heartbeat)", x->node, msg);
  }
  kube_xfer_free(x);
}

/* Starts queued mutations while there is room. */
static void pump_mutations(kube_t *k)
{
  if(!k->api || !k->connected)
    return;
  for(int s = 0; s < KUBE_MAX_MUTATIONS && k->mq_n; s++) {
    if(k->mut[s])
      continue;
    kube_mutation_t m = k->mq[k->mq_head];
    k->mq_head = (k->mq_head + 1) % k->mq_cap;
    k->mq_n--;
    kube_node_t *n = m3s_idmap_get(&k->nodes, m.node);
    if(!n)
      continue;
    char path[KUBE_MAX_NODE_NAME + 32];
    snprintf(path, sizeof(path), "/api/v1/nodes/%s", m.node);
    kube_xfer_t *x = kube_xfer_new(k, m.kind, path, m.node);
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
    if(!kube_xfer_start(k, x)) {
      n->patching = n->deleting = false;
      kube_xfer_free(x);
      continue;
    }
    k->mut[s] = x;
  }
}

/* A watch resumed after a failure connects without a list: the API is
 * back once it answers the watch with a 2xx. */
static void watch_answered(kube_t *k)
{
  long status = 0;
  if(k->connected || !k->sync || k->sync->kind != X_WATCH)
    return;
  curl_easy_getinfo(k->sync->h, CURLINFO_RESPONSE_CODE, &status);
  if(status < 200 || status > 299)
    return;
  kube_set_state(k, true, "ok", false, "%s", "");
}

void kube_pump(kube_t *k)
{
  watch_answered(k);
  start_sync(k);
  pump_mutations(k);
  kube_drain_pump(k);
}

void kube_process_done(kube_t *k)
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
    if(kube_drain_done(k, h, res))
      continue;
    for(int s = 0; s < KUBE_MAX_MUTATIONS; s++) {
      if(k->mut[s] && h == k->mut[s]->h) {
        mutation_done(k, s, res);
        break;
      }
    }
  }
}

/* ---- the client: rebuilt whenever kubeconfig or address change ------------------- */

void kube_drop_transfers(kube_t *k)
{
  kube_xfer_free(k->sync);
  k->sync = NULL;
  for(int s = 0; s < KUBE_MAX_MUTATIONS; s++) {
    kube_xfer_free(k->mut[s]);
    k->mut[s] = NULL;
  }
  k->mq_n = k->mq_head = 0;
  for(size_t i = 0; i < k->nodes.cap; i++) {
    kube_node_t *n = k->nodes.slots[i].val;
    if(n)
      n->patching = n->deleting = false;
  }
  kube_drain_drop(k);
  if(k->retry_timer)
    m3s_timer_cancel(&k->base, k->retry_timer);
  k->retry_timer = 0;
}

void kube_rebuild(kube_t *k)
{
  kube_drop_transfers(k);
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
  /* Every way on below sets the state: not connected (the roles told). */
  if(!k->kc_text) {
    kube_set_state(k, false, "no-kubeconfig", false, "waiting for the kubeconfig in Redis (%s:"
              "kubernetes_config), published by m3s-controller in the K3s server", k->base.cfg->fw);
    return;
  }
  if(!k->kc_ok) {
    kube_set_state(k, false, "bad-kubeconfig", true, "%s", k->kc_error);
    return;
  }
  if(!k->srv_host || !k->srv_host[0] || k->srv_port <= 0) {
    kube_set_state(k, false, "no-address", false, "waiting for the K3s server task's address");
    return;
  }
  k->api = m3s_kube_api_url(k->kc.server, k->srv_host, k->srv_port);
  if(!k->api || !k->multi) {
    kube_set_state(k, false, "bad-kubeconfig", true, "kubeconfig: the server %s is not an http(s) URL",
              k->kc.server);
    free(k->api);
    k->api = NULL;
    return;
  }
  kube_set_state(k, false, "connecting", false, "connecting to %s", k->api);
  start_list(k);
}
