/* The offers actor: pending launches, offer rounds, update routing, the
 * framework_config record and cluster operations. See m3s/offers.h. */
#include "m3s/offers.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/idmap.h"
#include "m3s/liveconfig.h"
#include "m3s/log.h"
#include "m3s/mesos-call.h"
#include "m3s/mesos-event.h"
#include "m3s/mesos.h"
#include "m3s/placement.h"
#include "m3s/reply.h"
#include "m3s/role.h"
#include "m3s/store.h"
#include "m3s/xalloc.h"

enum {
  T_RECONCILE = M3S_MSG_USER + 1,  /* periodic implicit reconciliation */
  TAG_LOAD_CONFIG = 1,
  TAG_CONFIG_WRITE = 2,            /* + seq << 8: own framework_config writes */
};

#define NROLES 4 /* indexed by m3s_role_t; 0 unused */

typedef struct route {            /* a task some role owns */
  char task_id[M3S_TASK_ID_LEN];
  m3s_role_t role;
  char *agent_id;                 /* "" until placed */
  char *hostname;
} route_t;

typedef struct deferred {         /* an answer waiting for a write */
  int64_t tag;
  m3s_reply_t *reply;
  int64_t arg;
} deferred_t;

typedef enum op_phase { OP_NONE, OP_WAIT_DOWN } op_phase_t;

typedef struct offers {
  m3s_actor_t base;
  m3s_actor_t *store, *mesos, *roles[NROLES];

  bool cfg_loaded, announced, subscribed;
  bool backlogged;                /* the store's M3S_STORE_PRESSURE: no
                                     launches, API changes refused */
  bool ready[NROLES];
  m3s_offers_role_state_t rs[NROLES];
  bool have_rs[NROLES];
  m3s_fw_config_record_t fwc;
  char *fwc_key;

  m3s_idmap_t routes;             /* task id -> route_t * */
  m3s_offers_pending_t **pending; /* placement order: datastore, server, agent */
  size_t npending, cappending;
  int suppressed;                 /* -1 unknown, 0 revived, 1 suppressed */
  uint64_t reconcile_timer;

  int64_t write_seq;
  deferred_t *defer;
  size_t ndefer, capdefer;

  m3s_cluster_op_t op;
  op_phase_t op_phase;
  int op_roles;                   /* bit mask of roles the op restarts */

  m3s_config_t spec;              /* own copy, with run-time changes: the
                                     TaskInfos are built from it */
  uint64_t spec_gen;              /* run-time changes accepted */
  unsigned spec_mask[NROLES];     /* resources changed that the role has not
                                     confirmed yet (spec_gen in its state) */
  struct upd_wait { int64_t tag; m3s_reply_t *reply; json_t *answer; } *upd;
  size_t nupd, capupd;

  /* counters */
  uint64_t events, offers_received, offers_accepted, offers_declined, rescinds;
  uint64_t launched, rounds_with_room, unknown_updates, last_round_placed;
  uint64_t last_round_offers;
  size_t last_round_waiting;
} offers_t;

void m3s_offers_ready_free(void *p)
{
  m3s_offers_ready_t *r = p;
  if(!r)
    return;
  for(size_t i = 0; i < r->n; i++) {
    free(r->tasks[i].agent_id);
    free(r->tasks[i].hostname);
  }
  free(r->tasks);
  free(r);
}

static void call_for(offers_t *o, json_t *c, int64_t subscription)
{
  if(c)
    m3s_send(o->mesos, m3s_msg_new(M3S_MESOS_CALL, subscription, c, m3s_json_drop));
}

static void call(offers_t *o, json_t *c)
{
  call_for(o, c, 0);
}

/* ---- routes ------------------------------------------------------------- */

static route_t *route_add(offers_t *o, const char *id, m3s_role_t role, const char *agent,
                          const char *host)
{
  route_t *r = m3s_idmap_get(&o->routes, id);
  if(!r) {
    r = m3s_xcalloc(1, sizeof(*r));
    snprintf(r->task_id, sizeof(r->task_id), "%s", id);
    m3s_idmap_put(&o->routes, r->task_id, r);
  }
  r->role = role;
  if(agent || !r->agent_id) {
    free(r->agent_id);
    r->agent_id = m3s_xstrdup(agent ? agent : "");
  }
  if(host || !r->hostname) {
    free(r->hostname);
    r->hostname = m3s_xstrdup(host ? host : "");
  }
  return r;
}

static void route_free(route_t *r)
{
  if(!r)
    return;
  free(r->agent_id);
  free(r->hostname);
  free(r);
}

/* ---- framework_config ----------------------------------------------------- */

static void write_config(offers_t *o, m3s_actor_t *notify, int64_t tag)
{
  char *text = m3s_fw_config_record_to_json(&o->fwc);
  if(!text) {
    m3s_error("framework_config cannot be encoded (a resource is not finite)");
    return;
  }
  m3s_store_batch_t *b = m3s_store_batch_new(notify, tag);
  m3s_store_batch_set(b, o->fwc_key, text);
  free(text);
  m3s_send(o->store, m3s_msg_new(M3S_STORE_WRITE, 0, b, m3s_store_batch_free));
}

