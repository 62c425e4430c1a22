/* Run-time configuration changes in the offers actor (m3s/liveconfig.h,
 * m3s/offers.h): the real offers actor between fake roles, store and Mesos
 * actors, so that what it writes to framework_config and hands the roles
 * can be read exactly, including the order of a role's stale state report
 * and a change, which the integration tests cannot provoke at will. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/actor.h"
#include "m3s/config.h"
#include "m3s/liveconfig.h"
#include "m3s/msg.h"
#include "m3s/offers.h"
#include "m3s/role.h"
#include "m3s/store.h"
#include "check_main.h"

/* What the fakes saw; under lock. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static char *fwc_text;            /* the last framework_config written */
static int writes;
static int64_t last_role_tag;     /* the last WRITTEN tag a fake role got */
static int specs[4];              /* M3S_ROLE_SET_SPEC received, by role */
static m3s_role_spec_t last_spec[4];

static void fake_handle(m3s_actor_t *self, m3s_msg_t *m);
static const m3s_actor_ops_t fakes[] = {
  { .name = "store", .size = sizeof(m3s_actor_t), .handle = fake_handle },
  { .name = "mesos", .size = sizeof(m3s_actor_t), .handle = fake_handle },
  { .name = "datastore", .size = sizeof(m3s_actor_t), .handle = fake_handle },
  { .name = "server", .size = sizeof(m3s_actor_t), .handle = fake_handle },
  { .name = "agent", .size = sizeof(m3s_actor_t), .handle = fake_handle },
};

static void fake_handle(m3s_actor_t *self, m3s_msg_t *m)
{
  int idx = (int)(self->ops - fakes);
  if(idx == 0 && m->type == M3S_STORE_LOAD) {
    const m3s_store_load_t *l = m->payload;
    m3s_send(l->notify, m3s_msg_new(M3S_STORE_LOADED, l->tag, json_object(), m3s_json_drop));
  }
  else if(idx == 0 && m->type == M3S_STORE_WRITE) {
    const m3s_store_batch_t *b = m->payload;
    pthread_mutex_lock(&lock);
    for(size_t i = 0; i < b->n; i++)
      if(b->ops[i].kind == M3S_STORE_SET && strstr(b->ops[i].key, ":framework_config")) {
        free(fwc_text);
        fwc_text = strdup(b->ops[i].value);
        writes++;
      }
    pthread_mutex_unlock(&lock);
    if(b->notify)
      m3s_send(b->notify, m3s_msg_new(M3S_STORE_WRITTEN, b->tag, NULL, NULL));
  }
  else if(idx >= 2 && m->type == M3S_STORE_WRITTEN) {
    pthread_mutex_lock(&lock);
    last_role_tag = m->arg;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
  }
  else if(idx >= 2 && m->type == M3S_ROLE_SET_SPEC) {
    m3s_role_spec_t *sp = m3s_msg_take(m);
    pthread_mutex_lock(&lock);
    int role = idx - 1;
    m3s_config_free(&last_spec[role].cfg);
    last_spec[role] = *sp;
    specs[role]++;
    pthread_cond_broadcast(&cond);
    pthread_mutex_unlock(&lock);
    free(sp);
  }
}

static m3s_config_t cfg;
static m3s_system_t *sys;
static m3s_actor_t *offers;

static const char *getenv_fake(const char *name, void *ctx)
{
  (void)ctx;
  if(!strcmp(name, "FRAMEWORK_HOSTNAME"))
    return "localhost";
  if(!strcmp(name, "K3S_AGENT_CPU"))
    return "1";
  return NULL;
}

static void setup(void)
{
  char err[256];
  ck_assert_int_eq(m3s_config_load(&cfg, getenv_fake, NULL, err, sizeof(err)), 0);
  sys = m3s_system_new(&cfg);
  for(size_t i = 0; i < sizeof(fakes) / sizeof(fakes[0]); i++)
    m3s_system_add(sys, &fakes[i]);
  offers = m3s_system_add(sys, &m3s_offers_ops);
  ck_assert_int_eq(m3s_system_start(sys), 0);
}

