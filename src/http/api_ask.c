/* The api actor asks the actors that own the answers: requests with a
 * reply slot, sent together and waited for within one deadline, and the
 * 503 when one does not answer (api-int.h). */
#include <errno.h>
#include <stdlib.h>

#include "m3s/log.h"
#include "m3s/store.h"
#include "api-int.h"

void api_ask_send(ask_t *q, size_t n)
{
  for(size_t i = 0; i < n; i++) {
    q[i].slot = NULL;
    q[i].ans = NULL;
    m3s_msg_t *m = m3s_msg_new(q[i].type, q[i].arg, q[i].payload, free);
    q[i].payload = NULL;
    if(!q[i].to) {
      q[i].rc = -ENOENT;
      m3s_msg_free(m);
      continue;
    }
    size_t limit = q[i].to->ops->mailbox_limit ? q[i].to->ops->mailbox_limit
                                                : M3S_MAILBOX_SOFT_LIMIT;
    if(m3s_actor_depth(q[i].to) >= limit) {
      q[i].rc = -EAGAIN;
      m3s_msg_free(m);
      continue;
    }
    q[i].slot = m3s_reply_new();
    m->reply = m3s_reply_ref(q[i].slot);
    m3s_send(q[i].to, m);
    q[i].rc = 0;
  }
}

void api_ask_wait(ask_t *q, size_t n, int64_t deadline)
{
  for(size_t i = 0; i < n; i++) {
    if(!q[i].slot)
      continue;
    int64_t left = deadline - m3s_now_ms();
    q[i].rc = m3s_reply_wait(q[i].slot, left > 0 ? (int)left : 0, &q[i].ans);
    m3s_reply_unref(q[i].slot);
    q[i].slot = NULL;
  }
}

void api_ask_all(api_t *a, ask_t *q, size_t n)
{
  api_ask_send(q, n);
  api_ask_wait(q, n, m3s_now_ms() + a->opts.call_timeout_ms);
}

void api_ask_free(ask_t *q, size_t n)
{
  for(size_t i = 0; i < n; i++)
    m3s_msg_free(q[i].ans);
}

/* The 503 (500 for a malformed answer) for a failed request to `name`. */
int api_unavailable_rc(struct mg_connection *c, const api_t *a, const char *name, int rc)
{
  switch(rc) {
  case -ENOENT:
    return api_error(c, 503, "%s is not running", name);
  case -EAGAIN:
    return api_error(c, 503, "%s is overloaded; retry later", name);
  case -ETIMEDOUT:
    return api_error(c, 503, "%s did not answer within %d ms", name, a->opts.call_timeout_ms);
  case -EPROTO:
    return api_error(c, 500, "%s answered without a status object", name);
  default:
    return api_error(c, 503, "%s dropped the request (stopping?)", name);
  }
}

int api_backlogged(struct mg_connection *c)
{
  return api_error_h(c, 503, "Retry-After", "5",
                     "Redis is backlogged: too many writes wait for it, so the change was not "
                     "made; retry once it drains (see /health)");
}

int api_unavailable(struct mg_connection *c, const api_t *a, const ask_t *q)
{
  return api_unavailable_rc(c, a, q->name, q->rc);
}

/* One request; returns 0 with q->ans set, or the status already sent. */
int api_ask_one(api_t *a, struct mg_connection *c, ask_t *q)
{
  api_ask_all(a, q, 1);
  return q->rc ? api_unavailable(c, a, q) : 0;
}

/* The json_t * payload of an answer (new reference, moved out), or NULL. */
json_t *api_answer_json(m3s_msg_t *ans)
{
  json_t *j = ans ? m3s_msg_take(ans) : NULL;
  if(j && !json_is_object(j)) {
    json_decref(j);
    j = NULL;
  }
  return j;
}

/* As api_ask_one, for a change request that its owner answers only once the
 * change is in Redis. Two status requests go right behind it, to the owner
 * (status_type; answered just after it took the change) and to the store,
 * so that when the change is not confirmed in time the 503 says what is
 * true (ui.c) without another round trip. */
int api_ask_change(api_t *a, struct mg_connection *c, ask_t *q, uint32_t status_type,
                   const m3s_ui_change_t *ch)
{
  ask_t k[3] = { *q, { .to = q->to, .name = q->name, .type = status_type },
                 { .to = a->store, .name = "store", .type = M3S_STORE_STATUS } };
  q->payload = NULL; /* taken by api_ask_all */
  api_ask_all(a, k, 3);
  q->rc = k[0].rc;
  q->ans = k[0].ans;
  k[0].ans = NULL;
  int st = 0;
  if(q->rc == -ETIMEDOUT) {
    api_changed(a);
    json_t *owner = k[1].rc ? NULL : api_answer_json(k[1].ans);
    json_t *store = k[2].rc ? NULL : api_answer_json(k[2].ans);
    char msg[480];
    m3s__ui_unconfirmed(msg, sizeof(msg), ch, owner, store, a->opts.call_timeout_ms);
    json_decref(owner);
    json_decref(store);
    st = api_error(c, 503, "%s", msg);
  }
  else if(q->rc) {
    st = api_unavailable(c, a, q);
  }
  api_ask_free(k, 3);
  return st;
}
