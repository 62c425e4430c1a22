/* The Mesos actor: subscription, event stream and calls. See
 * include/m3s/mesos.h for its messages.
 *
 * DESIGN. The actor owns one libcurl multi handle and waits in
 * curl_multi_poll with its wake eventfd as an extra fd, so mail, socket
 * activity and timers all wake the same thread and no other thread ever
 * touches a curl handle. Two kinds of transfer run on it:
 *  - the subscription: a SUBSCRIBE POST whose 200 response body is the
 *    RecordIO event stream; it has no overall timeout, a watchdog timer drops
 *    it when no event arrived for five heartbeat intervals of reading (not
 *    while pacing has paused it: then the silence is ours);
 *  - calls: one at a time, in the order they were queued, on connections
 *    the multi handle keeps alive, each with MESOS_CALL_TIMEOUT.
 * Every way the subscription can end (stream closed, transport error,
 * malformed frame or event, watchdog, redirect, refused credentials, a call
 * answered with a stale-subscription error) goes through one function,
 * subscription_lost(), which decides the delay before the next SUBSCRIBE.
 * curl callbacks never add or remove handles (curl refuses both from its
 * callbacks): they record why and return an error, or queue a call, and the
 * rest happens after curl_multi_perform returns.
 */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "m3s/log.h"
#include "m3s/mesos-call.h"
#include "m3s/mesos-event.h"
#include "m3s/mesos.h"
#include "m3s/recordio.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

enum {
  T_RECONNECT = M3S_MSG_USER, /* timer: time to SUBSCRIBE again */
  T_WATCHDOG,                 /* timer: every second, checks liveness */
  T_CALL_RETRY,               /* timer: resend the call at the queue head */
};

#define WATCHDOG_PERIOD_MS 1000
#define HEARTBEAT_MISSES 5      /* silent intervals before the stream is dead */
#define DEFAULT_HEARTBEAT_S 15.0
#define MAX_REDIRECTS 3         /* redirects followed at once before backing off */
#define CALL_RETRIES 3
#define CALL_RETRY_DELAY_MS 1000
#define CONNECT_TIMEOUT_MS 10000L
#define BODY_KEEP 1024          /* bytes of an error body kept for the log */

typedef enum sub_state {
  SUB_LOADING,     /* waiting for the framework record from the store */
  SUB_WAITING,     /* no transfer; a reconnect timer is armed */
  SUB_CONNECTING,  /* SUBSCRIBE sent, response headers not complete */
  SUB_STREAMING,   /* 200 received, SUBSCRIBED not yet read */
  SUB_SUBSCRIBED,  /* SUBSCRIBED read: calls may flow */
} sub_state_t;

static const char *const state_names[] = { "loading", "waiting", "connecting", "streaming",
                                           "subscribed" };

/* Tags of our M3S_STORE_WRITE batches: the framework record's write
 * sequence; only the latest write's outcome counts. */
#define STOP_DRAIN_MS 1000  /* longest wait for a call on the wire at stop */
/* Reading the stream pauses while an actor the events go to, or the store
 * that persists what they change, has this many messages queued, and goes
 * on once it is down to half: a burst of 10,000 updates otherwise waits
 * parsed in their mailboxes, or as write batches in the store's (a few MiB,
 * and the peak RSS with it, the more so the busier the machine). */
#define PACE_DEPTH 256
#define PACE_MAX 6

typedef struct call_queue {
  json_t **items;
  size_t head, n, cap;
} call_queue_t;

typedef struct mesos {
  m3s_actor_t base;
  m3s_actor_t *offers_sink, *update_sink;
  m3s_actor_t *paced[PACE_MAX]; /* sinks, roles, store: read by depth only */
  size_t npaced;
  bool stream_paused;         /* the write callback paused the stream (pacing) */
  m3s_actor_t *store;         /* NULL: nothing is persisted (unit setups) */
  bool fw_persisted;          /* the framework id in use is in Redis */
  int64_t fw_wseq;            /* tag of the framework record's latest write */
  bool fw_loaded;             /* the framework record has been read */
  bool ready;                 /* the offers sink said READY (or there is none) */
  bool draining;              /* stopping: no new call starts */
  CURLM *multi;

  /* subscription */
  sub_state_t state;
  CURL *stream;
  struct curl_slist *stream_headers;
  char *stream_body;
  long stream_status;
  char stream_id[130];
  char location[512];
  char errbody[BODY_KEEP];
  size_t errlen;
  char drop_reason[320];      /* set by a callback that aborted the stream */
  m3s_recordio_t rio;
  char *framework_id;
  bool framework_removed;     /* ERROR "Framework has been removed" seen */
  char master[300];           /* host:port we talk to (the leader after a 307) */
  int redirects;
  int64_t backoff_ms;
  uint64_t reconnect_timer;
  int64_t started_ms;         /* SUBSCRIBE sent */
  int64_t last_event_ms;
  double heartbeat_s;

  /* calls */
  call_queue_t queue;
  CURL *call;
  json_t *inflight;
  struct curl_slist *call_headers;
  char *call_body;
  char call_resp[BODY_KEEP];
  size_t call_resplen;
  int call_retries;
  bool retry_armed;

  /* counters (for the status request and, later, metrics) */
  uint64_t subscriptions, reconnects, events, calls_ok, calls_failed, offers_declined,
    stream_pauses;

  unsigned rng;
} mesos_t;

static void subscribe_now(mesos_t *m);
static void pump_calls(mesos_t *m);
static void subscription_lost(mesos_t *m, CURLcode res);

void m3s_mesos_update_free(void *p)
{
  m3s_mesos_update_t *u = p;
  json_decref(u->status);
  json_decref(u->ack);
  free(u);
}

void m3s_mesos_set_sinks(m3s_actor_t *mesos, m3s_actor_t *offers, m3s_actor_t *updates)
{
  mesos_t *m = (mesos_t *)mesos;
  m->offers_sink = offers;
  m->update_sink = updates;
}

