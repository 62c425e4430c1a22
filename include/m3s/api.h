/* The REST API actor ("api"): serves the original M3s REST API
 * (m3s-behaviour.md §9) plus /health and /metrics on FRAMEWORK_PORT with
 * civetweb, over HTTPS when SSL_CRT_BASE64/SSL_KEY_BASE64 are set.
 *
 * Its own thread only starts civetweb (start) and stops it (stop). Requests
 * run on civetweb's worker threads, which are not actors and never read actor
 * state: each request becomes a request message to the actor that owns the
 * answer, sent with m3s_call (or the same reply-slot protocol, several at a
 * time) and waited for at most M3S_API_CALL_TIMEOUT_MS; no answer in time,
 * an actor over its mailbox limit or a request dropped unanswered is a 503
 * with a JSON error, and so is a change its owner refused with -EAGAIN
 * because the store is backlogged (m3s/store.h). Concurrent status requests share one M3S_ROLE_STATUS
 * per role (and one brief M3S_KUBE_STATUS), and reuse its answer for
 * status_max_age_ms (never across a change made through the API); a shared
 * answer is taken as soon as it arrives by whichever request waits, so no
 * request waits for what another one that shares it also asked.
 *
 * Messages it sends (all requests; the answer goes back to the worker):
 *   "datastore", "server", "agent"  M3S_ROLE_SCALE (arg = count),
 *                 M3S_ROLE_SET_RESOURCE (payload m3s_role_resource_t *,
 *                 malloc'ed, drop hook free(): taken by the role or dropped),
 *                 M3S_ROLE_STATUS.
 *   "offers"      M3S_OFFERS_CLUSTER (arg = m3s_cluster_op_t),
 *                 M3S_OFFERS_SCHEDULING (arg 1 cordon / 0 uncordon),
 *                 M3S_OFFERS_STATUS.
 *   "mesos"       M3S_MESOS_STATUS, M3S_MESOS_FORGET_ID.
 *   "store"       M3S_STORE_STATUS.
 *   "kube"        M3S_KUBE_STATUS (arg 0 or M3S_KUBE_BRIEF), M3S_KUBE_CONFIG.
 * Answers are owned by the worker that received them (m3s_msg_free); their
 * json_t * payloads are taken and released there.
 * Messages it accepts: none (anything sent to it is ignored and dropped).
 *
 * Shared with civetweb's threads: the actor's fields set before civetweb
 * starts (read-only afterwards), the request and authentication counters
 * (atomics), and three things with a mutex each (never held while another
 * is taken or while an actor is waited for): the table of clients that
 * failed to authenticate, the shared STATUS requests, the last rendered
 * status/m3s body.
 */
#ifndef M3S_API_H
#define M3S_API_H

#include "m3s/actor.h"

#define M3S_API_CALL_TIMEOUT_MS 4000   /* under the mesos-cli's 5 s */
#define M3S_API_ANY_PORT (-1)

/* Where and how the server listens; every zero field means the default.
 * The daemon uses the defaults; tests bind 127.0.0.1 on a free port and
 * shrink the limits so that they can reach them quickly. */
typedef struct m3s_api_opts {
  const char *bind_host;     /* NULL: all interfaces, like the original */
  int port;                  /* 0: FRAMEWORK_PORT; M3S_API_ANY_PORT: any
                                free port (see m3s_api_port) */
  int threads;               /* civetweb worker threads (64) */
  int request_timeout_ms;    /* to receive a request (5000) */
  int keep_alive_timeout_ms; /* idle keep-alive connection (2000) */
  int call_timeout_ms;       /* actor answer (M3S_API_CALL_TIMEOUT_MS) */
  int auth_fail_max;         /* failed logins per client and window (10) */
  int auth_fail_window_ms;   /* that window, also the lockout (60000) */
  int status_max_age_ms;     /* reuse of a role's STATUS answer by later
                                requests (100; < 0: only while in the air) */
} m3s_api_opts_t;

extern const m3s_actor_ops_t m3s_api_ops;

/* Main thread, after m3s_system_add and before m3s_system_start. opts is
 * copied (bind_host too). */
void m3s_api_set_opts(m3s_actor_t *api, const m3s_api_opts_t *opts);

/* Any thread, once m3s_system_start returned 0: the port the server
 * listens on (0 before it started). */
int m3s_api_port(m3s_actor_t *api);

#endif
