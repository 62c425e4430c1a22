/* Configuration from environment variables; see include/m3s/config.h.
 *
 * DESIGN
 * One table (vars[], in config_vars.c) describes every variable: name, type, default,
 * flags, help and where the value goes in m3s_config_t. Loading, --help,
 * --print-config, freeing and the secret list are all driven by it, so a
 * variable cannot be parsed without also being documented and printed.
 *
 * Loading runs in stages, each over the whole table:
 *   1. read: look every variable up (RAW ones first, because the Vault
 *      settings are RAW and must be known before the first Vault lookup),
 *      resolve vault:// references, apply plain defaults, then defaults that
 *      copy another variable's effective value (DS_CPU_LIMIT <- DS_CPU).
 *      The result is one string per variable, src[i].
 *   2. parse: convert src[i] by type into the struct.
 *   3. check: per-variable validators that need other variables (a list
 *      needs its delimiter) or fill derived fields (fw, constraint hosts,
 *      decoded PEM, key/value lists).
 *   4. cross checks between variables (datastore choice, port range, TLS).
 * The first failure stops the load with one line in err.
 *
 * Where the original turned a bad value into 0/false or crashed later, we
 * refuse to start instead: a daemon that runs with a silently different
 * configuration is worse than one that does not start.
 *
 * Only the main thread calls m3s_config_load/free, before any other thread
 * exists (the Vault lookup uses a private curl easy handle).
 */
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "m3s/config.h"
#include "m3s/log.h"
#include "m3s/xalloc.h"

#include "config-int.h"

static const struct var *const vars = m3s_config_vars;

static const char *const group_titles[] = {
  [G_FRAMEWORK] = "Framework",
  [G_MESOS] = "Mesos",
  [G_TIMERS] = "Timers",
  [G_API] = "REST API and TLS",
  [G_REDIS] = "Redis",
  [G_DS] = "Datastore (MariaDB or etcd)",
  [G_K3S] = "K3s (servers and agents)",
  [G_SERVER] = "K3s server",
  [G_AGENT] = "K3s agent",
  [G_DOCKER] = "Docker parameters of the tasks",
  [G_VAULT] = "Vault",
};


/* State of one m3s_config_load call. */
struct load {
  m3s_config_t *cfg;
  m3s_getenv_cb getenv_fn;
  void *ctx;
  char *src[NVARS];   /* effective string of each variable */
  char *vref[NVARS];  /* the vault:// reference a value came from, or NULL */
  bool given[NVARS];  /* set (non-empty) in the environment */
  char *err;
  size_t errlen;
  bool vault_ready;
  CURL *curl;
};

/* ---- small helpers ---- */

static void *field(const m3s_config_t *cfg, size_t off)
{
  return (char *)cfg + off;
}

static char **str_field(const m3s_config_t *cfg, size_t off)
{
  return (char **)field(cfg, off);
}

static bool is_digit(char c)
{
  return c >= '0' && c <= '9';
}

static char *concat(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *s = m3s_xmalloc(la + lb + 1);
  memcpy(s, a, la);
  memcpy(s + la, b, lb + 1);
  return s;
}

static size_t var_index(const char *name)
{
  for(size_t i = 0; i < NVARS; i++)
    if(strcmp(vars[i].name, name) == 0)
      return i;
  return NVARS;
}

/* Copies s into dst for an error message: quotes, backslashes and control
 * characters escaped so the message stays one line, at most maxin input
 * bytes shown, "..." when cut. */
