/* The interned extra of loaded task records (see m3s/records.h): each
 * top-level member of the unmodelled fields stored once per pool, however
 * many records hold it unchanged. The lean decoder (records_lean.c) feeds
 * it; the pool also keeps what that decoder remembers between records:
 * the members it saw (the seen index) and the partly modelled arrays of
 * the last record. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/records.h"
#include "m3s/xalloc.h"
#include "records_int.h"

/* One top-level member of extra texts, `"name":value`, shared by every
 * record that holds it unchanged. */
typedef struct member {
  struct member *next;     /* hash chain */
  struct member *seen_next; /* chain of the seen index (seen only) */
  size_t refs, len;
  uint64_t hash, seen_hash;
  char *host;              /* MesosAgent's hostname as lean() read it, or NULL */
  bool seen;               /* in the seen index */
  bool own;                /* holds the own string's mark */
  char text[];
} member_t;

/* The seen index: members a record held as they are (not rewritten) and
 * lean() checked, so that the next record holding the same bytes is
 * recognised before it is checked. Those without the own string's mark
 * by the hash of their first SEEN_PREFIX bytes (seen); those with it by
 * the hash of their name (seen_own), where only the SEEN_OWN_WALK newest
 * of a name are compared. Members of SEEN_PREFIX bytes or fewer are cheap
 * to check again. */
#define SEEN_PREFIX 96
#define SEEN_OWN_WALK 8

struct m3s_extra_pool {
  member_t **slots, **seen, **seen_own;  /* nslots each */
  size_t nslots, n;
  modelled_seen_t modelled[3]; /* port_mappings, discovery, networkinfo */
};

struct m3s_extra {
  m3s_extra_pool_t *pool;
  size_t n;
  member_t *m[];
};

/* A word at a time: members are a few hundred bytes and every one loaded
 * is hashed. */
