/* Parsing and checking of Mesos scheduler events (see m3s/mesos-event.h).
 *
 * DESIGN
 * The record is loaded once with jansson and kept; the event struct only
 * holds borrowed pointers into it, so nothing is copied. Checks follow the
 * master's protobuf JSON (mesos-http-api.md §1.7, §3): ids are objects with
 * a string "value"; JSON null means "not set"; doubles are numbers that may
 * be integers or reals; int32 fields are integers. Only the fields this
 * daemon exposes are checked; other fields are left to their users, so a
 * newer master that adds fields (or event types: M3S_EV_UNKNOWN) does not
 * break the stream.
 *
 * Error lines say which event type and which field path, e.g.
 *   UPDATE event: update.status.task_id is missing
 * and never contain a newline, so they fit one log line.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "m3s/mesos-event.h"

static const char *const type_names[] = {
  [M3S_EV_SUBSCRIBED] = "SUBSCRIBED",
  [M3S_EV_OFFERS] = "OFFERS",
  [M3S_EV_INVERSE_OFFERS] = "INVERSE_OFFERS",
  [M3S_EV_RESCIND] = "RESCIND",
  [M3S_EV_RESCIND_INVERSE_OFFER] = "RESCIND_INVERSE_OFFER",
  [M3S_EV_UPDATE] = "UPDATE",
  [M3S_EV_UPDATE_OPERATION_STATUS] = "UPDATE_OPERATION_STATUS",
  [M3S_EV_MESSAGE] = "MESSAGE",
  [M3S_EV_FAILURE] = "FAILURE",
  [M3S_EV_ERROR] = "ERROR",
  [M3S_EV_HEARTBEAT] = "HEARTBEAT",
  [M3S_EV_UNKNOWN] = "UNKNOWN",
};

/* The member holding each type's body: the type name in lower snake case
 * (Event envelope, §3). HEARTBEAT and UNKNOWN have none. */
static const char *const body_keys[] = {
  [M3S_EV_SUBSCRIBED] = "subscribed",
  [M3S_EV_OFFERS] = "offers",
  [M3S_EV_INVERSE_OFFERS] = "inverse_offers",
  [M3S_EV_RESCIND] = "rescind",
  [M3S_EV_RESCIND_INVERSE_OFFER] = "rescind_inverse_offer",
  [M3S_EV_UPDATE] = "update",
  [M3S_EV_UPDATE_OPERATION_STATUS] = "update_operation_status",
  [M3S_EV_MESSAGE] = "message",
  [M3S_EV_FAILURE] = "failure",
  [M3S_EV_ERROR] = "error",
  [M3S_EV_HEARTBEAT] = NULL,
  [M3S_EV_UNKNOWN] = NULL,
};

const char *m3s_event_type_name(m3s_event_type_t t)
{
  if((unsigned)t > (unsigned)M3S_EV_UNKNOWN)
    return "UNKNOWN";
  return type_names[t];
}

bool m3s_task_state_terminal(const char *state)
{
  static const char *const terminal[] = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
  };

  if(!state)
    return false;
  for(size_t i = 0; i < sizeof(terminal) / sizeof(terminal[0]); i++)
    if(strcmp(state, terminal[i]) == 0)
      return true;
  return false;
}

bool m3s_task_state_live(const char *state)
{
  return state && (!strcmp(state, "TASK_STAGING") || !strcmp(state, "TASK_STARTING") ||
                   !strcmp(state, "TASK_RUNNING"));
}

void m3s_event_free(m3s_event_t *ev)
{
  json_decref(ev->root);
  memset(ev, 0, sizeof(*ev));
  ev->healthy = -1;
  ev->failure_status = -1;
}

/* ---- checking helpers ---- */

/* What a field must be. K_NUMBER accepts integers and reals (a double may be
 * written 15 or 15.0). */
enum kind { K_OBJECT, K_ARRAY, K_STRING, K_NUMBER, K_INTEGER, K_BOOL };

typedef struct pctx {
  char *err;
  size_t errlen;
  const char *tname;      /* event type for the message prefix */
} pctx_t;

