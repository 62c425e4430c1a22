/* The REST API actor (src/http/) over real HTTP and HTTPS on 127.0.0.1.
 *
 * Each test starts an actor system with small fake actors under the names
 * the API asks ("datastore", "server", "agent", "offers", "mesos", "store")
 * that answer the protocol of role.h, offers.h, mesos.h and store.h, plus
 * the api actor bound to 127.0.0.1 on a free port, and talks to it with
 * libcurl (and raw sockets for malformed requests and slow clients). TLS
 * uses a throwaway certificate made by the openssl command in a temporary
 * directory. Only loopback addresses are used: the client-throttling test
 * connects from 127.0.0.2 to tell clients apart.
 */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/api.h"
#include "m3s/config.h"
#include "m3s/kube.h"
#include "m3s/log.h"
#include "m3s/mesos.h"
#include "m3s/offers.h"
#include "m3s/reply.h"
#include "m3s/role.h"
#include "m3s/store.h"
#include "check_main.h"
#include "redis_fixture.h"

#define USER "operator"
#define PASS "s3cr:et-pass"   /* a ':' in the password is legal */

/* The logger is given one secret that appears nowhere (an empty list
 * would make it qsort a NULL array). */
static const char *const dummy_secret[] = { "m3s-test-secret-that-is-never-used" };

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- fake actors ----------------------------------------------------------- */

enum { F_DATASTORE, F_SERVER, F_AGENT, F_OFFERS, F_MESOS, F_STORE, F_KUBE, NFAKES };
/* Without a kube actor unless a test asks for one (status/k8s then answers
 * from the agent role alone). */
#define DEFAULT_FAKES ((1u << F_KUBE) - 1u)
/* In place of the fake store: the real store actor (REDIS_SERVER in env). */
#define REAL_STORE (1u << NFAKES)
enum { MODE_NORMAL, MODE_IGNORE, MODE_SLOW };

/* Behaviour set by the test thread, read by the fakes: atomics. */
static _Atomic int fake_mode[NFAKES];
static _Atomic int slow_ms = 600;
static _Atomic int cluster_answer;      /* 0 or -errno */
static _Atomic int last_cluster_op;
static _Atomic int cordoned = -1;
static _Atomic int agent_healthy = 1;
static _Atomic int role_refuse;         /* scale/resources answer -EINVAL */
static _Atomic int unexpected;
static _Atomic int status_calls[NFAKES];
static _Atomic int store_down;          /* the fake store reports Redis down */
static _Atomic int hold_scale;          /* roles take a scale, answer it later */
static m3s_reply_t *_Atomic held[NFAKES]; /* a held scale answer, by role */
/* Fakes (bit per fake) whose STATUS requests are held unanswered until
 * release_status(): a source that is slow for as long as a test wants. */
static _Atomic unsigned hold_status;
enum { HELD_MAX = 8 };
static m3s_reply_t *_Atomic held_status[NFAKES][HELD_MAX];

typedef struct fake {
  m3s_actor_t base;
  int desired;
  m3s_task_resources_t res;
} fake_t;

static void json_drop(void *p)
{
  json_decref(p);
}

static void fake_handle(m3s_actor_t *self, m3s_msg_t *m);

static const m3s_actor_ops_t fake_ops[NFAKES] = {
  { .name = "datastore", .size = sizeof(fake_t), .handle = fake_handle },
  { .name = "server", .size = sizeof(fake_t), .handle = fake_handle },
  { .name = "agent", .size = sizeof(fake_t), .handle = fake_handle },
  { .name = "offers", .size = sizeof(fake_t), .handle = fake_handle },
  { .name = "mesos", .size = sizeof(fake_t), .handle = fake_handle },
  { .name = "store", .size = sizeof(fake_t), .handle = fake_handle },
  { .name = "kube", .size = sizeof(fake_t), .handle = fake_handle },
};

static void answer(m3s_msg_t *m, int64_t arg, uint32_t flags, json_t *j)
{
  m3s_msg_t *a = m3s_msg_new(m->type, arg, j, j ? json_drop : NULL);
  a->flags = flags;
  ck_assert_int_eq(m3s_msg_reply(m, a), 0);
}

static json_t *role_status(const fake_t *f, int idx)
{
  json_t *tasks = json_object();
  for(int i = 0; i < f->desired; i++) {
    char id[40];
    snprintf(id, sizeof(id), "%s-task-%d", fake_ops[idx].name, i);
    json_object_set_new(tasks, id,
                        json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "state",
                                  i == 0 ? "TASK_RUNNING" : "TASK_STAGING", "agent", "a1",
                                  "hostname", "h1", "since", "", "healthy", i == 0, "phase",
                                  "active"));
  }
  bool healthy = idx != F_AGENT || atomic_load(&agent_healthy);
  return json_pack("{s:s, s:i, s:i, s:b, s:b, s:I, s:{s:f, s:f, s:f, s:f, s:f, s:f}, s:o}",
                   "role", fake_ops[idx].name, "desired", f->desired, "restore", 0,
                   "upstream_healthy", 1, "healthy", healthy, "backoff_ms", (json_int_t)0,
                   "resources", "cpus", f->res.cpu, "cpus_limit", f->res.cpu_limit, "mem",
                   f->res.mem, "mem_limit", f->res.mem_limit, "disk", f->res.disk,
                   "disk_limit", f->res.disk_limit, "tasks", tasks);
}

static void fake_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  fake_t *f = (fake_t *)self;
  int idx = (int)(self->ops - fake_ops);
  int mode = atomic_load(&fake_mode[idx]);
  if(mode == MODE_IGNORE)
    return; /* retired unanswered: the caller learns at once */
  if(mode == MODE_SLOW)
    m3s_check_sleep_ms(atomic_load(&slow_ms));
  bool role = idx <= F_AGENT;
  bool status = m->type == M3S_ROLE_STATUS || m->type == M3S_OFFERS_STATUS ||
                m->type == M3S_MESOS_STATUS || m->type == M3S_STORE_STATUS ||
                m->type == M3S_KUBE_STATUS;
  if(status && (atomic_load(&hold_status) & (1u << idx))) {
    m3s_reply_t *r = m3s_msg_take_reply(m);
    for(int i = 0; r && i < HELD_MAX; i++) {
      m3s_reply_t *none = NULL;
      if(atomic_compare_exchange_strong(&held_status[idx][i], &none, r))
        r = NULL;
    }
    m3s_reply_finish(r, NULL); /* no room: dropped */
    return;
  }
  switch(m->type) {
  case M3S_ROLE_SCALE:
    if(!role)
      break;
    if(atomic_load(&role_refuse) || m->arg < 0 || m->arg > M3S_ROLE_MAX_COUNT) {
      answer(m, -EINVAL, M3S_ROLE_ERROR, NULL);
      return;
    }
    if(atomic_load(&hold_scale)) { /* as a role while Redis is down */
      m3s_reply_finish(atomic_exchange(&held[idx], m3s_msg_take_reply(m)), NULL);
      f->desired = (int)m->arg;
      return;
    }
    answer(m, m->arg - f->desired, 0, NULL);
    f->desired = (int)m->arg;
    return;
  case M3S_ROLE_SET_RESOURCE: {
    if(!role)
      break;
    m3s_role_resource_t *r = m->payload;
    if(atomic_load(&role_refuse)) {
      answer(m, -EINVAL, M3S_ROLE_ERROR, NULL);
      return;
    }
    double *field[] = { &f->res.cpu, &f->res.cpu_limit, &f->res.mem, &f->res.mem_limit,
                        &f->res.disk, &f->res.disk_limit };
    *field[r->kind] = r->value;
    answer(m, 0, 0, NULL);
    return;
  }
  case M3S_ROLE_STATUS:
    if(!role)
      break;
    atomic_fetch_add(&status_calls[idx], 1);
    answer(m, 0, 0, role_status(f, idx));
    return;
  case M3S_OFFERS_CLUSTER: {
    if(idx != F_OFFERS)
      break;
    atomic_store(&last_cluster_op, (int)m->arg);
    int a = atomic_load(&cluster_answer);
    answer(m, a, a ? M3S_ROLE_ERROR : 0, NULL);
    return;
  }
  case M3S_OFFERS_SCHEDULING:
    if(idx != F_OFFERS)
      break;
    atomic_store(&cordoned, (int)m->arg);
    answer(m, 0, 0, NULL);
    return;
  case M3S_OFFERS_STATUS:
    if(idx != F_OFFERS)
      break;
    answer(m, 0, 0,
           json_pack("{s:I, s:{s:I, s:I, s:I}, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:s, s:b}",
                     "pending", (json_int_t)2, "pending_by_role", "datastore", (json_int_t)0,
                     "server", (json_int_t)1, "agent", (json_int_t)1, "subscribed", 1,
                     "suppressed", 0, "offers_received", (json_int_t)7, "offers_accepted",
                     (json_int_t)3, "offers_declined", (json_int_t)4, "rescinds",
                     (json_int_t)1, "launched", (json_int_t)3, "cluster_operation",
                     "restart", "disable_scheduling", atomic_load(&cordoned) == 1));
    return;
  case M3S_MESOS_FORGET_ID:
    if(idx != F_MESOS)
      break;
    answer(m, 0, 0, NULL);
    return;
  case M3S_MESOS_STATUS:
    if(idx != F_MESOS)
      break;
    answer(m, 0, 0,
           json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "state",
                     "subscribed", "framework_id", "fw-1", "master", "127.0.0.1:5050",
                     "stream_id", "s", "subscriptions", (json_int_t)2, "reconnects",
                     (json_int_t)1, "events", (json_int_t)40, "calls_ok", (json_int_t)12,
                     "calls_failed", (json_int_t)1, "calls_queued", (json_int_t)0,
                     "offers_declined", (json_int_t)0, "stream_pauses", (json_int_t)5));
    return;
  case M3S_KUBE_STATUS:
    if(idx != F_KUBE)
      break;
    atomic_fetch_add(&status_calls[idx], 1);
    answer(m, 0, 0,
           json_pack("{s:b, s:I, s:{s:{s:s, s:s, s:b}}}", "connected", 1, "version",
                     (json_int_t)1, "nodes", "node-a", "task_id", "agent-task-0", "role",
                     "agent", "ready", 1));
    return;
  case M3S_STORE_STATUS:
    if(idx != F_STORE)
      break;
    answer(m, 0, 0,
           json_pack("{s:b, s:I, s:I, s:I, s:I}", "connected", !atomic_load(&store_down),
                     "queued", (json_int_t)0, "queued_batches",
                     (json_int_t)(atomic_load(&store_down) ? 3 : 0), "errors", (json_int_t)0,
                     "reconnects", (json_int_t)0));
    return;
  }
  atomic_fetch_add(&unexpected, 1);
}