static void apply_role_state(offers_t *o, const m3s_offers_role_state_t *s)
{
  m3s_fw_config_record_t *f = &o->fwc;
  const m3s_task_resources_t *r = &s->res;
  switch(s->role) {
  case M3S_ROLE_DATASTORE:
    f->ds_max = s->desired;
    f->ds_max_restore = s->restore;
    f->ds_cpu = r->cpu, f->ds_cpu_limit = r->cpu_limit;
    f->ds_mem = r->mem, f->ds_mem_limit = r->mem_limit;
    f->ds_disk = r->disk, f->ds_disk_limit = r->disk_limit;
    break;
  case M3S_ROLE_SERVER:
    f->k3s_server_max = s->desired;
    f->k3s_server_max_restore = s->restore;
    f->k3s_server_cpu = r->cpu, f->k3s_server_cpu_limit = r->cpu_limit;
    f->k3s_server_mem = r->mem, f->k3s_server_mem_limit = r->mem_limit;
    f->k3s_server_disk = r->disk, f->k3s_server_disk_limit = r->disk_limit;
    break;
  case M3S_ROLE_AGENT:
    f->k3s_agent_max = s->desired;
    f->k3s_agent_max_restore = s->restore;
    f->k3s_agent_cpu = r->cpu, f->k3s_agent_cpu_limit = r->cpu_limit;
    f->k3s_agent_mem = r->mem, f->k3s_agent_mem_limit = r->mem_limit;
    f->k3s_agent_disk = r->disk, f->k3s_agent_disk_limit = r->disk_limit;
    break;
  default:
    break;
  }
}

static void on_config_loaded(offers_t *o, json_t *records)
{
  const char *text = json_string_value(json_object_get(records, o->fwc_key));
  char err[256];
  m3s_fw_config_record_free(&o->fwc);
  if(!text || m3s_fw_config_record_from_json(text, strlen(text), &o->fwc, err, sizeof(err)) != 0) {
    if(text)
      m3s_warn("%s: %s; starting from the configuration", o->fwc_key, err);
    m3s_fw_config_record_defaults(o->base.cfg, &o->fwc);
  }
  else if(m3s_live_record_restore(&o->spec, &o->fwc, err, sizeof(err)) < 0)
    m3s_warn("%s: run-time configuration not used: %s", o->fwc_key, err);
  o->cfg_loaded = true;
}

/* ---- suppress / revive ---------------------------------------------------- */

static void demand_changed(offers_t *o)
{
  if(!o->subscribed)
    return;
  int want = o->npending ? 0 : 1;
  if(o->suppressed == want)
    return;
  o->suppressed = want;
  m3s_info("%s offers: %zu task(s) pending", want ? "suppressing" : "reviving", o->npending);
  call(o, want ? m3s_call_suppress(o->base.cfg->framework_role)
               : m3s_call_revive(o->base.cfg->framework_role));
}

/* ---- pending ------------------------------------------------------------- */

static void pending_add(offers_t *o, m3s_offers_pending_t *p)
{
  route_add(o, p->task_id, p->role, NULL, NULL);
  if(o->npending == o->cappending) {
    o->cappending = o->cappending ? o->cappending * 2 : 64;
    o->pending = m3s_xrealloc(o->pending, o->cappending * sizeof(*o->pending));
  }
  /* Keep the role order (datastore, server, agent) stable: a new task goes
   * after the last one of its role or of an earlier role. */
  size_t at = o->npending;
  while(at > 0 && o->pending[at - 1]->role > p->role)
    at--;
  memmove(&o->pending[at + 1], &o->pending[at], (o->npending - at) * sizeof(*o->pending));
  o->pending[at] = p;
  o->npending++;
  if(o->suppressed != 0)
    demand_changed(o);
}

static void pending_remove_marked(offers_t *o)
{
  size_t j = 0;
  for(size_t i = 0; i < o->npending; i++)
    if(o->pending[i])
      o->pending[j++] = o->pending[i];
  o->npending = j;
}

static void pending_cancel(offers_t *o, const char *id)
{
  for(size_t i = 0; i < o->npending; i++)
    if(strcmp(o->pending[i]->task_id, id) == 0) {
      free(o->pending[i]);
      o->pending[i] = NULL;
      pending_remove_marked(o);
      break;
    }
  demand_changed(o);
}

/* ---- offer rounds ----------------------------------------------------------- */

static json_t *offer_ids_of(json_t *offers, const bool *used, bool want_used,
                            const char *agent)
{
  json_t *ids = json_array();
  size_t i;
  json_t *of;
  json_array_foreach(offers, i, of) {
    if(used[i] != want_used)
      continue;
    if(agent &&
       strcmp(json_string_value(json_object_get(json_object_get(of, "agent_id"), "value")), agent))
      continue;
    /* New strings: the call goes to the Mesos thread, the offers stay here. */
    json_array_append_new(
      ids, json_string(json_string_value(json_object_get(json_object_get(of, "id"), "value"))));
  }
  return ids;
}

static const char *constraint_of(const m3s_config_t *cfg, m3s_role_t role)
{
  const char *h = role == M3S_ROLE_DATASTORE ? cfg->k3s_ds_constraint_host
                : role == M3S_ROLE_SERVER    ? cfg->k3s_server_constraint_host
                                             : cfg->k3s_agent_constraint_host;
  return h && h[0] ? h : NULL;
}

/* The tasks already placed, for spreading: one entry per routed task with a
 * known agent. */
static m3s_running_task_t *running_view(offers_t *o, size_t *n)
{
  m3s_running_task_t *v = m3s_xcalloc(o->routes.n + 1, sizeof(*v));
  size_t k = 0;
  for(size_t i = 0; i < o->routes.cap; i++) {
    const m3s_idmap_slot_t *s = &o->routes.slots[i];
    if(!s->val)
      continue;
    const route_t *r = s->val;
    if(r->agent_id && r->agent_id[0])
      v[k++] = (m3s_running_task_t){ r->agent_id, (int)r->role, 1 };
  }
  *n = k;
  return v;
}

