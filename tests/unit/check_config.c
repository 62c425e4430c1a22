/* Unit tests of the configuration loader (src/runtime/config.c).
 *
 * Every test loads from a fake environment (name/value pairs handed to
 * m3s_config_load as ctx), never from the real one. The Vault tests run a
 * small fake Vault (civetweb, 127.0.0.1, port picked by the kernel) that
 * checks X-Vault-Token and answers KV v2 JSON. Fork mode is fine, and so is
 * CK_FORK=no (used for the sanitizer run, so leaks are seen).
 */
#include <arpa/inet.h>
#include <check.h>
#include <civetweb.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "m3s/config.h"
#include "check_main.h"

/* ---- fake environment ---- */

static char err[512];

static int load_kv(m3s_config_t *cfg, const char *const *kv)
{
  memset(err, 'X', sizeof(err) - 1);  /* garbage, to see that load writes it */
  err[sizeof(err) - 1] = '\0';
  return m3s_config_load(cfg, m3s_check_getenv, (void *)kv, err, sizeof(err));
}

/* LOAD(&cfg, "NAME", "value", ...); LOAD(&cfg, NULL) for an empty env. */
#define LOAD(cfg, ...) load_kv((cfg), (const char *const[]){ __VA_ARGS__, NULL, NULL })

/* The variable names of the original (behaviour spec §2.2), written out here
 * independently of the table so that a missing entry is caught. */
static const char *const original_names[] = {
  "FRAMEWORK_USER", "FRAMEWORK_NAME", "FRAMEWORK_ROLE", "FRAMEWORK_PORT",
  "FRAMEWORK_HOSTNAME", "FRAMEWORK_STATEFILE_PATH", "MESOS_MASTER",
  "MESOS_USERNAME", "MESOS_PASSWORD", "MESOS_PRINCIPAL", "MESOS_SSL", "SKIP_SSL",
  "MESOS_CNI", "DOCKER_CNI", "DOMAIN", "PORTRANGE_FROM", "PORTRANGE_TO",
  "HEARTBEAT_INTERVAL", "RECONCILE_WAIT", "CLEANUP_WAIT", "K3S_NODE_TIMEOUT",
  "REVIVE_WAIT", "REFUSE_OFFERS", "LOGLEVEL", "AUTH_USERNAME", "AUTH_PASSWORD",
  "SSL_CRT_BASE64", "SSL_KEY_BASE64", "REDIS_SERVER", "REDIS_PASSWORD", "REDIS_DB",
  "M3S_PLUGINS", "DOCKER_RUNNING", "TZ", "DS_COUNT", "K3S_SERVER_COUNT",
  "K3S_AGENT_COUNT", "DS_MYSQL", "DS_ETCD", "DS_PORT", "DS_MYSQL_USERNAME",
  "DS_MYSQL_PASSWORD", "DS_MYSQL_SSL", "DS_CPU", "DS_CPU_LIMIT", "DS_MEM",
  "DS_MEM_LIMIT", "DS_DISK", "DS_DISK_LIMIT", "IMAGE_MYSQL", "IMAGE_ETCD",
  "IMAGE_K3S", "VOLUME_DRIVER", "VOLUME_DS", "VOLUME_K3S_SERVER",
  "K3S_DS_CONSTRAINT", "K3S_SERVER_CONSTRAINT", "K3S_AGENT_CONSTRAINT",
  "KUBERNETES_VERSION", "K3S_TOKEN", "KUBECONFIG", "BOOTSTRAP_URL",
  "K3S_SERVER_STRING", "K3S_AGENT_STRING", "K3S_SERVER_PORT", "K3S_SERVER_CPU",
  "K3S_SERVER_CPU_LIMIT", "K3S_SERVER_MEM", "K3S_SERVER_MEM_LIMIT",
  "K3S_SERVER_DISK", "K3S_SERVER_DISK_LIMIT", "K3S_AGENT_CPU",
  "K3S_AGENT_CPU_LIMIT", "K3S_AGENT_MEM", "K3S_AGENT_MEM_LIMIT", "K3S_AGENT_DISK",
  "K3S_AGENT_DISK_LIMIT", "K3S_AGENT_TCP_PORT", "K3S_SERVER_LABELS",
  "K3S_AGENT_LABELS", "K3S_NODE_ENV", "K3S_SERVER_NODE_ENV", "K3S_AGENT_NODE_ENV",
  "K3S_NODE_ENV_DELIMITER", "K3S_SERVER_CUSTOM_DOCKER_PARAMETER",
  "K3S_AGENT_CUSTOM_DOCKER_PARAMETER", "K3S_NODE_DOCKER_PARAMETER_DELIMITER",
  "K3S_DOCKER", "K3S_ENABLE_TAINT", "K3S_DISABLE_SCHEDULING", "K3S_CONTAINER_DISK",
  "DOCKER_SHM_SIZE", "DOCKER_ULIMIT", "DOCKER_MEMORY_SWAP", "DOCKER_SOCK",
  "CGROUP_V2", "RESTRICT_DISK_ALLOCATION", "CUSTOM_DOCKER_RUNTIME",
  "ENABLE_REGISTRY_MIRROR", "ENFORCE_MESOS_TASK_LIMITS", "K3S_CUSTOM_DOMAIN",
  "VAULT_TOKEN", "VAULT_URL", "VAULT_TIMEOUT", "KAFKA_PLUGIN_TOPIC",
};
#define NORIGINAL (sizeof(original_names) / sizeof(original_names[0]))

/* Variables m3s adds to the original's (documented in the README). */
static const char *const added_names[] = {
  "MESOS_FAILOVER_TIMEOUT", "MESOS_BACKOFF_MIN", "MESOS_BACKOFF_MAX",
  "MESOS_CALL_TIMEOUT", "MESOS_MAX_EVENT_SIZE", "RESTART_BACKOFF_MIN",
  "RESTART_BACKOFF_MAX", "K3S_MAX_PER_AGENT", "FRAMEWORK_BIND", "DOCKER_FORCE_PULL",
  "REDIS_SENTINELS", "REDIS_MASTER_NAME", "REDIS_SENTINEL_PASSWORD",
  "REDIS_WAIT_REPLICAS", "REDIS_WAIT_TIMEOUT", "ROLLOUT_DRAIN_TIMEOUT",
  "ROLLOUT_MAX_UNAVAILABLE", "ROLLOUT_MAX_SURGE",
};
#define NADDED (sizeof(added_names) / sizeof(added_names[0]))

static bool cfg_is_zero(const m3s_config_t *cfg)
{
  static const m3s_config_t zero;
  return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

/* Loads NAME=value alone and checks the failure: -EINVAL, one line that
 * starts with NAME="value" and contains needle (if given), cfg left empty. */
static void expect_bad(const char *name, const char *value, const char *needle)
{
  m3s_config_t cfg;
  char prefix[300];
  size_t o;
  int rc = LOAD(&cfg, name, value);

  ck_assert_msg(rc == -EINVAL, "%s=\"%s\" was accepted (rc %d)", name, value, rc);
  /* The value is quoted with '"' and '\\' escaped, as in a C string. */
  o = (size_t)snprintf(prefix, sizeof(prefix), "%s=\"", name);
  for(const char *c = value; *c && o < sizeof(prefix) - 3; c++) {
    if(*c == '"' || *c == '\\')
      prefix[o++] = '\\';
    prefix[o++] = *c;
  }
  prefix[o++] = '"';
  prefix[o] = '\0';
  ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
                "error for %s does not start with %s: %s", name, prefix, err);
  ck_assert_msg(!strchr(err, '\n'), "error is not one line: %s", err);
  if(needle)
    ck_assert_msg(strstr(err, needle), "error lacks \"%s\": %s", needle, err);
  ck_assert(cfg_is_zero(&cfg));
}

static char *print_to_string(const m3s_config_t *cfg)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);

  ck_assert_ptr_nonnull(f);
  m3s_config_print(cfg, f);
  ck_assert_int_eq(fclose(f), 0);
  return buf;
}

static char *help_to_string(void)
{
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);

  ck_assert_ptr_nonnull(f);
  m3s_config_print_help(f);
  ck_assert_int_eq(fclose(f), 0);
  return buf;
}

