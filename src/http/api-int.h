/* Internal to the api actor (src/http/api*.c): its state, the route
 * table's types and what its files share. Every name here starts with api_
 * (types: _t) and is used by no other part of the daemon.
 *
 * Files, by what a request goes through:
 *   api.c          the actor: starts and stops civetweb; the request entry
 *                  (route, authenticate, refuse bodies, run, count)
 *   api_route.c    the route table, and matching a path against it
 *   api_auth.c     HTTP Basic and the per-client failure throttle
 *   api_respond.c  writing answers and JSON errors
 *   api_ask.c      asking actors: requests with a reply slot, 503s
 *   api_flight.c   shared STATUS requests between concurrent requests
 *   api_roles.c    handlers that read or change the roles and the cluster:
 *                  scale, counts, resources, cordon, cluster operations,
 *                  the framework id
 *   api_update.c   PUT /api/m3s/v0/cluster/update: run-time
 *                  configuration changes (its JSON body)
 *   api_plan.c     the rollout plan: GET plan, plan/{pause|resume|abort},
 *                  cluster/rollout (and cluster/update's "rollout")
 *   api_status.c   handlers that say how things are: /health,
 *                  /api/m3s/v0/status, status/m3s, status/k8s, /metrics,
 *                  events, the status page, the kubeconfig, versions,
 *                  capabilities
 */
#ifndef M3S_HTTP_API_INT_H
#define M3S_HTTP_API_INT_H

#include <civetweb.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "m3s/api.h"
#include "m3s/reply.h"
#include "m3s/role.h"
#include "http-int.h"

#define MAX_SEGMENTS 8
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

/* A route's handler, on a civetweb worker: answers and returns the status. */
typedef int (*handler_fn)(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q);

enum { R_NOAUTH = 1u, R_TEXT = 2u, R_BODY = 4u /* the handler reads the body */ };

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

/* The status codes /metrics counts by (api.c); 0 = any other. */
#define API_NCODES 18
extern const int api_codes[API_NCODES];

struct api {
  m3s_actor_t base;
  /* set before civetweb starts, read-only afterwards */
  m3s_api_opts_t opts;
  char bind_host[64];
  struct mg_context *mg;
  SSL_CTX *ssl;
  m3s_actor_t *roles[4];       /* indexed by m3s_role_t */
  m3s_actor_t *offers, *mesos, *store, *kube, *rollout;
  bool auth;
  unsigned char cred[32];      /* SHA-256 of user '\0' password */
  EVP_MD *sha256;              /* fetched once (an implicit fetch per digest
                                  costs a lookup in OpenSSL 3) */
  /* shared with civetweb's threads */
  _Atomic int port;
  _Atomic uint64_t *requests;  /* [api_nroutes + 1][API_NCODES] */
  _Atomic uint64_t auth_failures, auth_throttled;
  _Atomic int nfail;           /* used slots, to skip the lock when 0 */
  _Atomic uint64_t epoch;      /* bumped by every change made through the API */
  pthread_mutex_t fl_lock;     /* role STATUS flights (api_flight.c) */
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

/* The role actors' names, indexed by m3s_role_t (0: none). */
extern const char *const api_role_actor[4];

/* ---- api_route.c ---------------------------------------------------------- */

/* In registration order (the original's, §9.3): the first route whose
 * template and method match wins. */
extern const route_t api_routes[];
extern const size_t api_nroutes;

/* Splits path, the request's path as sent (civetweb's decode_url=no), into
 * at most MAX_SEGMENTS non-empty segments and percent-decodes each, in
 * place. Empty segments are dropped (the mesos-cli plugin sends
 * "//api/..."). Returns the count; API_PATH_LONG when there are more;
 * API_PATH_BAD with *why (a static sentence) for a malformed escape, an
 * encoded NUL or an encoded '/', which could otherwise end a segment early
 * or join two. */
#define API_PATH_LONG (-1)
#define API_PATH_BAD (-2)
int api_split(char *path, char *seg[MAX_SEGMENTS], const char **why);

/* Does seg[0..nseg) match r's template? Fills q's fields from it. */
bool api_match(const route_t *r, char *const seg[], int nseg, req_t *q);

/* ---- api_auth.c ----------------------------------------------------------- */

/* SHA-256 of data (all 0xff when it cannot be computed). */
void api_digest(const api_t *a, const void *data, size_t len, unsigned char out[32]);

/* 0 when the request may proceed, else the status already sent. */
int api_authenticate(api_t *a, struct mg_connection *c, const char *ip);

/* ---- api_respond.c -------------------------------------------------------- */

/* The request a worker answers, as civetweb's connection data while
 * on_request runs: api_respond counts the answer in a->requests before
 * writing it, so a client that has the answer finds it in /metrics. */
typedef struct api_answering {
  api_t *a;
  size_t route;   /* index in api_routes, api_nroutes when unmatched */
  bool counted;
} api_answering_t;

/* Counts one answer of route with status in a->requests. */
void api_count_status(api_t *a, size_t route, int status);

/* One complete response, written in one piece. ctype NULL: no
 * Content-Type; service NULL: no Api-Service; hname NULL: no extra header.
 * Returns status. */
int api_respond(struct mg_connection *c, int status, const char *ctype, const char *service,
                const char *body, size_t len, const char *hname, const char *hvalue);
int api_respond_str(struct mg_connection *c, int status, const char *ctype, const char *body);
/* 200 with j (taken) as compact JSON; a 500 when it cannot be encoded. */
int api_respond_json(struct mg_connection *c, json_t *j);
/* {"error": msg} with an optional extra header. */
int api_error_h(struct mg_connection *c, int status, const char *hname, const char *hvalue,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));
#define api_error(c, status, ...) api_error_h((c), (status), NULL, NULL, __VA_ARGS__)

