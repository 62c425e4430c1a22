/* The lean task record decoder for loads (see m3s/records.h).
 *
 * DESIGN
 * A record of the Go version is mostly fields we do not model (uris,
 * environment, MesosAgent, ...), and a load only keeps them as text. So one
 * pass over the record splits its top-level members: the modelled ones
 * (and the unmodelled ones at their zero value, which the full decoder
 * drops) are copied into a small JSON object that m3s_task_record_from_json
 * decodes, so every type check, error and leftover rule is the full
 * decoder's own; the others are copied as they are, whitespace removed,
 * into the extra text. No tree is built for them.
 *
 * Whatever the pass is not sure to treat exactly like jansson is left to
 * the full decoder (m3s_task_record_from_json + json_dumps): bytes outside
 * ASCII, \u escapes, escapes in a member name, numbers that may overflow,
 * deep nesting, a repeated top-level member, or anything the full decoder
 * refuses (its error is the answer). Results are the same either way; the
 * unit tests compare both.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/records.h"
#include "m3s/xalloc.h"

#define MAX_DEPTH 64
#define MAX_MEMBERS 64
#define MAX_INTEGER 18   /* digits: a longer integer may overflow jansson's int64 */
#define MAX_REAL 300     /* characters: a real without exponent cannot overflow below that */

/* Top-level members the small object gets: what the full decoder takes. */
static const char *const modelled[] = {
  "TaskID", "task_name", "State", "StateTime", "Agent", "hostname", "container_image",
  "Restart", "CPU", "CPULimit", "Memory", "MemoryLimit", "Disk", "Instances",
  "EnableHealthCheck", "port_mappings", "discovery", "networkinfo", NULL
};

typedef struct buf {
  char *p;
  size_t n, cap;
} buf_t;

