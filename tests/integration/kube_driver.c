/* The kube actor on its own, driven line by line from stdin, for
 * test_kube.py's drain tests: the real kube actor and the real store
 * (REDIS_SERVER etc. from the environment, as the daemon reads them), and
 * an "offers" stand-in that tells where the K3s API is (KUBE_DRIVER_HOST,
 * K3S_SERVER_PORT) and whether agents are cordoned. No Mesos, no roles.
 *
 * Commands (one answer line each):
 *   drain <task>     M3S_KUBE_DRAIN            -> ok
 *   drain            M3S_KUBE_DRAIN, no task   -> ok
 *   release <task>   M3S_KUBE_RELEASE          -> ok
 *   ds <-1|0|1>      K3SDisableScheduling unknown/false/true -> ok
 *   status           M3S_KUBE_STATUS (brief)   -> the JSON on one line
 * End of input stops the actors; the exit code is 0 when all went well.
 */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/actor.h"
#include "m3s/config.h"
#include "m3s/kube.h"
#include "m3s/log.h"
#include "m3s/msg.h"
#include "m3s/offers.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

enum { DRV_SET_DS = M3S_MSG_USER + 9000 };

/* Read-only once the actors run (set before m3s_system_start). */
static const char *api_host = "127.0.0.1";
static int api_port;

typedef struct offers_standin {
  m3s_actor_t base;
  int ds; /* -1 unknown */
} offers_standin_t;

static int standin_start(m3s_actor_t *self)
{
  ((offers_standin_t *)self)->ds = -1;
  return 0;
}

static void standin_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  offers_standin_t *o = (offers_standin_t *)self;
  if(msg->type == DRV_SET_DS) {
    o->ds = (int)msg->arg;
  }
  else if(msg->type == M3S_OFFERS_STATUS) {
    json_t *st = json_pack("{s:s, s:i}", "server_hostname", api_host, "server_port", api_port);
    if(o->ds >= 0)
      json_object_set_new(st, "disable_scheduling", json_boolean(o->ds));
    m3s_msg_reply(msg, m3s_msg_new(M3S_OFFERS_STATUS, 0, st, m3s_json_drop));
  }
}

static void standin_stop(m3s_actor_t *self)
{
  (void)self;
}

static const m3s_actor_ops_t standin_ops = {
  .name = "offers",
  .size = sizeof(offers_standin_t),
  .start = standin_start,
  .handle = standin_handle,
  .stop = standin_stop,
};

static const char *real_getenv(const char *name, void *ctx)
{
  (void)ctx;
  return getenv(name);
}

int main(void)
{
  m3s_config_t cfg;
  char err[512], line[1024];
  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  if(m3s_config_load(&cfg, real_getenv, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "kube_driver: %s\n", err);
    return 2;
  }
  if(getenv("KUBE_DRIVER_HOST"))
    api_host = getenv("KUBE_DRIVER_HOST");
  api_port = cfg.k3s_server_port;
  m3s_log_init(cfg.log_level, NULL, 0);
  m3s_signals_block();
  m3s_system_t *sys = m3s_system_new(&cfg);
  m3s_system_add(sys, &m3s_store_ops);
  m3s_actor_t *offers = m3s_system_add(sys, &standin_ops);
  m3s_actor_t *kube = m3s_system_add(sys, &m3s_kube_ops);
  int rc = m3s_system_start(sys);
  if(rc) {
    fprintf(stderr, "kube_driver: start-up failed: %d\n", rc);
    goto out;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  while(fgets(line, sizeof(line), stdin)) {
    line[strcspn(line, "\r\n")] = '\0';
    char *arg = strchr(line, ' ');
    if(arg)
      *arg++ = '\0';
    if(!strcmp(line, "drain") || !strcmp(line, "release")) {
      uint32_t type = line[0] == 'd' ? M3S_KUBE_DRAIN : M3S_KUBE_RELEASE;
      m3s_send(kube, m3s_msg_new(type, 0, arg ? m3s_xstrdup(arg) : NULL, free));
      puts("ok");
    }
    else if(!strcmp(line, "ds") && arg) {
      m3s_send(offers, m3s_msg_new(DRV_SET_DS, atoi(arg), NULL, NULL));
      puts("ok");
    }
    else if(!strcmp(line, "status")) {
      m3s_msg_t *ans = NULL;
      int c = m3s_call(kube, m3s_msg_new(M3S_KUBE_STATUS, M3S_KUBE_BRIEF, NULL, NULL), 10000,
                       &ans);
      json_t *st = c == 0 && ans ? m3s_msg_take(ans) : NULL;
      m3s_msg_free(ans);
      char *text = st ? json_dumps(st, JSON_COMPACT) : NULL;
      puts(text ? text : "{\"driver_error\":\"no answer\"}");
      free(text);
      json_decref(st);
    }
    else {
      puts("{\"driver_error\":\"unknown command\"}");
    }
  }
  m3s_system_stop(sys);
out:
  m3s_system_free(sys);
  m3s_config_free(&cfg);
  m3s_log_shutdown();
  curl_global_cleanup();
  return rc ? 1 : 0;
}
