/* Logging: level filter, line format, actor name, and that secrets never
 * reach the output at any level, however they were formatted in. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "m3s/log.h"
#include "check_main.h"

/* Runs fn with stderr redirected to a temporary file; returns what it wrote
 * (caller frees). */
static char *capture(void (*fn)(void))
{
  char path[] = "/tmp/m3s-check-log-XXXXXX";
  int fd = mkstemp(path);
  ck_assert_int_ne(fd, -1);
  unlink(path);
  int saved = dup(2);
  dup2(fd, 2);
  fn();
  dup2(saved, 2);
  close(saved);
  off_t len = lseek(fd, 0, SEEK_END);
  char *buf = calloc(1, (size_t)len + 1);
  ck_assert_int_eq(pread(fd, buf, (size_t)len, 0), len);
  close(fd);
  return buf;
}

static const char *const secrets[] = { "hunter2", "s3cr3t-token-value", "ab", "" };

static void init_with(m3s_log_level_t level)
{
  m3s_log_init(level, secrets, sizeof(secrets) / sizeof(secrets[0]));
}

static void write_levels(void)
{
  m3s_debug("debug line");
  m3s_info("info line");
  m3s_warn("warn line");
  m3s_error("error line");
}

START_TEST(level_filter)
{
  init_with(M3S_LOG_WARN);
  char *out = capture(write_levels);
  ck_assert_ptr_null(strstr(out, "debug line"));
  ck_assert_ptr_null(strstr(out, "info line"));
  ck_assert_ptr_nonnull(strstr(out, "WARN  [main] warn line\n"));
  ck_assert_ptr_nonnull(strstr(out, "ERROR [main] error line\n"));
  free(out);
  m3s_log_shutdown();
}
END_TEST

START_TEST(line_format)
{
  init_with(M3S_LOG_DEBUG);
  char *out = capture(write_levels);
  /* 2026-11-25T01:02:03.123Z DEBUG [main] debug line */
  int y, mo, d, h, mi, s, ms;
  char level[8], name[16];
  ck_assert_int_eq(sscanf(out, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %7s [%15[^]]]", &y, &mo, &d,
                          &h, &mi, &s, &ms, level, name), 9);
  ck_assert_str_eq(level, "DEBUG");
  ck_assert_str_eq(name, "main");
  /* Four lines, each ending in a newline. */
  int lines = 0;
  for(char *p = out; *p; p++)
    lines += *p == '\n';
  ck_assert_int_eq(lines, 4);
  free(out);
  m3s_log_shutdown();
}
END_TEST

static void write_secrets(void)
{
  m3s_debug("password=%s", "hunter2");
  m3s_info("token %s and %s", "s3cr3t-token-value", "hunter2hunter2");
  m3s_warn("embedded:%s:%d", "xs3cr3t-token-valuey", 5);
  m3s_error("short secret ab in cabbage");
}

START_TEST(secrets_scrubbed_at_every_level)
{
  init_with(M3S_LOG_DEBUG);
  char *out = capture(write_secrets);
  ck_assert_ptr_null(strstr(out, "hunter2"));
  ck_assert_ptr_null(strstr(out, "s3cr3t"));
  ck_assert_ptr_null(strstr(out, "ab"));
  ck_assert_ptr_nonnull(strstr(out, "password=***\n"));
  ck_assert_ptr_nonnull(strstr(out, "token *** and ******\n"));
  ck_assert_ptr_nonnull(strstr(out, "embedded:x***y:5\n"));
  ck_assert_ptr_nonnull(strstr(out, "short secret *** in c***bage\n"));
  free(out);
  m3s_log_shutdown();
}
END_TEST

static void write_long(void)
{
  /* A secret right across the 4 KiB line limit must not leave a prefix. */
  char big[8192];
  memset(big, 'x', sizeof(big));
  memcpy(big + 4060, "s3cr3t-token-value", 18);
  big[sizeof(big) - 1] = '\0';
  m3s_info("%s", big);
}

START_TEST(long_line_cut_after_scrubbing)
{
  init_with(M3S_LOG_DEBUG);
  char *out = capture(write_long);
  ck_assert_ptr_null(strstr(out, "s3cr"));
  ck_assert_int_le(strlen(out), 4096);
  ck_assert_int_eq(out[strlen(out) - 1], '\n');
  free(out);
  m3s_log_shutdown();
}
END_TEST

static void *named_thread(void *arg)
{
  m3s_log_set_name("mesos");
  m3s_info("from a thread");
  return arg;
}

static void write_from_thread(void)
{
  pthread_t t;
  pthread_create(&t, NULL, named_thread, NULL);
  pthread_join(t, NULL);
}

START_TEST(thread_name_in_line)
{
  init_with(M3S_LOG_INFO);
  char *out = capture(write_from_thread);
  ck_assert_ptr_nonnull(strstr(out, "INFO  [mesos] from a thread\n"));
  free(out);
  m3s_log_shutdown();
}
END_TEST

START_TEST(parse_levels)
{
  m3s_log_level_t l;
  ck_assert_int_eq(m3s_log_parse_level("DEBUG", &l), 0);
  ck_assert_int_eq(l, M3S_LOG_DEBUG);
  ck_assert_int_eq(m3s_log_parse_level("trace", &l), 0);
  ck_assert_int_eq(l, M3S_LOG_DEBUG);
  ck_assert_int_eq(m3s_log_parse_level("Info", &l), 0);
  ck_assert_int_eq(l, M3S_LOG_INFO);
  ck_assert_int_eq(m3s_log_parse_level("warning", &l), 0);
  ck_assert_int_eq(l, M3S_LOG_WARN);
  ck_assert_int_eq(m3s_log_parse_level("panic", &l), 0);
  ck_assert_int_eq(l, M3S_LOG_ERROR);
  ck_assert_int_eq(m3s_log_parse_level("verbose", &l), -1);
  ck_assert_int_eq(m3s_log_parse_level("", &l), -1);
}
END_TEST

