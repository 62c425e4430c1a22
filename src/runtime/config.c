/* Configuration from environment variables; see include/m3s/config.h.
 *
 * DESIGN
 * One table (vars[] below) describes every variable: name, type, default,
 * flags, help and where the value goes in m3s_config_t. Loading, --help,
 * --print-config, freeing and the secret list are all driven by it, so a
 * variable cannot be parsed without also being documented and printed.
 *
 * Loading runs in stages, each over the whole table:
 *   1. read: look every variable up (RAW ones first, because the Vault
 *      settings are RAW and must be known before the first Vault lookup),
 *      resolve vault:// references, apply plain defaults, then defaults that
 *      copy another variable's effective value (DS_CPU_LIMIT <- DS_CPU).
 *      The result is one string per variable, src[i].
 *   2. parse: convert src[i] by type into the struct.
 *   3. check: per-variable validators that need other variables (a list
 *      needs its delimiter) or fill derived fields (fw, constraint hosts,
 *      decoded PEM, key/value lists).
 *   4. cross checks between variables (datastore choice, port range, TLS).
 * The first failure stops the load with one line in err.
 *
 * Where the original turned a bad value into 0/false or crashed later, we
 * refuse to start instead: a daemon that runs with a silently different
 * configuration is worse than one that does not start.
 *
 * Only the main thread calls m3s_config_load/free, before any other thread
 * exists (the Vault lookup uses a private curl easy handle).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "m3s/config.h"
#include "m3s/log.h"
#include "m3s/xalloc.h"

enum vtype {
  T_STRING,
  T_BOOL,
  T_INT,      /* int, range min..max */
  T_FLOAT,    /* double, >= fmin, finite */
  T_DURATION, /* Go syntax, stored as int64_t ms */
  T_JSON,     /* syntax-checked, stored raw */
  T_HOSTPORT, /* host:port or [v6]:port; host and port go to aux fields */
  T_PORT,     /* int 1..65535 */
};

enum vgroup {
  G_FRAMEWORK,
  G_MESOS,
  G_TIMERS,
  G_API,
  G_REDIS,
  G_DS,
  G_K3S,
  G_SERVER,
  G_AGENT,
  G_DOCKER,
  G_VAULT,
};

static const char *const group_titles[] = {
  [G_FRAMEWORK] = "Framework",
  [G_MESOS] = "Mesos",
  [G_TIMERS] = "Timers",
  [G_API] = "REST API and TLS",
  [G_REDIS] = "Redis",
  [G_DS] = "Datastore (MariaDB or etcd)",
  [G_K3S] = "K3s (servers and agents)",
  [G_SERVER] = "K3s server",
  [G_AGENT] = "K3s agent",
  [G_DOCKER] = "Docker parameters of the tasks",
  [G_VAULT] = "Vault",
};

#define F_SECRET 0x01u   /* masked in print, listed by m3s_config_secrets */
#define F_RAW 0x02u      /* read as is: no vault:// resolution (original used os.Getenv) */
#define F_UNUSED 0x04u   /* parsed but without effect in the original too */
#define F_POSITIVE 0x08u /* durations: 0 would have crashed the original */
#define F_ABBREV 0x10u   /* long value: print abbreviated */

/* Derived fields a variable owns besides its main field, so that freeing is
 * driven by the table as well. */
enum vaux {
  AUX_NONE,
  AUX_STR,    /* char * at aux_off */
  AUX_KVLIST, /* m3s_kvlist_t at aux_off */
  AUX_PEM,    /* char * at aux_off, size_t length at aux2_off */
};

struct load;
typedef int (*check_fn)(struct load *l, size_t i, char *why, size_t whylen);

struct var {
  const char *name;
  enum vtype type;
  enum vgroup group;
  unsigned flags;
  size_t off;
  enum vaux aux;
  size_t aux_off;
  size_t aux2_off;     /* T_HOSTPORT: int port; AUX_PEM: size_t length;
                          kvlist check: char * delimiter field */
  const char *def;      /* default in string form; NULL = "" */
  const char *def_from; /* default = effective value of this variable */
  char *(*def_fn)(void);
  const char *def_text; /* how --help describes def_fn */
  long long min, max;   /* T_INT */
  double fmin;          /* T_FLOAT */
  check_fn check;
  const char *help;
};

/* Offsets that fail to compile when the field has another type than the
 * table entry claims. */
#define OFF(f, T) (offsetof(m3s_config_t, f) + 0 * sizeof((T *){ &((m3s_config_t *)0)->f }))
#define O_STR(f) OFF(f, char *)
#define O_BOOL(f) OFF(f, bool)
#define O_INT(f) OFF(f, int)
#define O_DBL(f) OFF(f, double)
#define O_MS(f) OFF(f, int64_t)
#define O_SIZE(f) OFF(f, size_t)
#define O_LIST(f) OFF(f, m3s_kvlist_t)

#define COUNT_MAX 1000

static int check_fwname(struct load *l, size_t i, char *why, size_t whylen);
static int check_loglevel(struct load *l, size_t i, char *why, size_t whylen);
static int check_domain(struct load *l, size_t i, char *why, size_t whylen);
static int check_constraint(struct load *l, size_t i, char *why, size_t whylen);
static int check_kvlist(struct load *l, size_t i, char *why, size_t whylen);
static int check_labels(struct load *l, size_t i, char *why, size_t whylen);
static int check_base64_pem(struct load *l, size_t i, char *why, size_t whylen);
static int check_http_url(struct load *l, size_t i, char *why, size_t whylen);
static char *default_hostname(void);

#define UNUSED_NOTE " Accepted for compatibility; unused by the original and by m3s."
#define NO_PLUGINS " Accepted for compatibility; m3s has no Go plugins, so it has no effect."
#define KV_HELP " Items are KEY=VALUE, split at the first '='; empty items are skipped."

