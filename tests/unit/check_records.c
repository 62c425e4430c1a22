/* Unit tests of the Redis record codecs (src/actors/records.c).
 *
 * The Go-format records in tests/data/records/ were written by hand from the
 * behaviour spec (§8.2, §8.4), not produced by our encoder, so they check
 * compatibility with the original rather than self-consistency. Fork mode
 * and CK_FORK=no both work (the sanitizer run uses the latter, so leaks are
 * seen).
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check_data.h"
#include "m3s/config.h"
#include "m3s/records.h"
#include "m3s/xalloc.h"
#include "check_main.h"

/* ---- helpers ---- */

static char err[512];

/* The record samples live in <data dir>/records/. */
static char *read_data(const char *name, size_t *len)
{
  char rel[512];
  snprintf(rel, sizeof(rel), "records/%s", name);
  return read_file(rel, len);
}

static json_t *parse(const char *s)
{
  json_error_t je;
  json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
  ck_assert_msg(j != NULL, "test JSON does not parse: %s", je.text);
  return j;
}

/* Asserts that the JSON texts a and b are equal as JSON values. */
static void assert_json_equal(const char *a, const char *b)
{
  json_t *ja = parse(a), *jb = parse(b);
  /* Check's messages are size-limited: show the beginnings. */
  ck_assert_msg(json_equal(ja, jb), "JSON differs:\n%.400s\n%.400s", a, b);
  json_decref(ja);
  json_decref(jb);
}

static int task_from(const char *s, m3s_task_record_t *r)
{
  memset(err, 'X', sizeof(err) - 1);   /* garbage: decode must write it */
  err[sizeof(err) - 1] = '\0';
  return m3s_task_record_from_json(s, strlen(s), r, err, sizeof(err));
}

static int fw_from(const char *s, m3s_fw_config_record_t *r)
{
  memset(err, 'X', sizeof(err) - 1);
  err[sizeof(err) - 1] = '\0';
  return m3s_fw_config_record_from_json(s, strlen(s), r, err, sizeof(err));
}

static const char *s0(const char *s)
{
  return s ? s : "";
}

static void assert_extra_equal(const json_t *a, const json_t *b)
{
  /* NULL and {} both mean "nothing unmodelled". */
  if((!a || json_object_size(a) == 0) && (!b || json_object_size(b) == 0))
    return;
  ck_assert_msg(a && b && json_equal((json_t *)a, (json_t *)b),
                "extra differs");
}

static void assert_task_equal(const m3s_task_record_t *a,
                              const m3s_task_record_t *b)
{
  ck_assert_str_eq(s0(a->task_id), s0(b->task_id));
  ck_assert_str_eq(s0(a->task_name), s0(b->task_name));
  ck_assert_int_eq(a->role, b->role);
  ck_assert_str_eq(s0(a->state), s0(b->state));
  /* "" and the zero time are the same time. */
  ck_assert_str_eq(*s0(a->state_time) ? a->state_time : M3S_ZERO_TIME,
                   *s0(b->state_time) ? b->state_time : M3S_ZERO_TIME);
  ck_assert_str_eq(s0(a->agent_id), s0(b->agent_id));
  ck_assert_str_eq(s0(a->hostname), s0(b->hostname));
  ck_assert_str_eq(s0(a->container_image), s0(b->container_image));
  ck_assert(a->cpu == b->cpu);
  ck_assert(a->cpu_limit == b->cpu_limit);
  ck_assert(a->memory == b->memory);
  ck_assert(a->memory_limit == b->memory_limit);
  ck_assert(a->disk == b->disk);
  ck_assert_int_eq(a->instances, b->instances);
  ck_assert_int_eq(a->health, b->health);
  ck_assert_str_eq(s0(a->restart), s0(b->restart));
  ck_assert_str_eq(s0(a->spec_digest), s0(b->spec_digest));
  ck_assert_uint_eq(a->n_port_mappings, b->n_port_mappings);
  for(size_t i = 0; i < a->n_port_mappings; i++) {
    ck_assert_int_eq(a->port_mappings[i].host_port, b->port_mappings[i].host_port);
    ck_assert_int_eq(a->port_mappings[i].container_port,
                     b->port_mappings[i].container_port);
    ck_assert_str_eq(s0(a->port_mappings[i].protocol),
                     s0(b->port_mappings[i].protocol));
  }
  ck_assert_uint_eq(a->n_discovery_ports, b->n_discovery_ports);
  for(size_t i = 0; i < a->n_discovery_ports; i++) {
    ck_assert_int_eq(a->discovery_ports[i].number, b->discovery_ports[i].number);
    ck_assert_str_eq(s0(a->discovery_ports[i].name), s0(b->discovery_ports[i].name));
    ck_assert_str_eq(s0(a->discovery_ports[i].protocol),
                     s0(b->discovery_ports[i].protocol));
  }
  ck_assert_uint_eq(a->n_network_infos, b->n_network_infos);
  for(size_t i = 0; i < a->n_network_infos; i++) {
    const m3s_network_info_t *x = &a->network_infos[i], *y = &b->network_infos[i];
    ck_assert_str_eq(s0(x->name), s0(y->name));
    ck_assert_uint_eq(x->n_ip_addresses, y->n_ip_addresses);
    for(size_t j = 0; j < x->n_ip_addresses; j++)
      ck_assert_str_eq(s0(x->ip_addresses[j]), s0(y->ip_addresses[j]));
  }
  assert_extra_equal(a->extra, b->extra);
}

/* Decodes file, checks that encoding gives the same JSON value and that the
 * decoded struct survives encode + decode; *r keeps the first decode. */
static void load_task_file(const char *name, m3s_task_record_t *r)
{
  size_t len;
  char *text = read_data(name, &len);
  ck_assert_msg(m3s_task_record_from_json(text, len, r, err, sizeof(err)) == 0,
                "%s: %s", name, err);
  char *again = m3s_task_record_to_json(r);
  ck_assert_ptr_nonnull(again);
  assert_json_equal(text, again);
  m3s_task_record_t r2;
  ck_assert_int_eq(task_from(again, &r2), 0);
  assert_task_equal(r, &r2);
  m3s_task_record_free(&r2);
  free(again);
  free(text);
}

/* ---- task records in the original's format ---- */

START_TEST(test_task_go_agent_running)
{
  m3s_task_record_t r;
  struct timespec ts;

  load_task_file("task_agent_running.json", &r);
  ck_assert_str_eq(r.task_id, "3f2a9c1e-7b44-0d2e-91aa-5c0e8d7f6b21");
  ck_assert_str_eq(r.task_name, "m3sdev:agent");
  ck_assert_int_eq(r.role, M3S_ROLE_AGENT);
  ck_assert_str_eq(r.state, "TASK_RUNNING");
  ck_assert_str_eq(r.state_time, "2024-05-02T09:14:07.123456789+02:00");
  ck_assert_int_eq(m3s_record_parse_time(r.state_time, &ts), 0);
  ck_assert_int_eq(ts.tv_sec, 1714634047);    /* 07:14:07Z */
  ck_assert_int_eq(ts.tv_nsec, 123456789);
  ck_assert_str_eq(r.agent_id, "6c2e3f0a-9d1b-4c77-8e21-4b5a6d7c8e9f-S3");
  ck_assert_str_eq(r.hostname, "m3sdevagent.local");
  ck_assert_str_eq(r.container_image, "avhost/ubuntu-m3s:22.04-3");
  ck_assert(r.cpu == 2.0);
  ck_assert(r.cpu_limit == 2.5);
  ck_assert(r.memory == 2000.0);
  ck_assert(r.memory_limit == 2000.0);
  ck_assert(r.disk == 10000.0);
  ck_assert_int_eq(r.instances, 3);
  ck_assert(!r.health);
  ck_assert_str_eq(r.restart, "");

  ck_assert_uint_eq(r.n_port_mappings, 2);
  ck_assert_int_eq(r.port_mappings[0].host_port, 31001);
  ck_assert_int_eq(r.port_mappings[0].container_port, 80);
  ck_assert_str_eq(r.port_mappings[0].protocol, "tcp");
  ck_assert_int_eq(r.port_mappings[1].host_port, 31002);
  ck_assert_int_eq(r.port_mappings[1].container_port, 443);

  ck_assert_uint_eq(r.n_discovery_ports, 2);
  ck_assert_int_eq(r.discovery_ports[0].number, 31001);
  ck_assert_str_eq(r.discovery_ports[0].name, "m3sdev-http");
  ck_assert_str_eq(r.discovery_ports[0].protocol, "http");
  ck_assert_int_eq(r.discovery_ports[1].number, 31002);
  ck_assert_str_eq(r.discovery_ports[1].name, "m3sdev-https");
  ck_assert_str_eq(r.discovery_ports[1].protocol, "https");

  ck_assert_uint_eq(r.n_network_infos, 1);
  ck_assert_str_eq(r.network_infos[0].name, "weave");
  ck_assert_uint_eq(r.network_infos[0].n_ip_addresses, 1);
  ck_assert_str_eq(r.network_infos[0].ip_addresses[0], "10.32.0.5");

  /* Unmodelled fields are in extra, modelled ones are not. */
  json_t *x = r.extra;
  ck_assert_ptr_nonnull(x);
  ck_assert_str_eq(json_string_value(json_object_get(
                     json_object_get(x, "MesosAgent"), "hostname")),
                   "worker-3.example.net");
  /* Labels and Health are null, the encoder's default: not kept, and the
   * file round trip above shows they are written back as null. */
  ck_assert_ptr_null(json_object_get(x, "Labels"));
  ck_assert_ptr_null(json_object_get(x, "Health"));
  ck_assert(json_is_true(json_object_get(x, "privileged")));
  ck_assert_str_eq(json_string_value(json_object_get(x, "container_type")), "DOCKER");
  ck_assert_uint_eq(json_array_size(json_object_get(x, "arguments")), 5);
  ck_assert_uint_eq(json_array_size(json_object_get(x, "parameters")), 4);
  ck_assert_ptr_nonnull(json_object_get(x, "uris"));
  ck_assert_ptr_nonnull(json_object_get(x, "environment"));
  json_t *disc = json_object_get(x, "discovery");
  ck_assert_int_eq(json_integer_value(json_object_get(disc, "visibility")), 2);
  ck_assert_str_eq(json_string_value(json_object_get(disc, "name")), "m3sdev:agent");
  ck_assert_ptr_null(json_object_get(disc, "ports"));
  json_t *ip0 = json_array_get(json_object_get(json_array_get(
                  json_object_get(x, "networkinfo"), 0), "ip_addresses"), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(ip0, "protocol")), 1);
  ck_assert_ptr_null(json_object_get(ip0, "ip_address"));
  static const char *const modelled[] = {
    "TaskID", "task_name", "State", "StateTime", "Agent", "hostname",
    "container_image", "CPU", "CPULimit", "Memory", "MemoryLimit", "Disk",
    "Instances", "EnableHealthCheck", "Restart", "port_mappings", NULL
  };
  for(const char *const *m = modelled; *m; m++)
    ck_assert_msg(json_object_get(x, *m) == NULL, "%s left in extra", *m);

  /* A change to a modelled field shows, the rest stays. */
  free(r.state);
  r.state = m3s_xstrdup("TASK_KILLED");
  r.discovery_ports[1].number = 31500;
  char *s = m3s_task_record_to_json(&r);
  json_t *j = parse(s);
  ck_assert_str_eq(json_string_value(json_object_get(j, "State")), "TASK_KILLED");
  json_t *p1 = json_array_get(json_object_get(json_object_get(
                 json_object_get(j, "discovery"), "ports"), "ports"), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(p1, "number")), 31500);
  ck_assert_int_eq(json_integer_value(json_object_get(
                     json_object_get(j, "discovery"), "visibility")), 2);
  ck_assert_int_eq(json_integer_value(json_object_get(
                     json_object_get(json_object_get(j, "MesosAgent"),
                                     "resources"), "cpus")), 8);
  json_decref(j);
  free(s);
  m3s_task_record_free(&r);
  ck_assert_ptr_null(r.extra);
}
END_TEST