/* ---- call queue (owner thread only) ------------------------------------- */

static void queue_push(call_queue_t *q, json_t *call, bool front)
{
  if(q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    json_t **items = m3s_xmalloc(cap * sizeof(*items));
    for(size_t i = 0; i < q->n; i++)
      items[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = items;
    q->cap = cap;
    q->head = 0;
  }
  if(front) {
    q->head = (q->head + q->cap - 1) % q->cap;
    q->items[q->head] = call;
  }
  else {
    q->items[(q->head + q->n) % q->cap] = call;
  }
  q->n++;
}

static json_t *queue_pop(call_queue_t *q)
{
  if(!q->n)
    return NULL;
  json_t *c = q->items[q->head];
  q->head = (q->head + 1) % q->cap;
  q->n--;
  return c;
}

/* Whether the ACCEPT `accept` launches task `id`. */
static bool accept_launches(const json_t *accept, const char *id)
{
  size_t i, k;
  const json_t *op, *ti;
  json_array_foreach(json_object_get(json_object_get(accept, "accept"), "operations"), i, op) {
    json_array_foreach(json_object_get(json_object_get(op, "launch"), "task_infos"), k, ti) {
      const char *tid = json_string_value(json_object_get(json_object_get(ti, "task_id"), "value"));
      if(tid && !strcmp(tid, id))
        return true;
    }
  }
  return false;
}

/* Takes out of the queue the first call that may go before the ACCEPTs
 * waiting ahead of it (the others keep their order), or NULL: anything but
 * an ACCEPT, and but a KILL of a task one of those ACCEPTs launches. */
static json_t *queue_take_not_accept(call_queue_t *q)
{
  for(size_t i = 0; i < q->n; i++) {
    json_t *c = q->items[(q->head + i) % q->cap];
    if(!strcmp(m3s_call_type(c), "ACCEPT"))
      continue;
    const char *kill = !strcmp(m3s_call_type(c), "KILL")
      ? json_string_value(json_object_get(json_object_get(json_object_get(c, "kill"), "task_id"),
                                          "value"))
      : NULL;
    bool behind = false;
    for(size_t k = 0; kill && k < i && !behind; k++)
      behind = accept_launches(q->items[(q->head + k) % q->cap], kill);
    if(behind)
      continue;
    for(size_t k = i; k > 0; k--)
      q->items[(q->head + k) % q->cap] = q->items[(q->head + k - 1) % q->cap];
    q->head = (q->head + 1) % q->cap;
    q->n--;
    return c;
  }
  return NULL;
}

/* Calls tied to one subscription: their offers and updates die with it (the
 * master re-sends unacknowledged updates on the next one). */
static bool bound_to_subscription(const json_t *call)
{
  const char *t = m3s_call_type(call);
  return !strcmp(t, "ACCEPT") || !strcmp(t, "DECLINE") || !strcmp(t, "ACKNOWLEDGE");
}

static void queue_forget_stale(mesos_t *m)
{
  size_t n = m->queue.n, dropped = 0;
  for(size_t i = 0; i < n; i++) {
    json_t *c = queue_pop(&m->queue);
    if(bound_to_subscription(c)) {
      json_decref(c);
      dropped++;
    }
    else {
      queue_push(&m->queue, c, false);
    }
  }
  if(dropped)
    m3s_debug("dropped %zu queued call(s) of the lost subscription", dropped);
}

/* ---- common transfer setup ---------------------------------------------- */

static void url_for(const mesos_t *m, char *buf, size_t len)
{
  snprintf(buf, len, "%s://%s/api/v1/scheduler", m->base.cfg->mesos_ssl ? "https" : "http",
           m->master);
}

static void set_common(mesos_t *m, CURL *h)
{
  const m3s_config_t *cfg = m->base.cfg;
  char url[400];
  url_for(m, url, sizeof(url));
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  /* The master speaks HTTP/1.1; the stream relies on its chunked bodies. */
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_PRIVATE, m);
  if(cfg->mesos_username[0] || cfg->mesos_password[0]) {
    curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(h, CURLOPT_USERNAME, cfg->mesos_username);
    curl_easy_setopt(h, CURLOPT_PASSWORD, cfg->mesos_password);
  }
  if(cfg->mesos_ssl && cfg->skip_ssl) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
}

/* Trims a header value: spaces and the trailing CR LF (a stray '\r' in the
 * stream id would make every call fail with 400). */