/* Stops holding STATUS requests; the held ones are dropped unanswered. */
static void release_status(void)
{
  atomic_store(&hold_status, 0);
  for(int i = 0; i < NFAKES; i++)
    for(int k = 0; k < HELD_MAX; k++)
      m3s_reply_finish(atomic_exchange(&held_status[i][k], NULL), NULL);
}

static void fakes_reset(void)
{
  for(int i = 0; i < NFAKES; i++) {
    atomic_store(&fake_mode[i], MODE_NORMAL);
    atomic_store(&status_calls[i], 0);
  }
  atomic_store(&cluster_answer, 0);
  atomic_store(&last_cluster_op, 0);
  atomic_store(&cordoned, -1);
  atomic_store(&agent_healthy, 1);
  atomic_store(&role_refuse, 0);
  atomic_store(&unexpected, 0);
  atomic_store(&store_down, 0);
  atomic_store(&hold_scale, 0);
  for(int i = 0; i < NFAKES; i++)
    m3s_reply_finish(atomic_exchange(&held[i], NULL), NULL);
  release_status();
}

/* ---- harness ----------------------------------------------------------------- */

typedef struct harness {
  m3s_config_t cfg;
  m3s_system_t *sys;
  m3s_actor_t *api;
  int rc;
  int port;
  bool tls;
  char cafile[128];
} harness_t;

/* Starts the fakes in `fakes` (bit mask; DEFAULT_FAKES: all but kube) and
 * the api actor.
 * env: extra variables (NULL-terminated pairs) or NULL. */
static void harness_start_env(harness_t *h, const char *const *env, unsigned fakes,
                              const m3s_api_opts_t *opts)
{
  const char *kv[32] = { "FRAMEWORK_HOSTNAME", "localhost", "FRAMEWORK_NAME", "test" };
  size_t n = 4;
  for(size_t i = 0; env && env[i]; i += 2) {
    kv[n++] = env[i];
    kv[n++] = env[i + 1];
  }
  kv[n++] = NULL;
  kv[n] = NULL;
  char err[512];
  memset(h, 0, sizeof(*h));
  ck_assert_msg(m3s_config_load(&h->cfg, m3s_check_getenv, (void *)kv, err, sizeof(err)) == 0, "%s",
                err);
  fakes_reset();
  h->sys = m3s_system_new(&h->cfg);
  for(int i = 0; i < NFAKES; i++)
    if(fakes & (1u << i) && !(i == F_STORE && fakes & REAL_STORE))
      m3s_system_add(h->sys, &fake_ops[i]);
  if(fakes & REAL_STORE)
    m3s_system_add(h->sys, &m3s_store_ops);
  h->api = m3s_system_add(h->sys, &m3s_api_ops);
  m3s_api_opts_t o = opts ? *opts : (m3s_api_opts_t){ 0 };
  o.bind_host = "127.0.0.1";
  if(!o.port)
    o.port = M3S_API_ANY_PORT;
  if(!o.auth_fail_max)
    o.auth_fail_max = 1000;
  if(!o.status_max_age_ms) /* fakes change behind the API's back: no reuse */
    o.status_max_age_ms = -1;
  m3s_api_set_opts(h->api, &o);
  h->tls = h->cfg.ssl_crt_pem[0] != '\0';
  h->rc = m3s_system_start(h->sys);
  h->port = h->rc == 0 ? m3s_api_port(h->api) : 0;
}

static void harness_start(harness_t *h, const m3s_api_opts_t *opts)
{
  static const char *const auth[] = { "AUTH_USERNAME", USER, "AUTH_PASSWORD", PASS, NULL };
  harness_start_env(h, auth, DEFAULT_FAKES, opts);
  ck_assert_int_eq(h->rc, 0);
  ck_assert_int_gt(h->port, 0);
}

static void harness_free(harness_t *h)
{
  if(h->rc == 0)
    m3s_system_stop(h->sys);
  release_status(); /* any the fakes held while the test ended */
  m3s_system_free(h->sys);
  m3s_config_free(&h->cfg);
  ck_assert_int_eq(atomic_load(&unexpected), 0);
}

/* ---- HTTP client ------------------------------------------------------------------ */

typedef struct resp {
  long status;
  char body[65536];
  size_t len;
  char headers[8192];
  size_t hlen;
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
  resp_t *r = ud;
  size_t len = size * n;
  size_t room = sizeof(r->body) - 1 - r->len;
  memcpy(r->body + r->len, p, len < room ? len : room);
  r->len += len < room ? len : room;
  r->body[r->len] = '\0';
  return len;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
  resp_t *r = ud;
  size_t len = size * n;
  size_t room = sizeof(r->headers) - 1 - r->hlen;
  memcpy(r->headers + r->hlen, p, len < room ? len : room);
  r->hlen += len < room ? len : room;
  r->headers[r->hlen] = '\0';
  return len;
}

typedef struct req_opts {
  const char *userpwd;     /* "user:password" or NULL */
  const char *iface;       /* source address, e.g. "127.0.0.2" */
  const char *body;
  long tls_max;            /* CURL_SSLVERSION_MAX_* or 0 */
  long tls_min;            /* CURL_SSLVERSION_* or 0 */
  bool plain_on_tls;       /* speak http:// to a TLS port */
} req_opts_t;

static CURLcode http_x(const harness_t *h, const char *method, const char *path,
                       const req_opts_t *o, resp_t *r)
{
  char url[1024];
  snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", h->tls && !o->plain_on_tls ? "https" : "http",
           h->port, path);
  memset(r, 0, sizeof(*r));
  CURL *c = curl_easy_init();
  ck_assert_ptr_nonnull(c);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
  if(!strcmp(method, "HEAD"))
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 15000L);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
  if(o->userpwd) {
    curl_easy_setopt(c, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(c, CURLOPT_USERPWD, o->userpwd);
  }
  if(o->iface)
    curl_easy_setopt(c, CURLOPT_INTERFACE, o->iface);
  if(o->body) {
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, o->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(o->body));
  }
  if(h->tls) {
    curl_easy_setopt(c, CURLOPT_CAINFO, h->cafile);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if(o->tls_min || o->tls_max)
      curl_easy_setopt(c, CURLOPT_SSLVERSION, o->tls_min | o->tls_max);
  }
  CURLcode rc = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_cleanup(c);
  return rc;
}

static void http(const harness_t *h, const char *method, const char *path, const char *userpwd,
                 resp_t *r)
{
  req_opts_t o = { .userpwd = userpwd };
  CURLcode rc = http_x(h, method, path, &o, r);
  ck_assert_msg(rc == CURLE_OK, "%s %s: %s", method, path, curl_easy_strerror(rc));
}

/* The value of a response header (first occurrence), or NULL. */
static const char *header(const resp_t *r, const char *name, char *out, size_t len)
{
  size_t nl = strlen(name);
  for(const char *p = r->headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if(!strncasecmp(p, name, nl) && p[nl] == ':') {
      p += nl + 1;
      while(*p == ' ')
        p++;
      size_t n = strcspn(p, "\r\n");
      snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), p);
      return out;
    }
  }
  return NULL;
}

static void assert_header(const resp_t *r, const char *name, const char *want)
{
  char v[256];
  const char *got = header(r, name, v, sizeof(v));
  if(!want)
    ck_assert_msg(!got, "unexpected %s: %s", name, got);
  else {
    ck_assert_msg(got, "no %s header in\n%s", name, r->headers);
    ck_assert_str_eq(got, want);
  }
}

/* A JSON error body {"error": non-empty string}, nothing else. */
static void assert_json_error(const resp_t *r)
{
  json_error_t e;
  json_t *j = json_loads(r->body, 0, &e);
  ck_assert_msg(j, "not JSON: %s", r->body);
  ck_assert_int_eq(json_object_size(j), 1);
  const char *msg = json_string_value(json_object_get(j, "error"));
  ck_assert_msg(msg && *msg, "no error message in %s", r->body);
  json_decref(j);
  assert_header(r, "Content-Type", "application/json");
}

static void expect(const harness_t *h, const char *method, const char *path, long status,
                   const char *ctype, const char *body)
{
  resp_t r;
  http(h, method, path, USER ":" PASS, &r);
  ck_assert_msg(r.status == status, "%s %s: %ld, want %ld (%s)", method, path, r.status, status,
                r.body);
  if(ctype)
    assert_header(&r, "Content-Type", ctype);
  if(body)
    ck_assert_str_eq(r.body, body);
  if(status >= 400 && strcmp(method, "HEAD"))
    assert_json_error(&r);
}

/* ---- raw sockets --------------------------------------------------------------------- */

/* A connected socket to 127.0.0.1:port, or -1. */
static int try_connect(int port)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
    close(fd);
    fd = -1;
  }
  return fd;
}

static int connect_to(int port)
{
  int fd = try_connect(port);
  ck_assert_int_ne(fd, -1);
  return fd;
}

/* Sends bytes, reads until the server closes or timeout_ms; returns the
 * number of bytes read (the response is NUL-terminated in out). */
static size_t raw(int port, const char *bytes, size_t len, char *out, size_t outlen,
                  int timeout_ms)
{
  int fd = connect_to(port);
  size_t off = 0;
  while(off < len) {
    ssize_t w = send(fd, bytes + off, len - off, MSG_NOSIGNAL);
    if(w <= 0)
      break;
    off += (size_t)w;
  }
  size_t got = 0;
  int64_t deadline = now_ms() + timeout_ms;
  while(got + 1 < outlen) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int64_t left = deadline - now_ms();
    if(left <= 0 || poll(&p, 1, (int)left) <= 0)
      break;
    ssize_t r = recv(fd, out + got, outlen - 1 - got, 0);
    if(r <= 0)
      break;
    got += (size_t)r;
  }
  out[got] = '\0';
  close(fd);
  return got;
}

/* ---- the endpoints ------------------------------------------------------------------- */

typedef struct endpoint {
  const char *method, *path;
  long status;              /* with the right credentials */
} endpoint_t;