START_TEST(test_task_go_datastore_new)
{
  m3s_task_record_t r;
  struct timespec ts;

  load_task_file("task_datastore_new.json", &r);
  ck_assert_str_eq(r.task_id, "0c9d4e2a-51f3-8a10-2bb7-e4f0c3d2a1b9");
  ck_assert_str_eq(r.task_name, "m3s:datastore");
  ck_assert_int_eq(r.role, M3S_ROLE_DATASTORE);
  ck_assert_str_eq(r.state, "__NEW");
  ck_assert_str_eq(r.state_time, M3S_ZERO_TIME);
  ck_assert_int_eq(m3s_record_parse_time(r.state_time, &ts), 0);
  ck_assert_int_eq(ts.tv_sec, -62135596800LL);
  ck_assert_int_eq(ts.tv_nsec, 0);
  ck_assert_str_eq(r.agent_id, "");
  ck_assert_str_eq(r.hostname, "m3sdatastore.local");
  ck_assert_str_eq(r.container_image, "mariadb:10.11");
  ck_assert(r.cpu == 0.1);
  ck_assert(r.cpu_limit == 0.1);
  ck_assert(r.memory == 1200.0);
  ck_assert(r.disk == 5000.0);
  ck_assert_int_eq(r.instances, 1);
  ck_assert(r.health);
  ck_assert_uint_eq(r.n_port_mappings, 1);
  ck_assert_int_eq(r.port_mappings[0].host_port, 31005);
  ck_assert_int_eq(r.port_mappings[0].container_port, 3306);
  ck_assert_uint_eq(r.n_discovery_ports, 1);
  ck_assert_str_eq(r.discovery_ports[0].name, "datastore");
  ck_assert_uint_eq(r.n_network_infos, 0);

  json_t *vol = json_array_get(json_object_get(r.extra, "volumes"), 0);
  ck_assert_int_eq(json_integer_value(json_object_get(vol, "mode")), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(
                     json_object_get(vol, "source"), "type")), 1);
  json_t *health = json_object_get(r.extra, "Health");
  ck_assert_str_eq(json_string_value(json_object_get(
                     json_object_get(health, "command"), "value")), "mysqladmin");
  ck_assert_int_eq(json_integer_value(json_object_get(health, "delay_seconds")), 15);
  m3s_task_record_free(&r);
}
END_TEST

/* ---- task records built by us ---- */

static void fill_task(m3s_task_record_t *r)
{
  memset(r, 0, sizeof(*r));
  r->task_id = m3s_xstrdup("a1b2c3d4-0000-1111-2222-333344445555");
  r->task_name = m3s_xstrdup("m3s:server");
  r->role = M3S_ROLE_SERVER;
  r->state = m3s_xstrdup("TASK_STAGING");
  r->state_time = m3s_xstrdup("2024-01-02T03:04:05.5Z");
  r->agent_id = m3s_xstrdup("agent-S1");
  r->hostname = m3s_xstrdup("m3sserver.local");
  r->container_image = m3s_xstrdup("avhost/ubuntu-m3s:22.04-3");
  r->cpu = 0.25;
  r->cpu_limit = 1;
  r->memory = 4096.5;
  r->memory_limit = 8192;
  r->disk = 20000;
  r->instances = 1;
  r->health = true;
  r->restart = m3s_xstrdup("");
  r->spec_digest = m3s_xstrdup("");
  r->n_port_mappings = 2;
  r->port_mappings = m3s_xcalloc(2, sizeof(*r->port_mappings));
  r->port_mappings[0] = (m3s_port_mapping_t){ 31000, 6443, m3s_xstrdup("tcp") };
  r->port_mappings[1] = (m3s_port_mapping_t){ 31003, 8080, m3s_xstrdup("tcp") };
  r->n_discovery_ports = 2;
  r->discovery_ports = m3s_xcalloc(2, sizeof(*r->discovery_ports));
  r->discovery_ports[0] = (m3s_discovery_port_t){ 31000, m3s_xstrdup("kubernetes"),
                                                  m3s_xstrdup("tcp") };
  r->discovery_ports[1] = (m3s_discovery_port_t){ 31003, m3s_xstrdup("http"),
                                                  m3s_xstrdup("tcp") };
  r->n_network_infos = 1;
  r->network_infos = m3s_xcalloc(1, sizeof(*r->network_infos));
  r->network_infos[0].name = m3s_xstrdup("mini");
  r->network_infos[0].n_ip_addresses = 2;
  r->network_infos[0].ip_addresses = m3s_xcalloc(2, sizeof(char *));
  r->network_infos[0].ip_addresses[0] = m3s_xstrdup("172.18.0.3");
  r->network_infos[0].ip_addresses[1] = m3s_xstrdup("fd00::3");
}

START_TEST(test_task_struct_roundtrip)
{
  m3s_task_record_t a, b;

  fill_task(&a);
  char *s = m3s_task_record_to_json(&a);
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(task_from(s, &b), 0);
  assert_task_equal(&a, &b);
  ck_assert_ptr_null(b.extra);     /* nothing unmodelled was invented */
  /* and JSON -> struct -> JSON is stable */
  char *s2 = m3s_task_record_to_json(&b);
  assert_json_equal(s, s2);

  json_t *j = parse(s);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "CPULimit")), 1);
  ck_assert(json_is_integer(json_object_get(j, "Disk")));    /* Go: 20000 */
  ck_assert(json_real_value(json_object_get(j, "Memory")) == 4096.5);
  ck_assert(json_is_null(json_object_get(j, "Labels")));
  ck_assert(json_is_null(json_object_get(j, "MesosAgent")));
  ck_assert(json_is_null(json_object_get(j, "Health")));
  ck_assert_str_eq(json_string_value(json_object_get(j, "PullPolicy")), "");
  ck_assert_str_eq(json_string_value(json_object_get(j, "task_name")), "m3s:server");
  json_t *ip1 = json_array_get(json_object_get(json_array_get(
                  json_object_get(j, "networkinfo"), 0), "ip_addresses"), 1);
  ck_assert_str_eq(json_string_value(json_object_get(ip1, "ip_address")), "fd00::3");
  json_decref(j);
  free(s);
  free(s2);
  m3s_task_record_free(&a);
  m3s_task_record_free(&b);
}
END_TEST


/* spec_digest (m3s only): written when known, read back, omitted when
 * empty; a value of another type stays as it was. */
START_TEST(test_task_spec_digest)
{
  m3s_task_record_t a, b;

  fill_task(&a);
  free(a.spec_digest);
  a.spec_digest = strdup("00112233445566778899aabbccddeeff");
  char *s = m3s_task_record_to_json(&a);
  ck_assert_int_eq(task_from(s, &b), 0);
  ck_assert_str_eq(b.spec_digest, "00112233445566778899aabbccddeeff");
  ck_assert_ptr_null(b.extra);
  char *s2 = m3s_task_record_to_json(&b);
  assert_json_equal(s, s2);
  free(s);
  free(s2);
  m3s_task_record_free(&b);
  free(a.spec_digest);
  a.spec_digest = strdup("");
  s = m3s_task_record_to_json(&a);
  json_t *j = parse(s);
  ck_assert_ptr_null(json_object_get(j, "spec_digest"));
  json_decref(j);
  free(s);
  m3s_task_record_free(&a);
  /* Not a string: unknown, and kept as is. */
  static const char odd[] = "{\"TaskID\":\"t\",\"task_name\":\"m3s:agent\",\"spec_digest\":42}";
  ck_assert_int_eq(task_from(odd, &b), 0);
  ck_assert_str_eq(b.spec_digest, "");
  s = m3s_task_record_to_json(&b);
  j = parse(s);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "spec_digest")), 42);
  json_decref(j);
  free(s);
  m3s_task_record_free(&b);
}
END_TEST