static void teardown(void)
{
  m3s_system_stop(sys);
  m3s_system_free(sys);
  m3s_config_free(&cfg);
  for(int r = 0; r < 4; r++) {
    m3s_config_free(&last_spec[r].cfg);
    memset(&last_spec[r], 0, sizeof(last_spec[r]));
    specs[r] = 0;
  }
  free(fwc_text);
  fwc_text = NULL;
  writes = 0;
  last_role_tag = 0;
}

/* Sends a change; returns the answer (m3s_msg_free it). */
static m3s_msg_t *change(const char *json)
{
  char err[256];
  json_t *body = json_loads(json, 0, NULL);
  m3s_live_change_t *ch = m3s_live_change_from_json(body, err, sizeof(err));
  json_decref(body);
  ck_assert_msg(ch != NULL, "%s", err);
  m3s_msg_t *ans = NULL;
  ck_assert_int_eq(m3s_call(offers, m3s_msg_new(M3S_OFFERS_CONFIG_UPDATE, 0, ch, free), 10000,
                            &ans), 0);
  return ans;
}

/* framework_config as last written (new reference). */
static json_t *fwc(void)
{
  pthread_mutex_lock(&lock);
  json_t *j = fwc_text ? json_loads(fwc_text, 0, NULL) : NULL;
  pthread_mutex_unlock(&lock);
  ck_assert_ptr_nonnull(j);
  return j;
}

static void wait_specs(int role, int n)
{
  pthread_mutex_lock(&lock);
  while(specs[role] < n)
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
}

/* A state report of the agent role, written for it; returns once written. */
static void agent_state(uint64_t gen, double cpu, int desired, int64_t seq)
{
  m3s_offers_role_state_t *s = calloc(1, sizeof(*s));
  s->role = M3S_ROLE_AGENT;
  s->seq = seq;
  s->desired = desired;
  s->res = (m3s_task_resources_t){ cpu, cpu, 2000, 2000, 10000, 10000 };
  s->spec_gen = gen;
  m3s_send(offers, m3s_msg_new(M3S_OFFERS_ROLE_STATE, 0, s, NULL));
  pthread_mutex_lock(&lock);
  while(last_role_tag != (M3S_ROLE_CONFIG_TAG | seq))
    pthread_cond_wait(&cond, &lock);
  pthread_mutex_unlock(&lock);
}

START_TEST(test_change_written_and_handed_on)
{
  agent_state(0, 1, 2, 1);
  m3s_msg_t *ans = change("{\"IMAGE_K3S\": \"x:2\", \"K3S_AGENT_CPU\": 2}");
  ck_assert_uint_eq(ans->flags & M3S_ROLE_ERROR, 0);
  json_t *upd = json_object_get(ans->payload, "updated");
  ck_assert_str_eq(json_string_value(json_object_get(upd, "IMAGE_K3S")), "x:2");
  m3s_msg_free(ans);
  /* In framework_config once answered. */
  json_t *f = fwc();
  ck_assert_str_eq(json_string_value(json_object_get(f, "ImageK3S")), "x:2");
  ck_assert(json_number_value(json_object_get(f, "K3SAgentCPU")) == 2);
  ck_assert(json_number_value(json_object_get(f, "K3SAgentCPULimit")) == 2);
  ck_assert_int_eq(json_integer_value(json_object_get(f, "K3SAgentMax")), 2);
  ck_assert_str_eq(json_string_value(json_array_get(json_object_get(f, "M3SRuntimeVariables"),
                                                    0)), "IMAGE_K3S");
  json_decref(f);
  /* Every role got the new configuration; only the agent resources. */
  for(int r = M3S_ROLE_DATASTORE; r <= M3S_ROLE_AGENT; r++)
    wait_specs(r, 1);
  pthread_mutex_lock(&lock);
  ck_assert_str_eq(last_spec[M3S_ROLE_SERVER].cfg.image_k3s, "x:2");
  ck_assert_uint_eq(last_spec[M3S_ROLE_SERVER].res_mask, 0);
  ck_assert_uint_eq(last_spec[M3S_ROLE_AGENT].gen, 1);
  ck_assert_uint_eq(last_spec[M3S_ROLE_AGENT].res_mask,
                    1u << M3S_RES_CPU | 1u << M3S_RES_CPU_LIMIT);
  ck_assert(last_spec[M3S_ROLE_AGENT].res.cpu == 2);
  pthread_mutex_unlock(&lock);
}
END_TEST

