/* Internals of the configuration shared by the variable table
 * (config_vars.c) and the loader (config.c); nothing else includes this.
 */
#ifndef M3S_RUNTIME_CONFIG_INT_H
#define M3S_RUNTIME_CONFIG_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "m3s/config.h"

enum vtype {
  T_STRING,
  T_BOOL,
  T_INT,      /* int, range min..max */
  T_FLOAT,    /* double, >= fmin, finite */
  T_DURATION, /* Go syntax, stored as int64_t ms */
  T_JSON,     /* syntax-checked, stored raw */
  T_HOSTPORT, /* host:port or [v6]:port; host and port go to aux fields */
  T_PORT,     /* int 1..65535 */
};

enum vgroup {
  G_FRAMEWORK,
  G_MESOS,
  G_TIMERS,
  G_API,
  G_REDIS,
  G_DS,
  G_K3S,
  G_SERVER,
  G_AGENT,
  G_DOCKER,
  G_VAULT,
};


#define F_SECRET 0x01u   /* masked in print, listed by m3s_config_secrets */
#define F_RAW 0x02u      /* read as is: no vault:// resolution (original used os.Getenv) */
#define F_UNUSED 0x04u   /* parsed but without effect in the original too */
#define F_POSITIVE 0x08u /* durations: 0 would have crashed the original */
#define F_ABBREV 0x10u   /* long value: print abbreviated */
#define F_LIVE 0x20u     /* may be changed at run time (m3s_config_set) */

/* Derived fields a variable owns besides its main field, so that freeing is
 * driven by the table as well. */
enum vaux {
  AUX_NONE,
  AUX_STR,    /* char * at aux_off */
  AUX_KVLIST, /* m3s_kvlist_t at aux_off */
  AUX_PEM,    /* char * at aux_off, size_t length at aux2_off */
};

struct load;
typedef int (*check_fn)(struct load *l, size_t i, char *why, size_t whylen);

struct var {
  const char *name;
  enum vtype type;
  enum vgroup group;
  unsigned flags;
  size_t off;
  enum vaux aux;
  size_t aux_off;
  size_t aux2_off;     /* T_HOSTPORT: int port; AUX_PEM: size_t length;
                          kvlist check: char * delimiter field */
  const char *def;      /* default in string form; NULL = "" */
  const char *def_from; /* default = effective value of this variable */
  char *(*def_fn)(void);
  const char *def_text; /* how --help describes def_fn */
  long long min, max;   /* T_INT */
  double fmin;          /* T_FLOAT */
  check_fn check;
  const char *help;
  const char *record;   /* F_LIVE: the framework_config field that keeps a
                           run-time value (the original's name), NULL =
                           the variable's name */
};

/* Offsets that fail to compile when the field has another type than the
 * table entry claims. */
#define OFF(f, T) (offsetof(m3s_config_t, f) + 0 * sizeof((T *){ &((m3s_config_t *)0)->f }))
#define O_STR(f) OFF(f, char *)
#define O_BOOL(f) OFF(f, bool)
#define O_INT(f) OFF(f, int)
#define O_DBL(f) OFF(f, double)
#define O_MS(f) OFF(f, int64_t)
#define O_SIZE(f) OFF(f, size_t)
#define O_LIST(f) OFF(f, m3s_kvlist_t)

#define COUNT_MAX 1000

/* Per-variable validators (config.c), referenced by the table. */
int m3s_config_check_fwname(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_loglevel(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_domain(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_constraint(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_kvlist(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_labels(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_base64_pem(struct load *l, size_t i, char *why, size_t whylen);
int m3s_config_check_http_url(struct load *l, size_t i, char *why, size_t whylen);
char *m3s_config_default_hostname(void);

/* The table (config_vars.c); NVARS is checked against it at compile time. */
extern const struct var m3s_config_vars[];
#define NVARS 123

#endif
