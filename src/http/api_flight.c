/* Shared STATUS requests: concurrent status requests share one
 * M3S_ROLE_STATUS per role and one brief M3S_KUBE_STATUS (the "flights";
 * api-int.h says how). */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "m3s/kube.h"
#include "m3s/log.h"
#include "m3s/xalloc.h"
#include "api-int.h"


void api_changed(api_t *a)
{
  atomic_fetch_add_explicit(&a->epoch, 1, memory_order_acq_rel);
}

/* Drops one reference; the last frees. acq_rel: every holder's reads of the
 * answer happen before the free. */
void api_flight_unref(flight_t *f)
{
  if(atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
    return;
  json_decref(f->answer);
  free(f);
}

/* Joins each role's flight, or sends a new one: one lock for them all. */
void api_status_begin(api_t *a, const int *roles, size_t n, ticket_t *t)
{
  uint64_t epoch = atomic_load_explicit(&a->epoch, memory_order_acquire);
  int64_t now = m3s_now_ms();
  flight_t *old[4];
  size_t nold = 0;
  pthread_mutex_lock(&a->fl_lock);
  for(size_t i = 0; i < n; i++) {
    flight_t *f = a->flights[roles[i]];
    bool fresh = f && f->done && f->rc == 0 && a->opts.status_max_age_ms >= 0 &&
                 now - f->landed_ms <= a->opts.status_max_age_ms;
    t[i].role = roles[i];
    t[i].sender = !(f && f->epoch == epoch && (!f->done || fresh));
    t[i].landed = !t[i].sender && f->done;
    if(t[i].sender) {
      if(f)
        old[nold++] = f; /* the table's reference, dropped below */
      f = m3s_xcalloc(1, sizeof(*f));
      f->epoch = epoch;
      f->id = ++a->flight_ids;
      atomic_init(&f->refs, 1); /* the table's */
      a->flights[roles[i]] = f;
    }
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    t[i].f = f;
  }
  pthread_mutex_unlock(&a->fl_lock);
  for(size_t i = 0; i < nold; i++)
    api_flight_unref(old[i]);
  for(size_t i = 0; i < n; i++) {
    if(!t[i].sender)
      continue;
    flight_t *f = t[i].f;
    bool kube = t[i].role == SRC_KUBE;
    m3s_actor_t *to = kube ? a->kube : a->roles[t[i].role];
    size_t limit = to && to->ops->mailbox_limit ? to->ops->mailbox_limit
                                                : M3S_MAILBOX_SOFT_LIMIT;
    if(!to || m3s_actor_depth(to) >= limit) {
      f->rc = to ? -EAGAIN : -ENOENT;
      continue;
    }
    m3s_msg_t *m = kube ? m3s_msg_new(M3S_KUBE_STATUS, M3S_KUBE_BRIEF, NULL, NULL)
                        : m3s_msg_new(M3S_ROLE_STATUS, 0, NULL, NULL);
    f->slot = m3s_reply_new();
    m->reply = m3s_reply_ref(f->slot);
    m3s_send(to, m);
  }
}

/* Waits until deadline for the flight's answer. 0 with *out borrowed until
 * api_status_release, or -errno. */
int api_status_end(api_t *a, ticket_t *t, int64_t deadline, json_t **out)
{
  flight_t *f = t->f;
  *out = NULL;
  if(t->landed) { /* done before we joined: immutable since */
    *out = f->answer;
    return 0;
  }
  if(t->sender) {
    int rc = f->rc;
    json_t *j = NULL;
    if(f->slot) {
      m3s_msg_t *ans = NULL;
      int64_t left = deadline - m3s_now_ms();
      rc = m3s_reply_wait(f->slot, left > 0 ? (int)left : 0, &ans);
      m3s_reply_unref(f->slot);
      f->slot = NULL;
      if(rc == 0 && !(j = api_answer_json(ans)))
        rc = -EPROTO;
      m3s_msg_free(ans);
    }
    int64_t landed = m3s_now_ms();
    bool drop = false;
    pthread_mutex_lock(&a->fl_lock);
    f->rc = rc;
    f->answer = j;
    f->landed_ms = landed;
    f->done = true;
    if(rc && a->flights[t->role] == f) { /* never reused */
      a->flights[t->role] = NULL;
      drop = true;
    }
    pthread_cond_broadcast(&a->fl_cond);
    pthread_mutex_unlock(&a->fl_lock);
    if(drop)
      api_flight_unref(f); /* the table's; ours keeps it alive */
    if(rc == 0)
      *out = j;
    return rc;
  }
  struct timespec until = { .tv_sec = (time_t)(deadline / 1000),
                            .tv_nsec = (long)(deadline % 1000) * 1000000L };
  pthread_mutex_lock(&a->fl_lock);
  while(!f->done)
    if(pthread_cond_timedwait(&a->fl_cond, &a->fl_lock, &until) == ETIMEDOUT)
      break;
  int rc = f->done ? f->rc : -ETIMEDOUT;
  if(rc == 0)
    *out = f->answer;
  pthread_mutex_unlock(&a->fl_lock);
  return rc;
}

void api_status_release(api_t *a, ticket_t *t)
{
  api_flight_unref(t->f);
}

/* The kube actor's brief STATUS, shared like the roles': 0 with *out
 * borrowed until api_status_release(t), or -errno with nothing to release. */
int api_kube_brief(api_t *a, ticket_t *t, json_t **out)
{
  static const int src = SRC_KUBE;
  *out = NULL;
  if(!a->kube)
    return -ENOENT;
  api_status_begin(a, &src, 1, t);
  int rc = api_status_end(a, t, m3s_now_ms() + a->opts.call_timeout_ms, out);
  if(rc) {
    api_status_release(a, t);
    *out = NULL;
  }
  return rc;
}

/* The STATUS of each role in roles[0..n): 0 with s[i] borrowed until
 * api_status_release of t[i], or the status already sent (all released). */
int api_roles_status(api_t *a, struct mg_connection *c, const int *roles, size_t n,
                        ticket_t *t, json_t **s)
{
  int64_t deadline = m3s_now_ms() + a->opts.call_timeout_ms;
  api_status_begin(a, roles, n, t);
  int rc = 0;
  size_t bad = 0;
  for(size_t i = 0; i < n; i++) {
    int r = api_status_end(a, &t[i], deadline, &s[i]);
    if(r && !rc) {
      rc = r;
      bad = i;
    }
  }
  if(!rc)
    return 0;
  for(size_t i = 0; i < n; i++)
    api_status_release(a, &t[i]);
  return api_unavailable_rc(c, a, api_role_actor[roles[bad]], rc);
}
