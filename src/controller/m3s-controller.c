/* m3s-controller: runs next to the K3s server, inside its container, and
 * publishes the kubeconfig K3s writes to Redis, where the daemon reads it
 * (behaviour spec §11.3, key of §8.2).
 *
 * DESIGN
 *
 * One thread, one loop, one tick every POLL_INTERVAL (2 s):
 *
 *   1. Read the kubeconfig file (KUBECONFIG, default
 *      /etc/rancher/k3s/k3s.yaml) whole. K3s rewrites it in place, so a read
 *      can see half a file: new content counts only once two consecutive
 *      reads agree.
 *   2. Without a Redis connection, and once the backoff allows: connect,
 *      AUTH (only with a password), SELECT, PING.
 *   3. With both: SET <prefix>:kubernetes_config <raw file> when this
 *      connection has not published yet (first start, Redis restarted) or
 *      the file changed since the last SET; otherwise EXISTS, and SET again
 *      when the key is gone (deleted, FLUSHDB). The value is the file's bytes
 *      exactly, as the original's controller stored them.
 *
 * Another server's controller may publish its own (equally valid) kubeconfig
 * to the same key; this one does not fight it: it overwrites only for the
 * reasons above.
 *
 * Failures never end the process: every Redis error drops the connection and
 * the next attempt waits an exponential backoff with jitter (500 ms doubling
 * up to BACKOFF_MAX, a random delay in [d/2, d]); the first retry after a
 * connection that worked is immediate (a restarted Redis is usually back).
 * Why it waits is logged once per change of state (file missing, Redis
 * unreachable, password refused, ...), each attempt only at debug level.
 *
 * The Redis password is registered with the logger's scrubber and the file's
 * content (it holds the cluster-admin key) is never logged.
 *
 * SIGTERM and SIGINT are blocked except inside the wait between ticks
 * (ppoll), so a stop request is seen at the latest when the current Redis
 * call ends (each is bounded by IO_TIMEOUT_MS); the process then frees
 * everything and exits 0.
 *
 * Exit codes: 0 stopped by SIGTERM/SIGINT (or --help/--version); 2 bad
 * command line or environment (one line says which variable and why).
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "m3s/log.h"
#include "m3s/sentinel.h"
#include "m3s/xalloc.h"

#define ENV_PREFIX "M3S_CONTROLLER__"
#define KEY_SUFFIX ":kubernetes_config"
#define DEFAULT_KUBECONFIG "/etc/rancher/k3s/k3s.yaml"
#define MAX_KUBECONFIG_BYTES (1024 * 1024)
#define IO_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 500

/* ---- settings ------------------------------------------------------------ */

typedef struct settings {
  const char *server;      /* host:port as given (for messages) */
  char host[256];          /* IPv6 without brackets */
  int port;
  const char *password;    /* "" = no AUTH */
  const char *sentinels;   /* "" = connect to server; else host:port list */
  const char *master_name;
  const char *sentinel_password;
  int db;
  const char *prefix;
  char *kubeconfig;        /* owned */
  char *key;               /* owned: <prefix>:kubernetes_config */
  m3s_log_level_t level;
  int64_t interval_ms;
  int64_t backoff_max_ms;
} settings_t;

static const char *env_or(const char *name, const char *def)
{
  const char *v = getenv(name);
  return v && *v ? v : def;
}

/* Parses a non-negative decimal integer that fits in an int. */
static int parse_int(const char *s, long max, int *out)
{
  char *end = NULL;
  long v;

  if(!*s || *s == '-' || *s == '+' || *s == ' ')
    return -1;
  errno = 0;
  v = strtol(s, &end, 10);
  if(errno || *end || v > max)
    return -1;
  *out = (int)v;
  return 0;
}

