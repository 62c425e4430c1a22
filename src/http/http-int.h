/* Internal to src/http: what the api actor (api*.c), tls.c, metrics.c and ui.c share. */
#ifndef M3S_HTTP_INT_H
#define M3S_HTTP_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "m3s/config-t.h"

/* ---- tls.c -------------------------------------------------------------- */

/* Makes civetweb's run-time OpenSSL loading safe with OpenSSL 3 and
 * initialises civetweb's library for the process (TLS or not). Idempotent;
 * the first call decides. Returns 0, or -ENOTSUP with one line in err when
 * HTTPS cannot be served safely (then nothing must start with TLS). Any
 * thread. */
int m3s__http_lib_init(bool tls, char *err, size_t errlen);

/* The server's TLS context from the PEM certificate (chain) and key in cfg:
 * TLS 1.2 or newer, no renegotiation. Returns 0 with *out owned by the
 * caller (SSL_CTX_free), or -EINVAL with one line in err naming the variable
 * and OpenSSL's reason (a certificate OpenSSL refuses to serve, e.g. a key
 * below its security level). Warns about an expired certificate. */
int m3s__http_tls_ctx_new(const m3s_config_t *cfg, void **out, char *err, size_t errlen);

/* ---- metrics.c ---------------------------------------------------------- */

/* Everything /metrics shows, gathered by the request's worker. Every json_t
 * is borrowed and may be NULL (that source did not answer). */
typedef struct m3s_metrics_in {
  json_t *mesos, *store, *offers;
  json_t *roles[3];                 /* datastore, server, agent */
  json_t *kube;                     /* the kube actor's brief STATUS */
  json_t *rollout;                  /* the rollout plan (m3s/rollout.h), NULL = none */
  const char *const *actor_names;   /* mailbox depths: name/depth pairs */
  const size_t *actor_depths;
  size_t nactors;
  /* API counters: requests[route * ncodes + code] */
  const char *const *route_templates;
  size_t nroutes;
  const int *codes;                 /* 0 = any other code */
  size_t ncodes;
  const uint64_t *requests;
  uint64_t auth_failures, auth_throttled;
} m3s_metrics_in_t;

/* Writes the Prometheus text exposition format (0.0.4) to out. */
void m3s__metrics_write(FILE *out, const m3s_metrics_in_t *in);

/* Escapes a label value for the text format into buf (always terminated). */
void m3s__metrics_label(char *buf, size_t len, const char *value);

/* ---- ui.c: health, status page, events, unconfirmed changes ---------------- */

/* The embedded status page files (src/http/ui/, generated at build time). */
typedef struct m3s_ui_asset {
  const char *path;       /* the route, e.g. "/" or "/ui/app.js" */
  const char *ctype;
  const unsigned char *data;
  size_t len;
} m3s_ui_asset_t;
extern const m3s_ui_asset_t m3s__ui_assets[];
extern const size_t m3s__ui_nassets;
/* The page's Content-Security-Policy: nothing but its own files. */
#define M3S_UI_CSP "default-src 'none'; script-src 'self'; style-src 'self'; " \
                   "connect-src 'self'; img-src 'self' data:; base-uri 'none'; " \
                   "form-action 'none'; frame-ancestors 'none'"

/* /health's body: {"status":"ok"|"degraded","redis":bool,"mesos":state,
 * "k3s":"ready" or why no K3s server node is Ready (what the agents wait
 * for)}. store, mesos, kube: their STATUS answers, borrowed, NULL when they
 * did not answer (then redis is false, mesos and k3s "unknown"). New
 * reference. */
json_t *m3s__ui_health(const json_t *store, const json_t *mesos, const json_t *kube);

/* /api/m3s/v0/status: the health fields plus "problems" (sentences, among
 * them what the agents wait for), the Redis queue, the offers summary, per
 * role (in deploy order) its counts and tasks {id: {state, host, since,
 * phase, healthy}}, a role that did not answer is null (and the status
 * degraded), and "kubernetes" {connected, api, k3s, simulated, nodes:
 * {name: {ready, role, task_id, version, os_image}}} from kube's full
 * STATUS (null when it did not answer). All borrowed; new reference. */
json_t *m3s__ui_status(const json_t *store, const json_t *mesos, const json_t *offers,
                       json_t *const roles[3], const json_t *kube);

/* /api/m3s/v0/events: {"last": seq, "events": [{seq, time, level, actor,
 * text}, ...]} with the kept log events after the query's "after=N" (all
 * when absent or malformed), oldest first. query may be NULL. New
 * reference. */
json_t *m3s__ui_events(const char *query);

/* A change the owning actor did not confirm within the API's time limit. */
typedef enum m3s_ui_change_kind {
  M3S_UI_SCALE,      /* a role's desired count: count */
  M3S_UI_RESOURCE,   /* a role's resource: res_key ("cpus", "mem_limit", ...) = value */
  M3S_UI_CORDON,     /* the agents' scheduling flag: count 1 cordon, 0 uncordon */
} m3s_ui_change_kind_t;

typedef struct m3s_ui_change {
  m3s_ui_change_kind_t kind;
  const char *owner;       /* actor name, e.g. "agent" or "offers" */
  int count;
  const char *res_key;
  double value;
} m3s_ui_change_t;

/* The message of the 503 for an unconfirmed change, from what is known
 * after the wait: the owner's STATUS answer (sent right behind the change,
 * so it shows whether the owner took it; NULL if none) and the store's
 * (NULL if none). It says only what those answers prove. */
void m3s__ui_unconfirmed(char *buf, size_t len, const m3s_ui_change_t *ch, const json_t *owner,
                         const json_t *store, int timeout_ms);

#endif
