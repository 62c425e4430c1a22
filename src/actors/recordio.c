/* RecordIO decoder (see m3s/recordio.h).
 *
 * DESIGN
 * Two states: a length line, read one byte at a time into `want` (at most 20
 * digits, so this per-byte loop is short), and a record. In the record state
 * the common case is that the whole record is inside the current fragment
 * and nothing of it has been buffered: cb gets a pointer into the fragment.
 * Otherwise the bytes go into `buf`, which grows geometrically as they
 * arrive, never beyond the record's announced length; a length above the cap
 * fails at its '\n', before any allocation, so a hostile or corrupt length
 * costs nothing.
 *
 * Errors are decided only by the bytes seen so far (a bad byte fails at that
 * byte, a too-big length at its '\n'), never by where a fragment ends, so
 * the same stream gives the same records and the same error however it is
 * split. That property is what the fuzz target checks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/recordio.h"

/* 20 digits hold every uint64_t (UINT64_MAX has 20 digits); a longer length
 * line cannot be a length Mesos wrote. */
#define MAX_DIGITS 20
/* First allocation for a spanning record, and the largest buffer kept
 * between records: the usual events (HEARTBEAT, UPDATE, one-agent OFFERS)
 * fit, while a rare huge OFFERS does not pin its memory forever. */
#define BUF_MIN 4096
#define BUF_KEEP (256 * 1024)

void m3s_recordio_init(m3s_recordio_t *d, size_t max_record)
{
  memset(d, 0, sizeof(*d));
  d->max_record = max_record;
}

void m3s_recordio_reset(m3s_recordio_t *d)
{
  size_t max_record = d->max_record;

  free(d->buf);
  m3s_recordio_init(d, max_record);
}

void m3s_recordio_free(m3s_recordio_t *d)
{
  free(d->buf);
  d->buf = NULL;
  d->cap = 0;
  d->have = 0;
}

/* Makes room for `need` bytes of the current record (need <= d->want). Input
 * sized, so a failed allocation is reported, not fatal. */
static int grow(m3s_recordio_t *d, size_t need)
{
  size_t ncap;
  char *nbuf;

  if(need <= d->cap)
    return 0;
  ncap = d->cap ? d->cap : BUF_MIN;
  while(ncap < need && ncap <= SIZE_MAX / 2)
    ncap *= 2;
  if(ncap < need || ncap > d->want)
    ncap = (size_t)d->want;
  nbuf = realloc(d->buf, ncap);
  if(!nbuf)
    return -ENOMEM;
  d->buf = nbuf;
  d->cap = ncap;
  return 0;
}

/* Back to the length-line state after a record was delivered. */
static void record_done(m3s_recordio_t *d)
{
  d->in_record = 0;
  d->want = 0;
  d->have = 0;
  if(d->cap > BUF_KEEP) {
    free(d->buf);
    d->buf = NULL;
    d->cap = 0;
  }
}

int m3s_recordio_feed(m3s_recordio_t *d, const char *data, size_t len,
                      m3s_recordio_cb cb, void *ctx)
{
  size_t i = 0;
  int rc = 0;

  if(d->err)
    return d->err;

  while(i < len) {
    if(!d->in_record) {
      unsigned char c = (unsigned char)data[i++];

      if(c == '\n') {
        if(d->ndigits == 0) {
          rc = -EPROTO;
          goto out;
        }
        if(d->want > d->max_record) {
          rc = -E2BIG;
          goto out;
        }
        d->ndigits = 0;
        if(d->want == 0) {
          /* stout emits an empty record for "0\n"; the master never sends
           * one, but it is valid framing. */
          rc = cb(ctx, data + i, 0);
          if(rc)
            goto out;
          continue;
        }
        d->in_record = 1;
        d->have = 0;
        continue;
      }
      if(c < '0' || c > '9' || d->ndigits == MAX_DIGITS) {
        rc = -EPROTO;
        goto out;
      }
      /* Saturate rather than wrap: 20 digits can exceed UINT64_MAX, and such
       * a value is above any cap, which the '\n' then reports as -E2BIG. */
      if(d->want > (UINT64_MAX - (c - '0')) / 10)
        d->want = UINT64_MAX;
      else
        d->want = d->want * 10 + (uint64_t)(c - '0');
      d->ndigits++;
      continue;
    }

    /* In a record: want <= max_record, so it fits size_t. */
    size_t avail = len - i;
    size_t need = (size_t)d->want - d->have;

    if(d->have == 0 && avail >= need) {
      const char *rec = data + i;

      i += need;
      record_done(d);
      rc = cb(ctx, rec, need);
      if(rc)
        goto out;
      continue;
    }

    size_t take = avail < need ? avail : need;

    rc = grow(d, d->have + take);
    if(rc)
      goto out;
    memcpy(d->buf + d->have, data + i, take);
    d->have += take;
    i += take;
    if(d->have == d->want) {
      /* Deliver before record_done(), which may free the buffer. */
      rc = cb(ctx, d->buf, d->have);
      record_done(d);
      if(rc)
        goto out;
    }
  }

out:
  if(rc)
    d->err = rc;
  return rc;
}
