/* Actor runtime: request/reply (answer, timeout with a late answer, dropped
 * request, soft limit), timers, start/stop order, draining on stop, start
 * failure, and a conservation-checked ping mesh through real actor threads.
 *
 * No test depends on the machine being fast: waits are for conditions, with
 * deadlines far beyond what a loaded machine needs. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/reply.h"
#include "check_main.h"

#define LONG_WAIT_MS 60000

enum {
  T_PING = M3S_MSG_USER, /* reply arg+1 */
  T_IGNORE,              /* handled without an answer */
  T_GATE,                /* block until the test writes the gate pipe */
  T_COUNT,               /* reply with the number of ticks seen */
  T_TICK,                /* timer tick */
  T_ARM_ONESHOT,         /* arm a one-shot timer of arg ms */
  T_ARM_PERIODIC,        /* arm a periodic timer of arg ms, cancelled after 3 ticks */
  T_HOP,                 /* mesh: forward with ttl-1 */
  T_NOTE,                /* counts handled messages with a drop-counted payload */
};

/* ---- a test actor -------------------------------------------------------- */

typedef struct test_actor {
  m3s_actor_t base;
  int gate_fd;        /* read end of the gate pipe */
  int ticks;
  uint64_t periodic;
  int handled;
  int start_rc;
  const char *label;  /* for the start/stop journal */
  struct test_actor **peers;
  int npeers;
  unsigned seed;
} test_actor_t;

static pthread_mutex_t journal_lock = PTHREAD_MUTEX_INITIALIZER;
static char journal[256];
static _Atomic int drops;
static _Atomic int mesh_done;
static _Atomic long mesh_handled;

static void note(const char *what, const char *label)
{
  pthread_mutex_lock(&journal_lock);
  strcat(journal, what);
  strcat(journal, label);
  strcat(journal, " ");
  pthread_mutex_unlock(&journal_lock);
}

/* Check's assertions long-jump in the test's thread; actor threads abort. */
#define must(cond) \
  do { \
    if(!(cond)) { \
      fprintf(stderr, "%s:%d: %s failed in an actor thread\n", __FILE__, __LINE__, #cond); \
      abort(); \
    } \
  } while(0)

static void count_drop(void *p)
{
  atomic_fetch_add(&drops, 1);
  free(p);
}

static int t_start(m3s_actor_t *self)
{
  test_actor_t *t = (test_actor_t *)self;
  if(t->label)
    note("start:", t->label);
  return t->start_rc;
}

static void t_stop(m3s_actor_t *self)
{
  test_actor_t *t = (test_actor_t *)self;
  if(t->label)
    note("stop:", t->label);
  atomic_fetch_add(&mesh_handled, t->handled);
}

static void t_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  test_actor_t *t = (test_actor_t *)self;
  char c;
  t->handled++;
  switch(m->type) {
  case T_PING:
    m3s_msg_reply(m, m3s_msg_new(T_PING, m->arg + 1, NULL, NULL));
    break;
  case T_GATE:
    must(read(t->gate_fd, &c, 1) == 1);
    m3s_msg_reply(m, m3s_msg_new(T_PING, 0, NULL, NULL));
    break;
  case T_COUNT:
    m3s_msg_reply(m, m3s_msg_new(T_COUNT, t->ticks, NULL, NULL));
    break;
  case T_TICK:
    t->ticks++;
    if(t->periodic && m->arg == (int64_t)t->periodic && t->ticks == 3)
      must(m3s_timer_cancel(self, t->periodic));
    break;
  case T_ARM_ONESHOT:
    m3s_timer_start(self, T_TICK, m->arg, 0);
    m3s_msg_reply(m, m3s_msg_new(T_PING, 0, NULL, NULL));
    break;
  case T_ARM_PERIODIC:
    t->periodic = m3s_timer_start(self, T_TICK, m->arg, m->arg);
    m3s_msg_reply(m, m3s_msg_new(T_PING, 0, NULL, NULL));
    break;
  case T_HOP:
    if(m->arg == 0) {
      atomic_fetch_add(&mesh_done, 1);
    }
    else {
      test_actor_t *to = t->peers[rand_r(&t->seed) % (unsigned)t->npeers];
      m3s_send(&to->base, m3s_msg_new(T_HOP, m->arg - 1, NULL, NULL));
    }
    break;
  default: /* T_IGNORE, T_NOTE: nothing; the runtime retires what they hold */
    break;
  }
}