static void escape(char *dst, size_t dstlen, const char *s, size_t maxin)
{
  size_t o = 0, k;
  bool cut = false;

  for(k = 0; s[k]; k++) {
    unsigned char c = (unsigned char)s[k];
    char tmp[8];

    if(k >= maxin) {
      cut = true;
      break;
    }
    if(c == '"' || c == '\\')
      snprintf(tmp, sizeof(tmp), "\\%c", c);
    else if(c == '\n')
      snprintf(tmp, sizeof(tmp), "\\n");
    else if(c == '\r')
      snprintf(tmp, sizeof(tmp), "\\r");
    else if(c == '\t')
      snprintf(tmp, sizeof(tmp), "\\t");
    else if(c < 0x20 || c == 0x7f)
      snprintf(tmp, sizeof(tmp), "\\x%02x", c);
    else {
      tmp[0] = (char)c;
      tmp[1] = '\0';
    }
    size_t tl = strlen(tmp);
    if(o + tl + 4 > dstlen) {  /* keep room for "..." and NUL */
      cut = true;
      break;
    }
    memcpy(dst + o, tmp, tl);
    o += tl;
  }
  if(cut && o + 4 <= dstlen) {
    memcpy(dst + o, "...", 3);
    o += 3;
  }
  dst[o] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void seterr(struct load *l, const char *fmt, ...)
{
  va_list ap;

  if(!l->err || l->errlen == 0)
    return;
  va_start(ap, fmt);
  vsnprintf(l->err, l->errlen, fmt, ap);
  va_end(ap);
}

/* The one error line for a bad value: NAME="value": why. Secret values are
 * never echoed; a value that came from Vault says which reference. */
static int fail_value(struct load *l, size_t i, const char *why)
{
  const struct var *v = &vars[i];
  char shown[200], ref[200];

  if(v->flags & F_SECRET)
    snprintf(shown, sizeof(shown), "***");
  else {
    char e[190];
    escape(e, sizeof(e), l->src[i] ? l->src[i] : "", 120);
    snprintf(shown, sizeof(shown), "\"%s\"", e);
  }
  if(l->vref[i]) {
    escape(ref, sizeof(ref), l->vref[i], 150);
    seterr(l, "%s=%s (from %s): %s", v->name, shown, ref, why);
  }
  else
    seterr(l, "%s=%s: %s", v->name, shown, why);
  return -EINVAL;
}

/* ---- scalar parsers: 0 or -1, never partial input ---- */

static int parse_bool(const char *s, bool *out)
{
  static const char *const yes[] = { "true", "1", "yes", "on" };
  static const char *const no[] = { "false", "0", "no", "off" };

  for(size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++) {
    if(strcasecmp(s, yes[k]) == 0) {
      *out = true;
      return 0;
    }
    if(strcasecmp(s, no[k]) == 0) {
      *out = false;
      return 0;
    }
  }
  return -1;
}

static int parse_ll(const char *s, long long *out)
{
  const char *p = s;
  char *end = NULL;

  /* strtoll alone would accept leading blanks and an empty digit run. */
  if(*p == '+' || *p == '-')
    p++;
  if(!is_digit(*p))
    return -1;
  errno = 0;
  *out = strtoll(s, &end, 10);
  if(errno == ERANGE || *end != '\0')
    return -1;
  return 0;
}

static int parse_port(const char *s, int *out)
{
  long long v;

  if(!is_digit(s[0]) || parse_ll(s, &v) != 0 || v < 1 || v > 65535)
    return -1;
  *out = (int)v;
  return 0;
}

static int parse_double(const char *s, double *out)
{
  const char *p = s;
  char *end = NULL;

  /* Only plain decimal notation: strtod would also take blanks, hex, inf
   * and nan, none of which is a sensible resource amount. */
  if(*p == '+' || *p == '-')
    p++;
  if(!is_digit(*p) && !(*p == '.' && is_digit(p[1])))
    return -1;
  if(strpbrk(s, "xXpP"))
    return -1;
  errno = 0;
  *out = strtod(s, &end);
  if(errno == ERANGE || *end != '\0' || !isfinite(*out))
    return -1;
  return 0;
}

/* Go's time.ParseDuration grammar: [+-]? (number unit)+ where number is
 * digits with an optional fraction and unit one of ns us µs ms s m h; the
 * bare string "0" is also valid. Result in nanoseconds. */
static int parse_duration_ns(const char *s, int64_t *out)
{
  static const struct { const char *name; uint64_t ns; } units[] = {
    { "ns", 1 }, { "us", 1000 }, { "\xc2\xb5s", 1000 }, { "\xce\xbcs", 1000 },
    { "ms", 1000000 }, { "s", 1000000000ull }, { "m", 60000000000ull },
    { "h", 3600000000000ull },
  };
  const uint64_t limit = (uint64_t)1 << 63;
  uint64_t total = 0;
  bool neg = false;

  if(*s == '+' || *s == '-') {
    neg = *s == '-';
    s++;
  }
  if(strcmp(s, "0") == 0) {
    *out = 0;
    return 0;
  }
  if(*s == '\0')
    return -1;
  while(*s) {
    uint64_t v = 0, f = 0, scale = 1, unit = 0;
    bool pre = false, post = false;

    for(; is_digit(*s); s++) {
      if(v > (limit - 9) / 10)
        return -1;
      v = v * 10 + (uint64_t)(*s - '0');
      pre = true;
    }
    if(*s == '.') {
      for(s++; is_digit(*s); s++) {
        post = true;
        if(scale < 1000000000000000000ull) {  /* further digits are noise */
          f = f * 10 + (uint64_t)(*s - '0');
          scale *= 10;
        }
      }
    }
    if(!pre && !post)
      return -1;
    const char *u = s;
    while(*s && *s != '.' && !is_digit(*s))
      s++;
    size_t ul = (size_t)(s - u);
    for(size_t k = 0; k < sizeof(units) / sizeof(units[0]); k++) {
      if(strlen(units[k].name) == ul && memcmp(units[k].name, u, ul) == 0) {
        unit = units[k].ns;
        break;
      }
    }
    if(unit == 0)
      return -1;
    if(v > limit / unit)
      return -1;
    v *= unit;
    if(f > 0) {
      v += (uint64_t)((double)f * ((double)unit / (double)scale));
      if(v > limit)
        return -1;
    }
    total += v;
    if(total > limit)
      return -1;
  }
  if(neg)
    *out = total == limit ? INT64_MIN : -(int64_t)total;
  else if(total == limit)
    return -1;
  else
    *out = (int64_t)total;
  return 0;
}

/* host:port or [v6]:port. An unbracketed host with a ':' is refused: it is
 * either an IPv6 address or a URL, and both would be misread. */
static int parse_hostport(const char *s, char **host, int *port)
{
  const char *h, *he, *ps;

  if(s[0] == '[') {
    const char *close = strchr(s, ']');
    if(!close || close[1] != ':')
      return -1;
    h = s + 1;
    he = close;
    ps = close + 2;
  }
  else {
    const char *colon = strrchr(s, ':');
    if(!colon)
      return -1;
    h = s;
    he = colon;
    ps = colon + 1;
    if(memchr(h, ':', (size_t)(he - h)))
      return -1;
  }
  if(he == h)
    return -1;
  for(const char *c = h; c < he; c++) {
    unsigned char uc = (unsigned char)*c;
    if(!isalnum(uc) && !strchr(".-_:%", uc))
      return -1;
  }
  if(parse_port(ps, port) != 0)
    return -1;
  *host = m3s_xmalloc((size_t)(he - h) + 1);
  memcpy(*host, h, (size_t)(he - h));
  (*host)[he - h] = '\0';
  return 0;
}

/* ---- stage 2: parse by type ---- */

static int parse_value(struct load *l, size_t i)
{
  const struct var *v = &vars[i];
  m3s_config_t *cfg = l->cfg;
  const char *s = l->src[i] ? l->src[i] : "";
  char why[200];

  switch(v->type) {
  case T_STRING:
  case T_JSON:
    free(*str_field(cfg, v->off));
    *str_field(cfg, v->off) = m3s_xstrdup(s);
    if(v->type == T_JSON && s[0]) {
      json_error_t jerr;
      json_t *root = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
      if(!root) {
        char text[120];
        escape(text, sizeof(text), jerr.text, 100);
        snprintf(why, sizeof(why), "expected JSON (%s at line %d column %d)",
                 text, jerr.line, jerr.column);
        return fail_value(l, i, why);
      }
      json_decref(root);
    }
    return 0;
  case T_BOOL:
    if(parse_bool(s, (bool *)field(cfg, v->off)) != 0)
      return fail_value(l, i, "expected true or false (also 1/0, yes/no, on/off)");
    return 0;
  case T_INT: {
    long long n;
    if(parse_ll(s, &n) != 0 || n < v->min || n > v->max) {
      if(v->max == INT_MAX)
        snprintf(why, sizeof(why), "expected a whole number >= %lld", v->min);
      else
        snprintf(why, sizeof(why), "expected a whole number >= %lld and <= %lld",
                 v->min, v->max);
      return fail_value(l, i, why);
    }
    *(int *)field(cfg, v->off) = (int)n;
    return 0;
  }
  case T_PORT:
    if(parse_port(s, (int *)field(cfg, v->off)) != 0)
      return fail_value(l, i, "expected a port number from 1 to 65535");
    return 0;
  case T_FLOAT: {
    double d;
    if(parse_double(s, &d) != 0 || d < v->fmin) {
      snprintf(why, sizeof(why), "expected a number >= %g", v->fmin);
      return fail_value(l, i, why);
    }
    *(double *)field(cfg, v->off) = d;
    return 0;
  }
  case T_DURATION: {
    int64_t ns;
    if(parse_duration_ns(s, &ns) != 0)
      return fail_value(l, i, "expected a duration like 15s, 1m30s or 500ms");
    if((v->flags & F_POSITIVE) && ns <= 0)
      return fail_value(l, i, "expected a duration greater than 0, like 15s");
    if(ns < 0)
      return fail_value(l, i, "expected a duration of 0 or more, like 5m");
    /* Round up so that a positive duration never becomes 0 ms. */
    *(int64_t *)field(cfg, v->off) = ns / 1000000 + (ns % 1000000 != 0);
    return 0;
  }
  case T_HOSTPORT: {
    char *host = NULL;
    int port = 0;
    if(parse_hostport(s, &host, &port) != 0)
      return fail_value(l, i, "expected host:port or [IPv6]:port, without scheme, "
                              "with a port from 1 to 65535");
    free(*str_field(cfg, v->off));
    *str_field(cfg, v->off) = m3s_xstrdup(s);
    free(*str_field(cfg, v->aux_off));
    *str_field(cfg, v->aux_off) = host;
    *(int *)field(cfg, v->aux2_off) = port;
    return 0;
  }
  }
  return fail_value(l, i, "internal error: unknown type");
}

/* ---- stage 3: per-variable checks ---- */

int m3s_config_check_fwname(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  /* The original prefixes "m3s"; Redis keys of running clusters depend on it. */
  *str_field(l->cfg, v->aux_off) = concat("m3s", *str_field(l->cfg, v->off));
  return 0;
}

int m3s_config_check_loglevel(struct load *l, size_t i, char *why, size_t whylen)
{
  if(m3s_log_parse_level(*str_field(l->cfg, vars[i].off), &l->cfg->log_level) != 0) {
    snprintf(why, whylen, "expected one of debug, info, warn, error "
                          "(also trace, warning, fatal, panic)");
    return -EINVAL;
  }
  return 0;
}

int m3s_config_check_domain(struct load *l, size_t i, char *why, size_t whylen)
{
  char **d = str_field(l->cfg, vars[i].off);

  if((*d)[0] != '.') {
    char *n = concat(".", *d);
    free(*d);
    *d = n;
  }
  return 0;
}

int m3s_config_check_constraint(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  const char *s = *str_field(l->cfg, v->off);
  const char *colon = strchr(s, ':');
  char *host;

  if(s[0] == '\0') {
    *str_field(l->cfg, v->aux_off) = m3s_xstrdup("");
    return 0;
  }
  /* Only hostname constraints exist; the original silently ignored other
   * types and everything after a second ':'. */
  if(!colon || (size_t)(colon - s) != strlen("hostname") ||
     strncasecmp(s, "hostname", strlen("hostname")) != 0 || colon[1] == '\0' ||
     strpbrk(colon + 1, ": \t\r\n")) {
    snprintf(why, whylen, "expected hostname:<agent hostname>");
    return -EINVAL;
  }
  host = m3s_xstrdup(colon + 1);
  for(char *c = host; *c; c++)
    *c = (char)tolower((unsigned char)*c);
  *str_field(l->cfg, v->aux_off) = host;
  return 0;
}

static void kvlist_free(m3s_kvlist_t *kl)
{
  for(size_t k = 0; k < kl->n; k++) {
    free(kl->items[k].key);
    free(kl->items[k].value);
  }
  free(kl->items);
  kl->items = NULL;
  kl->n = 0;
}

/* KEY=VALUE items separated by the delimiter variable named in aux2_off. The
 * original crashed on an item without '=' (node env) or dropped it (docker
 * parameters); both now stop the start. */
int m3s_config_check_kvlist(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  const char *s = *str_field(l->cfg, v->off);
  const char *delim = *str_field(l->cfg, v->aux2_off);
  size_t dl = strlen(delim);
  m3s_kvlist_t *kl = field(l->cfg, v->aux_off);
  size_t cap = 0;

  while(*s) {
    const char *next = dl ? strstr(s, delim) : NULL;
    size_t len = next ? (size_t)(next - s) : strlen(s);
    const char *eq = memchr(s, '=', len);

    if(len > 0) {
      if(!eq || eq == s) {
        char item[80], d[20];
        size_t show = len < 60 ? len : 60;
        char tmp[61];
        memcpy(tmp, s, show);
        tmp[show] = '\0';
        escape(item, sizeof(item), tmp, 60);
        escape(d, sizeof(d), delim, 10);
        snprintf(why, whylen, "expected KEY=VALUE items separated by \"%s\", but "
                 "item \"%s%s\" %s", d, item, show < len ? "..." : "",
                 eq ? "has an empty KEY" : "has no '='");
        return -EINVAL;
      }
      if(kl->n == cap) {
        cap = cap ? cap * 2 : 4;
        kl->items = m3s_xrealloc(kl->items, cap * sizeof(*kl->items));
      }
      m3s_kv_t *kv = &kl->items[kl->n++];
      kv->key = m3s_xmalloc((size_t)(eq - s) + 1);
      memcpy(kv->key, s, (size_t)(eq - s));
      kv->key[eq - s] = '\0';
      kv->value = m3s_xmalloc(len - (size_t)(eq - s));
      memcpy(kv->value, eq + 1, len - (size_t)(eq - s) - 1);
      kv->value[len - (size_t)(eq - s) - 1] = '\0';
    }
    if(!next)
      break;
    s = next + dl;
  }
  return 0;
}

/* Mesos labels: [{"key":"k","value":"v"}, ...]; "value" may be omitted. */
int m3s_config_check_labels(struct load *l, size_t i, char *why, size_t whylen)
{
  const char *s = *str_field(l->cfg, vars[i].off);
  json_t *root = NULL;
  json_t *el;
  size_t k;
  int rc = 0;

  if(s[0] == '\0')
    return 0;
  root = json_loads(s, 0, NULL);  /* syntax already checked by parse_value */
  if(!json_is_array(root)) {
    snprintf(why, whylen, "expected a JSON array of {\"key\":\"...\",\"value\":\"...\"} objects");
    rc = -EINVAL;
    goto out;
  }
  json_array_foreach(root, k, el) {
    const char *mk;
    json_t *mv;
    json_t *key = json_object_get(el, "key");

    if(!json_is_object(el) || !json_is_string(key) || json_string_length(key) == 0) {
      snprintf(why, whylen, "expected a JSON array of {\"key\":\"...\",\"value\":\"...\"} "
               "objects; element %zu has no non-empty string \"key\"", k);
      rc = -EINVAL;
      goto out;
    }
    json_object_foreach(el, mk, mv) {
      if(strcmp(mk, "key") == 0)
        continue;
      if(strcmp(mk, "value") == 0 && json_is_string(mv))
        continue;
      char name[60];
      escape(name, sizeof(name), mk, 40);
      snprintf(why, whylen, "expected a JSON array of {\"key\":\"...\",\"value\":\"...\"} "
               "objects; element %zu has %s \"%s\"", k,
               strcmp(mk, "value") == 0 ? "a non-string" : "an unknown member", name);
      rc = -EINVAL;
      goto out;
    }
  }
out:
  json_decref(root);
  return rc;
}

static int b64_value(unsigned char c)
{
  if(c >= 'A' && c <= 'Z')
    return c - 'A';
  if(c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if(c >= '0' && c <= '9')
    return c - '0' + 52;
  if(c == '+' || c == '-')  /* standard and URL-safe alphabets both */
    return 62;
  if(c == '/' || c == '_')
    return 63;
  return -1;
}

/* Decodes base64 in either alphabet, with or without padding, ignoring line
 * breaks (base64 without -w0 wraps). Returns a NUL-terminated buffer or NULL
 * when the text is not base64. */
static char *b64_decode(const char *s, size_t *outlen)
{
  size_t n = strlen(s), nchars = 0, npad = 0, o = 0;
  char *out = m3s_xmalloc(n / 4 * 3 + 4);
  uint32_t acc = 0;
  int bits = 0;

  for(size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    int val;

    if(c == '\n' || c == '\r' || c == ' ' || c == '\t')
      continue;
    if(c == '=') {
      npad++;
      continue;
    }
    val = b64_value(c);
    if(val < 0 || npad > 0)  /* no data after padding */
      goto bad;
    nchars++;
    acc = (acc << 6) | (uint32_t)val;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  if(nchars == 0 || nchars % 4 == 1 || npad > 2 ||
     (npad > 0 && (nchars + npad) % 4 != 0))
    goto bad;
  out[o] = '\0';
  *outlen = o;
  return out;
bad:
  free(out);
  return NULL;
}

int m3s_config_check_base64_pem(struct load *l, size_t i, char *why, size_t whylen)
{
  const struct var *v = &vars[i];
  const char *s = *str_field(l->cfg, v->off);
  size_t len = 0;
  char *pem;

  if(s[0] == '\0') {
    *str_field(l->cfg, v->aux_off) = m3s_xstrdup("");
    *(size_t *)field(l->cfg, v->aux2_off) = 0;
    return 0;
  }
  pem = b64_decode(s, &len);
  if(!pem) {
    snprintf(why, whylen, "expected base64 (standard or URL-safe alphabet, "
                          "padding optional)");
    return -EINVAL;
  }
  *str_field(l->cfg, v->aux_off) = pem;
  *(size_t *)field(l->cfg, v->aux2_off) = len;
  return 0;
}

static bool is_http_url(const char *s)
{
  return (strncasecmp(s, "http://", 7) == 0 && s[7]) ||
         (strncasecmp(s, "https://", 8) == 0 && s[8]);
}

int m3s_config_check_http_url(struct load *l, size_t i, char *why, size_t whylen)
{
  if(!is_http_url(*str_field(l->cfg, vars[i].off))) {
    snprintf(why, whylen, "expected an http:// or https:// URL");
    return -EINVAL;
  }
  return 0;
}

/* ---- stage 1: read, Vault, defaults ---- */

char *m3s_config_default_hostname(void)
{
  char host[256];
  struct addrinfo hints, *res = NULL;
  char *name;

  if(gethostname(host, sizeof(host)) == -1)
    return m3s_xstrdup("unknown");
  host[sizeof(host) - 1] = '\0';
  memset(&hints, 0, sizeof(hints));
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_CANONNAME;
  if(getaddrinfo(host, NULL, &hints, &res) == 0 && res && res->ai_canonname &&
     res->ai_canonname[0])
    name = m3s_xstrdup(res->ai_canonname);
  else
    name = m3s_xstrdup(host);
  if(res)
    freeaddrinfo(res);
  return name;
}

struct body {
  char *p;
  size_t n;
  bool too_big;
};

#define VAULT_BODY_MAX (1024 * 1024)

static size_t body_write(char *data, size_t size, size_t nmemb, void *userp)
{
  struct body *b = userp;
  size_t add = size * nmemb;

  if(b->n + add > VAULT_BODY_MAX) {
    b->too_big = true;
    return 0;  /* makes curl fail with CURLE_WRITE_ERROR */
  }
  b->p = m3s_xrealloc(b->p, b->n + add + 1);
  memcpy(b->p + b->n, data, add);
  b->n += add;
  b->p[b->n] = '\0';
  return add;
}

/* Percent-encodes everything but unreserved characters and '/', so a path
 * from the environment cannot add a query or fragment to the URL. */
static char *url_path_encode(const char *s)
{
  size_t n = strlen(s), o = 0;
  char *out = m3s_xmalloc(n * 3 + 1);

  for(size_t k = 0; k < n; k++) {
    unsigned char c = (unsigned char)s[k];
    if(isalnum(c) || strchr("-._~/", c))
      out[o++] = (char)c;
    else {
      snprintf(out + o, 4, "%%%02X", c);
      o += 3;
    }
  }
  out[o] = '\0';
  return out;
}

static int vault_prepare(struct load *l)
{
  size_t iu = var_index("VAULT_URL"), it = var_index("VAULT_TIMEOUT");
  size_t itok = var_index("VAULT_TOKEN");
  char why[80];
  int rc;

  if(l->vault_ready)
    return 0;
  rc = parse_value(l, it);
  if(rc != 0)
    return rc;
  if(!is_http_url(l->src[iu])) {
    snprintf(why, sizeof(why), "expected an http:// or https:// URL");
    return fail_value(l, iu, why);
  }
  /* The token goes into a header line; a line break would forge headers. */
  for(const char *c = l->src[itok]; *c; c++) {
    if((unsigned char)*c < 0x20 || *c == 0x7f) {
      seterr(l, "VAULT_TOKEN contains control characters");
      return -EINVAL;
    }
  }
  l->curl = curl_easy_init();
  if(!l->curl) {
    seterr(l, "cannot create a curl handle for Vault lookups");
    return -EINVAL;
  }
  l->vault_ready = true;
  return 0;
}

/* Resolves vault://<path>:<key> (KV v2: data.data.<key> of GET
 * VAULT_URL/v1/<path>) into *out. The token is never part of a message. */
static int vault_resolve(struct load *l, size_t i, const char *literal, char **out)
{
  const char *name = vars[i].name;
  const char *at = strstr(literal, "vault://");
  const char *url = l->src[var_index("VAULT_URL")];
  const char *token = l->src[var_index("VAULT_TOKEN")];
  char *ref = NULL, *path = NULL, *enc = NULL, *full = NULL, *hdr = NULL;
  char *key, *colon;
  struct curl_slist *headers = NULL;
  struct body b = { NULL, 0, false };
  char curlerr[CURL_ERROR_SIZE];
  char eref[200], eurl[200];
  json_t *root = NULL, *val;
  long status = 0;
  size_t ul;
  CURLcode cc;
  int rc = 0;

  rc = vault_prepare(l);
  if(rc != 0)
    goto out;
  /* As the original: the marker is removed wherever it is. */
  ref = m3s_xmalloc(strlen(literal) + 1);
  memcpy(ref, literal, (size_t)(at - literal));
  memcpy(ref + (at - literal), at + strlen("vault://"),
         strlen(at + strlen("vault://")) + 1);
  escape(eref, sizeof(eref), literal, 150);
  escape(eurl, sizeof(eurl), url, 150);
  path = ref;
  while(*path == '/')
    path++;
  colon = strchr(path, ':');
  if(!colon || colon == path || colon[1] == '\0') {
    seterr(l, "%s=\"%s\": expected vault://<path>:<key>", name, eref);
    rc = -EINVAL;
    goto out;
  }
  *colon = '\0';
  key = colon + 1;

  ul = strlen(url);
  while(ul > 0 && url[ul - 1] == '/')
    ul--;
  enc = url_path_encode(path);
  full = m3s_xmalloc(ul + strlen("/v1/") + strlen(enc) + 1);
  memcpy(full, url, ul);
  memcpy(full + ul, "/v1/", 4);
  memcpy(full + ul + 4, enc, strlen(enc) + 1);
  hdr = concat("X-Vault-Token: ", token);
  headers = curl_slist_append(NULL, hdr);
  if(!headers) {
    seterr(l, "%s: vault lookup of %s failed: out of memory", name, eref);
    rc = -EINVAL;
    goto out;
  }

  curlerr[0] = '\0';
  curl_easy_reset(l->curl);
  curl_easy_setopt(l->curl, CURLOPT_URL, full);
  curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, (long)l->cfg->vault_timeout_ms);
  curl_easy_setopt(l->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)l->cfg->vault_timeout_ms);
  curl_easy_setopt(l->curl, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
  curl_easy_setopt(l->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
  curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, body_write);
  curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, &b);
  curl_easy_setopt(l->curl, CURLOPT_ERRORBUFFER, curlerr);
  cc = curl_easy_perform(l->curl);
  if(cc != CURLE_OK) {
    char detail[CURL_ERROR_SIZE + 8];
    escape(detail, sizeof(detail), b.too_big ? "answer larger than 1 MiB" :
           curlerr[0] ? curlerr : curl_easy_strerror(cc), CURL_ERROR_SIZE);
    seterr(l, "%s: vault lookup of %s at %s failed: %s", name, eref, eurl, detail);
    rc = -EINVAL;
    goto out;
  }
  curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, &status);
  if(status != 200) {
    seterr(l, "%s: vault lookup of %s at %s failed: HTTP %ld%s", name, eref, eurl,
           status, status == 403 ? " (permission denied: check VAULT_TOKEN)" :
           status == 404 ? " (no secret at this path)" : "");
    rc = -EINVAL;
    goto out;
  }
  root = b.p ? json_loadb(b.p, b.n, 0, NULL) : NULL;
  if(!root) {
    seterr(l, "%s: vault lookup of %s at %s failed: the answer is not JSON",
           name, eref, eurl);
    rc = -EINVAL;
    goto out;
  }
  /* json_object_get(NULL, ...) is NULL, so a missing level is a missing key. */
  val = json_object_get(json_object_get(json_object_get(root, "data"), "data"), key);
  if(!val) {
    char ekey[120];
    escape(ekey, sizeof(ekey), key, 100);
    seterr(l, "%s: vault lookup of %s at %s failed: no key \"%s\" in data.data "
           "(a KV v2 secret)", name, eref, eurl, ekey);
    rc = -EINVAL;
    goto out;
  }
  if(json_is_string(val))
    *out = m3s_xstrdup(json_string_value(val));
  else if(json_is_number(val) || json_is_boolean(val)) {
    char *text = json_dumps(val, JSON_ENCODE_ANY);
    *out = m3s_xstrdup(text ? text : "");
    free(text);
  }
  else {
    seterr(l, "%s: vault lookup of %s at %s failed: the value is not a string",
           name, eref, eurl);
    rc = -EINVAL;
    goto out;
  }
out:
  json_decref(root);
  curl_slist_free_all(headers);
  if(hdr) {
    /* The header held the token: wipe before freeing. */
    memset(hdr, 0, strlen(hdr));
    free(hdr);
  }
  free(b.p);
  free(full);
  free(enc);
  free(ref);
  return rc;
}

