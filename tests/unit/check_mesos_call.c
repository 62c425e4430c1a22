/* Unit tests of the Mesos call builders (src/actors/mesos_call.c).
 *
 * Each built call is compared, as a JSON value (json_equal: key order does
 * not matter, an integer 5 is not the real 5.0), with a golden file in
 * tests/data/mesos/golden/. The golden files were written by hand from
 * mesos-http-api.md §2 and the captured calls in mesos-samples/calls, not
 * dumped from the builders. The configuration for SUBSCRIBE comes from
 * m3s_config_load with a fake environment, as the daemon gets it.
 *
 * The data directory is argv[1], else the compile definition
 * M3S_TEST_DATA_DIR (.../tests/data/mesos).
 */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/config.h"
#include "m3s/mesos-call.h"
#include "check_data.h"
#include "check_main.h"


#define FWID "82317765-6c51-4b5d-9b5d-eb9f972e545e-0000"
#define AGENT0 "82317765-6c51-4b5d-9b5d-eb9f972e545e-S0"
#define TASK "m3sserver.6f1c2a34-1b2c-4d5e-8f90-a1b2c3d4e5f6"

/* ---- helpers ---- */

static void load_cfg(m3s_config_t *cfg, const char *const *kv)
{
  char err[512];
  int rc = m3s_config_load(cfg, m3s_check_getenv, (void *)kv, err, sizeof(err));

  ck_assert_msg(rc == 0, "config: %s", err);
}

/* LOAD(&cfg, "NAME", "value", ...) */
#define LOAD(cfg, ...) load_cfg((cfg), (const char *const[]){ __VA_ARGS__, NULL, NULL })

static json_t *jparse(const char *s)
{
  json_error_t e;
  json_t *j = json_loads(s, 0, &e);

  ck_assert_msg(j, "bad test JSON %s: %s", s, e.text);
  return j;
}

/* Compares call (taken) with golden/<name>.json and checks what the dump
 * of it looks like. */
static void expect_golden(json_t *call, const char *name)
{
  char path[1024];
  json_error_t e;
  json_t *golden, *back;
  char *got, *want, *dump;

  ck_assert_msg(call, "%s: builder returned NULL", name);
  snprintf(path, sizeof(path), "%s/golden/%s.json", data_dir, name);
  golden = json_load_file(path, 0, &e);
  ck_assert_msg(golden, "cannot load %s: %s", path, e.text);
  if(!json_equal(call, golden)) {
    got = json_dumps(call, JSON_SORT_KEYS);
    want = json_dumps(golden, JSON_SORT_KEYS);
    ck_abort_msg("%s differs from the golden file:\n got  %s\n want %s", name, got, want);
  }

  /* The dump is compact and reads back as the same value (reals stay
   * reals). */
  dump = m3s_call_dump(call);
  ck_assert_ptr_nonnull(dump);
  ck_assert_msg(!strchr(dump, '\n') && !strstr(dump, "\": ") && !strstr(dump, "\", \""),
                "%s: dump is not compact: %s", name, dump);
  back = json_loads(dump, 0, &e);
  ck_assert_msg(back && json_equal(back, golden), "%s: dump does not read back: %s", name,
                dump);
  json_decref(back);
  free(dump);
  json_decref(golden);
  json_decref(call);
}

/* The dump of call (borrowed) contains needle. */
static void expect_dump_has(const json_t *call, const char *needle)
{
  char *dump = m3s_call_dump(call);

  ck_assert_ptr_nonnull(dump);
  ck_assert_msg(strstr(dump, needle), "dump lacks %s: %s", needle, dump);
  free(dump);
}

static const m3s_subscribe_opts_t first = { NULL, 5000.0, false };
static const m3s_subscribe_opts_t again = { FWID, 5000.0, false };

/* ---- SUBSCRIBE ---- */

