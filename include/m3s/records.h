/* Redis record formats of the original M3s (behaviour spec §8): the task
 * record, the framework_config record and the key names. Pure codec, no I/O.
 *
 * Redis is shared with the Go M3s, its in-container controller and the
 * operators' tools, so field names, omission rules and number shapes follow
 * the Go encoding (§8.2, §8.4):
 *   - task record: "tagged" fields (lower case) are omitted when empty or
 *     false, "untagged" fields (Go names) are always written; enums inside
 *     Mesos objects are numbers;
 *   - framework_config: Go field names, always written.
 * Fields the structs do not model are kept in `extra` (a JSON object), so a
 * record written by the Go version survives decode + encode with the same
 * meaning. For the arrays whose items are partly modelled (port_mappings,
 * networkinfo[].ip_addresses, discovery.ports.ports) extra keeps, per item and
 * by position, the members the struct does not model (e.g. a port's
 * visibility); it holds nothing for an array whose items are fully modelled,
 * nor an always-written field at the value the encoder writes without it
 * (Labels, MesosAgent, Health null; PullPolicy "").
 *
 * Ownership: the decoders fill a caller-provided struct whose strings,
 * arrays and extra are owned by it (free with the matching _free, which
 * accepts a zeroed struct). The encoders borrow the struct and return a new
 * NUL-terminated string to be freed with free(). Small allocations abort on
 * out-of-memory (m3s/xalloc.h); the caller bounds the size of the record
 * text it hands in (the store limits value sizes).
 *
 * Threads: pure functions of their arguments, any thread may call them; a
 * struct (and its extra) must not be shared with a thread that modifies it.
 */
#ifndef M3S_RECORDS_H
#define M3S_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>

#include "m3s/config-t.h"

/* The kind of a task, from the last segment of its name ("m3s:agent"). */
typedef enum m3s_role {
  M3S_ROLE_NONE = 0,   /* empty or unrecognised task name */
  M3S_ROLE_DATASTORE,
  M3S_ROLE_SERVER,
  M3S_ROLE_AGENT,
} m3s_role_t;

/* "datastore", "server", "agent"; NULL for M3S_ROLE_NONE or out of range. */
const char *m3s_role_name(m3s_role_t role);
/* The role whose name is the last ':'-separated segment of task_name;
 * M3S_ROLE_NONE for NULL, "" or an unknown suffix. */
m3s_role_t m3s_role_from_task_name(const char *task_name);

/* Docker port mapping (port_mappings[]). */
typedef struct m3s_port_mapping {
  int host_port;
  int container_port;
  char *protocol;           /* "tcp"; "" = not written */
} m3s_port_mapping_t;

/* Discovery port (discovery.ports.ports[]). The protocol keeps the
 * original's "http"/"https"/"tcp" (§4.4). */
typedef struct m3s_discovery_port {
  int number;
  char *name;               /* "" = not written */
  char *protocol;           /* "" = not written */
} m3s_discovery_port_t;

/* Container network info reported with TASK_RUNNING (networkinfo[]). The
 * IP protocol numbers, groups and labels stay in extra. */
typedef struct m3s_network_info {
  char *name;               /* "" = not written */
  char **ip_addresses;      /* ip_addresses[].ip_address, n_ip_addresses of them */
  size_t n_ip_addresses;
} m3s_network_info_t;

/* One task record, key "<fw>:<role>:<task_id>" (§8.4). After a successful
 * decode every char * is non-NULL; the encoder treats NULL as "". */
typedef struct m3s_task_record {
  char *task_id;            /* TaskID */
  char *task_name;          /* task_name, e.g. "m3s:agent" */
  m3s_role_t role;          /* derived from task_name; not encoded */
  char *state;              /* State: "", "__NEW" or "TASK_*" */
  char *state_time;         /* StateTime, RFC 3339 as read; NULL or "" is
                               written as the zero time M3S_ZERO_TIME */
  char *agent_id;           /* Agent (Mesos agent id, known after RUNNING) */
  char *hostname;           /* hostname (container hostname) */
  char *container_image;    /* container_image */
  double cpu;               /* CPU */
  double cpu_limit;         /* CPULimit */
  double memory;            /* Memory, MB */
  double memory_limit;      /* MemoryLimit, MB */
  double disk;              /* Disk, MB */
  int instances;            /* Instances */
  m3s_port_mapping_t *port_mappings;
  size_t n_port_mappings;
  m3s_discovery_port_t *discovery_ports;
  size_t n_discovery_ports;
  m3s_network_info_t *network_infos;
  size_t n_network_infos;
  bool health;              /* EnableHealthCheck */
  char *restart;            /* Restart ("" in the original) */
  char *spec_digest;        /* spec_digest (m3s only): m3s_task_spec_digest
                               of what the task was launched with; "" =
                               unknown (not launched, or an older record) */
  json_t *extra;            /* owned object of unmodelled fields, or NULL */
} m3s_task_record_t;

