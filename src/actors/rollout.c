/* The rollout actor. See m3s/rollout.h. */
#include "m3s/rollout.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/kube.h"
#include "m3s/log.h"
#include "m3s/records.h"
#include "m3s/reply.h"
#include "m3s/role.h"
#include "m3s/store.h"
#include "m3s/taskinfo.h"
#include "m3s/xalloc.h"

#define M3S_ROLLOUT_FORCE 1u

enum { T_TICK = M3S_MSG_USER + 1, T_POLL, TAG_LOAD = 1 };


#define TICK_MS 100     /* the status poll while a plan runs: a stage's end is
                           seen within two ticks */
#define POLL_MS 15       /* after the asks, a first look at the answers */
#define ASK_TIMEOUT_MS 10000
#define NASK 4          /* 1..3: the roles (m3s_role_t), 0: kube */
#define NPHASE 3

typedef enum pstatus {
  P_PENDING, P_IN_PROGRESS, P_PAUSED, P_COMPLETE, P_FAILED, P_ABORTED,
} pstatus_t;
static const char *const status_names[] = { "PENDING", "IN_PROGRESS", "PAUSED",
                                            "COMPLETE", "FAILED", "ABORTED" };

typedef enum stage {
  G_NONE, G_SURGE, G_DRAIN, G_REPLACE, G_RETIRE, G_READY, G_RELEASE, G_DONE,
} stage_t;
static const char *const stage_names[] = { "", "surge", "drain", "replace", "retire",
                                           "ready", "release", "done" };

typedef struct step {
  char name[96];
  char old_task[M3S_TASK_ID_LEN], new_task[M3S_TASK_ID_LEN];
  pstatus_t status;
  char reason[320];
  char started[40], finished[40];
  stage_t stage;
  bool surge;
  int64_t drain_started;   /* unix ms; 0 = not yet */
  /* not stored: */
  bool sent;               /* the stage's action went out (in this process) */
  uint64_t sent_cycle;     /* the status cycle it went out in */
  bool answered;           /* the role answered that action */
  int result;
} step_t;

typedef struct phase {
  m3s_role_t role;
  pstatus_t status;
  step_t *steps;
  size_t n;
} phase_t;

typedef struct rollout {
  m3s_actor_t base;
  m3s_actor_t *store, *kube, *roles[4];
  char *key;
  bool loaded, backlogged;

  /* the plan */
  bool have_plan;
  char id[40], created[40], finished[40], reason[440];
  pstatus_t status;
  bool force, aborting;
  phase_t phases[NPHASE];
  size_t nphases;

  /* writes of the plan: acts only while wdone == wseq and !wfailed */
  int64_t wseq, wdone;
  bool wfailed;
  struct wait { int64_t tag; m3s_reply_t *r; } *waits;
  size_t nwaits, capwaits;

  /* status cycle */
  m3s_reply_t *asks[NASK];
  json_t *st[NASK];
  int64_t ask_ms;
  bool asking;
  uint64_t cycle;          /* completed cycles */

  /* a START waiting for a fresh cycle */
  m3s_reply_t *start_reply;
  uint32_t start_flags;
  uint64_t start_after;
} rollout_t;

static void now_text(char *buf, size_t len)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  m3s_record_format_time(&ts, buf, len);
}

static int64_t wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool plan_active(const rollout_t *a)
{
  return a->have_plan && (a->status == P_IN_PROGRESS || a->status == P_PAUSED);
}

/* ---- the plan as JSON (answers and the stored record) --------------------------- */

static json_t *str_or_null(const char *s)
{
  return s && *s ? json_string(s) : json_null();
}

static json_t *plan_json(const rollout_t *a)
{
  json_t *phases = json_array();
  for(size_t p = 0; p < a->nphases; p++) {
    const phase_t *ph = &a->phases[p];
    json_t *steps = json_array();
    for(size_t i = 0; i < ph->n; i++) {
      const step_t *s = &ph->steps[i];
      json_t *o = json_object();
      json_object_set_new(o, "name", json_string(s->name));
      json_object_set_new(o, "old_task", json_string(s->old_task));
      json_object_set_new(o, "new_task", str_or_null(s->new_task));
      json_object_set_new(o, "status", json_string(status_names[s->status]));
      json_object_set_new(o, "reason", str_or_null(s->reason));
      json_object_set_new(o, "started", str_or_null(s->started));
      json_object_set_new(o, "finished", str_or_null(s->finished));
      json_object_set_new(o, "stage", json_string(stage_names[s->stage]));
      json_object_set_new(o, "surge", json_boolean(s->surge));
      json_object_set_new(o, "drain_started",
                          s->drain_started ? json_integer(s->drain_started) : json_null());
      json_array_append_new(steps, o);
    }
    json_array_append_new(phases, json_pack("{s:s, s:s, s:o}", "name", m3s_role_name(ph->role),
                                            "status", status_names[ph->status], "steps",
                                            steps));
  }
  json_t *o = json_object();
  json_object_set_new(o, "id", json_string(a->id));
  json_object_set_new(o, "status", json_string(status_names[a->status]));
  json_object_set_new(o, "reason", str_or_null(a->reason));
  json_object_set_new(o, "created", json_string(a->created));
  json_object_set_new(o, "finished", str_or_null(a->finished));
  json_object_set_new(o, "force", json_boolean(a->force));
  json_object_set_new(o, "aborting", json_boolean(a->aborting));
  json_object_set_new(o, "phases", phases);
  return o;
}

