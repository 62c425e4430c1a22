/* Shared by the lean task record decoder (records_lean.c) and the interned
 * extra (records_extra.c); not part of the daemon's interface. */
#ifndef M3S_RECORDS_INT_H
#define M3S_RECORDS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "m3s/records.h"
#include "m3s/xalloc.h"

#define MAX_MEMBERS 64   /* top-level members of a record the lean pass splits */

typedef struct buf {
  char *p;
  size_t n, cap;
} buf_t;

static inline void put(buf_t *b, const char *s, size_t n)
{
  if(b->n + n + 1 > b->cap) {
    b->cap = (b->n + n + 1) * 2;
    b->p = m3s_xrealloc(b->p, b->cap);
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

/* The bytes string() stops at: the quote, the backslash, control
 * characters and bytes outside ASCII. */
#define ALL16 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
#define NONE16 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
static const unsigned char string_stop[256] = {
  ALL16, ALL16,                                   /* 0x00 - 0x1f */
  0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x22 '"' */
  NONE16, NONE16,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x5c '\\' */
  NONE16, NONE16,
  ALL16, ALL16, ALL16, ALL16, ALL16, ALL16, ALL16, ALL16, /* 0x80 - 0xff */
};
#undef ALL16
#undef NONE16

/* Eight bytes at a time (SWAR): the bytes of the word w string() stops at,
 * as a mask with the high bit of each such byte set. Exact per byte (no
 * carry crosses a byte), so on a little-endian machine the lowest set bit
 * gives the first one. */
#define ONES 0x0101010101010101ull
#define LOWS 0x7f7f7f7f7f7f7f7full
#define HIGHS 0x8080808080808080ull
static inline uint64_t zero_bytes(uint64_t v)
{
  return ~(((v & LOWS) + LOWS) | v | LOWS);
}

static inline uint64_t stop_bytes(uint64_t w)
{
  return zero_bytes(w ^ (ONES * '"')) | zero_bytes(w ^ (ONES * '\\')) |
         (~((w & LOWS) + ONES * (0x80 - 0x20)) & HIGHS) /* below 0x20 */ | (w & HIGHS);
}

/* p[0..end) up to the first byte string() stops at (or end). */
static inline const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
  uint64_t w, m;
  while(end - p >= 8) {
    memcpy(&w, p, 8);
    if((m = stop_bytes(w)) != 0) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && defined(__GNUC__)
      return p + (__builtin_ctzll(m) >> 3);
#else
      break;
#endif
    }
    p += 8;
  }
  while(p < end && !string_stop[*p])
    p++;
  return p;
}

struct member;

/* Where the members of the extra text end (offsets of the comma or brace
 * after each), so the pool need not split it again; unknown = the text
 * must be split (leftovers that json_dumps wrote). For each member, raw:
 * its text is the record's own bytes, already checked by lean() (not
 * rewritten), so the pool may recognise it in later records; hit: the
 * pool's member lean() found at its place instead of checking it; agent:
 * the index of the MesosAgent member (-1 if none), whose hostname is host. */
typedef struct ends {
  size_t at[MAX_MEMBERS];
  struct member *hit[MAX_MEMBERS];
  bool raw[MAX_MEMBERS];
  size_t n;
  int agent;
  bool unknown;
} ends_t;

/* m3s_extra_intern for a text whose member ends lean() noted. */
m3s_extra_t *m3s__extra_intern_ends(m3s_extra_pool_t *p, const char *text, const ends_t *e,
                                    const char *own, const char *host);

/* lean()'s memory of a partly modelled member (port_mappings, discovery,
 * networkinfo) of the last record, kept in the pool: the same bytes in
 * the next record are not read again but copied. */
typedef struct modelled_seen {
  char *raw;               /* the member's bytes ("name":value), or NULL */
  size_t rawlen;
  char *left;              /* its leftovers in the extra text, or NULL */
  size_t leftlen;
  m3s_task_record_t rec;   /* only its array set */
} modelled_seen_t;

/* Remembers the member raw[0..rawlen) of kind arr ('p', 'd' or 'n', the
 * name's first letter) that lean() read into rec, with left[0..leftlen)
 * its leftovers (no leading comma). */
void m3s__extra_modelled_remember(m3s_extra_pool_t *pool, int arr, const unsigned char *raw,
                                  size_t rawlen, const m3s_task_record_t *rec, const char *left,
                                  size_t leftlen);
/* The remembered member of kind arr when at[0..avail) begins with its
 * bytes, followed by a comma or a closing brace; else NULL. */
const modelled_seen_t *m3s__extra_modelled_seen(m3s_extra_pool_t *pool, int arr,
                                                const unsigned char *at, size_t avail);
/* Copies the array of kind arr of from into to. */
void m3s__copy_modelled(int arr, const m3s_task_record_t *from, m3s_task_record_t *to);

/* A member of pool p that lean() checked in an earlier record and that
 * at[0..*len) holds, followed by a comma or a closing brace: the same
 * bytes (but for another record's own string in the same plain places),
 * so a member as valid, which need not be checked again. namelen: the
 * length of its name at at, with the quotes. *host: the hostname lean()
 * read from it when it is the MesosAgent member (else NULL). NULL when
 * there is none. */
struct member *m3s__extra_seen(m3s_extra_pool_t *p, const unsigned char *at, size_t avail,
                               size_t namelen, size_t *len, const char **host);

#endif