/* Go's zero time.Time as written by encoding/json. */
#define M3S_ZERO_TIME "0001-01-01T00:00:00Z"

/* Parses text[0..len) (no NUL needed) into *out (zeroed first). Returns 0,
 * or -EPROTO with one line in err (no newline) naming the problem, e.g.
 * "task record: CPU is not a number"; on error *out holds nothing to free.
 * Accepts what Go's encoding/json accepts for the modelled fields (missing
 * or null = empty), rejects other types and a StateTime that is not RFC
 * 3339. */
int m3s_task_record_from_json(const char *text, size_t len,
                              m3s_task_record_t *out, char *err, size_t errlen);
/* The same decode for loading many records, cheaper in time and memory:
 * out->extra stays NULL and the unmodelled fields come back as the compact
 * JSON text of an object in *extra (NULL when there are none; free()), and
 * their MesosAgent.hostname in *agent_host ("" when absent; free()). The
 * text decodes to what out->extra would hold. Same results and errors as
 * m3s_task_record_from_json; both pointers are NULL on error. */
int m3s_task_record_from_json_lean(const char *text, size_t len,
                                   m3s_task_record_t *out, char **extra,
                                   char **agent_host, char *err, size_t errlen);
/* Unmodelled fields as many loaded records keep them: the extra text of
 * m3s_task_record_from_json_lean split into its top-level members, each
 * stored once per pool however many records hold it unchanged (the uris,
 * parameters or MesosAgent that Go records of one role or agent repeat).
 * A pool and its extras belong to one thread. */
typedef struct m3s_extra_pool m3s_extra_pool_t;
typedef struct m3s_extra m3s_extra_t;
m3s_extra_pool_t *m3s_extra_pool_new(void);
/* Frees the pool; every extra of it must have been freed before. */
void m3s_extra_pool_free(m3s_extra_pool_t *p);
/* The members of text (a compact JSON object as the lean decoder or
 * json_dumps writes it; NULL or "{}" give NULL). own (NULL = none): the
 * record's own string, its task id, which members such as environment
 * and arguments repeat; it is kept out of the pool, so those members too
 * are stored once for every record, and given back to m3s_extra_json. */
m3s_extra_t *m3s_extra_intern(m3s_extra_pool_t *p, const char *text, const char *own);
/* The object again, a new reference; NULL for NULL. own: as interned. */
json_t *m3s_extra_json(const m3s_extra_t *x, const char *own);
void m3s_extra_free(m3s_extra_t *x);    /* NULL-safe */

/* The lean decode with its extra interned in pool (own = the record's task
 * id, as m3s_extra_intern), without splitting the extra text again: the
 * loads' way. *extra is NULL when there are no unmodelled fields; on error
 * both outputs are NULL. Same results as m3s_task_record_from_json_lean
 * followed by m3s_extra_intern. The pool also remembers what it decoded
 * of earlier records (members held as they are, the last record's
 * port_mappings, discovery and networkinfo), so that the same bytes in a
 * later record are neither checked nor read again. */
int m3s_task_record_from_json_pooled(const char *text, size_t len, m3s_task_record_t *out,
                                     m3s_extra_pool_t *pool, m3s_extra_t **extra,
                                     char **agent_host, char *err, size_t errlen);

/* New compact JSON string of *r with the original's names and omission
 * rules, unmodelled fields taken from r->extra. NULL only if a number is
 * not finite (Go cannot encode those either). */
char *m3s_task_record_to_json(const m3s_task_record_t *r);
/* Frees what *r owns and zeroes it; NULL-safe. */
void m3s_task_record_free(m3s_task_record_t *r);

/* Formats ts (UTC) like Go's time.RFC3339Nano: fraction with trailing zeros
 * removed, "Z" suffix, e.g. "2024-05-01T10:20:30.5Z". Returns 0 or -ENOSPC
 * when buf (at least 36 bytes is always enough) is too small. */
int m3s_record_format_time(const struct timespec *ts, char *buf, size_t len);
/* Parses an RFC 3339 time ("Z" or ±hh:mm offset, optional fraction of up
 * to 9 digits) into *out. "" and the zero time give year 1 (tv_sec
 * -62135596800). Returns 0 or -EINVAL. */
int m3s_record_parse_time(const char *s, struct timespec *out);

/* The framework_config record "<fw>:framework_config" (§8.2): the fields
 * restored at start (§8.3) plus the resource settings the API may change.
 * Go field names are given per member. */
