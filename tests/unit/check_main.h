/* The common end of every Check test program: run the suite, report, and
 * turn the result into the exit code ctest reads. */
#ifndef M3S_CHECK_MAIN_H
#define M3S_CHECK_MAIN_H

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline int m3s_check_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* A loopback TCP port that was free a moment ago. */
static inline int m3s_free_port(void)
{
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
  socklen_t len = sizeof(a);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ck_assert_int_ne(fd, -1);
  ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* A getenv for m3s_config_load over ctx, a NULL-terminated array of name,
 * value pairs. */
static inline const char *m3s_check_getenv(const char *name, void *ctx)
{
  const char *const *kv = ctx;
  for(; kv[0]; kv += 2)
    if(strcmp(kv[0], name) == 0)
      return kv[1];
  return NULL;
}

static inline void m3s_check_sleep_ms(int ms)
{
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&ts, NULL);
}

#endif