/* ---- api_ask.c ------------------------------------------------------------ */

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

/* Sends every request (the same protocol as m3s_call: soft mailbox limit,
 * reference-counted slot); a request that cannot be sent gets its rc. */
void api_ask_send(ask_t *q, size_t n);
/* Waits for the answers of the requests sent until deadline (monotonic
 * ms): n slow actors cost one timeout, not n. */
void api_ask_wait(ask_t *q, size_t n, int64_t deadline);
/* Both, with call_timeout_ms from now. */
void api_ask_all(api_t *a, ask_t *q, size_t n);
void api_ask_free(ask_t *q, size_t n);
int api_ask_one(api_t *a, struct mg_connection *c, ask_t *q);
int api_ask_change(api_t *a, struct mg_connection *c, ask_t *q, uint32_t status_type,
                   const m3s_ui_change_t *ch);
int api_unavailable_rc(struct mg_connection *c, const api_t *a, const char *name, int rc);
int api_unavailable(struct mg_connection *c, const api_t *a, const ask_t *q);
/* The 503 for a change its owner refused with -EAGAIN: the store is
 * backlogged (m3s/store.h, M3S_STORE_PRESSURE), nothing changed. */
int api_backlogged(struct mg_connection *c);
json_t *api_answer_json(m3s_msg_t *ans);

/* ---- api_flight.c --------------------------------------------------------- */

#define SRC_KUBE 0 /* flights: the kube actor's brief status, in the slot no role uses */

/* Status endpoints need the roles' M3S_ROLE_STATUS and the kube actor's
 * brief M3S_KUBE_STATUS (source SRC_KUBE, the slot no role uses). Requests
 * for the same source share one request to it (a "flight"): the first
 * sends it, the others that arrive while it is in the air wait for its
 * answer (which lands as soon as it arrives, whoever waits: never behind
 * what else the sender waits for, api_status_end), and those that
 * arrive within status_max_age_ms after it landed take that answer without
 * waiting at all (a worker that never blocks is what keeps a busy status
 * endpoint near the speed of a constant answer). Answers are thus at most
 * that old; and no request uses a flight sent before a change made through
 * the API (the epoch below), so a client that scaled and then asks sees its
 * change. Failed flights are never reused. */
typedef struct flight {
  _Atomic unsigned refs; /* the table's, the sender's, the waiters' */
  bool done;             /* under fl_lock */
  bool taker;            /* under fl_lock: a waiter waits on slot */
  int rc;                /* under fl_lock until done; read-only once done */
  json_t *answer;        /* idem; freed with the last ref */
  int64_t landed_ms;     /* idem */
  int role;              /* set at creation, then read-only */
  uint64_t epoch;
  uint64_t id;           /* unique: names the answer in the rendered cache */
  m3s_reply_t *slot;     /* the request's; any waiter may take the answer */
} flight_t;

typedef struct ticket {
  flight_t *f;
  int role;
  bool sender;
  bool landed;           /* it had landed when we joined: no wait, no lock */
} ticket_t;

/* A change was made through the API: no later request uses an earlier flight. */
void api_changed(api_t *a);
void api_flight_unref(flight_t *f);
void api_status_begin(api_t *a, const int *roles, size_t n, ticket_t *t);
int api_status_end(api_t *a, ticket_t *t, int64_t deadline, json_t **out);
void api_status_release(api_t *a, ticket_t *t);
int api_kube_brief(api_t *a, ticket_t *t, json_t **out);
int api_roles_status(api_t *a, struct mg_connection *c, const int *roles, size_t n,
                     ticket_t *t, json_t **s);

/* ---- handlers (api_roles.c, api_status.c) ------------------------------------ */

#define API_HANDLER(name) \
  int api_h_##name(api_t *a, struct mg_connection *c, const route_t *r, const req_t *q)
API_HANDLER(framework_delete);
API_HANDLER(scale);
API_HANDLER(count);
API_HANDLER(scheduling);
API_HANDLER(cluster);
API_HANDLER(resource);
API_HANDLER(versions);
API_HANDLER(health);
API_HANDLER(kubeconfig);
API_HANDLER(version);
API_HANDLER(status_m3s);
API_HANDLER(status_k8s);
API_HANDLER(capabilities);
API_HANDLER(ui);
API_HANDLER(status);
API_HANDLER(events);
API_HANDLER(metrics);
API_HANDLER(update);   /* api_update.c */
API_HANDLER(plan);     /* api_plan.c */
API_HANDLER(plan_control);
API_HANDLER(rollout);
#undef API_HANDLER

/* api_update.c: the request body, NUL-terminated (free()); NULL with the
 * error status already sent (413 past 64 KiB). */
char *api_read_body(struct mg_connection *c, int *status);
/* The body as JSON (new reference), an empty object for an empty body when
 * optional; NULL with the error status already sent (400, 413). */
json_t *api_read_json(struct mg_connection *c, bool optional, int *status);
/* api_plan.c: asks the rollout actor for a plan and answers with it; with
 * updated (taken, a cluster/update's answer), the plan goes in its "plan". */
int api_start_rollout(api_t *a, struct mg_connection *c, bool force, json_t *updated);

#endif
