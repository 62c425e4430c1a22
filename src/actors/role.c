/* The role actors (datastore, server, agent). See m3s/role.h. */
#include "m3s/role.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/idmap.h"
#include "m3s/liveconfig.h"
#include "m3s/log.h"
#include "m3s/mesos-call.h"
#include "m3s/mesos-event.h"
#include "m3s/mesos.h"
#include "m3s/offers.h"
#include "m3s/reply.h"
#include "m3s/store.h"
#include "m3s/taskinfo.h"
#include "m3s/xalloc.h"

enum {
  T_BACKOFF = M3S_MSG_USER + 1,
  T_ASK_MORE = M3S_MSG_USER + 2,
  T_NODE_CHECK = M3S_MSG_USER + 3,
  TAG_LOAD_CONFIG = 1,
  TAG_LOAD_TASKS = 2,
};

/* A failure of a task that ran this many backoff minimums resets the
 * backoff: the role was healthy in between. */
#define STABLE_FACTOR 10
#define RECONCILE_CHUNK 125
#define RECONCILE_AHEAD 250
#define ASK_MORE_MS 2000      /* answers overdue: ask on anyway */
/* The node clock is looked at every K3S_NODE_TIMEOUT / 8, within these. */
#define NODE_CHECK_MIN_MS 100
#define NODE_CHECK_MAX_MS 5000

typedef enum phase {
  PH_PERSIST,   /* record being written; not yet offered */
  PH_PENDING,   /* waiting in the offers actor */
  PH_LAUNCHED,  /* ACCEPT sent, no update yet */
  PH_ACTIVE,    /* Mesos reported a non-terminal state */
  PH_KILLING,   /* KILL sent; kept until terminal */
  PH_UNCERTAIN, /* loaded "__NEW" without agent: did it reach Mesos? */
} phase_t;

static const char *const phase_names[] = { "persisting", "pending", "launched",
                                           "active", "killing", "uncertain" };

typedef struct rtask {
  m3s_task_record_t rec;
  phase_t phase;
  int64_t created_ms;      /* monotonic; order for "newest first" */
  int64_t running_ms;      /* monotonic time of the first TASK_RUNNING, 0 = not */
  int healthy;             /* -1 unknown, 0, 1 (Mesos health checks) */
  bool reconciling;        /* asked about; no answer yet */
  bool agent_unknown;      /* a reconciliation found its agent unknown to the
                              master: kept until the next one (on_update) */
  bool to_ask;             /* reconciling, its RECONCILE not sent yet */
  char *agent_host;        /* hostname of the Mesos agent, "" unknown */
  char *node;              /* Kubernetes node name, NULL until seen */
  int node_ready;          /* -1 no node seen, 0 not Ready, 1 Ready */
  int64_t last_ready_ms;   /* monotonic: its node last seen Ready, 0 = never */
  char *gone_node;         /* the name of its node that went, for the log */
  bool node_kill;          /* killed by the node clock: ends as a failure */
  m3s_extra_t *extra;      /* the record's unmodelled fields (NULL = none),
                              interned in the actor's pool: a parsed tree
                              per task would cost ten times the memory */
  int64_t wtag;            /* tag of the record's latest write (0 = loaded) */
  bool wfailed;            /* that write was refused for good */
} rtask_t;

typedef struct pending_ack {   /* things that wait for a write */
  int64_t tag;
  json_t *ack;             /* ACKNOWLEDGE to send, or NULL (none, or it
                              rides the write: the store sends it) */
  bool forget;             /* then tell the offers actor the task is gone:
                              until then it routes re-sent updates here */
  char *uuid;              /* for dropping a duplicate of a queued update */
  char task_id[M3S_TASK_ID_LEN];
} pending_ack_t;

typedef struct deferred {
  int64_t tag;             /* a config tag (M3S_ROLE_CONFIG_TAG | seq) */
  m3s_reply_t *reply;
  uint32_t type;
  int64_t arg;
} deferred_t;

typedef struct role_actor {
  m3s_actor_t base;
  m3s_role_t role;
  m3s_actor_t *store, *mesos, *offers, *next;
  char *config_key;

  bool cfg_loaded, tasks_loaded, ready;
  int desired, restore;
  m3s_task_resources_t res;
  bool upstream;           /* the previous role is healthy */
  bool healthy;            /* sent downstream */

  rtask_t **tasks;         /* creation order */
  size_t n, cap;
  /* Kept in step by account(), so no message costs a walk over all tasks. */
  int n_killing, n_running, n_healthy;
  struct waiting { int64_t tag; char task_id[M3S_TASK_ID_LEN]; } *waiting; /* PH_PERSIST, by tag */
  size_t nwait_head, nwait, capwait;
  m3s_idmap_t by_id;
  m3s_extra_pool_t *extras; /* the tasks' unmodelled record fields */

  int64_t wseq, written;   /* own writes: sequence, and the last one whose
                              outcome came (the store answers in order) */
  int64_t cseq;            /* config writes asked of the offers actor */
  pending_ack_t *acks;
  size_t nacks, capacks;
  deferred_t *defer;
  size_t ndefer, capdefer;

  size_t reconciling;      /* tasks asked about, not yet answered */
  size_t to_ask, asked;    /* of those: not sent yet, sent (at most
                              RECONCILE_AHEAD: the calls' trees are big) */
  uint64_t ask_timer;      /* T_ASK_MORE while some wait to be asked */
  int64_t reconcile_ms;    /* when they were asked */
  int failures;            /* consecutive, for the restart backoff */
  int64_t backoff_until;   /* monotonic ms */
  uint64_t backoff_timer;

  m3s_offers_role_state_t last_state;
  bool state_sent;

  m3s_config_t spec;       /* own copy: what tasks of the role should run */
  uint64_t spec_gen;       /* the last M3S_ROLE_SET_SPEC applied */
  bool backlogged;         /* the store's M3S_STORE_PRESSURE: no new tasks,
                              changes asked by the API refused */
  /* The last tasks that ended unasked, and how (state and reason): lets
   * the rollout tell a lost host from a task that failed. A ring. */
  struct ended { char task_id[M3S_TASK_ID_LEN]; char how[64]; } ended[8];
  unsigned n_ended;
  bool kube_live;          /* M3S_ROLE_KUBE_LIVE */
  int64_t live_ms;         /* monotonic: when it turned live, 0 = not live */
  uint64_t replaced_node;  /* tasks killed by the node clock */
} role_actor_t;

static void now_rfc3339(char *buf, size_t len)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m3s_record_format_time(&ts, buf, len);
}

void m3s_role_launch_free(void *p)
{
  m3s_role_launch_t *l = p;
  if(!l)
    return;
  free(l->agent_id);
  free(l->hostname);
  json_decref(l->taskinfo);
  free(l);
}

void m3s_role_spec_free(void *p)
{
  m3s_role_spec_t *sp = p;
  if(!sp)
    return;
  m3s_config_free(&sp->cfg);
  free(sp);
}

static void call(role_actor_t *a, json_t *c)
{
  if(c)
    m3s_send(a->mesos, m3s_msg_new(M3S_MESOS_CALL, 0, c, m3s_json_drop));
}

/* Gone for a role: anything but a live state or TASK_KILLING. That is
 * Mesos' terminal states, TASK_UNKNOWN (the master does not know it; see
 * on_update for the reconciliation after a master restart) and
 * TASK_UNREACHABLE (PARTITION_AWARE): such a task is replaced now; if it
 * comes back it is unknown and killed. */
static bool state_terminal(const char *s)
{
  return !m3s_task_state_live(s) && strcmp(s, "TASK_KILLING") != 0;
}

/* ---- persistence ------------------------------------------------------------ */

/* Sends the task's record (or its delete) to the store; returns the
 * write's tag. ack (may be NULL): an ACKNOWLEDGE waiting for this very
 * write, taken (*ack = NULL): the store sends it to the mesos actor once
 * this write is stored, one hop fewer than through on_written. */
