/* Cost of placing one big OFFERS event, against parsing it alone.
 *
 * The event is the simulator's shape: 2,000 agents (agent-N), each offering
 * cpus 8, mem 16384, disk 100000 and ports [31000-32000], all unreserved
 * and allocated to role m3s. Per event we measure, as process CPU time:
 *   (a) json_loads of the text, then json_decref;
 *   (b) the same plus m3s_place of 1,000 pending K3s agents (2 cpus, 2000
 *       mem, 10000 disk, 3 ports, at most one per agent) and the LAUNCH
 *       resources array of every assignment;
 * and print the medians and (b)/(a), which should stay within 2.
 *
 * Usage: placement_bench [repetitions]   (default 51)
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "m3s/placement.h"

#define N_AGENTS 2000
#define N_PENDING 1000
#define FWID "82317765-6c51-4b5d-9b5d-eb9f972e545e"

static double cpu_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;

  return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
  qsort(v, n, sizeof(*v), cmp_double);
  return v[n / 2];
}

/* The event text, compact as the master sends it; NULL out of memory. */
static char *event_text(void)
{
  json_t *offers = json_array(), *ev;
  char *text;
  size_t i;

  for(i = 0; offers && i < N_AGENTS; i++) {
    char id[64], agent[64], host[32];

    snprintf(id, sizeof(id), FWID "-O%zu", i);
    snprintf(agent, sizeof(agent), FWID "-S%zu", i);
    snprintf(host, sizeof(host), "agent-%zu", i);
    if(json_array_append_new(offers, json_pack(
         "{s:{s:s},s:{s:s},s:{s:s},s:s,"
         "s:{s:s,s:{s:s,s:s,s:i},s:s},"
         "s:[{s:s,s:s,s:{s:[{s:i,s:i}]},s:s,s:{s:s}},"
         "{s:s,s:s,s:{s:f},s:s,s:{s:s}},"
         "{s:s,s:s,s:{s:f},s:s,s:{s:s}},"
         "{s:s,s:s,s:{s:f},s:s,s:{s:s}}],"
         "s:{s:s}}",
         "id", "value", id, "framework_id", "value", FWID "-0000",
         "agent_id", "value", agent, "hostname", host,
         "url", "scheme", "http", "address", "hostname", host, "ip", "10.0.0.1", "port", 5051,
         "path", "/slave(1)",
         "resources",
         "name", "ports", "type", "RANGES", "ranges", "range", "begin", 31000, "end", 32000,
         "role", "*", "allocation_info", "role", "m3s",
         "name", "cpus", "type", "SCALAR", "scalar", "value", 8.0, "role", "*",
         "allocation_info", "role", "m3s",
         "name", "mem", "type", "SCALAR", "scalar", "value", 16384.0, "role", "*",
         "allocation_info", "role", "m3s",
         "name", "disk", "type", "SCALAR", "scalar", "value", 100000.0, "role", "*",
         "allocation_info", "role", "m3s",
         "allocation_info", "role", "m3s")) < 0) {
      json_decref(offers);
      return NULL;
    }
  }
  ev = json_pack("{s:s,s:{s:o}}", "type", "OFFERS", "offers", "offers", offers);
  if(!ev)
    return NULL;
  text = json_dumps(ev, JSON_COMPACT);
  json_decref(ev);
  return text;
}

/* (b) once: returns the number of tasks placed, or a negative errno. */
static int place_event(const char *text, size_t len, const m3s_pending_t *pending,
                       m3s_assignment_t *out, bool *used)
{
  static const m3s_placement_opts_t opts = { "m3s", 1, 0, 0 };
  json_error_t jerr;
  json_t *ev = json_loadb(text, len, 0, &jerr);
  json_t *offers = json_object_get(json_object_get(ev, "offers"), "offers");
  int n, i, rc;

  if(!ev)
    return -EPROTO;
  n = m3s_place(offers, pending, N_PENDING, NULL, &opts, out, used);
  rc = n;
  for(i = 0; i < n; i++) {
    json_t *res = m3s_place_resources_json(offers, &out[i]);

    if(!res) {
      rc = -ENOMEM;
      break;
    }
    json_decref(res);
  }
  json_decref(ev);
  return rc;
}

int main(int argc, char **argv)
{
  size_t reps = argc > 1 ? strtoul(argv[1], NULL, 10) : 51;
  char *text = event_text();
  m3s_pending_t *pending = calloc(N_PENDING, sizeof(*pending));
  m3s_assignment_t *out = calloc(N_PENDING, sizeof(*out));
  bool *used = calloc(N_AGENTS, sizeof(*used));
  double *ta = calloc(reps ? reps : 1, sizeof(*ta));
  double *tb = calloc(reps ? reps : 1, sizeof(*tb));
  size_t i, len;
  double a, b;
  int rc = EXIT_FAILURE;

  if(!text || !pending || !out || !used || !ta || !tb || !reps) {
    fprintf(stderr, "placement_bench: out of memory or zero repetitions\n");
    goto out;
  }
  len = strlen(text);
  for(i = 0; i < N_PENDING; i++) {
    pending[i].task_id = "k3sagent";
    pending[i].role = 2;
    pending[i].cpus = 2;
    pending[i].mem = 2000;
    pending[i].disk = 10000;
    pending[i].n_ports = 3;
  }
  /* Warm up the allocator and caches; check the result once. */
  if(place_event(text, len, pending, out, used) != N_PENDING) {
    fprintf(stderr, "placement_bench: not all %d tasks placed\n", N_PENDING);
    goto out;
  }
  for(i = 0; i < reps; i++) {
    json_error_t jerr;
    double t0 = cpu_ns();
    json_t *ev = json_loadb(text, len, 0, &jerr);

    json_decref(ev);
    ta[i] = cpu_ns() - t0;
    if(!ev)
      goto out;
    t0 = cpu_ns();
    if(place_event(text, len, pending, out, used) != N_PENDING)
      goto out;
    tb[i] = cpu_ns() - t0;
  }
  a = median(ta, reps);
  b = median(tb, reps);
  printf("event: %d offers, %zu bytes; %d pending agents; %zu repetitions\n",
         N_AGENTS, len, N_PENDING, reps);
  printf("(a) parse only:                    %8.3f ms CPU per event (median)\n", a / 1e6);
  printf("(b) parse + place + resources JSON: %8.3f ms CPU per event (median)\n", b / 1e6);
  printf("ratio (b)/(a): %.2f (target <= 2.00)\n", b / a);
  rc = EXIT_SUCCESS;

out:
  free(text);
  free(pending);
  free(out);
  free(used);
  free(ta);
  free(tb);
  return rc;
}