static void apply_default(struct load *l, size_t i)
{
  const struct var *v = &vars[i];

  if(v->def_fn)
    l->src[i] = v->def_fn();
  else if(!v->def_from)
    l->src[i] = m3s_xstrdup(v->def ? v->def : "");
}

/* Reads one variable into src[i]; vault:// references are resolved only
 * when resolve is set (never for RAW variables). */
static int read_var(struct load *l, size_t i, bool resolve)
{
  const struct var *v = &vars[i];
  const char *val = l->getenv_fn(v->name, l->ctx);
  const char *token = l->src[var_index("VAULT_TOKEN")];
  int rc;

  if(val && val[0]) {
    if(resolve && token[0] && strstr(val, "vault://")) {
      char *resolved = NULL;
      rc = vault_resolve(l, i, val, &resolved);
      if(rc != 0)
        return rc;
      l->vref[i] = m3s_xstrdup(val);
      if(resolved[0])
        l->src[i] = resolved;
      else
        free(resolved);  /* an empty secret means the default, like empty env */
    }
    else
      l->src[i] = m3s_xstrdup(val);
    l->given[i] = l->src[i] != NULL;
  }
  if(!l->src[i])
    apply_default(l, i);
  return 0;
}

static int read_all(struct load *l)
{
  int rc;

  /* RAW variables first, as they are: they include the Vault settings that
   * the second pass needs to resolve the others. */
  for(size_t i = 0; i < NVARS; i++) {
    if(vars[i].flags & F_RAW) {
      rc = read_var(l, i, false);
      if(rc != 0)
        return rc;
    }
  }
  for(size_t i = 0; i < NVARS; i++) {
    if(!(vars[i].flags & F_RAW)) {
      rc = read_var(l, i, true);
      if(rc != 0)
        return rc;
    }
  }
  /* Then defaults copied from another variable, which is final by now. */
  for(size_t i = 0; i < NVARS; i++) {
    if(l->src[i])
      continue;
    size_t from = vars[i].def_from ? var_index(vars[i].def_from) : NVARS;
    if(from == NVARS || !l->src[from]) {
      seterr(l, "%s: internal error: default refers to unknown %s", vars[i].name,
             vars[i].def_from);
      return -EINVAL;
    }
    l->src[i] = m3s_xstrdup(l->src[from]);
  }
  return 0;
}

