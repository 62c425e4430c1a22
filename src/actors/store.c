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
 * Every batch gets exactly one outcome, sent to its notify actor: stored
 * (M3S_STORE_WRITTEN) or refused for good (the same with M3S_STORE_FAILED).
 * Two kinds of refusal are told apart. Server states that pass (OOM,
 * MISCONF, BUSY, TRYAGAIN, NOREPLICAS: retried on the same connection;
 * LOADING, READONLY, NOAUTH, MASTERDOWN: the server itself may change, so
 * the connection is made again, through the sentinels if there are any)
 * keep the batch and every one behind it queued, and they are sent again
 * after a backoff with jitter: nothing behind a refused batch is confirmed
 * before it. Any other error reply would come back on every retry: the
 * batch is reported failed to its sender, counted and logged with its key.
 * A refusal is visible while it lasts: one log line when it starts or its
 * reason changes, one when writes pass again, and the status answer (the
 * API's /health, status page and metrics read it).
 *
 * With REDIS_WAIT_REPLICAS = N > 0 each pipeline ends with WAIT N: when
 * fewer replicas have the writes, none of them is confirmed and they are
 * written again (SET and DEL are idempotent) after a backoff.
 *
 * With REDIS_SENTINELS the master's address is asked of the sentinels on
 * every (re)connection and checked with ROLE; the periodic check asks ROLE
 * too, so a demoted master is left even while no write is refused.
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
#include "m3s/sentinel.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

enum {
  T_RECONNECT = M3S_MSG_USER, /* timer: try to connect again */
  T_PING,                     /* timer: check an idle connection */
  T_RETRY,                    /* timer: send refused batches again */
};

#define FLUSH_CHUNK 1000          /* batches per pipeline round trip */
#define GET_CHUNK 250             /* keys per MGET in a load */
#define SCAN_COUNT "1000"
#define IO_TIMEOUT_MS 2000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_PERIOD_MS 5000
#define MAX_ERROR_WORDS 16        /* refusal kinds counted apart */
#define ADDR_LEN 300

typedef struct item {
  m3s_store_batch_t *batch; /* exactly one of batch and load is set */
  m3s_store_load_t *load;
} item_t;

typedef struct item_queue {
  item_t *items;
  size_t head, n, cap;
} item_queue_t;

typedef struct refusal_count {
  char word[24];           /* first word of Redis's error reply */
  uint64_t n;
} refusal_count_t;

typedef struct store {
  m3s_actor_t base;
  redisContext *c;         /* NULL while disconnected */
  char addr[ADDR_LEN];     /* host:port of the server connected (or tried) */
  item_queue_t queue;
  size_t batches;          /* write batches in the queue */
  /* pushback: set at M3S_STORE_HIGH_WATER batches, cleared at
   * M3S_STORE_LOW_WATER; the watchers are told of each change */
  bool backlogged;
  int64_t backlogged_since_ms;
  uint64_t backlogs;       /* times it became backlogged */
  m3s_actor_t *watchers[M3S_STORE_MAX_WATCHERS];
  size_t nwatchers;
  int64_t backoff_ms;
  uint64_t reconnect_timer;
  uint64_t retry_timer;    /* armed while refused batches wait */
  unsigned rng;
  /* the refusal that lasts ("" = writes pass), and since when */
  char refusing[24];
  char refusal[400];
  int64_t refusing_since_ms;
  refusal_count_t by_error[MAX_ERROR_WORDS];
  size_t nby_error;
  /* counters */
  uint64_t errors, reconnects, written, refused, failed, corrupt, loads, wait_short;
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

void m3s_store_batch_then(m3s_store_batch_t *b, m3s_actor_t *to, m3s_msg_t *m)
{
  m3s_msg_free(b->then);
  b->then_to = to;
  b->then = m;
}

void m3s_store_batch_free(void *p)
{
  m3s_store_batch_t *b = p;
  if(!b)
    return;
  m3s_msg_free(b->then);
  for(size_t i = 0; i < b->n; i++) {
    free(b->ops[i].key);
    free(b->ops[i].value);
  }
  free(b->ops);
  free(b);
}

void m3s_store_watch(m3s_actor_t *store, m3s_actor_t *who)
{
  m3s_store_watch_t *w = m3s_xmalloc(sizeof(*w));
  w->who = who;
  m3s_send(store, m3s_msg_new(M3S_STORE_WATCH, 0, w, NULL));
}

m3s_store_load_t *m3s_store_load_new(const char *match, m3s_actor_t *notify, int64_t tag)
{
  m3s_store_load_t *l = m3s_xcalloc(1, sizeof(*l));
  l->match = m3s_xstrdup(match);
  l->notify = notify;
  l->tag = tag;
  return l;
}

void m3s_store_records_free(void *p)
{
  m3s_store_records_t *r = p;
  if(!r)
    return;
  for(size_t i = 0; i < r->n; i++) {
    free(r->key[i]);
    freeReplyObject(r->reply[i]);
  }
  free(r->key);
  free(r->val);
  free(r->len);
  free(r->reply);
  free(r);
}

/* A chunk of load l: a json_t * object, or with l->unchecked a
 * m3s_store_records_t *. */
static void *chunk_new(const m3s_store_load_t *l)
{
  return l->unchecked ? (void *)m3s_xcalloc(1, sizeof(m3s_store_records_t)) : (void *)json_object();
}

static size_t chunk_size(const m3s_store_load_t *l, void *c)
{
  return l->unchecked ? ((m3s_store_records_t *)c)->n : json_object_size(c);
}

static void chunk_free(bool unchecked, void *c)
{
  if(unchecked)
    m3s_store_records_free(c);
  else
    json_decref(c);
}

/* Moves the key and the reply holding its string value into records r. */
static void records_add(m3s_store_records_t *r, char **key, redisReply *reply)
{
  if(r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 256;
    r->key = m3s_xrealloc(r->key, r->cap * sizeof(*r->key));
    r->val = m3s_xrealloc(r->val, r->cap * sizeof(*r->val));
    r->len = m3s_xrealloc(r->len, r->cap * sizeof(*r->len));
    r->reply = m3s_xrealloc(r->reply, r->cap * sizeof(*r->reply));
  }
  r->key[r->n] = *key;
  r->val[r->n] = reply->str;
  r->len[r->n] = reply->len;
  r->reply[r->n++] = reply;
  *key = NULL;
}

static void load_reset(m3s_store_load_t *l)
{
  for(size_t i = 0; i < l->nkeys; i++)
    free(l->keys[i]);
  free(l->keys);
  l->keys = NULL;
  l->nkeys = l->pos = 0;
  l->waiting = false;
  if(l->ready)
    chunk_free(l->unchecked, l->ready);
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

static bool has_prefix_in(const char *err, const char *const *prefixes, size_t n)
{
  for(size_t i = 0; i < n; i++)
    if(!strncmp(err, prefixes[i], strlen(prefixes[i])))
      return true;
  return false;
}

/* Refusals that pass: the same batch succeeds later. */
static bool is_transient_error(const char *err)
{
  static const char *const prefixes[] = { "LOADING", "READONLY", "NOAUTH", "BUSY", "MASTERDOWN",
                                          "TRYAGAIN", "OOM", "MISCONF", "NOREPLICAS" };
  return has_prefix_in(err, prefixes, sizeof(prefixes) / sizeof(prefixes[0]));
}

/* Transient refusals that ask for another connection: the server is not
 * (or not yet) the master this daemon should write to. */
static bool needs_reconnect(const char *err)
{
  static const char *const prefixes[] = { "LOADING", "READONLY", "NOAUTH", "MASTERDOWN" };
  return has_prefix_in(err, prefixes, sizeof(prefixes) / sizeof(prefixes[0]));
}

/* ---- refusals: counted by kind, logged once per change ----------------------------- */

static void error_word(const char *err, char *word, size_t len)
{
  size_t n = strcspn(err, " \r\n");
  if(n >= len)
    n = len - 1;
  memcpy(word, err, n);
  word[n] = '\0';
  for(size_t i = 0; i < n; i++)
    if(!isalnum((unsigned char)word[i]) && word[i] != '_')
      word[i] = '_'; /* a metric label value stays plain */
}

static void count_refusal(store_t *s, const char *word)
{
  s->refused++;
  for(size_t i = 0; i < s->nby_error; i++)
    if(!strcmp(s->by_error[i].word, word)) {
      s->by_error[i].n++;
      return;
    }
  size_t i = s->nby_error < MAX_ERROR_WORDS ? s->nby_error++ : MAX_ERROR_WORDS - 1;
  if(i == MAX_ERROR_WORDS - 1 && strcmp(s->by_error[i].word, "OTHER") != 0) {
    snprintf(s->by_error[i].word, sizeof(s->by_error[i].word), "OTHER");
    s->by_error[i].n = 0;
  }
  else if(i < MAX_ERROR_WORDS - 1) {
    snprintf(s->by_error[i].word, sizeof(s->by_error[i].word), "%s", word);
  }
  s->by_error[i].n++;
}

/* A refusal that lasts (transient) or a write failed for good: logged when
 * it starts or its kind changes, shown until a write passes again. */
static void refusal_begin(store_t *s, const char *word, const char *what, bool transient)
{
  bool changed = strcmp(s->refusing, word) != 0;
  snprintf(s->refusal, sizeof(s->refusal), "%s", what);
  if(!changed)
    return;
  if(!s->refusing[0])
    s->refusing_since_ms = m3s_now_ms();
  snprintf(s->refusing, sizeof(s->refusing), "%s", word);
  if(transient)
    m3s_warn("Redis at %s refuses writes: %s; they wait and are retried", s->addr, what);
  else
    m3s_error("Redis at %s refused a write for good: %s; its sender is told", s->addr, what);
}

static void refusal_end(store_t *s)
{
  if(!s->refusing[0])
    return;
  m3s_info("Redis at %s accepts writes again (refused with %s for %lld ms)", s->addr,
           s->refusing, (long long)(m3s_now_ms() - s->refusing_since_ms));
  s->refusing[0] = s->refusal[0] = '\0';
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

/* The master's address from the first sentinel that gives one. */
static bool ask_sentinels(store_t *s, char *host, size_t hlen, int *port)
{
  const m3s_config_t *cfg = s->base.cfg;
  char err[400];
  bool ok = m3s_sentinel_master(cfg->redis_sentinels, cfg->redis_master_name,
                                cfg->redis_sentinel_password, IO_TIMEOUT_MS, host, hlen, port,
                                err, sizeof(err));
  sigpipe_discard();
  if(!ok)
    m3s_warn("REDIS_SENTINELS: %s", err);
  return ok;
}

/* One connection attempt: the master's address (REDIS_SERVER, or asked of
 * REDIS_SENTINELS and checked with ROLE), connect, AUTH (only with a
 * password), SELECT, PING. Returns 0 (s->c set), -EACCES (password
 * refused), -EINVAL (DB index refused), or -EAGAIN (unreachable, not the
 * master or timed out: try again later). */
static int try_connect(store_t *s)
{
  const m3s_config_t *cfg = s->base.cfg;
  struct timeval tv = { IO_TIMEOUT_MS / 1000, (IO_TIMEOUT_MS % 1000) * 1000 };
  redisReply *r = NULL;
  int rc = 0;
  bool sentinels = cfg->redis_sentinels && cfg->redis_sentinels[0];
  const char *var = sentinels ? "REDIS_SENTINELS" : "REDIS_SERVER";
  char host[256];
  int port = cfg->redis_port;

  if(sentinels) {
    if(!ask_sentinels(s, host, sizeof(host), &port))
      return -EAGAIN; /* logged */
  }
  else {
    snprintf(host, sizeof(host), "%s", cfg->redis_host);
  }
  m3s_format_hostport(s->addr, sizeof(s->addr), host, port);
  redisContext *c = redisConnectWithTimeout(host, port, tv);
  if(!c) {
    m3s_warn("cannot connect to Redis at %s: out of memory", s->addr);
    return -EAGAIN;
  }
  if(c->err) {
    m3s_warn("cannot connect to Redis at %s (%s): %s", s->addr, var, c->errstr);
    rc = -EAGAIN;
    goto out;
  }
  if(redisSetTimeout(c, tv) != REDIS_OK || redisEnableKeepAlive(c) != REDIS_OK) {
    m3s_warn("cannot set up the connection to Redis at %s: %s", s->addr, c->errstr);
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
      m3s_error("Redis at %s (%s) refused the password in REDIS_PASSWORD: %s", s->addr, var,
                echoes ? "(reply withheld)" : r->str);
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
        m3s_error("Redis at %s (%s) requires a password but REDIS_PASSWORD is empty", s->addr,
                  var);
        rc = -EACCES;
      }
      else {
        m3s_error("Redis at %s refused database %d (REDIS_DB): %s", s->addr, cfg->redis_db,
                  r->str);
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
      m3s_error("Redis at %s (%s) requires a password but REDIS_PASSWORD is empty", s->addr,
                var);
      rc = -EACCES;
    }
    else {
      /* LOADING and the like: the server is there but not ready yet. */
      m3s_warn("Redis at %s is not ready: %s", s->addr, r->str);
      rc = -EAGAIN;
    }
    goto out;
  }
  freeReplyObject(r);
  r = NULL;
  if(sentinels) {
    char role[64];
    if(!m3s_redis_is_master(c, role, sizeof(role))) {
      /* The sentinels have not finished a failover yet. */
      m3s_warn("Redis at %s, named master %s by the sentinels, is a %s: asking again later",
               s->addr, cfg->redis_master_name, role);
      rc = -EAGAIN;
      goto out;
    }
  }
  s->c = c;
  c = NULL;
  s->backoff_ms = BACKOFF_MIN_MS;
  m3s_info("connected to Redis at %s%s, database %d", s->addr,
           sentinels ? " (master named by the sentinels)" : "", cfg->redis_db);
  goto out;

io_error:
  m3s_warn("lost the connection to Redis at %s during the handshake: %s", s->addr, c->errstr);
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
  m3s_warn("Redis connection to %s lost: %s; %zu item(s) kept for replay", s->addr, why,
           s->queue.n);
  if(s->c) {
    redisFree(s->c);
    s->c = NULL;
  }
  if(s->retry_timer) {
    m3s_timer_cancel(&s->base, s->retry_timer);
    s->retry_timer = 0;
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

/* ---- pushback ------------------------------------------------------------- */

static void tell_watchers(store_t *s)
{
  for(size_t i = 0; i < s->nwatchers; i++)
    m3s_send(s->watchers[i], m3s_msg_new(M3S_STORE_PRESSURE, s->backlogged, NULL, NULL));
}

/* After every change of the number of batches waiting: crossing a mark
 * flips the state, logs it once and tells the writers. */
static void pressure_check(store_t *s)
{
  if(!s->backlogged && s->batches >= M3S_STORE_HIGH_WATER) {
    s->backlogged = true;
    s->backlogged_since_ms = m3s_now_ms();
    s->backlogs++;
    m3s_warn("%zu writes wait for Redis at %s: backlogged, writers hold back new work "
             "until %d are left", s->batches, s->addr, M3S_STORE_LOW_WATER);
    tell_watchers(s);
  }
  else if(s->backlogged && s->batches <= M3S_STORE_LOW_WATER) {
    s->backlogged = false;
    m3s_info("%zu writes wait for Redis at %s: no longer backlogged after %lld ms, writers "
             "resume", s->batches, s->addr, (long long)(m3s_now_ms() - s->backlogged_since_ms));
    tell_watchers(s);
  }
}

static void on_watch(store_t *s, const m3s_store_watch_t *w)
{
  if(!w || !w->who)
    return;
  for(size_t i = 0; i < s->nwatchers; i++)
    if(s->watchers[i] == w->who)
      return;
  if(s->nwatchers == M3S_STORE_MAX_WATCHERS) {
    m3s_error("more than %d actors watch the store's backlog: %s is not told",
              M3S_STORE_MAX_WATCHERS, w->who->ops->name);
    return;
  }
  s->watchers[s->nwatchers++] = w->who;
  if(s->backlogged)
    m3s_send(w->who, m3s_msg_new(M3S_STORE_PRESSURE, 1, NULL, NULL));
}

/* Sends the outcome of the batch at the head of the queue to its sender
 * and retires it. err = NULL: stored; else refused for good (the payload
 * carries the reason). */
static void batch_done(store_t *s, const char *err)
{
  item_t it = queue_pop(&s->queue);
  s->batches--;
  if(!err && it.batch->then) {
    /* This batch's own reply said stored: its follow-up goes out first. */
    m3s_send(it.batch->then_to, it.batch->then);
    it.batch->then = NULL;
  }
  if(it.batch->notify) {
    m3s_msg_t *m = m3s_msg_new(M3S_STORE_WRITTEN, it.batch->tag,
                               err ? m3s_xstrdup(err) : NULL, NULL);
    if(err)
      m->flags = M3S_STORE_FAILED;
    m3s_send(it.batch->notify, m);
  }
  if(err)
    s->failed++;
  else
    s->written++;
  item_free(it);
  pressure_check(s);
}

/* Refused batches wait at the head of the queue: sent again after the
 * backoff, on this connection or a new one. */
static void retry_later(store_t *s, bool reconnect, const char *why)
{
  if(reconnect) {
    connection_lost(s, why);
    return;
  }
  if(s->retry_timer)
    return;
  int64_t delay = next_backoff(s);
  s->retry_timer = m3s_timer_start(&s->base, T_RETRY, delay, 0);
  m3s_debug("writing the refused batches again in %lld ms", (long long)delay);
}

/* Sends the run of batches at the head of the queue (up to FLUSH_CHUNK) in
 * one pipeline, followed by WAIT when REDIS_WAIT_REPLICAS asks for it, and
 * reports each one's outcome. Batches from the first transient refusal on
 * stay queued, whatever their own replies said, so that nothing is stored
 * out of order for good. Returns false when the queue must wait (refusal,
 * lost connection). */
static bool flush_batches(store_t *s)
{
  const m3s_config_t *cfg = s->base.cfg;
  size_t n = 0;
  while(n < s->queue.n && n < FLUSH_CHUNK && queue_at(&s->queue, n)->batch) {
    append_batch(s->c, queue_at(&s->queue, n)->batch);
    n++;
  }
  int replicas = cfg->redis_wait_replicas;
  if(replicas > 0)
    redisAppendCommand(s->c, "WAIT %d %lld", replicas, (long long)cfg->redis_wait_timeout_ms);
  char **failed = m3s_xcalloc(n ? n : 1, sizeof(*failed)); /* reason per batch refused for good */
  size_t first_transient = n;
  char transient_err[600] = "";
  bool ok = false;
  for(size_t i = 0; i < n; i++) {
    m3s_store_batch_t *b = queue_at(&s->queue, i)->batch;
    bool bad, transient;
    char err[512];
    if(read_batch(s, b, &bad, &transient, err, sizeof(err)) != IO_OK)
      goto out; /* everything stays queued */
    if(!bad)
      continue;
    s->errors++;
    const char *reply = strstr(err, ": ");
    char word[24];
    error_word(reply ? reply + 2 : err, word, sizeof(word));
    count_refusal(s, word);
    if(transient && first_transient == n) {
      first_transient = i;
      snprintf(transient_err, sizeof(transient_err), "%s", err);
      refusal_begin(s, word, err, true);
    }
    else if(!transient && i < first_transient) {
      failed[i] = m3s_xstrdup(err);
    }
  }
  if(replicas > 0) {
    redisReply *r;
    if(read_reply(s, &r) != IO_OK)
      goto out;
    long long have = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if(have < replicas) {
      char why[400];
      snprintf(why, sizeof(why), "WAIT %d: %s%lld replica(s) have the writes", replicas,
               r->type == REDIS_REPLY_ERROR ? r->str : "", have < 0 ? 0 : have);
      freeReplyObject(r);
      s->wait_short++;
      count_refusal(s, "WAIT");
      refusal_begin(s, "WAIT", why, true);
      retry_later(s, false, why);
      goto out;
    }
    freeReplyObject(r);
  }
  bool last_stored = false;
  for(size_t i = 0; i < first_transient; i++) {
    if(failed[i]) {
      m3s_store_batch_t *b = queue_at(&s->queue, 0)->batch;
      char word[24];
      const char *reply = strstr(failed[i], ": ");
      error_word(reply ? reply + 2 : failed[i], word, sizeof(word));
      refusal_begin(s, word, failed[i], false);
      m3s_error("Redis refused a write of %zu operation(s) (tag %lld) for good: %s", b->n,
                (long long)b->tag, failed[i]);
    }
    last_stored = !failed[i];
    batch_done(s, failed[i]);
  }
  if(last_stored && first_transient == n)
    refusal_end(s); /* a write that passes ends a lasting refusal */
  if(first_transient < n) {
    char why[700];
    snprintf(why, sizeof(why), "Redis refused a write (%s)", transient_err);
    const char *reply = strstr(transient_err, ": ");
    retry_later(s, needs_reconnect(reply ? reply + 2 : transient_err), why);
    goto out;
  }
  s->backoff_ms = BACKOFF_MIN_MS;
  ok = true;
out:
  for(size_t i = 0; i < n; i++)
    free(failed[i]);
  free(failed);
  return ok;
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

/* A read answered with an error or an unexpected reply (r, freed here):
 * the connection counts as lost, so nothing is set aside for it and the
 * load runs again after the reconnect (LOADING, a demoted master, an ACL). */
static void refused_read(store_t *s, const char *cmd, redisReply *r)
{
  char buf[300];
  if(r->type == REDIS_REPLY_ERROR)
    snprintf(buf, sizeof(buf), "%s %s (%s)",
             is_transient_error(r->str) ? "Redis is not ready" : "Redis refused", cmd, r->str);
  else
    snprintf(buf, sizeof(buf), "unexpected %s reply", cmd);
  freeReplyObject(r);
  connection_lost(s, buf);
}

/* Reads keys[0..n) with one MGET and adds the usable ones to result, a
 * chunk of its load. unchecked: the receiver checks the values
 * (m3s_store_load_t.unchecked); the keys and replies move into result.
 * One MGET costs hiredis far less than as many pipelined GETs (one command
 * to format, one reply to take off its buffer). MGET answers nil both for
 * a key deleted since the SCAN and for one that is not a string: a TYPE for
 * each nil, rare, tells them apart. */
static io_rc_t load_values(store_t *s, char **keys, size_t n, size_t plen, bool unchecked,
                           void *result)
{
  if(!n)
    return IO_OK;
  const char **argv = m3s_xmalloc((n + 1) * sizeof(*argv));
  size_t *argl = m3s_xmalloc((n + 1) * sizeof(*argl));
  argv[0] = "MGET";
  argl[0] = 4;
  for(size_t i = 0; i < n; i++) {
    argv[i + 1] = keys[i];
    argl[i + 1] = strlen(keys[i]);
  }
  redisAppendCommandArgv(s->c, (int)n + 1, argv, argl);
  free(argv);
  free(argl);
  redisReply **replies = m3s_xcalloc(n, sizeof(*replies));
  bool *gone = m3s_xcalloc(n, sizeof(*gone));
  io_rc_t rc = IO_OK;
  redisReply *all = NULL;
  if(read_reply(s, &all) != IO_OK) {
    rc = IO_LOST;
    goto out;
  }
  if(all->type != REDIS_REPLY_ARRAY || all->elements != n) {
    refused_read(s, "MGET", all);
    rc = IO_LOST;
    goto out;
  }
  for(size_t i = 0; i < n; i++) {
    replies[i] = all->element[i]; /* each element is a reply of its own */
    all->element[i] = NULL;
  }
  freeReplyObject(all);
  /* Read every TYPE before any RENAME so the pipeline stays in step. */
  size_t nils = 0;
  for(size_t i = 0; i < n; i++)
    if(replies[i]->type == REDIS_REPLY_NIL) {
      redisAppendCommand(s->c, "TYPE %b", keys[i], strlen(keys[i]));
      nils++;
    }
  for(size_t i = 0; i < n && nils; i++) {
    if(replies[i]->type != REDIS_REPLY_NIL)
      continue;
    redisReply *t = NULL;
    if(read_reply(s, &t) != IO_OK) {
      rc = IO_LOST;
      goto out;
    }
    if(t->type != REDIS_REPLY_STATUS) {
      refused_read(s, "TYPE", t);
      rc = IO_LOST;
      goto out;
    }
    gone[i] = !strcmp(t->str, "none");
    freeReplyObject(t);
    nils--;
  }
  for(size_t i = 0; i < n; i++) {
    redisReply *r = replies[i];
    const char *why = NULL;
    if(gone[i])
      continue; /* deleted since the SCAN */
    if(r->type != REDIS_REPLY_STRING)
      why = "not a string";
    else if(unchecked && !memchr(r->str, 0, r->len)) {
      /* No NUL, so the receiver can set it aside as a C string. */
      records_add(result, &keys[i], r);
      replies[i] = NULL;
      continue;
    }
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
  free(gone);
  return rc;
}

static void send_chunk(m3s_store_load_t *l, void *chunk, bool more)
{
  m3s_msg_t *m = m3s_msg_new(M3S_STORE_LOADED, l->tag, chunk,
                             l->unchecked ? m3s_store_records_free : m3s_json_drop);
  m->flags = more ? M3S_STORE_MORE : 0;
  m3s_send(l->notify, m);
}

/* Runs the load at the head of the queue: SCANs the keys once, then reads
 * them a chunk (one MGET) at a time; after each chunk but the last it waits for the
 * receiver's M3S_STORE_NEXT (load->waiting), so a large load never piles up
 * in the receiver's mailbox, but reads the next chunk meanwhile
 * (load->ready), so reading and the receiver's parsing overlap. Returns
 * false when it stops: waiting, or the connection was lost (then the load
 * runs again from the start after the reconnect). */
static bool run_load(store_t *s)
{
  m3s_store_load_t *l = queue_at(&s->queue, 0)->load;
  const bool unchecked = l->unchecked; /* l is gone once the load is done */
  const char *fw = s->base.cfg->fw;
  size_t plen = strlen(fw) + 1;
  char *pattern = NULL, *corrupt = NULL, *cursor = NULL;
  void *result = NULL;
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

  /* SCAN may return a key twice; a json chunk keeps one, and the receiver
   * sees a repeated key as the same record. */
  if(l->ready) {
    result = l->ready;
    l->ready = NULL;
    if(l->pos == l->nkeys)
      goto done; /* it was the last one */
    send_chunk(l, result, true);
    l->waiting = true;
  }
  result = chunk_new(l);
  while(l->pos < l->nkeys) {
    size_t n = l->nkeys - l->pos < GET_CHUNK ? l->nkeys - l->pos : GET_CHUNK;
    if(load_values(s, l->keys + l->pos, n, plen, l->unchecked, result) != IO_OK)
      goto lost;
    l->pos += n;
    if(l->pos < l->nkeys && chunk_size(l, result) && l->notify) {
      if(l->waiting) {
        l->ready = result; /* held until the receiver asks */
        result = NULL;
        goto out;
      }
      send_chunk(l, result, true);
      l->waiting = true;
      result = chunk_new(l);
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
  if(result)
    chunk_free(unchecked, result);
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
  while(s->c && s->queue.n && !s->retry_timer) {
    bool ok = queue_at(&s->queue, 0)->batch ? flush_batches(s) : run_load(s);
    if(!ok)
      return;
  }
}

/* ---- actor hooks ---------------------------------------------------------- */

static void store_wait(m3s_actor_t *self, int wake_fd, int timeout_ms)
{
  store_t *s = (store_t *)self;
  if(s->c && s->queue.n && !head_waiting(s) && !s->retry_timer) {
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
  /* Never dropped: a batch waits for Redis however long the queue is. Past
   * the high mark the writers are told to hold back (pressure_check), so
   * the queue grows beyond it only by work already under way. */
  queue_push(&s->queue, (item_t){ .batch = b });
  s->batches++;
  pressure_check(s);
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

/* With sentinels: true (and the connection dropped) when they name another
 * master than the one connected, so a failover is followed at once. */
static bool master_moved(store_t *s)
{
  const m3s_config_t *cfg = s->base.cfg;
  char host[256], addr[ADDR_LEN], why[ADDR_LEN + 64];
  int port;
  if(!s->c || !cfg->redis_sentinels || !cfg->redis_sentinels[0] ||
     !ask_sentinels(s, host, sizeof(host), &port))
    return false;
  m3s_format_hostport(addr, sizeof(addr), host, port);
  if(!strcmp(addr, s->addr))
    return false;
  snprintf(why, sizeof(why), "the sentinels name %s as the master now", addr);
  connection_lost(s, why);
  return true;
}

static void on_ping(store_t *s)
{
  redisReply *r = NULL;
  if(!s->c || s->queue.n)
    return; /* a busy connection proves itself; a lost one reconnects */
  if(s->base.cfg->redis_sentinels && s->base.cfg->redis_sentinels[0]) {
    /* A failover demotes the master without closing the connection. */
    char role[64];
    if(master_moved(s))
      return;
    if(!m3s_redis_is_master(s->c, role, sizeof(role))) {
      char why[200];
      snprintf(why, sizeof(why), "the server is now a %s", role);
      connection_lost(s, why);
    }
    return;
  }
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
  json_t *by = json_object();
  for(size_t i = 0; i < s->nby_error; i++)
    json_object_set_new(by, s->by_error[i].word, json_integer((json_int_t)s->by_error[i].n));
  json_t *j = json_pack(
    "{s:b, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:b}", "connected",
    s->c != NULL, "server", s->addr, "queued", (json_int_t)s->queue.n, "errors",
    (json_int_t)s->errors, "reconnects", (json_int_t)s->reconnects, "queued_batches",
    (json_int_t)s->batches, "written", (json_int_t)s->written, "refused", (json_int_t)s->refused,
    "failed", (json_int_t)s->failed, "wait_short", (json_int_t)s->wait_short, "corrupt",
    (json_int_t)s->corrupt, "loads", (json_int_t)s->loads, "refused_by_error", by, "backlogged",
    s->backlogged);
  if(j && s->backlogged)
    json_object_set_new(j, "backlogged_ms",
                        json_integer((json_int_t)(m3s_now_ms() - s->backlogged_since_ms)));
  if(j)
    json_object_set_new(j, "backlogs", json_integer((json_int_t)s->backlogs));
  if(j && s->refusing[0]) {
    json_object_set_new(j, "refusing", json_string(s->refusing));
    json_object_set_new(j, "refusal", json_string(s->refusal));
    json_object_set_new(j, "refusing_ms",
                        json_integer((json_int_t)(m3s_now_ms() - s->refusing_since_ms)));
  }
  return j;
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
  case M3S_STORE_WATCH:
    on_watch(s, msg->payload);
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
  case T_RETRY:
    s->retry_timer = 0; /* the wait hook sends the queue again */
    (void)master_moved(s);
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
             s->addr[0] ? s->addr : self->cfg->redis_sentinels);
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