/* Tagged fields are omitted when empty, untagged ones always written. */
START_TEST(test_task_omission)
{
  m3s_task_record_t r;
  memset(&r, 0, sizeof(r));
  char *s = m3s_task_record_to_json(&r);
  ck_assert_ptr_nonnull(s);
  assert_json_equal(s,
    "{\"Restart\":\"\",\"TaskID\":\"\",\"Memory\":0,\"MemoryLimit\":0,"
    "\"CPU\":0,\"CPULimit\":0,\"Disk\":0,\"Agent\":\"\",\"Labels\":null,"
    "\"State\":\"\",\"StateTime\":\"0001-01-01T00:00:00Z\",\"Instances\":0,"
    "\"PullPolicy\":\"\",\"MesosAgent\":null,\"EnableHealthCheck\":false,"
    "\"Health\":null}");
  /* Untagged first appear in Go's declaration order. */
  ck_assert_ptr_nonnull(strstr(s, "{\"Restart\":\"\",\"TaskID\":\"\",\"Memory\""));
  free(s);

  /* A minimal record (Go fills the rest with zero values). */
  ck_assert_int_eq(task_from("{\"TaskID\":\"x-1\",\"State\":null}", &r), 0);
  ck_assert_str_eq(r.task_id, "x-1");
  ck_assert_str_eq(r.state, "");
  ck_assert_str_eq(r.task_name, "");
  ck_assert_int_eq(r.role, M3S_ROLE_NONE);
  ck_assert_ptr_null(r.extra);
  m3s_task_record_free(&r);

  /* Not finite: nothing to write. */
  memset(&r, 0, sizeof(r));
  r.cpu = 1.0 / 0.0;
  ck_assert_ptr_null(m3s_task_record_to_json(&r));
}
END_TEST

/* Members of array items that the struct does not model stay by position. */
static const char item_leftovers_rec[] =
    "{\"networkinfo\":[{\"name\":\"\",\"groups\":[\"g\"],"
    "\"ip_addresses\":[{\"protocol\":2,\"ip_address\":\"fd00::9\"},{\"protocol\":1}]}],"
    "\"port_mappings\":[{\"host_port\":1,\"container_port\":2}],"
    "\"discovery\":{\"ports\":{\"ports\":[{\"number\":5,\"visibility\":2,"
    "\"labels\":{\"labels\":[{\"key\":\"k\"}]}},{\"number\":6,\"name\":\"n\"}]}},"
    "\"Restart\":\"\",\"TaskID\":\"\",\"Memory\":0,\"MemoryLimit\":0,"
    "\"CPU\":0,\"CPULimit\":0,\"Disk\":0,\"Agent\":\"\",\"Labels\":[{\"key\":\"a\",\"value\":\"b\"}],"
    "\"State\":\"\",\"StateTime\":\"0001-01-01T00:00:00Z\",\"Instances\":0,"
    "\"PullPolicy\":\"Always\",\"MesosAgent\":null,\"EnableHealthCheck\":false,"
    "\"Health\":null,\"NewGoField\":42}";

START_TEST(test_task_item_leftovers)
{
  m3s_task_record_t r;

  ck_assert_msg(task_from(item_leftovers_rec, &r) == 0, "%s", err);
  ck_assert_uint_eq(r.n_network_infos, 1);
  ck_assert_str_eq(r.network_infos[0].name, "");
  ck_assert_uint_eq(r.network_infos[0].n_ip_addresses, 2);
  ck_assert_str_eq(r.network_infos[0].ip_addresses[0], "fd00::9");
  ck_assert_str_eq(r.network_infos[0].ip_addresses[1], "");
  ck_assert_str_eq(r.port_mappings[0].protocol, "");
  ck_assert_uint_eq(r.n_discovery_ports, 2);
  ck_assert_str_eq(r.discovery_ports[0].name, "");
  ck_assert_str_eq(r.discovery_ports[1].name, "n");
  ck_assert_ptr_null(json_object_get(r.extra, "port_mappings"));
  char *s = m3s_task_record_to_json(&r);
  assert_json_equal(item_leftovers_rec, s);
  free(s);

  /* Fewer items than leftovers: the struct decides the length. */
  r.n_discovery_ports = 1;
  free(r.discovery_ports[1].name);
  free(r.discovery_ports[1].protocol);
  s = m3s_task_record_to_json(&r);
  json_t *j = parse(s);
  json_t *ports = json_object_get(json_object_get(json_object_get(j, "discovery"),
                                                  "ports"), "ports");
  ck_assert_uint_eq(json_array_size(ports), 1);
  ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(ports, 0),
                                                      "visibility")), 2);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "NewGoField")), 42);
  json_decref(j);
  free(s);
  m3s_task_record_free(&r);
}
END_TEST

static const struct {
  const char *json;
  const char *expect;          /* substring of the error line */
} bad_tasks[] = {
  { "not json", "task record: not JSON" },
  { "", "task record: not JSON" },
  { "{\"CPU\":1", "task record: not JSON" },
  { "[1,2]", "task record: not a JSON object" },
  { "\"m3s:agent\"", "task record: not a JSON object" },
  { "null", "task record: not a JSON object" },
  { "{\"CPU\":\"x\"}", "task record: CPU is not a number" },
  { "{\"Memory\":true}", "task record: Memory is not a number" },
  { "{\"TaskID\":5}", "task record: TaskID is not a string" },
  { "{\"task_name\":[]}", "task record: task_name is not a string" },
  { "{\"Instances\":1.5}", "task record: Instances is not an integer" },
  { "{\"Instances\":99999999999}", "task record: Instances is out of range" },
  { "{\"EnableHealthCheck\":\"yes\"}",
    "task record: EnableHealthCheck is not a boolean" },
  { "{\"StateTime\":\"yesterday\"}", "task record: StateTime \"yesterday\" is not" },
  { "{\"StateTime\":\"2024-02-30T00:00:00Z\"}", "task record: StateTime" },
  { "{\"port_mappings\":{}}", "task record: port_mappings is not an array" },
  { "{\"port_mappings\":[1]}", "task record: port_mappings[0] is not an object" },
  { "{\"port_mappings\":[{\"host_port\":1},{\"host_port\":\"x\"}]}",
    "task record: port_mappings[1].host_port is not an integer" },
  { "{\"port_mappings\":[{\"protocol\":6}]}",
    "task record: port_mappings[0].protocol is not a string" },
  { "{\"discovery\":[]}", "task record: discovery is not an object" },
  { "{\"discovery\":{\"ports\":[]}}", "task record: discovery.ports is not an object" },
  { "{\"discovery\":{\"ports\":{\"ports\":[{\"number\":\"a\"}]}}}",
    "task record: discovery.ports.ports[0].number is not an integer" },
  { "{\"networkinfo\":[{\"ip_addresses\":[{\"ip_address\":7}]}]}",
    "task record: networkinfo[0].ip_addresses[0].ip_address is not a string" },
  { "{\"networkinfo\":[{\"ip_addresses\":{}}]}",
    "task record: networkinfo[0].ip_addresses is not an array" },
};

START_TEST(test_task_bad_inputs)
{
  m3s_task_record_t r;
  const char *json = bad_tasks[_i].json;

  ck_assert_int_eq(task_from(json, &r), -EPROTO);
  ck_assert_msg(strstr(err, bad_tasks[_i].expect) == err,
                "for %s: got \"%s\", want \"%s...\"", json, err,
                bad_tasks[_i].expect);
  ck_assert_ptr_null(strchr(err, '\n'));
  /* Nothing left to free. */
  ck_assert_ptr_null(r.task_id);
  ck_assert_ptr_null(r.port_mappings);
  ck_assert_ptr_null(r.extra);
  m3s_task_record_free(&r);
}
END_TEST

START_TEST(test_task_error_buffer)
{
  m3s_task_record_t r;
  char small[8];
  ck_assert_int_eq(m3s_task_record_from_json("{\"CPU\":\"x\"}", 11, &r, small,
                                             sizeof(small)), -EPROTO);
  ck_assert_str_eq(small, "task re");
  ck_assert_int_eq(m3s_task_record_from_json("{\"CPU\":\"x\"}", 11, &r, NULL, 0),
                   -EPROTO);
  ck_assert_int_eq(m3s_task_record_from_json(NULL, 0, &r, NULL, 0), -EPROTO);
  /* len is honoured: no NUL needed, trailing bytes ignored */
  ck_assert_int_eq(m3s_task_record_from_json("{\"TaskID\":\"z\"}garbage", 14, &r,
                                             err, sizeof(err)), 0);
  ck_assert_str_eq(r.task_id, "z");
  m3s_task_record_free(&r);
}
END_TEST

/* ---- the lean decoder of loads ---- */

/* Whether the JSON text t has whitespace outside its strings. */
static bool spaced(const char *t)
{
  bool in_str = false;
  for(; *t; t++) {
    if(in_str && *t == '\\')
      t++;
    else if(*t == '"')
      in_str = !in_str;
    else if(!in_str && strchr(" \t\n\r", *t))
      return true;
  }
  return false;
}

