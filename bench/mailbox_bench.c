/* Mailbox benchmark: messages per second from 1, 2 and 4 producer threads
 * into one consumer, for the lock-free mailbox and for a plain mutex+condvar
 * queue written below as the baseline.
 *
 *   mailbox_bench [messages-per-configuration] [runs]
 *
 * Both sides pay the same costs apart from the queue itself:
 *  - ours: producers allocate with m3s_msg_new, push, and write the
 *    consumer's eventfd when the push found the mailbox IDLE (m3s_send); the
 *    consumer runs the actor loop's protocol (batches of M3S_ACTOR_BATCH pops,
 *    try_idle, poll on the eventfd, drain it), and pop retires each message;
 *  - baseline: producers calloc a node of the same size, lock, append,
 *    signal if the consumer waits, unlock; the consumer locks, waits on the
 *    condvar while the queue is empty, takes one node, unlocks and frees it.
 * Each configuration runs `runs` times, alternating the two queues, and the
 * table reports the medians. The time is from the start barrier to the
 * consumer's last message.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
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

#define DEFAULT_MESSAGES 2000000ul
#define DEFAULT_RUNS 5ul
#define MAX_RUNS 101

enum { MSG_BENCH = M3S_MSG_USER };

static void die(const char *what)
{
  fprintf(stderr, "mailbox_bench: %s\n", what);
  exit(1);
}

static double now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One measurement: how long the consumer took and how often it slept. */
typedef struct result {
  double seconds;
  uint64_t sleeps;
} result_t;

/* ---- ours: the mailbox with the actor loop's wake protocol --------------- */

typedef struct ours {
  m3s_mailbox_t mb;
  int efd;
  uint64_t per_producer;
  uint64_t total;
  pthread_barrier_t go;
  /* consumer only until joined: */
  double t0, t1;
  uint64_t sum, sleeps;
} ours_t;

static void *ours_producer(void *arg)
{
  ours_t *o = arg;
  pthread_barrier_wait(&o->go);
  for(uint64_t i = 0; i < o->per_producer; i++) {
    /* What m3s_send does. */
    if(m3s_mailbox_push(&o->mb, m3s_msg_new(MSG_BENCH, (int64_t)i, NULL, NULL))) {
      uint64_t one = 1;
      ssize_t w = write(o->efd, &one, sizeof(one));
      (void)w; /* only fails on counter overflow, which still wakes */
    }
  }
  return NULL;
}

static void *ours_consumer(void *arg)
{
  ours_t *o = arg;
  uint64_t received = 0;
  pthread_barrier_wait(&o->go);
  o->t0 = now_s();
  /* The shape of m3s__actor_loop, minus timers and STOP. */
  while(received < o->total) {
    int n = 0;
    m3s_msg_t *m;
    while(n < M3S_ACTOR_BATCH && (m = m3s_mailbox_pop(&o->mb))) {
      o->sum += (uint64_t)m->arg;
      n++;
    }
    received += (uint64_t)n;
    if(received == o->total || n == M3S_ACTOR_BATCH)
      continue;
    if(m3s_mailbox_try_idle(&o->mb) == M3S_MB_BUSY) {
      if(n == 0)
        sched_yield();
      continue;
    }
    struct pollfd p = { .fd = o->efd, .events = POLLIN };
    if(poll(&p, 1, -1) == -1 && errno != EINTR)
      die("poll failed");
    uint64_t v;
    ssize_t r = read(o->efd, &v, sizeof(v));
    (void)r; /* EAGAIN when the wake was already drained */
    o->sleeps++;
  }
  o->t1 = now_s();
  return NULL;
}