/* The line "NAME=..." of print output, or NULL. */
static const char *find_line(const char *text, const char *name)
{
  size_t nl = strlen(name);

  for(const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if(strncmp(p, name, nl) == 0 && p[nl] == '=')
      return p;
  return NULL;
}

/* text has exactly this whole line. */
static void expect_line(const char *text, const char *line)
{
  const char *eq = strchr(line, '=');
  char name[100];

  ck_assert_ptr_nonnull(eq);
  snprintf(name, sizeof(name), "%.*s", (int)(eq - line), line);
  const char *p = find_line(text, name);
  ck_assert_msg(p, "print output lacks %s", name);
  ck_assert_msg(strncmp(p, line, strlen(line)) == 0 && p[strlen(line)] == '\n',
                "print output has %.*s, not %s", (int)strcspn(p, "\n"), p, line);
}

/* ---- defaults ---- */

START_TEST(test_defaults)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, NULL), 0);
  ck_assert_str_eq(err, "");
  ck_assert_str_eq(cfg.framework_user, "root");
  ck_assert_str_eq(cfg.framework_name, "");
  ck_assert_str_eq(cfg.fw, "m3s");
  ck_assert_str_eq(cfg.framework_role, "m3s");
  ck_assert_int_eq(cfg.framework_port, 10000);
  ck_assert_ptr_nonnull(cfg.framework_hostname);
  ck_assert(cfg.framework_hostname[0] != '\0');
  ck_assert_str_eq(cfg.framework_statefile_path, "/tmp");
  ck_assert_str_eq(cfg.loglevel, "DEBUG");
  ck_assert_int_eq(cfg.log_level, M3S_LOG_DEBUG);
  ck_assert(!cfg.m3s_plugins);
  ck_assert_str_eq(cfg.kafka_plugin_topic, "m3s_log");
  ck_assert(!cfg.docker_running);
  ck_assert_str_eq(cfg.tz, "Etc/UTC");

  ck_assert_str_eq(cfg.mesos_master, "127.0.0.1:5050");
  ck_assert_str_eq(cfg.mesos_master_host, "127.0.0.1");
  ck_assert_int_eq(cfg.mesos_master_port, 5050);
  ck_assert_str_eq(cfg.mesos_username, "");
  ck_assert_str_eq(cfg.mesos_password, "");
  ck_assert_str_eq(cfg.mesos_principal, "");
  ck_assert(!cfg.mesos_ssl);
  ck_assert(cfg.skip_ssl);
  ck_assert_str_eq(cfg.mesos_cni, "");
  ck_assert_str_eq(cfg.docker_cni, "bridge");
  ck_assert_str_eq(cfg.domain, ".local");
  ck_assert_int_eq(cfg.portrange_from, 31000);
  ck_assert_int_eq(cfg.portrange_to, 32000);

  ck_assert_int_eq(cfg.heartbeat_interval_ms, 15000);
  ck_assert_int_eq(cfg.reconcile_wait_ms, 600000);
  ck_assert_int_eq(cfg.cleanup_wait_ms, 300000);
  ck_assert_int_eq(cfg.k3s_node_timeout_ms, 600000);
  ck_assert_int_eq(cfg.revive_wait_ms, 60000);
  ck_assert_double_eq(cfg.refuse_offers, 60.0);

  ck_assert_str_eq(cfg.auth_username, "");
  ck_assert_str_eq(cfg.auth_password, "");
  ck_assert_str_eq(cfg.ssl_crt_base64, "");
  ck_assert_str_eq(cfg.ssl_key_base64, "");
  ck_assert_str_eq(cfg.ssl_crt_pem, "");
  ck_assert_str_eq(cfg.ssl_key_pem, "");
  ck_assert_uint_eq(cfg.ssl_crt_pem_len, 0);
  ck_assert_uint_eq(cfg.ssl_key_pem_len, 0);

  ck_assert_str_eq(cfg.redis_server, "127.0.0.1:6379");
  ck_assert_str_eq(cfg.redis_host, "127.0.0.1");
  ck_assert_int_eq(cfg.redis_port, 6379);
  ck_assert_str_eq(cfg.redis_password, "");
  ck_assert_int_eq(cfg.redis_db, 1);

  ck_assert_int_eq(cfg.ds_count, 1);
  ck_assert(cfg.ds_mysql);
  ck_assert(!cfg.ds_etcd);
  ck_assert_int_eq(cfg.ds_port, 3306);
  ck_assert_str_eq(cfg.ds_mysql_username, "root");
  ck_assert_str_eq(cfg.ds_mysql_password, "password");
  ck_assert(!cfg.ds_mysql_ssl);
  ck_assert_double_eq(cfg.ds_cpu, 1.0);
  ck_assert_double_eq(cfg.ds_cpu_limit, 1.0);
  ck_assert_double_eq(cfg.ds_mem, 1000.0);
  ck_assert_double_eq(cfg.ds_mem_limit, 1000.0);
  ck_assert_double_eq(cfg.ds_disk, 10000.0);
  ck_assert_double_eq(cfg.ds_disk_limit, 10000.0);
  ck_assert_str_eq(cfg.image_mysql, "docker.io/mariadb:10.8.3");
  ck_assert_str_eq(cfg.image_etcd, "quay.io/coreos/etcd:v3.5.1");
  ck_assert_str_eq(cfg.volume_ds, "/data/k3s/datastore");
  ck_assert_str_eq(cfg.k3s_ds_constraint, "");
  ck_assert_str_eq(cfg.k3s_ds_constraint_host, "");

  ck_assert_int_eq(cfg.k3s_server_count, 1);
  ck_assert_int_eq(cfg.k3s_agent_count, 1);
  ck_assert_str_eq(cfg.image_k3s, "avhost/ubuntu-m3s:22.04-3");
  ck_assert_str_eq(cfg.kubernetes_version, "v1.31.5");
  ck_assert_str_eq(cfg.k3s_token, "123456789");
  ck_assert_str_eq(cfg.kubeconfig, "/etc/rancher/k3s/k3s.yaml");
  ck_assert_str_eq(cfg.bootstrap_url,
                   "https://raw.githubusercontent.com/AVENTER-UG/mesos-m3s/master/bootstrap/bootstrap.sh");
  ck_assert(!cfg.k3s_docker);
  ck_assert(cfg.k3s_enable_taint);
  ck_assert(!cfg.k3s_disable_scheduling);
  ck_assert(!cfg.enable_registry_mirror);
  ck_assert_str_eq(cfg.k3s_custom_domain, "cloud.local");
  ck_assert_str_eq(cfg.k3s_node_env_delimiter, ",");
  ck_assert_str_eq(cfg.k3s_node_env, "");
  ck_assert_uint_eq(cfg.k3s_node_env_list.n, 0);

  ck_assert_str_eq(cfg.k3s_server_string,
                   "/usr/local/bin/k3s server --cluster-cidr=10.2.0.0/16 "
                   "--service-cidr=10.3.0.0/16 --cluster-dns=10.3.0.10 "
                   "--kube-scheduler-arg=leader-elect=false "
                   "--kube-controller-manager-arg=enable-leader-migration=false "
                   "--kube-cloud-controller-manager-arg=enable-leader-migration=false "
                   "--disable-cloud-controller --snapshotter=native --flannel-backend=vxlan");
  ck_assert_int_eq(cfg.k3s_server_port, 31000);
  ck_assert_double_eq(cfg.k3s_server_cpu, 1.0);
  ck_assert_double_eq(cfg.k3s_server_cpu_limit, 1.0);
  ck_assert_double_eq(cfg.k3s_server_mem, 2000.0);
  ck_assert_double_eq(cfg.k3s_server_mem_limit, 2000.0);
  ck_assert_double_eq(cfg.k3s_server_disk, 1000.0);
  ck_assert_double_eq(cfg.k3s_server_disk_limit, 1000.0);
  ck_assert_str_eq(cfg.k3s_server_labels, "");
  ck_assert_str_eq(cfg.k3s_server_node_env, "");
  ck_assert_uint_eq(cfg.k3s_server_node_env_list.n, 0);
  ck_assert_str_eq(cfg.k3s_server_custom_docker_parameter, "");
  ck_assert_uint_eq(cfg.k3s_server_custom_docker_parameter_list.n, 0);
  ck_assert_str_eq(cfg.k3s_server_constraint, "");
  ck_assert_str_eq(cfg.k3s_server_constraint_host, "");
  ck_assert_str_eq(cfg.volume_k3s_server, "/data/k3s/server");

  ck_assert_str_eq(cfg.k3s_agent_string, "/usr/local/bin/k3s agent --snapshotter=native");
  ck_assert_double_eq(cfg.k3s_agent_cpu, 2.0);
  ck_assert_double_eq(cfg.k3s_agent_cpu_limit, 2.0);
  ck_assert_double_eq(cfg.k3s_agent_mem, 2000.0);
  ck_assert_double_eq(cfg.k3s_agent_mem_limit, 2000.0);
  ck_assert_double_eq(cfg.k3s_agent_disk, 10000.0);
  ck_assert_double_eq(cfg.k3s_agent_disk_limit, 10000.0);
  ck_assert_int_eq(cfg.k3s_agent_tcp_port, 0);
  ck_assert_str_eq(cfg.k3s_agent_labels, "");
  ck_assert_str_eq(cfg.k3s_agent_node_env, "");
  ck_assert_uint_eq(cfg.k3s_agent_node_env_list.n, 0);
  ck_assert_str_eq(cfg.k3s_agent_custom_docker_parameter, "");
  ck_assert_uint_eq(cfg.k3s_agent_custom_docker_parameter_list.n, 0);
  ck_assert_str_eq(cfg.k3s_agent_constraint, "");
  ck_assert_str_eq(cfg.k3s_agent_constraint_host, "");

  ck_assert_str_eq(cfg.k3s_node_docker_parameter_delimiter, ",");
  ck_assert_str_eq(cfg.volume_driver, "local");
  ck_assert_str_eq(cfg.docker_shm_size, "30gb");
  ck_assert_str_eq(cfg.k3s_container_disk, "30gb");
  ck_assert_str_eq(cfg.docker_ulimit, "1048576");
  ck_assert_double_eq(cfg.docker_memory_swap, 1000.0);
  ck_assert_str_eq(cfg.docker_sock, "");
  ck_assert(!cfg.cgroup_v2);
  ck_assert(!cfg.restrict_disk_allocation);
  ck_assert_str_eq(cfg.custom_docker_runtime, "");
  ck_assert(cfg.enforce_mesos_task_limits);
  ck_assert(cfg.docker_force_pull);

  ck_assert_str_eq(cfg.vault_url, "http://127.0.0.1:8200");
  ck_assert_str_eq(cfg.vault_token, "");
  ck_assert_int_eq(cfg.vault_timeout_ms, 10000);

  m3s_config_free(&cfg);
  ck_assert(cfg_is_zero(&cfg));
  m3s_config_free(&cfg);  /* freeing twice is harmless */
  m3s_config_free(NULL);
}
END_TEST

START_TEST(test_empty_means_default)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "DS_COUNT", "", "HEARTBEAT_INTERVAL", "", "SKIP_SSL", "",
                        "FRAMEWORK_USER", "", "REDIS_SERVER", "", "LOGLEVEL", ""), 0);
  ck_assert_int_eq(cfg.ds_count, 1);
  ck_assert_int_eq(cfg.heartbeat_interval_ms, 15000);
  ck_assert(cfg.skip_ssl);
  ck_assert_str_eq(cfg.framework_user, "root");
  ck_assert_int_eq(cfg.redis_port, 6379);
  ck_assert_int_eq(cfg.log_level, M3S_LOG_DEBUG);
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_derived_defaults)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "DS_CPU", "0.5", "DS_MEM", "512", "DS_DISK", "100",
                        "K3S_SERVER_CPU", "3", "K3S_SERVER_MEM", "4096",
                        "K3S_SERVER_DISK", "2048", "K3S_AGENT_CPU", "1.25",
                        "K3S_AGENT_MEM", "8192", "K3S_AGENT_DISK", "0",
                        "PORTRANGE_FROM", "30000", "DOCKER_SHM_SIZE", "1gb"), 0);
  ck_assert_double_eq(cfg.ds_cpu_limit, 0.5);
  ck_assert_double_eq(cfg.ds_mem_limit, 512);
  ck_assert_double_eq(cfg.ds_disk_limit, 100);
  ck_assert_double_eq(cfg.k3s_server_cpu_limit, 3);
  ck_assert_double_eq(cfg.k3s_server_mem_limit, 4096);
  ck_assert_double_eq(cfg.k3s_server_disk_limit, 2048);
  ck_assert_double_eq(cfg.k3s_agent_cpu_limit, 1.25);
  ck_assert_double_eq(cfg.k3s_agent_mem_limit, 8192);
  ck_assert_double_eq(cfg.k3s_agent_disk_limit, 0);
  ck_assert_int_eq(cfg.k3s_server_port, 30000);
  ck_assert_str_eq(cfg.k3s_container_disk, "1gb");
  m3s_config_free(&cfg);

  /* An explicit limit wins over the derived default. */
  ck_assert_int_eq(LOAD(&cfg, "DS_CPU", "0.5", "DS_CPU_LIMIT", "2", "PORTRANGE_FROM",
                        "30000", "K3S_SERVER_PORT", "6443", "DOCKER_SHM_SIZE", "1gb",
                        "K3S_CONTAINER_DISK", "2gb"), 0);
  ck_assert_double_eq(cfg.ds_cpu, 0.5);
  ck_assert_double_eq(cfg.ds_cpu_limit, 2);
  ck_assert_int_eq(cfg.k3s_server_port, 6443);
  ck_assert_str_eq(cfg.k3s_container_disk, "2gb");
  m3s_config_free(&cfg);

  /* A bad source value is reported under its own name. */
  expect_bad("DS_CPU", "lots", "expected a number");
}
END_TEST

