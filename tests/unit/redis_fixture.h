/* A real redis-server for a Check test: started on a free loopback port in
 * a throwaway directory (never the system's 6379), waited for until it
 * answers, stopped by the PID this process started. Shared by the suites
 * that talk to Redis (check_store, check_api). */
#ifndef M3S_REDIS_FIXTURE_H
#define M3S_REDIS_FIXTURE_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"

static inline int64_t fixture_now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct redis_fixture {
  pid_t pid;
  int port;
  char dir[64];
  char password[64];
  bool aof;
} redis_fixture_t;

static inline void find_redis(char *out, size_t len)
{
  const char *path = getenv("PATH");
  char *copy = strdup(path ? path : "/usr/bin:/bin");
  char *save = NULL;
  out[0] = '\0';
  for(char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    snprintf(out, len, "%s/redis-server", d);
    if(access(out, X_OK) == 0)
      break;
    out[0] = '\0';
  }
  free(copy);
  if(!out[0])
    snprintf(out, len, "/usr/bin/redis-server");
}

/* Connects to the fixture as a client of the test (NULL if not up). */
static inline redisContext *fixture_connect(const redis_fixture_t *r)
{
  struct timeval tv = { 1, 0 };
  redisContext *c = redisConnectWithTimeout("127.0.0.1", r->port, tv);
  if(!c || c->err) {
    if(c)
      redisFree(c);
    return NULL;
  }
  redisSetTimeout(c, tv);
  return c;
}

/* Starts redis-server on r->port in r->dir (both set by the caller) and waits
 * until it answers PING with PONG (or NOAUTH when it has a password). */
static inline void fixture_start(redis_fixture_t *r)
{
  char exe[512], port[16];
  snprintf(port, sizeof(port), "%d", r->port);
  find_redis(exe, sizeof(exe));
  const char *argv[24];
  int n = 0;
  argv[n++] = exe;
  argv[n++] = "--port";
  argv[n++] = port;
  argv[n++] = "--bind";
  argv[n++] = "127.0.0.1";
  argv[n++] = "--save";
  argv[n++] = "";
  argv[n++] = "--dir";
  argv[n++] = r->dir;
  argv[n++] = "--enable-protected-configs"; /* check_store's MISCONF test moves "dir" */
  argv[n++] = "yes";
  argv[n++] = "--appendonly";
  argv[n++] = r->aof ? "yes" : "no";
  if(r->aof) {
    argv[n++] = "--appendfsync";
    argv[n++] = "always";
  }
  if(r->password[0]) {
    argv[n++] = "--requirepass";
    argv[n++] = r->password;
  }
  argv[n] = NULL;

  /* Opened before the fork: the child only calls dup2 and execv. */
  char logpath[128];
  snprintf(logpath, sizeof(logpath), "%s/redis.log", r->dir);
  int logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ck_assert_int_ne(logfd, -1);
  pid_t pid = fork();
  ck_assert_int_ne(pid, -1);
  if(pid == 0) {
    dup2(logfd, 1);
    dup2(logfd, 2);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  close(logfd);
  r->pid = pid;

  int64_t deadline = fixture_now_ms() + 10000;
  for(;;) {
    redisContext *c = fixture_connect(r);
    if(c) {
      redisReply *rep = redisCommand(c, "PING");
      bool up = rep && (rep->type == REDIS_REPLY_STATUS ||
                        (rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "NOAUTH", 6)));
      if(rep)
        freeReplyObject(rep);
      redisFree(c);
      if(up)
        return;
    }
    int status;
    ck_assert_msg(waitpid(pid, &status, WNOHANG) == 0, "redis-server exited (see %s)", logpath);
    ck_assert_msg(fixture_now_ms() < deadline, "redis-server did not answer within 10 s");
    nanosleep(&(struct timespec){ 0, 20000000L }, NULL);
  }
}

static inline void fixture_stop(redis_fixture_t *r)
{
  if(r->pid <= 0)
    return;
  kill(r->pid, SIGTERM);
  int status;
  while(waitpid(r->pid, &status, 0) == -1 && errno == EINTR)
    ;
  r->pid = 0;
}

static inline void fixture_init(redis_fixture_t *r, const char *password, bool aof)
{
  memset(r, 0, sizeof(*r));
  snprintf(r->dir, sizeof(r->dir), "/tmp/m3s-check-redis-XXXXXX");
  ck_assert_ptr_nonnull(mkdtemp(r->dir));
  snprintf(r->password, sizeof(r->password), "%s", password ? password : "");
  r->aof = aof;
  r->port = m3s_free_port();
}

static inline int fixture_rm_entry(const char *path, const struct stat *st, int flag,
                                   struct FTW *ftw)
{
  return remove(path);
}

static inline void fixture_free(redis_fixture_t *r)
{
  fixture_stop(r);
  nftw(r->dir, fixture_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
