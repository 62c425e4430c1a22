/* The TaskInfo builder (see m3s/taskinfo.h; behaviour spec §4). */
#include "m3s/taskinfo.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define BOOTSTRAP_PATH "/mnt/mesos/sandbox/bootstrap"
#define CRI_DOCKERD_ENDPOINT "unix:///var/run/cri-dockerd.sock"
#define NODE_LABEL_KEY "m3s.aventer.biz/taskid"
#define MASTER_TAINT "node-role.kubernetes.io/master=NoSchedule:NoSchedule"
#define K8S_API_PORT 6443
#define SERVER_HTTP_PORT 8080

/* Build state: a JSON constructor that returned NULL (invalid UTF-8 in a
 * configuration string, or out of memory) marks the build failed. */
typedef struct build {
  bool bad;
  const char *bad_at;
} build_t;

static void put(build_t *b, json_t *obj, const char *key, json_t *val)
{
  if(!val || json_object_set_new(obj, key, val) != 0) {
    if(!b->bad)
      b->bad_at = key;
    b->bad = true;
  }
}

static void push(build_t *b, json_t *arr, json_t *val)
{
  if(!val || json_array_append_new(arr, val) != 0) {
    if(!b->bad)
      b->bad_at = "array item";
    b->bad = true;
  }
}

/* New JSON string from a printf format; NULL on invalid UTF-8 or OOM. */
static json_t *jfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *jfmt(const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  json_t *j;

  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if(n < 0)
    return NULL;
  j = json_string(s);
  free(s);
  return j;
}

static json_t *id_obj(const char *value)
{
  json_t *o = json_object();
  if(o && json_object_set_new(o, "value", json_string(value)) != 0) {
    json_decref(o);
    return NULL;
  }
  return o;
}

static void env_add(build_t *b, json_t *vars, const char *name, json_t *value)
{
  json_t *v = json_object();
  if(!v) {
    json_decref(value);
    push(b, vars, NULL);
    return;
  }
  put(b, v, "name", json_string(name));
  put(b, v, "value", value);
  push(b, vars, v);
}

static void env_list(build_t *b, json_t *vars, const m3s_kvlist_t *l)
{
  for(size_t i = 0; i < l->n; i++)
    env_add(b, vars, l->items[i].key, json_string(l->items[i].value));
}

static void param(build_t *b, json_t *params, const char *key, json_t *value)
{
  json_t *p = json_object();
  if(!p) {
    json_decref(value);
    push(b, params, NULL);
    return;
  }
  put(b, p, "key", json_string(key));
  put(b, p, "value", value);
  push(b, params, p);
}

static void port_mapping(build_t *b, json_t *arr, int host, int container)
{
  json_t *m = json_object();
  if(m) {
    put(b, m, "host_port", json_integer(host));
    put(b, m, "container_port", json_integer(container));
    put(b, m, "protocol", json_string("tcp"));
  }
  push(b, arr, m);
}

static void discovery_port(build_t *b, json_t *arr, int number, json_t *name,
                           const char *protocol)
{
  json_t *d = json_object();
  if(d) {
    put(b, d, "number", json_integer(number));
    put(b, d, "name", name);
    put(b, d, "protocol", json_string(protocol));
  } else {
    json_decref(name);
  }
  push(b, arr, d);
}

static json_t *scalar_resource(build_t *b, const char *name, double value,
                               const char *role)
{
  json_t *r = json_object(), *s = json_object();
  if(r) {
    put(b, r, "name", json_string(name));
    put(b, r, "type", json_string("SCALAR"));
    if(s)
      put(b, s, "value", json_real(value));
    put(b, r, "scalar", s);
    s = NULL;
    if(role && *role) {
      json_t *a = json_object();
      if(a)
        put(b, a, "role", json_string(role));
      put(b, r, "allocation_info", a);
    }
  }
  json_decref(s);
  return r;
}

static json_t *docker_volume(build_t *b, const char *container_path,
                             const char *driver, const char *name)
{
  json_t *v = json_object(), *src = json_object(), *dv = json_object();
  if(!v || !src || !dv) {
    json_decref(v);
    json_decref(src);
    json_decref(dv);
    return NULL;
  }
  put(b, dv, "driver", json_string(driver));
  put(b, dv, "name", json_string(name));
  put(b, src, "type", json_string("DOCKER_VOLUME"));
  put(b, src, "docker_volume", dv);
  put(b, v, "container_path", json_string(container_path));
  put(b, v, "mode", json_string("RW"));
  put(b, v, "source", src);
  return v;
}

