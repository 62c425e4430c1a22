/* Internal to src/runtime: shared between actor.c and system.c. */
#ifndef M3S_RUNTIME_INT_H
#define M3S_RUNTIME_INT_H

#include <stdint.h>

#include "m3s/actor.h"

m3s_actor_t *m3s__actor_new(m3s_system_t *sys, const m3s_actor_ops_t *ops,
                            const m3s_config_t *cfg);
/* Runs the actor until M3S_MSG_STOP; on the actor's thread. */
void m3s__actor_loop(m3s_actor_t *a);
/* After the thread is joined and every producer is gone. */
void m3s__actor_free(m3s_actor_t *a);

#endif
