/* The Kubernetes actor's pure helpers: kubeconfig parsing (libyaml), the
 * /server/config rewrite, the API URL, and what a Node object says (task
 * id, readiness, role). */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "m3s/kube.h"
#include "check_main.h"

/* "-----BEGIN CERTIFICATE-----\nCA\n" etc. in base64 */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkNBCg=="
#define CERT_B64 "Q0VSVA=="        /* "CERT" */
#define KEY_B64 "S0VZLWRhdGE"      /* "KEY-data", unpadded */

static const char k3s_yaml[] =
  "apiVersion: v1\n"
  "clusters:\n"
  "- cluster:\n"
  "    certificate-authority-data: " CA_B64 "\n"
  "    server: https://127.0.0.1:6443\n"
  "  name: default\n"
  "contexts:\n"
  "- context:\n"
  "    cluster: default\n"
  "    user: default\n"
  "  name: default\n"
  "current-context: default\n"
  "kind: Config\n"
  "preferences: {}\n"
  "users:\n"
  "- name: default\n"
  "  user:\n"
  "    client-certificate-data: " CERT_B64 "\n"
  "    client-key-data: " KEY_B64 "\n";

START_TEST(parse_k3s_kubeconfig)
{
  m3s_kubeconfig_t k;
  char err[256] = "";
  ck_assert_int_eq(m3s_kubeconfig_parse(k3s_yaml, strlen(k3s_yaml), &k, err, sizeof(err)), 0);
  ck_assert_str_eq(k.server, "https://127.0.0.1:6443");
  ck_assert_str_eq(k.ca_pem, "-----BEGIN CERTIFICATE-----\nCA\n");
  ck_assert_uint_eq(k.ca_len, strlen(k.ca_pem));
  ck_assert_str_eq(k.cert_pem, "CERT");
  ck_assert_str_eq(k.key_pem, "KEY-data");
  ck_assert_uint_eq(k.key_len, 8);
  ck_assert_ptr_null(k.token);
  m3s_kubeconfig_free(&k);
  ck_assert_ptr_null(k.server);
  m3s_kubeconfig_free(&k); /* twice is harmless */
}
END_TEST

START_TEST(parse_current_context_picks_cluster_and_user)
{
  static const char yaml[] =
    "clusters:\n"
    "- name: other\n"
    "  cluster: {server: 'https://other:1'}\n"
    "- name: mine\n"
    "  cluster:\n"
    "    server: \"https://mine:6443/prefix\"\n"
    "users:\n"
    "- {name: u1, user: {token: t1}}\n"
    "- name: u2\n"
    "  user:\n"
    "    token: secret-token\n"
    "contexts:\n"
    "- {name: c1, context: {cluster: other, user: u1}}\n"
    "- {name: c2, context: {cluster: mine, user: u2}}\n"
    "current-context: c2\n";
  m3s_kubeconfig_t k;
  char err[256] = "";
  ck_assert_int_eq(m3s_kubeconfig_parse(yaml, strlen(yaml), &k, err, sizeof(err)), 0);
  ck_assert_str_eq(k.server, "https://mine:6443/prefix");
  ck_assert_str_eq(k.token, "secret-token");
  ck_assert_ptr_null(k.ca_pem);
  m3s_kubeconfig_free(&k);
}
END_TEST

START_TEST(parse_refuses)
{
  static const char *const bad[] = {
    "",                                            /* no document */
    "- a\n- b\n",                                  /* not a mapping */
    "clusters: [\n",                               /* not YAML */
    "users: [{name: u, user: {token: t}}]\n",      /* no cluster */
    "clusters: [{name: c, cluster: {}}]\nusers: [{name: u, user: {token: t}}]\n",
    "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
    "users: [{name: u, user: {client-certificate-data: " CERT_B64 "}}]\n", /* no key */
    "clusters: [{name: c, cluster: {server: 'https://x', certificate-authority-data: '*!'}}]\n"
    "users: [{name: u, user: {token: t}}]\n",      /* not base64 */
  };
  for(size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    m3s_kubeconfig_t k;
    char err[256] = "";
    ck_assert_int_eq(m3s_kubeconfig_parse(bad[i], strlen(bad[i]), &k, err, sizeof(err)), -EPROTO);
    ck_assert_msg(!strncmp(err, "kubeconfig: ", 12), "case %zu: %s", i, err);
    ck_assert_ptr_null(k.server);
  }
  /* the error never quotes the key */
  static const char keyed[] =
    "clusters: [{name: c, cluster: {server: 'https://x'}}]\n"
    "users: [{name: u, user: {client-key-data: c2VjcmV0LWtleQ==}}]\n";
  m3s_kubeconfig_t k;
  char err[256] = "";
  ck_assert_int_eq(m3s_kubeconfig_parse(keyed, strlen(keyed), &k, err, sizeof(err)), -EPROTO);
  ck_assert_ptr_null(strstr(err, "secret-key"));
  ck_assert_ptr_null(strstr(err, "c2VjcmV0"));
}
END_TEST