static result_t run_ours(unsigned producers, uint64_t total)
{
  ours_t *o = calloc(1, sizeof(*o));
  pthread_t consumer, prod[4];
  if(!o)
    die("out of memory");
  m3s_mailbox_init(&o->mb);
  o->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if(o->efd == -1)
    die("eventfd failed");
  o->per_producer = total / producers;
  o->total = o->per_producer * producers;
  pthread_barrier_init(&o->go, NULL, producers + 1);
  if(pthread_create(&consumer, NULL, ours_consumer, o) != 0)
    die("pthread_create failed");
  for(unsigned i = 0; i < producers; i++)
    if(pthread_create(&prod[i], NULL, ours_producer, o) != 0)
      die("pthread_create failed");
  for(unsigned i = 0; i < producers; i++)
    pthread_join(prod[i], NULL);
  pthread_join(consumer, NULL);
  /* Every producer sends 0..n-1: a lost or duplicated message shows here. */
  if(o->sum != producers * (o->per_producer * (o->per_producer - 1) / 2))
    die("ours: checksum mismatch");
  result_t res = { o->t1 - o->t0, o->sleeps };
  m3s_mailbox_destroy(&o->mb);
  close(o->efd);
  pthread_barrier_destroy(&o->go);
  free(o);
  return res;
}

/* ---- baseline: intrusive list under a mutex, condvar for the consumer ---- */

/* Same size as m3s_msg_t, so both sides allocate the same amount. */
typedef struct node {
  struct node *next;
  uint32_t type, flags;
  int64_t arg;
  void *payload;
  void (*drop)(void *);
  void *reply;
} node_t;
_Static_assert(sizeof(node_t) == sizeof(m3s_msg_t), "baseline node size differs");

typedef struct lockq {
  pthread_mutex_t lock;
  pthread_cond_t nonempty;
  node_t *head, *tail;  /* under lock */
  bool waiting;         /* under lock: the consumer sleeps on nonempty */
  uint64_t per_producer;
  uint64_t total;
  pthread_barrier_t go;
  /* consumer only until joined: */
  double t0, t1;
  uint64_t sum, sleeps;
} lockq_t;