/* m3s_task_record_from_json_pooled gives what the lean decoder gives (*b,
 * its extra text x and host h), with x interned: the same extra whether
 * the pool already holds its members or not. */
static void assert_pooled_same(const char *text, size_t len, const m3s_task_record_t *b,
                               const char *x, const char *h)
{
  m3s_extra_pool_t *pool = m3s_extra_pool_new();
  json_t *want = x ? parse(x) : NULL;
  m3s_extra_t *keep[2] = { NULL, NULL };
  for(int round = 0; round < 2; round++) {
    m3s_task_record_t c;
    m3s_extra_t *xc = (m3s_extra_t *)1;
    char *hc = (char *)1, ec[256];
    ck_assert_int_eq(m3s_task_record_from_json_pooled(text, len, &c, pool, &xc, &hc, ec,
                                                      sizeof(ec)), 0);
    ck_assert_str_eq(hc, h);
    ck_assert_ptr_null(c.extra);
    ck_assert_msg((xc != NULL) == (x != NULL), "pooled extra for %.300s", text);
    c.extra = m3s_extra_json(xc, c.task_id);
    if(want)
      ck_assert_msg(json_equal(c.extra, want), "pooled extra differs for %.300s", text);
    json_decref(c.extra);
    c.extra = b->extra; /* compared above; the rest must match field by field */
    assert_task_equal(b, &c);
    c.extra = NULL;
    keep[round] = xc;
    free(hc);
    m3s_task_record_free(&c);
  }
  m3s_extra_free(keep[0]);
  m3s_extra_free(keep[1]);
  json_decref(want);
  m3s_extra_pool_free(pool);
}

/* The pooled decode of text, with a pool that has seen other records,
 * gives what the full decoder gives: the same error, or the same struct,
 * extra and MesosAgent hostname. */
static void assert_pooled_like_full(m3s_extra_pool_t *pool, const char *text, size_t len)
{
  m3s_task_record_t a, c;
  m3s_extra_t *xc = (m3s_extra_t *)1;
  char ea[256], ec[256], *hc = (char *)1;
  int ra = m3s_task_record_from_json(text, len, &a, ea, sizeof(ea));
  int rc = m3s_task_record_from_json_pooled(text, len, &c, pool, &xc, &hc, ec,
                                            sizeof(ec));
  ck_assert_msg(ra == rc, "for %.300s: %d vs %d (%s)", text ? text : "NULL", ra, rc, ra ? ea : ec);
  if(ra) {
    ck_assert_str_eq(ea, ec);
    ck_assert_ptr_null(xc);
    ck_assert_ptr_null(hc);
    return;
  }
  const char *host = json_string_value(
    json_object_get(json_object_get(a.extra, "MesosAgent"), "hostname"));
  ck_assert_str_eq(hc, host ? host : "");
  c.extra = m3s_extra_json(xc, c.task_id);
  ck_assert_msg(json_equal(a.extra, c.extra) || (!c.extra && !json_object_size(a.extra)),
                "pooled extra differs for %.300s", text);
  assert_task_equal(&a, &c);
  m3s_extra_free(xc);
  free(hc);
  m3s_task_record_free(&a);
  m3s_task_record_free(&c);
}

/* m3s_task_record_from_json_lean gives what the full decoder gives: the
 * same error, or the same struct, extra and encoding; its extra text is
 * compact (records that share a member share its text). */
static void assert_lean_same(const char *text, size_t len)
{
  m3s_task_record_t a, b;
  char ea[256], eb[256], *x = (char *)1, *h = (char *)1;
  int ra = m3s_task_record_from_json(text, len, &a, ea, sizeof(ea));
  int rb = m3s_task_record_from_json_lean(text, len, &b, &x, &h, eb, sizeof(eb));

  ck_assert_msg(ra == rb, "for %.300s: %d vs %d (%s)", text ? text : "NULL", ra, rb, ra ? ea : eb);
  if(ra) {
    ck_assert_str_eq(ea, eb);
    ck_assert_ptr_null(x);
    ck_assert_ptr_null(h);
    ck_assert_ptr_null(b.task_id);
    m3s_extra_pool_t *pool = m3s_extra_pool_new();
    assert_pooled_like_full(pool, text, len);
    m3s_extra_pool_free(pool);
    return;
  }
  const char *host = json_string_value(
    json_object_get(json_object_get(a.extra, "MesosAgent"), "hostname"));
  ck_assert_str_eq(h, host ? host : "");
  ck_assert_ptr_null(b.extra);
  assert_pooled_same(text, len, &b, x, h);
  ck_assert_msg((x != NULL) == (json_object_size(a.extra) > 0), "extra %s", x ? x : "NULL");
  if(x) {
    ck_assert_msg(!spaced(x), "extra not compact: %s", x);
    b.extra = parse(x);
  }
  assert_task_equal(&a, &b);
  char *sa = m3s_task_record_to_json(&a), *sb = m3s_task_record_to_json(&b);
  ck_assert_str_eq(sa, sb);
  free(sa);
  free(sb);
  free(x);
  free(h);
  m3s_task_record_free(&a);
  m3s_task_record_free(&b);
}

static const char *const lean_cases[] = {
  "{}",
  " { } ",
  "{\"TaskID\":\"t\",\"TaskID\":\"u\"}",
  "{\"uris\":[1],\"uris\":[2]}",
  "{\"uris\":{\"a\":1,\"a\":2},\"TaskID\":\"t\"}",
  "{\"TaskID\":\"a\\\"b\\n\",\"command\":\"x\\\\y\\/z\\t\"}",
  "{\"TaskID\":\"\\u00e9\",\"command\":\"c\"}",
  "{\"command\":\"\\u003cb\\u003e \\ud83d\\ude00\"}",
  "{\"command\":\"\\ud800\"}",
  "{\"command\":\"caf\xc3\xa9\"}",
  "{\"command\":\"bad \xc3\"}",
  "{\"command\":\"a\\u0000b\"}",
  "{\"command\":\"bad \\x\"}",
  /* stops at every place in an eight-byte word: escapes, raw control
   * characters (refused), bytes outside ASCII */
  "{\"command\":\"abcdefghijk\\tlmnopqrstuvw\\\"xyz0123456789\\\\\",\"TaskID\":\"abcdefgh\"}",
  "{\"command\":\"0123456789abcde\x01fgh\"}",
  "{\"command\":\"0123456\x1f\"}",
  "{\"command\":\"01234567890123456789\x7f\xc3\xa9xyzxyzxyz\"}",
  "{\"Ta\\u0073kID\":\"t\"}",
  "{\"Memory\":1e3,\"CPU\":2.5E-1,\"x\":1e999}",
  "{\"big\":123456789012345678901234567890}",
  "{\"big\":-1234567890123456,\"r\":0.1000000000000000055511151231257827}",
  "{\"Instances\":99999999999}",
  "{\"CPU\":-0,\"Memory\":-0.0,\"Instances\":-5,\"Disk\":12345678901234567,"
  "\"EnableHealthCheck\":null,\"TaskID\":null,\"Restart\":\"r\",\"State\":\"\"}",
  "{\"CPU\":0.1,\"CPULimit\":179769313486231570000000.5,\"Instances\":2147483647,"
  "\"EnableHealthCheck\":true,\"StateTime\":\"2024-05-02T09:14:07.123456789+02:00\"}",
  "{\"Instances\":-2147483648}",
  "{\"spec_digest\":\"00112233445566778899aabbccddeeff\",\"TaskID\":\"t\"}",
  "{\"spec_digest\":\"\"}",
  "{\"spec_digest\":null}",
  "{\"spec_digest\":7}",
  "{\"spec_digest\":\"a\\\"b\"}",
  "{\"Instances\":2147483648}",
  "{\"Instances\":\"3\"}",
  "{\"EnableHealthCheck\":1}",
  "{\"StateTime\":\"2024-13-02T09:14:07Z\"}",
  "{\"task_name\":\"m3s:server\",\"hostname\":[]}",
  "{\"MesosAgent\":null,\"Labels\":null,\"Health\":null,\"PullPolicy\":\"\"}",
  "{\"MesosAgent\":{},\"Labels\":[],\"Health\":false,\"PullPolicy\":\"Always\"}",
  "{\"MesosAgent\":{\"id\":\"a\",\"hostname\":\"h1\",\"hostname\":\"h2\"}}",
  "{\"MesosAgent\":{\"hostname\":7}}",
  "{\"MesosAgent\":{\"hostname\":\"a\\\"b\"}}",
  "{\"MesosAgent\":{\"host\\u006eame\":\"x\"}}",
  "{\"MesosAgent\":\"text\"}",
  "{\"MesosAgent\":[{\"hostname\":\"x\"}]}",
  "{\"MesosAgent\":{\"hostname\":\"h\"},\"MesosAgent\":null}",
  "{ \"port_mappings\" : [ { \"host_port\" : 1 , \"visibility\" : \"x y\" } ] ,"
  " \"discovery\" : { \"name\" : \"d\" } , \"networkinfo\" : [ { \"groups\" : [ \"g\" ] } ] }",
  "{\"discovery\":null,\"networkinfo\":null,\"port_mappings\":[]}",
  "{\"port_mappings\":[{\"host_port\":1,\"container_port\":2,\"protocol\":\"tcp\"},{}]}",
  "{\"port_mappings\":[{\"host_port\":1,\"protocol\":\"\"}]}",
  "{\"port_mappings\":[{\"host_port\":null,\"protocol\":null}]}",
  "{\"port_mappings\":[{\"host_port\":1,\"extra\":true}]}",
  "{\"port_mappings\":[{\"host_port\":1,\"host_port\":2}]}",
  "{\"port_mappings\":[{\"host_port\":1.5}]}",
  "{\"port_mappings\":null,\"discovery\":{},\"networkinfo\":[]}",
  "{\"discovery\":{\"visibility\":2,\"ports\":{\"ports\":[{\"number\":5,\"name\":\"a\",\"protocol\":\"tcp\"},{\"number\":6}]},\"name\":\"d\"}}",
  "{\"discovery\":{\"ports\":{\"ports\":[]}}}",
  "{\"discovery\":{\"ports\":{}}}",
  "{\"discovery\":{\"ports\":null,\"x\":1}}",
  "{\"discovery\":{\"ports\":{\"ports\":null}}}",
  "{\"discovery\":{\"ports\":{\"ports\":[{\"number\":5}],\"labels\":{}}}}",
  "{\"discovery\":{\"ports\":{\"ports\":[{\"number\":5,\"visibility\":2}]}}}",
  "{\"discovery\":{\"ports\":{\"ports\":[{\"name\":\"\"}]}}}",
  "{\"discovery\":{\"ports\":[]}}",
  "{\"discovery\":\"d\"}",
  "{\"command\":\"c\",\"discovery\":{\"a\":[1,{\"b\":2}],\"ports\":{\"ports\":[{\"number\":1}]},\"z\":\"y\"}}",
  "{\"networkinfo\":[{\"name\":\"weave\",\"ip_addresses\":[{\"protocol\":1,\"ip_address\":\"10.0.0.1\"},{\"ip_address\":\"10.0.0.2\"}],\"groups\":[\"g\"]},{\"ip_addresses\":[]},{\"labels\":{\"labels\":[]}}]}",
  "{\"networkinfo\":[{\"ip_addresses\":[{\"ip_address\":\"a\"}]}]}",
  "{\"networkinfo\":[{\"ip_addresses\":null,\"name\":\"n\"}]}",
  "{\"networkinfo\":[{\"groups\":[\"g\"],\"ip_addresses\":[{\"ip_address\":\"a\"},{\"protocol\":2}],\"name\":\"n\",\"x\":{}}]}",
  "{\"networkinfo\":[{\"name\":\"\"}]}",
  "{\"networkinfo\":[{\"ip_addresses\":[{\"ip_address\":\"\"}]}]}",
  "{\"networkinfo\":[{\"ip_addresses\":[1]}]}",
  "{\"networkinfo\":[{},{}]}",
  "{\"networkinfo\":{}}",
  "{\"port_mappings\":[{\"host_port\":1,\"x\":1}],\"networkinfo\":[{\"name\":\"n\",\"ip_addresses\":[{\"protocol\":2,\"ip_address\":\"b\"}]}]}",
  "{\"networkinfo\":[{\"name\":\"n\",\"ip_addresses\":[{\"protocol\":2,\"ip_address\":\"b\"}]}],\"discovery\":{\"ports\":{\"ports\":[{\"number\":5,\"visibility\":2}]}},\"Labels\":null}",
  "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]"
  "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
  "{\"a\":1,}",
  /* nesting inside an unmodelled member: valid, then broken at each turn */
  "{\"uris\":[{}],\"x\":{\"y\":{\"z\":[[],{},[1,{\"q\":null}]]}},\"TaskID\":\"t\"}",
  "{\"uris\":[{\"a\":1,}]}",
  "{\"uris\":[1 2]}",
  "{\"uris\":{\"a\":[}}",
  "{\"uris\":[{\"a\" 1}]}",
  "{\"uris\":[{\"a\":1]}",
  "{\"uris\":[[[]]",
  "{\"uris\":{\"a\":1,\"b\"}}",
  "{\"a\":1} x",
  "{\"a\" 1}",
  "{\"a\":tru}",
  "{\"a\":01}",
  "{\"a\":-}",
  "{\"a\":1.}",
  "[]",
  "",
};