START_TEST(rewrite_every_occurrence)
{
  char *out = m3s_kubeconfig_rewrite(k3s_yaml, "agent-1.example", 31443);
  ck_assert_ptr_null(strstr(out, "127.0.0.1:6443"));
  ck_assert_ptr_nonnull(strstr(out, "    server: https://agent-1.example:31443\n"));
  ck_assert_uint_eq(strlen(out), strlen(k3s_yaml) - strlen("127.0.0.1:6443") +
                                   strlen("agent-1.example:31443"));
  free(out);
  out = m3s_kubeconfig_rewrite("a127.0.0.1:6443b127.0.0.1:6443127.0.0.1:644", "h", 1);
  ck_assert_str_eq(out, "ah:1bh:1127.0.0.1:644");
  free(out);
  out = m3s_kubeconfig_rewrite("x 127.0.0.1:6443", "a-much-longer-host-name.example.org", 65535);
  ck_assert_str_eq(out, "x a-much-longer-host-name.example.org:65535");
  free(out);
}
END_TEST

START_TEST(api_url)
{
  char *u = m3s_kube_api_url("https://127.0.0.1:6443", "agent-2", 31000);
  ck_assert_str_eq(u, "https://agent-2:31000");
  free(u);
  u = m3s_kube_api_url("https://127.0.0.1:6443/k8s/", "fd00::1", 6443);
  ck_assert_str_eq(u, "https://[fd00::1]:6443/k8s");
  free(u);
  u = m3s_kube_api_url("http://[::1]:6443", "h", 2);
  ck_assert_str_eq(u, "http://h:2");
  free(u);
  ck_assert_ptr_null(m3s_kube_api_url("127.0.0.1:6443", "h", 1));
}
END_TEST

static json_t *node(const char *json)
{
  json_error_t e;
  json_t *n = json_loads(json, 0, &e);
  ck_assert_msg(n != NULL, "%s", e.text);
  return n;
}

START_TEST(node_task_id)
{
  json_t *n = node("{\"metadata\":{\"name\":\"m3sagent\",\"labels\":{\"m3s.aventer.biz/taskid\":"
                   "\"t-1\"},\"annotations\":{\"k3s.io/node-args\":\"[\\\"agent\\\","
                   "\\\"m3s.aventer.biz/taskid=t-2\\\"]\"}}}");
  char *id = m3s_kube_node_task_id(n);
  ck_assert_str_eq(id, "t-1"); /* the label wins */
  free(id);
  json_decref(n);
  /* the agents' kubelet argument, among other labels */
  n = node("{\"metadata\":{\"name\":\"a\",\"annotations\":{\"k3s.io/node-args\":\"[\\\"agent\\\","
           "\\\"--kubelet-arg\\\",\\\"node-labels=m3s.aventer.biz/taskid=m3s.agent.7,x=y\\\"]\"}}}");
  id = m3s_kube_node_task_id(n);
  ck_assert_str_eq(id, "m3s.agent.7");
  free(id);
  json_decref(n);
  /* the server's --node-label value */
  n = node("{\"metadata\":{\"name\":\"s\",\"annotations\":{\"k3s.io/node-args\":\"[\\\"server\\\","
           "\\\"--node-label\\\",\\\"m3s.aventer.biz/taskid=srv-1\\\"]\"}}}");
  id = m3s_kube_node_task_id(n);
  ck_assert_str_eq(id, "srv-1");
  free(id);
  json_decref(n);
  /* none, malformed annotation, empty value */
  static const char *const none[] = {
    "{\"metadata\":{\"name\":\"a\"}}",
    "{\"metadata\":{\"name\":\"a\",\"annotations\":{\"k3s.io/node-args\":\"not json\"}}}",
    "{\"metadata\":{\"name\":\"a\",\"annotations\":{\"k3s.io/node-args\":\"[\\\"taskid=\\\"]\"}}}",
    "{\"metadata\":{\"name\":\"a\",\"labels\":{\"m3s.aventer.biz/taskid\":\"\"}}}",
  };
  for(size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
    n = node(none[i]);
    ck_assert_ptr_null(m3s_kube_node_task_id(n));
    json_decref(n);
  }
}
END_TEST

START_TEST(node_ready_and_role)
{
  json_t *n = node("{\"metadata\":{\"name\":\"m3sagent-1\"},\"status\":{\"conditions\":["
                   "{\"type\":\"MemoryPressure\",\"status\":\"True\"},"
                   "{\"type\":\"Ready\",\"status\":\"True\"}]}}");
  ck_assert_int_eq(m3s_kube_node_ready(n), 1);
  ck_assert_int_eq(m3s_kube_node_is_server(n), 0);
  json_decref(n);
  n = node("{\"metadata\":{\"name\":\"m3sserver\"},\"status\":{\"conditions\":["
           "{\"type\":\"Ready\",\"status\":\"Unknown\"}]}}");
  ck_assert_int_eq(m3s_kube_node_ready(n), 0);
  ck_assert_int_eq(m3s_kube_node_is_server(n), 1);
  json_decref(n);
  n = node("{\"metadata\":{\"name\":\"cp-1\",\"labels\":{\"node-role.kubernetes.io/"
           "control-plane\":\"true\"}},\"status\":{}}");
  ck_assert_int_eq(m3s_kube_node_ready(n), 0);
  ck_assert_int_eq(m3s_kube_node_is_server(n), 1);
  json_decref(n);
}
END_TEST

static Suite *suite(void)
{
  Suite *s = suite_create("kube");
  TCase *tc = tcase_create("helpers");
  tcase_add_test(tc, parse_k3s_kubeconfig);
  tcase_add_test(tc, parse_current_context_picks_cluster_and_user);
  tcase_add_test(tc, parse_refuses);
  tcase_add_test(tc, rewrite_every_occurrence);
  tcase_add_test(tc, api_url);
  tcase_add_test(tc, node_task_id);
  tcase_add_test(tc, node_ready_and_role);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return m3s_check_run(suite());
}