/* ---- stage 4: checks across variables ---- */

static int no_password(char *buf, int size, int rwflag, void *u)
{
  /* Never prompt on a terminal for an encrypted key: refuse it instead. */
  (void)buf; (void)size; (void)rwflag; (void)u;
  return -1;
}

static int check_tls_pair(struct load *l)
{
  m3s_config_t *cfg = l->cfg;
  size_t ic = var_index("SSL_CRT_BASE64"), ik = var_index("SSL_KEY_BASE64");
  BIO *bio = NULL;
  X509 *crt = NULL;
  EVP_PKEY *key = NULL;
  int rc = 0;

  if(!cfg->ssl_crt_base64[0] && !cfg->ssl_key_base64[0])
    return 0;
  if(!cfg->ssl_crt_base64[0] || !cfg->ssl_key_base64[0]) {
    seterr(l, "%s is set but %s is not: set both (HTTPS) or neither (HTTP)",
           cfg->ssl_crt_base64[0] ? "SSL_CRT_BASE64" : "SSL_KEY_BASE64",
           cfg->ssl_crt_base64[0] ? "SSL_KEY_BASE64" : "SSL_CRT_BASE64");
    return -EINVAL;
  }
  bio = BIO_new_mem_buf(cfg->ssl_crt_pem, (int)cfg->ssl_crt_pem_len);
  crt = bio ? PEM_read_bio_X509(bio, NULL, no_password, NULL) : NULL;
  BIO_free(bio);
  if(!crt) {
    rc = fail_value(l, ic, "decodes, but not to a PEM certificate");
    goto out;
  }
  bio = BIO_new_mem_buf(cfg->ssl_key_pem, (int)cfg->ssl_key_pem_len);
  key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_password, NULL) : NULL;
  BIO_free(bio);
  if(!key) {
    rc = fail_value(l, ik, "decodes, but not to an unencrypted PEM private key");
    goto out;
  }
  if(X509_check_private_key(crt, key) != 1) {
    rc = fail_value(l, ik, "the key does not belong to the certificate in "
                           "SSL_CRT_BASE64");
    goto out;
  }