static const endpoint_t endpoints[] = {
  { "DELETE", "/api/m3s/v0/framework", 200 },
  { "GET", "/api/m3s/v0/agent/scale/2", 200 },
  { "GET", "/api/m3s/v0/agent/scale", 200 },
  { "PUT", "/api/m3s/v0/agent/cordon", 200 },
  { "PUT", "/api/m3s/v0/agent/uncordon", 200 },
  { "GET", "/api/m3s/v0/server/scale/1", 200 },
  { "GET", "/api/m3s/v0/server/scale", 200 },
  { "GET", "/api/m3s/v0/server/config", 200 },
  { "GET", "/api/m3s/v0/server/version", 200 },
  { "GET", "/api/m3s/v0/datastore/scale/1", 200 },
  { "GET", "/api/m3s/v0/datastore/scale", 200 },
  { "GET", "/api/m3s/v0/etcd/scale/1", 200 },
  { "GET", "/api/m3s/v0/etcd/scale", 200 },
  { "GET", "/api/m3s/v0/status/m3s", 200 },
  { "GET", "/api/m3s/v0/status/k8s", 200 },
  { "PUT", "/api/m3s/v0/cluster/shutdown", 200 },
  { "PUT", "/api/m3s/v0/cluster/start", 200 },
  { "PUT", "/api/m3s/v0/cluster/restart", 200 },
  { "PUT", "/api/m3s/v0/server/restart", 200 },
  { "PUT", "/api/m3s/v0/agent/restart", 200 },
  { "PUT", "/api/m3s/v0/ds/restart", 200 },
  { "PUT", "/api/m3s/v0/cluster/update", 400 }, /* no body */
  { "GET", "/api/m3s/v0/capabilities", 200 },
  { "PUT", "/api/m3s/v0/server/cpus/2", 200 },
  { "PUT", "/api/m3s/v0/agent/memoryLimit/4096", 200 },
  { "PUT", "/api/m3s/v0/ds/diskLimit/100.5", 200 },
  { "GET", "/metrics", 200 },
  { "GET", "/api/m3s/v0/status", 200 },
  { "GET", "/api/m3s/v0/events", 200 },
  { "GET", "/", 200 },
  { "GET", "/ui/app.js", 200 },
  { "GET", "/ui/style.css", 200 },
  { "GET", "/api/m3s/v0/no/such/thing", 404 },
  { "POST", "/api/m3s/v0/agent/scale", 405 },
};

/* No credentials, wrong ones, right ones -> 401, 401, the answer. */
START_TEST(auth_every_endpoint)
{
  harness_t h;
  harness_start(&h, NULL);
  static const char *const wrong[] = { USER ":nope", "nobody:" PASS, USER, ":" PASS,
                                       USER ":" PASS "x", USER "x:" PASS };
  for(size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
    const endpoint_t *e = &endpoints[i];
    resp_t r;
    http(&h, e->method, e->path, NULL, &r);
    ck_assert_msg(r.status == 401, "%s %s without credentials: %ld", e->method, e->path,
                  r.status);
    assert_header(&r, "WWW-Authenticate", "Basic realm=\"m3s\"");
    assert_json_error(&r);
    http(&h, e->method, e->path, wrong[i % 6], &r);
    ck_assert_msg(r.status == 401, "%s %s with %s: %ld", e->method, e->path, wrong[i % 6],
                  r.status);
    assert_header(&r, "WWW-Authenticate", "Basic realm=\"m3s\"");
    assert_json_error(&r);
    http(&h, e->method, e->path, USER ":" PASS, &r);
    ck_assert_msg(r.status == e->status, "%s %s: %ld, want %ld (%s)", e->method, e->path,
                  r.status, e->status, r.body);
    if(e->status < 400 && strncmp(e->path, "/api/m3s/v0", 11) == 0)
      assert_header(&r, "Api-Service", "v0");
  }
  /* The two endpoints without authentication. */
  resp_t r;
  http(&h, "GET", "/api/m3s/versions", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "/api/m3s/v0");
  assert_header(&r, "Content-Type", "text/plain; charset=utf-8");
  assert_header(&r, "Api-Service", "-");
  http(&h, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  /* No kube actor in this harness: the K3s side is "unknown". */
  ck_assert_str_eq(r.body, "{\"status\":\"ok\",\"redis\":true,\"mesos\":\"subscribed\","
                           "\"k3s\":\"unknown\"}");
  assert_header(&r, "Content-Type", "application/json");
  /* A malformed Authorization header is a 401 too. */
  static const char *const bad_headers[] = {
    "Authorization: Basic", "Authorization: Basic !!!!", "Authorization: Bearer abc",
    "Authorization: Basic b3BlcmF0b3I=", /* "operator", no colon */
  };
  for(size_t i = 0; i < sizeof(bad_headers) / sizeof(bad_headers[0]); i++) {
    char req[512], out[4096];
    snprintf(req, sizeof(req), "GET /api/m3s/v0/agent/scale HTTP/1.1\r\nHost: x\r\n%s\r\n"
                               "Connection: close\r\n\r\n", bad_headers[i]);
    raw(h.port, req, strlen(req), out, sizeof(out), 5000);
    ck_assert_msg(!strncmp(out, "HTTP/1.1 401", 12), "%s -> %s", bad_headers[i], out);
  }
  harness_free(&h);
}
END_TEST

START_TEST(answers_like_the_original)
{
  harness_t h;
  harness_start(&h, NULL);
  resp_t r;

  /* scale: the difference, as text; datastore as text/plain */
  expect(&h, "GET", "/api/m3s/v0/agent/scale/3", 200, "application/json", "3");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/1", 200, "application/json", "-2");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/1", 200, "application/json", "0");
  expect(&h, "GET", "/api/m3s/v0/server/scale/2", 200, "application/json", "2");
  expect(&h, "GET", "/api/m3s/v0/datastore/scale/1", 200, "text/plain; charset=utf-8", "1");
  expect(&h, "GET", "/api/m3s/v0/etcd/scale/3", 200, "text/plain; charset=utf-8", "2");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/0010", 200, "application/json", "9");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/10000", 200, "application/json", "9990");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/2", 200, "application/json", "-9998");
  /* counts */
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, "application/json",
         "{\"Scale\":2,\"Running\":2}");
  expect(&h, "GET", "/api/m3s/v0/server/scale", 200, "application/json",
         "{\"Scale\":2,\"Running\":2}");
  expect(&h, "GET", "/api/m3s/v0/etcd/scale", 200, "application/json",
         "{\"Scale\":3,\"Running\":3}");
  /* the plugin's "//api/..." */
  expect(&h, "GET", "//api/m3s/v0/agent/scale", 200, "application/json",
         "{\"Scale\":2,\"Running\":2}");
  expect(&h, "GET", "//api//m3s/v0///server/scale/", 200, "application/json",
         "{\"Scale\":2,\"Running\":2}");
  /* cordon */
  expect(&h, "PUT", "/api/m3s/v0/agent/cordon", 200, "application/json",
         "Nodes Cordoned, Scheduling will be disabled");
  ck_assert_int_eq(atomic_load(&cordoned), 1);
  expect(&h, "PUT", "/api/m3s/v0/agent/uncordon", 200, "application/json",
         "Nodes Uncordoned, Scheduling will now resume");
  ck_assert_int_eq(atomic_load(&cordoned), 0);
  /* kubeconfig: none yet -> 200, empty, no content type */
  http(&h, "GET", "//api/m3s/v0/server/config", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_uint_eq(r.len, 0);
  assert_header(&r, "Content-Type", NULL);
  /* version */
  http(&h, "GET", "//api/m3s/v0/server/version", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  json_t *v = json_loads(r.body, 0, NULL);
  ck_assert_ptr_nonnull(v);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(v, "M3SVersion"),
                                                     "gitVersion")), M3S_VERSION);
  ck_assert(json_is_string(json_object_get(json_object_get(v, "M3SVersion"), "buildDate")));
  ck_assert(json_is_null(json_object_get(v, "K3SVersion")));
  ck_assert(!strncmp(r.body, "{\"M3SVersion\":{\"gitVersion\":", 28));
  json_decref(v);
  /* status/m3s: shape and order of the original */
  http(&h, "GET", "//api/m3s/v0/status/m3s", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body,
                   "{\"Server\":{\"server-task-0\":{\"Status\":\"TASK_RUNNING\",\"K3sNodeName\":"
                   "\"\"},\"server-task-1\":{\"Status\":\"TASK_STAGING\",\"K3sNodeName\":\"\"}},"
                   "\"Agent\":{\"agent-task-0\":{\"Status\":\"TASK_RUNNING\",\"K3sNodeName\":\"\"},"
                   "\"agent-task-1\":{\"Status\":\"TASK_STAGING\",\"K3sNodeName\":\"\"}},"
                   "\"API\":\"\",\"Datastore\":{\"datastore-task-0\":\"TASK_RUNNING\","
                   "\"datastore-task-1\":\"TASK_STAGING\",\"datastore-task-2\":\"TASK_STAGING\"},"
                   "\"Outdated\":{\"Datastore\":[],\"Server\":[],\"Agent\":[]}}");
  /* status/k8s */
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, "application/json", "ok");
  atomic_store(&agent_healthy, 0);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, "application/json", "nok");
  /* cluster operations: answered at once */
  static const struct { const char *path; int op; const char *body; } ops[] = {
    { "/api/m3s/v0/cluster/shutdown", M3S_CLUSTER_SHUTDOWN, "" },
    { "/api/m3s/v0/cluster/start", M3S_CLUSTER_START, "" },
    { "/api/m3s/v0/cluster/restart", M3S_CLUSTER_RESTART, "Restart Scheduled." },
    { "/api/m3s/v0/server/restart", M3S_CLUSTER_RESTART_SERVER, "Restart Scheduled." },
    { "/api/m3s/v0/agent/restart", M3S_CLUSTER_RESTART_AGENT, "Restart Scheduled." },
    { "/api/m3s/v0/ds/restart", M3S_CLUSTER_RESTART_DS, "Restart Scheduled." },
  };
  for(size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
    atomic_store(&cluster_answer, 0);
    expect(&h, "PUT", ops[i].path, 200, "application/json", ops[i].body);
    ck_assert_int_eq(atomic_load(&last_cluster_op), ops[i].op);
    atomic_store(&cluster_answer, -EALREADY);
    expect(&h, "PUT", ops[i].path, 406, NULL, NULL);
    atomic_store(&cluster_answer, -EBUSY);
    expect(&h, "PUT", ops[i].path, 409, NULL, NULL);
  }
  atomic_store(&cluster_answer, 0);
  /* resources reach the role, with the right kind */
  expect(&h, "PUT", "/api/m3s/v0/server/cpus/2.5", 200, "application/json", "Resources Updated");
  expect(&h, "PUT", "/api/m3s/v0/agent/memoryLimit/4096", 200, NULL, "Resources Updated");
  expect(&h, "PUT", "/api/m3s/v0/ds/disk/0", 200, NULL, "Resources Updated");
  m3s_msg_t *ans = NULL;
  ck_assert_int_eq(m3s_call(m3s_system_find(h.sys, "server"),
                            m3s_msg_new(M3S_ROLE_STATUS, 0, NULL, NULL), 5000, &ans), 0);
  json_t *res = json_object_get(ans->payload, "resources");
  ck_assert(json_real_value(json_object_get(res, "cpus")) == 2.5);
  m3s_msg_free(ans);
  ck_assert_int_eq(m3s_call(m3s_system_find(h.sys, "agent"),
                            m3s_msg_new(M3S_ROLE_STATUS, 0, NULL, NULL), 5000, &ans), 0);
  res = json_object_get(ans->payload, "resources");
  ck_assert(json_real_value(json_object_get(res, "mem_limit")) == 4096);
  ck_assert(json_real_value(json_object_get(res, "mem")) == 0);
  m3s_msg_free(ans);
  /* the role refusing a value or count is a 400 */
  atomic_store(&role_refuse, 1);
  expect(&h, "PUT", "/api/m3s/v0/server/cpus/0", 400, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/server/scale/1", 400, NULL, NULL);
  atomic_store(&role_refuse, 0);
  harness_free(&h);
}
END_TEST