/* "<digits><unit>" with unit ms, s, m or h, as Go writes short durations. */
static int parse_duration_ms(const char *s, int64_t *out)
{
  static const struct { const char *unit; int64_t ms; } units[] = {
    { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
  };
  char *end = NULL;
  long long v;

  if(*s < '0' || *s > '9')
    return -1;
  errno = 0;
  v = strtoll(s, &end, 10);
  if(errno || v > 24LL * 3600 * 1000)
    return -1;
  for(size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
    if(!strcmp(end, units[i].unit)) {
      *out = (int64_t)v * units[i].ms;
      return 0;
    }
  }
  return -1;
}

/* host:port or [ipv6]:port into s->host / s->port. */
static int parse_server(settings_t *s)
{
  const char *v = s->server, *colon, *host = v;
  size_t hlen;

  if(v[0] == '[') {
    const char *close = strchr(v, ']');
    if(!close || close[1] != ':')
      return -1;
    host = v + 1;
    hlen = (size_t)(close - host);
    colon = close + 1;
  }
  else {
    colon = strrchr(v, ':');
    if(!colon || strchr(v, ':') != colon)
      return -1;
    hlen = (size_t)(colon - v);
  }
  if(hlen == 0 || hlen >= sizeof(s->host))
    return -1;
  memcpy(s->host, host, hlen);
  s->host[hlen] = '\0';
  if(parse_int(colon + 1, 65535, &s->port) != 0 || s->port == 0)
    return -1;
  return 0;
}

static void settings_free(settings_t *s)
{
  free(s->kubeconfig);
  free(s->key);
  s->kubeconfig = s->key = NULL;
}

/* Fills *s from the environment. Returns 0, or -1 after one line on stderr
 * naming the variable, its value (never the password's) and what is
 * expected. */
static int settings_load(settings_t *s)
{
  const char *v, *colon;
  size_t n;

  memset(s, 0, sizeof(*s));
  s->server = env_or(ENV_PREFIX "REDIS_SERVER", "127.0.0.1:6480");
  if(parse_server(s) != 0) {
    fprintf(stderr, "m3s-controller: " ENV_PREFIX "REDIS_SERVER=\"%s\": expected host:port "
            "or [ipv6]:port with a port in 1..65535\n", s->server);
    return -1;
  }
  s->password = env_or(ENV_PREFIX "REDIS_PASSWORD", "");
  s->sentinels = env_or(ENV_PREFIX "REDIS_SENTINELS", "");
  s->master_name = env_or(ENV_PREFIX "REDIS_MASTER_NAME", "m3s");
  s->sentinel_password = env_or(ENV_PREFIX "REDIS_SENTINEL_PASSWORD", "");
  if(s->sentinels[0])
    s->server = s->sentinels; /* named in messages */
  v = env_or(ENV_PREFIX "REDIS_DB", "1");
  if(parse_int(v, 1000000, &s->db) != 0) {
    fprintf(stderr, "m3s-controller: " ENV_PREFIX "REDIS_DB=\"%s\": expected a database "
            "index (0, 1, ...)\n", v);
    return -1;
  }
  s->prefix = env_or(ENV_PREFIX "REDIS_PREFIX", "m3s");
  v = env_or(ENV_PREFIX "LOGLEVEL", "DEBUG");
  if(m3s_log_parse_level(v, &s->level) != 0) {
    fprintf(stderr, "m3s-controller: " ENV_PREFIX "LOGLEVEL=\"%s\": expected debug, info, "
            "warn or error\n", v);
    return -1;
  }
  v = env_or(ENV_PREFIX "POLL_INTERVAL", "2s");
  if(parse_duration_ms(v, &s->interval_ms) != 0 || s->interval_ms < 10) {
    fprintf(stderr, "m3s-controller: " ENV_PREFIX "POLL_INTERVAL=\"%s\": expected a "
            "duration of at least 10ms, e.g. 2s or 500ms\n", v);
    return -1;
  }
  v = env_or(ENV_PREFIX "BACKOFF_MAX", "30s");
  if(parse_duration_ms(v, &s->backoff_max_ms) != 0 || s->backoff_max_ms < BACKOFF_MIN_MS) {
    fprintf(stderr, "m3s-controller: " ENV_PREFIX "BACKOFF_MAX=\"%s\": expected a "
            "duration of at least 500ms, e.g. 30s\n", v);
    return -1;
  }
  /* KUBECONFIG may be a list, as kubectl reads it: the first file is the
   * one K3s writes. */
  v = env_or("KUBECONFIG", DEFAULT_KUBECONFIG);
  colon = strchr(v, ':');
  n = colon ? (size_t)(colon - v) : strlen(v);
  if(n == 0) {
    v = DEFAULT_KUBECONFIG;
    n = strlen(v);
  }
  s->kubeconfig = m3s_xmalloc(n + 1);
  memcpy(s->kubeconfig, v, n);
  s->kubeconfig[n] = '\0';
  n = strlen(s->prefix) + sizeof(KEY_SUFFIX);
  s->key = m3s_xmalloc(n);
  snprintf(s->key, n, "%s" KEY_SUFFIX, s->prefix);
  return 0;
}

static void usage(FILE *out)
{
  fprintf(out,
    "Usage: m3s-controller [--help | --version]\n"
    "\n"
    "Runs next to the K3s server: waits for the kubeconfig K3s writes, publishes\n"
    "it raw to Redis under <prefix>:kubernetes_config and keeps it there (again\n"
    "when the file changes, when the key disappears, after Redis restarts).\n"
    "Retries forever; stops with exit code 0 on SIGTERM or SIGINT.\n"
    "\n"
    "Environment (the M3s daemon sets the first six in the server task):\n"
    "  " ENV_PREFIX "REDIS_SERVER    host:port of Redis (default 127.0.0.1:6480)\n"
    "  " ENV_PREFIX "REDIS_PASSWORD  AUTH password; empty = no AUTH (default empty)\n"
    "  " ENV_PREFIX "REDIS_SENTINELS comma-separated host:port list of Redis\n"
    "                                  sentinels; when set, replaces REDIS_SERVER:\n"
    "                                  the master they name is used and followed\n"
    "  " ENV_PREFIX "REDIS_MASTER_NAME       the sentinels' master (default m3s)\n"
    "  " ENV_PREFIX "REDIS_SENTINEL_PASSWORD AUTH password of the sentinels\n"
    "  " ENV_PREFIX "REDIS_DB        database index (default 1)\n"
    "  " ENV_PREFIX "REDIS_PREFIX    key prefix, the framework name (default m3s)\n"
    "  " ENV_PREFIX "LOGLEVEL        debug, info, warn or error (default debug)\n"
    "  KUBECONFIG                      the kubeconfig file; the first entry of a\n"
    "                                  list (default " DEFAULT_KUBECONFIG ")\n"
    "  " ENV_PREFIX "POLL_INTERVAL   how often the file and the key are checked\n"
    "                                  (default 2s; ms, s, m, h)\n"
    "  " ENV_PREFIX "BACKOFF_MAX     longest wait between Redis attempts (default 30s)\n"
    "\n"
    "Accepted and ignored, as the original's controller did with them:\n"
    "  " ENV_PREFIX "ENABLE_TAINT, " ENV_PREFIX "DEFAULT_YAML (add-ons are\n"
    "  installed by the bootstrap through K3s' manifests folder),\n"
    "  " ENV_PREFIX "HEARTBEAT_TIME.\n");
}

/* ---- time and signals ---------------------------------------------------- */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
  stop_signal = sig;
}

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms milliseconds with SIGTERM/SIGINT deliverable; returns early when
 * one arrives. *waitmask is the mask without them. */
