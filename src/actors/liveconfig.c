/* Run-time configuration changes and their place in framework_config (see
 * m3s/liveconfig.h). */
#include "m3s/liveconfig.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/xalloc.h"

#define MAX_ITEMS 64
#define MAX_VALUE 4096

static const struct resvar {
  const char *name;
  m3s_role_t role;
  m3s_role_resource_kind_t kind;
} resvars[] = {
  { "DS_CPU", M3S_ROLE_DATASTORE, M3S_RES_CPU },
  { "DS_CPU_LIMIT", M3S_ROLE_DATASTORE, M3S_RES_CPU_LIMIT },
  { "DS_MEM", M3S_ROLE_DATASTORE, M3S_RES_MEM },
  { "DS_MEM_LIMIT", M3S_ROLE_DATASTORE, M3S_RES_MEM_LIMIT },
  { "DS_DISK", M3S_ROLE_DATASTORE, M3S_RES_DISK },
  { "DS_DISK_LIMIT", M3S_ROLE_DATASTORE, M3S_RES_DISK_LIMIT },
  { "K3S_SERVER_CPU", M3S_ROLE_SERVER, M3S_RES_CPU },
  { "K3S_SERVER_CPU_LIMIT", M3S_ROLE_SERVER, M3S_RES_CPU_LIMIT },
  { "K3S_SERVER_MEM", M3S_ROLE_SERVER, M3S_RES_MEM },
  { "K3S_SERVER_MEM_LIMIT", M3S_ROLE_SERVER, M3S_RES_MEM_LIMIT },
  { "K3S_SERVER_DISK", M3S_ROLE_SERVER, M3S_RES_DISK },
  { "K3S_SERVER_DISK_LIMIT", M3S_ROLE_SERVER, M3S_RES_DISK_LIMIT },
  { "K3S_AGENT_CPU", M3S_ROLE_AGENT, M3S_RES_CPU },
  { "K3S_AGENT_CPU_LIMIT", M3S_ROLE_AGENT, M3S_RES_CPU_LIMIT },
  { "K3S_AGENT_MEM", M3S_ROLE_AGENT, M3S_RES_MEM },
  { "K3S_AGENT_MEM_LIMIT", M3S_ROLE_AGENT, M3S_RES_MEM_LIMIT },
  { "K3S_AGENT_DISK", M3S_ROLE_AGENT, M3S_RES_DISK },
  { "K3S_AGENT_DISK_LIMIT", M3S_ROLE_AGENT, M3S_RES_DISK_LIMIT },
};

bool m3s_live_resource(const char *name, m3s_role_t *role, m3s_role_resource_kind_t *kind)
{
  for(size_t i = 0; name && i < sizeof(resvars) / sizeof(resvars[0]); i++)
    if(strcmp(resvars[i].name, name) == 0) {
      if(role)
        *role = resvars[i].role;
      if(kind)
        *kind = resvars[i].kind;
      return true;
    }
  return false;
}

void m3s_live_resources_put(m3s_config_t *cfg, m3s_role_t role, const m3s_task_resources_t *r)
{
  switch(role) {
  case M3S_ROLE_DATASTORE:
    cfg->ds_cpu = r->cpu, cfg->ds_cpu_limit = r->cpu_limit;
    cfg->ds_mem = r->mem, cfg->ds_mem_limit = r->mem_limit;
    cfg->ds_disk = r->disk, cfg->ds_disk_limit = r->disk_limit;
    break;
  case M3S_ROLE_SERVER:
    cfg->k3s_server_cpu = r->cpu, cfg->k3s_server_cpu_limit = r->cpu_limit;
    cfg->k3s_server_mem = r->mem, cfg->k3s_server_mem_limit = r->mem_limit;
    cfg->k3s_server_disk = r->disk, cfg->k3s_server_disk_limit = r->disk_limit;
    break;
  case M3S_ROLE_AGENT:
    cfg->k3s_agent_cpu = r->cpu, cfg->k3s_agent_cpu_limit = r->cpu_limit;
    cfg->k3s_agent_mem = r->mem, cfg->k3s_agent_mem_limit = r->mem_limit;
    cfg->k3s_agent_disk = r->disk, cfg->k3s_agent_disk_limit = r->disk_limit;
    break;
  default:
    break;
  }
}

/* The value of one JSON member as environment text, or NULL. */
static char *value_text(const json_t *v)
{
  char buf[64];
  if(json_is_string(v))
    return m3s_xstrdup(json_string_value(v));
  if(json_is_integer(v)) {
    snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
    return m3s_xstrdup(buf);
  }
  if(json_is_real(v)) {
    double d = json_real_value(v);
    /* The shortest text that reads back as the same double. */
    for(int prec = 1; prec <= 17; prec++) {
      snprintf(buf, sizeof(buf), "%.*g", prec, d);
      if(strtod(buf, NULL) == d)
        break;
    }
    return m3s_xstrdup(buf);
  }
  if(json_is_boolean(v))
    return m3s_xstrdup(json_is_true(v) ? "true" : "false");
  return NULL;
}

