/* Unit tests of Mesos event parsing (src/actors/mesos_event.c).
 *
 * Inputs are real: the one-event samples captured from a Mesos 1.11 master
 * (tests/data/mesos/events/: the eight files of mesos-samples/events plus
 * five UPDATE records copied byte for byte from the captured session) and
 * the whole captured session (session.recordio, through the RecordIO
 * decoder). Every file of events/ must have an expectation below, so a new
 * sample cannot be silently skipped. Malformed events are written here.
 *
 * The data directory is argv[1], else the compile definition
 * M3S_TEST_DATA_DIR (.../tests/data/mesos).
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/mesos-event.h"
#include "m3s/recordio.h"
#include "check_data.h"

static char err[256];

#define FWID "82317765-6c51-4b5d-9b5d-eb9f972e545e-0000"
#define AGENT0 "82317765-6c51-4b5d-9b5d-eb9f972e545e-S0"
#define AGENT1 "82317765-6c51-4b5d-9b5d-eb9f972e545e-S1"
#define OFFER(n) "82317765-6c51-4b5d-9b5d-eb9f972e545e-O" #n

/* Parses events/<name>, asserting success and the type. */
static void parse_sample(const char *name, m3s_event_type_t type, m3s_event_t *ev)
{
  char rel[256];
  size_t len;
  char *buf;
  int rc;

  snprintf(rel, sizeof(rel), "events/%s", name);
  buf = read_file(rel, &len);
  memset(err, 'X', sizeof(err) - 1);
  err[sizeof(err) - 1] = '\0';
  rc = m3s_event_parse(buf, len, ev, err, sizeof(err));
  free(buf);
  ck_assert_msg(rc == 0, "%s: rc %d: %s", name, rc, err);
  ck_assert_str_eq(err, "");
  ck_assert_msg(ev->type == type, "%s: type %s, expected %s", name,
                m3s_event_type_name(ev->type), m3s_event_type_name(type));
  ck_assert_ptr_nonnull(ev->root);
}

static void assert_str_or_null(const char *got, const char *want, const char *what)
{
  if(!want)
    ck_assert_msg(got == NULL, "%s: \"%s\", expected NULL", what, got);
  else
    ck_assert_msg(got && strcmp(got, want) == 0, "%s: \"%s\", expected \"%s\"", what,
                  got ? got : "(null)", want);
}

/* ---- the captured samples ---- */

static void check_subscribed(const char *name)
{
  m3s_event_t ev;
  json_t *hb;

  parse_sample(name, M3S_EV_SUBSCRIBED, &ev);
  ck_assert_str_eq(ev.framework_id, FWID);
  /* On the wire it is 15.0: a real, which json_integer_value reads as 0. */
  hb = json_object_get(json_object_get(ev.root, "subscribed"), "heartbeat_interval_seconds");
  ck_assert(json_is_real(hb));
  ck_assert(ev.heartbeat_interval_s == 15.0);
  ck_assert_ptr_null(ev.offers);
  ck_assert_ptr_null(ev.task_id);
  m3s_event_free(&ev);
  ck_assert_ptr_null(ev.root);
}

static void check_heartbeat(const char *name)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_HEARTBEAT, &ev);
  ck_assert_ptr_null(ev.framework_id);
  m3s_event_free(&ev);
}

static void check_offer(json_t *offer, const char *id, const char *agent, size_t nres)
{
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(offer, "id"), "value")), id);
  ck_assert_str_eq(json_string_value(json_object_get(json_object_get(offer, "agent_id"),
                                                     "value")), agent);
  ck_assert_str_eq(json_string_value(json_object_get(offer, "hostname")), "127.0.0.1");
  ck_assert_uint_eq(json_array_size(json_object_get(offer, "resources")), nres);
}

static void check_offers_1(const char *name)
{
  m3s_event_t ev;
  json_t *cpus;

  parse_sample(name, M3S_EV_OFFERS, &ev);
  ck_assert(json_is_array(ev.offers));
  ck_assert_uint_eq(json_array_size(ev.offers), 1);
  check_offer(json_array_get(ev.offers, 0), OFFER(0), AGENT0, 4);
  /* Scalars are written 4.0: read as numbers, not integers. */
  cpus = json_array_get(json_object_get(json_array_get(ev.offers, 0), "resources"), 1);
  ck_assert_str_eq(json_string_value(json_object_get(cpus, "name")), "cpus");
  ck_assert(json_number_value(json_object_get(json_object_get(cpus, "scalar"), "value")) == 4.0);
  m3s_event_free(&ev);
}

