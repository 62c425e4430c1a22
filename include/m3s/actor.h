/* Actors: one pthread each, a lock-free mailbox, a wake eventfd, a single
 * handle() entry point, private state, and private timers.
 *
 * An actor is a struct whose first member is m3s_actor_t; its ops table says
 * how big it is and how it starts, handles messages, waits and stops. Only
 * the actor's own thread touches the struct beyond the base fields marked
 * "any thread". Actors share nothing mutable: they talk through m3s_send.
 *
 * The loop of every actor thread:
 *   start()  -> result reported to m3s_system_start
 *   repeat:  pop and handle up to a batch of messages; fire due timers;
 *            try_idle; when idle, wait (ops->wait, or poll on the wake fd)
 *            until mail, the actor's own I/O, or the next timer.
 *   on M3S_MSG_STOP (queued behind everything sent before it): stop(), exit.
 *
 * The wake fd is an eventfd: a producer whose push found the mailbox IDLE
 * writes it, and the eventfd keeps that wake until the actor reads it, so a
 * wake that comes between try_idle and the actor's poll is never lost. An I/O
 * actor passes the wake fd to its own poll (curl_multi_poll extra fds,
 * poll() beside the hiredis socket) through ops->wait.
 */
#ifndef M3S_ACTOR_H
#define M3S_ACTOR_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "m3s/config.h"
#include "m3s/mailbox.h"
#include "m3s/msg.h"

typedef struct m3s_actor m3s_actor_t;
typedef struct m3s_system m3s_system_t;
typedef struct m3s_timer m3s_timer_t;

typedef struct m3s_actor_ops {
  const char *name;   /* for logs and the thread name (15 chars max) */
  size_t size;        /* sizeof the instance struct (>= sizeof(m3s_actor_t)) */
  /* On the actor's thread before any message. Nonzero (negative errno) means
   * the actor could not start: m3s_system_start fails with it. Optional. */
  int (*start)(m3s_actor_t *self);
  /* Every message but M3S_MSG_STOP. See msg.h for what it may do with m. */
  void (*handle)(m3s_actor_t *self, m3s_msg_t *m);
  /* Optional: block at most timeout_ms (-1 = no limit) until wake_fd is
   * readable or the actor's own I/O is ready, and service that I/O. The
   * runtime drains wake_fd afterwards. Default: poll() on wake_fd. */
  void (*wait)(m3s_actor_t *self, int wake_fd, int timeout_ms);
  /* On the actor's thread after M3S_MSG_STOP, or after a failed start():
   * release what the actor owns. Optional. */
  void (*stop)(m3s_actor_t *self);
  /* Soft mailbox limit for m3s_call (0 = M3S_MAILBOX_SOFT_LIMIT). */
  size_t mailbox_limit;
} m3s_actor_ops_t;

#define M3S_MAILBOX_SOFT_LIMIT 10000
#define M3S_ACTOR_BATCH 64

struct m3s_actor {
  m3s_mailbox_t mb;             /* any thread pushes; owner pops */
  const m3s_actor_ops_t *ops;   /* read-only */
  m3s_system_t *sys;            /* read-only */
  const m3s_config_t *cfg;      /* read-only, shared by all */
  int wake_fd;                  /* read-only number; any thread writes */
  pthread_t thread;
  bool started;                 /* system (main thread) only */
  /* owner thread only: */
  bool stopping;
  m3s_timer_t *timers;
  size_t ntimers, timers_cap;
  uint64_t next_timer_id;
};

/* Any thread. Takes m; the actor handles it on its own thread, in order with
 * the other messages from the same sender. */
void m3s_send(m3s_actor_t *to, m3s_msg_t *m);

/* Request/reply for threads outside the actor system (see reply.h). Takes
 * req. Returns 0 with *answer owned by the caller, -EAGAIN when the actor's
 * mailbox is over its soft limit, -ETIMEDOUT, or -ECANCELED when the request
 * was retired unanswered (the actor stopped, or ignored it). */
int m3s_call(m3s_actor_t *to, m3s_msg_t *req, int timeout_ms, m3s_msg_t **answer);

/* Owner only. Arms a timer that delivers a message of the given type to the
 * actor's handle() after delay_ms, then every period_ms if period_ms > 0. The
 * tick message's arg is the timer id (> 0) returned here. */
uint64_t m3s_timer_start(m3s_actor_t *self, uint32_t type, int64_t delay_ms,
                         int64_t period_ms);
/* Owner only. Returns false when no such timer is armed (one-shots disarm
 * themselves when they fire). */
bool m3s_timer_cancel(m3s_actor_t *self, uint64_t id);

/* Any thread: milliseconds of CLOCK_MONOTONIC, the clock of the timers. */
int64_t m3s_now_ms(void);

/* Any thread: the approximate number of queued messages (a metric). */
static inline size_t m3s_actor_depth(m3s_actor_t *a)
{
  return m3s_mailbox_depth(&a->mb);
}

/* ---- The system: the set of actors of one process ---------------------- */

/* cfg is borrowed and must outlive the system. */
m3s_system_t *m3s_system_new(const m3s_config_t *cfg);
/* Main thread, before m3s_system_start. Actors are added in dependency order
 * (an actor's dependencies first); they start in that order and stop in the
 * reverse one. Returns the actor (its struct zeroed but for the base) so the
 * caller can fill in what it needs before it starts. */
m3s_actor_t *m3s_system_add(m3s_system_t *sys, const m3s_actor_ops_t *ops);
/* Any thread, after every add: the actor with that ops name, or NULL. The set
 * of actors is fixed before the first one starts, so this needs no lock. */
m3s_actor_t *m3s_system_find(m3s_system_t *sys, const char *name);
/* Main thread. Starts each actor and waits for its start() result. On a
 * failure, stops those already started and returns that result. */
int m3s_system_start(m3s_system_t *sys);
/* Main thread. Sends M3S_MSG_STOP to each started actor in reverse order and
 * joins it before stopping the next. Messages queued before the stop are
 * handled; later ones are dropped when the system is freed. */
void m3s_system_stop(m3s_system_t *sys);
/* Main thread, after m3s_system_stop: retires every queued message through
 * its drop hook and frees the actors. */
void m3s_system_free(m3s_system_t *sys);

/* Signals. m3s_signals_block (main thread, before any other thread exists)
 * blocks SIGINT, SIGTERM and SIGHUP in every thread created afterwards and
 * ignores SIGPIPE. m3s_signals_wait returns the next SIGINT or SIGTERM;
 * SIGHUP is logged (configuration is read once at start) and ignored. */
void m3s_signals_block(void);
int m3s_signals_wait(void);

#endif