START_TEST(test_subscribe_first)
{
  m3s_config_t cfg;
  json_t *call;

  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "sched-1.example.net");
  call = m3s_call_subscribe(&cfg, &first);
  ck_assert_ptr_nonnull(call);
  /* Doubles as reals, enums as names: on the wire exactly like this. */
  expect_dump_has(call, "\"failover_timeout\":5000.0");
  expect_dump_has(call, "\"checkpoint\":true");
  expect_dump_has(call, "\"webui_url\":\"http://sched-1.example.net:10000\"");
  /* No principal when MESOS_PRINCIPAL is empty, and no stream of ids. */
  ck_assert_ptr_null(json_object_get(json_object_get(json_object_get(call, "subscribe"),
                                                     "framework_info"), "principal"));
  expect_golden(call, "subscribe-first");
  /* An empty id is a first subscription too. */
  expect_golden(m3s_call_subscribe(&cfg, &(m3s_subscribe_opts_t){ "", 5000.0, false }),
                "subscribe-first");
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_subscribe_again)
{
  m3s_config_t cfg;
  json_t *call;

  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "sched-1.example.net");
  call = m3s_call_subscribe(&cfg, &again);
  ck_assert_ptr_nonnull(call);
  /* The id in both places, equal (§2.1). */
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(call, "framework_id"),
                                                     "value")), FWID);
  expect_golden(call, "subscribe-resubscribe");

  /* set_framework_id on a SUBSCRIBE keeps both places in step. */
  call = m3s_call_subscribe(&cfg, &first);
  m3s_call_set_framework_id(call, FWID);
  expect_golden(call, "subscribe-resubscribe");
  call = m3s_call_subscribe(&cfg, &again);
  m3s_call_set_framework_id(call, NULL);
  expect_golden(call, "subscribe-first");
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_subscribe_https_principal)
{
  m3s_config_t cfg;
  json_t *call;

  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "sched-2.example.net", "FRAMEWORK_USER", "nobody",
       "FRAMEWORK_NAME", "dev", "FRAMEWORK_ROLE", "k3s", "FRAMEWORK_PORT", "10443",
       "MESOS_PRINCIPAL", "m3s-principal");
  call = m3s_call_subscribe(&cfg, &(m3s_subscribe_opts_t){ NULL, 604800.0, true });
  expect_dump_has(call, "\"webui_url\":\"https://sched-2.example.net:10443\"");
  expect_golden(call, "subscribe-https-principal");
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_subscribe_offer_constraints)
{
  m3s_config_t cfg;

  /* All three set: one group per distinct hostname (server and datastore
   * share agent-1 once lower-cased). */
  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "sched-1.example.net",
       "K3S_SERVER_CONSTRAINT", "hostname:Agent-1.example.net",
       "K3S_AGENT_CONSTRAINT", "hostname:agent-2.example.net",
       "K3S_DS_CONSTRAINT", "hostname:AGENT-1.EXAMPLE.NET");
  expect_golden(m3s_call_subscribe(&cfg, &again), "subscribe-constraints");
  m3s_config_free(&cfg);

  /* Only two of three: no offer_constraints at all (m3s-behaviour.md §3.1). */
  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "sched-1.example.net",
       "K3S_SERVER_CONSTRAINT", "hostname:agent-1.example.net",
       "K3S_AGENT_CONSTRAINT", "hostname:agent-2.example.net");
  expect_golden(m3s_call_subscribe(&cfg, &first), "subscribe-first");
  m3s_config_free(&cfg);
}
END_TEST

START_TEST(test_subscribe_ipv6_and_invalid)
{
  m3s_config_t cfg;
  json_t *call;
  const char *url;

  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "fd00::1");
  call = m3s_call_subscribe(&cfg, &first);
  ck_assert_ptr_nonnull(call);
  url = json_string_value(json_object_get(json_object_get(json_object_get(call, "subscribe"),
                                                          "framework_info"), "webui_url"));
  ck_assert_str_eq(url, "http://[fd00::1]:10000");
  json_decref(call);

  ck_assert_ptr_null(m3s_call_subscribe(&cfg, NULL));
  ck_assert_ptr_null(m3s_call_subscribe(NULL, &first));
  ck_assert_ptr_null(m3s_call_subscribe(&cfg, &(m3s_subscribe_opts_t){ NULL, -1.0, false }));
  ck_assert_ptr_null(m3s_call_subscribe(&cfg, &(m3s_subscribe_opts_t){ NULL, NAN, false }));
  ck_assert_ptr_null(m3s_call_subscribe(&cfg, &(m3s_subscribe_opts_t){ NULL, INFINITY, false }));
  /* Not representable as int64 nanoseconds: the master refuses it. */
  ck_assert_ptr_null(m3s_call_subscribe(&cfg, &(m3s_subscribe_opts_t){ NULL, 1e10, false }));
  m3s_config_free(&cfg);
}
END_TEST

