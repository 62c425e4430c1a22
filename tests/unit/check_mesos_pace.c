/* The Mesos actor's pacing of the event stream (src/actors/mesos.c), in
 * process: the real actor against a fake master on 127.0.0.1, an update
 * sink and, in the second test, a store without Redis; the test holds one
 * of them busy.
 *
 * The fake master answers the first SUBSCRIBE with a chunked RecordIO stream
 * (one record per chunk, like a real master): SUBSCRIBED with a heartbeat
 * interval of one second, N_UPDATES status updates with uuids, then a
 * HEARTBEAT every second on the open connection. Every other call gets 202;
 * it checks that the ACKNOWLEDGEs come in the updates' order.
 *
 * The sink, like a role, has each update stored with its ACKNOWLEDGE as the
 * batch's message on (the store sends it to the actor once stored), or
 * sends the ACKNOWLEDGE itself when there is no store. The held actor (the
 * sink, or the store on its first batch with an ACKNOWLEDGE) blocks until
 * the test releases it. Meanwhile the actor must stop reading the stream
 * (stream_pauses >= 1, the held mailbox no deeper than PACE_DEPTH, twice
 * that behind the sink, plus what one curl write holds) and must keep its
 * subscription although no heartbeat is read for longer than the
 * watchdog's limit. Once released, every update must reach the
 * sink once and in order, and every ACKNOWLEDGE the master. Last, the master
 * goes silent: the watchdog, back at work, drops the stream and subscribes
 * again.
 *
 * Waits are for conditions, with generous deadlines. The only wait on the
 * clock is the hold itself, which must outlast the watchdog's limit.
 */
#include <check.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/config.h"
#include "m3s/mesos.h"
#include "m3s/store.h"
#include "check_main.h"

#define N_UPDATES 3000
#define HEARTBEAT_S 1
/* mesos.c's HEARTBEAT_MISSES and PACE_DEPTH (private to it). */
#define WATCHDOG_LIMIT_MS (HEARTBEAT_S * 1000 * 5)
#define PACE_DEPTH 256
#define LONG_WAIT_MS 120000
#define MAX_CONNS 32

/* ---- the fake master ----------------------------------------------------- */

typedef struct fake {
  int lfd, port;
  pthread_t acceptor;
  pthread_t conns[MAX_CONNS];
  int nconns;                 /* acceptor thread only, then read after its join */
  atomic_bool stop;
  atomic_bool silent;         /* the first subscription's heartbeats stop */
  atomic_int subscribes;
  atomic_int streams_ended;   /* a stream connection the client closed */
  atomic_int acks, ack_errors, other_calls;
  atomic_int updates_written; /* records of the first stream on the wire */
} fake_t;

typedef struct conn {
  fake_t *f;
  int fd;
} conn_t;