static void check_offers_2(const char *name)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_OFFERS, &ev);
  ck_assert_uint_eq(json_array_size(ev.offers), 2);
  check_offer(json_array_get(ev.offers, 0), OFFER(17), AGENT0, 4);
  check_offer(json_array_get(ev.offers, 1), OFFER(18), AGENT1, 4);
  m3s_event_free(&ev);
}

static void check_rescind(const char *name)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_RESCIND, &ev);
  ck_assert_str_eq(ev.offer_id, OFFER(19));
  m3s_event_free(&ev);
}

static void check_failure(const char *name)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_FAILURE, &ev);
  ck_assert_str_eq(ev.failure_agent_id, AGENT1);
  ck_assert_int_eq(ev.failure_status, -1);
  m3s_event_free(&ev);
}

static void check_error_failed_over(const char *name)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_ERROR, &ev);
  ck_assert_str_eq(ev.message, "Framework failed over");
  m3s_event_free(&ev);
}

static void check_error_removed(const char *name)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_ERROR, &ev);
  ck_assert_str_eq(ev.message, "Framework has been removed");
  m3s_event_free(&ev);
}

typedef struct update_want {
  const char *task_id, *agent_id, *state, *uuid, *reason, *source, *message;
  int healthy;
} update_want_t;

static void check_update(const char *name, const update_want_t *w)
{
  m3s_event_t ev;

  parse_sample(name, M3S_EV_UPDATE, &ev);
  assert_str_or_null(ev.task_id, w->task_id, "task_id");
  assert_str_or_null(ev.agent_id, w->agent_id, "agent_id");
  assert_str_or_null(ev.state, w->state, "state");
  assert_str_or_null(ev.uuid, w->uuid, "uuid");
  assert_str_or_null(ev.reason, w->reason, "reason");
  assert_str_or_null(ev.source, w->source, "source");
  assert_str_or_null(ev.status_message, w->message, "status_message");
  ck_assert_int_eq(ev.healthy, w->healthy);
  ck_assert_ptr_eq(ev.status, json_object_get(json_object_get(ev.root, "update"), "status"));
  m3s_event_free(&ev);
}

static void check_update_starting(const char *name)
{
  check_update(name, &(update_want_t){
    "cmd-ok", AGENT0, "TASK_STARTING", "epIUrYVBRj6aMYjj6NTNmg==", NULL,
    "SOURCE_EXECUTOR", NULL, -1 });
}

static void check_update_health(const char *name)
{
  check_update(name, &(update_want_t){
    "health-cmd", AGENT0, "TASK_RUNNING", "ogBYnvATSCWM1H6/m73yeQ==",
    "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED", "SOURCE_EXECUTOR", NULL, 1 });
}

static void check_update_lost(const char *name)
{
  check_update(name, &(update_want_t){
    "bad-offer-1", AGENT0, "TASK_LOST", NULL, "REASON_INVALID_OFFERS", "SOURCE_MASTER",
    "Task launched with invalid offers: Offer no-such-offer-O99 is no longer valid", -1 });
}

static void check_update_failed(const char *name)
{
  check_update(name, &(update_want_t){
    "cmd-exit3", AGENT0, "TASK_FAILED", "n74kQdy/R9+PmVzhpYPpCQ==", NULL,
    "SOURCE_EXECUTOR", "Command exited with status 3", -1 });
}

static void check_update_reconciliation(const char *name)
{
  check_update(name, &(update_want_t){
    "health-cmd", AGENT0, "TASK_RUNNING", NULL, "REASON_RECONCILIATION",
    "SOURCE_MASTER", "Reconciliation: Latest task state", 1 });
}

