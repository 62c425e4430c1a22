/* Unit tests of the TaskInfo builder (src/actors/taskinfo.c).
 *
 * Each test loads a configuration from a fake environment (as
 * check_config.c does), builds TaskInfos and checks every field against
 * what the configuration asked for (behaviour spec §4, with the fixes of
 * §13.1 items 12 and 13). With M3S_TASKINFO_DUMP=<dir> every TaskInfo
 * built through build() is also written as a LAUNCH operation
 * (<dir>/<name>.json) for tests/unit/validate_taskinfo.py.
 * Fork mode and CK_FORK=no both work.
 */
#include <check.h>
#include <errno.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/config.h"
#include "m3s/taskinfo.h"
#include "m3s/taskspec.h"
#include "check_main.h"

static m3s_config_t cfg;
static char err[512];

static void load_kv(const char *const *kv)
{
  m3s_config_free(&cfg);
  memset(&cfg, 0, sizeof(cfg));
  int rc = m3s_config_load(&cfg, m3s_check_getenv, (void *)kv, err, sizeof(err));
  ck_assert_msg(rc == 0, "config load: %s", err);
}

/* LOAD("NAME", "value", ...); FRAMEWORK_HOSTNAME is always set. */
#define LOAD(...) \
  load_kv((const char *const[]){ "FRAMEWORK_HOSTNAME", "fw.example", __VA_ARGS__, NULL, NULL })

static void teardown(void)
{
  m3s_config_free(&cfg);
  memset(&cfg, 0, sizeof(cfg));
}

#define TASK_ID "0123abcd-4567-89ef-0123-456789abcdef"
#define AGENT_ID "82317765-6c51-4b5d-9b5d-eb9f972e545e-S0"

/* Argv tokens must never contain a space nor be empty. */
static void check_tokens(json_t *arr)
{
  size_t i;
  json_t *a;
  json_array_foreach(arr, i, a) {
    ck_assert(json_is_string(a));
    ck_assert_msg(strchr(json_string_value(a), ' ') == NULL,
                  "argv token with a space: '%s'", json_string_value(a));
    ck_assert_msg(*json_string_value(a) != '\0', "empty argv token");
  }
}

static void dump(const char *name, json_t *ti)
{
  const char *dir = getenv("M3S_TASKINFO_DUMP");
  if(!dir || !*dir)
    return;
  char path[1024];
  snprintf(path, sizeof(path), "%s/%s.json", dir, name);
  json_t *op = json_pack("{s:s, s:{s:[O]}}", "type", "LAUNCH", "launch", "task_infos", ti);
  ck_assert_ptr_nonnull(op);
  ck_assert_int_eq(json_dump_file(op, path, JSON_INDENT(2) | JSON_REAL_PRECISION(15)), 0);
  json_decref(op);
}

/* Builds with the given host ports and role "m3s"; checks generic rules. */
static json_t *build_r(const char *dump_name, const m3s_task_resources_t *res,
                       m3s_role_t role, const int *ports, size_t n, const char *hostname)
{
  m3s_placement_t p = { TASK_ID, AGENT_ID, hostname, ports, n, "m3s" };
  json_t *ti = m3s_taskinfo_build(&cfg, res, role, &p, err, sizeof(err));
  ck_assert_msg(ti != NULL, "build: %s", err);
  check_tokens(json_object_get(json_object_get(ti, "command"), "arguments"));
  check_tokens(json_object_get(json_object_get(json_object_get(ti, "health_check"),
                                               "command"), "arguments"));
  dump(dump_name, ti);
  return ti;
}

static json_t *build(const char *dump_name, m3s_role_t role, const int *ports, size_t n)
{
  return build_r(dump_name, NULL, role, ports, n, "agent1.example");
}

static const int DS_PORTS[] = { 31001 };
static const int SRV_PORTS[] = { 31000, 31002 };
static const int AG_PORTS[] = { 31003, 31004 };
static const int AG3_PORTS[] = { 31003, 31004, 31005 };

/* ---- accessors ---- */

static json_t *path(json_t *j, const char *p)
{
  char buf[256];
  snprintf(buf, sizeof(buf), "%s", p);
  for(char *save = NULL, *tok = strtok_r(buf, ".", &save); tok && j;
      tok = strtok_r(NULL, ".", &save)) {
    if(isdigit((unsigned char)tok[0]))
      j = json_array_get(j, (size_t)atoi(tok));
    else
      j = json_object_get(j, tok);
  }
  return j;
}

static const char *str(json_t *j, const char *p)
{
  json_t *v = path(j, p);
  ck_assert_msg(json_is_string(v), "%s is not a string", p);
  return json_string_value(v);
}

static json_int_t integer(json_t *j, const char *p)
{
  json_t *v = path(j, p);
  ck_assert_msg(json_is_integer(v), "%s is not an integer", p);
  return json_integer_value(v);
}

static double real(json_t *j, const char *p)
{
  json_t *v = path(j, p);
  ck_assert_msg(json_is_real(v), "%s is not a real", p);
  return json_real_value(v);
}

static int boolean(json_t *j, const char *p)
{
  json_t *v = path(j, p);
  ck_assert_msg(json_is_boolean(v), "%s is not a boolean", p);
  return json_is_true(v);
}

/* The array at p as strings "a|b|c" (objects as key=value / name=value). */
static void joined(json_t *j, const char *p, char *out, size_t len)
{
  json_t *arr = path(j, p), *it;
  size_t i, off = 0;
  out[0] = '\0';
  ck_assert_msg(json_is_array(arr), "%s is not an array", p);
  json_array_foreach(arr, i, it) {
    int n;
    if(json_is_string(it))
      n = snprintf(out + off, len - off, "%s%s", i ? "|" : "", json_string_value(it));
    else if(json_object_get(it, "key"))
      n = snprintf(out + off, len - off, "%s%s=%s", i ? "|" : "",
                   json_string_value(json_object_get(it, "key")),
                   json_string_value(json_object_get(it, "value")));
    else
      n = snprintf(out + off, len - off, "%s%s=%s", i ? "|" : "",
                   json_string_value(json_object_get(it, "name")),
                   json_string_value(json_object_get(it, "value")));
    ck_assert(n > 0 && (size_t)n < len - off);
    off += (size_t)n;
  }
}

#define ASSERT_JOINED(j, p, expect) do { \
    char buf_[8192]; \
    joined((j), (p), buf_, sizeof(buf_)); \
    ck_assert_str_eq(buf_, (expect)); \
  } while(0)