static void launch_server_address(offers_t *o, const char *hostname)
{
  const m3s_config_t *cfg = o->base.cfg;
  if(o->fwc.k3s_server_hostname && strcmp(o->fwc.k3s_server_hostname, hostname) == 0 &&
     o->fwc.k3s_server_port == cfg->k3s_server_port)
    return;
  free(o->fwc.k3s_server_hostname);
  o->fwc.k3s_server_hostname = m3s_xstrdup(hostname);
  o->fwc.k3s_server_port = cfg->k3s_server_port;
  write_config(o, NULL, 0);
}

static void on_offers(offers_t *o, json_t *offers, int64_t subscription)
{
  const m3s_config_t *cfg = o->base.cfg;
  size_t noffers = json_array_size(offers);
  o->events++;
  o->offers_received += noffers;
  if(!noffers)
    return;
  bool *used = m3s_xcalloc(noffers, sizeof(*used));
  size_t np = o->npending;
  int placed = 0;

  /* While Redis is backlogged nothing is placed: each launch writes its
   * task's record again. The offers are declined below. */
  if(np && o->announced && !o->backlogged) {
    m3s_pending_t *pend = m3s_xcalloc(np, sizeof(*pend));
    m3s_assignment_t *out = m3s_xcalloc(np, sizeof(*out));
    for(size_t i = 0; i < np; i++) {
      const m3s_offers_pending_t *p = o->pending[i];
      m3s_task_demand_t d;
      m3s_task_demand(cfg, &p->res, p->role, &d);
      pend[i] = (m3s_pending_t){ .task_id = p->task_id, .role = (int)p->role,
                                 .cpus = d.cpus, .mem = d.mem, .disk = d.disk,
                                 .n_ports = d.n_ports - (d.fixed_port ? 1 : 0),
                                 .fixed_port = d.fixed_port,
                                 .hostname = constraint_of(cfg, p->role) };
    }
    size_t nrun;
    m3s_running_task_t *run = running_view(o, &nrun);
    m3s_running_t running = { run, nrun };
    m3s_placement_opts_t opts = { cfg->framework_role, cfg->k3s_max_per_agent,
                                  cfg->portrange_from + 1, cfg->portrange_to - 1 };
    placed = m3s_place(offers, pend, np, &running, &opts, out, used);
    free(run);
    if(placed < 0) {
      m3s_error("offer placement failed: %s", strerror(-placed));
      placed = 0;
      memset(used, 0, noffers * sizeof(*used));
    }

    /* One ACCEPT per agent: group the assignments by agent id. */
    bool *done = m3s_xcalloc((size_t)placed + 1, sizeof(*done));
    /* The M3S_ROLE_LAUNCHED of one agent's tasks, sent after its ACCEPT. */
    struct told { m3s_actor_t *role; m3s_msg_t *m; } *told =
      m3s_xcalloc((size_t)placed + 1, sizeof(*told));
    for(int i = 0; i < placed; i++) {
      if(done[i])
        continue;
      const char *agent = out[i].agent_id;
      json_t *infos = json_array();
      size_t ntold = 0;
      for(int j = i; j < placed; j++) {
        if(done[j] || strcmp(out[j].agent_id, agent) != 0)
          continue;
        done[j] = true;
        m3s_assignment_t *a = &out[j];
        m3s_offers_pending_t *p = o->pending[a->pending_index];
        char err[256];
        m3s_placement_t pl = { .task_id = p->task_id, .agent_id = a->agent_id,
                               .agent_hostname = a->hostname, .host_ports = a->ports,
                               .n_host_ports = a->n_ports, .role = cfg->framework_role };
        json_t *ti = m3s_taskinfo_build(&o->spec, &p->res, p->role, &pl, err, sizeof(err));
        json_t *res = ti ? m3s_place_resources_json(offers, a) : NULL;
        if(!ti || !res) {
          /* The task stays pending; its resources go back in the DECLINE
           * or the ACCEPT's remainder. */
          m3s_error("task %s: cannot build its TaskInfo: %s", p->task_id,
                    ti ? "out of memory" : err);
          json_decref(ti);
          json_decref(res);
          continue;
        }
        /* Copies: the offers JSON stays with this thread. */
        json_object_set_new(ti, "resources", json_deep_copy(res));
        json_decref(res);
        json_array_append(infos, ti);

        m3s_role_launch_t *l = m3s_xcalloc(1, sizeof(*l));
        snprintf(l->task_id, sizeof(l->task_id), "%s", p->task_id);
        l->agent_id = m3s_xstrdup(a->agent_id);
        l->hostname = m3s_xstrdup(a->hostname);
        l->taskinfo = json_deep_copy(ti);
        json_decref(ti);
        m3s_task_spec_digest(&o->spec, &p->res, p->role, l->spec_digest);
        route_add(o, p->task_id, p->role, a->agent_id, a->hostname);
        if(p->role == M3S_ROLE_SERVER)
          launch_server_address(o, a->hostname);
        told[ntold++] = (struct told){
          o->roles[p->role], m3s_msg_new(M3S_ROLE_LAUNCHED, 0, l, m3s_role_launch_free) };
        free(p);
        o->pending[a->pending_index] = NULL;
        o->launched++;
      }
      json_t *ids = offer_ids_of(offers, used, true, agent);
      o->offers_accepted += json_array_size(ids);
      json_t *ops = json_array();
      if(json_array_size(infos))
        json_array_append_new(ops, json_pack("{s:s, s:{s:o}}", "type", "LAUNCH", "launch",
                                             "task_infos", infos));
      else
        json_decref(infos);
      /* An ACCEPT without operations declines the offers, as DECLINE does. */
      call_for(o, m3s_call_accept(ids, ops, cfg->refuse_offers), subscription);
      /* The roles hear of their launches only now: a role that withdrew a
       * task meanwhile sends its KILL at once, and the Mesos actor must
       * have the ACCEPT first, or the KILL passes it (the master then
       * kills a task it does not know, and launches it after). */
      for(size_t k = 0; k < ntold; k++)
        m3s_send(told[k].role, told[k].m);
    }
    free(told);
    free(done);
    free(pend);
    free(out);
    pending_remove_marked(o);
    if(placed > 0)
      o->rounds_with_room++;
    o->last_round_placed = (uint64_t)placed;
    o->last_round_offers = noffers;
    o->last_round_waiting = o->npending;
    if(o->npending)
      m3s_info("offer round: %d task(s) placed on %zu offer(s), %zu still waiting for resources",
               placed, noffers, o->npending);
    else if(placed)
      m3s_info("offer round: %d task(s) placed on %zu offer(s)", placed, noffers);
  }

  json_t *decline = offer_ids_of(offers, used, false, NULL);
  if(json_array_size(decline)) {
    o->offers_declined += json_array_size(decline);
    call_for(o, m3s_call_decline(decline, cfg->refuse_offers), subscription);
  }
  else {
    json_decref(decline);
  }
  free(used);
  demand_changed(o);
}

