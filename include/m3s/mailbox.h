/* Lock-free multi-producer single-consumer mailbox.
 *
 * Design: a queue whose consumer end is a sentinel message that rotates (the
 * one just popped), with an IDLE tag bit in the producer end
 * (as in Pony's message queue). Ends are named for who uses them: `in` is
 * where producers attach, `out` is the consumer's current sentinel.
 *
 *   push(m):    m->next = NULL (relaxed); prev = xchg(in, m) (acq_rel);
 *               prev->next = m (release); return prev had IDLE.
 *   pop():      n = out->next (acquire); NULL -> nothing visible (not "empty");
 *               else retire old out, out = n, return n.
 *   try_idle(): CAS in: out -> out|IDLE (acq_rel / acquire).
 *
 * Synchronisation table (who writes what, and the pairing):
 *   in          producers: xchg acq_rel; consumer: CAS acq_rel. The RMW chain
 *               on `in` orders every push against every try_idle.
 *   m->next     written once by the producer that linked m's successor
 *               (release), read by the consumer (acquire): this pair publishes
 *               the message and its payload.
 *   out         consumer only, plain.
 *   pushed      producers, relaxed RMW (same cache line as in, which they
 *               already write); popped: consumer, relaxed store. Their
 *               difference is the approximate depth, a metric only.
 *
 * Invariants:
 *  1. Single consumer: only the owning thread calls pop/try_idle/destroy.
 *  2. Token uniqueness: IDLE is cleared only by a producer's exchange (exactly
 *     one producer per idle period sees it and must wake the consumer) and set
 *     only by the consumer's CAS. Hence: pushes that returned true ==
 *     successful idling CASes + 1 (the initial IDLE state).
 *  3. Publication: producer writes happen-before the consumer's reads through
 *     the release link store and the acquire load of next. Never relaxed.
 *  4. Emptiness for decisions (sleep, idle, destroy) compares `in` with `out`
 *     (by CAS); next == NULL alone only means "nothing visible yet".
 *  5. Node lifetime: a message is freed only by the pop that moves past it, or
 *     by destroy. prev->next is written exactly once and the consumer cannot
 *     move past prev before that write, so no ABA and no hazard pointers.
 *  6. Fairness: the actor loop handles at most a batch per wake-up check.
 *  7. Shutdown: destroy only after every producer is gone; leftovers are
 *     retired through their drop hooks.
 *  8. Bounds: depth is approximate and relaxed; it is a metric, not a lock.
 *
 * The two ends sit on different cache lines through padding rather than
 * alignas, so a mailbox embedded in a malloc'ed struct needs no special
 * alignment.
 */
#ifndef M3S_MAILBOX_H
#define M3S_MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "m3s/msg.h"

typedef struct m3s_mailbox {
  _Atomic(uintptr_t) in;     /* producer end; bit 0 = IDLE */
  _Atomic(uint64_t) pushed;  /* producers' count */
  char pad_[64 - sizeof(uintptr_t) - sizeof(uint64_t)];
  m3s_msg_t *out;            /* consumer end (current sentinel) */
  _Atomic(uint64_t) popped;  /* consumer's count */
  /* Keeps what follows the mailbox in an enclosing struct (read by
   * producers) off the line the consumer writes on every pop. */
  char pad2_[64 - sizeof(m3s_msg_t *) - sizeof(uint64_t)];
} m3s_mailbox_t;

typedef enum m3s_idle {
  M3S_MB_BUSY = 0,     /* messages are pending: keep going */
  M3S_MB_IDLED = 1,    /* this call set IDLE: the next push will report it */
  M3S_MB_WAS_IDLE = 2, /* IDLE was already set (woken for I/O, not mail) */
} m3s_idle_t;

/* A fresh mailbox is IDLE: the first push returns true. */
void m3s_mailbox_init(m3s_mailbox_t *mb);
/* Consumer, after every producer is gone: retires all queued messages and the
 * sentinel through their drop hooks. */
void m3s_mailbox_destroy(m3s_mailbox_t *mb);

/* Any thread. Takes m. Returns true when the mailbox was IDLE, in which case
 * the caller alone must wake the consumer. */
bool m3s_mailbox_push(m3s_mailbox_t *mb, m3s_msg_t *m);
/* Consumer only. Retires the previous message; the returned one stays the
 * mailbox's until the next pop (see msg.h for what the handler may do). */
m3s_msg_t *m3s_mailbox_pop(m3s_mailbox_t *mb);
/* Consumer only, as the last action before sleeping. */
m3s_idle_t m3s_mailbox_try_idle(m3s_mailbox_t *mb);

/* Any thread: approximate number of queued messages. */
static inline size_t m3s_mailbox_depth(m3s_mailbox_t *mb)
{
  /* Relaxed: a metric, and only approximate. A producer counts its push just
   * after its exchange, so a pop can be counted first; hence the clamp at 0
   * rather than a wrapped difference. */
  uint64_t out = atomic_load_explicit(&mb->popped, memory_order_relaxed);
  uint64_t in = atomic_load_explicit(&mb->pushed, memory_order_relaxed);
  return in > out ? (size_t)(in - out) : 0;
}

#endif
