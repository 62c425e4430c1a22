/* Redis record codecs of the original M3s (see m3s/records.h).
 *
 * DESIGN
 * Decoding loads the record once with jansson and then *takes* each modelled
 * member out of the document (read, check the type, delete). What remains
 * is, by construction, exactly the set of unmodelled fields, and becomes
 * `extra`. Arrays whose items are only partly modelled keep their items'
 * leftovers by position; leftovers that are all empty are dropped, so a
 * record built from scratch and one decoded from our own output compare
 * equal.
 *
 * Encoding walks the original's field order (a fixed list per record type)
 * and writes each field either from the struct (modelled) or from extra
 * (unmodelled), then appends any extra field the list does not know, so
 * fields added by a newer Go version are kept too. Values are deep-copied
 * out of extra: jansson reference counts must not be shared between threads
 * and the encoder must leave the struct untouched.
 *
 * Numbers: Go writes float64 without a fraction when it is integral
 * (2000, not 2000.0) and jansson tells integers and reals apart, so integral
 * doubles are written as JSON integers; both are accepted on input.
 * Go's encoder also escapes <, > and & as \u003c...; jansson does not. Both
 * are the same JSON string to every reader.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/records.h"
#include "m3s/xalloc.h"

/* ------------------------------------------------------------------ */
/* roles                                                               */

static const char *const role_names[] = {
  [M3S_ROLE_DATASTORE] = "datastore",
  [M3S_ROLE_SERVER] = "server",
  [M3S_ROLE_AGENT] = "agent",
};

const char *m3s_role_name(m3s_role_t role)
{
  if(role <= M3S_ROLE_NONE || role > M3S_ROLE_AGENT)
    return NULL;
  return role_names[role];
}

static m3s_role_t role_from_segment(const char *s, size_t n)
{
  for(int i = M3S_ROLE_DATASTORE; i <= M3S_ROLE_AGENT; i++)
    if(strlen(role_names[i]) == n && memcmp(role_names[i], s, n) == 0)
      return (m3s_role_t)i;
  return M3S_ROLE_NONE;
}

m3s_role_t m3s_role_from_task_name(const char *task_name)
{
  if(!task_name)
    return M3S_ROLE_NONE;
  const char *colon = strrchr(task_name, ':');
  const char *seg = colon ? colon + 1 : task_name;
  return role_from_segment(seg, strlen(seg));
}

/* ------------------------------------------------------------------ */
/* decoding helpers: a sticky error, so a decoder can read every member
 * and check once at the end                                           */

typedef struct dec {
  const char *what;       /* "task record" */
  char *err;
  size_t errlen;
  int rc;
} dec_t;

__attribute__((format(printf, 2, 3)))
static void fail(dec_t *d, const char *fmt, ...)
{
  if(d->rc)
    return;               /* keep the first error: it is the cause */
  d->rc = -EPROTO;
  if(!d->err || !d->errlen)
    return;
  int n = snprintf(d->err, d->errlen, "%s: ", d->what);
  if(n < 0 || (size_t)n >= d->errlen)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->err + n, d->errlen - (size_t)n, fmt, ap);
  va_end(ap);
}

/* Each take_* reads obj[key] into *dst, deletes the member and returns.
 * Missing and null mean the zero value, as for Go's decoder. `path` names
 * the enclosing object for error lines ("" at top level). */

static json_t *take_begin(dec_t *d, json_t *obj, const char *key)
{
  if(d->rc)
    return NULL;
  json_t *v = json_object_get(obj, key);
  return json_is_null(v) ? NULL : v;
}

static void take_str(dec_t *d, json_t *obj, const char *path, const char *key,
                     char **dst)
{
  json_t *v = take_begin(d, obj, key);
  if(v && !json_is_string(v)) {
    fail(d, "%s%s is not a string", path, key);
    return;
  }
  if(d->rc)
    return;
  *dst = m3s_xstrdup(v ? json_string_value(v) : "");
  json_object_del(obj, key);
}

static void take_double(dec_t *d, json_t *obj, const char *path,
                        const char *key, double *dst)
{
  json_t *v = take_begin(d, obj, key);
  if(v && !json_is_number(v)) {
    fail(d, "%s%s is not a number", path, key);
    return;
  }
  if(d->rc)
    return;
  *dst = v ? json_number_value(v) : 0.0;
  json_object_del(obj, key);
}

static void take_int(dec_t *d, json_t *obj, const char *path, const char *key,
                     int *dst)
{
  json_t *v = take_begin(d, obj, key);
  if(v && !json_is_integer(v)) {
    fail(d, "%s%s is not an integer", path, key);
    return;
  }
  if(v && (json_integer_value(v) < INT_MIN || json_integer_value(v) > INT_MAX)) {
    fail(d, "%s%s is out of range", path, key);
    return;
  }
  if(d->rc)
    return;
  *dst = v ? (int)json_integer_value(v) : 0;
  json_object_del(obj, key);
}

static void take_bool(dec_t *d, json_t *obj, const char *path, const char *key,
                      bool *dst)
{
  json_t *v = take_begin(d, obj, key);
  if(v && !json_is_boolean(v)) {
    fail(d, "%s%s is not a boolean", path, key);
    return;
  }
  if(d->rc)
    return;
  *dst = v ? json_is_true(v) : false;
  json_object_del(obj, key);
}

/* A tagged (omitempty) string inside an array item: an empty string stays
 * in the item's leftovers, so `"name":""` and a missing name both survive a
 * round trip as they were. */