/* Every route capabilities lists exists (placeholders filled in), and
 * status-k3s points at the real status route. */
START_TEST(capabilities_are_real)
{
  harness_t h;
  harness_start(&h, NULL);
  resp_t r;
  http(&h, "GET", "/api/m3s/v0/capabilities", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  assert_header(&r, "Content-Type", "application/json");
  json_t *caps = json_loads(r.body, 0, NULL);
  ck_assert(json_is_array(caps));
  ck_assert_int_ge(json_array_size(caps), 35);
  bool status_k3s = false;
  size_t i;
  json_t *e;
  json_array_foreach(caps, i, e) {
    char name[64], path[128], method[16], filled[160];
    ck_assert_int_eq(sscanf(json_string_value(e), "%63[^,], %127[^,], %15s", name, path, method),
                     3);
    const char *brace = strchr(path, '{');
    snprintf(filled, sizeof(filled), "%.*s%s", brace ? (int)(brace - path) : (int)strlen(path),
             path, brace ? "1" : "");
    if(!strcmp(name, "status-k3s")) {
      status_k3s = true;
      ck_assert_str_eq(path, "/api/m3s/v0/status/k8s");
    }
    http(&h, method, filled, USER ":" PASS, &r);
    ck_assert_msg(r.status != 404 && r.status != 405, "%s %s: %ld", method, filled, r.status);
  }
  ck_assert(status_k3s);
  json_decref(caps);
  harness_free(&h);
}
END_TEST

START_TEST(bad_inputs)
{
  harness_t h;
  harness_start(&h, NULL);
  static const char *const counts[] = { "abc", "-1", "10001", "1e3", "%201", "+3", "0x10",
                                        "99999999999999999999", "1.0", "%2D1", "3a" };
  for(size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    char path[128];
    snprintf(path, sizeof(path), "/api/m3s/v0/agent/scale/%s", counts[i]);
    expect(&h, "GET", path, 400, NULL, NULL);
    snprintf(path, sizeof(path), "/api/m3s/v0/etcd/scale/%s", counts[i]);
    expect(&h, "GET", path, 400, NULL, NULL);
  }
  static const char *const values[] = { "-1", "abc", "1e5", "inf", "nan", "1.", ".5", "1..2",
                                        "0x1", "%2D2", "1,5", "1234567890123456789012345" };
  for(size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
    char path[128];
    snprintf(path, sizeof(path), "/api/m3s/v0/agent/cpus/%s", values[i]);
    expect(&h, "PUT", path, 400, NULL, NULL);
  }
  /* unknown paths and methods */
  expect(&h, "GET", "/index.html", 404, NULL, NULL);
  expect(&h, "GET", "/ui", 404, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0", 404, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/agent/scale/1/2", 404, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/task/kill/x", 404, NULL, NULL);
  expect(&h, "PUT", "/api/m3s/v0/worker/cpus/1", 404, NULL, NULL);
  expect(&h, "PUT", "/api/m3s/v0/agent/gpus/1", 404, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/ds/scale/1", 404, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/a/b/c/d/e/f/g/h/i/j", 404, NULL, NULL);
  expect(&h, "PUT", "/api/m3s/v0/agent/scale/3", 405, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/cluster/restart", 405, NULL, NULL);
  expect(&h, "POST", "/api/m3s/v0/status/m3s", 405, NULL, NULL);
  expect(&h, "HEAD", "/api/m3s/v0/agent/scale", 405, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/framework", 405, NULL, NULL);
  resp_t r;
  http(&h, "DELETE", "/api/m3s/v0/cluster/start", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 405);
  assert_header(&r, "Allow", "PUT");
  /* a request body: small ones are ignored, big ones refused */
  req_opts_t o = { .userpwd = USER ":" PASS, .body = "{\"x\":1}" };
  ck_assert_int_eq(http_x(&h, "PUT", "/api/m3s/v0/agent/cordon", &o, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  static char big[10000];
  memset(big, 'x', sizeof(big) - 1);
  o.body = big;
  ck_assert_int_eq(http_x(&h, "PUT", "/api/m3s/v0/agent/cordon", &o, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 413);
  assert_json_error(&r);
  /* malformed requests, answered by civetweb through our error hook */
  char out[8192];
  static const char *const junk[] = {
    "GARBAGE\r\n\r\n",
    "GET /health HTTP/9.9\r\n\r\n",
    "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", /* TLS on a plain port */
  };
  for(size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
    raw(h.port, junk[i], strlen(junk[i]), out, sizeof(out), 5000);
    /* an error status (civetweb echoes the version it got) with a JSON
     * error, or the connection closed without an answer */
    const char *sp = strchr(out, ' ');
    ck_assert_msg(out[0] == '\0' || (!strncmp(out, "HTTP/", 5) && sp &&
                                     (sp[1] == '4' || !strncmp(sp + 1, "505", 3)) &&
                                     strstr(out, "\r\n\r\n{\"error\":\"")),
                  "junk %zu -> %s", i, out);
  }
  /* headers beyond the limit */
  static char huge[40000];
  int n = snprintf(huge, sizeof(huge), "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");
  memset(huge + n, 'a', 30000);
  memcpy(huge + n + 30000, "\r\n\r\n", 5);
  raw(h.port, huge, strlen(huge), out, sizeof(out), 5000);
  ck_assert_msg(!strncmp(out, "HTTP/1.1 4", 10) || !strncmp(out, "HTTP/1.0 4", 10) ||
                  out[0] == '\0', "huge header -> %s", out);
  ck_assert_msg(out[0] == '\0' || strstr(out, "\r\n\r\n{\"error\":\""), "%s", out);
  /* and the server still serves */
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, "application/json", NULL);
  harness_free(&h);
}
END_TEST

START_TEST(actors_unavailable)
{
  /* Bounds are wide against the timeout, so that a busy machine cannot
   * blur "at once", "after one timeout" and "after several". */
  enum { TIMEOUT = 2000 };
  m3s_api_opts_t o = { .call_timeout_ms = TIMEOUT };
  harness_t h;
  harness_start(&h, &o);
  /* an actor that drops the request: 503 at once, not after the timeout */
  atomic_store(&fake_mode[F_AGENT], MODE_IGNORE);
  int64_t t0 = now_ms();
  expect(&h, "GET", "/api/m3s/v0/agent/scale/1", 503, NULL, NULL);
  ck_assert_int_lt(now_ms() - t0, TIMEOUT * 3 / 4);
  /* one that answers too late: 503 after the timeout; the late answer is
   * dropped safely */
  atomic_store(&fake_mode[F_AGENT], MODE_SLOW);
  atomic_store(&slow_ms, TIMEOUT * 2);
  t0 = now_ms();
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 503, NULL, NULL);
  int64_t took = now_ms() - t0;
  ck_assert_int_ge(took, TIMEOUT - 20);
  ck_assert_int_lt(took, TIMEOUT * 2);
  /* several slow actors cost one timeout, not one each */
  atomic_store(&fake_mode[F_SERVER], MODE_SLOW);
  atomic_store(&fake_mode[F_DATASTORE], MODE_SLOW);
  t0 = now_ms();
  resp_t r;
  http(&h, "GET", "/metrics", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_lt(now_ms() - t0, TIMEOUT * 2);
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_source_up{source=\"agent\"} 0"));
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_source_up{source=\"mesos\"} 1"));
  /* back to normal once the slow answers have drained */
  for(int i = 0; i < NFAKES; i++)
    atomic_store(&fake_mode[i], MODE_NORMAL);
  int64_t deadline = now_ms() + 60000;
  do {
    http(&h, "GET", "/api/m3s/v0/agent/scale", USER ":" PASS, &r);
    ck_assert_msg(r.status == 200 || now_ms() < deadline, "agent/scale: %ld", r.status);
  } while(r.status != 200);
  harness_free(&h);

  /* actors that are not there at all */
  static const char *const auth[] = { "AUTH_USERNAME", USER, "AUTH_PASSWORD", PASS, NULL };
  harness_start_env(&h, auth, 1u << F_AGENT, NULL);
  ck_assert_int_eq(h.rc, 0);
  expect(&h, "GET", "/api/m3s/v0/status/m3s", 503, NULL, NULL);
  expect(&h, "PUT", "/api/m3s/v0/cluster/restart", 503, NULL, NULL);
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, NULL, NULL);
  http(&h, "GET", "/metrics", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_source_up{source=\"store\"} 0"));
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_source_up{source=\"agent\"} 1"));
  harness_free(&h);
}
END_TEST

/* Redis down: /health stays 200 and says degraded; the status says why; a
 * scale the role took but could not save is a 503 that says so. */
START_TEST(degraded_and_status_page)
{
  m3s_api_opts_t o = { .call_timeout_ms = 300 };
  harness_t h;
  harness_start(&h, &o);
  resp_t r;
  http(&h, "GET", "/api/m3s/v0/status", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  json_t *j = json_loads(r.body, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "ok");
  ck_assert_int_eq(json_array_size(json_object_get(j, "problems")), 0);
  ck_assert_str_eq(json_string_value(json_object_get(j, "framework_id")), "fw-1");
  json_decref(j);

  atomic_store(&store_down, 1);
  http(&h, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_str_eq(r.body, "{\"status\":\"degraded\",\"redis\":false,\"mesos\":\"subscribed\","
                           "\"k3s\":\"unknown\",\"reason\":\"Redis is not connected\"}");
  http(&h, "GET", "/metrics", USER ":" PASS, &r);
  ck_assert_ptr_nonnull(strstr(r.body, "\nm3s_redis_connected 0\n"));
  expect(&h, "GET", "/api/m3s/v0/agent/scale/2", 200, NULL, "2"); /* answered at once */
  atomic_store(&hold_scale, 1);
  int64_t t0 = now_ms();
  http(&h, "GET", "/api/m3s/v0/agent/scale/5", USER ":" PASS, &r);
  ck_assert_int_lt(now_ms() - t0, 4000); /* the timeout (300 ms), not the mesos-cli's 5 s */
  ck_assert_int_eq(r.status, 503);
  assert_json_error(&r);
  ck_assert_msg(strstr(r.body, "Redis is unavailable, so the agent count 5 is not saved yet") &&
                  strstr(r.body, "3 write(s) queued") && strstr(r.body, "lost"),
                "%s", r.body);
  http(&h, "GET", "/api/m3s/v0/status", USER ":" PASS, &r);
  j = json_loads(r.body, 0, NULL);
  ck_assert_ptr_nonnull(j);
  ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "degraded");
  ck_assert_int_eq(json_is_false(json_object_get(j, "redis")), 1);
  json_t *agent = json_object_get(json_object_get(j, "roles"), "agent");
  ck_assert_int_eq(json_integer_value(json_object_get(agent, "desired")), 5);
  ck_assert_int_eq(json_integer_value(json_object_get(agent, "live")), 5);
  ck_assert_int_eq(json_integer_value(json_object_get(agent, "running")), 1);
  json_t *task = json_object_get(json_object_get(agent, "tasks"), "agent-task-0");
  ck_assert_str_eq(json_string_value(json_object_get(task, "state")), "TASK_RUNNING");
  ck_assert_str_eq(json_string_value(json_object_get(task, "host")), "h1");
  ck_assert_msg(strstr(json_string_value(json_array_get(json_object_get(j, "problems"), 0)),
                       "Redis is not connected"), "%s", r.body);
  json_decref(j);
  /* Redis up again but the confirmation late: a different, true message. */
  atomic_store(&store_down, 0);
  http(&h, "GET", "/api/m3s/v0/agent/scale/6", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert_msg(strstr(r.body, "the agent role has taken the agent count 6, but Redis did not confirm"),
                "%s", r.body);
  atomic_store(&hold_scale, 0);
  m3s_reply_finish(atomic_exchange(&held[F_AGENT], NULL), NULL);
  /* A role that does not answer at all: nothing is claimed. */
  atomic_store(&fake_mode[F_AGENT], MODE_SLOW);
  atomic_store(&slow_ms, 400);
  http(&h, "GET", "/api/m3s/v0/agent/scale/7", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 503);
  ck_assert_msg(strstr(r.body, "unknown whether it took"), "%s", r.body);
  /* The status answers without the agent role, and says it. */
  http(&h, "GET", "/api/m3s/v0/status", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_ptr_nonnull(strstr(r.body, "\"agent\":null"));
  ck_assert_ptr_nonnull(strstr(r.body, "the agent role did not answer"));
  m3s_check_sleep_ms(1500);
  atomic_store(&fake_mode[F_AGENT], MODE_NORMAL);

  /* The page and its files: embedded, typed, locked down. */
  http(&h, "GET", "/", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  assert_header(&r, "Content-Type", "text/html; charset=utf-8");
  ck_assert_ptr_nonnull(strstr(r.headers, "Content-Security-Policy: default-src 'none';"));
  ck_assert_ptr_nonnull(strstr(r.body, "<script src=\"/ui/app.js\""));
  http(&h, "GET", "//ui/app.js", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  assert_header(&r, "Content-Type", "text/javascript; charset=utf-8");
  ck_assert_ptr_nonnull(strstr(r.body, "/api/m3s/v0/status"));

  /* Events: the log ring, scrubbed, after a sequence number. */
  m3s_error("check_api event %d", 42); /* the suite logs errors only */
  http(&h, "GET", "/api/m3s/v0/events", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  j = json_loads(r.body, 0, NULL);
  ck_assert_ptr_nonnull(j);
  json_t *ev = json_object_get(j, "events");
  ck_assert_int_gt(json_array_size(ev), 0);
  json_int_t last = json_integer_value(json_object_get(j, "last"));
  ck_assert_ptr_nonnull(strstr(r.body, "check_api event 42"));
  json_decref(j);
  char path[80];
  snprintf(path, sizeof(path), "/api/m3s/v0/events?after=%lld", (long long)last);
  http(&h, "GET", path, USER ":" PASS, &r);
  j = json_loads(r.body, 0, NULL);
  ck_assert_int_eq(json_array_size(json_object_get(j, "events")), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "last")), last);
  json_decref(j);
  harness_free(&h);
}
END_TEST

START_TEST(failed_logins_are_throttled)
{
  m3s_api_opts_t o = { .auth_fail_max = 5, .auth_fail_window_ms = 2000 };
  harness_t h;
  harness_start(&h, &o);
  req_opts_t bad = { .userpwd = USER ":wrong", .iface = "127.0.0.2" };
  req_opts_t good2 = { .userpwd = USER ":" PASS, .iface = "127.0.0.2" };
  resp_t r;
  for(int i = 0; i < 5; i++) {
    ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &bad, &r), CURLE_OK);
    ck_assert_int_eq(r.status, 401);
  }
  int64_t locked_at = now_ms();
  ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &bad, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 429);
  assert_json_error(&r);
  char ra[16];
  ck_assert_ptr_nonnull(header(&r, "Retry-After", ra, sizeof(ra)));
  ck_assert_int_ge(strtol(ra, NULL, 10), 1);
  ck_assert_int_le(strtol(ra, NULL, 10), 2);
  /* locked out even with the right password, while another client is not */
  ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &good2, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 429);
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, NULL, NULL);
  /* the unauthenticated endpoints still answer */
  req_opts_t none2 = { .iface = "127.0.0.2" };
  ck_assert_int_eq(http_x(&h, "GET", "/health", &none2, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  /* after the window the client may try again */
  while(now_ms() - locked_at < 2100)
    m3s_check_sleep_ms(50);
  ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &good2, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  /* and a success resets its count */
  for(int i = 0; i < 4; i++) {
    ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &bad, &r), CURLE_OK);
    ck_assert_int_eq(r.status, 401);
  }
  ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &good2, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  ck_assert_int_eq(http_x(&h, "GET", "/api/m3s/v0/agent/scale", &bad, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 401);
  http(&h, "GET", "/metrics", USER ":" PASS, &r);
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_api_auth_failures_total 10\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_api_auth_throttled_total 2\n"));
  harness_free(&h);
}
END_TEST

/* Runs fn with stderr captured into a file; returns what was written. */
static char *capture_stderr(void (*fn)(void *), void *arg)
{
  char path[] = "/tmp/m3s-check-api-log-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ne(fd, -1);
  unlink(path);
  fflush(stderr);
  int saved = dup(2);
  dup2(fd, 2);
  fn(arg);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *text = calloc(1, (size_t)len + 1);
  ck_assert_int_eq(pread(fd, text, (size_t)len, 0), len);
  close(fd);
  return text;
}

static void run_open_api(void *p)
{
  harness_t *h = p;
  harness_start_env(h, NULL, DEFAULT_FAKES, NULL);
  ck_assert_int_eq(h->rc, 0);
  expect(h, "GET", "/api/m3s/v0/agent/scale", 200, NULL, NULL);
  resp_t r;
  http(h, "GET", "/api/m3s/v0/status/k8s", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  harness_free(h);
}

static void run_logged_api(void *p)
{
  harness_t *h = p;
  harness_start(h, NULL);
  resp_t r;
  http(h, "GET", "/api/m3s/v0/agent/scale", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  http(h, "GET", "/api/m3s/v0/agent/scale", USER ":" PASS "-typo", &r);
  ck_assert_int_eq(r.status, 401);
  http(h, "GET", "/api/m3s/v0/agent/scale", PASS ":" USER, &r);
  ck_assert_int_eq(r.status, 401);
  harness_free(h);
}

START_TEST(no_credentials_warns_and_logs_no_secret)
{
  /* No secrets registered with the logger: whatever reached stderr is
   * exactly what the code wrote. */
  m3s_log_init(M3S_LOG_DEBUG, dummy_secret, 1);
  harness_t h;
  char *log = capture_stderr(run_open_api, &h);
  ck_assert_msg(strstr(log, "NO AUTHENTICATION"), "no warning in:\n%s", log);
  free(log);
  log = capture_stderr(run_logged_api, &h);
  ck_assert_msg(strstr(log, "-> 401"), "requests are not logged:\n%s", log);
  ck_assert_msg(!strstr(log, PASS) && !strstr(log, "czNjcjpldC1wYXNz") &&
                  !strstr(log, "Authorization"), "a credential was logged:\n%s", log);
  ck_assert_msg(!strstr(log, "NO AUTHENTICATION"), "%s", log);
  free(log);
  m3s_log_init(M3S_LOG_ERROR, dummy_secret, 1);
}
END_TEST

/* ---- metrics ------------------------------------------------------------------------------ */

static int run_parser(const char *file, const char *const *required, bool quiet)
{
  const char *argv[64] = { "python3", M3S_API_TEST_DIR "/check_prometheus.py", file };
  int n = 3;
  for(; required && *required && n < 62; required++)
    argv[n++] = *required;
  argv[n] = NULL;
  pid_t pid = fork();
  ck_assert_int_ne(pid, -1);
  if(pid == 0) {
    if(quiet) {
      int null = open("/dev/null", O_WRONLY);
      dup2(null, 1);
    }
    execvp("python3", (char *const *)argv);
    _exit(127);
  }
  int status;
  while(waitpid(pid, &status, 0) == -1 && errno == EINTR)
    ;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void write_file(const char *path, const char *text, size_t len)
{
  FILE *f = fopen(path, "w");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(text, 1, len, f), len);
  fclose(f);
}

START_TEST(metrics_parse_as_prometheus_text)
{
  harness_t h;
  harness_start(&h, NULL);
  resp_t r;
  expect(&h, "GET", "/api/m3s/v0/agent/scale/3", 200, NULL, "3");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/x", 400, NULL, NULL);
  expect(&h, "GET", "/nope", 404, NULL, NULL);
  http(&h, "GET", "/metrics", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  assert_header(&r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  char path[] = "/tmp/m3s-check-api-metrics-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ne(fd, -1);
  close(fd);
  write_file(path, r.body, r.len);
  static const char *const required[] = {
    "m3s_build_info",
    "m3s_mesos_subscribed",
    "m3s_mesos_state{state=\"subscribed\"}",
    "m3s_mesos_reconnects_total",
    "m3s_mesos_stream_pauses_total",
    "m3s_mesos_calls_total{result=\"failed\"}",
    "m3s_redis_connected",
    "m3s_redis_errors_total",
    "m3s_redis_queued",
    "m3s_offers_pending_tasks",
    "m3s_offers_pending_tasks_by_role{role=\"server\"}",
    "m3s_offers_received_total",
    "m3s_offers_accepted_total",
    "m3s_offers_declined_total",
    "m3s_tasks_launched_total",
    "m3s_cluster_operation_running{operation=\"restart\"}",
    "m3s_role_desired{role=\"agent\"}",
    "m3s_tasks{role=\"agent\",state=\"TASK_RUNNING\"}",
    "m3s_tasks{role=\"agent\",state=\"TASK_STAGING\"}",
    "m3s_actor_mailbox_depth{actor=\"api\"}",
    "m3s_actor_mailbox_depth{actor=\"offers\"}",
    "m3s_api_requests_total{path=\"/api/m3s/v0/agent/scale/{count}\",code=\"200\"}",
    "m3s_api_requests_total{path=\"/api/m3s/v0/agent/scale/{count}\",code=\"400\"}",
    "m3s_api_requests_total{path=\"(unmatched)\",code=\"404\"}",
    NULL,
  };
  ck_assert_msg(run_parser(path, required, false) == 0, "metrics:\n%s", r.body);
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_role_desired{role=\"agent\"} 3\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_tasks{role=\"agent\",state=\"TASK_STAGING\"} 2\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_offers_received_total 7\n"));
  ck_assert_ptr_nonnull(strstr(r.body, "m3s_mesos_stream_pauses_total 5\n"));
  /* the parser itself refuses what it should */
  static const char *const broken[] = {
    "x_total 1\n# TYPE x_total counter\n",
    "# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na 2\n",
    "# TYPE a gauge\na{l=\"1\"} 1\na{l=\"1\"} 2\n",
    "# TYPE a counter\na 1\n",
    "# TYPE a gauge\na{l=\"x} 1\n",
    "# TYPE a gauge\na one\n",
    "# TYPE a gauge\na 1",
    "# TYPE a gauge\na{l=\"\\q\"} 1\n",
  };
  for(size_t i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
    write_file(path, broken[i], strlen(broken[i]));
    ck_assert_msg(run_parser(path, NULL, true) == 1, "parser accepted broken text %zu", i);
  }
  static const char *const missing[] = { "m3s_not_there", NULL };
  write_file(path, r.body, r.len);
  ck_assert_int_eq(run_parser(path, missing, true), 1);
  unlink(path);
  harness_free(&h);
}
END_TEST

/* ---- TLS ---------------------------------------------------------------------------------- */

typedef struct certs {
  char dir[64];
  char crt[128], key[128];
} certs_t;

static void run(const char *cmd)
{
  int rc = system(cmd);
  ck_assert_msg(rc == 0, "%s: %d", cmd, rc);
}

/* A self-signed certificate for 127.0.0.1 with a key of the given kind. */
static void certs_make(certs_t *c, const char *newkey)
{
  snprintf(c->dir, sizeof(c->dir), "/tmp/m3s-check-api-tls-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(c->dir));
  snprintf(c->crt, sizeof(c->crt), "%s/crt.pem", c->dir);
  snprintf(c->key, sizeof(c->key), "%s/key.pem", c->dir);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "openssl req -x509 -newkey %s -nodes -keyout %s -out %s -days 2 -subj /CN=m3s-test "
           "-addext subjectAltName=IP:127.0.0.1 2>/dev/null",
           newkey, c->key, c->crt);
  run(cmd);
}

static void certs_free(certs_t *c)
{
  unlink(c->crt);
  unlink(c->key);
  rmdir(c->dir);
}

static char *b64_file(const char *path)
{
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "base64 -w0 %s", path);
  FILE *p = popen(cmd, "r");
  ck_assert_ptr_nonnull(p);
  char *buf = calloc(1, 65536);
  size_t n = fread(buf, 1, 65535, p);
  ck_assert_int_eq(pclose(p), 0);
  ck_assert_uint_gt(n, 0);
  return buf;
}

static void harness_start_tls(harness_t *h, const certs_t *c)
{
  char *crt = b64_file(c->crt), *key = b64_file(c->key);
  const char *env[] = { "AUTH_USERNAME", USER, "AUTH_PASSWORD", PASS, "SSL_CRT_BASE64", crt,
                        "SSL_KEY_BASE64", key, NULL };
  harness_start_env(h, env, DEFAULT_FAKES, NULL);
  snprintf(h->cafile, sizeof(h->cafile), "%s", c->crt);
  free(crt);
  free(key);
}

START_TEST(https_end_to_end)
{
  certs_t c;
  certs_make(&c, "rsa:2048");
  harness_t h;
  harness_start_tls(&h, &c);
  ck_assert_int_eq(h.rc, 0);
  ck_assert(h.tls);
  /* many fresh handshakes: each one used to crash civetweb */
  for(int i = 0; i < 20; i++) {
    expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, "application/json",
           "{\"Scale\":0,\"Running\":0}");
  }
  expect(&h, "GET", "//api/m3s/v0/agent/scale/2", 200, NULL, "2");
  resp_t r;
  http(&h, "GET", "/api/m3s/versions", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  http(&h, "GET", "/api/m3s/v0/status/m3s", NULL, &r);
  ck_assert_int_eq(r.status, 401);
  /* TLS 1.2 and 1.3 work, 1.1 is refused */
  req_opts_t o = { .userpwd = USER ":" PASS, .tls_min = CURL_SSLVERSION_TLSv1_2,
                   .tls_max = CURL_SSLVERSION_MAX_TLSv1_2 };
  ck_assert_int_eq(http_x(&h, "GET", "/health", &o, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  o.tls_min = CURL_SSLVERSION_TLSv1_3;
  o.tls_max = CURL_SSLVERSION_MAX_TLSv1_3;
  ck_assert_int_eq(http_x(&h, "GET", "/health", &o, &r), CURLE_OK);
  ck_assert_int_eq(r.status, 200);
  o.tls_min = CURL_SSLVERSION_TLSv1_1;
  o.tls_max = CURL_SSLVERSION_MAX_TLSv1_1;
  ck_assert_int_ne(http_x(&h, "GET", "/health", &o, &r), CURLE_OK);
  /* plain HTTP to the TLS port gets no answer, and does no harm */
  req_opts_t plain = { .plain_on_tls = true };
  http_x(&h, "GET", "/health", &plain, &r);
  ck_assert_int_ne(r.status, 200);
  /* a client that hangs up in the middle of the handshake */
  char out[64];
  raw(h.port, "\x16\x03\x01\x00\x05\x01\x00", 7, out, sizeof(out), 300);
  /* the curl command line, as an operator would */
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "curl -sS --fail --cacert %s -u '" USER ":" PASS "' "
           "https://127.0.0.1:%d//api/m3s/v0/server/scale >/dev/null", c.crt, h.port);
  run(cmd);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, NULL, "ok");
  harness_free(&h);
  certs_free(&c);
}
END_TEST

START_TEST(bad_certificates_stop_the_start)
{
  harness_t h;
  /* a key OpenSSL refuses to serve at its security level: the configuration
   * accepts the pair (it parses and matches), the API start does not */
  certs_t weak;
  certs_make(&weak, "rsa:1024");
  harness_start_tls(&h, &weak);
  ck_assert_int_eq(h.rc, -EINVAL);
  harness_free(&h);
  certs_free(&weak);

  /* garbage and mismatched PEM given to the actor directly (the
   * configuration would already refuse them) */
  certs_t a, b;
  certs_make(&a, "rsa:2048");
  certs_make(&b, "ec -pkeyopt ec_paramgen_curve:prime256v1");
  for(int i = 0; i < 3; i++) {
    const char *kv[] = { "FRAMEWORK_HOSTNAME", "localhost", NULL, NULL };
    char err[256];
    memset(&h, 0, sizeof(h));
    ck_assert_int_eq(m3s_config_load(&h.cfg, m3s_check_getenv, (void *)kv, err, sizeof(err)), 0);
    FILE *f;
    char *pem[2];
    const char *files[2] = { a.crt, i == 2 ? b.key : a.key };
    for(int k = 0; k < 2; k++) {
      pem[k] = calloc(1, 16384);
      f = fopen(files[k], "r");
      ck_assert_ptr_nonnull(f);
      ck_assert_uint_gt(fread(pem[k], 1, 16383, f), 0);
      fclose(f);
    }
    if(i == 0)
      snprintf(pem[0], 16384, "-----BEGIN CERTIFICATE-----\nnot base64\n"
                              "-----END CERTIFICATE-----\n");
    if(i == 1)
      snprintf(pem[1], 16384, "garbage");
    free(h.cfg.ssl_crt_pem);
    free(h.cfg.ssl_key_pem);
    h.cfg.ssl_crt_pem = pem[0];
    h.cfg.ssl_crt_pem_len = strlen(pem[0]);
    h.cfg.ssl_key_pem = pem[1];
    h.cfg.ssl_key_pem_len = strlen(pem[1]);
    fakes_reset();
    h.sys = m3s_system_new(&h.cfg);
    h.api = m3s_system_add(h.sys, &m3s_api_ops);
    m3s_api_opts_t o = { .bind_host = "127.0.0.1", .port = M3S_API_ANY_PORT };
    m3s_api_set_opts(h.api, &o);
    h.rc = m3s_system_start(h.sys);
    ck_assert_msg(h.rc == -EINVAL, "case %d: %d", i, h.rc);
    harness_free(&h);
  }
  certs_free(&a);
  certs_free(&b);
}
END_TEST

/* ---- slow clients --------------------------------------------------------------------------- */

enum { NSLOW = 12 };

typedef struct dripper {
  int fds[NSLOW];
  bool cut[NSLOW];
  _Atomic int stop;
  _Atomic int done;        /* every one was cut off */
} dripper_t;

/* Sends one header byte per 200 ms on every slow connection until the
 * server cuts it off (the send fails, or it answers or closes). */
static void *drip(void *p)
{
  dripper_t *d = p;
  while(!atomic_load(&d->stop)) {
    int cut = 0;
    for(int i = 0; i < NSLOW; i++) {
      if(!d->cut[i]) {
        struct pollfd pf = { .fd = d->fds[i], .events = POLLIN };
        if(send(d->fds[i], "X", 1, MSG_NOSIGNAL) != 1 || poll(&pf, 1, 0) == 1)
          d->cut[i] = true;
      }
      cut += d->cut[i];
    }
    if(cut == NSLOW) {
      atomic_store(&d->done, 1);
      break;
    }
    m3s_check_sleep_ms(200);
  }
  return NULL;
}

START_TEST(slow_clients_do_not_exhaust_workers)
{
  m3s_api_opts_t o = { .threads = 4, .request_timeout_ms = 1000, .keep_alive_timeout_ms = 500 };
  harness_t h;
  harness_start(&h, &o);
  dripper_t d;
  memset(&d, 0, sizeof(d));
  for(int i = 0; i < NSLOW; i++) {
    d.fds[i] = connect_to(h.port);
    const char *start = "GET /api/m3s/v0/agent/scale HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    ck_assert_int_gt(send(d.fds[i], start, strlen(start), MSG_NOSIGNAL), 0);
  }
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, NULL, drip, &d), 0);
  /* three times as many slow clients as workers, all dripping: a normal
   * request still gets through once the timeouts cut them off */
  int64_t t0 = now_ms();
  resp_t r;
  http(&h, "GET", "/health", NULL, &r);
  ck_assert_int_eq(r.status, 200);
  int64_t waited = now_ms() - t0;
  /* about 3 s (three rounds of the 1 s request timeout); the bound only
   * tells "cut off" from "held until the client gives up" (15 s) */
  ck_assert_msg(waited < 12000, "a normal request waited %lld ms", (long long)waited);
  int64_t deadline = now_ms() + 30000;
  while(now_ms() < deadline && !atomic_load(&d.done))
    m3s_check_sleep_ms(100);
  atomic_store(&d.stop, 1);
  pthread_join(t, NULL);
  int cut = 0;
  for(int i = 0; i < NSLOW; i++) {
    cut += d.cut[i];
    close(d.fds[i]);
  }
  ck_assert_msg(cut == NSLOW, "only %d of %d dripping clients were cut off", cut, NSLOW);
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, NULL, NULL);
  harness_free(&h);
}
END_TEST

typedef struct burst {
  const harness_t *h;
  const char *path;
  _Atomic int ok;
} burst_t;

static void *burst_one(void *p)
{
  burst_t *b = p;
  resp_t *r = malloc(sizeof(*r));
  req_opts_t o = { .userpwd = USER ":" PASS };
  if(http_x(b->h, "GET", b->path, &o, r) == CURLE_OK && r->status == 200)
    atomic_fetch_add(&b->ok, 1);
  free(r);
  return NULL;
}

/* 24 status/m3s requests at once, all answered 200. */
static void status_burst(const harness_t *h)
{
  enum { N = 24 };
  burst_t b = { .h = h, .path = "/api/m3s/v0/status/m3s" };
  pthread_t th[N];
  for(int i = 0; i < N; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, burst_one, &b), 0);
  for(int i = 0; i < N; i++)
    pthread_join(th[i], NULL);
  ck_assert_int_eq(atomic_load(&b.ok), N);
}

