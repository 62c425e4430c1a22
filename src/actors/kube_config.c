/* The kube actor's pure helpers: kubeconfig parsing (libyaml), the
 * kubeconfig rewrite of /server/config, the API URL, and what the actor
 * reads in a Node object. Any thread; see include/m3s/kube.h.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "m3s/kube.h"
#include "m3s/xalloc.h"

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;
  if(!err || !errlen)
    return;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* Standard base64 (line breaks and spaces ignored, padding optional).
 * Returns a new NUL-terminated buffer and its length, or NULL. */
static char *b64_decode(const char *in, size_t *outlen)
{
  size_t n = strlen(in);
  char *out = m3s_xmalloc(n / 4 * 3 + 4);
  uint32_t acc = 0;
  int bits = 0;
  size_t o = 0;
  bool pad = false;
  for(size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)in[i];
    int v;
    if(c >= 'A' && c <= 'Z')
      v = c - 'A';
    else if(c >= 'a' && c <= 'z')
      v = c - 'a' + 26;
    else if(c >= '0' && c <= '9')
      v = c - '0' + 52;
    else if(c == '+' || c == '-')
      v = 62;
    else if(c == '/' || c == '_')
      v = 63;
    else if(c == '=') {
      pad = true;
      continue;
    }
    else if(c == '\n' || c == '\r' || c == ' ' || c == '\t')
      continue;
    else
      goto bad;
    if(pad)
      goto bad; /* data after padding */
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if(bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  if(bits >= 6)
    goto bad; /* a lone sextet cannot be */
  out[o] = '\0';
  *outlen = o;
  return out;
bad:
  free(out);
  return NULL;
}

/* libyaml document navigation (nodes are borrowed from the document). */
static yaml_node_t *ymap_get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
  if(!map || map->type != YAML_MAPPING_NODE)
    return NULL;
  for(yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
    yaml_node_t *k = yaml_document_get_node(d, p->key);
    if(k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
       !memcmp(k->data.scalar.value, key, k->data.scalar.length))
      return yaml_document_get_node(d, p->value);
  }
  return NULL;
}

