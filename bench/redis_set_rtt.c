/* The floor of bench/ack_latency_bench.py: round trips of one SET (then,
 * with a replica count, one WAIT) with hiredis, as the daemon's store makes
 * them, one at a time. Prints the round-trip times in microseconds, one
 * per line, after a line "n <count>".
 *
 * Usage: redis_set_rtt HOST PORT DB COUNT VALUE_BYTES [REPLICAS]
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_us(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void check(redisContext *c, redisReply *r, const char *what)
{
  if(!r || r->type == REDIS_REPLY_ERROR) {
    fprintf(stderr, "redis_set_rtt: %s: %s\n", what, r ? r->str : c->errstr);
    exit(1);
  }
  freeReplyObject(r);
}

int main(int argc, char **argv)
{
  if(argc != 6 && argc != 7) {
    fprintf(stderr, "usage: redis_set_rtt HOST PORT DB COUNT VALUE_BYTES [REPLICAS]\n");
    return 2;
  }
  int count = atoi(argv[4]), replicas = argc == 7 ? atoi(argv[6]) : 0;
  size_t len = (size_t)atol(argv[5]);
  char *value = malloc(len + 1);
  memset(value, 'x', len);
  value[len] = '\0';
  redisContext *c = redisConnect(argv[1], atoi(argv[2]));
  if(!c || c->err) {
    fprintf(stderr, "redis_set_rtt: connect: %s\n", c ? c->errstr : "out of memory");
    return 1;
  }
  check(c, redisCommand(c, "SELECT %s", argv[3]), "SELECT");
  double *t = malloc((size_t)count * sizeof(*t));
  for(int i = 0; i < count; i++) {
    char key[64];
    snprintf(key, sizeof(key), "m3s-bench:rtt:%d", i % 1000);
    double t0 = now_us();
    check(c, redisCommand(c, "SET %s %b", key, value, len), "SET");
    if(replicas) {
      redisReply *r = redisCommand(c, "WAIT %d 1000", replicas);
      if(r && r->type == REDIS_REPLY_INTEGER && r->integer < replicas) {
        fprintf(stderr, "redis_set_rtt: WAIT: %lld of %d replicas\n", r->integer, replicas);
        return 1;
      }
      check(c, r, "WAIT");
    }
    t[i] = now_us() - t0;
  }
  check(c, redisCommand(c, "EVAL %s 0", "for _, k in ipairs(redis.call('KEYS', 'm3s-bench:rtt:*')) "
                                        "do redis.call('DEL', k) end"), "cleanup");
  printf("n %d\n", count);
  for(int i = 0; i < count; i++)
    printf("%.1f\n", t[i]);
  free(t);
  free(value);
  redisFree(c);
  return 0;
}
