/* Internal to the kube actor (src/actors/kube*.c): its state and what its
 * files share. Every name here starts with kube_ (types: _t) and is used by
 * no other part of the daemon. The contract is in include/m3s/kube.h.
 *
 * Files, by what a newcomer looks for:
 *   kube.c         the actor: messages, heartbeat, the node table and the
 *                  rules it enforces on nodes (roles, records, cordon,
 *                  scaled-down deletion), status
 *   kube_client.c  the HTTP client: the curl multi handle, transfers, the
 *                  node list and watch, node mutations, backoff, rebuilding
 *                  the client when the kubeconfig or address changes
 *   kube_drain.c   drains: the drain set, pod lists, evictions
 *   kube_config.c  pure helpers: kubeconfig parsing, URLs, Node fields
 *
 * Threads: all of it runs on the actor's thread (kube_config.c: any).
 */
#ifndef M3S_ACTORS_KUBE_INT_H
#define M3S_ACTORS_KUBE_INT_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "m3s/idmap.h"
#include "m3s/kube.h"
#include "m3s/reply.h"
#include "m3s/role.h"

enum {
  T_HEARTBEAT = M3S_MSG_USER + 1, /* timer: poll kubeconfig, address, roles */
  T_RETRY,                        /* timer: next attempt after a failure */
  T_DRAIN,                        /* timer: drain work, while any task drains */
  T_SETTLED,                      /* timer: KUBE_UNCORDON_SETTLE_MS after start */
  T_LOOKOUT,                      /* timer: KUBE_LOOKOUT_MS, while agents wait */
  TAG_KUBECONFIG = 1,             /* tag of our M3S_STORE_LOAD */
};

#define KUBE_BACKOFF_MIN_MS 500
#define KUBE_BACKOFF_MAX_MS 30000
#define KUBE_CONNECT_TIMEOUT_MS 10000L
#define KUBE_LIST_TIMEOUT_MS 60000L
#define KUBE_MUTATION_TIMEOUT_MS 20000L
#define KUBE_WATCH_TIMEOUT_S 300     /* the API server ends the watch; we resume */
#define KUBE_WATCH_MIN_LIFE_MS 1000  /* a shorter watch without events is a failure */
#define KUBE_MAX_LIST_BODY (64u << 20)
#define KUBE_MAX_EVENT (16u << 20)
#define KUBE_MAX_MUTATION_BODY (4u << 20)
#define KUBE_ERR_KEEP 512
#define KUBE_MAX_MUTATIONS 4
/* While agents wait for a Ready server node, the kubeconfig (then the
 * server's address and task) are looked for this often, not once a
 * heartbeat (15 s by default): a Redis GET or two short status answers a
 * second cost nothing, and the wait ends up to a heartbeat sooner. */
#define KUBE_LOOKOUT_MS 1000
#define KUBE_ASK_POLL_MS 20
#define KUBE_ASK_TIMEOUT_MS 10000
#define KUBE_DELETE_STRIKES 2
#define KUBE_MAX_NODE_NAME 253
#define KUBE_MAX_NS 63               /* a namespace is a DNS label */
#define KUBE_MAX_TASK_ID 255
#define KUBE_DRAIN_TICK_MS 1000      /* drain cadence while any task drains */
#define KUBE_MAX_DRAIN_XFERS 4       /* pod lists and evictions in the air */
#define KUBE_UNCORDON_SETTLE_MS 10000 /* no uncordon this soon after start */

typedef enum kube_xkind {
  X_LIST, X_WATCH, X_PATCH, X_DELETE, /* nodes */
  X_PODS, X_EVICT,                    /* drains */
} kube_xkind_t;
extern const char *const kube_xnames[];

typedef struct kube kube_t;

typedef struct kube_xfer {
  kube_t *k;
  kube_xkind_t kind;
  CURL *h;
  struct curl_slist *hdrs;
  char *req;                /* request body (PATCH, eviction) */
  char node[KUBE_MAX_NODE_NAME + 1];
  char task[KUBE_MAX_TASK_ID + 1]; /* X_PODS, X_EVICT: the drain's task */
  char ns[KUBE_MAX_NS + 1];        /* X_EVICT: the pod */
  char pod[KUBE_MAX_NODE_NAME + 1];
  char *buf;                /* response body, or the watch's line buffer */
  size_t len, cap, limit;
  char errbody[KUBE_ERR_KEEP]; /* start of a non-2xx body */
  size_t errlen;
  char errbuf[CURL_ERROR_SIZE];
  char why[256];            /* set by a callback that aborted the transfer */
  bool gone;                /* the watch saw an ERROR event with code 410 */
  long status;
  int64_t started_ms;
  uint64_t events;
} kube_xfer_t;

typedef struct kube_mutation {
  kube_xkind_t kind;        /* X_PATCH or X_DELETE */
  char node[KUBE_MAX_NODE_NAME + 1];
  bool value;               /* PATCH: spec.unschedulable */
} kube_mutation_t;