static int write_all(int fd, const char *p, size_t n)
{
  while(n) {
    ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if(w < 0 && errno == EINTR)
      continue;
    if(w <= 0)
      return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* One RecordIO record in one HTTP chunk. */
static int write_record(int fd, const char *rec)
{
  size_t len = strlen(rec);
  char head[64];
  int hl = snprintf(head, sizeof(head), "%zu\n", len);
  char chunk[32];
  int cl = snprintf(chunk, sizeof(chunk), "%zx\r\n", (size_t)hl + len);
  if(write_all(fd, chunk, (size_t)cl) || write_all(fd, head, (size_t)hl) ||
     write_all(fd, rec, len) || write_all(fd, "\r\n", 2))
    return -1;
  return 0;
}

/* The uuid of update i: 16 bytes, base64 like the master's. */
static void update_uuid(int i, char out[25])
{
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char raw[18] = { 0 };
  for(int k = 0; k < 16; k++)
    raw[k] = (unsigned char)((i >> (8 * (k % 4))) ^ (k * 37));
  int o = 0;
  for(int k = 0; k < 18; k += 3) {
    unsigned v = (unsigned)raw[k] << 16 | (unsigned)raw[k + 1] << 8 | raw[k + 2];
    out[o++] = b64[v >> 18 & 63];
    out[o++] = b64[v >> 12 & 63];
    out[o++] = b64[v >> 6 & 63];
    out[o++] = b64[v & 63];
  }
  out[22] = out[23] = '=';
  out[24] = '\0';
}

static void task_name(int i, char out[16])
{
  snprintf(out, 16, "task-%05d", i);
}

static void update_record(int i, char *out, size_t cap)
{
  char uuid[25], task[16];
  update_uuid(i, uuid);
  task_name(i, task);
  snprintf(out, cap,
           "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"%s\"},"
           "\"state\":\"TASK_RUNNING\",\"source\":\"SOURCE_EXECUTOR\","
           "\"agent_id\":{\"value\":\"agent-S0\"},\"executor_id\":{\"value\":\"%s\"},"
           "\"timestamp\":1795636790.5,\"uuid\":\"%s\"}}}",
           task, task, uuid);
}

/* The shortest update record: bounds how many one curl write can carry. */
static size_t min_update_len(void)
{
  char rec[512];
  update_record(0, rec, sizeof(rec));
  return strlen(rec);
}

static void serve_stream(fake_t *f, int fd, int nth)
{
  static const char head[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             "Mesos-Stream-Id: 5e5e5e5e-0000-4000-8000-000000000001\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n";
  char rec[512];
  snprintf(rec, sizeof(rec),
           "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"fw-pace\"},"
           "\"heartbeat_interval_seconds\":%d.0}}", HEARTBEAT_S);
  if(write_all(fd, head, sizeof(head) - 1) || write_record(fd, rec))
    goto ended;
  for(int i = 0; nth == 1 && i < N_UPDATES; i++) {
    update_record(i, rec, sizeof(rec));
    if(write_record(fd, rec))
      goto ended;
    atomic_fetch_add(&f->updates_written, 1);
  }
  for(;;) {
    for(int t = 0; t < HEARTBEAT_S * 1000; t += 50) {
      if(atomic_load(&f->stop))
        return;
      m3s_check_sleep_ms(50);
    }
    if(nth == 1 && atomic_load(&f->silent))
      continue;
    if(write_record(fd, "{\"type\":\"HEARTBEAT\"}"))
      goto ended;
  }
ended:
  if(!atomic_load(&f->stop))
    atomic_fetch_add(&f->streams_ended, 1);
}

static void on_call(fake_t *f, json_t *call)
{
  const char *type = json_string_value(json_object_get(call, "type"));
  if(!type || strcmp(type, "ACKNOWLEDGE")) {
    atomic_fetch_add(&f->other_calls, 1);
    return;
  }
  json_t *ack = json_object_get(call, "acknowledge");
  const char *task = json_string_value(json_object_get(json_object_get(ack, "task_id"), "value"));
  const char *uuid = json_string_value(json_object_get(ack, "uuid"));
  int i = atomic_load(&f->acks);
  char want_task[16], want_uuid[25];
  task_name(i, want_task);
  update_uuid(i, want_uuid);
  if(!task || !uuid || strcmp(task, want_task) || strcmp(uuid, want_uuid))
    atomic_fetch_add(&f->ack_errors, 1);
  atomic_fetch_add(&f->acks, 1);
}

/* One client connection: requests until it closes. */
static void *conn_main(void *arg)
{
  conn_t *c = arg;
  fake_t *f = c->f;
  char buf[65536];
  size_t have = 0;
  for(;;) {
    char *end = NULL;
    while(!(end = memmem(buf, have, "\r\n\r\n", 4))) {
      if(have == sizeof(buf))
        goto out;
      ssize_t r = recv(c->fd, buf + have, sizeof(buf) - have, 0);
      if(r <= 0)
        goto out;
      have += (size_t)r;
    }
    size_t hlen = (size_t)(end - buf) + 4, clen = 0;
    for(char *p = buf; p < end; p = strstr(p, "\r\n") + 2)
      if(!strncasecmp(p, "Content-Length:", 15))
        clen = strtoul(p + 15, NULL, 10);
    if(hlen + clen > sizeof(buf))
      goto out;
    while(have < hlen + clen) {
      ssize_t r = recv(c->fd, buf + have, sizeof(buf) - have, 0);
      if(r <= 0)
        goto out;
      have += (size_t)r;
    }
    bool ours = !strncmp(buf, "POST /api/v1/scheduler ", 23);
    json_t *call = json_loadb(buf + hlen, clen, 0, NULL);
    const char *type = json_string_value(json_object_get(call, "type"));
    if(ours && type && !strcmp(type, "SUBSCRIBE")) {
      json_decref(call);
      serve_stream(f, c->fd, atomic_fetch_add(&f->subscribes, 1) + 1);
      goto out;
    }
    if(ours && call)
      on_call(f, call);
    json_decref(call);
    static const char accepted[] = "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
    static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    if(write_all(c->fd, ours ? accepted : bad, ours ? sizeof(accepted) - 1 : sizeof(bad) - 1))
      goto out;
    memmove(buf, buf + hlen + clen, have - hlen - clen);
    have -= hlen + clen;
  }
out:
  close(c->fd);
  free(c);
  return NULL;
}

static void *acceptor_main(void *arg)
{
  fake_t *f = arg;
  while(!atomic_load(&f->stop)) {
    struct pollfd p = { .fd = f->lfd, .events = POLLIN };
    if(poll(&p, 1, 50) <= 0)
      continue;
    int fd = accept(f->lfd, NULL, NULL);
    if(fd < 0)
      continue;
    conn_t *c = malloc(sizeof(*c));
    if(!c || f->nconns == MAX_CONNS) {
      free(c);
      close(fd); /* the test sees the failed call */
      continue;
    }
    *c = (conn_t){ .f = f, .fd = fd };
    if(pthread_create(&f->conns[f->nconns], NULL, conn_main, c) != 0) {
      free(c);
      close(fd);
      continue;
    }
    f->nconns++;
  }
  return NULL;
}

static void fake_start(fake_t *f)
{
  memset(f, 0, sizeof(*f));
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof(a);
  f->lfd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ne(f->lfd, -1);
  ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&a, &len), 0);
  ck_assert_int_eq(listen(f->lfd, 16), 0);
  f->port = ntohs(a.sin_port);
  ck_assert_int_eq(pthread_create(&f->acceptor, NULL, acceptor_main, f), 0);
}

/* After the actors stopped (their connections are closed). */
static void fake_stop(fake_t *f)
{
  atomic_store(&f->stop, true);
  pthread_join(f->acceptor, NULL);
  for(int i = 0; i < f->nconns; i++)
    pthread_join(f->conns[i], NULL);
  close(f->lfd);
}

/* ---- the update sink and the store ------------------------------------- */

/* What the actors saw, shared with the test's thread. */
typedef struct seen {
  sem_t release;     /* posted once: the held actor goes on */
  bool hold_store;   /* set before start: hold the store, not the sink */
  atomic_int subscribed, updates, out_of_order, without_ack, unexpected, stored;
} seen_t;

/* Held until released, once. */
static void hold(seen_t *seen, bool *released)
{
  if(*released)
    return;
  while(sem_wait(&seen->release) != 0)
    ; /* EINTR */
  *released = true;
}

typedef struct sink {
  m3s_actor_t base;
  seen_t *seen;     /* set before start */
  bool released;
} sink_t;

/* Like a role: checks the update, then has it stored with its ACKNOWLEDGE
 * sent on by the store (when there is one), or sends that itself. */
static void sink_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  sink_t *s = (sink_t *)self;
  if(!s->seen->hold_store)
    hold(s->seen, &s->released);
  if(msg->type == M3S_MESOS_SUBSCRIBED) {
    atomic_fetch_add(&s->seen->subscribed, 1);
    return;
  }
  if(msg->type != M3S_MESOS_UPDATE) {
    atomic_fetch_add(&s->seen->unexpected, 1); /* asserted on the test's thread */
    return;
  }
  m3s_mesos_update_t *u = msg->payload;
  const char *task =
    json_string_value(json_object_get(json_object_get(u->status, "task_id"), "value"));
  char want[16];
  task_name(atomic_load(&s->seen->updates), want);
  if(!task || strcmp(task, want))
    atomic_fetch_add(&s->seen->out_of_order, 1);
  atomic_fetch_add(&s->seen->updates, 1);
  if(!u->ack) {
    atomic_fetch_add(&s->seen->without_ack, 1);
    return;
  }
  m3s_actor_t *mesos = m3s_system_find(self->sys, "mesos");
  m3s_actor_t *store = m3s_system_find(self->sys, "store");
  m3s_msg_t *ack = m3s_msg_new(M3S_MESOS_CALL, 0, u->ack, m3s_json_drop);
  u->ack = NULL;
  if(!store) {
    m3s_send(mesos, ack);
    return;
  }
  char key[64];
  snprintf(key, sizeof(key), "%s:agent:%s", self->cfg->fw, want);
  m3s_store_batch_t *b = m3s_store_batch_new(NULL, 0);
  m3s_store_batch_set(b, key, "{}");
  m3s_store_batch_then(b, mesos, ack);
  m3s_send(store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
}

static const m3s_actor_ops_t sink_ops = {
  .name = "sink",
  .size = sizeof(sink_t),
  .handle = sink_handle,
};

/* The store's protocol without Redis: an empty load, every batch stored at
 * once, but for the hold on the first one that carries a message. */
typedef struct fake_store {
  m3s_actor_t base;
  seen_t *seen;     /* set before start */
  bool released;
} fake_store_t;

static void store_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  fake_store_t *st = (fake_store_t *)self;
  if(msg->type == M3S_STORE_LOAD) {
    m3s_store_load_t *l = msg->payload;
    m3s_send(l->notify, m3s_msg_new(M3S_STORE_LOADED, l->tag, json_object(), m3s_json_drop));
    return;
  }
  if(msg->type != M3S_STORE_WRITE) {
    atomic_fetch_add(&st->seen->unexpected, 1);
    return;
  }
  m3s_store_batch_t *b = msg->payload;
  if(b->then && st->seen->hold_store)
    hold(st->seen, &st->released);
  if(b->then) {
    atomic_fetch_add(&st->seen->stored, 1);
    m3s_send(b->then_to, b->then);
    b->then = NULL;
  }
  if(b->notify)
    m3s_send(b->notify, m3s_msg_new(M3S_STORE_WRITTEN, b->tag, NULL, NULL));
}