/* ---- offers ---- */

static const char launch_op[] =
  "{\"type\":\"LAUNCH\",\"launch\":{\"task_infos\":[{"
  "\"name\":\"sample-cmd-ok\",\"task_id\":{\"value\":\"cmd-ok\"},"
  "\"agent_id\":{\"value\":\"" AGENT0 "\"},"
  "\"resources\":[{\"name\":\"cpus\",\"type\":\"SCALAR\",\"scalar\":{\"value\":0.1}},"
  "{\"name\":\"mem\",\"type\":\"SCALAR\",\"scalar\":{\"value\":32.0}}],"
  "\"command\":{\"shell\":true,\"value\":\"echo hello-from-sample; sleep 2\"}}]}}";

START_TEST(test_accept)
{
  json_t *ops = json_array(), *call;

  json_array_append_new(ops, jparse(launch_op));
  call = m3s_call_accept(jparse("[\"82317765-6c51-4b5d-9b5d-eb9f972e545e-O2\"]"), ops, 5.0);
  ck_assert_ptr_nonnull(call);
  expect_dump_has(call, "\"refuse_seconds\":5.0");
  /* 0.1 stays readable in the dump (15 significant digits). */
  expect_dump_has(call, "\"value\":0.1}");
  expect_golden(call, "accept");

  /* No operations: an empty list. */
  call = m3s_call_accept(jparse("[\"o\"]"), NULL, 0.0);
  ck_assert_ptr_nonnull(call);
  ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(call, "accept"),
                                                    "operations")), 0);
  json_decref(call);
}
END_TEST

START_TEST(test_accept_invalid)
{
  /* Every failure releases what it took (ASan/LSan would see a leak). */
  ck_assert_ptr_null(m3s_call_accept(json_array(), json_array(), 5.0));
  ck_assert_ptr_null(m3s_call_accept(NULL, json_array(), 5.0));
  ck_assert_ptr_null(m3s_call_accept(jparse("[\"\"]"), json_array(), 5.0));
  ck_assert_ptr_null(m3s_call_accept(jparse("[{\"value\":\"o\"}]"), json_array(), 5.0));
  ck_assert_ptr_null(m3s_call_accept(jparse("[\"o\"]"), jparse("{}"), 5.0));
  ck_assert_ptr_null(m3s_call_accept(jparse("[\"o\"]"), jparse("[\"LAUNCH\"]"), 5.0));
  ck_assert_ptr_null(m3s_call_accept(jparse("[\"o\"]"), json_array(), -1.0));
  ck_assert_ptr_null(m3s_call_accept(jparse("[\"o\"]"), json_array(), NAN));
  ck_assert_ptr_null(m3s_call_accept(jparse("[\"o\"]"), NULL, INFINITY));
}
END_TEST

START_TEST(test_decline)
{
  json_t *call;

  expect_golden(m3s_call_decline(jparse("[\"82317765-6c51-4b5d-9b5d-eb9f972e545e-O17\","
                                        "\"82317765-6c51-4b5d-9b5d-eb9f972e545e-O18\"]"),
                                 120.0), "decline");
  call = m3s_call_decline(jparse("[\"82317765-6c51-4b5d-9b5d-eb9f972e545e-O0\"]"), 0.0);
  expect_dump_has(call, "\"refuse_seconds\":0.0");
  m3s_call_set_framework_id(call, FWID);
  expect_golden(call, "decline-framework-id");

  /* An empty list is a valid (useless) DECLINE. */
  call = m3s_call_decline(json_array(), 120.0);
  ck_assert_ptr_nonnull(call);
  ck_assert_uint_eq(json_array_size(json_object_get(json_object_get(call, "decline"),
                                                    "offer_ids")), 0);
  json_decref(call);

  ck_assert_ptr_null(m3s_call_decline(NULL, 1.0));
  ck_assert_ptr_null(m3s_call_decline(jparse("[\"o\", 5]"), 1.0));
  ck_assert_ptr_null(m3s_call_decline(jparse("[\"o\"]"), -5.0));
}
END_TEST

