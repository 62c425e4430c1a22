/* The api actor's routes: the table of every endpoint, and matching a
 * request's path against it (api-int.h). */
#include <string.h>

#include "m3s/offers.h"
#include "m3s/rollout.h"
#include "api-int.h"

const char *const api_role_actor[4] = { NULL, "datastore", "server", "agent" };

static const struct {
  const char *name;
  m3s_role_resource_kind_t kind;
} resources[] = {
  { "cpus", M3S_RES_CPU },      { "cpusLimit", M3S_RES_CPU_LIMIT },
  { "memory", M3S_RES_MEM },    { "memoryLimit", M3S_RES_MEM_LIMIT },
  { "disk", M3S_RES_DISK },     { "diskLimit", M3S_RES_DISK_LIMIT },
};

const route_t api_routes[] = {
  { "GET", "/health", api_h_health, 0, R_NOAUTH },
  { "GET", "/metrics", api_h_metrics, 0, 0 },
  { "GET", "/api/m3s/versions", api_h_versions, 0, R_NOAUTH },
  { "DELETE", "/api/m3s/v0/framework", api_h_framework_delete, 0, 0 },
  { "GET", "/api/m3s/v0/agent/scale/{count}", api_h_scale, M3S_ROLE_AGENT, 0 },
  { "GET", "/api/m3s/v0/agent/scale", api_h_count, M3S_ROLE_AGENT, 0 },
  { "PUT", "/api/m3s/v0/agent/cordon", api_h_scheduling, 1, 0 },
  { "PUT", "/api/m3s/v0/agent/uncordon", api_h_scheduling, 0, 0 },
  { "GET", "/api/m3s/v0/server/scale/{count}", api_h_scale, M3S_ROLE_SERVER, 0 },
  { "GET", "/api/m3s/v0/server/scale", api_h_count, M3S_ROLE_SERVER, 0 },
  { "GET", "/api/m3s/v0/server/config", api_h_kubeconfig, 0, 0 },
  { "GET", "/api/m3s/v0/server/version", api_h_version, 0, 0 },
  { "GET", "/api/m3s/v0/datastore/scale/{count}", api_h_scale, M3S_ROLE_DATASTORE, R_TEXT },
  { "GET", "/api/m3s/v0/datastore/scale", api_h_count, M3S_ROLE_DATASTORE, 0 },
  { "GET", "/api/m3s/v0/etcd/scale/{count}", api_h_scale, M3S_ROLE_DATASTORE, R_TEXT },
  { "GET", "/api/m3s/v0/etcd/scale", api_h_count, M3S_ROLE_DATASTORE, 0 },
  { "GET", "/api/m3s/v0/status/m3s", api_h_status_m3s, 0, 0 },
  { "GET", "/api/m3s/v0/status/k8s", api_h_status_k8s, 0, 0 },
  { "PUT", "/api/m3s/v0/cluster/update", api_h_update, 0, R_BODY },
  { "PUT", "/api/m3s/v0/cluster/rollout", api_h_rollout, 0, R_BODY },
  { "GET", "/api/m3s/v0/plan", api_h_plan, 0, 0 },
  { "PUT", "/api/m3s/v0/plan/pause", api_h_plan_control, M3S_ROLLOUT_PAUSE, 0 },
  { "PUT", "/api/m3s/v0/plan/resume", api_h_plan_control, M3S_ROLLOUT_RESUME, 0 },
  { "PUT", "/api/m3s/v0/plan/abort", api_h_plan_control, M3S_ROLLOUT_ABORT, 0 },
  { "PUT", "/api/m3s/v0/cluster/shutdown", api_h_cluster, M3S_CLUSTER_SHUTDOWN, 0 },
  { "PUT", "/api/m3s/v0/cluster/start", api_h_cluster, M3S_CLUSTER_START, 0 },
  { "PUT", "/api/m3s/v0/cluster/restart", api_h_cluster, M3S_CLUSTER_RESTART, 0 },
  { "PUT", "/api/m3s/v0/server/restart", api_h_cluster, M3S_CLUSTER_RESTART_SERVER, 0 },
  { "PUT", "/api/m3s/v0/agent/restart", api_h_cluster, M3S_CLUSTER_RESTART_AGENT, 0 },
  { "PUT", "/api/m3s/v0/ds/restart", api_h_cluster, M3S_CLUSTER_RESTART_DS, 0 },
  { "GET", "/api/m3s/v0/capabilities", api_h_capabilities, 0, 0 },
  { "GET", "/api/m3s/v0/status", api_h_status, 0, 0 },
  { "GET", "/api/m3s/v0/events", api_h_events, 0, 0 },
  { "GET", "/", api_h_ui, 0, 0 },
  { "GET", "/ui/app.js", api_h_ui, 0, 0 },
  { "GET", "/ui/style.css", api_h_ui, 0, 0 },
  { "PUT", "/api/m3s/v0/{comp}/{res}/{value}", api_h_resource, 0, 0 },
};
const size_t api_nroutes = sizeof(api_routes) / sizeof(api_routes[0]);