/* Concurrent status requests share the roles' STATUS answers; an answer is
 * reused only within status_max_age_ms and never across a change made
 * through the API. */
START_TEST(status_requests_share_answers)
{
  /* 24 requests at once while every role takes 300 ms to answer: each
   * role is asked once, not 24 times (an age longer than the test, so that
   * a request that starts late on a busy machine reuses the answer too) */
  m3s_api_opts_t o = { .status_max_age_ms = 600000 };
  harness_t h;
  harness_start(&h, &o);
  for(int i = F_DATASTORE; i <= F_AGENT; i++)
    atomic_store(&fake_mode[i], MODE_SLOW);
  atomic_store(&slow_ms, 300);
  status_burst(&h);
  for(int i = F_DATASTORE; i <= F_AGENT; i++)
    ck_assert_int_eq(atomic_load(&status_calls[i]), 1);
  harness_free(&h);
  /* reuse within the age, a fresh answer after it */
  o.status_max_age_ms = 400;
  harness_start(&h, &o);
  int64_t t0 = now_ms();
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, NULL, "ok");
  int asked = atomic_load(&status_calls[F_AGENT]);
  atomic_store(&agent_healthy, 0);
  resp_t r;
  http(&h, "GET", "/api/m3s/v0/status/k8s", USER ":" PASS, &r);
  if(now_ms() - t0 < 400) { /* within the age (a slow machine may take longer) */
    ck_assert_str_eq(r.body, "ok");
    ck_assert_int_eq(atomic_load(&status_calls[F_AGENT]), asked);
  }
  m3s_check_sleep_ms(450);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, NULL, "nok");
  ck_assert_int_eq(atomic_load(&status_calls[F_AGENT]), asked + 1);
  /* a change through the API is seen at once */
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, NULL, "{\"Scale\":0,\"Running\":0}");
  expect(&h, "GET", "/api/m3s/v0/agent/scale/4", 200, NULL, "4");
  expect(&h, "GET", "/api/m3s/v0/agent/scale", 200, NULL, "{\"Scale\":4,\"Running\":4}");
  http(&h, "GET", "/api/m3s/v0/status/m3s", USER ":" PASS, &r);
  ck_assert_ptr_nonnull(strstr(r.body, "\"agent-task-3\""));
  ck_assert_ptr_null(strstr(r.body, "\"agent-task-4\""));
  expect(&h, "GET", "/api/m3s/v0/agent/scale/5", 200, NULL, "1");
  http(&h, "GET", "/api/m3s/v0/status/m3s", USER ":" PASS, &r);
  ck_assert_ptr_nonnull(strstr(r.body, "\"agent-task-4\""));
  /* a failed answer is not reused */
  m3s_check_sleep_ms(450);
  atomic_store(&fake_mode[F_AGENT], MODE_IGNORE);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 503, NULL, NULL);
  atomic_store(&fake_mode[F_AGENT], MODE_NORMAL);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, NULL, "nok");
  harness_free(&h);
}
END_TEST

