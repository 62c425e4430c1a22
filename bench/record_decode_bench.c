/* The agent role's share of a recovery, without Redis: decoding task
 * records with m3s_task_record_from_json_pooled into one pool, as the role
 * does on a load, and keeping them all until the end of a repetition.
 *
 * Usage: record_decode_bench FILE [REPEATS]. FILE holds one record a line
 * (python3 bench/recovery_bench.py --dump-records FILE writes the bench's
 * records). Prints the number of records and the best and median CPU time
 * per record over REPEATS (7 by default), each with a new pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "m3s/records.h"

#include "bench_util.h"

int main(int argc, char **argv)
{
  if(argc < 2) {
    fprintf(stderr, "usage: record_decode_bench FILE [REPEATS]\n");
    return 2;
  }
  int reps = argc > 2 ? atoi(argv[2]) : 7;
  if(reps < 1)
    reps = 1;
  FILE *f = fopen(argv[1], "rb");
  if(!f) {
    fprintf(stderr, "record_decode_bench: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  char **text = NULL, *line = NULL;
  size_t *len = NULL, n = 0, cap = 0, linecap = 0;
  ssize_t got;
  while((got = getline(&line, &linecap, f)) > 0) {
    if(line[got - 1] == '\n')
      line[--got] = '\0';
    if(!got)
      continue;
    if(n == cap) {
      cap = cap ? cap * 2 : 1024;
      text = realloc(text, cap * sizeof(*text));
      len = realloc(len, cap * sizeof(*len));
      if(!text || !len)
        return 1;
    }
    text[n] = strdup(line);
    len[n++] = (size_t)got;
  }
  free(line);
  fclose(f);

  m3s_task_record_t *recs = calloc(n ? n : 1, sizeof(*recs));
  m3s_extra_t **extra = calloc(n ? n : 1, sizeof(*extra));
  char **host = calloc(n ? n : 1, sizeof(*host));
  double *t = calloc((size_t)reps, sizeof(*t));
  if(!recs || !extra || !host || !t)
    return 1;
  for(int r = 0; r < reps; r++) {
    m3s_extra_pool_t *pool = m3s_extra_pool_new();
    char err[256];
    double t0 = cpu_now();
    for(size_t i = 0; i < n; i++)
      if(m3s_task_record_from_json_pooled(text[i], len[i], &recs[i], pool, &extra[i], &host[i],
                                          err, sizeof(err)) != 0) {
        fprintf(stderr, "record_decode_bench: record %zu: %s\n", i + 1, err);
        return 1;
      }
    t[r] = cpu_now() - t0;
    for(size_t i = 0; i < n; i++) {
      m3s_task_record_free(&recs[i]);
      m3s_extra_free(extra[i]);
      free(host[i]);
    }
    m3s_extra_pool_free(pool);
  }
  qsort(t, (size_t)reps, sizeof(*t), cmp_double);
  printf("records %zu best_us_per_record %.2f median_us_per_record %.2f\n", n,
         n ? t[0] / (double)n * 1e6 : 0.0, n ? t[reps / 2] / (double)n * 1e6 : 0.0);
  for(size_t i = 0; i < n; i++)
    free(text[i]);
  free(text);
  free(len);
  free(recs);
  free(extra);
  free(host);
  free(t);
  return 0;
}