static int hex(char c)
{
  if(c >= '0' && c <= '9')
    return c - '0';
  if(c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if(c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int api_split(char *path, char *seg[MAX_SEGMENTS], const char **why)
{
  int n = 0;
  *why = NULL;
  for(char *p = path; *p;) {
    while(*p == '/')
      p++;
    if(!*p)
      break;
    if(n == MAX_SEGMENTS)
      return API_PATH_LONG;
    seg[n++] = p;
    char *o = p; /* decoded in place: o never passes p */
    while(*p && *p != '/') {
      if(*p != '%') {
        *o++ = *p++;
        continue;
      }
      int hi = hex(p[1]), lo = hi < 0 ? -1 : hex(p[2]);
      if(lo < 0) {
        *why = "malformed percent-escape in the path (want % and two hex digits)";
        return API_PATH_BAD;
      }
      char ch = (char)(hi * 16 + lo);
      if(ch == '\0') {
        *why = "%00 (a NUL byte) is not allowed in the path";
        return API_PATH_BAD;
      }
      if(ch == '/') {
        *why = "an encoded '/' (%2F) is not allowed in the path; separate segments with '/'";
        return API_PATH_BAD;
      }
      *o++ = ch;
      p += 3;
    }
    bool more = *p == '/';
    *o = '\0';
    if(more)
      p++;
  }
  return n;
}

bool api_match(const route_t *r, char *const seg[], int nseg, req_t *q)
{
  const char *t = r->path;
  int i = 0;
  if(!strcmp(t, "/")) /* the status page */
    return nseg == 0;
  while(*t) {
    t++; /* '/' */
    const char *e = strchr(t, '/');
    size_t len = e ? (size_t)(e - t) : strlen(t);
    if(i == nseg)
      return false;
    const char *s = seg[i++];
    if(len == 7 && !strncmp(t, "{count}", len))
      q->count = s;
    else if(len == 7 && !strncmp(t, "{value}", len))
      q->count = s;
    else if(len == 6 && !strncmp(t, "{comp}", len)) {
      if(!strcmp(s, "ds"))
        q->comp = M3S_ROLE_DATASTORE;
      else if(!strcmp(s, "server"))
        q->comp = M3S_ROLE_SERVER;
      else if(!strcmp(s, "agent"))
        q->comp = M3S_ROLE_AGENT;
      else
        return false;
    }
    else if(len == 5 && !strncmp(t, "{res}", len)) {
      size_t k;
      for(k = 0; k < sizeof(resources) / sizeof(resources[0]); k++)
        if(!strcmp(s, resources[k].name))
          break;
      if(k == sizeof(resources) / sizeof(resources[0]))
        return false;
      q->res = (int)resources[k].kind;
      q->res_name = resources[k].name;
    }
    else if(strlen(s) != len || strncmp(t, s, len))
      return false;
    t += len;
  }
  return i == nseg;
}
