/* Types of the configuration (see m3s/config.h for the API).
 *
 * One field per environment variable of the original M3s, named after the
 * variable in snake_case, plus a few fields derived at load time (marked
 * "derived"). After a successful m3s_config_load():
 *   - every char * is non-NULL (an empty value is ""),
 *   - durations are int64_t milliseconds (suffix _ms),
 *   - floats are double, counts and ports are int, flags are bool.
 * The daemon's struct is read-only once loaded; any thread may read it. A
 * copy an actor keeps for run-time changes (m3s_config_copy) is its own:
 * only that actor reads or changes it.
 */
#ifndef M3S_CONFIG_T_H
#define M3S_CONFIG_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "m3s/log.h"

/* One KEY=VALUE item of a list variable (K3S_*NODE_ENV, custom docker
 * parameters), split at the first '='. */
typedef struct m3s_kv {
  char *key;
  char *value;
} m3s_kv_t;

/* A list variable in the order the user wrote it; items is NULL when n is 0. */
typedef struct m3s_kvlist {
  m3s_kv_t *items;
  size_t n;
} m3s_kvlist_t;

typedef struct m3s_config {
  /* Framework */
  char *framework_user;
  char *framework_name;            /* FRAMEWORK_NAME as given (a suffix) */
  char *fw;                        /* derived: "m3s" + framework_name; the
                                      Mesos name and Redis key prefix */
  char *framework_role;
  int framework_port;
  char *framework_bind;            /* "" = all interfaces */
  char *framework_hostname;
  char *framework_statefile_path;  /* unused */
  char *loglevel;                  /* LOGLEVEL as given (passed to tasks) */
  m3s_log_level_t log_level;       /* derived: parsed LOGLEVEL */
  bool m3s_plugins;                /* accepted, no Go plugins here */
  char *kafka_plugin_topic;        /* accepted, no Go plugins here */
  bool docker_running;
  char *tz;

  /* Mesos */
  char *mesos_master;              /* host:port as given */
  char *mesos_master_host;         /* derived; IPv6 without brackets */
  int mesos_master_port;           /* derived */
  char *mesos_username;
  char *mesos_password;
  char *mesos_principal;
  bool mesos_ssl;
  bool skip_ssl;
  int64_t mesos_failover_timeout_ms;
  int64_t mesos_backoff_min_ms;
  int64_t mesos_backoff_max_ms;
  int64_t mesos_call_timeout_ms;
  int mesos_max_event_size;        /* bytes */
  char *mesos_cni;
  char *docker_cni;
  char *domain;                    /* always starts with '.' */
  int portrange_from;
  int portrange_to;

  /* Timers */
  int64_t heartbeat_interval_ms;
  int64_t reconcile_wait_ms;
  int64_t cleanup_wait_ms;
  int64_t k3s_node_timeout_ms;
  int64_t revive_wait_ms;          /* unused */
  double refuse_offers;            /* DECLINE filters.refuse_seconds */
  int64_t restart_backoff_min_ms;
  int64_t restart_backoff_max_ms;
  int64_t rollout_drain_timeout_ms;
  int rollout_max_unavailable;
  int rollout_max_surge;

  /* REST API and TLS */
  char *auth_username;
  char *auth_password;
  char *ssl_crt_base64;
  char *ssl_key_base64;
  char *ssl_crt_pem;               /* derived: decoded PEM, NUL-terminated */
  size_t ssl_crt_pem_len;
  char *ssl_key_pem;               /* derived: decoded PEM, NUL-terminated */
  size_t ssl_key_pem_len;

  /* Redis */
  char *redis_server;              /* host:port as given */
  char *redis_host;                /* derived; IPv6 without brackets */
  int redis_port;                  /* derived */
  char *redis_password;
  int redis_db;
  char *redis_sentinels;           /* "host:port,host:port"; "" = REDIS_SERVER */
  char *redis_master_name;
  char *redis_sentinel_password;
  int redis_wait_replicas;
  int64_t redis_wait_timeout_ms;

  /* Datastore */
  int ds_count;
  bool ds_mysql;                   /* exactly one of ds_mysql/ds_etcd is true */
  bool ds_etcd;
  int ds_port;
  char *ds_mysql_username;
  char *ds_mysql_password;
  bool ds_mysql_ssl;
  double ds_cpu;
  double ds_cpu_limit;
  double ds_mem;                   /* MB */
  double ds_mem_limit;
  double ds_disk;                  /* MB */
  double ds_disk_limit;
  char *image_mysql;
  char *image_etcd;
  char *volume_ds;
  char *k3s_ds_constraint;         /* as given */
  char *k3s_ds_constraint_host;    /* derived: lower-cased hostname or "" */

  /* K3s, common to server and agent */
  int k3s_server_count;
  int k3s_agent_count;
  char *image_k3s;
  char *kubernetes_version;
  char *k3s_token;
  char *kubeconfig;
  char *bootstrap_url;
  bool k3s_docker;
  bool k3s_enable_taint;
  bool k3s_disable_scheduling;
  bool enable_registry_mirror;
  char *k3s_custom_domain;         /* unused */
  char *k3s_node_env_delimiter;
  char *k3s_node_env;              /* as given */
  m3s_kvlist_t k3s_node_env_list;  /* derived */

  /* K3s server */
  char *k3s_server_string;
  int k3s_server_port;
  double k3s_server_cpu;
  double k3s_server_cpu_limit;
  double k3s_server_mem;
  double k3s_server_mem_limit;
  double k3s_server_disk;
  double k3s_server_disk_limit;
  char *k3s_server_labels;         /* raw JSON array of {key,value}, or "" */
  char *k3s_server_node_env;
  m3s_kvlist_t k3s_server_node_env_list;
  char *k3s_server_custom_docker_parameter;
  m3s_kvlist_t k3s_server_custom_docker_parameter_list;
  char *k3s_server_constraint;
  char *k3s_server_constraint_host;
  char *volume_k3s_server;

  /* K3s agent */
  char *k3s_agent_string;
  double k3s_agent_cpu;
  double k3s_agent_cpu_limit;
  double k3s_agent_mem;
  double k3s_agent_mem_limit;
  double k3s_agent_disk;
  double k3s_agent_disk_limit;
  int k3s_agent_tcp_port;          /* 0 = none */
  int k3s_max_per_agent;           /* per role; 0 = no limit */
  char *k3s_agent_labels;
  char *k3s_agent_node_env;
  m3s_kvlist_t k3s_agent_node_env_list;
  char *k3s_agent_custom_docker_parameter;
  m3s_kvlist_t k3s_agent_custom_docker_parameter_list;
  char *k3s_agent_constraint;
  char *k3s_agent_constraint_host;

  /* Docker */
  char *k3s_node_docker_parameter_delimiter;
  char *volume_driver;
  char *docker_shm_size;
  char *k3s_container_disk;        /* used as Docker shm-size */
  char *docker_ulimit;
  double docker_memory_swap;       /* MB */
  char *docker_sock;               /* unused */
  bool cgroup_v2;
  bool restrict_disk_allocation;
  char *custom_docker_runtime;
  bool enforce_mesos_task_limits;
  bool docker_force_pull;          /* docker.force_pull_image */

  /* Vault */
  char *vault_url;
  char *vault_token;
  int64_t vault_timeout_ms;
} m3s_config_t;

#endif
