/* Unit tests of the RecordIO decoder (src/actors/recordio.c).
 *
 * The main input is a real SUBSCRIBE session captured from a Mesos 1.11
 * master (tests/data/mesos/session.recordio, 70 events). The expected
 * records are not computed by a second RecordIO decoder: they come from the
 * HTTP capture of the same session (session.http.bin), where the master put
 * each record in its own HTTP chunk, so de-chunking gives them
 * independently.
 *
 * The data directory is argv[1], else the compile definition
 * M3S_TEST_DATA_DIR (.../tests/data/mesos). The random test prints its seed;
 * set M3S_TEST_SEED to replay one.
 */
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/recordio.h"
#include "check_data.h"


/* ---- helpers ---- */

/* The captured session: the RecordIO body and the records taken from the
 * HTTP chunks (pointers into http). */
#define NREC_MAX 128
static struct {
  char *body;
  size_t body_len;
  char *http;
  size_t http_len;
  const char *rec[NREC_MAX];
  size_t rec_len[NREC_MAX];
  size_t nrec;
  size_t max_rec;
} cap;

static void load_capture(void)
{
  const char *p, *end;

  cap.body = read_file("session.recordio", &cap.body_len);
  cap.http = read_file("session.http.bin", &cap.http_len);
  end = cap.http + cap.http_len;
  p = strstr(cap.http, "\r\n\r\n");
  ck_assert_ptr_nonnull(p);
  p += 4;
  /* Chunked body: <hex>\r\n<data>\r\n ... 0\r\n\r\n. Each data part is one
   * "<len>\n<record>" in this capture (README, fact 1). */
  for(;;) {
    char *hex_end;
    unsigned long csize = strtoul(p, &hex_end, 16);
    const char *data, *nl;

    ck_assert(hex_end[0] == '\r' && hex_end[1] == '\n');
    data = hex_end + 2;
    if(csize == 0)
      break;
    ck_assert(data + csize + 2 <= end);
    nl = memchr(data, '\n', csize);
    ck_assert_ptr_nonnull(nl);
    ck_assert_uint_lt(cap.nrec, NREC_MAX);
    cap.rec[cap.nrec] = nl + 1;
    cap.rec_len[cap.nrec] = csize - (size_t)(nl + 1 - data);
    ck_assert_uint_eq(strtoul(data, NULL, 10), cap.rec_len[cap.nrec]);
    if(cap.rec_len[cap.nrec] > cap.max_rec)
      cap.max_rec = cap.rec_len[cap.nrec];
    cap.nrec++;
    p = data + csize + 2;
  }
  /* Counts of the capture README: 1 SUBSCRIBED, 8 HEARTBEAT, 19 OFFERS,
   * 39 UPDATE, 1 RESCIND, 1 FAILURE, 1 ERROR. */
  ck_assert_uint_eq(cap.nrec, 70);
}

static void free_capture(void)
{
  free(cap.body);
  free(cap.http);
  memset(&cap, 0, sizeof(cap));
}

/* Checks every delivered record against the expected list. Failures are
 * noted, not asserted, so the hot loops stay cheap; the caller asserts. */
typedef struct collect {
  const char *const *rec;
  const size_t *rec_len;
  size_t nexp;
  size_t n;               /* records delivered */
  bool bad;
  char why[200];
  /* When set, the current fragment, to check whether rec points into it. */
  const char *frag;
  size_t frag_len;
  size_t in_place;        /* records delivered from inside the fragment */
  size_t copied;
  int stop_at;            /* return stop_val on this record (1-based); 0 = never */
  int stop_val;
} collect_t;

