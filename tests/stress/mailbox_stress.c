/* Mailbox stress test (style.md §2.8 item 2): P producer threads push N
 * messages each, tagged (producer, sequence), into one mailbox; one consumer
 * drains it with the actors' wake protocol (eventfd + try_idle + poll).
 *
 *   mailbox_stress [producers] [messages-per-producer] [rounds]
 *
 * Without a producer count the rounds cycle through 1, 2, 4 and 8 producers.
 * M3S_STRESS_SCALE multiplies the default message count when none is given
 * (0.1 for a quick run, 20 for a soak); M3S_STRESS_SEED repeats a run's
 * random pauses (not its thread interleaving, which no seed controls).
 *
 * Each round checks exactly:
 *  - per-producer FIFO: every producer's sequence arrives as 0, 1, 2, ...;
 *  - conservation: P*N messages arrive, every payload is dropped once, and
 *    the depth metric is back to 0;
 *  - the wake invariant (mailbox.h invariant 2): pushes that returned true ==
 *    try_idle calls that returned IDLED + 1 for the initial IDLE state, with
 *    the consumer stopping right after the last message, i.e. before it could
 *    idle again;
 *  - no lost wake-up: every push that returned true wrote the eventfd, the
 *    consumer read back exactly that many wakes, and it never slept through a
 *    queued message.
 * Then the same traffic goes through the real actor loop (m3s_send into an
 * actor whose handle() checks the order), where sent == handled exactly.
 *
 * Producers sleep now and then and the consumer is sometimes slow, so the
 * consumer both falls behind (long queues, BUSY from try_idle) and catches up
 * (idles and sleeps) at random. On top of that, every QUIET_EVERY messages
 * all producers stop together until the consumer has gone idle, then resume
 * at once and race for the IDLE token; so each round idles at least that
 * often whatever the speed of the build (ThreadSanitizer slows the consumer
 * most), and the run fails if the sleep path was not exercised.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/mailbox.h"
#include "m3s/msg.h"

#define MAX_PRODUCERS 64
#define DEFAULT_MESSAGES 200000u
#define DEFAULT_ROUNDS 4u
/* A wake is written right after the push that earns it, so a consumer that
 * sleeps this long with mail queued and its eventfd still silent has lost a
 * wake-up, not merely lost the CPU. */
#define WAKE_TIMEOUT_MS 30000 /* far beyond any scheduling delay: only a lost wake-up takes this long */
#define ACTOR_STALL_MS 60000
/* Messages per producer between two quiet points. */
#define QUIET_EVERY 1000u

enum { MSG_SEQ = M3S_MSG_USER };

/* ---- helpers ------------------------------------------------------------- */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
  static atomic_flag failing = ATOMIC_FLAG_INIT;
  va_list ap;
  /* One report: a broken wake-up often trips several threads at once. */
  if(atomic_flag_test_and_set(&failing))
    for(;;)
      pause();
  fflush(stdout);
  fprintf(stderr, "mailbox_stress: FAIL: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, "\n");
  /* _exit: other threads may still hold the mailbox; a clean exit would only
   * add leak reports that bury the message above. */
  _exit(1);
}