/* Splits s at spaces into argv tokens (empty tokens dropped). */
static void split_args(build_t *b, json_t *args, const char *s)
{
  while(*s) {
    while(*s == ' ')
      s++;
    size_t n = strcspn(s, " ");
    if(n > 0)
      push(b, args, json_stringn(s, n));
    s += n;
  }
}

/* The raw K3S_*_LABELS JSON ("" = none) as a Labels message, into *out (NULL
 * when there are none). Returns 0 or -EINVAL with err. */
static int parse_labels(const char *raw, const char *var, json_t **out,
                        char *err, size_t errlen)
{
  json_error_t jerr;
  json_t *in = NULL, *labels = NULL, *arr = NULL;
  size_t i;
  json_t *item;
  int rc = -EINVAL;

  *out = NULL;
  if(!raw || !*raw)
    return 0;
  in = json_loads(raw, JSON_REJECT_DUPLICATES, &jerr);
  if(!in) {
    snprintf(err, errlen, "%s is not valid JSON: %s", var, jerr.text);
    goto out;
  }
  if(!json_is_array(in)) {
    snprintf(err, errlen, "%s is not a JSON array", var);
    goto out;
  }
  if(json_array_size(in) == 0) {
    rc = 0;
    goto out;
  }
  arr = json_array();
  labels = json_object();
  if(!arr || !labels) {
    snprintf(err, errlen, "%s: out of memory", var);
    goto out;
  }
  json_array_foreach(in, i, item) {
    json_t *k = json_object_get(item, "key");
    json_t *v = json_object_get(item, "value");
    if(!json_is_object(item) || !json_is_string(k) || (v && !json_is_string(v))) {
      snprintf(err, errlen, "%s[%zu] is not {\"key\": string, \"value\": string}", var, i);
      goto out;
    }
    json_t *l = json_object();
    if(!l || json_array_append_new(arr, l) != 0 ||
       json_object_set(l, "key", k) != 0 ||
       (v && json_object_set(l, "value", v) != 0)) {
      snprintf(err, errlen, "%s: out of memory", var);
      goto out;
    }
  }
  if(json_object_set(labels, "labels", arr) != 0) {
    snprintf(err, errlen, "%s: out of memory", var);
    goto out;
  }
  *out = labels;
  labels = NULL;
  rc = 0;
out:
  json_decref(in);
  json_decref(arr);
  json_decref(labels);
  return rc;
}

void m3s_task_resources_from_config(const m3s_config_t *cfg, m3s_role_t role,
                                    m3s_task_resources_t *out)
{
  memset(out, 0, sizeof(*out));
  switch(role) {
  case M3S_ROLE_DATASTORE:
    *out = (m3s_task_resources_t){ cfg->ds_cpu, cfg->ds_cpu_limit, cfg->ds_mem,
                                   cfg->ds_mem_limit, cfg->ds_disk, cfg->ds_disk_limit };
    break;
  case M3S_ROLE_SERVER:
    *out = (m3s_task_resources_t){ cfg->k3s_server_cpu, cfg->k3s_server_cpu_limit,
                                   cfg->k3s_server_mem, cfg->k3s_server_mem_limit,
                                   cfg->k3s_server_disk, cfg->k3s_server_disk_limit };
    break;
  case M3S_ROLE_AGENT:
    *out = (m3s_task_resources_t){ cfg->k3s_agent_cpu, cfg->k3s_agent_cpu_limit,
                                   cfg->k3s_agent_mem, cfg->k3s_agent_mem_limit,
                                   cfg->k3s_agent_disk, cfg->k3s_agent_disk_limit };
    break;
  default:
    break;
  }
}

void m3s_task_demand(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                     m3s_role_t role, m3s_task_demand_t *out)
{
  m3s_task_resources_t r;

  memset(out, 0, sizeof(*out));
  if(!m3s_role_name(role))
    return;
  if(!res) {
    m3s_task_resources_from_config(cfg, role, &r);
    res = &r;
  }
  out->cpus = res->cpu;
  out->mem = res->mem;
  out->disk = res->disk;
  switch(role) {
  case M3S_ROLE_DATASTORE:
    out->n_ports = 1;
    break;
  case M3S_ROLE_SERVER:
    out->n_ports = 2;
    out->fixed_port = cfg->k3s_server_port;
    break;
  default:
    out->n_ports = cfg->k3s_agent_tcp_port > 0 ? 3 : 2;
    break;
  }
}