START_TEST(test_revive_suppress)
{
  expect_golden(m3s_call_revive(NULL), "revive-all");
  expect_golden(m3s_call_revive(""), "revive-all");
  expect_golden(m3s_call_revive("m3s"), "revive-role");
  expect_golden(m3s_call_suppress(NULL), "suppress-all");
  expect_golden(m3s_call_suppress(""), "suppress-all");
  expect_golden(m3s_call_suppress("m3s"), "suppress-role");
}
END_TEST

/* ---- tasks ---- */

START_TEST(test_kill)
{
  expect_golden(m3s_call_kill(TASK, AGENT0), "kill");
  expect_golden(m3s_call_kill(TASK, NULL), "kill-no-agent");
  /* The original sent agent_id {"value": ""}, which the master ignores
   * (mesos-samples kill-empty-agent-id): left out instead. */
  expect_golden(m3s_call_kill(TASK, ""), "kill-no-agent");
  ck_assert_ptr_null(m3s_call_kill(NULL, AGENT0));
  ck_assert_ptr_null(m3s_call_kill("", AGENT0));
}
END_TEST

START_TEST(test_acknowledge)
{
  expect_golden(m3s_call_acknowledge(AGENT0, "cmd-ok", "epIUrYVBRj6aMYjj6NTNmg=="),
                "acknowledge");
  ck_assert_ptr_null(m3s_call_acknowledge(NULL, "cmd-ok", "epIUrYVBRj6aMYjj6NTNmg=="));
  ck_assert_ptr_null(m3s_call_acknowledge(AGENT0, "", "epIUrYVBRj6aMYjj6NTNmg=="));
  /* No uuid, nothing to acknowledge (§2.8). */
  ck_assert_ptr_null(m3s_call_acknowledge(AGENT0, "cmd-ok", NULL));
  ck_assert_ptr_null(m3s_call_acknowledge(AGENT0, "cmd-ok", ""));
}
END_TEST

START_TEST(test_reconcile)
{
  json_t *a, *b;

  expect_golden(m3s_call_reconcile(jparse(
    "[{\"task_id\":\"health-cmd\",\"agent_id\":\"" AGENT0 "\"},"
    "{\"task_id\":\"health-http\"},"
    "{\"task_id\":\"no-such-task-no-agent\",\"agent_id\":\"\"}]")), "reconcile-explicit");
  expect_golden(m3s_call_reconcile(NULL), "reconcile-implicit");
  expect_golden(m3s_call_reconcile(json_array()), "reconcile-implicit");

  /* The same list added a task at a time (what the roles send). */
  a = m3s_call_reconcile(NULL);
  ck_assert_int_eq(m3s_call_reconcile_add(a, "health-cmd", AGENT0), 0);
  ck_assert_int_eq(m3s_call_reconcile_add(a, "health-http", NULL), 0);
  ck_assert_int_eq(m3s_call_reconcile_add(a, "no-such-task-no-agent", ""), 0);
  ck_assert_int_eq(m3s_call_reconcile_add(a, "", AGENT0), -EINVAL);
  expect_golden(a, "reconcile-explicit");
  b = m3s_call_kill("t", NULL);
  ck_assert_int_eq(m3s_call_reconcile_add(b, "t", NULL), -EINVAL);
  ck_assert_int_eq(m3s_call_reconcile_add(NULL, "t", NULL), -EINVAL);
  json_decref(b);

  /* agent_id null is the same as absent. */
  a = m3s_call_reconcile(jparse("[{\"task_id\":\"t\",\"agent_id\":null}]"));
  b = m3s_call_reconcile(jparse("[{\"task_id\":\"t\"}]"));
  ck_assert(a && b && json_equal(a, b));
  json_decref(a);
  json_decref(b);

  ck_assert_ptr_null(m3s_call_reconcile(jparse("{}")));
  ck_assert_ptr_null(m3s_call_reconcile(jparse("[\"t\"]")));
  ck_assert_ptr_null(m3s_call_reconcile(jparse("[{\"agent_id\":\"a\"}]")));
  ck_assert_ptr_null(m3s_call_reconcile(jparse("[{\"task_id\":\"\"}]")));
  ck_assert_ptr_null(m3s_call_reconcile(jparse("[{\"task_id\":{\"value\":\"t\"}}]")));
  ck_assert_ptr_null(m3s_call_reconcile(jparse("[{\"task_id\":\"t\"},{\"task_id\":\"u\","
                                               "\"agent_id\":5}]")));
}
END_TEST

