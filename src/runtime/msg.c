/* Message allocation and retirement. See include/m3s/msg.h for the rules.
 *
 * DESIGN. Messages are allocated on one thread and freed on another (the
 * receiver's), which makes malloc/free the largest cost of a send. They come
 * instead from a pool of magazines: each thread keeps one magazine of up to
 * MAG_SIZE free messages and takes from it or returns to it without any
 * synchronisation; only when its magazine runs empty or full does it trade
 * it, under one mutex, for a full or an empty one from the shared depot. So
 * a message that travels from a producer to a consumer comes back to the
 * producer one magazine at a time, one lock per MAG_SIZE messages. The mutex
 * is what orders the consumer's last use of a message before the producer's
 * reuse. A thread's magazine goes to the depot when the thread exits; the
 * depot keeps at most DEPOT_MAX full magazines and frees the rest.
 *
 * Under AddressSanitizer the pool is off, so that a use after free of a
 * message is still reported.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "m3s/msg.h"
#include <jansson.h>

#include "m3s/reply.h"
#include "m3s/xalloc.h"

#if defined(__SANITIZE_ADDRESS__)
#define POOL 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define POOL 0
#endif
#endif
#ifndef POOL
#define POOL 1
#endif

#if POOL
#define MAG_SIZE 64
#define DEPOT_MAX 256

typedef struct magazine {
  struct magazine *next;
  size_t n;
  m3s_msg_t *items[MAG_SIZE];
} magazine_t;

static pthread_mutex_t depot_lock = PTHREAD_MUTEX_INITIALIZER;
static magazine_t *depot_full, *depot_empty; /* under depot_lock */
static size_t depot_nfull;                   /* under depot_lock */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t mag_key;
static _Thread_local magazine_t *mag;        /* this thread's magazine */

static void magazine_release(magazine_t *m)
{
  for(size_t i = 0; i < m->n; i++)
    free(m->items[i]);
  free(m);
}

/* Thread exit: the magazine goes to the depot (or back to malloc). */
static void thread_exit(void *p)
{
  magazine_t *m = p;
  /* The thread-local pointer must not outlive its magazine: a destructor
   * that runs after this one and sends a message gets a fresh one. */
  mag = NULL;
  pthread_mutex_lock(&depot_lock);
  if(m->n && depot_nfull < DEPOT_MAX) {
    m->next = depot_full;
    depot_full = m;
    depot_nfull++;
    m = NULL;
  }
  pthread_mutex_unlock(&depot_lock);
  if(m)
    magazine_release(m);
}

static void make_key(void)
{
  pthread_key_create(&mag_key, thread_exit);
}

static magazine_t *my_magazine(void)
{
  if(!mag) {
    pthread_once(&key_once, make_key);
    mag = m3s_xcalloc(1, sizeof(*mag));
    pthread_setspecific(mag_key, mag);
  }
  return mag;
}

/* Trades this thread's magazine: want_full = for allocation (give an empty
 * one, get a full one if the depot has one). */
static void trade(magazine_t *m, bool want_full)
{
  magazine_t *spill = NULL;
  pthread_mutex_lock(&depot_lock);
  if(want_full && depot_full) {
    /* Swap contents, not magazines, so the thread keeps its registered one. */
    magazine_t *f = depot_full;
    depot_full = f->next;
    depot_nfull--;
    m->n = f->n;
    for(size_t i = 0; i < f->n; i++)
      m->items[i] = f->items[i];
    f->n = 0;
    f->next = depot_empty;
    depot_empty = f;
  }
  else if(!want_full) {
    magazine_t *e = depot_empty;
    if(e)
      depot_empty = e->next;
    else
      e = m3s_xmalloc(sizeof(*e));
    for(size_t i = 0; i < m->n; i++)
      e->items[i] = m->items[i];
    e->n = m->n;
    m->n = 0;
    if(depot_nfull < DEPOT_MAX) {
      e->next = depot_full;
      depot_full = e;
      depot_nfull++;
    }
    else {
      spill = e;
    }
  }
  pthread_mutex_unlock(&depot_lock);
  if(spill)
    magazine_release(spill);
}

static m3s_msg_t *msg_alloc(void)
{
  magazine_t *m = my_magazine();
  if(!m->n)
    trade(m, true);
  return m->n ? m->items[--m->n] : m3s_xmalloc(sizeof(m3s_msg_t));
}

static void msg_release(m3s_msg_t *msg)
{
  magazine_t *m = my_magazine();
  if(m->n == MAG_SIZE)
    trade(m, false);
  m->items[m->n++] = msg;
}
#else
static m3s_msg_t *msg_alloc(void)
{
  return m3s_xmalloc(sizeof(m3s_msg_t));
}

static void msg_release(m3s_msg_t *msg)
{
  free(msg);
}
#endif

m3s_msg_t *m3s_msg_new(uint32_t type, int64_t arg, void *payload, m3s_drop_cb drop)
{
  m3s_msg_t *m = msg_alloc();
  atomic_init(&m->next, NULL);
  m->flags = 0;
  m->reply = NULL;
  m->type = type;
  m->arg = arg;
  m->payload = payload;
  m->drop = drop;
  return m;
}

void *m3s_msg_take(m3s_msg_t *m)
{
  void *p = m->payload;
  m->payload = NULL;
  return p;
}

void m3s__msg_clear(m3s_msg_t *m)
{
  if(m->payload) {
    if(m->drop)
      m->drop(m->payload);
    else
      free(m->payload);
    m->payload = NULL;
  }
  if(m->reply) {
    /* Nobody answered: tell the waiter now instead of letting it time out. */
    m3s_reply_post(m->reply, NULL);
    m3s_reply_unref(m->reply);
    m->reply = NULL;
  }
}

void m3s_msg_free(m3s_msg_t *m)
{
  if(!m)
    return;
  m3s__msg_clear(m);
  msg_release(m);
}

int m3s_msg_reply(m3s_msg_t *request, m3s_msg_t *answer)
{
  m3s_reply_t *r = request->reply;
  if(!r) {
    m3s_msg_free(answer);
    return -ENOENT;
  }
  request->reply = NULL;
  int rc = m3s_reply_post(r, answer) ? 0 : -ENOENT;
  m3s_reply_unref(r);
  return rc;
}

m3s_reply_t *m3s_msg_take_reply(m3s_msg_t *request)
{
  m3s_reply_t *r = request->reply;
  request->reply = NULL;
  return r;
}

void m3s_json_drop(void *json)
{
  json_decref(json);
}