static void header_value(const char *line, size_t len, size_t name_len, char *out, size_t outlen)
{
  const char *v = line + name_len;
  const char *end = line + len;
  while(v < end && (*v == ' ' || *v == '\t'))
    v++;
  while(end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
    end--;
  size_t n = (size_t)(end - v);
  if(n >= outlen)
    n = outlen - 1;
  memcpy(out, v, n);
  out[n] = '\0';
}

static bool header_is(const char *line, size_t len, const char *name)
{
  size_t n = strlen(name);
  return len > n && strncasecmp(line, name, n) == 0;
}

/* ---- the subscription stream -------------------------------------------- */

static size_t stream_header_cb(char *line, size_t size, size_t nmemb, void *ud)
{
  mesos_t *m = ud;
  size_t len = size * nmemb;
  if(len > 5 && !strncmp(line, "HTTP/", 5)) {
    const char *sp = memchr(line, ' ', len);
    m->stream_status = sp ? strtol(sp + 1, NULL, 10) : 0;
  }
  else if(header_is(line, len, "Mesos-Stream-Id:")) {
    header_value(line, len, strlen("Mesos-Stream-Id:"), m->stream_id, sizeof(m->stream_id));
  }
  else if(header_is(line, len, "Location:")) {
    header_value(line, len, strlen("Location:"), m->location, sizeof(m->location));
  }
  else if((len == 2 && line[0] == '\r') || (len == 1 && line[0] == '\n')) {
    if(m->stream_status == 200) {
      m->state = SUB_STREAMING;
      m3s_debug("subscription stream open (stream id %s)", m->stream_id);
    }
  }
  return len;
}

static void decline_offers(mesos_t *m, json_t *offers)
{
  json_t *ids = json_array();
  size_t i;
  json_t *o;
  json_array_foreach(offers, i, o)
    json_array_append_new(ids, json_string(json_string_value(json_object_get(json_object_get(o, "id"), "value"))));
  json_t *call = m3s_call_decline(ids, m->base.cfg->refuse_offers);
  if(!call) {
    m3s_error("cannot build a DECLINE for %zu offer(s)", i);
    return;
  }
  m->offers_declined += i;
  queue_push(&m->queue, call, false);
}

/* A rescinded offer must not be declined any more: take it out of the
 * DECLINE calls still queued (one already sent is answered 202 and ignored by
 * the master). */
static void forget_offer(mesos_t *m, const char *offer_id)
{
  for(size_t k = 0; k < m->queue.n; k++) {
    json_t *call = m->queue.items[(m->queue.head + k) % m->queue.cap];
    if(strcmp(m3s_call_type(call), "DECLINE") != 0)
      continue;
    json_t *ids = json_object_get(json_object_get(call, "decline"), "offer_ids");
    size_t i;
    json_t *id;
    json_array_foreach(ids, i, id) {
      if(!strcmp(json_string_value(json_object_get(id, "value")), offer_id)) {
        json_array_remove(ids, i);
        m->offers_declined--;
        return; /* an empty DECLINE is valid and harmless */
      }
    }
  }
}

/* The framework record <fw>:framework, in the original's layout (the fields
 * it reads back are FrameworkInfo.id and MesosStreamID; enums are numbers
 * there: 5 = PARTITION_AWARE, 6 = MULTI_ROLE). Unlike the original it holds
 * no credentials. */
static char *framework_record(const mesos_t *m)
{
  const m3s_config_t *cfg = m->base.cfg;
  char webui[400];
  snprintf(webui, sizeof(webui), "%s://%s:%d", cfg->ssl_crt_pem[0] ? "https" : "http",
           cfg->framework_hostname, cfg->framework_port);
  json_t *rec = json_pack(
    "{s:s, s:i, s:s, s:s, s:s, s:{s:s, s:s, s:{s:s}, s:f, s:b, s:[s], s:s, s:s, s:s, s:[{s:i},{s:i}]},"
    " s:i, s:i, s:s, s:b, s:s}",
    "FrameworkHostname", cfg->framework_hostname, "FrameworkPort", cfg->framework_port,
    "FrameworkUser", cfg->framework_user, "FrameworkName", cfg->fw,
    "FrameworkRole", cfg->framework_role,
    "FrameworkInfo", "user", cfg->framework_user, "name", cfg->fw, "id", "value", m->framework_id,
    "failover_timeout", (double)cfg->mesos_failover_timeout_ms / 1000.0, "checkpoint", 1,
    "roles", cfg->framework_role, "hostname", cfg->framework_hostname,
    "principal", cfg->mesos_principal, "webui_url", webui,
    "capabilities", "type", 6, "type", 5,
    "PortRangeFrom", cfg->portrange_from, "PortRangeTo", cfg->portrange_to,
    "MesosMasterServer", cfg->mesos_master, "MesosSSL", cfg->mesos_ssl,
    "MesosStreamID", m->stream_id);
  char *text = rec ? json_dumps(rec, JSON_COMPACT) : NULL;
  json_decref(rec);
  return text;
}

static void persist_framework(mesos_t *m)
{
  if(!m->store) {
    m->fw_persisted = true;
    return;
  }
  char key[300];
  snprintf(key, sizeof(key), "%s:framework", m->base.cfg->fw);
  m3s_store_batch_t *b = m3s_store_batch_new(&m->base, ++m->fw_wseq);
  if(m->framework_id) {
    char *rec = framework_record(m);
    m3s_store_batch_set(b, key, rec ? rec : "{}");
    free(rec);
  }
  else {
    m3s_store_batch_del(b, key);
  }
  m->fw_persisted = false;
  m3s_send(m->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
}

/* M3S_STORE_LOADED for "<fw>:framework": the id to subscribe with. */
static void on_framework_loaded(mesos_t *m, json_t *records)
{
  char key[300];
  json_error_t err;
  snprintf(key, sizeof(key), "%s:framework", m->base.cfg->fw);
  const char *text = json_string_value(json_object_get(records, key));
  json_t *rec = text ? json_loads(text, 0, &err) : NULL;
  const char *id = json_string_value(
    json_object_get(json_object_get(json_object_get(rec, "FrameworkInfo"), "id"), "value"));
  free(m->framework_id);
  m->framework_id = id && id[0] ? m3s_xstrdup(id) : NULL;
  m->fw_persisted = true;
  if(m->framework_id)
    m3s_info("framework id %s restored from Redis", m->framework_id);
  else
    m3s_info("no framework id in Redis: registering as a new framework");
  json_decref(rec);
  m->fw_loaded = true;
  if(m->state == SUB_LOADING && m->ready)
    subscribe_now(m);
}

/* Moves root.<outer>.<inner> out of the event: the receiving actor gets the
 * only reference, so no two threads ever touch one JSON value (jansson's
 * reference counts would be shared otherwise). */
static json_t *detach(json_t *root, const char *outer, const char *inner)
{
  json_t *parent = json_object_get(root, outer);
  json_t *v = json_incref(json_object_get(parent, inner));
  json_object_del(parent, inner);
  return v;
}

static void on_subscribed(mesos_t *m, const m3s_event_t *ev)
{
  bool fresh = !m->framework_id || strcmp(m->framework_id, ev->framework_id) != 0;
  free(m->framework_id);
  m->framework_id = m3s_xstrdup(ev->framework_id);
  m->framework_removed = false;
  if(fresh || !m->fw_persisted)
    persist_framework(m);
  m->heartbeat_s = ev->heartbeat_interval_s > 0 ? ev->heartbeat_interval_s : DEFAULT_HEARTBEAT_S;
  m->state = SUB_SUBSCRIBED;
  m->subscriptions++;
  m->redirects = 0;
  m->backoff_ms = m->base.cfg->mesos_backoff_min_ms;
  m3s_info("subscribed to %s as %s%s (heartbeat every %gs)", m->master, m->framework_id,
           fresh ? " (new framework)" : "", m->heartbeat_s);
  m3s_actor_t *sinks[2] = { m->offers_sink, m->update_sink };
  for(int i = 0; i < 2; i++)
    if(sinks[i] && (i == 0 || sinks[1] != sinks[0]))
      m3s_send(sinks[i], m3s_msg_new(M3S_MESOS_SUBSCRIBED, 0, m3s_xstrdup(m->framework_id), NULL));
}

static void on_update(mesos_t *m, m3s_event_t *ev)
{
  m3s_mesos_update_t *u = m3s_xcalloc(1, sizeof(*u));
  m3s_debug("update: task %s %s%s%s", ev->task_id, ev->state, ev->reason ? " " : "",
            ev->reason ? ev->reason : "");
  if(ev->uuid) {
    if(ev->agent_id) {
      u->ack = m3s_call_acknowledge(ev->agent_id, ev->task_id, ev->uuid);
      m3s_call_set_framework_id(u->ack, m->framework_id);
    }
    else {
      m3s_warn("update of task %s has a uuid but no agent id: it cannot be acknowledged",
               ev->task_id);
    }
  }
  /* From here on ev->task_id and the other strings of the status belong to
   * the receiver: not used below. */
  u->status = detach(ev->root, "update", "status");
  if(m->update_sink) {
    m3s_send(m->update_sink, m3s_msg_new(M3S_MESOS_UPDATE, 0, u, m3s_mesos_update_free));
    return;
  }
  /* Nobody persists updates yet: acknowledge at once. */
  if(u->ack) {
    queue_push(&m->queue, u->ack, false);
    u->ack = NULL;
  }
  m3s_mesos_update_free(u);
}

static void on_error_event(mesos_t *m, const char *message)
{
  if(strstr(message, "Framework has been removed")) {
    m3s_error("Mesos has REMOVED framework %s (its failover timeout expired or it was "
              "torn down): its tasks are gone; registering as a new framework",
              m->framework_id ? m->framework_id : "?");
    free(m->framework_id);
    m->framework_id = NULL;
    m->framework_removed = true;
    persist_framework(m);
  }
  else if(strstr(message, "failed over")) {
    m3s_error("the master says framework %s failed over: another scheduler subscribed with "
              "the same framework id", m->framework_id ? m->framework_id : "?");
  }
  else {
    m3s_error("the master sent an error: %s", message);
  }
}

/* One decoded record: returns nonzero to abort the stream. */
static int on_record(void *ctx, const char *rec, size_t len)
{
  mesos_t *m = ctx;
  m3s_event_t ev;
  char err[256];

  m->last_event_ms = m3s_now_ms();
  m->events++;
  if(m3s_event_parse(rec, len, &ev, err, sizeof(err)) != 0) {
    snprintf(m->drop_reason, sizeof(m->drop_reason), "malformed event: %s", err);
    return -EPROTO;
  }
  if(m->state != SUB_SUBSCRIBED && ev.type != M3S_EV_SUBSCRIBED && ev.type != M3S_EV_ERROR) {
    snprintf(m->drop_reason, sizeof(m->drop_reason), "%s event before SUBSCRIBED",
             m3s_event_type_name(ev.type));
    m3s_event_free(&ev);
    return -EPROTO;
  }
  switch(ev.type) {
  case M3S_EV_SUBSCRIBED:
    on_subscribed(m, &ev);
    break;
  case M3S_EV_HEARTBEAT:
    break;
  case M3S_EV_OFFERS:
    if(m->offers_sink)
      m3s_send(m->offers_sink, m3s_msg_new(M3S_MESOS_OFFERS, (int64_t)m->subscriptions,
                                           detach(ev.root, "offers", "offers"), m3s_json_drop));
    else
      decline_offers(m, ev.offers);
    break;
  case M3S_EV_RESCIND:
    if(m->offers_sink)
      m3s_send(m->offers_sink, m3s_msg_new(M3S_MESOS_RESCIND, 0, m3s_xstrdup(ev.offer_id), NULL));
    else
      forget_offer(m, ev.offer_id);
    break;
  case M3S_EV_UPDATE:
    on_update(m, &ev);
    break;
  case M3S_EV_ERROR:
    on_error_event(m, ev.message);
    break;
  case M3S_EV_FAILURE:
    m3s_warn("failure reported by the master: agent %s%s", ev.failure_agent_id ? ev.failure_agent_id : "?",
             ev.failure_status >= 0 ? " (executor exited)" : " lost");
    break;
  default:
    m3s_debug("ignored %s event", m3s_event_type_name(ev.type));
    break;
  }
  m3s_event_free(&ev);
  return 0; /* calls queued here start after curl_multi_perform returns */
}

/* The deepest mailbox among the actors the events go to and the store (a
 * metric: their depth is the only thing read of them). */
static size_t paced_depth(const mesos_t *m)
{
  size_t most = 0;
  for(size_t i = 0; i < m->npaced; i++) {
    size_t d = m3s_actor_depth(m->paced[i]);
    most = d > most ? d : most;
  }
  return most;
}

static size_t stream_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
  mesos_t *m = ud;
  size_t len = size * nmemb;
  if(m->stream_status == 200 && paced_depth(m) >= PACE_DEPTH) {
    m->stream_paused = true; /* curl keeps the data; mesos_wait resumes */
    m->stream_pauses++;
    return CURL_WRITEFUNC_PAUSE;
  }
  if(m->stream_status != 200) {
    size_t room = sizeof(m->errbody) - 1 - m->errlen;
    size_t n = len < room ? len : room;
    memcpy(m->errbody + m->errlen, data, n);
    m->errlen += n;
    m->errbody[m->errlen] = '\0';
    return len;
  }
  int rc = m3s_recordio_feed(&m->rio, data, len, on_record, m);
  if(rc == 0)
    return len;
  if(!m->drop_reason[0])
    snprintf(m->drop_reason, sizeof(m->drop_reason), "%s",
             rc == -E2BIG ? "event larger than MESOS_MAX_EVENT_SIZE" : "malformed RecordIO frame");
  return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
}

static void stream_cleanup(mesos_t *m)
{
  m->stream_paused = false;
  if(m->stream) {
    curl_multi_remove_handle(m->multi, m->stream);
    curl_easy_cleanup(m->stream);
    m->stream = NULL;
  }
  curl_slist_free_all(m->stream_headers);
  m->stream_headers = NULL;
  free(m->stream_body);
  m->stream_body = NULL;
}

static void subscribe_now(mesos_t *m)
{
  const m3s_config_t *cfg = m->base.cfg;
  m3s_subscribe_opts_t opts = {
    .framework_id = m->framework_id,
    .failover_timeout_s = (double)cfg->mesos_failover_timeout_ms / 1000.0,
    .https_webui = cfg->ssl_crt_pem[0] != '\0',
  };
  json_t *call = m3s_call_subscribe(cfg, &opts);
  m->stream_body = m3s_call_dump(call);
  json_decref(call);

  m->stream = curl_easy_init();
  if(!m->stream) {
    free(m->stream_body);
    m->stream_body = NULL;
    subscription_lost(m, CURLE_OUT_OF_MEMORY);
    return;
  }
  set_common(m, m->stream);
  m->stream_headers = curl_slist_append(NULL, "Content-Type: application/json");
  m->stream_headers = curl_slist_append(m->stream_headers, "Accept: application/json");
  m->stream_headers = curl_slist_append(m->stream_headers, "Expect:");
  curl_easy_setopt(m->stream, CURLOPT_HTTPHEADER, m->stream_headers);
  curl_easy_setopt(m->stream, CURLOPT_POSTFIELDS, m->stream_body);
  curl_easy_setopt(m->stream, CURLOPT_HEADERFUNCTION, stream_header_cb);
  curl_easy_setopt(m->stream, CURLOPT_HEADERDATA, m);
  curl_easy_setopt(m->stream, CURLOPT_WRITEFUNCTION, stream_write_cb);
  curl_easy_setopt(m->stream, CURLOPT_WRITEDATA, m);

  m->stream_status = 0;
  m->stream_id[0] = m->location[0] = m->errbody[0] = m->drop_reason[0] = '\0';
  m->errlen = 0;
  m3s_recordio_reset(&m->rio);
  m->state = SUB_CONNECTING;
  m->started_ms = m->last_event_ms = m3s_now_ms();
  m3s_info("subscribing to %s%s%s", m->master, m->framework_id ? " as " : "",
           m->framework_id ? m->framework_id : " as a new framework");
  CURLMcode mc = curl_multi_add_handle(m->multi, m->stream);
  if(mc != CURLM_OK) {
    m3s_error("cannot start the subscription: %s", curl_multi_strerror(mc));
    subscription_lost(m, CURLE_FAILED_INIT);
  }
}

/* Exponential backoff with jitter: a random delay in [d/2, d], d doubling
 * from MESOS_BACKOFF_MIN up to MESOS_BACKOFF_MAX. */
static int64_t next_backoff(mesos_t *m)
{
  const m3s_config_t *cfg = m->base.cfg;
  int64_t max = cfg->mesos_backoff_max_ms > cfg->mesos_backoff_min_ms ? cfg->mesos_backoff_max_ms
                                                                      : cfg->mesos_backoff_min_ms;
  int64_t d = m->backoff_ms;
  m->backoff_ms = d * 2 > max ? max : d * 2;
  return d / 2 + (int64_t)(rand_r(&m->rng) % (unsigned)(d / 2 + 1));
}

static void reconnect_in(mesos_t *m, int64_t delay_ms)
{
  if(m->reconnect_timer)
    m3s_timer_cancel(&m->base, m->reconnect_timer);
  m->reconnect_timer = m3s_timer_start(&m->base, T_RECONNECT, delay_ms, 0);
  m->state = SUB_WAITING;
}

/* Leaves the call in flight, if any, on the queue or drops it. */
static void abort_inflight_call(mesos_t *m)
{
  if(!m->call)
    return;
  curl_multi_remove_handle(m->multi, m->call);
  curl_easy_cleanup(m->call);
  m->call = NULL;
  curl_slist_free_all(m->call_headers);
  m->call_headers = NULL;
  free(m->call_body);
  m->call_body = NULL;
  queue_push(&m->queue, m->inflight, true);
  m->inflight = NULL;
  m->call_retries = 0;
}

/* The one place where a subscription ends. res is the transfer's result
 * (CURLE_OK when it ended normally or was dropped by us with drop_reason). */
static void subscription_lost(mesos_t *m, CURLcode res)
{
  bool was_subscribed = m->state == SUB_SUBSCRIBED;
  long status = m->stream_status;
  int64_t delay;

  stream_cleanup(m);
  abort_inflight_call(m);
  queue_forget_stale(m);
  m->reconnects++;

  if(m->drop_reason[0]) {
    m3s_warn("dropping the subscription: %s", m->drop_reason);
    delay = next_backoff(m);
  }
  else if(res != CURLE_OK) {
    m3s_warn("connection to the master %s failed: %s", m->master, curl_easy_strerror(res));
    delay = next_backoff(m);
  }
  else if(status == 307 && m->location[0]) {
    /* Location is protocol-relative: //host:port/master/api/v1/scheduler */
    const char *hp = m->location;
    while(*hp == '/')
      hp++;
    if(!strncmp(m->location, "http://", 7) || !strncmp(m->location, "https://", 8))
      hp = strstr(m->location, "//") + 2;
    size_t n = strcspn(hp, "/");
    if(n == 0 || n >= sizeof(m->master)) {
      m3s_warn("redirect from %s to an unusable location \"%s\"", m->master, m->location);
      delay = next_backoff(m);
    }
    else {
      char from[sizeof(m->master)];
      snprintf(from, sizeof(from), "%s", m->master);
      memcpy(m->master, hp, n);
      m->master[n] = '\0';
      m3s_info("%s is not the leading master: following the redirect to %s", from, m->master);
      delay = ++m->redirects <= MAX_REDIRECTS ? 0 : next_backoff(m);
    }
  }
  else if(status == 401 || status == 403) {
    m3s_error("the master refused the subscription with HTTP %ld (%s): check MESOS_USERNAME, "
              "MESOS_PASSWORD and MESOS_PRINCIPAL; retrying every %llds", status, m->errbody,
              (long long)(m->base.cfg->mesos_backoff_max_ms / 1000));
    m->backoff_ms = m->base.cfg->mesos_backoff_max_ms;
    delay = next_backoff(m);
  }
  else if(status != 200) {
    m3s_warn("the master answered the subscription with HTTP %ld: %s", status, m->errbody);
    delay = next_backoff(m);
  }
  else if(m->framework_removed) {
    delay = 0; /* register anew at once */
  }
  else {
    m3s_warn("the master closed the subscription stream%s",
             was_subscribed ? "" : " before SUBSCRIBED");
    delay = next_backoff(m);
  }
  /* A leader we were redirected to that fails sends us back to the
   * configured master, which knows the current leader. */
  if(delay > 0 && strcmp(m->master, m->base.cfg->mesos_master) != 0 && status != 307) {
    snprintf(m->master, sizeof(m->master), "%s", m->base.cfg->mesos_master);
    m->redirects = 0;
  }
  m3s_info("re-subscribing in %lld ms", (long long)delay);
  reconnect_in(m, delay);
}

/* ---- calls --------------------------------------------------------------- */

static size_t call_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
  mesos_t *m = ud;
  size_t len = size * nmemb;
  size_t room = sizeof(m->call_resp) - 1 - m->call_resplen;
  size_t n = len < room ? len : room;
  memcpy(m->call_resp + m->call_resplen, data, n);
  m->call_resplen += n;
  m->call_resp[m->call_resplen] = '\0';
  return len;
}