static int status_of(const char *s)
{
  for(int i = 0; s && i <= P_ABORTED; i++)
    if(!strcmp(s, status_names[i]))
      return i;
  return -1;
}

static void copy_str(char *dst, size_t len, const json_t *v)
{
  const char *s = json_string_value(v);
  snprintf(dst, len, "%s", s ? s : "");
}

static void plan_clear(rollout_t *a)
{
  for(size_t p = 0; p < a->nphases; p++)
    free(a->phases[p].steps);
  memset(a->phases, 0, sizeof(a->phases));
  a->nphases = 0;
  a->have_plan = false;
}

/* The stored plan back into the actor; false (nothing kept) when it is not
 * one this daemon wrote. */
static bool plan_from_json(rollout_t *a, const json_t *o)
{
  const json_t *phases = json_object_get(o, "phases");
  int st = status_of(json_string_value(json_object_get(o, "status")));
  if(!json_is_array(phases) || json_array_size(phases) > NPHASE || st < 0)
    return false;
  plan_clear(a);
  copy_str(a->id, sizeof(a->id), json_object_get(o, "id"));
  copy_str(a->created, sizeof(a->created), json_object_get(o, "created"));
  copy_str(a->finished, sizeof(a->finished), json_object_get(o, "finished"));
  copy_str(a->reason, sizeof(a->reason), json_object_get(o, "reason"));
  a->status = (pstatus_t)st;
  a->force = json_is_true(json_object_get(o, "force"));
  a->aborting = json_is_true(json_object_get(o, "aborting"));
  for(size_t p = 0; p < json_array_size(phases); p++) {
    const json_t *jp = json_array_get(phases, p), *steps = json_object_get(jp, "steps");
    phase_t *ph = &a->phases[a->nphases++];
    const char *pn = json_string_value(json_object_get(jp, "name"));
    ph->role = M3S_ROLE_NONE;
    for(m3s_role_t r = M3S_ROLE_DATASTORE; pn && r <= M3S_ROLE_AGENT; r++)
      if(!strcmp(pn, m3s_role_name(r)))
        ph->role = r;
    int ps = status_of(json_string_value(json_object_get(jp, "status")));
    if(ph->role == M3S_ROLE_NONE || ps < 0 || !json_is_array(steps)) {
      plan_clear(a);
      return false;
    }
    ph->status = (pstatus_t)ps;
    ph->n = json_array_size(steps);
    ph->steps = m3s_xcalloc(ph->n + 1, sizeof(step_t));
    for(size_t i = 0; i < ph->n; i++) {
      const json_t *js = json_array_get(steps, i);
      step_t *s = &ph->steps[i];
      copy_str(s->name, sizeof(s->name), json_object_get(js, "name"));
      copy_str(s->old_task, sizeof(s->old_task), json_object_get(js, "old_task"));
      copy_str(s->new_task, sizeof(s->new_task), json_object_get(js, "new_task"));
      copy_str(s->reason, sizeof(s->reason), json_object_get(js, "reason"));
      copy_str(s->started, sizeof(s->started), json_object_get(js, "started"));
      copy_str(s->finished, sizeof(s->finished), json_object_get(js, "finished"));
      int ss = status_of(json_string_value(json_object_get(js, "status")));
      const char *sg = json_string_value(json_object_get(js, "stage"));
      s->status = ss < 0 ? P_FAILED : (pstatus_t)ss;
      for(int g = 0; sg && g <= G_DONE; g++)
        if(!strcmp(sg, stage_names[g]))
          s->stage = (stage_t)g;
      s->surge = json_is_true(json_object_get(js, "surge"));
      s->drain_started = json_integer_value(json_object_get(js, "drain_started"));
    }
  }
  a->have_plan = true;
  return true;
}

