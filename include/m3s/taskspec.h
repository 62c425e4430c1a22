/* The spec digest of a task: what m3s_taskinfo_build() would launch for a
 * role with a configuration and resource settings, minus what changes from
 * one launch to the next (task id, Mesos agent, host ports chosen from the
 * offer, the agent's hostname, the offer's role). Two tasks with the same
 * digest were launched with the same image, K3s version, command,
 * environment, volumes, Docker parameters and resources.
 *
 * Every task record keeps the digest it was launched with (spec_digest); a
 * task whose digest differs from the one the role's current configuration
 * gives is outdated. A record without a digest (written before digests
 * existed, or by the Go version) has an unknown spec: it is reported as such
 * and not counted as outdated, since nothing says it differs.
 *
 * Threads: a pure function of its arguments; any thread may call it.
 */
#ifndef M3S_TASKSPEC_H
#define M3S_TASKSPEC_H

#include "m3s/config-t.h"
#include "m3s/records.h"
#include "m3s/taskinfo.h"

/* Hex characters of a digest (SHA-256, truncated to 128 bits). */
#define M3S_SPEC_DIGEST_LEN 32

/* out = the digest of the role's task spec under cfg and res (res NULL =
 * from cfg). Returns 0, or -EINVAL with out "" when no TaskInfo can be
 * built (role NONE, a configuration string that is not UTF-8). */
int m3s_task_spec_digest(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                         m3s_role_t role, char out[M3S_SPEC_DIGEST_LEN + 1]);

#endif