/* ---- updates -------------------------------------------------------------- */

static void on_update(offers_t *o, m3s_msg_t *msg)
{
  m3s_mesos_update_t *u = msg->payload;
  const char *id = json_string_value(json_object_get(json_object_get(u->status, "task_id"), "value"));
  const char *state = json_string_value(json_object_get(u->status, "state"));
  const char *agent =
    json_string_value(json_object_get(json_object_get(u->status, "agent_id"), "value"));
  route_t *r = id ? m3s_idmap_get(&o->routes, id) : NULL;
  if(r && o->roles[r->role]) {
    m3s_send(o->roles[r->role],
             m3s_msg_new(M3S_MESOS_UPDATE, 0, m3s_msg_take(msg), m3s_mesos_update_free));
    return;
  }
  /* Nobody owns it: a task of an earlier life of this framework, or one
   * launched by another scheduler under our id. */
  o->unknown_updates++;
  if(id && m3s_task_state_live(state)) {
    m3s_warn("task %s (%s) is not one of ours: killing it", id, state);
    call(o, m3s_call_kill(id, agent));
  }
  if(u->ack) {
    call(o, u->ack);
    u->ack = NULL;
  }
}

/* ---- cluster operations ------------------------------------------------------ */

static void scale(offers_t *o, m3s_role_t role, int count, unsigned flags)
{
  m3s_msg_t *m = m3s_msg_new(M3S_ROLE_SCALE, count, NULL, NULL);
  m->flags = flags;
  m3s_send(o->roles[role], m);
}

static int desired_of(offers_t *o, m3s_role_t r)
{
  return o->have_rs[r] ? o->rs[r].desired : 0;
}

static void op_progress(offers_t *o)
{
  if(o->op_phase != OP_WAIT_DOWN)
    return;
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    if((o->op_roles & (1 << r)) && (!o->have_rs[r] || o->rs[r].live > 0 || o->rs[r].desired > 0))
      return;
  m3s_info("cluster restart: every task of the restarted roles is gone, starting them again");
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    if(o->op_roles & (1 << r))
      scale(o, r, 0, M3S_ROLE_FROM_RESTORE);
  o->op = 0;
  o->op_phase = OP_NONE;
  o->op_roles = 0;
}

static int cluster_op(offers_t *o, m3s_cluster_op_t op)
{
  int ds = desired_of(o, M3S_ROLE_DATASTORE), sv = desired_of(o, M3S_ROLE_SERVER),
      ag = desired_of(o, M3S_ROLE_AGENT);
  if(o->op_phase != OP_NONE)
    return -EBUSY;
  switch(op) {
  case M3S_CLUSTER_SHUTDOWN:
    m3s_info("cluster shutdown: scaling every role to 0");
    scale(o, M3S_ROLE_AGENT, 0, M3S_ROLE_SAVE_RESTORE);
    scale(o, M3S_ROLE_SERVER, 0, M3S_ROLE_SAVE_RESTORE);
    scale(o, M3S_ROLE_DATASTORE, 0, M3S_ROLE_SAVE_RESTORE);
    return 0;
  case M3S_CLUSTER_START:
    if(ds && sv && ag)
      return -EALREADY;
    m3s_info("cluster start: scaling every role to its remembered count");
    scale(o, M3S_ROLE_DATASTORE, 0, M3S_ROLE_FROM_RESTORE);
    scale(o, M3S_ROLE_SERVER, 0, M3S_ROLE_FROM_RESTORE);
    scale(o, M3S_ROLE_AGENT, 0, M3S_ROLE_FROM_RESTORE);
    return 0;
  case M3S_CLUSTER_RESTART:
  case M3S_CLUSTER_RESTART_SERVER:
    o->op_roles = (1 << M3S_ROLE_SERVER) | (1 << M3S_ROLE_AGENT);
    break;
  case M3S_CLUSTER_RESTART_DS:
    o->op_roles = (1 << M3S_ROLE_DATASTORE) | (1 << M3S_ROLE_SERVER) | (1 << M3S_ROLE_AGENT);
    break;
  case M3S_CLUSTER_RESTART_AGENT:
    o->op_roles = 1 << M3S_ROLE_AGENT;
    break;
  default:
    return -EINVAL;
  }
  if(!ds && !sv && !ag) {
    o->op_roles = 0;
    return -EALREADY;
  }
  m3s_info("restart of %s%s%s: scaling down, then back up in the background",
           o->op_roles & (1 << M3S_ROLE_DATASTORE) ? "datastore " : "",
           o->op_roles & (1 << M3S_ROLE_SERVER) ? "servers " : "", "agents");
  o->op = op;
  o->op_phase = OP_WAIT_DOWN;
  for(m3s_role_t r = M3S_ROLE_AGENT; r >= M3S_ROLE_DATASTORE; r--)
    if(o->op_roles & (1 << r))
      scale(o, r, 0, M3S_ROLE_SAVE_RESTORE);
  return 0;
}

