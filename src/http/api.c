/* The REST API actor (see include/m3s/api.h for the contract).
 *
 * DESIGN. One catch-all civetweb request handler. For every request, on the
 * civetweb worker:
 *   1. route: the path as sent is split at '/', empty segments dropped
 *      (the mesos-cli plugin sends "//api/..."), each segment
 *      percent-decoded, and matched literally against the route table; a
 *      path that matches with another method is a 405, no match a 404, a
 *      malformed escape, %00 or %2F in the path a 400 (after step 2);
 *   2. authenticate (all but /health and /api/m3s/versions, and before any
 *      404/405 so that unauthenticated clients learn nothing about routes):
 *      HTTP Basic, compared in constant time as SHA-256 digests; a client
 *      (IP) that fails auth_fail_max times within the window is answered
 *      429 without checking its credentials until the window ends;
 *   3. refuse a request body beyond a small limit (the endpoints that take
 *      one, flagged R_BODY, read it themselves);
 *   4. run the route's handler, which asks the owning actor(s) with a
 *      request message and a reply slot, waits at most call_timeout_ms and
 *      answers with the original's body and content type, or a JSON error.
 *      Role STATUS requests are shared between concurrent requests (see
 *      api_flight.c).
 * Every answer is counted by route template and status for /metrics.
 *
 * Thread safety: the fields of api_t under "set before civetweb starts"
 * are written by the actor's thread in start() before mg_start creates the
 * workers and are read-only afterwards; counters are atomics; the failure
 * table, the flights and the rendered status each have their own mutex,
 * never held while another is taken or while waiting for an actor.
 */
#include <errno.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "m3s/log.h"
#include "m3s/xalloc.h"
#include "api-int.h"

#define DEFAULT_THREADS 64
#define DEFAULT_REQUEST_TIMEOUT_MS 5000
#define DEFAULT_KEEP_ALIVE_TIMEOUT_MS 2000
#define DEFAULT_AUTH_FAIL_MAX 10
#define DEFAULT_AUTH_FAIL_WINDOW_MS 60000
#define DEFAULT_STATUS_MAX_AGE_MS 100
#define MAX_REQUEST_HEAD 16384   /* request line + headers (civetweb) */
#define MAX_BODY 4096            /* endpoints without R_BODY take no body */

const int api_codes[API_NCODES] = { 0, 200, 400, 401, 404, 405, 406, 408, 409, 411, 413, 414,
                                    429, 431, 500, 501, 503, 505 };

/* Log-safe copy of request text: printable ASCII only, bounded. */
static void printable(char *out, size_t len, const char *in)
{
  size_t o = 0;
  for(const char *p = in ? in : ""; *p && o + 1 < len; p++)
    out[o++] = (*p >= 0x20 && *p < 0x7f) ? *p : '?';
  out[o] = '\0';
}
/* ---- request entry ------------------------------------------------------------- */

void api_count_status(api_t *a, size_t route, int status)
{
  size_t k = 0;
  for(size_t i = 1; i < API_NCODES; i++)
    if(api_codes[i] == status)
      k = i;
  atomic_fetch_add_explicit(&a->requests[route * API_NCODES + k], 1, memory_order_relaxed);
}

/* A body an endpoint does not take: a small one is read and dropped (the
 * connection stays usable), a large one refused. */