static void take_opt_str(dec_t *d, json_t *obj, const char *path,
                         const char *key, char **dst)
{
  json_t *v = take_begin(d, obj, key);
  if(v && !json_is_string(v)) {
    fail(d, "%s%s is not a string", path, key);
    return;
  }
  if(d->rc)
    return;
  if(v && json_string_length(v) > 0) {
    *dst = m3s_xstrdup(json_string_value(v));
    json_object_del(obj, key);
  } else {
    *dst = m3s_xstrdup("");
  }
}

/* obj[key] as an array, or NULL when missing or null (= empty). */
static json_t *get_array(dec_t *d, json_t *obj, const char *path,
                         const char *key)
{
  json_t *v = take_begin(d, obj, key);
  if(v && !json_is_array(v)) {
    fail(d, "%s%s is not an array", path, key);
    return NULL;
  }
  return v;
}

static bool all_items_empty(json_t *arr)
{
  size_t i;
  json_t *it;
  json_array_foreach(arr, i, it)
    if(!json_is_object(it) || json_object_size(it) > 0)
      return false;
  return true;
}

/* After the modelled members of every item were taken: drop the array
 * when nothing else is left, otherwise keep the leftovers (by position). */
static void settle_array(json_t *obj, const char *key)
{
  json_t *arr = json_object_get(obj, key);
  if(json_is_null(arr) || (json_is_array(arr) && all_items_empty(arr)))
    json_object_del(obj, key);
}

static json_t *load_object(dec_t *d, const char *text, size_t len)
{
  json_error_t jerr;
  if(!text) {
    fail(d, "no text");
    return NULL;
  }
  json_t *root = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
  if(!root) {
    fail(d, "not JSON: %s at line %d column %d", jerr.text, jerr.line,
         jerr.column);
    return NULL;
  }
  if(!json_is_object(root)) {
    fail(d, "not a JSON object");
    json_decref(root);
    return NULL;
  }
  return root;
}

/* ------------------------------------------------------------------ */
/* encoding helpers                                                    */

/* Integral doubles as integers, like Go's float64 encoding; NULL for a
 * non-finite value. */
static json_t *num_json(double v)
{
  if(!isfinite(v))
    return NULL;
  if(v == floor(v) && fabs(v) < 9007199254740992.0)  /* 2^53: exact */
    return json_integer((json_int_t)v);
  return json_real(v);
}

static const char *str_or_empty(const char *s)
{
  return s ? s : "";
}

/* Sets out[key] = value (taking the reference); a NULL value marks the
 * encoding as failed. */
static void put(json_t *out, const char *key, json_t *value, bool *ok)
{
  if(!value || json_object_set_new(out, key, value) != 0)
    *ok = false;
}

/* Copies extra[key] into out when present. */
static void put_extra(json_t *out, const json_t *extra, const char *key,
                      bool *ok)
{
  json_t *v = json_object_get(extra, key);
  if(v)
    put(out, key, json_deep_copy(v), ok);
}

/* An untagged unmodelled field: from extra, else its Go zero value. */
static void put_extra_or(json_t *out, const json_t *extra, const char *key,
                         json_t *zero, bool *ok)
{
  json_t *v = json_object_get(extra, key);
  if(v) {
    json_decref(zero);
    put(out, key, json_deep_copy(v), ok);
  } else {
    put(out, key, zero, ok);
  }
}

static bool in_list(const char *const *list, const char *key)
{
  for(; *list; list++)
    if(strcmp(*list, key) == 0)
      return true;
  return false;
}

/* Appends the members of extra that are neither in `known` nor in `skip`
 * (fields of a newer Go version, in their stored order). */
static void put_rest(json_t *out, const json_t *extra,
                     const char *const *known, const char *const *skip,
                     bool *ok)
{
  const char *key;
  json_t *v;
  if(!json_is_object(extra))
    return;
  json_object_foreach((json_t *)extra, key, v) {
    if(in_list(known, key) || (skip && in_list(skip, key)))
      continue;
    put(out, key, json_deep_copy(v), ok);
  }
}

/* The item at index i of the leftovers array extra_obj[key], deep-copied,
 * or a new empty object. */
static json_t *item_base(const json_t *extra_obj, const char *key, size_t i)
{
  json_t *arr = json_object_get(extra_obj, key);
  json_t *it = json_array_get(arr, i);
  if(json_is_object(it))
    return json_deep_copy(it);
  return json_object();
}

static char *dump(json_t *out, bool ok)
{
  char *s = NULL;
  if(ok)
    s = json_dumps(out, JSON_COMPACT);
  json_decref(out);
  return s;
}

/* ------------------------------------------------------------------ */
/* times                                                               */

int m3s_record_format_time(const struct timespec *ts, char *buf, size_t len)
{
  struct tm tm;
  time_t t = ts->tv_sec;
  long ns = ts->tv_nsec;
  char frac[16] = "";

  if(!gmtime_r(&t, &tm))
    return -EINVAL;
  if(ns > 0 && ns < 1000000000L) {
    int n = snprintf(frac, sizeof(frac), ".%09ld", ns);
    /* RFC3339Nano drops trailing zeros of the fraction. */
    while(n > 1 && frac[n - 1] == '0')
      frac[--n] = '\0';
  }
  int n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d%sZ",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                   tm.tm_min, tm.tm_sec, frac);
  if(n < 0 || (size_t)n >= len)
    return -ENOSPC;
  return 0;
}

