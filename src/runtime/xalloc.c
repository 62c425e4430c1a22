/* Abort-on-OOM allocation for small runtime objects (see xalloc.h). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "m3s/xalloc.h"

static void oom(size_t n)
{
  /* No stdio, no allocation: we are out of memory. */
  static const char msg[] = "m3s: out of memory, aborting\n";
  (void)n;
  ssize_t w = write(2, msg, sizeof(msg) - 1);
  (void)w;
  abort();
}

void *m3s_xmalloc(size_t n)
{
  void *p = malloc(n ? n : 1);
  if(!p)
    oom(n);
  return p;
}

void *m3s_xcalloc(size_t n, size_t size)
{
  void *p = calloc(n ? n : 1, size ? size : 1);
  if(!p)
    oom(n * size);
  return p;
}

void *m3s_xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n ? n : 1);
  if(!q)
    oom(n);
  return q;
}

char *m3s_xstrdup(const char *s)
{
  size_t n = strlen(s) + 1;
  char *d = m3s_xmalloc(n);
  memcpy(d, s, n);
  return d;
}