/* The newest kept event's sequence number (0 when none). */
static uint64_t last_seq(void)
{
  static m3s_log_event_t ev[1];
  return m3s_log_recent(ev, 1, 0) ? ev[0].seq : 0;
}

static void write_for_ring(void)
{
  m3s_debug("ring debug line");
  m3s_info("ring info password=%s", "hunter2");
  m3s_warn("ring warn %d", 2);
  m3s_error("ring error s3cr3t-token-value");
}

START_TEST(recent_events_ring)
{
  static m3s_log_event_t ev[M3S_LOG_RECENT + 10];
  init_with(M3S_LOG_DEBUG);
  uint64_t before = last_seq();
  free(capture(write_for_ring));
  /* INFO and above only, oldest first, scrubbed as written. */
  size_t n = m3s_log_recent(ev, 10, before);
  ck_assert_uint_eq(n, 3);
  ck_assert_uint_eq(ev[0].seq, before + 1);
  ck_assert_uint_eq(ev[2].seq, before + 3);
  ck_assert_int_eq(ev[0].level, M3S_LOG_INFO);
  ck_assert_str_eq(ev[0].text, "ring info password=***");
  ck_assert_str_eq(ev[0].actor, "main");
  ck_assert_int_eq(ev[1].level, M3S_LOG_WARN);
  ck_assert_str_eq(ev[1].text, "ring warn 2");
  ck_assert_str_eq(ev[2].text, "ring error ***");
  ck_assert_int_gt(ev[0].time_ms, 1700000000000LL);
  /* after = the newest: nothing new. */
  ck_assert_uint_eq(m3s_log_recent(ev, 10, before + 3), 0);
  /* Only the newest `max` when more are asked for. */
  n = m3s_log_recent(ev, 2, before);
  ck_assert_uint_eq(n, 2);
  ck_assert_str_eq(ev[0].text, "ring warn 2");
  /* The ring keeps the last M3S_LOG_RECENT; long messages are cut. */
  m3s_log_init(M3S_LOG_INFO, NULL, 0);
  int fd = dup(2), null = open("/dev/null", O_WRONLY);
  dup2(null, 2);
  for(int i = 0; i < M3S_LOG_RECENT + 7; i++)
    m3s_info("flood %d %0600d", i, 0);
  dup2(fd, 2);
  close(fd);
  close(null);
  n = m3s_log_recent(ev, M3S_LOG_RECENT + 10, 0);
  ck_assert_uint_eq(n, M3S_LOG_RECENT);
  ck_assert_int_eq(strncmp(ev[0].text, "flood 7 ", 8), 0);
  ck_assert_int_eq(strncmp(ev[n - 1].text, "flood 106 ", 10), 0);
  ck_assert_uint_eq(strlen(ev[n - 1].text), M3S_LOG_EVENT_TEXT - 1);
  for(size_t i = 1; i < n; i++)
    ck_assert_uint_eq(ev[i].seq, ev[i - 1].seq + 1);
  m3s_log_shutdown();
}
END_TEST

/* Writers on several threads while a reader copies: every copy is a run of
 * consecutive events, each whole (ThreadSanitizer checks the locking). */
static void *ring_writer(void *arg)
{
  m3s_log_set_name(arg);
  for(int i = 0; i < 2000; i++)
    m3s_info("w %s %d", (const char *)arg, i);
  return NULL;
}

START_TEST(recent_events_concurrent)
{
  static m3s_log_event_t ev[M3S_LOG_RECENT];
  m3s_log_init(M3S_LOG_INFO, NULL, 0);
  int fd = dup(2), null = open("/dev/null", O_WRONLY);
  dup2(null, 2);
  static const char *const names[] = { "w1", "w2", "w3" };
  pthread_t t[3];
  for(int i = 0; i < 3; i++)
    pthread_create(&t[i], NULL, ring_writer, (void *)names[i]);
  for(int k = 0; k < 200; k++) {
    size_t n = m3s_log_recent(ev, M3S_LOG_RECENT, 0);
    for(size_t i = 1; i < n; i++)
      ck_assert_uint_eq(ev[i].seq, ev[i - 1].seq + 1);
    for(size_t i = 0; i < n; i++)
      if(ev[i].text[0] == 'w' && ev[i].text[1] == ' ')
        ck_assert_int_eq(strncmp(ev[i].text + 2, ev[i].actor, 2), 0);
  }
  for(int i = 0; i < 3; i++)
    pthread_join(t[i], NULL);
  dup2(fd, 2);
  close(fd);
  close(null);
  m3s_log_shutdown();
}
END_TEST

int main(void)
{
  Suite *s = suite_create("log");
  TCase *tc = tcase_create("log");
  tcase_add_test(tc, level_filter);
  tcase_add_test(tc, line_format);
  tcase_add_test(tc, secrets_scrubbed_at_every_level);
  tcase_add_test(tc, long_line_cut_after_scrubbing);
  tcase_add_test(tc, thread_name_in_line);
  tcase_add_test(tc, parse_levels);
  tcase_add_test(tc, recent_events_ring);
  tcase_add_test(tc, recent_events_concurrent);
  suite_add_tcase(s, tc);
  return m3s_check_run(s);
}