static void check_resources(json_t *ti, double cpus, double mem, double disk,
                            const int *ports, size_t n)
{
  json_t *r = json_object_get(ti, "resources");
  ck_assert_uint_eq(json_array_size(r), 4);
  const char *names[] = { "cpus", "mem", "disk" };
  double vals[] = { cpus, mem, disk };
  for(size_t i = 0; i < 3; i++) {
    json_t *x = json_array_get(r, i);
    ck_assert_str_eq(str(x, "name"), names[i]);
    ck_assert_str_eq(str(x, "type"), "SCALAR");
    ck_assert_double_eq_tol(real(x, "scalar.value"), vals[i], 1e-9);
    ck_assert_str_eq(str(x, "allocation_info.role"), "m3s");
    ck_assert_ptr_null(json_object_get(x, "role"));
  }
  json_t *pr = json_array_get(r, 3);
  ck_assert_str_eq(str(pr, "name"), "ports");
  ck_assert_str_eq(str(pr, "type"), "RANGES");
  ck_assert_str_eq(str(pr, "allocation_info.role"), "m3s");
  json_t *rg = path(pr, "ranges.range");
  ck_assert_uint_eq(json_array_size(rg), n);
  for(size_t i = 0; i < n; i++) {
    ck_assert_int_eq(integer(json_array_get(rg, i), "begin"), ports[i]);
    ck_assert_int_eq(integer(json_array_get(rg, i), "end"), ports[i]);
  }
}

static void check_mapping(json_t *ti, size_t i, int host, int container)
{
  json_t *m = json_array_get(path(ti, "container.docker.port_mappings"), i);
  ck_assert_ptr_nonnull(m);
  ck_assert_int_eq(integer(m, "host_port"), host);
  ck_assert_int_eq(integer(m, "container_port"), container);
  ck_assert_str_eq(str(m, "protocol"), "tcp");
}

static void check_dport(json_t *ti, size_t i, int number, const char *name, const char *proto)
{
  json_t *d = json_array_get(path(ti, "discovery.ports.ports"), i);
  ck_assert_ptr_nonnull(d);
  ck_assert_int_eq(integer(d, "number"), number);
  ck_assert_str_eq(str(d, "name"), name);
  ck_assert_str_eq(str(d, "protocol"), proto);
}

static void check_limits(json_t *ti, double cpus, double mem)
{
  ck_assert_uint_eq(json_object_size(json_object_get(ti, "limits")), 2);
  ck_assert_double_eq_tol(real(ti, "limits.cpus.value"), cpus, 1e-9);
  ck_assert_double_eq_tol(real(ti, "limits.mem.value"), mem, 1e-9);
}

