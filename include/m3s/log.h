/* Logging: one line per call, one write(2) to stderr per line.
 *
 *   2026-11-25T01:02:03.123Z INFO  [mesos] subscribed as 7f1c...-0001
 *
 * The level and the secret list are set once by m3s_log_init() before any
 * thread starts and are read-only afterwards. The actor name is per thread
 * (m3s_log_set_name), so a line always says which actor wrote it.
 *
 * Secrets: every string registered at init (passwords, tokens, keys from the
 * configuration) is replaced by "***" in every line before it is written, at
 * every level, whatever the caller formatted into it.
 */
#ifndef M3S_LOG_H
#define M3S_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum m3s_log_level {
  M3S_LOG_DEBUG = 0,
  M3S_LOG_INFO = 1,
  M3S_LOG_WARN = 2,
  M3S_LOG_ERROR = 3,
} m3s_log_level_t;

/* Main thread only, before any other thread exists. Copies the secrets;
 * empty strings are ignored. Calling it again replaces the previous set. */
void m3s_log_init(m3s_log_level_t level, const char *const *secrets, size_t nsecrets);
/* Frees what m3s_log_init copied (end of main, after every thread joined). */
void m3s_log_shutdown(void);

/* Parses debug/info/warn/error (any case; also trace=debug, warning=warn,
 * fatal/panic=error as the original accepted). Returns 0 or -1. */
int m3s_log_parse_level(const char *s, m3s_log_level_t *out);
const char *m3s_log_level_name(m3s_log_level_t level);

/* Name shown in brackets for lines written by the calling thread. The string
 * must outlive the thread (actor names are static or owned by the actor). */
void m3s_log_set_name(const char *name);

extern m3s_log_level_t m3s__log_level;
void m3s__log_write(m3s_log_level_t level, const char *fmt, ...)
  __attribute__((format(printf, 2, 3)));

/* The level is checked before any formatting happens. */
#define m3s_log(level, ...) \
  do { \
    if((level) >= m3s__log_level) \
      m3s__log_write((level), __VA_ARGS__); \
  } while(0)

/* Recent events: the last M3S_LOG_RECENT lines of level INFO and above,
 * kept in memory (as written, secrets already scrubbed; the message cut to
 * M3S_LOG_EVENT_TEXT - 1 bytes) for the status page. */
#define M3S_LOG_RECENT 100
#define M3S_LOG_EVENT_TEXT 512

typedef struct m3s_log_event {
  uint64_t seq;                     /* 1, 2, ... in the order written */
  int64_t time_ms;                  /* wall clock, ms since the epoch */
  m3s_log_level_t level;
  char actor[32];                   /* the thread's name, as in the line */
  char text[M3S_LOG_EVENT_TEXT];    /* the message after "[actor] " */
} m3s_log_event_t;

/* Copies the kept events with seq > after, oldest first, at most max of
 * them (the newest max when there are more), into out. Returns how many.
 * Any thread; it only holds the ring's lock while copying. */
size_t m3s_log_recent(m3s_log_event_t *out, size_t max, uint64_t after);

#define m3s_debug(...) m3s_log(M3S_LOG_DEBUG, __VA_ARGS__)
#define m3s_info(...) m3s_log(M3S_LOG_INFO, __VA_ARGS__)
#define m3s_warn(...) m3s_log(M3S_LOG_WARN, __VA_ARGS__)
#define m3s_error(...) m3s_log(M3S_LOG_ERROR, __VA_ARGS__)

#endif
