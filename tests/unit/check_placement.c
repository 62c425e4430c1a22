/* Unit tests of offer placement (src/actors/placement.c).
 *
 * Real offers: tests/data/placement/offers-{1-agent,2-agents}.json, copied
 * from mesos-samples/events (Mesos 1.11, MULTI_ROLE framework "m3s").
 * Synthetic offers are written here in the same shape. Every placement is
 * also checked against the offers by check_sound(): no entry overdrawn, each
 * port inside an offered range of its entry and never given twice on one
 * agent, slices matching the task's needs.
 *
 * The data directory is argv[1], else M3S_TEST_DATA_DIR (.../tests/data).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/placement.h"
#include "check_data.h"

#define S0 "82317765-6c51-4b5d-9b5d-eb9f972e545e-S0"
#define S1 "82317765-6c51-4b5d-9b5d-eb9f972e545e-S1"

static const m3s_placement_opts_t spread1 = { "m3s", 1, 0, 0 };
static const m3s_placement_opts_t unlimited = { "m3s", 0, 0, 0 };

/* The offers array of a captured OFFERS event; *root owns it. */
static json_t *capture(const char *name, json_t **root)
{
  char rel[256];
  size_t len;
  char *buf;
  json_error_t jerr;

  snprintf(rel, sizeof(rel), "placement/%s", name);
  buf = read_file(rel, &len);
  *root = json_loadb(buf, len, 0, &jerr);
  free(buf);
  ck_assert_msg(*root, "%s: %s", rel, jerr.text);
  return json_object_get(json_object_get(*root, "offers"), "offers");
}

/* A scalar resource; role "*" = unreserved, alloc NULL = no allocation_info. */
static json_t *scalar(const char *name, double v, const char *role, const char *alloc)
{
  json_t *r = json_pack("{s:s,s:s,s:{s:f},s:s}", "name", name, "type", "SCALAR",
                        "scalar", "value", v, "role", role);

  ck_assert_ptr_nonnull(r);
  if(alloc)
    json_object_set_new(r, "allocation_info", json_pack("{s:s}", "role", alloc));
  return r;
}

/* A ports resource of n ranges given as begin, end pairs. */
static json_t *ports(const char *alloc, size_t n, const int *be)
{
  json_t *range = json_array();
  json_t *r;
  size_t i;

  for(i = 0; i < n; i++)
    json_array_append_new(range, json_pack("{s:i,s:i}", "begin", be[2 * i], "end", be[2 * i + 1]));
  r = json_pack("{s:s,s:s,s:{s:o},s:s}", "name", "ports", "type", "RANGES",
                "ranges", "range", range, "role", "*");
  ck_assert_ptr_nonnull(r);
  if(alloc)
    json_object_set_new(r, "allocation_info", json_pack("{s:s}", "role", alloc));
  return r;
}

/* Appends to offers an offer of agent/host with resources (taken). */
static void add_offer(json_t *offers, const char *agent, const char *host, json_t *resources)
{
  char id[64];

  snprintf(id, sizeof(id), "O%zu", json_array_size(offers));
  ck_assert_int_eq(json_array_append_new(offers, json_pack(
    "{s:{s:s},s:{s:s},s:s,s:o,s:{s:s}}", "id", "value", id, "agent_id", "value", agent,
    "hostname", host, "resources", resources, "allocation_info", "role", "m3s")), 0);
}

/* A plain agent offer: cpus, mem, disk, one ports range, all role m3s. */
static void add_plain(json_t *offers, const char *agent, const char *host, double cpus,
                      double mem, double disk, int pbegin, int pend)
{
  int be[2] = { pbegin, pend };

  add_offer(offers, agent, host, json_pack("[o,o,o,o]", scalar("cpus", cpus, "*", "m3s"),
                                           scalar("mem", mem, "*", "m3s"),
                                           scalar("disk", disk, "*", "m3s"),
                                           ports("m3s", 1, be)));
}

static m3s_pending_t task(const char *id, int role, double cpus, double mem, double disk,
                          size_t n_ports, int fixed, const char *host)
{
  m3s_pending_t p = { id, role, cpus, mem, disk, n_ports, fixed, host };

  return p;
}

static const json_t *resource_of(const json_t *offers, const m3s_slice_t *s)
{
  return json_array_get(json_object_get(json_array_get(offers, s->offer_index), "resources"),
                        s->resource_index);
}

static bool port_in(const json_t *res, long p)
{
  const json_t *range = json_object_get(json_object_get(res, "ranges"), "range");
  size_t i;

  for(i = 0; i < json_array_size(range); i++) {
    const json_t *r = json_array_get(range, i);

    if(p >= json_integer_value(json_object_get(r, "begin")) &&
       p <= json_integer_value(json_object_get(r, "end")))
      return true;
  }
  return false;
}

/* Checks n assignments against offers and pending (see the file comment),
 * the offer_used flags, and that the resources JSON carries the same. */