static void *lockq_producer(void *arg)
{
  lockq_t *q = arg;
  pthread_barrier_wait(&q->go);
  for(uint64_t i = 0; i < q->per_producer; i++) {
    node_t *n = calloc(1, sizeof(*n));
    if(!n)
      die("out of memory");
    n->type = MSG_BENCH;
    n->arg = (int64_t)i;
    pthread_mutex_lock(&q->lock);
    if(q->tail)
      q->tail->next = n;
    else
      q->head = n;
    q->tail = n;
    /* Signal only a sleeping consumer: the usual optimisation, and the one
     * that makes the baseline fair (no futex call on every message). */
    if(q->waiting)
      pthread_cond_signal(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
  }
  return NULL;
}

static void *lockq_consumer(void *arg)
{
  lockq_t *q = arg;
  pthread_barrier_wait(&q->go);
  q->t0 = now_s();
  for(uint64_t received = 0; received < q->total; received++) {
    pthread_mutex_lock(&q->lock);
    while(!q->head) {
      q->waiting = true;
      q->sleeps++;
      pthread_cond_wait(&q->nonempty, &q->lock);
      q->waiting = false;
    }
    node_t *n = q->head;
    q->head = n->next;
    if(!q->head)
      q->tail = NULL;
    pthread_mutex_unlock(&q->lock);
    q->sum += (uint64_t)n->arg;
    free(n);
  }
  q->t1 = now_s();
  return NULL;
}

static result_t run_lockq(unsigned producers, uint64_t total)
{
  lockq_t *q = calloc(1, sizeof(*q));
  pthread_t consumer, prod[4];
  if(!q)
    die("out of memory");
  pthread_mutex_init(&q->lock, NULL);
  pthread_cond_init(&q->nonempty, NULL);
  q->per_producer = total / producers;
  q->total = q->per_producer * producers;
  pthread_barrier_init(&q->go, NULL, producers + 1);
  if(pthread_create(&consumer, NULL, lockq_consumer, q) != 0)
    die("pthread_create failed");
  for(unsigned i = 0; i < producers; i++)
    if(pthread_create(&prod[i], NULL, lockq_producer, q) != 0)
      die("pthread_create failed");
  for(unsigned i = 0; i < producers; i++)
    pthread_join(prod[i], NULL);
  pthread_join(consumer, NULL);
  if(q->sum != producers * (q->per_producer * (q->per_producer - 1) / 2))
    die("baseline: checksum mismatch");
  result_t res = { q->t1 - q->t0, q->sleeps };
  pthread_barrier_destroy(&q->go);
  pthread_cond_destroy(&q->nonempty);
  pthread_mutex_destroy(&q->lock);
  free(q);
  return res;
}

/* ---- driver -------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static double median_d(double *v, size_t n)
{
  qsort(v, n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint64_t median_u64(uint64_t *v, size_t n)
{
  qsort(v, n, sizeof(*v), cmp_u64);
  return v[n / 2];
}

static unsigned long parse_arg(const char *s, const char *what, unsigned long max)
{
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if(errno || end == s || *end || v == 0 || v > max) {
    fprintf(stderr, "mailbox_bench: bad %s '%s' (1..%lu)\n"
            "usage: mailbox_bench [messages-per-configuration] [runs]\n", what, s, max);
    exit(2);
  }
  return v;
}

int main(int argc, char **argv)
{
  static const unsigned configs[] = { 1, 2, 4 };
  enum { NCONFIGS = sizeof(configs) / sizeof(configs[0]) };
  uint64_t total = DEFAULT_MESSAGES;
  size_t runs = DEFAULT_RUNS;
  double ratios[NCONFIGS];

  if(argc > 3) {
    fprintf(stderr, "usage: mailbox_bench [messages-per-configuration] [runs]\n");
    return 2;
  }
  if(argc > 1)
    total = parse_arg(argv[1], "message count", 1ul << 40);
  if(argc > 2)
    runs = parse_arg(argv[2], "run count", MAX_RUNS);
  if(total < 4)
    total = 4; /* at least one message per producer */

  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  printf("mailbox_bench: %" PRIu64 " messages per configuration, median of %zu runs, "
         "%ld CPU(s)\n\n", total, runs, cpus);
  /* "paired range": the lowest and highest ours/baseline ratio of runs done
   * back to back, to show how far apart single runs can be on this machine;
   * "sleeps": how often the consumer went to sleep (median), i.e. how much of
   * the wake path a configuration exercised. */
  printf("%-9s | %14s | %14s | %10s | %13s | %11s | %11s\n", "producers", "ours msg/s",
         "baseline msg/s", "ours/base", "paired range", "ours sleeps", "base sleeps");
  printf("----------+----------------+----------------+------------+---------------+"
         "-------------+------------\n");
  for(size_t c = 0; c < NCONFIGS; c++) {
    unsigned p = configs[c];
    double ours[MAX_RUNS], base[MAX_RUNS];
    uint64_t ours_sl[MAX_RUNS], base_sl[MAX_RUNS];
    uint64_t sent = total / p * p;
    double lo = 0, hi = 0;
    /* Alternate, so that a noisy neighbour or a frequency change hits both
     * sides alike rather than one configuration of one side. */
    for(size_t r = 0; r < runs; r++) {
      result_t o = run_ours(p, total);
      result_t b = run_lockq(p, total);
      ours[r] = (double)sent / o.seconds;
      base[r] = (double)sent / b.seconds;
      ours_sl[r] = o.sleeps;
      base_sl[r] = b.sleeps;
      double pr = ours[r] / base[r];
      if(r == 0 || pr < lo)
        lo = pr;
      if(r == 0 || pr > hi)
        hi = pr;
    }
    double om = median_d(ours, runs), bm = median_d(base, runs);
    ratios[c] = om / bm;
    printf("%-9u | %14.0f | %14.0f | %9.2fx | %5.2f - %5.2f | %11" PRIu64 " | %11" PRIu64 "\n",
           p, om, bm, ratios[c], lo, hi, median_u64(ours_sl, runs), median_u64(base_sl, runs));
  }
  double sorted[NCONFIGS];
  memcpy(sorted, ratios, sizeof(sorted));
  printf("\nmedian ratio ours/baseline over %d configurations: %.2fx; "
         "2 producers %.2fx, 4 producers %.2fx (target >= 2x: %s)\n",
         (int)NCONFIGS, median_d(sorted, NCONFIGS), ratios[1], ratios[2],
         ratios[1] >= 2 && ratios[2] >= 2 ? "met" : "NOT met");
  return 0;
}
