/* The node clock of a K3s role's task (m3s/role.h, K3S_NODE_TIMEOUT and
 * CLEANUP_WAIT): a pure function, so that the rule is tested on its own
 * (tests/unit/check_role_node.c) and the role actor only feeds it times. */
#include <stdint.h>

#include "m3s/role.h"

static int64_t later(int64_t a, int64_t b)
{
  return a > b ? a : b;
}

int64_t m3s_role_node_since(const m3s_role_node_clock_t *c)
{
  if(!c->running_ms || !c->live_ms)
    return 0;
  return later(later(c->running_ms, c->last_ready_ms), c->live_ms);
}

int64_t m3s_role_node_deadline(const m3s_role_node_clock_t *c, int64_t timeout_ms,
                               int64_t cleanup_ms)
{
  int64_t since = m3s_role_node_since(c);
  if(timeout_ms <= 0 || !since)
    return INT64_MAX;
  return later(since + timeout_ms, c->running_ms + cleanup_ms);
}
