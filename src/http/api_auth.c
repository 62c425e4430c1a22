/* The api actor's authentication: HTTP Basic compared in constant time as
 * SHA-256 digests, and the table of clients that failed (api-int.h). */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "m3s/log.h"
#include "api-int.h"

#define MAX_AUTH_HEADER 1024

void api_digest(const api_t *a, const void *data, size_t len, unsigned char out[32])
{
  unsigned int n = 32;
  if(!a->sha256 || EVP_Digest(data, len, out, &n, a->sha256, NULL) != 1)
    memset(out, 0xff, 32); /* never equal to a real digest of ours */
}

/* Looks up ip (fail_lock held); NULL when absent. */
static fail_slot_t *fail_find(api_t *a, const char *ip)
{
  for(size_t i = 0; i < FAIL_SLOTS; i++)
    if(a->fails[i].ip[0] && !strcmp(a->fails[i].ip, ip))
      return &a->fails[i];
  return NULL;
}

static void fail_clear(api_t *a, fail_slot_t *s)
{
  s->ip[0] = '\0';
  atomic_fetch_sub_explicit(&a->nfail, 1, memory_order_relaxed);
}

/* Seconds ip must still wait, or 0 when it may try. */
static int throttled(api_t *a, const char *ip, int64_t now)
{
  if(atomic_load_explicit(&a->nfail, memory_order_relaxed) == 0)
    return 0;
  int wait_s = 0;
  pthread_mutex_lock(&a->fail_lock);
  fail_slot_t *s = fail_find(a, ip);
  if(s) {
    int64_t left = s->since_ms + a->opts.auth_fail_window_ms - now;
    if(left <= 0)
      fail_clear(a, s);
    else if(s->count >= a->opts.auth_fail_max)
      wait_s = (int)((left + 999) / 1000);
  }
  pthread_mutex_unlock(&a->fail_lock);
  return wait_s;
}

static void auth_failed(api_t *a, const char *ip, int64_t now)
{
  atomic_fetch_add_explicit(&a->auth_failures, 1, memory_order_relaxed);
  pthread_mutex_lock(&a->fail_lock);
  fail_slot_t *s = fail_find(a, ip);
  if(s && now - s->since_ms >= a->opts.auth_fail_window_ms) {
    s->count = 0;
    s->since_ms = now;
  }
  if(!s) {
    /* A free slot, else the one whose window started first. */
    fail_slot_t *oldest = &a->fails[0];
    for(size_t i = 0; i < FAIL_SLOTS && !s; i++) {
      if(!a->fails[i].ip[0])
        s = &a->fails[i];
      else if(a->fails[i].since_ms < oldest->since_ms)
        oldest = &a->fails[i];
    }
    if(!s) {
      s = oldest;
      fail_clear(a, s);
    }
    snprintf(s->ip, sizeof(s->ip), "%s", ip);
    s->count = 0;
    s->since_ms = now;
    atomic_fetch_add_explicit(&a->nfail, 1, memory_order_relaxed);
  }
  if(++s->count == a->opts.auth_fail_max)
    m3s_warn("REST API: %d failed authentications from %s: refusing it for %d s", s->count, ip,
             a->opts.auth_fail_window_ms / 1000);
  pthread_mutex_unlock(&a->fail_lock);
}

static void auth_succeeded(api_t *a, const char *ip)
{
  if(atomic_load_explicit(&a->nfail, memory_order_relaxed) == 0)
    return;
  pthread_mutex_lock(&a->fail_lock);
  fail_slot_t *s = fail_find(a, ip);
  if(s)
    fail_clear(a, s);
  pthread_mutex_unlock(&a->fail_lock);
}

/* "Basic <base64 user:password>" -> true when it matches the configured
 * credentials. Nothing of the header is logged or kept. */
static bool credentials_ok(const api_t *a, const char *h)
{
  unsigned char dec[MAX_AUTH_HEADER], got[32];
  char b64[MAX_AUTH_HEADER + 4];
  bool ok = false;

  if(!h || strncasecmp(h, "Basic", 5) || (h[5] != ' ' && h[5] != '\t'))
    return false;
  h += 5;
  while(*h == ' ' || *h == '\t')
    h++;
  size_t n = strcspn(h, " \t\r\n");
  if(n == 0 || n > MAX_AUTH_HEADER || h[n + strspn(h + n, " \t")] != '\0')
    return false;
  memcpy(b64, h, n);
  size_t pad = 0;
  for(size_t i = n; i > 0 && b64[i - 1] == '='; i--)
    pad++;
  while(n % 4) { /* tolerate unpadded base64 */
    b64[n++] = '=';
    pad++;
  }
  if(pad > 2)
    goto out;
  int len = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)n);
  if(len < 0 || (size_t)len < pad)
    goto out;
  len -= (int)pad;
  unsigned char *colon = memchr(dec, ':', (size_t)len);
  if(!colon || memchr(dec, '\0', (size_t)len))
    goto out;
  *colon = '\0'; /* user '\0' password, as the stored digest */
  api_digest(a, dec, (size_t)len, got);
  ok = CRYPTO_memcmp(got, a->cred, sizeof(got)) == 0;
out:
  OPENSSL_cleanse(dec, sizeof(dec));
  OPENSSL_cleanse(b64, sizeof(b64));
  return ok;
}

int api_authenticate(api_t *a, struct mg_connection *c, const char *ip)
{
  if(!a->auth)
    return 0;
  int64_t now = m3s_now_ms();
  int wait_s = throttled(a, ip, now);
  if(wait_s) {
    char ra[16];
    snprintf(ra, sizeof(ra), "%d", wait_s);
    atomic_fetch_add_explicit(&a->auth_throttled, 1, memory_order_relaxed);
    return api_error_h(c, 429, "Retry-After", ra,
                   "too many failed authentications from this client; retry in %d s", wait_s);
  }
  const char *h = mg_get_header(c, "Authorization");
  if(credentials_ok(a, h)) {
    auth_succeeded(a, ip);
    return 0;
  }
  if(h)
    auth_failed(a, ip, now);
  return api_error_h(c, 401, "WWW-Authenticate", "Basic realm=\"m3s\"",
                 h ? "wrong credentials" : "authentication required");
}