static const struct sample {
  const char *file;
  void (*check)(const char *file);
} samples[] = {
  { "subscribed.json", check_subscribed },
  { "heartbeat.json", check_heartbeat },
  { "offers-1-agent.json", check_offers_1 },
  { "offers-2-agents.json", check_offers_2 },
  { "rescind.json", check_rescind },
  { "failure-agent-lost.json", check_failure },
  { "error-framework-failed-over.json", check_error_failed_over },
  { "error-framework-removed.json", check_error_removed },
  { "update-starting.json", check_update_starting },
  { "update-health.json", check_update_health },
  { "update-lost-invalid-offers.json", check_update_lost },
  { "update-failed-exit3.json", check_update_failed },
  { "update-reconciliation.json", check_update_reconciliation },
};
#define NSAMPLES (sizeof(samples) / sizeof(samples[0]))

START_TEST(test_samples)
{
  samples[_i].check(samples[_i].file);
}
END_TEST

START_TEST(test_every_sample_has_a_check)
{
  char path[1024];
  DIR *dir;
  struct dirent *de;
  size_t seen = 0;

  snprintf(path, sizeof(path), "%s/events", data_dir);
  dir = opendir(path);
  ck_assert_msg(dir, "cannot open %s", path);
  while((de = readdir(dir))) {
    bool known = false;

    if(de->d_name[0] == '.')
      continue;
    for(size_t i = 0; i < NSAMPLES; i++)
      known = known || strcmp(de->d_name, samples[i].file) == 0;
    ck_assert_msg(known, "sample %s has no expectation in this test", de->d_name);
    seen++;
  }
  closedir(dir);
  ck_assert_uint_eq(seen, NSAMPLES);
}
END_TEST

/* ---- the whole captured session ---- */

typedef struct tally {
  size_t by_type[M3S_EV_UNKNOWN + 1];
  size_t with_uuid, without_uuid, terminal;
  int first_rc;
  char first_err[256];
} tally_t;

static int tally_cb(void *ctx, const char *rec, size_t len)
{
  tally_t *t = ctx;
  m3s_event_t ev;
  int rc = m3s_event_parse(rec, len, &ev, t->first_err, sizeof(t->first_err));

  if(rc) {
    t->first_rc = rc;
    return rc;
  }
  t->by_type[ev.type]++;
  if(ev.type == M3S_EV_UPDATE) {
    if(ev.uuid)
      t->with_uuid++;
    else
      t->without_uuid++;
    if(m3s_task_state_terminal(ev.state))
      t->terminal++;
  }
  m3s_event_free(&ev);
  return 0;
}

START_TEST(test_captured_session)
{
  m3s_recordio_t d;
  tally_t t = { 0 };
  size_t len;
  char *body = read_file("session.recordio", &len);

  m3s_recordio_init(&d, M3S_RECORDIO_DEFAULT_MAX);
  ck_assert_msg(m3s_recordio_feed(&d, body, len, tally_cb, &t) == 0, "rc %d: %s",
                t.first_rc, t.first_err);
  m3s_recordio_free(&d);
  free(body);
  /* The capture README's counts. */
  ck_assert_uint_eq(t.by_type[M3S_EV_SUBSCRIBED], 1);
  ck_assert_uint_eq(t.by_type[M3S_EV_HEARTBEAT], 8);
  ck_assert_uint_eq(t.by_type[M3S_EV_OFFERS], 19);
  ck_assert_uint_eq(t.by_type[M3S_EV_UPDATE], 39);
  ck_assert_uint_eq(t.by_type[M3S_EV_RESCIND], 1);
  ck_assert_uint_eq(t.by_type[M3S_EV_FAILURE], 1);
  ck_assert_uint_eq(t.by_type[M3S_EV_ERROR], 1);
  ck_assert_uint_eq(t.by_type[M3S_EV_UNKNOWN], 0);
  /* Agent/executor updates carry a uuid (STARTING 10, RUNNING 9, FAILED 3,
   * FINISHED 2, KILLED 1); master-generated ones do not (LOST 7, RUNNING 4
   * reconciliation/reregistration answers, ERROR 3). */
  ck_assert_uint_eq(t.with_uuid, 25);
  ck_assert_uint_eq(t.without_uuid, 14);
  /* Terminal: LOST 7 + ERROR 3 + FAILED 3 + FINISHED 2 + KILLED 1. */
  ck_assert_uint_eq(t.terminal, 16);
}
END_TEST

/* ---- malformed events ---- */