START_TEST(test_task_lean_same)
{
  static const char *const files[] = { "task_agent_running.json", "task_datastore_new.json" };
  for(size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
    size_t len;
    char *text = read_data(files[i], &len);
    assert_lean_same(text, len);
    json_t *j = parse(text);
    char *compact = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_lean_same(compact, strlen(compact));
    /* len is honoured: trailing bytes are not read */
    assert_lean_same(compact, strlen(compact) - 1);
    free(compact);
    json_decref(j);
    free(text);
  }
  for(size_t i = 0; i < sizeof(bad_tasks) / sizeof(bad_tasks[0]); i++)
    assert_lean_same(bad_tasks[i].json, strlen(bad_tasks[i].json));
  for(size_t i = 0; i < sizeof(lean_cases) / sizeof(lean_cases[0]); i++)
    assert_lean_same(lean_cases[i], strlen(lean_cases[i]));
  assert_lean_same(item_leftovers_rec, strlen(item_leftovers_rec));
  assert_lean_same(NULL, 0);
  /* more items than the lean decoder splits itself */
  char many[4096] = "{\"port_mappings\":[";
  for(int i = 0; i < 70; i++)
    snprintf(many + strlen(many), sizeof(many) - strlen(many), "%s{\"host_port\":%d}",
             i ? "," : "", i);
  strcat(many, "]}");
  assert_lean_same(many, strlen(many));
  assert_lean_same("{\"TaskID\":\"z\"}garbage", 14);
}
END_TEST

/* Members a pool has seen are not checked again in later records: what
 * follows them, or the slightest change in them, still decides. */
START_TEST(test_task_pooled_seen)
{
  static const char agent[] =
    "\"MesosAgent\":{\"id\":\"6c2e3f0a-9d1b-4c77-8e21-4b5a6d7c8e9f-S3\",\"hostname\":\"w-3\","
    "\"port\":5051,\"attributes\":{\"rack\":\"r2\"},\"resources\":{\"disk\":51200,\"mem\":158}}";
  static const char uris[] =
    "\"uris\":[{\"value\":\"https://raw.githubusercontent.com/AVENTER-UG/mesos-m3s/master/b.sh\","
    "\"executable\":true,\"extract\":false,\"cache\":false,\"output_file\":\"bootstrap\"}]";
  /* records after the first: "{" member sep member end */
  static const struct { const char *sep, *end; } later[] = {
    { ",", ",\"TaskID\":\"t2\"}" },
    { ",", ",\"TaskID\":\"t3\"}garbage" },
    { ",", "]" },
    { ",", ",3]}" },
    { ",", ",\"uris\":[]}" },
    { " , ", "}" },
    { ",", ",\"TaskID\":\"S3\"}" },   /* its own id inside the agent */
    { ",", ",\"TaskID\":\"raw\"}" },  /* ... and inside the uris */
  };
  char first[1024], t[2048];
  m3s_extra_pool_t *pool = m3s_extra_pool_new();
  snprintf(first, sizeof(first), "{%s,%s,\"TaskID\":\"t1\"}", uris, agent);
  m3s_task_record_t r;
  m3s_extra_t *keep;
  char *h, e[256];
  ck_assert_int_eq(m3s_task_record_from_json_pooled(first, strlen(first), &r, pool, &keep, &h,
                                                    e, sizeof(e)), 0);
  ck_assert_str_eq(h, "w-3");
  for(size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++) {
    snprintf(t, sizeof(t), "{%s%s%s%s", uris, later[i].sep, agent, later[i].end);
    assert_pooled_like_full(pool, t, strlen(t));
    snprintf(t, sizeof(t), "{%s%s%s%s", agent, later[i].sep, uris, later[i].end);
    assert_pooled_like_full(pool, t, strlen(t));
  }
  /* the seen members, one byte changed or cut anywhere */
  size_t a0 = strlen("{") + strlen(uris) + 1, n = strlen(first);
  for(size_t at = 1; at + 1 < n; at++) {
    static const char repl[] = { 'x', '"', '}', ']', ',', ' ', '\\' };
    for(size_t k = 0; k < sizeof(repl); k++) {
      snprintf(t, sizeof(t), "%s", first);
      t[at] = repl[k];
      assert_pooled_like_full(pool, t, strlen(t));
    }
    snprintf(t, sizeof(t), "%.*s}", (int)at, first);
    assert_pooled_like_full(pool, t, strlen(t));
  }
  /* another hostname for the same agent id */
  snprintf(t, sizeof(t), "%s", first);
  memcpy(strstr(t + a0, "w-3"), "w-4", 3);
  assert_pooled_like_full(pool, t, strlen(t));
  /* members that hold the record's task id (kept apart in the pool), and
   * the partly modelled ones (remembered from the last record) */
  static const char arrays[] =
    "\"port_mappings\":[{\"host_port\":31001,\"container_port\":80,\"protocol\":\"tcp\"}],"
    "\"discovery\":{\"visibility\":2,\"ports\":{\"ports\":[{\"number\":31001,\"name\":\"h\","
    "\"protocol\":\"http\"}]}},\"networkinfo\":[{\"ip_addresses\":[{\"protocol\":1,"
    "\"ip_address\":\"10.0.0.5\"}],\"name\":\"weave\"}]";
  m3s_extra_t *keep1 = NULL;
  static const struct { const char *env, *args, *id, *arrays; } ids[] = {
    { "t1", "t1", "t1", NULL }, /* the first of these */
    { "t7", "t7", "t7", "\"port_mappings\" : [ {\"host_port\":31001,\"container_port\":80,"
                        "\"protocol\":\"tcp\"} ],\"networkinfo\":[{\"name\":\"weave\"}]" },
    { "t8", "t8", "t8", "\"port_mappings\":[],\"discovery\":null,\"networkinfo\":[{\"x\":1}]" },
    { "t9", "t9", "t9", "\"port_mappings\":[{\"host_port\":\"31001\"}]" },
    { "t7", "t7", "t7", "\"port_mappings\":[{\"host_port\":31001,\"container_port\":80,"
                        "\"protocol\":\"tcp\"}],\"networkinfo\":[{\"name\":\"weave\"}]" },
    { "t2", "t2", "t2", NULL },
    { "t-22", "t-22", "t-22", NULL },
    { "", "", "", NULL },
    { "t2", "t3", "t2", NULL },
    { "t4", "t4", "t5", NULL },
    { "a\\\"b", "a\\\"b", "a\\\"b", NULL },
    { "a\\u00e9", "a\\u00e9", "a\\u00e9", NULL },
    { "t6\"]}", "t6", "t6", NULL },
    { "caf\xc3\xa9", "caf\xc3\xa9", "caf\xc3\xa9", NULL },
    { "t1", "t1", "t1", NULL },
  };
  for(size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
    snprintf(t, sizeof(t),
             "{%s,\"environment\":{\"variables\":[{\"name\":\"SERVICE_NAME\",\"value\":"
             "\"m3sdev:agent\"},{\"name\":\"MESOS_TASK_ID\",\"value\":\"%s\"}]},"
             "\"arguments\":[\"/usr/local/bin/k3s\",\"agent\",\"--with-node-id %s\","
             "\"--kubelet-arg node-labels m3s.aventer.biz/taskid=%s\"],%s,\"TaskID\":\"%s\"}",
             uris, ids[i].env, ids[i].args, ids[i].args, ids[i].arrays ? ids[i].arrays : arrays,
             ids[i].id);
    assert_pooled_like_full(pool, t, strlen(t));
    if(i)
      continue;
    /* the first, kept in the pool; then one byte changed anywhere */
    m3s_task_record_t r1;
    char *h1;
    ck_assert_int_eq(m3s_task_record_from_json_pooled(t, strlen(t), &r1, pool, &keep1, &h1, e,
                                                      sizeof(e)), 0);
    free(h1);
    m3s_task_record_free(&r1);
    char u[2048];
    for(size_t at = 1; at + 1 < strlen(t); at++) {
      static const char repl[] = { 'x', '"', '}', ',', '\\', '\x01' };
      for(size_t k = 0; k < sizeof(repl); k++) {
        snprintf(u, sizeof(u), "%s", t);
        u[at] = repl[k];
        assert_pooled_like_full(pool, u, strlen(u));
      }
    }
  }
  m3s_extra_free(keep);
  m3s_extra_free(keep1);
  free(h);
  m3s_task_record_free(&r);
  m3s_extra_pool_free(pool);
}
END_TEST