static const m3s_actor_ops_t test_ops = {
  .name = "test", .size = sizeof(test_actor_t), .start = t_start,
  .handle = t_handle, .stop = t_stop, .mailbox_limit = 4,
};

static int gate[2];

static test_actor_t *one_actor(m3s_system_t **sys)
{
  *sys = m3s_system_new(NULL);
  test_actor_t *t = (test_actor_t *)m3s_system_add(*sys, &test_ops);
  ck_assert_ptr_nonnull(t);
  ck_assert_int_eq(pipe(gate), 0);
  t->gate_fd = gate[0];
  ck_assert_int_eq(m3s_system_start(*sys), 0);
  return t;
}

static void done(m3s_system_t *sys)
{
  m3s_system_stop(sys);
  m3s_system_free(sys);
  close(gate[0]);
  close(gate[1]);
}

static int64_t call_arg(m3s_actor_t *a, uint32_t type, int64_t arg)
{
  m3s_msg_t *ans = NULL;
  ck_assert_int_eq(m3s_call(a, m3s_msg_new(type, arg, NULL, NULL), LONG_WAIT_MS, &ans), 0);
  int64_t v = ans->arg;
  m3s_msg_free(ans);
  return v;
}

/* ---- request / reply ---------------------------------------------------- */

START_TEST(call_gets_answer)
{
  m3s_system_t *sys;
  test_actor_t *t = one_actor(&sys);
  for(int i = 0; i < 100; i++)
    ck_assert_int_eq(call_arg(&t->base, T_PING, i), i + 1);
  done(sys);
}
END_TEST

START_TEST(call_times_out_and_late_answer_is_safe)
{
  m3s_system_t *sys;
  m3s_msg_t *ans = (m3s_msg_t *)1;
  test_actor_t *t = one_actor(&sys);
  /* The actor blocks on the gate, so the answer cannot come in time. */
  ck_assert_int_eq(m3s_call(&t->base, m3s_msg_new(T_GATE, 0, NULL, NULL), 50, &ans),
                   -ETIMEDOUT);
  ck_assert_ptr_null(ans);
  /* Now let it answer into the slot nobody waits on any more. */
  ck_assert_int_eq(write(gate[1], "x", 1), 1);
  ck_assert_int_eq(call_arg(&t->base, T_PING, 41), 42);
  done(sys); /* ASan: no use-after-free, no leaked slot or answer */
}
END_TEST

START_TEST(ignored_request_is_reported_at_once)
{
  m3s_system_t *sys;
  m3s_msg_t *ans = NULL;
  test_actor_t *t = one_actor(&sys);
  ck_assert_int_eq(m3s_call(&t->base, m3s_msg_new(T_IGNORE, 0, NULL, NULL), LONG_WAIT_MS, &ans),
                   -ECANCELED);
  ck_assert_ptr_null(ans);
  done(sys);
}
END_TEST

