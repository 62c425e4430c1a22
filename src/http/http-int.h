/* Internal to src/http: what api.c, tls.c and metrics.c share. */
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

#endif