START_TEST(test_framework_name)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "FRAMEWORK_NAME", "prod"), 0);
  ck_assert_str_eq(cfg.framework_name, "prod");
  ck_assert_str_eq(cfg.fw, "m3sprod");
  m3s_config_free(&cfg);
  /* Bug-compatible on purpose: Redis keys of running clusters depend on it. */
  ck_assert_int_eq(LOAD(&cfg, "FRAMEWORK_NAME", "m3s"), 0);
  ck_assert_str_eq(cfg.fw, "m3sm3s");
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_strings_and_domain)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "DOMAIN", "example.com", "FRAMEWORK_HOSTNAME", "fw.example.com",
                        "K3S_SERVER_STRING", "/bin/k3s server --x=1", "TZ", "Europe/Berlin",
                        "MESOS_CNI", "weave", "DOCKER_CNI", "mini"), 0);
  ck_assert_str_eq(cfg.domain, ".example.com");
  ck_assert_str_eq(cfg.framework_hostname, "fw.example.com");
  ck_assert_str_eq(cfg.k3s_server_string, "/bin/k3s server --x=1");
  ck_assert_str_eq(cfg.tz, "Europe/Berlin");
  ck_assert_str_eq(cfg.mesos_cni, "weave");
  ck_assert_str_eq(cfg.docker_cni, "mini");
  m3s_config_free(&cfg);
  ck_assert_int_eq(LOAD(&cfg, "DOMAIN", ".weave.local"), 0);
  ck_assert_str_eq(cfg.domain, ".weave.local");
  m3s_config_free(&cfg);
}
END_TEST

/* ---- booleans ---- */

START_TEST(test_bool_good)
{
  static const struct { const char *text; bool value; } cases[] = {
    { "true", true }, { "TRUE", true }, { "True", true }, { "1", true },
    { "yes", true }, { "YES", true }, { "on", true }, { "On", true },
    { "false", false }, { "FALSE", false }, { "0", false }, { "no", false },
    { "No", false }, { "off", false }, { "OFF", false },
  };
  m3s_config_t cfg;

  for(size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    ck_assert_int_eq(LOAD(&cfg, "SKIP_SSL", cases[k].text, "K3S_ENABLE_TAINT", cases[k].text,
                          "M3S_PLUGINS", cases[k].text, "MESOS_SSL", cases[k].text,
                          "CGROUP_V2", cases[k].text, "DOCKER_RUNNING", cases[k].text), 0);
    ck_assert_msg(cfg.skip_ssl == cases[k].value, "SKIP_SSL=%s", cases[k].text);
    ck_assert_msg(cfg.k3s_enable_taint == cases[k].value, "K3S_ENABLE_TAINT=%s", cases[k].text);
    ck_assert(cfg.m3s_plugins == cases[k].value);
    ck_assert(cfg.mesos_ssl == cases[k].value);
    ck_assert(cfg.cgroup_v2 == cases[k].value);
    ck_assert(cfg.docker_running == cases[k].value);
    m3s_config_free(&cfg);
  }
}
END_TEST

START_TEST(test_bool_bad)
{
  /* The original read all of these as false; we refuse them. */
  expect_bad("SKIP_SSL", "maybe", "expected true or false");
  expect_bad("K3S_ENABLE_TAINT", "tru", "expected true or false");
  expect_bad("DS_MYSQL", "2", "expected true or false");
  expect_bad("MESOS_SSL", " true", "expected true or false");
  expect_bad("ENFORCE_MESOS_TASK_LIMITS", "enabled", NULL);
  expect_bad("M3S_PLUGINS", "y", NULL);
}
END_TEST

/* ---- integers and ports ---- */

START_TEST(test_int_good)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "K3S_AGENT_COUNT", "0", "K3S_SERVER_COUNT", "1000",
                        "DS_COUNT", "+3", "REDIS_DB", "15", "K3S_AGENT_TCP_PORT", "8080"), 0);
  ck_assert_int_eq(cfg.k3s_agent_count, 0);
  ck_assert_int_eq(cfg.k3s_server_count, 1000);
  ck_assert_int_eq(cfg.ds_count, 3);
  ck_assert_int_eq(cfg.redis_db, 15);
  ck_assert_int_eq(cfg.k3s_agent_tcp_port, 8080);
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_int_bad)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "K3S_AGENT_COUNT", "abc"), -EINVAL);
  ck_assert_msg(strncmp(err, "K3S_AGENT_COUNT=\"abc\": expected a whole number >= 0",
                        strlen("K3S_AGENT_COUNT=\"abc\": expected a whole number >= 0")) == 0,
                "%s", err);
  expect_bad("K3S_AGENT_COUNT", "-1", ">= 0");
  expect_bad("K3S_SERVER_COUNT", "1001", "<= 1000");
  expect_bad("DS_COUNT", "1.5", NULL);
  expect_bad("DS_COUNT", " 1", NULL);
  expect_bad("DS_COUNT", "1 ", NULL);
  expect_bad("DS_COUNT", "99999999999999999999999", NULL);
  expect_bad("REDIS_DB", "-2", "expected a whole number >= 0");
  expect_bad("REDIS_DB", "x1", NULL);
  expect_bad("K3S_AGENT_TCP_PORT", "65536", "<= 65535");
}
END_TEST

START_TEST(test_port_good)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "FRAMEWORK_PORT", "1", "DS_PORT", "65535",
                        "K3S_SERVER_PORT", "6443"), 0);
  ck_assert_int_eq(cfg.framework_port, 1);
  ck_assert_int_eq(cfg.ds_port, 65535);
  ck_assert_int_eq(cfg.k3s_server_port, 6443);
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_port_bad)
{
  expect_bad("FRAMEWORK_PORT", "0", "expected a port number from 1 to 65535");
  expect_bad("FRAMEWORK_PORT", "65536", "from 1 to 65535");
  expect_bad("FRAMEWORK_PORT", "-80", NULL);
  expect_bad("FRAMEWORK_PORT", "+80", NULL);
  expect_bad("FRAMEWORK_PORT", "http", NULL);
  expect_bad("DS_PORT", "33o6", NULL);
  expect_bad("PORTRANGE_FROM", "70000", NULL);
  expect_bad("PORTRANGE_TO", "0", NULL);
  expect_bad("K3S_SERVER_PORT", "100000", NULL);
}
END_TEST

/* ---- floats ---- */

START_TEST(test_float)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "DS_CPU", ".5", "K3S_AGENT_CPU", "1e1", "DOCKER_MEMORY_SWAP",
                        "0", "REFUSE_OFFERS", "120.5", "K3S_SERVER_MEM", "32"), 0);
  ck_assert_double_eq(cfg.ds_cpu, 0.5);
  ck_assert_double_eq(cfg.k3s_agent_cpu, 10);
  ck_assert_double_eq(cfg.docker_memory_swap, 0);
  ck_assert_double_eq(cfg.refuse_offers, 120.5);
  ck_assert_double_eq(cfg.k3s_server_mem, 32);
  m3s_config_free(&cfg);

  expect_bad("DS_CPU", "abc", "expected a number >= 0.01");
  expect_bad("DS_CPU", "0", ">= 0.01");
  expect_bad("K3S_AGENT_CPU", "-1", NULL);
  expect_bad("K3S_AGENT_CPU", "nan", NULL);
  expect_bad("K3S_AGENT_CPU", "inf", NULL);
  expect_bad("K3S_AGENT_CPU", "0x10", NULL);
  expect_bad("K3S_AGENT_CPU", "1,5", NULL);
  expect_bad("K3S_AGENT_CPU", "1e999", NULL);
  expect_bad("DS_MEM", "16", ">= 32");
  expect_bad("DOCKER_MEMORY_SWAP", "-1", ">= 0");
}
END_TEST

/* ---- durations ---- */

