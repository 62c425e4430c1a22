/* The two servers bench/api_bench.sh measures, in one process:
 *
 *   - the REST API actor with its defaults (64 workers, keep-alive, Basic
 *     auth), in front of three small role actors that answer
 *     M3S_ROLE_STATUS like the real ones (a handful of tasks each);
 *   - a bare civetweb server with the same options whose only handler
 *     answers a constant: the ceiling for any handler on this machine.
 *
 * Both listen on 127.0.0.1 on free ports, printed as "api <port>" and
 * "bare <port>" on stdout. Runs until SIGTERM or SIGINT. Not a test.
 */
#include <civetweb.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/actor.h"
#include "m3s/api.h"
#include "m3s/config.h"
#include "m3s/log.h"
#include "m3s/role.h"

#define TASKS_PER_ROLE 3

typedef struct role {
  m3s_actor_t base;
} role_t;

static void json_drop(void *p)
{
  json_decref(p);
}

static void role_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  if(m->type != M3S_ROLE_STATUS)
    return;
  json_t *tasks = json_object();
  for(int i = 0; i < TASKS_PER_ROLE; i++) {
    char id[64];
    snprintf(id, sizeof(id), "m3sbench:%s:%08x-%04x", self->ops->name, 0x5eed0000u + (unsigned)i,
             i);
    json_object_set_new(tasks, id,
                        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:b}", "state", "TASK_RUNNING",
                                  "agent", "a7f3c-S0", "hostname", "node-1.local", "since",
                                  "2026-11-26T01:02:03.456789Z", "phase", "active",
                                  "agent_hostname", "node-1.local", "healthy", 1));
  }
  json_t *s = json_pack("{s:s, s:i, s:i, s:b, s:b, s:I, s:i, s:{s:f, s:f, s:f, s:f, s:f, s:f},"
                        " s:o}",
                        "role", self->ops->name, "desired", TASKS_PER_ROLE, "restore", 0,
                        "upstream_healthy", 1, "healthy", 1, "backoff_ms", (json_int_t)0,
                        "failures", 0, "resources", "cpus", 1.0, "cpus_limit", 2.0, "mem",
                        1024.0, "mem_limit", 2048.0, "disk", 1000.0, "disk_limit", 2000.0,
                        "tasks", tasks);
  m3s_msg_reply(m, m3s_msg_new(M3S_ROLE_STATUS, 0, s, json_drop));
}

static const m3s_actor_ops_t roles[3] = {
  { .name = "datastore", .size = sizeof(role_t), .handle = role_handle },
  { .name = "server", .size = sizeof(role_t), .handle = role_handle },
  { .name = "agent", .size = sizeof(role_t), .handle = role_handle },
};

static int constant(struct mg_connection *c, void *cbdata)
{
  static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             "Content-Length: 2\r\n\r\nok";
  mg_write(c, resp, sizeof(resp) - 1);
  return 200;
}

static const char *bench_env(const char *name, void *ctx)
{
  static const char *const kv[] = { "FRAMEWORK_HOSTNAME", "localhost", "AUTH_USERNAME", "bench",
                                    "AUTH_PASSWORD", "bench-password", NULL, NULL };
  for(const char *const *p = kv; p[0]; p += 2)
    if(!strcmp(p[0], name))
      return p[1];
  return NULL;
}

int main(void)
{
  m3s_config_t cfg;
  char err[512];
  const char *secret[] = { "bench-password" };

  if(m3s_config_load(&cfg, bench_env, NULL, err, sizeof(err))) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  m3s_log_init(M3S_LOG_WARN, secret, 1);
  m3s_signals_block();

  m3s_system_t *sys = m3s_system_new(&cfg);
  for(int i = 0; i < 3; i++)
    m3s_system_add(sys, &roles[i]);
  m3s_actor_t *api = m3s_system_add(sys, &m3s_api_ops);
  /* M3S_BENCH_STATUS_MAX_AGE_MS=-1: share only answers in the air, to
   * measure what reusing a recent answer buys. */
  const char *age = getenv("M3S_BENCH_STATUS_MAX_AGE_MS");
  m3s_api_opts_t o = { .bind_host = "127.0.0.1", .port = M3S_API_ANY_PORT,
                       .status_max_age_ms = age ? (int)strtol(age, NULL, 10) : 0 };
  m3s_api_set_opts(api, &o);
  if(m3s_system_start(sys)) {
    fprintf(stderr, "api_bench_server: the API did not start\n");
    return 1;
  }

  /* The ceiling: the same civetweb options as the API's defaults. */
  const char *options[] = { "listening_ports", "127.0.0.1:0", "num_threads", "64",
                            "request_timeout_ms", "5000", "keep_alive_timeout_ms", "2000",
                            "enable_keep_alive", "yes", "max_request_size", "16384",
                            "connection_queue", "64", "listen_backlog", "256",
                            "tcp_nodelay", "1", NULL };
  struct mg_callbacks cb;
  memset(&cb, 0, sizeof(cb));
  struct mg_context *bare = mg_start(&cb, NULL, options);
  if(!bare) {
    fprintf(stderr, "api_bench_server: the bare server did not start\n");
    return 1;
  }
  mg_set_request_handler(bare, "**", constant, NULL);
  struct mg_server_port sp;
  mg_get_server_ports(bare, 1, &sp);
  printf("api %d\nbare %d\n", m3s_api_port(api), sp.port);
  fflush(stdout);

  m3s_signals_wait();
  mg_stop(bare);
  m3s_system_stop(sys);
  m3s_system_free(sys);
  m3s_config_free(&cfg);
  m3s_log_shutdown();
  return 0;
}
