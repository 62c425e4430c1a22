/* The store actor (src/actors/store.c) against a real redis-server.
 *
 * Each test starts its own redis-server on a free loopback port with a
 * throwaway directory (never the system's 6379), talks to the store through
 * the actor system like the daemon does, receives M3S_STORE_WRITTEN and
 * M3S_STORE_LOADED in a small probe actor, and checks Redis's content with
 * its own hiredis connection. Every server is stopped by the PID this file
 * started. Waits are for conditions with generous deadlines.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/config.h"
#include "m3s/log.h"
#include "m3s/store.h"
#include "check_main.h"
#include "redis_fixture.h"

#define LONG_WAIT_MS 20000
#define FW "m3stest"

/* ---- time ---------------------------------------------------------------- */

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The test's own connection, authenticated and on the right DB. */
static redisContext *admin(const redis_fixture_t *r, int db)
{
  redisContext *c = fixture_connect(r);
  ck_assert_ptr_nonnull(c);
  redisReply *rep;
  if(r->password[0]) {
    rep = redisCommand(c, "AUTH %s", r->password);
    ck_assert_int_eq(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
  }
  rep = redisCommand(c, "SELECT %d", db);
  ck_assert_int_eq(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  return c;
}

/* GET key with the admin connection; NULL when missing (caller frees). */
static char *admin_get(redisContext *c, const char *key)
{
  redisReply *rep = redisCommand(c, "GET %s", key);
  ck_assert_ptr_nonnull(rep);
  char *v = rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;
  freeReplyObject(rep);
  return v;
}

/* Redis holds value under key (admin connection). */
static void admin_expect(redisContext *c, const char *key, const char *value)
{
  char *v = admin_get(c, key);
  ck_assert_msg(v != NULL, "%s is missing", key);
  ck_assert_str_eq(v, value);
  free(v);
}

static void admin_cmd(redisContext *c, const char *fmt, const char *a, const char *b)
{
  redisReply *rep = redisCommand(c, fmt, a, b);
  ck_assert_ptr_nonnull(rep);
  ck_assert_msg(rep->type != REDIS_REPLY_ERROR, "%s", rep->str);
  freeReplyObject(rep);
}

/* ---- the probe actor: records what the store sends ----------------------- */

#define MAX_WRITTEN 8192
#define MAX_LOADS 8

typedef struct record {
  _Atomic size_t nwritten;        /* release by the probe, acquire by the test */
  int64_t written[MAX_WRITTEN];
  _Atomic size_t nfailed;         /* writes refused for good, same rules */
  int64_t failed[MAX_WRITTEN];
  _Atomic(json_t *) loaded[MAX_LOADS];
  _Atomic int chunks[MAX_LOADS];  /* messages per load, the last included */
  _Atomic int unexpected;
  _Atomic int bad_records;        /* unchecked loads: see the probe */
  _Atomic size_t nthen;           /* PROBE_THEN messages (batches' follow-ups) */
  int64_t then[MAX_WRITTEN];      /* their args */
  size_t then_before[MAX_WRITTEN]; /* follow-ups seen before WRITTEN i */
} record_t;

#define PROBE_THEN (M3S_MSG_USER + 900)

typedef struct probe {
  m3s_actor_t base;
  record_t *rec;
  json_t *partial[MAX_LOADS];     /* probe thread only: chunks so far */
} probe_t;

static void probe_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  record_t *rec = ((probe_t *)self)->rec;
  switch(m->type) {
  case M3S_STORE_WRITTEN: {
    size_t n = atomic_load_explicit(&rec->nwritten, memory_order_relaxed);
    size_t f = atomic_load_explicit(&rec->nfailed, memory_order_relaxed);
    if((m->flags & M3S_STORE_FAILED) && f < MAX_WRITTEN && m->payload) {
      rec->failed[f] = m->arg;
      atomic_store_explicit(&rec->nfailed, f + 1, memory_order_release);
    }
    else if(n < MAX_WRITTEN && !m->payload && !m->flags) {
      rec->written[n] = m->arg;
      rec->then_before[n] = atomic_load_explicit(&rec->nthen, memory_order_relaxed);
      atomic_store_explicit(&rec->nwritten, n + 1, memory_order_release);
    }
    else {
      atomic_fetch_add(&rec->unexpected, 1);
    }
    break;
  }
  case M3S_STORE_LOADED:
    if(m->arg >= 0 && m->arg < MAX_LOADS && m->payload &&
       (m->drop == m3s_store_records_free || json_is_object((json_t *)m->payload))) {
      /* Taken: the runtime's drop hook no longer owns it. Chunks are
       * merged; the last one publishes the whole load. An unchecked
       * load's records become an object of their values too (a key
       * twice in one chunk, or a length that is not the string's,
       * counts in bad_records). */
      probe_t *p = (probe_t *)self;
      json_t *j;
      if(m->drop == m3s_store_records_free) {
        const m3s_store_records_t *r = m->payload;
        j = json_object();
        for(size_t i = 0; i < r->n; i++) {
          if(strlen(r->val[i]) != r->len[i] || json_object_get(j, r->key[i]))
            atomic_fetch_add(&rec->bad_records, 1);
          json_object_set_new(j, r->key[i], json_stringn_nocheck(r->val[i], r->len[i]));
        }
      }
      else {
        j = m3s_msg_take(m);
      }
      atomic_fetch_add(&rec->chunks[m->arg], 1);
      if(p->partial[m->arg]) {
        json_object_update(p->partial[m->arg], j);
        json_decref(j);
        j = p->partial[m->arg];
        p->partial[m->arg] = NULL;
      }
      if(m->flags & M3S_STORE_MORE) {
        p->partial[m->arg] = j;
        m3s_send(m3s_system_find(self->sys, "store"),
                 m3s_msg_new(M3S_STORE_NEXT, m->arg, NULL, NULL));
      }
      else
        atomic_store_explicit(&rec->loaded[m->arg], j, memory_order_release);
    }
    else {
      atomic_fetch_add(&rec->unexpected, 1);
    }
    break;
  case PROBE_THEN: {
    size_t n = atomic_load_explicit(&rec->nthen, memory_order_relaxed);
    if(n < MAX_WRITTEN) {
      rec->then[n] = m->arg;
      atomic_store_explicit(&rec->nthen, n + 1, memory_order_release);
    }
    break;
  }
  default:
    atomic_fetch_add(&rec->unexpected, 1);
    break;
  }
}

static void probe_stop(m3s_actor_t *self)
{
  probe_t *p = (probe_t *)self;
  for(int i = 0; i < MAX_LOADS; i++)
    json_decref(p->partial[i]);
}

static const m3s_actor_ops_t probe_ops = {
  .name = "probe",
  .size = sizeof(probe_t),
  .handle = probe_handle,
  .stop = probe_stop,
};

/* ---- harness ------------------------------------------------------------- */

typedef struct harness {
  m3s_config_t cfg;
  m3s_system_t *sys;
  m3s_actor_t *store, *probe, *extra;
  record_t *rec;
  int start_rc;
} harness_t;

/* Loads a config for the fixture and starts probe + store (+ extra, an
 * actor of the test that uses the store, when not NULL; h->extra). */
static void harness_start_with(harness_t *h, const redis_fixture_t *r, const char *password,
                               const char *db, const m3s_actor_ops_t *extra);

static void harness_start(harness_t *h, const redis_fixture_t *r, const char *password,
                          const char *db)
{
  harness_start_with(h, r, password, db, NULL);
}

static void harness_start_with(harness_t *h, const redis_fixture_t *r, const char *password,
                               const char *db, const m3s_actor_ops_t *extra)
{
  char server[64];
  snprintf(server, sizeof(server), "127.0.0.1:%d", r->port);
  const char *kv[] = { "FRAMEWORK_HOSTNAME", "localhost", "FRAMEWORK_NAME", "test",
                       "REDIS_SERVER", server, "REDIS_DB", db,
                       "REDIS_PASSWORD", password ? password : r->password, NULL, NULL };
  char err[512];
  memset(h, 0, sizeof(*h));
  ck_assert_msg(m3s_config_load(&h->cfg, m3s_check_getenv, (void *)kv, err, sizeof(err)) == 0, "%s",
                err);
  ck_assert_str_eq(h->cfg.fw, FW);
  h->rec = calloc(1, sizeof(*h->rec));
  h->sys = m3s_system_new(&h->cfg);
  h->probe = m3s_system_add(h->sys, &probe_ops);
  ((probe_t *)h->probe)->rec = h->rec;
  h->store = m3s_system_add(h->sys, &m3s_store_ops);
  ck_assert_ptr_nonnull(h->store);
  if(extra)
    h->extra = m3s_system_add(h->sys, extra);
  h->start_rc = m3s_system_start(h->sys);
}

static void harness_free(harness_t *h)
{
  if(h->start_rc == 0)
    m3s_system_stop(h->sys);
  m3s_system_free(h->sys);
  for(int i = 0; i < MAX_LOADS; i++)
    json_decref(atomic_load(&h->rec->loaded[i]));
  ck_assert_int_eq(atomic_load(&h->rec->unexpected), 0);
  free(h->rec);
  m3s_config_free(&h->cfg);
}

static void send_batch(harness_t *h, m3s_store_batch_t *b)
{
  m3s_send(h->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
}

static void set1(harness_t *h, int64_t tag, const char *key, const char *value)
{
  m3s_store_batch_t *b = m3s_store_batch_new(h->probe, tag);
  m3s_store_batch_set(b, key, value);
  send_batch(h, b);
}

static void send_load(harness_t *h, const char *match, int64_t tag)
{
  m3s_send(h->store, m3s_msg_new(M3S_STORE_LOAD, 0, m3s_store_load_new(match, h->probe, tag),
                                 m3s_store_load_free));
}

static void send_load_unchecked(harness_t *h, const char *match, int64_t tag)
{
  m3s_store_load_t *l = m3s_store_load_new(match, h->probe, tag);
  l->unchecked = true;
  m3s_send(h->store, m3s_msg_new(M3S_STORE_LOAD, 0, l, m3s_store_load_free));
}

static size_t nwritten(harness_t *h)
{
  return atomic_load_explicit(&h->rec->nwritten, memory_order_acquire);
}

static void wait_written(harness_t *h, size_t n)
{
  int64_t deadline = now_ms() + LONG_WAIT_MS;
  while(nwritten(h) < n) {
    ck_assert_msg(now_ms() < deadline, "only %zu of %zu writes confirmed", nwritten(h), n);
    m3s_check_sleep_ms(2);
  }
}

/* Waits for LOADED with this tag; the harness keeps ownership. */
static json_t *wait_loaded(harness_t *h, int tag)
{
  int64_t deadline = now_ms() + LONG_WAIT_MS;
  json_t *j;
  while(!(j = atomic_load_explicit(&h->rec->loaded[tag], memory_order_acquire))) {
    ck_assert_msg(now_ms() < deadline, "load %d not answered", tag);
    m3s_check_sleep_ms(2);
  }
  return j;
}

static json_t *status(harness_t *h)
{
  m3s_msg_t *ans = NULL;
  int rc;
  int64_t deadline = now_ms() + LONG_WAIT_MS;
  /* -EAGAIN: the mailbox is over its soft limit (a burst of writes). */
  while((rc = m3s_call(h->store, m3s_msg_new(M3S_STORE_STATUS, 0, NULL, NULL), 5000, &ans)) ==
          -EAGAIN && now_ms() < deadline)
    m3s_check_sleep_ms(10);
  ck_assert_int_eq(rc, 0);
  json_t *j = json_incref(ans->payload);
  m3s_msg_free(ans);
  return j;
}

static json_int_t status_int(harness_t *h, const char *field)
{
  json_t *j = status(h);
  json_int_t v = json_integer_value(json_object_get(j, field));
  json_decref(j);
  return v;
}

static void assert_value(json_t *obj, const char *key, const char *value)
{
  const char *v = json_string_value(json_object_get(obj, key));
  ck_assert_msg(v != NULL, "%s missing from the load", key);
  ck_assert_str_eq(v, value);
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(round_trip)
{
  redis_fixture_t r;
  harness_t h;
  fixture_init(&r, NULL, false);
  fixture_start(&r);
  harness_start(&h, &r, NULL, "3");
  ck_assert_int_eq(h.start_rc, 0);

  set1(&h, 1, FW ":framework", "{\"id\":\"fw-1\"}");
  m3s_store_batch_t *b = m3s_store_batch_new(h.probe, 2);
  m3s_store_batch_set(b, FW ":agent:a1", "{\"TaskID\":\"a1\"}");
  m3s_store_batch_set(b, FW ":server:s1", "{\"TaskID\":\"s1\"}");
  m3s_store_batch_set(b, FW ":agent:gone", "{}");
  m3s_store_batch_del(b, FW ":agent:gone");
  send_batch(&h, b);
  set1(&h, 3, FW ":kubernetes_config", "apiVersion: v1\nclusters: []\n");
  b = m3s_store_batch_new(h.probe, 4);
  m3s_store_batch_del(b, FW ":server:s1");
  send_batch(&h, b);
  b = m3s_store_batch_new(NULL, 5); /* nobody to notify */
  m3s_store_batch_set(b, FW ":datastore:d1", "{\"TaskID\":\"d1\"}");
  send_batch(&h, b);
  set1(&h, 6, "other:key", "not ours");
  send_load(&h, "*", 0);
  send_load(&h, "agent:*", 1);

  json_t *all = wait_loaded(&h, 0);
  wait_written(&h, 5);
  for(int64_t i = 0; i < 5; i++)
    ck_assert_int_eq(h.rec->written[i], i < 4 ? i + 1 : 6);
  ck_assert_int_eq(json_object_size(all), 4);
  assert_value(all, FW ":framework", "{\"id\":\"fw-1\"}");
  assert_value(all, FW ":agent:a1", "{\"TaskID\":\"a1\"}");
  assert_value(all, FW ":kubernetes_config", "apiVersion: v1\nclusters: []\n");
  assert_value(all, FW ":datastore:d1", "{\"TaskID\":\"d1\"}");
  json_t *agents = wait_loaded(&h, 1);
  ck_assert_int_eq(json_object_size(agents), 1);
  assert_value(agents, FW ":agent:a1", "{\"TaskID\":\"a1\"}");

  /* What Redis itself holds, in DB 3 and not in DB 0. */
  redisContext *c = admin(&r, 3);
  char *v = admin_get(c, FW ":agent:a1");
  ck_assert_str_eq(v, "{\"TaskID\":\"a1\"}");
  free(v);
  ck_assert_ptr_null(admin_get(c, FW ":server:s1"));
  ck_assert_ptr_null(admin_get(c, FW ":agent:gone"));
  v = admin_get(c, "other:key");
  ck_assert_str_eq(v, "not ours");
  free(v);
  redisFree(c);
  c = admin(&r, 0);
  ck_assert_ptr_null(admin_get(c, FW ":agent:a1"));
  redisFree(c);

  json_t *st = status(&h);
  ck_assert(json_is_true(json_object_get(st, "connected")));
  ck_assert_int_eq(json_integer_value(json_object_get(st, "queued")), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "errors")), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "reconnects")), 0);
  json_decref(st);

  harness_free(&h);
  fixture_free(&r);
}
END_TEST

