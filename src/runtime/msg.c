/* Message allocation and retirement. See include/m3s/msg.h for the rules. */
#include <errno.h>
#include <stdlib.h>

#include "m3s/msg.h"
#include "m3s/reply.h"
#include "m3s/xalloc.h"

m3s_msg_t *m3s_msg_new(uint32_t type, int64_t arg, void *payload, m3s_drop_cb drop)
{
  m3s_msg_t *m = m3s_xcalloc(1, sizeof(*m));
  atomic_init(&m->next, NULL);
  m->type = type;
  m->arg = arg;
  m->payload = payload;
  m->drop = drop;
  return m;
}

void *m3s_msg_take(m3s_msg_t *m)
{
  void *p = m->payload;
  m->payload = NULL;
  return p;
}

void m3s__msg_clear(m3s_msg_t *m)
{
  if(m->payload) {
    if(m->drop)
      m->drop(m->payload);
    else
      free(m->payload);
    m->payload = NULL;
  }
  if(m->reply) {
    /* Nobody answered: tell the waiter now instead of letting it time out. */
    m3s_reply_post(m->reply, NULL);
    m3s_reply_unref(m->reply);
    m->reply = NULL;
  }
}

void m3s_msg_free(m3s_msg_t *m)
{
  if(!m)
    return;
  m3s__msg_clear(m);
  free(m);
}

int m3s_msg_reply(m3s_msg_t *request, m3s_msg_t *answer)
{
  m3s_reply_t *r = request->reply;
  if(!r) {
    m3s_msg_free(answer);
    return -ENOENT;
  }
  request->reply = NULL;
  int rc = m3s_reply_post(r, answer) ? 0 : -ENOENT;
  m3s_reply_unref(r);
  return rc;
}