static bool bad_amount(double v)
{
  return !isfinite(v) || v < 0;
}

static int check_args(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                      m3s_role_t role, const m3s_placement_t *p,
                      char *err, size_t errlen)
{
  m3s_task_demand_t d;

  if(!cfg || !p) {
    snprintf(err, errlen, "taskinfo: no configuration or placement");
    return -EINVAL;
  }
  if(!m3s_role_name(role)) {
    snprintf(err, errlen, "taskinfo: invalid role %d", (int)role);
    return -EINVAL;
  }
  if(!p->task_id || !*p->task_id || !p->agent_id || !*p->agent_id) {
    snprintf(err, errlen, "taskinfo: task id and agent id are required");
    return -EINVAL;
  }
  m3s_task_demand(cfg, res, role, &d);
  if(p->n_host_ports != d.n_ports || (d.n_ports && !p->host_ports)) {
    snprintf(err, errlen, "taskinfo: %s needs %zu host ports, got %zu",
             m3s_role_name(role), d.n_ports, p->n_host_ports);
    return -EINVAL;
  }
  for(size_t i = 0; i < p->n_host_ports; i++) {
    if(p->host_ports[i] < 1 || p->host_ports[i] > 65535) {
      snprintf(err, errlen, "taskinfo: host port %d out of range", p->host_ports[i]);
      return -EINVAL;
    }
    for(size_t j = 0; j < i; j++)
      if(p->host_ports[j] == p->host_ports[i]) {
        snprintf(err, errlen, "taskinfo: host port %d used twice", p->host_ports[i]);
        return -EINVAL;
      }
  }
  if(bad_amount(res->cpu) || bad_amount(res->mem) || bad_amount(res->disk) ||
     bad_amount(res->cpu_limit) || bad_amount(res->mem_limit) ||
     bad_amount(res->disk_limit)) {
    snprintf(err, errlen, "taskinfo: negative or non-finite resource amount");
    return -EINVAL;
  }
  if(cfg->enforce_mesos_task_limits &&
     (res->cpu_limit < res->cpu || res->mem_limit < res->mem)) {
    snprintf(err, errlen, "taskinfo: %s cpu/mem limit below its request",
             m3s_role_name(role));
    return -EINVAL;
  }
  return 0;
}

/* Docker network: USER with a Docker user network, else BRIDGE; the network
 * name for network_infos ("" = none). */
static bool user_network(const m3s_config_t *cfg)
{
  return !*cfg->mesos_cni && strcmp(cfg->docker_cni, "bridge") != 0;
}

static const char *network_name(const m3s_config_t *cfg)
{
  if(*cfg->mesos_cni)
    return cfg->mesos_cni;
  if(strcmp(cfg->docker_cni, "bridge") != 0)
    return cfg->docker_cni;
  return "";
}

/* Docker memory-swap: (DOCKER_MEMORY_SWAP + mem) / 1024 rounded to whole
 * GiB, as the original, but never below mem, the most Mesos can hand Docker
 * as --memory: Docker refuses a smaller one ("Minimum memoryswap limit should
 * be larger than memory limit"), which the rounding gave with
 * DOCKER_MEMORY_SWAP under 512 (e.g. 0 + 1400 MB -> 1g). */
static json_t *memory_swap(const m3s_config_t *cfg, double mem)
{
  double g = nearbyint((cfg->docker_memory_swap + mem) / 1024.0);

  if(g * 1024.0 < mem)
    g = ceil(mem / 1024.0);
  return jfmt("%.0fg", g);
}