/* status/m3s and status/k8s share the kube actor's answers the same way:
 * a burst asks it about once, and the node names reach the answer. */
START_TEST(status_requests_share_kube_answers)
{
  static const char *const auth[] = { "AUTH_USERNAME", USER, "AUTH_PASSWORD", PASS, NULL };
  m3s_api_opts_t o = { .status_max_age_ms = 600000 }; /* reuse: see above */
  harness_t h;
  harness_start_env(&h, auth, DEFAULT_FAKES | 1u << F_KUBE, &o);
  ck_assert_int_eq(h.rc, 0);
  expect(&h, "GET", "/api/m3s/v0/agent/scale/1", 200, NULL, "1");
  atomic_store(&fake_mode[F_KUBE], MODE_SLOW);
  atomic_store(&slow_ms, 300);
  atomic_store(&status_calls[F_KUBE], 0);
  status_burst(&h);
  ck_assert_int_eq(atomic_load(&status_calls[F_KUBE]), 1);
  atomic_store(&fake_mode[F_KUBE], MODE_NORMAL);
  resp_t r;
  http(&h, "GET", "/api/m3s/v0/status/m3s", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_msg(strstr(r.body, "\"agent-task-0\":{\"Status\":\"TASK_RUNNING\","
                               "\"K3sNodeName\":\"node-a\"}") != NULL, "%s", r.body);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 200, NULL, "ok");
  /* a kube actor that does not answer: status/m3s still answers, without
   * node names; status/k8s cannot (a change through the API first, so that
   * the answers before it are not reused) */
  expect(&h, "GET", "/api/m3s/v0/agent/scale/1", 200, NULL, "0");
  atomic_store(&fake_mode[F_KUBE], MODE_IGNORE);
  http(&h, "GET", "/api/m3s/v0/status/m3s", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  ck_assert_msg(strstr(r.body, "\"K3sNodeName\":\"\"") != NULL, "%s", r.body);
  expect(&h, "GET", "/api/m3s/v0/status/k8s", 503, NULL, NULL);
  atomic_store(&fake_mode[F_KUBE], MODE_NORMAL);
  harness_free(&h);
}
END_TEST

/* keep-alive: several requests on one connection */
START_TEST(keep_alive)
{
  harness_t h;
  harness_start(&h, NULL);
  CURL *c = curl_easy_init();
  char url[128];
  snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/m3s/v0/agent/scale", h.port);
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_USERPWD, USER ":" PASS);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  resp_t r;
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
  long conns = 0, total = 0;
  for(int i = 0; i < 5; i++) {
    memset(&r, 0, sizeof(r));
    ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &conns);
    total += conns;
    ck_assert_str_eq(r.body, "{\"Scale\":0,\"Running\":0}");
  }
  ck_assert_int_eq(total, 1);
  curl_easy_cleanup(c);
  harness_free(&h);
}
END_TEST