START_TEST(test_extra_pool)
{
  static const char a[] =
    "{\"uris\":[{\"value\":\"http://x/?a=1,b={2}\",\"cache\":false}],"
    "\"command\":\"echo \\\"},{\\\" \\\\\",\"MesosAgent\":{\"id\":\"S1\",\"hostname\":\"h\"},"
    "\"e\":[],\"o\":{},\"n\":null,\"caf\xc3\xa9\":\"\\u00e9\"}";
  static const char b[] =
    "{\"uris\":[{\"value\":\"http://x/?a=1,b={2}\",\"cache\":false}],"
    "\"environment\":{\"variables\":[{\"name\":\"ID\",\"value\":\"2\"}]}}";
  m3s_extra_pool_t *p = m3s_extra_pool_new();
  m3s_extra_t *xa = m3s_extra_intern(p, a, NULL), *xb = m3s_extra_intern(p, b, "");
  ck_assert_ptr_null(m3s_extra_intern(p, NULL, NULL));
  ck_assert_ptr_null(m3s_extra_intern(p, "{}", "x"));
  ck_assert_ptr_null(m3s_extra_json(NULL, NULL));
  json_t *ja = m3s_extra_json(xa, NULL), *want = parse(a);
  ck_assert(json_equal(ja, want));
  json_decref(ja);
  json_decref(want);
  /* b keeps its share of the member both hold */
  m3s_extra_free(xa);
  json_t *jb = m3s_extra_json(xb, "");
  want = parse(b);
  ck_assert(json_equal(jb, want));
  json_decref(jb);
  json_decref(want);
  /* many records with the same members, some their own */
  m3s_extra_t *many[2000];
  for(int i = 0; i < 2000; i++) {
    char t[256];
    snprintf(t, sizeof(t), "{\"uris\":[1,2],\"arguments\":[\"--id %d\"],\"z\":%d}", i, i % 7);
    many[i] = m3s_extra_intern(p, t, NULL);
  }
  for(int i = 0; i < 2000; i += 3) {
    json_t *j = m3s_extra_json(many[i], NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(j, "z")), i % 7);
    ck_assert_uint_eq(json_object_size(j), 3);
    json_decref(j);
  }
  for(int i = 0; i < 2000; i++)
    m3s_extra_free(many[i]);
  /* a record's own string (its task id) wherever members repeat it, even
   * twice in a row or as a part of a longer word, comes back as it was */
  static const char *const owns[] = { "t-7", "7", "\"", "a\x01", "ab" };
  for(size_t k = 0; k < sizeof(owns) / sizeof(owns[0]); k++) {
    for(int i = 0; i < 50; i++) {
      char own[32], t[512];
      snprintf(own, sizeof(own), "%s", i ? owns[k] : "t-77");
      /* own as written in a JSON string */
      const char *enc = !strcmp(own, "\"") ? "\\\"" : !strcmp(own, "a\x01") ? "a\\u0001" : own;
      snprintf(t, sizeof(t), "{\"environment\":{\"variables\":[{\"name\":\"ID\",\"value\":"
               "\"%s\"}]},\"arguments\":[\"--id=%s%s\",\"abab t-7t-7 77\"],\"z\":%d}",
               enc, enc, enc, i);
      many[i] = m3s_extra_intern(p, t, own);
      json_t *j = m3s_extra_json(many[i], own), *w = parse(t);
      ck_assert_msg(json_equal(j, w), "own %s: %s", own, t);
      json_decref(j);
      json_decref(w);
    }
    for(int i = 0; i < 50; i++)
      m3s_extra_free(many[i]);
  }
  m3s_extra_free(xb);
  m3s_extra_free(NULL);
  m3s_extra_pool_free(p);
}
END_TEST

/* ---- times ---- */

