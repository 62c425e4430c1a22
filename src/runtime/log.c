/* Level-checked logging with secret scrubbing; see include/m3s/log.h.
 *
 * Each line is formatted into a stack buffer, scrubbed, and written with a
 * single write(2), so lines from different threads never interleave. The
 * level and the secret list are written only by m3s_log_init, before any
 * thread starts, and only read afterwards.
 *
 * Lines of level INFO and above are also kept, scrubbed as written, in a
 * ring of the last M3S_LOG_RECENT (the status page's recent events). The
 * ring has its own mutex, held only to copy one event in or the kept ones
 * out; the line is parsed and the event built before it is taken.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "m3s/log.h"
#include "m3s/xalloc.h"

#define LINE_MAX_BYTES 4096

m3s_log_level_t m3s__log_level = M3S_LOG_INFO;
static char **secrets;
static size_t nsecrets;
static _Thread_local const char *thread_name = "main";

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;
static m3s_log_event_t ring[M3S_LOG_RECENT]; /* under ring_lock */
static uint64_t ring_seq;                    /* under ring_lock: events kept so far */

const char *m3s_log_level_name(m3s_log_level_t level)
{
  return level <= M3S_LOG_ERROR ? level_names[level] : "?";
}

int m3s_log_parse_level(const char *s, m3s_log_level_t *out)
{
  static const struct { const char *name; m3s_log_level_t level; } names[] = {
    { "trace", M3S_LOG_DEBUG }, { "debug", M3S_LOG_DEBUG },
    { "info", M3S_LOG_INFO },   { "warn", M3S_LOG_WARN },
    { "warning", M3S_LOG_WARN }, { "error", M3S_LOG_ERROR },
    { "fatal", M3S_LOG_ERROR }, { "panic", M3S_LOG_ERROR },
  };
  for(size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
    if(strcasecmp(s, names[i].name) == 0) {
      *out = names[i].level;
      return 0;
    }
  }
  return -1;
}

static int longer_first(const void *a, const void *b)
{
  size_t la = strlen(*(char *const *)a), lb = strlen(*(char *const *)b);
  return la < lb ? 1 : la > lb ? -1 : 0;
}

void m3s_log_shutdown(void)
{
  for(size_t i = 0; i < nsecrets; i++)
    free(secrets[i]);
  free(secrets);
  secrets = NULL;
  nsecrets = 0;
}

void m3s_log_init(m3s_log_level_t level, const char *const *list, size_t n)
{
  m3s_log_shutdown();
  m3s__log_level = level;
  secrets = n ? m3s_xcalloc(n, sizeof(*secrets)) : NULL;
  for(size_t i = 0; i < n; i++)
    if(list[i] && list[i][0])
      secrets[nsecrets++] = m3s_xstrdup(list[i]);
  /* Longest first, so a secret that contains another is masked whole. */
  if(nsecrets > 1)
    qsort(secrets, nsecrets, sizeof(*secrets), longer_first);
}

void m3s_log_set_name(const char *name)
{
  thread_name = name ? name : "main";
}

/* Replaces, in place, every occurrence of every secret in the NUL-terminated
 * buf by "***". buf has room for the growth: the caller allocates 3 bytes per
 * character, the worst case (every character a one-character secret). */
static void scrub(char *buf)
{
  static const char mask[] = "***";
  for(size_t i = 0; i < nsecrets; i++) {
    const char *s = secrets[i];
    size_t sl = strlen(s);
    char *p = buf;
    while((p = strstr(p, s)) != NULL) {
      memmove(p + 3, p + sl, strlen(p + sl) + 1);
      memcpy(p, mask, 3);
      p += 3;
    }
  }
}

/* Keeps the scrubbed line[0..len) as the newest event. The actor and the
 * message are taken from the line itself ("... [actor] message"), so they
 * are exactly what was written, scrubbing included. */
static void ring_put(m3s_log_level_t level, const struct timespec *ts, const char *line,
                     size_t len)
{
  m3s_log_event_t ev;
  const char *end = line + len, *msg = line;
  const char *open = memchr(line, '[', len);
  const char *close = open ? memmem(open, (size_t)(end - open), "] ", 2) : NULL;

  ev.time_ms = (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000L;
  ev.level = level;
  ev.actor[0] = '\0';
  if(close) {
    size_t an = (size_t)(close - open - 1);
    if(an >= sizeof(ev.actor))
      an = sizeof(ev.actor) - 1;
    memcpy(ev.actor, open + 1, an);
    ev.actor[an] = '\0';
    msg = close + 2;
  }
  size_t mn = (size_t)(end - msg);
  if(mn >= sizeof(ev.text))
    mn = sizeof(ev.text) - 1;
  memcpy(ev.text, msg, mn);
  ev.text[mn] = '\0';

  pthread_mutex_lock(&ring_lock);
  ev.seq = ++ring_seq;
  ring[(ev.seq - 1) % M3S_LOG_RECENT] = ev;
  pthread_mutex_unlock(&ring_lock);
}

size_t m3s_log_recent(m3s_log_event_t *out, size_t max, uint64_t after)
{
  size_t n = 0;
  if(max == 0)
    return 0;
  pthread_mutex_lock(&ring_lock);
  uint64_t last = ring_seq;
  uint64_t first = last > M3S_LOG_RECENT ? last - M3S_LOG_RECENT + 1 : 1;
  if(first <= after)
    first = after + 1;
  if(first <= last && last - first >= max)
    first = last - max + 1;
  for(uint64_t s = first; s <= last; s++)
    out[n++] = ring[(s - 1) % M3S_LOG_RECENT];
  pthread_mutex_unlock(&ring_lock);
  return n;
}

void m3s__log_write(m3s_log_level_t level, const char *fmt, ...)
{
  char stack[LINE_MAX_BYTES * 3];
  char *line = stack;
  size_t cap = sizeof(stack);
  struct timespec ts;
  struct tm tm;
  va_list ap;
  int head, body;

  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  head = snprintf(line, LINE_MAX_BYTES, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                  tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                  tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
                  m3s_log_level_name(level), thread_name);
  va_start(ap, fmt);
  body = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if(head < 0 || head >= LINE_MAX_BYTES || body < 0)
    return;
  /* The whole message is formatted and scrubbed before it is cut to the line
   * limit, so a cut can never leave half a secret behind. */
  if(((size_t)head + (size_t)body + 1) * 3 > cap) {
    cap = ((size_t)head + (size_t)body + 1) * 3;
    line = malloc(cap);
    if(!line)
      return;
    memcpy(line, stack, (size_t)head);
  }
  va_start(ap, fmt);
  vsnprintf(line + head, (size_t)body + 1, fmt, ap);
  va_end(ap);
  if(nsecrets)
    scrub(line);
  size_t len = strlen(line);
  if(len > LINE_MAX_BYTES - 1)
    len = LINE_MAX_BYTES - 1;
  if(level >= M3S_LOG_INFO)
    ring_put(level, &ts, line, len);
  line[len++] = '\n';
  ssize_t w = write(2, line, len);
  (void)w;
  if(line != stack)
    free(line);
}