static void check_sound(const json_t *offers, const m3s_pending_t *pending,
                        const m3s_assignment_t *out, int n, const bool *used)
{
  size_t n_offers = json_array_size(offers);
  double *taken = calloc(n_offers * 16, sizeof(*taken));
  bool *want_used = calloc(n_offers + 1, sizeof(*want_used));
  int i;
  size_t s, j, k;

  ck_assert_int_ge(n, 0);
  for(i = 0; i < n; i++) {
    const m3s_assignment_t *a = &out[i];
    const m3s_pending_t *p = &pending[a->pending_index];
    double sum[3] = { 0, 0, 0 };
    size_t nports = 0;
    json_t *rj;

    if(i > 0)
      ck_assert_uint_gt(a->pending_index, out[i - 1].pending_index);
    ck_assert_str_eq(a->agent_id, json_string_value(json_object_get(
      json_object_get(json_array_get(offers, a->offer_index), "agent_id"), "value")));
    if(p->hostname)
      ck_assert_str_eq(a->hostname, p->hostname);
    ck_assert_uint_eq(a->n_ports, p->n_ports + (p->fixed_port ? 1 : 0));
    if(p->fixed_port)
      ck_assert_int_eq(a->ports[0], p->fixed_port);
    for(s = 0; s < a->n_slices; s++) {
      const m3s_slice_t *sl = &a->slices[s];
      const json_t *res = resource_of(offers, sl);
      const json_t *o = json_array_get(offers, sl->offer_index);
      const char *name = json_string_value(json_object_get(res, "name"));
      const json_t *ai = json_object_get(res, "allocation_info");

      ck_assert_ptr_nonnull(res);
      ck_assert_str_eq(json_string_value(json_object_get(json_object_get(o, "agent_id"), "value")),
                       a->agent_id);
      if(ai)
        ck_assert_str_eq(json_string_value(json_object_get(ai, "role")), "m3s");
      want_used[sl->offer_index] = true;
      if(!strcmp(name, "ports")) {
        ck_assert(port_in(res, sl->amount));
        ck_assert_int_eq(a->ports[nports++], (int)sl->amount);
        /* Never twice on one agent: against every earlier port there. */
        for(k = 0; k <= (size_t)i; k++)
          if(!strcmp(out[k].agent_id, a->agent_id))
            for(j = 0; j < out[k].n_ports; j++)
              if(k != (size_t)i || j != nports - 1)
                ck_assert_int_ne(out[k].ports[j], (int)sl->amount);
        continue;
      }
      ck_assert_int_gt(sl->amount, 0);
      ck_assert(sl->resource_index < 16);
      taken[sl->offer_index * 16 + sl->resource_index] += sl->amount / 1000.0;
      ck_assert(taken[sl->offer_index * 16 + sl->resource_index] <=
                json_number_value(json_object_get(json_object_get(res, "scalar"), "value")) + 1e-9);
      sum[!strcmp(name, "cpus") ? 0 : !strcmp(name, "mem") ? 1 : 2] += sl->amount / 1000.0;
    }
    ck_assert_uint_eq(nports, a->n_ports);
    ck_assert(fabs(sum[0] - p->cpus) < 1e-9);
    ck_assert(fabs(sum[1] - p->mem) < 1e-9);
    ck_assert(fabs(sum[2] - p->disk) < 1e-9);

    /* The LAUNCH resources: same totals, allocation_info kept. */
    rj = m3s_place_resources_json(offers, a);
    ck_assert_ptr_nonnull(rj);
    memset(sum, 0, sizeof(sum));
    nports = 0;
    for(j = 0; j < json_array_size(rj); j++) {
      const json_t *r = json_array_get(rj, j);
      const char *name = json_string_value(json_object_get(r, "name"));

      ck_assert_ptr_nonnull(name);
      ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "allocation_info"), "role")), "m3s");
      if(!strcmp(name, "ports")) {
        const json_t *range = json_object_get(json_object_get(r, "ranges"), "range");

        ck_assert_ptr_null(json_object_get(r, "scalar"));
        for(k = 0; k < json_array_size(range); k++)
          nports += (size_t)(json_integer_value(json_object_get(json_array_get(range, k), "end")) -
                             json_integer_value(json_object_get(json_array_get(range, k), "begin")) + 1);
      } else {
        ck_assert_ptr_null(json_object_get(r, "ranges"));
        sum[!strcmp(name, "cpus") ? 0 : !strcmp(name, "mem") ? 1 : 2] +=
          json_number_value(json_object_get(json_object_get(r, "scalar"), "value"));
      }
    }
    ck_assert_uint_eq(nports, a->n_ports);
    ck_assert(fabs(sum[0] - p->cpus) < 1e-9);
    ck_assert(fabs(sum[1] - p->mem) < 1e-9);
    ck_assert(fabs(sum[2] - p->disk) < 1e-9);
    json_decref(rj);
  }
  for(s = 0; s < n_offers; s++)
    ck_assert_msg(used[s] == want_used[s], "offer %zu used %d", s, used[s]);
  free(taken);
  free(want_used);
}

