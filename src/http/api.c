/* The REST API actor (see include/m3s/api.h for the contract).
 *
 * DESIGN. One catch-all civetweb request handler. For every request, on the
 * civetweb worker:
 *   1. route: the %-decoded path, empty segments dropped (the mesos-cli
 *      plugin sends "//api/..."), is matched literally against the route
 *      table; a path that matches with another method is a 405, no match
 *      a 404;
 *   2. authenticate (all but /health and /api/m3s/versions, and before any
 *      404/405 so that unauthenticated clients learn nothing about routes):
 *      HTTP Basic, compared in constant time as SHA-256 digests; a client
 *      (IP) that fails auth_fail_max times within the window is answered
 *      429 without checking its credentials until the window ends;
 *   3. refuse a request body (no endpoint takes one) beyond a small limit;
 *   4. run the route's handler, which asks the owning actor(s) with a
 *      request message and a reply slot, waits at most call_timeout_ms and
 *      answers with the original's body and content type, or a JSON error.
 *      Role STATUS requests are shared between concurrent requests (see
 *      "flights" below).
 * Every answer is counted by route template and status for /metrics.
 *
 * Thread safety: the fields of api_t under "set before civetweb starts"
 * are written by the actor's thread in start() before mg_start creates the
 * workers and are read-only afterwards; counters are atomics; the failure
 * table, the flights and the rendered status each have their own mutex,
 * never held while another is taken or while waiting for an actor.
 */
#include <civetweb.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "m3s/api.h"
#include "m3s/kube.h"
#include "m3s/log.h"
#include "m3s/mesos.h"
#include "m3s/offers.h"
#include "m3s/reply.h"
#include "m3s/role.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"
#include "http-int.h"

#ifndef M3S_BUILD_DATE
#define M3S_BUILD_DATE ""
#endif

#define DEFAULT_THREADS 64
#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define DEFAULT_KEEP_ALIVE_TIMEOUT_MS 2000
#define DEFAULT_AUTH_FAIL_MAX 10
#define DEFAULT_AUTH_FAIL_WINDOW_MS 60000
#define DEFAULT_STATUS_MAX_AGE_MS 100
#define MAX_REQUEST_HEAD 16384   /* request line + headers (civetweb) */
#define MAX_BODY 4096            /* no endpoint takes a body */
#define MAX_SEGMENTS 8
#define MAX_AUTH_HEADER 1024
#define FAIL_SLOTS 256

#define CT_JSON "application/json"
#define CT_TEXT "text/plain; charset=utf-8"
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"

typedef struct api api_t;
typedef struct route route_t;

/* What the router extracted from the path. */
typedef struct req {
  const char *ip;
  const char *count;      /* {count} / {value} segment */
  m3s_role_t comp;        /* {comp} */
  int res;                /* {res}: m3s_role_resource_kind_t */
  const char *res_name;
} req_t;

typedef int (*handler_fn)(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q);

enum { R_NOAUTH = 1u, R_TEXT = 2u };

struct route {
  const char *method;
  const char *path;     /* template: literal segments, {count}, {value},
                           {comp} (ds|server|agent), {res}; the metrics label */
  handler_fn fn;
  int arg;
  unsigned flags;
};

typedef struct fail_slot {
  char ip[48];          /* "" = free */
  int64_t since_ms;     /* first failure of the current window */
  int count;
} fail_slot_t;

static const int codes[] = { 0, 200, 400, 401, 404, 405, 406, 408, 409, 411, 413, 414,
                             429, 431, 500, 501, 503, 505 };
#define NCODES (sizeof(codes) / sizeof(codes[0]))

struct api {
  m3s_actor_t base;
  /* set before civetweb starts, read-only afterwards */
  m3s_api_opts_t opts;
  char bind_host[64];
  struct mg_context *mg;
  SSL_CTX *ssl;
  m3s_actor_t *roles[4];       /* indexed by m3s_role_t */
  m3s_actor_t *offers, *mesos, *store, *kube;
  bool auth;
  unsigned char cred[32];      /* SHA-256 of user '\0' password */
  EVP_MD *sha256;              /* fetched once (an implicit fetch per digest
                                  costs a lookup in OpenSSL 3) */
  /* shared with civetweb's threads */
  _Atomic int port;
  _Atomic uint64_t *requests;  /* [nroutes + 1][NCODES] */
  _Atomic uint64_t auth_failures, auth_throttled;
  _Atomic int nfail;           /* used slots, to skip the lock when 0 */
  _Atomic uint64_t epoch;      /* bumped by every change made through the API */
  pthread_mutex_t fl_lock;     /* role STATUS flights (below) */
  pthread_cond_t fl_cond;      /* CLOCK_MONOTONIC; broadcast when one lands */
  struct flight *flights[4];   /* under fl_lock: the latest, by role */
  uint64_t flight_ids;         /* under fl_lock */
  pthread_mutex_t out_lock;    /* status/m3s rendered from flights out_ids */
  uint64_t out_ids[4];         /* under out_lock: the roles' flights, the kube version */
  char *out_body;              /* under out_lock */
  bool fl_init;                /* actor thread only */
  pthread_mutex_t fail_lock;
  bool fail_lock_init;         /* actor thread only */
  fail_slot_t fails[FAIL_SLOTS];
};

/* ---- small helpers -------------------------------------------------------- */

static const char *const role_actor[4] = { NULL, "datastore", "server", "agent" };
#define SRC_KUBE 0 /* flights: the kube actor's brief status, in the slot no role uses */

static const struct {
  const char *name;
  m3s_role_resource_kind_t kind;
} resources[] = {
  { "cpus", M3S_RES_CPU },      { "cpusLimit", M3S_RES_CPU_LIMIT },
  { "memory", M3S_RES_MEM },    { "memoryLimit", M3S_RES_MEM_LIMIT },
  { "disk", M3S_RES_DISK },     { "diskLimit", M3S_RES_DISK_LIMIT },
};