static const struct bad {
  const char *json;
  const char *needle;     /* must appear in the error line */
} bad_events[] = {
  { "not json", "not valid JSON" },
  { "", "not valid JSON" },
  { "{\"type\":\"HEARTBEAT\"", "not valid JSON" },
  { "{\"type\":\"HEARTBEAT\",\"type\":\"ERROR\"}", "not valid JSON" },
  { "[{\"type\":\"HEARTBEAT\"}]", "event is an array, expected an object" },
  { "{}", "event has no type" },
  { "{\"type\":null}", "event has no type" },
  { "{\"heartbeat\":{}}", "event has no type" },
  { "{\"type\":5}", "event type is an integer, expected a string" },
  /* SUBSCRIBED */
  { "{\"type\":\"SUBSCRIBED\"}", "SUBSCRIBED event: subscribed is missing" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":[]}",
    "SUBSCRIBED event: subscribed is an array, expected an object" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"heartbeat_interval_seconds\":15.0}}",
    "SUBSCRIBED event: subscribed.framework_id is missing" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{}}}",
    "SUBSCRIBED event: subscribed.framework_id.value is missing" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":\"" FWID "\"}}",
    "SUBSCRIBED event: subscribed.framework_id is a string, expected an object" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"\"}}}",
    "SUBSCRIBED event: subscribed.framework_id.value is empty" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},"
    "\"heartbeat_interval_seconds\":\"15\"}}",
    "subscribed.heartbeat_interval_seconds is a string, expected a number" },
  { "{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},"
    "\"heartbeat_interval_seconds\":-1.0}}",
    "subscribed.heartbeat_interval_seconds is negative" },
  /* UPDATE */
  { "{\"type\":\"UPDATE\"}", "UPDATE event: update is missing" },
  { "{\"type\":\"UPDATE\",\"update\":{}}", "UPDATE event: update.status is missing" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"state\":\"TASK_RUNNING\"}}}",
    "UPDATE event: update.status.task_id is missing" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"}}}}",
    "UPDATE event: update.status.state is missing" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":1}}}",
    "update.status.state is an integer, expected a string" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"\"}}}",
    "update.status.state is empty" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":7},"
    "\"state\":\"TASK_RUNNING\"}}}",
    "update.status.task_id.value is an integer, expected a string" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"TASK_RUNNING\",\"agent_id\":\"S0\"}}}",
    "update.status.agent_id is a string, expected an object" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"TASK_RUNNING\",\"uuid\":{\"value\":\"mz5cGkfST46hw20vDpt6RQ==\"}}}}",
    "update.status.uuid is an object, expected a string" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"TASK_RUNNING\",\"healthy\":\"true\"}}}",
    "update.status.healthy is a string, expected a boolean" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"TASK_RUNNING\",\"reason\":3}}}",
    "update.status.reason is an integer, expected a string" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"TASK_RUNNING\",\"source\":true}}}",
    "update.status.source is a boolean, expected a string" },
  { "{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
    "\"state\":\"TASK_RUNNING\",\"message\":[]}}}",
    "update.status.message is an array, expected a string" },
  /* OFFERS */
  { "{\"type\":\"OFFERS\"}", "OFFERS event: offers is missing" },
  { "{\"type\":\"OFFERS\",\"offers\":[]}", "OFFERS event: offers is an array" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":{}}}",
    "offers.offers is an object, expected an array" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[1]}}",
    "offers.offers[0] is an integer, expected an object" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"agent_id\":{\"value\":\"a\"},"
    "\"hostname\":\"h\",\"resources\":[]}]}}",
    "offers.offers[0].id is missing" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"id\":{\"value\":\"o\"},"
    "\"hostname\":\"h\",\"resources\":[]}]}}",
    "offers.offers[0].agent_id is missing" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"id\":{\"value\":\"o\"},"
    "\"agent_id\":{\"value\":\"a\"},\"resources\":[]}]}}",
    "offers.offers[0].hostname is missing" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"id\":{\"value\":\"o\"},"
    "\"agent_id\":{\"value\":\"a\"},\"hostname\":\"h\",\"resources\":[]},"
    "{\"id\":{\"value\":\"o2\"},\"agent_id\":{\"value\":\"a\"},\"hostname\":\"h\"}]}}",
    "offers.offers[1].resources is missing" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"id\":{\"value\":\"o\"},"
    "\"agent_id\":{\"value\":\"a\"},\"hostname\":\"h\",\"resources\":[\"cpus\"]}]}}",
    "offers.offers[0].resources[0] is a string, expected an object" },
  { "{\"type\":\"OFFERS\",\"offers\":{\"offers\":[{\"id\":{\"value\":\"o\"},"
    "\"agent_id\":{\"value\":\"a\"},\"hostname\":\"h\",\"resources\":[{\"type\":\"SCALAR\"}]}]}}",
    "offers.offers[0].resources[0].name is missing" },
  /* RESCIND, ERROR, FAILURE */
  { "{\"type\":\"RESCIND\",\"rescind\":{}}", "RESCIND event: rescind.offer_id is missing" },
  { "{\"type\":\"ERROR\",\"error\":{}}", "ERROR event: error.message is missing" },
  { "{\"type\":\"ERROR\",\"error\":\"Framework failed over\"}",
    "ERROR event: error is a string, expected an object" },
  { "{\"type\":\"ERROR\",\"message\":\"Framework failed over\"}",
    "ERROR event: error is missing" },
  { "{\"type\":\"FAILURE\",\"failure\":{\"agent_id\":{\"value\":\"a\"},\"status\":1.5}}",
    "FAILURE event: failure.status is a real, expected an integer" },
  { "{\"type\":\"FAILURE\",\"failure\":{\"status\":-1}}",
    "FAILURE event: failure.status is out of range" },
  { "{\"type\":\"FAILURE\",\"failure\":{\"agent_id\":{\"value\":3}}}",
    "FAILURE event: failure.agent_id.value is an integer, expected a string" },
  /* Types this daemon ignores still need their body object. */
  { "{\"type\":\"MESSAGE\"}", "MESSAGE event: message is missing" },
  { "{\"type\":\"INVERSE_OFFERS\",\"inverse_offers\":1}",
    "INVERSE_OFFERS event: inverse_offers is an integer, expected an object" },
};
#define NBAD (sizeof(bad_events) / sizeof(bad_events[0]))