/* A client knocking while the daemon starts: the first answer from the new
 * port is already the API's (401 here), never civetweb's default 404. */
typedef struct knocker {
  int port;
  char first[64];
} knocker_t;

static void *knock(void *arg)
{
  knocker_t *k = arg;
  static const char req[] = "GET /api/m3s/v0/status/m3s HTTP/1.0\r\n\r\n";
  for(;;) { /* refused until the port opens */
    int fd = try_connect(k->port);
    if(fd < 0)
      continue;
    ssize_t n = 0;
    if(write(fd, req, sizeof(req) - 1) == (ssize_t)(sizeof(req) - 1))
      n = read(fd, k->first, sizeof(k->first) - 1);
    close(fd);
    if(n > 0) {
      k->first[n] = '\0';
      return NULL;
    }
  }
}

START_TEST(routes_ready_when_the_port_opens)
{
  for(int round = 0; round < 3; round++) {
    knocker_t k = { .port = m3s_free_port() };
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, knock, &k), 0);
    harness_t h;
    m3s_api_opts_t o = { .port = k.port };
    harness_start(&h, &o);
    pthread_join(th, NULL); /* it stops at its first answer */
    ck_assert_msg(strncmp(k.first, "HTTP/1.1 401", 12) == 0, "first answer: %.20s", k.first);
    harness_free(&h);
  }
}
END_TEST

/* ---- no waiting on strangers ---------------------------------------------------------- */

typedef struct getter {
  const harness_t *h;
  const char *path;
  pthread_t th;
  long status;
  _Atomic bool done;
  int64_t done_ms;
} getter_t;

static void *get_one(void *p)
{
  getter_t *g = p;
  resp_t *r = malloc(sizeof(*r));
  req_opts_t o = { .userpwd = USER ":" PASS };
  if(http_x(g->h, "GET", g->path, &o, r) == CURLE_OK)
    g->status = r->status;
  free(r);
  g->done_ms = now_ms();
  atomic_store(&g->done, true);
  return NULL;
}

static void get_start(getter_t *g, const harness_t *h, const char *path)
{
  memset(g, 0, sizeof(*g));
  g->h = h;
  g->path = path;
  ck_assert_int_eq(pthread_create(&g->th, NULL, get_one, g), 0);
}

/* Waits (generously) until the fake agent has been asked for its STATUS
 * more than `before` times: the request under way has sent its flight. */
static void agent_asked(int before)
{
  int64_t deadline = now_ms() + 30000;
  while(atomic_load(&status_calls[F_AGENT]) <= before) {
    ck_assert_msg(now_ms() < deadline, "the agent role was never asked");
    m3s_check_sleep_ms(2);
  }
}

/* /metrics and /api/m3s/v0/status share the roles' STATUS with the scale
 * read, and also wait for the store, Mesos, offers and kube actors. Those
 * are held unanswered here for as long as the test likes: GET agent/scale
 * still answers while both are provably still waiting. */
START_TEST(scale_read_waits_on_no_stranger)
{
  static const char *const auth[] = { "AUTH_USERNAME", USER, "AUTH_PASSWORD", PASS, NULL };
  static const char *const paths[] = { "/metrics", "/api/m3s/v0/status" };
  m3s_api_opts_t o = { .call_timeout_ms = 60000 };
  harness_t h;
  harness_start_env(&h, auth, DEFAULT_FAKES | 1u << F_KUBE, &o);
  ck_assert_int_eq(h.rc, 0);
  for(size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
    atomic_store(&hold_status,
                 1u << F_STORE | 1u << F_MESOS | 1u << F_OFFERS | 1u << F_KUBE);
    getter_t slow;
    int before = atomic_load(&status_calls[F_AGENT]);
    get_start(&slow, &h, paths[i]);
    agent_asked(before);
    resp_t r;
    http(&h, "GET", "/api/m3s/v0/agent/scale", USER ":" PASS, &r);
    ck_assert_msg(r.status == 200, "agent/scale while %s waits: %ld %s", paths[i], r.status,
                  r.body);
    ck_assert_msg(!atomic_load(&slow.done), "%s did not wait for the held sources", paths[i]);
    release_status();
    pthread_join(slow.th, NULL);
    ck_assert_int_eq(slow.status, 200);
  }
  harness_free(&h);
}
END_TEST

