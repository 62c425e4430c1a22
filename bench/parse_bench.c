/* jansson's parse time for a file of RecordIO records (the OFFERS events a
 * run of bench/orchestra_bench.py captured): the baseline the daemon's cost
 * per OFFERS event is compared with.
 *
 * Usage: parse_bench FILE [REPEATS]. Prints the number of events and the
 * median over REPEATS of the CPU time to parse all of them once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "bench_util.h"

int main(int argc, char **argv)
{
  if(argc < 2) {
    fprintf(stderr, "usage: parse_bench FILE [REPEATS]\n");
    return 2;
  }
  int reps = argc > 2 ? atoi(argv[2]) : 7;
  FILE *f = fopen(argv[1], "rb");
  if(!f) {
    fprintf(stderr, "parse_bench: %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  char *buf = NULL;
  size_t len = 0, cap = 0, n;
  char chunk[1 << 16];
  while((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
    if(len + n > cap) {
      cap = (len + n) * 2;
      buf = realloc(buf, cap);
      if(!buf)
        return 1;
    }
    memcpy(buf + len, chunk, n);
    len += n;
  }
  fclose(f);
  if(reps < 1)
    reps = 1;
  double *t = calloc((size_t)reps, sizeof(*t));
  size_t events = 0, bytes = 0;
  for(int r = 0; r < reps; r++) {
    size_t pos = 0;
    events = bytes = 0;
    double t0 = cpu_now();
    while(pos < len) {
      char *end;
      unsigned long rl = strtoul(buf + pos, &end, 10);
      if(end == buf + pos || *end != '\n' || (size_t)(end + 1 - buf) + rl > len) {
        fprintf(stderr, "parse_bench: bad record at byte %zu\n", pos);
        return 1;
      }
      json_error_t err;
      json_t *j = json_loadb(end + 1, rl, 0, &err);
      if(!j) {
        fprintf(stderr, "parse_bench: %s\n", err.text);
        return 1;
      }
      json_decref(j);
      events++;
      bytes += rl;
      pos = (size_t)(end + 1 - buf) + rl;
    }
    t[r] = cpu_now() - t0;
  }
  qsort(t, (size_t)reps, sizeof(*t), cmp_double);
  printf("events %zu bytes %zu parse_cpu_s %.6f\n", events, bytes, t[reps / 2]);
  free(t);
  free(buf);
  return 0;
}