static int collect_cb(void *ctx, const char *rec, size_t len)
{
  collect_t *c = ctx;

  if(c->frag) {
    if(rec >= c->frag && rec + len <= c->frag + c->frag_len)
      c->in_place++;
    else
      c->copied++;
  }
  if(c->n >= c->nexp) {
    if(!c->bad)
      snprintf(c->why, sizeof(c->why), "extra record %zu (len %zu)", c->n, len);
    c->bad = true;
  } else if(len != c->rec_len[c->n] || (len && memcmp(rec, c->rec[c->n], len) != 0)) {
    if(!c->bad)
      snprintf(c->why, sizeof(c->why), "record %zu differs (len %zu, expected %zu)",
               c->n, len, c->rec_len[c->n]);
    c->bad = true;
  }
  c->n++;
  if(c->stop_at && (int)c->n == c->stop_at)
    return c->stop_val;
  return 0;
}

static collect_t expect_capture(void)
{
  collect_t c = { .rec = cap.rec, .rec_len = cap.rec_len, .nexp = cap.nrec };
  return c;
}

static void assert_complete(const collect_t *c, const char *what)
{
  ck_assert_msg(!c->bad, "%s: %s", what, c->why);
  ck_assert_msg(c->n == c->nexp, "%s: %zu records, expected %zu", what, c->n, c->nexp);
}

/* Feeds buf in fragments of the given sizes (the last one takes the rest). */
static int feed_frag(m3s_recordio_t *d, collect_t *c, const char *buf, size_t len,
                     size_t frag)
{
  for(size_t off = 0; off < len; off += frag) {
    size_t n = len - off < frag ? len - off : frag;
    int rc = m3s_recordio_feed(d, buf + off, n, collect_cb, c);

    if(rc)
      return rc;
  }
  return 0;
}

/* ---- the captured stream ---- */

START_TEST(test_capture_reference)
{
  /* The de-chunked HTTP body is byte for byte the RecordIO capture. */
  size_t off = 0;

  for(size_t i = 0; i < cap.nrec; i++) {
    char hdr[32];
    int n = snprintf(hdr, sizeof(hdr), "%zu\n", cap.rec_len[i]);

    ck_assert(off + (size_t)n + cap.rec_len[i] <= cap.body_len);
    ck_assert(memcmp(cap.body + off, hdr, (size_t)n) == 0);
    off += (size_t)n;
    ck_assert(memcmp(cap.body + off, cap.rec[i], cap.rec_len[i]) == 0);
    off += cap.rec_len[i];
  }
  ck_assert_uint_eq(off, cap.body_len);
}
END_TEST

START_TEST(test_capture_all_at_once)
{
  m3s_recordio_t d;
  collect_t c = expect_capture();

  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  c.frag = cap.body;
  c.frag_len = cap.body_len;
  ck_assert_int_eq(m3s_recordio_feed(&d, cap.body, cap.body_len, collect_cb, &c), 0);
  assert_complete(&c, "all at once");
  /* Every record was inside the one fragment: none was copied. */
  ck_assert_uint_eq(c.in_place, cap.nrec);
  ck_assert_uint_eq(c.copied, 0);
  ck_assert_ptr_null(d.buf);
  m3s_recordio_free(&d);
}
END_TEST

START_TEST(test_capture_split_everywhere)
{
  m3s_recordio_t d;

  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  for(size_t k = 0; k <= cap.body_len; k++) {
    collect_t c = expect_capture();
    int rc;

    m3s_recordio_reset(&d);
    rc = m3s_recordio_feed(&d, cap.body, k, collect_cb, &c);
    if(rc == 0)
      rc = m3s_recordio_feed(&d, cap.body + k, cap.body_len - k, collect_cb, &c);
    ck_assert_msg(rc == 0, "split at %zu: rc %d", k, rc);
    ck_assert_msg(!c.bad && c.n == cap.nrec, "split at %zu: %s (%zu records)", k,
                  c.why, c.n);
    /* Between records the decoder holds nothing. */
    ck_assert_msg(!d.in_record && d.ndigits == 0, "split at %zu: left mid-record", k);
  }
  m3s_recordio_free(&d);
}
END_TEST