START_TEST(test_times)
{
  char buf[64];
  struct timespec ts = { 0, 0 };

  ck_assert_int_eq(m3s_record_format_time(&ts, buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
  ts = (struct timespec){ 1714634047, 123456789 };
  ck_assert_int_eq(m3s_record_format_time(&ts, buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, "2024-05-02T07:14:07.123456789Z");
  ts.tv_nsec = 500000000;
  ck_assert_int_eq(m3s_record_format_time(&ts, buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, "2024-05-02T07:14:07.5Z");     /* RFC3339Nano trims */
  ts.tv_nsec = 1000;
  ck_assert_int_eq(m3s_record_format_time(&ts, buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, "2024-05-02T07:14:07.000001Z");
  ck_assert_int_eq(m3s_record_format_time(&ts, buf, 10), -ENOSPC);
  ts = (struct timespec){ -62135596800LL, 0 };
  ck_assert_int_eq(m3s_record_format_time(&ts, buf, sizeof(buf)), 0);
  ck_assert_str_eq(buf, M3S_ZERO_TIME);

  struct timespec p;
  ck_assert_int_eq(m3s_record_parse_time("2024-05-02T07:14:07.000001Z", &p), 0);
  ck_assert_int_eq(p.tv_sec, 1714634047);
  ck_assert_int_eq(p.tv_nsec, 1000);
  ck_assert_int_eq(m3s_record_parse_time("2024-05-02T01:44:07-05:30", &p), 0);
  ck_assert_int_eq(p.tv_sec, 1714634047);
  ck_assert_int_eq(m3s_record_parse_time("", &p), 0);
  ck_assert_int_eq(p.tv_sec, -62135596800LL);
  static const char *const bad[] = {
    "2024-05-02", "2024-05-02T07:14:07", "2024-05-02 07:14:07Z",
    "2024-13-02T07:14:07Z", "2024-05-02T07:14:07.Z",
    "2024-05-02T07:14:07.1234567891Z", "2024-05-02T07:14:07+0200",
    "2024-05-02T07:14:07Zjunk", "2023-02-29T00:00:00Z", "2024-05-02T24:00:00Z",
  };
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    ck_assert_msg(m3s_record_parse_time(bad[i], &p) == -EINVAL, "%s", bad[i]);
}
END_TEST

/* ---- roles ---- */

START_TEST(test_roles)
{
  ck_assert_int_eq(m3s_role_from_task_name("m3s:agent"), M3S_ROLE_AGENT);
  ck_assert_int_eq(m3s_role_from_task_name("m3sdev:server"), M3S_ROLE_SERVER);
  ck_assert_int_eq(m3s_role_from_task_name("m3s:datastore"), M3S_ROLE_DATASTORE);
  ck_assert_int_eq(m3s_role_from_task_name("m3s:agents"), M3S_ROLE_NONE);
  ck_assert_int_eq(m3s_role_from_task_name("m3s:"), M3S_ROLE_NONE);
  ck_assert_int_eq(m3s_role_from_task_name(""), M3S_ROLE_NONE);
  ck_assert_int_eq(m3s_role_from_task_name(NULL), M3S_ROLE_NONE);
  ck_assert_str_eq(m3s_role_name(M3S_ROLE_SERVER), "server");
  ck_assert_ptr_null(m3s_role_name(M3S_ROLE_NONE));
  ck_assert_ptr_null(m3s_role_name((m3s_role_t)42));
}
END_TEST

/* ---- framework_config ---- */

static const char *const secret_values[] = {
  "api-admin", "api-s3cret", "db-s3cret", "k3s-join-s3cret", "redis-s3cret",
  "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg", NULL
};

static void assert_no_secrets(const char *s)
{
  json_t *j = parse(s);
  for(const char *const *f = m3s_fw_config_secret_fields; *f; f++)
    ck_assert_msg(json_object_get(j, *f) == NULL, "%s written", *f);
  for(const char *const *v = secret_values; *v; v++)
    ck_assert_msg(strstr(s, *v) == NULL, "secret %s written", *v);
  json_decref(j);
}

START_TEST(test_fw_go_record)
{
  size_t len;
  char *text = read_data("framework_config.json", &len);
  m3s_fw_config_record_t r;

  ck_assert_msg(m3s_fw_config_record_from_json(text, len, &r, err,
                                               sizeof(err)) == 0, "%s", err);
  ck_assert_int_eq(r.ds_max, 1);
  ck_assert_int_eq(r.k3s_server_max, 1);
  ck_assert_int_eq(r.k3s_agent_max, 3);
  ck_assert_int_eq(r.ds_max_restore, 1);
  ck_assert_int_eq(r.k3s_server_max_restore, 1);
  ck_assert_int_eq(r.k3s_agent_max_restore, 3);
  ck_assert(r.k3s_disable_scheduling);
  ck_assert_str_eq(r.k3s_server_hostname, "worker-1.example.net");
  ck_assert_int_eq(r.k3s_server_port, 31000);
  ck_assert_str_eq(r.k3s_server_url, "https://m3sserver.local:6443");
  ck_assert(r.ds_cpu == 0.1 && r.ds_cpu_limit == 0.5);
  ck_assert(r.ds_mem == 1200 && r.ds_mem_limit == 1500);
  ck_assert(r.ds_disk == 5000 && r.ds_disk_limit == 5000);
  ck_assert(r.k3s_server_cpu == 2 && r.k3s_server_cpu_limit == 4);
  ck_assert(r.k3s_server_mem == 4000 && r.k3s_server_mem_limit == 6000);
  ck_assert(r.k3s_server_disk == 10000 && r.k3s_server_disk_limit == 10000);
  ck_assert(r.k3s_agent_cpu == 2 && r.k3s_agent_cpu_limit == 3.5);
  ck_assert(r.k3s_agent_mem == 2000 && r.k3s_agent_mem_limit == 2500);
  ck_assert(r.k3s_agent_disk == 10000 && r.k3s_agent_disk_limit == 10000);
  /* secrets are gone already after decode */
  for(const char *const *f = m3s_fw_config_secret_fields; *f; f++)
    ck_assert_msg(json_object_get(r.extra, *f) == NULL, "%s kept", *f);
  ck_assert_int_eq(json_integer_value(json_object_get(r.extra, "CleanupLoopTime")),
                   300000000000LL);
  ck_assert_str_eq(json_string_value(json_object_get(r.extra, "SSLCrt")),
                   "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg");
  ck_assert_ptr_null(json_object_get(r.extra, "DSMax"));

  /* JSON -> struct -> JSON: the original minus the secrets. */
  char *s = m3s_fw_config_record_to_json(&r);
  ck_assert_ptr_nonnull(s);
  assert_no_secrets(s);
  json_t *want = parse(text);
  for(const char *const *f = m3s_fw_config_secret_fields; *f; f++)
    json_object_del(want, *f);
  json_t *got = parse(s);
  ck_assert_msg(json_equal(want, got), "framework_config differs: %.400s", s);
  json_decref(want);
  json_decref(got);
  /* Go's field order; unknown fields at the end. */
  ck_assert_ptr_nonnull(strstr(s, "{\"AppName\":"));
  ck_assert_ptr_nonnull(strstr(s, "\"SomeFutureField\":{\"nested\":[1,2.5,\"x\"]}}"));

  /* struct -> JSON -> struct */
  m3s_fw_config_record_t r2;
  ck_assert_int_eq(fw_from(s, &r2), 0);
  ck_assert(memcmp(&r.ds_max, &r2.ds_max,
                   offsetof(m3s_fw_config_record_t, k3s_server_hostname)) == 0);
  ck_assert_str_eq(r2.k3s_server_hostname, r.k3s_server_hostname);
  ck_assert_str_eq(r2.k3s_server_url, r.k3s_server_url);
  ck_assert(memcmp(&r.ds_cpu, &r2.ds_cpu,
                   offsetof(m3s_fw_config_record_t, extra) -
                   offsetof(m3s_fw_config_record_t, ds_cpu)) == 0);
  ck_assert(json_equal(r.extra, r2.extra));
  m3s_fw_config_record_free(&r2);
  free(s);

  /* Secrets put into extra by someone are still not written. */
  json_object_set_new(r.extra, "K3SToken", json_string("k3s-join-s3cret"));
  json_object_set_new(r.extra, "Credentials",
                      parse("{\"Username\":\"api-admin\",\"Password\":\"api-s3cret\"}"));
  json_object_set_new(r.extra, "SSLKey",
                      json_string("LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tCg"));
  json_object_set_new(r.extra, "Password", json_string("redis-s3cret"));
  json_object_set_new(r.extra, "RedisPassword", json_string("redis-s3cret"));
  json_object_set_new(r.extra, "DSMySQLPassword", json_string("db-s3cret"));
  s = m3s_fw_config_record_to_json(&r);
  assert_no_secrets(s);
  free(s);
  m3s_fw_config_record_free(&r);
  free(text);
}
END_TEST

START_TEST(test_fw_struct_roundtrip)
{
  m3s_fw_config_record_t a, b;
  memset(&a, 0, sizeof(a));
  a.ds_max = 1;
  a.k3s_agent_max = 7;
  a.k3s_agent_max_restore = 2;
  a.k3s_disable_scheduling = true;
  a.k3s_server_port = 31000;
  a.k3s_agent_mem_limit = 3000.25;
  a.ds_cpu = 0.1;
  a.k3s_server_hostname = m3s_xstrdup("h1");
  char *s = m3s_fw_config_record_to_json(&a);   /* NULL url = "" */
  ck_assert_ptr_nonnull(s);
  ck_assert_int_eq(fw_from(s, &b), 0);
  ck_assert_int_eq(b.ds_max, 1);
  ck_assert_int_eq(b.k3s_agent_max, 7);
  ck_assert_int_eq(b.k3s_agent_max_restore, 2);
  ck_assert(b.k3s_disable_scheduling);
  ck_assert_int_eq(b.k3s_server_port, 31000);
  ck_assert(b.k3s_agent_mem_limit == 3000.25);
  ck_assert(b.ds_cpu == 0.1);
  ck_assert_str_eq(b.k3s_server_hostname, "h1");
  ck_assert_str_eq(b.k3s_server_url, "");
  ck_assert_ptr_null(b.extra);
  char *s2 = m3s_fw_config_record_to_json(&b);
  assert_json_equal(s, s2);
  json_t *j = parse(s);
  ck_assert_uint_eq(json_object_size(j), 28);     /* every modelled field */
  ck_assert(json_is_integer(json_object_get(j, "K3SServerCPU")));
  json_decref(j);
  free(s);
  free(s2);
  m3s_fw_config_record_free(&a);
  m3s_fw_config_record_free(&b);
}
END_TEST

static const struct {
  const char *json;
  const char *expect;
} bad_fw[] = {
  { "{", "framework_config record: not JSON" },
  { "[]", "framework_config record: not a JSON object" },
  { "{\"DSMax\":\"1\"}", "framework_config record: DSMax is not an integer" },
  { "{\"K3SServerPort\":31000.5}",
    "framework_config record: K3SServerPort is not an integer" },
  { "{\"DSCPU\":\"x\"}", "framework_config record: DSCPU is not a number" },
  { "{\"K3SAgentMEMLimit\":{}}",
    "framework_config record: K3SAgentMEMLimit is not a number" },
  { "{\"K3SDisableScheduling\":1}",
    "framework_config record: K3SDisableScheduling is not a boolean" },
  { "{\"K3SServerHostname\":3}",
    "framework_config record: K3SServerHostname is not a string" },
};

START_TEST(test_fw_bad_inputs)
{
  m3s_fw_config_record_t r;
  ck_assert_int_eq(fw_from(bad_fw[_i].json, &r), -EPROTO);
  ck_assert_msg(strstr(err, bad_fw[_i].expect) == err, "for %s: got \"%s\"",
                bad_fw[_i].json, err);
  ck_assert_ptr_null(r.extra);
  ck_assert_ptr_null(r.k3s_server_hostname);
}
END_TEST

START_TEST(test_fw_defaults)
{
  static const char *const env[] = {
    "FRAMEWORK_NAME", "dev", "DOMAIN", ".mini", "DS_COUNT", "1",
    "K3S_SERVER_COUNT", "2", "K3S_AGENT_COUNT", "4", "K3S_SERVER_PORT", "31555",
    "K3S_DISABLE_SCHEDULING", "true", "DS_CPU", "0.3", "DS_CPU_LIMIT", "0.6",
    "K3S_AGENT_MEM", "3000", "K3S_AGENT_MEM_LIMIT", "3500",
    "K3S_SERVER_DISK_LIMIT", "12345", NULL, NULL
  };
  m3s_config_t cfg;
  m3s_fw_config_record_t r;

  ck_assert_msg(m3s_config_load(&cfg, m3s_check_getenv, (void *)env, err,
                                sizeof(err)) == 0, "%s", err);
  m3s_fw_config_record_defaults(&cfg, &r);
  ck_assert_int_eq(r.ds_max, 1);
  ck_assert_int_eq(r.k3s_server_max, 2);
  ck_assert_int_eq(r.k3s_agent_max, 4);
  ck_assert_int_eq(r.ds_max_restore, 0);
  ck_assert_int_eq(r.k3s_agent_max_restore, 0);
  ck_assert(r.k3s_disable_scheduling);
  ck_assert_int_eq(r.k3s_server_port, 31555);
  ck_assert_str_eq(r.k3s_server_hostname, "");
  ck_assert_str_eq(r.k3s_server_url, "https://m3sdevserver.mini:6443");
  ck_assert(r.ds_cpu == 0.3 && r.ds_cpu_limit == 0.6);
  ck_assert(r.k3s_agent_mem == 3000 && r.k3s_agent_mem_limit == 3500);
  ck_assert(r.k3s_server_disk_limit == 12345);
  ck_assert(r.k3s_server_cpu == cfg.k3s_server_cpu);
  ck_assert(r.ds_mem == cfg.ds_mem && r.ds_disk == cfg.ds_disk);
  ck_assert(r.k3s_agent_cpu_limit == cfg.k3s_agent_cpu_limit);
  ck_assert_ptr_null(r.extra);
  char *s = m3s_fw_config_record_to_json(&r);
  json_t *j = parse(s);
  ck_assert_int_eq(json_integer_value(json_object_get(j, "K3SAgentMax")), 4);
  ck_assert(json_is_true(json_object_get(j, "K3SDisableScheduling")));
  json_decref(j);
  free(s);
  m3s_fw_config_record_free(&r);
  m3s_config_free(&cfg);
}
END_TEST

/* ---- keys ---- */

static void assert_key(const char *fw, char *key, const char *want,
                       m3s_key_kind_t kind, m3s_role_t role, const char *name)
{
  m3s_key_info_t ki;
  ck_assert_ptr_nonnull(key);
  ck_assert_str_eq(key, want);
  ck_assert_int_eq(m3s_key_parse(fw, key, &ki), (int)kind);
  ck_assert_int_eq(ki.kind, kind);
  ck_assert_int_eq(ki.role, role);
  if(name)
    ck_assert_str_eq(ki.name, name);
  else
    ck_assert_ptr_null(ki.name);
  free(key);
}

START_TEST(test_keys_build_parse)
{
  const char *id = "3f2a9c1e-7b44-0d2e-91aa-5c0e8d7f6b21";
  assert_key("m3s", m3s_key_framework("m3s"), "m3s:framework",
             M3S_KEY_FRAMEWORK, M3S_ROLE_NONE, NULL);
  assert_key("m3s", m3s_key_framework_config("m3s"), "m3s:framework_config",
             M3S_KEY_FRAMEWORK_CONFIG, M3S_ROLE_NONE, NULL);
  assert_key("m3s", m3s_key_kubernetes_config("m3s"), "m3s:kubernetes_config",
             M3S_KEY_KUBERNETES_CONFIG, M3S_ROLE_NONE, NULL);
  assert_key("m3s", m3s_key_kubernetes_node("m3s", "m3sagent.local-3f2a9c1e"),
             "m3s:kubernetes:m3sagent.local-3f2a9c1e", M3S_KEY_KUBERNETES_NODE,
             M3S_ROLE_NONE, "m3sagent.local-3f2a9c1e");
  assert_key("m3s", m3s_key_task("m3s", M3S_ROLE_DATASTORE, id),
             "m3s:datastore:3f2a9c1e-7b44-0d2e-91aa-5c0e8d7f6b21",
             M3S_KEY_TASK, M3S_ROLE_DATASTORE, id);
  assert_key("m3s", m3s_key_task("m3s", M3S_ROLE_SERVER, id),
             "m3s:server:3f2a9c1e-7b44-0d2e-91aa-5c0e8d7f6b21",
             M3S_KEY_TASK, M3S_ROLE_SERVER, id);
  assert_key("m3sdev", m3s_key_task("m3sdev", M3S_ROLE_AGENT, id),
             "m3sdev:agent:3f2a9c1e-7b44-0d2e-91aa-5c0e8d7f6b21",
             M3S_KEY_TASK, M3S_ROLE_AGENT, id);
  assert_key("m3sdev", m3s_key_framework_config("m3sdev"),
             "m3sdev:framework_config", M3S_KEY_FRAMEWORK_CONFIG,
             M3S_ROLE_NONE, NULL);
  assert_key("m3sdev", m3s_key_kubernetes_node("m3sdev", "m3sdevserver.local"),
             "m3sdev:kubernetes:m3sdevserver.local", M3S_KEY_KUBERNETES_NODE,
             M3S_ROLE_NONE, "m3sdevserver.local");

  /* invalid arguments */
  ck_assert_ptr_null(m3s_key_task("m3s", M3S_ROLE_NONE, id));
  ck_assert_ptr_null(m3s_key_task("m3s", M3S_ROLE_AGENT, ""));
  ck_assert_ptr_null(m3s_key_task("", M3S_ROLE_AGENT, id));
  ck_assert_ptr_null(m3s_key_task(NULL, M3S_ROLE_AGENT, id));
  ck_assert_ptr_null(m3s_key_framework(""));
  ck_assert_ptr_null(m3s_key_kubernetes_node("m3s", ""));
}
END_TEST

static const struct {
  const char *fw, *key;
  m3s_key_kind_t kind;
  m3s_role_t role;
  const char *name;
} key_cases[] = {
  /* another framework whose name extends ours is not ours, and back */
  { "m3s", "m3sdev:agent:1-2", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  { "m3s", "m3sdev:framework_config", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  { "m3sdev", "m3s:agent:1-2", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  { "m3s", ":", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  { "m3s", "", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  { "m3s", "M3S:agent:1", M3S_KEY_OTHER, M3S_ROLE_NONE, NULL },
  /* ours, but not a known shape */
  { "m3s", "m3s:", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:agent", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:agent:", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:kubernetes", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:kubernetes:", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:framework:x", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:framework_config:", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:agents:1", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:etcd:1", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  { "m3s", "m3s:frameworkx", M3S_KEY_CORRUPT, M3S_ROLE_NONE, NULL },
  /* ids and names are everything after the second ':' */
  { "m3s", "m3s:agent:a-b:c", M3S_KEY_TASK, M3S_ROLE_AGENT, "a-b:c" },
  { "m3s", "m3s:kubernetes:node-1.x", M3S_KEY_KUBERNETES_NODE, M3S_ROLE_NONE,
    "node-1.x" },
  { "m3s-a", "m3s-a:server:--", M3S_KEY_TASK, M3S_ROLE_SERVER, "--" },
  { "m3s:x", "m3s:x:agent:1", M3S_KEY_TASK, M3S_ROLE_AGENT, "1" },
};

START_TEST(test_keys_parse_cases)
{
  m3s_key_info_t ki;
  int rc = m3s_key_parse(key_cases[_i].fw, key_cases[_i].key, &ki);
  ck_assert_msg(rc == (int)key_cases[_i].kind, "%s / %s: kind %d, want %d",
                key_cases[_i].fw, key_cases[_i].key, rc, key_cases[_i].kind);
  ck_assert_int_eq(ki.role, key_cases[_i].role);
  if(key_cases[_i].name)
    ck_assert_str_eq(ki.name, key_cases[_i].name);
  else
    ck_assert_ptr_null(ki.name);
  /* out is optional */
  ck_assert_int_eq(m3s_key_parse(key_cases[_i].fw, key_cases[_i].key, NULL), rc);
}
END_TEST

START_TEST(test_keys_invalid)
{
  ck_assert_int_eq(m3s_key_parse("", "m3s:agent:1", NULL), -EINVAL);
  ck_assert_int_eq(m3s_key_parse(NULL, "m3s:agent:1", NULL), -EINVAL);
  ck_assert_int_eq(m3s_key_parse("m3s", NULL, NULL), -EINVAL);
}
END_TEST

static Suite *records_suite(void)
{
  Suite *s = suite_create("records");
  TCase *tc;

  tc = tcase_create("task");
  tcase_add_test(tc, test_task_go_agent_running);
  tcase_add_test(tc, test_task_go_datastore_new);
  tcase_add_test(tc, test_task_struct_roundtrip);
  tcase_add_test(tc, test_task_spec_digest);
  tcase_add_test(tc, test_task_omission);
  tcase_add_test(tc, test_task_item_leftovers);
  tcase_add_loop_test(tc, test_task_bad_inputs, 0,
                      (int)(sizeof(bad_tasks) / sizeof(bad_tasks[0])));
  tcase_add_test(tc, test_task_error_buffer);
  tcase_add_test(tc, test_task_lean_same);
  tcase_add_test(tc, test_task_pooled_seen);
  tcase_add_test(tc, test_extra_pool);
  tcase_add_test(tc, test_times);
  tcase_add_test(tc, test_roles);
  suite_add_tcase(s, tc);

  tc = tcase_create("framework_config");
  tcase_add_test(tc, test_fw_go_record);
  tcase_add_test(tc, test_fw_struct_roundtrip);
  tcase_add_loop_test(tc, test_fw_bad_inputs, 0,
                      (int)(sizeof(bad_fw) / sizeof(bad_fw[0])));
  tcase_add_test(tc, test_fw_defaults);
  suite_add_tcase(s, tc);

  tc = tcase_create("keys");
  tcase_add_test(tc, test_keys_build_parse);
  tcase_add_loop_test(tc, test_keys_parse_cases, 0,
                      (int)(sizeof(key_cases) / sizeof(key_cases[0])));
  tcase_add_test(tc, test_keys_invalid);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return m3s_check_run_data(argc, argv, records_suite());
}
