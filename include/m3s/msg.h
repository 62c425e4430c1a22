/* Messages: a type tag plus an owned payload, travelling between actors.
 *
 * Ownership vocabulary (used in every header of the project):
 *  - a function that *takes* a message owns it from then on, success or not;
 *  - once sent, a message belongs to the runtime: the sender never touches it
 *    again; the receiving handler may read it while handle() runs and may
 *    *take* the payload by moving the pointer out (m3s_msg_take) but must not
 *    free, forward or keep the message itself;
 *  - when the runtime retires a message (when handle() returns, at shutdown, or
 *    when it could not be delivered) the drop hook frees whatever payload is
 *    still attached, and an unanswered reply slot is completed as "dropped".
 *    So a message that nobody handled, or whose handler ignored it, cannot
 *    leak.
 *
 * Message types: 0..15 are reserved for the runtime (M3S_MSG_*); each actor's
 * header declares the types it accepts, starting at M3S_MSG_USER.
 */
#ifndef M3S_MSG_H
#define M3S_MSG_H

#include <stdatomic.h>
#include <stdint.h>

typedef struct m3s_msg m3s_msg_t;
typedef struct m3s_reply m3s_reply_t;
typedef void (*m3s_drop_cb)(void *payload);

enum {
  M3S_MSG_NONE = 0,  /* the mailbox sentinel */
  M3S_MSG_STOP = 1,  /* runtime: stop the actor (handled by the runtime) */
  M3S_MSG_USER = 16, /* first type an actor may define */
};

struct m3s_msg {
  _Atomic(m3s_msg_t *) next; /* link inside a mailbox; owned by the mailbox */
  uint32_t type;
  uint32_t flags;            /* free for the actor's protocol */
  int64_t arg;               /* small inline argument (count, timer id, ...) */
  void *payload;             /* owned; freed by drop at retirement if still set */
  m3s_drop_cb drop;          /* how to free payload; NULL = plain free() */
  m3s_reply_t *reply;        /* reply slot reference held by this message */
};

/* New message (aborts on out-of-memory, like every small runtime object).
 * payload is taken; drop frees it (NULL means free()). */
m3s_msg_t *m3s_msg_new(uint32_t type, int64_t arg, void *payload, m3s_drop_cb drop);

/* Drop hook of a payload that is a jansson value (json_decref). */
void m3s_json_drop(void *json);

/* Moves the payload out: the caller owns what is returned, the message keeps
 * nothing to drop. */
void *m3s_msg_take(m3s_msg_t *m);

/* Retires a message the caller owns (one that was never sent, or an answer
 * received from m3s_call): drops the payload, completes and releases the reply
 * slot, frees the message. NULL is allowed. Handlers never call this on the
 * message they are handling: the runtime retires it. */
void m3s_msg_free(m3s_msg_t *m);

/* Runtime: retires what a message holds (drops the payload, completes an
 * unanswered reply slot as dropped) but keeps the message itself, which may
 * still be a mailbox's sentinel. The actor loop calls it as soon as handle()
 * returns, so a payload does not outlive its handling and an ignored request
 * is reported at once. */
void m3s__msg_clear(m3s_msg_t *m);

/* Completes the request's reply slot with answer (taken). Returns 0, or
 * -ENOENT when the message carries no reply slot or was already answered
 * (answer is retired then). Owner of the message (its handler) only. */
int m3s_msg_reply(m3s_msg_t *request, m3s_msg_t *answer);

/* Moves the request's reply slot out of the message (NULL when it has none),
 * for a handler that answers later, e.g. once Redis has confirmed a write.
 * The handler then owns that reference and must end it with
 * m3s_reply_finish() exactly once, also when it gives up (answer NULL), so
 * the caller never waits out its timeout for an answer that cannot come. */
m3s_reply_t *m3s_msg_take_reply(m3s_msg_t *request);

#endif