static const char *kind_name(enum kind k)
{
  switch(k) {
  case K_OBJECT: return "an object";
  case K_ARRAY: return "an array";
  case K_STRING: return "a string";
  case K_NUMBER: return "a number";
  case K_INTEGER: return "an integer";
  case K_BOOL: return "a boolean";
  }
  return "?";
}

static const char *json_kind_name(const json_t *j)
{
  switch(json_typeof(j)) {
  case JSON_OBJECT: return "an object";
  case JSON_ARRAY: return "an array";
  case JSON_STRING: return "a string";
  case JSON_INTEGER: return "an integer";
  case JSON_REAL: return "a real";
  case JSON_TRUE:
  case JSON_FALSE: return "a boolean";
  case JSON_NULL: return "null";
  }
  return "?";
}

static bool is_kind(const json_t *j, enum kind k)
{
  switch(k) {
  case K_OBJECT: return json_is_object(j);
  case K_ARRAY: return json_is_array(j);
  case K_STRING: return json_is_string(j);
  case K_NUMBER: return json_is_number(j);
  case K_INTEGER: return json_is_integer(j);
  case K_BOOL: return json_is_boolean(j);
  }
  return false;
}

/* Writes "<TYPE> event: <formatted>" as one line and returns -EPROTO. Text
 * from the record (jansson's error, a type name) may hold control bytes;
 * they become '?' so the line stays one line. */
__attribute__((format(printf, 2, 3)))
static int fail(pctx_t *p, const char *fmt, ...)
{
  va_list ap;
  int n;

  if(!p->err || p->errlen == 0)
    return -EPROTO;
  n = snprintf(p->err, p->errlen, "%s%s", p->tname ? p->tname : "",
               p->tname ? " event: " : "");
  if(n < 0)
    n = 0;
  if((size_t)n < p->errlen) {
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
  }
  for(char *c = p->err; *c; c++)
    if((unsigned char)*c < 0x20 || *c == 0x7f)
      *c = '?';
  return -EPROTO;
}

/* parent[key] (parent an object) when it has kind k. Absent or null:
 * NULL, and an error when required. Present with another kind: NULL and an
 * error. *rc is set to -EPROTO on error and left alone otherwise, so calls
 * can be chained and checked once. path names the field in messages. */
static json_t *get(pctx_t *p, int *rc, json_t *parent, const char *key,
                   const char *path, enum kind k, bool required)
{
  json_t *v;

  if(*rc)
    return NULL;
  v = json_object_get(parent, key);
  if(!v || json_is_null(v)) {
    if(required)
      *rc = fail(p, "%s is missing", path);
    return NULL;
  }
  if(!is_kind(v, k)) {
    *rc = fail(p, "%s is %s, expected %s", path, json_kind_name(v), kind_name(k));
    return NULL;
  }
  return v;
}

/* An id message parent[key] = {"value": "..."}. When the id is present its
 * value is required (proto2 `required string value`). A required id must be
 * non-empty (Mesos' validateID); an optional one that is empty comes back
 * NULL, as if absent. */
static const char *get_id(pctx_t *p, int *rc, json_t *parent, const char *key,
                          const char *path, bool required)
{
  char vpath[128];
  json_t *id = get(p, rc, parent, key, path, K_OBJECT, required);
  const char *s;

  if(!id)
    return NULL;
  snprintf(vpath, sizeof(vpath), "%s.value", path);
  s = json_string_value(get(p, rc, id, "value", vpath, K_STRING, true));
  if(!s)
    return NULL;
  if(s[0] == '\0') {
    if(required)
      *rc = fail(p, "%s is empty", vpath);
    return NULL;
  }
  return s;
}

static const char *get_str(pctx_t *p, int *rc, json_t *parent, const char *key,
                           const char *path, bool required)
{
  return json_string_value(get(p, rc, parent, key, path, K_STRING, required));
}

/* ---- per type ---- */