START_TEST(test_malformed)
{
  const struct bad *b = &bad_events[_i];
  m3s_event_t ev;
  int rc;

  memset(&ev, 0x5a, sizeof(ev));   /* garbage, to see that parse clears it */
  rc = m3s_event_parse(b->json, strlen(b->json), &ev, err, sizeof(err));
  ck_assert_msg(rc == -EPROTO, "%s: rc %d, expected -EPROTO", b->json, rc);
  ck_assert_msg(strstr(err, b->needle), "%s: error \"%s\" lacks \"%s\"", b->json, err,
                b->needle);
  ck_assert_msg(!strchr(err, '\n'), "error is not one line: %s", err);
  /* Nothing to free, and freeing anyway is harmless. */
  ck_assert_ptr_null(ev.root);
  ck_assert_ptr_null(ev.task_id);
  ck_assert_ptr_null(ev.offers);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_error_line_details)
{
  m3s_event_t ev;
  char small[12];
  /* Raw control bytes inside a JSON string are invalid; whatever jansson
   * quotes back from the input, the line must stay one line. */
  static const char ctl[] = "{\"type\":\"HEART\nBEAT\r\"}";

  ck_assert_int_eq(m3s_event_parse(ctl, strlen(ctl), &ev, err, sizeof(err)), -EPROTO);
  ck_assert_msg(!strchr(err, '\n') && !strchr(err, '\r'), "not one line: %s", err);
  /* A short buffer is truncated, still terminated. */
  ck_assert_int_eq(m3s_event_parse("{}", 2, &ev, small, sizeof(small)), -EPROTO);
  ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
  /* No buffer at all is fine. */
  ck_assert_int_eq(m3s_event_parse("{}", 2, &ev, NULL, 0), -EPROTO);
  ck_assert_int_eq(m3s_event_parse("{}", 2, &ev, err, 0), -EPROTO);
}
END_TEST

/* ---- well-formed edge cases ---- */

static void parse_ok(const char *json, m3s_event_t *ev)
{
  int rc = m3s_event_parse(json, strlen(json), ev, err, sizeof(err));

  ck_assert_msg(rc == 0, "%s: rc %d: %s", json, rc, err);
}