START_TEST(test_capture_byte_by_byte)
{
  m3s_recordio_t d;
  collect_t c = expect_capture();

  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  ck_assert_int_eq(feed_frag(&d, &c, cap.body, cap.body_len, 1), 0);
  assert_complete(&c, "byte by byte");
  /* The buffer never outgrew the largest record. */
  ck_assert_uint_le(d.cap, cap.max_rec);
  m3s_recordio_free(&d);
}
END_TEST

START_TEST(test_capture_merged_frames)
{
  m3s_recordio_t d;
  size_t frame_end[NREC_MAX], off = 0;

  /* Where each frame ("<len>\n<record>") ends in the body. */
  for(size_t i = 0; i < cap.nrec; i++) {
    char hdr[32];

    off += (size_t)snprintf(hdr, sizeof(hdr), "%zu\n", cap.rec_len[i]) + cap.rec_len[i];
    frame_end[i] = off;
  }
  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  /* Fragments of k whole frames each, as a proxy that coalesces chunks
   * would produce: every record is in place, none copied. */
  for(size_t k = 1; k <= 8; k++) {
    collect_t c = expect_capture();
    size_t start = 0;

    m3s_recordio_reset(&d);
    for(size_t i = k - 1; start < cap.body_len; i += k) {
      size_t end = i < cap.nrec ? frame_end[i] : cap.body_len;

      c.frag = cap.body + start;
      c.frag_len = end - start;
      ck_assert_int_eq(m3s_recordio_feed(&d, cap.body + start, end - start,
                                         collect_cb, &c), 0);
      start = end;
    }
    assert_complete(&c, "merged frames");
    ck_assert_uint_eq(c.copied, 0);
    ck_assert_ptr_null(d.buf);
  }

  /* The whole session twice in one fragment: 140 records. */
  {
    char *twice = malloc(2 * cap.body_len);
    const char *rec2[2 * NREC_MAX];
    size_t len2[2 * NREC_MAX];
    collect_t c = { .rec = rec2, .rec_len = len2, .nexp = 2 * cap.nrec };

    ck_assert_ptr_nonnull(twice);
    memcpy(twice, cap.body, cap.body_len);
    memcpy(twice + cap.body_len, cap.body, cap.body_len);
    for(size_t i = 0; i < 2 * cap.nrec; i++) {
      rec2[i] = cap.rec[i % cap.nrec];
      len2[i] = cap.rec_len[i % cap.nrec];
    }
    m3s_recordio_reset(&d);
    ck_assert_int_eq(m3s_recordio_feed(&d, twice, 2 * cap.body_len, collect_cb, &c), 0);
    assert_complete(&c, "twice");
    free(twice);
  }
  m3s_recordio_free(&d);
}
END_TEST

static uint64_t rng_state;

static uint64_t rng(void)
{
  /* xorshift64*: small, seedable, good enough to pick fragment sizes. */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return rng_state * 2685821657736338717ULL;
}

START_TEST(test_capture_random_fragments)
{
  const char *env = getenv("M3S_TEST_SEED");
  uint64_t seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
  m3s_recordio_t d;

  if(seed == 0)
    seed = 1;
  printf("check_recordio: random fragmentation seed %" PRIu64
         " (replay with M3S_TEST_SEED=%" PRIu64 ")\n", seed, seed);
  fflush(stdout);
  rng_state = seed;
  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  for(int round = 0; round < 300; round++) {
    collect_t c = expect_capture();
    size_t off = 0;
    /* Mix small and large fragments: sizes up to a few records long. */
    size_t maxfrag = (size_t)(1 + rng() % (round % 3 == 0 ? 16 : 3 * cap.max_rec));

    m3s_recordio_reset(&d);
    while(off < cap.body_len) {
      size_t n = (size_t)(rng() % maxfrag) + 1;
      int rc;

      if(n > cap.body_len - off)
        n = cap.body_len - off;
      rc = m3s_recordio_feed(&d, cap.body + off, n, collect_cb, &c);
      ck_assert_msg(rc == 0, "seed %" PRIu64 " round %d: rc %d", seed, round, rc);
      off += n;
    }
    ck_assert_msg(!c.bad && c.n == cap.nrec, "seed %" PRIu64 " round %d: %s (%zu records)",
                  seed, round, c.why, c.n);
  }
  m3s_recordio_free(&d);
}
END_TEST