START_TEST(ordering)
{
  enum { N = 3000 };
  redis_fixture_t r;
  harness_t h;
  char val[32];
  fixture_init(&r, NULL, false);
  fixture_start(&r);
  harness_start(&h, &r, NULL, "1");
  ck_assert_int_eq(h.start_rc, 0);

  for(int i = 0; i < N; i++) {
    snprintf(val, sizeof(val), "{\"v\":%d}", i);
    if(i % 3 == 0) {
      m3s_store_batch_t *b = m3s_store_batch_new(h.probe, i);
      m3s_store_batch_del(b, FW ":agent:same");
      m3s_store_batch_set(b, FW ":agent:same", val);
      send_batch(&h, b);
    }
    else {
      set1(&h, i, FW ":agent:same", val);
    }
  }
  wait_written(&h, N);
  for(int i = 0; i < N; i++)
    ck_assert_int_eq(h.rec->written[i], i);
  redisContext *c = admin(&r, 1);
  char *v = admin_get(c, FW ":agent:same");
  snprintf(val, sizeof(val), "{\"v\":%d}", N - 1);
  ck_assert_str_eq(v, val);
  free(v);
  redisFree(c);

  harness_free(&h);
  fixture_free(&r);
}
END_TEST

START_TEST(outage)
{
  enum { BEFORE = 20, DURING = 50 };
  redis_fixture_t r;
  harness_t h;
  char key[64], val[64];
  fixture_init(&r, NULL, true);
  fixture_start(&r);
  harness_start(&h, &r, NULL, "1");
  ck_assert_int_eq(h.start_rc, 0);

  for(int i = 0; i < BEFORE; i++) {
    snprintf(key, sizeof(key), FW ":agent:t%d", i % 7);
    snprintf(val, sizeof(val), "{\"n\":%d}", i);
    set1(&h, i, key, val);
  }
  wait_written(&h, BEFORE);

  fixture_stop(&r);
  for(int i = BEFORE; i < BEFORE + DURING; i++) {
    snprintf(key, sizeof(key), FW ":agent:t%d", i % 7);
    snprintf(val, sizeof(val), "{\"n\":%d}", i);
    if(i % 10 == 0) {
      m3s_store_batch_t *b = m3s_store_batch_new(h.probe, i);
      m3s_store_batch_del(b, key);
      m3s_store_batch_set(b, FW ":framework", val);
      send_batch(&h, b);
    }
    else {
      set1(&h, i, key, val);
    }
  }
  send_load(&h, "*", 0);
  m3s_check_sleep_ms(400);
  ck_assert_int_eq(nwritten(&h), BEFORE);
  ck_assert_ptr_null(atomic_load(&h.rec->loaded[0]));
  json_t *st = status(&h);
  ck_assert(json_is_false(json_object_get(st, "connected")));
  ck_assert_int_eq(json_integer_value(json_object_get(st, "queued")), DURING + 1);
  ck_assert_int_ge(json_integer_value(json_object_get(st, "reconnects")), 1);
  json_decref(st);

  fixture_start(&r); /* same port, same dir: the AOF brings the data back */
  json_t *all = wait_loaded(&h, 0);
  wait_written(&h, BEFORE + DURING);
  for(int i = 0; i < BEFORE + DURING; i++)
    ck_assert_int_eq(h.rec->written[i], i);

  /* The expected content: the same operations applied without an outage. */
  json_t *model = json_object();
  for(int i = 0; i < BEFORE + DURING; i++) {
    snprintf(key, sizeof(key), FW ":agent:t%d", i % 7);
    snprintf(val, sizeof(val), "{\"n\":%d}", i);
    if(i >= BEFORE && i % 10 == 0) {
      json_object_del(model, key);
      json_object_set_new(model, FW ":framework", json_string(val));
    }
    else {
      json_object_set_new(model, key, json_string(val));
    }
  }
  ck_assert_msg(json_equal(model, all), "the load after the outage differs from the model");
  redisContext *c = admin(&r, 1);
  const char *k;
  json_t *mv;
  json_object_foreach(model, k, mv) {
    char *v = admin_get(c, k);
    ck_assert_str_eq(v, json_string_value(mv));
    free(v);
  }
  redisFree(c);
  json_decref(model);

  harness_free(&h);
  fixture_free(&r);
}
END_TEST

