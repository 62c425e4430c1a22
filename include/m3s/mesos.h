/* The Mesos actor ("mesos"): owns the conversation with the Mesos master
 * through the v1 scheduler HTTP API. It subscribes, keeps the subscription
 * alive (heartbeat watchdog, re-subscription with exponential backoff and
 * jitter, 307 redirects to the leader, framework failover), decodes the
 * RecordIO event stream, and sends every call on a second, kept-alive
 * connection, one at a time and in order.
 *
 * Messages it accepts:
 *   M3S_MESOS_CALL     payload: json_t * call (taken), built with
 *                      mesos-call.h; the actor adds the framework id and the
 *                      stream id. Any actor may send it. arg 0, or for
 *                      the ACCEPT/DECLINE of an OFFERS event that event's
 *                      arg: such a call is dropped once that subscription
 *                      is gone (its offers are). Calls made before a
 *                      subscription exists wait for it; on a lost
 *                      subscription ACCEPT, DECLINE and ACKNOWLEDGE are
 *                      dropped (their offers and updates die with it; the
 *                      master re-sends unacknowledged updates), the others
 *                      are kept for the next one.
 *   M3S_STORE_LOADED   from the store: the framework record; the actor
 *                      subscribes only after it (with the stored id, if any).
 *   M3S_STORE_WRITTEN  from the store: the outcome of the framework
 *                      record's latest write (earlier ones are ignored).
 *                      ACCEPT calls wait for "stored" after a new
 *                      registration; the calls behind them go on, but a
 *                      KILL never passes the ACCEPT that launches its task.
 *   M3S_MESOS_READY    from the offers sink: the roles know their tasks.
 *                      With an offers sink set, the actor subscribes only
 *                      after both this and the framework record.
 *   M3S_MESOS_FORGET_ID request (REST DELETE /framework): when not subscribed,
 *                      the framework id is dropped (and its record deleted)
 *                      so the next SUBSCRIBE registers a new framework;
 *                      answered with arg 1, or arg 0 when subscribed (the
 *                      master has the framework: nothing changes).
 *   M3S_MESOS_STATUS   request (m3s_call) with no payload; answered with a
 *                      message whose payload is a json_t * status object
 *                      (state, framework_id, master, counters).
 *
 * Messages it sends (to the sinks set with m3s_mesos_set_sinks before start):
 *   offers sink  M3S_MESOS_OFFERS    payload json_t * array of offers (taken
 *                                    by the receiver or dropped), arg = the
 *                                    subscription (> 0); the receiver must
 *                                    ACCEPT or DECLINE each, with that arg.
 *                M3S_MESOS_RESCIND   payload char * offer id.
 *   update sink  M3S_MESOS_UPDATE    payload m3s_mesos_update_t *: the
 *                                    TaskStatus and, when the update carries
 *                                    a uuid, the ACKNOWLEDGE call to send back
 *                                    (as M3S_MESOS_CALL) once the new state
 *                                    is persisted.
 *   both         M3S_MESOS_SUBSCRIBED  payload char * framework id, after
 *                                    every (re-)subscription: time to
 *                                    reconcile.
 * Without an offers sink the actor declines every offer itself (nothing is
 * hoarded); without an update sink it acknowledges each update at once.
 * Pacing: it stops reading the event stream while the sinks, a role
 * actor ("agent", "datastore", "server") or the store has PACE_DEPTH
 * messages queued, and reads on once that is down to half; of those actors
 * it reads nothing but the mailbox depth. While paused, the heartbeat
 * watchdog does not count the master as silent; its clock starts again
 * when reading resumes.
 * It sends the store (the actor named "store", when there is one) a
 * M3S_STORE_LOAD at start and a M3S_STORE_WRITE of <fw>:framework whenever
 * the framework id changes.
 */
#ifndef M3S_MESOS_H
#define M3S_MESOS_H

#include <jansson.h>

#include "m3s/actor.h"

enum {
  M3S_MESOS_CALL = M3S_MSG_USER + 100,
  M3S_MESOS_STATUS,
  M3S_MESOS_OFFERS,
  M3S_MESOS_RESCIND,
  M3S_MESOS_UPDATE,
  M3S_MESOS_SUBSCRIBED,
  M3S_MESOS_READY,
  M3S_MESOS_FORGET_ID,
};

typedef struct m3s_mesos_update {
  json_t *status;   /* TaskStatus as received */
  json_t *ack;      /* ACKNOWLEDGE call, or NULL when there is nothing to ack */
} m3s_mesos_update_t;

/* Drop hook of M3S_MESOS_UPDATE payloads. */
void m3s_mesos_update_free(void *p);

extern const m3s_actor_ops_t m3s_mesos_ops;

/* Main thread, before the system starts: where events go (NULL = none). */
void m3s_mesos_set_sinks(m3s_actor_t *mesos, m3s_actor_t *offers, m3s_actor_t *updates);

#endif