/* ---- start-up barrier -------------------------------------------------------- */

static void maybe_announce(offers_t *o)
{
  if(o->announced || !o->cfg_loaded)
    return;
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    if(o->roles[r] && !o->ready[r])
      return;
  o->announced = true;
  /* The record as the roles see it now, once, as the original writes it at
   * start. */
  write_config(o, NULL, 0);
  m3s_send(o->mesos, m3s_msg_new(M3S_MESOS_READY, 0, NULL, NULL));
}

static void on_ready(offers_t *o, m3s_offers_ready_t *r)
{
  for(size_t i = 0; i < r->n; i++)
    route_add(o, r->tasks[i].task_id, r->role, r->tasks[i].agent_id, r->tasks[i].hostname);
  o->ready[r->role] = true;
  maybe_announce(o);
}

/* ---- deferred answers ------------------------------------------------------- */

/* framework_config is written whole: a later stored write holds every
 * earlier change too; one refused for good answers the requests it carried
 * with an error. */
static void on_written(offers_t *o, int64_t tag, bool failed)
{
  size_t j = 0;
  for(size_t i = 0; i < o->ndefer; i++) {
    if(o->defer[i].tag <= tag) {
      m3s_msg_t *a = m3s_msg_new(M3S_OFFERS_SCHEDULING, failed ? -EIO : o->defer[i].arg, NULL,
                                 NULL);
      if(failed)
        a->flags = M3S_ROLE_ERROR;
      m3s_reply_finish(o->defer[i].reply, a);
    }
    else
      o->defer[j++] = o->defer[i];
  }
  o->ndefer = j;
}

/* ---- run-time configuration changes (m3s/liveconfig.h) ---------------------- */

static void fwc_res(const m3s_fw_config_record_t *f, m3s_role_t role, m3s_task_resources_t *r)
{
  switch(role) {
  case M3S_ROLE_DATASTORE:
    *r = (m3s_task_resources_t){ f->ds_cpu, f->ds_cpu_limit, f->ds_mem, f->ds_mem_limit,
                                 f->ds_disk, f->ds_disk_limit };
    break;
  case M3S_ROLE_SERVER:
    *r = (m3s_task_resources_t){ f->k3s_server_cpu, f->k3s_server_cpu_limit, f->k3s_server_mem,
                                 f->k3s_server_mem_limit, f->k3s_server_disk,
                                 f->k3s_server_disk_limit };
    break;
  default:
    *r = (m3s_task_resources_t){ f->k3s_agent_cpu, f->k3s_agent_cpu_limit, f->k3s_agent_mem,
                                 f->k3s_agent_mem_limit, f->k3s_agent_disk,
                                 f->k3s_agent_disk_limit };
    break;
  }
}

/* A role state sent before the role applied the latest change carries the
 * resources from before it: those the change set stay as changed. */
static void keep_changed_res(offers_t *o, m3s_offers_role_state_t *s)
{
  if(s->spec_gen >= o->spec_gen) {
    o->spec_mask[s->role] = 0;
    return;
  }
  unsigned m = o->spec_mask[s->role];
  m3s_task_resources_t cur;
  fwc_res(&o->fwc, s->role, &cur);
  if(m & (1u << M3S_RES_CPU)) s->res.cpu = cur.cpu;
  if(m & (1u << M3S_RES_CPU_LIMIT)) s->res.cpu_limit = cur.cpu_limit;
  if(m & (1u << M3S_RES_MEM)) s->res.mem = cur.mem;
  if(m & (1u << M3S_RES_MEM_LIMIT)) s->res.mem_limit = cur.mem_limit;
  if(m & (1u << M3S_RES_DISK)) s->res.disk = cur.disk;
  if(m & (1u << M3S_RES_DISK_LIMIT)) s->res.disk_limit = cur.disk_limit;
}

static void update_refuse(m3s_msg_t *msg, const char *why)
{
  m3s_msg_t *ans = m3s_msg_new(M3S_OFFERS_CONFIG_UPDATE, -EINVAL, m3s_xstrdup(why), free);
  ans->flags = M3S_ROLE_ERROR;
  m3s_msg_reply(msg, ans);
}

/* A request raised above its limit takes the limit along, as with the
 * resource endpoints; a limit set below its request is refused. */
