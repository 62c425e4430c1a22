/* The actor thread loop, sending, request/reply and per-actor timers.
 *
 * DESIGN. Each actor owns one thread. The thread is the mailbox's only
 * consumer and the only user of the actor's private state, including its
 * timers, so none of that needs a lock. Other threads touch an actor only
 * through m3s_send/m3s_call: a mailbox push and, when the push found the
 * mailbox IDLE, one write to the actor's eventfd.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/log.h"
#include "m3s/reply.h"
#include "m3s/xalloc.h"
#include "runtime_int.h"

struct m3s_timer {
  uint64_t id;
  uint32_t type;
  int64_t due_ms;     /* CLOCK_MONOTONIC */
  int64_t period_ms;  /* 0 = one-shot */
};

int64_t m3s_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(m3s_actor_t *a)
{
  uint64_t one = 1;
  /* An eventfd write only fails on counter overflow (EAGAIN), which still
   * leaves it readable, so the wake is not lost either way. */
  ssize_t w = write(a->wake_fd, &one, sizeof(one));
  (void)w;
}

void m3s_send(m3s_actor_t *to, m3s_msg_t *m)
{
  if(m3s_mailbox_push(&to->mb, m))
    wake(to);
}

int m3s_call(m3s_actor_t *to, m3s_msg_t *req, int timeout_ms, m3s_msg_t **answer)
{
  size_t limit = to->ops->mailbox_limit ? to->ops->mailbox_limit : M3S_MAILBOX_SOFT_LIMIT;
  *answer = NULL;
  if(m3s_actor_depth(to) >= limit) {
    m3s_msg_free(req);
    return -EAGAIN;
  }
  m3s_reply_t *slot = m3s_reply_new();
  req->reply = m3s_reply_ref(slot);
  m3s_send(to, req);
  int rc = m3s_reply_wait(slot, timeout_ms, answer);
  m3s_reply_unref(slot);
  return rc;
}

/* ---- timers (owner thread only) ---------------------------------------- */

uint64_t m3s_timer_start(m3s_actor_t *self, uint32_t type, int64_t delay_ms,
                         int64_t period_ms)
{
  if(self->ntimers == self->timers_cap) {
    self->timers_cap = self->timers_cap ? self->timers_cap * 2 : 8;
    self->timers = m3s_xrealloc(self->timers, self->timers_cap * sizeof(*self->timers));
  }
  m3s_timer_t *t = &self->timers[self->ntimers++];
  t->id = ++self->next_timer_id;
  t->type = type;
  t->due_ms = m3s_now_ms() + (delay_ms > 0 ? delay_ms : 0);
  t->period_ms = period_ms > 0 ? period_ms : 0;
  return t->id;
}

bool m3s_timer_cancel(m3s_actor_t *self, uint64_t id)
{
  for(size_t i = 0; i < self->ntimers; i++) {
    if(self->timers[i].id == id) {
      self->timers[i] = self->timers[--self->ntimers];
      return true;
    }
  }
  return false;
}

/* Milliseconds until the earliest timer, -1 when none is armed. */
static int next_timeout(const m3s_actor_t *a, int64_t now)
{
  int64_t best = -1;
  for(size_t i = 0; i < a->ntimers; i++) {
    int64_t d = a->timers[i].due_ms - now;
    if(d < 0)
      d = 0;
    if(best < 0 || d < best)
      best = d;
  }
  return best > INT32_MAX ? INT32_MAX : (int)best;
}

/* Delivers every timer that is due. A handler may start or cancel timers, so
 * each round looks the array up afresh rather than holding a pointer. */
static void fire_timers(m3s_actor_t *a)
{
  int64_t now = m3s_now_ms();
  for(;;) {
    size_t i;
    for(i = 0; i < a->ntimers; i++)
      if(a->timers[i].due_ms <= now)
        break;
    if(i == a->ntimers || a->stopping)
      return;
    m3s_timer_t t = a->timers[i];
    if(t.period_ms > 0) {
      /* Skip missed periods instead of firing a burst after a stall. */
      int64_t due = t.due_ms + t.period_ms;
      if(due <= now)
        due = now + t.period_ms;
      a->timers[i].due_ms = due;
    }
    else {
      a->timers[i] = a->timers[--a->ntimers];
    }
    /* A tick is handed straight to handle() and retired at once: it never
     * goes through the mailbox, but the handler sees the same rules. */
    m3s_msg_t *m = m3s_msg_new(t.type, (int64_t)t.id, NULL, NULL);
    a->ops->handle(a, m);
    m3s_msg_free(m);
  }
}

/* ---- the loop ----------------------------------------------------------- */

static void default_wait(m3s_actor_t *self, int wake_fd, int timeout_ms)
{
  struct pollfd p = { .fd = wake_fd, .events = POLLIN };
  int rc = poll(&p, 1, timeout_ms);
  (void)rc; /* EINTR or a timeout: the loop looks again either way */
}

static void drain_wake(m3s_actor_t *a)
{
  uint64_t v;
  ssize_t r = read(a->wake_fd, &v, sizeof(v)); /* non-blocking: EAGAIN if 0 */
  (void)r;
}

/* Handles up to one batch; returns how many messages were handled. */
static int run_batch(m3s_actor_t *a)
{
  int n = 0;
  m3s_msg_t *m;
  while(n < M3S_ACTOR_BATCH && (m = m3s_mailbox_pop(&a->mb))) {
    n++;
    if(m->type == M3S_MSG_STOP) {
      a->stopping = true;
      return n;
    }
    a->ops->handle(a, m);
    m3s__msg_clear(m); /* m stays the sentinel; what it held is retired now */
    if(a->stopping)
      return n;
  }
  return n;
}

void m3s__actor_loop(m3s_actor_t *a)
{
  void (*wait)(m3s_actor_t *, int, int) = a->ops->wait ? a->ops->wait : default_wait;
  while(!a->stopping) {
    int n = run_batch(a);
    if(a->stopping)
      break;
    fire_timers(a);
    if(n == M3S_ACTOR_BATCH)
      continue; /* more mail may be waiting: look again before sleeping */
    switch(m3s_mailbox_try_idle(&a->mb)) {
    case M3S_MB_BUSY:
      /* in != out: a producer has exchanged but maybe not linked yet. */
      if(n == 0)
        sched_yield();
      continue;
    case M3S_MB_IDLED:
    case M3S_MB_WAS_IDLE:
      break;
    }
    wait(a, a->wake_fd, next_timeout(a, m3s_now_ms()));
    drain_wake(a);
  }
}

m3s_actor_t *m3s__actor_new(m3s_system_t *sys, const m3s_actor_ops_t *ops,
                            const m3s_config_t *cfg)
{
  if(ops->size < sizeof(m3s_actor_t) || !ops->handle || !ops->name)
    return NULL;
  m3s_actor_t *a = m3s_xcalloc(1, ops->size);
  a->ops = ops;
  a->sys = sys;
  a->cfg = cfg;
  a->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if(a->wake_fd == -1) {
    free(a);
    return NULL;
  }
  m3s_mailbox_init(&a->mb);
  return a;
}

void m3s__actor_free(m3s_actor_t *a)
{
  m3s_mailbox_destroy(&a->mb);
  close(a->wake_fd);
  free(a->timers);
  free(a);
}