static int parse_subscribed(pctx_t *p, json_t *body, m3s_event_t *ev)
{
  int rc = 0;
  json_t *hb;

  ev->framework_id = get_id(p, &rc, body, "framework_id",
                            "subscribed.framework_id", true);
  hb = get(p, &rc, body, "heartbeat_interval_seconds",
           "subscribed.heartbeat_interval_seconds", K_NUMBER, false);
  if(rc)
    return rc;
  if(hb) {
    /* json_number_value: the master writes 15.0, a real; an integer 15
     * would be read right too. */
    ev->heartbeat_interval_s = json_number_value(hb);
    if(ev->heartbeat_interval_s < 0)
      return fail(p, "subscribed.heartbeat_interval_seconds is negative (%g)",
                  ev->heartbeat_interval_s);
  }
  return 0;
}

static int parse_offers(pctx_t *p, json_t *body, m3s_event_t *ev)
{
  int rc = 0;
  json_t *offers = get(p, &rc, body, "offers", "offers.offers", K_ARRAY, false);
  json_t *offer;
  size_t i;
  char path[160];

  if(rc)
    return rc;
  if(!offers) {
    /* Repeated fields are omitted when empty (§1.7); give the handler an
     * empty array rather than a special case. root is ours to change. */
    offers = json_array();
    if(!offers || json_object_set_new(body, "offers", offers) != 0)
      return fail(p, "out of memory");
  }

  json_array_foreach(offers, i, offer) {
    json_t *resources, *res;
    size_t j;

    if(!json_is_object(offer))
      return fail(p, "offers.offers[%zu] is %s, expected an object", i,
                  json_kind_name(offer));
    snprintf(path, sizeof(path), "offers.offers[%zu].id", i);
    get_id(p, &rc, offer, "id", path, true);
    snprintf(path, sizeof(path), "offers.offers[%zu].agent_id", i);
    get_id(p, &rc, offer, "agent_id", path, true);
    snprintf(path, sizeof(path), "offers.offers[%zu].hostname", i);
    get_str(p, &rc, offer, "hostname", path, true);
    snprintf(path, sizeof(path), "offers.offers[%zu].resources", i);
    resources = get(p, &rc, offer, "resources", path, K_ARRAY, true);
    if(rc)
      return rc;
    json_array_foreach(resources, j, res) {
      if(!json_is_object(res))
        return fail(p, "offers.offers[%zu].resources[%zu] is %s, expected an object",
                    i, j, json_kind_name(res));
      snprintf(path, sizeof(path), "offers.offers[%zu].resources[%zu].name", i, j);
      get_str(p, &rc, res, "name", path, true);
      if(rc)
        return rc;
    }
  }
  ev->offers = offers;
  return 0;
}

static int parse_rescind(pctx_t *p, json_t *body, m3s_event_t *ev)
{
  int rc = 0;

  ev->offer_id = get_id(p, &rc, body, "offer_id", "rescind.offer_id", true);
  return rc;
}

static int parse_update(pctx_t *p, json_t *body, m3s_event_t *ev)
{
  int rc = 0;
  json_t *st = get(p, &rc, body, "status", "update.status", K_OBJECT, true);
  json_t *healthy;
  const char *uuid;

  if(rc)
    return rc;
  ev->task_id = get_id(p, &rc, st, "task_id", "update.status.task_id", true);
  ev->state = get_str(p, &rc, st, "state", "update.status.state", true);
  if(!rc && ev->state[0] == '\0')
    return fail(p, "update.status.state is empty");
  ev->agent_id = get_id(p, &rc, st, "agent_id", "update.status.agent_id", false);
  /* An empty uuid cannot be acknowledged (the master wants 16 bytes, §2.8),
   * so it is treated as no uuid: the caller acks exactly when non-NULL. */
  uuid = get_str(p, &rc, st, "uuid", "update.status.uuid", false);
  ev->uuid = uuid && uuid[0] ? uuid : NULL;
  ev->reason = get_str(p, &rc, st, "reason", "update.status.reason", false);
  ev->source = get_str(p, &rc, st, "source", "update.status.source", false);
  ev->status_message = get_str(p, &rc, st, "message", "update.status.message", false);
  healthy = get(p, &rc, st, "healthy", "update.status.healthy", K_BOOL, false);
  if(rc)
    return rc;
  ev->healthy = healthy ? json_is_true(healthy) : -1;
  ev->status = st;
  return 0;
}