out:
  EVP_PKEY_free(key);
  X509_free(crt);
  ERR_clear_error();  /* failed parses leave entries on this thread's queue */
  return rc;
}

static int cross_check(struct load *l)
{
  m3s_config_t *cfg = l->cfg;

  /* The original applied both datastores when DS_ETCD=true met the default
   * DS_MYSQL=true and launched a broken task. DS_ETCD=true now means etcd
   * unless DS_MYSQL=true was asked for explicitly too. */
  if(cfg->ds_etcd && cfg->ds_mysql) {
    if(l->given[var_index("DS_MYSQL")]) {
      seterr(l, "DS_ETCD=true and DS_MYSQL=true: set only one of DS_ETCD and DS_MYSQL");
      return -EINVAL;
    }
    cfg->ds_mysql = false;
  }
  if(!cfg->ds_etcd && !cfg->ds_mysql) {
    seterr(l, "DS_MYSQL=false and DS_ETCD=false: K3s needs a datastore, set one "
              "of them to true");
    return -EINVAL;
  }
  if(cfg->portrange_from >= cfg->portrange_to) {
    seterr(l, "PORTRANGE_FROM=%d and PORTRANGE_TO=%d: PORTRANGE_FROM must be lower "
              "than PORTRANGE_TO", cfg->portrange_from, cfg->portrange_to);
    return -EINVAL;
  }
  return check_tls_pair(l);
}