/* Docker parameters of the role, in the original's order (+ NET_ADMIN). */
static json_t *docker_params(build_t *b, const m3s_config_t *cfg,
                             const m3s_task_resources_t *res, m3s_role_t role)
{
  json_t *params = json_array();
  double mem = res->mem_limit > res->mem ? res->mem_limit : res->mem;

  if(!params)
    return NULL;
  param(b, params, "cap-add", json_string("NET_ADMIN"));
  if(role == M3S_ROLE_DATASTORE) {
    param(b, params, "memory-swap", memory_swap(cfg, mem));
    if(user_network(cfg))
      param(b, params, "net-alias", json_string("datastore"));
    if(cfg->restrict_disk_allocation)
      param(b, params, "storage-opt", jfmt("size=%lldmb", (long long)res->disk_limit));
    if(*cfg->custom_docker_runtime)
      param(b, params, "runtime", json_string(cfg->custom_docker_runtime));
    return params;
  }
  const m3s_kvlist_t *custom = role == M3S_ROLE_SERVER
                               ? &cfg->k3s_server_custom_docker_parameter_list
                               : &cfg->k3s_agent_custom_docker_parameter_list;
  param(b, params, "cap-add", json_string("SYS_ADMIN"));
  param(b, params, "shm-size", json_string(cfg->k3s_container_disk));
  param(b, params, "memory-swap", memory_swap(cfg, mem));
  param(b, params, "ulimit", jfmt("nofile=%s", cfg->docker_ulimit));
  for(size_t i = 0; i < custom->n; i++)
    param(b, params, custom->items[i].key, json_string(custom->items[i].value));
  if(cfg->restrict_disk_allocation)
    param(b, params, "storage-opt", jfmt("size=%lldmb", (long long)res->disk_limit));
  if(*cfg->custom_docker_runtime)
    param(b, params, "runtime", json_string(cfg->custom_docker_runtime));
  if(user_network(cfg))
    param(b, params, "net-alias", jfmt("%s%s", cfg->fw, m3s_role_name(role)));
  if(cfg->cgroup_v2)
    param(b, params, "cgroupns", json_string("private"));
  return params;
}

/* The datastore's environment (also its etcd health check's). */
static json_t *datastore_env(build_t *b, const m3s_config_t *cfg, const char *task_id)
{
  json_t *vars = json_array();
  if(!vars)
    return NULL;
  env_add(b, vars, "SERVICE_NAME", jfmt("%s:datastore", cfg->fw));
  if(cfg->ds_etcd) {
    env_add(b, vars, "ALLOW_NONE_AUTHENTICATION", json_string("yes"));
    env_add(b, vars, "ETCD_ADVERTISE_CLIENT_URLS",
            jfmt("http://%sdatastore%s:%d", cfg->fw, cfg->domain, cfg->ds_port));
    env_add(b, vars, "MESOS_TASK_ID", json_string(task_id));
    env_add(b, vars, "TZ", json_string(cfg->tz));
  } else {
    env_add(b, vars, "MYSQL_ROOT_PASSWORD", json_string(cfg->ds_mysql_password));
    env_add(b, vars, "MYSQL_DATABASE", json_string("k3s"));
    env_add(b, vars, "TZ", json_string(cfg->tz));
    env_add(b, vars, "MESOS_TASK_ID", json_string(task_id));
  }
  return vars;
}

static json_t *server_env(build_t *b, const m3s_config_t *cfg, const char *task_id)
{
  json_t *vars = json_array();
  if(!vars)
    return NULL;
  env_add(b, vars, "SERVICE_NAME", jfmt("%s:server", cfg->fw));
  env_add(b, vars, "KUBERNETES_VERSION", json_string(cfg->kubernetes_version));
  env_add(b, vars, "K3SFRAMEWORK_TYPE", json_string("server"));
  env_add(b, vars, "K3S_URL", jfmt("https://%sserver%s:%d", cfg->fw, cfg->domain, K8S_API_PORT));
  env_add(b, vars, "K3S_TOKEN", json_string(cfg->k3s_token));
  env_add(b, vars, "K3S_KUBECONFIG_MODE", json_string("666"));
  env_add(b, vars, "KUBECONFIG", json_string(cfg->kubeconfig));
  env_add(b, vars, "M3S_CONTROLLER__REDIS_SERVER", json_string(cfg->redis_server));
  env_add(b, vars, "M3S_CONTROLLER__REDIS_PASSWORD", json_string(cfg->redis_password));
  env_add(b, vars, "M3S_CONTROLLER__REDIS_DB", jfmt("%d", cfg->redis_db));
  if(cfg->redis_sentinels && cfg->redis_sentinels[0]) {
    env_add(b, vars, "M3S_CONTROLLER__REDIS_SENTINELS", json_string(cfg->redis_sentinels));
    env_add(b, vars, "M3S_CONTROLLER__REDIS_MASTER_NAME", json_string(cfg->redis_master_name));
    env_add(b, vars, "M3S_CONTROLLER__REDIS_SENTINEL_PASSWORD",
            json_string(cfg->redis_sentinel_password));
  }
  env_add(b, vars, "M3S_CONTROLLER__REDIS_PREFIX", json_string(cfg->fw));
  env_add(b, vars, "M3S_CONTROLLER__LOGLEVEL", json_string(cfg->loglevel));
  env_add(b, vars, "M3S_CONTROLLER__ENABLE_TAINT",
          json_string(cfg->k3s_enable_taint ? "true" : "false"));
  env_add(b, vars, "MESOS_SANDBOX_VAR", json_string(""));
  env_add(b, vars, "TZ", json_string(cfg->tz));
  env_add(b, vars, "MESOS_TASK_ID", json_string(task_id));
  env_list(b, vars, &cfg->k3s_node_env_list);
  env_list(b, vars, &cfg->k3s_server_node_env_list);
  if(cfg->ds_etcd) {
    env_add(b, vars, "K3S_DATASTORE_ENDPOINT",
            jfmt("http://%sdatastore%s:%d", cfg->fw, cfg->domain, cfg->ds_port));
  } else {
    env_add(b, vars, "K3S_DATASTORE_ENDPOINT",
            jfmt("mysql://%s:%s@tcp(%sdatastore%s:%d)/k3s", cfg->ds_mysql_username,
                 cfg->ds_mysql_password, cfg->fw, cfg->domain, cfg->ds_port));
    if(cfg->ds_mysql_ssl) {
      env_add(b, vars, "K3S_DATASTORE_CAFILE", json_string("/var/lib/rancher/k3s/ca.pem"));
      env_add(b, vars, "K3S_DATASTORE_CERTFILE",
              json_string("/var/lib/rancher/k3s/client-cert.pem"));
      env_add(b, vars, "K3S_DATASTORE_KEYFILE",
              json_string("/var/lib/rancher/k3s/client-key.pem"));
    }
  }
  return vars;
}