/* The scalar's text (NUL-terminated by libyaml) or NULL. */
static const char *yscalar(yaml_node_t *n)
{
  return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The element of a named list (clusters, users, contexts) called name, or
 * the first element when name is NULL; returns its `inner` mapping. */
static yaml_node_t *ynamed(yaml_document_t *d, yaml_node_t *root, const char *list,
                          const char *name, const char *inner)
{
  yaml_node_t *seq = ymap_get(d, root, list);
  if(!seq || seq->type != YAML_SEQUENCE_NODE)
    return NULL;
  for(yaml_node_item_t *it = seq->data.sequence.items.start; it < seq->data.sequence.items.top;
      it++) {
    yaml_node_t *el = yaml_document_get_node(d, *it);
    const char *n = yscalar(ymap_get(d, el, "name"));
    if(!name || (n && !strcmp(n, name)))
      return ymap_get(d, el, inner);
  }
  return NULL;
}

void m3s_kubeconfig_free(m3s_kubeconfig_t *k)
{
  if(!k)
    return;
  if(k->key_pem) {
    volatile char *p = k->key_pem;
    for(size_t i = 0; i < k->key_len; i++)
      p[i] = 0;
  }
  free(k->server);
  free(k->ca_pem);
  free(k->cert_pem);
  free(k->key_pem);
  free(k->token);
  memset(k, 0, sizeof(*k));
}

static int decode_field(yaml_node_t *n, const char *what, char **out, size_t *len, char *err,
                        size_t errlen)
{
  const char *v = yscalar(n);
  if(!v)
    return 0;
  *out = b64_decode(v, len);
  if(!*out) {
    errf(err, errlen, "kubeconfig: %s is not base64", what);
    return -EPROTO;
  }
  return 0;
}

int m3s_kubeconfig_parse(const char *text, size_t len, m3s_kubeconfig_t *out, char *err,
                         size_t errlen)
{
  yaml_parser_t parser;
  yaml_document_t doc;
  bool have_doc = false;
  int rc = -EPROTO;

  memset(out, 0, sizeof(*out));
  if(!yaml_parser_initialize(&parser)) {
    errf(err, errlen, "kubeconfig: cannot initialise the YAML parser");
    return -ENOMEM;
  }
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  if(!yaml_parser_load(&parser, &doc)) {
    errf(err, errlen, "kubeconfig: not YAML: %s at line %zu",
         parser.problem ? parser.problem : "error", parser.problem_mark.line + 1);
    goto out;
  }
  have_doc = true;
  yaml_node_t *root = yaml_document_get_root_node(&doc);
  if(!root || root->type != YAML_MAPPING_NODE) {
    errf(err, errlen, "kubeconfig: not a YAML mapping");
    goto out;
  }
  const char *ctx_name = yscalar(ymap_get(&doc, root, "current-context"));
  yaml_node_t *ctx = ctx_name && *ctx_name ? ynamed(&doc, root, "contexts", ctx_name, "context")
                                           : NULL;
  const char *cl_name = yscalar(ymap_get(&doc, ctx, "cluster"));
  const char *us_name = yscalar(ymap_get(&doc, ctx, "user"));
  yaml_node_t *cluster = ynamed(&doc, root, "clusters", cl_name, "cluster");
  yaml_node_t *user = ynamed(&doc, root, "users", us_name, "user");
  if(!cluster) {
    errf(err, errlen, "kubeconfig: no cluster%s%s", cl_name ? " named " : "",
         cl_name ? cl_name : "");
    goto out;
  }
  const char *server = yscalar(ymap_get(&doc, cluster, "server"));
  if(!server || !*server) {
    errf(err, errlen, "kubeconfig: the cluster has no server");
    goto out;
  }
  out->server = m3s_xstrdup(server);
  if(decode_field(ymap_get(&doc, cluster, "certificate-authority-data"),
                  "certificate-authority-data", &out->ca_pem, &out->ca_len, err, errlen) ||
     decode_field(ymap_get(&doc, user, "client-certificate-data"), "client-certificate-data",
                  &out->cert_pem, &out->cert_len, err, errlen) ||
     decode_field(ymap_get(&doc, user, "client-key-data"), "client-key-data", &out->key_pem,
                  &out->key_len, err, errlen))
    goto out;
  const char *token = yscalar(ymap_get(&doc, user, "token"));
  if(token && *token)
    out->token = m3s_xstrdup(token);
  if(!out->token && (!out->cert_pem || !out->key_pem)) {
    errf(err, errlen, "kubeconfig: the user has neither a client certificate with its key "
         "nor a token");
    goto out;
  }
  rc = 0;
out:
  if(have_doc)
    yaml_document_delete(&doc);
  yaml_parser_delete(&parser);
  if(rc)
    m3s_kubeconfig_free(out);
  return rc;
}

char *m3s_kubeconfig_rewrite(const char *text, const char *host, int port)
{
  static const char from[] = "127.0.0.1:6443";
  char to[300];
  snprintf(to, sizeof(to), "%s:%d", host ? host : "", port);
  size_t fl = sizeof(from) - 1, tl = strlen(to), n = 0;
  for(const char *p = text; (p = strstr(p, from)); p += fl)
    n++;
  size_t len = strlen(text);
  char *out = m3s_xmalloc(len + n * (tl > fl ? tl - fl : 0) + 1);
  char *o = out;
  for(const char *p = text;;) {
    const char *hit = strstr(p, from);
    if(!hit) {
      memcpy(o, p, strlen(p) + 1);
      break;
    }
    memcpy(o, p, (size_t)(hit - p));
    o += hit - p;
    memcpy(o, to, tl);
    o += tl;
    p = hit + fl;
  }
  return out;
}

char *m3s_kube_api_url(const char *server, const char *host, int port)
{
  const char *scheme;
  if(!strncmp(server, "https://", 8))
    scheme = "https://";
  else if(!strncmp(server, "http://", 7))
    scheme = "http://";
  else
    return NULL;
  const char *rest = server + strlen(scheme);
  const char *path = rest + strcspn(rest, "/?#");
  size_t plen = strlen(path);
  while(plen && path[plen - 1] == '/')
    plen--;
  bool v6 = strchr(host, ':') != NULL && host[0] != '[';
  size_t need = strlen(scheme) + strlen(host) + plen + 16;
  char *url = m3s_xmalloc(need);
  snprintf(url, need, "%s%s%s%s:%d%.*s", scheme, v6 ? "[" : "", host, v6 ? "]" : "", port,
           (int)plen, path);
  return url;
}

char *m3s_kube_node_task_id(const json_t *node)
{
  const json_t *meta = json_object_get(node, "metadata");
  const char *label = json_string_value(
    json_object_get(json_object_get(meta, "labels"), M3S_KUBE_TASK_LABEL));
  if(label && *label)
    return m3s_xstrdup(label);
  const char *args = json_string_value(
    json_object_get(json_object_get(meta, "annotations"), M3S_KUBE_NODE_ARGS));
  if(!args)
    return NULL;
  json_t *arr = json_loads(args, 0, NULL);
  char *id = NULL;
  size_t i;
  json_t *el;
  json_array_foreach(arr, i, el) {
    const char *s = json_string_value(el);
    const char *hit = s ? strstr(s, "taskid=") : NULL;
    if(!hit)
      continue;
    hit += strlen("taskid=");
    size_t n = strcspn(hit, ",= \t");
    if(n && (hit[n] == '\0' || hit[n] == ',' || hit[n] == ' ' || hit[n] == '\t')) {
      id = m3s_xmalloc(n + 1);
      memcpy(id, hit, n);
      id[n] = '\0';
    }
    break; /* the first element naming a task id decides */
  }
  json_decref(arr);
  return id;
}

int m3s_kube_node_ready(const json_t *node)
{
  size_t i;
  json_t *c;
  json_array_foreach(json_object_get(json_object_get(node, "status"), "conditions"), i, c) {
    const char *type = json_string_value(json_object_get(c, "type"));
    if(type && !strcmp(type, "Ready")) {
      const char *st = json_string_value(json_object_get(c, "status"));
      return st && !strcmp(st, "True");
    }
  }
  return 0;
}

int m3s_kube_node_is_server(const json_t *node)
{
  const json_t *meta = json_object_get(node, "metadata");
  const char *name = json_string_value(json_object_get(meta, "name"));
  const json_t *labels = json_object_get(meta, "labels");
  return (name && strstr(name, "server")) ||
         json_object_get(labels, "node-role.kubernetes.io/control-plane") ||
         json_object_get(labels, "node-role.kubernetes.io/master");
}