/* ---- framing edge cases ---- */

/* Feeds s (NUL-terminated) split in two at every offset (which includes all
 * at once) and byte by byte, and checks the same result and records every
 * way: a framing error must not depend on where fragments end. */
static void expect_stream(size_t max, const char *s, int want_rc,
                          const char *const *recs, size_t nrecs)
{
  size_t lens[16];
  size_t len = strlen(s);

  ck_assert_uint_le(nrecs, 16);
  for(size_t i = 0; i < nrecs; i++)
    lens[i] = strlen(recs[i]);
  for(size_t k = 0; k <= len + 1; k++) {
    m3s_recordio_t d;
    collect_t c = { .rec = recs, .rec_len = lens, .nexp = nrecs };
    int rc;

    m3s_recordio_init(&d, max);
    if(k <= len) {
      rc = m3s_recordio_feed(&d, s, k, collect_cb, &c);
      if(rc == 0)
        rc = m3s_recordio_feed(&d, s + k, len - k, collect_cb, &c);
    } else {
      rc = feed_frag(&d, &c, s, len, 1);
    }
    ck_assert_msg(rc == want_rc, "\"%s\" (split %zu): rc %d, expected %d", s, k, rc,
                  want_rc);
    ck_assert_msg(!c.bad, "\"%s\" (split %zu): %s", s, k, c.why);
    ck_assert_msg(c.n == nrecs, "\"%s\" (split %zu): %zu records, expected %zu", s, k,
                  c.n, nrecs);
    m3s_recordio_free(&d);
  }
}

START_TEST(test_zero_length_record)
{
  static const char *const one_empty[] = { "" };
  static const char *const mix[] = { "", "{}", "", "" };

  expect_stream(100, "0\n", 0, one_empty, 1);
  expect_stream(100, "0\n2\n{}0\n00\n", 0, mix, 4);
  /* A zero cap still allows empty records. */
  expect_stream(0, "0\n", 0, one_empty, 1);
}
END_TEST

START_TEST(test_leading_zeros_and_partial)
{
  static const char *const recs[] = { "abc" };
  m3s_recordio_t d;
  collect_t c = { .rec = recs, .rec_len = (size_t[]){ 3 }, .nexp = 1 };

  expect_stream(100, "003\nabc", 0, recs, 1);
  /* A stream that stops mid-record or mid-length is not an error yet: the
   * rest may come in the next fragment. */
  m3s_recordio_init(&d, 100);
  ck_assert_int_eq(m3s_recordio_feed(&d, "3\nab", 4, collect_cb, &c), 0);
  ck_assert_uint_eq(c.n, 0);
  ck_assert_int_eq(m3s_recordio_feed(&d, "c1", 2, collect_cb, &c), 0);
  ck_assert_uint_eq(c.n, 1);
  ck_assert(!c.bad);
  /* Reset drops the partial length "1". */
  m3s_recordio_reset(&d);
  c.n = 0;
  ck_assert_int_eq(m3s_recordio_feed(&d, "3\nabc", 5, collect_cb, &c), 0);
  ck_assert_uint_eq(c.n, 1);
  ck_assert(!c.bad);
  /* Nothing to feed is fine. */
  ck_assert_int_eq(m3s_recordio_feed(&d, NULL, 0, collect_cb, &c), 0);
  m3s_recordio_free(&d);
}
END_TEST