/* Log-safe copy of request text: printable ASCII only, bounded. */
static void printable(char *out, size_t len, const char *in)
{
  size_t o = 0;
  for(const char *p = in ? in : ""; *p && o + 1 < len; p++)
    out[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
  out[o] = '\0';
}

/* ---- responses ------------------------------------------------------------ */

/* Appends "name: value\r\n" to the header buffer (truncation is caught by
 * the caller through *n). */
static void hdr(char *buf, size_t cap, size_t *n, const char *name, const char *value)
{
  if(*n < cap)
    *n += (size_t)snprintf(buf + *n, cap - *n, "%s: %s\r\n", name, value);
}

/* Is the connection closed after this answer? civetweb's rules (a request
 * that asked for it, HTTP/1.0 without keep-alive, a 401) plus ours: after
 * a malformed request or an oversized body nothing more is read from it.
 * Said explicitly so that clients know. */
static bool closing(struct mg_connection *c, const struct mg_request_info *ri, int status)
{
  const char *conn = mg_get_header(c, "Connection");
  bool v10 = ri->http_version && !strcmp(ri->http_version, "1.0");
  if(status == 401 || status == 413 || status == 505 || status == 400)
    return true;
  if(conn)
    return strcasestr(conn, "keep-alive") == NULL;
  return v10;
}

/* One complete response, written in one piece. ctype NULL: no Content-Type
 * (as the original's empty kubeconfig); service NULL: no Api-Service.
 *
 * The status line and headers are ours rather than civetweb's
 * mg_response_header_*: civetweb 1.15 formats its Date header with gmtime(),
 * whose static buffer its worker threads then share (a data race, caught by
 * ThreadSanitizer); gmtime_r has none. */
static int respond(struct mg_connection *c, int status, const char *ctype, const char *service,
                   const char *body, size_t len, const char *hname, const char *hvalue)
{
  const struct mg_request_info *ri = mg_get_request_info(c);
  bool head = ri->request_method && !strcmp(ri->request_method, "HEAD");
  char date[64], clen[32], small[4096];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  snprintf(clen, sizeof(clen), "%zu", len);

  size_t n = (size_t)snprintf(small, sizeof(small), "HTTP/1.1 %d %s\r\n", status,
                              mg_get_response_code_text(c, status));
  hdr(small, sizeof(small), &n, "Date", date);
  if(ctype)
    hdr(small, sizeof(small), &n, "Content-Type", ctype);
  if(service)
    hdr(small, sizeof(small), &n, "Api-Service", service);
  hdr(small, sizeof(small), &n, "Cache-Control", "no-store");
  hdr(small, sizeof(small), &n, "X-Content-Type-Options", "nosniff");
  if(hname)
    hdr(small, sizeof(small), &n, hname, hvalue);
  hdr(small, sizeof(small), &n, "Content-Length", clen);
  if(closing(c, ri, status)) {
    hdr(small, sizeof(small), &n, "Connection", "close");
    mg_disable_connection_keep_alive(c);
  }
  else if(ri->http_version && !strcmp(ri->http_version, "1.0"))
    hdr(small, sizeof(small), &n, "Connection", "keep-alive");
  if(n + 2 >= sizeof(small)) { /* cannot happen with our headers */
    mg_disable_connection_keep_alive(c);
    return status;
  }
  memcpy(small + n, "\r\n", 2);
  n += 2;
  if(head)
    len = 0;
  if(n + len <= sizeof(small)) {
    memcpy(small + n, body, len);
    mg_write(c, small, n + len);
  }
  else {
    mg_write(c, small, n);
    mg_write(c, body, len);
  }
  return status;
}

static int respond_str(struct mg_connection *c, int status, const char *ctype, const char *body)
{
  return respond(c, status, ctype, "v0", body, strlen(body), NULL, NULL);
}

/* {"error": msg} with an optional extra header. */
static int error_h(struct mg_connection *c, int status, const char *hname, const char *hvalue,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int error_h(struct mg_connection *c, int status, const char *hname, const char *hvalue,
                   const char *fmt, ...)
{
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  json_t *j = json_pack("{s:s}", "error", msg);
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  const char *text = body ? body : "{\"error\":\"internal error\"}";
  respond(c, status, CT_JSON, "v0", text, strlen(text), hname, hvalue);
  free(body);
  return status;
}

#define error_json(c, status, ...) error_h((c), (status), NULL, NULL, __VA_ARGS__)

static int respond_json(struct mg_connection *c, json_t *j)
{
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if(!body)
    return error_json(c, 500, "cannot encode the answer");
  int st = respond_str(c, 200, CT_JSON, body);
  free(body);
  return st;
}

/* ---- asking actors ---------------------------------------------------------- */

typedef struct ask {
  m3s_actor_t *to;
  const char *name;
  uint32_t type;
  int64_t arg;
  void *payload;             /* taken (dropped with free() on failure) */
  m3s_reply_t *slot;
  int rc;
  m3s_msg_t *ans;            /* owned; m3s_msg_free */
} ask_t;

/* Sends every request first, then waits for all of them within one
 * deadline, so that n slow actors cost one timeout, not n. The same
 * protocol as m3s_call (soft mailbox limit, reference-counted slot). */
static void ask_all(api_t *a, ask_t *q, size_t n)
{
  for(size_t i = 0; i < n; i++) {
    q[i].slot = NULL;
    q[i].ans = NULL;
    m3s_msg_t *m = m3s_msg_new(q[i].type, q[i].arg, q[i].payload, free);
    q[i].payload = NULL;
    if(!q[i].to) {
      q[i].rc = -ENOENT;
      m3s_msg_free(m);
      continue;
    }
    size_t limit = q[i].to->ops->mailbox_limit ? q[i].to->ops->mailbox_limit
                                                : M3S_MAILBOX_SOFT_LIMIT;
    if(m3s_actor_depth(q[i].to) >= limit) {
      q[i].rc = -EAGAIN;
      m3s_msg_free(m);
      continue;
    }
    q[i].slot = m3s_reply_new();
    m->reply = m3s_reply_ref(q[i].slot);
    m3s_send(q[i].to, m);
    q[i].rc = 0;
  }
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  for(size_t i = 0; i < n; i++) {
    if(!q[i].slot)
      continue;
    int64_t left = deadline - m3s_now_ms();
    q[i].rc = m3s_reply_wait(q[i].slot, left > 0 ? (int)left : 0, &q[i].ans);
    m3s_reply_unref(q[i].slot);
    q[i].slot = NULL;
  }
}

static void ask_free(ask_t *q, size_t n)
{
  for(size_t i = 0; i < n; i++)
    m3s_msg_free(q[i].ans);
}

/* The 503 (500 for a malformed answer) for a failed request to `name`. */
static int unavailable_rc(struct mg_connection *c, const api_t *a, const char *name, int rc)
{
  switch(rc) {
  case -ENOENT:
    return error_json(c, 503, "%s is not running", name);
  case -EAGAIN:
    return error_json(c, 503, "%s is overloaded; retry later", name);
  case -ETIMEDOUT:
    return error_json(c, 503, "%s did not answer within %d ms", name, a->opts.call_timeout_ms);
  case -EPROTO:
    return error_json(c, 500, "%s answered without a status object", name);
  default:
    return error_json(c, 503, "%s dropped the request (stopping?)", name);
  }
}

static int unavailable(struct mg_connection *c, const api_t *a, const ask_t *q)
{
  return unavailable_rc(c, a, q->name, q->rc);
}

/* One request; returns 0 with q->ans set, or the status already sent. */
static int ask_one(api_t *a, struct mg_connection *c, ask_t *q)
{
  ask_all(a, q, 1);
  return q->rc ? unavailable(c, a, q) : 0;
}

/* The json_t * payload of an answer (new reference, moved out), or NULL. */
static json_t *answer_json(m3s_msg_t *ans)
{
  json_t *j = ans ? m3s_msg_take(ans) : NULL;
  if(j && !json_is_object(j)) {
    json_decref(j);
    j = NULL;
  }
  return j;
}

/* ---- shared role STATUS requests ---------------------------------------------- */

/* Status endpoints need the roles' M3S_ROLE_STATUS and the kube actor's
 * brief M3S_KUBE_STATUS (source SRC_KUBE, the slot no role uses). Requests
 * for the same source share one request to it (a "flight"): the first
 * sends it, the others
 * that arrive while it is in the air wait for its answer, and those that
 * arrive within status_max_age_ms after it landed take that answer without
 * waiting at all (a worker that never blocks is what keeps a busy status
 * endpoint near the speed of a constant answer). Answers are thus at most
 * that old; and no request uses a flight sent before a change made through
 * the API (the epoch below), so a client that scaled and then asks sees its
 * change. Failed flights are never reused. */
typedef struct flight {
  _Atomic unsigned refs; /* the table's, the sender's, the waiters' */
  bool done;             /* under fl_lock */
  int rc;                /* written by the sender before done */
  json_t *answer;        /* idem; read-only once done; freed with the last ref */
  int64_t landed_ms;     /* idem */
  uint64_t epoch;
  uint64_t id;           /* unique: names the answer in the rendered cache */
  m3s_reply_t *slot;     /* the sender's */
} flight_t;

typedef struct ticket {
  flight_t *f;
  int role;
  bool sender;
  bool landed;           /* it had landed when we joined: no wait, no lock */
} ticket_t;

static void changed(api_t *a)
{
  atomic_fetch_add_explicit(&a->epoch, 1, memory_order_acq_rel);
}

/* Drops one reference; the last frees. acq_rel: every holder's reads of the
 * answer happen before the free. */
static void flight_unref(flight_t *f)
{
  if(atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  json_decref(f->answer);
  free(f);
}

/* Joins each role's flight, or sends a new one: one lock for them all. */
static void status_begin(api_t *a, const int *roles, size_t n, ticket_t *t)
{
  uint64_t epoch = atomic_load_explicit(&a->epoch, memory_order_acquire);
  int64_t now = m3s_now_ms();
  flight_t *old[4];
  size_t nold = 0;
  pthread_mutex_lock(&a->fl_lock);
  for(size_t i = 0; i < n; i++) {
    flight_t *f = a->flights[roles[i]];
    bool fresh = f && f->done && f->rc == 0 && a->opts.status_max_age_ms >= 0 &&
                 now - f->landed_ms <= a->opts.status_max_age_ms;
    t[i].role = roles[i];
    t[i].sender = !(f && f->epoch == epoch && (!f->done || fresh));
    t[i].landed = !t[i].sender && f->done;
    if(t[i].sender) {
      if(f)
        old[nold++] = f; /* the table's reference, dropped below */
      f = m3s_xcalloc(1, sizeof(*f));
      f->epoch = epoch;
      f->id = ++a->flight_ids;
      atomic_init(&f->refs, 1); /* the table's */
      a->flights[roles[i]] = f;
    }
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    t[i].f = f;
  }
  pthread_mutex_unlock(&a->fl_lock);
  for(size_t i = 0; i < nold; i++)
    flight_unref(old[i]);
  for(size_t i = 0; i < n; i++) {
    if(!t[i].sender)
      continue;
    flight_t *f = t[i].f;
    bool kube = t[i].role == SRC_KUBE;
    m3s_actor_t *to = kube ? a->kube : a->roles[t[i].role];
    size_t limit = to && to->ops->mailbox_limit ? to->ops->mailbox_limit
                                                : M3S_MAILBOX_SOFT_LIMIT;
    if(!to || m3s_actor_depth(to) >= limit) {
      f->rc = to ? -EAGAIN : -ENOENT;
      continue;
    }
    m3s_msg_t *m = kube ? m3s_msg_new(M3S_KUBE_STATUS, M3S_KUBE_BRIEF, NULL, NULL)
                        : m3s_msg_new(M3S_ROLE_STATUS, 0, NULL, NULL);
    f->slot = m3s_reply_new();
    m->reply = m3s_reply_ref(f->slot);
    m3s_send(to, m);
  }
}

/* Waits until deadline for the flight's answer. 0 with *out borrowed until
 * status_release, or -errno. */
static int status_end(api_t *a, ticket_t *t, int64_t deadline, json_t **out)
{
  flight_t *f = t->f;
  *out = NULL;
  if(t->landed) { /* done before we joined: immutable since */
    *out = f->answer;
    return 0;
  }
  if(t->sender) {
    int rc = f->rc;
    json_t *j = NULL;
    if(f->slot) {
      m3s_msg_t *ans = NULL;
      int64_t left = deadline - m3s_now_ms();
      rc = m3s_reply_wait(f->slot, left > 0 ? (int)left : 0, &ans);
      m3s_reply_unref(f->slot);
      f->slot = NULL;
      if(rc == 0 && !(j = answer_json(ans)))
        rc = -EPROTO;
      m3s_msg_free(ans);
    }
    int64_t landed = m3s_now_ms();
    bool drop = false;
    pthread_mutex_lock(&a->fl_lock);
    f->rc = rc;
    f->answer = j;
    f->landed_ms = landed;
    f->done = true;
    if(rc && a->flights[t->role] == f) { /* never reused */
      a->flights[t->role] = NULL;
      drop = true;
    }
    pthread_cond_broadcast(&a->fl_cond);
    pthread_mutex_unlock(&a->fl_lock);
    if(drop)
      flight_unref(f); /* the table's; ours keeps it alive */
    if(rc == 0)
      *out = j;
    return rc;
  }
  struct timespec until = { .tv_sec = (time_t)(deadline / 1000),
                            .tv_nsec = (long)(deadline % 1000) * 1000000L };
  pthread_mutex_lock(&a->fl_lock);
  while(!f->done)
    if(pthread_cond_timedwait(&a->fl_cond, &a->fl_lock, &until) == ETIMEDOUT)
      break;
  int rc = f->done ? f->rc : -ETIMEDOUT;
  if(rc == 0)
    *out = f->answer;
  pthread_mutex_unlock(&a->fl_lock);
  return rc;
}

static void status_release(api_t *a, ticket_t *t)
{
  flight_unref(t->f);
}

/* The kube actor's brief STATUS, shared like the roles': 0 with *out
 * borrowed until status_release(t), or -errno with nothing to release. */
static int kube_brief(api_t *a, ticket_t *t, json_t **out)
{
  static const int src = SRC_KUBE;
  *out = NULL;
  if(!a->kube)
    return -ENOENT;
  status_begin(a, &src, 1, t);
  int rc = status_end(a, t, m3s_now_ms() + a->opts.call_timeout_ms, out);
  if(rc) {
    status_release(a, t);
    *out = NULL;
  }
  return rc;
}

/* The STATUS of each role in roles[0..n): 0 with s[i] borrowed until
 * status_release of t[i], or the status already sent (all released). */
static int roles_status(api_t *a, struct mg_connection *c, const int *roles, size_t n,
                        ticket_t *t, json_t **s)
{
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  status_begin(a, roles, n, t);
  int rc = 0;
  size_t bad = 0;
  for(size_t i = 0; i < n; i++) {
    int r = status_end(a, &t[i], deadline, &s[i]);
    if(r && !rc) {
      rc = r;
      bad = i;
    }
  }
  if(!rc)
    return 0;
  for(size_t i = 0; i < n; i++)
    status_release(a, &t[i]);
  return unavailable_rc(c, a, role_actor[roles[bad]], rc);
}

/* ---- handlers --------------------------------------------------------------- */

static int h_versions(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const char body[] = "/api/m3s/v0";
  return respond(c, 200, CT_TEXT, "-", body, sizeof(body) - 1, NULL, NULL);
}

/* Liveness: always 200 while the server answers; the body says whether
 * Redis and Mesos are there (ui.c). No ids, no secrets: no auth. */
static int h_health(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ask_t k[2] = {
    { .to = a->store, .name = "store", .type = M3S_STORE_STATUS },
    { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_STATUS },
  };
  ask_all(a, k, 2);
  json_t *store = k[0].rc ? NULL : answer_json(k[0].ans);
  json_t *mesos = k[1].rc ? NULL : answer_json(k[1].ans);
  ask_free(k, 2);
  json_t *body = m3s__ui_health(store, mesos);
  json_decref(store);
  json_decref(mesos);
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  int st = text ? respond(c, 200, CT_JSON, NULL, text, strlen(text), NULL, NULL)
                : respond(c, 200, CT_TEXT, NULL, "ok", 2, NULL, NULL);
  free(text);
  return st;
}

/* The original forgets the framework id when the master no longer lists
 * it; the Mesos actor knows that without asking: subscribed means the
 * master has the framework (nothing changes), otherwise the id is dropped
 * and the next subscription registers a new framework. 200, empty body,
 * either way, as the original. */
static int h_framework_delete(api_t *a, struct mg_connection *c, const route_t *r,
                              const req_t *q)
{
  (void)r;
  (void)q;
  ask_t k = { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_FORGET_ID };
  int st = ask_one(a, c, &k);
  if(st)
    return st;
  ask_free(&k, 1);
  return respond_str(c, 200, CT_JSON, "");
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

/* As ask_one, for a change request that its owner answers only once the
 * change is in Redis. Two status requests go right behind it, to the owner
 * (status_type; answered just after it took the change) and to the store,
 * so that when the change is not confirmed in time the 503 says what is
 * true (ui.c) without another round trip. */
static int ask_change(api_t *a, struct mg_connection *c, ask_t *q, uint32_t status_type,
                      const m3s_ui_change_t *ch)
{
  ask_t k[3] = { *q, { .to = q->to, .name = q->name, .type = status_type },
                 { .to = a->store, .name = "store", .type = M3S_STORE_STATUS } };
  q->payload = NULL; /* taken by ask_all */
  ask_all(a, k, 3);
  q->rc = k[0].rc;
  q->ans = k[0].ans;
  k[0].ans = NULL;
  int st = 0;
  if(q->rc == -ETIMEDOUT) {
    changed(a);
    json_t *owner = k[1].rc ? NULL : answer_json(k[1].ans);
    json_t *store = k[2].rc ? NULL : answer_json(k[2].ans);
    char msg[480];
    m3s__ui_unconfirmed(msg, sizeof(msg), ch, owner, store, a->opts.call_timeout_ms);
    json_decref(owner);
    json_decref(store);
    st = error_json(c, 503, "%s", msg);
  }
  else if(q->rc) {
    st = unavailable(c, a, q);
  }
  ask_free(k, 3);
  return st;
}

static int h_scale(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  int count;
  if(!parse_count(q->count, &count))
    return error_json(c, 400, "the count must be a whole number from 0 to %d",
                      M3S_ROLE_MAX_COUNT);
  ask_t k = { .to = a->roles[r->arg], .name = role_actor[r->arg], .type = M3S_ROLE_SCALE,
              .arg = count };
  m3s_ui_change_t ch = { .kind = M3S_UI_SCALE, .owner = role_actor[r->arg], .count = count };
  int st = ask_change(a, c, &k, M3S_ROLE_STATUS, &ch);
  if(st)
    return st;
  changed(a);
  if(k.ans->flags & M3S_ROLE_ERROR) {
    int e = (int)-k.ans->arg;
    ask_free(&k, 1);
    if(e == EINVAL)
      return error_json(c, 400, "the %s role refused the count %d", role_actor[r->arg], count);
    return error_json(c, 500, "the %s role could not scale: %s", role_actor[r->arg], strerror(e));
  }
  char body[32];
  snprintf(body, sizeof(body), "%lld", (long long)k.ans->arg);
  ask_free(&k, 1);
  return respond_str(c, 200, (r->flags & R_TEXT) ? CT_TEXT : CT_JSON, body);
}

static int h_count(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ticket_t t;
  json_t *s;
  int st = roles_status(a, c, &r->arg, 1, &t, &s);
  if(st)
    return st;
  json_t *desired = json_object_get(s, "desired");
  json_t *tasks = json_object_get(s, "tasks");
  json_t *out = NULL;
  if(json_is_integer(desired) && json_is_object(tasks))
    out = json_pack("{s:I, s:I}", "Scale", json_integer_value(desired), "Running",
                    (json_int_t)json_object_size(tasks));
  status_release(a, &t);
  if(!out)
    return error_json(c, 500, "the %s role answered without its counts", role_actor[r->arg]);
  return respond_json(c, out);
}

static int h_scheduling(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ask_t k = { .to = a->offers, .name = "offers", .type = M3S_OFFERS_SCHEDULING, .arg = r->arg };
  m3s_ui_change_t ch = { .kind = M3S_UI_CORDON, .owner = "offers", .count = r->arg };
  int st = ask_change(a, c, &k, M3S_OFFERS_STATUS, &ch);
  if(st)
    return st;
  changed(a);
  bool failed = k.ans->flags & M3S_ROLE_ERROR;
  int e = (int)-k.ans->arg;
  ask_free(&k, 1);
  if(failed)
    return error_json(c, 500, "the scheduling flag could not be saved: %s", strerror(e));
  return respond_str(c, 200, CT_JSON,
                     r->arg ? "Nodes Cordoned, Scheduling will be disabled"
                            : "Nodes Uncordoned, Scheduling will now resume");
}

static int h_kubeconfig(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  /* The kube actor's copy of <fw>:kubernetes_config with every
   * 127.0.0.1:6443 replaced by the K3s server's <hostname>:<port>. None
   * yet: 200, no body and no content type, as the original. */
  if(!a->kube)
    return respond(c, 200, NULL, "v0", "", 0, NULL, NULL);
  ask_t k = { .to = a->kube, .name = "kube", .type = M3S_KUBE_CONFIG };
  int st = ask_one(a, c, &k);
  if(st)
    return st;
  char *text = m3s_msg_take(k.ans);
  ask_free(&k, 1);
  if(!text) {
    /* None read yet: "none published" only if Redis could be asked. (A
     * copy read before an outage is served: nothing can change it in
     * Redis while the K3s server cannot reach it either.) */
    ask_t s = { .to = a->store, .name = "store", .type = M3S_STORE_STATUS };
    ask_all(a, &s, 1);
    json_t *j = s.rc ? NULL : answer_json(s.ans);
    ask_free(&s, 1);
    bool down = !json_is_true(json_object_get(j, "connected"));
    json_decref(j);
    if(down)
      return error_json(c, 503, "Redis is unavailable: the kubeconfig (published there by the "
                                "K3s server) cannot be read; retry when Redis is back");
    return respond(c, 200, NULL, "v0", "", 0, NULL, NULL);
  }
  st = respond(c, 200, CT_TEXT, "v0", text, strlen(text), NULL, NULL);
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
  ask_all(a, &k, 1);
  json_t *s = k.rc ? NULL : answer_json(k.ans);
  ask_free(&k, 1);
  return s;
}

static int h_version(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
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
  return respond_json(c, json_pack("{s:{s:s, s:s}, s:o}", "M3SVersion", "gitVersion",
                                   M3S_VERSION, "buildDate", M3S_BUILD_DATE, "K3SVersion",
                                   k3s ? k3s : json_null()));
}

static char *render_status_m3s(json_t *const s[3], const json_t *names)
{
  json_t *maps[3];
  for(int i = 0; i < 3; i++) {
    maps[i] = json_object();
    const char *id;
    json_t *task;
    json_object_foreach(json_object_get(s[i], "tasks"), id, task) {
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
  json_t *out = json_pack("{s:o, s:o, s:s, s:o}", "Server", maps[1], "Agent", maps[2], "API", "",
                          "Datastore", maps[0]);
  char *body = out ? json_dumps(out, JSON_COMPACT) : NULL;
  json_decref(out);
  return body;
}

static int h_status_m3s(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const int roles[3] = { M3S_ROLE_DATASTORE, M3S_ROLE_SERVER, M3S_ROLE_AGENT };
  ticket_t t[3];
  json_t *s[3];
  int st = roles_status(a, c, roles, 3, t, s);
  if(st)
    return st;
  /* K3sNodeName: task id -> node name from the kube actor's live state;
   * its version changes whenever a node's task or name does. */
  ticket_t kt;
  json_t *ks, *names = json_object();
  bool kheld = kube_brief(a, &kt, &ks) == 0;
  const char *nname;
  json_t *nd;
  json_object_foreach(json_object_get(ks, "nodes"), nname, nd) {
    const char *tid = json_string_value(json_object_get(nd, "task_id"));
    if(tid && *tid)
      json_object_set_new(names, tid, json_string(nname));
  }
  uint64_t kv = ks ? (uint64_t)json_integer_value(json_object_get(ks, "version")) + 1 : 0;
  if(kheld)
    status_release(a, &kt);
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
    status_release(a, &t[i]);
  if(!body)
    return error_json(c, 500, "cannot encode the answer");
  st = respond_str(c, 200, CT_JSON, body);
  free(body);
  return st;
}

static int h_status_k8s(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const int agent = M3S_ROLE_AGENT;
  ticket_t t;
  json_t *s;
  int st = roles_status(a, c, &agent, 1, &t, &s);
  if(st)
    return st;
  bool ok = json_is_true(json_object_get(s, "healthy"));
  if(a->kube) {
    /* From Kubernetes: connected, every agent node of an agent task Ready,
     * and as many of them as the agent role's desired count. */
    ticket_t kt;
    json_t *ks;
    bool kheld = kube_brief(a, &kt, &ks) == 0;
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
      status_release(a, &t);
      return error_json(c, 503, "kube did not answer");
    }
    status_release(a, &kt);
  }
  status_release(a, &t);
  return respond_str(c, 200, CT_JSON, ok ? "ok" : "nok");
}

static int h_cluster(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  ask_t k = { .to = a->offers, .name = "offers", .type = M3S_OFFERS_CLUSTER, .arg = r->arg };
  int st = ask_one(a, c, &k);
  if(st)
    return st;
  changed(a);
  bool failed = k.ans->flags & M3S_ROLE_ERROR;
  int e = (int)-k.ans->arg;
  ask_free(&k, 1);
  bool restart = r->arg != M3S_CLUSTER_SHUTDOWN && r->arg != M3S_CLUSTER_START;
  if(failed && e == EALREADY) {
    if(r->arg == M3S_CLUSTER_START)
      return error_json(c, 406, "the cluster is already running");
    if(r->arg == M3S_CLUSTER_SHUTDOWN)
      return error_json(c, 406, "the cluster is already shut down");
    return error_json(c, 406, "the cluster is shut down: start it instead");
  }
  if(failed && e == EBUSY)
    return error_json(c, 409, "another cluster operation is in progress");
  if(failed)
    return error_json(c, 500, "the cluster operation failed: %s", strerror(e));
  return respond_str(c, 200, CT_JSON, restart ? "Restart Scheduled." : "");
}

static int h_capabilities(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const struct { const char *name, *path, *method; } fixed[] = {
    { "cluster-restart", "/api/m3s/v0/cluster/restart", "PUT" },
    { "server-restart", "/api/m3s/v0/server/restart", "PUT" },
    { "agent-restart", "/api/m3s/v0/agent/restart", "PUT" },
    { "ds-restart", "/api/m3s/v0/ds/restart", "PUT" },
    { "cluster-start", "/api/m3s/v0/cluster/start", "PUT" },
    { "cluster-shutdown", "/api/m3s/v0/cluster/shutdown", "PUT" },
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
  int st = respond_str(c, 200, CT_JSON, body ? body : "[]");
  free(body);
  return st;
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

static int h_resource(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  double v;
  if(!parse_amount(q->count, &v))
    return error_json(c, 400, "%s must be a number >= 0 (e.g. 2 or 0.5)", q->res_name);
  m3s_role_resource_t *p = m3s_xmalloc(sizeof(*p));
  p->kind = (m3s_role_resource_kind_t)q->res;
  p->value = v;
  static const char *const keys[] = { "cpus", "cpus_limit", "mem", "mem_limit", "disk",
                                      "disk_limit" };
  ask_t k = { .to = a->roles[q->comp], .name = role_actor[q->comp],
              .type = M3S_ROLE_SET_RESOURCE, .payload = p };
  m3s_ui_change_t ch = { .kind = M3S_UI_RESOURCE, .owner = role_actor[q->comp],
                         .res_key = keys[q->res], .value = v };
  int st = ask_change(a, c, &k, M3S_ROLE_STATUS, &ch);
  if(st)
    return st;
  changed(a);
  bool failed = k.ans->flags & M3S_ROLE_ERROR;
  int e = (int)-k.ans->arg;
  ask_free(&k, 1);
  if(failed && e == EINVAL)
    return error_json(c, 400, "the %s role refused %s = %s", role_actor[q->comp], q->res_name,
                      q->count);
  if(failed)
    return error_json(c, 500, "the %s role could not save %s: %s", role_actor[q->comp],
                      q->res_name, strerror(e));
  return respond_str(c, 200, CT_JSON, "Resources Updated");
}

/* The status page's files (ui.cmake), behind the API's authentication. */
static int h_ui(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  const m3s_ui_asset_t *f = NULL;
  for(size_t i = 0; i < m3s__ui_nassets && !f; i++)
    if(!strcmp(m3s__ui_assets[i].path, r->path))
      f = &m3s__ui_assets[i];
  if(!f)
    return error_json(c, 404, "no such file");
  return respond(c, 200, f->ctype, NULL, (const char *)f->data, f->len,
                 "Content-Security-Policy", M3S_UI_CSP);
}

/* Everything the status page shows but the events (ui.c): answers even
 * when Redis, Mesos or a role is away, and says so. */
static int h_status(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const int roles[3] = { M3S_ROLE_DATASTORE, M3S_ROLE_SERVER, M3S_ROLE_AGENT };
  ask_t k[3] = {
    { .to = a->store, .name = "store", .type = M3S_STORE_STATUS },
    { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_STATUS },
    { .to = a->offers, .name = "offers", .type = M3S_OFFERS_STATUS },
  };
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  ticket_t t[3];
  json_t *j[6];
  status_begin(a, roles, 3, t);
  ask_all(a, k, 3);
  for(int i = 0; i < 3; i++)
    j[i] = k[i].rc ? NULL : answer_json(k[i].ans);
  ask_free(k, 3);
  for(int i = 0; i < 3; i++)
    status_end(a, &t[i], deadline, &j[3 + i]); /* NULL when it failed */
  json_t *out = m3s__ui_status(j[0], j[1], j[2], &j[3]);
  for(int i = 0; i < 3; i++) {
    json_decref(j[i]);
    status_release(a, &t[i]);
  }
  return respond_json(c, out);
}

static int h_events(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  return respond_json(c, m3s__ui_events(mg_get_request_info(c)->query_string));
}

static int h_metrics(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q);

/* Registration order follows the original's (§9.3); the first route whose
 * template and method match wins. */
static const route_t routes[] = {
  { "GET", "/health", h_health, 0, R_NOAUTH },
  { "GET", "/metrics", h_metrics, 0, 0 },
  { "GET", "/api/m3s/versions", h_versions, 0, R_NOAUTH },
  { "DELETE", "/api/m3s/v0/framework", h_framework_delete, 0, 0 },
  { "GET", "/api/m3s/v0/agent/scale/{count}", h_scale, M3S_ROLE_AGENT, 0 },
  { "GET", "/api/m3s/v0/agent/scale", h_count, M3S_ROLE_AGENT, 0 },
  { "PUT", "/api/m3s/v0/agent/cordon", h_scheduling, 1, 0 },
  { "PUT", "/api/m3s/v0/agent/uncordon", h_scheduling, 0, 0 },
  { "GET", "/api/m3s/v0/server/scale/{count}", h_scale, M3S_ROLE_SERVER, 0 },
  { "GET", "/api/m3s/v0/server/scale", h_count, M3S_ROLE_SERVER, 0 },
  { "GET", "/api/m3s/v0/server/config", h_kubeconfig, 0, 0 },
  { "GET", "/api/m3s/v0/server/version", h_version, 0, 0 },
  { "GET", "/api/m3s/v0/datastore/scale/{count}", h_scale, M3S_ROLE_DATASTORE, R_TEXT },
  { "GET", "/api/m3s/v0/datastore/scale", h_count, M3S_ROLE_DATASTORE, 0 },
  { "GET", "/api/m3s/v0/etcd/scale/{count}", h_scale, M3S_ROLE_DATASTORE, R_TEXT },
  { "GET", "/api/m3s/v0/etcd/scale", h_count, M3S_ROLE_DATASTORE, 0 },
  { "GET", "/api/m3s/v0/status/m3s", h_status_m3s, 0, 0 },
  { "GET", "/api/m3s/v0/status/k8s", h_status_k8s, 0, 0 },
  { "PUT", "/api/m3s/v0/cluster/shutdown", h_cluster, M3S_CLUSTER_SHUTDOWN, 0 },
  { "PUT", "/api/m3s/v0/cluster/start", h_cluster, M3S_CLUSTER_START, 0 },
  { "PUT", "/api/m3s/v0/cluster/restart", h_cluster, M3S_CLUSTER_RESTART, 0 },
  { "PUT", "/api/m3s/v0/server/restart", h_cluster, M3S_CLUSTER_RESTART_SERVER, 0 },
  { "PUT", "/api/m3s/v0/agent/restart", h_cluster, M3S_CLUSTER_RESTART_AGENT, 0 },
  { "PUT", "/api/m3s/v0/ds/restart", h_cluster, M3S_CLUSTER_RESTART_DS, 0 },
  { "GET", "/api/m3s/v0/capabilities", h_capabilities, 0, 0 },
  { "GET", "/api/m3s/v0/status", h_status, 0, 0 },
  { "GET", "/api/m3s/v0/events", h_events, 0, 0 },
  { "GET", "/", h_ui, 0, 0 },
  { "GET", "/ui/app.js", h_ui, 0, 0 },
  { "GET", "/ui/style.css", h_ui, 0, 0 },
  { "PUT", "/api/m3s/v0/{comp}/{res}/{value}", h_resource, 0, 0 },
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))
static const size_t nroutes = NROUTES;

static int h_metrics(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
{
  static const char *const actors[] = { "store", "offers", "datastore", "server",
                                        "agent", "mesos", "kube", "api" };
  ask_t k[4] = {
    { .to = a->mesos, .name = "mesos", .type = M3S_MESOS_STATUS },
    { .to = a->store, .name = "store", .type = M3S_STORE_STATUS },
    { .to = a->offers, .name = "offers", .type = M3S_OFFERS_STATUS },
    { .to = a->kube, .name = "kube", .type = M3S_KUBE_STATUS, .arg = M3S_KUBE_BRIEF },
  };
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  static const int roles[3] = { M3S_ROLE_DATASTORE, M3S_ROLE_SERVER, M3S_ROLE_AGENT };
  ticket_t t[3];
  status_begin(a, roles, 3, t);
  ask_all(a, k, 4);
  json_t *j[6];
  for(int i = 0; i < 3; i++)
    j[i] = k[i].rc ? NULL : answer_json(k[i].ans);
  json_t *kube = k[3].rc ? NULL : answer_json(k[3].ans);
  ask_free(k, 4);
  for(int i = 0; i < 3; i++)
    status_end(a, &t[i], deadline, &j[3 + i]); /* NULL when it failed */

  const char *names[sizeof(actors) / sizeof(actors[0])];
  size_t depths[sizeof(actors) / sizeof(actors[0])], nact = 0;
  for(size_t i = 0; i < sizeof(actors) / sizeof(actors[0]); i++) {
    m3s_actor_t *act = m3s_system_find(a->base.sys, actors[i]);
    if(act) {
      names[nact] = actors[i];
      depths[nact++] = m3s_actor_depth(act);
    }
  }
  size_t ncount = (nroutes + 1) * NCODES;
  uint64_t *snap = m3s_xcalloc(ncount, sizeof(*snap));
  for(size_t i = 0; i < ncount; i++)
    snap[i] = atomic_load_explicit(&a->requests[i], memory_order_relaxed);
  const char *templates[NROUTES + 1];
  for(size_t i = 0; i < nroutes; i++)
    templates[i] = routes[i].path;
  templates[nroutes] = "(unmatched)";

  m3s_metrics_in_t in = {
    .mesos = j[0], .store = j[1], .offers = j[2], .roles = { j[3], j[4], j[5] }, .kube = kube,
    .actor_names = names, .actor_depths = depths, .nactors = nact,
    .route_templates = templates, .nroutes = nroutes + 1, .codes = codes, .ncodes = NCODES,
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
  json_decref(kube);
  for(int i = 0; i < 3; i++) {
    json_decref(j[i]);
    status_release(a, &t[i]);
  }
  if(!f || !buf) {
    free(buf);
    return error_json(c, 500, "out of memory");
  }
  int st = respond(c, 200, CT_METRICS, NULL, buf, len, NULL, NULL);
  free(buf);
  return st;
}


/* ---- routing ---------------------------------------------------------------- */

/* Splits path into at most MAX_SEGMENTS non-empty segments (in place).
 * Returns the count, or -1 when there are more. */
static int split(char *path, char *seg[MAX_SEGMENTS])
{
  int n = 0;
  for(char *p = path; *p;) {
    while(*p == '/')
      p++;
    if(!*p)
      break;
    if(n == MAX_SEGMENTS)
      return -1;
    seg[n++] = p;
    while(*p && *p != '/')
      p++;
    if(*p)
      *p++ = '\0';
  }
  return n;
}

static bool match(const route_t *r, char *const seg[], int nseg, req_t *q)
{
  const char *t = r->path;
  int i = 0;
  if(!strcmp(t, "/")) /* the status page */
    return nseg == 0;
  while(*t) {
    t++; /* '/' */
    const char *e = strchr(t, '/');
    size_t len = e ? (size_t)(e - t) : strlen(t);
    if(i == nseg)
      return false;
    const char *s = seg[i++];
    if(len == 7 && !strncmp(t, "{count}", len))
      q->count = s;
    else if(len == 7 && !strncmp(t, "{value}", len))
      q->count = s;
    else if(len == 6 && !strncmp(t, "{comp}", len)) {
      if(!strcmp(s, "ds"))
        q->comp = M3S_ROLE_DATASTORE;
      else if(!strcmp(s, "server"))
        q->comp = M3S_ROLE_SERVER;
      else if(!strcmp(s, "agent"))
        q->comp = M3S_ROLE_AGENT;
      else
        return false;
    }
    else if(len == 5 && !strncmp(t, "{res}", len)) {
      size_t k;
      for(k = 0; k < sizeof(resources) / sizeof(resources[0]); k++)
        if(!strcmp(s, resources[k].name))
          break;
      if(k == sizeof(resources) / sizeof(resources[0]))
        return false;
      q->res = (int)resources[k].kind;
      q->res_name = resources[k].name;
    }
    else if(strlen(s) != len || strncmp(t, s, len))
      return false;
    t += len;
  }
  return i == nseg;
}

/* ---- authentication ------------------------------------------------------------ */

static void digest(const api_t *a, const void *data, size_t len, unsigned char out[32])
{
  unsigned int n = 32;
  if(!a->sha256 || EVP_Digest(data, len, out, &n, a->sha256, NULL) != 1)
    memset(out, 0xff, 32); /* never equal to a real digest of ours */
}

/* Looks up ip (fail_lock held); NULL when absent. */
static fail_slot_t *fail_find(api_t *a, const char *ip)
{
  for(size_t i = 0; i < FAIL_SLOTS; i++)
    if(a->fails[i].ip[0] && !strcmp(a->fails[i].ip, ip))
      return &a->fails[i];
  return NULL;
}

static void fail_clear(api_t *a, fail_slot_t *s)
{
  s->ip[0] = '\0';
  atomic_fetch_sub_explicit(&a->nfail, 1, memory_order_relaxed);
}

/* Seconds ip must still wait, or 0 when it may try. */
static int throttled(api_t *a, const char *ip, int64_t now)
{
  if(atomic_load_explicit(&a->nfail, memory_order_relaxed) == 0)
    return 0;
  int wait_s = 0;
  pthread_mutex_lock(&a->fail_lock);
  fail_slot_t *s = fail_find(a, ip);
  if(s) {
    int64_t left = s->since_ms + a->opts.auth_fail_window_ms - now;
    if(left <= 0)
      fail_clear(a, s);
    else if(s->count >= a->opts.auth_fail_max)
      wait_s = (int)((left + 999) / 1000);
  }
  pthread_mutex_unlock(&a->fail_lock);
  return wait_s;
}

static void auth_failed(api_t *a, const char *ip, int64_t now)
{
  atomic_fetch_add_explicit(&a->auth_failures, 1, memory_order_relaxed);
  pthread_mutex_lock(&a->fail_lock);
  fail_slot_t *s = fail_find(a, ip);
  if(s && now - s->since_ms >= a->opts.auth_fail_window_ms) {
    s->count = 0;
    s->since_ms = now;
  }
  if(!s) {
    /* A free slot, else the one whose window started first. */
    fail_slot_t *oldest = &a->fails[0];
    for(size_t i = 0; i < FAIL_SLOTS && !s; i++) {
      if(!a->fails[i].ip[0])
        s = &a->fails[i];
      else if(a->fails[i].since_ms < oldest->since_ms)
        oldest = &a->fails[i];
    }
    if(!s) {
      s = oldest;
      fail_clear(a, s);
    }
    snprintf(s->ip, sizeof(s->ip), "%s", ip);
    s->count = 0;
    s->since_ms = now;
    atomic_fetch_add_explicit(&a->nfail, 1, memory_order_relaxed);
  }
  if(++s->count == a->opts.auth_fail_max)
    m3s_warn("REST API: %d failed authentications from %s: refusing it for %d s", s->count, ip,
             a->opts.auth_fail_window_ms / 1000);
  pthread_mutex_unlock(&a->fail_lock);
}

static void auth_succeeded(api_t *a, const char *ip)
{
  if(atomic_load_explicit(&a->nfail, memory_order_relaxed) == 0)
    return;
  pthread_mutex_lock(&a->fail_lock);
  fail_slot_t *s = fail_find(a, ip);
  if(s)
    fail_clear(a, s);
  pthread_mutex_unlock(&a->fail_lock);
}

/* "Basic <base64 user:password>" -> true when it matches the configured
 * credentials. Nothing of the header is logged or kept. */
static bool credentials_ok(const api_t *a, const char *h)
{
  unsigned char dec[MAX_AUTH_HEADER], got[32];
  char b64[MAX_AUTH_HEADER + 4];
  bool ok = false;

  if(!h || strncasecmp(h, "Basic", 5) || (h[5] != ' ' && h[5] != '\t'))
    return false;
  h += 5;
  while(*h == ' ' || *h == '\t')
    h++;
  size_t n = strcspn(h, " \t\r\n");
  if(n == 0 || n > MAX_AUTH_HEADER || h[n + strspn(h + n, " \t")] != '\0')
    return false;
  memcpy(b64, h, n);
  size_t pad = 0;
  for(size_t i = n; i > 0 && b64[i - 1] == '='; i--)
    pad++;
  while(n % 4) { /* tolerate unpadded base64 */
    b64[n++] = '=';
    pad++;
  }
  if(pad > 2)
    goto out;
  int len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
  if(len < 0 || (size_t)len < pad)
    goto out;
  len -= (int)pad;
  unsigned char *colon = memchr(dec, ':', (size_t)len);
  if(!colon || memchr(dec, '\0', (size_t)len))
    goto out;
  *colon = '\0'; /* user '\0' password, as the stored digest */
  digest(a, dec, (size_t)len, got);
  ok = CRYPTO_memcmp(got, a->cred, sizeof(got)) == 0;
out:
  OPENSSL_cleanse(dec, sizeof(dec));
  OPENSSL_cleanse(b64, sizeof(b64));
  return ok;
}

/* 0 when the request may proceed, else the status already sent. */
static int authenticate(api_t *a, struct mg_connection *c, const char *ip)
{
  if(!a->auth)
    return 0;
  int64_t now = m3s_now_ms();
  int wait_s = throttled(a, ip, now);
  if(wait_s) {
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", wait_s);
    atomic_fetch_add_explicit(&a->auth_throttled, 1, memory_order_relaxed);
    return error_h(c, 429, "Retry-After", ra,
                   "too many failed authentications from this client; retry in %d s", wait_s);
  }
  const char *h = mg_get_header(c, "Authorization");
  if(credentials_ok(a, h)) {
    auth_succeeded(a, ip);
    return 0;
  }
  if(h)
    auth_failed(a, ip, now);
  return error_h(c, 401, "WWW-Authenticate", "Basic realm=\"m3s\"",
                 h ? "wrong credentials" : "authentication required");
}

/* ---- request entry ------------------------------------------------------------- */

static void count_status(api_t *a, size_t route, int status)
{
  size_t k = 0;
  for(size_t i = 1; i < NCODES; i++)
    if(codes[i] == status)
      k = i;
  atomic_fetch_add_explicit(&a->requests[route * NCODES + k], 1, memory_order_relaxed);
}

/* No endpoint takes a body: a small one is read and dropped (the
 * connection stays usable), a large one refused. */
static int body_check(struct mg_connection *c, const struct mg_request_info *ri)
{
  const char *te = mg_get_header(c, "Transfer-Encoding");
  if(ri->content_length <= 0 && !te)
    return 0;
  if(ri->content_length > MAX_BODY) {
    mg_disable_connection_keep_alive(c);
    return error_json(c, 413, "request bodies are limited to %d bytes", MAX_BODY);
  }
  char buf[1024];
  long long total = 0;
  int n;
  while((n = mg_read(c, buf, sizeof(buf))) > 0) {
    total += n;
    if(total > MAX_BODY) {
      mg_disable_connection_keep_alive(c);
      return error_json(c, 413, "request bodies are limited to %d bytes", MAX_BODY);
    }
  }
  return 0;
}

static int on_request(struct mg_connection *c, void *cbdata)
{
  api_t *a = cbdata;
  const struct mg_request_info *ri = mg_get_request_info(c);
  int64_t t0 = m3s_now_ms();
  char path[2048], *seg[MAX_SEGMENTS], allow[64] = "";
  size_t route = nroutes;
  const route_t *hit = NULL;
  bool noauth = false;
  req_t q = { .ip = ri->remote_addr };
  int status, nseg = -1;

  /* The decoded path as sent: split() drops empty segments (the plugin's
   * "//api/..."); anything else, dot segments included, must match a
   * route literally. */
  if(ri->local_uri_raw && strlen(ri->local_uri_raw) < sizeof(path)) {
    snprintf(path, sizeof(path), "%s", ri->local_uri_raw);
    nseg = split(path, seg);
  }
  for(size_t i = 0; nseg >= 0 && i < nroutes; i++) {
    req_t t = q;
    if(!match(&routes[i], seg, nseg, &t))
      continue;
    if(routes[i].flags & R_NOAUTH)
      noauth = true;
    if(!strcmp(routes[i].method, ri->request_method)) {
      hit = &routes[i];
      route = i;
      q = t;
      break;
    }
    if(!strstr(allow, routes[i].method) && strlen(allow) + 10 < sizeof(allow))
      snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
               allow[0] ? ", " : "", routes[i].method);
  }

  if(!noauth && (status = authenticate(a, c, q.ip)) != 0)
    goto done;
  if((status = body_check(c, ri)) != 0)
    goto done;
  if(hit)
    status = hit->fn(a, c, hit, &q);
  else if(allow[0])
    status = error_h(c, 405, "Allow", allow, "method not allowed here (allowed: %s)", allow);
  else
    status = error_json(c, 404, "no such endpoint");
done:
  count_status(a, route, status);
  if(m3s__log_level <= M3S_LOG_DEBUG) {
    char shown[128];
    printable(shown, sizeof(shown), hit ? hit->path : ri->local_uri_raw);
    m3s_debug("%s %s %s -> %d (%lld ms)", ri->remote_addr, ri->request_method, shown, status,
              (long long)(m3s_now_ms() - t0));
  }
  return status;
}

static int on_begin_request(struct mg_connection *c)
{
  return on_request(c, mg_get_user_data(mg_get_context(c)));
}

/* civetweb's own error answers (malformed requests, oversized headers):
 * JSON like ours. */
static int on_http_error(struct mg_connection *c, int status, const char *msg)
{
  api_t *a = mg_get_user_data(mg_get_context(c));
  char shown[200];
  printable(shown, sizeof(shown), msg);
  error_json(c, status, "%s", shown[0] ? shown : "bad request");
  if(a)
    count_status(a, nroutes, status);
  return 0;
}

static int on_log(const struct mg_connection *c, const char *message)
{
  char shown[300];
  printable(shown, sizeof(shown), message);
  m3s_debug("civetweb: %s", shown);
  return 1;
}

static void *on_thread(const struct mg_context *ctx, int type)
{
  m3s_log_set_name(type == 1 ? "api-worker" : "api-civetweb");
  return NULL;
}

/* Our TLS context, made in start(); civetweb must neither make nor free
 * its own. */
static int on_ssl_ctx(void **ssl_ctx, void *user_data)
{
  api_t *a = user_data;
  if(!*ssl_ctx)
    *ssl_ctx = a->ssl;
  return 1;
}

/* ---- actor ------------------------------------------------------------------------ */

void m3s_api_set_opts(m3s_actor_t *self, const m3s_api_opts_t *opts)
{
  api_t *a = (api_t *)self;
  a->opts = *opts;
  snprintf(a->bind_host, sizeof(a->bind_host), "%s", opts->bind_host ? opts->bind_host : "");
  a->opts.bind_host = NULL;
}

int m3s_api_port(m3s_actor_t *self)
{
  return atomic_load_explicit(&((api_t *)self)->port, memory_order_acquire);
}

static void defaults(api_t *a)
{
  m3s_api_opts_t *o = &a->opts;
  if(o->threads <= 0)
    o->threads = DEFAULT_THREADS;
  if(o->request_timeout_ms <= 0)
    o->request_timeout_ms = DEFAULT_REQUEST_TIMEOUT_MS;
  if(o->keep_alive_timeout_ms <= 0)
    o->keep_alive_timeout_ms = DEFAULT_KEEP_ALIVE_TIMEOUT_MS;
  if(o->call_timeout_ms <= 0)
    o->call_timeout_ms = M3S_API_CALL_TIMEOUT_MS;
  if(o->auth_fail_max <= 0)
    o->auth_fail_max = DEFAULT_AUTH_FAIL_MAX;
  if(o->auth_fail_window_ms <= 0)
    o->auth_fail_window_ms = DEFAULT_AUTH_FAIL_WINDOW_MS;
  if(o->status_max_age_ms == 0)
    o->status_max_age_ms = DEFAULT_STATUS_MAX_AGE_MS;
}

static void setup_auth(api_t *a)
{
  const m3s_config_t *cfg = a->base.cfg;
  a->auth = cfg->auth_username[0] && cfg->auth_password[0];
  if(a->auth) {
    size_t lu = strlen(cfg->auth_username), lp = strlen(cfg->auth_password);
    char *buf = m3s_xmalloc(lu + 1 + lp);
    memcpy(buf, cfg->auth_username, lu + 1);
    memcpy(buf + lu + 1, cfg->auth_password, lp);
    digest(a, buf, lu + 1 + lp, a->cred);
    OPENSSL_cleanse(buf, lu + 1 + lp);
    free(buf);
    return;
  }
  if(cfg->auth_username[0] || cfg->auth_password[0])
    m3s_warn("REST API: only %s is set; authentication needs both AUTH_USERNAME and "
             "AUTH_PASSWORD", cfg->auth_username[0] ? "AUTH_USERNAME" : "AUTH_PASSWORD");
  m3s_warn("REST API: *** NO AUTHENTICATION *** anyone who can reach port %d can scale, stop "
           "and restart the cluster and read its kubeconfig (cluster-admin credentials); set "
           "AUTH_USERNAME and AUTH_PASSWORD",
           a->opts.port == M3S_API_ANY_PORT ? 0 : a->opts.port ? a->opts.port
                                                               : cfg->framework_port);
}

static int api_start(m3s_actor_t *self)
{
  api_t *a = (api_t *)self;
  const m3s_config_t *cfg = self->cfg;
  bool tls = cfg->ssl_crt_pem[0] && cfg->ssl_key_pem[0];
  char err[512] = "";
  int rc;

  defaults(a);
  pthread_mutex_init(&a->fail_lock, NULL);
  a->fail_lock_init = true;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&a->fl_lock, NULL);
  pthread_cond_init(&a->fl_cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&a->out_lock, NULL);
  a->fl_init = true;
  a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
  if(!a->sha256) {
    m3s_error("REST API: OpenSSL has no SHA-256 (needed to check credentials)");
    return -ENOTSUP;
  }
  a->requests = m3s_xcalloc((nroutes + 1) * NCODES, sizeof(*a->requests));
  for(int r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    a->roles[r] = m3s_system_find(self->sys, role_actor[r]);
  a->offers = m3s_system_find(self->sys, "offers");
  a->mesos = m3s_system_find(self->sys, "mesos");
  a->store = m3s_system_find(self->sys, "store");
  a->kube = m3s_system_find(self->sys, "kube");
  setup_auth(a);

  rc = m3s__http_lib_init(tls, err, sizeof(err));
  if(rc) {
    m3s_error("REST API: %s", err);
    return rc;
  }
  if(tls) {
    void *ctx = NULL;
    rc = m3s__http_tls_ctx_new(cfg, &ctx, err, sizeof(err));
    if(rc) {
      m3s_error("REST API: %s", err);
      return rc;
    }
    a->ssl = ctx;
  }

  int port = a->opts.port == M3S_API_ANY_PORT ? 0 : a->opts.port ? a->opts.port
                                                                  : cfg->framework_port;
  char ports[128], threads[16], rto[16], kato[16], head[16];
  if(a->bind_host[0])
    snprintf(ports, sizeof(ports), "%s:%d%s", a->bind_host, port, tls ? "s" : "");
  else
    snprintf(ports, sizeof(ports), "%d%s", port, tls ? "s" : "");
  snprintf(threads, sizeof(threads), "%d", a->opts.threads);
  snprintf(rto, sizeof(rto), "%d", a->opts.request_timeout_ms);
  snprintf(kato, sizeof(kato), "%d", a->opts.keep_alive_timeout_ms);
  snprintf(head, sizeof(head), "%d", MAX_REQUEST_HEAD);
  const char *options[] = {
    "listening_ports", ports,
    "num_threads", threads,
    "request_timeout_ms", rto,
    "keep_alive_timeout_ms", kato,
    "enable_keep_alive", "yes",
    "max_request_size", head,
    "connection_queue", "64",
    "listen_backlog", "256",
    "tcp_nodelay", "1",
    "access_control_allow_origin", "",
    "enable_directory_listing", "no",
    NULL,
  };
  struct mg_callbacks cb;
  memset(&cb, 0, sizeof(cb));
  cb.log_message = on_log;
  cb.http_error = on_http_error;
  cb.init_thread = on_thread;
  /* Every request, from the moment the port listens: a handler registered
   * after mg_start2 would leave a window in which civetweb answers 404. */
  cb.begin_request = on_begin_request;
  if(tls)
    cb.external_ssl_ctx = on_ssl_ctx;
  struct mg_init_data init = { .callbacks = &cb, .user_data = a,
                               .configuration_options = options };
  char mgerr[256] = "";
  struct mg_error_data error = { .text = mgerr, .text_buffer_size = sizeof(mgerr) };
  a->mg = mg_start2(&init, &error);
  if(!a->mg) {
    char shown[256];
    printable(shown, sizeof(shown), mgerr);
    m3s_error("REST API: cannot listen on %s: %s", ports, shown[0] ? shown : "unknown error");
    return strstr(mgerr, "in use") ? -EADDRINUSE : -EIO;
  }
  struct mg_server_port sp[2];
  if(mg_get_server_ports(a->mg, 2, sp) >= 1)
    port = sp[0].port;
  atomic_store_explicit(&a->port, port, memory_order_release);
  m3s_info("REST API on %s://%s:%d (%d workers)%s", tls ? "https" : "http",
           a->bind_host[0] ? a->bind_host : "*", port, a->opts.threads,
           a->auth ? "" : " WITHOUT AUTHENTICATION");
  return 0;
}

static void api_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  m3s_debug("ignoring message type %u", m->type);
}

static void api_stop(m3s_actor_t *self)
{
  api_t *a = (api_t *)self;
  if(a->mg)
    mg_stop(a->mg); /* joins the workers: no request is running after it */
  a->mg = NULL;
  SSL_CTX_free(a->ssl);
  a->ssl = NULL;
  free(a->requests);
  a->requests = NULL;
  if(a->fail_lock_init)
    pthread_mutex_destroy(&a->fail_lock);
  a->fail_lock_init = false;
  if(a->fl_init) { /* the workers are gone: only the table's references are left */
    for(int r = 0; r < 4; r++)
      if(a->flights[r])
        flight_unref(a->flights[r]);
    pthread_cond_destroy(&a->fl_cond);
    pthread_mutex_destroy(&a->fl_lock);
    pthread_mutex_destroy(&a->out_lock);
    free(a->out_body);
    a->out_body = NULL;
  }
  EVP_MD_free(a->sha256);
  a->sha256 = NULL;
  a->fl_init = false;
  atomic_store_explicit(&a->port, 0, memory_order_release);
}

const m3s_actor_ops_t m3s_api_ops = {
  .name = "api",
  .size = sizeof(api_t),
  .start = api_start,
  .handle = api_handle,
  .stop = api_stop,
};