static int64_t write_task(role_actor_t *a, rtask_t *t, bool del, json_t **ack)
{
  char *key = m3s_key_task(a->base.cfg->fw, a->role, t->rec.task_id);
  m3s_store_batch_t *b = m3s_store_batch_new(&a->base, ++a->wseq);
  if(del) {
    m3s_store_batch_del(b, key);
  }
  else {
    t->rec.extra = m3s_extra_json(t->extra, t->rec.task_id);
    char *text = m3s_task_record_to_json(&t->rec);
    json_decref(t->rec.extra);
    t->rec.extra = NULL;
    if(text)
      m3s_store_batch_set(b, key, text);
    else
      m3s_error("task %s: record cannot be encoded", t->rec.task_id);
    free(text);
  }
  free(key);
  if(ack && *ack) {
    m3s_store_batch_then(b, a->mesos, m3s_msg_new(M3S_MESOS_CALL, 0, *ack, m3s_json_drop));
    *ack = NULL;
  }
  m3s_send(a->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
  t->wtag = a->wseq;
  t->wfailed = false;
  return a->wseq;
}

/* ---- state reports ----------------------------------------------------------- */

static void report(role_actor_t *a, bool persist)
{
  m3s_offers_role_state_t s;
  memset(&s, 0, sizeof(s)); /* padding too: states are compared bytewise */
  s.role = a->role;
  s.desired = a->desired;
  s.restore = a->restore;
  s.res = a->res;
  s.spec_gen = a->spec_gen;
  /* Tasks being killed still hold resources: a restart waits for them. */
  s.live = (int)a->n;
  s.running = a->n_running;
  s.healthy = a->n_healthy > 0;
  if(s.healthy != a->healthy) {
    a->healthy = s.healthy;
    m3s_info("%s role is %s", m3s_role_name(a->role), s.healthy ? "healthy" : "not healthy");
    if(a->next)
      m3s_send(a->next, m3s_msg_new(M3S_ROLE_UPSTREAM, s.healthy, NULL, NULL));
  }
  if(persist)
    s.seq = ++a->cseq;
  if(!persist && a->state_sent && memcmp(&s, &a->last_state, sizeof(s)) == 0)
    return;
  a->last_state = s;
  a->state_sent = true;
  m3s_offers_role_state_t *p = m3s_xmalloc(sizeof(*p));
  *p = s;
  m3s_send(a->offers, m3s_msg_new(M3S_OFFERS_ROLE_STATE, 0, p, NULL));
}

/* ---- task set ------------------------------------------------------------------ */

static bool task_running(const rtask_t *t)
{
  return t->phase == PH_ACTIVE && strcmp(t->rec.state, "TASK_RUNNING") == 0;
}

/* Adds (sign 1) or removes (-1) t's share of the counters: call with -1
 * before changing a task's phase, state or health and with 1 after. */
static void account(role_actor_t *a, const rtask_t *t, int sign)
{
  if(t->phase == PH_KILLING)
    a->n_killing += sign;
  if(task_running(t)) {
    a->n_running += sign;
    /* A task with a Mesos health check counts once the check passed; a K3s
     * task only while its Kubernetes node is Ready (§7.2: a node not seen
     * is not healthy), so agents wait for a Ready server node. */
    if((t->rec.health ? t->healthy == 1 : t->healthy != 0) &&
       (a->role == M3S_ROLE_DATASTORE || t->node_ready == 1))
      a->n_healthy += sign;
  }
}

static void task_add(role_actor_t *a, rtask_t *t)
{
  if(a->n == a->cap) {
    a->cap = a->cap ? a->cap * 2 : 16;
    a->tasks = m3s_xrealloc(a->tasks, a->cap * sizeof(*a->tasks));
  }
  a->tasks[a->n++] = t;
  m3s_idmap_put(&a->by_id, t->rec.task_id, t);
  account(a, t, 1);
}

static void task_free(rtask_t *t)
{
  m3s_task_record_free(&t->rec);
  free(t->agent_host);
  free(t->node);
  free(t->gone_node);
  m3s_extra_free(t->extra);
  free(t);
}

/* Removes t from the set (frees it). */
static void task_remove(role_actor_t *a, rtask_t *t)
{
  account(a, t, -1);
  if(t->reconciling)
    a->reconciling--;
  if(t->to_ask)
    a->to_ask--;
  else if(t->reconciling && a->asked)
    a->asked--;
  m3s_idmap_del(&a->by_id, t->rec.task_id);
  for(size_t i = 0; i < a->n; i++)
    if(a->tasks[i] == t) {
      memmove(&a->tasks[i], &a->tasks[i + 1], (a->n - i - 1) * sizeof(*a->tasks));
      a->n--;
      break;
    }
  task_free(t);
}

static void offer_task(role_actor_t *a, rtask_t *t)
{
  m3s_offers_pending_t *p = m3s_xcalloc(1, sizeof(*p));
  snprintf(p->task_id, sizeof(p->task_id), "%s", t->rec.task_id);
  p->role = a->role;
  p->res = a->res;
  t->phase = PH_PENDING;
  m3s_send(a->offers, m3s_msg_new(M3S_OFFERS_PENDING, 0, p, NULL));
}

/* A new task with a new id, or with want_id (the rollout actor chooses
 * the id of a replacement so that it can record it before asking). */
static void create_task(role_actor_t *a, const char *want_id)
{
  const m3s_config_t *cfg = a->base.cfg;
  rtask_t *t = m3s_xcalloc(1, sizeof(*t));
  char id[M3S_TASK_ID_LEN], ts[40];
  if(want_id && *want_id)
    snprintf(id, sizeof(id), "%s", want_id);
  else
    m3s_task_id_new(id);
  now_rfc3339(ts, sizeof(ts));
  m3s_task_record_t *r = &t->rec;
  r->task_id = m3s_xstrdup(id);
  size_t nl = strlen(cfg->fw) + 16;
  r->task_name = m3s_xmalloc(nl);
  snprintf(r->task_name, nl, "%s:%s", cfg->fw, m3s_role_name(a->role));
  r->role = a->role;
  r->state = m3s_xstrdup("__NEW");
  r->state_time = m3s_xstrdup(ts);
  r->agent_id = m3s_xstrdup("");
  r->hostname = m3s_xstrdup("");
  r->container_image = m3s_xstrdup("");
  r->restart = m3s_xstrdup("");
  r->spec_digest = m3s_xstrdup("");
  r->cpu = a->res.cpu;
  r->cpu_limit = a->res.cpu_limit;
  r->memory = a->res.mem;
  r->memory_limit = a->res.mem_limit;
  r->disk = a->res.disk;
  r->instances = a->desired;
  r->health = a->role != M3S_ROLE_AGENT;
  t->agent_host = m3s_xstrdup("");
  t->node_ready = -1;
  t->phase = PH_PERSIST;
  t->created_ms = m3s_now_ms();
  t->healthy = -1;
  task_add(a, t);
  /* Offered only once Redis has the record: a task Mesos runs is always
   * one a restarted daemon finds. */
  int64_t tag = write_task(a, t, false, NULL);
  if(a->nwait == a->capwait) {
    a->capwait = a->capwait ? a->capwait * 2 : 16;
    a->waiting = m3s_xrealloc(a->waiting, a->capwait * sizeof(*a->waiting));
  }
  a->waiting[a->nwait].tag = tag;
  snprintf(a->waiting[a->nwait].task_id, sizeof(a->waiting[0].task_id), "%s", t->rec.task_id);
  a->nwait++;
}

static void kill_task(role_actor_t *a, rtask_t *t, const char *why)
{
  switch(t->phase) {
  case PH_PERSIST:
  case PH_PENDING:
    /* Never launched: withdraw it. A placement already on its way ends as
     * a LAUNCHED for an unknown task, which is killed. */
    m3s_info("%s task %s withdrawn before launch (%s)", m3s_role_name(a->role), t->rec.task_id,
             why);
    m3s_send(a->offers, m3s_msg_new(M3S_OFFERS_CANCEL, 0, m3s_xstrdup(t->rec.task_id), NULL));
    write_task(a, t, true, NULL);
    task_remove(a, t);
    return;
  default:
    m3s_info("killing %s task %s (%s)", m3s_role_name(a->role), t->rec.task_id, why);
    account(a, t, -1);
    t->phase = PH_KILLING;
    account(a, t, 1);
    call(a, m3s_call_kill(t->rec.task_id, t->rec.agent_id));
    return;
  }
}

/* Whether a task runs the spec the role's configuration gives now: 1 yes,
 * 0 no, -1 unknown (no digest), -2 not launched yet. */
static int task_current(const rtask_t *t, const char *digest)
{
  if(t->phase == PH_PERSIST || t->phase == PH_PENDING)
    return -2;
  if(!t->rec.spec_digest || !*t->rec.spec_digest || !*digest)
    return -1;
  return strcmp(t->rec.spec_digest, digest) == 0;
}

/* ---- convergence ---------------------------------------------------------------- */

static void converge(role_actor_t *a)
{
  if(!a->ready)
    return;
  int live = (int)a->n - a->n_killing;

  /* Surplus: outdated tasks first, then newest first (pending ones are the
   * newest). So a daemon restarted while a rollout had just replaced a task
   * (its old one not yet ended) keeps the replacement. */
  if(live > a->desired) {
    char digest[M3S_SPEC_DIGEST_LEN + 1];
    m3s_task_spec_digest(&a->spec, &a->res, a->role, digest);
    for(int pass = 0; pass < 2; pass++) {
      for(size_t i = a->n; live > a->desired && i-- > 0;) {
        rtask_t *t = a->tasks[i];
        if(t->phase == PH_KILLING || (pass == 0 && task_current(t, digest) != 0))
          continue;
        kill_task(a, t, pass == 0 ? "scale down, outdated first" : "scale down");
        live--;
      }
    }
  }

  if(live < a->desired) {
    int64_t now = m3s_now_ms();
    if(!a->upstream) {
      /* waits for M3S_ROLE_UPSTREAM */
    }
    else if(a->backlogged) {
      /* waits for M3S_STORE_PRESSURE 0: a new task is a new record */
    }
    else if(now < a->backoff_until) {
      if(!a->backoff_timer)
        a->backoff_timer = m3s_timer_start(&a->base, T_BACKOFF, a->backoff_until - now, 0);
    }
    else {
      int missing = a->desired - live;
      m3s_info("%s role: creating %d task(s) (%d of %d live)", m3s_role_name(a->role), missing,
               live, a->desired);
      while(missing-- > 0)
        create_task(a, NULL);
    }
  }
  report(a, false);
}

/* ---- written confirmations --------------------------------------------------------- */

static void backoff_after_failure(role_actor_t *a, rtask_t *t);

/* The outcome of one write: what waited on that very write goes ahead
 * (stored) or is not done (failed for good); nothing waits on another
 * write's outcome. */
static void on_written(role_actor_t *a, int64_t tag, const char *failed)
{
  if(tag & M3S_ROLE_CONFIG_TAG) {
    /* framework_config is written whole: a later stored write holds every
     * earlier change too. */
    size_t j = 0;
    for(size_t i = 0; i < a->ndefer; i++) {
      deferred_t *d = &a->defer[i];
      if(d->tag <= tag) {
        m3s_msg_t *ans = m3s_msg_new(d->type, failed ? -EIO : d->arg, NULL, NULL);
        if(failed)
          ans->flags = M3S_ROLE_ERROR;
        m3s_reply_finish(d->reply, ans);
      }
      else {
        a->defer[j++] = *d;
      }
    }
    a->ndefer = j;
    return;
  }
  if(tag > a->written)
    a->written = tag;
  if(failed) {
    for(size_t i = 0; i < a->n; i++)
      if(a->tasks[i]->wtag == tag)
        a->tasks[i]->wfailed = true;
  }
  size_t j = 0;
  for(size_t i = 0; i < a->nacks; i++) {
    pending_ack_t *p = &a->acks[i];
    if(p->tag != tag) {
      a->acks[j++] = *p;
      continue;
    }
    if(!failed) {
      call(a, p->ack);
      if(p->forget)
        m3s_send(a->offers, m3s_msg_new(M3S_OFFERS_FORGET, 0, m3s_xstrdup(p->task_id), NULL));
    }
    else {
      /* Not acknowledged: the master sends the update again. */
      m3s_error("%s task %s: its new state cannot be stored, the update stays "
                "unacknowledged: %s", m3s_role_name(a->role), p->task_id, failed);
      json_decref(p->ack);
    }
    free(p->uuid);
  }
  a->nacks = j;
  /* Records written for new tasks, in write order. */
  while(a->nwait_head < a->nwait && a->waiting[a->nwait_head].tag <= tag) {
    struct waiting *w = &a->waiting[a->nwait_head++];
    rtask_t *t = m3s_idmap_get(&a->by_id, w->task_id);
    if(!t || t->phase != PH_PERSIST || w->tag != tag)
      continue;
    if(!failed) {
      offer_task(a, t);
      continue;
    }
    m3s_error("%s task %s is not launched: Redis refused its record: %s",
              m3s_role_name(a->role), t->rec.task_id, failed);
    backoff_after_failure(a, t);
    task_remove(a, t);
  }
  if(a->nwait_head == a->nwait)
    a->nwait_head = a->nwait = 0;
  if(failed)
    converge(a);
}

static void defer_reply(role_actor_t *a, m3s_msg_t *req, uint32_t type, int64_t arg)
{
  m3s_reply_t *r = m3s_msg_take_reply(req);
  if(!r)
    return;
  if(a->ndefer == a->capdefer) {
    a->capdefer = a->capdefer ? a->capdefer * 2 : 8;
    a->defer = m3s_xrealloc(a->defer, a->capdefer * sizeof(*a->defer));
  }
  a->defer[a->ndefer++] = (deferred_t){ M3S_ROLE_CONFIG_TAG | a->cseq, r, type, arg };
}

static void answer_error(m3s_msg_t *req, uint32_t type, int err)
{
  m3s_msg_t *ans = m3s_msg_new(type, -err, NULL, NULL);
  ans->flags = M3S_ROLE_ERROR;
  m3s_msg_reply(req, ans);
}

/* ---- loading ----------------------------------------------------------------------- */

static void load_config(role_actor_t *a, json_t *records)
{
  const m3s_config_t *cfg = a->base.cfg;
  const char *text = json_string_value(json_object_get(records, a->config_key));
  m3s_fw_config_record_t f;
  char err[256];
  m3s_task_resources_from_config(cfg, a->role, &a->res);
  a->desired = a->role == M3S_ROLE_DATASTORE ? cfg->ds_count
             : a->role == M3S_ROLE_SERVER    ? cfg->k3s_server_count
                                             : cfg->k3s_agent_count;
  if(!text || m3s_fw_config_record_from_json(text, strlen(text), &f, err, sizeof(err)) != 0)
    return;
  /* Redis wins over the environment for counts, as in the original; the
   * resource settings too, since the API may have changed them. */
  int desired, restore;
  m3s_task_resources_t r;
  switch(a->role) {
  case M3S_ROLE_DATASTORE:
    desired = f.ds_max, restore = f.ds_max_restore;
    r = (m3s_task_resources_t){ f.ds_cpu, f.ds_cpu_limit, f.ds_mem, f.ds_mem_limit, f.ds_disk,
                                f.ds_disk_limit };
    break;
  case M3S_ROLE_SERVER:
    desired = f.k3s_server_max, restore = f.k3s_server_max_restore;
    r = (m3s_task_resources_t){ f.k3s_server_cpu, f.k3s_server_cpu_limit, f.k3s_server_mem,
                                f.k3s_server_mem_limit, f.k3s_server_disk,
                                f.k3s_server_disk_limit };
    break;
  default:
    desired = f.k3s_agent_max, restore = f.k3s_agent_max_restore;
    r = (m3s_task_resources_t){ f.k3s_agent_cpu, f.k3s_agent_cpu_limit, f.k3s_agent_mem,
                                f.k3s_agent_mem_limit, f.k3s_agent_disk,
                                f.k3s_agent_disk_limit };
    break;
  }
  if(desired >= 0 && desired <= M3S_ROLE_MAX_COUNT) {
    if(desired != a->desired)
      m3s_info("%s count %d restored from Redis (environment says %d)", m3s_role_name(a->role),
               desired, a->desired);
    a->desired = desired;
  }
  if(restore >= 0 && restore <= M3S_ROLE_MAX_COUNT)
    a->restore = restore;
  /* A record without resources (an older writer) keeps the configured ones. */
  if(r.cpu > 0 && r.mem > 0 && r.cpu_limit >= r.cpu && r.mem_limit >= r.mem &&
     r.disk_limit >= r.disk)
    a->res = r;
  if(m3s_live_record_restore(&a->spec, &f, err, sizeof(err)) < 0)
    m3s_warn("%s: run-time configuration in Redis not used: %s", a->config_key, err);
  m3s_fw_config_record_free(&f);
}

/* A record this version cannot use (not JSON or not UTF-8, an older
 * format, a wrong TaskID) is moved to <fw>:corrupt:<key>:<unix time>, as
 * the store does with other broken records: never lost, never loaded
 * again, and the task slot is free. text holds no NUL (the store keeps
 * such values). */
static void set_aside(role_actor_t *a, const char *key, const char *text, const char *why)
{
  const char *fw = a->base.cfg->fw;
  size_t plen = strlen(fw) + 1, n = strlen(key) + plen + 48;
  char *dst = m3s_xmalloc(n);
  snprintf(dst, n, "%s:corrupt:%s:%lld", fw, key + plen, (long long)time(NULL));
  m3s_store_batch_t *b = m3s_store_batch_new(NULL, 0);
  m3s_store_batch_set(b, dst, text);
  m3s_store_batch_del(b, key);
  m3s_send(a->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
  m3s_warn("%s: %s: moved to %s and ignored", key, why, dst);
  free(dst);
}

static int by_state_time(const void *x, const void *y)
{
  const rtask_t *a = *(rtask_t *const *)x, *b = *(rtask_t *const *)y;
  return strcmp(a->rec.state_time, b->rec.state_time);
}

static void load_tasks(role_actor_t *a, const m3s_store_records_t *records, bool last)
{
  char err[256];
  for(size_t i = 0; i < records->n; i++) {
    const char *key = records->key[i], *text = records->val[i];
    m3s_key_info_t ki;
    if(m3s_key_parse(a->base.cfg->fw, key, &ki) != M3S_KEY_TASK || ki.role != a->role)
      continue;
    rtask_t *t = m3s_xcalloc(1, sizeof(*t));
    if(m3s_task_record_from_json_pooled(text, records->len[i], &t->rec, a->extras, &t->extra,
                                        &t->agent_host, err, sizeof(err)) != 0 ||
       !t->rec.task_id[0] || strcmp(t->rec.task_id, ki.name) != 0 ||
       strlen(t->rec.task_id) >= M3S_TASK_ID_LEN) {
      if(t->rec.task_id && strlen(t->rec.task_id) >= M3S_TASK_ID_LEN)
        snprintf(err, sizeof(err), "its TaskID is longer than %d characters",
                 M3S_TASK_ID_LEN - 1);
      else if(t->rec.task_id)
        snprintf(err, sizeof(err), "its TaskID does not match the key");
      set_aside(a, key, text, err);
      task_free(t);
      continue;
    }
    if(m3s_idmap_get(&a->by_id, t->rec.task_id)) {
      task_free(t); /* a chunk repeated after a reconnection */
      continue;
    }
    t->created_ms = 0;
    t->healthy = -1;
    t->node_ready = -1;
    if(!strcmp(t->rec.state, "") || !strcmp(t->rec.state, "__NEW")) {
      t->phase = t->rec.agent_id[0] ? PH_LAUNCHED : PH_UNCERTAIN;
    }
    else if(state_terminal(t->rec.state)) {
      /* The previous daemon died between the update and the delete. */
      write_task(a, t, true, NULL);
      task_free(t);
      continue;
    }
    else {
      t->phase = strcmp(t->rec.state, "TASK_KILLING") ? PH_ACTIVE : PH_KILLING;
    }
    task_add(a, t);
  }
  if(!last)
    return;
  /* Oldest first, so that "newest first" holds across restarts. */
  if(a->n > 1)
    qsort(a->tasks, a->n, sizeof(*a->tasks), by_state_time);
  for(size_t i = 0; i < a->n; i++)
    a->tasks[i]->created_ms = -(int64_t)(a->n - i);
  if(a->n)
    m3s_info("%s role: %zu task record(s) loaded", m3s_role_name(a->role), a->n);
}

static void maybe_ready(role_actor_t *a)
{
  if(a->ready || !a->cfg_loaded || !a->tasks_loaded)
    return;
  a->ready = true;
  m3s_offers_ready_t *r = m3s_xcalloc(1, sizeof(*r));
  r->role = a->role;
  r->tasks = m3s_xcalloc(a->n + 1, sizeof(*r->tasks));
  for(size_t i = 0; i < a->n; i++) {
    const m3s_task_record_t *rec = &a->tasks[i]->rec;
    snprintf(r->tasks[i].task_id, sizeof(r->tasks[i].task_id), "%s", rec->task_id);
    r->tasks[i].agent_id = m3s_xstrdup(rec->agent_id);
    r->tasks[i].hostname = m3s_xstrdup(a->tasks[i]->agent_host);
  }
  r->n = a->n;
  m3s_send(a->offers, m3s_msg_new(M3S_OFFERS_ROLE_READY, 0, r, m3s_offers_ready_free));
  m3s_info("%s role ready: %d wanted, %zu known task(s)", m3s_role_name(a->role), a->desired, a->n);
  report(a, false);
  converge(a);
}

/* ---- Mesos events ------------------------------------------------------------------ */

/* Sends RECONCILE calls for the tasks still to ask, a chunk at a time,
 * while fewer than RECONCILE_AHEAD asked tasks wait for their answer: the
 * master answers a chunk quickly, and 10,000 tasks asked at once would
 * hold every call's tree at the same time. */
static void reconcile_more(role_actor_t *a)
{
  size_t i = 0;
  while(a->to_ask && a->asked < RECONCILE_AHEAD) {
    json_t *rc = m3s_call_reconcile(NULL);
    for(size_t k = 0; i < a->n && k < RECONCILE_CHUNK; i++) {
      rtask_t *t = a->tasks[i];
      if(!t->to_ask)
        continue;
      t->to_ask = false;
      a->to_ask--;
      a->asked++;
      k++;
      m3s_call_reconcile_add(rc, t->rec.task_id, t->rec.agent_id);
    }
    call(a, rc);
  }
  /* A master does not answer for tasks on an agent that is re-registering:
   * the rest is not held back for long. */
  if(a->to_ask && !a->ask_timer)
    a->ask_timer = m3s_timer_start(&a->base, T_ASK_MORE, ASK_MORE_MS, 0);
}

static void reconcile(role_actor_t *a)
{
  a->reconcile_ms = m3s_now_ms();
  a->asked = 0; /* a new subscription: answers to earlier calls may never come */
  for(size_t i = 0; i < a->n; i++) {
    rtask_t *t = a->tasks[i];
    if(t->phase == PH_PERSIST || t->phase == PH_PENDING)
      continue;
    if(t->phase == PH_KILLING)
      call(a, m3s_call_kill(t->rec.task_id, t->rec.agent_id));
    if(!t->reconciling) {
      t->reconciling = true;
      a->reconciling++;
    }
    if(!t->to_ask) {
      t->to_ask = true;
      a->to_ask++;
    }
  }
  reconcile_more(a);
}

static void set_str(char **dst, const char *v)
{
  free(*dst);
  *dst = m3s_xstrdup(v ? v : "");
}

static void on_launched(role_actor_t *a, m3s_role_launch_t *l)
{
  rtask_t *t = m3s_idmap_get(&a->by_id, l->task_id);
  if(!t || t->phase != PH_PENDING) {
    /* Withdrawn while its placement was on the way. */
    m3s_info("%s task %s was launched after it was withdrawn: killing it",
             m3s_role_name(a->role), l->task_id);
    call(a, m3s_call_kill(l->task_id, l->agent_id));
    return;
  }
  m3s_task_record_t *r = &t->rec;
  json_t *ti = l->taskinfo, *c = json_object_get(ti, "container"), *d;
  set_str(&r->agent_id, l->agent_id);
  set_str(&r->hostname, json_string_value(json_object_get(c, "hostname")));
  d = json_object_get(c, "docker");
  set_str(&r->container_image, json_string_value(json_object_get(d, "image")));
  json_t *pm = json_object_get(d, "port_mappings");
  free(r->port_mappings);
  r->n_port_mappings = json_array_size(pm);
  r->port_mappings = m3s_xcalloc(r->n_port_mappings + 1, sizeof(*r->port_mappings));
  for(size_t i = 0; i < r->n_port_mappings; i++) {
    json_t *e = json_array_get(pm, i);
    r->port_mappings[i].host_port = (int)json_integer_value(json_object_get(e, "host_port"));
    r->port_mappings[i].container_port =
      (int)json_integer_value(json_object_get(e, "container_port"));
    const char *p = json_string_value(json_object_get(e, "protocol"));
    r->port_mappings[i].protocol = m3s_xstrdup(p ? p : "");
  }
  json_t *dp = json_object_get(json_object_get(json_object_get(ti, "discovery"), "ports"), "ports");
  for(size_t i = 0; i < r->n_discovery_ports; i++) {
    free(r->discovery_ports[i].name);
    free(r->discovery_ports[i].protocol);
  }
  free(r->discovery_ports);
  r->n_discovery_ports = json_array_size(dp);
  r->discovery_ports = m3s_xcalloc(r->n_discovery_ports + 1, sizeof(*r->discovery_ports));
  for(size_t i = 0; i < r->n_discovery_ports; i++) {
    json_t *e = json_array_get(dp, i);
    const char *n = json_string_value(json_object_get(e, "name"));
    const char *p = json_string_value(json_object_get(e, "protocol"));
    r->discovery_ports[i].number = (int)json_integer_value(json_object_get(e, "number"));
    r->discovery_ports[i].name = m3s_xstrdup(n ? n : "");
    r->discovery_ports[i].protocol = m3s_xstrdup(p ? p : "");
  }
  /* The original keeps the agent object from /slaves here; its id and
   * hostname are what readers use. */
  json_t *x = m3s_extra_json(t->extra, t->rec.task_id);
  if(!x)
    x = json_object();
  json_object_set_new(x, "MesosAgent",
                      json_pack("{s:s, s:s}", "id", l->agent_id, "hostname", l->hostname));
  char *text = json_dumps(x, JSON_COMPACT | JSON_PRESERVE_ORDER);
  m3s_extra_free(t->extra);
  t->extra = m3s_extra_intern(a->extras, text, t->rec.task_id);
  free(text);
  json_decref(x);
  set_str(&t->agent_host, l->hostname);
  set_str(&r->spec_digest, l->spec_digest);
  t->phase = PH_LAUNCHED;
  write_task(a, t, false, NULL);
}

static void queue_pending(role_actor_t *a, json_t *ack, const char *task_id, const char *uuid,
                          int64_t tag, bool forget)
{
  if(a->nacks == a->capacks) {
    a->capacks = a->capacks ? a->capacks * 2 : 16;
    a->acks = m3s_xrealloc(a->acks, a->capacks * sizeof(*a->acks));
  }
  pending_ack_t *p = &a->acks[a->nacks++];
  p->tag = tag;
  p->ack = ack;
  p->forget = forget;
  p->uuid = m3s_xstrdup(uuid ? uuid : "");
  snprintf(p->task_id, sizeof(p->task_id), "%s", task_id);
}

static void queue_after(role_actor_t *a, m3s_mesos_update_t *u, const char *task_id,
                        const char *uuid, int64_t tag, bool forget)
{
  if(!(u && u->ack) && !forget)
    return;
  json_t *ack = u ? u->ack : NULL;
  if(u)
    u->ack = NULL;
  queue_pending(a, ack, task_id, uuid, tag, forget);
}

/* An update whose ACKNOWLEDGE rides its own write (write_task): noted
 * until that write's outcome, so that a re-send of it meanwhile is not
 * acknowledged twice and a refusal is logged. */
static void queue_sent(role_actor_t *a, const char *task_id, const char *uuid, int64_t tag)
{
  queue_pending(a, NULL, task_id, uuid, tag, false);
}

static void queue_ack(role_actor_t *a, m3s_mesos_update_t *u, const char *task_id,
                      const char *uuid, int64_t tag)
{
  queue_after(a, u, task_id, uuid, tag, false);
}

static bool ack_queued(role_actor_t *a, const char *task_id, const char *uuid)
{
  if(!uuid)
    return false;
  for(size_t i = 0; i < a->nacks; i++)
    if(!strcmp(a->acks[i].uuid, uuid) && !strcmp(a->acks[i].task_id, task_id))
      return true;
  return false;
}

/* The tag of the write a gone task's acknowledgement waits for, 0 = none. */
static int64_t task_ack_pending(role_actor_t *a, const char *task_id)
{
  int64_t tag = 0;
  for(size_t i = 0; i < a->nacks; i++)
    if(!strcmp(a->acks[i].task_id, task_id) && a->acks[i].tag > tag)
      tag = a->acks[i].tag;
  return tag;
}

static void backoff_after_failure(role_actor_t *a, rtask_t *t)
{
  const m3s_config_t *cfg = a->base.cfg;
  int64_t now = m3s_now_ms();
  if(t->running_ms && now - t->running_ms >= STABLE_FACTOR * cfg->restart_backoff_min_ms)
    a->failures = 0;
  a->failures++;
  int64_t delay = cfg->restart_backoff_min_ms;
  for(int i = 1; i < a->failures && delay < cfg->restart_backoff_max_ms; i++)
    delay *= 2;
  if(delay > cfg->restart_backoff_max_ms)
    delay = cfg->restart_backoff_max_ms;
  if(now + delay > a->backoff_until)
    a->backoff_until = now + delay;
  m3s_info("%s role: failure %d in a row, next task in %lld ms", m3s_role_name(a->role),
           a->failures, (long long)delay);
}

/* Whether a TASK_RUNNING's container_status.network_infos says what the
 * record already holds (every reconciliation repeats them: no rewrite). */
static bool same_network_infos(const m3s_task_record_t *r, json_t *ni)
{
  if(json_array_size(ni) != r->n_network_infos)
    return false;
  for(size_t i = 0; i < r->n_network_infos; i++) {
    json_t *e = json_array_get(ni, i), *ips = json_object_get(e, "ip_addresses");
    const m3s_network_info_t *n = &r->network_infos[i];
    const char *name = json_string_value(json_object_get(e, "name"));
    if(strcmp(name ? name : "", n->name))
      return false;
    size_t k = 0;
    for(size_t j = 0; j < json_array_size(ips); j++) {
      const char *ip = json_string_value(json_object_get(json_array_get(ips, j), "ip_address"));
      if(!ip)
        continue;
      if(k >= n->n_ip_addresses || strcmp(ip, n->ip_addresses[k]))
        return false;
      k++;
    }
    if(k != n->n_ip_addresses)
      return false;
  }
  return true;
}

static void set_network_infos(m3s_task_record_t *r, json_t *ni)
{
  for(size_t i = 0; i < r->n_network_infos; i++) {
    free(r->network_infos[i].name);
    for(size_t k = 0; k < r->network_infos[i].n_ip_addresses; k++)
      free(r->network_infos[i].ip_addresses[k]);
    free(r->network_infos[i].ip_addresses);
  }
  free(r->network_infos);
  r->n_network_infos = json_array_size(ni);
  r->network_infos = m3s_xcalloc(r->n_network_infos, sizeof(*r->network_infos));
  for(size_t i = 0; i < r->n_network_infos; i++) {
    json_t *e = json_array_get(ni, i), *ips = json_object_get(e, "ip_addresses");
    m3s_network_info_t *n = &r->network_infos[i];
    const char *name = json_string_value(json_object_get(e, "name"));
    n->name = m3s_xstrdup(name ? name : "");
    n->ip_addresses = m3s_xcalloc(json_array_size(ips) + 1, sizeof(char *));
    for(size_t k = 0; k < json_array_size(ips); k++) {
      const char *ip = json_string_value(json_object_get(json_array_get(ips, k), "ip_address"));
      if(ip)
        n->ip_addresses[n->n_ip_addresses++] = m3s_xstrdup(ip);
    }
  }
}

static void on_update(role_actor_t *a, m3s_mesos_update_t *u)
{
  json_t *st = u->status;
  const char *id = json_string_value(json_object_get(json_object_get(st, "task_id"), "value"));
  const char *state = json_string_value(json_object_get(st, "state"));
  const char *agent = json_string_value(json_object_get(json_object_get(st, "agent_id"), "value"));
  const char *uuid = json_string_value(json_object_get(st, "uuid"));
  const char *reason = json_string_value(json_object_get(st, "reason"));
  const char *message = json_string_value(json_object_get(st, "message"));
  json_t *healthy = json_object_get(st, "healthy");
  rtask_t *t = id ? m3s_idmap_get(&a->by_id, id) : NULL;

  if(!id || !state)
    return;
  if(ack_queued(a, id, uuid))
    return; /* a re-sent update whose acknowledgement waits for Redis */
  /* A task the role does not keep (never had, or gone: ended, unknown to
   * the master, unreachable) that runs is killed, also while its end is
   * not yet in Redis: after a master failover a KILL answered
   * TASK_UNKNOWN is followed by TASK_RUNNING once its agent re-registers,
   * and nothing else would kill it before the next reconciliation. */
  if(!t && m3s_task_state_live(state)) {
    m3s_warn("%s task %s (%s) is not one we keep: killing it", m3s_role_name(a->role), id,
             state);
    call(a, m3s_call_kill(id, agent));
  }
  int64_t gone_tag = t ? 0 : task_ack_pending(a, id);
  if(gone_tag) {
    /* Gone, its end not yet in Redis: a later update of it is
     * acknowledged after that. */
    queue_ack(a, u, id, uuid, gone_tag);
    return;
  }
  if(t && t->reconciling) {
    t->reconciling = false;
    if(t->to_ask) {
      t->to_ask = false; /* the master spoke first */
      a->to_ask--;
    }
    else if(a->asked) {
      a->asked--;
    }
    reconcile_more(a);
    if(--a->reconciling == 0)
      m3s_info("%s role: every task reconciled with the master (%zu known, %lld ms)",
               m3s_role_name(a->role), a->n, (long long)(m3s_now_ms() - a->reconcile_ms));
  }
  if(!t) {
    if(u->ack) {
      call(a, u->ack);
      u->ack = NULL;
    }
    return;
  }
  /* A master restarted with an in-memory registry knows an agent only once
   * it has re-registered; until then a reconciliation answers TASK_UNKNOWN
   * for the tasks that still run there. Replacing them would leave two of
   * each once the agents are back, so an active task answered so is kept;
   * it is replaced if the next reconciliation (RECONCILE_WAIT later) still
   * does not know it. */
  if(!strcmp(state, "TASK_UNKNOWN") && reason && !strcmp(reason, "REASON_RECONCILIATION") &&
     t->phase == PH_ACTIVE && !t->agent_unknown) {
    t->agent_unknown = true;
    m3s_warn("%s task %s: the master does not know its agent %s (yet): kept until the next "
             "reconciliation", m3s_role_name(a->role), id, t->rec.agent_id);
    if(u->ack) {
      call(a, u->ack);
      u->ack = NULL;
    }
    return;
  }
  t->agent_unknown = false;
  bool changed = strcmp(t->rec.state, state) != 0;
  if(state_terminal(state)) {
    /* A task the node clock killed failed as far as the role goes. */
    bool wanted = t->phase == PH_KILLING && !t->node_kill;
    /* TASK_UNKNOWN for a task that may never have reached Mesos is not a
     * failure of the container. */
    bool never_ran = !strcmp(state, "TASK_UNKNOWN") || !strcmp(state, "TASK_DROPPED");
    if(wanted)
      m3s_info("%s task %s ended: %s", m3s_role_name(a->role), id, state);
    else
      m3s_warn("%s task %s ended: %s%s%s%s%s", m3s_role_name(a->role), id, state,
               reason ? " " : "", reason ? reason : "", message ? ": " : "",
               message ? message : "");
    if(!wanted && !never_ran)
      backoff_after_failure(a, t);
    if(!wanted) {
      struct ended *e = &a->ended[a->n_ended++ % (sizeof(a->ended) / sizeof(a->ended[0]))];
      snprintf(e->task_id, sizeof(e->task_id), "%s", id);
      if(t->node_kill)
        reason = "node not Ready";
      snprintf(e->how, sizeof(e->how), "%s%s%s", state, reason ? " " : "", reason ? reason : "");
    }
    int64_t tag = write_task(a, t, true, &u->ack);
    queue_after(a, u, id, uuid, tag, true);
    task_remove(a, t);
    converge(a);
    return;
  }

  account(a, t, -1);
  set_str(&t->rec.state, state);
  if(agent && agent[0] && strcmp(agent, t->rec.agent_id) != 0)
    set_str(&t->rec.agent_id, agent);
  if(json_is_boolean(healthy))
    t->healthy = json_is_true(healthy);
  if(t->phase != PH_KILLING)
    t->phase = PH_ACTIVE;
  account(a, t, 1);
  if(!strcmp(state, "TASK_RUNNING")) {
    if(!t->running_ms)
      t->running_ms = m3s_now_ms();
    json_t *ni = json_object_get(json_object_get(st, "container_status"), "network_infos");
    if(json_array_size(ni) && !same_network_infos(&t->rec, ni)) {
      set_network_infos(&t->rec, ni);
      changed = true;
    }
  }
  /* StateTime stays the time the task was created, as in the original
   * (its age gates node timeouts); an unchanged state is acknowledged once
   * the record's latest write is in (written again if it was refused). */
  if(t->wfailed)
    changed = true;
  int64_t tag = t->wtag;
  if(changed) {
    bool acked = u->ack != NULL;
    tag = write_task(a, t, false, &u->ack);
    if(acked)
      queue_sent(a, id, uuid, tag);
  }
  if(u->ack) {
    if(tag <= a->written) {
      call(a, u->ack);
      u->ack = NULL;
    }
    else {
      queue_ack(a, u, id, uuid, tag);
    }
  }
  converge(a);
}

/* ---- requests -------------------------------------------------------------------------- */

/* A change asked through the API (a request with a reply slot) while the
 * store is backlogged: refused at once, nothing changes. The offers actor's
 * own scale steps (plain sends of a cluster operation under way) are taken:
 * converge() holds their new tasks back anyway. */
static bool refuse_backlogged(role_actor_t *a, m3s_msg_t *msg, uint32_t type)
{
  if(!a->backlogged || !msg->reply)
    return false;
  answer_error(msg, type, EAGAIN);
  return true;
}

static void on_scale(role_actor_t *a, m3s_msg_t *msg)
{
  int old = a->desired, want = (int)msg->arg;
  if(refuse_backlogged(a, msg, M3S_ROLE_SCALE))
    return;
  if(msg->flags & M3S_ROLE_FROM_RESTORE)
    want = a->restore > 0 ? a->restore : a->desired;
  if(want < 0 || want > M3S_ROLE_MAX_COUNT) {
    answer_error(msg, M3S_ROLE_SCALE, EINVAL);
    return;
  }
  if((msg->flags & M3S_ROLE_SAVE_RESTORE) && a->desired > 0)
    a->restore = a->desired;
  a->desired = want;
  if(want != old)
    m3s_info("%s role scaled from %d to %d", m3s_role_name(a->role), old, want);
  /* A new count is wanted again: a crash loop before it does not delay it. */
  if(want > old) {
    a->failures = 0;
    a->backoff_until = 0;
  }
  report(a, true);
  defer_reply(a, msg, M3S_ROLE_SCALE, want - old);
  converge(a);
}

static void on_set_resource(role_actor_t *a, m3s_msg_t *msg)
{
  const m3s_role_resource_t *r = msg->payload;
  m3s_task_resources_t n = a->res;
  if(refuse_backlogged(a, msg, M3S_ROLE_SET_RESOURCE))
    return;
  if(!r || !isfinite(r->value) || r->value < 0 || r->value > 1e9) {
    answer_error(msg, M3S_ROLE_SET_RESOURCE, EINVAL);
    return;
  }
  switch(r->kind) {
  case M3S_RES_CPU:
    n.cpu = r->value;
    if(n.cpu_limit < n.cpu)
      n.cpu_limit = n.cpu;
    break;
  case M3S_RES_CPU_LIMIT: n.cpu_limit = r->value; break;
  case M3S_RES_MEM:
    n.mem = r->value;
    if(n.mem_limit < n.mem)
      n.mem_limit = n.mem;
    break;
  case M3S_RES_MEM_LIMIT: n.mem_limit = r->value; break;
  case M3S_RES_DISK:
    n.disk = r->value;
    if(n.disk_limit < n.disk)
      n.disk_limit = n.disk;
    break;
  case M3S_RES_DISK_LIMIT: n.disk_limit = r->value; break;
  default:
    answer_error(msg, M3S_ROLE_SET_RESOURCE, EINVAL);
    return;
  }
  if(n.cpu <= 0 || n.mem <= 0 || n.cpu_limit < n.cpu || n.mem_limit < n.mem ||
     n.disk_limit < n.disk) {
    answer_error(msg, M3S_ROLE_SET_RESOURCE, EINVAL);
    return;
  }
  a->res = n;
  m3s_info("%s resources: cpus %g (limit %g), mem %g MB (limit %g), disk %g MB (limit %g)",
           m3s_role_name(a->role), n.cpu, n.cpu_limit, n.mem, n.mem_limit, n.disk, n.disk_limit);
  report(a, true);
  defer_reply(a, msg, M3S_ROLE_SET_RESOURCE, 0);
}

/* A run-time configuration change: the resources it sets, and the spec the
 * role's tasks are compared against from now on. */
static void on_set_spec(role_actor_t *a, m3s_role_spec_t *sp)
{
  m3s_task_resources_t n = a->res;
  unsigned m = sp->res_mask;
  if(m & (1u << M3S_RES_CPU)) n.cpu = sp->res.cpu;
  if(m & (1u << M3S_RES_CPU_LIMIT)) n.cpu_limit = sp->res.cpu_limit;
  if(m & (1u << M3S_RES_MEM)) n.mem = sp->res.mem;
  if(m & (1u << M3S_RES_MEM_LIMIT)) n.mem_limit = sp->res.mem_limit;
  if(m & (1u << M3S_RES_DISK)) n.disk = sp->res.disk;
  if(m & (1u << M3S_RES_DISK_LIMIT)) n.disk_limit = sp->res.disk_limit;
  m3s_config_free(&a->spec);
  a->spec = sp->cfg;
  memset(&sp->cfg, 0, sizeof(sp->cfg));
  a->spec_gen = sp->gen;
  if(m) {
    a->res = n;
    m3s_info("%s resources: cpus %g (limit %g), mem %g MB (limit %g), disk %g MB (limit %g)",
             m3s_role_name(a->role), n.cpu, n.cpu_limit, n.mem, n.mem_limit, n.disk,
             n.disk_limit);
  }
  report(a, false);
}

/* A replacement asked by the rollout actor (see role.h). */
static void on_replace(role_actor_t *a, m3s_role_replace_t *r)
{
  rtask_t *old = r->old_task[0] ? m3s_idmap_get(&a->by_id, r->old_task) : NULL;
  bool have_new = r->new_task[0] && m3s_idmap_get(&a->by_id, r->new_task);
  bool old_live = old && old->phase != PH_KILLING;
  int live = (int)a->n - a->n_killing;
  r->result = 0;
  if(!a->ready) {
    r->result = -EAGAIN;
  }
  else if(r->op == M3S_REPLACE_SURGE) {
    if(!r->new_task[0])
      r->result = -EINVAL;
    else if(have_new)
      ;
    else if(a->backlogged || a->desired >= M3S_ROLE_MAX_COUNT)
      r->result = -EAGAIN;
    else {
      a->desired++;
      m3s_info("%s role: one more task (%d) for a rollout: %s", m3s_role_name(a->role),
               a->desired, r->new_task);
      report(a, true);
      create_task(a, r->new_task);
    }
  }
  else if(r->op == M3S_REPLACE_RETIRE) {
    if(!old_live) {
      r->result = -ENOENT;
    }
    else {
      kill_task(a, old, "retired by a rollout");
      if(a->desired > 0)
        a->desired--;
      report(a, true);
    }
  }
  else if(!r->new_task[0]) {
    r->result = -EINVAL;
  }
  else if(!have_new) {
    if(a->backlogged) {
      r->result = -EAGAIN;
    }
    else if(old_live) {
      kill_task(a, old, "replaced by a rollout");
      create_task(a, r->new_task);
    }
    else if(live < a->desired) {
      create_task(a, r->new_task);
    }
    else {
      r->result = -ENOENT;
    }
  }
  else if(old_live) {
    kill_task(a, old, "replaced by a rollout");
  }
  m3s_actor_t *to = r->notify;
  if(to)
    m3s_send(to, m3s_msg_new(M3S_ROLE_REPLACED, r->tag, r, NULL));
  else
    free(r);
  converge(a);
}

/* ---- the node clock (m3s/role.h) ------------------------------------------------------- */

/* Since when t's node counts as not Ready (monotonic), 0 when it does not
 * or no clock runs. */
static int64_t node_unready_since(const role_actor_t *a, const rtask_t *t)
{
  if(a->role == M3S_ROLE_DATASTORE || !task_running(t) || t->node_ready == 1)
    return 0;
  m3s_role_node_clock_t c = { t->running_ms, t->last_ready_ms, a->live_ms };
  return m3s_role_node_since(&c);
}

/* A monotonic time as RFC 3339 wall-clock text. */
static json_t *wall_text(int64_t now, int64_t mono)
{
  struct timespec ts;
  char buf[40];
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - (now - mono);
  ts.tv_sec = (time_t)(ms / 1000);
  ts.tv_nsec = (long)(ms % 1000) * 1000000;
  m3s_record_format_time(&ts, buf, sizeof(buf));
  return json_string(buf);
}

/* Kills every running task whose node has been NotReady or missing past
 * K3S_NODE_TIMEOUT (and that ran CLEANUP_WAIT); it ends as a failure, so
 * the role replaces it after the restart backoff. */
static void node_check(role_actor_t *a)
{
  const m3s_config_t *cfg = &a->spec;
  int64_t now = m3s_now_ms();
  for(size_t i = 0; i < a->n; i++) {
    rtask_t *t = a->tasks[i];
    int64_t since = node_unready_since(a, t);
    m3s_role_node_clock_t c = { t->running_ms, t->last_ready_ms, a->live_ms };
    if(!since || now < m3s_role_node_deadline(&c, cfg->k3s_node_timeout_ms, cfg->cleanup_wait_ms))
      continue;
    json_t *when = wall_text(now, since);
    const char *node = t->node ? t->node : t->gone_node;
    m3s_warn("%s task %s: its Kubernetes node %s has been %s since %s (%lld s; "
             "K3S_NODE_TIMEOUT %lld s): killing it, a new task replaces it",
             m3s_role_name(a->role), t->rec.task_id, node ? node : "(never seen)",
             t->node_ready == 0 ? "NotReady" : "missing", json_string_value(when),
             (long long)((now - since) / 1000), (long long)(cfg->k3s_node_timeout_ms / 1000));
    json_decref(when);
    t->node_kill = true;
    a->replaced_node++;
    kill_task(a, t, "node not Ready");
  }
}

static json_t *status_json(role_actor_t *a)
{
  json_t *tasks = json_object();
  int64_t now = m3s_now_ms();
  char digest[M3S_SPEC_DIGEST_LEN + 1];
  int outdated = 0, unknown = 0;
  m3s_task_spec_digest(&a->spec, &a->res, a->role, digest);
  for(size_t i = 0; i < a->n; i++) {
    const rtask_t *t = a->tasks[i];
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "state", t->rec.state, "agent",
                          t->rec.agent_id, "hostname", t->rec.hostname, "since",
                          t->rec.state_time ? t->rec.state_time : "", "phase",
                          phase_names[t->phase]);
    json_object_set_new(o, "agent_hostname", json_string(t->agent_host));
    json_object_set_new(o, "node", t->node ? json_string(t->node) : json_null());
    json_object_set_new(o, "node_ready", t->node_ready < 0 ? json_null()
                                                            : json_boolean(t->node_ready));
    json_object_set_new(o, "healthy", t->healthy < 0 ? json_null() : json_boolean(t->healthy));
    int64_t since = node_unready_since(a, t);
    json_object_set_new(o, "node_unready_since", since ? wall_text(now, since) : json_null());
    int cur = task_current(t, digest);
    outdated += cur == 0;
    unknown += cur == -1;
    json_object_set_new(o, "outdated", cur < 0 ? json_null() : json_boolean(cur == 0));
    json_object_set_new(tasks, t->rec.task_id, o);
  }
  json_t *ended = json_object();
  for(size_t i = 0; i < sizeof(a->ended) / sizeof(a->ended[0]); i++)
    if(a->ended[i].task_id[0])
      json_object_set_new(ended, a->ended[i].task_id, json_string(a->ended[i].how));
  int64_t wait = a->backoff_until > now ? a->backoff_until - now : 0;
  json_t *out = json_pack("{s:s, s:i, s:i, s:b, s:b, s:I, s:i, s:{s:f, s:f, s:f, s:f, s:f, s:f},"
                   " s:s, s:i, s:i, s:o, s:o}",
                   "role", m3s_role_name(a->role), "desired", a->desired, "restore", a->restore,
                   "upstream_healthy", a->upstream, "healthy", a->healthy, "backoff_ms",
                   (json_int_t)wait, "failures", a->failures, "resources", "cpus", a->res.cpu,
                   "cpus_limit", a->res.cpu_limit, "mem", a->res.mem, "mem_limit",
                   a->res.mem_limit, "disk", a->res.disk, "disk_limit", a->res.disk_limit,
                   "spec_digest", digest, "outdated", outdated, "spec_unknown", unknown,
                   "tasks", tasks, "ended", ended);
  if(a->role != M3S_ROLE_DATASTORE) { /* the node clock's */
    json_object_set_new(out, "kube_live", json_boolean(a->kube_live));
    json_object_set_new(out, "replaced_node_not_ready", json_integer((json_int_t)a->replaced_node));
  }
  return out;
}

/* ---- actor --------------------------------------------------------------------------------- */

static void role_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  role_actor_t *a = (role_actor_t *)self;
  switch(msg->type) {
  case M3S_STORE_LOADED:
    if(msg->arg == TAG_LOAD_CONFIG) {
      load_config(a, msg->payload);
      a->cfg_loaded = true;
    }
    else if(msg->arg == TAG_LOAD_TASKS) {
      /* Asked before this chunk is parsed: the store hands over the one it
       * has read meanwhile and reads the one after while this is parsed. */
      if(msg->flags & M3S_STORE_MORE)
        m3s_send(a->store, m3s_msg_new(M3S_STORE_NEXT, TAG_LOAD_TASKS, NULL, NULL));
      load_tasks(a, msg->payload, !(msg->flags & M3S_STORE_MORE));
      a->tasks_loaded = !(msg->flags & M3S_STORE_MORE);
    }
    maybe_ready(a);
    break;
  case M3S_STORE_WRITTEN:
    on_written(a, msg->arg, msg->flags & M3S_STORE_FAILED ? msg->payload : NULL);
    break;
  case M3S_STORE_PRESSURE:
    a->backlogged = msg->arg != 0;
    if(a->backlogged && a->desired > (int)a->n - a->n_killing)
      m3s_info("%s role: Redis is backlogged, %d new task(s) wait until it drains",
               m3s_role_name(a->role), a->desired - ((int)a->n - a->n_killing));
    converge(a);
    break;
  case M3S_ROLE_UPSTREAM:
    a->upstream = msg->arg != 0 || a->role == M3S_ROLE_DATASTORE;
    converge(a);
    break;
  case M3S_ROLE_SUBSCRIBED:
    reconcile(a);
    break;
  case M3S_ROLE_LAUNCHED:
    on_launched(a, msg->payload);
    report(a, false);
    break;
  case M3S_MESOS_UPDATE:
    on_update(a, msg->payload);
    break;
  case T_BACKOFF:
    a->backoff_timer = 0;
    converge(a);
    break;
  case T_ASK_MORE:
    a->ask_timer = 0;
    a->asked = 0;
    reconcile_more(a);
    break;
  case M3S_ROLE_SCALE:
    on_scale(a, msg);
    break;
  case M3S_ROLE_SET_RESOURCE:
    on_set_resource(a, msg);
    break;
  case M3S_ROLE_NODE: {
    const m3s_role_node_t *nd = msg->payload;
    rtask_t *t = nd ? m3s_idmap_get(&a->by_id, nd->task_id) : NULL;
    if(!t)
      break;
    account(a, t, -1);
    if(t->node_ready == 1 || nd->ready == 1)
      t->last_ready_ms = m3s_now_ms(); /* seen Ready until now */
    if(nd->ready < 0) {
      free(t->gone_node);
      t->gone_node = t->node;
      t->node = NULL;
      t->node_ready = -1;
    }
    else {
      if(!t->node || strcmp(t->node, nd->node))
        set_str(&t->node, nd->node);
      t->node_ready = nd->ready != 0;
    }
    account(a, t, 1);
    converge(a);
    break;
  }
  case M3S_ROLE_KUBE_LIVE:
    if(a->kube_live != (msg->arg != 0))
      m3s_info("%s role: the K3s API view is %s", m3s_role_name(a->role),
               msg->arg ? "live: node clocks run from now" : "not live: node clocks stand still");
    a->kube_live = msg->arg != 0;
    a->live_ms = a->kube_live ? m3s_now_ms() : 0;
    break;
  case T_NODE_CHECK:
    node_check(a);
    break;
  case M3S_ROLE_SET_SPEC:
    if(msg->payload)
      on_set_spec(a, msg->payload);
    break;
  case M3S_ROLE_REPLACE:
    if(msg->payload)
      on_replace(a, m3s_msg_take(msg));
    break;
  case M3S_ROLE_STATUS:
    m3s_msg_reply(msg, m3s_msg_new(M3S_ROLE_STATUS, 0, status_json(a), m3s_json_drop));
    break;
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
}

static int role_start(m3s_actor_t *self, m3s_role_t role)
{
  role_actor_t *a = (role_actor_t *)self;
  a->role = role;
  a->store = m3s_system_find(self->sys, "store");
  a->mesos = m3s_system_find(self->sys, "mesos");
  a->offers = m3s_system_find(self->sys, "offers");
  if(role != M3S_ROLE_AGENT)
    a->next = m3s_system_find(self->sys, m3s_role_name(role + 1));
  if(!a->store || !a->mesos || !a->offers) {
    m3s_error("the %s actor needs the store, mesos and offers actors", m3s_role_name(role));
    return -EINVAL;
  }
  a->upstream = role == M3S_ROLE_DATASTORE;
  a->extras = m3s_extra_pool_new();
  a->config_key = m3s_key_framework_config(self->cfg->fw);
  m3s_config_copy(&a->spec, self->cfg);
  m3s_store_watch(a->store, self);
  if(role != M3S_ROLE_DATASTORE) {
    int64_t every = self->cfg->k3s_node_timeout_ms / 8;
    every = every < NODE_CHECK_MIN_MS ? NODE_CHECK_MIN_MS
            : every > NODE_CHECK_MAX_MS ? NODE_CHECK_MAX_MS : every;
    m3s_timer_start(self, T_NODE_CHECK, every, every);
  }
  char match[32];
  snprintf(match, sizeof(match), "%s:*", m3s_role_name(role));
  m3s_send(a->store, m3s_msg_new(M3S_STORE_LOAD, 0,
                                 m3s_store_load_new("framework_config", self, TAG_LOAD_CONFIG),
                                 m3s_store_load_free));
  /* load_tasks decodes every record and sets aside what it cannot use:
   * the store need not check them first. */
  m3s_store_load_t *l = m3s_store_load_new(match, self, TAG_LOAD_TASKS);
  l->unchecked = true;
  m3s_send(a->store, m3s_msg_new(M3S_STORE_LOAD, 0, l, m3s_store_load_free));
  return 0;
}

static int start_datastore(m3s_actor_t *self) { return role_start(self, M3S_ROLE_DATASTORE); }
static int start_server(m3s_actor_t *self) { return role_start(self, M3S_ROLE_SERVER); }
static int start_agent(m3s_actor_t *self) { return role_start(self, M3S_ROLE_AGENT); }

static void role_stop(m3s_actor_t *self)
{
  role_actor_t *a = (role_actor_t *)self;
  for(size_t i = 0; i < a->n; i++)
    task_free(a->tasks[i]);
  free(a->tasks);
  m3s_extra_pool_free(a->extras);
  m3s_idmap_free(&a->by_id);
  for(size_t i = 0; i < a->nacks; i++) {
    json_decref(a->acks[i].ack);
    free(a->acks[i].uuid);
  }
  free(a->acks);
  free(a->waiting);
  for(size_t i = 0; i < a->ndefer; i++)
    m3s_reply_finish(a->defer[i].reply, NULL);
  free(a->defer);
  free(a->config_key);
  m3s_config_free(&a->spec);
}

const m3s_actor_ops_t m3s_role_datastore_ops = {
  .name = "datastore", .size = sizeof(role_actor_t), .start = start_datastore,
  .handle = role_handle, .stop = role_stop,
};
const m3s_actor_ops_t m3s_role_server_ops = {
  .name = "server", .size = sizeof(role_actor_t), .start = start_server,
  .handle = role_handle, .stop = role_stop,
};
const m3s_actor_ops_t m3s_role_agent_ops = {
  .name = "agent", .size = sizeof(role_actor_t), .start = start_agent,
  .handle = role_handle, .stop = role_stop,
};

const m3s_actor_ops_t *m3s_role_ops(m3s_role_t role)
{
  switch(role) {
  case M3S_ROLE_DATASTORE: return &m3s_role_datastore_ops;
  case M3S_ROLE_SERVER: return &m3s_role_server_ops;
  case M3S_ROLE_AGENT: return &m3s_role_agent_ops;
  default: return NULL;
  }
}