START_TEST(call_refused_over_soft_limit)
{
  m3s_system_t *sys;
  m3s_msg_t *ans = NULL;
  test_actor_t *t = one_actor(&sys);
  atomic_store(&drops, 0);
  m3s_send(&t->base, m3s_msg_new(T_GATE, 0, NULL, NULL));
  for(int i = 0; i < 4; i++)
    m3s_send(&t->base, m3s_msg_new(T_NOTE, 0, malloc(4), count_drop));
  /* At least 4 are queued behind the gate: over the limit of 4. */
  ck_assert_int_eq(m3s_call(&t->base, m3s_msg_new(T_PING, 0, malloc(4), count_drop),
                            LONG_WAIT_MS, &ans), -EAGAIN);
  ck_assert_int_eq(atomic_load(&drops), 1); /* the refused request's payload */
  ck_assert_int_eq(write(gate[1], "x", 1), 1);
  /* Once the actor has worked through its queue, calls are accepted again. */
  for(int waited = 0; m3s_actor_depth(&t->base) >= 4 && waited < LONG_WAIT_MS; waited += 5)
    m3s_check_sleep_ms(5);
  ck_assert_int_eq(call_arg(&t->base, T_PING, 1), 2);
  ck_assert_int_eq(atomic_load(&drops), 5); /* handled notes retired too */
  done(sys);
}
END_TEST

/* ---- timers ------------------------------------------------------------- */

static int wait_ticks(m3s_actor_t *a, int want)
{
  int64_t got = 0;
  for(int waited = 0; waited < LONG_WAIT_MS; waited += 5) {
    got = call_arg(a, T_COUNT, 0);
    if(got >= want)
      break;
    m3s_check_sleep_ms(5);
  }
  return (int)got;
}

START_TEST(oneshot_timer_fires_once)
{
  m3s_system_t *sys;
  test_actor_t *t = one_actor(&sys);
  call_arg(&t->base, T_ARM_ONESHOT, 20);
  ck_assert_int_eq(wait_ticks(&t->base, 1), 1);
  m3s_check_sleep_ms(100);
  ck_assert_int_eq(call_arg(&t->base, T_COUNT, 0), 1);
  done(sys);
}
END_TEST

START_TEST(periodic_timer_repeats_until_cancelled)
{
  m3s_system_t *sys;
  test_actor_t *t = one_actor(&sys);
  call_arg(&t->base, T_ARM_PERIODIC, 5);
  /* The handler cancels it on the third tick: the count stops at 3. */
  ck_assert_int_eq(wait_ticks(&t->base, 3), 3);
  m3s_check_sleep_ms(100);
  ck_assert_int_eq(call_arg(&t->base, T_COUNT, 0), 3);
  done(sys);
}
END_TEST

START_TEST(timer_does_not_delay_mail)
{
  m3s_system_t *sys;
  test_actor_t *t = one_actor(&sys);
  /* A timer far in the future must not keep the actor from its mailbox. */
  call_arg(&t->base, T_ARM_ONESHOT, 3600 * 1000);
  ck_assert_int_eq(call_arg(&t->base, T_PING, 9), 10);
  ck_assert_int_eq(call_arg(&t->base, T_COUNT, 0), 0);
  done(sys);
}
END_TEST

/* ---- lifecycle ---------------------------------------------------------- */

static m3s_system_t *three(int fail_second)
{
  static const char *labels[] = { "A", "B", "C" };
  m3s_system_t *sys = m3s_system_new(NULL);
  journal[0] = '\0';
  for(int i = 0; i < 3; i++) {
    test_actor_t *t = (test_actor_t *)m3s_system_add(sys, &test_ops);
    t->label = labels[i];
    t->gate_fd = -1;
    if(i == 1 && fail_second)
      t->start_rc = -EIO;
  }
  return sys;
}

START_TEST(start_in_order_stop_in_reverse)
{
  m3s_system_t *sys = three(0);
  ck_assert_int_eq(m3s_system_start(sys), 0);
  m3s_system_stop(sys);
  m3s_system_free(sys);
  ck_assert_str_eq(journal, "start:A start:B start:C stop:C stop:B stop:A ");
}
END_TEST

START_TEST(failed_start_stops_the_started)
{
  m3s_system_t *sys = three(1);
  ck_assert_int_eq(m3s_system_start(sys), -EIO);
  m3s_system_free(sys);
  /* B's own stop hook runs after its failed start; C never starts. */
  ck_assert_str_eq(journal, "start:A start:B stop:B stop:A ");
}
END_TEST