static int settle_limits(m3s_role_t role, unsigned *mask, m3s_task_resources_t *r, char *why,
                         size_t len)
{
  static const char *const pre[] = { "", "DS", "K3S_SERVER", "K3S_AGENT" };
  struct { double *req, *lim; unsigned rb, lb; const char *name; } p[] = {
    { &r->cpu, &r->cpu_limit, 1u << M3S_RES_CPU, 1u << M3S_RES_CPU_LIMIT, "CPU" },
    { &r->mem, &r->mem_limit, 1u << M3S_RES_MEM, 1u << M3S_RES_MEM_LIMIT, "MEM" },
    { &r->disk, &r->disk_limit, 1u << M3S_RES_DISK, 1u << M3S_RES_DISK_LIMIT, "DISK" },
  };
  for(size_t i = 0; i < 3; i++) {
    if((*mask & p[i].rb) && !(*mask & p[i].lb) && *p[i].lim < *p[i].req) {
      *p[i].lim = *p[i].req;
      *mask |= p[i].lb;
    }
    if((*mask & (p[i].rb | p[i].lb)) && *p[i].lim < *p[i].req) {
      snprintf(why, len, "%s_%s_LIMIT=%g is below %s_%s=%g", pre[role], p[i].name, *p[i].lim,
               pre[role], p[i].name, *p[i].req);
      return -EINVAL;
    }
  }
  return 0;
}

static void on_config_update(offers_t *o, m3s_msg_t *msg)
{
  const m3s_live_change_t *ch = msg->payload;
  unsigned mask[NROLES] = { 0 };
  m3s_task_resources_t res[NROLES];
  m3s_config_t next;
  char why[512];

  if(!ch || ch->n == 0) {
    update_refuse(msg, "no variables to change");
    return;
  }
  /* Checked against the resources as the roles last reported them. */
  m3s_config_copy(&next, &o->spec);
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++) {
    fwc_res(&o->fwc, r, &res[r]);
    m3s_live_resources_put(&next, r, &res[r]);
  }
  if(m3s_config_set(&next, ch->items, ch->n, why, sizeof(why)) != 0) {
    m3s_config_free(&next);
    update_refuse(msg, why);
    return;
  }
  for(size_t k = 0; k < ch->n; k++) {
    m3s_role_t role;
    m3s_role_resource_kind_t kind;
    if(m3s_live_resource(ch->items[k].name, &role, &kind))
      mask[role] |= 1u << kind;
  }
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++) {
    m3s_task_resources_t was = res[r];
    m3s_task_resources_from_config(&next, r, &res[r]);
    /* A limit that followed its request changed without being named. */
    mask[r] |= (was.cpu != res[r].cpu) << M3S_RES_CPU |
               (was.cpu_limit != res[r].cpu_limit) << M3S_RES_CPU_LIMIT |
               (was.mem != res[r].mem) << M3S_RES_MEM |
               (was.mem_limit != res[r].mem_limit) << M3S_RES_MEM_LIMIT |
               (was.disk != res[r].disk) << M3S_RES_DISK |
               (was.disk_limit != res[r].disk_limit) << M3S_RES_DISK_LIMIT;
    if(settle_limits(r, &mask[r], &res[r], why, sizeof(why)) != 0) {
      m3s_config_free(&next);
      update_refuse(msg, why);
      return;
    }
    m3s_live_resources_put(&next, r, &res[r]);
  }

  /* Accepted: the TaskInfos built from now on use it. */
  m3s_config_free(&o->spec);
  o->spec = next;
  o->spec_gen++;
  json_t *updated = json_object();
  for(size_t k = 0; k < ch->n; k++)
    json_object_set_new(updated, ch->items[k].name,
                        m3s_config_value_json(&o->spec, ch->items[k].name));
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++) {
    if(mask[r]) {
      m3s_offers_role_state_t st = o->rs[r];
      st.role = r;
      st.res = res[r];
      if(!o->have_rs[r]) {
        st.desired = r == M3S_ROLE_DATASTORE ? o->fwc.ds_max
                   : r == M3S_ROLE_SERVER    ? o->fwc.k3s_server_max : o->fwc.k3s_agent_max;
        st.restore = r == M3S_ROLE_DATASTORE ? o->fwc.ds_max_restore
                   : r == M3S_ROLE_SERVER    ? o->fwc.k3s_server_max_restore
                                             : o->fwc.k3s_agent_max_restore;
      }
      apply_role_state(o, &st);
      o->spec_mask[r] |= mask[r];
    }
    m3s_role_spec_t *sp = m3s_xcalloc(1, sizeof(*sp));
    m3s_config_copy(&sp->cfg, &o->spec);
    sp->gen = o->spec_gen;
    sp->res_mask = mask[r];
    sp->res = res[r];
    m3s_send(o->roles[r], m3s_msg_new(M3S_ROLE_SET_SPEC, 0, sp, m3s_role_spec_free));
  }
  m3s_live_record_store(&o->fwc.extra, &o->spec, ch);
  char *shown = json_dumps(updated, JSON_COMPACT | JSON_REAL_PRECISION(15));
  m3s_info("configuration changed at run time: %s", shown ? shown : "?");
  free(shown);

  int64_t tag = TAG_CONFIG_WRITE + (++o->write_seq << 8);
  write_config(o, &o->base, tag);
  m3s_reply_t *rp = m3s_msg_take_reply(msg);
  if(!rp) {
    json_decref(updated);
    return;
  }
  if(o->nupd == o->capupd) {
    o->capupd = o->capupd ? o->capupd * 2 : 4;
    o->upd = m3s_xrealloc(o->upd, o->capupd * sizeof(*o->upd));
  }
  o->upd[o->nupd++] = (struct upd_wait){ tag, rp, json_pack("{s:o}", "updated", updated) };
}

