/* The common end of every Check test program: run the suite, report, and
 * turn the result into the exit code ctest reads. */
#ifndef M3S_CHECK_MAIN_H
#define M3S_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int m3s_check_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