/* ---- writes ------------------------------------------------------------------------ */

static bool stored(const rollout_t *a)
{
  return a->wdone == a->wseq && !a->wfailed;
}

static int64_t plan_write(rollout_t *a)
{
  json_t *j = plan_json(a);
  char *text = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  m3s_store_batch_t *b = m3s_store_batch_new(&a->base, ++a->wseq);
  m3s_store_batch_set(b, a->key, text ? text : "{}");
  free(text);
  m3s_send(a->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
  a->wfailed = false;
  return a->wseq;
}

static void answer(m3s_reply_t *r, int err, json_t *plan)
{
  m3s_msg_t *ans = m3s_msg_new(M3S_ROLLOUT_GET, err ? -err : 0, plan, m3s_json_drop);
  if(err)
    ans->flags = M3S_ROLE_ERROR;
  m3s_reply_finish(r, ans);
}

/* Answers r with the plan once the write with this tag is stored. */
static void answer_when_stored(rollout_t *a, m3s_reply_t *r, int64_t tag)
{
  if(!r)
    return;
  if(a->nwaits == a->capwaits) {
    a->capwaits = a->capwaits ? a->capwaits * 2 : 4;
    a->waits = m3s_xrealloc(a->waits, a->capwaits * sizeof(*a->waits));
  }
  a->waits[a->nwaits++] = (struct wait){ tag, r };
}

static void on_written(rollout_t *a, int64_t tag, const char *failed)
{
  if(failed) {
    m3s_error("the rollout plan could not be stored: %s; nothing advances until it is",
              failed);
    if(tag == a->wseq)
      a->wfailed = true; /* written again at the next tick */
  }
  else if(tag > a->wdone) {
    a->wdone = tag;
  }
  size_t j = 0;
  for(size_t i = 0; i < a->nwaits; i++) {
    if(a->waits[i].tag > tag) {
      a->waits[j++] = a->waits[i];
      continue;
    }
    if(failed)
      answer(a->waits[i].r, EIO, NULL);
    else
      answer(a->waits[i].r, 0, plan_json(a));
  }
  a->nwaits = j;
}

/* ---- status cycle --------------------------------------------------------------------- */

static void ask_all(rollout_t *a)
{
  for(int i = 0; i < NASK; i++) {
    m3s_actor_t *to = i == 0 ? a->kube : a->roles[i];
    json_decref(a->st[i]);
    a->st[i] = NULL;
    if(!to)
      continue;
    m3s_msg_t *m = i == 0 ? m3s_msg_new(M3S_KUBE_STATUS, M3S_KUBE_BRIEF, NULL, NULL)
                          : m3s_msg_new(M3S_ROLE_STATUS, 0, NULL, NULL);
    a->asks[i] = m3s_reply_new();
    m->reply = m3s_reply_ref(a->asks[i]);
    m3s_send(to, m);
  }
  a->ask_ms = m3s_now_ms();
  a->asking = true;
}

/* true once every answer is in (or the cycle was abandoned). */
static bool poll_asks(rollout_t *a)
{
  bool all = true, late = m3s_now_ms() - a->ask_ms > ASK_TIMEOUT_MS;
  for(int i = 0; i < NASK; i++) {
    if(!a->asks[i])
      continue;
    m3s_msg_t *ans = NULL;
    int rc = m3s_reply_wait(a->asks[i], 0, &ans);
    if(rc == -ETIMEDOUT && !late) {
      all = false;
      continue;
    }
    m3s_reply_unref(a->asks[i]);
    a->asks[i] = NULL;
    json_t *st = ans ? m3s_msg_take(ans) : NULL;
    m3s_msg_free(ans);
    if(json_is_object(st))
      a->st[i] = st;
    else
      json_decref(st);
  }
  return all;
}

static const json_t *task_of(const rollout_t *a, m3s_role_t role, const char *id)
{
  return id && *id ? json_object_get(json_object_get(a->st[role], "tasks"), id) : NULL;
}

/* " (TASK_UNREACHABLE REASON_AGENT_REMOVED)" when the role saw the task
 * end unasked, so a failed step says whether its host went or the task
 * itself failed; "" when it does not know. */
static const char *how_ended(const rollout_t *a, m3s_role_t role, const char *id, char *buf,
                             size_t len)
{
  const char *how = json_string_value(json_object_get(json_object_get(a->st[role], "ended"), id));
  if(!how)
    return "";
  snprintf(buf, len, " (%s)", how);
  return buf;
}

static bool task_ready(m3s_role_t role, const json_t *t)
{
  const char *state = json_string_value(json_object_get(t, "state"));
  if(!state || strcmp(state, "TASK_RUNNING"))
    return false;
  if(role == M3S_ROLE_DATASTORE)
    return !json_is_false(json_object_get(t, "healthy"));
  return json_is_true(json_object_get(t, "node_ready"));
}

static bool node_cordoned(const rollout_t *a, const char *node)
{
  const json_t *n = node ? json_object_get(json_object_get(a->st[0], "nodes"), node) : NULL;
  return json_is_true(json_object_get(n, "unschedulable"));
}

/* Agents unavailable now: missing from the count, task not running, node
 * NotReady, missing or cordoned. */
static int agents_unavailable(const rollout_t *a)
{
  const json_t *st = a->st[M3S_ROLE_AGENT], *tasks = json_object_get(st, "tasks"), *t;
  const char *id;
  int live = 0, out = 0;
  json_object_foreach((json_t *)tasks, id, t) {
    const char *phase = json_string_value(json_object_get(t, "phase"));
    if(phase && !strcmp(phase, "killing"))
      continue;
    live++;
    if(!task_ready(M3S_ROLE_AGENT, t) ||
       node_cordoned(a, json_string_value(json_object_get(t, "node"))))
      out++;
  }
  int desired = (int)json_integer_value(json_object_get(st, "desired"));
  return out + (desired > live ? desired - live : 0);
}

/* ---- the plan's progress ------------------------------------------------------------- */

static void finish_plan(rollout_t *a, pstatus_t st)
{
  a->status = st;
  a->aborting = false;
  now_text(a->finished, sizeof(a->finished));
  m3s_info("rollout %s %s%s%s", a->id, status_names[st], a->reason[0] ? ": " : "", a->reason);
}

static void send_kube(rollout_t *a, uint32_t type, const char *task)
{
  if(a->kube)
    m3s_send(a->kube, m3s_msg_new(type, 0, m3s_xstrdup(task), NULL));
}

static void step_fail(rollout_t *a, phase_t *ph, step_t *s, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));
static void step_fail(rollout_t *a, phase_t *ph, step_t *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->reason, sizeof(s->reason), fmt, ap);
  va_end(ap);
  if(s->stage == G_DRAIN && ph->role == M3S_ROLE_AGENT)
    send_kube(a, M3S_KUBE_RELEASE, s->old_task); /* not left cordoned */
  s->status = P_FAILED;
  now_text(s->finished, sizeof(s->finished));
  ph->status = P_FAILED;
  snprintf(a->reason, sizeof(a->reason), "step %s: %s", s->name, s->reason);
  m3s_error("rollout %s: step %s failed: %s", a->id, s->name, s->reason);
  finish_plan(a, P_FAILED);
}