/* The change is in effect either way; a write Redis refused for good is
 * reported as such, so the caller does not take it for saved. */
static void updates_written(offers_t *o, int64_t tag, bool failed)
{
  size_t j = 0;
  for(size_t i = 0; i < o->nupd; i++) {
    if(o->upd[i].tag <= tag) {
      m3s_msg_t *a;
      if(failed) {
        json_decref(o->upd[i].answer);
        a = m3s_msg_new(M3S_OFFERS_CONFIG_UPDATE, -EIO,
                        m3s_xstrdup("Redis refused to save the change for good"), free);
        a->flags = M3S_ROLE_ERROR;
      }
      else
        a = m3s_msg_new(M3S_OFFERS_CONFIG_UPDATE, 0, o->upd[i].answer, m3s_json_drop);
      m3s_reply_finish(o->upd[i].reply, a);
    }
    else
      o->upd[j++] = o->upd[i];
  }
  o->nupd = j;
}

static json_t *status_json(offers_t *o)
{
  static const char *const ops[] = { "", "shutdown", "start", "restart", "restart-ds",
                                     "restart-server", "restart-agent" };
  json_t *pend = json_object();
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    json_object_set_new(pend, m3s_role_name(r), json_integer(0));
  for(size_t i = 0; i < o->npending; i++) {
    const char *n = m3s_role_name(o->pending[i]->role);
    json_object_set_new(pend, n, json_integer(json_integer_value(json_object_get(pend, n)) + 1));
  }
  return json_pack(
    "{s:I, s:o, s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}, s:s, s:s,"
    " s:i, s:b, s:I}",
    "pending", (json_int_t)o->npending, "pending_by_role", pend,
    "subscribed", o->subscribed, "suppressed", o->suppressed == 1,
    "offer_events", (json_int_t)o->events, "offers_received", (json_int_t)o->offers_received,
    "offers_accepted", (json_int_t)o->offers_accepted,
    "offers_declined", (json_int_t)o->offers_declined, "rescinds", (json_int_t)o->rescinds,
    "launched", (json_int_t)o->launched, "rounds_with_room", (json_int_t)o->rounds_with_room,
    "unknown_updates", (json_int_t)o->unknown_updates, "last_round", "offers",
    (json_int_t)o->last_round_offers, "placed", (json_int_t)o->last_round_placed, "waiting",
    (json_int_t)o->last_round_waiting, "cluster_operation", ops[o->op <= 6 ? o->op : 0],
    "server_hostname", o->fwc.k3s_server_hostname ? o->fwc.k3s_server_hostname : "",
    "server_port", o->fwc.k3s_server_port, "disable_scheduling", o->fwc.k3s_disable_scheduling,
    "tasks", (json_int_t)o->routes.n);
}

/* ---- handler ----------------------------------------------------------------- */

/* A change asked through the API while the store is backlogged: refused at
 * once (arg -EAGAIN), nothing changes. */
static bool refuse_backlogged(offers_t *o, m3s_msg_t *msg)
{
  if(!o->backlogged || !msg->reply)
    return false;
  m3s_msg_t *a = m3s_msg_new(msg->type, -EAGAIN,
                             m3s_xstrdup("Redis is backlogged: the change was not made"), free);
  a->flags = M3S_ROLE_ERROR;
  m3s_msg_reply(msg, a);
  return true;
}

static void on_pressure(offers_t *o, bool backlogged)
{
  o->backlogged = backlogged;
  if(backlogged) {
    if(o->npending)
      m3s_info("Redis is backlogged: %zu pending task(s) are not launched until it drains",
               o->npending);
    return;
  }
  if(o->npending && o->subscribed) {
    /* Offers declined meanwhile are filtered for REFUSE_OFFERS seconds:
     * ask for them again now. */
    call(o, m3s_call_revive(o->base.cfg->framework_role));
    o->suppressed = 0;
  }
}

