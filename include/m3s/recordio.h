/* Incremental decoder of the RecordIO framing of the Mesos v1 streams
 * (mesos-http-api.md §1.5):
 *
 *   <decimal length in bytes> '\n' <record bytes> <next length> '\n' ...
 *
 * Bytes arrive as libcurl hands them over: fragments of any size, split at
 * any byte, a fragment may hold several records or a part of one. A record
 * that lies whole inside one fragment is handed to the callback in place (no
 * copy); only a record that spans fragments is buffered, and that buffer
 * never grows past the record's length, itself bounded by the cap given at
 * init.
 *
 * A length line is 1 to 20 ASCII digits and '\n', nothing else (no sign, no
 * space, no '\r'); leading zeros are allowed. Anything else means the stream
 * is broken beyond repair (there is no way to find the next record), so every
 * error is sticky until m3s_recordio_reset().
 *
 * A decoder belongs to one thread at a time (the one feeding the stream). It
 * is an embedded object: init / reset / free, no allocation of the struct.
 */
#ifndef M3S_RECORDIO_H
#define M3S_RECORDIO_H

#include <stddef.h>
#include <stdint.h>

/* Generous cap for the Mesos event stream: OFFERS with many agents can be
 * hundreds of KB (mesos-http-api.md §1.5). */
#define M3S_RECORDIO_DEFAULT_MAX ((size_t)64 * 1024 * 1024)

typedef struct m3s_recordio {
  size_t max_record;   /* cap on one record's length */
  int err;             /* 0, or the sticky result of a failed feed */
  int in_record;       /* 0: reading a length line, 1: reading a record */
  unsigned ndigits;    /* digits seen in the current length line */
  uint64_t want;       /* length line value so far / record length */
  char *buf;           /* bytes of a record that spans fragments */
  size_t have;         /* bytes of the current record in buf */
  size_t cap;          /* allocated size of buf */
} m3s_recordio_t;

/* Called for each complete record: rec points at len bytes, not
 * NUL-terminated; len may be 0 (rec is then not to be read). rec is borrowed
 * and valid only during the call. A nonzero return stops feeding at once:
 * feed returns that value, and keeps returning it until reset (the rest of
 * the fragment was not consumed, so the stream position is lost). */
typedef int (*m3s_recordio_cb)(void *ctx, const char *rec, size_t len);

/* max_record: records longer than this are refused with -E2BIG. */
void m3s_recordio_init(m3s_recordio_t *d, size_t max_record);
/* Forgets any partial record and any sticky error: a new stream starts. Keeps
 * the cap. */
void m3s_recordio_reset(m3s_recordio_t *d);
/* Frees the buffer; d may be initialised again afterwards. */
void m3s_recordio_free(m3s_recordio_t *d);

/* Feeds len bytes of the stream (data may be NULL when len is 0) and calls cb
 * for every record completed by them, in order. Returns
 *   0          all bytes consumed;
 *   -EPROTO    a bad length line: empty, a non-digit (sign, space, '\r', ...)
 *              or more than 20 digits;
 *   -E2BIG     a length above max_record (the claimed size is never
 *              allocated);
 *   -ENOMEM    the buffer for a record spanning fragments could not grow;
 *   nonzero    what cb returned.
 * After any nonzero return the decoder is failed and returns the same value
 * without reading data or calling cb, until m3s_recordio_reset(). -EPROTO and
 * -E2BIG are found at the same byte of the stream whatever the fragmentation,
 * so the records delivered before them do not depend on how it was split.
 * cb must not reset or free the decoder. */
int m3s_recordio_feed(m3s_recordio_t *d, const char *data, size_t len,
                      m3s_recordio_cb cb, void *ctx);

#endif
