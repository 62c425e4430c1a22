/* A string-keyed hash map (open addressing, linear probing) for the ids an
 * actor keeps: task ids, offer ids. Keys are borrowed: each key must stay
 * valid and unchanged while its entry exists (typically it lives in the
 * value). One owner thread; no locking.
 */
#ifndef M3S_IDMAP_H
#define M3S_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct m3s_idmap_slot {
  const char *key;   /* NULL = empty; m3s__idmap_tomb = deleted */
  void *val;
  uint64_t hash;
} m3s_idmap_slot_t;

typedef struct m3s_idmap {
  m3s_idmap_slot_t *slots;
  size_t cap;        /* 0 or a power of two */
  size_t n;          /* live entries */
  size_t used;       /* live + deleted slots */
} m3s_idmap_t;

/* A zeroed struct is an empty map. */
void *m3s_idmap_get(const m3s_idmap_t *m, const char *key);
/* Inserts or replaces; returns the previous value or NULL. */
void *m3s_idmap_put(m3s_idmap_t *m, const char *key, void *val);
/* Removes; returns the value or NULL when absent. */
void *m3s_idmap_del(m3s_idmap_t *m, const char *key);
/* Frees the table (not the values) and zeroes the map. */
void m3s_idmap_free(m3s_idmap_t *m);

#endif