/* An acknowledgement carries the framework id of the update it answers
 * (set in on_update). One that waited (for Redis) while the master removed
 * that framework and a new one was registered belongs to nobody: the new
 * framework must not acknowledge it. */
static bool ack_of_other_framework(const mesos_t *m, const json_t *call)
{
  if(strcmp(m3s_call_type(call), "ACKNOWLEDGE"))
    return false;
  const char *fid =
    json_string_value(json_object_get(json_object_get(call, "framework_id"), "value"));
  if(!fid || !m->framework_id || !strcmp(fid, m->framework_id))
    return false;
  m3s_info("acknowledgement of an update to framework %s dropped: now %s", fid,
           m->framework_id);
  return true;
}

static void pump_calls(mesos_t *m)
{
  char sid[160];
  if(m->draining || m->state != SUB_SUBSCRIBED || m->call || m->retry_armed || !m->queue.n)
    return;
  for(;;) {
    if(!m->queue.n)
      return;
    /* Nothing is launched under a framework id that Redis does not hold
     * yet: a restarted daemon must find its tasks again. The ACCEPTs wait
     * in order; the calls behind them (ACKNOWLEDGE, KILL, DECLINE, ...) go
     * on. */
    m->inflight = m->fw_persisted ? queue_pop(&m->queue) : queue_take_not_accept(&m->queue);
    if(!m->inflight)
      return;
    if(!ack_of_other_framework(m, m->inflight))
      break;
    json_decref(m->inflight);
    m->inflight = NULL;
  }
  m3s_call_set_framework_id(m->inflight, m->framework_id);
  m->call_body = m3s_call_dump(m->inflight);
  m->call = curl_easy_init();
  if(!m->call) {
    m3s_error("cannot create a transfer for %s", m3s_call_type(m->inflight));
    json_decref(m->inflight);
    m->inflight = NULL;
    free(m->call_body);
    m->call_body = NULL;
    return;
  }
  set_common(m, m->call);
  snprintf(sid, sizeof(sid), "Mesos-Stream-Id: %s", m->stream_id);
  m->call_headers = curl_slist_append(NULL, "Content-Type: application/json");
  m->call_headers = curl_slist_append(m->call_headers, "Accept: application/json");
  m->call_headers = curl_slist_append(m->call_headers, sid);
  m->call_headers = curl_slist_append(m->call_headers, "Expect:");
  curl_easy_setopt(m->call, CURLOPT_HTTPHEADER, m->call_headers);
  curl_easy_setopt(m->call, CURLOPT_POSTFIELDS, m->call_body);
  curl_easy_setopt(m->call, CURLOPT_TIMEOUT_MS, (long)m->base.cfg->mesos_call_timeout_ms);
  curl_easy_setopt(m->call, CURLOPT_WRITEFUNCTION, call_write_cb);
  curl_easy_setopt(m->call, CURLOPT_WRITEDATA, m);
  m->call_resplen = 0;
  m->call_resp[0] = '\0';
  m3s_debug("call %s", m3s_call_type(m->inflight));
  CURLMcode mc = curl_multi_add_handle(m->multi, m->call);
  if(mc != CURLM_OK) {
    m3s_error("cannot send %s: %s", m3s_call_type(m->inflight), curl_multi_strerror(mc));
    abort_inflight_call(m);
  }
}