static json_t *agent_env(build_t *b, const m3s_config_t *cfg, const char *task_id)
{
  json_t *vars = json_array();
  if(!vars)
    return NULL;
  env_add(b, vars, "SERVICE_NAME", jfmt("%s:agent", cfg->fw));
  env_add(b, vars, "KUBERNETES_VERSION", json_string(cfg->kubernetes_version));
  env_add(b, vars, "K3SFRAMEWORK_TYPE", json_string("agent"));
  env_add(b, vars, "K3S_TOKEN", json_string(cfg->k3s_token));
  env_add(b, vars, "K3S_URL", jfmt("https://%sserver%s:%d", cfg->fw, cfg->domain, K8S_API_PORT));
  env_add(b, vars, "MESOS_SANDBOX_VAR", json_string(""));
  env_add(b, vars, "TZ", json_string(cfg->tz));
  env_add(b, vars, "MESOS_TASK_ID", json_string(task_id));
  env_list(b, vars, &cfg->k3s_node_env_list);
  env_list(b, vars, &cfg->k3s_agent_node_env_list);
  return vars;
}

static json_t *environment(build_t *b, json_t *vars)
{
  json_t *e = json_object();
  if(e)
    put(b, e, "variables", vars);
  else
    json_decref(vars);
  return e;
}

/* CommandInfo of a server or agent. */
static json_t *k3s_command(build_t *b, const m3s_config_t *cfg, m3s_role_t role,
                           const m3s_placement_t *p)
{
  json_t *cmd = json_object(), *args = json_array(), *uris = json_array(),
         *uri = json_object();

  if(!cmd || !args || !uris || !uri) {
    json_decref(cmd);
    json_decref(args);
    json_decref(uris);
    json_decref(uri);
    return NULL;
  }
  put(b, cmd, "shell", json_false());
  put(b, cmd, "value", json_string(BOOTSTRAP_PATH));
  if(role == M3S_ROLE_SERVER) {
    split_args(b, args, cfg->k3s_server_string);
    if(cfg->k3s_docker) {
      push(b, args, json_string("--container-runtime-endpoint"));
      push(b, args, json_string(CRI_DOCKERD_ENDPOINT));
    }
    push(b, args, jfmt("--tls-san=%sserver", cfg->fw));
    push(b, args, json_string("--node-label"));
    push(b, args, jfmt(NODE_LABEL_KEY "=%s", p->task_id));
    if(cfg->k3s_enable_taint) {
      push(b, args, json_string("--node-taint"));
      push(b, args, json_string(MASTER_TAINT));
    }
    if(cfg->enable_registry_mirror)
      push(b, args, json_string("--embedded-registry"));
    if(p->agent_hostname && *p->agent_hostname)
      push(b, args, jfmt("--tls-san=%s", p->agent_hostname));
  } else {
    split_args(b, args, cfg->k3s_agent_string);
    if(cfg->k3s_docker) {
      push(b, args, json_string("--container-runtime-endpoint"));
      push(b, args, json_string(CRI_DOCKERD_ENDPOINT));
    }
    push(b, args, json_string("--with-node-id"));
    push(b, args, json_string("--kubelet-arg"));
    push(b, args, jfmt("node-labels=" NODE_LABEL_KEY "=%s", p->task_id));
  }
  put(b, cmd, "arguments", args);
  put(b, uri, "value", json_string(cfg->bootstrap_url));
  put(b, uri, "extract", json_false());
  put(b, uri, "executable", json_true());
  put(b, uri, "cache", json_false());
  put(b, uri, "output_file", json_string("bootstrap"));
  push(b, uris, uri);
  put(b, cmd, "uris", uris);
  put(b, cmd, "environment",
      environment(b, role == M3S_ROLE_SERVER ? server_env(b, cfg, p->task_id)
                                             : agent_env(b, cfg, p->task_id)));
  return cmd;
}

