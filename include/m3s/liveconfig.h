/* Run-time configuration changes (PUT /api/m3s/v0/cluster/update) and how
 * framework_config keeps them. Pure functions; any thread, on data it owns.
 *
 * Ownership: the offers actor validates a change (m3s_config_set on its own
 * copy of the configuration) and writes framework_config; each role actor
 * keeps its own copy too and gets the changed one in M3S_ROLE_SET_SPEC.
 * Resource variables (DS_CPU, K3S_AGENT_MEM_LIMIT, ...) belong to the role
 * actors, as with the original's resource endpoints; they are kept in the
 * original's fields (DSCPU, K3SAgentMEMLimit, ...), which the roles restore
 * at start. The other run-time variables are kept in the original's field
 * for them (ImageK3S, KubernetesVersion, K3SAgentString, ...; labels
 * parsed, as the original keeps them), and their
 * names in M3S_LIVE_FIELD: only those are restored at start, so a record
 * the Go version wrote (it writes every field from its environment) does
 * not override this daemon's environment.
 */
#ifndef M3S_LIVECONFIG_H
#define M3S_LIVECONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "m3s/config.h"
#include "m3s/records.h"
#include "m3s/role.h"
#include "m3s/taskinfo.h"

/* framework_config field: array of the variable names changed at run time. */
#define M3S_LIVE_FIELD "M3SRuntimeVariables"

/* A change as sent to the offers actor: n items whose strings follow the
 * array in the same allocation (one free()). */
typedef struct m3s_live_change {
  size_t n;
  m3s_config_item_t items[];
} m3s_live_change_t;

/* New change (free()) from a JSON object of variables: a string value as
 * is, a number as its shortest decimal text, a boolean as true/false.
 * NULL with one line in err when body is not an object, is empty, or a
 * value has another type. */
m3s_live_change_t *m3s_live_change_from_json(const json_t *body, char *err, size_t errlen);

/* Whether name is a resource variable; *role and *kind filled when so. */
bool m3s_live_resource(const char *name, m3s_role_t *role, m3s_role_resource_kind_t *kind);

/* The role's resource settings into / out of cfg's DS_*, K3S_SERVER_*,
 * K3S_AGENT_* fields. */
void m3s_live_resources_put(m3s_config_t *cfg, m3s_role_t role, const m3s_task_resources_t *r);

/* Records the change's non-resource variables in *extra (created when
 * NULL): each value of cfg under its field, the name in M3S_LIVE_FIELD. */
void m3s_live_record_store(json_t **extra, const m3s_config_t *cfg,
                           const m3s_live_change_t *ch);

/* Applies to cfg the values a framework_config record keeps for the
 * variables listed in its M3S_LIVE_FIELD. Returns how many, or -EINVAL
 * with err (cfg unchanged) when one does not validate. */
int m3s_live_record_restore(m3s_config_t *cfg, const m3s_fw_config_record_t *rec,
                            char *err, size_t errlen);

#endif