START_TEST(corrupt_set_aside)
{
  redis_fixture_t r;
  harness_t h;
  fixture_init(&r, NULL, false);
  fixture_start(&r);
  redisContext *c = admin(&r, 1);
  const char *yaml = "apiVersion: v1\nkind: Config\n{not json\n";
  admin_cmd(c, "SET %s %s", FW ":agent:x", "{broken");
  admin_cmd(c, "SET %s %s", FW ":agent:ok", "{\"TaskID\":\"ok\"}");
  admin_cmd(c, "SET %s %s", FW ":framework_config", "[1,2");
  admin_cmd(c, "SET %s %s", FW ":kubernetes_config", yaml);
  admin_cmd(c, "SET %s %s", FW ":kubernetes:node1", "{\"kind\":\"Node\"}");
  admin_cmd(c, "RPUSH %s %s", FW ":server:list", "{}");
  admin_cmd(c, "SET %s %s", FW ":corrupt:agent:old:1", "{old");

  harness_start(&h, &r, NULL, "1");
  ck_assert_int_eq(h.start_rc, 0);
  int64_t before = time(NULL);
  send_load(&h, "*", 0);
  json_t *all = wait_loaded(&h, 0);
  int64_t after = time(NULL);
  ck_assert_int_eq(json_object_size(all), 3);
  assert_value(all, FW ":agent:ok", "{\"TaskID\":\"ok\"}");
  assert_value(all, FW ":kubernetes_config", yaml);
  assert_value(all, FW ":kubernetes:node1", "{\"kind\":\"Node\"}");

  /* The bad records moved to <fw>:corrupt:<key>:<time>, values intact. */
  ck_assert_ptr_null(admin_get(c, FW ":agent:x"));
  bool found = false;
  for(int64_t t = before; t <= after; t++) {
    char key[128];
    snprintf(key, sizeof(key), FW ":corrupt:agent:x:%lld", (long long)t);
    char *v = admin_get(c, key);
    if(v) {
      ck_assert_str_eq(v, "{broken");
      free(v);
      found = true;
    }
  }
  ck_assert_msg(found, "no " FW ":corrupt:agent:x:<time> key");
  redisReply *rep = redisCommand(c, "KEYS %s", FW ":corrupt:*");
  ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
  ck_assert_int_eq(rep->elements, 4); /* agent:x, framework_config, server:list, the old one */
  freeReplyObject(rep);
  rep = redisCommand(c, "EXISTS %s", FW ":server:list");
  ck_assert_int_eq(rep->integer, 0);
  freeReplyObject(rep);
  ck_assert_int_eq(status_int(&h, "corrupt"), 3);

  /* A second load finds only the good ones, and moves nothing more. */
  send_load(&h, "*", 1);
  ck_assert_int_eq(json_object_size(wait_loaded(&h, 1)), 3);
  ck_assert_int_eq(status_int(&h, "corrupt"), 3);

  redisFree(c);
  harness_free(&h);
  fixture_free(&r);
}
END_TEST

