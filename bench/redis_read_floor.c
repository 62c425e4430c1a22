/* The floor of bench/recovery_bench.py: the cost of only reading the
 * records from Redis with hiredis, as the daemon's store does, without
 * parsing them. SCANs the keys matching a pattern (COUNT 1000), then reads
 * their values 1,000 keys per round trip, once with MGET and once with
 * pipelined GETs, and prints one line per way:
 *   mget <keys> <bytes> <seconds>
 *   get <keys> <bytes> <seconds>
 * The SCAN is counted in both. Values are checked to be strings and
 * counted, nothing else. With WAY (mget or get), only that way: the
 * benchmark times such a run from its exec to its exit, as it times the
 * daemon from its exec, so start-up and connecting count on both sides.
 *
 * Usage: redis_read_floor HOST PORT DB PATTERN [mget|get]
 */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK 1000

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(redisContext *c, const char *what)
{
  fprintf(stderr, "redis_read_floor: %s: %s\n", what, c->errstr[0] ? c->errstr : "bad reply");
  exit(1);
}

/* Every key matching pattern, in *keys (count returned). */
static size_t scan_keys(redisContext *c, const char *pattern, char ***keys)
{
  size_t n = 0, cap = 1024;
  char cursor[32] = "0";
  *keys = malloc(cap * sizeof(**keys));
  do {
    redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
    if(!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2)
      die(c, "SCAN");
    snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
    for(size_t i = 0; i < r->element[1]->elements; i++) {
      if(n == cap)
        *keys = realloc(*keys, (cap *= 2) * sizeof(**keys));
      (*keys)[n++] = strdup(r->element[1]->element[i]->str);
    }
    freeReplyObject(r);
  } while(strcmp(cursor, "0") != 0);
  return n;
}

static size_t count_value(redisContext *c, const redisReply *v)
{
  if(v->type == REDIS_REPLY_NIL)
    return 0;
  if(v->type != REDIS_REPLY_STRING)
    die(c, "a value is not a string");
  return v->len;
}

static size_t read_mget(redisContext *c, char **keys, size_t n)
{
  size_t bytes = 0;
  const char **argv = malloc((CHUNK + 1) * sizeof(*argv));
  size_t *lens = malloc((CHUNK + 1) * sizeof(*lens));
  argv[0] = "MGET";
  lens[0] = 4;
  for(size_t at = 0; at < n; at += CHUNK) {
    size_t k = n - at < CHUNK ? n - at : CHUNK;
    for(size_t i = 0; i < k; i++) {
      argv[i + 1] = keys[at + i];
      lens[i + 1] = strlen(keys[at + i]);
    }
    redisReply *r = redisCommandArgv(c, (int)k + 1, argv, lens);
    if(!r || r->type != REDIS_REPLY_ARRAY || r->elements != k)
      die(c, "MGET");
    for(size_t i = 0; i < k; i++)
      bytes += count_value(c, r->element[i]);
    freeReplyObject(r);
  }
  free(argv);
  free(lens);
  return bytes;
}

static size_t read_get(redisContext *c, char **keys, size_t n)
{
  size_t bytes = 0;
  for(size_t at = 0; at < n; at += CHUNK) {
    size_t k = n - at < CHUNK ? n - at : CHUNK;
    for(size_t i = 0; i < k; i++)
      redisAppendCommand(c, "GET %s", keys[at + i]);
    for(size_t i = 0; i < k; i++) {
      void *r = NULL;
      if(redisGetReply(c, &r) != REDIS_OK)
        die(c, "GET");
      bytes += count_value(c, r);
      freeReplyObject(r);
    }
  }
  return bytes;
}

int main(int argc, char **argv)
{
  if(argc != 5 && (argc != 6 || (strcmp(argv[5], "mget") && strcmp(argv[5], "get")))) {
    fprintf(stderr, "usage: redis_read_floor HOST PORT DB PATTERN [mget|get]\n");
    return 2;
  }
  int first = argc == 6 && !strcmp(argv[5], "get"), last = argc == 6 ? first : 1;
  for(int way = first; way <= last; way++) {
    double t0 = now();
    redisContext *c = redisConnect(argv[1], atoi(argv[2]));
    if(!c || c->err)
      die(c, "connect");
    redisReply *r = redisCommand(c, "SELECT %s", argv[3]);
    if(!r || r->type == REDIS_REPLY_ERROR)
      die(c, "SELECT");
    freeReplyObject(r);
    char **keys;
    size_t n = scan_keys(c, argv[4], &keys);
    size_t bytes = way == 0 ? read_mget(c, keys, n) : read_get(c, keys, n);
    double t1 = now();
    printf("%s %zu %zu %.6f\n", way == 0 ? "mget" : "get", n, bytes, t1 - t0);
    for(size_t i = 0; i < n; i++)
      free(keys[i]);
    free(keys);
    redisFree(c);
  }
  return 0;
}