static void call_done(mesos_t *m, CURLcode res)
{
  long status = 0;
  json_t *call = m->inflight;
  const char *type = m3s_call_type(call);
  bool stale = false;

  curl_easy_getinfo(m->call, CURLINFO_RESPONSE_CODE, &status);
  curl_multi_remove_handle(m->multi, m->call);
  curl_easy_cleanup(m->call);
  m->call = NULL;
  curl_slist_free_all(m->call_headers);
  m->call_headers = NULL;
  free(m->call_body);
  m->call_body = NULL;
  m->inflight = NULL;

  if(res == CURLE_OK && status == 202) {
    m->calls_ok++;
    m->call_retries = 0;
    json_decref(call);
  }
  else if(res != CURLE_OK && m3s_call_idempotent(call) && m->call_retries < CALL_RETRIES) {
    m->call_retries++;
    m3s_warn("%s failed (%s): retry %d of %d", type, curl_easy_strerror(res), m->call_retries,
             CALL_RETRIES);
    queue_push(&m->queue, call, true);
    m->retry_armed = true;
    m3s_timer_start(&m->base, T_CALL_RETRY, CALL_RETRY_DELAY_MS, 0);
  }
  else {
    m->calls_failed++;
    m->call_retries = 0;
    if(res != CURLE_OK)
      m3s_error("%s failed: %s (not retried)", type, curl_easy_strerror(res));
    else
      m3s_error("%s refused by the master: HTTP %ld: %s", type, status, m->call_resp);
    /* 307: the leader changed. 403: our subscription is gone. 400 about the
     * stream id: the master has a newer subscription than ours; 400 "cannot
     * be found": the master forgot or removed the framework. Each means we
     * must subscribe again. */
    stale = status == 307 || status == 403 ||
            (status == 400 && (strstr(m->call_resp, "stream ID") != NULL ||
                               strstr(m->call_resp, "Framework cannot be found") != NULL));
    if(stale && !bound_to_subscription(call))
      queue_push(&m->queue, call, true);
    else
      json_decref(call);
  }
  if(stale && m->state == SUB_SUBSCRIBED) {
    /* After a 307 the configured master redirects the next SUBSCRIBE to the
     * new leader. */
    snprintf(m->drop_reason, sizeof(m->drop_reason), "a call was answered HTTP %ld", status);
    subscription_lost(m, CURLE_OK);
    return;
  }
  pump_calls(m);
}