static const m3s_actor_ops_t store_ops = {
  .name = "store",
  .size = sizeof(fake_store_t),
  .handle = store_handle,
};

/* ---- harness ------------------------------------------------------------- */

/* The actor's status object (caller decrefs). */
static json_t *mesos_status(m3s_actor_t *mesos)
{
  m3s_msg_t *ans = NULL;
  int rc = m3s_call(mesos, m3s_msg_new(M3S_MESOS_STATUS, 0, NULL, NULL), 10000, &ans);
  ck_assert_msg(rc == 0, "status request: %d", rc);
  json_t *st = m3s_msg_take(ans);
  m3s_msg_free(ans);
  ck_assert_ptr_nonnull(st);
  return st;
}

static json_int_t status_int(m3s_actor_t *mesos, const char *key)
{
  json_t *st = mesos_status(mesos);
  json_int_t v = json_integer_value(json_object_get(st, key));
  json_decref(st);
  return v;
}

/* The burst with the sink held, or (hold_store) the store behind it. f and
 * seen are static in the caller: a failed check leaves the fake's threads
 * and the held actor behind, and they must not point into a dead stack
 * frame. */
static void burst(fake_t *f, seen_t *seen, bool hold_store)
{
  seen->hold_store = hold_store;
  ck_assert_int_eq(sem_init(&seen->release, 0, 0), 0);
  fake_start(f);

  char master[32];
  snprintf(master, sizeof(master), "127.0.0.1:%d", f->port);
  const char *kv[] = { "FRAMEWORK_HOSTNAME", "localhost", "FRAMEWORK_NAME", "test",
                       "MESOS_MASTER", master, NULL, NULL };
  m3s_config_t cfg;
  char err[512];
  ck_assert_msg(m3s_config_load(&cfg, m3s_check_getenv, (void *)kv, err, sizeof(err)) == 0, "%s",
                err);
  m3s_system_t *sys = m3s_system_new(&cfg);
  m3s_actor_t *store = NULL;
  if(hold_store) {
    store = m3s_system_add(sys, &store_ops);
    ((fake_store_t *)store)->seen = seen;
  }
  m3s_actor_t *sink = m3s_system_add(sys, &sink_ops);
  ((sink_t *)sink)->seen = seen;
  m3s_actor_t *mesos = m3s_system_add(sys, &m3s_mesos_ops);
  /* No offers sink: it subscribes as soon as it has the framework record,
   * at once when there is no store. */
  m3s_mesos_set_sinks(mesos, NULL, sink);
  ck_assert_int_eq(m3s_system_start(sys), 0);
  m3s_actor_t *held = hold_store ? store : sink;
  const char *name = hold_store ? "store" : "sink";

  /* One curl write hands the actor at most CURL_MAX_WRITE_SIZE bytes, all
   * decoded before it looks at the depths again. Behind a free sink, what
   * the sink holds at the pause (less than PACE_DEPTH) reaches the store
   * too. */
  size_t bound = PACE_DEPTH * (hold_store ? 2 : 1) + CURL_MAX_WRITE_SIZE / min_update_len() + 1;
  size_t deepest = 0;

  /* Held: the stream must pause before the held mailbox passes the bound
   * (without pacing it would take in nearly all N_UPDATES). */
  int64_t until = m3s_now_ms() + LONG_WAIT_MS, last_status = 0;
  json_int_t pauses = 0;
  while(pauses < 1) {
    size_t d = m3s_actor_depth(held);
    deepest = d > deepest ? d : deepest;
    ck_assert_msg(deepest <= bound,
                  "the %s holds %zu messages (bound %zu): the stream was not paced", name,
                  deepest, bound);
    ck_assert_msg(m3s_now_ms() < until, "no pause after %d ms (%s depth %zu, %d updates sent)",
                  LONG_WAIT_MS, name, d, atomic_load(&f->updates_written));
    if(m3s_now_ms() - last_status >= 20) {
      pauses = status_int(mesos, "stream_pauses");
      last_status = m3s_now_ms();
    }
    else {
      m3s_check_sleep_ms(1);
    }
  }

  /* Still held, for longer than the watchdog's limit: no heartbeat is read
   * meanwhile, yet the subscription stays. */
  int64_t hold_until = m3s_now_ms() + WATCHDOG_LIMIT_MS + 3000;
  while(m3s_now_ms() < hold_until) {
    size_t d = m3s_actor_depth(held);
    deepest = d > deepest ? d : deepest;
    ck_assert_msg(deepest <= bound, "the %s holds %zu messages while paused (bound %zu)", name,
                  deepest, bound);
    m3s_check_sleep_ms(10);
  }
  json_t *st = mesos_status(mesos);
  ck_assert_str_eq(json_string_value(json_object_get(st, "state")), "subscribed");
  ck_assert_int_eq(json_integer_value(json_object_get(st, "subscriptions")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "reconnects")), 0);
  json_decref(st);
  ck_assert_int_eq(atomic_load(&f->subscribes), 1);
  ck_assert_int_eq(atomic_load(&f->streams_ended), 0);
  ck_assert_int_eq(atomic_load(&f->acks), 0);
  ck_assert_int_eq(atomic_load(&seen->stored), 0);

  /* Released: every update once and in order, every ACKNOWLEDGE back. */
  ck_assert_int_eq(sem_post(&seen->release), 0);
  until = m3s_now_ms() + LONG_WAIT_MS;
  while(atomic_load(&seen->updates) < N_UPDATES || atomic_load(&f->acks) < N_UPDATES) {
    ck_assert_msg(m3s_now_ms() < until, "after %d ms: %d updates at the sink, %d ACKNOWLEDGEs",
                  LONG_WAIT_MS, atomic_load(&seen->updates), atomic_load(&f->acks));
    m3s_check_sleep_ms(10);
  }
  ck_assert_int_eq(atomic_load(&seen->subscribed), 1);
  ck_assert_int_eq(atomic_load(&seen->updates), N_UPDATES);
  ck_assert_int_eq(atomic_load(&seen->out_of_order), 0);
  ck_assert_int_eq(atomic_load(&seen->without_ack), 0);
  ck_assert_int_eq(atomic_load(&seen->unexpected), 0);
  ck_assert_int_eq(atomic_load(&seen->stored), hold_store ? N_UPDATES : 0);
  ck_assert_int_eq(atomic_load(&f->acks), N_UPDATES);
  ck_assert_int_eq(atomic_load(&f->ack_errors), 0);
  ck_assert_int_eq(atomic_load(&f->other_calls), 0);
  st = mesos_status(mesos);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "subscriptions")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(st, "reconnects")), 0);
  ck_assert_int_ge(json_integer_value(json_object_get(st, "stream_pauses")), 1);
  fprintf(stderr, "check_mesos_pace: %lld pauses, the %s at most %zu deep (bound %zu)\n",
          (long long)json_integer_value(json_object_get(st, "stream_pauses")), name, deepest,
          bound);
  json_decref(st);

  /* Reading again, the watchdog is back at work: a master gone silent is
   * dropped and subscribed to again. */
  atomic_store(&f->silent, true);
  until = m3s_now_ms() + LONG_WAIT_MS;
  while(atomic_load(&f->subscribes) < 2) {
    ck_assert_msg(m3s_now_ms() < until, "a silent master was not dropped after %d ms",
                  LONG_WAIT_MS);
    m3s_check_sleep_ms(10);
  }
  until = m3s_now_ms() + LONG_WAIT_MS;
  while(status_int(mesos, "subscriptions") < 2) {
    ck_assert_msg(m3s_now_ms() < until, "no second subscription after %d ms", LONG_WAIT_MS);
    m3s_check_sleep_ms(10);
  }
  ck_assert_int_eq(status_int(mesos, "reconnects"), 1);

  m3s_system_stop(sys);
  m3s_system_free(sys);
  fake_stop(f);
  ck_assert_int_eq(atomic_load(&f->subscribes), 2);
  m3s_config_free(&cfg);
  sem_destroy(&seen->release);
}

START_TEST(test_held_sink)
{
  static fake_t f;
  static seen_t seen;
  burst(&f, &seen, false);
}
END_TEST

START_TEST(test_held_store)
{
  static fake_t f;
  static seen_t seen;
  burst(&f, &seen, true);
}
END_TEST


int main(void)
{
  Suite *s = suite_create("mesos_pace");
  TCase *tc = tcase_create("pace");
  tcase_set_timeout(tc, 0);
  tcase_add_test(tc, test_held_sink);
  tcase_add_test(tc, test_held_store);
  suite_add_tcase(s, tc);
  return m3s_check_run(s);
}