/* ---- start failures ---- */

static redis_fixture_t *cap_fixture;
static harness_t *cap_harness;
static const char *cap_password;
static const char *cap_db;

static void start_captured(void)
{
  harness_start(cap_harness, cap_fixture, cap_password, cap_db);
}

/* Runs harness_start with stderr redirected; returns what it wrote. */
static char *capture_start(harness_t *h, redis_fixture_t *r, const char *password, const char *db)
{
  char path[] = "/tmp/m3s-check-store-log-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ne(fd, -1);
  unlink(path);
  cap_fixture = r;
  cap_harness = h;
  cap_password = password;
  cap_db = db;
  int saved = dup(2);
  dup2(fd, 2);
  start_captured();
  dup2(saved, 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *buf = calloc(1, (size_t)len + 1);
  ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
  close(fd);
  return buf;
}

START_TEST(start_failures)
{
  redis_fixture_t r;
  harness_t h;
  fixture_init(&r, "right-horse-battery", false);
  fixture_start(&r);

  char *log = capture_start(&h, &r, "wrong-staple-XYZ", "1");
  ck_assert_int_eq(h.start_rc, -EACCES);
  ck_assert_ptr_nonnull(strstr(log, "REDIS_SERVER"));
  ck_assert_ptr_nonnull(strstr(log, "password"));
  ck_assert_ptr_null(strstr(log, "wrong-staple-XYZ"));
  ck_assert_ptr_null(strstr(log, "right-horse-battery"));
  free(log);
  harness_free(&h);

  /* No password at all against a server that needs one. */
  log = capture_start(&h, &r, "", "1");
  ck_assert_int_eq(h.start_rc, -EACCES);
  ck_assert_ptr_nonnull(strstr(log, "REDIS_PASSWORD"));
  free(log);
  harness_free(&h);

  log = capture_start(&h, &r, NULL, "9999");
  ck_assert_int_eq(h.start_rc, -EINVAL);
  ck_assert_ptr_nonnull(strstr(log, "REDIS_DB"));
  ck_assert_ptr_null(strstr(log, "right-horse-battery"));
  free(log);
  harness_free(&h);

  /* The right password works, and the store writes with it. */
  harness_start(&h, &r, NULL, "2");
  ck_assert_int_eq(h.start_rc, 0);
  set1(&h, 7, FW ":framework", "{}");
  wait_written(&h, 1);
  ck_assert_int_eq(h.rec->written[0], 7);
  harness_free(&h);

  fixture_free(&r);
}
END_TEST

START_TEST(unreachable_at_start)
{
  redis_fixture_t r;
  harness_t h;
  fixture_init(&r, NULL, false);
  harness_start(&h, &r, NULL, "1"); /* nothing listens on r.port yet */
  ck_assert_int_eq(h.start_rc, 0);
  set1(&h, 1, FW ":agent:early", "{\"e\":1}");
  send_load(&h, "*", 0);
  m3s_check_sleep_ms(300);
  ck_assert_int_eq(nwritten(&h), 0);
  ck_assert_ptr_null(atomic_load(&h.rec->loaded[0]));
  json_t *st = status(&h);
  ck_assert(json_is_false(json_object_get(st, "connected")));
  ck_assert_int_eq(json_integer_value(json_object_get(st, "queued")), 2);
  json_decref(st);

  fixture_start(&r);
  json_t *all = wait_loaded(&h, 0);
  ck_assert_int_eq(nwritten(&h), 1); /* confirmed before the load ran */
  ck_assert_int_eq(json_object_size(all), 1);
  assert_value(all, FW ":agent:early", "{\"e\":1}");
  st = status(&h);
  ck_assert(json_is_true(json_object_get(st, "connected")));
  json_decref(st);

  harness_free(&h);
  fixture_free(&r);
}
END_TEST

/* A long queue is never cut: every batch waits for Redis, and the backlog
 * shows in the status (nobody watches here, so nobody holds back). */
START_TEST(queue_never_drops)
{
  enum { N = 2 * M3S_STORE_HIGH_WATER + 5 };
  redis_fixture_t r;
  harness_t h;
  fixture_init(&r, NULL, false);
  harness_start(&h, &r, NULL, "1"); /* Redis down: everything queues */
  ck_assert_int_eq(h.start_rc, 0);
  for(int i = 0; i < N; i++) {
    m3s_store_batch_t *b = m3s_store_batch_new(NULL, i);
    m3s_store_batch_set(b, FW ":agent:q", "{}");
    send_batch(&h, b);
    if(i % 5000 == 0)
      (void)status_int(&h, "queued"); /* keeps the mailbox under its soft limit */
  }
  json_t *st = status(&h);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "queued")), N);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "refused")), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "errors")), 0);
  ck_assert(json_is_true(json_object_get(st, "backlogged")));
  json_decref(st);
  harness_free(&h);
  fixture_free(&r);
}
END_TEST

