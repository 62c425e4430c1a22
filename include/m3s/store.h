/* The store actor ("store"): owns the only connection to Redis (hiredis);
 * no other actor touches Redis. Keys live under the framework prefix
 * cfg->fw ("m3s" + FRAMEWORK_NAME) exactly as the original's (see
 * m3s-behaviour.md §8): <fw>:framework, <fw>:framework_config,
 * <fw>:kubernetes_config, <fw>:kubernetes:<node>,
 * <fw>:<datastore|server|agent>:<task id>.
 *
 * Messages it accepts:
 *   M3S_STORE_WRITE  payload m3s_store_batch_t * (taken). The batch's
 *                    operations are applied atomically (MULTI/EXEC when there
 *                    are several) and in order with every batch sent before
 *                    it. Every batch gets exactly one outcome, a
 *                    M3S_STORE_WRITTEN message (arg = the batch's tag) to
 *                    batch->notify, if set: stored (flags 0; with
 *                    REDIS_WAIT_REPLICAS, once that many replicas have it),
 *                    or refused for good (flags M3S_STORE_FAILED, payload the
 *                    reason as char *). While Redis is down or refuses for a
 *                    while (OOM, READONLY, MISCONF, LOADING, BUSY, MASTERDOWN,
 *                    TRYAGAIN, too few replicas), the batch and every one
 *                    behind it wait in order and are written again after a
 *                    backoff; nothing is dropped and nothing is confirmed
 *                    before it is written. A batch may carry a message
 *                    (m3s_store_batch_then) that the store sends on once
 *                    that batch itself is stored, before its WRITTEN; it is
 *                    dropped unsent if the batch is refused for good.
 *   M3S_STORE_LOAD   payload m3s_store_load_t * (taken): SCANs every key
 *                    matching <fw>:<match> and sends M3S_STORE_LOADED to
 *                    load->notify with a json_t * object {key: value} (values
 *                    are strings as stored), in chunks: every message but
 *                    the last has M3S_STORE_MORE in its flags, and the
 *                    receiver asks for the next one with M3S_STORE_NEXT
 *                    (arg = the tag); until then the store serves nothing
 *                    else (start-up only: writes queue behind) but reading
 *                    the next chunk, each one MGET. A match without a
 *                    glob character is read without a SCAN. A load cut
 *                    short by a lost connection runs again from the start,
 *                    so a chunk may repeat keys already delivered. Records
 *                    under a JSON key that do
 *                    not parse are renamed to <fw>:corrupt:<key>:<unix time>
 *                    with a warning and left out (with load->unchecked,
 *                    only those holding a NUL byte: the others reach the
 *                    receiver as they are, even if not UTF-8, and it
 *                    checks them; and the payload is then a
 *                    m3s_store_records_t * instead of a json_t *: the
 *                    values as Redis's replies hold them, not copied).
 *                    If Redis is down, the load waits for it.
 *   M3S_STORE_NEXT   arg = a load's tag: its receiver is ready for the next
 *                    chunk.
 *   M3S_STORE_WATCH  payload m3s_store_watch_t * (taken; m3s_store_watch()
 *                    builds and sends it): the watcher is told of every
 *                    change of the backlog state with M3S_STORE_PRESSURE,
 *                    and at once if the store is backlogged already. At
 *                    most M3S_STORE_MAX_WATCHERS; a second WATCH from the
 *                    same actor changes nothing.
 *   M3S_STORE_STATUS request (m3s_call) without payload; answered with a
 *                    json_t * {"connected": bool, "server": "host:port",
 *                    "queued": n, "errors": n, "reconnects": n, "written",
 *                    "refused", "failed", "refused_by_error": {WORD: n}
 *                    (WORD = first word of Redis's error reply, or WAIT),
 *                    ...} and, while writes are refused, "refusing": WORD,
 *                    "refusal": the reply with its key, "refusing_ms";
 *                    "backlogged": bool and, while it is, "backlogged_ms".
 * Messages it sends: M3S_STORE_WRITTEN, M3S_STORE_LOADED (above), a
 *   batch's `then` message (any type, to the actor the batch names), and
 *   M3S_STORE_PRESSURE to each watcher, arg 1 when the write batches waiting
 *                    reach M3S_STORE_HIGH_WATER (backlogged), arg 0 when
 *                    they are down to M3S_STORE_LOW_WATER again. While
 *                    backlogged, a watcher starts no new work that adds
 *                    writes (new tasks, launches, changes asked through the
 *                    API: refused with -EAGAIN); writes that record what
 *                    happened (status updates, deletes) still go out. So
 *                    the queue past the mark grows only by what is already
 *                    under way, and the store itself never drops a batch.
 *                    Each change is logged once.
 *
 * Pushback: writes are never refused or dropped here; the store is the
 * one that sees the queue, so it tells the writers (role actors, offers,
 * kube) and they hold back. The mesos actor does not watch: it writes
 * one record per new framework id, and reads the store's mailbox depth to
 * pace the event stream (mesos.h).
 *
 * Start-up: the actor connects (REDIS_SERVER, or the master named by
 * REDIS_SENTINELS; REDIS_PASSWORD, REDIS_DB). A
 * refused password or a DB index Redis rejects makes start() fail with a
 * clear error; an unreachable Redis does not: the actor retries with
 * backoff and jitter while the daemon runs.
 */
