/* The store actor: the only Redis client of the daemon. See
 * include/m3s/store.h for its messages.
 *
 * DESIGN. The actor owns one synchronous hiredis connection on its own
 * thread; a read/write timeout (IO_TIMEOUT_MS) bounds every blocking call,
 * so a hung Redis shows up as an I/O error instead of a stuck thread.
 * Writes and loads share one FIFO queue, so a load sees every write sent
 * before it. The queue is served from the wait hook, i.e. once the mailbox
 * is empty: everything that arrived meanwhile goes out in one pipeline
 * (FLUSH_CHUNK batches at a time), and each batch is confirmed only after
 * its own reply. Any I/O error goes through one function, connection_lost(),
 * which keeps the unconfirmed items at the head of the queue (SET and DEL
 * are idempotent, so a replay is harmless) and arms a reconnect timer with
 * exponential backoff and jitter.
 *
 * Two kinds of failure reply are told apart: server states that pass
 * (LOADING after a restart, READONLY during a failover, NOAUTH after a
 * restart with a new password, BUSY, MASTERDOWN, TRYAGAIN) are handled like
 * an outage, because the same batch will succeed later; any other error
 * reply would come back on every retry, so the batch is dropped, counted
 * and logged with its key, and never confirmed.
 *
 * Values are never logged (they hold credentials and keys), only keys.
 */
#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "m3s/log.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

enum {
  T_RECONNECT = M3S_MSG_USER, /* timer: try to connect again */
  T_PING,                     /* timer: check an idle connection */
};

#define MAX_QUEUED_BATCHES 100000
#define FLUSH_CHUNK 1000          /* batches per pipeline round trip */
#define GET_CHUNK 250             /* GETs per pipeline round trip in a load */
#define SCAN_COUNT "1000"
#define IO_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_PERIOD_MS 5000
#define REFUSE_LOG_EVERY 1000     /* one log line per this many refused batches */

typedef struct item {
  m3s_store_batch_t *batch; /* exactly one of batch and load is set */
  m3s_store_load_t *load;
} item_t;

typedef struct item_queue {
  item_t *items;
  size_t head, n, cap;
} item_queue_t;

typedef struct store {
  m3s_actor_t base;
  redisContext *c;         /* NULL while disconnected */
  item_queue_t queue;
  size_t batches;          /* write batches in the queue (bounded) */
  int64_t backoff_ms;
  uint64_t reconnect_timer;
  unsigned rng;
  /* counters */
  uint64_t errors, reconnects, written, refused, corrupt, loads;
} store_t;

/* Outcome of a command at the connection level. */
typedef enum io_rc {
  IO_OK = 0,     /* a reply arrived (it may be an error reply) */
  IO_LOST = -1,  /* the connection is unusable: reconnect and replay */
} io_rc_t;

static void connection_lost(store_t *s, const char *why);

/* ---- batches and loads (owner of the object only) ----------------------- */

m3s_store_batch_t *m3s_store_batch_new(m3s_actor_t *notify, int64_t tag)
{
  m3s_store_batch_t *b = m3s_xcalloc(1, sizeof(*b));
  b->notify = notify;
  b->tag = tag;
  return b;
}

static m3s_store_op_t *batch_add(m3s_store_batch_t *b)
{
  if(b->n == b->cap) {
    b->cap = b->cap ? b->cap * 2 : 4;
    b->ops = m3s_xrealloc(b->ops, b->cap * sizeof(*b->ops));
  }
  return &b->ops[b->n++];
}

void m3s_store_batch_set(m3s_store_batch_t *b, const char *key, const char *value)
{
  m3s_store_op_t *op = batch_add(b);
  op->kind = M3S_STORE_SET;
  op->key = m3s_xstrdup(key);
  op->value = m3s_xstrdup(value);
}

void m3s_store_batch_del(m3s_store_batch_t *b, const char *key)
{
  m3s_store_op_t *op = batch_add(b);
  op->kind = M3S_STORE_DEL;
  op->key = m3s_xstrdup(key);
  op->value = NULL;
}

void m3s_store_batch_free(void *p)
{
  m3s_store_batch_t *b = p;
  if(!b)
    return;
  for(size_t i = 0; i < b->n; i++) {
    free(b->ops[i].key);
    free(b->ops[i].value);
  }
  free(b->ops);
  free(b);
}