/* ---- pushback: a writer that honours M3S_STORE_PRESSURE ------------------ */

#define PUSH_TOTAL 60000   /* batches the writer sends in all */
#define PUSH_BURST 50      /* per tick of PUSH_TICK_MS: 5000 a second */
#define PUSH_TICK_MS 10

typedef struct wstats {
  _Atomic long sent, written, failed;
  _Atomic long held_events, resumed_events;
  _Atomic long sent_while_held;  /* must stay 0 */
  _Atomic bool held;
  _Atomic int unexpected;
} wstats_t;

static wstats_t *writer_stats; /* set before the system starts */

typedef struct writer {
  m3s_actor_t base;
  m3s_actor_t *store;
  bool held;
  long next;
} writer_t;

enum { T_WRITER_TICK = M3S_MSG_USER };

static int writer_start(m3s_actor_t *self)
{
  writer_t *w = (writer_t *)self;
  w->store = m3s_system_find(self->sys, "store");
  m3s_store_watch(w->store, self);
  m3s_timer_start(self, T_WRITER_TICK, PUSH_TICK_MS, PUSH_TICK_MS);
  return 0;
}

/* Like a role actor: new work (a burst of new records) only while the store
 * is not backlogged. The timer is the work's own clock, not the store's. */
static void writer_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  writer_t *w = (writer_t *)self;
  wstats_t *st = writer_stats;
  switch(m->type) {
  case T_WRITER_TICK:
    for(int i = 0; i < PUSH_BURST && !w->held && w->next < PUSH_TOTAL; i++) {
      char key[64], value[64];
      snprintf(key, sizeof(key), FW ":agent:p%ld", w->next);
      snprintf(value, sizeof(value), "{\"n\":%ld}", w->next);
      m3s_store_batch_t *b = m3s_store_batch_new(self, w->next);
      m3s_store_batch_set(b, key, value);
      m3s_send(w->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
      w->next++;
      if(w->held)
        atomic_fetch_add(&st->sent_while_held, 1);
    }
    atomic_store(&st->sent, w->next);
    break;
  case M3S_STORE_PRESSURE:
    if((m->arg != 0) == w->held) {
      atomic_fetch_add(&st->unexpected, 1); /* told twice the same */
      break;
    }
    w->held = m->arg != 0;
    atomic_fetch_add(w->held ? &st->held_events : &st->resumed_events, 1);
    atomic_store(&st->held, w->held);
    break;
  case M3S_STORE_WRITTEN:
    atomic_fetch_add((m->flags & M3S_STORE_FAILED) ? &st->failed : &st->written, 1);
    break;
  default:
    atomic_fetch_add(&st->unexpected, 1);
    break;
  }
}