START_TEST(test_duration_good)
{
  static const struct { const char *text; int64_t ms; } cases[] = {
    { "15s", 15000 }, { "1m30s", 90000 }, { "500ms", 500 }, { "1h", 3600000 },
    { "1.5h", 5400000 }, { "2h45m10s", 9910000 }, { ".5s", 500 }, { "1.s", 1000 },
    { "+3s", 3000 }, { "1m0.25s", 60250 }, { "1500us", 2 }, { "1\xc2\xb5s", 1 },
    { "1ns", 1 }, { "90m", 5400000 },
  };
  m3s_config_t cfg;

  for(size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    ck_assert_msg(LOAD(&cfg, "HEARTBEAT_INTERVAL", cases[k].text) == 0, "%s: %s",
                  cases[k].text, err);
    ck_assert_msg(cfg.heartbeat_interval_ms == cases[k].ms, "%s gave %lld ms",
                  cases[k].text, (long long)cfg.heartbeat_interval_ms);
    m3s_config_free(&cfg);
  }
  /* Zero is fine where the original did not crash on it. */
  ck_assert_int_eq(LOAD(&cfg, "CLEANUP_WAIT", "0", "K3S_NODE_TIMEOUT", "0s",
                        "REVIVE_WAIT", "0m"), 0);
  ck_assert_int_eq(cfg.cleanup_wait_ms, 0);
  ck_assert_int_eq(cfg.k3s_node_timeout_ms, 0);
  ck_assert_int_eq(cfg.revive_wait_ms, 0);
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_duration_bad)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "HEARTBEAT_INTERVAL", "15"), -EINVAL);
  ck_assert_str_eq(err, "HEARTBEAT_INTERVAL=\"15\": expected a duration like 15s, 1m30s or 500ms");
  expect_bad("HEARTBEAT_INTERVAL", "1x", "expected a duration like");
  expect_bad("HEARTBEAT_INTERVAL", "s", "expected a duration like");
  expect_bad("HEARTBEAT_INTERVAL", ".s", NULL);
  expect_bad("HEARTBEAT_INTERVAL", "1 s", NULL);
  expect_bad("HEARTBEAT_INTERVAL", "1h-5m", NULL);
  expect_bad("HEARTBEAT_INTERVAL", "15S", NULL);
  expect_bad("HEARTBEAT_INTERVAL", "9999999999h", NULL);
  expect_bad("HEARTBEAT_INTERVAL", "18446744073709551617ns", NULL);  /* 2^64+1 */
  expect_bad("HEARTBEAT_INTERVAL", "9223372036854775808ns", NULL);   /* 2^63 */
  expect_bad("HEARTBEAT_INTERVAL", "5000000h", NULL);
  expect_bad("HEARTBEAT_INTERVAL", "-1s", "greater than 0");
  expect_bad("HEARTBEAT_INTERVAL", "0s", "greater than 0");
  expect_bad("HEARTBEAT_INTERVAL", "0", "greater than 0");
  expect_bad("RECONCILE_WAIT", "0s", "greater than 0");
  expect_bad("VAULT_TIMEOUT", "0ms", "greater than 0");
  expect_bad("CLEANUP_WAIT", "-1s", "0 or more");
  expect_bad("CLEANUP_WAIT", "5", "expected a duration like");
}
END_TEST

/* ---- host:port ---- */

START_TEST(test_hostport)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "REDIS_SERVER", "redis.weave.local:6380",
                        "MESOS_MASTER", "[::1]:5051"), 0);
  ck_assert_str_eq(cfg.redis_server, "redis.weave.local:6380");
  ck_assert_str_eq(cfg.redis_host, "redis.weave.local");
  ck_assert_int_eq(cfg.redis_port, 6380);
  ck_assert_str_eq(cfg.mesos_master, "[::1]:5051");
  ck_assert_str_eq(cfg.mesos_master_host, "::1");
  ck_assert_int_eq(cfg.mesos_master_port, 5051);
  m3s_config_free(&cfg);

  expect_bad("REDIS_SERVER", "redis", "expected host:port");
  expect_bad("REDIS_SERVER", "redis:", NULL);
  expect_bad("REDIS_SERVER", ":6379", NULL);
  expect_bad("REDIS_SERVER", "redis:0", NULL);
  expect_bad("REDIS_SERVER", "redis:70000", NULL);
  expect_bad("REDIS_SERVER", "::1:6379", NULL);
  expect_bad("MESOS_MASTER", "http://leader.mesos:5050", "without scheme");
  expect_bad("MESOS_MASTER", "[::1]5050", NULL);
  expect_bad("MESOS_MASTER", "[::1]", NULL);
  expect_bad("MESOS_MASTER", "leader mesos:5050", NULL);
}
END_TEST

/* ---- JSON labels ---- */

START_TEST(test_labels)
{
  m3s_config_t cfg;
  const char *good = "[{\"key\":\"traefik.enable\",\"value\":\"true\"},{\"key\":\"only\"}]";

  ck_assert_int_eq(LOAD(&cfg, "K3S_SERVER_LABELS", good, "K3S_AGENT_LABELS", "[]"), 0);
  ck_assert_str_eq(cfg.k3s_server_labels, good);
  ck_assert_str_eq(cfg.k3s_agent_labels, "[]");
  m3s_config_free(&cfg);

  expect_bad("K3S_SERVER_LABELS", "[{\"key\":", "expected JSON");
  expect_bad("K3S_SERVER_LABELS", "{\"key\":\"a\",\"value\":\"b\"}", "expected a JSON array");
  expect_bad("K3S_AGENT_LABELS", "[{\"value\":\"b\"}]", "element 0");
  expect_bad("K3S_AGENT_LABELS", "[{\"key\":\"a\"},{\"key\":\"b\",\"value\":1}]",
             "element 1 has a non-string \"value\"");
  expect_bad("K3S_AGENT_LABELS", "[{\"key\":\"a\",\"extra\":\"x\"}]", "unknown member");
  expect_bad("K3S_AGENT_LABELS", "[\"x\"]", NULL);
  expect_bad("K3S_AGENT_LABELS", "[{\"key\":\"\"}]", NULL);
  expect_bad("K3S_AGENT_LABELS", "[{\"key\":\"a\",\"key\":\"b\"}]", NULL);
}
END_TEST

/* ---- key/value lists ---- */

START_TEST(test_kvlists_good)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "K3S_NODE_ENV", "A=1,B=x=y,,C=", "K3S_SERVER_NODE_ENV", "S=1,",
                        "K3S_AGENT_NODE_ENV", "AG=2",
                        "K3S_SERVER_CUSTOM_DOCKER_PARAMETER", "cap-add=SYS_ADMIN",
                        "K3S_AGENT_CUSTOM_DOCKER_PARAMETER", "device=/dev/fuse,ulimit=core=0"), 0);
  ck_assert_uint_eq(cfg.k3s_node_env_list.n, 3);
  ck_assert_str_eq(cfg.k3s_node_env_list.items[0].key, "A");
  ck_assert_str_eq(cfg.k3s_node_env_list.items[0].value, "1");
  ck_assert_str_eq(cfg.k3s_node_env_list.items[1].key, "B");
  ck_assert_str_eq(cfg.k3s_node_env_list.items[1].value, "x=y");
  ck_assert_str_eq(cfg.k3s_node_env_list.items[2].key, "C");
  ck_assert_str_eq(cfg.k3s_node_env_list.items[2].value, "");
  ck_assert_uint_eq(cfg.k3s_server_node_env_list.n, 1);
  ck_assert_str_eq(cfg.k3s_server_node_env_list.items[0].key, "S");
  ck_assert_uint_eq(cfg.k3s_agent_node_env_list.n, 1);
  ck_assert_str_eq(cfg.k3s_agent_node_env_list.items[0].value, "2");
  ck_assert_uint_eq(cfg.k3s_server_custom_docker_parameter_list.n, 1);
  ck_assert_str_eq(cfg.k3s_server_custom_docker_parameter_list.items[0].key, "cap-add");
  ck_assert_str_eq(cfg.k3s_server_custom_docker_parameter_list.items[0].value, "SYS_ADMIN");
  ck_assert_uint_eq(cfg.k3s_agent_custom_docker_parameter_list.n, 2);
  ck_assert_str_eq(cfg.k3s_agent_custom_docker_parameter_list.items[1].key, "ulimit");
  ck_assert_str_eq(cfg.k3s_agent_custom_docker_parameter_list.items[1].value, "core=0");
  m3s_config_free(&cfg);

  /* Own delimiters, including a multi-character one; ',' is then data. */
  ck_assert_int_eq(LOAD(&cfg, "K3S_NODE_ENV_DELIMITER", ";;", "K3S_NODE_ENV", "A=1,2;;B=3",
                        "K3S_NODE_DOCKER_PARAMETER_DELIMITER", "|",
                        "K3S_AGENT_CUSTOM_DOCKER_PARAMETER", "a=1|b=2,3"), 0);
  ck_assert_uint_eq(cfg.k3s_node_env_list.n, 2);
  ck_assert_str_eq(cfg.k3s_node_env_list.items[0].value, "1,2");
  ck_assert_str_eq(cfg.k3s_node_env_list.items[1].key, "B");
  ck_assert_uint_eq(cfg.k3s_agent_custom_docker_parameter_list.n, 2);
  ck_assert_str_eq(cfg.k3s_agent_custom_docker_parameter_list.items[1].value, "2,3");
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_kvlists_bad)
{
  m3s_config_t cfg;

  expect_bad("K3S_NODE_ENV", "A=1,B", "item \"B\" has no '='");
  expect_bad("K3S_NODE_ENV", "=1", "empty KEY");
  expect_bad("K3S_SERVER_NODE_ENV", "FOO", "has no '='");
  expect_bad("K3S_AGENT_NODE_ENV", "A=1,B=2,broken", "broken");
  expect_bad("K3S_SERVER_CUSTOM_DOCKER_PARAMETER", "privileged", "has no '='");
  expect_bad("K3S_AGENT_CUSTOM_DOCKER_PARAMETER", "a=1,cap-add", "cap-add");

  /* With another delimiter, "A=1,B" is one item and valid... */
  ck_assert_int_eq(LOAD(&cfg, "K3S_NODE_ENV_DELIMITER", "|", "K3S_NODE_ENV", "A=1,B"), 0);
  ck_assert_uint_eq(cfg.k3s_node_env_list.n, 1);
  m3s_config_free(&cfg);
  /* ...and the message names the delimiter in use. */
  ck_assert_int_eq(LOAD(&cfg, "K3S_NODE_ENV_DELIMITER", "|", "K3S_NODE_ENV", "A=1|B"), -EINVAL);
  ck_assert_msg(strstr(err, "separated by \"|\""), "%s", err);
}
END_TEST

/* ---- constraints ---- */

START_TEST(test_constraints)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "K3S_DS_CONSTRAINT", "hostname:Agent1.Example.COM",
                        "K3S_SERVER_CONSTRAINT", "HOSTNAME:srv", "K3S_AGENT_CONSTRAINT",
                        "HostName:a-2"), 0);
  ck_assert_str_eq(cfg.k3s_ds_constraint, "hostname:Agent1.Example.COM");
  ck_assert_str_eq(cfg.k3s_ds_constraint_host, "agent1.example.com");
  ck_assert_str_eq(cfg.k3s_server_constraint_host, "srv");
  ck_assert_str_eq(cfg.k3s_agent_constraint_host, "a-2");
  m3s_config_free(&cfg);

  expect_bad("K3S_DS_CONSTRAINT", "rack:1", "expected hostname:<agent hostname>");
  expect_bad("K3S_DS_CONSTRAINT", "hostname:", NULL);
  expect_bad("K3S_SERVER_CONSTRAINT", "hostname", NULL);
  expect_bad("K3S_SERVER_CONSTRAINT", "hostname:a:b", NULL);
  expect_bad("K3S_AGENT_CONSTRAINT", "host:x", NULL);
  expect_bad("K3S_AGENT_CONSTRAINT", "hostnames:x", NULL);
}
END_TEST