static uint64_t hash_text(const char *s, size_t n)
{
  uint64_t h = 0x9e3779b97f4a7c15ull ^ n;
  size_t i = 0;
  for(; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  for(; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
  return h ^ (h >> 29);
}

m3s_extra_pool_t *m3s_extra_pool_new(void)
{
  m3s_extra_pool_t *p = m3s_xcalloc(1, sizeof(*p));
  p->nslots = 256;
  p->slots = m3s_xcalloc(p->nslots, sizeof(*p->slots));
  p->seen = m3s_xcalloc(p->nslots, sizeof(*p->seen));
  p->seen_own = m3s_xcalloc(p->nslots, sizeof(*p->seen_own));
  return p;
}

void m3s_extra_pool_free(m3s_extra_pool_t *p)
{
  if(!p)
    return;
  for(size_t i = 0; i < p->nslots; i++)
    for(member_t *m = p->slots[i], *next; m; m = next) {
      next = m->next;
      free(m->host);
      free(m);
    }
  free(p->slots);
  free(p->seen);
  free(p->seen_own);
  for(int i = 0; i < 3; i++) {
    free(p->modelled[i].raw);
    free(p->modelled[i].left);
    m3s_task_record_free(&p->modelled[i].rec);
  }
  free(p);
}

static void pool_grow(m3s_extra_pool_t *p)
{
  size_t nslots = p->nslots * 2;
  member_t **slots = m3s_xcalloc(nslots, sizeof(*slots));
  member_t **seen = m3s_xcalloc(nslots, sizeof(*seen));
  member_t **seen_own = m3s_xcalloc(nslots, sizeof(*seen_own));
  for(size_t i = 0; i < p->nslots; i++) {
    for(member_t *m = p->slots[i], *next; m; m = next) {
      next = m->next;
      m->next = slots[m->hash & (nslots - 1)];
      slots[m->hash & (nslots - 1)] = m;
    }
    /* walked from the tail so that the newest stay first */
    for(int own = 0; own < 2; own++) {
      member_t *rev = NULL;
      for(member_t *m = own ? p->seen_own[i] : p->seen[i], *next; m; m = next) {
        next = m->seen_next;
        m->seen_next = rev;
        rev = m;
      }
      for(member_t *m = rev, *next; m; m = next) {
        member_t **to = own ? seen_own : seen;
        next = m->seen_next;
        m->seen_next = to[m->seen_hash & (nslots - 1)];
        to[m->seen_hash & (nslots - 1)] = m;
      }
    }
  }
  free(p->slots);
  free(p->seen);
  free(p->seen_own);
  p->slots = slots;
  p->seen = seen;
  p->seen_own = seen_own;
  p->nslots = nslots;
}

static member_t *pool_get(m3s_extra_pool_t *p, const char *s, size_t n)
{
  uint64_t h = hash_text(s, n);
  member_t **slot = &p->slots[h & (p->nslots - 1)];
  for(member_t *m = *slot; m; m = m->next)
    if(m->hash == h && m->len == n && !memcmp(m->text, s, n)) {
      m->refs++;
      return m;
    }
  member_t *m = m3s_xmalloc(sizeof(*m) + n + 1);
  memcpy(m->text, s, n);
  m->text[n] = '\0';
  m->len = n;
  m->hash = h;
  m->refs = 1;
  m->host = NULL;
  m->seen = false;
  m->own = false;
  m->seen_next = NULL;
  m->next = *slot;
  *slot = m;
  if(++p->n > p->nslots)
    pool_grow(p);
  return m;
}

static void pool_put(m3s_extra_pool_t *p, member_t *m)
{
  if(--m->refs)
    return;
  member_t **at = &p->slots[m->hash & (p->nslots - 1)];
  while(*at != m)
    at = &(*at)->next;
  *at = m->next;
  if(m->seen) {
    at = &(m->own ? p->seen_own : p->seen)[m->seen_hash & (p->nslots - 1)];
    while(*at != m)
      at = &(*at)->seen_next;
    *at = m->seen_next;
  }
  p->n--;
  free(m->host);
  free(m);
}

/* The mark that stands for the record's own string in a member: a byte
 * that compact JSON text never holds (control characters in strings are
 * escaped). */
#define OWN_MARK '\x01'

/* The member m[0..n) with each occurrence of own replaced by the mark,
 * interned. */
static member_t *pool_get_own(m3s_extra_pool_t *p, const char *m, size_t n, const char *own,
                              size_t ownlen)
{
  const char *hit = ownlen ? memmem(m, n, own, ownlen) : NULL;
  if(!hit)
    return pool_get(p, m, n);
  char *t = m3s_xmalloc(n);
  size_t tn = 0;
  while(hit) {
    memcpy(t + tn, m, (size_t)(hit - m));
    tn += (size_t)(hit - m);
    t[tn++] = OWN_MARK;
    n -= (size_t)(hit - m) + ownlen;
    m = hit + ownlen;
    hit = memmem(m, n, own, ownlen);
  }
  memcpy(t + tn, m, n);
  tn += n;
  member_t *r = pool_get(p, t, tn);
  free(t);
  return r;
}

/* x with its n members, as an extra of pool p (NULL when n is 0). */
static m3s_extra_t *extra_done(m3s_extra_pool_t *p, m3s_extra_t *x, size_t n)
{
  if(!n) {
    free(x);
    return NULL;
  }
  x = m3s_xrealloc(x, sizeof(*x) + n * sizeof(x->m[0])); /* kept: no slack */
  x->pool = p;
  x->n = n;
  return x;
}

m3s_extra_t *m3s_extra_intern(m3s_extra_pool_t *p, const char *text, const char *own)
{
  if(!text)
    return NULL;
  size_t ownlen = own && !strchr(own, OWN_MARK) ? strlen(own) : 0;
  size_t len = strlen(text), n = 0, cap = 8;
  m3s_extra_t *x = m3s_xmalloc(sizeof(*x) + cap * sizeof(x->m[0]));
  /* The text is a JSON object: a member ends at a comma or the closing
   * brace at depth 1, outside strings. */
  int depth = 0;
  bool in_str = false;
  size_t start = 1;
  for(size_t i = 0; i < len; i++) {
    if(in_str) {
      /* strings are most of the text */
      i = (size_t)(skip_plain((const unsigned char *)text + i, (const unsigned char *)text + len) -
                   (const unsigned char *)text);
      if(text[i] == '\\')
        i++;
      else if(text[i] == '"')
        in_str = false;
      continue;
    }
    char c = text[i];
    bool end = false;
    switch(c) {
    case '"':
      in_str = true;
      break;
    case '{':
    case '[':
      depth++;
      break;
    case ']':
      depth--;
      break;
    case '}':
      end = depth-- == 1;
      break;
    case ',':
      end = depth == 1;
      break;
    default:
      break;
    }
    if(!end)
      continue;
    if(i > start) {
      if(n == cap) {
        cap *= 2;
        x = m3s_xrealloc(x, sizeof(*x) + cap * sizeof(x->m[0]));
      }
      x->m[n++] = pool_get_own(p, text + start, i - start, own, ownlen);
    }
    start = i + 1;
  }
  return extra_done(p, x, n);
}

/* Whether the own string, replaced by any string of such characters,
 * leaves a text that is valid: printable ASCII but the quote and the
 * backslash. */
static bool plain(const char *s, size_t n)
{
  for(size_t i = 0; i < n; i++)
    if(s[i] < 0x20 || s[i] >= 0x7f || s[i] == '"' || s[i] == '\\')
      return false;
  return true;
}

/* Whether each mark in member text t[0..n) is in a string after its name,
 * not escaped by a backslash, and right before the string's closing quote
 * (which tells where another record's own string ends); no \u escapes. */
static bool marks_in_strings(const char *t, size_t n)
{
  bool in_str = false, name = true;
  for(size_t i = 0; i < n; i++) {
    char c = t[i];
    if(in_str) {
      if(c == '\\') {
        if(i + 1 >= n || t[i + 1] == OWN_MARK || t[i + 1] == 'u')
          return false;
        i++;
      }
      else if(c == '"') {
        in_str = false;
      }
      else if(c == OWN_MARK && (name || i + 1 >= n || t[i + 1] != '"')) {
        return false;
      }
    }
    else if(c == '"') {
      in_str = true;
    }
    else if(c == OWN_MARK) {
      return false;
    }
    else if(c == ':') {
      name = false;
    }
  }
  return true;
}

/* The length of the name of member text t, with its quotes (no escapes:
 * lean() wrote it). */
static size_t name_len(const char *t, size_t n)
{
  const char *colon = memmem(t, n, "\":", 2);
  return colon ? (size_t)(colon - t) + 1 : n;
}

/* Puts member m, which lean() checked in a record whose own string is
 * own[0..ownlen) and which that record holds as it is, in the seen index
 * (host: its hostname when it is the MesosAgent member). */
static void seen_add(m3s_extra_pool_t *p, member_t *m, const char *own, size_t ownlen,
                     const char *host)
{
  if(m->seen || m->len <= SEEN_PREFIX)
    return;
  m->own = memchr(m->text, OWN_MARK, m->len) != NULL;
  if(m->own) {
    /* held by another record, the member has that record's own string
     * in place of the mark: the same valid text if the strings are plain */
    if(host || !plain(own, ownlen) || !marks_in_strings(m->text, m->len))
      return;
    m->seen_hash = hash_text(m->text, name_len(m->text, m->len));
  }
  else {
    m->seen_hash = hash_text(m->text, SEEN_PREFIX);
    if(host && !m->host)
      m->host = m3s_xstrdup(host);
  }
  member_t **slot = &(m->own ? p->seen_own : p->seen)[m->seen_hash & (p->nslots - 1)];
  m->seen_next = *slot;
  *slot = m;
  m->seen = true;
}

/* Whether at[0..avail) begins with member m with each mark replaced by
 * own[0..ownlen), or (own NULL) by the same plain string, up to the quote
 * after the first mark; *len: the length of that text. */
static bool same_but_own(const member_t *m, const unsigned char *at, size_t avail,
                         const unsigned char *own, size_t ownlen, size_t *len)
{
  const char *t = m->text, *end = t + m->len;
  const unsigned char *r = at, *rend = at + avail;
  for(;;) {
    const char *mark = memchr(t, OWN_MARK, (size_t)(end - t));
    size_t seg = (size_t)((mark ? mark : end) - t);
    if((size_t)(rend - r) < seg || memcmp(t, r, seg))
      return false;
    r += seg;
    t += seg;
    if(!mark)
      break;
    t++;
    if(!own) {
      own = r;
      const unsigned char *q = skip_plain(r, rend);
      if(q >= rend || *q != '"')
        return false;
      ownlen = (size_t)(q - r);
    }
    else if((size_t)(rend - r) < ownlen || memcmp(r, own, ownlen)) {
      return false;
    }
    r += ownlen;
  }
  *len = (size_t)(r - at);
  return true;
}

struct member *m3s__extra_seen(m3s_extra_pool_t *p, const unsigned char *at, size_t avail,
                               size_t namelen, size_t *len, const char **host)
{
  if(avail <= SEEN_PREFIX)
    return NULL;
  uint64_t h = hash_text((const char *)at, SEEN_PREFIX);
  for(member_t *m = p->seen[h & (p->nslots - 1)]; m; m = m->seen_next)
    if(m->seen_hash == h && m->len < avail && (at[m->len] == ',' || at[m->len] == '}') &&
       !memcmp(m->text, at, m->len)) {
      *len = m->len;
      *host = m->host;
      return m;
    }
  h = hash_text((const char *)at, namelen);
  int walk = 0;
  for(member_t *m = p->seen_own[h & (p->nslots - 1)]; m && walk < SEEN_OWN_WALK;
      m = m->seen_next) {
    if(m->seen_hash != h)
      continue;
    walk++;
    if(same_but_own(m, at, avail, NULL, 0, len) && *len < avail &&
       (at[*len] == ',' || at[*len] == '}')) {
      *host = NULL;
      return m;
    }
  }
  return NULL;
}

/* As m3s_extra_intern, for a text whose member ends lean() noted. */
m3s_extra_t *m3s__extra_intern_ends(m3s_extra_pool_t *p, const char *text, const ends_t *e,
                                    const char *own, const char *host)
{
  bool markable = own && !strchr(own, OWN_MARK);
  size_t ownlen = markable ? strlen(own) : 0, n = 0, start = 1, len;
  m3s_extra_t *x = m3s_xmalloc(sizeof(*x) + (e->n ? e->n : 1) * sizeof(x->m[0]));
  for(size_t i = 0; i < e->n; i++) {
    if(e->at[i] > start) {
      member_t *m = e->hit[i];
      /* a member seen before is taken as it is when the record's text is
       * its text with the mark, if any, standing for this record's own
       * string (m3s_extra_json gives the same text back, even if the
       * record holds its own string elsewhere in it too); else stored
       * anew with this record's */
      const unsigned char *t = (const unsigned char *)text + start;
      size_t tn = e->at[i] - start;
      if(m && m->own && !(markable && same_but_own(m, t, tn, (const unsigned char *)own,
                                                   ownlen, &len) && len == tn))
        m = NULL;
      if(m)
        m->refs++;
      else
        m = pool_get_own(p, text + start, tn, own, ownlen);
      if(e->raw[i] && !m->seen)
        seen_add(p, m, own, ownlen, (int)i == e->agent ? host : NULL);
      x->m[n++] = m;
    }
    start = e->at[i] + 1;
  }
  return extra_done(p, x, n);
}

json_t *m3s_extra_json(const m3s_extra_t *x, const char *own)
{
  if(!x)
    return NULL;
  buf_t b = { 0 };
  size_t ownlen = own ? strlen(own) : 0;
  put(&b, "{", 1);
  for(size_t i = 0; i < x->n; i++) {
    if(i)
      put(&b, ",", 1);
    const char *t = x->m[i]->text, *mark, *end = t + x->m[i]->len;
    while((mark = memchr(t, OWN_MARK, (size_t)(end - t))) != NULL) {
      put(&b, t, (size_t)(mark - t));
      put(&b, own, ownlen);
      t = mark + 1;
    }
    put(&b, t, (size_t)(end - t));
  }
  put(&b, "}", 1);
  json_t *j = json_loadb(b.p, b.n, 0, NULL);
  free(b.p);
  return j;
}

void m3s_extra_free(m3s_extra_t *x)
{
  if(!x)
    return;
  for(size_t i = 0; i < x->n; i++)
    pool_put(x->pool, x->m[i]);
  free(x);
}

/* ---- the partly modelled members of the last record ------------------ */

static int modelled_slot(int arr)
{
  return arr == 'p' ? 0 : arr == 'd' ? 1 : 2;
}

void m3s__copy_modelled(int arr, const m3s_task_record_t *from, m3s_task_record_t *to)
{
  if(arr == 'p' && from->n_port_mappings) {
    to->n_port_mappings = from->n_port_mappings;
    to->port_mappings = m3s_xcalloc(to->n_port_mappings, sizeof(*to->port_mappings));
    for(size_t i = 0; i < to->n_port_mappings; i++) {
      to->port_mappings[i] = from->port_mappings[i];
      to->port_mappings[i].protocol = m3s_xstrdup(from->port_mappings[i].protocol);
    }
  }
  else if(arr == 'd' && from->n_discovery_ports) {
    to->n_discovery_ports = from->n_discovery_ports;
    to->discovery_ports = m3s_xcalloc(to->n_discovery_ports, sizeof(*to->discovery_ports));
    for(size_t i = 0; i < to->n_discovery_ports; i++) {
      to->discovery_ports[i].number = from->discovery_ports[i].number;
      to->discovery_ports[i].name = m3s_xstrdup(from->discovery_ports[i].name);
      to->discovery_ports[i].protocol = m3s_xstrdup(from->discovery_ports[i].protocol);
    }
  }
  else if(arr == 'n' && from->n_network_infos) {
    to->n_network_infos = from->n_network_infos;
    to->network_infos = m3s_xcalloc(to->n_network_infos, sizeof(*to->network_infos));
    for(size_t i = 0; i < to->n_network_infos; i++) {
      const m3s_network_info_t *f = &from->network_infos[i];
      m3s_network_info_t *t = &to->network_infos[i];
      t->name = m3s_xstrdup(f->name);
      t->n_ip_addresses = f->n_ip_addresses;
      if(f->n_ip_addresses)
        t->ip_addresses = m3s_xcalloc(f->n_ip_addresses, sizeof(*t->ip_addresses));
      for(size_t j = 0; j < f->n_ip_addresses; j++)
        t->ip_addresses[j] = m3s_xstrdup(f->ip_addresses[j]);
    }
  }
}

void m3s__extra_modelled_remember(m3s_extra_pool_t *pool, int arr, const unsigned char *raw,
                                  size_t rawlen, const m3s_task_record_t *rec, const char *left,
                                  size_t leftlen)
{
  modelled_seen_t *ms = &pool->modelled[modelled_slot(arr)];
  free(ms->raw);
  free(ms->left);
  m3s_task_record_free(&ms->rec);
  ms->raw = m3s_xmalloc(rawlen);
  memcpy(ms->raw, raw, rawlen);
  ms->rawlen = rawlen;
  ms->left = NULL;
  ms->leftlen = leftlen;
  if(leftlen) {
    ms->left = m3s_xmalloc(leftlen);
    memcpy(ms->left, left, leftlen);
  }
  m3s__copy_modelled(arr, rec, &ms->rec);
}

const modelled_seen_t *m3s__extra_modelled_seen(m3s_extra_pool_t *pool, int arr,
                                                const unsigned char *at, size_t avail)
{
  const modelled_seen_t *ms = &pool->modelled[modelled_slot(arr)];
  if(!ms->raw || ms->rawlen >= avail || (at[ms->rawlen] != ',' && at[ms->rawlen] != '}') ||
     memcmp(ms->raw, at, ms->rawlen))
    return NULL;
  return ms;
}
