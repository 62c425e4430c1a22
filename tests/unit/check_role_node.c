/* The node clock of the server and agent roles (m3s/role.h): when a task
 * whose Kubernetes node is NotReady or missing is killed. The role actor
 * feeds it the times; the integration tests (test_orchestra.py,
 * test_node_*) check the whole path. */
#include <check.h>
#include <stdint.h>

#include "m3s/role.h"
#include "check_main.h"

#define S 1000 /* ms */

START_TEST(test_no_clock_without_evidence)
{
  /* Not running, or the K3s API view not live: no clock, never killed. */
  m3s_role_node_clock_t c = { 0, 0, 5 * S };
  ck_assert_int_eq(m3s_role_node_since(&c), 0);
  ck_assert(m3s_role_node_deadline(&c, 3 * S, 0) == INT64_MAX);
  c = (m3s_role_node_clock_t){ 5 * S, 0, 0 };
  ck_assert_int_eq(m3s_role_node_since(&c), 0);
  ck_assert(m3s_role_node_deadline(&c, 3 * S, 0) == INT64_MAX);
  /* K3S_NODE_TIMEOUT 0 turns it off. */
  c = (m3s_role_node_clock_t){ 5 * S, 0, 1 };
  ck_assert(m3s_role_node_deadline(&c, 0, 0) == INT64_MAX);
}
END_TEST

START_TEST(test_clock_starts_at_the_latest_evidence)
{
  /* A node never seen: from RUNNING. */
  m3s_role_node_clock_t c = { 10 * S, 0, 1 * S };
  ck_assert_int_eq(m3s_role_node_since(&c), 10 * S);
  ck_assert_int_eq(m3s_role_node_deadline(&c, 3 * S, 0), 13 * S);
  /* Seen Ready later: from then (a node Ready again resets it). */
  c.last_ready_ms = 100 * S;
  ck_assert_int_eq(m3s_role_node_deadline(&c, 3 * S, 0), 103 * S);
  /* The K3s API view came back later still: from then. */
  c.live_ms = 200 * S;
  ck_assert_int_eq(m3s_role_node_since(&c), 200 * S);
  ck_assert_int_eq(m3s_role_node_deadline(&c, 3 * S, 0), 203 * S);
}
END_TEST

START_TEST(test_cleanup_wait_is_a_minimum_run_time)
{
  m3s_role_node_clock_t c = { 10 * S, 12 * S, 1 * S };
  /* CLEANUP_WAIT shorter than the time the node was unready: no effect. */
  ck_assert_int_eq(m3s_role_node_deadline(&c, 3 * S, 1 * S), 15 * S);
  /* Longer: the task runs at least that long. */
  ck_assert_int_eq(m3s_role_node_deadline(&c, 3 * S, 20 * S), 30 * S);
}
END_TEST

static Suite *role_node_suite(void)
{
  Suite *s = suite_create("role_node");
  TCase *tc = tcase_create("clock");
  tcase_add_test(tc, test_no_clock_without_evidence);
  tcase_add_test(tc, test_clock_starts_at_the_latest_evidence);
  tcase_add_test(tc, test_cleanup_wait_is_a_minimum_run_time);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return m3s_check_run(role_node_suite());
}