/* ---- LOGLEVEL ---- */

START_TEST(test_loglevel)
{
  static const struct { const char *text; m3s_log_level_t level; } cases[] = {
    { "debug", M3S_LOG_DEBUG }, { "INFO", M3S_LOG_INFO }, { "Warn", M3S_LOG_WARN },
    { "warning", M3S_LOG_WARN }, { "error", M3S_LOG_ERROR }, { "trace", M3S_LOG_DEBUG },
    { "fatal", M3S_LOG_ERROR }, { "PANIC", M3S_LOG_ERROR },
  };
  m3s_config_t cfg;

  for(size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    ck_assert_int_eq(LOAD(&cfg, "LOGLEVEL", cases[k].text), 0);
    ck_assert_int_eq(cfg.log_level, cases[k].level);
    ck_assert_str_eq(cfg.loglevel, cases[k].text);
    m3s_config_free(&cfg);
  }
  expect_bad("LOGLEVEL", "verbose", "expected one of debug, info, warn, error");
  expect_bad("LOGLEVEL", "info ", NULL);
}
END_TEST

/* ---- TLS material ---- */

static char *b64(const char *data, size_t len, bool url, bool pad, int wrap)
{
  static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  const char *alpha = url ? safe : std;
  char *out = malloc(len * 2 + 8);
  size_t o = 0;
  int col = 0;

  ck_assert_ptr_nonnull(out);
  for(size_t k = 0; k < len; k += 3) {
    unsigned v = (unsigned char)data[k] << 16;
    size_t n = len - k < 3 ? len - k : 3;
    if(n > 1)
      v |= (unsigned char)data[k + 1] << 8;
    if(n > 2)
      v |= (unsigned char)data[k + 2];
    char q[4] = { alpha[(v >> 18) & 63], alpha[(v >> 12) & 63],
                  n > 1 ? alpha[(v >> 6) & 63] : '=', n > 2 ? alpha[v & 63] : '=' };
    for(int c = 0; c < 4; c++) {
      if(q[c] == '=' && !pad)
        continue;
      if(wrap && col == wrap) {
        out[o++] = '\n';
        col = 0;
      }
      out[o++] = q[c];
      col++;
    }
  }
  out[o] = '\0';
  return out;
}

static char *bio_text(BIO *bio)
{
  char *mem;
  long n = BIO_get_mem_data(bio, &mem);
  char *s = malloc((size_t)n + 1);

  ck_assert_ptr_nonnull(s);
  memcpy(s, mem, (size_t)n);
  s[n] = '\0';
  return s;
}

/* A fresh self-signed EC certificate and its key, as PEM text. */
static void make_tls(char **crt_pem, char **key_pem)
{
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *crt = X509_new();
  BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
  X509_NAME *name;

  ck_assert(key && crt && bc && bk);
  X509_set_version(crt, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(crt), 1);
  X509_gmtime_adj(X509_getm_notBefore(crt), 0);
  X509_gmtime_adj(X509_getm_notAfter(crt), 3600);
  X509_set_pubkey(crt, key);
  name = X509_get_subject_name(crt);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost", -1, -1, 0);
  X509_set_issuer_name(crt, name);
  ck_assert(X509_sign(crt, key, EVP_sha256()) > 0);
  ck_assert(PEM_write_bio_X509(bc, crt) == 1);
  ck_assert(PEM_write_bio_PrivateKey(bk, key, NULL, NULL, 0, NULL, NULL) == 1);
  *crt_pem = bio_text(bc);
  *key_pem = bio_text(bk);
  BIO_free(bc);
  BIO_free(bk);
  X509_free(crt);
  EVP_PKEY_free(key);
}

START_TEST(test_tls_good)
{
  m3s_config_t cfg;
  char *crt, *key;

  make_tls(&crt, &key);
  /* Standard alphabet, padded. */
  char *c1 = b64(crt, strlen(crt), false, true, 0), *k1 = b64(key, strlen(key), false, true, 0);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", c1, "SSL_KEY_BASE64", k1), 0);
  ck_assert_str_eq(cfg.ssl_crt_pem, crt);
  ck_assert_uint_eq(cfg.ssl_crt_pem_len, strlen(crt));
  ck_assert_str_eq(cfg.ssl_key_pem, key);
  ck_assert_uint_eq(cfg.ssl_key_pem_len, strlen(key));
  ck_assert_str_eq(cfg.ssl_crt_base64, c1);
  m3s_config_free(&cfg);
  /* URL-safe alphabet (the original's), unpadded and line-wrapped. */
  char *c2 = b64(crt, strlen(crt), true, false, 76), *k2 = b64(key, strlen(key), true, true, 64);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", c2, "SSL_KEY_BASE64", k2), 0);
  ck_assert_str_eq(cfg.ssl_crt_pem, crt);
  ck_assert_str_eq(cfg.ssl_key_pem, key);
  m3s_config_free(&cfg);
  free(c1);
  free(k1);
  free(c2);
  free(k2);
  free(crt);
  free(key);
}
END_TEST

START_TEST(test_tls_bad)
{
  m3s_config_t cfg;
  char *crt, *key, *crt2, *key2;

  make_tls(&crt, &key);
  make_tls(&crt2, &key2);
  char *c = b64(crt, strlen(crt), false, true, 0), *k = b64(key, strlen(key), false, true, 0);
  char *k2 = b64(key2, strlen(key2), false, true, 0);

  /* One without the other. */
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", c), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_CRT_BASE64 is set but SSL_KEY_BASE64 is not"), "%s", err);
  ck_assert(cfg_is_zero(&cfg));
  ck_assert_int_eq(LOAD(&cfg, "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_KEY_BASE64 is set but SSL_CRT_BASE64 is not"), "%s", err);
  ck_assert_msg(!strstr(err, k), "key leaked: %s", err);

  /* Not base64. */
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", "!!!not-base64!!!", "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_CRT_BASE64=\"!!!not-base64!!!\": expected base64"), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", c, "SSL_KEY_BASE64", "QQ==QQ"), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_KEY_BASE64=***: expected base64"), "%s", err);
  ck_assert_msg(!strstr(err, "QQ==QQ"), "secret value echoed: %s", err);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", "QUJDR", "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "expected base64"), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", "QUI===", "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "expected base64"), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", "QUJD=", "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "expected base64"), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", "QUJDRA=", "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "expected base64"), "%s", err);

  /* Base64, but not PEM ("hello"). */
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", "aGVsbG8=", "SSL_KEY_BASE64", k), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_CRT_BASE64=\"aGVsbG8=\": decodes, but not to a PEM certificate"),
                "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", c, "SSL_KEY_BASE64", "aGVsbG8="), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_KEY_BASE64=***: decodes, but not to an unencrypted PEM private key"),
                "%s", err);
  /* A key of another certificate. */
  ck_assert_int_eq(LOAD(&cfg, "SSL_CRT_BASE64", c, "SSL_KEY_BASE64", k2), -EINVAL);
  ck_assert_msg(strstr(err, "SSL_KEY_BASE64=***: the key does not belong"), "%s", err);
  ck_assert_msg(!strstr(err, k2) && !strstr(err, "BEGIN"), "key leaked: %s", err);
  ck_assert(cfg_is_zero(&cfg));

  free(c);
  free(k);
  free(k2);
  free(crt);
  free(key);
  free(crt2);
  free(key2);
}
END_TEST

/* ---- datastore choice, port range ---- */

START_TEST(test_datastore)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "DS_ETCD", "true"), 0);
  ck_assert(cfg.ds_etcd);
  ck_assert(!cfg.ds_mysql);
  m3s_config_free(&cfg);
  ck_assert_int_eq(LOAD(&cfg, "DS_ETCD", "true", "DS_MYSQL", "false"), 0);
  ck_assert(cfg.ds_etcd && !cfg.ds_mysql);
  m3s_config_free(&cfg);
  ck_assert_int_eq(LOAD(&cfg, "DS_ETCD", "false", "DS_MYSQL", "true"), 0);
  ck_assert(!cfg.ds_etcd && cfg.ds_mysql);
  m3s_config_free(&cfg);

  ck_assert_int_eq(LOAD(&cfg, "DS_ETCD", "true", "DS_MYSQL", "true"), -EINVAL);
  ck_assert_msg(strstr(err, "set only one of DS_ETCD and DS_MYSQL"), "%s", err);
  ck_assert(cfg_is_zero(&cfg));
  ck_assert_int_eq(LOAD(&cfg, "DS_ETCD", "yes", "DS_MYSQL", "1"), -EINVAL);
  ck_assert_msg(strstr(err, "set only one of DS_ETCD and DS_MYSQL"), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "DS_MYSQL", "false"), -EINVAL);
  ck_assert_msg(strstr(err, "DS_MYSQL=false and DS_ETCD=false"), "%s", err);
}
END_TEST

START_TEST(test_portrange)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "PORTRANGE_FROM", "40000", "PORTRANGE_TO", "40100"), 0);
  ck_assert_int_eq(cfg.portrange_from, 40000);
  ck_assert_int_eq(cfg.portrange_to, 40100);
  m3s_config_free(&cfg);

  ck_assert_int_eq(LOAD(&cfg, "PORTRANGE_FROM", "32000", "PORTRANGE_TO", "31000"), -EINVAL);
  ck_assert_str_eq(err, "PORTRANGE_FROM=32000 and PORTRANGE_TO=31000: PORTRANGE_FROM "
                        "must be lower than PORTRANGE_TO");
  ck_assert_int_eq(LOAD(&cfg, "PORTRANGE_FROM", "31000", "PORTRANGE_TO", "31000"), -EINVAL);
  ck_assert_msg(strstr(err, "must be lower"), "%s", err);
  /* The default TO (32000) is below an explicit FROM above it. */
  ck_assert_int_eq(LOAD(&cfg, "PORTRANGE_FROM", "33000"), -EINVAL);
}
END_TEST