static void wait_ms(int64_t ms, const sigset_t *waitmask)
{
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
  if(stop_signal)
    return;
  int rc = ppoll(NULL, 0, &ts, waitmask);
  (void)rc; /* 0 = timeout, -1/EINTR = a signal: the loop looks either way */
}

/* ---- the kubeconfig file ------------------------------------------------- */

typedef struct buf {
  char *p;
  size_t len;
} buf_t;

static bool buf_eq(const buf_t *a, const buf_t *b)
{
  return a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static void buf_set(buf_t *dst, const buf_t *src)
{
  dst->p = m3s_xrealloc(dst->p, src->len ? src->len : 1);
  if(src->len)
    memcpy(dst->p, src->p, src->len);
  dst->len = src->len;
}

typedef enum file_state {
  KC_UNKNOWN, KC_OK, KC_MISSING, KC_UNREADABLE, KC_NOT_REGULAR, KC_EMPTY, KC_TOO_BIG,
} file_state_t;

/* Reads path whole into *out. Returns KC_OK or why not (errno in *err). */
static file_state_t read_file(const char *path, buf_t *out, int *err)
{
  struct stat st;
  file_state_t rc = KC_OK;
  size_t cap;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

  *err = 0;
  if(fd == -1) {
    *err = errno;
    return errno == ENOENT || errno == ENOTDIR ? KC_MISSING : KC_UNREADABLE;
  }
  if(fstat(fd, &st) == -1) {
    *err = errno;
    rc = KC_UNREADABLE;
    goto out;
  }
  if(!S_ISREG(st.st_mode)) {
    rc = KC_NOT_REGULAR;
    goto out;
  }
  if(st.st_size > MAX_KUBECONFIG_BYTES) {
    rc = KC_TOO_BIG;
    goto out;
  }
  /* The size may change under us (K3s rewriting): read until EOF, up to the
   * limit plus one byte to notice growth past it. */
  cap = (size_t)st.st_size + 4096;
  out->p = m3s_xrealloc(out->p, cap);
  out->len = 0;
  for(;;) {
    if(out->len == cap) {
      if(cap > MAX_KUBECONFIG_BYTES) {
        rc = KC_TOO_BIG;
        goto out;
      }
      cap *= 2;
      out->p = m3s_xrealloc(out->p, cap);
    }
    ssize_t n = read(fd, out->p + out->len, cap - out->len);
    if(n == -1) {
      if(errno == EINTR)
        continue;
      *err = errno;
      rc = KC_UNREADABLE;
      goto out;
    }
    if(n == 0)
      break;
    out->len += (size_t)n;
  }
  if(out->len > MAX_KUBECONFIG_BYTES)
    rc = KC_TOO_BIG;
  else if(out->len == 0)
    rc = KC_EMPTY;
out:
  close(fd);
  return rc;
}

/* ---- the publisher -------------------------------------------------------- */

typedef enum redis_state {
  R_UNKNOWN, R_CONNECTED, R_UNREACHABLE, R_AUTH_REFUSED, R_NOAUTH, R_DB_REFUSED,
  R_NOT_READY, R_LOST, R_REFUSED,
} redis_state_t;

typedef struct controller {
  const settings_t *s;
  redisContext *c;
  bool fresh;                /* connected, nothing published on it yet */
  int failures;              /* Redis failures since the last command that worked */
  int64_t next_try_ms;       /* no Redis attempt before (backoff) */
  unsigned rng;
  file_state_t file_state;
  redis_state_t redis_state;
  buf_t read;                /* this tick's read */
  buf_t prev;                /* the previous tick's read */
  bool prev_ok;
  buf_t published;           /* what the last SET stored */
  bool have_published;
} controller_t;

static void file_state_set(controller_t *ct, file_state_t st, int err)
{
  const char *path = ct->s->kubeconfig;
  if(st == ct->file_state)
    return;
  ct->file_state = st;
  switch(st) {
  case KC_OK:
    m3s_info("kubeconfig %s is there", path);
    break;
  case KC_MISSING:
    m3s_info("waiting for the kubeconfig %s: it does not exist yet (K3s writes it "
             "once its API server is up)", path);
    break;
  case KC_UNREADABLE:
    m3s_warn("waiting for the kubeconfig %s: cannot read it: %s", path, strerror(err));
    break;
  case KC_NOT_REGULAR:
    m3s_warn("waiting for the kubeconfig %s: not a regular file", path);
    break;
  case KC_EMPTY:
    m3s_info("waiting for the kubeconfig %s: it is empty", path);
    break;
  case KC_TOO_BIG:
    m3s_warn("waiting for the kubeconfig %s: larger than %d bytes, not a kubeconfig",
             path, MAX_KUBECONFIG_BYTES);
    break;
  case KC_UNKNOWN:
    break;
  }
}

/* Logs a change of the Redis state once; detail is Redis's or the socket's
 * error text (never holds the password: see try_connect). */
static void redis_state_set(controller_t *ct, redis_state_t st, const char *detail)
{
  const settings_t *s = ct->s;
  if(st == ct->redis_state) {
    if(st != R_CONNECTED)
      m3s_debug("Redis at %s: still failing: %s", s->server, detail ? detail : "");
    return;
  }
  ct->redis_state = st;
  switch(st) {
  case R_CONNECTED:
    m3s_info("connected to Redis at %s, database %d", s->server, s->db);
    break;
  case R_UNREACHABLE:
    m3s_warn("waiting for Redis at %s (" ENV_PREFIX "REDIS_SERVER): %s", s->server, detail);
    break;
  case R_AUTH_REFUSED:
    m3s_error("waiting for Redis at %s: it refused the password in " ENV_PREFIX
              "REDIS_PASSWORD: %s", s->server, detail);
    break;
  case R_NOAUTH:
    m3s_error("waiting for Redis at %s: it requires a password but " ENV_PREFIX
              "REDIS_PASSWORD is empty", s->server);
    break;
  case R_DB_REFUSED:
    m3s_error("waiting for Redis at %s: it refused database %d (" ENV_PREFIX "REDIS_DB): %s",
              s->server, s->db, detail);
    break;
  case R_NOT_READY:
    m3s_warn("waiting for Redis at %s: not ready: %s", s->server, detail);
    break;
  case R_LOST:
    m3s_warn("lost the connection to Redis at %s: %s", s->server, detail);
    break;
  case R_REFUSED:
    m3s_warn("Redis at %s refused to store %s: %s", s->server, s->key, detail);
    break;
  case R_UNKNOWN:
    break;
  }
}

static bool starts_with(const char *s, const char *prefix)
{
  return !strncmp(s, prefix, strlen(prefix));
}

/* An error reply's text, unless it would show the password (Redis never
 * echoes it; the check keeps the promise if some server did). */
static const char *reply_text(const controller_t *ct, const redisReply *r)
{
  if(ct->s->password[0] && strstr(r->str, ct->s->password))
    return "(reply withheld)";
  return r->str;
}

/* After a failure: logs the state (once per change) and schedules the next
 * attempt: at once after a Redis that worked, else backoff with jitter. An
 * I/O error (drop) also closes the connection; an error reply keeps it, so
 * that a Redis refusing writes (READONLY, OOM) is not logged as connected
 * again at every attempt. */
static void redis_failed(controller_t *ct, redis_state_t st, const char *detail, bool drop)
{
  int64_t d = 0;
  redis_state_set(ct, st, detail);
  if(drop && ct->c) {
    redisFree(ct->c);
    ct->c = NULL;
    ct->fresh = false;
  }
  if(ct->failures++ > 0) {
    d = BACKOFF_MIN_MS;
    for(int i = 1; i < ct->failures - 1 && d < ct->s->backoff_max_ms; i++)
      d *= 2;
    if(d > ct->s->backoff_max_ms)
      d = ct->s->backoff_max_ms;
    /* A random delay in [d/2, d]: controllers restarted together do not
     * hammer a recovering Redis in step. */
    d = d / 2 + (int64_t)(rand_r(&ct->rng) % (unsigned)(d / 2 + 1));
  }
  ct->next_try_ms = now_ms() + d;
  m3s_debug("next Redis attempt in %lld ms", (long long)d);
}

/* A command's failure: no reply = I/O error (drop), NOAUTH = the server
 * restarted with a password (drop, AUTH again), other errors kept. */
static void command_failed(controller_t *ct, redisReply *r)
{
  if(!r)
    redis_failed(ct, R_LOST, ct->c->errstr, true);
  else if(r->type == REDIS_REPLY_ERROR && starts_with(r->str, "NOAUTH"))
    redis_failed(ct, R_NOAUTH, r->str, true);
  else if(r->type == REDIS_REPLY_ERROR && starts_with(r->str, "READONLY"))
    redis_failed(ct, R_NOT_READY, r->str, true); /* a failover: connect again */
  else
    redis_failed(ct, R_REFUSED,
                 r->type == REDIS_REPLY_ERROR ? reply_text(ct, r) : "unexpected reply", false);
}

/* One connection attempt. On success ct->c is set; on failure the state is
 * logged and the next attempt scheduled. */
static void try_connect(controller_t *ct)
{
  const settings_t *s = ct->s;
  struct timeval tv = { IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000 };
  redisReply *r = NULL;
  char host[256], err[400];
  int port = s->port;
  snprintf(host, sizeof(host), "%s", s->host);
  if(s->sentinels[0] &&
     !m3s_sentinel_master(s->sentinels, s->master_name, s->sentinel_password, IO_TIMEOUT_MS,
                          host, sizeof(host), &port, err, sizeof(err))) {
    redis_failed(ct, R_UNREACHABLE, err, true);
    return;
  }
  redisContext *c = redisConnectWithTimeout(host, port, tv);

  if(!c) {
    redis_failed(ct, R_UNREACHABLE, "out of memory", true);
    return;
  }
  ct->c = c; /* redis_failed frees it from here on */
  if(c->err) {
    redis_failed(ct, R_UNREACHABLE, c->errstr, true);
    return;
  }
  if(redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
    redis_failed(ct, R_UNREACHABLE, c->errstr, true);
    return;
  }
  if(s->password[0]) {
    /* %b: the password is one argument whatever it contains. */
    r = redisCommand(c, "AUTH %b", s->password, strlen(s->password));
    if(!r) {
      redis_failed(ct, R_UNREACHABLE, c->errstr, true);
      return;
    }
    if(r->type == REDIS_REPLY_ERROR) {
      if(strstr(r->str, "no password is set") || strstr(r->str, "without any password")) {
        /* A Redis without a password: the connection works anyway. */
        m3s_debug("Redis at %s has no password; " ENV_PREFIX "REDIS_PASSWORD is not needed",
                  s->server);
      }
      else {
        redis_failed(ct, R_AUTH_REFUSED, reply_text(ct, r), true);
        freeReplyObject(r);
        return;
      }
    }
    freeReplyObject(r);
  }
  r = redisCommand(c, "SELECT %d", s->db);
  if(!r) {
    redis_failed(ct, R_UNREACHABLE, c->errstr, true);
    return;
  }
  if(r->type == REDIS_REPLY_ERROR) {
    if(starts_with(r->str, "NOAUTH"))
      redis_failed(ct, R_NOAUTH, r->str, true);
    else if(starts_with(r->str, "LOADING") || starts_with(r->str, "BUSY"))
      redis_failed(ct, R_NOT_READY, r->str, true);
    else
      redis_failed(ct, R_DB_REFUSED, reply_text(ct, r), true);
    freeReplyObject(r);
    return;
  }
  freeReplyObject(r);
  r = redisCommand(c, "PING");
  if(!r) {
    redis_failed(ct, R_UNREACHABLE, c->errstr, true);
    return;
  }
  if(r->type == REDIS_REPLY_ERROR) {
    redis_failed(ct, starts_with(r->str, "NOAUTH") ? R_NOAUTH : R_NOT_READY, reply_text(ct, r),
                 true);
    freeReplyObject(r);
    return;
  }
  freeReplyObject(r);
  char role[64];
  if(s->sentinels[0] && !m3s_redis_is_master(c, role, sizeof(role))) {
    char why[400];
    snprintf(why, sizeof(why), "the sentinels name %s:%d, which is a %s", host, port, role);
    redis_failed(ct, R_NOT_READY, why, true);
    return;
  }
  ct->fresh = true;
  redis_state_set(ct, R_CONNECTED, NULL);
}

/* SET key <content>; true when Redis stored it. */
static bool publish(controller_t *ct, const buf_t *content, const char *why)
{
  redisReply *r = redisCommand(ct->c, "SET %s %b", ct->s->key, content->p, content->len);
  if(!r || r->type != REDIS_REPLY_STATUS) {
    command_failed(ct, r);
    if(r)
      freeReplyObject(r);
    return false;
  }
  freeReplyObject(r);
  buf_set(&ct->published, content);
  ct->have_published = true;
  ct->fresh = false;
  ct->failures = 0;
  redis_state_set(ct, R_CONNECTED, NULL);
  m3s_info("published %s (%zu bytes) to %s: %s", ct->s->kubeconfig, content->len, ct->s->key,
           why);
  return true;
}

/* EXISTS key: 1 there, 0 gone, -1 failed. */
static int key_exists(controller_t *ct)
{
  int rc;
  redisReply *r = redisCommand(ct->c, "EXISTS %s", ct->s->key);
  if(!r || r->type != REDIS_REPLY_INTEGER) {
    command_failed(ct, r);
    if(r)
      freeReplyObject(r);
    return -1;
  }
  rc = r->integer > 0 ? 1 : 0;
  freeReplyObject(r);
  ct->failures = 0;
  redis_state_set(ct, R_CONNECTED, NULL);
  return rc;
}

static void tick(controller_t *ct)
{
  int err = 0;
  file_state_t fs = read_file(ct->s->kubeconfig, &ct->read, &err);
  bool stable = false;

  file_state_set(ct, fs, err);
  if(fs == KC_OK) {
    /* New content counts once two reads in a row agree (K3s rewrites the
     * file in place; a read in between would see half of it). */
    stable = ct->prev_ok && buf_eq(&ct->read, &ct->prev);
    buf_set(&ct->prev, &ct->read);
  }
  ct->prev_ok = fs == KC_OK;

  if(now_ms() < ct->next_try_ms)
    return;
  if(!ct->c) {
    try_connect(ct);
    if(!ct->c)
      return;
  }
  if(!stable)
    return;
  if(ct->fresh) {
    publish(ct, &ct->read, ct->have_published ? "connected to Redis again" : "first publication");
    return;
  }
  if(!ct->have_published || !buf_eq(&ct->read, &ct->published)) {
    publish(ct, &ct->read, "the file changed");
    return;
  }
  if(key_exists(ct) == 0)
    publish(ct, &ct->read, "the key was gone");
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
  settings_t s;
  controller_t ct;
  sigset_t block, waitmask;
  struct sigaction sa;

  for(int i = 1; i < argc; i++) {
    if(!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
    if(!strcmp(argv[i], "--version") || !strcmp(argv[i], "-v")) {
      printf("m3s-controller %s\n", M3S_VERSION);
      return 0;
    }
    fprintf(stderr, "m3s-controller: unknown argument \"%s\" (try --help)\n", argv[i]);
    return 2;
  }
  if(settings_load(&s) != 0)
    return 2;
  {
    const char *secrets[] = { s.password, s.sentinel_password };
    m3s_log_init(s.level, secrets, 2);
  }
  m3s_log_set_name("m3s-controller");

  /* SIGTERM/SIGINT only inside ppoll (see DESIGN); SIGPIPE from a write to a
   * Redis that went away must not kill the process. */
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &waitmask);
  sigdelset(&waitmask, SIGTERM);
  sigdelset(&waitmask, SIGINT);

  memset(&ct, 0, sizeof(ct));
  ct.s = &s;
  ct.rng = (unsigned)getpid() ^ (unsigned)now_ms();
  m3s_info("m3s-controller %s: publishing %s to %s in database %d of Redis at %s, "
           "checking every %lld ms", M3S_VERSION, s.kubeconfig, s.key, s.db, s.server,
           (long long)s.interval_ms);

  while(!stop_signal) {
    int64_t started = now_ms();
    tick(&ct);
    int64_t left = s.interval_ms - (now_ms() - started);
    if(left > 0)
      wait_ms(left, &waitmask);
  }
  m3s_info("stopping on %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM");

  if(ct.c)
    redisFree(ct.c);
  free(ct.read.p);
  free(ct.prev.p);
  free(ct.published.p);
  settings_free(&s);
  m3s_log_shutdown();
  return 0;
}