static void enter(rollout_t *a, step_t *s, stage_t g)
{
  s->stage = g;
  s->sent = s->answered = false;
  s->result = 0;
  if((g == G_SURGE || g == G_REPLACE) && !s->new_task[0]) {
    char id[37];
    m3s_task_id_new(id);
    snprintf(s->new_task, sizeof(s->new_task), "%s", id);
  }
  if(g == G_DRAIN && !s->drain_started)
    s->drain_started = wall_ms();
  if(g == G_DONE) {
    s->status = P_COMPLETE;
    now_text(s->finished, sizeof(s->finished));
    m3s_info("rollout %s: step %s complete%s%s", a->id, s->name, s->reason[0] ? ": " : "",
             s->reason);
  }
  else {
    m3s_info("rollout %s: step %s: %s", a->id, s->name, stage_names[g]);
  }
}

static void send_replace(rollout_t *a, phase_t *ph, step_t *s, m3s_role_replace_op_t op)
{
  m3s_role_replace_t *r = m3s_xcalloc(1, sizeof(*r));
  r->op = op;
  if(op != M3S_REPLACE_SURGE)
    snprintf(r->old_task, sizeof(r->old_task), "%s", s->old_task);
  if(op != M3S_REPLACE_RETIRE)
    snprintf(r->new_task, sizeof(r->new_task), "%s", s->new_task);
  r->notify = &a->base;
  r->tag = ph->role;
  m3s_send(a->roles[ph->role], m3s_msg_new(M3S_ROLE_REPLACE, 0, r, NULL));
}

