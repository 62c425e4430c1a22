/* Redis Sentinel look-up. See include/m3s/sentinel.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "m3s/sentinel.h"
#include "m3s/xalloc.h"

bool m3s_split_hostport(const char *hp, char *host, size_t hlen, int *port)
{
  const char *colon = strrchr(hp, ':');
  if(!colon || colon == hp)
    return false;
  const char *h = hp;
  size_t n = (size_t)(colon - hp);
  if(h[0] == '[' && n >= 2 && h[n - 1] == ']') {
    h++;
    n -= 2;
  }
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if(n == 0 || n >= hlen || *end || p <= 0 || p > 65535)
    return false;
  memcpy(host, h, n);
  host[n] = '\0';
  *port = (int)p;
  return true;
}

void m3s_format_hostport(char *buf, size_t len, const char *host, int port)
{
  snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/* One sentinel's answer. */
static bool ask_one(const char *sentinel, const char *name, const char *password, int timeout_ms,
                    char *host, size_t hlen, int *port, char *err, size_t errlen)
{
  struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
  char shost[256];
  int sport;
  bool ok = false;
  redisReply *r = NULL;
  if(!m3s_split_hostport(sentinel, shost, sizeof(shost), &sport)) {
    snprintf(err, errlen, "sentinel \"%s\" is not host:port", sentinel);
    return false;
  }
  redisContext *c = redisConnectWithTimeout(shost, sport, tv);
  if(!c || c->err) {
    snprintf(err, errlen, "sentinel %s: %s", sentinel, c ? c->errstr : "out of memory");
    goto out;
  }
  redisSetTimeout(c, tv);
  if(password && password[0]) {
    r = redisCommand(c, "AUTH %b", password, strlen(password));
    if(!r || r->type == REDIS_REPLY_ERROR) {
      snprintf(err, errlen, "sentinel %s refused the sentinel password: %s", sentinel,
               r ? r->str : c->errstr);
      goto out;
    }
    freeReplyObject(r);
  }
  r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", name);
  if(!r) {
    snprintf(err, errlen, "sentinel %s: %s", sentinel, c->errstr);
    goto out;
  }
  if(r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
     r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING) {
    snprintf(err, errlen, "sentinel %s does not know a master named %s%s%s", sentinel, name,
             r->type == REDIS_REPLY_ERROR ? ": " : "",
             r->type == REDIS_REPLY_ERROR ? r->str : "");
    goto out;
  }
  snprintf(host, hlen, "%s", r->element[0]->str);
  *port = atoi(r->element[1]->str);
  ok = *port > 0;
  if(!ok)
    snprintf(err, errlen, "sentinel %s named a master without a port", sentinel);
out:
  if(r)
    freeReplyObject(r);
  if(c)
    redisFree(c);
  return ok;
}

bool m3s_sentinel_master(const char *sentinels, const char *name, const char *password,
                         int timeout_ms, char *host, size_t hlen, int *port, char *err,
                         size_t errlen)
{
  char *list = m3s_xstrdup(sentinels), *save = NULL;
  bool ok = false;
  snprintf(err, errlen, "no sentinel given");
  for(char *t = strtok_r(list, ", ", &save); t && !ok; t = strtok_r(NULL, ", ", &save))
    ok = ask_one(t, name, password, timeout_ms, host, hlen, port, err, errlen);
  free(list);
  return ok;
}

bool m3s_redis_is_master(redisContext *c, char *role, size_t len)
{
  redisReply *r = redisCommand(c, "ROLE");
  bool ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
            r->element[0]->type == REDIS_REPLY_STRING;
  snprintf(role, len, "%s", ok ? r->element[0]->str : r ? "(unexpected ROLE reply)" : "(no reply)");
  ok = ok && !strcmp(role, "master");
  if(r)
    freeReplyObject(r);
  return ok;
}