/* ---- error buffer handling ---- */

START_TEST(test_error_buffer)
{
  m3s_config_t cfg;
  char small[16];
  const char *const kv[] = { "DS_COUNT", "abc", NULL, NULL };

  memset(small, 'X', sizeof(small));
  ck_assert_int_eq(m3s_config_load(&cfg, m3s_check_getenv, (void *)kv, small, sizeof(small)), -EINVAL);
  ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
  ck_assert(strncmp(small, "DS_COUNT=\"abc\"", 14) == 0);
  ck_assert_int_eq(m3s_config_load(&cfg, m3s_check_getenv, (void *)kv, NULL, 0), -EINVAL);
  ck_assert(cfg_is_zero(&cfg));

  /* Control characters in a bad value do not break the line. */
  ck_assert_int_eq(LOAD(&cfg, "K3S_AGENT_COUNT", "1\n2\"3"), -EINVAL);
  ck_assert_str_eq(err, "K3S_AGENT_COUNT=\"1\\n2\\\"3\": expected a whole number >= 0 and <= 1000");
}
END_TEST

/* ---- print, secrets, help ---- */

#define SECRET_MESOS "mesos-pw-0a1b"
#define SECRET_AUTH "auth-pw-2c3d"
#define SECRET_REDIS "redis-pw-4e5f"
#define SECRET_TOKEN "k3s-token-6a7b"
#define SECRET_MYSQL "mysql-pw-8c9d"
#define SECRET_VAULT "vault-token-0e1f"

START_TEST(test_print_masks_secrets)
{
  m3s_config_t cfg;
  char *crt, *key;

  make_tls(&crt, &key);
  char *c = b64(crt, strlen(crt), false, true, 0), *k = b64(key, strlen(key), false, true, 0);
  ck_assert_int_eq(LOAD(&cfg, "MESOS_PASSWORD", SECRET_MESOS, "AUTH_PASSWORD", SECRET_AUTH,
                        "REDIS_PASSWORD", SECRET_REDIS, "K3S_TOKEN", SECRET_TOKEN,
                        "DS_MYSQL_PASSWORD", SECRET_MYSQL, "VAULT_TOKEN", SECRET_VAULT,
                        "SSL_CRT_BASE64", c, "SSL_KEY_BASE64", k, "AUTH_USERNAME", "admin"), 0);
  char *text = print_to_string(&cfg);

  static const char *const secrets[] = { SECRET_MESOS, SECRET_AUTH, SECRET_REDIS,
                                         SECRET_TOKEN, SECRET_MYSQL, SECRET_VAULT };
  for(size_t s = 0; s < sizeof(secrets) / sizeof(secrets[0]); s++)
    ck_assert_msg(!strstr(text, secrets[s]), "secret %s printed", secrets[s]);
  ck_assert_msg(!strstr(text, k) && !strstr(text, "PRIVATE KEY"), "key printed");
  ck_assert_msg(!strstr(text, k + 20), "part of the key printed");
  expect_line(text, "MESOS_PASSWORD=***");
  expect_line(text, "AUTH_PASSWORD=***");
  expect_line(text, "REDIS_PASSWORD=***");
  expect_line(text, "K3S_TOKEN=***");
  expect_line(text, "DS_MYSQL_PASSWORD=***");
  expect_line(text, "VAULT_TOKEN=***");
  expect_line(text, "SSL_KEY_BASE64=***");
  expect_line(text, "AUTH_USERNAME=admin");
  /* The certificate is public but long: abbreviated. */
  const char *cl = find_line(text, "SSL_CRT_BASE64");
  ck_assert_ptr_nonnull(cl);
  ck_assert(strncmp(cl + strlen("SSL_CRT_BASE64="), c, 16) == 0);
  ck_assert_msg(!strstr(text, c), "whole certificate printed");
  ck_assert(strstr(cl, "chars)") < strchr(cl, '\n'));
  free(text);
  m3s_config_free(&cfg);

  /* Unset secrets print empty, not ***. */
  ck_assert_int_eq(LOAD(&cfg, NULL), 0);
  text = print_to_string(&cfg);
  expect_line(text, "MESOS_PASSWORD=");
  expect_line(text, "REDIS_PASSWORD=");
  expect_line(text, "K3S_TOKEN=***");  /* the default is non-empty */
  free(text);
  m3s_config_free(&cfg);
  free(c);
  free(k);
  free(crt);
  free(key);
}
END_TEST

START_TEST(test_print_values)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "HEARTBEAT_INTERVAL", "1m30s", "CLEANUP_WAIT", "1500ms",
                        "RECONCILE_WAIT", "2h", "DS_CPU", "0.25", "DOMAIN", "x",
                        "K3S_SERVER_LABELS", "[\n{\"key\":\"a\"}]", "SKIP_SSL", "no",
                        "FRAMEWORK_HOSTNAME", "h"), 0);
  char *text = print_to_string(&cfg);
  expect_line(text, "HEARTBEAT_INTERVAL=1m30s");
  expect_line(text, "CLEANUP_WAIT=1.5s");
  expect_line(text, "RECONCILE_WAIT=2h");
  expect_line(text, "K3S_NODE_TIMEOUT=10m");
  expect_line(text, "DS_CPU=0.25");
  expect_line(text, "DS_CPU_LIMIT=0.25");
  expect_line(text, "DS_MEM=1000");
  expect_line(text, "REFUSE_OFFERS=60");
  expect_line(text, "DOMAIN=.x");
  expect_line(text, "SKIP_SSL=false");
  expect_line(text, "K3S_SERVER_LABELS=[\\n{\"key\":\"a\"}]");
  expect_line(text, "K3S_SERVER_PORT=31000");
  expect_line(text, "REDIS_SERVER=127.0.0.1:6379");
  ck_assert(!strstr(text, "MESOS_SANDBOX_VAR"));

  /* One line per variable of the original and per added one, nothing else. */
  size_t lines = 0;
  for(const char *p = text; *p; p++)
    lines += *p == '\n';
  ck_assert_uint_eq(lines, NORIGINAL + NADDED);
  for(size_t n = 0; n < NORIGINAL; n++)
    ck_assert_msg(find_line(text, original_names[n]), "%s not printed", original_names[n]);
  for(size_t n = 0; n < NADDED; n++)
    ck_assert_msg(find_line(text, added_names[n]), "%s not printed", added_names[n]);
  free(text);
  m3s_config_free(&cfg);
}
END_TEST

/* --print-config output, fed back as environment, gives the same config. */
START_TEST(test_print_roundtrip)
{
  m3s_config_t cfg;
  const char *kv[2 * (NORIGINAL + NADDED) + 2];
  size_t n = 0;

  ck_assert_int_eq(LOAD(&cfg, "HEARTBEAT_INTERVAL", "1.25h", "DS_CPU", "0.3",
                        "K3S_NODE_ENV", "A=1,B=2", "K3S_AGENT_CONSTRAINT", "hostname:X",
                        "DS_ETCD", "true", "FRAMEWORK_NAME", "t", "FRAMEWORK_HOSTNAME", "h"), 0);
  char *first = print_to_string(&cfg);
  m3s_config_free(&cfg);

  char *copy = strdup(first);
  ck_assert_ptr_nonnull(copy);
  for(char *line = copy, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
    *nl = '\0';
    char *eq = strchr(line, '=');
    *eq = '\0';
    kv[n++] = line;
    kv[n++] = eq + 1;
  }
  kv[n] = kv[n + 1] = NULL;
  ck_assert_int_eq(load_kv(&cfg, kv), 0);
  char *second = print_to_string(&cfg);
  ck_assert_str_eq(first, second);
  free(first);
  free(second);
  free(copy);
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_secrets)
{
  m3s_config_t cfg;
  const char *out[16];
  char *crt, *key;

  /* Only the non-empty defaults. */
  ck_assert_int_eq(LOAD(&cfg, NULL), 0);
  ck_assert_uint_eq(m3s_config_secrets(&cfg, out, 16), 2);
  ck_assert_str_eq(out[0], "password");
  ck_assert_str_eq(out[1], "123456789");
  m3s_config_free(&cfg);

  make_tls(&crt, &key);
  char *c = b64(crt, strlen(crt), false, true, 0), *k = b64(key, strlen(key), false, true, 0);
  ck_assert_int_eq(LOAD(&cfg, "MESOS_PASSWORD", SECRET_MESOS, "AUTH_PASSWORD", SECRET_AUTH,
                        "REDIS_PASSWORD", SECRET_REDIS, "K3S_TOKEN", SECRET_TOKEN,
                        "DS_MYSQL_PASSWORD", SECRET_MYSQL, "VAULT_TOKEN", SECRET_VAULT,
                        "SSL_CRT_BASE64", c, "SSL_KEY_BASE64", k, "AUTH_USERNAME", "admin"), 0);
  size_t got = m3s_config_secrets(&cfg, out, 16);
  ck_assert_uint_eq(got, 8);  /* seven variables and the decoded key */
  const char *want[] = { SECRET_MESOS, SECRET_AUTH, SECRET_REDIS, SECRET_TOKEN,
                         SECRET_MYSQL, SECRET_VAULT, k, key };
  for(size_t w = 0; w < sizeof(want) / sizeof(want[0]); w++) {
    bool found = false;
    for(size_t g = 0; g < got; g++)
      found |= strcmp(out[g], want[w]) == 0;
    ck_assert_msg(found, "secret %zu not listed", w);
  }
  for(size_t g = 0; g < got; g++)
    ck_assert(strcmp(out[g], "admin") != 0 && strcmp(out[g], c) != 0);
  /* The output array bound is respected. */
  ck_assert_uint_eq(m3s_config_secrets(&cfg, out, 3), 3);
  ck_assert_uint_eq(m3s_config_secrets(&cfg, out, 0), 0);
  m3s_config_free(&cfg);
  free(c);
  free(k);
  free(crt);
  free(key);
}
END_TEST