/* The action of the step's stage: only on a stored plan. */
static void act(rollout_t *a, phase_t *ph, step_t *s)
{
  if(s->stage == G_DRAIN) {
    send_kube(a, M3S_KUBE_DRAIN, s->old_task); /* every cycle until drained */
  }
  else if(s->sent) {
    return;
  }
  else if(s->stage == G_SURGE) {
    send_replace(a, ph, s, M3S_REPLACE_SURGE);
  }
  else if(s->stage == G_REPLACE) {
    send_replace(a, ph, s, M3S_REPLACE_INPLACE);
  }
  else if(s->stage == G_RETIRE) {
    send_replace(a, ph, s, M3S_REPLACE_RETIRE);
  }
  else if(s->stage == G_RELEASE) {
    send_kube(a, M3S_KUBE_RELEASE, s->old_task);
  }
  /* Only statuses asked after this count for its outcome: not those of a
   * cycle in the air. */
  if(!s->sent)
    s->sent_cycle = a->cycle + (a->asking ? 1 : 0);
  s->sent = true;
}

static const json_t *drain_of(const rollout_t *a, const char *task)
{
  return json_object_get(json_object_get(a->st[0], "drains"), task);
}

/* Moves a step under way on, from the statuses of a cycle that began after
 * its action went out. Returns true when it changed (a write is due). */
static bool advance_step(rollout_t *a, phase_t *ph, step_t *s)
{
  m3s_role_t role = ph->role;
  if(s->stage == G_RELEASE && s->sent) {
    enter(a, s, G_DONE); /* nothing to wait for */
    return true;
  }
  if(!s->sent || a->cycle <= s->sent_cycle)
    return false;
  if((s->stage == G_SURGE || s->stage == G_REPLACE || s->stage == G_RETIRE) && !s->answered)
    return false;
  if(s->answered && s->result == -EAGAIN) {
    s->sent = s->answered = false; /* the role was busy: asked again */
    return false;
  }
  const json_t *nt = task_of(a, role, s->new_task), *ot = task_of(a, role, s->old_task);
  char how[96];
  switch(s->stage) {
  case G_SURGE:
    if(s->result < 0) {
      step_fail(a, ph, s, "the %s role refused one more task (%s)", m3s_role_name(role),
                strerror(-s->result));
      return true;
    }
    if(!nt) {
      step_fail(a, ph, s, "new task %s ended before it was ready%s", s->new_task,
                how_ended(a, role, s->new_task, how, sizeof(how)));
      return true;
    }
    if(!task_ready(role, nt))
      return false;
    enter(a, s, role == M3S_ROLE_AGENT ? G_DRAIN : G_RETIRE);
    return true;
  case G_DRAIN: {
    const json_t *d = drain_of(a, s->old_task);
    if(!ot || json_is_true(json_object_get(d, "drained"))) {
      enter(a, s, s->surge ? G_RETIRE : G_REPLACE);
      return true;
    }
    int64_t waited = wall_ms() - s->drain_started;
    if(waited < a->base.cfg->rollout_drain_timeout_ms)
      return false;
    const char *err = json_string_value(json_object_get(d, "error"));
    if(a->force) {
      snprintf(s->reason, sizeof(s->reason),
               "drain not done after %lld s%s%s: replaced anyway (force)",
               (long long)(waited / 1000), err && *err ? ": " : "", err ? err : "");
      enter(a, s, s->surge ? G_RETIRE : G_REPLACE);
      return true;
    }
    step_fail(a, ph, s, "drain not done after %lld s%s%s%s", (long long)(waited / 1000),
              d ? "" : " (the Kubernetes actor reports no drain)", err && *err ? ": " : "",
              err ? err : "");
    return true;
  }
  case G_REPLACE:
    if(s->result == -ENOENT) {
      snprintf(s->reason, sizeof(s->reason),
               "task %s was gone before its replacement: the role replaced it itself",
               s->old_task);
      s->new_task[0] = '\0';
      enter(a, s, role == M3S_ROLE_AGENT ? G_RELEASE : G_DONE);
      return true;
    }
    if(s->result < 0) {
      step_fail(a, ph, s, "the %s role refused the replacement (%s)", m3s_role_name(role),
                strerror(-s->result));
      return true;
    }
    enter(a, s, G_READY);
    return true;
  case G_RETIRE:
    enter(a, s, role == M3S_ROLE_AGENT ? G_RELEASE : G_DONE);
    return true;
  case G_READY:
    if(!nt) {
      step_fail(a, ph, s, "new task %s ended before it was ready%s", s->new_task,
                how_ended(a, role, s->new_task, how, sizeof(how)));
      return true;
    }
    if(!task_ready(role, nt))
      return false;
    enter(a, s, role == M3S_ROLE_AGENT ? G_RELEASE : G_DONE);
    return true;
  default:
    return false;
  }
}