static int count_env(json_t *ti, const char *name)
{
  json_t *vars = path(ti, "command.environment.variables"), *v;
  size_t i;
  int n = 0;
  json_array_foreach(vars, i, v)
    if(strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
      n++;
  return n;
}

static void check_volume(json_t *ti, const char *cpath, const char *driver, const char *name)
{
  json_t *vols = path(ti, "container.volumes");
  ck_assert_uint_eq(json_array_size(vols), 1);
  json_t *v = json_array_get(vols, 0);
  ck_assert_str_eq(str(v, "container_path"), cpath);
  ck_assert_str_eq(str(v, "mode"), "RW");
  ck_assert_str_eq(str(v, "source.type"), "DOCKER_VOLUME");
  ck_assert_str_eq(str(v, "source.docker_volume.driver"), driver);
  ck_assert_str_eq(str(v, "source.docker_volume.name"), name);
}

/* ---- tests ---- */

START_TEST(test_task_id)
{
  char a[37], b[37];
  m3s_task_id_new(a);
  m3s_task_id_new(b);
  ck_assert_uint_eq(strlen(a), 36);
  for(size_t i = 0; i < 36; i++) {
    if(i == 8 || i == 13 || i == 18 || i == 23)
      ck_assert_int_eq(a[i], '-');
    else
      ck_assert_msg(isdigit((unsigned char)a[i]) || (a[i] >= 'a' && a[i] <= 'f'),
                    "bad char in %s", a);
  }
  ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_datastore_mysql_defaults)
{
  LOAD(NULL, NULL);
  json_t *ti = build("datastore-mysql", M3S_ROLE_DATASTORE, DS_PORTS, 1);
  ck_assert_str_eq(str(ti, "name"), "m3s:datastore");
  ck_assert_str_eq(str(ti, "task_id.value"), TASK_ID);
  ck_assert_str_eq(str(ti, "agent_id.value"), AGENT_ID);
  check_resources(ti, 1, 1000, 10000, DS_PORTS, 1);
  check_limits(ti, 1, 1000);
  ck_assert_str_eq(str(ti, "container.type"), "DOCKER");
  ck_assert_str_eq(str(ti, "container.hostname"), "m3sdatastore.local");
  ck_assert_str_eq(str(ti, "container.docker.image"), "docker.io/mariadb:10.8.3");
  ck_assert_str_eq(str(ti, "container.docker.network"), "BRIDGE");
  ck_assert(!boolean(ti, "container.docker.privileged"));
  ck_assert(boolean(ti, "container.docker.force_pull_image"));
  ck_assert_ptr_null(path(ti, "container.network_infos"));
  ASSERT_JOINED(ti, "container.docker.parameters", "cap-add=NET_ADMIN|memory-swap=2g");
  ck_assert_uint_eq(json_array_size(path(ti, "container.docker.port_mappings")), 1);
  check_mapping(ti, 0, 31001, 3306);
  ck_assert_str_eq(str(ti, "discovery.visibility"), "EXTERNAL");
  ck_assert_str_eq(str(ti, "discovery.name"), "m3s:datastore");
  ck_assert_uint_eq(json_array_size(path(ti, "discovery.ports.ports")), 1);
  check_dport(ti, 0, 31001, "datastore", "tcp");
  ck_assert(!boolean(ti, "command.shell"));
  ck_assert_ptr_null(path(ti, "command.value"));
  ck_assert_ptr_null(path(ti, "command.arguments"));
  ck_assert_ptr_null(path(ti, "command.uris"));
  ASSERT_JOINED(ti, "command.environment.variables",
                "SERVICE_NAME=m3s:datastore|MYSQL_ROOT_PASSWORD=password|MYSQL_DATABASE=k3s|"
                "TZ=Etc/UTC|MESOS_TASK_ID=" TASK_ID);
  check_volume(ti, "/var/lib/mysql", "local", "/data/k3s/datastore");
  ck_assert_str_eq(str(ti, "health_check.type"), "COMMAND");
  ck_assert(!boolean(ti, "health_check.command.shell"));
  ck_assert_str_eq(str(ti, "health_check.command.value"), "mysqladmin");
  ASSERT_JOINED(ti, "health_check.command.arguments", "ping|-h|localhost");
  ck_assert_ptr_null(json_object_get(ti, "labels"));
  json_decref(ti);
}
END_TEST

START_TEST(test_datastore_mysql_options)
{
  LOAD("DS_MYSQL_SSL", "true", "DS_PORT", "3307", "DS_MYSQL_PASSWORD", "s3cret",
       "DOCKER_CNI", "weave", "RESTRICT_DISK_ALLOCATION", "true", "DS_DISK_LIMIT", "12345.9",
       "CUSTOM_DOCKER_RUNTIME", "runsc", "DS_MEM", "3000", "DS_MEM_LIMIT", "4096",
       "DOCKER_MEMORY_SWAP", "2048", "ENFORCE_MESOS_TASK_LIMITS", "false",
       "FRAMEWORK_NAME", "x", "DOMAIN", "example.net", "VOLUME_DRIVER", "rbd",
       "VOLUME_DS", "dsvol", "TZ", "Europe/Berlin");
  json_t *ti = build("datastore-mysql-options", M3S_ROLE_DATASTORE, DS_PORTS, 1);
  ck_assert_str_eq(str(ti, "name"), "m3sx:datastore");
  ck_assert_str_eq(str(ti, "container.hostname"), "m3sxdatastore.example.net");
  ck_assert_str_eq(str(ti, "container.docker.network"), "USER");
  ck_assert_uint_eq(json_array_size(path(ti, "container.network_infos")), 1);
  ck_assert_str_eq(str(ti, "container.network_infos.0.name"), "weave");
  /* (2048 + 4096) / 1024 = 6 */
  ASSERT_JOINED(ti, "container.docker.parameters",
                "cap-add=NET_ADMIN|memory-swap=6g|net-alias=datastore|"
                "storage-opt=size=12345mb|runtime=runsc");
  ck_assert_ptr_null(json_object_get(ti, "limits"));
  check_resources(ti, 1, 3000, 10000, DS_PORTS, 1);
  check_mapping(ti, 0, 31001, 3307);
  ASSERT_JOINED(ti, "command.arguments",
                "--ssl-ca=/var/lib/mysql/ca.pem|--ssl-cert=/var/lib/mysql/server-cert.pem|"
                "--ssl-key=/var/lib/mysql/server-key.pem");
  ASSERT_JOINED(ti, "command.environment.variables",
                "SERVICE_NAME=m3sx:datastore|MYSQL_ROOT_PASSWORD=s3cret|MYSQL_DATABASE=k3s|"
                "TZ=Europe/Berlin|MESOS_TASK_ID=" TASK_ID);
  check_volume(ti, "/var/lib/mysql", "rbd", "dsvol");
  json_decref(ti);
}
END_TEST

START_TEST(test_datastore_etcd)
{
  /* DS_ETCD alone: the original mixed MariaDB and etcd (§13.1 item 12). */
  LOAD("DS_ETCD", "true", "DS_PORT", "2379", "MESOS_CNI", "cni0");
  ck_assert(cfg.ds_etcd);
  json_t *ti = build("datastore-etcd", M3S_ROLE_DATASTORE, DS_PORTS, 1);
  ck_assert_str_eq(str(ti, "container.docker.image"), "quay.io/coreos/etcd:v3.5.1");
  ck_assert_str_eq(str(ti, "container.docker.network"), "BRIDGE");
  ck_assert_str_eq(str(ti, "container.network_infos.0.name"), "cni0");
  ASSERT_JOINED(ti, "container.docker.parameters", "cap-add=NET_ADMIN|memory-swap=2g");
  ck_assert(boolean(ti, "command.shell"));
  ck_assert_str_eq(str(ti, "command.value"),
                   "/usr/local/bin/etcd --listen-client-urls http://0.0.0.0:2379 "
                   "--election-timeout '50000' --heartbeat-interval '5000'");
  const char *env = "SERVICE_NAME=m3s:datastore|ALLOW_NONE_AUTHENTICATION=yes|"
                    "ETCD_ADVERTISE_CLIENT_URLS=http://m3sdatastore.local:2379|"
                    "MESOS_TASK_ID=" TASK_ID "|TZ=Etc/UTC";
  ASSERT_JOINED(ti, "command.environment.variables", env);
  ck_assert_int_eq(count_env(ti, "MYSQL_ROOT_PASSWORD"), 0);
  check_volume(ti, "/default.etcd", "local", "/data/k3s/datastore");
  check_mapping(ti, 0, 31001, 2379);
  ck_assert_str_eq(str(ti, "health_check.type"), "COMMAND");
  ck_assert_double_eq_tol(real(ti, "health_check.delay_seconds"), 60, 1e-9);
  ck_assert(boolean(ti, "health_check.command.shell"));
  ck_assert_str_eq(str(ti, "health_check.command.value"),
                   "etcdctl endpoint health --endpoints=http://127.0.0.1:2379");
  ASSERT_JOINED(ti, "health_check.command.environment.variables", env);
  json_decref(ti);

  /* The server of an etcd cluster gets one http endpoint, no MySQL one. */
  ti = build("server-etcd", M3S_ROLE_SERVER, SRV_PORTS, 2);
  ck_assert_int_eq(count_env(ti, "K3S_DATASTORE_ENDPOINT"), 1);
  json_t *last = json_array_get(path(ti, "command.environment.variables"),
                                json_array_size(path(ti, "command.environment.variables")) - 1);
  ck_assert_str_eq(str(last, "name"), "K3S_DATASTORE_ENDPOINT");
  ck_assert_str_eq(str(last, "value"), "http://m3sdatastore.local:2379");
  json_decref(ti);
}
END_TEST

START_TEST(test_server_defaults)
{
  LOAD(NULL, NULL);
  json_t *ti = build("server-defaults", M3S_ROLE_SERVER, SRV_PORTS, 2);
  ck_assert_str_eq(str(ti, "name"), "m3s:server");
  check_resources(ti, 1, 2000, 1000, SRV_PORTS, 2);
  check_limits(ti, 1, 2000);
  ck_assert_str_eq(str(ti, "container.hostname"), "m3sserver.local");
  ck_assert_str_eq(str(ti, "container.docker.image"), "avhost/ubuntu-m3s:22.04-3");
  ck_assert_str_eq(str(ti, "container.docker.network"), "BRIDGE");
  ck_assert(boolean(ti, "container.docker.privileged"));
  ck_assert(boolean(ti, "container.docker.force_pull_image"));
  ck_assert_ptr_null(path(ti, "container.network_infos"));
  ASSERT_JOINED(ti, "container.docker.parameters",
                "cap-add=NET_ADMIN|cap-add=SYS_ADMIN|shm-size=30gb|memory-swap=3g|"
                "ulimit=nofile=1048576");
  ck_assert_uint_eq(json_array_size(path(ti, "container.docker.port_mappings")), 2);
  check_mapping(ti, 0, 31000, 6443);
  check_mapping(ti, 1, 31002, 8080);
  ck_assert_str_eq(str(ti, "discovery.visibility"), "EXTERNAL");
  ck_assert_str_eq(str(ti, "discovery.name"), "m3s:server");
  check_dport(ti, 0, 31000, "kubernetes", "tcp");
  check_dport(ti, 1, 31002, "http", "tcp");
  ck_assert(!boolean(ti, "command.shell"));
  ck_assert_str_eq(str(ti, "command.value"), "/mnt/mesos/sandbox/bootstrap");
  ASSERT_JOINED(ti, "command.arguments",
                "/usr/local/bin/k3s|server|--cluster-cidr=10.2.0.0/16|--service-cidr=10.3.0.0/16|"
                "--cluster-dns=10.3.0.10|--kube-scheduler-arg=leader-elect=false|"
                "--kube-controller-manager-arg=enable-leader-migration=false|"
                "--kube-cloud-controller-manager-arg=enable-leader-migration=false|"
                "--disable-cloud-controller|--snapshotter=native|--flannel-backend=vxlan|"
                "--tls-san=m3sserver|--node-label|m3s.aventer.biz/taskid=" TASK_ID "|"
                "--node-taint|node-role.kubernetes.io/master=NoSchedule:NoSchedule|"
                "--tls-san=agent1.example");
  ck_assert_uint_eq(json_array_size(path(ti, "command.uris")), 1);
  ck_assert_str_eq(str(ti, "command.uris.0.value"),
                   "https://raw.githubusercontent.com/AVENTER-UG/mesos-m3s/master/bootstrap/bootstrap.sh");
  ck_assert(!boolean(ti, "command.uris.0.extract"));
  ck_assert(boolean(ti, "command.uris.0.executable"));
  ck_assert(!boolean(ti, "command.uris.0.cache"));
  ck_assert_str_eq(str(ti, "command.uris.0.output_file"), "bootstrap");
  ASSERT_JOINED(ti, "command.environment.variables",
                "SERVICE_NAME=m3s:server|KUBERNETES_VERSION=v1.31.5|K3SFRAMEWORK_TYPE=server|"
                "K3S_URL=https://m3sserver.local:6443|K3S_TOKEN=123456789|"
                "K3S_KUBECONFIG_MODE=666|KUBECONFIG=/etc/rancher/k3s/k3s.yaml|"
                "M3S_CONTROLLER__REDIS_SERVER=127.0.0.1:6379|M3S_CONTROLLER__REDIS_PASSWORD=|"
                "M3S_CONTROLLER__REDIS_DB=1|M3S_CONTROLLER__REDIS_PREFIX=m3s|"
                "M3S_CONTROLLER__LOGLEVEL=DEBUG|M3S_CONTROLLER__ENABLE_TAINT=true|"
                "MESOS_SANDBOX_VAR=|TZ=Etc/UTC|MESOS_TASK_ID=" TASK_ID "|"
                "K3S_DATASTORE_ENDPOINT=mysql://root:password@tcp(m3sdatastore.local:3306)/k3s");
  check_volume(ti, "/var/lib/rancher/k3s", "local", "/data/k3s/server");
  /* The server's health is its K3s API answering. */
  ck_assert_str_eq(str(ti, "health_check.type"), "COMMAND");
  ck_assert(boolean(ti, "health_check.command.shell"));
  ck_assert_str_eq(str(ti, "health_check.command.value"),
                   "k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /readyz");
  ck_assert_double_eq_tol(real(ti, "health_check.grace_period_seconds"), 600, 1e-9);
  ck_assert_ptr_null(json_object_get(ti, "labels"));
  json_decref(ti);

  /* No agent hostname: no second --tls-san. */
  ti = build_r("server-no-hostname", NULL, M3S_ROLE_SERVER, SRV_PORTS, 2, NULL);
  json_t *args = path(ti, "command.arguments");
  ck_assert_str_eq(json_string_value(json_array_get(args, json_array_size(args) - 1)),
                   "node-role.kubernetes.io/master=NoSchedule:NoSchedule");
  json_decref(ti);
}
END_TEST

/* memory-swap below the memory Docker gets is refused by Docker: the
 * original's rounding stays where it is big enough and is raised where not. */
START_TEST(test_memory_swap_never_below_memory)
{
  static const struct { const char *swap, *mem, *want; } cases[] = {
    { "0", "1400", "memory-swap=2g" },    /* 1.37 rounds to 1g < 1400 MB */
    { "0", "1000", "memory-swap=1g" },    /* 0.98 -> 1g = 1024 MB: kept */
    { "100", "3000", "memory-swap=3g" },  /* 3.03 -> 3g = 3072 MB: kept */
    { "0", "3100", "memory-swap=4g" },    /* 3.03 -> 3g < 3100 MB */
    { "1000", "1400", "memory-swap=2g" }, /* 2.34 -> 2g: the original's */
  };
  for(size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    LOAD("DOCKER_MEMORY_SWAP", cases[i].swap, "DS_MEM", cases[i].mem,
         "K3S_AGENT_MEM", cases[i].mem);
    char want[64];
    snprintf(want, sizeof(want), "cap-add=NET_ADMIN|%s", cases[i].want);
    json_t *ti = build("memory-swap-ds", M3S_ROLE_DATASTORE, DS_PORTS, 1);
    ASSERT_JOINED(ti, "container.docker.parameters", want);
    json_decref(ti);
    ti = build("memory-swap-agent", M3S_ROLE_AGENT, AG_PORTS, 2);
    ck_assert_str_eq(str(ti, "container.docker.parameters.3.key"), "memory-swap");
    ck_assert_str_eq(str(ti, "container.docker.parameters.3.value"),
                     cases[i].want + strlen("memory-swap="));
    json_decref(ti);
  }
}
END_TEST

/* DOCKER_FORCE_PULL=false: the agent uses an image it already has (the
 * e2e tier's local images; a real Docker without a registry). */
START_TEST(test_force_pull_off)
{
  static const struct { m3s_role_t role; const int *ports; size_t n; } roles[] = {
    { M3S_ROLE_DATASTORE, DS_PORTS, 1 },
    { M3S_ROLE_SERVER, SRV_PORTS, 2 },
    { M3S_ROLE_AGENT, AG_PORTS, 2 },
  };
  LOAD("DOCKER_FORCE_PULL", "false");
  for(size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
    char name[64];
    snprintf(name, sizeof(name), "force-pull-off-%s", m3s_role_name(roles[i].role));
    json_t *ti = build(name, roles[i].role, roles[i].ports, roles[i].n);
    json_t *fp = path(ti, "container.docker.force_pull_image");
    ck_assert_msg(json_is_false(fp), "%s: force_pull_image is not false",
                  m3s_role_name(roles[i].role));
    json_decref(ti);
  }
}
END_TEST

START_TEST(test_server_options)
{
  LOAD("DOCKER_CNI", "k3snet", "K3S_DOCKER", "true", "ENABLE_REGISTRY_MIRROR", "true",
       "RESTRICT_DISK_ALLOCATION", "true", "K3S_SERVER_DISK_LIMIT", "5000",
       "CUSTOM_DOCKER_RUNTIME", "nvidia", "CGROUP_V2", "true",
       "K3S_SERVER_CUSTOM_DOCKER_PARAMETER", "cpu-shares=512,device=/dev/fuse",
       "K3S_NODE_ENV", "A=1,B=x=y", "K3S_SERVER_NODE_ENV", "S=2",
       "K3S_AGENT_NODE_ENV", "AG=3", "K3S_ENABLE_TAINT", "false",
       "K3S_SERVER_LABELS", "[{\"key\":\"traefik.enable\",\"value\":\"true\"},{\"key\":\"k\"}]",
       "K3S_SERVER_STRING", "/usr/local/bin/k3s  server --a=b ",
       "DS_MYSQL_SSL", "true", "DS_MYSQL_USERNAME", "k3s", "REDIS_PASSWORD", "rp",
       "REDIS_SERVER", "redis:6380", "REDIS_DB", "4", "LOGLEVEL", "info",
       "K3S_SERVER_MEM", "4000", "K3S_SERVER_MEM_LIMIT", "5000", "K3S_SERVER_CPU", "0.5",
       "K3S_SERVER_CPU_LIMIT", "1.5", "DOCKER_SHM_SIZE", "1gb", "DOCKER_ULIMIT", "4096",
       "KUBERNETES_VERSION", "v1.30.0", "K3S_TOKEN", "tok");
  json_t *ti = build("server-options", M3S_ROLE_SERVER, SRV_PORTS, 2);
  ck_assert_str_eq(str(ti, "container.docker.network"), "USER");
  ck_assert_str_eq(str(ti, "container.network_infos.0.name"), "k3snet");
  /* (1000 + 5000) / 1024 = 5.86 -> 6g */
  ASSERT_JOINED(ti, "container.docker.parameters",
                "cap-add=NET_ADMIN|cap-add=SYS_ADMIN|shm-size=1gb|memory-swap=6g|"
                "ulimit=nofile=4096|cpu-shares=512|device=/dev/fuse|storage-opt=size=5000mb|"
                "runtime=nvidia|net-alias=m3sserver|cgroupns=private");
  check_resources(ti, 0.5, 4000, 1000, SRV_PORTS, 2);
  check_limits(ti, 1.5, 5000);
  ASSERT_JOINED(ti, "command.arguments",
                "/usr/local/bin/k3s|server|--a=b|--container-runtime-endpoint|"
                "unix:///var/run/cri-dockerd.sock|--tls-san=m3sserver|--node-label|"
                "m3s.aventer.biz/taskid=" TASK_ID "|--embedded-registry|--tls-san=agent1.example");
  ASSERT_JOINED(ti, "command.environment.variables",
                "SERVICE_NAME=m3s:server|KUBERNETES_VERSION=v1.30.0|K3SFRAMEWORK_TYPE=server|"
                "K3S_URL=https://m3sserver.local:6443|K3S_TOKEN=tok|"
                "K3S_KUBECONFIG_MODE=666|KUBECONFIG=/etc/rancher/k3s/k3s.yaml|"
                "M3S_CONTROLLER__REDIS_SERVER=redis:6380|M3S_CONTROLLER__REDIS_PASSWORD=rp|"
                "M3S_CONTROLLER__REDIS_DB=4|M3S_CONTROLLER__REDIS_PREFIX=m3s|"
                "M3S_CONTROLLER__LOGLEVEL=info|M3S_CONTROLLER__ENABLE_TAINT=false|"
                "MESOS_SANDBOX_VAR=|TZ=Etc/UTC|MESOS_TASK_ID=" TASK_ID "|A=1|B=x=y|S=2|"
                "K3S_DATASTORE_ENDPOINT=mysql://k3s:password@tcp(m3sdatastore.local:3306)/k3s|"
                "K3S_DATASTORE_CAFILE=/var/lib/rancher/k3s/ca.pem|"
                "K3S_DATASTORE_CERTFILE=/var/lib/rancher/k3s/client-cert.pem|"
                "K3S_DATASTORE_KEYFILE=/var/lib/rancher/k3s/client-key.pem");
  json_t *labels = path(ti, "labels.labels");
  ck_assert_uint_eq(json_array_size(labels), 2);
  ck_assert_str_eq(str(labels, "0.key"), "traefik.enable");
  ck_assert_str_eq(str(labels, "0.value"), "true");
  ck_assert_str_eq(str(labels, "1.key"), "k");
  ck_assert_ptr_null(path(labels, "1.value"));
  json_decref(ti);
}
END_TEST

START_TEST(test_agent_defaults)
{
  LOAD(NULL, NULL);
  json_t *ti = build("agent-defaults", M3S_ROLE_AGENT, AG_PORTS, 2);
  ck_assert_str_eq(str(ti, "name"), "m3s:agent");
  check_resources(ti, 2, 2000, 10000, AG_PORTS, 2);
  check_limits(ti, 2, 2000);
  ck_assert_str_eq(str(ti, "container.hostname"), "m3sagent.local");
  ck_assert_str_eq(str(ti, "container.docker.image"), "avhost/ubuntu-m3s:22.04-3");
  ck_assert_str_eq(str(ti, "container.docker.network"), "BRIDGE");
  ck_assert(boolean(ti, "container.docker.privileged"));
  ck_assert(boolean(ti, "container.docker.force_pull_image"));
  ASSERT_JOINED(ti, "container.docker.parameters",
                "cap-add=NET_ADMIN|cap-add=SYS_ADMIN|shm-size=30gb|memory-swap=3g|"
                "ulimit=nofile=1048576");
  ck_assert_uint_eq(json_array_size(path(ti, "container.docker.port_mappings")), 2);
  check_mapping(ti, 0, 31003, 80);
  check_mapping(ti, 1, 31004, 443);
  ck_assert_uint_eq(json_array_size(path(ti, "discovery.ports.ports")), 2);
  ck_assert_str_eq(str(ti, "discovery.name"), "m3s:agent");
  check_dport(ti, 0, 31003, "m3s-http", "http");
  check_dport(ti, 1, 31004, "m3s-https", "https");
  ck_assert_ptr_null(path(ti, "container.volumes"));
  ck_assert_str_eq(str(ti, "command.value"), "/mnt/mesos/sandbox/bootstrap");
  ck_assert(!boolean(ti, "command.shell"));
  ASSERT_JOINED(ti, "command.arguments",
                "/usr/local/bin/k3s|agent|--snapshotter=native|--with-node-id|--kubelet-arg|"
                "node-labels=m3s.aventer.biz/taskid=" TASK_ID);
  ck_assert_str_eq(str(ti, "command.uris.0.output_file"), "bootstrap");
  ck_assert(boolean(ti, "command.uris.0.executable"));
  ASSERT_JOINED(ti, "command.environment.variables",
                "SERVICE_NAME=m3s:agent|KUBERNETES_VERSION=v1.31.5|K3SFRAMEWORK_TYPE=agent|"
                "K3S_TOKEN=123456789|K3S_URL=https://m3sserver.local:6443|MESOS_SANDBOX_VAR=|"
                "TZ=Etc/UTC|MESOS_TASK_ID=" TASK_ID);
  ck_assert_ptr_null(json_object_get(ti, "health_check"));
  ck_assert_ptr_null(json_object_get(ti, "labels"));
  json_decref(ti);
}
END_TEST

START_TEST(test_agent_options)
{
  LOAD("FRAMEWORK_NAME", "Prod", "K3S_AGENT_TCP_PORT", "5432", "ENABLE_REGISTRY_MIRROR", "true",
       "K3S_DOCKER", "true", "MESOS_CNI", "calico", "DOCKER_CNI", "ignored",
       "REDIS_PASSWORD", "rp", "K3S_NODE_ENV_DELIMITER", ";",
       "K3S_NODE_ENV", "A=1;C=3", "K3S_AGENT_NODE_ENV", "AG=3", "K3S_SERVER_NODE_ENV", "S=2",
       "K3S_AGENT_CUSTOM_DOCKER_PARAMETER", "cpus=3", "CGROUP_V2", "true",
       "RESTRICT_DISK_ALLOCATION", "true", "K3S_AGENT_DISK_LIMIT", "20000.7",
       "K3S_AGENT_LABELS", "[{\"key\":\"traefik.http.routers.m3s.service\",\"value\":\"m3sprod-http\"}]");
  json_t *ti = build("agent-options", M3S_ROLE_AGENT, AG3_PORTS, 3);
  ck_assert_str_eq(str(ti, "name"), "m3sProd:agent");
  ck_assert_str_eq(str(ti, "container.hostname"), "m3sProdagent.local");
  ck_assert_str_eq(str(ti, "container.docker.network"), "BRIDGE");
  ck_assert_str_eq(str(ti, "container.network_infos.0.name"), "calico");
  ASSERT_JOINED(ti, "container.docker.parameters",
                "cap-add=NET_ADMIN|cap-add=SYS_ADMIN|shm-size=30gb|memory-swap=3g|"
                "ulimit=nofile=1048576|cpus=3|storage-opt=size=20000mb|cgroupns=private");
  check_resources(ti, 2, 2000, 10000, AG3_PORTS, 3);
  ck_assert_uint_eq(json_array_size(path(ti, "container.docker.port_mappings")), 3);
  check_mapping(ti, 2, 31005, 5432);
  check_dport(ti, 0, 31003, "m3sprod-http", "http");
  check_dport(ti, 1, 31004, "m3sprod-https", "https");
  check_dport(ti, 2, 31005, "m3sprod-tcp", "tcp");
  ASSERT_JOINED(ti, "command.arguments",
                "/usr/local/bin/k3s|agent|--snapshotter=native|--container-runtime-endpoint|"
                "unix:///var/run/cri-dockerd.sock|--with-node-id|--kubelet-arg|"
                "node-labels=m3s.aventer.biz/taskid=" TASK_ID);
  ASSERT_JOINED(ti, "command.environment.variables",
                "SERVICE_NAME=m3sProd:agent|KUBERNETES_VERSION=v1.31.5|K3SFRAMEWORK_TYPE=agent|"
                "K3S_TOKEN=123456789|K3S_URL=https://m3sProdserver.local:6443|MESOS_SANDBOX_VAR=|"
                "TZ=Etc/UTC|MESOS_TASK_ID=" TASK_ID "|A=1|C=3|AG=3");
  ck_assert_int_eq(count_env(ti, "REDIS_PASSWORD"), 0);
  ck_assert_int_eq(count_env(ti, "REDIS_SERVER"), 0);
  ck_assert_int_eq(count_env(ti, "REDIS_DB"), 0);
  ck_assert_str_eq(str(ti, "labels.labels.0.key"), "traefik.http.routers.m3s.service");
  ck_assert_str_eq(str(ti, "labels.labels.0.value"), "m3sprod-http");
  json_decref(ti);

  /* A Docker user network: USER, net-alias <fw>agent. */
  LOAD("DOCKER_CNI", "weave");
  ti = build("agent-user-network", M3S_ROLE_AGENT, AG_PORTS, 2);
  ck_assert_str_eq(str(ti, "container.docker.network"), "USER");
  ck_assert_str_eq(str(ti, "container.network_infos.0.name"), "weave");
  ASSERT_JOINED(ti, "container.docker.parameters",
                "cap-add=NET_ADMIN|cap-add=SYS_ADMIN|shm-size=30gb|memory-swap=3g|"
                "ulimit=nofile=1048576|net-alias=m3sagent");
  json_decref(ti);
}
END_TEST

START_TEST(test_resources_override_and_demand)
{
  LOAD("K3S_SERVER_PORT", "31500", "K3S_AGENT_TCP_PORT", "9000");
  m3s_task_demand_t d;
  m3s_task_demand(&cfg, NULL, M3S_ROLE_DATASTORE, &d);
  ck_assert_double_eq(d.cpus, 1);
  ck_assert_double_eq(d.mem, 1000);
  ck_assert_double_eq(d.disk, 10000);
  ck_assert_uint_eq(d.n_ports, 1);
  ck_assert_int_eq(d.fixed_port, 0);
  m3s_task_demand(&cfg, NULL, M3S_ROLE_SERVER, &d);
  ck_assert_uint_eq(d.n_ports, 2);
  ck_assert_int_eq(d.fixed_port, 31500);
  ck_assert_double_eq(d.disk, 1000);
  m3s_task_demand(&cfg, NULL, M3S_ROLE_AGENT, &d);
  ck_assert_uint_eq(d.n_ports, 3);
  ck_assert_int_eq(d.fixed_port, 0);
  ck_assert_double_eq(d.cpus, 2);
  m3s_task_demand(&cfg, NULL, M3S_ROLE_NONE, &d);
  ck_assert_uint_eq(d.n_ports, 0);
  ck_assert_double_eq(d.cpus, 0);

  m3s_task_resources_t r;
  m3s_task_resources_from_config(&cfg, M3S_ROLE_AGENT, &r);
  ck_assert_double_eq(r.cpu_limit, 2);
  ck_assert_double_eq(r.mem_limit, 2000);
  ck_assert_double_eq(r.disk_limit, 10000);
  r = (m3s_task_resources_t){ 0.25, 0.75, 512, 1024, 777, 888 };
  m3s_task_demand(&cfg, &r, M3S_ROLE_AGENT, &d);
  ck_assert_double_eq(d.cpus, 0.25);
  ck_assert_double_eq(d.mem, 512);
  ck_assert_double_eq(d.disk, 777);
  json_t *ti = build_r("agent-resources", &r, M3S_ROLE_AGENT, AG3_PORTS, 3, NULL);
  check_resources(ti, 0.25, 512, 777, AG3_PORTS, 3);
  check_limits(ti, 0.75, 1024);
  /* (1000 + 1024) / 1024 = 1.98 -> 2g */
  ck_assert_str_eq(str(ti, "container.docker.parameters.3.value"), "2g");
  json_decref(ti);

  /* No role in the placement: allocation_info left to the master. */
  m3s_placement_t p = { TASK_ID, AGENT_ID, NULL, DS_PORTS, 1, NULL };
  ti = m3s_taskinfo_build(&cfg, NULL, M3S_ROLE_DATASTORE, &p, err, sizeof(err));
  ck_assert_ptr_nonnull(ti);
  for(size_t i = 0; i < 4; i++)
    ck_assert_ptr_null(json_object_get(json_array_get(json_object_get(ti, "resources"), i),
                                       "allocation_info"));
  json_decref(ti);
}
END_TEST

static void expect_fail(m3s_role_t role, const m3s_task_resources_t *res,
                        const m3s_placement_t *p, const char *needle)
{
  err[0] = '\0';
  json_t *ti = m3s_taskinfo_build(&cfg, res, role, p, err, sizeof(err));
  ck_assert_ptr_null(ti);
  ck_assert_msg(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err, needle);
}

START_TEST(test_errors)
{
  LOAD(NULL, NULL);
  m3s_placement_t p = { TASK_ID, AGENT_ID, NULL, SRV_PORTS, 2, "m3s" };
  expect_fail(M3S_ROLE_NONE, NULL, &p, "invalid role");
  expect_fail((m3s_role_t)42, NULL, &p, "invalid role");
  expect_fail(M3S_ROLE_DATASTORE, NULL, &p, "needs 1 host ports, got 2");
  expect_fail(M3S_ROLE_AGENT, NULL, &(m3s_placement_t){ TASK_ID, AGENT_ID, NULL, AG3_PORTS, 3, "m3s" },
              "needs 2 host ports, got 3");
  expect_fail(M3S_ROLE_SERVER, NULL,
              &(m3s_placement_t){ NULL, AGENT_ID, NULL, SRV_PORTS, 2, "m3s" }, "required");
  expect_fail(M3S_ROLE_SERVER, NULL,
              &(m3s_placement_t){ TASK_ID, "", NULL, SRV_PORTS, 2, "m3s" }, "required");
  expect_fail(M3S_ROLE_SERVER, NULL,
              &(m3s_placement_t){ TASK_ID, AGENT_ID, NULL, (const int[]){ 31000, 31000 }, 2, "m3s" },
              "used twice");
  expect_fail(M3S_ROLE_SERVER, NULL,
              &(m3s_placement_t){ TASK_ID, AGENT_ID, NULL, (const int[]){ 31000, 70000 }, 2, "m3s" },
              "out of range");
  expect_fail(M3S_ROLE_SERVER, NULL,
              &(m3s_placement_t){ TASK_ID, AGENT_ID, NULL, NULL, 2, "m3s" }, "host ports");
  m3s_task_resources_t r = { 2, 1, 100, 100, 10, 10 };
  expect_fail(M3S_ROLE_SERVER, &r, &p, "limit below");
  r = (m3s_task_resources_t){ -1, 1, 100, 100, 10, 10 };
  expect_fail(M3S_ROLE_SERVER, &r, &p, "negative");
  expect_fail(M3S_ROLE_SERVER, NULL, NULL, "placement");

  /* Labels that are valid JSON but not {key,value} items. */
  /* (the loader rejects these, so they are put in by hand; the builder
   * does not rely on the loader's check) */
  char *saved = cfg.k3s_agent_labels;
  char bad1[] = "[{\"value\":\"x\"}]", bad2[] = "{\"key\":\"x\"}", bad3[] = "[{";
  cfg.k3s_agent_labels = bad1;
  p = (m3s_placement_t){ TASK_ID, AGENT_ID, NULL, AG_PORTS, 2, "m3s" };
  expect_fail(M3S_ROLE_AGENT, NULL, &p, "K3S_AGENT_LABELS[0]");
  cfg.k3s_agent_labels = bad3;
  expect_fail(M3S_ROLE_AGENT, NULL, &p, "K3S_AGENT_LABELS is not valid JSON");
  cfg.k3s_agent_labels = saved;
  saved = cfg.k3s_server_labels;
  cfg.k3s_server_labels = bad2;
  p = (m3s_placement_t){ TASK_ID, AGENT_ID, NULL, SRV_PORTS, 2, "m3s" };
  expect_fail(M3S_ROLE_SERVER, NULL, &p, "not a JSON array");
  cfg.k3s_server_labels = saved;

  /* A limit below the request is fine when limits are not enforced. */
  LOAD("ENFORCE_MESOS_TASK_LIMITS", "false");
  r = (m3s_task_resources_t){ 2, 1, 100, 100, 10, 10 };
  json_t *ti = m3s_taskinfo_build(&cfg, &r, M3S_ROLE_SERVER, &p, err, sizeof(err));
  ck_assert_ptr_nonnull(ti);
  ck_assert_ptr_null(json_object_get(ti, "limits"));
  json_decref(ti);
}
END_TEST


/* The spec digest: the same for every launch of a spec, different as soon
 * as anything launched differs. */
START_TEST(test_spec_digest)
{
  char d1[M3S_SPEC_DIGEST_LEN + 1], d2[M3S_SPEC_DIGEST_LEN + 1], d3[M3S_SPEC_DIGEST_LEN + 1];
  LOAD(NULL, NULL);
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++) {
    ck_assert_int_eq(m3s_task_spec_digest(&cfg, NULL, r, d1), 0);
    ck_assert_int_eq(strlen(d1), M3S_SPEC_DIGEST_LEN);
    ck_assert_int_eq(m3s_task_spec_digest(&cfg, NULL, r, d2), 0);
    ck_assert_str_eq(d1, d2);
  }
  ck_assert_int_eq(m3s_task_spec_digest(&cfg, NULL, M3S_ROLE_NONE, d1), -EINVAL);
  ck_assert_str_eq(d1, "");
  /* The roles differ from each other. */
  m3s_task_spec_digest(&cfg, NULL, M3S_ROLE_SERVER, d1);
  m3s_task_spec_digest(&cfg, NULL, M3S_ROLE_AGENT, d2);
  ck_assert_str_ne(d1, d2);
  /* Resources count: res given explicitly equal to cfg's is the same spec. */
  m3s_task_resources_t res;
  m3s_task_resources_from_config(&cfg, M3S_ROLE_AGENT, &res);
  m3s_task_spec_digest(&cfg, &res, M3S_ROLE_AGENT, d3);
  ck_assert_str_eq(d2, d3);
  res.mem += 1;
  m3s_task_spec_digest(&cfg, &res, M3S_ROLE_AGENT, d3);
  ck_assert_str_ne(d2, d3);
  /* Each run-time setting of the agent changes its digest. */
  static const m3s_config_item_t changes[] = {
    { "KUBERNETES_VERSION", "v1.99.0" }, { "IMAGE_K3S", "example/k3s:9" },
    { "K3S_AGENT_STRING", "--debug" }, { "K3S_AGENT_LABELS", "[{\"key\":\"k\",\"value\":\"v\"}]" },
    { "K3S_AGENT_CPU", "7" }, { "K3S_AGENT_MEM_LIMIT", "9000" },
  };
  for(size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
    m3s_config_t c2;
    m3s_config_copy(&c2, &cfg);
    ck_assert_int_eq(m3s_config_set(&c2, &changes[i], 1, err, sizeof(err)), 0);
    ck_assert_int_eq(m3s_task_spec_digest(&c2, NULL, M3S_ROLE_AGENT, d3), 0);
    ck_assert_msg(strcmp(d2, d3) != 0, "%s did not change the digest", changes[i].name);
    /* ... and not the datastore's, which does not use it. */
    m3s_task_spec_digest(&cfg, NULL, M3S_ROLE_DATASTORE, d1);
    m3s_task_spec_digest(&c2, NULL, M3S_ROLE_DATASTORE, d3);
    if(strncmp(changes[i].name, "K3S_AGENT", 9) == 0 || strcmp(changes[i].name, "IMAGE_K3S") == 0 ||
       strcmp(changes[i].name, "KUBERNETES_VERSION") == 0)
      ck_assert_str_eq(d1, d3);
    m3s_config_free(&c2);
  }
  /* IMAGE_ETCD is the datastore's only with etcd. */
  LOAD("DS_ETCD", "true");
  m3s_task_spec_digest(&cfg, NULL, M3S_ROLE_DATASTORE, d1);
  m3s_config_t c3;
  m3s_config_copy(&c3, &cfg);
  ck_assert_int_eq(m3s_config_set(&c3, &(m3s_config_item_t){ "IMAGE_ETCD", "etcd:9" }, 1, err,
                                  sizeof(err)), 0);
  m3s_task_spec_digest(&c3, NULL, M3S_ROLE_DATASTORE, d3);
  ck_assert_str_ne(d1, d3);
  m3s_config_free(&c3);
}
END_TEST

static Suite *taskinfo_suite(void)
{
  Suite *s = suite_create("taskinfo");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, NULL, teardown);
  tcase_add_test(tc, test_task_id);
  tcase_add_test(tc, test_datastore_mysql_defaults);
  tcase_add_test(tc, test_datastore_mysql_options);
  tcase_add_test(tc, test_datastore_etcd);
  tcase_add_test(tc, test_server_defaults);
  tcase_add_test(tc, test_server_options);
  tcase_add_test(tc, test_force_pull_off);
  tcase_add_test(tc, test_memory_swap_never_below_memory);
  tcase_add_test(tc, test_agent_defaults);
  tcase_add_test(tc, test_agent_options);
  tcase_add_test(tc, test_resources_override_and_demand);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_spec_digest);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return m3s_check_run(taskinfo_suite());
}