static int body_check(struct mg_connection *c, const struct mg_request_info *ri)
{
  const char *te = mg_get_header(c, "Transfer-Encoding");
  if(ri->content_length <= 0 && !te)
    return 0;
  if(ri->content_length > MAX_BODY) {
    mg_disable_connection_keep_alive(c);
    return api_error(c, 413, "request bodies are limited to %d bytes", MAX_BODY);
  }
  char buf[1024];
  long long total = 0;
  int n;
  while((n = mg_read(c, buf, sizeof(buf))) > 0) {
    total += n;
    if(total > MAX_BODY) {
      mg_disable_connection_keep_alive(c);
      return api_error(c, 413, "request bodies are limited to %d bytes", MAX_BODY);
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
  size_t route = api_nroutes;
  const route_t *hit = NULL;
  bool noauth = false;
  req_t q = { .ip = ri->remote_addr };
  const char *bad = NULL;
  int status, nseg = -1;

  /* The path as sent (civetweb does not decode it), split and decoded by
   * segment; each must match a route literally, dot segments included. */
  if(ri->local_uri_raw && strlen(ri->local_uri_raw) < sizeof(path)) {
    snprintf(path, sizeof(path), "%s", ri->local_uri_raw);
    nseg = api_split(path, seg, &bad);
  }
  for(size_t i = 0; nseg >= 0 && i < api_nroutes; i++) {
    req_t t = q;
    if(!api_match(&api_routes[i], seg, nseg, &t))
      continue;
    if(api_routes[i].flags & R_NOAUTH)
      noauth = true;
    if(!strcmp(api_routes[i].method, ri->request_method)) {
      hit = &api_routes[i];
      route = i;
      q = t;
      break;
    }
    if(!strstr(allow, api_routes[i].method) && strlen(allow) + 10 < sizeof(allow))
      snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
               allow[0] ? ", " : "", api_routes[i].method);
  }

  api_answering_t answering = { .a = a, .route = route };
  mg_set_user_connection_data(c, &answering);
  if(!noauth && (status = api_authenticate(a, c, q.ip)) != 0)
    goto done;
  if(!(hit && (hit->flags & R_BODY)) && (status = body_check(c, ri)) != 0)
    goto done;
  if(hit)
    status = hit->fn(a, c, hit, &q);
  else if(bad)
    status = api_error(c, 400, "%s", bad);
  else if(allow[0])
    status = api_error_h(c, 405, "Allow", allow, "method not allowed here (allowed: %s)", allow);
  else
    status = api_error(c, 404, "no such endpoint");
done:
  if(!answering.counted) /* answered without api_respond (not expected) */
    api_count_status(a, route, status);
  mg_set_user_connection_data(c, NULL);
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
  if(a && !mg_get_user_connection_data(c)) /* else on_request's answer counts */
    api_count_status(a, api_nroutes, status); /* before the answer, as api_respond */
  api_error(c, status, "%s", shown[0] ? shown : "bad request");
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
    api_digest(a, buf, lu + 1 + lp, a->cred);
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
  a->requests = m3s_xcalloc((api_nroutes + 1) * API_NCODES, sizeof(*a->requests));
  for(int r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    a->roles[r] = m3s_system_find(self->sys, api_role_actor[r]);
  a->offers = m3s_system_find(self->sys, "offers");
  a->mesos = m3s_system_find(self->sys, "mesos");
  a->store = m3s_system_find(self->sys, "store");
  a->kube = m3s_system_find(self->sys, "kube");
  a->rollout = m3s_system_find(self->sys, "rollout");
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
    "decode_url", "no", /* routing decodes each segment itself (api_split) */
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

/* civetweb 1.15's listening thread looks at its stop flag only between
 * polls of its sockets, each up to 2 s (SOCKET_TIMEOUT_QUANTUM), so mg_stop
 * alone takes up to 2 s. While it runs, a short-lived thread connects to
 * the port every KNOCK_MS: the poll returns, the thread sees the flag and
 * leaves, accepting nothing more. A knock that comes before the flag is
 * set is an empty connection, which a worker closes. */
#define KNOCK_MS 20

typedef struct knock {
  atomic_bool done;
  struct addrinfo *to;
} knock_t;

static void *knocker(void *p)
{
  knock_t *k = p;
  const struct timespec pause = { 0, KNOCK_MS * 1000000L };
  while(!atomic_load(&k->done)) {
    nanosleep(&pause, NULL);
    int fd = socket(k->to->ai_family, k->to->ai_socktype | SOCK_CLOEXEC, k->to->ai_protocol);
    if(fd < 0)
      continue;
    (void)connect(fd, k->to->ai_addr, k->to->ai_addrlen);
    close(fd);
  }
  return NULL;
}

static void stop_civetweb(api_t *a)
{
  char port[16];
  snprintf(port, sizeof(port), "%d", atomic_load_explicit(&a->port, memory_order_acquire));
  struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
  knock_t k = { .to = NULL };
  atomic_init(&k.done, false);
  pthread_t t;
  /* An unspecified bind address ("0.0.0.0", "::") is reached through it on
   * Linux; no bind address means every interface, loopback among them. An
   * IPv6 address may come in brackets, as civetweb takes it. */
  char host[sizeof(a->bind_host)];
  snprintf(host, sizeof(host), "%s", a->bind_host[0] ? a->bind_host : "127.0.0.1");
  if(host[0] == '[') {
    memmove(host, host + 1, strlen(host));
    host[strcspn(host, "]")] = '\0';
  }
  bool knocking = getaddrinfo(host, port, &hints, &k.to) == 0 &&
    pthread_create(&t, NULL, knocker, &k) == 0;
  mg_stop(a->mg); /* joins the workers: no request is running after it */
  if(knocking) {
    atomic_store(&k.done, true);
    pthread_join(t, NULL);
  }
  if(k.to)
    freeaddrinfo(k.to);
}

static void api_stop(m3s_actor_t *self)
{
  api_t *a = (api_t *)self;
  if(a->mg)
    stop_civetweb(a);
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
        api_flight_unref(a->flights[r]);
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