m3s_store_load_t *m3s_store_load_new(const char *match, m3s_actor_t *notify, int64_t tag)
{
  m3s_store_load_t *l = m3s_xcalloc(1, sizeof(*l));
  l->match = m3s_xstrdup(match);
  l->notify = notify;
  l->tag = tag;
  return l;
}

static void load_reset(m3s_store_load_t *l)
{
  for(size_t i = 0; i < l->nkeys; i++)
    free(l->keys[i]);
  free(l->keys);
  l->keys = NULL;
  l->nkeys = l->pos = 0;
  l->waiting = false;
  json_decref(l->ready);
  l->ready = NULL;
}

void m3s_store_load_free(void *p)
{
  m3s_store_load_t *l = p;
  if(!l)
    return;
  load_reset(l);
  free(l->match);
  free(l);
}

/* ---- the queue (owner thread only) --------------------------------------- */

static void queue_push(item_queue_t *q, item_t it)
{
  if(q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 64;
    item_t *items = m3s_xmalloc(cap * sizeof(*items));
    for(size_t i = 0; i < q->n; i++)
      items[i] = q->items[(q->head + i) % q->cap];
    free(q->items);
    q->items = items;
    q->cap = cap;
    q->head = 0;
  }
  q->items[(q->head + q->n) % q->cap] = it;
  q->n++;
}

static item_t *queue_at(item_queue_t *q, size_t i)
{
  return &q->items[(q->head + i) % q->cap];
}

static item_t queue_pop(item_queue_t *q)
{
  item_t it = q->items[q->head];
  q->head = (q->head + 1) % q->cap;
  q->n--;
  return it;
}

static void item_free(item_t it)
{
  m3s_store_batch_free(it.batch);
  m3s_store_load_free(it.load);
}

/* ---- connection ---------------------------------------------------------- */

static int64_t next_backoff(store_t *s)
{
  int64_t d = s->backoff_ms;
  s->backoff_ms = d * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d * 2;
  /* A random delay in [d/2, d]: daemons restarted together do not hammer a
   * recovering Redis in step. */
  return d / 2 + (int64_t)(rand_r(&s->rng) % (unsigned)(d / 2 + 1));
}

static void reconnect_later(store_t *s)
{
  if(s->reconnect_timer)
    m3s_timer_cancel(&s->base, s->reconnect_timer);
  int64_t delay = next_backoff(s);
  s->reconnect_timer = m3s_timer_start(&s->base, T_RECONNECT, delay, 0);
  m3s_debug("reconnecting to Redis in %lld ms", (long long)delay);
}

/* hiredis writes with write(2): a peer that closed the socket raises SIGPIPE.
 * The daemon ignores it process-wide, but the actor must not depend on that
 * (tests, embedding), so it blocks SIGPIPE on its own thread and discards a
 * pending one after a failed write. */
