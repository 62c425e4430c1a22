/* Reply slots: request/reply between a thread outside the actor system (a
 * civetweb worker, main) and an actor.
 *
 *   caller                              actor (handler of the request)
 *   m3s_call(actor, req, timeout, &ans)
 *     slot = new (ref: caller)
 *     req->reply = ref(slot)   ------>  handle(req)
 *     wait(slot, timeout)                 m3s_msg_reply(req, answer)
 *   <------------------------------------   post(slot, answer); unref
 *     unref(slot)
 *
 * The slot is reference counted (caller + message), so an answer that
 * arrives after the caller gave up lands in a slot that still exists; the
 * last reference frees the slot and retires any answer nobody took. A
 * request retired without an answer completes the slot as "dropped", so the
 * caller learns at once instead of waiting out its timeout.
 *
 * The slot's mutex and condition variable are the boundary's own
 * synchronisation: they protect only the slot, never actor state.
 */
#ifndef M3S_REPLY_H
#define M3S_REPLY_H

#include <stdbool.h>

#include "m3s/msg.h"

/* New slot with one reference (the caller's). */
m3s_reply_t *m3s_reply_new(void);
m3s_reply_t *m3s_reply_ref(m3s_reply_t *r);
/* Drops a reference; the last one frees the slot and any untaken answer. */
void m3s_reply_unref(m3s_reply_t *r);

/* Completes the slot with answer (taken; NULL = "dropped unanswered"). Only
 * the first completion counts: returns false, and retires answer, if the slot
 * was already completed. Any thread. */
bool m3s_reply_post(m3s_reply_t *r, m3s_msg_t *answer);

/* Completes the slot with answer (taken; NULL = dropped) and releases the
 * reference: the end of a slot taken with m3s_msg_take_reply. NULL-safe. */
void m3s_reply_finish(m3s_reply_t *r, m3s_msg_t *answer);

/* Waits up to timeout_ms (< 0: without limit) for completion. Returns 0 and moves the answer into
 * *answer (the caller owns it: m3s_msg_free), -ETIMEDOUT, or -ECANCELED when
 * the request was retired without an answer. Any thread but an actor's own
 * (an actor waiting on itself would deadlock). */
int m3s_reply_wait(m3s_reply_t *r, int timeout_ms, m3s_msg_t **answer);

#endif