/* The same with the real store actor and a real redis-server paused with
 * SIGSTOP: a write makes the store block in Redis (up to its I/O timeout),
 * a /metrics request that arrives meanwhile waits for the store's answer,
 * and a GET agent/scale sent after it answers before it. A round in which
 * the store happened to answer /metrics at once (between two blocking
 * calls) proves nothing and is run again. */
static redis_fixture_t paused_redis; /* pid 0: none */

/* Teardown (runs after a failed check too): resumes and stops the server. */
static void paused_redis_free(void)
{
  if(paused_redis.pid > 0) {
    kill(paused_redis.pid, SIGCONT);
    fixture_free(&paused_redis);
  }
}

START_TEST(scale_read_answers_while_redis_is_paused)
{
  redis_fixture_t *rf = &paused_redis;
  fixture_init(rf, NULL, false);
  fixture_start(rf);
  char server[64];
  snprintf(server, sizeof(server), "127.0.0.1:%d", rf->port);
  const char *env[] = { "AUTH_USERNAME", USER, "AUTH_PASSWORD", PASS, "REDIS_SERVER", server,
                        NULL };
  m3s_api_opts_t o = { .call_timeout_ms = 30000 };
  harness_t h;
  harness_start_env(&h, env, DEFAULT_FAKES | REAL_STORE, &o);
  ck_assert_int_eq(h.rc, 0);
  m3s_actor_t *store = m3s_system_find(h.sys, "store");
  ck_assert_ptr_nonnull(store);
  ck_assert_int_eq(kill(rf->pid, SIGSTOP), 0);
  bool shown = false;
  for(int round = 0; round < 10 && !shown; round++) {
    /* a write: the store sends it and blocks waiting for Redis's reply */
    m3s_store_batch_t *b = m3s_store_batch_new(NULL, 0);
    m3s_store_batch_set(b, "m3stest:paused", "x");
    m3s_send(store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
    int before = atomic_load(&status_calls[F_AGENT]);
    int64_t t0 = now_ms();
    getter_t metrics;
    get_start(&metrics, &h, "/metrics");
    agent_asked(before);
    resp_t r;
    http(&h, "GET", "/api/m3s/v0/agent/scale", USER ":" PASS, &r);
    int64_t scale_ms = now_ms();
    ck_assert_msg(r.status == 200, "agent/scale: %ld %s", r.status, r.body);
    pthread_join(metrics.th, NULL);
    ck_assert_int_eq(metrics.status, 200);
    if(metrics.done_ms - t0 < 500)
      continue; /* the store answered /metrics at once: no waiting to show */
    ck_assert_msg(scale_ms < metrics.done_ms,
                  "agent/scale (%lld ms) waited for /metrics (%lld ms)",
                  (long long)(scale_ms - t0), (long long)(metrics.done_ms - t0));
    fprintf(stderr, "Redis paused (round %d): agent/scale answered after %lld ms, /metrics "
            "after %lld ms\n", round + 1, (long long)(scale_ms - t0),
            (long long)(metrics.done_ms - t0));
    shown = true;
  }
  ck_assert_int_eq(kill(rf->pid, SIGCONT), 0);
  ck_assert_msg(shown, "the paused Redis never held up /metrics");
  harness_free(&h);
  fixture_free(rf);
}
END_TEST

/* ---- paths as sent --------------------------------------------------------------- */

/* The status of one raw request line's answer (exact bytes on the wire, no
 * client-side normalisation), with the test's credentials; body copied to
 * body (may be NULL). */
static long raw_get(const harness_t *h, const char *path, bool auth, char *body, size_t blen)
{
  unsigned char b64[128];
  EVP_EncodeBlock(b64, (const unsigned char *)USER ":" PASS, (int)strlen(USER ":" PASS));
  char req[1024], out[8192];
  int n = snprintf(req, sizeof(req),
                   "GET %s HTTP/1.1\r\nHost: x\r\n%s%s%sConnection: close\r\n\r\n", path,
                   auth ? "Authorization: Basic " : "", auth ? (const char *)b64 : "",
                   auth ? "\r\n" : "");
  raw(h->port, req, (size_t)n, out, sizeof(out), 10000);
  long status = 0;
  ck_assert_msg(sscanf(out, "HTTP/1.1 %ld", &status) == 1, "GET %s -> %s", path, out);
  const char *b = strstr(out, "\r\n\r\n");
  if(body)
    snprintf(body, blen, "%s", b ? b + 4 : "");
  return status;
}

/* The agent role's desired count, as GET agent/scale says. */
static long agent_scale(const harness_t *h)
{
  resp_t r;
  http(h, "GET", "/api/m3s/v0/agent/scale", USER ":" PASS, &r);
  ck_assert_int_eq(r.status, 200);
  json_t *j = json_loads(r.body, 0, NULL);
  ck_assert_msg(json_is_integer(json_object_get(j, "Scale")), "%s", r.body);
  long v = (long)json_integer_value(json_object_get(j, "Scale"));
  json_decref(j);
  return v;
}

/* Routing sees the path as sent and decodes each segment: a %00 cannot cut
 * a path short (it was "scale" alone, or "scale/3"), an encoded '/' cannot
 * separate segments, a malformed escape is not guessed at. Each is a 400
 * with a JSON error and leaves the count as it was. */
START_TEST(paths_as_sent)
{
  harness_t h;
  harness_start(&h, NULL);
  expect(&h, "GET", "/api/m3s/v0/agent/scale/2", 200, NULL, "2");
  static const char *const bad[] = {
    "/api/m3s/v0/agent/scale/%00",          /* was the read form: 200 {"Scale":...} */
    "/api/m3s/v0/agent/scale/3%00junk",     /* was a scale to 3 */
    "/api/m3s/v0/agent/scale/%003",
    "/api/m3s/v0/agent%2Fscale",
    "/api/m3s/v0/agent%2fscale/3",
    "/api/m3s/v0/agent/scale%2F3",
    "/api/m3s/v0/agent/scale/%",
    "/api/m3s/v0/agent/scale/3%",
    "/api/m3s/v0/agent/scale/3%4",
    "/api/m3s/v0/agent/scale/%zz",
    "/api/m3s/v0/agent/scale/%G3",
    "/health%00",
    "/metrics%2F",
  };
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char body[1024];
    long st = raw_get(&h, bad[i], true, body, sizeof(body));
    ck_assert_msg(st == 400, "GET %s: %ld %s", bad[i], st, body);
    json_t *j = json_loads(body, 0, NULL);
    ck_assert_msg(json_is_string(json_object_get(j, "error")), "GET %s: %s", bad[i], body);
    json_decref(j);
    /* without credentials it learns nothing more than elsewhere */
    ck_assert_int_eq(raw_get(&h, bad[i], false, NULL, 0), 401);
  }
  /* trailing garbage after a count, decoded or not: 400 */
  static const char *const counts[] = { "3junk", "3%20", "3%0A", "3%09", "%33x", "3;x" };
  for(size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
    char path[128];
    snprintf(path, sizeof(path), "/api/m3s/v0/agent/scale/%s", counts[i]);
    ck_assert_msg(raw_get(&h, path, true, NULL, 0) == 400, "GET %s", path);
  }
  ck_assert_int_eq(agent_scale(&h), 2);
  /* dot segments are matched literally, never resolved */
  ck_assert_int_eq(raw_get(&h, "/api/m3s/v0/server/../agent/scale/3", true, NULL, 0), 404);
  ck_assert_int_eq(raw_get(&h, "/api/m3s/v0/agent/scale/./3", true, NULL, 0), 404);
  ck_assert_int_eq(agent_scale(&h), 2);
  /* what is well encoded is decoded: these mean agent/scale/3 */
  char body[1024];
  ck_assert_int_eq(raw_get(&h, "/api/m3s/v0/agent/scale/%33", true, body, sizeof(body)), 200);
  ck_assert_str_eq(body, "1");
  ck_assert_int_eq(raw_get(&h, "/api/m3s/v0/%61gent/scale/3", true, body, sizeof(body)), 200);
  ck_assert_int_eq(agent_scale(&h), 3);
  /* the mesos-cli plugin's doubled slashes */
  ck_assert_int_eq(raw_get(&h, "//api/m3s/v0/agent/scale/4", true, body, sizeof(body)), 200);
  ck_assert_int_eq(raw_get(&h, "//api//m3s/v0/agent/scale", true, body, sizeof(body)), 200);
  ck_assert_str_eq(body, "{\"Scale\":4,\"Running\":4}");
  harness_free(&h);
}
END_TEST

static Suite *api_suite(void)
{
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("http");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, auth_every_endpoint);
  tcase_add_test(tc, answers_like_the_original);
  tcase_add_test(tc, capabilities_are_real);
  tcase_add_test(tc, bad_inputs);
  tcase_add_test(tc, actors_unavailable);
  tcase_add_test(tc, degraded_and_status_page);
  tcase_add_test(tc, failed_logins_are_throttled);
  tcase_add_test(tc, no_credentials_warns_and_logs_no_secret);
  tcase_add_test(tc, metrics_parse_as_prometheus_text);
  tcase_add_test(tc, keep_alive);
  tcase_add_test(tc, routes_ready_when_the_port_opens);
  tcase_add_test(tc, status_requests_share_answers);
  tcase_add_test(tc, status_requests_share_kube_answers);
  tcase_add_test(tc, slow_clients_do_not_exhaust_workers);
  suite_add_tcase(s, tc);
  TCase *paths = tcase_create("paths");
  tcase_set_timeout(paths, 120);
  tcase_add_test(paths, paths_as_sent);
  suite_add_tcase(s, paths);
  TCase *strangers = tcase_create("strangers");
  tcase_set_timeout(strangers, 180);
  tcase_add_checked_fixture(strangers, NULL, paused_redis_free);
  tcase_add_test(strangers, scale_read_waits_on_no_stranger);
  tcase_add_test(strangers, scale_read_answers_while_redis_is_paused);
  suite_add_tcase(s, strangers);
  TCase *tls = tcase_create("tls");
  tcase_set_timeout(tls, 120);
  tcase_add_test(tls, https_end_to_end);
  tcase_add_test(tls, bad_certificates_stop_the_start);
  suite_add_tcase(s, tls);
  return s;
}

int main(void)
{
  signal(SIGPIPE, SIG_IGN);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  m3s_log_init(M3S_LOG_ERROR, dummy_secret, 1);
  int rc = m3s_check_run(api_suite());
  m3s_log_shutdown();
  curl_global_cleanup();
  return rc;
}
