/* The lean task record decoder for loads (see m3s/records.h); its
 * interned extra is records_extra.c.
 *
 * DESIGN
 * A record of the Go version is mostly fields we do not model (uris,
 * environment, MesosAgent, ...), and a load only keeps them as text. So one
 * pass over the record splits its top-level members: the modelled scalars
 * (strings without escapes, numbers, booleans, null) are read straight
 * into the struct, and so are the partly modelled arrays in their usual
 * shape, their leftovers written as text by position; an array in another
 * shape (and the unmodelled members at their zero value, which the full
 * decoder drops) is copied into a small JSON object that
 * m3s_task_record_from_json decodes, so its rules are the full decoder's
 * own; the other members are copied as they are, whitespace removed, into
 * the extra text. No tree is built for them.
 *
 * Whatever the pass is not sure to treat exactly like jansson is left to
 * the full decoder (m3s_task_record_from_json + json_dumps): bytes outside
 * ASCII, \u escapes, escapes in a member name, numbers that may overflow,
 * deep nesting, a repeated top-level member, or anything the full decoder
 * refuses (its error is the answer). Results are the same either way; the
 * unit tests compare both.
 *
 * With a pool (the loads' way), an unmodelled member whose bytes are those
 * of a member the pool saw in an earlier record, checked then, is taken
 * as it is without a second check: Go records of one role or agent repeat
 * their uris, parameters and MesosAgent byte for byte. And the partly
 * modelled arrays of the last record are remembered (records_extra.c):
 * the same bytes in the next record give a copy of what they gave, not a
 * second reading.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/records.h"
#include "m3s/xalloc.h"
#include "records_int.h"

#define MAX_DEPTH 64
#define MAX_INTEGER 18   /* digits: a longer integer may overflow jansson's int64 */
#define MAX_REAL 300     /* characters: a real without exponent cannot overflow below that */

/* Top-level members the small object gets: what the full decoder takes
 * but the scalars (below). */
static const char *const modelled[] = { "port_mappings", "discovery", "networkinfo", NULL };

/* ---- one pass over the text: NULL when unsure or invalid ------------------ */

typedef struct scan {
  const unsigned char *p, *end;
  bool spaced;  /* ws() skipped something: the text is not compact */
} scan_t;