static int digits(const char *s, int n, int *out)
{
  int v = 0;
  for(int i = 0; i < n; i++) {
    if(s[i] < '0' || s[i] > '9')
      return -1;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return 0;
}

int m3s_record_parse_time(const char *s, struct timespec *out)
{
  int Y, M, D, h, m, sec, oh = 0, om = 0;
  long ns = 0;
  struct tm tm;

  if(!s || !out)
    return -EINVAL;
  if(!*s)
    s = M3S_ZERO_TIME;
  if(strlen(s) < 20 || s[4] != '-' || s[7] != '-' ||
     (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
    return -EINVAL;
  if(digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) ||
     digits(s + 11, 2, &h) || digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
    return -EINVAL;
  if(M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
    return -EINVAL;
  const char *p = s + 19;
  if(*p == '.') {
    int nd = 0;
    p++;
    while(*p >= '0' && *p <= '9') {
      if(nd == 9)
        return -EINVAL;
      ns = ns * 10 + (*p - '0');
      nd++;
      p++;
    }
    if(nd == 0)
      return -EINVAL;
    for(; nd < 9; nd++)
      ns *= 10;
  }
  int sign = 0;
  if(*p == 'Z' || *p == 'z') {
    p++;
  } else if(*p == '+' || *p == '-') {
    sign = *p == '-' ? -1 : 1;
    if(strlen(p) != 6 || p[3] != ':' || digits(p + 1, 2, &oh) ||
       digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return -EINVAL;
    p += 6;
  } else {
    return -EINVAL;
  }
  if(*p)
    return -EINVAL;

  memset(&tm, 0, sizeof(tm));
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  time_t t = timegm(&tm);
  /* timegm normalises 31 February to March: reject instead. */
  if(tm.tm_mday != D || tm.tm_mon != M - 1)
    return -EINVAL;
  out->tv_sec = t - sign * (oh * 3600 + om * 60);
  out->tv_nsec = ns;
  return 0;
}

/* ------------------------------------------------------------------ */
/* task record                                                         */

/* The Go Command struct's fields in declaration order (§8.4). */
static const char *const task_fields[] = {
  "container_image", "container_type", "task_name", "command", "hostname",
  "domain", "privileged", "network_mode", "volumes", "shell", "uris",
  "environment", "networkinfo", "port_mappings", "parameters", "arguments",
  "discovery", "executor", "linux_info",
  "Restart", "TaskID", "Memory", "MemoryLimit", "CPU", "CPULimit", "Disk",
  "Agent", "Labels", "State", "StateTime", "Instances", "PullPolicy",
  "MesosAgent", "EnableHealthCheck", "Health",
  NULL
};

void m3s_task_record_free(m3s_task_record_t *r)
{
  if(!r)
    return;
  free(r->task_id);
  free(r->task_name);
  free(r->state);
  free(r->state_time);
  free(r->agent_id);
  free(r->hostname);
  free(r->container_image);
  free(r->restart);
  free(r->spec_digest);
  for(size_t i = 0; i < r->n_port_mappings; i++)
    free(r->port_mappings[i].protocol);
  free(r->port_mappings);
  for(size_t i = 0; i < r->n_discovery_ports; i++) {
    free(r->discovery_ports[i].name);
    free(r->discovery_ports[i].protocol);
  }
  free(r->discovery_ports);
  for(size_t i = 0; i < r->n_network_infos; i++) {
    m3s_network_info_t *ni = &r->network_infos[i];
    free(ni->name);
    for(size_t j = 0; j < ni->n_ip_addresses; j++)
      free(ni->ip_addresses[j]);
    free(ni->ip_addresses);
  }
  free(r->network_infos);
  json_decref(r->extra);
  memset(r, 0, sizeof(*r));
}

static void dec_port_mappings(dec_t *d, json_t *root, m3s_task_record_t *r)
{
  json_t *arr = get_array(d, root, "", "port_mappings");
  size_t n = json_array_size(arr);
  char path[64];

  if(d->rc || n == 0) {
    if(!d->rc)
      settle_array(root, "port_mappings");
    return;
  }
  r->port_mappings = m3s_xcalloc(n, sizeof(*r->port_mappings));
  for(size_t i = 0; i < n && !d->rc; i++) {
    json_t *it = json_array_get(arr, i);
    snprintf(path, sizeof(path), "port_mappings[%zu].", i);
    if(!json_is_object(it)) {
      fail(d, "port_mappings[%zu] is not an object", i);
      break;
    }
    m3s_port_mapping_t *pm = &r->port_mappings[i];
    r->n_port_mappings = i + 1;   /* so free() sees what was filled */
    take_int(d, it, path, "host_port", &pm->host_port);
    take_int(d, it, path, "container_port", &pm->container_port);
    take_opt_str(d, it, path, "protocol", &pm->protocol);
  }
  if(!d->rc)
    settle_array(root, "port_mappings");
}

static void dec_discovery(dec_t *d, json_t *root, m3s_task_record_t *r)
{
  json_t *disc = take_begin(d, root, "discovery");
  char path[64];

  if(!disc) {
    if(!d->rc)
      json_object_del(root, "discovery");   /* a null */
    return;
  }
  if(!json_is_object(disc)) {
    fail(d, "discovery is not an object");
    return;
  }
  json_t *ports = take_begin(d, disc, "ports");
  if(ports && !json_is_object(ports)) {
    fail(d, "discovery.ports is not an object");
    return;
  }
  if(ports) {
    json_t *arr = get_array(d, ports, "discovery.ports.", "ports");
    size_t n = json_array_size(arr);
    if(n)
      r->discovery_ports = m3s_xcalloc(n, sizeof(*r->discovery_ports));
    for(size_t i = 0; i < n && !d->rc; i++) {
      json_t *it = json_array_get(arr, i);
      snprintf(path, sizeof(path), "discovery.ports.ports[%zu].", i);
      if(!json_is_object(it)) {
        fail(d, "discovery.ports.ports[%zu] is not an object", i);
        break;
      }
      m3s_discovery_port_t *dp = &r->discovery_ports[i];
      r->n_discovery_ports = i + 1;
      take_int(d, it, path, "number", &dp->number);
      take_opt_str(d, it, path, "name", &dp->name);
      take_opt_str(d, it, path, "protocol", &dp->protocol);
    }
    if(d->rc)
      return;
    settle_array(ports, "ports");
    if(json_object_size(ports) == 0)
      json_object_del(disc, "ports");
  } else if(!d->rc) {
    json_object_del(disc, "ports");         /* a null */
  }
  if(!d->rc && json_object_size(disc) == 0)
    json_object_del(root, "discovery");
}

static void dec_network_infos(dec_t *d, json_t *root, m3s_task_record_t *r)
{
  json_t *arr = get_array(d, root, "", "networkinfo");
  size_t n = json_array_size(arr);
  char path[80];

  if(d->rc || n == 0) {
    if(!d->rc)
      settle_array(root, "networkinfo");
    return;
  }
  r->network_infos = m3s_xcalloc(n, sizeof(*r->network_infos));
  for(size_t i = 0; i < n && !d->rc; i++) {
    json_t *it = json_array_get(arr, i);
    if(!json_is_object(it)) {
      fail(d, "networkinfo[%zu] is not an object", i);
      break;
    }
    m3s_network_info_t *ni = &r->network_infos[i];
    r->n_network_infos = i + 1;
    snprintf(path, sizeof(path), "networkinfo[%zu].", i);
    take_opt_str(d, it, path, "name", &ni->name);
    json_t *ips = get_array(d, it, path, "ip_addresses");
    size_t m = json_array_size(ips);
    if(m)
      ni->ip_addresses = m3s_xcalloc(m, sizeof(*ni->ip_addresses));
    for(size_t j = 0; j < m && !d->rc; j++) {
      json_t *ip = json_array_get(ips, j);
      snprintf(path, sizeof(path), "networkinfo[%zu].ip_addresses[%zu].", i, j);
      if(!json_is_object(ip)) {
        fail(d, "networkinfo[%zu].ip_addresses[%zu] is not an object", i, j);
        break;
      }
      ni->n_ip_addresses = j + 1;
      take_opt_str(d, ip, path, "ip_address", &ni->ip_addresses[j]);
    }
    if(!d->rc)
      settle_array(it, "ip_addresses");
  }
  if(!d->rc)
    settle_array(root, "networkinfo");
}

/* The always-written unmodelled fields at the value the encoder writes
 * when extra lacks them: dropping them keeps extra empty for a record that
 * holds nothing else, and the encoder writes them back identically. */
static void drop_zero_defaults(json_t *root)
{
  static const char *const nulls[] = { "Labels", "MesosAgent", "Health", NULL };
  for(const char *const *k = nulls; *k; k++)
    if(json_is_null(json_object_get(root, *k)))
      json_object_del(root, *k);
  json_t *pp = json_object_get(root, "PullPolicy");
  if(json_is_string(pp) && json_string_length(pp) == 0)
    json_object_del(root, "PullPolicy");
}

/* ---- m3s's own task record fields ------------------------------------ */

/* The digest of the spec a task was launched with (m3s/taskspec.h). Tagged
 * like the original's lower-case fields: omitted when empty. The Go version
 * does not know it and drops it when it rewrites a record, which leaves the
 * spec unknown, never wrong. A value that is not a non-empty string stays
 * in extra untouched and the digest counts as unknown. */
#define SPEC_DIGEST_FIELD "spec_digest"

static void dec_m3s_fields(json_t *root, m3s_task_record_t *r)
{
  json_t *v = json_object_get(root, SPEC_DIGEST_FIELD);

  if(json_is_string(v) && json_string_length(v) > 0) {
    r->spec_digest = m3s_xstrdup(json_string_value(v));
    json_object_del(root, SPEC_DIGEST_FIELD);
  }
  else
    r->spec_digest = m3s_xstrdup("");
}

static void enc_m3s_fields(json_t *out, const m3s_task_record_t *r, bool *ok)
{
  if(r->spec_digest && *r->spec_digest)
    put(out, SPEC_DIGEST_FIELD, json_string(r->spec_digest), ok);
}

int m3s_task_record_from_json(const char *text, size_t len,
                              m3s_task_record_t *out, char *err, size_t errlen)
{
  dec_t d = { "task record", err, errlen, 0 };
  json_t *root = NULL;
  struct timespec ts;

  memset(out, 0, sizeof(*out));
  if(err && errlen)
    err[0] = '\0';
  root = load_object(&d, text, len);
  if(!root)
    goto out;

  take_str(&d, root, "", "TaskID", &out->task_id);
  take_str(&d, root, "", "task_name", &out->task_name);
  take_str(&d, root, "", "State", &out->state);
  take_str(&d, root, "", "StateTime", &out->state_time);
  take_str(&d, root, "", "Agent", &out->agent_id);
  take_str(&d, root, "", "hostname", &out->hostname);
  take_str(&d, root, "", "container_image", &out->container_image);
  take_str(&d, root, "", "Restart", &out->restart);
  take_double(&d, root, "", "CPU", &out->cpu);
  take_double(&d, root, "", "CPULimit", &out->cpu_limit);
  take_double(&d, root, "", "Memory", &out->memory);
  take_double(&d, root, "", "MemoryLimit", &out->memory_limit);
  take_double(&d, root, "", "Disk", &out->disk);
  take_int(&d, root, "", "Instances", &out->instances);
  take_bool(&d, root, "", "EnableHealthCheck", &out->health);
  dec_port_mappings(&d, root, out);
  dec_discovery(&d, root, out);
  dec_network_infos(&d, root, out);
  if(d.rc)
    goto out;
  dec_m3s_fields(root, out);
  /* Go rejects a StateTime it cannot parse; so do we, and the
   * orchestration can then rely on m3s_record_parse_time(). */
  if(m3s_record_parse_time(out->state_time, &ts) != 0) {
    fail(&d, "StateTime \"%.40s\" is not an RFC 3339 time", out->state_time);
    goto out;
  }
  out->role = m3s_role_from_task_name(out->task_name);
  drop_zero_defaults(root);
  if(json_object_size(root) > 0) {
    out->extra = root;
    root = NULL;
  }

out:
  json_decref(root);
  if(d.rc)
    m3s_task_record_free(out);
  return d.rc;
}

static void put_tagged_str(json_t *out, const char *key, const char *s,
                           bool *ok)
{
  if(s && *s)
    put(out, key, json_string(s), ok);
}

static void enc_port_mappings(json_t *out, const m3s_task_record_t *r,
                              bool *ok)
{
  if(r->n_port_mappings == 0)
    return;
  json_t *arr = json_array();
  for(size_t i = 0; i < r->n_port_mappings; i++) {
    const m3s_port_mapping_t *pm = &r->port_mappings[i];
    json_t *it = item_base(r->extra, "port_mappings", i);
    put(it, "host_port", json_integer(pm->host_port), ok);
    put(it, "container_port", json_integer(pm->container_port), ok);
    put_tagged_str(it, "protocol", pm->protocol, ok);
    json_array_append_new(arr, it);
  }
  put(out, "port_mappings", arr, ok);
}

static void enc_network_infos(json_t *out, const m3s_task_record_t *r,
                              bool *ok)
{
  if(r->n_network_infos == 0)
    return;
  json_t *xarr = json_object_get(r->extra, "networkinfo");
  json_t *arr = json_array();
  for(size_t i = 0; i < r->n_network_infos; i++) {
    const m3s_network_info_t *ni = &r->network_infos[i];
    json_t *xit = json_array_get(xarr, i);
    json_t *it = item_base(r->extra, "networkinfo", i);
    put_tagged_str(it, "name", ni->name, ok);
    if(ni->n_ip_addresses) {
      json_t *ips = json_array();
      for(size_t j = 0; j < ni->n_ip_addresses; j++) {
        json_t *ip = item_base(xit, "ip_addresses", j);
        put_tagged_str(ip, "ip_address", ni->ip_addresses[j], ok);
        json_array_append_new(ips, ip);
      }
      put(it, "ip_addresses", ips, ok);
    }
    json_array_append_new(arr, it);
  }
  put(out, "networkinfo", arr, ok);
}

static void enc_discovery(json_t *out, const m3s_task_record_t *r, bool *ok)
{
  json_t *xdisc = json_object_get(r->extra, "discovery");
  json_t *disc = json_is_object(xdisc) ? json_deep_copy(xdisc) : json_object();

  if(r->n_discovery_ports) {
    json_t *xports = json_object_get(xdisc, "ports");
    json_t *ports = json_is_object(xports) ? json_deep_copy(xports)
                                           : json_object();
    json_t *arr = json_array();
    for(size_t i = 0; i < r->n_discovery_ports; i++) {
      const m3s_discovery_port_t *dp = &r->discovery_ports[i];
      json_t *it = item_base(xports, "ports", i);
      put(it, "number", json_integer(dp->number), ok);
      put_tagged_str(it, "name", dp->name, ok);
      put_tagged_str(it, "protocol", dp->protocol, ok);
      json_array_append_new(arr, it);
    }
    put(ports, "ports", arr, ok);
    put(disc, "ports", ports, ok);
  }
  /* Tagged: omitted when there is nothing to say. */
  if(json_object_size(disc) == 0 && !xdisc)
    json_decref(disc);
  else
    put(out, "discovery", disc, ok);
}

char *m3s_task_record_to_json(const m3s_task_record_t *r)
{
  const json_t *x = r->extra;
  json_t *out = json_object();
  bool ok = out != NULL;
  const char *st = r->state_time && *r->state_time ? r->state_time
                                                   : M3S_ZERO_TIME;

  if(!ok)
    return NULL;
  put_tagged_str(out, "container_image", r->container_image, &ok);
  put_extra(out, x, "container_type", &ok);
  put_tagged_str(out, "task_name", r->task_name, &ok);
  put_extra(out, x, "command", &ok);
  put_tagged_str(out, "hostname", r->hostname, &ok);
  put_extra(out, x, "domain", &ok);
  put_extra(out, x, "privileged", &ok);
  put_extra(out, x, "network_mode", &ok);
  put_extra(out, x, "volumes", &ok);
  put_extra(out, x, "shell", &ok);
  put_extra(out, x, "uris", &ok);
  put_extra(out, x, "environment", &ok);
  enc_network_infos(out, r, &ok);
  enc_port_mappings(out, r, &ok);
  put_extra(out, x, "parameters", &ok);
  put_extra(out, x, "arguments", &ok);
  enc_discovery(out, r, &ok);
  put_extra(out, x, "executor", &ok);
  put_extra(out, x, "linux_info", &ok);

  put(out, "Restart", json_string(str_or_empty(r->restart)), &ok);
  put(out, "TaskID", json_string(str_or_empty(r->task_id)), &ok);
  put(out, "Memory", num_json(r->memory), &ok);
  put(out, "MemoryLimit", num_json(r->memory_limit), &ok);
  put(out, "CPU", num_json(r->cpu), &ok);
  put(out, "CPULimit", num_json(r->cpu_limit), &ok);
  put(out, "Disk", num_json(r->disk), &ok);
  put(out, "Agent", json_string(str_or_empty(r->agent_id)), &ok);
  put_extra_or(out, x, "Labels", json_null(), &ok);
  put(out, "State", json_string(str_or_empty(r->state)), &ok);
  put(out, "StateTime", json_string(st), &ok);
  put(out, "Instances", json_integer(r->instances), &ok);
  put_extra_or(out, x, "PullPolicy", json_string(""), &ok);
  /* Go's exact zero shape of MesosAgent is unknown (struct or pointer);
   * null decodes without error into either, so a record we create says
   * "no agent known" that way. */
  put_extra_or(out, x, "MesosAgent", json_null(), &ok);
  put(out, "EnableHealthCheck", json_boolean(r->health), &ok);
  put_extra_or(out, x, "Health", json_null(), &ok);
  enc_m3s_fields(out, r, &ok);
  put_rest(out, x, task_fields, NULL, &ok);
  return dump(out, ok);
}

/* ------------------------------------------------------------------ */
/* framework_config record                                             */

/* Never written, dropped on decode: the original stores these in clear
 * text (§13.2) although nothing reads them back from this record (only
 * the §8.3 subset is restored; controller_bin ignores the record).
 *   Credentials      API basic-auth user and password ({Username,Password})
 *   DSMySQLPassword  datastore root/k3s password
 *   K3SToken         cluster join token
 *   RedisPassword    Redis password
 *   SSLKey           TLS private key of the API (SSLCrt is public: kept)
 *   Username, Password  Mesos credentials; they belong to <fw>:framework,
 *                    but are dropped here too should an old record have them
 *   VaultToken       Vault token, should a record have one */
const char *const m3s_fw_config_secret_fields[] = {
  "Credentials", "DSMySQLPassword", "K3SToken", "RedisPassword", "SSLKey",
  "Username", "Password", "VaultToken", NULL
};

/* The original's field order as far as §8.2 lists it. The *CPULimit and
 * *MEMLimit names are given there only as "*CPULimit, *MEMLimit"; the
 * prefixes DS, K3SServer, K3SAgent are inferred from the *DISKLimit fields
 * the doc does spell out (DSDISKLimit, K3SServerDISKLimit, ...). */
static const char *const fw_fields[] = {
  "AppName", "BootstrapURL", "Credentials", "CleanupLoopTime", "CGroupV2",
  "DSMax", "DSCPU", "DSMEM", "DSDISK", "DSDISKLimit", "DSPort", "DSEtcd",
  "DSMySQL", "DSMySQLUsername", "DSMySQLPassword", "DSMySQLSSL",
  "DockerSHMSize", "DockerMemorySwap", "DockerUlimit", "DockerRunning",
  "Domain", "DockerCNI", "EventLoopTime", "Hostname", "ImageK3S", "ImageETCD",
  "ImageMySQL", "KubeConfig", "KubernetesVersion", "K3SNodeTimeout",
  "K3SServerURL", "K3SServerMax", "K3SServerPort", "K3SServerString",
  "K3SServerHostname", "K3SServerContainerPort", "K3SServerCPU",
  "K3SServerMEM", "K3SServerDISK", "K3SServerDISKLimit", "K3SServerLabels",
  "K3SAgentMax", "K3SAgentString", "K3SAgentLabels", "K3SAgentCPU",
  "K3SAgentMEM", "K3SAgentDISK", "K3SAgentDISKLimit", "K3SAgentTCPPort",
  "K3SDocker", "K3SToken", "K3SEnableTaint", "Listen", "LogLevel",
  "M3SStatus", "Principal", "PluginsEnable", "Plugins", "ReconcileLoopTime",
  "RefuseOffers", "ReviveLoopTime", "RedisServer", "RedisPassword",
  "RedisDB", "SkipSSL", "SSLKey", "SSLCrt", "VolumeDriver",
  "VolumeK3SServer", "VolumeDS", "Version", "TimeZone", "DSMaxRestore",
  "K3SServerMaxRestore", "K3SAgentMaxRestore", "K3SDisableScheduling",
  "HostConstraintsList", "DSCPULimit", "DSMEMLimit", "K3SServerCPULimit",
  "K3SServerMEMLimit", "K3SAgentCPULimit", "K3SAgentMEMLimit",
  "EnforceMesosTaskLimits", "RestrictDiskAllocation", "EnableRegistryMirror",
  "CustomDockerRuntime",
  NULL
};

/* The modelled numbers, so decode and encode share one table. */
typedef struct fw_num {
  const char *name;
  size_t off;
  bool is_int;
} fw_num_t;

#define FW_D(n, f) { n, offsetof(m3s_fw_config_record_t, f), false }
#define FW_I(n, f) { n, offsetof(m3s_fw_config_record_t, f), true }
static const fw_num_t fw_nums[] = {
  FW_I("DSMax", ds_max),
  FW_I("K3SServerMax", k3s_server_max),
  FW_I("K3SAgentMax", k3s_agent_max),
  FW_I("DSMaxRestore", ds_max_restore),
  FW_I("K3SServerMaxRestore", k3s_server_max_restore),
  FW_I("K3SAgentMaxRestore", k3s_agent_max_restore),
  FW_I("K3SServerPort", k3s_server_port),
  FW_D("DSCPU", ds_cpu), FW_D("DSCPULimit", ds_cpu_limit),
  FW_D("DSMEM", ds_mem), FW_D("DSMEMLimit", ds_mem_limit),
  FW_D("DSDISK", ds_disk), FW_D("DSDISKLimit", ds_disk_limit),
  FW_D("K3SServerCPU", k3s_server_cpu),
  FW_D("K3SServerCPULimit", k3s_server_cpu_limit),
  FW_D("K3SServerMEM", k3s_server_mem),
  FW_D("K3SServerMEMLimit", k3s_server_mem_limit),
  FW_D("K3SServerDISK", k3s_server_disk),
  FW_D("K3SServerDISKLimit", k3s_server_disk_limit),
  FW_D("K3SAgentCPU", k3s_agent_cpu),
  FW_D("K3SAgentCPULimit", k3s_agent_cpu_limit),
  FW_D("K3SAgentMEM", k3s_agent_mem),
  FW_D("K3SAgentMEMLimit", k3s_agent_mem_limit),
  FW_D("K3SAgentDISK", k3s_agent_disk),
  FW_D("K3SAgentDISKLimit", k3s_agent_disk_limit),
};
#define N_FW_NUMS (sizeof(fw_nums) / sizeof(fw_nums[0]))

static const fw_num_t *fw_num_find(const char *name)
{
  for(size_t i = 0; i < N_FW_NUMS; i++)
    if(strcmp(fw_nums[i].name, name) == 0)
      return &fw_nums[i];
  return NULL;
}

void m3s_fw_config_record_free(m3s_fw_config_record_t *r)
{
  if(!r)
    return;
  free(r->k3s_server_hostname);
  free(r->k3s_server_url);
  json_decref(r->extra);
  memset(r, 0, sizeof(*r));
}

int m3s_fw_config_record_from_json(const char *text, size_t len,
                                   m3s_fw_config_record_t *out,
                                   char *err, size_t errlen)
{
  dec_t d = { "framework_config record", err, errlen, 0 };
  json_t *root = NULL;

  memset(out, 0, sizeof(*out));
  if(err && errlen)
    err[0] = '\0';
  root = load_object(&d, text, len);
  if(!root)
    goto out;
  for(size_t i = 0; i < N_FW_NUMS; i++) {
    char *p = (char *)out + fw_nums[i].off;
    if(fw_nums[i].is_int)
      take_int(&d, root, "", fw_nums[i].name, (int *)(void *)p);
    else
      take_double(&d, root, "", fw_nums[i].name, (double *)(void *)p);
  }
  take_bool(&d, root, "", "K3SDisableScheduling", &out->k3s_disable_scheduling);
  take_str(&d, root, "", "K3SServerHostname", &out->k3s_server_hostname);
  take_str(&d, root, "", "K3SServerURL", &out->k3s_server_url);
  if(d.rc)
    goto out;
  /* Secrets are not kept in memory longer than the parse. */
  for(const char *const *s = m3s_fw_config_secret_fields; *s; s++)
    json_object_del(root, *s);
  if(json_object_size(root) > 0) {
    out->extra = root;
    root = NULL;
  }

out:
  json_decref(root);
  if(d.rc)
    m3s_fw_config_record_free(out);
  return d.rc;
}

char *m3s_fw_config_record_to_json(const m3s_fw_config_record_t *r)
{
  const json_t *x = r->extra;
  json_t *out = json_object();
  bool ok = out != NULL;

  if(!ok)
    return NULL;
  for(const char *const *f = fw_fields; *f; f++) {
    const fw_num_t *num = fw_num_find(*f);
    const char *p = (const char *)r;
    if(in_list(m3s_fw_config_secret_fields, *f))
      continue;
    if(num && num->is_int)
      put(out, *f, json_integer(*(const int *)(const void *)(p + num->off)),
          &ok);
    else if(num)
      put(out, *f, num_json(*(const double *)(const void *)(p + num->off)),
          &ok);
    else if(strcmp(*f, "K3SDisableScheduling") == 0)
      put(out, *f, json_boolean(r->k3s_disable_scheduling), &ok);
    else if(strcmp(*f, "K3SServerHostname") == 0)
      put(out, *f, json_string(str_or_empty(r->k3s_server_hostname)), &ok);
    else if(strcmp(*f, "K3SServerURL") == 0)
      put(out, *f, json_string(str_or_empty(r->k3s_server_url)), &ok);
    else
      put_extra(out, x, *f, &ok);
  }
  put_rest(out, x, fw_fields, m3s_fw_config_secret_fields, &ok);
  return dump(out, ok);
}

static char *str_concat(const char *a, const char *b, const char *c,
                        const char *d)
{
  size_t la = strlen(a), lb = strlen(b), lc = strlen(c), ld = strlen(d);
  char *s = m3s_xmalloc(la + lb + lc + ld + 1);
  memcpy(s, a, la);
  memcpy(s + la, b, lb);
  memcpy(s + la + lb, c, lc);
  memcpy(s + la + lb + lc, d, ld);
  s[la + lb + lc + ld] = '\0';
  return s;
}

void m3s_fw_config_record_defaults(const m3s_config_t *cfg,
                                   m3s_fw_config_record_t *out)
{
  memset(out, 0, sizeof(*out));
  out->ds_max = cfg->ds_count;
  out->k3s_server_max = cfg->k3s_server_count;
  out->k3s_agent_max = cfg->k3s_agent_count;
  out->k3s_disable_scheduling = cfg->k3s_disable_scheduling;
  out->k3s_server_hostname = m3s_xstrdup("");
  out->k3s_server_port = cfg->k3s_server_port;
  /* The K3S_URL every server task gets (§4.3); the original fills it when
   * it builds the first server, we know it already. */
  out->k3s_server_url = str_concat("https://", cfg->fw, "server",
                                   cfg->domain);
  char *url = str_concat(out->k3s_server_url, ":6443", "", "");
  free(out->k3s_server_url);
  out->k3s_server_url = url;
  out->ds_cpu = cfg->ds_cpu;
  out->ds_cpu_limit = cfg->ds_cpu_limit;
  out->ds_mem = cfg->ds_mem;
  out->ds_mem_limit = cfg->ds_mem_limit;
  out->ds_disk = cfg->ds_disk;
  out->ds_disk_limit = cfg->ds_disk_limit;
  out->k3s_server_cpu = cfg->k3s_server_cpu;
  out->k3s_server_cpu_limit = cfg->k3s_server_cpu_limit;
  out->k3s_server_mem = cfg->k3s_server_mem;
  out->k3s_server_mem_limit = cfg->k3s_server_mem_limit;
  out->k3s_server_disk = cfg->k3s_server_disk;
  out->k3s_server_disk_limit = cfg->k3s_server_disk_limit;
  out->k3s_agent_cpu = cfg->k3s_agent_cpu;
  out->k3s_agent_cpu_limit = cfg->k3s_agent_cpu_limit;
  out->k3s_agent_mem = cfg->k3s_agent_mem;
  out->k3s_agent_mem_limit = cfg->k3s_agent_mem_limit;
  out->k3s_agent_disk = cfg->k3s_agent_disk;
  out->k3s_agent_disk_limit = cfg->k3s_agent_disk_limit;
}

/* ------------------------------------------------------------------ */
/* keys                                                                */

static bool nonempty(const char *s)
{
  return s && *s;
}

char *m3s_key_framework(const char *fw)
{
  return nonempty(fw) ? str_concat(fw, ":framework", "", "") : NULL;
}

char *m3s_key_framework_config(const char *fw)
{
  return nonempty(fw) ? str_concat(fw, ":framework_config", "", "") : NULL;
}

char *m3s_key_kubernetes_config(const char *fw)
{
  return nonempty(fw) ? str_concat(fw, ":kubernetes_config", "", "") : NULL;
}

char *m3s_key_kubernetes_node(const char *fw, const char *node)
{
  if(!nonempty(fw) || !nonempty(node))
    return NULL;
  return str_concat(fw, ":kubernetes:", node, "");
}

char *m3s_key_task(const char *fw, m3s_role_t role, const char *task_id)
{
  const char *rn = m3s_role_name(role);
  if(!nonempty(fw) || !rn || !nonempty(task_id))
    return NULL;
  char *head = str_concat(fw, ":", rn, ":");
  char *key = str_concat(head, task_id, "", "");
  free(head);
  return key;
}

int m3s_key_parse(const char *fw, const char *key, m3s_key_info_t *out)
{
  m3s_key_info_t info = { M3S_KEY_OTHER, M3S_ROLE_NONE, NULL };
  size_t fl;

  if(!nonempty(fw) || !key)
    return -EINVAL;
  fl = strlen(fw);
  /* The ':' after the prefix is what keeps "m3sdev:..." out of "m3s". */
  if(strncmp(key, fw, fl) != 0 || key[fl] != ':')
    goto out;
  const char *rest = key + fl + 1;
  const char *colon = strchr(rest, ':');
  size_t seg = colon ? (size_t)(colon - rest) : strlen(rest);

  info.kind = M3S_KEY_CORRUPT;
  if(!colon) {
    if(strcmp(rest, "framework") == 0)
      info.kind = M3S_KEY_FRAMEWORK;
    else if(strcmp(rest, "framework_config") == 0)
      info.kind = M3S_KEY_FRAMEWORK_CONFIG;
    else if(strcmp(rest, "kubernetes_config") == 0)
      info.kind = M3S_KEY_KUBERNETES_CONFIG;
    goto out;
  }
  if(colon[1] == '\0')
    goto out;                       /* empty id or node name */
  if(seg == strlen("kubernetes") && memcmp(rest, "kubernetes", seg) == 0) {
    info.kind = M3S_KEY_KUBERNETES_NODE;
    info.name = colon + 1;
    goto out;
  }
  m3s_role_t role = role_from_segment(rest, seg);
  if(role != M3S_ROLE_NONE) {
    info.kind = M3S_KEY_TASK;
    info.role = role;
    info.name = colon + 1;
  }

out:
  if(out)
    *out = info;
  return (int)info.kind;
}
