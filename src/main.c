/* m3s: parse the configuration, start the actors, wait for SIGTERM/SIGINT,
 * stop the actors in reverse order, exit 0.
 *
 * Exit codes: 0 clean stop; 2 bad command line or configuration (one line on
 * stderr says what), including credentials Redis refuses; 1 an actor could
 * not start for another reason.
 */
#include <curl/curl.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "m3s/actor.h"
#include "m3s/api.h"
#include "m3s/config.h"
#include "m3s/kube.h"
#include "m3s/log.h"
#include "m3s/mesos.h"
#include "m3s/offers.h"
#include "m3s/role.h"
#include "m3s/rollout.h"
#include "m3s/store.h"

#define MAX_SECRETS 32

static const char *real_getenv(const char *name, void *ctx)
{
  (void)ctx;
  return getenv(name);
}

static void usage(FILE *out)
{
  fprintf(out,
          "Usage: m3s [--help | --version | --print-config]\n"
          "\n"
          "M3s runs and keeps alive a Kubernetes (K3s) cluster on Apache Mesos.\n"
          "It is configured only through environment variables:\n\n");
}

/* At debug level, the effective configuration (masked as in --print-config)
 * goes to the log once, so an operator can see what the daemon runs with. */
static void log_config(const m3s_config_t *cfg)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f;

  if(m3s__log_level > M3S_LOG_DEBUG || !(f = open_memstream(&buf, &len)))
    return;
  m3s_config_print(cfg, f);
  fclose(f);
  for(char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
    nl = strchr(line, '\n');
    if(nl)
      *nl = '\0';
    m3s_debug("config %s", line);
  }
  free(buf);
}

int main(int argc, char **argv)
{
  enum { RUN, HELP, VERSION, PRINT } mode = RUN;
  m3s_config_t cfg;
  char err[512];
  const char *secrets[MAX_SECRETS];
  int rc;

  for(int i = 1; i < argc; i++) {
    if(!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
      mode = HELP;
    else if(!strcmp(argv[i], "--version") || !strcmp(argv[i], "-v"))
      mode = VERSION;
    else if(!strcmp(argv[i], "--print-config"))
      mode = PRINT;
    else {
      fprintf(stderr, "m3s: unknown argument \"%s\" (try --help)\n", argv[i]);
      return 2;
    }
  }
  if(mode == HELP) {
    usage(stdout);
    m3s_config_print_help(stdout);
    return 0;
  }
  if(mode == VERSION) {
    printf("m3s %s\n", M3S_VERSION);
    return 0;
  }

  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    fprintf(stderr, "m3s: cannot initialise libcurl\n");
    return 1;
  }
  if(m3s_config_load(&cfg, real_getenv, NULL, err, sizeof(err)) != 0) {
    fprintf(stderr, "m3s: %s\n", err);
    curl_global_cleanup();
    return 2;
  }
  if(mode == PRINT) {
    m3s_config_print(&cfg, stdout);
    m3s_config_free(&cfg);
    curl_global_cleanup();
    return 0;
  }

  m3s_log_init(cfg.log_level, secrets, m3s_config_secrets(&cfg, secrets, MAX_SECRETS));
  log_config(&cfg);
  /* glibc gives each thread that mallocs its own arena (up to 8 per core);
   * memory freed by another actor's thread stays in the arena it came from,
   * and a thread that finds its arena busy moves to another one. Actors
   * hand most of what they allocate to another actor, so one arena: the
   * peak RSS of a 10,000-task recovery (bench/recovery_bench.py) is
   * 29-30 MiB with one, 30-36 MiB with two (the higher when the machine is
   * busy), at no measurable cost in time (the small blocks come from each
   * thread's cache, not the arena). An operator's MALLOC_ARENA_MAX still
   * wins. */
  if(!getenv("MALLOC_ARENA_MAX"))
    mallopt(M_ARENA_MAX, 1);
  m3s_signals_block(); /* before any thread exists: they all inherit it */

  /* Actors start in this order and stop in the reverse one: the Mesos actor
   * stops first (no more events), the store last (every write flushed).
   * Messages to an actor that has not started yet wait in its mailbox. */
  m3s_system_t *sys = m3s_system_new(&cfg);
  m3s_system_add(sys, &m3s_store_ops);
  m3s_actor_t *offers = m3s_system_add(sys, &m3s_offers_ops);
  /* The agent role first: its records are the many, and each role's load
   * waits in the store's queue behind those asked for before it. */
  m3s_system_add(sys, &m3s_role_agent_ops);
  m3s_system_add(sys, &m3s_role_datastore_ops);
  m3s_system_add(sys, &m3s_role_server_ops);
  m3s_actor_t *mesos = m3s_system_add(sys, &m3s_mesos_ops);
  m3s_mesos_set_sinks(mesos, offers, offers);
  m3s_system_add(sys, &m3s_kube_ops);
  m3s_system_add(sys, &m3s_rollout_ops);
  m3s_actor_t *api = m3s_system_add(sys, &m3s_api_ops); /* last: stops first */
  if(cfg.framework_bind[0])
    m3s_api_set_opts(api, &(m3s_api_opts_t){ .bind_host = cfg.framework_bind });
  rc = m3s_system_start(sys);
  if(rc == 0) {
    m3s_info("m3s %s started as framework %s (pid %ld)", M3S_VERSION, cfg.fw, (long)getpid());
    int sig = m3s_signals_wait();
    m3s_info("%s received: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    m3s_system_stop(sys);
    m3s_info("stopped");
  }
  else {
    m3s_error("start-up failed: %s", strerror(-rc));
  }
  m3s_system_free(sys);
  m3s_config_free(&cfg);
  m3s_log_shutdown();
  curl_global_cleanup();
  /* A refused Redis password or DB index is a configuration the daemon
   * cannot run with, like a bad value: exit code 2. */
  return rc == 0 ? 0 : (rc == -EACCES || rc == -EINVAL) ? 2 : 1;
}