/* Starts a pending step when the phase may: true when it did. */
static bool start_step(rollout_t *a, phase_t *ph, step_t *s, int *unavail)
{
  const json_t *st = a->st[ph->role], *ot = task_of(a, ph->role, s->old_task);
  if(!st)
    return false;
  const char *phase = json_string_value(json_object_get(ot, "phase"));
  if(!ot || (phase && !strcmp(phase, "killing")) ||
     json_is_false(json_object_get(ot, "outdated"))) {
    now_text(s->started, sizeof(s->started));
    snprintf(s->reason, sizeof(s->reason), "%s", ot && json_is_false(json_object_get(ot,
                                                                        "outdated"))
                                                   ? "already current"
                                                   : "the task is gone");
    enter(a, s, G_DONE);
    return true;
  }
  int desired = (int)json_integer_value(json_object_get(st, "desired"));
  now_text(s->started, sizeof(s->started));
  s->status = P_IN_PROGRESS;
  if(ph->role == M3S_ROLE_AGENT) {
    s->surge = a->base.cfg->rollout_max_surge > 0;
    enter(a, s, s->surge ? G_SURGE : G_DRAIN);
    (*unavail)++;
  }
  else {
    s->surge = ph->role == M3S_ROLE_SERVER && desired > 1;
    enter(a, s, s->surge ? G_SURGE : G_REPLACE);
  }
  return true;
}

/* Runs the phase; true when something changed. */
static bool run_phase(rollout_t *a, phase_t *ph)
{
  bool changed = false;
  int busy = 0;
  if(ph->status == P_PENDING) {
    ph->status = P_IN_PROGRESS;
    changed = true;
  }
  for(size_t i = 0; i < ph->n && a->status != P_FAILED; i++) {
    step_t *s = &ph->steps[i];
    if(s->status != P_IN_PROGRESS)
      continue;
    changed |= advance_step(a, ph, s);
    busy += s->status == P_IN_PROGRESS;
  }
  if(a->status == P_FAILED)
    return true;
  /* New steps: not while paused or aborting. */
  int limit = ph->role == M3S_ROLE_AGENT ? a->base.cfg->rollout_max_unavailable : 1;
  int unavail = ph->role == M3S_ROLE_AGENT ? agents_unavailable(a) : 0;
  for(size_t i = 0; i < ph->n && a->status == P_IN_PROGRESS && !a->aborting; i++) {
    step_t *s = &ph->steps[i];
    if(s->status != P_PENDING)
      continue;
    if(busy >= limit || (ph->role == M3S_ROLE_AGENT && unavail >= limit))
      break;
    changed |= start_step(a, ph, s, &unavail);
    busy += s->status == P_IN_PROGRESS;
  }
  bool pending = false;
  busy = 0;
  for(size_t i = 0; i < ph->n; i++) {
    pending |= ph->steps[i].status == P_PENDING;
    busy += ph->steps[i].status == P_IN_PROGRESS;
  }
  if(!pending && !busy) {
    ph->status = P_COMPLETE;
    changed = true;
  }
  return changed;
}

static void act_all(rollout_t *a);

static void advance(rollout_t *a)
{
  if(!plan_active(a) && !a->aborting)
    return;
  act_all(a); /* first: the plan as it is stored */
  bool changed = false;
  size_t p;
  for(p = 0; p < a->nphases && a->status != P_FAILED; p++) {
    phase_t *ph = &a->phases[p];
    if(ph->status == P_COMPLETE)
      continue;
    pstatus_t before = ph->status;
    changed |= run_phase(a, ph);
    if(ph->status != P_COMPLETE)
      break;
    changed |= before != P_COMPLETE;
  }
  if(a->status != P_FAILED) {
    bool busy = false;
    for(size_t q = 0; q < a->nphases; q++)
      for(size_t i = 0; i < a->phases[q].n; i++)
        busy |= a->phases[q].steps[i].status == P_IN_PROGRESS;
    if(p == a->nphases) {
      finish_plan(a, P_COMPLETE);
      changed = true;
    }
    else if(a->aborting && !busy) {
      snprintf(a->reason, sizeof(a->reason), "aborted by the operator");
      finish_plan(a, P_ABORTED);
      changed = true;
    }
  }
  if(changed)
    plan_write(a);
}

/* The actions of the steps under way, as soon as the plan they follow from
 * is stored (not one poll later). */
static void act_all(rollout_t *a)
{
  if(!plan_active(a) || !stored(a))
    return;
  for(size_t p = 0; p < a->nphases; p++)
    for(size_t i = 0; i < a->phases[p].n; i++)
      if(a->phases[p].steps[i].status == P_IN_PROGRESS)
        act(a, &a->phases[p], &a->phases[p].steps[i]);
}