static void offers_handle(m3s_actor_t *self, m3s_msg_t *msg)
{
  offers_t *o = (offers_t *)self;
  switch(msg->type) {
  case M3S_STORE_LOADED:
    if(msg->arg == TAG_LOAD_CONFIG) {
      on_config_loaded(o, msg->payload);
      maybe_announce(o);
    }
    break;
  case M3S_STORE_WRITTEN:
    on_written(o, msg->arg, msg->flags & M3S_STORE_FAILED);
    updates_written(o, msg->arg, msg->flags & M3S_STORE_FAILED);
    break;
  case M3S_OFFERS_ROLE_READY:
    on_ready(o, msg->payload);
    break;
  case M3S_OFFERS_ROLE_STATE: {
    m3s_offers_role_state_t *s = msg->payload;
    if(s->role <= M3S_ROLE_NONE || s->role > M3S_ROLE_AGENT)
      break;
    keep_changed_res(o, s);
    o->rs[s->role] = *s;
    o->have_rs[s->role] = true;
    apply_role_state(o, s);
    if(s->seq > 0)
      write_config(o, o->roles[s->role], M3S_ROLE_CONFIG_TAG | s->seq);
    op_progress(o);
    break;
  }
  case M3S_OFFERS_PENDING:
    pending_add(o, m3s_msg_take(msg));
    break;
  case M3S_OFFERS_CANCEL:
    pending_cancel(o, msg->payload);
    break;
  case M3S_OFFERS_FORGET:
    route_free(m3s_idmap_del(&o->routes, msg->payload));
    break;
  case M3S_MESOS_SUBSCRIBED:
    o->subscribed = true;
    o->suppressed = -1;
    for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
      if(o->roles[r])
        m3s_send(o->roles[r], m3s_msg_new(M3S_ROLE_SUBSCRIBED, 0, NULL, NULL));
    /* Implicit reconciliation: the master reports every task it has for
     * us; the ones nobody owns are killed (on_update). */
    call(o, m3s_call_reconcile(NULL));
    demand_changed(o);
    if(!o->reconcile_timer)
      o->reconcile_timer = m3s_timer_start(self, T_RECONCILE, self->cfg->reconcile_wait_ms,
                                           self->cfg->reconcile_wait_ms);
    break;
  case T_RECONCILE:
    if(o->subscribed) {
      for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
        if(o->roles[r])
          m3s_send(o->roles[r], m3s_msg_new(M3S_ROLE_SUBSCRIBED, 0, NULL, NULL));
      call(o, m3s_call_reconcile(NULL));
    }
    break;
  case M3S_MESOS_OFFERS:
    on_offers(o, msg->payload, msg->arg);
    break;
  case M3S_MESOS_RESCIND:
    /* Offers are answered in the round they arrive in; nothing to drop. */
    o->rescinds++;
    break;
  case M3S_MESOS_UPDATE:
    on_update(o, msg);
    break;
  case M3S_STORE_PRESSURE:
    on_pressure(o, msg->arg != 0);
    break;
  case M3S_OFFERS_CLUSTER: {
    if(refuse_backlogged(o, msg))
      break;
    int rc = cluster_op(o, (m3s_cluster_op_t)msg->arg);
    m3s_msg_t *a = m3s_msg_new(M3S_OFFERS_CLUSTER, rc, NULL, NULL);
    a->flags = rc ? M3S_ROLE_ERROR : 0;
    m3s_msg_reply(msg, a); /* -ENOENT for a plain send: nobody waits */
    break;
  }
  case M3S_OFFERS_SCHEDULING: {
    if(refuse_backlogged(o, msg))
      break;
    bool off = msg->arg != 0;
    o->fwc.k3s_disable_scheduling = off;
    int64_t tag = TAG_CONFIG_WRITE + (++o->write_seq << 8);
    write_config(o, self, tag);
    m3s_reply_t *r = m3s_msg_take_reply(msg);
    if(r) {
      if(o->ndefer == o->capdefer) {
        o->capdefer = o->capdefer ? o->capdefer * 2 : 8;
        o->defer = m3s_xrealloc(o->defer, o->capdefer * sizeof(*o->defer));
      }
      o->defer[o->ndefer++] = (deferred_t){ tag, r, 0 };
    }
    m3s_info("agent nodes %s", off ? "cordoned: scheduling disabled" : "uncordoned");
    break;
  }
  case M3S_OFFERS_STATUS:
    m3s_msg_reply(msg, m3s_msg_new(M3S_OFFERS_STATUS, 0, status_json(o), m3s_json_drop));
    break;
  case M3S_OFFERS_CONFIG_UPDATE:
    if(!refuse_backlogged(o, msg))
      on_config_update(o, msg);
    break;
  default:
    m3s_warn("unexpected message type %u", msg->type);
    break;
  }
}

static int offers_start(m3s_actor_t *self)
{
  offers_t *o = (offers_t *)self;
  o->store = m3s_system_find(self->sys, "store");
  o->mesos = m3s_system_find(self->sys, "mesos");
  for(m3s_role_t r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    o->roles[r] = m3s_system_find(self->sys, m3s_role_name(r));
  if(!o->store || !o->mesos || !o->roles[M3S_ROLE_DATASTORE] || !o->roles[M3S_ROLE_SERVER] ||
     !o->roles[M3S_ROLE_AGENT]) {
    m3s_error("the offers actor needs the store, mesos and the three role actors");
    return -EINVAL;
  }
  o->suppressed = -1;
  o->fwc_key = m3s_key_framework_config(self->cfg->fw);
  m3s_fw_config_record_defaults(self->cfg, &o->fwc);
  m3s_config_copy(&o->spec, self->cfg);
  m3s_store_watch(o->store, self);
  m3s_send(o->store, m3s_msg_new(M3S_STORE_LOAD, 0,
                                 m3s_store_load_new("framework_config", self, TAG_LOAD_CONFIG),
                                 m3s_store_load_free));
  return 0;
}

static void offers_stop(m3s_actor_t *self)
{
  offers_t *o = (offers_t *)self;
  for(size_t i = 0; i < o->routes.cap; i++)
    if(o->routes.slots[i].val)
      route_free(o->routes.slots[i].val);
  m3s_idmap_free(&o->routes);
  for(size_t i = 0; i < o->npending; i++)
    free(o->pending[i]);
  free(o->pending);
  for(size_t i = 0; i < o->ndefer; i++)
    m3s_reply_finish(o->defer[i].reply, NULL);
  free(o->defer);
  m3s_fw_config_record_free(&o->fwc);
  free(o->fwc_key);
  for(size_t i = 0; i < o->nupd; i++) {
    json_decref(o->upd[i].answer);
    m3s_reply_finish(o->upd[i].reply, NULL);
  }
  free(o->upd);
  m3s_config_free(&o->spec);
}

const m3s_actor_ops_t m3s_offers_ops = {
  .name = "offers",
  .size = sizeof(offers_t),
  .start = offers_start,
  .handle = offers_handle,
  .stop = offers_stop,
};