/* Stages 2 to 4 for every variable that has a string in src[] (all of
 * them at start, the changed ones at run time). */
static int settle(struct load *l)
{
  char why[256];
  int rc;

  for(size_t i = 0; i < NVARS; i++) {
    if(!l->src[i])
      continue;
    rc = parse_value(l, i);
    if(rc != 0)
      return rc;
  }
  for(size_t i = 0; i < NVARS; i++) {
    if(!l->src[i] || !vars[i].check)
      continue;
    why[0] = '\0';
    rc = vars[i].check(l, i, why, sizeof(why));
    if(rc != 0)
      return fail_value(l, i, why);
  }
  return cross_check(l);
}

/* ---- API ---- */

int m3s_config_load(m3s_config_t *cfg, m3s_getenv_cb getenv_fn, void *ctx,
                    char *err, size_t errlen)
{
  struct load l;
  int rc;

  memset(cfg, 0, sizeof(*cfg));
  memset(&l, 0, sizeof(l));
  l.cfg = cfg;
  l.getenv_fn = getenv_fn;
  l.ctx = ctx;
  l.err = err;
  l.errlen = errlen;
  if(err && errlen)
    err[0] = '\0';

  rc = read_all(&l);
  if(rc != 0)
    goto out;
  rc = settle(&l);

out:
  for(size_t i = 0; i < NVARS; i++) {
    free(l.src[i]);
    free(l.vref[i]);
  }
  if(l.curl)
    curl_easy_cleanup(l.curl);
  if(rc != 0)
    m3s_config_free(cfg);
  return rc;
}

void m3s_config_free(m3s_config_t *cfg)
{
  if(!cfg)
    return;
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    if(v->type == T_STRING || v->type == T_JSON || v->type == T_HOSTPORT)
      free(*str_field(cfg, v->off));
    switch(v->aux) {
    case AUX_NONE:
      break;
    case AUX_STR:
      free(*str_field(cfg, v->aux_off));
      break;
    case AUX_KVLIST:
      kvlist_free(field(cfg, v->aux_off));
      break;
    case AUX_PEM: {
      char *pem = *str_field(cfg, v->aux_off);
      if(pem) {
        /* May be a private key. */
        memset(pem, 0, *(size_t *)field(cfg, v->aux2_off));
        free(pem);
      }
      break;
    }
    }
  }
  memset(cfg, 0, sizeof(*cfg));
}

/* ---- run-time changes ---- */

bool m3s_config_is_live(const char *name)
{
  size_t i = name ? var_index(name) : NVARS;
  return i < NVARS && (vars[i].flags & F_LIVE);
}