START_TEST(test_help)
{
  char *help = help_to_string();
  char want[128];

  for(size_t n = 0; n < NORIGINAL; n++) {
    snprintf(want, sizeof(want), "\n  %s  (", original_names[n]);
    ck_assert_msg(strstr(help, want), "%s missing from --help", original_names[n]);
  }
  ck_assert(strstr(help, "  DS_CPU_LIMIT  (number >= 0.01, run-time; default: same as DS_CPU)"));
  ck_assert(strstr(help, "  K3S_SERVER_PORT  (port; default: same as PORTRANGE_FROM)"));
  ck_assert(strstr(help, "  K3S_CONTAINER_DISK  (string; default: same as DOCKER_SHM_SIZE)"));
  ck_assert(strstr(help, "  HEARTBEAT_INTERVAL  (duration > 0; default: 15s)"));
  ck_assert(strstr(help, "  K3S_AGENT_COUNT  (integer 0..1000; default: 1)"));
  ck_assert(strstr(help, "  MESOS_PASSWORD  (string, secret; default: empty)"));
  ck_assert(strstr(help, "  MESOS_CNI  (string, raw; default: empty)"));
  ck_assert(strstr(help, "  FRAMEWORK_HOSTNAME  (string; default: the host's FQDN)"));
  ck_assert(strstr(help, "  K3S_NODE_ENV_DELIMITER  (string; default: \",\")"));
  /* Long defaults are shown whole. */
  ck_assert(strstr(help, "--disable-cloud-controller --snapshotter=native "
                         "--flannel-backend=vxlan\")\n"));
  ck_assert(strstr(help, "Accepted for compatibility"));
  ck_assert(!strstr(help, "MESOS_SANDBOX_VAR"));
  /* Every help line fits a terminal. */
  for(const char *p = help; *p;) {
    const char *nl = strchr(p, '\n');
    size_t len = nl ? (size_t)(nl - p) : strlen(p);
    bool header = len > 2 && p[0] == ' ' && p[1] == ' ' && p[2] != ' ';
    ck_assert_msg(header || len <= 78, "help line too long: %.*s", (int)len, p);
    p += len + (nl != NULL);
  }
  free(help);
}
END_TEST

/* ---- Vault ---- */

#define VAULT_GOOD_TOKEN "s.test-token-4711"

static struct mg_context *vault_ctx;
static int vault_port;

static int vault_reply(struct mg_connection *conn, int status, const char *body)
{
  mg_printf(conn, "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
            status, strlen(body), body);
  return status;
}

static int vault_handler(struct mg_connection *conn, void *data)
{
  const struct mg_request_info *ri = mg_get_request_info(conn);
  const char *token = mg_get_header(conn, "X-Vault-Token");

  (void)data;
  if(!token || strcmp(token, VAULT_GOOD_TOKEN) != 0)
    return vault_reply(conn, 403, "{\"errors\":[\"permission denied\"]}");
  if(strcmp(ri->request_method, "GET") != 0)
    return vault_reply(conn, 405, "{\"errors\":[]}");
  if(strcmp(ri->local_uri, "/v1/secret/data/m3s") == 0 ||
     strcmp(ri->local_uri, "/v1/secret/data/m3s app") == 0)
    return vault_reply(conn, 200,
                       "{\"request_id\":\"x\",\"data\":{\"data\":{\"password\":\"from-vault-pw\","
                       "\"db\":\"7\",\"port\":6380,\"cpu\":\"0.75\",\"empty\":\"\","
                       "\"count\":\"many\",\"obj\":{}},\"metadata\":{\"version\":3}}}");
  if(strcmp(ri->local_uri, "/v1/secret/data/slow") == 0) {
    usleep(1500 * 1000);
    return vault_reply(conn, 200, "{\"data\":{\"data\":{\"k\":\"v\"}}}");
  }
  if(strcmp(ri->local_uri, "/v1/secret/data/notjson") == 0)
    return vault_reply(conn, 200, "<html>");
  return vault_reply(conn, 404, "{\"errors\":[]}");
}

static void vault_start(void)
{
  const char *options[] = { "listening_ports", "127.0.0.1:0", "num_threads", "4", NULL };
  struct mg_callbacks cb;
  struct mg_server_port ports[2];

  memset(&cb, 0, sizeof(cb));
  vault_ctx = mg_start(&cb, NULL, options);
  ck_assert_ptr_nonnull(vault_ctx);
  mg_set_request_handler(vault_ctx, "/v1", vault_handler, NULL);
  ck_assert_int_ge(mg_get_server_ports(vault_ctx, 2, ports), 1);
  vault_port = ports[0].port;
  ck_assert_int_gt(vault_port, 0);
}

static void vault_stop(void)
{
  if(vault_ctx)
    mg_stop(vault_ctx);
  vault_ctx = NULL;
}

static char vault_url[64];

static const char *url(void)
{
  snprintf(vault_url, sizeof(vault_url), "http://127.0.0.1:%d", vault_port);
  return vault_url;
}

START_TEST(test_vault_resolves)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "MESOS_PASSWORD", "vault://secret/data/m3s:password",
                        "REDIS_DB", "vault://secret/data/m3s:db",
                        "DS_PORT", "vault://secret/data/m3s:port",
                        "DS_CPU", "vault://secret/data/m3s:cpu",
                        "K3S_TOKEN", "vault://secret/data/m3s:empty",
                        "AUTH_PASSWORD", "vault:///secret/data/m3s app:password"), 0);
  ck_assert_str_eq(cfg.mesos_password, "from-vault-pw");
  ck_assert_int_eq(cfg.redis_db, 7);
  ck_assert_int_eq(cfg.ds_port, 6380);          /* a JSON number is taken as text */
  ck_assert_double_eq(cfg.ds_cpu, 0.75);
  ck_assert_double_eq(cfg.ds_cpu_limit, 0.75);  /* derived from the resolved value */
  ck_assert_str_eq(cfg.k3s_token, "123456789"); /* empty secret: default */
  ck_assert_str_eq(cfg.auth_password, "from-vault-pw");  /* path percent-encoded */

  /* A resolved secret is masked and listed for the log scrubber. */
  char *text = print_to_string(&cfg);
  ck_assert(!strstr(text, "from-vault-pw"));
  ck_assert(!strstr(text, VAULT_GOOD_TOKEN));
  expect_line(text, "MESOS_PASSWORD=***");
  free(text);
  const char *out[16];
  size_t n = m3s_config_secrets(&cfg, out, 16);
  bool found = false;
  for(size_t k = 0; k < n; k++)
    found |= strcmp(out[k], "from-vault-pw") == 0;
  ck_assert(found);
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_vault_literal_kept)
{
  m3s_config_t cfg;

  /* No token: the literal stays, as in the original. */
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "MESOS_PASSWORD",
                        "vault://secret/data/m3s:password"), 0);
  ck_assert_str_eq(cfg.mesos_password, "vault://secret/data/m3s:password");
  m3s_config_free(&cfg);
  /* RAW variables are never resolved, wherever they are in the table. */
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "MESOS_CNI", "vault://secret/data/m3s:password",
                        "DOCKER_SOCK", "vault://secret/data/m3s:password"), 0);
  ck_assert_str_eq(cfg.mesos_cni, "vault://secret/data/m3s:password");
  ck_assert_str_eq(cfg.docker_sock, "vault://secret/data/m3s:password");
  m3s_config_free(&cfg);
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "VAULT_TIMEOUT", "vault://secret/data/m3s:password"), -EINVAL);
  ck_assert_msg(strstr(err, "VAULT_TIMEOUT=\"vault://secret/data/m3s:password\": expected a "
                            "duration"), "%s", err);
}
END_TEST

static void expect_vault_error(const char *name, const char *value, const char *token,
                               const char *needle)
{
  m3s_config_t cfg;

  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", token, "VAULT_TIMEOUT", "300ms",
                        name, value), -EINVAL);
  ck_assert_msg(strncmp(err, name, strlen(name)) == 0, "variable not named first: %s", err);
  ck_assert_msg(strstr(err, needle), "error lacks \"%s\": %s", needle, err);
  ck_assert_msg(!strstr(err, token), "token in the error: %s", err);
  ck_assert_msg(!strchr(err, '\n'), "not one line: %s", err);
  ck_assert(cfg_is_zero(&cfg));
}

START_TEST(test_vault_errors)
{
  m3s_config_t cfg;

  expect_vault_error("MESOS_PASSWORD", "vault://secret/data/m3s:nokey", VAULT_GOOD_TOKEN,
                     "no key \"nokey\"");
  expect_vault_error("MESOS_PASSWORD", "vault://secret/data/m3s:nokey", VAULT_GOOD_TOKEN,
                     "secret/data/m3s:nokey");
  expect_vault_error("REDIS_PASSWORD", "vault://secret/data/m3s:password", "wrong-token-99",
                     "HTTP 403");
  expect_vault_error("REDIS_PASSWORD", "vault://secret/data/m3s:password", "wrong-token-99",
                     "secret/data/m3s:password");
  expect_vault_error("K3S_TOKEN", "vault://secret/data/nothere:x", VAULT_GOOD_TOKEN, "HTTP 404");
  expect_vault_error("K3S_TOKEN", "vault://secret/data/m3s", VAULT_GOOD_TOKEN,
                     "expected vault://<path>:<key>");
  expect_vault_error("K3S_TOKEN", "vault:///:password", VAULT_GOOD_TOKEN,
                     "expected vault://<path>:<key>");
  expect_vault_error("K3S_TOKEN", "vault://secret/data/m3s:", VAULT_GOOD_TOKEN,
                     "expected vault://<path>:<key>");
  expect_vault_error("K3S_TOKEN", "vault://secret/data/m3s:obj", VAULT_GOOD_TOKEN,
                     "not a string");
  expect_vault_error("K3S_TOKEN", "vault://secret/data/notjson:x", VAULT_GOOD_TOKEN,
                     "not JSON");

  /* A resolved value that does not parse names the reference, not the token. */
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "K3S_AGENT_COUNT", "vault://secret/data/m3s:count"), -EINVAL);
  ck_assert_str_eq(err, "K3S_AGENT_COUNT=\"many\" (from vault://secret/data/m3s:count): "
                        "expected a whole number >= 0 and <= 1000");

  /* Bad Vault settings stop the start too. */
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", "ftp://127.0.0.1", "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "MESOS_PASSWORD", "vault://secret/data/m3s:password"), -EINVAL);
  ck_assert_msg(strstr(err, "VAULT_URL=\"ftp://127.0.0.1\""), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "VAULT_TIMEOUT", "soon",
                        "MESOS_PASSWORD", "vault://secret/data/m3s:password"), -EINVAL);
  ck_assert_msg(strstr(err, "VAULT_TIMEOUT=\"soon\""), "%s", err);
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", url(), "VAULT_TOKEN", "a\r\nX-Evil: 1",
                        "MESOS_PASSWORD", "vault://secret/data/m3s:password"), -EINVAL);
  ck_assert_msg(strstr(err, "VAULT_TOKEN contains control characters"), "%s", err);
  ck_assert_msg(!strstr(err, "Evil"), "%s", err);
}
END_TEST

