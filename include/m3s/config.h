/* Configuration: every environment variable of the original M3s, read once
 * through one declarative table (src/runtime/config_vars.c) before any
 * actor starts. The resulting m3s_config_t is read-only afterwards and may
 * be read by every thread without locking: it never changes while threads
 * run.
 *
 * Values that change at run time are not changed in it: the variables the
 * table marks "run-time" (images, K3s version and arguments, labels,
 * resources) may be changed through the API, and the actors that use them
 * keep their own copy (m3s_config_copy), changed with m3s_config_set by
 * the owner and handed on in messages. Desired counts and the like live in
 * the owning actor only.
 */
#ifndef M3S_CONFIG_H
#define M3S_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "m3s/config-t.h"

/* Looks up one variable; NULL when unset. Tests pass a fake environment. */
typedef const char *(*m3s_getenv_cb)(const char *name, void *ctx);

/* Fills *cfg from the environment given by getenv_fn. Returns 0, or -EINVAL
 * with exactly one line in err naming the variable, the bad value and what is
 * expected (the daemon prints it and exits with code 2). On error *cfg holds
 * nothing that needs freeing. */
int m3s_config_load(m3s_config_t *cfg, m3s_getenv_cb getenv_fn, void *ctx,
                    char *err, size_t errlen);
void m3s_config_free(m3s_config_t *cfg);

/* One variable of a run-time change: both borrowed. */
typedef struct m3s_config_item {
  const char *name;
  const char *value;          /* as an environment value would be; "" =
                                 the default, as at start */
} m3s_config_item_t;

/* Whether the variable may be changed at run time. */
bool m3s_config_is_live(const char *name);
/* The framework_config field that keeps a run-time value of the variable
 * (the original's Go name where it has one), NULL when not run-time. */
const char *m3s_config_record_field(const char *name);
/* The k-th run-time variable in table order, NULL past the last. */
const char *m3s_config_live_name(size_t k);
/* *dst = a deep copy of *src (free with m3s_config_free). */
void m3s_config_copy(m3s_config_t *dst, const m3s_config_t *src);
/* Changes the named run-time variables of *cfg, parsed and checked by the
 * same table and validators as at start, all or nothing. Returns 0, or
 * -EINVAL with one line in err naming the variable (unknown, not
 * changeable at run time, given twice, a vault:// value, or a bad value as
 * at start) and *cfg unchanged. Any thread, on a cfg it owns. */
int m3s_config_set(m3s_config_t *cfg, const m3s_config_item_t *items, size_t n,
                   char *err, size_t errlen);
/* The value of a variable as JSON (string, number or boolean; durations in
 * ms; a JSON variable parsed, null when empty): a new reference, NULL for an
 * unknown name. */
json_t *m3s_config_value_json(const m3s_config_t *cfg, const char *name);

/* `m3s --help`: every variable with type, default and help, from the table. */
void m3s_config_print_help(FILE *out);
/* `m3s --print-config`: the effective value of every variable, secrets masked. */
void m3s_config_print(const m3s_config_t *cfg, FILE *out);
/* The non-empty secret values of *cfg (borrowed pointers into cfg), for the
 * logger's scrubber. Returns how many were written to out (at most max). */
size_t m3s_config_secrets(const m3s_config_t *cfg, const char **out, size_t max);

#endif
