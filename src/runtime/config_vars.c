/* The table of configuration variables; see include/m3s/config.h and the
 * DESIGN block of config.c, which drives loading, --help and printing from it.
 */
#include <limits.h>

#include "config-int.h"

#define UNUSED_NOTE " Accepted for compatibility; unused by the original and by m3s."
#define NO_PLUGINS " Accepted for compatibility; m3s has no Go plugins, so it has no effect."
#define KV_HELP " Items are KEY=VALUE, split at the first '='; empty items are skipped."

const struct var m3s_config_vars[] = {
  /* Framework */
  { .name = "FRAMEWORK_USER", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_user), .def = "root",
    .help = "User the tasks run as (FrameworkInfo.user)." },
  { .name = "FRAMEWORK_NAME", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_name), .aux = AUX_STR, .aux_off = O_STR(fw),
    .check = m3s_config_check_fwname,
    .help = "Suffix of the framework name: the effective name is \"m3s\" followed "
            "by this value (FRAMEWORK_NAME=m3s gives m3sm3s). The effective name is "
            "the Mesos framework name and the prefix of Redis keys, task names and "
            "container hostnames, so changing it orphans existing state." },
  { .name = "FRAMEWORK_ROLE", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_role), .def = "m3s",
    .help = "Mesos role the framework subscribes with." },
  { .name = "FRAMEWORK_PORT", .type = T_PORT, .group = G_FRAMEWORK,
    .off = O_INT(framework_port), .def = "10000",
    .help = "Port of the REST API on all interfaces; also part of the web UI URL "
            "announced to Mesos, which mesos-cli uses to find the API." },
  { .name = "FRAMEWORK_BIND", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_bind),
    .help = "IPv4 address the REST API listens on, e.g. 127.0.0.1; empty = "
            "every interface, as the original (new)." },
  { .name = "FRAMEWORK_HOSTNAME", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_hostname), .def_fn = m3s_config_default_hostname,
    .def_text = "the host's FQDN",
    .help = "Hostname announced to Mesos and used in the web UI URL; compared "
            "with agent hostnames when DOCKER_RUNNING is true." },
  { .name = "FRAMEWORK_STATEFILE_PATH", .type = T_STRING, .group = G_FRAMEWORK,
    .flags = F_UNUSED, .off = O_STR(framework_statefile_path), .def = "/tmp",
    .help = "Directory of a legacy state file." UNUSED_NOTE },
  { .name = "LOGLEVEL", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(loglevel), .def = "DEBUG", .check = m3s_config_check_loglevel,
    .help = "debug, info, warn or error, in any case (trace, warning, fatal and "
            "panic are accepted as aliases). Also handed to the controller in the "
            "server container." },
  { .name = "M3S_PLUGINS", .type = T_BOOL, .group = G_FRAMEWORK,
    .off = O_BOOL(m3s_plugins), .def = "false",
    .help = "Go plugin loading in the original." NO_PLUGINS },
  { .name = "KAFKA_PLUGIN_TOPIC", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(kafka_plugin_topic), .def = "m3s_log",
    .help = "Topic prefix of the original's Kafka plugin." NO_PLUGINS },
  { .name = "DOCKER_RUNNING", .type = T_BOOL, .group = G_FRAMEWORK,
    .flags = F_RAW, .off = O_BOOL(docker_running), .def = "false",
    .help = "true when m3s itself runs in a container (the image sets it); then "
            "a server on the same host is reached by its container hostname." },
  { .name = "TZ", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(tz), .def = "Etc/UTC",
    .help = "Time zone handed to every task as TZ." },

  /* Mesos */
  { .name = "MESOS_MASTER", .type = T_HOSTPORT, .group = G_MESOS,
    .off = O_STR(mesos_master), .aux = AUX_STR, .aux_off = O_STR(mesos_master_host),
    .aux2_off = O_INT(mesos_master_port), .def = "127.0.0.1:5050",
    .help = "Mesos master as host:port without scheme, e.g. leader.mesos:5050." },
  { .name = "MESOS_USERNAME", .type = T_STRING, .group = G_MESOS,
    .off = O_STR(mesos_username),
    .help = "Basic-auth user for every request to the master." },
  { .name = "MESOS_PASSWORD", .type = T_STRING, .group = G_MESOS,
    .flags = F_SECRET, .off = O_STR(mesos_password),
    .help = "Basic-auth password for every request to the master." },
  { .name = "MESOS_PRINCIPAL", .type = T_STRING, .group = G_MESOS,
    .off = O_STR(mesos_principal),
    .help = "FrameworkInfo.principal." },
  { .name = "MESOS_SSL", .type = T_BOOL, .group = G_MESOS,
    .flags = F_RAW, .off = O_BOOL(mesos_ssl), .def = "false",
    .help = "Talk to the master over https." },
  { .name = "SKIP_SSL", .type = T_BOOL, .group = G_MESOS,
    .off = O_BOOL(skip_ssl), .def = "true",
    .help = "Do not verify the master's certificate (with MESOS_SSL). Applies "
            "to every connection to the master; the original verified none but "
            "the subscription's." },
  { .name = "MESOS_FAILOVER_TIMEOUT", .type = T_DURATION, .group = G_MESOS,
    .flags = F_POSITIVE, .off = O_MS(mesos_failover_timeout_ms), .def = "5000s",
    .help = "FrameworkInfo.failover_timeout: how long Mesos keeps the framework "
            "and its tasks while m3s is away (new; the original fixed 5000s)." },
  { .name = "MESOS_BACKOFF_MIN", .type = T_DURATION, .group = G_MESOS,
    .flags = F_POSITIVE, .off = O_MS(mesos_backoff_min_ms), .def = "500ms",
    .help = "First delay before re-subscribing after the connection to the "
            "master is lost; it doubles on each failure, with jitter (new)." },
  { .name = "MESOS_BACKOFF_MAX", .type = T_DURATION, .group = G_MESOS,
    .flags = F_POSITIVE, .off = O_MS(mesos_backoff_max_ms), .def = "15s",
    .help = "Longest delay between re-subscription attempts (new)." },
  { .name = "MESOS_CALL_TIMEOUT", .type = T_DURATION, .group = G_MESOS,
    .flags = F_POSITIVE, .off = O_MS(mesos_call_timeout_ms), .def = "30s",
    .help = "Time limit of one call to the master (ACCEPT, KILL, ...); the "
            "original had none (new)." },
  { .name = "MESOS_MAX_EVENT_SIZE", .type = T_INT, .group = G_MESOS,
    .off = O_INT(mesos_max_event_size), .def = "16777216", .min = 65536,
    .max = 1073741824,
    .help = "Largest event from the master, in bytes; a larger length drops the "
            "stream and re-subscribes (new)." },
  { .name = "MESOS_CNI", .type = T_STRING, .group = G_MESOS,
    .flags = F_RAW, .off = O_STR(mesos_cni),
    .help = "CNI network of every task; when set, Docker stays in bridge mode "
            "and no net-alias is added." },
  { .name = "DOCKER_CNI", .type = T_STRING, .group = G_MESOS,
    .off = O_STR(docker_cni), .def = "bridge",
    .help = "Docker network of the tasks when MESOS_CNI is empty; a value other "
            "than bridge selects that user network and adds net-alias parameters." },
  { .name = "DOMAIN", .type = T_STRING, .group = G_MESOS,
    .off = O_STR(domain), .def = ".local", .check = m3s_config_check_domain,
    .help = "Domain suffix of container hostnames; a leading '.' is added when "
            "missing." },
  { .name = "PORTRANGE_FROM", .type = T_PORT, .group = G_MESOS,
    .off = O_INT(portrange_from), .def = "31000",
    .help = "Host ports of tasks are taken from PORTRANGE_FROM+1 to "
            "PORTRANGE_TO-1. Also the default of K3S_SERVER_PORT." },
  { .name = "PORTRANGE_TO", .type = T_PORT, .group = G_MESOS,
    .off = O_INT(portrange_to), .def = "32000",
    .help = "End of the host port range; must be greater than PORTRANGE_FROM." },

  /* Timers */
  { .name = "HEARTBEAT_INTERVAL", .type = T_DURATION, .group = G_TIMERS,
    .flags = F_POSITIVE, .off = O_MS(heartbeat_interval_ms), .def = "15s",
    .help = "Period of the heartbeat that creates missing tasks, of the "
            "Kubernetes node sync and of restart polling." },
  { .name = "RECONCILE_WAIT", .type = T_DURATION, .group = G_TIMERS,
    .flags = F_POSITIVE, .off = O_MS(reconcile_wait_ms), .def = "10m",
    .help = "Period of the task reconciliation with the master." },
  { .name = "CLEANUP_WAIT", .type = T_DURATION, .group = G_TIMERS,
    .off = O_MS(cleanup_wait_ms), .def = "5m",
    .help = "A server or agent task is never killed for its node (see "
            "K3S_NODE_TIMEOUT) before it has run this long; binds only when "
            "longer than K3S_NODE_TIMEOUT. The original counted from the "
            "task's creation." },
  { .name = "K3S_NODE_TIMEOUT", .type = T_DURATION, .group = G_TIMERS,
    .off = O_MS(k3s_node_timeout_ms), .def = "10m",
    .help = "A running server or agent task whose Kubernetes node has been "
            "NotReady or missing this long, without a break and while the "
            "K3s API is reachable, is killed and replaced (a new id, after "
            "the restart backoff). The clock starts when the node was last "
            "seen Ready, else when the task turned RUNNING, and restarts when "
            "the K3s API comes back. 0: never. The original counted from the "
            "task's creation." },
  { .name = "REVIVE_WAIT", .type = T_DURATION, .group = G_TIMERS,
    .flags = F_UNUSED, .off = O_MS(revive_wait_ms), .def = "1m",
    .help = "Revive period." UNUSED_NOTE },
  { .name = "REFUSE_OFFERS", .type = T_FLOAT, .group = G_TIMERS,
    .off = O_DBL(refuse_offers), .def = "60.0", .fmin = 0,
    .help = "Seconds Mesos withholds a declined offer's resources from m3s "
            "(filters.refuse_seconds of DECLINE). The original ignored it and "
            "always refused for 120 s." },
  { .name = "RESTART_BACKOFF_MIN", .type = T_DURATION, .group = G_TIMERS,
    .flags = F_POSITIVE, .off = O_MS(restart_backoff_min_ms), .def = "1s",
    .help = "Delay before replacing a failed task of a role; it doubles with "
            "each failure in a row, so a crash-looping container does not "
            "hammer the cluster. A task that ran for ten times this long "
            "resets it (new)." },
  { .name = "RESTART_BACKOFF_MAX", .type = T_DURATION, .group = G_TIMERS,
    .flags = F_POSITIVE, .off = O_MS(restart_backoff_max_ms), .def = "5m",
    .help = "Longest delay before replacing a failed task (new)." },
  { .name = "ROLLOUT_DRAIN_TIMEOUT", .type = T_DURATION, .group = G_TIMERS,
    .off = O_MS(rollout_drain_timeout_ms), .def = "10m",
    .help = "How long a rollout waits for an agent's node to be drained before "
            "its step fails (unless the rollout was asked with force, which "
            "replaces the agent anyway) (new)." },
  { .name = "ROLLOUT_MAX_UNAVAILABLE", .type = T_INT, .group = G_TIMERS,
    .off = O_INT(rollout_max_unavailable), .def = "1", .min = 1, .max = 10000,
    .help = "During a rollout, at most this many K3s agents may be unavailable "
            "(node cordoned, NotReady or missing, or task not running) at once; "
            "a step waits until it would not exceed it (new)." },
  { .name = "ROLLOUT_MAX_SURGE", .type = T_INT, .group = G_TIMERS,
    .off = O_INT(rollout_max_surge), .def = "0", .min = 0, .max = 1,
    .help = "1: a rollout launches an agent's replacement before draining the "
            "old one (one agent more than the count meanwhile, when the offers "
            "allow); 0: the old agent is drained and killed first (new)." },

  /* REST API and TLS */
  { .name = "AUTH_USERNAME", .type = T_STRING, .group = G_API,
    .off = O_STR(auth_username),
    .help = "Basic-auth user of the REST API; authentication is on only when "
            "AUTH_USERNAME and AUTH_PASSWORD are both set." },
  { .name = "AUTH_PASSWORD", .type = T_STRING, .group = G_API,
    .flags = F_SECRET, .off = O_STR(auth_password),
    .help = "Basic-auth password of the REST API." },
  { .name = "SSL_CRT_BASE64", .type = T_STRING, .group = G_API,
    .flags = F_ABBREV, .off = O_STR(ssl_crt_base64), .aux = AUX_PEM,
    .aux_off = O_STR(ssl_crt_pem), .aux2_off = O_SIZE(ssl_crt_pem_len),
    .check = m3s_config_check_base64_pem,
    .help = "PEM certificate of the REST API, base64-encoded (standard or "
            "URL-safe alphabet, padding optional). Set together with "
            "SSL_KEY_BASE64 to serve HTTPS." },
  { .name = "SSL_KEY_BASE64", .type = T_STRING, .group = G_API,
    .flags = F_SECRET, .off = O_STR(ssl_key_base64), .aux = AUX_PEM,
    .aux_off = O_STR(ssl_key_pem), .aux2_off = O_SIZE(ssl_key_pem_len),
    .check = m3s_config_check_base64_pem,
    .help = "Unencrypted PEM private key of SSL_CRT_BASE64, base64-encoded "
            "the same way." },

  /* Redis */
  { .name = "REDIS_SERVER", .type = T_HOSTPORT, .group = G_REDIS,
    .off = O_STR(redis_server), .aux = AUX_STR, .aux_off = O_STR(redis_host),
    .aux2_off = O_INT(redis_port), .def = "127.0.0.1:6379",
    .help = "Redis as host:port. Also handed to the server containers, so it "
            "must be reachable from them." },
  { .name = "REDIS_PASSWORD", .type = T_STRING, .group = G_REDIS,
    .flags = F_SECRET, .off = O_STR(redis_password),
    .help = "Redis AUTH password." },
  { .name = "REDIS_DB", .type = T_INT, .group = G_REDIS,
    .off = O_INT(redis_db), .def = "1", .min = 0, .max = INT_MAX,
    .help = "Redis database number." },
  { .name = "REDIS_SENTINELS", .type = T_STRING, .group = G_REDIS,
    .off = O_STR(redis_sentinels),
    .help = "Redis Sentinel as a comma-separated host:port list (new). When "
            "set it replaces REDIS_SERVER: the master of REDIS_MASTER_NAME is "
            "asked of the sentinels and followed through failovers. Also "
            "handed to the server containers." },
  { .name = "REDIS_MASTER_NAME", .type = T_STRING, .group = G_REDIS,
    .off = O_STR(redis_master_name), .def = "m3s",
    .help = "Name of the master the sentinels watch (new)." },
  { .name = "REDIS_SENTINEL_PASSWORD", .type = T_STRING, .group = G_REDIS,
    .flags = F_SECRET, .off = O_STR(redis_sentinel_password),
    .help = "AUTH password of the sentinels, if they have one (new)." },
  { .name = "REDIS_WAIT_REPLICAS", .type = T_INT, .group = G_REDIS,
    .off = O_INT(redis_wait_replicas), .def = "0", .min = 0, .max = 100,
    .help = "A write counts as stored only once this many replicas have it "
            "(Redis WAIT); until then it is written again and whatever "
            "depends on it waits (new)." },
  { .name = "REDIS_WAIT_TIMEOUT", .type = T_DURATION, .group = G_REDIS,
    .flags = F_POSITIVE, .off = O_MS(redis_wait_timeout_ms), .def = "1s",
    .help = "How long one WAIT for REDIS_WAIT_REPLICAS lasts (new)." },

  /* Datastore */
  { .name = "DS_COUNT", .type = T_INT, .group = G_DS,
    .off = O_INT(ds_count), .def = "1", .min = 0, .max = COUNT_MAX,
    .help = "Desired number of datastore tasks (a count saved in Redis wins "
            "after the first start)." },
  { .name = "DS_MYSQL", .type = T_BOOL, .group = G_DS,
    .off = O_BOOL(ds_mysql), .def = "true",
    .help = "Use MariaDB as the K3s datastore. DS_ETCD=true alone selects etcd; "
            "setting both to true is an error." },
  { .name = "DS_ETCD", .type = T_BOOL, .group = G_DS,
    .off = O_BOOL(ds_etcd), .def = "false",
    .help = "Use etcd as the K3s datastore instead of MariaDB." },
  { .name = "DS_PORT", .type = T_PORT, .group = G_DS,
    .off = O_INT(ds_port), .def = "3306",
    .help = "Container port of the datastore; also the port in "
            "K3S_DATASTORE_ENDPOINT." },
  { .name = "DS_MYSQL_USERNAME", .type = T_STRING, .group = G_DS,
    .off = O_STR(ds_mysql_username), .def = "root",
    .help = "MariaDB user in the K3s datastore URL (only root exists unless "
            "you create the user)." },
  { .name = "DS_MYSQL_PASSWORD", .type = T_STRING, .group = G_DS,
    .flags = F_SECRET, .off = O_STR(ds_mysql_password), .def = "password",
    .help = "MariaDB root password and password in the K3s datastore URL. "
            "Change the default." },
  { .name = "DS_MYSQL_SSL", .type = T_BOOL, .group = G_DS,
    .off = O_BOOL(ds_mysql_ssl), .def = "false",
    .help = "TLS between K3s and MariaDB." },
  { .name = "DS_CPU", .type = T_FLOAT, .flags = F_LIVE, .group = G_DS,
    .off = O_DBL(ds_cpu), .def = "1", .fmin = 0.01,
    .help = "CPUs of the datastore task.",
    .record = "DSCPU" },
  { .name = "DS_CPU_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_DS,
    .off = O_DBL(ds_cpu_limit), .def_from = "DS_CPU", .fmin = 0.01,
    .help = "CPU limit of the datastore task.",
    .record = "DSCPULimit" },
  { .name = "DS_MEM", .type = T_FLOAT, .flags = F_LIVE, .group = G_DS,
    .off = O_DBL(ds_mem), .def = "1000", .fmin = 32,
    .help = "Memory of the datastore task in MB.",
    .record = "DSMEM" },
  { .name = "DS_MEM_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_DS,
    .off = O_DBL(ds_mem_limit), .def_from = "DS_MEM", .fmin = 32,
    .help = "Memory limit of the datastore task in MB.",
    .record = "DSMEMLimit" },
  { .name = "DS_DISK", .type = T_FLOAT, .flags = F_LIVE, .group = G_DS,
    .off = O_DBL(ds_disk), .def = "10000", .fmin = 0,
    .help = "Disk of the datastore task in MB.",
    .record = "DSDISK" },
  { .name = "DS_DISK_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_DS,
    .off = O_DBL(ds_disk_limit), .def_from = "DS_DISK", .fmin = 0,
    .help = "Disk limit in MB (Docker storage-opt with "
            "RESTRICT_DISK_ALLOCATION).",
    .record = "DSDISKLimit" },
  { .name = "IMAGE_MYSQL", .type = T_STRING, .flags = F_LIVE, .group = G_DS,
    .off = O_STR(image_mysql), .def = "docker.io/mariadb:10.8.3",
    .help = "MariaDB image.",
    .record = "ImageMySQL" },
  { .name = "IMAGE_ETCD", .type = T_STRING, .flags = F_LIVE, .group = G_DS,
    .off = O_STR(image_etcd), .def = "quay.io/coreos/etcd:v3.5.1",
    .help = "etcd image.",
    .record = "ImageETCD" },
  { .name = "VOLUME_DS", .type = T_STRING, .group = G_DS,
    .off = O_STR(volume_ds), .def = "/data/k3s/datastore",
    .help = "Docker volume name of the datastore data." },
  { .name = "K3S_DS_CONSTRAINT", .type = T_STRING, .group = G_DS,
    .off = O_STR(k3s_ds_constraint), .aux = AUX_STR,
    .aux_off = O_STR(k3s_ds_constraint_host), .check = m3s_config_check_constraint,
    .help = "Empty, or hostname:<agent hostname> to pin the datastore to one "
            "agent." },

  /* K3s, servers and agents */
  { .name = "K3S_SERVER_COUNT", .type = T_INT, .group = G_K3S,
    .off = O_INT(k3s_server_count), .def = "1", .min = 0, .max = COUNT_MAX,
    .help = "Desired number of K3s servers (a count saved in Redis wins after "
            "the first start)." },
  { .name = "K3S_AGENT_COUNT", .type = T_INT, .group = G_K3S,
    .off = O_INT(k3s_agent_count), .def = "1", .min = 0, .max = COUNT_MAX,
    .help = "Desired number of K3s agents (a count saved in Redis wins after "
            "the first start)." },
  { .name = "IMAGE_K3S", .type = T_STRING, .flags = F_LIVE, .group = G_K3S,
    .off = O_STR(image_k3s), .def = "avhost/ubuntu-m3s:22.04-3",
    .help = "Image of servers and agents.",
    .record = "ImageK3S" },
  { .name = "KUBERNETES_VERSION", .type = T_STRING, .flags = F_LIVE, .group = G_K3S,
    .off = O_STR(kubernetes_version), .def = "v1.31.5",
    .help = "Kubernetes version the bootstrap installs (k3s <version>+k3s1).",
    .record = "KubernetesVersion" },
  { .name = "K3S_TOKEN", .type = T_STRING, .group = G_K3S,
    .flags = F_SECRET, .off = O_STR(k3s_token), .def = "123456789",
    .help = "Cluster token of servers and agents. Change the default." },
  { .name = "KUBECONFIG", .type = T_STRING, .group = G_K3S,
    .off = O_STR(kubeconfig), .def = "/etc/rancher/k3s/k3s.yaml",
    .help = "Path of the kubeconfig inside the server container." },
  { .name = "BOOTSTRAP_URL", .type = T_STRING, .group = G_K3S,
    .off = O_STR(bootstrap_url),
    .def = "https://raw.githubusercontent.com/AVENTER-UG/mesos-m3s/master/bootstrap/bootstrap.sh",
    .help = "Script fetched into the sandbox of servers and agents and run as "
            "their command." },
  { .name = "K3S_DOCKER", .type = T_BOOL, .group = G_K3S,
    .flags = F_RAW, .off = O_BOOL(k3s_docker), .def = "false",
    .help = "Run K3s on the Docker runtime (cri-dockerd) instead of "
            "containerd." },
  { .name = "K3S_ENABLE_TAINT", .type = T_BOOL, .group = G_K3S,
    .off = O_BOOL(k3s_enable_taint), .def = "true",
    .help = "Taint server nodes with NoSchedule." },
  { .name = "K3S_DISABLE_SCHEDULING", .type = T_BOOL, .group = G_K3S,
    .off = O_BOOL(k3s_disable_scheduling), .def = "false",
    .help = "Cordon all agent nodes (also switched by the cordon API; the value "
            "saved in Redis wins after the first start)." },
  { .name = "ENABLE_REGISTRY_MIRROR", .type = T_BOOL, .group = G_K3S,
    .off = O_BOOL(enable_registry_mirror), .def = "false",
    .help = "Add --embedded-registry to the K3s arguments." },
  { .name = "K3S_CUSTOM_DOMAIN", .type = T_STRING, .group = G_K3S,
    .flags = F_UNUSED, .off = O_STR(k3s_custom_domain), .def = "cloud.local",
    .help = "Cluster domain." UNUSED_NOTE },
  { .name = "K3S_NODE_ENV_DELIMITER", .type = T_STRING, .group = G_K3S,
    .off = O_STR(k3s_node_env_delimiter), .def = ",",
    .help = "Separator of the items of K3S_NODE_ENV, K3S_SERVER_NODE_ENV and "
            "K3S_AGENT_NODE_ENV." },
  { .name = "K3S_NODE_DOCKER_PARAMETER_DELIMITER", .type = T_STRING, .group = G_K3S,
    .off = O_STR(k3s_node_docker_parameter_delimiter), .def = ",",
    .help = "Separator of the items of K3S_SERVER_CUSTOM_DOCKER_PARAMETER and "
            "K3S_AGENT_CUSTOM_DOCKER_PARAMETER." },
  { .name = "K3S_NODE_ENV", .type = T_STRING, .group = G_K3S,
    .off = O_STR(k3s_node_env), .aux = AUX_KVLIST, .aux_off = O_LIST(k3s_node_env_list),
    .aux2_off = O_STR(k3s_node_env_delimiter), .check = m3s_config_check_kvlist,
    .help = "Extra environment of servers and agents." KV_HELP },

  /* K3s server */
  { .name = "K3S_SERVER_STRING", .type = T_STRING, .flags = F_LIVE, .group = G_SERVER,
    .off = O_STR(k3s_server_string),
    .def = "/usr/local/bin/k3s server --cluster-cidr=10.2.0.0/16 "
           "--service-cidr=10.3.0.0/16 --cluster-dns=10.3.0.10 "
           "--kube-scheduler-arg=leader-elect=false "
           "--kube-controller-manager-arg=enable-leader-migration=false "
           "--kube-cloud-controller-manager-arg=enable-leader-migration=false "
           "--disable-cloud-controller --snapshotter=native --flannel-backend=vxlan",
    .help = "K3s server command line, split at single spaces.",
    .record = "K3SServerString" },
  { .name = "K3S_SERVER_PORT", .type = T_PORT, .group = G_SERVER,
    .off = O_INT(k3s_server_port), .def_from = "PORTRANGE_FROM",
    .help = "Host port of the Kubernetes API (container port 6443); the value "
            "saved in Redis wins after the first start." },
  { .name = "K3S_SERVER_CPU", .type = T_FLOAT, .flags = F_LIVE, .group = G_SERVER,
    .off = O_DBL(k3s_server_cpu), .def = "1.0", .fmin = 0.01,
    .help = "CPUs of a server.",
    .record = "K3SServerCPU" },
  { .name = "K3S_SERVER_CPU_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_SERVER,
    .off = O_DBL(k3s_server_cpu_limit), .def_from = "K3S_SERVER_CPU", .fmin = 0.01,
    .help = "CPU limit of a server.",
    .record = "K3SServerCPULimit" },
  { .name = "K3S_SERVER_MEM", .type = T_FLOAT, .flags = F_LIVE, .group = G_SERVER,
    .off = O_DBL(k3s_server_mem), .def = "2000", .fmin = 32,
    .help = "Memory of a server in MB.",
    .record = "K3SServerMEM" },
  { .name = "K3S_SERVER_MEM_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_SERVER,
    .off = O_DBL(k3s_server_mem_limit), .def_from = "K3S_SERVER_MEM", .fmin = 32,
    .help = "Memory limit of a server in MB.",
    .record = "K3SServerMEMLimit" },
  { .name = "K3S_SERVER_DISK", .type = T_FLOAT, .flags = F_LIVE, .group = G_SERVER,
    .off = O_DBL(k3s_server_disk), .def = "1000", .fmin = 0,
    .help = "Disk of a server in MB.",
    .record = "K3SServerDISK" },
  { .name = "K3S_SERVER_DISK_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_SERVER,
    .off = O_DBL(k3s_server_disk_limit), .def_from = "K3S_SERVER_DISK", .fmin = 0,
    .help = "Disk limit of a server in MB.",
    .record = "K3SServerDISKLimit" },
  { .name = "K3S_SERVER_LABELS", .type = T_JSON, .group = G_SERVER,
    .flags = F_LIVE | F_RAW, .off = O_STR(k3s_server_labels), .check = m3s_config_check_labels,
    .help = "Mesos task labels of servers: a JSON array of "
            "{\"key\":\"...\",\"value\":\"...\"} objects.",
    .record = "K3SServerLabels" },
  { .name = "K3S_SERVER_NODE_ENV", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_node_env), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_server_node_env_list),
    .aux2_off = O_STR(k3s_node_env_delimiter), .check = m3s_config_check_kvlist,
    .help = "Extra environment of servers only." KV_HELP },
  { .name = "K3S_SERVER_CUSTOM_DOCKER_PARAMETER", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_custom_docker_parameter), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_server_custom_docker_parameter_list),
    .aux2_off = O_STR(k3s_node_docker_parameter_delimiter), .check = m3s_config_check_kvlist,
    .help = "Extra Docker parameters of servers." KV_HELP },
  { .name = "K3S_SERVER_CONSTRAINT", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_constraint), .aux = AUX_STR,
    .aux_off = O_STR(k3s_server_constraint_host), .check = m3s_config_check_constraint,
    .help = "Empty, or hostname:<agent hostname> to pin servers to one agent." },
  { .name = "VOLUME_K3S_SERVER", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(volume_k3s_server), .def = "/data/k3s/server",
    .help = "Docker volume name mounted at /var/lib/rancher/k3s in servers." },

  /* K3s agent */
  { .name = "K3S_AGENT_STRING", .type = T_STRING, .flags = F_LIVE, .group = G_AGENT,
    .off = O_STR(k3s_agent_string), .def = "/usr/local/bin/k3s agent --snapshotter=native",
    .help = "K3s agent command line, split at single spaces.",
    .record = "K3SAgentString" },
  { .name = "K3S_AGENT_CPU", .type = T_FLOAT, .flags = F_LIVE, .group = G_AGENT,
    .off = O_DBL(k3s_agent_cpu), .def = "2.0", .fmin = 0.01,
    .help = "CPUs of an agent.",
    .record = "K3SAgentCPU" },
  { .name = "K3S_AGENT_CPU_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_AGENT,
    .off = O_DBL(k3s_agent_cpu_limit), .def_from = "K3S_AGENT_CPU", .fmin = 0.01,
    .help = "CPU limit of an agent.",
    .record = "K3SAgentCPULimit" },
  { .name = "K3S_AGENT_MEM", .type = T_FLOAT, .flags = F_LIVE, .group = G_AGENT,
    .off = O_DBL(k3s_agent_mem), .def = "2000", .fmin = 32,
    .help = "Memory of an agent in MB.",
    .record = "K3SAgentMEM" },
  { .name = "K3S_AGENT_MEM_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_AGENT,
    .off = O_DBL(k3s_agent_mem_limit), .def_from = "K3S_AGENT_MEM", .fmin = 32,
    .help = "Memory limit of an agent in MB.",
    .record = "K3SAgentMEMLimit" },
  { .name = "K3S_AGENT_DISK", .type = T_FLOAT, .flags = F_LIVE, .group = G_AGENT,
    .off = O_DBL(k3s_agent_disk), .def = "10000", .fmin = 0,
    .help = "Disk of an agent in MB.",
    .record = "K3SAgentDISK" },
  { .name = "K3S_AGENT_DISK_LIMIT", .type = T_FLOAT, .flags = F_LIVE, .group = G_AGENT,
    .off = O_DBL(k3s_agent_disk_limit), .def_from = "K3S_AGENT_DISK", .fmin = 0,
    .help = "Disk limit of an agent in MB.",
    .record = "K3SAgentDISKLimit" },
  { .name = "K3S_AGENT_TCP_PORT", .type = T_INT, .group = G_AGENT,
    .off = O_INT(k3s_agent_tcp_port), .def = "0", .min = 0, .max = 65535,
    .help = "When not 0, an extra TCP port of every agent published on a host "
            "port." },
  { .name = "K3S_MAX_PER_AGENT", .type = T_INT, .group = G_AGENT,
    .off = O_INT(k3s_max_per_agent), .def = "1", .min = 0, .max = 10000,
    .help = "At most this many tasks of one role (K3s agents, servers, "
            "datastores) on one Mesos agent; 0 = no limit (new)." },
  { .name = "K3S_AGENT_LABELS", .type = T_JSON, .group = G_AGENT,
    .flags = F_LIVE | F_RAW, .off = O_STR(k3s_agent_labels), .check = m3s_config_check_labels,
    .help = "Mesos task labels of agents: a JSON array of "
            "{\"key\":\"...\",\"value\":\"...\"} objects.",
    .record = "K3SAgentLabels" },
  { .name = "K3S_AGENT_NODE_ENV", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_node_env), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_agent_node_env_list),
    .aux2_off = O_STR(k3s_node_env_delimiter), .check = m3s_config_check_kvlist,
    .help = "Extra environment of agents only." KV_HELP },
  { .name = "K3S_AGENT_CUSTOM_DOCKER_PARAMETER", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_custom_docker_parameter), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_agent_custom_docker_parameter_list),
    .aux2_off = O_STR(k3s_node_docker_parameter_delimiter), .check = m3s_config_check_kvlist,
    .help = "Extra Docker parameters of agents." KV_HELP },
  { .name = "K3S_AGENT_CONSTRAINT", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_constraint), .aux = AUX_STR,
    .aux_off = O_STR(k3s_agent_constraint_host), .check = m3s_config_check_constraint,
    .help = "Empty, or hostname:<agent hostname> to pin agents to one Mesos "
            "agent." },

  /* Docker parameters */
  { .name = "VOLUME_DRIVER", .type = T_STRING, .group = G_DOCKER,
    .off = O_STR(volume_driver), .def = "local",
    .help = "Docker volume driver of all volumes." },
  { .name = "DOCKER_SHM_SIZE", .type = T_STRING, .group = G_DOCKER,
    .off = O_STR(docker_shm_size), .def = "30gb",
    .help = "Default of K3S_CONTAINER_DISK." },
  { .name = "K3S_CONTAINER_DISK", .type = T_STRING, .group = G_DOCKER,
    .off = O_STR(k3s_container_disk), .def_from = "DOCKER_SHM_SIZE",
    .help = "Docker shm-size of servers and agents (despite its name)." },
  { .name = "DOCKER_ULIMIT", .type = T_STRING, .group = G_DOCKER,
    .off = O_STR(docker_ulimit), .def = "1048576",
    .help = "Docker ulimit nofile of servers and agents." },
  { .name = "DOCKER_MEMORY_SWAP", .type = T_FLOAT, .group = G_DOCKER,
    .off = O_DBL(docker_memory_swap), .def = "1000", .fmin = 0,
    .help = "Swap in MB added to the task memory for Docker memory-swap." },
  { .name = "DOCKER_SOCK", .type = T_STRING, .group = G_DOCKER,
    .flags = F_RAW | F_UNUSED, .off = O_STR(docker_sock),
    .help = "Docker socket path." UNUSED_NOTE },
  { .name = "CGROUP_V2", .type = T_BOOL, .group = G_DOCKER,
    .off = O_BOOL(cgroup_v2), .def = "false",
    .help = "Add cgroupns=private to servers and agents." },
  { .name = "RESTRICT_DISK_ALLOCATION", .type = T_BOOL, .group = G_DOCKER,
    .off = O_BOOL(restrict_disk_allocation), .def = "false",
    .help = "Limit the container disk to the *_DISK_LIMIT value (Docker "
            "storage-opt)." },
  { .name = "CUSTOM_DOCKER_RUNTIME", .type = T_STRING, .group = G_DOCKER,
    .off = O_STR(custom_docker_runtime),
    .help = "When set, the Docker runtime of all tasks." },
  { .name = "ENFORCE_MESOS_TASK_LIMITS", .type = T_BOOL, .group = G_DOCKER,
    .off = O_BOOL(enforce_mesos_task_limits), .def = "true",
    .help = "Send the *_CPU_LIMIT and *_MEM_LIMIT values as Mesos task limits." },
  { .name = "DOCKER_FORCE_PULL", .type = T_BOOL, .group = G_DOCKER,
    .off = O_BOOL(docker_force_pull), .def = "true",
    .help = "Have the Mesos agent pull the task image on every launch, as the "
            "original; false uses an image already on the agent and pulls only "
            "a missing one (needed for local images without a registry) (new)." },

  /* Vault */
  { .name = "VAULT_URL", .type = T_STRING, .group = G_VAULT,
    .flags = F_RAW, .off = O_STR(vault_url), .def = "http://127.0.0.1:8200",
    .check = m3s_config_check_http_url,
    .help = "Vault address (http:// or https://)." },
  { .name = "VAULT_TOKEN", .type = T_STRING, .group = G_VAULT,
    .flags = F_RAW | F_SECRET, .off = O_STR(vault_token),
    .help = "When set, a value of the form vault://<path>:<key> is replaced at "
            "start by data.data.<key> of the KV v2 secret at <path>, e.g. "
            "vault://secret/data/m3s:password. A failed lookup stops the start." },
  { .name = "VAULT_TIMEOUT", .type = T_DURATION, .group = G_VAULT,
    .flags = F_RAW | F_POSITIVE, .off = O_MS(vault_timeout_ms), .def = "10s",
    .help = "Timeout of each Vault lookup." },
};

_Static_assert(sizeof(m3s_config_vars) / sizeof(m3s_config_vars[0]) == NVARS,
               "NVARS in config-int.h must count the table");