const char *m3s_config_record_field(const char *name)
{
  size_t i = name ? var_index(name) : NVARS;
  if(i == NVARS || !(vars[i].flags & F_LIVE))
    return NULL;
  return vars[i].record ? vars[i].record : vars[i].name;
}

const char *m3s_config_live_name(size_t k)
{
  for(size_t i = 0; i < NVARS; i++)
    if((vars[i].flags & F_LIVE) && k-- == 0)
      return vars[i].name;
  return NULL;
}

static void kvlist_copy(m3s_kvlist_t *dst, const m3s_kvlist_t *src)
{
  dst->n = src->n;
  dst->items = src->n ? m3s_xcalloc(src->n, sizeof(*dst->items)) : NULL;
  for(size_t k = 0; k < src->n; k++) {
    dst->items[k].key = m3s_xstrdup(src->items[k].key);
    dst->items[k].value = m3s_xstrdup(src->items[k].value);
  }
}

/* Mirrors m3s_config_free: every pointer the table says a variable owns is
 * duplicated, the rest of the struct is plain values. */
void m3s_config_copy(m3s_config_t *dst, const m3s_config_t *src)
{
  *dst = *src;
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    if(v->type == T_STRING || v->type == T_JSON || v->type == T_HOSTPORT)
      *str_field(dst, v->off) = m3s_xstrdup(*str_field(src, v->off));
    switch(v->aux) {
    case AUX_NONE:
      break;
    case AUX_STR:
      *str_field(dst, v->aux_off) = m3s_xstrdup(*str_field(src, v->aux_off));
      break;
    case AUX_KVLIST:
      kvlist_copy(field(dst, v->aux_off), field(src, v->aux_off));
      break;
    case AUX_PEM: {
      const char *pem = *str_field(src, v->aux_off);
      size_t len = *(size_t *)field(src, v->aux2_off);
      char *c = NULL;
      if(pem) {
        c = m3s_xmalloc(len + 1);
        memcpy(c, pem, len + 1);
      }
      *str_field(dst, v->aux_off) = c;
      break;
    }
    }
  }
}

/* The effective value of a float variable as text, for a limit left empty
 * in a change: it follows its request as at start. */
static char *float_text(const m3s_config_t *cfg, size_t i)
{
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", *(double *)field(cfg, vars[i].off));
  return m3s_xstrdup(buf);
}

int m3s_config_set(m3s_config_t *cfg, const m3s_config_item_t *items, size_t n,
                   char *err, size_t errlen)
{
  m3s_config_t copy;
  struct load l;
  int rc = 0;

  if(err && errlen)
    err[0] = '\0';
  m3s_config_copy(&copy, cfg);
  memset(&l, 0, sizeof(l));
  l.cfg = &copy;
  l.err = err;
  l.errlen = errlen;
  /* First every name, so a bad name is reported before any value. */
  for(size_t k = 0; k < n; k++) {
    size_t i = items[k].name ? var_index(items[k].name) : NVARS;
    char shown[80];
    escape(shown, sizeof(shown), items[k].name ? items[k].name : "", 60);
    if(i == NVARS) {
      seterr(&l, "%s: unknown variable", shown);
      rc = -EINVAL;
      goto out;
    }
    if(!(vars[i].flags & F_LIVE)) {
      seterr(&l, "%s: cannot be changed at run time, only at start", shown);
      rc = -EINVAL;
      goto out;
    }
    if(l.src[i]) {
      seterr(&l, "%s: given twice", shown);
      rc = -EINVAL;
      goto out;
    }
    const char *val = items[k].value ? items[k].value : "";
    if(strstr(val, "vault://")) {
      seterr(&l, "%s: vault:// references are resolved only at start", shown);
      rc = -EINVAL;
      goto out;
    }
    l.src[i] = m3s_xstrdup(val);
    l.given[i] = val[0] != '\0';
  }
  /* A limit that is at its request (as when it was left unset at start)
   * follows a changed request. */
  for(size_t i = 0; i < NVARS; i++) {
    size_t from = vars[i].def_from ? var_index(vars[i].def_from) : NVARS;
    if(l.src[i] || from == NVARS || !l.src[from] || vars[i].type != T_FLOAT ||
       vars[from].type != T_FLOAT ||
       *(double *)field(&copy, vars[i].off) != *(double *)field(&copy, vars[from].off))
      continue;
    l.src[i] = m3s_xstrdup("");
  }
  /* Empty means the default, as at start; a default that follows another
   * variable follows its new value, so requests go before limits. */
  for(size_t i = 0; i < NVARS; i++) {
    if(!l.src[i] || l.given[i])
      continue;
    free(l.src[i]);
    l.src[i] = NULL;
    if(vars[i].def_from) {
      size_t from = var_index(vars[i].def_from);
      if(l.src[from]) {
        rc = parse_value(&l, from);
        if(rc != 0)
          goto out;
      }
      l.src[i] = float_text(&copy, from);
    }
    else
      apply_default(&l, i);
  }
  rc = settle(&l);

out:
  for(size_t i = 0; i < NVARS; i++)
    free(l.src[i]);
  if(rc != 0) {
    m3s_config_free(&copy);
    return rc;
  }
  m3s_config_free(cfg);
  *cfg = copy;
  return 0;
}

json_t *m3s_config_value_json(const m3s_config_t *cfg, const char *name)
{
  size_t i = name ? var_index(name) : NVARS;
  if(i == NVARS)
    return NULL;
  switch(vars[i].type) {
  case T_JSON: {
    /* As the original keeps it: parsed (null when empty). */
    const char *text = *str_field(cfg, vars[i].off);
    return text[0] ? json_loads(text, 0, NULL) : json_null();
  }
  case T_STRING:
  case T_HOSTPORT:
    return json_string(*str_field(cfg, vars[i].off));
  case T_FLOAT:
    return json_real(*(double *)field(cfg, vars[i].off));
  case T_BOOL:
    return json_boolean(*(bool *)field(cfg, vars[i].off));
  case T_INT:
  case T_PORT:
    return json_integer(*(int *)field(cfg, vars[i].off));
  case T_DURATION:
    return json_integer(*(int64_t *)field(cfg, vars[i].off));
  }
  return NULL;
}

static const char *type_text(const struct var *v, char *buf, size_t len)
{
  switch(v->type) {
  case T_STRING:
    return "string";
  case T_BOOL:
    return "bool";
  case T_INT:
    if(v->max == INT_MAX)
      snprintf(buf, len, "integer >= %lld", v->min);
    else
      snprintf(buf, len, "integer %lld..%lld", v->min, v->max);
    return buf;
  case T_FLOAT:
    snprintf(buf, len, "number >= %g", v->fmin);
    return buf;
  case T_DURATION:
    return v->flags & F_POSITIVE ? "duration > 0" : "duration";
  case T_JSON:
    return "JSON";
  case T_HOSTPORT:
    return "host:port";
  case T_PORT:
    return "port";
  }
  return "?";
}

