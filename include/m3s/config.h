/* Configuration: every environment variable of the original M3s, read once
 * through one declarative table (src/runtime/config.c) before any actor
 * starts. The resulting m3s_config_t is read-only afterwards and may be read
 * by every thread without locking: it never changes while threads run.
 *
 * Values that change at run time (desired counts, resources set through the
 * API, ...) are not configuration: they live in the owning actor and travel
 * in messages.
 */
#ifndef M3S_CONFIG_H
#define M3S_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/* `m3s --help`: every variable with type, default and help, from the table. */
void m3s_config_print_help(FILE *out);
/* `m3s --print-config`: the effective value of every variable, secrets masked. */
void m3s_config_print(const m3s_config_t *cfg, FILE *out);
/* The non-empty secret values of *cfg (borrowed pointers into cfg), for the
 * logger's scrubber. Returns how many were written to out (at most max). */
size_t m3s_config_secrets(const m3s_config_t *cfg, const char **out, size_t max);

#endif