/* A state the agent sent before it applied the change (gen 0) does not
 * put the old CPU back; its other news (the count) is taken. Once the role
 * reports the change's generation, its values are taken again. */
START_TEST(test_stale_state_keeps_the_change)
{
  agent_state(0, 1, 2, 1);
  m3s_msg_free(change("{\"K3S_AGENT_CPU\": 2}"));
  agent_state(0, 1, 3, 2);
  json_t *f = fwc();
  ck_assert(json_number_value(json_object_get(f, "K3SAgentCPU")) == 2);
  ck_assert_int_eq(json_integer_value(json_object_get(f, "K3SAgentMax")), 3);
  json_decref(f);
  agent_state(1, 3, 3, 3);
  f = fwc();
  ck_assert(json_number_value(json_object_get(f, "K3SAgentCPU")) == 3);
  json_decref(f);
}
END_TEST

/* Refused: the answer names the variable, nothing is written or sent. */
START_TEST(test_refused_change_changes_nothing)
{
  agent_state(0, 1, 2, 1);
  pthread_mutex_lock(&lock);
  int w = writes;
  pthread_mutex_unlock(&lock);
  static const struct { const char *body, *want; } bad[] = {
    { "{\"K3S_AGENT_CPU_LIMIT\": 0.5}", "K3S_AGENT_CPU_LIMIT=0.5 is below K3S_AGENT_CPU=1" },
    { "{\"IMAGE_K3S\": \"ok\", \"K3S_AGENT_MEM\": 1}", "K3S_AGENT_MEM=\"1\"" },
    { "{\"rollout\": true}", "rollout: unknown variable" },
  };
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    m3s_msg_t *ans = change(bad[i].body);
    ck_assert_uint_eq(ans->flags & M3S_ROLE_ERROR, M3S_ROLE_ERROR);
    ck_assert_int_eq(ans->arg, -EINVAL);
    ck_assert_msg(strstr(ans->payload, bad[i].want), "%s", (char *)ans->payload);
    m3s_msg_free(ans);
  }
  /* A good change after them: the first write and the first spec. */
  m3s_msg_free(change("{\"KUBERNETES_VERSION\": \"v1.40.0\"}"));
  pthread_mutex_lock(&lock);
  ck_assert_int_eq(writes, w + 1);
  pthread_mutex_unlock(&lock);
  wait_specs(M3S_ROLE_AGENT, 1);
  pthread_mutex_lock(&lock);
  ck_assert_int_eq(specs[M3S_ROLE_AGENT], 1);
  ck_assert_uint_eq(last_spec[M3S_ROLE_AGENT].gen, 1);
  ck_assert_str_eq(last_spec[M3S_ROLE_AGENT].cfg.kubernetes_version, "v1.40.0");
  pthread_mutex_unlock(&lock);
}
END_TEST

static Suite *liveconfig_suite(void)
{
  Suite *s = suite_create("liveconfig");
  TCase *tc = tcase_create("offers");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_change_written_and_handed_on);
  tcase_add_test(tc, test_stale_state_keeps_the_change);
  tcase_add_test(tc, test_refused_change_changes_nothing);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return m3s_check_run(liveconfig_suite());
}