/* Prints text word-wrapped at 78 columns with the given indent. */
static void print_wrapped(FILE *out, const char *text, int indent)
{
  const int width = 78;
  int col = 0;

  while(*text) {
    size_t wl = strcspn(text, " ");
    if(col > 0 && col + 1 + (int)wl > width) {
      fputc('\n', out);
      col = 0;
    }
    if(col == 0) {
      fprintf(out, "%*s", indent, "");
      col = indent;
    }
    else {
      fputc(' ', out);
      col++;
    }
    fwrite(text, 1, wl, out);
    col += (int)wl;
    text += wl;
    while(*text == ' ')
      text++;
  }
  if(col > 0)
    fputc('\n', out);
}

void m3s_config_print_help(FILE *out)
{
  int group = -1;

  fprintf(out, "An unset or empty variable takes its default. Unless marked raw, a "
               "value\ncontaining vault://<path>:<key> is read from Vault when "
               "VAULT_TOKEN is set.\nBooleans: true/false, 1/0, yes/no, on/off. "
               "Durations: 15s, 1m30s, 500ms, 1.5h.\nVariables marked run-time can also be "
               "changed while m3s runs (PUT\n/api/m3s/v0/cluster/update).\n");
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    char tbuf[64], dbuf[80];
    const char *def, *quote = "";

    if((int)v->group != group) {
      group = (int)v->group;
      fprintf(out, "\n%s:\n", group_titles[group]);
    }
    if(v->def_from) {
      snprintf(dbuf, sizeof(dbuf), "same as %s", v->def_from);
      def = dbuf;
    }
    else if(v->def_fn)
      def = v->def_text;
    else if(v->def && v->def[0]) {
      def = v->def;
      /* A default like "," or one with spaces is unreadable unquoted. */
      if(strpbrk(def, " ,;|"))
        quote = "\"";
    }
    else
      def = "empty";
    fprintf(out, "  %s  (%s%s%s%s; default: %s%s%s)\n", v->name,
            type_text(v, tbuf, sizeof(tbuf)), v->flags & F_SECRET ? ", secret" : "",
            v->flags & F_RAW ? ", raw" : "", v->flags & F_LIVE ? ", run-time" : "",
            quote, def, quote);
    print_wrapped(out, v->help, 6);
  }
}

/* Shortest text that reads back as the same double; whole numbers without
 * exponent (2000, not 2e+03). */
static void format_double(char *buf, size_t len, double d)
{
  if(d == floor(d) && fabs(d) < 1e15) {
    snprintf(buf, len, "%.0f", d);
    return;
  }
  for(int prec = 1; prec <= 17; prec++) {
    snprintf(buf, len, "%.*g", prec, d);
    if(strtod(buf, NULL) == d)
      return;
  }
}

/* Milliseconds in Go duration syntax (1h30m, 1m30.5s, 500ms), so the output
 * of --print-config can be fed back as environment. */
static void format_duration(char *buf, size_t len, int64_t ms)
{
  int64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
  size_t o = 0;

  buf[0] = '\0';
  if(ms < 1000) {
    snprintf(buf, len, "%" PRId64 "ms", ms);
    return;
  }
  if(h)
    o += (size_t)snprintf(buf + o, len - o, "%" PRId64 "h", h);
  if(m && o < len)
    o += (size_t)snprintf(buf + o, len - o, "%" PRId64 "m", m);
  if((s || r) && o < len) {
    if(r) {
      char frac[8];
      snprintf(frac, sizeof(frac), "%03" PRId64, r);
      for(size_t k = strlen(frac); k > 0 && frac[k - 1] == '0'; k--)
        frac[k - 1] = '\0';
      snprintf(buf + o, len - o, "%" PRId64 ".%ss", s, frac);
    }
    else
      snprintf(buf + o, len - o, "%" PRId64 "s", s);
  }
}

/* A value on one line: control characters escaped like in C. */
static void print_escaped(FILE *out, const char *s)
{
  for(; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if(c == '\n')
      fputs("\\n", out);
    else if(c == '\t')
      fputs("\\t", out);
    else if(c == '\r')
      fputs("\\r", out);
    else if(c < 0x20 || c == 0x7f)
      fprintf(out, "\\x%02x", c);
    else
      fputc(c, out);
  }
}

void m3s_config_print(const m3s_config_t *cfg, FILE *out)
{
  for(size_t i = 0; i < NVARS; i++) {
    const struct var *v = &vars[i];
    char buf[64];

    fprintf(out, "%s=", v->name);
    switch(v->type) {
    case T_STRING:
    case T_JSON:
    case T_HOSTPORT: {
      const char *s = *str_field(cfg, v->off);
      if(!s)
        s = "";
      if((v->flags & F_SECRET) && s[0])
        fputs("***", out);
      else if((v->flags & F_ABBREV) && strlen(s) > 24) {
        char head[17];
        memcpy(head, s, 16);
        head[16] = '\0';
        print_escaped(out, head);
        fprintf(out, "...(%zu chars)", strlen(s));
      }
      else
        print_escaped(out, s);
      break;
    }
    case T_BOOL:
      fputs(*(bool *)field(cfg, v->off) ? "true" : "false", out);
      break;
    case T_INT:
    case T_PORT:
      fprintf(out, "%d", *(int *)field(cfg, v->off));
      break;
    case T_FLOAT:
      format_double(buf, sizeof(buf), *(double *)field(cfg, v->off));
      fputs(buf, out);
      break;
    case T_DURATION:
      format_duration(buf, sizeof(buf), *(int64_t *)field(cfg, v->off));
      fputs(buf, out);
      break;
    }
    fputc('\n', out);
  }
}

size_t m3s_config_secrets(const m3s_config_t *cfg, const char **out, size_t max)
{
  size_t n = 0;

  for(size_t i = 0; i < NVARS && n < max; i++) {
    const struct var *v = &vars[i];
    if(!(v->flags & F_SECRET) || v->type != T_STRING)
      continue;
    const char *s = *str_field(cfg, v->off);
    if(s && s[0])
      out[n++] = s;
  }
  /* The decoded key is as secret as its base64 form. */
  if(n < max && cfg->ssl_key_pem && cfg->ssl_key_pem[0])
    out[n++] = cfg->ssl_key_pem;
  return n;
}