static const char *const bad_lengths[] = {
  "abc\n",
  "-1\n",
  "12a\n",
  "123456789012345678901\n",     /* 21 digits */
  "000000000000000000000\n",     /* 21 digits, even if the value is 0 */
  "20\r\n{\"type\":\"HEARTBEAT\"}",
  "\n",
  "+5\n",
  " 5\n",
  "5 \n",
  "0x10\n",
  "5\t\n",
  "2\n{}x\n",                    /* good record, then a bad length */
};

START_TEST(test_bad_length_lines)
{
  for(size_t i = 0; i < sizeof(bad_lengths) / sizeof(bad_lengths[0]); i++) {
    const char *s = bad_lengths[i];
    static const char *const first[] = { "{}" };
    bool has_good = strncmp(s, "2\n{}", 4) == 0;

    expect_stream(1024, s, -EPROTO, first, has_good ? 1 : 0);
  }
}
END_TEST

START_TEST(test_errors_are_sticky)
{
  m3s_recordio_t d;
  collect_t c = { .rec = (const char *[]){ "{}" }, .rec_len = (size_t[]){ 2 }, .nexp = 1 };

  m3s_recordio_init(&d, 1024);
  ck_assert_int_eq(m3s_recordio_feed(&d, "-1\n", 3, collect_cb, &c), -EPROTO);
  /* Valid data afterwards changes nothing and reaches no callback. */
  ck_assert_int_eq(m3s_recordio_feed(&d, "2\n{}", 4, collect_cb, &c), -EPROTO);
  ck_assert_int_eq(m3s_recordio_feed(&d, NULL, 0, collect_cb, &c), -EPROTO);
  ck_assert_uint_eq(c.n, 0);
  /* Until reset. */
  m3s_recordio_reset(&d);
  ck_assert_int_eq(m3s_recordio_feed(&d, "2\n{}", 4, collect_cb, &c), 0);
  ck_assert_uint_eq(c.n, 1);
  ck_assert(!c.bad);

  /* -E2BIG is sticky too. */
  c.n = 0;
  m3s_recordio_reset(&d);
  ck_assert_int_eq(m3s_recordio_feed(&d, "2000\n", 5, collect_cb, &c), -E2BIG);
  ck_assert_int_eq(m3s_recordio_feed(&d, "2\n{}", 4, collect_cb, &c), -E2BIG);
  ck_assert_uint_eq(c.n, 0);
  m3s_recordio_free(&d);
}
END_TEST

START_TEST(test_oversized_length)
{
  static const char *const none[] = { NULL };
  static const char *const at_cap[] = { "0123456789012345" };
  m3s_recordio_t d;
  collect_t c = { .nexp = 0 };

  /* A huge claimed length fails at its '\n' and allocates nothing: if the
   * decoder tried to reserve it, ASan would report the allocation (it is
   * far above ASan's allocation limit) and d.cap would show it. */
  m3s_recordio_init(&d, 16);
  ck_assert_int_eq(m3s_recordio_feed(&d, "99999999999999999\n", 18, collect_cb, &c), -E2BIG);
  ck_assert_ptr_null(d.buf);
  ck_assert_uint_eq(d.cap, 0);
  m3s_recordio_free(&d);

  expect_stream(16, "17\n", -E2BIG, none, 0);
  expect_stream(16, "99999999999999999\n", -E2BIG, none, 0);
  /* 20 digits: the largest uint64, and a value beyond uint64. */
  expect_stream(M3S_RECORDIO_DEFAULT_MAX, "18446744073709551615\n", -E2BIG, none, 0);
  expect_stream(M3S_RECORDIO_DEFAULT_MAX, "99999999999999999999\n", -E2BIG, none, 0);
  /* Exactly the cap is fine. */
  expect_stream(16, "16\n0123456789012345", 0, at_cap, 1);
}
END_TEST