static json_t *datastore_command(build_t *b, const m3s_config_t *cfg, const char *task_id)
{
  json_t *cmd = json_object();
  if(!cmd)
    return NULL;
  if(cfg->ds_etcd) {
    put(b, cmd, "shell", json_true());
    put(b, cmd, "value",
        jfmt("/usr/local/bin/etcd --listen-client-urls http://0.0.0.0:%d "
             "--election-timeout '50000' --heartbeat-interval '5000'", cfg->ds_port));
  } else {
    /* No value: the image's entrypoint runs mysqld with the arguments. */
    put(b, cmd, "shell", json_false());
    if(cfg->ds_mysql_ssl) {
      json_t *args = json_array();
      if(args) {
        push(b, args, json_string("--ssl-ca=/var/lib/mysql/ca.pem"));
        push(b, args, json_string("--ssl-cert=/var/lib/mysql/server-cert.pem"));
        push(b, args, json_string("--ssl-key=/var/lib/mysql/server-key.pem"));
      }
      put(b, cmd, "arguments", args);
    }
  }
  put(b, cmd, "environment", environment(b, datastore_env(b, cfg, task_id)));
  return cmd;
}

static json_t *datastore_health(build_t *b, const m3s_config_t *cfg, const char *task_id)
{
  json_t *hc = json_object(), *cmd = json_object();
  if(!hc || !cmd) {
    json_decref(hc);
    json_decref(cmd);
    return NULL;
  }
  put(b, hc, "type", json_string("COMMAND"));
  if(cfg->ds_etcd) {
    put(b, hc, "delay_seconds", json_real(60.0));
    put(b, cmd, "shell", json_true());
    put(b, cmd, "value",
        jfmt("etcdctl endpoint health --endpoints=http://127.0.0.1:%d", cfg->ds_port));
    put(b, cmd, "environment", environment(b, datastore_env(b, cfg, task_id)));
  } else {
    json_t *args = json_array();
    put(b, cmd, "shell", json_false());
    put(b, cmd, "value", json_string("mysqladmin"));
    if(args) {
      push(b, args, json_string("ping"));
      push(b, args, json_string("-h"));
      push(b, args, json_string("localhost"));
    }
    put(b, cmd, "arguments", args);
  }
  put(b, hc, "command", cmd);
  return hc;
}

/* Whether the K3s API of the server answers: /readyz through the admin
 * kubeconfig K3s writes in the container (an anonymous request may be
 * refused). K3s needs a minute or more to start: failures in the grace
 * period do not count, later ones kill the task after six in a row. */
static json_t *server_health(build_t *b)
{
  json_t *hc = json_object(), *cmd = json_object();
  if(!hc || !cmd) {
    json_decref(hc);
    json_decref(cmd);
    return NULL;
  }
  put(b, hc, "type", json_string("COMMAND"));
  put(b, hc, "delay_seconds", json_real(15.0));
  put(b, hc, "interval_seconds", json_real(10.0));
  put(b, hc, "timeout_seconds", json_real(20.0));
  put(b, hc, "grace_period_seconds", json_real(600.0));
  put(b, hc, "consecutive_failures", json_integer(6));
  put(b, cmd, "shell", json_true());
  put(b, cmd, "value",
      json_string("k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /readyz"));
  put(b, hc, "command", cmd);
  return hc;
}

