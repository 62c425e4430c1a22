/* Offer placement (see m3s/placement.h).
 *
 * DESIGN
 * One call builds a compact view of the offers, then places the tasks on
 * it, so the JSON is walked once and each fit test is a few integer
 * compares:
 *  - agents: offers grouped by agent_id through an open-addressing hash
 *    (created in first-offer order); a second hash chains agents of one
 *    hostname, for hostname constraints and running tasks given by host.
 *  - entries: every counted cpus/mem/disk entry with what is left of it in
 *    thousandths, contiguous per agent; agent totals make the fit test O(1).
 *  - ranges: every counted ports range with a cursor below which its ports
 *    have been handed out as "any" ports. Fixed ports are taken above the
 *    cursor and chained per agent (fixed_next), and the cursor skips them,
 *    so no port is given twice.
 * A task is first tested without changing anything (fit()), then carved
 * (take()), so a task that does not fit leaves no trace. All memory is a few
 * arrays sized by the input and freed before returning.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/placement.h"

enum { CPUS, MEM, DISK, NKINDS };

static const char *const kind_name[NKINDS] = { "cpus", "mem", "disk" };

typedef struct entry {
  uint32_t offer, res;
  int64_t left;                 /* thousandths */
  uint8_t kind;
  bool reserved;
} entry_t;

typedef struct range {
  uint32_t offer, res;
  int begin, end;               /* inclusive, 1..65535 */
  int next;                     /* ports below are taken as "any" ports */
} range_t;

typedef struct agent {
  const char *id, *hostname;
  uint32_t first_offer;         /* chain through offer_next */
  uint32_t last_offer;
  uint32_t host_next;           /* next agent of the same hostname + 1 */
  uint32_t e_begin, e_end, r_begin, r_end;
  int64_t avail[NKINDS];
  uint32_t fixed_head;          /* pending index + 1 of a taken fixed port */
  uint32_t count[M3S_PLACE_MAX_ROLES];
} agent_t;

typedef struct view {
  const json_t *offers;
  int any_min, any_max;         /* bounds of "any" ports (opts) */
  const char *role;
  agent_t *agents;
  size_t n_agents;
  uint32_t *offer_next;         /* next offer of the same agent + 1 */
  uint32_t *id_tab, *host_tab;  /* agent index + 1, 0 = empty */
  size_t tab_mask;
  entry_t *entries;
  size_t n_entries;
  range_t *ranges;
  size_t n_ranges, cap_ranges;
  int *fixed_port;              /* per pending: fixed port taken, chained */
  uint32_t *fixed_next;
} view_t;

/* A task's needs in the units of the view. */
typedef struct need {
  int64_t amount[NKINDS];
  size_t n_any;
  int fixed;
} need_t;