static void put(buf_t *b, const char *s, size_t n)
{
  if(b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = m3s_xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

/* ---- one pass over the text: NULL when unsure or invalid ------------------ */

typedef struct scan {
  const unsigned char *p, *end;
} scan_t;

static void ws(scan_t *s)
{
  while(s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

/* A string at s->p (the quote); *esc tells whether it holds a backslash. */
static bool string(scan_t *s, bool *esc)
{
  *esc = false;
  s->p++;
  while(s->p < s->end) {
    unsigned char c = *s->p++;
    if(c == '"')
      return true;
    if(c < 0x20 || c >= 0x80)
      return false;
    if(c == '\\') {
      *esc = true;
      if(s->p >= s->end || !strchr("\"\\/bfnrt", *s->p) || *s->p == 0)
        return false; /* \u and bad escapes: the full decoder decides */
      s->p++;
    }
  }
  return false;
}

static bool number(scan_t *s)
{
  const unsigned char *start = s->p;
  if(s->p < s->end && *s->p == '-')
    s->p++;
  if(s->p >= s->end || *s->p < '0' || *s->p > '9')
    return false;
  if(*s->p == '0')
    s->p++;
  else
    while(s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  bool real = s->p < s->end && *s->p == '.';
  if(real) {
    s->p++;
    if(s->p >= s->end || *s->p < '0' || *s->p > '9')
      return false;
    while(s->p < s->end && *s->p >= '0' && *s->p <= '9')
      s->p++;
  }
  /* Exponents may overflow a double: the full decoder's business. */
  if(s->p < s->end && (*s->p == 'e' || *s->p == 'E'))
    return false;
  return s->p - start <= (real ? MAX_REAL : MAX_INTEGER + (*start == '-'));
}

static bool literal(scan_t *s, const char *lit)
{
  size_t n = strlen(lit);
  if((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
    return false;
  s->p += n;
  return true;
}

static bool value(scan_t *s, int depth)
{
  bool esc;
  ws(s);
  if(s->p >= s->end)
    return false;
  switch(*s->p) {
  case '"':
    return string(s, &esc);
  case 't':
    return literal(s, "true");
  case 'f':
    return literal(s, "false");
  case 'n':
    return literal(s, "null");
  case '{':
  case '[': {
    bool obj = *s->p == '{';
    unsigned char close = obj ? '}' : ']';
    if(depth >= MAX_DEPTH)
      return false;
    s->p++;
    ws(s);
    if(s->p < s->end && *s->p == close) {
      s->p++;
      return true;
    }
    for(;;) {
      if(obj) {
        ws(s);
        if(s->p >= s->end || *s->p != '"' || !string(s, &esc))
          return false;
        ws(s);
        if(s->p >= s->end || *s->p++ != ':')
          return false;
      }
      if(!value(s, depth + 1))
        return false;
      ws(s);
      if(s->p >= s->end)
        return false;
      if(*s->p == ',') {
        s->p++;
        continue;
      }
      return *s->p++ == close;
    }
  }
  default:
    return number(s);
  }
}

/* Appends v[0..n) without the whitespace outside strings. */
static void put_compact(buf_t *b, const char *v, size_t n)
{
  size_t start = 0;
  bool in_str = false;
  for(size_t i = 0; i < n; i++) {
    char c = v[i];
    if(in_str) {
      if(c == '\\')
        i++;
      else if(c == '"')
        in_str = false;
    }
    else if(c == '"') {
      in_str = true;
    }
    else if(c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      put(b, v + start, i - start);
      start = i + 1;
    }
  }
  put(b, v + start, n - start);
}

/* The object member key (no escapes) of the object text v[0..n): its
 * string value without escapes as a new string; "" when the object lacks
 * it or it is no string; NULL when unsure. The last one wins, as in
 * jansson. */
static char *member_string(const char *v, size_t n, const char *key)
{
  scan_t s = { (const unsigned char *)v, (const unsigned char *)v + n };
  char *found = m3s_xstrdup("");
  bool esc;
  ws(&s);
  if(s.p >= s.end || *s.p != '{')
    return found; /* null, or not an object: no hostname */
  s.p++;
  ws(&s);
  if(s.p < s.end && *s.p == '}')
    return found;
  for(;;) {
    ws(&s);
    const unsigned char *k = s.p + 1;
    if(s.p >= s.end || *s.p != '"' || !string(&s, &esc) || esc)
      goto unsure;
    size_t klen = (size_t)(s.p - 1 - k);
    ws(&s);
    if(s.p >= s.end || *s.p++ != ':')
      goto unsure;
    ws(&s);
    const unsigned char *vs = s.p;
    if(!value(&s, 1))
      goto unsure;
    if(klen == strlen(key) && !memcmp(k, key, klen)) {
      free(found);
      if(*vs == '"') {
        scan_t t = { vs, s.p };
        if(!string(&t, &esc) || esc)
          return NULL;
        found = m3s_xmalloc((size_t)(s.p - vs) - 1);
        memcpy(found, vs + 1, (size_t)(s.p - vs) - 2);
        found[s.p - vs - 2] = '\0';
      }
      else {
        found = m3s_xstrdup("");
      }
    }
    ws(&s);
    if(s.p >= s.end)
      goto unsure;
    if(*s.p == ',') {
      s.p++;
      continue;
    }
    if(*s.p == '}')
      return found;
    goto unsure;
  }
unsure:
  free(found);
  return NULL;
}

static bool in_list(const char *const *list, const unsigned char *k, size_t n)
{
  for(; *list; list++)
    if(strlen(*list) == n && !memcmp(*list, k, n))
      return true;
  return false;
}

/* Unmodelled members at the value the full decoder drops (its
 * drop_zero_defaults) go to the small object too. */
static bool zero_default(const unsigned char *k, size_t kn, const unsigned char *v, size_t vn)
{
  static const char *const nulls[] = { "Labels", "MesosAgent", "Health", NULL };
  if(vn == 4 && !memcmp(v, "null", 4) && in_list(nulls, k, kn))
    return true;
  return kn == 10 && !memcmp(k, "PullPolicy", 10) && vn == 2 && !memcmp(v, "\"\"", 2);
}

/* Returns 0 and fills the outputs, or -1 when the full decoder must run. */
static int lean(const char *text, size_t len, m3s_task_record_t *out, char **extra,
                char **agent_host)
{
  scan_t s = { (const unsigned char *)text, (const unsigned char *)text + len };
  struct { const unsigned char *k; size_t n; } seen[MAX_MEMBERS];
  size_t nseen = 0;
  buf_t small = { 0 }, x = { 0 };
  char *host = NULL;
  bool esc;
  int rc = -1;

  /* Sized once: neither part outgrows the record (plus its braces). */
  small.cap = x.cap = len + 3;
  small.p = m3s_xmalloc(small.cap);
  x.p = m3s_xmalloc(x.cap);
  put(&small, "{", 1);
  put(&x, "{", 1);
  ws(&s);
  if(s.p >= s.end || *s.p++ != '{')
    goto out;
  ws(&s);
  if(s.p < s.end && *s.p == '}') {
    s.p++;
    goto done;
  }
  for(;;) {
    ws(&s);
    const unsigned char *k = s.p;
    if(s.p >= s.end || *s.p != '"' || !string(&s, &esc) || esc)
      goto out;
    size_t kn = (size_t)(s.p - k); /* with its quotes */
    for(size_t i = 0; i < nseen; i++)
      if(seen[i].n == kn && !memcmp(seen[i].k, k, kn))
        goto out;
    if(nseen == MAX_MEMBERS)
      goto out;
    seen[nseen].k = k;
    seen[nseen++].n = kn;
    ws(&s);
    if(s.p >= s.end || *s.p++ != ':')
      goto out;
    ws(&s);
    const unsigned char *v = s.p;
    if(!value(&s, 1))
      goto out;
    size_t vn = (size_t)(s.p - v);
    bool model = in_list(modelled, k + 1, kn - 2) || zero_default(k + 1, kn - 2, v, vn);
    buf_t *b = model ? &small : &x;
    if(b->n > 1)
      put(b, ",", 1);
    put(b, (const char *)k, kn);
    put(b, ":", 1);
    put_compact(b, (const char *)v, vn);
    if(!model && kn == 12 && !memcmp(k, "\"MesosAgent\"", 12)) {
      free(host);
      if(!(host = member_string((const char *)v, vn, "hostname")))
        goto out;
    }
    ws(&s);
    if(s.p >= s.end)
      goto out;
    if(*s.p == ',') {
      s.p++;
      continue;
    }
    if(*s.p++ != '}')
      goto out;
    break;
  }
done:
  ws(&s);
  if(s.p != s.end)
    goto out;
  put(&small, "}", 1);
  if(m3s_task_record_from_json(small.p, small.n, out, NULL, 0) != 0)
    goto out;
  /* Leftovers of the partly modelled members join the extra text. */
  if(out->extra) {
    char *left = json_dumps(out->extra, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(out->extra);
    out->extra = NULL;
    if(!left) {
      m3s_task_record_free(out);
      goto out;
    }
    if(x.n > 1)
      put(&x, ",", 1);
    put(&x, left + 1, strlen(left) - 2);
    free(left);
  }
  if(x.n > 1) {
    put(&x, "}", 1);
    *extra = m3s_xrealloc(x.p, x.n + 1); /* the text is kept: no slack */
    x.p = NULL;
  }
  *agent_host = host ? host : m3s_xstrdup("");
  host = NULL;
  rc = 0;
out:
  free(small.p);
  free(x.p);
  free(host);
  return rc;
}

int m3s_task_record_from_json_lean(const char *text, size_t len, m3s_task_record_t *out,
                                   char **extra, char **agent_host, char *err, size_t errlen)
{
  *extra = *agent_host = NULL;
  if(err && errlen)
    err[0] = '\0';
  if(text && lean(text, len, out, extra, agent_host) == 0)
    return 0;
  int rc = m3s_task_record_from_json(text, len, out, err, errlen);
  if(rc)
    return rc;
  const char *host = json_string_value(
    json_object_get(json_object_get(out->extra, "MesosAgent"), "hostname"));
  *agent_host = m3s_xstrdup(host ? host : "");
  if(json_object_size(out->extra))
    *extra = json_dumps(out->extra, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(out->extra);
  out->extra = NULL;
  return 0;
}