/* ---- requests ---------------------------------------------------------------------------- */

static void build_plan(rollout_t *a, uint32_t flags)
{
  plan_clear(a);
  char id[37];
  m3s_task_id_new(id);
  snprintf(a->id, sizeof(a->id), "%s", id);
  now_text(a->created, sizeof(a->created));
  a->finished[0] = a->reason[0] = '\0';
  a->status = P_IN_PROGRESS;
  a->force = flags & M3S_ROLLOUT_FORCE;
  a->aborting = false;
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++) {
    const json_t *tasks = json_object_get(a->st[r], "tasks"), *t;
    const char *tid;
    phase_t ph = { .role = r, .status = P_PENDING };
    ph.steps = m3s_xcalloc(json_object_size(tasks) + 1, sizeof(step_t));
    json_object_foreach((json_t *)tasks, tid, t) {
      const char *phase = json_string_value(json_object_get(t, "phase"));
      if(!json_is_true(json_object_get(t, "outdated")) || (phase && !strcmp(phase, "killing")))
        continue;
      step_t *s = &ph.steps[ph.n++];
      snprintf(s->name, sizeof(s->name), "%s-%zu", m3s_role_name(r), ph.n);
      snprintf(s->old_task, sizeof(s->old_task), "%s", tid);
      s->status = P_PENDING;
    }
    if(r == M3S_ROLE_DATASTORE && ph.n == 0)
      free(ph.steps);
    else
      a->phases[a->nphases++] = ph;
  }
  a->have_plan = true;
  size_t n = 0;
  for(size_t p = 0; p < a->nphases; p++)
    n += a->phases[p].n;
  m3s_info("rollout %s: %zu outdated task(s)%s", a->id, n, a->force ? " (force)" : "");
}

static void on_start(rollout_t *a, m3s_msg_t *msg)
{
  int err = 0;
  if(!a->loaded)
    err = EAGAIN;
  else if(plan_active(a) || a->start_reply)
    err = EBUSY;
  else if(a->backlogged)
    err = EAGAIN;
  if(err) {
    answer(m3s_msg_take_reply(msg), err, NULL);
    return;
  }
  /* Built from statuses asked after this request. */
  a->start_reply = m3s_msg_take_reply(msg);
  a->start_flags = msg->arg ? M3S_ROLLOUT_FORCE : 0;
  a->start_after = a->cycle + (a->asking ? 1 : 0);
}

static void on_control(rollout_t *a, m3s_msg_t *msg)
{
  m3s_reply_t *r = m3s_msg_take_reply(msg);
  if(!a->have_plan) {
    answer(r, ENOENT, NULL);
    return;
  }
  bool ok = false;
  switch(msg->arg) {
  case M3S_ROLLOUT_PAUSE:
    if((ok = a->status == P_IN_PROGRESS && !a->aborting))
      a->status = P_PAUSED;
    break;
  case M3S_ROLLOUT_RESUME:
    if((ok = a->status == P_PAUSED && !a->aborting))
      a->status = P_IN_PROGRESS;
    break;
  case M3S_ROLLOUT_ABORT:
    if((ok = plan_active(a) && !a->aborting)) {
      a->aborting = true;
      a->status = P_IN_PROGRESS;
    }
    break;
  default:
    break;
  }
  if(!ok) {
    answer(r, EALREADY, plan_json(a));
    return;
  }
  m3s_info("rollout %s: %s", a->id, msg->arg == M3S_ROLLOUT_PAUSE    ? "paused"
                                    : msg->arg == M3S_ROLLOUT_RESUME ? "resumed"
                                                                     : "aborting after the "
                                                                       "steps under way");
  answer_when_stored(a, r, plan_write(a));
}

static void on_replaced(rollout_t *a, m3s_role_replace_t *r)
{
  for(size_t p = 0; p < a->nphases; p++) {
    if(a->phases[p].role != (m3s_role_t)r->tag)
      continue;
    for(size_t i = 0; i < a->phases[p].n; i++) {
      step_t *s = &a->phases[p].steps[i];
      bool same_old = !r->old_task[0] || !strcmp(s->old_task, r->old_task);
      bool same_new = !r->new_task[0] || !strcmp(s->new_task, r->new_task);
      if(s->status == P_IN_PROGRESS && s->sent && same_old && same_new) {
        s->answered = true;
        s->result = r->result;
      }
    }
  }
}

