/* String-keyed open-addressing hash map; see m3s/idmap.h. */
#include "m3s/idmap.h"

#include <stdlib.h>
#include <string.h>

#include "m3s/xalloc.h"

static const char tomb_key[1];
#define TOMB (tomb_key)

/* FNV-1a, 64 bit: ids are short and random enough. */
static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603ull;
  for(; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static m3s_idmap_slot_t *find(const m3s_idmap_t *m, const char *key, uint64_t h)
{
  if(!m->cap)
    return NULL;
  for(size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    m3s_idmap_slot_t *s = &m->slots[i];
    if(!s->key)
      return NULL;
    if(s->key != TOMB && s->hash == h && strcmp(s->key, key) == 0)
      return s;
  }
}

static void grow(m3s_idmap_t *m)
{
  size_t cap = m->cap ? m->cap : 16;
  /* Only grow when live entries need it; otherwise rehash to drop tombs. */
  if((m->n + 1) * 2 > cap)
    cap *= 2;
  m3s_idmap_slot_t *old = m->slots;
  size_t oldcap = m->cap;
  m->slots = m3s_xcalloc(cap, sizeof(*m->slots));
  m->cap = cap;
  m->used = m->n;
  for(size_t i = 0; i < oldcap; i++) {
    if(!old[i].key || old[i].key == TOMB)
      continue;
    size_t j = old[i].hash & (cap - 1);
    while(m->slots[j].key)
      j = (j + 1) & (cap - 1);
    m->slots[j] = old[i];
  }
  free(old);
}

void *m3s_idmap_get(const m3s_idmap_t *m, const char *key)
{
  m3s_idmap_slot_t *s = find(m, key, hash_str(key));
  return s ? s->val : NULL;
}

void *m3s_idmap_put(m3s_idmap_t *m, const char *key, void *val)
{
  uint64_t h = hash_str(key);
  m3s_idmap_slot_t *s = find(m, key, h);
  if(s) {
    void *prev = s->val;
    s->key = key;
    s->val = val;
    return prev;
  }
  if((m->used + 1) * 10 > m->cap * 7)
    grow(m);
  size_t i = h & (m->cap - 1);
  while(m->slots[i].key && m->slots[i].key != TOMB)
    i = (i + 1) & (m->cap - 1);
  if(!m->slots[i].key)
    m->used++;
  m->slots[i] = (m3s_idmap_slot_t){ key, val, h };
  m->n++;
  return NULL;
}

void *m3s_idmap_del(m3s_idmap_t *m, const char *key)
{
  m3s_idmap_slot_t *s = find(m, key, hash_str(key));
  if(!s)
    return NULL;
  void *v = s->val;
  s->key = TOMB;
  s->val = NULL;
  m->n--;
  return v;
}

void m3s_idmap_free(m3s_idmap_t *m)
{
  free(m->slots);
  memset(m, 0, sizeof(*m));
}