json_t *m3s_taskinfo_build(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                           m3s_role_t role, const m3s_placement_t *p,
                           char *err, size_t errlen)
{
  build_t b = { false, NULL };
  m3s_task_resources_t r;
  json_t *ti = NULL, *labels = NULL, *container = NULL, *docker = NULL,
         *mappings = NULL, *dports = NULL, *resources = NULL, *ranges = NULL;
  const char *rname = m3s_role_name(role);

  if(cfg && !res && rname) {
    m3s_task_resources_from_config(cfg, role, &r);
    res = &r;
  }
  if(check_args(cfg, res, role, p, err, errlen) != 0)
    return NULL;
  if(role == M3S_ROLE_SERVER &&
     parse_labels(cfg->k3s_server_labels, "K3S_SERVER_LABELS", &labels, err, errlen) != 0)
    return NULL;
  if(role == M3S_ROLE_AGENT &&
     parse_labels(cfg->k3s_agent_labels, "K3S_AGENT_LABELS", &labels, err, errlen) != 0)
    return NULL;

  ti = json_object();
  container = json_object();
  docker = json_object();
  mappings = json_array();
  dports = json_array();
  resources = json_array();
  ranges = json_array();
  if(!ti || !container || !docker || !mappings || !dports || !resources || !ranges) {
    b.bad = true;
    b.bad_at = "allocation";
    goto out;
  }

  put(&b, ti, "name", jfmt("%s:%s", cfg->fw, rname));
  put(&b, ti, "task_id", id_obj(p->task_id));
  put(&b, ti, "agent_id", id_obj(p->agent_id));

  /* Port mappings and discovery ports, by role. */
  const int *hp = p->host_ports;
  if(role == M3S_ROLE_DATASTORE) {
    port_mapping(&b, mappings, hp[0], cfg->ds_port);
    discovery_port(&b, dports, hp[0], json_string("datastore"), "tcp");
  } else if(role == M3S_ROLE_SERVER) {
    port_mapping(&b, mappings, hp[0], K8S_API_PORT);
    port_mapping(&b, mappings, hp[1], SERVER_HTTP_PORT);
    discovery_port(&b, dports, hp[0], json_string("kubernetes"), "tcp");
    discovery_port(&b, dports, hp[1], json_string("http"), "tcp");
  } else {
    char *lfw = strdup(cfg->fw);
    if(!lfw) {
      b.bad = true;
      b.bad_at = "allocation";
      goto out;
    }
    for(char *c = lfw; *c; c++)
      if(*c >= 'A' && *c <= 'Z')
        *c = (char)(*c - 'A' + 'a');
    port_mapping(&b, mappings, hp[0], 80);
    port_mapping(&b, mappings, hp[1], 443);
    discovery_port(&b, dports, hp[0], jfmt("%s-http", lfw), "http");
    discovery_port(&b, dports, hp[1], jfmt("%s-https", lfw), "https");
    if(cfg->k3s_agent_tcp_port > 0) {
      port_mapping(&b, mappings, hp[2], cfg->k3s_agent_tcp_port);
      discovery_port(&b, dports, hp[2], jfmt("%s-tcp", lfw), "tcp");
    }
    free(lfw);
  }

  /* Resources. */
  push(&b, resources, scalar_resource(&b, "cpus", res->cpu, p->role));
  push(&b, resources, scalar_resource(&b, "mem", res->mem, p->role));
  push(&b, resources, scalar_resource(&b, "disk", res->disk, p->role));
  for(size_t i = 0; i < p->n_host_ports; i++) {
    json_t *rg = json_object();
    if(rg) {
      put(&b, rg, "begin", json_integer(hp[i]));
      put(&b, rg, "end", json_integer(hp[i]));
    }
    push(&b, ranges, rg);
  }
  {
    json_t *pr = json_object(), *rs = json_object();
    if(pr && rs) {
      put(&b, pr, "name", json_string("ports"));
      put(&b, pr, "type", json_string("RANGES"));
      put(&b, rs, "range", ranges);
      ranges = NULL;
      put(&b, pr, "ranges", rs);
      rs = NULL;
      if(p->role && *p->role) {
        json_t *a = json_object();
        if(a)
          put(&b, a, "role", json_string(p->role));
        put(&b, pr, "allocation_info", a);
      }
    }
    json_decref(rs);
    push(&b, resources, pr);
  }
  put(&b, ti, "resources", resources);
  resources = NULL;

  if(cfg->enforce_mesos_task_limits) {
    json_t *lim = json_object(), *c = json_object(), *m = json_object();
    if(c)
      put(&b, c, "value", json_real(res->cpu_limit));
    if(m)
      put(&b, m, "value", json_real(res->mem_limit));
    if(lim) {
      put(&b, lim, "cpus", c);
      put(&b, lim, "mem", m);
    } else {
      json_decref(c);
      json_decref(m);
    }
    put(&b, ti, "limits", lim);
  }

  /* Command. */
  if(role == M3S_ROLE_DATASTORE)
    put(&b, ti, "command", datastore_command(&b, cfg, p->task_id));
  else
    put(&b, ti, "command", k3s_command(&b, cfg, role, p));

  /* Container. */
  put(&b, container, "type", json_string("DOCKER"));
  put(&b, container, "hostname", jfmt("%s%s%s", cfg->fw, rname, cfg->domain));
  if(role == M3S_ROLE_DATASTORE)
    put(&b, docker, "image", json_string(cfg->ds_etcd ? cfg->image_etcd : cfg->image_mysql));
  else
    put(&b, docker, "image", json_string(cfg->image_k3s));
  put(&b, docker, "network", json_string(user_network(cfg) ? "USER" : "BRIDGE"));
  put(&b, docker, "privileged", json_boolean(role != M3S_ROLE_DATASTORE));
  put(&b, docker, "force_pull_image", json_boolean(cfg->docker_force_pull));
  put(&b, docker, "port_mappings", mappings);
  mappings = NULL;
  put(&b, docker, "parameters", docker_params(&b, cfg, res, role));
  put(&b, container, "docker", docker);
  docker = NULL;
  if(*network_name(cfg)) {
    json_t *nis = json_array(), *ni = json_object();
    if(ni)
      put(&b, ni, "name", json_string(network_name(cfg)));
    if(nis)
      push(&b, nis, ni);
    else
      json_decref(ni);
    put(&b, container, "network_infos", nis);
  }
  if(role != M3S_ROLE_AGENT) {
    json_t *vols = json_array();
    if(vols) {
      if(role == M3S_ROLE_SERVER)
        push(&b, vols, docker_volume(&b, "/var/lib/rancher/k3s", cfg->volume_driver,
                                     cfg->volume_k3s_server));
      else
        push(&b, vols, docker_volume(&b, cfg->ds_etcd ? "/default.etcd" : "/var/lib/mysql",
                                     cfg->volume_driver, cfg->volume_ds));
    }
    put(&b, container, "volumes", vols);
  }
  put(&b, ti, "container", container);
  container = NULL;

  if(role == M3S_ROLE_DATASTORE)
    put(&b, ti, "health_check", datastore_health(&b, cfg, p->task_id));
  else if(role == M3S_ROLE_SERVER)
    put(&b, ti, "health_check", server_health(&b));

  if(labels) {
    put(&b, ti, "labels", labels);
    labels = NULL;
  }

  {
    json_t *disc = json_object(), *ports = json_object();
    if(disc && ports) {
      put(&b, disc, "visibility", json_string("EXTERNAL"));
      put(&b, disc, "name", jfmt("%s:%s", cfg->fw, rname));
      put(&b, ports, "ports", dports);
      dports = NULL;
      put(&b, disc, "ports", ports);
      ports = NULL;
    }
    json_decref(ports);
    put(&b, ti, "discovery", disc);
  }

out:
  json_decref(labels);
  json_decref(container);
  json_decref(docker);
  json_decref(mappings);
  json_decref(dports);
  json_decref(resources);
  json_decref(ranges);
  if(b.bad) {
    snprintf(err, errlen, "taskinfo: cannot build %s (at %s): a configuration string "
             "is not valid UTF-8, or out of memory", rname, b.bad_at ? b.bad_at : "?");
    json_decref(ti);
    return NULL;
  }
  return ti;
}

static bool read_urandom(unsigned char *buf, size_t len)
{
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  size_t got = 0;

  if(fd == -1)
    return false;
  while(got < len) {
    ssize_t n = read(fd, buf + got, len - got);
    if(n == -1 && errno == EINTR)
      continue;
    if(n <= 0)
      break;
    got += (size_t)n;
  }
  close(fd);
  return got == len;
}

void m3s_task_id_new(char out[37])
{
  unsigned char r[16];
  size_t got = 0;

  while(got < sizeof(r)) {
    ssize_t n = getrandom(r + got, sizeof(r) - got, 0);
    if(n == -1 && errno == EINTR)
      continue;
    if(n <= 0)
      break;
    got += (size_t)n;
  }
  if(got < sizeof(r) && !read_urandom(r, sizeof(r))) {
    fprintf(stderr, "m3s: no random bytes for a task id\n");
    abort();
  }
  snprintf(out, 37,
           "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
           r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
           r[12], r[13], r[14], r[15]);
}