static inline void ws(scan_t *s)
{
  if(s->p < s->end && *s->p > ' ')
    return; /* compact text, as Go writes it: the usual case */
  const unsigned char *p = s->p;
  while(s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
  if(s->p != p)
    s->spaced = true;
}

/* A string at s->p (the quote); *esc tells whether it holds a backslash. */
static inline bool string(scan_t *s, bool *esc)
{
  const unsigned char *p = s->p + 1, *end = s->end;
  bool e = false;
  for(;;) {
    p = skip_plain(p, end); /* strings are most of a record */
    if(p >= end)
      return false;
    unsigned char c = *p++;
    if(c == '"')
      break;
    if(c < 0x20 || c >= 0x80)
      return false;
    /* a backslash */
    e = true;
    if(p >= end || !strchr("\"\\/bfnrt", *p) || *p == 0)
      return false; /* \u and bad escapes: the full decoder decides */
    p++;
  }
  s->p = p;
  *esc = e;
  return true;
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

/* An object member's name and its colon, at s->p (whitespace first). */
static bool member_name(scan_t *s)
{
  bool esc;
  ws(s);
  if(s->p >= s->end || *s->p != '"' || !string(s, &esc))
    return false;
  ws(s);
  return s->p < s->end && *s->p++ == ':';
}

/* One JSON value at s->p (whitespace first) whose containers open at
 * nesting depth; leaves s->p after it. A loop, not a recursion: the open
 * containers are bits of a word (1 = object), MAX_DEPTH at most. */
static bool value(scan_t *s, int depth)
{
  uint64_t objs = 0;
  int level = 0;
  bool esc;
  for(;;) {
    ws(s);
    if(s->p >= s->end)
      return false;
    unsigned char c = *s->p;
    if(c == '{' || c == '[') {
      if(depth + level >= MAX_DEPTH)
        return false;
      s->p++;
      ws(s);
      if(s->p < s->end && *s->p == (c == '{' ? '}' : ']')) {
        s->p++; /* empty: a whole value */
      }
      else {
        objs = objs << 1 | (c == '{');
        level++;
        if(c == '{' && !member_name(s))
          return false;
        continue; /* its first value */
      }
    }
    else if(c == '"') {
      if(!string(s, &esc))
        return false;
    }
    else if(c == 't' || c == 'f' || c == 'n') {
      if(!literal(s, c == 't' ? "true" : c == 'f' ? "false" : "null"))
        return false;
    }
    else if(!number(s)) {
      return false;
    }
    /* a whole value: on to the next item, or close what it ends */
    for(;;) {
      if(level == 0)
        return true;
      ws(s);
      if(s->p >= s->end)
        return false;
      bool obj = objs & 1;
      unsigned char d = *s->p++;
      if(d == ',') {
        if(obj && !member_name(s))
          return false;
        break;
      }
      if(d != (obj ? '}' : ']'))
        return false;
      objs >>= 1;
      level--;
    }
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
  scan_t s = { (const unsigned char *)v, (const unsigned char *)v + n, false };
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
        scan_t t = { vs, s.p, false };
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
    if(n && (*list)[0] == k[0] && !strncmp(*list, (const char *)k, n) && !(*list)[n])
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

/* The modelled scalars, read here straight from the text: the small
 * object then holds only the partly modelled arrays. */
typedef enum { K_STR, K_DIGEST, K_DBL, K_INT, K_BOOL } kind_t;

static const struct scalar {
  const char *name;
  kind_t kind;
  size_t off;
} scalars[] = {
  { "TaskID", K_STR, offsetof(m3s_task_record_t, task_id) },
  { "task_name", K_STR, offsetof(m3s_task_record_t, task_name) },
  { "State", K_STR, offsetof(m3s_task_record_t, state) },
  { "StateTime", K_STR, offsetof(m3s_task_record_t, state_time) },
  { "Agent", K_STR, offsetof(m3s_task_record_t, agent_id) },
  { "hostname", K_STR, offsetof(m3s_task_record_t, hostname) },
  { "container_image", K_STR, offsetof(m3s_task_record_t, container_image) },
  { "Restart", K_STR, offsetof(m3s_task_record_t, restart) },
  { "CPU", K_DBL, offsetof(m3s_task_record_t, cpu) },
  { "CPULimit", K_DBL, offsetof(m3s_task_record_t, cpu_limit) },
  { "Memory", K_DBL, offsetof(m3s_task_record_t, memory) },
  { "MemoryLimit", K_DBL, offsetof(m3s_task_record_t, memory_limit) },
  { "Disk", K_DBL, offsetof(m3s_task_record_t, disk) },
  { "Instances", K_INT, offsetof(m3s_task_record_t, instances) },
  { "EnableHealthCheck", K_BOOL, offsetof(m3s_task_record_t, health) },
  /* m3s's own spec_digest: a string like the above, but the full decoder
   * keeps anything other than a non-empty string in extra, so that case
   * is left to it. */
  { "spec_digest", K_DIGEST, offsetof(m3s_task_record_t, spec_digest) },
};
#define NSCALARS (sizeof(scalars) / sizeof(scalars[0]))

static int scalar_index(const unsigned char *k, size_t n)
{
  for(size_t i = 0; i < NSCALARS; i++)
    if(n && scalars[i].name[0] == k[0] && !strncmp(scalars[i].name, (const char *)k, n) &&
       !scalars[i].name[n])
      return (int)i;
  return -1;
}

/* Reads the value v[0..n) of scalar sc into r as the full decoder would
 * (null = the zero value); false when it must decide (wrong type,
 * escapes, an integer out of range). */
static bool read_scalar(const struct scalar *sc, const char *v, size_t n, m3s_task_record_t *r)
{
  char *field = (char *)r + sc->off;
  bool null = n == 4 && !memcmp(v, "null", 4);
  char num[MAX_REAL + 1];

  switch(sc->kind) {
  case K_DIGEST:
    if(null || n <= 2)
      return false;
    /* fall through */
  case K_STR: {
    char **dst = (char **)(void *)field;
    if(null) {
      *dst = m3s_xstrdup("");
      return true;
    }
    if(v[0] != '"' || memchr(v, '\\', n))
      return false;
    *dst = m3s_xmalloc(n - 1);
    memcpy(*dst, v + 1, n - 2);
    (*dst)[n - 2] = '\0';
    return true;
  }
  case K_BOOL:
    if(null || (n == 5 && !memcmp(v, "false", 5)))
      *(bool *)(void *)field = false;
    else if(n == 4 && !memcmp(v, "true", 4))
      *(bool *)(void *)field = true;
    else
      return false;
    return true;
  case K_DBL:
  case K_INT:
    if(null) {
      if(sc->kind == K_DBL)
        *(double *)(void *)field = 0.0;
      else
        *(int *)(void *)field = 0;
      return true;
    }
    if(v[0] != '-' && (v[0] < '0' || v[0] > '9'))
      return false;
    memcpy(num, v, n); /* the scan bounded n by MAX_REAL */
    num[n] = '\0';
    bool real = memchr(v, '.', n) != NULL;
    if(sc->kind == K_INT) {
      long long i = strtoll(num, NULL, 10);
      if(real || i < INT_MIN || i > INT_MAX)
        return false;
      *(int *)(void *)field = (int)i;
    }
    else {
      /* jansson reads an integer as an integer, then converts */
      *(double *)(void *)field = real ? strtod(num, NULL) : (double)strtoll(num, NULL, 10);
    }
    return true;
  }
  return false;
}

/* ---- the partly modelled arrays, in their usual shape ------------------ */

/* A slice of the text; for object members, k is the name with its quotes. */
typedef struct slice {
  const unsigned char *k, *v;
  size_t kn, vn;
} slice_t;

#define MAX_ITEMS 64

static bool is_null(const slice_t *m)
{
  return m->vn == 4 && !memcmp(m->v, "null", 4);
}

static bool named(const slice_t *m, const char *name)
{
  size_t n = strlen(name);
  return m->kn == n + 2 && !memcmp(m->k + 1, name, n);
}

/* Splits the object (members: with their names) or array (items) text
 * v[0..vn), already checked by value(), into out[]; the count, or -1 when
 * it is something else, holds more than MAX_ITEMS, or (objects) a name
 * with an escape or twice. */
static int split(const unsigned char *v, size_t vn, bool obj, slice_t *out)
{
  scan_t s = { v, v + vn, false };
  bool esc;
  int n = 0;
  if(vn == 0 || *s.p++ != (obj ? '{' : '['))
    return -1;
  ws(&s);
  if(*s.p == (obj ? '}' : ']'))
    return 0;
  for(;;) {
    if(n == MAX_ITEMS)
      return -1;
    slice_t *m = &out[n];
    ws(&s);
    m->k = NULL;
    m->kn = 0;
    if(obj) {
      m->k = s.p;
      if(!string(&s, &esc) || esc)
        return -1;
      m->kn = (size_t)(s.p - m->k);
      for(int i = 0; i < n; i++)
        if(out[i].kn == m->kn && !memcmp(out[i].k, m->k, m->kn))
          return -1;
      ws(&s);
      s.p++; /* the colon */
      ws(&s);
    }
    m->v = s.p;
    if(!value(&s, 1))
      return -1;
    m->vn = (size_t)(s.p - m->v);
    n++;
    ws(&s);
    if(*s.p++ != ',')
      return n;
  }
}

/* An int member as take_int reads it (null = 0). */
static bool get_int(const slice_t *m, int *out)
{
  static const struct scalar sc = { "", K_INT, 0 };
  return read_scalar(&sc, (const char *)m->v, m->vn, (m3s_task_record_t *)(void *)out);
}

/* A string member as take_opt_str takes it out of the item: only a
 * non-empty one without escapes here (an empty or null one stays in the
 * leftovers: the full decoder's business). */
static bool get_str(const slice_t *m, char **out)
{
  if(m->vn < 3 || m->v[0] != '"' || memchr(m->v, '\\', m->vn))
    return false;
  *out = m3s_xmalloc(m->vn - 1);
  memcpy(*out, m->v + 1, m->vn - 2);
  (*out)[m->vn - 2] = '\0';
  return true;
}

/* Appends a member already written as text ("name":value). */
static void put_member_text(buf_t *b, const char *t, size_t n)
{
  if(b->n && b->p[b->n - 1] != '{' && b->p[b->n - 1] != '[')
    put(b, ",", 1);
  put(b, t, n);
}

static void put_member(buf_t *b, const slice_t *m)
{
  if(b->n && b->p[b->n - 1] != '{' && b->p[b->n - 1] != '[')
    put(b, ",", 1);
  put(b, (const char *)m->k, m->kn);
  put(b, ":", 1);
  put_compact(b, (const char *)m->v, m->vn);
}

/* An array item of (up to) two int and two string members, modelled
 * whole (names NULL when unused); strings it lacks are "". */
static bool read_item(const slice_t *item, const char *i1, int *n1, const char *i2, int *n2,
                      const char *s1, char **t1, const char *s2, char **t2)
{
  slice_t f[MAX_ITEMS];
  int nf = split(item->v, item->vn, true, f);
  if(nf < 0)
    return false;
  for(int j = 0; j < nf; j++) {
    bool ok = i1 && named(&f[j], i1)   ? get_int(&f[j], n1)
            : i2 && named(&f[j], i2)   ? get_int(&f[j], n2)
            : s1 && named(&f[j], s1)   ? get_str(&f[j], t1)
            : s2 && named(&f[j], s2)   ? get_str(&f[j], t2)
                                       : false;
    if(!ok)
      return false;
  }
  if(t1 && !*t1)
    *t1 = m3s_xstrdup("");
  if(t2 && !*t2)
    *t2 = m3s_xstrdup("");
  return true;
}

/* port_mappings: items of host_port, container_port and protocol only. */
static bool fast_port_mappings(const slice_t *m, m3s_task_record_t *r)
{
  slice_t items[MAX_ITEMS];
  if(is_null(m))
    return true;
  int n = split(m->v, m->vn, false, items);
  if(n < 0)
    return false;
  if(n)
    r->port_mappings = m3s_xcalloc((size_t)n, sizeof(*r->port_mappings));
  for(int i = 0; i < n; i++) {
    m3s_port_mapping_t *pm = &r->port_mappings[i];
    r->n_port_mappings = (size_t)i + 1;
    if(!read_item(&items[i], "host_port", &pm->host_port, "container_port",
                  &pm->container_port, "protocol", &pm->protocol, NULL, NULL))
      return false;
  }
  return true;
}

/* discovery: its ports.ports items of number, name and protocol only; the
 * other members of discovery are leftovers. */
static bool fast_discovery(const slice_t *m, m3s_task_record_t *r, buf_t *left)
{
  slice_t f[MAX_ITEMS], pf[MAX_ITEMS], items[MAX_ITEMS];
  if(is_null(m))
    return true;
  int nf = split(m->v, m->vn, true, f);
  if(nf < 0)
    return false;
  size_t mark = left->n;
  bool any = false;
  for(int i = 0; i < nf; i++) {
    if(!named(&f[i], "ports")) {
      if(!any)
        put(left, left->n > 1 ? ",\"discovery\":{" : "\"discovery\":{", left->n > 1 ? 14 : 13);
      put_member(left, &f[i]);
      any = true;
      continue;
    }
    if(is_null(&f[i]))
      continue;
    int np = split(f[i].v, f[i].vn, true, pf);
    if(np < 0 || np > 1 || (np == 1 && !named(&pf[0], "ports")))
      goto fail;
    if(np == 0 || is_null(&pf[0]))
      continue;
    int n = split(pf[0].v, pf[0].vn, false, items);
    if(n < 0)
      goto fail;
    if(n)
      r->discovery_ports = m3s_xcalloc((size_t)n, sizeof(*r->discovery_ports));
    for(int j = 0; j < n; j++) {
      m3s_discovery_port_t *dp = &r->discovery_ports[j];
      r->n_discovery_ports = (size_t)j + 1;
      if(!read_item(&items[j], "number", &dp->number, NULL, NULL, "name", &dp->name,
                    "protocol", &dp->protocol))
        goto fail;
    }
  }
  if(any)
    put(left, "}", 1);
  return true;
fail:
  left->n = mark;
  left->p[mark] = '\0';
  return false;
}

/* networkinfo: items whose name and ip_addresses[].ip_address are
 * modelled; everything else in them is kept by position. */
static bool fast_network_infos(const slice_t *m, m3s_task_record_t *r, buf_t *left)
{
  slice_t items[MAX_ITEMS], f[MAX_ITEMS], ips[MAX_ITEMS], g[MAX_ITEMS];
  buf_t l = { 0 };
  bool kept = false;
  if(is_null(m))
    return true;
  int n = split(m->v, m->vn, false, items);
  if(n < 0)
    return false;
  if(n)
    r->network_infos = m3s_xcalloc((size_t)n, sizeof(*r->network_infos));
  put(&l, "\"networkinfo\":[", 15);
  for(int i = 0; i < n; i++) {
    m3s_network_info_t *ni = &r->network_infos[i];
    r->n_network_infos = (size_t)i + 1;
    int nf = split(items[i].v, items[i].vn, true, f);
    if(nf < 0)
      goto fail;
    put(&l, i ? ",{" : "{", i ? 2 : 1);
    for(int j = 0; j < nf; j++) {
      if(named(&f[j], "name")) {
        if(!get_str(&f[j], &ni->name))
          goto fail;
        continue;
      }
      if(!named(&f[j], "ip_addresses")) {
        put_member(&l, &f[j]);
        kept = true;
        continue;
      }
      if(is_null(&f[j]))
        continue;
      int nip = split(f[j].v, f[j].vn, false, ips);
      if(nip < 0)
        goto fail;
      if(nip)
        ni->ip_addresses = m3s_xcalloc((size_t)nip, sizeof(*ni->ip_addresses));
      /* the leftovers of the addresses, kept if any is not empty */
      buf_t ipl = { 0 };
      bool ipkept = false;
      put(&ipl, "\"ip_addresses\":[", 16);
      for(int k = 0; k < nip; k++) {
        ni->n_ip_addresses = (size_t)k + 1;
        int ng = split(ips[k].v, ips[k].vn, true, g);
        if(ng < 0) {
          free(ipl.p);
          goto fail;
        }
        put(&ipl, k ? ",{" : "{", k ? 2 : 1);
        for(int q = 0; q < ng; q++) {
          if(named(&g[q], "ip_address")) {
            if(!get_str(&g[q], &ni->ip_addresses[k])) {
              free(ipl.p);
              goto fail;
            }
            continue;
          }
          put_member(&ipl, &g[q]);
          ipkept = true;
        }
        put(&ipl, "}", 1);
        if(!ni->ip_addresses[k])
          ni->ip_addresses[k] = m3s_xstrdup("");
      }
      put(&ipl, "]", 1);
      if(ipkept) {
        put_member_text(&l, ipl.p, ipl.n);
        kept = true;
      }
      free(ipl.p);
    }
    put(&l, "}", 1);
    if(!ni->name)
      ni->name = m3s_xstrdup("");
  }
  put(&l, "]", 1);
  if(kept) {
    if(left->n > 1)
      put(left, ",", 1);
    put(left, l.p, l.n);
  }
  free(l.p);
  return true;
fail:
  free(l.p);
  return false;
}

/* Notes the end of the member just put in the extra text x (raw: the
 * record's own bytes; hit: the pool's member they are). */
static void note_end(ends_t *ends, const buf_t *x, bool raw, struct member *hit)
{
  ends->hit[ends->n] = hit;
  ends->raw[ends->n] = raw;
  ends->at[ends->n++] = x->n;
}

/* Returns 0 and fills the outputs, or -1 when the full decoder must run.
 * pool (NULL = none): members it has seen in earlier records are not
 * checked again (m3s__extra_seen). */
static int lean(const char *text, size_t len, m3s_task_record_t *out, char **extra,
                char **agent_host, ends_t *ends, m3s_extra_pool_t *pool)
{
  scan_t s = { (const unsigned char *)text, (const unsigned char *)text + len, false };
  struct { const unsigned char *k; size_t n; } seen[MAX_MEMBERS];
  size_t nseen = 0;
  uint64_t seen_bits = 0;
  buf_t small = { 0 }, x = { 0 };
  char *host = NULL;
  bool esc, need_small = false, have[NSCALARS] = { false };
  m3s_task_record_t sc;
  int rc = -1;
  struct timespec ts;

  memset(&sc, 0, sizeof(sc));

  /* The extra text is sized for the usual case, where it does not outgrow
   * the record; the small object is usually "{}". */
  x.cap = len + 3;
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
    /* A repeated name: only names that share a bit of this cheap summary
     * are compared. */
    uint64_t bit = 1ull << ((kn * 7 + k[1] + k[kn - 2] * 3) & 63);
    if(seen_bits & bit)
      for(size_t i = 0; i < nseen; i++)
        if(seen[i].n == kn && !memcmp(seen[i].k, k, kn))
          goto out;
    seen_bits |= bit;
    if(nseen == MAX_MEMBERS)
      goto out;
    seen[nseen].k = k;
    seen[nseen++].n = kn;
    ws(&s);
    if(s.p >= s.end || *s.p++ != ':')
      goto out;
    ws(&s);
    const unsigned char *v = s.p;
    int sci = scalar_index(k + 1, kn - 2);
    int arr = sci < 0 && in_list(modelled, k + 1, kn - 2) ? (int)k[1] : 0;
    if(pool && sci < 0 && !arr && v == k + kn + 1 && s.p < s.end && (*v == '{' || *v == '[')) {
      /* Most of a record repeats what earlier ones held (uris,
       * parameters, the agent): the same bytes need no second check. */
      size_t mn;
      const char *seen_host;
      struct member *hit = m3s__extra_seen(pool, k, (size_t)(s.end - k), kn, &mn, &seen_host);
      bool agent = kn == 12 && !memcmp(k, "\"MesosAgent\"", 12);
      if(hit && (!agent || seen_host)) {
        if(x.n > 1)
          put(&x, ",", 1);
        put(&x, (const char *)k, mn);
        if(agent) {
          free(host);
          host = m3s_xstrdup(seen_host);
          ends->agent = (int)ends->n;
        }
        note_end(ends, &x, true, hit);
        s.p = k + mn;
        goto next;
      }
    }
    const modelled_seen_t *ms = pool && arr ? m3s__extra_modelled_seen(pool, arr, k,
                                                                   (size_t)(s.end - k))
                                           : NULL;
    if(ms) {
      /* the same bytes as in the last record: the same arrays */
      m3s__copy_modelled(arr, &ms->rec, &sc);
      if(ms->leftlen) {
        if(x.n > 1)
          put(&x, ",", 1);
        put(&x, ms->left, ms->leftlen);
        note_end(ends, &x, false, NULL);
      }
      s.p = k + ms->rawlen;
      goto next;
    }
    s.spaced = false;
    if(!value(&s, 1))
      goto out;
    size_t vn = (size_t)(s.p - v);
    bool spaced = s.spaced;
    if(sci >= 0) {
      if(!read_scalar(&scalars[sci], (const char *)v, vn, &sc))
        goto out;
      have[sci] = true;
      goto next;
    }
    if(arr) {
      /* usually read here; else the full decoder reads it */
      slice_t sl = { k, v, kn, vn };
      m3s_task_record_t tmp;
      memset(&tmp, 0, sizeof(tmp));
      size_t before = x.n;
      bool ok = arr == 'p' ? fast_port_mappings(&sl, &tmp)
              : arr == 'd' ? fast_discovery(&sl, &tmp, &x)
                           : fast_network_infos(&sl, &tmp, &x);
      if(ok && x.n != before)
        note_end(ends, &x, false, NULL); /* its leftovers: one member */
      if(ok && pool) {
        size_t from = before + (x.n != before && x.p[before] == ',');
        m3s__extra_modelled_remember(pool, arr, k, (size_t)(s.p - k), &tmp, x.p + from,
                                     x.n - from);
      }
      if(ok) {
        sc.port_mappings = arr == 'p' ? tmp.port_mappings : sc.port_mappings;
        sc.n_port_mappings = arr == 'p' ? tmp.n_port_mappings : sc.n_port_mappings;
        sc.discovery_ports = arr == 'd' ? tmp.discovery_ports : sc.discovery_ports;
        sc.n_discovery_ports = arr == 'd' ? tmp.n_discovery_ports : sc.n_discovery_ports;
        sc.network_infos = arr == 'n' ? tmp.network_infos : sc.network_infos;
        sc.n_network_infos = arr == 'n' ? tmp.n_network_infos : sc.n_network_infos;
        goto next;
      }
      m3s_task_record_free(&tmp);
      need_small = true;
    }
    bool model = arr || zero_default(k + 1, kn - 2, v, vn);
    buf_t *b = model ? &small : &x;
    if(b->n > 1)
      put(b, ",", 1);
    put(b, (const char *)k, kn);
    put(b, ":", 1);
    if(spaced)
      put_compact(b, (const char *)v, vn);
    else
      put(b, (const char *)v, vn); /* already compact, as Go writes it */
    if(!model)
      note_end(ends, &x, !spaced && v == k + kn + 1, NULL);
    if(!model && kn == 12 && !memcmp(k, "\"MesosAgent\"", 12)) {
      free(host);
      if(!(host = member_string((const char *)v, vn, "hostname")))
        goto out;
      ends->agent = (int)ends->n - 1;
    }
  next:
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
  memset(out, 0, sizeof(*out));
  if(need_small && m3s_task_record_from_json(small.p, small.n, out, NULL, 0) != 0)
    goto out;
  /* What was read above replaces the zero values. */
  for(size_t i = 0; i < NSCALARS; i++) {
    size_t off = scalars[i].off;
    if(!have[i]) {
      char **dst = (char **)(void *)((char *)out + off);
      if(scalars[i].kind <= K_DIGEST && !*dst)
        *dst = m3s_xstrdup("");
      continue;
    }
    if(scalars[i].kind <= K_DIGEST) {
      char **dst = (char **)(void *)((char *)out + off), **src = (char **)(void *)((char *)&sc + off);
      free(*dst);
      *dst = *src;
      *src = NULL;
    }
    else {
      memcpy((char *)out + off, (char *)&sc + off,
             scalars[i].kind == K_DBL ? sizeof(double) : scalars[i].kind == K_INT ? sizeof(int) : sizeof(bool));
    }
  }
  if(sc.n_port_mappings) {
    out->port_mappings = sc.port_mappings;
    out->n_port_mappings = sc.n_port_mappings;
  }
  if(sc.n_discovery_ports) {
    out->discovery_ports = sc.discovery_ports;
    out->n_discovery_ports = sc.n_discovery_ports;
  }
  if(sc.n_network_infos) {
    out->network_infos = sc.network_infos;
    out->n_network_infos = sc.n_network_infos;
  }
  sc.port_mappings = NULL;
  sc.discovery_ports = NULL;
  sc.network_infos = NULL;
  sc.n_port_mappings = sc.n_discovery_ports = sc.n_network_infos = 0;
  if(m3s_record_parse_time(out->state_time, &ts) != 0) {
    m3s_task_record_free(out);
    goto out;
  }
  out->role = m3s_role_from_task_name(out->task_name);
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
    ends->unknown = true;
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
  m3s_task_record_free(&sc);
  free(small.p);
  free(x.p);
  free(host);
  return rc;
}

/* The full decoder, for what the lean pass is unsure of. */
static int full(const char *text, size_t len, m3s_task_record_t *out, char **extra,
                char **agent_host, char *err, size_t errlen)
{
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

int m3s_task_record_from_json_lean(const char *text, size_t len, m3s_task_record_t *out,
                                   char **extra, char **agent_host, char *err, size_t errlen)
{
  *extra = *agent_host = NULL;
  if(err && errlen)
    err[0] = '\0';
  ends_t ends = { .n = 0, .agent = -1 };
  if(text && lean(text, len, out, extra, agent_host, &ends, NULL) == 0)
    return 0;
  return full(text, len, out, extra, agent_host, err, errlen);
}

int m3s_task_record_from_json_pooled(const char *text, size_t len, m3s_task_record_t *out,
                                     m3s_extra_pool_t *pool, m3s_extra_t **extra,
                                     char **agent_host, char *err, size_t errlen)
{
  char *x = NULL;
  ends_t ends = { .n = 0, .agent = -1 };
  int rc = 0;
  *extra = NULL;
  *agent_host = NULL;
  if(err && errlen)
    err[0] = '\0';
  if(text && lean(text, len, out, &x, agent_host, &ends, pool) == 0) {
    if(x)
      *extra = ends.unknown ? m3s_extra_intern(pool, x, out->task_id)
                            : m3s__extra_intern_ends(pool, x, &ends, out->task_id, *agent_host);
  }
  else if((rc = full(text, len, out, &x, agent_host, err, errlen)) == 0) {
    *extra = m3s_extra_intern(pool, x, out->task_id);
  }
  free(x);
  return rc;
}