typedef struct kube_node {
  char *name;               /* the key in the map */
  json_t *obj;              /* owned */
  char *task_id;            /* NULL: none */
  m3s_role_t role;          /* M3S_ROLE_SERVER or M3S_ROLE_AGENT */
  int ready;
  bool unschedulable;
  bool seen;                /* during a list */
  bool patching, deleting;  /* a mutation is queued or in flight */
  bool drain_cordoned;      /* a server node cordoned for a drain: uncordon on release */
  int strikes;              /* scaled-down observations in a row */
  bool unsaved;             /* its record waits for the store to drain */
  /* what the role was last told */
  char *told_task;
  m3s_role_t told_role;
  int told_ready;
} kube_node_t;

/* A pod a drain evicts (or waits for). */
typedef enum kube_pod_state { POD_PENDING, POD_INFLIGHT, POD_EVICTED } kube_pod_state_t;

typedef struct kube_pod {
  char ns[KUBE_MAX_NS + 1];
  char name[KUBE_MAX_NODE_NAME + 1];
  kube_pod_state_t state;
  bool seen;                /* in the last pod list */
  int64_t next_ms;          /* PENDING: not before */
  int64_t backoff_ms;
} kube_pod_t;

/* One task in the drain set (key: task). */
typedef struct kube_drain {
  char *task;
  char node[KUBE_MAX_NODE_NAME + 1]; /* "" unknown */
  long pods;                /* evictable pods at the last look; -1 unknown */
  bool drained;
  bool listing;             /* a pod list is in the air */
  int64_t next_list_ms;
  int64_t list_backoff_ms;
  kube_pod_t *pv;           /* the evictable pods of the last look */
  size_t pn, pcap;
  uint64_t evictions, refused, failed;
  char error[768];          /* "" or the latest reason */
  char error_kind[48];      /* its kind, as last logged */
} kube_drain_t;

typedef enum kube_ask { ASK_OFFERS, ASK_SERVER, ASK_AGENT, NASK } kube_ask_t;

struct kube {
  m3s_actor_t base;
  m3s_actor_t *store, *offers, *roles[4];
  CURLM *multi;
  unsigned rng;

  /* kubeconfig and address */
  bool load_out;            /* a kubeconfig load is in the air */
  char *kc_text;            /* as in Redis; NULL: none seen yet */
  m3s_kubeconfig_t kc;
  bool kc_ok;
  char kc_error[256];
  char *srv_host;           /* "" unknown */
  int srv_port;
  int disable_scheduling;   /* -1 unknown */
  char *api;                /* base URL of the API, NULL: no client */
  char *resource_version;   /* last seen; NULL: list first */

  /* transfers */
  kube_xfer_t *sync;
  kube_xfer_t *mut[KUBE_MAX_MUTATIONS];
  kube_mutation_t *mq;
  size_t mq_head, mq_n, mq_cap;
  uint64_t retry_timer;
  int64_t backoff_ms;

  /* state */
  bool connected;
  char error[512];
  char err_cat[32];         /* category of the state last logged */
  m3s_idmap_t nodes;
  uint64_t version;
  char wait[600];           /* why no K3s server node is Ready, as last logged */
  bool backlogged;          /* the store's M3S_STORE_PRESSURE */

  /* drains */
  m3s_idmap_t drains;       /* task id -> kube_drain_t */
  kube_xfer_t *dx[KUBE_MAX_DRAIN_XFERS];
  uint64_t drain_timer;
  bool settled;             /* KUBE_UNCORDON_SETTLE_MS have passed since start */

  /* requests to other actors */
  m3s_reply_t *asks[NASK];
  int64_t ask_ms[NASK];

  /* counters */
  uint64_t lists, watches, relists_gone, errors, patches, deletes, events;
  uint64_t evict_ok, evict_refused, evict_error;
};

/* kube.c */
bool kube_streq(const char *a, const char *b);
void kube_set_str(char **dst, const char *src);
bool kube_safe_name(const char *s);
void kube_set_state(kube_t *k, bool connected, const char *cat, bool failure, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));
void kube_node_upsert(kube_t *k, json_t *obj);
void kube_node_remove(kube_t *k, const char *name);
void kube_nodes_each(kube_t *k, void (*fn)(kube_t *, kube_node_t *));
void kube_want_patch(kube_t *k, kube_node_t *n);

/* kube_client.c */
kube_xfer_t *kube_xfer_new(kube_t *k, kube_xkind_t kind, const char *path, const char *node);
bool kube_xfer_start(kube_t *k, kube_xfer_t *x);
void kube_xfer_free(kube_xfer_t *x);
void kube_describe(const kube_xfer_t *x, CURLcode res, long status, const char **cat, char *buf,
                   size_t len);
int64_t kube_jitter(kube_t *k, int64_t d);
void kube_pump(kube_t *k);
void kube_process_done(kube_t *k);
void kube_drop_transfers(kube_t *k);
void kube_rebuild(kube_t *k);

/* kube_drain.c */
bool kube_node_draining(kube_t *k, const kube_node_t *n);
void kube_drain_add(kube_t *k, const char *task);
void kube_drain_release(kube_t *k, const char *task);
void kube_drain_pump(kube_t *k);
bool kube_drain_done(kube_t *k, CURL *h, CURLcode res);
void kube_drain_drop(kube_t *k);
void kube_drain_status(kube_t *k, json_t *nodes, json_t *out);
void kube_drain_free(kube_t *k);

#endif