/* ---- actor hooks ---------------------------------------------------------- */

static void process_done(mesos_t *m)
{
  CURLMsg *msg;
  int left;
  while((msg = curl_multi_info_read(m->multi, &left))) {
    if(msg->msg != CURLMSG_DONE)
      continue;
    CURL *h = msg->easy_handle;
    CURLcode res = msg->data.result;
    if(h == m->stream) {
      /* A write error is ours when a callback set drop_reason. */
      if(res == CURLE_WRITE_ERROR && m->drop_reason[0])
        res = CURLE_OK;
      subscription_lost(m, res);
    }
    else if(h == m->call) {
      call_done(m, res);
    }
  }
}

static void mesos_wait(m3s_actor_t *self, int wake_fd, int timeout_ms)
{
  mesos_t *m = (mesos_t *)self;
  struct curl_waitfd extra = { .fd = wake_fd, .events = CURL_WAIT_POLLIN };
  long curl_ms = -1;
  int running;

  curl_multi_timeout(m->multi, &curl_ms);
  if(curl_ms >= 0 && (timeout_ms < 0 || curl_ms < timeout_ms))
    timeout_ms = (int)curl_ms;
  if(timeout_ms < 0)
    timeout_ms = WATCHDOG_PERIOD_MS;
  if(m->stream_paused && timeout_ms > 1)
    timeout_ms = 1; /* nothing wakes us when the receivers catch up: look again soon */
  curl_multi_poll(m->multi, &extra, 1, timeout_ms, NULL);
  if(m->stream_paused && paced_depth(m) <= PACE_DEPTH / 2) {
    m->stream_paused = false;
    m->last_event_ms = m3s_now_ms(); /* the watchdog's clock starts again */
    curl_easy_pause(m->stream, CURLPAUSE_CONT); /* may call stream_write_cb at once */
  }
  curl_multi_perform(m->multi, &running);
  process_done(m);
  /* Events handled inside curl's callbacks may have queued calls, and curl
   * refuses new transfers from within its own callbacks. */
  pump_calls(m);
}