/* Places and checks; returns the count. */
static int place(const json_t *offers, const m3s_pending_t *p, size_t n,
                 const m3s_running_t *running, const m3s_placement_opts_t *opts,
                 m3s_assignment_t *out, bool *used)
{
  int rc = m3s_place(offers, p, n, running, opts, out, used);

  check_sound(offers, p, out, rc, used);
  return rc;
}

START_TEST(capture_one_agent)
{
  json_t *root, *offers = capture("offers-1-agent.json", &root);
  m3s_pending_t p[] = { task("ds", 0, 1, 2048, 5000, 1, 31005, NULL) };
  m3s_assignment_t out[1];
  bool used[1];
  json_t *rj;
  size_t i;

  ck_assert_int_eq(place(offers, p, 1, NULL, &spread1, out, used), 1);
  ck_assert_str_eq(out[0].agent_id, S0);
  ck_assert_str_eq(out[0].hostname, "127.0.0.1");
  ck_assert_uint_eq(out[0].offer_index, 0);
  ck_assert_uint_eq(out[0].n_ports, 2);
  ck_assert_int_eq(out[0].ports[0], 31005);
  ck_assert_int_eq(out[0].ports[1], 31000);
  ck_assert(used[0]);

  /* What the master needs: the offered entry's role and allocation. */
  rj = m3s_place_resources_json(offers, &out[0]);
  ck_assert_uint_eq(json_array_size(rj), 4);
  for(i = 0; i < 4; i++) {
    json_t *r = json_array_get(rj, i);

    ck_assert_str_eq(json_string_value(json_object_get(r, "role")), "*");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r, "allocation_info"), "role")), "m3s");
  }
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rj, 0), "name")), "cpus");
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rj, 0), "type")), "SCALAR");
  ck_assert(json_number_value(json_object_get(json_object_get(json_array_get(rj, 1), "scalar"), "value")) == 2048.0);
  {
    json_t *range = json_object_get(json_object_get(json_array_get(rj, 3), "ranges"), "range");

    ck_assert_uint_eq(json_array_size(range), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(range, 0), "begin")), 31000);
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(range, 1), "end")), 31005);
  }
  json_decref(rj);
  json_decref(root);
}
END_TEST

START_TEST(capture_two_agents)
{
  json_t *root, *offers = capture("offers-2-agents.json", &root);
  /* 31500 is the gap between S0's two ranges; 32050 is only on S1. */
  m3s_pending_t gap[] = { task("a", 2, 1, 1000, 1000, 0, 31500, NULL) };
  m3s_pending_t s1[] = { task("a", 2, 1, 1000, 1000, 2, 32050, NULL) };
  m3s_pending_t two[] = { task("a1", 2, 1.9, 4000, 5000, 1, 0, NULL),
                          task("a2", 2, 1.9, 4000, 5000, 1, 0, NULL),
                          task("a3", 2, 1.9, 4000, 5000, 1, 0, NULL) };
  m3s_assignment_t out[3];
  bool used[2];

  ck_assert_int_eq(place(offers, gap, 1, NULL, &spread1, out, used), 0);
  ck_assert(!used[0] && !used[1]);

  ck_assert_int_eq(place(offers, s1, 1, NULL, &spread1, out, used), 1);
  ck_assert_str_eq(out[0].agent_id, S1);
  ck_assert_int_eq(out[0].ports[0], 32050);
  ck_assert(!used[0] && used[1]);

  /* Same hostname, two Mesos agents: one each, the third has no agent. */
  ck_assert_int_eq(place(offers, two, 3, NULL, &spread1, out, used), 2);
  ck_assert_str_eq(out[0].agent_id, S0);
  ck_assert_str_eq(out[1].agent_id, S1);
  ck_assert(used[0] && used[1]);

  /* Unlimited: S0 (3.8 cpus) takes two of them, S1 the third. */
  ck_assert_int_eq(place(offers, two, 3, NULL, &unlimited, out, used), 3);
  json_decref(root);
}
END_TEST