START_TEST(test_buffer_bounded_by_record)
{
  m3s_recordio_t d;
  char *big = malloc(10000);
  char hdr[16];
  collect_t c;

  ck_assert_ptr_nonnull(big);
  for(size_t i = 0; i < 10000; i++)
    big[i] = (char)('a' + i % 26);
  c = (collect_t){ .rec = (const char *[]){ big }, .rec_len = (size_t[]){ 10000 }, .nexp = 1 };
  m3s_recordio_init(&d, 1 << 20);
  snprintf(hdr, sizeof(hdr), "%d\n", 10000);
  ck_assert_int_eq(m3s_recordio_feed(&d, hdr, strlen(hdr), collect_cb, &c), 0);
  /* The length alone allocates nothing: memory follows the bytes. */
  ck_assert_ptr_null(d.buf);
  for(size_t off = 0; off < 10000; off += 7) {
    size_t n = 10000 - off < 7 ? 10000 - off : 7;

    ck_assert_int_eq(m3s_recordio_feed(&d, big + off, n, collect_cb, &c), 0);
    if(c.n == 0) {
      ck_assert_uint_le(d.cap, 10000);
      ck_assert_uint_ge(d.cap, off + n);
    }
  }
  ck_assert_uint_eq(c.n, 1);
  ck_assert(!c.bad);
  m3s_recordio_free(&d);
  free(big);
}
END_TEST

START_TEST(test_callback_stop)
{
  m3s_recordio_t d;

  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  for(int v = 0; v < 2; v++) {
    int stop_val = v ? -7 : 42;
    collect_t c = expect_capture();

    c.stop_at = 3;
    c.stop_val = stop_val;
    m3s_recordio_reset(&d);
    /* Whole stream at once: feeding stops right after the third record. */
    ck_assert_int_eq(m3s_recordio_feed(&d, cap.body, cap.body_len, collect_cb, &c), stop_val);
    ck_assert_uint_eq(c.n, 3);
    ck_assert(!c.bad);
    /* Sticky: no more records, same value. */
    ck_assert_int_eq(m3s_recordio_feed(&d, cap.body, cap.body_len, collect_cb, &c), stop_val);
    ck_assert_uint_eq(c.n, 3);

    /* Byte by byte (the third record comes from the buffer). */
    c = expect_capture();
    c.stop_at = 3;
    c.stop_val = stop_val;
    m3s_recordio_reset(&d);
    ck_assert_int_eq(feed_frag(&d, &c, cap.body, cap.body_len, 1), stop_val);
    ck_assert_uint_eq(c.n, 3);
  }
  /* After reset the decoder reads a new stream from its start. */
  {
    collect_t c = expect_capture();

    m3s_recordio_reset(&d);
    ck_assert_int_eq(m3s_recordio_feed(&d, cap.body, cap.body_len, collect_cb, &c), 0);
    assert_complete(&c, "after stop and reset");
  }
  m3s_recordio_free(&d);
}
END_TEST

static Suite *recordio_suite(void)
{
  Suite *s = suite_create("recordio");
  TCase *tc = tcase_create("capture");

  tcase_add_unchecked_fixture(tc, load_capture, free_capture);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, test_capture_reference);
  tcase_add_test(tc, test_capture_all_at_once);
  tcase_add_test(tc, test_capture_split_everywhere);
  tcase_add_test(tc, test_capture_byte_by_byte);
  tcase_add_test(tc, test_capture_merged_frames);
  tcase_add_test(tc, test_capture_random_fragments);
  tcase_add_test(tc, test_callback_stop);
  suite_add_tcase(s, tc);

  tc = tcase_create("framing");
  tcase_add_test(tc, test_zero_length_record);
  tcase_add_test(tc, test_leading_zeros_and_partial);
  tcase_add_test(tc, test_bad_length_lines);
  tcase_add_test(tc, test_errors_are_sticky);
  tcase_add_test(tc, test_oversized_length);
  tcase_add_test(tc, test_buffer_bounded_by_record);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return m3s_check_run_data(argc, argv, recordio_suite());
}