static void watchdog(mesos_t *m)
{
  int64_t silent = m3s_now_ms() - m->last_event_ms;
  double hb = m->heartbeat_s > 0 ? m->heartbeat_s : DEFAULT_HEARTBEAT_S;
  int64_t limit = (int64_t)(hb * 1000.0 * HEARTBEAT_MISSES);
  /* While the stream is paused we are the ones not reading: the master's
   * heartbeats wait in the socket, however long the receivers take. */
  if(m->state == SUB_WAITING || m->state == SUB_LOADING || m->stream_paused || silent <= limit)
    return;
  snprintf(m->drop_reason, sizeof(m->drop_reason),
           "no event from the master for %.1fs (%d heartbeat intervals)", (double)silent / 1000.0,
           HEARTBEAT_MISSES);
  subscription_lost(m, CURLE_OK);
}

static json_t *status_json(const mesos_t *m)
{
  return json_pack("{s:s, s:s?, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                   "state", state_names[m->state], "framework_id", m->framework_id,
                   "master", m->master, "stream_id", m->stream_id,
                   "subscriptions", (json_int_t)m->subscriptions,
                   "reconnects", (json_int_t)m->reconnects, "events", (json_int_t)m->events,
                   "calls_ok", (json_int_t)m->calls_ok,
                   "calls_failed", (json_int_t)m->calls_failed,
                   "calls_queued", (json_int_t)m->queue.n,
                   "offers_declined", (json_int_t)m->offers_declined,
                   "stream_pauses", (json_int_t)m->stream_pauses);
}