START_TEST(test_unknown_types)
{
  m3s_event_t ev;

  parse_ok("{\"type\":\"NEW_EVENT_TYPE\",\"new_event_type\":{\"x\":1}}", &ev);
  ck_assert_int_eq(ev.type, M3S_EV_UNKNOWN);
  ck_assert_ptr_nonnull(ev.root);
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"UNKNOWN\"}", &ev);
  ck_assert_int_eq(ev.type, M3S_EV_UNKNOWN);
  m3s_event_free(&ev);
  /* Case matters: enum names are exact. */
  parse_ok("{\"type\":\"heartbeat\"}", &ev);
  ck_assert_int_eq(ev.type, M3S_EV_UNKNOWN);
  m3s_event_free(&ev);

  /* Known types this daemon ignores parse with just their body. */
  parse_ok("{\"type\":\"INVERSE_OFFERS\",\"inverse_offers\":{}}", &ev);
  ck_assert_int_eq(ev.type, M3S_EV_INVERSE_OFFERS);
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"RESCIND_INVERSE_OFFER\",\"rescind_inverse_offer\":"
           "{\"inverse_offer_id\":{\"value\":\"o\"}}}", &ev);
  ck_assert_int_eq(ev.type, M3S_EV_RESCIND_INVERSE_OFFER);
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"UPDATE_OPERATION_STATUS\",\"update_operation_status\":{\"status\":"
           "{\"state\":\"OPERATION_FINISHED\",\"uuid\":{\"value\":\"mz5cGkfST46hw20vDpt6RQ==\"}}}}",
           &ev);
  ck_assert_int_eq(ev.type, M3S_EV_UPDATE_OPERATION_STATUS);
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"MESSAGE\",\"message\":{\"agent_id\":{\"value\":\"a\"},"
           "\"executor_id\":{\"value\":\"e\"},\"data\":\"cGluZw==\"}}", &ev);
  ck_assert_int_eq(ev.type, M3S_EV_MESSAGE);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_heartbeat_interval_forms)
{
  m3s_event_t ev;

  /* 15.0 (what the master writes), 15 and 2.5 all read as numbers. */
  parse_ok("{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},"
           "\"heartbeat_interval_seconds\":15.0}}", &ev);
  ck_assert(ev.heartbeat_interval_s == 15.0);
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},"
           "\"heartbeat_interval_seconds\":15}}", &ev);
  ck_assert(ev.heartbeat_interval_s == 15.0);
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},"
           "\"heartbeat_interval_seconds\":2.5}}", &ev);
  ck_assert(ev.heartbeat_interval_s == 2.5);
  m3s_event_free(&ev);
  /* Absent (or null): 0, the caller uses the master's default. */
  parse_ok("{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"}}}", &ev);
  ck_assert(ev.heartbeat_interval_s == 0.0);
  ck_assert_str_eq(ev.framework_id, "f");
  m3s_event_free(&ev);
  parse_ok("{\"type\":\"SUBSCRIBED\",\"subscribed\":{\"framework_id\":{\"value\":\"f\"},"
           "\"heartbeat_interval_seconds\":null}}", &ev);
  ck_assert(ev.heartbeat_interval_s == 0.0);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_update_optional_fields)
{
  m3s_event_t ev;

  /* The minimum: task_id and state. */
  parse_ok("{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
           "\"state\":\"TASK_LOST\"}}}", &ev);
  ck_assert_str_eq(ev.task_id, "t");
  ck_assert_str_eq(ev.state, "TASK_LOST");
  ck_assert_ptr_null(ev.agent_id);
  ck_assert_ptr_null(ev.uuid);
  ck_assert_ptr_null(ev.reason);
  ck_assert_ptr_null(ev.source);
  ck_assert_ptr_null(ev.status_message);
  ck_assert_int_eq(ev.healthy, -1);
  m3s_event_free(&ev);
  /* An empty uuid cannot be acknowledged: reported as none; an empty agent
   * id likewise; null means not set; healthy false is 0. */
  parse_ok("{\"type\":\"UPDATE\",\"update\":{\"status\":{\"task_id\":{\"value\":\"t\"},"
           "\"state\":\"TASK_RUNNING\",\"uuid\":\"\",\"agent_id\":{\"value\":\"\"},"
           "\"reason\":null,\"healthy\":false}}}", &ev);
  ck_assert_ptr_null(ev.uuid);
  ck_assert_ptr_null(ev.agent_id);
  ck_assert_ptr_null(ev.reason);
  ck_assert_int_eq(ev.healthy, 0);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_offers_edge_cases)
{
  m3s_event_t ev;

  /* Repeated fields are omitted when empty: an OFFERS body without offers
   * is an empty list. */
  parse_ok("{\"type\":\"OFFERS\",\"offers\":{}}", &ev);
  ck_assert(json_is_array(ev.offers));
  ck_assert_uint_eq(json_array_size(ev.offers), 0);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_failure_with_status)
{
  m3s_event_t ev;

  parse_ok("{\"type\":\"FAILURE\",\"failure\":{\"agent_id\":{\"value\":\"a\"},"
           "\"executor_id\":{\"value\":\"e\"},\"status\":256}}", &ev);
  ck_assert_str_eq(ev.failure_agent_id, "a");
  ck_assert_int_eq(ev.failure_status, 256);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_record_not_nul_terminated)
{
  static const char buf[] = "{\"type\":\"HEARTBEAT\"}20\n{\"type\"";
  m3s_event_t ev;

  /* Only len bytes are read: the next record's bytes follow directly. */
  ck_assert_int_eq(m3s_event_parse(buf, 20, &ev, err, sizeof(err)), 0);
  ck_assert_int_eq(ev.type, M3S_EV_HEARTBEAT);
  m3s_event_free(&ev);
}
END_TEST