static const struct var vars[] = {
  /* Framework */
  { .name = "FRAMEWORK_USER", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_user), .def = "root",
    .help = "User the tasks run as (FrameworkInfo.user)." },
  { .name = "FRAMEWORK_NAME", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(framework_name), .aux = AUX_STR, .aux_off = O_STR(fw),
    .check = check_fwname,
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
    .off = O_STR(framework_hostname), .def_fn = default_hostname,
    .def_text = "the host's FQDN",
    .help = "Hostname announced to Mesos and used in the web UI URL; compared "
            "with agent hostnames when DOCKER_RUNNING is true." },
  { .name = "FRAMEWORK_STATEFILE_PATH", .type = T_STRING, .group = G_FRAMEWORK,
    .flags = F_UNUSED, .off = O_STR(framework_statefile_path), .def = "/tmp",
    .help = "Directory of a legacy state file." UNUSED_NOTE },
  { .name = "LOGLEVEL", .type = T_STRING, .group = G_FRAMEWORK,
    .off = O_STR(loglevel), .def = "DEBUG", .check = check_loglevel,
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
    .off = O_STR(domain), .def = ".local", .check = check_domain,
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
    .help = "Minimum age of a task before it is removed because its node is "
            "not ready." },
  { .name = "K3S_NODE_TIMEOUT", .type = T_DURATION, .group = G_TIMERS,
    .off = O_MS(k3s_node_timeout_ms), .def = "10m",
    .help = "Age after which a task whose Kubernetes node is missing or "
            "NotReady counts as failed." },
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
    .check = check_base64_pem,
    .help = "PEM certificate of the REST API, base64-encoded (standard or "
            "URL-safe alphabet, padding optional). Set together with "
            "SSL_KEY_BASE64 to serve HTTPS." },
  { .name = "SSL_KEY_BASE64", .type = T_STRING, .group = G_API,
    .flags = F_SECRET, .off = O_STR(ssl_key_base64), .aux = AUX_PEM,
    .aux_off = O_STR(ssl_key_pem), .aux2_off = O_SIZE(ssl_key_pem_len),
    .check = check_base64_pem,
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
  { .name = "DS_CPU", .type = T_FLOAT, .group = G_DS,
    .off = O_DBL(ds_cpu), .def = "1", .fmin = 0.01,
    .help = "CPUs of the datastore task." },
  { .name = "DS_CPU_LIMIT", .type = T_FLOAT, .group = G_DS,
    .off = O_DBL(ds_cpu_limit), .def_from = "DS_CPU", .fmin = 0.01,
    .help = "CPU limit of the datastore task." },
  { .name = "DS_MEM", .type = T_FLOAT, .group = G_DS,
    .off = O_DBL(ds_mem), .def = "1000", .fmin = 32,
    .help = "Memory of the datastore task in MB." },
  { .name = "DS_MEM_LIMIT", .type = T_FLOAT, .group = G_DS,
    .off = O_DBL(ds_mem_limit), .def_from = "DS_MEM", .fmin = 32,
    .help = "Memory limit of the datastore task in MB." },
  { .name = "DS_DISK", .type = T_FLOAT, .group = G_DS,
    .off = O_DBL(ds_disk), .def = "10000", .fmin = 0,
    .help = "Disk of the datastore task in MB." },
  { .name = "DS_DISK_LIMIT", .type = T_FLOAT, .group = G_DS,
    .off = O_DBL(ds_disk_limit), .def_from = "DS_DISK", .fmin = 0,
    .help = "Disk limit in MB (Docker storage-opt with "
            "RESTRICT_DISK_ALLOCATION)." },
  { .name = "IMAGE_MYSQL", .type = T_STRING, .group = G_DS,
    .off = O_STR(image_mysql), .def = "docker.io/mariadb:10.8.3",
    .help = "MariaDB image." },
  { .name = "IMAGE_ETCD", .type = T_STRING, .group = G_DS,
    .off = O_STR(image_etcd), .def = "quay.io/coreos/etcd:v3.5.1",
    .help = "etcd image." },
  { .name = "VOLUME_DS", .type = T_STRING, .group = G_DS,
    .off = O_STR(volume_ds), .def = "/data/k3s/datastore",
    .help = "Docker volume name of the datastore data." },
  { .name = "K3S_DS_CONSTRAINT", .type = T_STRING, .group = G_DS,
    .off = O_STR(k3s_ds_constraint), .aux = AUX_STR,
    .aux_off = O_STR(k3s_ds_constraint_host), .check = check_constraint,
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
  { .name = "IMAGE_K3S", .type = T_STRING, .group = G_K3S,
    .off = O_STR(image_k3s), .def = "avhost/ubuntu-m3s:22.04-3",
    .help = "Image of servers and agents." },
  { .name = "KUBERNETES_VERSION", .type = T_STRING, .group = G_K3S,
    .off = O_STR(kubernetes_version), .def = "v1.31.5",
    .help = "Kubernetes version the bootstrap installs (k3s <version>+k3s1)." },
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
    .aux2_off = O_STR(k3s_node_env_delimiter), .check = check_kvlist,
    .help = "Extra environment of servers and agents." KV_HELP },

  /* K3s server */
  { .name = "K3S_SERVER_STRING", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_string),
    .def = "/usr/local/bin/k3s server --cluster-cidr=10.2.0.0/16 "
           "--service-cidr=10.3.0.0/16 --cluster-dns=10.3.0.10 "
           "--kube-scheduler-arg=leader-elect=false "
           "--kube-controller-manager-arg=enable-leader-migration=false "
           "--kube-cloud-controller-manager-arg=enable-leader-migration=false "
           "--disable-cloud-controller --snapshotter=native --flannel-backend=vxlan",
    .help = "K3s server command line, split at single spaces." },
  { .name = "K3S_SERVER_PORT", .type = T_PORT, .group = G_SERVER,
    .off = O_INT(k3s_server_port), .def_from = "PORTRANGE_FROM",
    .help = "Host port of the Kubernetes API (container port 6443); the value "
            "saved in Redis wins after the first start." },
  { .name = "K3S_SERVER_CPU", .type = T_FLOAT, .group = G_SERVER,
    .off = O_DBL(k3s_server_cpu), .def = "1.0", .fmin = 0.01,
    .help = "CPUs of a server." },
  { .name = "K3S_SERVER_CPU_LIMIT", .type = T_FLOAT, .group = G_SERVER,
    .off = O_DBL(k3s_server_cpu_limit), .def_from = "K3S_SERVER_CPU", .fmin = 0.01,
    .help = "CPU limit of a server." },
  { .name = "K3S_SERVER_MEM", .type = T_FLOAT, .group = G_SERVER,
    .off = O_DBL(k3s_server_mem), .def = "2000", .fmin = 32,
    .help = "Memory of a server in MB." },
  { .name = "K3S_SERVER_MEM_LIMIT", .type = T_FLOAT, .group = G_SERVER,
    .off = O_DBL(k3s_server_mem_limit), .def_from = "K3S_SERVER_MEM", .fmin = 32,
    .help = "Memory limit of a server in MB." },
  { .name = "K3S_SERVER_DISK", .type = T_FLOAT, .group = G_SERVER,
    .off = O_DBL(k3s_server_disk), .def = "1000", .fmin = 0,
    .help = "Disk of a server in MB." },
  { .name = "K3S_SERVER_DISK_LIMIT", .type = T_FLOAT, .group = G_SERVER,
    .off = O_DBL(k3s_server_disk_limit), .def_from = "K3S_SERVER_DISK", .fmin = 0,
    .help = "Disk limit of a server in MB." },
  { .name = "K3S_SERVER_LABELS", .type = T_JSON, .group = G_SERVER,
    .flags = F_RAW, .off = O_STR(k3s_server_labels), .check = check_labels,
    .help = "Mesos task labels of servers: a JSON array of "
            "{\"key\":\"...\",\"value\":\"...\"} objects." },
  { .name = "K3S_SERVER_NODE_ENV", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_node_env), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_server_node_env_list),
    .aux2_off = O_STR(k3s_node_env_delimiter), .check = check_kvlist,
    .help = "Extra environment of servers only." KV_HELP },
  { .name = "K3S_SERVER_CUSTOM_DOCKER_PARAMETER", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_custom_docker_parameter), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_server_custom_docker_parameter_list),
    .aux2_off = O_STR(k3s_node_docker_parameter_delimiter), .check = check_kvlist,
    .help = "Extra Docker parameters of servers." KV_HELP },
  { .name = "K3S_SERVER_CONSTRAINT", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(k3s_server_constraint), .aux = AUX_STR,
    .aux_off = O_STR(k3s_server_constraint_host), .check = check_constraint,
    .help = "Empty, or hostname:<agent hostname> to pin servers to one agent." },
  { .name = "VOLUME_K3S_SERVER", .type = T_STRING, .group = G_SERVER,
    .off = O_STR(volume_k3s_server), .def = "/data/k3s/server",
    .help = "Docker volume name mounted at /var/lib/rancher/k3s in servers." },

  /* K3s agent */
  { .name = "K3S_AGENT_STRING", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_string), .def = "/usr/local/bin/k3s agent --snapshotter=native",
    .help = "K3s agent command line, split at single spaces." },
  { .name = "K3S_AGENT_CPU", .type = T_FLOAT, .group = G_AGENT,
    .off = O_DBL(k3s_agent_cpu), .def = "2.0", .fmin = 0.01,
    .help = "CPUs of an agent." },
  { .name = "K3S_AGENT_CPU_LIMIT", .type = T_FLOAT, .group = G_AGENT,
    .off = O_DBL(k3s_agent_cpu_limit), .def_from = "K3S_AGENT_CPU", .fmin = 0.01,
    .help = "CPU limit of an agent." },
  { .name = "K3S_AGENT_MEM", .type = T_FLOAT, .group = G_AGENT,
    .off = O_DBL(k3s_agent_mem), .def = "2000", .fmin = 32,
    .help = "Memory of an agent in MB." },
  { .name = "K3S_AGENT_MEM_LIMIT", .type = T_FLOAT, .group = G_AGENT,
    .off = O_DBL(k3s_agent_mem_limit), .def_from = "K3S_AGENT_MEM", .fmin = 32,
    .help = "Memory limit of an agent in MB." },
  { .name = "K3S_AGENT_DISK", .type = T_FLOAT, .group = G_AGENT,
    .off = O_DBL(k3s_agent_disk), .def = "10000", .fmin = 0,
    .help = "Disk of an agent in MB." },
  { .name = "K3S_AGENT_DISK_LIMIT", .type = T_FLOAT, .group = G_AGENT,
    .off = O_DBL(k3s_agent_disk_limit), .def_from = "K3S_AGENT_DISK", .fmin = 0,
    .help = "Disk limit of an agent in MB." },
  { .name = "K3S_AGENT_TCP_PORT", .type = T_INT, .group = G_AGENT,
    .off = O_INT(k3s_agent_tcp_port), .def = "0", .min = 0, .max = 65535,
    .help = "When not 0, an extra TCP port of every agent published on a host "
            "port." },
  { .name = "K3S_MAX_PER_AGENT", .type = T_INT, .group = G_AGENT,
    .off = O_INT(k3s_max_per_agent), .def = "1", .min = 0, .max = 10000,
    .help = "At most this many tasks of one role (K3s agents, servers, "
            "datastores) on one Mesos agent; 0 = no limit (new)." },
  { .name = "K3S_AGENT_LABELS", .type = T_JSON, .group = G_AGENT,
    .flags = F_RAW, .off = O_STR(k3s_agent_labels), .check = check_labels,
    .help = "Mesos task labels of agents: a JSON array of "
            "{\"key\":\"...\",\"value\":\"...\"} objects." },
  { .name = "K3S_AGENT_NODE_ENV", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_node_env), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_agent_node_env_list),
    .aux2_off = O_STR(k3s_node_env_delimiter), .check = check_kvlist,
    .help = "Extra environment of agents only." KV_HELP },
  { .name = "K3S_AGENT_CUSTOM_DOCKER_PARAMETER", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_custom_docker_parameter), .aux = AUX_KVLIST,
    .aux_off = O_LIST(k3s_agent_custom_docker_parameter_list),
    .aux2_off = O_STR(k3s_node_docker_parameter_delimiter), .check = check_kvlist,
    .help = "Extra Docker parameters of agents." KV_HELP },
  { .name = "K3S_AGENT_CONSTRAINT", .type = T_STRING, .group = G_AGENT,
    .off = O_STR(k3s_agent_constraint), .aux = AUX_STR,
    .aux_off = O_STR(k3s_agent_constraint_host), .check = check_constraint,
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
    .check = check_http_url,
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

#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* State of one m3s_config_load call. */
struct load {
  m3s_config_t *cfg;
  m3s_getenv_cb getenv_fn;
  void *ctx;
  char *src[NVARS];   /* effective string of each variable */
  char *vref[NVARS];  /* the vault:// reference a value came from, or NULL */
  bool given[NVARS];  /* set (non-empty) in the environment */
  char *err;
  size_t errlen;
  bool vault_ready;
  CURL *curl;
};

/* ---- small helpers ---- */

static void *field(const m3s_config_t *cfg, size_t off)
{
  return (char *)cfg + off;
}

static char **str_field(const m3s_config_t *cfg, size_t off)
{
  return (char **)field(cfg, off);
}

static bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static char *concat(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *s = m3s_xmalloc(la + lb + 1);
  memcpy(s, a, la);
  memcpy(s + la, b, lb + 1);
  return s;
}

static size_t var_index(const char *name)
{
  for(size_t i = 0; i < NVARS; i++)
    if(strcmp(vars[i].name, name) == 0)
      return i;
  return NVARS;
}

/* Copies s into dst for an error message: quotes, backslashes and control
 * characters escaped so the message stays one line, at most maxin input
 * bytes shown, "..." when cut. */
static void escape(char *dst, size_t dstlen, const char *s, size_t maxin)
{
  size_t o = 0, k;
  bool cut = false;

  for(k = 0; s[k]; k++) {
    unsigned char c = (unsigned char)s[k];
    char tmp[8];

    if(k >= maxin) {
      cut = true;
      break;
    }
    if(c == '"' || c == '\\')
      snprintf(tmp, sizeof(tmp), "\\%c", c);
    else if(c == '\n')
      snprintf(tmp, sizeof(tmp), "\\n");
    else if(c == '\r')
      snprintf(tmp, sizeof(tmp), "\\r");
    else if(c == '\t')
      snprintf(tmp, sizeof(tmp), "\\t");
    else if(c < 0x20 || c == 0x7f)
      snprintf(tmp, sizeof(tmp), "\\x%02x", c);
    else {
      tmp[0] = (char)c;
      tmp[1] = '\0';
    }
    size_t tl = strlen(tmp);
    if(o + tl + 4 > dstlen) {  /* keep room for "..." and NUL */
      cut = true;
      break;
    }
    memcpy(dst + o, tmp, tl);
    o += tl;
  }
  if(cut && o + 4 <= dstlen) {
    memcpy(dst + o, "...", 3);
    o += 3;
  }
  dst[o] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void seterr(struct load *l, const char *fmt, ...)
{
  va_list ap;

  if(!l->err || l->errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(l->err, l->errlen, fmt, ap);
  va_end(ap);
}

/* The one error line for a bad value: NAME="value": why. Secret values are
 * never echoed; a value that came from Vault says which reference. */
static int fail_value(struct load *l, size_t i, const char *why)
{
  const struct var *v = &vars[i];
  char shown[200], ref[200];

  if(v->flags & F_SECRET)
    snprintf(shown, sizeof(shown), "***");
  else {
    char e[190];
    escape(e, sizeof(e), l->src[i] ? l->src[i] : "", 120);
    snprintf(shown, sizeof(shown), "\"%s\"", e);
  }
  if(l->vref[i]) {
    escape(ref, sizeof(ref), l->vref[i], 150);
    seterr(l, "%s=%s (from %s): %s", v->name, shown, ref, why);
  }
  else
    seterr(l, "%s=%s: %s", v->name, shown, why);
  return -EINVAL;
}

/* ---- scalar parsers: 0 or -1, never partial input ---- */

static int parse_bool(const char *s, bool *out)
{
  static const char *const yes[] = { "true", "1", "yes", "on" };
  static const char *const no[] = { "false", "0", "no", "off" };

  for(size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++) {
    if(strcasecmp(s, yes[k]) == 0) {
      *out = true;
      return 0;
    }
    if(strcasecmp(s, no[k]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

static int parse_ll(const char *s, long long *out)
{
  const char *p = s;
  char *end = NULL;

  /* strtoll alone would accept leading blanks and an empty digit run. */
  if(*p == '+' || *p == '-')
    p++;
  if(!is_digit(*p))
    return -1;
  errno = 0;
  *out = strtoll(s, &end, 10);
  if(errno == ERANGE || *end != '\0')
    return -1;
  return 0;
}

static int parse_port(const char *s, int *out)
{
  long long v;

  if(!is_digit(s[0]) || parse_ll(s, &v) != 0 || v < 1 || v > 65535)
    return -1;
  *out = (int)v;
  return 0;
}

static int parse_double(const char *s, double *out)
{
  const char *p = s;
  char *end = NULL;

  /* Only plain decimal notation: strtod would also take blanks, hex, inf
   * and nan, none of which is a sensible resource amount. */
  if(*p == '+' || *p == '-')
    p++;
  if(!is_digit(*p) && !(*p == '.' && is_digit(p[1])))
    return -1;
  if(strpbrk(s, "xXpP"))
    return -1;
  errno = 0;
  *out = strtod(s, &end);
  if(errno == ERANGE || *end != '\0' || !isfinite(*out))
    return -1;
  return 0;
}

/* Go's time.ParseDuration grammar: [+-]? (number unit)+ where number is
 * digits with an optional fraction and unit one of ns us µs ms s m h; the
 * bare string "0" is also valid. Result in nanoseconds. */
static int parse_duration_ns(const char *s, int64_t *out)
{
  static const struct { const char *name; uint64_t ns; } units[] = {
    { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
    { "ms", 1000000 }, { "s", 1000000000ull }, { "m", 60000000000ull },
    { "h", 3600000000000ull },
  };
  const uint64_t limit = (uint64_t)1 << 63;
  uint64_t total = 0;
  bool neg = false;

  if(*s == '+' || *s == '-') {
    neg = *s == '-';
    s++;
  }
  if(strcmp(s, "0") == 0) {
    *out = 0;
    return 0;
  }
  if(*s == '\0')
    return -1;
  while(*s) {
    uint64_t v = 0, f = 0, scale = 1, unit = 0;
    bool pre = false, post = false;

    for(; is_digit(*s); s++) {
      if(v > (limit - 9) / 10)
        return -1;
      v = v * 10 + (uint64_t)(*s - '0');
      pre = true;
    }
    if(*s == '.') {
      for(s++; is_digit(*s); s++) {
        post = true;
        if(scale < 1000000000000000000ull) {  /* further digits are noise */
          f = f * 10 + (uint64_t)(*s - '0');
          scale *= 10;
        }
      }
    }
    if(!pre && !post)
      return -1;
    const char *u = s;
    while(*s && *s != '.' && !is_digit(*s))
      s++;
    size_t ul = (size_t)(s - u);
    for(size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
      if(strlen(units[k].name) == ul && memcmp(units[k].name, u, ul) == 0) {
        unit = units[k].ns;
        break;
      }
    }
    if(unit == 0)
      return -1;
    if(v > limit / unit)
      return -1;
    v *= unit;
    if(f > 0) {
      v += (uint64_t)((double)f * ((double)unit / (double)scale));
      if(v > limit)
        return -1;
    }
    total += v;
    if(total > limit)
      return -1;
  }
  if(neg)
    *out = total == limit ? INT64_MIN : -(int64_t)total;
  else if(total == limit)
    return -1;
  else
    *out = (int64_t)total;
  return 0;
}

/* host:port or [v6]:port. An unbracketed host with a ':' is refused: it is
 * either an IPv6 address or a URL, and both would be misread. */
static int parse_hostport(const char *s, char **host, int *port)
{
  const char *h, *he, *ps;

  if(s[0] == '[') {
    const char *close = strchr(s, ']');
    if(!close || close[1] != ':')
      return -1;
    h = s + 1;
    he = close;
    ps = close + 2;
  }
  else {
    const char *colon = strrchr(s, ':');
    if(!colon)
      return -1;
    h = s;
    he = colon;
    ps = colon + 1;
    if(memchr(h, ':', (size_t)(he - h)))
      return -1;
  }
  if(he == h)
    return -1;
  for(const char *c = h; c < he; c++) {
    unsigned char uc = (unsigned char)*c;
    if(!isalnum(uc) && !strchr(".-_:%", uc))
      return -1;
  }
  if(parse_port(ps, port) != 0)
    return -1;
  *host = m3s_xmalloc((size_t)(he - h) + 1);
  memcpy(*host, h, (size_t)(he - h));
  (*host)[he - h] = '\0';
  return 0;
}

/* ---- stage 2: parse by type ---- */

static int parse_value(struct load *l, size_t i)
{
  const struct var *v = &vars[i];
  m3s_config_t *cfg = l->cfg;
  const char *s = l->src[i] ? l->src[i] : "";
  char why[200];

  switch(v->type) {
  case T_STRING:
  case T_JSON:
    free(*str_field(cfg, v->off));
    *str_field(cfg, v->off) = m3s_xstrdup(s);
    if(v->type == T_JSON && s[0]) {
      json_error_t jerr;
      json_t *root = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
      if(!root) {
        char text[120];
        escape(text, sizeof(text), jerr.text, 100);
        snprintf(why, sizeof(why), "expected JSON (%s at line %d column %d)",
                 text, jerr.line, jerr.column);
        return fail_value(l, i, why);
      }
      json_decref(root);
    }
    return 0;
  case T_BOOL:
    if(parse_bool(s, (bool *)field(cfg, v->off)) != 0)
      return fail_value(l, i, "expected true or false (also 1/0, yes/no, on/off)");
    return 0;
  case T_INT: {
    long long n;
    if(parse_ll(s, &n) != 0 || n < v->min || n > v->max) {
      if(v->max == INT_MAX)
        snprintf(why, sizeof(why), "expected a whole number >= %lld", v->min);
      else
        snprintf(why, sizeof(why), "expected a whole number >= %lld and <= %lld",
                 v->min, v->max);
      return fail_value(l, i, why);
    }
    *(int *)field(cfg, v->off) = (int)n;
    return 0;
  }
  case T_PORT:
    if(parse_port(s, (int *)field(cfg, v->off)) != 0)
      return fail_value(l, i, "expected a port number from 1 to 65535");
    return 0;
  case T_FLOAT: {
    double d;
    if(parse_double(s, &d) != 0 || d < v->fmin) {
      snprintf(why, sizeof(why), "expected a number >= %g", v->fmin);
      return fail_value(l, i, why);
    }
    *(double *)field(cfg, v->off) = d;
    return 0;
  }
  case T_DURATION: {
    int64_t ns;
    if(parse_duration_ns(s, &ns) != 0)
      return fail_value(l, i, "expected a duration like 15s, 1m30s or 500ms");
    if((v->flags & F_POSITIVE) && ns <= 0)
      return fail_value(l, i, "expected a duration greater than 0, like 15s");
    if(ns < 0)
      return fail_value(l, i, "expected a duration of 0 or more, like 5m");
    /* Round up so that a positive duration never becomes 0 ms. */
    *(int64_t *)field(cfg, v->off) = ns / 1000000 + (ns % 1000000 != 0);
    return 0;
  }
  case T_HOSTPORT: {
    char *host = NULL;
    int port = 0;
    if(parse_hostport(s, &host, &port) != 0)
      return fail_value(l, i, "expected host:port or [IPv6]:port, without scheme, "
                              "with a port from 1 to 65535");
    free(*str_field(cfg, v->off));
    *str_field(cfg, v->off) = m3s_xstrdup(s);
    free(*str_field(cfg, v->aux_off));
    *str_field(cfg, v->aux_off) = host;
    *(int *)field(cfg, v->aux2_off) = port;
    return 0;
  }
  }
  return fail_value(l, i, "internal error: unknown type");
}

/* ---- stage 3: per-variable checks ---- */

static int check_fwname(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  /* The original prefixes "m3s"; Redis keys of running clusters depend on it. */
  *str_field(l->cfg, v->aux_off) = concat("m3s", *str_field(l->cfg, v->off));
  return 0;
}

static int check_loglevel(struct load *l, size_t i, char *why, size_t whylen)
{
  if(m3s_log_parse_level(*str_field(l->cfg, vars[i].off), &l->cfg->log_level) != 0) {
    snprintf(why, whylen, "expected one of debug, info, warn, error "
                          "(also trace, warning, fatal, panic)");
    return -EINVAL;
  }
  return 0;
}

static int check_domain(struct load *l, size_t i, char *why, size_t whylen)
{
  char **d = str_field(l->cfg, vars[i].off);

  if((*d)[0] != '.') {
    char *n = concat(".", *d);
    free(*d);
    *d = n;
  }
  return 0;
}

static int check_constraint(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  const char *s = *str_field(l->cfg, v->off);
  const char *colon = strchr(s, ':');
  char *host;

  if(s[0] == '\0') {
    *str_field(l->cfg, v->aux_off) = m3s_xstrdup("");
    return 0;
  }
  /* Only hostname constraints exist; the original silently ignored other
   * types and everything after a second ':'. */
  if(!colon || (size_t)(colon - s) != strlen("hostname") ||
     strncasecmp(s, "hostname", strlen("hostname")) != 0 || colon[1] == '\0' ||
     strpbrk(colon + 1, ": \t\r\n")) {
    snprintf(why, whylen, "expected hostname:<agent hostname>");
    return -EINVAL;
  }
  host = m3s_xstrdup(colon + 1);
  for(char *c = host; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  *str_field(l->cfg, v->aux_off) = host;
  return 0;
}

static void kvlist_free(m3s_kvlist_t *kl)
{
  for(size_t k = 0; k < kl->n; k++) {
    free(kl->items[k].key);
    free(kl->items[k].value);
  }
  free(kl->items);
  kl->items = NULL;
  kl->n = 0;
}

/* KEY=VALUE items separated by the delimiter variable named in aux2_off. The
 * original crashed on an item without '=' (node env) or dropped it (docker
 * parameters); both now stop the start. */
static int check_kvlist(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  const char *s = *str_field(l->cfg, v->off);
  const char *delim = *str_field(l->cfg, v->aux2_off);
  size_t dl = strlen(delim);
  m3s_kvlist_t *kl = field(l->cfg, v->aux_off);
  size_t cap = 0;

  while(*s) {
    const char *next = dl ? strstr(s, delim) : NULL;
    size_t len = next ? (size_t)(next - s) : strlen(s);
    const char *eq = memchr(s, '=', len);

    if(len > 0) {
      if(!eq || eq == s) {
        char item[80], d[20];
        size_t show = len < 60 ? len : 60;
        char tmp[61];
        memcpy(tmp, s, show);
        tmp[show] = '\0';
        escape(item, sizeof(item), tmp, 60);
        escape(d, sizeof(d), delim, 10);
        snprintf(why, whylen, "expected KEY=VALUE items separated by \"%s\", but "
                 "item \"%s%s\" %s", d, item, show < len ? "..." : "",
                 eq ? "has an empty KEY" : "has no '='");
        return -EINVAL;
      }
      if(kl->n == cap) {
        cap = cap ? cap * 2 : 4;
        kl->items = m3s_xrealloc(kl->items, cap * sizeof(*kl->items));
      }
      m3s_kv_t *kv = &kl->items[kl->n++];
      kv->key = m3s_xmalloc((size_t)(eq - s) + 1);
      memcpy(kv->key, s, (size_t)(eq - s));
      kv->key[eq - s] = '\0';
      kv->value = m3s_xmalloc(len - (size_t)(eq - s));
      memcpy(kv->value, eq + 1, len - (size_t)(eq - s) - 1);
      kv->value[len - (size_t)(eq - s) - 1] = '\0';
    }
    if(!next)
      break;
    s = next + dl;
  }
  return 0;
}

/* Mesos labels: [{"key":"k","value":"v"}, ...]; "value" may be omitted. */
static int check_labels(struct load *l, size_t i, char *why, size_t whylen)
{
  const char *s = *str_field(l->cfg, vars[i].off);
  json_t *root = NULL;
  json_t *el;
  size_t k;
  int rc = 0;

  if(s[0] == '\0')
    return 0;
  root = json_loads(s, 0, NULL);  /* syntax already checked by parse_value */
  if(!json_is_array(root)) {
    snprintf(why, whylen, "expected a JSON array of {\"key\":\"...\",\"value\":\"...\"} objects");
    rc = -EINVAL;
    goto out;
  }
  json_array_foreach(root, k, el) {
    const char *mk;
    json_t *mv;
    json_t *key = json_object_get(el, "key");

    if(!json_is_object(el) || !json_is_string(key) || json_string_length(key) == 0) {
      snprintf(why, whylen, "expected a JSON array of {\"key\":\"...\",\"value\":\"...\"} "
               "objects; element %zu has no non-empty string \"key\"", k);
      rc = -EINVAL;
      goto out;
    }
    json_object_foreach(el, mk, mv) {
      if(strcmp(mk, "key") == 0)
        continue;
      if(strcmp(mk, "value") == 0 && json_is_string(mv))
        continue;
      char name[60];
      escape(name, sizeof(name), mk, 40);
      snprintf(why, whylen, "expected a JSON array of {\"key\":\"...\",\"value\":\"...\"} "
               "objects; element %zu has %s \"%s\"", k,
               strcmp(mk, "value") == 0 ? "a non-string" : "an unknown member", name);
      rc = -EINVAL;
      goto out;
    }
  }
out:
  json_decref(root);
  return rc;
}

static int b64_value(unsigned char c)
{
  if(c >= 'A' && c <= 'Z')
    return c - 'A';
  if(c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if(c >= '0' && c <= '9')
    return c - '0' + 52;
  if(c == '+' || c == '-')  /* standard and URL-safe alphabets both */
    return 62;
  if(c == '/' || c == '_')
    return 63;
  return -1;
}

/* Decodes base64 in either alphabet, with or without padding, ignoring line
 * breaks (base64 without -w0 wraps). Returns a NUL-terminated buffer or NULL
 * when the text is not base64. */
static char *b64_decode(const char *s, size_t *outlen)
{
  size_t n = strlen(s), nchars = 0, npad = 0, o = 0;
  char *out = m3s_xmalloc(n / 4 * 3 + 4);
  uint32_t acc = 0;
  int bits = 0;

  for(size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    int val;

    if(c == '\n' || c == '\r' || c == ' ' || c == '\t')
      continue;
    if(c == '=') {
      npad++;
      continue;
    }
    val = b64_value(c);
    if(val < 0 || npad > 0)  /* no data after padding */
      goto bad;
    nchars++;
    acc = (acc << 6) | (uint32_t)val;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  if(nchars == 0 || nchars % 4 == 1 || npad > 2 ||
     (npad > 0 && (nchars + npad) % 4 != 0))
    goto bad;
  out[o] = '\0';
  *outlen = o;
  return out;
bad:
  free(out);
  return NULL;
}

static int check_base64_pem(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  const char *s = *str_field(l->cfg, v->off);
  size_t len = 0;
  char *pem;

  if(s[0] == '\0') {
    *str_field(l->cfg, v->aux_off) = m3s_xstrdup("");
    *(size_t *)field(l->cfg, v->aux2_off) = 0;
    return 0;
  }
  pem = b64_decode(s, &len);
  if(!pem) {
    snprintf(why, whylen, "expected base64 (standard or URL-safe alphabet, "
                          "padding optional)");
    return -EINVAL;
  }
  *str_field(l->cfg, v->aux_off) = pem;
  *(size_t *)field(l->cfg, v->aux2_off) = len;
  return 0;
}

static bool is_http_url(const char *s)
{
  return (strncasecmp(s, "http://", 7) == 0 && s[7]) ||
         (strncasecmp(s, "https://", 8) == 0 && s[8]);
}

static int check_http_url(struct load *l, size_t i, char *why, size_t whylen)
{
  if(!is_http_url(*str_field(l->cfg, vars[i].off))) {
    snprintf(why, whylen, "expected an http:// or https:// URL");
    return -EINVAL;
  }
  return 0;
}

/* ---- stage 1: read, Vault, defaults ---- */

static char *default_hostname(void)
{
  char host[256];
  struct addrinfo hints, *res = NULL;
  char *name;

  if(gethostname(host, sizeof(host)) == -1)
    return m3s_xstrdup("unknown");
  host[sizeof(host) - 1] = '\0';
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_CANONNAME;
  if(getaddrinfo(host, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
     res->ai_canonname[0])
    name = m3s_xstrdup(res->ai_canonname);
  else
    name = m3s_xstrdup(host);
  if(res)
    freeaddrinfo(res);
  return name;
}

struct body {
  char *p;
  size_t n;
  bool too_big;
};

#define VAULT_BODY_MAX (1024 * 1024)

static size_t body_write(char *data, size_t size, size_t nmemb, void *userp)
{
  struct body *b = userp;
  size_t add = size * nmemb;

  if(b->n + add > VAULT_BODY_MAX) {
    b->too_big = true;
    return 0;  /* makes curl fail with CURLE_WRITE_ERROR */
  }
  b->p = m3s_xrealloc(b->p, b->n + add + 1);
  memcpy(b->p + b->n, data, add);
  b->n += add;
  b->p[b->n] = '\0';
  return add;
}

/* Percent-encodes everything but unreserved characters and '/', so a path
 * from the environment cannot add a query or fragment to the URL. */
static char *url_path_encode(const char *s)
{
  size_t n = strlen(s), o = 0;
  char *out = m3s_xmalloc(n * 3 + 1);

  for(size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    if(isalnum(c) || strchr("-._~/", c))
      out[o++] = (char)c;
    else {
      snprintf(out + o, 4, "%%%02X", c);
      o += 3;
    }
  }
  out[o] = '\0';
  return out;
}

static int vault_prepare(struct load *l)
{
  size_t iu = var_index("VAULT_URL"), it = var_index("VAULT_TIMEOUT");
  size_t itok = var_index("VAULT_TOKEN");
  char why[80];
  int rc;

  if(l->vault_ready)
    return 0;
  rc = parse_value(l, it);
  if(rc != 0)
    return rc;
  if(!is_http_url(l->src[iu])) {
    snprintf(why, sizeof(why), "expected an http:// or https:// URL");
    return fail_value(l, iu, why);
  }
  /* The token goes into a header line; a line break would forge headers. */
  for(const char *c = l->src[itok]; *c; c++) {
    if((unsigned char)*c < 0x20 || *c == 0x7f) {
      seterr(l, "VAULT_TOKEN contains control characters");
      return -EINVAL;
    }
  }
  l->curl = curl_easy_init();
  if(!l->curl) {
    seterr(l, "cannot create a curl handle for Vault lookups");
    return -EINVAL;
  }
  l->vault_ready = true;
  return 0;
}

/* Resolves vault://<path>:<key> (KV v2: data.data.<key> of GET
 * VAULT_URL/v1/<path>) into *out. The token is never part of a message. */
static int vault_resolve(struct load *l, size_t i, const char *literal, char **out)
{
  const char *name = vars[i].name;
  const char *at = strstr(literal, "vault://");
  const char *url = l->src[var_index("VAULT_URL")];
  const char *token = l->src[var_index("VAULT_TOKEN")];
  char *ref = NULL, *path = NULL, *enc = NULL, *full = NULL, *hdr = NULL;
  char *key, *colon;
  struct curl_slist *headers = NULL;
  struct body b = { NULL, 0, false };
  char curlerr[CURL_ERROR_SIZE];
  char eref[200], eurl[200];
  json_t *root = NULL, *val;
  long status = 0;
  size_t ul;
  CURLcode cc;
  int rc = 0;

  rc = vault_prepare(l);
  if(rc != 0)
    goto out;
  /* As the original: the marker is removed wherever it is. */
  ref = m3s_xmalloc(strlen(literal) + 1);
  memcpy(ref, literal, (size_t)(at - literal));
  memcpy(ref + (at - literal), at + strlen("vault://"),
         strlen(at + strlen("vault://")) + 1);
  escape(eref, sizeof(eref), literal, 150);
  escape(eurl, sizeof(eurl), url, 150);
  path = ref;
  while(*path == '/')
    path++;
  colon = strchr(path, ':');
  if(!colon || colon == path || colon[1] == '\0') {
    seterr(l, "%s=\"%s\": expected vault://<path>:<key>", name, eref);
    rc = -EINVAL;
    goto out;
  }
  *colon = '\0';
  key = colon + 1;

  ul = strlen(url);
  while(ul > 0 && url[ul - 1] == '/')
    ul--;
  enc = url_path_encode(path);
  full = m3s_xmalloc(ul + strlen("/v1/") + strlen(enc) + 1);
  memcpy(full, url, ul);
  memcpy(full + ul, "/v1/", 4);
  memcpy(full + ul + 4, enc, strlen(enc) + 1);
  hdr = concat("X-Vault-Token: ", token);
  headers = curl_slist_append(NULL, hdr);
  if(!headers) {
    seterr(l, "%s: vault lookup of %s failed: out of memory", name, eref);
    rc = -EINVAL;
    goto out;
  }

  curlerr[0] = '\0';
  curl_easy_reset(l->curl);
  curl_easy_setopt(l->curl, CURLOPT_URL, full);
  curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, (long)l->cfg->vault_timeout_ms);
  curl_easy_setopt(l->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)l->cfg->vault_timeout_ms);
  curl_easy_setopt(l->curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(l->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(l->curl, CURLOPT_ERRORBUFFER, curlerr);
  cc = curl_easy_perform(l->curl);
  if(cc != CURLE_OK) {
    char detail[CURL_ERROR_SIZE + 8];
    escape(detail, sizeof(detail), b.too_big ? "answer larger than 1 MiB" :
           curlerr[0] ? curlerr : curl_easy_strerror(cc), CURL_ERROR_SIZE);
    seterr(l, "%s: vault lookup of %s at %s failed: %s", name, eref, eurl, detail);
    rc = -EINVAL;
    goto out;
  }
  curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &status);
  if(status != 200) {
    seterr(l, "%s: vault lookup of %s at %s failed: HTTP %ld%s", name, eref, eurl,
           status, status == 403 ? " (permission denied: check VAULT_TOKEN)" :
           status == 404 ? " (no secret at this path)" : "");
    rc = -EINVAL;
    goto out;
  }
  root = b.p ? json_loadb(b.p, b.n, 0, NULL) : NULL;
  if(!root) {
    seterr(l, "%s: vault lookup of %s at %s failed: the answer is not JSON",
           name, eref, eurl);
    rc = -EINVAL;
    goto out;
  }
  /* json_object_get(NULL, ...) is NULL, so a missing level is a missing key. */
  val = json_object_get(json_object_get(json_object_get(root, "data"), "data"), key);
  if(!val) {
    char ekey[120];
    escape(ekey, sizeof(ekey), key, 100);
    seterr(l, "%s: vault lookup of %s at %s failed: no key \"%s\" in data.data "
           "(a KV v2 secret)", name, eref, eurl, ekey);
    rc = -EINVAL;
    goto out;
  }
  if(json_is_string(val))
    *out = m3s_xstrdup(json_string_value(val));
  else if(json_is_number(val) || json_is_boolean(val)) {
    char *text = json_dumps(val, JSON_ENCODE_ANY);
    *out = m3s_xstrdup(text ? text : "");
    free(text);
  }
  else {
    seterr(l, "%s: vault lookup of %s at %s failed: the value is not a string",
           name, eref, eurl);
    rc = -EINVAL;
    goto out;
  }
out:
  json_decref(root);
  curl_slist_free_all(headers);
  if(hdr) {
    /* The header held the token: wipe before freeing. */
    memset(hdr, 0, strlen(hdr));
    free(hdr);
  }
  free(b.p);
  free(full);
  free(enc);
  free(ref);
  return rc;
}

static void apply_default(struct load *l, size_t i)
{
  const struct var *v = &vars[i];

  if(v->def_fn)
    l->src[i] = v->def_fn();
  else if(!v->def_from)
    l->src[i] = m3s_xstrdup(v->def ? v->def : "");
}

/* Reads one variable into src[i]; vault:// references are resolved only
 * when resolve is set (never for RAW variables). */
static int read_var(struct load *l, size_t i, bool resolve)
{
  const struct var *v = &vars[i];
  const char *val = l->getenv_fn(v->name, l->ctx);
  const char *token = l->src[var_index("VAULT_TOKEN")];
  int rc;

  if(val && val[0]) {
    if(resolve && token[0] && strstr(val, "vault://")) {
      char *resolved = NULL;
      rc = vault_resolve(l, i, val, &resolved);
      if(rc != 0)
        return rc;
      l->vref[i] = m3s_xstrdup(val);
      if(resolved[0])
        l->src[i] = resolved;
      else
        free(resolved);  /* an empty secret means the default, like empty env */
    }
    else
      l->src[i] = m3s_xstrdup(val);
    l->given[i] = l->src[i] != NULL;
  }
  if(!l->src[i])
    apply_default(l, i);
  return 0;
}

static int read_all(struct load *l)
{
  int rc;

  /* RAW variables first, as they are: they include the Vault settings that
   * the second pass needs to resolve the others. */
  for(size_t i = 0; i < NVARS; i++) {
    if(vars[i].flags & F_RAW) {
      rc = read_var(l, i, false);
      if(rc != 0)
        return rc;
    }
  }
  for(size_t i = 0; i < NVARS; i++) {
    if(!(vars[i].flags & F_RAW)) {
      rc = read_var(l, i, true);
      if(rc != 0)
        return rc;
    }
  }
  /* Then defaults copied from another variable, which is final by now. */
  for(size_t i = 0; i < NVARS; i++) {
    if(l->src[i])
      continue;
    size_t from = vars[i].def_from ? var_index(vars[i].def_from) : NVARS;
    if(from == NVARS || !l->src[from]) {
      seterr(l, "%s: internal error: default refers to unknown %s", vars[i].name,
             vars[i].def_from);
      return -EINVAL;
    }
    l->src[i] = m3s_xstrdup(l->src[from]);
  }
  return 0;
}

/* ---- stage 4: checks across variables ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
  /* Never prompt on a terminal for an encrypted key: refuse it instead. */
  (void)buf; (void)size; (void)rwflag; (void)u;
  return -1;
}

static int check_tls_pair(struct load *l)
{
  m3s_config_t *cfg = l->cfg;
  size_t ic = var_index("SSL_CRT_BASE64"), ik = var_index("SSL_KEY_BASE64");
  BIO *bio = NULL;
  X509 *crt = NULL;
  EVP_PKEY *key = NULL;
  int rc = 0;

  if(!cfg->ssl_crt_base64[0] && !cfg->ssl_key_base64[0])
    return 0;
  if(!cfg->ssl_crt_base64[0] || !cfg->ssl_key_base64[0]) {
    seterr(l, "%s is set but %s is not: set both (HTTPS) or neither (HTTP)",
           cfg->ssl_crt_base64[0] ? "SSL_CRT_BASE64" : "SSL_KEY_BASE64",
           cfg->ssl_crt_base64[0] ? "SSL_KEY_BASE64" : "SSL_CRT_BASE64");
    return -EINVAL;
  }
  bio = BIO_new_mem_buf(cfg->ssl_crt_pem, (int)cfg->ssl_crt_pem_len);
  crt = bio ? PEM_read_bio_X509(bio, NULL, no_password, NULL) : NULL;
  BIO_free(bio);
  if(!crt) {
    rc = fail_value(l, ic, "decodes, but not to a PEM certificate");
    goto out;
  }
  bio = BIO_new_mem_buf(cfg->ssl_key_pem, (int)cfg->ssl_key_pem_len);
  key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
  BIO_free(bio);
  if(!key) {
    rc = fail_value(l, ik, "decodes, but not to an unencrypted PEM private key");
    goto out;
  }
  if(X509_check_private_key(crt, key) != 1) {
    rc = fail_value(l, ik, "the key does not belong to the certificate in "
                           "SSL_CRT_BASE64");
    goto out;
  }
out:
  EVP_PKEY_free(key);
  X509_free(crt);
  ERR_clear_error();  /* failed parses leave entries on this thread's queue */
  return rc;
}

static int cross_check(struct load *l)
{
  m3s_config_t *cfg = l->cfg;

  /* The original applied both datastores when DS_ETCD=true met the default
   * DS_MYSQL=true and launched a broken task. DS_ETCD=true now means etcd
   * unless DS_MYSQL=true was asked for explicitly too. */
  if(cfg->ds_etcd && cfg->ds_mysql) {
    if(l->given[var_index("DS_MYSQL")]) {
      seterr(l, "DS_ETCD=true and DS_MYSQL=true: set only one of DS_ETCD and DS_MYSQL");
      return -EINVAL;
    }
    cfg->ds_mysql = false;
  }
  if(!cfg->ds_etcd && !cfg->ds_mysql) {
    seterr(l, "DS_MYSQL=false and DS_ETCD=false: K3s needs a datastore, set one "
              "of them to true");
    return -EINVAL;
  }
  if(cfg->portrange_from >= cfg->portrange_to) {
    seterr(l, "PORTRANGE_FROM=%d and PORTRANGE_TO=%d: PORTRANGE_FROM must be lower "
              "than PORTRANGE_TO", cfg->portrange_from, cfg->portrange_to);
    return -EINVAL;
  }
  return check_tls_pair(l);
}

/* ---- API ---- */

int m3s_config_load(m3s_config_t *cfg, m3s_getenv_cb getenv_fn, void *ctx,
                    char *err, size_t errlen)
{
  struct load l;
  char why[256];
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  memset(&l, 0, sizeof(l));
  l.cfg = cfg;
  l.getenv_fn = getenv_fn;
  l.ctx = ctx;
  l.err = err;
  l.errlen = errlen;
  if(err && errlen)
    err[0] = '\0';

  rc = read_all(&l);
  if(rc != 0)
    goto out;
  for(size_t i = 0; i < NVARS; i++) {
    rc = parse_value(&l, i);
    if(rc != 0)
      goto out;
  }
  for(size_t i = 0; i < NVARS; i++) {
    if(!vars[i].check)
      continue;
    why[0] = '\0';
    rc = vars[i].check(&l, i, why, sizeof(why));
    if(rc != 0) {
      fail_value(&l, i, why);
      goto out;
    }
  }
  rc = cross_check(&l);

out:
  for(size_t i = 0; i < NVARS; i++) {
    free(l.src[i]);
    free(l.vref[i]);
  }
  if(l.curl)
    curl_easy_cleanup(l.curl);
  if(rc != 0)
    m3s_config_free(cfg);
  return rc;
}

void m3s_config_free(m3s_config_t *cfg)
{
  if(!cfg)
    return;
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    if(v->type == T_STRING || v->type == T_JSON || v->type == T_HOSTPORT)
      free(*str_field(cfg, v->off));
    switch(v->aux) {
    case AUX_NONE:
      break;
    case AUX_STR:
      free(*str_field(cfg, v->aux_off));
      break;
    case AUX_KVLIST:
      kvlist_free(field(cfg, v->aux_off));
      break;
    case AUX_PEM: {
      char *pem = *str_field(cfg, v->aux_off);
      if(pem) {
        /* May be a private key. */
        memset(pem, 0, *(size_t *)field(cfg, v->aux2_off));
        free(pem);
      }
      break;
    }
    }
  }
  memset(cfg, 0, sizeof(*cfg));
}

static const char *type_text(const struct var *v, char *buf, size_t len)
{
  switch(v->type) {
  case T_STRING:
    return "string";
  case T_BOOL:
    return "bool";
  case T_INT:
    if(v->max == INT_MAX)
      snprintf(buf, len, "integer >= %lld", v->min);
    else
      snprintf(buf, len, "integer %lld..%lld", v->min, v->max);
    return buf;
  case T_FLOAT:
    snprintf(buf, len, "number >= %g", v->fmin);
    return buf;
  case T_DURATION:
    return v->flags & F_POSITIVE ? "duration > 0" : "duration";
  case T_JSON:
    return "JSON";
  case T_HOSTPORT:
    return "host:port";
  case T_PORT:
    return "port";
  }
  return "?";
}

/* Prints text word-wrapped at 78 columns with the given indent. */
static void print_wrapped(FILE *out, const char *text, int indent)
{
  const int width = 78;
  int col = 0;

  while(*text) {
    size_t wl = strcspn(text, " ");
    if(col > 0 && col + 1 + (int)wl > width) {
      fputc('\n', out);
      col = 0;
    }
    if(col == 0) {
      fprintf(out, "%*s", indent, "");
      col = indent;
    }
    else {
      fputc(' ', out);
      col++;
    }
    fwrite(text, 1, wl, out);
    col += (int)wl;
    text += wl;
    while(*text == ' ')
      text++;
  }
  if(col > 0)
    fputc('\n', out);
}

void m3s_config_print_help(FILE *out)
{
  int group = -1;

  fprintf(out, "An unset or empty variable takes its default. Unless marked raw, a "
               "value\ncontaining vault://<path>:<key> is read from Vault when "
               "VAULT_TOKEN is set.\nBooleans: true/false, 1/0, yes/no, on/off. "
               "Durations: 15s, 1m30s, 500ms, 1.5h.\n");
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    char tbuf[64], dbuf[80];
    const char *def, *quote = "";

    if((int)v->group != group) {
      group = (int)v->group;
      fprintf(out, "\n%s:\n", group_titles[group]);
    }
    if(v->def_from) {
      snprintf(dbuf, sizeof(dbuf), "same as %s", v->def_from);
      def = dbuf;
    }
    else if(v->def_fn)
      def = v->def_text;
    else if(v->def && v->def[0]) {
      def = v->def;
      /* A default like "," or one with spaces is unreadable unquoted. */
      if(strpbrk(def, " ,;|"))
        quote = "\"";
    }
    else
      def = "empty";
    fprintf(out, "  %s  (%s%s%s; default: %s%s%s)\n", v->name,
            type_text(v, tbuf, sizeof(tbuf)), v->flags & F_SECRET ? ", secret" : "",
            v->flags & F_RAW ? ", raw" : "", quote, def, quote);
    print_wrapped(out, v->help, 6);
  }
}

/* Shortest text that reads back as the same double; whole numbers without
 * exponent (2000, not 2e+03). */
static void format_double(char *buf, size_t len, double d)
{
  if(d == floor(d) && fabs(d) < 1e15) {
    snprintf(buf, len, "%.0f", d);
    return;
  }
  for(int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, d);
    if(strtod(buf, NULL) == d)
      return;
  }
}

/* Milliseconds in Go duration syntax (1h30m, 1m30.5s, 500ms), so the output
 * of --print-config can be fed back as environment. */
static void format_duration(char *buf, size_t len, int64_t ms)
{
  int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
  size_t o = 0;

  buf[0] = '\0';
  if(ms < 1000) {
    snprintf(buf, len, "%" PRId64 "ms", ms);
    return;
  }
  if(h)
    o += (size_t)snprintf(buf + o, len - o, "%" PRId64 "h", h);
  if(m && o < len)
    o += (size_t)snprintf(buf + o, len - o, "%" PRId64 "m", m);
  if((s || r) && o < len) {
    if(r) {
      char frac[8];
      snprintf(frac, sizeof(frac), "%03" PRId64, r);
      for(size_t k = strlen(frac); k > 0 && frac[k - 1] == '0'; k--)
        frac[k - 1] = '\0';
      snprintf(buf + o, len - o, "%" PRId64 ".%ss", s, frac);
    }
    else
      snprintf(buf + o, len - o, "%" PRId64 "s", s);
  }
}

/* A value on one line: control characters escaped like in C. */
static void print_escaped(FILE *out, const char *s)
{
  for(; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if(c == '\n')
      fputs("\\n", out);
    else if(c == '\t')
      fputs("\\t", out);
    else if(c == '\r')
      fputs("\\r", out);
    else if(c < 0x20 || c == 0x7f)
      fprintf(out, "\\x%02x", c);
    else
      fputc(c, out);
  }
}

void m3s_config_print(const m3s_config_t *cfg, FILE *out)
{
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    char buf[64];

    fprintf(out, "%s=", v->name);
    switch(v->type) {
    case T_STRING:
    case T_JSON:
    case T_HOSTPORT: {
      const char *s = *str_field(cfg, v->off);
      if(!s)
        s = "";
      if((v->flags & F_SECRET) && s[0])
        fputs("***", out);
      else if((v->flags & F_ABBREV) && strlen(s) > 24) {
        char head[17];
        memcpy(head, s, 16);
        head[16] = '\0';
        print_escaped(out, head);
        fprintf(out, "...(%zu chars)", strlen(s));
      }
      else
        print_escaped(out, s);
      break;
    }
    case T_BOOL:
      fputs(*(bool *)field(cfg, v->off) ? "true" : "false", out);
      break;
    case T_INT:
    case T_PORT:
      fprintf(out, "%d", *(int *)field(cfg, v->off));
      break;
    case T_FLOAT:
      format_double(buf, sizeof(buf), *(double *)field(cfg, v->off));
      fputs(buf, out);
      break;
    case T_DURATION:
      format_duration(buf, sizeof(buf), *(int64_t *)field(cfg, v->off));
      fputs(buf, out);
      break;
    }
    fputc('\n', out);
  }
}

size_t m3s_config_secrets(const m3s_config_t *cfg, const char **out, size_t max)
{
  size_t n = 0;

  for(size_t i = 0; i < NVARS && n < max; i++) {
    const struct var *v = &vars[i];
    if(!(v->flags & F_SECRET) || v->type != T_STRING)
      continue;
    const char *s = *str_field(cfg, v->off);
    if(s && s[0])
      out[n++] = s;
  }
  /* The decoded key is as secret as its base64 form. */
  if(n < max && cfg->ssl_key_pem && cfg->ssl_key_pem[0])
    out[n++] = cfg->ssl_key_pem;
  return n;
}