#ifndef M3S_STORE_H
#define M3S_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "m3s/actor.h"

enum {
  M3S_STORE_WRITE = M3S_MSG_USER + 200,
  M3S_STORE_WRITTEN,
  M3S_STORE_LOAD,
  M3S_STORE_LOADED,
  M3S_STORE_STATUS,
  M3S_STORE_NEXT,
  M3S_STORE_WATCH,
  M3S_STORE_PRESSURE,
};

/* The backlog marks, in write batches waiting (queued, not yet confirmed).
 * A healthy Redis keeps the queue under FLUSH_CHUNK (1000) even while a role
 * creates M3S_ROLE_MAX_COUNT tasks at once, so the high mark is only reached
 * when Redis is slow, down or refusing; 10000 small records are a few MB. The
 * low mark leaves the writers room for one burst before the next pushback. */
#define M3S_STORE_HIGH_WATER 10000
#define M3S_STORE_LOW_WATER 1000
#define M3S_STORE_MAX_WATCHERS 16

#define M3S_STORE_MORE 1u   /* flags of a M3S_STORE_LOADED chunk that is not the last */
#define M3S_STORE_FAILED 2u /* flags of a M3S_STORE_WRITTEN: refused for good */

typedef enum m3s_store_op_kind { M3S_STORE_SET, M3S_STORE_DEL } m3s_store_op_kind_t;

typedef struct m3s_store_op {
  m3s_store_op_kind_t kind;
  char *key;    /* full key, prefix included */
  char *value;  /* SET only */
} m3s_store_op_t;

typedef struct m3s_store_batch {
  m3s_store_op_t *ops;
  size_t n, cap;
  m3s_actor_t *notify; /* may be NULL */
  int64_t tag;
  m3s_actor_t *then_to; /* receives `then` once this batch is stored */
  m3s_msg_t *then;      /* owned by the batch until sent; NULL = none */
} m3s_store_batch_t;

typedef struct m3s_store_load {
  char *match;          /* pattern after "<fw>:", e.g. "*" or "framework" */
  m3s_actor_t *notify;
  int64_t tag;          /* copied into the arg of M3S_STORE_LOADED */
  bool unchecked;       /* the receiver checks the values itself (the role
                           decodes every record anyway): a string without a
                           NUL byte is handed over as it is, neither JSON
                           nor UTF-8 checked, and the receiver sets aside
                           what it cannot use */
  /* the store's own progress */
  char **keys;
  size_t nkeys, pos;
  bool waiting;         /* a chunk is out; waits for M3S_STORE_NEXT */
  void *ready;          /* the next chunk, read meanwhile, or NULL */
} m3s_store_load_t;

/* A chunk of an unchecked load (M3S_STORE_LOADED payload, taken or
 * dropped with m3s_store_records_free): key[i] holds val[i] of len[i]
 * bytes, NUL-terminated and without a NUL inside; the strings live as
 * long as the chunk. */
typedef struct m3s_store_records {
  size_t n, cap;
  char **key;
  const char **val;
  size_t *len;
  void **reply;         /* the store's: what holds val[i] */
} m3s_store_records_t;

void m3s_store_records_free(void *r);  /* drop hook; NULL-safe */

/* Batch building (owner of the batch only). Keys and values are copied. */
m3s_store_batch_t *m3s_store_batch_new(m3s_actor_t *notify, int64_t tag);
void m3s_store_batch_set(m3s_store_batch_t *b, const char *key, const char *value);
void m3s_store_batch_del(m3s_store_batch_t *b, const char *key);
/* m (taken) goes to `to` once this batch is stored (after WAIT too), by
 * the store: one hop fewer than through the notify actor (the role's
 * ACKNOWLEDGE of the update the batch records). Never sent when the batch
 * is refused for good, nor on the outcome of any other batch. */
void m3s_store_batch_then(m3s_store_batch_t *b, m3s_actor_t *to, m3s_msg_t *m);
void m3s_store_batch_free(void *b);   /* drop hook of M3S_STORE_WRITE */

typedef struct m3s_store_watch {
  m3s_actor_t *who;     /* receives M3S_STORE_PRESSURE */
} m3s_store_watch_t;

/* Any thread: sends M3S_STORE_WATCH for `who` to the store. */
void m3s_store_watch(m3s_actor_t *store, m3s_actor_t *who);

m3s_store_load_t *m3s_store_load_new(const char *match, m3s_actor_t *notify, int64_t tag);
void m3s_store_load_free(void *l);    /* drop hook of M3S_STORE_LOAD */

extern const m3s_actor_ops_t m3s_store_ops;

#endif