START_TEST(fit_scalars_and_disk)
{
  json_t *offers = json_array();
  m3s_pending_t cpu[] = { task("c", 2, 2.001, 100, 100, 0, 0, NULL) };
  m3s_pending_t mem[] = { task("m", 2, 1, 1000.5, 100, 0, 0, NULL) };
  m3s_pending_t disk[] = { task("d", 2, 1, 100, 500.001, 0, 0, NULL) };
  m3s_pending_t exact[] = { task("e", 2, 2, 1000, 500, 0, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[1];

  add_plain(offers, "A", "a", 2, 1000, 500, 31000, 31010);
  ck_assert_int_eq(place(offers, cpu, 1, NULL, &spread1, out, used), 0);
  ck_assert_int_eq(place(offers, mem, 1, NULL, &spread1, out, used), 0);
  /* The original ignored disk: we refuse. */
  ck_assert_int_eq(place(offers, disk, 1, NULL, &spread1, out, used), 0);
  ck_assert(!used[0]);
  ck_assert_int_eq(place(offers, exact, 1, NULL, &spread1, out, used), 1);
  ck_assert(used[0]);
  json_decref(offers);
}
END_TEST

START_TEST(fit_thousandths)
{
  json_t *offers = json_array();
  /* 0.1 + 0.2 > 0.3 in doubles; the master counts thousandths. */
  m3s_pending_t p[] = { task("a", 2, 0.1, 1, 0, 0, 0, NULL), task("b", 2, 0.2, 1, 0, 0, 0, NULL) };
  m3s_assignment_t out[2];
  bool used[1];

  add_plain(offers, "A", "a", 0.3, 2, 0, 31000, 31000);
  ck_assert_int_eq(place(offers, p, 2, NULL, &unlimited, out, used), 2);
  json_decref(offers);
}
END_TEST

START_TEST(port_ranges)
{
  json_t *offers = json_array();
  const int be[] = { 31000, 31001, 31005, 31005, 31010, 31011 };
  m3s_pending_t fixed_in[] = { task("a", 2, 0.1, 1, 0, 2, 31005, NULL),
                               task("b", 2, 0.1, 1, 0, 0, 31005, NULL), /* used */
                               task("c", 2, 0.1, 1, 0, 0, 31003, NULL), /* gap */
                               task("d", 2, 0.1, 1, 0, 0, 30000, NULL), /* below */
                               task("e", 2, 0.1, 1, 0, 3, 0, NULL),     /* 2 left */
                               task("f", 2, 0.1, 1, 0, 1, 31011, NULL),
                               task("g", 2, 0.1, 1, 0, 1, 0, NULL) };   /* none */
  m3s_pending_t partial[] = { task("p", 2, 0.1, 1, 0, 6, 0, NULL) };
  m3s_pending_t all[] = { task("q", 2, 0.1, 1, 0, 4, 31005, NULL) };
  m3s_pending_t zero_ports[] = { task("z", 2, 0.1, 1, 0, 0, 0, NULL) };
  m3s_assignment_t out[7];
  bool used[1];

  add_offer(offers, "A", "a", json_pack("[o,o,o]", scalar("cpus", 4, "*", "m3s"),
                                        scalar("mem", 100, "*", "m3s"), ports("m3s", 3, be)));
  ck_assert_int_eq(place(offers, fixed_in, 7, NULL, &unlimited, out, used), 2);
  ck_assert_uint_eq(out[0].pending_index, 0);
  ck_assert_int_eq(out[0].ports[0], 31005);
  ck_assert_int_eq(out[0].ports[1], 31000);
  ck_assert_int_eq(out[0].ports[2], 31001);
  ck_assert_uint_eq(out[1].pending_index, 5);
  ck_assert_int_eq(out[1].ports[0], 31011);
  ck_assert_int_eq(out[1].ports[1], 31010);

  /* 5 ports offered: 6 is partial coverage, refused; 5 with one fixed fit. */
  ck_assert_int_eq(place(offers, partial, 1, NULL, &unlimited, out, used), 0);
  ck_assert_int_eq(place(offers, all, 1, NULL, &unlimited, out, used), 1);
  ck_assert_int_eq(out[0].ports[4], 31011);
  /* A task without ports still goes (the original could never place it). */
  ck_assert_int_eq(place(offers, zero_ports, 1, NULL, &unlimited, out, used), 1);
  ck_assert_uint_eq(out[0].n_ports, 0);
  json_decref(offers);
}
END_TEST

START_TEST(fixed_port_not_reused_as_any)
{
  json_t *offers = json_array();
  m3s_pending_t p[] = { task("a", 2, 0.1, 1, 0, 0, 31001, NULL),
                        task("b", 2, 0.1, 1, 0, 2, 0, NULL),
                        task("c", 2, 0.1, 1, 0, 0, 31000, NULL) };
  m3s_assignment_t out[3];
  bool used[1];

  add_plain(offers, "A", "a", 4, 100, 0, 31000, 31002);
  ck_assert_int_eq(place(offers, p, 3, NULL, &unlimited, out, used), 2);
  ck_assert_int_eq(out[1].ports[0], 31000);
  ck_assert_int_eq(out[1].ports[1], 31002);
  json_decref(offers);
}
END_TEST

/* PORTRANGE_FROM/TO: "any" ports only strictly inside, as in the original;
 * the server's fixed port (K3S_SERVER_PORT = PORTRANGE_FROM) still goes. */
START_TEST(any_ports_bounded)
{
  json_t *offers = json_array();
  m3s_pending_t server[] = { task("s", 1, 0.1, 1, 0, 1, 31000, NULL) };
  m3s_pending_t wide[] = { task("w", 2, 0.1, 1, 0, 4, 0, NULL) };
  m3s_placement_opts_t bounded = { "m3s", 0, 31001, 31003 };
  m3s_assignment_t out[1];
  bool used[1];

  add_plain(offers, "A", "a", 4, 100, 0, 30990, 31010);
  ck_assert_int_eq(place(offers, server, 1, NULL, &bounded, out, used), 1);
  ck_assert_int_eq(out[0].ports[0], 31000);
  ck_assert_int_eq(out[0].ports[1], 31001);
  /* Only 31001..31003 may be handed out: three ports, not four. */
  ck_assert_int_eq(place(offers, wide, 1, NULL, &bounded, out, used), 0);
  wide[0].n_ports = 3;
  ck_assert_int_eq(place(offers, wide, 1, NULL, &bounded, out, used), 1);
  ck_assert_int_eq(out[0].ports[0], 31001);
  ck_assert_int_eq(out[0].ports[2], 31003);
  json_decref(offers);
}
END_TEST

START_TEST(reserved_and_unreserved_summed)
{
  json_t *offers = json_array();
  json_t *res, *rj, *r0, *r1;
  m3s_pending_t p[] = { task("a", 2, 2, 3000, 0, 1, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[1];
  const int be[] = { 31000, 31010 };

  res = json_pack("[o,o,o,o,o]", scalar("cpus", 1, "*", "m3s"), scalar("cpus", 1.5, "m3s", "m3s"),
                  scalar("mem", 2000, "*", "m3s"), scalar("mem", 2000, "m3s", "m3s"), ports("m3s", 1, be));
  /* A dynamic reservation (pre-refinement format) must be copied. */
  json_object_set_new(json_array_get(res, 1), "reservation", json_pack("{s:s}", "principal", "ops"));
  add_offer(offers, "A", "a", res);
  ck_assert_int_eq(place(offers, p, 1, NULL, &spread1, out, used), 1);

  rj = m3s_place_resources_json(offers, &out[0]);
  ck_assert_uint_eq(json_array_size(rj), 5);
  /* Reserved first: 1.5 reserved cpus, then 0.5 of the unreserved. */
  r0 = json_array_get(rj, 0);
  r1 = json_array_get(rj, 1);
  ck_assert_str_eq(json_string_value(json_object_get(r0, "role")), "m3s");
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r0, "reservation"), "principal")), "ops");
  ck_assert(json_number_value(json_object_get(json_object_get(r0, "scalar"), "value")) == 1.5);
  ck_assert_str_eq(json_string_value(json_object_get(r1, "role")), "*");
  ck_assert_ptr_null(json_object_get(r1, "reservation"));
  ck_assert(json_number_value(json_object_get(json_object_get(r1, "scalar"), "value")) == 0.5);
  ck_assert(json_number_value(json_object_get(json_object_get(json_array_get(rj, 2), "scalar"), "value")) == 2000);
  ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rj, 2), "role")), "m3s");
  ck_assert(json_number_value(json_object_get(json_object_get(json_array_get(rj, 3), "scalar"), "value")) == 1000);
  json_decref(rj);
  json_decref(offers);
}
END_TEST

