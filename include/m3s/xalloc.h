/* Allocation of small runtime objects (messages, actors, slots): out of
 * memory is not recoverable there, so these log and abort instead of
 * returning NULL. Sizes driven by external input (request bodies, JSON) do
 * not use these: they have explicit limits and return -ENOMEM / -E2BIG. */
#ifndef M3S_XALLOC_H
#define M3S_XALLOC_H

#include <stddef.h>

void *m3s_xmalloc(size_t n);
void *m3s_xcalloc(size_t n, size_t size);
void *m3s_xrealloc(void *p, size_t n);
char *m3s_xstrdup(const char *s);

#endif
