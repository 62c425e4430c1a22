/* Helpers the CPU-time benchmarks share. */
#ifndef M3S_BENCH_UTIL_H
#define M3S_BENCH_UTIL_H

#include <time.h>

/* The process's CPU time, in seconds. */
static inline double cpu_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* qsort order of doubles, smallest first. */
static inline int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

#endif