START_TEST(test_teardown_and_framework_id)
{
  json_t *call = m3s_call_teardown();

  expect_golden(json_incref(call), "teardown");
  m3s_call_set_framework_id(call, "old-id");
  m3s_call_set_framework_id(call, FWID);   /* replaces */
  expect_golden(json_incref(call), "teardown-framework-id");
  m3s_call_set_framework_id(call, "");
  expect_golden(call, "teardown");
  /* Harmless on junk. */
  m3s_call_set_framework_id(NULL, FWID);
}
END_TEST

/* ---- type, dump, idempotency ---- */

START_TEST(test_types_and_idempotency)
{
  m3s_config_t cfg;
  struct {
    json_t *call;
    const char *type;
    bool idempotent;
  } table[] = {
    { NULL, "SUBSCRIBE", false },
    { m3s_call_accept(jparse("[\"o\"]"), NULL, 5.0), "ACCEPT", false },
    { m3s_call_decline(jparse("[\"o\"]"), 5.0), "DECLINE", true },
    { m3s_call_revive(NULL), "REVIVE", true },
    { m3s_call_suppress("m3s"), "SUPPRESS", true },
    { m3s_call_kill("t", NULL), "KILL", true },
    { m3s_call_acknowledge("a", "t", "epIUrYVBRj6aMYjj6NTNmg=="), "ACKNOWLEDGE", true },
    { m3s_call_reconcile(NULL), "RECONCILE", true },
    { m3s_call_teardown(), "TEARDOWN", true },
    /* Types no builder makes are not known to be safe. */
    { jparse("{\"type\":\"SHUTDOWN\"}"), "SHUTDOWN", false },
    { jparse("{\"type\":\"accept\"}"), "accept", false },
  };

  LOAD(&cfg, "FRAMEWORK_HOSTNAME", "sched-1.example.net");
  table[0].call = m3s_call_subscribe(&cfg, &first);
  m3s_config_free(&cfg);
  for(size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
    ck_assert_ptr_nonnull(table[i].call);
    ck_assert_str_eq(m3s_call_type(table[i].call), table[i].type);
    ck_assert_msg(m3s_call_idempotent(table[i].call) == table[i].idempotent,
                  "%s: idempotent should be %d", table[i].type, table[i].idempotent);
    json_decref(table[i].call);
  }
  ck_assert_ptr_null(m3s_call_type(NULL));
  ck_assert(!m3s_call_idempotent(NULL));
  {
    json_t *j = jparse("{\"type\":5}");

    ck_assert_ptr_null(m3s_call_type(j));
    ck_assert(!m3s_call_idempotent(j));
    json_decref(j);
  }
  ck_assert_ptr_null(m3s_call_dump(NULL));
}
END_TEST

static Suite *call_suite(void)
{
  Suite *s = suite_create("mesos_call");
  TCase *tc = tcase_create("subscribe");

  tcase_add_test(tc, test_subscribe_first);
  tcase_add_test(tc, test_subscribe_again);
  tcase_add_test(tc, test_subscribe_https_principal);
  tcase_add_test(tc, test_subscribe_offer_constraints);
  tcase_add_test(tc, test_subscribe_ipv6_and_invalid);
  suite_add_tcase(s, tc);

  tc = tcase_create("calls");
  tcase_add_test(tc, test_accept);
  tcase_add_test(tc, test_accept_invalid);
  tcase_add_test(tc, test_decline);
  tcase_add_test(tc, test_revive_suppress);
  tcase_add_test(tc, test_kill);
  tcase_add_test(tc, test_acknowledge);
  tcase_add_test(tc, test_reconcile);
  tcase_add_test(tc, test_teardown_and_framework_id);
  tcase_add_test(tc, test_types_and_idempotency);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return m3s_check_run_data(argc, argv, call_suite());
}