typedef struct m3s_fw_config_record {
  /* restored at start (§8.3) */
  int ds_max;                       /* DSMax */
  int k3s_server_max;               /* K3SServerMax */
  int k3s_agent_max;                /* K3SAgentMax */
  int ds_max_restore;               /* DSMaxRestore */
  int k3s_server_max_restore;       /* K3SServerMaxRestore */
  int k3s_agent_max_restore;        /* K3SAgentMaxRestore */
  bool k3s_disable_scheduling;      /* K3SDisableScheduling */
  char *k3s_server_hostname;        /* K3SServerHostname */
  int k3s_server_port;              /* K3SServerPort */
  char *k3s_server_url;             /* K3SServerURL */
  /* resources (MB for memory and disk) */
  double ds_cpu, ds_cpu_limit;              /* DSCPU, DSCPULimit */
  double ds_mem, ds_mem_limit;              /* DSMEM, DSMEMLimit */
  double ds_disk, ds_disk_limit;            /* DSDISK, DSDISKLimit */
  double k3s_server_cpu, k3s_server_cpu_limit;   /* K3SServerCPU, K3SServerCPULimit */
  double k3s_server_mem, k3s_server_mem_limit;   /* K3SServerMEM, K3SServerMEMLimit */
  double k3s_server_disk, k3s_server_disk_limit; /* K3SServerDISK, K3SServerDISKLimit */
  double k3s_agent_cpu, k3s_agent_cpu_limit;     /* K3SAgentCPU, K3SAgentCPULimit */
  double k3s_agent_mem, k3s_agent_mem_limit;     /* K3SAgentMEM, K3SAgentMEMLimit */
  double k3s_agent_disk, k3s_agent_disk_limit;   /* K3SAgentDISK, K3SAgentDISKLimit */
  json_t *extra;                    /* owned object of the other fields, or
                                       NULL; never holds secrets after decode */
} m3s_fw_config_record_t;

/* The framework_config fields never written (nor kept after decode) because
 * they hold secrets; NULL-terminated. See records.c for the reasons. */
extern const char *const m3s_fw_config_secret_fields[];

/* As m3s_task_record_from_json, for framework_config ("framework_config
 * record: ..." errors). Secret fields are dropped. */
int m3s_fw_config_record_from_json(const char *text, size_t len,
                                   m3s_fw_config_record_t *out,
                                   char *err, size_t errlen);
/* New compact JSON string; secrets in r->extra are not written. NULL only
 * if a number is not finite. */
char *m3s_fw_config_record_to_json(const m3s_fw_config_record_t *r);
void m3s_fw_config_record_free(m3s_fw_config_record_t *r);
/* Fills *out (zeroed first) for a first start from the configuration:
 * desired counts from DS_COUNT / K3S_*_COUNT, no restore counts (0, as
 * the original before the first shutdown), no server hostname (known once
 * the server is launched), K3SServerURL https://<fw>server<domain>:6443. */
void m3s_fw_config_record_defaults(const m3s_config_t *cfg,
                                   m3s_fw_config_record_t *out);

/* Keys (§8.2). All builders return a new string (free()), or NULL when fw
 * is NULL/empty or an argument is invalid (role NONE, empty id or name). */
char *m3s_key_framework(const char *fw);          /* <fw>:framework */
char *m3s_key_framework_config(const char *fw);   /* <fw>:framework_config */
char *m3s_key_kubernetes_config(const char *fw);  /* <fw>:kubernetes_config */
char *m3s_key_kubernetes_node(const char *fw, const char *node);
char *m3s_key_task(const char *fw, m3s_role_t role, const char *task_id);

/* Room for a task id in the actors' fixed buffers, NUL included. Ids the
 * daemon makes are 36 characters; a loaded record with a longer one is set
 * aside as unusable, so an id is never cut. */
#define M3S_TASK_ID_LEN 40

typedef enum m3s_key_kind {
  M3S_KEY_OTHER = 0,           /* not under "<fw>:" (other framework, junk ":") */
  M3S_KEY_FRAMEWORK,
  M3S_KEY_FRAMEWORK_CONFIG,
  M3S_KEY_KUBERNETES_CONFIG,
  M3S_KEY_KUBERNETES_NODE,     /* name = node name */
  M3S_KEY_TASK,                /* role and name = task id */
  M3S_KEY_CORRUPT,             /* under "<fw>:" but none of the above */
} m3s_key_kind_t;

typedef struct m3s_key_info {
  m3s_key_kind_t kind;
  m3s_role_t role;             /* M3S_KEY_TASK only, else M3S_ROLE_NONE */
  const char *name;            /* borrowed pointer into key: node name or
                                  task id; NULL for other kinds */
} m3s_key_info_t;

/* Classifies key for the framework prefix fw; *out may be NULL. Returns the
 * kind (>= 0), or -EINVAL when fw is NULL/empty or key is NULL. A task id
 * or node name is everything after the second ':' and must be non-empty. */
int m3s_key_parse(const char *fw, const char *key, m3s_key_info_t *out);

#endif