static void on_tick(rollout_t *a)
{
  if(!a->loaded)
    return;
  if(a->wfailed && a->have_plan)
    plan_write(a);
  if(!a->asking && !a->start_reply && !plan_active(a))
    return; /* no plan under way: nothing to ask */
  if(!a->asking) {
    ask_all(a);
    /* The answers take a few ms: looked at before the next tick. */
    m3s_timer_start(&a->base, T_POLL, POLL_MS, 0);
    return;
  }
  if(!poll_asks(a))
    return;
  a->asking = false;
  a->cycle++;
  if(a->start_reply && a->cycle > a->start_after) {
    bool ok = a->st[M3S_ROLE_SERVER] && a->st[M3S_ROLE_AGENT] && a->st[M3S_ROLE_DATASTORE];
    m3s_reply_t *r = a->start_reply;
    a->start_reply = NULL;
    if(!ok || !stored(a)) {
      answer(r, EAGAIN, NULL);
    }
    else {
      build_plan(a, a->start_flags);
      answer_when_stored(a, r, plan_write(a));
    }
    return;
  }
  if(stored(a))
    advance(a);
}

/* ---- actor ------------------------------------------------------------------------------- */

static void rollout_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  rollout_t *a = (rollout_t *)self;
  switch(msg->type) {
  case T_TICK:
    on_tick(a);
    break;
  case T_POLL:
    if(a->asking)
      on_tick(a);
    break;
  case M3S_STORE_LOADED: {
    json_t *v = json_object_get(msg->payload, a->key);
    if(json_is_string(v)) {
      json_t *o = json_loads(json_string_value(v), 0, NULL);
      if(!o || !plan_from_json(a, o))
        m3s_warn("%s is not a rollout plan this daemon can read: ignored", a->key);
      else if(plan_active(a))
        m3s_info("rollout %s %s: going on from where it was", a->id,
                 status_names[a->status]);
      json_decref(o);
    }
    a->loaded = true;
    break;
  }
  case M3S_STORE_WRITTEN:
    on_written(a, msg->arg, msg->flags & M3S_STORE_FAILED ? msg->payload : NULL);
    act_all(a);
    break;
  case M3S_STORE_PRESSURE:
    a->backlogged = msg->arg != 0;
    break;
  case M3S_ROLE_REPLACED:
    if(msg->payload)
      on_replaced(a, msg->payload);
    break;
  case M3S_ROLLOUT_START:
    on_start(a, msg);
    break;
  case M3S_ROLLOUT_GET:
    m3s_msg_reply(msg, m3s_msg_new(M3S_ROLLOUT_GET, 0, a->have_plan ? plan_json(a) : NULL,
                                   m3s_json_drop));
    break;
  case M3S_ROLLOUT_CONTROL:
    on_control(a, msg);
    break;
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
}

static int rollout_start(m3s_actor_t *self)
{
  rollout_t *a = (rollout_t *)self;
  a->store = m3s_system_find(self->sys, "store");
  a->kube = m3s_system_find(self->sys, "kube");
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    a->roles[r] = m3s_system_find(self->sys, m3s_role_name(r));
  if(!a->store || !a->roles[M3S_ROLE_SERVER] || !a->roles[M3S_ROLE_AGENT] ||
     !a->roles[M3S_ROLE_DATASTORE]) {
    m3s_error("the rollout actor needs the store and the role actors");
    return -EINVAL;
  }
  size_t n = strlen(self->cfg->fw) + sizeof(M3S_ROLLOUT_KEY) + 2;
  a->key = m3s_xmalloc(n);
  snprintf(a->key, n, "%s:%s", self->cfg->fw, M3S_ROLLOUT_KEY);
  m3s_store_watch(a->store, self);
  m3s_send(a->store, m3s_msg_new(M3S_STORE_LOAD, 0,
                                 m3s_store_load_new(M3S_ROLLOUT_KEY, self, TAG_LOAD),
                                 m3s_store_load_free));
  m3s_timer_start(self, T_TICK, TICK_MS, TICK_MS);
  return 0;
}

static void rollout_stop(m3s_actor_t *self)
{
  rollout_t *a = (rollout_t *)self;
  for(int i = 0; i < NASK; i++) {
    if(a->asks[i])
      m3s_reply_unref(a->asks[i]);
    json_decref(a->st[i]);
  }
  for(size_t i = 0; i < a->nwaits; i++)
    m3s_reply_finish(a->waits[i].r, NULL);
  free(a->waits);
  m3s_reply_finish(a->start_reply, NULL);
  plan_clear(a);
  free(a->key);
}

const m3s_actor_ops_t m3s_rollout_ops = {
  .name = "rollout", .size = sizeof(rollout_t), .start = rollout_start,
  .handle = rollout_handle, .stop = rollout_stop,
};
