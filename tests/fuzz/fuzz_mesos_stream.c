/* libFuzzer target: bytes of a Mesos subscription stream through the
 * RecordIO decoder and the event parser, as the Mesos actor will run them.
 *
 * The input is fed three ways: all at once, one byte at a time, and in
 * fragments whose sizes come from a hash of the input (so every input has
 * its own, reproducible, fragmentation). Besides "no crash, no leak, no
 * UB", the three runs must agree exactly: same records (count and a hash of
 * their bytes), same events, same final return code. Fragmentation must
 * never change what the decoder delivers; a disagreement aborts.
 *
 * Each record is parsed as an event; every borrowed string the parser hands
 * out is read in full so ASan sees a dangling or unterminated pointer. As
 * the actor does, an ERROR event stops the stream (the callback returns
 * nonzero), which exercises the stop path.
 *
 * Build (Debian 12, clang 14; the runtime is in libclang-rt-14-dev):
 *   clang -g -O1 -std=c11 -D_GNU_SOURCE -Iinclude \
 *     -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
 *     tests/fuzz/fuzz_mesos_stream.c src/actors/recordio.c \
 *     src/actors/mesos_event.c $(pkg-config --cflags --libs jansson) \
 *     -o fuzz_mesos_stream
 *   mkdir -p /tmp/fuzz-new && ./fuzz_mesos_stream -runs=200000 /tmp/fuzz-new tests/fuzz/corpus
 * (New inputs go to the first directory, so the checked-in corpus stays as
 * it is.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/mesos-event.h"
#include "m3s/recordio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small enough that real-looking records can exceed it (-E2BIG paths),
 * large enough for the captured OFFERS events of the seed corpus. */
#define FUZZ_MAX_RECORD 4096
#define STOP_ON_ERROR 77

typedef struct run {
  size_t nrec;
  uint64_t hash;          /* FNV-1a over every record and event type */
  size_t nevents;         /* records that parsed */
} run_t;

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
  const unsigned char *c = p;

  for(size_t i = 0; i < n; i++) {
    h ^= c[i];
    h *= 1099511628211ULL;
  }
  return h;
}

/* Reads a borrowed string to its end (ASan checks every byte). */
static size_t touch(const char *s)
{
  return s ? strlen(s) : 0;
}

static int on_record(void *ctx, const char *rec, size_t len)
{
  run_t *r = ctx;
  m3s_event_t ev;
  char err[160];
  int stop = 0;
  size_t sum = 0;

  r->nrec++;
  r->hash = fnv(r->hash, &len, sizeof(len));
  r->hash = fnv(r->hash, rec, len);
  if(m3s_event_parse(rec, len, &ev, err, sizeof(err)) != 0) {
    /* The error line is one NUL-terminated line. */
    if(strchr(err, '\n'))
      abort();
    r->hash = fnv(r->hash, "E", 1);
    return 0;
  }
  r->nevents++;
  r->hash = fnv(r->hash, &ev.type, sizeof(ev.type));
  sum += touch(m3s_event_type_name(ev.type));
  sum += touch(ev.framework_id) + touch(ev.offer_id) + touch(ev.task_id);
  sum += touch(ev.agent_id) + touch(ev.state) + touch(ev.uuid) + touch(ev.reason);
  sum += touch(ev.source) + touch(ev.status_message) + touch(ev.message);
  sum += touch(ev.failure_agent_id);
  if(ev.type == M3S_EV_OFFERS) {
    /* What the offer handler will rely on without checking. */
    json_t *offer;
    size_t i;

    if(!json_is_array(ev.offers))
      abort();
    json_array_foreach(ev.offers, i, offer) {
      if(!json_is_array(json_object_get(offer, "resources")) ||
         !json_is_string(json_object_get(offer, "hostname")))
        abort();
      sum += touch(json_string_value(json_object_get(json_object_get(offer, "id"), "value")));
    }
  }
  if(ev.type == M3S_EV_UPDATE) {
    if(!ev.task_id || !ev.state || !json_is_object(ev.status))
      abort();
    (void)m3s_task_state_terminal(ev.state);
  }
  if(ev.type == M3S_EV_SUBSCRIBED && (!ev.framework_id || ev.heartbeat_interval_s < 0))
    abort();
  if(ev.type == M3S_EV_ERROR)
    stop = STOP_ON_ERROR;
  r->hash = fnv(r->hash, &sum, sizeof(sum));
  m3s_event_free(&ev);
  return stop;
}

/* Feeds data in fragments of the given sizes: frag == 0 means pseudo-random
 * sizes from seed. Returns the decoder's result. */
static int run(const uint8_t *data, size_t size, size_t frag, uint64_t seed, run_t *r)
{
  m3s_recordio_t d;
  size_t off = 0;
  int rc = 0;

  memset(r, 0, sizeof(*r));
  r->hash = 1469598103934665603ULL;
  m3s_recordio_init(&d, FUZZ_MAX_RECORD);
  while(off < size && rc == 0) {
    size_t n = frag;

    if(n == 0) {
      seed ^= seed << 13;
      seed ^= seed >> 7;
      seed ^= seed << 17;
      /* Mostly short fragments (mid-length, mid-record splits), now and
       * then long ones (several records in one). */
      n = 1 + (size_t)(seed % ((seed >> 32) % 8 == 0 ? 512 : 24));
    }
    if(n > size - off)
      n = size - off;
    rc = m3s_recordio_feed(&d, (const char *)data + off, n, on_record, r);
    off += n;
  }
  /* The buffer never exceeds the cap. */
  if(d.cap > FUZZ_MAX_RECORD)
    abort();
  m3s_recordio_free(&d);
  return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  run_t whole, bytes, random;
  int rc_whole, rc_bytes, rc_random;
  uint64_t seed = fnv(1469598103934665603ULL, data, size) | 1;

  rc_whole = run(data, size, size ? size : 1, 0, &whole);
  rc_bytes = run(data, size, 1, 0, &bytes);
  rc_random = run(data, size, 0, seed, &random);
  /* -ENOMEM is the one result that may legitimately depend on
   * fragmentation; with a 4 KiB cap it does not happen here. */
  if(rc_whole != rc_bytes || rc_whole != rc_random)
    abort();
  if(whole.nrec != bytes.nrec || whole.nrec != random.nrec ||
     whole.hash != bytes.hash || whole.hash != random.hash ||
     whole.nevents != random.nevents)
    abort();
  return 0;
}
