/* Lock-free MPSC mailbox. The protocol, the synchronisation table and the
 * invariants are in include/m3s/mailbox.h; each atomic below says which
 * operation it pairs with. */
#include <sched.h>
#include <stdlib.h>

#include "m3s/mailbox.h"

#define IDLE ((uintptr_t)1)

#ifdef M3S_DEBUG_YIELD
/* Test builds only: widen the window between the exchange and the link store,
 * where a consumer can see `in` moved but `next` still NULL. */
#include <stdint.h>
static _Thread_local uint32_t yield_seed = 0x9e3779b9u;
static void debug_yield(void)
{
  yield_seed ^= yield_seed << 13;
  yield_seed ^= yield_seed >> 17;
  yield_seed ^= yield_seed << 5;
  if((yield_seed & 7) == 0)
    sched_yield();
}
#else
#define debug_yield() ((void)0)
#endif

void m3s_mailbox_init(m3s_mailbox_t *mb)
{
  m3s_msg_t *sentinel = m3s_msg_new(M3S_MSG_NONE, 0, NULL, NULL);
  mb->out = sentinel;
  /* Plain initialisation: no other thread can see the mailbox yet; whoever
   * starts the consumer thread publishes it (pthread_create). */
  atomic_init(&mb->in, (uintptr_t)sentinel | IDLE);
  atomic_init(&mb->pushed, 0);
  atomic_init(&mb->popped, 0);
}

bool m3s_mailbox_push(m3s_mailbox_t *mb, m3s_msg_t *m)
{
  /* Relaxed: nobody can reach m until the release store below links it. */
  atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
  /* acq_rel: release publishes m->next = NULL (and, transitively through the
   * link store, the payload) to the next producer that exchanges after us;
   * acquire orders our link store after the previous producer's exchange. It
   * pairs with the consumer's CAS in try_idle: whichever comes first in `in`'s
   * modification order is seen by the other. */
  uintptr_t prev = atomic_exchange_explicit(&mb->in, (uintptr_t)m, memory_order_acq_rel);
  /* Relaxed: a metric (see m3s_mailbox_depth). */
  atomic_fetch_add_explicit(&mb->pushed, 1, memory_order_relaxed);
  debug_yield();
  m3s_msg_t *p = (m3s_msg_t *)(prev & ~IDLE);
  /* Release: pairs with the acquire load of out->next in pop; everything the
   * producer wrote into m happens-before the consumer reads it. */
  atomic_store_explicit(&p->next, m, memory_order_release);
  return (prev & IDLE) != 0;
}

m3s_msg_t *m3s_mailbox_pop(m3s_mailbox_t *mb)
{
  m3s_msg_t *old = mb->out;
  /* Acquire: pairs with the release link store in push. */
  m3s_msg_t *next = atomic_load_explicit(&old->next, memory_order_acquire);
  if(!next)
    return NULL; /* nothing visible; not a statement about emptiness */
  mb->out = next;
  /* Relaxed: a metric; only this thread writes popped. */
  atomic_store_explicit(&mb->popped,
                        atomic_load_explicit(&mb->popped, memory_order_relaxed) + 1,
                        memory_order_relaxed);
  /* old was the sentinel (the previous message or the initial sentinel); the pop that
   * moves past it is the only one allowed to free it (invariant 5). */
  m3s_msg_free(old);
  return next;
}

m3s_idle_t m3s_mailbox_try_idle(m3s_mailbox_t *mb)
{
  /* Acquire: if IDLE is already set we are about to sleep on our wake fd,
   * which remembers any push that cleared it in the meantime. */
  uintptr_t cur = atomic_load_explicit(&mb->in, memory_order_acquire);
  if(cur & IDLE)
    return M3S_MB_WAS_IDLE;
  uintptr_t expect = (uintptr_t)mb->out;
  /* acq_rel on success: release so the producer whose exchange sees IDLE also
   * sees everything we did before going idle; acquire on failure: we will go
   * on popping what the producer who moved `in` linked. Pairs with the
   * exchange in push. Success means in == out: truly empty (invariant 4). */
  if(atomic_compare_exchange_strong_explicit(&mb->in, &expect, expect | IDLE,
                                             memory_order_acq_rel,
                                             memory_order_acquire))
    return M3S_MB_IDLED;
  return M3S_MB_BUSY;
}

void m3s_mailbox_destroy(m3s_mailbox_t *mb)
{
  /* Every producer is gone (invariant 7), so every exchange's link store has
   * completed and the chain from out is complete. Pop retires each message in
   * turn; the last one left is the sentinel. */
  while(m3s_mailbox_pop(mb))
    ;
  m3s_msg_free(mb->out);
  mb->out = NULL;
}