static const m3s_actor_ops_t writer_ops = {
  .name = "writer",
  .size = sizeof(writer_t),
  .start = writer_start,
  .handle = writer_handle,
};

static void admin_ok(redisContext *c, const char *cmd)
{
  redisReply *rep = redisCommand(c, cmd);
  ck_assert_ptr_nonnull(rep);
  ck_assert_msg(rep->type != REDIS_REPLY_ERROR, "%s: %s", cmd, rep->str);
  freeReplyObject(rep);
}

/* Redis stops taking writes (CLIENT PAUSE WRITE: connections and PING
 * still work, every SET waits): the queue reaches the high mark, the
 * writer is told and sends nothing more, so the queue stops growing and
 * the status shows the backlog. Once Redis takes writes again the queue
 * drains, the writer is told to resume, and every batch it ever sent is
 * confirmed and in Redis: nothing was dropped. */
START_TEST(full_queue_pushes_back)
{
  redis_fixture_t r;
  harness_t h;
  wstats_t st = { 0 };
  writer_stats = &st;
  fixture_init(&r, NULL, false);
  fixture_start(&r);
  redisContext *c = admin(&r, 1);
  admin_ok(c, "CLIENT PAUSE 120000 WRITE");
  int64_t t0 = now_ms();
  harness_start_with(&h, &r, NULL, "1", &writer_ops);
  ck_assert_int_eq(h.start_rc, 0);

  /* Held back, with the mark crossed. */
  int64_t deadline = now_ms() + 60000;
  while(!atomic_load(&st.held)) {
    ck_assert_msg(now_ms() < deadline, "the writer was never held back (%ld sent)",
                  atomic_load(&st.sent));
    m3s_check_sleep_ms(10);
  }
  int64_t t_held = now_ms();
  /* The writes it sent before the news reached it land in the queue; then
   * nothing more comes. Two samples IO_TIMEOUT_MS-scale apart, after the
   * store had time to take in its mailbox, are the same. */
  m3s_check_sleep_ms(3000);
  long sent1 = atomic_load(&st.sent);
  json_int_t q1 = status_int(&h, "queued_batches");
  m3s_check_sleep_ms(3000);
  long sent2 = atomic_load(&st.sent);
  json_t *s2 = status(&h);
  json_int_t q2 = json_integer_value(json_object_get(s2, "queued_batches"));
  fprintf(stderr,
          "pushback: held after %lld ms at %ld sent; queue %lld then %lld (%ld sent) 3 s "
          "later, mark %d\n",
          (long long)(t_held - t0), sent1, (long long)q1, (long long)q2, sent2,
          M3S_STORE_HIGH_WATER);
  ck_assert(atomic_load(&st.held));
  ck_assert_int_eq(sent2, sent1);
  ck_assert_int_lt(sent2, PUSH_TOTAL);          /* it had more to send */
  ck_assert_int_eq(q2, q1);                     /* the queue stopped growing */
  ck_assert_int_ge(q2, M3S_STORE_HIGH_WATER);
  ck_assert_int_eq(q2, sent2 - atomic_load(&st.written)); /* all of it is queued */
  ck_assert(json_is_true(json_object_get(s2, "backlogged")));
  ck_assert_int_ge(json_integer_value(json_object_get(s2, "backlogged_ms")), 3000);
  ck_assert_int_eq(json_integer_value(json_object_get(s2, "backlogs")), 1);
  json_decref(s2);

  /* Redis takes writes again: drained, resumed, everything confirmed. */
  admin_ok(c, "CLIENT UNPAUSE");
  deadline = now_ms() + 120000;
  while(atomic_load(&st.written) + atomic_load(&st.failed) < PUSH_TOTAL) {
    ck_assert_msg(now_ms() < deadline, "only %ld of %d writes confirmed (%ld sent)",
                  atomic_load(&st.written), PUSH_TOTAL, atomic_load(&st.sent));
    m3s_check_sleep_ms(20);
  }
  ck_assert_int_eq(atomic_load(&st.failed), 0);
  ck_assert_int_eq(atomic_load(&st.sent_while_held), 0);
  ck_assert_int_ge(atomic_load(&st.resumed_events), 1);
  ck_assert(!atomic_load(&st.held));
  json_t *s3 = status(&h);
  ck_assert(json_is_false(json_object_get(s3, "backlogged")));
  ck_assert_int_eq(json_integer_value(json_object_get(s3, "queued_batches")), 0);
  json_decref(s3);
  redisReply *rep = redisCommand(c, "DBSIZE");
  ck_assert_int_eq(rep->integer, PUSH_TOTAL);
  freeReplyObject(rep);
  admin_expect(c, FW ":agent:p0", "{\"n\":0}");
  admin_expect(c, FW ":agent:p59999", "{\"n\":59999}");
  fprintf(stderr, "pushback: held %ld time(s), resumed %ld time(s); %d written, DBSIZE %d\n",
          atomic_load(&st.held_events), atomic_load(&st.resumed_events), PUSH_TOTAL,
          PUSH_TOTAL);

  redisFree(c);
  harness_free(&h);
  ck_assert_int_eq(atomic_load(&st.unexpected), 0);
  fixture_free(&r);
}
END_TEST

static json_t *status_get(harness_t *h, const char *k1, const char *k2)
{
  json_t *st = status(h);
  json_t *v = json_object_get(st, k1);
  if(k2)
    v = json_object_get(v, k2);
  v = json_deep_copy(v);
  json_decref(st);
  return v;
}

/* A running Redis, the store on DB 1 and the test's own connection. */
static redisContext *up(redis_fixture_t *r, harness_t *h)
{
  fixture_init(r, NULL, false);
  fixture_start(r);
  harness_start(h, r, NULL, "1");
  ck_assert_int_eq(h->start_rc, 0);
  return admin(r, 1);
}

static void down(redis_fixture_t *r, harness_t *h, redisContext *c)
{
  redisFree(c);
  harness_free(h);
  fixture_free(r);
}

