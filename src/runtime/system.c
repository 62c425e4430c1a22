/* The set of actors of one process: start in dependency order, stop in the
 * reverse order, and the process's signal handling.
 *
 * The actor list is filled by the main thread before the first actor starts
 * and never changes afterwards (pthread_create publishes it to each actor
 * thread), so m3s_system_find needs no lock. Start results come back through
 * a reply slot, the same mechanism civetweb threads will use.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/actor.h"
#include "m3s/log.h"
#include "m3s/reply.h"
#include "m3s/xalloc.h"
#include "runtime_int.h"

struct m3s_system {
  const m3s_config_t *cfg;
  m3s_actor_t **actors;
  size_t n, cap;
};

typedef struct start_arg {
  m3s_actor_t *actor;
  m3s_reply_t *slot; /* one reference for the thread */
} start_arg_t;

m3s_system_t *m3s_system_new(const m3s_config_t *cfg)
{
  m3s_system_t *s = m3s_xcalloc(1, sizeof(*s));
  s->cfg = cfg;
  return s;
}

m3s_actor_t *m3s_system_add(m3s_system_t *sys, const m3s_actor_ops_t *ops)
{
  m3s_actor_t *a = m3s__actor_new(sys, ops, sys->cfg);
  if(!a)
    return NULL;
  if(sys->n == sys->cap) {
    sys->cap = sys->cap ? sys->cap * 2 : 8;
    sys->actors = m3s_xrealloc(sys->actors, sys->cap * sizeof(*sys->actors));
  }
  sys->actors[sys->n++] = a;
  return a;
}

m3s_actor_t *m3s_system_find(m3s_system_t *sys, const char *name)
{
  for(size_t i = 0; i < sys->n; i++)
    if(strcmp(sys->actors[i]->ops->name, name) == 0)
      return sys->actors[i];
  return NULL;
}

static void *actor_thread(void *p)
{
  start_arg_t arg = *(start_arg_t *)p;
  m3s_actor_t *a = arg.actor;
  free(p);

  m3s_log_set_name(a->ops->name);
  pthread_setname_np(pthread_self(), a->ops->name);
  int rc = a->ops->start ? a->ops->start(a) : 0;
  m3s_reply_post(arg.slot, m3s_msg_new(M3S_MSG_NONE, rc, NULL, NULL));
  m3s_reply_unref(arg.slot);
  if(rc == 0)
    m3s__actor_loop(a);
  if(a->ops->stop)
    a->ops->stop(a);
  m3s_debug("stopped");
  return NULL;
}

static int start_one(m3s_actor_t *a)
{
  pthread_attr_t attr;
  m3s_reply_t *slot = m3s_reply_new();
  start_arg_t *arg = m3s_xmalloc(sizeof(*arg));
  m3s_msg_t *answer = NULL;
  int rc;

  arg->actor = a;
  arg->slot = m3s_reply_ref(slot);
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 1024 * 1024);
  rc = pthread_create(&a->thread, &attr, actor_thread, arg);
  pthread_attr_destroy(&attr);
  if(rc != 0) {
    free(arg);
    m3s_reply_unref(slot); /* the thread's reference */
    m3s_reply_unref(slot);
    m3s_error("cannot start actor %s: %s", a->ops->name, strerror(rc));
    return -rc;
  }
  rc = m3s_reply_wait(slot, -1, &answer);
  m3s_reply_unref(slot);
  if(rc == 0)
    rc = (int)answer->arg;
  m3s_msg_free(answer);
  if(rc != 0) {
    /* start() failed: the thread has run stop() and is exiting. */
    pthread_join(a->thread, NULL);
    m3s_error("actor %s failed to start: %s", a->ops->name, strerror(-rc));
    return rc;
  }
  a->started = true;
  return 0;
}

int m3s_system_start(m3s_system_t *sys)
{
  for(size_t i = 0; i < sys->n; i++) {
    int rc = start_one(sys->actors[i]);
    if(rc != 0) {
      m3s_system_stop(sys);
      return rc;
    }
  }
  return 0;
}

void m3s_system_stop(m3s_system_t *sys)
{
  for(size_t i = sys->n; i-- > 0;) {
    m3s_actor_t *a = sys->actors[i];
    if(!a->started)
      continue;
    m3s_send(a, m3s_msg_new(M3S_MSG_STOP, 0, NULL, NULL));
    pthread_join(a->thread, NULL);
    a->started = false;
  }
}

void m3s_system_free(m3s_system_t *sys)
{
  if(!sys)
    return;
  /* Every actor thread has been joined, so no producer is left (mailbox
   * invariant 7): retire what is still queued and free the actors. */
  for(size_t i = 0; i < sys->n; i++)
    m3s__actor_free(sys->actors[i]);
  free(sys->actors);
  free(sys);
}

/* ---- signals ------------------------------------------------------------ */

static sigset_t waited;

void m3s_signals_block(void)
{
  struct sigaction ign;
  memset(&ign, 0, sizeof(ign));
  ign.sa_handler = SIG_IGN;
  sigaction(SIGPIPE, &ign, NULL);
  sigemptyset(&waited);
  sigaddset(&waited, SIGINT);
  sigaddset(&waited, SIGTERM);
  sigaddset(&waited, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &waited, NULL);
}

int m3s_signals_wait(void)
{
  for(;;) {
    siginfo_t si;
    int sig = sigwaitinfo(&waited, &si);
    if(sig == -1)
      continue; /* EINTR */
    if(sig == SIGHUP) {
      m3s_info("SIGHUP ignored: the configuration is read once at start; restart to apply changes");
      continue;
    }
    return sig;
  }
}