static uint64_t hash_str(const char *s)
{
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */

  for(; *s; s++)
    h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

static const char *str_at(const json_t *obj, const char *key)
{
  return json_string_value(json_object_get(obj, key));
}

static const char *value_at(const json_t *obj, const char *key)
{
  return str_at(json_object_get(obj, key), "value");
}

/* Slot of key in tab (hostnames when by_host): its agent, or the empty slot
 * where it goes. The table is at least twice the agents, never full. */
static uint32_t *slot(view_t *v, uint32_t *tab, const char *key, bool by_host)
{
  size_t i = hash_str(key) & v->tab_mask;

  for(;; i = (i + 1) & v->tab_mask) {
    agent_t *a;

    if(!tab[i])
      return &tab[i];
    a = &v->agents[tab[i] - 1];
    if(!strcmp(by_host ? a->hostname : a->id, key))
      return &tab[i];
  }
}

/* Whether the framework may use this offered resource at all. */
static bool counted(const view_t *v, const json_t *res)
{
  const json_t *ai = json_object_get(res, "allocation_info");
  const json_t *disk;

  if(ai) {
    const char *r = str_at(ai, "role");

    if(!r || strcmp(r, v->role))
      return false;
  }
  if(json_object_get(res, "revocable") || json_object_get(res, "shared"))
    return false;
  /* Mount disks are all-or-nothing and volumes belong to their task. */
  disk = json_object_get(res, "disk");
  if(disk && (json_object_get(disk, "source") ||
              json_object_get(disk, "persistence")))
    return false;
  return true;
}

static bool is_reserved(const json_t *res)
{
  const char *role = str_at(res, "role");
  const json_t *rs = json_object_get(res, "reservations");

  return (role && strcmp(role, "*")) || json_array_size(rs) > 0;
}

static int add_range(view_t *v, uint32_t offer, uint32_t res, const json_t *r)
{
  json_int_t b, e;
  range_t *rg;

  if(!json_is_integer(json_object_get(r, "begin")) ||
     !json_is_integer(json_object_get(r, "end")))
    return 0;
  b = json_integer_value(json_object_get(r, "begin"));
  e = json_integer_value(json_object_get(r, "end"));
  /* Port 0 would read as "no port"; nothing above 65535 is a port. */
  if(b < 1)
    b = 1;
  if(e > 65535)
    e = 65535;
  if(b > e)
    return 0;
  if(v->n_ranges == v->cap_ranges) {
    size_t cap = v->cap_ranges ? 2 * v->cap_ranges : 64;
    range_t *p = realloc(v->ranges, cap * sizeof(*p));

    if(!p)
      return -ENOMEM;
    v->ranges = p;
    v->cap_ranges = cap;
  }
  rg = &v->ranges[v->n_ranges++];
  rg->offer = offer;
  rg->res = res;
  rg->begin = rg->next = (int)b;
  rg->end = (int)e;
  return 0;
}

/* Appends the counted entries and ranges of one offer to agent a. */
static int add_offer(view_t *v, agent_t *a, uint32_t oi)
{
  const json_t *rs = json_object_get(json_array_get(v->offers, oi), "resources");
  size_t ri, k;

  for(ri = 0; ri < json_array_size(rs); ri++) {
    const json_t *res = json_array_get(rs, ri);
    const char *name = str_at(res, "name");

    if(!name || !counted(v, res))
      continue;
    if(!strcmp(name, "ports")) {
      const json_t *range = json_object_get(json_object_get(res, "ranges"), "range");

      for(k = 0; k < json_array_size(range); k++) {
        int rc = add_range(v, oi, (uint32_t)ri, json_array_get(range, k));

        if(rc < 0)
          return rc;
      }
      continue;
    }
    for(k = 0; k < NKINDS; k++)
      if(!strcmp(name, kind_name[k]))
        break;
    if(k < NKINDS) {
      const json_t *val = json_object_get(json_object_get(res, "scalar"), "value");
      double d = json_number_value(val);
      entry_t *e;

      /* entries has room for every resource of every offer. */
      if(!json_is_number(val) || !isfinite(d) || d <= 0 || d > 1e15)
        continue;
      e = &v->entries[v->n_entries++];
      e->offer = oi;
      e->res = (uint32_t)ri;
      e->kind = (uint8_t)k;
      e->left = llround(d * 1000);
      e->reserved = is_reserved(res);
      a->avail[k] += e->left;
    }
  }
  return 0;
}

static int build(view_t *v, size_t n_offers, size_t n_pending)
{
  size_t i, n_res = 0, cap = 16;
  uint32_t ai;

  while(cap < 2 * n_offers)
    cap *= 2;
  v->tab_mask = cap - 1;
  v->agents = calloc(n_offers ? n_offers : 1, sizeof(*v->agents));
  v->offer_next = calloc(n_offers ? n_offers : 1, sizeof(*v->offer_next));
  v->id_tab = calloc(2 * cap, sizeof(*v->id_tab));
  v->fixed_port = calloc(n_pending ? n_pending : 1, sizeof(*v->fixed_port));
  v->fixed_next = calloc(n_pending ? n_pending : 1, sizeof(*v->fixed_next));
  if(!v->agents || !v->offer_next || !v->id_tab || !v->fixed_port || !v->fixed_next)
    return -ENOMEM;
  v->host_tab = v->id_tab + cap;

  for(i = 0; i < n_offers; i++) {
    const json_t *o = json_array_get(v->offers, i);
    const char *id = value_at(o, "agent_id"), *host = str_at(o, "hostname");
    uint32_t *s;
    agent_t *a;

    /* mesos_event.c checked these; a hand-made array may not be. */
    if(!id || !host || !json_is_array(json_object_get(o, "resources")))
      return -EINVAL;
    n_res += json_array_size(json_object_get(o, "resources"));
    s = slot(v, v->id_tab, id, false);
    if(*s) {
      a = &v->agents[*s - 1];
      v->offer_next[a->last_offer] = (uint32_t)i + 1;
      a->last_offer = (uint32_t)i;
      continue;
    }
    a = &v->agents[v->n_agents++];
    *s = (uint32_t)v->n_agents;
    a->id = id;
    a->hostname = host;
    a->first_offer = a->last_offer = (uint32_t)i;
    s = slot(v, v->host_tab, host, true);
    a->host_next = *s; /* the new agent heads its hostname's chain */
    *s = (uint32_t)v->n_agents;
  }

  v->entries = malloc((n_res ? n_res : 1) * sizeof(*v->entries));
  if(!v->entries)
    return -ENOMEM;
  for(ai = 0; ai < v->n_agents; ai++) {
    agent_t *a = &v->agents[ai];
    uint32_t oi = a->first_offer + 1;

    a->e_begin = (uint32_t)v->n_entries;
    a->r_begin = (uint32_t)v->n_ranges;
    for(; oi; oi = v->offer_next[oi - 1]) {
      int rc = add_offer(v, a, oi - 1);

      if(rc < 0)
        return rc;
    }
    a->e_end = (uint32_t)v->n_entries;
    a->r_end = (uint32_t)v->n_ranges;
  }
  return 0;
}

static int count_running(view_t *v, const m3s_running_t *running)
{
  size_t i;

  for(i = 0; running && i < running->n; i++) {
    const m3s_running_task_t *t = &running->tasks[i];
    uint32_t s;

    if(t->role < 0 || t->role >= M3S_PLACE_MAX_ROLES)
      return -EINVAL;
    if(!t->agent || !t->count)
      continue;
    s = *slot(v, v->id_tab, t->agent, false);
    if(s) {
      v->agents[s - 1].count[t->role] += t->count;
      continue;
    }
    for(s = *slot(v, v->host_tab, t->agent, true); s; s = v->agents[s - 1].host_next)
      v->agents[s - 1].count[t->role] += t->count;
  }
  return 0;
}

static bool fixed_taken(const view_t *v, const agent_t *a, int port)
{
  uint32_t p;

  for(p = a->fixed_head; p; p = v->fixed_next[p - 1])
    if(v->fixed_port[p - 1] == port)
      return true;
  return false;
}

/* The range of a holding a still free fixed port, or -1. */
static long fixed_range(const view_t *v, const agent_t *a, int port)
{
  uint32_t r;

  if(fixed_taken(v, a, port))
    return -1;
  for(r = a->r_begin; r < a->r_end; r++)
    if(port >= v->ranges[r].next && port <= v->ranges[r].end)
      return r;
  return -1;
}

/* Picks n "any" ports of a (none equal to fixed) into port/rng without
 * changing a. False when a has fewer free ports. */
static bool pick_ports(const view_t *v, const agent_t *a, size_t n, int fixed,
                       int *port, uint32_t *rng)
{
  size_t got = 0;
  uint32_t r;

  for(r = a->r_begin; r < a->r_end && got < n; r++) {
    const range_t *rg = &v->ranges[r];
    int p;

    int first = rg->next > v->any_min ? rg->next : v->any_min;
    int last = rg->end < v->any_max ? rg->end : v->any_max;

    for(p = first; p <= last && got < n; p++) {
      if(p == fixed || fixed_taken(v, a, p))
        continue;
      port[got] = p;
      rng[got++] = r;
    }
  }
  return got == n;
}

/* Slices needed to carve amount of kind k from a, reserved entries first;
 * more than M3S_PLACE_MAX_SLICES when too fragmented. */
static size_t count_slices(const view_t *v, const agent_t *a, int k, int64_t amount)
{
  size_t n = 0;
  int pass;
  uint32_t e;

  for(pass = 0; pass < 2 && amount > 0; pass++)
    for(e = a->e_begin; e < a->e_end && amount > 0; e++) {
      const entry_t *en = &v->entries[e];

      if(en->kind != k || en->reserved != (pass == 0) || !en->left)
        continue;
      amount -= en->left < amount ? en->left : amount;
      n++;
    }
  return n;
}

static bool fit(const view_t *v, const agent_t *a, const need_t *nd, int role,
                int max_per_role, int *port, uint32_t *rng)
{
  size_t k, slices = nd->n_any + (nd->fixed ? 1 : 0);

  if(max_per_role > 0 && a->count[role] >= (uint32_t)max_per_role)
    return false;
  for(k = 0; k < NKINDS; k++)
    if(a->avail[k] < nd->amount[k])
      return false;
  if(nd->fixed && fixed_range(v, a, nd->fixed) < 0)
    return false;
  if(nd->n_any && !pick_ports(v, a, nd->n_any, nd->fixed, port, rng))
    return false;
  for(k = 0; k < NKINDS; k++)
    slices += count_slices(v, a, (int)k, nd->amount[k]);
  return slices <= M3S_PLACE_MAX_SLICES;
}

static void add_slice(m3s_assignment_t *as, uint32_t offer, uint32_t res,
                      int64_t amount, bool *offer_used)
{
  m3s_slice_t *s = &as->slices[as->n_slices++];

  s->offer_index = offer;
  s->resource_index = res;
  s->amount = amount;
  offer_used[offer] = true;
}

/* Carves the task (pending index pi) from a, which fit() accepted with the
 * "any" ports in port/rng. */
static void take(view_t *v, agent_t *a, const need_t *nd, int role, size_t pi,
                 const int *port, const uint32_t *rng,
                 m3s_assignment_t *as, bool *offer_used)
{
  size_t k, i;
  int pass;
  uint32_t e;

  memset(as, 0, offsetof(m3s_assignment_t, slices));
  as->n_slices = 0;
  as->pending_index = pi;
  as->agent_id = a->id;
  as->hostname = a->hostname;
  for(k = 0; k < NKINDS; k++) {
    int64_t amount = nd->amount[k];

    a->avail[k] -= amount;
    for(pass = 0; pass < 2 && amount > 0; pass++)
      for(e = a->e_begin; e < a->e_end && amount > 0; e++) {
        entry_t *en = &v->entries[e];
        int64_t t;

        if(en->kind != k || en->reserved != (pass == 0) || !en->left)
          continue;
        t = en->left < amount ? en->left : amount;
        en->left -= t;
        amount -= t;
        add_slice(as, en->offer, en->res, t, offer_used);
      }
  }
  if(nd->fixed) {
    range_t *rg = &v->ranges[fixed_range(v, a, nd->fixed)];

    v->fixed_port[pi] = nd->fixed;
    v->fixed_next[pi] = a->fixed_head;
    a->fixed_head = (uint32_t)pi + 1;
    as->ports[as->n_ports++] = nd->fixed;
    add_slice(as, rg->offer, rg->res, nd->fixed, offer_used);
  }
  for(i = 0; i < nd->n_any; i++) {
    range_t *rg = &v->ranges[rng[i]];

    /* Picked in increasing order per range: everything up to it is gone. */
    rg->next = port[i] + 1;
    as->ports[as->n_ports++] = port[i];
    add_slice(as, rg->offer, rg->res, port[i], offer_used);
  }
  a->count[role]++;
  if(as->n_slices) {
    as->offer_index = as->slices[0].offer_index;
  } else {
    /* A task taking nothing still needs an offer of its agent to launch. */
    as->offer_index = a->first_offer;
    offer_used[a->first_offer] = true;
  }
}

static int to_need(const m3s_pending_t *p, need_t *nd)
{
  const double in[NKINDS] = { p->cpus, p->mem, p->disk };
  size_t k;

  if(p->role < 0 || p->role >= M3S_PLACE_MAX_ROLES ||
     p->fixed_port < 0 || p->fixed_port > 65535 ||
     p->n_ports + (p->fixed_port ? 1 : 0) > M3S_PLACE_MAX_PORTS)
    return -EINVAL;
  for(k = 0; k < NKINDS; k++) {
    if(!isfinite(in[k]) || in[k] < 0 || in[k] > 1e15)
      return -EINVAL;
    nd->amount[k] = llround(in[k] * 1000);
  }
  nd->n_any = p->n_ports;
  nd->fixed = p->fixed_port;
  return 0;
}

/* Same needs, role and constraint: a task like one that did not fit will
 * not fit either until something changes. */
static bool same_task(const m3s_pending_t *a, const m3s_pending_t *b)
{
  return a->role == b->role && a->cpus == b->cpus && a->mem == b->mem &&
         a->disk == b->disk && a->n_ports == b->n_ports &&
         a->fixed_port == b->fixed_port &&
         (a->hostname == b->hostname ||
          (a->hostname && b->hostname && !strcmp(a->hostname, b->hostname)));
}

int m3s_place(const json_t *offers, const m3s_pending_t *pending,
              size_t n_pending, const m3s_running_t *running,
              const m3s_placement_opts_t *opts, m3s_assignment_t *out,
              bool *offer_used)
{
  view_t v = { 0 };
  size_t n_offers, i, n_out = 0, cursor = 0;
  const m3s_pending_t *failed = NULL;
  int rc;

  if(!json_is_array(offers) || !opts || !opts->role || (n_pending && (!pending || !out)))
    return -EINVAL;
  n_offers = json_array_size(offers);
  if((n_offers && !offer_used) || n_offers > UINT32_MAX / 2 || n_pending > UINT32_MAX / 2)
    return -EINVAL;
  for(i = 0; i < n_offers; i++)
    offer_used[i] = false;
  for(i = 0; i < n_pending; i++) {
    need_t nd;

    rc = to_need(&pending[i], &nd);
    if(rc < 0)
      return rc;
  }
  v.offers = offers;
  v.any_min = opts->any_port_min > 0 ? opts->any_port_min : 1;
  v.any_max = opts->any_port_max > 0 ? opts->any_port_max : 65535;
  v.role = opts->role;
  rc = build(&v, n_offers, n_pending);
  if(rc < 0)
    goto out;
  rc = count_running(&v, running);
  if(rc < 0)
    goto out;

  for(i = 0; i < n_pending && v.n_agents; i++) {
    const m3s_pending_t *p = &pending[i];
    int port[M3S_PLACE_MAX_PORTS];
    uint32_t rng[M3S_PLACE_MAX_PORTS];
    agent_t *a = NULL;
    need_t nd;

    if(failed && same_task(failed, p))
      continue;
    to_need(p, &nd);
    if(p->hostname) {
      uint32_t s;

      for(s = *slot(&v, v.host_tab, p->hostname, true); s; s = v.agents[s - 1].host_next)
        if(fit(&v, &v.agents[s - 1], &nd, p->role, opts->max_per_agent_per_role, port, rng)) {
          a = &v.agents[s - 1];
          break;
        }
    } else {
      size_t n;

      /* From the agent after the last one used: equal tasks spread. */
      for(n = 0; n < v.n_agents; n++) {
        size_t ai = (cursor + n) % v.n_agents;

        if(fit(&v, &v.agents[ai], &nd, p->role, opts->max_per_agent_per_role, port, rng)) {
          a = &v.agents[ai];
          cursor = ai + 1;
          break;
        }
      }
    }
    if(!a) {
      failed = p;
      continue;
    }
    failed = NULL;
    take(&v, a, &nd, p->role, i, port, rng, &out[n_out++], offer_used);
  }
  rc = (int)n_out;

out:
  free(v.agents);
  free(v.offer_next);
  free(v.id_tab);
  free(v.entries);
  free(v.ranges);
  free(v.fixed_port);
  free(v.fixed_next);
  if(rc < 0)
    for(i = 0; i < n_offers; i++)
      offer_used[i] = false;
  return rc;
}

/* A copy of the offered entry res without its quantity: members shared. */
static json_t *entry_copy(const json_t *res)
{
  json_t *c = json_object();
  const char *key;
  json_t *val;

  if(!c)
    return NULL;
  json_object_foreach((json_t *)res, key, val) {
    if(!strcmp(key, "scalar") || !strcmp(key, "ranges"))
      continue;
    if(json_object_set(c, key, val) < 0) {
      json_decref(c);
      return NULL;
    }
  }
  return c;
}

static int cmp_int(const void *a, const void *b)
{
  int x = *(const int *)a, y = *(const int *)b;

  return (x > y) - (x < y);
}

/* {"range": [...]} of the ports, merged into runs. */
static json_t *ranges_json(int *port, size_t n)
{
  json_t *arr = json_array(), *r;
  size_t i = 0, j;

  if(!arr)
    return NULL;
  qsort(port, n, sizeof(*port), cmp_int);
  while(i < n) {
    for(j = i + 1; j < n && port[j] == port[j - 1] + 1; j++)
      ;
    if(json_array_append_new(arr, json_pack("{s:i,s:i}", "begin", port[i],
                                            "end", port[j - 1])) < 0) {
      json_decref(arr);
      return NULL;
    }
    i = j;
  }
  r = json_pack("{s:o}", "range", arr);
  return r;
}

json_t *m3s_place_resources_json(const json_t *offers, const m3s_assignment_t *a)
{
  json_t *arr = json_array();
  bool done[M3S_PLACE_MAX_SLICES] = { false };
  size_t i, j;

  if(!arr)
    return NULL;
  for(i = 0; i < a->n_slices; i++) {
    const m3s_slice_t *s = &a->slices[i];
    const json_t *res = json_array_get(json_object_get(
      json_array_get(offers, s->offer_index), "resources"), s->resource_index);
    const char *name = str_at(res, "name");
    json_t *c, *q;
    int ports[M3S_PLACE_MAX_SLICES];
    size_t n = 0;

    if(done[i])
      continue;
    if(!name)
      goto fail;
    c = entry_copy(res);
    if(!c)
      goto fail;
    if(!strcmp(name, "ports")) {
      /* All ports taken from this entry go in one ranges value. */
      for(j = i; j < a->n_slices; j++)
        if(!done[j] && a->slices[j].offer_index == s->offer_index &&
           a->slices[j].resource_index == s->resource_index) {
          ports[n++] = (int)a->slices[j].amount;
          done[j] = true;
        }
      q = ranges_json(ports, n);
      if(!q || json_object_set_new(c, "ranges", q) < 0)
        goto fail_c;
    } else {
      q = json_pack("{s:f}", "value", (double)s->amount / 1000.0);
      if(!q || json_object_set_new(c, "scalar", q) < 0)
        goto fail_c;
    }
    done[i] = true;
    if(json_array_append_new(arr, c) < 0)
      goto fail;
    continue;
fail_c:
    json_decref(c);
    goto fail;
  }
  return arr;

fail:
  json_decref(arr);
  return NULL;
}