/* A kept value as environment text: JSON variables (labels) are kept
 * parsed, as the original does. NULL when missing. */
static char *record_text(const json_t *v)
{
  if(json_is_null(v))
    return m3s_xstrdup("");
  if(json_is_array(v) || json_is_object(v))
    return json_dumps(v, JSON_COMPACT);
  return value_text(v);
}

m3s_live_change_t *m3s_live_change_from_json(const json_t *body, char *err, size_t errlen)
{
  const char *key;
  json_t *v;
  size_t n = 0, bytes = 0, k = 0;
  char *texts[MAX_ITEMS];

  if(!json_is_object(body)) {
    snprintf(err, errlen, "expected a JSON object of variables, e.g. "
                          "{\"KUBERNETES_VERSION\": \"v1.31.5\"}");
    return NULL;
  }
  n = json_object_size(body);
  if(n == 0) {
    snprintf(err, errlen, "no variables to change");
    return NULL;
  }
  if(n > MAX_ITEMS) {
    snprintf(err, errlen, "at most %d variables at once", MAX_ITEMS);
    return NULL;
  }
  json_object_foreach((json_t *)body, key, v) {
    texts[k] = value_text(v);
    if(!texts[k] || strlen(texts[k]) > MAX_VALUE) {
      snprintf(err, errlen, "%.80s: expected a string, number or boolean%s", key,
               texts[k] ? " of at most 4096 bytes" : "");
      for(size_t j = 0; j <= k; j++)
        free(texts[j]);
      return NULL;
    }
    bytes += strlen(key) + strlen(texts[k]) + 2;
    k++;
  }
  m3s_live_change_t *ch = m3s_xmalloc(sizeof(*ch) + n * sizeof(ch->items[0]) + bytes);
  char *p = (char *)&ch->items[n];
  ch->n = n;
  k = 0;
  json_object_foreach((json_t *)body, key, v) {
    size_t kl = strlen(key) + 1, vl = strlen(texts[k]) + 1;
    memcpy(p, key, kl);
    ch->items[k].name = p;
    p += kl;
    memcpy(p, texts[k], vl);
    ch->items[k].value = p;
    p += vl;
    free(texts[k]);
    k++;
  }
  return ch;
}

void m3s_live_record_store(json_t **extra, const m3s_config_t *cfg,
                           const m3s_live_change_t *ch)
{
  if(!*extra)
    *extra = json_object();
  json_t *names = json_object_get(*extra, M3S_LIVE_FIELD);
  if(!json_is_array(names)) {
    names = json_array();
    json_object_set_new(*extra, M3S_LIVE_FIELD, names);
  }
  for(size_t k = 0; k < ch->n; k++) {
    const char *name = ch->items[k].name;
    const char *field = m3s_config_record_field(name);
    if(!field || m3s_live_resource(name, NULL, NULL))
      continue;
    json_object_set_new(*extra, field, m3s_config_value_json(cfg, name));
    bool listed = false;
    size_t i;
    json_t *e;
    json_array_foreach(names, i, e)
      if(json_is_string(e) && strcmp(json_string_value(e), name) == 0)
        listed = true;
    if(!listed)
      json_array_append_new(names, json_string(name));
  }
}

int m3s_live_record_restore(m3s_config_t *cfg, const m3s_fw_config_record_t *rec,
                            char *err, size_t errlen)
{
  json_t *names = json_object_get(rec->extra, M3S_LIVE_FIELD);
  m3s_config_item_t items[MAX_ITEMS];
  char *texts[MAX_ITEMS];
  size_t n = 0, i;
  json_t *e;
  int rc;

  json_array_foreach(names, i, e) {
    const char *name = json_string_value(e);
    const char *field = m3s_config_record_field(name);
    if(!field || m3s_live_resource(name, NULL, NULL) || n == MAX_ITEMS)
      continue;
    bool dup = false;
    for(size_t k = 0; k < n; k++)
      dup |= strcmp(items[k].name, name) == 0;
    char *t = dup ? NULL : record_text(json_object_get(rec->extra, field));
    if(!t)
      continue;
    items[n].name = name;
    items[n].value = t;
    texts[n++] = t;
  }
  rc = n ? m3s_config_set(cfg, items, n, err, errlen) : 0;
  for(size_t k = 0; k < n; k++)
    free(texts[k]);
  return rc ? rc : (int)n;
}