static uint64_t splitmix64(uint64_t *s)
{
  uint64_t z = (*s += 0x9e3779b97f4a7c15u);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
  return z ^ (z >> 31);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A short stretch of work the compiler cannot remove, to make the consumer
 * fall behind for a moment. */
static void spin(uint32_t iterations)
{
  volatile uint32_t x = 0;
  for(uint32_t i = 0; i < iterations; i++)
    x = x + i;
}

/* Producers pause now and then so that the consumer drains the mailbox and
 * goes idle. The more producers, the more often each one pauses (1 in
 * 1024/P messages, for up to 200 us), so that now and then all of them are
 * quiet at once and even the 8-producer rounds idle many times. */
static void producer_jitter(uint64_t *rng, uint32_t mask)
{
  uint64_t r = splitmix64(rng);
  if((r & mask) == 0)
    usleep((useconds_t)(1 + (r >> 32) % 200));
  else if((r & mask) == 1)
    sched_yield();
}

static uint32_t pause_mask(unsigned producers)
{
  uint32_t period = 1024;
  while(period > 64 && producers > 1) {
    period /= 2;
    producers /= 2;
  }
  return period - 1;
}

static void consumer_jitter(uint64_t *rng)
{
  uint64_t r = splitmix64(rng);
  if((r & 127) == 0)
    spin((uint32_t)((r >> 32) % 4096));
}

/* Quiet points, shared by both variants. The producers meet at `stop`; the
 * last to arrive waits until the consumer has idled, which it must do now
 * that nobody pushes (only its CAS sets IDLE, and only on an empty mailbox),
 * lets it sleep a moment, and then everybody leaves `resume` together. */
typedef struct quiet {
  pthread_barrier_t stop, resume;
  m3s_mailbox_t *mb;
} quiet_t;

static void quiet_init(quiet_t *q, m3s_mailbox_t *mb, unsigned producers)
{
  pthread_barrier_init(&q->stop, NULL, producers);
  pthread_barrier_init(&q->resume, NULL, producers);
  q->mb = mb;
}

static void quiet_destroy(quiet_t *q)
{
  pthread_barrier_destroy(&q->stop);
  pthread_barrier_destroy(&q->resume);
}

static bool quiet_due(uint32_t seq)
{
  return seq > 0 && seq % QUIET_EVERY == 0;
}

static void quiet_point(quiet_t *q, uint64_t *rng)
{
  if(pthread_barrier_wait(&q->stop) == PTHREAD_BARRIER_SERIAL_THREAD) {
    /* Twice the consumer's own deadline, so that a lost wake-up is reported
     * as such by the consumer first. */
    double deadline = now_s() + 2 * WAKE_TIMEOUT_MS / 1000.0;
    /* Peeks at the IDLE tag (bit 0 of `in`, see mailbox.h). Acquire is not
     * needed for the test's logic; it just keeps the read an honest atomic. */
    while(!(atomic_load_explicit(&q->mb->in, memory_order_acquire) & 1)) {
      if(now_s() > deadline)
        fail("the consumer did not idle within %d ms of the producers going quiet "
             "(depth %zu)", 2 * WAKE_TIMEOUT_MS, m3s_mailbox_depth(q->mb));
      usleep(20);
    }
    usleep((useconds_t)(splitmix64(rng) % 100));
  }
  pthread_barrier_wait(&q->resume);
}

static int64_t encode(uint32_t producer, uint32_t seq)
{
  return (int64_t)(((uint64_t)producer << 32) | seq);
}

/* ---- payloads: published through the mailbox, dropped exactly once ------ */

typedef struct payload {
  uint32_t producer;
  uint32_t seq;
  uint64_t check;
} payload_t;

/* Drops happen on the consumer thread (pop) and on the main thread (destroy,
 * system_free), one after the other; atomic so the count needs no argument. */
static _Atomic(uint64_t) drops;

static uint64_t payload_check(uint32_t producer, uint32_t seq)
{
  return ((uint64_t)producer * 0x9e3779b97f4a7c15u) ^ ((uint64_t)seq * 0xc2b2ae3d27d4eb4fu);
}

static void payload_drop(void *p)
{
  /* Relaxed: read only after every thread that drops has been joined. */
  atomic_fetch_add_explicit(&drops, 1, memory_order_relaxed);
  free(p);
}

static m3s_msg_t *seq_msg(uint32_t producer, uint32_t seq)
{
  payload_t *p = malloc(sizeof(*p));
  if(!p)
    fail("out of memory");
  /* Plain stores: the mailbox's release link / acquire pop must publish them
   * (invariant 3); ThreadSanitizer reports a race if it does not. */
  p->producer = producer;
  p->seq = seq;
  p->check = payload_check(producer, seq);
  return m3s_msg_new(MSG_SEQ, encode(producer, seq), p, payload_drop);
}

/* Checks one message against the per-producer expected sequence. */
static void check_msg(const char *where, const m3s_msg_t *m, uint32_t *next_seq,
                      unsigned producers)
{
  if(m->type != MSG_SEQ)
    fail("%s: message of type %" PRIu32 ", expected %d", where, m->type, MSG_SEQ);
  uint32_t id = (uint32_t)((uint64_t)m->arg >> 32);
  uint32_t seq = (uint32_t)((uint64_t)m->arg & 0xffffffffu);
  if(id >= producers)
    fail("%s: message from producer %" PRIu32 " of %u", where, id, producers);
  if(seq != next_seq[id])
    fail("%s: producer %" PRIu32 " FIFO broken: got seq %" PRIu32 ", expected %" PRIu32,
         where, id, seq, next_seq[id]);
  const payload_t *p = m->payload;
  if(!p || p->producer != id || p->seq != seq || p->check != payload_check(id, seq))
    fail("%s: producer %" PRIu32 " seq %" PRIu32 ": payload not published intact",
         where, id, seq);
  next_seq[id]++;
}

/* ---- variant 1: the bare mailbox with the actors' wake protocol ---------- */

typedef struct round round_t;

typedef struct producer {
  pthread_t thread;
  round_t *r;
  uint32_t id;
  uint64_t rng;
  uint64_t woke;        /* pushes that returned true */
  uint64_t wake_writes; /* eventfd writes that succeeded */
} producer_t;

struct round {
  m3s_mailbox_t mb;
  int efd;
  unsigned producers;
  uint32_t per_producer;
  pthread_barrier_t go;
  quiet_t quiet;
  /* consumer thread only until it is joined: */
  uint64_t rng;
  uint64_t received;
  uint64_t idled, was_idle, busy, sleeps, wakes_read;
  uint32_t next_seq[MAX_PRODUCERS];
};

static void *producer_main(void *arg)
{
  producer_t *p = arg;
  round_t *r = p->r;
  uint32_t mask = pause_mask(r->producers);
  pthread_barrier_wait(&r->go);
  for(uint32_t seq = 0; seq < r->per_producer; seq++) {
    if(quiet_due(seq))
      quiet_point(&r->quiet, &p->rng);
    if(m3s_mailbox_push(&r->mb, seq_msg(p->id, seq))) {
      /* This push found the mailbox IDLE: we alone must wake the consumer,
       * exactly as m3s_send does. */
      uint64_t one = 1;
      p->woke++;
      if(write(r->efd, &one, sizeof(one)) == (ssize_t)sizeof(one))
        p->wake_writes++;
    }
    producer_jitter(&p->rng, mask);
  }
  return NULL;
}

static uint64_t drain_eventfd(int efd)
{
  uint64_t v = 0;
  if(read(efd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
    if(errno != EAGAIN)
      fail("read(eventfd): %s", strerror(errno));
    return 0;
  }
  return v;
}

/* Sleeps on the eventfd the way the actor loop does, but with a deadline so
 * that a lost wake-up fails the test instead of hanging it. */
static void consumer_sleep(round_t *r)
{
  struct pollfd pfd = { .fd = r->efd, .events = POLLIN };
  r->sleeps++;
  int rc = poll(&pfd, 1, WAKE_TIMEOUT_MS);
  if(rc == -1 && errno != EINTR)
    fail("poll(eventfd): %s", strerror(errno));
  if(rc == 0) {
    /* Silent for WAKE_TIMEOUT_MS. If mail is waiting all the same, the push
     * that found the mailbox IDLE never wrote the eventfd, or no push found
     * it IDLE although we had idled. */
    if(m3s_mailbox_depth(&r->mb) > 0 && poll(&pfd, 1, 0) == 0)
      fail("lost wake-up: consumer slept %d ms on its eventfd with %zu message(s) "
           "queued (received %" PRIu64 " of %" PRIu64 ")", WAKE_TIMEOUT_MS,
           m3s_mailbox_depth(&r->mb), r->received,
           (uint64_t)r->producers * r->per_producer);
  }
  r->wakes_read += drain_eventfd(r->efd);
}

static void *consumer_main(void *arg)
{
  round_t *r = arg;
  uint64_t total = (uint64_t)r->producers * r->per_producer;
  pthread_barrier_wait(&r->go);
  while(r->received < total) {
    m3s_msg_t *m;
    uint64_t n = 0;
    while(r->received < total && (m = m3s_mailbox_pop(&r->mb))) {
      check_msg("mailbox", m, r->next_seq, r->producers);
      r->received++;
      n++;
      consumer_jitter(&r->rng);
    }
    /* Stop right after the last message, before any try_idle, so that the
     * final state is known: not IDLE (the last push cleared it or found it
     * clear, and we cannot have idled since: idling needs in == out). */
    if(r->received == total)
      break;
    switch(m3s_mailbox_try_idle(&r->mb)) {
    case M3S_MB_BUSY:
      /* in != out: a producer exchanged after our last pop, or has
       * exchanged but not linked yet. */
      r->busy++;
      if(n == 0)
        sched_yield();
      continue;
    case M3S_MB_IDLED:
      r->idled++;
      break;
    case M3S_MB_WAS_IDLE:
      /* The initial IDLE state, or a wake-up that found nothing new. */
      r->was_idle++;
      break;
    }
    consumer_sleep(r);
  }
  return NULL;
}

typedef struct totals {
  uint64_t messages, woke, idled, was_idle, busy, sleeps;
  uint64_t actor_messages;
} totals_t;

static void run_mailbox_round(unsigned round_no, unsigned producers, uint32_t per_producer,
                              uint64_t seed, totals_t *t)
{
  round_t *r = calloc(1, sizeof(*r));
  producer_t *ps = calloc(producers, sizeof(*ps));
  pthread_t consumer;
  uint64_t total = (uint64_t)producers * per_producer;
  uint64_t woke = 0, wake_writes = 0;
  double t0 = now_s();

  if(!r || !ps)
    fail("out of memory");
  m3s_mailbox_init(&r->mb);
  r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if(r->efd == -1)
    fail("eventfd: %s", strerror(errno));
  r->producers = producers;
  r->per_producer = per_producer;
  r->rng = seed ^ 0xc0ffee;
  /* Producers plus the consumer: the producers start together, to collide on
   * `in` from the first message. */
  pthread_barrier_init(&r->go, NULL, producers + 1);
  quiet_init(&r->quiet, &r->mb, producers);
  atomic_store_explicit(&drops, 0, memory_order_relaxed);

  if(pthread_create(&consumer, NULL, consumer_main, r) != 0)
    fail("pthread_create failed");
  for(unsigned i = 0; i < producers; i++) {
    ps[i].r = r;
    ps[i].id = i;
    ps[i].rng = seed + i + 1;
    if(pthread_create(&ps[i].thread, NULL, producer_main, &ps[i]) != 0)
      fail("pthread_create failed");
  }
  for(unsigned i = 0; i < producers; i++) {
    pthread_join(ps[i].thread, NULL);
    woke += ps[i].woke;
    wake_writes += ps[i].wake_writes;
  }
  pthread_join(consumer, NULL);

  /* From here the main thread is the mailbox's consumer (the join hands it
   * over) and no producer is left. */
  if(r->received != total)
    fail("round %u: received %" PRIu64 " messages, sent %" PRIu64, round_no, r->received, total);
  for(unsigned i = 0; i < producers; i++)
    if(r->next_seq[i] != per_producer)
      fail("round %u: producer %u delivered %" PRIu32 " of %" PRIu32, round_no, i,
           r->next_seq[i], per_producer);
  if(wake_writes != woke)
    fail("round %u: %" PRIu64 " pushes returned true but only %" PRIu64
         " wrote the eventfd", round_no, woke, wake_writes);
  uint64_t quiet_points = (per_producer - 1) / QUIET_EVERY;
  if(r->idled < quiet_points)
    fail("round %u: the consumer idled %" PRIu64 " times, fewer than the %" PRIu64
         " quiet points", round_no, r->idled, quiet_points);
  if(woke != r->idled + 1)
    fail("round %u: wake invariant broken: %" PRIu64 " pushes returned true, "
         "%" PRIu64 " try_idle returned IDLED (expected pushes == idled + 1)",
         round_no, woke, r->idled);
  if(atomic_load_explicit(&r->mb.in, memory_order_relaxed) & 1)
    fail("round %u: mailbox IDLE after the last message, before any try_idle", round_no);
  if(m3s_mailbox_depth(&r->mb) != 0)
    fail("round %u: depth is %zu after every message was popped", round_no,
         m3s_mailbox_depth(&r->mb));
  if(m3s_mailbox_pop(&r->mb))
    fail("round %u: pop found a message after the last one", round_no);
  /* Drained and no producer left: the mailbox must idle now, and the token
   * count then balances the other way (one IDLE set more than cleared). */
  m3s_idle_t last = m3s_mailbox_try_idle(&r->mb);
  if(last != M3S_MB_IDLED)
    fail("round %u: try_idle on the drained mailbox returned %d, expected IDLED",
         round_no, (int)last);
  /* Every wake written must be readable exactly once. */
  r->wakes_read += drain_eventfd(r->efd);
  if(r->wakes_read != woke)
    fail("round %u: consumer read %" PRIu64 " wakes from the eventfd, producers "
         "earned %" PRIu64, round_no, r->wakes_read, woke);
  m3s_mailbox_destroy(&r->mb);
  uint64_t dropped = atomic_load_explicit(&drops, memory_order_relaxed);
  if(dropped != total)
    fail("round %u: %" PRIu64 " payloads dropped, %" PRIu64 " sent", round_no, dropped, total);

  printf("round %u mailbox: %u x %" PRIu32 " = %" PRIu64 " msgs, %.2f s; "
         "pushes-true %" PRIu64 " = idled %" PRIu64 " + 1; busy %" PRIu64
         ", was-idle %" PRIu64 ", sleeps %" PRIu64 "\n",
         round_no, producers, per_producer, total, now_s() - t0, woke, r->idled,
         r->busy, r->was_idle, r->sleeps);
  t->messages += total;
  t->woke += woke;
  t->idled += r->idled;
  t->was_idle += r->was_idle;
  t->busy += r->busy;
  t->sleeps += r->sleeps;

  close(r->efd);
  pthread_barrier_destroy(&r->go);
  quiet_destroy(&r->quiet);
  free(ps);
  free(r);
}

/* ---- variant 2: the same traffic through the real actor loop ------------- */

typedef struct seq_actor {
  m3s_actor_t base;
  unsigned producers;        /* set before start, read-only afterwards */
  uint64_t rng;              /* actor thread only */
  uint32_t next_seq[MAX_PRODUCERS]; /* actor thread only */
  /* Written by the actor thread, watched by the main thread for stalls. */
  _Atomic(uint64_t) handled;
} seq_actor_t;

static void seq_actor_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  seq_actor_t *a = (seq_actor_t *)self;
  check_msg("actor", m, a->next_seq, a->producers);
  consumer_jitter(&a->rng);
  /* Release: the main thread's acquire load then sees next_seq up to here,
   * though it reads next_seq only after the join anyway. */
  atomic_store_explicit(&a->handled,
                        atomic_load_explicit(&a->handled, memory_order_relaxed) + 1,
                        memory_order_release);
}

static const m3s_actor_ops_t seq_actor_ops = {
  .name = "stress",
  .size = sizeof(seq_actor_t),
  .handle = seq_actor_handle,
};

typedef struct actor_producer {
  pthread_t thread;
  m3s_actor_t *to;
  pthread_barrier_t *go;
  quiet_t *quiet;
  uint32_t id, count, pause_mask;
  uint64_t rng;
} actor_producer_t;

static void *actor_producer_main(void *arg)
{
  actor_producer_t *p = arg;
  pthread_barrier_wait(p->go);
  for(uint32_t seq = 0; seq < p->count; seq++) {
    if(quiet_due(seq))
      quiet_point(p->quiet, &p->rng);
    m3s_send(p->to, seq_msg(p->id, seq));
    producer_jitter(&p->rng, p->pause_mask);
  }
  return NULL;
}

static void run_actor_round(unsigned round_no, unsigned producers, uint32_t per_producer,
                            uint64_t seed, totals_t *t)
{
  m3s_system_t *sys = m3s_system_new(NULL);
  actor_producer_t *ps = calloc(producers, sizeof(*ps));
  pthread_barrier_t go;
  quiet_t quiet;
  uint64_t sent = (uint64_t)producers * per_producer;
  double t0 = now_s();

  if(!ps)
    fail("out of memory");
  seq_actor_t *a = (seq_actor_t *)m3s_system_add(sys, &seq_actor_ops);
  if(!a)
    fail("m3s_system_add failed");
  a->producers = producers;
  a->rng = seed ^ 0xac7012;
  atomic_init(&a->handled, 0);
  atomic_store_explicit(&drops, 0, memory_order_relaxed);
  int rc = m3s_system_start(sys);
  if(rc != 0)
    fail("m3s_system_start: %s", strerror(-rc));

  pthread_barrier_init(&go, NULL, producers);
  quiet_init(&quiet, &a->base.mb, producers);
  for(unsigned i = 0; i < producers; i++) {
    ps[i].to = &a->base;
    ps[i].go = &go;
    ps[i].quiet = &quiet;
    ps[i].id = i;
    ps[i].count = per_producer;
    ps[i].pause_mask = pause_mask(producers);
    ps[i].rng = seed + 100 + i;
    if(pthread_create(&ps[i].thread, NULL, actor_producer_main, &ps[i]) != 0)
      fail("pthread_create failed");
  }
  for(unsigned i = 0; i < producers; i++)
    pthread_join(ps[i].thread, NULL);

  /* Every message is sent. An actor that slept through its wake-up would
   * never handle the rest, and m3s_system_stop would wait on it forever, so
   * watch the count with a deadline first. */
  double deadline = now_s() + ACTOR_STALL_MS / 1000.0;
  while(atomic_load_explicit(&a->handled, memory_order_acquire) < sent) {
    if(now_s() > deadline)
      fail("round %u: actor stalled at %" PRIu64 " of %" PRIu64 " messages for %d ms "
           "(lost wake-up?)", round_no,
           atomic_load_explicit(&a->handled, memory_order_acquire), sent, ACTOR_STALL_MS);
    usleep(1000);
  }
  m3s_system_stop(sys);

  /* The actor thread is joined: its state is ours to read. */
  uint64_t handled = atomic_load_explicit(&a->handled, memory_order_relaxed);
  if(handled != sent)
    fail("round %u: actor handled %" PRIu64 " messages, %" PRIu64 " sent", round_no,
         handled, sent);
  for(unsigned i = 0; i < producers; i++)
    if(a->next_seq[i] != per_producer)
      fail("round %u: actor got %" PRIu32 " of producer %u's %" PRIu32 " messages",
           round_no, a->next_seq[i], i, per_producer);
  if(m3s_actor_depth(&a->base) != 0)
    fail("round %u: actor depth is %zu after stop", round_no, m3s_actor_depth(&a->base));
  m3s_system_free(sys);
  uint64_t dropped = atomic_load_explicit(&drops, memory_order_relaxed);
  if(dropped != sent)
    fail("round %u: actor: %" PRIu64 " payloads dropped, %" PRIu64 " sent", round_no,
         dropped, sent);

  printf("round %u actor:   %u x %" PRIu32 " = %" PRIu64 " msgs, %.2f s; "
         "sent %" PRIu64 " = handled %" PRIu64 "\n",
         round_no, producers, per_producer, sent, now_s() - t0, sent, handled);
  t->actor_messages += handled;
  pthread_barrier_destroy(&go);
  quiet_destroy(&quiet);
  free(ps);
}

/* ---- main ---------------------------------------------------------------- */

static unsigned long parse_count(const char *s, const char *what, unsigned long max)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if(errno || end == s || *end || v == 0 || v > max) {
    fprintf(stderr, "mailbox_stress: bad %s '%s' (1..%lu)\n"
            "usage: mailbox_stress [producers] [messages-per-producer] [rounds]\n",
            what, s, max);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  static const unsigned cycle[] = { 1, 2, 4, 8 };
  unsigned fixed_producers = 0;
  uint32_t per_producer = DEFAULT_MESSAGES;
  unsigned rounds = DEFAULT_ROUNDS;
  double scale = 1.0;
  uint64_t seed;
  totals_t t = { 0 };

  setvbuf(stdout, NULL, _IOLBF, 0);
  if(argc > 4) {
    fprintf(stderr, "usage: mailbox_stress [producers] [messages-per-producer] [rounds]\n");
    return 2;
  }
  if(argc > 1)
    fixed_producers = (unsigned)parse_count(argv[1], "producer count", MAX_PRODUCERS);
  if(argc > 2) {
    per_producer = (uint32_t)parse_count(argv[2], "message count", UINT32_MAX);
  }
  else {
    const char *s = getenv("M3S_STRESS_SCALE");
    if(s && *s) {
      char *end;
      scale = strtod(s, &end);
      if(*end || !(scale > 0)) {
        fprintf(stderr, "mailbox_stress: bad M3S_STRESS_SCALE '%s'\n", s);
        return 2;
      }
    }
    double n = DEFAULT_MESSAGES * scale;
    per_producer = n < 1 ? 1 : n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
  }
  if(argc > 3)
    rounds = (unsigned)parse_count(argv[3], "round count", 1000000);
  const char *seed_env = getenv("M3S_STRESS_SEED");
  seed = seed_env && *seed_env ? strtoull(seed_env, NULL, 0)
                               : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
  printf("mailbox_stress: seed %" PRIu64 " (M3S_STRESS_SEED), %u round(s), "
         "%" PRIu32 " messages per producer\n", seed, rounds, per_producer);

  double t0 = now_s();
  for(unsigned i = 0; i < rounds; i++) {
    unsigned producers = fixed_producers ? fixed_producers
                                         : cycle[i % (sizeof(cycle) / sizeof(cycle[0]))];
    uint64_t round_seed = seed + (uint64_t)i * 1000;
    run_mailbox_round(i, producers, per_producer, round_seed, &t);
    run_actor_round(i, producers, per_producer, round_seed, &t);
  }

  /* The sleep/wake path is the point of the test: make sure the run really
   * went through it, a few hundred times for a default-sized run. */
  uint64_t min_idled = t.messages / 2000;
  if(min_idled > 300)
    min_idled = 300;
  if(min_idled < 1)
    min_idled = 1;
  if(t.idled < min_idled)
    fail("the consumer idled only %" PRIu64 " times over %" PRIu64 " messages "
         "(need %" PRIu64 "): the sleep/wake path was not exercised",
         t.idled, t.messages, min_idled);

  printf("mailbox_stress: OK: %u rounds, %.2f s; mailbox %" PRIu64 " msgs, "
         "pushes-true %" PRIu64 " = idled %" PRIu64 " + %u, busy %" PRIu64
         ", was-idle %" PRIu64 ", sleeps %" PRIu64 "; actor sent = handled = %" PRIu64 "\n",
         rounds, now_s() - t0, t.messages, t.woke, t.idled, rounds, t.busy, t.was_idle,
         t.sleeps, t.actor_messages);
  return 0;
}