START_TEST(test_task_states)
{
  static const char *const terminal[] = {
    "TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_ERROR", "TASK_LOST",
    "TASK_DROPPED", "TASK_GONE", "TASK_GONE_BY_OPERATOR",
  };
  static const char *const live[] = {
    "TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING",
    "TASK_UNREACHABLE", "TASK_UNKNOWN", "FINISHED", "task_finished", "",
    "TASK_FINISHED ",
  };

  for(size_t i = 0; i < sizeof(terminal) / sizeof(terminal[0]); i++)
    ck_assert_msg(m3s_task_state_terminal(terminal[i]), "%s", terminal[i]);
  for(size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
    ck_assert_msg(!m3s_task_state_terminal(live[i]), "%s", live[i]);
  ck_assert(!m3s_task_state_terminal(NULL));
}
END_TEST

START_TEST(test_type_names)
{
  static const char *const names[] = {
    "SUBSCRIBED", "OFFERS", "INVERSE_OFFERS", "RESCIND", "RESCIND_INVERSE_OFFER",
    "UPDATE", "UPDATE_OPERATION_STATUS", "MESSAGE", "FAILURE", "ERROR", "HEARTBEAT",
    "UNKNOWN",
  };

  ck_assert_uint_eq(sizeof(names) / sizeof(names[0]), M3S_EV_UNKNOWN + 1);
  for(int t = 0; t <= M3S_EV_UNKNOWN; t++)
    ck_assert_str_eq(m3s_event_type_name((m3s_event_type_t)t), names[t]);
  ck_assert_str_eq(m3s_event_type_name((m3s_event_type_t)99), "UNKNOWN");
}
END_TEST

static Suite *event_suite(void)
{
  Suite *s = suite_create("mesos_event");
  TCase *tc = tcase_create("samples");

  tcase_add_loop_test(tc, test_samples, 0, (int)NSAMPLES);
  tcase_add_test(tc, test_every_sample_has_a_check);
  tcase_add_test(tc, test_captured_session);
  suite_add_tcase(s, tc);

  tc = tcase_create("malformed");
  tcase_add_loop_test(tc, test_malformed, 0, (int)NBAD);
  tcase_add_test(tc, test_error_line_details);
  suite_add_tcase(s, tc);

  tc = tcase_create("edge");
  tcase_add_test(tc, test_unknown_types);
  tcase_add_test(tc, test_heartbeat_interval_forms);
  tcase_add_test(tc, test_update_optional_fields);
  tcase_add_test(tc, test_offers_edge_cases);
  tcase_add_test(tc, test_failure_with_status);
  tcase_add_test(tc, test_record_not_nul_terminated);
  tcase_add_test(tc, test_task_states);
  tcase_add_test(tc, test_type_names);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return m3s_check_run_data(argc, argv, event_suite());
}