START_TEST(test_vault_timeout_and_unreachable)
{
  char dead[64];

  /* The slow path answers after 1.5 s; VAULT_TIMEOUT is 300 ms. */
  expect_vault_error("MESOS_PASSWORD", "vault://secret/data/slow:k", VAULT_GOOD_TOKEN,
                     "failed");

  /* A loopback port that was free a moment ago: nothing listens there. */
  snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", m3s_free_port());

  m3s_config_t cfg;
  ck_assert_int_eq(LOAD(&cfg, "VAULT_URL", dead, "VAULT_TOKEN", VAULT_GOOD_TOKEN,
                        "MESOS_PASSWORD", "vault://secret/data/m3s:password"), -EINVAL);
  ck_assert_msg(strncmp(err, "MESOS_PASSWORD: vault lookup of vault://secret/data/m3s:password",
                        strlen("MESOS_PASSWORD: vault lookup of vault://secret/data/m3s:password")) == 0,
                "%s", err);
  ck_assert_msg(!strstr(err, VAULT_GOOD_TOKEN), "%s", err);
}
END_TEST


/* ---- run-time changes ---- */

#define ITEMS(...) (const m3s_config_item_t[]){ __VA_ARGS__ }, \
  sizeof((const m3s_config_item_t[]){ __VA_ARGS__ }) / sizeof(m3s_config_item_t)

START_TEST(test_set_good)
{
  m3s_config_t cfg, copy;
  ck_assert_int_eq(LOAD(&cfg, "K3S_AGENT_CPU", "1", "K3S_AGENT_CPU_LIMIT", "3"), 0);
  m3s_config_copy(&copy, &cfg);
  ck_assert_int_eq(m3s_config_set(&cfg, ITEMS({ "KUBERNETES_VERSION", "v1.32.1" },
                                             { "IMAGE_K3S", "example/k3s:2" },
                                             { "K3S_AGENT_LABELS", "[{\"key\":\"a\",\"value\":\"b\"}]" },
                                             { "K3S_AGENT_CPU", "2.5" }),
                                  err, sizeof(err)), 0);
  ck_assert_str_eq(err, "");
  ck_assert_str_eq(cfg.kubernetes_version, "v1.32.1");
  ck_assert_str_eq(cfg.image_k3s, "example/k3s:2");
  ck_assert_str_eq(cfg.k3s_agent_labels, "[{\"key\":\"a\",\"value\":\"b\"}]");
  ck_assert_double_eq(cfg.k3s_agent_cpu, 2.5);
  ck_assert_double_eq(cfg.k3s_agent_cpu_limit, 3);    /* given at start: kept */
  /* The copy is deep: the change did not reach it. */
  ck_assert_str_eq(copy.kubernetes_version, "v1.31.5");
  ck_assert_str_eq(copy.fw, cfg.fw);
  ck_assert_ptr_ne(copy.fw, cfg.fw);
  /* Empty means the default; a limit left empty follows its request. */
  ck_assert_int_eq(m3s_config_set(&cfg, ITEMS({ "IMAGE_K3S", "" },
                                             { "K3S_AGENT_CPU_LIMIT", "" }),
                                  err, sizeof(err)), 0);
  ck_assert_str_eq(cfg.image_k3s, copy.image_k3s);
  ck_assert_double_eq(cfg.k3s_agent_cpu_limit, 2.5);
  json_t *v = m3s_config_value_json(&cfg, "K3S_AGENT_CPU");
  ck_assert(json_is_real(v) && json_real_value(v) == 2.5);
  json_decref(v);
  v = m3s_config_value_json(&cfg, "K3S_AGENT_LABELS");
  ck_assert(json_is_array(v) && json_array_size(v) == 1);
  json_decref(v);
  v = m3s_config_value_json(&cfg, "K3S_SERVER_LABELS");
  ck_assert(json_is_null(v));
  json_decref(v);
  v = m3s_config_value_json(&cfg, "KUBERNETES_VERSION");
  ck_assert_str_eq(json_string_value(v), "v1.32.1");
  json_decref(v);
  ck_assert_str_eq(m3s_config_record_field("IMAGE_K3S"), "ImageK3S");
  ck_assert_str_eq(m3s_config_record_field("K3S_AGENT_MEM_LIMIT"), "K3SAgentMEMLimit");
  ck_assert_ptr_null(m3s_config_record_field("K3S_TOKEN"));
  ck_assert(m3s_config_is_live("K3S_SERVER_STRING"));
  ck_assert(!m3s_config_is_live("FRAMEWORK_NAME"));
  ck_assert(!m3s_config_is_live("rollout"));
  m3s_config_free(&copy);
  m3s_config_free(&cfg);
}
END_TEST

/* Every refusal names the variable and leaves the configuration as it was. */
START_TEST(test_set_bad)
{
  static const struct { m3s_config_item_t it[2]; size_t n; const char *want; } bad[] = {
    { { { "K3S_AGENT_CPU", "lots" } }, 1, "K3S_AGENT_CPU=\"lots\": expected a number >= 0.01" },
    { { { "K3S_AGENT_MEM", "16" } }, 1, "K3S_AGENT_MEM=\"16\": expected a number >= 32" },
    { { { "K3S_AGENT_LABELS", "{\"key\":\"a\"}" } }, 1, "K3S_AGENT_LABELS=" },
    { { { "K3S_SERVER_LABELS", "[1," } }, 1, "K3S_SERVER_LABELS=\"[1,\": expected JSON" },
    { { { "NO_SUCH_THING", "1" } }, 1, "NO_SUCH_THING: unknown variable" },
    { { { "rollout", "true" } }, 1, "rollout: unknown variable" },
    { { { "FRAMEWORK_NAME", "x" } }, 1, "FRAMEWORK_NAME: cannot be changed at run time" },
    { { { "IMAGE_K3S", "vault://secret/data/m3s:image" } }, 1, "IMAGE_K3S: vault://" },
    { { { "IMAGE_K3S", "a" }, { "IMAGE_K3S", "b" } }, 2, "IMAGE_K3S: given twice" },
    /* a good value does not save a bad one given with it */
    { { { "IMAGE_K3S", "ok:1" }, { "DS_CPU", "-1" } }, 2, "DS_CPU=\"-1\"" },
  };
  m3s_config_t cfg;
  ck_assert_int_eq(LOAD(&cfg, NULL), 0);
  char *before = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&before, &len);
  m3s_config_print(&cfg, f);
  fclose(f);
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    ck_assert_int_eq(m3s_config_set(&cfg, bad[i].it, bad[i].n, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, bad[i].want), "%zu: %s", i, err);
    char *after = NULL;
    f = open_memstream(&after, &len);
    m3s_config_print(&cfg, f);
    fclose(f);
    ck_assert_str_eq(after, before);
    free(after);
  }
  free(before);
  m3s_config_free(&cfg);
}
END_TEST

static Suite *config_suite(enum fork_status fork)
{
  Suite *s = suite_create("config");
  TCase *tc;

  tc = tcase_create("defaults");
  tcase_add_test(tc, test_defaults);
  tcase_add_test(tc, test_empty_means_default);
  tcase_add_test(tc, test_derived_defaults);
  tcase_add_test(tc, test_framework_name);
  tcase_add_test(tc, test_strings_and_domain);
  suite_add_tcase(s, tc);

  tc = tcase_create("types");
  tcase_add_test(tc, test_bool_good);
  tcase_add_test(tc, test_bool_bad);
  tcase_add_test(tc, test_int_good);
  tcase_add_test(tc, test_int_bad);
  tcase_add_test(tc, test_port_good);
  tcase_add_test(tc, test_port_bad);
  tcase_add_test(tc, test_float);
  tcase_add_test(tc, test_duration_good);
  tcase_add_test(tc, test_duration_bad);
  tcase_add_test(tc, test_hostport);
  tcase_add_test(tc, test_labels);
  tcase_add_test(tc, test_kvlists_good);
  tcase_add_test(tc, test_kvlists_bad);
  tcase_add_test(tc, test_constraints);
  tcase_add_test(tc, test_loglevel);
  suite_add_tcase(s, tc);

  tc = tcase_create("cross");
  tcase_add_test(tc, test_tls_good);
  tcase_add_test(tc, test_tls_bad);
  tcase_add_test(tc, test_datastore);
  tcase_add_test(tc, test_portrange);
  tcase_add_test(tc, test_error_buffer);
  suite_add_tcase(s, tc);

  tc = tcase_create("runtime");
  tcase_add_test(tc, test_set_good);
  tcase_add_test(tc, test_set_bad);
  suite_add_tcase(s, tc);

  tc = tcase_create("output");
  tcase_add_test(tc, test_print_masks_secrets);
  tcase_add_test(tc, test_print_values);
  tcase_add_test(tc, test_print_roundtrip);
  tcase_add_test(tc, test_secrets);
  tcase_add_test(tc, test_help);
  suite_add_tcase(s, tc);

  tc = tcase_create("vault");
  /* Without fork, one server for the whole case (mg_stop takes about 2 s).
   * With fork, each test process runs its own: a runner that forks while
   * server threads run would hand half a process to the children. */
  if(fork == CK_NOFORK)
    tcase_add_unchecked_fixture(tc, vault_start, vault_stop);
  else
    tcase_add_checked_fixture(tc, vault_start, vault_stop);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, test_vault_resolves);
  tcase_add_test(tc, test_vault_literal_kept);
  tcase_add_test(tc, test_vault_errors);
  tcase_add_test(tc, test_vault_timeout_and_unreachable);
  suite_add_tcase(s, tc);

  return s;
}

int main(void)
{
  SRunner *sr;
  int failed;

  /* The daemon does this in main before loading the configuration. */
  if(curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
    return 1;
  mg_init_library(0);
  sr = srunner_create(NULL);
  srunner_add_suite(sr, config_suite(srunner_fork_status(sr)));
  srunner_run_all(sr, CK_NORMAL);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  mg_exit_library();
  curl_global_cleanup();
  return failed == 0 ? 0 : 1;
}
