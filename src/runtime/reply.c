/* Reference-counted reply slots; see include/m3s/reply.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "m3s/reply.h"
#include "m3s/xalloc.h"

struct m3s_reply {
  _Atomic(unsigned) refs;
  pthread_mutex_t lock;
  pthread_cond_t cond;   /* CLOCK_MONOTONIC, so wall-clock jumps do not matter */
  bool done;             /* under lock */
  m3s_msg_t *answer;     /* under lock; owned by the slot until taken */
};

m3s_reply_t *m3s_reply_new(void)
{
  m3s_reply_t *r = m3s_xcalloc(1, sizeof(*r));
  pthread_condattr_t ca;
  atomic_init(&r->refs, 1);
  pthread_mutex_init(&r->lock, NULL);
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&r->cond, &ca);
  pthread_condattr_destroy(&ca);
  return r;
}

m3s_reply_t *m3s_reply_ref(m3s_reply_t *r)
{
  /* Relaxed: the caller already holds a reference, so the slot is alive. */
  atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
  return r;
}

void m3s_reply_unref(m3s_reply_t *r)
{
  if(!r)
    return;
  /* acq_rel: release our uses of the slot to the thread that frees it; the
   * last owner acquires everyone else's before destroying. */
  if(atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
    return;
  m3s_msg_free(r->answer);
  pthread_cond_destroy(&r->cond);
  pthread_mutex_destroy(&r->lock);
  free(r);
}

bool m3s_reply_post(m3s_reply_t *r, m3s_msg_t *answer)
{
  pthread_mutex_lock(&r->lock);
  bool first = !r->done;
  if(first) {
    r->done = true;
    r->answer = answer;
    pthread_cond_broadcast(&r->cond);
  }
  pthread_mutex_unlock(&r->lock);
  if(!first)
    m3s_msg_free(answer);
  return first;
}

int m3s_reply_wait(m3s_reply_t *r, int timeout_ms, m3s_msg_t **answer)
{
  struct timespec until;
  int rc = 0;

  *answer = NULL;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if(until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&r->lock);
  while(!r->done && rc == 0) {
    if(timeout_ms < 0)
      rc = pthread_cond_wait(&r->cond, &r->lock);
    else
      rc = pthread_cond_timedwait(&r->cond, &r->lock, &until);
  }
  if(r->done) {
    *answer = r->answer;
    r->answer = NULL;
    rc = *answer ? 0 : -ECANCELED;
  }
  else {
    rc = -ETIMEDOUT;
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
}

void m3s_reply_finish(m3s_reply_t *r, m3s_msg_t *answer)
{
  if(!r) {
    m3s_msg_free(answer);
    return;
  }
  m3s_reply_post(r, answer);
  m3s_reply_unref(r);
}