START_TEST(stop_drains_queue_and_drops_later_mail)
{
  m3s_system_t *sys = m3s_system_new(NULL);
  test_actor_t *t = (test_actor_t *)m3s_system_add(sys, &test_ops);
  ck_assert_int_eq(m3s_system_start(sys), 0);
  atomic_store(&mesh_handled, 0);
  atomic_store(&drops, 0);
  for(int i = 0; i < 1000; i++)
    m3s_send(&t->base, m3s_msg_new(T_NOTE, i, malloc(8), count_drop));
  m3s_system_stop(sys);
  /* Everything sent before the stop was handled (and its payload retired). */
  ck_assert_int_eq(atomic_load(&mesh_handled), 1000);
  ck_assert_int_eq(atomic_load(&drops), 1000);
  /* Mail for a stopped actor is dropped through its hook when freed. */
  for(int i = 0; i < 10; i++)
    m3s_send(&t->base, m3s_msg_new(T_NOTE, i, malloc(8), count_drop));
  m3s_system_free(sys);
  ck_assert_int_eq(atomic_load(&drops), 1010);
}
END_TEST

/* ---- conservation through real threads ---------------------------------- */

START_TEST(ping_mesh_conserves_messages)
{
  enum { ACTORS = 6, CHAINS = 400, TTL = 200 };
  unsigned seed = (unsigned)time(NULL);
  const char *env = getenv("M3S_TEST_SEED");
  test_actor_t *mesh[ACTORS];
  m3s_system_t *sys = m3s_system_new(NULL);

  if(env)
    seed = (unsigned)strtoul(env, NULL, 10);
  fprintf(stderr, "ping mesh seed %u (replay with M3S_TEST_SEED=%u)\n", seed, seed);
  atomic_store(&mesh_done, 0);
  atomic_store(&mesh_handled, 0);
  for(int i = 0; i < ACTORS; i++) {
    mesh[i] = (test_actor_t *)m3s_system_add(sys, &test_ops);
    mesh[i]->peers = mesh;
    mesh[i]->npeers = ACTORS;
    mesh[i]->seed = seed + (unsigned)i;
  }
  ck_assert_int_eq(m3s_system_start(sys), 0);
  for(int c = 0; c < CHAINS; c++)
    m3s_send(&mesh[c % ACTORS]->base, m3s_msg_new(T_HOP, TTL, NULL, NULL));
  for(int waited = 0; atomic_load(&mesh_done) < CHAINS && waited < 10 * LONG_WAIT_MS; waited += 10)
    m3s_check_sleep_ms(10);
  ck_assert_int_eq(atomic_load(&mesh_done), CHAINS);
  m3s_system_stop(sys);
  m3s_system_free(sys);
  /* Exactly CHAINS * (TTL + 1) handled: nothing lost, nothing duplicated. */
  ck_assert_int_eq(atomic_load(&mesh_handled), (long)CHAINS * (TTL + 1));
}
END_TEST

int main(void)
{
  Suite *s = suite_create("runtime");
  TCase *rr = tcase_create("request-reply");
  tcase_add_test(rr, call_gets_answer);
  tcase_add_test(rr, call_times_out_and_late_answer_is_safe);
  tcase_add_test(rr, ignored_request_is_reported_at_once);
  tcase_add_test(rr, call_refused_over_soft_limit);
  suite_add_tcase(s, rr);
  TCase *tm = tcase_create("timers");
  tcase_add_test(tm, oneshot_timer_fires_once);
  tcase_add_test(tm, periodic_timer_repeats_until_cancelled);
  tcase_add_test(tm, timer_does_not_delay_mail);
  suite_add_tcase(s, tm);
  TCase *lc = tcase_create("lifecycle");
  tcase_add_test(lc, start_in_order_stop_in_reverse);
  tcase_add_test(lc, failed_start_stops_the_started);
  tcase_add_test(lc, stop_drains_queue_and_drops_later_mail);
  tcase_add_test(lc, ping_mesh_conserves_messages);
  suite_add_tcase(s, lc);
  return m3s_check_run(s);
}