/* Redis out of memory (maxmemory 1, noeviction) refuses SET with OOM: the
 * refused batches and every one behind them wait, nothing is confirmed,
 * the refusal shows in the status; once Redis has room they are written
 * in order and confirmed one by one. */
START_TEST(oom_refusal_waits)
{
  redis_fixture_t r;
  harness_t h;
  redisContext *c = up(&r, &h);

  admin_cmd(c, "CONFIG SET %s %s", "maxmemory-policy", "noeviction");
  admin_cmd(c, "CONFIG SET %s %s", "maxmemory", "1");
  set1(&h, 1, FW ":agent:single", "{}");
  m3s_store_batch_t *b = m3s_store_batch_new(h.probe, 2);
  m3s_store_batch_set(b, FW ":agent:m1", "{}");
  m3s_store_batch_set(b, FW ":agent:m2", "{}");
  send_batch(&h, b);
  b = m3s_store_batch_new(h.probe, 3);
  m3s_store_batch_del(b, FW ":agent:gone"); /* Redis allows DEL under OOM */
  send_batch(&h, b);
  int64_t deadline = now_ms() + LONG_WAIT_MS;
  while(status_int(&h, "refused") < 3) { /* retried with backoff */
    ck_assert_msg(now_ms() < deadline, "the refused writes were not retried");
    m3s_check_sleep_ms(5);
  }
  json_t *w = status_get(&h, "refusing", NULL);
  ck_assert_str_eq(json_string_value(w), "OOM");
  json_decref(w);
  w = status_get(&h, "refused_by_error", "OOM");
  ck_assert_int_ge(json_integer_value(w), 3);
  json_decref(w);
  ck_assert_int_eq(nwritten(&h), 0); /* nothing confirmed, not even the DEL behind */
  ck_assert_int_eq(atomic_load(&h.rec->nfailed), 0);

  admin_cmd(c, "CONFIG SET %s %s", "maxmemory", "0");
  wait_written(&h, 3);
  for(int i = 0; i < 3; i++)
    ck_assert_int_eq(h.rec->written[i], i + 1);
  admin_expect(c, FW ":agent:single", "{}");
  admin_expect(c, FW ":agent:m2", "{}");
  w = status_get(&h, "refusing", NULL);
  ck_assert_ptr_null(w); /* over */

  down(&r, &h, c);
}
END_TEST

/* MISCONF: a failing background save with stop-writes-on-bgsave-error
 * refuses writes until a save succeeds again. */
START_TEST(misconf_refusal_waits)
{
  redis_fixture_t r;
  harness_t h;
  redisContext *c = up(&r, &h);
  char bad[128];
  snprintf(bad, sizeof(bad), "%s/no-such-dir", r.dir);
  ck_assert_int_eq(mkdir(bad, 0700), 0);
  admin_cmd(c, "CONFIG SET %s %s", "dir", bad);
  ck_assert_int_eq(rmdir(bad), 0); /* the save cannot create its file */
  admin_cmd(c, "CONFIG SET %s %s", "stop-writes-on-bgsave-error", "yes");
  admin_cmd(c, "CONFIG SET %s %s", "save", "3600 1"); /* writes stop only with a save rule */
  redisReply *rep = redisCommand(c, "BGSAVE");
  freeReplyObject(rep);
  int64_t deadline = now_ms() + LONG_WAIT_MS;
  for(;;) { /* until the failed save is recorded */
    rep = redisCommand(c, "INFO persistence");
    bool failed = rep && rep->str && strstr(rep->str, "rdb_last_bgsave_status:err");
    bool busy = rep && rep->str && strstr(rep->str, "rdb_bgsave_in_progress:1");
    freeReplyObject(rep);
    if(failed && !busy)
      break;
    ck_assert_msg(now_ms() < deadline, "BGSAVE did not fail");
    m3s_check_sleep_ms(10);
  }
  set1(&h, 1, FW ":agent:a", "{}");
  while(status_int(&h, "refused") < 1) {
    ck_assert_msg(now_ms() < deadline, "the MISCONF refusal was not counted");
    m3s_check_sleep_ms(5);
  }
  m3s_check_sleep_ms(300);
  ck_assert_int_eq(nwritten(&h), 0);
  json_t *w = status_get(&h, "refusing", NULL);
  ck_assert_str_eq(json_string_value(w), "MISCONF");
  json_decref(w);
  admin_cmd(c, "CONFIG SET %s %s", "dir", r.dir);
  rep = redisCommand(c, "SAVE");
  freeReplyObject(rep);
  wait_written(&h, 1);
  char *v = admin_get(c, FW ":agent:a");
  ck_assert_str_eq(v, "{}");
  free(v);
  down(&r, &h, c);
}
END_TEST

/* A refusal that would come back on every retry (here NOPERM: the ACL
 * forbids DEL) is reported to the batch's sender as failed; the batches
 * behind it go on. */
START_TEST(permanent_refusal_reported)
{
  redis_fixture_t r;
  harness_t h;
  redisContext *c = up(&r, &h);
  admin_cmd(c, "ACL SETUSER %s %s", "default", "-del");
  /* Each batch carries a follow-up (as a role's ACKNOWLEDGE rides its
   * write): only the stored one's goes out, before its WRITTEN; the
   * refused one's is dropped although a later batch was stored. */
  m3s_store_batch_t *b = m3s_store_batch_new(h.probe, 1);
  m3s_store_batch_del(b, FW ":agent:x");
  m3s_store_batch_then(b, h.probe, m3s_msg_new(PROBE_THEN, 1, NULL, NULL));
  send_batch(&h, b);
  b = m3s_store_batch_new(h.probe, 2);
  m3s_store_batch_set(b, FW ":agent:y", "{}");
  m3s_store_batch_then(b, h.probe, m3s_msg_new(PROBE_THEN, 2, NULL, NULL));
  send_batch(&h, b);
  wait_written(&h, 1);
  ck_assert_int_eq(h.rec->written[0], 2);
  ck_assert_int_eq(atomic_load_explicit(&h.rec->nthen, memory_order_acquire), 1);
  ck_assert_int_eq(h.rec->then[0], 2);
  ck_assert_int_eq(h.rec->then_before[0], 1);
  ck_assert_int_eq(atomic_load_explicit(&h.rec->nfailed, memory_order_acquire), 1);
  ck_assert_int_eq(h.rec->failed[0], 1);
  ck_assert_int_eq(status_int(&h, "failed"), 1);
  json_t *w = status_get(&h, "refused_by_error", "NOPERM");
  ck_assert_int_eq(json_integer_value(w), 1);
  json_decref(w);
  ck_assert_int_eq(status_int(&h, "reconnects"), 0);
  down(&r, &h, c);
}
END_TEST