static int parse_failure(pctx_t *p, json_t *body, m3s_event_t *ev)
{
  int rc = 0;
  json_t *status;

  ev->failure_agent_id = get_id(p, &rc, body, "agent_id", "failure.agent_id", false);
  get_id(p, &rc, body, "executor_id", "failure.executor_id", false);
  status = get(p, &rc, body, "status", "failure.status", K_INTEGER, false);
  if(rc)
    return rc;
  if(status) {
    json_int_t v = json_integer_value(status);

    /* A waitpid status is a non-negative int; -1 is our "absent". */
    if(v < 0 || v > INT_MAX)
      return fail(p, "failure.status is out of range (%" JSON_INTEGER_FORMAT ")", v);
    ev->failure_status = (int)v;
  }
  return 0;
}

static int parse_error(pctx_t *p, json_t *body, m3s_event_t *ev)
{
  int rc = 0;

  ev->message = get_str(p, &rc, body, "message", "error.message", true);
  return rc;
}

int m3s_event_parse(const char *rec, size_t len, m3s_event_t *ev,
                     char *err, size_t errlen)
{
  pctx_t p = { err, errlen, NULL };
  json_error_t jerr;
  json_t *root = NULL, *type, *body = NULL;
  const char *tname;
  int rc = 0;

  memset(ev, 0, sizeof(*ev));
  ev->healthy = -1;
  ev->failure_status = -1;
  if(err && errlen)
    err[0] = '\0';

  /* Duplicate keys are never written by the master; refusing them keeps
   * "which one did we read" out of the question. */
  root = json_loadb(rec, len, JSON_REJECT_DUPLICATES, &jerr);
  if(!root) {
    rc = fail(&p, "event is not valid JSON (byte %d): %s", jerr.position, jerr.text);
    goto out;
  }
  if(!json_is_object(root)) {
    rc = fail(&p, "event is %s, expected an object", json_kind_name(root));
    goto out;
  }
  type = json_object_get(root, "type");
  if(!type || json_is_null(type)) {
    rc = fail(&p, "event has no type");
    goto out;
  }
  if(!json_is_string(type)) {
    rc = fail(&p, "event type is %s, expected a string", json_kind_name(type));
    goto out;
  }
  tname = json_string_value(type);
  ev->type = M3S_EV_UNKNOWN;
  for(int t = 0; t < M3S_EV_UNKNOWN; t++)
    if(strcmp(tname, type_names[t]) == 0)
      ev->type = (m3s_event_type_t)t;
  p.tname = type_names[ev->type];

  if(body_keys[ev->type]) {
    body = get(&p, &rc, root, body_keys[ev->type], body_keys[ev->type], K_OBJECT, true);
    if(rc)
      goto out;
  }

  switch(ev->type) {
  case M3S_EV_SUBSCRIBED: rc = parse_subscribed(&p, body, ev); break;
  case M3S_EV_OFFERS: rc = parse_offers(&p, body, ev); break;
  case M3S_EV_RESCIND: rc = parse_rescind(&p, body, ev); break;
  case M3S_EV_UPDATE: rc = parse_update(&p, body, ev); break;
  case M3S_EV_FAILURE: rc = parse_failure(&p, body, ev); break;
  case M3S_EV_ERROR: rc = parse_error(&p, body, ev); break;
  /* Not used by this daemon: only the body's shape is checked, so a detail
   * in them can never cost the stream. */
  case M3S_EV_INVERSE_OFFERS:
  case M3S_EV_RESCIND_INVERSE_OFFER:
  case M3S_EV_UPDATE_OPERATION_STATUS:
  case M3S_EV_MESSAGE:
  case M3S_EV_HEARTBEAT:
  case M3S_EV_UNKNOWN:
    break;
  }

out:
  if(rc) {
    json_decref(root);
    memset(ev, 0, sizeof(*ev));
    ev->healthy = -1;
    ev->failure_status = -1;
    return rc;
  }
  ev->root = root;
  return 0;
}