static void mesos_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  mesos_t *m = (mesos_t *)self;
  switch(msg->type) {
  case T_RECONNECT:
    m->reconnect_timer = 0;
    if(m->state == SUB_WAITING)
      subscribe_now(m);
    break;
  case T_WATCHDOG:
    watchdog(m);
    break;
  case T_CALL_RETRY:
    m->retry_armed = false;
    pump_calls(m);
    break;
  case M3S_MESOS_CALL:
    if(msg->arg && (msg->arg != (int64_t)m->subscriptions || m->state != SUB_SUBSCRIBED)) {
      /* An answer to offers of an earlier subscription: they died with it. */
      m3s_debug("%s for offers of an earlier subscription dropped",
                m3s_call_type(msg->payload) ? m3s_call_type(msg->payload) : "call");
      break;
    }
    if(msg->payload) {
      queue_push(&m->queue, m3s_msg_take(msg), false);
      pump_calls(m);
    }
    break;
  case M3S_STORE_LOADED:
    on_framework_loaded(m, msg->payload);
    break;
  case M3S_MESOS_READY:
    m->ready = true;
    if(m->state == SUB_LOADING && m->fw_loaded)
      subscribe_now(m);
    break;
  case M3S_STORE_WRITTEN:
    if(msg->arg != m->fw_wseq)
      break; /* an earlier write: a later one is on its way */
    if(msg->flags & M3S_STORE_FAILED) {
      /* Launches stay held; the next subscription writes it again. */
      m3s_error("the framework record cannot be stored: %s; no task is launched until it is",
                (const char *)msg->payload);
      break;
    }
    m->fw_persisted = true;
    pump_calls(m);
    break;
  case M3S_MESOS_FORGET_ID: {
    int64_t forgot = 0;
    if(m->state != SUB_SUBSCRIBED && m->framework_id) {
      m3s_warn("framework id %s forgotten on request: the next subscription registers a new "
               "framework", m->framework_id);
      free(m->framework_id);
      m->framework_id = NULL;
      persist_framework(m);
      forgot = 1;
    }
    m3s_msg_reply(msg, m3s_msg_new(M3S_MESOS_FORGET_ID, forgot, NULL, NULL));
    break;
  }
  case M3S_MESOS_STATUS:
    m3s_msg_reply(msg, m3s_msg_new(M3S_MESOS_STATUS, 0, status_json(m), m3s_json_drop));
    break;
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
}

static int mesos_start(m3s_actor_t *self)
{
  mesos_t *m = (mesos_t *)self;
  const m3s_config_t *cfg = self->cfg;
  m->multi = curl_multi_init();
  if(!m->multi)
    return -ENOMEM;
  snprintf(m->master, sizeof(m->master), "%s", cfg->mesos_master);
  m3s_recordio_init(&m->rio, (size_t)cfg->mesos_max_event_size);
  m->backoff_ms = cfg->mesos_backoff_min_ms;
  m->heartbeat_s = DEFAULT_HEARTBEAT_S;
  m->rng = (unsigned)m3s_now_ms() ^ (unsigned)(uintptr_t)m;
  m3s_timer_start(self, T_WATCHDOG, WATCHDOG_PERIOD_MS, WATCHDOG_PERIOD_MS);
  /* The framework id comes from Redis before the first SUBSCRIBE: one
   * without it would register a second framework and orphan the tasks. */
  m->ready = !m->offers_sink;
  m->store = m3s_system_find(self->sys, "store");
  const char *roles[] = { "agent", "datastore", "server" };
  m3s_actor_t *sinks[] = { m->update_sink, m->offers_sink };
  for(size_t i = 0; i < 2; i++)
    if(sinks[i] && (i == 0 || sinks[1] != sinks[0]))
      m->paced[m->npaced++] = sinks[i];
  for(size_t i = 0; i < 3; i++) {
    m3s_actor_t *a = m3s_system_find(self->sys, roles[i]);
    if(a)
      m->paced[m->npaced++] = a;
  }
  if(m->store) {
    m->paced[m->npaced++] = m->store; /* every update becomes a write */
    m->state = SUB_LOADING;
    m3s_send(m->store, m3s_msg_new(M3S_STORE_LOAD, 0,
                                   m3s_store_load_new("framework", self, 0), m3s_store_load_free));
  }
  else {
    m->fw_persisted = m->fw_loaded = true;
    if(m->ready)
      subscribe_now(m);
    else
      m->state = SUB_LOADING;
  }
  return 0;
}

static void mesos_stop(m3s_actor_t *self)
{
  mesos_t *m = (mesos_t *)self;
  /* No TEARDOWN: the framework and its tasks must survive a restart of the
   * daemon (failover_timeout). A call on the wire may finish (for at most
   * STOP_DRAIN_MS): cut short, the master would read half a body. */
  m->draining = true;
  for(int64_t until = m3s_now_ms() + STOP_DRAIN_MS; m->call && m3s_now_ms() < until;) {
    int running;
    curl_multi_poll(m->multi, NULL, 0, 20, NULL);
    curl_multi_perform(m->multi, &running);
    process_done(m);
  }
  stream_cleanup(m);
  abort_inflight_call(m);
  json_t *c;
  while((c = queue_pop(&m->queue)))
    json_decref(c);
  free(m->queue.items);
  m3s_recordio_free(&m->rio);
  if(m->multi)
    curl_multi_cleanup(m->multi);
  free(m->framework_id);
}

const m3s_actor_ops_t m3s_mesos_ops = {
  .name = "mesos",
  .size = sizeof(mesos_t),
  .start = mesos_start,
  .handle = mesos_handle,
  .wait = mesos_wait,
  .stop = mesos_stop,
};
