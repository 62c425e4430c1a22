/* The TaskInfo builder: configuration + a task's placement -> the Mesos
 * TaskInfo JSON of a datastore, K3s server or K3s agent task (behaviour spec
 * §4, mesos-http-api.md §4), ready to go into the LAUNCH operation of an
 * ACCEPT. Pure module: no I/O (except m3s_task_id_new's random bytes), no
 * actors, no global state.
 *
 * Differences from the original M3s (spec §13.1 items 12, 13):
 *   - the datastore is MariaDB or etcd, never a mix (cfg guarantees exactly
 *     one of ds_mysql/ds_etcd), and servers get one K3S_DATASTORE_ENDPOINT;
 *   - every argv token is one argument without spaces: "--node-label",
 *     "m3s.aventer.biz/taskid=<id>"; "--kubelet-arg",
 *     "node-labels=m3s.aventer.biz/taskid=<id>"; "--with-node-id" (a k3s
 *     boolean flag; the original's "<id>" after it ended flag parsing);
 *     "--container-runtime-endpoint", "unix:///var/run/cri-dockerd.sock";
 *     "--node-taint", "<taint>"; empty tokens of K3S_*_STRING are dropped;
 *   - "--embedded-registry" only for servers;
 *   - servers and agents keep "cap-add=NET_ADMIN" (before SYS_ADMIN);
 *   - agents get no REDIS_* variables;
 *   - health checks set "type" explicitly;
 *   - memory-swap is computed from the memory limit for every role (the
 *     original used the limit only for the datastore), and rounded up where
 *     the original's rounding to whole GiB fell below it: never below the
 *     memory Docker gets, which Docker refuses;
 *   - docker.force_pull_image follows DOCKER_FORCE_PULL (always true in the
 *     original, which needs a registry for every launch);
 *   - container.network_infos is left out when there is no network name
 *     (the original sent [{"name": ""}]);
 *   - resources carry allocation_info {role} when the placement names the
 *     role (MULTI_ROLE; never "role"), all host ports go into one "ports"
 *     resource with one range per port mapping.
 * The server gets no Mesos health check, like the original: its bootstrap
 * downloads and installs k3s at start (spec §11.2), so the time until
 * 6443 answers is unbounded, and a failing check would make the executor
 * kill the task into a relaunch loop; server health is the K8s node Ready
 * condition (spec §7.2).
 *
 * Threads: pure functions of their arguments; any thread may call them.
 */
#ifndef M3S_TASKINFO_H
#define M3S_TASKINFO_H

#include <stddef.h>

#include <jansson.h>

#include "m3s/config-t.h"
#include "m3s/records.h"

/* Where a task goes; everything borrowed. */
typedef struct m3s_placement {
  const char *task_id;        /* new task id (required) */
  const char *agent_id;       /* Mesos agent of the offer (required) */
  const char *agent_hostname; /* hostname of that agent; the server gets
                                 --tls-san=<it> (NULL/"" = none) */
  const int *host_ports;      /* host ports chosen from the offer, one per
                                 port mapping, in mapping order (the server's
                                 first one is its fixed K3S_SERVER_PORT) */
  size_t n_host_ports;        /* must equal m3s_task_demand().n_ports */
  const char *role;           /* framework role the resources were offered
                                 to: allocation_info; NULL/"" = left to the
                                 master */
} m3s_placement_t;

/* The per-role resource settings the REST API can change at run time
 * (memory and disk in MB). */
typedef struct m3s_task_resources {
  double cpu, cpu_limit;
  double mem, mem_limit;
  double disk, disk_limit;
} m3s_task_resources_t;

/* Resources one task of the role needs, and how many host ports. */
typedef struct m3s_task_demand {
  double cpus, mem, disk;
  size_t n_ports;             /* datastore 1, server 2, agent 2 (+1 with
                                 K3S_AGENT_TCP_PORT) */
  int fixed_port;             /* server: K3S_SERVER_PORT (its first host
                                 port), else 0 */
} m3s_task_demand_t;

/* *out = the role's DS_* / K3S_SERVER_* / K3S_AGENT_* values of cfg; all
 * zero for M3S_ROLE_NONE. */
void m3s_task_resources_from_config(const m3s_config_t *cfg, m3s_role_t role,
                                    m3s_task_resources_t *out);

/* *out = what a task of the role needs; res NULL = from cfg. All zero for
 * M3S_ROLE_NONE. */
void m3s_task_demand(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                     m3s_role_t role, m3s_task_demand_t *out);

/* The TaskInfo (new reference) for the role; res NULL = from cfg. NULL with
 * one line in err when an argument is invalid: role NONE, missing task or
 * agent id, wrong number of host ports, a port outside 1..65535 or used
 * twice, a negative or non-finite resource, a limit below its request
 * (with ENFORCE_MESOS_TASK_LIMITS), labels that are not a JSON array of
 * {"key": string, "value": string}. */
json_t *m3s_taskinfo_build(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                           m3s_role_t role, const m3s_placement_t *p,
                           char *err, size_t errlen);

/* A new task id: 16 random bytes (getrandom, else /dev/urandom) as
 * 8-4-4-4-12 lowercase hex, NUL-terminated. Aborts if no randomness can be
 * had at all. */
void m3s_task_id_new(char out[37]);

#endif
