/* The spec digest of a task (see m3s/taskspec.h).
 *
 * The digest hashes the TaskInfo itself, built with a placement that is the
 * same for every launch, so that whatever m3s_taskinfo_build() learns to
 * put into a task is covered without a second list to keep in step. The
 * per-launch values it still contains (the placeholder task and agent ids,
 * the placeholder host ports) are constants, so they cancel out. The
 * server's first host port is its fixed K3S_SERVER_PORT, a setting, and
 * stays in. Keys are sorted before hashing: jansson keeps insertion order,
 * which is not part of the spec.
 */
#include "m3s/taskspec.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PLACEHOLDER_ID "spec"

int m3s_task_spec_digest(const m3s_config_t *cfg, const m3s_task_resources_t *res,
                         m3s_role_t role, char out[M3S_SPEC_DIGEST_LEN + 1])
{
  m3s_task_demand_t d;
  int ports[8];
  char err[200];
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;

  out[0] = '\0';
  if(!cfg || !m3s_role_name(role))
    return -EINVAL;
  m3s_task_demand(cfg, res, role, &d);
  if(d.n_ports > sizeof(ports) / sizeof(ports[0]))
    return -EINVAL;
  /* Distinct placeholders, the fixed port first; they avoid it. */
  for(size_t i = 0, next = 1; i < d.n_ports; i++) {
    if(i == 0 && d.fixed_port > 0) {
      ports[i] = d.fixed_port;
      continue;
    }
    if((int)next == d.fixed_port)
      next++;
    ports[i] = (int)next++;
  }
  m3s_placement_t p = { .task_id = PLACEHOLDER_ID, .agent_id = PLACEHOLDER_ID,
                        .agent_hostname = NULL, .host_ports = ports,
                        .n_host_ports = d.n_ports, .role = NULL };
  json_t *ti = m3s_taskinfo_build(cfg, res, role, &p, err, sizeof(err));
  if(!ti)
    return -EINVAL;
  char *text = json_dumps(ti, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(ti);
  if(!text)
    return -EINVAL;
  int ok = EVP_Digest(text, strlen(text), md, &mdlen, EVP_sha256(), NULL);
  free(text);
  if(ok != 1 || mdlen * 2 < M3S_SPEC_DIGEST_LEN)
    return -EINVAL;
  for(size_t i = 0; i < M3S_SPEC_DIGEST_LEN / 2; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
  return 0;
}