static void sigpipe_block(void)
{
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void sigpipe_discard(void)
{
  sigset_t set;
  struct timespec zero = { 0, 0 };
  sigemptyset(&set);
  sigaddset(&set, SIGPIPE);
  while(sigtimedwait(&set, NULL, &zero) == SIGPIPE)
    ;
}

static bool is_transient_error(const char *err)
{
  static const char *const prefixes[] = { "LOADING", "READONLY", "NOAUTH", "BUSY",
                                          "MASTERDOWN", "TRYAGAIN" };
  for(size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
    if(!strncmp(err, prefixes[i], strlen(prefixes[i])))
      return true;
  return false;
}

/* Runs one command during the handshake. Returns the reply (caller frees) or
 * NULL on an I/O error. */
static redisReply *handshake_cmd(redisContext *c, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  redisReply *r = redisvCommand(c, fmt, ap);
  va_end(ap);
  return r;
}

/* One connection attempt: connect, AUTH (only with a password), SELECT,
 * PING. Returns 0 (s->c set), -EACCES (password refused), -EINVAL (DB index
 * refused), or -EAGAIN (unreachable or timed out: try again later). */
static int try_connect(store_t *s)
{
  const m3s_config_t *cfg = s->base.cfg;
  struct timeval tv = { IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000 };
  redisReply *r = NULL;
  int rc = 0;

  redisContext *c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port, tv);
  if(!c) {
    m3s_warn("cannot connect to Redis at %s: out of memory", cfg->redis_server);
    return -EAGAIN;
  }
  if(c->err) {
    m3s_warn("cannot connect to Redis at %s (REDIS_SERVER): %s", cfg->redis_server, c->errstr);
    rc = -EAGAIN;
    goto out;
  }
  if(redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
    m3s_warn("cannot set up the connection to Redis at %s: %s", cfg->redis_server, c->errstr);
    rc = -EAGAIN;
    goto out;
  }
  if(cfg->redis_password[0]) {
    /* %b: the password is sent as one argument whatever it contains. */
    r = handshake_cmd(c, "AUTH %b", cfg->redis_password, strlen(cfg->redis_password));
    if(!r)
      goto io_error;
    if(r->type == REDIS_REPLY_ERROR) {
      /* Redis's answer never contains the password; the check costs little
       * and keeps the promise even if a future server echoed it. */
      bool echoes = strstr(r->str, cfg->redis_password) != NULL;
      m3s_error("Redis at %s (REDIS_SERVER) refused the password in REDIS_PASSWORD: %s",
                cfg->redis_server, echoes ? "(reply withheld)" : r->str);
      rc = -EACCES;
      goto out;
    }
    freeReplyObject(r);
    r = NULL;
  }
  if(cfg->redis_db != 0) {
    r = handshake_cmd(c, "SELECT %d", cfg->redis_db);
    if(!r)
      goto io_error;
    if(r->type == REDIS_REPLY_ERROR) {
      if(!strncmp(r->str, "NOAUTH", 6)) {
        m3s_error("Redis at %s (REDIS_SERVER) requires a password but REDIS_PASSWORD is empty",
                  cfg->redis_server);
        rc = -EACCES;
      }
      else {
        m3s_error("Redis at %s refused database %d (REDIS_DB): %s", cfg->redis_server,
                  cfg->redis_db, r->str);
        rc = -EINVAL;
      }
      goto out;
    }
    freeReplyObject(r);
    r = NULL;
  }
  r = handshake_cmd(c, "PING");
  if(!r)
    goto io_error;
  if(r->type == REDIS_REPLY_ERROR) {
    if(!strncmp(r->str, "NOAUTH", 6)) {
      m3s_error("Redis at %s (REDIS_SERVER) requires a password but REDIS_PASSWORD is empty",
                cfg->redis_server);
      rc = -EACCES;
    }
    else {
      /* LOADING and the like: the server is there but not ready yet. */
      m3s_warn("Redis at %s is not ready: %s", cfg->redis_server, r->str);
      rc = -EAGAIN;
    }
    goto out;
  }
  freeReplyObject(r);
  r = NULL;
  s->c = c;
  c = NULL;
  s->backoff_ms = BACKOFF_MIN_MS;
  m3s_info("connected to Redis at %s, database %d", cfg->redis_server, cfg->redis_db);
  goto out;

io_error:
  m3s_warn("lost the connection to Redis at %s during the handshake: %s", cfg->redis_server,
           c->errstr);
  sigpipe_discard();
  rc = -EAGAIN;
out:
  if(r)
    freeReplyObject(r);
  if(c)
    redisFree(c);
  return rc;
}

static void connection_lost(store_t *s, const char *why)
{
  m3s_warn("Redis connection to %s lost: %s; %zu item(s) kept for replay",
           s->base.cfg->redis_server, why, s->queue.n);
  if(s->c) {
    redisFree(s->c);
    s->c = NULL;
  }
  sigpipe_discard();
  s->reconnects++;
  reconnect_later(s);
}

/* Reads one reply of a pipeline. IO_LOST after an I/O error or a transient
 * server state (the connection is closed then). */
static io_rc_t read_reply(store_t *s, redisReply **out)
{
  void *r = NULL;
  *out = NULL;
  if(redisGetReply(s->c, &r) != REDIS_OK) {
    connection_lost(s, s->c->errstr[0] ? s->c->errstr : "I/O error");
    return IO_LOST;
  }
  *out = r;
  return IO_OK;
}

/* ---- writes -------------------------------------------------------------- */

static void append_op(redisContext *c, const m3s_store_op_t *op)
{
  if(op->kind == M3S_STORE_SET)
    redisAppendCommand(c, "SET %b %b", op->key, strlen(op->key), op->value, strlen(op->value));
  else
    redisAppendCommand(c, "DEL %b", op->key, strlen(op->key));
}

static void append_batch(redisContext *c, const m3s_store_batch_t *b)
{
  if(b->n == 1) {
    append_op(c, &b->ops[0]);
    return;
  }
  redisAppendCommand(c, "MULTI");
  for(size_t i = 0; i < b->n; i++)
    append_op(c, &b->ops[i]);
  redisAppendCommand(c, "EXEC");
}

/* Number of replies a batch produces. An empty batch is an empty
 * MULTI/EXEC: its confirmation still comes in order with the others. */
static size_t batch_replies(const m3s_store_batch_t *b)
{
  return b->n == 1 ? 1 : b->n + 2;
}

/* The first error found in a batch's replies, as "key: error", in buf. */
static void note_error(const m3s_store_batch_t *b, const redisReply *r, size_t reply_index,
                       char *buf, size_t len)
{
  if(buf[0])
    return;
  if(!b->n) {
    snprintf(buf, len, "(empty batch): %s", r->str ? r->str : "error");
    return;
  }
  /* Reply i of a MULTI batch is op i-1 (0 is MULTI's, the last is EXEC's). */
  size_t op = b->n == 1 ? 0 : (reply_index == 0 ? 0 : reply_index - 1);
  if(op >= b->n)
    op = 0;
  snprintf(buf, len, "%s: %s", b->ops[op].key, r->str ? r->str : "error");
}

/* Reads the replies of one batch. Returns IO_OK with *failed set when Redis
 * refused it (err holds the reason), or IO_LOST. */
static io_rc_t read_batch(store_t *s, const m3s_store_batch_t *b, bool *failed, bool *transient,
                          char *err, size_t errlen)
{
  size_t n = batch_replies(b);
  *failed = *transient = false;
  err[0] = '\0';
  for(size_t i = 0; i < n; i++) {
    redisReply *r;
    if(read_reply(s, &r) != IO_OK)
      return IO_LOST;
    if(r->type == REDIS_REPLY_ERROR) {
      *failed = true;
      *transient |= is_transient_error(r->str);
      note_error(b, r, i, err, errlen);
    }
    else if(i == n - 1 && b->n > 1) {
      /* EXEC: nil when the transaction was aborted; an array whose items may
       * be errors of single commands. */
      if(r->type != REDIS_REPLY_ARRAY) {
        *failed = true;
        note_error(b, r, i, err, errlen);
      }
      else {
        for(size_t k = 0; k < r->elements; k++) {
          if(r->element[k]->type == REDIS_REPLY_ERROR) {
            *failed = true;
            *transient |= is_transient_error(r->element[k]->str);
            note_error(b, r->element[k], k + 1, err, errlen);
          }
        }
      }
    }
    freeReplyObject(r);
  }
  return IO_OK;
}

static void batch_done(store_t *s)
{
  item_t it = queue_pop(&s->queue);
  s->batches--;
  if(it.batch->notify)
    m3s_send(it.batch->notify, m3s_msg_new(M3S_STORE_WRITTEN, it.batch->tag, NULL, NULL));
  s->written++;
  item_free(it);
}

/* Sends the run of batches at the head of the queue (up to FLUSH_CHUNK) in
 * one pipeline and confirms them one by one. Returns false when the
 * connection was lost. */
static bool flush_batches(store_t *s)
{
  size_t n = 0;
  while(n < s->queue.n && n < FLUSH_CHUNK && queue_at(&s->queue, n)->batch) {
    append_batch(s->c, queue_at(&s->queue, n)->batch);
    n++;
  }
  for(size_t i = 0; i < n; i++) {
    m3s_store_batch_t *b = queue_at(&s->queue, 0)->batch;
    bool failed, transient;
    char err[512];
    if(read_batch(s, b, &failed, &transient, err, sizeof(err)) != IO_OK)
      return false;
    if(failed && transient) {
      /* The batch and those behind it stay queued; after the reconnect
       * they are sent again in order. */
      char why[600];
      snprintf(why, sizeof(why), "Redis is not ready (%s)", err);
      connection_lost(s, why);
      return false;
    }
    if(failed) {
      s->errors++;
      m3s_error("Redis refused a write of %zu operation(s) (tag %lld), dropped: %s", b->n,
                (long long)b->tag, err);
      item_free(queue_pop(&s->queue));
      s->batches--;
      continue;
    }
    batch_done(s);
  }
  return true;
}

/* ---- loads --------------------------------------------------------------- */

/* Keys whose value must be JSON (rest = the key without "<fw>:"). */
static bool must_be_json(const char *rest)
{
  return !strcmp(rest, "framework") || !strcmp(rest, "framework_config") ||
         !strncmp(rest, "kubernetes:", 11) || !strncmp(rest, "datastore:", 10) ||
         !strncmp(rest, "server:", 7) || !strncmp(rest, "agent:", 6);
}

/* A JSON syntax check that builds nothing (RFC 8259, one value, nesting at
 * most JSON_MAX_DEPTH): loads check every record, and a parse per record
 * only to throw the tree away cost more than the load itself. UTF-8 is
 * checked by json_stringn when the value is kept. */
#define JSON_MAX_DEPTH 512

typedef struct jscan {
  const unsigned char *p, *end;
  int depth;
} jscan_t;

static void js_ws(jscan_t *j)
{
  while(j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
}

static bool js_lit(jscan_t *j, const char *lit)
{
  size_t n = strlen(lit);
  if((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
    return false;
  j->p += n;
  return true;
}

static bool js_digits(jscan_t *j)
{
  const unsigned char *start = j->p;
  while(j->p < j->end && *j->p >= '0' && *j->p <= '9')
    j->p++;
  return j->p > start;
}

static bool js_number(jscan_t *j)
{
  if(j->p < j->end && *j->p == '-')
    j->p++;
  if(j->p < j->end && *j->p == '0')
    j->p++;
  else if(!js_digits(j))
    return false;
  if(j->p < j->end && *j->p == '.') {
    j->p++;
    if(!js_digits(j))
      return false;
  }
  if(j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
    j->p++;
    if(j->p < j->end && (*j->p == '+' || *j->p == '-'))
      j->p++;
    if(!js_digits(j))
      return false;
  }
  return true;
}

static bool js_string(jscan_t *j)
{
  j->p++; /* the opening quote */
  while(j->p < j->end) {
    unsigned char c = *j->p++;
    if(c == '"')
      return true;
    if(c < 0x20)
      return false;
    if(c != '\\')
      continue;
    if(j->p >= j->end)
      return false;
    c = *j->p++;
    if(c == 'u') {
      for(int i = 0; i < 4; i++, j->p++)
        if(j->p >= j->end || !isxdigit(*j->p))
          return false;
    }
    else if(!strchr("\"\\/bfnrt", c) || c == 0) {
      return false;
    }
  }
  return false;
}

static bool js_value(jscan_t *j)
{
  js_ws(j);
  if(j->p >= j->end)
    return false;
  switch(*j->p) {
  case '"':
    return js_string(j);
  case '{':
  case '[': {
    bool obj = *j->p == '{';
    char close = obj ? '}' : ']';
    if(++j->depth > JSON_MAX_DEPTH)
      return false;
    j->p++;
    js_ws(j);
    if(j->p < j->end && *j->p == close) {
      j->p++;
      j->depth--;
      return true;
    }
    for(;;) {
      if(obj) {
        js_ws(j);
        if(j->p >= j->end || *j->p != '"' || !js_string(j))
          return false;
        js_ws(j);
        if(j->p >= j->end || *j->p++ != ':')
          return false;
      }
      if(!js_value(j))
        return false;
      js_ws(j);
      if(j->p >= j->end)
        return false;
      if(*j->p == ',') {
        j->p++;
        continue;
      }
      if(*j->p++ != close)
        return false;
      j->depth--;
      return true;
    }
  }
  case 't':
    return js_lit(j, "true");
  case 'f':
    return js_lit(j, "false");
  case 'n':
    return js_lit(j, "null");
  default:
    return js_number(j);
  }
}

static bool valid_json(const char *v, size_t len)
{
  jscan_t j = { (const unsigned char *)v, (const unsigned char *)v + len, 0 };
  if(!js_value(&j))
    return false;
  js_ws(&j);
  return j.p == j.end;
}

/* Moves a bad record out of the way. Returns IO_LOST or IO_OK (a refused
 * RENAME, e.g. because the key just vanished, is only logged). */
static io_rc_t set_aside(store_t *s, const char *key, size_t plen, const char *why)
{
  char *dst = NULL;
  redisReply *r = NULL;
  io_rc_t rc = IO_OK;
  const char *fw = s->base.cfg->fw;
  size_t need = strlen(fw) + strlen(":corrupt:") + strlen(key + plen) + 32;

  dst = m3s_xmalloc(need);
  snprintf(dst, need, "%s:corrupt:%s:%lld", fw, key + plen, (long long)time(NULL));
  if(redisAppendCommand(s->c, "RENAME %b %b", key, strlen(key), dst, strlen(dst)) != REDIS_OK ||
     read_reply(s, &r) != IO_OK) {
    if(s->c)
      connection_lost(s, s->c->errstr);
    rc = IO_LOST;
    goto out;
  }
  s->corrupt++;
  if(r->type == REDIS_REPLY_ERROR)
    m3s_warn("record %s is %s but could not be set aside: %s", key, why, r->str);
  else
    m3s_warn("record %s is %s: moved to %s and ignored", key, why, dst);
out:
  if(r)
    freeReplyObject(r);
  free(dst);
  return rc;
}

/* GETs keys[0..n) in one pipeline and adds the usable ones to result. */
static io_rc_t load_values(store_t *s, char **keys, size_t n, size_t plen, json_t *result)
{
  for(size_t i = 0; i < n; i++)
    redisAppendCommand(s->c, "GET %b", keys[i], strlen(keys[i]));
  /* Read every reply before any RENAME so the pipeline stays in step. */
  redisReply **replies = m3s_xcalloc(n ? n : 1, sizeof(*replies));
  io_rc_t rc = IO_OK;
  for(size_t i = 0; i < n; i++) {
    if(read_reply(s, &replies[i]) != IO_OK) {
      rc = IO_LOST;
      goto out;
    }
  }
  for(size_t i = 0; i < n; i++) {
    redisReply *r = replies[i];
    const char *why = NULL;
    if(r->type == REDIS_REPLY_NIL)
      continue; /* deleted since the SCAN */
    if(r->type == REDIS_REPLY_ERROR && is_transient_error(r->str)) {
      char buf[300];
      snprintf(buf, sizeof(buf), "Redis is not ready (%s)", r->str);
      connection_lost(s, buf);
      rc = IO_LOST;
      goto out;
    }
    if(r->type != REDIS_REPLY_STRING)
      why = "not a string";
    else if(must_be_json(keys[i] + plen) && !valid_json(r->str, r->len))
      why = "not valid JSON";
    if(!why) {
      json_t *v = json_stringn(r->str, r->len);
      if(v) {
        json_object_set_new(result, keys[i], v);
        continue;
      }
      why = "not valid UTF-8";
    }
    if(set_aside(s, keys[i], plen, why) != IO_OK) {
      rc = IO_LOST;
      goto out;
    }
  }
out:
  for(size_t i = 0; i < n; i++)
    if(replies[i])
      freeReplyObject(replies[i]);
  free(replies);
  return rc;
}

static void send_chunk(m3s_store_load_t *l, json_t *chunk, bool more)
{
  m3s_msg_t *m = m3s_msg_new(M3S_STORE_LOADED, l->tag, chunk, m3s_json_drop);
  m->flags = more ? M3S_STORE_MORE : 0;
  m3s_send(l->notify, m);
}

/* Runs the load at the head of the queue: SCANs the keys once, then GETs
 * them a chunk at a time; after each chunk but the last it waits for the
 * receiver's M3S_STORE_NEXT (load->waiting), so a large load never piles up
 * in the receiver's mailbox, but reads the next chunk meanwhile
 * (load->ready), so reading and the receiver's parsing overlap. Returns
 * false when it stops: waiting, or the connection was lost (then the load
 * runs again from the start after the reconnect). */
static bool run_load(store_t *s)
{
  m3s_store_load_t *l = queue_at(&s->queue, 0)->load;
  const char *fw = s->base.cfg->fw;
  size_t plen = strlen(fw) + 1;
  char *pattern = NULL, *corrupt = NULL, *cursor = NULL;
  json_t *result = NULL;
  bool ok = false;

  if(l->waiting)
    return false;
  size_t need = plen + strlen(l->match) + 1;
  pattern = m3s_xmalloc(need);
  snprintf(pattern, need, "%s:%s", fw, l->match);
  if(!l->keys && !strpbrk(l->match, "*?[\\")) {
    /* One key: a SCAN would walk the whole key space for it. */
    l->keys = m3s_xmalloc(sizeof(*l->keys));
    l->keys[0] = m3s_xstrdup(pattern);
    l->nkeys = 1;
  }
  if(!l->keys) {
    size_t capkeys = 0;
    need = plen + strlen("corrupt:") + 1;
    corrupt = m3s_xmalloc(need);
    snprintf(corrupt, need, "%s:corrupt:", fw);
    cursor = m3s_xstrdup("0");
    l->keys = m3s_xmalloc(sizeof(*l->keys));
    do {
      redisReply *r = NULL;
      redisAppendCommand(s->c, "SCAN %s MATCH %b COUNT " SCAN_COUNT, cursor, pattern,
                         strlen(pattern));
      if(read_reply(s, &r) != IO_OK)
        goto lost;
      if(r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
         r->element[0]->type != REDIS_REPLY_STRING ||
         r->element[1]->type != REDIS_REPLY_ARRAY) {
        char why[300];
        snprintf(why, sizeof(why), "unexpected SCAN reply%s%s",
                 r->type == REDIS_REPLY_ERROR ? ": " : "",
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
        freeReplyObject(r);
        connection_lost(s, why);
        goto lost;
      }
      free(cursor);
      cursor = m3s_xstrdup(r->element[0]->str);
      for(size_t i = 0; i < r->element[1]->elements; i++) {
        const redisReply *k = r->element[1]->element[i];
        if(k->type != REDIS_REPLY_STRING || !strncmp(k->str, corrupt, strlen(corrupt)))
          continue;
        if(l->nkeys == capkeys) {
          capkeys = capkeys ? capkeys * 2 : 256;
          l->keys = m3s_xrealloc(l->keys, capkeys * sizeof(*l->keys));
        }
        l->keys[l->nkeys++] = m3s_xstrdup(k->str);
      }
      freeReplyObject(r);
    } while(strcmp(cursor, "0") != 0);
  }

  /* SCAN may return a key twice; a chunk keeps one (and the receiver sees a
   * repeated key as the same record). */
  if(l->ready) {
    result = l->ready;
    l->ready = NULL;
    if(l->pos == l->nkeys)
      goto done; /* it was the last one */
    send_chunk(l, result, true);
    l->waiting = true;
  }
  result = json_object();
  while(l->pos < l->nkeys) {
    size_t n = l->nkeys - l->pos < GET_CHUNK ? l->nkeys - l->pos : GET_CHUNK;
    if(load_values(s, l->keys + l->pos, n, plen, result) != IO_OK)
      goto lost;
    l->pos += n;
    if(l->pos < l->nkeys && json_object_size(result) && l->notify) {
      if(l->waiting) {
        l->ready = result; /* held until the receiver asks */
        result = NULL;
        goto out;
      }
      send_chunk(l, result, true);
      l->waiting = true;
      result = json_object();
    }
  }
  if(l->waiting) {
    l->ready = result; /* the last chunk, held until the receiver asks */
    result = NULL;
    goto out;
  }
done:
  ok = true;
  s->loads++;
  m3s_debug("loaded %zu record(s) matching %s", l->nkeys, pattern);
  item_t it = queue_pop(&s->queue);
  if(it.load->notify) {
    send_chunk(it.load, result, false);
    result = NULL;
  }
  item_free(it);
  goto out;
lost:
  load_reset(l);
out:
  free(cursor);
  free(pattern);
  free(corrupt);
  json_decref(result);
  return ok;
}

static bool head_waiting(store_t *s)
{
  item_t *it = s->queue.n ? queue_at(&s->queue, 0) : NULL;
  return it && it->load && it->load->waiting;
}

/* Serves the queue in order while connected. */
static void pump(store_t *s)
{
  while(s->c && s->queue.n) {
    bool ok = queue_at(&s->queue, 0)->batch ? flush_batches(s) : run_load(s);
    if(!ok)
      return;
  }
}

/* ---- actor hooks ---------------------------------------------------------- */

static void store_wait(m3s_actor_t *self, int wake_fd, int timeout_ms)
{
  store_t *s = (store_t *)self;
  if(s->c && s->queue.n && !head_waiting(s)) {
    /* The mailbox is empty: everything queued meanwhile goes out together.
     * No sleep: the loop looks at the mailbox again right after. */
    pump(s);
    return;
  }
  struct pollfd p = { .fd = wake_fd, .events = POLLIN };
  int rc = poll(&p, 1, timeout_ms);
  (void)rc; /* EINTR or a timeout: the loop looks again either way */
}

static void on_write(store_t *s, m3s_msg_t *msg)
{
  m3s_store_batch_t *b = m3s_msg_take(msg);
  if(!b)
    return;
  if(s->batches >= MAX_QUEUED_BATCHES) {
    s->errors++;
    s->refused++;
    if(s->refused % REFUSE_LOG_EVERY == 1 || REFUSE_LOG_EVERY == 1)
      m3s_error("write queue full (%d batches waiting for Redis at %s): refused a write of "
                "%s (%llu refused so far)", MAX_QUEUED_BATCHES, s->base.cfg->redis_server,
                b->n ? b->ops[0].key : "nothing", (unsigned long long)s->refused);
    m3s_store_batch_free(b);
    return;
  }
  queue_push(&s->queue, (item_t){ .batch = b });
  s->batches++;
  /* A steady stream of writes may never let the mailbox go empty: flush
   * large runs from here too. */
  if(s->c && s->batches >= FLUSH_CHUNK)
    pump(s);
}

static void on_load(store_t *s, m3s_msg_t *msg)
{
  m3s_store_load_t *l = m3s_msg_take(msg);
  if(!l)
    return;
  /* Loads are not bounded like writes: each one is a request some actor
   * waits for, and there are only a few. */
  queue_push(&s->queue, (item_t){ .load = l });
}

static void on_ping(store_t *s)
{
  redisReply *r = NULL;
  if(!s->c || s->queue.n)
    return; /* a busy connection proves itself; a lost one reconnects */
  if(redisAppendCommand(s->c, "PING") != REDIS_OK || read_reply(s, &r) != IO_OK)
    return;
  if(r->type == REDIS_REPLY_ERROR && is_transient_error(r->str)) {
    char why[300];
    snprintf(why, sizeof(why), "Redis is not ready (%s)", r->str);
    freeReplyObject(r);
    connection_lost(s, why);
    return;
  }
  freeReplyObject(r);
}

static void on_reconnect(store_t *s)
{
  s->reconnect_timer = 0;
  if(s->c)
    return;
  int rc = try_connect(s);
  if(rc == 0)
    return; /* the wait hook replays the queue */
  if(rc == -EACCES)
    s->backoff_ms = BACKOFF_MAX_MS; /* needs an operator: do not hammer */
  reconnect_later(s);
}

static json_t *status_json(const store_t *s)
{
  return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "connected", s->c != NULL,
                   "queued", (json_int_t)s->queue.n, "errors", (json_int_t)s->errors,
                   "reconnects", (json_int_t)s->reconnects,
                   "queued_batches", (json_int_t)s->batches,
                   "written", (json_int_t)s->written, "refused", (json_int_t)s->refused,
                   "corrupt", (json_int_t)s->corrupt, "loads", (json_int_t)s->loads);
}

static void store_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  store_t *s = (store_t *)self;
  switch(msg->type) {
  case M3S_STORE_WRITE:
    on_write(s, msg);
    break;
  case M3S_STORE_LOAD:
    on_load(s, msg);
    break;
  case M3S_STORE_NEXT:
    if(head_waiting(s) && queue_at(&s->queue, 0)->load->tag == msg->arg) {
      queue_at(&s->queue, 0)->load->waiting = false;
      pump(s);
    }
    break;
  case M3S_STORE_STATUS:
    m3s_msg_reply(msg, m3s_msg_new(M3S_STORE_STATUS, 0, status_json(s), m3s_json_drop));
    break;
  case T_RECONNECT:
    on_reconnect(s);
    break;
  case T_PING:
    on_ping(s);
    break;
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
}

static int store_start(m3s_actor_t *self)
{
  store_t *s = (store_t *)self;
  sigpipe_block();
  s->rng = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)s;
  s->backoff_ms = BACKOFF_MIN_MS;
  int rc = try_connect(s);
  if(rc == -EACCES || rc == -EINVAL)
    return rc;
  if(rc != 0) {
    m3s_warn("Redis at %s is not reachable yet: writes and loads wait for it",
             self->cfg->redis_server);
    reconnect_later(s);
  }
  m3s_timer_start(self, T_PING, PING_PERIOD_MS, PING_PERIOD_MS);
  return 0;
}

static void store_stop(m3s_actor_t *self)
{
  store_t *s = (store_t *)self;
  /* Writes handled just before the stop have not been sent yet: give them
   * one chance while the connection is up (bounded by IO_TIMEOUT_MS per
   * call). */
  pump(s);
  if(s->queue.n)
    m3s_warn("stopping with %zu item(s) not written to Redis", s->queue.n);
  while(s->queue.n)
    item_free(queue_pop(&s->queue));
  free(s->queue.items);
  if(s->c)
    redisFree(s->c);
  s->c = NULL;
}

const m3s_actor_ops_t m3s_store_ops = {
  .name = "store",
  .size = sizeof(store_t),
  .start = store_start,
  .handle = store_handle,
  .wait = store_wait,
  .stop = store_stop,
};