START_TEST(refinement_reservations)
{
  json_t *offers = json_array();
  json_t *res, *rj;
  m3s_pending_t p[] = { task("a", 2, 2, 10, 0, 0, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[1];

  res = json_pack("[{s:s,s:s,s:{s:f},s:[{s:s,s:s}],s:{s:s}},{s:s,s:s,s:{s:f},s:{s:s}},{s:s,s:s,s:{s:f},s:{s:s}}]",
                  "name", "cpus", "type", "SCALAR", "scalar", "value", 1.0,
                  "reservations", "type", "STATIC", "role", "m3s", "allocation_info", "role", "m3s",
                  "name", "cpus", "type", "SCALAR", "scalar", "value", 1.0, "allocation_info", "role", "m3s",
                  "name", "mem", "type", "SCALAR", "scalar", "value", 10.0, "allocation_info", "role", "m3s");
  add_offer(offers, "A", "a", res);
  ck_assert_int_eq(place(offers, p, 1, NULL, &spread1, out, used), 1);
  rj = m3s_place_resources_json(offers, &out[0]);
  ck_assert_uint_eq(json_array_size(rj), 3);
  ck_assert_uint_eq(json_array_size(json_object_get(json_array_get(rj, 0), "reservations")), 1);
  ck_assert_ptr_null(json_object_get(json_array_get(rj, 1), "reservations"));
  ck_assert_ptr_null(json_object_get(json_array_get(rj, 1), "role"));
  json_decref(rj);
  json_decref(offers);
}
END_TEST

START_TEST(other_role_ignored)
{
  json_t *offers = json_array();
  m3s_pending_t big[] = { task("a", 2, 2, 100, 0, 0, 0, NULL) };
  m3s_pending_t small[] = { task("a", 2, 1, 100, 0, 0, 0, NULL) };
  m3s_pending_t port[] = { task("a", 2, 1, 100, 0, 1, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[1];
  const int be[] = { 31000, 31010 };

  add_offer(offers, "A", "a", json_pack("[o,o,o,o]", scalar("cpus", 4, "*", "other"),
                                        scalar("cpus", 1, "*", "m3s"), scalar("mem", 1000, "*", "m3s"),
                                        ports("other", 1, be)));
  ck_assert_int_eq(place(offers, big, 1, NULL, &spread1, out, used), 0);
  ck_assert_int_eq(place(offers, port, 1, NULL, &spread1, out, used), 0);
  ck_assert_int_eq(place(offers, small, 1, NULL, &spread1, out, used), 1);
  ck_assert_uint_eq(out[0].n_slices, 2);
  ck_assert_uint_eq(out[0].slices[0].resource_index, 1);
  json_decref(offers);
}
END_TEST

START_TEST(unusable_entries_ignored)
{
  json_t *offers = json_array();
  json_t *res = json_pack("[o,o,o,o]", scalar("cpus", 4, "*", "m3s"), scalar("mem", 1000, "*", "m3s"),
                          scalar("disk", 5000, "*", "m3s"), scalar("cpus", 4, "*", "m3s"));
  m3s_pending_t disk[] = { task("a", 2, 1, 100, 1, 0, 0, NULL) };
  m3s_pending_t cpus[] = { task("a", 2, 5, 100, 0, 0, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[1];

  /* A mount disk and revocable cpus are not carved. */
  json_object_set_new(json_array_get(res, 2), "disk", json_pack("{s:{s:s}}", "source", "type", "MOUNT"));
  json_object_set_new(json_array_get(res, 3), "revocable", json_object());
  add_offer(offers, "A", "a", res);
  ck_assert_int_eq(place(offers, disk, 1, NULL, &spread1, out, used), 0);
  ck_assert_int_eq(place(offers, cpus, 1, NULL, &spread1, out, used), 0);
  json_decref(offers);
}
END_TEST

START_TEST(no_allocation_info)
{
  json_t *offers = json_array();
  m3s_pending_t p[] = { task("a", 2, 1, 100, 0, 0, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[1];

  /* A framework without MULTI_ROLE gets no allocation_info at all. */
  add_offer(offers, "A", "a", json_pack("[o,o]", scalar("cpus", 4, "*", NULL), scalar("mem", 1000, "*", NULL)));
  ck_assert_int_eq(m3s_place(offers, p, 1, NULL, &spread1, out, used), 1);
  ck_assert(used[0]);
  json_decref(offers);
}
END_TEST

START_TEST(hostname_constraint)
{
  json_t *offers = json_array();
  m3s_pending_t p[] = { task("ds", 0, 1, 100, 0, 1, 0, "host-c"),
                        task("srv", 1, 1, 100, 0, 1, 0, "nowhere"),
                        task("srv2", 1, 1, 100, 0, 1, 0, "HOST-A") };
  m3s_assignment_t out[3];
  bool used[3];

  add_plain(offers, "A", "host-a", 4, 1000, 0, 31000, 31010);
  add_plain(offers, "B", "host-b", 4, 1000, 0, 31000, 31010);
  add_plain(offers, "C", "host-c", 4, 1000, 0, 31000, 31010);
  /* Exact match, as the original (the constraint is lower-cased before). */
  ck_assert_int_eq(place(offers, p, 3, NULL, &spread1, out, used), 1);
  ck_assert_str_eq(out[0].hostname, "host-c");
  ck_assert_str_eq(out[0].agent_id, "C");
  ck_assert(!used[0] && !used[1] && used[2]);
  json_decref(offers);
}
END_TEST

START_TEST(spread_with_running)
{
  json_t *offers = json_array();
  m3s_pending_t p[] = { task("a1", 2, 1, 100, 0, 1, 0, NULL), task("a2", 2, 1, 100, 0, 1, 0, NULL),
                        task("a3", 2, 1, 100, 0, 1, 0, NULL), task("s1", 1, 1, 100, 0, 1, 0, NULL) };
  m3s_running_task_t rt[] = { { "host-a", 2, 1 }, { "B", 1, 1 }, { "C", 2, 0 } };
  m3s_running_t running = { rt, 3 };
  m3s_assignment_t out[4];
  bool used[3];

  add_plain(offers, "A", "host-a", 8, 1000, 0, 31000, 31010);
  add_plain(offers, "B", "host-b", 8, 1000, 0, 31000, 31010);
  add_plain(offers, "C", "host-c", 8, 1000, 0, 31000, 31010);
  /* host-a already runs an agent task: a1 to B, a2 to C, a3 nowhere; the
   * server (other role) still goes, on A (B runs a server). */
  ck_assert_int_eq(place(offers, p, 4, &running, &spread1, out, used), 3);
  ck_assert_str_eq(out[0].agent_id, "B");
  ck_assert_str_eq(out[1].agent_id, "C");
  ck_assert_uint_eq(out[2].pending_index, 3);
  ck_assert_str_eq(out[2].agent_id, "A");

  /* Without the running tasks, all four fit. */
  ck_assert_int_eq(place(offers, p, 4, NULL, &spread1, out, used), 4);
  json_decref(offers);
}
END_TEST

START_TEST(several_on_big_agent)
{
  json_t *offers = json_array();
  m3s_pending_t p[5];
  m3s_placement_opts_t three = { "m3s", 3, 0, 0 };
  m3s_assignment_t out[5];
  bool used[1];
  size_t i;

  for(i = 0; i < 5; i++)
    p[i] = task("a", 2, 2, 2000, 1000, 3, 0, NULL);
  add_plain(offers, "BIG", "big", 64, 65536, 100000, 31000, 32000);
  ck_assert_int_eq(place(offers, p, 5, NULL, &spread1, out, used), 1);
  ck_assert_int_eq(place(offers, p, 5, NULL, &three, out, used), 3);
  ck_assert_int_eq(place(offers, p, 5, NULL, &unlimited, out, used), 5);
  ck_assert_int_eq(out[4].ports[2], 31014);
  json_decref(offers);
}
END_TEST

START_TEST(offers_of_one_agent_combined)
{
  json_t *offers = json_array();
  const int be[] = { 31000, 31000 };
  m3s_pending_t p[] = { task("a", 2, 2, 1500, 0, 1, 0, NULL) };
  m3s_assignment_t out[1];
  bool used[3];

  add_offer(offers, "A", "a", json_pack("[o,o]", scalar("cpus", 1, "*", "m3s"), scalar("mem", 1000, "*", "m3s")));
  add_plain(offers, "B", "b", 1, 1000, 0, 31000, 31000);
  add_offer(offers, "A", "a", json_pack("[o,o,o]", scalar("cpus", 1, "*", "m3s"),
                                        scalar("mem", 1000, "*", "m3s"), ports("m3s", 1, be)));
  ck_assert_int_eq(place(offers, p, 1, NULL, &spread1, out, used), 1);
  ck_assert_str_eq(out[0].agent_id, "A");
  ck_assert_uint_eq(out[0].offer_index, 0);
  ck_assert(used[0] && !used[1] && used[2]);
  json_decref(offers);
}
END_TEST

START_TEST(nothing_fits)
{
  json_t *offers = json_array();
  m3s_pending_t p[] = { task("a", 2, 16, 100, 0, 1, 0, NULL), task("b", 2, 16, 100, 0, 1, 0, NULL),
                        task("c", 1, 1, 100000, 0, 1, 0, NULL) };
  m3s_assignment_t out[3];
  bool used[3];

  add_plain(offers, "A", "a", 8, 1000, 0, 31000, 31010);
  add_plain(offers, "B", "b", 8, 1000, 0, 31000, 31010);
  add_plain(offers, "C", "c", 8, 1000, 0, 31000, 31010);
  ck_assert_int_eq(place(offers, p, 3, NULL, &spread1, out, used), 0);
  ck_assert(!used[0] && !used[1] && !used[2]);
  /* No pending at all, and no offers at all. */
  ck_assert_int_eq(place(offers, NULL, 0, NULL, &spread1, NULL, used), 0);
  ck_assert(!used[0] && !used[1] && !used[2]);
  json_decref(offers);
  offers = json_array();
  ck_assert_int_eq(place(offers, p, 3, NULL, &spread1, out, NULL), 0);
  json_decref(offers);
}
END_TEST

START_TEST(order_respected)
{
  json_t *offers = json_array();
  m3s_pending_t p[] = { task("ds", 0, 1, 1000, 1000, 1, 0, NULL),
                        task("srv", 1, 1, 1000, 1000, 1, 0, NULL),
                        task("ag", 2, 1, 1000, 1000, 1, 0, NULL) };
  m3s_assignment_t out[3];
  bool used[1];

  /* Room for two: the datastore and the server, not the agent. */
  add_plain(offers, "A", "a", 2, 2000, 2000, 31000, 31010);
  ck_assert_int_eq(place(offers, p, 3, NULL, &spread1, out, used), 2);
  ck_assert_uint_eq(out[0].pending_index, 0);
  ck_assert_uint_eq(out[1].pending_index, 1);
  json_decref(offers);
}
END_TEST

START_TEST(bad_arguments)
{
  json_t *offers = json_array(), *obj = json_object();
  m3s_placement_opts_t norole = { NULL, 1, 0, 0 };
  m3s_pending_t neg[] = { task("a", 2, -1, 1, 0, 0, 0, NULL) };
  m3s_pending_t nan_[] = { task("a", 2, 1, NAN, 0, 0, 0, NULL) };
  m3s_pending_t role[] = { task("a", M3S_PLACE_MAX_ROLES, 1, 1, 0, 0, 0, NULL) };
  m3s_pending_t many[] = { task("a", 2, 1, 1, 0, M3S_PLACE_MAX_PORTS, 1, NULL) };
  m3s_pending_t port[] = { task("a", 2, 1, 1, 0, 0, 70000, NULL) };
  m3s_pending_t ok[] = { task("a", 2, 1, 1, 0, 0, 0, NULL) };
  m3s_running_task_t rt[] = { { "A", -1, 1 } };
  m3s_running_t running = { rt, 1 };
  m3s_assignment_t out[1];
  bool used[2];

  add_plain(offers, "A", "a", 8, 1000, 0, 31000, 31010);
  ck_assert_int_eq(m3s_place(obj, ok, 1, NULL, &spread1, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, ok, 1, NULL, &norole, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, ok, 1, NULL, NULL, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, ok, 1, NULL, &spread1, out, NULL), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, neg, 1, NULL, &spread1, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, nan_, 1, NULL, &spread1, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, role, 1, NULL, &spread1, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, many, 1, NULL, &spread1, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, port, 1, NULL, &spread1, out, used), -EINVAL);
  ck_assert_int_eq(m3s_place(offers, ok, 1, &running, &spread1, out, used), -EINVAL);
  ck_assert(!used[0]);
  ck_assert_int_eq(m3s_place(offers, ok, 1, NULL, &spread1, out, used), 1);
  /* An offer array not checked by mesos_event.c: no agent_id. */
  json_array_append_new(offers, json_pack("{s:s,s:[]}", "hostname", "x", "resources"));
  ck_assert_int_eq(m3s_place(offers, ok, 1, NULL, &spread1, out, used), -EINVAL);
  json_decref(obj);
  json_decref(offers);
}
END_TEST

static double cpu_ms(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

START_TEST(many_offers_many_pending)
{
  enum { N_OFFERS = 2000, N_PENDING = 1000 };
  json_t *offers = json_array();
  m3s_pending_t *p = calloc(N_PENDING + 2, sizeof(*p));
  m3s_assignment_t *out = calloc(N_PENDING + 2, sizeof(*out));
  bool *used = calloc(N_OFFERS, sizeof(*used));
  bool *agent_seen = calloc(N_OFFERS, sizeof(*agent_seen));
  char id[32], host[32];
  double t0, t1;
  size_t i, n_used = 0;
  int n;

  for(i = 0; i < N_OFFERS; i++) {
    snprintf(id, sizeof(id), "S%zu", i);
    snprintf(host, sizeof(host), "agent-%zu", i);
    add_plain(offers, id, host, 8, 16384, 100000, 31000, 32000);
  }
  p[0] = task("ds", 0, 1, 2000, 10000, 1, 0, NULL);
  p[1] = task("srv", 1, 2, 4000, 10000, 3, 6443, NULL); /* no offer has 6443 */
  for(i = 2; i < N_PENDING + 2; i++)
    p[i] = task("ag", 2, 2, 2000, 10000, 3, 0, NULL);
  t0 = cpu_ms();
  n = m3s_place(offers, p, N_PENDING + 2, NULL, &spread1, out, used);
  t1 = cpu_ms();
  printf("placement: %d of %d tasks on %d offers in %.2f ms CPU\n", n, N_PENDING + 2, N_OFFERS, t1 - t0);
  ck_assert_int_eq(n, N_PENDING + 1);
  ck_assert_uint_eq(out[0].pending_index, 0);
  ck_assert_uint_eq(out[1].pending_index, 2);
  for(i = 1; i < (size_t)n; i++) {
    size_t a = (size_t)atol(out[i].agent_id + 1);

    ck_assert_msg(!agent_seen[a], "two agent tasks on %s", out[i].agent_id);
    agent_seen[a] = true;
  }
  for(i = 0; i < N_OFFERS; i++)
    n_used += used[i];
  ck_assert_uint_eq(n_used, (size_t)n - 1 + !agent_seen[atol(out[0].agent_id + 1)]);
  check_sound(offers, p, out, n, used);
  free(p);
  free(out);
  free(used);
  free(agent_seen);
  json_decref(offers);
}
END_TEST

static Suite *placement_suite(void)
{
  Suite *s = suite_create("placement");
  TCase *tc = tcase_create("core");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, capture_one_agent);
  tcase_add_test(tc, capture_two_agents);
  tcase_add_test(tc, fit_scalars_and_disk);
  tcase_add_test(tc, fit_thousandths);
  tcase_add_test(tc, port_ranges);
  tcase_add_test(tc, any_ports_bounded);
  tcase_add_test(tc, fixed_port_not_reused_as_any);
  tcase_add_test(tc, reserved_and_unreserved_summed);
  tcase_add_test(tc, refinement_reservations);
  tcase_add_test(tc, other_role_ignored);
  tcase_add_test(tc, unusable_entries_ignored);
  tcase_add_test(tc, no_allocation_info);
  tcase_add_test(tc, hostname_constraint);
  tcase_add_test(tc, spread_with_running);
  tcase_add_test(tc, several_on_big_agent);
  tcase_add_test(tc, offers_of_one_agent_combined);
  tcase_add_test(tc, nothing_fits);
  tcase_add_test(tc, order_respected);
  tcase_add_test(tc, bad_arguments);
  tcase_add_test(tc, many_offers_many_pending);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return m3s_check_run_data(argc, argv, placement_suite());
}