/* Task i's key and record: every third under agent:, the others under
 * server: (all under agent: when agents_only). */
static void task_kv(int i, bool agents_only, char *key, char *val)
{
  sprintf(key, FW ":%s:task-%d", agents_only || i % 3 == 0 ? "agent" : "server", i);
  sprintf(val, "{\"TaskID\":\"task-%d\"}", i);
}

/* Writes tasks 0..n) in one pipeline. */
static void set_tasks(redisContext *c, int n, bool agents_only)
{
  char key[64], val[64];
  for(int i = 0; i < n; i++) {
    task_kv(i, agents_only, key, val);
    redisAppendCommand(c, "SET %s %s", key, val);
  }
  for(int i = 0; i < n; i++) {
    void *rep = NULL;
    ck_assert_int_eq(redisGetReply(c, &rep), REDIS_OK);
    freeReplyObject(rep);
  }
}

START_TEST(scan_many_pages)
{
  enum { N = 3000 };
  redis_fixture_t r;
  harness_t h;
  char key[64], val[64];
  fixture_init(&r, NULL, false);
  fixture_start(&r);
  redisContext *c = admin(&r, 1);
  set_tasks(c, N, false);
  redisFree(c);

  harness_start(&h, &r, NULL, "1");
  ck_assert_int_eq(h.start_rc, 0);
  send_load(&h, "*", 0);
  send_load(&h, "agent:*", 1);
  json_t *all = wait_loaded(&h, 0);
  ck_assert_int_eq(json_object_size(all), N);
  /* Delivered in chunks of at most 1,000 records. */
  ck_assert_int_ge(atomic_load(&h.rec->chunks[0]), N / 1000);
  for(int i = 0; i < N; i++) {
    task_kv(i, false, key, val);
    assert_value(all, key, val);
  }
  ck_assert_int_eq(json_object_size(wait_loaded(&h, 1)), N / 3);

  harness_free(&h);
  fixture_free(&r);
}
END_TEST

/* An unchecked load (the roles' task records) hands the values over as
 * Redis sent them, in chunks of m3s_store_records_t: neither JSON nor UTF-8
 * is checked, only a NUL byte or a value that is not a string is set
 * aside. */
START_TEST(unchecked_load)
{
  enum { N = 700 };
  redis_fixture_t r;
  harness_t h;
  char key[64], val[64];
  fixture_init(&r, NULL, false);
  fixture_start(&r);
  redisContext *c = admin(&r, 1);
  set_tasks(c, N, true);
  admin_cmd(c, "SET %s %s", FW ":agent:junk", "{broken");
  admin_cmd(c, "SET %s %s", FW ":agent:latin", "{\"TaskID\":\"caf\xe9\"}");
  redisReply *rep = redisCommand(c, "SET %s %b", FW ":agent:nul", "a\0b", (size_t)3);
  ck_assert_int_eq(rep->type, REDIS_REPLY_STATUS);
  freeReplyObject(rep);
  admin_cmd(c, "RPUSH %s %s", FW ":agent:list", "{}");

  harness_start(&h, &r, NULL, "1");
  ck_assert_int_eq(h.start_rc, 0);
  send_load_unchecked(&h, "agent:*", 0);
  json_t *all = wait_loaded(&h, 0);
  ck_assert_int_eq(json_object_size(all), N + 2);
  for(int i = 0; i < N; i++) {
    task_kv(i, true, key, val);
    assert_value(all, key, val);
  }
  assert_value(all, FW ":agent:junk", "{broken");
  assert_value(all, FW ":agent:latin", "{\"TaskID\":\"caf\xe9\"}");
  ck_assert_int_ge(atomic_load(&h.rec->chunks[0]), 2);
  ck_assert_int_eq(atomic_load(&h.rec->bad_records), 0);
  ck_assert_int_eq(atomic_load(&h.rec->unexpected), 0);
  /* the value with a NUL byte and the list: set aside */
  ck_assert_int_eq(status_int(&h, "corrupt"), 2);
  rep = redisCommand(c, "KEYS %s", FW ":corrupt:agent:*");
  ck_assert_int_eq(rep->type, REDIS_REPLY_ARRAY);
  ck_assert_int_eq(rep->elements, 2);
  freeReplyObject(rep);

  redisFree(c);
  harness_free(&h);
  fixture_free(&r);
}
END_TEST

static Suite *store_suite(void)
{
  Suite *s = suite_create("store");
  TCase *tc = tcase_create("redis");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, round_trip);
  tcase_add_test(tc, ordering);
  tcase_add_test(tc, outage);
  tcase_add_test(tc, corrupt_set_aside);
  tcase_add_test(tc, unchecked_load);
  tcase_add_test(tc, start_failures);
  tcase_add_test(tc, unreachable_at_start);
  tcase_add_test(tc, queue_never_drops);
  tcase_add_test(tc, full_queue_pushes_back);
  tcase_add_test(tc, oom_refusal_waits);
  tcase_add_test(tc, misconf_refusal_waits);
  tcase_add_test(tc, permanent_refusal_reported);
  tcase_add_test(tc, scan_many_pages);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  /* The store blocks SIGPIPE on its own thread; the test's own hiredis
   * connections are on this thread. */
  signal(SIGPIPE, SIG_IGN);
  return m3s_check_run(store_suite());
}
