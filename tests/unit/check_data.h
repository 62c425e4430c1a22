/* Test data files: the directory comes from M3S_TEST_DATA_DIR (set by CMake)
 * or from the program's first argument. */
#ifndef M3S_CHECK_DATA_H
#define M3S_CHECK_DATA_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "check_main.h"

static const char *data_dir;

/* Reads <data_dir>/<name> whole; NUL-terminated, *len without the NUL.
 * The caller frees. Fails the test when the file cannot be read. */
static inline char *read_file(const char *name, size_t *len)
{
  char path[1024];
  FILE *f;
  char *buf;
  long n;

  snprintf(path, sizeof(path), "%s/%s", data_dir, name);
  f = fopen(path, "rb");
  ck_assert_msg(f, "cannot open %s", path);
  ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
  n = ftell(f);
  ck_assert(n >= 0);
  rewind(f);
  buf = malloc((size_t)n + 1);
  ck_assert_ptr_nonnull(buf);
  ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  buf[n] = '\0';
  *len = (size_t)n;
  return buf;
}

/* main() of a test program that needs data files. */
static inline int m3s_check_run_data(int argc, char **argv, Suite *s)
{
#ifdef M3S_TEST_DATA_DIR
  data_dir = M3S_TEST_DATA_DIR;
#endif
  if(argc > 1)
    data_dir = argv[1];
  if(!data_dir) {
    fprintf(stderr, "usage: %s <data dir> (or build with -DM3S_TEST_DATA_DIR)\n", argv[0]);
    srunner_free(srunner_create(s)); /* frees the suite */
    return EXIT_FAILURE;
  }
  return m3s_check_run(s);
}

#endif
